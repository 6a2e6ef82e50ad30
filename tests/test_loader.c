/* Staged loading: the plan puts every tensor byte in exactly one stage (also when a block
 * is scattered over the file, or the output head is the embeddings); the loader thread
 * reports monotonic progress to READY, lets layer 0 be used before the last layer is in,
 * wakes waiters on cancel and on a failed read, turns a failed mlock into a warning; the
 * memory check refuses too big a model naming both figures. Models are synthetic (F32,
 * 6 layers, ~4.3 MiB) written in-process; a throttle makes loading last about half a
 * second so its course can be watched. */
#include <criterion/criterion.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gguf_writer.h"
#include "load_plan.h"
#include "loader.h"
#include "memory_check.h"
#include "model.h"
#include "support.h"
#include "tensor_type.h"
#include "timer.h"

#define N_LAYER 6
#define N_EMBD 128
#define N_FF 256
#define N_VOCAB 512
#define MiB (1024ull * 1024)

typedef enum {
    LAYOUT_CONTIGUOUS, /* embeddings, blocks in order, output: as llama.cpp writes */
    LAYOUT_SCATTERED,  /* every block's ffn_norm after the output head */
    LAYOUT_TIED,       /* no output.weight: the head is token_embd */
} layout;

typedef struct {
    char dir[256];
    char path[512];
    duet_model *m;
} fixture;

static void add(duet_gguf_writer *w, const char *name, int64_t cols, int64_t rows)
{
    int64_t ne[2] = {cols, rows};
    duet_gguf_writer_tensor(w, name, DUET_TYPE_F32, rows > 1 ? 2 : 1, ne, NULL, NULL);
}

static void make_model(fixture *fx, layout lay)
{
    test_make_temp_dir(fx->dir, sizeof fx->dir, "duet-loader");
    snprintf(fx->path, sizeof fx->path, "%s/m.gguf", fx->dir);
    duet_gguf_writer *w = duet_gguf_writer_new();
    duet_gguf_writer_string(w, "general.architecture", "llama");
    duet_gguf_writer_u32(w, "llama.embedding_length", N_EMBD);
    duet_gguf_writer_u32(w, "llama.block_count", N_LAYER);
    duet_gguf_writer_u32(w, "llama.feed_forward_length", N_FF);
    duet_gguf_writer_u32(w, "llama.attention.head_count", 4);
    add(w, "token_embd.weight", N_EMBD, N_VOCAB);
    char nm[64];
    for (int l = 0; l < N_LAYER; l++) {
#define BLK(s) (snprintf(nm, sizeof nm, "blk.%d." s, l), nm)
        add(w, BLK("attn_norm.weight"), N_EMBD, 1);
        add(w, BLK("attn_q.weight"), N_EMBD, N_EMBD);
        add(w, BLK("attn_k.weight"), N_EMBD, N_EMBD);
        add(w, BLK("attn_v.weight"), N_EMBD, N_EMBD);
        add(w, BLK("attn_output.weight"), N_EMBD, N_EMBD);
        if (lay != LAYOUT_SCATTERED) {
            add(w, BLK("ffn_norm.weight"), N_EMBD, 1);
        }
        add(w, BLK("ffn_gate.weight"), N_EMBD, N_FF);
        add(w, BLK("ffn_up.weight"), N_EMBD, N_FF);
        add(w, BLK("ffn_down.weight"), N_FF, N_EMBD);
    }
    add(w, "output_norm.weight", N_EMBD, 1);
    if (lay != LAYOUT_TIED) {
        add(w, "output.weight", N_EMBD, N_VOCAB);
    }
    for (int l = 0; lay == LAYOUT_SCATTERED && l < N_LAYER; l++) {
        add(w, BLK("ffn_norm.weight"), N_EMBD, 1);
    }
#undef BLK
    duet_status st;
    cr_assert_eq(duet_gguf_writer_write(w, fx->path, NULL, NULL, &st), DUET_OK, "%s", st.message);
    duet_gguf_writer_free(w);
    cr_assert_eq(duet_model_load(fx->path, &fx->m, &st), DUET_OK, "%s", st.message);
}

static void drop_model(fixture *fx)
{
    duet_model_free(fx->m);
    test_remove_dir(fx->dir);
}

/* The stage a tensor belongs to, by its name. */
static uint32_t stage_of(const char *name, size_t len)
{
    unsigned il;
    if (sscanf(name, "blk.%u.", &il) == 1) {
        return DUET_STAGE_OF_LAYER(il);
    }
    if (len >= 10 && strncmp(name, "token_embd", 10) == 0) {
        return DUET_STAGE_OF_EMBEDDINGS;
    }
    return DUET_STAGE_OF_OUTPUT(N_LAYER);
}

static uint64_t covered(const duet_load_stage *s, uint64_t a, uint64_t b)
{
    uint64_t n = 0;
    for (size_t r = 0; r < s->n_ranges; r++) {
        uint64_t lo = s->ranges[r].offset > a ? s->ranges[r].offset : a;
        uint64_t end = s->ranges[r].offset + s->ranges[r].bytes, hi = end < b ? end : b;
        n += hi > lo ? hi - lo : 0;
    }
    return n;
}

static void check_plan(layout lay)
{
    fixture fx;
    make_model(&fx, lay);
    duet_load_plan *p;
    duet_status st;
    cr_assert_eq(duet_load_plan_build(fx.m, &p, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(p->n_stages, N_LAYER + 2);
    cr_assert_eq(p->stages[0].kind, DUET_STAGE_EMBEDDINGS);
    cr_assert_eq(p->stages[DUET_STAGE_OF_LAYER(3)].kind, DUET_STAGE_LAYER);
    cr_assert_eq(p->stages[DUET_STAGE_OF_LAYER(3)].layer, 3);
    cr_assert_eq(p->stages[N_LAYER + 1].kind, DUET_STAGE_OUTPUT);

    /* every byte of every tensor in its own stage's ranges and in no other's */
    const duet_gguf *g = fx.m->gguf;
    uint64_t want[N_LAYER + 2] = {0}, sum = 0;
    for (uint64_t i = 0; i < duet_gguf_tensor_count(g); i++) {
        const duet_gguf_tensor *t = duet_gguf_tensor_at(g, i);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        uint32_t own = stage_of(name, t->name.len);
        uint64_t a = (uint64_t)((const uint8_t *)t->data - p->base), b = a + t->bytes;
        want[own] += t->bytes;
        sum += t->bytes;
        for (uint32_t s = 0; s < p->n_stages; s++) {
            cr_assert_eq(covered(&p->stages[s], a, b), s == own ? t->bytes : 0,
                         "%s: %llu of its bytes in stage %u (its own is %u)", name,
                         (unsigned long long)covered(&p->stages[s], a, b), s, own);
        }
    }
    for (uint32_t s = 0; s < p->n_stages; s++) {
        cr_assert_eq(p->stages[s].bytes, want[s], "stage %u: %llu bytes, want %llu", s,
                     (unsigned long long)p->stages[s].bytes, (unsigned long long)want[s]);
        for (size_t r = 1; r < p->stages[s].n_ranges; r++) {
            const duet_byte_range *x = &p->stages[s].ranges[r - 1], *y = &p->stages[s].ranges[r];
            cr_assert_lt(x->offset + x->bytes, y->offset, "sorted, disjoint, touching merged");
        }
    }
    /* the tied head is token_embd: counted once, in the embeddings' stage */
    cr_assert_eq(p->total_bytes, sum);
    cr_assert_eq(p->total_bytes, fx.m->weight_bytes);
    if (lay == LAYOUT_TIED) {
        cr_assert_eq(p->stages[N_LAYER + 1].bytes, N_EMBD * sizeof(float), "only output_norm");
    }
    if (lay == LAYOUT_SCATTERED) {
        cr_assert_geq(p->stages[DUET_STAGE_OF_LAYER(2)].n_ranges, 2, "ffn_norm lies elsewhere");
    }
    duet_load_plan_free(p);
    drop_model(&fx);
}

Test(loader, plan_contiguous_covers_each_tensor_once)
{
    check_plan(LAYOUT_CONTIGUOUS);
}

Test(loader, plan_scattered_blocks_are_unions_of_ranges)
{
    check_plan(LAYOUT_SCATTERED);
}

Test(loader, plan_tied_output_counted_once)
{
    check_plan(LAYOUT_TIED);
}

/* ~0.5 s for the ~4.3 MiB model */
#define THROTTLE (8 * MiB)

static double seconds_since(uint64_t t0)
{
    return (double)(duet_now_ns() - t0) / 1e9;
}

Test(loader, progress_grows_monotonically_to_ready)
{
    fixture fx;
    make_model(&fx, LAYOUT_CONTIGUOUS);
    char *shown = NULL;
    size_t shown_len = 0;
    FILE *display = open_memstream(&shown, &shown_len);
    duet_loader_options o = {.throttle_bytes_per_s = THROTTLE, .show_progress = display};
    duet_loader *l;
    duet_status st;
    cr_assert_eq(duet_loader_start(fx.m, &o, &l, &st), DUET_OK, "%s", st.message);
    duet_load_progress p, prev = {0};
    int midway = 0;
    for (;;) {
        duet_loader_progress(l, &p);
        cr_assert_eq(p.bytes_total, fx.m->weight_bytes);
        cr_assert_eq(p.stages_total, N_LAYER + 2);
        cr_assert_eq(p.n_layer, N_LAYER);
        cr_assert_geq(p.bytes_done, prev.bytes_done);
        cr_assert_geq(p.stages_done, prev.stages_done);
        cr_assert_geq(p.layers_done, prev.layers_done);
        cr_assert_geq(p.elapsed_s, prev.elapsed_s);
        cr_assert_leq(p.bytes_done, p.bytes_total);
        if (p.state != DUET_LOADER_LOADING) {
            break;
        }
        if (p.bytes_done > 0 && p.bytes_done < p.bytes_total) {
            midway++;
            cr_assert_gt(p.eta_s, 0, "an ETA from the rate so far");
            cr_assert_lt(p.eta_s, 5, "%f s for at most 4.3 MiB at 8 MiB/s", p.eta_s);
        }
        prev = p;
        usleep(20000);
    }
    cr_assert_eq(p.state, DUET_LOADER_READY, "%s", p.message);
    cr_assert_geq(midway, 5, "loading was watched part-way %d times", midway);
    cr_assert_eq(p.bytes_done, p.bytes_total);
    cr_assert_eq(p.stages_done, p.stages_total);
    cr_assert_eq(p.layers_done, N_LAYER);
    cr_assert_eq(p.eta_s, 0);
    cr_assert_str_empty(p.warning);
    double want_s = (double)p.bytes_total / (double)THROTTLE;
    cr_assert_geq(p.elapsed_s, 0.8 * want_s, "the throttle holds: %f s", p.elapsed_s);
    cr_assert_lt(p.elapsed_s, want_s + 2.0, "%f s", p.elapsed_s);
    duet_load_progress later;
    usleep(20000);
    duet_loader_progress(l, &later);
    cr_assert_eq(later.elapsed_s, p.elapsed_s, "elapsed stops at READY");
    duet_loader_free(l);

    /* not a terminal: a few log lines in 10% steps, then the final one */
    fclose(display);
    int lines = 0;
    for (const char *c = shown; *c; c++) {
        lines += *c == '\n';
    }
    cr_assert(lines >= 4 && lines <= 11, "%d lines:\n%s", lines, shown);
    cr_assert_not_null(strstr(shown, "loading the model   0% 0 B / 4.26 MiB\n"), "%s", shown);
    cr_assert_not_null(strstr(shown, "loading the model: done, 4.26 MiB in "), "%s", shown);
    free(shown);
    drop_model(&fx);
}

typedef struct {
    duet_loader *l;
    uint32_t stage;
    duet_code rc;
    char message[DUET_STATUS_MESSAGE_MAX];
    uint64_t woke_ns;
} waiter;

static void *wait_thread(void *arg)
{
    waiter *w = arg;
    duet_status st;
    w->rc = duet_loader_wait_stage(w->l, w->stage, &st);
    w->woke_ns = duet_now_ns();
    snprintf(w->message, sizeof w->message, "%s", w->rc == DUET_OK ? "" : st.message);
    return NULL;
}

Test(loader, layer0_is_usable_before_the_last_layer)
{
    fixture fx;
    make_model(&fx, LAYOUT_CONTIGUOUS);
    duet_loader_options o = {.throttle_bytes_per_s = THROTTLE};
    duet_loader *l;
    duet_status st;
    cr_assert_eq(duet_loader_start(fx.m, &o, &l, &st), DUET_OK, "%s", st.message);
    /* others wait for the output head meanwhile; a broadcast wakes them all */
    waiter ws[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        ws[i] = (waiter){.l = l, .stage = DUET_STAGE_OF_OUTPUT(N_LAYER), .rc = DUET_UNKNOWN};
        pthread_create(&th[i], NULL, wait_thread, &ws[i]);
    }
    cr_assert_eq(duet_loader_wait_stage_until(l, DUET_STAGE_OF_OUTPUT(N_LAYER),
                                              duet_now_ns() + 20000000, &st),
                 DUET_DEADLINE_EXCEEDED, "the head is not in after 20 ms");
    cr_assert(strstr(st.message, "output head"), "%s", st.message);

    cr_assert_eq(duet_loader_wait_layer(l, 0, &st), DUET_OK, "%s", st.message);
    duet_load_progress p;
    duet_loader_progress(l, &p);
    cr_assert_eq(p.state, DUET_LOADER_LOADING);
    cr_assert(duet_loader_stage_ready(l, DUET_STAGE_OF_EMBEDDINGS));
    cr_assert(duet_loader_stage_ready(l, DUET_STAGE_OF_LAYER(0)));
    cr_assert(!duet_loader_stage_ready(l, DUET_STAGE_OF_LAYER(N_LAYER - 1)));
    cr_assert_lt(p.layers_done, N_LAYER - 1, "layer 0 came early: %u layers in", p.layers_done);
    cr_assert_lt(p.bytes_done, p.bytes_total / 2);

    for (uint32_t il = 1; il < N_LAYER; il++) {
        cr_assert_eq(duet_loader_wait_layer(l, il, &st), DUET_OK, "%s", st.message);
        cr_assert(duet_loader_stage_ready(l, DUET_STAGE_OF_LAYER(il)));
        duet_loader_progress(l, &p);
        cr_assert_geq(p.layers_done, il + 1);
    }
    cr_assert_eq(duet_loader_wait_output(l, &st), DUET_OK, "%s", st.message);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(ws[i].rc, DUET_OK, "%s", ws[i].message);
    }
    cr_assert_eq(duet_loader_wait_all(l, &st), DUET_OK);
    duet_loader_progress(l, &p);
    cr_assert_eq(p.state, DUET_LOADER_READY);

    /* once in, waiting is immediate, also after a (now meaningless) cancel */
    duet_loader_cancel(l);
    uint64_t t0 = duet_now_ns();
    for (uint32_t s = 0; s < N_LAYER + 2; s++) {
        cr_assert_eq(duet_loader_wait_stage(l, s, &st), DUET_OK);
    }
    cr_assert_eq(duet_loader_wait_embeddings(l, &st), DUET_OK);
    cr_assert_lt(seconds_since(t0), 0.05);
    duet_loader_progress(l, &p);
    cr_assert_eq(p.state, DUET_LOADER_READY);

    cr_assert_eq(duet_loader_wait_stage(l, N_LAYER + 2, &st), DUET_INVALID_ARGUMENT);
    cr_assert_eq(duet_loader_wait_layer(l, N_LAYER, &st), DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "layer 6"), "%s", st.message);
    duet_loader_free(l);
    drop_model(&fx);
}

Test(loader, cancel_wakes_waiters_and_free_is_prompt)
{
    fixture fx;
    make_model(&fx, LAYOUT_CONTIGUOUS);
    /* slow enough that the head would take seconds */
    char *shown = NULL;
    size_t shown_len = 0;
    FILE *display = open_memstream(&shown, &shown_len);
    duet_loader_options o = {.throttle_bytes_per_s = 2 * MiB, .show_progress = display};
    duet_loader *l;
    duet_status st;
    cr_assert_eq(duet_loader_start(fx.m, &o, &l, &st), DUET_OK, "%s", st.message);
    waiter w = {.l = l, .stage = DUET_STAGE_OF_OUTPUT(N_LAYER), .rc = DUET_UNKNOWN};
    pthread_t th;
    pthread_create(&th, NULL, wait_thread, &w);
    cr_assert_eq(duet_loader_wait_layer(l, 0, &st), DUET_OK, "%s", st.message);

    uint64_t t0 = duet_now_ns();
    duet_loader_cancel(l);
    pthread_join(th, NULL);
    cr_assert_lt((double)(w.woke_ns - t0) / 1e9, 0.5, "the waiter woke promptly");
    cr_assert_eq(w.rc, DUET_CANCELLED, "%s", w.message);
    cr_assert(strstr(w.message, "output head") && strstr(w.message, "cancelled"), "%s", w.message);
    cr_assert_eq(duet_loader_wait_layer(l, N_LAYER - 1, &st), DUET_CANCELLED);
    cr_assert_eq(duet_loader_wait_layer(l, 0, &st), DUET_OK, "what is in stays usable");
    duet_load_progress p;
    duet_loader_progress(l, &p);
    cr_assert_eq(p.state, DUET_LOADER_FAILED);
    cr_assert_eq(p.code, DUET_CANCELLED);
    cr_assert_lt(p.bytes_done, p.bytes_total);
    cr_assert_lt(p.layers_done, N_LAYER);
    duet_loader_free(l);
    cr_assert_lt(seconds_since(t0), 0.5, "cancel and free within a chunk");
    fclose(display);
    cr_assert_not_null(strstr(shown, "loading the model: failed at "), "%s", shown);
    free(shown);
    o.show_progress = NULL;

    /* freed while loading, without a cancel first: no hang, no leak */
    cr_assert_eq(duet_loader_start(fx.m, &o, &l, &st), DUET_OK, "%s", st.message);
    usleep(10000);
    t0 = duet_now_ns();
    duet_loader_free(l);
    cr_assert_lt(seconds_since(t0), 0.5);
    drop_model(&fx);
}

/* MADV_POPULATE_READ reports unreadable pages as an error; without it (kernels before 5.14)
 * touching them would raise SIGBUS, so the truncation test needs it. */
static bool populate_read_works(void)
{
#ifdef MADV_POPULATE_READ
    long page = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, (size_t)page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bool ok = p != MAP_FAILED && madvise(p, (size_t)page, MADV_POPULATE_READ) == 0;
    if (p != MAP_FAILED) {
        munmap(p, (size_t)page);
    }
    return ok;
#else
    return false;
#endif
}

Test(loader, truncated_file_fails_the_load_and_its_waiters)
{
    if (!populate_read_works()) {
        cr_skip_test("MADV_POPULATE_READ unavailable: reading a truncated mapping would SIGBUS");
    }
    fixture fx;
    make_model(&fx, LAYOUT_CONTIGUOUS);
    cr_assert_eq(truncate(fx.path, (off_t)(fx.m->weight_bytes / 2)), 0);
    duet_loader *l;
    duet_status st;
    cr_assert_eq(duet_loader_start(fx.m, NULL, &l, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_loader_wait_output(l, &st), DUET_DATA_LOSS, "%s", st.message);
    cr_assert(strstr(st.message, "truncated"), "%s", st.message);
    cr_assert_eq(duet_loader_wait_embeddings(l, &st), DUET_OK, "before the cut: loaded");
    duet_load_progress p;
    duet_loader_progress(l, &p);
    cr_assert_eq(p.state, DUET_LOADER_FAILED);
    cr_assert_eq(p.code, DUET_DATA_LOSS);
    cr_assert(strstr(p.message, "layer "), "names the stage: %s", p.message);
    cr_assert_gt(p.layers_done, 0);
    cr_assert_lt(p.layers_done, N_LAYER);
    duet_loader_free(l);
    drop_model(&fx);
}

/* Takes CAP_IPC_LOCK away from this test's process, so the memlock limit applies. */
static void drop_ipc_lock(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];
    cr_assert_eq(syscall(SYS_capget, &h, d), 0);
    d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
    d[CAP_IPC_LOCK / 32].permitted &= ~(1u << (CAP_IPC_LOCK % 32));
    cr_assert_eq(syscall(SYS_capset, &h, d), 0);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

Test(loader, failed_mlock_is_a_warning)
{
#ifdef UNDER_ASAN
    cr_skip_test("AddressSanitizer makes mlock succeed without locking");
#endif
    fixture fx;
    make_model(&fx, LAYOUT_CONTIGUOUS);
    drop_ipc_lock();
    struct rlimit none = {0, 0};
    cr_assert_eq(setrlimit(RLIMIT_MEMLOCK, &none), 0);
    duet_loader_options o = {.mlock = true};
    duet_loader *l;
    duet_status st;
    cr_assert_eq(duet_loader_start(fx.m, &o, &l, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_loader_wait_all(l, &st), DUET_OK, "%s", st.message);
    duet_load_progress p;
    duet_loader_progress(l, &p);
    cr_assert_eq(p.state, DUET_LOADER_READY);
    cr_assert_eq(p.bytes_done, p.bytes_total);
    cr_assert(strstr(p.warning, "mlock") && strstr(p.warning, "ulimit -l"), "%s", p.warning);
    cr_assert(strstr(p.warning, "Cannot allocate memory") ||
                  strstr(p.warning, "Operation not permitted"),
              "errno text: %s", p.warning);
    duet_loader_free(l);
    drop_model(&fx);
}

/* Bytes of the mapping at base that are in this process's page tables (smaps "Rss"): what
 * a forward pass could read without a page fault. */
static uint64_t resident_bytes(const void *base)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert_not_null(f);
    char line[512];
    bool in_it = false;
    uint64_t kib = UINT64_MAX;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in_it = lo == (unsigned long)(uintptr_t)base;
        } else if (in_it && sscanf(line, "Rss: %lu kB", &lo) == 1) {
            kib = lo;
            break;
        }
    }
    fclose(f);
    cr_assert_neq(kib, UINT64_MAX, "the mapping is in /proc/self/smaps");
    return kib * 1024;
}

static void check_resident(bool touch_pages)
{
    fixture fx;
    make_model(&fx, LAYOUT_SCATTERED);
    const void *base = duet_gguf_mapping(fx.m->gguf);
    uint64_t before = resident_bytes(base);
    cr_assert_lt(before, fx.m->weight_bytes / 4, "only the header was read: %llu",
                 (unsigned long long)before);
    duet_loader_options o = {.touch_pages = touch_pages};
    duet_loader *l;
    duet_status st;
    cr_assert_eq(duet_loader_start(fx.m, &o, &l, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_loader_wait_all(l, &st), DUET_OK, "%s", st.message);
    uint64_t after = resident_bytes(base);
    cr_assert_geq(after, fx.m->weight_bytes, "every weight page resident: %llu of %llu",
                  (unsigned long long)after, (unsigned long long)fx.m->weight_bytes);
    cr_assert_leq(after, duet_gguf_file_size(fx.m->gguf) + 4096);
    duet_loader_free(l);
    drop_model(&fx);
}

Test(loader, weights_are_resident_after_loading)
{
    check_resident(false);
}

Test(loader, weights_are_resident_after_loading_by_touch)
{
    check_resident(true);
}

Test(loader, loads_a_model_held_in_memory)
{
    /* duet_gguf_open_memory copies to the heap: nothing page-aligned, touched in bounds */
    fixture fx;
    make_model(&fx, LAYOUT_SCATTERED);
    size_t len;
    char *bytes = test_read_file(fx.path, &len);
    cr_assert_not_null(bytes);
    duet_gguf *g;
    duet_model *m;
    duet_status st;
    cr_assert_eq(duet_gguf_open_memory(bytes, len, &g, &st), DUET_OK, "%s", st.message);
    free(bytes);
    cr_assert_eq(duet_model_from_gguf(g, &m, &st), DUET_OK, "%s", st.message);
    /* touching must stay inside the heap copy (ASan watches) */
    duet_loader_options o = {.chunk_bytes = 10000, .touch_pages = true}; /* one page */
    duet_loader *l;
    cr_assert_eq(duet_loader_start(m, &o, &l, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_loader_wait_all(l, &st), DUET_OK, "%s", st.message);
    duet_load_progress p;
    duet_loader_progress(l, &p);
    cr_assert_eq(p.bytes_done, m->weight_bytes);
    cr_assert_eq(duet_loader_plan(l)->total_bytes, m->weight_bytes);
    duet_loader_free(l);
    duet_model_free(m);
    drop_model(&fx);
}

Test(loader, a_real_model_loads)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    char path[1024];
    snprintf(path, sizeof path, "%s/stories260K.gguf", dir && *dir ? dir : "../shared/models");
    if (access(path, R_OK) != 0) {
        cr_skip_test("TEST MODELS MISSING: %s not found (set DUET_TEST_MODELS)", path);
    }
    duet_model *m;
    duet_status st;
    cr_assert_eq(duet_model_load(path, &m, &st), DUET_OK, "%s", st.message);
    duet_loader *l;
    cr_assert_eq(duet_loader_start(m, NULL, &l, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_loader_wait_all(l, &st), DUET_OK, "%s", st.message);
    const duet_load_plan *p = duet_loader_plan(l);
    cr_assert_eq(p->n_stages, m->hp.n_layer + 2);
    cr_assert_eq(p->total_bytes, m->weight_bytes, "tied head counted once");
    for (uint32_t s = 0; s < p->n_stages; s++) {
        cr_assert_gt(p->stages[s].bytes, 0, "stage %u", s);
    }
    duet_load_progress pr;
    duet_loader_progress(l, &pr);
    cr_assert_eq(pr.state, DUET_LOADER_READY);
    cr_assert_eq(pr.bytes_done, m->weight_bytes);
    duet_loader_free(l);
    duet_model_free(m);
}

/* ---- the memory check ---- */

static const char meminfo[] = "MemTotal:       16384000 kB\n"
                              "MemFree:          100000 kB\n"
                              "MemAvailable:    2097152 kB\n"
                              "Buffers:           12345 kB\n";

Test(memory_check, meminfo_parsing)
{
    uint64_t b;
    cr_assert(duet_meminfo_available(meminfo, &b));
    cr_assert_eq(b, 2ull << 30);
    cr_assert(!duet_meminfo_available("MemTotal: 1 kB\nMemFree: 1 kB\n", &b));
    cr_assert(!duet_meminfo_available("", &b));
    cr_assert(!duet_meminfo_available("MemAvailable: lots\n", &b));

    uint64_t room, max;
    cr_assert(duet_cgroup_room("4294967296\n", "3221225472\n",
                               "anon 2684354560\ninactive_file_x 7\ninactive_file 536870912\n",
                               &room, &max));
    cr_assert_eq(max, 4ull << 30);
    cr_assert_eq(room, 1536 * MiB, "4 GiB - (3 GiB - 0.5 GiB reclaimable)");
    cr_assert(duet_cgroup_room("1000\n", "5000\n", NULL, &room, &max));
    cr_assert_eq(room, 0, "over the limit: no room");
    cr_assert(!duet_cgroup_room("max\n", "5000\n", NULL, &room, &max), "no limit");
}

Test(memory_check, refuses_too_big_naming_both_figures)
{
    uint64_t avail;
    cr_assert(duet_meminfo_available(meminfo, &avail));
    duet_memory_room room = {.mem_available = avail, .cgroup_room = UINT64_MAX};
    duet_status st;
    cr_assert_eq(duet_loader_check_memory_in(&room, 1ull << 30, 1.2, 0, &st), DUET_OK);
    cr_assert_eq(duet_loader_check_memory_in(&room, 4ull << 30, 1.2, 0, &st),
                 DUET_RESOURCE_EXHAUSTED);
    cr_assert(strstr(st.message, "4.80 GiB"), "needed: %s", st.message);
    cr_assert(strstr(st.message, "2.00 GiB"), "available: %s", st.message);
    cr_assert(strstr(st.message, "MemAvailable"), "%s", st.message);
    cr_assert(strstr(st.message, DUET_MEMORY_FACTOR_OPTION), "the override: %s", st.message);
    /* the extra (KV budget) counts */
    cr_assert_eq(duet_loader_check_memory_in(&room, 1ull << 30, 1.2, 1ull << 30, &st),
                 DUET_RESOURCE_EXHAUSTED);
    cr_assert(strstr(st.message, "2.20 GiB") && strstr(st.message, "1.00 GiB extra"), "%s",
              st.message);
    /* the factor is configurable, 0 skips, nonsense is refused */
    cr_assert_eq(duet_loader_check_memory_in(&room, 1800 * MiB, 1.2, 0, &st),
                 DUET_RESOURCE_EXHAUSTED);
    cr_assert_eq(duet_loader_check_memory_in(&room, 1800 * MiB, 1.1, 0, &st), DUET_OK);
    cr_assert_eq(duet_loader_check_memory_in(&room, 100ull << 30, 0, 0, &st), DUET_OK);
    cr_assert_eq(duet_loader_check_memory_in(&room, 1, -1, 0, &st), DUET_INVALID_ARGUMENT);

    /* a cgroup limit tighter than the machine */
    room = (duet_memory_room){
        .mem_available = 8ull << 30, .cgroup_room = 1536 * MiB, .cgroup_max = 4ull << 30};
    cr_assert_eq(duet_loader_check_memory_in(&room, 2ull << 30, 1.2, 0, &st),
                 DUET_RESOURCE_EXHAUSTED);
    cr_assert(strstr(st.message, "1.50 GiB") && strstr(st.message, "memory.max of 4.00 GiB"), "%s",
              st.message);

    /* what cannot be read does not limit */
    room = (duet_memory_room){.mem_available = UINT64_MAX, .cgroup_room = UINT64_MAX};
    cr_assert_eq(duet_loader_check_memory_in(&room, 1ull << 40, 1.2, 0, &st), DUET_OK);
}

Test(memory_check, this_machine)
{
    duet_memory_room room;
    duet_memory_room_read(&room);
    cr_assert_neq(room.mem_available, UINT64_MAX, "Linux has MemAvailable");
    cr_assert_gt(room.mem_available, 0);
    duet_status st;
    cr_assert_eq(duet_loader_check_memory(1 * MiB, DUET_MEMORY_FACTOR_DEFAULT, 0, &st), DUET_OK,
                 "%s", st.message);
    cr_assert_eq(duet_loader_check_memory(1ull << 60, DUET_MEMORY_FACTOR_DEFAULT, 0, &st),
                 DUET_RESOURCE_EXHAUSTED);
    cr_assert(strstr(st.message, "EiB"), "%s", st.message);
}
