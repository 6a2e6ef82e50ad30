/* A circuit breaker per worker: after failure_threshold failures in a row the worker is
 * skipped (OPEN) for cooldown_ms; then one request may probe it (HALF_OPEN): success closes
 * the breaker, failure opens it for another cooldown; a failure seen while open (a health
 * check) restarts the cooldown. Keeps the gateway from sending every
 * request into a worker that is down or overloaded, while noticing when it comes back.
 *
 * Time is passed in (monotonic nanoseconds), so the logic is testable without sleeping.
 * Thread-safe. */
#ifndef DUET_BREAKER_H
#define DUET_BREAKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum {
    DUET_BREAKER_CLOSED,    /* requests flow */
    DUET_BREAKER_OPEN,      /* skipped until the cooldown ends */
    DUET_BREAKER_HALF_OPEN, /* one probe request allowed */
} duet_breaker_state;

typedef struct {
    uint32_t failure_threshold; /* failures in a row that open it (>= 1) */
    uint32_t cooldown_ms;       /* how long it stays open before a probe */
} duet_breaker_options;

typedef struct {
    pthread_mutex_t lock;
    duet_breaker_options opt;
    duet_breaker_state state;
    uint32_t failures; /* in a row */
    uint64_t opened_ns;
    bool probing; /* HALF_OPEN: the probe is out */
    uint64_t total_failures, times_opened;
} duet_breaker;

void duet_breaker_init(duet_breaker *b, const duet_breaker_options *o);
void duet_breaker_destroy(duet_breaker *b);

/* May a request go to this worker now? OPEN turns HALF_OPEN once the cooldown has passed,
 * and then exactly one caller gets true (the probe) until it reports back. */
bool duet_breaker_allow(duet_breaker *b, uint64_t now_ns);

/* The outcome of an allowed request (or of a health check). */
void duet_breaker_success(duet_breaker *b);
void duet_breaker_failure(duet_breaker *b, uint64_t now_ns);

/* An allowed request ended with no verdict (the worker was busy): when it was the
 * half-open probe, the next request may probe instead. */
void duet_breaker_release_probe(duet_breaker *b);

/* The state as allow() would see it now, without taking the probe. */
duet_breaker_state duet_breaker_state_at(duet_breaker *b, uint64_t now_ns);

/* "closed", "open", "half-open". */
const char *duet_breaker_state_name(duet_breaker_state s);

#endif
