/* K-quant tiles with AVX-512 VNNI on 256-bit vectors (vpdpbusd, vpdpwssd; AVX-512 VL/BW
 * for the 32 vector registers and vpternlogd): the same contract and integer block sums as
 * kquant_tiles_avx2.c, with fewer instructions per product.
 *
 * Each weight row is read sequentially through the whole row (rows one after the other),
 * each unpacked weight vector and its scale pattern is used for all activation rows, and
 * the activation bytes are read straight from the Q8_K rows.
 *
 * The products: vpdpbusd multiplies 32 unsigned weight quants by 32 signed activation bytes
 * and sums them in fours into 8 int32 lanes. A Q4_K/Q5_K vector of 32 values is one group,
 * a Q6_K vector two groups of 16 (one per 128-bit lane), so every lane belongs to one group,
 * and a lane is at most 4 * 63 * 128 = 32256 in magnitude: it fits in int16. vpackssdw packs
 * two such vectors (exactly) into one of int16, and one vpdpwssd multiplies the 16 int16
 * values by their group scales and adds pairs into the int32 block sums. Per 64 values and
 * activation row that is 2 vpdpbusd, 1 vpackssdw and 1 vpdpwssd, against 2 vpmaddubsw, 2
 * vpmaddwd and 2 vpaddd with AVX2 (in the per-row dots).
 *
 * Offsets and mins come from the Q8_K group sums, as in the per-row dots: Q4_K/Q5_K subtract
 * dmin * sum(min[g] * bsums), Q6_K (quants q - 32) starts each block sum at
 * -32 * sum(scale[g] * bsums). Q2_K and Q3_K (rarely used) use the AVX2 tiles. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "kquants.h"

#define QK DUET_QK_K
#define TILE 4 /* DUET_TILE_MAX */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

typedef void tile_body(int64_t n, const uint8_t *rows, size_t row_stride, int n_rows,
                       const uint8_t *x, size_t x_stride, float *out, size_t out_stride);

static inline __m256i loadu(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The scales of the activation blocks of block index i: for one activation row in every
 * lane, else yd[j] in lanes j and j + 4 (zero for j >= n_x), as reduce4 places the sums. */
ALWAYS_INLINE __m256 gather_yd(const block_q8_K *const *y, int n_x, int64_t i)
{
    if (n_x == 1) {
        return _mm256_set1_ps(y[0][i].d);
    }
    float d[TILE];
#pragma GCC unroll 4
    for (int j = 0; j < TILE; j++) {
        d[j] = j < n_x ? y[j][i].d : 0.0f;
    }
    return _mm256_setr_ps(d[0], d[1], d[2], d[3], d[0], d[1], d[2], d[3]);
}

/* Four int32 vectors (one per activation row) to one: lane j holds the sum of the low-lane
 * words of v[j], lane 4 + j of its high-lane words. */
static inline __m256i reduce4(const __m256i v[TILE])
{
    return _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
}

/* Row r's sums (acc[r], lanes as reduce4 or, for one activation row, all 8) to out. */
ALWAYS_INLINE void store_tile(const int NX, const __m256 *acc, int n_rows, float *out,
                              size_t out_stride)
{
    for (int r = 0; r < n_rows; r++) {
        if (NX == 1) {
            out[r] = hsum_ps(acc[r]);
        } else {
            float v[8];
            _mm256_storeu_ps(v, acc[r]);
#pragma GCC unroll 4
            for (int j = 0; j < NX; j++) {
                out[(size_t)j * out_stride + (size_t)r] = v[j] + v[j + 4];
            }
        }
    }
}

/* Tiles larger than TILE are split, so the bodies only see 1..TILE by 1..TILE; bodies[k]
 * takes k + 1 activation rows. */
static void split_tiles(tile_body *const bodies[TILE], int64_t n, const void *rows,
                        size_t row_stride, int n_rows, const void *x, size_t x_stride, int n_x,
                        float *out, size_t out_stride)
{
    for (int r = 0; r < n_rows; r += TILE) {
        const int nr = n_rows - r < TILE ? n_rows - r : TILE;
        for (int j = 0; j < n_x; j += TILE) {
            const int nx = n_x - j < TILE ? n_x - j : TILE;
            bodies[nx - 1](n, (const uint8_t *)rows + (size_t)r * row_stride, row_stride, nr,
                           (const uint8_t *)x + (size_t)j * x_stride, x_stride,
                           out + (size_t)j * out_stride + (size_t)r, out_stride);
        }
    }
}

#define DEFINE_BODIES(name, fn, ...)                                                               \
    static void name##_1(int64_t n, const uint8_t *rows, size_t rs, int nr, const uint8_t *x,      \
                         size_t xs, float *out, size_t os)                                         \
    {                                                                                              \
        fn(1, __VA_ARGS__ n, rows, rs, nr, x, xs, out, os);                                        \
    }                                                                                              \
    static void name##_2(int64_t n, const uint8_t *rows, size_t rs, int nr, const uint8_t *x,      \
                         size_t xs, float *out, size_t os)                                         \
    {                                                                                              \
        fn(2, __VA_ARGS__ n, rows, rs, nr, x, xs, out, os);                                        \
    }                                                                                              \
    static void name##_3(int64_t n, const uint8_t *rows, size_t rs, int nr, const uint8_t *x,      \
                         size_t xs, float *out, size_t os)                                         \
    {                                                                                              \
        fn(3, __VA_ARGS__ n, rows, rs, nr, x, xs, out, os);                                        \
    }                                                                                              \
    static void name##_4(int64_t n, const uint8_t *rows, size_t rs, int nr, const uint8_t *x,      \
                         size_t xs, float *out, size_t os)                                         \
    {                                                                                              \
        fn(4, __VA_ARGS__ n, rows, rs, nr, x, xs, out, os);                                        \
    }                                                                                              \
    static tile_body *const name[TILE] = {name##_1, name##_2, name##_3, name##_4}

/* ------------------------------------------------------------------ Q4_K, Q5_K */

/* The 8 scales (bytes 0-7) and 8 mins (bytes 8-15) of a Q4_K/Q5_K block from its first 16
 * bytes (d, dmin, 12 bytes of 6-bit fields). With w1, w2, w3 the three scale words: scales
 * 0-3 = w1 & 63, mins 0-3 = w2 & 63, scales 4-7 = (w3 & 15) | (top two bits of w1's bytes)
 * << 4, mins 4-7 = (w3 >> 4 & 15) | (top two bits of w2's bytes) << 4. */
static inline __m128i k4_scales_mins(__m128i raw)
{
    const __m128i a = _mm_shuffle_epi32(raw, _MM_SHUFFLE(3, 2, 3, 1)); /* w1 w3 w2 w3 */
    const __m128i b = _mm_shuffle_epi32(raw, _MM_SHUFFLE(2, 2, 1, 1)); /* w1 w1 w2 w2 */
    const __m128i low6 = _mm_and_si128(a, _mm_set1_epi8(0x3f));
    const __m128i nib =
        _mm_and_si128(_mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 0, 4)), _mm_set1_epi8(0x0f));
    const __m128i top = _mm_and_si128(_mm_srli_epi32(b, 2), _mm_set1_epi8(0x30));
    return _mm_blend_epi32(low6, _mm_or_si128(nib, top), 0xA);
}

/* Shuffle patterns over the scales/mins bytes (-1: zero). Chunk c of a block (32 bytes of
 * quants) holds group 2c in its low nibbles and group 2c + 1 in its high nibbles; after
 * vpackssdw of their two int32 sum vectors, each 128-bit lane holds four sums of group 2c,
 * then four of group 2c + 1: K4_SC(c) is that pattern of int16 scales. K4_MINS: the mins
 * each twice as int16, in the order of the 16 Q8_K group sums. */
#define Z -1
#define K4_SC4(g) g, Z, g, Z, g, Z, g, Z
#define K4_SC(c) K4_SC4(2 * (c)), K4_SC4(2 * (c) + 1), K4_SC4(2 * (c)), K4_SC4(2 * (c) + 1)
#define K4_MINS                                                                                    \
    8, Z, 8, Z, 9, Z, 9, Z, 10, Z, 10, Z, 11, Z, 11, Z, 12, Z, 12, Z, 13, Z, 13, Z, 14, Z, 14, Z,  \
        15, Z, 15, Z

/* Q4_K/Q5_K tile body for a compile-time number of activation rows NX (q5: Q5_K). */
ALWAYS_INLINE void k4_tile(const int NX, const int q5, int64_t n, const uint8_t *rows,
                           size_t row_stride, int n_rows, const uint8_t *x, size_t x_stride,
                           float *out, size_t out_stride)
{
    const size_t bsize = q5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m16 = _mm256_set1_epi8(0x10);
    const block_q8_K *y[TILE];
#pragma GCC unroll 4
    for (int j = 0; j < TILE; j++) {
        y[j] = (const block_q8_K *)(x + (size_t)(j < NX ? j : 0) * x_stride);
    }
    __m256 acc[TILE];
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *row = rows + (size_t)r * row_stride;
        __m256 a = _mm256_setzero_ps();
        for (int64_t i = 0; i < n / QK; i++) {
            const uint8_t *blk = row + (size_t)i * bsize;
            const uint8_t *qs = blk + (q5 ? offsetof(block_q5_K, qs) : offsetof(block_q4_K, qs));
            const __m128i raw = _mm_loadu_si128((const __m128i *)blk);
            const __m256i sm = _mm256_broadcastsi128_si256(k4_scales_mins(raw));
            const __m256i mins = _mm256_shuffle_epi8(sm, _mm256_setr_epi8(K4_MINS));
            const __m128 dm = _mm_cvtph_ps(raw); /* d, dmin, -, - */
            __m256i is[TILE], ms[TILE];
#pragma GCC unroll 4
            for (int j = 0; j < TILE; j++) {
                is[j] = ms[j] = _mm256_setzero_si256();
            }
            __m256i hb = q5 ? loadu(((const block_q5_K *)blk)->qh) : _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                const __m256i bits = loadu(qs + 32 * c);
                __m256i lo = _mm256_and_si256(bits, m4);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
                if (q5) {
                    /* values 64c + l take bit 2c of qh[l], values 64c + 32 + l bit 2c + 1;
                     * hb moves right by 2 per chunk. vpternlogd 0xEA: (a & b) | c */
                    lo = _mm256_ternarylogic_epi32(_mm256_slli_epi16(hb, 4), m16, lo, 0xEA);
                    hi = _mm256_ternarylogic_epi32(_mm256_slli_epi16(hb, 3), m16, hi, 0xEA);
                    hb = _mm256_srli_epi16(hb, 2);
                }
                const __m256i sc = _mm256_shuffle_epi8(sm, _mm256_setr_epi8(K4_SC(c)));
#pragma GCC unroll 4
                for (int j = 0; j < NX; j++) {
                    const int8_t *q8 = y[j][i].qs + 64 * c;
                    const __m256i pl = _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, loadu(q8));
                    const __m256i ph =
                        _mm256_dpbusd_epi32(_mm256_setzero_si256(), hi, loadu(q8 + 32));
                    /* |pl|, |ph| <= 4 * 31 * 128: packing to int16 is exact */
                    is[j] = _mm256_dpwssd_epi32(is[j], _mm256_packs_epi32(pl, ph), sc);
                }
            }
#pragma GCC unroll 4
            for (int j = 0; j < NX; j++) {
                ms[j] = _mm256_madd_epi16(loadu(y[j][i].bsums), mins);
            }
            const __m256 yd = gather_yd(y, NX, i);
            const __m256 d = _mm256_mul_ps(_mm256_broadcastss_ps(dm), yd);
            const __m256 dmin = _mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dm)), yd);
            if (NX == 1) {
                a = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(is[0]), a);
                a = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(ms[0]), a);
            } else {
                a = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(reduce4(is)), a);
                a = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(reduce4(ms)), a);
            }
        }
        acc[r] = a;
    }
    store_tile(NX, acc, n_rows, out, out_stride);
}

DEFINE_BODIES(q4k_bodies, k4_tile, 0, );
DEFINE_BODIES(q5k_bodies, k4_tile, 1, );

void duet_tile_q4_k_q8_k_vnni(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride)
{
    split_tiles(q4k_bodies, n, rows, row_stride, n_rows, x, x_stride, n_x, out, out_stride);
}

void duet_tile_q5_k_q8_k_vnni(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride)
{
    split_tiles(q5k_bodies, n, rows, row_stride, n_rows, x, x_stride, n_x, out, out_stride);
}

/* ------------------------------------------------------------------ Q6_K */

/* Int16 scale patterns for the vpackssdw of the sums of quant vectors 2kk and 2kk + 1 of a
 * half block (vector k: groups 2k in its low and 2k + 1 in its high 128-bit lane): bytes of
 * the lane-broadcast int16 scales of that half. */
#define W16(g) 2 * (g), 2 * (g) + 1
#define W16x4(g) W16(g), W16(g), W16(g), W16(g)
#define Q6_SC(kk) W16x4(4 * (kk)), W16x4(4 * (kk) + 2), W16x4(4 * (kk) + 1), W16x4(4 * (kk) + 3)

ALWAYS_INLINE void q6k_tile(const int NX, int64_t n, const uint8_t *rows, size_t row_stride,
                            int n_rows, const uint8_t *x, size_t x_stride, float *out,
                            size_t out_stride)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m30 = _mm256_set1_epi8(0x30);
    const block_q8_K *y[TILE];
#pragma GCC unroll 4
    for (int j = 0; j < TILE; j++) {
        y[j] = (const block_q8_K *)(x + (size_t)(j < NX ? j : 0) * x_stride);
    }
    __m256 acc[TILE];
    for (int r = 0; r < n_rows; r++) {
        const block_q6_K *b = (const block_q6_K *)(rows + (size_t)r * row_stride);
        __m256 a = _mm256_setzero_ps();
        for (int64_t i = 0; i < n / QK; i++) {
            const __m256i sc16 =
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b[i].scales));
            /* quants are q - 32: multiply the unsigned q, start from -32 * sum(scale * bsums) */
            const __m256i scm =
                _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(sc16, 5));
            __m256i is[TILE];
#pragma GCC unroll 4
            for (int j = 0; j < TILE; j++) {
                is[j] =
                    j < NX ? _mm256_madd_epi16(loadu(y[j][i].bsums), scm) : _mm256_setzero_si256();
            }
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const __m256i l0 = loadu(b[i].ql + 64 * h);
                const __m256i l1 = loadu(b[i].ql + 64 * h + 32);
                const __m256i qh = loadu(b[i].qh + 32 * h);
                const __m256i s = h ? _mm256_permute2x128_si256(sc16, sc16, 0x11)
                                    : _mm256_permute2x128_si256(sc16, sc16, 0x00);
                /* value 128h + 32k + l: low nibble from l0 (k = 0, 2) or l1 (k = 1, 3), top
                 * bits are bits 2k..2k+1 of qh[l], moved to bits 4..5 */
                __m256i q[4];
                q[0] = _mm256_ternarylogic_epi32(
                    l0, m4, _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30), 0xEA);
                q[1] = _mm256_ternarylogic_epi32(
                    l1, m4, _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30), 0xEA);
                q[2] = _mm256_ternarylogic_epi32(_mm256_srli_epi16(l0, 4), m4,
                                                 _mm256_and_si256(qh, m30), 0xEA);
                q[3] = _mm256_ternarylogic_epi32(_mm256_srli_epi16(l1, 4), m4,
                                                 _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30),
                                                 0xEA);
#pragma GCC unroll 2
                for (int kk = 0; kk < 2; kk++) {
                    const __m256i sk = _mm256_shuffle_epi8(s, _mm256_setr_epi8(Q6_SC(kk)));
#pragma GCC unroll 4
                    for (int j = 0; j < NX; j++) {
                        const int8_t *q8 = y[j][i].qs + 128 * h + 64 * kk;
                        const __m256i p0 =
                            _mm256_dpbusd_epi32(_mm256_setzero_si256(), q[2 * kk], loadu(q8));
                        const __m256i p1 = _mm256_dpbusd_epi32(_mm256_setzero_si256(),
                                                               q[2 * kk + 1], loadu(q8 + 32));
                        /* |p0|, |p1| <= 4 * 63 * 128: packing to int16 is exact */
                        is[j] = _mm256_dpwssd_epi32(is[j], _mm256_packs_epi32(p0, p1), sk);
                    }
                }
            }
            const __m256 d = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(b[i].d)), gather_yd(y, NX, i));
            a = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(NX == 1 ? is[0] : reduce4(is)), a);
        }
        acc[r] = a;
    }
    store_tile(NX, acc, n_rows, out, out_stride);
}

DEFINE_BODIES(q6k_bodies, q6k_tile, );

void duet_tile_q6_k_q8_k_vnni(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride)
{
    split_tiles(q6k_bodies, n, rows, row_stride, n_rows, x, x_stride, n_x, out, out_stride);
}

/* ------------------------------------------------------------------ single rows */

/* The per-row dots are 1x1 tiles: each row is read sequentially as by the AVX2 dots. */
float duet_vec_dot_q4_k_q8_k_vnni(int64_t n, const void *row, const void *x)
{
    float out;
    q4k_bodies_1(n, row, 0, 1, x, 0, &out, 1);
    return out;
}

float duet_vec_dot_q5_k_q8_k_vnni(int64_t n, const void *row, const void *x)
{
    float out;
    q5k_bodies_1(n, row, 0, 1, x, 0, &out, 1);
    return out;
}

float duet_vec_dot_q6_k_q8_k_vnni(int64_t n, const void *row, const void *x)
{
    float out;
    q6k_bodies_1(n, row, 0, 1, x, 0, &out, 1);
    return out;
}

/* ------------------------------------------------------------------ Q2_K, Q3_K */

void duet_tile_q2_k_q8_k_vnni(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride)
{
    duet_tile_q2_k_q8_k_avx2(n, rows, row_stride, n_rows, x, x_stride, n_x, out, out_stride);
}

void duet_tile_q3_k_q8_k_vnni(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride)
{
    duet_tile_q3_k_q8_k_avx2(n, rows, row_stride, n_rows, x, x_stride, n_x, out, out_stride);
}
