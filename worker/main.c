/* duet-worker: the daemon that serves a model to gateways (daemon.h), or, with -p,
 * --prompt-ids or --tokenize, one-shot mode for checking a model (oneshot.h). */
#include "daemon.h"
#include "log.h"
#include "oneshot.h"

int main(int argc, char **argv)
{
    duet_log_set_tag("worker");
    if (duet_oneshot_requested(argc, argv)) {
        return duet_oneshot_main(argc, argv);
    }
    return duet_worker_daemon_main(argc, argv);
}
