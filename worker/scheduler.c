#include "scheduler.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv_cache.h"
#include "log.h"
#include "sampler.h"
#include "timer.h"

typedef enum { SEQ_PREFILL, SEQ_DECODE } seq_phase;

struct duet_gen_ticket {
    duet_gen_request req;
    duet_gen_sink sink;
    uint64_t deadline_ns;
    atomic_int cancel; /* 0, or the duet_code the sequence is cancelled with */
    duet_gen_ticket *next;

    /* running state: only the scheduler thread touches it */
    seq_phase phase;
    duet_session *seq;
    duet_kv_cache *kv; /* the session's */
    uint32_t take;     /* prompt tokens planned for this step */
    uint32_t *tokens;  /* prompt, then what was generated: what the cache holds */
    uint32_t n_fed;    /* prompt tokens in the cache (reused ones included) */
    uint32_t cached;   /* prompt tokens reused from the session's cache */
    int32_t last;      /* the token sampled last, fed at the next step */
    uint32_t generated;
    duet_sampler *sampler;
    duet_detok_stream *detok;
    duet_stop_matcher *stops;
    int32_t *pend_ids; /* output not yet taken by the sink */
    size_t n_pend, cap_pend;
    char *pend_text;
    size_t pend_len, cap_text;
    uint64_t t_submit, t_admit, t_prefill_done, t_first;
};

struct duet_scheduler {
    duet_engine *engine;
    duet_session_cache *sessions;
    const duet_tokenizer *tok;
    uint32_t context, n_vocab, max_batch;
    duet_scheduler_options opt;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    bool draining;                          /* no new requests */
    pthread_cond_t idle;                    /* signalled when nothing runs or waits */
    bool joined;                            /* the thread was (or is being) joined */
    duet_gen_ticket *wait_head, *wait_tail; /* FIFO */
    uint32_t n_waiting;
    duet_scheduler_stats stats;    /* under lock */
    uint64_t rate_t0, rate_count0; /* tokens/s window, under lock */

    /* the scheduler thread's own */
    pthread_t thread;
    duet_gen_ticket **running;
    uint32_t n_running;
    duet_batch_entry *entries;
    uint32_t *entry_seq; /* index into running of each entry */
    float *logits;       /* max_running rows */
};

/* ---- output ---------------------------------------------------------------------------- */

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) {
        return true;
    }
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        n *= 2;
    }
    void *q = realloc(*p, n * elem);
    if (!q) {
        return false;
    }
    *p = q;
    *cap = n;
    return true;
}

static bool pend_text(duet_gen_ticket *t, const char *text, size_t len)
{
    if (len == 0) {
        return true;
    }
    if (!grow((void **)&t->pend_text, &t->cap_text, t->pend_len + len, 1)) {
        return false;
    }
    memcpy(t->pend_text + t->pend_len, text, len);
    t->pend_len += len;
    return true;
}

static bool pend_id(duet_gen_ticket *t, int32_t id)
{
    if (!grow((void **)&t->pend_ids, &t->cap_pend, t->n_pend + 1, sizeof *t->pend_ids)) {
        return false;
    }
    t->pend_ids[t->n_pend++] = id;
    return true;
}

/* Offers the pending output to the sink. False when the receiver is gone. */
static bool flush_output(duet_gen_ticket *t)
{
    if (t->n_pend == 0 && t->pend_len == 0) {
        return true;
    }
    duet_code rc = t->sink.chunk(t->sink.arg, t->pend_ids, t->n_pend, t->pend_text, t->pend_len);
    if (rc == DUET_RESOURCE_EXHAUSTED) {
        return true; /* the connection is busy: try again with more next step */
    }
    t->n_pend = 0;
    t->pend_len = 0;
    return rc == DUET_OK;
}

/* ---- sequence life ---------------------------------------------------------------------- */

static double ms_between(uint64_t a, uint64_t b)
{
    return a && b > a ? (double)(b - a) / 1e6 : 0.0;
}

/* Gives the sequence back to the session cache: kept for the next turn when keep, else the
 * session is forgotten and its pages freed. */
static void release_sequence(duet_scheduler *s, duet_gen_ticket *t, bool keep)
{
    if (!t->seq) {
        return;
    }
    if (!keep && t->req.session_id[0]) {
        duet_session_cache_drop(s->sessions, t->req.session_id, NULL);
    }
    duet_session_cache_release(s->sessions, t->seq, t->tokens,
                               keep ? t->req.n_prompt + t->generated : 0);
    t->seq = NULL;
    t->kv = NULL;
}

static void ticket_free(duet_gen_ticket *t)
{
    free(t->tokens);
    duet_sampler_free(t->sampler);
    duet_detok_stream_free(t->detok);
    duet_stop_matcher_free(t->stops);
    duet_gen_request_free(&t->req);
    free(t->pend_ids);
    free(t->pend_text);
    free(t);
}

/* Ends t: releases its cache, tells the sink, frees it. */
static void finish(duet_scheduler *s, duet_gen_ticket *t, duet_finish_reason why,
                   const duet_status *st)
{
    uint64_t now = duet_now_ns();
    /* pages back at once, before the sink's answer goes out */
    release_sequence(s, t, st->code == DUET_OK && why != DUET_FINISH_CANCELLED);
    if (st->code == DUET_OK && why != DUET_FINISH_CANCELLED) {
        const char *held;
        size_t held_len;
        duet_stop_output out = {0};
        duet_status ignored;
        /* an unfinished character at the very end becomes U+FFFD, as in one-shot mode */
        duet_detok_stream_flush(t->detok, &held, &held_len);
        if (held_len &&
            duet_stop_matcher_feed(t->stops, held, held_len, &out, &ignored) == DUET_OK) {
            pend_text(t, out.text, out.len);
        }
        if (!out.stopped) {
            duet_stop_matcher_flush(t->stops, &out);
            pend_text(t, out.text, out.len);
        }
        /* the last ids and text go in a chunk; only when the connection is too busy to
         * take it does the text ride in the end (GenerateEnd.text) */
        flush_output(t);
    }
    duet_gen_result res = {
        .finish = why,
        .prompt_tokens = t->req.n_prompt,
        .cached_prompt_tokens = t->cached,
        .completion_tokens = t->generated,
        .queue_ms = ms_between(t->t_submit, t->t_admit),
        .prefill_ms = ms_between(t->t_admit, t->t_prefill_done),
        .decode_ms = ms_between(t->t_prefill_done, now),
        .first_token_ms = ms_between(t->t_submit, t->t_first),
        .tail = t->pend_text,
        .tail_len = t->pend_len,
    };
    t->sink.end(t->sink.arg, &res, st);
    if (t->t_admit) {
        pthread_mutex_lock(&s->lock);
        s->stats.total_prompt_tokens += t->req.n_prompt;
        s->stats.total_cached_tokens += t->cached;
        pthread_mutex_unlock(&s->lock);
    }
    ticket_free(t);
}

static void finish_ok(duet_scheduler *s, duet_gen_ticket *t, duet_finish_reason why)
{
    duet_status ok = {.code = DUET_OK};
    finish(s, t, why, &ok);
}

static void finish_error(duet_scheduler *s, duet_gen_ticket *t, const duet_status *st)
{
    finish(s, t, DUET_FINISH_CANCELLED, st);
}

/* Makes t ready to run: its cache, sampler, detokenizer and stop matcher. */
static duet_code start_sequence(duet_scheduler *s, duet_gen_ticket *t, duet_status *st)
{
    t->tokens = malloc(((size_t)t->req.n_prompt + t->req.max_tokens) * sizeof *t->tokens);
    if (!t->tokens) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (uint32_t i = 0; i < t->req.n_prompt; i++) {
        t->tokens[i] = (uint32_t)t->req.prompt[i];
    }
    uint32_t reused = 0;
    if (duet_session_cache_acquire(s->sessions, t->req.session_id, t->tokens, t->req.n_prompt,
                                   &t->seq, &reused, st) != DUET_OK) {
        return st->code;
    }
    t->kv = duet_session_kv(t->seq);
    t->n_fed = t->cached = reused;
    if (duet_sampler_new(&t->req.sampling, (int32_t)s->n_vocab, &t->sampler, st) != DUET_OK ||
        duet_detok_stream_create(s->tok, 0, &t->detok, st) != DUET_OK ||
        duet_stop_matcher_new((const char *const *)t->req.stops, t->req.n_stops, &t->stops, st) !=
            DUET_OK) {
        return st->code;
    }
    /* the penalties see the prompt, as in llama.cpp's server */
    for (uint32_t i = 0; i < t->req.n_prompt; i++) {
        duet_sampler_accept(t->sampler, t->req.prompt[i], NULL);
    }
    t->phase = SEQ_PREFILL;
    t->t_admit = duet_now_ns();
    return DUET_OK;
}

/* Why t must end now, or 0. */
static int must_end(const duet_gen_ticket *t, uint64_t now)
{
    int why = atomic_load(&t->cancel);
    if (why) {
        return why;
    }
    return t->deadline_ns && now >= t->deadline_ns ? DUET_DEADLINE_EXCEEDED : 0;
}

static void end_cancelled(duet_scheduler *s, duet_gen_ticket *t, int why)
{
    duet_status st;
    if (why == DUET_DEADLINE_EXCEEDED) {
        duet_status_set(&st, DUET_DEADLINE_EXCEEDED, "the deadline passed after %u tokens",
                        t->generated);
    } else if (why == DUET_UNAVAILABLE) {
        duet_status_set(&st, DUET_UNAVAILABLE, "the worker is shutting down");
    } else {
        duet_status_set(&st, DUET_CANCELLED, "cancelled after %u tokens", t->generated);
    }
    finish_error(s, t, &st);
}

/* ---- one step ---------------------------------------------------------------------------- */

/* Moves waiting sequences into the batch while there is room. */
static void admit(duet_scheduler *s)
{
    for (;;) {
        pthread_mutex_lock(&s->lock);
        duet_gen_ticket *t = NULL;
        if (s->n_running < s->opt.max_running && s->wait_head) {
            t = s->wait_head;
            s->wait_head = t->next;
            if (!s->wait_head) {
                s->wait_tail = NULL;
            }
            s->n_waiting--;
            s->stats.waiting = s->n_waiting;
        }
        pthread_mutex_unlock(&s->lock);
        if (!t) {
            return;
        }
        duet_status st;
        int why = must_end(t, duet_now_ns());
        if (why) {
            end_cancelled(s, t, why);
        } else if (start_sequence(s, t, &st) != DUET_OK) {
            finish_error(s, t, &st);
        } else {
            pthread_mutex_lock(&s->lock);
            s->running[s->n_running++] = t;
            s->stats.running = s->n_running;
            pthread_mutex_unlock(&s->lock);
        }
    }
}

/* Ends waiting sequences that were cancelled or ran out of time, without waiting for a
 * place in the batch. */
static void reap_waiting(duet_scheduler *s)
{
    uint64_t now = duet_now_ns();
    duet_gen_ticket *ended = NULL;
    pthread_mutex_lock(&s->lock);
    duet_gen_ticket **link = &s->wait_head, *prev = NULL;
    while (*link) {
        duet_gen_ticket *t = *link;
        if (must_end(t, now)) {
            *link = t->next;
            if (s->wait_tail == t) {
                s->wait_tail = prev;
            }
            s->n_waiting--;
            t->next = ended;
            ended = t;
        } else {
            prev = t;
            link = &t->next;
        }
    }
    s->stats.waiting = s->n_waiting;
    pthread_mutex_unlock(&s->lock);
    while (ended) {
        duet_gen_ticket *next = ended->next;
        end_cancelled(s, ended, must_end(ended, now));
        ended = next;
    }
}

static void remove_running(duet_scheduler *s, uint32_t i)
{
    memmove(&s->running[i], &s->running[i + 1], (s->n_running - i - 1) * sizeof *s->running);
    pthread_mutex_lock(&s->lock);
    s->n_running--;
    s->stats.running = s->n_running;
    pthread_mutex_unlock(&s->lock);
}

/* Ends the sequences that were cancelled or ran out of time. */
static void reap(duet_scheduler *s)
{
    uint64_t now = duet_now_ns();
    for (uint32_t i = 0; i < s->n_running;) {
        int why = must_end(s->running[i], now);
        if (why) {
            duet_gen_ticket *t = s->running[i];
            remove_running(s, i);
            end_cancelled(s, t, why);
        } else {
            i++;
        }
    }
}

/* Plans this step: a decode token for every decoding sequence, then prompt chunks in
 * arrival order with what is left of the batch, and reserves the cache pages each needs.
 * A sequence the pool cannot grow ends here (RESOURCE_EXHAUSTED), before the step. */
static void plan_step(duet_scheduler *s)
{
    uint32_t budget = s->max_batch;
    for (uint32_t i = 0; i < s->n_running; i++) {
        if (s->running[i]->phase == SEQ_DECODE) {
            budget--;
        }
    }
    for (uint32_t i = 0; i < s->n_running;) {
        duet_gen_ticket *t = s->running[i];
        uint32_t need;
        if (t->phase == SEQ_DECODE) {
            need = t->req.n_prompt + t->generated;
            t->take = 0;
        } else {
            uint32_t left = t->req.n_prompt - t->n_fed;
            t->take = left < budget ? left : budget;
            budget -= t->take;
            need = t->n_fed + t->take;
        }
        duet_status st;
        if (need > 0 && duet_kv_cache_reserve(t->kv, need, &st) != DUET_OK) {
            remove_running(s, i);
            duet_status_set(&st, DUET_RESOURCE_EXHAUSTED, "the KV cache is full: %s", st.message);
            finish_error(s, t, &st);
            continue;
        }
        i++;
    }
}

static uint32_t build_batch(duet_scheduler *s)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->n_running; i++) {
        duet_gen_ticket *t = s->running[i];
        if (t->phase == SEQ_DECODE) {
            s->entries[n] = (duet_batch_entry){.token = (uint32_t)t->last,
                                               .pos = t->req.n_prompt + t->generated - 1,
                                               .kv = t->kv,
                                               .want_logits = true};
            s->entry_seq[n++] = i;
        }
    }
    for (uint32_t i = 0; i < s->n_running; i++) {
        duet_gen_ticket *t = s->running[i];
        if (t->phase != SEQ_PREFILL) {
            continue;
        }
        for (uint32_t k = 0; k < t->take; k++) {
            uint32_t pos = t->n_fed + k;
            s->entries[n] = (duet_batch_entry){.token = (uint32_t)t->req.prompt[pos],
                                               .pos = pos,
                                               .kv = t->kv,
                                               .want_logits = pos == t->req.n_prompt - 1};
            s->entry_seq[n++] = i;
        }
        t->n_fed += t->take;
        t->take = 0;
    }
    return n;
}

/* Samples the next token of t from its logits and routes the output. True when t goes on. */
static bool advance(duet_scheduler *s, duet_gen_ticket *t, const float *logits, uint64_t now)
{
    if (t->phase == SEQ_PREFILL) {
        t->phase = SEQ_DECODE;
        t->t_prefill_done = now;
    }
    int32_t id = duet_sampler_sample(t->sampler, logits);
    if (!t->t_first) {
        t->t_first = now;
    }
    if (!t->req.ignore_eos && duet_tokenizer_is_eog(s->tok, id)) {
        finish_ok(s, t, DUET_FINISH_STOP);
        return false;
    }
    duet_sampler_accept(t->sampler, id, NULL);
    t->last = id;
    t->tokens[t->req.n_prompt + t->generated] = (uint32_t)id;
    t->generated++;
    duet_status st;
    const char *text = NULL;
    size_t len = 0;
    duet_stop_output out = {0};
    if (!pend_id(t, id) || duet_detok_stream_push(t->detok, id, &text, &len, &st) != DUET_OK ||
        duet_stop_matcher_feed(t->stops, text, len, &out, &st) != DUET_OK ||
        !pend_text(t, out.text, out.len)) {
        if (st.code == DUET_OK) {
            duet_status_set(&st, DUET_RESOURCE_EXHAUSTED, "out of memory for the output");
        }
        finish_error(s, t, &st);
        return false;
    }
    pthread_mutex_lock(&s->lock);
    s->stats.total_generated_tokens++;
    pthread_mutex_unlock(&s->lock);
    if (out.stopped) {
        finish_ok(s, t, DUET_FINISH_STOP);
        return false;
    }
    if (t->generated >= t->req.max_tokens) {
        finish_ok(s, t, DUET_FINISH_LENGTH);
        return false;
    }
    if (!flush_output(t)) {
        duet_status_set(&st, DUET_CANCELLED, "the client went away after %u tokens", t->generated);
        finish_error(s, t, &st);
        return false;
    }
    return true;
}

static void update_rate(duet_scheduler *s, uint64_t now)
{
    pthread_mutex_lock(&s->lock);
    if (now - s->rate_t0 >= 2000000000ull) {
        uint64_t count = s->stats.total_generated_tokens;
        s->stats.tokens_per_second =
            (double)(count - s->rate_count0) * 1e9 / (double)(now - s->rate_t0);
        s->rate_t0 = now;
        s->rate_count0 = count;
    }
    pthread_mutex_unlock(&s->lock);
}

static void step(duet_scheduler *s)
{
    plan_step(s);
    uint32_t n = build_batch(s);
    if (n == 0) {
        return;
    }
    duet_status st;
    if (duet_engine_step(s->engine, s->entries, n, s->logits, &st) != DUET_OK) {
        /* every sequence in the step shares the failure */
        duet_log_error("forward pass failed: %s", st.message);
        while (s->n_running > 0) {
            duet_gen_ticket *t = s->running[s->n_running - 1];
            remove_running(s, s->n_running - 1);
            finish_error(s, t, &st);
        }
        return;
    }
    uint64_t now = duet_now_ns();
    /* logits rows come in entry order, one per entry that wanted them; a sequence has at
     * most one such entry per step */
    uint32_t row = 0;
    for (uint32_t e = 0; e < n; e++) {
        if (!s->entries[e].want_logits) {
            continue;
        }
        duet_gen_ticket *t = s->running[s->entry_seq[e]];
        if (!advance(s, t, s->logits + (size_t)row * s->n_vocab, now)) {
            s->running[s->entry_seq[e]] = NULL; /* ended and freed */
        }
        row++;
    }
    for (uint32_t i = 0; i < s->n_running;) {
        if (s->running[i] == NULL) {
            remove_running(s, i);
        } else {
            i++;
        }
    }
    update_rate(s, now);
}

static void *scheduler_main(void *arg)
{
    duet_scheduler *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->stopping && s->n_running == 0 && !s->wait_head) {
            pthread_cond_broadcast(&s->idle);
            pthread_cond_wait(&s->wake, &s->lock);
        }
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        if (stopping) {
            break;
        }
        reap_waiting(s);
        admit(s);
        reap(s);
        step(s);
    }
    /* shutting down: end what runs, then what waits */
    for (uint32_t i = 0; i < s->n_running; i++) {
        end_cancelled(s, s->running[i], DUET_UNAVAILABLE);
    }
    s->n_running = 0;
    pthread_mutex_lock(&s->lock);
    duet_gen_ticket *t = s->wait_head;
    s->wait_head = s->wait_tail = NULL;
    s->n_waiting = 0;
    pthread_mutex_unlock(&s->lock);
    while (t) {
        duet_gen_ticket *next = t->next;
        end_cancelled(s, t, DUET_UNAVAILABLE);
        t = next;
    }
    return NULL;
}

/* ---- public ------------------------------------------------------------------------------ */

duet_code duet_scheduler_new(duet_engine *e, const duet_tokenizer *tok,
                             duet_session_cache *sessions, uint32_t context,
                             const duet_scheduler_options *o, duet_scheduler **out, duet_status *st)
{
    if (o->max_running == 0 || o->max_running > duet_engine_max_batch(e)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "max_running is %u: it must be 1 .. the batch size (%u)",
                               o->max_running, duet_engine_max_batch(e));
    }
    duet_scheduler *s = calloc(1, sizeof *s);
    if (!s) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    s->engine = e;
    s->sessions = sessions;
    s->tok = tok;
    s->context = context;
    s->opt = *o;
    s->n_vocab = duet_engine_model(e)->hp.n_vocab;
    s->max_batch = duet_engine_max_batch(e);
    s->running = calloc(o->max_running, sizeof *s->running);
    s->entries = calloc(s->max_batch, sizeof *s->entries);
    s->entry_seq = calloc(s->max_batch, sizeof *s->entry_seq);
    s->logits = malloc((size_t)o->max_running * s->n_vocab * sizeof *s->logits);
    s->rate_t0 = duet_now_ns();
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->idle, NULL);
    if (!s->running || !s->entries || !s->entry_seq || !s->logits ||
        pthread_create(&s->thread, NULL, scheduler_main, s) != 0) {
        free(s->running);
        free(s->entries);
        free(s->entry_seq);
        free(s->logits);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->wake);
        pthread_cond_destroy(&s->idle);
        free(s);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                               "out of memory for the scheduler (%u sequences, vocabulary of %u)",
                               o->max_running, duet_engine_model(e)->hp.n_vocab);
    }
    *out = s;
    return DUET_OK;
}

duet_code duet_scheduler_submit(duet_scheduler *s, duet_gen_request *req, uint64_t deadline_ns,
                                const duet_gen_sink *sink, duet_gen_ticket **ticket,
                                duet_status *st)
{
    duet_gen_ticket *t = calloc(1, sizeof *t);
    if (!t) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    pthread_mutex_lock(&s->lock);
    s->stats.total_requests++;
    bool full = s->n_running + s->n_waiting >= s->opt.max_running + s->opt.max_waiting;
    if (full || s->stopping || s->draining) {
        s->stats.rejected++;
        pthread_mutex_unlock(&s->lock);
        free(t);
        if (s->stopping || s->draining) {
            return duet_status_set(st, DUET_UNAVAILABLE, "the worker is shutting down");
        }
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                               "the worker is full: %u sequences running and %u waiting (limits "
                               "%u and %u); retry in a moment",
                               s->n_running, s->n_waiting, s->opt.max_running, s->opt.max_waiting);
    }
    t->req = *req;
    memset(req, 0, sizeof *req);
    t->sink = *sink;
    t->deadline_ns = deadline_ns;
    t->t_submit = duet_now_ns();
    if (s->wait_tail) {
        s->wait_tail->next = t;
    } else {
        s->wait_head = t;
    }
    s->wait_tail = t;
    s->n_waiting++;
    s->stats.waiting = s->n_waiting;
    *ticket = t;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    return DUET_OK;
}

void duet_scheduler_cancel(duet_gen_ticket *t, duet_code why)
{
    int expected = 0;
    atomic_compare_exchange_strong(&t->cancel, &expected, (int)(why ? why : DUET_CANCELLED));
    /* the scheduler notices at its next step; an idle one has nothing running to cancel
     * except waiting tickets, which admit() checks */
}

void duet_scheduler_stats_get(duet_scheduler *s, duet_scheduler_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->lock);
}

bool duet_scheduler_drain(duet_scheduler *s, uint32_t grace_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += grace_ms / 1000;
    until.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    s->draining = true;
    int rc = 0;
    while ((s->n_running > 0 || s->wait_head) && rc == 0 && !s->joined) {
        rc = pthread_cond_timedwait(&s->idle, &s->lock, &until);
    }
    bool done = s->n_running == 0 && !s->wait_head;
    pthread_mutex_unlock(&s->lock);
    return done;
}

void duet_scheduler_shutdown(duet_scheduler *s)
{
    pthread_mutex_lock(&s->lock);
    bool joined = s->joined;
    s->stopping = true;
    s->joined = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    if (!joined) {
        pthread_join(s->thread, NULL);
    }
}

void duet_scheduler_free(duet_scheduler *s)
{
    if (!s) {
        return;
    }
    duet_scheduler_shutdown(s);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->idle);
    free(s->running);
    free(s->entries);
    free(s->entry_seq);
    free(s->logits);
    free(s);
}
