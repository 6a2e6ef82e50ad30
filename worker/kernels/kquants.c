/* K-quants, portable scalar code: reference quantizers, dequantizers and Qx_K · Q8_K dots.
 *
 * Each type's bit layout is decoded in one place (the *_quants helpers turn a block into 256
 * plain integers and its group scales), and both the dequantizer and the dot product use it.
 * Float expressions in the dequantizers follow llama.cpp's order ((d*sc)*q - dmin*m), so
 * the floats they produce are the same as llama.cpp's. */
#include "kquants.h"

#include <math.h>
#include <string.h>

#include "kernels.h"

#define QK DUET_QK_K

/* Round half to even, as llama.cpp's nearest_int (for |x| < 2^22, all that occurs here). */
static int nearest_int(float x)
{
    return (int)lrintf(x);
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* ------------------------------------------------------------------ scale search */

/* Fits value ≈ s*L + b to one group of n values, L in 0..nmax, b <= 0 (the format stores
 * -b as a non-negative "min"). Tries a few grid steps around the natural one, refits s and b
 * by weighted least squares for each and keeps the smallest weighted error. */
static void fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *scale,
                          float *min)
{
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    if (lo > 0) {
        lo = 0;
    }
    if (hi <= lo) { /* all values equal and <= 0: the min alone represents them */
        memset(L, 0, (size_t)n);
        *scale = 0;
        *min = -lo;
        return;
    }
    float best_err = INFINITY, best_s = (hi - lo) / nmax, best_b = lo;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest_int((x[i] - lo) / best_s), 0, nmax);
    }
    uint8_t cand[32];
    for (int t = -10; t <= 10; t++) {
        float iscale = (nmax + 0.1f * t) / (hi - lo);
        float sw = 0, sl = 0, sll = 0, sx = 0, slx = 0;
        int lmin = nmax, lmax = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * (x[i] - lo)), 0, nmax);
            cand[i] = (uint8_t)l;
            lmin = l < lmin ? l : lmin;
            lmax = l > lmax ? l : lmax;
            sw += w[i];
            sl += w[i] * l;
            sll += w[i] * l * l;
            sx += w[i] * x[i];
            slx += w[i] * l * x[i];
        }
        if (lmin == lmax) {
            continue; /* every L equal: the least-squares system is singular */
        }
        float det = sw * sll - sl * sl;
        if (!(det > 0)) {
            continue;
        }
        float s = (sw * slx - sl * sx) / det;
        float b = (sll * sx - sl * slx) / det;
        if (b > 0) {
            b = 0;
            s = slx / sll;
        }
        if (s < 0) {
            continue;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float e = s * cand[i] + b - x[i];
            err += w[i] * e * e;
        }
        if (err < best_err) {
            best_err = err;
            best_s = s;
            best_b = b;
            memcpy(L, cand, (size_t)n);
        }
    }
    *scale = best_s;
    *min = -best_b;
}

/* Fits value ≈ s*L to one group, L in -nmax..nmax-1. The value of largest magnitude goes to
 * -nmax (the extra negative level), as in llama.cpp; the grid step is refined by weighted
 * least squares with weights x^2, which favours the large values. */
static void fit_scale_sym(int n, int nmax, const float *x, float *scale)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    *scale = 0;
    if (amax < 1e-30f) {
        return;
    }
    float best = -1;
    for (int t = -9; t <= 9; t++) {
        float iscale = -(nmax + 0.1f * t) / max;
        float slx = 0, sll = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            slx += w * l * x[i];
            sll += w * l * l;
        }
        if (sll > 0 && slx * slx > best * sll) {
            best = slx * slx / sll;
            *scale = slx / sll;
        }
    }
}

/* The value of largest magnitude among n (its sign kept); the first one on ties. */
static float signed_absmax(const float *v, int n)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(v[i]) > amax) {
            amax = fabsf(v[i]);
            max = v[i];
        }
    }
    return max;
}

static float max_of(const float *v, int n)
{
    float m = 0;
    for (int i = 0; i < n; i++) {
        m = v[i] > m ? v[i] : m;
    }
    return m;
}

/* Weights for the asymmetric fits: every value counts, larger ones more. */
static void group_weights(const float *x, float *w)
{
    float sumsq = 0;
    for (int i = 0; i < QK; i++) {
        sumsq += x[i] * x[i];
    }
    float av = sqrtf(sumsq / QK);
    for (int i = 0; i < QK; i++) {
        w[i] = av + fabsf(x[i]);
    }
}

/* Requantizes a group with its final (stored) scale and min. */
static void requant_min(const float *x, int n, float dl, float ml, int nmax, uint8_t *L)
{
    for (int i = 0; i < n; i++) {
        L[i] = dl == 0 ? 0 : (uint8_t)clampi(nearest_int((x[i] + ml) / dl), 0, nmax);
    }
}

static void requant_sym(const float *x, int n, float dl, int nmax, uint8_t *L)
{
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)(nmax + (dl == 0 ? 0 : clampi(nearest_int(x[i] / dl), -nmax, nmax - 1)));
    }
}

/* ------------------------------------------------------------------ 6-bit scale packing */

/* Q4_K/Q5_K: 8 scales and 8 mins of 6 bits in 12 bytes. Bytes 0-3 hold scales 0-3, bytes
 * 4-7 mins 0-3, in their low 6 bits; bytes 8-11 hold the low nibbles of scales 4-7 (low)
 * and mins 4-7 (high); the top 2 bits of groups 4-7 sit in bits 6-7 of bytes 0-7. */
static void k4_pack_scales(uint8_t *p, const uint8_t *sc, const uint8_t *m)
{
    for (int j = 0; j < 4; j++) {
        p[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        p[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
        p[j + 8] = (uint8_t)((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
    }
}

static void k4_unpack_scales(const uint8_t *p, uint8_t *sc, uint8_t *m)
{
    for (int j = 0; j < 4; j++) {
        sc[j] = p[j] & 63;
        m[j] = p[j + 4] & 63;
        sc[j + 4] = (uint8_t)((p[j + 8] & 15) | (p[j] >> 6) << 4);
        m[j + 4] = (uint8_t)((p[j + 8] >> 4) | (p[j + 4] >> 6) << 4);
    }
}

/* Q3_K: 16 scales of 6 bits (stored +32) in 12 bytes. Low nibbles: groups 0-7 in the low
 * halves of bytes 0-7, groups 8-15 in their high halves; the top 2 bits of group g sit in
 * byte 8 + g%4 at bit 2*(g/4). */
static void q3_pack_scales(uint8_t *p, const uint8_t *u)
{
    memset(p, 0, DUET_K_SCALE_SIZE);
    for (int g = 0; g < 16; g++) {
        p[g % 8] |= (uint8_t)((u[g] & 15) << (g < 8 ? 0 : 4));
        p[8 + g % 4] |= (uint8_t)((u[g] >> 4) << (2 * (g / 4)));
    }
}

static void q3_unpack_scales(const uint8_t *p, int *sc)
{
    for (int g = 0; g < 16; g++) {
        int lo = g < 8 ? p[g] & 15 : p[g - 8] >> 4;
        int hi = (p[8 + g % 4] >> (2 * (g / 4))) & 3;
        sc[g] = (lo | hi << 4) - 32;
    }
}

/* ------------------------------------------------------------------ quant bit layouts */

/* 2-bit fields: each 128 values use 32 bytes; value 128h + 32j + l is bits 2j..2j+1 of
 * byte 32h + l. Q2_K and the low bits of Q3_K share this. */
static void pack_2bit(uint8_t *qs, const uint8_t *L)
{
    for (int h = 0; h < 2; h++) {
        for (int l = 0; l < 32; l++) {
            const uint8_t *v = L + 128 * h + l;
            qs[32 * h + l] =
                (uint8_t)((v[0] & 3) | (v[32] & 3) << 2 | (v[64] & 3) << 4 | (v[96] & 3) << 6);
        }
    }
}

static int get_2bit(const uint8_t *qs, int v)
{
    return (qs[32 * (v / 128) + v % 32] >> (2 * ((v % 128) / 32))) & 3;
}

/* One high bit per value: value v is bit v/32 of byte v%32 (Q3_K hmask, Q5_K qh). */
static void pack_1bit(uint8_t *hb, const uint8_t *L, int shift)
{
    memset(hb, 0, QK / 8);
    for (int v = 0; v < QK; v++) {
        hb[v % 32] |= (uint8_t)(((L[v] >> shift) & 1) << (v / 32));
    }
}

static int get_1bit(const uint8_t *hb, int v)
{
    return (hb[v % 32] >> (v / 32)) & 1;
}

/* Nibbles: each 64 values use 32 bytes; value 64c + l is the low nibble of byte 32c + l and
 * value 64c + 32 + l its high nibble (Q4_K, low bits of Q5_K). */
static void pack_4bit(uint8_t *qs, const uint8_t *L)
{
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            qs[32 * c + l] = (uint8_t)((L[64 * c + l] & 15) | (L[64 * c + 32 + l] & 15) << 4);
        }
    }
}

static int get_4bit(const uint8_t *qs, int v)
{
    uint8_t b = qs[32 * (v / 64) + v % 32];
    return (v % 64) < 32 ? b & 15 : b >> 4;
}

/* Q6_K: each 128 values use 64 bytes of ql and 32 of qh. Value 128h + 32k + l takes its low
 * nibble from ql[64h + 32(k&1) + l] (low half for k < 2, high half otherwise) and its top two
 * bits from bits 2k..2k+1 of qh[32h + l]. */
static int get_6bit(const uint8_t *ql, const uint8_t *qh, int v)
{
    int h = v / 128, k = (v % 128) / 32, l = v % 32;
    uint8_t lo = ql[64 * h + 32 * (k & 1) + l];
    int lo4 = k < 2 ? lo & 15 : lo >> 4;
    return lo4 | ((qh[32 * h + l] >> (2 * k)) & 3) << 4;
}

static void pack_6bit(uint8_t *ql, uint8_t *qh, const uint8_t *L)
{
    memset(ql, 0, QK / 2);
    memset(qh, 0, QK / 4);
    for (int v = 0; v < QK; v++) {
        int h = v / 128, k = (v % 128) / 32, l = v % 32;
        ql[64 * h + 32 * (k & 1) + l] |= (uint8_t)((L[v] & 15) << (k < 2 ? 0 : 4));
        qh[32 * h + l] |= (uint8_t)((L[v] >> 4) << (2 * k));
    }
}

/* Decoded blocks: the 256 integer quants (offsets removed, so value = scale * q [- min]) and
 * the per-group integer scales and mins. */
typedef struct {
    int8_t q[QK];
    int sc[16];
    int m[16];
} kdecoded;

static void decode_q2(const block_q2_K *b, kdecoded *o)
{
    for (int v = 0; v < QK; v++) {
        o->q[v] = (int8_t)get_2bit(b->qs, v);
    }
    for (int g = 0; g < 16; g++) {
        o->sc[g] = b->scales[g] & 15;
        o->m[g] = b->scales[g] >> 4;
    }
}

static void decode_q3(const block_q3_K *b, kdecoded *o)
{
    for (int v = 0; v < QK; v++) {
        o->q[v] = (int8_t)(get_2bit(b->qs, v) - (get_1bit(b->hmask, v) ? 0 : 4));
    }
    q3_unpack_scales(b->scales, o->sc);
}

static void decode_k4_scales(const uint8_t *p, kdecoded *o)
{
    uint8_t sc[8], m[8];
    k4_unpack_scales(p, sc, m);
    for (int j = 0; j < 8; j++) {
        o->sc[j] = sc[j];
        o->m[j] = m[j];
    }
}

static void decode_q4(const block_q4_K *b, kdecoded *o)
{
    for (int v = 0; v < QK; v++) {
        o->q[v] = (int8_t)get_4bit(b->qs, v);
    }
    decode_k4_scales(b->scales, o);
}

static void decode_q5(const block_q5_K *b, kdecoded *o)
{
    for (int v = 0; v < QK; v++) {
        o->q[v] = (int8_t)(get_4bit(b->qs, v) | get_1bit(b->qh, v) << 4);
    }
    decode_k4_scales(b->scales, o);
}

static void decode_q6(const block_q6_K *b, kdecoded *o)
{
    for (int v = 0; v < QK; v++) {
        o->q[v] = (int8_t)(get_6bit(b->ql, b->qh, v) - 32);
    }
    for (int g = 0; g < 16; g++) {
        o->sc[g] = b->scales[g];
    }
}

/* ------------------------------------------------------------------ quantizers */

void duet_quantize_row_q2_k(const float *src, void *dst, int64_t n)
{
    block_q2_K *y = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        const float *x = src + i * QK;
        float w[QK], s[16], m[16];
        uint8_t L[QK];
        group_weights(x, w);
        for (int g = 0; g < 16; g++) {
            fit_scale_min(16, 3, x + 16 * g, w + 16 * g, L + 16 * g, &s[g], &m[g]);
        }
        float max_s = max_of(s, 16), max_m = max_of(m, 16);
        float inv_s = max_s > 0 ? 15 / max_s : 0, inv_m = max_m > 0 ? 15 / max_m : 0;
        y[i].d = duet_f32_to_f16(max_s / 15);
        y[i].dmin = duet_f32_to_f16(max_m / 15);
        float d = duet_f16_to_f32(y[i].d), dmin = duet_f16_to_f32(y[i].dmin);
        for (int g = 0; g < 16; g++) {
            int sc = clampi(nearest_int(inv_s * s[g]), 0, 15);
            int mc = clampi(nearest_int(inv_m * m[g]), 0, 15);
            y[i].scales[g] = (uint8_t)(sc | mc << 4);
            requant_min(x + 16 * g, 16, d * sc, dmin * mc, 3, L + 16 * g);
        }
        pack_2bit(y[i].qs, L);
    }
}

void duet_quantize_row_q3_k(const float *src, void *dst, int64_t n)
{
    block_q3_K *y = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        const float *x = src + i * QK;
        float s[16];
        for (int g = 0; g < 16; g++) {
            fit_scale_sym(16, 4, x + 16 * g, &s[g]);
        }
        float max_s = signed_absmax(s, 16);
        memset(&y[i], 0, sizeof y[i]);
        if (max_s == 0) {
            continue; /* all zero: d = 0 */
        }
        /* the largest group scale maps to -32, the extra negative level */
        float iscale = -32 / max_s;
        uint8_t u[16], L[QK];
        for (int g = 0; g < 16; g++) {
            u[g] = (uint8_t)(clampi(nearest_int(iscale * s[g]), -32, 31) + 32);
        }
        q3_pack_scales(y[i].scales, u);
        y[i].d = duet_f32_to_f16(1 / iscale);
        float d = duet_f16_to_f32(y[i].d);
        for (int g = 0; g < 16; g++) {
            requant_sym(x + 16 * g, 16, d * (u[g] - 32), 4, L + 16 * g);
        }
        pack_2bit(y[i].qs, L);
        pack_1bit(y[i].hmask, L, 2);
    }
}

/* Q4_K and Q5_K share everything but the number of levels and the bit layout. */
static void quantize_k4_scales(const float *x, int nmax, uint16_t *dp, uint16_t *dminp,
                               uint8_t *scales, uint8_t *L)
{
    float w[QK], s[8], m[8];
    group_weights(x, w);
    for (int j = 0; j < 8; j++) {
        fit_scale_min(32, nmax, x + 32 * j, w + 32 * j, L + 32 * j, &s[j], &m[j]);
    }
    float max_s = max_of(s, 8), max_m = max_of(m, 8);
    float inv_s = max_s > 0 ? 63 / max_s : 0, inv_m = max_m > 0 ? 63 / max_m : 0;
    uint8_t sc[8], mc[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)clampi(nearest_int(inv_s * s[j]), 0, 63);
        mc[j] = (uint8_t)clampi(nearest_int(inv_m * m[j]), 0, 63);
    }
    k4_pack_scales(scales, sc, mc);
    *dp = duet_f32_to_f16(max_s / 63);
    *dminp = duet_f32_to_f16(max_m / 63);
    float d = duet_f16_to_f32(*dp), dmin = duet_f16_to_f32(*dminp);
    for (int j = 0; j < 8; j++) {
        requant_min(x + 32 * j, 32, d * sc[j], dmin * mc[j], nmax, L + 32 * j);
    }
}

void duet_quantize_row_q4_k(const float *src, void *dst, int64_t n)
{
    block_q4_K *y = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        uint8_t L[QK];
        quantize_k4_scales(src + i * QK, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        pack_4bit(y[i].qs, L);
    }
}

void duet_quantize_row_q5_k(const float *src, void *dst, int64_t n)
{
    block_q5_K *y = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        uint8_t L[QK];
        quantize_k4_scales(src + i * QK, 31, &y[i].d, &y[i].dmin, y[i].scales, L);
        pack_4bit(y[i].qs, L);
        pack_1bit(y[i].qh, L, 4);
    }
}

void duet_quantize_row_q6_k(const float *src, void *dst, int64_t n)
{
    block_q6_K *y = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        const float *x = src + i * QK;
        float s[16];
        for (int g = 0; g < 16; g++) {
            fit_scale_sym(16, 32, x + 16 * g, &s[g]);
        }
        float max_s = signed_absmax(s, 16);
        memset(&y[i], 0, sizeof y[i]);
        if (max_s == 0) {
            continue;
        }
        float iscale = -128 / max_s;
        uint8_t L[QK];
        y[i].d = duet_f32_to_f16(1 / iscale);
        float d = duet_f16_to_f32(y[i].d);
        for (int g = 0; g < 16; g++) {
            int sc = clampi(nearest_int(iscale * s[g]), -128, 127);
            y[i].scales[g] = (int8_t)sc;
            requant_sym(x + 16 * g, 16, d * sc, 32, L + 16 * g);
        }
        pack_6bit(y[i].ql, y[i].qh, L);
    }
}

void duet_quantize_row_q8_k(const float *src, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        const float *x = src + i * QK;
        float max = signed_absmax(x, QK);
        memset(&y[i], 0, sizeof y[i]);
        if (max == 0) {
            continue;
        }
        /* -127/max as llama.cpp: the largest value becomes -127, and the one value that could
         * round to +128 is clamped to 127 */
        float iscale = -127.f / max;
        for (int j = 0; j < QK; j++) {
            int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) {
                sum += y[i].qs[16 * g + j];
            }
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

/* ------------------------------------------------------------------ dequantizers */

void duet_dequantize_row_q2_k(const void *src, float *dst, int64_t n)
{
    const block_q2_K *b = src;
    kdecoded k;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        decode_q2(&b[i], &k);
        float d = duet_f16_to_f32(b[i].d), dmin = duet_f16_to_f32(b[i].dmin);
        for (int v = 0; v < QK; v++) {
            float dl = d * k.sc[v / 16], ml = dmin * k.m[v / 16];
            dst[v] = dl * k.q[v] - ml;
        }
    }
}

void duet_dequantize_row_q3_k(const void *src, float *dst, int64_t n)
{
    const block_q3_K *b = src;
    kdecoded k;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        decode_q3(&b[i], &k);
        float d = duet_f16_to_f32(b[i].d);
        for (int v = 0; v < QK; v++) {
            dst[v] = d * k.sc[v / 16] * k.q[v];
        }
    }
}

static void dequant_k4(const kdecoded *k, float d, float dmin, float *dst)
{
    for (int v = 0; v < QK; v++) {
        float dl = d * k->sc[v / 32], ml = dmin * k->m[v / 32];
        dst[v] = dl * k->q[v] - ml;
    }
}

void duet_dequantize_row_q4_k(const void *src, float *dst, int64_t n)
{
    const block_q4_K *b = src;
    kdecoded k;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        decode_q4(&b[i], &k);
        dequant_k4(&k, duet_f16_to_f32(b[i].d), duet_f16_to_f32(b[i].dmin), dst);
    }
}

void duet_dequantize_row_q5_k(const void *src, float *dst, int64_t n)
{
    const block_q5_K *b = src;
    kdecoded k;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        decode_q5(&b[i], &k);
        dequant_k4(&k, duet_f16_to_f32(b[i].d), duet_f16_to_f32(b[i].dmin), dst);
    }
}

void duet_dequantize_row_q6_k(const void *src, float *dst, int64_t n)
{
    const block_q6_K *b = src;
    kdecoded k;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        decode_q6(&b[i], &k);
        float d = duet_f16_to_f32(b[i].d);
        for (int v = 0; v < QK; v++) {
            dst[v] = d * k.sc[v / 16] * k.q[v];
        }
    }
}

void duet_dequantize_row_q8_k(const void *src, float *dst, int64_t n)
{
    const block_q8_K *b = src;
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        for (int v = 0; v < QK; v++) {
            dst[v] = b[i].d * b[i].qs[v];
        }
    }
}

/* ------------------------------------------------------------------ dot products */

/* sum over groups of scale[g] * (q · q8 over the group), exact in int32: |q*q8| <= 63*127,
 * 256 of them times |scale| <= 128 stays below 2^31. */
static int32_t scaled_dot(const kdecoded *k, const int8_t *q8, int group)
{
    int32_t sumi = 0;
    for (int g = 0; g < QK / group; g++) {
        int32_t s = 0;
        for (int l = 0; l < group; l++) {
            s += k->q[g * group + l] * q8[g * group + l];
        }
        sumi += k->sc[g] * s;
    }
    return sumi;
}

/* sum over groups of min[g] * (sum of q8 over the group), from the Q8_K group sums. */
static int32_t min_dot(const kdecoded *k, const int16_t *bsums, int group)
{
    int32_t summ = 0;
    for (int g = 0; g < QK / group; g++) {
        int32_t s = 0;
        for (int j = 0; j < group / 16; j++) {
            s += bsums[g * (group / 16) + j];
        }
        summ += k->m[g] * s;
    }
    return summ;
}

float duet_vec_dot_q2_k_q8_k_scalar(int64_t n, const void *row, const void *x)
{
    const block_q2_K *b = row;
    const block_q8_K *y = x;
    kdecoded k;
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        decode_q2(&b[i], &k);
        float d = y[i].d * duet_f16_to_f32(b[i].d);
        float dmin = y[i].d * duet_f16_to_f32(b[i].dmin);
        sum += d * (float)scaled_dot(&k, y[i].qs, 16) - dmin * (float)min_dot(&k, y[i].bsums, 16);
    }
    return sum;
}

float duet_vec_dot_q3_k_q8_k_scalar(int64_t n, const void *row, const void *x)
{
    const block_q3_K *b = row;
    const block_q8_K *y = x;
    kdecoded k;
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        decode_q3(&b[i], &k);
        sum += y[i].d * duet_f16_to_f32(b[i].d) * (float)scaled_dot(&k, y[i].qs, 16);
    }
    return sum;
}

float duet_vec_dot_q4_k_q8_k_scalar(int64_t n, const void *row, const void *x)
{
    const block_q4_K *b = row;
    const block_q8_K *y = x;
    kdecoded k;
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        decode_q4(&b[i], &k);
        float d = y[i].d * duet_f16_to_f32(b[i].d);
        float dmin = y[i].d * duet_f16_to_f32(b[i].dmin);
        sum += d * (float)scaled_dot(&k, y[i].qs, 32) - dmin * (float)min_dot(&k, y[i].bsums, 32);
    }
    return sum;
}

float duet_vec_dot_q5_k_q8_k_scalar(int64_t n, const void *row, const void *x)
{
    const block_q5_K *b = row;
    const block_q8_K *y = x;
    kdecoded k;
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        decode_q5(&b[i], &k);
        float d = y[i].d * duet_f16_to_f32(b[i].d);
        float dmin = y[i].d * duet_f16_to_f32(b[i].dmin);
        sum += d * (float)scaled_dot(&k, y[i].qs, 32) - dmin * (float)min_dot(&k, y[i].bsums, 32);
    }
    return sum;
}

float duet_vec_dot_q6_k_q8_k_scalar(int64_t n, const void *row, const void *x)
{
    const block_q6_K *b = row;
    const block_q8_K *y = x;
    kdecoded k;
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        decode_q6(&b[i], &k);
        sum += y[i].d * duet_f16_to_f32(b[i].d) * (float)scaled_dot(&k, y[i].qs, 16);
    }
    return sum;
}
