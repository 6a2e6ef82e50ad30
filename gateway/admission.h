/* The gateway's admission, checked before any worker is touched: token buckets on requests
 * and on prompt tokens, one pair per user and one pair for everyone. Over any of them the
 * request is refused with how long to wait (HTTP 429 with Retry-After); nothing is taken
 * from the buckets of a refused request, and one user's burst never spends another user's
 * allowance. Users are created on first use (they come from the configured API keys, so
 * their number is bounded). Thread-safe. */
#ifndef DUET_ADMISSION_H
#define DUET_ADMISSION_H

#include <stdbool.h>
#include <stdint.h>

#include "bucket.h"
#include "status.h"

typedef struct {
    double requests_per_second, request_burst; /* per bucket */
    double tokens_per_second, token_burst;     /* prompt tokens; 0 rate and burst: no limit */
} duet_admission_limits;

typedef struct duet_admission duet_admission;

/* Per-user and overall limits; clock (NULL: CLOCK_MONOTONIC) for tests. INVALID_ARGUMENT
 * for limits a bucket cannot have. */
duet_code duet_admission_new(const duet_admission_limits *per_user,
                             const duet_admission_limits *overall, duet_clock_fn clock,
                             void *clock_arg, duet_admission **out, duet_status *st);
void duet_admission_free(duet_admission *a);

/* Admits one request of prompt_tokens for user, or refuses it: RESOURCE_EXHAUSTED with the
 * limit named in st and *retry_after_ms set (UINT64_MAX: never, e.g. a prompt larger than
 * the token burst). */
duet_code duet_admission_take(duet_admission *a, const char *user, uint32_t prompt_tokens,
                              uint64_t *retry_after_ms, duet_status *st);

#endif
