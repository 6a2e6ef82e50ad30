/* AVX2+F16C forms of f16_vec.h: eight halves per step, the tail in scalar code with the same
 * fused multiply-add so every element rounds the same way. */
#include <immintrin.h>
#include <math.h>

#include "f16_vec.h"
#include "kernels.h"

static inline __m256 load8(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline void store8(uint16_t *p, __m256 v)
{
    _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}

void duet_f16_vec_scale_avx2(int64_t n, uint16_t *y, float s)
{
    const __m256 vs = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        store8(y + i, _mm256_mul_ps(load8(y + i), vs));
    }
    for (; i < n; i++) {
        y[i] = duet_f32_to_f16(duet_f16_to_f32(y[i]) * s);
    }
}

void duet_f16_vec_mad_avx2(int64_t n, uint16_t *y, const uint16_t *x, float s)
{
    const __m256 vs = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        store8(y + i, _mm256_fmadd_ps(load8(x + i), vs, load8(y + i)));
    }
    for (; i < n; i++) {
        y[i] = duet_f32_to_f16(fmaf(duet_f16_to_f32(x[i]), s, duet_f16_to_f32(y[i])));
    }
}

void duet_f16_from_f32_avx2(int64_t n, uint16_t *dst, const float *src)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        store8(dst + i, _mm256_loadu_ps(src + i));
    }
    for (; i < n; i++) {
        dst[i] = duet_f32_to_f16(src[i]);
    }
}

void duet_f16_to_f32_row_avx2(int64_t n, float *dst, const uint16_t *src)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(dst + i, load8(src + i));
    }
    for (; i < n; i++) {
        dst[i] = duet_f16_to_f32(src[i]);
    }
}
