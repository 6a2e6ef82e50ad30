#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>

#include "id_table.h"
#include "log.h"
#include "rpc_internal.h"
#include "timer.h"

#define CLIENT_BACKOFF_MIN_MS 100u
#define CLIENT_BACKOFF_MAX_MS 5000u

typedef enum { CLIENT_IDLE, CLIENT_DIALING, CLIENT_HELLO, CLIENT_READY } client_state;

struct duet_rpc_client {
    char *url;
    duet_rpc_limits limits;
    bool tls;
    nng_stream_dialer *dialer;
    nng_aio *dial_aio;
    duet_timer *timer;
    duet_timer_entry redial; /* back-off before the next attempt */
    duet_timer_entry hello_timer;

    pthread_mutex_t lock;
    pthread_cond_t changed;
    client_state state;
    duet_conn *conn;   /* the current connection, once dialed */
    size_t live_conns; /* connections whose on_close has not run yet */
    duet_status last_error;
    bool attempt_failed; /* last_error was set by the current connection attempt */
    uint32_t backoff_ms;
    uint64_t next_id;
    duet_id_table calls;
    bool closing;
};

struct duet_rpc_stream {
    atomic_int refs; /* the caller's handle, the call table's, the armed timer's */
    duet_rpc_client *client;
    duet_conn *conn;
    uint64_t id;
    uint32_t timeout_ms;
    duet_timer_entry timer;
    bool has_timer;
    duet_rpc_stream_callbacks cb;
    /* recursive: the owner may cancel from inside on_message */
    pthread_mutex_t deliver;
    bool ended;
};

static void stream_unref(duet_rpc_stream *s)
{
    if (atomic_fetch_sub(&s->refs, 1) == 1) {
        duet_conn_release(s->conn);
        pthread_mutex_destroy(&s->deliver);
        free(s);
    }
}

/* Takes an open stream out of the table and timer; returns how many references that freed.
 * Under client->lock. */
static int stream_detach_locked(duet_rpc_stream *s)
{
    int freed = 0;
    if (duet_id_table_remove(&s->client->calls, s->id)) {
        freed++;
    }
    if (s->has_timer && duet_timer_disarm(s->client->timer, &s->timer)) {
        freed++;
    }
    return freed;
}

static void stream_deliver_end(duet_rpc_stream *s, const duet_status *st, const uint8_t *msg,
                               size_t len)
{
    pthread_mutex_lock(&s->deliver);
    if (!s->ended) {
        s->ended = true;
        s->cb.on_end(s->cb.arg, st, msg, len);
    }
    pthread_mutex_unlock(&s->deliver);
}

/* Ends an open call from our side with st; false when it had already ended. */
static bool stream_end_locally(duet_rpc_stream *s, const duet_status *st, bool tell_server)
{
    duet_rpc_client *c = s->client;
    pthread_mutex_lock(&c->lock);
    bool open = duet_id_table_get(&c->calls, s->id) == s;
    int freed = open ? stream_detach_locked(s) : 0;
    pthread_mutex_unlock(&c->lock);
    if (!open) {
        return false;
    }
    if (tell_server) {
        /* the reason travels along, so the server's handler sees DEADLINE_EXCEEDED even when
         * our timer beats the server's */
        duet_rpc_send_frame(s->conn, &c->limits, s->id, DUET__V1__FRAME_KIND__FRAME_KIND_CANCEL,
                            st->code, NULL, NULL, 0, DUET_SEND_ALWAYS, NULL, NULL);
    }
    stream_deliver_end(s, st, NULL, 0);
    for (int i = 0; i < freed; i++) {
        stream_unref(s);
    }
    return true;
}

static void on_stream_deadline(void *arg)
{
    duet_rpc_stream *s = arg;
    duet_status st;
    duet_status_set(&st, DUET_DEADLINE_EXCEEDED, "deadline of %u ms exceeded", s->timeout_ms);
    stream_end_locally(s, &st, true);
    stream_unref(s); /* the timer's */
}

void duet_rpc_stream_cancel(duet_rpc_stream *s)
{
    duet_status st;
    duet_status_set(&st, DUET_CANCELLED, "cancelled by the caller");
    stream_end_locally(s, &st, true);
}

void duet_rpc_stream_release(duet_rpc_stream *s)
{
    if (s) {
        stream_unref(s);
    }
}

/* ---- the connection -------------------------------------------------------------------- */

static void schedule_redial_locked(duet_rpc_client *c);

static void set_error_locked(duet_rpc_client *c, duet_code code, const char *what)
{
    duet_status_set(&c->last_error, code, "%s: %s", c->url, what);
    c->attempt_failed = true;
}

static void client_on_frame(duet_conn *conn, const duet_decoded_frame *frame, void *arg)
{
    duet_rpc_client *c = arg;
    const Duet__V1__Envelope *env = frame->env;
    if (env->protocol_version != DUET_PROTOCOL_VERSION) {
        char text[200];
        snprintf(text, sizeof text,
                 "the server speaks protocol version %u, this client %u; run the same duet "
                 "release on both ends",
                 env->protocol_version, DUET_PROTOCOL_VERSION);
        pthread_mutex_lock(&c->lock);
        set_error_locked(c, DUET_FAILED_PRECONDITION, text);
        pthread_mutex_unlock(&c->lock);
        duet_conn_close(conn);
        return;
    }
    if (env->call_id == 0) {
        pthread_mutex_lock(&c->lock);
        if (env->kind == DUET__V1__FRAME_KIND__FRAME_KIND_END && c->state == CLIENT_HELLO &&
            c->conn == conn) {
            duet_timer_disarm(c->timer, &c->hello_timer);
            c->state = CLIENT_READY;
            c->backoff_ms = 0;
            duet_status_clear(&c->last_error);
            pthread_cond_broadcast(&c->changed);
            duet_log_debug("rpc: connected to %s", c->url);
        } else if (env->kind == DUET__V1__FRAME_KIND__FRAME_KIND_ERROR) {
            duet_code code =
                duet_code_valid((int)env->status_code) ? (duet_code)env->status_code : DUET_UNKNOWN;
            set_error_locked(c, code, env->status_message);
        }
        pthread_mutex_unlock(&c->lock);
        return;
    }

    pthread_mutex_lock(&c->lock);
    duet_rpc_stream *s = duet_id_table_get(&c->calls, env->call_id);
    if (!s || s->conn != conn) {
        pthread_mutex_unlock(&c->lock);
        return; /* a call we already ended (cancel, deadline) */
    }
    if (env->kind == DUET__V1__FRAME_KIND__FRAME_KIND_MESSAGE) {
        atomic_fetch_add(&s->refs, 1);
        pthread_mutex_unlock(&c->lock);
        pthread_mutex_lock(&s->deliver);
        if (!s->ended) {
            s->cb.on_message(s->cb.arg, frame->payload, frame->payload_len);
        }
        pthread_mutex_unlock(&s->deliver);
        stream_unref(s);
        return;
    }
    int freed = stream_detach_locked(s);
    pthread_mutex_unlock(&c->lock);
    duet_status st;
    if (env->kind == DUET__V1__FRAME_KIND__FRAME_KIND_END) {
        duet_status_clear(&st);
        stream_deliver_end(s, &st, frame->payload, frame->payload_len);
    } else {
        duet_code code = DUET_INTERNAL;
        const char *text = env->status_message;
        if (env->kind != DUET__V1__FRAME_KIND__FRAME_KIND_ERROR) {
            text = "the server sent an unexpected frame kind";
        } else if (duet_code_valid((int)env->status_code) && env->status_code != DUET_OK) {
            code = (duet_code)env->status_code;
        } else {
            code = DUET_UNKNOWN;
        }
        duet_status_set(&st, code, "%s", text);
        stream_deliver_end(s, &st, NULL, 0);
    }
    for (int i = 0; i < freed; i++) {
        stream_unref(s);
    }
}

static void collect_stream(uint64_t id, void *value, void *arg)
{
    (void)id;
    duet_rpc_stream ***cursor = arg;
    **cursor = value;
    (*cursor)++;
}

static void client_on_close(duet_conn *conn, int err, bool authenticated, void *arg)
{
    duet_rpc_client *c = arg;
    pthread_mutex_lock(&c->lock);
    bool current = c->conn == conn;
    duet_rpc_stream **open = NULL;
    size_t n = 0;
    if (current) {
        if (c->state == CLIENT_HELLO || !authenticated) {
            if (!c->attempt_failed) {
                set_error_locked(c, DUET_UNAVAILABLE, duet_rpc_nng_error_text(err, c->tls));
            }
        } else {
            char text[200];
            snprintf(text, sizeof text, "connection lost (%s)",
                     duet_rpc_nng_error_text(err, c->tls));
            set_error_locked(c, DUET_UNAVAILABLE, text);
        }
        duet_timer_disarm(c->timer, &c->hello_timer);
        c->conn = NULL;
        c->state = CLIENT_IDLE;
        n = c->calls.count;
        open = n ? calloc(n, sizeof *open) : NULL;
        duet_rpc_stream **cursor = open;
        if (open) {
            duet_id_table_each(&c->calls, collect_stream, &cursor);
            for (size_t i = 0; i < n; i++) {
                atomic_fetch_add(&open[i]->refs, 1);
            }
        }
        if (!c->closing) {
            duet_log_warn("rpc: %s", c->last_error.message);
            schedule_redial_locked(c);
        }
        pthread_cond_broadcast(&c->changed);
    }
    duet_status st = c->last_error;
    pthread_mutex_unlock(&c->lock);

    for (size_t i = 0; open && i < n; i++) {
        stream_end_locally(open[i], &st, false);
        stream_unref(open[i]);
    }
    free(open);
    duet_conn_release(conn); /* the client's reference */
    pthread_mutex_lock(&c->lock);
    c->live_conns--;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
}

static void on_hello_timeout(void *arg)
{
    duet_rpc_client *c = arg;
    pthread_mutex_lock(&c->lock);
    duet_conn *conn = c->state == CLIENT_HELLO ? c->conn : NULL;
    if (conn) {
        set_error_locked(c, DUET_DEADLINE_EXCEEDED,
                         "no answer to hello (is this a duet RPC server? a TLS server that "
                         "rejects us would close the connection)");
        duet_conn_hold(conn);
    }
    pthread_mutex_unlock(&c->lock);
    if (conn) {
        duet_conn_close(conn);
        duet_conn_release(conn);
    }
}

static void on_dial(void *arg)
{
    duet_rpc_client *c = arg;
    int rv = nng_aio_result(c->dial_aio);
    pthread_mutex_lock(&c->lock);
    if (rv != 0) {
        c->state = CLIENT_IDLE;
        if (!c->closing) {
            set_error_locked(c, DUET_UNAVAILABLE, duet_rpc_nng_error_text(rv, c->tls));
            duet_log_debug("rpc: %s", c->last_error.message);
            schedule_redial_locked(c);
        }
        pthread_cond_broadcast(&c->changed);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    nng_stream *stream = nng_aio_get_output(c->dial_aio, 0);
    if (c->closing) {
        c->state = CLIENT_IDLE;
        pthread_cond_broadcast(&c->changed);
        pthread_mutex_unlock(&c->lock);
        nng_stream_free(stream);
        return;
    }
    duet_conn_limits limits;
    duet_rpc_conn_limits(&c->limits, c->tls, &limits);
    duet_conn_callbacks cb = {.on_frame = client_on_frame, .on_close = client_on_close};
    c->attempt_failed = false; /* keep the last error until this attempt says more */
    c->conn = duet_conn_start(stream, &limits, &cb, c);
    if (!c->conn) {
        c->state = CLIENT_IDLE;
        set_error_locked(c, DUET_RESOURCE_EXHAUSTED, "out of memory");
        schedule_redial_locked(c);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    c->live_conns++;
    c->state = CLIENT_HELLO;
    duet_conn *conn = c->conn;
    duet_conn_hold(conn);
    duet_timer_arm(c->timer, &c->hello_timer,
                   duet_now_ns() + c->limits.connect_timeout_ms * 1000000ull, on_hello_timeout, c);
    pthread_mutex_unlock(&c->lock);
    duet_conn_begin(conn);

    Duet__V1__Envelope env = DUET__V1__ENVELOPE__INIT;
    env.kind = DUET__V1__FRAME_KIND__FRAME_KIND_REQUEST;
    env.method = DUET_RPC_HELLO_METHOD;
    duet_frame *frame;
    if (duet_frame_encode(&env, NULL, 0, 0, SIZE_MAX, &frame, NULL) == DUET_OK) {
        duet_conn_send(conn, frame, DUET_SEND_ALWAYS, NULL, NULL);
    }
    duet_conn_release(conn);
}

static void start_dial(void *arg)
{
    duet_rpc_client *c = arg;
    pthread_mutex_lock(&c->lock);
    if (c->closing || c->state != CLIENT_IDLE || c->conn) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    c->state = CLIENT_DIALING;
    pthread_mutex_unlock(&c->lock);
    nng_aio_set_timeout(c->dial_aio, (nng_duration)c->limits.connect_timeout_ms);
    nng_stream_dialer_dial(c->dialer, c->dial_aio);
}

static void schedule_redial_locked(duet_rpc_client *c)
{
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : CLIENT_BACKOFF_MIN_MS;
    if (c->backoff_ms > CLIENT_BACKOFF_MAX_MS) {
        c->backoff_ms = CLIENT_BACKOFF_MAX_MS;
    }
    if (!c->redial.armed) {
        duet_timer_arm(c->timer, &c->redial, duet_now_ns() + c->backoff_ms * 1000000ull, start_dial,
                       c);
    }
}

duet_code duet_rpc_client_new(const char *url, const duet_tls_options *tls,
                              const duet_rpc_limits *limits, duet_rpc_client **out, duet_status *st)
{
    static const duet_tls_options no_tls = {0};
    if (!tls) {
        tls = &no_tls;
    }
    duet_transport_kind kind;
    if (duet_transport_check(url, tls->insecure, &kind, st) != DUET_OK) {
        return st ? st->code : DUET_INVALID_ARGUMENT;
    }
    duet_rpc_client *c = calloc(1, sizeof *c);
    if (!c) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    c->url = strdup(url);
    if (limits) {
        c->limits = *limits;
    } else {
        duet_rpc_limits_default(&c->limits);
    }
    c->tls = kind == DUET_TRANSPORT_TLS;
    c->next_id = 1;
    duet_id_table_init(&c->calls);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->changed, NULL);
    duet_status_set(&c->last_error, DUET_UNAVAILABLE, "%s: not connected yet", url);

    int rv = nng_stream_dialer_alloc(&c->dialer, url);
    duet_code code = DUET_OK;
    if (rv != 0) {
        code =
            duet_status_set(st, DUET_INVALID_ARGUMENT, "cannot dial %s: %s", url, nng_strerror(rv));
    } else if (c->tls) {
        nng_tls_config *cfg;
        code = duet_tls_config_new(false, tls, &cfg, st);
        if (code == DUET_OK) {
            rv = nng_stream_dialer_set_ptr(c->dialer, NNG_OPT_TLS_CONFIG, cfg);
            nng_tls_config_free(cfg);
            if (rv != 0) {
                code = duet_status_set(st, DUET_INTERNAL, "TLS for %s: %s", url, nng_strerror(rv));
            }
        }
    } else {
        duet_log_warn("rpc: INSECURE: connecting to %s without TLS: traffic is neither "
                      "encrypted nor authenticated",
                      url);
    }
    if (code == DUET_OK) {
        nng_stream_dialer_set_bool(c->dialer, NNG_OPT_TCP_NODELAY, true);
        nng_stream_dialer_set_bool(c->dialer, NNG_OPT_TCP_KEEPALIVE, true);
        c->timer = duet_timer_new();
        if (!c->timer || nng_aio_alloc(&c->dial_aio, on_dial, c) != 0) {
            code = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "cannot start the RPC client");
        }
    }
    if (code != DUET_OK) {
        duet_rpc_client_free(c);
        return code;
    }
    start_dial(c);
    *out = c;
    return DUET_OK;
}

duet_code duet_rpc_client_wait_ready(duet_rpc_client *c, uint32_t timeout_ms, duet_status *st)
{
    uint64_t until = duet_now_ns() + (uint64_t)timeout_ms * 1000000u;
    pthread_mutex_lock(&c->lock);
    /* an idle client waiting for its back-off dials now: the caller is waiting */
    if (c->state == CLIENT_IDLE && duet_timer_disarm(c->timer, &c->redial)) {
        duet_timer_arm(c->timer, &c->redial, duet_now_ns(), start_dial, c);
    }
    while (c->state != CLIENT_READY && duet_now_ns() < until) {
        uint64_t left_ms = (until - duet_now_ns()) / 1000000u + 1;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (left_ms < 50 ? left_ms : 50) * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&c->changed, &c->lock, &ts);
    }
    duet_code code = DUET_OK;
    if (c->state != CLIENT_READY) {
        code = duet_status_set(st, c->last_error.code ? c->last_error.code : DUET_UNAVAILABLE, "%s",
                               c->last_error.message);
    }
    pthread_mutex_unlock(&c->lock);
    return code;
}

bool duet_rpc_client_connected(duet_rpc_client *c)
{
    pthread_mutex_lock(&c->lock);
    bool ready = c->state == CLIENT_READY;
    pthread_mutex_unlock(&c->lock);
    return ready;
}

duet_code duet_rpc_call_stream(duet_rpc_client *c, const char *method, const void *req,
                               size_t req_len, uint32_t timeout_ms,
                               const duet_rpc_metadata *metadata, size_t n_metadata,
                               const duet_rpc_stream_callbacks *cb, duet_rpc_stream **out,
                               duet_status *st)
{
    *out = NULL;
    duet_status err;
    duet_rpc_stream *s = calloc(1, sizeof *s);
    if (!s) {
        duet_status_set(&err, DUET_RESOURCE_EXHAUSTED, "out of memory");
        cb->on_end(cb->arg, &err, NULL, 0);
        return duet_status_set(st, err.code, "%s", err.message);
    }
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->deliver, &attr);
    pthread_mutexattr_destroy(&attr);
    s->client = c;
    s->cb = *cb;
    s->timeout_ms = timeout_ms;

    /* Encode before registering, so an over-long request fails cleanly. */
    Duet__V1__Envelope env = DUET__V1__ENVELOPE__INIT;
    Duet__V1__Envelope__MetadataEntry entries[16];
    Duet__V1__Envelope__MetadataEntry *entry_ptrs[16];
    if (n_metadata > 16) {
        n_metadata = 16;
    }
    for (size_t i = 0; i < n_metadata; i++) {
        duet__v1__envelope__metadata_entry__init(&entries[i]);
        entries[i].key = (char *)metadata[i].key;
        entries[i].value = (char *)metadata[i].value;
        entry_ptrs[i] = &entries[i];
    }
    env.n_metadata = n_metadata;
    env.metadata = entry_ptrs;
    env.kind = DUET__V1__FRAME_KIND__FRAME_KIND_REQUEST;
    env.method = (char *)method;
    env.timeout_ms = timeout_ms;

    pthread_mutex_lock(&c->lock);
    duet_code code = DUET_OK;
    if (c->state != CLIENT_READY || !c->conn) {
        err = c->last_error;
        if (err.code == DUET_OK) {
            duet_status_set(&err, DUET_UNAVAILABLE, "%s: not connected", c->url);
        }
        code = err.code;
    } else {
        s->id = c->next_id++;
        env.call_id = s->id;
    }
    duet_frame *frame = NULL;
    if (code == DUET_OK) {
        code = duet_frame_encode(&env, req, req_len, c->limits.compress_threshold_bytes,
                                 c->limits.max_frame_bytes, &frame, &err);
    }
    if (code == DUET_OK && !duet_id_table_put(&c->calls, s->id, s)) {
        free(frame);
        code = duet_status_set(&err, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (code != DUET_OK) {
        pthread_mutex_unlock(&c->lock);
        pthread_mutex_destroy(&s->deliver);
        free(s);
        cb->on_end(cb->arg, &err, NULL, 0);
        return duet_status_set(st, err.code, "%s", err.message);
    }
    s->conn = c->conn;
    duet_conn_hold(s->conn);
    atomic_init(&s->refs, 2); /* the caller's and the table's */
    if (timeout_ms) {
        s->has_timer = true;
        atomic_fetch_add(&s->refs, 1);
        duet_timer_arm(c->timer, &s->timer, duet_now_ns() + (uint64_t)timeout_ms * 1000000u,
                       on_stream_deadline, s);
    }
    duet_conn *conn = s->conn;
    pthread_mutex_unlock(&c->lock);

    duet_status send_st;
    if (duet_conn_send(conn, frame, DUET_SEND_ALWAYS, NULL, &send_st) != DUET_OK) {
        /* the connection closed just now: its on_close ends the call (or we do) */
        stream_end_locally(s, &send_st, false);
    }
    *out = s;
    return DUET_OK;
}

/* ---- blocking unary on top of streams ----------------------------------------------------- */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t done_cv;
    bool done;
    duet_status status;
    uint8_t *resp;
    size_t resp_len;
} unary_wait;

static void unary_on_message(void *arg, const uint8_t *msg, size_t len)
{
    (void)arg;
    (void)msg;
    (void)len;
}

static void unary_on_end(void *arg, const duet_status *st, const uint8_t *msg, size_t len)
{
    unary_wait *w = arg;
    pthread_mutex_lock(&w->lock);
    w->status = *st;
    if (st->code == DUET_OK) {
        w->resp = malloc(len ? len : 1);
        if (w->resp) {
            if (len) {
                memcpy(w->resp, msg, len);
            }
            w->resp_len = len;
        } else {
            duet_status_set(&w->status, DUET_RESOURCE_EXHAUSTED, "out of memory for the answer");
        }
    }
    w->done = true;
    pthread_cond_signal(&w->done_cv);
    pthread_mutex_unlock(&w->lock);
}

duet_code duet_rpc_call_unary(duet_rpc_client *c, const char *method, const void *req,
                              size_t req_len, uint32_t timeout_ms, uint8_t **resp, size_t *resp_len,
                              duet_status *st)
{
    unary_wait w = {.done = false};
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.done_cv, NULL);
    duet_rpc_stream_callbacks cb = {
        .on_message = unary_on_message, .on_end = unary_on_end, .arg = &w};
    duet_rpc_stream *s = NULL;
    duet_rpc_call_stream(c, method, req, req_len, timeout_ms, NULL, 0, &cb, &s, NULL);
    pthread_mutex_lock(&w.lock);
    while (!w.done) {
        pthread_cond_wait(&w.done_cv, &w.lock);
    }
    pthread_mutex_unlock(&w.lock);
    duet_rpc_stream_release(s);
    pthread_cond_destroy(&w.done_cv);
    pthread_mutex_destroy(&w.lock);
    if (w.status.code != DUET_OK) {
        free(w.resp);
        return duet_status_set(st, w.status.code, "%s", w.status.message);
    }
    *resp = w.resp;
    *resp_len = w.resp_len;
    return DUET_OK;
}

void duet_rpc_client_free(duet_rpc_client *c)
{
    if (!c) {
        return;
    }
    pthread_mutex_lock(&c->lock);
    c->closing = true;
    pthread_mutex_unlock(&c->lock);
    if (c->timer) {
        duet_timer_disarm(c->timer, &c->redial);
    }
    if (c->dial_aio) {
        nng_aio_stop(c->dial_aio); /* no dial callback runs after this */
    }
    pthread_mutex_lock(&c->lock);
    if (c->conn) {
        duet_conn_close(c->conn);
    }
    while (c->live_conns > 0) {
        pthread_cond_wait(&c->changed, &c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    /* The timer thread may be inside start_dial or a deadline; freeing it joins it. */
    duet_timer_free(c->timer);
    nng_aio_free(c->dial_aio);
    if (c->dialer) {
        nng_stream_dialer_free(c->dialer);
    }
    duet_id_table_fini(&c->calls);
    pthread_cond_destroy(&c->changed);
    pthread_mutex_destroy(&c->lock);
    free(c->url);
    free(c);
}
