/* Mutual TLS: clients without a certificate, with one from another CA or an expired one
 * cannot complete a call; a dialer refuses a listener whose certificate lacks the expected
 * name; rejected handshakes are counted; good clients are served throughout. All
 * certificates come from duet-certs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "frame.h"
#include "rpc.h"
#include "support.h"

static char lab[256], rogue[256];
static duet_rpc_server *server;
static duet_rpc_client *good;
static char url[64];

static void path(char *out, const char *dir, const char *file)
{
    snprintf(out, 512, "%s/%s", dir, file);
}

static void echo_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    duet_rpc_call_finish(call, req, len);
}

static duet_code client_for(const char *dir, const char *name, const char *ca_dir,
                            const char *server_name, duet_rpc_client **out, duet_status *st)
{
    char ca[512], crt[512], key[512], file[300];
    path(ca, ca_dir, "ca.crt");
    snprintf(file, sizeof file, "%s.crt", name);
    path(crt, dir, file);
    snprintf(file, sizeof file, "%s.key", name);
    path(key, dir, file);
    duet_tls_options tls = {
        .ca_file = ca, .cert_file = crt, .key_file = key, .server_name = server_name};
    duet_rpc_limits limits;
    duet_rpc_limits_default(&limits);
    limits.connect_timeout_ms = 3000;
    return duet_rpc_client_new(url, &tls, &limits, out, st);
}

static void setup(void)
{
    test_make_temp_dir(lab, sizeof lab, "duet-sec");
    test_make_temp_dir(rogue, sizeof rogue, "duet-rogue");
    const char *names[] = {"worker-1", "gateway-1", NULL};
    test_make_lab(lab, names);
    const char *rogue_names[] = {"gateway-1", NULL};
    test_make_lab(rogue, rogue_names);
    const char *expired[] = {"duet-certs",  "issue",        lab,
                             "gateway-old", "--not-before", "2020-01-01",
                             "--not-after", "2020-12-31",   NULL};
    cr_assert_eq(test_run_tool(expired), 0);

    duet_status st;
    cr_assert_eq(duet_rpc_server_new(NULL, &server, &st), DUET_OK);
    duet_rpc_server_register(server, "test/Echo", echo_handler, NULL, NULL);
    char ca[512], crt[512], key[512];
    path(ca, lab, "ca.crt");
    path(crt, lab, "worker-1.crt");
    path(key, lab, "worker-1.key");
    duet_tls_options tls = {.ca_file = ca, .cert_file = crt, .key_file = key};
    cr_assert_eq(duet_rpc_server_listen(server, "tls+tcp://127.0.0.1:0", &tls, &st), DUET_OK, "%s",
                 st.message);
    snprintf(url, sizeof url, "tls+tcp://127.0.0.1:%d", duet_rpc_server_port(server));
    cr_assert_eq(client_for(lab, "gateway-1", lab, "worker-1", &good, &st), DUET_OK, "%s",
                 st.message);
    cr_assert_eq(duet_rpc_client_wait_ready(good, 10000, &st), DUET_OK, "%s", st.message);
}

static void teardown(void)
{
    duet_rpc_client_free(good);
    duet_rpc_server_free(server);
    test_remove_dir(lab);
    test_remove_dir(rogue);
}

TestSuite(security, .init = setup, .fini = teardown);

static void assert_good_client_served(void)
{
    uint8_t *resp = NULL;
    size_t len = 0;
    duet_status st;
    cr_assert_eq(duet_rpc_call_unary(good, "test/Echo", "ok", 2, 5000, &resp, &len, &st), DUET_OK,
                 "%s", st.message);
    free(resp);
}

static uint64_t rejected_after(uint64_t at_least)
{
    duet_rpc_server_stats stats;
    for (int i = 0; i < 500; i++) {
        duet_rpc_server_stats_get(server, &stats);
        if (stats.handshakes_rejected >= at_least) {
            break;
        }
        usleep(10000);
    }
    return stats.handshakes_rejected;
}

/* A client that is refused: it never becomes ready, and a call fails UNAVAILABLE. */
static void assert_refused(duet_rpc_client *c, const char *why)
{
    duet_status st;
    cr_assert_neq(duet_rpc_client_wait_ready(c, 3000, &st), DUET_OK, "%s: connected", why);
    uint8_t *resp = NULL;
    size_t len = 0;
    cr_assert_neq(duet_rpc_call_unary(c, "test/Echo", "x", 1, 1000, &resp, &len, &st), DUET_OK,
                  "%s: a call went through", why);
}

Test(security, client_with_a_certificate_from_another_ca)
{
    duet_rpc_client *c;
    duet_status st;
    cr_assert_eq(client_for(rogue, "gateway-1", lab, "worker-1", &c, &st), DUET_OK);
    assert_refused(c, "rogue CA");
    duet_rpc_client_free(c);
    cr_assert_geq(rejected_after(1), 1);
    assert_good_client_served();
}

/* Dials with NNG directly, presenting cert/key (or none when NULL), sends a hello and waits
 * for any answer; returns the NNG result (0: the server talked to us). Our own client
 * refuses to present a missing or expired certificate, so the server's side of those cases
 * needs a raw peer. */
static int raw_tls_attempt(const char *cert_file, const char *key_file)
{
    char ca[512];
    path(ca, lab, "ca.crt");
    char *ca_pem = test_read_file(ca, NULL);
    nng_tls_config *cfg;
    cr_assert_eq(nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT), 0);
    nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
    nng_tls_config_ca_chain(cfg, ca_pem, NULL);
    nng_tls_config_server_name(cfg, "worker-1");
    free(ca_pem);
    if (cert_file) {
        char *cert = test_read_file(cert_file, NULL);
        char *key = test_read_file(key_file, NULL);
        cr_assert_eq(nng_tls_config_own_cert(cfg, cert, key, NULL), 0);
        free(cert);
        free(key);
    }
    nng_stream_dialer *d;
    cr_assert_eq(nng_stream_dialer_alloc(&d, url), 0);
    nng_stream_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
    nng_tls_config_free(cfg);
    nng_aio *aio;
    nng_aio_alloc(&aio, NULL, NULL);
    nng_aio_set_timeout(aio, 5000);
    nng_stream_dialer_dial(d, aio);
    nng_aio_wait(aio);
    int rv = nng_aio_result(aio);
    if (rv == 0) {
        nng_stream *s = nng_aio_get_output(aio, 0);
        Duet__V1__Envelope env = DUET__V1__ENVELOPE__INIT;
        env.kind = DUET__V1__FRAME_KIND__FRAME_KIND_REQUEST;
        env.method = "duet/hello";
        duet_frame *frame;
        duet_frame_encode(&env, NULL, 0, 0, 1024, &frame, NULL);
        nng_iov iov = {.iov_buf = frame->bytes, .iov_len = frame->len};
        nng_aio_set_iov(aio, 1, &iov);
        nng_stream_send(s, aio);
        nng_aio_wait(aio);
        rv = nng_aio_result(aio);
        if (rv == 0) {
            uint8_t buf[64];
            nng_iov riov = {.iov_buf = buf, .iov_len = sizeof buf};
            nng_aio_set_iov(aio, 1, &riov);
            nng_stream_recv(s, aio);
            nng_aio_wait(aio);
            rv = nng_aio_result(aio);
        }
        free(frame);
        nng_stream_free(s);
    }
    nng_aio_free(aio);
    nng_stream_dialer_free(d);
    return rv;
}

Test(security, raw_peer_sanity_check)
{
    /* the raw peer with a good certificate is answered: the refusals below are real */
    char crt[512], key[512];
    path(crt, lab, "gateway-1.crt");
    path(key, lab, "gateway-1.key");
    cr_assert_eq(raw_tls_attempt(crt, key), 0);
}

Test(security, client_with_an_expired_certificate)
{
    char crt[512], key[512];
    path(crt, lab, "gateway-old.crt");
    path(key, lab, "gateway-old.key");
    cr_assert_neq(raw_tls_attempt(crt, key), 0, "an expired certificate was accepted");
    cr_assert_geq(rejected_after(1), 1);
    assert_good_client_served();

    /* our own client refuses to present it at all, and says why */
    duet_rpc_client *c;
    duet_status st;
    cr_assert_eq(client_for(lab, "gateway-old", lab, "worker-1", &c, &st), DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "expired"), "%s", st.message);
}

Test(security, client_without_a_certificate)
{
    cr_assert_neq(raw_tls_attempt(NULL, NULL), 0, "a client without a certificate got an answer");
    cr_assert_geq(rejected_after(1), 1);
    assert_good_client_served();
}

Test(security, dialer_refuses_a_listener_with_the_wrong_name)
{
    duet_rpc_client *c;
    duet_status st;
    /* the worker's certificate says worker-1; we expect worker-2 */
    cr_assert_eq(client_for(lab, "gateway-1", lab, "worker-2", &c, &st), DUET_OK);
    cr_assert_neq(duet_rpc_client_wait_ready(c, 3000, &st), DUET_OK);
    cr_assert(strstr(st.message, "TLS"), "the error should say TLS failed: %s", st.message);
    duet_rpc_client_free(c);
    assert_good_client_served();
}

Test(security, every_rejection_is_counted)
{
    duet_rpc_client *a;
    duet_status st;
    char crt[512], key[512];
    path(crt, lab, "gateway-old.crt");
    path(key, lab, "gateway-old.key");
    cr_assert_eq(client_for(rogue, "gateway-1", lab, "worker-1", &a, &st), DUET_OK);
    assert_refused(a, "rogue CA");
    duet_rpc_client_free(a);
    uint64_t before = rejected_after(1);
    cr_assert_neq(raw_tls_attempt(NULL, NULL), 0);
    cr_assert_neq(raw_tls_attempt(crt, key), 0);
    cr_assert_geq(rejected_after(before + 2), before + 2);
    duet_rpc_server_stats stats;
    duet_rpc_server_stats_get(server, &stats);
    cr_assert_eq(stats.calls_open, 0);
    cr_assert_eq(stats.connections_open, 1, "only the good client is still connected");
    assert_good_client_served();
}

Test(security, plain_transports_need_insecure)
{
    duet_rpc_server *s;
    duet_status st;
    cr_assert_eq(duet_rpc_server_new(NULL, &s, &st), DUET_OK);
    duet_tls_options secure = {0};
    cr_assert_eq(duet_rpc_server_listen(s, "tcp://127.0.0.1:0", &secure, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "insecure"), "%s", st.message);
    cr_assert_eq(duet_rpc_server_listen(s, "ipc:///tmp/duet-test.sock", &secure, &st),
                 DUET_INVALID_ARGUMENT);
    duet_rpc_server_free(s);

    duet_rpc_client *c;
    cr_assert_eq(duet_rpc_client_new("tcp://127.0.0.1:1", &secure, NULL, &c, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert_eq(duet_rpc_client_new("http://127.0.0.1:1", &secure, NULL, &c, &st),
                 DUET_INVALID_ARGUMENT);
}

Test(security, missing_or_mismatched_files_are_named)
{
    duet_rpc_server *s;
    duet_status st;
    cr_assert_eq(duet_rpc_server_new(NULL, &s, &st), DUET_OK);
    char ca[512], crt[512], key[512];
    path(ca, lab, "ca.crt");
    path(crt, lab, "worker-1.crt");
    path(key, lab, "nobody.key");
    duet_tls_options tls = {.ca_file = ca, .cert_file = crt, .key_file = key};
    cr_assert_eq(duet_rpc_server_listen(s, "tls+tcp://127.0.0.1:0", &tls, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "nobody.key"), "%s", st.message);

    /* a key that is not the certificate's */
    path(key, lab, "gateway-1.key");
    cr_assert_eq(duet_rpc_server_listen(s, "tls+tcp://127.0.0.1:0", &tls, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "worker-1.crt"), "%s", st.message);
    duet_rpc_server_free(s);

    /* a dialer without a server name is refused before it dials */
    path(crt, lab, "gateway-1.crt");
    duet_tls_options no_name = {.ca_file = ca, .cert_file = crt, .key_file = key};
    duet_rpc_client *c;
    cr_assert_eq(duet_rpc_client_new(url, &no_name, NULL, &c, &st), DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "server name"), "%s", st.message);
}
