/* Server-sent events, read incrementally: bytes go in as they arrive from the network, in
 * pieces of any size, and each complete event's data comes out at once (the "data:" lines of
 * one event joined with newlines, as the SSE format defines). Other fields (event:, id:,
 * retry:) and comments are skipped: the gateway's chat stream uses data only. */
#ifndef DUET_CLI_SSE_READER_H
#define DUET_CLI_SSE_READER_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/* Called with one event's data (NUL-terminated, len bytes); returns false to stop reading. */
typedef bool (*duet_sse_event_fn)(void *arg, const char *data, size_t len);

typedef struct duet_sse_reader duet_sse_reader;

/* A reader handing events to on_event; events longer than max_event_bytes are an error.
 * NULL when out of memory. */
duet_sse_reader *duet_sse_reader_new(size_t max_event_bytes, duet_sse_event_fn on_event, void *arg);
void duet_sse_reader_free(duet_sse_reader *r);

/* Feeds the next len bytes of the stream. DUET_OK while reading goes on; DUET_CANCELLED once
 * on_event returned false (later bytes are ignored); DUET_RESOURCE_EXHAUSTED for an event
 * over the limit or out of memory. */
duet_code duet_sse_reader_feed(duet_sse_reader *r, const char *bytes, size_t len, duet_status *st);

#endif
