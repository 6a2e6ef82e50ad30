/* duet-bench gateway: drives a running duet-gateway over HTTP like its users would. */
#ifndef DUET_GATEWAY_BENCH_H
#define DUET_GATEWAY_BENCH_H

int bench_gateway_main(int argc, char **argv);

#endif
