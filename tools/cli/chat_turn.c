#include "chat_turn.h"

#include <jansson.h>
#include <signal.h>
#include <string.h>

/* Set by Ctrl-C while a stoppable answer streams; the client polls it. */
static volatile sig_atomic_t stop_requested;

static void on_interrupt(int sig)
{
    (void)sig;
    stop_requested = 1;
}

typedef struct {
    char last; /* the last byte printed, to end the answer on a new line */
} printer;

static void print_text(void *arg, const char *text, size_t len)
{
    printer *p = arg;
    fwrite(text, 1, len, stdout);
    fflush(stdout); /* each piece shows the moment it comes */
    p->last = text[len - 1];
}

static json_t *request_body(const duet_turn *t)
{
    json_t *messages = json_array();
    json_t *body = json_pack("{s:o}", "messages", messages);
    json_t *user = json_string(t->text);
    json_t *system = t->system ? json_string(t->system) : NULL;
    bool ok = body && user && (!t->system || system);
    if (ok && system) {
        ok = json_array_append_new(
                 messages, json_pack("{s:s, s:o}", "role", "system", "content", system)) == 0;
        system = NULL;
    }
    if (ok) {
        ok = json_array_append_new(messages,
                                   json_pack("{s:s, s:o}", "role", "user", "content", user)) == 0;
        user = NULL;
    }
    if (ok && t->max_tokens > 0) {
        ok = json_object_set_new(body, "max_tokens", json_integer(t->max_tokens)) == 0;
    }
    json_decref(system);
    json_decref(user);
    if (!ok) {
        json_decref(body);
        return NULL;
    }
    return body;
}

duet_code duet_turn_run(duet_gateway *gw, const duet_turn *t, duet_gateway_answer *ans,
                        duet_status *st)
{
    json_t *body = request_body(t);
    if (!body) {
        memset(ans, 0, sizeof *ans);
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "the message is not valid UTF-8 text");
    }
    struct sigaction old, stop = {.sa_handler = on_interrupt};
    sigemptyset(&stop.sa_mask);
    stop_requested = 0;
    if (t->stoppable) {
        sigaction(SIGINT, &stop, &old);
    }
    printer p = {.last = '\n'};
    duet_code rc = duet_gateway_chat_stream(gw, t->session_id, body, print_text, &p,
                                            t->stoppable ? &stop_requested : NULL, ans, st);
    if (t->stoppable) {
        sigaction(SIGINT, &old, NULL);
    }
    json_decref(body);
    if (p.last != '\n') {
        putchar('\n');
    }
    fflush(stdout);
    return rc;
}

void duet_turn_print_counts(FILE *f, const char *label, const duet_gateway_answer *ans)
{
    fprintf(f, "[%s%s%u prompt + %u answer tokens%s", label ? label : "", label ? ", " : "",
            ans->prompt_tokens, ans->completion_tokens,
            strcmp(ans->finish_reason, "length") == 0 ? ", cut at the length limit" : "");
    if (ans->trimmed_messages) {
        fprintf(f, ", %u older message%s %s to fit the context", ans->trimmed_messages,
                ans->trimmed_messages == 1 ? "" : "s", ans->summarized ? "summarized" : "left out");
    }
    fprintf(f, "]\n");
}
