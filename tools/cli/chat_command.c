#include <editline/readline.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_turn.h"
#include "cli.h"
#include "cli_number.h"
#include "session_calls.h"
#include "session_print.h"

#define RECAP_MESSAGES 4 /* shown when a chat goes back to a session */

typedef struct {
    const duet_cli *c;
    char session[DUET_SESSION_ID_MAX]; /* "" until the gateway names one */
    bool send_system;                  /* -s goes along with the next message */
    json_t *listed;                    /* the last /sessions list, for /switch N */
    bool tty;
} chat;

static const char help_text[] =
    "/new             the next message starts a new session\n"
    "/sessions        your sessions, numbered\n"
    "/switch N|ID     continue session N of that list, or the one with that id (or start)\n"
    "/system TEXT     set this session's system prompt (/system alone clears it)\n"
    "/rename TITLE    rename this session\n"
    "/quit            leave (Ctrl-D too); Ctrl-C stops an answer\n";

/* A line about what a command did, in parentheses (answers are the only bare text). */
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputc('(', stdout);
    vprintf(fmt, ap);
    fputs(")\n", stdout);
    va_end(ap);
}

/* The text after a command word, without leading spaces. */
static const char *argument(const char *line, size_t cmd_len)
{
    const char *p = line + cmd_len;
    return p + strspn(p, " \t");
}

static bool is_command(const char *line, const char *cmd)
{
    size_t n = strlen(cmd);
    return strncmp(line, cmd, n) == 0 && (line[n] == '\0' || line[n] == ' ' || line[n] == '\t');
}

static void adopt(chat *ch, const char *id)
{
    snprintf(ch->session, sizeof ch->session, "%s", id);
    ch->send_system = false; /* that session has its own prompt now */
}

/* Sends one user message and streams the answer. */
static void say(chat *ch, const char *text)
{
    const duet_cli *c = ch->c;
    bool fresh = !ch->session[0];
    duet_turn t = {.session_id = fresh ? NULL : ch->session,
                   .system = ch->send_system ? c->system : NULL,
                   .text = text,
                   .max_tokens = c->max_tokens,
                   .stoppable = true};
    if (ch->tty) {
        fputs("duet> ", stdout);
        fflush(stdout);
    }
    duet_gateway_answer ans;
    duet_status st;
    duet_code rc = duet_turn_run(c->gw, &t, &ans, &st);
    if (fresh && ans.session_id[0]) {
        adopt(ch, ans.session_id); /* also when cut short: the gateway keeps it */
    }
    if (rc == DUET_CANCELLED) {
        note("stopped: the gateway keeps the answer so far, marked partial");
        return;
    }
    if (rc != DUET_OK) {
        duet_cli_fail(&st);
        return;
    }
    if (!c->quiet) {
        char label[DUET_SESSION_ID_MAX + 16];
        snprintf(label, sizeof label, "new session %.*s", DUET_SHORT_ID, ch->session);
        duet_turn_print_counts(stderr, fresh ? label : NULL, &ans);
    }
}

static void list_sessions(chat *ch)
{
    duet_status st;
    json_t *all;
    if (duet_sessions_list(ch->c->gw, &all, &st) != DUET_OK) {
        duet_cli_fail(&st);
        return;
    }
    json_decref(ch->listed);
    ch->listed = all;
    duet_print_session_list(stdout, all);
    if (ch->session[0]) {
        note("this chat is in session %.*s", DUET_SHORT_ID, ch->session);
    }
}

/* Continues session id: prints its heading and last few messages. */
static bool open_session(chat *ch, const char *id)
{
    duet_status st;
    json_t *s;
    if (duet_sessions_get(ch->c->gw, id, &s, &st) != DUET_OK) {
        duet_cli_fail(&st);
        return false;
    }
    adopt(ch, id);
    duet_print_session_heading(stdout, s);
    json_t *messages = json_object_get(s, "messages");
    size_t n = json_array_size(messages);
    duet_print_messages(stdout, messages, n > RECAP_MESSAGES ? n - RECAP_MESSAGES : 0);
    json_decref(s);
    return true;
}

/* /switch N (a number of the last list) or an id or a unique start of one. */
static void switch_to(chat *ch, const char *which)
{
    if (!which[0]) {
        note("which session? /switch N, with N from /sessions, or an id");
        return;
    }
    duet_status st;
    long n;
    if (!ch->listed && strspn(which, "0123456789") == strlen(which)) {
        if (duet_sessions_list(ch->c->gw, &ch->listed, &st) != DUET_OK) {
            duet_cli_fail(&st);
            return;
        }
    }
    /* a number names a row of the list; beyond the list it may still start an id */
    if (ch->listed && duet_parse_long(which, 1, (long)json_array_size(ch->listed), &n)) {
        json_t *row = json_array_get(ch->listed, (size_t)n - 1);
        open_session(ch, json_string_value(json_object_get(row, "id")));
        return;
    }
    char id[DUET_SESSION_ID_MAX];
    if (duet_sessions_resolve(ch->c->gw, which, id, &st) != DUET_OK) {
        duet_cli_fail(&st);
        return;
    }
    open_session(ch, id);
}

/* /system and /rename: change this session, or create one that has it. */
static void set_property(chat *ch, const char *title, const char *prompt, bool set_prompt)
{
    duet_status st;
    json_t *s = NULL;
    duet_code rc;
    if (ch->session[0]) {
        rc = duet_sessions_update(ch->c->gw, ch->session, title, set_prompt, prompt, &s, &st);
    } else {
        rc = duet_sessions_create(ch->c->gw, title, prompt, &s, &st);
        const char *id = json_string_value(json_object_get(s, "id"));
        if (rc == DUET_OK && id) {
            adopt(ch, id);
        }
    }
    json_decref(s);
    if (rc != DUET_OK) {
        duet_cli_fail(&st);
        return;
    }
    if (set_prompt) {
        ch->send_system = false;
    }
    char sid[DUET_SHORT_ID + 1];
    snprintf(sid, sizeof sid, "%.*s", DUET_SHORT_ID, ch->session);
    if (title) {
        note("session %s renamed", sid);
    } else {
        note("%s the system prompt of session %s", prompt ? "set" : "cleared", sid);
    }
}

/* One line typed; false to leave. */
static bool handle(chat *ch, const char *line)
{
    if (is_command(line, "/quit") || is_command(line, "/exit")) {
        return false;
    }
    if (is_command(line, "/new")) {
        ch->session[0] = '\0';
        ch->send_system = true;
        note("the next message starts a new session");
    } else if (is_command(line, "/sessions")) {
        list_sessions(ch);
    } else if (is_command(line, "/switch")) {
        switch_to(ch, argument(line, 7));
    } else if (is_command(line, "/system")) {
        const char *text = argument(line, 7);
        if (text[0] || ch->session[0]) {
            set_property(ch, NULL, text[0] ? text : NULL, true);
        } else {
            ch->send_system = false;
            note("no system prompt for the next session");
        }
    } else if (is_command(line, "/rename")) {
        const char *title = argument(line, 7);
        if (title[0]) {
            set_property(ch, title, NULL, false);
        } else {
            note("give the title: /rename TITLE");
        }
    } else if (is_command(line, "/help")) {
        fputs(help_text, stdout);
    } else if (line[0] == '/') {
        printf("(unknown command %s)\n%s", line, help_text);
    } else {
        say(ch, line);
    }
    return true;
}

/* The next line typed, without its end; NULL at the end of input. */
static char *next_line(const chat *ch)
{
    if (ch->tty) {
        char *line = readline("you> ");
        if (line && line[0]) {
            add_history(line);
        }
        return line;
    }
    fflush(stdout); /* whoever feeds the pipe may wait for what the last line did */
    char *line = NULL;
    size_t cap = 0;
    if (getline(&line, &cap, stdin) < 0) {
        free(line);
        return NULL;
    }
    line[strcspn(line, "\r\n")] = '\0';
    return line;
}

int duet_cli_chat(const duet_cli *c)
{
    chat ch = {.c = c, .send_system = true, .tty = isatty(STDIN_FILENO)};
    if (c->session) {
        duet_status st;
        char id[DUET_SESSION_ID_MAX];
        if (duet_sessions_resolve(c->gw, c->session, id, &st) != DUET_OK) {
            return duet_cli_fail(&st);
        }
        if (!open_session(&ch, id)) {
            return 1;
        }
        ch.send_system = c->system != NULL; /* -s with -S: it replaces the session's */
    }
    if (ch.tty) {
        printf("duet chat with %s: /help lists the commands, /quit leaves\n",
               duet_gateway_url(c->gw));
    }
    char *line;
    bool going = true;
    while (going && (line = next_line(&ch)) != NULL) {
        const char *text = line + strspn(line, " \t");
        if (text[0]) {
            going = handle(&ch, text);
        }
        free(line);
    }
    json_decref(ch.listed);
    return 0;
}
