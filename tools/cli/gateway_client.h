/* The CLI's connection to a duet gateway (docs/http-api.md), over HTTP or HTTPS with
 * libcurl: plain JSON requests for the session endpoints, and streamed chat answers read as
 * server-sent events, each piece of text handed on the moment it arrives. One client keeps
 * its connection open between requests. Failures come back as duet_status messages meant
 * for people (gateway_errors.h). */
#ifndef DUET_CLI_GATEWAY_CLIENT_H
#define DUET_CLI_GATEWAY_CLIENT_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/* Session ids are 32 hex digits; this holds one with room for a longer one named by a
 * gateway of another version. */
#define DUET_SESSION_ID_MAX 65

typedef struct {
    const char *url;        /* http://HOST:PORT or https://HOST:PORT (a trailing / is fine) */
    const char *api_key;    /* NULL or "": none is sent */
    const char *key_source; /* where the key came from, for the 401 message ("--api-key") */
    const char *ca_file;    /* a PEM CA to trust for HTTPS; NULL: the system's CAs */
} duet_gateway_config;

typedef struct duet_gateway duet_gateway;

/* A client for cfg (its strings must outlive it). INVALID_ARGUMENT for a URL that is not
 * http:// or https://, or a CA file that cannot be read. Nothing is sent yet. */
duet_code duet_gateway_open(const duet_gateway_config *cfg, duet_gateway **out, duet_status *st);
void duet_gateway_close(duet_gateway *gw);

/* The gateway's URL as given. */
const char *duet_gateway_url(const duet_gateway *gw);

/* One JSON request: method ("GET", "POST", "PATCH", "DELETE") on path ("/v1/sessions"),
 * with body when not NULL. session_id names the session the request is about, for the
 * messages of 404 and 409 (NULL when none). On success *reply holds the answer's JSON
 * (the caller frees it). */
duet_code duet_gateway_call(duet_gateway *gw, const char *method, const char *path,
                            const char *session_id, const json_t *body, json_t **reply,
                            duet_status *st);

/* What a streamed answer said about itself. */
typedef struct {
    char session_id[DUET_SESSION_ID_MAX]; /* the session it belongs to; "" when unknown */
    char finish_reason[16];               /* "stop", "length"; "" when it did not finish */
    unsigned prompt_tokens, completion_tokens;
    unsigned trimmed_messages; /* older messages left out to fit the context */
    bool summarized;           /* ... and replaced by a summary */
    size_t text_bytes;         /* answer text received */
} duet_gateway_answer;

typedef void (*duet_gateway_text_fn)(void *arg, const char *text, size_t len);

/* POST /v1/chat/completions with body (a chat request; "stream" and
 * "stream_options.include_usage" are added), continuing session_id when not NULL (header
 * X-Duet-Session). Calls on_text for each piece of the answer as it arrives. When *stop
 * becomes non-zero (a signal handler may set it) the answer is abandoned within about a
 * second: DUET_CANCELLED. *ans is filled as far as the answer got, also on failure (the
 * session of a cut-off answer is known once the gateway has started it). */
duet_code duet_gateway_chat_stream(duet_gateway *gw, const char *session_id, const json_t *body,
                                   duet_gateway_text_fn on_text, void *arg,
                                   volatile sig_atomic_t *stop, duet_gateway_answer *ans,
                                   duet_status *st);

#endif
