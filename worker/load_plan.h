/* The order in which a model's weights are brought into memory, and the bytes of each stage.
 *
 * Stages, in order: the token embeddings (with rope_freqs, which layer 0 already needs),
 * each block 0..n_layer-1, then the output norm and output head. A stage's ranges are the
 * byte ranges of the tensors it uses, as offsets from the start of the file mapping: sorted,
 * disjoint, touching ranges merged. Nothing is assumed about where tensors lie — a block may
 * be scattered over the file — and a byte used by several stages (tied embeddings: the
 * output head is token_embd) belongs only to the first, since it is already resident when
 * the later one is reached. So every byte of every tensor the model uses is in exactly one
 * stage, and total_bytes is their sum (duet_model.weight_bytes, plus rope_freqs when
 * present). */
#ifndef DUET_LOAD_PLAN_H
#define DUET_LOAD_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "status.h"

typedef enum {
    DUET_STAGE_EMBEDDINGS,
    DUET_STAGE_LAYER,
    DUET_STAGE_OUTPUT,
} duet_stage_kind;

typedef struct {
    uint64_t offset; /* from duet_gguf_mapping() */
    uint64_t bytes;
} duet_byte_range;

typedef struct {
    duet_stage_kind kind;
    uint32_t layer; /* DUET_STAGE_LAYER: which block */
    duet_byte_range *ranges;
    size_t n_ranges;
    uint64_t bytes; /* sum of the ranges */
} duet_load_stage;

typedef struct {
    const uint8_t *base; /* the file mapping */
    uint64_t size;
    duet_load_stage *stages; /* n_layer + 2 of them */
    uint32_t n_stages;
    uint64_t total_bytes;
} duet_load_plan;

/* Stage numbers. */
#define DUET_STAGE_OF_EMBEDDINGS 0u
#define DUET_STAGE_OF_LAYER(il) (1u + (uint32_t)(il))
#define DUET_STAGE_OF_OUTPUT(n_layer) (1u + (uint32_t)(n_layer))

/* Builds the plan of m (which must outlive it). INVALID_ARGUMENT when a weight lies outside
 * the file mapping. */
duet_code duet_load_plan_build(const duet_model *m, duet_load_plan **out, duet_status *st);

void duet_load_plan_free(duet_load_plan *p);

/* "token embeddings", "layer 3", "output head". */
const char *duet_load_stage_name(const duet_load_stage *s, char *out, size_t cap);

#endif
