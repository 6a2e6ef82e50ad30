/* Token bucket: admits work at a steady rate with room for short bursts.
 *
 * The bucket holds up to `burst` tokens and gains `rate_per_s` tokens per second. Taking
 * work costs tokens; when there are not enough the caller is told how long to wait, so
 * it can answer RESOURCE_EXHAUSTED / HTTP 429 with a Retry-After instead of queuing.
 *
 * Time comes from a clock function (monotonic nanoseconds) so tests can drive it.
 * Refill is computed from whole nanoseconds elapsed since the last update and the
 * timestamp advances exactly to "now", so no rounding error builds up however often the
 * bucket is touched. All functions are thread-safe; the clock is read under the
 * bucket's lock, so it must be cheap and must not call back into the bucket. */
#ifndef DUET_BUCKET_H
#define DUET_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

/* Monotonic time in nanoseconds. Must never go backwards for a given bucket (a clock
 * that does is tolerated: no refill happens until it passes its previous maximum). */
typedef uint64_t (*duet_clock_fn)(void *arg);

typedef struct duet_bucket duet_bucket;

/* A full bucket on CLOCK_MONOTONIC. rate_per_s must be finite and >= 0 (0: no refill),
 * burst finite and > 0; otherwise, or when out of memory, NULL. */
duet_bucket *duet_bucket_new(double rate_per_s, double burst);

/* Same, reading time from clock(clock_arg). */
duet_bucket *duet_bucket_new_with_clock(double rate_per_s, double burst, duet_clock_fn clock,
                                        void *clock_arg);

/* NULL is a no-op. No other thread may use the bucket any more. */
void duet_bucket_free(duet_bucket *b);

/* Takes n tokens if they are all there and returns true; otherwise takes nothing and
 * returns false, and when retry_after_ms is not NULL sets it to the milliseconds after
 * which n tokens will be there (rounded up, so a retry after that long succeeds if no one
 * else took tokens meanwhile); UINT64_MAX when that can never happen (n > burst, or the
 * rate is 0). n == 0 always succeeds; a negative or NaN n never does (UINT64_MAX). */
bool duet_bucket_take(duet_bucket *b, double n, uint64_t *retry_after_ms);

/* Tokens there right now (after refill), between 0 and burst. */
double duet_bucket_available(duet_bucket *b);

/* Changes rate and capacity from now on: tokens earned so far at the old rate are kept,
 * then clamped to the new burst. Values duet_bucket_new would refuse leave b unchanged. */
void duet_bucket_set_rate(duet_bucket *b, double rate_per_s, double burst);

/* CLOCK_MONOTONIC in nanoseconds; the argument is ignored. Usable as a duet_clock_fn. */
uint64_t duet_clock_monotonic_ns(void *unused);

#endif
