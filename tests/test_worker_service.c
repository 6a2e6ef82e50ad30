/* The worker daemon end to end: the real duet-worker process serving stories260K over
 * mutual TLS on loopback (certificates from duet-certs), called through the RPC client as
 * a gateway would. Info (with the vocabulary), Health, Tokenize and Detokenize agree with
 * the engine's own tokenizer; malformed requests get INVALID_ARGUMENT and the worker keeps
 * serving; SIGTERM ends it cleanly (exit 0, which under the sanitizers also means no
 * leaks); configuration mistakes stop it with exit 2 and a message. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duet.pb-c.h"
#include "gguf.h"
#include "rpc.h"
#include "service.h"
#include "support.h"
#include "tokenizer.h"
#include "vocab_gguf.h"
#include "vocab_proto.h"

static char lab[512], model[1024];
static test_process worker;
static duet_rpc_client *client;

/* Starts duet-worker on stories260K with mutual TLS and the extra arguments (NULL-ended),
 * and connects a gateway-like client. */
static void start_worker_with(const char *const extra[])
{
    const char *dir = getenv("DUET_TEST_MODELS");
    snprintf(model, sizeof model, "%s/stories260K.gguf", dir ? dir : "../shared/models");
    FILE *f = fopen(model, "rb");
    if (!f) {
        cr_skip_test("TEST MODELS MISSING: %s not found (set DUET_TEST_MODELS)", model);
    }
    fclose(f);
    test_make_temp_dir(lab, sizeof lab, "duet-worker-svc");
    const char *names[] = {"worker-1", "gateway-1", NULL};
    test_make_lab(lab, names);
    int port = test_free_port();
    char listen[64];
    snprintf(listen, sizeof listen, "tls+tcp://127.0.0.1:%d", port);
    const char *argv[32] = {"duet-worker", "-m",     model,      "--listen", listen, "--certs",
                            lab,           "--name", "worker-1", "-t",       "1"};
    size_t n = 11;
    for (size_t i = 0; extra && extra[i] && n < 31; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    test_spawn_tool(argv, &worker);

    char ca[600], cert[600], key[600];
    snprintf(ca, sizeof ca, "%s/ca.crt", lab);
    snprintf(cert, sizeof cert, "%s/gateway-1.crt", lab);
    snprintf(key, sizeof key, "%s/gateway-1.key", lab);
    duet_tls_options tls = {
        .ca_file = ca, .cert_file = cert, .key_file = key, .server_name = "worker-1"};
    duet_rpc_limits limits;
    duet_rpc_limits_default(&limits);
    duet_status st;
    cr_assert_eq(duet_rpc_client_new(listen, &tls, &limits, &client, &st), DUET_OK, "%s",
                 st.message);
    if (duet_rpc_client_wait_ready(client, 20000, &st) != DUET_OK) {
        char *err = test_process_stderr(&worker);
        cr_assert_fail("worker not reachable: %s; its stderr:\n%s", st.message, err ? err : "");
    }
}

static void start_worker(void)
{
    start_worker_with(NULL);
}

static void stop_worker(void)
{
    duet_rpc_client_free(client);
    client = NULL;
    test_process_forget(&worker);
    if (lab[0]) {
        test_remove_dir(lab);
    }
}

/* Ends a test with a clean shutdown: SIGTERM gives exit 0, which under the sanitizers also
 * means no leaks and no errors in the worker after whatever the test did. */
static void expect_clean_exit(void)
{
    duet_rpc_client_free(client);
    client = NULL;
    int rc = test_process_stop(&worker, SIGTERM, 30000);
    char *err = test_process_stderr(&worker);
    cr_assert_eq(rc, 0, "worker exit status %d after SIGTERM; its stderr:\n%s", rc, err ? err : "");
    free(err);
}

TestSuite(worker_service, .init = start_worker, .fini = stop_worker);

/* A unary call; returns the status code, *resp (free it) on success. */
static duet_code call(const char *method, const ProtobufCMessage *req, uint8_t **resp, size_t *len,
                      duet_status *st)
{
    size_t n = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    protobuf_c_message_pack(req, buf);
    duet_code rc = duet_rpc_call_unary(client, method, buf, n, 10000, resp, len, st);
    free(buf);
    return rc;
}

/* The engine's tokenizer, straight from the model file. */
static duet_tokenizer *local_tokenizer(void)
{
    duet_gguf *g;
    duet_vocab v;
    duet_tokenizer *t;
    duet_status st;
    cr_assert_eq(duet_gguf_open(model, &g, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_vocab_from_gguf(g, &v, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_tokenizer_create(&v, &t, &st), DUET_OK, "%s", st.message);
    duet_vocab_free(&v);
    duet_gguf_close(g);
    return t;
}

static const char *const TEXTS[] = {"Once upon a time, there was a little girl.",
                                    "  Lily   liked\n\nto play  ", "ünïcödé and 😀", ""};

Test(worker_service, info_and_vocabulary_match_the_model)
{
    Duet__V1__InfoRequest req = DUET__V1__INFO_REQUEST__INIT;
    req.include_vocabulary = true;
    uint8_t *resp;
    size_t len;
    duet_status st;
    cr_assert_eq(call(DUET_WORKER_METHOD("Info"), &req.base, &resp, &len, &st), DUET_OK, "%s",
                 st.message);
    Duet__V1__InfoResponse *info = duet__v1__info_response__unpack(NULL, len, resp);
    free(resp);
    cr_assert_not_null(info);
    cr_assert_str_eq(info->architecture, "llama");
    cr_assert_eq(info->vocab_size, 512);
    duet_gguf *g;
    uint32_t trained = 0;
    cr_assert_eq(duet_gguf_open(model, &g, &st), DUET_OK, "%s", st.message);
    cr_assert(duet_gguf_get_u32(g, "llama.context_length", &trained));
    duet_gguf_close(g);
    cr_assert_eq(info->context_length, trained, "context %u, the model's %u", info->context_length,
                 trained);
    cr_assert_eq(info->load_state, DUET__V1__LOAD_STATE__LOAD_STATE_READY);
    cr_assert_gt(info->model_bytes, 0);
    cr_assert_str_not_empty(info->worker_version);
    cr_assert_not_null(info->vocabulary);

    /* the gateway's tokenizer, built from the wire, counts exactly like the engine's */
    duet_vocab v;
    duet_tokenizer *remote, *local = local_tokenizer();
    cr_assert_eq(duet_vocab_from_proto(info->vocabulary, &v, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_tokenizer_create(&v, &remote, &st), DUET_OK, "%s", st.message);
    for (size_t i = 0; i < sizeof TEXTS / sizeof TEXTS[0]; i++) {
        int32_t *a, *b;
        size_t na, nb;
        cr_assert_eq(duet_tokenize(remote, TEXTS[i], strlen(TEXTS[i]), true, true, &a, &na, &st),
                     DUET_OK);
        cr_assert_eq(duet_tokenize(local, TEXTS[i], strlen(TEXTS[i]), true, true, &b, &nb, &st),
                     DUET_OK);
        cr_assert_eq(na, nb, "text %zu: %zu ids from the wire vocabulary, %zu locally", i, na, nb);
        cr_assert(na == 0 || memcmp(a, b, na * sizeof *a) == 0, "text %zu: ids differ", i);
        free(a);
        free(b);
    }
    duet_tokenizer_free(remote);
    duet_tokenizer_free(local);
    duet_vocab_free(&v);
    duet__v1__info_response__free_unpacked(info, NULL);
}

Test(worker_service, tokenize_detokenize_round_trip)
{
    duet_tokenizer *local = local_tokenizer();
    for (size_t i = 0; i < sizeof TEXTS / sizeof TEXTS[0]; i++) {
        Duet__V1__TokenizeRequest req = DUET__V1__TOKENIZE_REQUEST__INIT;
        req.text = (char *)TEXTS[i];
        req.add_special = true;
        uint8_t *resp;
        size_t len;
        duet_status st;
        cr_assert_eq(call(DUET_WORKER_METHOD("Tokenize"), &req.base, &resp, &len, &st), DUET_OK,
                     "%s", st.message);
        Duet__V1__TokenizeResponse *tr = duet__v1__tokenize_response__unpack(NULL, len, resp);
        free(resp);
        cr_assert_not_null(tr);
        int32_t *want;
        size_t n_want;
        cr_assert_eq(
            duet_tokenize(local, TEXTS[i], strlen(TEXTS[i]), true, false, &want, &n_want, &st),
            DUET_OK);
        cr_assert_eq(tr->n_ids, n_want, "text %zu", i);
        for (size_t k = 0; k < n_want; k++) {
            cr_assert_eq(tr->ids[k], (uint32_t)want[k], "text %zu id %zu", i, k);
        }
        cr_assert(n_want > 0 && tr->ids[0] == 1, "text %zu: BOS first", i);
        free(want);

        /* back to text, without the BOS */
        Duet__V1__DetokenizeRequest dreq = DUET__V1__DETOKENIZE_REQUEST__INIT;
        dreq.ids = tr->ids + 1;
        dreq.n_ids = tr->n_ids - 1;
        cr_assert_eq(call(DUET_WORKER_METHOD("Detokenize"), &dreq.base, &resp, &len, &st), DUET_OK,
                     "%s", st.message);
        Duet__V1__DetokenizeResponse *dr = duet__v1__detokenize_response__unpack(NULL, len, resp);
        free(resp);
        cr_assert_not_null(dr);
        cr_assert_str_eq(dr->text, TEXTS[i]);
        duet__v1__detokenize_response__free_unpacked(dr, NULL);
        duet__v1__tokenize_response__free_unpacked(tr, NULL);
    }
    duet_tokenizer_free(local);
}

Test(worker_service, bad_requests_are_refused_and_the_worker_keeps_serving)
{
    duet_status st;
    uint8_t *resp = NULL;
    size_t len;
    /* a field tag with a truncated varint length: not a message */
    const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff};
    cr_assert_eq(duet_rpc_call_unary(client, DUET_WORKER_METHOD("Tokenize"), garbage,
                                     sizeof garbage, 5000, &resp, &len, &st),
                 DUET_INVALID_ARGUMENT, "got %s", st.message);
    cr_assert(strstr(st.message, "malformed TokenizeRequest"), "%s", st.message);

    uint32_t ids[] = {5, 512, 7};
    Duet__V1__DetokenizeRequest dreq = DUET__V1__DETOKENIZE_REQUEST__INIT;
    dreq.ids = ids;
    dreq.n_ids = 3;
    cr_assert_eq(call(DUET_WORKER_METHOD("Detokenize"), &dreq.base, &resp, &len, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "512") && strstr(st.message, "index 1"), "%s", st.message);

    cr_assert_neq(
        duet_rpc_call_unary(client, "duet.v1.Worker/NoSuchMethod", NULL, 0, 5000, &resp, &len, &st),
        DUET_OK);

    Duet__V1__HealthRequest h = DUET__V1__HEALTH_REQUEST__INIT;
    cr_assert_eq(call(DUET_WORKER_METHOD("Health"), &h.base, &resp, &len, &st), DUET_OK, "%s",
                 st.message);
    Duet__V1__HealthResponse *hr = duet__v1__health_response__unpack(NULL, len, resp);
    free(resp);
    cr_assert_not_null(hr);
    cr_assert_eq(hr->state, DUET__V1__LOAD_STATE__LOAD_STATE_READY);
    cr_assert_eq(hr->layers_loaded, hr->layers_total);
    cr_assert_eq(hr->layers_total, 5);
    cr_assert_geq(hr->total_requests, 3, "the refused calls count as requests");
    duet__v1__health_response__free_unpacked(hr, NULL);
    expect_clean_exit();
}

Test(worker_service, sigterm_is_a_clean_exit)
{
    expect_clean_exit();
}

/* ---- configuration mistakes: no server, no client ---- */

Test(worker_config_errors, unknown_key_and_missing_model)
{
    char dir[512], conf[600];
    test_make_temp_dir(dir, sizeof dir, "duet-worker-conf");
    snprintf(conf, sizeof conf, "%s/w.yaml", dir);
    FILE *f = fopen(conf, "w");
    fputs("model:\n  path: x.gguf\n  thread: 2\n", f);
    fclose(f);
    const char *argv[] = {"duet-worker", "-c", conf, NULL};
    char *out, *err;
    cr_assert_eq(test_run_tool_capture(argv, &out, &err), 2);
    cr_assert(strstr(err, "w.yaml:3:3") && strstr(err, "thread"), "%s", err);
    free(out);
    free(err);

    const char *none[] = {"duet-worker", "--listen", "tcp://127.0.0.1:1", "--insecure", NULL};
    cr_assert_eq(test_run_tool_capture(none, &out, &err), 2);
    cr_assert(strstr(err, "no model"), "%s", err);
    free(out);
    free(err);

    const char *missing[] = {
        "duet-worker", "-m", "/nonexistent/m.gguf", "--listen", "tcp://127.0.0.1:1",
        "--insecure",  NULL};
    cr_assert_neq(test_run_tool_capture(missing, &out, &err), 0);
    cr_assert(strstr(err, "/nonexistent/m.gguf"), "%s", err);
    free(out);
    free(err);
    test_remove_dir(dir);
}

/* ---- Generate ---- */

/* One Generate stream, collected. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    uint32_t ids[4096];
    size_t n_ids;
    char text[16384];
    size_t text_len;
    size_t chunks;
    bool ended;
    duet_status status;
    Duet__V1__GenerateEnd *end;
    duet_rpc_stream *stream;
} gen_stream;

static void on_chunk(void *arg, const uint8_t *msg, size_t len)
{
    gen_stream *g = arg;
    Duet__V1__GenerateChunk *c = duet__v1__generate_chunk__unpack(NULL, len, msg);
    pthread_mutex_lock(&g->lock);
    if (c) {
        for (size_t i = 0; i < c->n_ids && g->n_ids < 4096; i++) {
            g->ids[g->n_ids++] = c->ids[i];
        }
        size_t t = strlen(c->text);
        if (g->text_len + t < sizeof g->text) {
            memcpy(g->text + g->text_len, c->text, t + 1);
            g->text_len += t;
        }
        g->chunks++;
        duet__v1__generate_chunk__free_unpacked(c, NULL);
    }
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->lock);
}

static void on_end(void *arg, const duet_status *st, const uint8_t *msg, size_t len)
{
    gen_stream *g = arg;
    pthread_mutex_lock(&g->lock);
    g->status = *st;
    if (st->code == DUET_OK) {
        g->end = duet__v1__generate_end__unpack(NULL, len, msg);
    }
    g->ended = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->lock);
}

static gen_stream *gen_start(const Duet__V1__GenerateRequest *req, uint32_t timeout_ms)
{
    gen_stream *g = calloc(1, sizeof *g);
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cv, NULL);
    size_t n = duet__v1__generate_request__get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    duet__v1__generate_request__pack(req, buf);
    duet_rpc_stream_callbacks cb = {.on_message = on_chunk, .on_end = on_end, .arg = g};
    duet_status st;
    duet_rpc_call_stream(client, DUET_WORKER_METHOD("Generate"), buf, n, timeout_ms, NULL, 0, &cb,
                         &g->stream, &st);
    free(buf);
    return g;
}

static void gen_wait(gen_stream *g)
{
    pthread_mutex_lock(&g->lock);
    while (!g->ended) {
        pthread_cond_wait(&g->cv, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
}

/* Waits until the stream has n ids or ended. */
static void gen_wait_ids(gen_stream *g, size_t n)
{
    pthread_mutex_lock(&g->lock);
    while (g->n_ids < n && !g->ended) {
        pthread_cond_wait(&g->cv, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
}

static void gen_free(gen_stream *g)
{
    if (g->stream) {
        duet_rpc_stream_release(g->stream);
    }
    if (g->end) {
        duet__v1__generate_end__free_unpacked(g->end, NULL);
    }
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cv);
    free(g);
}

/* A greedy request for the given prompt ids. */
static void greedy_request(Duet__V1__GenerateRequest *req, Duet__V1__TokenIds *ids,
                           Duet__V1__SamplingParams *sp, uint32_t *prompt, size_t n,
                           uint32_t max_tokens)
{
    duet__v1__generate_request__init(req);
    duet__v1__token_ids__init(ids);
    duet__v1__sampling_params__init(sp);
    ids->ids = prompt;
    ids->n_ids = n;
    sp->temperature_opt_case = DUET__V1__SAMPLING_PARAMS__TEMPERATURE_OPT_TEMPERATURE;
    sp->temperature = 0;
    req->prompt_case = DUET__V1__GENERATE_REQUEST__PROMPT_TOKENS;
    req->tokens = ids;
    req->sampling = sp;
    req->max_tokens_opt_case = DUET__V1__GENERATE_REQUEST__MAX_TOKENS_OPT_MAX_TOKENS;
    req->max_tokens = max_tokens;
}

static const uint32_t STORIES_GREEDY[64] = {
    403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
    401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
    328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267,
    337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13,  438, 310};

Test(worker_service, generate_streams_the_reference_greedy_tokens)
{
    uint32_t bos = 1;
    Duet__V1__GenerateRequest req;
    Duet__V1__TokenIds ids;
    Duet__V1__SamplingParams sp;
    greedy_request(&req, &ids, &sp, &bos, 1, 64);
    gen_stream *g = gen_start(&req, 30000);
    gen_wait(g);
    cr_assert_eq(g->status.code, DUET_OK, "%s", g->status.message);
    cr_assert_eq(g->n_ids, 64);
    for (size_t i = 0; i < 64; i++) {
        cr_assert_eq(g->ids[i], STORIES_GREEDY[i], "token %zu: %u, want %u", i, g->ids[i],
                     STORIES_GREEDY[i]);
    }
    cr_assert(strstr(g->text, "Once upon a time, there was a little girl named Lily."), "%s",
              g->text);
    cr_assert_not_null(g->end);
    cr_assert_eq(g->end->finish_reason, DUET__V1__FINISH_REASON__FINISH_REASON_LENGTH);
    cr_assert_eq(g->end->usage->prompt_tokens, 1);
    cr_assert_eq(g->end->usage->completion_tokens, 64);
    cr_assert_gt(g->chunks, 1, "tokens are streamed, not sent at the end");
    gen_free(g);
    expect_clean_exit();
}

/* Prompts of different lengths, each run alone and then all eight at once. */
Test(worker_service, concurrent_streams_equal_single_streams)
{
    enum { N = 8, GEN = 40 };
    uint32_t prompts[N][12];
    size_t lens[N];
    for (size_t i = 0; i < N; i++) {
        lens[i] = 1 + (i * 5) % 12;
        prompts[i][0] = 1;
        for (size_t k = 1; k < lens[i]; k++) {
            prompts[i][k] = STORIES_GREEDY[(i * 7 + k) % 64];
        }
    }
    uint32_t alone[N][GEN];
    Duet__V1__GenerateRequest req[N];
    Duet__V1__TokenIds ids[N];
    Duet__V1__SamplingParams sp[N];
    for (size_t i = 0; i < N; i++) {
        greedy_request(&req[i], &ids[i], &sp[i], prompts[i], lens[i], GEN);
        req[i].ignore_eos = true;
        gen_stream *g = gen_start(&req[i], 30000);
        gen_wait(g);
        cr_assert_eq(g->status.code, DUET_OK, "%s", g->status.message);
        cr_assert_eq(g->n_ids, GEN);
        memcpy(alone[i], g->ids, sizeof alone[i]);
        gen_free(g);
    }
    gen_stream *g[N];
    for (size_t i = 0; i < N; i++) {
        g[i] = gen_start(&req[i], 30000);
    }
    for (size_t i = 0; i < N; i++) {
        gen_wait(g[i]);
        cr_assert_eq(g[i]->status.code, DUET_OK, "stream %zu: %s", i, g[i]->status.message);
        cr_assert_eq(g[i]->n_ids, GEN);
        for (size_t k = 0; k < GEN; k++) {
            cr_assert_eq(g[i]->ids[k], alone[i][k], "stream %zu token %zu: %u batched, %u alone", i,
                         k, g[i]->ids[k], alone[i][k]);
        }
        gen_free(g[i]);
    }
    expect_clean_exit();
}

static Duet__V1__HealthResponse *health(void)
{
    Duet__V1__HealthRequest h = DUET__V1__HEALTH_REQUEST__INIT;
    uint8_t *resp;
    size_t len;
    duet_status st;
    cr_assert_eq(call(DUET_WORKER_METHOD("Health"), &h.base, &resp, &len, &st), DUET_OK, "%s",
                 st.message);
    Duet__V1__HealthResponse *hr = duet__v1__health_response__unpack(NULL, len, resp);
    free(resp);
    cr_assert_not_null(hr);
    return hr;
}

/* Waits until the worker reports nothing running or waiting. */
static void wait_idle(void)
{
    for (int i = 0; i < 500; i++) {
        Duet__V1__HealthResponse *hr = health();
        bool idle = hr->running_sequences == 0 && hr->waiting_sequences == 0;
        duet__v1__health_response__free_unpacked(hr, NULL);
        if (idle) {
            return;
        }
        usleep(10000);
    }
    cr_assert_fail("the worker still runs sequences after 5 s");
}

Test(worker_service, cancel_and_deadline_stop_generation)
{
    uint32_t bos = 1;
    Duet__V1__GenerateRequest req;
    Duet__V1__TokenIds ids;
    Duet__V1__SamplingParams sp;
    greedy_request(&req, &ids, &sp, &bos, 1, 2000);
    req.ignore_eos = true;

    gen_stream *g = gen_start(&req, 0);
    gen_wait_ids(g, 5);
    duet_rpc_stream_cancel(g->stream);
    gen_wait(g);
    cr_assert_eq(g->status.code, DUET_CANCELLED, "%s", g->status.message);
    cr_assert_lt(g->n_ids, 2000, "stopped early");
    gen_free(g);
    wait_idle();

    g = gen_start(&req, 100); /* 2000 tokens take longer than 100 ms */
    gen_wait(g);
    cr_assert_eq(g->status.code, DUET_DEADLINE_EXCEEDED, "%s", g->status.message);
    gen_free(g);
    wait_idle();

    /* the worker goes on serving */
    greedy_request(&req, &ids, &sp, &bos, 1, 8);
    g = gen_start(&req, 30000);
    gen_wait(g);
    cr_assert_eq(g->status.code, DUET_OK, "%s", g->status.message);
    cr_assert_eq(g->n_ids, 8);
    cr_assert_eq(g->ids[0], STORIES_GREEDY[0]);
    gen_free(g);
    expect_clean_exit();
}

Test(worker_service, bad_generate_requests)
{
    static uint32_t long_prompt[3000];
    for (size_t i = 0; i < 3000; i++) {
        long_prompt[i] = 300;
    }
    Duet__V1__GenerateRequest req;
    Duet__V1__TokenIds ids;
    Duet__V1__SamplingParams sp;
    greedy_request(&req, &ids, &sp, long_prompt, 3000, 8);
    gen_stream *g = gen_start(&req, 30000);
    gen_wait(g);
    cr_assert_eq(g->status.code, DUET_INVALID_ARGUMENT, "%s", g->status.message);
    cr_assert(strstr(g->status.message, "3000") && strstr(g->status.message, "2048"), "%s",
              g->status.message);
    gen_free(g);

    uint32_t bad_id = 512;
    greedy_request(&req, &ids, &sp, &bad_id, 1, 8);
    g = gen_start(&req, 30000);
    gen_wait(g);
    cr_assert_eq(g->status.code, DUET_INVALID_ARGUMENT, "%s", g->status.message);
    cr_assert(strstr(g->status.message, "512"), "%s", g->status.message);
    gen_free(g);

    uint32_t bos = 1;
    greedy_request(&req, &ids, &sp, &bos, 1, 8);
    sp.top_p_opt_case = DUET__V1__SAMPLING_PARAMS__TOP_P_OPT_TOP_P;
    sp.top_p = 1.5f;
    g = gen_start(&req, 30000);
    gen_wait(g);
    cr_assert_eq(g->status.code, DUET_INVALID_ARGUMENT, "%s", g->status.message);
    gen_free(g);

    duet__v1__generate_request__init(&req); /* no prompt at all */
    g = gen_start(&req, 30000);
    gen_wait(g);
    cr_assert_eq(g->status.code, DUET_INVALID_ARGUMENT, "%s", g->status.message);
    cr_assert(strstr(g->status.message, "no prompt"), "%s", g->status.message);
    gen_free(g);
    expect_clean_exit();
}

/* ---- admission: a worker with room for one stream and two requests in a burst ---- */

static char admission_conf[700];

static void start_small_worker(void)
{
    char dir[512];
    test_make_temp_dir(dir, sizeof dir, "duet-worker-adm");
    snprintf(admission_conf, sizeof admission_conf, "%s/w.yaml", dir);
    FILE *f = fopen(admission_conf, "w");
    fputs("scheduler:\n  max_running: 1\n  max_waiting: 0\nadmission:\n"
          "  requests_per_second: 0.01\n  burst: 3\n",
          f);
    fclose(f);
    const char *extra[] = {"-c", admission_conf, NULL};
    start_worker_with(extra);
}

static void stop_small_worker(void)
{
    stop_worker();
    char dir[700];
    snprintf(dir, sizeof dir, "%s", admission_conf);
    *strrchr(dir, '/') = '\0';
    test_remove_dir(dir);
}

TestSuite(admission, .init = start_small_worker, .fini = stop_small_worker);

Test(admission, over_the_limits_is_resource_exhausted_at_once)
{
    uint32_t bos = 1;
    Duet__V1__GenerateRequest req;
    Duet__V1__TokenIds ids;
    Duet__V1__SamplingParams sp;
    greedy_request(&req, &ids, &sp, &bos, 1, 1500);
    req.ignore_eos = true;
    gen_stream *first = gen_start(&req, 60000);
    gen_wait_ids(first, 1);

    /* the batch is full and nothing may wait */
    greedy_request(&req, &ids, &sp, &bos, 1, 4);
    gen_stream *second = gen_start(&req, 60000);
    gen_wait(second);
    cr_assert_eq(second->status.code, DUET_RESOURCE_EXHAUSTED, "%s", second->status.message);
    cr_assert(strstr(second->status.message, "full"), "%s", second->status.message);
    gen_free(second);

    /* the bucket (burst 3, nearly no refill) is empty after the third request */
    gen_stream *third = gen_start(&req, 60000);
    gen_wait(third);
    gen_free(third);
    gen_stream *fourth = gen_start(&req, 60000);
    gen_wait(fourth);
    cr_assert_eq(fourth->status.code, DUET_RESOURCE_EXHAUSTED, "%s", fourth->status.message);
    cr_assert(strstr(fourth->status.message, "retry in"), "%s", fourth->status.message);
    gen_free(fourth);

    /* the admitted stream was never disturbed */
    gen_wait(first);
    cr_assert_eq(first->status.code, DUET_OK, "%s", first->status.message);
    cr_assert_eq(first->n_ids, 1500);
    gen_free(first);
    expect_clean_exit();
}

/* ---- sessions: turn 2 computes only what turn 1 did not ---- */

Test(worker_service, session_reuse_computes_only_new_tokens)
{
    uint32_t turn2[64];
    size_t n1 = 6, g1 = 10, extra = 5;
    for (size_t i = 0; i < n1; i++) {
        turn2[i] = STORIES_GREEDY[i + 20];
    }
    turn2[0] = 1;
    Duet__V1__GenerateRequest req;
    Duet__V1__TokenIds ids;
    Duet__V1__SamplingParams sp;
    greedy_request(&req, &ids, &sp, turn2, n1, (uint32_t)g1);
    req.ignore_eos = true;
    req.session_id = "alice";
    gen_stream *g = gen_start(&req, 30000);
    gen_wait(g);
    cr_assert_eq(g->status.code, DUET_OK, "%s", g->status.message);
    cr_assert_eq(g->end->usage->cached_prompt_tokens, 0, "a new session has nothing cached");
    memcpy(turn2 + n1, g->ids, g1 * sizeof *turn2);
    gen_free(g);
    for (size_t i = 0; i < extra; i++) {
        turn2[n1 + g1 + i] = STORIES_GREEDY[40 + i];
    }
    size_t n2 = n1 + g1 + extra;

    /* the reference: the same prompt with no session */
    greedy_request(&req, &ids, &sp, turn2, n2, 12);
    req.ignore_eos = true;
    gen_stream *fresh = gen_start(&req, 30000);
    gen_wait(fresh);
    cr_assert_eq(fresh->status.code, DUET_OK, "%s", fresh->status.message);
    cr_assert_eq(fresh->end->usage->cached_prompt_tokens, 0);

    req.session_id = "alice";
    gen_stream *again = gen_start(&req, 30000);
    gen_wait(again);
    cr_assert_eq(again->status.code, DUET_OK, "%s", again->status.message);
    /* turn 1's prompt and answer are cached, except the last answer token, never fed */
    cr_assert_eq(again->end->usage->cached_prompt_tokens, n1 + g1 - 1, "cached %u",
                 again->end->usage->cached_prompt_tokens);
    cr_assert_eq(again->end->usage->prompt_tokens, n2);
    cr_assert_eq(again->n_ids, fresh->n_ids);
    for (size_t i = 0; i < fresh->n_ids; i++) {
        cr_assert_eq(again->ids[i], fresh->ids[i], "token %zu: %u with reuse, %u without", i,
                     again->ids[i], fresh->ids[i]);
    }

    /* another session never sees alice's cache */
    req.session_id = "bob";
    gen_stream *other = gen_start(&req, 30000);
    gen_wait(other);
    cr_assert_eq(other->status.code, DUET_OK, "%s", other->status.message);
    cr_assert_eq(other->end->usage->cached_prompt_tokens, 0);
    gen_free(other);
    gen_free(again);
    gen_free(fresh);

    Duet__V1__HealthResponse *hr = health();
    cr_assert_gt(hr->kv_pages_used, 0, "idle sessions keep their pages");
    duet__v1__health_response__free_unpacked(hr, NULL);
    expect_clean_exit();
}

Test(worker_service, cancelled_sequences_give_their_pages_back)
{
    uint32_t bos = 1;
    Duet__V1__GenerateRequest req;
    Duet__V1__TokenIds ids;
    Duet__V1__SamplingParams sp;
    greedy_request(&req, &ids, &sp, &bos, 1, 1800);
    req.ignore_eos = true;
    req.session_id = "carol";
    gen_stream *g = gen_start(&req, 0);
    gen_wait_ids(g, 100);
    Duet__V1__HealthResponse *hr = health();
    cr_assert_gt(hr->kv_pages_used, 0, "a running sequence holds pages");
    cr_assert_eq(hr->running_sequences, 1);
    duet__v1__health_response__free_unpacked(hr, NULL);

    /* Cancel by session id, as a second gateway would */
    Duet__V1__CancelRequest c = DUET__V1__CANCEL_REQUEST__INIT;
    c.session_id = "carol";
    uint8_t *resp;
    size_t len;
    duet_status st;
    cr_assert_eq(call(DUET_WORKER_METHOD("Cancel"), &c.base, &resp, &len, &st), DUET_OK, "%s",
                 st.message);
    Duet__V1__CancelResponse *cr = duet__v1__cancel_response__unpack(NULL, len, resp);
    free(resp);
    cr_assert_eq(cr->cancelled, 1);
    duet__v1__cancel_response__free_unpacked(cr, NULL);
    gen_wait(g);
    cr_assert_eq(g->status.code, DUET_CANCELLED, "%s", g->status.message);
    gen_free(g);
    wait_idle();
    hr = health();
    cr_assert_eq(hr->kv_pages_used, 0, "%u pages still used after the cancel", hr->kv_pages_used);
    duet__v1__health_response__free_unpacked(hr, NULL);
    expect_clean_exit();
}

/* ---- staged loading: a worker reading its 1.1 MiB model at 0.25 MiB/s ---- */

static char slow_conf[700];

static void start_slow_worker(void)
{
    char dir[512];
    test_make_temp_dir(dir, sizeof dir, "duet-worker-slow");
    snprintf(slow_conf, sizeof slow_conf, "%s/w.yaml", dir);
    FILE *f = fopen(slow_conf, "w");
    fputs("model:\n  load_rate_mib: 0.25\n", f);
    fclose(f);
    const char *extra[] = {"-c", slow_conf, NULL};
    start_worker_with(extra);
}

static void stop_slow_worker(void)
{
    stop_worker();
    *strrchr(slow_conf, '/') = '\0';
    test_remove_dir(slow_conf);
}

TestSuite(staged, .init = start_slow_worker, .fini = stop_slow_worker);

Test(staged, health_reports_loading_then_ready_and_generate_waits_for_layers)
{
    Duet__V1__HealthResponse *hr = health();
    cr_assert_eq(hr->state, DUET__V1__LOAD_STATE__LOAD_STATE_LOADING,
                 "state %d right after start (0.25 MiB/s, a 1.1 MiB model)", hr->state);
    cr_assert_lt(hr->bytes_loaded, hr->bytes_total);
    cr_assert_gt(hr->bytes_total, 1000000);
    cr_assert_eq(hr->layers_total, 5);
    duet__v1__health_response__free_unpacked(hr, NULL);

    /* accepted while loading; its layers arrive as it goes */
    uint32_t bos = 1;
    Duet__V1__GenerateRequest req;
    Duet__V1__TokenIds ids;
    Duet__V1__SamplingParams sp;
    greedy_request(&req, &ids, &sp, &bos, 1, 16);
    gen_stream *g = gen_start(&req, 30000);
    gen_wait(g);
    cr_assert_eq(g->status.code, DUET_OK, "%s", g->status.message);
    for (size_t i = 0; i < 16; i++) {
        cr_assert_eq(g->ids[i], STORIES_GREEDY[i]);
    }
    gen_free(g);
    hr = health();
    cr_assert_eq(hr->state, DUET__V1__LOAD_STATE__LOAD_STATE_READY);
    cr_assert_eq(hr->bytes_loaded, hr->bytes_total);
    cr_assert_eq(hr->layers_loaded, 5);
    duet__v1__health_response__free_unpacked(hr, NULL);
    expect_clean_exit();
}

Test(worker_config_errors, a_model_that_does_not_fit_is_refused_with_the_numbers)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    char path[1024];
    snprintf(path, sizeof path, "%s/stories260K.gguf", dir ? dir : "../shared/models");
    const char *argv[] = {"duet-worker", "-m",       path,      "--listen", "tcp://127.0.0.1:1",
                          "--insecure",  "--kv-mib", "1048576", NULL};
    char *out, *err;
    cr_assert_eq(test_run_tool_capture(argv, &out, &err), 1);
    cr_assert(strstr(err, "--memory-factor") && strstr(err, "GiB"), "%s", err);
    free(out);
    free(err);
}

Test(worker_service, sigterm_lets_running_streams_finish)
{
    uint32_t bos = 1;
    Duet__V1__GenerateRequest req;
    Duet__V1__TokenIds ids;
    Duet__V1__SamplingParams sp;
    greedy_request(&req, &ids, &sp, &bos, 1, 1500);
    req.ignore_eos = true;
    gen_stream *g = gen_start(&req, 0);
    gen_wait_ids(g, 20);
    cr_assert(!g->ended, "the stream ended before the signal: make it longer");
    kill(worker.pid, SIGTERM);
    usleep(300 * 1000);

    /* draining: new work is refused, the running stream goes on */
    greedy_request(&req, &ids, &sp, &bos, 1, 4);
    gen_stream *late = gen_start(&req, 30000);
    gen_wait(late);
    cr_assert_eq(late->status.code, DUET_UNAVAILABLE, "%s", late->status.message);
    cr_assert(strstr(late->status.message, "shutting down"), "%s", late->status.message);
    gen_free(late);

    gen_wait(g);
    cr_assert_eq(g->status.code, DUET_OK, "%s", g->status.message);
    cr_assert_eq(g->n_ids, 1500);
    gen_free(g);
    duet_rpc_client_free(client);
    client = NULL;
    int rc = test_process_wait(&worker, 30000);
    char *err = test_process_stderr(&worker);
    cr_assert_eq(rc, 0, "exit status %d; stderr:\n%s", rc, err ? err : "");
    free(err);
}
