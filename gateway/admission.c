#include "admission.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct user {
    struct user *next;
    duet_bucket *requests, *tokens; /* tokens NULL: no token limit */
    char name[];
} user;

typedef struct {
    duet_bucket *requests, *tokens;
} bucket_pair;

struct duet_admission {
    pthread_mutex_t lock; /* the user list, and taking from several buckets at once */
    duet_admission_limits per_user, overall;
    duet_clock_fn clock;
    void *clock_arg;
    bucket_pair all;
    user *users;
};

static bool has_token_limit(const duet_admission_limits *l)
{
    return l->tokens_per_second > 0 || l->token_burst > 0;
}

static duet_code make_pair(const duet_admission *a, const duet_admission_limits *l, bucket_pair *p,
                           duet_status *st)
{
    p->requests = duet_bucket_new_with_clock(l->requests_per_second, l->request_burst, a->clock,
                                             a->clock_arg);
    p->tokens = has_token_limit(l)
                    ? duet_bucket_new_with_clock(l->tokens_per_second, l->token_burst, a->clock,
                                                 a->clock_arg)
                    : NULL;
    if (!p->requests || (has_token_limit(l) && !p->tokens)) {
        duet_bucket_free(p->requests);
        duet_bucket_free(p->tokens);
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "admission limits of %g requests/s (burst %g) and %g tokens/s "
                               "(burst %g) are not valid buckets",
                               l->requests_per_second, l->request_burst, l->tokens_per_second,
                               l->token_burst);
    }
    return DUET_OK;
}

duet_code duet_admission_new(const duet_admission_limits *per_user,
                             const duet_admission_limits *overall, duet_clock_fn clock,
                             void *clock_arg, duet_admission **out, duet_status *st)
{
    duet_admission *a = calloc(1, sizeof *a);
    if (!a) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    a->per_user = *per_user;
    a->overall = *overall;
    a->clock = clock ? clock : duet_clock_monotonic_ns;
    a->clock_arg = clock_arg;
    /* per-user limits checked once, up front, with a pair made and dropped */
    bucket_pair probe;
    if (make_pair(a, per_user, &probe, st) != DUET_OK) {
        free(a);
        return st->code;
    }
    duet_bucket_free(probe.requests);
    duet_bucket_free(probe.tokens);
    if (make_pair(a, overall, &a->all, st) != DUET_OK) {
        free(a);
        return st->code;
    }
    pthread_mutex_init(&a->lock, NULL);
    *out = a;
    return DUET_OK;
}

void duet_admission_free(duet_admission *a)
{
    if (!a) {
        return;
    }
    while (a->users) {
        user *u = a->users;
        a->users = u->next;
        duet_bucket_free(u->requests);
        duet_bucket_free(u->tokens);
        free(u);
    }
    duet_bucket_free(a->all.requests);
    duet_bucket_free(a->all.tokens);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static user *find_or_add_locked(duet_admission *a, const char *name, duet_status *st)
{
    for (user *u = a->users; u; u = u->next) {
        if (strcmp(u->name, name) == 0) {
            return u;
        }
    }
    size_t len = strlen(name);
    user *u = calloc(1, sizeof *u + len + 1);
    bucket_pair p;
    if (!u || make_pair(a, &a->per_user, &p, st) != DUET_OK) {
        free(u);
        if (!u) {
            duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        }
        return NULL;
    }
    memcpy(u->name, name, len + 1);
    u->requests = p.requests;
    u->tokens = p.tokens;
    u->next = a->users;
    a->users = u;
    return u;
}

/* Whether n can be taken from b now (and in how long otherwise), without taking. */
static bool room_for(duet_bucket *b, double n, uint64_t *wait_ms)
{
    if (!b || duet_bucket_available(b) >= n) {
        return true;
    }
    /* take() with nothing there reports the wait and takes nothing */
    duet_bucket_take(b, n, wait_ms);
    return false;
}

duet_code duet_admission_take(duet_admission *a, const char *user_name, uint32_t prompt_tokens,
                              uint64_t *retry_after_ms, duet_status *st)
{
    pthread_mutex_lock(&a->lock);
    user *u = find_or_add_locked(a, user_name, st);
    if (!u) {
        pthread_mutex_unlock(&a->lock);
        return st->code;
    }
    struct {
        duet_bucket *b;
        double n;
        const char *what;
    } checks[] = {
        {u->requests, 1, "your requests per second"},
        {u->tokens, prompt_tokens, "your prompt tokens per second"},
        {a->all.requests, 1, "the gateway's requests per second"},
        {a->all.tokens, prompt_tokens, "the gateway's prompt tokens per second"},
    };
    /* every bucket first, then take from all: a refusal costs nothing anywhere */
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        uint64_t wait = 0;
        if (!room_for(checks[i].b, checks[i].n, &wait)) {
            pthread_mutex_unlock(&a->lock);
            *retry_after_ms = wait;
            if (wait == UINT64_MAX) {
                return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                                       "over %s: a request of %u prompt tokens can never fit",
                                       checks[i].what, prompt_tokens);
            }
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "over %s; retry in %llu ms",
                                   checks[i].what, (unsigned long long)wait);
        }
    }
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        if (checks[i].b) {
            duet_bucket_take(checks[i].b, checks[i].n, NULL);
        }
    }
    pthread_mutex_unlock(&a->lock);
    *retry_after_ms = 0;
    return DUET_OK;
}
