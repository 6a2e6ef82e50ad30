/* AVX2+FMA+F16C kernels of the float types and the 32-value block types.
 *
 * A quantized block's 32 products are formed with vpmaddubsw (unsigned x signed bytes to
 * pairwise int16 sums) and one vpmaddwd (to 8 int32 lane sums); the lanes become floats
 * (exact: each is far below 2^24) and are accumulated with one FMA by the block's scale
 * product, so a block's integer sum is the scalar code's. Signed weights go through
 * vpmaddubsw as |w| times y carrying w's sign (Q4_0 as u * y - 8 * y instead). None of the
 * int16 pair sums can saturate: |w| <= 128 and |y| <= 127 give at most 2 * 128 * 127.
 * The f16 scales of several blocks are converted together, which matters as much as the
 * integer work: a Q4_0 block is only 18 bytes. */
#include <immintrin.h>

#include "kernels.h"
#include "legacy_quants.h"

static inline float load_f16(const uint8_t *p)
{
    return _cvtsh_ss(duet_le16(p));
}

static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

static inline float hmax_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* 16 bytes of packed nibbles -> 32 bytes 0..15: low nibbles are values 0..15, high nibbles
 * values 16..31, matching the order of the activation block. The 16 bytes go to both halves
 * and only the upper half is shifted (a variable shift: no cross-lane insert). */
static inline __m256i unpack_nibbles(const uint8_t *qs)
{
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    const __m256i shifted = _mm256_srlv_epi64(both, _mm256_set_epi64x(4, 4, 0, 0));
    return _mm256_and_si256(shifted, _mm256_set1_epi8(0x0f));
}

/* The 32 fifth bits of a Q5 block as bytes: 0xff where bit j of qh is set. Byte j takes
 * byte j/8 of qh, then tests bit j%8. */
static inline __m256i expand_bits(const uint8_t *qh)
{
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)duet_le32(qh)),
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

static inline __m256i load_i8x32(const int8_t *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/* 8 int32 partial sums of u[j] * s[j], u unsigned bytes, s signed bytes. */
static inline __m256i dot_u8_i8(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* The same for two signed byte vectors. */
static inline __m256i dot_i8_i8(__m256i w, __m256i y)
{
    return dot_u8_i8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(y, w));
}

/* The same for (u - 8) * y with u = 0..15: u * y minus 8 * y, both pairwise in int16
 * (at most 2 * 15 * 127 and 2 * 8 * 127 in magnitude), one instruction fewer than signs. */
static inline __m256i dot_u4_minus8_i8(__m256i u, __m256i y)
{
    const __m256i uy = _mm256_maddubs_epi16(u, y);
    const __m256i ey = _mm256_maddubs_epi16(_mm256_set1_epi8(8), y);
    return _mm256_madd_epi16(_mm256_sub_epi16(uy, ey), _mm256_set1_epi16(1));
}

/* The f16 scales of four consecutive blocks, weight and activation interleaved, as eight
 * halves: one vcvtph2ps converts them all. */
static inline __m256 four_scale_pairs(const uint8_t *w, size_t wstride, const uint8_t *x,
                                      size_t xstride)
{
    uint64_t h[2];
    for (int k = 0; k < 2; k++) {
        const uint8_t *w0 = w + 2 * k * wstride, *x0 = x + 2 * k * xstride;
        h[k] = duet_le16(w0) | (uint64_t)duet_le16(x0) << 16 |
               (uint64_t)duet_le16(w0 + wstride) << 32 | (uint64_t)duet_le16(x0 + xstride) << 48;
        /* keep the packing in general registers: at -O3 GCC would otherwise rebuild it from
         * vector shuffles, which compete with the dot itself for the vector ports (-15%) */
        __asm__("" : "+r"(h[k]));
    }
    return _mm256_cvtph_ps(_mm_set_epi64x((long long)h[1], (long long)h[0]));
}

/* dw * dx of four consecutive blocks, in lanes 0, 2, 4 and 6. */
static inline __m256 four_scales(const uint8_t *w, size_t wstride, const uint8_t *x, size_t xstride)
{
    const __m256 f = four_scale_pairs(w, wstride, x, xstride);
    return _mm256_mul_ps(f, _mm256_movehdup_ps(f));
}

/* dw * dx of one block, broadcast (for the tail). */
static inline __m256 one_scale(const uint8_t *w, const uint8_t *x)
{
    const uint32_t both = duet_le16(w) | (uint32_t)duet_le16(x) << 16;
    const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)both));
    return _mm256_broadcastss_ps(_mm_mul_ss(f, _mm_movehdup_ps(f)));
}

static inline __m256 lane(__m256 v, int k)
{
    return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(k));
}

/* For the _1 types the weight's (d, m) and the activation's (d, s) are adjacent f16 pairs.
 * For two consecutive blocks, one conversion gives dw * dx in lanes 0 and 4 and m * s in
 * lanes 1 and 5. */
static inline __m256 two_scales_mins(const uint8_t *w, size_t wstride, const uint8_t *x,
                                     size_t xstride)
{
    const __m128i lo = _mm_set_epi32((int)duet_le32(x + xstride), (int)duet_le32(w + wstride),
                                     (int)duet_le32(x), (int)duet_le32(w));
    const __m256 f = _mm256_cvtph_ps(lo); /* dw0 m0 dx0 s0 | dw1 m1 dx1 s1 */
    return _mm256_mul_ps(f, _mm256_permute_ps(f, _MM_SHUFFLE(1, 0, 3, 2)));
}

/* The same for one block: lane 0 dw * dx, lane 1 m * s. */
static inline __m256 one_scale_min(const uint8_t *w, const uint8_t *x)
{
    const __m128 f = _mm_cvtph_ps(_mm_set_epi32(0, 0, (int)duet_le32(x), (int)duet_le32(w)));
    return _mm256_zextps128_ps256(_mm_mul_ps(f, _mm_movehl_ps(f, f)));
}

static inline __m256 block_fma(__m256i lanes, __m256 scale, __m256 acc)
{
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), scale, acc);
}

static inline float sum4(const __m256 acc[4])
{
    return hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

/* ---------------------------------------------------------------- block dots */

/* The _0 dots take four blocks per step: one conversion for their eight scales, and four
 * accumulators so consecutive blocks' FMAs overlap. Each defines the 8 int32 lane sums of
 * one block (LANES_*), and the loop around them is the same. */

#define DOT_0(WTYPE, XTYPE, LANES)                                                                 \
    const WTYPE *w = row;                                                                          \
    const XTYPE *a = x;                                                                            \
    const int64_t nb = n / DUET_QK;                                                                \
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),                \
                     _mm256_setzero_ps()};                                                         \
    int64_t b = 0;                                                                                 \
    for (; b + 4 <= nb; b += 4) {                                                                  \
        const __m256 d = four_scales(w[b].d, sizeof(WTYPE), a[b].d, sizeof(XTYPE));                \
        for (int k = 0; k < 4; k++) {                                                              \
            acc[k] = block_fma(LANES(w + b + k, a + b + k), lane(d, 2 * k), acc[k]);               \
        }                                                                                          \
    }                                                                                              \
    for (; b < nb; b++) {                                                                          \
        acc[0] = block_fma(LANES(w + b, a + b), one_scale(w[b].d, a[b].d), acc[0]);                \
    }                                                                                              \
    return sum4(acc)

static inline __m256i q4_0_lanes(const duet_block_q4_0 *w, const duet_block_q8_0 *a)
{
    return dot_u4_minus8_i8(unpack_nibbles(w->qs), load_i8x32(a->qs));
}

float duet_vec_dot_q4_0_q8_0_avx2(int64_t n, const void *row, const void *x)
{
    DOT_0(duet_block_q4_0, duet_block_q8_0, q4_0_lanes);
}

static inline __m256i q8_0_lanes(const duet_block_q8_0 *w, const duet_block_q8_0 *a)
{
    return dot_i8_i8(load_i8x32(w->qs), load_i8x32(a->qs));
}

float duet_vec_dot_q8_0_q8_0_avx2(int64_t n, const void *row, const void *x)
{
    DOT_0(duet_block_q8_0, duet_block_q8_0, q8_0_lanes);
}

/* q - 16 is the nibble when the fifth bit is set, else the nibble with 0xf0 above it
 * (nibble - 16 in two's complement). */
static inline __m256i q5_0_lanes(const duet_block_q5_0 *w, const duet_block_q8_0 *a)
{
    const __m256i wq =
        _mm256_or_si256(unpack_nibbles(w->qs),
                        _mm256_andnot_si256(expand_bits(w->qh), _mm256_set1_epi8((char)0xf0)));
    return dot_i8_i8(wq, load_i8x32(a->qs));
}

float duet_vec_dot_q5_0_q8_0_avx2(int64_t n, const void *row, const void *x)
{
    DOT_0(duet_block_q5_0, duet_block_q8_0, q5_0_lanes);
}

/* The _1 dots take two blocks per step; the min terms m * s collect in lanes 1 and 5 of
 * their own accumulator, summed once at the end. */

#define DOT_1(WTYPE, XTYPE, LANES)                                                                 \
    const WTYPE *w = row;                                                                          \
    const XTYPE *a = x;                                                                            \
    const int64_t nb = n / DUET_QK;                                                                \
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};                                    \
    __m256 mins = _mm256_setzero_ps();                                                             \
    int64_t b = 0;                                                                                 \
    for (; b + 2 <= nb; b += 2) {                                                                  \
        const __m256 sm = two_scales_mins(w[b].d, sizeof(WTYPE), a[b].d, sizeof(XTYPE));           \
        mins = _mm256_add_ps(mins, sm);                                                            \
        acc[0] = block_fma(LANES(w + b, a + b), lane(sm, 0), acc[0]);                              \
        acc[1] = block_fma(LANES(w + b + 1, a + b + 1), lane(sm, 4), acc[1]);                      \
    }                                                                                              \
    for (; b < nb; b++) {                                                                          \
        const __m256 sm = one_scale_min(w[b].d, a[b].d);                                           \
        mins = _mm256_add_ps(mins, sm);                                                            \
        acc[0] = block_fma(LANES(w + b, a + b), lane(sm, 0), acc[0]);                              \
    }                                                                                              \
    const float min_sum = _mm256_cvtss_f32(lane(mins, 1)) + _mm256_cvtss_f32(lane(mins, 5));       \
    return hsum_ps(_mm256_add_ps(acc[0], acc[1])) + min_sum

static inline __m256i q4_1_lanes(const duet_block_q4_1 *w, const duet_block_q8_1 *a)
{
    return dot_u8_i8(unpack_nibbles(w->qs), load_i8x32(a->qs));
}

float duet_vec_dot_q4_1_q8_1_avx2(int64_t n, const void *row, const void *x)
{
    DOT_1(duet_block_q4_1, duet_block_q8_1, q4_1_lanes);
}

static inline __m256i q5_1_lanes(const duet_block_q5_1 *w, const duet_block_q8_1 *a)
{
    const __m256i wq = _mm256_or_si256(
        unpack_nibbles(w->qs), _mm256_and_si256(expand_bits(w->qh), _mm256_set1_epi8(0x10)));
    return dot_u8_i8(wq, load_i8x32(a->qs));
}

float duet_vec_dot_q5_1_q8_1_avx2(int64_t n, const void *row, const void *x)
{
    DOT_1(duet_block_q5_1, duet_block_q8_1, q5_1_lanes);
}

/* ---------------------------------------------------------------- float dots */

/* Four accumulators of 8 lanes cover the FMA latency; the tail goes lane by lane. */
float duet_vec_dot_f32_f32_avx2(int64_t n, const void *row, const void *x)
{
    const float *p = row, *q = x;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(p + i), _mm256_loadu_ps(q + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(p + i + 8), _mm256_loadu_ps(q + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(p + i + 16), _mm256_loadu_ps(q + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(p + i + 24), _mm256_loadu_ps(q + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(p + i), _mm256_loadu_ps(q + i), acc0);
    }
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++) {
        sum += p[i] * q[i];
    }
    return sum;
}

static inline __m256 load_f16x8(const uint8_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

float duet_vec_dot_f16_f16_avx2(int64_t n, const void *row, const void *x)
{
    const uint8_t *p = row, *q = x;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const uint8_t *pi = p + 2 * i, *qi = q + 2 * i;
        acc0 = _mm256_fmadd_ps(load_f16x8(pi), load_f16x8(qi), acc0);
        acc1 = _mm256_fmadd_ps(load_f16x8(pi + 16), load_f16x8(qi + 16), acc1);
        acc2 = _mm256_fmadd_ps(load_f16x8(pi + 32), load_f16x8(qi + 32), acc2);
        acc3 = _mm256_fmadd_ps(load_f16x8(pi + 48), load_f16x8(qi + 48), acc3);
    }
    for (; i + 8 <= n; i += 8) {
        acc0 = _mm256_fmadd_ps(load_f16x8(p + 2 * i), load_f16x8(q + 2 * i), acc0);
    }
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++) {
        sum += load_f16(p + 2 * i) * load_f16(q + 2 * i);
    }
    return sum;
}

/* bf16 is the top half of a float: widen to 32 bits and shift into place. */
static inline __m256 load_bf16x8(const uint8_t *p)
{
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

float duet_vec_dot_bf16_bf16_avx2(int64_t n, const void *row, const void *x)
{
    const uint8_t *p = row, *q = x;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const uint8_t *pi = p + 2 * i, *qi = q + 2 * i;
        acc0 = _mm256_fmadd_ps(load_bf16x8(pi), load_bf16x8(qi), acc0);
        acc1 = _mm256_fmadd_ps(load_bf16x8(pi + 16), load_bf16x8(qi + 16), acc1);
        acc2 = _mm256_fmadd_ps(load_bf16x8(pi + 32), load_bf16x8(qi + 32), acc2);
        acc3 = _mm256_fmadd_ps(load_bf16x8(pi + 48), load_bf16x8(qi + 48), acc3);
    }
    for (; i + 8 <= n; i += 8) {
        acc0 = _mm256_fmadd_ps(load_bf16x8(p + 2 * i), load_bf16x8(q + 2 * i), acc0);
    }
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++) {
        sum += duet_bf16_to_f32(duet_le16(p + 2 * i)) * duet_bf16_to_f32(duet_le16(q + 2 * i));
    }
    return sum;
}

/* ---------------------------------------------------------------- activation quantizers */

/* roundf: halves away from zero. v - trunc(v) is exact, so comparing it with 0.5 decides
 * the rounding without the double rounding of floor(v + 0.5). */
static inline __m256 round_half_away(__m256 v)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 step = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_and_ps(up, step));
}

/* One block of Q8: the same scale and quants as the scalar quantizer, bit for bit. Returns
 * the unrounded scale; *sum gets the sum of the quants. */
static inline float quantize_q8_block(const float *x, uint8_t d_out[2], int8_t *qs, int *sum)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4];
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
    }
    const __m256 m01 = _mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1]));
    const __m256 m23 = _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3]));
    const float amax = hmax_ps(_mm256_max_ps(m01, m23));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    duet_put_le16(d_out, duet_f32_to_f16(d));
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++) {
        q[k] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[k], vid)));
    }
    *sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    /* the packs interleave 128-bit lanes; the permute puts the dwords back in order */
    const __m256i p =
        _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    const __m256i ordered =
        _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)qs, ordered);
    return d;
}

void duet_quantize_row_q8_0_avx2(const float *src, void *dst, int64_t n)
{
    duet_block_q8_0 *y = dst;
    for (int64_t b = 0; b < n / DUET_QK; b++) {
        int sum;
        quantize_q8_block(src + b * DUET_QK, y[b].d, y[b].qs, &sum);
    }
}

void duet_quantize_row_q8_1_avx2(const float *src, void *dst, int64_t n)
{
    duet_block_q8_1 *y = dst;
    for (int64_t b = 0; b < n / DUET_QK; b++) {
        int sum;
        const float d = quantize_q8_block(src + b * DUET_QK, y[b].d, y[b].qs, &sum);
        duet_put_le16(y[b].s, duet_f32_to_f16((float)sum * d));
    }
}

/* vcvtps2ph rounds to nearest even and quiets NaNs exactly as duet_f32_to_f16 does. */
void duet_quantize_row_f16_avx2(const float *src, void *dst, int64_t n)
{
    uint8_t *out = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(out + 2 * i), h);
    }
    for (; i < n; i++) {
        duet_put_le16(out + 2 * i, duet_f32_to_f16(src[i]));
    }
}
