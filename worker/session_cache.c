#include "session_cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct duet_session {
    char id[DUET_SESSION_ID_MAX + 1];
    uint64_t hash;
    bool busy;
    bool listed; /* in the table; false for anonymous sequences and dropped sessions */
    duet_kv_cache *kv;
    uint32_t *tokens; /* the tokens of the cache's positions */
    uint32_t n_tokens;
    uint32_t cap_tokens;
    duet_session *older, *newer; /* the table, in order of last use */
};

struct duet_session_cache {
    duet_kv_pool *pool;
    uint32_t max_ctx;
    pthread_mutex_t lock;
    duet_session *oldest, *newest;
    uint32_t count;
    uint64_t evictions;
};

static uint64_t id_hash(const char *id)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        h = (h ^ *p) * 1099511628211ull;
    }
    return h;
}

static void unlink_session(duet_session_cache *c, duet_session *s)
{
    if (s->older) {
        s->older->newer = s->newer;
    } else {
        c->oldest = s->newer;
    }
    if (s->newer) {
        s->newer->older = s->older;
    } else {
        c->newest = s->older;
    }
    s->older = s->newer = NULL;
    s->listed = false;
    c->count--;
}

static void link_newest(duet_session_cache *c, duet_session *s)
{
    s->older = c->newest;
    s->newer = NULL;
    if (c->newest) {
        c->newest->newer = s;
    } else {
        c->oldest = s;
    }
    c->newest = s;
    s->listed = true;
    c->count++;
}

static void session_free(duet_session *s)
{
    duet_kv_cache_free(s->kv);
    free(s->tokens);
    free(s);
}

static duet_session *find(duet_session_cache *c, const char *id)
{
    uint64_t h = id_hash(id);
    for (duet_session *s = c->newest; s; s = s->older) {
        if (s->hash == h && !strcmp(s->id, id)) {
            return s;
        }
    }
    return NULL;
}

/* The pool's reclaimer: forgets idle sessions, least recently used first. */
static uint32_t evict_idle(void *ctx, uint32_t pages_wanted)
{
    duet_session_cache *c = ctx;
    uint32_t page_tokens = duet_kv_pool_page_tokens(c->pool);
    uint32_t freed = 0;
    pthread_mutex_lock(&c->lock);
    for (duet_session *s = c->oldest, *next; s && freed < pages_wanted; s = next) {
        next = s->newer;
        if (s->busy) {
            continue;
        }
        uint32_t pages = duet_kv_cache_reserved(s->kv) / page_tokens;
        if (pages == 0) {
            continue; /* forgetting it would not help */
        }
        unlink_session(c, s);
        session_free(s);
        freed += pages;
        c->evictions++;
    }
    pthread_mutex_unlock(&c->lock);
    return freed;
}

duet_code duet_session_cache_new(duet_kv_pool *pool, uint32_t max_ctx, duet_session_cache **out,
                                 duet_status *st)
{
    if (max_ctx == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "sessions need a positive context");
    }
    duet_session_cache *c = calloc(1, sizeof *c);
    if (!c) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    c->pool = pool;
    c->max_ctx = max_ctx;
    pthread_mutex_init(&c->lock, NULL);
    duet_kv_pool_set_reclaimer(pool, evict_idle, c);
    *out = c;
    return DUET_OK;
}

void duet_session_cache_free(duet_session_cache *c)
{
    if (!c) {
        return;
    }
    duet_kv_pool_set_reclaimer(c->pool, NULL, NULL);
    while (c->oldest) {
        duet_session *s = c->oldest;
        unlink_session(c, s);
        session_free(s);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static duet_code session_new(duet_session_cache *c, const char *id, duet_session **out,
                             duet_status *st)
{
    duet_session *s = calloc(1, sizeof *s);
    if (!s) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    duet_code rc = duet_kv_cache_new_in_pool(c->pool, c->max_ctx, &s->kv, st);
    if (rc != DUET_OK) {
        free(s);
        return rc;
    }
    strcpy(s->id, id);
    s->hash = id_hash(id);
    s->busy = true;
    *out = s;
    return DUET_OK;
}

static uint32_t common_prefix(const uint32_t *a, uint32_t na, const uint32_t *b, uint32_t nb)
{
    uint32_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) {
        i++;
    }
    return i;
}

duet_code duet_session_cache_acquire(duet_session_cache *c, const char *session_id,
                                     const uint32_t *prompt, uint32_t n, duet_session **seq,
                                     uint32_t *reused, duet_status *st)
{
    const char *id = session_id ? session_id : "";
    size_t id_len = strnlen(id, DUET_SESSION_ID_MAX + 1);
    if (id_len > DUET_SESSION_ID_MAX) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "a session id is at most %d bytes long",
                               DUET_SESSION_ID_MAX);
    }
    *reused = 0;
    if (id_len == 0) {
        return session_new(c, "", seq, st);
    }
    pthread_mutex_lock(&c->lock);
    duet_session *s = find(c, id);
    duet_code rc = DUET_OK;
    if (s && s->busy) {
        rc = duet_status_set(st, DUET_FAILED_PRECONDITION,
                             "session \"%s\" is in use by another request: wait for it to end", id);
    } else if (s) {
        uint32_t keep = common_prefix(s->tokens, s->n_tokens, prompt, n);
        if (keep == n && n > 0) {
            keep = n - 1; /* the last prompt token runs again: its logits start the answer */
        }
        duet_kv_cache_truncate(s->kv, keep);
        s->n_tokens = keep;
        s->busy = true;
        unlink_session(c, s);
        link_newest(c, s);
        *reused = keep;
    } else {
        rc = session_new(c, id, &s, st);
        if (rc == DUET_OK) {
            link_newest(c, s);
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (rc == DUET_OK) {
        *seq = s;
    }
    return rc;
}

duet_kv_cache *duet_session_kv(duet_session *seq)
{
    return seq->kv;
}

/* Records tokens[0..n) as the session's; false when memory ran out. */
static bool keep_tokens(duet_session *s, const uint32_t *tokens, uint32_t n)
{
    if (n > s->cap_tokens) {
        uint32_t *grown = realloc(s->tokens, (size_t)n * sizeof *grown);
        if (!grown) {
            return false;
        }
        s->tokens = grown;
        s->cap_tokens = n;
    }
    memcpy(s->tokens, tokens, (size_t)n * sizeof *tokens);
    s->n_tokens = n;
    return true;
}

void duet_session_cache_release(duet_session_cache *c, duet_session *seq, const uint32_t *tokens,
                                uint32_t n)
{
    uint32_t length = duet_kv_cache_length(seq->kv);
    uint32_t kept = n < length ? n : length;
    pthread_mutex_lock(&c->lock);
    duet_kv_cache_truncate(seq->kv, kept);
    /* a session whose tokens cannot be recorded cannot be reused: forget it */
    if (!seq->listed || kept == 0 || !keep_tokens(seq, tokens, kept)) {
        if (seq->listed) {
            unlink_session(c, seq);
        }
        session_free(seq);
    } else {
        seq->busy = false;
        unlink_session(c, seq);
        link_newest(c, seq);
    }
    pthread_mutex_unlock(&c->lock);
}

duet_code duet_session_cache_drop(duet_session_cache *c, const char *session_id, duet_status *st)
{
    const char *id = session_id ? session_id : "";
    pthread_mutex_lock(&c->lock);
    duet_session *s = *id ? find(c, id) : NULL;
    if (s) {
        unlink_session(c, s);
        if (!s->busy) {
            session_free(s);
        } /* else its release frees it */
    }
    pthread_mutex_unlock(&c->lock);
    if (!s) {
        return duet_status_set(st, DUET_NOT_FOUND, "no cached session \"%.*s\"",
                               DUET_SESSION_ID_MAX, id);
    }
    return DUET_OK;
}

uint32_t duet_session_cache_count(duet_session_cache *c)
{
    pthread_mutex_lock(&c->lock);
    uint32_t n = c->count;
    pthread_mutex_unlock(&c->lock);
    return n;
}

uint64_t duet_session_cache_evictions(duet_session_cache *c)
{
    pthread_mutex_lock(&c->lock);
    uint64_t n = c->evictions;
    pthread_mutex_unlock(&c->lock);
    return n;
}
