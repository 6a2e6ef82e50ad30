#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_turn.h"
#include "cli.h"
#include "session_calls.h"

#define MAX_QUESTION_BYTES (1u << 20)

/* The whole of stdin (at most MAX_QUESTION_BYTES), malloc'd; NULL when nothing came. */
static char *read_stdin(void)
{
    char *text = NULL;
    size_t cap = 0, len = 0;
    FILE *mem = open_memstream(&text, &cap);
    char buf[4096];
    size_t r;
    while (mem && len < MAX_QUESTION_BYTES && (r = fread(buf, 1, sizeof buf, stdin)) > 0) {
        fwrite(buf, 1, r, mem);
        len += r;
    }
    if (mem) {
        fclose(mem);
    }
    if (len == 0) {
        free(text);
        return NULL;
    }
    return text;
}

int duet_cli_ask(const duet_cli *c, const char *question)
{
    char *from_stdin = NULL;
    if (!question || strcmp(question, "-") == 0) {
        if (!question && isatty(STDIN_FILENO)) {
            fprintf(stderr, "duet ask: give the question as an argument, or pipe it in\n");
            return 2;
        }
        if (!(from_stdin = read_stdin())) {
            fprintf(stderr, "duet ask: nothing came on stdin\n");
            return 2;
        }
        question = from_stdin;
    }
    duet_status st;
    char session[DUET_SESSION_ID_MAX];
    if (c->session && duet_sessions_resolve(c->gw, c->session, session, &st) != DUET_OK) {
        free(from_stdin);
        return duet_cli_fail(&st);
    }
    duet_turn t = {.session_id = c->session ? session : NULL,
                   .system = c->system,
                   .text = question,
                   .max_tokens = c->max_tokens};
    duet_gateway_answer ans;
    duet_code rc = duet_turn_run(c->gw, &t, &ans, &st);
    free(from_stdin);
    if (rc != DUET_OK) {
        duet_cli_fail(&st);
        if (ans.session_id[0] && ans.text_bytes > 0) {
            fprintf(stderr, "[session %s keeps the answer so far, marked partial]\n",
                    ans.session_id);
        }
        return 1;
    }
    if (!c->quiet) {
        char label[DUET_SESSION_ID_MAX + 16];
        snprintf(label, sizeof label, "session %s", ans.session_id[0] ? ans.session_id : "?");
        duet_turn_print_counts(stderr, label, &ans);
    }
    return 0;
}
