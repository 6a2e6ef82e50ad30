/* The JSON the gateway answers with, in the shapes of OpenAI's API: chat completions (whole
 * or streamed as server-sent events), errors, and the model list.
 *
 * Every builder returns malloc'd, NUL-terminated, compact one-line JSON (the caller frees
 * it), or NULL only when memory runs out. Text from the worker or the client goes in as
 * bytes: any invalid UTF-8 in it becomes U+FFFD (replacing each maximal invalid
 * subsequence), so a builder never fails on what the text holds. */
#ifndef DUET_OPENAI_RESPONSE_H
#define DUET_OPENAI_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* "chatcmpl-" and 24 random letters and digits. */
#define DUET_OPENAI_ID_PREFIX "chatcmpl-"
#define DUET_OPENAI_ID_LEN (sizeof DUET_OPENAI_ID_PREFIX - 1 + 24)

/* The event that ends every stream. */
#define DUET_OPENAI_SSE_DONE "data: [DONE]\n\n"

/* A new completion id from the kernel's random source (getrandom); fails (INTERNAL) only
 * when that source does. */
duet_code duet_openai_new_id(char out[DUET_OPENAI_ID_LEN + 1], duet_status *st);

/* What every chunk and the whole completion of one answer share. */
typedef struct {
    const char *id;    /* from duet_openai_new_id */
    const char *model; /* the name the answer reports */
    int64_t created;   /* Unix seconds, the same for every chunk */
    /* Streaming with stream_options.include_usage: every chunk carries "usage":null, as
     * OpenAI's do, and the usage chunk comes before [DONE]. Ignored when not streaming. */
    bool include_usage;
} duet_openai_answer;

typedef enum {
    DUET_OPENAI_FINISH_STOP,   /* end of turn or a stop string: "stop" */
    DUET_OPENAI_FINISH_LENGTH, /* max_tokens or the context is full: "length" */
} duet_openai_finish;

typedef struct {
    uint32_t prompt_tokens;
    uint32_t cached_prompt_tokens; /* of prompt_tokens, reused from the session's cache */
    uint32_t completion_tokens;
} duet_openai_usage;

/* duet's own additions to an answer, sent as "duet":{...}; empty parts are left out. */
typedef struct {
    const char *session_id;    /* "session_id" when not NULL */
    uint32_t dropped_messages; /* "trimmed":{"dropped_messages":N,"summarized":bool}, when */
    bool summarized;           /* the history was cut to fit the context (N > 0 or summarized) */
} duet_openai_extension;

/* {"id","object":"chat.completion","created","model","choices":[{"index":0,"message":
 * {"role":"assistant","content"},"finish_reason"}],"usage":{"prompt_tokens",
 * "completion_tokens","total_tokens","prompt_tokens_details":{"cached_tokens"}}} and
 * "duet" when ext is not NULL and not empty. */
char *duet_openai_completion_json(const duet_openai_answer *a, const char *content, size_t len,
                                  duet_openai_finish finish, const duet_openai_usage *usage,
                                  const duet_openai_extension *ext);

/* Streaming: each returns one whole event, "data: {json}\n\n", whose JSON is
 * {"id","object":"chat.completion.chunk","created","model","choices":[{"index":0,
 * "delta":{...},"finish_reason":null|"stop"|"length"}]}. An answer is sent as
 * first_chunk, any number of content_chunk, finish_chunk, usage_chunk when include_usage,
 * then DUET_OPENAI_SSE_DONE. */

/* delta {"role":"assistant","content":""}; carries "duet" when ext is given and not empty,
 * so a client learns its session even if the stream breaks later. */
char *duet_openai_first_chunk(const duet_openai_answer *a, const duet_openai_extension *ext);

/* delta {"content":text}. */
char *duet_openai_content_chunk(const duet_openai_answer *a, const char *text, size_t len);

/* delta {} and the finish reason. */
char *duet_openai_finish_chunk(const duet_openai_answer *a, duet_openai_finish finish);

/* "choices":[] and "usage":{...} as in the whole completion. */
char *duet_openai_usage_chunk(const duet_openai_answer *a, const duet_openai_usage *usage);

/* Frames any JSON text as one event: "data: " json "\n\n"; json must hold no newline (the
 * builders' output never does). Used for an error that ends a stream already started. */
char *duet_openai_sse_event(const char *json);

/* How an error is answered over HTTP, with OpenAI's error types (clients act on the
 * status; the type is for people): INVALID_ARGUMENT 400 invalid_request_error,
 * UNAUTHENTICATED 401 authentication_error, PERMISSION_DENIED 403 permission_error,
 * NOT_FOUND 404 invalid_request_error (as OpenAI answers an unknown model), ABORTED 409
 * conflict_error (a session already answering),
 * RESOURCE_EXHAUSTED 429 rate_limit_error, UNAVAILABLE 503 server_error, DEADLINE_EXCEEDED
 * 504 server_error, anything else (OK included: it is no error to report) 500 server_error. */
typedef struct {
    int http_status;
    const char *type;
} duet_openai_error_kind;

duet_openai_error_kind duet_openai_error_kind_of(duet_code code);

/* {"error":{"message","type","param","code"}}, type from duet_openai_error_kind_of(code);
 * param (the request field at fault) and error_code (a machine-readable reason, e.g.
 * "model_not_found") are null when NULL. */
char *duet_openai_error_json(duet_code code, const char *message, const char *param,
                             const char *error_code);

typedef struct {
    const char *id;
    int64_t created; /* Unix seconds */
} duet_openai_model;

/* GET /v1/models: {"object":"list","data":[{"id","object":"model","created",
 * "owned_by":"duet"}, ...]}. */
char *duet_openai_models_json(const duet_openai_model *models, size_t n);

#endif
