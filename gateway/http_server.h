/* The gateway's HTTP server, on NNG's (one TLS stack with the RPC layer): routes by method
 * and path, whole replies, and streamed replies (chunked transfer, for server-sent events)
 * that leave as they are written.
 *
 * Handlers run on NNG's task threads and must not block. Each exchange is ended exactly
 * once, by duet_http_reply or by duet_http_stream_begin (the stream is then ended with
 * duet_http_stream_end, from any thread). Request bodies come with Content-Length only, up
 * to the server's cap (NNG answers 400 past it); a chunked request body is refused with
 * 411. */
#ifndef DUET_HTTP_SERVER_H
#define DUET_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct duet_http_server duet_http_server;
typedef struct duet_http_exchange duet_http_exchange;
typedef struct duet_http_stream duet_http_stream;

typedef void (*duet_http_handler_fn)(duet_http_exchange *x, void *arg);

/* A server for addr ("HOST:PORT"; port 0 picks one), HTTPS when cert_file and key_file
 * (PEM) are given, plain HTTP when both are NULL. Not listening until started. */
duet_code duet_http_server_new(const char *addr, const char *cert_file, const char *key_file,
                               size_t max_body_bytes, duet_http_server **out, duet_status *st);

/* Routes method (NULL: any) on path, or on everything under it when subtree. Only before
 * start. */
duet_code duet_http_server_route(duet_http_server *srv, const char *method, const char *path,
                                 bool subtree, duet_http_handler_fn fn, void *arg, duet_status *st);

duet_code duet_http_server_start(duet_http_server *srv, duet_status *st);

/* The TCP port listened on, or -1. */
int duet_http_server_port(duet_http_server *srv);

/* Stops listening and frees the server. Streams begun must have been ended; any still
 * sending or waiting for their client to close are cut short first. */
void duet_http_server_free(duet_http_server *srv);

/* ---- one request ---- */

const char *duet_http_method(const duet_http_exchange *x);
/* The request URI's path, without the query. */
const char *duet_http_path(const duet_http_exchange *x);
/* The query after '?', or "". */
const char *duet_http_query(const duet_http_exchange *x);
/* A request header, or NULL. */
const char *duet_http_header(const duet_http_exchange *x, const char *name);
void duet_http_body(const duet_http_exchange *x, const uint8_t **body, size_t *len);

/* Ends the exchange with a whole reply. headers: name, value, ..., NULL (may be NULL). */
void duet_http_reply(duet_http_exchange *x, uint16_t status, const char *content_type,
                     const void *body, size_t len, const char *const *headers);

/* Ends the exchange by taking over its connection for a streamed reply: the status line and
 * headers (Transfer-Encoding: chunked, Cache-Control: no-cache) go out at once. NULL when
 * out of memory (the exchange is then answered 500). */
duet_http_stream *duet_http_stream_begin(duet_http_exchange *x, uint16_t status,
                                         const char *content_type, const char *const *headers);

/* Queues len bytes as one chunk; never blocks. UNAVAILABLE once the client has gone (seen
 * when a write fails) or stopped reading (1 MiB written and not yet sent: the stream is
 * then cut off), RESOURCE_EXHAUSTED when out of memory. */
duet_code duet_http_stream_write(duet_http_stream *s, const void *data, size_t len);

/* True once a write failed (the client went away). */
bool duet_http_stream_gone(duet_http_stream *s);

/* Sends the last chunk, closes the connection when everything queued is out, and frees
 * the stream (not to be used after). Over HTTPS the connection is closed once the client
 * has closed its end (for up to 5 s): NNG's TLS layer reports a write done while the data
 * is still in its buffer, and closing at once would lose the answer's end. */
void duet_http_stream_end(duet_http_stream *s);

#endif
