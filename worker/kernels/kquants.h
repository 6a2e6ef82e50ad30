/* The K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) and their activation type Q8_K.
 *
 * Every K-quant block holds a super-block of 256 values; the structs below are the GGUF
 * byte layouts (llama.cpp's block_qN_K), so a row in a GGUF file is an array of them.
 * Half-precision fields are raw IEEE binary16 bits.
 *
 *   Q2_K  16 groups of 16: value = d*sc[g]*q - dmin*m[g], q 0..3,  sc/m 4-bit     (84 B)
 *   Q3_K  16 groups of 16: value = d*(sc[g]-32)*(q-4),     q 0..7,  sc 6-bit      (110 B)
 *   Q4_K   8 groups of 32: value = d*sc[g]*q - dmin*m[g], q 0..15, sc/m 6-bit     (144 B)
 *   Q5_K   8 groups of 32: value = d*sc[g]*q - dmin*m[g], q 0..31, sc/m 6-bit     (176 B)
 *   Q6_K  16 groups of 16: value = d*sc[g]*(q-32),        q 0..63, sc int8        (210 B)
 *   Q8_K  256 values:      value = d*q, q int8, plus bsums = sum of each 16 q's  (292 B)
 *
 * Row functions take n, the number of values, a multiple of 256. The weight quantizers are
 * reference quantizers (round to nearest after a small least-squares search for the group
 * scales, no importance matrix), meant for writing synthetic models that llama.cpp reads.
 * The dot products multiply a weight row by a Q8_K row with integer arithmetic inside each
 * block; the _avx2 forms give the same integer block sums as the scalar forms, so results
 * differ only by float summation order. Call _avx2 functions only on CPUs with AVX2+FMA+F16C.
 * Weight rows need 2-byte alignment (all GGUF tensor data has it), Q8_K rows 4-byte. */
#ifndef DUET_KQUANTS_H
#define DUET_KQUANTS_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define DUET_QK_K 256
#define DUET_K_SCALE_SIZE 12 /* Q3_K/Q4_K/Q5_K pack their 6-bit scales (and mins) in 12 bytes */

typedef struct {
    uint8_t scales[DUET_QK_K / 16]; /* low nibble: scale, high nibble: min, per group of 16 */
    uint8_t qs[DUET_QK_K / 4];      /* 2-bit quants */
    uint16_t d;                     /* super-block scale of the scales (f16) */
    uint16_t dmin;                  /* super-block scale of the mins (f16) */
} block_q2_K;

typedef struct {
    uint8_t hmask[DUET_QK_K / 8];      /* high bit of each 3-bit quant */
    uint8_t qs[DUET_QK_K / 4];         /* low 2 bits */
    uint8_t scales[DUET_K_SCALE_SIZE]; /* 16 6-bit scales, offset by 32 */
    uint16_t d;                        /* f16 */
} block_q3_K;

typedef struct {
    uint16_t d;                        /* f16 */
    uint16_t dmin;                     /* f16 */
    uint8_t scales[DUET_K_SCALE_SIZE]; /* 8 6-bit scales and 8 6-bit mins */
    uint8_t qs[DUET_QK_K / 2];         /* 4-bit quants */
} block_q4_K;

typedef struct {
    uint16_t d;                        /* f16 */
    uint16_t dmin;                     /* f16 */
    uint8_t scales[DUET_K_SCALE_SIZE]; /* as Q4_K */
    uint8_t qh[DUET_QK_K / 8];         /* high bit of each 5-bit quant */
    uint8_t qs[DUET_QK_K / 2];         /* low 4 bits */
} block_q5_K;

typedef struct {
    uint8_t ql[DUET_QK_K / 2];     /* low 4 bits */
    uint8_t qh[DUET_QK_K / 4];     /* high 2 bits */
    int8_t scales[DUET_QK_K / 16]; /* one per group of 16 */
    uint16_t d;                    /* f16 */
} block_q6_K;

typedef struct {
    float d;
    int8_t qs[DUET_QK_K];
    int16_t bsums[DUET_QK_K / 16]; /* sum of qs in each group of 16 */
} block_q8_K;

static_assert(sizeof(block_q2_K) == 84, "block_q2_K must be 84 bytes");
static_assert(sizeof(block_q3_K) == 110, "block_q3_K must be 110 bytes");
static_assert(sizeof(block_q4_K) == 144, "block_q4_K must be 144 bytes");
static_assert(sizeof(block_q5_K) == 176, "block_q5_K must be 176 bytes");
static_assert(sizeof(block_q6_K) == 210, "block_q6_K must be 210 bytes");
static_assert(sizeof(block_q8_K) == 292, "block_q8_K must be 292 bytes");

/* Quantizers: n floats to n / 256 blocks. Q8_K rounds to nearest exactly as llama.cpp's
 * quantize_row_q8_K_ref, so its output is bit-identical to llama.cpp's. */
void duet_quantize_row_q2_k(const float *src, void *dst, int64_t n);
void duet_quantize_row_q3_k(const float *src, void *dst, int64_t n);
void duet_quantize_row_q4_k(const float *src, void *dst, int64_t n);
void duet_quantize_row_q5_k(const float *src, void *dst, int64_t n);
void duet_quantize_row_q6_k(const float *src, void *dst, int64_t n);
void duet_quantize_row_q8_k(const float *src, void *dst, int64_t n);
/* The same Q8_K blocks, byte for byte, with AVX2. */
void duet_quantize_row_q8_k_avx2(const float *src, void *dst, int64_t n);

/* Dequantizers: n / 256 blocks to n floats. */
void duet_dequantize_row_q2_k(const void *src, float *dst, int64_t n);
void duet_dequantize_row_q3_k(const void *src, float *dst, int64_t n);
void duet_dequantize_row_q4_k(const void *src, float *dst, int64_t n);
void duet_dequantize_row_q5_k(const void *src, float *dst, int64_t n);
void duet_dequantize_row_q6_k(const void *src, float *dst, int64_t n);
void duet_dequantize_row_q8_k(const void *src, float *dst, int64_t n);

/* Dot products of n values: row holds n / 256 weight blocks, x n / 256 Q8_K blocks. */
float duet_vec_dot_q2_k_q8_k_scalar(int64_t n, const void *row, const void *x);
float duet_vec_dot_q3_k_q8_k_scalar(int64_t n, const void *row, const void *x);
float duet_vec_dot_q4_k_q8_k_scalar(int64_t n, const void *row, const void *x);
float duet_vec_dot_q5_k_q8_k_scalar(int64_t n, const void *row, const void *x);
float duet_vec_dot_q6_k_q8_k_scalar(int64_t n, const void *row, const void *x);

float duet_vec_dot_q2_k_q8_k_avx2(int64_t n, const void *row, const void *x);
float duet_vec_dot_q3_k_q8_k_avx2(int64_t n, const void *row, const void *x);
float duet_vec_dot_q4_k_q8_k_avx2(int64_t n, const void *row, const void *x);
float duet_vec_dot_q5_k_q8_k_avx2(int64_t n, const void *row, const void *x);
float duet_vec_dot_q6_k_q8_k_avx2(int64_t n, const void *row, const void *x);

/* Tiles (duet_vec_dot_tile's contract, kquant_tiles_avx2.c, kquant_tiles_vnni.c): for
 * i < n_rows and j < n_x, out[j * out_stride + i] = dot(weight row i, Q8_K row j), weight rows
 * row_stride bytes apart from rows, Q8_K rows x_stride bytes apart from x. Tiles up to 4 x 4
 * are computed together (each weight block unpacked once for all activation rows, each
 * activation block prepared once for all weight rows); larger ones are split. Integer block
 * sums equal the per-row dots', so results differ from them only by float summation order.
 * The _avx2 forms need AVX2+FMA+F16C; the _vnni forms also AVX-512 F, BW, VL and VNNI (they
 * use 256-bit vectors only). */
void duet_tile_q2_k_q8_k_avx2(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q3_k_q8_k_avx2(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q4_k_q8_k_avx2(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q5_k_q8_k_avx2(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q6_k_q8_k_avx2(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);

/* Single-row dots with AVX-512 VNNI (same CPU requirement as the _vnni tiles), for Q4_K,
 * Q5_K and Q6_K: the 1 x 1 tiles. */
float duet_vec_dot_q4_k_q8_k_vnni(int64_t n, const void *row, const void *x);
float duet_vec_dot_q5_k_q8_k_vnni(int64_t n, const void *row, const void *x);
float duet_vec_dot_q6_k_q8_k_vnni(int64_t n, const void *row, const void *x);

void duet_tile_q2_k_q8_k_vnni(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q3_k_q8_k_vnni(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q4_k_q8_k_vnni(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q5_k_q8_k_vnni(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q6_k_q8_k_vnni(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);

#endif
