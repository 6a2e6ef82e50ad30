/* Configuration sections both daemons share: tls, rpc, log and admission.
 *
 * Each section is a struct plus a schema (see config.h) that a process schema nests under
 * the section's key. The defaults and ranges below are the contract that conf/worker.yaml and
 * conf/gateway.yaml document. */
#ifndef DUET_NODE_CONFIG_H
#define DUET_NODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "status.h"

/* Key "tls": where this node's certificate, key and the lab CA are. Nothing is set by
 * default: a node either names its certificates or says insecure. */
typedef struct {
    char *certs_dir; /* "certs_dir": folder made by duet-certs: ca.crt, NAME.crt, NAME.key */
    char *name;      /* "name": this node's certificate name */
    char *ca_file;   /* "ca": explicit paths override certs_dir/name */
    char *cert_file; /* "cert" */
    char *key_file;  /* "key" */
    bool insecure;   /* "insecure": allow plain tcp:// and ipc:// (default false) */
} duet_tls_settings;

/* Key "rpc": limits of the framed RPC connection between gateway and worker. */
#define DUET_RPC_DEFAULT_MAX_FRAME_BYTES (16u << 20)
#define DUET_RPC_DEFAULT_COMPRESS_THRESHOLD_BYTES 4096u
#define DUET_RPC_DEFAULT_MAX_CALLS_PER_CONNECTION 1024u
#define DUET_RPC_DEFAULT_SEND_QUEUE_BYTES (8u << 20)
#define DUET_RPC_DEFAULT_CONNECT_TIMEOUT_MS 5000u

typedef struct {
    uint32_t max_frame_bytes;          /* 4096 .. 256 MiB; larger frames are dropped */
    uint32_t compress_threshold_bytes; /* 0 .. 256 MiB; payloads this big get zstd; 0 = never */
    uint32_t max_calls_per_connection; /* 1 .. 65536 calls in flight on one connection */
    uint32_t send_queue_bytes;         /* 64 KiB .. 1 GiB queued before senders wait */
    uint32_t connect_timeout_ms;       /* 100 .. 600000 */
} duet_rpc_settings;

/* Key "log". */
typedef struct {
    int level; /* "level": debug|info|warn|error as duet_log_level values; default info */
} duet_log_settings;

/* Key "admission": the token bucket in front of the work queue. */
#define DUET_ADMISSION_DEFAULT_REQUESTS_PER_SECOND 20.0
#define DUET_ADMISSION_DEFAULT_BURST 40.0

typedef struct {
    double requests_per_second; /* refill rate, 0.001 .. 1e6 */
    double burst;               /* bucket size, 1 .. 1e6 */
} duet_admission_settings;

extern const duet_config_schema duet_tls_settings_schema;
extern const duet_config_schema duet_rpc_settings_schema;
extern const duet_config_schema duet_log_settings_schema;
extern const duet_config_schema duet_admission_settings_schema;

/* The three PEM files this node uses, each in a buffer of cap bytes: an explicit ca/cert/key
 * wins; otherwise certs_dir/ca.crt, certs_dir/NAME.crt and certs_dir/NAME.key. When nothing
 * at all is set and insecure is true, the three are empty strings and the result is OK (the
 * node can only use plain transports). Anything else that leaves a file unnamed, a name
 * containing '/', or a path longer than cap - 1 is INVALID_ARGUMENT saying which key to set.
 * Files are not opened here; the TLS layer reports missing or unreadable ones. */
duet_code duet_tls_settings_resolve(const duet_tls_settings *s, char *ca, char *cert, char *key,
                                    size_t cap, duet_status *st);

#endif
