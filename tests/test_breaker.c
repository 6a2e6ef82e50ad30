/* The circuit breaker: opens after the threshold of failures in a row, stays open for the
 * cooldown, lets exactly one probe through when half-open, and closes or re-opens on the
 * probe's outcome. Time is driven by hand. */
#include <criterion/criterion.h>

#include "breaker.h"

#define MS 1000000ull

static duet_breaker b;

static void setup(void)
{
    duet_breaker_options o = {.failure_threshold = 3, .cooldown_ms = 1000};
    duet_breaker_init(&b, &o);
}

static void teardown(void)
{
    duet_breaker_destroy(&b);
}

TestSuite(breaker, .init = setup, .fini = teardown);

Test(breaker, opens_after_the_threshold_in_a_row)
{
    uint64_t t = 5000 * MS;
    cr_assert(duet_breaker_allow(&b, t));
    duet_breaker_failure(&b, t);
    duet_breaker_failure(&b, t);
    cr_assert_eq(duet_breaker_state_at(&b, t), DUET_BREAKER_CLOSED, "2 of 3 failures");
    duet_breaker_success(&b); /* the run is broken: counting starts again */
    duet_breaker_failure(&b, t);
    duet_breaker_failure(&b, t);
    cr_assert(duet_breaker_allow(&b, t));
    duet_breaker_failure(&b, t);
    cr_assert_eq(duet_breaker_state_at(&b, t), DUET_BREAKER_OPEN);
    cr_assert_not(duet_breaker_allow(&b, t + 999 * MS), "still cooling down");
    cr_assert_eq(b.times_opened, 1);
    cr_assert_eq(b.total_failures, 5);
}

Test(breaker, half_open_lets_one_probe_through)
{
    uint64_t t = 5000 * MS;
    for (int i = 0; i < 3; i++) {
        duet_breaker_failure(&b, t);
    }
    uint64_t later = t + 1000 * MS;
    cr_assert_eq(duet_breaker_state_at(&b, later), DUET_BREAKER_HALF_OPEN);
    cr_assert(duet_breaker_allow(&b, later), "the probe");
    cr_assert_not(duet_breaker_allow(&b, later), "only one probe at a time");
    cr_assert_not(duet_breaker_allow(&b, later + 10 * MS));
    duet_breaker_success(&b);
    cr_assert_eq(duet_breaker_state_at(&b, later), DUET_BREAKER_CLOSED);
    cr_assert(duet_breaker_allow(&b, later));
    cr_assert(duet_breaker_allow(&b, later), "closed: everything flows");
}

Test(breaker, a_failed_probe_opens_it_again_for_a_full_cooldown)
{
    uint64_t t = 5000 * MS;
    for (int i = 0; i < 3; i++) {
        duet_breaker_failure(&b, t);
    }
    uint64_t probe = t + 1500 * MS;
    cr_assert(duet_breaker_allow(&b, probe));
    duet_breaker_failure(&b, probe); /* one failure is enough when half-open */
    cr_assert_eq(duet_breaker_state_at(&b, probe + 999 * MS), DUET_BREAKER_OPEN);
    cr_assert_not(duet_breaker_allow(&b, probe + 999 * MS));
    cr_assert(duet_breaker_allow(&b, probe + 1000 * MS));
    cr_assert_eq(b.times_opened, 2);
}

Test(breaker, names_and_a_zero_threshold)
{
    cr_assert_str_eq(duet_breaker_state_name(DUET_BREAKER_CLOSED), "closed");
    cr_assert_str_eq(duet_breaker_state_name(DUET_BREAKER_OPEN), "open");
    cr_assert_str_eq(duet_breaker_state_name(DUET_BREAKER_HALF_OPEN), "half-open");
    duet_breaker z;
    duet_breaker_options o = {.failure_threshold = 0, .cooldown_ms = 10};
    duet_breaker_init(&z, &o);
    duet_breaker_failure(&z, 1);
    cr_assert_eq(duet_breaker_state_at(&z, 1), DUET_BREAKER_OPEN, "0 means 1");
    duet_breaker_destroy(&z);
}

Test(breaker, a_failure_while_open_restarts_the_cooldown)
{
    uint64_t t = 5000 * MS;
    for (int i = 0; i < 3; i++) {
        duet_breaker_failure(&b, t);
    }
    duet_breaker_failure(&b, t + 800 * MS); /* a health check fails during the cooldown */
    cr_assert_eq(duet_breaker_state_at(&b, t + 1500 * MS), DUET_BREAKER_OPEN);
    cr_assert_eq(duet_breaker_state_at(&b, t + 1800 * MS), DUET_BREAKER_HALF_OPEN);
    cr_assert_eq(b.times_opened, 1, "extending is not opening again");
}
