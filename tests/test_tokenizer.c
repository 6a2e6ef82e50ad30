/* Tokenizers: llama.cpp's own test vectors for every vocabulary in $DUET_TEST_MODELS that
 * duet supports (exact ids, and the text back), streaming detokenization over characters
 * split between tokens, special tokens, BOS/EOS, refused vocabularies (bert, unknown
 * pre-tokenizers, inconsistent arrays), invalid UTF-8, the pre-tokenizer regexes, the
 * merge orders on hand-made vocabularies, and speed on a 128k vocabulary. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "pretokenize.h"
#include "support.h"
#include "tokenizer.h"
#include "utf8.h"
#include "vocab.h"
#include "vocab_gguf.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
/* LeakSanitizer only prints at exit; asking here makes a leak fail the test that made it. */
static void assert_no_leaks(void)
{
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks (see above)");
}
#else
static void assert_no_leaks(void) {}
#endif

static duet_status st;

/* ---- models ------------------------------------------------------------------------------ */

/* The shared models folder; the test is skipped (loudly) only when it is absent. */
static const char *models_dir(void)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    struct stat sb;
    if (!dir || !*dir || stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        cr_skip_test("TEST MODELS MISSING: DUET_TEST_MODELS (%s) is not a folder; tokenizer "
                     "vectors not checked",
                     dir ? dir : "unset");
    }
    return dir;
}

static void model_path(char *out, size_t cap, const char *file)
{
    snprintf(out, cap, "%s/%s", models_dir(), file);
}

static void load_vocab(const char *file, duet_vocab *v)
{
    char path[1024];
    model_path(path, sizeof path, file);
    duet_gguf *g = NULL;
    cr_assert_eq(duet_gguf_open(path, &g, &st), DUET_OK, "%s: %s", path, st.message);
    cr_assert_eq(duet_vocab_from_gguf(g, v, &st), DUET_OK, "%s: %s", file, st.message);
    duet_gguf_close(g);
}

static duet_tokenizer *make_tokenizer(const duet_vocab *v)
{
    duet_tokenizer *t = NULL;
    cr_assert_eq(duet_tokenizer_create(v, &t, &st), DUET_OK, "%s", st.message);
    return t;
}

static duet_tokenizer *load(const char *file)
{
    duet_vocab v;
    load_vocab(file, &v);
    duet_tokenizer *t = make_tokenizer(&v);
    duet_vocab_free(&v);
    return t;
}

/* ---- small helpers ----------------------------------------------------------------------- */

typedef struct {
    int32_t *v;
    size_t n;
} ids_t;

static ids_t tok(const duet_tokenizer *t, const char *text, size_t len, bool add_special,
                 bool parse_special)
{
    ids_t r;
    cr_assert_eq(duet_tokenize(t, text, len, add_special, parse_special, &r.v, &r.n, &st), DUET_OK,
                 "%s", st.message);
    return r;
}

static ids_t toks(const duet_tokenizer *t, const char *text, bool add_special, bool parse_special)
{
    return tok(t, text, strlen(text), add_special, parse_special);
}

/* Detokenizes into a malloc'd string; *len its length. */
static char *detok(const duet_tokenizer *t, ids_t ids, unsigned flags, size_t *len)
{
    char *s;
    size_t n;
    cr_assert_eq(duet_detokenize(t, ids.v, ids.n, flags, &s, &n, &st), DUET_OK, "%s", st.message);
    if (len) {
        *len = n;
    }
    return s;
}

static bool ids_contain(ids_t ids, int32_t id)
{
    for (size_t i = 0; i < ids.n; i++) {
        if (ids.v[i] == id) {
            return true;
        }
    }
    return false;
}

static bool ids_eq(ids_t a, const int32_t *b, size_t n)
{
    return a.n == n && (n == 0 || memcmp(a.v, b, n * sizeof *b) == 0);
}

static bool valid_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = duet_utf8_decode(s + i, n - i, &cp);
        if (!k) {
            return false;
        }
        i += k;
    }
    return true;
}

static void print_ids(FILE *f, const char *label, const int32_t *v, size_t n)
{
    fprintf(f, "    %s:", label);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, " %d", v[i]);
    }
    fprintf(f, "\n");
}

static char *stream_all(const duet_tokenizer *t, ids_t ids, unsigned flags, size_t *n_chunks);

/* ---- llama.cpp's vectors ----------------------------------------------------------------- */

typedef struct {
    char *text;
    size_t len;
    int32_t *ids;
    size_t n_ids;
} vcase;

/* Reads <file>.inp (cases separated by "\n__ggml_vocab_test__\n") and <file>.out (one line
 * of ids per case), as llama.cpp's test-tokenizer-0 does. */
static vcase *read_vectors(const char *file, size_t *n_cases)
{
    char path[1024];
    size_t inp_len, out_len;
    model_path(path, sizeof path, file);
    strcat(path, ".inp");
    char *inp = test_read_file(path, &inp_len);
    cr_assert_not_null(inp, "cannot read %s", path);
    model_path(path, sizeof path, file);
    strcat(path, ".out");
    char *out = test_read_file(path, &out_len);
    cr_assert_not_null(out, "cannot read %s", path);

    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t cap = 64, n = 0;
    vcase *c = calloc(cap, sizeof *c);
    for (size_t pos = 0; pos < inp_len;) {
        char *next = memmem(inp + pos, inp_len - pos, sep, sizeof sep - 1);
        size_t end = next ? (size_t)(next - inp) : inp_len;
        if (n == cap) {
            cap *= 2;
            c = realloc(c, cap * sizeof *c);
        }
        c[n].len = end - pos;
        c[n].text = malloc(c[n].len + 1);
        memcpy(c[n].text, inp + pos, c[n].len);
        c[n].text[c[n].len] = '\0';
        c[n].ids = NULL;
        c[n].n_ids = 0;
        n++;
        pos = next ? end + sizeof sep - 1 : inp_len;
    }
    size_t line = 0;
    for (char *p = out; *p && line < n; line++) {
        char *eol = strchr(p, '\n');
        if (eol) {
            *eol = '\0';
        }
        size_t cap_ids = 16;
        c[line].ids = malloc(cap_ids * sizeof *c[line].ids);
        for (char *q = p;;) {
            char *e;
            long v = strtol(q, &e, 10);
            if (e == q) {
                break;
            }
            if (c[line].n_ids == cap_ids) {
                cap_ids *= 2;
                c[line].ids = realloc(c[line].ids, cap_ids * sizeof *c[line].ids);
            }
            c[line].ids[c[line].n_ids++] = (int32_t)v;
            q = e;
        }
        p = eol ? eol + 1 : p + strlen(p);
    }
    cr_assert_eq(line, n, "%s: %zu inputs but %zu output lines", file, n, line);
    free(inp);
    free(out);
    *n_cases = n;
    return c;
}

static void free_vectors(vcase *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(c[i].text);
        free(c[i].ids);
    }
    free(c);
}

/* Every case must tokenize to exactly the expected ids (add_special = false, parse_special
 * = false, as llama.cpp's test runs them) and detokenize back to the input. The round trip
 * holds for SPM too: the space SPM puts in front of the text is the one detokenize strips
 * from the first token. BPE clean-up of " ," etc. is off by default, so text comes back
 * byte for byte; the clean-up has its own test. */
static void check_vectors(const char *file)
{
    duet_tokenizer *t = load(file);
    size_t n;
    vcase *c = read_vectors(file, &n);
    size_t ok_ids = 0, ok_text = 0;
    for (size_t i = 0; i < n; i++) {
        ids_t r = tok(t, c[i].text, c[i].len, false, false);
        if (ids_eq(r, c[i].ids, c[i].n_ids)) {
            ok_ids++;
        } else {
            fprintf(stderr, "%s case %zu '%s':\n", file, i, c[i].text);
            print_ids(stderr, "expected", c[i].ids, c[i].n_ids);
            print_ids(stderr, "got     ", r.v, r.n);
        }
        size_t len;
        char *back = detok(t, r, 0, &len);
        if (len == c[i].len && memcmp(back, c[i].text, len) == 0) {
            ok_text++;
        } else {
            fprintf(stderr, "%s case %zu: '%s' detokenized to '%s'\n", file, i, c[i].text, back);
        }
        free(back);
        free(r.v);
    }
    fprintf(stderr, "[tokenizer] %s: %zu/%zu cases give the expected ids, %zu/%zu round-trip\n",
            file, ok_ids, n, ok_text, n);
    cr_assert_gt(n, 0);
    cr_expect_eq(ok_ids, n, "%s: %zu of %zu cases give other ids (see above)", file, n - ok_ids, n);
    cr_expect_eq(ok_text, n, "%s: %zu of %zu cases do not round-trip (see above)", file,
                 n - ok_text, n);
    free_vectors(c, n);
    duet_tokenizer_free(t);
    assert_no_leaks();
}

/* The vocabularies with vectors that duet supports, and their tokenizer kinds. */
static const char *const SUPPORTED[] = {
    "ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf",        "ggml-vocab-gpt-2.gguf",
    "ggml-vocab-falcon.gguf",    "ggml-vocab-deepseek-llm.gguf", "ggml-vocab-deepseek-coder.gguf",
    "ggml-vocab-starcoder.gguf", "ggml-vocab-refact.gguf",       "ggml-vocab-mpt.gguf",
};

Test(vectors, llama_spm)
{
    check_vectors("ggml-vocab-llama-spm.gguf");
}
Test(vectors, phi_3)
{
    check_vectors("ggml-vocab-phi-3.gguf");
}
Test(vectors, gpt_2)
{
    check_vectors("ggml-vocab-gpt-2.gguf");
}
Test(vectors, falcon)
{
    check_vectors("ggml-vocab-falcon.gguf");
}
Test(vectors, deepseek_llm)
{
    check_vectors("ggml-vocab-deepseek-llm.gguf");
}
Test(vectors, deepseek_coder)
{
    check_vectors("ggml-vocab-deepseek-coder.gguf");
}
Test(vectors, starcoder)
{
    check_vectors("ggml-vocab-starcoder.gguf");
}
Test(vectors, refact)
{
    check_vectors("ggml-vocab-refact.gguf");
}
Test(vectors, mpt)
{
    check_vectors("ggml-vocab-mpt.gguf");
}

static bool exists(const char *dir, const char *name, const char *suffix)
{
    char path[1024];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s%s", dir, name, suffix);
    return stat(path, &sb) == 0;
}

/* Every vocabulary GGUF that comes with vectors is either checked above or refused clearly
 * (bert-bge is WordPiece, which duet does not implement). */
Test(vectors, every_vector_file_is_covered)
{
    const char *dir = models_dir();
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    size_t covered = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "ggml-vocab-", 11) != 0 || len < 5 ||
            strcmp(e->d_name + len - 5, ".gguf") != 0 || !exists(dir, e->d_name, ".inp") ||
            !exists(dir, e->d_name, ".out")) {
            continue;
        }
        bool known = false;
        for (size_t i = 0; i < sizeof SUPPORTED / sizeof SUPPORTED[0]; i++) {
            known |= strcmp(SUPPORTED[i], e->d_name) == 0;
        }
        if (known) {
            covered++;
            continue;
        }
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        duet_gguf *g = NULL;
        cr_assert_eq(duet_gguf_open(path, &g, &st), DUET_OK, "%s", st.message);
        duet_vocab v;
        duet_code c = duet_vocab_from_gguf(g, &v, &st);
        duet_gguf_close(g);
        cr_assert_neq(c, DUET_OK, "%s has vectors but no test checks them", e->d_name);
        cr_expect(strstr(st.message, "not supported"), "%s: %s", e->d_name, st.message);
        fprintf(stderr, "[tokenizer] %s refused: %s\n", e->d_name, st.message);
    }
    closedir(d);
    cr_expect_eq(covered, sizeof SUPPORTED / sizeof SUPPORTED[0]);
}

Test(vocab, bert_is_refused_by_name)
{
    char path[1024];
    model_path(path, sizeof path, "ggml-vocab-bert-bge.gguf");
    duet_gguf *g = NULL;
    cr_assert_eq(duet_gguf_open(path, &g, &st), DUET_OK, "%s", st.message);
    duet_vocab v;
    cr_assert_eq(duet_vocab_from_gguf(g, &v, &st), DUET_UNIMPLEMENTED, "%s", st.message);
    cr_expect(strstr(st.message, "'bert'"), "%s", st.message);
    cr_expect(strstr(st.message, "not supported"), "%s", st.message);
    duet_gguf_close(g);
    assert_no_leaks();
}

/* stories260K's documented greedy sample (SOURCES.md): the text tokenizes to exactly the
 * model's ids, and the ids print as the text (the first token's '▁' is the prefix space). */
Test(vectors, stories260k_sample)
{
    static const int32_t ids[] = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395,
                                  317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322,
                                  265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432,
                                  352, 266, 268, 388, 426, 338, 391, 266, 267, 337, 335, 312, 432,
                                  398, 312, 286, 267, 414, 270, 333, 415, 426, 13,  438, 310};
    static const char text[] =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
        "park. One day, she saw a big, red ball. She wanted to play with it, but it was too "
        "high.\nLily";
    duet_tokenizer *t = load("stories260K.gguf");
    size_t n = sizeof ids / sizeof ids[0];
    ids_t r = toks(t, text, false, false);
    cr_expect(ids_eq(r, ids, n), "got %zu ids", r.n);
    free(r.v);
    r = (ids_t){(int32_t *)ids, n};
    char *s = detok(t, r, 0, NULL);
    cr_expect_str_eq(s, text);
    free(s);
    size_t chunks;
    s = stream_all(t, r, 0, &chunks);
    cr_expect_str_eq(s, text);
    free(s);
    duet_tokenizer_free(t);
    assert_no_leaks();
}

typedef struct {
    const duet_tokenizer *t;
    const vcase *c;
    size_t n;
    int failures;
} worker_arg;

static void *tokenize_all(void *p)
{
    worker_arg *a = p;
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < a->n; i++) {
            int32_t *ids;
            size_t n;
            duet_status s;
            if (duet_tokenize(a->t, a->c[i].text, a->c[i].len, false, false, &ids, &n, &s) !=
                    DUET_OK ||
                n != a->c[i].n_ids || (n && memcmp(ids, a->c[i].ids, n * sizeof *ids) != 0)) {
                a->failures++;
            }
            free(ids);
        }
    }
    return NULL;
}

/* One tokenizer, several threads at once (the gateway and the worker share them). */
Test(vectors, concurrent_use_of_one_tokenizer)
{
    static const char *const files[] = {"ggml-vocab-llama-spm.gguf",
                                        "ggml-vocab-deepseek-llm.gguf"};
    for (size_t f = 0; f < 2; f++) {
        duet_tokenizer *t = load(files[f]);
        size_t n;
        vcase *c = read_vectors(files[f], &n);
        pthread_t th[4];
        worker_arg a[4];
        for (int i = 0; i < 4; i++) {
            a[i] = (worker_arg){t, c, n, 0};
            cr_assert_eq(pthread_create(&th[i], NULL, tokenize_all, &a[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            cr_expect_eq(a[i].failures, 0, "%s: thread %d", files[f], i);
        }
        free_vectors(c, n);
        duet_tokenizer_free(t);
    }
    assert_no_leaks();
}

/* ---- what the GGUF loader fills in --------------------------------------------------------- */

Test(vocab, gguf_fields_and_defaults)
{
    duet_vocab v;
    load_vocab("ggml-vocab-llama-spm.gguf", &v);
    cr_expect_eq(v.kind, DUET_VOCAB_SPM);
    cr_expect_eq(v.n_tokens, 32000);
    cr_expect_eq(v.bos_id, 1);
    cr_expect_eq(v.eos_id, 2);
    cr_expect_eq(v.unk_id, 0);
    cr_expect_eq(v.pad_id, DUET_TOKEN_NONE);
    cr_expect(v.add_bos);
    cr_expect(!v.add_eos);
    cr_expect(v.add_space_prefix, "SPM adds the space prefix unless the file says otherwise");
    size_t len;
    const char *s = duet_vocab_token(&v, 3, &len);
    cr_expect(len == 6 && memcmp(s, "<0x00>", 6) == 0);
    cr_expect_eq(v.types[3], DUET_TOKEN_BYTE);
    duet_vocab_free(&v);

    /* stories260K: no add_bos key, padding id 0xFFFFFFFF = none. */
    load_vocab("stories260K.gguf", &v);
    cr_expect_eq(v.n_tokens, 512);
    cr_expect(v.add_bos && v.add_space_prefix);
    cr_expect_eq(v.pad_id, DUET_TOKEN_NONE);
    cr_expect_eq(v.bos_id, 1);
    duet_vocab_free(&v);

    load_vocab("ggml-vocab-gpt-2.gguf", &v);
    cr_expect_eq(v.kind, DUET_VOCAB_BPE);
    cr_expect_str_eq(v.pre, "gpt-2");
    cr_expect_eq(v.n_merges, 50000);
    s = duet_vocab_merge(&v, 0, &len);
    cr_expect(len == 4 && memcmp(s, "\xc4\xa0 t", 4) == 0, "first merge is 'Ġ t'");
    cr_expect_eq(v.bos_id, 50256);
    cr_expect(!v.add_bos && !v.add_space_prefix);
    duet_vocab_free(&v);

    /* Phi-3's end-of-turn tokens are found by their text. */
    load_vocab("ggml-vocab-phi-3.gguf", &v);
    bool end = false, endoftext = false;
    for (uint32_t i = 0; i < v.n_eot; i++) {
        end |= v.eot_ids[i] == 32007;       /* <|end|> */
        endoftext |= v.eot_ids[i] == 32000; /* <|endoftext|>, also the EOS: not listed */
    }
    cr_expect(end, "<|end|> is an end-of-turn token");
    cr_expect(!endoftext, "the EOS is not repeated in eot_ids");
    duet_tokenizer *t = make_tokenizer(&v);
    cr_expect(duet_tokenizer_is_eog(t, 32007));
    cr_expect(duet_tokenizer_is_eog(t, 32000));
    cr_expect(!duet_tokenizer_is_eog(t, 1));
    duet_tokenizer_free(t);
    duet_vocab_free(&v);
    assert_no_leaks();
}

/* Builds a GGUF in memory from gpt-2's vocabulary with one key changed or dropped. */
static duet_gguf *gpt2_variant(const char *pre, bool short_types)
{
    char path[1024];
    model_path(path, sizeof path, "ggml-vocab-gpt-2.gguf");
    duet_gguf *src = NULL;
    cr_assert_eq(duet_gguf_open(path, &src, &st), DUET_OK, "%s", st.message);
    duet_gguf_writer *w = duet_gguf_writer_new();
    duet_gguf_writer_copy(w, src, "general.architecture");
    duet_gguf_writer_copy(w, src, "tokenizer.ggml.model");
    duet_gguf_writer_copy(w, src, "tokenizer.ggml.tokens");
    duet_gguf_writer_copy(w, src, "tokenizer.ggml.merges");
    if (pre) {
        duet_gguf_writer_string(w, "tokenizer.ggml.pre", pre);
    }
    if (short_types) {
        int32_t types[3] = {1, 1, 1};
        duet_gguf_writer_array_i32(w, "tokenizer.ggml.token_type", types, 3);
    } else {
        duet_gguf_writer_copy(w, src, "tokenizer.ggml.token_type");
    }
    uint8_t *buf;
    size_t len;
    cr_assert_eq(duet_gguf_writer_to_memory(w, &buf, &len, &st), DUET_OK, "%s", st.message);
    duet_gguf_writer_free(w);
    duet_gguf_close(src);
    duet_gguf *g = NULL;
    cr_assert_eq(duet_gguf_open_memory(buf, len, &g, &st), DUET_OK, "%s", st.message);
    free(buf);
    return g;
}

Test(vocab, unknown_pre_tokenizer_is_refused_by_name)
{
    duet_gguf *g = gpt2_variant("no-such-pre", false);
    duet_vocab v;
    cr_expect_eq(duet_vocab_from_gguf(g, &v, &st), DUET_INVALID_ARGUMENT);
    cr_expect(strstr(st.message, "'no-such-pre'"), "%s", st.message);
    duet_gguf_close(g);

    /* The same through the tokenizer, for a vocabulary that came over the wire. */
    load_vocab("ggml-vocab-gpt-2.gguf", &v);
    cr_assert_eq(duet_vocab_set_pre(&v, "qwen9", 5, &st), DUET_OK);
    duet_tokenizer *t = NULL;
    cr_expect_eq(duet_tokenizer_create(&v, &t, &st), DUET_INVALID_ARGUMENT);
    cr_expect_null(t);
    cr_expect(strstr(st.message, "'qwen9'"), "%s", st.message);
    duet_vocab_free(&v);

    /* A missing pre is llama.cpp's "default", not an error. */
    g = gpt2_variant(NULL, false);
    cr_expect_eq(duet_vocab_from_gguf(g, &v, &st), DUET_OK, "%s", st.message);
    t = make_tokenizer(&v);
    duet_tokenizer_free(t);
    duet_vocab_free(&v);
    duet_gguf_close(g);
    assert_no_leaks();
}

Test(vocab, inconsistent_arrays_are_refused)
{
    duet_gguf *g = gpt2_variant("gpt-2", true);
    duet_vocab v;
    cr_expect_eq(duet_vocab_from_gguf(g, &v, &st), DUET_INVALID_ARGUMENT);
    cr_expect(strstr(st.message, "tokenizer.ggml.token_type has 3 entries"), "%s", st.message);
    duet_gguf_close(g);

    /* Wire-built vocabularies are checked too. */
    duet_vocab_init(&v, DUET_VOCAB_SPM);
    cr_expect_eq(duet_vocab_add_token(&v, "a", 1, 0, 9, &st), DUET_INVALID_ARGUMENT);
    cr_assert_eq(duet_vocab_add_token(&v, "a", 1, 0, 1, &st), DUET_OK);
    v.bos_id = 5;
    duet_tokenizer *t = NULL;
    cr_expect_eq(duet_tokenizer_create(&v, &t, &st), DUET_INVALID_ARGUMENT);
    cr_expect(strstr(st.message, "BOS"), "%s", st.message);
    v.bos_id = DUET_TOKEN_NONE;
    v.add_bos = true;
    cr_expect_eq(duet_tokenizer_create(&v, &t, &st), DUET_INVALID_ARGUMENT);
    duet_vocab_free(&v);
    assert_no_leaks();
}

/* ---- special tokens and BOS/EOS ------------------------------------------------------------ */

Test(special, parse_on_and_off_spm)
{
    duet_tokenizer *t = load("ggml-vocab-llama-spm.gguf");
    ids_t hello = toks(t, "Hello", false, false); /* "▁Hello" */
    cr_assert_eq(hello.n, 1);
    cr_expect_eq(hello.v[0], 15043);

    ids_t on = toks(t, "<s>Hello</s>", false, true);
    int32_t want[] = {1, 15043, 2};
    cr_expect(ids_eq(on, want, 3), "parse_special turns <s> and </s> into BOS and EOS");

    ids_t off = toks(t, "<s>Hello</s>", false, false);
    cr_expect(!ids_contain(off, 1) && !ids_contain(off, 2), "without it they are text");
    char *back = detok(t, off, 0, NULL);
    cr_expect_str_eq(back, "<s>Hello</s>");
    free(back);
    free(hello.v);
    free(on.v);
    free(off.v);
    duet_tokenizer_free(t);
    assert_no_leaks();
}

Test(special, parse_on_and_off_bpe)
{
    duet_tokenizer *t = load("ggml-vocab-gpt-2.gguf");
    ids_t a = toks(t, "Hello", false, false), b = toks(t, " world", false, false);
    ids_t on = toks(t, "Hello<|endoftext|> world", false, true);
    cr_assert_eq(on.n, a.n + 1 + b.n);
    cr_expect(memcmp(on.v, a.v, a.n * sizeof *a.v) == 0);
    cr_expect_eq(on.v[a.n], 50256);
    cr_expect(memcmp(on.v + a.n + 1, b.v, b.n * sizeof *b.v) == 0);

    ids_t off = toks(t, "Hello<|endoftext|> world", false, false);
    cr_expect(!ids_contain(off, 50256));
    char *back = detok(t, off, 0, NULL);
    cr_expect_str_eq(back, "Hello<|endoftext|> world");
    free(back);
    back = detok(t, on, 0, NULL);
    cr_expect_str_eq(back, "Hello world", "control tokens print nothing by default");
    free(back);
    back = detok(t, on, DUET_DETOK_SPECIAL, NULL);
    cr_expect_str_eq(back, "Hello<|endoftext|> world");
    free(back);
    free(a.v);
    free(b.v);
    free(on.v);
    free(off.v);
    duet_tokenizer_free(t);
    assert_no_leaks();
}

/* User-defined tokens are cut out even without parse_special (as in llama.cpp and HF):
 * DeepSeek lists single letters like 'ø', MPT runs of spaces. */
Test(special, user_defined_tokens_always_match)
{
    duet_tokenizer *t = load("ggml-vocab-deepseek-llm.gguf");
    ids_t r = toks(t, "\xc3\xb8", false, false); /* ø */
    int32_t want[] = {100002};
    cr_expect(ids_eq(r, want, 1), "got %zu ids, first %d", r.n, r.n ? r.v[0] : -1);
    free(r.v);
    duet_tokenizer_free(t);

    t = load("ggml-vocab-mpt.gguf");
    r = toks(t, "a                        b", false, false); /* 24 spaces */
    cr_expect(ids_contain(r, 50254), "the 24-space token");
    free(r.v);
    duet_tokenizer_free(t);
    assert_no_leaks();
}

Test(special, bos_eos_flags)
{
    duet_vocab v;
    load_vocab("ggml-vocab-llama-spm.gguf", &v);
    duet_tokenizer *t = make_tokenizer(&v);
    ids_t r = toks(t, "Hello", true, false);
    int32_t bos_hello[] = {1, 15043};
    cr_expect(ids_eq(r, bos_hello, 2), "add_special adds BOS (and no EOS: add_eos is false)");
    free(r.v);
    r = toks(t, "", true, false);
    cr_expect(r.n == 1 && r.v[0] == 1, "empty text with add_special is just BOS");
    free(r.v);
    r = toks(t, "", false, false);
    cr_expect_eq(r.n, 0);
    cr_expect_null(r.v);
    duet_tokenizer_free(t);

    v.add_eos = true;
    v.add_bos = false;
    t = make_tokenizer(&v);
    r = toks(t, "Hello", true, false);
    int32_t hello_eos[] = {15043, 2};
    cr_expect(ids_eq(r, hello_eos, 2));
    free(r.v);
    duet_tokenizer_free(t);
    duet_vocab_free(&v);

    /* deepseek-coder's file sets add_bos_token = true; gpt-2's has no key (BPE: false). */
    t = load("ggml-vocab-deepseek-coder.gguf");
    r = toks(t, "x", true, false);
    cr_expect(r.n >= 2 && r.v[0] == 32013);
    free(r.v);
    duet_tokenizer_free(t);
    t = load("ggml-vocab-gpt-2.gguf");
    r = toks(t, "x", true, false);
    cr_expect(r.n == 1 && r.v[0] != 50256);
    free(r.v);
    duet_tokenizer_free(t);
    assert_no_leaks();
}

/* llama.cpp's detokenize rules around BOS and the SPM space prefix. */
Test(special, detokenize_bos_and_space_prefix)
{
    duet_tokenizer *t = load("ggml-vocab-llama-spm.gguf");
    int32_t bos_hello[] = {1, 15043};
    ids_t r = {bos_hello, 2};
    char *s = detok(t, r, 0, NULL);
    /* BOS prints nothing but is the first token, so the space of "▁Hello" stays. */
    cr_expect_str_eq(s, " Hello");
    free(s);
    s = detok(t, r, DUET_DETOK_REMOVE_SPECIAL, NULL);
    cr_expect_str_eq(s, " Hello", "llama.cpp strips no space once it drops the BOS");
    free(s);
    s = detok(t, r, DUET_DETOK_SPECIAL, NULL);
    cr_expect_str_eq(s, "<s> Hello");
    free(s);
    r = (ids_t){bos_hello + 1, 1};
    s = detok(t, r, 0, NULL);
    cr_expect_str_eq(s, "Hello");
    free(s);
    s = detok(t, r, DUET_DETOK_KEEP_LEADING_SPACE, NULL);
    cr_expect_str_eq(s, " Hello");
    free(s);
    int32_t bad[] = {15043, 32000};
    r = (ids_t){bad, 2};
    char *out;
    size_t n;
    cr_expect_eq(duet_detokenize(t, r.v, r.n, 0, &out, &n, &st), DUET_INVALID_ARGUMENT);
    cr_expect_null(out);
    duet_tokenizer_free(t);
    assert_no_leaks();
}

Test(special, clean_spaces_follow_llama_cpp)
{
    duet_tokenizer *t = load("ggml-vocab-gpt-2.gguf");
    ids_t r = toks(t, "Hello , world . I 'm here ' ok ' and they 'll go ?", false, false);
    char *s = detok(t, r, DUET_DETOK_CLEAN_SPACES, NULL);
    /* " ' " loses both spaces, twice ("here'ok'and"), " 'll" keeps its space. */
    cr_expect_str_eq(s, "Hello, world. I'm here'ok'and they 'll go?");
    free(s);
    s = detok(t, r, 0, NULL);
    cr_expect_str_eq(s, "Hello , world . I 'm here ' ok ' and they 'll go ?");
    free(s);
    free(r.v);
    duet_tokenizer_free(t);

    /* DeepSeek's pre-tokenizers turn the clean-up off. */
    t = load("ggml-vocab-deepseek-coder.gguf");
    r = toks(t, "a , b", false, false);
    s = detok(t, r, DUET_DETOK_CLEAN_SPACES, NULL);
    cr_expect_str_eq(s, "a , b");
    free(s);
    free(r.v);
    duet_tokenizer_free(t);
    assert_no_leaks();
}

/* ---- streaming ------------------------------------------------------------------------------ */

/* Pushes ids one at a time; checks every chunk is whole characters; returns the text. */
static char *stream_all(const duet_tokenizer *t, ids_t ids, unsigned flags, size_t *n_chunks)
{
    duet_detok_stream *s = NULL;
    cr_assert_eq(duet_detok_stream_create(t, flags, &s, &st), DUET_OK);
    size_t cap = 64, len = 0;
    char *all = malloc(cap);
    *n_chunks = 0;
    for (size_t i = 0; i <= ids.n; i++) {
        const char *p;
        size_t n;
        if (i < ids.n) {
            cr_assert_eq(duet_detok_stream_push(s, ids.v[i], &p, &n, &st), DUET_OK);
        } else {
            duet_detok_stream_flush(s, &p, &n);
        }
        cr_assert(valid_utf8(p, n), "chunk %zu is not whole UTF-8 characters", i);
        *n_chunks += n > 0;
        while (len + n + 1 > cap) {
            cap *= 2;
            all = realloc(all, cap);
        }
        memcpy(all + len, p, n);
        len += n;
    }
    all[len] = '\0';
    duet_detok_stream_free(s);
    return all;
}

/* Over all the vectors: chunks are whole characters and add up to the input. */
Test(stream, vectors_come_back_whole)
{
    static const char *const files[] = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf",
                                        "ggml-vocab-deepseek-llm.gguf"};
    for (size_t f = 0; f < 3; f++) {
        duet_tokenizer *t = load(files[f]);
        size_t n;
        vcase *c = read_vectors(files[f], &n);
        for (size_t i = 0; i < n; i++) {
            ids_t r = tok(t, c[i].text, c[i].len, false, false);
            size_t chunks;
            char *s = stream_all(t, r, 0, &chunks);
            cr_expect_str_eq(s, c[i].text, "%s case %zu", files[f], i);
            free(s);
            free(r.v);
        }
        free_vectors(c, n);
        duet_tokenizer_free(t);
    }
    assert_no_leaks();
}

/* "🦙" is four byte tokens in Llama 2's vocabulary: nothing comes out until the fourth. */
Test(stream, split_emoji_is_held_back)
{
    duet_tokenizer *t = load("ggml-vocab-llama-spm.gguf");
    ids_t r = toks(t, "\xf0\x9f\xa6\x99", false, false);
    int32_t want[] = {29871, 3 + 0xF0, 3 + 0x9F, 3 + 0xA6, 3 + 0x99};
    cr_assert(ids_eq(r, want, 5), "▁ then the emoji's four bytes");
    duet_detok_stream *s = NULL;
    cr_assert_eq(duet_detok_stream_create(t, DUET_DETOK_KEEP_LEADING_SPACE, &s, &st), DUET_OK);
    const char *p;
    size_t n;
    cr_assert_eq(duet_detok_stream_push(s, r.v[0], &p, &n, &st), DUET_OK);
    cr_expect(n == 1 && p[0] == ' ');
    for (int i = 1; i < 4; i++) {
        cr_assert_eq(duet_detok_stream_push(s, r.v[i], &p, &n, &st), DUET_OK);
        cr_expect_eq(n, 0, "byte %d of 4 must be held back", i);
    }
    cr_assert_eq(duet_detok_stream_push(s, r.v[4], &p, &n, &st), DUET_OK);
    cr_expect(n == 4 && memcmp(p, "\xf0\x9f\xa6\x99", 4) == 0);

    /* Cut off: the flush gives U+FFFD for the incomplete character. */
    duet_detok_stream_flush(s, &p, &n);
    cr_expect_eq(n, 0);
    cr_assert_eq(duet_detok_stream_push(s, r.v[1], &p, &n, &st), DUET_OK);
    cr_assert_eq(duet_detok_stream_push(s, r.v[2], &p, &n, &st), DUET_OK);
    cr_expect_eq(n, 0);
    duet_detok_stream_flush(s, &p, &n);
    cr_expect(n == 3 && memcmp(p, "\xef\xbf\xbd", 3) == 0);

    /* A byte that can never start a character is replaced at once, not held. */
    cr_assert_eq(duet_detok_stream_push(s, 3 + 0xFF, &p, &n, &st), DUET_OK);
    cr_expect(n == 3 && memcmp(p, "\xef\xbf\xbd", 3) == 0);
    cr_expect_eq(duet_detok_stream_push(s, 99999, &p, &n, &st), DUET_INVALID_ARGUMENT);
    duet_detok_stream_free(s);
    free(r.v);
    duet_tokenizer_free(t);
    assert_no_leaks();
}

/* Byte-level BPE tokens cut emoji and CJK characters in the middle. */
Test(stream, bpe_characters_split_between_tokens)
{
    duet_tokenizer *t = load("ggml-vocab-gpt-2.gguf");
    const char *text = "\xf0\x9f\x98\x81 \xe6\x88\x91\xe6\x83\xb3\xe5\x9c\xa8 ok"; /* 😁 我想在 ok */
    ids_t r = toks(t, text, false, false);
    bool split = false;
    for (size_t i = 0; i < r.n; i++) {
        size_t n;
        const char *p = duet_token_piece(t, r.v[i], false, &n);
        split |= !valid_utf8(p, n);
    }
    cr_assert(split, "some token must hold part of a character for this test to mean much");
    size_t chunks;
    char *s = stream_all(t, r, 0, &chunks);
    cr_expect_str_eq(s, text);
    cr_expect_lt(chunks, r.n, "tokens with partial characters produce no output");
    free(s);
    free(r.v);
    duet_tokenizer_free(t);
    assert_no_leaks();
}

/* ---- invalid UTF-8 ----------------------------------------------------------------------- */

Test(robustness, invalid_utf8_does_not_crash)
{
    static const char *const files[] = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf",
                                        "ggml-vocab-deepseek-llm.gguf", "ggml-vocab-falcon.gguf",
                                        "ggml-vocab-mpt.gguf"};
    static const char *const bad[] = {
        "\xff\xfe",
        "\xe2\x82",
        "abc\x80"
        "def",
        "\xed\xa0\x80 surrogate",
        "\xc0\xaf overlong",
        "tail \xf0\x9f\x98",
        "\xf4\x90\x80\x80 big",
        "\x80\x80\x80",
    };
    unsigned seed = 12345;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        duet_tokenizer *t = load(files[f]);
        /* Only gpt-2 has a normal token for each of the 256 bytes. The others drop the bytes
         * they have no token for (0xC0, 0xC1, 0xF5..0xFF never occur in UTF-8), and
         * DeepSeek's tokens for them are user-defined and print as their UTF-8 text, both
         * as in llama.cpp, so those vocabularies cannot give such bytes back. */
        bool lossless = strcmp(files[f], "ggml-vocab-gpt-2.gguf") == 0;
        bool spm = duet_tokenizer_kind(t) == DUET_VOCAB_SPM;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            ids_t r = toks(t, bad[i], false, true);
            size_t len;
            char *back = detok(t, r, 0, &len);
            /* SPM is lossless too when no space follows the bad bytes (llama.cpp's SPM glues
             * the next 1-3 bytes to a bad lead byte, and a '▁' cut that way comes back as
             * its three bytes). */
            if (lossless || (spm && !strchr(bad[i], ' '))) {
                cr_expect(len == strlen(bad[i]) && memcmp(back, bad[i], len) == 0,
                          "%s: case %zu does not come back", files[f], i);
            }
            free(back);
            free(r.v);
        }
        for (int round = 0; round < 200; round++) {
            char buf[64];
            size_t len = (size_t)(rand_r(&seed) % sizeof buf);
            for (size_t i = 0; i < len; i++) {
                buf[i] = (char)(rand_r(&seed) & 0xFF);
            }
            ids_t r = tok(t, buf, len, round & 1, round & 2);
            for (size_t i = 0; i < r.n; i++) {
                cr_assert(r.v[i] >= 0 && (uint32_t)r.v[i] < duet_tokenizer_n_tokens(t));
            }
            if (lossless && !(round & 3)) {
                size_t n;
                char *back = detok(t, r, 0, &n);
                cr_expect(n == len && memcmp(back, buf, len) == 0, "%s: random bytes round %d",
                          files[f], round);
                free(back);
            }
            free(r.v);
        }
        duet_tokenizer_free(t);
    }
    assert_no_leaks();
}

Test(robustness, bad_arguments)
{
    duet_tokenizer *t = load("ggml-vocab-gpt-2.gguf");
    int32_t *ids;
    size_t n;
    cr_expect_eq(duet_tokenize(t, NULL, 3, false, false, &ids, &n, &st), DUET_INVALID_ARGUMENT);
    cr_expect_eq(duet_tokenize(t, NULL, 0, true, false, &ids, &n, &st), DUET_OK);
    cr_expect_eq(n, 0);
    size_t len;
    cr_expect_null(duet_token_piece(t, -1, true, &len));
    cr_expect_null(duet_token_piece(t, 50257, true, &len));
    cr_expect_eq(duet_tokenizer_token_type(t, 50256), DUET_TOKEN_CONTROL);
    duet_tokenizer_free(t);
    assert_no_leaks();
}

/* ---- pre-tokenizer regexes ----------------------------------------------------------------- */

/* Splits text with pre-tokenizer name and compares with the words in want (NULL-ended). */
static void expect_split(const char *name, const char *text, const char *const *want)
{
    duet_pretok *p = NULL;
    cr_assert_eq(duet_pretok_create(name, &p, &st), DUET_OK, "%s", st.message);
    duet_spans s = {0};
    cr_assert_eq(duet_pretok_split(p, text, strlen(text), &s, &st), DUET_OK, "%s", st.message);
    size_t n = 0;
    while (want[n]) {
        n++;
    }
    bool same = s.n == n;
    for (size_t i = 0; same && i < n; i++) {
        same = s.v[i].len == strlen(want[i]) && memcmp(text + s.v[i].off, want[i], s.v[i].len) == 0;
    }
    if (!same) {
        fprintf(stderr, "%s split of '%s':", name, text);
        for (size_t i = 0; i < s.n; i++) {
            fprintf(stderr, " [%.*s]", (int)s.v[i].len, text + s.v[i].off);
        }
        fprintf(stderr, "\n");
    }
    cr_expect(same, "%s: '%s' split differently (see above)", name, text);
    duet_spans_free(&s);
    duet_pretok_free(p);
}

Test(pretokenize, digits_and_contractions)
{
    /* Llama 3 groups digits by three, Qwen2 takes them one by one, GPT-2 keeps runs. */
    expect_split("llama-bpe", "3333333 y'all",
                 (const char *const[]){"333", "333", "3", " y", "'all", NULL});
    expect_split("qwen2", "123 x", (const char *const[]){"1", "2", "3", " x", NULL});
    expect_split("gpt-2", "12345 x", (const char *const[]){"12345", " x", NULL});
    /* Llama 3's contractions ignore case; GPT-2's do not. */
    expect_split("llama3", "I'M", (const char *const[]){"I", "'M", NULL});
    expect_split("gpt-2", "I'M", (const char *const[]){"I", "'", "M", NULL});
    /* \s+(?!\S): the last space goes with the next word; trailing space stays whole. */
    expect_split("gpt-2", "a   b  ", (const char *const[]){"a", "  ", " b", "  ", NULL});
    expect_split("llama3", "a\n\n b", (const char *const[]){"a", "\n\n", " b", NULL});
    /* Falcon: punctuation first, then GPT-2, then digits by three from the left. */
    expect_split("falcon", "x=1234567!",
                 (const char *const[]){"x", "=", "123", "456", "7", "!", NULL});
    /* Starcoder: every digit alone. */
    expect_split("starcoder", "a12", (const char *const[]){"a", "1", "2", NULL});
}

Test(pretokenize, deepseek_quirks)
{
    /* Each newline alone, and the spaces before it a word of their own (\s+$). */
    expect_split("deepseek-llm", "Hi  \nyou", (const char *const[]){"Hi", "  ", "\n", "you", NULL});
    /* CJK runs. Non-ASCII white space is "\v" to llama.cpp's matcher for regexes without
     * \p{..}, so an EN QUAD (U+2000) is not part of the U+0800..U+4E00 range and cuts the
     * run; an ideographic space (U+3000) is cut out too. */
    expect_split(
        "deepseek-llm", "\xe4\xbd\xa0\xe5\xa5\xbd\xe2\x80\x80\xe4\xb8\x96",
        (const char *const[]){"\xe4\xbd\xa0\xe5\xa5\xbd", "\xe2\x80\x80", "\xe4\xb8\x96", NULL});
    expect_split(
        "deepseek-llm", "\xe4\xbd\xa0\xe5\xa5\xbd\xe3\x80\x80\xe4\xb8\x96",
        (const char *const[]){"\xe4\xbd\xa0\xe5\xa5\xbd", "\xe3\x80\x80", "\xe4\xb8\x96", NULL});
    /* deepseek-coder: letters with one leading space, punctuation runs (not symbols: '='
     * is Sm and stays with its space), single digits. */
    expect_split("deepseek-coder", "x = f(12);",
                 (const char *const[]){"x", " =", " f", "(", "1", "2", ");", NULL});
}

Test(pretokenize, unknown_names_and_bad_bytes)
{
    duet_pretok *p = NULL;
    cr_expect_eq(duet_pretok_create("tekken-9", &p, &st), DUET_INVALID_ARGUMENT);
    cr_expect(strstr(st.message, "'tekken-9'"), "%s", st.message);
    cr_expect_null(p);
    cr_expect(duet_pre_lookup(NULL, NULL), "absent = default");
    cr_expect(!duet_pre_lookup("llama", NULL));
    /* Invalid bytes match nothing and end up as words of their own; nothing is lost. */
    expect_split("gpt-2",
                 "ab\xff"
                 "cd",
                 (const char *const[]){"ab", "\xff", "cd", NULL});
    expect_split("llama3", "\xe2\x82 x", (const char *const[]){"\xe2\x82", " x", NULL});
    assert_no_leaks();
}

/* ---- algorithms on hand-made vocabularies -------------------------------------------------- */

static void add(duet_vocab *v, const char *text, float score, int type)
{
    cr_assert_eq(duet_vocab_add_token(v, text, strlen(text), score, type, &st), DUET_OK);
}

/* SPM merges the pair with the best score first: "abc" is [ab, c] or [a, bc]. */
Test(algorithm, spm_merges_by_score)
{
    for (int round = 0; round < 2; round++) {
        duet_vocab v;
        duet_vocab_init(&v, DUET_VOCAB_SPM);
        add(&v, "<unk>", 0, DUET_TOKEN_UNKNOWN);
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            add(&v, name, 0, DUET_TOKEN_BYTE);
        }
        add(&v, "a", -1, 1);               /* 257 */
        add(&v, "b", -1, 1);               /* 258 */
        add(&v, "c", -1, 1);               /* 259 */
        add(&v, "ab", round ? -3 : -2, 1); /* 260 */
        add(&v, "bc", round ? -2 : -3, 1); /* 261 */
        v.unk_id = 0;
        duet_tokenizer *t = make_tokenizer(&v);
        ids_t r = toks(t, "abcd", false, false);
        int32_t ab_c[] = {260, 259, 1 + 'd'}, a_bc[] = {257, 261, 1 + 'd'}; /* d: a byte */
        cr_expect(ids_eq(r, round ? a_bc : ab_c, 3), "round %d", round);
        char *s = detok(t, r, 0, NULL);
        cr_expect_str_eq(s, "abcd");
        free(s);
        free(r.v);
        duet_tokenizer_free(t);
        duet_vocab_free(&v);
    }
    assert_no_leaks();
}

/* BPE merges the pair with the lowest rank first. */
Test(algorithm, bpe_merges_by_rank)
{
    for (int round = 0; round < 2; round++) {
        duet_vocab v;
        duet_vocab_init(&v, DUET_VOCAB_BPE);
        cr_assert_eq(duet_vocab_set_pre(&v, "gpt-2", 5, &st), DUET_OK);
        add(&v, "a", 0, 1);  /* 0 */
        add(&v, "b", 0, 1);  /* 1 */
        add(&v, "c", 0, 1);  /* 2 */
        add(&v, "ab", 0, 1); /* 3 */
        add(&v, "bc", 0, 1); /* 4 */
        const char *first = round ? "b c" : "a b", *second = round ? "a b" : "b c";
        cr_assert_eq(duet_vocab_add_merge(&v, first, 3, &st), DUET_OK);
        cr_assert_eq(duet_vocab_add_merge(&v, second, 3, &st), DUET_OK);
        duet_tokenizer *t = make_tokenizer(&v);
        ids_t r = toks(t, "abc", false, false);
        int32_t ab_c[] = {3, 2}, a_bc[] = {0, 4};
        cr_expect(ids_eq(r, round ? a_bc : ab_c, 2), "round %d", round);
        free(r.v);
        duet_tokenizer_free(t);
        duet_vocab_free(&v);
    }
    assert_no_leaks();
}

/* Longer special tokens are cut first even when a shorter one starts earlier (llama.cpp's
 * order), and overlapping occurrences of one token are taken left to right. */
Test(algorithm, special_token_priority)
{
    duet_vocab v;
    duet_vocab_init(&v, DUET_VOCAB_BPE);
    cr_assert_eq(duet_vocab_set_pre(&v, "gpt-2", 5, &st), DUET_OK);
    for (int b = 0; b < 256; b++) { /* printable ASCII bytes are their own ids */
        char name[16];
        if (b >= 0x21 && b <= 0x7E) {
            snprintf(name, sizeof name, "%c", b);
        } else {
            snprintf(name, sizeof name, "<filler%d>", b);
        }
        add(&v, name, 0, DUET_TOKEN_NORMAL);
    }
    add(&v, "abc", 0, DUET_TOKEN_CONTROL); /* 256 */
    add(&v, "xa", 0, DUET_TOKEN_CONTROL);  /* 257 */
    add(&v, "zz", 0, DUET_TOKEN_CONTROL);  /* 258 */
    duet_tokenizer *t = make_tokenizer(&v);
    ids_t r = toks(t, "xabc", false, true);
    int32_t want[] = {'x', 256};
    cr_expect(ids_eq(r, want, 2), "abc is cut before xa");
    free(r.v);
    r = toks(t, "zzz", false, true);
    int32_t want2[] = {258, 'z'};
    cr_expect(ids_eq(r, want2, 2));
    free(r.v);
    r = toks(t, "xabc", false, false);
    cr_expect(!ids_contain(r, 256) && !ids_contain(r, 257));
    free(r.v);
    duet_tokenizer_free(t);
    duet_vocab_free(&v);
    assert_no_leaks();
}

/* ---- speed ------------------------------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Times tokenizing text 31 times: the best and the median run (ms). The limit applies to
 * the best run, which a machine busy with other builds disturbs least. */
static double time_tokenize(const duet_tokenizer *t, const char *text, size_t len, double *median)
{
    double ms[31];
    for (int i = 0; i < 31; i++) {
        double t0 = now_ms();
        ids_t r = tok(t, text, len, true, false);
        ms[i] = now_ms() - t0;
        free(r.v);
    }
    qsort(ms, 31, sizeof ms[0], cmp_double);
    *median = ms[15];
    return ms[0];
}

/* A 4 KB prompt: prose, code, numbers and some non-Latin text. */
static char *prompt_4k(size_t *len)
{
    static const char *const parts[] = {
        "The quick brown fox jumps over the lazy dog, doesn't it? ",
        "int main(void) { return printf(\"%d\\n\", 42 * 1337); }\n",
        "Version 3.14159 shipped on 2024-06-01 with 12,345 fixes. ",
        "\xe6\x88\x91\xe6\x83\xb3\xe5\x9c\xa8 apple \xe5\xb7\xa5\xe4\xbd\x9c "
        "\xd0\xbd\xd0\xb5\xd1\x89\xd0\xbe \xf0\x9f\xa6\x99 ",
        "    indented line with   several   spaces\n\n",
    };
    char *s = malloc(4200);
    size_t n = 0;
    for (size_t i = 0; n < 4096; i++) {
        const char *p = parts[i % 5];
        size_t k = strlen(p);
        if (n + k > 4096) {
            k = 4096 - n;
        }
        memcpy(s + n, p, k);
        n += k;
    }
    *len = n;
    return s;
}

#if defined(__SANITIZE_ADDRESS__) || !defined(__OPTIMIZE__)
#define SPEED_LIMIT_MS 50.0 /* instrumented or unoptimised build: only catch disasters */
#else
#define SPEED_LIMIT_MS 1.0
#endif

Test(speed, four_kb_prompt_on_large_vocabularies)
{
    size_t len;
    char *text = prompt_4k(&len);

    /* A 128,256-token vocabulary (Llama 3's size): gpt-2's merges and tokens, padded with
     * filler tokens, under the Llama 3 and the Qwen2 pre-tokenizers. */
    duet_vocab v;
    load_vocab("ggml-vocab-gpt-2.gguf", &v);
    while (v.n_tokens < 128256) {
        char name[32];
        snprintf(name, sizeof name, "<filler_%u>", v.n_tokens);
        add(&v, name, 0, DUET_TOKEN_NORMAL);
    }
    double ms, med;
    for (int pass = 0; pass < 2; pass++) {
        /* llama3 skips merging words that are tokens; qwen2 merges every word. */
        const char *pre = pass ? "qwen2" : "llama-bpe";
        cr_assert_eq(duet_vocab_set_pre(&v, pre, strlen(pre), &st), DUET_OK);
        duet_tokenizer *t = make_tokenizer(&v);
        ms = time_tokenize(t, text, len, &med);
        fprintf(stderr,
                "[tokenizer] 4 KB prompt, 128256-token BPE (%s): best %.3f ms, median %.3f ms\n",
                pre, ms, med);
        cr_expect_lt(ms, SPEED_LIMIT_MS, "%s: %.3f ms", pre, ms);
        duet_tokenizer_free(t);
    }
    duet_vocab_free(&v);

    static const char *const files[] = {"ggml-vocab-deepseek-llm.gguf", "ggml-vocab-llama-spm.gguf",
                                        "ggml-vocab-mpt.gguf", "ggml-vocab-falcon.gguf"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        duet_tokenizer *t = load(files[f]);
        ms = time_tokenize(t, text, len, &med);
        fprintf(stderr, "[tokenizer] 4 KB prompt, %s (%u tokens): best %.3f ms, median %.3f ms\n",
                files[f], duet_tokenizer_n_tokens(t), ms, med);
        cr_expect_lt(ms, SPEED_LIMIT_MS, "%s: %.3f ms", files[f], ms);
        duet_tokenizer_free(t);
    }
    free(text);
    assert_no_leaks();
}
