/* duet-bench gateway: for each client count, that many clients send streamed chat requests
 * back to back for a fixed time and the run reports completed answers, 429s, errors, time
 * to first token (p50/p99), the time between tokens (p50) and aggregate tokens/s. */
#include "gateway_bench.h"

#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_number.h"
#include "gateway_client.h"
#include "stats.h"
#include "timer.h"

#define MAX_SAMPLES 100000

typedef struct {
    const char *url, *key;
    uint32_t clients[16];
    size_t n_counts;
    uint32_t gen, seconds;
    bool json;
} gw_opts;

typedef struct {
    pthread_mutex_t lock;
    uint64_t *ttft, *gaps;
    size_t n_ttft, n_gaps;
    uint64_t completed, limited, failed, tokens;
    char last_error[DUET_STATUS_MESSAGE_MAX];
} gw_totals;

typedef struct {
    const gw_opts *o;
    gw_totals *t;
    uint64_t until_ns;
    uint64_t start_ns, last_ns;
    bool first;
} gw_client;

static void on_text(void *arg, const char *text, size_t len)
{
    (void)text;
    (void)len;
    gw_client *c = arg;
    uint64_t now = duet_now_ns();
    pthread_mutex_lock(&c->t->lock);
    if (c->first && c->t->n_ttft < MAX_SAMPLES) {
        c->t->ttft[c->t->n_ttft++] = now - c->start_ns;
    } else if (!c->first && c->t->n_gaps < MAX_SAMPLES) {
        c->t->gaps[c->t->n_gaps++] = now - c->last_ns;
    }
    pthread_mutex_unlock(&c->t->lock);
    c->first = false;
    c->last_ns = now;
}

static void *client_main(void *arg)
{
    gw_client *c = arg;
    json_t *body =
        json_pack("{s:[{s:s, s:s}], s:i, s:i}", "messages", "role", "user", "content",
                  "Tell me a story.", "max_tokens", (json_int_t)c->o->gen, "temperature", 0);
    duet_gateway_config cfg = {.url = c->o->url, .api_key = c->o->key, .key_source = "--api-key"};
    duet_gateway *gw = NULL;
    duet_status st;
    if (!body || duet_gateway_open(&cfg, &gw, &st) != DUET_OK) {
        pthread_mutex_lock(&c->t->lock);
        c->t->failed++;
        snprintf(c->t->last_error, sizeof c->t->last_error, "%s",
                 body ? st.message : "out of memory");
        pthread_mutex_unlock(&c->t->lock);
        json_decref(body);
        return NULL;
    }
    while (duet_now_ns() < c->until_ns) {
        c->start_ns = duet_now_ns();
        c->first = true;
        duet_gateway_answer ans;
        duet_code rc = duet_gateway_chat_stream(gw, NULL, body, on_text, c, NULL, &ans, &st);
        pthread_mutex_lock(&c->t->lock);
        if (rc == DUET_OK) {
            c->t->completed++;
            c->t->tokens += ans.completion_tokens;
        } else if (rc == DUET_RESOURCE_EXHAUSTED) {
            c->t->limited++;
        } else {
            c->t->failed++;
            snprintf(c->t->last_error, sizeof c->t->last_error, "%s", st.message);
        }
        pthread_mutex_unlock(&c->t->lock);
    }
    duet_gateway_close(gw);
    json_decref(body);
    return NULL;
}

typedef struct {
    uint32_t clients;
    uint64_t completed, limited, failed;
    double tok_s;
    bench_latency ttft, gap;
    char last_error[DUET_STATUS_MESSAGE_MAX];
} gw_round;

static int run_round(const gw_opts *o, uint32_t n, gw_round *out)
{
    gw_totals t = {.ttft = calloc(MAX_SAMPLES, sizeof(uint64_t)),
                   .gaps = calloc(MAX_SAMPLES, sizeof(uint64_t))};
    gw_client *c = calloc(n, sizeof *c);
    pthread_t *th = calloc(n, sizeof *th);
    if (!t.ttft || !t.gaps || !c || !th) {
        free(t.ttft);
        free(t.gaps);
        free(c);
        free(th);
        return 1;
    }
    pthread_mutex_init(&t.lock, NULL);
    uint64_t start = duet_now_ns(), until = start + (uint64_t)o->seconds * 1000000000u;
    for (uint32_t i = 0; i < n; i++) {
        c[i] = (gw_client){.o = o, .t = &t, .until_ns = until};
        pthread_create(&th[i], NULL, client_main, &c[i]);
    }
    for (uint32_t i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
    }
    uint64_t wall = duet_now_ns() - start;
    *out = (gw_round){.clients = n,
                      .completed = t.completed,
                      .limited = t.limited,
                      .failed = t.failed,
                      .tok_s = (double)t.tokens * 1e9 / (double)wall};
    snprintf(out->last_error, sizeof out->last_error, "%s", t.last_error);
    bench_latency_summarize(t.ttft, t.n_ttft, &out->ttft);
    bench_latency_summarize(t.gaps, t.n_gaps, &out->gap);
    pthread_mutex_destroy(&t.lock);
    free(t.ttft);
    free(t.gaps);
    free(c);
    free(th);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: duet-bench gateway --url http://HOST:PORT --api-key KEY [--clients 1,8,32]\n"
               "                          [-n 32] [--seconds 10] [--json]\n"
               "\n"
               "Clients send streamed chat requests back to back for --seconds per client\n"
               "count; prints completed answers, 429s, errors, time to first token,\n"
               "time between tokens and aggregate tokens/s.\n");
}

int bench_gateway_main(int argc, char **argv)
{
    gw_opts o = {.gen = 32, .seconds = 10, .n_counts = 3, .clients = {1, 8, 32}};
    enum { O_URL = 256, O_KEY, O_CLIENTS, O_SECONDS, O_JSON };
    static const struct option longopts[] = {{"url", required_argument, NULL, O_URL},
                                             {"api-key", required_argument, NULL, O_KEY},
                                             {"clients", required_argument, NULL, O_CLIENTS},
                                             {"gen-tokens", required_argument, NULL, 'n'},
                                             {"seconds", required_argument, NULL, O_SECONDS},
                                             {"json", no_argument, NULL, O_JSON},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case O_URL:
            o.url = optarg;
            break;
        case O_KEY:
            o.key = optarg;
            break;
        case O_CLIENTS:
            ok = duet_parse_u32_list(optarg, 1, 1024, o.clients, 16, &o.n_counts);
            break;
        case 'n':
            ok = duet_parse_u32(optarg, 1, 100000, &o.gen);
            break;
        case O_SECONDS:
            ok = duet_parse_u32(optarg, 1, 3600, &o.seconds);
            break;
        case O_JSON:
            o.json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "duet-bench gateway: bad value \"%s\"\n", optarg);
            return 2;
        }
    }
    if (!o.url || !o.key) {
        usage(stderr);
        return 2;
    }
    gw_round r[16];
    for (size_t i = 0; i < o.n_counts; i++) {
        if (run_round(&o, o.clients[i], &r[i]) != 0) {
            fprintf(stderr, "duet-bench gateway: out of memory\n");
            return 1;
        }
    }
    if (o.json) {
        printf("{\"harness\":\"duet-bench gateway\",\"gen_tokens\":%u,\"seconds\":%u,\"rounds\":[",
               o.gen, o.seconds);
        for (size_t i = 0; i < o.n_counts; i++) {
            printf("%s{\"clients\":%u,\"completed\":%llu,\"limited\":%llu,\"failed\":%llu,"
                   "\"tok_s\":%.2f,\"ttft_p50_ms\":%.3f,\"ttft_p99_ms\":%.3f,\"gap_p50_ms\":%.3f}",
                   i ? "," : "", r[i].clients, (unsigned long long)r[i].completed,
                   (unsigned long long)r[i].limited, (unsigned long long)r[i].failed, r[i].tok_s,
                   r[i].ttft.p50_us / 1000, r[i].ttft.p99_us / 1000, r[i].gap.p50_us / 1000);
        }
        printf("]}\n");
    } else {
        printf("| clients | completed | 429 | errors | tokens/s | first token p50 | p99 | "
               "between tokens p50 |\n|---|---|---|---|---|---|---|---|\n");
        for (size_t i = 0; i < o.n_counts; i++) {
            printf("| %u | %llu | %llu | %llu | %.1f | %.1f ms | %.1f ms | %.2f ms |\n",
                   r[i].clients, (unsigned long long)r[i].completed,
                   (unsigned long long)r[i].limited, (unsigned long long)r[i].failed, r[i].tok_s,
                   r[i].ttft.p50_us / 1000, r[i].ttft.p99_us / 1000, r[i].gap.p50_us / 1000);
        }
    }
    for (size_t i = 0; i < o.n_counts; i++) {
        if (r[i].failed) {
            fprintf(stderr, "errors with %u clients, the last: %s\n", r[i].clients,
                    r[i].last_error);
        }
    }
    return 0;
}
