/* The gateway's OpenAI-compatible API on its HTTP server (docs/http-api.md):
 *
 *   POST /v1/chat/completions  a chat answer, whole or streamed as server-sent events
 *   GET  /v1/models            the model the workers serve
 *   GET  /health               the gateway's and each worker's state (no key needed)
 *   GET  /metrics              Prometheus text: answers by status, tokens, trimming,
 *                              failovers, and each worker's state (no key needed)
 *
 * A request is signed in by its API key (Authorization: Bearer KEY), parsed, joined to its
 * session (chat_turn.h: the stored history when it names a session with X-Duet-Session or
 * session_id, else recorded as a new one; 404 for a session not the user's, 409 for one
 * already answering), trimmed to the model's context (what was left out is reported:
 * "duet":{"trimmed":...} in the answer and an X-Duet-Trimmed header; under trim_policy
 * summarize a stored session's trimmed turns are first summarized by the worker), admitted
 * by the user's and the gateway's buckets (429 with Retry-After), stored (on disk before
 * the reply begins), then relayed to the workers with fallback (relay.h) while the answer
 * is saved as it grows. When no worker can serve, the answer is 503 with Retry-After.
 *
 * Storing runs on NNG's threads: a message or an answer's end waits for one disk sync, and
 * a growing answer is saved at most every DUET_CHAT_SAVE_INTERVAL_MS. */
#ifndef DUET_CHAT_API_H
#define DUET_CHAT_API_H

#include <stddef.h>
#include <stdint.h>

#include "admission.h"
#include "api_auth.h"
#include "chat_turn.h"
#include "gateway_config.h"
#include "http_server.h"
#include "relay.h"
#include "status.h"
#include "timer.h"
#include "worker_pool.h"

typedef struct {
    duet_worker_pool *pool;
    duet_timer *timer;
    duet_admission *admission;
    const duet_api_keys *keys;
    duet_chat_turns *turns;
    duet_trim_policy trim_policy;
    uint32_t summary_tokens; /* the longest summary under DUET_TRIM_SUMMARIZE */
    uint32_t answer_tokens;  /* the answer budget when a request has no max_tokens */
    /* no worker can serve: NULL answers 503 with Retry-After, a text is the answer */
    const char *last_resort_message;
    duet_relay_options relay;
} duet_chat_api_options;

#define DUET_CHAT_SAVE_INTERVAL_MS 1000

typedef struct duet_chat_api duet_chat_api;

/* Registers the routes on srv (before it starts). The pool, timer, admission, keys and turns
 * must outlive the API. */
duet_code duet_chat_api_new(duet_http_server *srv, const duet_chat_api_options *o,
                            duet_chat_api **out, duet_status *st);

/* Only after the HTTP server is freed and every answer has ended. */
void duet_chat_api_free(duet_chat_api *api);

/* Shutting down: new chat requests are answered 503; answers under way go on. */
void duet_chat_api_drain(duet_chat_api *api);

/* Answers still in flight. */
uint32_t duet_chat_api_active(duet_chat_api *api);

#endif
