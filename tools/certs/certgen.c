#include "certgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "names.h"

#define SERIAL_BYTES 16
#define KEY_PEM_MAX 1024
#define WHAT_MAX 600       /* "cannot read <path>" before the reason is added */
#define CERT_PEM_BASE 4096 /* an EC certificate without SANs is well under 1 KB of PEM */

/* The state one certificate takes to make: randomness, the new key, the writer. */
typedef struct {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_pk_context key;
    mbedtls_x509write_cert writer;
    mbedtls_mpi serial;
} cert_job;

static duet_code mbed_failure(duet_status *st, duet_code code, int ret, const char *what)
{
    char reason[160];
    mbedtls_strerror(ret, reason, sizeof reason);
    return duet_status_set(st, code, "%s: %s (mbedTLS -0x%04x)", what, reason, (unsigned)-ret);
}

static void job_init(cert_job *job)
{
    mbedtls_entropy_init(&job->entropy);
    mbedtls_ctr_drbg_init(&job->drbg);
    mbedtls_pk_init(&job->key);
    mbedtls_x509write_crt_init(&job->writer);
    mbedtls_mpi_init(&job->serial);
}

static void job_free(cert_job *job)
{
    mbedtls_mpi_free(&job->serial);
    mbedtls_x509write_crt_free(&job->writer);
    mbedtls_pk_free(&job->key);
    mbedtls_ctr_drbg_free(&job->drbg);
    mbedtls_entropy_free(&job->entropy);
}

/* Seeds the generator, makes a P-256 key and a 128-bit serial, and fills in what every
 * profile shares: v3, SHA-256, subject name and key, validity, subject key identifier. */
static duet_code job_start(cert_job *job, const char *subject, validity valid, duet_status *st)
{
    static const char personalization[] = "duet-certs";
    int ret =
        mbedtls_ctr_drbg_seed(&job->drbg, mbedtls_entropy_func, &job->entropy,
                              (const unsigned char *)personalization, sizeof personalization - 1);
    if (ret != 0) {
        return mbed_failure(st, DUET_INTERNAL, ret, "cannot seed the random generator");
    }
    ret = mbedtls_pk_setup(&job->key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (ret == 0) {
        ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(job->key),
                                  mbedtls_ctr_drbg_random, &job->drbg);
    }
    if (ret != 0) {
        return mbed_failure(st, DUET_INTERNAL, ret, "cannot generate an EC P-256 key");
    }

    /* Positive by construction: DER INTEGERs are signed, and mbedTLS writes a leading zero
     * octet when the top bit is set. Zero is not a valid serial. */
    unsigned char serial[SERIAL_BYTES];
    ret = mbedtls_ctr_drbg_random(&job->drbg, serial, sizeof serial);
    if (ret == 0) {
        ret = mbedtls_mpi_read_binary(&job->serial, serial, sizeof serial);
    }
    if (ret == 0 && mbedtls_mpi_cmp_int(&job->serial, 0) == 0) {
        ret = mbedtls_mpi_lset(&job->serial, 1);
    }
    if (ret == 0) {
        ret = mbedtls_x509write_crt_set_serial(&job->writer, &job->serial);
    }
    if (ret != 0) {
        return mbed_failure(st, DUET_INTERNAL, ret, "cannot make a serial number");
    }

    char not_before[15], not_after[15];
    validity_format_x509(valid.not_before, not_before);
    validity_format_x509(valid.not_after, not_after);
    mbedtls_x509write_crt_set_version(&job->writer, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&job->writer, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&job->writer, &job->key);
    ret = mbedtls_x509write_crt_set_subject_name(&job->writer, subject);
    if (ret != 0) {
        return mbed_failure(st, DUET_INVALID_ARGUMENT, ret, "cannot use the subject name");
    }
    ret = mbedtls_x509write_crt_set_validity(&job->writer, not_before, not_after);
    if (ret != 0) {
        return mbed_failure(st, DUET_INVALID_ARGUMENT, ret, "cannot set the validity period");
    }
    ret = mbedtls_x509write_crt_set_subject_key_identifier(&job->writer);
    if (ret != 0) {
        return mbed_failure(st, DUET_INTERNAL, ret, "cannot add the subject key identifier");
    }
    return DUET_OK;
}

/* Signs with the issuer key already set, checks the result against issuer_chain (NULL:
 * the certificate itself, for a self-signed CA) and hands out the PEM texts. */
static duet_code job_finish(cert_job *job, size_t cert_cap, mbedtls_x509_crt *issuer_chain,
                            certgen_output *out, duet_status *st)
{
    int ret = mbedtls_x509write_crt_set_authority_key_identifier(&job->writer);
    if (ret != 0) {
        return mbed_failure(st, DUET_INTERNAL, ret, "cannot add the authority key identifier");
    }
    unsigned char *cert = malloc(cert_cap);
    unsigned char key[KEY_PEM_MAX];
    if (!cert) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory writing a certificate");
    }
    duet_code code = DUET_OK;
    ret = mbedtls_x509write_crt_pem(&job->writer, cert, cert_cap, mbedtls_ctr_drbg_random,
                                    &job->drbg);
    if (ret != 0) {
        code = mbed_failure(st, DUET_INTERNAL, ret, "cannot sign the certificate");
    }

    mbedtls_x509_crt written;
    mbedtls_x509_crt_init(&written);
    if (code == DUET_OK) {
        size_t len = strlen((char *)cert) + 1; /* PEM parsing wants the NUL counted */
        ret = mbedtls_x509_crt_parse(&written, cert, len);
        if (ret != 0) {
            code = mbed_failure(st, DUET_INTERNAL, ret, "the new certificate does not parse");
        }
    }
    if (code == DUET_OK) {
        uint32_t flags = 0;
        mbedtls_x509_crt *trust = issuer_chain ? issuer_chain : &written;
        ret = mbedtls_x509_crt_verify(&written, trust, NULL, NULL, &flags, NULL, NULL);
        /* Dates are the caller's choice (an expired certificate on purpose is fine). */
        flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE);
        if (flags != 0) {
            char why[256];
            mbedtls_x509_crt_verify_info(why, sizeof why, "", flags);
            why[strcspn(why, "\n")] = '\0';
            code =
                duet_status_set(st, DUET_INTERNAL,
                                "the new certificate does not verify against its issuer: %s", why);
        }
    }
    mbedtls_x509_crt_free(&written);

    if (code == DUET_OK) {
        ret = mbedtls_pk_write_key_pem(&job->key, key, sizeof key);
        if (ret != 0) {
            code = mbed_failure(st, DUET_INTERNAL, ret, "cannot write the private key");
        }
    }
    if (code == DUET_OK) {
        out->cert_len = strlen((char *)cert);
        out->key_len = strlen((char *)key);
        out->cert_pem = (char *)cert;
        out->key_pem = malloc(out->key_len + 1);
        cert = NULL;
        if (!out->key_pem) {
            code = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        } else {
            memcpy(out->key_pem, key, out->key_len + 1);
        }
    }
    mbedtls_platform_zeroize(key, sizeof key);
    free(cert);
    return code;
}

void certgen_output_free(certgen_output *out)
{
    if (out->key_pem) {
        mbedtls_platform_zeroize(out->key_pem, out->key_len);
    }
    free(out->key_pem);
    free(out->cert_pem);
    memset(out, 0, sizeof *out);
}

duet_code certgen_make_ca(const char *common_name, validity valid, certgen_output *out,
                          duet_status *st)
{
    memset(out, 0, sizeof *out);
    char subject[128];
    snprintf(subject, sizeof subject, "CN=%s", common_name);
    cert_job job;
    job_init(&job);
    duet_code code = job_start(&job, subject, valid, st);
    if (code == DUET_OK) {
        mbedtls_x509write_crt_set_issuer_key(&job.writer, &job.key);
        int ret = mbedtls_x509write_crt_set_issuer_name(&job.writer, subject);
        if (ret == 0) {
            ret = mbedtls_x509write_crt_set_basic_constraints(&job.writer, 1, 0);
        }
        if (ret == 0) {
            ret = mbedtls_x509write_crt_set_key_usage(&job.writer, MBEDTLS_X509_KU_KEY_CERT_SIGN |
                                                                       MBEDTLS_X509_KU_CRL_SIGN);
        }
        if (ret != 0) {
            code = mbed_failure(st, DUET_INTERNAL, ret, "cannot describe the CA");
        }
    }
    if (code == DUET_OK) {
        code = job_finish(&job, CERT_PEM_BASE, NULL, out, st);
    }
    if (code == DUET_OK) {
        snprintf(out->issuer, sizeof out->issuer, "%s", subject);
    } else {
        certgen_output_free(out);
    }
    job_free(&job);
    return code;
}

/* The signing CA, loaded and checked. */
typedef struct {
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    char subject[256];
} loaded_ca;

static duet_code load_ca(loaded_ca *ca, const char *cert_path, const char *key_path,
                         duet_status *st)
{
    char what[WHAT_MAX];
    int ret = mbedtls_x509_crt_parse_file(&ca->cert, cert_path);
    if (ret != 0) {
        snprintf(what, sizeof what, "cannot read the CA certificate %s", cert_path);
        return mbed_failure(st, DUET_FAILED_PRECONDITION, ret, what);
    }
    if (!ca->cert.ca_istrue) {
        return duet_status_set(st, DUET_FAILED_PRECONDITION,
                               "%s is not a CA certificate (basicConstraints CA:TRUE missing)",
                               cert_path);
    }
    ret = mbedtls_pk_parse_keyfile(&ca->key, key_path, NULL);
    if (ret == MBEDTLS_ERR_PK_PASSWORD_REQUIRED) {
        return duet_status_set(st, DUET_FAILED_PRECONDITION,
                               "%s is encrypted; duet-certs needs the CA key unencrypted",
                               key_path);
    }
    if (ret != 0) {
        snprintf(what, sizeof what, "cannot read the CA key %s", key_path);
        return mbed_failure(st, DUET_FAILED_PRECONDITION, ret, what);
    }
    ret = mbedtls_pk_check_pair(&ca->cert.pk, &ca->key);
    if (ret != 0) {
        return duet_status_set(st, DUET_FAILED_PRECONDITION,
                               "%s is not the key of %s (were they made by different `init`s?)",
                               key_path, cert_path);
    }
    ret = mbedtls_x509_dn_gets(ca->subject, sizeof ca->subject, &ca->cert.subject);
    if (ret < 0) {
        snprintf(what, sizeof what, "cannot read the subject of %s", cert_path);
        return mbed_failure(st, DUET_FAILED_PRECONDITION, ret, what);
    }
    return DUET_OK;
}

static bool same_alt_name(const x509_alt_name *a, const x509_alt_name *b)
{
    if (a->kind != b->kind) {
        return false;
    }
    if (a->kind == X509_ALT_DNS) {
        return strcasecmp(a->dns, b->dns) == 0;
    }
    return a->ip_len == b->ip_len && memcmp(a->ip, b->ip, a->ip_len) == 0;
}

/* DNS:NAME, then the extra names in order, each name once. Caller frees *names. */
static duet_code node_alt_names(const certgen_node_request *req, x509_alt_name **names,
                                size_t *count, size_t *dns_bytes, duet_status *st)
{
    x509_alt_name *list = calloc(req->extra_count + 1, sizeof *list);
    if (!list) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    size_t n = 0;
    list[n++] = (x509_alt_name){.kind = X509_ALT_DNS, .dns = req->name};
    *dns_bytes = strlen(req->name);
    for (size_t i = 0; i < req->extra_count; i++) {
        bool seen = false;
        for (size_t j = 0; j < n && !seen; j++) {
            seen = same_alt_name(&list[j], &req->extra_names[i]);
        }
        if (!seen) {
            list[n++] = req->extra_names[i];
            *dns_bytes += req->extra_names[i].kind == X509_ALT_DNS ? strlen(req->extra_names[i].dns)
                                                                   : req->extra_names[i].ip_len;
        }
    }
    *names = list;
    *count = n;
    return DUET_OK;
}

static duet_code describe_node(cert_job *job, const x509_alt_name *names, size_t count,
                               duet_status *st)
{
    int ret = mbedtls_x509write_crt_set_basic_constraints(&job->writer, 0, -1);
    if (ret == 0) {
        ret = mbedtls_x509write_crt_set_key_usage(&job->writer, MBEDTLS_X509_KU_DIGITAL_SIGNATURE |
                                                                    MBEDTLS_X509_KU_KEY_AGREEMENT);
    }
    if (ret != 0) {
        return mbed_failure(st, DUET_INTERNAL, ret, "cannot describe the node certificate");
    }
    static const x509_oid tls_both_ways[] = {
        {MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)},
        {MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)},
    };
    duet_code code = x509_ext_set_extended_key_usage(&job->writer, tls_both_ways, 2, st);
    if (code != DUET_OK) {
        return code;
    }
    return x509_ext_set_subject_alt_names(&job->writer, names, count, st);
}

static bool ends_after(time_t t, const mbedtls_x509_time *limit)
{
    struct tm tm = {.tm_year = limit->year - 1900,
                    .tm_mon = limit->mon - 1,
                    .tm_mday = limit->day,
                    .tm_hour = limit->hour,
                    .tm_min = limit->min,
                    .tm_sec = limit->sec};
    return t > timegm(&tm);
}

duet_code certgen_issue_node(const certgen_node_request *req, const char *ca_cert_path,
                             const char *ca_key_path, certgen_output *out, duet_status *st)
{
    memset(out, 0, sizeof *out);
    loaded_ca ca;
    mbedtls_x509_crt_init(&ca.cert);
    mbedtls_pk_init(&ca.key);
    cert_job job;
    job_init(&job);
    x509_alt_name *names = NULL;
    size_t count = 0, name_bytes = 0;

    duet_code code = load_ca(&ca, ca_cert_path, ca_key_path, st);
    if (code == DUET_OK) {
        code = node_alt_names(req, &names, &count, &name_bytes, st);
    }
    if (code == DUET_OK) {
        char subject[8 + CERTS_DNS_NAME_MAX];
        snprintf(subject, sizeof subject, "CN=%s", req->name);
        code = job_start(&job, subject, req->valid, st);
    }
    if (code == DUET_OK) {
        mbedtls_x509write_crt_set_issuer_key(&job.writer, &ca.key);
        int ret = mbedtls_x509write_crt_set_issuer_name(&job.writer, ca.subject);
        if (ret != 0) {
            char what[WHAT_MAX];
            snprintf(what, sizeof what, "cannot use the CA's subject '%s' as issuer", ca.subject);
            code = mbed_failure(st, DUET_FAILED_PRECONDITION, ret, what);
        }
    }
    if (code == DUET_OK) {
        code = describe_node(&job, names, count, st);
    }
    if (code == DUET_OK) {
        /* PEM is 4/3 of DER plus line breaks; each name adds its bytes and a few octets. */
        size_t cap = CERT_PEM_BASE + 2 * (name_bytes + 8 * count);
        code = job_finish(&job, cap, &ca.cert, out, st);
    }
    if (code == DUET_OK) {
        snprintf(out->issuer, sizeof out->issuer, "%s", ca.subject);
        out->outlives_issuer = ends_after(req->valid.not_after, &ca.cert.valid_to);
    } else {
        certgen_output_free(out);
    }
    free(names);
    job_free(&job);
    mbedtls_pk_free(&ca.key);
    mbedtls_x509_crt_free(&ca.cert);
    return code;
}
