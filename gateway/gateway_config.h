/* duet-gateway's configuration file (conf/gateway.yaml documents every key).
 *
 * Top-level keys: workers, http, api_keys, routing, limits, sessions, tls, rpc, log. The order of
 * workers is the routing order: the first is preferred, the later ones are fallbacks. */
#ifndef DUET_GATEWAY_CONFIG_H
#define DUET_GATEWAY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "node_config.h"
#include "status.h"

typedef struct {
    char *url;         /* required: NNG URL of the worker, e.g. tls+tcp://10.0.0.5:7700 */
    char *server_name; /* the name in the worker's certificate; NULL when not configured,
                          which is an error at dial time on tls+tcp:// */
} duet_worker_endpoint;

/* One API key and the user it signs in. */
typedef struct {
    char *key;  /* required: the bearer token clients send */
    char *user; /* required: the name sessions and limits are kept under */
} duet_api_key;

/* Key "http": where people and their programs reach the gateway. */
typedef struct {
    char *listen; /* "listen": HOST:PORT, default 0.0.0.0:8080 */
    char *cert;   /* "cert", "key": PEM files for HTTPS; both or neither */
    char *key;
    uint32_t max_body_bytes; /* "max_body_bytes": 1 KiB .. 64 MiB, default 4 MiB */
} duet_http_settings;

/* Key "routing": how the gateway spreads work over the workers. */
typedef struct {
    uint32_t health_interval_ms;     /* 100 .. 600000, default 2000 */
    uint32_t health_timeout_ms;      /* 100 .. 600000, default 2000 */
    uint32_t first_token_timeout_ms; /* 0 (none) .. 3600000, default 60000 */
    uint32_t request_timeout_ms;     /* 0 (none) .. 86400000, default 600000 */
    uint32_t breaker_failures;       /* 1 .. 1000, default 3 */
    uint32_t breaker_cooldown_ms;    /* 100 .. 3600000, default 10000 */
    char *last_resort_message;       /* when no worker can serve: NULL answers 503 with
                                        Retry-After, a text is sent as the answer */
    uint32_t answer_tokens;          /* the answer budget when a request gives no max_tokens, 1 ..
                                        1048576, default 512 */
} duet_routing_settings;

/* Key "limits": admission, per user and overall. */
typedef struct {
    double user_requests_per_second, user_request_burst;
    double user_tokens_per_second, user_token_burst; /* 0 and 0: no token limit */
    double requests_per_second, request_burst;
    double tokens_per_second, token_burst;
} duet_limits_settings;

/* How history that no longer fits the context is handled. */
typedef enum {
    DUET_TRIM_DROP_OLDEST = 0, /* "drop_oldest": the oldest whole turns are left out */
    DUET_TRIM_SUMMARIZE = 1,   /* "summarize": they are replaced by a model-written summary */
} duet_trim_policy;

/* Key "sessions": where conversations are kept and how long ones are fitted. */
typedef struct {
    char *db;                /* "db": the SQLite file, default duet-sessions.db */
    int trim_policy;         /* "trim_policy": duet_trim_policy, default drop_oldest */
    uint32_t summary_tokens; /* "summary_tokens": longest summary, 16 .. 4096, default 256 */
} duet_sessions_settings;

typedef struct {
    duet_worker_endpoint *workers; /* none when absent (then --worker must give them) */
    size_t n_workers;
    duet_http_settings http;
    duet_api_key *api_keys;
    size_t n_api_keys;
    duet_routing_settings routing;
    duet_limits_settings limits;
    duet_sessions_settings sessions;
    duet_tls_settings tls;
    duet_rpc_settings rpc;
    duet_log_settings log;
} duet_gateway_config;

extern const duet_config_schema duet_worker_endpoint_schema;
extern const duet_config_schema duet_gateway_config_schema;

/* Reads path over the defaults; errors name file:line:column and key (see config.h). On
 * error cfg holds nothing to free. */
duet_code duet_gateway_config_load(const char *path, duet_gateway_config *cfg, duet_status *st);

/* Defaults only: no workers, which the caller must then add from flags. */
void duet_gateway_config_defaults(duet_gateway_config *cfg);

void duet_gateway_config_free(duet_gateway_config *cfg);

#endif
