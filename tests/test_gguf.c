/* The GGUF reader: real files from the shared models, round trips through the writer, and
 * a corrupt-file suite (truncated, bad magic, huge counts, offsets past the end, wrong
 * alignment, unknown types) that must be refused with a clear message, never a crash. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "support.h"
#include "tensor_type.h"

static const char *models_dir(void)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    return dir && *dir ? dir : "../shared/models";
}

static duet_gguf *open_model(const char *file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", models_dir(), file);
    FILE *f = fopen(path, "rb");
    if (!f) {
        cr_skip_test("TEST MODELS MISSING: %s not found (set DUET_TEST_MODELS)", path);
    }
    fclose(f);
    duet_gguf *g = NULL;
    duet_status st;
    cr_assert_eq(duet_gguf_open(path, &g, &st), DUET_OK, "%s", st.message);
    return g;
}

Test(gguf, stories260k_metadata_and_tensors)
{
    duet_gguf *g = open_model("stories260K.gguf");
    cr_assert_eq(duet_gguf_version(g), 3);
    duet_gguf_string arch;
    cr_assert(duet_gguf_get_string(g, "general.architecture", &arch));
    cr_assert(duet_gguf_string_eq(arch, "llama"));
    uint32_t v;
    cr_assert(duet_gguf_get_u32(g, "llama.block_count", &v));
    cr_assert_eq(v, 5);
    cr_assert(duet_gguf_get_u32(g, "llama.embedding_length", &v));
    cr_assert_eq(v, 64);
    float eps;
    cr_assert(duet_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps));
    cr_assert_float_eq(eps, 1e-5f, 1e-9f);
    duet_gguf_value_type et;
    uint64_t n;
    cr_assert(duet_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &n));
    cr_assert_eq(et, DUET_GGUF_STRING);
    cr_assert_eq(n, 512);
    duet_gguf_string tok;
    cr_assert(duet_gguf_array_string(g, "tokenizer.ggml.tokens", 1, &tok));
    cr_assert(duet_gguf_string_eq(tok, "<s>"));
    float score;
    cr_assert(duet_gguf_array_f32(g, "tokenizer.ggml.scores", 300, &score));
    int64_t type;
    cr_assert(duet_gguf_array_i64(g, "tokenizer.ggml.token_type", 5, &type));
    cr_assert_eq(type, 6, "token 5 is a byte token");
    cr_assert_not(duet_gguf_array_string(g, "tokenizer.ggml.tokens", 512, &tok));

    cr_assert_eq(duet_gguf_tensor_count(g), 48);
    const duet_gguf_tensor *t = duet_gguf_find_tensor(g, "token_embd.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->type, DUET_TYPE_F32);
    cr_assert_eq(t->ne[0], 64);
    cr_assert_eq(t->ne[1], 512);
    cr_assert_eq(t->bytes, 64 * 512 * 4);
    cr_assert_eq((uintptr_t)t->data % 32, 0, "tensor data is aligned");
    /* the output head is byte-identical to the embeddings in this model (SOURCES.md) */
    const duet_gguf_tensor *out = duet_gguf_find_tensor(g, "output.weight");
    cr_assert_not_null(out);
    cr_assert_eq(memcmp(out->data, t->data, t->bytes), 0);
    cr_assert_null(duet_gguf_find_tensor(g, "no.such.tensor"));
    duet_gguf_close(g);
}

Test(gguf, vocab_only_file_is_accepted)
{
    duet_gguf *g = open_model("ggml-vocab-llama-spm.gguf");
    cr_assert_eq(duet_gguf_tensor_count(g), 0);
    uint64_t n;
    cr_assert(duet_gguf_get_array(g, "tokenizer.ggml.tokens", NULL, &n));
    cr_assert_eq(n, 32000);
    duet_gguf_close(g);
}

Test(gguf, f16_tensors_of_a_converter_written_file)
{
    duet_gguf *g = open_model("llama-2-tiny-random.gguf");
    size_t f16 = 0;
    for (uint64_t i = 0; i < duet_gguf_tensor_count(g); i++) {
        f16 += duet_gguf_tensor_at(g, i)->type == DUET_TYPE_F16;
    }
    cr_assert_eq(f16, 9);
    duet_gguf_close(g);
}

static bool fill_pattern(void *arg, const char *name, void *dst, size_t bytes)
{
    (void)name;
    uint8_t seed = (uint8_t)(uintptr_t)arg;
    for (size_t i = 0; i < bytes; i++) {
        ((uint8_t *)dst)[i] = (uint8_t)(seed + i);
    }
    return true;
}

/* A small valid file: 2 keys, tensors "a" (F32 [32]) and "b" (Q8_0 [64, 2]). */
static uint8_t *small_file(size_t *len, uint32_t type_b)
{
    duet_gguf_writer *w = duet_gguf_writer_new();
    duet_gguf_writer_string(w, "general.architecture", "llama");
    duet_gguf_string toks[3] = {{"a", 1}, {"bc", 2}, {"", 0}};
    duet_gguf_writer_array_string(w, "tokenizer.ggml.tokens", toks, 3);
    int64_t ne_a[1] = {32};
    int64_t ne_b[2] = {64, 2};
    duet_gguf_writer_tensor(w, "a", DUET_TYPE_F32, 1, ne_a, fill_pattern, (void *)1);
    duet_gguf_writer_tensor(w, "b", type_b, 2, ne_b, fill_pattern, (void *)7);
    uint8_t *buf;
    duet_status st;
    cr_assert_eq(duet_gguf_writer_to_memory(w, &buf, len, &st), DUET_OK, "%s", st.message);
    duet_gguf_writer_free(w);
    return buf;
}

static void assert_refused(const uint8_t *buf, size_t len, const char *expect)
{
    duet_gguf *g = NULL;
    duet_status st;
    duet_code rc = duet_gguf_open_memory(buf, len, &g, &st);
    cr_assert_eq(rc, DUET_INVALID_ARGUMENT, "accepted a bad file (expected: %s)", expect);
    cr_assert_null(g);
    cr_assert(strstr(st.message, expect), "message \"%s\" does not say \"%s\"", st.message, expect);
}

Test(gguf, writer_round_trip)
{
    size_t len;
    uint8_t *buf = small_file(&len, DUET_TYPE_Q8_0);
    duet_gguf *g;
    duet_status st;
    cr_assert_eq(duet_gguf_open_memory(buf, len, &g, &st), DUET_OK, "%s", st.message);
    duet_gguf_string s;
    cr_assert(duet_gguf_array_string(g, "tokenizer.ggml.tokens", 1, &s));
    cr_assert(duet_gguf_string_eq(s, "bc"));
    cr_assert(duet_gguf_array_string(g, "tokenizer.ggml.tokens", 2, &s));
    cr_assert_eq(s.len, 0);
    const duet_gguf_tensor *b = duet_gguf_find_tensor(g, "b");
    cr_assert_not_null(b);
    cr_assert_eq(b->bytes, 2 * 2 * 34, "two rows of two Q8_0 blocks");
    cr_assert_eq(((const uint8_t *)b->data)[0], 7);
    cr_assert_eq(((const uint8_t *)b->data)[5], 12);
    duet_gguf_close(g);
    free(buf);
}

Test(gguf, every_truncation_is_refused)
{
    size_t len;
    uint8_t *buf = small_file(&len, DUET_TYPE_Q8_0);
    for (size_t cut = 0; cut < len; cut++) {
        duet_gguf *g = NULL;
        duet_status st;
        duet_code rc = duet_gguf_open_memory(buf, cut, &g, &st);
        cr_assert_neq(rc, DUET_OK, "a file cut at %zu of %zu bytes was accepted", cut, len);
        cr_assert_null(g);
    }
    free(buf);
}

Test(gguf, bad_magic_and_versions)
{
    size_t len;
    uint8_t *buf = small_file(&len, DUET_TYPE_Q8_0);
    uint8_t *bad = malloc(len);
    memcpy(bad, buf, len);
    memcpy(bad, "GGML", 4);
    assert_refused(bad, len, "bad magic");
    memcpy(bad, buf, len);
    uint32_t v1 = 1;
    memcpy(bad + 4, &v1, 4);
    assert_refused(bad, len, "version 1");
    uint32_t be = 0x03000000u;
    memcpy(bad + 4, &be, 4);
    assert_refused(bad, len, "big-endian");
    uint32_t v9 = 9;
    memcpy(bad + 4, &v9, 4);
    assert_refused(bad, len, "unknown GGUF version 9");
    free(bad);
    free(buf);
}

Test(gguf, huge_counts_are_refused_before_allocation)
{
    size_t len;
    uint8_t *buf = small_file(&len, DUET_TYPE_Q8_0);
    uint64_t huge = 1ull << 60;
    memcpy(buf + 8, &huge, 8);
    assert_refused(buf, len, "tensors, more than the file holds");
    uint64_t two = 2;
    memcpy(buf + 8, &two, 8);
    memcpy(buf + 16, &huge, 8);
    assert_refused(buf, len, "metadata entries, more than the file holds");
    free(buf);
}

/* Offset of the first occurrence of needle in buf. */
static size_t find(const uint8_t *buf, size_t len, const void *needle, size_t n)
{
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(buf + i, needle, n) == 0) {
            return i;
        }
    }
    cr_assert_fail("pattern not found");
    return 0;
}

Test(gguf, lying_string_and_array_lengths)
{
    size_t len;
    uint8_t *buf = small_file(&len, DUET_TYPE_Q8_0);
    /* the architecture value's length: "llama" is preceded by its u64 length 5 */
    uint8_t pattern[13] = {5, 0, 0, 0, 0, 0, 0, 0, 'l', 'l', 'a', 'm', 'a'};
    size_t at = find(buf, len, pattern, sizeof pattern);
    uint64_t huge = 1ull << 40;
    memcpy(buf + at, &huge, 8);
    assert_refused(buf, len, "truncated");
    free(buf);

    buf = small_file(&len, DUET_TYPE_Q8_0);
    /* the token array's count (3) follows its element type (8 = string) */
    uint8_t arr[12] = {8, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0};
    at = find(buf, len, arr, sizeof arr);
    memcpy(buf + at + 4, &huge, 8);
    assert_refused(buf, len, "more than the file holds");
    free(buf);
}

/* Offset of tensor b's info fields: name "b" is stored as u64 1 then 'b'. */
static size_t tensor_b_info(const uint8_t *buf, size_t len)
{
    uint8_t name[9] = {1, 0, 0, 0, 0, 0, 0, 0, 'b'};
    return find(buf, len, name, sizeof name) + 9;
}

Test(gguf, tensor_offsets_past_the_end_and_misaligned)
{
    size_t len;
    uint8_t *buf = small_file(&len, DUET_TYPE_Q8_0);
    size_t info = tensor_b_info(buf, len);
    size_t offset_at = info + 4 + 2 * 8 + 4; /* n_dims, ne[2], type */
    uint64_t far = 1ull << 32;
    memcpy(buf + offset_at, &far, 8);
    assert_refused(buf, len, "runs past the end");
    uint64_t odd = 160 + 3;
    memcpy(buf + offset_at, &odd, 8);
    assert_refused(buf, len, "not aligned");
    free(buf);

    /* a file whose last tensor lost its final bytes (a truncated download) */
    buf = small_file(&len, DUET_TYPE_Q8_0);
    assert_refused(buf, len - 1, "runs past the end");
    free(buf);
}

Test(gguf, unknown_and_unsupported_types_are_named)
{
    size_t len;
    uint8_t *buf = small_file(&len, 99);
    assert_refused(buf, len, "unknown type 99");
    free(buf);
    buf = small_file(&len, DUET_TYPE_Q8_0);
    size_t info = tensor_b_info(buf, len);
    uint32_t iq2 = 16;
    memcpy(buf + info + 4 + 16, &iq2, 4);
    assert_refused(buf, len, "IQ2_XXS");
    free(buf);
}

Test(gguf, impossible_shapes)
{
    size_t len;
    uint8_t *buf = small_file(&len, DUET_TYPE_Q8_0);
    size_t info = tensor_b_info(buf, len);
    uint32_t dims = 7;
    memcpy(buf + info, &dims, 4);
    assert_refused(buf, len, "dimensions");
    free(buf);
    buf = small_file(&len, DUET_TYPE_Q8_0);
    uint64_t ne0 = 63; /* not whole Q8_0 blocks of 32 */
    memcpy(buf + info + 4, &ne0, 8);
    assert_refused(buf, len, "whole Q8_0 blocks");
    uint64_t zero = 0;
    memcpy(buf + info + 4, &zero, 8);
    assert_refused(buf, len, "impossible shape");
    free(buf);
}

Test(gguf, duplicate_tensor_names)
{
    duet_gguf_writer *w = duet_gguf_writer_new();
    int64_t ne[1] = {32};
    duet_gguf_writer_tensor(w, "same", DUET_TYPE_F32, 1, ne, NULL, NULL);
    duet_gguf_writer_tensor(w, "same", DUET_TYPE_F32, 1, ne, NULL, NULL);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(duet_gguf_writer_to_memory(w, &buf, &len, NULL), DUET_OK);
    duet_gguf_writer_free(w);
    assert_refused(buf, len, "appears twice");
    free(buf);
}

Test(gguf, random_corruption_never_crashes)
{
    size_t len;
    uint8_t *good = small_file(&len, DUET_TYPE_Q8_0);
    uint8_t *buf = malloc(len);
    uint32_t x = 12345;
    int accepted = 0;
    for (int round = 0; round < 3000; round++) {
        memcpy(buf, good, len);
        for (int k = 0; k < 1 + round % 4; k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf[x % len] = (uint8_t)(x >> 8);
        }
        duet_gguf *g = NULL;
        if (duet_gguf_open_memory(buf, len, &g, NULL) == DUET_OK) {
            accepted++; /* e.g. a flipped byte inside tensor data: still a valid file */
            for (uint64_t i = 0; i < duet_gguf_tensor_count(g); i++) {
                const duet_gguf_tensor *t = duet_gguf_tensor_at(g, i);
                cr_assert_leq((const uint8_t *)t->data + t->bytes,
                              (const uint8_t *)duet_gguf_mapping(g) + len);
            }
            duet_gguf_close(g);
        }
    }
    cr_assert_gt(accepted, 0);
    cr_assert_lt(accepted, 3000);
    free(buf);
    free(good);
}

Test(gguf, missing_file_is_not_found)
{
    duet_gguf *g;
    duet_status st;
    cr_assert_eq(duet_gguf_open("/nonexistent/model.gguf", &g, &st), DUET_NOT_FOUND);
    cr_assert(strstr(st.message, "/nonexistent/model.gguf"), "%s", st.message);
}
