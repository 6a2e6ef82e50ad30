/* The KV memory of one engine: a fixed number of pages, each holding page_tokens positions
 * of every layer's keys and values (F16), handed out to sequences' caches (kv_cache.h).
 *
 * The budget is a hard cap, allocated up front as one block: the pool never asks the system
 * for more, a page is an index into the block (so a cache's page table is small and a row's
 * address is a multiply away), and an impossible budget fails at start-up rather than in the
 * middle of a request. The block is not touched here, so the system backs only the pages
 * that sequences have written.
 *
 * Page layout (caches rely on it): for each layer, page_tokens key rows and then page_tokens
 * value rows, each row holding kv_dim values (kv_dim = n_head_kv * head_dim) in the pool's
 * storage type: F16 (kv_dim halves), or Q8_0 (kv_dim / 32 blocks of 34 bytes: about half
 * the memory, and each head's values quantized on their own, so head_dim must be a
 * multiple of 32). Rows are measured in 16-bit units either way (row_units).
 *
 * Thread-safe: one mutex guards the free list, so the scheduler thread may allocate while
 * other threads read the statistics. */
#ifndef DUET_KV_POOL_H
#define DUET_KV_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "status.h"

#define DUET_KV_PAGE_TOKENS_DEFAULT 32

typedef enum {
    DUET_KV_F16,  /* as llama.cpp stores keys and values by default */
    DUET_KV_Q8_0, /* llama.cpp's --cache-type-k/v q8_0 */
} duet_kv_type;

/* "f16", "q8_0". */
const char *duet_kv_type_name(duet_kv_type t);

typedef struct duet_kv_pool duet_kv_pool;

/* Asked to free at least pages_wanted pages (by forgetting idle cached sequences) when an
 * allocation finds the pool short. Called without the pool's lock held, on the allocating
 * thread; returns how many pages it gave back (0: nothing left to give). */
typedef uint32_t (*duet_kv_reclaim_fn)(void *ctx, uint32_t pages_wanted);

/* A pool of as many pages as fit in budget_mib MiB, for model m. page_tokens is a power of
 * two (0 means DUET_KV_PAGE_TOKENS_DEFAULT). INVALID_ARGUMENT when not even one page fits;
 * RESOURCE_EXHAUSTED when the system refuses the block. */
duet_code duet_kv_pool_new(const duet_model *m, size_t budget_mib, uint32_t page_tokens,
                           duet_kv_pool **out, duet_status *st);
/* The same with the number of pages given (tools and tests that size by positions). */
duet_code duet_kv_pool_new_pages(const duet_model *m, uint32_t n_pages, uint32_t page_tokens,
                                 duet_kv_pool **out, duet_status *st);
/* Both in a given storage type (the two above store F16). Q8_0 needs a head_dim that is a
 * multiple of 32: INVALID_ARGUMENT naming the model's otherwise. */
duet_code duet_kv_pool_new_typed(const duet_model *m, size_t budget_mib, uint32_t page_tokens,
                                 duet_kv_type type, duet_kv_pool **out, duet_status *st);
duet_code duet_kv_pool_new_pages_typed(const duet_model *m, uint32_t n_pages, uint32_t page_tokens,
                                       duet_kv_type type, duet_kv_pool **out, duet_status *st);
/* Every page must have been returned (caches freed) before. */
void duet_kv_pool_free(duet_kv_pool *pool);

uint32_t duet_kv_pool_pages_total(const duet_kv_pool *pool);
uint32_t duet_kv_pool_pages_free(duet_kv_pool *pool);
uint32_t duet_kv_pool_page_tokens(const duet_kv_pool *pool);
size_t duet_kv_pool_bytes_per_page(const duet_kv_pool *pool);
uint32_t duet_kv_pool_layers(const duet_kv_pool *pool);
/* Values in one key (or value) row. */
uint32_t duet_kv_pool_kv_dim(const duet_kv_pool *pool);
duet_kv_type duet_kv_pool_type(const duet_kv_pool *pool);
/* 16-bit units one row takes (kv_dim for F16, kv_dim / 32 * 17 for Q8_0). */
uint32_t duet_kv_pool_row_units(const duet_kv_pool *pool);

/* Installs the function asked to make room when an allocation finds the pool short (NULL
 * removes it). At most one: the session cache of this pool. */
void duet_kv_pool_set_reclaimer(duet_kv_pool *pool, duet_kv_reclaim_fn fn, void *ctx);

/* Takes n pages, all or none, writing their indices to pages. When the pool is short it
 * asks the reclaimer for room and tries again, until the pages fit or nothing more is
 * given back: then RESOURCE_EXHAUSTED, saying how many pages were needed and free. */
duet_code duet_kv_pool_alloc(duet_kv_pool *pool, uint32_t n, uint32_t *pages, duet_status *st);
/* Gives n pages back. */
void duet_kv_pool_release(duet_kv_pool *pool, const uint32_t *pages, uint32_t n);

/* The first 16-bit unit of a page (see the layout above). */
uint16_t *duet_kv_pool_page(duet_kv_pool *pool, uint32_t page);

#endif
