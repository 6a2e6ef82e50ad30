/* K-quant tiles with AVX2/FMA/F16C: up to 4 weight rows times up to 4 Q8_K activation rows
 * per call (duet_vec_dot_tile's contract), out[j * out_stride + i] = dot(row i, x row j).
 *
 * Each weight super-block is unpacked once for all activation rows, each activation block is
 * prepared once for all weight rows, and the integer block sums are the same as those of the
 * per-row dots (kquants.c, kquants_avx2.c); only the float summation order differs.
 *
 * Q4_K and Q5_K work on transposed data. Chunk c of a block (values 64c..64c+63) holds group
 * 2c in its low nibbles and group 2c+1 in its high nibbles; a 4x4 transpose of 32-bit words
 * over the four chunks (inside each 128-bit lane) gives four vectors whose word m always
 * comes from chunk m % 4. So word m of the low-nibble vectors is always group 2(m % 4) and of
 * the high-nibble vectors group 2(m % 4) + 1, and the products of all four vectors can be
 * summed lane by lane in int16 before the group scales are applied: one vpmaddwd per 128
 * values instead of one per 32. The activation bytes go through the same transposes, a chunk
 * of blocks at a time; then each weight row is read sequentially through the chunk. (With one
 * activation row Q5_K's two transposes per block do not pay: it loops over the per-row dot.)
 *
 * Q6_K keeps the block layout (its groups of 16 values would need twice the transposes) and
 * shares each unpacked weight vector and its scale pattern between the activation rows.
 * Q2_K and Q3_K (rarely used) loop over the per-row AVX2 dots. */
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

/* 4x4 transposes of 32-bit words inside each 128-bit lane: afterwards v[t] holds word t of
 * v[0], v[1], v[2], v[3] in its low lane and word 4 + t of each in its high lane. */
static inline void transpose4(__m256i v[4])
{
    const __m256i a = _mm256_unpacklo_epi32(v[0], v[1]);
    const __m256i b = _mm256_unpackhi_epi32(v[0], v[1]);
    const __m256i c = _mm256_unpacklo_epi32(v[2], v[3]);
    const __m256i d = _mm256_unpackhi_epi32(v[2], v[3]);
    v[0] = _mm256_unpacklo_epi64(a, c);
    v[1] = _mm256_unpackhi_epi64(a, c);
    v[2] = _mm256_unpacklo_epi64(b, d);
    v[3] = _mm256_unpackhi_epi64(b, d);
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

/* Shuffle patterns (bytes of the 128-bit scales/mins vector in both lanes, -1 for zero):
 * the int16 scales of the transposed low-nibble words (groups 0 2 4 6, each twice, as words
 * hold two int16 products), the same for the high nibbles (groups 1 3 5 7), and the mins
 * each twice, in the order of the 16 Q8_K group sums. */
#define Z -1
#define K4_SCL16 0, Z, 0, Z, 2, Z, 2, Z, 4, Z, 4, Z, 6, Z, 6, Z
#define K4_SCH16 1, Z, 1, Z, 3, Z, 3, Z, 5, Z, 5, Z, 7, Z, 7, Z

/* The activation bytes of one Q8_K block in the transposed order: xt[0..3] pair with the
 * low-nibble vectors, xt[4..7] with the high-nibble vectors. */
static inline void k4_prep_x(const int8_t *q8, __m256i xt[8])
{
    __m256i lo[4], hi[4];
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        lo[c] = loadu(q8 + 64 * c);
        hi[c] = loadu(q8 + 64 * c + 32);
    }
    transpose4(lo);
    transpose4(hi);
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++) {
        xt[t] = lo[t];
        xt[4 + t] = hi[t];
    }
}

/* Activation blocks prepared per chunk (8 KB of transposed bytes): the weight rows are then
 * read one after the other for a whole chunk, sequentially, as the per-row dots read them. */
#define XBUF 32

/* One Q4_K/Q5_K block of one weight row against NX prepared activation blocks xt[0..NX-1]
 * (of Q8_K blocks yb[j]), yd their scales as gather_yd places them; returns acc plus the
 * block's contribution: for NX = 1 spread over all 8 lanes, else in lanes j and j + 4. */
ALWAYS_INLINE __m256 k4_block(const int NX, const int q5, const uint8_t *blk,
                              const __m256i (*xt)[8], const block_q8_K *const *yb, __m256 yd,
                              __m256 acc)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m16 = _mm256_set1_epi8(0x10);
    const __m256i pscl = _mm256_setr_epi8(K4_SCL16, K4_SCL16);
    const __m256i psch = _mm256_setr_epi8(K4_SCH16, K4_SCH16);
    const __m256i pmin = _mm256_setr_epi8(8, Z, 8, Z, 9, Z, 9, Z, 10, Z, 10, Z, 11, Z, 11, Z, 12, Z,
                                          12, Z, 13, Z, 13, Z, 14, Z, 14, Z, 15, Z, 15, Z);
    const __m128i raw = _mm_loadu_si128((const __m128i *)blk);
    const __m256i sm = _mm256_broadcastsi128_si256(k4_scales_mins(raw));
    const __m256i scl = _mm256_shuffle_epi8(sm, pscl);
    const __m256i sch = _mm256_shuffle_epi8(sm, psch);
    const __m256i mins = _mm256_shuffle_epi8(sm, pmin);
    const __m128 dm = _mm_cvtph_ps(raw); /* d, dmin, -, - */
    __m256i lo[4], hi[4];
    if (q5) {
        const block_q5_K *b = (const block_q5_K *)blk;
        __m256i hb = loadu(b->qh);
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            /* values 64c + l take bit 2c of qh[l], values 64c + 32 + l bit 2c + 1 */
            const __m256i bits = loadu(b->qs + 32 * c);
            lo[c] = _mm256_or_si256(_mm256_and_si256(bits, m4),
                                    _mm256_and_si256(_mm256_slli_epi16(hb, 4), m16));
            hi[c] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                                    _mm256_and_si256(_mm256_slli_epi16(hb, 3), m16));
            hb = _mm256_srli_epi16(hb, 2);
        }
        transpose4(lo);
        transpose4(hi);
    } else {
        const block_q4_K *b = (const block_q4_K *)blk;
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            lo[c] = loadu(b->qs + 32 * c);
        }
        transpose4(lo);
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            hi[t] = _mm256_and_si256(_mm256_srli_epi16(lo[t], 4), m4);
            lo[t] = _mm256_and_si256(lo[t], m4);
        }
    }
    __m256i is[TILE], ms[TILE];
#pragma GCC unroll 4
    for (int j = 0; j < TILE; j++) {
        is[j] = ms[j] = _mm256_setzero_si256();
    }
#pragma GCC unroll 4
    for (int j = 0; j < NX; j++) {
        /* int16 sums of 8 products: |q| <= 31, |q8| <= 128, at most 31744 */
        __m256i pl = _mm256_maddubs_epi16(lo[0], xt[j][0]);
        __m256i ph = _mm256_maddubs_epi16(hi[0], xt[j][4]);
#pragma GCC unroll 4
        for (int t = 1; t < 4; t++) {
            pl = _mm256_add_epi16(pl, _mm256_maddubs_epi16(lo[t], xt[j][t]));
            ph = _mm256_add_epi16(ph, _mm256_maddubs_epi16(hi[t], xt[j][4 + t]));
        }
        is[j] = _mm256_add_epi32(_mm256_madd_epi16(pl, scl), _mm256_madd_epi16(ph, sch));
        ms[j] = _mm256_madd_epi16(loadu(yb[j]->bsums), mins);
    }
    const __m256 d = _mm256_mul_ps(_mm256_broadcastss_ps(dm), yd);
    const __m256 dmin = _mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dm)), yd);
    if (NX == 1) {
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(is[0]), acc);
        return _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(ms[0]), acc);
    }
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(reduce4(is)), acc);
    return _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(reduce4(ms)), acc);
}

/* Row r's sums (acc[r], lanes as k4_block leaves them) to out. */
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

/* Q4_K/Q5_K tile body for a compile-time number of activation rows NX (q5: Q5_K). */
ALWAYS_INLINE void k4_tile(const int NX, const int q5, int64_t n, const uint8_t *rows,
                           size_t row_stride, int n_rows, const uint8_t *x, size_t x_stride,
                           float *out, size_t out_stride)
{
    if (q5 && NX == 1) {
        /* one activation row gains nothing from the transposed Q5_K layout (two transposes
         * per block, used once): the per-row dot is faster */
        for (int r = 0; r < n_rows; r++) {
            out[r] = duet_vec_dot_q5_k_q8_k_avx2(n, rows + (size_t)r * row_stride, x);
        }
        return;
    }
    const size_t bsize = q5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const int64_t nb = n / QK, chunk = XBUF / NX;
    const block_q8_K *y[TILE];
#pragma GCC unroll 4
    for (int j = 0; j < TILE; j++) {
        y[j] = (const block_q8_K *)(x + (size_t)(j < NX ? j : 0) * x_stride);
    }
    __m256 acc[TILE];
#pragma GCC unroll 4
    for (int r = 0; r < TILE; r++) {
        acc[r] = _mm256_setzero_ps();
    }
    __m256i xt[XBUF][8];
    __m256 yd[XBUF];
    for (int64_t i0 = 0; i0 < nb; i0 += chunk) {
        const int64_t nc = nb - i0 < chunk ? nb - i0 : chunk;
        for (int64_t c = 0; c < nc; c++) {
#pragma GCC unroll 4
            for (int j = 0; j < NX; j++) {
                k4_prep_x(y[j][i0 + c].qs, xt[c * NX + j]);
            }
            yd[c] = gather_yd(y, NX, i0 + c);
        }
        for (int r = 0; r < n_rows; r++) {
            const uint8_t *base = rows + (size_t)r * row_stride + (size_t)i0 * bsize;
            __m256 a = acc[r];
            for (int64_t c = 0; c < nc; c++) {
                const block_q8_K *yb[TILE];
#pragma GCC unroll 4
                for (int j = 0; j < TILE; j++) {
                    yb[j] = &y[j][i0 + c];
                }
                a = k4_block(NX, q5, base + (size_t)c * bsize, (const __m256i(*)[8])xt[c * NX], yb,
                             yd[c], a);
            }
            acc[r] = a;
        }
    }
    store_tile(NX, acc, n_rows, out, out_stride);
}

DEFINE_BODIES(q4k_bodies, k4_tile, 0, );
DEFINE_BODIES(q5k_bodies, k4_tile, 1, );

void duet_tile_q4_k_q8_k_avx2(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride)
{
    split_tiles(q4k_bodies, n, rows, row_stride, n_rows, x, x_stride, n_x, out, out_stride);
}

void duet_tile_q5_k_q8_k_avx2(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride)
{
    split_tiles(q5k_bodies, n, rows, row_stride, n_rows, x, x_stride, n_x, out, out_stride);
}

/* ------------------------------------------------------------------ Q6_K */

/* Shuffle pattern for 32 values spanning two groups of 16: int16 scale 2k of the lane-
 * broadcast scales in the low lane, 2k + 1 in the high lane. */
static inline __m256i mask_pair(int k)
{
    return _mm256_set_m128i(_mm_set1_epi16((short)((4 * k + 3) << 8 | (4 * k + 2))),
                            _mm_set1_epi16((short)((4 * k + 1) << 8 | 4 * k)));
}

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
                    const __m256i sk = _mm256_shuffle_epi8(s, mask_pair(k));
#pragma GCC unroll 4
                    for (int j = 0; j < NX; j++) {
                        const __m256i p =
                            _mm256_maddubs_epi16(q[k], loadu(y[j][i].qs + 128 * h + 32 * k));
                        is[j] = _mm256_add_epi32(is[j], _mm256_madd_epi16(p, sk));
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

void duet_tile_q6_k_q8_k_avx2(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride)
{
    split_tiles(q6k_bodies, n, rows, row_stride, n_rows, x, x_stride, n_x, out, out_stride);
}

/* ------------------------------------------------------------------ Q2_K, Q3_K */

typedef float row_dot(int64_t n, const void *row, const void *x);

static void loop_tile(row_dot *dot, int64_t n, const void *rows, size_t row_stride, int n_rows,
                      const void *x, size_t x_stride, int n_x, float *out, size_t out_stride)
{
    for (int j = 0; j < n_x; j++) {
        const uint8_t *xj = (const uint8_t *)x + (size_t)j * x_stride;
        for (int r = 0; r < n_rows; r++) {
            out[(size_t)j * out_stride + (size_t)r] =
                dot(n, (const uint8_t *)rows + (size_t)r * row_stride, xj);
        }
    }
}

void duet_tile_q2_k_q8_k_avx2(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride)
{
    loop_tile(duet_vec_dot_q2_k_q8_k_avx2, n, rows, row_stride, n_rows, x, x_stride, n_x, out,
              out_stride);
}

void duet_tile_q3_k_q8_k_avx2(int64_t n, const void *rows, size_t row_stride, int n_rows,
                              const void *x, size_t x_stride, int n_x, float *out,
                              size_t out_stride)
{
    loop_tile(duet_vec_dot_q3_k_q8_k_avx2, n, rows, row_stride, n_rows, x, x_stride, n_x, out,
              out_stride);
}
