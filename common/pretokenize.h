/* Pre-tokenizers for byte-level BPE: the regex sequences llama.cpp applies before BPE,
 * selected by the GGUF key tokenizer.ggml.pre. Each regex in a sequence splits every word
 * left by the previous one into its matches and the text between them, so a later regex
 * never joins what an earlier one split. Matching is done by PCRE2 (UTF + Unicode
 * properties), word by word, with the two quirks of llama.cpp's matcher reproduced: `$` is
 * the end of the word, and a regex without \p{L}/\p{N}/\p{P} sees non-ASCII white space as
 * a plain "\v" (so e.g. U+3000 is not part of a CJK or punctuation range).
 * Invalid UTF-8 never fails a split: bytes that are not part of a valid character match
 * nothing and end up in words of their own, so no byte is lost. */
#ifndef DUET_PRETOKENIZE_H
#define DUET_PRETOKENIZE_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

typedef struct {
    bool ignore_merges; /* a word that is a token as a whole is not merged (Llama 3) */
    bool clean_spaces;  /* llama.cpp's detokenizer clean-up (" ," -> ",") applies */
    bool add_bos;       /* add_bos when the GGUF has no tokenizer.ggml.add_bos_token */
} duet_pre_traits;

/* Looks up a pre-tokenizer name; NULL or "" is llama.cpp's "default". False when the name
 * is not supported (the caller must refuse it, never fall back). */
bool duet_pre_lookup(const char *name, duet_pre_traits *traits);

/* The supported names, comma-separated, for error messages. */
const char *duet_pre_supported(void);

typedef struct duet_pretok duet_pretok;

/* Compiles the regexes for name. INVALID_ARGUMENT naming it when it is unknown. */
duet_code duet_pretok_create(const char *name, duet_pretok **out, duet_status *st);
void duet_pretok_free(duet_pretok *p);

typedef struct {
    size_t off, len;
} duet_span;

typedef struct {
    duet_span *v;
    size_t n, cap;
} duet_spans;

/* Appends the words of text[0..len) to out as spans relative to text: in order, each at
 * least one byte, together covering every byte exactly once. Safe to call from many
 * threads on one duet_pretok. */
duet_code duet_pretok_split(const duet_pretok *p, const char *text, size_t len, duet_spans *out,
                            duet_status *st);

void duet_spans_free(duet_spans *s);

#endif
