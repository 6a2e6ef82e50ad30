/* IEEE binary16 and bfloat16 conversions, bit-exact, without lookup tables.
 *
 * f32 -> f16 rounds to nearest even, gives subnormal halves for tiny values and infinity
 * past 65504 (from 65520 up); a NaN stays a NaN with its sign and the top bits of its
 * payload, made quiet — the same bits as the F16C instruction vcvtps2ph, so the vector
 * path converts identically. f32 -> bf16 follows ggml: round to nearest even on the top
 * 16 bits, subnormals kept, NaN made quiet (never rounded into an infinity). */
#include <string.h>

#include "kernels.h"

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float duet_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) {
        return float_of(sign | 0x7f800000 | (mant << 13));
    }
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in a float */
        float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    return float_of(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t duet_f32_to_f16(float f)
{
    uint32_t x = bits_of(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax > 0x7f800000) {
        return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
    }
    if (ax >= 0x477ff000) {
        /* 65520 is halfway between 65504 and 65536 and ties to the even one: infinity */
        return sign | 0x7c00;
    }
    if (ax >= 0x38800000) {
        /* normal half: rebias the exponent (127 -> 15) and round the 13 dropped bits; a
         * carry out of the mantissa correctly bumps the exponent */
        uint32_t m = ax - 0x38000000;
        m += 0xfff + ((m >> 13) & 1);
        return (uint16_t)(sign | (m >> 13));
    }
    uint32_t e = ax >> 23;
    if (e < 102) {
        return sign; /* below 2^-25: rounds to zero */
    }
    /* subnormal half: the value in units of 2^-24 is mant * 2^(e - 126), shift 14..24 */
    uint32_t mant = (ax & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e;
    uint32_t q = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) {
        q++; /* may carry into the smallest normal, 0x0400, which is right */
    }
    return (uint16_t)(sign | q);
}

float duet_bf16_to_f32(uint16_t h)
{
    return float_of((uint32_t)h << 16);
}

uint16_t duet_f32_to_bf16(float f)
{
    uint32_t x = bits_of(f);
    if ((x & 0x7fffffff) > 0x7f800000) {
        return (uint16_t)((x >> 16) | 0x40);
    }
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}
