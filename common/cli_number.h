/* Numbers from command-line arguments: the whole argument must be the number, in range. */
#ifndef DUET_CLI_NUMBER_H
#define DUET_CLI_NUMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A decimal integer in [min, max]. */
bool duet_parse_long(const char *s, long min, long max, long *out);
bool duet_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);
/* A comma-separated list of 1 .. cap such numbers ("1,2,4,8"), each in [min, max]; *n
 * receives how many. */
bool duet_parse_u32_list(const char *s, uint32_t min, uint32_t max, uint32_t *out, size_t cap,
                         size_t *n);

/* A finite float. */
bool duet_parse_float(const char *s, float *out);

#endif
