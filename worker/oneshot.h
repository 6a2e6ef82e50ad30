/* duet-worker's one-shot mode, like llama-cli: load a model, run one prompt, print the
 * continuation (or its ids, or the top logits of each step). For people checking a model
 * and for tests. */
#ifndef DUET_ONESHOT_H
#define DUET_ONESHOT_H

/* argv as given to duet-worker; returns the process exit status. */
int duet_oneshot_main(int argc, char **argv);

/* True when the arguments ask for one-shot mode (-p, --prompt-ids or --tokenize). */
int duet_oneshot_requested(int argc, char **argv);

#endif
