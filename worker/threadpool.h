/* A persistent pool of compute threads. A job runs fn(arg, i, n) on n = thread count
 * threads at once (the caller is thread 0) and returns when all are done. Threads spin
 * briefly between jobs (a decode step dispatches hundreds of small jobs, and waking a
 * sleeping thread costs more than the job) and then sleep. */
#ifndef DUET_THREADPOOL_H
#define DUET_THREADPOOL_H

typedef struct duet_threadpool duet_threadpool;

typedef void (*duet_job_fn)(void *arg, int ith, int nth);

/* n_threads >= 1; 1 means everything runs on the caller. */
duet_threadpool *duet_threadpool_new(int n_threads);
void duet_threadpool_free(duet_threadpool *pool);
int duet_threadpool_size(const duet_threadpool *pool);

/* Runs fn on every thread; one job at a time per pool (callers serialize). */
void duet_threadpool_run(duet_threadpool *pool, duet_job_fn fn, void *arg);

#endif
