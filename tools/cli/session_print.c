#include "session_print.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#define TITLE_WIDTH 40 /* characters of a title in the list */

/* "2025-12-05 14:03" in local time. */
static void format_time(json_t *ms, char *out, size_t cap)
{
    time_t t = (time_t)(json_integer_value(ms) / 1000);
    struct tm tm;
    if (!json_is_integer(ms) || !localtime_r(&t, &tm) ||
        strftime(out, cap, "%Y-%m-%d %H:%M", &tm) == 0) {
        snprintf(out, cap, "?");
    }
}

/* Writes text on one line in width characters (UTF-8 sequences count once), control
 * characters as spaces, cut with "..." when longer, padded with spaces when shorter. */
static void print_cell(FILE *f, const char *text, size_t width)
{
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        chars += (*p & 0xC0) != 0x80;
    }
    size_t keep = chars <= width ? chars : width - 3, shown = 0;
    const unsigned char *p = (const unsigned char *)text;
    for (; *p; p++) {
        bool starts = (*p & 0xC0) != 0x80;
        if (starts && shown == keep) {
            break;
        }
        shown += starts;
        fputc(*p < 0x20 || *p == 0x7F ? ' ' : *p, f);
    }
    if (chars > width) {
        fputs("...", f);
        shown += 3;
    }
    for (; shown < width; shown++) {
        fputc(' ', f);
    }
}

static const char *text_of(const json_t *o, const char *key, const char *otherwise)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : otherwise;
}

/* Listed sessions count their messages; a session read whole carries them. */
static json_int_t message_count(const json_t *session)
{
    json_t *m = json_object_get(session, "messages");
    return json_is_array(m) ? (json_int_t)json_array_size(m) : json_integer_value(m);
}

void duet_print_session_list(FILE *f, const json_t *sessions)
{
    if (json_array_size(sessions) == 0) {
        fprintf(f, "(no sessions yet)\n");
        return;
    }
    fprintf(f, "  #  %-*s  ", DUET_SHORT_ID, "id");
    print_cell(f, "title", TITLE_WIDTH);
    fprintf(f, "  messages  updated\n");
    size_t i;
    json_t *s;
    json_array_foreach(sessions, i, s)
    {
        char when[32];
        format_time(json_object_get(s, "updated_ms"), when, sizeof when);
        fprintf(f, "%3zu  %-*.*s  ", i + 1, DUET_SHORT_ID, DUET_SHORT_ID, text_of(s, "id", "?"));
        print_cell(f, text_of(s, "title", ""), TITLE_WIDTH);
        fprintf(f, "  %8lld  %s\n", (long long)message_count(s), when);
    }
}

void duet_print_session_heading(FILE *f, const json_t *session)
{
    char created[32], updated[32];
    format_time(json_object_get(session, "created_ms"), created, sizeof created);
    format_time(json_object_get(session, "updated_ms"), updated, sizeof updated);
    json_int_t n = message_count(session);
    fprintf(f, "session %s \"%s\": %lld message%s, started %s, updated %s\n",
            text_of(session, "id", "?"), text_of(session, "title", ""), (long long)n,
            n == 1 ? "" : "s", created, updated);
    const char *system = text_of(session, "system_prompt", NULL);
    if (system) {
        fprintf(f, "system prompt: %s\n", system);
    }
    const char *summary = text_of(session, "summary", NULL);
    if (summary) {
        fprintf(f, "summary of messages 1..%lld: %s\n",
                (long long)json_integer_value(json_object_get(session, "summary_upto")), summary);
    }
}

void duet_print_messages(FILE *f, const json_t *messages, size_t first)
{
    for (size_t i = first; i < json_array_size(messages); i++) {
        const json_t *m = json_array_get(messages, i);
        const char *role = text_of(m, "role", "?");
        const char *label = strcmp(role, "user") == 0        ? "you"
                            : strcmp(role, "assistant") == 0 ? "duet"
                                                             : role;
        bool partial = json_is_true(json_object_get(m, "partial"));
        fprintf(f, "%s> %s%s\n", label, text_of(m, "content", ""), partial ? " [partial]" : "");
    }
}
