#include "names.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define DNS_LABEL_MAX 63
#define CN_MAX 64

static bool is_label_char(unsigned char c)
{
    return isascii(c) && (isalnum(c) || c == '-');
}

duet_code certs_check_dns_name(const char *name, const char *what, duet_status *st)
{
    size_t len = strlen(name);
    if (len == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "%s is empty", what);
    }
    if (len > CERTS_DNS_NAME_MAX) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "%s is %zu characters long; a DNS name has at most %d", what, len,
                               CERTS_DNS_NAME_MAX);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!is_label_char(c) && c != '.') {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "%s '%s' contains '%c': use only letters, digits, '-' and '.'",
                                   what, name, isprint(c) ? (char)c : '?');
        }
    }
    const char *label = name;
    for (;;) {
        size_t label_len = strcspn(label, ".");
        if (label_len == 0) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "%s '%s' has an empty label (a leading, trailing or double "
                                   "dot)",
                                   what, name);
        }
        if (label_len > DNS_LABEL_MAX) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "%s '%s' has a label longer than %d characters", what, name,
                                   DNS_LABEL_MAX);
        }
        if (label[0] == '-' || label[label_len - 1] == '-') {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "%s '%s' has a label that starts or ends with '-'", what, name);
        }
        if (label[label_len] == '\0') {
            return DUET_OK;
        }
        label += label_len + 1;
    }
}

duet_code certs_check_node_name(const char *name, duet_status *st)
{
    duet_code code = certs_check_dns_name(name, "NAME", st);
    if (code != DUET_OK) {
        return code;
    }
    if (strcasecmp(name, "ca") == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "NAME '%s' is reserved: DIR/ca.crt and DIR/ca.key are the CA's "
                               "own files",
                               name);
    }
    return DUET_OK;
}

duet_code certs_check_ca_common_name(const char *cn, duet_status *st)
{
    size_t len = strlen(cn);
    if (len == 0 || len > CN_MAX) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "--cn must be 1 to %d characters long, not %zu", CN_MAX, len);
    }
    if (cn[0] == ' ' || cn[len - 1] == ' ') {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "--cn '%s' starts or ends with a space",
                               cn);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)cn[i];
        if (!(isascii(c) && (isalnum(c) || strchr(" -_.:()@", c)))) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "--cn '%s' contains '%c': use letters, digits, spaces and "
                                   "- _ . : ( ) @",
                                   cn, isprint(c) ? c : '?');
        }
    }
    return DUET_OK;
}

duet_code certs_parse_ip(const char *text, unsigned char out[16], size_t *len, duet_status *st)
{
    if (inet_pton(AF_INET, text, out) == 1) {
        *len = 4;
        return DUET_OK;
    }
    if (inet_pton(AF_INET6, text, out) == 1) {
        *len = 16;
        return DUET_OK;
    }
    return duet_status_set(st, DUET_INVALID_ARGUMENT,
                           "--ip '%s' is not an IPv4 (192.168.1.20) or IPv6 (fd00::20) address",
                           text);
}
