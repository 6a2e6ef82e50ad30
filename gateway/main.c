/* duet-gateway: the process people talk to. Reads conf/gateway.yaml (-c), applies the
 * flags, connects to the workers and serves the OpenAI-compatible API until SIGINT or
 * SIGTERM. */
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admission.h"
#include "api_auth.h"
#include "chat_api.h"
#include "chat_turn.h"
#include "gateway_config.h"
#include "http_server.h"
#include "log.h"
#include "node_setup.h"
#include "session_api.h"
#include "session_store.h"
#include "timer.h"
#include "web_page.h"
#include "worker_pool.h"

#define MAX_FLAG_WORKERS 16
#define MAX_FLAG_KEYS 16

typedef struct {
    const char *config, *http, *certs, *name, *db;
    bool insecure;
    const char *workers[MAX_FLAG_WORKERS], *worker_names[MAX_FLAG_WORKERS];
    size_t n_workers;
    const char *keys[MAX_FLAG_KEYS];
    size_t n_keys;
} gateway_opts;

static void usage(FILE *f)
{
    fprintf(f, "usage: duet-gateway [-c conf/gateway.yaml] [options]\n"
               "\n"
               "Serves an OpenAI-compatible HTTP API (POST /v1/chat/completions, GET /v1/models,\n"
               "/v1/sessions, GET /health, /metrics; docs/http-api.md) and a web chat page, keeps\n"
               "every conversation in a session on disk, and relays the work to duet-workers\n"
               "over mutual TLS, falling back to the next worker when one is down, overloaded\n"
               "or slow. Flags override the file; conf/gateway.yaml documents every key.\n"
               "\n"
               "  -c, --config FILE      the YAML configuration\n"
               "  --http HOST:PORT       where to serve HTTP (http.listen)\n"
               "  --worker URL           a worker, in order of preference; repeat for fallbacks\n"
               "                         (replaces the file's workers)\n"
               "  --worker-name NAME     the name in the certificate of the --worker before it\n"
               "  --certs DIR --name NAME\n"
               "                         use DIR/ca.crt, DIR/NAME.crt, DIR/NAME.key (duet-certs)\n"
               "  --insecure             allow plain tcp:// workers (tls.insecure)\n"
               "  --api-key KEY[:USER]   an API key and the user it signs in (default user:\n"
               "                         user1, user2, ...); repeat for more; adds to the file's\n"
               "  --db FILE              the SQLite file of the users' sessions (sessions.db,\n"
               "                         default duet-sessions.db)\n"
               "  -h, --help             this text\n");
}

static int parse(int argc, char **argv, gateway_opts *o)
{
    enum { O_HTTP = 256, O_WORKER, O_WORKER_NAME, O_CERTS, O_NAME, O_INSECURE, O_KEY, O_DB };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"http", required_argument, NULL, O_HTTP},
        {"worker", required_argument, NULL, O_WORKER},
        {"worker-name", required_argument, NULL, O_WORKER_NAME},
        {"certs", required_argument, NULL, O_CERTS},
        {"name", required_argument, NULL, O_NAME},
        {"insecure", no_argument, NULL, O_INSECURE},
        {"api-key", required_argument, NULL, O_KEY},
        {"db", required_argument, NULL, O_DB},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            o->config = optarg;
            break;
        case O_HTTP:
            o->http = optarg;
            break;
        case O_WORKER:
            if (o->n_workers == MAX_FLAG_WORKERS) {
                fprintf(stderr, "duet-gateway: at most %d --worker flags\n", MAX_FLAG_WORKERS);
                return 2;
            }
            o->workers[o->n_workers++] = optarg;
            break;
        case O_WORKER_NAME:
            if (o->n_workers == 0) {
                fprintf(stderr, "duet-gateway: --worker-name goes after its --worker\n");
                return 2;
            }
            o->worker_names[o->n_workers - 1] = optarg;
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
        case O_KEY:
            if (o->n_keys == MAX_FLAG_KEYS || !optarg[0]) {
                fprintf(stderr, "duet-gateway: at most %d non-empty --api-key flags\n",
                        MAX_FLAG_KEYS);
                return 2;
            }
            o->keys[o->n_keys++] = optarg;
            break;
        case O_DB:
            o->db = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "duet-gateway: unexpected argument \"%s\" (--help for usage)\n",
                argv[optind]);
        return 2;
    }
    return 0;
}

/* The file's workers and keys with the flags' applied (strings point into argv or cfg). */
typedef struct {
    duet_worker_endpoint workers[MAX_FLAG_WORKERS];
    duet_api_key keys[64 + MAX_FLAG_KEYS];
    char key_text[MAX_FLAG_KEYS][512];
    char user_text[MAX_FLAG_KEYS][64];
} merged;

static int merge(const gateway_opts *o, duet_gateway_config *cfg, merged *m,
                 const duet_worker_endpoint **workers, size_t *n_workers, const duet_api_key **keys,
                 size_t *n_keys)
{
    if (o->n_workers) {
        for (size_t i = 0; i < o->n_workers; i++) {
            m->workers[i] = (duet_worker_endpoint){.url = (char *)o->workers[i],
                                                   .server_name = (char *)o->worker_names[i]};
        }
        *workers = m->workers;
        *n_workers = o->n_workers;
    } else {
        *workers = cfg->workers;
        *n_workers = cfg->n_workers;
    }
    if (*n_workers == 0) {
        duet_log_error("no workers: give --worker URL or workers in the config");
        return 2;
    }
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_api_keys && n < 64; i++) {
        m->keys[n++] = cfg->api_keys[i];
    }
    for (size_t i = 0; i < o->n_keys; i++) {
        snprintf(m->key_text[i], sizeof m->key_text[i], "%s", o->keys[i]);
        char *colon = strrchr(m->key_text[i], ':');
        if (colon && colon[1]) {
            *colon = '\0';
            snprintf(m->user_text[i], sizeof m->user_text[i], "%s", colon + 1);
        } else {
            snprintf(m->user_text[i], sizeof m->user_text[i], "user%zu", i + 1);
        }
        m->keys[n++] = (duet_api_key){.key = m->key_text[i], .user = m->user_text[i]};
    }
    for (size_t i = 0; i < n; i++) {
        if (strstr(m->keys[i].key, "change-me")) {
            duet_log_warn("API key of user %s is the example from conf/gateway.yaml: anyone who "
                          "has read the file can use it; set a random one",
                          m->keys[i].user);
        }
    }
    if (n == 0) {
        duet_log_warn("no API keys: every API request will be refused (give --api-key or "
                      "api_keys in the config)");
    }
    *keys = m->keys;
    *n_keys = n;
    return 0;
}

static int serve(const gateway_opts *o, duet_gateway_config *cfg)
{
    merged m;
    const duet_worker_endpoint *workers;
    const duet_api_key *keys;
    size_t n_workers, n_keys;
    int rc = merge(o, cfg, &m, &workers, &n_workers, &keys, &n_keys);
    if (rc != 0) {
        return rc;
    }
    duet_status st;
    duet_tls_paths paths;
    duet_tls_options tls;
    if (duet_tls_setup(&cfg->tls, o->certs, o->name, o->insecure, &paths, &tls, &st) != DUET_OK) {
        duet_log_error("%s", st.message);
        return 2;
    }
    duet_rpc_limits limits;
    duet_rpc_limits_from_settings(&cfg->rpc, &limits);
    const duet_routing_settings *rt = &cfg->routing;
    duet_worker_pool_options po = {.health_interval_ms = rt->health_interval_ms,
                                   .health_timeout_ms = rt->health_timeout_ms,
                                   .breaker = {.failure_threshold = rt->breaker_failures,
                                               .cooldown_ms = rt->breaker_cooldown_ms}};
    const duet_limits_settings *l = &cfg->limits;
    duet_admission_limits per_user = {l->user_requests_per_second, l->user_request_burst,
                                      l->user_tokens_per_second, l->user_token_burst};
    duet_admission_limits overall = {l->requests_per_second, l->request_burst, l->tokens_per_second,
                                     l->token_burst};

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    duet_worker_pool *pool = NULL;
    duet_timer *timer = duet_timer_new();
    duet_admission *adm = NULL;
    duet_http_server *http = NULL;
    duet_chat_api *api = NULL;
    duet_api_keys *api_keys = NULL;
    duet_session_store *store = NULL;
    duet_chat_turns *turns = NULL;
    duet_session_api *sessions = NULL;
    const char *listen = o->http ? o->http : cfg->http.listen;
    const char *db = o->db ? o->db : cfg->sessions.db;
    if (!timer || duet_api_keys_new(keys, n_keys, &api_keys, &st) != DUET_OK ||
        duet_session_store_open(db, &store, &st) != DUET_OK ||
        duet_chat_turns_new(store, &turns, &st) != DUET_OK ||
        duet_worker_pool_new(workers, n_workers, &tls, &limits, &po, &pool, &st) != DUET_OK ||
        duet_admission_new(&per_user, &overall, NULL, NULL, &adm, &st) != DUET_OK ||
        duet_http_server_new(listen, cfg->http.cert, cfg->http.key, cfg->http.max_body_bytes, &http,
                             &st) != DUET_OK) {
        if (!timer) {
            duet_status_set(&st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        }
        duet_log_error("%s", st.message);
        rc = st.code == DUET_INVALID_ARGUMENT ? 2 : 1;
    } else {
        duet_chat_api_options ao = {.pool = pool,
                                    .timer = timer,
                                    .admission = adm,
                                    .keys = api_keys,
                                    .turns = turns,
                                    .trim_policy = (duet_trim_policy)cfg->sessions.trim_policy,
                                    .summary_tokens = cfg->sessions.summary_tokens,
                                    .answer_tokens = rt->answer_tokens,
                                    .last_resort_message = rt->last_resort_message,
                                    .relay = {.first_token_timeout_ms = rt->first_token_timeout_ms,
                                              .timeout_ms = rt->request_timeout_ms}};
        if (duet_chat_api_new(http, &ao, &api, &st) != DUET_OK ||
            duet_web_page_register(http, &st) != DUET_OK ||
            duet_session_api_new(http, api_keys, store, &sessions, &st) != DUET_OK ||
            duet_http_server_start(http, &st) != DUET_OK) {
            duet_log_error("%s", st.message);
            rc = 1;
        } else {
            duet_log_info("serving the API on %s://%s (port %d), %zu worker%s, %zu API key%s, "
                          "sessions in %s",
                          cfg->http.cert ? "https" : "http", listen, duet_http_server_port(http),
                          n_workers, n_workers == 1 ? "" : "s", n_keys, n_keys == 1 ? "" : "s", db);
            int sig;
            sigwait(&stop, &sig);
            duet_log_info("%s: shutting down", strsignal(sig));
        }
    }
    bool drained = true;
    if (api) {
        /* answers under way finish (for up to 10 s) while new ones are refused */
        duet_chat_api_drain(api);
        for (int i = 0; i < 1000 && duet_chat_api_active(api) > 0; i++) {
            usleep(10 * 1000);
        }
        drained = duet_chat_api_active(api) == 0;
    }
    if (!drained) {
        /* they hold the server, the pool and the timer: leave them to the process exit */
        duet_log_warn("%u answers still under way after 10 s: exiting without them",
                      duet_chat_api_active(api));
        return rc;
    }
    duet_http_server_free(http);
    duet_session_api_free(sessions);
    duet_chat_api_free(api);
    duet_worker_pool_free(pool);
    duet_admission_free(adm);
    duet_timer_free(timer);
    duet_chat_turns_free(turns);
    duet_session_store_close(store);
    duet_api_keys_free(api_keys);
    return rc;
}

int main(int argc, char **argv)
{
    duet_log_set_tag("gateway");
    gateway_opts o;
    int rc = parse(argc, argv, &o);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    duet_gateway_config cfg;
    duet_status st;
    if (o.config) {
        if (duet_gateway_config_load(o.config, &cfg, &st) != DUET_OK) {
            duet_log_error("%s", st.message);
            return 2;
        }
    } else {
        duet_gateway_config_defaults(&cfg);
    }
    duet_log_set_level((duet_log_level)cfg.log.level);
    signal(SIGPIPE, SIG_IGN); /* a client that hangs up is seen as a failed write */
    /* NNG's task threads would each get a malloc arena of their own: the gateway's work is
     * small, its memory should be too */
    mallopt(M_ARENA_MAX, 2);
    rc = serve(&o, &cfg);
    duet_gateway_config_free(&cfg);
    return rc;
}
