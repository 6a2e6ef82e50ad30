#include "validity.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECONDS_PER_DAY 86400

/* Last instant mbedTLS can write or read: 9999-12-31 23:59:59 UTC. */
#define LATEST_TIME ((time_t)253402300799)

static bool is_date_shape(const char *text)
{
    static const char shape[] = "dddd-dd-dd";
    for (size_t i = 0; i < sizeof shape - 1; i++) {
        bool want_digit = shape[i] == 'd';
        if (text[i] == '\0' || (want_digit ? !isdigit((unsigned char)text[i]) : text[i] != '-')) {
            return false;
        }
    }
    return text[sizeof shape - 1] == '\0';
}

/* Strict "YYYY-MM-DD", a real calendar day (timegm would silently roll 02-30 over). */
static duet_code parse_date(const char *text, const char *what, time_t *out, duet_status *st)
{
    if (!is_date_shape(text)) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "%s '%s' is not a date like 2030-12-31",
                               what, text);
    }
    int year = atoi(text), month = atoi(text + 5), day = atoi(text + 8);
    struct tm tm = {.tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day};
    time_t t = timegm(&tm);
    if (year < 1950 || t == (time_t)-1 || tm.tm_year != year - 1900 || tm.tm_mon != month - 1 ||
        tm.tm_mday != day) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "%s '%s' is not a calendar day between 1950 and 9999", what, text);
    }
    *out = t;
    return DUET_OK;
}

duet_code validity_parse_days(const char *text, long *days, duet_status *st)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < 1 || value > VALIDITY_MAX_DAYS) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "--days '%s' must be a whole number of days from 1 to %d", text,
                               VALIDITY_MAX_DAYS);
    }
    *days = value;
    return DUET_OK;
}

duet_code validity_resolve(const validity_request *req, time_t now, long default_days,
                           validity *out, duet_status *st)
{
    if (req->days != 0 && req->not_after_date) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "give --days or --not-after, not both");
    }
    long days = req->days != 0 ? req->days : default_days;
    if (days < 1 || days > VALIDITY_MAX_DAYS) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "validity of %ld days is out of range",
                               days);
    }
    validity v;
    if (req->not_before_date) {
        duet_code code = parse_date(req->not_before_date, "--not-before", &v.not_before, st);
        if (code != DUET_OK) {
            return code;
        }
    } else {
        v.not_before = now - VALIDITY_CLOCK_SKEW_S;
    }
    if (req->not_after_date) {
        duet_code code = parse_date(req->not_after_date, "--not-after", &v.not_after, st);
        if (code != DUET_OK) {
            return code;
        }
        v.not_after += SECONDS_PER_DAY - 1;
    } else {
        v.not_after = v.not_before + (time_t)days * SECONDS_PER_DAY;
    }
    if (v.not_after > LATEST_TIME) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "the certificate would end after 9999-12-31; use fewer --days");
    }
    if (v.not_after <= v.not_before) {
        char start[24], end[24];
        validity_format_human(v.not_before, start);
        validity_format_human(v.not_after, end);
        return duet_status_set(
            st, DUET_INVALID_ARGUMENT, "the certificate would end (%s) before it starts (%s)%s",
            end, start,
            req->not_before_date ? "" : "; without --not-before it starts one hour before now");
    }
    *out = v;
    return DUET_OK;
}

void validity_format_x509(time_t t, char out[15])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 15, "%Y%m%d%H%M%S", &tm);
}

void validity_format_human(time_t t, char out[24])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 24, "%Y-%m-%d %H:%M:%S UTC", &tm);
}
