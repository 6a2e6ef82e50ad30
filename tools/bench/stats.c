#include "stats.h"

#include <stdlib.h>

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const uint64_t *sorted, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)sorted[i] / 1000.0;
}

void bench_latency_summarize(uint64_t *samples_ns, size_t n, bench_latency *out)
{
    if (n == 0) {
        *out = (bench_latency){0};
        return;
    }
    qsort(samples_ns, n, sizeof *samples_ns, cmp_u64);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += (double)samples_ns[i];
    }
    out->p50_us = percentile(samples_ns, n, 0.50);
    out->p90_us = percentile(samples_ns, n, 0.90);
    out->p99_us = percentile(samples_ns, n, 0.99);
    out->max_us = (double)samples_ns[n - 1] / 1000.0;
    out->mean_us = sum / (double)n / 1000.0;
}
