/* UTF-8 helpers shared by the tokenizers: lengths, strict decoding, encoding, and the
 * boundary questions a streaming detokenizer asks ("is this the start of a character that
 * more bytes could still complete?"). Pure functions; no state. */
#ifndef DUET_UTF8_H
#define DUET_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The length a lead byte announces, by its high nibble as llama.cpp counts it (1 for ASCII
 * and for stray continuation bytes, 2, 3 or 4). Not a validity check. */
size_t duet_utf8_lead_len(unsigned char lead);

/* Decodes one strictly valid character at s (n bytes available): no overlongs, no
 * surrogates, nothing above U+10FFFF. Returns its length (1..4) and sets *cp, or 0 when s
 * does not start with a complete valid character (or n == 0). */
size_t duet_utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Writes cp (<= U+10FFFF) as UTF-8 into out; returns the length (1..4), 0 if cp is invalid. */
size_t duet_utf8_encode(uint32_t cp, char out[4]);

/* How many bytes at s (n available) form the longest prefix of some valid character:
 * equals the character's length when a complete character is there, is < that length when
 * the character is cut off by the end of s, and is 0 when s[0] cannot start any character.
 * So: valid = decode() > 0; "wait for more" = result == n && decode() == 0; otherwise the
 * result (at least 1 byte) is the maximal invalid subpart to replace. */
size_t duet_utf8_valid_prefix(const char *s, size_t n);

/* True for the Unicode White_Space characters above ASCII (U+0085, U+00A0, U+1680,
 * U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000). */
int duet_utf8_is_wide_space(uint32_t cp);

#endif
