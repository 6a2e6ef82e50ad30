/* What went wrong talking to the gateway, said for people: each failure becomes a duet_status
 * whose message names the gateway and what to do about it (the key to check, when to retry,
 * the CA to give). */
#ifndef DUET_CLI_GATEWAY_ERRORS_H
#define DUET_CLI_GATEWAY_ERRORS_H

#include <curl/curl.h>

#include "status.h"

/* An HTTP answer that was not a success. */
typedef struct {
    const char *url;         /* the gateway, as the user gave it */
    long http_status;        /* 400, 401, ... */
    const char *body;        /* the answer's body (an OpenAI-style error, or anything) */
    const char *retry_after; /* the Retry-After header, or NULL */
    const char *key_source;  /* where the API key came from; NULL when there was none */
    const char *session_id;  /* the session the request named, or NULL */
} duet_gateway_refusal;

/* The status for a refused request: INVALID_ARGUMENT (400, 413, other 4xx),
 * UNAUTHENTICATED (401), NOT_FOUND (404), ABORTED (409: the session is busy),
 * RESOURCE_EXHAUSTED (429), UNAVAILABLE (503), INTERNAL (other 5xx). Returns the code. */
duet_code duet_gateway_refusal_status(const duet_gateway_refusal *r, duet_status *st);

/* The status for a request that got no HTTP answer: curl's code and error text, the URL and
 * the CA file given (NULL: the system's). UNAVAILABLE, or INVALID_ARGUMENT for a bad URL or
 * CA file. Returns the code. */
duet_code duet_gateway_transport_status(CURLcode rc, const char *curl_error, const char *url,
                                        const char *ca_file, duet_status *st);

#endif
