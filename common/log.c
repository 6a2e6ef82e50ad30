#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = -1; /* -1: not yet read from the environment */
static char log_tag[32] = "duet";

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int duet_log_level_parse(const char *name)
{
    for (int i = 0; i <= DUET_LOG_OFF; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

duet_log_level duet_log_get_level(void)
{
    int level = atomic_load(&log_level);
    if (level < 0) {
        const char *env = getenv("DUET_LOG");
        level = env ? duet_log_level_parse(env) : -1;
        if (level < 0) {
            level = DUET_LOG_INFO;
        }
        atomic_store(&log_level, level);
    }
    return (duet_log_level)level;
}

void duet_log_set_level(duet_log_level level)
{
    atomic_store(&log_level, (int)level);
}

void duet_log_set_tag(const char *tag)
{
    snprintf(log_tag, sizeof log_tag, "%s", tag);
}

void duet_log(duet_log_level level, const char *fmt, ...)
{
    if (level < duet_log_get_level() || level >= DUET_LOG_OFF) {
        return;
    }
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, log_tag, level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) {
        len = sizeof line - 2;
    }
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}
