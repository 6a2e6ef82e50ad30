#include "vocab_gguf.h"

#include <stdint.h>
#include <string.h>

#include "log.h"
#include "pretokenize.h"

#define K_MODEL "tokenizer.ggml.model"
#define K_PRE "tokenizer.ggml.pre"
#define K_TOKENS "tokenizer.ggml.tokens"
#define K_SCORES "tokenizer.ggml.scores"
#define K_TYPES "tokenizer.ggml.token_type"
#define K_MERGES "tokenizer.ggml.merges"

/* The tokenizer models llama.cpp knows that duet does not implement. */
static const struct {
    const char *model, *what;
} UNSUPPORTED[] = {
    {"bert", "WordPiece"},         {"t5", "Unigram"}, {"rwkv", "RWKV"}, {"none", "no vocabulary"},
    {"no_vocab", "no vocabulary"},
};

static duet_code read_kind(const duet_gguf *g, duet_vocab_kind *kind, duet_status *st)
{
    duet_gguf_string m;
    if (!duet_gguf_get_string(g, K_MODEL, &m)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               duet_gguf_find(g, K_MODEL) < 0 ? "the file has no " K_MODEL
                                                              : K_MODEL " is not a string");
    }
    if (duet_gguf_string_eq(m, "llama")) {
        *kind = DUET_VOCAB_SPM;
        return DUET_OK;
    }
    if (duet_gguf_string_eq(m, "gpt2")) {
        *kind = DUET_VOCAB_BPE;
        return DUET_OK;
    }
    int len = m.len > 64 ? 64 : (int)m.len;
    for (size_t i = 0; i < sizeof UNSUPPORTED / sizeof UNSUPPORTED[0]; i++) {
        if (duet_gguf_string_eq(m, UNSUPPORTED[i].model)) {
            return duet_status_set(st, DUET_UNIMPLEMENTED,
                                   "tokenizer model '%.*s' (%s) is not supported; duet supports "
                                   "'llama' (SentencePiece) and 'gpt2' (byte-level BPE)",
                                   len, m.ptr, UNSUPPORTED[i].what);
        }
    }
    return duet_status_set(st, DUET_INVALID_ARGUMENT,
                           "unknown tokenizer model '%.*s' in " K_MODEL
                           "; duet supports 'llama' (SentencePiece) and 'gpt2' (byte-level BPE)",
                           len, m.ptr);
}

/* An array key's length, checked against the element type wanted. */
static duet_code array_of(const duet_gguf *g, const char *key, bool numeric, uint64_t *count,
                          duet_status *st)
{
    duet_gguf_value_type et;
    if (!duet_gguf_get_array(g, key, &et, count)) {
        return duet_status_set(
            st, DUET_INVALID_ARGUMENT,
            duet_gguf_find(g, key) < 0 ? "the file has no %s" : "%s is not an array", key);
    }
    bool ok = numeric ? (et != DUET_GGUF_STRING && et != DUET_GGUF_ARRAY && et != DUET_GGUF_BOOL)
                      : et == DUET_GGUF_STRING;
    if (!ok) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "%s is an array of the wrong type (%d)",
                               key, (int)et);
    }
    return DUET_OK;
}

/* A special-token id key: kept when in range, else the default stays (llama.cpp's rule). */
static void read_id(const duet_gguf *g, const char *key, const duet_vocab *v, int32_t *id)
{
    uint64_t x;
    if (!duet_gguf_get_u64(g, key, &x)) {
        return;
    }
    if (x < v->n_tokens) {
        *id = (int32_t)x;
    } else if (x != UINT32_MAX) {
        duet_log_warn("vocabulary: %s = %llu is outside the vocabulary (%u tokens); ignored", key,
                      (unsigned long long)x, v->n_tokens);
    }
}

static duet_code read_tokens(const duet_gguf *g, duet_vocab *v, duet_status *st)
{
    uint64_t n, n_scores = 0, n_types = 0;
    duet_code c = array_of(g, K_TOKENS, false, &n, st);
    if (c != DUET_OK) {
        return c;
    }
    if (n == 0 || n > INT32_MAX) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, K_TOKENS " has %llu entries",
                               (unsigned long long)n);
    }
    bool has_scores = duet_gguf_find(g, K_SCORES) >= 0, has_types = duet_gguf_find(g, K_TYPES) >= 0;
    if (has_scores && (c = array_of(g, K_SCORES, true, &n_scores, st)) != DUET_OK) {
        return c;
    }
    if (has_types && (c = array_of(g, K_TYPES, true, &n_types, st)) != DUET_OK) {
        return c;
    }
    if (has_scores && n_scores != n) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               K_SCORES " has %llu entries but " K_TOKENS " has %llu",
                               (unsigned long long)n_scores, (unsigned long long)n);
    }
    if (has_types && n_types != n) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               K_TYPES " has %llu entries but " K_TOKENS " has %llu",
                               (unsigned long long)n_types, (unsigned long long)n);
    }
    if ((c = duet_vocab_reserve(v, (uint32_t)n, n * 8, 0, 0, st)) != DUET_OK) {
        return c;
    }
    for (uint64_t i = 0; i < n; i++) {
        duet_gguf_string s;
        float score = 0.0f;
        int64_t type = DUET_TOKEN_NORMAL;
        if (!duet_gguf_array_string(g, K_TOKENS, i, &s) ||
            (has_scores && !duet_gguf_array_f32(g, K_SCORES, i, &score)) ||
            (has_types && !duet_gguf_array_i64(g, K_TYPES, i, &type))) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT, "cannot read token %llu",
                                   (unsigned long long)i);
        }
        if (type < DUET_TOKEN_UNDEFINED || type > DUET_TOKEN_BYTE) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   K_TYPES "[%llu] is %lld; known types are 0..6",
                                   (unsigned long long)i, (long long)type);
        }
        if (s.len > UINT32_MAX) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT, "token %llu is too long",
                                   (unsigned long long)i);
        }
        if ((c = duet_vocab_add_token(v, s.ptr, (size_t)s.len, score, (int)type, st)) != DUET_OK) {
            return c;
        }
    }
    return DUET_OK;
}

static duet_code read_merges(const duet_gguf *g, duet_vocab *v, duet_status *st)
{
    uint64_t n;
    duet_code c = array_of(g, K_MERGES, false, &n, st);
    if (c != DUET_OK) {
        return c;
    }
    if (n > INT32_MAX) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, K_MERGES " has %llu entries",
                               (unsigned long long)n);
    }
    for (uint64_t i = 0; i < n; i++) {
        duet_gguf_string s;
        if (!duet_gguf_array_string(g, K_MERGES, i, &s)) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT, "cannot read merge %llu",
                                   (unsigned long long)i);
        }
        if ((c = duet_vocab_add_merge(v, s.ptr, (size_t)s.len, st)) != DUET_OK) {
            return c;
        }
    }
    return DUET_OK;
}

static duet_code fill(const duet_gguf *g, duet_vocab *v, duet_status *st)
{
    duet_vocab_kind kind = DUET_VOCAB_SPM;
    duet_code c = read_kind(g, &kind, st);
    if (c != DUET_OK) {
        return c;
    }
    duet_vocab_init(v, kind);

    duet_gguf_string pre;
    if (duet_gguf_get_string(g, K_PRE, &pre) &&
        (c = duet_vocab_set_pre(v, pre.ptr, (size_t)pre.len, st)) != DUET_OK) {
        return c;
    }
    duet_pre_traits traits = {false, false, false};
    if (kind == DUET_VOCAB_BPE) {
        if (!v->pre || !*v->pre) {
            duet_log_warn("vocabulary: no " K_PRE "; using the 'default' pre-tokenizer (token "
                          "boundaries may differ from the model's own tokenizer)");
        }
        if (!duet_pre_lookup(v->pre, &traits)) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "unknown pre-tokenizer '%s' (" K_PRE "); supported: %s", v->pre,
                                   duet_pre_supported());
        }
    }

    if ((c = read_tokens(g, v, st)) != DUET_OK) {
        return c;
    }
    if (kind == DUET_VOCAB_BPE && (c = read_merges(g, v, st)) != DUET_OK) {
        return c;
    }

    if (kind == DUET_VOCAB_SPM) {
        v->bos_id = duet_vocab_id_or_none(v, 1);
        v->eos_id = duet_vocab_id_or_none(v, 2);
        v->unk_id = duet_vocab_id_or_none(v, 0);
        v->add_bos = true;
        v->add_space_prefix = true;
    } else {
        v->bos_id = v->eos_id = duet_vocab_id_or_none(v, 11);
        v->add_bos = traits.add_bos;
    }
    read_id(g, "tokenizer.ggml.bos_token_id", v, &v->bos_id);
    read_id(g, "tokenizer.ggml.eos_token_id", v, &v->eos_id);
    read_id(g, "tokenizer.ggml.unknown_token_id", v, &v->unk_id);
    read_id(g, "tokenizer.ggml.padding_token_id", v, &v->pad_id);
    bool b;
    if (duet_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b)) {
        v->add_bos = b;
    }
    if (duet_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b)) {
        v->add_eos = b;
    }
    if (duet_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b)) {
        v->add_space_prefix = b;
    }
    if (v->add_bos && v->bos_id == DUET_TOKEN_NONE) {
        duet_log_warn("vocabulary: add_bos is set but there is no BOS token; not adding one");
        v->add_bos = false;
    }
    if (v->add_eos && v->eos_id == DUET_TOKEN_NONE) {
        duet_log_warn("vocabulary: add_eos is set but there is no EOS token; not adding one");
        v->add_eos = false;
    }

    static const char *const eot_keys[] = {"tokenizer.ggml.eot_token_id",
                                           "tokenizer.ggml.eom_token_id"};
    for (size_t i = 0; i < 2; i++) {
        int32_t id = DUET_TOKEN_NONE;
        read_id(g, eot_keys[i], v, &id);
        if (id != DUET_TOKEN_NONE && (c = duet_vocab_add_eot(v, id, st)) != DUET_OK) {
            return c;
        }
        if (id != DUET_TOKEN_NONE) {
            v->types[id] = DUET_TOKEN_CONTROL;
        }
    }
    if ((c = duet_vocab_detect_eot(v, st)) != DUET_OK) {
        return c;
    }
    return duet_vocab_check(v, st);
}

duet_code duet_vocab_from_gguf(const duet_gguf *g, duet_vocab *v, duet_status *st)
{
    duet_vocab_init(v, DUET_VOCAB_SPM);
    duet_code c = fill(g, v, st);
    if (c != DUET_OK) {
        duet_vocab_free(v);
    }
    return c;
}
