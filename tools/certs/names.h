/* What duet-certs accepts as names and addresses, checked before any key is made.
 *
 * Node names end up in three places at once: the certificate's CN and first DNS SAN,
 * the file names DIR/NAME.crt and DIR/NAME.key, and the `--name` the daemons are given.
 * DNS-style names are safe in all three (no '/', no spaces, nothing the X.509 name
 * parser treats specially), and mbedTLS only matches peers by DNS name, never by IP. */
#ifndef DUET_CERTS_NAMES_H
#define DUET_CERTS_NAMES_H

#include <stddef.h>

#include "status.h"

/* Longest accepted DNS name (RFC 1035 limit, without the trailing dot). */
#define CERTS_DNS_NAME_MAX 253

/* OK when name is a DNS-style host name: dot-separated labels of 1-63 letters, digits and
 * '-', no label starting or ending with '-', at most 253 characters. Otherwise
 * INVALID_ARGUMENT saying what is wrong; `what` names the argument in the message
 * (e.g. "NAME", "--dns"). */
duet_code certs_check_dns_name(const char *name, const char *what, duet_status *st);

/* OK when name can be a node NAME: a DNS-style name that is not "ca" in any case,
 * since DIR/ca.crt and DIR/ca.key belong to the CA. */
duet_code certs_check_node_name(const char *name, duet_status *st);

/* OK when cn can be the CA's common name: 1-64 characters, letters, digits, spaces and
 * - _ . : ( ) @, not starting or ending with a space (the X.509 name writer gives ',',
 * '=', '+' and '\' meanings of their own). */
duet_code certs_check_ca_common_name(const char *cn, duet_status *st);

/* Parses an IPv4 (dotted quad) or IPv6 address into network-order bytes: 4 or 16 of
 * them in *len. INVALID_ARGUMENT when text is neither. */
duet_code certs_parse_ip(const char *text, unsigned char out[16], size_t *len, duet_status *st);

#endif
