/* Relaying a generation with fallback, against two real workers (stories260K, mutual TLS):
 * the preferred worker answers when it can; when it is dead before the request, the next
 * one answers; when it dies mid-answer, the next one continues the answer; a worker too
 * slow to produce its first token is left for the next; the request's own errors are not
 * retried; with no worker left the relay ends UNAVAILABLE; cancel ends it CANCELLED. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay.h"
#include "support.h"

static char lab[512], model[1024], conf_dir[512];
static test_process wa, wb;
static char url_a[64], url_b[64];
static duet_worker_pool *pool;
static duet_timer *timer;

static void spawn(test_process *p, const char *url, const char *name, const char *conf)
{
    const char *argv[] = {"duet-worker", "-m",     model, "--listen", url, "--certs",
                          lab,           "--name", name,  "-t",       "1", conf ? "-c" : NULL,
                          conf,          NULL};
    test_spawn_tool(argv, p);
}

static void start_pool(void)
{
    char ca[600], cert[600], key[600];
    snprintf(ca, sizeof ca, "%s/ca.crt", lab);
    snprintf(cert, sizeof cert, "%s/gateway-1.crt", lab);
    snprintf(key, sizeof key, "%s/gateway-1.key", lab);
    duet_tls_options tls = {.ca_file = ca, .cert_file = cert, .key_file = key};
    duet_worker_endpoint eps[2] = {{.url = url_a, .server_name = "worker-a"},
                                   {.url = url_b, .server_name = "worker-b"}};
    duet_rpc_limits limits;
    duet_rpc_limits_default(&limits);
    duet_worker_pool_options o = {.health_interval_ms = 100000,
                                  .health_timeout_ms = 2000,
                                  .breaker = {.failure_threshold = 1, .cooldown_ms = 60000}};
    duet_status st;
    cr_assert_eq(duet_worker_pool_new(eps, 2, &tls, &limits, &o, &pool, &st), DUET_OK, "%s",
                 st.message);
    timer = duet_timer_new();
    for (int i = 0; i < 200; i++) {
        duet_worker_pool_check_now(pool);
        duet_worker_status a, b;
        duet_worker_pool_status(pool, 0, &a);
        duet_worker_pool_status(pool, 1, &b);
        if (a.has_model && b.has_model) {
            return;
        }
        usleep(100 * 1000);
    }
    cr_assert_fail("the workers never became usable");
}

/* Both workers; a_conf (may be NULL) configures the first. */
static void start_with(const char *a_conf)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    snprintf(model, sizeof model, "%s/stories260K.gguf", dir ? dir : "../shared/models");
    if (access(model, R_OK) != 0) {
        cr_skip_test("TEST MODELS MISSING: %s not found (set DUET_TEST_MODELS)", model);
    }
    test_make_temp_dir(lab, sizeof lab, "duet-relay");
    const char *names[] = {"worker-a", "worker-b", "gateway-1", NULL};
    test_make_lab(lab, names);
    snprintf(url_a, sizeof url_a, "tls+tcp://127.0.0.1:%d", test_free_port());
    snprintf(url_b, sizeof url_b, "tls+tcp://127.0.0.1:%d", test_free_port());
    spawn(&wa, url_a, "worker-a", a_conf);
    spawn(&wb, url_b, "worker-b", NULL);
    start_pool();
}

static void start(void)
{
    start_with(NULL);
}

static void stop(void)
{
    duet_worker_pool_free(pool);
    pool = NULL;
    duet_timer_free(timer);
    test_process_forget(&wa);
    test_process_forget(&wb);
    test_remove_dir(lab);
    if (conf_dir[0]) {
        test_remove_dir(conf_dir);
        conf_dir[0] = '\0';
    }
}

TestSuite(relay, .init = start, .fini = stop);

/* ---- a collecting sink ---- */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    char text[32768];
    size_t len;
    uint32_t tokens;
    bool ended;
    duet_relay_result res;
} collector;

static void on_text(void *arg, const char *text, size_t len, uint32_t tokens)
{
    collector *c = arg;
    pthread_mutex_lock(&c->lock);
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, text, len);
        c->len += len;
        c->text[c->len] = '\0';
    }
    c->tokens += tokens;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->lock);
}

static void on_end(void *arg, const duet_relay_result *r)
{
    collector *c = arg;
    pthread_mutex_lock(&c->lock);
    c->res = *r;
    c->ended = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->lock);
}

static collector *collector_new(void)
{
    collector *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cv, NULL);
    return c;
}

static void wait_tokens(collector *c, uint32_t n)
{
    pthread_mutex_lock(&c->lock);
    while (c->tokens < n && !c->ended) {
        pthread_cond_wait(&c->cv, &c->lock);
    }
    pthread_mutex_unlock(&c->lock);
}

static void wait_end(collector *c)
{
    wait_tokens(c, UINT32_MAX);
}

/* A greedy chat request: one user message. */
typedef struct {
    Duet__V1__GenerateRequest req;
    Duet__V1__ChatPrompt chat;
    Duet__V1__ChatMessage msg, *msgs[1];
    Duet__V1__SamplingParams sp;
} chat_request;

static void make_chat(chat_request *c, const char *text, uint32_t max_tokens)
{
    duet__v1__generate_request__init(&c->req);
    duet__v1__chat_prompt__init(&c->chat);
    duet__v1__chat_message__init(&c->msg);
    duet__v1__sampling_params__init(&c->sp);
    c->msg.role = DUET__V1__ROLE__ROLE_USER;
    c->msg.content = (char *)text;
    c->msgs[0] = &c->msg;
    c->chat.messages = c->msgs;
    c->chat.n_messages = 1;
    c->sp.temperature_opt_case = DUET__V1__SAMPLING_PARAMS__TEMPERATURE_OPT_TEMPERATURE;
    c->sp.temperature = 0;
    c->req.prompt_case = DUET__V1__GENERATE_REQUEST__PROMPT_CHAT;
    c->req.chat = &c->chat;
    c->req.sampling = &c->sp;
    c->req.max_tokens_opt_case = DUET__V1__GENERATE_REQUEST__MAX_TOKENS_OPT_MAX_TOKENS;
    c->req.max_tokens = max_tokens;
    c->req.ignore_eos = true;
}

static duet_relay *relay(const chat_request *c, collector *col, uint32_t first_token_ms)
{
    duet_relay_options o = {.first_token_timeout_ms = first_token_ms};
    duet_relay_sink sink = {.on_text = on_text, .on_end = on_end, .arg = col};
    duet_relay *r;
    duet_status st;
    cr_assert_eq(duet_relay_start(pool, timer, &c->req, &o, &sink, &r, &st), DUET_OK, "%s",
                 st.message);
    return r;
}

static void done(duet_relay *r, collector *c)
{
    duet_relay_release(r);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cv);
    free(c);
}

Test(relay, the_preferred_worker_answers)
{
    chat_request q;
    make_chat(&q, "Tell me a story.", 32);
    collector *c = collector_new();
    duet_relay *r = relay(&q, c, 0);
    wait_end(c);
    cr_assert_eq(c->res.status.code, DUET_OK, "%s", c->res.status.message);
    cr_assert_eq(c->res.worker, 0);
    cr_assert_eq(c->res.attempts, 1);
    cr_assert_eq(c->res.completion_tokens, 32);
    cr_assert_eq(c->tokens, 32);
    cr_assert_eq(c->res.finish_reason, DUET__V1__FINISH_REASON__FINISH_REASON_LENGTH);
    cr_assert_gt(c->len, 0);
    cr_assert_not(c->res.continued);
    done(r, c);
}

Test(relay, a_dead_worker_is_passed_over)
{
    test_process_stop(&wa, SIGKILL, 5000);
    chat_request q;
    make_chat(&q, "Tell me a story.", 16);
    collector *c = collector_new();
    duet_relay *r = relay(&q, c, 0);
    wait_end(c);
    cr_assert_eq(c->res.status.code, DUET_OK, "%s", c->res.status.message);
    cr_assert_eq(c->res.worker, 1);
    cr_assert_eq(c->tokens, 16);
    done(r, c);
}

Test(relay, an_answer_cut_off_mid_way_is_continued_on_the_next_worker)
{
    chat_request q;
    make_chat(&q, "Tell me a long story.", 1500);
    collector *c = collector_new();
    duet_relay *r = relay(&q, c, 0);
    wait_tokens(c, 30);
    cr_assert_not(c->ended, "the answer ended before the worker was killed");
    test_process_stop(&wa, SIGKILL, 5000);
    wait_end(c);
    cr_assert_eq(c->res.status.code, DUET_OK, "%s", c->res.status.message);
    cr_assert(c->res.continued);
    cr_assert_eq(c->res.worker, 1);
    cr_assert_eq(c->res.attempts, 2);
    cr_assert_eq(c->res.completion_tokens, 1500, "%u tokens in all", c->res.completion_tokens);
    cr_assert_eq(c->tokens, 1500);
    cr_assert_eq(c->res.finish_reason, DUET__V1__FINISH_REASON__FINISH_REASON_LENGTH);
    done(r, c);
}

Test(relay, the_requests_own_errors_are_not_retried)
{
    chat_request q;
    make_chat(&q, "Tell me a story.", 16);
    q.sp.top_p_opt_case = DUET__V1__SAMPLING_PARAMS__TOP_P_OPT_TOP_P;
    q.sp.top_p = 7;
    collector *c = collector_new();
    duet_relay *r = relay(&q, c, 0);
    wait_end(c);
    cr_assert_eq(c->res.status.code, DUET_INVALID_ARGUMENT, "%s", c->res.status.message);
    cr_assert_eq(c->res.attempts, 1);
    done(r, c);
    /* and the worker's breaker did not count it */
    cr_assert_eq(duet_worker_pool_pick(pool, 0), 0);
}

Test(relay, with_no_worker_left_it_ends_unavailable)
{
    test_process_stop(&wa, SIGKILL, 5000);
    test_process_stop(&wb, SIGKILL, 5000);
    chat_request q;
    make_chat(&q, "Tell me a story.", 16);
    collector *c = collector_new();
    duet_relay *r = relay(&q, c, 0);
    wait_end(c);
    cr_assert_eq(c->res.status.code, DUET_UNAVAILABLE, "%s", c->res.status.message);
    cr_assert(strstr(c->res.status.message, "no worker"), "%s", c->res.status.message);
    cr_assert_eq(c->res.worker, -1);
    done(r, c);
}

Test(relay, cancel_ends_it)
{
    chat_request q;
    make_chat(&q, "Tell me a long story.", 1500);
    collector *c = collector_new();
    duet_relay *r = relay(&q, c, 0);
    wait_tokens(c, 10);
    duet_relay_cancel(r);
    wait_end(c);
    cr_assert_eq(c->res.status.code, DUET_CANCELLED, "%s", c->res.status.message);
    cr_assert_lt(c->tokens, 1500);
    done(r, c);
}

/* The first worker loads its model at 0.05 MiB/s: its first token would take 20 s. */
static void start_slow_first(void)
{
    test_make_temp_dir(conf_dir, sizeof conf_dir, "duet-relay-conf");
    static char conf[700];
    snprintf(conf, sizeof conf, "%s/slow.yaml", conf_dir);
    FILE *f = fopen(conf, "w");
    fputs("model:\n  load_rate_mib: 0.05\n", f);
    fclose(f);
    start_with(conf);
}

TestSuite(relay_slow, .init = start_slow_first, .fini = stop);

Test(relay_slow, a_worker_too_slow_to_start_is_left_for_the_next)
{
    chat_request q;
    make_chat(&q, "Tell me a story.", 8);
    collector *c = collector_new();
    duet_relay *r = relay(&q, c, 500);
    wait_end(c);
    cr_assert_eq(c->res.status.code, DUET_OK, "%s", c->res.status.message);
    cr_assert_eq(c->res.worker, 1);
    cr_assert_eq(c->res.attempts, 2);
    cr_assert_eq(c->tokens, 8);
    duet_worker_status s;
    duet_worker_pool_status(pool, 0, &s);
    cr_assert_str_eq(s.last_error, "no first token in time");
    done(r, c);
}

/* The first worker takes one sequence and queues none. */
static void start_small_first(void)
{
    test_make_temp_dir(conf_dir, sizeof conf_dir, "duet-relay-conf");
    static char conf[700];
    snprintf(conf, sizeof conf, "%s/small.yaml", conf_dir);
    FILE *f = fopen(conf, "w");
    fputs("scheduler:\n  max_running: 1\n  max_waiting: 0\n", f);
    fclose(f);
    start_with(conf);
}

TestSuite(relay_busy, .init = start_small_first, .fini = stop);

Test(relay_busy, a_full_worker_is_passed_over_without_tripping_its_breaker)
{
    chat_request q1, q2;
    make_chat(&q1, "Tell me a long story.", 1500);
    collector *c1 = collector_new();
    duet_relay *r1 = relay(&q1, c1, 0);
    wait_tokens(c1, 5); /* the first worker is now full */
    make_chat(&q2, "Tell me a story.", 8);
    for (int i = 0; i < 3; i++) { /* more than the breaker's threshold of 1 */
        collector *c2 = collector_new();
        duet_relay *r2 = relay(&q2, c2, 0);
        wait_end(c2);
        cr_assert_eq(c2->res.status.code, DUET_OK, "%s", c2->res.status.message);
        cr_assert_eq(c2->res.worker, 1, "the full worker is passed over");
        cr_assert_eq(c2->res.attempts, 2);
        done(r2, c2);
    }
    duet_worker_status s;
    duet_worker_pool_status(pool, 0, &s);
    cr_assert_eq(s.breaker, DUET_BREAKER_CLOSED, "busy is not broken: %s",
                 duet_breaker_state_name(s.breaker));
    cr_assert(strstr(s.last_error, "full"), "%s", s.last_error);
    duet_relay_cancel(r1);
    wait_end(c1);
    done(r1, c1);
}
