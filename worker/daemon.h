/* duet-worker as a daemon: reads conf/worker.yaml (-c), applies the flags, loads the model
 * and serves it over RPC until SIGINT or SIGTERM. */
#ifndef DUET_WORKER_DAEMON_H
#define DUET_WORKER_DAEMON_H

#include <stdio.h>

/* argv as given to duet-worker; returns the process exit status (0 after a clean
 * shutdown, 1 on a runtime error, 2 on a usage or configuration error). */
int duet_worker_daemon_main(int argc, char **argv);

/* The daemon's --help text. */
void duet_worker_daemon_usage(FILE *f);

#endif
