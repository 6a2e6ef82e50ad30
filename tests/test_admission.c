/* Gateway admission on a hand-driven clock: a user's burst is refused past their bucket
 * with the wait named, another user is unaffected, the overall bucket caps everyone, prompt
 * tokens are limited like requests, and a refused request takes nothing from any bucket. */
#include <criterion/criterion.h>

#include <string.h>

#include "admission.h"

static uint64_t now_ns = 1000000000ull;

static uint64_t fake_clock(void *arg)
{
    (void)arg;
    return now_ns;
}

static duet_admission *make(double user_rps, double user_burst, double all_rps, double all_burst,
                            double user_tps, double user_tburst)
{
    duet_admission_limits per_user = {user_rps, user_burst, user_tps, user_tburst};
    duet_admission_limits overall = {all_rps, all_burst, 0, 0};
    duet_admission *a;
    duet_status st;
    cr_assert_eq(duet_admission_new(&per_user, &overall, fake_clock, NULL, &a, &st), DUET_OK, "%s",
                 st.message);
    return a;
}

static duet_code take(duet_admission *a, const char *user, uint32_t tokens, uint64_t *wait,
                      duet_status *st)
{
    return duet_admission_take(a, user, tokens, wait, st);
}

Test(admission, a_users_burst_is_refused_and_another_user_is_not)
{
    duet_admission *a = make(1, 3, 1000, 1000, 0, 0);
    uint64_t wait;
    duet_status st;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(take(a, "alice", 10, &wait, &st), DUET_OK, "request %d", i);
    }
    cr_assert_eq(take(a, "alice", 10, &wait, &st), DUET_RESOURCE_EXHAUSTED);
    cr_assert_eq(wait, 1000, "one request a second: %llu ms", (unsigned long long)wait);
    cr_assert(strstr(st.message, "your requests per second"), "%s", st.message);
    cr_assert_eq(take(a, "bob", 10, &wait, &st), DUET_OK, "bob has his own bucket");
    now_ns += 1000000000ull;
    cr_assert_eq(take(a, "alice", 10, &wait, &st), DUET_OK, "refilled after the wait");
    duet_admission_free(a);
}

Test(admission, the_overall_bucket_caps_everyone)
{
    duet_admission *a = make(100, 100, 1, 2, 0, 0);
    uint64_t wait;
    duet_status st;
    cr_assert_eq(take(a, "u1", 1, &wait, &st), DUET_OK);
    cr_assert_eq(take(a, "u2", 1, &wait, &st), DUET_OK);
    cr_assert_eq(take(a, "u3", 1, &wait, &st), DUET_RESOURCE_EXHAUSTED);
    cr_assert(strstr(st.message, "the gateway's requests"), "%s", st.message);
    duet_admission_free(a);
}

Test(admission, prompt_tokens_are_limited_and_refusals_take_nothing)
{
    duet_admission *a = make(100, 100, 100, 100, 100, 1000);
    uint64_t wait;
    duet_status st;
    cr_assert_eq(take(a, "alice", 900, &wait, &st), DUET_OK);
    cr_assert_eq(take(a, "alice", 200, &wait, &st), DUET_RESOURCE_EXHAUSTED);
    cr_assert(strstr(st.message, "prompt tokens"), "%s", st.message);
    cr_assert_eq(wait, 1000, "100 more tokens at 100/s: %llu ms", (unsigned long long)wait);
    /* the refused request took no request token either: 99 more requests of 1 token fit */
    cr_assert_eq(take(a, "alice", 100, &wait, &st), DUET_OK);
    cr_assert_eq(take(a, "alice", 5000, &wait, &st), DUET_RESOURCE_EXHAUSTED);
    cr_assert_eq(wait, UINT64_MAX, "larger than the burst: never");
    cr_assert(strstr(st.message, "never"), "%s", st.message);
    duet_admission_free(a);
}

Test(admission, impossible_limits_are_refused)
{
    duet_admission_limits bad = {1, 0, 0, 0}, ok = {1, 1, 0, 0};
    duet_admission *a;
    duet_status st;
    cr_assert_eq(duet_admission_new(&bad, &ok, NULL, NULL, &a, &st), DUET_INVALID_ARGUMENT);
    cr_assert_eq(duet_admission_new(&ok, &bad, NULL, NULL, &a, &st), DUET_INVALID_ARGUMENT);
}
