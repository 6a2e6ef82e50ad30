/* Portable kernels of the float types and the 32-value block types (layouts in
 * legacy_quants.h). The quantizers follow llama.cpp's reference rounding so synthetic models
 * and activations carry the same bytes it would write. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "legacy_quants.h"

static float load_f16(const uint8_t *p)
{
    return duet_f16_to_f32(duet_le16(p));
}

static void store_f16(uint8_t *p, float v)
{
    duet_put_le16(p, duet_f32_to_f16(v));
}

/* ---------------------------------------------------------------- float types */

void duet_quantize_row_f32(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void duet_dequantize_row_f32(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void duet_quantize_row_f16(const float *src, void *dst, int64_t n)
{
    uint8_t *out = dst;
    for (int64_t i = 0; i < n; i++) {
        duet_put_le16(out + 2 * i, duet_f32_to_f16(src[i]));
    }
}

void duet_dequantize_row_f16(const void *src, float *dst, int64_t n)
{
    const uint8_t *in = src;
    for (int64_t i = 0; i < n; i++) {
        dst[i] = load_f16(in + 2 * i);
    }
}

void duet_quantize_row_bf16(const float *src, void *dst, int64_t n)
{
    uint8_t *out = dst;
    for (int64_t i = 0; i < n; i++) {
        duet_put_le16(out + 2 * i, duet_f32_to_bf16(src[i]));
    }
}

void duet_dequantize_row_bf16(const void *src, float *dst, int64_t n)
{
    const uint8_t *in = src;
    for (int64_t i = 0; i < n; i++) {
        dst[i] = duet_bf16_to_f32(duet_le16(in + 2 * i));
    }
}

/* ---------------------------------------------------------------- quantizers */

/* The value of largest magnitude, with its sign (the first one on ties). */
static float signed_absmax(const float *x, int n, float *amax_out)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    *amax_out = amax;
    return max;
}

static void min_max(const float *x, int n, float *min_out, float *max_out)
{
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < min) {
            min = x[j];
        }
        if (x[j] > max) {
            max = x[j];
        }
    }
    *min_out = min;
    *max_out = max;
}

/* (int)(v) truncates like the reference's int8 cast; v is never negative here. */
static int clamp_trunc(float v, int hi)
{
    int q = (int)v;
    return q > hi ? hi : q;
}

void duet_quantize_row_q4_0(const float *src, void *dst, int64_t n)
{
    duet_block_q4_0 *y = dst;
    for (int64_t b = 0; b < n / DUET_QK; b++, src += DUET_QK) {
        float amax;
        /* d is negative when the extreme value is positive, so that value lands on -8 and
         * the full range -8..7 is used */
        const float d = signed_absmax(src, DUET_QK, &amax) / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(y[b].d, d);
        for (int j = 0; j < 16; j++) {
            int lo = clamp_trunc(src[j] * id + 8.5f, 15);
            int hi = clamp_trunc(src[j + 16] * id + 8.5f, 15);
            y[b].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

void duet_quantize_row_q4_1(const float *src, void *dst, int64_t n)
{
    duet_block_q4_1 *y = dst;
    for (int64_t b = 0; b < n / DUET_QK; b++, src += DUET_QK) {
        float min, max;
        min_max(src, DUET_QK, &min, &max);
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(y[b].d, d);
        store_f16(y[b].m, min);
        for (int j = 0; j < 16; j++) {
            int lo = clamp_trunc((src[j] - min) * id + 0.5f, 15);
            int hi = clamp_trunc((src[j + 16] - min) * id + 0.5f, 15);
            y[b].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

/* Low nibbles into qs, fifth bits into the little-endian 32-bit qh. */
static void pack5(const int q[DUET_QK], uint8_t qs[16], uint8_t qh[4])
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0f) | ((q[j + 16] & 0x0f) << 4));
        h |= (uint32_t)((q[j] >> 4) & 1) << j;
        h |= (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
    }
    for (int k = 0; k < 4; k++) {
        qh[k] = (uint8_t)(h >> (8 * k));
    }
}

void duet_quantize_row_q5_0(const float *src, void *dst, int64_t n)
{
    duet_block_q5_0 *y = dst;
    for (int64_t b = 0; b < n / DUET_QK; b++, src += DUET_QK) {
        float amax;
        const float d = signed_absmax(src, DUET_QK, &amax) / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(y[b].d, d);
        int q[DUET_QK];
        for (int j = 0; j < DUET_QK; j++) {
            q[j] = clamp_trunc(src[j] * id + 16.5f, 31);
        }
        pack5(q, y[b].qs, y[b].qh);
    }
}

void duet_quantize_row_q5_1(const float *src, void *dst, int64_t n)
{
    duet_block_q5_1 *y = dst;
    for (int64_t b = 0; b < n / DUET_QK; b++, src += DUET_QK) {
        float min, max;
        min_max(src, DUET_QK, &min, &max);
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(y[b].d, d);
        store_f16(y[b].m, min);
        int q[DUET_QK];
        for (int j = 0; j < DUET_QK; j++) {
            q[j] = clamp_trunc((src[j] - min) * id + 0.5f, 31);
        }
        pack5(q, y[b].qs, y[b].qh);
    }
}

/* Q8_0 and Q8_1 share the quants; returns the unrounded scale and the sum of the quants. */
static float quantize_q8(const float *x, uint8_t d_out[2], int8_t qs[DUET_QK], int *sum_out)
{
    float amax = 0.0f;
    for (int j = 0; j < DUET_QK; j++) {
        amax = fmaxf(amax, fabsf(x[j]));
    }
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(d_out, d);
    int sum = 0;
    for (int j = 0; j < DUET_QK; j++) {
        qs[j] = (int8_t)roundf(x[j] * id);
        sum += qs[j];
    }
    *sum_out = sum;
    return d;
}

void duet_quantize_row_q8_0(const float *src, void *dst, int64_t n)
{
    duet_block_q8_0 *y = dst;
    for (int64_t b = 0; b < n / DUET_QK; b++, src += DUET_QK) {
        int sum;
        quantize_q8(src, y[b].d, y[b].qs, &sum);
    }
}

void duet_quantize_row_q8_1(const float *src, void *dst, int64_t n)
{
    duet_block_q8_1 *y = dst;
    for (int64_t b = 0; b < n / DUET_QK; b++, src += DUET_QK) {
        int sum;
        const float d = quantize_q8(src, y[b].d, y[b].qs, &sum);
        store_f16(y[b].s, (float)sum * d);
    }
}

/* ---------------------------------------------------------------- dequantizers */

void duet_dequantize_row_q4_0(const void *src, float *dst, int64_t n)
{
    const duet_block_q4_0 *x = src;
    for (int64_t b = 0; b < n / DUET_QK; b++, dst += DUET_QK) {
        const float d = load_f16(x[b].d);
        for (int j = 0; j < 16; j++) {
            dst[j] = (float)((x[b].qs[j] & 0x0f) - 8) * d;
            dst[j + 16] = (float)((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

void duet_dequantize_row_q4_1(const void *src, float *dst, int64_t n)
{
    const duet_block_q4_1 *x = src;
    for (int64_t b = 0; b < n / DUET_QK; b++, dst += DUET_QK) {
        const float d = load_f16(x[b].d);
        const float m = load_f16(x[b].m);
        for (int j = 0; j < 16; j++) {
            dst[j] = (float)(x[b].qs[j] & 0x0f) * d + m;
            dst[j + 16] = (float)(x[b].qs[j] >> 4) * d + m;
        }
    }
}

/* The 5-bit quants of a Q5 block, 0..31. */
static void unpack5(const uint8_t qs[16], const uint8_t qh[4], int q[DUET_QK])
{
    const uint32_t h = duet_le32(qh);
    for (int j = 0; j < 16; j++) {
        q[j] = (qs[j] & 0x0f) | (int)(((h >> j) & 1) << 4);
        q[j + 16] = (qs[j] >> 4) | (int)(((h >> (j + 16)) & 1) << 4);
    }
}

void duet_dequantize_row_q5_0(const void *src, float *dst, int64_t n)
{
    const duet_block_q5_0 *x = src;
    for (int64_t b = 0; b < n / DUET_QK; b++, dst += DUET_QK) {
        const float d = load_f16(x[b].d);
        int q[DUET_QK];
        unpack5(x[b].qs, x[b].qh, q);
        for (int j = 0; j < DUET_QK; j++) {
            dst[j] = (float)(q[j] - 16) * d;
        }
    }
}

void duet_dequantize_row_q5_1(const void *src, float *dst, int64_t n)
{
    const duet_block_q5_1 *x = src;
    for (int64_t b = 0; b < n / DUET_QK; b++, dst += DUET_QK) {
        const float d = load_f16(x[b].d);
        const float m = load_f16(x[b].m);
        int q[DUET_QK];
        unpack5(x[b].qs, x[b].qh, q);
        for (int j = 0; j < DUET_QK; j++) {
            dst[j] = (float)q[j] * d + m;
        }
    }
}

void duet_dequantize_row_q8_0(const void *src, float *dst, int64_t n)
{
    const duet_block_q8_0 *x = src;
    for (int64_t b = 0; b < n / DUET_QK; b++, dst += DUET_QK) {
        const float d = load_f16(x[b].d);
        for (int j = 0; j < DUET_QK; j++) {
            dst[j] = (float)x[b].qs[j] * d;
        }
    }
}

void duet_dequantize_row_q8_1(const void *src, float *dst, int64_t n)
{
    const duet_block_q8_1 *x = src;
    for (int64_t b = 0; b < n / DUET_QK; b++, dst += DUET_QK) {
        const float d = load_f16(x[b].d);
        for (int j = 0; j < DUET_QK; j++) {
            dst[j] = (float)x[b].qs[j] * d;
        }
    }
}

/* ---------------------------------------------------------------- dot products */

/* Float dots keep 8 partial sums (the vector kernels' lane count), which shortens the
 * rounding chains and lets the compiler vectorize the portable code. */
#define LANES 8

static float sum_lanes(const float acc[LANES])
{
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

float duet_vec_dot_f32_f32_scalar(int64_t n, const void *row, const void *x)
{
    const float *a = row, *b = x;
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        for (int k = 0; k < LANES; k++) {
            acc[k] += a[i + k] * b[i + k];
        }
    }
    for (; i < n; i++) {
        acc[0] += a[i] * b[i];
    }
    return sum_lanes(acc);
}

float duet_vec_dot_f16_f16_scalar(int64_t n, const void *row, const void *x)
{
    const uint8_t *a = row, *b = x;
    float acc[LANES] = {0};
    for (int64_t i = 0; i < n; i++) {
        acc[i % LANES] += load_f16(a + 2 * i) * load_f16(b + 2 * i);
    }
    return sum_lanes(acc);
}

float duet_vec_dot_bf16_bf16_scalar(int64_t n, const void *row, const void *x)
{
    const uint8_t *a = row, *b = x;
    float acc[LANES] = {0};
    for (int64_t i = 0; i < n; i++) {
        acc[i % LANES] +=
            duet_bf16_to_f32(duet_le16(a + 2 * i)) * duet_bf16_to_f32(duet_le16(b + 2 * i));
    }
    return sum_lanes(acc);
}

/* The product of the two fp16 scales is exact in a float (11 + 11 significant bits), so
 * sumi * (dx * dy) rounds once. */
float duet_vec_dot_q4_0_q8_0_scalar(int64_t n, const void *row, const void *x)
{
    const duet_block_q4_0 *w = row;
    const duet_block_q8_0 *a = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / DUET_QK; b++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += ((w[b].qs[j] & 0x0f) - 8) * a[b].qs[j];
            sumi += ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + 16];
        }
        sum += (float)sumi * (load_f16(w[b].d) * load_f16(a[b].d));
    }
    return sum;
}

float duet_vec_dot_q5_0_q8_0_scalar(int64_t n, const void *row, const void *x)
{
    const duet_block_q5_0 *w = row;
    const duet_block_q8_0 *a = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / DUET_QK; b++) {
        int q[DUET_QK];
        unpack5(w[b].qs, w[b].qh, q);
        int sumi = 0;
        for (int j = 0; j < DUET_QK; j++) {
            sumi += (q[j] - 16) * a[b].qs[j];
        }
        sum += (float)sumi * (load_f16(w[b].d) * load_f16(a[b].d));
    }
    return sum;
}

float duet_vec_dot_q8_0_q8_0_scalar(int64_t n, const void *row, const void *x)
{
    const duet_block_q8_0 *w = row;
    const duet_block_q8_0 *a = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / DUET_QK; b++) {
        int sumi = 0;
        for (int j = 0; j < DUET_QK; j++) {
            sumi += w[b].qs[j] * a[b].qs[j];
        }
        sum += (float)sumi * (load_f16(w[b].d) * load_f16(a[b].d));
    }
    return sum;
}

/* sum_j (q_j d + m) * a_j = d * dy * sum_j q_j qa_j + m * s, with s the activation block's
 * stored d * sum(qa). */
float duet_vec_dot_q4_1_q8_1_scalar(int64_t n, const void *row, const void *x)
{
    const duet_block_q4_1 *w = row;
    const duet_block_q8_1 *a = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / DUET_QK; b++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += (w[b].qs[j] & 0x0f) * a[b].qs[j];
            sumi += (w[b].qs[j] >> 4) * a[b].qs[j + 16];
        }
        sum += (float)sumi * (load_f16(w[b].d) * load_f16(a[b].d)) +
               load_f16(w[b].m) * load_f16(a[b].s);
    }
    return sum;
}

float duet_vec_dot_q5_1_q8_1_scalar(int64_t n, const void *row, const void *x)
{
    const duet_block_q5_1 *w = row;
    const duet_block_q8_1 *a = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / DUET_QK; b++) {
        int q[DUET_QK];
        unpack5(w[b].qs, w[b].qh, q);
        int sumi = 0;
        for (int j = 0; j < DUET_QK; j++) {
            sumi += q[j] * a[b].qs[j];
        }
        sum += (float)sumi * (load_f16(w[b].d) * load_f16(a[b].d)) +
               load_f16(w[b].m) * load_f16(a[b].s);
    }
    return sum;
}
