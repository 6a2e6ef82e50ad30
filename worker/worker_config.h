/* duet-worker's configuration file (conf/worker.yaml documents every key).
 *
 * Top-level keys: listen, model, scheduler, kv_cache, tls, rpc, admission, log. Command-line flags
 * override what this returns; the daemon applies them after loading. */
#ifndef DUET_WORKER_CONFIG_H
#define DUET_WORKER_CONFIG_H

#include "node_config.h"
#include "status.h"

#define DUET_WORKER_DEFAULT_LISTEN "tls+tcp://0.0.0.0:7700"

/* Key "model": what the worker serves. */
typedef struct {
    char *path;           /* "path": the GGUF file; -m overrides; required by the daemon */
    uint32_t threads;     /* "threads": compute threads, 0 = one per core (default 0) */
    uint32_t context;     /* "context": positions per sequence, 0 = the model's own (default),
                             capped at the model's trained context */
    char *chat_template;  /* "chat_template": "auto" (default: recognise the model's own) or a
                             family name (chat_template.h) */
    double memory_factor; /* "memory_factor": refuse unless file x factor + KV budget fits in
                             available memory; 0 = no check (default 1.2) */
    bool mlock;           /* "mlock": lock the weights in memory (default false) */
    double load_rate_mib; /* "load_rate_mib": cap on the load's read rate in MiB/s; 0 = none */
} duet_model_settings;

/* Key "kv_cache": the pool every sequence's keys and values come from. */
typedef struct {
    uint32_t budget_mib;  /* "budget_mib": 1 .. 1048576 (default 1024) */
    uint32_t page_tokens; /* "page_tokens": positions per page, 1 .. 1024, a power of two
                             (default 32) */
    int type;             /* "type": f16 (default) or q8_0, as duet_kv_type values */
} duet_kv_cache_settings;

/* Key "scheduler": continuous batching. */
typedef struct {
    uint32_t max_batch;   /* "max_batch": tokens per forward pass, 1 .. 4096 (default 256) */
    uint32_t max_running; /* "max_running": sequences generating at once, 1 .. 256 (default 8) */
    uint32_t max_waiting; /* "max_waiting": queued behind them, 0 .. 65536 (default 32) */
    uint32_t shutdown_grace_ms; /* "shutdown_grace_ms": on SIGTERM, how long running streams
                                   may take to finish, 0 .. 3600000 (default 10000) */
} duet_scheduler_settings;

typedef struct {
    char *listen; /* NNG URL the worker listens on; default DUET_WORKER_DEFAULT_LISTEN */
    duet_model_settings model;
    duet_scheduler_settings scheduler;
    duet_kv_cache_settings kv_cache;
    duet_tls_settings tls;
    duet_rpc_settings rpc;
    duet_admission_settings admission;
    duet_log_settings log;
} duet_worker_config;

extern const duet_config_schema duet_worker_config_schema;

/* Reads path over the defaults; errors name file:line:column and key (see config.h). On
 * error cfg holds nothing to free. */
duet_code duet_worker_config_load(const char *path, duet_worker_config *cfg, duet_status *st);

/* Defaults only, for running on flags alone. */
void duet_worker_config_defaults(duet_worker_config *cfg);

void duet_worker_config_free(duet_worker_config *cfg);

#endif
