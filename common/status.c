#include "status.h"

#include <stdio.h>

static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

int duet_code_valid(int code)
{
    return code >= 0 && code < (int)(sizeof code_names / sizeof code_names[0]);
}

const char *duet_code_name(duet_code code)
{
    return duet_code_valid((int)code) ? code_names[code] : "UNKNOWN";
}

duet_code duet_status_vset(duet_status *st, duet_code code, const char *fmt, va_list ap)
{
    if (st) {
        st->code = code;
        vsnprintf(st->message, sizeof st->message, fmt, ap);
    }
    return code;
}

duet_code duet_status_set(duet_status *st, duet_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    duet_status_vset(st, code, fmt, ap);
    va_end(ap);
    return code;
}

void duet_status_clear(duet_status *st)
{
    if (st) {
        st->code = DUET_OK;
        st->message[0] = '\0';
    }
}
