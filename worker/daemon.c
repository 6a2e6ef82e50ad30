#include "daemon.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli_number.h"
#include "log.h"
#include "node_setup.h"
#include "rpc.h"
#include "service.h"
#include "worker_config.h"

typedef struct {
    const char *config;
    const char *model;
    const char *listen;
    const char *certs;
    const char *name;
    bool insecure;
    long threads; /* -1: not given */
    long context;
    long kv_mib;
    double memory_factor; /* < 0: not given */
    bool mlock;
} daemon_opts;

void duet_worker_daemon_usage(FILE *f)
{
    fprintf(f, "usage: duet-worker [-c conf/worker.yaml] [-m MODEL.gguf] [options]\n"
               "\n"
               "Serves a GGUF model to duet gateways over RPC (mutual TLS by default) until\n"
               "SIGINT or SIGTERM. Flags override the config file; without -c the defaults\n"
               "apply (conf/worker.yaml documents every key).\n"
               "\n"
               "  -c, --config FILE      the YAML configuration\n"
               "  -m, --model FILE       the GGUF model (model.path)\n"
               "  --listen URL           address to serve, e.g. tls+tcp://0.0.0.0:7700 (listen)\n"
               "  -t, --threads N        compute threads, 0 = one per core (model.threads)\n"
               "  --ctx N                positions per sequence, 0 = the model's (model.context)\n"
               "  --kv-mib N             KV cache budget in MiB (kv_cache.budget_mib)\n"
               "  --memory-factor F      refuse unless file x F + KV budget fits in memory,\n"
               "                         0 = no check (model.memory_factor)\n"
               "  --mlock                lock the weights in RAM (model.mlock)\n"
               "  --certs DIR --name NAME\n"
               "                         use DIR/ca.crt, DIR/NAME.crt, DIR/NAME.key (duet-certs)\n"
               "  --insecure             allow plain tcp:// and ipc:// (tls.insecure)\n"
               "  -h, --help             this text\n"
               "\n"
               "One-shot mode (-p, --prompt-ids, --tokenize) runs a prompt and exits: see\n"
               "duet-worker -p x --help.\n");
}

static int parse(int argc, char **argv, daemon_opts *o)
{
    enum { O_LISTEN = 256, O_CTX, O_CERTS, O_NAME, O_INSECURE, O_KV, O_MEMF, O_MLOCK };
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"model", required_argument, NULL, 'm'},
                                             {"listen", required_argument, NULL, O_LISTEN},
                                             {"threads", required_argument, NULL, 't'},
                                             {"ctx", required_argument, NULL, O_CTX},
                                             {"certs", required_argument, NULL, O_CERTS},
                                             {"name", required_argument, NULL, O_NAME},
                                             {"insecure", no_argument, NULL, O_INSECURE},
                                             {"kv-mib", required_argument, NULL, O_KV},
                                             {"memory-factor", required_argument, NULL, O_MEMF},
                                             {"mlock", no_argument, NULL, O_MLOCK},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    *o = (daemon_opts){.threads = -1, .context = -1, .kv_mib = -1, .memory_factor = -1};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:m:t:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            o->config = optarg;
            break;
        case 'm':
            o->model = optarg;
            break;
        case O_LISTEN:
            o->listen = optarg;
            break;
        case 't':
            if (!duet_parse_long(optarg, 0, 1024, &o->threads)) {
                fprintf(stderr, "duet-worker: -t wants a number 0..1024, not \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_CTX:
            if (!duet_parse_long(optarg, 0, 1 << 20, &o->context)) {
                fprintf(stderr, "duet-worker: --ctx wants a number 0..1048576, not \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case O_CERTS:
            o->certs = optarg;
            break;
        case O_NAME:
            o->name = optarg;
            break;
        case O_INSECURE:
            o->insecure = true;
            break;
        case O_KV:
            if (!duet_parse_long(optarg, 1, 1 << 20, &o->kv_mib)) {
                fprintf(stderr, "duet-worker: --kv-mib wants a number 1..1048576, not \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case O_MEMF: {
            float f;
            if (!duet_parse_float(optarg, &f) || f < 0 || f > 100) {
                fprintf(stderr, "duet-worker: --memory-factor wants a number 0..100, not \"%s\"\n",
                        optarg);
                return 2;
            }
            o->memory_factor = f;
            break;
        }
        case O_MLOCK:
            o->mlock = true;
            break;
        case 'h':
            duet_worker_daemon_usage(stdout);
            return 1;
        default:
            duet_worker_daemon_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "duet-worker: unexpected argument \"%s\" (--help for usage)\n",
                argv[optind]);
        return 2;
    }
    return 0;
}

static bool replace(char **field, const char *value)
{
    if (!value) {
        return true;
    }
    char *copy = strdup(value);
    if (!copy) {
        return false;
    }
    free(*field);
    *field = copy;
    return true;
}

/* The config file (or the defaults) with the flags applied. */
static int load_config(const daemon_opts *o, duet_worker_config *cfg)
{
    duet_status st;
    if (o->config) {
        if (duet_worker_config_load(o->config, cfg, &st) != DUET_OK) {
            duet_log_error("%s", st.message);
            return 2;
        }
    } else {
        duet_worker_config_defaults(cfg);
    }
    duet_log_set_level((duet_log_level)cfg->log.level);
    if (!replace(&cfg->listen, o->listen) || !replace(&cfg->model.path, o->model)) {
        duet_log_error("out of memory");
        duet_worker_config_free(cfg);
        return 1;
    }
    if (o->threads >= 0) {
        cfg->model.threads = (uint32_t)o->threads;
    }
    if (o->context >= 0) {
        cfg->model.context = (uint32_t)o->context;
    }
    if (o->kv_mib >= 0) {
        cfg->kv_cache.budget_mib = (uint32_t)o->kv_mib;
    }
    if (o->memory_factor >= 0) {
        cfg->model.memory_factor = o->memory_factor;
    }
    if (o->mlock) {
        cfg->model.mlock = true;
    }
    return 0;
}

static int serve(duet_worker_config *cfg, const daemon_opts *o)
{
    duet_status st;
    if (!cfg->model.path || !cfg->model.path[0]) {
        duet_log_error("no model: give -m FILE.gguf or model.path in the config");
        return 2;
    }
    duet_tls_paths paths;
    duet_tls_options tls;
    duet_rpc_limits limits;
    duet_rpc_limits_from_settings(&cfg->rpc, &limits);
    if (duet_tls_setup(&cfg->tls, o->certs, o->name, o->insecure, &paths, &tls, &st) != DUET_OK) {
        duet_log_error("%s", st.message);
        return 2;
    }
    duet_transport_kind kind;
    if (duet_transport_check(cfg->listen, tls.insecure, &kind, &st) != DUET_OK) {
        duet_log_error("%s", st.message);
        return 2;
    }

    /* signals go to sigwait below, not to whichever thread NNG happens to run */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    duet_worker_service_options so = {.model_path = cfg->model.path,
                                      .threads = cfg->model.threads,
                                      .context = cfg->model.context,
                                      .chat_template = cfg->model.chat_template,
                                      .max_batch = cfg->scheduler.max_batch,
                                      .max_running = cfg->scheduler.max_running,
                                      .max_waiting = cfg->scheduler.max_waiting,
                                      .requests_per_second = cfg->admission.requests_per_second,
                                      .burst = cfg->admission.burst,
                                      .kv_cache_mib = cfg->kv_cache.budget_mib,
                                      .kv_page_tokens = cfg->kv_cache.page_tokens,
                                      .kv_type = cfg->kv_cache.type,
                                      .load_rate_bytes_per_s =
                                          (uint64_t)(cfg->model.load_rate_mib * 1048576.0),
                                      .memory_factor = cfg->model.memory_factor,
                                      .mlock = cfg->model.mlock,
                                      .progress = stderr};
    duet_worker_service *svc = NULL;
    if (duet_worker_service_new(&so, &svc, &st) != DUET_OK) {
        duet_log_error("%s", st.message);
        return st.code == DUET_INVALID_ARGUMENT ? 2 : 1;
    }
    int rc = 0;
    duet_rpc_server *srv = NULL;
    if (duet_rpc_server_new(&limits, &srv, &st) != DUET_OK ||
        duet_worker_service_register(svc, srv, &st) != DUET_OK ||
        duet_rpc_server_listen(srv, cfg->listen, &tls, &st) != DUET_OK) {
        duet_log_error("%s", st.message);
        rc = 1;
    } else {
        duet_log_info("serving %s (context %u) on %s (port %d)%s",
                      duet_worker_service_model_name(svc), duet_worker_service_context(svc),
                      cfg->listen, duet_rpc_server_port(srv),
                      kind == DUET_TRANSPORT_TLS ? " with mutual TLS" : "");
        int sig;
        sigwait(&stop, &sig);
        duet_log_info("%s: shutting down (running streams get %u ms to finish)", strsignal(sig),
                      cfg->scheduler.shutdown_grace_ms);
        uint32_t cut = duet_worker_service_stop(svc, cfg->scheduler.shutdown_grace_ms);
        if (cut) {
            duet_log_warn("%u streams cut off at the end of the grace period", cut);
        }
    }
    duet_rpc_server_free(srv);
    duet_worker_service_free(svc);
    return rc;
}

int duet_worker_daemon_main(int argc, char **argv)
{
    daemon_opts o;
    int rc = parse(argc, argv, &o);
    if (rc != 0) {
        return rc == 1 ? 0 : rc; /* 1 from parse: --help was printed */
    }
    duet_worker_config cfg;
    rc = load_config(&o, &cfg);
    if (rc != 0) {
        return rc;
    }
    rc = serve(&cfg, &o);
    duet_worker_config_free(&cfg);
    /* No nng_fini(): in NNG 1.5.2 it can race the reaper thread still closing a TLS stream
     * (seen as "panic: pthread_mutex_lock: Invalid argument" in tls_reap at exit). The
     * process ends here anyway; everything of ours is freed above. */
    return rc;
}
