#include "http_server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>

#include "tls.h"

/* How long an ended HTTPS stream waits for the client to close first. NNG's TLS layer
 * finishes a write once the data is in its own buffer, and closing the connection then
 * drops what is still buffered: the answer's last chunks. */
#define LINGER_MS 5000

/* A stream's bytes written but not yet sent: past this the client is taken as gone (it
 * stopped reading), so a stalled reader cannot make the gateway hold an answer's worth of
 * events after events in memory. An answer's events are far smaller. */
#define MAX_UNSENT_BYTES (1u << 20)

struct duet_http_server {
    nng_http_server *server;
    size_t max_body;
    bool tls;
    char url[300];
    /* streams not yet freed (taken over connections the server no longer knows) */
    pthread_mutex_t streams_lock;
    pthread_cond_t streams_gone;
    duet_http_stream *streams;
    unsigned live_streams; /* begun, not yet freed */
    bool stopping;
};

struct duet_http_exchange {
    duet_http_server *srv;
    nng_aio *aio; /* the handler's: finished when the exchange ends */
    nng_http_req *req;
    nng_http_conn *conn;
    char path[1024];
    const char *query;
};

/* A route: NNG handlers carry one data pointer. */
typedef struct {
    duet_http_server *srv;
    duet_http_handler_fn fn;
    void *arg;
} route;

/* ---- server ---- */

static duet_code nng_fail(duet_status *st, const char *what, int rv)
{
    return duet_status_set(st, DUET_INTERNAL, "%s: %s", what, nng_strerror(rv));
}

duet_code duet_http_server_new(const char *addr, const char *cert_file, const char *key_file,
                               size_t max_body_bytes, duet_http_server **out, duet_status *st)
{
    if ((cert_file == NULL) != (key_file == NULL)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "HTTPS needs both a certificate and its key");
    }
    duet_http_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    srv->max_body = max_body_bytes;
    srv->tls = cert_file != NULL;
    snprintf(srv->url, sizeof srv->url, "%s://%s", cert_file ? "https" : "http", addr);
    nng_url *url;
    int rv = nng_url_parse(&url, srv->url);
    if (rv != 0) {
        free(srv);
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "bad HTTP address \"%s\": %s", addr,
                               nng_strerror(rv));
    }
    rv = nng_http_server_hold(&srv->server, url);
    nng_url_free(url);
    if (rv != 0) {
        free(srv);
        return nng_fail(st, "HTTP server", rv);
    }
    if (cert_file) {
        /* separate certificate and key files, as duet-certs writes them (NNG's
         * cert_key_file wants both in one file) */
        char *cert = duet_tls_read_pem("HTTPS certificate", cert_file, st);
        char *key = cert ? duet_tls_read_pem("HTTPS key", key_file, st) : NULL;
        if (!key) {
            free(cert);
            nng_http_server_release(srv->server);
            free(srv);
            return st->code;
        }
        nng_tls_config *tls;
        if ((rv = nng_http_server_get_tls(srv->server, &tls)) == 0) {
            if ((rv = nng_tls_config_auth_mode(tls, NNG_TLS_AUTH_MODE_NONE)) == 0) {
                rv = nng_tls_config_own_cert(tls, cert, key, NULL); /* parsed: copies kept */
            }
            nng_tls_config_free(tls); /* NNG 1.5.2 hands it out with a reference taken */
        }
        explicit_bzero(key, strlen(key));
        free(key);
        free(cert);
        if (rv != 0) {
            nng_http_server_release(srv->server);
            free(srv);
            return duet_status_set(st, DUET_INVALID_ARGUMENT, "HTTPS certificate %s / key %s: %s",
                                   cert_file, key_file, nng_strerror(rv));
        }
    }
    pthread_mutex_init(&srv->streams_lock, NULL);
    pthread_cond_init(&srv->streams_gone, NULL);
    *out = srv;
    return DUET_OK;
}

static void on_request(nng_aio *aio)
{
    nng_http_req *req = nng_aio_get_input(aio, 0);
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    nng_http_conn *conn = nng_aio_get_input(aio, 2);
    route *r = nng_http_handler_get_data(h);
    duet_http_exchange *x = calloc(1, sizeof *x);
    if (!x) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    x->srv = r->srv;
    x->aio = aio;
    x->req = req;
    x->conn = conn;
    snprintf(x->path, sizeof x->path, "%s", nng_http_req_get_uri(req));
    char *q = strchr(x->path, '?');
    x->query = "";
    if (q) {
        *q = '\0';
        x->query = nng_http_req_get_uri(req) + (q - x->path) + 1;
    }
    const char *te = nng_http_req_get_header(req, "Transfer-Encoding");
    if (te && strcmp(te, "identity") != 0) {
        /* NNG would hand us an empty body: refuse rather than act on nothing */
        static const char msg[] = "request bodies need a Content-Length\n";
        duet_http_reply(x, 411, "text/plain", msg, sizeof msg - 1, NULL);
        return;
    }
    r->fn(x, r->arg);
}

static void free_route(void *p)
{
    free(p);
}

duet_code duet_http_server_route(duet_http_server *srv, const char *method, const char *path,
                                 bool subtree, duet_http_handler_fn fn, void *arg, duet_status *st)
{
    route *r = malloc(sizeof *r);
    if (!r) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    *r = (route){srv, fn, arg};
    nng_http_handler *h;
    int rv = nng_http_handler_alloc(&h, path, on_request);
    if (rv != 0) {
        free(r);
        return nng_fail(st, path, rv);
    }
    if ((rv = nng_http_handler_set_data(h, r, free_route)) != 0) {
        free(r);
        nng_http_handler_free(h);
        return nng_fail(st, path, rv);
    }
    if ((rv = nng_http_handler_set_method(h, method)) != 0 ||
        (rv = nng_http_handler_collect_body(h, true, srv->max_body)) != 0 ||
        (subtree && (rv = nng_http_handler_set_tree(h)) != 0) ||
        (rv = nng_http_server_add_handler(srv->server, h)) != 0) {
        nng_http_handler_free(h);
        return nng_fail(st, path, rv);
    }
    return DUET_OK;
}

duet_code duet_http_server_start(duet_http_server *srv, duet_status *st)
{
    int rv = nng_http_server_start(srv->server);
    if (rv != 0) {
        return duet_status_set(st, DUET_UNAVAILABLE, "cannot listen on %s: %s", srv->url,
                               nng_strerror(rv));
    }
    return DUET_OK;
}

int duet_http_server_port(duet_http_server *srv)
{
    nng_sockaddr sa;
    if (nng_http_server_get_addr(srv->server, &sa) != 0) {
        return -1;
    }
    if (sa.s_family == NNG_AF_INET) {
        return ((sa.s_in.sa_port & 0xff) << 8) | (sa.s_in.sa_port >> 8);
    }
    if (sa.s_family == NNG_AF_INET6) {
        return ((sa.s_in6.sa_port & 0xff) << 8) | (sa.s_in6.sa_port >> 8);
    }
    return -1;
}

static void cancel_ended_streams_locked(duet_http_server *srv);

void duet_http_server_free(duet_http_server *srv)
{
    if (!srv) {
        return;
    }
    nng_http_server_stop(srv->server);
    /* ended streams still writing or lingering are cut short; cancelling again each round
     * catches one that was between two operations */
    pthread_mutex_lock(&srv->streams_lock);
    srv->stopping = true;
    while (srv->live_streams > 0) {
        cancel_ended_streams_locked(srv);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000 * 1000;
        if (until.tv_nsec >= 1000 * 1000 * 1000) {
            until.tv_sec++;
            until.tv_nsec -= 1000 * 1000 * 1000;
        }
        pthread_cond_timedwait(&srv->streams_gone, &srv->streams_lock, &until);
    }
    pthread_mutex_unlock(&srv->streams_lock);
    nng_http_server_release(srv->server);
    pthread_cond_destroy(&srv->streams_gone);
    pthread_mutex_destroy(&srv->streams_lock);
    free(srv);
}

/* ---- one request ---- */

const char *duet_http_method(const duet_http_exchange *x)
{
    return nng_http_req_get_method(x->req);
}

const char *duet_http_path(const duet_http_exchange *x)
{
    return x->path;
}

const char *duet_http_query(const duet_http_exchange *x)
{
    return x->query;
}

const char *duet_http_header(const duet_http_exchange *x, const char *name)
{
    return nng_http_req_get_header(x->req, name);
}

void duet_http_body(const duet_http_exchange *x, const uint8_t **body, size_t *len)
{
    void *data = NULL;
    nng_http_req_get_data(x->req, &data, len);
    *body = data;
}

static void add_headers(nng_http_res *res, const char *const *headers)
{
    for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2) {
        nng_http_res_set_header(res, headers[i], headers[i + 1]);
    }
}

void duet_http_reply(duet_http_exchange *x, uint16_t status, const char *content_type,
                     const void *body, size_t len, const char *const *headers)
{
    nng_http_res *res;
    int rv = nng_http_res_alloc(&res);
    if (rv == 0) {
        nng_http_res_set_status(res, status);
        if (content_type) {
            nng_http_res_set_header(res, "Content-Type", content_type);
        }
        add_headers(res, headers);
        /* always data, even empty: NNG adds Content-Length only with it; an empty body is
         * set, not copied, as NNG fails to allocate a copy of zero bytes */
        rv = len ? nng_http_res_copy_data(res, body, len) : nng_http_res_set_data(res, "", 0);
        if (rv != 0) {
            nng_http_res_free(res);
        }
    }
    if (rv == 0) {
        nng_aio_set_output(x->aio, 0, res);
        nng_aio_finish(x->aio, 0);
    } else {
        nng_aio_finish(x->aio, rv);
    }
    free(x);
}

/* ---- streams ---- */

typedef struct chunk {
    struct chunk *next;
    size_t len;
    char data[];
} chunk;

struct duet_http_stream {
    duet_http_server *srv;
    duet_http_stream *prev, *next; /* in srv->streams while it may be cancelled */
    pthread_mutex_t lock;
    nng_http_conn *conn;
    nng_http_req *req; /* ours after the hijack */
    nng_aio *aio;      /* writes, then the linger's reads */
    chunk *head, *tail;
    chunk *sending; /* in flight */
    size_t unsent;  /* bytes queued or in flight */
    bool gone;      /* a write failed, or the client stopped reading */
    bool ended;     /* the owner is done with it */
    bool lingering; /* all is written; waiting for the client to close (only its callback
                     * touches this once set) */
    nng_time linger_until;
    char sink[256]; /* what a lingering client still sends is read and dropped */
};

static chunk *make_chunk(const char *prefix, size_t plen, const void *data, size_t len,
                         const char *suffix, size_t slen)
{
    chunk *c = malloc(sizeof *c + plen + len + slen);
    if (c) {
        memcpy(c->data, prefix, plen);
        if (len) {
            memcpy(c->data + plen, data, len);
        }
        memcpy(c->data + plen + len, suffix, slen);
        c->len = plen + len + slen;
        c->next = NULL;
    }
    return c;
}

static void finalize(duet_http_stream *s)
{
    duet_http_server *srv = s->srv;
    pthread_mutex_lock(&srv->streams_lock);
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        srv->streams = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    pthread_mutex_unlock(&srv->streams_lock);

    nng_http_conn_close(s->conn);
    nng_http_req_free(s->req);
    nng_aio_reap(s->aio); /* we may be in its callback */
    pthread_mutex_destroy(&s->lock);
    free(s);

    pthread_mutex_lock(&srv->streams_lock);
    srv->live_streams--;
    pthread_cond_broadcast(&srv->streams_gone);
    pthread_mutex_unlock(&srv->streams_lock);
}

/* Cuts short what ended streams still do. With srv->streams_lock held. */
static void cancel_ended_streams_locked(duet_http_server *srv)
{
    for (duet_http_stream *s = srv->streams; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        bool ended = s->ended;
        pthread_mutex_unlock(&s->lock);
        if (ended) {
            nng_aio_cancel(s->aio);
        }
    }
}

static bool server_stopping(duet_http_server *srv)
{
    pthread_mutex_lock(&srv->streams_lock);
    bool stopping = srv->stopping;
    pthread_mutex_unlock(&srv->streams_lock);
    return stopping;
}

/* Reads (and drops) until the client closes, the linger's time is up or the server
 * stops; then the stream is finalized by on_written. */
static void linger(duet_http_stream *s)
{
    nng_time now = nng_clock();
    if (now >= s->linger_until || server_stopping(s->srv)) {
        finalize(s);
        return;
    }
    nng_iov iov = {.iov_buf = s->sink, .iov_len = sizeof s->sink};
    nng_aio_set_iov(s->aio, 1, &iov);
    nng_aio_set_timeout(s->aio, (nng_duration)(s->linger_until - now));
    nng_http_conn_read(s->conn, s->aio);
}

/* Takes the next chunk to send, or NULL (then nothing is in flight). Locked. */
static chunk *next_locked(duet_http_stream *s)
{
    chunk *c = s->gone ? NULL : s->head;
    if (c) {
        s->head = c->next;
        if (!s->head) {
            s->tail = NULL;
        }
    }
    s->sending = c;
    return c;
}

/* Frees what is queued and not yet in flight. Locked. */
static void drop_queue_locked(duet_http_stream *s)
{
    while (s->head) {
        chunk *c = s->head;
        s->head = c->next;
        s->unsent -= c->len;
        free(c);
    }
    s->tail = NULL;
}

static void send_chunk(duet_http_stream *s, chunk *c)
{
    nng_iov iov = {.iov_buf = c->data, .iov_len = c->len};
    nng_aio_set_iov(s->aio, 1, &iov);
    nng_http_conn_write_all(s->conn, s->aio);
}

static void on_written(void *arg)
{
    duet_http_stream *s = arg;
    int rv = nng_aio_result(s->aio);
    if (s->lingering) {
        if (rv == 0) {
            linger(s); /* the client sent something: not closed yet */
        } else {
            finalize(s); /* closed, reset, timed out or cancelled */
        }
        return;
    }
    pthread_mutex_lock(&s->lock);
    s->unsent -= s->sending->len;
    free(s->sending);
    if (rv != 0) {
        s->gone = true;
        drop_queue_locked(s);
    }
    chunk *c = next_locked(s);
    bool done = !c && s->ended;
    bool delivered = done && !s->gone;
    pthread_mutex_unlock(&s->lock);
    if (c) {
        send_chunk(s, c);
    } else if (delivered && s->srv->tls) {
        s->lingering = true;
        s->linger_until = nng_clock() + LINGER_MS;
        linger(s);
    } else if (done) {
        finalize(s);
    }
}

/* Queues c. Locked. */
static void append_locked(duet_http_stream *s, chunk *c)
{
    if (s->tail) {
        s->tail->next = c;
    } else {
        s->head = c;
    }
    s->tail = c;
    s->unsent += c->len;
}

/* Queues c and starts sending if idle. */
static void enqueue(duet_http_stream *s, chunk *c)
{
    pthread_mutex_lock(&s->lock);
    append_locked(s, c);
    chunk *go = s->sending ? NULL : next_locked(s);
    pthread_mutex_unlock(&s->lock);
    if (go) {
        send_chunk(s, go);
    }
}

static const char *reason(uint16_t status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

duet_http_stream *duet_http_stream_begin(duet_http_exchange *x, uint16_t status,
                                         const char *content_type, const char *const *headers)
{
    duet_http_stream *s = calloc(1, sizeof *s);
    char head[2048];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nCache-Control: no-cache\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n",
                     status, reason(status), content_type);
    for (size_t i = 0; headers && headers[i] && headers[i + 1] && n > 0 && (size_t)n < sizeof head;
         i += 2) {
        n += snprintf(head + n, sizeof head - (size_t)n, "%s: %s\r\n", headers[i], headers[i + 1]);
    }
    chunk *c = NULL;
    if (s && n > 0 && (size_t)n + 2 < sizeof head) {
        c = make_chunk(head, (size_t)n, NULL, 0, "\r\n", 2);
    }
    if (!s || !c || nng_aio_alloc(&s->aio, on_written, s) != 0) {
        free(c);
        free(s);
        static const char msg[] = "out of memory\n";
        duet_http_reply(x, 500, "text/plain", msg, sizeof msg - 1, NULL);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->srv = x->srv;
    pthread_mutex_lock(&s->srv->streams_lock);
    s->next = s->srv->streams;
    if (s->next) {
        s->next->prev = s;
    }
    s->srv->streams = s;
    s->srv->live_streams++;
    pthread_mutex_unlock(&s->srv->streams_lock);
    s->conn = x->conn;
    s->req = x->req;
    nng_http_hijack(x->conn); /* the server forgets the connection and the request */
    nng_aio_set_output(x->aio, 0, NULL);
    nng_aio_finish(x->aio, 0);
    free(x);
    enqueue(s, c);
    return s;
}

duet_code duet_http_stream_write(duet_http_stream *s, const void *data, size_t len)
{
    if (len == 0) {
        return DUET_OK; /* an empty chunk would end the stream */
    }
    char size[24];
    int n = snprintf(size, sizeof size, "%zx\r\n", len);
    chunk *c = make_chunk(size, (size_t)n, data, len, "\r\n", 2);
    if (!c) {
        return DUET_RESOURCE_EXHAUSTED;
    }
    pthread_mutex_lock(&s->lock);
    bool stalled = !s->gone && s->unsent + c->len > MAX_UNSENT_BYTES;
    if (stalled) {
        s->gone = true; /* the client stopped reading */
        drop_queue_locked(s);
    }
    if (s->gone) {
        pthread_mutex_unlock(&s->lock);
        free(c);
        if (stalled) {
            nng_aio_cancel(s->aio); /* the write in flight may never finish */
        }
        return DUET_UNAVAILABLE;
    }
    append_locked(s, c);
    chunk *go = s->sending ? NULL : next_locked(s);
    pthread_mutex_unlock(&s->lock);
    if (go) {
        send_chunk(s, go);
    }
    return DUET_OK;
}

bool duet_http_stream_gone(duet_http_stream *s)
{
    pthread_mutex_lock(&s->lock);
    bool gone = s->gone;
    pthread_mutex_unlock(&s->lock);
    return gone;
}

void duet_http_stream_end(duet_http_stream *s)
{
    chunk *last = make_chunk("0\r\n\r\n", 5, NULL, 0, "", 0);
    pthread_mutex_lock(&s->lock);
    s->ended = true;
    bool idle = !s->sending;
    if (last && !s->gone) {
        append_locked(s, last);
        last = NULL;
    }
    chunk *go = idle ? next_locked(s) : NULL;
    pthread_mutex_unlock(&s->lock);
    free(last);
    if (go) {
        send_chunk(s, go);
    } else if (idle) {
        finalize(s);
    }
}
