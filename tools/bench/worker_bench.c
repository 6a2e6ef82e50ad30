/* duet-bench worker: for each stream count, that many concurrent greedy Generate calls
 * (distinct synthetic prompts, ignore_eos, N tokens each), reporting aggregate generated
 * tokens/s and time to first token. With --reuse, also the time to first token of a second
 * conversation turn with and without the session's cached prefix. */
#include "worker_bench.h"

#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_number.h"
#include "duet.pb-c.h"
#include "log.h"
#include "node_setup.h"
#include "rpc.h"
#include "stats.h"
#include "timer.h"

#define MAX_STREAMS 256
#define METHOD(name) "duet.v1.Worker/" name

typedef struct {
    const char *url, *server_name, *certs, *name;
    bool insecure, json;
    uint32_t streams[16];
    size_t n_counts;
    uint32_t gen, prompt, reuse;
} worker_bench_opts;

static void usage(FILE *to)
{
    fprintf(to,
            "usage: duet-bench worker --connect URL --server-name NAME --certs DIR --name NAME\n"
            "                         [--streams 1,2,4,8] [-n 64] [-p 32] [--reuse P] [--json]\n"
            "\n"
            "Drives a running duet-worker like a gateway: for each stream count, that many\n"
            "concurrent greedy Generate calls of N tokens each (distinct prompts of P\n"
            "tokens, end-of-sequence ignored), and prints aggregate generated tokens/s and\n"
            "time to first token.\n"
            "\n"
            "  --connect URL        the worker, e.g. tls+tcp://192.168.1.20:7700\n"
            "  --server-name NAME   the name in the worker's certificate\n"
            "  --certs DIR --name NAME  this client's certificate (duet-certs)\n"
            "  --insecure           plain tcp:// (a worker started with --insecure)\n"
            "  --streams LIST       stream counts, comma-separated (default 1,2,4,8)\n"
            "  -n, --gen-tokens N   tokens per stream (default 64)\n"
            "  -p, --prompt-tokens P prompt length (default 32)\n"
            "  --reuse P            also time a second turn after a P-token conversation,\n"
            "                       with and without the session's cached prefix\n"
            "  --json               one JSON object instead of the table\n");
}

/* ---- one stream ---- */

typedef struct {
    pthread_mutex_t *lock;
    pthread_cond_t *cv;
    uint64_t t_start, t_first, t_end;
    uint32_t tokens;
    uint32_t *ids; /* generated ids, when kept */
    uint32_t cap_ids;
    uint32_t cached;
    bool ended;
    duet_status status;
} stream_result;

static void on_message(void *arg, const uint8_t *msg, size_t len)
{
    stream_result *r = arg;
    Duet__V1__GenerateChunk *c = duet__v1__generate_chunk__unpack(NULL, len, msg);
    if (!c) {
        return;
    }
    pthread_mutex_lock(r->lock);
    if (!r->t_first && c->n_ids) {
        r->t_first = duet_now_ns();
    }
    for (size_t i = 0; i < c->n_ids; i++) {
        if (r->ids && r->tokens < r->cap_ids) {
            r->ids[r->tokens] = c->ids[i];
        }
        r->tokens++;
    }
    pthread_mutex_unlock(r->lock);
    duet__v1__generate_chunk__free_unpacked(c, NULL);
}

static void on_end(void *arg, const duet_status *st, const uint8_t *msg, size_t len)
{
    stream_result *r = arg;
    Duet__V1__GenerateEnd *end =
        st->code == DUET_OK ? duet__v1__generate_end__unpack(NULL, len, msg) : NULL;
    pthread_mutex_lock(r->lock);
    r->t_end = duet_now_ns();
    r->status = *st;
    if (end && end->usage) {
        r->cached = end->usage->cached_prompt_tokens;
    }
    r->ended = true;
    pthread_cond_broadcast(r->cv);
    pthread_mutex_unlock(r->lock);
    if (end) {
        duet__v1__generate_end__free_unpacked(end, NULL);
    }
}

static duet_code start_stream(duet_rpc_client *c, const uint32_t *prompt, size_t n, uint32_t gen,
                              const char *session, stream_result *r, duet_rpc_stream **out,
                              duet_status *st)
{
    Duet__V1__TokenIds ids = DUET__V1__TOKEN_IDS__INIT;
    ids.ids = (uint32_t *)prompt;
    ids.n_ids = n;
    Duet__V1__SamplingParams sp = DUET__V1__SAMPLING_PARAMS__INIT;
    sp.temperature_opt_case = DUET__V1__SAMPLING_PARAMS__TEMPERATURE_OPT_TEMPERATURE;
    sp.temperature = 0;
    Duet__V1__GenerateRequest req = DUET__V1__GENERATE_REQUEST__INIT;
    req.prompt_case = DUET__V1__GENERATE_REQUEST__PROMPT_TOKENS;
    req.tokens = &ids;
    req.sampling = &sp;
    req.max_tokens_opt_case = DUET__V1__GENERATE_REQUEST__MAX_TOKENS_OPT_MAX_TOKENS;
    req.max_tokens = gen;
    req.ignore_eos = true;
    req.session_id = (char *)(session ? session : "");
    size_t size = duet__v1__generate_request__get_packed_size(&req);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    duet__v1__generate_request__pack(&req, buf);
    duet_rpc_stream_callbacks cb = {.on_message = on_message, .on_end = on_end, .arg = r};
    r->t_start = duet_now_ns();
    duet_code rc = duet_rpc_call_stream(c, METHOD("Generate"), buf, size, 0, NULL, 0, &cb, out, st);
    free(buf);
    return rc;
}

static void wait_all(stream_result *r, size_t n, pthread_mutex_t *lock, pthread_cond_t *cv)
{
    pthread_mutex_lock(lock);
    for (size_t i = 0; i < n; i++) {
        while (!r[i].ended) {
            pthread_cond_wait(cv, lock);
        }
    }
    pthread_mutex_unlock(lock);
}

/* A synthetic prompt: BOS-like id 1, then pseudo-random ids below vocab. */
static void make_prompt(uint32_t *p, uint32_t n, uint32_t vocab, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    p[0] = 1;
    for (uint32_t i = 1; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = 3 + (uint32_t)(x % (vocab - 3));
    }
}

typedef struct {
    uint32_t streams;
    double tok_s;
    bench_latency ttft;
    uint32_t failed;
    char error[sizeof(((duet_status *)0)->message)];
} round_result;

static int run_round(duet_rpc_client *c, const worker_bench_opts *o, uint32_t vocab,
                     uint32_t streams, uint64_t seed, round_result *out)
{
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    stream_result *r = calloc(streams, sizeof *r);
    duet_rpc_stream **handles = calloc(streams, sizeof *handles);
    uint32_t *prompt = malloc(o->prompt * sizeof *prompt);
    uint64_t *ttft = calloc(streams, sizeof *ttft);
    if (!r || !handles || !prompt || !ttft) {
        free(r);
        free(handles);
        free(prompt);
        free(ttft);
        return 1;
    }
    memset(out, 0, sizeof *out);
    out->streams = streams;
    uint64_t t0 = duet_now_ns();
    for (uint32_t i = 0; i < streams; i++) {
        r[i].lock = &lock;
        r[i].cv = &cv;
        make_prompt(prompt, o->prompt, vocab, seed + i);
        duet_status st;
        if (start_stream(c, prompt, o->prompt, o->gen, NULL, &r[i], &handles[i], &st) != DUET_OK) {
            /* on_end already ran and recorded the error */
            handles[i] = NULL;
        }
    }
    wait_all(r, streams, &lock, &cv);
    uint64_t t_last = t0, total = 0;
    size_t n_ttft = 0;
    for (uint32_t i = 0; i < streams; i++) {
        if (r[i].status.code != DUET_OK) {
            out->failed++;
            snprintf(out->error, sizeof out->error, "%s", r[i].status.message);
        } else if (r[i].t_first) {
            ttft[n_ttft++] = r[i].t_first - r[i].t_start;
        }
        total += r[i].tokens;
        t_last = r[i].t_end > t_last ? r[i].t_end : t_last;
        if (handles[i]) {
            duet_rpc_stream_release(handles[i]);
        }
    }
    out->tok_s = t_last > t0 ? (double)total * 1e9 / (double)(t_last - t0) : 0.0;
    bench_latency_summarize(ttft, n_ttft, &out->ttft);
    free(r);
    free(handles);
    free(prompt);
    free(ttft);
    return 0;
}

/* One stream to the end; its generated ids in ids (cap). */
static int one_stream(duet_rpc_client *c, const uint32_t *prompt, size_t n, uint32_t gen,
                      const char *session, uint32_t *ids, uint32_t cap, stream_result *out)
{
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    memset(out, 0, sizeof *out);
    out->lock = &lock;
    out->cv = &cv;
    out->ids = ids;
    out->cap_ids = cap;
    duet_rpc_stream *h = NULL;
    duet_status st;
    start_stream(c, prompt, n, gen, session, out, &h, &st);
    wait_all(out, 1, &lock, &cv);
    if (h) {
        duet_rpc_stream_release(h);
    }
    out->lock = NULL;
    out->cv = NULL;
    if (out->status.code != DUET_OK) {
        fprintf(stderr, "duet-bench worker: %s\n", out->status.message);
        return 1;
    }
    return 0;
}

typedef struct {
    double ttft_reuse_ms, ttft_cold_ms;
    uint32_t cached, prompt;
} reuse_result;

/* Turn 1 (P tokens, in a session), then turn 2 = turn 1 + its answer + 16 new tokens, once
 * in the same session (prefix reused) and once in a fresh one (computed from scratch). */
static int run_reuse(duet_rpc_client *c, const worker_bench_opts *o, uint32_t vocab,
                     reuse_result *out)
{
    const uint32_t answer = 16, extra = 16;
    uint32_t n2 = o->reuse + answer + extra;
    uint32_t *p = malloc(n2 * sizeof *p);
    if (!p) {
        return 1;
    }
    make_prompt(p, n2, vocab, 777);
    char session[64], fresh[64];
    snprintf(session, sizeof session, "bench-%llu", (unsigned long long)duet_now_ns());
    snprintf(fresh, sizeof fresh, "bench-fresh-%llu", (unsigned long long)duet_now_ns());
    stream_result r;
    int rc = one_stream(c, p, o->reuse, answer, session, p + o->reuse, answer, &r);
    if (rc == 0) {
        rc = one_stream(c, p, n2, 4, session, NULL, 0, &r);
        out->ttft_reuse_ms = (double)(r.t_first - r.t_start) / 1e6;
        out->cached = r.cached;
    }
    if (rc == 0) {
        rc = one_stream(c, p, n2, 4, fresh, NULL, 0, &r);
        out->ttft_cold_ms = (double)(r.t_first - r.t_start) / 1e6;
    }
    out->prompt = n2;
    free(p);
    return rc;
}

static uint32_t vocab_size(duet_rpc_client *c, duet_status *st)
{
    Duet__V1__InfoRequest req = DUET__V1__INFO_REQUEST__INIT;
    uint8_t buf[16], *resp = NULL;
    size_t n = duet__v1__info_request__pack(&req, buf), len = 0;
    if (duet_rpc_call_unary(c, METHOD("Info"), buf, n, 10000, &resp, &len, st) != DUET_OK) {
        return 0;
    }
    Duet__V1__InfoResponse *info = duet__v1__info_response__unpack(NULL, len, resp);
    free(resp);
    uint32_t v = info ? info->vocab_size : 0;
    if (info) {
        duet__v1__info_response__free_unpacked(info, NULL);
    }
    return v;
}

int bench_worker_main(int argc, char **argv)
{
    worker_bench_opts o = {.gen = 64, .prompt = 32, .streams = {1, 2, 4, 8}, .n_counts = 4};
    enum { O_CONNECT = 256, O_SERVER, O_CERTS, O_NAME, O_INSECURE, O_STREAMS, O_REUSE, O_JSON };
    static const struct option longopts[] = {{"connect", required_argument, NULL, O_CONNECT},
                                             {"server-name", required_argument, NULL, O_SERVER},
                                             {"certs", required_argument, NULL, O_CERTS},
                                             {"name", required_argument, NULL, O_NAME},
                                             {"insecure", no_argument, NULL, O_INSECURE},
                                             {"streams", required_argument, NULL, O_STREAMS},
                                             {"gen-tokens", required_argument, NULL, 'n'},
                                             {"prompt-tokens", required_argument, NULL, 'p'},
                                             {"reuse", required_argument, NULL, O_REUSE},
                                             {"json", no_argument, NULL, O_JSON},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "n:p:h", longopts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case O_CONNECT:
            o.url = optarg;
            break;
        case O_SERVER:
            o.server_name = optarg;
            break;
        case O_CERTS:
            o.certs = optarg;
            break;
        case O_NAME:
            o.name = optarg;
            break;
        case O_INSECURE:
            o.insecure = true;
            break;
        case O_STREAMS:
            ok = duet_parse_u32_list(optarg, 1, MAX_STREAMS, o.streams, 16, &o.n_counts);
            break;
        case 'n':
            ok = duet_parse_u32(optarg, 1, 100000, &o.gen);
            break;
        case 'p':
            ok = duet_parse_u32(optarg, 1, 1000000, &o.prompt);
            break;
        case O_REUSE:
            ok = duet_parse_u32(optarg, 1, 1000000, &o.reuse);
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
            fprintf(stderr, "duet-bench worker: bad value \"%s\"\n", optarg);
            return 2;
        }
    }
    if (!o.url || (!o.insecure && !o.server_name)) {
        fprintf(stderr, "duet-bench worker: --connect and --server-name are needed\n");
        usage(stderr);
        return 2;
    }
    duet_tls_settings tls_cfg = {0};
    duet_tls_paths paths;
    duet_tls_options tls;
    duet_status st;
    if (duet_tls_setup(&tls_cfg, o.certs, o.name, o.insecure, &paths, &tls, &st) != DUET_OK) {
        fprintf(stderr, "duet-bench worker: %s\n", st.message);
        free(tls_cfg.certs_dir);
        free(tls_cfg.name);
        return 2;
    }
    tls.server_name = o.server_name;
    duet_rpc_limits limits;
    duet_rpc_limits_default(&limits);
    duet_rpc_client *c = NULL;
    int rc = 0;
    uint32_t vocab = 0;
    if (duet_rpc_client_new(o.url, &tls, &limits, &c, &st) != DUET_OK ||
        duet_rpc_client_wait_ready(c, 10000, &st) != DUET_OK || (vocab = vocab_size(c, &st)) < 4) {
        fprintf(stderr, "duet-bench worker: %s\n", st.message);
        rc = 1;
    }
    round_result rounds[16];
    for (size_t i = 0; rc == 0 && i < o.n_counts; i++) {
        rc = run_round(c, &o, vocab, o.streams[i], 1000 * (i + 1), &rounds[i]);
        if (rc == 0 && rounds[i].failed) {
            fprintf(stderr, "duet-bench worker: %u of %u streams failed: %s\n", rounds[i].failed,
                    rounds[i].streams, rounds[i].error);
            rc = 1;
        }
    }
    reuse_result reuse = {0};
    if (rc == 0 && o.reuse) {
        rc = run_reuse(c, &o, vocab, &reuse);
    }
    if (rc == 0 && o.json) {
        printf("{\"harness\":\"duet-bench worker\",\"url\":\"%s\",\"prompt_tokens\":%u,"
               "\"gen_tokens\":%u,\"rounds\":[",
               o.url, o.prompt, o.gen);
        for (size_t i = 0; i < o.n_counts; i++) {
            printf("%s{\"streams\":%u,\"tok_s\":%.3f,\"ttft_p50_ms\":%.3f,\"ttft_max_ms\":%.3f}",
                   i ? "," : "", rounds[i].streams, rounds[i].tok_s, rounds[i].ttft.p50_us / 1000,
                   rounds[i].ttft.max_us / 1000);
        }
        printf("]");
        if (o.reuse) {
            printf(",\"reuse\":{\"prompt_tokens\":%u,\"cached_tokens\":%u,\"ttft_reuse_ms\":%.3f,"
                   "\"ttft_cold_ms\":%.3f}",
                   reuse.prompt, reuse.cached, reuse.ttft_reuse_ms, reuse.ttft_cold_ms);
        }
        printf("}\n");
    } else if (rc == 0) {
        printf("worker %s: prompts of %u tokens, %u generated per stream\n\n", o.url, o.prompt,
               o.gen);
        printf("| streams | aggregate tokens/s | first token p50 | first token max |\n");
        printf("|---|---|---|---|\n");
        for (size_t i = 0; i < o.n_counts; i++) {
            printf("| %u | %.1f | %.1f ms | %.1f ms |\n", rounds[i].streams, rounds[i].tok_s,
                   rounds[i].ttft.p50_us / 1000, rounds[i].ttft.max_us / 1000);
        }
        if (o.reuse) {
            printf("\nturn 2 of a conversation (%u prompt tokens): first token after %.1f ms with "
                   "the session's cache (%u tokens reused), %.1f ms without\n",
                   reuse.prompt, reuse.ttft_reuse_ms, reuse.cached, reuse.ttft_cold_ms);
        }
    }
    duet_rpc_client_free(c);
    free(tls_cfg.certs_dir);
    free(tls_cfg.name);
    free(tls_cfg.ca_file);
    free(tls_cfg.cert_file);
    free(tls_cfg.key_file);
    return rc;
}
