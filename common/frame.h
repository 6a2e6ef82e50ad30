/* Frames on the wire: a 4-byte big-endian length, then one protobuf Envelope.
 *
 * The length is checked against the receiver's cap before anything is allocated, and a
 * zstd-compressed payload is only inflated up to that same cap, so a hostile peer cannot
 * make us allocate more than max_frame bytes per frame. */
#ifndef DUET_FRAME_H
#define DUET_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "duet.pb-c.h"
#include "status.h"

/* Bumped when a change breaks old peers; both sides refuse a different version. */
#define DUET_PROTOCOL_VERSION 1u

#define DUET_FRAME_HEADER_BYTES 4u

/* One frame ready to send: header + envelope in one buffer. */
typedef struct duet_frame {
    struct duet_frame *next; /* for send queues */
    size_t len;
    uint8_t bytes[];
} duet_frame;

/* Serializes env with payload (which replaces env->payload) into a new frame. The payload
 * is zstd-compressed when compress_threshold > 0 and it is at least that long and it
 * shrinks. Fails with RESOURCE_EXHAUSTED when the frame would exceed max_frame. */
duet_code duet_frame_encode(Duet__V1__Envelope *env, const void *payload, size_t payload_len,
                            size_t compress_threshold, size_t max_frame, duet_frame **out,
                            duet_status *st);

/* Reads the length in a 4-byte header. */
uint32_t duet_frame_header_length(const uint8_t header[DUET_FRAME_HEADER_BYTES]);

/* A decoded frame. payload points into env or into an inflated buffer owned by this. */
typedef struct {
    Duet__V1__Envelope *env;
    const uint8_t *payload;
    size_t payload_len;
    uint8_t *inflated; /* non-NULL when the payload was compressed */
} duet_decoded_frame;

/* Decodes one envelope body (without the header). INVALID_ARGUMENT for bytes that are not
 * an Envelope, a compressed payload that is corrupt, or one that inflates beyond
 * max_frame; unknown flag bits are refused (a newer peer's feature we cannot honour). */
duet_code duet_frame_decode(const uint8_t *body, size_t len, size_t max_frame,
                            duet_decoded_frame *out, duet_status *st);

void duet_decoded_frame_free(duet_decoded_frame *frame);

#endif
