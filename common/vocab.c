#include "vocab.h"

#include <stdlib.h>
#include <string.h>

void duet_vocab_init(duet_vocab *v, duet_vocab_kind kind)
{
    memset(v, 0, sizeof *v);
    v->kind = kind;
    v->bos_id = v->eos_id = v->unk_id = v->pad_id = DUET_TOKEN_NONE;
}

void duet_vocab_free(duet_vocab *v)
{
    free(v->pre);
    free(v->text);
    free(v->text_off);
    free(v->scores);
    free(v->types);
    free(v->merge_text);
    free(v->merge_off);
    free(v->eot_ids);
    duet_vocab_init(v, v->kind);
}

const char *duet_vocab_kind_name(duet_vocab_kind kind)
{
    switch (kind) {
    case DUET_VOCAB_SPM:
        return "SPM";
    case DUET_VOCAB_BPE:
        return "BPE";
    }
    return "unknown";
}

/* Grows *p (elements of size elem) to hold at least need elements. */
static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (*p && need <= *cap) {
        return 1;
    }
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        n *= 2;
    }
    if (n > SIZE_MAX / elem) {
        return 0;
    }
    void *q = realloc(*p, n * elem);
    if (!q) {
        return 0;
    }
    *p = q;
    *cap = n;
    return 1;
}

static duet_code oom(duet_status *st)
{
    return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory building the vocabulary");
}

/* Token arrays share one capacity; offsets hold one entry more (the first is 0). A failed
 * realloc leaves every array at least as large as the recorded capacity. */
static int grow_tokens(duet_vocab *v, size_t need)
{
    if (need <= v->cap_.tokens) {
        return 1;
    }
    size_t n = v->cap_.tokens ? v->cap_.tokens : 16;
    while (n < need) {
        n *= 2;
    }
    void *p = realloc(v->text_off, (n + 1) * sizeof *v->text_off);
    if (!p) {
        return 0;
    }
    v->text_off = p;
    if (!(p = realloc(v->scores, n * sizeof *v->scores))) {
        return 0;
    }
    v->scores = p;
    if (!(p = realloc(v->types, n * sizeof *v->types))) {
        return 0;
    }
    v->types = p;
    v->cap_.tokens = n;
    return 1;
}

static int grow_merges(duet_vocab *v, size_t need)
{
    if (need <= v->cap_.merges) {
        return 1;
    }
    size_t n = v->cap_.merges ? v->cap_.merges : 16;
    while (n < need) {
        n *= 2;
    }
    void *p = realloc(v->merge_off, (n + 1) * sizeof *v->merge_off);
    if (!p) {
        return 0;
    }
    v->merge_off = p;
    v->cap_.merges = n;
    return 1;
}

duet_code duet_vocab_reserve(duet_vocab *v, uint32_t n_tokens, uint64_t text_bytes,
                             uint32_t n_merges, uint64_t merge_bytes, duet_status *st)
{
    if (text_bytes > SIZE_MAX / 2 || merge_bytes > SIZE_MAX / 2) {
        return oom(st);
    }
    if (!grow_tokens(v, n_tokens) || !grow((void **)&v->text, &v->cap_.text, text_bytes, 1) ||
        !grow((void **)&v->merge_text, &v->cap_.merge_text, merge_bytes, 1) ||
        !grow_merges(v, n_merges)) {
        return oom(st);
    }
    return DUET_OK;
}

duet_code duet_vocab_set_pre(duet_vocab *v, const char *pre, size_t len, duet_status *st)
{
    if (len && memchr(pre, '\0', len)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "the pre-tokenizer name contains a NUL byte");
    }
    char *p = malloc(len + 1);
    if (!p) {
        return oom(st);
    }
    if (len) {
        memcpy(p, pre, len);
    }
    p[len] = '\0';
    free(v->pre);
    v->pre = p;
    return DUET_OK;
}

duet_code duet_vocab_add_token(duet_vocab *v, const char *text, size_t len, float score, int type,
                               duet_status *st)
{
    if (type < DUET_TOKEN_UNDEFINED || type > DUET_TOKEN_BYTE) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "token %u has type %d; known types are 0..6", v->n_tokens, type);
    }
    if (v->n_tokens >= INT32_MAX) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "too many tokens (more than %d)",
                               INT32_MAX);
    }
    size_t used = v->n_tokens ? (size_t)v->text_off[v->n_tokens] : 0;
    if (!grow_tokens(v, (size_t)v->n_tokens + 1) ||
        !grow((void **)&v->text, &v->cap_.text, used + len, 1)) {
        return oom(st);
    }
    if (len) {
        memcpy(v->text + used, text, len);
    }
    v->text_off[0] = 0;
    v->text_off[v->n_tokens + 1] = used + len;
    v->scores[v->n_tokens] = score;
    v->types[v->n_tokens] = (uint8_t)type;
    v->n_tokens++;
    return DUET_OK;
}

duet_code duet_vocab_add_merge(duet_vocab *v, const char *text, size_t len, duet_status *st)
{
    if (v->n_merges >= INT32_MAX) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "too many merges (more than %d)",
                               INT32_MAX);
    }
    size_t used = v->n_merges ? (size_t)v->merge_off[v->n_merges] : 0;
    if (!grow_merges(v, (size_t)v->n_merges + 1) ||
        !grow((void **)&v->merge_text, &v->cap_.merge_text, used + len, 1)) {
        return oom(st);
    }
    if (len) {
        memcpy(v->merge_text + used, text, len);
    }
    v->merge_off[0] = 0;
    v->merge_off[v->n_merges + 1] = used + len;
    v->n_merges++;
    return DUET_OK;
}

duet_code duet_vocab_add_eot(duet_vocab *v, int32_t id, duet_status *st)
{
    if (id == v->eos_id) {
        return DUET_OK;
    }
    for (uint32_t i = 0; i < v->n_eot; i++) {
        if (v->eot_ids[i] == id) {
            return DUET_OK;
        }
    }
    if (!grow((void **)&v->eot_ids, &v->cap_.eot, (size_t)v->n_eot + 1, sizeof *v->eot_ids)) {
        return oom(st);
    }
    v->eot_ids[v->n_eot++] = id;
    return DUET_OK;
}

int32_t duet_vocab_id_or_none(const duet_vocab *v, int64_t id)
{
    return id >= 0 && id < (int64_t)v->n_tokens ? (int32_t)id : DUET_TOKEN_NONE;
}

const char *duet_vocab_token(const duet_vocab *v, uint32_t id, size_t *len)
{
    *len = (size_t)(v->text_off[id + 1] - v->text_off[id]);
    return v->text + v->text_off[id];
}

const char *duet_vocab_merge(const duet_vocab *v, uint32_t i, size_t *len)
{
    *len = (size_t)(v->merge_off[i + 1] - v->merge_off[i]);
    return v->merge_text + v->merge_off[i];
}

/* The texts llama.cpp (at the vocab snapshot of SOURCES.md) treats as end of generation. */
static const char *const eot_texts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "<\xef\xbd\x9c"
    "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", /* DeepSeek */
    "<|fim_pad|>",
    "<fim-pad>",
    "<PAD>",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<|file_sep|>",
};

duet_code duet_vocab_detect_eot(duet_vocab *v, duet_status *st)
{
    for (uint32_t id = 0; id < v->n_tokens; id++) {
        size_t len;
        const char *t = duet_vocab_token(v, id, &len);
        if (len < 5 || t[0] != '<') {
            continue;
        }
        for (size_t k = 0; k < sizeof eot_texts / sizeof eot_texts[0]; k++) {
            if (strlen(eot_texts[k]) == len && memcmp(eot_texts[k], t, len) == 0) {
                duet_code c = duet_vocab_add_eot(v, (int32_t)id, st);
                if (c != DUET_OK) {
                    return c;
                }
                v->types[id] = DUET_TOKEN_CONTROL;
                break;
            }
        }
    }
    return DUET_OK;
}

static duet_code check_id(const duet_vocab *v, const char *what, int32_t id, duet_status *st)
{
    if (id != DUET_TOKEN_NONE && (id < 0 || (uint32_t)id >= v->n_tokens)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "the %s token id %d is outside the vocabulary (%u tokens)", what, id,
                               v->n_tokens);
    }
    return DUET_OK;
}

duet_code duet_vocab_check(const duet_vocab *v, duet_status *st)
{
    if (v->kind != DUET_VOCAB_SPM && v->kind != DUET_VOCAB_BPE) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "unknown tokenizer kind %d (expected SPM or BPE)", (int)v->kind);
    }
    if (v->n_tokens == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "the vocabulary has no tokens");
    }
    duet_code c;
    if ((c = check_id(v, "BOS", v->bos_id, st)) != DUET_OK ||
        (c = check_id(v, "EOS", v->eos_id, st)) != DUET_OK ||
        (c = check_id(v, "unknown", v->unk_id, st)) != DUET_OK ||
        (c = check_id(v, "padding", v->pad_id, st)) != DUET_OK) {
        return c;
    }
    for (uint32_t i = 0; i < v->n_eot; i++) {
        if ((c = check_id(v, "end-of-turn", v->eot_ids[i], st)) != DUET_OK) {
            return c;
        }
        if (v->eot_ids[i] == DUET_TOKEN_NONE) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT, "an end-of-turn id is missing");
        }
    }
    if (v->add_bos && v->bos_id == DUET_TOKEN_NONE) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "add_bos is set but the vocabulary has no BOS token");
    }
    if (v->add_eos && v->eos_id == DUET_TOKEN_NONE) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "add_eos is set but the vocabulary has no EOS token");
    }
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        if (v->types[i] > DUET_TOKEN_BYTE) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT, "token %u has type %u", i,
                                   v->types[i]);
        }
    }
    return DUET_OK;
}
