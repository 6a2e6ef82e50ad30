/* Before loading: is there memory for the model? A model larger than what the machine can
 * give would load into a thrashing or OOM-killed process, so the worker refuses it up front
 * with the numbers and the way to override.
 *
 * Needed: file size × factor (DUET_MEMORY_FACTOR_DEFAULT, 1.2: the mapping plus working
 * buffers) + extra bytes (the KV cache budget and the like). Available: MemAvailable from
 * /proc/meminfo, and — when the process sits in a cgroup v2 with a memory.max — the
 * smallest room left under any limit up its hierarchy: memory.max − memory.current, plus the
 * group's inactive file cache, which the kernel reclaims before it would refuse. What cannot
 * be read does not limit (no /proc, no cgroup v2 files): the check then passes rather than
 * guess. cgroup v1 limits are not read. */
#ifndef DUET_MEMORY_CHECK_H
#define DUET_MEMORY_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"

#define DUET_MEMORY_FACTOR_DEFAULT 1.2
/* The worker's option that sets the factor; refusals name it. */
#define DUET_MEMORY_FACTOR_OPTION "--memory-factor"

typedef struct {
    uint64_t mem_available; /* bytes; UINT64_MAX when unknown */
    uint64_t cgroup_room;   /* bytes; UINT64_MAX when no limit applies */
    uint64_t cgroup_max;    /* the limit that gives cgroup_room (for the message) */
} duet_memory_room;

/* Refuses with RESOURCE_EXHAUSTED when file_bytes × factor + extra_bytes exceeds what the
 * machine has; the message names both figures (MiB/GiB) and DUET_MEMORY_FACTOR_OPTION.
 * factor 0 skips the check; a negative or NaN factor is INVALID_ARGUMENT. */
duet_code duet_loader_check_memory(uint64_t file_bytes, double factor, uint64_t extra_bytes,
                                   duet_status *st);

/* The same check against given room (for tests, and callers that read it once). */
duet_code duet_loader_check_memory_in(const duet_memory_room *room, uint64_t file_bytes,
                                      double factor, uint64_t extra_bytes, duet_status *st);

/* Reads the room from /proc/meminfo and the process's cgroup v2 files. */
void duet_memory_room_read(duet_memory_room *room);

/* MemAvailable from the text of /proc/meminfo, in bytes; false when absent. */
bool duet_meminfo_available(const char *meminfo, uint64_t *bytes);

/* Room under one cgroup v2 level from its memory.max, memory.current and memory.stat texts
 * (stat may be NULL); false when memory.max is "max" or unreadable. */
bool duet_cgroup_room(const char *max_text, const char *current_text, const char *stat_text,
                      uint64_t *room, uint64_t *max);

#endif
