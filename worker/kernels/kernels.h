/* Dequantization, quantization and dot products for every weight type.
 *
 * A matrix-vector product multiplies weight rows of type T by an activation row that was
 * first converted to T's "dot type" (duet_dot_type): Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for
 * Q4_1/Q5_1, Q8_K for the K-quants, F16 for F16, BF16 for BF16, F32 for F32 — the same
 * pairing llama.cpp's CPU backend uses, so results agree with it. Dot products of quantized
 * blocks use integer arithmetic inside a block.
 *
 * Each kernel has a portable scalar form and, where the CPU has AVX2+FMA (checked once at
 * run time), a vector form, for some also an AVX-512 VNNI form; all give the same results up
 * to float summation order. */
#ifndef DUET_KERNELS_H
#define DUET_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor_type.h"

/* The type activations are converted to before a dot product with a row of type t;
 * DUET_TYPE_COUNT when t is not a weight type (Q8_1, Q8_K, or a number duet does not know). */
duet_tensor_type duet_dot_type(duet_tensor_type t);

/* Converts n floats (n a multiple of the block size of t) to type t. For Q8_0/Q8_1/Q8_K
 * this is the activation quantizer; for the weight types it is a reference quantizer
 * (round to nearest, as llama.cpp's reference functions) used to write synthetic models. */
void duet_quantize_row(duet_tensor_type t, const float *src, void *dst, int64_t n);

/* Converts n values of type t to floats. Both conversions do nothing for an unknown type. */
void duet_dequantize_row(duet_tensor_type t, const void *src, float *dst, int64_t n);

/* The dot product of n values: a row of type t and x, a row of duet_dot_type(t).
 * Uses the vector kernels when the CPU has them. NaN when t is not a weight type. */
float duet_vec_dot(duet_tensor_type t, int64_t n, const void *row, const void *x);

/* Tiles of dot products, the inner loop of every matrix product: for i < n_rows and
 * j < n_x, out[j * out_stride + i] = dot(weight row i, activation row j), with weight rows
 * row_stride bytes apart and activation rows (of duet_dot_type(t)) x_stride bytes apart;
 * n_rows and n_x are at most DUET_TILE_MAX. A type with a tile kernel unpacks each weight
 * block once for all n_x activations and reuses each activation block for all n_rows
 * rows; the others loop over duet_vec_dot. Results equal duet_vec_dot's up to float
 * summation order. */
#define DUET_TILE_MAX 4
void duet_vec_dot_tile(duet_tensor_type t, int64_t n, const void *rows, size_t row_stride,
                       int n_rows, const void *x, size_t x_stride, int n_x, float *out,
                       size_t out_stride);

/* The same with the portable scalar code only (for tests and for CPUs without AVX2). */
float duet_vec_dot_scalar(duet_tensor_type t, int64_t n, const void *row, const void *x);

/* True when the vector kernels are in use (AVX2+FMA+F16C present and not disabled with
 * DUET_NO_AVX2=1 in the environment). */
bool duet_kernels_use_avx2(void);

/* True when the AVX-512 VNNI kernels (on 256-bit vectors) are in use: the AVX2 kernels are,
 * the CPU has AVX-512 F, BW, VL and VNNI, and DUET_NO_VNNI=1 is not set. Types without a
 * VNNI kernel keep using their AVX2 one. */
bool duet_kernels_use_vnni(void);

/* The kernel family in use, for logs and benchmarks: "AVX-512 VNNI", "AVX2" or "scalar". */
const char *duet_kernels_name(void);

/* Half and bfloat16 conversions, exact as IEEE round-to-nearest-even. */
float duet_f16_to_f32(uint16_t h);
uint16_t duet_f32_to_f16(float f);
float duet_bf16_to_f32(uint16_t h);
uint16_t duet_f32_to_bf16(float f);

#endif
