/* The paged KV cache: pages come from the pool and go back exactly; a short pool is refused
 * cleanly and the cache stays usable; rows at page boundaries are distinct and persistent;
 * the engine decodes the same with tiny and big pages. The session cache: a session's next
 * turn reuses the longest common prefix and computes the same as a fresh sequence; sessions
 * never share a cache; idle sessions are evicted least recently used first, busy ones never;
 * a session serves one request at a time. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "kv_cache.h"
#include "kv_pool.h"
#include "model.h"
#include "session_cache.h"
#include "support.h"

static duet_model *load_stories(void)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    char path[1024];
    snprintf(path, sizeof path, "%s/stories260K.gguf", dir && *dir ? dir : "../shared/models");
    FILE *f = fopen(path, "rb");
    if (!f) {
        cr_skip_test("TEST MODELS MISSING: %s not found (set DUET_TEST_MODELS)", path);
    }
    fclose(f);
    duet_model *m;
    duet_status st;
    cr_assert_eq(duet_model_load(path, &m, &st), DUET_OK, "%s", st.message);
    return m;
}

static duet_kv_pool *pool_of(const duet_model *m, uint32_t pages, uint32_t page_tokens)
{
    duet_kv_pool *pool;
    duet_status st;
    cr_assert_eq(duet_kv_pool_new_pages(m, pages, page_tokens, &pool, &st), DUET_OK, "%s",
                 st.message);
    return pool;
}

static duet_kv_cache *cache_in(duet_kv_pool *pool, uint32_t max_ctx)
{
    duet_kv_cache *kv;
    duet_status st;
    cr_assert_eq(duet_kv_cache_new_in_pool(pool, max_ctx, &kv, &st), DUET_OK, "%s", st.message);
    return kv;
}

static uint32_t argmax(const float *l, uint32_t n)
{
    uint32_t b = 0;
    for (uint32_t i = 1; i < n; i++) {
        b = l[i] > l[b] ? i : b;
    }
    return b;
}

static void eval(duet_engine *e, duet_kv_cache *kv, const uint32_t *tokens, uint32_t n,
                 float *logits)
{
    duet_status st;
    cr_assert_eq(duet_engine_eval(e, kv, tokens, n, logits, &st), DUET_OK, "%s", st.message);
}

/* A recognisable F16 bit pattern for (layer, position, index, key or value). */
static uint16_t pattern(uint32_t layer, uint32_t pos, uint32_t i, int value)
{
    return (uint16_t)(layer * 7919u + pos * 131u + i * 3u + (uint32_t)value * 40000u);
}

static void write_rows(duet_kv_cache *kv, uint32_t n_layer, uint32_t kv_dim, uint32_t from,
                       uint32_t to)
{
    for (uint32_t l = 0; l < n_layer; l++) {
        for (uint32_t p = from; p < to; p++) {
            uint16_t *k = duet_kv_cache_key(kv, l, p), *v = duet_kv_cache_value(kv, l, p);
            for (uint32_t i = 0; i < kv_dim; i++) {
                k[i] = pattern(l, p, i, 0);
                v[i] = pattern(l, p, i, 1);
            }
        }
    }
}

static void check_rows(duet_kv_cache *kv, uint32_t n_layer, uint32_t kv_dim, uint32_t from,
                       uint32_t to)
{
    for (uint32_t l = 0; l < n_layer; l++) {
        for (uint32_t p = from; p < to; p++) {
            const uint16_t *k = duet_kv_cache_key(kv, l, p), *v = duet_kv_cache_value(kv, l, p);
            for (uint32_t i = 0; i < kv_dim; i++) {
                cr_assert_eq(k[i], pattern(l, p, i, 0), "key layer %u pos %u [%u]", l, p, i);
                cr_assert_eq(v[i], pattern(l, p, i, 1), "value layer %u pos %u [%u]", l, p, i);
            }
        }
    }
}

/* Fills n positions of a sequence's cache without computing (their rows are not read). */
static void fill(duet_kv_cache *kv, uint32_t n)
{
    duet_status st;
    cr_assert_eq(duet_kv_cache_reserve(kv, n, &st), DUET_OK, "%s", st.message);
    duet_kv_cache_set_length(kv, n);
}

/* BOS and stories260K's greedy continuation of it (as in test_engine.c) */
static const uint32_t ids[65] = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421,
                                 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411,
                                 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370,
                                 432, 352, 266, 268, 388, 426, 338, 391, 266, 267, 337, 335, 312,
                                 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13,  438, 310};

/* ---- the pool and the page table ------------------------------------------------------- */

Test(kv_pool, sizes_follow_the_budget_and_refuse_bad_shapes)
{
    duet_model *m = load_stories();
    uint32_t kv_dim = m->hp.n_head_kv * m->hp.head_dim;
    duet_kv_pool *pool;
    duet_status st;
    cr_assert_eq(duet_kv_pool_new(m, 1, 0, &pool, &st), DUET_OK, "%s", st.message);
    size_t page = (size_t)m->hp.n_layer * 2 * 32 * kv_dim * sizeof(uint16_t);
    cr_assert_eq(duet_kv_pool_page_tokens(pool), DUET_KV_PAGE_TOKENS_DEFAULT);
    cr_assert_eq(duet_kv_pool_bytes_per_page(pool), page);
    cr_assert_eq(duet_kv_pool_pages_total(pool), (1u << 20) / page);
    cr_assert_eq(duet_kv_pool_pages_free(pool), duet_kv_pool_pages_total(pool));
    cr_assert_eq(duet_kv_pool_kv_dim(pool), kv_dim);
    cr_assert_eq(duet_kv_pool_layers(pool), m->hp.n_layer);
    duet_kv_pool_free(pool);

    cr_assert_eq(duet_kv_pool_new(m, 1, 1u << 20, &pool, &st), DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "holds no page"), "%s", st.message);
    cr_assert_eq(duet_kv_pool_new(m, 1, 24, &pool, &st), DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "power of two"), "%s", st.message);
    cr_assert_eq(duet_kv_pool_new_pages(m, 0, 4, &pool, &st), DUET_INVALID_ARGUMENT);
    duet_model_free(m);
}

Test(kv_cache, pages_are_taken_and_returned_exactly)
{
    duet_model *m = load_stories();
    duet_kv_pool *pool = pool_of(m, 8, 4);
    duet_status st;
    duet_kv_cache *a = cache_in(pool, 32), *b = cache_in(pool, 32);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 8, "a new cache takes no page");
    cr_assert_eq(duet_kv_cache_reserve(a, 1, &st), DUET_OK);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 7);
    cr_assert_eq(duet_kv_cache_reserved(a), 4);
    cr_assert_eq(duet_kv_cache_reserve(a, 4, &st), DUET_OK);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 7, "4 positions fit the first page");
    cr_assert_eq(duet_kv_cache_reserve(a, 5, &st), DUET_OK);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 6);
    fill(a, 13);
    fill(b, 9);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 1);
    cr_assert_eq(duet_kv_cache_length(a), 13);

    duet_kv_cache_truncate(a, 5);
    cr_assert_eq(duet_kv_cache_length(a), 5);
    cr_assert_eq(duet_kv_cache_reserved(a), 8);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 3, "truncate gives pages back at once");
    duet_kv_cache_truncate(a, 8); /* past the length: nothing is kept beyond it */
    cr_assert_eq(duet_kv_cache_length(a), 5);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 3);
    duet_kv_cache_truncate(a, 0);
    cr_assert_eq(duet_kv_cache_reserved(a), 0);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 5);

    /* a reservation undone by shrink, the filled prefix kept */
    cr_assert_eq(duet_kv_cache_reserve(b, 20, &st), DUET_OK);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 3);
    duet_kv_cache_shrink(b, 0);
    cr_assert_eq(duet_kv_cache_reserved(b), 12, "the 9 filled positions keep their pages");
    cr_assert_eq(duet_kv_pool_pages_free(pool), 5);

    /* set_length cannot claim positions without pages */
    duet_kv_cache_set_length(b, 30);
    cr_assert_eq(duet_kv_cache_length(b), 12);

    cr_assert_eq(duet_kv_cache_reserve(a, 20, &st), DUET_OK);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 0);
    duet_kv_cache_free(a);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 5);
    duet_kv_cache_free(b);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 8);
    duet_kv_pool_free(pool);
    duet_model_free(m);
}

Test(kv_cache, reserving_past_the_budget_is_refused_and_the_cache_stays_usable)
{
    duet_model *m = load_stories();
    uint32_t kv_dim = m->hp.n_head_kv * m->hp.head_dim, n_layer = m->hp.n_layer;
    duet_kv_pool *pool = pool_of(m, 4, 4);
    duet_kv_cache *kv = cache_in(pool, 64);
    duet_status st;
    fill(kv, 12);
    write_rows(kv, n_layer, kv_dim, 0, 12);
    cr_assert_eq(duet_kv_cache_reserve(kv, 20, &st), DUET_RESOURCE_EXHAUSTED);
    cr_assert(strstr(st.message, "2 pages of 4 tokens needed, 1 free of 4"), "%s", st.message);
    cr_assert_eq(duet_kv_cache_reserved(kv), 12, "nothing taken when all cannot be");
    cr_assert_eq(duet_kv_pool_pages_free(pool), 1);
    cr_assert_eq(duet_kv_cache_length(kv), 12);
    check_rows(kv, n_layer, kv_dim, 0, 12);

    cr_assert_eq(duet_kv_cache_reserve(kv, 65, &st), DUET_OUT_OF_RANGE);
    cr_assert(strstr(st.message, "context of 64"), "%s", st.message);

    cr_assert_eq(duet_kv_cache_reserve(kv, 16, &st), DUET_OK, "%s", st.message);
    write_rows(kv, n_layer, kv_dim, 12, 16);
    duet_kv_cache_set_length(kv, 16);
    check_rows(kv, n_layer, kv_dim, 0, 16);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 0);
    duet_kv_cache_free(kv);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 4);
    duet_kv_pool_free(pool);
    duet_model_free(m);
}

Test(kv_cache, rows_at_page_boundaries_are_distinct_and_persistent)
{
    duet_model *m = load_stories();
    uint32_t kv_dim = m->hp.n_head_kv * m->hp.head_dim, n_layer = m->hp.n_layer;
    duet_kv_pool *pool = pool_of(m, 16, 4);
    duet_kv_cache *a = cache_in(pool, 64), *b = cache_in(pool, 64);
    fill(a, 6);
    fill(b, 6);
    fill(a, 12); /* a's pages interleave with b's in the pool */
    write_rows(a, n_layer, kv_dim, 0, 12);
    write_rows(b, n_layer, kv_dim, 0, 6);
    for (uint32_t i = 0; i < kv_dim; i++) {
        duet_kv_cache_key(b, 0, 3)[i] ^= 0xffff; /* b's rows are its own */
    }
    check_rows(a, n_layer, kv_dim, 0, 12);
    for (uint32_t i = 0; i < kv_dim; i++) {
        duet_kv_cache_key(b, 0, 3)[i] ^= 0xffff;
    }
    check_rows(b, n_layer, kv_dim, 0, 6);

    /* the page-at-a-time accessor agrees with the per-position one */
    for (uint32_t l = 0; l < n_layer; l++) {
        for (uint32_t p = 0; p < 12; p++) {
            const uint16_t *k, *v;
            uint32_t rows = duet_kv_cache_rows(a, l, p, &k, &v);
            cr_assert_eq(rows, 4 - p % 4, "rows to the end of the page from %u", p);
            for (uint32_t r = 0; r < rows; r++) {
                cr_assert_eq(k + (size_t)r * kv_dim, duet_kv_cache_key(a, l, p + r));
                cr_assert_eq(v + (size_t)r * kv_dim, duet_kv_cache_value(a, l, p + r));
            }
        }
    }

    /* growing, truncating and growing again keep the prefix */
    fill(a, 40);
    check_rows(a, n_layer, kv_dim, 0, 12);
    duet_kv_cache_truncate(a, 6);
    fill(a, 30);
    check_rows(a, n_layer, kv_dim, 0, 6);
    check_rows(b, n_layer, kv_dim, 0, 6);
    duet_kv_cache_free(a);
    duet_kv_cache_free(b);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 16);
    duet_kv_pool_free(pool);
    duet_model_free(m);
}

/* ---- the engine over pages ------------------------------------------------------------- */

/* Greedy tokens after ids[0..20) (prefilled 8 at a time, so steps straddle pages) and the
 * last logits, with pages of page_tokens positions. */
static void greedy_paged(duet_model *m, uint32_t page_tokens, uint32_t *out, uint32_t n,
                         float *last)
{
    duet_engine *e;
    duet_status st;
    cr_assert_eq(duet_engine_new(m, 2, 8, 128, &e, &st), DUET_OK, "%s", st.message);
    duet_kv_pool *pool = pool_of(m, 128 / page_tokens, page_tokens);
    duet_kv_cache *kv = cache_in(pool, 128);
    eval(e, kv, ids, 20, last);
    for (uint32_t i = 0; i < n; i++) {
        out[i] = argmax(last, m->hp.n_vocab);
        if (i + 1 < n) {
            eval(e, kv, &out[i], 1, last);
        }
    }
    cr_assert_eq(duet_kv_cache_length(kv), 20 + n - 1);
    duet_kv_cache_free(kv);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 128 / page_tokens);
    duet_kv_pool_free(pool);
    duet_engine_free(e);
}

Test(kv_cache, engine_decodes_the_same_with_tiny_and_big_pages)
{
    duet_model *m = load_stories();
    uint32_t n_vocab = m->hp.n_vocab;
    uint32_t big[40], small[40];
    float *lb = malloc(n_vocab * sizeof *lb), *ls = malloc(n_vocab * sizeof *ls);
    greedy_paged(m, 128, big, 40, lb);
    uint32_t sizes[] = {1, 4, 16};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        greedy_paged(m, sizes[s], small, 40, ls);
        for (int i = 0; i < 40; i++) {
            cr_assert_eq(small[i], big[i], "pages of %u: token %d is %u, not %u", sizes[s], i,
                         small[i], big[i]);
        }
        cr_assert(!memcmp(ls, lb, n_vocab * sizeof *lb), "pages of %u: logits differ", sizes[s]);
    }
    /* and the continuation is the model's own */
    for (int i = 0; i < 40; i++) {
        cr_assert_eq(big[i], ids[20 + i], "token %d is %u, not %u", i, big[i], ids[20 + i]);
    }
    free(lb);
    free(ls);
    duet_model_free(m);
}

Test(kv_cache, a_step_the_pool_cannot_hold_fails_before_changing_anything)
{
    duet_model *m = load_stories();
    uint32_t n_vocab = m->hp.n_vocab;
    duet_engine *e;
    duet_status st;
    cr_assert_eq(duet_engine_new(m, 2, 8, 64, &e, &st), DUET_OK, "%s", st.message);
    duet_kv_pool *pool = pool_of(m, 3, 4);
    duet_kv_cache *a = cache_in(pool, 64), *b = cache_in(pool, 64);
    float *la = malloc(2 * n_vocab * sizeof *la), *lr = malloc(2 * n_vocab * sizeof *lr);
    eval(e, a, ids, 8, NULL);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 1);

    /* a's next position needs the last page and b's first one more: neither is taken */
    duet_batch_entry two[2] = {{.token = ids[8], .pos = 8, .kv = a, .want_logits = true},
                               {.token = 1, .pos = 0, .kv = b, .want_logits = true}};
    cr_assert_eq(duet_engine_step(e, two, 2, la, &st), DUET_RESOURCE_EXHAUSTED);
    cr_assert(strstr(st.message, "KV cache is full"), "%s", st.message);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 1, "a's page went back");
    cr_assert_eq(duet_kv_cache_reserved(a), 8);
    cr_assert_eq(duet_kv_cache_length(a), 8);
    cr_assert_eq(duet_kv_cache_length(b), 0);

    /* with b gone, a continues and computes what an unhindered sequence does */
    two[0].want_logits = true;
    cr_assert_eq(duet_engine_step(e, two, 1, la, &st), DUET_OK, "%s", st.message);
    duet_kv_pool *roomy = pool_of(m, 16, 4);
    duet_kv_cache *r = cache_in(roomy, 64);
    eval(e, r, ids, 8, NULL);
    eval(e, r, &ids[8], 1, lr);
    cr_assert(!memcmp(la, lr, n_vocab * sizeof *la), "logits differ after a refused step");
    duet_kv_cache_free(r);
    duet_kv_pool_free(roomy);
    free(la);
    free(lr);
    duet_kv_cache_free(a);
    duet_kv_cache_free(b);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 3);
    duet_kv_pool_free(pool);
    duet_engine_free(e);
    duet_model_free(m);
}

/* ---- the session cache ----------------------------------------------------------------- */

static duet_session *acquire(duet_session_cache *c, const char *id, const uint32_t *prompt,
                             uint32_t n, uint32_t *reused)
{
    duet_session *s;
    duet_status st;
    cr_assert_eq(duet_session_cache_acquire(c, id, prompt, n, &s, reused, &st), DUET_OK, "%s",
                 st.message);
    return s;
}

/* A turn: computes prompt[reused..n) in s's cache and greedy-decodes gen tokens (the last
 * one sampled, not fed); the final logits go to last. */
static void turn(duet_engine *e, duet_kv_cache *kv, const uint32_t *prompt, uint32_t n,
                 uint32_t reused, uint32_t *gen, uint32_t n_gen, float *last, uint32_t n_vocab)
{
    cr_assert_eq(duet_kv_cache_length(kv), reused);
    eval(e, kv, prompt + reused, n - reused, last);
    for (uint32_t i = 0; i < n_gen; i++) {
        gen[i] = argmax(last, n_vocab);
        if (i + 1 < n_gen) {
            eval(e, kv, &gen[i], 1, last);
        }
    }
}

Test(session_cache, the_next_turn_reuses_the_common_prefix)
{
    duet_model *m = load_stories();
    uint32_t n_vocab = m->hp.n_vocab;
    duet_engine *e;
    duet_status st;
    cr_assert_eq(duet_engine_new(m, 2, 16, 256, &e, &st), DUET_OK, "%s", st.message);
    duet_kv_pool *pool = pool_of(m, 64, 4);
    duet_session_cache *c;
    cr_assert_eq(duet_session_cache_new(pool, 256, &c, &st), DUET_OK, "%s", st.message);
    float *l1 = malloc(n_vocab * sizeof *l1), *l2 = malloc(n_vocab * sizeof *l2);

    /* turn 1: 10 prompt tokens, 8 generated */
    uint32_t conv[64], gen[8], gen2[8], gen_fresh[8], reused;
    memcpy(conv, ids, 10 * sizeof *conv);
    duet_session *s = acquire(c, "alice", conv, 10, &reused);
    cr_assert_eq(reused, 0);
    turn(e, duet_session_kv(s), conv, 10, 0, gen, 8, l1, n_vocab);
    memcpy(conv + 10, gen, sizeof gen);
    duet_session_cache_release(c, s, conv, 18); /* the 8th token was never fed */

    /* turn 2: everything so far and 3 new tokens: only the last generated one and the new
     * ones are computed */
    uint32_t added[3] = {300, 301, 302};
    memcpy(conv + 18, added, sizeof added);
    s = acquire(c, "alice", conv, 21, &reused);
    cr_assert_eq(reused, 17);
    turn(e, duet_session_kv(s), conv, 21, reused, gen2, 8, l1, n_vocab);
    cr_assert_eq(duet_kv_cache_length(duet_session_kv(s)), 21 + 7);

    /* a fresh sequence, run the same way, computes the same */
    duet_session *f = acquire(c, NULL, conv, 21, &reused);
    cr_assert_eq(reused, 0);
    eval(e, duet_session_kv(f), conv, 10, NULL);
    for (uint32_t i = 10; i < 17; i++) {
        eval(e, duet_session_kv(f), &conv[i], 1, NULL);
    }
    turn(e, duet_session_kv(f), conv, 21, 17, gen_fresh, 8, l2, n_vocab);
    cr_assert(!memcmp(l1, l2, n_vocab * sizeof *l1), "reused and fresh logits differ");
    /* and so does a fresh sequence that prefills the whole prompt at once */
    duet_session_cache_release(c, f, NULL, 0);
    f = acquire(c, NULL, conv, 21, &reused);
    turn(e, duet_session_kv(f), conv, 21, 0, gen_fresh, 8, l2, n_vocab);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(gen2[i], gen_fresh[i], "token %d: %u reused, %u fresh", i, gen2[i],
                     gen_fresh[i]);
    }
    duet_session_cache_release(c, f, NULL, 0);
    memcpy(conv + 21, gen2, sizeof gen2);
    duet_session_cache_release(c, s, conv, 29);

    /* the whole prompt cached: its last token is computed again */
    s = acquire(c, "alice", conv, 28, &reused);
    cr_assert_eq(reused, 27);
    duet_session_cache_release(c, s, conv, 27);
    /* a prompt that departs early keeps only the shared start */
    uint32_t other[6] = {conv[0], conv[1], conv[2], 5, 6, 7};
    s = acquire(c, "alice", other, 6, &reused);
    cr_assert_eq(reused, 3);
    cr_assert_eq(duet_kv_cache_reserved(duet_session_kv(s)), 4, "pages past 3 went back");
    duet_session_cache_release(c, s, other, 3);

    free(l1);
    free(l2);
    duet_session_cache_free(c);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 64);
    duet_kv_pool_free(pool);
    duet_engine_free(e);
    duet_model_free(m);
}

Test(session_cache, sessions_never_see_each_others_cache)
{
    duet_model *m = load_stories();
    uint32_t n_vocab = m->hp.n_vocab;
    duet_engine *e;
    duet_status st;
    cr_assert_eq(duet_engine_new(m, 2, 16, 64, &e, &st), DUET_OK, "%s", st.message);
    duet_kv_pool *pool = pool_of(m, 32, 4);
    duet_session_cache *c;
    cr_assert_eq(duet_session_cache_new(pool, 64, &c, &st), DUET_OK, "%s", st.message);
    float *la = malloc(n_vocab * sizeof *la), *lb = malloc(n_vocab * sizeof *lb);
    uint32_t reused;

    /* 11 tokens at once and the 12th alone, so that every run below is the same */
    duet_session *a = acquire(c, "alice", ids, 12, &reused);
    eval(e, duet_session_kv(a), ids, 11, NULL);
    eval(e, duet_session_kv(a), &ids[11], 1, la);
    duet_session_cache_release(c, a, ids, 12);

    /* bob sends alice's very prompt: he starts from nothing, in a cache of his own */
    duet_session *b = acquire(c, "bob", ids, 12, &reused);
    cr_assert_eq(reused, 0);
    cr_assert_eq(duet_kv_cache_length(duet_session_kv(b)), 0);
    a = acquire(c, "alice", ids, 12, &reused);
    cr_assert_eq(reused, 11);
    cr_assert_neq(duet_session_kv(a), duet_session_kv(b));
    eval(e, duet_session_kv(b), ids, 11, NULL);
    eval(e, duet_session_kv(b), &ids[11], 1, lb);
    cr_assert(!memcmp(la, lb, n_vocab * sizeof *la));
    /* bob's computing left alice's cache as it was: her last token gives her logits again */
    eval(e, duet_session_kv(a), &ids[11], 1, lb);
    cr_assert(!memcmp(la, lb, n_vocab * sizeof *la));
    cr_assert_eq(duet_session_cache_count(c), 2);
    duet_session_cache_release(c, a, ids, 12);
    duet_session_cache_release(c, b, ids, 12);

    /* ids are compared whole: a prefix or an extension of one is another session */
    duet_session *x = acquire(c, "alic", ids, 12, &reused);
    cr_assert_eq(reused, 0);
    duet_session_cache_release(c, x, NULL, 0);
    x = acquire(c, "alice2", ids, 12, &reused);
    cr_assert_eq(reused, 0);
    duet_session_cache_release(c, x, NULL, 0);
    cr_assert_eq(duet_session_cache_count(c), 2, "sessions left empty are not kept");

    free(la);
    free(lb);
    duet_session_cache_free(c);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 32);
    duet_kv_pool_free(pool);
    duet_engine_free(e);
    duet_model_free(m);
}

/* Acquires id, fills n positions and releases it idle. */
static void idle_session(duet_session_cache *c, const char *id, uint32_t n)
{
    uint32_t reused;
    duet_session *s = acquire(c, id, ids, n, &reused);
    fill(duet_session_kv(s), n);
    duet_session_cache_release(c, s, ids, n);
}

static uint32_t reuse_of(duet_session_cache *c, const char *id, uint32_t n)
{
    uint32_t reused;
    duet_session *s = acquire(c, id, ids, n, &reused);
    duet_session_cache_release(c, s, ids, reused);
    return reused;
}

Test(session_cache, idle_sessions_are_evicted_least_recently_used_first)
{
    duet_model *m = load_stories();
    duet_kv_pool *pool = pool_of(m, 6, 4);
    duet_session_cache *c;
    duet_status st;
    cr_assert_eq(duet_session_cache_new(pool, 64, &c, &st), DUET_OK, "%s", st.message);
    idle_session(c, "a", 8);
    idle_session(c, "b", 8);
    idle_session(c, "c", 8);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 0);
    cr_assert_eq(reuse_of(c, "a", 9), 8); /* a is now the most recently used */

    /* d needs 2 pages: b, the least recently used, goes */
    uint32_t reused;
    duet_session *d = acquire(c, "d", ids, 8, &reused);
    fill(duet_session_kv(d), 8);
    cr_assert_eq(duet_session_cache_evictions(c), 1);
    cr_assert_eq(duet_session_cache_count(c), 3);
    /* 2 more: c goes, and a stays */
    fill(duet_session_kv(d), 16);
    cr_assert_eq(duet_session_cache_evictions(c), 2);
    duet_session_cache_release(c, d, ids, 16);
    cr_assert_eq(reuse_of(c, "a", 9), 8);
    cr_assert_eq(reuse_of(c, "b", 9), 0);
    cr_assert_eq(reuse_of(c, "c", 9), 0);
    cr_assert_eq(reuse_of(c, "d", 17), 16);

    /* a dropped session's pages return at once */
    cr_assert_eq(duet_session_cache_drop(c, "a", &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 2);
    cr_assert_eq(duet_session_cache_drop(c, "a", &st), DUET_NOT_FOUND);
    duet_session_cache_free(c);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 6);
    duet_kv_pool_free(pool);
    duet_model_free(m);
}

Test(session_cache, a_busy_session_is_never_evicted)
{
    duet_model *m = load_stories();
    uint32_t kv_dim = m->hp.n_head_kv * m->hp.head_dim, n_layer = m->hp.n_layer;
    duet_kv_pool *pool = pool_of(m, 4, 4);
    duet_session_cache *c;
    duet_status st;
    cr_assert_eq(duet_session_cache_new(pool, 64, &c, &st), DUET_OK, "%s", st.message);
    uint32_t reused;
    duet_session *busy = acquire(c, "busy", ids, 8, &reused);
    duet_kv_cache *bkv = duet_session_kv(busy);
    fill(bkv, 8);
    write_rows(bkv, n_layer, kv_dim, 0, 8);
    idle_session(c, "idle", 8);

    /* the newcomer may take the idle session's pages, never the busy one's */
    duet_session *n = acquire(c, "new", ids, 12, &reused);
    duet_kv_cache *nkv = duet_session_kv(n);
    fill(nkv, 8);
    cr_assert_eq(duet_session_cache_evictions(c), 1);
    cr_assert_eq(duet_kv_cache_reserve(nkv, 12, &st), DUET_RESOURCE_EXHAUSTED);
    cr_assert(strstr(st.message, "no idle session left"), "%s", st.message);
    cr_assert_eq(duet_kv_cache_reserved(bkv), 8);
    check_rows(bkv, n_layer, kv_dim, 0, 8);

    /* the engine's step is refused the same way, leaving both sequences as they were */
    duet_engine *e;
    cr_assert_eq(duet_engine_new(m, 1, 8, 64, &e, &st), DUET_OK, "%s", st.message);
    duet_batch_entry one = {.token = 1, .pos = 8, .kv = nkv};
    cr_assert_eq(duet_engine_step(e, &one, 1, NULL, &st), DUET_RESOURCE_EXHAUSTED);
    cr_assert_eq(duet_kv_cache_length(nkv), 8);
    check_rows(bkv, n_layer, kv_dim, 0, 8);
    duet_engine_free(e);

    /* once released, the formerly busy session is fair game */
    duet_session_cache_release(c, busy, ids, 8);
    cr_assert_eq(duet_kv_cache_reserve(nkv, 12, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_session_cache_evictions(c), 2);
    duet_session_cache_release(c, n, ids, 8);
    duet_session_cache_free(c);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 4);
    duet_kv_pool_free(pool);
    duet_model_free(m);
}

Test(session_cache, a_session_serves_one_request_at_a_time)
{
    duet_model *m = load_stories();
    duet_kv_pool *pool = pool_of(m, 8, 4);
    duet_session_cache *c;
    duet_status st;
    cr_assert_eq(duet_session_cache_new(pool, 64, &c, &st), DUET_OK, "%s", st.message);
    uint32_t reused;
    duet_session *s = acquire(c, "chat-1", ids, 8, &reused), *again = NULL;
    fill(duet_session_kv(s), 8);
    cr_assert_eq(duet_session_cache_acquire(c, "chat-1", ids, 8, &again, &reused, &st),
                 DUET_FAILED_PRECONDITION);
    cr_assert_null(again);
    cr_assert(strstr(st.message, "chat-1") && strstr(st.message, "in use"), "%s", st.message);
    duet_session_cache_release(c, s, ids, 8);
    s = acquire(c, "chat-1", ids, 9, &reused);
    cr_assert_eq(reused, 8);

    /* dropped while in use: the id starts afresh at once; the old sequence goes at release */
    cr_assert_eq(duet_session_cache_drop(c, "chat-1", &st), DUET_OK, "%s", st.message);
    duet_session *fresh = acquire(c, "chat-1", ids, 9, &reused);
    cr_assert_eq(reused, 0);
    cr_assert_neq(duet_session_kv(fresh), duet_session_kv(s));
    duet_session_cache_release(c, s, ids, 8);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 8);
    duet_session_cache_release(c, fresh, NULL, 0);

    /* anonymous sequences are not kept */
    duet_session *anon = acquire(c, "", ids, 8, &reused);
    fill(duet_session_kv(anon), 8);
    cr_assert_eq(duet_session_cache_count(c), 0);
    duet_session_cache_release(c, anon, ids, 8);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 8);

    /* a release keeps only the positions its tokens cover, and only computed ones */
    s = acquire(c, "chat-2", ids, 8, &reused);
    fill(duet_session_kv(s), 8);
    duet_session_cache_release(c, s, ids, 12);
    cr_assert_eq(reuse_of(c, "chat-2", 12), 8);
    s = acquire(c, "chat-2", ids, 12, &reused);
    duet_session_cache_release(c, s, ids, 5);
    cr_assert_eq(reuse_of(c, "chat-2", 12), 5);

    char long_id[DUET_SESSION_ID_MAX + 2];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = 0;
    cr_assert_eq(duet_session_cache_acquire(c, long_id, ids, 8, &again, &reused, &st),
                 DUET_INVALID_ARGUMENT);
    long_id[DUET_SESSION_ID_MAX] = 0; /* exactly the limit is fine */
    s = acquire(c, long_id, ids, 8, &reused);
    duet_session_cache_release(c, s, NULL, 0);

    duet_session_cache_free(c);
    cr_assert_eq(duet_kv_pool_pages_free(pool), 8);
    duet_kv_pool_free(pool);
    duet_model_free(m);
}

/* ---- Q8_0 storage ---- */

Test(kv_cache, q8_0_needs_heads_of_a_multiple_of_32)
{
    duet_model *m = load_stories(); /* heads of 8 values */
    duet_kv_pool *pool;
    duet_status st;
    cr_assert_eq(duet_kv_pool_new_pages_typed(m, 4, 16, DUET_KV_Q8_0, &pool, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "multiple of 32") && strstr(st.message, "8"), "%s", st.message);
    duet_model_free(m);
}

/* A synthetic model with 64-value heads, run with an F16 and a Q8_0 cache: the Q8_0 pages
 * take 17/32 of the memory and the logits stay close (8-bit blocks keep about 2 decimal
 * digits of each key and value). */
Test(kv_cache, q8_0_cache_is_smaller_and_close_to_f16)
{
    char vocab[1024], dir[256], out[512];
    const char *models = getenv("DUET_TEST_MODELS");
    snprintf(vocab, sizeof vocab, "%s/stories260K.gguf",
             models && *models ? models : "../shared/models");
    test_make_temp_dir(dir, sizeof dir, "duet-kvq8");
    snprintf(out, sizeof out, "%s/m.gguf", dir);
    const char *argv[] = {
        "duet-mkmodel", "--out",    out, "--vocab-from", vocab, "--dim",      "256", "--ffn",
        "512",          "--layers", "2", "--heads",      "4",   "--kv-heads", "2",   "--type",
        "F32",          "--quiet",  NULL};
    cr_assert_eq(test_run_tool(argv), 0, "duet-mkmodel failed");
    duet_model *m;
    duet_status st;
    cr_assert_eq(duet_model_load(out, &m, &st), DUET_OK, "%s", st.message);
    duet_engine *e;
    cr_assert_eq(duet_engine_new(m, 2, 16, 128, &e, &st), DUET_OK, "%s", st.message);
    uint32_t prompt[40];
    for (uint32_t i = 0; i < 40; i++) {
        prompt[i] = i == 0 ? 1 : 3 + (i * 37) % 500;
    }
    const uint32_t nv = m->hp.n_vocab;
    float *lf = malloc(nv * sizeof *lf), *lq = malloc(nv * sizeof *lq);
    duet_kv_pool *pf, *pq;
    cr_assert_eq(duet_kv_pool_new_pages_typed(m, 8, 16, DUET_KV_F16, &pf, &st), DUET_OK);
    cr_assert_eq(duet_kv_pool_new_pages_typed(m, 8, 16, DUET_KV_Q8_0, &pq, &st), DUET_OK, "%s",
                 st.message);
    cr_assert_eq(duet_kv_pool_bytes_per_page(pq) * 32, duet_kv_pool_bytes_per_page(pf) * 17);
    duet_kv_cache *kf = cache_in(pf, 128), *kq = cache_in(pq, 128);
    cr_assert_eq(duet_engine_eval(e, kf, prompt, 40, lf, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_engine_eval(e, kq, prompt, 40, lq, &st), DUET_OK, "%s", st.message);
    double dot = 0, nf = 0, nq = 0, worst = 0, range = 0;
    for (uint32_t i = 0; i < nv; i++) {
        cr_assert(isfinite(lq[i]), "logit %u is %f", i, (double)lq[i]);
        dot += (double)lf[i] * lq[i];
        nf += (double)lf[i] * lf[i];
        nq += (double)lq[i] * lq[i];
        worst = fmax(worst, fabs((double)lf[i] - lq[i]));
        range = fmax(range, fabs((double)lf[i]));
    }
    double cosine = dot / sqrt(nf * nq);
    cr_assert_gt(cosine, 0.999, "cosine %.6f between F16- and Q8_0-cache logits", cosine);
    cr_assert_lt(worst, 0.05 * range, "largest logit gap %.4f of a range %.4f", worst, range);
    cr_assert_gt(worst, 0.0, "the Q8_0 path must actually differ from F16 somewhere");
    duet_kv_cache_free(kf);
    duet_kv_cache_free(kq);
    duet_kv_pool_free(pf);
    duet_kv_pool_free(pq);
    free(lf);
    free(lq);
    duet_engine_free(e);
    duet_model_free(m);
    test_remove_dir(dir);
}
