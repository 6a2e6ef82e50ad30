/* duet-mkmodel: writes a synthetic llama-family GGUF with random weights in a real shape,
 * so duet and llama.cpp can be measured and cross-checked on types and sizes that no small
 * real model has. The vocabulary (tokenizer.* metadata) is copied from another GGUF, or,
 * without one, duet's own small built-in vocabulary (builtin_vocab.h). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtin_vocab.h"
#include "cli_number.h"
#include "gguf.h"
#include "gguf_writer.h"
#include "kernels.h"
#include "tensor_type.h"

typedef struct {
    uint32_t dim, ffn, layers, heads, kv_heads, vocab, ctx;
    uint32_t type, output_type, embd_type;
    const char *arch;
    const char *vocab_from;
    const char *out;
    uint64_t seed;
    int threads;
    bool quiet;
} mk_opts;

static void usage(FILE *to)
{
    fprintf(to,
            "usage: duet-mkmodel --out FILE.gguf [--vocab-from VOCAB.gguf] [options]\n"
            "\n"
            "Writes a llama-family GGUF with random weights (gibberish output by design) in the\n"
            "shape you give, readable by duet and llama.cpp. Example, TinyLlama-1.1B in Q4_0:\n"
            "  duet-mkmodel --dim 2048 --ffn 5632 --layers 22 --heads 32 --kv-heads 4 \\\n"
            "      --type Q4_0 --vocab-from ../shared/models/ggml-vocab-llama-spm.gguf \\\n"
            "      --out /tmp/tl-q4_0.gguf\n"
            "\n"
            "  --out FILE          where to write (required)\n"
            "  --vocab-from FILE   GGUF to copy the tokenizer.* metadata from (a vocab-only\n"
            "                      file is fine); sets the vocabulary size. Without it: a\n"
            "                      small built-in SentencePiece-style vocabulary (bytes,\n"
            "                      ASCII and a few hundred English words)\n"
            "  --arch NAME         llama (default), qwen2 (adds q/k/v biases), qwen3 (q/k norms)\n"
            "  --dim N             embedding size (default 256)\n"
            "  --ffn N             feed-forward size (default 4 x dim rounded to 256)\n"
            "  --layers N          blocks (default 2)\n"
            "  --heads N           attention heads (default dim / 64)\n"
            "  --kv-heads N        key/value heads (default heads)\n"
            "  --ctx N             context length written to the metadata (default 2048)\n"
            "  --type T            type of the 2-D weights: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0\n"
            "                      Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K (default Q4_0)\n"
            "  --embd-type T       type of token_embd (default: --type)\n"
            "  --output-type T     type of output.weight (default: --type)\n"
            "  --seed N            random seed (default 1)\n"
            "  --threads N         threads for generating and quantizing (default: all cores)\n"
            "  --quiet             no progress bar\n");
}

/* ---- random numbers: splitmix64, one stream per tensor so threads agree ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Approximately normal (sum of 4 uniforms), mean 0, standard deviation sd. */
static float rand_normal(uint64_t *s, float sd)
{
    double sum = 0;
    for (int i = 0; i < 4; i++) {
        sum += (double)(splitmix(s) >> 11) / (double)(1ull << 53);
    }
    return (float)((sum - 2.0) * 1.7320508 * sd);
}

static uint64_t name_hash(const char *name, uint64_t seed)
{
    uint64_t h = 1469598103934665603ull ^ seed;
    for (; *name; name++) {
        h = (h ^ (uint8_t)*name) * 1099511628211ull;
    }
    return h;
}

typedef struct {
    uint32_t type;
    int64_t cols, rows;
    float sd;   /* weights ~ N(0, sd) */
    float mean; /* norms: around 1 */
    uint64_t seed;
} tensor_spec;

typedef struct {
    const tensor_spec *spec;
    const char *name;
    uint8_t *dst;
    int nth, ith;
} fill_part;

static void *fill_rows(void *p)
{
    fill_part *part = p;
    const tensor_spec *s = part->spec;
    size_t row_bytes = duet_type_row_bytes((duet_tensor_type)s->type, s->cols);
    float *row = malloc((size_t)s->cols * sizeof *row);
    for (int64_t r = part->ith; r < s->rows; r += part->nth) {
        uint64_t state = name_hash(part->name, s->seed) ^ ((uint64_t)r * 0x9e3779b97f4a7c15ull);
        for (int64_t c = 0; c < s->cols; c++) {
            row[c] = s->mean + rand_normal(&state, s->sd);
        }
        duet_quantize_row((duet_tensor_type)s->type, row, part->dst + (size_t)r * row_bytes,
                          s->cols);
    }
    free(row);
    return NULL;
}

static int g_threads = 1;

static bool fill_tensor(void *arg, const char *name, void *dst, size_t bytes)
{
    (void)bytes;
    tensor_spec *s = arg;
    int nth = g_threads;
    pthread_t tids[64];
    fill_part parts[64];
    for (int i = 0; i < nth; i++) {
        parts[i] = (fill_part){.spec = s, .name = name, .dst = dst, .nth = nth, .ith = i};
        if (i > 0) {
            pthread_create(&tids[i], NULL, fill_rows, &parts[i]);
        }
    }
    fill_rows(&parts[0]);
    for (int i = 1; i < nth; i++) {
        pthread_join(tids[i], NULL);
    }
    return true;
}

static void progress(void *arg, uint64_t done, uint64_t total)
{
    const mk_opts *o = arg;
    if (o->quiet) {
        return;
    }
    int width = 40, filled = total ? (int)(done * width / total) : width;
    if (isatty(STDERR_FILENO)) {
        fprintf(stderr, "\rwriting [%.*s%*s] %5.1f%% %llu/%llu MiB", filled,
                "########################################", width - filled, "",
                total ? 100.0 * (double)done / (double)total : 100.0,
                (unsigned long long)(done >> 20), (unsigned long long)(total >> 20));
        if (done == total) {
            fputc('\n', stderr);
        }
    } else if (done == total) {
        fprintf(stderr, "wrote %llu MiB of tensor data\n", (unsigned long long)(total >> 20));
    }
}

static bool parse_type(const char *s, uint32_t *out)
{
    for (uint32_t t = 0; t < DUET_TYPE_COUNT; t++) {
        const duet_type_traits *tr = duet_type_traits_of(t);
        if (tr && tr->supported && strcasecmp(tr->name, s) == 0) {
            *out = t;
            return true;
        }
    }
    return false;
}

static int check_shape(const mk_opts *o, uint32_t type, const char *what, int64_t cols)
{
    const duet_type_traits *tr = duet_type_traits_of(type);
    if (cols % tr->block_size != 0) {
        fprintf(stderr, "duet-mkmodel: %s rows of %lld values cannot be %s (blocks of %u)\n", what,
                (long long)cols, tr->name, tr->block_size);
        return 1;
    }
    (void)o;
    return 0;
}

static const char *const tokenizer_keys[] = {
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.add_eos_token",
    "tokenizer.ggml.add_space_prefix",
    "tokenizer.chat_template",
};

static uint32_t file_type_of(uint32_t t)
{
    switch (t) {
    case DUET_TYPE_F32:
        return 0;
    case DUET_TYPE_F16:
        return 1;
    case DUET_TYPE_Q4_0:
        return 2;
    case DUET_TYPE_Q4_1:
        return 3;
    case DUET_TYPE_Q8_0:
        return 7;
    case DUET_TYPE_Q5_0:
        return 8;
    case DUET_TYPE_Q5_1:
        return 9;
    case DUET_TYPE_Q2_K:
        return 10;
    case DUET_TYPE_Q3_K:
        return 12;
    case DUET_TYPE_Q4_K:
        return 15;
    case DUET_TYPE_Q5_K:
        return 17;
    case DUET_TYPE_Q6_K:
        return 18;
    case DUET_TYPE_BF16:
        return 32;
    default:
        return 0;
    }
}

int main(int argc, char **argv)
{
    mk_opts o = {.dim = 256,
                 .layers = 2,
                 .ctx = 2048,
                 .type = DUET_TYPE_Q4_0,
                 .arch = "llama",
                 .seed = 1,
                 .embd_type = UINT32_MAX,
                 .output_type = UINT32_MAX};
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o.threads = ncpu > 0 ? (int)ncpu : 1;
    static const struct option longopts[] = {{"out", required_argument, NULL, 'o'},
                                             {"vocab-from", required_argument, NULL, 'V'},
                                             {"arch", required_argument, NULL, 'a'},
                                             {"dim", required_argument, NULL, 'd'},
                                             {"ffn", required_argument, NULL, 'f'},
                                             {"layers", required_argument, NULL, 'l'},
                                             {"heads", required_argument, NULL, 'H'},
                                             {"kv-heads", required_argument, NULL, 'K'},
                                             {"ctx", required_argument, NULL, 'c'},
                                             {"type", required_argument, NULL, 't'},
                                             {"embd-type", required_argument, NULL, 'E'},
                                             {"output-type", required_argument, NULL, 'O'},
                                             {"seed", required_argument, NULL, 's'},
                                             {"threads", required_argument, NULL, 'j'},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int opt, index = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, &index)) != -1) {
        bool ok = true;
        uint32_t v;
        switch (opt) {
        case 'o':
            o.out = optarg;
            break;
        case 'V':
            o.vocab_from = optarg;
            break;
        case 'a':
            o.arch = optarg;
            break;
        case 'd':
            ok = duet_parse_u32(optarg, 1, 1u << 24, &o.dim);
            break;
        case 'f':
            ok = duet_parse_u32(optarg, 1, 1u << 24, &o.ffn);
            break;
        case 'l':
            ok = duet_parse_u32(optarg, 1, 1u << 24, &o.layers);
            break;
        case 'H':
            ok = duet_parse_u32(optarg, 1, 1u << 24, &o.heads);
            break;
        case 'K':
            ok = duet_parse_u32(optarg, 1, 1u << 24, &o.kv_heads);
            break;
        case 'c':
            ok = duet_parse_u32(optarg, 1, 1u << 24, &o.ctx);
            break;
        case 't':
            ok = parse_type(optarg, &o.type);
            break;
        case 'E':
            ok = parse_type(optarg, &o.embd_type);
            break;
        case 'O':
            ok = parse_type(optarg, &o.output_type);
            break;
        case 's':
            ok = duet_parse_u32(optarg, 0, UINT32_MAX, &v);
            o.seed = v;
            break;
        case 'j':
            ok = duet_parse_u32(optarg, 1, 64, &v);
            o.threads = (int)v;
            break;
        case 'q':
            o.quiet = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "duet-mkmodel: bad value for --%s: %s\n", longopts[index].name, optarg);
            return 2;
        }
    }
    if (!o.out || optind < argc) {
        usage(stderr);
        return 2;
    }
    bool qwen2 = strcmp(o.arch, "qwen2") == 0, qwen3 = strcmp(o.arch, "qwen3") == 0;
    if (!qwen2 && !qwen3 && strcmp(o.arch, "llama") != 0) {
        fprintf(stderr, "duet-mkmodel: --arch must be llama, qwen2 or qwen3\n");
        return 2;
    }
    if (!o.heads) {
        o.heads = o.dim / 64 ? o.dim / 64 : 1;
    }
    if (!o.kv_heads) {
        o.kv_heads = o.heads;
    }
    if (!o.ffn) {
        o.ffn = (4 * o.dim + 255) / 256 * 256;
    }
    if (o.dim % o.heads || o.heads % o.kv_heads || (o.dim / o.heads) % 2) {
        fprintf(stderr, "duet-mkmodel: dim must split into heads of even size, and heads into "
                        "kv-heads groups\n");
        return 2;
    }
    if (o.embd_type == UINT32_MAX) {
        o.embd_type = o.type;
    }
    if (o.output_type == UINT32_MAX) {
        o.output_type = o.type;
    }
    g_threads = o.threads;

    duet_gguf *vocab = NULL;
    duet_status st;
    if (o.vocab_from) {
        if (duet_gguf_open(o.vocab_from, &vocab, &st) != DUET_OK) {
            fprintf(stderr, "duet-mkmodel: %s\n", st.message);
            return 1;
        }
        uint64_t n_vocab;
        if (!duet_gguf_get_array(vocab, "tokenizer.ggml.tokens", NULL, &n_vocab) || n_vocab == 0) {
            fprintf(stderr, "duet-mkmodel: %s has no tokenizer.ggml.tokens\n", o.vocab_from);
            duet_gguf_close(vocab);
            return 1;
        }
        o.vocab = (uint32_t)n_vocab;
    }
    uint32_t head_dim = o.dim / o.heads;
    if (check_shape(&o, o.type, "dim", o.dim) || check_shape(&o, o.type, "ffn", o.ffn) ||
        check_shape(&o, o.embd_type, "dim", o.dim) ||
        check_shape(&o, o.output_type, "dim", o.dim) ||
        (qwen3 && check_shape(&o, o.type, "q", (int64_t)o.heads * head_dim))) {
        duet_gguf_close(vocab);
        return 2;
    }

    duet_gguf_writer *w = duet_gguf_writer_new();
    char key[128];
    duet_gguf_writer_string(w, "general.architecture", o.arch);
    char name[160];
    snprintf(name, sizeof name, "duet synthetic %s %ux%u %s", o.arch, o.layers, o.dim,
             duet_type_traits_of(o.type)->name);
    duet_gguf_writer_string(w, "general.name", name);
    duet_gguf_writer_u32(w, "general.file_type", file_type_of(o.type));
    duet_gguf_writer_u32(w, "general.quantization_version", 2);
#define ARCH_KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, o.arch), key)
    duet_gguf_writer_u32(w, ARCH_KEY("context_length"), o.ctx);
    duet_gguf_writer_u32(w, ARCH_KEY("embedding_length"), o.dim);
    duet_gguf_writer_u32(w, ARCH_KEY("block_count"), o.layers);
    duet_gguf_writer_u32(w, ARCH_KEY("feed_forward_length"), o.ffn);
    duet_gguf_writer_u32(w, ARCH_KEY("attention.head_count"), o.heads);
    duet_gguf_writer_u32(w, ARCH_KEY("attention.head_count_kv"), o.kv_heads);
    duet_gguf_writer_u32(w, ARCH_KEY("rope.dimension_count"), head_dim);
    duet_gguf_writer_f32(w, ARCH_KEY("rope.freq_base"), qwen2 || qwen3 ? 1000000.0f : 10000.0f);
    duet_gguf_writer_f32(w, ARCH_KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    if (qwen3) {
        duet_gguf_writer_u32(w, ARCH_KEY("attention.key_length"), head_dim);
        duet_gguf_writer_u32(w, ARCH_KEY("attention.value_length"), head_dim);
    }
#undef ARCH_KEY
    if (vocab) {
        for (size_t i = 0; i < sizeof tokenizer_keys / sizeof tokenizer_keys[0]; i++) {
            duet_gguf_writer_copy(w, vocab, tokenizer_keys[i]);
        }
    } else if ((o.vocab = duet_builtin_vocab_write(w)) == 0) {
        fprintf(stderr, "duet-mkmodel: out of memory\n");
        duet_gguf_writer_free(w);
        return 1;
    }

    /* specs live until the write: one per distinct shape/role */
    size_t n_specs = 4 + (size_t)o.layers * 14, k = 0;
    tensor_spec *specs = calloc(n_specs, sizeof *specs);
    float sd = 0.02f;
    int64_t q_dim = (int64_t)o.heads * head_dim, kv_dim = (int64_t)o.kv_heads * head_dim;
#define ADD(nm, t, c, r, s, mu)                                                                    \
    do {                                                                                           \
        specs[k] = (tensor_spec){                                                                  \
            .type = (t), .cols = (c), .rows = (r), .sd = (s), .mean = (mu), .seed = o.seed};       \
        int64_t ne[2] = {(c), (r)};                                                                \
        duet_gguf_writer_tensor(w, nm, specs[k].type, (r) > 1 ? 2 : 1, ne, fill_tensor,            \
                                &specs[k]);                                                        \
        k++;                                                                                       \
    } while (0)
    ADD("token_embd.weight", o.embd_type, o.dim, o.vocab, 1.0f, 0.0f);
    ADD("output_norm.weight", DUET_TYPE_F32, o.dim, 1, 0.1f, 1.0f);
    ADD("output.weight", o.output_type, o.dim, o.vocab, sd, 0.0f);
    for (uint32_t l = 0; l < o.layers; l++) {
        char nm[64];
#define LNAME(s) (snprintf(nm, sizeof nm, "blk.%u." s, l), nm)
        ADD(LNAME("attn_norm.weight"), DUET_TYPE_F32, o.dim, 1, 0.1f, 1.0f);
        ADD(LNAME("attn_q.weight"), o.type, o.dim, q_dim, sd, 0.0f);
        ADD(LNAME("attn_k.weight"), o.type, o.dim, kv_dim, sd, 0.0f);
        ADD(LNAME("attn_v.weight"), o.type, o.dim, kv_dim, sd, 0.0f);
        ADD(LNAME("attn_output.weight"), o.type, q_dim, o.dim, sd, 0.0f);
        if (qwen2) {
            ADD(LNAME("attn_q.bias"), DUET_TYPE_F32, q_dim, 1, 0.02f, 0.0f);
            ADD(LNAME("attn_k.bias"), DUET_TYPE_F32, kv_dim, 1, 0.02f, 0.0f);
            ADD(LNAME("attn_v.bias"), DUET_TYPE_F32, kv_dim, 1, 0.02f, 0.0f);
        }
        if (qwen3) {
            ADD(LNAME("attn_q_norm.weight"), DUET_TYPE_F32, head_dim, 1, 0.1f, 1.0f);
            ADD(LNAME("attn_k_norm.weight"), DUET_TYPE_F32, head_dim, 1, 0.1f, 1.0f);
        }
        ADD(LNAME("ffn_norm.weight"), DUET_TYPE_F32, o.dim, 1, 0.1f, 1.0f);
        ADD(LNAME("ffn_gate.weight"), o.type, o.dim, o.ffn, sd, 0.0f);
        ADD(LNAME("ffn_up.weight"), o.type, o.dim, o.ffn, sd, 0.0f);
        ADD(LNAME("ffn_down.weight"), o.type, o.ffn, o.dim, sd, 0.0f);
#undef LNAME
    }
#undef ADD
    duet_code rc = duet_gguf_writer_write(w, o.out, progress, &o, &st);
    duet_gguf_writer_free(w);
    free(specs);
    duet_gguf_close(vocab);
    if (rc != DUET_OK) {
        fprintf(stderr, "duet-mkmodel: %s\n", st.message);
        return 1;
    }
    if (!o.quiet) {
        fprintf(stderr, "wrote %s: %s, %u layers, dim %u, ffn %u, heads %u/%u, vocab %u, %s\n",
                o.out, o.arch, o.layers, o.dim, o.ffn, o.heads, o.kv_heads, o.vocab,
                duet_type_traits_of(o.type)->name);
    }
    return 0;
}
