/* Brings a model's weights into memory on a thread of its own, stage by stage (see
 * load_plan.h: token embeddings, block 0..n-1, output head), so the daemon can answer at
 * once and a forward pass can start as soon as layer 0 is in, each layer waiting only for
 * its own weights.
 *
 * For each stage the thread advises the kernel (MADV_WILLNEED) over the stage's pages, then
 * makes them resident chunk by chunk — MADV_POPULATE_READ where the kernel has it, else a
 * read of one byte per page — so later access does not fault; optionally it mlocks them. A
 * failed mlock is a warning (the pages still load; they may be evicted under pressure). A
 * read that fails (the file was truncated under us, an I/O error) fails the load.
 *
 * Waiting is cheap once a stage is in (one atomic load), so the engine may call
 * duet_loader_wait_layer before every layer of every step. All functions are thread-safe,
 * except that duet_loader_free must not run while another thread still uses the loader. */
#ifndef DUET_LOADER_H
#define DUET_LOADER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "load_plan.h"
#include "model.h"
#include "status.h"

typedef struct duet_loader duet_loader;

typedef struct {
    uint64_t throttle_bytes_per_s; /* 0: as fast as the disk goes; else sleep to this rate */
    uint64_t chunk_bytes;          /* work between progress updates and cancel checks; 0: 8 MiB */
    bool mlock;                    /* lock the weights in memory */
    bool touch_pages;    /* read a byte per page even where MADV_POPULATE_READ works (as older
                            kernels get) */
    FILE *show_progress; /* when not NULL, the loader thread draws its progress here (a bar on a
                            terminal, log lines otherwise: see progress.h) */
} duet_loader_options;

typedef enum {
    DUET_LOADER_LOADING,
    DUET_LOADER_READY,
    DUET_LOADER_FAILED, /* an error, or cancelled (code DUET_CANCELLED) */
} duet_loader_state;

typedef struct {
    duet_loader_state state;
    uint64_t bytes_done, bytes_total; /* tensor bytes (page rounding not counted) */
    uint32_t stages_done, stages_total;
    uint32_t layers_done, n_layer;
    double elapsed_s; /* since the start; frozen when loading ends */
    double eta_s;     /* from the rate so far; 0 when READY, -1 when not yet known */
    duet_code code;   /* FAILED: why */
    char message[DUET_STATUS_MESSAGE_MAX]; /* FAILED: what went wrong */
    char warning[DUET_STATUS_MESSAGE_MAX]; /* e.g. a failed mlock; empty when none */
} duet_load_progress;

/* Starts loading m, which must outlive the loader. o may be NULL for defaults. */
duet_code duet_loader_start(const duet_model *m, const duet_loader_options *o, duet_loader **out,
                            duet_status *st);

/* Blocks until stage (0 .. stages_total-1; see DUET_STAGE_OF_* in load_plan.h) is resident.
 * OK at once when it already is; DUET_CANCELLED after duet_loader_cancel, the load's error
 * when it failed, INVALID_ARGUMENT for a stage that does not exist. */
duet_code duet_loader_wait_stage(duet_loader *l, uint32_t stage, duet_status *st);
/* As duet_loader_wait_stage, giving up with DEADLINE_EXCEEDED at deadline_ns
 * (CLOCK_MONOTONIC, as duet_now_ns). */
duet_code duet_loader_wait_stage_until(duet_loader *l, uint32_t stage, uint64_t deadline_ns,
                                       duet_status *st);
duet_code duet_loader_wait_embeddings(duet_loader *l, duet_status *st);
duet_code duet_loader_wait_layer(duet_loader *l, uint32_t il, duet_status *st);
duet_code duet_loader_wait_output(duet_loader *l, duet_status *st);
/* Every stage. */
duet_code duet_loader_wait_all(duet_loader *l, duet_status *st);

/* True when stage is resident (never blocks). */
bool duet_loader_stage_ready(const duet_loader *l, uint32_t stage);

/* A snapshot; bytes and stages only ever grow. */
void duet_loader_progress(duet_loader *l, duet_load_progress *p);

/* The stages and their byte ranges. */
const duet_load_plan *duet_loader_plan(const duet_loader *l);

/* Stops loading at the next chunk; waiters for stages not yet in return DUET_CANCELLED (those
 * already in stay usable). No effect once READY. */
void duet_loader_cancel(duet_loader *l);

/* Cancels when still loading, joins the thread, frees. The weights stay mapped (they belong
 * to the model) and, with mlock, locked until the model is freed. */
void duet_loader_free(duet_loader *l);

#endif
