/* The forward pass: stories260K decodes exactly the reference tokens; a synthetic model of
 * every weight type and architecture loads and decodes finitely; batched evaluation gives
 * the same logits as token-by-token evaluation; bad input is refused. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "model.h"
#include "support.h"

static const char *models_dir(void)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    return dir && *dir ? dir : "../shared/models";
}

static void model_path(char *out, size_t cap, const char *file)
{
    snprintf(out, cap, "%s/%s", models_dir(), file);
    FILE *f = fopen(out, "rb");
    if (!f) {
        cr_skip_test("TEST MODELS MISSING: %s not found (set DUET_TEST_MODELS)", out);
    }
    fclose(f);
}

static uint32_t argmax(const float *l, uint32_t n)
{
    uint32_t b = 0;
    for (uint32_t i = 1; i < n; i++) {
        b = l[i] > l[b] ? i : b;
    }
    return b;
}

/* Greedy decoding of n tokens after the prompt. */
static void greedy(duet_model *m, int threads, const uint32_t *prompt, uint32_t n_prompt,
                   uint32_t *out, uint32_t n)
{
    duet_engine *e;
    duet_kv_cache *kv;
    duet_status st;
    cr_assert_eq(duet_engine_new(m, threads, 64, 512, &e, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_kv_cache_new(m, 512, &kv, &st), DUET_OK, "%s", st.message);
    float *logits = malloc(m->hp.n_vocab * sizeof *logits);
    cr_assert_eq(duet_engine_eval(e, kv, prompt, n_prompt, logits, &st), DUET_OK, "%s", st.message);
    for (uint32_t i = 0; i < n; i++) {
        out[i] = argmax(logits, m->hp.n_vocab);
        cr_assert(isfinite(logits[out[i]]), "step %u: logits not finite", i);
        if (i + 1 < n) {
            cr_assert_eq(duet_engine_eval(e, kv, &out[i], 1, logits, &st), DUET_OK, "%s",
                         st.message);
        }
    }
    free(logits);
    duet_kv_cache_free(kv);
    duet_engine_free(e);
}

/* SOURCES.md: greedy from BOS, verified against an independent implementation and
 * llama2.c's documented sample. */
static const uint32_t stories_expected[64] = {
    403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
    401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
    328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267,
    337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13,  438, 310};

Test(engine, stories260k_greedy_matches_reference)
{
    char path[1024];
    model_path(path, sizeof path, "stories260K.gguf");
    duet_model *m;
    duet_status st;
    cr_assert_eq(duet_model_load(path, &m, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(m->hp.n_layer, 5);
    cr_assert_eq(m->hp.n_head_kv, 4);
    uint32_t bos = 1, out[64];
    for (int threads = 1; threads <= 2; threads++) {
        greedy(m, threads, &bos, 1, out, 64);
        for (int i = 0; i < 64; i++) {
            cr_assert_eq(out[i], stories_expected[i], "%d threads, token %d: got %u, want %u",
                         threads, i, out[i], stories_expected[i]);
        }
    }
    duet_model_free(m);
}

Test(engine, batched_prefill_equals_token_by_token)
{
    char path[1024];
    model_path(path, sizeof path, "stories260K.gguf");
    duet_model *m;
    duet_status st;
    cr_assert_eq(duet_model_load(path, &m, &st), DUET_OK, "%s", st.message);
    uint32_t prompt[20] = {1};
    for (int i = 1; i < 20; i++) {
        prompt[i] = stories_expected[i - 1];
    }
    duet_engine *e;
    duet_kv_cache *a, *b;
    cr_assert_eq(duet_engine_new(m, 2, 32, 256, &e, &st), DUET_OK);
    cr_assert_eq(duet_kv_cache_new(m, 256, &a, &st), DUET_OK);
    cr_assert_eq(duet_kv_cache_new(m, 256, &b, &st), DUET_OK);
    float *la = malloc(m->hp.n_vocab * sizeof(float)), *lb = malloc(m->hp.n_vocab * sizeof(float));
    cr_assert_eq(duet_engine_eval(e, a, prompt, 20, la, &st), DUET_OK);
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(duet_engine_eval(e, b, &prompt[i], 1, lb, &st), DUET_OK);
    }
    for (uint32_t i = 0; i < m->hp.n_vocab; i++) {
        cr_assert_float_eq(la[i], lb[i], 1e-3f * (1.0f + fabsf(lb[i])), "logit %u: %f vs %f", i,
                           la[i], lb[i]);
    }

    /* two sequences in one step see only their own caches */
    duet_kv_cache_truncate(a, 19);
    duet_kv_cache *c;
    cr_assert_eq(duet_kv_cache_new(m, 256, &c, &st), DUET_OK);
    float *lc = malloc(2 * m->hp.n_vocab * sizeof(float));
    duet_batch_entry two[2] = {{.token = prompt[19], .pos = 19, .kv = a, .want_logits = true},
                               {.token = 1, .pos = 0, .kv = c, .want_logits = true}};
    cr_assert_eq(duet_engine_step(e, two, 2, lc, &st), DUET_OK, "%s", st.message);
    for (uint32_t i = 0; i < m->hp.n_vocab; i++) {
        cr_assert_float_eq(lc[i], lb[i], 1e-3f * (1.0f + fabsf(lb[i])));
    }
    cr_assert_eq(argmax(lc + m->hp.n_vocab, m->hp.n_vocab), stories_expected[0]);
    free(la);
    free(lb);
    free(lc);
    duet_kv_cache_free(a);
    duet_kv_cache_free(b);
    duet_kv_cache_free(c);
    duet_engine_free(e);
    duet_model_free(m);
}

Test(engine, bad_tokens_and_positions_are_refused)
{
    char path[1024];
    model_path(path, sizeof path, "stories260K.gguf");
    duet_model *m;
    duet_status st;
    cr_assert_eq(duet_model_load(path, &m, &st), DUET_OK, "%s", st.message);
    duet_engine *e;
    duet_kv_cache *kv;
    cr_assert_eq(duet_engine_new(m, 1, 8, 16, &e, &st), DUET_OK);
    cr_assert_eq(duet_kv_cache_new(m, 16, &kv, &st), DUET_OK);
    uint32_t bad = 512;
    cr_assert_eq(duet_engine_eval(e, kv, &bad, 1, NULL, &st), DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "512"), "%s", st.message);
    uint32_t many[17] = {0};
    cr_assert_eq(duet_engine_eval(e, kv, many, 17, NULL, &st), DUET_OUT_OF_RANGE);
    cr_assert(strstr(st.message, "context"), "%s", st.message);
    duet_kv_cache_free(kv);
    duet_engine_free(e);
    duet_model_free(m);
}

Test(engine, vocab_only_and_foreign_files_are_refused)
{
    char path[1024];
    model_path(path, sizeof path, "ggml-vocab-llama-spm.gguf");
    duet_model *m;
    duet_status st;
    cr_assert_neq(duet_model_load(path, &m, &st), DUET_OK);
    cr_assert(strstr(st.message, "token_embd"), "%s", st.message);
    model_path(path, sizeof path, "ggml-vocab-gpt-2.gguf");
    cr_assert_eq(duet_model_load(path, &m, &st), DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "gpt2"), "architecture named: %s", st.message);
}

/* A synthetic model of each type and architecture: loads and decodes finitely. */
static void synthetic_decodes(const char *type, const char *arch)
{
    char vocab[1024], dir[256], out[512];
    model_path(vocab, sizeof vocab, "stories260K.gguf");
    test_make_temp_dir(dir, sizeof dir, "duet-mk");
    snprintf(out, sizeof out, "%s/m.gguf", dir);
    const char *argv[] = {
        "duet-mkmodel", "--out",    out,  "--vocab-from", vocab, "--dim",      "256", "--ffn",
        "512",          "--layers", "2",  "--heads",      "4",   "--kv-heads", "2",   "--type",
        type,           "--arch",   arch, "--quiet",      NULL};
    cr_assert_eq(test_run_tool(argv), 0, "duet-mkmodel %s %s failed", type, arch);
    duet_model *m;
    duet_status st;
    cr_assert_eq(duet_model_load(out, &m, &st), DUET_OK, "%s %s: %s", type, arch, st.message);
    uint32_t prompt[4] = {1, 300, 301, 302}, gen[8];
    greedy(m, 2, prompt, 4, gen, 8);
    for (int i = 0; i < 8; i++) {
        cr_assert_lt(gen[i], m->hp.n_vocab);
    }
    duet_model_free(m);
    test_remove_dir(dir);
}

Test(engine, every_type_end_to_end)
{
    const char *types[] = {"F32",  "F16",  "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0",
                           "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        synthetic_decodes(types[i], "llama");
    }
}

Test(engine, qwen2_and_qwen3_architectures)
{
    synthetic_decodes("Q8_0", "qwen2");
    synthetic_decodes("Q4_K", "qwen3");
}
