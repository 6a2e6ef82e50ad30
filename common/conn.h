/* A framed connection: one NNG byte stream carrying length-prefixed duet frames both ways.
 *
 * Reads run as a chain of aio callbacks (no thread per connection); frames are handed to
 * on_frame one at a time, in order, on NNG's callback threads, so on_frame must not block.
 * Sends may come from any thread; they are queued (bounded in bytes) and written in
 * batches. A frame whose length is over the cap, or whose bytes are not an Envelope, is
 * answered with a connection-level ERROR frame (call id 0); an over-long frame also closes
 * the connection, since the stream cannot be resynchronised without trusting that length. */
#ifndef DUET_CONN_H
#define DUET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "frame.h"
#include "status.h"

typedef struct duet_conn duet_conn;

typedef struct {
    /* One decoded frame; valid only during the call. */
    void (*on_frame)(duet_conn *conn, const duet_decoded_frame *frame, void *arg);
    /* A frame that was refused (malformed or over the cap), with the reason. May be NULL. */
    void (*on_bad_frame)(duet_conn *conn, const char *why, void *arg);
    /* Exactly once, after the last on_frame: the connection is closed. err is the NNG error
     * that ended it (NNG_ECLOSED after duet_conn_close); authenticated tells whether a TLS
     * handshake had completed with a verified peer (always true for plain transports). */
    void (*on_close)(duet_conn *conn, int err, bool authenticated, void *arg);
} duet_conn_callbacks;

typedef struct {
    size_t max_frame_bytes;
    size_t send_queue_bytes;
    bool tls;
} duet_conn_limits;

/* Takes ownership of stream. The returned connection holds one reference for the caller
 * (drop it with duet_conn_release). Nothing is read until duet_conn_begin, so the caller
 * can store the pointer where its callbacks will look for it. */
duet_conn *duet_conn_start(nng_stream *stream, const duet_conn_limits *limits,
                           const duet_conn_callbacks *cb, void *arg);

/* Starts reading: from now on callbacks run. Call once. */
void duet_conn_begin(duet_conn *conn);

void duet_conn_hold(duet_conn *conn);
void duet_conn_release(duet_conn *conn);

typedef enum {
    DUET_SEND_TRY,    /* queue full: RESOURCE_EXHAUSTED at once */
    DUET_SEND_WAIT,   /* queue full: block until room, close, or *abandon (never on NNG threads) */
    DUET_SEND_ALWAYS, /* queue regardless of the limit: one END/ERROR frame per call */
} duet_send_mode;

/* Queues a frame (taking ownership) for sending in order. A closed connection gives
 * UNAVAILABLE. */
duet_code duet_conn_send(duet_conn *conn, duet_frame *frame, duet_send_mode mode,
                         const volatile bool *abandon, duet_status *st);

/* Queues an ERROR frame for the whole connection (call id 0) and closes the connection once
 * it is written (or after a short grace period if the peer does not read). */
void duet_conn_fail(duet_conn *conn, duet_code code, const char *message);

/* Closes the stream; pending I/O ends and on_close follows. Safe to call many times. */
void duet_conn_close(duet_conn *conn);

bool duet_conn_closed(duet_conn *conn);

/* The peer's address as text ("127.0.0.1:43406"), fixed at start. */
const char *duet_conn_peer(const duet_conn *conn);

/* Frames refused because they were malformed or over the cap. */
uint64_t duet_conn_bad_frames(duet_conn *conn);

#endif
