/* The gateway's workers, in priority order: one RPC connection to each (reconnecting in
 * the background), a health check of each on a timer, a circuit breaker per worker, and the
 * model each serves (from Info, with its vocabulary, so the gateway counts tokens exactly as
 * the worker does).
 *
 * pick() gives the first worker, in configuration order, that is connected, knows its model,
 * is not failed or stopping, and whose breaker lets a request through; callers report each
 * request's outcome so the breaker learns. Thread-safe. */
#ifndef DUET_WORKER_POOL_H
#define DUET_WORKER_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "gateway_config.h"
#include "rpc.h"
#include "status.h"
#include "tokenizer.h"

typedef struct {
    uint32_t health_interval_ms; /* between health checks of each worker */
    uint32_t health_timeout_ms;  /* one check; longer counts as a failure */
    duet_breaker_options breaker;
} duet_worker_pool_options;

/* What /health and /metrics show of one worker. */
typedef struct {
    const char *url;
    bool connected;
    bool has_model; /* Info answered: model, context and tokenizer known */
    int load_state; /* Duet__V1__LoadState of the last health check, 0 before any */
    duet_breaker_state breaker;
    uint32_t running, waiting;
    double tokens_per_second;
    char model[128];
    uint32_t context;
    char chat_template[32];
    uint64_t checks_ok, checks_failed;
    char last_error[DUET_STATUS_MESSAGE_MAX]; /* of the last failed check or request */
} duet_worker_status;

typedef struct duet_worker_pool duet_worker_pool;

/* Connects to every endpoint (tls gives this gateway's certificate; each endpoint's
 * server_name is checked against its worker's certificate) and starts the health checks.
 * Fails only on bad arguments (a URL the TLS settings do not allow, no endpoints). */
duet_code duet_worker_pool_new(const duet_worker_endpoint *endpoints, size_t n,
                               const duet_tls_options *tls, const duet_rpc_limits *limits,
                               const duet_worker_pool_options *o, duet_worker_pool **out,
                               duet_status *st);

/* Stops the checks, closes the connections, frees everything. */
void duet_worker_pool_free(duet_worker_pool *p);

size_t duet_worker_pool_size(const duet_worker_pool *p);

/* Runs one round of health checks now (the timer does it every health_interval_ms). */
void duet_worker_pool_check_now(duet_worker_pool *p);

/* The first usable worker not in skip (bit i set: skip worker i; workers past 63 are never
 * skipped), or -1 when none is. A worker whose breaker is half-open is given to one caller
 * only, as its probe. */
int duet_worker_pool_pick(duet_worker_pool *p, uint64_t skip);

/* The connection of worker i, valid until the pool is freed. */
duet_rpc_client *duet_worker_pool_client(duet_worker_pool *p, int i);

/* The outcome of a request sent to worker i (error: why, for /health). */
void duet_worker_pool_report(duet_worker_pool *p, int i, bool ok, const char *error);

/* Records why worker i could not take a request (e.g. it was full) without counting it as
 * a failure: an overloaded worker is passed over, not shut out. */
void duet_worker_pool_note(duet_worker_pool *p, int i, const char *why);

void duet_worker_pool_status(duet_worker_pool *p, int i, duet_worker_status *out);

/* The tokenizer and context of the model served by the first worker that knows its model
 * (all workers of a pool are meant to serve the same model); NULL when none does yet. The
 * tokenizer stays valid until the pool is freed. */
const duet_tokenizer *duet_worker_pool_tokenizer(duet_worker_pool *p, uint32_t *context,
                                                 char *model, size_t model_cap);

#endif
