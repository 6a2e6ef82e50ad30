#include "kv_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

struct duet_kv_pool {
    uint32_t n_layer;
    uint32_t kv_dim;
    duet_kv_type type;
    uint32_t row_units; /* 16-bit units per row */
    uint32_t page_tokens;
    size_t page_values; /* 16-bit units per page */
    uint32_t total;
    uint16_t *block; /* total pages, back to back (mmap'd) */
    size_t block_bytes;

    pthread_mutex_t lock;
    uint32_t *free_pages; /* a stack of indices; the top is free_pages[n_free - 1] */
    uint32_t n_free;
    duet_kv_reclaim_fn reclaim;
    void *reclaim_ctx;
};

static duet_code check_page_tokens(uint32_t *page_tokens, duet_status *st)
{
    if (*page_tokens == 0) {
        *page_tokens = DUET_KV_PAGE_TOKENS_DEFAULT;
    }
    /* a power of two turns the position -> page lookup into a shift and a mask */
    if ((*page_tokens & (*page_tokens - 1)) != 0 || *page_tokens > (1u << 20)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "KV page size of %u tokens: it must be a power of two up to 2^20",
                               *page_tokens);
    }
    return DUET_OK;
}

const char *duet_kv_type_name(duet_kv_type t)
{
    return t == DUET_KV_Q8_0 ? "q8_0" : "f16";
}

static uint32_t row_units_of(const duet_model *m, duet_kv_type type)
{
    uint32_t kv_dim = m->hp.n_head_kv * m->hp.head_dim;
    return type == DUET_KV_Q8_0 ? kv_dim / 32 * 17 : kv_dim; /* a Q8_0 block is 34 bytes */
}

static duet_code check_type(const duet_model *m, duet_kv_type type, duet_status *st)
{
    if (type == DUET_KV_Q8_0 && m->hp.head_dim % 32 != 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "a q8_0 KV cache needs heads of a multiple of 32 values; this "
                               "model's have %u: use f16",
                               m->hp.head_dim);
    }
    if (type != DUET_KV_F16 && type != DUET_KV_Q8_0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "unknown KV cache type %d", (int)type);
    }
    return DUET_OK;
}

static size_t values_per_page(const duet_model *m, uint32_t page_tokens, duet_kv_type type)
{
    return (size_t)m->hp.n_layer * 2 * page_tokens * row_units_of(m, type);
}

/* Anonymous memory straight from the kernel: untouched pages cost nothing, and transparent
 * huge pages (where the system allows them) spare the TLB on the attention loop's reads. */
static uint16_t *map_block(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    madvise(p, bytes, MADV_HUGEPAGE); /* advice only: refused on systems without THP */
    return p;
}

duet_code duet_kv_pool_new_pages(const duet_model *m, uint32_t n_pages, uint32_t page_tokens,
                                 duet_kv_pool **out, duet_status *st)
{
    return duet_kv_pool_new_pages_typed(m, n_pages, page_tokens, DUET_KV_F16, out, st);
}

duet_code duet_kv_pool_new_pages_typed(const duet_model *m, uint32_t n_pages, uint32_t page_tokens,
                                       duet_kv_type type, duet_kv_pool **out, duet_status *st)
{
    duet_code rc = check_page_tokens(&page_tokens, st);
    if (rc == DUET_OK) {
        rc = check_type(m, type, st);
    }
    if (rc != DUET_OK) {
        return rc;
    }
    if (n_pages == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "a KV pool needs at least one page");
    }
    size_t page_values = values_per_page(m, page_tokens, type);
    if (page_values == 0 || (size_t)n_pages > SIZE_MAX / 2 / page_values) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "a KV pool of %u pages cannot exist",
                               n_pages);
    }
    duet_kv_pool *pool = calloc(1, sizeof *pool);
    if (!pool) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    pool->n_layer = m->hp.n_layer;
    pool->kv_dim = m->hp.n_head_kv * m->hp.head_dim;
    pool->type = type;
    pool->row_units = row_units_of(m, type);
    pool->page_tokens = page_tokens;
    pool->page_values = page_values;
    pool->total = n_pages;
    pool->block_bytes = (size_t)n_pages * page_values * sizeof(uint16_t);
    pool->block = map_block(pool->block_bytes);
    pool->free_pages = malloc((size_t)n_pages * sizeof *pool->free_pages);
    if (!pool->block || !pool->free_pages) {
        size_t mib = pool->block_bytes >> 20;
        if (pool->block) {
            munmap(pool->block, pool->block_bytes);
        }
        free(pool->free_pages);
        free(pool);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                               "out of memory for a KV pool of %u pages (%zu MiB)", n_pages, mib);
    }
    /* the lowest indices on top, so a lightly used pool touches the start of the block */
    for (uint32_t i = 0; i < n_pages; i++) {
        pool->free_pages[i] = n_pages - 1 - i;
    }
    pool->n_free = n_pages;
    pthread_mutex_init(&pool->lock, NULL);
    *out = pool;
    return DUET_OK;
}

duet_code duet_kv_pool_new(const duet_model *m, size_t budget_mib, uint32_t page_tokens,
                           duet_kv_pool **out, duet_status *st)
{
    return duet_kv_pool_new_typed(m, budget_mib, page_tokens, DUET_KV_F16, out, st);
}

duet_code duet_kv_pool_new_typed(const duet_model *m, size_t budget_mib, uint32_t page_tokens,
                                 duet_kv_type type, duet_kv_pool **out, duet_status *st)
{
    duet_code rc = check_page_tokens(&page_tokens, st);
    if (rc == DUET_OK) {
        rc = check_type(m, type, st);
    }
    if (rc != DUET_OK) {
        return rc;
    }
    size_t page_bytes = values_per_page(m, page_tokens, type) * sizeof(uint16_t);
    size_t budget = budget_mib > (SIZE_MAX >> 20) ? SIZE_MAX : budget_mib << 20;
    size_t n_pages = page_bytes ? budget / page_bytes : 0;
    if (n_pages == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "a KV budget of %zu MiB holds no page of %u tokens (%zu KiB)",
                               budget_mib, page_tokens, page_bytes >> 10);
    }
    if (n_pages > UINT32_MAX) {
        n_pages = UINT32_MAX;
    }
    return duet_kv_pool_new_pages_typed(m, (uint32_t)n_pages, page_tokens, type, out, st);
}

void duet_kv_pool_free(duet_kv_pool *pool)
{
    if (!pool) {
        return;
    }
    pthread_mutex_destroy(&pool->lock);
    munmap(pool->block, pool->block_bytes);
    free(pool->free_pages);
    free(pool);
}

uint32_t duet_kv_pool_pages_total(const duet_kv_pool *pool)
{
    return pool->total;
}

uint32_t duet_kv_pool_pages_free(duet_kv_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    uint32_t n = pool->n_free;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

uint32_t duet_kv_pool_page_tokens(const duet_kv_pool *pool)
{
    return pool->page_tokens;
}

size_t duet_kv_pool_bytes_per_page(const duet_kv_pool *pool)
{
    return pool->page_values * sizeof(uint16_t);
}

uint32_t duet_kv_pool_layers(const duet_kv_pool *pool)
{
    return pool->n_layer;
}

uint32_t duet_kv_pool_kv_dim(const duet_kv_pool *pool)
{
    return pool->kv_dim;
}

duet_kv_type duet_kv_pool_type(const duet_kv_pool *pool)
{
    return pool->type;
}

uint32_t duet_kv_pool_row_units(const duet_kv_pool *pool)
{
    return pool->row_units;
}

void duet_kv_pool_set_reclaimer(duet_kv_pool *pool, duet_kv_reclaim_fn fn, void *ctx)
{
    pthread_mutex_lock(&pool->lock);
    pool->reclaim = fn;
    pool->reclaim_ctx = ctx;
    pthread_mutex_unlock(&pool->lock);
}

duet_code duet_kv_pool_alloc(duet_kv_pool *pool, uint32_t n, uint32_t *pages, duet_status *st)
{
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        if (pool->n_free >= n) {
            for (uint32_t i = 0; i < n; i++) {
                pages[i] = pool->free_pages[--pool->n_free];
            }
            pthread_mutex_unlock(&pool->lock);
            return DUET_OK;
        }
        uint32_t n_free = pool->n_free;
        duet_kv_reclaim_fn reclaim = pool->reclaim;
        void *ctx = pool->reclaim_ctx;
        pthread_mutex_unlock(&pool->lock);
        /* unlocked: the reclaimer gives pages back through duet_kv_pool_release */
        if (!reclaim || reclaim(ctx, n - n_free) == 0) {
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                                   "the KV cache is full: %u pages of %u tokens needed, %u free "
                                   "of %u, and no idle session left to evict",
                                   n, pool->page_tokens, n_free, pool->total);
        }
    }
}

void duet_kv_pool_release(duet_kv_pool *pool, const uint32_t *pages, uint32_t n)
{
    pthread_mutex_lock(&pool->lock);
    /* the bound keeps a double release from writing past the stack */
    for (uint32_t i = 0; i < n && pool->n_free < pool->total; i++) {
        pool->free_pages[pool->n_free++] = pages[i];
    }
    pthread_mutex_unlock(&pool->lock);
}

uint16_t *duet_kv_pool_page(duet_kv_pool *pool, uint32_t page)
{
    return pool->block + (size_t)page * pool->page_values;
}
