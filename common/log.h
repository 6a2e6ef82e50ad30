/* Process-wide logging to stderr: one line per event, with time, level and process tag.
 * Thread-safe (each line is written with a single call). */
#ifndef DUET_LOG_H
#define DUET_LOG_H

typedef enum {
    DUET_LOG_DEBUG = 0,
    DUET_LOG_INFO = 1,
    DUET_LOG_WARN = 2,
    DUET_LOG_ERROR = 3,
    DUET_LOG_OFF = 4,
} duet_log_level;

/* Lines below level are dropped. Default INFO, or DUET_LOG=debug|info|warn|error|off. */
void duet_log_set_level(duet_log_level level);
duet_log_level duet_log_get_level(void);

/* Short tag printed on every line, e.g. "worker". Copied. */
void duet_log_set_tag(const char *tag);

/* Parses "debug", "info", "warn", "error", "off"; returns -1 when unknown. */
int duet_log_level_parse(const char *name);

void duet_log(duet_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define duet_log_debug(...) duet_log(DUET_LOG_DEBUG, __VA_ARGS__)
#define duet_log_info(...) duet_log(DUET_LOG_INFO, __VA_ARGS__)
#define duet_log_warn(...) duet_log(DUET_LOG_WARN, __VA_ARGS__)
#define duet_log_error(...) duet_log(DUET_LOG_ERROR, __VA_ARGS__)

#endif
