#include "rpc_bench.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/nng.h>

#include "cli_number.h"
#include "log.h"
#include "node_config.h"
#include "rpc.h"
#include "stats.h"
#include "timer.h"

typedef struct {
    const char *certs_dir;
    const char *name;        /* our certificate in certs_dir (the client) */
    const char *server_cert; /* the server's certificate name in certs_dir */
    uint32_t calls;
    uint32_t warmup;
    uint32_t messages;
    uint32_t size;
    bool json;
    bool want_tls, want_tcp;
} rpc_bench_opts;

typedef struct {
    const char *transport;
    uint32_t calls;
    bench_latency unary;
    uint32_t messages;
    double seconds;
    double msgs_per_s;
    double mb_per_s;
} rpc_bench_result;

static void usage(FILE *to)
{
    fprintf(to, "usage: duet-bench rpc [options]\n"
                "\n"
                "Measures the RPC layer on loopback: round-trip latency of small unary calls and\n"
                "the throughput of one server stream, over tls+tcp (mutual TLS) and plain tcp.\n"
                "The server runs in a child process.\n"
                "\n"
                "  --transport tls|tcp|both  which transports to measure (default both)\n"
                "  --calls N         timed unary calls (default 20000)\n"
                "  --warmup N        unary calls before timing (default 1000)\n"
                "  --messages N      messages in the timed stream (default 200000)\n"
                "  --size BYTES      payload of each call and message (default 100)\n"
                "  --certs DIR       use this duet-certs folder (default: a temporary lab made\n"
                "                    with the duet-certs next to this program)\n"
                "  --name NAME       client certificate in DIR (default bench-client)\n"
                "  --server-name N   server certificate in DIR (default bench-server)\n"
                "  --json            print one JSON object instead of a table\n");
}

/* ---- the server side (child process: `duet-bench rpc-serve`) ---- */

static void echo_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    duet_rpc_call_finish(call, req, len);
}

typedef struct {
    duet_rpc_call *call;
    uint32_t count, size;
} stream_job;

static void *stream_sender(void *arg)
{
    stream_job *job = arg;
    uint8_t *msg = calloc(1, job->size ? job->size : 1);
    uint32_t i;
    duet_status st;
    for (i = 0; i < job->count; i++) {
        if (duet_rpc_call_send(job->call, msg, job->size, true, &st) != DUET_OK) {
            break;
        }
    }
    if (i == job->count) {
        duet_rpc_call_finish(job->call, NULL, 0);
    } else {
        duet_rpc_call_fail(job->call, st.code, "%s", st.message);
    }
    free(msg);
    free(job);
    return NULL;
}

static void stream_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    stream_job *job = calloc(1, sizeof *job);
    if (!job || len != 8) {
        free(job);
        duet_rpc_call_fail(call, DUET_INVALID_ARGUMENT, "want count and size");
        return;
    }
    job->call = call;
    memcpy(&job->count, req, 4);
    memcpy(&job->size, req + 4, 4);
    pthread_t t;
    if (pthread_create(&t, NULL, stream_sender, job) != 0) {
        free(job);
        duet_rpc_call_fail(call, DUET_RESOURCE_EXHAUSTED, "no thread");
        return;
    }
    pthread_detach(t);
}

/* argv: rpc-serve URL CA CERT KEY|-: prints the port, serves until stdin closes. */
static int rpc_serve(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: duet-bench rpc-serve URL CA CERT KEY (internal)\n");
        return 2;
    }
    duet_status st;
    duet_rpc_server *srv;
    duet_tls_options tls = {.ca_file = argv[2], .cert_file = argv[3], .key_file = argv[4]};
    tls.insecure = strncmp(argv[1], "tls+", 4) != 0;
    if (duet_rpc_server_new(NULL, &srv, &st) != DUET_OK ||
        duet_rpc_server_register(srv, "bench/Echo", echo_handler, NULL, &st) != DUET_OK ||
        duet_rpc_server_register(srv, "bench/Stream", stream_handler, NULL, &st) != DUET_OK ||
        duet_rpc_server_listen(srv, argv[1], &tls, &st) != DUET_OK) {
        fprintf(stderr, "duet-bench rpc-serve: %s\n", st.message);
        return 1;
    }
    printf("%d\n", duet_rpc_server_port(srv));
    fflush(stdout);
    char buf[16];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
    duet_rpc_server_free(srv);
    return 0;
}

/* ---- the client side ---- */

typedef struct {
    pid_t pid;
    int to_child;
    int port;
} server_child;

static int spawn_server(const char *url, const char *ca, const char *cert, const char *key,
                        server_child *out)
{
    int down[2], up[2];
    if (pipe(down) != 0 || pipe(up) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        dup2(down[0], STDIN_FILENO);
        dup2(up[1], STDOUT_FILENO);
        close(down[1]);
        close(up[0]);
        execl("/proc/self/exe", "duet-bench", "rpc-serve", url, ca, cert, key, (char *)NULL);
        _exit(127);
    }
    close(down[0]);
    close(up[1]);
    char line[32] = {0};
    ssize_t n = read(up[0], line, sizeof line - 1);
    close(up[0]);
    if (n <= 0 || atoi(line) <= 0) {
        close(down[1]);
        waitpid(pid, NULL, 0);
        return -1;
    }
    out->pid = pid;
    out->to_child = down[1];
    out->port = atoi(line);
    return 0;
}

static void stop_server(server_child *child)
{
    close(child->to_child);
    waitpid(child->pid, NULL, 0);
}

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    uint64_t received;
    uint64_t bytes;
    bool ended;
    duet_status status;
} stream_count;

static void count_message(void *arg, const uint8_t *msg, size_t len)
{
    (void)msg;
    stream_count *c = arg;
    c->received++; /* one connection: messages arrive on one thread at a time */
    c->bytes += len;
}

static void count_end(void *arg, const duet_status *st, const uint8_t *msg, size_t len)
{
    (void)msg;
    (void)len;
    stream_count *c = arg;
    pthread_mutex_lock(&c->lock);
    c->status = *st;
    c->ended = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->lock);
}

static int measure(const rpc_bench_opts *o, bool tls, const char *lab, rpc_bench_result *r)
{
    char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], scert[PATH_MAX], skey[PATH_MAX];
    duet_status st;
    duet_tls_settings mine = {.certs_dir = (char *)lab, .name = (char *)o->name};
    duet_tls_settings theirs = {.certs_dir = (char *)lab, .name = (char *)o->server_cert};
    if (duet_tls_settings_resolve(&mine, ca, cert, key, sizeof ca, &st) != DUET_OK ||
        duet_tls_settings_resolve(&theirs, ca, scert, skey, sizeof ca, &st) != DUET_OK) {
        fprintf(stderr, "duet-bench: %s\n", st.message);
        return 1;
    }
    server_child child;
    const char *listen = tls ? "tls+tcp://127.0.0.1:0" : "tcp://127.0.0.1:0";
    if (spawn_server(listen, ca, scert, skey, &child) != 0) {
        fprintf(stderr, "duet-bench: could not start the benchmark server\n");
        return 1;
    }
    char url[64];
    snprintf(url, sizeof url, "%s://127.0.0.1:%d", tls ? "tls+tcp" : "tcp", child.port);
    duet_tls_options topts = {.ca_file = ca,
                              .cert_file = cert,
                              .key_file = key,
                              .server_name = o->server_cert,
                              .insecure = !tls};
    duet_rpc_client *client = NULL;
    int rc = 1;
    if (duet_rpc_client_new(url, &topts, NULL, &client, &st) != DUET_OK ||
        duet_rpc_client_wait_ready(client, 10000, &st) != DUET_OK) {
        fprintf(stderr, "duet-bench: %s\n", st.message);
        goto out;
    }
    r->transport = tls ? "tls+tcp" : "tcp";
    uint8_t *payload = calloc(1, o->size ? o->size : 1);
    uint64_t *samples = calloc(o->calls ? o->calls : 1, sizeof *samples);
    for (uint32_t i = 0; i < o->warmup + o->calls; i++) {
        uint8_t *resp;
        size_t len;
        uint64_t t0 = duet_now_ns();
        if (duet_rpc_call_unary(client, "bench/Echo", payload, o->size, 10000, &resp, &len, &st) !=
            DUET_OK) {
            fprintf(stderr, "duet-bench: unary call failed: %s\n", st.message);
            free(payload);
            free(samples);
            goto out;
        }
        uint64_t t1 = duet_now_ns();
        free(resp);
        if (i >= o->warmup) {
            samples[i - o->warmup] = t1 - t0;
        }
    }
    r->calls = o->calls;
    bench_latency_summarize(samples, o->calls, &r->unary);
    free(samples);
    free(payload);

    stream_count count = {.ended = false};
    pthread_mutex_init(&count.lock, NULL);
    pthread_cond_init(&count.cv, NULL);
    uint32_t req[2] = {o->messages, o->size};
    duet_rpc_stream_callbacks cb = {
        .on_message = count_message, .on_end = count_end, .arg = &count};
    duet_rpc_stream *stream;
    uint64_t t0 = duet_now_ns();
    duet_rpc_call_stream(client, "bench/Stream", req, sizeof req, 0, NULL, 0, &cb, &stream, NULL);
    pthread_mutex_lock(&count.lock);
    while (!count.ended) {
        pthread_cond_wait(&count.cv, &count.lock);
    }
    pthread_mutex_unlock(&count.lock);
    uint64_t t1 = duet_now_ns();
    duet_rpc_stream_release(stream);
    if (count.status.code != DUET_OK || count.received != o->messages) {
        fprintf(stderr, "duet-bench: stream ended with %s after %llu messages: %s\n",
                duet_code_name(count.status.code), (unsigned long long)count.received,
                count.status.message);
        goto out;
    }
    r->messages = o->messages;
    r->seconds = (double)(t1 - t0) / 1e9;
    r->msgs_per_s = (double)count.received / r->seconds;
    r->mb_per_s = (double)count.bytes / r->seconds / 1e6;
    rc = 0;
out:
    duet_rpc_client_free(client);
    stop_server(&child);
    return rc;
}

/* Makes a temporary lab with the duet-certs that sits next to this program. */
static int make_temp_lab(char *dir, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        return -1;
    }
    self[n] = '\0';
    char tool[PATH_MAX];
    if (snprintf(tool, sizeof tool, "%s/duet-certs", dirname(self)) >= (int)sizeof tool) {
        return -1;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, cap, "%s/duet-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        return -1;
    }
    char cmd[8 * PATH_MAX];
    snprintf(cmd, sizeof cmd,
             "'%s' init '%s/lab' >/dev/null && '%s' issue '%s/lab' bench-server >/dev/null && "
             "'%s' issue '%s/lab' bench-client >/dev/null",
             tool, dir, tool, dir, tool, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "duet-bench: could not make certificates with %s\n", tool);
        return -1;
    }
    strncat(dir, "/lab", cap - strlen(dir) - 1);
    return 0;
}

static void print_table(const rpc_bench_result *r, size_t n, const rpc_bench_opts *o)
{
    printf("duet-bench rpc: %u unary calls and a stream of %u messages, %u-byte payloads, "
           "loopback\n\n",
           o->calls, o->messages, o->size);
    printf("%-9s %10s %10s %10s %10s %12s %10s\n", "transport", "p50 us", "p90 us", "p99 us",
           "max us", "stream msg/s", "MB/s");
    for (size_t i = 0; i < n; i++) {
        printf("%-9s %10.1f %10.1f %10.1f %10.1f %12.0f %10.2f\n", r[i].transport,
               r[i].unary.p50_us, r[i].unary.p90_us, r[i].unary.p99_us, r[i].unary.max_us,
               r[i].msgs_per_s, r[i].mb_per_s);
    }
    if (n == 2) {
        printf("\ntls/plain: p50 latency x%.2f, p99 latency x%.2f, stream throughput x%.2f\n",
               r[0].unary.p50_us / r[1].unary.p50_us, r[0].unary.p99_us / r[1].unary.p99_us,
               r[0].msgs_per_s / r[1].msgs_per_s);
    }
}

static void print_json(const rpc_bench_result *r, size_t n, const rpc_bench_opts *o)
{
    printf("{\"benchmark\":\"rpc\",\"size\":%u,\"results\":[", o->size);
    for (size_t i = 0; i < n; i++) {
        printf("%s{\"transport\":\"%s\",\"unary\":{\"calls\":%u,\"p50_us\":%.1f,\"p90_us\":%.1f,"
               "\"p99_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f},\"stream\":{\"messages\":%u,"
               "\"seconds\":%.3f,\"msgs_per_s\":%.0f,\"mb_per_s\":%.2f}}",
               i ? "," : "", r[i].transport, r[i].calls, r[i].unary.p50_us, r[i].unary.p90_us,
               r[i].unary.p99_us, r[i].unary.max_us, r[i].unary.mean_us, r[i].messages,
               r[i].seconds, r[i].msgs_per_s, r[i].mb_per_s);
    }
    printf("]");
    if (n == 2) {
        printf(",\"tls_over_plain\":{\"p50\":%.3f,\"p99\":%.3f,\"stream\":%.3f}",
               r[0].unary.p50_us / r[1].unary.p50_us, r[0].unary.p99_us / r[1].unary.p99_us,
               r[0].msgs_per_s / r[1].msgs_per_s);
    }
    printf("}\n");
}

int bench_rpc_main(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "rpc-serve") == 0) {
        return rpc_serve(argc, argv);
    }
    rpc_bench_opts o = {.name = "bench-client",
                        .server_cert = "bench-server",
                        .calls = 20000,
                        .warmup = 1000,
                        .messages = 200000,
                        .size = 100,
                        .want_tls = true,
                        .want_tcp = true};
    static const struct option longopts[] = {{"transport", required_argument, NULL, 't'},
                                             {"calls", required_argument, NULL, 'c'},
                                             {"warmup", required_argument, NULL, 'w'},
                                             {"messages", required_argument, NULL, 'm'},
                                             {"size", required_argument, NULL, 's'},
                                             {"certs", required_argument, NULL, 'C'},
                                             {"name", required_argument, NULL, 'N'},
                                             {"server-name", required_argument, NULL, 'S'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int opt, index = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, &index)) != -1) {
        bool ok = true;
        switch (opt) {
        case 't':
            o.want_tls = strcmp(optarg, "tls") == 0 || strcmp(optarg, "both") == 0;
            o.want_tcp = strcmp(optarg, "tcp") == 0 || strcmp(optarg, "both") == 0;
            ok = o.want_tls || o.want_tcp;
            break;
        case 'c':
            ok = duet_parse_u32(optarg, 1, UINT32_MAX, &o.calls);
            break;
        case 'w':
            ok = duet_parse_u32(optarg, 0, UINT32_MAX, &o.warmup);
            break;
        case 'm':
            ok = duet_parse_u32(optarg, 1, UINT32_MAX, &o.messages);
            break;
        case 's':
            ok = duet_parse_u32(optarg, 0, 8u << 20, &o.size);
            break;
        case 'C':
            o.certs_dir = optarg;
            break;
        case 'N':
            o.name = optarg;
            break;
        case 'S':
            o.server_cert = optarg;
            break;
        case 'j':
            o.json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "duet-bench rpc: bad value for --%s: %s\n", longopts[index].name,
                    optarg);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "duet-bench rpc: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    char temp[PATH_MAX] = "";
    const char *lab = o.certs_dir;
    if (!lab) {
        if (make_temp_lab(temp, sizeof temp) != 0) {
            return 1;
        }
        lab = temp;
    }
    rpc_bench_result results[2];
    size_t n = 0;
    int rc = 0;
    if (o.want_tls && (rc = measure(&o, true, lab, &results[n++])) != 0) {
        n--;
    }
    if (rc == 0 && o.want_tcp && (rc = measure(&o, false, lab, &results[n++])) != 0) {
        n--;
    }
    if (temp[0]) {
        char cmd[PATH_MAX + 32];
        *strrchr(temp, '/') = '\0';
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", temp);
        if (system(cmd) != 0) {
            fprintf(stderr, "duet-bench: could not remove %s\n", temp);
        }
    }
    if (rc != 0) {
        return rc;
    }
    if (o.json) {
        print_json(results, n, &o);
    } else {
        print_table(results, n, &o);
    }
    return 0;
}
