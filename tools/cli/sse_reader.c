#include "sse_reader.h"

#include <stdlib.h>
#include <string.h>

struct duet_sse_reader {
    size_t max_event;
    duet_sse_event_fn on_event;
    void *arg;
    bool stopped;
    char *line; /* the line being read, up to its '\n' */
    size_t line_len, line_cap;
    char *data; /* the data of the event being read */
    size_t data_len, data_cap;
    bool has_data; /* "data:" seen in this event (its data may be empty) */
};

duet_sse_reader *duet_sse_reader_new(size_t max_event_bytes, duet_sse_event_fn on_event, void *arg)
{
    duet_sse_reader *r = calloc(1, sizeof *r);
    if (r) {
        r->max_event = max_event_bytes;
        r->on_event = on_event;
        r->arg = arg;
    }
    return r;
}

void duet_sse_reader_free(duet_sse_reader *r)
{
    if (r) {
        free(r->line);
        free(r->data);
        free(r);
    }
}

/* Makes room for need more bytes plus a NUL in *buf, never past max. */
static bool reserve(char **buf, size_t *cap, size_t len, size_t need, size_t max)
{
    if (len + need + 1 <= *cap) {
        return true;
    }
    if (len + need > max) {
        return false;
    }
    size_t cap2 = *cap ? *cap : 256;
    while (cap2 < len + need + 1) {
        cap2 *= 2;
    }
    char *p = realloc(*buf, cap2);
    if (!p) {
        return false;
    }
    *buf = p;
    *cap = cap2;
    return true;
}

static duet_code too_big(duet_sse_reader *r, duet_status *st)
{
    return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                           "an event of the stream is longer than %zu bytes", r->max_event);
}

/* One whole line (without its end). A blank line ends the event. */
static duet_code take_line(duet_sse_reader *r, const char *line, size_t len, duet_status *st)
{
    if (len == 0) {
        if (r->has_data) {
            r->data[r->data_len] = '\0';
            r->stopped = !r->on_event(r->arg, r->data, r->data_len);
        }
        r->data_len = 0;
        r->has_data = false;
        return DUET_OK;
    }
    if (len < 5 || memcmp(line, "data:", 5) != 0) {
        return DUET_OK; /* a comment or another field */
    }
    const char *value = line + 5;
    size_t vlen = len - 5;
    if (vlen > 0 && value[0] == ' ') { /* one leading space belongs to the syntax */
        value++;
        vlen--;
    }
    size_t sep = r->has_data ? 1 : 0;
    if (!reserve(&r->data, &r->data_cap, r->data_len, vlen + sep, r->max_event)) {
        return too_big(r, st);
    }
    if (sep) {
        r->data[r->data_len++] = '\n';
    }
    memcpy(r->data + r->data_len, value, vlen);
    r->data_len += vlen;
    r->data[r->data_len] = '\0';
    r->has_data = true;
    return DUET_OK;
}

duet_code duet_sse_reader_feed(duet_sse_reader *r, const char *bytes, size_t len, duet_status *st)
{
    while (len > 0 && !r->stopped) {
        const char *nl = memchr(bytes, '\n', len);
        size_t part = nl ? (size_t)(nl - bytes) : len;
        if (!reserve(&r->line, &r->line_cap, r->line_len, part, r->max_event)) {
            return too_big(r, st);
        }
        memcpy(r->line + r->line_len, bytes, part);
        r->line_len += part;
        bytes += part;
        len -= part;
        if (!nl) {
            break; /* the rest of the line comes with the next bytes */
        }
        bytes++; /* the '\n' */
        len--;
        size_t n = r->line_len;
        if (n > 0 && r->line[n - 1] == '\r') {
            n--;
        }
        r->line_len = 0;
        duet_code rc = take_line(r, r->line, n, st);
        if (rc != DUET_OK) {
            return rc;
        }
    }
    if (r->stopped) {
        return duet_status_set(st, DUET_CANCELLED, "the reader stopped");
    }
    return DUET_OK;
}
