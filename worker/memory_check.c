#include "memory_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"

#define CGROUP_ROOT "/sys/fs/cgroup"

/* Parses a decimal number at the start of s (after blanks); false when there is none. */
static bool parse_u64(const char *s, uint64_t *out)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    if (*s < '0' || *s > '9') {
        return false;
    }
    *out = (uint64_t)strtoull(s, NULL, 10);
    return true;
}

/* The number after "key" at the start of a line of text. */
static bool find_field(const char *text, const char *key, uint64_t *out)
{
    size_t klen = strlen(key);
    for (const char *line = text; *line;) {
        if (strncmp(line, key, klen) == 0) {
            return parse_u64(line + klen, out);
        }
        const char *nl = strchr(line, '\n');
        if (!nl) {
            break;
        }
        line = nl + 1;
    }
    return false;
}

bool duet_meminfo_available(const char *meminfo, uint64_t *bytes)
{
    uint64_t kib;
    if (!meminfo || !find_field(meminfo, "MemAvailable:", &kib)) {
        return false;
    }
    *bytes = kib * 1024; /* /proc/meminfo's "kB" are KiB */
    return true;
}

bool duet_cgroup_room(const char *max_text, const char *current_text, const char *stat_text,
                      uint64_t *room, uint64_t *max)
{
    uint64_t limit, current, inactive = 0;
    if (!max_text || !current_text || !parse_u64(max_text, &limit) ||
        !parse_u64(current_text, &current)) {
        return false; /* "max": no limit here */
    }
    if (stat_text) {
        find_field(stat_text, "inactive_file ", &inactive);
    }
    uint64_t used = current > inactive ? current - inactive : 0;
    *room = limit > used ? limit - used : 0;
    *max = limit;
    return true;
}

static bool read_text(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return false;
    }
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0;
}

/* Tightest limit from the process's cgroup up to the root of the hierarchy. */
static void read_cgroup_room(duet_memory_room *room)
{
    char self[4096], dir[4096 + sizeof CGROUP_ROOT];
    if (!read_text("/proc/self/cgroup", self, sizeof self)) {
        return;
    }
    const char *v2 = strstr(self, "0::"); /* the unified hierarchy's line */
    if (!v2 || (v2 != self && v2[-1] != '\n')) {
        return;
    }
    v2 += 3;
    size_t len = strcspn(v2, "\n");
    while (len > 0 && v2[len - 1] == '/') {
        len--; /* "0::/" is the root itself */
    }
    snprintf(dir, sizeof dir, "%s%.*s", CGROUP_ROOT, (int)len, v2);
    for (;;) {
        char path[sizeof dir + 32];
        char max_text[64], current_text[64], stat_text[16384];
        snprintf(path, sizeof path, "%s/memory.max", dir);
        bool have_max = read_text(path, max_text, sizeof max_text);
        snprintf(path, sizeof path, "%s/memory.current", dir);
        bool have_current = read_text(path, current_text, sizeof current_text);
        snprintf(path, sizeof path, "%s/memory.stat", dir);
        bool have_stat = read_text(path, stat_text, sizeof stat_text);
        uint64_t r, max;
        if (have_max && have_current &&
            duet_cgroup_room(max_text, current_text, have_stat ? stat_text : NULL, &r, &max) &&
            r < room->cgroup_room) {
            room->cgroup_room = r;
            room->cgroup_max = max;
        }
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < strlen(CGROUP_ROOT)) {
            break;
        }
        *slash = '\0';
    }
}

void duet_memory_room_read(duet_memory_room *room)
{
    room->mem_available = UINT64_MAX;
    room->cgroup_room = UINT64_MAX;
    room->cgroup_max = 0;
    char meminfo[16384];
    uint64_t avail;
    if (read_text("/proc/meminfo", meminfo, sizeof meminfo) &&
        duet_meminfo_available(meminfo, &avail)) {
        room->mem_available = avail;
    }
    read_cgroup_room(room);
}

duet_code duet_loader_check_memory_in(const duet_memory_room *room, uint64_t file_bytes,
                                      double factor, uint64_t extra_bytes, duet_status *st)
{
    if (!(factor >= 0) || isinf(factor)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "%s must be a number >= 0 (0 skips the memory check)",
                               DUET_MEMORY_FACTOR_OPTION);
    }
    if (factor == 0) {
        return DUET_OK;
    }
    double need_d = (double)file_bytes * factor + (double)extra_bytes;
    uint64_t need = need_d >= 1.8e19 ? UINT64_MAX : (uint64_t)need_d;
    bool cgroup_tighter = room->cgroup_room < room->mem_available;
    uint64_t have = cgroup_tighter ? room->cgroup_room : room->mem_available;
    if (need <= have) {
        return DUET_OK;
    }
    char n[32], h[32], f[32], x[32], lim[32], where[96];
    if (cgroup_tighter) {
        snprintf(where, sizeof where, "under the cgroup's memory.max of %s",
                 duet_format_bytes(lim, sizeof lim, room->cgroup_max));
    } else {
        snprintf(where, sizeof where, "(MemAvailable in /proc/meminfo)");
    }
    return duet_status_set(
        st, DUET_RESOURCE_EXHAUSTED,
        "the model needs about %s (%s file x %.2f + %s extra) but only %s is "
        "available %s; free memory, use a smaller model, or lower %s "
        "(now %.2f; 0 skips this check)",
        duet_format_bytes(n, sizeof n, need), duet_format_bytes(f, sizeof f, file_bytes), factor,
        duet_format_bytes(x, sizeof x, extra_bytes), duet_format_bytes(h, sizeof h, have), where,
        DUET_MEMORY_FACTOR_OPTION, factor);
}

duet_code duet_loader_check_memory(uint64_t file_bytes, double factor, uint64_t extra_bytes,
                                   duet_status *st)
{
    duet_memory_room room;
    duet_memory_room_read(&room);
    return duet_loader_check_memory_in(&room, file_bytes, factor, extra_bytes, st);
}
