/* A map from 64-bit call ids to pointers (open addressing, grows by doubling).
 * Not thread-safe: the owner locks around it. */
#ifndef DUET_ID_TABLE_H
#define DUET_ID_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t *keys; /* 0 = empty slot (id 0 is never stored) */
    void **values;
    size_t cap; /* a power of two */
    size_t count;
    size_t tombstones;
} duet_id_table;

void duet_id_table_init(duet_id_table *t);
void duet_id_table_fini(duet_id_table *t);

/* False when id is 0 or already present, or memory ran out. */
bool duet_id_table_put(duet_id_table *t, uint64_t id, void *value);
void *duet_id_table_get(const duet_id_table *t, uint64_t id);
/* Returns the removed value, NULL when absent. */
void *duet_id_table_remove(duet_id_table *t, uint64_t id);

/* Calls fn for each entry; fn must not change the table. */
void duet_id_table_each(const duet_id_table *t, void (*fn)(uint64_t id, void *value, void *arg),
                        void *arg);

#endif
