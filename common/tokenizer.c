/* Tokenizer construction, the accessors, and duet_tokenize's outer loop (special tokens,
 * BOS/EOS, dispatch to SPM or BPE per fragment). */
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

bool tok_ids_push(tok_ids *a, int32_t id)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) {
            return false;
        }
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return true;
}

void duet_tokenizer_free(duet_tokenizer *t)
{
    if (!t) {
        return;
    }
    free(t->text);
    free(t->text_off);
    free(t->scores);
    free(t->types);
    free(t->flags);
    duet_bytemap_free(&t->token_map);
    free(t->merge_text);
    duet_bytemap_free(&t->merge_map);
    duet_pretok_free(t->pretok);
    free(t->special);
    free(t->special_by_rank);
    free(t->piece);
    free(t->piece_off);
    free(t);
}

static duet_code oom(duet_status *st)
{
    return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory building the tokenizer");
}

duet_code duet_tokenizer_create(const duet_vocab *v, duet_tokenizer **out, duet_status *st)
{
    *out = NULL;
    duet_code c = duet_vocab_check(v, st);
    if (c != DUET_OK) {
        return c;
    }
    duet_pre_traits traits = {false, false, false};
    if (v->kind == DUET_VOCAB_BPE && !duet_pre_lookup(v->pre, &traits)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "unknown pre-tokenizer '%s' (tokenizer.ggml.pre); supported: %s",
                               v->pre, duet_pre_supported());
    }
    duet_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        return oom(st);
    }
    uint32_t n = v->n_tokens;
    size_t text_bytes = (size_t)v->text_off[n];
    t->kind = v->kind;
    t->n_tokens = n;
    t->text = malloc(text_bytes + 1);
    t->text_off = malloc(((size_t)n + 1) * sizeof *t->text_off);
    t->scores = malloc((size_t)n * sizeof *t->scores);
    t->types = malloc(n);
    t->flags = calloc(n, 1);
    if (!t->text || !t->text_off || !t->scores || !t->types || !t->flags) {
        duet_tokenizer_free(t);
        return oom(st);
    }
    memcpy(t->text, v->text, text_bytes);
    memcpy(t->text_off, v->text_off, ((size_t)n + 1) * sizeof *t->text_off);
    memcpy(t->scores, v->scores, (size_t)n * sizeof *t->scores);
    memcpy(t->types, v->types, n);
    t->bos = v->bos_id;
    t->eos = v->eos_id;
    t->unk = v->unk_id;
    t->add_bos = v->add_bos;
    t->add_eos = v->add_eos;
    t->add_space_prefix = v->add_space_prefix;
    t->clean_spaces = traits.clean_spaces; /* false for SPM, as in llama.cpp */
    t->ignore_merges = traits.ignore_merges;

    /* End-of-turn tokens are control tokens whatever the file says (llama.cpp overrides
     * them too), so plain text never turns into one. */
    for (uint32_t i = 0; i < v->n_eot; i++) {
        t->types[v->eot_ids[i]] = DUET_TOKEN_CONTROL;
        t->flags[v->eot_ids[i]] |= TOK_EOG;
    }
    if (t->eos != DUET_TOKEN_NONE) {
        t->flags[t->eos] |= TOK_EOG;
    }

    if ((c = duet_bytemap_init(&t->token_map, n, st)) != DUET_OK) {
        duet_tokenizer_free(t);
        return c;
    }
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const char *s = tok_text(t, (int32_t)i, &len);
        if ((c = duet_bytemap_put(&t->token_map, s, len, 0, (int32_t)i, true, st)) != DUET_OK) {
            duet_tokenizer_free(t);
            return c;
        }
    }

    c = t->kind == DUET_VOCAB_SPM ? tok_spm_prepare(t, st) : tok_bpe_prepare(t, v, st);
    if (c == DUET_OK) {
        c = tok_special_build(t, st);
    }
    if (c == DUET_OK) {
        c = tok_pieces_build(t, st);
    }
    if (c != DUET_OK) {
        duet_tokenizer_free(t);
        return c;
    }
    *out = t;
    return DUET_OK;
}

duet_vocab_kind duet_tokenizer_kind(const duet_tokenizer *t)
{
    return t->kind;
}

uint32_t duet_tokenizer_n_tokens(const duet_tokenizer *t)
{
    return t->n_tokens;
}

int32_t duet_tokenizer_bos(const duet_tokenizer *t)
{
    return t->bos;
}

int32_t duet_tokenizer_eos(const duet_tokenizer *t)
{
    return t->eos;
}

bool duet_tokenizer_is_eog(const duet_tokenizer *t, int32_t id)
{
    return id >= 0 && (uint32_t)id < t->n_tokens && (t->flags[id] & TOK_EOG);
}

duet_token_type duet_tokenizer_token_type(const duet_tokenizer *t, int32_t id)
{
    return id >= 0 && (uint32_t)id < t->n_tokens ? (duet_token_type)t->types[id]
                                                 : DUET_TOKEN_UNDEFINED;
}

duet_code duet_tokenize(const duet_tokenizer *t, const char *text, size_t len, bool add_special,
                        bool parse_special, int32_t **ids, size_t *n_ids, duet_status *st)
{
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "tokenize: NULL text of %zu bytes", len);
    }
    /* Symbol indexes are int32 inside the algorithms. */
    if (len > (size_t)INT32_MAX / 4) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "tokenize: text of %zu bytes is too long (limit %d)", len,
                               INT32_MAX / 4);
    }
    tok_fragment *frags = NULL;
    size_t n_frags = 0;
    duet_code c = DUET_OK;
    if (len) {
        c = tok_special_split(t, text, len, parse_special, &frags, &n_frags, st);
        if (c != DUET_OK) {
            return c;
        }
    }
    tok_ids out = {0};
    if (add_special && t->add_bos && !tok_ids_push(&out, t->bos)) {
        c = oom(st);
    }
    /* SPM puts the space prefix before the first text and before text after a special
     * token, as llama.cpp does. */
    bool prev_special = true;
    for (size_t i = 0; i < n_frags && c == DUET_OK; i++) {
        const tok_fragment *f = &frags[i];
        if (f->token >= 0) {
            if (!tok_ids_push(&out, f->token)) {
                c = oom(st);
            }
            prev_special = true;
            continue;
        }
        if (t->kind == DUET_VOCAB_SPM) {
            c = tok_spm_encode(t, text + f->off, f->len, t->add_space_prefix && prev_special, &out,
                               st);
        } else {
            c = tok_bpe_encode(t, text + f->off, f->len, &out, st);
        }
        prev_special = false;
    }
    if (c == DUET_OK && add_special && t->add_eos && !tok_ids_push(&out, t->eos)) {
        c = oom(st);
    }
    free(frags);
    if (c != DUET_OK) {
        free(out.v);
        return c;
    }
    *ids = out.v;
    *n_ids = out.n;
    return DUET_OK;
}
