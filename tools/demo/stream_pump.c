#include "stream_pump.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct pump_stream {
    struct pump_stream *next;
    duet_rpc_call *call;
    uint32_t sent, ticks;
} pump_stream;

struct demo_pump {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool running;
    bool stopping;
    uint32_t interval_ms;
    pump_stream *streams;
};

/* One round: a tick for every stream; finished and cancelled ones are ended and dropped. */
static void pump_round(demo_pump *p)
{
    pthread_mutex_lock(&p->lock);
    pump_stream *list = p->streams;
    p->streams = NULL;
    pthread_mutex_unlock(&p->lock);

    pump_stream *keep = NULL;
    while (list) {
        pump_stream *s = list;
        list = s->next;
        char text[64];
        int n = snprintf(text, sizeof text, "tick %u of %u", s->sent + 1, s->ticks);
        duet_status st;
        duet_code rc = duet_rpc_call_send(s->call, text, (size_t)n, false, &st);
        if (rc == DUET_OK) {
            s->sent++;
        }
        if (rc == DUET_OK && s->sent == s->ticks) {
            duet_rpc_call_finish(s->call, NULL, 0);
            free(s);
        } else if (rc != DUET_OK && rc != DUET_RESOURCE_EXHAUSTED) {
            duet_rpc_call_fail(s->call, rc, "%s", st.message); /* cancelled or lost */
            free(s);
        } else {
            s->next = keep; /* sent, or the queue was full: next round */
            keep = s;
        }
    }
    pthread_mutex_lock(&p->lock);
    while (keep) {
        pump_stream *s = keep;
        keep = s->next;
        s->next = p->streams;
        p->streams = s;
    }
    pthread_mutex_unlock(&p->lock);
}

static void *pump_main(void *arg)
{
    demo_pump *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)p->interval_ms * 1000000u;
        until.tv_sec += (time_t)(ns / 1000000000u);
        until.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&p->wake, &p->lock, &until);
        if (p->stopping) {
            break;
        }
        pthread_mutex_unlock(&p->lock);
        pump_round(p);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

demo_pump *demo_pump_new(uint32_t interval_ms)
{
    demo_pump *p = calloc(1, sizeof *p);
    if (!p) {
        return NULL;
    }
    p->interval_ms = interval_ms;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->running = pthread_create(&p->thread, NULL, pump_main, p) == 0;
    return p;
}

void demo_pump_add(demo_pump *p, duet_rpc_call *call, uint32_t ticks)
{
    pump_stream *s = calloc(1, sizeof *s);
    if (!s || !p->running) {
        free(s);
        duet_rpc_call_fail(call, DUET_RESOURCE_EXHAUSTED, "cannot take another stream");
        return;
    }
    if (ticks == 0) {
        free(s);
        duet_rpc_call_finish(call, NULL, 0);
        return;
    }
    s->call = call;
    s->ticks = ticks;
    pthread_mutex_lock(&p->lock);
    s->next = p->streams;
    p->streams = s;
    pthread_mutex_unlock(&p->lock);
}

void demo_pump_stop(demo_pump *p)
{
    if (!p) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    if (p->running) {
        pthread_join(p->thread, NULL);
        p->running = false;
    }
    while (p->streams) {
        pump_stream *s = p->streams;
        p->streams = s->next;
        duet_rpc_call_fail(s->call, DUET_UNAVAILABLE, "the server is shutting down");
        free(s);
    }
}

void demo_pump_free(demo_pump *p)
{
    if (!p) {
        return;
    }
    demo_pump_stop(p);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
