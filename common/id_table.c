#include "id_table.h"

#include <stdlib.h>

#define TOMBSTONE ((void *)&tombstone_marker)
static const char tombstone_marker;

static size_t slot_of(uint64_t id, size_t cap)
{
    id ^= id >> 33; /* ids are sequential: spread them */
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id & (cap - 1);
}

void duet_id_table_init(duet_id_table *t)
{
    t->keys = NULL;
    t->values = NULL;
    t->cap = 0;
    t->count = 0;
    t->tombstones = 0;
}

void duet_id_table_fini(duet_id_table *t)
{
    free(t->keys);
    free(t->values);
    duet_id_table_init(t);
}

static bool rehash(duet_id_table *t, size_t cap)
{
    uint64_t *keys = calloc(cap, sizeof *keys);
    void **values = calloc(cap, sizeof *values);
    if (!keys || !values) {
        free(keys);
        free(values);
        return false;
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (t->keys[i] && t->values[i] != TOMBSTONE) {
            size_t s = slot_of(t->keys[i], cap);
            while (keys[s]) {
                s = (s + 1) & (cap - 1);
            }
            keys[s] = t->keys[i];
            values[s] = t->values[i];
        }
    }
    free(t->keys);
    free(t->values);
    t->keys = keys;
    t->values = values;
    t->cap = cap;
    t->tombstones = 0;
    return true;
}

void *duet_id_table_get(const duet_id_table *t, uint64_t id)
{
    if (!id || !t->cap) {
        return NULL;
    }
    for (size_t s = slot_of(id, t->cap);; s = (s + 1) & (t->cap - 1)) {
        if (!t->keys[s]) {
            return NULL;
        }
        if (t->keys[s] == id && t->values[s] != TOMBSTONE) {
            return t->values[s];
        }
    }
}

bool duet_id_table_put(duet_id_table *t, uint64_t id, void *value)
{
    if (!id || duet_id_table_get(t, id)) {
        return false;
    }
    if ((t->count + t->tombstones + 1) * 4 > t->cap * 3) {
        size_t cap = t->cap ? t->cap : 16;
        while ((t->count + 1) * 2 > cap) {
            cap *= 2;
        }
        if (!rehash(t, cap)) {
            return false;
        }
    }
    size_t s = slot_of(id, t->cap);
    while (t->keys[s] && t->values[s] != TOMBSTONE) {
        s = (s + 1) & (t->cap - 1);
    }
    if (t->keys[s]) {
        t->tombstones--;
    }
    t->keys[s] = id;
    t->values[s] = value;
    t->count++;
    return true;
}

void *duet_id_table_remove(duet_id_table *t, uint64_t id)
{
    if (!id || !t->cap) {
        return NULL;
    }
    for (size_t s = slot_of(id, t->cap);; s = (s + 1) & (t->cap - 1)) {
        if (!t->keys[s]) {
            return NULL;
        }
        if (t->keys[s] == id && t->values[s] != TOMBSTONE) {
            void *v = t->values[s];
            t->values[s] = TOMBSTONE;
            t->count--;
            t->tombstones++;
            return v;
        }
    }
}

void duet_id_table_each(const duet_id_table *t, void (*fn)(uint64_t id, void *value, void *arg),
                        void *arg)
{
    for (size_t i = 0; i < t->cap; i++) {
        if (t->keys[i] && t->values[i] != TOMBSTONE) {
            fn(t->keys[i], t->values[i], arg);
        }
    }
}
