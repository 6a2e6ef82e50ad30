/* The gateway's worker pool against a real worker (stories260K over mutual TLS) and a
 * worker address where nothing listens: the live one is picked and its model's tokenizer
 * counts like the engine's; the dead one is skipped and its breaker opens; reported
 * failures open the live one's breaker, which after the cooldown lets exactly one probe
 * through; a killed worker drops out. */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "support.h"
#include "tokenizer.h"
#include "vocab_gguf.h"
#include "worker_pool.h"

static char lab[512], model[1024];
static test_process worker;

static void start(void)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    snprintf(model, sizeof model, "%s/stories260K.gguf", dir ? dir : "../shared/models");
    if (access(model, R_OK) != 0) {
        cr_skip_test("TEST MODELS MISSING: %s not found (set DUET_TEST_MODELS)", model);
    }
    test_make_temp_dir(lab, sizeof lab, "duet-pool");
    const char *names[] = {"worker-1", "gateway-1", NULL};
    test_make_lab(lab, names);
}

static void stop(void)
{
    test_process_forget(&worker);
    test_remove_dir(lab);
}

TestSuite(worker_pool, .init = start, .fini = stop);

static duet_worker_pool *pool_for(const char *live_url, const char *dead_url)
{
    static char ca[600], cert[600], key[600];
    snprintf(ca, sizeof ca, "%s/ca.crt", lab);
    snprintf(cert, sizeof cert, "%s/gateway-1.crt", lab);
    snprintf(key, sizeof key, "%s/gateway-1.key", lab);
    duet_tls_options tls = {.ca_file = ca, .cert_file = cert, .key_file = key};
    duet_worker_endpoint eps[2] = {{.url = (char *)dead_url, .server_name = "worker-0"},
                                   {.url = (char *)live_url, .server_name = "worker-1"}};
    duet_rpc_limits limits;
    duet_rpc_limits_default(&limits);
    limits.connect_timeout_ms = 500;
    duet_worker_pool_options o = {.health_interval_ms = 100000, /* the test drives checks */
                                  .health_timeout_ms = 2000,
                                  .breaker = {.failure_threshold = 2, .cooldown_ms = 300}};
    duet_worker_pool *p;
    duet_status st;
    cr_assert_eq(duet_worker_pool_new(eps, 2, &tls, &limits, &o, &p, &st), DUET_OK, "%s",
                 st.message);
    return p;
}

/* Checks until the live worker (1) is picked, at most 20 s. */
static void wait_for_live(duet_worker_pool *p)
{
    for (int i = 0; i < 200; i++) {
        duet_worker_pool_check_now(p);
        if (duet_worker_pool_pick(p, 0) == 1) {
            duet_worker_pool_report(p, 1, true, NULL);
            return;
        }
        usleep(100 * 1000);
    }
    char *err = test_process_stderr(&worker);
    cr_assert_fail("the live worker was never picked; its stderr:\n%s", err ? err : "");
}

Test(worker_pool, routes_around_a_dead_worker_and_learns_from_failures)
{
    char live[64], dead[64];
    snprintf(live, sizeof live, "tls+tcp://127.0.0.1:%d", test_free_port());
    snprintf(dead, sizeof dead, "tls+tcp://127.0.0.1:%d", test_free_port());
    const char *argv[] = {"duet-worker", "-m",     model,      "--listen", live, "--certs",
                          lab,           "--name", "worker-1", "-t",       "1",  NULL};
    test_spawn_tool(argv, &worker);
    duet_worker_pool *p = pool_for(live, dead);
    wait_for_live(p);

    /* the dead worker: never connected, failed checks, breaker open after two (one more
     * check now, so a slow start cannot have let the cooldown pass) */
    duet_worker_pool_check_now(p);
    duet_worker_status s;
    duet_worker_pool_status(p, 0, &s);
    cr_assert_not(s.connected);
    cr_assert_not(s.has_model);
    cr_assert_geq(s.checks_failed, 2);
    cr_assert_eq(s.breaker, DUET_BREAKER_OPEN, "breaker %s", duet_breaker_state_name(s.breaker));
    cr_assert_str_not_empty(s.last_error);

    /* the live one knows its model, and its tokenizer counts like the engine's */
    duet_worker_pool_status(p, 1, &s);
    cr_assert(s.connected && s.has_model);
    cr_assert_eq(s.load_state, 2 /* READY */);
    cr_assert_eq(s.context, 2048);
    uint32_t ctx = 0;
    char name[128];
    const duet_tokenizer *tok = duet_worker_pool_tokenizer(p, &ctx, name, sizeof name);
    cr_assert_not_null(tok);
    cr_assert_eq(ctx, 2048);
    duet_gguf *g;
    duet_vocab v;
    duet_tokenizer *local;
    duet_status st;
    cr_assert_eq(duet_gguf_open(model, &g, &st), DUET_OK);
    cr_assert_eq(duet_vocab_from_gguf(g, &v, &st), DUET_OK);
    cr_assert_eq(duet_tokenizer_create(&v, &local, &st), DUET_OK);
    const char *text = "Once upon a time, Lily found a shiny ball.";
    int32_t *a, *b;
    size_t na, nb;
    cr_assert_eq(duet_tokenize(tok, text, strlen(text), true, false, &a, &na, &st), DUET_OK);
    cr_assert_eq(duet_tokenize(local, text, strlen(text), true, false, &b, &nb, &st), DUET_OK);
    cr_assert(na == nb && memcmp(a, b, na * sizeof *a) == 0, "token counts %zu and %zu", na, nb);
    free(a);
    free(b);
    duet_tokenizer_free(local);
    duet_vocab_free(&v);
    duet_gguf_close(g);

    /* skip masks */
    cr_assert_eq(duet_worker_pool_pick(p, 1u << 1), -1, "the dead one is never picked");

    /* two failed requests open the live worker's breaker; after the cooldown, one probe */
    duet_worker_pool_report(p, 1, false, "first token too slow");
    duet_worker_pool_report(p, 1, false, "first token too slow");
    cr_assert_eq(duet_worker_pool_pick(p, 0), -1, "both breakers open");
    duet_worker_pool_status(p, 1, &s);
    cr_assert_str_eq(s.last_error, "first token too slow");
    usleep(350 * 1000);
    cr_assert_eq(duet_worker_pool_pick(p, 0), 1, "the probe");
    cr_assert_eq(duet_worker_pool_pick(p, 0), -1, "one probe at a time");
    duet_worker_pool_report(p, 1, true, NULL);
    cr_assert_eq(duet_worker_pool_pick(p, 0), 1, "closed again");
    duet_worker_pool_report(p, 1, true, NULL);

    /* the worker dies: checks fail, and it drops out */
    test_process_stop(&worker, SIGKILL, 5000);
    for (int i = 0; i < 50 && duet_worker_pool_pick(p, 0) == 1; i++) {
        duet_worker_pool_report(p, 1, true, NULL); /* a pick is a request: close it */
        duet_worker_pool_check_now(p);
        usleep(100 * 1000);
    }
    cr_assert_eq(duet_worker_pool_pick(p, 0), -1, "a dead worker is not picked");
    duet_worker_pool_status(p, 1, &s);
    cr_assert_not(s.connected);
    duet_worker_pool_free(p);
}
