/* A progress display for long work measured in bytes (loading or writing a model).
 *
 * On a terminal: one line redrawn in place with \r — label, bar, percent, bytes done of
 * total, rate and ETA — at most every redraw_s. Otherwise (a log file, journald): plain
 * lines, one each time another step_percent is done, or after heartbeat_s without one, so a
 * log holds a handful of lines rather than thousands. duet_progress_end writes one final
 * line (done with size, time and rate, or failed with how far it got) in both modes.
 *
 * One duet_progress belongs to one thread. The formatting helpers are pure. */
#ifndef DUET_PROGRESS_H
#define DUET_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct duet_progress duet_progress;

typedef enum {
    DUET_PROGRESS_AUTO,  /* a bar when the stream is a terminal, plain lines otherwise */
    DUET_PROGRESS_BAR,   /* redrawn in place with \r */
    DUET_PROGRESS_LINES, /* plain lines */
} duet_progress_mode;

typedef struct {
    duet_progress_mode mode;
    double step_percent; /* lines: one per this many percent (default 10) */
    double heartbeat_s;  /* lines: also one after this long without a line (default 30; <0 none) */
    double redraw_s;     /* bar: at most one redraw per this long (default 0.1) */
} duet_progress_style;

/* Starts a display of work totalling `total` bytes (0 when unknown: no percent or ETA) on
 * out. NULL when out of memory; every function accepts NULL and then does nothing. */
duet_progress *duet_progress_begin(const char *label, uint64_t total, FILE *out);
/* As duet_progress_begin with a style; zero fields take their defaults. */
duet_progress *duet_progress_begin_styled(const char *label, uint64_t total, FILE *out,
                                          const duet_progress_style *style);

/* Reports that `done` bytes are finished (done never needs to go down). */
void duet_progress_update(duet_progress *p, uint64_t done);

/* Writes the final line, ending a bar's line, and frees p. */
void duet_progress_end(duet_progress *p, bool ok);

/* ---- formatting (pure; each returns out, always NUL-terminated) ---- */

/* "512 B", "1.50 KiB", "12.3 MiB", "512 MiB", "3.92 GiB": binary units, at most three
 * digits before the point. */
const char *duet_format_bytes(char *out, size_t cap, uint64_t bytes);

/* "0.4 s", "12 s", "3m05s", "2h07m"; "?" for a negative, infinite or NaN value. */
const char *duet_format_duration(char *out, size_t cap, double seconds);

/* One progress line without the \r or newline: "label  42% 1.50 MiB / 3.57 MiB  6.00 MiB/s
 * ETA 0.3 s", with a [####    ] bar of bar_width characters after the label when
 * bar_width > 0. elapsed_s gives the rate; with total 0 only bytes done and rate. */
const char *duet_progress_format_line(char *out, size_t cap, const char *label, uint64_t done,
                                      uint64_t total, double elapsed_s, int bar_width);

#endif
