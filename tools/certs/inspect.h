/* `duet-certs show`: what a certificate says and whether the lab's CA vouches for it,
 * for a person working out why two nodes will not talk. */
#ifndef DUET_CERTS_INSPECT_H
#define DUET_CERTS_INSPECT_H

#include <stdio.h>

#include "status.h"

/* Prints every certificate in the PEM or DER file at path: mbedTLS's description
 * (subject, issuer, serial, validity, key, basic constraints, key usages), every
 * subjectAltName including IP addresses, whether it is valid now, and whether it verifies
 * against ca.crt in the same folder when there is one. A file that is missing or holds no
 * certificate: FAILED_PRECONDITION (NOT_FOUND when missing). A certificate that does not
 * verify is reported, not an error. */
duet_code certs_show(const char *path, FILE *out, duet_status *st);

#endif
