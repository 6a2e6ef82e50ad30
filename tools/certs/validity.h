/* When a certificate is valid: from the command line's --days / --not-before /
 * --not-after to the two instants written into the certificate (UTC, whole seconds).
 *
 * By default a certificate starts one hour before now, so a node whose clock runs a
 * little behind the machine that made it still accepts it. Explicit dates exist to make
 * certificates that are not valid now (an expired one, for tests and drills). */
#ifndef DUET_CERTS_VALIDITY_H
#define DUET_CERTS_VALIDITY_H

#include <time.h>

#include "status.h"

#define VALIDITY_CLOCK_SKEW_S 3600
#define VALIDITY_MAX_DAYS 36525 /* 100 years */

typedef struct {
    time_t not_before;
    time_t not_after;
} validity;

typedef struct {
    long days;                   /* length in days; 0: the default */
    const char *not_before_date; /* "YYYY-MM-DD" (starts 00:00:00 UTC) or NULL */
    const char *not_after_date;  /* "YYYY-MM-DD" (ends 23:59:59 UTC) or NULL */
} validity_request;

/* Resolves a request at time now:
 *   start = --not-before, else now - 1 hour;
 *   end   = --not-after, else start + (--days, else default_days) days.
 * --days with --not-after, a malformed or impossible date, days outside
 * 1..VALIDITY_MAX_DAYS, or an end not after the start: INVALID_ARGUMENT. */
duet_code validity_resolve(const validity_request *req, time_t now, long default_days,
                           validity *out, duet_status *st);

/* Parses a decimal day count for --days (1..VALIDITY_MAX_DAYS); INVALID_ARGUMENT otherwise. */
duet_code validity_parse_days(const char *text, long *days, duet_status *st);

/* Formats t as mbedTLS's certificate time "YYYYMMDDhhmmss" (UTC); out holds 15 bytes. */
void validity_format_x509(time_t t, char out[15]);

/* Formats t as "YYYY-MM-DD hh:mm:ss UTC" for people; out holds 24 bytes. */
void validity_format_human(time_t t, char out[24]);

#endif
