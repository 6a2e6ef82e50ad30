/* K-quants (kquants.c, kquants_avx2.c): block layouts, quantize/dequantize accuracy, the
 * integer dot products against dequantized rows, AVX2 against scalar, and Q8_K.
 *
 * Hand-built blocks decode to values computed outside this code base (a pure Python decoder
 * written from the format description; the same values come out of llama.cpp's own
 * dequantize_row_qN_K and of ../shared/bench/mkgguf.py's decoder for these bytes), so a
 * layout mistake cannot cancel out between our quantizer and dequantizer. */
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kquants.h"
#include "tensor_type.h"

#define QK DUET_QK_K

typedef struct {
    const char *name;
    duet_tensor_type type;
    size_t block_bytes;
    void (*quantize)(const float *, void *, int64_t);
    void (*dequantize)(const void *, float *, int64_t);
    float (*dot)(int64_t, const void *, const void *);
    float (*dot_avx2)(int64_t, const void *, const void *);
    /* Bound on the relative RMS error ||x - deq(q(x))|| / ||x|| of one Gaussian row: about
     * 1.3x the worst seen here (Q2_K 0.282, Q3_K 0.160, Q4_K 0.075, Q5_K 0.037, Q6_K 0.0185),
     * each type roughly twice as precise as the one before. */
    double max_rel_rms;
} ktype;

static const ktype TYPES[] = {
    {"Q2_K", DUET_TYPE_Q2_K, 84, duet_quantize_row_q2_k, duet_dequantize_row_q2_k,
     duet_vec_dot_q2_k_q8_k_scalar, duet_vec_dot_q2_k_q8_k_avx2, 0.37},
    {"Q3_K", DUET_TYPE_Q3_K, 110, duet_quantize_row_q3_k, duet_dequantize_row_q3_k,
     duet_vec_dot_q3_k_q8_k_scalar, duet_vec_dot_q3_k_q8_k_avx2, 0.21},
    {"Q4_K", DUET_TYPE_Q4_K, 144, duet_quantize_row_q4_k, duet_dequantize_row_q4_k,
     duet_vec_dot_q4_k_q8_k_scalar, duet_vec_dot_q4_k_q8_k_avx2, 0.098},
    {"Q5_K", DUET_TYPE_Q5_K, 176, duet_quantize_row_q5_k, duet_dequantize_row_q5_k,
     duet_vec_dot_q5_k_q8_k_scalar, duet_vec_dot_q5_k_q8_k_avx2, 0.048},
    {"Q6_K", DUET_TYPE_Q6_K, 210, duet_quantize_row_q6_k, duet_dequantize_row_q6_k,
     duet_vec_dot_q6_k_q8_k_scalar, duet_vec_dot_q6_k_q8_k_avx2, 0.024},
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

static const int64_t LENS[] = {256, 768, 4352};
#define NLENS (sizeof LENS / sizeof LENS[0])
#define NROWS 6

/* ------------------------------------------------------------------ helpers */

static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s)
{
    return ((next_u64(s) >> 11) + 0.5) * 0x1p-53;
}

static double gauss(uint64_t *s)
{
    return sqrt(-2 * log(uniform(s))) * cos(6.283185307179586 * uniform(s));
}

/* Row r of a family: Gaussian with a scale and an offset that vary with r, so small (weight
 * like, 0.02), unit and large magnitudes and rows with a non-zero mean all occur. */
static void fill_row(float *x, int64_t n, uint64_t seed, int r)
{
    static const double scales[] = {1.0, 0.02, 20.0};
    double sc = scales[r % 3], mean = (r % 2) ? 0.3 * sc : 0;
    uint64_t s = seed * 1000003u + (uint64_t)r;
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)(mean + sc * gauss(&s));
    }
}

static bool have_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}

/* sum a*b in double and the Cauchy-Schwarz bound ||a||*||b|| that tolerances scale with. */
static double dot_ref(const float *a, const float *b, int64_t n, double *norm)
{
    double s = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) {
        s += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    *norm = sqrt(aa * bb);
    return s;
}

static void *alloc_row(const ktype *t, int64_t n)
{
    return malloc((size_t)(n / QK) * t->block_bytes);
}

/* ------------------------------------------------------------------ layout */

Test(kquants, block_layout)
{
    cr_assert_eq(sizeof(block_q2_K), 84);
    cr_assert_eq(sizeof(block_q3_K), 110);
    cr_assert_eq(sizeof(block_q4_K), 144);
    cr_assert_eq(sizeof(block_q5_K), 176);
    cr_assert_eq(sizeof(block_q6_K), 210);
    cr_assert_eq(sizeof(block_q8_K), 292);
    /* field offsets as in GGUF files */
    cr_assert_eq(offsetof(block_q2_K, qs), 16);
    cr_assert_eq(offsetof(block_q2_K, d), 80);
    cr_assert_eq(offsetof(block_q2_K, dmin), 82);
    cr_assert_eq(offsetof(block_q3_K, qs), 32);
    cr_assert_eq(offsetof(block_q3_K, scales), 96);
    cr_assert_eq(offsetof(block_q3_K, d), 108);
    cr_assert_eq(offsetof(block_q4_K, dmin), 2);
    cr_assert_eq(offsetof(block_q4_K, scales), 4);
    cr_assert_eq(offsetof(block_q4_K, qs), 16);
    cr_assert_eq(offsetof(block_q5_K, qh), 16);
    cr_assert_eq(offsetof(block_q5_K, qs), 48);
    cr_assert_eq(offsetof(block_q6_K, qh), 128);
    cr_assert_eq(offsetof(block_q6_K, scales), 192);
    cr_assert_eq(offsetof(block_q6_K, d), 208);
    cr_assert_eq(offsetof(block_q8_K, qs), 4);
    cr_assert_eq(offsetof(block_q8_K, bsums), 260);
    /* and the type table agrees */
    for (size_t k = 0; k < NTYPES; k++) {
        const duet_type_traits *tr = duet_type_traits_of(TYPES[k].type);
        cr_assert_not_null(tr, "%s", TYPES[k].name);
        cr_assert_eq(tr->block_size, QK, "%s", TYPES[k].name);
        cr_assert_eq(tr->block_bytes, TYPES[k].block_bytes, "%s", TYPES[k].name);
        cr_assert_eq(duet_type_row_bytes(TYPES[k].type, 4352), 17 * TYPES[k].block_bytes);
    }
    cr_assert_eq(duet_type_traits_of(DUET_TYPE_Q8_K)->block_bytes, 292);
}

/* ------------------------------------------------------------------ hand-built blocks */

/* Block bytes from a fixed mixing pattern, with the f16 scale fields then overwritten. */
static void pattern_block(uint8_t *b, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        b[k] = (uint8_t)((uint32_t)((k + 1) * 2654435761u) >> 13);
    }
}

static void put_half(uint8_t *b, size_t off, uint16_t h)
{
    b[off] = (uint8_t)h;
    b[off + 1] = (uint8_t)(h >> 8);
}

typedef struct {
    int i;
    float v;
} spot;

typedef struct {
    const ktype *t;
    size_t halves[2]; /* offsets of f16 fields, 0 = none */
    uint16_t half_vals[2];
    spot spots[26];
    double sum;         /* sum of all 256 values */
    double pattern_dot; /* dot with the Q8_K block of q8_pattern() */
} hand_case;

/* Expected values from the independent decoders (d = 1, dmin = 0.25 for Q2_K/Q4_K/Q5_K; d = 0.5 for
 * Q3_K; d = 0.125 for Q6_K); every one is exact in float. */
static const hand_case HAND[] = {
    {&TYPES[0],
     {80, 82},
     {0x3C00, 0x3400},
     {{0, -2.75f},   {1, -2.75f},   {15, 8.25f},   {16, 5.25f},   {31, 12.25f},  {32, 5.25f},
      {33, 2.25f},   {47, 5.25f},   {63, 11.5f},   {64, 30.5f},   {95, 16.5f},   {96, 1.5f},
      {127, -3.25f}, {128, 17.75f}, {129, 17.75f}, {150, 10.75f}, {159, -1.25f}, {160, -0.25f},
      {191, -3.0f},  {192, 25.0f},  {200, 7.0f},   {223, 14.0f},  {224, 3.0f},   {240, 21.25f},
      {254, 33.25f}, {255, 21.25f}},
     2543.0,
     242.375},
    {&TYPES[1],
     {108, 0},
     {0x3800, 0},
     {{0, 12.0f},    {1, 12.0f},    {15, -24.0f},  {16, -20.0f},  {31, 30.0f},  {32, 0.0f},
      {33, 0.0f},    {47, -0.0f},   {63, -24.0f},  {64, 4.0f},    {95, 14.5f},  {96, 0.0f},
      {127, 16.5f},  {128, -45.0f}, {129, -30.0f}, {150, -18.0f}, {159, -9.0f}, {160, 39.0f},
      {191, 31.5f},  {192, 31.0f},  {200, 62.0f},  {223, 29.0f},  {224, -8.0f}, {240, 42.0f},
      {254, -28.0f}, {255, 42.0f}},
     0.5,
     -16818.5},
    {&TYPES[2],
     {0, 2},
     {0x3C00, 0x3400},
     {{0, 337.5f},    {1, 165.5f},   {15, 380.5f},  {16, 208.5f},  {31, 251.5f},   {32, 260.5f},
      {33, 108.5f},   {47, 260.5f},  {63, 108.5f},  {64, 63.75f},  {95, -4.25f},   {96, 446.75f},
      {127, 326.75f}, {128, 482.0f}, {129, 277.0f}, {150, 605.0f}, {159, 359.0f},  {160, 121.0f},
      {191, 37.0f},   {192, 5.0f},   {200, 4.0f},   {223, 3.0f},   {224, 825.25f}, {240, 585.25f},
      {254, 825.25f}, {255, 585.25f}},
     63092.0,
     -21111.75},
    {&TYPES[3],
     {0, 2},
     {0x3C00, 0x3400},
     {{0, 79.5f},     {1, 595.5f},   {15, 810.5f},  {16, 1326.5f},  {31, -6.5f},    {32, 564.5f},
      {33, 374.5f},   {47, 564.5f},  {63, 1020.5f}, {64, 403.75f},  {95, 845.75f},  {96, 656.75f},
      {127, 56.75f},  {128, 851.0f}, {129, 687.0f}, {150, 1015.0f}, {159, 769.0f},  {160, 625.0f},
      {191, 541.0f},  {192, 31.0f},  {200, 29.0f},  {223, 13.0f},   {224, 285.25f}, {240, 45.25f},
      {254, 345.25f}, {255, 45.25f}},
     130454.0,
     57876.75},
    {&TYPES[4],
     {208, 0},
     {0x3000, 0},
     {{0, -147.125f}, {1, -93.625f},  {15, -374.5f},  {16, 243.0f},   {31, -232.875f},
      {32, -43.875f}, {33, 27.625f},  {47, -42.25f},  {63, 199.375f}, {64, -169.125f},
      {95, 56.0f},    {96, -1.5f},    {127, 9.0f},    {128, -246.5f}, {129, -319.0f},
      {150, 108.0f},  {159, 78.0f},   {160, -63.0f},  {191, -66.75f}, {192, -74.25f},
      {200, 297.0f},  {223, -38.75f}, {224, 138.75f}, {240, -397.5f}, {254, 397.5f},
      {255, -397.5f}},
     2068.5,
     -6264.0},
};

static void build_hand(const hand_case *h, uint8_t *blk)
{
    pattern_block(blk, h->t->block_bytes);
    for (int k = 0; k < 2; k++) {
        if (h->half_vals[k]) {
            put_half(blk, h->halves[k], h->half_vals[k]);
        }
    }
}

/* q8[v] = (29 v mod 255) - 127, d = 0.5, group sums filled in. */
static void q8_pattern(block_q8_K *y)
{
    y->d = 0.5f;
    for (int v = 0; v < QK; v++) {
        y->qs[v] = (int8_t)((v * 29) % 255 - 127);
    }
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int j = 0; j < 16; j++) {
            s += y->qs[16 * g + j];
        }
        y->bsums[g] = (int16_t)s;
    }
}

static void q8_ones(block_q8_K *y)
{
    y->d = 1.0f;
    memset(y->qs, 1, sizeof y->qs);
    for (int g = 0; g < 16; g++) {
        y->bsums[g] = 16;
    }
}

Test(kquants, hand_built_blocks_decode_to_known_values)
{
    for (size_t k = 0; k < sizeof HAND / sizeof HAND[0]; k++) {
        const hand_case *h = &HAND[k];
        uint8_t blk[210];
        float y[QK];
        build_hand(h, blk);
        h->t->dequantize(blk, y, QK);
        for (int s = 0; s < 26; s++) {
            cr_assert_eq(y[h->spots[s].i], h->spots[s].v, "%s: value %d is %g, expected %g",
                         h->t->name, h->spots[s].i, y[h->spots[s].i], h->spots[s].v);
        }
        double sum = 0;
        for (int v = 0; v < QK; v++) {
            sum += y[v];
        }
        cr_assert_eq(sum, h->sum, "%s: sum %g, expected %g", h->t->name, sum, h->sum);
    }
}

Test(kquants, hand_built_blocks_dot_to_known_values)
{
    block_q8_K ones, pat;
    q8_ones(&ones);
    q8_pattern(&pat);
    for (size_t k = 0; k < sizeof HAND / sizeof HAND[0]; k++) {
        const hand_case *h = &HAND[k];
        uint8_t blk[210];
        build_hand(h, blk);
        float (*dots[2])(int64_t, const void *, const void *) = {h->t->dot, h->t->dot_avx2};
        for (int d = 0; d < (have_avx2() ? 2 : 1); d++) {
            const char *which = d ? "avx2" : "scalar";
            float s1 = dots[d](QK, blk, &ones);
            float s2 = dots[d](QK, blk, &pat);
            cr_assert(fabs(s1 - h->sum) <= 1e-6 * fabs(h->sum) + 1e-3,
                      "%s %s: ones dot %g, want %g", h->t->name, which, s1, h->sum);
            cr_assert(fabs(s2 - h->pattern_dot) <= 1e-6 * fabs(h->pattern_dot) + 1e-3,
                      "%s %s: pattern dot %g, want %g", h->t->name, which, s2, h->pattern_dot);
        }
    }
}

/* ------------------------------------------------------------------ accuracy */

Test(kquants, quantize_dequantize_error_within_bounds)
{
    for (size_t k = 0; k < NTYPES; k++) {
        const ktype *t = &TYPES[k];
        double worst = 0;
        for (size_t l = 0; l < NLENS; l++) {
            int64_t n = LENS[l];
            float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
            void *q = alloc_row(t, n);
            for (int r = 0; r < NROWS; r++) {
                fill_row(x, n, 100 + k * 10 + l, r);
                t->quantize(x, q, n);
                t->dequantize(q, y, n);
                double err = 0, ref = 0;
                for (int64_t i = 0; i < n; i++) {
                    cr_assert(isfinite(y[i]));
                    err += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
                    ref += (double)x[i] * x[i];
                }
                double rel = sqrt(err / ref);
                worst = rel > worst ? rel : worst;
                cr_assert(rel <= t->max_rel_rms, "%s n=%ld row %d: relative RMS error %.4f > %.4f",
                          t->name, (long)n, r, rel, t->max_rel_rms);
            }
            free(x);
            free(y);
            free(q);
        }
        cr_log_info("%s: worst relative RMS error %.4f (bound %.3f)", t->name, worst,
                    t->max_rel_rms);
    }
}

Test(kquants, degenerate_rows)
{
    float x[QK], y[QK];
    uint8_t q[210];
    block_q8_K xq;
    for (int v = 0; v < QK; v++) {
        x[v] = (float)(v % 7) - 3.0f;
    }
    duet_quantize_row_q8_k(x, &xq, QK);
    for (size_t k = 0; k < NTYPES; k++) {
        const ktype *t = &TYPES[k];
        /* all zero: exact zeros back, dot 0 */
        memset(x, 0, sizeof x);
        t->quantize(x, q, QK);
        t->dequantize(q, y, QK);
        for (int v = 0; v < QK; v++) {
            cr_assert_eq(y[v], 0.0f, "%s: zero row gives %g at %d", t->name, y[v], v);
        }
        cr_assert_eq(t->dot(QK, q, &xq), 0.0f, "%s", t->name);
        /* constant rows of either sign and a single spike stay close */
        const float consts[] = {0.7f, -0.7f};
        for (int c = 0; c < 2; c++) {
            for (int v = 0; v < QK; v++) {
                x[v] = consts[c];
            }
            t->quantize(x, q, QK);
            t->dequantize(q, y, QK);
            for (int v = 0; v < QK; v++) {
                cr_assert(fabsf(y[v] - x[v]) <= 0.01f, "%s: constant %g gives %g", t->name, x[v],
                          y[v]);
            }
        }
        memset(x, 0, sizeof x);
        x[77] = 5.0f;
        t->quantize(x, q, QK);
        t->dequantize(q, y, QK);
        cr_assert(fabsf(y[77] - 5.0f) <= 0.01f, "%s: spike gives %g", t->name, y[77]);
    }
}

/* ------------------------------------------------------------------ dot products */

/* Tolerances are fractions of ||a||*||b|| (a dot of n ~ 4000 terms can cancel to far below
 * its terms, so relative-to-result bounds would be meaningless). Seen: about 1e-8 for both.
 * A dot product and the product of the dequantized rows differ only by float rounding. */
#define DOT_TOL 5e-7
/* AVX2 has the same integer block sums as scalar; only the float accumulation differs. */
#define AVX2_TOL 2e-7

static void check_dots(const ktype *t, int64_t n, const void *q, const block_q8_K *xq,
                       const char *what)
{
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    t->dequantize(q, a, n);
    duet_dequantize_row_q8_k(xq, b, n);
    double norm, ref = dot_ref(a, b, n, &norm);
    float sc = t->dot(n, q, xq);
    cr_assert(fabs(sc - ref) <= DOT_TOL * norm, "%s %s n=%ld: scalar dot %.9g, dequantized %.9g",
              t->name, what, (long)n, sc, ref);
    if (have_avx2()) {
        float av = t->dot_avx2(n, q, xq);
        cr_assert(fabs(av - sc) <= AVX2_TOL * norm, "%s %s n=%ld: avx2 dot %.9g, scalar %.9g",
                  t->name, what, (long)n, av, sc);
    }
    free(a);
    free(b);
}

Test(kquants, dot_matches_dequantized_rows)
{
    for (size_t k = 0; k < NTYPES; k++) {
        const ktype *t = &TYPES[k];
        for (size_t l = 0; l < NLENS; l++) {
            int64_t n = LENS[l];
            float *w = malloc((size_t)n * sizeof *w), *x = malloc((size_t)n * sizeof *x);
            void *q = alloc_row(t, n);
            block_q8_K *xq = malloc((size_t)(n / QK) * sizeof *xq);
            for (int r = 0; r < NROWS; r++) {
                fill_row(w, n, 200 + k * 10 + l, r);
                fill_row(x, n, 300 + k * 10 + l, r + 1);
                t->quantize(w, q, n);
                duet_quantize_row_q8_k(x, xq, n);
                check_dots(t, n, q, xq, "quantized");
            }
            free(w);
            free(x);
            free(q);
            free(xq);
        }
    }
}

/* Random bytes are valid blocks of every K-quant: they reach quants, scales and high bits
 * the quantizer rarely produces (Q6_K scale -128, Q3_K scale -32, all-ones high bits). */
static void random_blocks(const ktype *t, uint8_t *q, int64_t n, uint64_t *s)
{
    size_t nb = (size_t)(n / QK);
    for (size_t i = 0; i < nb * t->block_bytes; i++) {
        q[i] = (uint8_t)next_u64(s);
    }
    for (size_t i = 0; i < nb; i++) {
        uint8_t *b = q + i * t->block_bytes;
        /* f16 fields: positive normal values 2^-10..2^-3 */
        uint16_t h1 = (uint16_t)(0x1400 + (next_u64(s) % 0x1C00));
        uint16_t h2 = (uint16_t)(0x1400 + (next_u64(s) % 0x1C00));
        switch (t->type) {
        case DUET_TYPE_Q2_K:
            put_half(b, 80, h1);
            put_half(b, 82, h2);
            break;
        case DUET_TYPE_Q3_K:
            put_half(b, 108, h1);
            break;
        case DUET_TYPE_Q6_K:
            put_half(b, 208, h1);
            break;
        default:
            put_half(b, 0, h1);
            put_half(b, 2, h2);
            break;
        }
    }
}

static void random_q8k(block_q8_K *y, int64_t n, uint64_t *s)
{
    for (int64_t i = 0; i < n / QK; i++) {
        y[i].d = (float)(0.001 + uniform(s) * 0.1) * ((next_u64(s) & 1) ? 1 : -1);
        for (int v = 0; v < QK; v++) {
            y[i].qs[v] = (int8_t)((int)(next_u64(s) % 255) - 127);
        }
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) {
                sum += y[i].qs[16 * g + j];
            }
            y[i].bsums[g] = (int16_t)sum;
        }
    }
    /* extremes: the first block all +127 / -127 halves */
    for (int v = 0; v < QK; v++) {
        y[0].qs[v] = v < 128 ? 127 : -127;
    }
    for (int g = 0; g < 16; g++) {
        y[0].bsums[g] = g < 8 ? 16 * 127 : -16 * 127;
    }
}

Test(kquants, dot_matches_dequantized_random_blocks)
{
    uint64_t s = 42;
    const int64_t n = 4352;
    uint8_t *q = malloc((size_t)(n / QK) * 210);
    block_q8_K *xq = malloc((size_t)(n / QK) * sizeof *xq);
    for (size_t k = 0; k < NTYPES; k++) {
        for (int trial = 0; trial < 20; trial++) {
            random_blocks(&TYPES[k], q, n, &s);
            random_q8k(xq, n, &s);
            if (trial == 0) {
                /* all-ones quant bytes: every quant at its maximum */
                memset(q + 4, 0xFF, 40);
            }
            check_dots(&TYPES[k], n, q, xq, "random");
        }
    }
    free(q);
    free(xq);
}

/* Rows in a GGUF file are only 2-byte aligned in general (block sizes 84, 110, 210 are not
 * multiples of 4), so the vector loads must not assume more. */
Test(kquants, avx2_dot_handles_2_byte_aligned_rows)
{
    if (!have_avx2()) {
        cr_skip_test("no AVX2/FMA/F16C on this CPU");
    }
    uint64_t s = 7;
    const int64_t n = 768;
    uint8_t *buf = malloc(3 * 210 + 2);
    block_q8_K *xq = malloc(3 * sizeof *xq);
    for (size_t k = 0; k < NTYPES; k++) {
        random_blocks(&TYPES[k], buf + 2, n, &s);
        random_q8k(xq, n, &s);
        check_dots(&TYPES[k], n, buf + 2, xq, "2-byte aligned");
    }
    free(buf);
    free(xq);
}

/* ------------------------------------------------------------------ Q8_K */

Test(kquants, q8k_group_sums_scale_and_rounding)
{
    const int64_t n = 4352;
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    block_q8_K *b = malloc((size_t)(n / QK) * sizeof *b);
    for (int r = 0; r < NROWS; r++) {
        fill_row(x, n, 400, r);
        duet_quantize_row_q8_k(x, b, n);
        duet_dequantize_row_q8_k(b, y, n);
        for (int64_t i = 0; i < n / QK; i++) {
            const float *xb = x + i * QK;
            for (int g = 0; g < 16; g++) {
                int sum = 0;
                for (int j = 0; j < 16; j++) {
                    sum += b[i].qs[16 * g + j];
                }
                cr_assert_eq(b[i].bsums[g], sum, "block %ld group %d", (long)i, g);
            }
            /* the first value of largest magnitude becomes -127 and d = max / -127 */
            int jmax = 0;
            for (int j = 1; j < QK; j++) {
                if (fabsf(xb[j]) > fabsf(xb[jmax])) {
                    jmax = j;
                }
            }
            cr_assert_eq(b[i].qs[jmax], -127);
            cr_assert_eq(b[i].d, 1 / (-127.f / xb[jmax]));
            for (int j = 0; j < QK; j++) {
                cr_assert(fabsf(y[i * QK + j] - xb[j]) <= 0.5001f * fabsf(b[i].d), "value %d", j);
            }
        }
    }
    free(x);
    free(y);
    free(b);
}

/* Known outputs: a block whose largest value is 127 has scale exactly -1, so values map to
 * their negation and halves show the rounding rule (half to even, as llama.cpp). */
static void q8k_known(void (*quant)(const float *, void *, int64_t), const char *which)
{
    float x[3 * QK] = {0};
    block_q8_K b[3];
    memset(b, 0x55, sizeof b);
    x[5] = 127.0f;
    x[6] = -127.0f; /* same magnitude later: the first one sets the sign */
    x[7] = 2.5f;
    x[8] = 3.5f;
    x[9] = -0.5f;
    x[10] = -1.5f;
    x[40] = 100.0f;
    /* block 1 stays zero; block 2: negative maximum first */
    x[2 * QK + 0] = -4.0f;
    x[2 * QK + 1] = 4.0f;
    x[2 * QK + 2] = 1.0f;
    quant(x, b, 3 * QK);

    cr_assert_eq(b[0].d, -1.0f, "%s", which);
    const int want[][2] = {{5, -127}, {6, 127}, {7, -2},    {8, -4},
                           {9, 0},    {10, 2},  {40, -100}, {0, 0}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        cr_assert_eq(b[0].qs[want[k][0]], want[k][1], "%s: qs[%d] = %d", which, want[k][0],
                     b[0].qs[want[k][0]]);
    }
    cr_assert_eq(b[0].bsums[0], -127 + 127 - 2 - 4 + 0 + 2, "%s", which);
    cr_assert_eq(b[0].bsums[2], -100, "%s", which);
    cr_assert_eq(b[0].bsums[1], 0, "%s", which);

    cr_assert_eq(b[1].d, 0.0f, "%s", which);
    for (int j = 0; j < QK; j++) {
        cr_assert_eq(b[1].qs[j], 0, "%s", which);
    }
    for (int g = 0; g < 16; g++) {
        cr_assert_eq(b[1].bsums[g], 0, "%s", which);
    }

    cr_assert_eq(b[2].d, 1 / 31.75f, "%s", which);
    cr_assert_eq(b[2].qs[0], -127, "%s", which);
    cr_assert_eq(b[2].qs[1], 127, "%s", which);
    cr_assert_eq(b[2].qs[2], 32, "%s", which); /* 31.75 */
    cr_assert_eq(b[2].bsums[0], 32, "%s", which);
}

Test(kquants, q8k_known_values)
{
    q8k_known(duet_quantize_row_q8_k, "scalar");
    if (have_avx2()) {
        q8k_known(duet_quantize_row_q8_k_avx2, "avx2");
    }
}

Test(kquants, q8k_avx2_is_bit_identical_to_scalar)
{
    if (!have_avx2()) {
        cr_skip_test("no AVX2/FMA/F16C on this CPU");
    }
    const int64_t n = 4352;
    float *x = malloc((size_t)n * sizeof *x);
    block_q8_K *a = malloc((size_t)(n / QK) * sizeof *a), *b = malloc((size_t)(n / QK) * sizeof *b);
    for (int r = 0; r < 3 * NROWS; r++) {
        fill_row(x, n, 500, r);
        if (r % 3 == 2) {
            /* ties in magnitude at various positions, and values on rounding halves */
            for (int64_t i = 0; i < n / QK; i++) {
                x[i * QK + (i * 37) % QK] = 1000.0f;
                x[i * QK + (i * 91 + 5) % QK] = -1000.0f;
            }
            for (int64_t i = 0; i < n; i += 3) {
                x[i] = (float)((i % 254) - 127) * (1000.0f / 127.0f) + 0.5f * (1000.0f / 127.0f);
            }
        }
        duet_quantize_row_q8_k(x, a, n);
        duet_quantize_row_q8_k_avx2(x, b, n);
        cr_assert_eq(memcmp(a, b, (size_t)(n / QK) * sizeof *a), 0, "row %d differs", r);
    }
    free(x);
    free(a);
    free(b);
}
