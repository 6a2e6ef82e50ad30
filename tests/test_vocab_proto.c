/* The Vocabulary message both ways: a GGUF vocabulary survives the trip through the wire
 * format (same tokens, merges, flags, special and end-of-turn ids), for SPM and BPE; and a
 * received message is trusted in nothing: every inconsistency is INVALID_ARGUMENT naming
 * the field, never a crash. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "vocab_gguf.h"
#include "vocab_proto.h"

static void load_vocab(const char *file, duet_vocab *v)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "../shared/models", file);
    duet_gguf *g;
    duet_status st;
    if (duet_gguf_open(path, &g, &st) != DUET_OK) {
        cr_skip_test("TEST MODELS MISSING: %s", st.message);
    }
    cr_assert_eq(duet_vocab_from_gguf(g, v, &st), DUET_OK, "%s", st.message);
    duet_gguf_close(g);
}

/* Packs and unpacks msg, as the wire does. */
static Duet__V1__Vocabulary *wire_trip(const Duet__V1__Vocabulary *msg)
{
    size_t n = duet__v1__vocabulary__get_packed_size(msg);
    uint8_t *buf = malloc(n);
    duet__v1__vocabulary__pack(msg, buf);
    Duet__V1__Vocabulary *back = duet__v1__vocabulary__unpack(NULL, n, buf);
    free(buf);
    cr_assert_not_null(back);
    return back;
}

static void check_same(const duet_vocab *a, const duet_vocab *b)
{
    cr_assert_eq(a->kind, b->kind);
    cr_assert_eq(a->n_tokens, b->n_tokens);
    cr_assert_eq(a->n_merges, b->n_merges);
    cr_assert_eq(a->bos_id, b->bos_id);
    cr_assert_eq(a->eos_id, b->eos_id);
    cr_assert_eq(a->unk_id, b->unk_id);
    cr_assert_eq(a->pad_id, b->pad_id);
    cr_assert_eq(a->add_bos, b->add_bos);
    cr_assert_eq(a->add_eos, b->add_eos);
    cr_assert_eq(a->add_space_prefix, b->add_space_prefix);
    cr_assert_eq(a->n_eot, b->n_eot);
    cr_assert_str_eq(a->pre ? a->pre : "", b->pre ? b->pre : "");
    for (uint32_t i = 0; i < a->n_tokens; i++) {
        size_t la, lb;
        const char *ta = duet_vocab_token(a, i, &la), *tb = duet_vocab_token(b, i, &lb);
        cr_assert(la == lb && memcmp(ta, tb, la) == 0, "token %u differs", i);
        cr_assert_eq(a->types[i], b->types[i], "type of %u", i);
        cr_assert_eq(a->scores[i], b->scores[i], "score of %u", i);
    }
    for (uint32_t i = 0; i < a->n_merges; i++) {
        size_t la, lb;
        const char *ma = duet_vocab_merge(a, i, &la), *mb = duet_vocab_merge(b, i, &lb);
        cr_assert(la == lb && memcmp(ma, mb, la) == 0, "merge %u differs", i);
    }
}

static void round_trip(const char *file)
{
    duet_vocab v, back;
    load_vocab(file, &v);
    Duet__V1__Vocabulary msg;
    duet_status st;
    cr_assert_eq(duet_vocab_to_proto(&v, &msg, &st), DUET_OK, "%s", st.message);
    Duet__V1__Vocabulary *wire = wire_trip(&msg);
    cr_assert_eq(duet_vocab_from_proto(wire, &back, &st), DUET_OK, "%s: %s", file, st.message);
    check_same(&v, &back);
    duet__v1__vocabulary__free_unpacked(wire, NULL);
    duet_vocab_proto_release(&msg);
    duet_vocab_free(&back);
    duet_vocab_free(&v);
}

Test(vocab_proto, spm_round_trip)
{
    round_trip("ggml-vocab-llama-spm.gguf");
}

Test(vocab_proto, bpe_round_trip)
{
    round_trip("ggml-vocab-gpt-2.gguf");
}

/* A small valid message to break one field at a time. */
static ProtobufCBinaryData toks[3] = {
    {1, (uint8_t *)"a"}, {1, (uint8_t *)"b"}, {2, (uint8_t *)"ab"}};
static float scores[3] = {0, 0, 1};
static int32_t types[3] = {1, 1, 1};

static void small_message(Duet__V1__Vocabulary *m)
{
    duet__v1__vocabulary__init(m);
    m->kind = DUET__V1__TOKENIZER_KIND__TOKENIZER_KIND_SPM;
    m->tokens = toks;
    m->n_tokens = 3;
    m->scores = scores;
    m->n_scores = 3;
    m->token_types = types;
    m->n_token_types = 3;
    m->bos_id = m->eos_id = m->unk_id = m->pad_id = 0xFFFFFFFFu;
}

static void expect_refused(const Duet__V1__Vocabulary *m, const char *needle)
{
    duet_vocab v;
    duet_status st;
    cr_assert_eq(duet_vocab_from_proto(m, &v, &st), DUET_INVALID_ARGUMENT, "accepted: %s", needle);
    cr_assert(strstr(st.message, needle), "message \"%s\" lacks \"%s\"", st.message, needle);
    cr_assert_eq(v.n_tokens, 0, "a refused vocabulary is left empty");
}

Test(vocab_proto, hostile_messages_are_refused)
{
    Duet__V1__Vocabulary m;
    duet_vocab v;
    duet_status st;
    small_message(&m);
    cr_assert_eq(duet_vocab_from_proto(&m, &v, &st), DUET_OK, "%s", st.message);
    duet_vocab_free(&v);

    small_message(&m);
    m.kind = 7;
    expect_refused(&m, "kind");
    small_message(&m);
    m.n_scores = 2;
    expect_refused(&m, "scores");
    small_message(&m);
    m.n_token_types = 1;
    expect_refused(&m, "token_types");
    small_message(&m);
    int32_t bad_types[3] = {1, 9, 1};
    m.token_types = bad_types;
    expect_refused(&m, "token type");
    small_message(&m);
    m.bos_id = 3;
    expect_refused(&m, "special token id");
    small_message(&m);
    uint32_t eot[1] = {0xFFFFFFFFu};
    m.eot_ids = eot;
    m.n_eot_ids = 1;
    expect_refused(&m, "end-of-turn");
    small_message(&m);
    m.n_tokens = 0;
    m.n_scores = m.n_token_types = 0;
    expect_refused(&m, "token count");
}
