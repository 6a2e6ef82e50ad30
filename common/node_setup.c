#include "node_setup.h"

#include <stdlib.h>
#include <string.h>

static duet_code replace(char **field, const char *value, duet_status *st)
{
    char *copy = value ? strdup(value) : NULL;
    if (value && !copy) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    free(*field);
    *field = copy;
    return DUET_OK;
}

duet_code duet_tls_setup(duet_tls_settings *tls, const char *certs_dir, const char *name,
                         bool insecure, duet_tls_paths *paths, duet_tls_options *opts,
                         duet_status *st)
{
    if ((certs_dir == NULL) != (name == NULL)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "--certs and --name go together");
    }
    if (certs_dir) {
        if (replace(&tls->certs_dir, certs_dir, st) != DUET_OK ||
            replace(&tls->name, name, st) != DUET_OK || replace(&tls->ca_file, NULL, st) ||
            replace(&tls->cert_file, NULL, st) || replace(&tls->key_file, NULL, st)) {
            return st->code;
        }
    }
    if (insecure) {
        tls->insecure = true;
    }
    if (duet_tls_settings_resolve(tls, paths->ca, paths->cert, paths->key, sizeof paths->ca, st) !=
        DUET_OK) {
        return st->code;
    }
    *opts = (duet_tls_options){.ca_file = paths->ca,
                               .cert_file = paths->cert,
                               .key_file = paths->key,
                               .insecure = tls->insecure};
    return DUET_OK;
}

void duet_rpc_limits_from_settings(const duet_rpc_settings *rpc, duet_rpc_limits *limits)
{
    duet_rpc_limits_default(limits);
    limits->max_frame_bytes = rpc->max_frame_bytes;
    limits->compress_threshold_bytes = rpc->compress_threshold_bytes;
    limits->max_calls_per_connection = rpc->max_calls_per_connection;
    limits->send_queue_bytes = rpc->send_queue_bytes;
    limits->connect_timeout_ms = rpc->connect_timeout_ms;
}
