#include "node_config.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

static const duet_config_field tls_fields[] = {
    DUET_CONFIG_FIELD_STRING(duet_tls_settings, certs_dir, "certs_dir", DUET_CONFIG_OPTIONAL, NULL),
    DUET_CONFIG_FIELD_STRING(duet_tls_settings, name, "name", DUET_CONFIG_OPTIONAL, NULL),
    DUET_CONFIG_FIELD_STRING(duet_tls_settings, ca_file, "ca", DUET_CONFIG_OPTIONAL, NULL),
    DUET_CONFIG_FIELD_STRING(duet_tls_settings, cert_file, "cert", DUET_CONFIG_OPTIONAL, NULL),
    DUET_CONFIG_FIELD_STRING(duet_tls_settings, key_file, "key", DUET_CONFIG_OPTIONAL, NULL),
    DUET_CONFIG_FIELD_BOOL(duet_tls_settings, insecure, "insecure", DUET_CONFIG_OPTIONAL, false),
};
const duet_config_schema duet_tls_settings_schema =
    DUET_CONFIG_SCHEMA(duet_tls_settings, tls_fields);

static const duet_config_field rpc_fields[] = {
    DUET_CONFIG_FIELD_UINT32(duet_rpc_settings, max_frame_bytes, "max_frame_bytes",
                             DUET_CONFIG_OPTIONAL, DUET_RPC_DEFAULT_MAX_FRAME_BYTES, 4096,
                             256u << 20),
    DUET_CONFIG_FIELD_UINT32(duet_rpc_settings, compress_threshold_bytes,
                             "compress_threshold_bytes", DUET_CONFIG_OPTIONAL,
                             DUET_RPC_DEFAULT_COMPRESS_THRESHOLD_BYTES, 0, 256u << 20),
    DUET_CONFIG_FIELD_UINT32(duet_rpc_settings, max_calls_per_connection,
                             "max_calls_per_connection", DUET_CONFIG_OPTIONAL,
                             DUET_RPC_DEFAULT_MAX_CALLS_PER_CONNECTION, 1, 65536),
    DUET_CONFIG_FIELD_UINT32(duet_rpc_settings, send_queue_bytes, "send_queue_bytes",
                             DUET_CONFIG_OPTIONAL, DUET_RPC_DEFAULT_SEND_QUEUE_BYTES, 64u << 10,
                             1u << 30),
    DUET_CONFIG_FIELD_UINT32(duet_rpc_settings, connect_timeout_ms, "connect_timeout_ms",
                             DUET_CONFIG_OPTIONAL, DUET_RPC_DEFAULT_CONNECT_TIMEOUT_MS, 100,
                             600000),
};
const duet_config_schema duet_rpc_settings_schema =
    DUET_CONFIG_SCHEMA(duet_rpc_settings, rpc_fields);

/* "off" is left out on purpose: a daemon that logs nothing cannot say why it stopped. */
static const duet_config_enum_value log_levels[] = {
    {"debug", DUET_LOG_DEBUG},
    {"info", DUET_LOG_INFO},
    {"warn", DUET_LOG_WARN},
    {"error", DUET_LOG_ERROR},
    {NULL, 0},
};

static const duet_config_field log_fields[] = {
    DUET_CONFIG_FIELD_ENUM(duet_log_settings, level, "level", DUET_CONFIG_OPTIONAL, DUET_LOG_INFO,
                           log_levels),
};
const duet_config_schema duet_log_settings_schema =
    DUET_CONFIG_SCHEMA(duet_log_settings, log_fields);

static const duet_config_field admission_fields[] = {
    DUET_CONFIG_FIELD_DOUBLE(duet_admission_settings, requests_per_second, "requests_per_second",
                             DUET_CONFIG_OPTIONAL, DUET_ADMISSION_DEFAULT_REQUESTS_PER_SECOND,
                             0.001, 1e6),
    DUET_CONFIG_FIELD_DOUBLE(duet_admission_settings, burst, "burst", DUET_CONFIG_OPTIONAL,
                             DUET_ADMISSION_DEFAULT_BURST, 1, 1e6),
};
const duet_config_schema duet_admission_settings_schema =
    DUET_CONFIG_SCHEMA(duet_admission_settings, admission_fields);

static bool is_set(const char *s)
{
    return s && *s;
}

/* Writes explicit, or dir/prefix+name+suffix; explains which key is missing when neither. */
static duet_code resolve_one(const duet_tls_settings *s, const char *explicit_path,
                             const char *explicit_key, bool uses_name, const char *file_suffix,
                             char *out, size_t cap, duet_status *st)
{
    int n;
    if (is_set(explicit_path)) {
        n = snprintf(out, cap, "%s", explicit_path);
    } else if (!is_set(s->certs_dir)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "tls.%s is not set, and there is no tls.certs_dir to find it in",
                               explicit_key);
    } else if (uses_name && !is_set(s->name)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "tls.%s is not set, and there is no tls.name to find it in %s",
                               explicit_key, s->certs_dir);
    } else {
        n = snprintf(out, cap, "%s/%s%s", s->certs_dir, uses_name ? s->name : "", file_suffix);
    }
    if (n < 0 || (size_t)n >= cap) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "tls.%s: the path is longer than %zu characters", explicit_key,
                               cap ? cap - 1 : 0);
    }
    return DUET_OK;
}

duet_code duet_tls_settings_resolve(const duet_tls_settings *s, char *ca, char *cert, char *key,
                                    size_t cap, duet_status *st)
{
    if (cap == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "tls: no room for the paths");
    }
    ca[0] = cert[0] = key[0] = '\0';
    bool anything = is_set(s->certs_dir) || is_set(s->name) || is_set(s->ca_file) ||
                    is_set(s->cert_file) || is_set(s->key_file);
    if (!anything) {
        if (s->insecure) {
            duet_status_clear(st);
            return DUET_OK;
        }
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "tls: no certificates configured: set tls.certs_dir and "
                               "tls.name (or tls.ca, tls.cert and tls.key), or set "
                               "tls.insecure: true to use only plain tcp:// and ipc://");
    }
    if (is_set(s->name) && strchr(s->name, '/')) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "tls.name \"%s\" contains '/'; it is a certificate name, not a "
                               "path",
                               s->name);
    }
    duet_code rc = resolve_one(s, s->ca_file, "ca", false, "ca.crt", ca, cap, st);
    if (rc == DUET_OK) {
        rc = resolve_one(s, s->cert_file, "cert", true, ".crt", cert, cap, st);
    }
    if (rc == DUET_OK) {
        rc = resolve_one(s, s->key_file, "key", true, ".key", key, cap, st);
    }
    if (rc != DUET_OK) {
        ca[0] = cert[0] = key[0] = '\0';
        return rc;
    }
    duet_status_clear(st);
    return DUET_OK;
}
