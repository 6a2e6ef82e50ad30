#include "worker_pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "duet.pb-c.h"
#include "log.h"
#include "timer.h"
#include "vocab_proto.h"

#define METHOD(name) "duet.v1.Worker/" name

typedef struct {
    char *url;
    duet_rpc_client *client;
    duet_breaker breaker;
    duet_tokenizer *tok; /* from Info; kept until the pool is freed */
    duet_worker_status status;
} worker;

struct duet_worker_pool {
    duet_worker_pool_options opt;
    worker *w;
    size_t n;
    pthread_mutex_t lock; /* guards every worker's status and tok */
    pthread_cond_t wake;
    bool stopping;
    pthread_t thread;
};

static void set_error(worker *w, const char *msg)
{
    snprintf(w->status.last_error, sizeof w->status.last_error, "%s", msg ? msg : "");
}

/* Info with the vocabulary: the model and a tokenizer for it. Unlocked: it makes a call. */
static void fetch_info(duet_worker_pool *p, worker *w)
{
    Duet__V1__InfoRequest req = DUET__V1__INFO_REQUEST__INIT;
    req.include_vocabulary = true;
    uint8_t buf[8], *resp = NULL;
    size_t n = duet__v1__info_request__pack(&req, buf), len = 0;
    duet_status st;
    if (duet_rpc_call_unary(w->client, METHOD("Info"), buf, n, 10000, &resp, &len, &st) !=
        DUET_OK) {
        pthread_mutex_lock(&p->lock);
        set_error(w, st.message);
        pthread_mutex_unlock(&p->lock);
        return;
    }
    Duet__V1__InfoResponse *info = duet__v1__info_response__unpack(NULL, len, resp);
    free(resp);
    duet_vocab v;
    duet_tokenizer *tok = NULL;
    duet_code rc = DUET_INVALID_ARGUMENT;
    if (!info || !info->vocabulary) {
        duet_status_set(&st, DUET_INVALID_ARGUMENT, "the worker's Info has no vocabulary");
    } else if ((rc = duet_vocab_from_proto(info->vocabulary, &v, &st)) == DUET_OK) {
        rc = duet_tokenizer_create(&v, &tok, &st);
        duet_vocab_free(&v);
    }
    pthread_mutex_lock(&p->lock);
    if (rc == DUET_OK && !w->tok) {
        w->tok = tok;
        tok = NULL;
        w->status.has_model = true;
        w->status.context = info->context_length;
        snprintf(w->status.model, sizeof w->status.model, "%s", info->model_name);
        snprintf(w->status.chat_template, sizeof w->status.chat_template, "%s",
                 info->chat_template);
    } else if (rc != DUET_OK) {
        set_error(w, st.message);
    }
    pthread_mutex_unlock(&p->lock);
    duet_tokenizer_free(tok);
    if (info) {
        duet__v1__info_response__free_unpacked(info, NULL);
    }
}

static void check_one(duet_worker_pool *p, worker *w)
{
    bool connected = duet_rpc_client_connected(w->client);
    Duet__V1__HealthRequest req = DUET__V1__HEALTH_REQUEST__INIT;
    uint8_t buf[8], *resp = NULL;
    size_t n = duet__v1__health_request__pack(&req, buf), len = 0;
    duet_status st;
    Duet__V1__HealthResponse *h = NULL;
    if (connected && duet_rpc_call_unary(w->client, METHOD("Health"), buf, n,
                                         p->opt.health_timeout_ms, &resp, &len, &st) == DUET_OK) {
        h = duet__v1__health_response__unpack(NULL, len, resp);
        if (!h) {
            duet_status_set(&st, DUET_INTERNAL, "malformed HealthResponse");
        }
    } else if (!connected) {
        duet_status_set(&st, DUET_UNAVAILABLE, "not connected");
    }
    free(resp);
    bool healthy = h && h->state != DUET__V1__LOAD_STATE__LOAD_STATE_FAILED &&
                   h->state != DUET__V1__LOAD_STATE__LOAD_STATE_STOPPING;
    pthread_mutex_lock(&p->lock);
    w->status.connected = duet_rpc_client_connected(w->client);
    if (h) {
        w->status.load_state = h->state;
        w->status.running = h->running_sequences;
        w->status.waiting = h->waiting_sequences;
        w->status.tokens_per_second = h->tokens_per_second;
    }
    if (healthy) {
        w->status.checks_ok++;
        w->status.last_error[0] = '\0'; /* an old failure says nothing about now */
    } else {
        w->status.checks_failed++;
        set_error(w, h ? h->message : st.message);
    }
    bool need_info = healthy && !w->tok;
    pthread_mutex_unlock(&p->lock);
    if (healthy) {
        duet_breaker_success(&w->breaker);
    } else {
        duet_breaker_failure(&w->breaker, duet_now_ns());
    }
    if (h) {
        duet__v1__health_response__free_unpacked(h, NULL);
    }
    if (need_info) {
        fetch_info(p, w);
    }
}

void duet_worker_pool_check_now(duet_worker_pool *p)
{
    for (size_t i = 0; i < p->n; i++) {
        check_one(p, &p->w[i]);
    }
}

static void *monitor_main(void *arg)
{
    duet_worker_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        pthread_mutex_unlock(&p->lock);
        duet_worker_pool_check_now(p);
        pthread_mutex_lock(&p->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)p->opt.health_interval_ms * 1000000u;
        until.tv_sec += (time_t)(ns / 1000000000u);
        until.tv_nsec = (long)(ns % 1000000000u);
        if (!p->stopping) {
            pthread_cond_timedwait(&p->wake, &p->lock, &until);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

duet_code duet_worker_pool_new(const duet_worker_endpoint *endpoints, size_t n,
                               const duet_tls_options *tls, const duet_rpc_limits *limits,
                               const duet_worker_pool_options *o, duet_worker_pool **out,
                               duet_status *st)
{
    if (n == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "no workers to route to");
    }
    duet_worker_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->w = calloc(n, sizeof *p->w))) {
        free(p);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    p->opt = *o;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (size_t i = 0; i < n; i++) {
        worker *w = &p->w[i];
        duet_tls_options t = *tls;
        t.server_name = endpoints[i].server_name;
        w->url = strdup(endpoints[i].url);
        w->status.url = w->url;
        duet_breaker_init(&w->breaker, &o->breaker);
        p->n = i + 1;
        if (!w->url ||
            duet_rpc_client_new(endpoints[i].url, &t, limits, &w->client, st) != DUET_OK) {
            if (!w->url) {
                duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
            }
            duet_worker_pool_free(p);
            return st->code;
        }
    }
    if (pthread_create(&p->thread, NULL, monitor_main, p) != 0) {
        p->stopping = true; /* nothing to join */
        duet_worker_pool_free(p);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "cannot start the health checks");
    }
    *out = p;
    return DUET_OK;
}

void duet_worker_pool_free(duet_worker_pool *p)
{
    if (!p) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    bool running = !p->stopping;
    p->stopping = true;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    if (running) {
        pthread_join(p->thread, NULL);
    }
    for (size_t i = 0; i < p->n; i++) {
        duet_rpc_client_free(p->w[i].client);
        duet_tokenizer_free(p->w[i].tok);
        duet_breaker_destroy(&p->w[i].breaker);
        free(p->w[i].url);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p->w);
    free(p);
}

size_t duet_worker_pool_size(const duet_worker_pool *p)
{
    return p->n;
}

int duet_worker_pool_pick(duet_worker_pool *p, uint64_t skip)
{
    uint64_t now = duet_now_ns();
    for (size_t i = 0; i < p->n; i++) {
        if (i < 64 && (skip >> i) & 1u) {
            continue;
        }
        worker *w = &p->w[i];
        pthread_mutex_lock(&p->lock);
        bool usable = w->tok && duet_rpc_client_connected(w->client) &&
                      w->status.load_state != DUET__V1__LOAD_STATE__LOAD_STATE_FAILED &&
                      w->status.load_state != DUET__V1__LOAD_STATE__LOAD_STATE_STOPPING;
        pthread_mutex_unlock(&p->lock);
        /* the breaker last: allow() hands out the half-open probe */
        if (usable && duet_breaker_allow(&w->breaker, now)) {
            return (int)i;
        }
    }
    return -1;
}

duet_rpc_client *duet_worker_pool_client(duet_worker_pool *p, int i)
{
    return i >= 0 && (size_t)i < p->n ? p->w[i].client : NULL;
}

void duet_worker_pool_report(duet_worker_pool *p, int i, bool ok, const char *error)
{
    if (i < 0 || (size_t)i >= p->n) {
        return;
    }
    worker *w = &p->w[i];
    if (ok) {
        duet_breaker_success(&w->breaker);
        return;
    }
    duet_breaker_failure(&w->breaker, duet_now_ns());
    pthread_mutex_lock(&p->lock);
    set_error(w, error);
    pthread_mutex_unlock(&p->lock);
}

void duet_worker_pool_note(duet_worker_pool *p, int i, const char *why)
{
    if (i < 0 || (size_t)i >= p->n) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    set_error(&p->w[i], why);
    pthread_mutex_unlock(&p->lock);
    /* a half-open probe that met a full worker: let the next request probe again */
    duet_breaker_release_probe(&p->w[i].breaker);
}

void duet_worker_pool_status(duet_worker_pool *p, int i, duet_worker_status *out)
{
    if (i < 0 || (size_t)i >= p->n) {
        memset(out, 0, sizeof *out);
        return;
    }
    worker *w = &p->w[i];
    pthread_mutex_lock(&p->lock);
    *out = w->status;
    out->connected = duet_rpc_client_connected(w->client);
    pthread_mutex_unlock(&p->lock);
    out->breaker = duet_breaker_state_at(&w->breaker, duet_now_ns());
}

const duet_tokenizer *duet_worker_pool_tokenizer(duet_worker_pool *p, uint32_t *context,
                                                 char *model, size_t model_cap)
{
    const duet_tokenizer *tok = NULL;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n && !tok; i++) {
        if (p->w[i].tok) {
            tok = p->w[i].tok;
            if (context) {
                *context = p->w[i].status.context;
            }
            if (model && model_cap) {
                snprintf(model, model_cap, "%s", p->w[i].status.model);
            }
        }
    }
    pthread_mutex_unlock(&p->lock);
    return tok;
}
