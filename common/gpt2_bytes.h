/* GPT-2's reversible byte <-> Unicode mapping used by byte-level BPE vocabularies: every
 * byte gets a printable code point, so token texts never contain raw spaces or control
 * bytes (a space is 'Ġ' U+0120, a newline 'Ċ' U+010A). Bytes that are already printable
 * Latin-1 ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) map to themselves; the other 68 take
 * U+0100.. in byte order. Pure functions. */
#ifndef DUET_GPT2_BYTES_H
#define DUET_GPT2_BYTES_H

#include <stddef.h>
#include <stdint.h>

uint32_t duet_gpt2_byte_to_cp(uint8_t byte);

/* The byte cp stands for, or -1 when cp is not one of the 256 mapped code points. */
int duet_gpt2_cp_to_byte(uint32_t cp);

/* Writes the UTF-8 form of byte's code point (1 or 2 bytes) into out; returns its length. */
size_t duet_gpt2_byte_utf8(uint8_t byte, char out[2]);

#endif
