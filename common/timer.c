#include "timer.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct duet_timer {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    duet_timer_entry *head; /* sorted by when_ns */
    bool stopping;
};

uint64_t duet_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void unlink_entry(duet_timer *t, duet_timer_entry *e)
{
    if (e->prev) {
        e->prev->next = e->next;
    } else {
        t->head = e->next;
    }
    if (e->next) {
        e->next->prev = e->prev;
    }
    e->prev = e->next = NULL;
    e->armed = false;
}

static void *timer_main(void *arg)
{
    duet_timer *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->stopping) {
        if (!t->head) {
            pthread_cond_wait(&t->wake, &t->lock);
            continue;
        }
        uint64_t now = duet_now_ns();
        duet_timer_entry *e = t->head;
        if (e->when_ns > now) {
            struct timespec until = {.tv_sec = (time_t)(e->when_ns / 1000000000u),
                                     .tv_nsec = (long)(e->when_ns % 1000000000u)};
            pthread_cond_timedwait(&t->wake, &t->lock, &until);
            continue;
        }
        unlink_entry(t, e);
        void (*fn)(void *) = e->fn;
        void *fn_arg = e->arg;
        pthread_mutex_unlock(&t->lock);
        fn(fn_arg);
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

duet_timer *duet_timer_new(void)
{
    duet_timer *t = calloc(1, sizeof *t);
    if (!t) {
        return NULL;
    }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&t->lock, NULL);
    if (pthread_create(&t->thread, NULL, timer_main, t) != 0) {
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
    }
    return t;
}

void duet_timer_free(duet_timer *t)
{
    if (!t) {
        return;
    }
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    while (t->head) {
        unlink_entry(t, t->head);
    }
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

void duet_timer_arm(duet_timer *t, duet_timer_entry *e, uint64_t when_ns, void (*fn)(void *),
                    void *arg)
{
    pthread_mutex_lock(&t->lock);
    e->when_ns = when_ns;
    e->fn = fn;
    e->arg = arg;
    e->armed = true;
    duet_timer_entry *prev = NULL, *cur = t->head;
    while (cur && cur->when_ns <= when_ns) {
        prev = cur;
        cur = cur->next;
    }
    e->prev = prev;
    e->next = cur;
    if (cur) {
        cur->prev = e;
    }
    if (prev) {
        prev->next = e;
    } else {
        t->head = e;
        pthread_cond_signal(&t->wake); /* a new earliest deadline */
    }
    pthread_mutex_unlock(&t->lock);
}

bool duet_timer_disarm(duet_timer *t, duet_timer_entry *e)
{
    pthread_mutex_lock(&t->lock);
    bool was_armed = e->armed;
    if (was_armed) {
        unlink_entry(t, e);
    }
    pthread_mutex_unlock(&t->lock);
    return was_armed;
}
