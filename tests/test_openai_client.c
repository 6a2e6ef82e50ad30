/* OpenAI compatibility with real clients: a worker (stories260K) and a gateway, mutual TLS
 * between them, driven over HTTP by the official `openai` Node.js package
 * (tests/node/openai-check.mjs: streamed, whole, the stream helper, an aborted stream, the
 * model list, AuthenticationError and BadRequestError) and by curl, whose raw output is held
 * to the server-sent events OpenAI sends: "data: {json}\n\n" events of
 * chat.completion.chunk objects sharing one id, ending with "data: [DONE]\n\n". */
#include <criterion/criterion.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "support.h"

#define API_KEY "key-openai"

static char lab[512], model[1024];
static char base_url[96]; /* http://127.0.0.1:PORT/v1 */
static test_process worker, gateway;

static void stop(void);

static void start(void)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    snprintf(model, sizeof model, "%s/stories260K.gguf", dir ? dir : "../shared/models");
    if (access(model, R_OK) != 0) {
        cr_skip_test("TEST MODELS MISSING: %s not found (set DUET_TEST_MODELS)", model);
    }
    test_make_temp_dir(lab, sizeof lab, "duet-oai");
    const char *names[] = {"worker-1", "gateway-1", NULL};
    test_make_lab(lab, names);
    char worker_url[64], http[64], conf[600], db[600];
    snprintf(worker_url, sizeof worker_url, "tls+tcp://127.0.0.1:%d", test_free_port());
    int http_port = test_free_port();
    snprintf(http, sizeof http, "127.0.0.1:%d", http_port);
    snprintf(base_url, sizeof base_url, "http://%s/v1", http);
    const char *wargv[] = {"duet-worker", "-m",     model,      "--listen", worker_url, "--certs",
                           lab,           "--name", "worker-1", "-t",       "1",        NULL};
    test_spawn_tool(wargv, &worker);
    /* limits high enough for the client's burst of requests */
    snprintf(conf, sizeof conf, "%s/g.yaml", lab);
    FILE *f = fopen(conf, "w");
    if (!f) {
        stop();
        cr_assert_fail("cannot write %s", conf);
    }
    fprintf(f,
            "workers:\n  - url: %s\n    server_name: worker-1\n"
            "limits:\n  user_requests_per_second: 100\n  user_request_burst: 100\n"
            "routing:\n  health_interval_ms: 200\n",
            worker_url);
    fclose(f);
    snprintf(db, sizeof db, "%s/sessions.db", lab);
    const char *gargv[] = {"duet-gateway",   "-c",   conf,     "--http",    http,
                           "--certs",        lab,    "--name", "gateway-1", "--api-key",
                           API_KEY ":alice", "--db", db,       NULL};
    test_spawn_tool(gargv, &gateway);
    char why[1024];
    if (!test_wait_gateway_ready(&gateway, http_port, 20000, why, sizeof why)) {
        stop(); /* Criterion runs no .fini after a failed .init */
        cr_assert_fail("%s", why);
    }
}

static void stop(void)
{
    test_process_forget(&gateway);
    test_process_forget(&worker);
    if (lab[0]) {
        test_remove_dir(lab);
        lab[0] = '\0';
    }
}

TestSuite(openai_client, .init = start, .fini = stop);

Test(openai_client, the_official_openai_package_is_served_like_openai)
{
    char script[1024], package[1024];
    snprintf(script, sizeof script, "%s/tests/node/openai-check.mjs", DUET_SOURCE_DIR);
    snprintf(package, sizeof package, "%s/tests/node/node_modules/openai/package.json",
             DUET_SOURCE_DIR);
    if (access(package, R_OK) != 0) {
        cr_assert_fail("the openai npm package is missing (%s): run tools/test.sh or npm ci "
                       "--prefix tests/node",
                       package);
    }
    setenv("OPENAI_BASE_URL", base_url, 1);
    setenv("OPENAI_API_KEY", API_KEY, 1);
    const char *argv[] = {"node", script, NULL};
    char *out = NULL;
    int rc = test_run_program(argv, &out);
    cr_assert_neq(rc, 127, "cannot run node (install nodejs; tools/setup.sh does): %s", out);
    cr_assert_eq(rc, 0, "node %s exited %d:\n%s", script, rc, out);
    cr_assert(strstr(out, "openai-check: all checks passed"), "%s", out);
    free(out);
}

/* curl's output (-i: status line and headers, then the body) for one request; body NULL
 * for a GET. */
static char *curl(const char *key, const char *path, const char *body)
{
    char url[256], auth[128];
    snprintf(url, sizeof url, "%s%s", base_url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *argv[] = {"curl",
                          "-sS",
                          "-N",
                          "-i",
                          "--noproxy",
                          "*",
                          "--max-time",
                          "60",
                          "-H",
                          auth,
                          url,
                          body ? "-H" : NULL,
                          "Content-Type: application/json",
                          "--data-binary",
                          body,
                          NULL};
    char *out = NULL;
    int rc = test_run_program(argv, &out);
    cr_assert_neq(rc, 127, "cannot run curl (install curl): %s", out);
    cr_assert_eq(rc, 0, "curl %s exited %d: %s", url, rc, out);
    return out;
}

static const char *body_of(const char *answer)
{
    const char *b = strstr(answer, "\r\n\r\n");
    cr_assert_not_null(b, "no end of headers: %s", answer);
    return b + 4;
}

/* The header's value up to the line end in out, or false. */
static bool header(const char *answer, const char *name, char *out, size_t cap)
{
    const char *end = strstr(answer, "\r\n\r\n");
    size_t n = strlen(name);
    for (const char *p = strstr(answer, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n;
            v += *v == ' ';
            size_t len = (size_t)(strstr(v, "\r\n") - v);
            snprintf(out, cap, "%.*s", (int)len, v);
            return true;
        }
    }
    return false;
}

static json_t *parse(const char *text, size_t len)
{
    json_error_t err;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    cr_assert_not_null(j, "not JSON (%s at %d): %.*s", err.text, err.position, (int)len, text);
    return j;
}

static const char *str_at(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    cr_assert_not_null(s, "\"%s\" is not a string", key);
    return s;
}

static json_int_t int_at(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_integer(v), "\"%s\" is not an integer", key);
    return json_integer_value(v);
}

static void check_usage(json_t *usage, json_int_t max_tokens)
{
    cr_assert(json_is_object(usage), "usage is an object");
    json_int_t prompt = int_at(usage, "prompt_tokens"), done = int_at(usage, "completion_tokens");
    cr_assert_gt(prompt, 0);
    cr_assert(done > 0 && done <= max_tokens, "completion_tokens %lld", (long long)done);
    cr_assert_eq(int_at(usage, "total_tokens"), prompt + done);
}

static const char ask[] =
    "{\"model\":\"duet\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a "
    "story about a dog.\"}],\"max_tokens\":8,\"temperature\":0";

/* The whole answer's content, checked in OpenAI's shape (malloc'd); its model in model. */
static char *whole_answer(char *model_out, size_t cap)
{
    char body[512], value[256];
    snprintf(body, sizeof body, "%s}", ask);
    char *out = curl(API_KEY, "/chat/completions", body);
    cr_assert_eq(test_http_status(out), 200, "%s", out);
    cr_assert(header(out, "Content-Type", value, sizeof value), "%s", out);
    cr_assert_str_eq(value, "application/json");
    const char *b = body_of(out);
    json_t *c = parse(b, strlen(b));
    cr_assert_str_eq(str_at(c, "object"), "chat.completion");
    cr_assert(strncmp(str_at(c, "id"), "chatcmpl-", 9) == 0, "%s", b);
    int_at(c, "created");
    snprintf(model_out, cap, "%s", str_at(c, "model"));
    json_t *choices = json_object_get(c, "choices");
    cr_assert(json_is_array(choices) && json_array_size(choices) == 1, "%s", b);
    json_t *choice = json_array_get(choices, 0);
    cr_assert_eq(int_at(choice, "index"), 0);
    json_t *message = json_object_get(choice, "message");
    cr_assert_str_eq(str_at(message, "role"), "assistant");
    char *text = strdup(str_at(message, "content"));
    cr_assert_gt(strlen(text), 0, "%s", b);
    const char *reason = str_at(choice, "finish_reason");
    cr_assert(strcmp(reason, "length") == 0 || strcmp(reason, "stop") == 0, "%s", b);
    check_usage(json_object_get(c, "usage"), 8);
    json_decref(c);
    free(out);
    return text;
}

Test(openai_client, curl_gets_a_whole_answer_and_the_model_list)
{
    char served[256];
    char *text = whole_answer(served, sizeof served);
    free(text);

    char *out = curl(API_KEY, "/models", NULL);
    cr_assert_eq(test_http_status(out), 200, "%s", out);
    const char *b = body_of(out);
    json_t *list = parse(b, strlen(b));
    cr_assert_str_eq(str_at(list, "object"), "list");
    json_t *data = json_object_get(list, "data");
    cr_assert(json_is_array(data) && json_array_size(data) >= 1, "%s", b);
    bool found = false;
    for (size_t i = 0; i < json_array_size(data); i++) {
        json_t *m = json_array_get(data, i);
        cr_assert_str_eq(str_at(m, "object"), "model");
        str_at(m, "owned_by");
        int_at(m, "created");
        found = found || strcmp(str_at(m, "id"), served) == 0;
    }
    cr_assert(found, "the model that answered (%s) is listed: %s", served, b);
    json_decref(list);
    free(out);

    /* a wrong key: 401 with OpenAI's error object, every field present */
    out = curl("wrong-key", "/models", NULL);
    cr_assert_eq(test_http_status(out), 401, "%s", out);
    b = body_of(out);
    json_t *e = parse(b, strlen(b));
    json_t *error = json_object_get(e, "error");
    cr_assert(json_is_object(error), "%s", b);
    str_at(error, "message");
    cr_assert_str_eq(str_at(error, "type"), "authentication_error");
    cr_assert(json_object_get(error, "param") && json_object_get(error, "code"), "%s", b);
    json_decref(e);
    free(out);
}

Test(openai_client, curl_streams_server_sent_events_exactly_as_openai_sends_them)
{
    char served[256], value[256];
    char *whole = whole_answer(served, sizeof served);
    char body[512];
    snprintf(body, sizeof body, "%s,\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
             ask);
    char *out = curl(API_KEY, "/chat/completions", body);
    cr_assert_eq(test_http_status(out), 200, "%s", out);
    cr_assert(header(out, "Content-Type", value, sizeof value), "%s", out);
    cr_assert_str_eq(value, "text/event-stream");

    /* "data: {json}\n\n" ... "data: [DONE]\n\n" and nothing else: no other fields, comments
     * or blank events */
    const char *p = body_of(out);
    char id[128] = "", text[4096] = "";
    size_t events = 0, deltas = 0, finishes = 0;
    bool done = false, usage_seen = false;
    while (*p) {
        cr_assert(!done, "nothing may follow data: [DONE]: %s", p);
        cr_assert(strncmp(p, "data: ", 6) == 0, "event %zu does not start with \"data: \": %s",
                  events, p);
        const char *end = strstr(p, "\n\n");
        cr_assert_not_null(end, "event %zu does not end with a blank line: %s", events, p);
        const char *data = p + 6;
        size_t len = (size_t)(end - data);
        cr_assert_null(memchr(data, '\n', len), "event %zu is one line: %s", events, p);
        p = end + 2;
        if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
            done = true;
            continue;
        }
        cr_assert(!usage_seen, "the usage chunk is the last before [DONE]: %.*s", (int)len, data);
        json_t *chunk = parse(data, len);
        cr_assert_str_eq(str_at(chunk, "object"), "chat.completion.chunk");
        if (events == 0) {
            snprintf(id, sizeof id, "%s", str_at(chunk, "id"));
            cr_assert(strncmp(id, "chatcmpl-", 9) == 0, "%s", id);
        }
        cr_assert_str_eq(str_at(chunk, "id"), id, "every chunk has the first chunk's id");
        cr_assert_str_eq(str_at(chunk, "model"), served);
        int_at(chunk, "created");
        json_t *choices = json_object_get(chunk, "choices");
        cr_assert(json_is_array(choices), "%.*s", (int)len, data);
        json_t *usage = json_object_get(chunk, "usage");
        if (json_array_size(choices) == 0) {
            cr_assert_eq(finishes, 1, "the usage chunk comes after the finish");
            check_usage(usage, 8);
            usage_seen = true;
        } else {
            cr_assert_eq(json_array_size(choices), 1, "%.*s", (int)len, data);
            cr_assert(usage == NULL || json_is_null(usage), "usage only in the last chunk");
            json_t *choice = json_array_get(choices, 0);
            cr_assert_eq(int_at(choice, "index"), 0);
            json_t *delta = json_object_get(choice, "delta");
            cr_assert(json_is_object(delta), "%.*s", (int)len, data);
            json_t *role = json_object_get(delta, "role");
            if (events == 0) {
                cr_assert(json_is_string(role) && strcmp(json_string_value(role), "assistant") == 0,
                          "the first chunk's delta has role assistant: %.*s", (int)len, data);
            } else {
                cr_assert_null(role, "only the first chunk names the role: %.*s", (int)len, data);
            }
            const char *piece = json_string_value(json_object_get(delta, "content"));
            if (piece && *piece) {
                cr_assert_eq(finishes, 0, "no content after the finish_reason");
                deltas++;
                cr_assert_lt(strlen(text) + strlen(piece), sizeof text);
                strcat(text, piece);
            }
            json_t *reason = json_object_get(choice, "finish_reason");
            cr_assert_not_null(reason, "finish_reason is present (null until the end)");
            if (!json_is_null(reason)) {
                const char *r = json_string_value(reason);
                cr_assert(r && (strcmp(r, "length") == 0 || strcmp(r, "stop") == 0), "%.*s",
                          (int)len, data);
                finishes++;
            }
        }
        json_decref(chunk);
        events++;
    }
    cr_assert(done, "the stream ends with data: [DONE]");
    cr_assert(usage_seen, "stream_options.include_usage gives a usage chunk");
    cr_assert_eq(finishes, 1, "exactly one finish_reason");
    cr_assert_geq(deltas, 2, "the answer comes in several events");
    cr_assert_str_eq(text, whole, "greedy: the streamed answer is the whole one");
    free(whole);
    free(out);
}
