#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "log.h"

#define TLS_PEM_MAX (1u << 20) /* a certificate chain is a few KiB; refuse absurd files */

duet_code duet_transport_check(const char *url, bool insecure, duet_transport_kind *kind,
                               duet_status *st)
{
    static const char *const plain[] = {"tcp://", "tcp4://", "tcp6://", "ipc://", "abstract://"};
    if (strncmp(url, "tls+tcp://", 10) == 0 || strncmp(url, "tls+tcp4://", 11) == 0 ||
        strncmp(url, "tls+tcp6://", 11) == 0) {
        *kind = DUET_TRANSPORT_TLS;
        return DUET_OK;
    }
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        if (strncmp(url, plain[i], strlen(plain[i])) == 0) {
            if (!insecure) {
                return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                       "%s is unencrypted and unauthenticated; use tls+tcp:// or "
                                       "set `insecure: true` (tls.insecure) to allow it",
                                       url);
            }
            *kind = DUET_TRANSPORT_PLAIN;
            return DUET_OK;
        }
    }
    return duet_status_set(st, DUET_INVALID_ARGUMENT,
                           "unsupported address %s: expected tls+tcp://HOST:PORT (or tcp://, "
                           "ipc:// with insecure: true)",
                           url);
}

char *duet_tls_read_pem(const char *what, const char *path, duet_status *st)
{
    if (!path || !*path) {
        duet_status_set(st, DUET_INVALID_ARGUMENT, "no %s file given", what);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        int err = errno;
        duet_status_set(st, DUET_INVALID_ARGUMENT, "cannot open %s file %s: %s%s", what, path,
                        strerror(err),
                        err == ENOENT ? " (make certificates with `duet-certs init DIR` and "
                                        "`duet-certs issue DIR NAME`)"
                                      : "");
        return NULL;
    }
    char *buf = malloc(TLS_PEM_MAX + 1);
    size_t n = buf ? fread(buf, 1, TLS_PEM_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n > TLS_PEM_MAX) {
        free(buf);
        duet_status_set(st, DUET_INVALID_ARGUMENT, "%s file %s is too large to be PEM", what, path);
        return NULL;
    }
    buf[n] = '\0';
    if (!strstr(buf, "-----BEGIN ")) {
        free(buf);
        duet_status_set(st, DUET_INVALID_ARGUMENT, "%s file %s is not PEM", what, path);
        return NULL;
    }
    return buf;
}

static void warn_if_key_readable(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && (sb.st_mode & 077)) {
        duet_log_warn("private key %s is readable by other users (mode %03o); chmod 600 it", path,
                      (unsigned)(sb.st_mode & 0777));
    }
}

/* NNG hands the pair to mbedTLS without checking it belongs together; a mismatch would only
 * show as failed handshakes on the peer's side, so check here and name the files. An expired
 * certificate is refused by every peer: say so now, too. */
static duet_code check_own_cert(const duet_tls_options *opts, const char *cert_pem,
                                const char *key_pem, duet_status *st)
{
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    mbedtls_x509_crt_init(&crt);
    mbedtls_pk_init(&key);
    duet_code code = DUET_OK;
    if (mbedtls_x509_crt_parse(&crt, (const unsigned char *)cert_pem, strlen(cert_pem) + 1) != 0) {
        code = duet_status_set(st, DUET_INVALID_ARGUMENT, "certificate %s cannot be parsed",
                               opts->cert_file);
    } else if (mbedtls_pk_parse_key(&key, (const unsigned char *)key_pem, strlen(key_pem) + 1, NULL,
                                    0) != 0) {
        code = duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "private key %s cannot be parsed (encrypted keys are not supported)",
                               opts->key_file);
    } else if (mbedtls_pk_check_pair(&crt.pk, &key) != 0) {
        code = duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "private key %s does not belong to certificate %s", opts->key_file,
                               opts->cert_file);
    } else if (mbedtls_x509_time_is_past(&crt.valid_to)) {
        code =
            duet_status_set(st, DUET_INVALID_ARGUMENT,
                            "certificate %s expired on %04d-%02d-%02d; issue a new one with "
                            "duet-certs issue",
                            opts->cert_file, crt.valid_to.year, crt.valid_to.mon, crt.valid_to.day);
    } else if (mbedtls_x509_time_is_future(&crt.valid_from)) {
        duet_log_warn("certificate %s is not valid before %04d-%02d-%02d: peers will refuse it "
                      "until then (is the clock right?)",
                      opts->cert_file, crt.valid_from.year, crt.valid_from.mon, crt.valid_from.day);
    }
    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&crt);
    return code;
}

duet_code duet_tls_config_new(bool server, const duet_tls_options *opts, nng_tls_config **out,
                              duet_status *st)
{
    if (!server && (!opts->server_name || !*opts->server_name)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "no server name to check the listener's certificate against");
    }
    char *ca = duet_tls_read_pem("CA certificate", opts->ca_file, st);
    char *cert = ca ? duet_tls_read_pem("certificate", opts->cert_file, st) : NULL;
    char *key = cert ? duet_tls_read_pem("private key", opts->key_file, st) : NULL;
    if (!key) {
        free(ca);
        free(cert);
        return st ? st->code : DUET_INVALID_ARGUMENT;
    }
    warn_if_key_readable(opts->key_file);
    if (check_own_cert(opts, cert, key, st) != DUET_OK) {
        free(ca);
        free(cert);
        free(key);
        return st ? st->code : DUET_INVALID_ARGUMENT;
    }

    nng_tls_config *cfg = NULL;
    duet_code code = DUET_OK;
    int rv = nng_tls_config_alloc(&cfg, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT);
    if (rv != 0) {
        code = duet_status_set(st, DUET_INTERNAL, "TLS setup failed: %s", nng_strerror(rv));
    } else if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0) {
        code = duet_status_set(st, DUET_INTERNAL, "TLS auth mode: %s", nng_strerror(rv));
    } else if ((rv = nng_tls_config_ca_chain(cfg, ca, NULL)) != 0) {
        code = duet_status_set(st, DUET_INVALID_ARGUMENT, "CA certificate %s: %s", opts->ca_file,
                               nng_strerror(rv));
    } else if ((rv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0) {
        code = duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "certificate %s with key %s: %s (do they belong together?)",
                               opts->cert_file, opts->key_file, nng_strerror(rv));
    } else if (!server && (rv = nng_tls_config_server_name(cfg, opts->server_name)) != 0) {
        code = duet_status_set(st, DUET_INVALID_ARGUMENT, "server name %s: %s", opts->server_name,
                               nng_strerror(rv));
    }
    free(ca);
    free(cert);
    free(key);
    if (code != DUET_OK) {
        if (cfg) {
            nng_tls_config_free(cfg);
        }
        return code;
    }
    *out = cfg;
    return DUET_OK;
}
