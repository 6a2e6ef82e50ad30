#include "engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "f16_vec.h"
#include "kernels.h"
#include "tensor_type.h"

/* A cache a step reserves pages in, and what it had before (to undo a failed step). */
typedef struct {
    duet_kv_cache *kv;
    uint32_t positions; /* the step writes positions up to this one, excluded */
    uint32_t reserved_before;
} kv_hold;

struct duet_engine {
    const duet_model *m;
    duet_loader *loader; /* NULL when the weights are all in */
    duet_threadpool *pool;
    uint32_t max_batch;
    uint32_t max_ctx;
    uint32_t q_dim, kv_dim;
    /* activations, max_batch rows each */
    float *x, *xn, *q, *k, *v, *att, *gate, *up, *tmp, *out_rows;
    uint8_t *xq;      /* activations converted to a weight type's dot type */
    size_t xq_stride; /* bytes per row of xq */
    uint16_t *q16;    /* per thread: one head of q in F16 */
    uint8_t *q8;      /* per thread: one head of q in Q8_0 (for a Q8_0 cache) */
    size_t q8_stride;
    float *att32;      /* per thread: F32 accumulator and a value row (for a Q8_0 cache) */
    kv_hold *holds;    /* per step: the distinct caches of the batch */
    float *rope_cache; /* per thread: rope_dim cos/sin pairs */
};

/* ---- parallel pieces ------------------------------------------------------------------ */

typedef struct {
    const duet_weight *w;
    const uint8_t *xq;
    size_t xq_stride;
    uint32_t n;
    float *out; /* n rows of w->rows */
} matmul_job;

static void matmul_worker(void *arg, int ith, int nth)
{
    const matmul_job *j = arg;
    int64_t rows = j->w->rows;
    /* whole tiles per thread, so every thread's rows are a multiple of the tile height */
    int64_t tiles = (rows + DUET_TILE_MAX - 1) / DUET_TILE_MAX;
    int64_t per = (tiles + nth - 1) / nth;
    int64_t r0 = per * ith * DUET_TILE_MAX, r1 = r0 + per * DUET_TILE_MAX;
    r1 = r1 < rows ? r1 : rows;
    duet_tensor_type type = (duet_tensor_type)j->w->type;
    for (int64_t r = r0; r < r1; r += DUET_TILE_MAX) {
        int nr = (int)(r1 - r < DUET_TILE_MAX ? r1 - r : DUET_TILE_MAX);
        const uint8_t *row = j->w->data + (size_t)r * j->w->row_bytes;
        for (uint32_t t = 0; t < j->n; t += DUET_TILE_MAX) {
            int nx = (int)(j->n - t < DUET_TILE_MAX ? j->n - t : DUET_TILE_MAX);
            duet_vec_dot_tile(type, j->w->cols, row, j->w->row_bytes, nr,
                              j->xq + (size_t)t * j->xq_stride, j->xq_stride, nx,
                              j->out + (size_t)t * rows + r, (size_t)rows);
        }
    }
}

typedef struct {
    duet_tensor_type type;
    const float *x;
    int64_t cols;
    uint32_t n;
    uint8_t *xq;
    size_t stride;
} quantize_job;

static void quantize_worker(void *arg, int ith, int nth)
{
    const quantize_job *j = arg;
    for (uint32_t t = (uint32_t)ith; t < j->n; t += (uint32_t)nth) {
        duet_quantize_row(j->type, j->x + (size_t)t * j->cols, j->xq + (size_t)t * j->stride,
                          j->cols);
    }
}

/* Converts n rows of x (cols wide) to the dot type of weight type wt, into e->xq. */
static void prepare_input(duet_engine *e, uint32_t wt, const float *x, int64_t cols, uint32_t n)
{
    quantize_job j = {.type = duet_dot_type((duet_tensor_type)wt),
                      .x = x,
                      .cols = cols,
                      .n = n,
                      .xq = e->xq,
                      .stride = e->xq_stride};
    if (n == 1) {
        quantize_worker(&j, 0, 1);
    } else {
        duet_threadpool_run(e->pool, quantize_worker, &j);
    }
}

/* out[n][w->rows] = x[n][w->cols] . w^T, with x already in e->xq. */
static void matmul_prepared(duet_engine *e, const duet_weight *w, uint32_t n, float *out)
{
    matmul_job j = {.w = w, .xq = e->xq, .xq_stride = e->xq_stride, .n = n, .out = out};
    duet_threadpool_run(e->pool, matmul_worker, &j);
}

static void matmul(duet_engine *e, const duet_weight *w, const float *x, uint32_t n, float *out)
{
    prepare_input(e, w->type, x, w->cols, n);
    matmul_prepared(e, w, n, out);
}

/* ---- element-wise ops ------------------------------------------------------------------- */

static void rms_norm(float *out, const float *x, const float *weight, int64_t n, float eps)
{
    double sum = 0.0; /* double, as llama.cpp sums squares */
    for (int64_t i = 0; i < n; i++) {
        sum += (double)x[i] * x[i];
    }
    float scale = 1.0f / sqrtf((float)(sum / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) {
        out[i] = x[i] * scale * weight[i];
    }
}

static void add_bias(float *x, const duet_weight *b, uint32_t n, int64_t dim)
{
    if (!b->data) {
        return;
    }
    const float *bias = (const float *)b->data;
    for (uint32_t t = 0; t < n; t++) {
        for (int64_t i = 0; i < dim; i++) {
            x[(size_t)t * dim + i] += bias[i];
        }
    }
}

/* cos/sin for each rotated pair at pos. The angle grows by a constant factor per pair,
 * computed by repeated multiplication in float as llama.cpp does, so angles match it. */
static void rope_angles(const duet_hparams *hp, uint32_t pos, float *cache)
{
    float theta_scale = powf(hp->rope_base, -2.0f / (float)hp->rope_dim);
    float theta = (float)pos;
    for (uint32_t i = 0; i < hp->rope_dim / 2; i++) {
        float factor = hp->rope_freqs ? hp->rope_freqs[i] : 1.0f;
        float angle = hp->rope_freq_scale * (theta / factor);
        cache[2 * i] = cosf(angle);
        cache[2 * i + 1] = sinf(angle);
        theta *= theta_scale;
    }
}

static void rope_head(const duet_hparams *hp, float *v, const float *cache)
{
    uint32_t half = hp->rope_dim / 2;
    for (uint32_t i = 0; i < half; i++) {
        float c = cache[2 * i], s = cache[2 * i + 1];
        uint32_t a = hp->rope == DUET_ROPE_NORM ? 2 * i : i;
        uint32_t b = hp->rope == DUET_ROPE_NORM ? 2 * i + 1 : i + half;
        float x0 = v[a], x1 = v[b];
        v[a] = x0 * c - x1 * s;
        v[b] = x0 * s + x1 * c;
    }
}

/* ---- attention ----------------------------------------------------------------------------- */

typedef struct {
    duet_engine *e;
    const duet_batch_entry *entries;
    uint32_t n;
    uint32_t layer;
} layer_job;

/* Per entry: q/k norms (qwen3), RoPE on q and k, and the new key and value into the cache. */
static void qk_rope_store_worker(void *arg, int ith, int nth)
{
    const layer_job *j = arg;
    duet_engine *e = j->e;
    const duet_hparams *hp = &e->m->hp;
    const duet_layer *l = &e->m->layers[j->layer];
    float *cache = e->rope_cache + (size_t)ith * hp->rope_dim;
    for (uint32_t t = (uint32_t)ith; t < j->n; t += (uint32_t)nth) {
        const duet_batch_entry *en = &j->entries[t];
        float *q = e->q + (size_t)t * e->q_dim;
        float *k = e->k + (size_t)t * e->kv_dim;
        const float *v = e->v + (size_t)t * e->kv_dim;
        rope_angles(hp, en->pos, cache);
        for (uint32_t h = 0; h < hp->n_head; h++) {
            float *qh = q + (size_t)h * hp->head_dim;
            if (l->q_norm.data) {
                rms_norm(qh, qh, (const float *)l->q_norm.data, hp->head_dim, hp->rms_eps);
            }
            rope_head(hp, qh, cache);
        }
        uint16_t *kc = duet_kv_cache_key(en->kv, j->layer, en->pos);
        uint16_t *vc = duet_kv_cache_value(en->kv, j->layer, en->pos);
        for (uint32_t h = 0; h < hp->n_head_kv; h++) {
            float *kh = k + (size_t)h * hp->head_dim;
            if (l->k_norm.data) {
                rms_norm(kh, kh, (const float *)l->k_norm.data, hp->head_dim, hp->rms_eps);
            }
            rope_head(hp, kh, cache);
        }
        if (duet_kv_pool_type(duet_kv_cache_pool(en->kv)) == DUET_KV_Q8_0) {
            duet_quantize_row(DUET_TYPE_Q8_0, k, kc, e->kv_dim);
            duet_quantize_row(DUET_TYPE_Q8_0, v, vc, e->kv_dim);
        } else {
            duet_f16_from_f32(e->kv_dim, kc, k);
            duet_f16_from_f32(e->kv_dim, vc, v);
        }
    }
}

/* One head's attention over a Q8_0 cache, as llama.cpp's CPU flash attention does for
 * quantized keys and values: q quantized to Q8_0 for integer dots with the keys, values
 * dequantized and summed in an F32 accumulator. */
static void attend_q8_0(duet_engine *e, const duet_batch_entry *en, uint32_t layer,
                        uint32_t kv_head, const float *q, float *out, int ith)
{
    const duet_hparams *hp = &e->m->hp;
    const uint32_t d = hp->head_dim;
    const float scale = 1.0f / sqrtf((float)d);
    uint8_t *q8 = e->q8 + (size_t)ith * e->q8_stride;
    float *acc = e->att32 + (size_t)ith * 2 * d, *vrow = acc + d;
    duet_quantize_row(DUET_TYPE_Q8_0, q, q8, d);
    const uint32_t units = duet_kv_pool_row_units(duet_kv_cache_pool(en->kv));
    const size_t off = (size_t)kv_head * (d / 32) * 17; /* 34-byte blocks in 16-bit units */
    float max = -INFINITY, sum = 0.0f;
    memset(acc, 0, d * sizeof *acc);
    uint32_t len = en->pos + 1;
    for (uint32_t p = 0; p < len;) {
        const uint16_t *kr, *vr;
        uint32_t rows = duet_kv_cache_rows(en->kv, layer, p, &kr, &vr);
        rows = rows < len - p ? rows : len - p;
        for (uint32_t r = 0; r < rows; r++, kr += units, vr += units) {
            float s = duet_vec_dot(DUET_TYPE_Q8_0, d, kr + off, q8) * scale;
            float ms = 1.0f, vs = 1.0f;
            if (s > max) {
                ms = expf(max - s);
                max = s;
                for (uint32_t i = 0; i < d; i++) {
                    acc[i] *= ms;
                }
            } else {
                vs = expf(s - max);
            }
            duet_dequantize_row(DUET_TYPE_Q8_0, vr + off, vrow, d);
            for (uint32_t i = 0; i < d; i++) {
                acc[i] = fmaf(vrow[i], vs, acc[i]);
            }
            sum = sum * ms + vs;
        }
        p += rows;
    }
    float inv = 1.0f / sum;
    for (uint32_t i = 0; i < d; i++) {
        out[i] = acc[i] * inv;
    }
}

/* Per (entry, head): softmax(q.K^T / sqrt(d)) V over the entry's positions 0..pos. */
static void attention_worker(void *arg, int ith, int nth)
{
    const layer_job *j = arg;
    duet_engine *e = j->e;
    const duet_hparams *hp = &e->m->hp;
    uint32_t group = hp->n_head / hp->n_head_kv;
    float scale = 1.0f / sqrtf((float)hp->head_dim);
    uint16_t *q16 = e->q16 + (size_t)ith * 2 * hp->head_dim;
    uint32_t items = j->n * hp->n_head;
    for (uint32_t it = (uint32_t)ith; it < items; it += (uint32_t)nth) {
        uint32_t t = it / hp->n_head, h = it % hp->n_head;
        const duet_batch_entry *en = &j->entries[t];
        const float *q = e->q + (size_t)t * e->q_dim + (size_t)h * hp->head_dim;
        float *out = e->att + (size_t)t * e->q_dim + (size_t)h * hp->head_dim;
        if (duet_kv_pool_type(duet_kv_cache_pool(en->kv)) == DUET_KV_Q8_0) {
            attend_q8_0(e, en, j->layer, h / group, q, out, ith);
            continue;
        }
        size_t kv_off = (size_t)(h / group) * hp->head_dim;
        /* keys are F16: q is rounded to F16 for the dot, as llama.cpp's F16 matmul does */
        duet_f16_from_f32(hp->head_dim, q16, q);
        /* Online softmax with the weighted sum of values kept in F16, as llama.cpp's CPU
         * flash attention (its default) does, so logits agree with it closely. */
        uint32_t len = en->pos + 1;
        float max = -INFINITY, sum = 0.0f;
        uint16_t *acc = q16 + hp->head_dim; /* F16 accumulator, head_dim values */
        for (uint32_t d = 0; d < hp->head_dim; d++) {
            acc[d] = 0;
        }
        for (uint32_t p = 0; p < len;) {
            /* a page at a time: one page-table lookup per page, not per position */
            const uint16_t *kr, *vr;
            uint32_t rows = duet_kv_cache_rows(en->kv, j->layer, p, &kr, &vr);
            rows = rows < len - p ? rows : len - p;
            for (uint32_t r = 0; r < rows; r++, kr += e->kv_dim, vr += e->kv_dim) {
                float s = duet_vec_dot(DUET_TYPE_F16, hp->head_dim, kr + kv_off, q16) * scale;
                float ms = 1.0f, vs = 1.0f;
                if (s > max) {
                    float old = max;
                    max = s;
                    ms = expf(old - max);
                    duet_f16_vec_scale(hp->head_dim, acc, ms);
                } else {
                    vs = expf(s - max);
                }
                duet_f16_vec_mad(hp->head_dim, acc, vr + kv_off, vs);
                sum = sum * ms + vs;
            }
            p += rows;
        }
        float inv = 1.0f / sum;
        duet_f16_to_f32_row(hp->head_dim, out, acc);
        for (uint32_t d = 0; d < hp->head_dim; d++) {
            out[d] *= inv;
        }
    }
}

/* ---- the step --------------------------------------------------------------------------- */

/* Makes pages cover every entry's position, all caches or none: a short pool fails the step
 * here, before anything is computed, and the caches keep the pages they had. */
static duet_code reserve_pages(duet_engine *e, const duet_batch_entry *entries, uint32_t n,
                               duet_status *st)
{
    uint32_t n_holds = 0;
    for (uint32_t t = 0; t < n; t++) {
        uint32_t h = 0;
        while (h < n_holds && e->holds[h].kv != entries[t].kv) {
            h++;
        }
        if (h == n_holds) {
            e->holds[n_holds++] =
                (kv_hold){.kv = entries[t].kv,
                          .positions = 0,
                          .reserved_before = duet_kv_cache_reserved(entries[t].kv)};
        }
        if (entries[t].pos + 1 > e->holds[h].positions) {
            e->holds[h].positions = entries[t].pos + 1;
        }
    }
    for (uint32_t h = 0; h < n_holds; h++) {
        duet_code rc = duet_kv_cache_reserve(e->holds[h].kv, e->holds[h].positions, st);
        if (rc != DUET_OK) {
            while (h-- > 0) {
                duet_kv_cache_shrink(e->holds[h].kv, e->holds[h].reserved_before);
            }
            return rc;
        }
    }
    return DUET_OK;
}

static void layer_forward(duet_engine *e, const duet_batch_entry *entries, uint32_t n, uint32_t il)
{
    const duet_hparams *hp = &e->m->hp;
    const duet_layer *l = &e->m->layers[il];
    for (uint32_t t = 0; t < n; t++) {
        rms_norm(e->xn + (size_t)t * hp->n_embd, e->x + (size_t)t * hp->n_embd,
                 (const float *)l->attn_norm.data, hp->n_embd, hp->rms_eps);
    }
    /* q, k and v read the same input: convert it once when their types agree */
    prepare_input(e, l->wq.type, e->xn, hp->n_embd, n);
    matmul_prepared(e, &l->wq, n, e->q);
    if (duet_dot_type(l->wk.type) != duet_dot_type(l->wq.type)) {
        prepare_input(e, l->wk.type, e->xn, hp->n_embd, n);
    }
    matmul_prepared(e, &l->wk, n, e->k);
    if (duet_dot_type(l->wv.type) != duet_dot_type(l->wk.type)) {
        prepare_input(e, l->wv.type, e->xn, hp->n_embd, n);
    }
    matmul_prepared(e, &l->wv, n, e->v);
    add_bias(e->q, &l->bq, n, e->q_dim);
    add_bias(e->k, &l->bk, n, e->kv_dim);
    add_bias(e->v, &l->bv, n, e->kv_dim);

    layer_job job = {.e = e, .entries = entries, .n = n, .layer = il};
    duet_threadpool_run(e->pool, qk_rope_store_worker, &job);
    duet_threadpool_run(e->pool, attention_worker, &job);

    matmul(e, &l->wo, e->att, n, e->tmp);
    for (size_t i = 0; i < (size_t)n * hp->n_embd; i++) {
        e->x[i] += e->tmp[i];
    }

    for (uint32_t t = 0; t < n; t++) {
        rms_norm(e->xn + (size_t)t * hp->n_embd, e->x + (size_t)t * hp->n_embd,
                 (const float *)l->ffn_norm.data, hp->n_embd, hp->rms_eps);
    }
    prepare_input(e, l->w_gate.type, e->xn, hp->n_embd, n);
    matmul_prepared(e, &l->w_gate, n, e->gate);
    if (duet_dot_type(l->w_up.type) != duet_dot_type(l->w_gate.type)) {
        prepare_input(e, l->w_up.type, e->xn, hp->n_embd, n);
    }
    matmul_prepared(e, &l->w_up, n, e->up);
    for (size_t i = 0; i < (size_t)n * hp->n_ff; i++) {
        float g = e->gate[i];
        e->gate[i] = g / (1.0f + expf(-g)) * e->up[i];
    }
    matmul(e, &l->w_down, e->gate, n, e->tmp);
    for (size_t i = 0; i < (size_t)n * hp->n_embd; i++) {
        e->x[i] += e->tmp[i];
    }
}

duet_code duet_engine_step(duet_engine *e, const duet_batch_entry *entries, uint32_t n,
                           float *logits, duet_status *st)
{
    const duet_model *m = e->m;
    const duet_hparams *hp = &m->hp;
    if (n == 0) {
        return DUET_OK;
    }
    if (n > e->max_batch) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "batch of %u entries (at most %u)", n,
                               e->max_batch);
    }
    for (uint32_t t = 0; t < n; t++) {
        const duet_batch_entry *en = &entries[t];
        if (en->token >= hp->n_vocab) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "token id %u is outside the vocabulary (%u tokens)", en->token,
                                   hp->n_vocab);
        }
        uint32_t cap = duet_kv_cache_capacity(en->kv);
        if (en->pos >= cap || en->pos >= e->max_ctx) {
            return duet_status_set(st, DUET_OUT_OF_RANGE,
                                   "position %u is past the context of %u tokens", en->pos,
                                   cap < e->max_ctx ? cap : e->max_ctx);
        }
    }
    duet_code rc = reserve_pages(e, entries, n, st);
    if (rc != DUET_OK) {
        return rc;
    }
    if (e->loader && duet_loader_wait_embeddings(e->loader, st) != DUET_OK) {
        return st->code;
    }
    for (uint32_t t = 0; t < n; t++) {
        const duet_weight *emb = &m->tok_embd;
        duet_dequantize_row(emb->type, emb->data + (size_t)entries[t].token * emb->row_bytes,
                            e->x + (size_t)t * hp->n_embd, hp->n_embd);
    }
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        /* a failure here leaves the lengths as they were: the positions count as unwritten */
        if (e->loader && duet_loader_wait_layer(e->loader, il, st) != DUET_OK) {
            return st->code;
        }
        layer_forward(e, entries, n, il);
    }
    if (e->loader && duet_loader_wait_output(e->loader, st) != DUET_OK) {
        return st->code;
    }
    for (uint32_t t = 0; t < n; t++) {
        duet_kv_cache *kv = entries[t].kv;
        if (entries[t].pos + 1 > duet_kv_cache_length(kv)) {
            duet_kv_cache_set_length(kv, entries[t].pos + 1);
        }
    }
    /* the output head only for entries that want logits */
    uint32_t k = 0;
    for (uint32_t t = 0; t < n; t++) {
        if (entries[t].want_logits) {
            rms_norm(e->xn + (size_t)k * hp->n_embd, e->x + (size_t)t * hp->n_embd,
                     (const float *)m->output_norm.data, hp->n_embd, hp->rms_eps);
            k++;
        }
    }
    if (k > 0 && logits) {
        matmul(e, &m->output, e->xn, k, logits);
    }
    return DUET_OK;
}

duet_code duet_engine_eval(duet_engine *e, duet_kv_cache *kv, const uint32_t *tokens, uint32_t n,
                           float *last_logits, duet_status *st)
{
    duet_batch_entry *batch = malloc(e->max_batch * sizeof *batch);
    if (!batch) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    duet_code rc = DUET_OK;
    for (uint32_t done = 0; done < n && rc == DUET_OK;) {
        uint32_t len = duet_kv_cache_length(kv);
        uint32_t chunk = n - done < e->max_batch ? n - done : e->max_batch;
        for (uint32_t i = 0; i < chunk; i++) {
            batch[i] = (duet_batch_entry){.token = tokens[done + i],
                                          .pos = len + i,
                                          .kv = kv,
                                          .want_logits = done + i == n - 1 && last_logits};
        }
        rc = duet_engine_step(e, batch, chunk, last_logits, st);
        done += chunk;
    }
    free(batch);
    return rc;
}

void duet_engine_set_loader(duet_engine *e, duet_loader *l)
{
    e->loader = l;
}

const duet_model *duet_engine_model(const duet_engine *e)
{
    return e->m;
}

uint32_t duet_engine_max_batch(const duet_engine *e)
{
    return e->max_batch;
}

void duet_engine_free(duet_engine *e)
{
    if (!e) {
        return;
    }
    duet_threadpool_free(e->pool);
    float *bufs[] = {e->x, e->xn, e->q, e->k, e->v, e->att, e->gate, e->up, e->tmp, e->rope_cache};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        free(bufs[i]);
    }
    free(e->xq);
    free(e->q16);
    free(e->q8);
    free(e->att32);
    free(e->holds);
    free(e);
}

duet_code duet_engine_new(const duet_model *m, int n_threads, uint32_t max_batch, uint32_t max_ctx,
                          duet_engine **out, duet_status *st)
{
    const duet_hparams *hp = &m->hp;
    if (max_batch == 0 || max_ctx == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "batch and context must be positive");
    }
    duet_engine *e = calloc(1, sizeof *e);
    if (!e) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    e->m = m;
    e->max_batch = max_batch;
    e->max_ctx = max_ctx;
    e->q_dim = hp->n_head * hp->head_dim;
    e->kv_dim = hp->n_head_kv * hp->head_dim;
    e->pool = duet_threadpool_new(n_threads);
    int nth = e->pool ? duet_threadpool_size(e->pool) : 1;
    size_t b = max_batch;
    size_t widest = hp->n_embd;
    widest = widest > hp->n_ff ? widest : hp->n_ff;
    widest = widest > e->q_dim ? widest : e->q_dim;
    e->x = malloc(b * hp->n_embd * sizeof(float));
    e->xn = malloc(b * hp->n_embd * sizeof(float));
    e->q = malloc(b * e->q_dim * sizeof(float));
    e->k = malloc(b * e->kv_dim * sizeof(float));
    e->v = malloc(b * e->kv_dim * sizeof(float));
    e->att = malloc(b * e->q_dim * sizeof(float));
    e->gate = malloc(b * hp->n_ff * sizeof(float));
    e->up = malloc(b * hp->n_ff * sizeof(float));
    e->tmp = malloc(b * widest * sizeof(float));
    /* the widest dot type is F32 (4 bytes a value); quantized ones take less */
    e->xq_stride = (widest * 4 + 63) / 64 * 64;
    e->xq = malloc(b * e->xq_stride);
    e->q16 = malloc((size_t)nth * 2 * hp->head_dim * sizeof(uint16_t));
    e->q8_stride = ((size_t)hp->head_dim / 32 + 1) * 34;
    e->q8 = malloc((size_t)nth * e->q8_stride);
    e->att32 = malloc((size_t)nth * 2 * hp->head_dim * sizeof(float));
    e->rope_cache = malloc((size_t)nth * hp->rope_dim * sizeof(float));
    e->holds = malloc(b * sizeof *e->holds);
    if (!e->holds || !e->pool || !e->x || !e->xn || !e->q || !e->k || !e->v || !e->att ||
        !e->gate || !e->up || !e->tmp || !e->xq || !e->q16 || !e->q8 || !e->att32 ||
        !e->rope_cache) {
        duet_engine_free(e);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                               "out of memory for the engine's buffers");
    }
    *out = e;
    return DUET_OK;
}
