/* What the RPC server and client share and nobody else needs. */
#ifndef DUET_RPC_INTERNAL_H
#define DUET_RPC_INTERNAL_H

#include "conn.h"
#include "frame.h"
#include "rpc.h"

/* The first call on every connection (call id 0): the client says hello, the server
 * answers END, or ERROR when the protocol versions differ. It also drives the TLS
 * handshake, so "connected" means authenticated both ways. */
#define DUET_RPC_HELLO_METHOD "duet/hello"

/* Encodes and queues a frame without payload compression settings of its own. */
duet_code duet_rpc_send_frame(duet_conn *conn, const duet_rpc_limits *limits, uint64_t call_id,
                              Duet__V1__FrameKind kind, duet_code code, const char *message,
                              const void *payload, size_t len, duet_send_mode mode,
                              const volatile bool *abandon, duet_status *st);

/* A sentence for an NNG error seen while connecting or on a live connection. */
const char *duet_rpc_nng_error_text(int err, bool tls);

/* Fills a duet_conn_limits from RPC limits. */
void duet_rpc_conn_limits(const duet_rpc_limits *limits, bool tls, duet_conn_limits *out);

#endif
