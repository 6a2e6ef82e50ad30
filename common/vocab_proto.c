#include "vocab_proto.h"

#include <stdlib.h>
#include <string.h>

#define NONE_ON_WIRE 0xFFFFFFFFu

static uint32_t id_to_wire(int32_t id)
{
    return id == DUET_TOKEN_NONE ? NONE_ON_WIRE : (uint32_t)id;
}

duet_code duet_vocab_to_proto(const duet_vocab *v, Duet__V1__Vocabulary *msg, duet_status *st)
{
    duet__v1__vocabulary__init(msg);
    msg->kind = v->kind == DUET_VOCAB_SPM ? DUET__V1__TOKENIZER_KIND__TOKENIZER_KIND_SPM
                                          : DUET__V1__TOKENIZER_KIND__TOKENIZER_KIND_BPE;
    msg->pre = v->pre ? v->pre : "";
    size_t n = v->n_tokens;
    msg->tokens = calloc(n ? n : 1, sizeof *msg->tokens);
    msg->scores = calloc(n ? n : 1, sizeof *msg->scores);
    msg->token_types = calloc(n ? n : 1, sizeof *msg->token_types);
    msg->merges = calloc(v->n_merges ? v->n_merges : 1, sizeof *msg->merges);
    msg->eot_ids = calloc(v->n_eot ? v->n_eot : 1, sizeof *msg->eot_ids);
    if (!msg->tokens || !msg->scores || !msg->token_types || !msg->merges || !msg->eot_ids) {
        duet_vocab_proto_release(msg);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory for the vocabulary");
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *text = duet_vocab_token(v, (uint32_t)i, &len);
        msg->tokens[i] = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)text};
        msg->scores[i] = v->scores[i];
        msg->token_types[i] = v->types[i];
    }
    msg->n_tokens = msg->n_scores = msg->n_token_types = n;
    /* merges travel as strings: copy each with its NUL */
    for (uint32_t i = 0; i < v->n_merges; i++) {
        size_t len;
        const char *text = duet_vocab_merge(v, i, &len);
        msg->merges[i] = strndup(text, len);
        if (!msg->merges[i]) {
            msg->n_merges = i;
            duet_vocab_proto_release(msg);
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory for the merges");
        }
    }
    msg->n_merges = v->n_merges;
    for (uint32_t i = 0; i < v->n_eot; i++) {
        msg->eot_ids[i] = id_to_wire(v->eot_ids[i]);
    }
    msg->n_eot_ids = v->n_eot;
    msg->bos_id = id_to_wire(v->bos_id);
    msg->eos_id = id_to_wire(v->eos_id);
    msg->unk_id = id_to_wire(v->unk_id);
    msg->pad_id = id_to_wire(v->pad_id);
    msg->add_bos = v->add_bos;
    msg->add_eos = v->add_eos;
    msg->add_space_prefix = v->add_space_prefix;
    return DUET_OK;
}

void duet_vocab_proto_release(Duet__V1__Vocabulary *msg)
{
    for (size_t i = 0; msg->merges && i < msg->n_merges; i++) {
        free(msg->merges[i]);
    }
    free(msg->merges);
    free(msg->tokens);
    free(msg->scores);
    free(msg->token_types);
    free(msg->eot_ids);
    duet__v1__vocabulary__init(msg);
}

static duet_code fail(duet_vocab *v, duet_status *st, const char *what)
{
    duet_vocab_free(v);
    return duet_status_set(st, DUET_INVALID_ARGUMENT, "Vocabulary message: %s", what);
}

/* A wire id: 0xFFFFFFFF is none; anything else must be a token. */
static bool id_from_wire(const duet_vocab *v, uint32_t wire, int32_t *id)
{
    if (wire == NONE_ON_WIRE) {
        *id = DUET_TOKEN_NONE;
        return true;
    }
    *id = (int32_t)wire;
    return wire < v->n_tokens;
}

duet_code duet_vocab_from_proto(const Duet__V1__Vocabulary *msg, duet_vocab *v, duet_status *st)
{
    duet_vocab_kind kind;
    if (msg->kind == DUET__V1__TOKENIZER_KIND__TOKENIZER_KIND_SPM) {
        kind = DUET_VOCAB_SPM;
    } else if (msg->kind == DUET__V1__TOKENIZER_KIND__TOKENIZER_KIND_BPE) {
        kind = DUET_VOCAB_BPE;
    } else {
        duet_vocab_init(v, DUET_VOCAB_SPM);
        return fail(v, st, "unknown tokenizer kind");
    }
    duet_vocab_init(v, kind);
    const size_t n = msg->n_tokens;
    if (n == 0 || n > INT32_MAX) {
        return fail(v, st, "token count out of range");
    }
    if (msg->n_scores != 0 && msg->n_scores != n) {
        return fail(v, st, "scores and tokens differ in length");
    }
    if (msg->n_token_types != 0 && msg->n_token_types != n) {
        return fail(v, st, "token_types and tokens differ in length");
    }
    if (msg->pre && msg->pre[0] != '\0' &&
        duet_vocab_set_pre(v, msg->pre, strlen(msg->pre), st) != DUET_OK) {
        duet_vocab_free(v);
        return st->code;
    }
    for (size_t i = 0; i < n; i++) {
        const int type = msg->n_token_types ? msg->token_types[i] : DUET_TOKEN_NORMAL;
        if (type < 0 || type > DUET_TOKEN_BYTE) {
            return fail(v, st, "token type outside 0..6");
        }
        const float score = msg->n_scores ? msg->scores[i] : 0.0f;
        if (duet_vocab_add_token(v, (const char *)msg->tokens[i].data, msg->tokens[i].len, score,
                                 type, st) != DUET_OK) {
            duet_vocab_free(v);
            return st->code;
        }
    }
    for (size_t i = 0; i < msg->n_merges; i++) {
        if (duet_vocab_add_merge(v, msg->merges[i], strlen(msg->merges[i]), st) != DUET_OK) {
            duet_vocab_free(v);
            return st->code;
        }
    }
    if (!id_from_wire(v, msg->bos_id, &v->bos_id) || !id_from_wire(v, msg->eos_id, &v->eos_id) ||
        !id_from_wire(v, msg->unk_id, &v->unk_id) || !id_from_wire(v, msg->pad_id, &v->pad_id)) {
        return fail(v, st, "a special token id is out of range");
    }
    for (size_t i = 0; i < msg->n_eot_ids; i++) {
        int32_t id;
        if (!id_from_wire(v, msg->eot_ids[i], &id) || id == DUET_TOKEN_NONE) {
            return fail(v, st, "an end-of-turn id is out of range");
        }
        if (duet_vocab_add_eot(v, id, st) != DUET_OK) {
            duet_vocab_free(v);
            return st->code;
        }
    }
    v->add_bos = msg->add_bos;
    v->add_eos = msg->add_eos;
    v->add_space_prefix = msg->add_space_prefix;
    if (duet_vocab_check(v, st) != DUET_OK) {
        duet_vocab_free(v);
        return st->code;
    }
    return DUET_OK;
}
