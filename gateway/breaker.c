#include "breaker.h"

void duet_breaker_init(duet_breaker *b, const duet_breaker_options *o)
{
    pthread_mutex_init(&b->lock, NULL);
    b->opt = *o;
    if (b->opt.failure_threshold == 0) {
        b->opt.failure_threshold = 1;
    }
    b->state = DUET_BREAKER_CLOSED;
    b->failures = 0;
    b->opened_ns = 0;
    b->probing = false;
    b->total_failures = b->times_opened = 0;
}

void duet_breaker_destroy(duet_breaker *b)
{
    pthread_mutex_destroy(&b->lock);
}

static bool cooled_down(const duet_breaker *b, uint64_t now_ns)
{
    return now_ns - b->opened_ns >= (uint64_t)b->opt.cooldown_ms * 1000000u;
}

bool duet_breaker_allow(duet_breaker *b, uint64_t now_ns)
{
    pthread_mutex_lock(&b->lock);
    bool ok;
    if (b->state == DUET_BREAKER_OPEN && cooled_down(b, now_ns)) {
        b->state = DUET_BREAKER_HALF_OPEN;
        b->probing = false;
    }
    switch (b->state) {
    case DUET_BREAKER_CLOSED:
        ok = true;
        break;
    case DUET_BREAKER_HALF_OPEN:
        ok = !b->probing;
        b->probing = true;
        break;
    default:
        ok = false;
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

void duet_breaker_success(duet_breaker *b)
{
    pthread_mutex_lock(&b->lock);
    b->state = DUET_BREAKER_CLOSED;
    b->failures = 0;
    b->probing = false;
    pthread_mutex_unlock(&b->lock);
}

void duet_breaker_failure(duet_breaker *b, uint64_t now_ns)
{
    pthread_mutex_lock(&b->lock);
    b->total_failures++;
    b->failures++;
    bool trip = b->state == DUET_BREAKER_HALF_OPEN ||
                (b->state == DUET_BREAKER_CLOSED && b->failures >= b->opt.failure_threshold);
    if (b->state == DUET_BREAKER_OPEN) {
        b->opened_ns = now_ns; /* still failing (a health check saw it): the cooldown restarts */
    } else if (trip) {
        b->state = DUET_BREAKER_OPEN;
        b->opened_ns = now_ns;
        b->probing = false;
        b->times_opened++;
    }
    pthread_mutex_unlock(&b->lock);
}

void duet_breaker_release_probe(duet_breaker *b)
{
    pthread_mutex_lock(&b->lock);
    b->probing = false;
    pthread_mutex_unlock(&b->lock);
}

duet_breaker_state duet_breaker_state_at(duet_breaker *b, uint64_t now_ns)
{
    pthread_mutex_lock(&b->lock);
    duet_breaker_state s = b->state;
    if (s == DUET_BREAKER_OPEN && cooled_down(b, now_ns)) {
        s = DUET_BREAKER_HALF_OPEN;
    }
    pthread_mutex_unlock(&b->lock);
    return s;
}

const char *duet_breaker_state_name(duet_breaker_state s)
{
    switch (s) {
    case DUET_BREAKER_CLOSED:
        return "closed";
    case DUET_BREAKER_OPEN:
        return "open";
    default:
        return "half-open";
    }
}
