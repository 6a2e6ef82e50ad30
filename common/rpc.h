/* duet RPC: gRPC-style calls over one NNG byte stream per peer (see proto/duet.proto).
 *
 * A server registers handlers by method name and listens; any number of peers may
 * connect, and each connection carries any number of concurrent calls. A client keeps one
 * connection to one server (reconnecting in the background) and makes unary and
 * server-streaming calls on it. Deadlines travel with the request and end the call on both
 * sides with DEADLINE_EXCEEDED; the caller can cancel; errors carry a gRPC status code and
 * a message. Large payloads are zstd-compressed; frames are capped in size.
 *
 * No thread per call: I/O runs on NNG's aio callbacks and one timer thread per endpoint.
 *
 * Programs using this library do not call nng_fini(): in NNG 1.5.2 it can race the reaper
 * thread still closing a freed TLS stream and abort ("panic: pthread_mutex_lock: Invalid
 * argument" in tls_reap), seen in about one exit in three after TLS traffic. */
#ifndef DUET_RPC_H
#define DUET_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tls.h"

typedef struct {
    size_t max_frame_bytes;            /* frames above this are refused (both directions) */
    size_t compress_threshold_bytes;   /* payloads this long or longer are compressed; 0 = never */
    uint32_t max_calls_per_connection; /* more concurrent calls are RESOURCE_EXHAUSTED */
    size_t send_queue_bytes;           /* per connection, before senders wait */
    uint32_t connect_timeout_ms;       /* client: one dial + hello attempt */
} duet_rpc_limits;

/* 16 MiB frames, compress from 4 KiB, 1024 calls, 8 MiB queue, 5 s connect. */
void duet_rpc_limits_default(duet_rpc_limits *limits);

/* ---- Server ------------------------------------------------------------------------- */

typedef struct duet_rpc_server duet_rpc_server;
typedef struct duet_rpc_call duet_rpc_call;

/* Runs on an NNG callback thread: must not block. req is valid only during the call. The
 * handler (or whoever it hands the call to) must end the call exactly once with
 * duet_rpc_call_finish or duet_rpc_call_fail, even after it was cancelled. */
typedef void (*duet_rpc_handler)(duet_rpc_call *call, const uint8_t *req, size_t req_len,
                                 void *arg);

/* Told once when the call is cancelled by the client, its deadline passes or its
 * connection is lost (why: CANCELLED, DEADLINE_EXCEEDED or UNAVAILABLE). Must not block. */
typedef void (*duet_rpc_cancel_fn)(duet_rpc_call *call, duet_code why, void *arg);

typedef struct {
    uint64_t connections_accepted;
    uint64_t connections_open;
    uint64_t handshakes_rejected; /* TLS peers that never completed an authenticated handshake */
    uint64_t calls_started;
    uint64_t calls_open;
    uint64_t bad_frames; /* malformed, oversized, unknown method, wrong version */
} duet_rpc_server_stats;

duet_code duet_rpc_server_new(const duet_rpc_limits *limits, duet_rpc_server **out,
                              duet_status *st);

/* Registers a handler; only before duet_rpc_server_listen. */
duet_code duet_rpc_server_register(duet_rpc_server *srv, const char *method,
                                   duet_rpc_handler handler, void *arg, duet_status *st);

/* Starts accepting on url. tls+tcp:// needs ca/cert/key in tls; plain transports need
 * tls->insecure and are logged as a warning. Port 0 picks a free port (see _port). */
duet_code duet_rpc_server_listen(duet_rpc_server *srv, const char *url, const duet_tls_options *tls,
                                 duet_status *st);

/* The TCP port bound by listen, or -1. */
int duet_rpc_server_port(duet_rpc_server *srv);

void duet_rpc_server_stats_get(duet_rpc_server *srv, duet_rpc_server_stats *out);

/* Stops accepting, closes every connection (cancelling their calls), waits until every
 * handler has ended its calls, and frees the server. */
void duet_rpc_server_free(duet_rpc_server *srv);

const char *duet_rpc_call_method(const duet_rpc_call *call);
const char *duet_rpc_call_peer(const duet_rpc_call *call);
/* A request metadata value, or NULL. */
const char *duet_rpc_call_metadata(const duet_rpc_call *call, const char *key);
/* Milliseconds left before the deadline; -1 when the call has none. */
int64_t duet_rpc_call_remaining_ms(const duet_rpc_call *call);

/* Sets the cancel callback; runs it at once (on this thread) if the call is already over. */
void duet_rpc_call_on_cancel(duet_rpc_call *call, duet_rpc_cancel_fn fn, void *arg);
bool duet_rpc_call_cancelled(const duet_rpc_call *call);

/* Sends one stream message. OK, or the reason the call is over (CANCELLED,
 * DEADLINE_EXCEEDED, UNAVAILABLE), or RESOURCE_EXHAUSTED when the connection's send queue
 * is full and wait is false. With wait, blocks while the queue is full (never from a handler
 * running on an NNG thread). */
duet_code duet_rpc_call_send(duet_rpc_call *call, const void *msg, size_t len, bool wait,
                             duet_status *st);

/* Ends the call with OK and a last message (may be empty), and releases it. */
void duet_rpc_call_finish(duet_rpc_call *call, const void *msg, size_t len);

/* Ends the call with an error status and releases it. */
void duet_rpc_call_fail(duet_rpc_call *call, duet_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- Client ------------------------------------------------------------------------- */

typedef struct duet_rpc_client duet_rpc_client;
typedef struct duet_rpc_stream duet_rpc_stream;

typedef struct {
    /* Each stream message, in order, on an NNG callback thread. Must not block long: the
     * connection's other calls wait meanwhile. */
    void (*on_message)(void *arg, const uint8_t *msg, size_t len);
    /* Exactly once: the call ended. st->code is OK with the last message (maybe empty), or
     * the error; msg is NULL then. */
    void (*on_end)(void *arg, const duet_status *st, const uint8_t *msg, size_t len);
    void *arg;
} duet_rpc_stream_callbacks;

typedef struct {
    const char *key;
    const char *value;
} duet_rpc_metadata;

/* Creates a client for url and starts connecting in the background; it reconnects with
 * back-off whenever the connection is lost. Calls made while it is not connected fail at
 * once with UNAVAILABLE and the last connection error. */
duet_code duet_rpc_client_new(const char *url, const duet_tls_options *tls,
                              const duet_rpc_limits *limits, duet_rpc_client **out,
                              duet_status *st);

/* Waits up to timeout_ms for the connection to be up. On failure st says why the last
 * attempt failed (refused, TLS rejected, name mismatch, protocol version...). */
duet_code duet_rpc_client_wait_ready(duet_rpc_client *client, uint32_t timeout_ms, duet_status *st);

bool duet_rpc_client_connected(duet_rpc_client *client);

/* Starts a call. cb->on_end is called exactly once (possibly before this returns when the
 * call fails at once — then this returns the same error and *out is NULL). timeout_ms 0 =
 * no deadline. The returned handle must be released with duet_rpc_stream_release. */
duet_code duet_rpc_call_stream(duet_rpc_client *client, const char *method, const void *req,
                               size_t req_len, uint32_t timeout_ms,
                               const duet_rpc_metadata *metadata, size_t n_metadata,
                               const duet_rpc_stream_callbacks *cb, duet_rpc_stream **out,
                               duet_status *st);

/* Cancels the call: the server is told, on_end gets CANCELLED unless it already ended. */
void duet_rpc_stream_cancel(duet_rpc_stream *stream);
void duet_rpc_stream_release(duet_rpc_stream *stream);

/* A blocking unary call: *resp (malloc'd, free it) receives the END message. Stream
 * messages before END, if any, are ignored. */
duet_code duet_rpc_call_unary(duet_rpc_client *client, const char *method, const void *req,
                              size_t req_len, uint32_t timeout_ms, uint8_t **resp, size_t *resp_len,
                              duet_status *st);

/* Ends every open call with UNAVAILABLE (waiting for their on_end), closes the connection
 * and frees the client. */
void duet_rpc_client_free(duet_rpc_client *client);

#endif
