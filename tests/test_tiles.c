/* Tiles of dot products (duet_vec_dot_tile): for every weight type, every tile shape
 * 1..4 x 1..4, several row lengths and unaligned row strides, each result equals the
 * per-row dot of its (weight row, activation row) pair; the VNNI, AVX2 and scalar paths
 * agree with each other; nothing outside the tile is written.
 *
 * Tolerance: the kernels sum each block's integer products exactly, so two paths differ
 * only in the order (and FMA rounding) of the float block terms: within 1e-6 * M, M being
 * the sum of the magnitudes of the terms (for Q4_1/Q5_1 including the min terms, as in
 * test_kernels). One unit of a single block's integer sum is far above that at these
 * lengths, and a test below (single_block_rows) checks blocks one at a time. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kquants.h"
#include "legacy_quants.h"
#include "tensor_type.h"

#define TOL 1e-6

/* ------------------------------------------------------------------ helpers */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_gauss(uint64_t *s)
{
    const double u1 = (double)((rng_next(s) >> 11) + 1) * 0x1p-53;
    const double u2 = (double)(rng_next(s) >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static bool cpu_has_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}

static bool cpu_has_vnni(void)
{
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
}

static bool env_is_1(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && strcmp(v, "1") == 0;
}

static const char *name_of(duet_tensor_type t)
{
    return duet_type_traits_of(t)->name;
}

/* Byte alignment a row of type t needs (F32 is read as floats, the K-quant structs have
 * 2- and 4-byte fields); 1 means rows may start anywhere. */
static size_t align_for(duet_tensor_type t)
{
    if (t == DUET_TYPE_F32 || duet_type_traits_of(t)->block_size == 256) {
        return 4;
    }
    return 1;
}

/* A stride a little over `bytes`: odd where the type allows it, else the next multiple of
 * the alignment past bytes + 1. */
static size_t stride_for(duet_tensor_type t, size_t bytes, size_t extra)
{
    const size_t a = align_for(t);
    if (a == 1) {
        return bytes + 2 * extra + 1;
    }
    return (bytes + extra + a) / a * a;
}

/* Four weight rows and four activation rows of one type and length, quantized into buffers
 * with the given strides, starting `offset` bytes past an aligned address. */
typedef struct {
    duet_tensor_type type, dot_type;
    int64_t len;
    size_t row_bytes, x_bytes, row_stride, x_stride;
    void *wbase, *xbase;
    uint8_t *w, *x;   /* the rows */
    float *wd, *xd;   /* dequantized, 4 rows each */
    double ref[4][4]; /* duet_vec_dot_scalar of (row i, activation j) */
    double mag[4][4]; /* M of that pair */
} tile_fixture;

static void compute_refs(tile_fixture *f);

static void fixture_make(tile_fixture *f, duet_tensor_type t, int64_t len, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    f->type = t;
    f->dot_type = duet_dot_type(t);
    f->len = len;
    f->row_bytes = duet_type_row_bytes(t, len);
    f->x_bytes = duet_type_row_bytes(f->dot_type, len);
    cr_assert_gt(f->row_bytes, 0, "%s: row bytes of %lld", name_of(t), (long long)len);
    f->row_stride = stride_for(t, f->row_bytes, seed % 3);
    f->x_stride = stride_for(f->dot_type, f->x_bytes, seed % 5);
    const size_t woff = align_for(t) == 1 ? 1 + seed % 7 : 4;
    const size_t xoff = align_for(f->dot_type) == 1 ? 3 + seed % 5 : 4;
    f->wbase = aligned_alloc(64, (4 * f->row_stride + woff + 63) / 64 * 64 + 64);
    f->xbase = aligned_alloc(64, (4 * f->x_stride + xoff + 63) / 64 * 64 + 64);
    cr_assert(f->wbase && f->xbase);
    f->w = (uint8_t *)f->wbase + woff;
    f->x = (uint8_t *)f->xbase + xoff;
    memset(f->w, 0xa5, 4 * f->row_stride);
    memset(f->x, 0x5a, 4 * f->x_stride);
    float *tmp = malloc((size_t)len * sizeof(float));
    f->wd = malloc(4 * (size_t)len * sizeof(float));
    f->xd = malloc(4 * (size_t)len * sizeof(float));
    cr_assert(tmp && f->wd && f->xd);
    uint64_t s = seed;
    for (int r = 0; r < 4; r++) {
        /* weight-like: a scale per row, a mean on odd rows, rare outliers; one zero block in
         * row 2 */
        const double sigma = 0.02 * (1 + r % 3), mean = (r % 2) ? 0.6 * sigma : 0.0;
        for (int64_t i = 0; i < len; i++) {
            double v = mean + sigma * rng_gauss(&s);
            if (rng_next(&s) % 89 == 0) {
                v *= 7;
            }
            tmp[i] = (float)v;
        }
        const int64_t bs = duet_type_traits_of(t)->block_size;
        if (r == 2 && len >= 2 * bs) {
            memset(tmp + bs, 0, (size_t)bs * sizeof(float));
        }
        duet_quantize_row(t, tmp, f->w + r * f->row_stride, len);
        /* activation-like: unit Gaussian, rare large outliers */
        for (int64_t i = 0; i < len; i++) {
            double v = rng_gauss(&s);
            if (rng_next(&s) % 173 == 0) {
                v *= 11;
            }
            tmp[i] = (float)v;
        }
        duet_quantize_row(f->dot_type, tmp, f->x + r * f->x_stride, len);
    }
    free(tmp);
    compute_refs(f);
}

/* The scalar dots of every (row, activation) pair of f and their magnitudes M, from the
 * rows as they are now. */
static void compute_refs(tile_fixture *f)
{
    const duet_tensor_type t = f->type;
    const int64_t len = f->len;
    for (int r = 0; r < 4; r++) {
        duet_dequantize_row(t, f->w + r * f->row_stride, f->wd + r * len, len);
        duet_dequantize_row(f->dot_type, f->x + r * f->x_stride, f->xd + r * len, len);
    }
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++) {
            const float *wd = f->wd + i * len, *xd = f->xd + j * len;
            double m = 0;
            for (int64_t k = 0; k < len; k++) {
                m += fabs((double)wd[k] * xd[k]);
            }
            if (t == DUET_TYPE_Q4_1 || t == DUET_TYPE_Q5_1) {
                /* min terms: m of the weight block times s of the activation block */
                const uint8_t *row = f->w + i * f->row_stride;
                const duet_block_q8_1 *xb = (const duet_block_q8_1 *)(f->x + j * f->x_stride);
                const size_t wb = duet_type_traits_of(t)->block_bytes;
                for (int64_t b = 0; b < len / DUET_QK; b++) {
                    const double mw = duet_f16_to_f32(duet_le16(row + b * wb + 2));
                    m += fabs(mw) * fabs((double)duet_f16_to_f32(duet_le16(xb[b].s)));
                }
            }
            f->mag[i][j] = m;
            f->ref[i][j] =
                duet_vec_dot_scalar(t, len, f->w + i * f->row_stride, f->x + j * f->x_stride);
        }
    }
}

static void fixture_free(tile_fixture *f)
{
    free(f->wbase);
    free(f->xbase);
    free(f->wd);
    free(f->xd);
}

typedef void (*tile_fn)(int64_t n, const void *rows, size_t row_stride, int n_rows, const void *x,
                        size_t x_stride, int n_x, float *out, size_t out_stride);

/* duet_vec_dot_tile itself, as a tile_fn. */
static duet_tensor_type dispatch_type;
static void dispatch_tile(int64_t n, const void *rows, size_t row_stride, int n_rows, const void *x,
                          size_t x_stride, int n_x, float *out, size_t out_stride)
{
    duet_vec_dot_tile(dispatch_type, n, rows, row_stride, n_rows, x, x_stride, n_x, out,
                      out_stride);
}

#define OUT_STRIDE 7 /* > DUET_TILE_MAX: entries between a tile's rows must stay untouched */
#define SENTINEL -12345.678f

/* Every shape 1..4 x 1..4 of fn on f, with the tile starting at weight row r0 and activation
 * row j0 (so that r0 + n_rows <= 4 and j0 + n_x <= 4): each entry within TOL * M of the
 * scalar dot (exact equality when exact is set), every other entry of out untouched. */
static void check_all_shapes(const tile_fixture *f, tile_fn fn, const char *what, bool exact)
{
    for (int nr = 1; nr <= DUET_TILE_MAX; nr++) {
        for (int nx = 1; nx <= DUET_TILE_MAX; nx++) {
            const int r0 = 4 - nr, j0 = (nx + nr) % (5 - nx);
            float out[DUET_TILE_MAX * OUT_STRIDE + 1];
            for (size_t k = 0; k < sizeof out / sizeof out[0]; k++) {
                out[k] = SENTINEL;
            }
            fn(f->len, f->w + r0 * f->row_stride, f->row_stride, nr, f->x + j0 * f->x_stride,
               f->x_stride, nx, out, OUT_STRIDE);
            for (int j = 0; j < DUET_TILE_MAX; j++) {
                for (int i = 0; i < OUT_STRIDE; i++) {
                    const float got = out[j * OUT_STRIDE + i];
                    if (j >= nx || i >= nr) {
                        cr_assert(got == SENTINEL,
                                  "%s %s len %lld tile %dx%d: out[%d][%d] written (%g)", what,
                                  name_of(f->type), (long long)f->len, nr, nx, j, i, got);
                        continue;
                    }
                    const double ref = f->ref[r0 + i][j0 + j];
                    const double tol = exact ? 0.0 : TOL * f->mag[r0 + i][j0 + j];
                    cr_assert(fabs(got - ref) <= tol,
                              "%s %s len %lld tile %dx%d (rows %d.., x %d..): [%d][%d] = %.9g, "
                              "dot %.9g, diff %.3g > %.3g",
                              what, name_of(f->type), (long long)f->len, nr, nx, r0, j0, j, i, got,
                              ref, fabs(got - ref), tol);
                }
            }
            cr_assert(out[DUET_TILE_MAX * OUT_STRIDE] == SENTINEL);
        }
    }
}

/* ------------------------------------------------------------------ cases */

static const duet_tensor_type weight_types[] = {
    DUET_TYPE_F32,  DUET_TYPE_F16,  DUET_TYPE_BF16, DUET_TYPE_Q4_0, DUET_TYPE_Q4_1,
    DUET_TYPE_Q5_0, DUET_TYPE_Q5_1, DUET_TYPE_Q8_0, DUET_TYPE_Q2_K, DUET_TYPE_Q3_K,
    DUET_TYPE_Q4_K, DUET_TYPE_Q5_K, DUET_TYPE_Q6_K,
};
#define N_TYPES (sizeof weight_types / sizeof weight_types[0])

/* The lengths every type is tested at, and for the 32-value block types also odd block
 * counts (a tile kernel taking two blocks per step ends with a single one). */
static const int64_t lengths[] = {256, 768, 4352};
static const int64_t odd_lengths[] = {32, 96, 288, 4384};

typedef void (*per_length_fn)(const tile_fixture *f);

static void for_each_length(duet_tensor_type t, uint64_t seed, per_length_fn fn)
{
    const bool small_blocks = duet_type_traits_of(t)->block_size <= DUET_QK;
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0] + 4; l++) {
        int64_t len;
        if (l < sizeof lengths / sizeof lengths[0]) {
            len = lengths[l];
        } else if (small_blocks) {
            len = odd_lengths[l - sizeof lengths / sizeof lengths[0]];
        } else {
            continue;
        }
        tile_fixture f;
        fixture_make(&f, t, len, seed + (uint64_t)l * 7919);
        fn(&f);
        fixture_free(&f);
    }
}

/* The legacy types' own kernels, to compare the paths directly. The parameters of the tests
 * are the types only: Criterion may run a test in a fresh process where the parent's
 * function addresses mean nothing. */
typedef struct {
    duet_tensor_type type;
    tile_fn avx2, vnni;
} legacy_tiles;

static const legacy_tiles legacy_fns[] = {
    {DUET_TYPE_Q4_0, duet_tile_q4_0_q8_0_avx2, duet_tile_q4_0_q8_0_vnni},
    {DUET_TYPE_Q5_0, duet_tile_q5_0_q8_0_avx2, duet_tile_q5_0_q8_0_vnni},
    {DUET_TYPE_Q8_0, duet_tile_q8_0_q8_0_avx2, duet_tile_q8_0_q8_0_vnni},
    {DUET_TYPE_Q4_1, duet_tile_q4_1_q8_1_avx2, duet_tile_q4_1_q8_1_vnni},
    {DUET_TYPE_Q5_1, duet_tile_q5_1_q8_1_avx2, duet_tile_q5_1_q8_1_vnni},
};
#define N_LEGACY (sizeof legacy_fns / sizeof legacy_fns[0])

static const duet_tensor_type legacy[N_LEGACY] = {DUET_TYPE_Q4_0, DUET_TYPE_Q5_0, DUET_TYPE_Q8_0,
                                                  DUET_TYPE_Q4_1, DUET_TYPE_Q5_1};

static const legacy_tiles *legacy_of(duet_tensor_type t)
{
    for (size_t k = 0; k < N_LEGACY; k++) {
        if (legacy_fns[k].type == t) {
            return &legacy_fns[k];
        }
    }
    cr_assert_fail("no tile kernels for %s", name_of(t));
    return NULL;
}

/* ------------------------------------------------------------------ dispatch */

static void check_dispatch(const tile_fixture *f)
{
    dispatch_type = f->type;
    check_all_shapes(f, dispatch_tile, "dispatch", false);
    /* and against duet_vec_dot (whichever path it takes) */
    for (int i = 0; i < 4; i++) {
        float out[4 * 4];
        duet_vec_dot_tile(f->type, f->len, f->w + i * f->row_stride, f->row_stride, 1, f->x,
                          f->x_stride, 4, out, 4);
        for (int j = 0; j < 4; j++) {
            const float d =
                duet_vec_dot(f->type, f->len, f->w + i * f->row_stride, f->x + j * f->x_stride);
            cr_assert(fabs(out[j * 4] - d) <= TOL * f->mag[i][j],
                      "%s len %lld: tile %.9g vs duet_vec_dot %.9g", name_of(f->type),
                      (long long)f->len, out[j * 4], d);
        }
    }
}

ParameterizedTestParameters(tiles, dispatch_matches_dot)
{
    return cr_make_param_array(duet_tensor_type, weight_types, N_TYPES);
}

/* Whatever path this CPU takes (VNNI, AVX2 or scalar). */
ParameterizedTest(const duet_tensor_type *t, tiles, dispatch_matches_dot)
{
    for_each_length(*t, 1000 + (uint64_t)*t, check_dispatch);
}

ParameterizedTestParameters(tiles, avx2_dispatch_matches_scalar)
{
    return cr_make_param_array(duet_tensor_type, weight_types, N_TYPES);
}

/* DUET_NO_VNNI=1: the AVX2 tiles (or the loop over the AVX2 dot) behind the dispatch.
 * Criterion runs each test in its own process, so the setting is seen fresh. */
ParameterizedTest(const duet_tensor_type *t, tiles, avx2_dispatch_matches_scalar)
{
    if (!cpu_has_avx2() || env_is_1("DUET_NO_AVX2")) {
        cr_skip_test("no AVX2+FMA+F16C (or DUET_NO_AVX2=1): nothing to compare");
    }
    setenv("DUET_NO_VNNI", "1", 1);
    cr_assert(duet_kernels_use_avx2());
    cr_assert_not(duet_kernels_use_vnni());
    for_each_length(*t, 2000 + (uint64_t)*t, check_dispatch);
}

ParameterizedTestParameters(tiles, scalar_dispatch_exact)
{
    return cr_make_param_array(duet_tensor_type, weight_types, N_TYPES);
}

static void check_scalar_exact(const tile_fixture *f)
{
    dispatch_type = f->type;
    check_all_shapes(f, dispatch_tile, "scalar dispatch", true);
}

/* DUET_NO_AVX2=1: tiles are the scalar dot itself, bit for bit. */
ParameterizedTest(const duet_tensor_type *t, tiles, scalar_dispatch_exact)
{
    setenv("DUET_NO_AVX2", "1", 1);
    cr_assert_not(duet_kernels_use_avx2());
    cr_assert_not(duet_kernels_use_vnni());
    for_each_length(*t, 3000 + (uint64_t)*t, check_scalar_exact);
}

/* ------------------------------------------------------------------ the kernels directly */

static tile_fn current_fn;
static const char *current_what;

static void check_current(const tile_fixture *f)
{
    check_all_shapes(f, current_fn, current_what, false);
}

ParameterizedTestParameters(tiles, legacy_avx2_matches_scalar)
{
    return cr_make_param_array(duet_tensor_type, legacy, N_LEGACY);
}

ParameterizedTest(const duet_tensor_type *lt, tiles, legacy_avx2_matches_scalar)
{
    const legacy_tiles *c = legacy_of(*lt);
    if (!cpu_has_avx2()) {
        cr_skip_test("this CPU has no AVX2+FMA+F16C");
    }
    current_fn = c->avx2;
    current_what = "avx2";
    for_each_length(c->type, 4000 + (uint64_t)c->type, check_current);
}

ParameterizedTestParameters(tiles, legacy_vnni_matches_scalar)
{
    return cr_make_param_array(duet_tensor_type, legacy, N_LEGACY);
}

ParameterizedTest(const duet_tensor_type *lt, tiles, legacy_vnni_matches_scalar)
{
    const legacy_tiles *c = legacy_of(*lt);
    if (!cpu_has_vnni()) {
        cr_skip_test("this CPU has no AVX-512 F/BW/VL/VNNI: the VNNI tiles are not compared");
    }
    current_fn = c->vnni;
    current_what = "vnni";
    for_each_length(c->type, 5000 + (uint64_t)c->type, check_current);
}

/* VNNI against AVX2 directly, on the same data: both within TOL * M of each other. */
ParameterizedTestParameters(tiles, legacy_vnni_matches_avx2)
{
    return cr_make_param_array(duet_tensor_type, legacy, N_LEGACY);
}

ParameterizedTest(const duet_tensor_type *lt, tiles, legacy_vnni_matches_avx2)
{
    const legacy_tiles *c = legacy_of(*lt);
    if (!cpu_has_vnni()) {
        cr_skip_test("this CPU has no AVX-512 F/BW/VL/VNNI: the VNNI tiles are not compared");
    }
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
        tile_fixture f;
        fixture_make(&f, c->type, lengths[l], 6000 + l);
        float a[16], v[16];
        c->avx2(f.len, f.w, f.row_stride, 4, f.x, f.x_stride, 4, a, 4);
        c->vnni(f.len, f.w, f.row_stride, 4, f.x, f.x_stride, 4, v, 4);
        for (int j = 0; j < 4; j++) {
            for (int i = 0; i < 4; i++) {
                cr_assert(fabs(a[j * 4 + i] - v[j * 4 + i]) <= TOL * f.mag[i][j],
                          "%s len %lld [%d][%d]: avx2 %.9g vnni %.9g", name_of(c->type),
                          (long long)f.len, j, i, a[j * 4 + i], v[j * 4 + i]);
            }
        }
        fixture_free(&f);
    }
}

/* Rows that are zero but for one block: the tile's result is that block's term alone, which
 * must equal the scalar dot to within a few float roundings (far below one unit of the
 * block's integer sum) at every block position, for every row and activation slot and both
 * the even and the odd block of a step. */
static void check_single_blocks(duet_tensor_type t, tile_fn fn, const char *what)
{
    const int64_t len = 320; /* 10 blocks of 32 */
    tile_fixture f;
    fixture_make(&f, t, len, 7000 + (uint64_t)t);
    const size_t wb = duet_type_traits_of(t)->block_bytes;
    uint8_t *saved = malloc(4 * f.row_stride);
    cr_assert_not_null(saved);
    memcpy(saved, f.w, 4 * f.row_stride);
    for (int64_t blk = 0; blk < len / DUET_QK; blk++) {
        /* zero all other blocks: a zero f16 scale (and min) makes a block contribute 0 */
        for (int r = 0; r < 4; r++) {
            uint8_t *row = f.w + r * f.row_stride;
            memcpy(row, saved + r * f.row_stride, f.row_bytes);
            for (int64_t b = 0; b < len / DUET_QK; b++) {
                if (b != blk) {
                    memset(row + b * wb, 0, wb);
                }
            }
        }
        compute_refs(&f);
        float out[16];
        fn(len, f.w, f.row_stride, 4, f.x, f.x_stride, 4, out, 4);
        for (int i = 0; i < 4; i++) {
            for (int j = 0; j < 4; j++) {
                /* a few roundings of the block's terms: at most 5e-7 * 32 * 128 * 127 (Q8_0)
                 * of one unit dw * dx of its integer sum */
                cr_assert(fabs(out[j * 4 + i] - f.ref[i][j]) <= 5e-7 * f.mag[i][j],
                          "%s %s block %lld [%d][%d]: %.9g vs scalar %.9g", what, name_of(t),
                          (long long)blk, j, i, out[j * 4 + i], f.ref[i][j]);
            }
        }
    }
    free(saved);
    fixture_free(&f);
}

ParameterizedTestParameters(tiles, single_block_rows)
{
    return cr_make_param_array(duet_tensor_type, legacy, N_LEGACY);
}

ParameterizedTest(const duet_tensor_type *lt, tiles, single_block_rows)
{
    const legacy_tiles *c = legacy_of(*lt);
    if (!cpu_has_avx2()) {
        cr_skip_test("this CPU has no AVX2+FMA+F16C");
    }
    check_single_blocks(c->type, c->avx2, "avx2");
    if (cpu_has_vnni()) {
        check_single_blocks(c->type, c->vnni, "vnni");
    } else {
        cr_log_info("this CPU has no AVX-512 VNNI: only the AVX2 tiles checked");
    }
}

/* Extreme quants at the ends of their ranges, the scales left as quantized: weights all at
 * the minimum (Q8_0 -128, which no quantizer writes but a file may hold; nibbles 0 and no
 * fifth bits), all at the maximum (127; 15 with every fifth bit), or alternating, times
 * activations of +-127. These are where careless int16 intermediate sums would overflow. */
static void fill_extreme(tile_fixture *f, int pattern)
{
    const size_t wb = duet_type_traits_of(f->type)->block_bytes;
    const bool q8 = f->type == DUET_TYPE_Q8_0;
    const size_t qs = wb - (q8 ? 32 : 16);
    const size_t qh = f->type == DUET_TYPE_Q5_0 ? 2 : f->type == DUET_TYPE_Q5_1 ? 4 : 0;
    for (int r = 0; r < 4; r++) {
        for (int64_t b = 0; b < f->len / DUET_QK; b++) {
            uint8_t *blk = f->w + r * f->row_stride + b * wb;
            for (size_t k = qs; k < wb; k++) {
                const bool hi = pattern == 1 || (pattern == 2 && (k + (size_t)r) % 2 == 0);
                blk[k] = q8 ? (hi ? 0x7f : 0x80) : (pattern == 2 ? 0xf0 : hi ? 0xff : 0x00);
            }
            if (qh != 0) {
                memset(blk + qh, pattern == 0 ? 0x00 : pattern == 1 ? 0xff : 0x5a, 4);
            }
        }
    }
    const size_t xb = f->dot_type == DUET_TYPE_Q8_1 ? 36 : 34, q = xb - 32;
    for (int j = 0; j < 4; j++) {
        uint8_t *xr = f->x + j * f->x_stride;
        for (int64_t b = 0; b < f->len / DUET_QK; b++) {
            for (size_t k = 0; k < 32; k++) {
                const bool neg = ((size_t)j + (pattern == 2 ? k : 0)) % 2 == 1;
                xr[b * xb + q + k] = neg ? 0x81 : 0x7f; /* -127 or 127 */
            }
        }
    }
    compute_refs(f);
}

ParameterizedTestParameters(tiles, extreme_values)
{
    return cr_make_param_array(duet_tensor_type, legacy, N_LEGACY);
}

ParameterizedTest(const duet_tensor_type *lt, tiles, extreme_values)
{
    const legacy_tiles *c = legacy_of(*lt);
    if (!cpu_has_avx2()) {
        cr_skip_test("this CPU has no AVX2+FMA+F16C");
    }
    /* 5 blocks: every term has the same sign here, so float rounding grows with the block
     * count (2 * 5 * 2^-24 at worst); at 136 blocks the bound is 10x looser, still far below
     * what an overflowing or saturating int16 sum would cost */
    const int64_t lens[] = {160, 4352};
    const double tols[] = {1e-6, 1e-5};
    for (int pattern = 0; pattern < 3; pattern++) {
        for (int l = 0; l < 2; l++) {
            tile_fixture f;
            fixture_make(&f, c->type, lens[l], 8000 + (uint64_t)pattern);
            fill_extreme(&f, pattern);
            for (int i = 0; i < 4; i++) {
                for (int j = 0; j < 4; j++) {
                    f.mag[i][j] *= tols[l] / TOL;
                }
            }
            check_all_shapes(&f, c->avx2, "avx2 extreme", false);
            if (cpu_has_vnni()) {
                check_all_shapes(&f, c->vnni, "vnni extreme", false);
            }
            dispatch_type = c->type;
            check_all_shapes(&f, dispatch_tile, "dispatch extreme", false);
            fixture_free(&f);
        }
    }
}

/* ------------------------------------------------------------------ detection */

Test(tiles, vnni_detection)
{
    if (env_is_1("DUET_NO_VNNI") || env_is_1("DUET_NO_AVX2")) {
        cr_skip_test("DUET_NO_VNNI or DUET_NO_AVX2 is set");
    }
    cr_assert_eq(duet_kernels_use_vnni(), cpu_has_vnni(),
                 "duet_kernels_use_vnni() disagrees with the CPU's flags");
    if (!cpu_has_vnni()) {
        cr_log_info("this CPU has no AVX-512 VNNI: the VNNI kernels are unused");
    }
}

Test(tiles, no_vnni_env)
{
    setenv("DUET_NO_VNNI", "1", 1);
    cr_assert_not(duet_kernels_use_vnni());
    cr_assert_eq(duet_kernels_use_avx2(), cpu_has_avx2() && !env_is_1("DUET_NO_AVX2"));
}

Test(tiles, no_avx2_env_disables_vnni)
{
    setenv("DUET_NO_AVX2", "1", 1);
    cr_assert_not(duet_kernels_use_avx2());
    cr_assert_not(duet_kernels_use_vnni());
}

/* Not a weight type, or an empty tile: nothing is written. */
Test(tiles, nothing_to_do)
{
    float out[4] = {SENTINEL, SENTINEL, SENTINEL, SENTINEL};
    uint8_t buf[64] = {0};
    duet_vec_dot_tile(DUET_TYPE_Q8_1, 32, buf, 36, 1, buf, 36, 1, out, 1);
    duet_vec_dot_tile(DUET_TYPE_Q8_K, 256, buf, 0, 1, buf, 0, 1, out, 1);
    duet_vec_dot_tile(DUET_TYPE_Q4_0, 32, buf, 18, 0, buf, 34, 1, out, 1);
    duet_vec_dot_tile(DUET_TYPE_Q4_0, 32, buf, 18, 1, buf, 34, 0, out, 1);
    for (int k = 0; k < 4; k++) {
        cr_assert(out[k] == SENTINEL);
    }
}
