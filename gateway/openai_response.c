#include "openai_response.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>

#include "utf8.h"

#define REPLACEMENT_CHARACTER "\xEF\xBF\xBD"

duet_code duet_openai_new_id(char out[DUET_OPENAI_ID_LEN + 1], duet_status *st)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const size_t prefix = sizeof DUET_OPENAI_ID_PREFIX - 1;
    memcpy(out, DUET_OPENAI_ID_PREFIX, prefix);
    size_t have = prefix;
    while (have < DUET_OPENAI_ID_LEN) {
        unsigned char bytes[32];
        ssize_t got = getrandom(bytes, sizeof bytes, 0);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            return duet_status_set(st, DUET_INTERNAL, "getrandom failed: %s", strerror(errno));
        }
        for (ssize_t i = 0; i < got && have < DUET_OPENAI_ID_LEN; i++) {
            /* 248 = 4 * 62: dropping the bytes above keeps every character equally likely */
            if (bytes[i] < 248) {
                out[have++] = alphabet[bytes[i] % 62];
            }
        }
    }
    out[DUET_OPENAI_ID_LEN] = '\0';
    return DUET_OK;
}

/* A JSON string of the bytes; jansson refuses invalid UTF-8, so each maximal invalid
 * subsequence becomes U+FFFD first (the Unicode-recommended practice). */
static json_t *text_value(const char *s, size_t n)
{
    if (!s) {
        s = "";
        n = 0;
    }
    uint32_t cp;
    size_t valid = 0;
    for (size_t k; valid < n && (k = duet_utf8_decode(s + valid, n - valid, &cp)) > 0;) {
        valid += k;
    }
    if (valid == n) {
        return json_stringn_nocheck(s, n);
    }
    if ((n - valid) > (SIZE_MAX - valid) / 3) {
        return NULL;
    }
    char *fixed = malloc(valid + (n - valid) * 3); /* a replaced byte grows to 3 at most */
    if (!fixed) {
        return NULL;
    }
    memcpy(fixed, s, valid);
    size_t out = valid;
    for (size_t i = valid; i < n;) {
        size_t k = duet_utf8_decode(s + i, n - i, &cp);
        if (k > 0) {
            memcpy(fixed + out, s + i, k);
            out += k;
            i += k;
            continue;
        }
        size_t bad = duet_utf8_valid_prefix(s + i, n - i);
        memcpy(fixed + out, REPLACEMENT_CHARACTER, 3);
        out += 3;
        i += bad > 0 ? bad : 1;
    }
    json_t *v = json_stringn_nocheck(fixed, out);
    free(fixed);
    return v;
}

static json_t *text_or_null(const char *s)
{
    return s ? text_value(s, strlen(s)) : json_null();
}

/* Takes v; NULL in, NULL out, so callers can chain on allocation failures. */
static char *dump(json_t *v)
{
    if (!v) {
        return NULL;
    }
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return s;
}

char *duet_openai_sse_event(const char *json)
{
    static const char head[] = "data: ", tail[] = "\n\n";
    size_t n = strlen(json);
    char *event = malloc(sizeof head - 1 + n + sizeof tail);
    if (!event) {
        return NULL;
    }
    memcpy(event, head, sizeof head - 1);
    memcpy(event + sizeof head - 1, json, n);
    memcpy(event + sizeof head - 1 + n, tail, sizeof tail);
    return event;
}

static char *dump_event(json_t *v)
{
    char *json = dump(v);
    if (!json) {
        return NULL;
    }
    char *event = duet_openai_sse_event(json);
    free(json);
    return event;
}

static const char *finish_name(duet_openai_finish finish)
{
    return finish == DUET_OPENAI_FINISH_LENGTH ? "length" : "stop";
}

static json_t *usage_value(const duet_openai_usage *u)
{
    return json_pack("{s:I,s:I,s:I,s:{s:I}}", "prompt_tokens", (json_int_t)u->prompt_tokens,
                     "completion_tokens", (json_int_t)u->completion_tokens, "total_tokens",
                     (json_int_t)u->prompt_tokens + (json_int_t)u->completion_tokens,
                     "prompt_tokens_details", "cached_tokens", (json_int_t)u->cached_prompt_tokens);
}

/* Adds "duet":{...} to obj unless ext is NULL or says nothing; false when memory ran out. */
static bool add_extension(json_t *obj, const duet_openai_extension *ext)
{
    if (!ext) {
        return true;
    }
    bool trimmed = ext->dropped_messages > 0 || ext->summarized;
    if (!ext->session_id && !trimmed) {
        return true;
    }
    json_t *duet = json_object();
    bool ok = duet != NULL;
    if (ok && ext->session_id) {
        ok = json_object_set_new(duet, "session_id", text_or_null(ext->session_id)) == 0;
    }
    if (ok && trimmed) {
        ok = json_object_set_new(duet, "trimmed",
                                 json_pack("{s:I,s:b}", "dropped_messages",
                                           (json_int_t)ext->dropped_messages, "summarized",
                                           ext->summarized)) == 0;
    }
    if (!ok) {
        json_decref(duet);
        return false;
    }
    return json_object_set_new(obj, "duet", duet) == 0;
}

char *duet_openai_completion_json(const duet_openai_answer *a, const char *content, size_t len,
                                  duet_openai_finish finish, const duet_openai_usage *usage,
                                  const duet_openai_extension *ext)
{
    json_t *v = json_pack(
        "{s:o,s:s,s:I,s:o,s:[{s:i,s:{s:s,s:o},s:s}],s:o}", "id", text_or_null(a->id), "object",
        "chat.completion", "created", (json_int_t)a->created, "model", text_or_null(a->model),
        "choices", "index", 0, "message", "role", "assistant", "content", text_value(content, len),
        "finish_reason", finish_name(finish), "usage", usage_value(usage));
    if (v && !add_extension(v, ext)) {
        json_decref(v);
        return NULL;
    }
    return dump(v);
}

/* The envelope every chunk shares; takes choices. */
static json_t *chunk(const duet_openai_answer *a, json_t *choices)
{
    json_t *v = json_pack("{s:o,s:s,s:I,s:o,s:o}", "id", text_or_null(a->id), "object",
                          "chat.completion.chunk", "created", (json_int_t)a->created, "model",
                          text_or_null(a->model), "choices", choices);
    if (v && a->include_usage && json_object_set_new(v, "usage", json_null()) != 0) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* The one choice of a chunk; takes delta. finish NULL is a null finish_reason. */
static json_t *one_choice(json_t *delta, const char *finish)
{
    return json_pack("[{s:i,s:o,s:s?}]", "index", 0, "delta", delta, "finish_reason", finish);
}

char *duet_openai_first_chunk(const duet_openai_answer *a, const duet_openai_extension *ext)
{
    json_t *delta = json_pack("{s:s,s:s}", "role", "assistant", "content", "");
    json_t *v = chunk(a, one_choice(delta, NULL));
    if (v && !add_extension(v, ext)) {
        json_decref(v);
        return NULL;
    }
    return dump_event(v);
}

char *duet_openai_content_chunk(const duet_openai_answer *a, const char *text, size_t len)
{
    json_t *delta = json_pack("{s:o}", "content", text_value(text, len));
    return dump_event(chunk(a, one_choice(delta, NULL)));
}

char *duet_openai_finish_chunk(const duet_openai_answer *a, duet_openai_finish finish)
{
    return dump_event(chunk(a, one_choice(json_object(), finish_name(finish))));
}

char *duet_openai_usage_chunk(const duet_openai_answer *a, const duet_openai_usage *usage)
{
    json_t *v = chunk(a, json_array());
    if (v && json_object_set_new(v, "usage", usage_value(usage)) != 0) {
        json_decref(v);
        return NULL;
    }
    return dump_event(v);
}

duet_openai_error_kind duet_openai_error_kind_of(duet_code code)
{
    switch (code) {
    case DUET_INVALID_ARGUMENT:
        return (duet_openai_error_kind){400, "invalid_request_error"};
    case DUET_UNAUTHENTICATED:
        return (duet_openai_error_kind){401, "authentication_error"};
    case DUET_PERMISSION_DENIED:
        return (duet_openai_error_kind){403, "permission_error"};
    case DUET_NOT_FOUND:
        return (duet_openai_error_kind){404, "invalid_request_error"};
    case DUET_ABORTED:
        return (duet_openai_error_kind){409, "conflict_error"};
    case DUET_RESOURCE_EXHAUSTED:
        return (duet_openai_error_kind){429, "rate_limit_error"};
    case DUET_UNAVAILABLE:
        return (duet_openai_error_kind){503, "server_error"};
    case DUET_DEADLINE_EXCEEDED:
        return (duet_openai_error_kind){504, "server_error"};
    default:
        return (duet_openai_error_kind){500, "server_error"};
    }
}

char *duet_openai_error_json(duet_code code, const char *message, const char *param,
                             const char *error_code)
{
    return dump(json_pack("{s:{s:o,s:s,s:o,s:o}}", "error", "message",
                          text_value(message, message ? strlen(message) : 0), "type",
                          duet_openai_error_kind_of(code).type, "param", text_or_null(param),
                          "code", text_or_null(error_code)));
}

char *duet_openai_models_json(const duet_openai_model *models, size_t n)
{
    json_t *data = json_array();
    for (size_t i = 0; data && i < n; i++) {
        json_t *m =
            json_pack("{s:o,s:s,s:I,s:s}", "id", text_or_null(models[i].id), "object", "model",
                      "created", (json_int_t)models[i].created, "owned_by", "duet");
        if (json_array_append_new(data, m) != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    return dump(json_pack("{s:s,s:o}", "object", "list", "data", data));
}
