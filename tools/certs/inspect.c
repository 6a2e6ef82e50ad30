#include "inspect.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/error.h>
#include <mbedtls/x509_crt.h>

#include "certfiles.h"

#define INFO_MAX 8192

static void print_alt_names(const mbedtls_x509_crt *crt, FILE *out)
{
    fputs("  alt names (all)   :", out);
    const char *sep = " ";
    bool any = false;
    for (const mbedtls_x509_sequence *cur = &crt->subject_alt_names; cur && cur->buf.p;
         cur = cur->next) {
        unsigned char kind = cur->buf.tag & MBEDTLS_ASN1_TAG_VALUE_MASK;
        char ip[INET6_ADDRSTRLEN];
        if (kind == 2) { /* dNSName */
            fprintf(out, "%sDNS:%.*s", sep, (int)cur->buf.len, (const char *)cur->buf.p);
        } else if (kind == 7 && cur->buf.len == 4 &&
                   inet_ntop(AF_INET, cur->buf.p, ip, sizeof ip)) {
            fprintf(out, "%sIP:%s", sep, ip);
        } else if (kind == 7 && cur->buf.len == 16 &&
                   inet_ntop(AF_INET6, cur->buf.p, ip, sizeof ip)) {
            fprintf(out, "%sIP:%s", sep, ip);
        } else {
            fprintf(out, "%s(GeneralName [%u], %zu bytes)", sep, kind, cur->buf.len);
        }
        sep = ", ";
        any = true;
    }
    fputs(any ? "\n" : " none (peers can match only the CN)\n", out);
}

/* mbedTLS 2.28 lists SANs it cannot decode (IP addresses) as "<unsupported>";
 * print_alt_names shows them all, so those lines are left out here. */
static void print_info_lines(const char *info, FILE *out)
{
    for (const char *line = info; *line;) {
        size_t len = strcspn(line, "\n");
        if (!memmem(line, len, "<unsupported>", 13)) {
            fprintf(out, "%.*s\n", (int)len, line);
        }
        line += len + (line[len] == '\n');
    }
}

static void print_time_status(const mbedtls_x509_crt *crt, FILE *out)
{
    const char *state = mbedtls_x509_time_is_past(&crt->valid_to)       ? "EXPIRED"
                        : mbedtls_x509_time_is_future(&crt->valid_from) ? "NOT VALID YET"
                                                                        : "valid now";
    fprintf(out, "  status            : %s\n", state);
}

/* The CA next to path, if any: DIR/ca.crt. */
static bool sibling_ca_path(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    int n = slash ? snprintf(out, cap, "%.*s/ca.crt", (int)(slash - path), path)
                  : snprintf(out, cap, "ca.crt");
    return n > 0 && (size_t)n < cap && certfiles_exists(out);
}

static void print_verification(mbedtls_x509_crt *crt, const char *path, FILE *out)
{
    char ca_path[CERTFILES_PATH_MAX];
    if (!sibling_ca_path(path, ca_path, sizeof ca_path)) {
        fputs("  checked against   : no ca.crt in the same folder\n", out);
        return;
    }
    mbedtls_x509_crt ca;
    mbedtls_x509_crt_init(&ca);
    int ret = mbedtls_x509_crt_parse_file(&ca, ca_path);
    if (ret != 0) {
        char why[160];
        mbedtls_strerror(ret, why, sizeof why);
        fprintf(out, "  checked against   : %s, which does not parse: %s\n", ca_path, why);
        mbedtls_x509_crt_free(&ca);
        return;
    }
    uint32_t flags = 0;
    mbedtls_x509_crt_verify(crt, &ca, NULL, NULL, &flags, NULL, NULL);
    if (flags == 0) {
        fprintf(out, "  checked against   : %s: OK, it signed this certificate\n", ca_path);
    } else {
        char why[1024];
        mbedtls_x509_crt_verify_info(why, sizeof why, "      ", flags);
        fprintf(out, "  checked against   : %s: DOES NOT VERIFY\n%s", ca_path, why);
    }
    mbedtls_x509_crt_free(&ca);
}

duet_code certs_show(const char *path, FILE *out, duet_status *st)
{
    if (!certfiles_exists(path)) {
        return duet_status_set(st, DUET_NOT_FOUND, "%s not found", path);
    }
    mbedtls_x509_crt chain;
    mbedtls_x509_crt_init(&chain);
    int ret = mbedtls_x509_crt_parse_file(&chain, path);
    if (ret < 0) {
        char why[160];
        mbedtls_strerror(ret, why, sizeof why);
        mbedtls_x509_crt_free(&chain);
        return duet_status_set(st, DUET_FAILED_PRECONDITION, "%s holds no usable certificate: %s",
                               path, why);
    }
    static char info[INFO_MAX];
    int index = 0;
    for (mbedtls_x509_crt *crt = &chain; crt && crt->raw.p; crt = crt->next) {
        if (mbedtls_x509_crt_info(info, sizeof info, "  ", crt) < 0) {
            snprintf(info, sizeof info, "  (too long to describe)\n");
        }
        fprintf(out, "%s%s", index > 0 ? "\n" : "", path);
        if (crt->next || index > 0) {
            fprintf(out, " (certificate %d)", index + 1);
        }
        fputs(":\n", out);
        print_info_lines(info, out);
        print_alt_names(crt, out);
        print_time_status(crt, out);
        print_verification(crt, path, out);
        index++;
    }
    if (ret > 0) {
        fprintf(out, "(%d more entries in %s could not be parsed)\n", ret, path);
    }
    mbedtls_x509_crt_free(&chain);
    return DUET_OK;
}
