/* Two hosts: the worker and the gateway each in a network namespace of their own, joined by
 * a veth pair (10.213.N.1/30 for the gateway, .2 for the worker). The worker listens on
 * tls+tcp://10.213.N.2:7700 with a duet-certs certificate carrying that address; the
 * gateway dials it by address with --worker-name naming the certificate, and a chat
 * completion asked from inside the gateway's namespace is answered across the link. Across
 * the same link a worker whose certificate comes from another CA, a gateway whose
 * certificate does, a gateway expecting another name and a plain tcp:// dial are all
 * refused.
 *
 * The test process itself moves between namespaces (setns) to start each side, then stays
 * in the gateway's to talk HTTP. It needs root or CAP_NET_ADMIN + CAP_SYS_ADMIN and
 * iproute2's `ip`; without them (namespaces cannot be made) the suite is skipped. Its
 * namespaces are named duet2h-PID-{g,w}: stale ones of a run that died are removed first. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"

#define PREFIX "duet2h-"
#define WORKER_PORT "7700"
#define ROGUE_PORT "7701"
#define HTTP_PORT 8080
#define API_KEY "key-2h"

static char ns_g[32], ns_w[32], veth_g[16], veth_w[16];     /* names with this run's PID */
static char gw_ip[20], wk_ip[20], gw_cidr[24], wk_cidr[24]; /* 10.213.N.1 and .2, N = PID % 250 */
static bool made_g, made_w;
static int home_fd = -1;
static char lab[512], model[1024];
static test_process worker, gateway;
static test_process extra[5]; /* the refusal test's rogue worker and gateways */

static void stop(void);

/* Cleans up, then fails: Criterion runs no .fini after a failed .init, and this suite's
 * namespaces and daemons must not outlive it. */
__attribute__((format(printf, 1, 2))) static void fail_cleanly(const char *fmt, ...)
{
    char msg[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    stop();
    cr_assert_fail("%s", msg);
}

/* Runs `ip FIRST ...` (arguments up to a NULL); its output in *out when out is not NULL and
 * the command line in cmd. */
static int run_ipv(char **out, char *cmd, size_t cap, const char *first, va_list ap)
{
    const char *argv[24] = {"ip", first};
    size_t n = 2;
    for (const char *a; n + 1 < sizeof argv / sizeof *argv && (a = va_arg(ap, const char *));) {
        argv[n++] = a;
    }
    argv[n] = NULL;
    cmd[0] = '\0';
    for (size_t i = 0, len = 0; i < n && len + 1 < cap; i++) {
        len += (size_t)snprintf(cmd + len, cap - len, "%s%s", i ? " " : "", argv[i]);
    }
    return test_run_program(argv, out);
}

static int run_ip(char **out, const char *first, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, first);
    int rc = run_ipv(out, cmd, sizeof cmd, first, ap);
    va_end(ap);
    return rc;
}

#define IP_OK(...) ip_ok(__VA_ARGS__, (const char *)NULL)

/* Runs `ip ...` and fails the test (cleaning up) unless it succeeds. */
static void ip_ok(const char *first, ...)
{
    char cmd[512], *out = NULL;
    va_list ap;
    va_start(ap, first);
    int rc = run_ipv(&out, cmd, sizeof cmd, first, ap);
    va_end(ap);
    if (rc != 0) {
        fail_cleanly("%s: exit %d: %s", cmd, rc, out);
    }
    free(out);
}

/* Deletes a namespace after killing whatever still runs in it (a crashed run's daemons). */
static void remove_namespace(const char *name)
{
    char *pids = NULL;
    if (run_ip(&pids, "netns", "pids", name, (const char *)NULL) == 0) {
        char *p = pids, *end;
        for (long pid; (pid = strtol(p, &end, 10)), end != p; p = end) {
            if (pid > 0) {
                kill((pid_t)pid, SIGKILL);
            }
        }
    }
    free(pids);
    run_ip(NULL, "netns", "del", name, (const char *)NULL);
}

/* Namespaces of this suite whose run (the PID in the name) is gone. */
static void remove_stale_namespaces(void)
{
    char *list = NULL;
    if (run_ip(&list, "netns", "list", (const char *)NULL) == 0) {
        char *save = NULL;
        for (char *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char name[64];
            if (strncmp(line, PREFIX, strlen(PREFIX)) != 0 || sscanf(line, "%63s", name) != 1) {
                continue;
            }
            long owner = strtol(name + strlen(PREFIX), NULL, 10);
            if (owner > 0 && (kill((pid_t)owner, 0) == 0 || errno == EPERM)) {
                continue; /* its run goes on */
            }
            remove_namespace(name);
        }
    }
    free(list);
}

/* Moves this process into the named namespace. */
static void enter(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "/run/netns/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fail_cleanly("open %s: %s", path, strerror(errno));
    }
    if (setns(fd, CLONE_NEWNET) != 0) {
        fail_cleanly("setns %s: %s", name, strerror(errno));
    }
    close(fd);
}

static void certs_ok(const char *const argv[])
{
    char *out = NULL, *err = NULL;
    int rc = test_run_tool_capture(argv, &out, &err);
    if (rc != 0) {
        fail_cleanly("duet-certs %s %s: exit %d: %s", argv[1], argv[2], rc, err);
    }
    free(out);
    free(err);
}

/* A lab CA in dir with worker-1 (its DNS name and the worker's address) and gateway-1. */
static void make_lab(const char *dir)
{
    const char *init[] = {"duet-certs", "init", dir, NULL};
    const char *w[] = {"duet-certs", "issue", dir, "worker-1", "--ip", wk_ip, NULL};
    const char *g[] = {"duet-certs", "issue", dir, "gateway-1", NULL};
    certs_ok(init);
    certs_ok(w);
    certs_ok(g);
}

/* test_spawn_tool with DUET_LOG=warn: the refusals this suite looks for are warnings. */
static void spawn_logging_warnings(const char *const argv[], test_process *p)
{
    const char *level = getenv("DUET_LOG");
    char saved[32] = "";
    snprintf(saved, sizeof saved, "%s", level ? level : "");
    setenv("DUET_LOG", "warn", 1);
    test_spawn_tool(argv, p);
    if (level) {
        setenv("DUET_LOG", saved, 1);
    } else {
        unsetenv("DUET_LOG");
    }
}

/* A gateway in the current namespace serving HTTP on port and dialing worker_url. */
static void spawn_gateway(test_process *p, int port, const char *worker_url, const char *name,
                          const char *certs, bool insecure)
{
    char conf[700], http[32], db[700];
    snprintf(conf, sizeof conf, "%s/g%d.yaml", lab, port);
    snprintf(db, sizeof db, "%s/sessions%d.db", lab, port);
    snprintf(http, sizeof http, "127.0.0.1:%d", port);
    FILE *f = fopen(conf, "w");
    if (!f) {
        fail_cleanly("cannot write %s", conf);
    }
    fprintf(f, "workers:\n  - url: %s\n", worker_url);
    if (name) {
        fprintf(f, "    server_name: %s\n", name);
    }
    fprintf(f, "routing:\n  health_interval_ms: 200\n");
    fclose(f);
    const char *argv[16] = {"duet-gateway", "-c",           conf,   "--http", http,
                            "--api-key",    API_KEY ":bob", "--db", db};
    size_t n = 9;
    if (certs) {
        argv[n++] = "--certs";
        argv[n++] = certs;
        argv[n++] = "--name";
        argv[n++] = "gateway-1";
    }
    if (insecure) {
        argv[n++] = "--insecure";
    }
    argv[n] = NULL;
    spawn_logging_warnings(argv, p);
}

static void start(void)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    snprintf(model, sizeof model, "%s/stories260K.gguf", dir ? dir : "../shared/models");
    if (access(model, R_OK) != 0) {
        cr_skip_test("TEST MODELS MISSING: %s not found (set DUET_TEST_MODELS)", model);
    }
    remove_stale_namespaces();
    int pid = (int)getpid();
    snprintf(ns_g, sizeof ns_g, PREFIX "%d-g", pid);
    snprintf(ns_w, sizeof ns_w, PREFIX "%d-w", pid);
    snprintf(veth_g, sizeof veth_g, "d2h%dg", pid);
    snprintf(veth_w, sizeof veth_w, "d2h%dw", pid);
    snprintf(gw_cidr, sizeof gw_cidr, "10.213.%d.1/30", pid % 250);
    snprintf(wk_cidr, sizeof wk_cidr, "10.213.%d.2/30", pid % 250);
    snprintf(wk_ip, sizeof wk_ip, "10.213.%d.2", pid % 250);
    snprintf(gw_ip, sizeof gw_ip, "10.213.%d.1", pid % 250);

    char *out = NULL;
    int rc = run_ip(&out, "netns", "add", ns_g, (const char *)NULL);
    if (rc == 127) {
        free(out);
        cr_skip_test("no `ip` command (iproute2): cannot make the two hosts' network namespaces");
    }
    if (rc != 0) {
        cr_log_warn("ip netns add %s: %s", ns_g, out);
        free(out);
        cr_skip_test("cannot create network namespaces (needs root or CAP_NET_ADMIN and "
                     "CAP_SYS_ADMIN; euid %d): see the warning above",
                     (int)geteuid());
    }
    free(out);
    made_g = true;
    IP_OK("netns", "add", ns_w);
    made_w = true;
    /* both ends go straight into their namespaces: deleting those removes the pair */
    IP_OK("link", "add", "name", veth_g, "netns", ns_g, "type", "veth", "peer", "name", veth_w,
          "netns", ns_w);
    IP_OK("-n", ns_g, "addr", "add", gw_cidr, "dev", veth_g);
    IP_OK("-n", ns_w, "addr", "add", wk_cidr, "dev", veth_w);
    IP_OK("-n", ns_g, "link", "set", "lo", "up");
    IP_OK("-n", ns_w, "link", "set", "lo", "up");
    IP_OK("-n", ns_g, "link", "set", veth_g, "up");
    IP_OK("-n", ns_w, "link", "set", veth_w, "up");
    home_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home_fd < 0) {
        fail_cleanly("open /proc/self/ns/net: %s", strerror(errno));
    }

    test_make_temp_dir(lab, sizeof lab, "duet-2h");
    make_lab(lab);
    char url[64];
    snprintf(url, sizeof url, "tls+tcp://%s:" WORKER_PORT, wk_ip);
    enter(ns_w);
    const char *wargv[] = {"duet-worker", "-m",     model,      "--listen", url, "--certs",
                           lab,           "--name", "worker-1", "-t",       "1", NULL};
    spawn_logging_warnings(wargv, &worker);
    enter(ns_g);
    spawn_gateway(&gateway, HTTP_PORT, url, "worker-1", lab, false);
    char why[1024];
    if (!test_wait_gateway_ready(&gateway, HTTP_PORT, 20000, why, sizeof why)) {
        char *err = test_process_stderr(&worker);
        fail_cleanly("%s\nworker: %s", why, err ? err : "");
    }
}

static void stop(void)
{
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++) {
        test_process_forget(&extra[i]);
    }
    test_process_forget(&gateway);
    test_process_forget(&worker);
    if (home_fd >= 0) {
        setns(home_fd, CLONE_NEWNET);
        close(home_fd);
        home_fd = -1;
    }
    if (made_g) {
        remove_namespace(ns_g);
        made_g = false;
    }
    if (made_w) {
        remove_namespace(ns_w);
        made_w = false;
    }
    if (lab[0]) {
        test_remove_dir(lab);
        lab[0] = '\0';
    }
}

TestSuite(two_hosts, .init = start, .fini = stop);

static int post(int port, const char *body, char *out, size_t cap)
{
    char req[4096];
    snprintf(req, sizeof req,
             "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " API_KEY
             "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    test_http(port, req, out, cap, 30000);
    return test_http_status(out);
}

/* Bytes received and sent by the veth end in this process's namespace. */
static void veth_bytes(const char *dev, unsigned long long *rx, unsigned long long *tx)
{
    char *dev_table = test_read_file("/proc/self/net/dev", NULL);
    cr_assert_not_null(dev_table);
    size_t n = strlen(dev);
    const char *line = dev_table;
    while (line) {
        line += strspn(line, " ");
        if (strncmp(line, dev, n) == 0 && line[n] == ':') {
            break;
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    cr_assert_not_null(line, "%s is not in this namespace: %s", dev, dev_table);
    unsigned long long skip;
    int got = sscanf(line + n + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu", rx, &skip, &skip,
                     &skip, &skip, &skip, &skip, &skip, tx);
    cr_assert_eq(got, 9, "%s", line);
    free(dev_table);
}

static const char *body_of(const char *answer)
{
    const char *b = strstr(answer, "\r\n\r\n");
    return b ? b + 4 : "";
}

Test(two_hosts, a_gateway_answers_through_a_worker_on_another_host)
{
    char buf[65536], expect[128];
    test_http(HTTP_PORT, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof buf, 5000);
    snprintf(expect, sizeof expect, "\"url\":\"tls+tcp://%s:" WORKER_PORT "\",\"connected\":true",
             wk_ip);
    cr_assert(strstr(buf, expect), "the worker across the link is connected: %s", buf);

    unsigned long long rx0, tx0, rx1, tx1;
    veth_bytes(veth_g, &rx0, &tx0);
    const char *ask = "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story about a "
                      "cat.\"}],\"max_tokens\":12,\"temperature\":0}";
    cr_assert_eq(post(HTTP_PORT, ask, buf, sizeof buf), 200, "%s", buf);
    veth_bytes(veth_g, &rx1, &tx1);

    json_error_t err;
    json_t *c = json_loads(body_of(buf), 0, &err);
    cr_assert_not_null(c, "%s: %s", err.text, buf);
    cr_assert_str_eq(json_string_value(json_object_get(c, "object")), "chat.completion");
    json_t *choice = json_array_get(json_object_get(c, "choices"), 0);
    const char *text =
        json_string_value(json_object_get(json_object_get(choice, "message"), "content"));
    cr_assert(text && *text, "a non-empty answer: %s", buf);
    size_t text_len = strlen(text);
    json_t *usage = json_object_get(c, "usage");
    json_int_t done = json_integer_value(json_object_get(usage, "completion_tokens"));
    const char *reason = json_string_value(json_object_get(choice, "finish_reason"));
    cr_assert(reason &&
                  (strcmp(reason, "stop") == 0 || (strcmp(reason, "length") == 0 && done == 12)),
              "%s", buf);
    cr_assert(done >= 1 && done <= 12, "%s", buf);
    cr_assert_gt(json_integer_value(json_object_get(usage, "prompt_tokens")), 0, "%s", buf);
    json_decref(c);

    /* the request went out over the link and the answer came back over it */
    cr_assert_gt(tx1, tx0, "nothing was sent on %s", veth_g);
    cr_assert_gt(rx1 - rx0, text_len, "the answer did not come in on %s", veth_g);
}

/* Waits until the process's stderr shows what, at most timeout_ms. */
static bool wait_stderr(const test_process *p, const char *what, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        char *err = test_process_stderr(p);
        bool seen = err && strstr(err, what);
        free(err);
        if (seen) {
            return true;
        }
        usleep(50 * 1000);
    }
    return false;
}

/* The gateway on port saw what in its log, has no connected worker and answers 503. */
static void check_refused(test_process *p, int port, const char *case_name, const char *what)
{
    char buf[16384];
    cr_assert(test_wait_listening(port, 10000), "%s: the gateway does not listen", case_name);
    bool seen = wait_stderr(p, what, 15000);
    char *err = test_process_stderr(p);
    cr_assert(seen, "%s: no \"%s\" in the gateway's log: %s", case_name, what, err);
    free(err);
    test_http(port, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof buf, 5000);
    cr_assert(strstr(buf, "\"connected\":false") && !strstr(buf, "\"connected\":true"), "%s: %s",
              case_name, buf);
    const char *ask = "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":2}";
    cr_assert_eq(post(port, ask, buf, sizeof buf), 503, "%s: %s", case_name, buf);
}

Test(two_hosts, foreign_certificates_wrong_names_and_plain_tcp_are_refused_across_the_link)
{
    /* another CA with the same node names; a folder that trusts the lab's CA but holds a
     * gateway certificate signed by the other one */
    char rogue[600], mixed[600], from[700], to[700];
    snprintf(rogue, sizeof rogue, "%s/rogue", lab);
    snprintf(mixed, sizeof mixed, "%s/mixed", lab);
    make_lab(rogue);
    cr_assert_eq(mkdir(mixed, 0700), 0);
    const char *links[][2] = {{lab, "ca.crt"}, {rogue, "gateway-1.crt"}, {rogue, "gateway-1.key"}};
    for (size_t i = 0; i < 3; i++) {
        snprintf(from, sizeof from, "%s/%s", links[i][0], links[i][1]);
        snprintf(to, sizeof to, "%s/%s", mixed, links[i][1]);
        cr_assert_eq(symlink(from, to), 0, "%s: %s", to, strerror(errno));
    }

    char good[64], bad[64], plain[64];
    snprintf(good, sizeof good, "tls+tcp://%s:" WORKER_PORT, wk_ip);
    snprintf(bad, sizeof bad, "tls+tcp://%s:" ROGUE_PORT, wk_ip);
    snprintf(plain, sizeof plain, "tcp://%s:" WORKER_PORT, wk_ip);
    enter(ns_w);
    const char *wargv[] = {"duet-worker", "-m",     model,      "--listen", bad, "--certs",
                           rogue,         "--name", "worker-1", "-t",       "1", NULL};
    test_spawn_tool(wargv, &extra[0]);
    enter(ns_g);

    /* the worker refuses a gateway whose certificate another CA signed, and says whom */
    spawn_gateway(&extra[1], HTTP_PORT + 1, good, "worker-1", mixed, false);
    check_refused(&extra[1], HTTP_PORT + 1, "a gateway certified by another CA",
                  "TLS handshake failed");
    char who[64];
    snprintf(who, sizeof who, "rejected TLS peer %s:", gw_ip);
    bool seen = wait_stderr(&worker, who, 5000);
    char *err = test_process_stderr(&worker);
    cr_assert(seen, "the worker does not log \"%s\": %s", who, err);
    free(err);

    /* the gateway refuses a worker certified by another CA, a worker whose certificate does
     * not carry the expected name, and a plain tcp:// dial gets nothing from the TLS port */
    spawn_gateway(&extra[2], HTTP_PORT + 2, bad, "worker-1", lab, false);
    spawn_gateway(&extra[3], HTTP_PORT + 3, good, "worker-2", lab, false);
    spawn_gateway(&extra[4], HTTP_PORT + 4, plain, NULL, NULL, true);
    check_refused(&extra[2], HTTP_PORT + 2, "a worker certified by another CA",
                  "TLS handshake failed");
    check_refused(&extra[3], HTTP_PORT + 3, "a gateway expecting worker-2", "TLS handshake failed");
    check_refused(&extra[4], HTTP_PORT + 4, "plain tcp:// to the TLS worker",
                  "connection closed by the peer");

    /* and the genuine pair still works across the same link */
    char buf[65536];
    const char *ask = "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":2}";
    cr_assert_eq(post(HTTP_PORT, ask, buf, sizeof buf), 200, "%s", buf);
}
