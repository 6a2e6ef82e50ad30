/* The scalar forms of f16_vec.h and the run-time choice of the AVX2 ones. */
#include "f16_vec.h"

#include <math.h>

#include "kernels.h"

void duet_f16_vec_scale(int64_t n, uint16_t *y, float s)
{
    if (duet_kernels_use_avx2()) {
        duet_f16_vec_scale_avx2(n, y, s);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        y[i] = duet_f32_to_f16(duet_f16_to_f32(y[i]) * s);
    }
}

void duet_f16_vec_mad(int64_t n, uint16_t *y, const uint16_t *x, float s)
{
    if (duet_kernels_use_avx2()) {
        duet_f16_vec_mad_avx2(n, y, x, s);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        y[i] = duet_f32_to_f16(fmaf(duet_f16_to_f32(x[i]), s, duet_f16_to_f32(y[i])));
    }
}

void duet_f16_from_f32(int64_t n, uint16_t *dst, const float *src)
{
    if (duet_kernels_use_avx2()) {
        duet_f16_from_f32_avx2(n, dst, src);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        dst[i] = duet_f32_to_f16(src[i]);
    }
}

void duet_f16_to_f32_row(int64_t n, float *dst, const uint16_t *src)
{
    if (duet_kernels_use_avx2()) {
        duet_f16_to_f32_row_avx2(n, dst, src);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        dst[i] = duet_f16_to_f32(src[i]);
    }
}
