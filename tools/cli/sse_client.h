/* duet-bench gateway's client of the chat API (the duet CLI itself uses gateway_client.h,
 * on libcurl): one POST /v1/chat/completions with "stream":true over plain HTTP, reading the
 * server-sent events as they arrive and handing each piece of answer text to a callback. */
#ifndef DUET_CLI_SSE_CLIENT_H
#define DUET_CLI_SSE_CLIENT_H

#include <stddef.h>

#include "status.h"

typedef struct {
    char finish_reason[16]; /* "stop", "length" */
    unsigned prompt_tokens, completion_tokens;
    unsigned trimmed_messages; /* dropped by the gateway to fit the context */
} duet_cli_answer;

/* Posts body (a JSON chat request with "stream":true) to gateway_url ("http://HOST:PORT")
 * with the API key, calling on_text for each piece of the answer as it arrives. Errors, with
 * a message meant for people: UNAVAILABLE when the gateway cannot be reached or has no
 * worker, UNAUTHENTICATED for a refused key, RESOURCE_EXHAUSTED over the limits (the
 * message says when to retry), INVALID_ARGUMENT for a refused request or URL. */
duet_code duet_cli_chat(const char *gateway_url, const char *api_key, const char *body,
                        void (*on_text)(void *arg, const char *text, size_t len), void *arg,
                        duet_cli_answer *answer, duet_status *st);

#endif
