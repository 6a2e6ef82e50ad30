/* A small vocabulary of duet's own, for models written without --vocab-from: a llama
 * SentencePiece-style tokenizer ("llama" model) with <unk>, <s>, </s>, the 256 byte tokens
 * <0x00>..<0xFF> (so any text, in any script, tokenizes and comes back exactly), the
 * printable ASCII characters, and a few hundred common English words reachable by merging
 * their prefixes. Generated here, from nothing but the word list below. */
#ifndef DUET_MKMODEL_BUILTIN_VOCAB_H
#define DUET_MKMODEL_BUILTIN_VOCAB_H

#include <stdint.h>

#include "gguf_writer.h"

/* Adds the tokenizer.* metadata to w and returns the vocabulary size (0 when memory ran
 * out). */
uint32_t duet_builtin_vocab_write(duet_gguf_writer *w);

#endif
