/* `duet-bench rpc`: round-trip latency of small unary calls and streaming throughput of
 * the RPC layer, over tls+tcp and plain tcp on loopback, server in a child process. */
#ifndef DUET_BENCH_RPC_H
#define DUET_BENCH_RPC_H

int bench_rpc_main(int argc, char **argv);

#endif
