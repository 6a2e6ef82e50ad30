/* The web chat page served by duet-gateway (a real gateway and worker on stories260K, mutual
 * TLS between them). Over plain HTTP: GET / and every embedded file come back byte for byte
 * as in gateway/web/, with their Content-Type, without an API key, and with the security
 * headers (a strict Content-Security-Policy, nosniff, no-cache); every file of gateway/web/
 * is embedded, and the page has nothing inline the policy would refuse. In a browser:
 * headless Chromium driven through chromedriver by tests/node/web-check.mjs signs in,
 * streams answers, stops one, continues the session, shows the phone layout, renames,
 * deletes and signs out; its screenshots go to the build tree's artifacts/web-page/ (or
 * $DUET_TEST_ARTIFACTS/web-page/). */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"
#include "web_page.h"

#define WEB_DIR DUET_SOURCE_DIR "/gateway/web"
#define CHROMIUM "/usr/bin/chromium"
#define CHROMEDRIVER "/usr/bin/chromedriver"

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
    test_make_temp_dir(lab, sizeof lab, "duet-web");
    const char *names[] = {"worker-1", "gateway-1", NULL};
    test_make_lab(lab, names);
    char worker_url[64], http[64];
    snprintf(worker_url, sizeof worker_url, "tls+tcp://127.0.0.1:%d", test_free_port());
    http_port = test_free_port();
    snprintf(http, sizeof http, "127.0.0.1:%d", http_port);
    const char *wargv[] = {"duet-worker", "-m",    model,    "--listen", worker_url,
                           "--certs",     lab,     "--name", "worker-1", "-t",
                           "1",           "--ctx", "512",    NULL};
    test_spawn_tool(wargv, &worker);
    /* short answers keep the browser check quick; no limits in its way */
    snprintf(conf, sizeof conf, "%s/g.yaml", lab);
    FILE *f = fopen(conf, "w");
    fprintf(f,
            "workers:\n  - url: %s\n    server_name: worker-1\n"
            "routing:\n  health_interval_ms: 200\n  answer_tokens: 40\n"
            "limits:\n  user_requests_per_second: 1000\n  user_request_burst: 1000\n"
            "  requests_per_second: 1000\n  request_burst: 1000\n"
            "sessions:\n  db: %s/sessions.db\n",
            worker_url, lab);
    fclose(f);
    const char *gargv[] = {"duet-gateway", "-c",        conf,          "--http",
                           http,           "--certs",   lab,           "--name",
                           "gateway-1",    "--api-key", "key-web:web", NULL};
    test_spawn_tool(gargv, &gateway);
    char why[1024];
    if (!test_wait_gateway_ready(&gateway, http_port, 20000, why, sizeof why)) {
        cr_assert_fail("%s", why);
    }
}

static void stop(void)
{
    test_process_forget(&gateway);
    test_process_forget(&worker);
    test_remove_dir(lab);
}

TestSuite(web_page, .init = start, .fini = stop);

/* ---- plain HTTP ---- */

static char answer[1 << 20];

static int get(const char *method, const char *path)
{
    char req[512];
    snprintf(req, sizeof req,
             "%s %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", method,
             path);
    test_http(http_port, req, answer, sizeof answer, 10000);
    return test_http_status(answer);
}

/* A header's value in answer, copied to out ("" when absent). */
static const char *header(const char *name, char *out, size_t cap)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\r\n%s: ", name);
    const char *end = strstr(answer, "\r\n\r\n");
    const char *h = strstr(answer, pat);
    out[0] = '\0';
    if (h && (!end || h < end)) {
        h += strlen(pat);
        snprintf(out, cap, "%.*s", (int)strcspn(h, "\r\n"), h);
    }
    return out;
}

/* The Content-Type a file must have, by its extension. */
static const char *expected_type(const char *name)
{
    static const char *const table[][2] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(dot, table[i][0]) == 0) {
            return table[i][1];
        }
    }
    return NULL;
}

/* GET path answers 200 with the file's bytes from gateway/web/, its type and the headers. */
static void check_served(const char *path, const char *name)
{
    cr_assert_eq(get("GET", path), 200, "GET %s: %.300s", path, answer);
    char v[1024];
    const char *type = expected_type(name);
    cr_assert_not_null(type, "a test expectation for %s's type", name);
    cr_assert_str_eq(header("Content-Type", v, sizeof v), type, "GET %s", path);
    cr_assert_str_eq(header("X-Content-Type-Options", v, sizeof v), "nosniff", "GET %s", path);
    cr_assert_str_eq(header("Cache-Control", v, sizeof v), "no-cache", "GET %s", path);
    header("Content-Security-Policy", v, sizeof v);
    cr_assert_str_eq(v, duet_web_csp, "GET %s", path);
    cr_assert(strncmp(v, "default-src 'self';", 19) == 0, "%s", v);
    cr_assert_null(strstr(v, "unsafe"), "no unsafe-inline or unsafe-eval: %s", v);
    cr_assert(strstr(v, "frame-ancestors 'none'") && strstr(v, "object-src 'none'"), "%s", v);

    char file[1024];
    snprintf(file, sizeof file, "%s/%s", WEB_DIR, name);
    size_t len;
    char *want = test_read_file(file, &len);
    cr_assert_not_null(want, "%s", file);
    const char *body = strstr(answer, "\r\n\r\n");
    cr_assert_not_null(body);
    body += 4;
    cr_assert_eq(atol(header("Content-Length", v, sizeof v)), (long)len, "GET %s", path);
    cr_assert(memcmp(body, want, len) == 0, "GET %s: the bytes of %s", path, file);
    free(want);
}

Test(web_page, every_file_is_served_as_it_is_with_its_type_and_a_strict_policy)
{
    check_served("/", "index.html");
    cr_assert_geq(duet_web_file_count, 3, "index.html, its script and its style at least");
    for (size_t i = 0; i < duet_web_file_count; i++) {
        char path[300];
        snprintf(path, sizeof path, "/%s", duet_web_files[i].name);
        check_served(path, duet_web_files[i].name);
    }
    cr_assert_eq(get("HEAD", "/app.js"), 200, "%.300s", answer);
    cr_assert_eq(get("GET", "/nothing-here.js"), 404, "%.300s", answer);
    cr_assert_eq(get("POST", "/"), 405, "%.300s", answer);
    /* the page is open, the API behind it is not */
    cr_assert_eq(get("GET", "/v1/sessions"), 401, "%.300s", answer);
}

/* ---- the files themselves ---- */

Test(web_files, every_file_of_gateway_web_is_embedded)
{
    DIR *d = opendir(WEB_DIR);
    cr_assert_not_null(d, "%s: %s", WEB_DIR, strerror(errno));
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') {
            continue;
        }
        n++;
        size_t i = 0;
        while (i < duet_web_file_count && strcmp(duet_web_files[i].name, e->d_name) != 0) {
            i++;
        }
        cr_assert_lt(i, duet_web_file_count, "gateway/web/%s is not embedded", e->d_name);
        cr_assert_not_null(duet_web_content_type(e->d_name), "a Content-Type for %s", e->d_name);
        cr_assert_eq(duet_web_files[i].data[duet_web_files[i].len], 0, "NUL after %s", e->d_name);
    }
    closedir(d);
    cr_assert_eq(n, duet_web_file_count);
    cr_assert_null(duet_web_content_type("notes.md"));
    cr_assert_null(duet_web_content_type("Makefile"));
}

/* True when pattern (extended, case-insensitive) matches somewhere in text. */
static bool matches(const char *text, const char *pattern)
{
    regex_t re;
    cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_ICASE | REG_NOSUB), 0, "%s", pattern);
    bool found = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    return found;
}

static const duet_web_file *embedded(const char *name)
{
    for (size_t i = 0; i < duet_web_file_count; i++) {
        if (strcmp(duet_web_files[i].name, name) == 0) {
            return &duet_web_files[i];
        }
    }
    return NULL;
}

Test(web_files, the_page_has_nothing_inline_and_shows_text_as_text)
{
    const duet_web_file *index = embedded("index.html");
    cr_assert_not_null(index);
    const char *html = (const char *)index->data;
    /* what the Content-Security-Policy would refuse */
    cr_assert_not(matches(html, "<style"), "no <style> element");
    cr_assert_not(matches(html, "[[:space:]]style[[:space:]]*="), "no style attribute");
    cr_assert_not(matches(html, "[[:space:]]on[a-z]+[[:space:]]*="), "no event attribute");
    cr_assert_not(matches(html, "<script[^>]*>[[:space:]]*[^<[:space:]]"), "no inline script");
    cr_assert_not(matches(html, "(src|href)=\"(https?:)?//"), "nothing from elsewhere");
    /* every local file it names is served */
    regex_t re;
    cr_assert_eq(regcomp(&re, "(src|href)=\"/([^\"]*)\"", REG_EXTENDED), 0);
    size_t refs = 0;
    regmatch_t m[3];
    for (const char *p = html; regexec(&re, p, 3, m, 0) == 0; p += m[0].rm_eo) {
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(m[2].rm_eo - m[2].rm_so), p + m[2].rm_so);
        cr_assert_not_null(embedded(name), "index.html names /%s, which is not served", name);
        refs++;
    }
    regfree(&re);
    cr_assert_geq(refs, 2, "the page's script and style");

    const duet_web_file *js = embedded("app.js");
    cr_assert_not_null(js);
    const char *code = (const char *)js->data;
    cr_assert_not(matches(code, "innerHTML|outerHTML|insertAdjacentHTML|document\\.write"),
                  "text from the gateway never goes in as HTML");
    cr_assert_not(matches(code, "eval\\(|new Function"), "no eval");
    cr_assert(matches(code, "getReader\\(") && matches(code, "AbortController"),
              "answers are read as a stream and can be stopped");
}

/* ---- in a browser ---- */

/* Where the screenshots go: $DUET_TEST_ARTIFACTS/web-page, else the build tree's
 * artifacts/web-page (the build tree is the tools folder's parent). */
static void artifacts_dir(char *out, size_t cap)
{
    const char *env = getenv("DUET_TEST_ARTIFACTS");
    char base[900];
    if (env && env[0]) {
        snprintf(base, sizeof base, "%s", env);
    } else {
        snprintf(base, sizeof base, "%s/..", DUET_TOOLS_DIR);
    }
    char *real = realpath(base, NULL);
    snprintf(out, cap, "%s/artifacts", real ? real : base);
    free(real);
    mkdir(out, 0755);
    size_t n = strlen(out);
    snprintf(out + n, cap - n, "/web-page");
    mkdir(out, 0755);
}

/* True when the file is a PNG image of some substance. */
static bool is_png(const char *path)
{
    size_t len = 0;
    char *data = test_read_file(path, &len);
    bool ok = data && len > 4096 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0;
    free(data);
    return ok;
}

Test(web_page, a_browser_signs_in_streams_answers_and_manages_chats)
{
    if (access(CHROMIUM, X_OK) != 0 || access(CHROMEDRIVER, X_OK) != 0) {
        cr_skip_test("BROWSER MISSING: %s or %s not installed (tools/setup.sh installs "
                     "chromium and chromium-driver)",
                     CHROMIUM, CHROMEDRIVER);
    }
    char out[1024], url[64], log_path[1100];
    artifacts_dir(out, sizeof out);
    const char *shots[] = {"desktop.png", "phone.png", "phone-sessions.png", "failure.png"};
    for (size_t i = 0; i < sizeof shots / sizeof shots[0]; i++) {
        char p[1100];
        snprintf(p, sizeof p, "%s/%s", out, shots[i]);
        unlink(p); /* only this run's */
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", http_port);
    const char *argv[] = {"node",
                          DUET_SOURCE_DIR "/tests/node/web-check.mjs",
                          "--url",
                          url,
                          "--key",
                          "key-web",
                          "--out",
                          out,
                          "--chromium",
                          CHROMIUM,
                          "--chromedriver",
                          CHROMEDRIVER,
                          NULL};
    char *log = NULL;
    int rc = test_run_program(argv, &log);
    snprintf(log_path, sizeof log_path, "%s/web-check.log", out);
    FILE *f = fopen(log_path, "w");
    if (f) {
        fputs(log ? log : "", f);
        fclose(f);
    }
    fprintf(stderr, "web page check (log %s):\n%s", log_path, log ? log : "");
    cr_assert_eq(rc, 0, "web-check.mjs exited %d:\n%s", rc, log ? log : "");
    cr_assert(strstr(log, "web-check: all checks passed"), "%s", log);
    for (size_t i = 0; i < 3; i++) {
        char p[1100];
        snprintf(p, sizeof p, "%s/%s", out, shots[i]);
        cr_assert(is_png(p), "screenshot %s", p);
        fprintf(stderr, "screenshot: %s\n", p);
    }
    free(log);
}
