/* The duet CLI against a real gateway and worker (stories260K, mutual TLS between them):
 * `duet ask` streams an answer and reports the token counts; a refused API key, an
 * unreachable gateway and a bad URL are clear messages with a non-zero exit. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

static char lab[512], model[1024], gateway_url[96];
static test_process worker, gateway;

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
    char worker_url[64], http[64];
    snprintf(worker_url, sizeof worker_url, "tls+tcp://127.0.0.1:%d", test_free_port());
    int port = test_free_port();
    snprintf(http, sizeof http, "127.0.0.1:%d", port);
    snprintf(gateway_url, sizeof gateway_url, "http://%s", http);
    const char *wargv[] = {"duet-worker", "-m", model,    "--listen", worker_url,
                           "--certs",     lab,  "--name", "worker-1", NULL};
    test_spawn_tool(wargv, &worker);
    const char *gargv[] = {"duet-gateway",  "--http",    http,         "--worker", worker_url,
                           "--worker-name", "worker-1",  "--certs",    lab,        "--name",
                           "gateway-1",     "--api-key", "cli-key:me", NULL};
    test_spawn_tool(gargv, &gateway);
    char why[1024];
    if (!test_wait_gateway_ready(&gateway, port, 20000, why, sizeof why)) {
        cr_assert_fail("%s", why);
    }
}

static void stop(void)
{
    test_process_forget(&gateway);
    test_process_forget(&worker);
    test_remove_dir(lab);
}

TestSuite(cli, .init = start, .fini = stop);

Test(cli, ask_streams_an_answer)
{
    const char *argv[] = {"duet", "-g",  gateway_url,        "-k", "cli-key", "-n",
                          "12",   "ask", "Tell me a story.", NULL};
    char *out, *err;
    cr_assert_eq(test_run_tool_capture(argv, &out, &err), 0, "stderr: %s", err);
    cr_assert_gt(strlen(out), 1, "an answer: \"%s\"", out);
    cr_assert_eq(out[strlen(out) - 1], '\n');
    cr_assert(strstr(err, "answer tokens") && strstr(err, "+ 12 answer tokens"), "%s", err);
    free(out);
    free(err);
}

Test(cli, a_refused_key_and_an_unreachable_gateway_are_clear)
{
    const char *bad_key[] = {"duet", "-g", gateway_url, "-k", "nope", "ask", "hi", NULL};
    char *out, *err;
    cr_assert_eq(test_run_tool_capture(bad_key, &out, &err), 1);
    cr_assert(strstr(err, "refused the API key"), "%s", err);
    free(out);
    free(err);

    char dead[64];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d", test_free_port());
    const char *unreachable[] = {"duet", "-g", dead, "-k", "cli-key", "ask", "hi", NULL};
    cr_assert_eq(test_run_tool_capture(unreachable, &out, &err), 1);
    cr_assert(strstr(err, "cannot reach the gateway") && strstr(err, dead), "%s", err);
    free(out);
    free(err);

    const char *bad_url[] = {"duet", "-g", "ftp://x", "-k", "k", "ask", "hi", NULL};
    cr_assert_eq(test_run_tool_capture(bad_url, &out, &err), 1);
    cr_assert(strstr(err, "http://"), "%s", err);
    free(out);
    free(err);

    const char *no_cmd[] = {"duet", "-k", "k", NULL};
    cr_assert_eq(test_run_tool_capture(no_cmd, &out, &err), 2);
    free(out);
    free(err);
}
