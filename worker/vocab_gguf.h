/* Reads a model's vocabulary (the tokenizer.ggml.* keys) from an open GGUF file into a
 * duet_vocab, applying the defaults llama.cpp applies when keys are absent:
 *  - 'llama' (SPM): BOS 1, EOS 2, UNK 0, add_bos, add_space_prefix;
 *  - 'gpt2' (BPE): BOS = EOS = 11, no UNK, no space prefix, add_bos only for the Llama 3
 *    pre-tokenizers; a missing tokenizer.ggml.pre means "default" (logged as a warning).
 * A special id key that is out of range (e.g. 0xFFFFFFFF) keeps the default, as in
 * llama.cpp. End-of-turn tokens are detected by their text (duet_vocab_detect_eot).
 * Errors: UNIMPLEMENTED for tokenizer models duet does not support ("bert", "t5", "rwkv",
 * "none"), INVALID_ARGUMENT for an unknown model or pre-tokenizer name, missing or
 * mistyped keys, and arrays whose lengths disagree; each message names the key. */
#ifndef DUET_VOCAB_GGUF_H
#define DUET_VOCAB_GGUF_H

#include "gguf.h"
#include "status.h"
#include "vocab.h"

/* Fills v (initialised here). On success free it with duet_vocab_free; on failure it is
 * left empty. */
duet_code duet_vocab_from_gguf(const duet_gguf *g, duet_vocab *v, duet_status *st);

#endif
