/* Whole JSON replies of the gateway's API, errors in OpenAI's shape (openai_response.h):
 * 429 and 503 carry Retry-After. */
#ifndef DUET_API_REPLY_H
#define DUET_API_REPLY_H

#include <stdint.h>

#include "http_server.h"
#include "status.h"

/* Replies with json and frees it; json NULL (a builder ran out of memory) becomes a 500. */
void duet_api_reply_json(duet_http_exchange *x, int status, char *json, const char *const *headers);

/* An error: the status from code (duet_openai_error_kind_of), the message, the request
 * field at fault (param, NULL or "" for none), a machine-readable reason (error_code, may
 * be NULL) and, for 429 and 503, Retry-After: retry_ms rounded up to whole seconds (at
 * least 1; UINT64_MAX means 60). Returns the HTTP status sent. */
int duet_api_reply_error(duet_http_exchange *x, duet_code code, const char *message,
                         const char *param, const char *error_code, uint64_t retry_ms);

#endif
