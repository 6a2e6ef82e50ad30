/* Frame encoding: compression threshold, caps, corrupt and hostile payloads. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "frame.h"

static duet_frame *encode(const void *payload, size_t len, size_t threshold, size_t cap)
{
    Duet__V1__Envelope env = DUET__V1__ENVELOPE__INIT;
    env.call_id = 7;
    env.kind = DUET__V1__FRAME_KIND__FRAME_KIND_MESSAGE;
    duet_frame *frame = NULL;
    duet_status st;
    duet_code rc = duet_frame_encode(&env, payload, len, threshold, cap, &frame, &st);
    cr_assert_eq(rc, DUET_OK, "%s", st.message);
    return frame;
}

Test(frame, small_payload_is_not_compressed)
{
    duet_frame *f = encode("hello", 5, 4096, 1 << 20);
    cr_assert_eq(duet_frame_header_length(f->bytes), f->len - DUET_FRAME_HEADER_BYTES);
    duet_decoded_frame d;
    cr_assert_eq(duet_frame_decode(f->bytes + 4, f->len - 4, 1 << 20, &d, NULL), DUET_OK);
    cr_assert_eq(d.env->flags, 0);
    cr_assert_eq(d.env->call_id, 7);
    cr_assert_eq(d.env->protocol_version, DUET_PROTOCOL_VERSION);
    cr_assert_eq(d.payload_len, 5);
    cr_assert_arr_eq(d.payload, "hello", 5);
    duet_decoded_frame_free(&d);
    free(f);
}

Test(frame, payload_at_threshold_is_compressed_and_restored)
{
    size_t n = 64 * 1024;
    char *text = malloc(n);
    for (size_t i = 0; i < n; i++) {
        text[i] = "the quick brown fox "[i % 20];
    }
    duet_frame *f = encode(text, n, 4096, 1 << 20);
    cr_assert_lt(f->len, n / 10, "64 KiB of repeated text should shrink, got %zu", f->len);
    duet_decoded_frame d;
    cr_assert_eq(duet_frame_decode(f->bytes + 4, f->len - 4, 1 << 20, &d, NULL), DUET_OK);
    cr_assert_eq(d.env->flags, DUET__V1__FRAME_FLAG__FRAME_FLAG_ZSTD);
    cr_assert_eq(d.payload_len, n);
    cr_assert_arr_eq(d.payload, text, n);
    duet_decoded_frame_free(&d);
    free(f);

    /* threshold 0 never compresses */
    f = encode(text, n, 0, 1 << 20);
    cr_assert_gt(f->len, n);
    free(f);
    free(text);
}

Test(frame, incompressible_payload_is_sent_as_is)
{
    size_t n = 8192;
    uint8_t *noise = malloc(n);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise[i] = (uint8_t)x;
    }
    duet_frame *f = encode(noise, n, 4096, 1 << 20);
    duet_decoded_frame d;
    cr_assert_eq(duet_frame_decode(f->bytes + 4, f->len - 4, 1 << 20, &d, NULL), DUET_OK);
    cr_assert_eq(d.env->flags, 0);
    cr_assert_arr_eq(d.payload, noise, n);
    duet_decoded_frame_free(&d);
    free(f);
    free(noise);
}

Test(frame, encode_refuses_over_the_cap)
{
    Duet__V1__Envelope env = DUET__V1__ENVELOPE__INIT;
    duet_frame *frame = NULL;
    duet_status st;
    char buf[5000] = {0};
    buf[1] = 1; /* compressible, but threshold 0 */
    cr_assert_eq(duet_frame_encode(&env, buf, sizeof buf, 0, 4096, &frame, &st),
                 DUET_RESOURCE_EXHAUSTED);
    cr_assert_null(frame);
    cr_assert(strstr(st.message, "4096"), "%s", st.message);
}

Test(frame, decode_refuses_garbage)
{
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)(0xff - i);
    }
    duet_decoded_frame d;
    duet_status st;
    cr_assert_eq(duet_frame_decode(junk, sizeof junk, 1 << 20, &d, &st), DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "malformed"), "%s", st.message);
    cr_assert_null(d.env);
}

static duet_frame *envelope_with_raw_payload(const void *payload, size_t len, uint32_t flags)
{
    Duet__V1__Envelope env = DUET__V1__ENVELOPE__INIT;
    env.call_id = 1;
    env.flags = flags;
    env.payload.data = (uint8_t *)payload;
    env.payload.len = len;
    size_t body = duet__v1__envelope__get_packed_size(&env);
    duet_frame *f = malloc(sizeof *f + body);
    f->len = body;
    duet__v1__envelope__pack(&env, f->bytes);
    return f;
}

Test(frame, decompression_bomb_is_refused)
{
    /* 64 MiB of zeros compress to a few KiB; the receiver's cap is 1 MiB */
    size_t n = 64u << 20;
    uint8_t *zeros = calloc(1, n);
    size_t cap = ZSTD_compressBound(n);
    uint8_t *z = malloc(cap);
    size_t zn = ZSTD_compress(z, cap, zeros, n, 1);
    cr_assert(!ZSTD_isError(zn));
    duet_frame *f = envelope_with_raw_payload(z, zn, DUET__V1__FRAME_FLAG__FRAME_FLAG_ZSTD);
    duet_decoded_frame d;
    duet_status st;
    cr_assert_eq(duet_frame_decode(f->bytes, f->len, 1 << 20, &d, &st), DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "inflates"), "%s", st.message);
    free(f);
    free(z);
    free(zeros);
}

Test(frame, corrupt_compressed_payload_is_refused)
{
    const char *text = "not a zstd frame at all, just text pretending";
    duet_frame *f =
        envelope_with_raw_payload(text, strlen(text), DUET__V1__FRAME_FLAG__FRAME_FLAG_ZSTD);
    duet_decoded_frame d;
    duet_status st;
    cr_assert_eq(duet_frame_decode(f->bytes, f->len, 1 << 20, &d, &st), DUET_INVALID_ARGUMENT);
    free(f);

    /* a real zstd frame with its middle flipped */
    char src[4096];
    for (size_t i = 0; i < sizeof src; i++) {
        src[i] = (char)('a' + i % 7);
    }
    uint8_t z[8192];
    size_t zn = ZSTD_compress(z, sizeof z, src, sizeof src, 1);
    for (size_t i = 6; i < zn - 4; i++) {
        z[i] ^= 0x5a;
    }
    f = envelope_with_raw_payload(z, zn, DUET__V1__FRAME_FLAG__FRAME_FLAG_ZSTD);
    cr_assert_eq(duet_frame_decode(f->bytes, f->len, 1 << 20, &d, &st), DUET_INVALID_ARGUMENT,
                 "corrupt payload accepted");
    free(f);
}

Test(frame, unknown_flags_are_refused)
{
    duet_frame *f = envelope_with_raw_payload("x", 1, 0x80);
    duet_decoded_frame d;
    duet_status st;
    cr_assert_eq(duet_frame_decode(f->bytes, f->len, 1 << 20, &d, &st), DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "flags"), "%s", st.message);
    free(f);
}
