/* The progress display: byte and duration formatting, the line layout, plain-line output
 * for logs (a bounded number of lines in percent steps, plus heartbeats for slow work),
 * the redrawn bar's rate limit, and the final done / failed line. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"

#define MiB (1024ull * 1024)

Test(progress, bytes_in_binary_units_at_most_three_digits)
{
    char b[32];
    cr_assert_str_eq(duet_format_bytes(b, sizeof b, 0), "0 B");
    cr_assert_str_eq(duet_format_bytes(b, sizeof b, 999), "999 B");
    cr_assert_str_eq(duet_format_bytes(b, sizeof b, 1000), "0.98 KiB");
    cr_assert_str_eq(duet_format_bytes(b, sizeof b, 1024), "1.00 KiB");
    cr_assert_str_eq(duet_format_bytes(b, sizeof b, 1536), "1.50 KiB");
    cr_assert_str_eq(duet_format_bytes(b, sizeof b, 12 * MiB + 300 * 1024), "12.3 MiB");
    cr_assert_str_eq(duet_format_bytes(b, sizeof b, 512 * MiB), "512 MiB");
    cr_assert_str_eq(duet_format_bytes(b, sizeof b, 1000 * MiB), "0.98 GiB");
    cr_assert_str_eq(duet_format_bytes(b, sizeof b, 4014 * MiB), "3.92 GiB");
    cr_assert_str_eq(duet_format_bytes(b, sizeof b, 3ull << 40), "3.00 TiB");
    cr_assert_str_eq(duet_format_bytes(b, sizeof b, UINT64_MAX), "16.0 EiB");
    char tiny[6];
    cr_assert_str_eq(duet_format_bytes(tiny, sizeof tiny, 512 * MiB), "512 M",
                     "truncated, "
                     "terminated");
}

Test(progress, durations)
{
    char b[32];
    cr_assert_str_eq(duet_format_duration(b, sizeof b, 0), "0.0 s");
    cr_assert_str_eq(duet_format_duration(b, sizeof b, 0.44), "0.4 s");
    cr_assert_str_eq(duet_format_duration(b, sizeof b, 12.2), "12 s");
    cr_assert_str_eq(duet_format_duration(b, sizeof b, 59.4), "59 s");
    cr_assert_str_eq(duet_format_duration(b, sizeof b, 185), "3m05s");
    cr_assert_str_eq(duet_format_duration(b, sizeof b, 7620), "2h07m");
    cr_assert_str_eq(duet_format_duration(b, sizeof b, -1), "?");
    cr_assert_str_eq(duet_format_duration(b, sizeof b, NAN), "?");
    cr_assert_str_eq(duet_format_duration(b, sizeof b, INFINITY), "?");
}

Test(progress, line_layout)
{
    char b[256];
    cr_assert_str_eq(duet_progress_format_line(b, sizeof b, "load", 1 * MiB, 4 * MiB, 0.5, 8),
                     "load [##      ]  25% 1.00 MiB / 4.00 MiB  2.00 MiB/s  ETA 1.5 s");
    cr_assert_str_eq(duet_progress_format_line(b, sizeof b, "load", 1 * MiB, 4 * MiB, 0.5, 0),
                     "load  25% 1.00 MiB / 4.00 MiB  2.00 MiB/s  ETA 1.5 s");
    /* nothing done yet: no rate or ETA to guess */
    cr_assert_str_eq(duet_progress_format_line(b, sizeof b, "load", 0, 4 * MiB, 0.5, 0),
                     "load   0% 0 B / 4.00 MiB");
    /* unknown total: bytes and rate only */
    cr_assert_str_eq(duet_progress_format_line(b, sizeof b, "load", 1 * MiB, 0, 0.5, 8),
                     "load 1.00 MiB  2.00 MiB/s");
    cr_assert_str_eq(duet_progress_format_line(b, sizeof b, "load", 4 * MiB, 4 * MiB, 2, 4),
                     "load [####] 100% 4.00 MiB / 4.00 MiB  2.00 MiB/s");
    char small[12];
    duet_progress_format_line(small, sizeof small, "a long label here", 1, 2, 1, 8);
    cr_assert_eq(strlen(small), sizeof small - 1, "truncated to the buffer");
}

/* Runs updates 0..total in n steps into a memory stream; returns the output. */
static char *run(const duet_progress_style *style, uint64_t total, int n, bool ok, uint64_t stop_at)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    duet_progress *p = duet_progress_begin_styled("loading m.gguf", total, f, style);
    cr_assert_not_null(p);
    for (int i = 1; i <= n; i++) {
        uint64_t done = total / (uint64_t)n * (uint64_t)i;
        if (done > stop_at) {
            break;
        }
        duet_progress_update(p, done);
    }
    duet_progress_end(p, ok);
    fclose(f);
    return buf;
}

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++) {
        n += *s == c;
    }
    return n;
}

Test(progress, plain_lines_in_ten_percent_steps)
{
    duet_progress_style style = {.mode = DUET_PROGRESS_LINES};
    char *out = run(&style, 1000 * MiB, 1000, true, UINT64_MAX);
    cr_assert_null(strchr(out, '\r'), "no carriage returns in a log: %s", out);
    cr_assert_null(strchr(out, '\033'), "no escape codes in a log");
    /* the start, 10% .. 90%, and the final line: a thousand updates make eleven lines */
    cr_assert_eq(count_char(out, '\n'), 11, "%s", out);
    const char *at = out;
    for (int pct = 0; pct <= 90; pct += 10) {
        char want[16];
        snprintf(want, sizeof want, "%3d%% ", pct);
        at = strstr(at, want);
        cr_assert_not_null(at, "%d%% line missing or out of order:\n%s", pct, out);
    }
    cr_assert_null(strstr(out, "100% "), "the end is the final line's: %s", out);
    const char *last = strstr(out, "loading m.gguf: done, 0.98 GiB in ");
    cr_assert_not_null(last, "%s", out);
    cr_assert_str_eq(last + strlen(last) - 1, "\n");
    free(out);
}

Test(progress, auto_mode_is_plain_when_not_a_terminal)
{
    char *out = run(NULL, 100 * MiB, 50, true, UINT64_MAX);
    cr_assert_null(strchr(out, '\r'), "%s", out);
    cr_assert_eq(count_char(out, '\n'), 11, "%s", out);
    free(out);
}

Test(progress, failure_line_says_how_far_it_got)
{
    duet_progress_style style = {.mode = DUET_PROGRESS_LINES};
    char *out = run(&style, 100 * MiB, 100, false, 42 * MiB);
    cr_assert_not_null(strstr(out, "loading m.gguf: failed at 42% (42.0 MiB of 100 MiB) after "),
                       "%s", out);
    cr_assert_null(strstr(out, "done"), "%s", out);
    cr_assert_eq(count_char(out, '\n'), 6, "start, 10..40%%, failed: %s", out);
    free(out);
}

Test(progress, heartbeat_lines_for_slow_work)
{
    /* steps of 100% never come before the end; only heartbeats show life */
    duet_progress_style style = {
        .mode = DUET_PROGRESS_LINES, .step_percent = 100, .heartbeat_s = 0.02};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    duet_progress *p = duet_progress_begin_styled("slow", 10 * MiB, f, &style);
    duet_progress_update(p, 1 * MiB); /* too soon after the start line */
    for (int i = 2; i <= 4; i++) {
        usleep(30000);
        duet_progress_update(p, (uint64_t)i * MiB);
    }
    duet_progress_end(p, true);
    fclose(f);
    cr_assert_eq(count_char(buf, '\n'), 5, "start, three heartbeats, done: %s", buf);
    cr_assert_not_null(strstr(buf, "slow  40% 4.00 MiB / 10.0 MiB"), "%s", buf);
    free(buf);
}

Test(progress, bar_redraws_in_place_and_rate_limited)
{
    duet_progress_style style = {.mode = DUET_PROGRESS_BAR, .redraw_s = 10};
    char *out = run(&style, 1000 * MiB, 1000, true, UINT64_MAX);
    /* the first draw and the final line; the thousand updates came within redraw_s */
    cr_assert_eq(count_char(out, '\r'), 2, "%s", out);
    cr_assert_eq(count_char(out, '\n'), 1, "one line ends, at the end: %s", out);
    cr_assert(strncmp(out, "\rloading m.gguf [", 17) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "\033[K"), "erases leftovers of a longer line");
    cr_assert_not_null(strstr(out, "\rloading m.gguf: done, 0.98 GiB in "), "%s", out);
    free(out);

    style.redraw_s = 1e-9;
    out = run(&style, 1000 * MiB, 10, true, UINT64_MAX);
    cr_assert_eq(count_char(out, '\r'), 12, "every update redrawn: %s", out);
    cr_assert_not_null(strstr(out, "[############            ]  50%"), "%s", out);
    free(out);
}

Test(progress, null_handle_is_a_no_op)
{
    duet_progress_update(NULL, 5);
    duet_progress_end(NULL, true);
}
