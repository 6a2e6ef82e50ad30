/* Summaries of latency samples. */
#ifndef DUET_BENCH_STATS_H
#define DUET_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double p50_us, p90_us, p99_us, max_us, mean_us;
} bench_latency;

/* Sorts samples (nanoseconds) in place and fills the summary. */
void bench_latency_summarize(uint64_t *samples_ns, size_t n, bench_latency *out);

#endif
