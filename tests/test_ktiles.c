/* K-quant tiles (kquant_tiles_avx2.c, kquant_tiles_vnni.c): every tile shape from 1x1 to 4x4
 * (and split larger ones) against the per-row scalar dots, element by element, for Q2_K..Q6_K
 * at several row lengths, with weight rows only 2-byte aligned and strides that are not
 * multiples of 32; the VNNI tiles also against the AVX2 ones, and the single-row VNNI dots.
 *
 * The integer block sums of every kernel are exact, so results may differ only by float
 * rounding: the tolerance is 1e-6 times the sum of the magnitudes of the terms (for the
 * types with mins, the scale part and the min part counted separately), far below what a
 * wrong group scale, quant bit or activation row changes. The data mix quantized Gaussian
 * rows, random block bytes (every quant and scale value occurs) and extreme blocks (largest
 * quants and scales against +-127 activations, to catch int16 overflow). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kquants.h"
#include "tensor_type.h"

#define QK DUET_QK_K
#define TMAX DUET_TILE_MAX

typedef void tile_fn(int64_t n, const void *rows, size_t row_stride, int n_rows, const void *x,
                     size_t x_stride, int n_x, float *out, size_t out_stride);
typedef float dot_fn(int64_t n, const void *row, const void *x);

typedef struct {
    const char *name;
    duet_tensor_type type;
    size_t block_bytes;
    void (*quantize)(const float *, void *, int64_t);
    void (*dequantize)(const void *, float *, int64_t);
    dot_fn *scalar;
    tile_fn *avx2;
    tile_fn *vnni;
    size_t d_off, dmin_off; /* offsets of the f16 d and dmin fields; dmin_off 0: no mins */
    size_t sc_off, sc_len;  /* the bytes of the group scales (and mins) */
    dot_fn *vnni_dot;       /* single-row VNNI dot, NULL if none */
} ktype;

static const ktype TYPES[] = {
    {"Q2_K", DUET_TYPE_Q2_K, 84, duet_quantize_row_q2_k, duet_dequantize_row_q2_k,
     duet_vec_dot_q2_k_q8_k_scalar, duet_tile_q2_k_q8_k_avx2, duet_tile_q2_k_q8_k_vnni, 80, 82, 0,
     16, NULL},
    {"Q3_K", DUET_TYPE_Q3_K, 110, duet_quantize_row_q3_k, duet_dequantize_row_q3_k,
     duet_vec_dot_q3_k_q8_k_scalar, duet_tile_q3_k_q8_k_avx2, duet_tile_q3_k_q8_k_vnni, 108, 0, 96,
     12, NULL},
    {"Q4_K", DUET_TYPE_Q4_K, 144, duet_quantize_row_q4_k, duet_dequantize_row_q4_k,
     duet_vec_dot_q4_k_q8_k_scalar, duet_tile_q4_k_q8_k_avx2, duet_tile_q4_k_q8_k_vnni, 0, 2, 4, 12,
     duet_vec_dot_q4_k_q8_k_vnni},
    {"Q5_K", DUET_TYPE_Q5_K, 176, duet_quantize_row_q5_k, duet_dequantize_row_q5_k,
     duet_vec_dot_q5_k_q8_k_scalar, duet_tile_q5_k_q8_k_avx2, duet_tile_q5_k_q8_k_vnni, 0, 2, 4, 12,
     duet_vec_dot_q5_k_q8_k_vnni},
    {"Q6_K", DUET_TYPE_Q6_K, 210, duet_quantize_row_q6_k, duet_dequantize_row_q6_k,
     duet_vec_dot_q6_k_q8_k_scalar, duet_tile_q6_k_q8_k_avx2, duet_tile_q6_k_q8_k_vnni, 208, 0, 192,
     16, duet_vec_dot_q6_k_q8_k_vnni},
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

static const int64_t LENS[] = {256, 768, 4352};
#define NLENS (sizeof LENS / sizeof LENS[0])

/* Weight and activation rows per data set; larger than a tile so split tiles can be checked. */
#define NR 6
#define NX 5
#define NSETS 3
#define TOL 1e-6

/* ------------------------------------------------------------------ data */

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

static void put_half(uint8_t *b, size_t off, float v)
{
    uint16_t h = duet_f32_to_f16(v);
    memcpy(b + off, &h, sizeof h);
}

/* A quantized Gaussian row, scale and mean varying with r. */
static void gauss_row(const ktype *t, int64_t n, uint64_t *s, int r, void *dst)
{
    static const double scales[] = {0.02, 1.0, 30.0};
    float *f = malloc((size_t)n * sizeof *f);
    double sc = scales[r % 3], mean = (r % 2) ? 0.4 * sc : 0;
    for (int64_t i = 0; i < n; i++) {
        f[i] = (float)(mean + sc * gauss(s));
    }
    t->quantize(f, dst, n);
    free(f);
}

/* Weight blocks: kind 0 quantized Gaussian, 1 random bytes, 2 every byte 0xff (largest quants
 * and 6-bit scales; Q6_K scales -1), 3 quants 0 and scale bytes 0xff (Q6_K: 0x80, scale
 * -128), 4 quants 0xff and random scales (Q6_K: 127). The f16 fields get small random values
 * afterwards, so every block has a finite scale. */
static void weight_row(const ktype *t, int64_t n, uint64_t *s, int kind, int r, uint8_t *dst)
{
    const size_t nb = (size_t)(n / QK), bb = t->block_bytes;
    const bool q6 = t->type == DUET_TYPE_Q6_K;
    if (kind == 0) {
        gauss_row(t, n, s, r, dst);
        return;
    }
    for (size_t i = 0; i < nb; i++) {
        uint8_t *b = dst + i * bb;
        for (size_t k = 0; k < bb; k++) {
            b[k] = kind == 1 ? (uint8_t)next_u64(s) : kind == 3 ? 0 : 0xff;
        }
        for (size_t k = t->sc_off; k < t->sc_off + t->sc_len; k++) {
            if (kind == 3) {
                b[k] = q6 ? 0x80 : 0xff;
            } else if (kind == 4) {
                b[k] = q6 ? 0x7f : (uint8_t)next_u64(s);
            }
        }
        put_half(b, t->d_off, (float)(0.001 + 0.01 * uniform(s)));
        if (t->dmin_off) {
            put_half(b, t->dmin_off, (float)(0.001 + 0.01 * uniform(s)));
        }
    }
}

/* Q8_K rows: kind 0 quantized Gaussian, 1 random values in -127..127, 2 all +127, 3 all -127,
 * 4 alternating +-127; bsums always consistent with the values. */
static void act_row(int64_t n, uint64_t *s, int kind, int j, uint8_t *dst)
{
    if (kind == 0) {
        static const ktype q8 = {
            "Q8_K", DUET_TYPE_Q8_K, 292, duet_quantize_row_q8_k, NULL, NULL, NULL, NULL, 0, 0, 0, 0,
            NULL};
        gauss_row(&q8, n, s, j, dst);
        return;
    }
    for (int64_t i = 0; i < n / QK; i++) {
        block_q8_K b;
        b.d = (float)(0.001 + 0.1 * uniform(s));
        for (int k = 0; k < QK; k++) {
            int v = kind == 1   ? (int)(next_u64(s) % 255) - 127
                    : kind == 2 ? 127
                    : kind == 3 ? -127
                                : (k % 2 ? 127 : -127);
            b.qs[k] = (int8_t)v;
        }
        for (int g = 0; g < QK / 16; g++) {
            int sum = 0;
            for (int k = 0; k < 16; k++) {
                sum += b.qs[16 * g + k];
            }
            b.bsums[g] = (int16_t)sum;
        }
        memcpy(dst + (size_t)i * sizeof b, &b, sizeof b);
    }
}

/* A data set: NR weight rows row_stride bytes apart starting 2 bytes past a 16-byte boundary
 * (so 2-byte but not 4-byte aligned), NX Q8_K rows x_stride bytes apart starting 4 bytes past
 * one. Set 0 is all Gaussian, set 1 all random, set 2 mixes the extremes with both. */
typedef struct {
    uint8_t *wbuf, *xbuf;
    const uint8_t *rows, *x;
    size_t row_stride, x_stride;
    double ref[NX][NR]; /* scalar dots */
    double mag[NX][NR]; /* sum of |terms| */
} dataset;

static const int WKIND[NSETS][NR] = {{0, 0, 0, 0, 0, 0}, {1, 1, 1, 1, 1, 1}, {2, 3, 4, 1, 0, 2}};
static const int XKIND[NSETS][NX] = {{0, 0, 0, 0, 0}, {1, 1, 1, 1, 1}, {2, 3, 4, 1, 0}};

/* sum over values of |d*sc*q| * |x| plus |dmin*m| * |x|: dequantizes the row with dmin set to
 * 0 and with d set to 0 (for types without mins, the row as it is). */
static void magnitudes(const ktype *t, int64_t n, const uint8_t *row, const float *xf, double *out)
{
    const size_t nb = (size_t)(n / QK), bb = t->block_bytes;
    uint8_t *tmp = malloc(nb * bb);
    float *f = malloc((size_t)n * sizeof *f);
    double m = 0;
    for (int part = 0; part < (t->dmin_off ? 2 : 1); part++) {
        memcpy(tmp, row, nb * bb);
        for (size_t i = 0; t->dmin_off && i < nb; i++) {
            memset(tmp + i * bb + (part ? t->d_off : t->dmin_off), 0, 2);
        }
        t->dequantize(tmp, f, n);
        for (int64_t k = 0; k < n; k++) {
            m += fabs((double)f[k] * xf[k]);
        }
    }
    *out = m;
    free(tmp);
    free(f);
}

static void make_set(dataset *ds, const ktype *t, int64_t n, int set)
{
    uint64_t s = 0x5eed0000u + (uint64_t)set * 7919u + (uint64_t)n * 31u + (uint64_t)t->type;
    const size_t row_bytes = (size_t)(n / QK) * t->block_bytes;
    const size_t x_bytes = (size_t)(n / QK) * sizeof(block_q8_K);
    /* odd multiples of 2 and of 4: never a multiple of 32 */
    ds->row_stride = (row_bytes + 2) | 2;
    ds->row_stride += ds->row_stride % 4 == 0 ? 2 : 0;
    ds->x_stride = x_bytes + 36;
    /* buffers end exactly at the end of the last row, so AddressSanitizer sees any read past
     * it; malloc's 16-byte alignment plus 2 (4) gives the 2-byte (4-byte) alignment */
    const size_t wsize = 2 + (NR - 1) * ds->row_stride + row_bytes;
    const size_t xsize = 4 + (NX - 1) * ds->x_stride + x_bytes;
    ds->wbuf = malloc(wsize);
    ds->xbuf = malloc(xsize);
    memset(ds->wbuf, 0xa5, wsize);
    memset(ds->xbuf, 0x5a, xsize);
    ds->rows = ds->wbuf + 2;
    ds->x = ds->xbuf + 4;
    for (int r = 0; r < NR; r++) {
        weight_row(t, n, &s, WKIND[set][r], r, (uint8_t *)ds->rows + r * ds->row_stride);
    }
    for (int j = 0; j < NX; j++) {
        act_row(n, &s, XKIND[set][j], j, (uint8_t *)ds->x + j * ds->x_stride);
    }
    /* references from aligned copies, so the scalar code is not judged by our strides */
    uint8_t *row = malloc(row_bytes);
    block_q8_K *xa = malloc(x_bytes);
    float *xf = malloc((size_t)n * sizeof *xf);
    for (int j = 0; j < NX; j++) {
        memcpy(xa, ds->x + j * ds->x_stride, x_bytes);
        duet_dequantize_row_q8_k(xa, xf, n);
        for (int r = 0; r < NR; r++) {
            memcpy(row, ds->rows + r * ds->row_stride, row_bytes);
            ds->ref[j][r] = t->scalar(n, row, xa);
            magnitudes(t, n, row, xf, &ds->mag[j][r]);
        }
    }
    free(row);
    free(xa);
    free(xf);
}

static void free_set(dataset *ds)
{
    free(ds->wbuf);
    free(ds->xbuf);
}

/* ------------------------------------------------------------------ checks */

static bool have_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}

static bool have_vnni(void)
{
    return have_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

#define OUT_STRIDE 11 /* floats between the outputs of two activation rows */
#define SENTINEL 1234.5f

/* Runs tile on the nr x nx tile starting at row r0, activation row j0, and checks each
 * output against the scalar dot, and that nothing else in out was written. */
static void check_tile(const ktype *t, const char *what, tile_fn *tile, int64_t n,
                       const dataset *ds, int set, int r0, int nr, int j0, int nx)
{
    float out[NX * OUT_STRIDE];
    for (size_t k = 0; k < sizeof out / sizeof out[0]; k++) {
        out[k] = SENTINEL;
    }
    tile(n, ds->rows + (size_t)r0 * ds->row_stride, ds->row_stride, nr,
         ds->x + (size_t)j0 * ds->x_stride, ds->x_stride, nx, out, OUT_STRIDE);
    for (int j = 0; j < NX; j++) {
        for (int r = 0; r < OUT_STRIDE; r++) {
            const float v = out[j * OUT_STRIDE + r];
            if (j >= nx || r >= nr) {
                cr_assert_eq(v, SENTINEL, "%s %s n=%lld set %d tile %dx%d wrote out[%d][%d]",
                             t->name, what, (long long)n, set, nr, nx, j, r);
                continue;
            }
            const double ref = ds->ref[j0 + j][r0 + r], tol = TOL * ds->mag[j0 + j][r0 + r];
            cr_assert(fabs(v - ref) <= tol,
                      "%s %s n=%lld set %d tile %dx%d at (%d,%d) row %d x %d: %.9g, scalar "
                      "%.9g, |diff| %.3g > tol %.3g",
                      t->name, what, (long long)n, set, nr, nx, r0, j0, r, j, (double)v, ref,
                      fabs(v - ref), tol);
        }
    }
}

static void check_type(const ktype *t, const char *what, tile_fn *tile)
{
    for (size_t li = 0; li < NLENS; li++) {
        const int64_t n = LENS[li];
        for (int set = 0; set < NSETS; set++) {
            dataset ds;
            make_set(&ds, t, n, set);
            for (int nr = 1; nr <= TMAX; nr++) {
                for (int nx = 1; nx <= TMAX; nx++) {
                    /* at the start and at an offset, so every data kind meets every lane */
                    check_tile(t, what, tile, n, &ds, set, 0, nr, 0, nx);
                    check_tile(t, what, tile, n, &ds, set, NR - nr, nr, NX - nx, nx);
                }
            }
            /* larger than a tile: split by the kernel */
            check_tile(t, what, tile, n, &ds, set, 0, NR, 0, NX);
            free_set(&ds);
        }
    }
}

/* The tolerance must be able to fail: on the Gaussian and random data sets, the dots of
 * neighbouring weight rows differ by far more than it, so an output taken from the wrong row
 * (or a wrong scale) cannot pass. */
Test(ktiles, tolerance_is_tight)
{
    for (size_t k = 0; k < NTYPES; k++) {
        const ktype *t = &TYPES[k];
        for (int set = 0; set < NSETS; set++) {
            dataset ds;
            make_set(&ds, t, 768, set);
            int distinct = 0, pairs = 0;
            for (int j = 0; j < NX; j++) {
                for (int r = 0; r + 1 < NR; r++) {
                    const double tol = TOL * ds.mag[j][r];
                    pairs++;
                    distinct += fabs(ds.ref[j][r + 1] - ds.ref[j][r]) > 100 * tol;
                }
            }
            /* the extreme set repeats some rows on purpose; all others are distinct */
            cr_assert_geq(distinct, set == 2 ? pairs / 2 : pairs, "%s set %d: %d of %d", t->name,
                          set, distinct, pairs);
            free_set(&ds);
        }
    }
}

#define TYPE_TESTS(idx, lname)                                                                     \
    Test(ktiles, lname##_avx2)                                                                     \
    {                                                                                              \
        if (!have_avx2()) {                                                                        \
            cr_skip_test("no AVX2+FMA+F16C on this CPU");                                          \
        }                                                                                          \
        check_type(&TYPES[idx], "avx2", TYPES[idx].avx2);                                          \
    }                                                                                              \
    Test(ktiles, lname##_vnni)                                                                     \
    {                                                                                              \
        if (!have_vnni()) {                                                                        \
            cr_skip_test("no AVX-512 F/BW/VL/VNNI on this CPU: VNNI tiles not tested");            \
        }                                                                                          \
        check_type(&TYPES[idx], "vnni", TYPES[idx].vnni);                                          \
    }

TYPE_TESTS(0, q2_k)
TYPE_TESTS(1, q3_k)
TYPE_TESTS(2, q4_k)
TYPE_TESTS(3, q5_k)
TYPE_TESTS(4, q6_k)

/* VNNI against AVX2 directly (both against scalar above): every 4x4 tile within twice the
 * tolerance of each other. */
Test(ktiles, vnni_matches_avx2)
{
    if (!have_vnni()) {
        cr_skip_test("no AVX-512 F/BW/VL/VNNI on this CPU: VNNI tiles not tested");
    }
    for (size_t k = 0; k < NTYPES; k++) {
        const ktype *t = &TYPES[k];
        for (size_t li = 0; li < NLENS; li++) {
            for (int set = 0; set < NSETS; set++) {
                dataset ds;
                make_set(&ds, t, LENS[li], set);
                float a[TMAX * TMAX], b[TMAX * TMAX];
                t->avx2(LENS[li], ds.rows, ds.row_stride, TMAX, ds.x, ds.x_stride, TMAX, a, TMAX);
                t->vnni(LENS[li], ds.rows, ds.row_stride, TMAX, ds.x, ds.x_stride, TMAX, b, TMAX);
                for (int j = 0; j < TMAX; j++) {
                    for (int r = 0; r < TMAX; r++) {
                        const double tol = 2 * TOL * ds.mag[j][r];
                        cr_assert(fabs(a[j * TMAX + r] - b[j * TMAX + r]) <= tol,
                                  "%s n=%lld set %d (%d,%d): avx2 %.9g vnni %.9g", t->name,
                                  (long long)LENS[li], set, r, j, (double)a[j * TMAX + r],
                                  (double)b[j * TMAX + r]);
                    }
                }
                free_set(&ds);
            }
        }
    }
}

/* The single-row VNNI dots (Q4_K, Q5_K, Q6_K) against the scalar ones, on rows that are only
 * 2-byte aligned. */
Test(ktiles, vnni_row_dots)
{
    if (!have_vnni()) {
        cr_skip_test("no AVX-512 F/BW/VL/VNNI on this CPU: VNNI dots not tested");
    }
    for (size_t k = 0; k < NTYPES; k++) {
        const ktype *t = &TYPES[k];
        if (t->vnni_dot == NULL) {
            continue;
        }
        for (size_t li = 0; li < NLENS; li++) {
            for (int set = 0; set < NSETS; set++) {
                dataset ds;
                make_set(&ds, t, LENS[li], set);
                for (int j = 0; j < NX; j++) {
                    for (int r = 0; r < NR; r++) {
                        const float v = t->vnni_dot(LENS[li], ds.rows + r * ds.row_stride,
                                                    ds.x + j * ds.x_stride);
                        cr_assert(fabs(v - ds.ref[j][r]) <= TOL * ds.mag[j][r],
                                  "%s n=%lld set %d row %d x %d: vnni %.9g, scalar %.9g", t->name,
                                  (long long)LENS[li], set, r, j, (double)v, ds.ref[j][r]);
                    }
                }
                free_set(&ds);
            }
        }
    }
}

/* The public entry point, whatever it dispatches to, agrees with the scalar dots. */
Test(ktiles, dispatch_matches_scalar)
{
    for (size_t k = 0; k < NTYPES; k++) {
        const ktype *t = &TYPES[k];
        dataset ds;
        make_set(&ds, t, 768, 1);
        for (int nr = 1; nr <= TMAX; nr++) {
            for (int nx = 1; nx <= TMAX; nx++) {
                float out[TMAX * TMAX];
                duet_vec_dot_tile(t->type, 768, ds.rows, ds.row_stride, nr, ds.x, ds.x_stride, nx,
                                  out, TMAX);
                for (int j = 0; j < nx; j++) {
                    for (int r = 0; r < nr; r++) {
                        const double tol = TOL * ds.mag[j][r];
                        cr_assert(fabs(out[j * TMAX + r] - ds.ref[j][r]) <= tol,
                                  "%s tile %dx%d (%d,%d): %.9g, scalar %.9g", t->name, nr, nx, r, j,
                                  (double)out[j * TMAX + r], ds.ref[j][r]);
                    }
                }
            }
        }
        free_set(&ds);
    }
}
