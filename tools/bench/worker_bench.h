/* duet-bench worker: drives a running duet-worker like a gateway would. */
#ifndef DUET_WORKER_BENCH_H
#define DUET_WORKER_BENCH_H

int bench_worker_main(int argc, char **argv);

#endif
