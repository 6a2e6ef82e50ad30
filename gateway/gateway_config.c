#include "gateway_config.h"

#include "config.h"

static const duet_config_field endpoint_fields[] = {
    DUET_CONFIG_FIELD_STRING(duet_worker_endpoint, url, "url", DUET_CONFIG_REQUIRED, NULL),
    DUET_CONFIG_FIELD_STRING(duet_worker_endpoint, server_name, "server_name", DUET_CONFIG_OPTIONAL,
                             NULL),
};
const duet_config_schema duet_worker_endpoint_schema =
    DUET_CONFIG_SCHEMA(duet_worker_endpoint, endpoint_fields);

static const duet_config_field gateway_fields[] = {
    DUET_CONFIG_FIELD_SECTION_LIST(duet_gateway_config, workers, n_workers, "workers",
                                   DUET_CONFIG_REQUIRED, 1, &duet_worker_endpoint_schema),
    DUET_CONFIG_FIELD_SECTION(duet_gateway_config, tls, "tls", DUET_CONFIG_OPTIONAL,
                              &duet_tls_settings_schema),
    DUET_CONFIG_FIELD_SECTION(duet_gateway_config, rpc, "rpc", DUET_CONFIG_OPTIONAL,
                              &duet_rpc_settings_schema),
    DUET_CONFIG_FIELD_SECTION(duet_gateway_config, log, "log", DUET_CONFIG_OPTIONAL,
                              &duet_log_settings_schema),
};
const duet_config_schema duet_gateway_config_schema =
    DUET_CONFIG_SCHEMA(duet_gateway_config, gateway_fields);

duet_code duet_gateway_config_load(const char *path, duet_gateway_config *cfg, duet_status *st)
{
    return duet_config_load_file(path, &duet_gateway_config_schema, cfg, st);
}

void duet_gateway_config_defaults(duet_gateway_config *cfg)
{
    duet_config_defaults(&duet_gateway_config_schema, cfg);
}

void duet_gateway_config_free(duet_gateway_config *cfg)
{
    duet_config_free(&duet_gateway_config_schema, cfg);
}
