/* One generation relayed from the workers to a client, with fallback: the request goes to
 * the first usable worker of the pool; if that worker is unreachable, overloaded
 * (RESOURCE_EXHAUSTED), fails, or is too slow to produce its first token, the request goes
 * to the next one; if the worker dies mid-answer, the next one continues the answer from
 * the text produced so far (a chat prompt whose last message is the partial answer, with
 * continue_last). Errors that are the request's own (INVALID_ARGUMENT, a passed deadline,
 * a busy session) are not retried. When no worker is left the relay ends with UNAVAILABLE
 * and the caller applies its last resort.
 *
 * Callbacks run on NNG or timer threads and must not block. */
#ifndef DUET_RELAY_H
#define DUET_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duet.pb-c.h"
#include "status.h"
#include "timer.h"
#include "worker_pool.h"

typedef struct {
    duet_status status;     /* OK, or why the generation failed */
    int finish_reason;      /* Duet__V1__FinishReason when OK */
    uint32_t prompt_tokens; /* as the (last) worker counted them */
    uint32_t cached_prompt_tokens;
    uint32_t completion_tokens; /* over every attempt */
    int worker;                 /* the worker that finished it, -1 when none */
    uint32_t attempts;          /* workers tried */
    bool continued;             /* resumed on another worker mid-answer */
} duet_relay_result;

typedef struct {
    /* New answer text (whole UTF-8 characters) and how many tokens it took. */
    void (*on_text)(void *arg, const char *text, size_t len, uint32_t tokens);
    /* Exactly once. */
    void (*on_end)(void *arg, const duet_relay_result *r);
    void *arg;
} duet_relay_sink;

typedef struct {
    uint32_t first_token_timeout_ms; /* 0: wait as long as the call's deadline */
    uint32_t timeout_ms;             /* the whole call's deadline per attempt; 0: none */
} duet_relay_options;

typedef struct duet_relay duet_relay;

/* Starts relaying req (copied). The sink's on_end may run before this returns. timer runs
 * the first-token timeouts and must outlive the relay, as must pool. */
duet_code duet_relay_start(duet_worker_pool *pool, duet_timer *timer,
                           const Duet__V1__GenerateRequest *req, const duet_relay_options *o,
                           const duet_relay_sink *sink, duet_relay **out, duet_status *st);

/* Stops the generation (on_end follows with CANCELLED unless it already ran). */
void duet_relay_cancel(duet_relay *r);

/* The owner is done with r (may be called from inside on_end); it is freed once the last
 * callback has returned. */
void duet_relay_release(duet_relay *r);

#endif
