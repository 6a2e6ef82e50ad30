/* Status codes (the gRPC set) and a status value carrying a human message.
 *
 * Every fallible duet function returns a duet_code and, when given a duet_status,
 * fills it with the code and one sentence that says what went wrong. Errors are
 * logged once, at the edge (main, a request handler), never deep inside a module. */
#ifndef DUET_STATUS_H
#define DUET_STATUS_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
    DUET_OK = 0,
    DUET_CANCELLED = 1,
    DUET_UNKNOWN = 2,
    DUET_INVALID_ARGUMENT = 3,
    DUET_DEADLINE_EXCEEDED = 4,
    DUET_NOT_FOUND = 5,
    DUET_ALREADY_EXISTS = 6,
    DUET_PERMISSION_DENIED = 7,
    DUET_RESOURCE_EXHAUSTED = 8,
    DUET_FAILED_PRECONDITION = 9,
    DUET_ABORTED = 10,
    DUET_OUT_OF_RANGE = 11,
    DUET_UNIMPLEMENTED = 12,
    DUET_INTERNAL = 13,
    DUET_UNAVAILABLE = 14,
    DUET_DATA_LOSS = 15,
    DUET_UNAUTHENTICATED = 16,
} duet_code;

#define DUET_STATUS_MESSAGE_MAX 512

typedef struct {
    duet_code code;
    char message[DUET_STATUS_MESSAGE_MAX];
} duet_status;

/* "OK", "INVALID_ARGUMENT", ...; "UNKNOWN" for values outside the set. */
const char *duet_code_name(duet_code code);

/* True when code is one of the 17 defined codes. */
int duet_code_valid(int code);

/* Sets st (when not NULL) to code and the formatted message; returns code. */
duet_code duet_status_set(duet_status *st, duet_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
duet_code duet_status_vset(duet_status *st, duet_code code, const char *fmt, va_list ap);

/* Sets st to DUET_OK with an empty message. */
void duet_status_clear(duet_status *st);

#endif
