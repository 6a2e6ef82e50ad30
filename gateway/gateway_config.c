#include "gateway_config.h"

#include "config.h"

static const duet_config_field endpoint_fields[] = {
    DUET_CONFIG_FIELD_STRING(duet_worker_endpoint, url, "url", DUET_CONFIG_REQUIRED, NULL),
    DUET_CONFIG_FIELD_STRING(duet_worker_endpoint, server_name, "server_name", DUET_CONFIG_OPTIONAL,
                             NULL),
};
const duet_config_schema duet_worker_endpoint_schema =
    DUET_CONFIG_SCHEMA(duet_worker_endpoint, endpoint_fields);

static const duet_config_field http_fields[] = {
    DUET_CONFIG_FIELD_STRING(duet_http_settings, listen, "listen", DUET_CONFIG_OPTIONAL,
                             "0.0.0.0:8080"),
    DUET_CONFIG_FIELD_STRING(duet_http_settings, cert, "cert", DUET_CONFIG_OPTIONAL, NULL),
    DUET_CONFIG_FIELD_STRING(duet_http_settings, key, "key", DUET_CONFIG_OPTIONAL, NULL),
    DUET_CONFIG_FIELD_UINT32(duet_http_settings, max_body_bytes, "max_body_bytes",
                             DUET_CONFIG_OPTIONAL, 4u << 20, 1024, 64u << 20),
};
static const duet_config_schema http_schema = DUET_CONFIG_SCHEMA(duet_http_settings, http_fields);

static const duet_config_field api_key_fields[] = {
    DUET_CONFIG_FIELD_STRING(duet_api_key, key, "key", DUET_CONFIG_REQUIRED, NULL),
    DUET_CONFIG_FIELD_STRING(duet_api_key, user, "user", DUET_CONFIG_REQUIRED, NULL),
};
static const duet_config_schema api_key_schema = DUET_CONFIG_SCHEMA(duet_api_key, api_key_fields);

static const duet_config_field routing_fields[] = {
    DUET_CONFIG_FIELD_UINT32(duet_routing_settings, health_interval_ms, "health_interval_ms",
                             DUET_CONFIG_OPTIONAL, 2000, 100, 600000),
    DUET_CONFIG_FIELD_UINT32(duet_routing_settings, health_timeout_ms, "health_timeout_ms",
                             DUET_CONFIG_OPTIONAL, 2000, 100, 600000),
    DUET_CONFIG_FIELD_UINT32(duet_routing_settings, first_token_timeout_ms,
                             "first_token_timeout_ms", DUET_CONFIG_OPTIONAL, 60000, 0, 3600000),
    DUET_CONFIG_FIELD_UINT32(duet_routing_settings, request_timeout_ms, "request_timeout_ms",
                             DUET_CONFIG_OPTIONAL, 600000, 0, 86400000),
    DUET_CONFIG_FIELD_UINT32(duet_routing_settings, breaker_failures, "breaker_failures",
                             DUET_CONFIG_OPTIONAL, 3, 1, 1000),
    DUET_CONFIG_FIELD_UINT32(duet_routing_settings, breaker_cooldown_ms, "breaker_cooldown_ms",
                             DUET_CONFIG_OPTIONAL, 10000, 100, 3600000),
    DUET_CONFIG_FIELD_STRING(duet_routing_settings, last_resort_message, "last_resort_message",
                             DUET_CONFIG_OPTIONAL, NULL),
    DUET_CONFIG_FIELD_UINT32(duet_routing_settings, answer_tokens, "answer_tokens",
                             DUET_CONFIG_OPTIONAL, 512, 1, 1u << 20),
};
static const duet_config_schema routing_schema =
    DUET_CONFIG_SCHEMA(duet_routing_settings, routing_fields);

static const duet_config_field limits_fields[] = {
    DUET_CONFIG_FIELD_DOUBLE(duet_limits_settings, user_requests_per_second,
                             "user_requests_per_second", DUET_CONFIG_OPTIONAL, 2, 0.001, 1e6),
    DUET_CONFIG_FIELD_DOUBLE(duet_limits_settings, user_request_burst, "user_request_burst",
                             DUET_CONFIG_OPTIONAL, 10, 1, 1e6),
    DUET_CONFIG_FIELD_DOUBLE(duet_limits_settings, user_tokens_per_second, "user_tokens_per_second",
                             DUET_CONFIG_OPTIONAL, 0, 0, 1e9),
    DUET_CONFIG_FIELD_DOUBLE(duet_limits_settings, user_token_burst, "user_token_burst",
                             DUET_CONFIG_OPTIONAL, 0, 0, 1e9),
    DUET_CONFIG_FIELD_DOUBLE(duet_limits_settings, requests_per_second, "requests_per_second",
                             DUET_CONFIG_OPTIONAL, 20, 0.001, 1e6),
    DUET_CONFIG_FIELD_DOUBLE(duet_limits_settings, request_burst, "request_burst",
                             DUET_CONFIG_OPTIONAL, 40, 1, 1e6),
    DUET_CONFIG_FIELD_DOUBLE(duet_limits_settings, tokens_per_second, "tokens_per_second",
                             DUET_CONFIG_OPTIONAL, 0, 0, 1e9),
    DUET_CONFIG_FIELD_DOUBLE(duet_limits_settings, token_burst, "token_burst", DUET_CONFIG_OPTIONAL,
                             0, 0, 1e9),
};
static const duet_config_schema limits_schema =
    DUET_CONFIG_SCHEMA(duet_limits_settings, limits_fields);

static const duet_config_enum_value trim_policies[] = {
    {"drop_oldest", DUET_TRIM_DROP_OLDEST},
    {"summarize", DUET_TRIM_SUMMARIZE},
    {NULL, 0},
};

static const duet_config_field sessions_fields[] = {
    DUET_CONFIG_FIELD_STRING(duet_sessions_settings, db, "db", DUET_CONFIG_OPTIONAL,
                             "duet-sessions.db"),
    DUET_CONFIG_FIELD_ENUM(duet_sessions_settings, trim_policy, "trim_policy", DUET_CONFIG_OPTIONAL,
                           DUET_TRIM_DROP_OLDEST, trim_policies),
    DUET_CONFIG_FIELD_UINT32(duet_sessions_settings, summary_tokens, "summary_tokens",
                             DUET_CONFIG_OPTIONAL, 256, 16, 4096),
};
static const duet_config_schema sessions_schema =
    DUET_CONFIG_SCHEMA(duet_sessions_settings, sessions_fields);

static const duet_config_field gateway_fields[] = {
    DUET_CONFIG_FIELD_SECTION_LIST(duet_gateway_config, workers, n_workers, "workers",
                                   DUET_CONFIG_OPTIONAL, 1, &duet_worker_endpoint_schema),
    DUET_CONFIG_FIELD_SECTION(duet_gateway_config, http, "http", DUET_CONFIG_OPTIONAL,
                              &http_schema),
    DUET_CONFIG_FIELD_SECTION_LIST(duet_gateway_config, api_keys, n_api_keys, "api_keys",
                                   DUET_CONFIG_OPTIONAL, 0, &api_key_schema),
    DUET_CONFIG_FIELD_SECTION(duet_gateway_config, routing, "routing", DUET_CONFIG_OPTIONAL,
                              &routing_schema),
    DUET_CONFIG_FIELD_SECTION(duet_gateway_config, limits, "limits", DUET_CONFIG_OPTIONAL,
                              &limits_schema),
    DUET_CONFIG_FIELD_SECTION(duet_gateway_config, sessions, "sessions", DUET_CONFIG_OPTIONAL,
                              &sessions_schema),
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
