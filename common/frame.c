#include "frame.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* Fast level: payloads are token streams and vocabularies, latency matters more than ratio. */
#define FRAME_ZSTD_LEVEL 1

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

uint32_t duet_frame_header_length(const uint8_t header[DUET_FRAME_HEADER_BYTES])
{
    return (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 | (uint32_t)header[2] << 8 |
           (uint32_t)header[3];
}

duet_code duet_frame_encode(Duet__V1__Envelope *env, const void *payload, size_t payload_len,
                            size_t compress_threshold, size_t max_frame, duet_frame **out,
                            duet_status *st)
{
    void *compressed = NULL;
    env->protocol_version = DUET_PROTOCOL_VERSION;
    env->flags &= ~(uint32_t)DUET__V1__FRAME_FLAG__FRAME_FLAG_ZSTD;
    env->payload.data = (uint8_t *)payload;
    env->payload.len = payload_len;

    if (compress_threshold > 0 && payload_len >= compress_threshold) {
        size_t cap = ZSTD_compressBound(payload_len);
        compressed = malloc(cap);
        if (!compressed) {
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                                   "out of memory compressing %zu bytes", payload_len);
        }
        size_t n = ZSTD_compress(compressed, cap, payload, payload_len, FRAME_ZSTD_LEVEL);
        if (!ZSTD_isError(n) && n < payload_len) {
            env->payload.data = compressed;
            env->payload.len = n;
            env->flags |= DUET__V1__FRAME_FLAG__FRAME_FLAG_ZSTD;
        }
    }

    size_t body = duet__v1__envelope__get_packed_size(env);
    if (body > max_frame || body > UINT32_MAX) {
        free(compressed);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                               "frame of %zu bytes exceeds the %zu-byte frame limit", body,
                               max_frame);
    }
    duet_frame *frame = malloc(sizeof *frame + DUET_FRAME_HEADER_BYTES + body);
    if (!frame) {
        free(compressed);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory for a %zu-byte frame",
                               body);
    }
    frame->next = NULL;
    frame->len = DUET_FRAME_HEADER_BYTES + body;
    put_be32(frame->bytes, (uint32_t)body);
    duet__v1__envelope__pack(env, frame->bytes + DUET_FRAME_HEADER_BYTES);
    free(compressed);
    env->payload.data = NULL;
    env->payload.len = 0;
    *out = frame;
    return DUET_OK;
}

duet_code duet_frame_decode(const uint8_t *body, size_t len, size_t max_frame,
                            duet_decoded_frame *out, duet_status *st)
{
    memset(out, 0, sizeof *out);
    if (len > max_frame) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "frame of %zu bytes exceeds the %zu-byte frame limit", len,
                               max_frame);
    }
    Duet__V1__Envelope *env = duet__v1__envelope__unpack(NULL, len, body);
    if (!env) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "malformed frame: %zu bytes that are not a duet Envelope", len);
    }
    uint32_t known = DUET__V1__FRAME_FLAG__FRAME_FLAG_ZSTD;
    if (env->flags & ~known) {
        uint32_t flags = env->flags;
        duet__v1__envelope__free_unpacked(env, NULL);
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "frame has unknown flags 0x%x", flags);
    }
    out->env = env;
    out->payload = env->payload.data;
    out->payload_len = env->payload.len;
    if (!(env->flags & DUET__V1__FRAME_FLAG__FRAME_FLAG_ZSTD)) {
        return DUET_OK;
    }

    /* The declared size is the sender's claim: check it against our cap, and inflate into
     * a buffer of exactly that size so a lying header cannot make us write further. */
    unsigned long long size = ZSTD_getFrameContentSize(env->payload.data, env->payload.len);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
        duet_decoded_frame_free(out);
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "malformed frame: compressed payload has no valid zstd header");
    }
    if (size > max_frame) {
        duet_decoded_frame_free(out);
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "compressed payload inflates to %llu bytes, over the %zu-byte "
                               "frame limit",
                               size, max_frame);
    }
    out->inflated = malloc(size ? size : 1);
    if (!out->inflated) {
        duet_decoded_frame_free(out);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory inflating %llu bytes",
                               size);
    }
    size_t n = ZSTD_decompress(out->inflated, size, env->payload.data, env->payload.len);
    if (ZSTD_isError(n) || n != size) {
        duet_decoded_frame_free(out);
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "malformed frame: compressed payload is corrupt (%s)",
                               ZSTD_isError(n) ? ZSTD_getErrorName(n) : "size mismatch");
    }
    out->payload = out->inflated;
    out->payload_len = n;
    return DUET_OK;
}

void duet_decoded_frame_free(duet_decoded_frame *frame)
{
    if (frame->env) {
        duet__v1__envelope__free_unpacked(frame->env, NULL);
    }
    free(frame->inflated);
    memset(frame, 0, sizeof *frame);
}
