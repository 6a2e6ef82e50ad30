#include "load_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One tensor's bytes, [start, end) from the mapping base, wanted by a stage. */
typedef struct {
    uint64_t start, end;
    uint32_t stage;
} piece;

typedef struct {
    piece *v;
    size_t n, cap;
} piece_list;

static int by_start_then_stage(const void *a, const void *b)
{
    const piece *x = a, *y = b;
    if (x->start != y->start) {
        return x->start < y->start ? -1 : 1;
    }
    return x->stage < y->stage ? -1 : x->stage > y->stage;
}

static int by_value(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static duet_code add_bytes(piece_list *l, const duet_load_plan *p, const void *data, uint64_t bytes,
                           uint32_t stage, duet_status *st)
{
    if (!data || bytes == 0) {
        return DUET_OK;
    }
    const uint8_t *d = data;
    if (d < p->base || (uint64_t)(d - p->base) > p->size ||
        bytes > p->size - (uint64_t)(d - p->base)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "a weight of stage %u lies outside the model's file mapping", stage);
    }
    l->v[l->n++] = (piece){(uint64_t)(d - p->base), (uint64_t)(d - p->base) + bytes, stage};
    return DUET_OK;
}

static duet_code add_weight(piece_list *l, const duet_load_plan *p, const duet_weight *w,
                            uint32_t stage, duet_status *st)
{
    return add_bytes(l, p, w->data, (uint64_t)w->row_bytes * (uint64_t)w->rows, stage, st);
}

/* Every tensor the model uses, tagged with the stage that first needs it. */
static duet_code collect(const duet_model *m, const duet_load_plan *p, piece_list *l,
                         duet_status *st)
{
    const duet_hparams *hp = &m->hp;
    l->cap = 4 + (size_t)hp->n_layer * (sizeof(duet_layer) / sizeof(duet_weight));
    l->v = malloc(l->cap * sizeof *l->v);
    if (!l->v) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    duet_code rc = add_weight(l, p, &m->tok_embd, DUET_STAGE_OF_EMBEDDINGS, st);
    if (rc == DUET_OK) {
        rc = add_bytes(l, p, hp->rope_freqs, (uint64_t)hp->rope_dim / 2 * sizeof(float),
                       DUET_STAGE_OF_EMBEDDINGS, st);
    }
    for (uint32_t il = 0; rc == DUET_OK && il < hp->n_layer; il++) {
        const duet_layer *ly = &m->layers[il];
        const duet_weight *ws[] = {&ly->attn_norm, &ly->wq,     &ly->wk,   &ly->wv,     &ly->wo,
                                   &ly->bq,        &ly->bk,     &ly->bv,   &ly->q_norm, &ly->k_norm,
                                   &ly->ffn_norm,  &ly->w_gate, &ly->w_up, &ly->w_down};
        for (size_t i = 0; rc == DUET_OK && i < sizeof ws / sizeof ws[0]; i++) {
            rc = add_weight(l, p, ws[i], DUET_STAGE_OF_LAYER(il), st);
        }
    }
    if (rc == DUET_OK) {
        rc = add_weight(l, p, &m->output_norm, DUET_STAGE_OF_OUTPUT(hp->n_layer), st);
    }
    if (rc == DUET_OK) {
        rc = add_weight(l, p, &m->output, DUET_STAGE_OF_OUTPUT(hp->n_layer), st);
    }
    return rc;
}

/* Overlapping pieces (tied weights, or a file that shares bytes between tensors): cut the
 * group at every boundary and give each slice to the earliest stage that wants it. Rare and
 * small, so the quadratic scan is fine. */
static duet_code split_overlaps(const piece *g, size_t n, piece_list *out, duet_status *st)
{
    uint64_t *cuts = malloc(2 * n * sizeof *cuts);
    if (!cuts) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        cuts[2 * i] = g[i].start;
        cuts[2 * i + 1] = g[i].end;
    }
    qsort(cuts, 2 * n, sizeof *cuts, by_value);
    for (size_t c = 0; c + 1 < 2 * n; c++) {
        if (cuts[c] == cuts[c + 1]) {
            continue;
        }
        uint32_t owner = UINT32_MAX;
        for (size_t i = 0; i < n; i++) {
            if (g[i].start <= cuts[c] && g[i].end >= cuts[c + 1] && g[i].stage < owner) {
                owner = g[i].stage;
            }
        }
        /* a group is connected, so every slice has an owner */
        out->v[out->n++] = (piece){cuts[c], cuts[c + 1], owner};
    }
    free(cuts);
    return DUET_OK;
}

/* Pieces in file order, none overlapping another. */
static duet_code resolve(piece_list *in, piece_list *out, duet_status *st)
{
    qsort(in->v, in->n, sizeof *in->v, by_start_then_stage);
    out->cap = 2 * in->n + 1; /* a group of k pieces yields at most 2k - 1 slices */
    out->v = malloc(out->cap * sizeof *out->v);
    if (!out->v) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < in->n;) {
        size_t j = i + 1;
        uint64_t end = in->v[i].end;
        while (j < in->n && in->v[j].start < end) {
            end = in->v[j].end > end ? in->v[j].end : end;
            j++;
        }
        if (j == i + 1) {
            out->v[out->n++] = in->v[i];
        } else {
            duet_code rc = split_overlaps(&in->v[i], j - i, out, st);
            if (rc != DUET_OK) {
                return rc;
            }
        }
        i = j;
    }
    return DUET_OK;
}

/* Hands the resolved pieces to their stages, merging touching ones. */
static duet_code distribute(duet_load_plan *p, const piece_list *l, duet_status *st)
{
    size_t *count = calloc(p->n_stages, sizeof *count);
    if (!count) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < l->n; i++) {
        count[l->v[i].stage]++;
    }
    for (uint32_t s = 0; s < p->n_stages; s++) {
        p->stages[s].ranges = count[s] ? malloc(count[s] * sizeof(duet_byte_range)) : NULL;
        if (count[s] && !p->stages[s].ranges) {
            free(count);
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        }
    }
    free(count);
    for (size_t i = 0; i < l->n; i++) {
        duet_load_stage *s = &p->stages[l->v[i].stage];
        uint64_t bytes = l->v[i].end - l->v[i].start;
        duet_byte_range *last = s->n_ranges ? &s->ranges[s->n_ranges - 1] : NULL;
        if (last && last->offset + last->bytes == l->v[i].start) {
            last->bytes += bytes;
        } else {
            s->ranges[s->n_ranges++] = (duet_byte_range){l->v[i].start, bytes};
        }
        s->bytes += bytes;
        p->total_bytes += bytes;
    }
    return DUET_OK;
}

duet_code duet_load_plan_build(const duet_model *m, duet_load_plan **out, duet_status *st)
{
    duet_load_plan *p = calloc(1, sizeof *p);
    if (!p) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    p->base = duet_gguf_mapping(m->gguf);
    p->size = duet_gguf_file_size(m->gguf);
    p->n_stages = m->hp.n_layer + 2;
    p->stages = calloc(p->n_stages, sizeof *p->stages);
    piece_list wanted = {0}, resolved = {0};
    duet_code rc =
        p->stages ? DUET_OK : duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    for (uint32_t s = 0; rc == DUET_OK && s < p->n_stages; s++) {
        p->stages[s].kind = s == DUET_STAGE_OF_EMBEDDINGS              ? DUET_STAGE_EMBEDDINGS
                            : s == DUET_STAGE_OF_OUTPUT(m->hp.n_layer) ? DUET_STAGE_OUTPUT
                                                                       : DUET_STAGE_LAYER;
        p->stages[s].layer = p->stages[s].kind == DUET_STAGE_LAYER ? s - 1 : 0;
    }
    if (rc == DUET_OK) {
        rc = collect(m, p, &wanted, st);
    }
    if (rc == DUET_OK) {
        rc = resolve(&wanted, &resolved, st);
    }
    if (rc == DUET_OK) {
        rc = distribute(p, &resolved, st);
    }
    free(wanted.v);
    free(resolved.v);
    if (rc != DUET_OK) {
        duet_load_plan_free(p);
        return rc;
    }
    *out = p;
    return DUET_OK;
}

void duet_load_plan_free(duet_load_plan *p)
{
    if (!p) {
        return;
    }
    for (uint32_t s = 0; p->stages && s < p->n_stages; s++) {
        free(p->stages[s].ranges);
    }
    free(p->stages);
    free(p);
}

const char *duet_load_stage_name(const duet_load_stage *s, char *out, size_t cap)
{
    switch (s->kind) {
    case DUET_STAGE_EMBEDDINGS:
        snprintf(out, cap, "token embeddings");
        break;
    case DUET_STAGE_LAYER:
        snprintf(out, cap, "layer %u", s->layer);
        break;
    case DUET_STAGE_OUTPUT:
        snprintf(out, cap, "output head");
        break;
    }
    return out;
}
