/* The duet CLI against a real gateway and worker (stories260K, mutual TLS between them,
 * sessions in SQLite): `duet ask` streams an answer in a session and reports it with the
 * token counts; a conversation continued with --session survives a SIGKILL of the gateway
 * and is listed, shown and continued after it; `duet chat` fed from a pipe runs its
 * commands (/system, /rename, /sessions, /new, /switch) and Ctrl-C stops an answer, which
 * stays stored as partial; sessions are renamed, deleted and named by unique id prefixes,
 * and another user's key sees none of them; over HTTPS the lab CA given with --ca (or
 * DUET_CA) is trusted and without it the certificate is refused in words; a refused key
 * (saying where it came from), an unreachable gateway, a bad URL, limits (429) and a
 * gateway without a worker (503) are clear messages with a non-zero exit. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

static char lab[512], model[1024], conf[700], worker_url[64], http[64], gateway_url[96];
static int http_port;
static test_process worker, gateway, extra_gateway;

/* A gateway config for the shared worker: generous limits unless given, sessions in db. */
static void write_config(const char *path, const char *extra)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fprintf(f,
            "workers:\n  - url: %s\n    server_name: worker-1\n"
            "routing:\n  health_interval_ms: 200\n"
            "sessions:\n  db: %s.db\n" /* beside the file, not in the working directory */
            "%s",
            worker_url, path,
            extra ? extra
                  : "limits:\n  user_requests_per_second: 1000\n  user_request_burst: 1000\n"
                    "  requests_per_second: 1000\n  request_burst: 1000\n");
    fclose(f);
}

static void start_gateway(void)
{
    char db[700];
    snprintf(db, sizeof db, "%s/sessions.db", lab);
    const char *gargv[] = {
        "duet-gateway",  "-c",        conf,   "--http", http,        "--certs",    lab,
        "--name",        "gateway-1", "--db", db,       "--api-key", "cli-key:me", "--api-key",
        "other-key:you", NULL};
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
    test_make_temp_dir(lab, sizeof lab, "duet-cli");
    const char *names[] = {"worker-1", "gateway-1", NULL};
    test_make_lab(lab, names);
    snprintf(worker_url, sizeof worker_url, "tls+tcp://127.0.0.1:%d", test_free_port());
    http_port = test_free_port();
    snprintf(http, sizeof http, "127.0.0.1:%d", http_port);
    snprintf(gateway_url, sizeof gateway_url, "http://%s", http);
    const char *wargv[] = {"duet-worker", "-m",     model,      "--listen", worker_url, "--certs",
                           lab,           "--name", "worker-1", "-t",       "1",        NULL};
    test_spawn_tool(wargv, &worker);
    snprintf(conf, sizeof conf, "%s/g.yaml", lab);
    write_config(conf, NULL);
    start_gateway();
}

static void stop(void)
{
    test_process_forget(&extra_gateway);
    test_process_forget(&gateway);
    test_process_forget(&worker);
    test_remove_dir(lab);
}

TestSuite(cli, .init = start, .fini = stop);

/* ---- running duet ---- */

typedef struct {
    int status; /* exit status; 128 + signal when one ended it */
    char *out, *err;
} run;

static void run_free(run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

static char *read_all(int fd)
{
    lseek(fd, 0, SEEK_SET);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while (buf && (got = read(fd, buf + n, cap - n - 1)) > 0) {
        n += (size_t)got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    cr_assert(buf);
    buf[n] = '\0';
    return buf;
}

static int scratch_file(void)
{
    char name[] = "/tmp/duet-test-cli-XXXXXX";
    int fd = mkstemp(name);
    cr_assert_geq(fd, 0);
    unlink(name);
    return fd;
}

/* Runs duet with argv (argv[0] "duet"), input on its stdin (NULL: /dev/null). */
static run duet(const char *const argv[], const char *input)
{
    int in = input ? scratch_file() : open("/dev/null", O_RDONLY);
    if (input) {
        cr_assert_eq(write(in, input, strlen(input)), (ssize_t)strlen(input));
        lseek(in, 0, SEEK_SET);
    }
    int out = scratch_file(), err = scratch_file();
    char path[4096];
    snprintf(path, sizeof path, "%s/duet", DUET_TOOLS_DIR);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(in, STDIN_FILENO);
        dup2(out, STDOUT_FILENO);
        dup2(err, STDERR_FILENO);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    run r = {.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
             .out = read_all(out),
             .err = read_all(err)};
    close(in);
    close(out);
    close(err);
    return r;
}

/* The id in "[session ID, ..." of `duet ask`'s stderr. */
static void session_of(const run *r, char *id, size_t cap)
{
    const char *s = strstr(r->err, "[session ");
    cr_assert(s, "no session named: %s", r->err);
    s += 9;
    size_t n = strspn(s, "0123456789abcdef");
    cr_assert_eq(n, 32, "a session id: %s", r->err);
    snprintf(id, cap, "%.*s", (int)n, s);
}

static size_t count(const char *haystack, const char *needle)
{
    size_t n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)); p += strlen(needle)) {
        n++;
    }
    return n;
}

/* `duet ask` in a new session, which must answer; its id goes to id. */
static void ask_new(const char *question, char *id, size_t cap)
{
    const char *argv[] = {"duet", "-g", gateway_url, "-k",     "cli-key",
                          "-n",   "12", "ask",       question, NULL};
    run r = duet(argv, NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_gt(strlen(r.out), 1, "an answer: \"%s\"", r.out);
    session_of(&r, id, cap);
    run_free(&r);
}

/* ---- tests ---- */

Test(cli, ask_streams_an_answer_in_a_new_session)
{
    const char *argv[] = {"duet", "-g",  gateway_url,        "-k", "cli-key", "-n",
                          "12",   "ask", "Tell me a story.", NULL};
    run r = duet(argv, NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_gt(strlen(r.out), 1, "an answer: \"%s\"", r.out);
    cr_assert_eq(r.out[strlen(r.out) - 1], '\n');
    cr_assert(strstr(r.err, "+ 12 answer tokens") && strstr(r.err, "cut at the length limit"), "%s",
              r.err);
    char first[64], second[64];
    session_of(&r, first, sizeof first);
    run_free(&r);

    /* each ask is a session of its own; -q keeps stderr quiet; the question may be piped */
    const char *piped[] = {"duet", "-g", gateway_url, "-k", "cli-key", "-n", "4", "ask", NULL};
    r = duet(piped, "Where is the cat?\n");
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    session_of(&r, second, sizeof second);
    cr_assert_str_neq(first, second);
    run_free(&r);
    const char *quiet[] = {"duet", "-q", "-g",  gateway_url, "-k", "cli-key",
                           "-n",   "4",  "ask", "Hi",        NULL};
    r = duet(quiet, NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.err, "");
    run_free(&r);
}

Test(cli, a_conversation_is_stored_and_survives_a_gateway_kill)
{
    char id[64], prefix[16];
    ask_new("Tell me a story.", id, sizeof id);
    snprintf(prefix, sizeof prefix, "%.6s", id);

    /* the next turn continues it, the session named by the start of its id */
    const char *turn2[] = {"duet", "-g", gateway_url, "-k", "cli-key",   "-n", "12",
                           "ask",  "-S", prefix,      "--", "And then?", NULL};
    run r = duet(turn2, NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    char same[64];
    session_of(&r, same, sizeof same);
    cr_assert_str_eq(same, id);
    run_free(&r);

    /* the gateway dies without warning and comes back on the same file */
    test_process_stop(&gateway, SIGKILL, 5000);
    test_process_forget(&gateway);
    start_gateway();

    const char *list[] = {"duet", "-g", gateway_url, "-k", "cli-key", "sessions", NULL};
    r = duet(list, NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    char row[128];
    snprintf(row, sizeof row, "  1  %.8s  Tell me a story.", id);
    cr_assert(strstr(r.out, row), "listed: %s", r.out);
    cr_assert(strstr(r.out, "        4  "), "4 messages: %s", r.out);
    run_free(&r);

    const char *show[] = {"duet",     "-g",   gateway_url, "-k", "cli-key",
                          "sessions", "show", prefix,      NULL};
    r = duet(show, NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, id) && strstr(r.out, "4 messages"), "%s", r.out);
    const char *q1 = strstr(r.out, "you> Tell me a story.\nduet> ");
    const char *q2 = strstr(r.out, "you> And then?\nduet> ");
    cr_assert(q1 && q2 && q1 < q2, "both turns in order: %s", r.out);
    cr_assert_eq(count(r.out, "duet> "), 2, "%s", r.out);
    cr_assert_null(strstr(r.out, "[partial]"), "%s", r.out);
    run_free(&r);

    /* a third turn, through `duet chat` resuming it from a pipe */
    const char *chat[] = {"duet", "-g",   gateway_url, "-k", "cli-key", "-n",
                          "8",    "chat", "-S",        id,   NULL};
    r = duet(chat, "What did the bird say?\n/quit\n");
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "you> And then?"), "the recap shows the last turns: %s", r.out);
    cr_assert(strstr(r.err, "+ 8 answer tokens") && !strstr(r.err, "new session"), "%s", r.err);
    run_free(&r);
    r = duet(show, NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "6 messages") && strstr(r.out, "you> What did the bird say?\nduet> "),
              "%s", r.out);
    run_free(&r);
}

Test(cli, chat_commands_from_a_pipe)
{
    const char *chat[] = {"duet", "-g", gateway_url, "-k", "cli-key", "-n", "6", "chat", NULL};
    run r = duet(chat, "/system You tell short stories.\n"
                       "Tell me about a dog.\n"
                       "/rename Dog story\n"
                       "/new\n"
                       "Tell me about a cat.\n"
                       "/sessions\n"
                       "/switch 2\n"
                       "And the dog's name?\n"
                       "/switch 0000000\n"
                       "/frobnicate\n"
                       "/quit\n"
                       "Not sent: the chat has ended.\n");
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    /* /system before any message creates the session with its prompt */
    cr_assert(strstr(r.out, "(set the system prompt of session "), "%s", r.out);
    cr_assert(strstr(r.out, "renamed)"), "%s", r.out);
    cr_assert(strstr(r.out, "(the next message starts a new session)"), "%s", r.out);
    /* the list: the cat's session (newest) first, then the renamed one */
    const char *table = strstr(r.out, "  #  id  ");
    cr_assert(table, "%s", r.out);
    const char *cat = strstr(table, "\n  1  "), *dog = strstr(table, "\n  2  ");
    cr_assert(cat && dog && strstr(cat, "Tell me about a cat.") &&
                  strstr(dog, "Dog story") == dog + 16,
              "%s", r.out);
    /* /switch 2 goes back to the dog's session and recaps it */
    cr_assert(strstr(r.out, "\"Dog story\": 2 messages") &&
                  strstr(r.out, "system prompt: You tell short stories.") &&
                  strstr(r.out, "you> Tell me about a dog.\nduet> "),
              "%s", r.out);
    cr_assert(strstr(r.err, "no session of this API key starts with 0000000"), "%s", r.err);
    cr_assert(strstr(r.out, "(unknown command /frobnicate)"), "%s", r.out);
    cr_assert_eq(count(r.err, " answer tokens"), 3, "three answers: %s", r.err);
    cr_assert_eq(count(r.err, "[new session "), 1, "only the cat's was new: %s", r.err);
    char dog_id[16];
    snprintf(dog_id, sizeof dog_id, "%.8s", dog + 6);
    run_free(&r);

    const char *show[] = {"duet",     "-g",   gateway_url, "-k", "cli-key",
                          "sessions", "show", dog_id,      NULL};
    r = duet(show, NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "\"Dog story\": 4 messages") &&
                  strstr(r.out, "you> And the dog's name?\nduet> "),
              "the turn after /switch went to that session: %s", r.out);
    cr_assert_null(strstr(r.out, "Not sent"), "%s", r.out);
    run_free(&r);
}

/* `duet chat` with pipes both ways, so the test sees the answer while it streams. */
typedef struct {
    pid_t pid;
    int in, out; /* its stdin (ours to write) and stdout (ours to read) */
} live_chat;

static live_chat start_chat(const char *const argv[], int err_fd)
{
    int to[2], from[2];
    cr_assert_eq(pipe(to), 0);
    cr_assert_eq(pipe(from), 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/duet", DUET_TOOLS_DIR);
    live_chat c = {.pid = fork()};
    cr_assert_geq(c.pid, 0);
    if (c.pid == 0) {
        dup2(to[0], STDIN_FILENO);
        dup2(from[1], STDOUT_FILENO);
        dup2(err_fd, STDERR_FILENO);
        close(to[1]);
        close(from[0]);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    c.in = to[1];
    c.out = from[0];
    return c;
}

/* Reads what comes within timeout_ms; 0 at the end or when nothing came. */
static ssize_t read_within(int fd, char *buf, size_t cap, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1) {
        return 0;
    }
    ssize_t got = read(fd, buf, cap);
    return got > 0 ? got : 0;
}

Test(cli, ctrl_c_stops_an_answer_and_it_stays_partial)
{
    int err = scratch_file();
    const char *argv[] = {"duet", "-g", gateway_url, "-k", "cli-key", "-n", "1500", "chat", NULL};
    live_chat c = start_chat(argv, err);
    const char *q = "Tell me a very long story.\n";
    cr_assert_eq(write(c.in, q, strlen(q)), (ssize_t)strlen(q));
    /* the first words come while the answer is still being written: stop it there */
    char buf[8192];
    ssize_t got = read_within(c.out, buf, sizeof buf - 1, 20000);
    cr_assert_gt(got, 0, "the answer streams");
    kill(c.pid, SIGINT);
    size_t n = (size_t)got;
    buf[n] = '\0';
    while (!strstr(buf, "(stopped") && n < sizeof buf - 1 &&
           (got = read_within(c.out, buf + n, sizeof buf - 1 - n, 20000)) > 0) {
        n += (size_t)got;
        buf[n] = '\0';
    }
    cr_assert(strstr(buf, "(stopped: the gateway keeps the answer so far, marked partial)"),
              "Ctrl-C stops the answer, not the chat: %s", buf);
    cr_assert_eq(write(c.in, "/quit\n", 6), 6);
    close(c.in);
    close(c.out);
    int status;
    waitpid(c.pid, &status, 0);
    char *errors = read_all(err);
    close(err);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, errors);
    free(errors);

    const char *list[] = {"duet", "-g", gateway_url, "-k", "cli-key", "sessions", NULL};
    run r = duet(list, NULL);
    const char *row = strstr(r.out, "\n  1  ");
    cr_assert(row, "%s", r.out);
    char id[16];
    snprintf(id, sizeof id, "%.8s", row + 6);
    run_free(&r);
    const char *show[] = {"duet", "-g", gateway_url, "-k", "cli-key", "sessions", "show", id, NULL};
    for (int i = 0; i < 50; i++) { /* the gateway notices the closed stream at its next token */
        r = duet(show, NULL);
        if (strstr(r.out, "[partial]") || i == 49) {
            break;
        }
        run_free(&r);
        usleep(100 * 1000);
    }
    cr_assert(strstr(r.out, "you> Tell me a very long story.\nduet> ") &&
                  strstr(r.out, " [partial]\n"),
              "%s", r.out);
    run_free(&r);
}

Test(cli, sessions_are_renamed_deleted_and_private)
{
    char id[64];
    ask_new("A secret about cats", id, sizeof id);

    const char *rename[] = {"duet",   "-g", gateway_url, "-k",      "cli-key", "sessions",
                            "rename", id,   "Cat",       "secrets", NULL};
    run r = duet(rename, NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "is now \"Cat secrets\""), "%s", r.out);
    run_free(&r);
    const char *list[] = {"duet", "-g", gateway_url, "-k", "cli-key", "sessions", NULL};
    r = duet(list, NULL);
    cr_assert(strstr(r.out, "Cat secrets"), "%s", r.out);
    run_free(&r);

    /* another user's key sees nothing of it, by list, by id or by asking in it */
    const char *other_list[] = {"duet", "-g", gateway_url, "-k", "other-key", "sessions", NULL};
    r = duet(other_list, NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "(no sessions yet)\n");
    run_free(&r);
    const char *other_show[] = {"duet",     "-g",   gateway_url, "-k", "other-key",
                                "sessions", "show", id,          NULL};
    r = duet(other_show, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "no session") && strstr(r.err, id), "%s", r.err);
    run_free(&r);
    const char *other_ask[] = {"duet", "-g", gateway_url,           "-k", "other-key", "ask",
                               "-S",   id,   "Tell me the secret.", NULL};
    r = duet(other_ask, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "no session") && strstr(r.err, "another user's"), "%s", r.err);
    cr_assert_str_eq(r.out, "");
    run_free(&r);
    const char *other_delete[] = {"duet",     "-g",     gateway_url, "-k", "other-key",
                                  "sessions", "delete", id,          NULL};
    r = duet(other_delete, NULL);
    cr_assert_eq(r.status, 1);
    run_free(&r);

    /* its owner deletes it */
    const char *del[] = {"duet",     "-g",     gateway_url, "-k", "cli-key",
                         "sessions", "delete", id,          NULL};
    r = duet(del, NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "deleted session"), "%s", r.out);
    run_free(&r);
    r = duet(list, NULL);
    cr_assert_str_eq(r.out, "(no sessions yet)\n");
    run_free(&r);
    r = duet(del, NULL);
    cr_assert_eq(r.status, 1, "gone: %s", r.out);
    run_free(&r);
}

Test(cli, an_ambiguous_or_malformed_id_prefix_is_refused)
{
    /* sessions made without the model: /rename before any message creates one */
    char script[2048] = "";
    for (int i = 0; i < 17; i++) { /* 17 ids: two share their first hex digit */
        size_t used = strlen(script);
        snprintf(script + used, sizeof script - used, "/rename Session %d\n/new\n", i);
    }
    const char *chat[] = {"duet", "-g", gateway_url, "-k", "cli-key", "chat", NULL};
    run r = duet(chat, script);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_eq(count(r.out, "renamed)"), 17, "%s", r.out);
    run_free(&r);
    const char *list[] = {"duet", "-g", gateway_url, "-k", "cli-key", "sessions", NULL};
    r = duet(list, NULL);
    size_t firsts[16] = {0};
    char shared[2] = "";
    for (const char *row = r.out; (row = strstr(row, "\n ")); row++) {
        const char *id = row + 6; /* "\n  1  " then the id */
        const char *digits = "0123456789abcdef";
        const char *d = strchr(digits, *id);
        if (d && *id && ++firsts[d - digits] == 2) {
            shared[0] = *id;
        }
    }
    cr_assert(shared[0], "two ids share a first digit: %s", r.out);
    run_free(&r);

    const char *show[] = {"duet",     "-g",   gateway_url, "-k", "cli-key",
                          "sessions", "show", shared,      NULL};
    r = duet(show, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "is the start of") && strstr(r.err, "give more of the id"), "%s",
              r.err);
    run_free(&r);
    const char *bad[] = {"duet",     "-g",   gateway_url, "-k", "cli-key",
                         "sessions", "show", "xyz",       NULL};
    r = duet(bad, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "hex digits"), "%s", r.err);
    run_free(&r);
}

/* Runs `curl` until the HTTPS gateway's /health says a worker is ready. */
static bool https_ready(int port, const char *ca)
{
    char url[96];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/health", port);
    const char *argv[] = {"curl", "-s", "--cacert", ca, url, NULL};
    for (int i = 0; i < 200; i++) {
        char *out = NULL;
        test_run_program(argv, &out);
        bool ready = out && strstr(out, "\"state\":\"ready\"");
        free(out);
        if (ready) {
            return true;
        }
        usleep(100 * 1000);
    }
    return false;
}

Test(cli, https_with_the_lab_ca)
{
    /* a certificate for the address the CLI dials */
    const char *issue[] = {"duet-certs", "issue", lab,         "web-1", "--ip",
                           "127.0.0.1",  "--dns", "localhost", NULL};
    cr_assert_eq(test_run_tool(issue), 0);
    char crt[700], key[700], ca[700], yaml[700];
    snprintf(crt, sizeof crt, "%s/web-1.crt", lab);
    snprintf(key, sizeof key, "%s/web-1.key", lab);
    snprintf(ca, sizeof ca, "%s/ca.crt", lab);
    int port = test_free_port();
    char extra[2048], url[96];
    snprintf(extra, sizeof extra,
             "http:\n  listen: 127.0.0.1:%d\n  cert: %s\n  key: %s\n"
             "limits:\n  user_requests_per_second: 1000\n  user_request_burst: 1000\n",
             port, crt, key);
    snprintf(yaml, sizeof yaml, "%s/https.yaml", lab);
    write_config(yaml, extra);
    char db[700];
    snprintf(db, sizeof db, "%s/https.db", lab);
    const char *gargv[] = {"duet-gateway", "-c",   yaml, "--certs",   lab,          "--name",
                           "gateway-1",    "--db", db,   "--api-key", "cli-key:me", NULL};
    test_spawn_tool(gargv, &extra_gateway);
    cr_assert(https_ready(port, ca), "the HTTPS gateway came up");
    snprintf(url, sizeof url, "https://127.0.0.1:%d", port);

    const char *trusted[] = {
        "duet", "--ca", ca, "-g", url, "-k", "cli-key", "-n", "12", "ask", "Tell me a story.",
        NULL};
    /* streamed answers arrive whole, every time (the end of an HTTPS stream used to be lost
     * now and then when the gateway closed the connection too early) */
    run r = {0};
    for (int i = 0; i < 5; i++) {
        r = duet(trusted, NULL);
        cr_assert_eq(r.status, 0, "ask %d: stderr: %s", i, r.err);
        cr_assert_gt(strlen(r.out), 1, "%s", r.out);
        cr_assert(strstr(r.err, "[session ") && strstr(r.err, "+ 12 answer tokens"), "%s", r.err);
        run_free(&r);
    }

    /* DUET_CA does the same; JSON calls go over HTTPS too */
    setenv("DUET_CA", ca, 1);
    const char *list[] = {"duet", "-g", url, "-k", "cli-key", "sessions", NULL};
    r = duet(list, NULL);
    unsetenv("DUET_CA");
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "Tell me a story."), "%s", r.out);
    run_free(&r);

    /* without the lab CA the certificate is not trusted, and the message says what to do */
    const char *untrusted[] = {"duet", "-g", url, "-k", "cli-key", "ask", "Hello?", NULL};
    r = duet(untrusted, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "certificate") && strstr(r.err, "--ca") && strstr(r.err, url), "%s",
              r.err);
    cr_assert_str_eq(r.out, "");
    run_free(&r);

    /* a CA file that is not there, and plain HTTP to the HTTPS port */
    const char *no_file[] = {"duet",     "--ca", "/nonexistent/ca.crt", "-g", url, "-k", "cli-key",
                             "sessions", NULL};
    r = duet(no_file, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "/nonexistent/ca.crt: cannot read it"), "%s", r.err);
    run_free(&r);
    char plain[96];
    snprintf(plain, sizeof plain, "http://127.0.0.1:%d", port);
    const char *wrong_scheme[] = {"duet", "-g", plain, "-k", "cli-key", "sessions", NULL};
    r = duet(wrong_scheme, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "https://"), "%s", r.err);
    run_free(&r);

    /* and it stops cleanly (under AddressSanitizer: nothing leaked) */
    int rc = test_process_stop(&extra_gateway, SIGTERM, 15000);
    char *err = test_process_stderr(&extra_gateway);
    cr_assert_eq(rc, 0, "gateway exit %d: %s", rc, err ? err : "");
    free(err);
}

Test(cli, a_refused_key_and_an_unreachable_gateway_are_clear)
{
    const char *bad_key[] = {"duet", "-g", gateway_url, "-k", "nope", "ask", "hi", NULL};
    run r = duet(bad_key, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "refused the API key from --api-key"), "%s", r.err);
    run_free(&r);

    /* the key from the file in the home folder: the message names the file */
    char home[700], config[720], dir[740], file[760];
    snprintf(home, sizeof home, "%s/home", lab);
    snprintf(config, sizeof config, "%s/.config", home);
    snprintf(dir, sizeof dir, "%s/duet", config);
    snprintf(file, sizeof file, "%s/api-key", dir);
    cr_assert(mkdir(home, 0700) == 0 && mkdir(config, 0700) == 0 && mkdir(dir, 0700) == 0);
    FILE *f = fopen(file, "w");
    cr_assert(f);
    fputs("stale-key\n", f);
    fclose(f);
    setenv("HOME", home, 1);
    unsetenv("DUET_API_KEY");
    const char *from_file[] = {"duet", "-g", gateway_url, "sessions", NULL};
    r = duet(from_file, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "refused the API key from") && strstr(r.err, file), "%s", r.err);
    run_free(&r);
    unlink(file);
    r = duet(from_file, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "no API key"), "%s", r.err);
    run_free(&r);

    char dead[64];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d", test_free_port());
    const char *unreachable[] = {"duet", "-g", dead, "-k", "cli-key", "ask", "hi", NULL};
    r = duet(unreachable, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "cannot reach the gateway") && strstr(r.err, dead), "%s", r.err);
    run_free(&r);

    const char *bad_url[] = {"duet", "-g", "ftp://x", "-k", "k", "ask", "hi", NULL};
    r = duet(bad_url, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "http://"), "%s", r.err);
    run_free(&r);

    const char *no_cmd[] = {"duet", "-k", "k", NULL};
    r = duet(no_cmd, NULL);
    cr_assert_eq(r.status, 2);
    run_free(&r);
    const char *bad_sub[] = {"duet", "-k", "k", "sessions", "frob", NULL};
    r = duet(bad_sub, NULL);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "usage: duet sessions"), "%s", r.err);
    run_free(&r);
}

Test(cli, limits_and_a_gateway_without_workers_are_clear)
{
    /* a gateway that admits one request per user and then asks to wait */
    char yaml[700], http2[64], url[96];
    snprintf(yaml, sizeof yaml, "%s/tight.yaml", lab);
    write_config(yaml, "limits:\n  user_requests_per_second: 0.1\n  user_request_burst: 1\n");
    int port = test_free_port();
    snprintf(http2, sizeof http2, "127.0.0.1:%d", port);
    snprintf(url, sizeof url, "http://%s", http2);
    const char *gargv[] = {"duet-gateway", "-c",        yaml,         "--http",
                           http2,          "--certs",   lab,          "--name",
                           "gateway-1",    "--api-key", "cli-key:me", NULL};
    test_spawn_tool(gargv, &extra_gateway);
    char why[1024];
    cr_assert(test_wait_gateway_ready(&extra_gateway, port, 20000, why, sizeof why), "%s", why);
    const char *ask[] = {"duet", "-g", url, "-k", "cli-key", "-n", "4", "ask", "One?", NULL};
    run r = duet(ask, NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    run_free(&r);
    r = duet(ask, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "over the limits") && strstr(r.err, "retry in ") && strstr(r.err, " s"),
              "%s", r.err);
    run_free(&r);
    test_process_forget(&extra_gateway);

    /* a gateway whose only worker is not there */
    char nowhere[64];
    snprintf(nowhere, sizeof nowhere, "tls+tcp://127.0.0.1:%d", test_free_port());
    port = test_free_port();
    snprintf(http2, sizeof http2, "127.0.0.1:%d", port);
    snprintf(url, sizeof url, "http://%s", http2);
    char lonely_db[700], lonely_yaml[700];
    snprintf(lonely_db, sizeof lonely_db, "%s/lonely.db", lab);
    /* a config file without workers: --worker gives them */
    snprintf(lonely_yaml, sizeof lonely_yaml, "%s/lonely.yaml", lab);
    FILE *f = fopen(lonely_yaml, "w");
    cr_assert(f);
    fputs("routing:\n  health_interval_ms: 200\n", f);
    fclose(f);
    const char *no_workers[] = {"duet-gateway", "-c",        lonely_yaml, "--certs", lab,
                                "--name",       "gateway-1", "--db",      lonely_db, NULL};
    char *out = NULL, *err = NULL;
    cr_assert_eq(test_run_tool_capture(no_workers, &out, &err), 2);
    cr_assert(strstr(err, "no workers: give --worker URL or workers in the config"), "%s", err);
    free(out);
    free(err);
    const char *lonely[] = {
        "duet-gateway",  "-c",       lonely_yaml, "--http", http2,    "--worker",  nowhere,
        "--worker-name", "worker-1", "--certs",   lab,      "--name", "gateway-1", "--api-key",
        "cli-key:me",    "--db",     lonely_db,   NULL};
    test_spawn_tool(lonely, &extra_gateway);
    cr_assert(test_wait_listening(port, 20000));
    const char *ask2[] = {"duet", "-g", url, "-k", "cli-key", "ask", "Anyone?", NULL};
    r = duet(ask2, NULL);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "cannot answer now") && strstr(r.err, "retry in "), "%s", r.err);
    run_free(&r);
}
