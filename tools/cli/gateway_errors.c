#include "gateway_errors.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* The message of an OpenAI-style error body, else the body itself (cut short). */
static void error_message(const char *body, char *out, size_t cap)
{
    json_t *root = body ? json_loads(body, 0, NULL) : NULL;
    const char *msg = NULL;
    json_unpack(root, "{s:{s:s}}", "error", "message", &msg);
    if (msg) {
        snprintf(out, cap, "%s", msg);
    } else if (body && body[0]) {
        snprintf(out, cap, "%.200s", body);
        out[strcspn(out, "\r\n")] = '\0';
    } else {
        snprintf(out, cap, "no reason given");
    }
    json_decref(root);
}

/* "in 3 s" from a Retry-After of seconds; "in a moment" without one. */
static void retry_text(const char *retry_after, char *out, size_t cap)
{
    if (retry_after && retry_after[0] && strspn(retry_after, "0123456789") == strlen(retry_after)) {
        snprintf(out, cap, "in %s s", retry_after);
    } else {
        snprintf(out, cap, "in a moment");
    }
}

duet_code duet_gateway_refusal_status(const duet_gateway_refusal *r, duet_status *st)
{
    char msg[300], retry[48];
    error_message(r->body, msg, sizeof msg);
    retry_text(r->retry_after, retry, sizeof retry);
    const char *sid = r->session_id ? r->session_id : "";
    switch (r->http_status) {
    case 400:
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "the gateway refused the request: %s",
                               msg);
    case 401:
        if (!r->key_source) {
            return duet_status_set(st, DUET_UNAUTHENTICATED,
                                   "no API key: give one with --api-key KEY, DUET_API_KEY or the "
                                   "first line of ~/.config/duet/api-key");
        }
        return duet_status_set(st, DUET_UNAUTHENTICATED,
                               "the gateway refused the API key from %s (%s); give the right one "
                               "with --api-key, DUET_API_KEY or ~/.config/duet/api-key",
                               r->key_source, msg);
    case 404:
        if (sid[0]) {
            return duet_status_set(st, DUET_NOT_FOUND,
                                   "no session %s for this API key (deleted, or another user's)",
                                   sid);
        }
        return duet_status_set(st, DUET_NOT_FOUND, "the gateway answered 404: %s", msg);
    case 409:
        return duet_status_set(st, DUET_ABORTED,
                               "session %s is still answering another request; try again when "
                               "that answer is done",
                               sid[0] ? sid : "(unnamed)");
    case 413:
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "the request is too big for the gateway: %s", msg);
    case 429:
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "over the limits: %s; retry %s", msg,
                               retry);
    case 503:
        return duet_status_set(st, DUET_UNAVAILABLE, "the gateway cannot answer now: %s; retry %s",
                               msg, retry);
    default:
        return duet_status_set(st,
                               r->http_status / 100 == 4 ? DUET_INVALID_ARGUMENT : DUET_INTERNAL,
                               "the gateway at %s answered %ld: %s", r->url, r->http_status, msg);
    }
}

duet_code duet_gateway_transport_status(CURLcode rc, const char *curl_error, const char *url,
                                        const char *ca_file, duet_status *st)
{
    const char *why = curl_error && curl_error[0] ? curl_error : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "%s: not a gateway URL (%s); it looks like http://HOST:PORT or "
                               "https://HOST:PORT",
                               url, why);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
        return duet_status_set(st, DUET_UNAVAILABLE,
                               "cannot reach the gateway at %s: %s (is duet-gateway running "
                               "there?)",
                               url, why);
    case CURLE_PEER_FAILED_VERIFICATION:
        if (ca_file) {
            return duet_status_set(st, DUET_UNAVAILABLE,
                                   "the gateway at %s shows a certificate that the CA in %s does "
                                   "not vouch for: %s",
                                   url, ca_file, why);
        }
        return duet_status_set(st, DUET_UNAVAILABLE,
                               "the gateway at %s shows a certificate this machine does not "
                               "trust: %s; give the CA that signed it with --ca FILE (or "
                               "DUET_CA), e.g. your lab's ca.crt",
                               url, why);
    case CURLE_SSL_CACERT_BADFILE:
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "--ca %s: cannot use it as a CA certificate: %s",
                               ca_file ? ca_file : "(the system's)", why);
    case CURLE_SSL_CONNECT_ERROR:
        return duet_status_set(st, DUET_UNAVAILABLE,
                               "TLS with the gateway at %s failed: %s (does it serve HTTPS? a "
                               "plain HTTP gateway wants http://)",
                               url, why);
    case CURLE_GOT_NOTHING:
        return duet_status_set(st, DUET_UNAVAILABLE,
                               "the gateway at %s closed the connection without an answer (an "
                               "HTTPS gateway wants https://)",
                               url);
    default:
        return duet_status_set(st, DUET_UNAVAILABLE, "talking to the gateway at %s failed: %s", url,
                               why);
    }
}
