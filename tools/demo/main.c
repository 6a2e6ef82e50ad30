/* duet-rpc-demo: the RPC layer end to end, with the shipped configuration files, before
 * the worker and gateway exist.
 *
 *   duet-rpc-demo serve -c conf/worker.yaml   a server with the worker's config: listen
 *                                              address, mutual TLS, RPC limits, admission
 *   duet-rpc-demo call -c conf/gateway.yaml TEXT
 *                                              dials the first worker like a gateway, makes
 *                                              a unary call and a streaming call */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>

#include "bucket.h"
#include "gateway_config.h"
#include "log.h"
#include "node_setup.h"
#include "rpc.h"
#include "stream_pump.h"
#include "timer.h"
#include "worker_config.h"

typedef struct {
    const char *config;
    const char *listen;      /* serve */
    const char *worker;      /* call */
    const char *worker_name; /* call */
    const char *certs;
    const char *name;
    bool insecure;
    const char *text;
} demo_opts;

static void usage(FILE *to)
{
    fprintf(
        to,
        "usage: duet-rpc-demo serve [-c conf/worker.yaml] [--listen URL] [--certs DIR --name "
        "NAME]\n"
        "                           [--insecure]\n"
        "       duet-rpc-demo call  [-c conf/gateway.yaml] [--worker URL] [--worker-name NAME]\n"
        "                           [--certs DIR --name NAME] [--insecure] [TEXT]\n"
        "\n"
        "Shows the RPC layer working with the shipped configuration files until the worker\n"
        "and gateway land. `serve` answers demo.v1/Echo (unary) and demo.v1/Count (a stream\n"
        "of ticks), behind the worker's admission bucket. `call` dials the first worker in\n"
        "the gateway's file and makes one call of each kind.\n"
        "\n"
        "  -c, --config FILE    YAML configuration (see conf/); flags override it\n"
        "  --listen URL         serve: address, e.g. tls+tcp://127.0.0.1:7700\n"
        "  --worker URL         call: the worker to dial (replaces the file's list)\n"
        "  --worker-name NAME   call: the name in that worker's certificate\n"
        "  --certs DIR --name NAME\n"
        "                       use DIR/ca.crt, DIR/NAME.crt, DIR/NAME.key (duet-certs)\n"
        "  --insecure           allow tcp:// and ipc:// (no TLS)\n");
}

static int parse_args(int argc, char **argv, demo_opts *o)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"listen", required_argument, NULL, 'l'},
                                             {"worker", required_argument, NULL, 'w'},
                                             {"worker-name", required_argument, NULL, 'W'},
                                             {"certs", required_argument, NULL, 'C'},
                                             {"name", required_argument, NULL, 'n'},
                                             {"insecure", no_argument, NULL, 'i'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            o->config = optarg;
            break;
        case 'l':
            o->listen = optarg;
            break;
        case 'w':
            o->worker = optarg;
            break;
        case 'W':
            o->worker_name = optarg;
            break;
        case 'C':
            o->certs = optarg;
            break;
        case 'n':
            o->name = optarg;
            break;
        case 'i':
            o->insecure = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        o->text = argv[optind++];
    }
    if (optind < argc) {
        fprintf(stderr, "duet-rpc-demo: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    if ((o->certs == NULL) != (o->name == NULL)) {
        fprintf(stderr, "duet-rpc-demo: --certs and --name go together\n");
        return 2;
    }
    return 0;
}

static void replace(char **field, const char *value)
{
    if (value) {
        free(*field);
        *field = strdup(value);
    }
}

/* Applies --certs/--name/--insecure over the file's tls section and resolves the paths. */
static int resolve_tls(duet_tls_settings *tls, const demo_opts *o, duet_tls_paths *paths,
                       duet_tls_options *out)
{
    duet_status st;
    if (duet_tls_setup(tls, o->certs, o->name, o->insecure, paths, out, &st) != DUET_OK) {
        duet_log_error("%s", st.message);
        return 1;
    }
    return 0;
}

/* ---- serve ---- */

typedef struct {
    duet_bucket *bucket;
    double rate, burst;
    demo_pump *pump;
} demo_server;

static bool admit(demo_server *d, duet_rpc_call *call)
{
    uint64_t retry_ms = 0;
    if (duet_bucket_take(d->bucket, 1, &retry_ms)) {
        return true;
    }
    duet_rpc_call_fail(call, DUET_RESOURCE_EXHAUSTED,
                       "over the admission limit (%.3g requests/s, burst %.0f); retry in %llu ms",
                       d->rate, d->burst, (unsigned long long)retry_ms);
    return false;
}

static void echo_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    if (admit(arg, call)) {
        duet_rpc_call_finish(call, req, len);
    }
}

static void count_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    demo_server *d = arg;
    if (!admit(d, call)) {
        return;
    }
    uint32_t n = 10;
    if (len == 4) {
        memcpy(&n, req, 4);
    }
    if (n > 100000) {
        duet_rpc_call_fail(call, DUET_INVALID_ARGUMENT, "at most 100000 ticks, not %u", n);
        return;
    }
    demo_pump_add(d->pump, call, n);
}

static int serve(const demo_opts *o)
{
    duet_worker_config cfg;
    duet_status st;
    if (o->config) {
        if (duet_worker_config_load(o->config, &cfg, &st) != DUET_OK) {
            duet_log_error("%s", st.message);
            return 1;
        }
    } else {
        duet_worker_config_defaults(&cfg);
    }
    duet_log_set_level((duet_log_level)cfg.log.level);
    replace(&cfg.listen, o->listen);
    duet_tls_paths paths;
    duet_tls_options tls;
    duet_rpc_limits limits;
    duet_rpc_limits_from_settings(&cfg.rpc, &limits);
    int rc = resolve_tls(&cfg.tls, o, &paths, &tls);
    if (rc != 0) {
        duet_worker_config_free(&cfg);
        return rc;
    }

    /* signals go to sigwait below, not to whichever thread NNG happens to run */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    demo_server d = {.rate = cfg.admission.requests_per_second, .burst = cfg.admission.burst};
    d.bucket = duet_bucket_new(d.rate, d.burst);
    d.pump = demo_pump_new(10);
    duet_rpc_server *srv = NULL;
    if (duet_rpc_server_new(&limits, &srv, &st) != DUET_OK ||
        duet_rpc_server_register(srv, "demo.v1/Echo", echo_handler, &d, &st) != DUET_OK ||
        duet_rpc_server_register(srv, "demo.v1/Count", count_handler, &d, &st) != DUET_OK ||
        duet_rpc_server_listen(srv, cfg.listen, &tls, &st) != DUET_OK) {
        duet_log_error("%s", st.message);
        rc = 1;
    } else {
        duet_log_info("serving demo.v1/Echo and demo.v1/Count on %s (port %d)%s", cfg.listen,
                      duet_rpc_server_port(srv), tls.insecure ? "" : " with mutual TLS");
        int sig;
        sigwait(&stop, &sig);
        duet_log_info("%s: shutting down", strsignal(sig));
    }
    demo_pump_stop(d.pump); /* ends its calls, so the server can drain */
    duet_rpc_server_free(srv);
    demo_pump_free(d.pump);
    duet_bucket_free(d.bucket);
    duet_worker_config_free(&cfg);
    return rc;
}

/* ---- call ---- */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    bool ended;
    duet_status status;
    uint64_t t0;
} tick_printer;

static void print_tick(void *arg, const uint8_t *msg, size_t len)
{
    tick_printer *p = arg;
    printf("  %.*s (+%.1f ms)\n", (int)len, (const char *)msg,
           (double)(duet_now_ns() - p->t0) / 1e6);
    fflush(stdout);
}

static void print_end(void *arg, const duet_status *st, const uint8_t *msg, size_t len)
{
    (void)msg;
    (void)len;
    tick_printer *p = arg;
    pthread_mutex_lock(&p->lock);
    p->status = *st;
    p->ended = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->lock);
}

static int call(const demo_opts *o)
{
    duet_gateway_config cfg;
    duet_status st;
    if (o->config) {
        if (duet_gateway_config_load(o->config, &cfg, &st) != DUET_OK) {
            duet_log_error("%s", st.message);
            return 1;
        }
    } else {
        duet_gateway_config_defaults(&cfg);
    }
    duet_log_set_level((duet_log_level)cfg.log.level);
    const char *url = o->worker ? o->worker : cfg.n_workers ? cfg.workers[0].url : NULL;
    const char *server_name = o->worker       ? o->worker_name
                              : cfg.n_workers ? cfg.workers[0].server_name
                                              : NULL;
    if (!url) {
        duet_log_error("no worker to call: give --worker URL or a config with workers");
        duet_gateway_config_free(&cfg);
        return 2;
    }
    duet_tls_paths paths;
    duet_tls_options tls;
    duet_rpc_limits limits;
    duet_rpc_limits_from_settings(&cfg.rpc, &limits);
    int rc = resolve_tls(&cfg.tls, o, &paths, &tls);
    tls.server_name = server_name;
    duet_rpc_client *client = NULL;
    if (rc == 0 &&
        (duet_rpc_client_new(url, &tls, &limits, &client, &st) != DUET_OK ||
         duet_rpc_client_wait_ready(client, limits.connect_timeout_ms, &st) != DUET_OK)) {
        duet_log_error("%s", st.message);
        rc = 1;
    }
    if (rc == 0) {
        const char *text = o->text ? o->text : "hello from the gateway side";
        uint8_t *resp;
        size_t len;
        uint64_t t0 = duet_now_ns();
        if (duet_rpc_call_unary(client, "demo.v1/Echo", text, strlen(text), 5000, &resp, &len,
                                &st) != DUET_OK) {
            duet_log_error("Echo: %s: %s", duet_code_name(st.code), st.message);
            rc = 1;
        } else {
            printf("connected to %s%s%s\n", url, server_name ? " as " : "",
                   server_name ? server_name : "");
            printf("Echo: \"%.*s\" (%.2f ms round trip)\n", (int)len, (const char *)resp,
                   (double)(duet_now_ns() - t0) / 1e6);
            free(resp);
        }
    }
    if (rc == 0) {
        tick_printer p = {.ended = false, .t0 = duet_now_ns()};
        pthread_mutex_init(&p.lock, NULL);
        pthread_cond_init(&p.cv, NULL);
        uint32_t n = 5;
        duet_rpc_stream_callbacks cb = {.on_message = print_tick, .on_end = print_end, .arg = &p};
        duet_rpc_stream *s;
        printf("Count (a server stream of %u ticks):\n", n);
        duet_rpc_call_stream(client, "demo.v1/Count", &n, sizeof n, 10000, NULL, 0, &cb, &s, NULL);
        pthread_mutex_lock(&p.lock);
        while (!p.ended) {
            pthread_cond_wait(&p.cv, &p.lock);
        }
        pthread_mutex_unlock(&p.lock);
        duet_rpc_stream_release(s);
        if (p.status.code != DUET_OK) {
            duet_log_error("Count: %s: %s", duet_code_name(p.status.code), p.status.message);
            rc = 1;
        } else {
            printf("stream complete\n");
        }
    }
    duet_rpc_client_free(client);
    duet_gateway_config_free(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    duet_log_set_tag("demo");
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    demo_opts o = {0};
    int rc = parse_args(argc - 1, argv + 1, &o);
    if (rc != 0) {
        return rc;
    }
    if (strcmp(argv[1], "serve") == 0) {
        return serve(&o);
    }
    if (strcmp(argv[1], "call") == 0) {
        return call(&o);
    }
    fprintf(stderr, "duet-rpc-demo: unknown command %s\n", argv[1]);
    usage(stderr);
    return 2;
}
