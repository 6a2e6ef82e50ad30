/* K-quants with AVX2/FMA/F16C: the Qx_K · Q8_K dot products and the Q8_K quantizer.
 *
 * Each dot computes, per block, the same integer sums as the scalar code in kquants.c and
 * converts them to float in 8 partial lanes, so results differ from scalar only by float
 * summation order. The pattern per 32 values: unpack the quants to unsigned bytes,
 * vpmaddubsw with the Q8_K bytes (pairs of products into int16, no overflow since
 * |q| <= 63, |q8| <= 127), vpmaddwd with the group scale (into int32), add. Types whose
 * quants carry an offset (Q3_K: q-4, Q6_K: q-32) multiply the unsigned quants and subtract
 * offset * sum(scale[g] * bsums[g]) once per block, using Q8_K's group sums. */
#include <immintrin.h>
#include <string.h>

#include "kquants.h"

#define QK DUET_QK_K

static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float f16_to_f32(uint16_t h)
{
    return _cvtsh_ss(h);
}

static inline __m256i loadu(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/* Shuffle masks for 8 int16 scales broadcast to both 128-bit lanes.
 * one(j): scale j in every int16 (groups of 32 values: Q4_K, Q5_K).
 * pair(t): scale 2t in the low lane, 2t+1 in the high lane (32 values spanning two groups
 * of 16: Q2_K, Q3_K, Q6_K). */
static inline __m256i mask_one(int j)
{
    return _mm256_set1_epi16((short)((2 * j + 1) << 8 | 2 * j));
}

static inline __m256i mask_pair(int t)
{
    return _mm256_set_m128i(_mm_set1_epi16((short)((4 * t + 3) << 8 | (4 * t + 2))),
                            _mm_set1_epi16((short)((4 * t + 1) << 8 | 4 * t)));
}

/* The low (h = 0) or high (h = 1) lane of v in both lanes. */
static inline __m256i lane_bcast(__m256i v, int h)
{
    return h ? _mm256_permute2x128_si256(v, v, 0x11) : _mm256_permute2x128_si256(v, v, 0x00);
}

/* ------------------------------------------------------------------ Q2_K */

float duet_vec_dot_q2_k_q8_k_avx2(int64_t n, const void *row, const void *x)
{
    const block_q2_K *b = row;
    const block_q8_K *y = x;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++) {
        const __m128i raw = _mm_loadu_si128((const __m128i *)b[i].scales);
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(raw, m4));
        const __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), m4));
        const __m256i summ = _mm256_madd_epi16(loadu(y[i].bsums), m16);
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i bits = loadu(b[i].qs + 32 * h);
            const __m256i s = lane_bcast(sc16, h);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * j), m3);
                __m256i p = _mm256_maddubs_epi16(q, loadu(q8 + 128 * h + 32 * j));
                p = _mm256_madd_epi16(p, _mm256_shuffle_epi8(s, mask_pair(j)));
                sumi = _mm256_add_epi32(sumi, p);
            }
        }
        const float d = y[i].d * f16_to_f32(b[i].d);
        const float dmin = y[i].d * f16_to_f32(b[i].dmin);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(summ), accm);
    }
    return hsum_ps(_mm256_sub_ps(acc, accm));
}

/* ------------------------------------------------------------------ Q3_K */

/* The 16 6-bit scales of a Q3_K block, minus 32, as int16 (groups 0-7 in the low lane).
 * Same bit placement as q3_unpack_scales in kquants.c, four groups per 32-bit word. */
static inline __m256i q3_scales(const uint8_t *p)
{
    uint32_t u[3];
    memcpy(u, p, sizeof u);
    const uint32_t lo = 0x0f0f0f0f, hi = 0x03030303;
    const uint32_t s0 = (u[0] & lo) | (u[2] & hi) << 4;
    const uint32_t s1 = (u[1] & lo) | ((u[2] >> 2) & hi) << 4;
    const uint32_t s2 = ((u[0] >> 4) & lo) | ((u[2] >> 4) & hi) << 4;
    const uint32_t s3 = ((u[1] >> 4) & lo) | ((u[2] >> 6) & hi) << 4;
    const __m128i s =
        _mm_sub_epi8(_mm_set_epi32((int)s3, (int)s2, (int)s1, (int)s0), _mm_set1_epi8(32));
    return _mm256_cvtepi8_epi16(s);
}

float duet_vec_dot_q3_k_q8_k_avx2(int64_t n, const void *row, const void *x)
{
    const block_q3_K *b = row;
    const block_q8_K *y = x;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i m4 = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++) {
        const __m256i sc16 = q3_scales(b[i].scales);
        const int8_t *q8 = y[i].qs;
        /* quants are (low2 | high << 2) - 4: multiply the unsigned form, subtract 4*bsums */
        __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(loadu(y[i].bsums), sc16), 2);
        sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
        __m256i hm = loadu(b[i].hmask);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i bits = loadu(b[i].qs + 32 * h);
            const __m256i s = lane_bcast(sc16, h);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                /* value 128h + 32j + l: high bit is bit 4h + j of hmask[l]; hm is shifted
                 * right once per step so it is always bit 0 */
                const __m256i hb = _mm256_and_si256(_mm256_slli_epi16(hm, 2), m4);
                hm = _mm256_srli_epi16(hm, 1);
                const __m256i q =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 2 * j), m3), hb);
                __m256i p = _mm256_maddubs_epi16(q, loadu(q8 + 128 * h + 32 * j));
                p = _mm256_madd_epi16(p, _mm256_shuffle_epi8(s, mask_pair(j)));
                sumi = _mm256_add_epi32(sumi, p);
            }
        }
        const float d = y[i].d * f16_to_f32(b[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc);
}

/* ------------------------------------------------------------------ Q4_K, Q5_K */

/* The first 16 bytes of a Q4_K/Q5_K block (d, dmin, 12 bytes of 6-bit scales and mins),
 * decoded in registers: the 8 scales as int16 in both lanes, the 8 mins as int16 each twice
 * (to pair with the 16 bsums), and d, dmin times the Q8_K scale. Same bit placement as
 * k4_unpack_scales in kquants.c, four groups per 32-bit lane: with w0, w1, w2 the three
 * scale words, scales 0-3 = w0 & 63, mins 0-3 = w1 & 63, scales 4-7 = (w2 & 15) | top two
 * bits of w0's bytes << 4, mins 4-7 = (w2 >> 4 & 15) | top two bits of w1's bytes << 4. */
static inline void k4_header(const void *blk, float yd, __m256i *sc, __m256i *mins, __m256 *d,
                             __m256 *dmin)
{
    const __m128i raw = _mm_loadu_si128((const __m128i *)blk);
    const __m128i a = _mm_shuffle_epi32(raw, _MM_SHUFFLE(3, 2, 3, 1)); /* w0 w2 w1 w2 */
    const __m128i b = _mm_shuffle_epi32(raw, _MM_SHUFFLE(2, 2, 1, 1)); /* w0 w0 w1 w1 */
    const __m128i low6 = _mm_and_si128(a, _mm_set1_epi8(0x3f));
    const __m128i nib =
        _mm_and_si128(_mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 0, 4)), _mm_set1_epi8(0x0f));
    const __m128i top = _mm_and_si128(_mm_srli_epi32(b, 2), _mm_set1_epi8(0x30));
    /* bytes: scales 0-7, mins 0-7 */
    const __m128i sm = _mm_blend_epi32(low6, _mm_or_si128(nib, top), 0xA);
    *sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
    const __m128i dup = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    *mins = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, dup));
    const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(raw), _mm_set1_ps(yd)); /* d, dmin, -, - */
    *d = _mm256_broadcastss_ps(dd);
    *dmin = _mm256_broadcastss_ps(_mm_movehdup_ps(dd));
}

float duet_vec_dot_q4_k_q8_k_avx2(int64_t n, const void *row, const void *x)
{
    const block_q4_K *b = row;
    const block_q8_K *y = x;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++) {
        __m256i sc, mins;
        __m256 d, dmin;
        k4_header(&b[i], y[i].d, &sc, &mins, &d, &dmin);
        const __m256i summ = _mm256_madd_epi16(loadu(y[i].bsums), mins);
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const __m256i bits = loadu(b[i].qs + 32 * c);
            const __m256i lo = _mm256_and_si256(bits, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            __m256i p0 = _mm256_maddubs_epi16(lo, loadu(q8 + 64 * c));
            __m256i p1 = _mm256_maddubs_epi16(hi, loadu(q8 + 64 * c + 32));
            p0 = _mm256_madd_epi16(p0, _mm256_shuffle_epi8(sc, mask_one(2 * c)));
            p1 = _mm256_madd_epi16(p1, _mm256_shuffle_epi8(sc, mask_one(2 * c + 1)));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        acc = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(summ), acc);
    }
    return hsum_ps(acc);
}

float duet_vec_dot_q5_k_q8_k_avx2(int64_t n, const void *row, const void *x)
{
    const block_q5_K *b = row;
    const block_q8_K *y = x;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m16 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++) {
        __m256i sc, mins;
        __m256 d, dmin;
        k4_header(&b[i], y[i].d, &sc, &mins, &d, &dmin);
        const __m256i summ = _mm256_madd_epi16(loadu(y[i].bsums), mins);
        const int8_t *q8 = y[i].qs;
        __m256i hb = loadu(b[i].qh);
        __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            /* values 64c..64c+31 take bit 2c of qh[l], the next 32 bit 2c+1; hb is shifted
             * right by 2 per step, so those are always bits 0 and 1 */
            const __m256i bits = loadu(b[i].qs + 32 * c);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4),
                                               _mm256_and_si256(_mm256_slli_epi16(hb, 4), m16));
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                                               _mm256_and_si256(_mm256_slli_epi16(hb, 3), m16));
            hb = _mm256_srli_epi16(hb, 2);
            __m256i p0 = _mm256_maddubs_epi16(lo, loadu(q8 + 64 * c));
            __m256i p1 = _mm256_maddubs_epi16(hi, loadu(q8 + 64 * c + 32));
            p0 = _mm256_madd_epi16(p0, _mm256_shuffle_epi8(sc, mask_one(2 * c)));
            p1 = _mm256_madd_epi16(p1, _mm256_shuffle_epi8(sc, mask_one(2 * c + 1)));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        acc = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(summ), acc);
    }
    return hsum_ps(acc);
}

/* ------------------------------------------------------------------ Q6_K */

float duet_vec_dot_q6_k_q8_k_avx2(int64_t n, const void *row, const void *x)
{
    const block_q6_K *b = row;
    const block_q8_K *y = x;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m30 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b[i].scales));
        const int8_t *q8 = y[i].qs;
        /* quants are q - 32: multiply the unsigned q, subtract 32 * sum(scale * bsums) */
        __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(loadu(y[i].bsums), sc16), 5);
        sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = loadu(b[i].ql + 64 * h);
            const __m256i l1 = loadu(b[i].ql + 64 * h + 32);
            const __m256i qh = loadu(b[i].qh + 32 * h);
            const __m256i s = lane_bcast(sc16, h);
            /* value 128h + 32k + l: low nibble from l0 (k = 0, 2) or l1 (k = 1, 3), the low
             * or high half; top bits are bits 2k..2k+1 of qh[l], moved to bits 4..5 */
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                   _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                   _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                   _mm256_and_si256(qh, m30));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m256i p = _mm256_maddubs_epi16(q[k], loadu(q8 + 128 * h + 32 * k));
                p = _mm256_madd_epi16(p, _mm256_shuffle_epi8(s, mask_pair(k)));
                sumi = _mm256_add_epi32(sumi, p);
            }
        }
        const float d = y[i].d * f16_to_f32(b[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc);
}

/* ------------------------------------------------------------------ Q8_K quantizer */

static inline float hmax_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

void duet_quantize_row_q8_k_avx2(const float *src, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i v127 = _mm256_set1_epi32(127);
    for (int64_t i = 0; i < n / QK; i++) {
        const float *x = src + i * QK;
        __m256 vmax = _mm256_setzero_ps();
        for (int k = 0; k < QK; k += 8) {
            vmax = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), vmax);
        }
        const float amax = hmax_ps(vmax);
        if (amax == 0) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* the signed value of the first element of largest magnitude, as the scalar code */
        float max = 0;
        for (int k = 0; k < QK; k += 8) {
            const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k));
            const int m = _mm256_movemask_ps(_mm256_cmp_ps(a, _mm256_set1_ps(amax), _CMP_EQ_OQ));
            if (m) {
                max = x[k + __builtin_ctz((unsigned)m)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 vs = _mm256_set1_ps(iscale);
        for (int c = 0; c < QK / 32; c++) {
            __m256i v[4];
            for (int k = 0; k < 4; k++) {
                /* vcvtps2dq rounds half to even, like the scalar lrintf */
                v[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * c + 8 * k), vs));
                v[k] = _mm256_min_epi32(v[k], v127);
            }
            const __m256i a = _mm256_add_epi32(v[0], v[1]), b = _mm256_add_epi32(v[2], v[3]);
            __m256i h = _mm256_hadd_epi32(a, b);
            h = _mm256_hadd_epi32(h, h);
            const __m128i s =
                _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            y[i].bsums[2 * c] = (int16_t)_mm_extract_epi32(s, 0);
            y[i].bsums[2 * c + 1] = (int16_t)_mm_extract_epi32(s, 1);
            /* packs interleave the 128-bit lanes; the permute restores value order */
            __m256i p =
                _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
            p = _mm256_permutevar8x32_epi32(p, perm);
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * c), p);
        }
        y[i].d = 1 / iscale;
    }
}
