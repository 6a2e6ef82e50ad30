/* The worker's RPC service ("duet.v1.Worker/<Name>", proto/duet.proto): it owns the
 * model, its vocabulary, tokenizer and chat template, the engine and the scheduler, and
 * answers Info, Health, Tokenize, Detokenize, Generate (a server stream: GenerateChunk
 * messages, then GenerateEnd) and Cancel. Requests are decoded without trusting anything in them: a
 * malformed message is INVALID_ARGUMENT, never a crash. Handlers run on NNG callback threads and do
 * not block. */
#ifndef DUET_WORKER_SERVICE_H
#define DUET_WORKER_SERVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "rpc.h"
#include "status.h"

#define DUET_WORKER_METHOD(name) "duet.v1.Worker/" name

typedef struct {
    const char *model_path;
    uint32_t threads;           /* 0 = one per core */
    uint32_t context;           /* 0 = the model's trained context; capped at it */
    const char *chat_template;  /* NULL or "auto", or a template name */
    uint32_t max_batch;         /* tokens per forward pass (decode entries plus prompt chunks) */
    uint32_t max_running;       /* sequences generating at once */
    uint32_t max_waiting;       /* queued behind them; more are refused at once */
    double requests_per_second; /* admission token bucket */
    double burst;
    uint32_t kv_cache_mib;          /* the KV pool's budget, shared by all sequences and sessions */
    uint32_t kv_page_tokens;        /* positions per page (a power of two) */
    int kv_type;                    /* duet_kv_type: DUET_KV_F16 or DUET_KV_Q8_0 */
    uint64_t load_rate_bytes_per_s; /* cap on the loader's read rate; 0 = none */
    double memory_factor; /* refuse unless file size x factor + KV budget fits; 0 = no check */
    bool mlock;           /* lock the weights in memory once loaded */
    FILE *progress;       /* where the loader draws its progress (NULL: nowhere) */
} duet_worker_service_options;

typedef struct duet_worker_service duet_worker_service;

/* Opens the model (checking it fits in memory), reads its vocabulary and starts the staged
 * loader, which brings the weights in on its own thread: the service answers at once, Info
 * and Health report the load's progress, and Generate calls run as soon as the layers they
 * need are in. Errors name the file and what is wrong. */
duet_code duet_worker_service_new(const duet_worker_service_options *o, duet_worker_service **out,
                                  duet_status *st);

/* Registers the service's methods on srv (before it listens). */
duet_code duet_worker_service_register(duet_worker_service *s, duet_rpc_server *srv,
                                       duet_status *st);

/* The context served (after the defaults and the cap) and the model's name, for logs. */
uint32_t duet_worker_service_context(const duet_worker_service *s);
const char *duet_worker_service_model_name(const duet_worker_service *s);

/* Shutting down: new Generate calls are refused (UNAVAILABLE), running and waiting ones get
 * up to grace_ms to finish; what is left then ends with UNAVAILABLE ("shutting down") and the
 * scheduler stops. The server stays up so the ends reach the clients. Returns how many
 * sequences had to be cut off (0 when all finished in time). */
uint32_t duet_worker_service_stop(duet_worker_service *s, uint32_t grace_ms);

/* Only after the server it was registered on has been freed. */
void duet_worker_service_free(duet_worker_service *s);

#endif
