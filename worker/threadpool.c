#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* How long an idle thread spins before sleeping: about 50-100 us on current CPUs, longer
 * than the gap between two matmuls of one decode step. */
#define POOL_SPIN_ROUNDS 20000

struct duet_threadpool {
    int n;
    pthread_t *threads;
    atomic_uint generation; /* bumped for each job */
    atomic_int pending;     /* threads still running the current job */
    atomic_bool stopping;
    duet_job_fn fn;
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_int sleepers;
};

typedef struct {
    duet_threadpool *pool;
    int ith;
} worker_arg;

static void *pool_main(void *p)
{
    worker_arg *wa = p;
    duet_threadpool *pool = wa->pool;
    int ith = wa->ith;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        unsigned gen;
        int spins = 0;
        while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
               !atomic_load(&pool->stopping)) {
            if (++spins < POOL_SPIN_ROUNDS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&pool->lock);
            atomic_fetch_add(&pool->sleepers, 1);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stopping)) {
                pthread_cond_wait(&pool->wake, &pool->lock);
            }
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->lock);
            spins = 0;
        }
        if (atomic_load(&pool->stopping)) {
            return NULL;
        }
        seen = gen;
        pool->fn(pool->arg, ith, pool->n);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
    }
}

duet_threadpool *duet_threadpool_new(int n_threads)
{
    duet_threadpool *pool = calloc(1, sizeof *pool);
    if (!pool) {
        return NULL;
    }
    pool->n = n_threads < 1 ? 1 : n_threads;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->threads = calloc((size_t)pool->n, sizeof *pool->threads);
    for (int i = 1; i < pool->n; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        wa->pool = pool;
        wa->ith = i;
        if (pthread_create(&pool->threads[i], NULL, pool_main, wa) != 0) {
            free(wa);
            pool->n = i; /* run with the threads we got */
            break;
        }
    }
    return pool;
}

int duet_threadpool_size(const duet_threadpool *pool)
{
    return pool->n;
}

void duet_threadpool_run(duet_threadpool *pool, duet_job_fn fn, void *arg)
{
    if (pool->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store(&pool->pending, pool->n - 1);
    atomic_fetch_add(&pool->generation, 1); /* seq_cst: pairs with the sleepers check */
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
    fn(arg, 0, pool->n);
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0) {
        cpu_relax();
    }
}

void duet_threadpool_free(duet_threadpool *pool)
{
    if (!pool) {
        return;
    }
    atomic_store(&pool->stopping, true);
    pthread_mutex_lock(&pool->lock);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 1; i < pool->n; i++) {
        pthread_join(pool->threads[i], NULL);
    }
    free(pool->threads);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}
