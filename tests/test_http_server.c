/* The gateway's HTTP layer over real sockets: routes and whole replies (with
 * Content-Length), 404 for unknown paths, a refused chunked request body, and streamed
 * replies that reach the client chunk by chunk as they are written (not buffered to the
 * end), with correct chunked framing; a client that hangs up makes later writes fail.
 * Over HTTPS (a duet-certs certificate): streams arrive whole, up to their last chunk, and
 * stopping the server does not wait for a client that keeps its connection open. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "http_server.h"
#include "support.h"
#include "timer.h"

static duet_http_server *srv;
static int port;

static void hello(duet_http_exchange *x, void *arg)
{
    (void)arg;
    char body[256];
    int n = snprintf(body, sizeof body, "hello %s?%s", duet_http_path(x), duet_http_query(x));
    const char *headers[] = {"X-Test", "yes", NULL};
    duet_http_reply(x, 200, "text/plain", body, (size_t)n, headers);
}

static void echo(duet_http_exchange *x, void *arg)
{
    (void)arg;
    const uint8_t *body;
    size_t len;
    duet_http_body(x, &body, &len);
    const char *auth = duet_http_header(x, "Authorization");
    if (!auth || strcmp(auth, "Bearer k1") != 0) {
        duet_http_reply(x, 401, "text/plain", "no", 2, NULL);
        return;
    }
    duet_http_reply(x, 200, "application/octet-stream", body, len, NULL);
}

/* Streams: five events 100 ms apart from a thread of its own. */
typedef struct {
    duet_http_stream *s;
    uint64_t written_ns[5];
    duet_code rc[5];
    duet_code last_rc;
} streamer;

static streamer the_streamer;

static void *stream_main(void *arg)
{
    streamer *t = arg;
    for (int i = 0; i < 5; i++) {
        char ev[64];
        int n = snprintf(ev, sizeof ev, "data: event %d\n\n", i);
        t->written_ns[i] = duet_now_ns();
        t->last_rc = t->rc[i] = duet_http_stream_write(t->s, ev, (size_t)n);
        usleep(100 * 1000);
    }
    duet_http_stream_end(t->s);
    return NULL;
}

static pthread_t stream_thread;
static atomic_bool stream_started;

/* The handler answers (the client reads) before it starts the thread: wait for both. */
static void join_streamer(void)
{
    while (!atomic_load(&stream_started)) {
        usleep(1000);
    }
    pthread_join(stream_thread, NULL);
}

static void events(duet_http_exchange *x, void *arg)
{
    (void)arg;
    the_streamer.s = duet_http_stream_begin(x, 200, "text/event-stream", NULL);
    cr_assert_not_null(the_streamer.s);
    pthread_create(&stream_thread, NULL, stream_main, &the_streamer);
    atomic_store(&stream_started, true);
}

/* A flood: 16 KiB events written as fast as possible until the stream refuses one (or
 * 64 MiB went in), from a thread of its own. */
static struct {
    duet_http_stream *s;
    size_t written;
    duet_code rc;
} flood_state;
static pthread_t flood_thread;
static atomic_bool flood_done;

static void *flood_main(void *arg)
{
    (void)arg;
    static char ev[16384];
    memset(ev, 'x', sizeof ev);
    flood_state.rc = DUET_OK;
    while (flood_state.rc == DUET_OK && flood_state.written < (64u << 20)) {
        flood_state.rc = duet_http_stream_write(flood_state.s, ev, sizeof ev);
        if (flood_state.rc == DUET_OK) {
            flood_state.written += sizeof ev;
        }
    }
    duet_http_stream_end(flood_state.s);
    atomic_store(&flood_done, true);
    return NULL;
}

static void flood(duet_http_exchange *x, void *arg)
{
    (void)arg;
    flood_state.s = duet_http_stream_begin(x, 200, "text/event-stream", NULL);
    cr_assert_not_null(flood_state.s);
    pthread_create(&flood_thread, NULL, flood_main, NULL);
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    duet_status st;
    cr_assert_eq(duet_http_server_new("127.0.0.1:0", NULL, NULL, 4096, &srv, &st), DUET_OK, "%s",
                 st.message);
    cr_assert_eq(duet_http_server_route(srv, "GET", "/hello", true, hello, NULL, &st), DUET_OK);
    cr_assert_eq(duet_http_server_route(srv, "POST", "/echo", false, echo, NULL, &st), DUET_OK);
    cr_assert_eq(duet_http_server_route(srv, "GET", "/events", false, events, NULL, &st), DUET_OK);
    cr_assert_eq(duet_http_server_route(srv, "GET", "/flood", false, flood, NULL, &st), DUET_OK);
    cr_assert_eq(duet_http_server_start(srv, &st), DUET_OK, "%s", st.message);
    port = duet_http_server_port(srv);
    cr_assert_gt(port, 0);
}

static void teardown(void)
{
    duet_http_server_free(srv);
}

TestSuite(http, .init = setup, .fini = teardown);

static int connect_to_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Sends a request and reads until the server closes or n bytes arrived. */
static size_t roundtrip(const char *request, char *out, size_t cap, bool close_after)
{
    int fd = connect_to_server();
    cr_assert_eq(write(fd, request, strlen(request)), (ssize_t)strlen(request));
    size_t got = 0;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (;;) {
        ssize_t r = read(fd, out + got, cap - 1 - got);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
        out[got] = '\0';
        if (!close_after && strstr(out, "\r\n\r\n")) {
            char *cl = strstr(out, "Content-Length: ");
            char *end = strstr(out, "\r\n\r\n") + 4;
            if (cl && (size_t)(out + got - end) >= strtoul(cl + 16, NULL, 10)) {
                break;
            }
        }
    }
    close(fd);
    out[got] = '\0';
    return got;
}

/* Connects and sends GET path; the connection, to read the reply from. */
static int ask_for(const char *path)
{
    int fd = connect_to_server();
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)n), (ssize_t)n);
    return fd;
}

Test(http, whole_replies_and_routes)
{
    char buf[4096];
    roundtrip("GET /hello/there?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof buf, false);
    cr_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);
    cr_assert(strstr(buf, "X-Test: yes"), "%s", buf);
    cr_assert(strstr(buf, "Content-Length: 22"), "%s", buf);
    cr_assert(strstr(buf, "\r\n\r\nhello /hello/there?x=1"), "%s", buf);

    roundtrip("GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof buf, false);
    cr_assert(strncmp(buf, "HTTP/1.1 404", 12) == 0, "%s", buf);

    roundtrip("POST /echo HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer k1\r\n"
              "Content-Length: 5\r\n\r\nab-cd",
              buf, sizeof buf, false);
    cr_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);
    cr_assert(strstr(buf, "\r\n\r\nab-cd"), "%s", buf);
    /* an empty reply is a reply too (NNG refuses to copy zero bytes) */
    roundtrip("POST /echo HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer k1\r\n"
              "Content-Length: 0\r\n\r\n",
              buf, sizeof buf, false);
    cr_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);
    cr_assert(strstr(buf, "Content-Length: 0\r\n"), "%s", buf);
    roundtrip("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi", buf, sizeof buf,
              false);
    cr_assert(strncmp(buf, "HTTP/1.1 401", 12) == 0, "%s", buf);
}

Test(http, a_chunked_request_body_is_refused)
{
    char buf[4096];
    roundtrip("POST /echo HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer k1\r\n"
              "Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
              buf, sizeof buf, false);
    cr_assert(strncmp(buf, "HTTP/1.1 411", 12) == 0, "%s", buf);
}

Test(http, streamed_events_arrive_as_they_are_written)
{
    int fd = ask_for("/events");
    char buf[8192];
    size_t got = 0;
    uint64_t first_event_ns = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
        buf[got] = '\0';
        if (!first_event_ns && strstr(buf, "event 0")) {
            first_event_ns = duet_now_ns();
        }
    }
    close(fd);
    join_streamer();
    cr_assert(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    cr_assert(strstr(buf, "Transfer-Encoding: chunked\r\n"), "%s", buf);
    cr_assert(strstr(buf, "Content-Type: text/event-stream\r\n"), "%s", buf);
    /* chunk framing: hex size, data, CRLF; then the zero chunk */
    cr_assert(strstr(buf, "\r\n\r\nf\r\ndata: event 0\n\n\r\n"), "%s", buf);
    cr_assert(strstr(buf, "f\r\ndata: event 4\n\n\r\n0\r\n\r\n"), "%s", buf);
    cr_assert_not_null(first_event_ns);
    cr_assert_lt(first_event_ns, the_streamer.written_ns[4],
                 "the first event arrived only after the last was written: buffered");
}

/* A client that hangs up: the writes after it fail, the stream still ends cleanly. */
Test(http, a_client_that_hangs_up_makes_writes_fail)
{
    int fd = ask_for("/events");
    char buf[256];
    cr_assert_gt(read(fd, buf, sizeof buf), 0);
    close(fd);
    join_streamer();
    cr_assert_eq(the_streamer.last_rc, DUET_UNAVAILABLE, "writes returned %d %d %d %d %d",
                 the_streamer.rc[0], the_streamer.rc[1], the_streamer.rc[2], the_streamer.rc[3],
                 the_streamer.rc[4]);
}

/* A client that stops reading: the stream refuses more once 1 MiB waits to be sent (plus
 * what the kernel's socket buffers hold), rather than queueing without end. */
Test(http, a_client_that_stops_reading_is_cut_off)
{
    int fd = ask_for("/flood");
    char buf[256];
    cr_assert_gt(read(fd, buf, sizeof buf), 0);
    for (int i = 0; i < 3000 && !atomic_load(&flood_done); i++) {
        usleep(10 * 1000);
    }
    cr_assert(atomic_load(&flood_done), "the writer is still going after 30 s");
    pthread_join(flood_thread, NULL);
    close(fd);
    cr_assert_eq(flood_state.rc, DUET_UNAVAILABLE, "wrote %zu bytes, all taken",
                 flood_state.written);
    cr_assert_lt(flood_state.written, (size_t)48 << 20, "%zu bytes taken before the cut",
                 flood_state.written);
}

/* ---- HTTPS ---- */

static char lab[512];

/* A burst: 40 events written at once, then the end. */
static void burst(duet_http_exchange *x, void *arg)
{
    (void)arg;
    duet_http_stream *s = duet_http_stream_begin(x, 200, "text/event-stream", NULL);
    cr_assert_not_null(s);
    for (int i = 0; i < 40; i++) {
        char ev[128];
        int n = snprintf(ev, sizeof ev,
                         "data: event %02d of a burst, padded to look like a token\n\n", i);
        duet_http_stream_write(s, ev, (size_t)n);
    }
    duet_http_stream_end(s);
}

static void setup_https(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_make_temp_dir(lab, sizeof lab, "duet-https");
    const char *names[] = {"web-1", NULL};
    test_make_lab(lab, names);
    char crt[600], key[600];
    snprintf(crt, sizeof crt, "%s/web-1.crt", lab);
    snprintf(key, sizeof key, "%s/web-1.key", lab);
    duet_status st;
    bool ok = duet_http_server_new("127.0.0.1:0", crt, key, 4096, &srv, &st) == DUET_OK;
    if (ok && (duet_http_server_route(srv, "GET", "/burst", false, burst, NULL, &st) != DUET_OK ||
               duet_http_server_start(srv, &st) != DUET_OK)) {
        duet_http_server_free(srv);
        ok = false;
    }
    if (!ok) {
        test_remove_dir(lab); /* no fini after a failed init */
        cr_assert_fail("HTTPS server: %s", st.message);
    }
    port = duet_http_server_port(srv);
}

static void teardown_https(void)
{
    duet_http_server_free(srv);
    test_remove_dir(lab);
}

TestSuite(https, .init = setup_https, .fini = teardown_https);

/* A TLS client on NNG's stream API, trusting the lab's CA for the name web-1. */
static nng_stream *tls_connect(void)
{
    char url[64], ca[600];
    snprintf(url, sizeof url, "tls+tcp://127.0.0.1:%d", port);
    snprintf(ca, sizeof ca, "%s/ca.crt", lab);
    nng_stream_dialer *d;
    cr_assert_eq(nng_stream_dialer_alloc(&d, url), 0);
    nng_tls_config *tls;
    cr_assert_eq(nng_tls_config_alloc(&tls, NNG_TLS_MODE_CLIENT), 0);
    cr_assert_eq(nng_tls_config_ca_file(tls, ca), 0);
    cr_assert_eq(nng_tls_config_server_name(tls, "web-1"), 0);
    cr_assert_eq(nng_tls_config_auth_mode(tls, NNG_TLS_AUTH_MODE_REQUIRED), 0);
    cr_assert_eq(nng_stream_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls), 0);
    nng_tls_config_free(tls);
    nng_aio *aio;
    cr_assert_eq(nng_aio_alloc(&aio, NULL, NULL), 0);
    nng_aio_set_timeout(aio, 5000);
    nng_stream_dialer_dial(d, aio);
    nng_aio_wait(aio);
    cr_assert_eq(nng_aio_result(aio), 0, "%s", nng_strerror(nng_aio_result(aio)));
    nng_stream *conn = nng_aio_get_output(aio, 0);
    nng_aio_free(aio);
    nng_stream_dialer_free(d);
    return conn;
}

/* One send or receive of up to len bytes; the NNG result, *n what moved. */
static int tls_io(nng_stream *conn, bool send, void *buf, size_t len, int timeout_ms, size_t *n)
{
    nng_aio *aio;
    cr_assert_eq(nng_aio_alloc(&aio, NULL, NULL), 0);
    nng_iov iov = {.iov_buf = buf, .iov_len = len};
    nng_aio_set_iov(aio, 1, &iov);
    nng_aio_set_timeout(aio, timeout_ms);
    if (send) {
        nng_stream_send(conn, aio);
    } else {
        nng_stream_recv(conn, aio);
    }
    nng_aio_wait(aio);
    int rv = nng_aio_result(aio);
    *n = nng_aio_count(aio);
    nng_aio_free(aio);
    return rv;
}

/* Asks for a burst and reads until its last chunk; false when the connection ended first. */
static bool read_a_burst(nng_stream *conn, char *buf, size_t cap)
{
    char req[] = "GET /burst HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t n;
    cr_assert_eq(tls_io(conn, true, req, sizeof req - 1, 5000, &n), 0);
    size_t got = 0;
    buf[0] = '\0';
    while (!strstr(buf, "\r\n0\r\n\r\n")) {
        if (got + 1 >= cap || tls_io(conn, false, buf + got, cap - 1 - got, 5000, &n) != 0) {
            return false;
        }
        got += n;
        buf[got] = '\0';
    }
    return true;
}

/* NNG's TLS layer reports a write done while the data is still in its buffer: a stream that
 * closed its connection then lost its last chunks (about one time in three here). */
Test(https, a_stream_ends_with_all_its_chunks)
{
    static char buf[16384];
    for (int i = 0; i < 30; i++) {
        nng_stream *conn = tls_connect();
        bool whole = read_a_burst(conn, buf, sizeof buf);
        nng_stream_free(conn);
        cr_assert(whole, "stream %d ended early after %zu bytes: ...%s", i, strlen(buf),
                  buf + (strlen(buf) > 200 ? strlen(buf) - 200 : 0));
        cr_assert(strstr(buf, "data: event 39 of a burst"), "%s", buf);
    }
}

static atomic_bool read_done;

static void on_read_done(void *arg)
{
    (void)arg;
    atomic_store(&read_done, true);
}

/* The server waits for the client's close, and stopping it cuts that wait short. (A read
 * is left pending rather than timed out: NNG 1.5.2's TLS client does not read again after
 * a timed-out read.) */
Test(https, stopping_the_server_cuts_a_lingering_stream_short)
{
    static char buf[16384];
    nng_stream *conn = tls_connect();
    cr_assert(read_a_burst(conn, buf, sizeof buf));
    nng_aio *aio;
    cr_assert_eq(nng_aio_alloc(&aio, on_read_done, NULL), 0);
    char more[16];
    nng_iov iov = {.iov_buf = more, .iov_len = sizeof more};
    nng_aio_set_iov(aio, 1, &iov);
    nng_stream_recv(conn, aio);
    usleep(300 * 1000);
    cr_assert_not(atomic_load(&read_done),
                  "the server closed before the client: what was still buffered could be lost");
    uint64_t t0 = duet_now_ns();
    duet_http_server_free(srv);
    srv = NULL;
    double ms = (double)(duet_now_ns() - t0) / 1e6;
    cr_assert_lt(ms, 2000.0, "stopping took %.0f ms", ms);
    for (int i = 0; i < 300 && !atomic_load(&read_done); i++) {
        usleep(10 * 1000);
    }
    cr_assert(atomic_load(&read_done), "the server did not close the connection");
    cr_assert_neq(nng_aio_result(aio), 0);
    nng_aio_free(aio);
    nng_stream_free(conn);
}
