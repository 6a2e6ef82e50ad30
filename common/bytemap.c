#include "bytemap.h"

#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * FNV_PRIME;
    }
    return h;
}

/* FNV alone clusters in the low bits for short keys; a final mix spreads them. */
static uint64_t finish(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

duet_code duet_bytemap_init(duet_bytemap *m, size_t expected, duet_status *st)
{
    size_t cap = 16;
    while (cap < expected * 2) {
        cap <<= 1;
    }
    m->slots = calloc(cap, sizeof *m->slots);
    m->cap = cap;
    m->count = 0;
    if (!m->slots) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory for a %zu-slot map",
                               cap);
    }
    return DUET_OK;
}

void duet_bytemap_free(duet_bytemap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

static void insert_slot(duet_bytemap_slot *slots, size_t cap, const duet_bytemap_slot *s)
{
    size_t i = (size_t)s->hash & (cap - 1);
    while (slots[i].key) {
        i = (i + 1) & (cap - 1);
    }
    slots[i] = *s;
}

static duet_code grow(duet_bytemap *m, duet_status *st)
{
    size_t cap = m->cap * 2;
    duet_bytemap_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory growing a map");
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key) {
            insert_slot(slots, cap, &m->slots[i]);
        }
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return DUET_OK;
}

duet_code duet_bytemap_put(duet_bytemap *m, const char *key, size_t len, uint32_t split,
                           int32_t value, bool replace, duet_status *st)
{
    if (len > UINT32_MAX) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "map key of %zu bytes is too long", len);
    }
    uint64_t h = finish(fnv(FNV_OFFSET, key, len));
    for (size_t i = (size_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        duet_bytemap_slot *s = &m->slots[i];
        if (!s->key) {
            break;
        }
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
            if (replace) {
                s->value = value;
                s->split = split;
            }
            return DUET_OK;
        }
    }
    if ((m->count + 1) * 2 > m->cap) {
        duet_code c = grow(m, st);
        if (c != DUET_OK) {
            return c;
        }
    }
    /* An empty key still needs a non-NULL pointer to mark the slot used. */
    duet_bytemap_slot s = {key ? key : "", (uint32_t)len, split, h, value};
    insert_slot(m->slots, m->cap, &s);
    m->count++;
    return DUET_OK;
}

int32_t duet_bytemap_get(const duet_bytemap *m, const char *key, size_t len)
{
    uint64_t h = finish(fnv(FNV_OFFSET, key, len));
    for (size_t i = (size_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const duet_bytemap_slot *s = &m->slots[i];
        if (!s->key) {
            return -1;
        }
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
            return s->value;
        }
    }
}

int32_t duet_bytemap_get_pair(const duet_bytemap *m, const char *a, size_t alen, const char *b,
                              size_t blen)
{
    uint64_t h = fnv(FNV_OFFSET, a, alen);
    h = fnv(h, " ", 1);
    h = finish(fnv(h, b, blen));
    size_t len = alen + 1 + blen;
    for (size_t i = (size_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const duet_bytemap_slot *s = &m->slots[i];
        if (!s->key) {
            return -1;
        }
        if (s->hash == h && s->len == len && s->split == alen && memcmp(s->key, a, alen) == 0 &&
            memcmp(s->key + alen + 1, b, blen) == 0) {
            return s->value;
        }
    }
}
