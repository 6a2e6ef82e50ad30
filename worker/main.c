/* duet-worker: for now its one-shot mode (see oneshot.h); the RPC service comes next. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "oneshot.h"

int main(int argc, char **argv)
{
    duet_log_set_tag("worker");
    if (argc < 2 || !duet_oneshot_requested(argc, argv)) {
        bool help = argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
        char *help_argv[] = {argv[0], "--help", NULL};
        if (help) {
            return duet_oneshot_main(2, help_argv);
        }
        fprintf(stderr,
                "usage: duet-worker -m MODEL.gguf -p \"text\" [options] (--help for all)\n");
        return 2;
    }
    return duet_oneshot_main(argc, argv);
}
