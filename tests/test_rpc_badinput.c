/* Hostile bytes on the wire: random data, truncated and oversized frames, garbage inside
 * valid framing, unknown methods, a wrong protocol version. The server answers with an
 * error or drops the connection, never crashes, and keeps serving a good client. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nng/nng.h>

#include "frame.h"
#include "rpc.h"
#include "support.h"

static duet_rpc_server *server;
static duet_rpc_client *client;
static int port;

static void echo_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    duet_rpc_call_finish(call, req, len);
}

static void setup(void)
{
    duet_status st;
    duet_rpc_limits limits;
    duet_rpc_limits_default(&limits);
    limits.max_frame_bytes = 64 * 1024;
    cr_assert_eq(duet_rpc_server_new(&limits, &server, &st), DUET_OK);
    duet_rpc_server_register(server, "test/Echo", echo_handler, NULL, NULL);
    duet_tls_options insecure = {.insecure = true};
    cr_assert_eq(duet_rpc_server_listen(server, "tcp://127.0.0.1:0", &insecure, &st), DUET_OK, "%s",
                 st.message);
    port = duet_rpc_server_port(server);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    cr_assert_eq(duet_rpc_client_new(url, &insecure, &limits, &client, &st), DUET_OK);
    cr_assert_eq(duet_rpc_client_wait_ready(client, 5000, &st), DUET_OK, "%s", st.message);
}

static void teardown(void)
{
    duet_rpc_client_free(client);
    duet_rpc_server_free(server);
}

TestSuite(badinput, .init = setup, .fini = teardown);

static void assert_good_client_still_served(void)
{
    uint8_t *resp = NULL;
    size_t len = 0;
    duet_status st;
    cr_assert_eq(duet_rpc_call_unary(client, "test/Echo", "still here", 10, 5000, &resp, &len, &st),
                 DUET_OK, "%s", st.message);
    cr_assert_eq(len, 10);
    free(resp);
}

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void send_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0) {
            return; /* the server may already have hung up: that is allowed */
        }
        p += n;
        len -= (size_t)n;
    }
}

/* Reads exactly len bytes within timeout_ms; false on EOF, error or timeout. */
static bool read_exact(int fd, uint8_t *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0) {
            return false;
        }
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n <= 0) {
            return false;
        }
        got += (size_t)n;
    }
    return true;
}

/* The next frame from the server, or NULL when the connection ended. */
static Duet__V1__Envelope *read_envelope(int fd)
{
    uint8_t header[4];
    if (!read_exact(fd, header, 4, 5000)) {
        return NULL;
    }
    uint32_t len = duet_frame_header_length(header);
    cr_assert_leq(len, 1u << 20, "server sent a %u-byte frame", len);
    uint8_t *body = malloc(len ? len : 1);
    cr_assert(read_exact(fd, body, len, 5000));
    Duet__V1__Envelope *env = duet__v1__envelope__unpack(NULL, len, body);
    free(body);
    cr_assert_not_null(env, "the server's answer is not an Envelope");
    return env;
}

/* True when the server closed the connection within timeout_ms. */
static bool closed_by_server(int fd, int timeout_ms)
{
    uint8_t buf[4096];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0) {
            return false;
        }
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            return true;
        }
    }
}

static void send_envelope(int fd, Duet__V1__Envelope *env)
{
    size_t body = duet__v1__envelope__get_packed_size(env);
    uint8_t *buf = malloc(4 + body);
    buf[0] = (uint8_t)(body >> 24);
    buf[1] = (uint8_t)(body >> 16);
    buf[2] = (uint8_t)(body >> 8);
    buf[3] = (uint8_t)body;
    duet__v1__envelope__pack(env, buf + 4);
    send_all(fd, buf, 4 + body);
    free(buf);
}

Test(badinput, random_bytes)
{
    for (int round = 0; round < 20; round++) {
        int fd = raw_connect();
        uint8_t junk[4096];
        uint32_t x = 0x9e3779b9u * (uint32_t)(round + 1);
        for (size_t i = 0; i < sizeof junk; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            junk[i] = (uint8_t)x;
        }
        send_all(fd, junk, sizeof junk);
        cr_assert(closed_by_server(fd, 5000), "round %d: the server kept a garbage peer", round);
        close(fd);
    }
    assert_good_client_still_served();
    duet_rpc_server_stats stats;
    duet_rpc_server_stats_get(server, &stats);
    cr_assert_geq(stats.bad_frames, 20);
}

Test(badinput, truncated_frames)
{
    /* a header promising 100 bytes, then 50, then hang up; and a lone half header */
    int fd = raw_connect();
    uint8_t buf[54] = {0, 0, 0, 100};
    memset(buf + 4, 0x08, 50);
    send_all(fd, buf, sizeof buf);
    close(fd);
    fd = raw_connect();
    send_all(fd, buf, 2);
    close(fd);
    assert_good_client_still_served();
}

Test(badinput, oversized_frame_is_answered_then_dropped)
{
    int fd = raw_connect();
    uint8_t header[4] = {0x7f, 0xff, 0xff, 0xff}; /* 2 GiB: must not be allocated */
    send_all(fd, header, 4);
    Duet__V1__Envelope *env = read_envelope(fd);
    cr_assert_not_null(env, "no error frame before the drop");
    cr_assert_eq(env->kind, DUET__V1__FRAME_KIND__FRAME_KIND_ERROR);
    cr_assert_eq(env->call_id, 0);
    cr_assert_eq(env->status_code, DUET_RESOURCE_EXHAUSTED);
    cr_assert(strstr(env->status_message, "65536"), "%s", env->status_message);
    duet__v1__envelope__free_unpacked(env, NULL);
    cr_assert(closed_by_server(fd, 5000));
    close(fd);
    assert_good_client_still_served();
}

Test(badinput, garbage_inside_valid_framing_keeps_the_connection)
{
    int fd = raw_connect();
    uint8_t buf[4 + 10] = {0, 0, 0, 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    send_all(fd, buf, sizeof buf);
    Duet__V1__Envelope *env = read_envelope(fd);
    cr_assert_not_null(env);
    cr_assert_eq(env->kind, DUET__V1__FRAME_KIND__FRAME_KIND_ERROR);
    cr_assert_eq(env->status_code, DUET_INVALID_ARGUMENT);
    cr_assert(strstr(env->status_message, "malformed"), "%s", env->status_message);
    duet__v1__envelope__free_unpacked(env, NULL);

    /* the framing is intact, so the same connection still works */
    Duet__V1__Envelope req = DUET__V1__ENVELOPE__INIT;
    req.protocol_version = DUET_PROTOCOL_VERSION;
    req.call_id = 3;
    req.kind = DUET__V1__FRAME_KIND__FRAME_KIND_REQUEST;
    req.method = "test/Echo";
    req.payload.data = (uint8_t *)"ping";
    req.payload.len = 4;
    send_envelope(fd, &req);
    env = read_envelope(fd);
    cr_assert_not_null(env);
    cr_assert_eq(env->kind, DUET__V1__FRAME_KIND__FRAME_KIND_END);
    cr_assert_eq(env->call_id, 3);
    cr_assert_eq(env->payload.len, 4);
    duet__v1__envelope__free_unpacked(env, NULL);
    close(fd);
}

Test(badinput, a_stream_of_bad_frames_is_cut_off)
{
    int fd = raw_connect();
    uint8_t buf[4 + 3] = {0, 0, 0, 3, 0xff, 0xff, 0xff};
    for (int i = 0; i < 40; i++) {
        send_all(fd, buf, sizeof buf);
    }
    cr_assert(closed_by_server(fd, 5000));
    close(fd);
    assert_good_client_still_served();
}

Test(badinput, unknown_method)
{
    int fd = raw_connect();
    Duet__V1__Envelope req = DUET__V1__ENVELOPE__INIT;
    req.protocol_version = DUET_PROTOCOL_VERSION;
    req.call_id = 5;
    req.kind = DUET__V1__FRAME_KIND__FRAME_KIND_REQUEST;
    req.method = "duet.v1.Worker/LaunchMissiles";
    send_envelope(fd, &req);
    Duet__V1__Envelope *env = read_envelope(fd);
    cr_assert_not_null(env);
    cr_assert_eq(env->call_id, 5);
    cr_assert_eq(env->kind, DUET__V1__FRAME_KIND__FRAME_KIND_ERROR);
    cr_assert_eq(env->status_code, DUET_UNIMPLEMENTED);
    cr_assert(strstr(env->status_message, "LaunchMissiles"), "%s", env->status_message);
    duet__v1__envelope__free_unpacked(env, NULL);
    close(fd);
    assert_good_client_still_served();
}

Test(badinput, wrong_protocol_version_is_refused_clearly)
{
    int fd = raw_connect();
    Duet__V1__Envelope req = DUET__V1__ENVELOPE__INIT;
    req.protocol_version = 99;
    req.call_id = 1;
    req.kind = DUET__V1__FRAME_KIND__FRAME_KIND_REQUEST;
    req.method = "test/Echo";
    send_envelope(fd, &req);
    Duet__V1__Envelope *env = read_envelope(fd);
    cr_assert_not_null(env);
    cr_assert_eq(env->kind, DUET__V1__FRAME_KIND__FRAME_KIND_ERROR);
    cr_assert_eq(env->status_code, DUET_FAILED_PRECONDITION);
    cr_assert(strstr(env->status_message, "protocol version 99"), "%s", env->status_message);
    duet__v1__envelope__free_unpacked(env, NULL);
    cr_assert(closed_by_server(fd, 5000));
    close(fd);
    assert_good_client_still_served();
}

Test(badinput, frames_a_client_may_not_send)
{
    int fd = raw_connect();
    Duet__V1__Envelope req = DUET__V1__ENVELOPE__INIT;
    req.protocol_version = DUET_PROTOCOL_VERSION;
    req.call_id = 9;
    req.kind = DUET__V1__FRAME_KIND__FRAME_KIND_MESSAGE;
    send_envelope(fd, &req);
    Duet__V1__Envelope *env = read_envelope(fd);
    cr_assert_not_null(env);
    cr_assert_eq(env->call_id, 9);
    cr_assert_eq(env->status_code, DUET_INVALID_ARGUMENT);
    duet__v1__envelope__free_unpacked(env, NULL);

    /* a request with call id 0 that is not the hello */
    req.kind = DUET__V1__FRAME_KIND__FRAME_KIND_REQUEST;
    req.call_id = 0;
    req.method = "test/Echo";
    send_envelope(fd, &req);
    env = read_envelope(fd);
    cr_assert_not_null(env);
    cr_assert_eq(env->status_code, DUET_INVALID_ARGUMENT);
    duet__v1__envelope__free_unpacked(env, NULL);
    close(fd);
    assert_good_client_still_served();
}

Test(badinput, client_refuses_a_server_of_another_version)
{
    /* a fake server that answers the hello with version 2 */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof sa;
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(lfd, 4), 0);
    getsockname(lfd, (struct sockaddr *)&sa, &slen);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ntohs(sa.sin_port));
    duet_tls_options insecure = {.insecure = true};
    duet_rpc_client *other;
    duet_status st;
    cr_assert_eq(duet_rpc_client_new(url, &insecure, NULL, &other, &st), DUET_OK);
    int fd = accept(lfd, NULL, NULL);
    Duet__V1__Envelope *hello = read_envelope(fd);
    cr_assert_not_null(hello);
    cr_assert_str_eq(hello->method, "duet/hello");
    duet__v1__envelope__free_unpacked(hello, NULL);
    Duet__V1__Envelope reply = DUET__V1__ENVELOPE__INIT;
    reply.protocol_version = 2;
    reply.kind = DUET__V1__FRAME_KIND__FRAME_KIND_END;
    send_envelope(fd, &reply);
    cr_assert_eq(duet_rpc_client_wait_ready(other, 1000, &st), DUET_FAILED_PRECONDITION, "%s",
                 st.message);
    cr_assert(strstr(st.message, "protocol version 2"), "%s", st.message);
    duet_rpc_client_free(other);
    close(fd);
    close(lfd);
}
