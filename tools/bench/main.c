/* duet-bench: measurements of duet's parts. One subcommand per part. */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "engine_bench.h"
#include "gateway_bench.h"
#include "rpc_bench.h"
#include "worker_bench.h"

static void usage(FILE *to)
{
    fprintf(to, "usage: duet-bench COMMAND [options]\n"
                "\n"
                "commands:\n"
                "  rpc     RPC round-trip latency and stream throughput, tls+tcp and tcp\n"
                "  engine  model load time, prefill and decode tokens/s on a GGUF\n"
                "  worker  aggregate tokens/s and time to first token of a running worker\n"
                "  gateway concurrent HTTP clients against a running gateway\n"
                "\n"
                "`duet-bench COMMAND --help` lists a command's options.\n");
}

int main(int argc, char **argv)
{
    duet_log_set_tag("bench");
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "rpc") == 0 || strcmp(argv[1], "rpc-serve") == 0) {
        if (duet_log_get_level() < DUET_LOG_ERROR) {
            duet_log_set_level(DUET_LOG_ERROR); /* the insecure-transport warning is expected */
        }
        return bench_rpc_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "gateway") == 0) {
        return bench_gateway_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "worker") == 0) {
        return bench_worker_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "engine") == 0) {
        return bench_engine_main(argc - 1, argv + 1);
    }
    fprintf(stderr, "duet-bench: unknown command %s\n", argv[1]);
    usage(stderr);
    return 2;
}
