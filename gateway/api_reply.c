#include "api_reply.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openai_response.h"

void duet_api_reply_json(duet_http_exchange *x, int status, char *json, const char *const *headers)
{
    static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                              "\"param\":null,\"code\":null}}";
    if (json) {
        duet_http_reply(x, (uint16_t)status, "application/json", json, strlen(json), headers);
    } else {
        duet_http_reply(x, 500, "application/json", oom, sizeof oom - 1, NULL);
    }
    free(json);
}

int duet_api_reply_error(duet_http_exchange *x, duet_code code, const char *message,
                         const char *param, const char *error_code, uint64_t retry_ms)
{
    duet_openai_error_kind kind = duet_openai_error_kind_of(code);
    char retry[32];
    const char *headers[] = {"Retry-After", retry, NULL};
    bool with_retry = kind.http_status == 429 || kind.http_status == 503;
    if (with_retry) {
        uint64_t s = retry_ms == UINT64_MAX ? 60 : (retry_ms + 999) / 1000;
        snprintf(retry, sizeof retry, "%llu", (unsigned long long)(s ? s : 1));
    }
    char *json =
        duet_openai_error_json(code, message, param && param[0] ? param : NULL, error_code);
    duet_api_reply_json(x, json ? kind.http_status : 500, json, with_retry ? headers : NULL);
    return json ? kind.http_status : 500;
}
