/* One thread that runs callbacks at given monotonic times: call deadlines and reconnect
 * back-off, without a thread or an aio per call.
 *
 * Entries live in the caller's structures. Callbacks run on the timer thread, one at a
 * time, and must not block or arm/disarm from inside with the caller's own locks inverted. */
#ifndef DUET_TIMER_H
#define DUET_TIMER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct duet_timer duet_timer;

typedef struct duet_timer_entry {
    struct duet_timer_entry *prev, *next;
    uint64_t when_ns;
    void (*fn)(void *arg);
    void *arg;
    bool armed;
} duet_timer_entry;

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t duet_now_ns(void);

duet_timer *duet_timer_new(void);

/* Stops the thread; entries still armed are dropped without running. */
void duet_timer_free(duet_timer *t);

/* Schedules fn(arg) at when_ns (or at once if that has passed). The entry must not be armed. */
void duet_timer_arm(duet_timer *t, duet_timer_entry *e, uint64_t when_ns, void (*fn)(void *),
                    void *arg);

/* Unschedules e. True when it was still armed (fn will not run); false when fn already ran
 * or is running now. */
bool duet_timer_disarm(duet_timer *t, duet_timer_entry *e);

#endif
