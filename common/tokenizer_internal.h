/* Private to the tokenizer files (tokenizer.c, tokenizer_spm.c, tokenizer_bpe.c,
 * tokenizer_special.c, detokenize.c): the tokenizer's data and the pieces they share. */
#ifndef DUET_TOKENIZER_INTERNAL_H
#define DUET_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bytemap.h"
#include "pretokenize.h"
#include "status.h"
#include "tokenizer.h"
#include "vocab.h"

enum { TOK_EOG = 1u }; /* duet_tokenizer.flags bits */

/* Byte trie of the special tokens (control, unknown and user-defined types). */
typedef struct {
    uint32_t child;   /* first child node, 0 = none (node 0 is the root) */
    uint32_t sibling; /* next sibling, 0 = none */
    int32_t token;    /* token ending here, or -1 */
    uint32_t rank;    /* its priority: longer first, then lower id (special_by_rank) */
    unsigned char byte;
} special_node;

struct duet_tokenizer {
    duet_vocab_kind kind;
    uint32_t n_tokens;
    char *text;         /* token texts back to back */
    uint64_t *text_off; /* n_tokens + 1 */
    float *scores;
    uint8_t *types; /* duet_token_type, with end-of-turn tokens forced to CONTROL */
    uint8_t *flags; /* TOK_* */
    int32_t bos, eos, unk;
    bool add_bos, add_eos, add_space_prefix;
    bool clean_spaces, ignore_merges;

    duet_bytemap token_map; /* text -> id (a later duplicate wins, as in llama.cpp) */

    /* SPM */
    int32_t byte_token[256]; /* <0xXX> (or the byte itself as a token, or unk, or -1) */

    /* BPE */
    char *merge_text;
    duet_bytemap merge_map; /* "a b" -> rank, split after a; the first of duplicates wins */
    duet_pretok *pretok;

    /* special tokens */
    special_node *special;
    uint32_t n_special_nodes;
    uint32_t special_root[256]; /* the root's child for each first byte, 0 = none */
    uint32_t n_special;
    int32_t *special_by_rank;   /* special token ids in priority order */
    uint8_t special_first[256]; /* bit 1: a user-defined token starts with this byte,
                                   bit 2: a control/unknown one does */

    /* detokenizer: each token's piece with special = true */
    char *piece;
    uint64_t *piece_off;
};

/* A growing array of ids. */
typedef struct {
    int32_t *v;
    size_t n, cap;
} tok_ids;

bool tok_ids_push(tok_ids *a, int32_t id);

static inline const char *tok_text(const duet_tokenizer *t, int32_t id, size_t *len)
{
    *len = (size_t)(t->text_off[id + 1] - t->text_off[id]);
    return t->text + t->text_off[id];
}

/* A stretch of the input: raw text (token < 0) or a special token cut out of it. */
typedef struct {
    size_t off, len;
    int32_t token;
} tok_fragment;

/* tokenizer_special.c */
duet_code tok_special_build(duet_tokenizer *t, duet_status *st);
/* Cuts the special tokens out of text[0..len) (len > 0; llama.cpp's tokenizer_st_partition):
 * *frags gets a malloc'd array of *n_frags fragments in text order. */
duet_code tok_special_split(const duet_tokenizer *t, const char *text, size_t len,
                            bool parse_special, tok_fragment **frags, size_t *n_frags,
                            duet_status *st);

/* tokenizer_spm.c: one raw fragment; prefix_space puts a space before it. */
duet_code tok_spm_prepare(duet_tokenizer *t, duet_status *st);
duet_code tok_spm_encode(const duet_tokenizer *t, const char *text, size_t len, bool prefix_space,
                         tok_ids *out, duet_status *st);

/* tokenizer_bpe.c */
duet_code tok_bpe_prepare(duet_tokenizer *t, const duet_vocab *v, duet_status *st);
duet_code tok_bpe_encode(const duet_tokenizer *t, const char *text, size_t len, tok_ids *out,
                         duet_status *st);

/* detokenize.c */
duet_code tok_pieces_build(duet_tokenizer *t, duet_status *st);

#endif
