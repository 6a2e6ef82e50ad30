/* The body of POST /v1/chat/completions (OpenAI's Chat Completions API), parsed and checked.
 *
 * The body comes from the network, so nothing in it is trusted: its size, nesting depth and
 * message count are capped, every field's type and range is checked, and every error is
 * INVALID_ARGUMENT with a message that names the field ("temperature must be a number").
 * Fields duet does not know are ignored, since OpenAI clients send many (tools, logprobs,
 * metadata, store, ...); a JSON null counts as an absent field.
 *
 * Messages: role system, user or assistant ("developer" is read as system); tool and
 * function messages, and assistant messages carrying tool calls, are refused as
 * unsupported. Content is a string or an array of {"type":"text","text":...} parts, which
 * are joined as they are (no separator); any other part (image_url, input_audio, file, ...)
 * is refused with "only text content is supported".
 *
 * duet's extensions, ignored by OpenAI: session_id, top_k, min_p, repeat_penalty. */
#ifndef DUET_OPENAI_REQUEST_H
#define DUET_OPENAI_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define DUET_OPENAI_MAX_BODY_BYTES ((size_t)4 << 20)
#define DUET_OPENAI_MAX_MESSAGES 10000
/* Arrays and objects inside one another, the top-level object counting as 1. */
#define DUET_OPENAI_MAX_DEPTH 64
#define DUET_OPENAI_MAX_STOP 4
/* session_id: 1..128 bytes of [A-Za-z0-9._:-]. */
#define DUET_OPENAI_MAX_SESSION_ID 128
/* Room for the longest "param" the parser reports, e.g. "messages[9999].content[123].text". */
#define DUET_OPENAI_PARAM_MAX 64

typedef enum {
    DUET_OPENAI_ROLE_SYSTEM, /* also "developer" */
    DUET_OPENAI_ROLE_USER,
    DUET_OPENAI_ROLE_ASSISTANT,
} duet_openai_role;

typedef struct {
    duet_openai_role role;
    char *content; /* UTF-8, NUL-terminated, no NUL inside; may be empty */
    size_t content_len;
} duet_openai_message;

/* Each optional value has a has_<name> flag; absent means "the worker's default". */
typedef struct {
    char *model;                   /* NULL when absent; the gateway may ignore it */
    duet_openai_message *messages; /* at least one */
    size_t n_messages;

    bool stream;
    bool include_usage; /* stream_options.include_usage; meaningful only when streaming */

    bool has_temperature;
    double temperature; /* [0, 2] */
    bool has_top_p;
    double top_p; /* [0, 1] */
    bool has_max_tokens;
    uint32_t max_tokens; /* >= 1; max_completion_tokens when given, else max_tokens */
    bool has_seed;
    int64_t seed; /* any integer; the worker takes its bits as uint64 */
    bool has_presence_penalty;
    double presence_penalty; /* [-2, 2] */
    bool has_frequency_penalty;
    double frequency_penalty; /* [-2, 2] */

    char *stop[DUET_OPENAI_MAX_STOP]; /* non-empty strings; a lone string becomes stop[0] */
    size_t n_stop;

    char *user;       /* NULL when absent */
    char *session_id; /* NULL when absent; see DUET_OPENAI_MAX_SESSION_ID */

    bool has_top_k;
    uint32_t top_k; /* 0 = off */
    bool has_min_p;
    double min_p; /* [0, 1]; 0 = off */
    bool has_repeat_penalty;
    double repeat_penalty; /* (0, 10]; 1 = off */
} duet_openai_request;

/* Parses len bytes of body (need not be NUL-terminated) into *out. n, when present, must be
 * 1. On error: INVALID_ARGUMENT (RESOURCE_EXHAUSTED if memory runs out), *out holds nothing
 * to free, and param (when not NULL) receives the offending field as OpenAI's error
 * "param" names it ("temperature", "messages[2].content"), or "" when the body as a whole
 * is at fault (too big, too deep, not JSON; the message then gives jansson's line and
 * column). On success param is "". */
duet_code duet_openai_request_parse(const char *body, size_t len, duet_openai_request *out,
                                    char param[DUET_OPENAI_PARAM_MAX], duet_status *st);

/* Frees what parse allocated and zeroes *r; safe on a zeroed request and twice. */
void duet_openai_request_free(duet_openai_request *r);

/* "system", "user", "assistant". */
const char *duet_openai_role_name(duet_openai_role role);

#endif
