/* The key/value cache of one sequence: for every layer and position, the rotated key and
 * the value of each KV head, stored as F16 (as llama.cpp stores them by default).
 *
 * The memory is a page table over a pool (kv_pool.h): positions [0, reserved) are backed by
 * pages, taken by duet_kv_cache_reserve (the engine reserves before each step) and given
 * back by truncate and free. Positions fill from 0; truncating keeps a prefix (for reuse of
 * a shared prompt).
 *
 * Not thread-safe: one thread (the scheduler's) uses a cache at a time; the pool under it
 * is shared safely. */
#ifndef DUET_KV_CACHE_H
#define DUET_KV_CACHE_H

#include <stdint.h>

#include "kv_pool.h"
#include "model.h"
#include "status.h"

typedef struct duet_kv_cache duet_kv_cache;

/* A cache for up to max_ctx positions drawing pages from pool, which must outlive it.
 * Takes no page yet. */
duet_code duet_kv_cache_new_in_pool(duet_kv_pool *pool, uint32_t max_ctx, duet_kv_cache **out,
                                    duet_status *st);
/* A cache with a pool of its own, just big enough for n_ctx positions of model m: for a
 * lone sequence that competes with nobody for memory (tools, tests). */
duet_code duet_kv_cache_new(const duet_model *m, uint32_t n_ctx, duet_kv_cache **out,
                            duet_status *st);
/* Gives every page back (and frees an own pool). */
void duet_kv_cache_free(duet_kv_cache *kv);

duet_kv_pool *duet_kv_cache_pool(const duet_kv_cache *kv);
/* The most positions the sequence may reach (max_ctx). */
uint32_t duet_kv_cache_capacity(const duet_kv_cache *kv);
/* Positions filled so far. */
uint32_t duet_kv_cache_length(const duet_kv_cache *kv);

/* Makes pages cover positions [0, n). OUT_OF_RANGE past the capacity; RESOURCE_EXHAUSTED
 * when the pool is short even after evicting idle sessions (see kv_pool.h): then the cache
 * is as it was and still usable. */
duet_code duet_kv_cache_reserve(duet_kv_cache *kv, uint32_t n, duet_status *st);
/* Positions backed by pages (a multiple of the page size, possibly past the capacity). */
uint32_t duet_kv_cache_reserved(const duet_kv_cache *kv);
/* Gives back the pages not needed for the first max(n, length) positions: undoes a
 * reservation that went unused. */
void duet_kv_cache_shrink(duet_kv_cache *kv, uint32_t n);

/* Forgets positions from n on, and gives back at once the pages past the kept prefix. */
void duet_kv_cache_truncate(duet_kv_cache *kv, uint32_t n);
/* Marks positions up to n as filled (the engine calls this after a step); capped to the
 * capacity and to the reserved positions. */
void duet_kv_cache_set_length(duet_kv_cache *kv, uint32_t n);

/* The key / value row of a layer at a reserved position: kv_dim values in the pool's
 * storage type (kv_pool.h). */
uint16_t *duet_kv_cache_key(duet_kv_cache *kv, uint32_t layer, uint32_t pos);
uint16_t *duet_kv_cache_value(duet_kv_cache *kv, uint32_t layer, uint32_t pos);

/* The key and value rows of a layer from a reserved position to the end of its page:
 * returns how many rows follow pos there (at least 1), consecutive rows duet_kv_pool_row_units
 * 16-bit units apart.
 * For loops over many positions, one page lookup per page. */
uint32_t duet_kv_cache_rows(const duet_kv_cache *kv, uint32_t layer, uint32_t pos,
                            const uint16_t **keys, const uint16_t **values);

#endif
