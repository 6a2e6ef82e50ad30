/* Kernels of the float types (F32, F16, BF16) and of the 32-value block types (Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0, Q8_1): the per-type functions behind kernels.h's dispatch.
 *
 * Block layouts, byte for byte as in GGUF files (fp16 fields little-endian). Value j of a
 * block (0..31) is stored as follows:
 *   Q4_0  d:f16 qs[16]             q = nibble, low nibble of qs[j] for j<16, high nibble of
 *                                  qs[j-16] for j>=16; value = (q - 8) * d
 *   Q4_1  d:f16 m:f16 qs[16]       value = q * d + m
 *   Q5_0  d:f16 qh[4] qs[16]       q = nibble | bit j of qh (le32) << 4; value = (q - 16) * d
 *   Q5_1  d:f16 m:f16 qh[4] qs[16] value = q * d + m
 *   Q8_0  d:f16 qs[32]:int8        value = qs[j] * d
 *   Q8_1  d:f16 s:f16 qs[32]:int8  value = qs[j] * d; s = d * sum(qs) (d before rounding)
 * The structs have alignment 1, so rows may start at any address.
 *
 * Quantizers round as llama.cpp's reference functions do (Q8_0/Q8_1 with roundf: halves away
 * from zero). Dot products take n, a multiple of the block size (any n for the float
 * types), a weight row and an activation row of the matching dot type; inside a block they
 * sum integer products and multiply once by the two scales. The _avx2 functions need
 * AVX2+FMA+F16C and give the same integer block sums as the scalar ones (floats may differ
 * in summation order and FMA rounding only); the AVX2 quantizers give identical bytes. */
#ifndef DUET_LEGACY_QUANTS_H
#define DUET_LEGACY_QUANTS_H

#include <stddef.h>
#include <stdint.h>

#define DUET_QK 32 /* values per block of the legacy types */

typedef struct {
    uint8_t d[2];
    uint8_t qs[16];
} duet_block_q4_0;

typedef struct {
    uint8_t d[2];
    uint8_t m[2];
    uint8_t qs[16];
} duet_block_q4_1;

typedef struct {
    uint8_t d[2];
    uint8_t qh[4];
    uint8_t qs[16];
} duet_block_q5_0;

typedef struct {
    uint8_t d[2];
    uint8_t m[2];
    uint8_t qh[4];
    uint8_t qs[16];
} duet_block_q5_1;

typedef struct {
    uint8_t d[2];
    int8_t qs[32];
} duet_block_q8_0;

typedef struct {
    uint8_t d[2];
    uint8_t s[2];
    int8_t qs[32];
} duet_block_q8_1;

_Static_assert(sizeof(duet_block_q4_0) == 18, "Q4_0 block");
_Static_assert(sizeof(duet_block_q4_1) == 20, "Q4_1 block");
_Static_assert(sizeof(duet_block_q5_0) == 22, "Q5_0 block");
_Static_assert(sizeof(duet_block_q5_1) == 24, "Q5_1 block");
_Static_assert(sizeof(duet_block_q8_0) == 34, "Q8_0 block");
_Static_assert(sizeof(duet_block_q8_1) == 36, "Q8_1 block");

/* Little-endian field access, independent of alignment. */
static inline uint16_t duet_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t duet_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void duet_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* ---- float types: quantize = convert from f32, dequantize = convert to f32 ---- */
void duet_quantize_row_f32(const float *src, void *dst, int64_t n);
void duet_dequantize_row_f32(const void *src, float *dst, int64_t n);
void duet_quantize_row_f16(const float *src, void *dst, int64_t n);
void duet_dequantize_row_f16(const void *src, float *dst, int64_t n);
void duet_quantize_row_bf16(const float *src, void *dst, int64_t n);
void duet_dequantize_row_bf16(const void *src, float *dst, int64_t n);

/* ---- block types ---- */
void duet_quantize_row_q4_0(const float *src, void *dst, int64_t n);
void duet_quantize_row_q4_1(const float *src, void *dst, int64_t n);
void duet_quantize_row_q5_0(const float *src, void *dst, int64_t n);
void duet_quantize_row_q5_1(const float *src, void *dst, int64_t n);
void duet_quantize_row_q8_0(const float *src, void *dst, int64_t n);
void duet_quantize_row_q8_1(const float *src, void *dst, int64_t n);

void duet_dequantize_row_q4_0(const void *src, float *dst, int64_t n);
void duet_dequantize_row_q4_1(const void *src, float *dst, int64_t n);
void duet_dequantize_row_q5_0(const void *src, float *dst, int64_t n);
void duet_dequantize_row_q5_1(const void *src, float *dst, int64_t n);
void duet_dequantize_row_q8_0(const void *src, float *dst, int64_t n);
void duet_dequantize_row_q8_1(const void *src, float *dst, int64_t n);

/* ---- scalar dot products ---- */
float duet_vec_dot_f32_f32_scalar(int64_t n, const void *row, const void *x);
float duet_vec_dot_f16_f16_scalar(int64_t n, const void *row, const void *x);
float duet_vec_dot_bf16_bf16_scalar(int64_t n, const void *row, const void *x);
float duet_vec_dot_q4_0_q8_0_scalar(int64_t n, const void *row, const void *x);
float duet_vec_dot_q5_0_q8_0_scalar(int64_t n, const void *row, const void *x);
float duet_vec_dot_q8_0_q8_0_scalar(int64_t n, const void *row, const void *x);
float duet_vec_dot_q4_1_q8_1_scalar(int64_t n, const void *row, const void *x);
float duet_vec_dot_q5_1_q8_1_scalar(int64_t n, const void *row, const void *x);

/* ---- AVX2+FMA+F16C (legacy_quants_avx2.c) ---- */
float duet_vec_dot_f32_f32_avx2(int64_t n, const void *row, const void *x);
float duet_vec_dot_f16_f16_avx2(int64_t n, const void *row, const void *x);
float duet_vec_dot_bf16_bf16_avx2(int64_t n, const void *row, const void *x);
float duet_vec_dot_q4_0_q8_0_avx2(int64_t n, const void *row, const void *x);
float duet_vec_dot_q5_0_q8_0_avx2(int64_t n, const void *row, const void *x);
float duet_vec_dot_q8_0_q8_0_avx2(int64_t n, const void *row, const void *x);
float duet_vec_dot_q4_1_q8_1_avx2(int64_t n, const void *row, const void *x);
float duet_vec_dot_q5_1_q8_1_avx2(int64_t n, const void *row, const void *x);

void duet_quantize_row_q8_0_avx2(const float *src, void *dst, int64_t n);
void duet_quantize_row_q8_1_avx2(const float *src, void *dst, int64_t n);
void duet_quantize_row_f16_avx2(const float *src, void *dst, int64_t n);

/* ---- tiles of dot products (kernels.h's duet_vec_dot_tile): out[j * out_stride + i] =
 * dot(row i, activation j) for i < n_rows and j < n_x, both in 1..4. AVX2+FMA+F16C in
 * legacy_tiles_avx2.c, AVX-512 F/BW/VL/VNNI (on 256-bit vectors) in legacy_tiles_vnni.c.
 * Activation quants must be in -127..127, as the Q8_0/Q8_1 quantizers write them (the
 * AVX2 dots assume the same). Same integer block sums as the dots; the floats differ in
 * summation order only. ---- */
void duet_tile_q4_0_q8_0_avx2(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q5_0_q8_0_avx2(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q8_0_q8_0_avx2(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q4_1_q8_1_avx2(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q5_1_q8_1_avx2(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q4_0_q8_0_vnni(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q5_0_q8_0_vnni(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q8_0_q8_0_vnni(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q4_1_q8_1_vnni(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);
void duet_tile_q5_1_q8_1_vnni(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride);

#endif
