#include "cli_number.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

bool duet_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

bool duet_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    long v;
    if (!duet_parse_long(s, (long)min, (long)max, &v)) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

bool duet_parse_u32_list(const char *s, uint32_t min, uint32_t max, uint32_t *out, size_t cap,
                         size_t *n)
{
    size_t count = 0;
    const char *p = s;
    for (;;) {
        size_t len = strcspn(p, ",");
        char item[24];
        if (count == cap || len == 0 || len >= sizeof item) {
            return false;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (!duet_parse_u32(item, min, max, &out[count++])) {
            return false;
        }
        if (p[len] == '\0') {
            break;
        }
        p += len + 1;
    }
    *n = count;
    return true;
}

bool duet_parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        return false;
    }
    *out = v;
    return true;
}
