#include "session_calls.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define LIST_PAGE 1000     /* the most the gateway gives in one page */
#define MAX_LIST_PAGES 100 /* a bound, should the total keep moving */
#define AMBIGUOUS_SHOWN 4  /* ids named in an "ambiguous prefix" message */

duet_code duet_sessions_list(duet_gateway *gw, json_t **sessions, duet_status *st)
{
    json_t *all = json_array();
    *sessions = NULL;
    if (!all) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (int page = 0; page < MAX_LIST_PAGES; page++) {
        char path[96];
        snprintf(path, sizeof path, "/v1/sessions?limit=%d&offset=%zu", LIST_PAGE,
                 json_array_size(all));
        json_t *reply;
        if (duet_gateway_call(gw, "GET", path, NULL, NULL, &reply, st) != DUET_OK) {
            json_decref(all);
            return st->code;
        }
        json_t *data = json_object_get(reply, "data");
        size_t got = json_array_size(data);
        json_int_t total = json_integer_value(json_object_get(reply, "total"));
        if (!json_is_array(data)) {
            json_decref(reply);
            json_decref(all);
            return duet_status_set(st, DUET_INTERNAL,
                                   "the gateway's session list has no \"data\" array");
        }
        json_array_extend(all, data);
        json_decref(reply);
        if (got == 0 || (json_int_t)json_array_size(all) >= total) {
            break;
        }
    }
    *sessions = all;
    return DUET_OK;
}

/* prefix lowercased into out; false when it is empty, too long or not hex. */
static bool hex_prefix(const char *prefix, char *out, size_t cap)
{
    size_t n = strlen(prefix);
    if (n == 0 || n >= cap) {
        return false;
    }
    for (size_t i = 0; i <= n; i++) {
        if (i < n && !isxdigit((unsigned char)prefix[i])) {
            return false;
        }
        out[i] = (char)tolower((unsigned char)prefix[i]);
    }
    return true;
}

static duet_code not_hex(const char *prefix, duet_status *st)
{
    return duet_status_set(st, DUET_INVALID_ARGUMENT,
                           "\"%s\" is not a session id: ids are %d hex digits, and any unique "
                           "start of one will do",
                           prefix, DUET_SESSION_ID_HEX);
}

duet_code duet_sessions_match(const json_t *sessions, const char *prefix, json_t **match,
                              duet_status *st)
{
    char want[DUET_SESSION_ID_MAX];
    *match = NULL;
    if (!hex_prefix(prefix, want, sizeof want)) {
        return not_hex(prefix, st);
    }
    size_t n = strlen(want), found = 0;
    char names[AMBIGUOUS_SHOWN * 12] = "";
    size_t i;
    json_t *s;
    json_array_foreach(sessions, i, s)
    {
        const char *id = json_string_value(json_object_get(s, "id"));
        if (!id || strncmp(id, want, n) != 0) {
            continue;
        }
        if (found < AMBIGUOUS_SHOWN) {
            size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, "%s%.8s", found ? ", " : "", id);
        }
        found++;
        *match = s;
    }
    if (found == 1) {
        return DUET_OK;
    }
    *match = NULL;
    if (found == 0) {
        return duet_status_set(st, DUET_NOT_FOUND,
                               "no session of this API key starts with %s (duet sessions lists "
                               "them)",
                               want);
    }
    return duet_status_set(st, DUET_INVALID_ARGUMENT,
                           "%s is the start of %zu sessions (%s%s); give more of the id", want,
                           found, names, found > AMBIGUOUS_SHOWN ? ", ..." : "");
}

duet_code duet_sessions_resolve(duet_gateway *gw, const char *id_or_prefix,
                                char id[DUET_SESSION_ID_MAX], duet_status *st)
{
    if (!hex_prefix(id_or_prefix, id, DUET_SESSION_ID_MAX)) {
        return not_hex(id_or_prefix, st);
    }
    if (strlen(id) >= DUET_SESSION_ID_HEX) {
        return DUET_OK; /* a whole id: the gateway judges it */
    }
    json_t *all, *match;
    if (duet_sessions_list(gw, &all, st) != DUET_OK) {
        return st->code;
    }
    duet_code rc = duet_sessions_match(all, id_or_prefix, &match, st);
    if (rc == DUET_OK) {
        snprintf(id, DUET_SESSION_ID_MAX, "%s", json_string_value(json_object_get(match, "id")));
    }
    json_decref(all);
    return rc;
}

/* Sets body[key] to the text; false when it is not valid UTF-8. */
static bool set_text(json_t *body, const char *key, const char *text)
{
    json_t *v = json_string(text);
    return v && json_object_set_new(body, key, v) == 0;
}

static duet_code not_utf8(const char *what, duet_status *st)
{
    return duet_status_set(st, DUET_INVALID_ARGUMENT, "the %s is not valid UTF-8 text", what);
}

duet_code duet_sessions_get(duet_gateway *gw, const char *id, json_t **session, duet_status *st)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/sessions/%s", id);
    return duet_gateway_call(gw, "GET", path, id, NULL, session, st);
}

duet_code duet_sessions_create(duet_gateway *gw, const char *title, const char *system_prompt,
                               json_t **session, duet_status *st)
{
    json_t *body = json_object();
    if (title && !set_text(body, "title", title)) {
        json_decref(body);
        return not_utf8("title", st);
    }
    if (system_prompt && !set_text(body, "system_prompt", system_prompt)) {
        json_decref(body);
        return not_utf8("system prompt", st);
    }
    duet_code rc = duet_gateway_call(gw, "POST", "/v1/sessions", NULL, body, session, st);
    json_decref(body);
    return rc;
}

duet_code duet_sessions_update(duet_gateway *gw, const char *id, const char *title, bool set_prompt,
                               const char *prompt, json_t **session, duet_status *st)
{
    json_t *body = json_object();
    if (session) {
        *session = NULL;
    }
    if (title && !set_text(body, "title", title)) {
        json_decref(body);
        return not_utf8("title", st);
    }
    if (set_prompt && (prompt ? !set_text(body, "system_prompt", prompt)
                              : json_object_set_new(body, "system_prompt", json_null()) != 0)) {
        json_decref(body);
        return not_utf8("system prompt", st);
    }
    char path[128];
    snprintf(path, sizeof path, "/v1/sessions/%s", id);
    json_t *reply = NULL;
    duet_code rc = duet_gateway_call(gw, "PATCH", path, id, body, &reply, st);
    json_decref(body);
    if (session) {
        *session = reply;
    } else {
        json_decref(reply);
    }
    return rc;
}

duet_code duet_sessions_delete(duet_gateway *gw, const char *id, duet_status *st)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/sessions/%s", id);
    json_t *reply;
    duet_code rc = duet_gateway_call(gw, "DELETE", path, id, NULL, &reply, st);
    json_decref(reply);
    return rc;
}
