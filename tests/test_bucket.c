/* Token bucket: fill, refusal, refill, Retry-After, clamping, drift and thread safety,
 * all on a simulated clock. */
#include <criterion/criterion.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>

#include "bucket.h"

#define MS UINT64_C(1000000)
#define SECOND UINT64_C(1000000000)

typedef struct {
    uint64_t now_ns;
} fake_clock;

static uint64_t fake_clock_read(void *arg)
{
    return ((fake_clock *)arg)->now_ns;
}

static duet_bucket *bucket_on(fake_clock *clock, double rate, double burst)
{
    duet_bucket *b = duet_bucket_new_with_clock(rate, burst, fake_clock_read, clock);
    cr_assert_not_null(b);
    return b;
}

Test(bucket, starts_full)
{
    fake_clock clock = {.now_ns = 5 * SECOND};
    duet_bucket *b = bucket_on(&clock, 2, 7);
    cr_assert_float_eq(duet_bucket_available(b), 7.0, 1e-12);
    duet_bucket_free(b);
}

Test(bucket, burst_then_refusal)
{
    fake_clock clock = {0};
    duet_bucket *b = bucket_on(&clock, 1, 5);
    for (int i = 0; i < 5; i++) {
        cr_assert(duet_bucket_take(b, 1, NULL), "take %d of the burst", i);
    }
    uint64_t retry = 0;
    cr_assert_not(duet_bucket_take(b, 1, &retry));
    cr_assert_eq(retry, 1000);
    cr_assert_float_eq(duet_bucket_available(b), 0.0, 1e-12);
    duet_bucket_free(b);
}

Test(bucket, refills_with_time)
{
    fake_clock clock = {0};
    duet_bucket *b = bucket_on(&clock, 10, 10);
    cr_assert(duet_bucket_take(b, 10, NULL));
    clock.now_ns += 250 * MS;
    cr_assert_float_eq(duet_bucket_available(b), 2.5, 1e-9);
    cr_assert(duet_bucket_take(b, 2, NULL));
    cr_assert_not(duet_bucket_take(b, 1, NULL));
    clock.now_ns += 50 * MS;
    cr_assert(duet_bucket_take(b, 1, NULL));
    duet_bucket_free(b);
}

Test(bucket, retry_after_is_rounded_up_and_enough)
{
    fake_clock clock = {0};
    duet_bucket *b = bucket_on(&clock, 3, 10);
    cr_assert(duet_bucket_take(b, 10, NULL));
    uint64_t retry = 0;
    /* 2 tokens at 3/s take 666.67 ms: rounded up to 667. */
    cr_assert_not(duet_bucket_take(b, 2, &retry));
    cr_assert_eq(retry, 667);
    clock.now_ns += 666 * MS;
    cr_assert_not(duet_bucket_take(b, 2, NULL), "one millisecond early must still be refused");
    clock.now_ns += 1 * MS;
    cr_assert(duet_bucket_take(b, 2, NULL));

    /* Waiting exactly retry_after always suffices, whatever the fractions. */
    double rates[] = {0.3, 1, 7.7, 13, 1000.5};
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
        duet_bucket_set_rate(b, rates[r], 10);
        for (double n = 0.1; n <= 10; n += 0.7) {
            while (duet_bucket_take(b, 10, NULL) || duet_bucket_take(b, 0.01, NULL)) {
            }
            clock.now_ns += 123457; /* leave a fraction in the bucket */
            if (duet_bucket_take(b, n, &retry)) {
                continue;
            }
            cr_assert_neq(retry, UINT64_MAX);
            clock.now_ns += retry * MS;
            cr_assert(duet_bucket_take(b, n, NULL), "rate %g n %g retry %llu ms", rates[r], n,
                      (unsigned long long)retry);
        }
    }
    duet_bucket_free(b);
}

Test(bucket, never_exceeds_burst_after_long_idle)
{
    fake_clock clock = {0};
    duet_bucket *b = bucket_on(&clock, 100, 4);
    cr_assert(duet_bucket_take(b, 3, NULL));
    clock.now_ns += 365 * 24 * 3600 * SECOND;
    cr_assert_float_eq(duet_bucket_available(b), 4.0, 1e-12);
    cr_assert(duet_bucket_take(b, 4, NULL));
    cr_assert_not(duet_bucket_take(b, 0.5, NULL));
    duet_bucket_free(b);
}

Test(bucket, more_than_burst_is_never_granted)
{
    fake_clock clock = {0};
    duet_bucket *b = bucket_on(&clock, 1000, 5);
    uint64_t retry = 0;
    cr_assert_not(duet_bucket_take(b, 5.5, &retry));
    cr_assert_eq(retry, UINT64_MAX);
    clock.now_ns += 1000 * SECOND;
    cr_assert_not(duet_bucket_take(b, 6, &retry));
    cr_assert_eq(retry, UINT64_MAX);
    cr_assert_float_eq(duet_bucket_available(b), 5.0, 1e-12, "a refused take takes nothing");
    cr_assert(duet_bucket_take(b, 5, NULL));
    duet_bucket_free(b);
}

Test(bucket, odd_amounts)
{
    fake_clock clock = {0};
    duet_bucket *b = bucket_on(&clock, 1, 2);
    uint64_t retry = 0;
    cr_assert(duet_bucket_take(b, 0, NULL));
    cr_assert_not(duet_bucket_take(b, -1, &retry));
    cr_assert_eq(retry, UINT64_MAX);
    cr_assert_not(duet_bucket_take(b, NAN, &retry));
    cr_assert_float_eq(duet_bucket_available(b), 2.0, 1e-12);
    duet_bucket_free(b);
}

Test(bucket, zero_rate_never_refills)
{
    fake_clock clock = {0};
    duet_bucket *b = bucket_on(&clock, 0, 3);
    cr_assert(duet_bucket_take(b, 3, NULL));
    clock.now_ns += 1000 * SECOND;
    uint64_t retry = 0;
    cr_assert_not(duet_bucket_take(b, 1, &retry));
    cr_assert_eq(retry, UINT64_MAX);
    duet_bucket_free(b);
}

Test(bucket, rejects_invalid_limits)
{
    cr_assert_null(duet_bucket_new(-1, 5));
    cr_assert_null(duet_bucket_new(1, 0));
    cr_assert_null(duet_bucket_new(NAN, 5));
    cr_assert_null(duet_bucket_new(1, INFINITY));
    cr_assert_null(duet_bucket_new_with_clock(1, 1, NULL, NULL));
    duet_bucket_free(NULL);
}

Test(bucket, set_rate_keeps_fill_and_clamps)
{
    fake_clock clock = {0};
    duet_bucket *b = bucket_on(&clock, 1, 10);
    cr_assert(duet_bucket_take(b, 6, NULL));
    clock.now_ns += 1 * SECOND; /* earned at the old rate: 4 + 1 = 5 */
    duet_bucket_set_rate(b, 100, 20);
    cr_assert_float_eq(duet_bucket_available(b), 5.0, 1e-9);
    clock.now_ns += 100 * MS; /* new rate: +10 */
    cr_assert_float_eq(duet_bucket_available(b), 15.0, 1e-9);
    duet_bucket_set_rate(b, 100, 3);
    cr_assert_float_eq(duet_bucket_available(b), 3.0, 1e-12);
    duet_bucket_set_rate(b, -5, 3); /* refused: unchanged */
    clock.now_ns += 10 * MS;
    cr_assert_float_eq(duet_bucket_available(b), 3.0, 1e-12);
    duet_bucket_free(b);
}

Test(bucket, backwards_clock_gives_nothing)
{
    fake_clock clock = {.now_ns = 10 * SECOND};
    duet_bucket *b = bucket_on(&clock, 1, 10);
    cr_assert(duet_bucket_take(b, 10, NULL));
    clock.now_ns = 5 * SECOND;
    cr_assert_float_eq(duet_bucket_available(b), 0.0, 1e-12);
    clock.now_ns = 11 * SECOND;
    cr_assert_float_eq(duet_bucket_available(b), 1.0, 1e-9);
    duet_bucket_free(b);
}

/* 10^7 irregular steps over 30 simulated days, taking whole tokens as soon as they are
 * there: everything granted must add up to burst + rate * T, to within one token. */
Test(bucket, no_drift_over_a_month_of_small_steps)
{
    const double rate = 7.3, burst = 5;
    const uint64_t steps = 10000000;
    const uint64_t span_ns = UINT64_C(30) * 24 * 3600 * SECOND;
    const uint64_t mean_step = span_ns / steps; /* ~0.26 s, well under burst / rate */
    fake_clock clock = {.now_ns = 42};
    duet_bucket *b = bucket_on(&clock, rate, burst);
    uint64_t start = clock.now_ns;
    uint64_t lcg = 12345;
    uint64_t granted = 0;
    while (duet_bucket_take(b, 1, NULL)) { /* the initial burst, before any refill */
        granted++;
    }
    for (uint64_t i = 0; i < steps; i++) {
        lcg = lcg * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
        clock.now_ns += 1 + (lcg >> 33) % (2 * mean_step); /* 1 ns .. ~0.52 s */
        while (duet_bucket_take(b, 1, NULL)) {
            granted++;
        }
    }
    double elapsed_s = (double)(clock.now_ns - start) / 1e9;
    double expected = burst + rate * elapsed_s;
    cr_assert_gt(elapsed_s, 25.0 * 24 * 3600);
    cr_assert(fabs((double)granted - expected) < 1.0, "granted %llu, expected %.3f",
              (unsigned long long)granted, expected);
    duet_bucket_free(b);
}

typedef struct {
    duet_bucket *bucket;
    int attempts;
    int granted;
} taker;

static void *take_many(void *arg)
{
    taker *t = arg;
    for (int i = 0; i < t->attempts; i++) {
        if (duet_bucket_take(t->bucket, 1, NULL)) {
            t->granted++;
        }
    }
    return NULL;
}

Test(bucket, concurrent_takers_share_exactly_the_burst)
{
    enum { THREADS = 8, ATTEMPTS = 20000 };
    fake_clock clock = {.now_ns = SECOND}; /* frozen: no refill */
    duet_bucket *b = bucket_on(&clock, 1000, 50000);
    pthread_t threads[THREADS];
    taker takers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        takers[i] = (taker){.bucket = b, .attempts = ATTEMPTS};
        cr_assert_eq(pthread_create(&threads[i], NULL, take_many, &takers[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        total += takers[i].granted;
    }
    cr_assert_eq(total, 50000);
    cr_assert_float_eq(duet_bucket_available(b), 0.0, 1e-12);
    duet_bucket_free(b);
}

Test(bucket, real_clock_moves_forward)
{
    uint64_t a = duet_clock_monotonic_ns(NULL);
    uint64_t c = duet_clock_monotonic_ns(NULL);
    cr_assert_geq(c, a);
    duet_bucket *b = duet_bucket_new(1, 1);
    cr_assert_not_null(b);
    cr_assert(duet_bucket_take(b, 1, NULL));
    uint64_t retry = 0;
    cr_assert_not(duet_bucket_take(b, 1, &retry));
    cr_assert_leq(retry, 1000);
    duet_bucket_free(b);
}
