/* Open-addressing hash map from byte strings to int32 values (token text -> id, merge ->
 * rank). Keys are not copied: they must stay valid while the map is used. Built once, then
 * read-only, so any number of threads may look up at the same time. */
#ifndef DUET_BYTEMAP_H
#define DUET_BYTEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct {
    const char *key;
    uint32_t len;
    uint32_t split; /* for pair keys "a b": the length of a (see duet_bytemap_get_pair) */
    uint64_t hash;
    int32_t value;
} duet_bytemap_slot;

typedef struct {
    duet_bytemap_slot *slots;
    size_t cap; /* a power of two */
    size_t count;
} duet_bytemap;

/* Sizes the map for about `expected` keys (it grows if more arrive). */
duet_code duet_bytemap_init(duet_bytemap *m, size_t expected, duet_status *st);
void duet_bytemap_free(duet_bytemap *m);

/* Maps key -> value. A key already present keeps its value unless replace is true. */
duet_code duet_bytemap_put(duet_bytemap *m, const char *key, size_t len, uint32_t split,
                           int32_t value, bool replace, duet_status *st);

/* The value of key, or -1. */
int32_t duet_bytemap_get(const duet_bytemap *m, const char *key, size_t len);

/* The value of the key a + " " + b that was put with split == alen, or -1; no copy made. */
int32_t duet_bytemap_get_pair(const duet_bytemap *m, const char *a, size_t alen, const char *b,
                              size_t blen);

#endif
