/* duet-gateway's configuration file (conf/gateway.yaml documents every key).
 *
 * Top-level keys: workers, tls, rpc, log. The order of workers is the routing order: the
 * first is preferred, the later ones are fallbacks. */
#ifndef DUET_GATEWAY_CONFIG_H
#define DUET_GATEWAY_CONFIG_H

#include <stddef.h>

#include "node_config.h"
#include "status.h"

typedef struct {
    char *url;         /* required: NNG URL of the worker, e.g. tls+tcp://10.0.0.5:7700 */
    char *server_name; /* the name in the worker's certificate; NULL when not configured,
                          which is an error at dial time on tls+tcp:// */
} duet_worker_endpoint;

typedef struct {
    duet_worker_endpoint *workers; /* required, at least one */
    size_t n_workers;
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
