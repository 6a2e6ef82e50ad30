/* Sessions through the real gateway (worker on stories260K, mutual TLS, SQLite on disk):
 * a conversation continues in its session with only the new message sent and the worker's
 * cache reused; it is stored and read back after the gateway is killed with SIGKILL and
 * restarted; an answer cut by that kill stays stored as partial; the session endpoints
 * (create, list, read, rename, system prompt, delete) and their errors; one user never
 * sees another's sessions; under trim_policy summarize the turns that no longer fit are
 * replaced by a model-written summary kept with the session. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "support.h"

static char lab[512], model[600], conf[700], http[64];
static int http_port;
static test_process worker, gateway;

static void start_gateway(void)
{
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

static void start(void)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    snprintf(model, sizeof model, "%s/stories260K.gguf", dir ? dir : "../shared/models");
    if (access(model, R_OK) != 0) {
        cr_skip_test("TEST MODELS MISSING: %s not found (set DUET_TEST_MODELS)", model);
    }
    test_make_temp_dir(lab, sizeof lab, "duet-sessions");
    const char *names[] = {"worker-1", "gateway-1", NULL};
    test_make_lab(lab, names);
    char worker_url[64];
    snprintf(worker_url, sizeof worker_url, "tls+tcp://127.0.0.1:%d", test_free_port());
    http_port = test_free_port();
    snprintf(http, sizeof http, "127.0.0.1:%d", http_port);
    const char *wargv[] = {"duet-worker", "-m",    model,    "--listen", worker_url,
                           "--certs",     lab,     "--name", "worker-1", "-t",
                           "1",           "--ctx", "256",    NULL};
    test_spawn_tool(wargv, &worker);
    snprintf(conf, sizeof conf, "%s/g.yaml", lab);
    FILE *f = fopen(conf, "w");
    fprintf(f,
            "workers:\n  - url: %s\n    server_name: worker-1\n"
            "routing:\n  health_interval_ms: 200\n  answer_tokens: 24\n"
            "limits:\n  user_requests_per_second: 1000\n  user_request_burst: 1000\n"
            "  requests_per_second: 1000\n  request_burst: 1000\n"
            "sessions:\n  db: %s/sessions.db\n  trim_policy: summarize\n  summary_tokens: 24\n",
            worker_url, lab);
    fclose(f);
    start_gateway();
}

static void stop(void)
{
    test_process_forget(&gateway);
    test_process_forget(&worker);
    test_remove_dir(lab);
}

TestSuite(sessions, .init = start, .fini = stop);

/* ---- HTTP ---- */

typedef struct {
    int status;
    char raw[65536];
    json_t *json; /* the body, when it is JSON */
} reply;

static void call(reply *r, const char *method, const char *path, const char *key,
                 const char *session, const char *body)
{
    char req[32768];
    snprintf(req, sizeof req,
             "%s %s HTTP/1.1\r\nHost: a\r\n%s%s%s%s%s%sContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             method, path, key ? "Authorization: Bearer " : "", key ? key : "", key ? "\r\n" : "",
             session ? "X-Duet-Session: " : "", session ? session : "", session ? "\r\n" : "",
             body ? strlen(body) : 0, body ? body : "");
    test_http(http_port, req, r->raw, sizeof r->raw, 30000);
    r->status = test_http_status(r->raw);
    const char *b = strstr(r->raw, "\r\n\r\n");
    json_decref(r->json);
    r->json = b ? json_loads(b + 4, 0, NULL) : NULL;
}

/* Ends a test: the gateway stops cleanly on SIGTERM (under the sanitizers: no error, no
 * leak). */
static void done(reply *r)
{
    json_decref(r->json);
    r->json = NULL;
    int rc = test_process_stop(&gateway, SIGTERM, 20000);
    char *err = test_process_stderr(&gateway);
    cr_assert_eq(rc, 0, "gateway exit %d: %s", rc, err ? err : "");
    free(err);
}

/* A response header's value copied to out ("" when absent). */
static void header(const reply *r, const char *name, char *out, size_t cap)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\r\n%s: ", name);
    const char *h = strstr(r->raw, pat);
    out[0] = '\0';
    if (h) {
        h += strlen(pat);
        snprintf(out, cap, "%.*s", (int)strcspn(h, "\r\n"), h);
    }
}

static const char *str_at(json_t *root, const char *path)
{
    json_t *v = root;
    char key[64];
    for (const char *p = path; v && *p;) {
        size_t len = strcspn(p, ".");
        snprintf(key, sizeof key, "%.*s", (int)len, p);
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(key)) : json_object_get(v, key);
        p += len + (p[len] == '.');
    }
    return json_string_value(v);
}

static json_int_t int_at(json_t *root, const char *path)
{
    json_t *v = root;
    char key[64];
    for (const char *p = path; v && *p;) {
        size_t len = strcspn(p, ".");
        snprintf(key, sizeof key, "%.*s", (int)len, p);
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(key)) : json_object_get(v, key);
        p += len + (p[len] == '.');
    }
    cr_assert(json_is_integer(v), "no integer at %s", path);
    return json_integer_value(v);
}

static void chat(reply *r, const char *key, const char *session, const char *question)
{
    char body[4096];
    snprintf(body, sizeof body,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"max_tokens\":12,"
             "\"temperature\":0}",
             question);
    call(r, "POST", "/v1/chat/completions", key, session, body);
}

/* ---- tests ---- */

Test(sessions, a_conversation_continues_in_its_session_and_survives_kill_9)
{
    reply r = {0};
    chat(&r, "key-alice", NULL, "Where did the cat go?");
    cr_assert_eq(r.status, 200, "%s", r.raw);
    char id[80];
    header(&r, "X-Duet-Session", id, sizeof id);
    cr_assert_eq(strlen(id), 32, "a new session is named: %s", r.raw);
    cr_assert_str_eq(str_at(r.json, "duet.session_id"), id);
    char answer1[2048];
    snprintf(answer1, sizeof answer1, "%s", str_at(r.json, "choices.0.message.content"));
    json_int_t prompt1 = int_at(r.json, "usage.prompt_tokens");

    /* turn 2 sends only its new message */
    chat(&r, "key-alice", id, "And the dog?");
    cr_assert_eq(r.status, 200, "%s", r.raw);
    char same[80];
    header(&r, "X-Duet-Session", same, sizeof same);
    cr_assert_str_eq(same, id);
    cr_assert_gt(int_at(r.json, "usage.prompt_tokens"), prompt1 + 5,
                 "the stored history went to the worker: %s", r.raw);
    cr_assert_gt(int_at(r.json, "usage.prompt_tokens_details.cached_tokens"), prompt1 / 2,
                 "the worker reused the session's cache: %s", r.raw);
    char answer2[2048];
    snprintf(answer2, sizeof answer2, "%s", str_at(r.json, "choices.0.message.content"));

    /* the gateway dies without warning and comes back on the same file */
    test_process_stop(&gateway, SIGKILL, 5000);
    test_process_forget(&gateway);
    start_gateway();

    char path[128];
    snprintf(path, sizeof path, "/v1/sessions/%s", id);
    call(&r, "GET", path, "key-alice", NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    json_t *ms = json_object_get(r.json, "messages");
    cr_assert_eq(json_array_size(ms), 4, "%s", r.raw);
    cr_assert_str_eq(str_at(r.json, "title"), "Where did the cat go?");
    cr_assert_str_eq(str_at(ms, "0.role"), "user");
    cr_assert_str_eq(str_at(ms, "0.content"), "Where did the cat go?");
    cr_assert_str_eq(str_at(ms, "1.role"), "assistant");
    cr_assert_str_eq(str_at(ms, "1.content"), answer1);
    cr_assert_str_eq(str_at(ms, "2.content"), "And the dog?");
    cr_assert_str_eq(str_at(ms, "3.content"), answer2);
    cr_assert(json_is_false(json_object_get(json_array_get(ms, 3), "partial")), "%s", r.raw);
    cr_assert_eq(int_at(ms, "3.tokens"), 12);

    call(&r, "GET", "/v1/sessions", "key-alice", NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    cr_assert_str_eq(str_at(r.json, "data.0.id"), id, "%s", r.raw);
    cr_assert_eq(int_at(r.json, "data.0.messages"), 4);

    /* and the conversation goes on, streamed */
    call(&r, "POST", "/v1/chat/completions", "key-alice", id,
         "{\"messages\":[{\"role\":\"user\",\"content\":\"Then what?\"}],\"max_tokens\":6,"
         "\"stream\":true}");
    cr_assert_eq(r.status, 200, "%s", r.raw);
    header(&r, "X-Duet-Session", same, sizeof same);
    cr_assert_str_eq(same, id);
    char want[128];
    snprintf(want, sizeof want, "\"duet\":{\"session_id\":\"%s\"}", id);
    cr_assert(strstr(r.raw, want), "the first chunk names the session: %s", r.raw);
    cr_assert(strstr(r.raw, "data: [DONE]"), "%s", r.raw);
    snprintf(path, sizeof path, "/v1/sessions/%s?after=4", id);
    call(&r, "GET", path, "key-alice", NULL, NULL);
    ms = json_object_get(r.json, "messages");
    cr_assert_eq(json_array_size(ms), 2, "%s", r.raw);
    cr_assert_eq(int_at(ms, "0.seq"), 5);
    cr_assert(json_is_false(json_object_get(json_array_get(ms, 1), "partial")), "%s", r.raw);
    done(&r);
}

/* Starts a long streamed answer and returns the socket once its first words arrived. */
static int start_long_answer(const char *session)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval limit = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a long story.\"}],"
                       "\"max_tokens\":160,\"stream\":true}";
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer "
                     "key-alice\r\nX-Duet-Session: %s\r\nContent-Length: %zu\r\n\r\n%s",
                     session, strlen(body), body);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    char buf[65536];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        ssize_t k = read(fd, buf + got, sizeof buf - 1 - got);
        cr_assert_gt(k, 0, "the stream ended early: %.*s", (int)got, buf);
        got += (size_t)k;
        buf[got] = '\0';
        if (strstr(buf, "\"delta\":{\"content\":")) {
            break;
        }
    }
    return fd;
}

Test(sessions, an_answer_cut_short_is_stored_as_partial)
{
    reply r = {0};
    call(&r, "POST", "/v1/sessions", "key-alice", NULL, "{}");
    cr_assert_eq(r.status, 201, "%s", r.raw);
    char id[80], path[128];
    snprintf(id, sizeof id, "%s", str_at(r.json, "id"));
    snprintf(path, sizeof path, "/v1/sessions/%s", id);

    /* the client goes away mid-answer (what a stop button does) */
    int fd = start_long_answer(id);
    close(fd);
    for (int i = 0; i < 100; i++) { /* the session frees once the answer has ended */
        chat(&r, "key-alice", id, "Short one?");
        if (r.status != 409) {
            break;
        }
        usleep(50 * 1000);
    }
    cr_assert_eq(r.status, 200, "%s", r.raw);
    call(&r, "GET", path, "key-alice", NULL, NULL);
    json_t *ms = json_object_get(r.json, "messages");
    cr_assert_eq(json_array_size(ms), 4, "%s", r.raw);
    json_t *last = json_array_get(ms, 1);
    cr_assert(json_is_true(json_object_get(last, "partial")), "stopped, so partial: %s", r.raw);
    cr_assert(json_is_false(json_object_get(json_array_get(ms, 3), "partial")), "%s", r.raw);

    /* the gateway is killed mid-answer */
    fd = start_long_answer(id);
    test_process_stop(&gateway, SIGKILL, 5000);
    close(fd);
    test_process_forget(&gateway);
    start_gateway();
    call(&r, "GET", path, "key-alice", NULL, NULL);
    ms = json_object_get(r.json, "messages");
    cr_assert_eq(json_array_size(ms), 6, "%s", r.raw);
    cr_assert_str_eq(str_at(ms, "4.content"), "Tell me a long story.");
    cr_assert(json_is_true(json_object_get(json_array_get(ms, 5), "partial")), "%s", r.raw);
    done(&r);
}

Test(sessions, endpoints_errors_and_ownership)
{
    reply r = {0};
    call(&r, "GET", "/v1/sessions", NULL, NULL, NULL);
    cr_assert_eq(r.status, 401, "%s", r.raw);
    call(&r, "POST", "/v1/sessions", "key-alice", NULL,
         "{\"title\":\"Trip to Oslo\",\"system_prompt\":\"Be brief.\"}");
    cr_assert_eq(r.status, 201, "%s", r.raw);
    char id[80], path[128];
    snprintf(id, sizeof id, "%s", str_at(r.json, "id"));
    snprintf(path, sizeof path, "/v1/sessions/%s", id);
    cr_assert_str_eq(str_at(r.json, "system_prompt"), "Be brief.");
    cr_assert_str_eq(str_at(r.json, "object"), "chat.session");

    call(&r, "PATCH", path, "key-alice", NULL, "{\"title\":\"Oslo\",\"system_prompt\":null}");
    cr_assert_eq(r.status, 200, "%s", r.raw);
    cr_assert_str_eq(str_at(r.json, "title"), "Oslo");
    cr_assert(json_is_null(json_object_get(r.json, "system_prompt")), "%s", r.raw);

    /* bob sees nothing of alice's, with the same 404 as for an id that does not exist */
    const char *methods[] = {"GET", "PATCH", "DELETE"};
    for (int i = 0; i < 3; i++) {
        call(&r, methods[i], path, "key-bob", NULL, i == 1 ? "{\"title\":\"mine\"}" : NULL);
        cr_assert_eq(r.status, 404, "%s %s", methods[i], r.raw);
        cr_assert_str_eq(str_at(r.json, "error.code"), "session_not_found");
    }
    chat(&r, "key-bob", id, "Hello?");
    cr_assert_eq(r.status, 404, "%s", r.raw);
    cr_assert_str_eq(str_at(r.json, "error.code"), "session_not_found");
    call(&r, "GET", "/v1/sessions", "key-bob", NULL, NULL);
    cr_assert_eq(int_at(r.json, "total"), 0, "%s", r.raw);
    call(&r, "GET", path, "key-alice", NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    cr_assert_str_eq(str_at(r.json, "title"), "Oslo", "bob's PATCH changed nothing");

    /* bad requests */
    call(&r, "PATCH", path, "key-alice", NULL, "{\"titel\":\"typo\"}");
    cr_assert_eq(r.status, 400, "%s", r.raw);
    cr_assert_str_eq(str_at(r.json, "error.param"), "titel");
    call(&r, "PATCH", path, "key-alice", NULL, "{\"title\":7}");
    cr_assert_eq(r.status, 400, "%s", r.raw);
    call(&r, "PATCH", path, "key-alice", NULL, "{\"title\":\"\"}");
    cr_assert_eq(r.status, 400, "an empty title: %s", r.raw);
    call(&r, "POST", "/v1/sessions", "key-alice", NULL, "[1,2");
    cr_assert_eq(r.status, 400, "%s", r.raw);
    call(&r, "PUT", path, "key-alice", NULL, "{}");
    cr_assert_eq(r.status, 405, "%s", r.raw);
    call(&r, "GET", "/v1/sessions?limit=0", "key-alice", NULL, NULL);
    cr_assert_eq(r.status, 400, "%s", r.raw);
    call(&r, "GET", "/v1/sessions/has%20space", "key-alice", NULL, NULL);
    cr_assert(r.status == 400 || r.status == 404, "%s", r.raw);
    char body[512];
    snprintf(body, sizeof body,
             "{\"session_id\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", id);
    call(&r, "POST", "/v1/chat/completions", "key-alice", "0123456789abcdef0123456789abcdef", body);
    cr_assert_eq(r.status, 400, "header and field disagree: %s", r.raw);
    call(&r, "POST", "/v1/chat/completions", "key-alice", id,
         "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},"
         "{\"role\":\"assistant\",\"content\":\"Hello\"}]}");
    cr_assert_eq(r.status, 400, "a session turn ends with the user's message: %s", r.raw);

    /* paging */
    for (int i = 0; i < 3; i++) {
        call(&r, "POST", "/v1/sessions", "key-alice", NULL, NULL);
        cr_assert_eq(r.status, 201, "%s", r.raw);
    }
    call(&r, "GET", "/v1/sessions?limit=2&offset=1", "key-alice", NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    cr_assert_eq(int_at(r.json, "total"), 4);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 2);

    call(&r, "DELETE", path, "key-alice", NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    cr_assert(json_is_true(json_object_get(r.json, "deleted")), "%s", r.raw);
    call(&r, "GET", path, "key-alice", NULL, NULL);
    cr_assert_eq(r.status, 404, "%s", r.raw);
    done(&r);
}

Test(sessions, turns_that_no_longer_fit_are_summarized_and_kept)
{
    reply r = {0};
    call(&r, "POST", "/v1/sessions", "key-alice", NULL, "{\"system_prompt\":\"Tell stories.\"}");
    cr_assert_eq(r.status, 201, "%s", r.raw);
    char id[80], path[128];
    snprintf(id, sizeof id, "%s", str_at(r.json, "id"));
    snprintf(path, sizeof path, "/v1/sessions/%s", id);
    char trimmed[32] = "0";
    int turns = 0;
    for (; turns < 12 && atoi(trimmed) == 0; turns++) {
        chat(&r, "key-alice", id,
             "Once upon a time a little girl named Lily went to the park with her mom and her "
             "dog, and they played with a big red ball until the sun went down.");
        cr_assert_eq(r.status, 200, "turn %d: %s", turns, r.raw);
        header(&r, "X-Duet-Trimmed", trimmed, sizeof trimmed);
    }
    cr_assert_gt(atoi(trimmed), 0, "the history outgrew the context of 256: %s", r.raw);
    cr_assert(json_is_true(json_object_get(
                  json_object_get(json_object_get(r.json, "duet"), "trimmed"), "summarized")),
              "%s", r.raw);
    cr_assert_leq(int_at(r.json, "usage.prompt_tokens") + 12, 256, "%s", r.raw);

    call(&r, "GET", path, "key-alice", NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    const char *summary = str_at(r.json, "summary");
    cr_assert(summary && summary[0], "the summary is kept with the session: %s", r.raw);
    json_int_t upto = int_at(r.json, "summary_upto");
    cr_assert_gt(upto, 0, "%s", r.raw);
    cr_assert_eq(upto % 2, 0, "the summary covers whole turns: %s", r.raw);

    /* the next turn goes on from it */
    chat(&r, "key-alice", id, "What happened next?");
    cr_assert_eq(r.status, 200, "%s", r.raw);
    header(&r, "X-Duet-Trimmed", trimmed, sizeof trimmed);
    cr_assert_geq(atoi(trimmed), (int)upto, "what the summary stands for is reported: %s", r.raw);
    done(&r);
}
