#include "sse_client.h"

#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_ANSWER_BYTES (64u << 20)

static duet_code connect_to(const char *url, char *host, size_t host_cap, int *fd, duet_status *st)
{
    if (strncmp(url, "https://", 8) == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "%s: the duet CLI speaks plain HTTP only so far; reach the "
                               "gateway over http:// (e.g. through an SSH tunnel)",
                               url);
    }
    if (strncmp(url, "http://", 7) != 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "%s: the gateway URL starts with http://",
                               url);
    }
    const char *hp = url + 7;
    size_t len = strcspn(hp, "/");
    if (len == 0 || len >= host_cap) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "%s: no host in the URL", url);
    }
    memcpy(host, hp, len);
    host[len] = '\0';
    char name[300], port[16] = "80";
    char *colon = strrchr(host, ':');
    if (colon && !strchr(colon, ']')) {
        snprintf(port, sizeof port, "%s", colon + 1);
        snprintf(name, sizeof name, "%.*s", (int)(colon - host), host);
    } else {
        snprintf(name, sizeof name, "%s", host);
    }
    if (name[0] == '[') { /* [v6] */
        memmove(name, name + 1, strlen(name));
        name[strcspn(name, "]")] = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rv = getaddrinfo(name, port, &hints, &res);
    if (rv != 0) {
        return duet_status_set(st, DUET_UNAVAILABLE, "cannot resolve %s: %s", name,
                               gai_strerror(rv));
    }
    int err = 0;
    *fd = -1;
    for (struct addrinfo *a = res; a && *fd < 0; a = a->ai_next) {
        int s = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (s >= 0 && connect(s, a->ai_addr, a->ai_addrlen) == 0) {
            *fd = s;
        } else {
            err = errno;
            if (s >= 0) {
                close(s);
            }
        }
    }
    freeaddrinfo(res);
    if (*fd < 0) {
        return duet_status_set(st, DUET_UNAVAILABLE,
                               "cannot reach the gateway at %s: %s (is duet-gateway running "
                               "there?)",
                               url, strerror(err));
    }
    return DUET_OK;
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) {
                continue;
            }
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* A growing buffer of what the gateway sent. */
typedef struct {
    char *p;
    size_t len, cap;
} buffer;

static bool read_more(int fd, buffer *b)
{
    if (b->cap - b->len < 4097) {
        size_t cap = b->cap ? b->cap * 2 : 16384;
        char *p = cap <= MAX_ANSWER_BYTES ? realloc(b->p, cap) : NULL;
        if (!p) {
            return false;
        }
        b->p = p;
        b->cap = cap;
    }
    ssize_t r;
    do {
        r = read(fd, b->p + b->len, b->cap - b->len - 1);
    } while (r < 0 && errno == EINTR);
    if (r <= 0) {
        return false;
    }
    b->len += (size_t)r;
    b->p[b->len] = '\0';
    return true;
}

/* The message of an OpenAI-style error body, or the body itself. */
static void error_message(const char *body, char *out, size_t cap)
{
    json_t *root = json_loads(body, 0, NULL);
    const char *msg = NULL;
    json_unpack(root, "{s:{s:s}}", "error", "message", &msg);
    snprintf(out, cap, "%s", msg ? msg : body);
    json_decref(root);
}

static duet_code http_error(int status, const char *body, const char *retry, duet_status *st)
{
    char msg[400];
    error_message(body, msg, sizeof msg);
    switch (status) {
    case 401:
        return duet_status_set(st, DUET_UNAUTHENTICATED,
                               "the gateway refused the API key (%s); give the right one with "
                               "--api-key or DUET_API_KEY",
                               msg);
    case 429:
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "over the limits: %s (retry in %s s)",
                               msg, retry ? retry : "a few");
    case 503:
        return duet_status_set(st, DUET_UNAVAILABLE, "the gateway cannot answer now: %s", msg);
    default:
        return duet_status_set(st, status / 100 == 4 ? DUET_INVALID_ARGUMENT : DUET_INTERNAL,
                               "the gateway answered %d: %s", status, msg);
    }
}

/* One SSE "data:" payload. Returns false at [DONE] or on an error event. */
static bool handle_event(const char *data, void (*on_text)(void *, const char *, size_t), void *arg,
                         duet_cli_answer *ans, duet_code *rc, duet_status *st)
{
    if (strcmp(data, "[DONE]") == 0) {
        return false;
    }
    json_t *root = json_loads(data, 0, NULL);
    if (!root) {
        return true; /* not ours to judge: skip what we cannot read */
    }
    json_t *err = json_object_get(root, "error");
    if (err) {
        const char *msg = json_string_value(json_object_get(err, "message"));
        *rc = duet_status_set(st, DUET_UNAVAILABLE, "the answer was cut off: %s",
                              msg ? msg : "unknown error");
        json_decref(root);
        return false;
    }
    json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
    json_t *delta = json_object_get(choice, "delta");
    json_t *content = json_object_get(delta, "content");
    if (json_is_string(content) && json_string_length(content) > 0) {
        on_text(arg, json_string_value(content), json_string_length(content));
    }
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    if (finish) {
        snprintf(ans->finish_reason, sizeof ans->finish_reason, "%s", finish);
    }
    json_t *usage = json_object_get(root, "usage");
    if (json_is_object(usage)) {
        ans->prompt_tokens = (unsigned)json_integer_value(json_object_get(usage, "prompt_tokens"));
        ans->completion_tokens =
            (unsigned)json_integer_value(json_object_get(usage, "completion_tokens"));
    }
    json_t *trimmed = json_object_get(json_object_get(root, "duet"), "trimmed");
    if (json_is_object(trimmed)) {
        ans->trimmed_messages =
            (unsigned)json_integer_value(json_object_get(trimmed, "dropped_messages"));
    }
    json_decref(root);
    return true;
}

duet_code duet_cli_chat(const char *gateway_url, const char *api_key, const char *body,
                        void (*on_text)(void *arg, const char *text, size_t len), void *arg,
                        duet_cli_answer *answer, duet_status *st)
{
    memset(answer, 0, sizeof *answer);
    char host[300];
    int fd;
    if (connect_to(gateway_url, host, sizeof host, &fd, st) != DUET_OK) {
        return st->code;
    }
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer "
                     "%s\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     host, api_key ? api_key : "", strlen(body));
    /* one write for head and body: two small writes meet Nagle and delayed ACKs */
    size_t body_len = strlen(body);
    char *req = n > 0 && (size_t)n < sizeof head ? malloc((size_t)n + body_len) : NULL;
    bool sent = false;
    if (req) {
        memcpy(req, head, (size_t)n);
        memcpy(req + n, body, body_len);
        sent = write_all(fd, req, (size_t)n + body_len);
        free(req);
    }
    if (!sent) {
        close(fd);
        return duet_status_set(st, DUET_UNAVAILABLE, "the gateway at %s closed the connection",
                               gateway_url);
    }
    buffer b = {0};
    duet_code rc = DUET_OK;
    char *end = NULL;
    while (!(end = b.p ? strstr(b.p, "\r\n\r\n") : NULL)) {
        if (!read_more(fd, &b)) {
            free(b.p);
            close(fd);
            return duet_status_set(st, DUET_UNAVAILABLE,
                                   "the gateway at %s closed the connection without an answer",
                                   gateway_url);
        }
    }
    int status = 0;
    sscanf(b.p, "HTTP/1.%*c %d", &status);
    *end = '\0';
    bool chunked = strstr(b.p, "Transfer-Encoding: chunked") != NULL;
    char retry[16] = "";
    char *ra = strstr(b.p, "Retry-After: ");
    if (ra) {
        snprintf(retry, sizeof retry, "%.*s", (int)strcspn(ra + 13, "\r\n"), ra + 13);
    }
    size_t pos = (size_t)(end - b.p) + 4;
    if (status != 200 || !chunked) {
        /* a whole body: read it to the end (Connection: close) */
        while (read_more(fd, &b)) {
        }
        rc = http_error(status ? status : 502, b.p + pos, retry[0] ? retry : NULL, st);
        free(b.p);
        close(fd);
        return rc;
    }
    /* chunked framing, then SSE lines in the decoded stream */
    buffer events = {0};
    size_t ev_pos = 0;
    bool going = true;
    while (going) {
        char *crlf = strstr(b.p + pos, "\r\n");
        size_t size = crlf ? strtoul(b.p + pos, NULL, 16) : 0;
        if (!crlf || b.len - (size_t)(crlf + 2 - b.p) < size + 2) {
            if (!read_more(fd, &b)) {
                rc = duet_status_set(st, DUET_UNAVAILABLE,
                                     "the gateway closed the connection mid-answer");
                break;
            }
            continue;
        }
        if (size == 0) {
            break; /* the last chunk */
        }
        const char *data = crlf + 2;
        if (events.cap - events.len < size + 1) {
            size_t cap = (events.len + size + 1) * 2;
            char *p = realloc(events.p, cap);
            if (!p) {
                rc = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
                break;
            }
            events.p = p;
            events.cap = cap;
        }
        memcpy(events.p + events.len, data, size);
        events.len += size;
        events.p[events.len] = '\0';
        pos = (size_t)(data - b.p) + size + 2;
        /* whole events end with a blank line */
        char *ev;
        while (going && (ev = strstr(events.p + ev_pos, "\n\n"))) {
            *ev = '\0';
            const char *line = events.p + ev_pos;
            if (strncmp(line, "data: ", 6) == 0) {
                going = handle_event(line + 6, on_text, arg, answer, &rc, st);
            }
            ev_pos = (size_t)(ev - events.p) + 2;
        }
    }
    free(events.p);
    free(b.p);
    close(fd);
    return rc;
}
