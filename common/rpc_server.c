#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "id_table.h"
#include "log.h"
#include "rpc_internal.h"
#include "timer.h"

typedef struct {
    char *name;
    duet_rpc_handler handler;
    void *arg;
} server_method;

typedef struct server_conn server_conn;

struct duet_rpc_server {
    duet_rpc_limits limits;
    server_method *methods;
    size_t n_methods;
    nng_stream_listener *listener;
    nng_aio *accept_aio;
    bool tls;
    bool listening;
    int port;
    duet_timer *timer;

    pthread_mutex_t lock; /* connections, their call tables and call states */
    pthread_cond_t drained;
    server_conn *conns;
    size_t live_conns; /* server_conn objects not yet freed */
    bool closing;

    atomic_uint_fast64_t accepted, rejected, calls_started, calls_open, bad_frames;
};

struct server_conn {
    duet_rpc_server *srv;
    duet_conn *conn;
    duet_id_table calls;
    server_conn *prev, *next;
    int refs; /* 1 while the connection is open + 1 per call; under srv->lock */
    bool closed;
};

typedef enum { CALL_ACTIVE, CALL_CANCELLED, CALL_FINISHED } call_state;

struct duet_rpc_call {
    atomic_int refs; /* the handler's, the call table's, the armed timer's */
    server_conn *sc;
    uint64_t id;
    const char *method;
    char **metadata; /* key, value, key, value, ... */
    size_t n_metadata;
    uint64_t deadline_ns; /* 0: none */
    uint64_t timeout_ms;
    duet_timer_entry timer;
    call_state state;
    duet_code cancel_reason;
    volatile bool abandon; /* tells a sender blocked on a full queue to give up */
    duet_rpc_cancel_fn cancel_fn;
    void *cancel_arg;
};

static void server_conn_unref_locked(server_conn *sc)
{
    if (--sc->refs > 0) {
        return;
    }
    duet_rpc_server *srv = sc->srv;
    duet_conn_release(sc->conn);
    duet_id_table_fini(&sc->calls);
    free(sc);
    srv->live_conns--;
    pthread_cond_broadcast(&srv->drained);
}

static void call_unref(duet_rpc_call *call)
{
    if (atomic_fetch_sub(&call->refs, 1) != 1) {
        return;
    }
    duet_rpc_server *srv = call->sc->srv;
    pthread_mutex_lock(&srv->lock);
    server_conn_unref_locked(call->sc);
    pthread_mutex_unlock(&srv->lock);
    for (size_t i = 0; i < call->n_metadata * 2; i++) {
        free(call->metadata[i]);
    }
    free(call->metadata);
    free(call);
    atomic_fetch_sub(&srv->calls_open, 1);
}

/* Moves an active call out of its table and timer; returns how many references that freed.
 * Under srv->lock. */
static int call_detach_locked(duet_rpc_call *call)
{
    int freed = 0;
    if (duet_id_table_remove(&call->sc->calls, call->id)) {
        freed++;
    }
    if (call->deadline_ns && duet_timer_disarm(call->sc->srv->timer, &call->timer)) {
        freed++;
    }
    return freed;
}

/* Ends an active call from the server's side: tells the handler through its cancel
 * callback. Takes srv->lock itself. */
static void call_cancel(duet_rpc_call *call, duet_code why)
{
    duet_rpc_server *srv = call->sc->srv;
    pthread_mutex_lock(&srv->lock);
    if (call->state != CALL_ACTIVE) {
        pthread_mutex_unlock(&srv->lock);
        return;
    }
    call->state = CALL_CANCELLED;
    call->cancel_reason = why;
    call->abandon = true;
    int freed = call_detach_locked(call);
    duet_rpc_cancel_fn fn = call->cancel_fn;
    void *arg = call->cancel_arg;
    atomic_fetch_add(&call->refs, 1); /* keep it while the callback runs */
    pthread_mutex_unlock(&srv->lock);

    if (why == DUET_DEADLINE_EXCEEDED) {
        char text[96];
        snprintf(text, sizeof text, "deadline of %llu ms exceeded",
                 (unsigned long long)call->timeout_ms);
        duet_rpc_send_frame(call->sc->conn, &srv->limits, call->id,
                            DUET__V1__FRAME_KIND__FRAME_KIND_ERROR, why, text, NULL, 0,
                            DUET_SEND_ALWAYS, NULL, NULL);
    }
    if (fn) {
        fn(call, why, arg);
    }
    for (int i = 0; i < freed; i++) {
        call_unref(call);
    }
    call_unref(call);
}

static void on_call_deadline(void *arg)
{
    duet_rpc_call *call = arg;
    call_cancel(call, DUET_DEADLINE_EXCEEDED);
    call_unref(call); /* the timer's */
}

/* ---- the call API handlers use -------------------------------------------------------- */

const char *duet_rpc_call_method(const duet_rpc_call *call)
{
    return call->method;
}

const char *duet_rpc_call_peer(const duet_rpc_call *call)
{
    return duet_conn_peer(call->sc->conn);
}

const char *duet_rpc_call_metadata(const duet_rpc_call *call, const char *key)
{
    for (size_t i = 0; i < call->n_metadata; i++) {
        if (strcmp(call->metadata[2 * i], key) == 0) {
            return call->metadata[2 * i + 1];
        }
    }
    return NULL;
}

int64_t duet_rpc_call_remaining_ms(const duet_rpc_call *call)
{
    if (!call->deadline_ns) {
        return -1;
    }
    uint64_t now = duet_now_ns();
    return now >= call->deadline_ns ? 0 : (int64_t)((call->deadline_ns - now) / 1000000u);
}

void duet_rpc_call_on_cancel(duet_rpc_call *call, duet_rpc_cancel_fn fn, void *arg)
{
    duet_rpc_server *srv = call->sc->srv;
    pthread_mutex_lock(&srv->lock);
    call->cancel_fn = fn;
    call->cancel_arg = arg;
    bool already = call->state == CALL_CANCELLED;
    duet_code why = call->cancel_reason;
    pthread_mutex_unlock(&srv->lock);
    if (already && fn) {
        fn(call, why, arg);
    }
}

bool duet_rpc_call_cancelled(const duet_rpc_call *call)
{
    return call->abandon;
}

static duet_code call_over_status(const duet_rpc_call *call, duet_status *st)
{
    switch (call->cancel_reason) {
    case DUET_DEADLINE_EXCEEDED:
        return duet_status_set(st, DUET_DEADLINE_EXCEEDED, "the call's deadline passed");
    case DUET_UNAVAILABLE:
        return duet_status_set(st, DUET_UNAVAILABLE, "the client's connection was lost");
    default:
        return duet_status_set(st, DUET_CANCELLED, "the client cancelled the call");
    }
}

duet_code duet_rpc_call_send(duet_rpc_call *call, const void *msg, size_t len, bool wait,
                             duet_status *st)
{
    duet_rpc_server *srv = call->sc->srv;
    pthread_mutex_lock(&srv->lock);
    if (call->state != CALL_ACTIVE) {
        duet_code code = call_over_status(call, st);
        pthread_mutex_unlock(&srv->lock);
        return code;
    }
    pthread_mutex_unlock(&srv->lock);
    duet_code rc = duet_rpc_send_frame(
        call->sc->conn, &srv->limits, call->id, DUET__V1__FRAME_KIND__FRAME_KIND_MESSAGE, DUET_OK,
        NULL, msg, len, wait ? DUET_SEND_WAIT : DUET_SEND_TRY, &call->abandon, st);
    if (rc != DUET_OK && call->abandon) {
        return call_over_status(call, st);
    }
    return rc;
}

static void call_end(duet_rpc_call *call, duet_code code, const char *message, const void *msg,
                     size_t len)
{
    duet_rpc_server *srv = call->sc->srv;
    pthread_mutex_lock(&srv->lock);
    bool active = call->state == CALL_ACTIVE;
    call->state = CALL_FINISHED;
    call->abandon = true;
    int freed = active ? call_detach_locked(call) : 0;
    pthread_mutex_unlock(&srv->lock);
    if (active) {
        duet_status st;
        Duet__V1__FrameKind kind = code == DUET_OK ? DUET__V1__FRAME_KIND__FRAME_KIND_END
                                                   : DUET__V1__FRAME_KIND__FRAME_KIND_ERROR;
        if (duet_rpc_send_frame(call->sc->conn, &srv->limits, call->id, kind, code, message, msg,
                                len, DUET_SEND_ALWAYS, NULL, &st) == DUET_RESOURCE_EXHAUSTED) {
            /* the answer is over the frame cap: the caller still gets a clear end */
            duet_rpc_send_frame(call->sc->conn, &srv->limits, call->id,
                                DUET__V1__FRAME_KIND__FRAME_KIND_ERROR, DUET_RESOURCE_EXHAUSTED,
                                st.message, NULL, 0, DUET_SEND_ALWAYS, NULL, NULL);
        }
    }
    for (int i = 0; i < freed; i++) {
        call_unref(call);
    }
    call_unref(call); /* the handler's */
}

void duet_rpc_call_finish(duet_rpc_call *call, const void *msg, size_t len)
{
    call_end(call, DUET_OK, NULL, msg, len);
}

void duet_rpc_call_fail(duet_rpc_call *call, duet_code code, const char *fmt, ...)
{
    char message[DUET_STATUS_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    call_end(call, code == DUET_OK ? DUET_UNKNOWN : code, message, NULL, 0);
}

/* ---- frames from clients --------------------------------------------------------------- */

static void reply_error(server_conn *sc, uint64_t id, duet_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void reply_error(server_conn *sc, uint64_t id, duet_code code, const char *fmt, ...)
{
    char message[DUET_STATUS_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    duet_rpc_send_frame(sc->conn, &sc->srv->limits, id, DUET__V1__FRAME_KIND__FRAME_KIND_ERROR,
                        code, message, NULL, 0, DUET_SEND_ALWAYS, NULL, NULL);
}

static const server_method *find_method(const duet_rpc_server *srv, const char *name)
{
    for (size_t i = 0; i < srv->n_methods; i++) {
        if (strcmp(srv->methods[i].name, name) == 0) {
            return &srv->methods[i];
        }
    }
    return NULL;
}

static duet_rpc_call *call_new(server_conn *sc, const Duet__V1__Envelope *env,
                               const server_method *m)
{
    duet_rpc_call *call = calloc(1, sizeof *call);
    if (!call) {
        return NULL;
    }
    call->sc = sc;
    call->id = env->call_id;
    call->method = m->name;
    call->timeout_ms = env->timeout_ms;
    if (env->n_metadata) {
        call->metadata = calloc(env->n_metadata * 2, sizeof *call->metadata);
        if (!call->metadata) {
            free(call);
            return NULL;
        }
        call->n_metadata = env->n_metadata;
        for (size_t i = 0; i < env->n_metadata; i++) {
            call->metadata[2 * i] = strdup(env->metadata[i]->key);
            call->metadata[2 * i + 1] = strdup(env->metadata[i]->value);
        }
    }
    return call;
}

static void start_call(server_conn *sc, const duet_decoded_frame *frame)
{
    duet_rpc_server *srv = sc->srv;
    const Duet__V1__Envelope *env = frame->env;
    if (env->call_id == 0) {
        if (strcmp(env->method, DUET_RPC_HELLO_METHOD) == 0) {
            duet_rpc_send_frame(sc->conn, &srv->limits, 0, DUET__V1__FRAME_KIND__FRAME_KIND_END,
                                DUET_OK, NULL, NULL, 0, DUET_SEND_ALWAYS, NULL, NULL);
        } else {
            atomic_fetch_add(&srv->bad_frames, 1);
            reply_error(sc, 0, DUET_INVALID_ARGUMENT, "a request needs a call id other than 0");
        }
        return;
    }
    const server_method *m = find_method(srv, env->method);
    if (!m) {
        atomic_fetch_add(&srv->bad_frames, 1);
        reply_error(sc, env->call_id, DUET_UNIMPLEMENTED, "unknown method \"%.200s\"", env->method);
        return;
    }
    duet_rpc_call *call = call_new(sc, env, m);
    if (!call) {
        reply_error(sc, env->call_id, DUET_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }

    pthread_mutex_lock(&srv->lock);
    const char *refusal = NULL;
    duet_code refusal_code = DUET_OK;
    if (srv->closing || sc->closed) {
        refusal_code = DUET_UNAVAILABLE;
        refusal = "the server is shutting down";
    } else if (sc->calls.count >= srv->limits.max_calls_per_connection) {
        refusal_code = DUET_RESOURCE_EXHAUSTED;
        refusal = "too many concurrent calls on this connection";
    } else if (!duet_id_table_put(&sc->calls, call->id, call)) {
        refusal_code = DUET_INVALID_ARGUMENT;
        refusal = "call id is already in use on this connection";
    }
    if (refusal) {
        pthread_mutex_unlock(&srv->lock);
        for (size_t i = 0; i < call->n_metadata * 2; i++) {
            free(call->metadata[i]);
        }
        free(call->metadata);
        free(call);
        if (refusal_code == DUET_INVALID_ARGUMENT) {
            atomic_fetch_add(&srv->bad_frames, 1);
        }
        reply_error(sc, env->call_id, refusal_code, "%s (limit %u)", refusal,
                    srv->limits.max_calls_per_connection);
        return;
    }
    sc->refs++;
    call->state = CALL_ACTIVE;
    atomic_init(&call->refs, 2); /* the handler's and the table's */
    if (env->timeout_ms) {
        atomic_fetch_add(&call->refs, 1);
        call->deadline_ns = duet_now_ns() + env->timeout_ms * 1000000u;
        duet_timer_arm(srv->timer, &call->timer, call->deadline_ns, on_call_deadline, call);
    }
    pthread_mutex_unlock(&srv->lock);
    atomic_fetch_add(&srv->calls_started, 1);
    atomic_fetch_add(&srv->calls_open, 1);
    m->handler(call, frame->payload, frame->payload_len, m->arg);
}

static void server_on_frame(duet_conn *conn, const duet_decoded_frame *frame, void *arg)
{
    server_conn *sc = arg;
    duet_rpc_server *srv = sc->srv;
    const Duet__V1__Envelope *env = frame->env;
    if (env->protocol_version != DUET_PROTOCOL_VERSION) {
        char text[200];
        snprintf(text, sizeof text,
                 "protocol version %u is not supported: this server speaks version %u; run "
                 "the same duet release on both ends",
                 env->protocol_version, DUET_PROTOCOL_VERSION);
        atomic_fetch_add(&srv->bad_frames, 1);
        duet_log_warn("rpc: %s refused: %s", duet_conn_peer(conn), text);
        duet_conn_fail(conn, DUET_FAILED_PRECONDITION, text);
        return;
    }
    switch (env->kind) {
    case DUET__V1__FRAME_KIND__FRAME_KIND_REQUEST:
        start_call(sc, frame);
        break;
    case DUET__V1__FRAME_KIND__FRAME_KIND_CANCEL: {
        pthread_mutex_lock(&srv->lock);
        duet_rpc_call *call = duet_id_table_get(&sc->calls, env->call_id);
        if (call) {
            atomic_fetch_add(&call->refs, 1);
        }
        pthread_mutex_unlock(&srv->lock);
        if (call) { /* an unknown id is a call that just ended: nothing to do */
            call_cancel(call, env->status_code == DUET_DEADLINE_EXCEEDED ? DUET_DEADLINE_EXCEEDED
                                                                         : DUET_CANCELLED);
            call_unref(call);
        }
        break;
    }
    default:
        atomic_fetch_add(&srv->bad_frames, 1);
        reply_error(sc, env->call_id, DUET_INVALID_ARGUMENT,
                    "unexpected frame kind %d from a client", (int)env->kind);
        break;
    }
}

static void server_on_bad_frame(duet_conn *conn, const char *why, void *arg)
{
    server_conn *sc = arg;
    atomic_fetch_add(&sc->srv->bad_frames, 1);
    duet_log_debug("rpc: bad frame from %s: %s", duet_conn_peer(conn), why);
}

static void collect_call(uint64_t id, void *value, void *arg)
{
    (void)id;
    duet_rpc_call ***cursor = arg;
    **cursor = value;
    (*cursor)++;
}

static void server_on_close(duet_conn *conn, int err, bool authenticated, void *arg)
{
    server_conn *sc = arg;
    duet_rpc_server *srv = sc->srv;
    if (!authenticated) {
        atomic_fetch_add(&srv->rejected, 1);
        duet_log_warn("rpc: rejected TLS peer %s: %s", duet_conn_peer(conn),
                      duet_rpc_nng_error_text(err, true));
    } else {
        duet_log_debug("rpc: %s disconnected (%s)", duet_conn_peer(conn), nng_strerror(err));
    }

    pthread_mutex_lock(&srv->lock);
    sc->closed = true;
    size_t n = sc->calls.count;
    duet_rpc_call **open = n ? calloc(n, sizeof *open) : NULL;
    duet_rpc_call **cursor = open;
    if (open) {
        duet_id_table_each(&sc->calls, collect_call, &cursor);
        for (size_t i = 0; i < n; i++) {
            atomic_fetch_add(&open[i]->refs, 1);
        }
    }
    if (sc->prev) {
        sc->prev->next = sc->next;
    } else {
        srv->conns = sc->next;
    }
    if (sc->next) {
        sc->next->prev = sc->prev;
    }
    sc->prev = sc->next = NULL;
    pthread_mutex_unlock(&srv->lock);

    for (size_t i = 0; open && i < n; i++) {
        call_cancel(open[i], DUET_UNAVAILABLE);
        call_unref(open[i]);
    }
    free(open);
    pthread_mutex_lock(&srv->lock);
    server_conn_unref_locked(sc);
    pthread_mutex_unlock(&srv->lock);
}

/* ---- accepting -------------------------------------------------------------------------- */

static void on_accept(void *arg)
{
    duet_rpc_server *srv = arg;
    int rv = nng_aio_result(srv->accept_aio);
    pthread_mutex_lock(&srv->lock);
    bool closing = srv->closing;
    pthread_mutex_unlock(&srv->lock);
    if (rv != 0) {
        if (closing || rv == NNG_ECLOSED) {
            return;
        }
        duet_log_warn("rpc: accept failed: %s", nng_strerror(rv));
        nng_stream_listener_accept(srv->listener, srv->accept_aio);
        return;
    }
    nng_stream *stream = nng_aio_get_output(srv->accept_aio, 0);
    if (closing) {
        nng_stream_free(stream);
        return;
    }
    server_conn *sc = calloc(1, sizeof *sc);
    if (sc) {
        sc->srv = srv;
        sc->refs = 1;
        duet_id_table_init(&sc->calls);
        duet_conn_limits limits;
        duet_rpc_conn_limits(&srv->limits, srv->tls, &limits);
        duet_conn_callbacks cb = {.on_frame = server_on_frame,
                                  .on_bad_frame = server_on_bad_frame,
                                  .on_close = server_on_close};
        pthread_mutex_lock(&srv->lock);
        /* in the list before the first frame can arrive */
        srv->live_conns++;
        sc->next = srv->conns;
        if (srv->conns) {
            srv->conns->prev = sc;
        }
        srv->conns = sc;
        duet_conn *conn = duet_conn_start(stream, &limits, &cb, sc);
        sc->conn = conn;
        if (!conn) {
            srv->conns = sc->next;
            if (sc->next) {
                sc->next->prev = NULL;
            }
            srv->live_conns--;
            free(sc);
        }
        pthread_mutex_unlock(&srv->lock);
        if (conn) {
            duet_conn_begin(conn);
        }
        atomic_fetch_add(&srv->accepted, 1);
    } else {
        nng_stream_free(stream);
    }
    nng_stream_listener_accept(srv->listener, srv->accept_aio);
}

duet_code duet_rpc_server_new(const duet_rpc_limits *limits, duet_rpc_server **out, duet_status *st)
{
    duet_rpc_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (limits) {
        srv->limits = *limits;
    } else {
        duet_rpc_limits_default(&srv->limits);
    }
    srv->port = -1;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->drained, NULL);
    srv->timer = duet_timer_new();
    if (!srv->timer || nng_aio_alloc(&srv->accept_aio, on_accept, srv) != 0) {
        duet_rpc_server_free(srv);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "cannot start the RPC server");
    }
    *out = srv;
    return DUET_OK;
}

duet_code duet_rpc_server_register(duet_rpc_server *srv, const char *method,
                                   duet_rpc_handler handler, void *arg, duet_status *st)
{
    if (srv->listening) {
        return duet_status_set(st, DUET_FAILED_PRECONDITION,
                               "register %s before the server listens", method);
    }
    if (find_method(srv, method)) {
        return duet_status_set(st, DUET_ALREADY_EXISTS, "method %s is registered twice", method);
    }
    server_method *grown = realloc(srv->methods, (srv->n_methods + 1) * sizeof *grown);
    if (!grown) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    srv->methods = grown;
    srv->methods[srv->n_methods] =
        (server_method){.name = strdup(method), .handler = handler, .arg = arg};
    srv->n_methods++;
    return DUET_OK;
}

duet_code duet_rpc_server_listen(duet_rpc_server *srv, const char *url, const duet_tls_options *tls,
                                 duet_status *st)
{
    static const duet_tls_options no_tls = {0};
    if (!tls) {
        tls = &no_tls;
    }
    if (srv->listening) {
        return duet_status_set(st, DUET_FAILED_PRECONDITION, "the server already listens");
    }
    duet_transport_kind kind;
    if (duet_transport_check(url, tls->insecure, &kind, st) != DUET_OK) {
        return st ? st->code : DUET_INVALID_ARGUMENT;
    }
    nng_stream_listener *listener;
    int rv = nng_stream_listener_alloc(&listener, url);
    if (rv != 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "cannot listen on %s: %s", url,
                               nng_strerror(rv));
    }
    bool use_tls = kind == DUET_TRANSPORT_TLS;
    duet_code code = DUET_OK;
    if (use_tls) {
        nng_tls_config *cfg;
        code = duet_tls_config_new(true, tls, &cfg, st);
        if (code == DUET_OK) {
            rv = nng_stream_listener_set_ptr(listener, NNG_OPT_TLS_CONFIG, cfg);
            nng_tls_config_free(cfg); /* the listener holds its own reference */
            if (rv != 0) {
                code = duet_status_set(st, DUET_INTERNAL, "TLS on %s: %s", url, nng_strerror(rv));
            }
        }
    }
    if (code == DUET_OK) {
        nng_stream_listener_set_bool(listener, NNG_OPT_TCP_NODELAY, true);
        nng_stream_listener_set_bool(listener, NNG_OPT_TCP_KEEPALIVE, true);
        if ((rv = nng_stream_listener_listen(listener)) != 0) {
            code = duet_status_set(st, DUET_UNAVAILABLE, "cannot listen on %s: %s", url,
                                   nng_strerror(rv));
        }
    }
    if (code != DUET_OK) {
        nng_stream_listener_free(listener);
        return code;
    }
    if (!use_tls) {
        duet_log_warn("rpc: INSECURE: listening on %s without TLS: anyone who can reach it "
                      "can call this server and read its traffic",
                      url);
    }
    int port = -1;
    if (nng_stream_listener_get_int(listener, NNG_OPT_TCP_BOUND_PORT, &port) == 0) {
        srv->port = port;
    }
    srv->listener = listener;
    srv->tls = use_tls;
    srv->listening = true;
    nng_stream_listener_accept(srv->listener, srv->accept_aio);
    return DUET_OK;
}

int duet_rpc_server_port(duet_rpc_server *srv)
{
    return srv->port;
}

void duet_rpc_server_stats_get(duet_rpc_server *srv, duet_rpc_server_stats *out)
{
    out->connections_accepted = atomic_load(&srv->accepted);
    out->handshakes_rejected = atomic_load(&srv->rejected);
    out->calls_started = atomic_load(&srv->calls_started);
    out->calls_open = atomic_load(&srv->calls_open);
    out->bad_frames = atomic_load(&srv->bad_frames);
    pthread_mutex_lock(&srv->lock);
    out->connections_open = srv->live_conns;
    pthread_mutex_unlock(&srv->lock);
}

void duet_rpc_server_free(duet_rpc_server *srv)
{
    if (!srv) {
        return;
    }
    pthread_mutex_lock(&srv->lock);
    srv->closing = true;
    pthread_mutex_unlock(&srv->lock);
    if (srv->listener) {
        nng_stream_listener_close(srv->listener);
    }
    if (srv->accept_aio) {
        nng_aio_stop(srv->accept_aio);
    }
    pthread_mutex_lock(&srv->lock);
    for (server_conn *sc = srv->conns; sc; sc = sc->next) {
        duet_conn_close(sc->conn);
    }
    /* every connection goes once its close is seen and its handlers ended their calls */
    while (srv->live_conns > 0) {
        pthread_cond_wait(&srv->drained, &srv->lock);
    }
    pthread_mutex_unlock(&srv->lock);
    duet_timer_free(srv->timer);
    nng_aio_free(srv->accept_aio);
    nng_stream_listener_free(srv->listener);
    for (size_t i = 0; i < srv->n_methods; i++) {
        free(srv->methods[i].name);
    }
    free(srv->methods);
    pthread_cond_destroy(&srv->drained);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}
