/* The F16 row operations of attention (f16_vec.h): the AVX2 forms and the dispatched entry
 * points give exactly the bits of the element-wise definition (widen, compute in float with
 * one fused multiply-add, round to nearest even), on lengths that are and are not multiples
 * of eight, and over values that reach the F16 limits (subnormals, overflow to infinity). */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "f16_vec.h"
#include "kernels.h"

#define MAXN 133

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A finite half drawn over its whole range: random sign, exponent and mantissa. */
static uint16_t random_half(uint64_t *s)
{
    uint16_t h = (uint16_t)rng_next(s);
    if ((h & 0x7c00) == 0x7c00) {
        h &= 0xbbff; /* not infinity or NaN */
    }
    return h;
}

static bool cpu_has_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}

static const float SCALES[] = {0.0f, 1.0f, 0.37f, -2.5f, 1e-3f, 700.0f};
static const int64_t LENS[] = {1, 7, 8, 9, 64, 128, MAXN};

typedef void (*mad_fn)(int64_t, uint16_t *, const uint16_t *, float);
typedef void (*scale_fn)(int64_t, uint16_t *, float);

static void check_mad(mad_fn f, const char *name)
{
    uint64_t seed = 42;
    for (size_t li = 0; li < sizeof LENS / sizeof LENS[0]; li++) {
        for (size_t si = 0; si < sizeof SCALES / sizeof SCALES[0]; si++) {
            const int64_t n = LENS[li];
            uint16_t x[MAXN], y[MAXN], want[MAXN];
            for (int64_t i = 0; i < n; i++) {
                x[i] = random_half(&seed);
                y[i] = random_half(&seed);
                want[i] =
                    duet_f32_to_f16(fmaf(duet_f16_to_f32(x[i]), SCALES[si], duet_f16_to_f32(y[i])));
            }
            f(n, y, x, SCALES[si]);
            for (int64_t i = 0; i < n; i++) {
                cr_assert_eq(y[i], want[i], "%s n=%lld s=%g [%lld]: %#06x, want %#06x", name,
                             (long long)n, (double)SCALES[si], (long long)i, y[i], want[i]);
            }
        }
    }
}

static void check_scale(scale_fn f, const char *name)
{
    uint64_t seed = 7;
    for (size_t li = 0; li < sizeof LENS / sizeof LENS[0]; li++) {
        for (size_t si = 0; si < sizeof SCALES / sizeof SCALES[0]; si++) {
            const int64_t n = LENS[li];
            uint16_t y[MAXN], want[MAXN];
            for (int64_t i = 0; i < n; i++) {
                y[i] = random_half(&seed);
                want[i] = duet_f32_to_f16(duet_f16_to_f32(y[i]) * SCALES[si]);
            }
            f(n, y, SCALES[si]);
            for (int64_t i = 0; i < n; i++) {
                cr_assert_eq(y[i], want[i], "%s n=%lld s=%g [%lld]: %#06x, want %#06x", name,
                             (long long)n, (double)SCALES[si], (long long)i, y[i], want[i]);
            }
        }
    }
}

Test(f16_vec, mad_matches_definition)
{
    check_mad(duet_f16_vec_mad, "dispatched");
}

Test(f16_vec, scale_matches_definition)
{
    check_scale(duet_f16_vec_scale, "dispatched");
}

Test(f16_vec, avx2_mad_and_scale_bit_exact)
{
    if (!cpu_has_avx2()) {
        cr_skip_test("no AVX2+FMA+F16C on this CPU");
    }
    check_mad(duet_f16_vec_mad_avx2, "avx2");
    check_scale(duet_f16_vec_scale_avx2, "avx2");
}

/* Conversions both ways, over every finite half and floats around the rounding points. */
Test(f16_vec, conversions_bit_exact)
{
    static uint16_t h[0x7c00 * 2], back[0x7c00 * 2];
    static float f[0x7c00 * 2], g[0x7c00 * 2];
    int64_t n = 0;
    for (uint32_t u = 0; u < 0x7c00; u++) {
        h[n++] = (uint16_t)u;
        h[n++] = (uint16_t)(u | 0x8000);
    }
    for (int pass = 0; pass < (cpu_has_avx2() ? 2 : 1); pass++) {
        if (pass == 0) {
            duet_f16_to_f32_row(n, f, h);
        } else {
            duet_f16_to_f32_row_avx2(n, f, h);
        }
        for (int64_t i = 0; i < n; i++) {
            cr_assert(memcmp(&f[i], &(float){duet_f16_to_f32(h[i])}, sizeof(float)) == 0,
                      "pass %d: half %#06x widened wrongly", pass, h[i]);
        }
        /* halfway points between neighbouring halves test round-to-nearest-even */
        for (int64_t i = 0; i < n; i++) {
            g[i] = f[i] * (1.0f + 0x1p-11f);
        }
        if (pass == 0) {
            duet_f16_from_f32(n, back, g);
        } else {
            duet_f16_from_f32_avx2(n, back, g);
        }
        for (int64_t i = 0; i < n; i++) {
            cr_assert_eq(back[i], duet_f32_to_f16(g[i]), "pass %d: %a rounded to %#06x", pass,
                         (double)g[i], back[i]);
        }
    }
}
