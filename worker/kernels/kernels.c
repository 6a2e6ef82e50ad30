/* Run-time dispatch of the kernels: one table row per type, the AVX2 entries used when the
 * CPU has AVX2+FMA+F16C and DUET_NO_AVX2 is not 1, the VNNI entries (AVX-512 F, BW, VL and
 * VNNI, used on 256-bit vectors) when it also has those and DUET_NO_VNNI is not 1. Each
 * choice is made once and cached. A missing entry falls back to the next simpler one:
 * VNNI -> AVX2 -> scalar for dots, and for tiles to a loop over the dot. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kquants.h"
#include "legacy_quants.h"

typedef void (*quantize_fn)(const float *src, void *dst, int64_t n);
typedef void (*dequantize_fn)(const void *src, float *dst, int64_t n);
typedef float (*dot_fn)(int64_t n, const void *row, const void *x);
typedef void (*tile_fn)(int64_t n, const void *rows, size_t row_stride, int n_rows, const void *x,
                        size_t x_stride, int n_x, float *out, size_t out_stride);

typedef struct {
    quantize_fn quantize;
    quantize_fn quantize_avx2; /* NULL: the scalar quantizer is used */
    dequantize_fn dequantize;
    dot_fn dot;      /* NULL: not a weight type */
    dot_fn dot_avx2; /* NULL: the scalar dot is used */
    duet_tensor_type dot_type;
    tile_fn tile_avx2; /* NULL: tiles loop over the dot */
    dot_fn dot_vnni;   /* NULL: the AVX2 dot is used */
    tile_fn tile_vnni; /* NULL: the AVX2 tile is used */
} kernel_row;

#define WEIGHT(t, q, qv, dq, d, dv, dt, tv, dn, tn) [t] = {q, qv, dq, d, dv, dt, tv, dn, tn}
#define ACTIVATION(t, q, qv, dq) [t] = {q, qv, dq, NULL, NULL, DUET_TYPE_COUNT, NULL, NULL, NULL}

static const kernel_row table[DUET_TYPE_COUNT] = {
    WEIGHT(DUET_TYPE_F32, duet_quantize_row_f32, NULL, duet_dequantize_row_f32,
           duet_vec_dot_f32_f32_scalar, duet_vec_dot_f32_f32_avx2, DUET_TYPE_F32, NULL, NULL, NULL),
    WEIGHT(DUET_TYPE_F16, duet_quantize_row_f16, duet_quantize_row_f16_avx2,
           duet_dequantize_row_f16, duet_vec_dot_f16_f16_scalar, duet_vec_dot_f16_f16_avx2,
           DUET_TYPE_F16, NULL, NULL, NULL),
    WEIGHT(DUET_TYPE_BF16, duet_quantize_row_bf16, NULL, duet_dequantize_row_bf16,
           duet_vec_dot_bf16_bf16_scalar, duet_vec_dot_bf16_bf16_avx2, DUET_TYPE_BF16, NULL, NULL,
           NULL),
    WEIGHT(DUET_TYPE_Q4_0, duet_quantize_row_q4_0, NULL, duet_dequantize_row_q4_0,
           duet_vec_dot_q4_0_q8_0_scalar, duet_vec_dot_q4_0_q8_0_avx2, DUET_TYPE_Q8_0,
           duet_tile_q4_0_q8_0_avx2, NULL, duet_tile_q4_0_q8_0_vnni),
    WEIGHT(DUET_TYPE_Q4_1, duet_quantize_row_q4_1, NULL, duet_dequantize_row_q4_1,
           duet_vec_dot_q4_1_q8_1_scalar, duet_vec_dot_q4_1_q8_1_avx2, DUET_TYPE_Q8_1,
           duet_tile_q4_1_q8_1_avx2, NULL, duet_tile_q4_1_q8_1_vnni),
    WEIGHT(DUET_TYPE_Q5_0, duet_quantize_row_q5_0, NULL, duet_dequantize_row_q5_0,
           duet_vec_dot_q5_0_q8_0_scalar, duet_vec_dot_q5_0_q8_0_avx2, DUET_TYPE_Q8_0,
           duet_tile_q5_0_q8_0_avx2, NULL, duet_tile_q5_0_q8_0_vnni),
    WEIGHT(DUET_TYPE_Q5_1, duet_quantize_row_q5_1, NULL, duet_dequantize_row_q5_1,
           duet_vec_dot_q5_1_q8_1_scalar, duet_vec_dot_q5_1_q8_1_avx2, DUET_TYPE_Q8_1,
           duet_tile_q5_1_q8_1_avx2, NULL, duet_tile_q5_1_q8_1_vnni),
    WEIGHT(DUET_TYPE_Q8_0, duet_quantize_row_q8_0, duet_quantize_row_q8_0_avx2,
           duet_dequantize_row_q8_0, duet_vec_dot_q8_0_q8_0_scalar, duet_vec_dot_q8_0_q8_0_avx2,
           DUET_TYPE_Q8_0, duet_tile_q8_0_q8_0_avx2, NULL, duet_tile_q8_0_q8_0_vnni),
    ACTIVATION(DUET_TYPE_Q8_1, duet_quantize_row_q8_1, duet_quantize_row_q8_1_avx2,
               duet_dequantize_row_q8_1),
    WEIGHT(DUET_TYPE_Q2_K, duet_quantize_row_q2_k, NULL, duet_dequantize_row_q2_k,
           duet_vec_dot_q2_k_q8_k_scalar, duet_vec_dot_q2_k_q8_k_avx2, DUET_TYPE_Q8_K,
           duet_tile_q2_k_q8_k_avx2, NULL, duet_tile_q2_k_q8_k_vnni),
    WEIGHT(DUET_TYPE_Q3_K, duet_quantize_row_q3_k, NULL, duet_dequantize_row_q3_k,
           duet_vec_dot_q3_k_q8_k_scalar, duet_vec_dot_q3_k_q8_k_avx2, DUET_TYPE_Q8_K,
           duet_tile_q3_k_q8_k_avx2, NULL, duet_tile_q3_k_q8_k_vnni),
    WEIGHT(DUET_TYPE_Q4_K, duet_quantize_row_q4_k, NULL, duet_dequantize_row_q4_k,
           duet_vec_dot_q4_k_q8_k_scalar, duet_vec_dot_q4_k_q8_k_avx2, DUET_TYPE_Q8_K,
           duet_tile_q4_k_q8_k_avx2, duet_vec_dot_q4_k_q8_k_vnni, duet_tile_q4_k_q8_k_vnni),
    WEIGHT(DUET_TYPE_Q5_K, duet_quantize_row_q5_k, NULL, duet_dequantize_row_q5_k,
           duet_vec_dot_q5_k_q8_k_scalar, duet_vec_dot_q5_k_q8_k_avx2, DUET_TYPE_Q8_K,
           duet_tile_q5_k_q8_k_avx2, duet_vec_dot_q5_k_q8_k_vnni, duet_tile_q5_k_q8_k_vnni),
    WEIGHT(DUET_TYPE_Q6_K, duet_quantize_row_q6_k, NULL, duet_dequantize_row_q6_k,
           duet_vec_dot_q6_k_q8_k_scalar, duet_vec_dot_q6_k_q8_k_avx2, DUET_TYPE_Q8_K,
           duet_tile_q6_k_q8_k_avx2, duet_vec_dot_q6_k_q8_k_vnni, duet_tile_q6_k_q8_k_vnni),
    ACTIVATION(DUET_TYPE_Q8_K, duet_quantize_row_q8_k, duet_quantize_row_q8_k_avx2,
               duet_dequantize_row_q8_k),
};

static const kernel_row *row_of(duet_tensor_type t)
{
    if ((unsigned)t >= DUET_TYPE_COUNT || table[t].quantize == NULL) {
        return NULL;
    }
    return &table[t];
}

static bool env_is_1(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && strcmp(v, "1") == 0;
}

static bool detect_avx2(void)
{
    if (env_is_1("DUET_NO_AVX2")) {
        return false;
    }
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}

static bool detect_vnni(void)
{
    if (env_is_1("DUET_NO_VNNI") || !duet_kernels_use_avx2()) {
        return false;
    }
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

/* -1 unknown, else 0/1; racing first calls compute the same answer */
static bool cached_flag(atomic_int *cached, bool (*detect)(void))
{
    int v = atomic_load_explicit(cached, memory_order_relaxed);
    if (v < 0) {
        v = detect() ? 1 : 0;
        atomic_store_explicit(cached, v, memory_order_relaxed);
    }
    return v == 1;
}

bool duet_kernels_use_avx2(void)
{
    static atomic_int cached = -1;
    return cached_flag(&cached, detect_avx2);
}

bool duet_kernels_use_vnni(void)
{
    static atomic_int cached = -1;
    return cached_flag(&cached, detect_vnni);
}

const char *duet_kernels_name(void)
{
    if (duet_kernels_use_vnni()) {
        return "AVX-512 VNNI";
    }
    return duet_kernels_use_avx2() ? "AVX2" : "scalar";
}

/* The fastest dot of a row the CPU can run. */
static dot_fn best_dot(const kernel_row *r)
{
    if (r->dot_vnni != NULL && duet_kernels_use_vnni()) {
        return r->dot_vnni;
    }
    if (r->dot_avx2 != NULL && duet_kernels_use_avx2()) {
        return r->dot_avx2;
    }
    return r->dot;
}

duet_tensor_type duet_dot_type(duet_tensor_type t)
{
    const kernel_row *r = row_of(t);
    return r != NULL ? r->dot_type : DUET_TYPE_COUNT;
}

void duet_quantize_row(duet_tensor_type t, const float *src, void *dst, int64_t n)
{
    const kernel_row *r = row_of(t);
    if (r == NULL) {
        return;
    }
    if (r->quantize_avx2 != NULL && duet_kernels_use_avx2()) {
        r->quantize_avx2(src, dst, n);
    } else {
        r->quantize(src, dst, n);
    }
}

void duet_dequantize_row(duet_tensor_type t, const void *src, float *dst, int64_t n)
{
    const kernel_row *r = row_of(t);
    if (r != NULL) {
        r->dequantize(src, dst, n);
    }
}

float duet_vec_dot(duet_tensor_type t, int64_t n, const void *row, const void *x)
{
    const kernel_row *r = row_of(t);
    if (r == NULL || r->dot == NULL) {
        return NAN;
    }
    return best_dot(r)(n, row, x);
}

void duet_vec_dot_tile(duet_tensor_type t, int64_t n, const void *rows, size_t row_stride,
                       int n_rows, const void *x, size_t x_stride, int n_x, float *out,
                       size_t out_stride)
{
    const kernel_row *r = row_of(t);
    if (r == NULL || r->dot == NULL || n_rows <= 0 || n_x <= 0) {
        return;
    }
    if (r->tile_vnni != NULL && duet_kernels_use_vnni()) {
        r->tile_vnni(n, rows, row_stride, n_rows, x, x_stride, n_x, out, out_stride);
        return;
    }
    if (r->tile_avx2 != NULL && duet_kernels_use_avx2()) {
        r->tile_avx2(n, rows, row_stride, n_rows, x, x_stride, n_x, out, out_stride);
        return;
    }
    dot_fn dot = best_dot(r);
    for (int i = 0; i < n_rows; i++) {
        const uint8_t *row = (const uint8_t *)rows + (size_t)i * row_stride;
        for (int j = 0; j < n_x; j++) {
            out[(size_t)j * out_stride + (size_t)i] =
                dot(n, row, (const uint8_t *)x + (size_t)j * x_stride);
        }
    }
}

float duet_vec_dot_scalar(duet_tensor_type t, int64_t n, const void *row, const void *x)
{
    const kernel_row *r = row_of(t);
    if (r == NULL || r->dot == NULL) {
        return NAN;
    }
    return r->dot(n, row, x);
}
