/* A llama-family model read from a GGUF file: hyperparameters and weights (pointers into
 * the mapped file; nothing is copied). Architectures: llama (Llama 2/3.x, TinyLlama,
 * Mistral, SmolLM), qwen2 (q/k/v biases), qwen3 (q/k norms). Anything else, or a weight
 * type duet cannot multiply, is refused at load with its name. */
#ifndef DUET_MODEL_H
#define DUET_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "status.h"

typedef enum {
    DUET_ARCH_LLAMA,
    DUET_ARCH_QWEN2,
    DUET_ARCH_QWEN3,
} duet_arch;

typedef enum {
    DUET_ROPE_NORM, /* rotate adjacent pairs (llama GGUFs: q/k rows permuted by the converter) */
    DUET_ROPE_NEOX, /* rotate x[i] with x[i + d/2] (qwen) */
} duet_rope_kind;

/* A 2-D weight: rows of `cols` values of `type`, or a 1-D vector (rows == 1). */
typedef struct {
    uint32_t type;
    int64_t cols;
    int64_t rows;
    size_t row_bytes;
    const uint8_t *data;
} duet_weight;

typedef struct {
    duet_weight attn_norm, wq, wk, wv, wo;
    duet_weight bq, bk, bv;     /* qwen2; data NULL when absent */
    duet_weight q_norm, k_norm; /* qwen3; data NULL when absent */
    duet_weight ffn_norm, w_gate, w_up, w_down;
} duet_layer;

typedef struct {
    duet_arch arch;
    char arch_name[32];
    char name[128];
    char quant_name[16]; /* from general.file_type, e.g. "Q4_K_M" */
    uint32_t n_vocab;
    uint32_t n_ctx_train;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;
    uint32_t n_ff;
    uint32_t rope_dim; /* rotated dimensions of each head */
    float rms_eps;
    float rope_base;
    float rope_freq_scale; /* 1 / linear scaling factor */
    duet_rope_kind rope;
    const float *rope_freqs; /* per-pair divisors (Llama 3.1+ rope scaling), or NULL */
} duet_hparams;

typedef struct {
    duet_gguf *gguf;
    duet_hparams hp;
    duet_weight tok_embd;
    duet_weight output_norm;
    duet_weight output; /* may be tok_embd (tied embeddings) */
    duet_layer *layers;
    uint64_t weight_bytes;
} duet_model;

duet_code duet_model_load(const char *path, duet_model **out, duet_status *st);

/* Builds the model from an already open file, taking ownership of it. */
duet_code duet_model_from_gguf(duet_gguf *g, duet_model **out, duet_status *st);

void duet_model_free(duet_model *m);

#endif
