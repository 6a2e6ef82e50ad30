/* RPC over tls+tcp on loopback, with certificates made by duet-certs: unary, long streams,
 * many concurrent streams, cancel, deadlines, error status, compression. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>

#include "rpc.h"
#include "support.h"
#include "timer.h"

static char lab[256];
static char ca[512], worker_crt[512], worker_key[512], gw_crt[512], gw_key[512];
static duet_rpc_server *server;
static duet_rpc_client *client;

/* What the server saw, for assertions about the server side. */
static atomic_int handlers_stopped_by_cancel;
static atomic_int handlers_finished_stream;
static atomic_int last_cancel_reason = -1;
static atomic_int streams_running;

/* ---- server handlers ---- */

static void echo_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    duet_rpc_call_finish(call, req, len);
}

static void fail_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    (void)req;
    (void)len;
    duet_rpc_call_fail(call, DUET_FAILED_PRECONDITION, "the model is still loading (%d%%)", 42);
}

typedef struct {
    duet_rpc_call *call;
    uint32_t count;
    uint32_t size;
    uint32_t pause_us;
} stream_job;

static void *stream_thread(void *arg)
{
    stream_job *job = arg;
    atomic_fetch_add(&streams_running, 1);
    uint8_t *msg = calloc(1, job->size < 4 ? 4 : job->size);
    uint32_t i;
    duet_code rc = DUET_OK;
    for (i = 0; i < job->count; i++) {
        memcpy(msg, &i, 4);
        rc = duet_rpc_call_send(job->call, msg, job->size < 4 ? 4 : job->size, true, NULL);
        if (rc != DUET_OK) {
            break;
        }
        if (job->pause_us) {
            usleep(job->pause_us);
        }
    }
    if (rc != DUET_OK) {
        atomic_fetch_add(&handlers_stopped_by_cancel, 1);
        duet_rpc_call_fail(job->call, rc, "stopped after %u messages", i);
    } else {
        atomic_fetch_add(&handlers_finished_stream, 1);
        duet_rpc_call_finish(job->call, "done", 4);
    }
    free(msg);
    free(job);
    atomic_fetch_sub(&streams_running, 1);
    return NULL;
}

/* Request: count, size, pause in microseconds (3 x uint32). */
static void count_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    if (len != 12) {
        duet_rpc_call_fail(call, DUET_INVALID_ARGUMENT, "want 12 bytes, got %zu", len);
        return;
    }
    stream_job *job = malloc(sizeof *job);
    job->call = call;
    memcpy(&job->count, req, 4);
    memcpy(&job->size, req + 4, 4);
    memcpy(&job->pause_us, req + 8, 4);
    pthread_t t;
    pthread_create(&t, NULL, stream_thread, job);
    pthread_detach(t);
}

static void hang_on_cancel(duet_rpc_call *call, duet_code why, void *arg)
{
    (void)arg;
    atomic_store(&last_cancel_reason, (int)why);
    duet_rpc_call_fail(call, why, "stopped");
}

/* Never answers; ends only when cancelled or its deadline passes. */
static void hang_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    (void)req;
    (void)len;
    duet_rpc_call_on_cancel(call, hang_on_cancel, NULL);
}

/* Answers with a compressible payload of the requested size (uint32). */
static void big_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    uint32_t size = 0;
    if (len == 4) {
        memcpy(&size, req, 4);
    }
    uint8_t *buf = malloc(size + 1);
    for (uint32_t i = 0; i < size; i++) {
        buf[i] = (uint8_t)("duet token stream "[i % 18]);
    }
    duet_rpc_call_finish(call, buf, size);
    free(buf);
}

static void setup_lab(void)
{
    test_make_temp_dir(lab, sizeof lab, "duet-rpc");
    const char *names[] = {"worker-1", "gateway-1", NULL};
    test_make_lab(lab, names);
    snprintf(ca, sizeof ca, "%s/ca.crt", lab);
    snprintf(worker_crt, sizeof worker_crt, "%s/worker-1.crt", lab);
    snprintf(worker_key, sizeof worker_key, "%s/worker-1.key", lab);
    snprintf(gw_crt, sizeof gw_crt, "%s/gateway-1.crt", lab);
    snprintf(gw_key, sizeof gw_key, "%s/gateway-1.key", lab);
}

static void start_server(void)
{
    duet_status st;
    duet_rpc_limits limits;
    duet_rpc_limits_default(&limits);
    cr_assert_eq(duet_rpc_server_new(&limits, &server, &st), DUET_OK, "%s", st.message);
    duet_rpc_server_register(server, "test/Echo", echo_handler, NULL, NULL);
    duet_rpc_server_register(server, "test/Fail", fail_handler, NULL, NULL);
    duet_rpc_server_register(server, "test/Count", count_handler, NULL, NULL);
    duet_rpc_server_register(server, "test/Hang", hang_handler, NULL, NULL);
    duet_rpc_server_register(server, "test/Big", big_handler, NULL, NULL);
    duet_tls_options tls = {.ca_file = ca, .cert_file = worker_crt, .key_file = worker_key};
    cr_assert_eq(duet_rpc_server_listen(server, "tls+tcp://127.0.0.1:0", &tls, &st), DUET_OK, "%s",
                 st.message);
    cr_assert_gt(duet_rpc_server_port(server), 0);
}

static void connect_client(void)
{
    char url[64];
    snprintf(url, sizeof url, "tls+tcp://127.0.0.1:%d", duet_rpc_server_port(server));
    duet_tls_options tls = {
        .ca_file = ca, .cert_file = gw_crt, .key_file = gw_key, .server_name = "worker-1"};
    duet_status st;
    cr_assert_eq(duet_rpc_client_new(url, &tls, NULL, &client, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_rpc_client_wait_ready(client, 10000, &st), DUET_OK, "%s", st.message);
}

static void setup(void)
{
    setup_lab();
    start_server();
    connect_client();
}

static void teardown(void)
{
    duet_rpc_client_free(client);
    duet_rpc_server_free(server);
    test_remove_dir(lab);
}

TestSuite(rpc, .init = setup, .fini = teardown);

Test(rpc, unary_echo)
{
    uint8_t *resp = NULL;
    size_t len = 0;
    duet_status st;
    const char *hello = "hello, worker";
    cr_assert_eq(
        duet_rpc_call_unary(client, "test/Echo", hello, strlen(hello), 5000, &resp, &len, &st),
        DUET_OK, "%s", st.message);
    cr_assert_eq(len, strlen(hello));
    cr_assert_arr_eq(resp, hello, len);
    free(resp);

    /* an empty request and answer are fine too */
    cr_assert_eq(duet_rpc_call_unary(client, "test/Echo", NULL, 0, 5000, &resp, &len, &st), DUET_OK,
                 "%s", st.message);
    cr_assert_eq(len, 0);
    free(resp);
}

Test(rpc, handler_error_reaches_caller)
{
    uint8_t *resp = NULL;
    size_t len = 0;
    duet_status st;
    cr_assert_eq(duet_rpc_call_unary(client, "test/Fail", "x", 1, 5000, &resp, &len, &st),
                 DUET_FAILED_PRECONDITION);
    cr_assert_str_eq(st.message, "the model is still loading (42%)");
}

Test(rpc, unknown_method_is_unimplemented)
{
    uint8_t *resp = NULL;
    size_t len = 0;
    duet_status st;
    cr_assert_eq(duet_rpc_call_unary(client, "test/Nope", "x", 1, 5000, &resp, &len, &st),
                 DUET_UNIMPLEMENTED);
    cr_assert(strstr(st.message, "test/Nope"), "%s", st.message);
}

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    uint32_t received;
    uint32_t out_of_order;
    bool ended;
    duet_status status;
    duet_rpc_stream *stream;
    uint32_t cancel_after; /* 0: never */
} stream_sink;

static void sink_on_message(void *arg, const uint8_t *msg, size_t len)
{
    stream_sink *s = arg;
    uint32_t index = UINT32_MAX;
    if (len >= 4) {
        memcpy(&index, msg, 4);
    }
    pthread_mutex_lock(&s->lock);
    if (index != s->received) {
        s->out_of_order++;
    }
    s->received++;
    bool cancel = s->cancel_after && s->received == s->cancel_after;
    pthread_mutex_unlock(&s->lock);
    if (cancel) {
        duet_rpc_stream_cancel(s->stream); /* from inside the callback, as a gateway would */
    }
}

static void sink_on_end(void *arg, const duet_status *st, const uint8_t *msg, size_t len)
{
    (void)msg;
    (void)len;
    stream_sink *s = arg;
    pthread_mutex_lock(&s->lock);
    s->status = *st;
    s->ended = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->lock);
}

static void sink_init(stream_sink *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cv, NULL);
}

static void sink_wait(stream_sink *s)
{
    pthread_mutex_lock(&s->lock);
    while (!s->ended) {
        pthread_cond_wait(&s->cv, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
}

static duet_rpc_stream *start_count(stream_sink *sink, uint32_t count, uint32_t size,
                                    uint32_t pause_us, uint32_t timeout_ms)
{
    uint32_t req[3] = {count, size, pause_us};
    duet_rpc_stream_callbacks cb = {
        .on_message = sink_on_message, .on_end = sink_on_end, .arg = sink};
    duet_status st;
    pthread_mutex_lock(&sink->lock); /* the first message may arrive before we store the handle */
    duet_code rc = duet_rpc_call_stream(client, "test/Count", req, sizeof req, timeout_ms, NULL, 0,
                                        &cb, &sink->stream, &st);
    pthread_mutex_unlock(&sink->lock);
    cr_assert_eq(rc, DUET_OK, "%s", st.message);
    return sink->stream;
}

Test(rpc, stream_of_10000_arrives_complete_and_in_order)
{
    stream_sink sink;
    sink_init(&sink);
    start_count(&sink, 10000, 32, 0, 60000);
    sink_wait(&sink);
    cr_assert_eq(sink.status.code, DUET_OK, "%s", sink.status.message);
    cr_assert_eq(sink.received, 10000);
    cr_assert_eq(sink.out_of_order, 0);
    duet_rpc_stream_release(sink.stream);
}

Test(rpc, hundred_concurrent_streams_on_one_connection)
{
    enum { N = 100, COUNT = 200 };
    static stream_sink sinks[N];
    for (int i = 0; i < N; i++) {
        sink_init(&sinks[i]);
        start_count(&sinks[i], COUNT, 16 + (uint32_t)i, 0, 60000);
    }
    for (int i = 0; i < N; i++) {
        sink_wait(&sinks[i]);
        cr_assert_eq(sinks[i].status.code, DUET_OK, "stream %d: %s", i, sinks[i].status.message);
        cr_assert_eq(sinks[i].received, COUNT, "stream %d got %u", i, sinks[i].received);
        cr_assert_eq(sinks[i].out_of_order, 0);
        duet_rpc_stream_release(sinks[i].stream);
    }
    duet_rpc_server_stats stats;
    duet_rpc_server_stats_get(server, &stats);
    cr_assert_eq(stats.connections_open, 1, "all calls shared one connection");
    cr_assert_geq(stats.calls_started, N);
}

static void wait_until_zero(atomic_int *v, int timeout_ms)
{
    for (int i = 0; i < timeout_ms / 5 && atomic_load(v) != 0; i++) {
        usleep(5000);
    }
}

Test(rpc, cancel_mid_stream_stops_the_handler)
{
    stream_sink sink;
    sink_init(&sink);
    sink.cancel_after = 50;
    /* slow enough that the whole stream would take 100 s */
    start_count(&sink, 10000, 16, 10000, 0);
    sink_wait(&sink);
    cr_assert_eq(sink.status.code, DUET_CANCELLED, "%s", sink.status.message);
    wait_until_zero(&streams_running, 5000);
    cr_assert_eq(atomic_load(&streams_running), 0, "the server handler is still sending");
    cr_assert_eq(atomic_load(&handlers_stopped_by_cancel), 1);
    cr_assert_eq(atomic_load(&handlers_finished_stream), 0);
    uint32_t after = sink.received;
    cr_assert_lt(after, 100, "messages kept coming after the cancel: %u", after);
    duet_rpc_stream_release(sink.stream);

    duet_rpc_server_stats stats;
    duet_rpc_server_stats_get(server, &stats);
    cr_assert_eq(stats.calls_open, 0);
}

Test(rpc, deadline_ends_the_call_on_both_sides)
{
    uint8_t *resp = NULL;
    size_t len = 0;
    duet_status st;
    uint64_t t0 = duet_now_ns();
    cr_assert_eq(duet_rpc_call_unary(client, "test/Hang", "x", 1, 300, &resp, &len, &st),
                 DUET_DEADLINE_EXCEEDED, "%s", st.message);
    uint64_t took_ms = (duet_now_ns() - t0) / 1000000u;
    cr_assert_geq(took_ms, 290);
    cr_assert_lt(took_ms, 5000);
    /* the server's own timer ended the handler with the same code */
    for (int i = 0; i < 200 && atomic_load(&last_cancel_reason) < 0; i++) {
        usleep(10000);
    }
    cr_assert_eq(atomic_load(&last_cancel_reason), DUET_DEADLINE_EXCEEDED);
    duet_rpc_server_stats stats;
    duet_rpc_server_stats_get(server, &stats);
    cr_assert_eq(stats.calls_open, 0);
}

Test(rpc, deadline_on_a_stream)
{
    stream_sink sink;
    sink_init(&sink);
    start_count(&sink, 10000, 16, 5000, 400);
    sink_wait(&sink);
    cr_assert_eq(sink.status.code, DUET_DEADLINE_EXCEEDED, "%s", sink.status.message);
    cr_assert_gt(sink.received, 0);
    cr_assert_lt(sink.received, 10000);
    wait_until_zero(&streams_running, 5000);
    cr_assert_eq(atomic_load(&handlers_stopped_by_cancel), 1);
    duet_rpc_stream_release(sink.stream);
}

Test(rpc, compressed_payloads_round_trip)
{
    uint32_t sizes[] = {4095, 4096, 100000, 3u << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint8_t *resp = NULL;
        size_t len = 0;
        duet_status st;
        cr_assert_eq(duet_rpc_call_unary(client, "test/Big", &sizes[k], 4, 10000, &resp, &len, &st),
                     DUET_OK, "%s", st.message);
        cr_assert_eq(len, sizes[k]);
        for (uint32_t i = 0; i < sizes[k]; i++) {
            if (resp[i] != (uint8_t)("duet token stream "[i % 18])) {
                cr_assert_fail("byte %u of %u differs", i, sizes[k]);
            }
        }
        free(resp);
    }
    /* a compressible request bigger than the threshold is inflated by the server */
    size_t n = 1u << 20;
    uint8_t *big = malloc(n);
    memset(big, 'a', n);
    uint8_t *resp = NULL;
    size_t len = 0;
    duet_status st;
    cr_assert_eq(duet_rpc_call_unary(client, "test/Echo", big, n, 10000, &resp, &len, &st), DUET_OK,
                 "%s", st.message);
    cr_assert_eq(len, n);
    cr_assert_arr_eq(resp, big, n);
    free(resp);
    free(big);
}

Test(rpc, answer_over_the_frame_cap_is_an_error)
{
    uint8_t *resp = NULL;
    size_t len = 0;
    duet_status st;
    /* 20 MiB of random-ish bytes do not compress under the 16 MiB cap */
    size_t n = 20u << 20;
    uint8_t *noise = malloc(n);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise[i] = (uint8_t)x;
    }
    cr_assert_eq(duet_rpc_call_unary(client, "test/Echo", noise, n, 10000, &resp, &len, &st),
                 DUET_RESOURCE_EXHAUSTED, "%s", st.message);
    free(noise);
    /* the connection is still fine */
    cr_assert_eq(duet_rpc_call_unary(client, "test/Echo", "ok", 2, 5000, &resp, &len, &st), DUET_OK,
                 "%s", st.message);
    free(resp);
}
