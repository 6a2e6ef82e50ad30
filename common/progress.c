#include "progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "timer.h"

#define BAR_WIDTH 24

struct duet_progress {
    char label[96];
    uint64_t total, done;
    FILE *out;
    bool bar;
    duet_progress_style style;
    uint64_t start_ns, last_line_ns;
    long last_step; /* lines: the last step_percent multiple written */
};

const char *duet_format_bytes(char *out, size_t cap, uint64_t bytes)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1000) {
        snprintf(out, cap, "%llu B", (unsigned long long)bytes);
        return out;
    }
    double v = (double)bytes / 1024.0;
    size_t u = 0;
    /* switch units at 1000 rather than 1024 so no figure has four digits */
    while (v >= 999.5 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    snprintf(out, cap, v < 9.995 ? "%.2f %s" : v < 99.95 ? "%.1f %s" : "%.0f %s", v, units[u]);
    return out;
}

const char *duet_format_duration(char *out, size_t cap, double s)
{
    if (!(s >= 0) || isinf(s)) {
        snprintf(out, cap, "?");
    } else if (s < 9.95) {
        snprintf(out, cap, "%.1f s", s);
    } else if (s < 59.5) {
        snprintf(out, cap, "%.0f s", s);
    } else if (s < 3600) {
        long t = lround(s);
        snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
    } else {
        long t = lround(s / 60);
        snprintf(out, cap, "%ldh%02ldm", t / 60, t % 60);
    }
    return out;
}

/* Appends to out at *n like snprintf, keeping the terminator when out is full. */
__attribute__((format(printf, 4, 5))) static void append(char *out, size_t cap, size_t *n,
                                                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(out + (*n < cap ? *n : cap), *n < cap ? cap - *n : 0, fmt, ap);
    va_end(ap);
    *n += k > 0 ? (size_t)k : 0;
}

/* Bytes per second, clamped to what a uint64_t holds. */
static uint64_t rate_of(uint64_t done, double elapsed_s)
{
    double r = elapsed_s > 0 ? (double)done / elapsed_s : 0;
    return r >= 1.8e19 ? UINT64_MAX : (uint64_t)r;
}

const char *duet_progress_format_line(char *out, size_t cap, const char *label, uint64_t done,
                                      uint64_t total, double elapsed_s, int bar_width)
{
    static const char hashes[] = "################################################";
    char d[32], t[32], r[32], eta[32];
    size_t n = 0;
    if (cap) {
        out[0] = '\0';
    }
    append(out, cap, &n, "%s", label);
    bar_width = bar_width < (int)sizeof hashes - 1 ? bar_width : (int)sizeof hashes - 1;
    if (total > 0 && bar_width > 0) {
        int filled = done >= total ? bar_width : (int)((double)done / (double)total * bar_width);
        append(out, cap, &n, " [%.*s%*s]", filled, hashes, bar_width - filled, "");
    }
    if (total > 0) {
        double pct = done >= total ? 100.0 : 100.0 * (double)done / (double)total;
        append(out, cap, &n, " %3.0f%% %s / %s", floor(pct), duet_format_bytes(d, sizeof d, done),
               duet_format_bytes(t, sizeof t, total));
    } else {
        append(out, cap, &n, " %s", duet_format_bytes(d, sizeof d, done));
    }
    if (elapsed_s > 0 && done > 0) {
        uint64_t rate = rate_of(done, elapsed_s);
        append(out, cap, &n, "  %s/s", duet_format_bytes(r, sizeof r, rate));
        if (total > done && rate > 0) {
            append(out, cap, &n, "  ETA %s",
                   duet_format_duration(eta, sizeof eta, (double)(total - done) / (double)rate));
        }
    }
    return out;
}

static double seconds_since(uint64_t ns)
{
    return (double)(duet_now_ns() - ns) / 1e9;
}

/* A bar line: back to the start of the line, draw, erase what a longer line left. */
static void draw(duet_progress *p)
{
    char line[256];
    duet_progress_format_line(line, sizeof line, p->label, p->done, p->total,
                              seconds_since(p->start_ns), p->bar ? BAR_WIDTH : 0);
    if (p->bar) {
        fprintf(p->out, "\r%s\033[K", line);
    } else {
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
    p->last_line_ns = duet_now_ns();
}

duet_progress *duet_progress_begin_styled(const char *label, uint64_t total, FILE *out,
                                          const duet_progress_style *style)
{
    duet_progress *p = calloc(1, sizeof *p);
    if (!p) {
        return NULL;
    }
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->out = out;
    if (style) {
        p->style = *style;
    }
    if (p->style.step_percent <= 0) {
        p->style.step_percent = 10;
    }
    if (p->style.heartbeat_s == 0) {
        p->style.heartbeat_s = 30;
    }
    if (p->style.redraw_s <= 0) {
        p->style.redraw_s = 0.1;
    }
    p->bar = p->style.mode == DUET_PROGRESS_BAR ||
             (p->style.mode == DUET_PROGRESS_AUTO && isatty(fileno(out)));
    p->start_ns = duet_now_ns();
    draw(p);
    return p;
}

duet_progress *duet_progress_begin(const char *label, uint64_t total, FILE *out)
{
    return duet_progress_begin_styled(label, total, out, NULL);
}

void duet_progress_update(duet_progress *p, uint64_t done)
{
    if (!p) {
        return;
    }
    p->done = done;
    double quiet_s = seconds_since(p->last_line_ns);
    if (p->bar) {
        if (quiet_s >= p->style.redraw_s) {
            draw(p);
        }
        return;
    }
    /* lines: a new step (100% is left to the final line), or a heartbeat for slow work */
    long step =
        p->total ? (long)floor(100.0 * (double)done / (double)p->total / p->style.step_percent) : 0;
    bool new_step = p->total && done < p->total && step > p->last_step;
    if (new_step || (p->style.heartbeat_s > 0 && quiet_s >= p->style.heartbeat_s)) {
        p->last_step = step > p->last_step ? step : p->last_step;
        draw(p);
    }
}

void duet_progress_end(duet_progress *p, bool ok)
{
    if (!p) {
        return;
    }
    double elapsed = seconds_since(p->start_ns);
    char d[32], t[32], r[32], e[32], line[256];
    if (ok) {
        uint64_t done = p->total ? p->total : p->done;
        snprintf(line, sizeof line, "%s: done, %s in %s (%s/s)", p->label,
                 duet_format_bytes(d, sizeof d, done), duet_format_duration(e, sizeof e, elapsed),
                 duet_format_bytes(r, sizeof r, rate_of(done, elapsed)));
    } else if (p->total) {
        double pct = p->done >= p->total ? 100.0 : 100.0 * (double)p->done / (double)p->total;
        snprintf(line, sizeof line, "%s: failed at %.0f%% (%s of %s) after %s", p->label,
                 floor(pct), duet_format_bytes(d, sizeof d, p->done),
                 duet_format_bytes(t, sizeof t, p->total),
                 duet_format_duration(e, sizeof e, elapsed));
    } else {
        snprintf(line, sizeof line, "%s: failed after %s (%s done)", p->label,
                 duet_format_duration(e, sizeof e, elapsed),
                 duet_format_bytes(d, sizeof d, p->done));
    }
    fprintf(p->out, p->bar ? "\r%s\033[K\n" : "%s\n", line);
    fflush(p->out);
    free(p);
}
