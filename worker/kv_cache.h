/* The key/value cache of one sequence: for every layer and position, the rotated key and
 * the value of each KV head, stored as F16 (as llama.cpp stores them by default).
 * Positions fill from 0; truncating keeps a prefix (for reuse of a shared prompt). */
#ifndef DUET_KV_CACHE_H
#define DUET_KV_CACHE_H

#include <stdint.h>

#include "model.h"
#include "status.h"

typedef struct duet_kv_cache duet_kv_cache;

/* Room for n_ctx positions of model m. */
duet_code duet_kv_cache_new(const duet_model *m, uint32_t n_ctx, duet_kv_cache **out,
                            duet_status *st);
void duet_kv_cache_free(duet_kv_cache *kv);

uint32_t duet_kv_cache_capacity(const duet_kv_cache *kv);
/* Positions filled so far. */
uint32_t duet_kv_cache_length(const duet_kv_cache *kv);
/* Forgets positions from n on. */
void duet_kv_cache_truncate(duet_kv_cache *kv, uint32_t n);
/* Marks positions up to n as filled (the engine calls this after a step). */
void duet_kv_cache_set_length(duet_kv_cache *kv, uint32_t n);

/* The key / value row (kv_dim F16 values) of a layer at a position. */
uint16_t *duet_kv_cache_key(duet_kv_cache *kv, uint32_t layer, uint32_t pos);
uint16_t *duet_kv_cache_value(duet_kv_cache *kv, uint32_t layer, uint32_t pos);

#endif
