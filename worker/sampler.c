/* Token sampling, end-of-generation ids and stop strings (see sampler.h). */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* One candidate token. w is exp(logit - max logit) once computed. */
typedef struct {
    double w;
    float logit;
    int32_t id;
} cand;

struct duet_sampler {
    duet_sampler_params p;
    int32_t n_vocab;
    cand *c;
    /* The last p.repeat_last_n accepted ids, as a ring; NULL when no penalty is on. */
    int32_t *ring;
    int32_t *scratch; /* the ring, sorted, to count repeats */
    uint32_t ring_len;
    uint32_t ring_head; /* next slot to write */
    uint64_t seed;
    uint64_t rng[4];
};

duet_sampler_params duet_sampler_params_default(void)
{
    return (duet_sampler_params){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .has_seed = false,
        .seed = 0,
    };
}

/* ---- random numbers: xoshiro256** seeded through splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static void rng_seed(uint64_t s[4], uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        s[i] = splitmix64(&x);
    }
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_unit(uint64_t s[4])
{
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

static uint64_t random_seed(void)
{
    uint64_t v;
    if (getrandom(&v, sizeof v, 0) == (ssize_t)sizeof v) {
        return v;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
}

/* exp(x) for x <= 0 from IEEE double +, -, * and exact conversions only. libm's exp may
 * differ in the last bit between versions and machines, which could change a draw; this
 * gives the same bits everywhere (relative error < 1e-8, plenty for probabilities),
 * given no fused multiply-add contraction: ISO C mode (-std=c11, as the build uses) turns
 * it off in GCC.
 * Weights are relative to the best token's 1, so below e^-700 they are 0: no draw could
 * land there and min_p (a float, >= 1e-45 when on) would drop them anyway. */
static inline double det_exp(double x)
{
    if (!(x > -700.0)) {
        return 0.0; /* also NaN */
    }
    const double ln2_hi = 6.93147180369123816490e-01; /* few mantissa bits: k * ln2_hi is exact */
    const double ln2_lo = 1.90821492927058770002e-10;
    int k = (int)(x * 1.44269504088896338700 - 0.5); /* nearest integer (x <= 0) */
    double r = (x - k * ln2_hi) - k * ln2_lo;        /* |r| <= ln2 / 2 */
    /* Taylor series to r^7 (truncation < 6e-9 relative, finer than the float logits) in
     * Horner form; the 1/n! constants are rounded once, at compile time. */
    double p = 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* times 2^k, built from its bits (k >= -1011: a normal number, the product is exact) */
    uint64_t bits = (uint64_t)(k + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* ---- construction ---- */

static bool penalties_on(const duet_sampler_params *p)
{
    return p->repeat_last_n > 0 && (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f ||
                                    p->presence_penalty != 0.0f);
}

static duet_code check_params(const duet_sampler_params *p, int32_t vocab_size, duet_status *st)
{
    if (vocab_size <= 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "sampler: vocabulary size %d",
                               (int)vocab_size);
    }
    if (!isfinite(p->temperature) || p->temperature < 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "sampler: temperature %g is not a number >= 0",
                               (double)p->temperature);
    }
    if (!(p->top_p >= 0 && p->top_p <= 1)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "sampler: top_p %g is not in [0, 1]",
                               (double)p->top_p);
    }
    if (!(p->min_p >= 0 && p->min_p <= 1)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "sampler: min_p %g is not in [0, 1]",
                               (double)p->min_p);
    }
    if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "sampler: repeat_penalty %g is not a number > 0",
                               (double)p->repeat_penalty);
    }
    if (!isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "sampler: frequency_penalty %g / presence_penalty %g not finite",
                               (double)p->frequency_penalty, (double)p->presence_penalty);
    }
    if (p->repeat_last_n > DUET_SAMPLER_MAX_LAST_N) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "sampler: repeat_last_n %u is over the limit of %u",
                               p->repeat_last_n, DUET_SAMPLER_MAX_LAST_N);
    }
    return DUET_OK;
}

duet_code duet_sampler_new(const duet_sampler_params *params, int32_t vocab_size,
                           duet_sampler **out, duet_status *st)
{
    if (!params || !out) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "sampler: NULL params or out");
    }
    *out = NULL;
    duet_code rc = check_params(params, vocab_size, st);
    if (rc != DUET_OK) {
        return rc;
    }
    duet_sampler *s = calloc(1, sizeof *s);
    if (!s) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "sampler: out of memory");
    }
    s->p = *params;
    s->n_vocab = vocab_size;
    s->c = malloc((size_t)vocab_size * sizeof *s->c);
    if (s->c && penalties_on(params)) {
        s->ring = malloc((size_t)params->repeat_last_n * sizeof *s->ring);
        s->scratch = malloc((size_t)params->repeat_last_n * sizeof *s->scratch);
    }
    if (!s->c || (penalties_on(params) && (!s->ring || !s->scratch))) {
        duet_sampler_free(s);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                               "sampler: out of memory for a vocabulary of %d", (int)vocab_size);
    }
    s->seed = params->has_seed ? params->seed : random_seed();
    rng_seed(s->rng, s->seed);
    *out = s;
    duet_status_clear(st);
    return DUET_OK;
}

void duet_sampler_free(duet_sampler *s)
{
    if (!s) {
        return;
    }
    free(s->c);
    free(s->ring);
    free(s->scratch);
    free(s);
}

void duet_sampler_reset(duet_sampler *s)
{
    s->ring_len = 0;
    s->ring_head = 0;
    rng_seed(s->rng, s->seed);
}

uint64_t duet_sampler_seed(const duet_sampler *s)
{
    return s->seed;
}

duet_code duet_sampler_accept(duet_sampler *s, int32_t id, duet_status *st)
{
    if (id < 0 || id >= s->n_vocab) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "sampler: token %d is outside the vocabulary of %d", (int)id,
                               (int)s->n_vocab);
    }
    if (s->ring) {
        s->ring[s->ring_head] = id;
        s->ring_head = (s->ring_head + 1) % s->p.repeat_last_n;
        if (s->ring_len < s->p.repeat_last_n) {
            s->ring_len++;
        }
    }
    return DUET_OK;
}

/* ---- stage 1: penalties ---- */

static int cmp_id(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a;
    int32_t y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* llama.cpp's rule, in the same float operations. */
static float penalize_one(const duet_sampler_params *p, float logit, uint32_t count)
{
    if (logit <= 0) {
        logit *= p->repeat_penalty;
    } else {
        logit /= p->repeat_penalty;
    }
    return logit - ((float)count * p->frequency_penalty + p->presence_penalty);
}

/* Copies the window into scratch, sorted so that repeats of an id sit together (no
 * vocabulary-sized table needed); returns its length. */
static uint32_t sorted_window(const duet_sampler *s)
{
    if (!s->ring || s->ring_len == 0) {
        return 0;
    }
    memcpy(s->scratch, s->ring, s->ring_len * sizeof *s->scratch);
    qsort(s->scratch, s->ring_len, sizeof *s->scratch, cmp_id);
    return s->ring_len;
}

/* End of the run of equal ids that starts at i. */
static uint32_t run_end(const int32_t *v, uint32_t n, uint32_t i)
{
    uint32_t j = i + 1;
    while (j < n && v[j] == v[i]) {
        j++;
    }
    return j;
}

void duet_sampler_penalize(const duet_sampler *s, float *logits)
{
    uint32_t n = sorted_window(s);
    for (uint32_t i = 0, j; i < n; i = j) {
        j = run_end(s->scratch, n, i);
        logits[s->scratch[i]] = penalize_one(&s->p, logits[s->scratch[i]], j - i);
    }
}

/* ---- ordering and selection ---- */

/* The total order every stage uses: higher logit first, then lower id. */
static bool better(const cand *a, const cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static size_t best_index(const cand *c, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++) {
        if (better(&c[i], &c[best])) {
            best = i;
        }
    }
    return best;
}

static void swap_cand(cand *a, cand *b)
{
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Sift down in a heap over h[0..n) whose root is the WORST candidate. */
static void sift_down(cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1;
        size_t worst = i;
        if (l < n && better(&h[worst], &h[l])) {
            worst = l;
        }
        if (l + 1 < n && better(&h[worst], &h[l + 1])) {
            worst = l + 1;
        }
        if (worst == i) {
            return;
        }
        swap_cand(&h[i], &h[worst]);
        i = worst;
    }
}

/* Moves the k best of c[0..n) to c[0..k), best first, in O(n + m log k) where m is the
 * number of heap replacements (small unless the logits come in rising order). */
static void select_top(cand *c, size_t n, size_t k)
{
    if (k == 0) {
        return;
    }
    for (size_t i = k / 2; i-- > 0;) {
        sift_down(c, k, i);
    }
    for (size_t i = k; i < n; i++) {
        if (better(&c[i], &c[0])) {
            swap_cand(&c[i], &c[0]);
            sift_down(c, k, 0);
        }
    }
    /* Heap sort: the worst goes to the end each round, leaving c[0..k) best first. */
    for (size_t end = k; end > 1; end--) {
        swap_cand(&c[0], &c[end - 1]);
        sift_down(c, end - 1, 0);
    }
}

/* ---- stages 2-6 ---- */

/* Distance buckets for the top-p prefilter: bucket b holds tokens with
 * max - logit in [b/8, (b+1)/8); the last one everything further away. */
#define TOP_P_BUCKETS 256
#define TOP_P_BUCKET_SCALE 8.0

static size_t distance_bucket(float logit, double max)
{
    double d = (max - (double)logit) * TOP_P_BUCKET_SCALE;
    return d < TOP_P_BUCKETS - 1 ? (size_t)d : TOP_P_BUCKETS - 1;
}

/* Moves to the front the tokens of the closest buckets that hold at least top_p of the
 * mass, plus one more bucket against rounding: the nucleus is among them, so only they
 * need sorting. One linear pass instead of a selection over the whole vocabulary. */
static size_t top_p_prefilter(cand *c, size_t n, double max, double sum, double top_p)
{
    double mass[TOP_P_BUCKETS] = {0};
    for (size_t i = 0; i < n; i++) {
        mass[distance_bucket(c[i].logit, max)] += c[i].w;
    }
    size_t cut = TOP_P_BUCKETS - 1;
    double cum = 0;
    for (size_t b = 0; b < TOP_P_BUCKETS; b++) {
        cum += mass[b] / sum;
        if (cum >= top_p) {
            cut = b + 1 < TOP_P_BUCKETS ? b + 1 : b;
            break;
        }
    }
    if (cut == TOP_P_BUCKETS - 1) {
        return n;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (distance_bucket(c[i].logit, max) <= cut) {
            c[kept++] = c[i];
        }
    }
    return kept;
}

/* Top-p over c[0..n) given the softmax normaliser sum of the set top-k left (min-p may
 * already have removed some of it: see duet_sampler_sample). Returns how many to keep and
 * leaves them first, best first. Sorts only as far as the mass runs. */
static size_t top_p_keep(cand *c, size_t n, bool sorted, double max, double sum, double top_p)
{
    if (!sorted && n > 1024) {
        n = top_p_prefilter(c, n, max, sum, top_p);
    }
    size_t want = sorted ? n : (n < 256 ? n : 256);
    for (;;) {
        if (!sorted) {
            select_top(c, n, want);
        }
        double cum = 0;
        for (size_t i = 0; i < want; i++) {
            cum += c[i].w / sum;
            if (cum >= top_p) {
                return i + 1;
            }
        }
        if (want == n) {
            return n;
        }
        want = n / 8 < want ? n : want * 8;
    }
}

static int32_t draw(duet_sampler *s, cand *c, size_t n, double max, bool have_w)
{
    double t = s->p.temperature;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (!have_w || t != 1.0) {
            c[i].w = det_exp(((double)c[i].logit - max) / t);
        }
        sum += c[i].w;
    }
    double target = rng_unit(s->rng) * sum;
    double run = 0;
    size_t last_positive = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i].w > 0) {
            run += c[i].w;
            last_positive = i;
            if (run > target) {
                return c[i].id;
            }
        }
    }
    return c[last_positive].id; /* rounding left target just above the total */
}

int32_t duet_sampler_sample(duet_sampler *s, const float *logits)
{
    cand *c = s->c;
    size_t n = (size_t)s->n_vocab;
    for (size_t i = 0; i < n; i++) {
        float l = logits[i];
        c[i].logit = isnan(l) ? -INFINITY : l;
        c[i].id = (int32_t)i;
    }
    uint32_t w = sorted_window(s); /* c is in id order here */
    for (uint32_t i = 0, j; i < w; i = j) {
        j = run_end(s->scratch, w, i);
        c[s->scratch[i]].logit = penalize_one(&s->p, c[s->scratch[i]].logit, j - i);
    }

    if (s->p.temperature == 0) {
        return c[best_index(c, n)].id;
    }

    bool sorted = false;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        select_top(c, n, s->p.top_k);
        n = s->p.top_k;
        sorted = true;
    }
    size_t top = sorted ? 0 : best_index(c, n);
    double max = c[top].logit;
    if (max == -INFINITY) {
        return c[top].id; /* nothing is possible: the lowest id */
    }

    bool use_top_p = s->p.top_p < 1.0f;
    bool use_min_p = s->p.min_p > 0.0f;
    double sum = 0;
    if (use_top_p || use_min_p) {
        for (size_t i = 0; i < n; i++) {
            c[i].w = det_exp((double)c[i].logit - max);
            sum += c[i].w;
        }
    }
    /* Min-p before top-p gives the same set as llama.cpp's top-p then min-p: both keep a
     * prefix of the same order, top-p's probabilities are normalised by the sum taken
     * above (before min-p), so the result is the shorter prefix either way. Filtering first
     * leaves top-p little to sort. The best token has w = 1 >= min_p, so some remain. */
    if (use_min_p) {
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            if (c[i].w >= (double)s->p.min_p) {
                c[kept++] = c[i];
            }
        }
        n = kept;
    }
    if (use_top_p) {
        n = top_p_keep(c, n, sorted, max, sum, (double)s->p.top_p);
    }
    return draw(s, c, n, max, use_top_p || use_min_p);
}

/* ---- end-of-generation ids ---- */

void duet_eog_clear(duet_eog_set *set)
{
    set->n = 0;
}

bool duet_eog_contains(const duet_eog_set *set, int32_t id)
{
    for (size_t i = 0; i < set->n; i++) {
        if (set->ids[i] == id) {
            return true;
        }
    }
    return false;
}

duet_code duet_eog_add(duet_eog_set *set, int32_t id, duet_status *st)
{
    if (id < 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "end-of-generation id %d is negative",
                               (int)id);
    }
    if (duet_eog_contains(set, id)) {
        return DUET_OK;
    }
    if (set->n >= DUET_EOG_MAX) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "more than %d end-of-generation ids",
                               DUET_EOG_MAX);
    }
    set->ids[set->n++] = id;
    return DUET_OK;
}

/* ---- stop strings ---- */

duet_stop_scan_result duet_stop_scan(const char *const *stops, size_t n_stops, const char *text,
                                     size_t len)
{
    duet_stop_scan_result r = {.found = false, .which = 0, .pos = len, .safe = len};
    size_t max_len = 0;
    for (size_t i = 0; i < n_stops; i++) {
        size_t sl = stops[i] ? strlen(stops[i]) : 0;
        if (sl == 0) {
            continue;
        }
        if (sl > max_len) {
            max_len = sl;
        }
        const char *hit = memmem(text, len, stops[i], sl);
        if (hit && (!r.found || (size_t)(hit - text) < r.pos)) {
            r.found = true;
            r.which = i;
            r.pos = (size_t)(hit - text);
        }
    }
    if (r.found) {
        r.safe = r.pos;
        return r;
    }
    /* Longest suffix that is a proper prefix of some stop string: it might still grow into
     * one. (A whole stop string would have been found above.) */
    size_t k = max_len > 0 ? max_len - 1 : 0;
    if (k > len) {
        k = len;
    }
    for (; k > 0; k--) {
        for (size_t i = 0; i < n_stops; i++) {
            if (stops[i] && strlen(stops[i]) > k && memcmp(text + len - k, stops[i], k) == 0) {
                r.safe = len - k;
                return r;
            }
        }
    }
    return r;
}

struct duet_stop_matcher {
    char **stops;
    size_t n;
    char *buf; /* held bytes, then the newest piece */
    size_t len;
    size_t cap;
    size_t shown; /* bytes at the front handed out by the last call, dropped at the next */
    bool stopped;
    size_t which;
};

void duet_stop_matcher_free(duet_stop_matcher *m)
{
    if (!m) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        free(m->stops[i]);
    }
    free(m->stops);
    free(m->buf);
    free(m);
}

duet_code duet_stop_matcher_new(const char *const *stops, size_t n, duet_stop_matcher **out,
                                duet_status *st)
{
    if (!out || (n > 0 && !stops)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "stop matcher: NULL argument");
    }
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!stops[i]) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "stop matcher: stop string %zu is "
                                   "NULL",
                                   i);
        }
    }
    duet_stop_matcher *m = calloc(1, sizeof *m);
    if (!m || (n > 0 && !(m->stops = calloc(n, sizeof *m->stops)))) {
        free(m);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "stop matcher: out of memory");
    }
    m->n = n;
    for (size_t i = 0; i < n; i++) {
        m->stops[i] = strdup(stops[i]);
        if (!m->stops[i]) {
            duet_stop_matcher_free(m);
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "stop matcher: out of memory");
        }
    }
    *out = m;
    duet_status_clear(st);
    return DUET_OK;
}

static void drop_shown(duet_stop_matcher *m)
{
    if (m->shown > 0) {
        memmove(m->buf, m->buf + m->shown, m->len - m->shown);
        m->len -= m->shown;
        m->shown = 0;
    }
}

duet_code duet_stop_matcher_feed(duet_stop_matcher *m, const char *text, size_t len,
                                 duet_stop_output *out, duet_status *st)
{
    *out = (duet_stop_output){.text = "", .len = 0, .stopped = m->stopped, .which = m->which};
    if (m->stopped) {
        return DUET_OK;
    }
    drop_shown(m);
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 64;
        while (cap < m->len + len) {
            cap *= 2;
        }
        char *p = realloc(m->buf, cap);
        if (!p) {
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "stop matcher: out of memory");
        }
        m->buf = p;
        m->cap = cap;
    }
    if (len > 0) {
        memcpy(m->buf + m->len, text, len);
        m->len += len;
    }
    duet_stop_scan_result r =
        duet_stop_scan((const char *const *)m->stops, m->n, m->buf ? m->buf : "", m->len);
    out->text = m->buf ? m->buf : "";
    out->len = r.safe;
    if (r.found) {
        m->stopped = true;
        m->which = r.which;
        out->stopped = true;
        out->which = r.which;
        m->shown = m->len; /* the stop string and what follows are dropped */
    } else {
        m->shown = r.safe;
    }
    return DUET_OK;
}

void duet_stop_matcher_flush(duet_stop_matcher *m, duet_stop_output *out)
{
    *out = (duet_stop_output){.text = "", .len = 0, .stopped = m->stopped, .which = m->which};
    if (m->stopped) {
        return;
    }
    drop_shown(m);
    out->text = m->buf ? m->buf : "";
    out->len = m->len;
    m->shown = m->len;
}

size_t duet_stop_matcher_held(const duet_stop_matcher *m)
{
    return m->stopped ? 0 : m->len - m->shown;
}
