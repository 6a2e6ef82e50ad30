/* Tokenizers built from a duet_vocab, reproducing llama.cpp's token ids:
 *  - SentencePiece ('llama', SPM): spaces become '▁' (with one put in front of the text when
 *    add_space_prefix), then adjacent pieces are merged best score first; what no token
 *    covers falls back to <0xXX> byte tokens.
 *  - byte-level BPE ('gpt2'): the text is split into words by the pre-tokenizer regexes of
 *    tokenizer.ggml.pre (pretokenize.h), each word's bytes are mapped to GPT-2's printable
 *    code points, and merges are applied lowest rank first.
 * Special tokens: before either algorithm runs, control and unknown-type tokens are cut out
 * of the text as whole strings (longest first) when parse_special is true; user-defined
 * tokens always are, as llama.cpp and Hugging Face do (they are text the vocabulary added on
 * purpose, e.g. DeepSeek's single letters or MPT's runs of spaces).
 *
 * A tokenizer is immutable after creation: every function below may be called from many
 * threads at once on the same tokenizer. Invalid UTF-8 never crashes or fails tokenization:
 * SPM encodes the stray bytes as <0xXX> byte tokens, BPE like any other byte (a byte the
 * vocabulary has no token for, e.g. 0xFF in most BPE vocabularies, is dropped, as in
 * llama.cpp). */
#ifndef DUET_TOKENIZER_H
#define DUET_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "vocab.h"

typedef struct duet_tokenizer duet_tokenizer;

/* Builds a tokenizer; copies what it needs, so v may be freed afterwards. INVALID_ARGUMENT
 * for an inconsistent vocabulary or an unknown pre-tokenizer name (named in the message). */
duet_code duet_tokenizer_create(const duet_vocab *v, duet_tokenizer **out, duet_status *st);
void duet_tokenizer_free(duet_tokenizer *t);

duet_vocab_kind duet_tokenizer_kind(const duet_tokenizer *t);
uint32_t duet_tokenizer_n_tokens(const duet_tokenizer *t);
int32_t duet_tokenizer_bos(const duet_tokenizer *t); /* DUET_TOKEN_NONE when absent */
int32_t duet_tokenizer_eos(const duet_tokenizer *t);
/* True for EOS and the vocabulary's end-of-turn tokens: generation stops there. */
bool duet_tokenizer_is_eog(const duet_tokenizer *t, int32_t id);
/* The vocabulary's type of id (DUET_TOKEN_UNDEFINED when out of range). */
duet_token_type duet_tokenizer_token_type(const duet_tokenizer *t, int32_t id);

/* Tokenizes text[0..len) (any bytes; text may be NULL when len is 0). add_special: BOS/EOS
 * are added as the vocabulary's add_bos/add_eos say. parse_special: control tokens written
 * in the text ("<|eot_id|>") become those tokens instead of being tokenized as text. On
 * success *ids is a malloc'd array of *n_ids ids (free() it; NULL when empty). */
duet_code duet_tokenize(const duet_tokenizer *t, const char *text, size_t len, bool add_special,
                        bool parse_special, int32_t **ids, size_t *n_ids, duet_status *st);

/* The bytes token id stands for: SPM '▁' -> ' ' and <0xXX> -> that byte, BPE code points ->
 * bytes, user-defined tokens as written. Control and unknown tokens give their text only
 * when special is true, else nothing. Points into the tokenizer (valid until it is freed),
 * not NUL-terminated; NULL with *len 0 for an id out of range. */
const char *duet_token_piece(const duet_tokenizer *t, int32_t id, bool special, size_t *len);

/* Detokenizer options (combine with |). */
enum {
    DUET_DETOK_SPECIAL = 1u,            /* render control/unknown tokens' text */
    DUET_DETOK_REMOVE_SPECIAL = 2u,     /* drop a leading BOS and a trailing EOS when the
                                           vocabulary adds them (llama.cpp's remove_special) */
    DUET_DETOK_CLEAN_SPACES = 4u,       /* llama.cpp's clean-up (" ," -> ",", " 's" -> "'s", ...)
                                           for the vocabularies that ask for it (most BPE ones);
                                           no effect on the others */
    DUET_DETOK_KEEP_LEADING_SPACE = 8u, /* do not strip the space SPM's add_space_prefix put
                                           before the first token */
};

/* Turns ids back into text, as llama.cpp's llama_detokenize does: with add_space_prefix
 * one leading space of the first token's piece is removed (so tokenize + detokenize gives
 * the text back), except that when REMOVE_SPECIAL drops a leading BOS nothing is stripped
 * (llama.cpp's rule). On success *text is a malloc'd NUL-terminated string of *len bytes
 * (free() it). INVALID_ARGUMENT when an id is out of range. */
duet_code duet_detokenize(const duet_tokenizer *t, const int32_t *ids, size_t n_ids, unsigned flags,
                          char **text, size_t *len, duet_status *st);

/* Streaming detokenizer for generation: feed ids one at a time and get back only whole
 * UTF-8 characters; a character whose bytes are spread over several tokens (byte tokens of
 * an emoji, say) is held back until its last byte arrives. Bytes that can never form a
 * valid character are replaced by U+FFFD, so every piece returned is valid UTF-8, and for
 * ids whose pieces are valid UTF-8 together, the concatenation of everything returned
 * equals duet_detokenize(ids, flags) (CLEAN_SPACES and REMOVE_SPECIAL are not applied
 * here). One stream per generation; not shared between threads. */
typedef struct duet_detok_stream duet_detok_stream;

duet_code duet_detok_stream_create(const duet_tokenizer *t, unsigned flags, duet_detok_stream **out,
                                   duet_status *st);
void duet_detok_stream_free(duet_detok_stream *s);

/* Adds one id; *text and *len get the complete characters now available (possibly none).
 * The pointer is valid until the next call on s. INVALID_ARGUMENT for an id out of range. */
duet_code duet_detok_stream_push(duet_detok_stream *s, int32_t id, const char **text, size_t *len,
                                 duet_status *st);

/* Ends the stream: returns what is still held back (an incomplete character, as U+FFFD)
 * and resets s for a new sequence. */
void duet_detok_stream_flush(duet_detok_stream *s, const char **text, size_t *len);

#endif
