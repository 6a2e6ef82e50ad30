#include "relay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METHOD_GENERATE "duet.v1.Worker/Generate"
#define MAX_ATTEMPTS 64

typedef struct {
    duet_relay *r;
    uint32_t n; /* its number */
    int worker;
    duet_rpc_stream *handle; /* released when the relay is freed */
    bool got_first;
    bool timed_out;
    duet_timer_entry first_token;
} attempt;

struct duet_relay {
    pthread_mutex_t lock;
    atomic_int refs; /* the owner's, one per attempt in flight, one per armed timer */
    duet_worker_pool *pool;
    duet_timer *timer;
    duet_relay_options opt;
    duet_relay_sink sink;
    Duet__V1__GenerateRequest *req; /* our copy */
    uint64_t skip;                  /* workers tried */
    attempt attempts[MAX_ATTEMPTS];
    uint32_t n_attempts;
    char *partial; /* the answer so far, over attempts */
    size_t partial_len, partial_cap;
    uint32_t tokens_so_far;
    bool cancelled, ended, continued;
};

static void relay_unref(duet_relay *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1) {
        return;
    }
    /* no callback can come any more: every attempt ended, no timer is armed */
    for (uint32_t i = 0; i < r->n_attempts; i++) {
        duet_rpc_stream_release(r->attempts[i].handle);
    }
    duet__v1__generate_request__free_unpacked(r->req, NULL);
    free(r->partial);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static void finish(duet_relay *r, duet_relay_result *res)
{
    pthread_mutex_lock(&r->lock);
    bool first = !r->ended;
    r->ended = true;
    res->attempts = r->n_attempts;
    res->continued = r->continued;
    pthread_mutex_unlock(&r->lock);
    if (first) {
        r->sink.on_end(r->sink.arg, res);
    }
}

static void finish_error(duet_relay *r, duet_code code, const char *msg)
{
    duet_relay_result res = {.worker = -1};
    duet_status_set(&res.status, code, "%s", msg);
    pthread_mutex_lock(&r->lock);
    res.completion_tokens = r->tokens_so_far;
    pthread_mutex_unlock(&r->lock);
    finish(r, &res);
}

static bool retryable(duet_code c)
{
    return c == DUET_UNAVAILABLE || c == DUET_RESOURCE_EXHAUSTED || c == DUET_INTERNAL ||
           c == DUET_UNKNOWN;
}

static void try_next(duet_relay *r, const char *why);

static void on_first_token_timeout(void *arg)
{
    attempt *a = arg;
    duet_relay *r = a->r;
    pthread_mutex_lock(&r->lock);
    duet_rpc_stream *h = NULL;
    if (!a->got_first) {
        a->timed_out = true;
        h = a->handle; /* NULL while the call is being started: that code cancels it */
    }
    pthread_mutex_unlock(&r->lock);
    if (h) {
        duet_rpc_stream_cancel(h);
    }
    relay_unref(r); /* the timer's */
}

static void on_chunk(void *arg, const uint8_t *msg, size_t len)
{
    attempt *a = arg;
    duet_relay *r = a->r;
    Duet__V1__GenerateChunk *c = duet__v1__generate_chunk__unpack(NULL, len, msg);
    if (!c) {
        return;
    }
    bool disarm = false;
    size_t tlen = strlen(c->text);
    pthread_mutex_lock(&r->lock);
    bool live = !r->ended && !a->timed_out;
    if (live && !a->got_first && c->n_ids > 0) {
        a->got_first = true;
        disarm = r->opt.first_token_timeout_ms > 0;
    }
    if (live && r->partial_len + tlen + 1 > r->partial_cap) {
        size_t cap = (r->partial_len + tlen + 1) * 2;
        char *p = realloc(r->partial, cap);
        if (p) {
            r->partial = p;
            r->partial_cap = cap;
        }
    }
    if (live && r->partial_len + tlen + 1 <= r->partial_cap) {
        memcpy(r->partial + r->partial_len, c->text, tlen + 1);
        r->partial_len += tlen;
    }
    if (live) {
        r->tokens_so_far += (uint32_t)c->n_ids;
    }
    pthread_mutex_unlock(&r->lock);
    if (disarm && duet_timer_disarm(r->timer, &a->first_token)) {
        relay_unref(r);
    }
    if (live && (tlen || c->n_ids)) {
        r->sink.on_text(r->sink.arg, c->text, tlen, (uint32_t)c->n_ids);
    }
    duet__v1__generate_chunk__free_unpacked(c, NULL);
}

static void on_call_end(void *arg, const duet_status *st, const uint8_t *msg, size_t len)
{
    attempt *a = arg;
    duet_relay *r = a->r;
    if (r->opt.first_token_timeout_ms && duet_timer_disarm(r->timer, &a->first_token)) {
        relay_unref(r);
    }
    pthread_mutex_lock(&r->lock);
    bool timed_out = a->timed_out, cancelled = r->cancelled;
    bool have_partial = r->tokens_so_far > 0;
    pthread_mutex_unlock(&r->lock);

    if (st->code == DUET_OK) {
        duet_worker_pool_report(r->pool, a->worker, true, NULL);
        Duet__V1__GenerateEnd *end = duet__v1__generate_end__unpack(NULL, len, msg);
        duet_relay_result res = {.worker = a->worker};
        if (end) {
            if (end->text && end->text[0]) {
                r->sink.on_text(r->sink.arg, end->text, strlen(end->text), 0);
            }
            res.finish_reason = end->finish_reason;
            if (end->usage) {
                res.prompt_tokens = end->usage->prompt_tokens;
                res.cached_prompt_tokens = end->usage->cached_prompt_tokens;
            }
            duet__v1__generate_end__free_unpacked(end, NULL);
        }
        pthread_mutex_lock(&r->lock);
        res.completion_tokens = r->tokens_so_far;
        pthread_mutex_unlock(&r->lock);
        finish(r, &res);
    } else if (cancelled) {
        finish_error(r, DUET_CANCELLED, "cancelled");
    } else if (timed_out || retryable(st->code)) {
        char why[DUET_STATUS_MESSAGE_MAX + 64];
        snprintf(why, sizeof why, "%s", timed_out ? "no first token in time" : st->message);
        if (st->code == DUET_RESOURCE_EXHAUSTED) {
            /* busy is not broken: pass it over for this request, keep its breaker closed */
            duet_worker_pool_note(r->pool, a->worker, why);
        } else {
            duet_worker_pool_report(r->pool, a->worker, false, why);
        }
        /* a chat answer cut off mid-way continues elsewhere; anything else starts over only
         * when nothing was sent yet */
        bool can_continue = r->req->prompt_case == DUET__V1__GENERATE_REQUEST__PROMPT_CHAT;
        if (have_partial && !can_continue) {
            finish_error(r, st->code, st->message);
        } else {
            try_next(r, why);
        }
    } else {
        /* the request's own fault: another worker would say the same */
        finish_error(r, st->code, st->message);
    }
    relay_unref(r); /* this attempt's */
}

/* The request for the next attempt: the original, or, with an answer under way, a chat
 * whose last message is that answer to continue. Packed into *buf. */
static duet_code pack_request(duet_relay *r, uint8_t **buf, size_t *len)
{
    Duet__V1__GenerateRequest req = *r->req;
    Duet__V1__ChatPrompt chat;
    Duet__V1__ChatMessage answer = DUET__V1__CHAT_MESSAGE__INIT;
    Duet__V1__ChatMessage **msgs = NULL;
    pthread_mutex_lock(&r->lock);
    bool resume = r->tokens_so_far > 0;
    uint32_t done = r->tokens_so_far;
    char *partial = resume ? strndup(r->partial ? r->partial : "", r->partial_len) : NULL;
    if (resume) {
        r->continued = true;
    }
    pthread_mutex_unlock(&r->lock);
    if (resume) {
        if (!partial) {
            return DUET_RESOURCE_EXHAUSTED;
        }
        chat = *r->req->chat;
        msgs = malloc((chat.n_messages + 1) * sizeof *msgs);
        if (!msgs) {
            free(partial);
            return DUET_RESOURCE_EXHAUSTED;
        }
        memcpy(msgs, chat.messages, chat.n_messages * sizeof *msgs);
        answer.role = DUET__V1__ROLE__ROLE_ASSISTANT;
        answer.content = partial;
        msgs[chat.n_messages] = &answer;
        chat.messages = msgs;
        chat.n_messages++;
        chat.continue_last = true;
        req.chat = &chat;
        if (req.max_tokens_opt_case == DUET__V1__GENERATE_REQUEST__MAX_TOKENS_OPT_MAX_TOKENS) {
            req.max_tokens = req.max_tokens > done ? req.max_tokens - done : 1;
        }
    }
    *len = duet__v1__generate_request__get_packed_size(&req);
    *buf = malloc(*len ? *len : 1);
    if (*buf) {
        duet__v1__generate_request__pack(&req, *buf);
    }
    free(msgs);
    free(partial);
    return *buf ? DUET_OK : DUET_RESOURCE_EXHAUSTED;
}

static void try_next(duet_relay *r, const char *why)
{
    pthread_mutex_lock(&r->lock);
    bool stop = r->cancelled || r->ended || r->n_attempts == MAX_ATTEMPTS;
    pthread_mutex_unlock(&r->lock);
    int w = stop ? -1 : duet_worker_pool_pick(r->pool, r->skip);
    if (w < 0) {
        char msg[DUET_STATUS_MESSAGE_MAX];
        snprintf(msg, sizeof msg, "no worker can serve this request%s%s", why ? ": " : "",
                 why ? why : "");
        pthread_mutex_lock(&r->lock);
        bool cancelled = r->cancelled;
        pthread_mutex_unlock(&r->lock);
        finish_error(r, cancelled ? DUET_CANCELLED : DUET_UNAVAILABLE,
                     cancelled ? "cancelled" : msg);
        return;
    }
    uint8_t *buf;
    size_t len;
    if (pack_request(r, &buf, &len) != DUET_OK) {
        finish_error(r, DUET_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    pthread_mutex_lock(&r->lock);
    attempt *a = &r->attempts[r->n_attempts];
    *a = (attempt){.r = r, .n = r->n_attempts, .worker = w};
    r->n_attempts++;
    if (w < 64) {
        r->skip |= 1ull << w;
    }
    pthread_mutex_unlock(&r->lock);
    atomic_fetch_add(&r->refs, 1); /* the attempt's, dropped in on_call_end */
    if (r->opt.first_token_timeout_ms) {
        atomic_fetch_add(&r->refs, 1); /* the timer's */
        duet_timer_arm(r->timer, &a->first_token,
                       duet_now_ns() + (uint64_t)r->opt.first_token_timeout_ms * 1000000u,
                       on_first_token_timeout, a);
    }
    duet_rpc_stream_callbacks cb = {.on_message = on_chunk, .on_end = on_call_end, .arg = a};
    duet_rpc_stream *h = NULL;
    duet_status st;
    duet_rpc_call_stream(duet_worker_pool_client(r->pool, w), METHOD_GENERATE, buf, len,
                         r->opt.timeout_ms, NULL, 0, &cb, &h, &st);
    free(buf);
    pthread_mutex_lock(&r->lock);
    a->handle = h;
    bool cancel_now = h && (a->timed_out || r->cancelled);
    pthread_mutex_unlock(&r->lock);
    if (cancel_now) {
        duet_rpc_stream_cancel(h);
    }
}

duet_code duet_relay_start(duet_worker_pool *pool, duet_timer *timer,
                           const Duet__V1__GenerateRequest *req, const duet_relay_options *o,
                           const duet_relay_sink *sink, duet_relay **out, duet_status *st)
{
    duet_relay *r = calloc(1, sizeof *r);
    size_t len = duet__v1__generate_request__get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!r || !buf) {
        free(r);
        free(buf);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    duet__v1__generate_request__pack(req, buf);
    r->req = duet__v1__generate_request__unpack(NULL, len, buf); /* a deep copy */
    free(buf);
    if (!r->req) {
        free(r);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    pthread_mutex_init(&r->lock, NULL);
    atomic_init(&r->refs, 2); /* the owner's, and this function's until try_next returns */
    r->pool = pool;
    r->timer = timer;
    r->opt = *o;
    r->sink = *sink;
    *out = r;
    try_next(r, NULL);
    relay_unref(r);
    return DUET_OK;
}

void duet_relay_cancel(duet_relay *r)
{
    atomic_fetch_add(&r->refs, 1);
    pthread_mutex_lock(&r->lock);
    r->cancelled = true;
    duet_rpc_stream *h = r->n_attempts ? r->attempts[r->n_attempts - 1].handle : NULL;
    pthread_mutex_unlock(&r->lock);
    if (h) {
        duet_rpc_stream_cancel(h);
    }
    relay_unref(r);
}

void duet_relay_release(duet_relay *r)
{
    if (r) {
        relay_unref(r);
    }
}
