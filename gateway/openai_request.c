#include "openai_request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* Where errors go while one body is parsed. */
typedef struct {
    duet_status *st;
    char *param; /* may be NULL */
} parser;

/* INVALID_ARGUMENT "<field> <what>", with field as the error's param. */
__attribute__((format(printf, 3, 4))) static duet_code field_error(parser *p, const char *field,
                                                                   const char *fmt, ...)
{
    char what[DUET_STATUS_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (p->param) {
        snprintf(p->param, DUET_OPENAI_PARAM_MAX, "%s", field);
    }
    return duet_status_set(p->st, DUET_INVALID_ARGUMENT, "%s %s", field, what);
}

static duet_code out_of_memory(parser *p)
{
    return duet_status_set(p->st, DUET_RESOURCE_EXHAUSTED, "out of memory");
}

/* A member that is missing and one that is null mean the same: "not given". */
static json_t *member(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* Compares with the whole JSON string, NUL bytes included. */
static bool string_is(const json_t *v, const char *s)
{
    size_t n = strlen(s);
    return json_string_length(v) == n && memcmp(json_string_value(v), s, n) == 0;
}

/* Counts nesting without parsing, so a hostile body cannot make the parser recurse deeply.
 * Brackets inside strings do not count; a malformed body is left to the parser. */
static bool nesting_within(const char *s, size_t n, unsigned limit)
{
    unsigned depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) {
                return false;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return true;
}

/* Copies a JSON string that must hold text for C: no NUL inside (the body may carry
 * \u0000, which the parser lets through so that this message can name the field). */
static duet_code copy_text(parser *p, const json_t *v, const char *field, char **out,
                           size_t *out_len)
{
    if (!json_is_string(v)) {
        return field_error(p, field, "must be a string");
    }
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (memchr(s, '\0', n)) {
        return field_error(p, field, "must not contain NUL characters");
    }
    char *copy = malloc(n + 1);
    if (!copy) {
        return out_of_memory(p);
    }
    memcpy(copy, s, n + 1);
    *out = copy;
    if (out_len) {
        *out_len = n;
    }
    return DUET_OK;
}

static duet_code read_bool(parser *p, const json_t *obj, const char *key, const char *field,
                           bool *out)
{
    json_t *v = member(obj, key);
    if (!v) {
        return DUET_OK;
    }
    if (!json_is_boolean(v)) {
        return field_error(p, field, "must be true or false");
    }
    *out = json_is_true(v);
    return DUET_OK;
}

static duet_code read_number(parser *p, const json_t *obj, const char *key, double min, double max,
                             bool *has, double *out)
{
    json_t *v = member(obj, key);
    if (!v) {
        return DUET_OK;
    }
    if (!json_is_number(v)) {
        return field_error(p, key, "must be a number");
    }
    double x = json_number_value(v);
    if (!(x >= min && x <= max)) {
        return field_error(p, key, "must be between %g and %g", min, max);
    }
    *has = true;
    *out = x;
    return DUET_OK;
}

static duet_code read_integer(parser *p, const json_t *obj, const char *key, json_int_t min,
                              json_int_t max, bool *has, json_int_t *out)
{
    json_t *v = member(obj, key);
    if (!v) {
        return DUET_OK;
    }
    if (!json_is_integer(v)) {
        return field_error(p, key, "must be an integer");
    }
    json_int_t x = json_integer_value(v);
    if (x < min || x > max) {
        return field_error(
            p, key, "must be between %" JSON_INTEGER_FORMAT " and %" JSON_INTEGER_FORMAT, min, max);
    }
    *has = true;
    *out = x;
    return DUET_OK;
}

static duet_code read_string(parser *p, const json_t *obj, const char *key, char **out)
{
    json_t *v = member(obj, key);
    return v ? copy_text(p, v, key, out, NULL) : DUET_OK;
}

static duet_code parse_role(parser *p, const json_t *msg, size_t i, duet_openai_role *out)
{
    char field[DUET_OPENAI_PARAM_MAX];
    snprintf(field, sizeof field, "messages[%zu].role", i);
    json_t *v = member(msg, "role");
    if (!v) {
        return field_error(p, field, "is required");
    }
    if (!json_is_string(v)) {
        return field_error(p, field, "must be a string");
    }
    if (string_is(v, "system") || string_is(v, "developer")) {
        *out = DUET_OPENAI_ROLE_SYSTEM;
    } else if (string_is(v, "user")) {
        *out = DUET_OPENAI_ROLE_USER;
    } else if (string_is(v, "assistant")) {
        *out = DUET_OPENAI_ROLE_ASSISTANT;
    } else if (string_is(v, "tool") || string_is(v, "function")) {
        return field_error(p, field, "\"%s\" is not supported: duet serves chat without tools",
                           json_string_value(v));
    } else {
        return field_error(p, field, "must be system, developer, user or assistant (got \"%.32s\")",
                           json_string_value(v));
    }
    return DUET_OK;
}

/* An assistant turn that called tools cannot be shown to the model faithfully without them. */
static duet_code refuse_tool_calls(parser *p, const json_t *msg, size_t i)
{
    static const char *const keys[] = {"tool_calls", "function_call"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        json_t *v = member(msg, keys[k]);
        if (v && !(json_is_array(v) && json_array_size(v) == 0)) {
            char field[DUET_OPENAI_PARAM_MAX];
            snprintf(field, sizeof field, "messages[%zu].%s", i, keys[k]);
            return field_error(p, field, "is not supported: duet serves chat without tools");
        }
    }
    return DUET_OK;
}

/* The text of part j of message i, after checking it is a text part. */
static duet_code text_part(parser *p, const json_t *part, size_t i, size_t j, const json_t **text)
{
    char field[DUET_OPENAI_PARAM_MAX];
    snprintf(field, sizeof field, "messages[%zu].content[%zu]", i, j);
    if (!json_is_object(part)) {
        return field_error(p, field, "must be an object");
    }
    json_t *type = member(part, "type");
    if (!json_is_string(type)) {
        snprintf(field, sizeof field, "messages[%zu].content[%zu].type", i, j);
        return field_error(p, field, "must be a string");
    }
    if (!string_is(type, "text")) {
        return field_error(p, field, "has type \"%.32s\": only text content is supported",
                           json_string_value(type));
    }
    json_t *v = member(part, "text");
    snprintf(field, sizeof field, "messages[%zu].content[%zu].text", i, j);
    if (!json_is_string(v)) {
        return field_error(p, field, "must be a string");
    }
    if (memchr(json_string_value(v), '\0', json_string_length(v))) {
        return field_error(p, field, "must not contain NUL characters");
    }
    *text = v;
    return DUET_OK;
}

/* Joins the text parts: check them all and sum their lengths, then copy once. */
static duet_code join_parts(parser *p, const json_t *parts, size_t i, duet_openai_message *out)
{
    size_t total = 0;
    for (size_t j = 0; j < json_array_size(parts); j++) {
        const json_t *text = NULL;
        if (text_part(p, json_array_get(parts, j), i, j, &text) != DUET_OK) {
            return p->st->code;
        }
        total += json_string_length(text);
    }
    char *joined = malloc(total + 1);
    if (!joined) {
        return out_of_memory(p);
    }
    size_t at = 0;
    for (size_t j = 0; j < json_array_size(parts); j++) {
        const json_t *text = member(json_array_get(parts, j), "text");
        memcpy(joined + at, json_string_value(text), json_string_length(text));
        at += json_string_length(text);
    }
    joined[at] = '\0';
    out->content = joined;
    out->content_len = at;
    return DUET_OK;
}

static duet_code parse_content(parser *p, const json_t *msg, size_t i, duet_openai_message *out)
{
    char field[DUET_OPENAI_PARAM_MAX];
    snprintf(field, sizeof field, "messages[%zu].content", i);
    json_t *v = member(msg, "content");
    if (!v) {
        return field_error(p, field, "is required");
    }
    if (json_is_string(v)) {
        return copy_text(p, v, field, &out->content, &out->content_len);
    }
    if (json_is_array(v)) {
        return join_parts(p, v, i, out);
    }
    return field_error(p, field, "must be a string or an array of text parts");
}

static duet_code parse_messages(parser *p, const json_t *root, duet_openai_request *r)
{
    json_t *v = member(root, "messages");
    if (!v) {
        return field_error(p, "messages", "is required");
    }
    if (!json_is_array(v)) {
        return field_error(p, "messages", "must be an array");
    }
    size_t n = json_array_size(v);
    if (n == 0) {
        return field_error(p, "messages", "must hold at least one message");
    }
    if (n > DUET_OPENAI_MAX_MESSAGES) {
        return field_error(p, "messages", "holds %zu messages; the limit is %d", n,
                           DUET_OPENAI_MAX_MESSAGES);
    }
    r->messages = calloc(n, sizeof *r->messages);
    if (!r->messages) {
        return out_of_memory(p);
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *msg = json_array_get(v, i);
        if (!json_is_object(msg)) {
            char field[DUET_OPENAI_PARAM_MAX];
            snprintf(field, sizeof field, "messages[%zu]", i);
            return field_error(p, field, "must be an object");
        }
        duet_openai_message *m = &r->messages[i];
        if (parse_role(p, msg, i, &m->role) != DUET_OK || refuse_tool_calls(p, msg, i) != DUET_OK ||
            parse_content(p, msg, i, m) != DUET_OK) {
            return p->st->code;
        }
        r->n_messages = i + 1; /* free() then finds exactly what was allocated */
    }
    return DUET_OK;
}

static duet_code parse_stop(parser *p, const json_t *root, duet_openai_request *r)
{
    json_t *v = member(root, "stop");
    if (!v) {
        return DUET_OK;
    }
    if (json_is_string(v)) {
        if (json_string_length(v) == 0) {
            return field_error(p, "stop", "must not be empty");
        }
        if (copy_text(p, v, "stop", &r->stop[0], NULL) != DUET_OK) {
            return p->st->code;
        }
        r->n_stop = 1;
        return DUET_OK;
    }
    if (!json_is_array(v)) {
        return field_error(p, "stop", "must be a string or an array of strings");
    }
    if (json_array_size(v) > DUET_OPENAI_MAX_STOP) {
        return field_error(p, "stop", "holds %zu strings; the limit is %d", json_array_size(v),
                           DUET_OPENAI_MAX_STOP);
    }
    for (size_t j = 0; j < json_array_size(v); j++) {
        const json_t *s = json_array_get(v, j);
        char field[DUET_OPENAI_PARAM_MAX];
        snprintf(field, sizeof field, "stop[%zu]", j);
        if (json_is_string(s) && json_string_length(s) == 0) {
            return field_error(p, field, "must not be empty");
        }
        if (copy_text(p, s, field, &r->stop[j], NULL) != DUET_OK) {
            return p->st->code;
        }
        r->n_stop = j + 1;
    }
    return DUET_OK;
}

static duet_code parse_stream(parser *p, const json_t *root, duet_openai_request *r)
{
    if (read_bool(p, root, "stream", "stream", &r->stream) != DUET_OK) {
        return p->st->code;
    }
    json_t *opts = member(root, "stream_options");
    if (!opts) {
        return DUET_OK;
    }
    if (!json_is_object(opts)) {
        return field_error(p, "stream_options", "must be an object");
    }
    return read_bool(p, opts, "include_usage", "stream_options.include_usage", &r->include_usage);
}

/* OpenAI's max_completion_tokens replaced max_tokens; when a client sends both, the newer
 * one is what it means. */
static duet_code parse_max_tokens(parser *p, const json_t *root, duet_openai_request *r)
{
    bool has_old = false, has_new = false;
    json_int_t old_value = 0, new_value = 0;
    if (read_integer(p, root, "max_tokens", 1, UINT32_MAX, &has_old, &old_value) != DUET_OK ||
        read_integer(p, root, "max_completion_tokens", 1, UINT32_MAX, &has_new, &new_value) !=
            DUET_OK) {
        return p->st->code;
    }
    if (has_old || has_new) {
        r->has_max_tokens = true;
        r->max_tokens = (uint32_t)(has_new ? new_value : old_value);
    }
    return DUET_OK;
}

static duet_code parse_n(parser *p, const json_t *root)
{
    bool has = false;
    json_int_t n = 0;
    if (read_integer(p, root, "n", INT64_MIN, INT64_MAX, &has, &n) != DUET_OK) {
        return p->st->code;
    }
    if (has && n != 1) {
        return field_error(p, "n", "must be 1: duet returns one choice per request");
    }
    return DUET_OK;
}

static bool session_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

/* The id reaches logs, the session store and the worker, so it is kept to a plain alphabet. */
static duet_code parse_session_id(parser *p, const json_t *root, duet_openai_request *r)
{
    if (read_string(p, root, "session_id", &r->session_id) != DUET_OK) {
        return p->st->code;
    }
    if (!r->session_id) {
        return DUET_OK;
    }
    size_t n = strlen(r->session_id);
    bool ok = n >= 1 && n <= DUET_OPENAI_MAX_SESSION_ID;
    for (size_t i = 0; ok && i < n; i++) {
        ok = session_id_char(r->session_id[i]);
    }
    if (!ok) {
        return field_error(p, "session_id",
                           "must be 1 to %d characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'",
                           DUET_OPENAI_MAX_SESSION_ID);
    }
    return DUET_OK;
}

static duet_code parse_sampling(parser *p, const json_t *root, duet_openai_request *r)
{
    bool has_seed = false, has_top_k = false;
    json_int_t seed = 0, top_k = 0;
    if (read_number(p, root, "temperature", 0, 2, &r->has_temperature, &r->temperature) ||
        read_number(p, root, "top_p", 0, 1, &r->has_top_p, &r->top_p) ||
        read_number(p, root, "presence_penalty", -2, 2, &r->has_presence_penalty,
                    &r->presence_penalty) ||
        read_number(p, root, "frequency_penalty", -2, 2, &r->has_frequency_penalty,
                    &r->frequency_penalty) ||
        read_integer(p, root, "seed", INT64_MIN, INT64_MAX, &has_seed, &seed) ||
        read_integer(p, root, "top_k", 0, UINT32_MAX, &has_top_k, &top_k) ||
        read_number(p, root, "min_p", 0, 1, &r->has_min_p, &r->min_p) ||
        read_number(p, root, "repeat_penalty", 0, 10, &r->has_repeat_penalty, &r->repeat_penalty)) {
        return p->st->code;
    }
    if (r->has_repeat_penalty && r->repeat_penalty <= 0) {
        return field_error(p, "repeat_penalty", "must be greater than 0 (1 = off)");
    }
    r->has_seed = has_seed;
    r->seed = seed;
    r->has_top_k = has_top_k;
    r->top_k = (uint32_t)top_k;
    return DUET_OK;
}

static duet_code parse_object(parser *p, const json_t *root, duet_openai_request *r)
{
    if (read_string(p, root, "model", &r->model) || parse_messages(p, root, r) ||
        parse_stream(p, root, r) || parse_sampling(p, root, r) || parse_max_tokens(p, root, r) ||
        parse_stop(p, root, r) || parse_n(p, root) || read_string(p, root, "user", &r->user) ||
        parse_session_id(p, root, r)) {
        return p->st->code;
    }
    return DUET_OK;
}

duet_code duet_openai_request_parse(const char *body, size_t len, duet_openai_request *out,
                                    char param[DUET_OPENAI_PARAM_MAX], duet_status *st)
{
    duet_status local;
    parser p = {.st = st ? st : &local, .param = param};
    memset(out, 0, sizeof *out);
    if (param) {
        param[0] = '\0';
    }
    if (len > DUET_OPENAI_MAX_BODY_BYTES) {
        return duet_status_set(p.st, DUET_INVALID_ARGUMENT,
                               "request body is %zu bytes; the limit is %zu", len,
                               DUET_OPENAI_MAX_BODY_BYTES);
    }
    if (!body) {
        body = "";
        len = 0;
    }
    if (!nesting_within(body, len, DUET_OPENAI_MAX_DEPTH)) {
        return duet_status_set(p.st, DUET_INVALID_ARGUMENT,
                               "request body nests arrays and objects deeper than %d levels",
                               DUET_OPENAI_MAX_DEPTH);
    }
    json_error_t err;
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, &err);
    if (!root) {
        return duet_status_set(p.st, DUET_INVALID_ARGUMENT,
                               "request body is not valid JSON (line %d, column %d): %s", err.line,
                               err.column, err.text);
    }
    duet_code rc;
    if (!json_is_object(root)) {
        rc = duet_status_set(p.st, DUET_INVALID_ARGUMENT, "request body must be a JSON object");
    } else {
        rc = parse_object(&p, root, out);
    }
    json_decref(root);
    if (rc != DUET_OK) {
        duet_openai_request_free(out);
        return rc;
    }
    duet_status_clear(st);
    return DUET_OK;
}

void duet_openai_request_free(duet_openai_request *r)
{
    for (size_t i = 0; i < r->n_messages; i++) {
        free(r->messages[i].content);
    }
    free(r->messages);
    for (size_t j = 0; j < r->n_stop; j++) {
        free(r->stop[j]);
    }
    free(r->model);
    free(r->user);
    free(r->session_id);
    memset(r, 0, sizeof *r);
}

const char *duet_openai_role_name(duet_openai_role role)
{
    switch (role) {
    case DUET_OPENAI_ROLE_SYSTEM:
        return "system";
    case DUET_OPENAI_ROLE_USER:
        return "user";
    case DUET_OPENAI_ROLE_ASSISTANT:
        return "assistant";
    }
    return "unknown";
}
