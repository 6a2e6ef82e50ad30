/* The forward pass: runs a batch of tokens through the model and produces logits.
 *
 * A batch entry is one token of one sequence at one position; entries of different
 * sequences can share a step (each weight matrix is read once per step, whatever the
 * batch size: that is what makes prefill and multi-stream decode fast). Within a step,
 * an entry sees its own sequence's keys up to its position, including those written by
 * earlier entries of the same step.
 *
 * The engine holds no KV memory: each sequence's cache draws pages from its pool (the worker
 * makes one pool for its engine, shared by all sequences; kv_pool.h), and a step reserves
 * the pages it writes in each entry's own cache, so any mix of sequences can share a step. */
#ifndef DUET_ENGINE_H
#define DUET_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "kv_cache.h"
#include "loader.h"
#include "model.h"
#include "status.h"
#include "threadpool.h"

typedef struct {
    uint32_t token;
    uint32_t pos;
    duet_kv_cache *kv;
    bool want_logits;
} duet_batch_entry;

typedef struct duet_engine duet_engine;

/* An engine for model m with n_threads compute threads, at most max_batch entries per step
 * and sequences of at most max_ctx positions. */
duet_code duet_engine_new(const duet_model *m, int n_threads, uint32_t max_batch, uint32_t max_ctx,
                          duet_engine **out, duet_status *st);
void duet_engine_free(duet_engine *e);

/* Weights still arriving: from now on every step waits for each stage of the model it
 * reads (embeddings, each layer, the output head) just before using it, so a step can run
 * while later layers load. A failed or cancelled load fails the step with its status.
 * l must outlive the engine's use of it; NULL turns waiting off. */
void duet_engine_set_loader(duet_engine *e, duet_loader *l);

const duet_model *duet_engine_model(const duet_engine *e);
uint32_t duet_engine_max_batch(const duet_engine *e);

/* One step over n entries (n <= max_batch). logits receives n_vocab floats for each entry
 * that wants them, in entry order. Each entry's cache grows to cover its position: pages
 * are reserved for every entry before anything is computed, so a pool too short (even after
 * evicting idle sessions) fails the step with RESOURCE_EXHAUSTED and no cache changes. */
duet_code duet_engine_step(duet_engine *e, const duet_batch_entry *entries, uint32_t n,
                           float *logits, duet_status *st);

/* Appends tokens to one sequence (in steps of max_batch) and writes the logits of the last
 * token to last_logits (may be NULL). */
duet_code duet_engine_eval(duet_engine *e, duet_kv_cache *kv, const uint32_t *tokens, uint32_t n,
                           float *last_logits, duet_status *st);

#endif
