/* duet-certs: runs the built tool in a scratch folder and checks what it wrote with
 * mbedTLS's own parser and verifier (and, at the end, an NNG mutual-TLS round trip). */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <mbedtls/asn1.h>
#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/supplemental/tls/tls.h>

#include "support.h"

#define RUN(...) test_run_tool((const char *const[]){"duet-certs", __VA_ARGS__, NULL})
#define EXIT_USAGE 2

static char scratch[1024]; /* fresh per test: each Criterion test runs in its own process */
static char lab[1100];     /* scratch/lab, not created: init must make it */
static char other_lab[1100];

static void make_scratch(void)
{
    test_make_temp_dir(scratch, sizeof scratch, "duet-certs");
    snprintf(lab, sizeof lab, "%s/lab", scratch);
    snprintf(other_lab, sizeof other_lab, "%s/other", scratch);
}

static void remove_scratch(void)
{
    test_remove_dir(scratch);
}

TestSuite(certs, .init = make_scratch, .fini = remove_scratch);

/* dir/file in a caller buffer. */
static const char *path_in(char *out, size_t cap, const char *dir, const char *file)
{
    snprintf(out, cap, "%s/%s", dir, file);
    return out;
}

#define PATH(dir, file) path_in((char[1200]){0}, 1200, (dir), (file))

static void load_cert(mbedtls_x509_crt *crt, const char *path)
{
    mbedtls_x509_crt_init(crt);
    int ret = mbedtls_x509_crt_parse_file(crt, path);
    cr_assert_eq(ret, 0, "parse %s: -0x%04x", path, (unsigned)-ret);
}

static void load_key(mbedtls_pk_context *key, const char *path)
{
    mbedtls_pk_init(key);
    int ret = mbedtls_pk_parse_keyfile(key, path, NULL);
    cr_assert_eq(ret, 0, "parse %s: -0x%04x", path, (unsigned)-ret);
}

static unsigned file_mode(const char *path)
{
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0, "stat %s", path);
    return sb.st_mode & 07777;
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void subject_of(const mbedtls_x509_crt *crt, char *out, size_t cap)
{
    cr_assert_geq(mbedtls_x509_dn_gets(out, cap, &crt->subject), 0);
}

static time_t to_time(const mbedtls_x509_time *t)
{
    struct tm tm = {.tm_year = t->year - 1900,
                    .tm_mon = t->mon - 1,
                    .tm_mday = t->day,
                    .tm_hour = t->hour,
                    .tm_min = t->min,
                    .tm_sec = t->sec};
    return timegm(&tm);
}

/* Whether the certificate carries an extension, by OID, read from the raw DER (mbedTLS
 * 2.28 does not parse key identifiers). */
static bool has_extension(const mbedtls_x509_crt *crt, const char *oid, size_t oid_len)
{
    unsigned char *p = crt->v3_ext.p, *end = p + crt->v3_ext.len;
    size_t len;
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) {
        return false;
    }
    end = p + len;
    while (p < end) {
        if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) {
            return false;
        }
        unsigned char *next = p + len;
        size_t id_len;
        if (mbedtls_asn1_get_tag(&p, next, &id_len, MBEDTLS_ASN1_OID) == 0 && id_len == oid_len &&
            memcmp(p, oid, oid_len) == 0) {
            return true;
        }
        p = next;
    }
    return false;
}

static uint32_t verify(mbedtls_x509_crt *crt, mbedtls_x509_crt *ca, const char *name)
{
    uint32_t flags = 0;
    int ret = mbedtls_x509_crt_verify(crt, ca, NULL, name, &flags, NULL, NULL);
    cr_assert((ret == 0) == (flags == 0), "ret -0x%04x flags 0x%x", (unsigned)-ret, flags);
    return flags;
}

static void init_lab(void)
{
    cr_assert_eq(RUN("init", lab), 0);
}

static void issue_node_1(void)
{
    cr_assert_eq(RUN("issue", lab, "node-1", "--dns", "node-1.lab", "--dns", "alias", "--ip",
                     "10.0.0.7", "--ip", "fd00::7", "--dns", "NODE-1"),
                 0);
}

Test(certs, init_makes_a_ca)
{
    init_lab();
    cr_assert_eq(file_mode(lab), 0700, "a new folder is 0700");
    cr_assert_eq(file_mode(PATH(lab, "ca.key")), 0600);

    mbedtls_x509_crt ca;
    load_cert(&ca, PATH(lab, "ca.crt"));
    char subject[256];
    subject_of(&ca, subject, sizeof subject);
    cr_assert_str_eq(subject, "CN=duet lab CA");
    cr_assert_eq(ca.version, 3);
    cr_assert_eq(ca.ca_istrue, 1);
    cr_assert_eq(ca.max_pathlen, 1, "pathlen 0 (mbedTLS stores it plus one)");
    cr_assert(ca.ext_types & MBEDTLS_X509_EXT_KEY_USAGE);
    cr_assert_eq(ca.key_usage, MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN);
    cr_assert(has_extension(&ca, MBEDTLS_OID_SUBJECT_KEY_IDENTIFIER,
                            MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_KEY_IDENTIFIER)));
    cr_assert_eq(ca.sig_md, MBEDTLS_MD_SHA256);
    cr_assert_eq(ca.sig_pk, MBEDTLS_PK_ECDSA);
    cr_assert_eq(mbedtls_pk_get_type(&ca.pk), MBEDTLS_PK_ECKEY);
    cr_assert_eq(mbedtls_pk_ec(ca.pk)->grp.id, MBEDTLS_ECP_DP_SECP256R1);
    cr_assert_eq(verify(&ca, &ca, NULL), 0, "self-signed and trusted by itself");

    time_t from = to_time(&ca.valid_from), to = to_time(&ca.valid_to);
    cr_assert(labs((long)(time(NULL) - 3600 - from)) < 300, "starts an hour ago");
    cr_assert_geq(to - from, (time_t)3652 * 86400, "10 years");
    cr_assert_leq(to - from, (time_t)3653 * 86400);

    mbedtls_pk_context key;
    load_key(&key, PATH(lab, "ca.key"));
    cr_assert_eq(mbedtls_pk_check_pair(&ca.pk, &key), 0);
    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&ca);
}

Test(certs, init_takes_a_name_and_days)
{
    cr_assert_eq(RUN("init", lab, "--cn", "Home Lab (2025) CA", "--days=30"), 0);
    mbedtls_x509_crt ca;
    load_cert(&ca, PATH(lab, "ca.crt"));
    char subject[256];
    subject_of(&ca, subject, sizeof subject);
    cr_assert_str_eq(subject, "CN=Home Lab (2025) CA");
    cr_assert_eq(to_time(&ca.valid_to) - to_time(&ca.valid_from), (time_t)30 * 86400);
    mbedtls_x509_crt_free(&ca);
    cr_assert_eq(RUN("init", other_lab, "--cn", "a,b=c"), EXIT_USAGE);
    cr_assert_eq(RUN("init", other_lab, "--days", "0"), EXIT_USAGE);
    cr_assert_eq(RUN("init", other_lab, "--days", "12x"), EXIT_USAGE);
    cr_assert_not(exists(other_lab), "nothing is made after a usage error");
}

Test(certs, issue_makes_a_node_certificate)
{
    init_lab();
    issue_node_1();
    cr_assert_eq(file_mode(PATH(lab, "node-1.key")), 0600);

    mbedtls_x509_crt crt, ca;
    load_cert(&crt, PATH(lab, "node-1.crt"));
    load_cert(&ca, PATH(lab, "ca.crt"));
    char subject[256], issuer[256], ca_subject[256];
    subject_of(&crt, subject, sizeof subject);
    cr_assert_str_eq(subject, "CN=node-1");
    cr_assert_geq(mbedtls_x509_dn_gets(issuer, sizeof issuer, &crt.issuer), 0);
    subject_of(&ca, ca_subject, sizeof ca_subject);
    cr_assert_str_eq(issuer, ca_subject);

    cr_assert_eq(crt.version, 3);
    cr_assert_eq(crt.ca_istrue, 0);
    cr_assert(crt.ext_types & MBEDTLS_X509_EXT_BASIC_CONSTRAINTS, "CA:FALSE is written out");
    cr_assert_eq(crt.key_usage, MBEDTLS_X509_KU_DIGITAL_SIGNATURE | MBEDTLS_X509_KU_KEY_AGREEMENT);
    cr_assert_eq(mbedtls_x509_crt_check_key_usage(&crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE), 0);
    cr_assert(crt.ext_types & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE);
    cr_assert_eq(mbedtls_x509_crt_check_extended_key_usage(
                     &crt, MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
                 0);
    cr_assert_eq(mbedtls_x509_crt_check_extended_key_usage(
                     &crt, MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
                 0);
    cr_assert_neq(mbedtls_x509_crt_check_extended_key_usage(
                      &crt, MBEDTLS_OID_CODE_SIGNING, MBEDTLS_OID_SIZE(MBEDTLS_OID_CODE_SIGNING)),
                  0, "only the two TLS purposes");
    cr_assert(has_extension(&crt, MBEDTLS_OID_SUBJECT_KEY_IDENTIFIER,
                            MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_KEY_IDENTIFIER)));
    cr_assert(has_extension(&crt, MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER,
                            MBEDTLS_OID_SIZE(MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER)));
    cr_assert_eq(crt.sig_md, MBEDTLS_MD_SHA256);
    cr_assert_eq(mbedtls_pk_ec(crt.pk)->grp.id, MBEDTLS_ECP_DP_SECP256R1);

    /* DNS:NAME first, then --dns in order (the NODE-1 repeat dropped), then --ip. */
    cr_assert(crt.ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME);
    static const struct {
        unsigned char tag;
        const char *bytes;
        size_t len;
    } want[] = {
        {MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2, "node-1", 6},
        {MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2, "node-1.lab", 10},
        {MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2, "alias", 5},
        {MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7, "\x0a\x00\x00\x07", 4},
        {MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7,
         "\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07", 16},
    };
    const mbedtls_x509_sequence *san = &crt.subject_alt_names;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++, san = san->next) {
        cr_assert_not_null(san, "SAN %zu missing", i);
        cr_assert_eq(san->buf.tag, want[i].tag, "SAN %zu tag", i);
        cr_assert_eq(san->buf.len, want[i].len, "SAN %zu length", i);
        cr_assert_arr_eq(san->buf.p, want[i].bytes, want[i].len, "SAN %zu value", i);
    }
    cr_assert_null(san, "no more SANs than asked for");

    mbedtls_pk_context key, ca_key;
    load_key(&key, PATH(lab, "node-1.key"));
    load_key(&ca_key, PATH(lab, "ca.key"));
    cr_assert_eq(mbedtls_pk_check_pair(&crt.pk, &key), 0, "the key belongs to the certificate");
    cr_assert_neq(mbedtls_pk_check_pair(&crt.pk, &ca_key), 0);
    mbedtls_pk_free(&key);
    mbedtls_pk_free(&ca_key);
    mbedtls_x509_crt_free(&ca);
    mbedtls_x509_crt_free(&crt);
}

Test(certs, node_verifies_against_its_ca_under_each_dns_name)
{
    init_lab();
    issue_node_1();
    mbedtls_x509_crt crt, ca;
    load_cert(&crt, PATH(lab, "node-1.crt"));
    load_cert(&ca, PATH(lab, "ca.crt"));
    cr_assert_eq(verify(&crt, &ca, NULL), 0);
    cr_assert_eq(verify(&crt, &ca, "node-1"), 0);
    cr_assert_eq(verify(&crt, &ca, "node-1.lab"), 0);
    cr_assert_eq(verify(&crt, &ca, "alias"), 0);
    cr_assert_eq(verify(&crt, &ca, "other.lab"), MBEDTLS_X509_BADCERT_CN_MISMATCH);
    mbedtls_x509_crt_free(&ca);
    mbedtls_x509_crt_free(&crt);
}

Test(certs, node_does_not_verify_against_another_ca)
{
    init_lab();
    issue_node_1();
    cr_assert_eq(RUN("init", other_lab), 0);
    mbedtls_x509_crt crt, other_ca;
    load_cert(&crt, PATH(lab, "node-1.crt"));
    load_cert(&other_ca, PATH(other_lab, "ca.crt"));
    cr_assert(verify(&crt, &other_ca, "node-1") & MBEDTLS_X509_BADCERT_NOT_TRUSTED);
    mbedtls_x509_crt_free(&other_ca);
    mbedtls_x509_crt_free(&crt);
}

Test(certs, default_validity_is_825_days_from_an_hour_ago)
{
    init_lab();
    cr_assert_eq(RUN("issue", lab, "node-2"), 0);
    mbedtls_x509_crt crt;
    load_cert(&crt, PATH(lab, "node-2.crt"));
    time_t from = to_time(&crt.valid_from), to = to_time(&crt.valid_to);
    cr_assert(labs((long)(time(NULL) - 3600 - from)) < 300, "starts an hour ago");
    cr_assert_eq(to - from, (time_t)825 * 86400);
    cr_assert_null(crt.subject_alt_names.next, "only DNS:node-2");
    cr_assert_eq(crt.subject_alt_names.buf.len, 6);
    mbedtls_x509_crt_free(&crt);
}

Test(certs, explicit_dates_make_an_expired_certificate)
{
    init_lab();
    cr_assert_eq(
        RUN("issue", lab, "old-node", "--not-before", "2020-01-01", "--not-after", "2020-12-31"),
        0);
    mbedtls_x509_crt crt, ca;
    load_cert(&crt, PATH(lab, "old-node.crt"));
    load_cert(&ca, PATH(lab, "ca.crt"));
    cr_assert_eq(crt.valid_from.year, 2020);
    cr_assert_eq(crt.valid_from.mon, 1);
    cr_assert_eq(crt.valid_from.day, 1);
    cr_assert_eq(crt.valid_from.hour, 0);
    cr_assert_eq(crt.valid_to.year, 2020);
    cr_assert_eq(crt.valid_to.mon, 12);
    cr_assert_eq(crt.valid_to.day, 31);
    cr_assert_eq(crt.valid_to.hour, 23);
    cr_assert_eq(crt.valid_to.sec, 59);
    cr_assert_eq(verify(&crt, &ca, "old-node"), MBEDTLS_X509_BADCERT_EXPIRED);
    mbedtls_x509_crt_free(&ca);
    mbedtls_x509_crt_free(&crt);

    cr_assert_eq(RUN("issue", lab, "late-node", "--not-before", "2031-01-01", "--days", "10"), 0);
    load_cert(&crt, PATH(lab, "late-node.crt"));
    cr_assert_eq(crt.valid_to.year, 2031);
    cr_assert_eq(crt.valid_to.day, 11);
    mbedtls_x509_crt_free(&crt);
}

Test(certs, impossible_dates_are_usage_errors)
{
    init_lab();
    /* Without --not-before the start is an hour ago, after this end. */
    cr_assert_eq(RUN("issue", lab, "n1", "--not-after", "2020-12-31"), EXIT_USAGE);
    cr_assert_eq(RUN("issue", lab, "n2", "--days", "5", "--not-after", "2040-01-01"), EXIT_USAGE);
    cr_assert_eq(RUN("issue", lab, "n3", "--not-before", "2021-02-29"), EXIT_USAGE);
    cr_assert_eq(RUN("issue", lab, "n4", "--not-before", "2021-1-01"), EXIT_USAGE);
    cr_assert_eq(RUN("issue", lab, "n5", "--not-before", "2022-01-02", "--not-after", "2022-01-01"),
                 EXIT_USAGE);
    cr_assert_eq(RUN("issue", lab, "n6", "--days", "-3"), EXIT_USAGE);
    cr_assert_not(exists(PATH(lab, "n1.key")));
    cr_assert_not(exists(PATH(lab, "n5.crt")));
}

Test(certs, refuses_to_overwrite_without_force)
{
    init_lab();
    cr_assert_eq(RUN("issue", lab, "node-1"), 0);
    char *cert = test_read_file(PATH(lab, "node-1.crt"), NULL);
    char *key = test_read_file(PATH(lab, "node-1.key"), NULL);
    char *ca = test_read_file(PATH(lab, "ca.crt"), NULL);
    cr_assert(cert && key && ca);

    cr_assert_eq(RUN("issue", lab, "node-1"), 1);
    cr_assert_eq(RUN("init", lab), 1);
    char *cert_after = test_read_file(PATH(lab, "node-1.crt"), NULL);
    char *key_after = test_read_file(PATH(lab, "node-1.key"), NULL);
    char *ca_after = test_read_file(PATH(lab, "ca.crt"), NULL);
    cr_assert_str_eq(cert_after, cert);
    cr_assert_str_eq(key_after, key);
    cr_assert_str_eq(ca_after, ca);
    free(cert_after);
    free(key_after);
    free(ca_after);

    /* Only the key left over still blocks a new certificate. */
    cr_assert_eq(remove(PATH(lab, "node-1.crt")), 0);
    cr_assert_eq(RUN("issue", lab, "node-1"), 1);
    cr_assert_not(exists(PATH(lab, "node-1.crt")));

    cr_assert_eq(RUN("issue", lab, "node-1", "--force"), 0);
    key_after = test_read_file(PATH(lab, "node-1.key"), NULL);
    cr_assert_str_neq(key_after, key, "a fresh key");
    cr_assert_eq(file_mode(PATH(lab, "node-1.key")), 0600);
    mbedtls_x509_crt crt;
    mbedtls_pk_context pk;
    load_cert(&crt, PATH(lab, "node-1.crt"));
    load_key(&pk, PATH(lab, "node-1.key"));
    cr_assert_eq(mbedtls_pk_check_pair(&crt.pk, &pk), 0);
    mbedtls_pk_free(&pk);
    mbedtls_x509_crt_free(&crt);

    cr_assert_eq(RUN("init", lab, "--force"), 0);
    ca_after = test_read_file(PATH(lab, "ca.crt"), NULL);
    cr_assert_str_neq(ca_after, ca, "a new CA");
    free(cert);
    free(key);
    free(ca);
    free(key_after);
    free(ca_after);
}

Test(certs, bad_names_are_rejected)
{
    init_lab();
    static const char *const bad[] = {
        "bad name",
        "under_score",
        "-lead",
        "trail-",
        "a..b",
        ".dot",
        "dot.",
        "",
        "../etc",
        "a/b",
        "caf\xc3\xa9",
        "ca",
        "CA",
        "x234567890123456789012345678901234567890123456789012345678901234", /* 64-char label */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(RUN("issue", lab, bad[i]), EXIT_USAGE, "NAME '%s'", bad[i]);
    }
    cr_assert_eq(RUN("issue", lab, "ok-1", "--dns", "no_underscores"), EXIT_USAGE);
    cr_assert_eq(RUN("issue", lab, "ok-1", "--ip", "300.1.1.1"), EXIT_USAGE);
    cr_assert_eq(RUN("issue", lab, "ok-1", "--ip", "fd00::1::2"), EXIT_USAGE);
    cr_assert_not(exists(PATH(lab, "ok-1.crt")));
    cr_assert_not(exists(PATH(lab, "ok-1.key")));

    cr_assert_eq(RUN("issue", lab, "Worker-2.home.arpa"), 0, "mixed case and dots are fine");
    cr_assert(exists(PATH(lab, "Worker-2.home.arpa.crt")));
}

Test(certs, issue_without_init_fails)
{
    cr_assert_eq(RUN("issue", lab, "node-1"), 1, "no folder at all");
    cr_assert_eq(mkdir(lab, 0700), 0);
    cr_assert_eq(RUN("issue", lab, "node-1"), 1, "empty folder");
    cr_assert_not(exists(PATH(lab, "node-1.crt")));
    cr_assert_not(exists(PATH(lab, "node-1.key")));
}

Test(certs, mismatched_ca_files_fail)
{
    init_lab();
    cr_assert_eq(RUN("init", other_lab), 0);
    char *other_key = test_read_file(PATH(other_lab, "ca.key"), NULL);
    cr_assert_not_null(other_key);
    FILE *f = fopen(PATH(lab, "ca.key"), "w");
    cr_assert_not_null(f);
    fputs(other_key, f);
    fclose(f);
    free(other_key);
    cr_assert_eq(RUN("issue", lab, "node-1"), 1);
    cr_assert_not(exists(PATH(lab, "node-1.key")));
    cr_assert_eq(remove(PATH(lab, "ca.crt")), 0);
    cr_assert_eq(RUN("issue", lab, "node-1"), 1);
}

Test(certs, serials_are_random_and_positive)
{
    init_lab();
    cr_assert_eq(RUN("issue", lab, "a"), 0);
    cr_assert_eq(RUN("issue", lab, "b"), 0);
    mbedtls_x509_crt a, b;
    load_cert(&a, PATH(lab, "a.crt"));
    load_cert(&b, PATH(lab, "b.crt"));
    for (int i = 0; i < 2; i++) {
        const mbedtls_x509_buf *serial = i == 0 ? &a.serial : &b.serial;
        cr_assert_eq(serial->p[0] & 0x80, 0, "positive");
        cr_assert(serial->len == 16 || serial->len == 17, "128 bits, %zu octets", serial->len);
        cr_assert(serial->len == 16 || serial->p[0] == 0, "only a sign octet in front");
    }
    cr_assert(a.serial.len != b.serial.len || memcmp(a.serial.p, b.serial.p, a.serial.len) != 0);
    mbedtls_x509_crt_free(&a);
    mbedtls_x509_crt_free(&b);
}

Test(certs, usage_and_help)
{
    cr_assert_eq(RUN("--help"), 0);
    cr_assert_eq(RUN("help"), 0);
    cr_assert_eq(RUN("issue", "--help"), 0);
    cr_assert_eq(test_run_tool((const char *const[]){"duet-certs", NULL}), EXIT_USAGE);
    cr_assert_eq(RUN("frobnicate"), EXIT_USAGE);
    cr_assert_eq(RUN("init"), EXIT_USAGE);
    cr_assert_eq(RUN("init", lab, "--dns", "x"), EXIT_USAGE, "init has no --dns");
    cr_assert_eq(RUN("init", lab, "--bogus"), EXIT_USAGE);
    cr_assert_eq(RUN("issue", lab), EXIT_USAGE);
    cr_assert_eq(RUN("issue", lab, "a", "b"), EXIT_USAGE);
    cr_assert_eq(RUN("issue", lab, "a", "--days"), EXIT_USAGE);
    cr_assert_not(exists(lab));
}

Test(certs, show_describes_certificates)
{
    init_lab();
    issue_node_1();
    cr_assert_eq(RUN("show", PATH(lab, "node-1.crt")), 0);
    cr_assert_eq(RUN("show", PATH(lab, "ca.crt")), 0);
    cr_assert_eq(RUN("show", PATH(lab, "missing.crt")), 1);
    cr_assert_eq(RUN("show", PATH(lab, "node-1.key")), 1, "a key is not a certificate");
    cr_assert_eq(RUN("show"), EXIT_USAGE);
}

/* The certificates do what they are for: a listener and a dialer, each with its own node
 * certificate, talk over NNG mutual TLS; a wrong server name or a stranger's CA fails. */
static char *read_pem(const char *dir, const char *file)
{
    char *text = test_read_file(PATH(dir, file), NULL);
    cr_assert_not_null(text, "%s/%s", dir, file);
    return text;
}

static nng_tls_config *tls_config(bool server, const char *dir, const char *name,
                                  const char *server_name)
{
    char crt_file[300], key_file[300];
    snprintf(crt_file, sizeof crt_file, "%s.crt", name);
    snprintf(key_file, sizeof key_file, "%s.key", name);
    char *ca = read_pem(dir, "ca.crt"), *crt = read_pem(dir, crt_file),
         *key = read_pem(dir, key_file);
    nng_tls_config *cfg;
    cr_assert_eq(nng_tls_config_alloc(&cfg, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT), 0);
    cr_assert_eq(nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED), 0);
    cr_assert_eq(nng_tls_config_ca_chain(cfg, ca, NULL), 0);
    cr_assert_eq(nng_tls_config_own_cert(cfg, crt, key, NULL), 0);
    if (server_name) {
        cr_assert_eq(nng_tls_config_server_name(cfg, server_name), 0);
    }
    free(ca);
    free(crt);
    free(key);
    return cfg;
}

static int dial(const char *url, nng_tls_config *cfg, nng_socket *sock)
{
    nng_dialer d;
    cr_assert_eq(nng_pair1_open(sock), 0);
    cr_assert_eq(nng_dialer_create(&d, *sock, url), 0);
    cr_assert_eq(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg), 0);
    nng_tls_config_free(cfg);
    return nng_dialer_start(d, 0);
}

Test(certs, nodes_talk_over_mutual_tls)
{
    init_lab();
    cr_assert_eq(RUN("issue", lab, "worker-1", "--ip", "127.0.0.1"), 0);
    cr_assert_eq(RUN("issue", lab, "gateway"), 0);
    cr_assert_eq(RUN("init", other_lab), 0);
    cr_assert_eq(RUN("issue", other_lab, "gateway"), 0);

    char url[64];
    snprintf(url, sizeof url, "tls+tcp://127.0.0.1:%d", test_free_port());
    nng_socket server;
    nng_listener l;
    cr_assert_eq(nng_pair1_open(&server), 0);
    cr_assert_eq(nng_listener_create(&l, server, url), 0);
    nng_tls_config *cfg = tls_config(true, lab, "worker-1", NULL);
    cr_assert_eq(nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg), 0);
    nng_tls_config_free(cfg);
    cr_assert_eq(nng_listener_start(l, 0), 0);
    cr_assert_eq(nng_socket_set_ms(server, NNG_OPT_RECVTIMEO, 10000), 0);

    nng_socket stranger, misnamed, client;
    cr_assert_eq(dial(url, tls_config(false, other_lab, "gateway", "worker-1"), &stranger),
                 NNG_ECRYPTO, "a certificate from another CA");
    cr_assert_eq(dial(url, tls_config(false, lab, "gateway", "worker-2"), &misnamed), NNG_ECRYPTO,
                 "the listener is not worker-2");
    cr_assert_eq(dial(url, tls_config(false, lab, "gateway", "worker-1"), &client), 0);

    cr_assert_eq(nng_socket_set_ms(client, NNG_OPT_SENDTIMEO, 10000), 0);
    cr_assert_eq(nng_send(client, "ping", 5, 0), 0);
    char *got = NULL;
    size_t len = 0;
    cr_assert_eq(nng_recv(server, &got, &len, NNG_FLAG_ALLOC), 0);
    cr_assert_eq(len, 5);
    cr_assert_str_eq(got, "ping");
    nng_free(got, len);

    nng_close(stranger);
    nng_close(misnamed);
    nng_close(client);
    nng_close(server);
}
