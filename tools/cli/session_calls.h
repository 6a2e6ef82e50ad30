/* The gateway's session endpoints (GET/POST /v1/sessions, GET/PATCH/DELETE
 * /v1/sessions/ID), and naming a session by a prefix of its id. Sessions are the gateway's
 * JSON objects (docs/http-api.md), handed over as they came. */
#ifndef DUET_CLI_SESSION_CALLS_H
#define DUET_CLI_SESSION_CALLS_H

#include <jansson.h>
#include <stdbool.h>

#include "gateway_client.h"
#include "status.h"

/* Session ids are this many hex digits. */
#define DUET_SESSION_ID_HEX 32

/* All the user's sessions, newest first (the list read page by page): a JSON array. */
duet_code duet_sessions_list(duet_gateway *gw, json_t **sessions, duet_status *st);

/* The one session of the array whose id starts with prefix (hex digits, any case).
 * INVALID_ARGUMENT for a prefix that is not hex or matches several (the message names
 * them), NOT_FOUND when none matches. *match borrows from sessions. */
duet_code duet_sessions_match(const json_t *sessions, const char *prefix, json_t **match,
                              duet_status *st);

/* The whole id a user's argument names: a whole id as it is (lowercased), a shorter prefix
 * through the list. */
duet_code duet_sessions_resolve(duet_gateway *gw, const char *id_or_prefix,
                                char id[DUET_SESSION_ID_MAX], duet_status *st);

/* One session with its system prompt, summary and messages. */
duet_code duet_sessions_get(duet_gateway *gw, const char *id, json_t **session, duet_status *st);

/* A new, empty session; title and system_prompt may be NULL. */
duet_code duet_sessions_create(duet_gateway *gw, const char *title, const char *system_prompt,
                               json_t **session, duet_status *st);

/* Renames a session (title not NULL) and/or sets its system prompt (set_prompt; a NULL
 * prompt clears it). *session gets the gateway's answer when session is not NULL. */
duet_code duet_sessions_update(duet_gateway *gw, const char *id, const char *title, bool set_prompt,
                               const char *prompt, json_t **session, duet_status *st);

/* Deletes a session and its messages. */
duet_code duet_sessions_delete(duet_gateway *gw, const char *id, duet_status *st);

#endif
