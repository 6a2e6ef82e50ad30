#include "engine_bench.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli_number.h"
#include "engine.h"
#include "kernels.h"
#include "model.h"
#include "timer.h"

typedef struct {
    const char *model;
    int threads;
    uint32_t prompt;
    uint32_t gen;
    uint32_t check_steps;
    uint32_t topk;
    uint32_t seed;
    bool json;
} engine_opts;

static void usage(FILE *to)
{
    fprintf(to,
            "usage: duet-bench engine -m MODEL.gguf [-t THREADS] [-p 128] [-n 64] [--json]\n"
            "\n"
            "Loads the model, runs a prompt of P synthetic tokens in one batch (prefill), then\n"
            "N greedy single-token steps (decode), and prints load time and tokens/s. The\n"
            "prompt (BOS, then a fixed pseudo-random sequence) is the one llamacpp-bench.sh\n"
            "feeds llama.cpp, so greedy ids and top logits can be compared one to one.\n"
            "\n"
            "  -m, --model FILE      the GGUF to run\n"
            "  -t, --threads N       compute threads (default 2)\n"
            "  -p, --prompt-tokens P prompt length (default 128)\n"
            "  -n, --gen-tokens N    decode steps (default 64)\n"
            "  --check-steps K       print the top logits of the first K steps (default 8)\n"
            "  --topk K              how many logits per step (default 5)\n"
            "  --seed S              prompt seed (default 1)\n"
            "  --json                one JSON object with every number and id\n");
}

static double now_s(void)
{
    return (double)duet_now_ns() / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* BOS, then an LCG walk over ids from 259 up (past SPM's byte tokens), as llbench.c does. */
static void synthetic_prompt(uint32_t *ids, uint32_t n, uint32_t vocab, int64_t bos, uint32_t seed)
{
    uint32_t k = 0;
    if (bos >= 0 && n > 0) {
        ids[k++] = (uint32_t)bos;
    }
    uint32_t x = seed ? seed : 1;
    uint32_t lo = vocab - 1 < 259 ? vocab - 1 : 259;
    while (k < n) {
        x = x * 1103515245u + 12345u;
        ids[k++] = lo + (x >> 8) % (vocab - lo);
    }
}

static uint32_t argmax(const float *l, uint32_t n)
{
    uint32_t b = 0;
    for (uint32_t i = 1; i < n; i++) {
        if (l[i] > l[b]) {
            b = i;
        }
    }
    return b;
}

static void topk_json(FILE *f, const float *l, uint32_t n, uint32_t k, uint32_t step, uint32_t tok)
{
    uint32_t idx[64];
    k = k > 64 ? 64 : k;
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (m < k) {
            idx[m++] = i;
        } else if (l[i] > l[idx[m - 1]]) {
            idx[m - 1] = i;
        } else {
            continue;
        }
        for (uint32_t j = m - 1; j > 0 && l[idx[j]] > l[idx[j - 1]]; j--) {
            uint32_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    }
    fprintf(f, "%s{\"step\":%u,\"token\":%u,\"top\":[", step ? "," : "", step, tok);
    for (uint32_t j = 0; j < m; j++) {
        fprintf(f, "%s{\"id\":%u,\"logit\":%.5f}", j ? "," : "", idx[j], l[idx[j]]);
    }
    fprintf(f, "]}");
}

int bench_engine_main(int argc, char **argv)
{
    engine_opts o = {
        .threads = 2, .prompt = 128, .gen = 64, .check_steps = 8, .topk = 5, .seed = 1};
    static const struct option longopts[] = {{"model", required_argument, NULL, 'm'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"prompt-tokens", required_argument, NULL, 'p'},
                                             {"gen-tokens", required_argument, NULL, 'n'},
                                             {"check-steps", required_argument, NULL, 'k'},
                                             {"topk", required_argument, NULL, 'K'},
                                             {"seed", required_argument, NULL, 's'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int opt, index = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:t:p:n:h", longopts, &index)) != -1) {
        uint32_t v = 0;
        bool ok = true;
        switch (opt) {
        case 'm':
            o.model = optarg;
            break;
        case 't':
            ok = duet_parse_u32(optarg, 1, 256, &v);
            o.threads = (int)v;
            break;
        case 'p':
            ok = duet_parse_u32(optarg, 1, 1000000, &o.prompt);
            break;
        case 'n':
            ok = duet_parse_u32(optarg, 0, 1000000, &o.gen);
            break;
        case 'k':
            ok = duet_parse_u32(optarg, 0, 1000000, &o.check_steps);
            break;
        case 'K':
            ok = duet_parse_u32(optarg, 1, 64, &o.topk);
            break;
        case 's':
            ok = duet_parse_u32(optarg, 0, UINT32_MAX, &o.seed);
            break;
        case 'j':
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
            fprintf(stderr, "duet-bench engine: bad value: %s\n", optarg);
            return 2;
        }
    }
    if (!o.model) {
        usage(stderr);
        return 2;
    }
    duet_status st;
    double t0 = now_s();
    duet_model *m;
    if (duet_model_load(o.model, &m, &st) != DUET_OK) {
        fprintf(stderr, "duet-bench engine: %s\n", st.message);
        return 1;
    }
    /* touch every weight once, so load time includes reading the file (as llama.cpp's does) */
    volatile uint8_t sink = 0;
    const uint8_t *base = duet_gguf_mapping(m->gguf);
    for (uint64_t off = 0; off < duet_gguf_file_size(m->gguf); off += 4096) {
        sink ^= base[off];
    }
    (void)sink;
    double t_load = now_s() - t0;
    uint32_t n_ctx = o.prompt + o.gen + 1;
    duet_engine *e = NULL;
    duet_kv_pool *kv_pool = NULL;
    duet_kv_cache *kv = NULL;
    /* one sequence: a pool of exactly the pages its context needs */
    uint32_t kv_pages = (n_ctx + DUET_KV_PAGE_TOKENS_DEFAULT - 1) / DUET_KV_PAGE_TOKENS_DEFAULT;
    if (duet_engine_new(m, o.threads, o.prompt, n_ctx, &e, &st) != DUET_OK ||
        duet_kv_pool_new_pages(m, kv_pages, DUET_KV_PAGE_TOKENS_DEFAULT, &kv_pool, &st) !=
            DUET_OK ||
        duet_kv_cache_new_in_pool(kv_pool, n_ctx, &kv, &st) != DUET_OK) {
        fprintf(stderr, "duet-bench engine: %s\n", st.message);
        duet_kv_pool_free(kv_pool);
        duet_engine_free(e);
        duet_model_free(m);
        return 1;
    }
    uint32_t n_vocab = m->hp.n_vocab;
    int64_t bos = -1;
    uint32_t bos_id;
    if (duet_gguf_get_u32(m->gguf, "tokenizer.ggml.bos_token_id", &bos_id) && bos_id < n_vocab) {
        bos = bos_id;
    }
    uint32_t *prompt = malloc(o.prompt * sizeof *prompt);
    uint32_t *gen = malloc((o.gen + 1) * sizeof *gen);
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    synthetic_prompt(prompt, o.prompt, n_vocab, bos, o.seed);

    /* warm-up as llbench does: 16 prompt tokens and two steps, then start over */
    uint32_t wn = o.prompt < 16 ? o.prompt : 16;
    duet_code rc = duet_engine_eval(e, kv, prompt, wn, logits, &st);
    for (int s = 0; s < 2 && rc == DUET_OK; s++) {
        uint32_t t = argmax(logits, n_vocab);
        rc = duet_engine_eval(e, kv, &t, 1, logits, &st);
    }
    duet_kv_cache_truncate(kv, 0);

    char *topbuf = NULL;
    size_t topsz = 0;
    FILE *topf = open_memstream(&topbuf, &topsz);
    double c0 = cpu_s(), tp0 = now_s();
    if (rc == DUET_OK) {
        rc = duet_engine_eval(e, kv, prompt, o.prompt, logits, &st);
    }
    double t_prefill = now_s() - tp0, cpu_prefill = cpu_s() - c0;
    gen[0] = argmax(logits, n_vocab);
    if (o.check_steps > 0) {
        topk_json(topf, logits, n_vocab, o.topk, 0, gen[0]);
    }
    double t_dec = 0, cpu_dec = 0;
    bool finite = true;
    for (uint32_t s = 0; s < o.gen && rc == DUET_OK; s++) {
        double ca = cpu_s(), ta = now_s();
        rc = duet_engine_eval(e, kv, &gen[s], 1, logits, &st);
        gen[s + 1] = argmax(logits, n_vocab);
        t_dec += now_s() - ta;
        cpu_dec += cpu_s() - ca;
        finite = finite && isfinite(logits[gen[s + 1]]);
        if (s + 1 < o.check_steps) {
            topk_json(topf, logits, n_vocab, o.topk, s + 1, gen[s + 1]);
        }
    }
    fclose(topf);
    if (rc != DUET_OK) {
        fprintf(stderr, "duet-bench engine: %s\n", st.message);
    } else if (o.json) {
        printf(
            "{\"harness\":\"duet-bench engine\",\"model\":\"%s\",\"arch\":\"%s\",\"quant\":\"%s\","
            "\"threads\":%d,\"avx2\":%s,\"kernels\":\"%s\",\"vocab\":%u,"
            "\"prompt_tokens\":%u,\"gen_tokens\":%u,"
            "\"load_s\":%.4f,\"prefill\":{\"wall_s\":%.5f,\"tok_s\":%.3f,\"cpu_s\":%.3f},"
            "\"decode\":{\"wall_s\":%.5f,\"tok_s\":%.3f,\"cpu_s\":%.3f},\"finite\":%s,"
            "\"prompt_ids\":[",
            o.model, m->hp.arch_name, m->hp.quant_name, o.threads,
            duet_kernels_use_avx2() ? "true" : "false", duet_kernels_name(), n_vocab, o.prompt,
            o.gen, t_load, t_prefill, o.prompt / t_prefill, cpu_prefill, t_dec,
            o.gen ? o.gen / t_dec : 0.0, cpu_dec, finite ? "true" : "false");
        for (uint32_t i = 0; i < o.prompt; i++) {
            printf("%s%u", i ? "," : "", prompt[i]);
        }
        printf("],\"generated_ids\":[");
        for (uint32_t i = 0; i <= o.gen; i++) {
            printf("%s%u", i ? "," : "", gen[i]);
        }
        printf("],\"topk\":[%s]}\n", topbuf ? topbuf : "");
    } else {
        printf("model    %s (%s, %s, %u layers, dim %u, vocab %u)\n", o.model, m->hp.arch_name,
               m->hp.quant_name, m->hp.n_layer, m->hp.n_embd, n_vocab);
        printf("threads  %d (%s kernels)\n", o.threads, duet_kernels_name());
        printf("load     %.3f s\n", t_load);
        printf("prefill  %u tokens in %.3f s: %.2f tokens/s\n", o.prompt, t_prefill,
               o.prompt / t_prefill);
        if (o.gen) {
            printf("decode   %u tokens in %.3f s: %.2f tokens/s\n", o.gen, t_dec, o.gen / t_dec);
        }
    }
    free(topbuf);
    free(prompt);
    free(gen);
    free(logits);
    duet_kv_cache_free(kv);
    duet_kv_pool_free(kv_pool);
    duet_engine_free(e);
    duet_model_free(m);
    return rc == DUET_OK ? 0 : 1;
}
