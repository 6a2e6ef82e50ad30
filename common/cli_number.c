#include "cli_number.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

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
