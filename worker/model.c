#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "tensor_type.h"

static const char *file_type_name(uint32_t ft)
{
    switch (ft) {
    case 0:
        return "F32";
    case 1:
        return "F16";
    case 2:
        return "Q4_0";
    case 3:
        return "Q4_1";
    case 7:
        return "Q8_0";
    case 8:
        return "Q5_0";
    case 9:
        return "Q5_1";
    case 10:
        return "Q2_K";
    case 11:
        return "Q3_K_S";
    case 12:
        return "Q3_K_M";
    case 13:
        return "Q3_K_L";
    case 14:
        return "Q4_K_S";
    case 15:
        return "Q4_K_M";
    case 16:
        return "Q5_K_S";
    case 17:
        return "Q5_K_M";
    case 18:
        return "Q6_K";
    case 32:
        return "BF16";
    default:
        return NULL;
    }
}

static void arch_key(char *out, size_t cap, const duet_model *m, const char *suffix)
{
    snprintf(out, cap, "%s.%s", m->hp.arch_name, suffix);
}

static bool get_arch_u32(const duet_model *m, const char *suffix, uint32_t *v)
{
    char key[128];
    arch_key(key, sizeof key, m, suffix);
    return duet_gguf_get_u32(m->gguf, key, v);
}

static bool get_arch_f32(const duet_model *m, const char *suffix, float *v)
{
    char key[128];
    arch_key(key, sizeof key, m, suffix);
    return duet_gguf_get_f32(m->gguf, key, v);
}

/* Finds a weight and checks its shape: cols x rows (rows 0 = a vector of cols). */
static duet_code bind(duet_model *m, duet_weight *w, const char *name, int64_t cols, int64_t rows,
                      bool optional, duet_status *st)
{
    const duet_gguf_tensor *t = duet_gguf_find_tensor(m->gguf, name);
    if (!t) {
        if (optional) {
            memset(w, 0, sizeof *w);
            return DUET_OK;
        }
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "the model has no tensor %s", name);
    }
    int64_t t_rows = t->n_dims >= 2 ? t->ne[1] : 1;
    bool shape_ok = t->ne[0] == cols &&
                    (rows == 0 ? t->n_dims == 1 || t_rows == 1 : t_rows == rows) && t->ne[2] == 1 &&
                    t->ne[3] == 1;
    if (!shape_ok) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "tensor %s has shape [%lld, %lld], expected [%lld, %lld]", name,
                               (long long)t->ne[0], (long long)t_rows, (long long)cols,
                               (long long)(rows ? rows : 1));
    }
    const duet_type_traits *tr = duet_type_traits_of(t->type);
    if (!tr || !tr->supported) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "tensor %s has type %s, which duet cannot use as a weight", name,
                               tr ? tr->name : "unknown");
    }
    if (rows == 0 && t->type != DUET_TYPE_F32) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "tensor %s is %s; norms and biases must be F32", name, tr->name);
    }
    w->type = t->type;
    w->cols = cols;
    w->rows = rows ? rows : 1;
    w->row_bytes = duet_type_row_bytes(t->type, cols);
    w->data = t->data;
    m->weight_bytes += t->bytes;
    return DUET_OK;
}

static duet_code read_hparams(duet_model *m, duet_status *st)
{
    duet_hparams *hp = &m->hp;
    duet_gguf_string s;
    if (!duet_gguf_get_string(m->gguf, "general.architecture", &s)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "the file has no general.architecture (a vocab-only file?)");
    }
    snprintf(hp->arch_name, sizeof hp->arch_name, "%.*s", (int)(s.len < 31 ? s.len : 31), s.ptr);
    if (strcmp(hp->arch_name, "llama") == 0) {
        hp->arch = DUET_ARCH_LLAMA;
        hp->rope = DUET_ROPE_NORM;
    } else if (strcmp(hp->arch_name, "qwen2") == 0) {
        hp->arch = DUET_ARCH_QWEN2;
        hp->rope = DUET_ROPE_NEOX;
    } else if (strcmp(hp->arch_name, "qwen3") == 0) {
        hp->arch = DUET_ARCH_QWEN3;
        hp->rope = DUET_ROPE_NEOX;
    } else {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "architecture \"%s\" is not supported (duet runs llama, qwen2 and "
                               "qwen3)",
                               hp->arch_name);
    }
    if (duet_gguf_get_string(m->gguf, "general.name", &s)) {
        snprintf(hp->name, sizeof hp->name, "%.*s", (int)(s.len < 127 ? s.len : 127), s.ptr);
    }
    uint32_t ft;
    const char *qn =
        duet_gguf_get_u32(m->gguf, "general.file_type", &ft) ? file_type_name(ft) : NULL;
    snprintf(hp->quant_name, sizeof hp->quant_name, "%s", qn ? qn : "unknown");

    if (!get_arch_u32(m, "embedding_length", &hp->n_embd) ||
        !get_arch_u32(m, "block_count", &hp->n_layer) ||
        !get_arch_u32(m, "feed_forward_length", &hp->n_ff) ||
        !get_arch_u32(m, "attention.head_count", &hp->n_head)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "missing %s.embedding_length, block_count, feed_forward_length or "
                               "attention.head_count",
                               hp->arch_name);
    }
    if (!get_arch_u32(m, "attention.head_count_kv", &hp->n_head_kv)) {
        hp->n_head_kv = hp->n_head;
    }
    if (!get_arch_u32(m, "context_length", &hp->n_ctx_train)) {
        hp->n_ctx_train = 2048;
    }
    if (hp->n_embd == 0 || hp->n_layer == 0 || hp->n_head == 0 || hp->n_head_kv == 0 ||
        hp->n_head % hp->n_head_kv != 0 || hp->n_layer > 1024 || hp->n_embd > (1u << 20) ||
        hp->n_ff == 0 || hp->n_ff > (1u << 22)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "impossible hyperparameters: n_embd %u, n_layer %u, n_head %u, "
                               "n_head_kv %u, n_ff %u",
                               hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ff);
    }
    if (!get_arch_u32(m, "attention.key_length", &hp->head_dim)) {
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    if (!get_arch_u32(m, "rope.dimension_count", &hp->rope_dim)) {
        hp->rope_dim = hp->head_dim;
    }
    if (hp->head_dim == 0 || hp->head_dim % 2 || hp->rope_dim > hp->head_dim || hp->rope_dim % 2) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "head dimension %u / rope dimension %u",
                               hp->head_dim, hp->rope_dim);
    }
    if (!get_arch_f32(m, "attention.layer_norm_rms_epsilon", &hp->rms_eps)) {
        hp->rms_eps = 1e-5f;
    }
    if (!get_arch_f32(m, "rope.freq_base", &hp->rope_base)) {
        hp->rope_base = 10000.0f;
    }
    hp->rope_freq_scale = 1.0f;
    char key[128];
    arch_key(key, sizeof key, m, "rope.scaling.type");
    duet_gguf_string scaling;
    float factor;
    if (duet_gguf_get_string(m->gguf, key, &scaling) && duet_gguf_string_eq(scaling, "linear") &&
        get_arch_f32(m, "rope.scaling.factor", &factor) && factor > 0) {
        hp->rope_freq_scale = 1.0f / factor;
    } else if (duet_gguf_get_string(m->gguf, key, &scaling) &&
               !duet_gguf_string_eq(scaling, "none") && !duet_gguf_string_eq(scaling, "linear") &&
               !duet_gguf_string_eq(scaling, "llama3")) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "rope scaling \"%.*s\" is not supported",
                               (int)(scaling.len < 32 ? scaling.len : 32), scaling.ptr);
    }
    return DUET_OK;
}

static duet_code bind_layer(duet_model *m, uint32_t il, duet_status *st)
{
    const duet_hparams *hp = &m->hp;
    duet_layer *l = &m->layers[il];
    int64_t q_dim = (int64_t)hp->n_head * hp->head_dim;
    int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    bool qwen2 = hp->arch == DUET_ARCH_QWEN2, qwen3 = hp->arch == DUET_ARCH_QWEN3;
    struct {
        duet_weight *w;
        const char *name;
        int64_t cols, rows;
        bool optional;
    } parts[] = {
        {&l->attn_norm, "attn_norm.weight", hp->n_embd, 0, false},
        {&l->wq, "attn_q.weight", hp->n_embd, q_dim, false},
        {&l->wk, "attn_k.weight", hp->n_embd, kv_dim, false},
        {&l->wv, "attn_v.weight", hp->n_embd, kv_dim, false},
        {&l->wo, "attn_output.weight", q_dim, hp->n_embd, false},
        {&l->bq, "attn_q.bias", q_dim, 0, !qwen2},
        {&l->bk, "attn_k.bias", kv_dim, 0, !qwen2},
        {&l->bv, "attn_v.bias", kv_dim, 0, !qwen2},
        {&l->q_norm, "attn_q_norm.weight", hp->head_dim, 0, !qwen3},
        {&l->k_norm, "attn_k_norm.weight", hp->head_dim, 0, !qwen3},
        {&l->ffn_norm, "ffn_norm.weight", hp->n_embd, 0, false},
        {&l->w_gate, "ffn_gate.weight", hp->n_embd, hp->n_ff, false},
        {&l->w_up, "ffn_up.weight", hp->n_embd, hp->n_ff, false},
        {&l->w_down, "ffn_down.weight", hp->n_ff, hp->n_embd, false},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "blk.%u.%s", il, parts[i].name);
        duet_code rc =
            bind(m, parts[i].w, name, parts[i].cols, parts[i].rows, parts[i].optional, st);
        if (rc != DUET_OK) {
            return rc;
        }
    }
    return DUET_OK;
}

duet_code duet_model_from_gguf(duet_gguf *g, duet_model **out, duet_status *st)
{
    duet_model *m = calloc(1, sizeof *m);
    if (!m) {
        duet_gguf_close(g);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    m->gguf = g;
    duet_code rc = read_hparams(m, st);
    const duet_hparams *hp = &m->hp;
    if (rc == DUET_OK) {
        const duet_gguf_tensor *emb = duet_gguf_find_tensor(g, "token_embd.weight");
        if (!emb || emb->n_dims != 2) {
            rc = duet_status_set(st, DUET_INVALID_ARGUMENT,
                                 "the model has no 2-D token_embd.weight");
        } else {
            m->hp.n_vocab = (uint32_t)emb->ne[1];
            rc = bind(m, &m->tok_embd, "token_embd.weight", hp->n_embd, emb->ne[1], false, st);
        }
    }
    if (rc == DUET_OK) {
        rc = bind(m, &m->output_norm, "output_norm.weight", hp->n_embd, 0, false, st);
    }
    if (rc == DUET_OK) {
        rc = bind(m, &m->output, "output.weight", hp->n_embd, hp->n_vocab, true, st);
        if (rc == DUET_OK && !m->output.data) {
            m->output = m->tok_embd; /* tied embeddings */
        }
    }
    if (rc == DUET_OK) {
        const duet_gguf_tensor *rf = duet_gguf_find_tensor(g, "rope_freqs.weight");
        if (rf) {
            if (rf->type != DUET_TYPE_F32 || rf->ne[0] != hp->rope_dim / 2) {
                rc = duet_status_set(st, DUET_INVALID_ARGUMENT,
                                     "rope_freqs.weight must be F32 with %u values",
                                     hp->rope_dim / 2);
            } else {
                m->hp.rope_freqs = rf->data;
            }
        }
    }
    if (rc == DUET_OK) {
        m->layers = calloc(hp->n_layer, sizeof *m->layers);
        if (!m->layers) {
            rc = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        }
        for (uint32_t il = 0; rc == DUET_OK && il < hp->n_layer; il++) {
            rc = bind_layer(m, il, st);
        }
    }
    if (rc != DUET_OK) {
        duet_model_free(m);
        return rc;
    }
    *out = m;
    return DUET_OK;
}

duet_code duet_model_load(const char *path, duet_model **out, duet_status *st)
{
    duet_gguf *g;
    duet_code rc = duet_gguf_open(path, &g, st);
    if (rc != DUET_OK) {
        return rc;
    }
    rc = duet_model_from_gguf(g, out, st);
    if (rc != DUET_OK && st) {
        char msg[DUET_STATUS_MESSAGE_MAX];
        snprintf(msg, sizeof msg, "%s", st->message);
        duet_status_set(st, rc, "%s: %s", path, msg);
    }
    return rc;
}

void duet_model_free(duet_model *m)
{
    if (!m) {
        return;
    }
    duet_gguf_close(m->gguf);
    free(m->layers);
    free(m);
}
