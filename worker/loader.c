#include "loader.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"
#include "timer.h"

#define DEFAULT_CHUNK_BYTES (8u << 20)
/* with a throttle, chunks of at most this share of a second keep progress smooth */
#define THROTTLE_SLICES_PER_S 20

struct duet_loader {
    duet_load_plan *plan;
    duet_loader_options opt;
    uintptr_t page;
    size_t chunk;
    pthread_t thread;
    bool thread_started;

    /* Stages finish in order, so one counter serves as every stage's ready flag: stage s is
     * resident when stages_ready > s. Readers need only this atomic on the fast path. */
    atomic_uint stages_ready;
    atomic_uint_fast64_t bytes_done;
    atomic_bool cancel;
    /* the loader thread's own */
    bool populate_ok; /* MADV_POPULATE_READ worked so far */
    duet_progress *display;
    char label[160];

    pthread_mutex_t lock;
    pthread_cond_t changed; /* a stage finished, loading ended, or cancel was asked */
    /* under lock */
    duet_loader_state state;
    duet_code code;
    char message[DUET_STATUS_MESSAGE_MAX];
    char warning[DUET_STATUS_MESSAGE_MAX];
    uint64_t start_ns, end_ns;
};

/* ---- the loader thread ---- */

static void fail(duet_loader *l, duet_code code, const char *msg)
{
    pthread_mutex_lock(&l->lock);
    l->state = DUET_LOADER_FAILED;
    l->code = code;
    snprintf(l->message, sizeof l->message, "%s", msg);
    l->end_ns = duet_now_ns();
    pthread_cond_broadcast(&l->changed);
    pthread_mutex_unlock(&l->lock);
}

static void warn_once(duet_loader *l, const char *warning)
{
    pthread_mutex_lock(&l->lock);
    if (!l->warning[0]) {
        snprintf(l->warning, sizeof l->warning, "%s", warning);
    }
    pthread_mutex_unlock(&l->lock);
}

/* Reads one byte of every page of the range, so each page is faulted in now. */
static void touch(const uint8_t *p, const uint8_t *end, uintptr_t page)
{
    volatile uint8_t sink = 0;
    while (p < end) {
        sink ^= *(const volatile uint8_t *)p;
        p = (const uint8_t *)(((uintptr_t)p & ~(page - 1)) + page);
    }
    (void)sink;
}

/* Makes [c0, c1) resident; ranges are the stage's exact bytes (touching stays inside them,
 * never on a page's bytes that belong to nothing mapped). Returns false with errno text in
 * why when the pages cannot be read at all. */
static bool populate(duet_loader *l, const uint8_t *c0, const uint8_t *c1, const duet_load_stage *s,
                     size_t r0, size_t r1, char *why, size_t cap)
{
#ifdef MADV_POPULATE_READ
    if (l->populate_ok) {
        if (madvise((void *)c0, (size_t)(c1 - c0), MADV_POPULATE_READ) == 0) {
            return true;
        }
        int e = errno;
        bool unreadable = e == EFAULT || e == EIO;
#ifdef EHWPOISON
        unreadable = unreadable || e == EHWPOISON;
#endif
        if (unreadable) {
            /* a plain read here would raise SIGBUS: the file shrank or the disk failed */
            snprintf(why, cap, "%s", strerror(e));
            return false;
        }
        if (e == EINVAL || e == ENOSYS || e == EPERM) {
            l->populate_ok = false; /* an older kernel: touch from now on */
        }
    }
#endif
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *a = l->plan->base + s->ranges[r].offset;
        const uint8_t *b = a + s->ranges[r].bytes;
        touch(a > c0 ? a : c0, b < c1 ? b : c1, l->page);
    }
    return true;
}

/* Sleeps until bytes_done is on schedule for the throttle, or cancel. */
static void throttle(duet_loader *l)
{
    uint64_t rate = l->opt.throttle_bytes_per_s;
    if (!rate) {
        return;
    }
    double due_s = (double)atomic_load(&l->bytes_done) / (double)rate;
    uint64_t due_ns = l->start_ns + (uint64_t)(due_s * 1e9);
    struct timespec ts = {.tv_sec = (time_t)(due_ns / 1000000000u),
                          .tv_nsec = (long)(due_ns % 1000000000u)};
    pthread_mutex_lock(&l->lock);
    while (!atomic_load(&l->cancel) && duet_now_ns() < due_ns) {
        pthread_cond_timedwait(&l->changed, &l->lock, &ts);
    }
    pthread_mutex_unlock(&l->lock);
}

static uint64_t overlap(const uint8_t *a, const uint8_t *b, const uint8_t *c, const uint8_t *d)
{
    const uint8_t *lo = a > c ? a : c, *hi = b < d ? b : d;
    return hi > lo ? (uint64_t)(hi - lo) : 0;
}

/* One span: page-aligned [start, end) holding ranges r0..r1-1 of stage s. */
static duet_code load_span(duet_loader *l, const duet_load_stage *s, size_t r0, size_t r1,
                           const uint8_t *start, const uint8_t *end, duet_status *st)
{
    for (const uint8_t *c0 = start; c0 < end;) {
        if (atomic_load(&l->cancel)) {
            return duet_status_set(st, DUET_CANCELLED, "loading the model was cancelled");
        }
        const uint8_t *c1 = (size_t)(end - c0) > l->chunk ? c0 + l->chunk : end;
        char why[128], name[32];
        if (!populate(l, c0, c1, s, r0, r1, why, sizeof why)) {
            return duet_status_set(st, DUET_DATA_LOSS,
                                   "reading the model's %s failed near file offset %llu: %s (was "
                                   "the file truncated or replaced while loading?)",
                                   duet_load_stage_name(s, name, sizeof name),
                                   (unsigned long long)(c0 - l->plan->base), why);
        }
        if (l->opt.mlock && mlock(c0, (size_t)(c1 - c0)) != 0) {
            char warning[DUET_STATUS_MESSAGE_MAX];
            snprintf(warning, sizeof warning,
                     "mlock of the weights failed (%s): they are loaded but may be paged out "
                     "under memory pressure; raise the memlock limit (ulimit -l, systemd "
                     "LimitMEMLOCK=) or turn mlock off",
                     strerror(errno));
            warn_once(l, warning);
            l->opt.mlock = false; /* one warning; the rest would fail alike */
        }
        uint64_t credit = 0;
        for (size_t r = r0; r < r1; r++) {
            const uint8_t *a = l->plan->base + s->ranges[r].offset;
            credit += overlap(a, a + s->ranges[r].bytes, c0, c1);
        }
        duet_progress_update(l->display, atomic_fetch_add(&l->bytes_done, credit) + credit);
        throttle(l);
        c0 = c1;
    }
    return DUET_OK;
}

static uintptr_t page_down(const duet_loader *l, const uint8_t *p)
{
    return (uintptr_t)p & ~(l->page - 1);
}

static uintptr_t page_up(const duet_loader *l, const uint8_t *p)
{
    return ((uintptr_t)p + l->page - 1) & ~(l->page - 1);
}

/* Calls fn for each span of the stage: its ranges grouped where their pages touch. */
static duet_code for_each_span(duet_loader *l, const duet_load_stage *s,
                               duet_code (*fn)(duet_loader *, const duet_load_stage *, size_t,
                                               size_t, const uint8_t *, const uint8_t *,
                                               duet_status *),
                               duet_status *st)
{
    const uint8_t *base = l->plan->base;
    for (size_t r0 = 0; r0 < s->n_ranges;) {
        uintptr_t start = page_down(l, base + s->ranges[r0].offset);
        uintptr_t end = page_up(l, base + s->ranges[r0].offset + s->ranges[r0].bytes);
        size_t r1 = r0 + 1;
        while (r1 < s->n_ranges && page_down(l, base + s->ranges[r1].offset) <= end) {
            end = page_up(l, base + s->ranges[r1].offset + s->ranges[r1].bytes);
            r1++;
        }
        duet_code rc = fn(l, s, r0, r1, (const uint8_t *)start, (const uint8_t *)end, st);
        if (rc != DUET_OK) {
            return rc;
        }
        r0 = r1;
    }
    return DUET_OK;
}

static duet_code advise_span(duet_loader *l, const duet_load_stage *s, size_t r0, size_t r1,
                             const uint8_t *start, const uint8_t *end, duet_status *st)
{
    (void)l, (void)s, (void)r0, (void)r1, (void)st;
    /* only a hint that starts read-ahead of the whole stage; populating checks for errors */
    (void)madvise((void *)start, (size_t)(end - start), MADV_WILLNEED);
    return DUET_OK;
}

static void *loader_main(void *arg)
{
    duet_loader *l = arg;
    duet_status st;
    if (l->opt.show_progress) {
        l->display = duet_progress_begin(l->label, l->plan->total_bytes, l->opt.show_progress);
    }
    uint32_t n = l->plan->n_stages;
    for (uint32_t i = 0; i < n; i++) {
        const duet_load_stage *s = &l->plan->stages[i];
        for_each_span(l, s, advise_span, &st);
        if (for_each_span(l, s, load_span, &st) != DUET_OK) {
            duet_progress_end(l->display, false);
            fail(l, st.code, st.message);
            return NULL;
        }
        if (i + 1 == n) {
            duet_progress_end(l->display, true);
        }
        /* the last stage and READY in one step: whoever sees the one sees the other */
        pthread_mutex_lock(&l->lock);
        atomic_store_explicit(&l->stages_ready, i + 1, memory_order_release);
        if (i + 1 == n) {
            l->state = DUET_LOADER_READY;
            l->end_ns = duet_now_ns();
        }
        pthread_cond_broadcast(&l->changed);
        pthread_mutex_unlock(&l->lock);
    }
    return NULL;
}

/* ---- the API ---- */

static void destroy(duet_loader *l)
{
    pthread_cond_destroy(&l->changed);
    pthread_mutex_destroy(&l->lock);
    duet_load_plan_free(l->plan);
    free(l);
}

duet_code duet_loader_start(const duet_model *m, const duet_loader_options *o, duet_loader **out,
                            duet_status *st)
{
    duet_loader *l = calloc(1, sizeof *l);
    if (!l) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    duet_code rc = duet_load_plan_build(m, &l->plan, st);
    if (rc != DUET_OK) {
        free(l);
        return rc;
    }
    if (o) {
        l->opt = *o;
    }
    long page = sysconf(_SC_PAGESIZE);
    l->page = page > 0 ? (uintptr_t)page : 4096;
    uint64_t chunk = l->opt.chunk_bytes ? l->opt.chunk_bytes : DEFAULT_CHUNK_BYTES;
    if (l->opt.throttle_bytes_per_s &&
        l->opt.throttle_bytes_per_s / THROTTLE_SLICES_PER_S < chunk) {
        chunk = l->opt.throttle_bytes_per_s / THROTTLE_SLICES_PER_S;
    }
    chunk &= ~(uint64_t)(l->page - 1); /* whole pages, so mlock and madvise get aligned chunks */
    l->chunk = chunk ? (size_t)chunk : l->page;
    l->populate_ok = !l->opt.touch_pages;
    snprintf(l->label, sizeof l->label, "loading %s", m->hp.name[0] ? m->hp.name : "the model");
    atomic_init(&l->stages_ready, 0);
    atomic_init(&l->bytes_done, 0);
    atomic_init(&l->cancel, false);
    l->state = DUET_LOADER_LOADING;
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->changed, &ca);
    pthread_condattr_destroy(&ca);
    l->start_ns = duet_now_ns();
    int e = pthread_create(&l->thread, NULL, loader_main, l);
    if (e != 0) {
        destroy(l);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "cannot start the loader thread: %s",
                               strerror(e));
    }
    l->thread_started = true;
    *out = l;
    return DUET_OK;
}

bool duet_loader_stage_ready(const duet_loader *l, uint32_t stage)
{
    return atomic_load_explicit(&((duet_loader *)l)->stages_ready, memory_order_acquire) > stage;
}

duet_code duet_loader_wait_stage_until(duet_loader *l, uint32_t stage, uint64_t deadline_ns,
                                       duet_status *st)
{
    if (stage >= l->plan->n_stages) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "loading stage %u does not exist (the model has %u)", stage,
                               l->plan->n_stages);
    }
    if (duet_loader_stage_ready(l, stage)) {
        return DUET_OK;
    }
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                          .tv_nsec = (long)(deadline_ns % 1000000000u)};
    duet_code rc = DUET_OK;
    pthread_mutex_lock(&l->lock);
    while (!duet_loader_stage_ready(l, stage) && l->state == DUET_LOADER_LOADING) {
        if (!deadline_ns) {
            pthread_cond_wait(&l->changed, &l->lock);
        } else if (pthread_cond_timedwait(&l->changed, &l->lock, &ts) == ETIMEDOUT &&
                   !duet_loader_stage_ready(l, stage)) {
            rc = DUET_DEADLINE_EXCEEDED;
            break;
        }
    }
    char name[32];
    duet_load_stage_name(&l->plan->stages[stage], name, sizeof name);
    if (duet_loader_stage_ready(l, stage)) {
        rc = DUET_OK;
    } else if (rc == DUET_DEADLINE_EXCEEDED) {
        duet_status_set(st, rc, "the model's %s was still loading at the deadline", name);
    } else {
        rc = duet_status_set(st, l->code, "the model's %s is not available: %s", name, l->message);
    }
    pthread_mutex_unlock(&l->lock);
    return rc;
}

duet_code duet_loader_wait_stage(duet_loader *l, uint32_t stage, duet_status *st)
{
    return duet_loader_wait_stage_until(l, stage, 0, st);
}

duet_code duet_loader_wait_embeddings(duet_loader *l, duet_status *st)
{
    return duet_loader_wait_stage(l, DUET_STAGE_OF_EMBEDDINGS, st);
}

duet_code duet_loader_wait_layer(duet_loader *l, uint32_t il, duet_status *st)
{
    if (il >= l->plan->n_stages - 2) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "layer %u does not exist (the model has %u)", il,
                               l->plan->n_stages - 2);
    }
    return duet_loader_wait_stage(l, DUET_STAGE_OF_LAYER(il), st);
}

duet_code duet_loader_wait_output(duet_loader *l, duet_status *st)
{
    return duet_loader_wait_stage(l, DUET_STAGE_OF_OUTPUT(l->plan->n_stages - 2), st);
}

duet_code duet_loader_wait_all(duet_loader *l, duet_status *st)
{
    return duet_loader_wait_stage(l, l->plan->n_stages - 1, st);
}

void duet_loader_progress(duet_loader *l, duet_load_progress *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_lock(&l->lock);
    p->state = l->state;
    p->code = l->code;
    snprintf(p->message, sizeof p->message, "%s", l->message);
    snprintf(p->warning, sizeof p->warning, "%s", l->warning);
    uint64_t end_ns = l->state == DUET_LOADER_LOADING ? duet_now_ns() : l->end_ns;
    pthread_mutex_unlock(&l->lock);
    /* the counters after the state: a READY snapshot has them complete */
    p->bytes_done = atomic_load(&l->bytes_done);
    p->bytes_total = l->plan->total_bytes;
    p->stages_done = atomic_load(&l->stages_ready);
    p->stages_total = l->plan->n_stages;
    p->n_layer = l->plan->n_stages - 2;
    p->layers_done = p->stages_done <= 1 ? 0 : p->stages_done - 1;
    p->layers_done = p->layers_done > p->n_layer ? p->n_layer : p->layers_done;
    p->elapsed_s = (double)(end_ns - l->start_ns) / 1e9;
    if (p->state == DUET_LOADER_READY) {
        p->eta_s = 0;
    } else if (p->state == DUET_LOADER_LOADING && p->bytes_done > 0) {
        p->eta_s = p->elapsed_s * (double)(p->bytes_total - p->bytes_done) / (double)p->bytes_done;
    } else {
        p->eta_s = -1;
    }
}

const duet_load_plan *duet_loader_plan(const duet_loader *l)
{
    return l->plan;
}

void duet_loader_cancel(duet_loader *l)
{
    atomic_store(&l->cancel, true);
    pthread_mutex_lock(&l->lock);
    pthread_cond_broadcast(&l->changed); /* wakes a throttled sleep */
    pthread_mutex_unlock(&l->lock);
}

void duet_loader_free(duet_loader *l)
{
    if (!l) {
        return;
    }
    duet_loader_cancel(l);
    if (l->thread_started) {
        pthread_join(l->thread, NULL);
    }
    destroy(l);
}
