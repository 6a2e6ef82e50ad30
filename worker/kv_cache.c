#include "kv_cache.h"

#include <stdlib.h>

struct duet_kv_cache {
    uint32_t n_ctx;
    uint32_t n_layer;
    uint32_t kv_dim;
    uint32_t length;
    uint16_t *keys;   /* [layer][pos][kv_dim] */
    uint16_t *values; /* [layer][pos][kv_dim] */
};

duet_code duet_kv_cache_new(const duet_model *m, uint32_t n_ctx, duet_kv_cache **out,
                            duet_status *st)
{
    duet_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    kv->n_ctx = n_ctx;
    kv->n_layer = m->hp.n_layer;
    kv->kv_dim = m->hp.n_head_kv * m->hp.head_dim;
    size_t n = (size_t)kv->n_layer * n_ctx * kv->kv_dim;
    kv->keys = malloc(n * sizeof *kv->keys);
    kv->values = malloc(n * sizeof *kv->values);
    if (!kv->keys || !kv->values) {
        duet_kv_cache_free(kv);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                               "out of memory for a KV cache of %u positions (%zu MiB)", n_ctx,
                               n * 4 >> 20);
    }
    *out = kv;
    return DUET_OK;
}

void duet_kv_cache_free(duet_kv_cache *kv)
{
    if (kv) {
        free(kv->keys);
        free(kv->values);
        free(kv);
    }
}

uint32_t duet_kv_cache_capacity(const duet_kv_cache *kv)
{
    return kv->n_ctx;
}

uint32_t duet_kv_cache_length(const duet_kv_cache *kv)
{
    return kv->length;
}

void duet_kv_cache_truncate(duet_kv_cache *kv, uint32_t n)
{
    if (n < kv->length) {
        kv->length = n;
    }
}

void duet_kv_cache_set_length(duet_kv_cache *kv, uint32_t n)
{
    kv->length = n <= kv->n_ctx ? n : kv->n_ctx;
}

uint16_t *duet_kv_cache_key(duet_kv_cache *kv, uint32_t layer, uint32_t pos)
{
    return kv->keys + ((size_t)layer * kv->n_ctx + pos) * kv->kv_dim;
}

uint16_t *duet_kv_cache_value(duet_kv_cache *kv, uint32_t layer, uint32_t pos)
{
    return kv->values + ((size_t)layer * kv->n_ctx + pos) * kv->kv_dim;
}
