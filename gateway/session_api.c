#include "session_api.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_reply.h"
#include "cli_number.h"

#define SESSIONS_PATH "/v1/sessions"
#define DEFAULT_LIST_LIMIT 50

struct duet_session_api {
    const duet_api_keys *keys;
    duet_session_store *store;
};

static const char *const role_names[] = {"system", "user", "assistant"};

/* ---- JSON ---- */

static json_t *entry_json(const duet_session_entry *e)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "id", e->id, "object", "chat.session",
                     "title", e->title, "created_ms", (json_int_t)e->created_ms, "updated_ms",
                     (json_int_t)e->updated_ms, "messages", (json_int_t)e->n_messages);
}

static json_t *text_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The session object with its system prompt and summary (what GET and PATCH answer). */
static json_t *info_json(const duet_session_info *info)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:o, s:o, s:I}", "id", info->id, "object",
                     "chat.session", "title", info->title, "created_ms",
                     (json_int_t)info->created_ms, "updated_ms", (json_int_t)info->updated_ms,
                     "messages", (json_int_t)info->n_messages, "system_prompt",
                     text_or_null(info->system_prompt), "summary", text_or_null(info->summary),
                     "summary_upto", (json_int_t)info->summary_upto);
}

static json_t *messages_json(const duet_session_messages *ms)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < ms->count; i++) {
        const duet_session_message *m = &ms->items[i];
        json_t *tokens =
            m->tokens == DUET_SESSION_TOKENS_UNKNOWN ? json_null() : json_integer(m->tokens);
        json_t *o = json_pack("{s:I, s:s, s:s, s:b, s:I, s:o}", "seq", (json_int_t)m->seq, "role",
                              role_names[m->role], "content", m->content, "partial", m->partial,
                              "created_ms", (json_int_t)m->created_ms, "tokens", tokens);
        if (!o || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static char *dump(json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    return s;
}

/* ---- requests ---- */

/* The value of name in the query ("a=1&b=2") copied to out; false when absent. Values are
 * numbers here, so no percent-decoding is needed. */
static bool query_value(const char *query, const char *name, char *out, size_t cap)
{
    size_t ln = strlen(name);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > ln && strncmp(p, name, ln) == 0 && p[ln] == '=') {
            snprintf(out, cap, "%.*s", (int)(len - ln - 1), p + ln + 1);
            return true;
        }
        p = amp ? amp + 1 : NULL;
    }
    return false;
}

/* A whole non-negative number from the query, in [lo, hi]; def when absent. */
static bool query_number(duet_http_exchange *x, const char *name, long lo, long hi, long def,
                         long *out)
{
    char v[32];
    if (!query_value(duet_http_query(x), name, v, sizeof v)) {
        *out = def;
        return true;
    }
    if (duet_parse_long(v, lo, hi, out)) {
        return true;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be a whole number from %ld to %ld", name, lo, hi);
    duet_api_reply_error(x, DUET_INVALID_ARGUMENT, msg, name, NULL, 0);
    return false;
}

/* The body as a JSON object of the given fields only ("" body: an empty object); NULL after
 * answering 400. */
static json_t *body_object(duet_http_exchange *x, const char *const *fields)
{
    const uint8_t *body;
    size_t len;
    duet_http_body(x, &body, &len);
    if (len == 0) {
        return json_object();
    }
    json_error_t err;
    json_t *v = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &err);
    char msg[256];
    if (!v || !json_is_object(v)) {
        snprintf(msg, sizeof msg, "the body must be a JSON object%s%s", v ? "" : ": ",
                 v ? "" : err.text);
        json_decref(v);
        duet_api_reply_error(x, DUET_INVALID_ARGUMENT, msg, NULL, NULL, 0);
        return NULL;
    }
    const char *key;
    json_t *value;
    json_object_foreach(v, key, value)
    {
        bool known = false;
        for (size_t i = 0; fields[i] && !known; i++) {
            known = strcmp(key, fields[i]) == 0;
        }
        if (!known) {
            snprintf(msg, sizeof msg,
                     "unknown field \"%.64s\": this call takes title and "
                     "system_prompt",
                     key);
            duet_api_reply_error(x, DUET_INVALID_ARGUMENT, msg, key, NULL, 0);
            json_decref(v); /* key lives in v */
            return NULL;
        }
    }
    return v;
}

/* A string field: absent (*present false), a string, or — when null_ok — null (*out NULL).
 * False after answering 400. */
static bool string_field(duet_http_exchange *x, json_t *obj, const char *name, bool null_ok,
                         bool *present, const char **out)
{
    json_t *v = json_object_get(obj, name);
    *present = v != NULL;
    *out = NULL;
    if (!v || (null_ok && json_is_null(v))) {
        return true;
    }
    if (!json_is_string(v)) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s must be a string%s", name, null_ok ? " or null" : "");
        duet_api_reply_error(x, DUET_INVALID_ARGUMENT, msg, name, NULL, 0);
        return false;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s must not hold a NUL character", name);
        duet_api_reply_error(x, DUET_INVALID_ARGUMENT, msg, name, NULL, 0);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static void reply_status(duet_http_exchange *x, const duet_status *st)
{
    duet_api_reply_error(x, st->code, st->message, NULL,
                         st->code == DUET_NOT_FOUND ? "session_not_found" : NULL, 1000);
}

/* ---- the calls ---- */

static void list_sessions(duet_http_exchange *x, duet_session_api *api, const char *user)
{
    long limit, offset;
    if (!query_number(x, "limit", 1, DUET_SESSION_LIST_MAX, DEFAULT_LIST_LIMIT, &limit) ||
        !query_number(x, "offset", 0, 1000000000L, 0, &offset)) {
        return;
    }
    duet_session_list list;
    duet_status st;
    if (duet_session_store_list(api->store, user, (size_t)limit, (size_t)offset, &list, &st) !=
        DUET_OK) {
        reply_status(x, &st);
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; data && i < list.count; i++) {
        if (json_array_append_new(data, entry_json(&list.items[i])) != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    json_t *root = data ? json_pack("{s:s, s:o, s:I}", "object", "list", "data", data, "total",
                                    (json_int_t)list.total)
                        : NULL;
    duet_session_list_free(&list);
    duet_api_reply_json(x, 200, dump(root), NULL);
}

/* Answers with the session as GET or PATCH shows it, with or without messages. */
static void reply_session(duet_http_exchange *x, duet_session_api *api, const char *user,
                          const char *id, int status, bool with_messages, long after)
{
    duet_session_info info;
    duet_status st;
    if (duet_session_store_get(api->store, user, id, &info, &st) != DUET_OK) {
        reply_status(x, &st);
        return;
    }
    json_t *root = info_json(&info);
    duet_session_info_free(&info);
    if (root && with_messages) {
        duet_session_messages ms;
        if (duet_session_store_messages(api->store, user, id, after, &ms, &st) != DUET_OK) {
            json_decref(root);
            reply_status(x, &st);
            return;
        }
        json_t *arr = messages_json(&ms);
        duet_session_messages_free(&ms);
        if (!arr || json_object_set_new(root, "messages", arr) != 0) {
            json_decref(root);
            root = NULL;
        }
    }
    duet_api_reply_json(x, status, dump(root), NULL);
}

/* The body of POST and PATCH: optional "title" (a string) and "system_prompt" (a string or
 * null). False after answering 400; on true the caller frees f->body. */
typedef struct {
    json_t *body;
    bool has_title, has_prompt;
    const char *title, *prompt;
} session_fields;

static bool read_session_fields(duet_http_exchange *x, session_fields *f)
{
    static const char *const fields[] = {"title", "system_prompt", NULL};
    f->body = body_object(x, fields);
    if (f->body && string_field(x, f->body, "title", false, &f->has_title, &f->title) &&
        string_field(x, f->body, "system_prompt", true, &f->has_prompt, &f->prompt)) {
        return true;
    }
    json_decref(f->body);
    return false;
}

static void create_session(duet_http_exchange *x, duet_session_api *api, const char *user)
{
    session_fields f;
    if (!read_session_fields(x, &f)) {
        return;
    }
    char id[DUET_SESSION_ID_SIZE];
    duet_status st;
    if (duet_session_store_create(api->store, user, f.title, f.prompt, id, &st) != DUET_OK) {
        reply_status(x, &st);
    } else {
        reply_session(x, api, user, id, 201, false, 0);
    }
    json_decref(f.body);
}

static void change_session(duet_http_exchange *x, duet_session_api *api, const char *user,
                           const char *id)
{
    session_fields f;
    if (!read_session_fields(x, &f)) {
        return;
    }
    duet_status st;
    duet_code rc = DUET_OK;
    if (f.has_title) {
        rc = duet_session_store_rename(api->store, user, id, f.title, &st);
    }
    if (rc == DUET_OK && f.has_prompt) {
        rc = duet_session_store_set_system_prompt(api->store, user, id, f.prompt, &st);
    }
    if (rc == DUET_OK && !f.has_title && !f.has_prompt) {
        /* nothing to change: still answer 404 for a session that is not the user's */
        duet_session_info info;
        rc = duet_session_store_get(api->store, user, id, &info, &st);
        duet_session_info_free(&info);
    }
    if (rc != DUET_OK) {
        reply_status(x, &st);
    } else {
        reply_session(x, api, user, id, 200, false, 0);
    }
    json_decref(f.body);
}

static void delete_session(duet_http_exchange *x, duet_session_api *api, const char *user,
                           const char *id)
{
    duet_status st;
    if (duet_session_store_delete(api->store, user, id, &st) != DUET_OK) {
        reply_status(x, &st);
        return;
    }
    duet_api_reply_json(x, 200,
                        dump(json_pack("{s:s, s:s, s:b}", "id", id, "object",
                                       "chat.session.deleted", "deleted", 1)),
                        NULL);
}

static void method_not_allowed(duet_http_exchange *x, const char *allowed)
{
    char msg[128];
    snprintf(msg, sizeof msg, "%s %s is not a call of this API: use %s", duet_http_method(x),
             duet_http_path(x), allowed);
    const char *headers[] = {"Allow", allowed, NULL};
    duet_api_reply_json(x, 405,
                        dump(json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", msg, "type",
                                       "invalid_request_error", "param", "code")),
                        headers);
}

static void on_sessions(duet_http_exchange *x, void *arg)
{
    duet_session_api *api = arg;
    const char *user = duet_api_keys_sign_in(api->keys, x);
    if (!user) {
        duet_api_reply_error(x, DUET_UNAUTHENTICATED, DUET_API_KEY_NEEDED, NULL, NULL, 0);
        return;
    }
    const char *method = duet_http_method(x);
    const char *rest = duet_http_path(x) + strlen(SESSIONS_PATH);
    if (*rest == '/') {
        rest++;
    }
    if (*rest == '\0') {
        if (strcmp(method, "GET") == 0) {
            list_sessions(x, api, user);
        } else if (strcmp(method, "POST") == 0) {
            create_session(x, api, user);
        } else {
            method_not_allowed(x, "GET, POST");
        }
        return;
    }
    if (strchr(rest, '/')) {
        duet_api_reply_error(x, DUET_NOT_FOUND, "no such path: sessions are /v1/sessions/ID", NULL,
                             NULL, 0);
        return;
    }
    if (strcmp(method, "GET") == 0) {
        long after;
        if (query_number(x, "after", 0, INT32_MAX, 0, &after)) {
            reply_session(x, api, user, rest, 200, true, after);
        }
    } else if (strcmp(method, "PATCH") == 0) {
        change_session(x, api, user, rest);
    } else if (strcmp(method, "DELETE") == 0) {
        delete_session(x, api, user, rest);
    } else {
        method_not_allowed(x, "GET, PATCH, DELETE");
    }
}

duet_code duet_session_api_new(duet_http_server *srv, const duet_api_keys *keys,
                               duet_session_store *store, duet_session_api **out, duet_status *st)
{
    duet_session_api *api = calloc(1, sizeof *api);
    if (!api) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    api->keys = keys;
    api->store = store;
    if (duet_http_server_route(srv, NULL, SESSIONS_PATH, true, on_sessions, api, st) != DUET_OK) {
        free(api);
        return st->code;
    }
    *out = api;
    return DUET_OK;
}

void duet_session_api_free(duet_session_api *api)
{
    free(api);
}
