#include "rpc_internal.h"

#include <nng/nng.h>

void duet_rpc_limits_default(duet_rpc_limits *limits)
{
    limits->max_frame_bytes = 16u << 20;
    limits->compress_threshold_bytes = 4096;
    limits->max_calls_per_connection = 1024;
    limits->send_queue_bytes = 8u << 20;
    limits->connect_timeout_ms = 5000;
}

void duet_rpc_conn_limits(const duet_rpc_limits *limits, bool tls, duet_conn_limits *out)
{
    out->max_frame_bytes = limits->max_frame_bytes;
    out->send_queue_bytes = limits->send_queue_bytes;
    out->tls = tls;
}

duet_code duet_rpc_send_frame(duet_conn *conn, const duet_rpc_limits *limits, uint64_t call_id,
                              Duet__V1__FrameKind kind, duet_code code, const char *message,
                              const void *payload, size_t len, duet_send_mode mode,
                              const volatile bool *abandon, duet_status *st)
{
    Duet__V1__Envelope env = DUET__V1__ENVELOPE__INIT;
    env.call_id = call_id;
    env.kind = kind;
    env.status_code = (uint32_t)code;
    if (message) {
        env.status_message = (char *)message;
    }
    duet_frame *frame = NULL;
    duet_code rc = duet_frame_encode(&env, payload, len, limits->compress_threshold_bytes,
                                     limits->max_frame_bytes, &frame, st);
    if (rc != DUET_OK) {
        return rc;
    }
    return duet_conn_send(conn, frame, mode, abandon, st);
}

const char *duet_rpc_nng_error_text(int err, bool tls)
{
    switch (err) {
    case NNG_ECONNREFUSED:
        return "connection refused (is the server running and listening on that address?)";
    case NNG_ECRYPTO:
        /* mbedTLS reports our refusal of the peer and the peer's alert alike */
        return tls ? "TLS handshake failed: either the peer's certificate is not acceptable here "
                     "(not signed by our CA, another name than expected, expired, or the wrong "
                     "key usage) or the peer refused ours (its log says which)"
                   : "cryptographic error";
    case NNG_EPEERAUTH:
        return "TLS peer authentication failed";
    case NNG_ECONNSHUT:
    case NNG_ECONNRESET:
        return tls ? "connection closed by the peer (a TLS server does this when it does not "
                     "accept our certificate)"
                   : "connection closed by the peer";
    case NNG_ETIMEDOUT:
        return "timed out";
    case NNG_EADDRINVAL:
        return "invalid address";
    case NNG_EUNREACHABLE:
        return "host unreachable";
    case NNG_ECLOSED:
        return "connection closed";
    default:
        return nng_strerror(err);
    }
}
