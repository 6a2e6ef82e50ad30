#include "kv_cache.h"

#include <stdbool.h>
#include <stdlib.h>

struct duet_kv_cache {
    duet_kv_pool *pool;
    bool owns_pool;
    uint32_t max_ctx;
    uint32_t length;

    /* the page layout of kv_pool.h, copied here so a row lookup makes no call */
    uint32_t page_shift; /* page_tokens = 1 << page_shift */
    uint32_t pos_mask;   /* page_tokens - 1 */
    uint32_t row_units;  /* 16-bit units per row (kv_pool.h) */
    size_t layer_stride; /* 16-bit units from one layer's rows to the next within a page */
    size_t value_offset; /* from a layer's key rows to its value rows */

    uint32_t n_pages;
    uint32_t max_pages;
    uint32_t *page_ids;   /* to give them back */
    uint16_t **page_data; /* the same pages' memory, for lookups */
};

static uint32_t pages_for(const duet_kv_cache *kv, uint32_t positions)
{
    return (uint32_t)(((uint64_t)positions + kv->pos_mask) >> kv->page_shift);
}

duet_code duet_kv_cache_new_in_pool(duet_kv_pool *pool, uint32_t max_ctx, duet_kv_cache **out,
                                    duet_status *st)
{
    if (max_ctx == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "a KV cache needs a positive context");
    }
    duet_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    uint32_t page_tokens = duet_kv_pool_page_tokens(pool);
    kv->pool = pool;
    kv->max_ctx = max_ctx;
    while ((1u << kv->page_shift) < page_tokens) {
        kv->page_shift++;
    }
    kv->pos_mask = page_tokens - 1;
    kv->row_units = duet_kv_pool_row_units(pool); /* a row's stride, in 16-bit units */
    kv->value_offset = (size_t)page_tokens * kv->row_units;
    kv->layer_stride = 2 * kv->value_offset;
    kv->max_pages = pages_for(kv, max_ctx);
    kv->page_ids = malloc(kv->max_pages * sizeof *kv->page_ids);
    kv->page_data = malloc(kv->max_pages * sizeof *kv->page_data);
    if (!kv->page_ids || !kv->page_data) {
        duet_kv_cache_free(kv);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                               "out of memory for the page table of %u positions", max_ctx);
    }
    *out = kv;
    return DUET_OK;
}

duet_code duet_kv_cache_new(const duet_model *m, uint32_t n_ctx, duet_kv_cache **out,
                            duet_status *st)
{
    if (n_ctx == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "a KV cache needs a positive context");
    }
    uint32_t page_tokens = DUET_KV_PAGE_TOKENS_DEFAULT;
    uint32_t n_pages = (uint32_t)(((uint64_t)n_ctx + page_tokens - 1) / page_tokens);
    duet_kv_pool *pool;
    duet_code rc = duet_kv_pool_new_pages(m, n_pages, page_tokens, &pool, st);
    if (rc != DUET_OK) {
        return rc;
    }
    rc = duet_kv_cache_new_in_pool(pool, n_ctx, out, st);
    if (rc != DUET_OK) {
        duet_kv_pool_free(pool);
        return rc;
    }
    (*out)->owns_pool = true;
    return DUET_OK;
}

void duet_kv_cache_free(duet_kv_cache *kv)
{
    if (!kv) {
        return;
    }
    if (kv->n_pages > 0) {
        duet_kv_pool_release(kv->pool, kv->page_ids, kv->n_pages);
    }
    if (kv->owns_pool) {
        duet_kv_pool_free(kv->pool);
    }
    free(kv->page_ids);
    free(kv->page_data);
    free(kv);
}

duet_kv_pool *duet_kv_cache_pool(const duet_kv_cache *kv)
{
    return kv->pool;
}

uint32_t duet_kv_cache_capacity(const duet_kv_cache *kv)
{
    return kv->max_ctx;
}

uint32_t duet_kv_cache_length(const duet_kv_cache *kv)
{
    return kv->length;
}

duet_code duet_kv_cache_reserve(duet_kv_cache *kv, uint32_t n, duet_status *st)
{
    if (n > kv->max_ctx) {
        return duet_status_set(st, DUET_OUT_OF_RANGE,
                               "position %u is past the context of %u tokens", n - 1, kv->max_ctx);
    }
    uint32_t want = pages_for(kv, n);
    if (want <= kv->n_pages) {
        return DUET_OK;
    }
    duet_code rc = duet_kv_pool_alloc(kv->pool, want - kv->n_pages, kv->page_ids + kv->n_pages, st);
    if (rc != DUET_OK) {
        return rc;
    }
    for (uint32_t i = kv->n_pages; i < want; i++) {
        kv->page_data[i] = duet_kv_pool_page(kv->pool, kv->page_ids[i]);
    }
    kv->n_pages = want;
    return DUET_OK;
}

uint32_t duet_kv_cache_reserved(const duet_kv_cache *kv)
{
    uint64_t n = (uint64_t)kv->n_pages << kv->page_shift;
    return n < UINT32_MAX ? (uint32_t)n : UINT32_MAX;
}

void duet_kv_cache_shrink(duet_kv_cache *kv, uint32_t n)
{
    uint32_t keep = pages_for(kv, n > kv->length ? n : kv->length);
    if (keep < kv->n_pages) {
        duet_kv_pool_release(kv->pool, kv->page_ids + keep, kv->n_pages - keep);
        kv->n_pages = keep;
    }
}

void duet_kv_cache_truncate(duet_kv_cache *kv, uint32_t n)
{
    if (n < kv->length) {
        kv->length = n;
    }
    duet_kv_cache_shrink(kv, kv->length);
}

void duet_kv_cache_set_length(duet_kv_cache *kv, uint32_t n)
{
    uint32_t reserved = duet_kv_cache_reserved(kv);
    uint32_t cap = reserved < kv->max_ctx ? reserved : kv->max_ctx;
    kv->length = n <= cap ? n : cap;
}

uint16_t *duet_kv_cache_key(duet_kv_cache *kv, uint32_t layer, uint32_t pos)
{
    return kv->page_data[pos >> kv->page_shift] + layer * kv->layer_stride +
           (size_t)(pos & kv->pos_mask) * kv->row_units;
}

uint16_t *duet_kv_cache_value(duet_kv_cache *kv, uint32_t layer, uint32_t pos)
{
    return duet_kv_cache_key(kv, layer, pos) + kv->value_offset;
}

uint32_t duet_kv_cache_rows(const duet_kv_cache *kv, uint32_t layer, uint32_t pos,
                            const uint16_t **keys, const uint16_t **values)
{
    const uint16_t *k = kv->page_data[pos >> kv->page_shift] + layer * kv->layer_stride +
                        (size_t)(pos & kv->pos_mask) * kv->row_units;
    *keys = k;
    *values = k + kv->value_offset;
    return kv->pos_mask + 1 - (pos & kv->pos_mask);
}
