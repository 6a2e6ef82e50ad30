/* The gateway's HTTP layer over real sockets: routes and whole replies (with
 * Content-Length), 404 for unknown paths, a refused chunked request body, and streamed
 * replies that reach the client chunk by chunk as they are written (not buffered to the
 * end), with correct chunked framing; a client that hangs up makes later writes fail. */
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

#include "http_server.h"
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

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    duet_status st;
    cr_assert_eq(duet_http_server_new("127.0.0.1:0", NULL, NULL, 4096, &srv, &st), DUET_OK, "%s",
                 st.message);
    cr_assert_eq(duet_http_server_route(srv, "GET", "/hello", true, hello, NULL, &st), DUET_OK);
    cr_assert_eq(duet_http_server_route(srv, "POST", "/echo", false, echo, NULL, &st), DUET_OK);
    cr_assert_eq(duet_http_server_route(srv, "GET", "/events", false, events, NULL, &st), DUET_OK);
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
    int fd = connect_to_server();
    const char *req = "GET /events HTTP/1.1\r\nHost: a\r\n\r\n";
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
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
    int fd = connect_to_server();
    const char *req = "GET /events HTTP/1.1\r\nHost: a\r\n\r\n";
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    char buf[256];
    cr_assert_gt(read(fd, buf, sizeof buf), 0);
    close(fd);
    join_streamer();
    cr_assert_eq(the_streamer.last_rc, DUET_UNAVAILABLE, "writes returned %d %d %d %d %d",
                 the_streamer.rc[0], the_streamer.rc[1], the_streamer.rc[2], the_streamer.rc[3],
                 the_streamer.rc[4]);
}
