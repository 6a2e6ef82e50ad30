/* duet-gateway end to end: a real worker (stories260K) and a real gateway process, mutual
 * TLS between them with duet-certs certificates, HTTP to the gateway. API keys are checked
 * (401), the model is listed, answers come whole and streamed in OpenAI's shapes, history
 * too long for the context is trimmed and reported, a user over their burst gets 429 with
 * Retry-After while another user is served, and with the worker gone the answer is 503
 * with Retry-After. The gateway ends cleanly on SIGTERM. */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

static char lab[512], model[1024], conf[700];
static test_process worker, gateway;
static int http_port;

static void start(void)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    snprintf(model, sizeof model, "%s/stories260K.gguf", dir ? dir : "../shared/models");
    if (access(model, R_OK) != 0) {
        cr_skip_test("TEST MODELS MISSING: %s not found (set DUET_TEST_MODELS)", model);
    }
    test_make_temp_dir(lab, sizeof lab, "duet-gw");
    const char *names[] = {"worker-1", "gateway-1", NULL};
    test_make_lab(lab, names);
    char worker_url[64], http[64];
    snprintf(worker_url, sizeof worker_url, "tls+tcp://127.0.0.1:%d", test_free_port());
    http_port = test_free_port();
    snprintf(http, sizeof http, "127.0.0.1:%d", http_port);
    /* a small context, so a long conversation must be trimmed */
    const char *wargv[] = {"duet-worker", "-m",    model,    "--listen", worker_url,
                           "--certs",     lab,     "--name", "worker-1", "-t",
                           "1",           "--ctx", "160",    NULL};
    test_spawn_tool(wargv, &worker);
    /* alice may make 3 requests at once, then one every 100 s */
    snprintf(conf, sizeof conf, "%s/g.yaml", lab);
    FILE *f = fopen(conf, "w");
    fprintf(f,
            "workers:\n  - url: %s\n    server_name: worker-1\n"
            "limits:\n  user_requests_per_second: 0.01\n  user_request_burst: 3\n"
            "routing:\n  health_interval_ms: 200\n  answer_tokens: 32\n"
            "sessions:\n  db: %s/sessions.db\n",
            worker_url, lab);
    fclose(f);
    const char *gargv[] = {"duet-gateway",    "-c",        conf,          "--http",    http,
                           "--certs",         lab,         "--name",      "gateway-1", "--api-key",
                           "key-alice:alice", "--api-key", "key-bob:bob", NULL};
    test_spawn_tool(gargv, &gateway);
    char why[1024];
    if (!test_wait_gateway_ready(&gateway, http_port, 20000, why, sizeof why)) {
        /* Criterion runs no .fini after a failed .init: leave no process behind */
        test_process_forget(&gateway);
        test_process_forget(&worker);
        cr_assert_fail("%s", why);
    }
}

static void stop(void)
{
    test_process_forget(&gateway);
    test_process_forget(&worker);
    test_remove_dir(lab);
}

TestSuite(gateway, .init = start, .fini = stop);

static int post(const char *key, const char *body, char *out, size_t cap)
{
    char req[65536];
    snprintf(req, sizeof req,
             "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
             "%s%s%sContent-Length: %zu\r\n\r\n%s",
             key ? "Authorization: Bearer " : "", key ? key : "", key ? "\r\n" : "", strlen(body),
             body);
    test_http(http_port, req, out, cap, 30000);
    return test_http_status(out);
}

static const char *body_of(const char *answer)
{
    const char *b = strstr(answer, "\r\n\r\n");
    return b ? b + 4 : "";
}

Test(gateway, keys_models_and_whole_answers)
{
    char buf[65536];
    const char *req = "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a "
                      "story.\"}],\"max_tokens\":12,\"temperature\":0}";
    cr_assert_eq(post(NULL, req, buf, sizeof buf), 401, "%s", buf);
    cr_assert(strstr(buf, "authentication_error"), "%s", buf);
    cr_assert_eq(post("wrong", req, buf, sizeof buf), 401, "%s", buf);

    test_http(http_port,
              "GET /v1/models HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer key-bob\r\n\r\n", buf,
              sizeof buf, 5000);
    cr_assert_eq(test_http_status(buf), 200, "%s", buf);
    cr_assert(strstr(body_of(buf), "\"object\":\"list\"") && strstr(buf, "\"owned_by\":\"duet\""),
              "%s", buf);

    cr_assert_eq(post("key-bob", req, buf, sizeof buf), 200, "%s", buf);
    const char *b = body_of(buf);
    cr_assert(strstr(b, "\"object\":\"chat.completion\""), "%s", b);
    cr_assert(strstr(b, "\"finish_reason\":\"length\""), "%s", b);
    cr_assert(strstr(b, "\"completion_tokens\":12"), "%s", b);
    cr_assert(strstr(b, "\"role\":\"assistant\",\"content\":\""), "%s", b);
    cr_assert(strstr(buf, "X-Duet-Trimmed: 0"), "%s", buf);

    cr_assert_eq(post("key-bob", "{\"messages\":[]}", buf, sizeof buf), 400, "%s", buf);
    cr_assert(strstr(buf, "\"param\":\"messages\""), "%s", buf);

    /* what happened shows in /metrics */
    test_http(http_port, "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof buf, 5000);
    cr_assert_eq(test_http_status(buf), 200, "%s", buf);
    cr_assert(strstr(buf, "duet_gateway_responses_total{status=\"2xx\"} 1\n"), "%s", buf);
    cr_assert(strstr(buf, "duet_gateway_responses_total{status=\"401\"} 2\n"), "%s", buf);
    cr_assert(strstr(buf, "duet_gateway_responses_total{status=\"400\"} 1\n"), "%s", buf);
    cr_assert(strstr(buf, "duet_gateway_completion_tokens_total 12\n"), "%s", buf);
    cr_assert(strstr(buf, "} 1\n") && strstr(buf, "duet_worker_up{worker=\"tls+tcp://"), "%s", buf);
    const char *rss = strstr(buf, "\nprocess_resident_memory_bytes ");
    cr_assert_not_null(rss, "%s", buf);
    long long bytes = atoll(rss + 31);
    cr_assert(bytes > (1 << 20) && bytes < (1LL << 32), "a plausible RSS: %lld", bytes);
}

Test(gateway, streamed_answers_in_openai_shape)
{
    char buf[65536];
    const char *req = "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story.\"}],"
                      "\"max_tokens\":8,\"temperature\":0,\"stream\":true,"
                      "\"stream_options\":{\"include_usage\":true}}";
    cr_assert_eq(post("key-bob", req, buf, sizeof buf), 200, "%s", buf);
    cr_assert(strstr(buf, "Content-Type: text/event-stream"), "%s", buf);
    cr_assert(strstr(buf, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}"), "%s", buf);
    cr_assert(strstr(buf, "\"finish_reason\":\"length\""), "%s", buf);
    cr_assert(strstr(buf, "\"choices\":[],\"usage\":{\"prompt_tokens\":"), "%s", buf);
    cr_assert(strstr(buf, "\"completion_tokens\":8"), "%s", buf);
    cr_assert(strstr(buf, "data: [DONE]\n\n"), "%s", buf);
    size_t deltas = 0;
    for (const char *p = buf; (p = strstr(p, "\"delta\":{\"content\":")); p++) {
        deltas++;
    }
    cr_assert_geq(deltas, 2, "tokens come as separate events");
}

Test(gateway, history_too_long_for_the_context_is_trimmed_and_reported)
{
    char body[16384];
    size_t n = (size_t)snprintf(body, sizeof body,
                                "{\"messages\":[{\"role\":\"system\",\"content\":"
                                "\"Be brief.\"}");
    for (int i = 0; i < 20; i++) {
        n += (size_t)snprintf(body + n, sizeof body - n,
                              ",{\"role\":\"user\",\"content\":\"Question %d about the cat and the "
                              "dog?\"},{\"role\":\"assistant\",\"content\":\"Answer %d: they "
                              "played in the park.\"}",
                              i, i);
    }
    snprintf(body + n, sizeof body - n,
             ",{\"role\":\"user\",\"content\":\"And then?\"}],\"max_tokens\":16,"
             "\"temperature\":0}");
    char buf[65536];
    cr_assert_eq(post("key-bob", body, buf, sizeof buf), 200, "%s", buf);
    const char *t = strstr(buf, "X-Duet-Trimmed: ");
    cr_assert_not_null(t, "%s", buf);
    cr_assert_gt(atoi(t + 16), 0, "%s", buf);
    cr_assert(strstr(buf, "\"trimmed\":{\"dropped_messages\":"), "%s", buf);
    const char *pt = strstr(buf, "\"prompt_tokens\":");
    cr_assert_not_null(pt);
    cr_assert_leq(atoi(pt + 16) + 16, 160, "the trimmed prompt fits: %s", pt);
}

Test(gateway, a_user_over_their_burst_gets_429_and_others_are_served)
{
    char buf[65536];
    const char *req = "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":2}";
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(post("key-alice", req, buf, sizeof buf), 200, "request %d: %s", i, buf);
    }
    cr_assert_eq(post("key-alice", req, buf, sizeof buf), 429, "%s", buf);
    cr_assert(strstr(buf, "Retry-After: "), "%s", buf);
    cr_assert(strstr(buf, "rate_limit_error"), "%s", buf);
    cr_assert_eq(post("key-bob", req, buf, sizeof buf), 200, "bob is not affected: %s", buf);
}

Test(gateway, no_worker_left_is_503_with_retry_after_and_sigterm_is_clean)
{
    test_process_stop(&worker, SIGKILL, 5000);
    char buf[65536];
    const char *req = "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":2}";
    int status = 0;
    for (int i = 0; i < 50 && status != 503; i++) {
        status = post("key-bob", req, buf, sizeof buf);
        usleep(100 * 1000);
    }
    cr_assert_eq(status, 503, "%s", buf);
    cr_assert(strstr(buf, "Retry-After: "), "%s", buf);
    int rc = test_process_stop(&gateway, SIGTERM, 20000);
    char *err = test_process_stderr(&gateway);
    cr_assert_eq(rc, 0, "gateway exit %d: %s", rc, err ? err : "");
    free(err);
}

/* With routing.last_resort_message, a gateway that has no worker to serve answers with that
 * text, whole or streamed, and stores it with the session like any answer. */
Test(gateway, with_no_worker_the_configured_message_is_the_answer)
{
    char conf2[700], http2[64], db[700];
    int port2 = test_free_port();
    snprintf(http2, sizeof http2, "127.0.0.1:%d", port2);
    snprintf(conf2, sizeof conf2, "%s/lastresort.yaml", lab);
    snprintf(db, sizeof db, "%s/lastresort.db", lab);
    FILE *f = fopen(conf2, "w");
    fprintf(f,
            "workers:\n  - url: tls+tcp://127.0.0.1:%d\n    server_name: worker-1\n"
            "routing:\n  last_resort_message: \"The assistant is asleep; try later.\"\n"
            "sessions:\n  db: %s\n",
            test_free_port(), db);
    fclose(f);
    const char *gargv[] = {"duet-gateway", "-c",        conf2, "--http",
                           http2,          "--certs",   lab,   "--name",
                           "gateway-1",    "--api-key", "k2",  NULL};
    test_process lonely;
    test_spawn_tool(gargv, &lonely);
    if (!test_wait_listening(port2, 20000)) {
        test_process_forget(&lonely);
        cr_assert_fail("the gateway does not listen on %d", port2);
    }
    char buf[65536];
    char req[1024];
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}";
    snprintf(req, sizeof req,
             "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer k2\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    int status = -1;
    for (int i = 0; i < 100 && status != 200; i++) {
        usleep(100 * 1000);
        if (test_process_wait(&lonely, 0) != -2) {
            break;
        }
        buf[0] = '\0';
        test_http(port2, req, buf, sizeof buf, 5000);
        status = test_http_status(buf);
    }
    cr_assert_eq(status, 200, "%s", buf);
    cr_assert(strstr(buf, "\"content\":\"The assistant is asleep; try later.\""), "%s", buf);
    cr_assert(strstr(buf, "\"finish_reason\":\"stop\""), "%s", buf);
    char session[64] = "";
    const char *h = strstr(buf, "X-Duet-Session: ");
    cr_assert_not_null(h, "%s", buf);
    snprintf(session, sizeof session, "%.32s", h + 16);

    const char *sbody =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"Still?\"}],\"stream\":true}";
    snprintf(req, sizeof req,
             "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer k2\r\n"
             "X-Duet-Session: %s\r\nContent-Length: %zu\r\n\r\n%s",
             session, strlen(sbody), sbody);
    test_http(port2, req, buf, sizeof buf, 5000);
    cr_assert_eq(test_http_status(buf), 200, "%s", buf);
    cr_assert(strstr(buf, "\"delta\":{\"content\":\"The assistant is asleep; try later.\"}"), "%s",
              buf);
    cr_assert(strstr(buf, "data: [DONE]"), "%s", buf);

    snprintf(req, sizeof req,
             "GET /v1/sessions/%s HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer k2\r\n\r\n",
             session);
    test_http(port2, req, buf, sizeof buf, 5000);
    cr_assert_eq(test_http_status(buf), 200, "%s", buf);
    const char *last = strstr(buf, "\"seq\":4");
    cr_assert_not_null(last, "%s", buf);
    cr_assert(strstr(last, "\"content\":\"The assistant is asleep; try later.\",\"partial\":false"),
              "stored as a complete answer: %s", buf);
    int rc = test_process_stop(&lonely, SIGTERM, 20000);
    char *err = test_process_stderr(&lonely);
    cr_assert_eq(rc, 0, "gateway exit %d: %s", rc, err ? err : "");
    free(err);
    test_process_forget(&lonely);
}
