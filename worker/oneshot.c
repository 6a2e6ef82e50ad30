#include "oneshot.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_template.h"
#include "cli_number.h"
#include "engine.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"
#include "vocab_gguf.h"

typedef struct {
    const char *model;
    const char *prompt;
    const char *prompt_ids;
    const char *tokenize;
    const char *template_name;
    int32_t n_predict;
    int threads;
    uint32_t ctx;
    bool chat;
    bool print_tokens;
    uint32_t top_logits;
    duet_sampler_params sampling;
} oneshot_opts;

static void usage(FILE *to)
{
    fprintf(
        to,
        "usage: duet-worker -m MODEL.gguf -p \"text\" [-n 64] [options]\n"
        "       duet-worker -m MODEL.gguf --prompt-ids 1,2,3 [options]\n"
        "       duet-worker -m MODEL.gguf --tokenize \"text\"\n"
        "\n"
        "One-shot mode: runs one prompt through the model and prints the continuation.\n"
        "\n"
        "  -m, --model FILE      the GGUF model\n"
        "  -p, --prompt TEXT     the prompt (BOS is added as the model says)\n"
        "  --prompt-ids LIST     token ids instead of text, comma-separated (no BOS added)\n"
        "  --chat                apply the model's chat template to the prompt as a user\n"
        "                        message (and stop at the end of the answer)\n"
        "  --template NAME       force a template: chatml, llama2, llama3, mistral-v3,\n"
        "                        zephyr, gemma, phi3, plain, ... (default: from the model)\n"
        "  -n, --n-predict N     tokens to generate (default 64; stops earlier at EOS/EOT)\n"
        "  -t, --threads N       compute threads (default: all cores)\n"
        "  -c, --ctx N           context size (default: the model's, at most 4096)\n"
        "  --temp T              temperature, 0 = greedy (default 0.8)\n"
        "  --top-k K             (default 40)   --top-p P (default 0.95)\n"
        "  --min-p P             (default 0.05) --repeat-penalty R (default 1.0)\n"
        "  --repeat-last-n N     (default 64)   --seed S (default: random)\n"
        "  --tokens              print the generated ids (one line) instead of text\n"
        "  --top-logits K        print one JSON object per step with the K highest raw\n"
        "                        logits: "
        "{\"step\":0,\"token\":ID,\"top\":[{\"id\":ID,\"logit\":X},...]}\n"
        "  --tokenize TEXT       print the ids of TEXT (with BOS as the model says) and exit\n");
}

int duet_oneshot_requested(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-p") || !strcmp(argv[i], "--prompt") ||
            !strcmp(argv[i], "--prompt-ids") || !strcmp(argv[i], "--tokenize") ||
            !strncmp(argv[i], "--prompt=", 9)) {
            return 1;
        }
    }
    return 0;
}

static int parse_args(int argc, char **argv, oneshot_opts *o)
{
    enum {
        O_IDS = 256,
        O_TOKENIZE,
        O_CHAT,
        O_TEMPLATE,
        O_TEMP,
        O_TOPK,
        O_TOPP,
        O_MINP,
        O_REP,
        O_REPN,
        O_SEED,
        O_TOKENS,
        O_TOPLOG
    };
    static const struct option longopts[] = {{"model", required_argument, NULL, 'm'},
                                             {"prompt", required_argument, NULL, 'p'},
                                             {"n-predict", required_argument, NULL, 'n'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"ctx", required_argument, NULL, 'c'},
                                             {"prompt-ids", required_argument, NULL, O_IDS},
                                             {"tokenize", required_argument, NULL, O_TOKENIZE},
                                             {"chat", no_argument, NULL, O_CHAT},
                                             {"template", required_argument, NULL, O_TEMPLATE},
                                             {"temp", required_argument, NULL, O_TEMP},
                                             {"top-k", required_argument, NULL, O_TOPK},
                                             {"top-p", required_argument, NULL, O_TOPP},
                                             {"min-p", required_argument, NULL, O_MINP},
                                             {"repeat-penalty", required_argument, NULL, O_REP},
                                             {"repeat-last-n", required_argument, NULL, O_REPN},
                                             {"seed", required_argument, NULL, O_SEED},
                                             {"tokens", no_argument, NULL, O_TOKENS},
                                             {"top-logits", required_argument, NULL, O_TOPLOG},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int opt, index = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:p:n:t:c:h", longopts, &index)) != -1) {
        long v = 0;
        bool ok = true;
        switch (opt) {
        case 'm':
            o->model = optarg;
            break;
        case 'p':
            o->prompt = optarg;
            break;
        case 'n':
            ok = duet_parse_long(optarg, 0, 1 << 20, &v);
            o->n_predict = (int32_t)v;
            break;
        case 't':
            ok = duet_parse_long(optarg, 1, 256, &v);
            o->threads = (int)v;
            break;
        case 'c':
            ok = duet_parse_long(optarg, 8, 1 << 20, &v);
            o->ctx = (uint32_t)v;
            break;
        case O_IDS:
            o->prompt_ids = optarg;
            break;
        case O_TOKENIZE:
            o->tokenize = optarg;
            break;
        case O_CHAT:
            o->chat = true;
            break;
        case O_TEMPLATE:
            o->template_name = optarg;
            break;
        case O_TEMP:
            ok = duet_parse_float(optarg, &o->sampling.temperature) && o->sampling.temperature >= 0;
            break;
        case O_TOPK:
            ok = duet_parse_long(optarg, 0, 1 << 24, &v);
            o->sampling.top_k = (uint32_t)v;
            break;
        case O_TOPP:
            ok = duet_parse_float(optarg, &o->sampling.top_p) && o->sampling.top_p >= 0 &&
                 o->sampling.top_p <= 1;
            break;
        case O_MINP:
            ok = duet_parse_float(optarg, &o->sampling.min_p) && o->sampling.min_p >= 0 &&
                 o->sampling.min_p <= 1;
            break;
        case O_REP:
            ok = duet_parse_float(optarg, &o->sampling.repeat_penalty) &&
                 o->sampling.repeat_penalty > 0;
            break;
        case O_REPN:
            ok = duet_parse_long(optarg, 0, DUET_SAMPLER_MAX_LAST_N, &v);
            o->sampling.repeat_last_n = (uint32_t)v;
            break;
        case O_SEED:
            ok = duet_parse_long(optarg, 0, 0x7fffffff, &v);
            o->sampling.seed = (uint64_t)v;
            o->sampling.has_seed = true;
            break;
        case O_TOKENS:
            o->print_tokens = true;
            break;
        case O_TOPLOG:
            ok = duet_parse_long(optarg, 1, 1000, &v);
            o->top_logits = (uint32_t)v;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "duet-worker: bad value for --%s: %s\n", longopts[index].name, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "duet-worker: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    if (!o->model) {
        fprintf(stderr, "duet-worker: give a model with -m MODEL.gguf\n");
        return 2;
    }
    int sources = !!o->prompt + !!o->prompt_ids + !!o->tokenize;
    if (sources != 1) {
        fprintf(stderr, "duet-worker: give exactly one of -p, --prompt-ids and --tokenize\n");
        return 2;
    }
    if (o->chat && !o->prompt) {
        fprintf(stderr, "duet-worker: --chat needs a text prompt (-p)\n");
        return 2;
    }
    return 0;
}

static duet_code parse_ids(const char *list, uint32_t n_vocab, int32_t **ids, size_t *n,
                           duet_status *st)
{
    size_t cap = 16, k = 0;
    int32_t *out = malloc(cap * sizeof *out);
    const char *p = list;
    while (out && *p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || (unsigned long)v >= n_vocab || (*end && *end != ',')) {
            free(out);
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "--prompt-ids: \"%s\" is not a list of ids below %u", list,
                                   n_vocab);
        }
        if (k == cap) {
            cap *= 2;
            int32_t *grown = realloc(out, cap * sizeof *out);
            if (!grown) {
                break;
            }
            out = grown;
        }
        out[k++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (k == 0) {
        free(out);
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "--prompt-ids: no ids given");
    }
    *ids = out;
    *n = k;
    return DUET_OK;
}

static void print_top_logits(const float *logits, uint32_t n_vocab, uint32_t k, uint32_t step,
                             int32_t token)
{
    uint32_t *idx = malloc(k * sizeof *idx);
    uint32_t m = 0;
    for (uint32_t i = 0; i < n_vocab; i++) {
        if (m < k) {
            idx[m++] = i;
        } else if (logits[i] > logits[idx[m - 1]]) {
            idx[m - 1] = i;
        } else {
            continue;
        }
        for (uint32_t j = m - 1; j > 0 && logits[idx[j]] > logits[idx[j - 1]]; j--) {
            uint32_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    }
    printf("{\"step\":%u,\"token\":%d,\"top\":[", step, token);
    for (uint32_t j = 0; j < m; j++) {
        printf("%s{\"id\":%u,\"logit\":%.6g}", j ? "," : "", idx[j], logits[idx[j]]);
    }
    printf("]}\n");
    free(idx);
}

/* Builds the prompt ids from the options. */
static duet_code prompt_ids(const oneshot_opts *o, const duet_model *m, const duet_tokenizer *tok,
                            int32_t **ids, size_t *n, duet_status *st)
{
    if (o->prompt_ids) {
        return parse_ids(o->prompt_ids, m->hp.n_vocab, ids, n, st);
    }
    if (!o->chat) {
        return duet_tokenize(tok, o->prompt, strlen(o->prompt), true, true, ids, n, st);
    }
    duet_template_kind kind;
    if (o->template_name) {
        if (!duet_template_from_name(o->template_name, &kind)) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT, "unknown chat template \"%s\"",
                                   o->template_name);
        }
    } else {
        duet_gguf_string tmpl;
        char *text = NULL;
        if (duet_gguf_get_string(m->gguf, "tokenizer.chat_template", &tmpl)) {
            text = strndup(tmpl.ptr, tmpl.len);
        }
        kind = duet_template_detect(text);
        free(text);
    }
    duet_chat_message msg = {.role = DUET_ROLE_USER, .content = o->prompt};
    char *rendered;
    duet_code rc = duet_template_render(kind, &msg, 1, true, false, &rendered, st);
    if (rc != DUET_OK) {
        return rc;
    }
    rc = duet_tokenize(tok, rendered, strlen(rendered), true, true, ids, n, st);
    free(rendered);
    return rc;
}

static int run(const oneshot_opts *o)
{
    duet_status st;
    duet_model *m = NULL;
    duet_vocab vocab;
    duet_tokenizer *tok = NULL;
    duet_engine *e = NULL;
    duet_kv_pool *kv_pool = NULL;
    duet_kv_cache *kv = NULL;
    duet_sampler *sampler = NULL;
    duet_detok_stream *detok = NULL;
    int32_t *ids = NULL, *gen = NULL;
    float *logits = NULL;
    size_t n_ids = 0;
    int rc = 1;
    duet_vocab_init(&vocab, DUET_VOCAB_SPM);
    if (duet_model_load(o->model, &m, &st) != DUET_OK ||
        duet_vocab_from_gguf(m->gguf, &vocab, &st) != DUET_OK ||
        duet_tokenizer_create(&vocab, &tok, &st) != DUET_OK) {
        fprintf(stderr, "duet-worker: %s\n", st.message);
        goto out;
    }
    if (o->tokenize) {
        if (duet_tokenize(tok, o->tokenize, strlen(o->tokenize), true, true, &ids, &n_ids, &st) !=
            DUET_OK) {
            fprintf(stderr, "duet-worker: %s\n", st.message);
            goto out;
        }
        for (size_t i = 0; i < n_ids; i++) {
            printf("%s%d", i ? " " : "", ids[i]);
        }
        printf("\n");
        rc = 0;
        goto out;
    }
    if (prompt_ids(o, m, tok, &ids, &n_ids, &st) != DUET_OK) {
        fprintf(stderr, "duet-worker: %s\n", st.message);
        goto out;
    }
    uint32_t ctx = o->ctx ? o->ctx : (m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096);
    if (n_ids >= ctx) {
        fprintf(stderr,
                "duet-worker: the prompt is %zu tokens, the context is %u: shorten the prompt or "
                "raise --ctx\n",
                n_ids, ctx);
        rc = 2;
        goto out;
    }
    uint32_t n_predict = (uint32_t)o->n_predict;
    if (n_ids + n_predict > ctx) {
        n_predict = ctx - (uint32_t)n_ids; /* stop when the context is full */
    }
    uint32_t batch = n_ids < 512 ? (uint32_t)n_ids : 512;
    /* one sequence: a pool just big enough for the whole context, so it never runs short */
    uint32_t kv_pages = (ctx + DUET_KV_PAGE_TOKENS_DEFAULT - 1) / DUET_KV_PAGE_TOKENS_DEFAULT;
    if (duet_engine_new(m, o->threads, batch, ctx, &e, &st) != DUET_OK ||
        duet_kv_pool_new_pages(m, kv_pages, DUET_KV_PAGE_TOKENS_DEFAULT, &kv_pool, &st) !=
            DUET_OK ||
        duet_kv_cache_new_in_pool(kv_pool, ctx, &kv, &st) != DUET_OK ||
        duet_sampler_new(&o->sampling, (int32_t)m->hp.n_vocab, &sampler, &st) != DUET_OK ||
        duet_detok_stream_create(tok, 0, &detok, &st) != DUET_OK) {
        fprintf(stderr, "duet-worker: %s\n", st.message);
        goto out;
    }
    logits = malloc(m->hp.n_vocab * sizeof *logits);
    gen = malloc((n_predict + 1) * sizeof *gen);
    const uint32_t *prompt = (const uint32_t *)ids;
    for (size_t i = 0; i < n_ids; i++) {
        duet_sampler_accept(sampler, ids[i], NULL);
    }
    if (duet_engine_eval(e, kv, prompt, (uint32_t)n_ids, logits, &st) != DUET_OK) {
        fprintf(stderr, "duet-worker: %s\n", st.message);
        goto out;
    }
    uint32_t n_gen = 0;
    for (; n_gen < n_predict; n_gen++) {
        int32_t t = duet_sampler_sample(sampler, logits);
        if (o->top_logits) {
            print_top_logits(logits, m->hp.n_vocab, o->top_logits, n_gen, t);
        }
        if (duet_tokenizer_is_eog(tok, t)) {
            break;
        }
        gen[n_gen] = t;
        duet_sampler_accept(sampler, t, NULL);
        if (!o->print_tokens && !o->top_logits) {
            const char *text;
            size_t len;
            if (duet_detok_stream_push(detok, t, &text, &len, &st) == DUET_OK && len) {
                fwrite(text, 1, len, stdout);
                fflush(stdout);
            }
        }
        if (n_gen + 1 < n_predict) {
            uint32_t u = (uint32_t)t;
            if (duet_engine_eval(e, kv, &u, 1, logits, &st) != DUET_OK) {
                fprintf(stderr, "\nduet-worker: %s\n", st.message);
                goto out;
            }
        }
    }
    if (o->print_tokens) {
        for (uint32_t i = 0; i < n_gen; i++) {
            printf("%s%d", i ? " " : "", gen[i]);
        }
        printf("\n");
    } else if (!o->top_logits) {
        const char *text;
        size_t len;
        duet_detok_stream_flush(detok, &text, &len);
        fwrite(text, 1, len, stdout);
        printf("\n");
    }
    rc = 0;
out:
    free(ids);
    free(gen);
    free(logits);
    duet_detok_stream_free(detok);
    duet_sampler_free(sampler);
    duet_kv_cache_free(kv);
    duet_kv_pool_free(kv_pool);
    duet_engine_free(e);
    duet_tokenizer_free(tok);
    duet_vocab_free(&vocab);
    duet_model_free(m);
    return rc;
}

int duet_oneshot_main(int argc, char **argv)
{
    oneshot_opts o = {.n_predict = 64};
    o.sampling = duet_sampler_params_default();
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o.threads = ncpu > 0 ? (int)ncpu : 1;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        return rc;
    }
    return run(&o);
}
