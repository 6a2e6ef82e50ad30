/* AVX2+FMA+F16C tiles of dot products of the 32-value block types: four weight rows times
 * up to four activation rows (kernels.h's duet_vec_dot_tile).
 *
 * A tile walks the rows two blocks (b, b+1) at a time. Each weight row is unpacked once per
 * step into two vectors of bytes,
 *   lo = [values 0..15 of block b | values 0..15 of block b+1]
 *   hi = [values 16..31 of block b | values 16..31 of block b+1]
 * (for the 4-bit types one 16-byte load per block: the low nibbles are values 0..15, the
 * high nibbles 16..31), and each activation row is loaded once in the same order. A pair
 * (row i, activation j) then gives int lanes whose lower half belongs to block b and upper
 * half to block b+1; unpacks and adds of the four rows' lanes (vphadd is slower) leave in
 * each half one exact block sum per row, [rows 0..3 of b | rows 0..3 of b+1]. That vector
 * is converted to float and accumulated with one FMA by the matching scale products
 * dw * dx, from one vcvtph2ps of the eight weight scales and one of the activations'. So
 * the float work of a step is per activation, not per pair; each weight block is unpacked
 * once for all activations, each activation block loaded once for all rows.
 *
 * Integer sums (u: unsigned quants, y: int8 activations in -127..127, as the Q8_0 and Q8_1
 * quantizers write them):
 *  - Q4_0, Q5_0: u = q + z (z = 8, 16); vpmaddubsw gives u * y pair sums, the activation's
 *    -z * y pair sums (the same instruction, once per activation and step) are added in
 *    int16, and each row's lanes are added pairwise in int16 before vpmaddwd widens them:
 *    8 products of (u - z) * y, at most 8 * 16 * 127 = 16256 in magnitude.
 *  - Q4_1, Q5_1: u * y the same way, without an offset (8 * 31 * 127 = 31496 < 2^15).
 *  - Q8_0: |w| * (y signed by w) per half, each widened by vpmaddwd on its own (two halves
 *    could reach 4 * 128 * 127, q = -128 included), then the same int32 reduction.
 * The _1 types add their min terms m * s with one more FMA per activation and step.
 * A row with an odd block count ends with a zero block as its block b+1. */
#include <immintrin.h>
#include <stdbool.h>

#include "kernels.h"
#include "legacy_quants.h"

#define INLINE static inline __attribute__((always_inline))

/* How far ahead (at least, in whole tiles) the weights are prefetched. */
#define PREFETCH_BYTES 8192

typedef enum { K_Q4_0, K_Q5_0, K_Q8_0, K_Q4_1, K_Q5_1 } legacy_kind;

INLINE size_t w_size(legacy_kind k)
{
    switch (k) {
    case K_Q4_0:
        return sizeof(duet_block_q4_0);
    case K_Q5_0:
        return sizeof(duet_block_q5_0);
    case K_Q8_0:
        return sizeof(duet_block_q8_0);
    case K_Q4_1:
        return sizeof(duet_block_q4_1);
    default:
        return sizeof(duet_block_q5_1);
    }
}

INLINE bool has_min(legacy_kind k)
{
    return k == K_Q4_1 || k == K_Q5_1;
}

INLINE size_t x_size(legacy_kind k)
{
    return has_min(k) ? sizeof(duet_block_q8_1) : sizeof(duet_block_q8_0);
}

INLINE size_t x_qs(legacy_kind k)
{
    return has_min(k) ? 4 : 2;
}

/* A zero block stands in for block b+1 when a row has an odd number of blocks: zero scales
 * and quants add nothing. */
static const uint8_t zero_block[64];

INLINE __m256i load2x128(const uint8_t *lo, const uint8_t *hi)
{
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)lo)),
                                   _mm_loadu_si128((const __m128i *)hi), 1);
}

/* The fifth bits of blocks b0 and b1 (qh words h0, h1) as bytes 0 or 0x10 in the lo/hi
 * order: byte t of the lower half of lo takes bit t of h0, of the upper half bit t of h1;
 * hi the same with bits 16 + t. One broadcast of both words serves both shuffles. */
INLINE void fifth_bits(uint32_t h0, uint32_t h1, __m256i *lo, __m256i *hi)
{
    const __m256i both = _mm256_set1_epi64x((long long)((uint64_t)h1 << 32 | h0));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i sixteen = _mm256_set1_epi8(0x10);
    const __m256i sl = _mm256_shuffle_epi8(
        both, _mm256_set_epi64x(0x0505050505050505, 0x0404040404040404, 0x0101010101010101, 0));
    const __m256i sh =
        _mm256_shuffle_epi8(both, _mm256_set_epi64x(0x0707070707070707, 0x0606060606060606,
                                                    0x0303030303030303, 0x0202020202020202));
    *lo = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(sl, bit), bit), sixteen);
    *hi = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(sh, bit), bit), sixteen);
}

/* Blocks b0 and b1 of one weight row in the lo/hi order: unsigned quants for the 4- and
 * 5-bit types, the signed quants for Q8_0. */
INLINE void unpack(legacy_kind k, const uint8_t *b0, const uint8_t *b1, __m256i *lo, __m256i *hi)
{
    if (k == K_Q8_0) {
        *lo = load2x128(b0 + 2, b1 + 2);
        *hi = load2x128(b0 + 18, b1 + 18);
        return;
    }
    const size_t qs = k == K_Q4_0 ? 2 : k == K_Q4_1 ? 4 : k == K_Q5_0 ? 6 : 8;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i v = load2x128(b0 + qs, b1 + qs);
    *lo = _mm256_and_si256(v, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if (k == K_Q5_0 || k == K_Q5_1) {
        const size_t qh = k == K_Q5_0 ? 2 : 4;
        const uint32_t h0 = duet_le32(b0 + qh), h1 = duet_le32(b1 + qh);
        __m256i bl, bh;
        fifth_bits(h0, h1, &bl, &bh);
        *lo = _mm256_or_si256(*lo, bl);
        *hi = _mm256_or_si256(*hi, bh);
    }
}

/* Four f16 fields as one 64-bit word, kept in general registers (GCC would otherwise build
 * it with vector inserts that compete with the dots for the vector ports). */
INLINE uint64_t pack4(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, const uint8_t *p3)
{
    uint64_t h = duet_le16(p0) | (uint64_t)duet_le16(p1) << 16 | (uint64_t)duet_le16(p2) << 32 |
                 (uint64_t)duet_le16(p3) << 48;
    __asm__("" : "+r"(h));
    return h;
}

/* The f16 fields at offset off of blocks p0[i] (lanes 0..3) and p1[i] (lanes 4..7). */
INLINE __m256 gather_scales(const uint8_t *const p0[4], const uint8_t *const p1[4], size_t off)
{
    const uint64_t a = pack4(p0[0] + off, p0[1] + off, p0[2] + off, p0[3] + off);
    const uint64_t b = pack4(p1[0] + off, p1[1] + off, p1[2] + off, p1[3] + off);
    return _mm256_cvtph_ps(_mm_set_epi64x((long long)b, (long long)a));
}

/* The same for the first nx activations (the other lanes zero). */
INLINE __m256 gather_x(int nx, const uint8_t *const y0[4], const uint8_t *const y1[4], size_t off)
{
    uint64_t a = 0, b = 0;
    for (int j = 0; j < nx; j++) {
        a |= (uint64_t)duet_le16(y0[j] + off) << (16 * j);
        b |= (uint64_t)duet_le16(y1[j] + off) << (16 * j);
    }
    __asm__("" : "+r"(a), "+r"(b));
    return _mm256_cvtph_ps(_mm_set_epi64x((long long)b, (long long)a));
}

/* Lane j of each half of v, spread over that half: activation j's field of blocks b and
 * b+1 in the layout of the block sums. */
INLINE __m256 spread(__m256 v, int j)
{
    return _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(j, j, j, j, j + 4, j + 4, j + 4, j + 4));
}

/* [sum of lanes 0..3 of v[0], of v[1], of v[2], of v[3] | the same of lanes 4..7] for int32
 * lanes, with unpacks and adds (vphaddd is slower: three uops, two of them shuffles). */
INLINE __m256i reduce4(const __m256i v[4])
{
    const __m256i a =
        _mm256_add_epi32(_mm256_unpacklo_epi32(v[0], v[1]), _mm256_unpackhi_epi32(v[0], v[1]));
    const __m256i b =
        _mm256_add_epi32(_mm256_unpacklo_epi32(v[2], v[3]), _mm256_unpackhi_epi32(v[2], v[3]));
    return _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
}

/* The same for int16 lanes of 4 products each whose sums of 8 products fit in int16: the
 * dwords of two rows are interleaved and added (8 products per int16), vpmaddwd takes each
 * row's word pairs to int32, and the qwords of the two row pairs are interleaved and added. */
INLINE __m256i reduce4_16(const __m256i v[4])
{
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i a = _mm256_madd_epi16(
        _mm256_add_epi16(_mm256_unpacklo_epi32(v[0], v[1]), _mm256_unpackhi_epi32(v[0], v[1])),
        ones);
    const __m256i b = _mm256_madd_epi16(
        _mm256_add_epi16(_mm256_unpacklo_epi32(v[2], v[3]), _mm256_unpackhi_epi32(v[2], v[3])),
        ones);
    return _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
}

/* The block sums of rows 0..3 times one activation (ylo, yhi): [rows of b | rows of b+1].
 * zy: the activation's -z * y pair sums for the types with an offset z. */
INLINE __m256i block_sums(legacy_kind k, const __m256i lo[4], const __m256i hi[4], __m256i ylo,
                          __m256i yhi, __m256i zy)
{
    __m256i v[4];
    if (k == K_Q8_0) {
        const __m256i ones = _mm256_set1_epi16(1);
        for (int i = 0; i < 4; i++) {
            const __m256i pl =
                _mm256_maddubs_epi16(_mm256_sign_epi8(lo[i], lo[i]), _mm256_sign_epi8(ylo, lo[i]));
            const __m256i ph =
                _mm256_maddubs_epi16(_mm256_sign_epi8(hi[i], hi[i]), _mm256_sign_epi8(yhi, hi[i]));
            v[i] = _mm256_add_epi32(_mm256_madd_epi16(pl, ones), _mm256_madd_epi16(ph, ones));
        }
        return reduce4(v);
    }
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_add_epi16(_mm256_maddubs_epi16(lo[i], ylo), _mm256_maddubs_epi16(hi[i], yhi));
        if (k == K_Q4_0 || k == K_Q5_0) {
            v[i] = _mm256_add_epi16(v[i], zy);
        }
    }
    return reduce4_16(v);
}

/* One step of two blocks for four weight rows and nx activations. */
INLINE void step(legacy_kind k, int nx, const uint8_t *const w0[4], const uint8_t *const w1[4],
                 const uint8_t *const y0[4], const uint8_t *const y1[4], __m256 acc[4])
{
    __m256i lo[4], hi[4];
    for (int i = 0; i < 4; i++) {
        unpack(k, w0[i], w1[i], &lo[i], &hi[i]);
    }
    const __m256 wd = gather_scales(w0, w1, 0);
    const __m256 xd = gather_x(nx, y0, y1, 0);
    __m256 wm = _mm256_setzero_ps(), xs = _mm256_setzero_ps();
    if (has_min(k)) {
        wm = gather_scales(w0, w1, 2);
        xs = gather_x(nx, y0, y1, 2);
    }
    const size_t q = x_qs(k);
    for (int j = 0; j < nx; j++) {
        const __m256i ylo = load2x128(y0[j] + q, y1[j] + q);
        const __m256i yhi = load2x128(y0[j] + q + 16, y1[j] + q + 16);
        __m256i zy = _mm256_setzero_si256();
        if (k == K_Q4_0 || k == K_Q5_0) {
            /* -z * y pair sums: at most 4 * 16 * 127 in magnitude over both halves */
            const __m256i z = _mm256_set1_epi8(k == K_Q4_0 ? 8 : 16);
            zy = _mm256_sub_epi16(
                zy, _mm256_add_epi16(_mm256_maddubs_epi16(z, ylo), _mm256_maddubs_epi16(z, yhi)));
        }
        const __m256i s = block_sums(k, lo, hi, ylo, yhi, zy);
        acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(wd, spread(xd, j)), acc[j]);
        if (has_min(k)) {
            acc[j] = _mm256_fmadd_ps(wm, spread(xs, j), acc[j]);
        }
    }
}

/* A tile of four weight rows (rows past n_rows repeat the last one; their results are
 * dropped) and nx activations.
 *
 * The hardware prefetchers do not follow four interleaved row streams well (a decode tile
 * read from memory ran at a third of its in-cache speed), so the tile prefetches the tile
 * of rows PREFETCH_BYTES or more ahead, sequentially, as far as it gets through its own: a
 * matrix product walks its rows in order. Prefetches of addresses past the matrix are
 * harmless hints. */
INLINE void tile(legacy_kind k, int nx, int64_t n, const uint8_t *rows, size_t row_stride,
                 int n_rows, const uint8_t *x, size_t x_stride, float *out, size_t out_stride)
{
    const size_t wb = w_size(k), xb = x_size(k);
    const int64_t nb = n / DUET_QK;
    const uint8_t *r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = rows + (size_t)(i < n_rows ? i : n_rows - 1) * row_stride;
    }
    const size_t tile_bytes = 4 * row_stride;
    const uint8_t *ahead = r[0] + tile_bytes * ((PREFETCH_BYTES + tile_bytes - 1) / tile_bytes);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    const uint8_t *w0[4], *w1[4], *y0[4], *y1[4];
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        for (int i = 0; i < 4; i++) {
            w0[i] = r[i] + (size_t)b * wb;
            w1[i] = w0[i] + wb;
        }
        for (int j = 0; j < nx; j++) {
            y0[j] = x + (size_t)j * x_stride + (size_t)b * xb;
            y1[j] = y0[j] + xb;
        }
        for (size_t l = 0; l < 8 * wb; l += 64) {
            _mm_prefetch((const char *)ahead + (size_t)b * 4 * wb + l, _MM_HINT_T0);
        }
        step(k, nx, w0, w1, y0, y1, acc);
    }
    if (b < nb) {
        for (int i = 0; i < 4; i++) {
            w0[i] = r[i] + (size_t)b * wb;
            w1[i] = zero_block;
        }
        for (int j = 0; j < nx; j++) {
            y0[j] = x + (size_t)j * x_stride + (size_t)b * xb;
            y1[j] = zero_block;
        }
        step(k, nx, w0, w1, y0, y1, acc);
    }
    for (int j = 0; j < nx; j++) {
        const __m128 s =
            _mm_add_ps(_mm256_castps256_ps128(acc[j]), _mm256_extractf128_ps(acc[j], 1));
        float *o = out + (size_t)j * out_stride;
        if (n_rows == 4) {
            _mm_storeu_ps(o, s);
        } else {
            float v[4];
            _mm_storeu_ps(v, s);
            for (int i = 0; i < n_rows; i++) {
                o[i] = v[i];
            }
        }
    }
}

/* One function per type; the activation count picks a specialised body. */
#define TILE_FN(name, kind)                                                                        \
    void name(int64_t n, const void *rows, size_t row_stride, int n_rows, const void *x,           \
              size_t x_stride, int n_x, float *out, size_t out_stride)                             \
    {                                                                                              \
        switch (n_x) {                                                                             \
        case 1:                                                                                    \
            tile(kind, 1, n, rows, row_stride, n_rows, x, x_stride, out, out_stride);              \
            break;                                                                                 \
        case 2:                                                                                    \
            tile(kind, 2, n, rows, row_stride, n_rows, x, x_stride, out, out_stride);              \
            break;                                                                                 \
        case 3:                                                                                    \
            tile(kind, 3, n, rows, row_stride, n_rows, x, x_stride, out, out_stride);              \
            break;                                                                                 \
        default:                                                                                   \
            tile(kind, 4, n, rows, row_stride, n_rows, x, x_stride, out, out_stride);              \
            break;                                                                                 \
        }                                                                                          \
    }

TILE_FN(duet_tile_q4_0_q8_0_avx2, K_Q4_0)
TILE_FN(duet_tile_q5_0_q8_0_avx2, K_Q5_0)
TILE_FN(duet_tile_q8_0_q8_0_avx2, K_Q8_0)
TILE_FN(duet_tile_q4_1_q8_1_avx2, K_Q4_1)
TILE_FN(duet_tile_q5_1_q8_1_avx2, K_Q5_1)
