/* Node-to-node transport security: mutual TLS on tls+tcp://, plain transports only when
 * the configuration says `insecure: true`.
 *
 * NNG 1.5.2 cannot tell a listener which certificate its peer showed, so a listener admits
 * any peer whose certificate the lab CA signed; only nodes get such certificates. A dialer
 * always checks the listener's name, because NNG does not take it from the URL. */
#ifndef DUET_TLS_H
#define DUET_TLS_H

#include <stdbool.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "status.h"

typedef struct {
    const char *ca_file;     /* PEM: the lab CA that signs every node */
    const char *cert_file;   /* PEM: this node's certificate */
    const char *key_file;    /* PEM: this node's private key */
    const char *server_name; /* dialer: the name the listener's certificate must carry */
    bool insecure;           /* allow tcp:// and ipc:// (no encryption, no authentication) */
} duet_tls_options;

typedef enum {
    DUET_TRANSPORT_TLS,   /* tls+tcp:// */
    DUET_TRANSPORT_PLAIN, /* tcp://, ipc://, abstract:// */
} duet_transport_kind;

/* Checks that url names a transport duet allows with these options: tls+tcp:// always;
 * tcp://, ipc:// and abstract:// only when insecure. Anything else is INVALID_ARGUMENT. */
duet_code duet_transport_check(const char *url, bool insecure, duet_transport_kind *kind,
                               duet_status *st);

/* Makes an NNG TLS configuration requiring and verifying the peer's certificate, with our
 * own certificate and key. For a dialer (server == false) server_name is required. Files
 * that are missing or not PEM give INVALID_ARGUMENT naming the file. */
/* The PEM text of a file (a certificate or key), at most a few hundred KiB, NUL-terminated
 * and malloc'd; NULL with INVALID_ARGUMENT naming what and path when it cannot be read or is
 * not PEM. */
char *duet_tls_read_pem(const char *what, const char *path, duet_status *st);

duet_code duet_tls_config_new(bool server, const duet_tls_options *opts, nng_tls_config **out,
                              duet_status *st);

#endif
