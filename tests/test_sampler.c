/* Sampler: greedy, seeds, each filter and the order of the chain (checked on empirical
 * frequencies against the distribution llama.cpp's chain defines), penalties, large
 * vocabularies, end-of-generation ids and stop strings. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sampler.h"

static duet_sampler_params params_off(void)
{
    /* every filter off, temperature 1, fixed seed */
    duet_sampler_params p = duet_sampler_params_default();
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.has_seed = true;
    p.seed = 1234;
    return p;
}

static duet_sampler *make(const duet_sampler_params *p, int32_t vocab)
{
    duet_sampler *s = NULL;
    duet_status st;
    cr_assert_eq(duet_sampler_new(p, vocab, &s, &st), DUET_OK, "%s", st.message);
    cr_assert_not_null(s);
    return s;
}

/* Logits whose softmax is exactly probs (up to a constant). */
static void logits_from_probs(const double *probs, float *logits, int n)
{
    for (int i = 0; i < n; i++) {
        logits[i] = probs[i] > 0 ? (float)log(probs[i]) : -INFINITY;
    }
}

static void frequencies(duet_sampler *s, const float *logits, int n, int draws, double *freq)
{
    for (int i = 0; i < n; i++) {
        freq[i] = 0;
    }
    for (int d = 0; d < draws; d++) {
        int32_t id = duet_sampler_sample(s, logits);
        cr_assert(id >= 0 && id < n, "id %d out of range", id);
        freq[id] += 1.0 / draws;
    }
}

/* Loose bounds: 20000 draws give a standard deviation under 0.0036, the bound is 0.02. */
#define DRAWS 20000
#define TOL 0.02

static void expect_distribution(const double *freq, const double *want, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        if (want[i] == 0) {
            cr_expect_eq(freq[i], 0.0, "%s: token %d must never be drawn (%.4f)", what, i, freq[i]);
        } else {
            cr_expect(fabs(freq[i] - want[i]) < TOL, "%s: token %d drawn %.4f, want %.4f", what, i,
                      freq[i], want[i]);
        }
    }
}

static uint64_t lcg_state = 42;
static float rand_logit(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(lcg_state >> 11) * 0x1.0p-53 * 20.0 - 10.0);
}

/* ---- greedy ---- */

Test(sampler, greedy_picks_argmax_with_ties_to_lowest_id)
{
    duet_sampler_params p = duet_sampler_params_default(); /* filters on: they must not matter */
    p.temperature = 0.0f;
    duet_sampler *s = make(&p, 1000);
    float logits[1000];
    for (int round = 0; round < 50; round++) {
        int best = 0;
        for (int i = 0; i < 1000; i++) {
            logits[i] = rand_logit();
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        cr_expect_eq(duet_sampler_sample(s, logits), best, "round %d", round);
    }
    for (int i = 0; i < 1000; i++) {
        logits[i] = 0.0f;
    }
    logits[700] = 3.0f;
    logits[3] = 3.0f;
    logits[999] = 3.0f;
    cr_expect_eq(duet_sampler_sample(s, logits), 3);
    duet_sampler_free(s);
}

Test(sampler, top_k_1_equals_greedy)
{
    duet_sampler_params p = params_off();
    p.top_k = 1;
    p.temperature = 1.5f;
    duet_sampler *s = make(&p, 500);
    float logits[500];
    for (int round = 0; round < 200; round++) {
        int best = 0;
        for (int i = 0; i < 500; i++) {
            logits[i] = rand_logit() * 0.01f; /* nearly flat: sampling would wander */
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        cr_expect_eq(duet_sampler_sample(s, logits), best, "round %d", round);
    }
    duet_sampler_free(s);
}

/* ---- seeds ---- */

Test(sampler, same_seed_same_choices_other_seed_differs)
{
    duet_sampler_params p = params_off();
    float logits[64];
    for (int i = 0; i < 64; i++) {
        logits[i] = 0.05f * (float)(i % 7);
    }
    int32_t a[300], b[300], c[300];
    duet_sampler *s1 = make(&p, 64);
    duet_sampler *s2 = make(&p, 64);
    p.seed = 1235;
    duet_sampler *s3 = make(&p, 64);
    for (int i = 0; i < 300; i++) {
        a[i] = duet_sampler_sample(s1, logits);
        b[i] = duet_sampler_sample(s2, logits);
        c[i] = duet_sampler_sample(s3, logits);
    }
    cr_expect_arr_eq(a, b, sizeof a, "same seed, different choices");
    int same = 0;
    for (int i = 0; i < 300; i++) {
        same += a[i] == c[i];
    }
    cr_expect_lt(same, 50, "seeds 1234 and 1235 agree on %d of 300 draws", same);

    /* reset restarts the sequence */
    duet_sampler_reset(s1);
    for (int i = 0; i < 300; i++) {
        cr_expect_eq(duet_sampler_sample(s1, logits), a[i], "after reset, draw %d", i);
    }
    cr_expect_eq(duet_sampler_seed(s1), 1234u);
    duet_sampler_free(s1);
    duet_sampler_free(s2);
    duet_sampler_free(s3);
}

/* The draws depend only on duet's own generator and exp(): these exact ids must come out on
 * every machine and compiler. */
Test(sampler, seeded_draws_are_the_same_everywhere)
{
    duet_sampler_params p = params_off();
    p.seed = 20240601;
    p.temperature = 0.7f;
    p.top_k = 8;
    p.top_p = 0.9f;
    p.min_p = 0.02f;
    duet_sampler *s = make(&p, 32);
    float logits[32];
    for (int i = 0; i < 32; i++) {
        logits[i] = (float)((i * 7) % 32) * 0.125f;
    }
    static const int32_t want[] = {18, 27, 22, 27, 4,  18, 9,  27, 22, 18, 18, 18,
                                   18, 9,  22, 4,  27, 18, 18, 13, 4,  9,  9,  4};
    int32_t got[sizeof want / sizeof want[0]];
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        got[i] = duet_sampler_sample(s, logits);
    }
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_expect_eq(got[i], want[i], "draw %zu: %d, want %d", i, got[i], want[i]);
    }
    duet_sampler_free(s);
}

Test(sampler, random_seed_when_none_given)
{
    duet_sampler_params p = params_off();
    p.has_seed = false;
    duet_sampler *s1 = make(&p, 8);
    duet_sampler *s2 = make(&p, 8);
    cr_expect_neq(duet_sampler_seed(s1), duet_sampler_seed(s2));
    duet_sampler_free(s1);
    duet_sampler_free(s2);
}

/* ---- temperature and each filter ---- */

Test(sampler, temperature_one_follows_softmax)
{
    duet_sampler_params p = params_off();
    duet_sampler *s = make(&p, 3);
    double probs[3] = {1.0 / 7, 2.0 / 7, 4.0 / 7}, freq[3];
    float logits[3];
    logits_from_probs(probs, logits, 3);
    frequencies(s, logits, 3, DRAWS, freq);
    expect_distribution(freq, probs, 3, "T=1");
    duet_sampler_free(s);
}

Test(sampler, temperature_two_flattens)
{
    duet_sampler_params p = params_off();
    p.temperature = 2.0f;
    duet_sampler *s = make(&p, 3);
    double probs[3] = {1.0 / 7, 2.0 / 7, 4.0 / 7}, freq[3];
    float logits[3];
    logits_from_probs(probs, logits, 3);
    /* p^(1/2), normalised: 1 : sqrt 2 : 2 */
    double z = 1 + sqrt(2.0) + 2;
    double want[3] = {1 / z, sqrt(2.0) / z, 2 / z};
    frequencies(s, logits, 3, DRAWS, freq);
    expect_distribution(freq, want, 3, "T=2");
    duet_sampler_free(s);
}

/* probabilities 0.5, 0.3, 0.15, 0.05 on ids 2, 0, 3, 1: the filters must sort */
static const double four[4] = {0.3, 0.05, 0.5, 0.15};

Test(sampler, top_k_keeps_the_k_best)
{
    duet_sampler_params p = params_off();
    p.top_k = 2;
    duet_sampler *s = make(&p, 4);
    float logits[4];
    double freq[4];
    logits_from_probs(four, logits, 4);
    frequencies(s, logits, 4, DRAWS, freq);
    double want[4] = {0.3 / 0.8, 0, 0.5 / 0.8, 0};
    expect_distribution(freq, want, 4, "top_k=2");
    duet_sampler_free(s);
}

Test(sampler, top_p_keeps_the_nucleus)
{
    duet_sampler_params p = params_off();
    float logits[4];
    double freq[4];
    logits_from_probs(four, logits, 4);

    p.top_p = 0.75f; /* 0.5 + 0.3 reaches it */
    duet_sampler *s = make(&p, 4);
    frequencies(s, logits, 4, DRAWS, freq);
    double want2[4] = {0.3 / 0.8, 0, 0.5 / 0.8, 0};
    expect_distribution(freq, want2, 4, "top_p=0.75");
    duet_sampler_free(s);

    p.top_p = 0.9f; /* needs the 0.15 too */
    s = make(&p, 4);
    frequencies(s, logits, 4, DRAWS, freq);
    double want3[4] = {0.3 / 0.95, 0, 0.5 / 0.95, 0.15 / 0.95};
    expect_distribution(freq, want3, 4, "top_p=0.9");
    duet_sampler_free(s);

    p.top_p = 0.0f; /* only the best */
    s = make(&p, 4);
    frequencies(s, logits, 4, 2000, freq);
    double want1[4] = {0, 0, 1, 0};
    expect_distribution(freq, want1, 4, "top_p=0");
    duet_sampler_free(s);
}

Test(sampler, min_p_drops_tokens_below_a_fraction_of_the_best)
{
    duet_sampler_params p = params_off();
    float logits[4];
    double freq[4];
    logits_from_probs(four, logits, 4);

    p.min_p = 0.2f; /* keeps p >= 0.1: drops the 0.05 */
    duet_sampler *s = make(&p, 4);
    frequencies(s, logits, 4, DRAWS, freq);
    double want3[4] = {0.3 / 0.95, 0, 0.5 / 0.95, 0.15 / 0.95};
    expect_distribution(freq, want3, 4, "min_p=0.2");
    duet_sampler_free(s);

    p.min_p = 0.5f; /* keeps p >= 0.25 */
    s = make(&p, 4);
    frequencies(s, logits, 4, DRAWS, freq);
    double want2[4] = {0.3 / 0.8, 0, 0.5 / 0.8, 0};
    expect_distribution(freq, want2, 4, "min_p=0.5");
    duet_sampler_free(s);
}

/* ---- the order of the chain ---- */

Test(sampler, top_p_is_normalised_over_what_top_k_left)
{
    /* 0.4 0.3 0.2 0.1: after top-k=2 the best has 4/7 > 0.5, so top-p keeps it alone.
     * Top-p over the whole vocabulary would keep two. */
    duet_sampler_params p = params_off();
    p.top_k = 2;
    p.top_p = 0.5f;
    duet_sampler *s = make(&p, 4);
    double probs[4] = {0.1, 0.4, 0.2, 0.3}, freq[4];
    float logits[4];
    logits_from_probs(probs, logits, 4);
    frequencies(s, logits, 4, 2000, freq);
    double want[4] = {0, 1, 0, 0};
    expect_distribution(freq, want, 4, "top_k then top_p");
    duet_sampler_free(s);
}

Test(sampler, temperature_comes_after_top_p)
{
    /* 0.6 0.3 0.1 with top_p 0.55 keeps only the best; a hot temperature applied first
     * would flatten the distribution and let the others in */
    duet_sampler_params p = params_off();
    p.top_p = 0.55f;
    p.temperature = 5.0f;
    duet_sampler *s = make(&p, 3);
    double probs[3] = {0.3, 0.6, 0.1}, freq[3];
    float logits[3];
    logits_from_probs(probs, logits, 3);
    frequencies(s, logits, 3, 2000, freq);
    double want[3] = {0, 1, 0};
    expect_distribution(freq, want, 3, "top_p before temperature");
    duet_sampler_free(s);
}

Test(sampler, temperature_comes_after_min_p)
{
    /* 0.6 0.3 0.1, min_p 0.4 keeps 0.6 and 0.3 (0.3 >= 0.24); then T=0.5 squares them:
     * 0.36 : 0.09 = 0.8 : 0.2. Min-p after the temperature would keep the best alone. */
    duet_sampler_params p = params_off();
    p.min_p = 0.4f;
    p.temperature = 0.5f;
    duet_sampler *s = make(&p, 3);
    double probs[3] = {0.6, 0.1, 0.3}, freq[3];
    float logits[3];
    logits_from_probs(probs, logits, 3);
    frequencies(s, logits, 3, DRAWS, freq);
    double want[3] = {0.8, 0, 0.2};
    expect_distribution(freq, want, 3, "min_p before temperature");
    duet_sampler_free(s);
}

Test(sampler, min_p_and_top_p_together)
{
    /* 0.5 0.3 0.15 0.05: top_p 0.9 keeps three, min_p 0.5 keeps two: two remain */
    duet_sampler_params p = params_off();
    p.top_p = 0.9f;
    p.min_p = 0.5f;
    duet_sampler *s = make(&p, 4);
    float logits[4];
    double freq[4];
    logits_from_probs(four, logits, 4);
    frequencies(s, logits, 4, DRAWS, freq);
    double want[4] = {0.3 / 0.8, 0, 0.5 / 0.8, 0};
    expect_distribution(freq, want, 4, "top_p 0.9 + min_p 0.5");
    duet_sampler_free(s);
    /* and the other way round: top_p 0.75 keeps two, min_p 0.2 three */
    p.top_p = 0.75f;
    p.min_p = 0.2f;
    s = make(&p, 4);
    frequencies(s, logits, 4, DRAWS, freq);
    expect_distribution(freq, want, 4, "top_p 0.75 + min_p 0.2");
    duet_sampler_free(s);
}

/* ---- penalties ---- */

Test(sampler, penalties_follow_llama_cpp_rule)
{
    duet_sampler_params p = params_off();
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 3;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    duet_sampler *s = make(&p, 16);
    int32_t history[] = {5, 5, 5, 7, 5, 9}; /* window of 3: 7, 5, 9 */
    for (size_t i = 0; i < sizeof history / sizeof history[0]; i++) {
        cr_assert_eq(duet_sampler_accept(s, history[i], NULL), DUET_OK);
    }
    float logits[16];
    for (int i = 0; i < 16; i++) {
        logits[i] = 1.5f;
    }
    logits[5] = 4.0f;
    logits[7] = -3.0f;
    logits[9] = 0.0f;
    duet_sampler_penalize(s, logits);
    cr_expect_float_eq(logits[5], 4.0f / 2 - (1 * 0.5f + 0.25f), 1e-6, "positive: divided");
    cr_expect_float_eq(logits[7], -3.0f * 2 - (1 * 0.5f + 0.25f), 1e-6, "negative: multiplied");
    cr_expect_float_eq(logits[9], 0.0f - 0.75f, 1e-6, "zero: only the subtraction shows");
    cr_expect_float_eq(logits[0], 1.5f, 0, "not in the window: unchanged");
    cr_expect_float_eq(logits[15], 1.5f, 0, "not in the window: unchanged");

    /* counts: 5 three times in a wider window */
    p.repeat_last_n = 64;
    duet_sampler *w = make(&p, 16);
    for (size_t i = 0; i < sizeof history / sizeof history[0]; i++) {
        duet_sampler_accept(w, history[i], NULL);
    }
    logits[5] = 4.0f;
    duet_sampler_penalize(w, logits);
    cr_expect_float_eq(logits[5], 4.0f / 2 - (4 * 0.5f + 0.25f), 1e-6, "count 4");

    /* reset forgets the history */
    duet_sampler_reset(w);
    logits[5] = 4.0f;
    duet_sampler_penalize(w, logits);
    cr_expect_float_eq(logits[5], 4.0f, 0);
    duet_sampler_free(s);
    duet_sampler_free(w);
}

Test(sampler, repeat_penalty_changes_the_greedy_choice)
{
    duet_sampler_params p = params_off();
    p.temperature = 0.0f;
    p.repeat_penalty = 1.2f;
    duet_sampler *s = make(&p, 2);
    float logits[2] = {1.0f, 0.9f};
    cr_expect_eq(duet_sampler_sample(s, logits), 0);
    duet_sampler_accept(s, 0, NULL);
    cr_expect_eq(duet_sampler_sample(s, logits), 1, "1.0 / 1.2 < 0.9");
    duet_sampler_free(s);

    p.repeat_last_n = 0; /* window 0: penalties off */
    s = make(&p, 2);
    duet_sampler_accept(s, 0, NULL);
    cr_expect_eq(duet_sampler_sample(s, logits), 0);
    duet_sampler_free(s);
}

Test(sampler, presence_penalty_shifts_the_distribution)
{
    duet_sampler_params p = params_off();
    p.presence_penalty = (float)log(3.0); /* divides the token's weight by 3 */
    duet_sampler *s = make(&p, 2);
    float logits[2] = {0.0f, 0.0f};
    duet_sampler_accept(s, 1, NULL);
    double freq[2];
    frequencies(s, logits, 2, DRAWS, freq);
    double want[2] = {0.75, 0.25};
    expect_distribution(freq, want, 2, "presence ln 3");
    duet_sampler_free(s);
}

Test(sampler, accept_checks_the_id)
{
    duet_sampler_params p = params_off();
    duet_sampler *s = make(&p, 10);
    duet_status st;
    cr_expect_eq(duet_sampler_accept(s, 10, &st), DUET_INVALID_ARGUMENT);
    cr_expect_eq(duet_sampler_accept(s, -1, &st), DUET_INVALID_ARGUMENT);
    cr_expect_eq(duet_sampler_accept(s, 9, &st), DUET_OK);
    duet_sampler_free(s);
}

/* ---- odd inputs ---- */

Test(sampler, bad_parameters_are_refused)
{
    duet_sampler_params base = params_off();
    duet_sampler_params bad[8];
    for (int i = 0; i < 8; i++) {
        bad[i] = base;
    }
    bad[0].temperature = -0.1f;
    bad[1].temperature = NAN;
    bad[2].top_p = 1.5f;
    bad[3].min_p = NAN;
    bad[4].repeat_penalty = 0.0f;
    bad[5].frequency_penalty = INFINITY;
    bad[6].repeat_last_n = DUET_SAMPLER_MAX_LAST_N + 1;
    bad[7].min_p = -0.1f;
    for (int i = 0; i < 8; i++) {
        duet_sampler *s = (duet_sampler *)&base;
        duet_status st = {0};
        cr_expect_eq(duet_sampler_new(&bad[i], 100, &s, &st), DUET_INVALID_ARGUMENT, "case %d", i);
        cr_expect_null(s, "case %d", i);
        cr_expect_neq(st.message[0], '\0', "case %d", i);
    }
    duet_sampler *s = NULL;
    cr_expect_eq(duet_sampler_new(&base, 0, &s, NULL), DUET_INVALID_ARGUMENT);
    cr_expect_eq(duet_sampler_new(&base, -5, &s, NULL), DUET_INVALID_ARGUMENT);
    cr_expect_eq(duet_sampler_new(NULL, 5, &s, NULL), DUET_INVALID_ARGUMENT);
    duet_sampler_free(NULL);
}

Test(sampler, nan_and_infinite_logits)
{
    duet_sampler_params p = params_off();
    duet_sampler *s = make(&p, 3);
    float nan_logits[3] = {NAN, 1.0f, NAN};
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(duet_sampler_sample(s, nan_logits), 1);
    }
    float none[3] = {-INFINITY, -INFINITY, -INFINITY};
    cr_expect_eq(duet_sampler_sample(s, none), 0);
    float masked[3] = {-INFINITY, 0.0f, 0.0f};
    double freq[3];
    frequencies(s, masked, 3, DRAWS, freq);
    double want[3] = {0, 0.5, 0.5};
    expect_distribution(freq, want, 3, "masked");
    duet_sampler_free(s);
}

/* ---- large vocabularies ---- */

#define BIG 152064

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

Test(sampler, large_vocabulary_top_k)
{
    float *logits = malloc(BIG * sizeof *logits);
    float *sorted = malloc(BIG * sizeof *sorted);
    cr_assert(logits && sorted);
    for (int i = 0; i < BIG; i++) {
        logits[i] = rand_logit();
    }
    memcpy(sorted, logits, BIG * sizeof *sorted);
    qsort(sorted, BIG, sizeof *sorted, cmp_desc);

    duet_sampler_params p = duet_sampler_params_default(); /* top_k 40 */
    p.has_seed = true;
    p.min_p = 0.0f; /* let top-k and top-p decide */
    duet_sampler *s = make(&p, BIG);
    int draws = 300;
    double t0 = now_s();
    for (int d = 0; d < draws; d++) {
        int32_t id = duet_sampler_sample(s, logits);
        cr_assert(logits[id] >= sorted[39], "draw %d: token %d is not in the top 40", d, id);
    }
    double per = (now_s() - t0) / draws;
    cr_log_info("vocab %d, defaults: %.3f ms per token", BIG, per * 1e3);
    duet_sampler_free(s);
    free(logits);
    free(sorted);
}

Test(sampler, large_vocabulary_top_p_without_top_k)
{
    /* weights exp(-0.005 r) by rank r in a shuffled order: the 0.95 nucleus is ~600
     * tokens, more than the first partial sort takes */
    float *logits = malloc(BIG * sizeof *logits);
    int *perm = malloc(BIG * sizeof *perm);
    cr_assert(logits && perm);
    for (int i = 0; i < BIG; i++) {
        perm[i] = i;
    }
    for (int i = BIG - 1; i > 0; i--) {
        lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
        int j = (int)((lcg_state >> 33) % (uint64_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int r = 0; r < BIG; r++) {
        logits[perm[r]] = -0.005f * (float)r;
    }
    /* the nucleus by brute force */
    double z = 0;
    for (int r = 0; r < BIG; r++) {
        z += exp(-0.005 * r);
    }
    double cum = 0;
    int cutoff = 0;
    while (cum < 0.95) {
        cum += exp(-0.005 * cutoff) / z;
        cutoff++;
    }
    cr_assert_gt(cutoff, 256);

    duet_sampler_params p = params_off();
    p.top_p = 0.95f;
    duet_sampler *s = make(&p, BIG);
    /* rank bands: [0, 256), [256, cutoff - 20), [cutoff - 20, cutoff] */
    double band_mass[3] = {0}, band_freq[3] = {0};
    for (int r = 0; r < cutoff; r++) {
        band_mass[r < 256 ? 0 : r < cutoff - 20 ? 1 : 2] += exp(-0.005 * r) / (z * cum);
    }
    int draws = 2000;
    double t0 = now_s();
    for (int d = 0; d < draws; d++) {
        int32_t id = duet_sampler_sample(s, logits);
        int rank = (int)lroundf(-logits[id] / 0.005f);
        cr_assert_lt(rank, cutoff, "draw %d: rank %d is outside the nucleus of %d", d, rank,
                     cutoff);
        band_freq[rank < 256 ? 0 : rank < cutoff - 20 ? 1 : 2] += 1.0 / draws;
    }
    double per = (now_s() - t0) / draws;
    cr_log_info("vocab %d, top_p only: %.3f ms per token", BIG, per * 1e3);
    /* the whole nucleus is drawn from, up to its last tokens (~0.55% of the mass: ~11 draws) */
    cr_expect_gt(band_freq[2], 0.0, "nothing drawn from the last 20 ranks of the nucleus");
    double want[3] = {band_mass[0], band_mass[1], band_mass[2]};
    expect_distribution(band_freq, want, 3, "rank bands");
    duet_sampler_free(s);
    free(logits);
    free(perm);
}

/* ---- end-of-generation ids ---- */

Test(sampler, eog_set)
{
    duet_eog_set set = {0};
    duet_status st;
    cr_expect_not(duet_eog_contains(&set, 2));
    cr_expect_eq(duet_eog_add(&set, 2, &st), DUET_OK);
    cr_expect_eq(duet_eog_add(&set, 32007, &st), DUET_OK);
    cr_expect_eq(duet_eog_add(&set, 2, &st), DUET_OK);
    cr_expect_eq(set.n, 2u);
    cr_expect(duet_eog_contains(&set, 2));
    cr_expect(duet_eog_contains(&set, 32007));
    cr_expect_not(duet_eog_contains(&set, 3));
    cr_expect_eq(duet_eog_add(&set, -1, &st), DUET_INVALID_ARGUMENT);
    for (int i = 0; i < DUET_EOG_MAX - 2; i++) {
        cr_assert_eq(duet_eog_add(&set, 100 + i, &st), DUET_OK);
    }
    cr_expect_eq(duet_eog_add(&set, 5000, &st), DUET_RESOURCE_EXHAUSTED);
    cr_expect_eq(duet_eog_add(&set, 100, &st), DUET_OK, "present already: fine when full");
    duet_eog_clear(&set);
    cr_expect_not(duet_eog_contains(&set, 2));
}

/* ---- stop strings ---- */

Test(stop, scan_finds_the_earliest_stop)
{
    const char *stops[] = {"world", "lo w", "", "o"};
    const char *text = "hello world";
    duet_stop_scan_result r = duet_stop_scan(stops, 4, text, strlen(text));
    cr_expect(r.found);
    cr_expect_eq(r.pos, 3u, "'lo w' starts at 3, before the 'o' at 4");
    cr_expect_eq(r.which, 1u);
    cr_expect_eq(r.safe, 3u);
    r = duet_stop_scan(stops + 2, 2, text, strlen(text)); /* "" and "o" */
    cr_expect(r.found);
    cr_expect_eq(r.which, 1u);
    cr_expect_eq(r.pos, 4u);

    const char *two[] = {"abc", "b"};
    r = duet_stop_scan(two, 2, "xabc", 4);
    cr_expect(r.found);
    cr_expect_eq(r.which, 0u, "abc starts before b");
    cr_expect_eq(r.pos, 1u);
}

Test(stop, scan_holds_back_a_possible_start)
{
    const char *stops[] = {"<|im_end|>", "\n\nUser:"};
    struct {
        const char *text;
        size_t safe;
    } cases[] = {
        {"Hello", 5},    {"Hello <", 6}, {"Hello <|im", 6}, {"Hello <|im_end|", 6}, {"x\n", 1},
        {"x\n\nUse", 1}, {"<b", 2},      {"", 0},           {"<|im_end", 0},        {"a <| b", 6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        duet_stop_scan_result r = duet_stop_scan(stops, 2, cases[i].text, strlen(cases[i].text));
        cr_expect_not(r.found, "[%s]", cases[i].text);
        cr_expect_eq(r.safe, cases[i].safe, "[%s]: safe %zu, want %zu", cases[i].text, r.safe,
                     cases[i].safe);
    }
    duet_stop_scan_result r = duet_stop_scan(NULL, 0, "abc", 3);
    cr_expect_not(r.found);
    cr_expect_eq(r.safe, 3u);
}

static duet_stop_matcher *matcher(const char *const *stops, size_t n)
{
    duet_stop_matcher *m = NULL;
    duet_status st;
    cr_assert_eq(duet_stop_matcher_new(stops, n, &m, &st), DUET_OK, "%s", st.message);
    return m;
}

/* Feeds pieces, collecting what is shown; returns whether it stopped. */
static bool feed_all(duet_stop_matcher *m, const char *const *pieces, size_t n, char *shown,
                     size_t *held_after)
{
    shown[0] = '\0';
    bool stopped = false;
    for (size_t i = 0; i < n; i++) {
        duet_stop_output o;
        cr_assert_eq(duet_stop_matcher_feed(m, pieces[i], strlen(pieces[i]), &o, NULL), DUET_OK);
        strncat(shown, o.text, o.len);
        if (held_after) {
            held_after[i] = duet_stop_matcher_held(m);
        }
        stopped = o.stopped;
    }
    return stopped;
}

Test(stop, stop_across_token_boundaries)
{
    const char *stops[] = {"<|im_end|>"};
    duet_stop_matcher *m = matcher(stops, 1);
    const char *pieces[] = {"Hello wor", "ld<", "|im", "_end", "|>more", "ignored"};
    size_t held[6];
    char shown[128];
    cr_expect(feed_all(m, pieces, 6, shown, held));
    cr_expect_str_eq(shown, "Hello world");
    size_t want_held[6] = {0, 1, 4, 8, 0, 0};
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(held[i], want_held[i], "after piece %d: held %zu, want %zu", i, held[i],
                     want_held[i]);
    }
    duet_stop_output o;
    duet_stop_matcher_flush(m, &o);
    cr_expect(o.stopped);
    cr_expect_eq(o.len, 0u);
    duet_stop_matcher_free(m);
}

Test(stop, false_alarm_is_released)
{
    const char *stops[] = {"</answer>", "STOP"};
    duet_stop_matcher *m = matcher(stops, 2);
    const char *pieces[] = {"a </", "b> S", "TO", "P!"};
    size_t held[4];
    char shown[64];
    cr_expect(feed_all(m, pieces, 4, shown, held));
    cr_expect_str_eq(shown, "a </b> ");
    size_t want_held[4] = {2, 1, 3, 0};
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(held[i], want_held[i], "after piece %d: held %zu", i, held[i]);
    }
    duet_stop_output o;
    cr_expect_eq(duet_stop_matcher_feed(m, "x", 1, &o, NULL), DUET_OK);
    cr_expect(o.stopped);
    cr_expect_eq(o.which, 1u);
    cr_expect_eq(o.len, 0u);
    duet_stop_matcher_free(m);
}

Test(stop, flush_releases_the_held_bytes)
{
    const char *stops[] = {"\n\nUser:"};
    duet_stop_matcher *m = matcher(stops, 1);
    const char *pieces[] = {"The end.", "\n\nUs"};
    char shown[64];
    cr_expect_not(feed_all(m, pieces, 2, shown, NULL));
    cr_expect_str_eq(shown, "The end.");
    cr_expect_eq(duet_stop_matcher_held(m), 4u);
    duet_stop_output o;
    duet_stop_matcher_flush(m, &o);
    cr_expect_not(o.stopped);
    cr_expect_eq(o.len, 4u);
    cr_expect(memcmp(o.text, "\n\nUs", 4) == 0);
    cr_expect_eq(duet_stop_matcher_held(m), 0u);
    duet_stop_matcher_free(m);
}

Test(stop, stop_inside_one_piece_and_utf8)
{
    const char *stops[] = {"。\n"};
    duet_stop_matcher *m = matcher(stops, 1);
    const char *pieces[] = {"你好", "\xe3\x80", "\x82", "\n再见"};
    char shown[64];
    size_t held[4];
    cr_expect(feed_all(m, pieces, 4, shown, held));
    cr_expect_str_eq(shown, "你好");
    cr_expect_eq(held[1], 2u, "two bytes of the full stop are held");
    cr_expect_eq(held[2], 3u);
    duet_stop_matcher_free(m);
}

Test(stop, no_stops_pass_everything)
{
    duet_stop_matcher *m = matcher(NULL, 0);
    duet_stop_output o;
    cr_expect_eq(duet_stop_matcher_feed(m, "abc", 3, &o, NULL), DUET_OK);
    cr_expect_eq(o.len, 3u);
    cr_expect_not(o.stopped);
    cr_expect_eq(duet_stop_matcher_feed(m, "", 0, &o, NULL), DUET_OK);
    cr_expect_eq(o.len, 0u);
    duet_stop_matcher_free(m);

    const char *empty[] = {""};
    m = matcher(empty, 1);
    cr_expect_eq(duet_stop_matcher_feed(m, "abc", 3, &o, NULL), DUET_OK);
    cr_expect_eq(o.len, 3u, "an empty stop string is ignored");
    duet_stop_matcher_free(m);

    const char *with_null[] = {"a", NULL};
    duet_status st;
    cr_expect_eq(duet_stop_matcher_new(with_null, 2, &m, &st), DUET_INVALID_ARGUMENT);
    cr_expect_eq(duet_stop_matcher_new(NULL, 1, &m, &st), DUET_INVALID_ARGUMENT);
}
