/* The session endpoints of the gateway's HTTP API (docs/http-api.md):
 *
 *   GET    /v1/sessions[?limit=N&offset=M]   the user's sessions, newest first
 *   POST   /v1/sessions                      a new session ({"title","system_prompt"})
 *   GET    /v1/sessions/ID[?after=SEQ]       one session and its messages
 *   PATCH  /v1/sessions/ID                   rename ({"title"}), set the system prompt
 *   DELETE /v1/sessions/ID                   delete it and its messages
 *
 * Every call signs in with an API key; a user sees only their own sessions (another
 * user's id is answered 404, exactly as an id that does not exist). */
#ifndef DUET_SESSION_API_H
#define DUET_SESSION_API_H

#include "api_auth.h"
#include "http_server.h"
#include "session_store.h"
#include "status.h"

typedef struct duet_session_api duet_session_api;

/* Registers the routes on srv (before it starts). keys and store must outlive the API. */
duet_code duet_session_api_new(duet_http_server *srv, const duet_api_keys *keys,
                               duet_session_store *store, duet_session_api **out, duet_status *st);

/* Only after the HTTP server is freed. */
void duet_session_api_free(duet_session_api *api);

#endif
