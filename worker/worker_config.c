#include "worker_config.h"

#include "config.h"
#include "kv_pool.h"

static const duet_config_field model_fields[] = {
    DUET_CONFIG_FIELD_STRING(duet_model_settings, path, "path", DUET_CONFIG_OPTIONAL, NULL),
    DUET_CONFIG_FIELD_UINT32(duet_model_settings, threads, "threads", DUET_CONFIG_OPTIONAL, 0, 0,
                             1024),
    DUET_CONFIG_FIELD_UINT32(duet_model_settings, context, "context", DUET_CONFIG_OPTIONAL, 0, 0,
                             1u << 20),
    DUET_CONFIG_FIELD_STRING(duet_model_settings, chat_template, "chat_template",
                             DUET_CONFIG_OPTIONAL, "auto"),
    DUET_CONFIG_FIELD_DOUBLE(duet_model_settings, memory_factor, "memory_factor",
                             DUET_CONFIG_OPTIONAL, 1.2, 0, 100),
    DUET_CONFIG_FIELD_BOOL(duet_model_settings, mlock, "mlock", DUET_CONFIG_OPTIONAL, false),
    DUET_CONFIG_FIELD_DOUBLE(duet_model_settings, load_rate_mib, "load_rate_mib",
                             DUET_CONFIG_OPTIONAL, 0, 0, 1 << 20),
};
static const duet_config_schema model_schema =
    DUET_CONFIG_SCHEMA(duet_model_settings, model_fields);

static const duet_config_field scheduler_fields[] = {
    DUET_CONFIG_FIELD_UINT32(duet_scheduler_settings, max_batch, "max_batch", DUET_CONFIG_OPTIONAL,
                             256, 1, 4096),
    DUET_CONFIG_FIELD_UINT32(duet_scheduler_settings, max_running, "max_running",
                             DUET_CONFIG_OPTIONAL, 8, 1, 256),
    DUET_CONFIG_FIELD_UINT32(duet_scheduler_settings, max_waiting, "max_waiting",
                             DUET_CONFIG_OPTIONAL, 32, 0, 65536),
    DUET_CONFIG_FIELD_UINT32(duet_scheduler_settings, shutdown_grace_ms, "shutdown_grace_ms",
                             DUET_CONFIG_OPTIONAL, 10000, 0, 3600000),
};
static const duet_config_schema scheduler_schema =
    DUET_CONFIG_SCHEMA(duet_scheduler_settings, scheduler_fields);

static const duet_config_enum_value kv_types[] = {
    {"f16", DUET_KV_F16}, {"q8_0", DUET_KV_Q8_0}, {NULL, 0}};

static const duet_config_field kv_cache_fields[] = {
    DUET_CONFIG_FIELD_UINT32(duet_kv_cache_settings, budget_mib, "budget_mib", DUET_CONFIG_OPTIONAL,
                             1024, 1, 1u << 20),
    DUET_CONFIG_FIELD_UINT32(duet_kv_cache_settings, page_tokens, "page_tokens",
                             DUET_CONFIG_OPTIONAL, 32, 1, 1024),
    DUET_CONFIG_FIELD_ENUM(duet_kv_cache_settings, type, "type", DUET_CONFIG_OPTIONAL, DUET_KV_F16,
                           kv_types),
};
static const duet_config_schema kv_cache_schema =
    DUET_CONFIG_SCHEMA(duet_kv_cache_settings, kv_cache_fields);

static const duet_config_field worker_fields[] = {
    DUET_CONFIG_FIELD_STRING(duet_worker_config, listen, "listen", DUET_CONFIG_OPTIONAL,
                             DUET_WORKER_DEFAULT_LISTEN),
    DUET_CONFIG_FIELD_SECTION(duet_worker_config, model, "model", DUET_CONFIG_OPTIONAL,
                              &model_schema),
    DUET_CONFIG_FIELD_SECTION(duet_worker_config, scheduler, "scheduler", DUET_CONFIG_OPTIONAL,
                              &scheduler_schema),
    DUET_CONFIG_FIELD_SECTION(duet_worker_config, kv_cache, "kv_cache", DUET_CONFIG_OPTIONAL,
                              &kv_cache_schema),
    DUET_CONFIG_FIELD_SECTION(duet_worker_config, tls, "tls", DUET_CONFIG_OPTIONAL,
                              &duet_tls_settings_schema),
    DUET_CONFIG_FIELD_SECTION(duet_worker_config, rpc, "rpc", DUET_CONFIG_OPTIONAL,
                              &duet_rpc_settings_schema),
    DUET_CONFIG_FIELD_SECTION(duet_worker_config, admission, "admission", DUET_CONFIG_OPTIONAL,
                              &duet_admission_settings_schema),
    DUET_CONFIG_FIELD_SECTION(duet_worker_config, log, "log", DUET_CONFIG_OPTIONAL,
                              &duet_log_settings_schema),
};
const duet_config_schema duet_worker_config_schema =
    DUET_CONFIG_SCHEMA(duet_worker_config, worker_fields);

duet_code duet_worker_config_load(const char *path, duet_worker_config *cfg, duet_status *st)
{
    return duet_config_load_file(path, &duet_worker_config_schema, cfg, st);
}

void duet_worker_config_defaults(duet_worker_config *cfg)
{
    duet_config_defaults(&duet_worker_config_schema, cfg);
}

void duet_worker_config_free(duet_worker_config *cfg)
{
    duet_config_free(&duet_worker_config_schema, cfg);
}
