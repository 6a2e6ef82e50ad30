/* The worker daemon end to end: the real duet-worker process serving stories260K over
 * mutual TLS on loopback (certificates from duet-certs), called through the RPC client as
 * a gateway would. Info (with the vocabulary), Health, Tokenize and Detokenize agree with
 * the engine's own tokenizer; malformed requests get INVALID_ARGUMENT and the worker keeps
 * serving; SIGTERM ends it cleanly (exit 0, which under the sanitizers also means no
 * leaks); configuration mistakes stop it with exit 2 and a message. */
#include <criterion/criterion.h>

#include <signal.h>
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

static void start_worker(void)
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
    const char *argv[] = {"duet-worker", "-m",     model,      "--listen", listen, "--certs",
                          lab,           "--name", "worker-1", "-t",       "1",    NULL};
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

static void stop_worker(void)
{
    duet_rpc_client_free(client);
    client = NULL;
    if (worker.pid > 0) {
        test_process_stop(&worker, SIGKILL, 5000);
    }
    if (lab[0]) {
        test_remove_dir(lab);
    }
}

TestSuite(worker_service, .init = start_worker, .fini = stop_worker, .timeout = 120);

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
}

Test(worker_service, sigterm_is_a_clean_exit)
{
    duet_rpc_client_free(client);
    client = NULL;
    int rc = test_process_stop(&worker, SIGTERM, 20000);
    cr_assert_eq(rc, 0, "exit status %d after SIGTERM", rc);
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
