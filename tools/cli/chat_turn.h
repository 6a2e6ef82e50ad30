/* One turn of a conversation: a user message (with a system prompt, when one goes along)
 * sent to the gateway in a session, or as the start of a new one, and the answer streamed
 * to standard output piece by piece as it arrives. */
#ifndef DUET_CLI_CHAT_TURN_H
#define DUET_CLI_CHAT_TURN_H

#include <stdbool.h>
#include <stdio.h>

#include "gateway_client.h"
#include "status.h"

typedef struct {
    const char *session_id; /* continue this session; NULL: the gateway starts a new one */
    const char *system;     /* a system prompt sent along (it becomes the session's), or NULL */
    const char *text;       /* the user's message */
    long max_tokens;        /* longest answer; 0: the gateway's default */
    bool stoppable;         /* Ctrl-C stops this answer (DUET_CANCELLED) instead of the program */
} duet_turn;

/* Sends the turn and prints the answer to stdout as it comes, ending it with a newline.
 * *ans tells the session and the token counts, also of an answer cut short. */
duet_code duet_turn_run(duet_gateway *gw, const duet_turn *t, duet_gateway_answer *ans,
                        duet_status *st);

/* "[LABEL, 12 prompt + 24 answer tokens, cut at the length limit, ...]" (no label when NULL). */
void duet_turn_print_counts(FILE *f, const char *label, const duet_gateway_answer *ans);

#endif
