/* Turning the shared configuration sections into what the RPC layer takes, with the
 * command-line flags both daemons accept (--certs DIR --name NAME, --insecure) applied on
 * top. */
#ifndef DUET_NODE_SETUP_H
#define DUET_NODE_SETUP_H

#include <limits.h>
#include <stdbool.h>

#include "node_config.h"
#include "rpc.h"
#include "status.h"
#include "tls.h"

/* The resolved PEM paths duet_tls_options points into. */
typedef struct {
    char ca[PATH_MAX];
    char cert[PATH_MAX];
    char key[PATH_MAX];
} duet_tls_paths;

/* --certs DIR --name NAME (both or neither; NULL when not given) replace the file's tls
 * section's certificate settings, --insecure turns insecure on. Then resolves the paths
 * (duet_tls_settings_resolve) into paths and fills opts (server_name left NULL).
 * INVALID_ARGUMENT when only one of certs_dir/name is given, or as resolve says. */
duet_code duet_tls_setup(duet_tls_settings *tls, const char *certs_dir, const char *name,
                         bool insecure, duet_tls_paths *paths, duet_tls_options *opts,
                         duet_status *st);

void duet_rpc_limits_from_settings(const duet_rpc_settings *rpc, duet_rpc_limits *limits);

#endif
