/* Sessions and their messages as people read them on a terminal: the numbered list
 * (number, short id, title, message count, last update), a session's heading, and its
 * messages as "you> " and "duet> " lines, partial answers marked "[partial]". */
#ifndef DUET_CLI_SESSION_PRINT_H
#define DUET_CLI_SESSION_PRINT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

/* How many hex digits of an id are shown in lists. */
#define DUET_SHORT_ID 8

/* The list, numbered from 1 in its order (newest first as the gateway gives it), or a
 * line saying there are no sessions. */
void duet_print_session_list(FILE *f, const json_t *sessions);

/* Full id, title, message count, creation and update times, then the system prompt and
 * summary when the session has them. */
void duet_print_session_heading(FILE *f, const json_t *session);

/* The messages of a session object from index first on. */
void duet_print_messages(FILE *f, const json_t *messages, size_t first);

#endif
