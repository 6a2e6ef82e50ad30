/* The duet CLI's commands (ask, chat, sessions) and what they share: the gateway client and
 * the options given. Each command prints its results on stdout, errors on stderr, and
 * returns the exit status: 0 done, 1 failed (the reason printed), 2 misused. */
#ifndef DUET_CLI_CLI_H
#define DUET_CLI_CLI_H

#include <stdbool.h>

#include "gateway_client.h"

typedef struct {
    duet_gateway *gw;
    const char *system;  /* -s: the system prompt of sessions this run starts */
    const char *session; /* -S: the session to continue, an id or a unique start of one */
    long max_tokens;     /* -n; 0: the gateway's default */
    bool quiet;          /* -q: no session and token counts on stderr */
} duet_cli;

/* duet ask [QUESTION]: one answer, in a new session unless c->session names one. The
 * question comes from stdin when it is NULL (and stdin is not a terminal) or "-". */
int duet_cli_ask(const duet_cli *c, const char *question);

/* duet chat: a conversation in a session, with /new, /sessions, /switch, /system,
 * /rename, /help and /quit. Line editing and history on a terminal; plain lines from a
 * pipe. */
int duet_cli_chat(const duet_cli *c);

/* duet sessions [list | show ID | rename ID TITLE... | delete ID]: args after "sessions". */
int duet_cli_sessions(const duet_cli *c, int argc, char **argv);

/* Prints "duet: MESSAGE" on stderr; returns 1. */
int duet_cli_fail(const duet_status *st);

#endif
