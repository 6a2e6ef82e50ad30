#include "x509_ext.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/oid.h>

/* Room for one element's tag and length octets (length up to 2^32). */
#define DER_HEADER_MAX 6

/* mbedtls_asn1_write_* fill a buffer backwards from its end; each returns the number of
 * bytes written or a negative error. A SEQUENCE is therefore written last-element first,
 * and its header goes in front once the contents' length is known. */

static int write_general_name(unsigned char **p, unsigned char *start, const x509_alt_name *name)
{
    const unsigned char *value;
    size_t len;
    unsigned char tag;
    if (name->kind == X509_ALT_DNS) {
        value = (const unsigned char *)name->dns;
        len = strlen(name->dns);
        tag = MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2;
    } else {
        value = name->ip;
        len = name->ip_len;
        tag = MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7;
    }
    int body = mbedtls_asn1_write_raw_buffer(p, start, value, len);
    if (body < 0) {
        return body;
    }
    int hlen = mbedtls_asn1_write_len(p, start, (size_t)body);
    if (hlen < 0) {
        return hlen;
    }
    int htag = mbedtls_asn1_write_tag(p, start, tag);
    if (htag < 0) {
        return htag;
    }
    return body + hlen + htag;
}

static int close_sequence(unsigned char **p, unsigned char *start, size_t contents_len)
{
    int hlen = mbedtls_asn1_write_len(p, start, contents_len);
    if (hlen < 0) {
        return hlen;
    }
    int htag = mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
    if (htag < 0) {
        return htag;
    }
    return (int)contents_len + hlen + htag;
}

static bool alt_name_valid(const x509_alt_name *name)
{
    if (name->kind == X509_ALT_DNS) {
        return name->dns && name->dns[0] != '\0';
    }
    return name->kind == X509_ALT_IP && (name->ip_len == 4 || name->ip_len == 16);
}

static duet_code add_extension(mbedtls_x509write_cert *crt, const char *oid, size_t oid_len,
                               const unsigned char *der, size_t der_len, const char *what,
                               duet_status *st)
{
    int ret = mbedtls_x509write_crt_set_extension(crt, oid, oid_len, 0, der, der_len);
    if (ret != 0) {
        return duet_status_set(st, DUET_INTERNAL, "cannot add the %s extension (mbedTLS -0x%04x)",
                               what, (unsigned)-ret);
    }
    return DUET_OK;
}

duet_code x509_ext_set_subject_alt_names(mbedtls_x509write_cert *crt, const x509_alt_name *names,
                                         size_t count, duet_status *st)
{
    if (count == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "subjectAltName needs at least one name");
    }
    size_t cap = DER_HEADER_MAX;
    for (size_t i = 0; i < count; i++) {
        if (!alt_name_valid(&names[i])) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "subjectAltName entry %zu is malformed", i + 1);
        }
        cap += DER_HEADER_MAX + (names[i].kind == X509_ALT_DNS ? strlen(names[i].dns) : 16);
    }
    unsigned char *buf = malloc(cap);
    if (!buf) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory encoding names");
    }
    unsigned char *p = buf + cap;
    size_t contents = 0;
    int ret = 0;
    for (size_t i = count; i-- > 0;) {
        ret = write_general_name(&p, buf, &names[i]);
        if (ret < 0) {
            break;
        }
        contents += (size_t)ret;
    }
    if (ret >= 0) {
        ret = close_sequence(&p, buf, contents);
    }
    duet_code code;
    if (ret < 0) {
        code = duet_status_set(st, DUET_INTERNAL, "cannot encode subjectAltName (mbedTLS -0x%04x)",
                               (unsigned)-ret);
    } else {
        code = add_extension(crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
                             MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), p, (size_t)ret,
                             "subjectAltName", st);
    }
    free(buf);
    return code;
}

duet_code x509_ext_set_extended_key_usage(mbedtls_x509write_cert *crt, const x509_oid *purposes,
                                          size_t count, duet_status *st)
{
    if (count == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "extendedKeyUsage needs at least one purpose");
    }
    size_t cap = DER_HEADER_MAX;
    for (size_t i = 0; i < count; i++) {
        cap += DER_HEADER_MAX + purposes[i].len;
    }
    unsigned char *buf = malloc(cap);
    if (!buf) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory encoding key usage");
    }
    unsigned char *p = buf + cap;
    size_t contents = 0;
    int ret = 0;
    for (size_t i = count; i-- > 0;) {
        ret = mbedtls_asn1_write_oid(&p, buf, purposes[i].der, purposes[i].len);
        if (ret < 0) {
            break;
        }
        contents += (size_t)ret;
    }
    if (ret >= 0) {
        ret = close_sequence(&p, buf, contents);
    }
    duet_code code;
    if (ret < 0) {
        code = duet_status_set(st, DUET_INTERNAL,
                               "cannot encode extendedKeyUsage (mbedTLS -0x%04x)", (unsigned)-ret);
    } else {
        code = add_extension(crt, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                             MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), p, (size_t)ret,
                             "extendedKeyUsage", st);
    }
    free(buf);
    return code;
}
