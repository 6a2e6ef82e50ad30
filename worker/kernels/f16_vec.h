/* Vector operations on rows of IEEE half floats, for attention's F16 accumulator.
 *
 * Each element is widened to float, computed in float and rounded back to half (nearest
 * even) once, as llama.cpp's CPU flash attention does, so duet's attention agrees with it.
 * The AVX2+F16C form is used when duet_kernels_use_avx2() says so; the scalar form uses a
 * fused multiply-add like the vector one, so both give identical bits. */
#ifndef DUET_F16_VEC_H
#define DUET_F16_VEC_H

#include <stdint.h>

/* y[i] = half(y[i] * s) for i < n. */
void duet_f16_vec_scale(int64_t n, uint16_t *y, float s);

/* y[i] = half(fma(x[i], s, y[i])) for i < n. */
void duet_f16_vec_mad(int64_t n, uint16_t *y, const uint16_t *x, float s);

/* dst[i] = half(src[i]) and dst[i] = float(src[i]) for i < n. */
void duet_f16_from_f32(int64_t n, uint16_t *dst, const float *src);
void duet_f16_to_f32_row(int64_t n, float *dst, const uint16_t *src);

/* The AVX2+F16C forms (f16_vec_avx2.c), callable only when the CPU has them. */
void duet_f16_vec_scale_avx2(int64_t n, uint16_t *y, float s);
void duet_f16_vec_mad_avx2(int64_t n, uint16_t *y, const uint16_t *x, float s);
void duet_f16_from_f32_avx2(int64_t n, uint16_t *dst, const float *src);
void duet_f16_to_f32_row_avx2(int64_t n, float *dst, const uint16_t *src);

#endif
