/* duet_vocab: everything a tokenizer needs to know about a model's vocabulary, independent
 * of where it came from. The worker fills one from the GGUF file (worker/vocab_gguf.h), the
 * gateway from the Vocabulary message the worker sends (proto/duet.proto, same fields), and
 * duet_tokenizer_create (tokenizer.h) builds a tokenizer from either.
 *
 * Build one with duet_vocab_init, then the add/set functions below (they own and grow the
 * storage); set the special ids and the add_* flags by assigning the fields. Everything is
 * public for reading. Token texts are byte strings with lengths (not NUL-terminated, may
 * contain any byte). Ids are int32; DUET_TOKEN_NONE marks an absent special token (a wire
 * or file value out of range maps to it through duet_vocab_id_or_none). */
#ifndef DUET_VOCAB_H
#define DUET_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Numbered like TokenizerKind in proto/duet.proto. */
typedef enum {
    DUET_VOCAB_SPM = 1, /* SentencePiece, tokenizer.ggml.model "llama" */
    DUET_VOCAB_BPE = 2, /* byte-level BPE, tokenizer.ggml.model "gpt2" */
} duet_vocab_kind;

/* tokenizer.ggml.token_type values (llama.cpp's numbering). */
typedef enum {
    DUET_TOKEN_UNDEFINED = 0,
    DUET_TOKEN_NORMAL = 1,
    DUET_TOKEN_UNKNOWN = 2,
    DUET_TOKEN_CONTROL = 3,
    DUET_TOKEN_USER_DEFINED = 4,
    DUET_TOKEN_UNUSED = 5,
    DUET_TOKEN_BYTE = 6,
} duet_token_type;

#define DUET_TOKEN_NONE (-1)

typedef struct {
    duet_vocab_kind kind;
    char *pre; /* tokenizer.ggml.pre, NUL-terminated; NULL when absent */

    uint32_t n_tokens;
    char *text;         /* all token texts back to back */
    uint64_t *text_off; /* token i is text[text_off[i] .. text_off[i + 1]) */
    float *scores;      /* n_tokens (SPM merge priority; 0 when the source has none) */
    uint8_t *types;     /* n_tokens duet_token_type values */

    uint32_t n_merges; /* BPE: "a b" strings in rank order (rank = index) */
    char *merge_text;
    uint64_t *merge_off;

    int32_t bos_id, eos_id, unk_id, pad_id; /* DUET_TOKEN_NONE when absent */
    bool add_bos;                           /* tokenize(add_special) prepends BOS */
    bool add_eos;                           /* tokenize(add_special) appends EOS */
    bool add_space_prefix; /* SPM: a space is put before the text ("Hi" -> "▁Hi") */

    uint32_t n_eot; /* end-of-turn/end-of-generation tokens besides eos_id */
    int32_t *eot_ids;

    struct {
        size_t text, tokens, merge_text, merges, eot;
    } cap_; /* private: allocated capacities */
} duet_vocab;

/* An empty vocabulary of the given kind: no tokens, no special ids, all flags false. */
void duet_vocab_init(duet_vocab *v, duet_vocab_kind kind);

/* Releases everything the vocabulary owns and leaves it empty (safe to call twice). */
void duet_vocab_free(duet_vocab *v);

/* "SPM", "BPE" or "unknown". */
const char *duet_vocab_kind_name(duet_vocab_kind kind);

/* Optional: allocates room for the given counts up front (they are hints, not limits). */
duet_code duet_vocab_reserve(duet_vocab *v, uint32_t n_tokens, uint64_t text_bytes,
                             uint32_t n_merges, uint64_t merge_bytes, duet_status *st);

/* Sets tokenizer.ggml.pre (copied). len bytes, no NUL needed; an embedded NUL is an error. */
duet_code duet_vocab_set_pre(duet_vocab *v, const char *pre, size_t len, duet_status *st);

/* Appends token number v->n_tokens. type must be 0..6. */
duet_code duet_vocab_add_token(duet_vocab *v, const char *text, size_t len, float score, int type,
                               duet_status *st);

/* Appends the merge of rank v->n_merges ("a b"). */
duet_code duet_vocab_add_merge(duet_vocab *v, const char *text, size_t len, duet_status *st);

/* Adds id to eot_ids (ignored when already there or equal to eos_id). */
duet_code duet_vocab_add_eot(duet_vocab *v, int32_t id, duet_status *st);

/* id when 0 <= id < n_tokens, else DUET_TOKEN_NONE: for sources that mark "none" with an
 * out-of-range value (GGUF uses 0xFFFFFFFF). */
int32_t duet_vocab_id_or_none(const duet_vocab *v, int64_t id);

/* Token id's text and length (id must be < n_tokens). */
const char *duet_vocab_token(const duet_vocab *v, uint32_t id, size_t *len);

/* Merge i's text and length (i must be < n_merges). */
const char *duet_vocab_merge(const duet_vocab *v, uint32_t i, size_t *len);

/* Finds the end-of-turn tokens by their text, as llama.cpp does ("<|eot_id|>", "<|im_end|>",
 * "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", DeepSeek's
 * "<｜end▁of▁sentence｜>", and the FIM pad/repo/file-separator tokens), adds them to eot_ids
 * and marks them CONTROL (so they are never produced from plain text). */
duet_code duet_vocab_detect_eot(duet_vocab *v, duet_status *st);

/* Checks that the vocabulary is usable: a known kind, at least one token, special and
 * end-of-turn ids in range, add_bos/add_eos only with a BOS/EOS token. INVALID_ARGUMENT
 * naming the first problem otherwise. */
duet_code duet_vocab_check(const duet_vocab *v, duet_status *st);

#endif
