/* Makes keys and certificates in memory with mbedTLS 2.28's x509write: the lab's CA, and
 * node certificates it signs. Nothing here touches the file system except reading the
 * CA's own files when signing.
 *
 * Profiles (what every certificate carries, so any node can both dial and listen):
 *   CA:   EC P-256, X.509 v3, ecdsa-with-SHA256, basicConstraints CA:TRUE pathlen 0
 *         (it signs nodes, never other CAs), keyUsage keyCertSign|cRLSign, subject and
 *         authority key identifiers; issuer = subject.
 *   node: EC P-256, v3, ecdsa-with-SHA256, CN=NAME, basicConstraints CA:FALSE,
 *         keyUsage digitalSignature|keyAgreement, extendedKeyUsage serverAuth+clientAuth,
 *         subjectAltName DNS:NAME first, then the extra names (duplicates dropped),
 *         subject and authority key identifiers.
 * Both get a random 128-bit positive serial number. Every certificate is parsed back and
 * verified against its issuer before it is returned, so a bad one is never written. */
#ifndef DUET_CERTS_CERTGEN_H
#define DUET_CERTS_CERTGEN_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"
#include "validity.h"
#include "x509_ext.h"

typedef struct {
    char *cert_pem;       /* NUL-terminated PEM "CERTIFICATE" */
    size_t cert_len;      /* without the NUL */
    char *key_pem;        /* NUL-terminated PEM "EC PRIVATE KEY" (SEC1), unencrypted */
    size_t key_len;       /* without the NUL */
    char issuer[256];     /* the signer's subject, e.g. "CN=duet lab CA" */
    bool outlives_issuer; /* ends after the CA does: it stops verifying when the CA expires */
} certgen_output;

/* Zeroes the key text and frees both buffers; out may be reused afterwards. */
void certgen_output_free(certgen_output *out);

/* A new self-signed CA named common_name (already checked by certs_check_ca_common_name). */
duet_code certgen_make_ca(const char *common_name, validity valid, certgen_output *out,
                          duet_status *st);

typedef struct {
    const char *name;                 /* checked by certs_check_node_name */
    const x509_alt_name *extra_names; /* --dns then --ip, checked; may be NULL when 0 */
    size_t extra_count;
    validity valid;
} certgen_node_request;

/* A new node key and certificate signed by the CA in ca_cert_path / ca_key_path (PEM).
 * A CA file that cannot be read or parsed, is not a CA, is encrypted, or whose key does not
 * match its certificate: FAILED_PRECONDITION naming the file. */
duet_code certgen_issue_node(const certgen_node_request *req, const char *ca_cert_path,
                             const char *ca_key_path, certgen_output *out, duet_status *st);

#endif
