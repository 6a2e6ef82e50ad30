#include "utf8.h"

size_t duet_utf8_lead_len(unsigned char lead)
{
    static const unsigned char by_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return by_nibble[lead >> 4];
}

/* Bounds of the second byte for each lead byte (RFC 3629 table), which is what rules out
 * overlongs, surrogates and code points above U+10FFFF. */
static int second_byte_range(unsigned char lead, unsigned char *lo, unsigned char *hi, size_t *len)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
        *len = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        *len = 3;
        if (lead == 0xE0) {
            *lo = 0xA0;
        } else if (lead == 0xED) {
            *hi = 0x9F;
        }
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        *len = 4;
        if (lead == 0xF0) {
            *lo = 0x90;
        } else if (lead == 0xF4) {
            *hi = 0x8F;
        }
    } else {
        return 0;
    }
    return 1;
}

size_t duet_utf8_valid_prefix(const char *s, size_t n)
{
    if (n == 0) {
        return 0;
    }
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) {
        return 1;
    }
    unsigned char lo, hi;
    size_t len;
    if (!second_byte_range(u[0], &lo, &hi, &len)) {
        return 0;
    }
    size_t i = 1;
    for (; i < len && i < n; i++) {
        unsigned char b = u[i];
        unsigned char blo = i == 1 ? lo : 0x80, bhi = i == 1 ? hi : 0xBF;
        if (b < blo || b > bhi) {
            break;
        }
    }
    return i;
}

size_t duet_utf8_decode(const char *s, size_t n, uint32_t *cp)
{
    if (n == 0) {
        return 0;
    }
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    unsigned char lo, hi;
    size_t len;
    if (!second_byte_range(u[0], &lo, &hi, &len) || duet_utf8_valid_prefix(s, n) != len) {
        return 0;
    }
    uint32_t c = u[0] & (0xFFu >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        c = (c << 6) | (u[i] & 0x3Fu);
    }
    *cp = c;
    return len;
}

size_t duet_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) {
        return 0;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp <= 0x10FFFF) {
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
    }
    return 0;
}

int duet_utf8_is_wide_space(uint32_t cp)
{
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}
