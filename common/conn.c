#include "conn.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>

#define CONN_RECV_INITIAL (64u * 1024u)
#define CONN_SEND_BATCH (64u * 1024u)
#define CONN_MAX_BAD_FRAMES 16  /* a peer that keeps sending garbage is cut off */
#define CONN_FAIL_GRACE_MS 2000 /* how long a failing connection waits for its error to leave */
#define CONN_SEND_WAIT_SLICE_NS 20000000L

struct duet_conn {
    atomic_int refs;
    nng_stream *stream;
    duet_conn_limits limits;
    duet_conn_callbacks cb;
    void *cb_arg;
    char peer[64];

    pthread_mutex_t lock;
    pthread_cond_t room; /* signalled when the send queue shrinks or the connection closes */
    bool closed;
    bool close_after_flush;
    nng_time fail_deadline; /* when a failing connection is closed regardless */
    int close_err;
    atomic_uint_fast64_t bad_frames;

    /* receive side: only touched by the recv callback chain */
    nng_aio *recv_aio;
    uint8_t *rbuf;
    size_t rcap;
    size_t rlen;

    /* send side, under lock */
    nng_aio *send_aio;
    duet_frame *queue_head;
    duet_frame *queue_tail;
    size_t queued_bytes;
    bool sending;
    uint8_t *batch;          /* small frames are copied here and written together */
    duet_frame *inflight;    /* frames covered by the write in flight */
    const uint8_t *send_ptr; /* what the write in flight still has to send */
    size_t send_left;
    size_t inflight_bytes;
};

static void conn_free(duet_conn *c)
{
    nng_aio_reap(c->recv_aio);
    nng_aio_reap(c->send_aio);
    nng_stream_free(c->stream);
    for (duet_frame *f = c->queue_head; f;) {
        duet_frame *next = f->next;
        free(f);
        f = next;
    }
    for (duet_frame *f = c->inflight; f;) {
        duet_frame *next = f->next;
        free(f);
        f = next;
    }
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->room);
    free(c->rbuf);
    free(c->batch);
    free(c);
}

void duet_conn_hold(duet_conn *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void duet_conn_release(duet_conn *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
        conn_free(c);
    }
}

const char *duet_conn_peer(const duet_conn *c)
{
    return c->peer;
}

uint64_t duet_conn_bad_frames(duet_conn *c)
{
    return atomic_load(&c->bad_frames);
}

bool duet_conn_closed(duet_conn *c)
{
    pthread_mutex_lock(&c->lock);
    bool closed = c->closed;
    pthread_mutex_unlock(&c->lock);
    return closed;
}

static void close_locked(duet_conn *c, int err)
{
    if (!c->closed) {
        c->closed = true;
        c->close_err = err;
        pthread_cond_broadcast(&c->room);
        nng_stream_close(c->stream);
    }
}

void duet_conn_close(duet_conn *c)
{
    pthread_mutex_lock(&c->lock);
    close_locked(c, NNG_ECLOSED);
    pthread_mutex_unlock(&c->lock);
}

/* Starts the next write when none is in flight. Called with the lock held. */
static void send_next_locked(duet_conn *c)
{
    if (c->sending || c->closed || !c->queue_head) {
        if (!c->sending && !c->queue_head && c->close_after_flush) {
            close_locked(c, NNG_ECLOSED);
        }
        return;
    }
    duet_frame *first = c->queue_head;
    if (first->len >= CONN_SEND_BATCH) {
        /* a big frame goes out as it is, without a copy */
        c->queue_head = first->next;
        first->next = NULL;
        c->inflight = first;
        c->send_ptr = first->bytes;
        c->send_left = first->len;
    } else {
        size_t used = 0;
        duet_frame **tail = &c->inflight;
        while (c->queue_head && used + c->queue_head->len <= CONN_SEND_BATCH) {
            duet_frame *f = c->queue_head;
            c->queue_head = f->next;
            memcpy(c->batch + used, f->bytes, f->len);
            used += f->len;
            f->next = NULL;
            *tail = f;
            tail = &f->next;
        }
        c->send_ptr = c->batch;
        c->send_left = used;
    }
    if (!c->queue_head) {
        c->queue_tail = NULL;
    }
    c->inflight_bytes = c->send_left;
    c->sending = true;
    duet_conn_hold(c);
    nng_iov iov = {.iov_buf = (void *)c->send_ptr, .iov_len = c->send_left};
    nng_aio_set_iov(c->send_aio, 1, &iov);
    nng_aio_set_timeout(c->send_aio,
                        c->close_after_flush ? CONN_FAIL_GRACE_MS : NNG_DURATION_INFINITE);
    nng_stream_send(c->stream, c->send_aio);
}

static void on_send_done(void *arg)
{
    duet_conn *c = arg;
    int rv = nng_aio_result(c->send_aio);
    size_t n = nng_aio_count(c->send_aio);
    pthread_mutex_lock(&c->lock);
    if (rv == 0 && n < c->send_left) {
        /* a partial write: send the rest of the same bytes */
        c->send_ptr += n;
        c->send_left -= n;
        nng_iov iov = {.iov_buf = (void *)c->send_ptr, .iov_len = c->send_left};
        nng_aio_set_iov(c->send_aio, 1, &iov);
        nng_stream_send(c->stream, c->send_aio);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    for (duet_frame *f = c->inflight; f;) {
        duet_frame *next = f->next;
        free(f);
        f = next;
    }
    c->inflight = NULL;
    c->queued_bytes -= c->inflight_bytes;
    c->inflight_bytes = 0;
    c->sending = false;
    if (rv != 0) {
        close_locked(c, rv);
    }
    pthread_cond_broadcast(&c->room);
    send_next_locked(c);
    pthread_mutex_unlock(&c->lock);
    duet_conn_release(c);
}

duet_code duet_conn_send(duet_conn *c, duet_frame *frame, duet_send_mode mode,
                         const volatile bool *abandon, duet_status *st)
{
    pthread_mutex_lock(&c->lock);
    while (mode != DUET_SEND_ALWAYS && !c->closed && !c->close_after_flush && c->queued_bytes > 0 &&
           c->queued_bytes + frame->len > c->limits.send_queue_bytes) {
        if (mode == DUET_SEND_TRY || (abandon && *abandon)) {
            pthread_mutex_unlock(&c->lock);
            free(frame);
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                                   "send queue to %s is full (%zu bytes)", c->peer,
                                   c->limits.send_queue_bytes);
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += CONN_SEND_WAIT_SLICE_NS;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->room, &c->lock, &until);
    }
    if (c->closed || c->close_after_flush) {
        pthread_mutex_unlock(&c->lock);
        free(frame);
        return duet_status_set(st, DUET_UNAVAILABLE, "connection to %s is closed", c->peer);
    }
    frame->next = NULL;
    if (c->queue_tail) {
        c->queue_tail->next = frame;
    } else {
        c->queue_head = frame;
    }
    c->queue_tail = frame;
    c->queued_bytes += frame->len;
    send_next_locked(c);
    pthread_mutex_unlock(&c->lock);
    return DUET_OK;
}

void duet_conn_fail(duet_conn *c, duet_code code, const char *message)
{
    Duet__V1__Envelope env = DUET__V1__ENVELOPE__INIT;
    env.kind = DUET__V1__FRAME_KIND__FRAME_KIND_ERROR;
    env.status_code = (uint32_t)code;
    env.status_message = (char *)message;
    duet_frame *frame = NULL;
    if (duet_frame_encode(&env, NULL, 0, 0, SIZE_MAX, &frame, NULL) == DUET_OK) {
        duet_conn_send(c, frame, DUET_SEND_ALWAYS, NULL, NULL);
    }
    pthread_mutex_lock(&c->lock);
    if (!c->close_after_flush) {
        c->close_after_flush = true;
        c->fail_deadline = nng_clock() + CONN_FAIL_GRACE_MS;
    }
    send_next_locked(c);
    pthread_mutex_unlock(&c->lock);
}

/* An ERROR frame for the connection that leaves it open (the framing is still intact). */
static void conn_report_bad_frame(duet_conn *c, const char *message)
{
    uint64_t bad = atomic_fetch_add(&c->bad_frames, 1) + 1;
    if (c->cb.on_bad_frame) {
        c->cb.on_bad_frame(c, message, c->cb_arg);
    }
    if (bad >= CONN_MAX_BAD_FRAMES) {
        char text[DUET_STATUS_MESSAGE_MAX + 64];
        snprintf(text, sizeof text, "%s; closing after %llu bad frames", message,
                 (unsigned long long)bad);
        duet_conn_fail(c, DUET_INVALID_ARGUMENT, text);
        return;
    }
    Duet__V1__Envelope env = DUET__V1__ENVELOPE__INIT;
    env.kind = DUET__V1__FRAME_KIND__FRAME_KIND_ERROR;
    env.status_code = DUET_INVALID_ARGUMENT;
    env.status_message = (char *)message;
    duet_frame *frame = NULL;
    if (duet_frame_encode(&env, NULL, 0, 0, SIZE_MAX, &frame, NULL) == DUET_OK) {
        duet_conn_send(c, frame, DUET_SEND_ALWAYS, NULL, NULL);
    }
}

/* Hands every complete frame in the buffer to on_frame. A length over the cap fails the
 * connection: the stream cannot be resynchronised without trusting that length. */
static void conn_parse_frames(duet_conn *c)
{
    size_t off = 0;
    while (c->rlen - off >= DUET_FRAME_HEADER_BYTES) {
        uint32_t len = duet_frame_header_length(c->rbuf + off);
        if (len == 0 || len > c->limits.max_frame_bytes) {
            char text[160];
            snprintf(text, sizeof text, "frame of %u bytes refused: the limit is %zu bytes", len,
                     c->limits.max_frame_bytes);
            atomic_fetch_add(&c->bad_frames, 1);
            if (c->cb.on_bad_frame) {
                c->cb.on_bad_frame(c, text, c->cb_arg);
            }
            duet_conn_fail(c, len ? DUET_RESOURCE_EXHAUSTED : DUET_INVALID_ARGUMENT, text);
            return;
        }
        size_t total = DUET_FRAME_HEADER_BYTES + (size_t)len;
        if (c->rlen - off < total) {
            if (total > c->rcap) {
                /* grow only once the length has passed the cap check above */
                memmove(c->rbuf, c->rbuf + off, c->rlen - off);
                c->rlen -= off;
                off = 0;
                uint8_t *bigger = realloc(c->rbuf, total);
                if (!bigger) {
                    duet_conn_fail(c, DUET_RESOURCE_EXHAUSTED, "out of memory for a frame");
                    return;
                }
                c->rbuf = bigger;
                c->rcap = total;
            }
            break;
        }
        duet_decoded_frame frame;
        duet_status st;
        if (duet_frame_decode(c->rbuf + off + DUET_FRAME_HEADER_BYTES, len,
                              c->limits.max_frame_bytes, &frame, &st) == DUET_OK) {
            c->cb.on_frame(c, &frame, c->cb_arg);
            duet_decoded_frame_free(&frame);
        } else {
            conn_report_bad_frame(c, st.message);
        }
        off += total;
        if (duet_conn_closed(c)) {
            return;
        }
    }
    if (off > 0) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
}

static void post_recv(duet_conn *c)
{
    nng_iov iov = {.iov_buf = c->rbuf + c->rlen, .iov_len = c->rcap - c->rlen};
    nng_aio_set_iov(c->recv_aio, 1, &iov);
    nng_stream_recv(c->stream, c->recv_aio);
}

static bool conn_authenticated(duet_conn *c)
{
    if (!c->limits.tls) {
        return true;
    }
    bool verified = false;
    if (nng_stream_get_bool(c->stream, NNG_OPT_TLS_VERIFIED, &verified) != 0) {
        return false;
    }
    return verified;
}

static void on_recv_done(void *arg)
{
    duet_conn *c = arg;
    int rv = nng_aio_result(c->recv_aio);
    if (rv == 0) {
        pthread_mutex_lock(&c->lock);
        bool draining = c->close_after_flush;
        pthread_mutex_unlock(&c->lock);
        if (draining) {
            c->rlen = 0; /* failing: drop what arrives until our error frame is out */
        } else {
            c->rlen += nng_aio_count(c->recv_aio);
            conn_parse_frames(c);
        }
        pthread_mutex_lock(&c->lock);
        draining = c->close_after_flush;
        nng_time now = nng_clock();
        if (draining && now >= c->fail_deadline) {
            close_locked(c, NNG_ETIMEDOUT);
        }
        /* NNG 1.5.2 queues a read on a closed TCP stream forever: post only while open,
         * under the lock that close_locked takes, so a close either sees the read or the
         * read sees the close */
        if (!c->closed) {
            /* a failing connection ends within the grace period even if the peer never
             * reads */
            nng_aio_set_timeout(
                c->recv_aio,
                draining ? (nng_duration)(c->fail_deadline > now ? c->fail_deadline - now : 1)
                         : NNG_DURATION_INFINITE);
            post_recv(c);
            pthread_mutex_unlock(&c->lock);
            return;
        }
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_lock(&c->lock);
    close_locked(c, rv ? rv : NNG_ECLOSED);
    int err = c->close_err;
    pthread_mutex_unlock(&c->lock);
    c->cb.on_close(c, err, conn_authenticated(c), c->cb_arg);
    duet_conn_release(c); /* the receive chain's reference */
}

duet_conn *duet_conn_start(nng_stream *stream, const duet_conn_limits *limits,
                           const duet_conn_callbacks *cb, void *arg)
{
    duet_conn *c = calloc(1, sizeof *c);
    if (!c) {
        nng_stream_free(stream);
        return NULL;
    }
    c->stream = stream;
    c->limits = *limits;
    c->cb = *cb;
    c->cb_arg = arg;
    atomic_init(&c->refs, 2); /* the caller's and the receive chain's */
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->room, NULL);
    c->rcap = CONN_RECV_INITIAL;
    c->rbuf = malloc(c->rcap);
    c->batch = malloc(CONN_SEND_BATCH);
    if (!c->rbuf || !c->batch || nng_aio_alloc(&c->recv_aio, on_recv_done, c) != 0 ||
        nng_aio_alloc(&c->send_aio, on_send_done, c) != 0) {
        nng_aio_free(c->recv_aio);
        nng_stream_free(stream);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->room);
        free(c->rbuf);
        free(c->batch);
        free(c);
        return NULL;
    }
    nng_sockaddr sa;
    snprintf(c->peer, sizeof c->peer, "unknown peer");
    if (nng_stream_get_addr(stream, NNG_OPT_REMADDR, &sa) == 0) {
        char host[INET6_ADDRSTRLEN] = "?";
        if (sa.s_family == NNG_AF_INET) {
            inet_ntop(AF_INET, &sa.s_in.sa_addr, host, sizeof host);
            snprintf(c->peer, sizeof c->peer, "%s:%u", host, ntohs(sa.s_in.sa_port));
        } else if (sa.s_family == NNG_AF_INET6) {
            inet_ntop(AF_INET6, sa.s_in6.sa_addr, host, sizeof host);
            snprintf(c->peer, sizeof c->peer, "[%s]:%u", host, ntohs(sa.s_in6.sa_port));
        } else if (sa.s_family == NNG_AF_IPC || sa.s_family == NNG_AF_ABSTRACT) {
            snprintf(c->peer, sizeof c->peer, "local peer");
        }
    }
    nng_stream_set_bool(stream, NNG_OPT_TCP_NODELAY, true);
    return c;
}

void duet_conn_begin(duet_conn *c)
{
    pthread_mutex_lock(&c->lock);
    if (!c->closed) {
        post_recv(c);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    pthread_mutex_unlock(&c->lock);
    c->cb.on_close(c, c->close_err, false, c->cb_arg);
    duet_conn_release(c);
}
