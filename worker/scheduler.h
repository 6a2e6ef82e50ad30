/* Continuous batching: one thread runs the engine step after step. Each step decodes one
 * token for every running sequence and feeds waiting prompts in chunks, all in one pass
 * over the weights, so streams start and finish independently and a long prompt does not
 * freeze the others. Results are what the sequence would get alone: every entry of a step
 * is computed independently of the others.
 *
 * Limits: at most max_running sequences run at once; up to max_waiting more wait in order;
 * beyond that submit refuses at once with RESOURCE_EXHAUSTED. A cancelled sequence or one
 * whose deadline passed is ended at the next step and its KV cache released at once. */
#ifndef DUET_SCHEDULER_H
#define DUET_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "gen_request.h"
#include "session_cache.h"
#include "status.h"
#include "tokenizer.h"

typedef enum {
    DUET_FINISH_STOP = 1,      /* EOS/EOT token or a stop string */
    DUET_FINISH_LENGTH = 2,    /* max_tokens, or the context is full */
    DUET_FINISH_CANCELLED = 3, /* cancelled or deadline passed: see the end's status */
} duet_finish_reason;

typedef struct {
    duet_finish_reason finish;
    uint32_t prompt_tokens;
    uint32_t cached_prompt_tokens; /* reused from the session's cache */
    uint32_t completion_tokens;
    double queue_ms, prefill_ms, decode_ms, first_token_ms;
    const char *tail; /* text not yet sent in a chunk (valid during the call) */
    size_t tail_len;
} duet_gen_result;

/* Where a sequence's output goes. Both run on the scheduler thread and must not block. */
typedef struct {
    /* New tokens and their text (whole UTF-8 characters, stop strings held back). OK; or
     * RESOURCE_EXHAUSTED: nothing taken, offered again with more at a later step; or
     * anything else: the receiver is gone, the sequence is ended (CANCELLED). */
    duet_code (*chunk)(void *arg, const int32_t *ids, size_t n_ids, const char *text, size_t len);
    /* Exactly once. st->code OK with a finish reason (CANCELLED included, st then says
     * why), or an error the sequence failed with. */
    void (*end)(void *arg, const duet_gen_result *res, const duet_status *st);
    void *arg;
} duet_gen_sink;

typedef struct {
    uint32_t max_running; /* sequences in the batch at once */
    uint32_t max_waiting; /* queued behind them */
} duet_scheduler_options;

typedef struct {
    uint32_t running, waiting;
    uint64_t total_requests, total_prompt_tokens, total_cached_tokens, total_generated_tokens;
    uint64_t rejected;
    double tokens_per_second; /* generated, over the last few seconds */
} duet_scheduler_stats;

typedef struct duet_scheduler duet_scheduler;
typedef struct duet_gen_ticket duet_gen_ticket;

/* Starts the scheduler thread on engine e (which it uses alone from now on), tokenizer tok
 * (shared, read-only) and the session cache over the engine's KV pool (used by this
 * scheduler only; it must outlive it); context is the positions one sequence may hold.
 *
 * A request with a session id continues that session's cached sequence: only the prompt
 * tokens past the longest prefix it shares with the cache are computed (reported as
 * cached_prompt_tokens), and the cache keeps prompt and answer for the next turn. A
 * sequence the pool cannot grow (even after evicting idle sessions) ends with
 * RESOURCE_EXHAUSTED; the others go on. A cancelled or expired sequence also forgets its
 * session, so its pages return to the pool at once. */
duet_code duet_scheduler_new(duet_engine *e, const duet_tokenizer *tok,
                             duet_session_cache *sessions, uint32_t context,
                             const duet_scheduler_options *o, duet_scheduler **out,
                             duet_status *st);

/* Queues a request (taking ownership of req's contents). deadline_ns: a duet_now_ns()
 * time, 0 = none. On success *ticket identifies it for duet_scheduler_cancel until the
 * sink's end callback has run; sink.end is called exactly once. RESOURCE_EXHAUSTED when
 * the queue is full (the message gives the limits); the sink is not called then. */
duet_code duet_scheduler_submit(duet_scheduler *s, duet_gen_request *req, uint64_t deadline_ns,
                                const duet_gen_sink *sink, duet_gen_ticket **ticket,
                                duet_status *st);

/* Asks for the sequence to end (CANCELLED, with why as the reason code). Never blocks;
 * must not be called after the sink's end callback ran. */
void duet_scheduler_cancel(duet_gen_ticket *ticket, duet_code why);

void duet_scheduler_stats_get(duet_scheduler *s, duet_scheduler_stats *out);

/* Stops taking new requests (submit answers UNAVAILABLE, "the worker is shutting down") and
 * waits up to grace_ms for the running and waiting sequences to finish on their own. True
 * when they all did. */
bool duet_scheduler_drain(duet_scheduler *s, uint32_t grace_ms);

/* Ends every sequence (sink.end with UNAVAILABLE, "the worker is shutting down") and
 * stops the thread; later submits are refused with UNAVAILABLE. Stats stay readable.
 * Calling it again does nothing. */
void duet_scheduler_shutdown(duet_scheduler *s);

/* Shuts down (if not done yet) and frees the scheduler. */
void duet_scheduler_free(duet_scheduler *s);

#endif
