/* The two X.509 v3 extensions mbedTLS 2.28 cannot write by itself, encoded by hand in DER:
 * subjectAltName (RFC 5280 4.2.1.6) and extendedKeyUsage (4.2.1.12).
 *
 * Both are added as non-critical: the subject DN is never empty, and peers that do not
 * understand EKU may ignore it. The encoded bytes are copied into the writer, so the
 * arguments need not outlive the call. */
#ifndef DUET_CERTS_X509_EXT_H
#define DUET_CERTS_X509_EXT_H

#include <stddef.h>

#include <mbedtls/x509_crt.h>

#include "status.h"

typedef enum {
    X509_ALT_DNS, /* GeneralName [2] dNSName, IA5String */
    X509_ALT_IP,  /* GeneralName [7] iPAddress, 4 or 16 octets */
} x509_alt_kind;

typedef struct {
    x509_alt_kind kind;
    const char *dns;      /* X509_ALT_DNS: ASCII host name */
    unsigned char ip[16]; /* X509_ALT_IP: address in network byte order */
    size_t ip_len;        /* X509_ALT_IP: 4 (IPv4) or 16 (IPv6) */
} x509_alt_name;

/* An OID in DER content form with its length (OIDs may contain zero bytes). */
typedef struct {
    const char *der;
    size_t len;
} x509_oid;

/* Sets subjectAltName to exactly these names, in this order (count >= 1).
 * INVALID_ARGUMENT for an empty list or a malformed entry, INTERNAL if mbedTLS fails. */
duet_code x509_ext_set_subject_alt_names(mbedtls_x509write_cert *crt, const x509_alt_name *names,
                                         size_t count, duet_status *st);

/* Sets extendedKeyUsage to these purposes (count >= 1), e.g. MBEDTLS_OID_SERVER_AUTH. */
duet_code x509_ext_set_extended_key_usage(mbedtls_x509write_cert *crt, const x509_oid *purposes,
                                          size_t count, duet_status *st);

#endif
