/* Kernels: type traits, f16/bf16 conversions, block layouts, quantization error, dot
 * products against a dequantized reference, and scalar/AVX2 agreement — for every weight
 * type, on random data from fixed seeds.
 *
 * Tolerances (w = a weight row, x = an activation row, deq = dequantize):
 *  - round trip: relative RMS error sqrt(sum (deq(q(w)) - w)^2 / sum w^2) under a per-type
 *    bound (type_case.max_rel_rms) on Gaussian rows with outliers; F32 must be exact.
 *  - dot: |vec_dot(q(w), q(x)) - sum deq(q(w))_i deq(q(x))_i| <= 2e-6 * M, M being the sum of
 *    the magnitudes of the terms (for Q4_1/Q5_1 the reference adds the min term with the
 *    activation's stored block sum, as the kernel does). Quantized blocks are summed in
 *    integers, so only float rounding is left (measured: below 4e-8 * M).
 *  - scalar vs AVX2: whole rows within 2e-6 * M, and every block alone within 1e-6 * M of
 *    that block, which is far tighter than one unit of any block's integer sum; the AVX2
 *    quantizers must produce the very same bytes as the scalar ones. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kquants.h"
#include "legacy_quants.h"
#include "tensor_type.h"

/* ------------------------------------------------------------------ helpers */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *s)
{
    return (double)((rng_next(s) >> 11) + 1) * 0x1p-53; /* (0, 1] */
}

static double rng_gauss(uint64_t *s)
{
    return sqrt(-2.0 * log(rng_uniform(s))) * cos(6.283185307179586 * rng_uniform(s));
}

/* Weight-like rows: Gaussian, a different scale per row, a mean on every other row (so the
 * min of the _1 and K types matters), rare outliers, and one all-zero block in row 0. */
static void fill_weights(float *w, int rows, int64_t len, uint32_t block, uint64_t seed)
{
    uint64_t s = seed;
    for (int r = 0; r < rows; r++) {
        const double sigma = 0.02 * (1 + r % 3);
        const double mean = (r % 2) ? 0.7 * sigma : 0.0;
        for (int64_t i = 0; i < len; i++) {
            double v = mean + sigma * rng_gauss(&s);
            if (rng_next(&s) % 97 == 0) {
                v *= 6;
            }
            w[r * len + i] = (float)v;
        }
    }
    if (len >= 2 * (int64_t)block) {
        memset(w + block, 0, block * sizeof(float));
    }
}

/* Activation-like rows: unit Gaussian with rare large outliers. */
static void fill_activations(float *x, int64_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        double v = rng_gauss(&s);
        if (rng_next(&s) % 211 == 0) {
            v *= 12;
        }
        x[i] = (float)v;
    }
}

static bool verbose(void)
{
    return getenv("DUET_TEST_VERBOSE") != NULL;
}

/* A buffer whose data starts `offset` bytes past a 64-byte boundary, to show the kernels do
 * not need aligned rows. */
typedef struct {
    void *base;
    uint8_t *p;
} buffer;

static buffer buffer_new(size_t bytes, size_t offset)
{
    buffer b;
    b.base = aligned_alloc(64, (bytes + offset + 63) / 64 * 64 + 64);
    cr_assert_not_null(b.base);
    b.p = (uint8_t *)b.base + offset;
    memset(b.p, 0xa5, bytes);
    return b;
}

static void buffer_free(buffer *b)
{
    free(b->base);
}

/* Weights of the legacy and float types are accessed bytewise or with unaligned loads; the
 * K-quant structs have 2- and 4-byte fields, and F32 is read as floats. */
static size_t offset_for(duet_tensor_type t)
{
    const duet_type_traits *tr = duet_type_traits_of(t);
    if (t == DUET_TYPE_F32 || tr->block_size == 256) {
        return 4;
    }
    return 1;
}

static bool cpu_has_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}

static void require_avx2_path(void)
{
    if (!cpu_has_avx2()) {
        cr_skip_test("this CPU has no AVX2+FMA+F16C");
    }
    if (getenv("DUET_NO_AVX2") != NULL && strcmp(getenv("DUET_NO_AVX2"), "1") == 0) {
        cr_skip_test("DUET_NO_AVX2=1 is set");
    }
    cr_assert(duet_kernels_use_avx2(), "the CPU has AVX2+FMA+F16C but the kernels do not use it");
}

/* ------------------------------------------------------------------ per-type cases */

typedef struct {
    duet_tensor_type type;
    double max_rel_rms; /* quantize -> dequantize bound on Gaussian rows */
} type_case;

/* The bounds are 1.25x the worst row these quantizers give on this data (a quantizer that
 * truncated instead of rounding would double its error); F16 and BF16 are the formats' unit
 * roundoffs 2^-11 and 2^-8, which no element's relative error may exceed. */
static const type_case cases[] = {
    {DUET_TYPE_F32, 0.0},    {DUET_TYPE_F16, 0x1p-11}, {DUET_TYPE_BF16, 0x1p-8},
    {DUET_TYPE_Q4_0, 0.19},  {DUET_TYPE_Q4_1, 0.12},   {DUET_TYPE_Q5_0, 0.085},
    {DUET_TYPE_Q5_1, 0.062}, {DUET_TYPE_Q8_0, 0.012},  {DUET_TYPE_Q2_K, 0.38},
    {DUET_TYPE_Q3_K, 0.26},  {DUET_TYPE_Q4_K, 0.11},   {DUET_TYPE_Q5_K, 0.058},
    {DUET_TYPE_Q6_K, 0.038},
};
#define N_CASES (sizeof cases / sizeof cases[0])

#define DOT_TOL 2e-6   /* of M, for whole rows */
#define BLOCK_TOL 1e-6 /* of M, for one block */

typedef struct {
    int rows;
    int64_t len;
} shape;

/* Odd row counts; lengths are multiples of every block size (256, 768, 4096 + 256). */
static const shape shapes[] = {{7, 256}, {5, 768}, {3, 4352}};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

static const char *name_of(duet_tensor_type t)
{
    return duet_type_traits_of(t)->name;
}

/* Quantized weights and activations for one type and shape, with their dequantized forms. */
typedef struct {
    duet_tensor_type type, dot_type;
    int rows;
    int64_t len;
    size_t row_bytes, x_bytes;
    float *w, *wd, *x, *xd;
    buffer wq, xq;
} fixture;

static void fixture_make(fixture *f, duet_tensor_type t, shape sh, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    f->type = t;
    f->dot_type = duet_dot_type(t);
    f->rows = sh.rows;
    f->len = sh.len;
    f->row_bytes = duet_type_row_bytes(t, sh.len);
    f->x_bytes = duet_type_row_bytes(f->dot_type, sh.len);
    cr_assert_gt(f->row_bytes, 0);
    cr_assert_gt(f->x_bytes, 0);
    const size_t n = (size_t)sh.rows * (size_t)sh.len;
    f->w = malloc(n * sizeof(float));
    f->wd = malloc(n * sizeof(float));
    f->x = malloc((size_t)sh.len * sizeof(float));
    f->xd = malloc((size_t)sh.len * sizeof(float));
    cr_assert(f->w && f->wd && f->x && f->xd);
    fill_weights(f->w, sh.rows, sh.len, duet_type_traits_of(t)->block_size, seed);
    fill_activations(f->x, sh.len, seed ^ 0x5eed);
    f->wq = buffer_new(f->row_bytes * (size_t)sh.rows, offset_for(t));
    f->xq = buffer_new(f->x_bytes, offset_for(f->dot_type));
    /* rows one by one, then the whole matrix back in one call: the rows must be contiguous
     * runs of blocks */
    for (int r = 0; r < sh.rows; r++) {
        duet_quantize_row(t, f->w + r * sh.len, f->wq.p + (size_t)r * f->row_bytes, sh.len);
    }
    duet_dequantize_row(t, f->wq.p, f->wd, (int64_t)n);
    duet_quantize_row(f->dot_type, f->x, f->xq.p, sh.len);
    duet_dequantize_row(f->dot_type, f->xq.p, f->xd, sh.len);
}

static void fixture_free(fixture *f)
{
    free(f->w);
    free(f->wd);
    free(f->x);
    free(f->xd);
    buffer_free(&f->wq);
    buffer_free(&f->xq);
}

/* The exact value a dot kernel should compute over values [from, from + count) of row r,
 * and the magnitude M its rounding errors are measured against. For Q4_1/Q5_1 the kernel
 * uses the activation block's stored s (d * sum q, rounded to f16) in the min term instead
 * of the dequantized values' sum; the reference does the same. */
static void reference_dot(const fixture *f, int r, int64_t from, int64_t count, double *ref,
                          double *mag)
{
    const float *wd = f->wd + r * f->len;
    double sum = 0, abs_sum = 0;
    for (int64_t i = from; i < from + count; i++) {
        sum += (double)wd[i] * f->xd[i];
        abs_sum += fabs((double)wd[i] * f->xd[i]);
    }
    if (f->type == DUET_TYPE_Q4_1 || f->type == DUET_TYPE_Q5_1) {
        const uint8_t *row = f->wq.p + (size_t)r * f->row_bytes;
        const size_t wb = duet_type_traits_of(f->type)->block_bytes;
        for (int64_t b = from / DUET_QK; b < (from + count) / DUET_QK; b++) {
            /* m sits right after d in both Q4_1 and Q5_1 */
            const double m = duet_f16_to_f32(duet_le16(row + b * wb + 2));
            const duet_block_q8_1 *xb = (const duet_block_q8_1 *)f->xq.p + b;
            const double s = duet_f16_to_f32(duet_le16(xb->s));
            double xsum = 0, xabs = 0;
            for (int j = 0; j < DUET_QK; j++) {
                xsum += f->xd[b * DUET_QK + j];
                xabs += fabs(f->xd[b * DUET_QK + j]);
            }
            sum += m * (s - xsum);
            abs_sum += fabs(m) * (fabs(s) + xabs);
        }
    }
    *ref = sum;
    *mag = abs_sum;
}

/* ------------------------------------------------------------------ traits */

Test(kernels, traits_table)
{
    static const struct {
        uint32_t type;
        const char *name;
        uint32_t block_size, block_bytes;
        bool supported;
    } want[] = {
        {0, "F32", 1, 4, true},       {1, "F16", 1, 2, true},       {30, "BF16", 1, 2, true},
        {2, "Q4_0", 32, 18, true},    {3, "Q4_1", 32, 20, true},    {6, "Q5_0", 32, 22, true},
        {7, "Q5_1", 32, 24, true},    {8, "Q8_0", 32, 34, true},    {9, "Q8_1", 32, 36, false},
        {10, "Q2_K", 256, 84, true},  {11, "Q3_K", 256, 110, true}, {12, "Q4_K", 256, 144, true},
        {13, "Q5_K", 256, 176, true}, {14, "Q6_K", 256, 210, true}, {15, "Q8_K", 256, 292, false},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const duet_type_traits *tr = duet_type_traits_of(want[i].type);
        cr_assert_not_null(tr, "type %u", want[i].type);
        cr_assert_str_eq(tr->name, want[i].name);
        cr_assert_eq(tr->block_size, want[i].block_size, "%s block size", want[i].name);
        cr_assert_eq(tr->block_bytes, want[i].block_bytes, "%s block bytes", want[i].name);
        cr_assert_eq(tr->supported, want[i].supported, "%s supported", want[i].name);
    }
    static const uint32_t unknown[] = {4, 5, 16, 17, 20, 29, 31, 32, 39, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        cr_assert_null(duet_type_traits_of(unknown[i]), "type %u should be unknown", unknown[i]);
    }
}

Test(kernels, row_bytes)
{
    cr_assert_eq(duet_type_row_bytes(DUET_TYPE_F32, 4096), 16384);
    cr_assert_eq(duet_type_row_bytes(DUET_TYPE_F16, 7), 14);
    cr_assert_eq(duet_type_row_bytes(DUET_TYPE_BF16, 3), 6);
    cr_assert_eq(duet_type_row_bytes(DUET_TYPE_Q4_0, 4096), 4096 / 32 * 18);
    cr_assert_eq(duet_type_row_bytes(DUET_TYPE_Q8_0, 2048), 2048 / 32 * 34);
    cr_assert_eq(duet_type_row_bytes(DUET_TYPE_Q5_1, 64), 48);
    cr_assert_eq(duet_type_row_bytes(DUET_TYPE_Q4_K, 4096), 16 * 144);
    cr_assert_eq(duet_type_row_bytes(DUET_TYPE_Q6_K, 5632), 22 * 210);
    cr_assert_eq(duet_type_row_bytes(DUET_TYPE_Q8_K, 256), 292);
    cr_assert_eq(duet_type_row_bytes(DUET_TYPE_Q4_0, 0), 0);
    cr_assert_eq(duet_type_row_bytes(DUET_TYPE_Q4_0, 48), 0, "not a multiple of 32");
    cr_assert_eq(duet_type_row_bytes(DUET_TYPE_Q4_K, 4096 + 32), 0, "not a multiple of 256");
    cr_assert_eq(duet_type_row_bytes(DUET_TYPE_F32, -4), 0);
    cr_assert_eq(duet_type_row_bytes((duet_tensor_type)4, 32), 0, "unknown type");
    cr_assert_eq(duet_type_row_bytes((duet_tensor_type)99, 32), 0, "unknown type");
}

Test(kernels, dot_types)
{
    cr_assert_eq(duet_dot_type(DUET_TYPE_F32), DUET_TYPE_F32);
    cr_assert_eq(duet_dot_type(DUET_TYPE_F16), DUET_TYPE_F16);
    cr_assert_eq(duet_dot_type(DUET_TYPE_BF16), DUET_TYPE_BF16);
    cr_assert_eq(duet_dot_type(DUET_TYPE_Q4_0), DUET_TYPE_Q8_0);
    cr_assert_eq(duet_dot_type(DUET_TYPE_Q5_0), DUET_TYPE_Q8_0);
    cr_assert_eq(duet_dot_type(DUET_TYPE_Q8_0), DUET_TYPE_Q8_0);
    cr_assert_eq(duet_dot_type(DUET_TYPE_Q4_1), DUET_TYPE_Q8_1);
    cr_assert_eq(duet_dot_type(DUET_TYPE_Q5_1), DUET_TYPE_Q8_1);
    for (int t = DUET_TYPE_Q2_K; t <= DUET_TYPE_Q6_K; t++) {
        cr_assert_eq(duet_dot_type((duet_tensor_type)t), DUET_TYPE_Q8_K, "type %d", t);
    }
    /* activation-only and unknown types have no dot product */
    cr_assert_eq(duet_dot_type(DUET_TYPE_Q8_1), DUET_TYPE_COUNT);
    cr_assert_eq(duet_dot_type(DUET_TYPE_Q8_K), DUET_TYPE_COUNT);
    cr_assert_eq(duet_dot_type((duet_tensor_type)5), DUET_TYPE_COUNT);
    const uint8_t zeros[512] = {0};
    cr_assert(isnan(duet_vec_dot(DUET_TYPE_Q8_1, 32, zeros, zeros)));
    cr_assert(isnan(duet_vec_dot_scalar(DUET_TYPE_Q8_K, 256, zeros, zeros)));
    cr_assert(isnan(duet_vec_dot((duet_tensor_type)4, 32, zeros, zeros)));
    cr_assert(isnan(duet_vec_dot((duet_tensor_type)77, 32, zeros, zeros)));
    /* conversions of unknown types leave the output alone */
    float in[32] = {1}, out[32];
    uint8_t bytes[64];
    memset(bytes, 0x5a, sizeof bytes);
    memset(out, 0x5a, sizeof out);
    duet_quantize_row((duet_tensor_type)4, in, bytes, 32);
    duet_dequantize_row((duet_tensor_type)31, zeros, out, 32);
    for (int i = 0; i < 64; i++) {
        cr_assert_eq(bytes[i], 0x5a);
    }
    for (int i = 0; i < 32; i++) {
        uint32_t u;
        memcpy(&u, &out[i], sizeof u);
        cr_assert_eq(u, 0x5a5a5a5a);
    }
}

/* ------------------------------------------------------------------ f16 and bf16 */

static bool f16_is_nan(uint16_t h)
{
    return (h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0;
}

static float f32_of_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t bits_of_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

Test(kernels, f16_known_values)
{
    cr_assert_eq(duet_f32_to_f16(1.0f), 0x3c00);
    cr_assert_eq(duet_f32_to_f16(-2.0f), 0xc000);
    cr_assert_eq(duet_f32_to_f16(0.0f), 0x0000);
    cr_assert_eq(duet_f32_to_f16(-0.0f), 0x8000);
    cr_assert_eq(duet_f32_to_f16(65504.0f), 0x7bff, "largest finite half");
    cr_assert_eq(duet_f32_to_f16(65519.996f), 0x7bff, "just below the midpoint to 65536");
    cr_assert_eq(duet_f32_to_f16(65520.0f), 0x7c00, "the midpoint ties to even: infinity");
    cr_assert_eq(duet_f32_to_f16(1e9f), 0x7c00);
    cr_assert_eq(duet_f32_to_f16(-INFINITY), 0xfc00);
    cr_assert_eq(duet_f32_to_f16(INFINITY), 0x7c00);
    cr_assert_eq(duet_f32_to_f16(0x1p-14f), 0x0400, "smallest normal");
    cr_assert_eq(duet_f32_to_f16(0x1p-24f), 0x0001, "smallest subnormal");
    cr_assert_eq(duet_f32_to_f16(0x1p-25f), 0x0000, "half of it ties to even: zero");
    cr_assert_eq(duet_f32_to_f16(0x1.000002p-25f), 0x0001, "just above half rounds up");
    cr_assert_eq(duet_f32_to_f16(0x3p-25f), 0x0002, "1.5 units ties to even: 2");
    cr_assert_eq(duet_f32_to_f16(-0x5p-25f), 0x8002, "2.5 units ties to even: 2");
    cr_assert_eq(duet_f32_to_f16(0x1p-26f), 0x0000);
    cr_assert_eq(duet_f32_to_f16(0x1p-149f), 0x0000, "float subnormal");
    cr_assert_eq(duet_f32_to_f16(-0x1p-149f), 0x8000);
    cr_assert_eq(duet_f32_to_f16(0x1.ff8p-15f), 0x03ff, "largest subnormal");
    cr_assert_eq(duet_f32_to_f16(0x1.ffbffep-15f), 0x03ff, "just below its midpoint");
    cr_assert_eq(duet_f32_to_f16(0x1.ffcp-15f), 0x0400, "its midpoint ties up into the normals");
    cr_assert_eq(duet_f32_to_f16(1.0f + 0x1p-11f), 0x3c00, "tie to even (down)");
    cr_assert_eq(duet_f32_to_f16(1.0f + 0x3p-11f), 0x3c02, "tie to even (up)");
    cr_assert_eq(duet_f32_to_f16(1.0f + 0x1p-11f + 0x1p-23f), 0x3c01, "above the tie");
    cr_assert_eq(duet_f32_to_f16(0x1.ffep0f), 0x4000, "mantissa carry into the exponent");
    const uint16_t qnan = duet_f32_to_f16(NAN);
    cr_assert(f16_is_nan(qnan), "NaN -> %#x", qnan);
    const uint16_t snan = duet_f32_to_f16(f32_of_bits(0x7f800001));
    cr_assert(f16_is_nan(snan), "a NaN with only low payload bits stays NaN, got %#x", snan);
    cr_assert(snan & 0x0200, "and is quiet");
    cr_assert_eq(duet_f32_to_f16(f32_of_bits(0xffc00000)), 0xfe00, "sign kept");

    cr_assert_eq(duet_f16_to_f32(0x3c00), 1.0f);
    cr_assert_eq(duet_f16_to_f32(0xc000), -2.0f);
    cr_assert_eq(duet_f16_to_f32(0x7bff), 65504.0f);
    cr_assert_eq(duet_f16_to_f32(0x0001), 0x1p-24f);
    cr_assert_eq(duet_f16_to_f32(0x8001), -0x1p-24f);
    cr_assert_eq(duet_f16_to_f32(0x03ff), 0x1.ff8p-15f);
    cr_assert_eq(duet_f16_to_f32(0x0400), 0x1p-14f);
    cr_assert(signbit(duet_f16_to_f32(0x8000)) && duet_f16_to_f32(0x8000) == 0.0f);
    cr_assert(isinf(duet_f16_to_f32(0x7c00)) && duet_f16_to_f32(0x7c00) > 0);
    cr_assert(isinf(duet_f16_to_f32(0xfc00)) && duet_f16_to_f32(0xfc00) < 0);
    cr_assert(isnan(duet_f16_to_f32(0x7e00)));
    cr_assert(isnan(duet_f16_to_f32(0x7c01)), "signalling NaN");
}

/* Every half converts to a float and back to itself (NaNs to some NaN). */
Test(kernels, f16_exhaustive_round_trip)
{
    for (uint32_t h = 0; h <= 0xffff; h++) {
        const float f = duet_f16_to_f32((uint16_t)h);
        const uint16_t back = duet_f32_to_f16(f);
        if (f16_is_nan((uint16_t)h)) {
            cr_assert(isnan(f), "%#x", h);
            cr_assert(f16_is_nan(back), "%#x", h);
        } else {
            cr_assert_eq(back, h, "%#x -> %a -> %#x", h, f, back);
        }
    }
}

/* Every rounding boundary: for each pair of neighbouring finite halves (both signs, from
 * subnormals to 65504 and its neighbour 65536 = infinity), the float midpoint rounds to the
 * even one and the floats just inside it round to the nearer. */
Test(kernels, f16_all_rounding_boundaries)
{
    for (uint32_t h = 0; h < 0x7c00; h++) {
        const double lo = duet_f16_to_f32((uint16_t)h);
        const double hi = h == 0x7bff ? 65536.0 : duet_f16_to_f32((uint16_t)(h + 1));
        const float mid = (float)((lo + hi) / 2);
        cr_assert_eq((double)mid, (lo + hi) / 2, "the midpoint is exact in a float");
        const uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        for (int s = 0; s < 2; s++) {
            const float sign = s ? -1.0f : 1.0f;
            const uint16_t sb = s ? 0x8000 : 0;
            cr_assert_eq(duet_f32_to_f16(sign * mid), sb | even, "midpoint above %#x", h);
            cr_assert_eq(duet_f32_to_f16(sign * nextafterf(mid, 0)), sb | h, "below mid %#x", h);
            cr_assert_eq(duet_f32_to_f16(sign * nextafterf(mid, INFINITY)), sb | (h + 1),
                         "above midpoint of %#x", h);
        }
    }
}

__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f)
{
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

__attribute__((target("f16c"))) static float hw_f16_to_f32(uint16_t h)
{
    return _cvtsh_ss(h);
}

/* The hardware converter as an independent oracle: all halves, and one float bit pattern in
 * every 251 (NaN payloads included: the vector path relies on identical NaN bits). */
Test(kernels, f16_matches_f16c)
{
    if (!__builtin_cpu_supports("f16c")) {
        cr_skip_test("no F16C on this CPU");
    }
    for (uint32_t h = 0; h <= 0xffff; h++) {
        const uint32_t a = bits_of_f32(duet_f16_to_f32((uint16_t)h));
        const uint32_t b = bits_of_f32(hw_f16_to_f32((uint16_t)h));
        if (!f16_is_nan((uint16_t)h)) {
            cr_assert_eq(a, b, "half %#x: %#x vs hardware %#x", h, a, b);
        }
    }
    for (uint64_t u = 0; u <= UINT32_MAX; u += 251) {
        const float f = f32_of_bits((uint32_t)u);
        const uint16_t a = duet_f32_to_f16(f), b = hw_f32_to_f16(f);
        cr_assert_eq(a, b, "float %#x: %#x vs hardware %#x", (uint32_t)u, a, b);
    }
}

Test(kernels, bf16_conversions)
{
    cr_assert_eq(duet_f32_to_bf16(1.0f), 0x3f80);
    cr_assert_eq(duet_f32_to_bf16(-2.0f), 0xc000);
    cr_assert_eq(duet_f32_to_bf16(-0.0f), 0x8000);
    cr_assert_eq(duet_f32_to_bf16(INFINITY), 0x7f80);
    cr_assert_eq(duet_f32_to_bf16(-INFINITY), 0xff80);
    cr_assert_eq(duet_f32_to_bf16(f32_of_bits(0x7f7fffff)), 0x7f80, "FLT_MAX rounds to inf");
    cr_assert_eq(duet_f32_to_bf16(f32_of_bits(0x00010000)), 0x0001, "subnormals kept");
    cr_assert_eq(duet_f32_to_bf16(f32_of_bits(0x00018000)), 0x0002, "subnormal tie to even");
    /* NaNs stay NaN and become quiet; rounding would turn these into inf or zero */
    cr_assert_eq(duet_f32_to_bf16(f32_of_bits(0x7f800001)), 0x7fc0);
    cr_assert_eq(duet_f32_to_bf16(f32_of_bits(0xff80ffff)), 0xffc0);
    cr_assert_eq(duet_f32_to_bf16(f32_of_bits(0x7fffffff)), 0x7fff);
    cr_assert_eq(duet_f32_to_bf16(f32_of_bits(0xffffffff)), 0xffff);
    cr_assert(isnan(duet_bf16_to_f32(0x7fc0)));
    cr_assert_eq(duet_bf16_to_f32(0x3f80), 1.0f);
    cr_assert_eq(duet_bf16_to_f32(0x0001), 0x1p-133f);
    /* every finite bf16 (both signs): exact round trip, and the floats at and around the
     * midpoint to the next value round to nearest, ties to even */
    for (uint32_t h = 0; h < 0x7f80; h++) {
        for (uint32_t sb = 0; sb <= 0x8000; sb += 0x8000) {
            const uint32_t up = h + 1; /* 0x7f80 for the last one: infinity */
            const uint32_t hs = h | sb;
            cr_assert_eq(duet_f32_to_bf16(duet_bf16_to_f32((uint16_t)hs)), hs, "%#x", hs);
            const uint32_t base = hs << 16;
            cr_assert_eq(duet_f32_to_bf16(f32_of_bits(base | 0x7fff)), hs, "%#x below mid", hs);
            cr_assert_eq(duet_f32_to_bf16(f32_of_bits(base | 0x8001)), up | sb, "%#x above", hs);
            cr_assert_eq(duet_f32_to_bf16(f32_of_bits(base | 0x8000)), ((h & 1) ? up : h) | sb,
                         "%#x at the midpoint", hs);
        }
    }
}

/* ------------------------------------------------------------------ block layouts */

/* Hand-made blocks, laid out as the GGUF format says, dequantize to the values they encode. */
Test(kernels, legacy_layouts_dequantize)
{
    float out[32];
    /* Q4_0: d = 1.0; qs[j] = j | (15 - j) << 4 */
    uint8_t q4_0[18] = {0x00, 0x3c};
    for (int j = 0; j < 16; j++) {
        q4_0[2 + j] = (uint8_t)(j | (15 - j) << 4);
    }
    duet_dequantize_row(DUET_TYPE_Q4_0, q4_0, out, 32);
    for (int j = 0; j < 16; j++) {
        cr_assert_eq(out[j], (float)(j - 8), "Q4_0 value %d", j);
        cr_assert_eq(out[j + 16], (float)(7 - j), "Q4_0 value %d", j + 16);
    }
    /* Q4_1: d = 0.5, m = -2 */
    uint8_t q4_1[20] = {0x00, 0x38, 0x00, 0xc0};
    memcpy(q4_1 + 4, q4_0 + 2, 16);
    duet_dequantize_row(DUET_TYPE_Q4_1, q4_1, out, 32);
    for (int j = 0; j < 16; j++) {
        cr_assert_eq(out[j], 0.5f * j - 2, "Q4_1 value %d", j);
        cr_assert_eq(out[j + 16], 0.5f * (15 - j) - 2, "Q4_1 value %d", j + 16);
    }
    /* Q5_0: d = 2; fifth bits qh = 0x80000005 little-endian: values 0, 2 and 31 get them */
    uint8_t q5_0[22] = {0x00, 0x40, 0x05, 0x00, 0x00, 0x80};
    memcpy(q5_0 + 6, q4_0 + 2, 16);
    duet_dequantize_row(DUET_TYPE_Q5_0, q5_0, out, 32);
    for (int j = 0; j < 32; j++) {
        const int nib = j < 16 ? j : 15 - (j - 16);
        const int hi = (j == 0 || j == 2 || j == 31) ? 16 : 0;
        cr_assert_eq(out[j], 2.0f * (nib + hi - 16), "Q5_0 value %d: %g", j, out[j]);
    }
    /* Q5_1: d = 1, m = 0.5, same quants */
    uint8_t q5_1[24] = {0x00, 0x3c, 0x00, 0x38, 0x05, 0x00, 0x00, 0x80};
    memcpy(q5_1 + 8, q4_0 + 2, 16);
    duet_dequantize_row(DUET_TYPE_Q5_1, q5_1, out, 32);
    for (int j = 0; j < 32; j++) {
        const int nib = j < 16 ? j : 15 - (j - 16);
        const int hi = (j == 0 || j == 2 || j == 31) ? 16 : 0;
        cr_assert_eq(out[j], (float)(nib + hi) + 0.5f, "Q5_1 value %d: %g", j, out[j]);
    }
    /* Q8_0: d = 0.25, qs = j - 16; Q8_1 the same after its s field */
    uint8_t q8_0[34] = {0x00, 0x34};
    uint8_t q8_1[36] = {0x00, 0x34, 0x00, 0x00};
    for (int j = 0; j < 32; j++) {
        q8_0[2 + j] = (uint8_t)(int8_t)(j - 16);
        q8_1[4 + j] = (uint8_t)(int8_t)(j - 16);
    }
    duet_dequantize_row(DUET_TYPE_Q8_0, q8_0, out, 32);
    for (int j = 0; j < 32; j++) {
        cr_assert_eq(out[j], 0.25f * (j - 16), "Q8_0 value %d", j);
    }
    duet_dequantize_row(DUET_TYPE_Q8_1, q8_1, out, 32);
    for (int j = 0; j < 32; j++) {
        cr_assert_eq(out[j], 0.25f * (j - 16), "Q8_1 value %d", j);
    }
}

static void assert_bytes(const uint8_t *got, const uint8_t *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(got[i], want[i], "%s byte %zu: %#x, want %#x", what, i, got[i], want[i]);
    }
}

/* The quantizers write the bytes llama.cpp's reference quantizers write for inputs whose
 * result can be worked out by hand. */
Test(kernels, legacy_quantize_golden)
{
    float x[32];
    uint8_t got[36], want[36];
    /* Q4_0, largest magnitude negative (-8): d = -8 / -8 = 1, q = x + 8 */
    for (int j = 0; j < 16; j++) {
        x[j] = (float)(j - 8);
        x[j + 16] = (float)(7 - j);
    }
    duet_quantize_row(DUET_TYPE_Q4_0, x, got, 32);
    want[0] = 0x00;
    want[1] = 0x3c;
    for (int j = 0; j < 16; j++) {
        want[2 + j] = (uint8_t)(j | (15 - j) << 4);
    }
    assert_bytes(got, want, 18, "Q4_0");
    /* largest magnitude positive: d = -1 and the values flip around 8 */
    for (int j = 0; j < 32; j++) {
        x[j] = -x[j];
    }
    duet_quantize_row(DUET_TYPE_Q4_0, x, got, 32);
    want[1] = 0xbc;
    assert_bytes(got, want, 18, "Q4_0 with d < 0");
    /* Q5_0: values -16..15, d = 1 */
    for (int j = 0; j < 32; j++) {
        x[j] = (float)(j - 16);
    }
    duet_quantize_row(DUET_TYPE_Q5_0, x, got, 32);
    const uint8_t q5_0[22] = {0x00, 0x3c, 0x00, 0x00, 0xff, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44,
                              0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    assert_bytes(got, q5_0, 22, "Q5_0");
    /* Q4_1: values 3 + 0.5 q, q = 0..15 then 15..0: d = 0.5, m = 3 */
    for (int j = 0; j < 16; j++) {
        x[j] = 3 + 0.5f * j;
        x[j + 16] = 3 + 0.5f * (15 - j);
    }
    duet_quantize_row(DUET_TYPE_Q4_1, x, got, 32);
    want[0] = 0x00;
    want[1] = 0x38;
    want[2] = 0x00;
    want[3] = 0x42;
    for (int j = 0; j < 16; j++) {
        want[4 + j] = (uint8_t)(j | (15 - j) << 4);
    }
    assert_bytes(got, want, 20, "Q4_1");
    /* Q5_1: values 1 + 0.25 q, q = 0..31: d = 0.25, m = 1 */
    for (int j = 0; j < 32; j++) {
        x[j] = 1 + 0.25f * j;
    }
    duet_quantize_row(DUET_TYPE_Q5_1, x, got, 32);
    const uint8_t q5_1[24] = {0x00, 0x34, 0x00, 0x3c, 0x00, 0x00, 0xff, 0xff,
                              0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                              0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    assert_bytes(got, q5_1, 24, "Q5_1");
    /* Q8_0 and Q8_1 with amax 127 (d = 1): halves round away from zero, like roundf */
    static const float in8[8] = {127, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, -0.49999997f, -127};
    static const int8_t out8[8] = {127, 3, -3, 1, -1, 2, 0, -127};
    for (int j = 0; j < 32; j++) {
        x[j] = in8[j % 8];
    }
    duet_quantize_row(DUET_TYPE_Q8_0, x, got, 32);
    duet_quantize_row_q8_0(x, want, 32); /* the scalar one, whichever path ran above */
    cr_assert_eq(duet_le16(got), 0x3c00, "Q8_0 d");
    for (int j = 0; j < 32; j++) {
        cr_assert_eq((int8_t)got[2 + j], out8[j % 8], "Q8_0 value %d: %d", j, (int8_t)got[2 + j]);
        cr_assert_eq((int8_t)want[2 + j], out8[j % 8], "scalar Q8_0 value %d", j);
    }
    duet_quantize_row(DUET_TYPE_Q8_1, x, got, 32);
    cr_assert_eq(duet_le16(got), 0x3c00, "Q8_1 d");
    cr_assert_eq(duet_le16(got + 2), 0x4800, "Q8_1 s = d * sum q = 8");
    for (int j = 0; j < 32; j++) {
        cr_assert_eq((int8_t)got[4 + j], out8[j % 8], "Q8_1 value %d", j);
    }
}

/* ------------------------------------------------------------------ per-type properties */

ParameterizedTestParameters(kernels, round_trip)
{
    return cr_make_param_array(type_case, (void *)cases, N_CASES);
}

ParameterizedTest(const type_case *c, kernels, round_trip)
{
    for (size_t s = 0; s < N_SHAPES; s++) {
        fixture f;
        fixture_make(&f, c->type, shapes[s], 1000 + s);
        for (int r = 0; r < f.rows; r++) {
            double err = 0, ref = 0, worst = 0;
            for (int64_t i = 0; i < f.len; i++) {
                const double w = f.w[r * f.len + i], d = f.wd[r * f.len + i];
                err += (d - w) * (d - w);
                ref += w * w;
                if (fabs(w) >= 0x1p-14) { /* normal halves; subnormals have absolute steps */
                    worst = fmax(worst, fabs(d - w) / fabs(w));
                }
            }
            const double rel = sqrt(err / ref);
            if (verbose()) {
                fprintf(stderr, "%-5s len %5lld row %d: rel rms %.5f\n", name_of(c->type),
                        (long long)f.len, r, rel);
            }
            cr_assert_leq(rel, c->max_rel_rms, "%s len %lld row %d: relative RMS error %g > %g",
                          name_of(c->type), (long long)f.len, r, rel, c->max_rel_rms);
            if (c->type == DUET_TYPE_F16 || c->type == DUET_TYPE_BF16) {
                cr_assert_leq(worst, c->max_rel_rms, "%s: element error %g", name_of(c->type),
                              worst);
            }
        }
        /* the all-zero block (row 0, block 1) comes back as zeros */
        const uint32_t bs = duet_type_traits_of(c->type)->block_size;
        for (uint32_t i = bs; f.len >= 2 * (int64_t)bs && i < 2 * bs; i++) {
            cr_assert_eq(f.wd[i], 0.0f, "%s: zero block value %u is %g", name_of(c->type), i,
                         f.wd[i]);
        }
        fixture_free(&f);
    }
}

ParameterizedTestParameters(kernels, dot_matches_dequantized)
{
    return cr_make_param_array(type_case, (void *)cases, N_CASES);
}

ParameterizedTest(const type_case *c, kernels, dot_matches_dequantized)
{
    for (size_t s = 0; s < N_SHAPES; s++) {
        fixture f;
        fixture_make(&f, c->type, shapes[s], 2000 + s);
        for (int r = 0; r < f.rows; r++) {
            double ref, mag;
            reference_dot(&f, r, 0, f.len, &ref, &mag);
            const uint8_t *row = f.wq.p + (size_t)r * f.row_bytes;
            const float got = duet_vec_dot(c->type, f.len, row, f.xq.p);
            const float got_scalar = duet_vec_dot_scalar(c->type, f.len, row, f.xq.p);
            if (verbose()) {
                fprintf(stderr, "%-5s len %5lld row %d: dot err %.2e scalar %.2e (of M)\n",
                        name_of(c->type), (long long)f.len, r, fabs(got - ref) / mag,
                        fabs(got_scalar - ref) / mag);
            }
            cr_assert_leq(fabs(got - ref), DOT_TOL * mag, "%s len %lld row %d: %.9g vs %.9g (M %g)",
                          name_of(c->type), (long long)f.len, r, got, ref, mag);
            cr_assert_leq(fabs(got_scalar - ref), DOT_TOL * mag,
                          "%s scalar len %lld row %d: %.9g vs %.9g (M %g)", name_of(c->type),
                          (long long)f.len, r, got_scalar, ref, mag);
        }
        fixture_free(&f);
    }
}

ParameterizedTestParameters(kernels, scalar_matches_avx2)
{
    return cr_make_param_array(type_case, (void *)cases, N_CASES);
}

ParameterizedTest(const type_case *c, kernels, scalar_matches_avx2)
{
    require_avx2_path();
    for (size_t s = 0; s < N_SHAPES; s++) {
        fixture f;
        fixture_make(&f, c->type, shapes[s], 3000 + s);
        /* quantized blocks are compared one at a time, float types 32 values at a time */
        const uint32_t bs = duet_type_traits_of(c->type)->block_size;
        const int64_t chunk = bs == 1 ? 32 : bs;
        const size_t chunk_w = duet_type_row_bytes(c->type, chunk);
        const size_t chunk_x = duet_type_row_bytes(f.dot_type, chunk);
        double worst_row = 0, worst_block = 0;
        for (int r = 0; r < f.rows; r++) {
            const uint8_t *row = f.wq.p + (size_t)r * f.row_bytes;
            double ref, mag;
            reference_dot(&f, r, 0, f.len, &ref, &mag);
            const float a = duet_vec_dot(c->type, f.len, row, f.xq.p);
            const float b = duet_vec_dot_scalar(c->type, f.len, row, f.xq.p);
            worst_row = fmax(worst_row, fabs(a - b) / mag);
            cr_assert_leq(fabs(a - b), DOT_TOL * mag, "%s len %lld row %d: avx2 %.9g scalar %.9g",
                          name_of(c->type), (long long)f.len, r, a, b);
            for (int64_t k = 0; k < f.len / chunk; k++) {
                const uint8_t *wk = row + k * chunk_w;
                const uint8_t *xk = f.xq.p + k * chunk_x;
                reference_dot(&f, r, k * chunk, chunk, &ref, &mag);
                const float ka = duet_vec_dot(c->type, chunk, wk, xk);
                const float kb = duet_vec_dot_scalar(c->type, chunk, wk, xk);
                if (mag > 0) {
                    worst_block = fmax(worst_block, fabs(ka - kb) / mag);
                }
                cr_assert_leq(fabs(ka - kb), BLOCK_TOL * mag,
                              "%s len %lld row %d block %lld: avx2 %.9g scalar %.9g (M %g)",
                              name_of(c->type), (long long)f.len, r, (long long)k, ka, kb, mag);
            }
        }
        if (verbose()) {
            fprintf(stderr, "%-5s len %5lld: avx2-scalar worst row %.2e block %.2e (of M)\n",
                    name_of(c->type), (long long)f.len, worst_row, worst_block);
        }
        fixture_free(&f);
    }
}

/* All-zero weights and activations: zero scales must not produce NaN or garbage. */
ParameterizedTestParameters(kernels, zero_rows)
{
    return cr_make_param_array(type_case, (void *)cases, N_CASES);
}

ParameterizedTest(const type_case *c, kernels, zero_rows)
{
    enum { N = 512 };
    static float zeros[N], out[N];
    buffer w = buffer_new(duet_type_row_bytes(c->type, N), offset_for(c->type));
    const duet_tensor_type dt = duet_dot_type(c->type);
    buffer x = buffer_new(duet_type_row_bytes(dt, N), offset_for(dt));
    duet_quantize_row(c->type, zeros, w.p, N);
    duet_dequantize_row(c->type, w.p, out, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(out[i], 0.0f, "%s value %d", name_of(c->type), i);
    }
    duet_quantize_row(dt, zeros, x.p, N);
    cr_assert_eq(duet_vec_dot(c->type, N, w.p, x.p), 0.0f, "%s", name_of(c->type));
    cr_assert_eq(duet_vec_dot_scalar(c->type, N, w.p, x.p), 0.0f, "%s", name_of(c->type));
    buffer_free(&w);
    buffer_free(&x);
}

/* Float dot products at lengths that leave tails for the vector loops. */
Test(kernels, float_dots_odd_lengths)
{
    static const duet_tensor_type types[] = {DUET_TYPE_F32, DUET_TYPE_F16, DUET_TYPE_BF16};
    static const int64_t lens[] = {1, 7, 8, 31, 33, 65, 1003};
    for (size_t t = 0; t < 3; t++) {
        for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
            fixture f;
            fixture_make(&f, types[t], (shape){1, lens[l]}, 4000 + l);
            double ref, mag;
            reference_dot(&f, 0, 0, f.len, &ref, &mag);
            const float a = duet_vec_dot(types[t], f.len, f.wq.p, f.xq.p);
            const float b = duet_vec_dot_scalar(types[t], f.len, f.wq.p, f.xq.p);
            cr_assert_leq(fabs(a - ref), DOT_TOL * mag, "%s n %lld: %.9g vs %.9g",
                          name_of(types[t]), (long long)f.len, a, ref);
            cr_assert_leq(fabs(b - ref), DOT_TOL * mag, "%s scalar n %lld: %.9g vs %.9g",
                          name_of(types[t]), (long long)f.len, b, ref);
            fixture_free(&f);
        }
    }
}

/* The 32-value block dots unroll by 2 or 4 blocks: every remainder of the block count. */
Test(kernels, legacy_dots_every_block_count)
{
    static const duet_tensor_type types[] = {DUET_TYPE_Q4_0, DUET_TYPE_Q4_1, DUET_TYPE_Q5_0,
                                             DUET_TYPE_Q5_1, DUET_TYPE_Q8_0};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        for (int64_t nb = 1; nb <= 11; nb++) {
            fixture f;
            fixture_make(&f, types[t], (shape){1, 32 * nb}, 6000 + nb);
            double ref, mag;
            reference_dot(&f, 0, 0, f.len, &ref, &mag);
            const float a = duet_vec_dot(types[t], f.len, f.wq.p, f.xq.p);
            const float b = duet_vec_dot_scalar(types[t], f.len, f.wq.p, f.xq.p);
            cr_assert_leq(fabs(a - ref), DOT_TOL * mag, "%s %lld blocks: %.9g vs %.9g",
                          name_of(types[t]), (long long)nb, a, ref);
            cr_assert_leq(fabs(b - ref), DOT_TOL * mag, "%s scalar %lld blocks: %.9g vs %.9g",
                          name_of(types[t]), (long long)nb, b, ref);
            fixture_free(&f);
        }
    }
}

/* ------------------------------------------------------------------ quantizer identity */

/* Activation rows with everything that could split two quantizers: random values, exact
 * halves after scaling (ties), an all-zero block, huge and tiny values. */
static void fill_tricky(float *x, int64_t n, uint64_t seed)
{
    fill_activations(x, n, seed);
    for (int j = 0; j < 32; j++) {
        x[j] = j == 0 ? 127.0f : (float)(j - 16) + 0.5f; /* d = 1: every value a tie */
        x[32 + j] = 0.0f;
        x[64 + j] = (j % 2 ? -1 : 1) * 0x1p-100f * (float)(j + 1); /* tiny, scale far < fp16 */
        x[96 + j] = (j % 3 ? 1e30f : -3e37f) / (float)(j + 1);
    }
}

Test(kernels, avx2_quantizers_identical)
{
    require_avx2_path();
    enum { N = 4352 };
    static float x[N];
    static _Alignas(64) uint8_t a[N * 2 + 64], b[N * 2 + 64];
    for (uint64_t seed = 1; seed <= 4; seed++) {
        fill_tricky(x, N, seed);
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        duet_quantize_row(DUET_TYPE_Q8_0, x, a + 1, N);
        duet_quantize_row_q8_0(x, b + 1, N);
        assert_bytes(a, b, duet_type_row_bytes(DUET_TYPE_Q8_0, N) + 2, "Q8_0 avx2 vs scalar");
        duet_quantize_row(DUET_TYPE_Q8_1, x, a + 1, N);
        duet_quantize_row_q8_1(x, b + 1, N);
        assert_bytes(a, b, duet_type_row_bytes(DUET_TYPE_Q8_1, N) + 2, "Q8_1 avx2 vs scalar");
        duet_quantize_row(DUET_TYPE_Q8_K, x, a + 4, N - 256); /* 4352 - 256 is a multiple */
        duet_quantize_row_q8_k(x, b + 4, N - 256);
        assert_bytes(a, b, duet_type_row_bytes(DUET_TYPE_Q8_K, N - 256) + 4, "Q8_K avx2 vs scalar");
        /* F16 at an odd length, with infinities and NaNs of every kind */
        x[200] = INFINITY;
        x[201] = -INFINITY;
        x[202] = NAN;
        x[203] = f32_of_bits(0x7f800001);
        x[204] = f32_of_bits(0xffbfffff);
        x[205] = 65520.0f;
        x[206] = 0x1p-25f;
        x[207] = 0x3p-25f;
        x[208] = f32_of_bits(0x00000001); /* subnormal floats */
        x[209] = -f32_of_bits(0x007fffff);
        x[210] = 3e-6f; /* a subnormal half */
        duet_quantize_row(DUET_TYPE_F16, x, a + 1, N - 3);
        duet_quantize_row_f16(x, b + 1, N - 3);
        assert_bytes(a, b, 2 * (N - 3) + 2, "F16 avx2 vs scalar");
    }
}

/* ------------------------------------------------------------------ dispatch */

Test(kernels, avx2_detected)
{
    require_avx2_path();
    cr_assert(duet_kernels_use_avx2());
}

/* Criterion runs every test in its own process, so this one sees a fresh cache. */
Test(kernels, no_avx2_env_forces_scalar)
{
    setenv("DUET_NO_AVX2", "1", 1);
    cr_assert_not(duet_kernels_use_avx2());
    fixture f;
    fixture_make(&f, DUET_TYPE_Q4_0, (shape){1, 4352}, 5000);
    const float a = duet_vec_dot(DUET_TYPE_Q4_0, f.len, f.wq.p, f.xq.p);
    const float b = duet_vec_dot_scalar(DUET_TYPE_Q4_0, f.len, f.wq.p, f.xq.p);
    cr_assert(memcmp(&a, &b, sizeof a) == 0, "scalar path: %.9g vs %.9g", a, b);
    fixture_free(&f);
}
