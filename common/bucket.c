#include "bucket.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define NS_PER_S 1e9
#define NS_PER_MS UINT64_C(1000000)

struct duet_bucket {
    pthread_mutex_t lock;
    double rate_per_s;
    double burst;
    double tokens;
    uint64_t updated_ns; /* clock reading the tokens are valid for */
    duet_clock_fn clock;
    void *clock_arg;
};

static bool limits_valid(double rate_per_s, double burst)
{
    return isfinite(rate_per_s) && rate_per_s >= 0 && isfinite(burst) && burst > 0;
}

uint64_t duet_clock_monotonic_ns(void *unused)
{
    (void)unused;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

duet_bucket *duet_bucket_new_with_clock(double rate_per_s, double burst, duet_clock_fn clock,
                                        void *clock_arg)
{
    if (!limits_valid(rate_per_s, burst) || !clock) {
        return NULL;
    }
    duet_bucket *b = calloc(1, sizeof *b);
    if (!b) {
        return NULL;
    }
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        free(b);
        return NULL;
    }
    b->rate_per_s = rate_per_s;
    b->burst = burst;
    b->tokens = burst;
    b->clock = clock;
    b->clock_arg = clock_arg;
    b->updated_ns = clock(clock_arg);
    return b;
}

duet_bucket *duet_bucket_new(double rate_per_s, double burst)
{
    return duet_bucket_new_with_clock(rate_per_s, burst, duet_clock_monotonic_ns, NULL);
}

void duet_bucket_free(duet_bucket *b)
{
    if (!b) {
        return;
    }
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* Brings tokens up to the clock's now. Caller holds the lock. The timestamp moves to
 * exactly now (never by a rounded amount), so the sum of all refills equals
 * rate * (total elapsed time) up to one double rounding per call, relative to the fill. */
static void refill_locked(duet_bucket *b)
{
    uint64_t now = b->clock(b->clock_arg);
    if (now <= b->updated_ns) {
        return;
    }
    uint64_t elapsed_ns = now - b->updated_ns;
    b->updated_ns = now;
    if (b->tokens >= b->burst) {
        return;
    }
    double refill = (double)elapsed_ns * b->rate_per_s / NS_PER_S;
    b->tokens = fmin(b->burst, b->tokens + refill);
}

/* Milliseconds until tokens reach n at the current rate, rounded up and then checked
 * against the very formula refill_locked uses, so waiting that long is always enough. */
static uint64_t wait_ms_locked(const duet_bucket *b, double n)
{
    if (n > b->burst || b->rate_per_s <= 0) {
        return UINT64_MAX;
    }
    double deficit = n - b->tokens;
    double ms = ceil(deficit * 1000.0 / b->rate_per_s);
    if (!(ms < (double)(UINT64_MAX / NS_PER_MS))) {
        return UINT64_MAX;
    }
    uint64_t wait = (uint64_t)ms;
    while (b->tokens + (double)(wait * NS_PER_MS) * b->rate_per_s / NS_PER_S < n) {
        wait++;
    }
    return wait;
}

bool duet_bucket_take(duet_bucket *b, double n, uint64_t *retry_after_ms)
{
    if (!(n >= 0)) {
        if (retry_after_ms) {
            *retry_after_ms = UINT64_MAX;
        }
        return false;
    }
    pthread_mutex_lock(&b->lock);
    refill_locked(b);
    bool granted = n <= b->tokens;
    if (granted) {
        b->tokens -= n;
    } else if (retry_after_ms) {
        *retry_after_ms = wait_ms_locked(b, n);
    }
    pthread_mutex_unlock(&b->lock);
    return granted;
}

double duet_bucket_available(duet_bucket *b)
{
    pthread_mutex_lock(&b->lock);
    refill_locked(b);
    double tokens = b->tokens;
    pthread_mutex_unlock(&b->lock);
    return tokens;
}

void duet_bucket_set_rate(duet_bucket *b, double rate_per_s, double burst)
{
    if (!limits_valid(rate_per_s, burst)) {
        return;
    }
    pthread_mutex_lock(&b->lock);
    refill_locked(b);
    b->rate_per_s = rate_per_s;
    b->burst = burst;
    b->tokens = fmin(b->tokens, burst);
    pthread_mutex_unlock(&b->lock);
}
