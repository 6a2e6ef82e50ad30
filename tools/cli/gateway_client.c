#include "gateway_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway_errors.h"
#include "sse_reader.h"

#define MAX_REPLY_BYTES (64u << 20) /* a session with its messages */
#define MAX_EVENT_BYTES (16u << 20) /* one chunk of a stream */
#define CONNECT_TIMEOUT_S 10L
#define CALL_TIMEOUT_S 120L /* session calls; streams may take as long as they take */

struct duet_gateway {
    duet_gateway_config cfg;
    char *base; /* the URL without trailing slashes */
    CURL *curl; /* kept between requests: it keeps the connection */
    char curl_error[CURL_ERROR_SIZE];
};

duet_code duet_gateway_open(const duet_gateway_config *cfg, duet_gateway **out, duet_status *st)
{
    *out = NULL;
    const char *url = cfg->url ? cfg->url : "";
    size_t scheme = strncmp(url, "http://", 7) == 0 ? 7 : strncmp(url, "https://", 8) == 0 ? 8 : 0;
    if (scheme == 0 || url[scheme] == '\0' || url[scheme] == '/') {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "%s: the gateway URL looks like http://HOST:PORT or "
                               "https://HOST:PORT",
                               url);
    }
    if (cfg->ca_file) {
        FILE *f = fopen(cfg->ca_file, "r");
        if (!f) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT, "--ca %s: cannot read it: %s",
                                   cfg->ca_file, strerror(errno));
        }
        fclose(f);
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return duet_status_set(st, DUET_INTERNAL, "libcurl failed to start");
    }
    duet_gateway *gw = calloc(1, sizeof *gw);
    if (gw) {
        gw->cfg = *cfg;
        gw->base = strdup(url);
        gw->curl = curl_easy_init();
    }
    if (!gw || !gw->base || !gw->curl) {
        duet_gateway_close(gw);
        if (!gw) {
            curl_global_cleanup();
        }
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t n = strlen(gw->base); n > scheme && gw->base[n - 1] == '/'; n--) {
        gw->base[n - 1] = '\0';
    }
    *out = gw;
    return DUET_OK;
}

void duet_gateway_close(duet_gateway *gw)
{
    if (!gw) {
        return;
    }
    if (gw->curl) {
        curl_easy_cleanup(gw->curl);
    }
    free(gw->base);
    free(gw);
    curl_global_cleanup();
}

const char *duet_gateway_url(const duet_gateway *gw)
{
    return gw->cfg.url;
}

/* ---- one exchange ---- */

/* What the answer has said so far. */
typedef struct {
    long status;
    bool event_stream; /* Content-Type: text/event-stream */
    char retry_after[32];
    char session[DUET_SESSION_ID_MAX];
    char *body; /* the body of a JSON answer or of a refusal */
    size_t len, cap;
    bool too_big;
    /* a stream */
    duet_sse_reader *sse;
    duet_gateway_text_fn on_text;
    void *arg;
    duet_gateway_answer *ans;
    bool done;             /* data: [DONE] came */
    char cut_off[300];     /* the message of an error event */
    duet_status sse_error; /* the reader failed */
    volatile sig_atomic_t *stop;
} exchange;

/* Copies a header's value (after "Name:" and spaces, without the line end) when line is
 * that header. */
static bool header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':') {
        return false;
    }
    const char *v = line + n + 1;
    size_t vlen = len - n - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ')) {
        vlen--;
    }
    snprintf(out, cap, "%.*s", (int)vlen, v);
    return true;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    exchange *x = arg;
    size_t len = size * nmemb;
    char type[64];
    if (len > 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* a new status line (after a 100 Continue, say): what came before is void */
        x->status = 0;
        sscanf(line, "HTTP/%*s %ld", &x->status);
        x->event_stream = false;
        x->retry_after[0] = '\0';
        return len;
    }
    if (header_value(line, len, "Content-Type", type, sizeof type)) {
        x->event_stream = strncasecmp(type, "text/event-stream", 17) == 0;
    }
    header_value(line, len, "Retry-After", x->retry_after, sizeof x->retry_after);
    if (header_value(line, len, "X-Duet-Session", x->session, sizeof x->session) && x->ans &&
        !x->ans->session_id[0]) {
        memcpy(x->ans->session_id, x->session, sizeof x->session);
    }
    return len;
}

static bool append_body(exchange *x, const char *p, size_t n)
{
    if (x->len + n + 1 > x->cap) {
        if (x->len + n > MAX_REPLY_BYTES) {
            x->too_big = true;
            return false;
        }
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + n + 1) {
            cap *= 2;
        }
        char *b = realloc(x->body, cap);
        if (!b) {
            x->too_big = true;
            return false;
        }
        x->body = b;
        x->cap = cap;
    }
    memcpy(x->body + x->len, p, n);
    x->len += n;
    x->body[x->len] = '\0';
    return true;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    exchange *x = arg;
    size_t len = size * nmemb;
    if (x->sse && x->status == 200 && x->event_stream) {
        duet_code rc = duet_sse_reader_feed(x->sse, p, len, &x->sse_error);
        /* CANCELLED: [DONE] or an error event came; what follows is only the stream's end */
        return rc == DUET_OK || rc == DUET_CANCELLED ? len : 0;
    }
    return append_body(x, p, len) ? len : 0;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    exchange *x = arg;
    return x->stop && *x->stop ? 1 : 0;
}

/* Sets up and runs one request; the caller reads x and the CURLcode. */
static CURLcode perform(duet_gateway *gw, exchange *x, const char *method, const char *path,
                        const char *session_id, const char *body, bool stream)
{
    CURL *c = gw->curl;
    curl_easy_reset(c);
    gw->curl_error[0] = '\0';
    char url[2048];
    snprintf(url, sizeof url, "%s%s", gw->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, gw->curl_error);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "duet-cli");
    if (!stream) {
        curl_easy_setopt(c, CURLOPT_TIMEOUT, CALL_TIMEOUT_S);
    }
    if (gw->cfg.ca_file) {
        curl_easy_setopt(c, CURLOPT_CAINFO, gw->cfg.ca_file);
    }
    struct curl_slist *h = NULL;
    char line[1024];
    if (gw->cfg.api_key && gw->cfg.api_key[0]) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", gw->cfg.api_key);
        h = curl_slist_append(h, line);
    }
    if (session_id) {
        snprintf(line, sizeof line, "X-Duet-Session: %s", session_id);
        h = curl_slist_append(h, line);
    }
    h = curl_slist_append(h, stream ? "Accept: text/event-stream" : "Accept: application/json");
    /* no "Expect: 100-continue" round trip before larger bodies */
    h = curl_slist_append(h, "Expect:");
    if (body) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "POST") != 0 || !body) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    if (x->stop) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    }
    CURLcode rc = h ? curl_easy_perform(c) : CURLE_OUT_OF_MEMORY;
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    return rc;
}

/* The status of an exchange that did not succeed at the HTTP level, or DUET_OK. */
static duet_code refusal(duet_gateway *gw, CURLcode rc, exchange *x, const char *session_id,
                         duet_status *st)
{
    if (x->too_big) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                               "the gateway's answer is larger than %u MiB", MAX_REPLY_BYTES >> 20);
    }
    if (rc != CURLE_OK) {
        return duet_gateway_transport_status(rc, gw->curl_error, gw->cfg.url, gw->cfg.ca_file, st);
    }
    if (x->status / 100 != 2) {
        duet_gateway_refusal r = {
            .url = gw->cfg.url,
            .http_status = x->status,
            .body = x->body,
            .retry_after = x->retry_after[0] ? x->retry_after : NULL,
            .key_source = gw->cfg.api_key && gw->cfg.api_key[0] ? gw->cfg.key_source : NULL,
            .session_id = session_id,
        };
        return duet_gateway_refusal_status(&r, st);
    }
    return DUET_OK;
}

duet_code duet_gateway_call(duet_gateway *gw, const char *method, const char *path,
                            const char *session_id, const json_t *body, json_t **reply,
                            duet_status *st)
{
    *reply = NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !text) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "the request is not valid UTF-8 text");
    }
    exchange x = {0};
    CURLcode rc = perform(gw, &x, method, path, session_id, text, false);
    free(text);
    duet_code code = refusal(gw, rc, &x, session_id, st);
    if (code == DUET_OK) {
        json_error_t err;
        *reply = x.body ? json_loads(x.body, 0, &err) : NULL;
        if (!*reply) {
            code = duet_status_set(st, DUET_INTERNAL, "the gateway at %s answered %s %s with %s",
                                   gw->cfg.url, method, path,
                                   x.body ? "something that is not JSON" : "nothing");
        }
    }
    free(x.body);
    return code;
}

/* ---- streamed answers ---- */

static unsigned count(json_t *v)
{
    json_int_t n = json_integer_value(v);
    return n > 0 && n < (json_int_t)4000000000u ? (unsigned)n : 0;
}

/* One chunk of the stream (or [DONE], or an error event). False: nothing more to read. */
static bool on_event(void *arg, const char *data, size_t len)
{
    exchange *x = arg;
    duet_gateway_answer *ans = x->ans;
    if (strcmp(data, "[DONE]") == 0) {
        x->done = true;
        return false;
    }
    json_t *root = json_loadb(data, len, 0, NULL);
    if (!root) {
        return true; /* not a chunk this client knows: skip it */
    }
    json_t *err = json_object_get(root, "error");
    if (err) {
        const char *msg = json_string_value(json_object_get(err, "message"));
        snprintf(x->cut_off, sizeof x->cut_off, "%s", msg ? msg : "no reason given");
        json_decref(root);
        return false;
    }
    json_t *duet = json_object_get(root, "duet");
    const char *sid = json_string_value(json_object_get(duet, "session_id"));
    if (sid && !ans->session_id[0]) {
        snprintf(ans->session_id, sizeof ans->session_id, "%s", sid);
    }
    json_t *trimmed = json_object_get(duet, "trimmed");
    if (json_is_object(trimmed)) {
        ans->trimmed_messages = count(json_object_get(trimmed, "dropped_messages"));
        ans->summarized = json_is_true(json_object_get(trimmed, "summarized"));
    }
    json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
    json_t *content = json_object_get(json_object_get(choice, "delta"), "content");
    if (json_is_string(content) && json_string_length(content) > 0) {
        ans->text_bytes += json_string_length(content);
        x->on_text(x->arg, json_string_value(content), json_string_length(content));
    }
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    if (finish) {
        snprintf(ans->finish_reason, sizeof ans->finish_reason, "%s", finish);
    }
    json_t *usage = json_object_get(root, "usage");
    if (json_is_object(usage)) {
        ans->prompt_tokens = count(json_object_get(usage, "prompt_tokens"));
        ans->completion_tokens = count(json_object_get(usage, "completion_tokens"));
    }
    json_decref(root);
    return true;
}

duet_code duet_gateway_chat_stream(duet_gateway *gw, const char *session_id, const json_t *body,
                                   duet_gateway_text_fn on_text, void *arg,
                                   volatile sig_atomic_t *stop, duet_gateway_answer *ans,
                                   duet_status *st)
{
    memset(ans, 0, sizeof *ans);
    json_t *req = json_copy((json_t *)body); /* shallow: the messages stay the caller's */
    char *text = NULL;
    if (req && json_object_set_new(req, "stream", json_true()) == 0 &&
        json_object_set_new(req, "stream_options", json_pack("{s:b}", "include_usage", 1)) == 0) {
        text = json_dumps(req, JSON_COMPACT);
    }
    json_decref(req);
    if (!text) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "the message is not valid UTF-8 text");
    }
    exchange x = {.on_text = on_text, .arg = arg, .ans = ans, .stop = stop};
    x.sse = duet_sse_reader_new(MAX_EVENT_BYTES, on_event, &x);
    if (!x.sse) {
        free(text);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    CURLcode rc = perform(gw, &x, "POST", "/v1/chat/completions", session_id, text, true);
    free(text);
    duet_sse_reader_free(x.sse);
    const char *sid = session_id ? session_id : (ans->session_id[0] ? ans->session_id : NULL);
    duet_code code;
    if (rc == CURLE_ABORTED_BY_CALLBACK && stop && *stop) {
        code = duet_status_set(st, DUET_CANCELLED, "stopped");
    } else if (rc == CURLE_WRITE_ERROR && x.sse_error.code != DUET_OK) {
        code = duet_status_set(st, x.sse_error.code, "the answer could not be read: %s",
                               x.sse_error.message);
    } else if (x.status == 200 && x.event_stream) {
        if (x.cut_off[0]) {
            code = duet_status_set(st, DUET_UNAVAILABLE, "the answer was cut off: %s", x.cut_off);
        } else if (!x.done) {
            code = duet_status_set(
                st, DUET_UNAVAILABLE, "the gateway at %s closed the connection mid-answer%s%s",
                gw->cfg.url, rc != CURLE_OK ? ": " : "",
                rc != CURLE_OK ? (gw->curl_error[0] ? gw->curl_error : curl_easy_strerror(rc))
                               : "");
        } else {
            code = DUET_OK;
        }
    } else {
        code = refusal(gw, rc, &x, sid, st);
        if (code == DUET_OK) {
            code = duet_status_set(st, DUET_INTERNAL, "the gateway at %s answered without a stream",
                                   gw->cfg.url);
        }
    }
    free(x.body);
    return code;
}
