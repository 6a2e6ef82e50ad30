#include "chat_turn.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timer.h"

#define SUMMARY_LEAD "Summary of the earlier conversation: "

struct duet_chat_turns {
    duet_session_store *store;
    pthread_mutex_t lock;
    char (*busy)[DUET_SESSION_ID_SIZE]; /* sessions with a turn open */
    size_t n_busy, cap_busy;
};

struct duet_chat_turn {
    duet_chat_turns *turns;
    char *user;
    char session_id[DUET_SESSION_ID_SIZE];
    bool in_session, registered, committed;

    /* the request's messages, copied */
    duet_chat_message *given;
    size_t n_given;
    char *new_system; /* session: the system prompt the new messages set, joined; or NULL */
    bool sets_system;

    /* session: what is stored */
    duet_session_info info;
    duet_session_messages stored;
    char *summary;        /* the summary in force (owned), or NULL */
    int64_t summary_upto; /* messages covered by it */

    /* what is sent */
    duet_chat_message *conv;
    int64_t *seqs;
    size_t n_conv;
    char *system_text; /* the system prompt with the summary, when both or the summary */

    int64_t answer_seq;
    int64_t last_save_ns;
};

/* ---- the set of sessions with a turn open ---- */

duet_code duet_chat_turns_new(duet_session_store *store, duet_chat_turns **out, duet_status *st)
{
    duet_chat_turns *t = calloc(1, sizeof *t);
    if (!t) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    t->store = store;
    pthread_mutex_init(&t->lock, NULL);
    *out = t;
    return DUET_OK;
}

void duet_chat_turns_free(duet_chat_turns *t)
{
    if (!t) {
        return;
    }
    pthread_mutex_destroy(&t->lock);
    free(t->busy);
    free(t);
}

static duet_code take_session(duet_chat_turns *ts, const char *id, duet_status *st)
{
    duet_code c = DUET_OK;
    pthread_mutex_lock(&ts->lock);
    for (size_t i = 0; i < ts->n_busy; i++) {
        if (strcmp(ts->busy[i], id) == 0) {
            c = duet_status_set(st, DUET_ABORTED,
                                "session %s is still answering; wait for that answer to end "
                                "(or stop it) and send again",
                                id);
            break;
        }
    }
    if (c == DUET_OK && ts->n_busy == ts->cap_busy) {
        size_t cap = ts->cap_busy ? ts->cap_busy * 2 : 16;
        void *p = realloc(ts->busy, cap * sizeof *ts->busy);
        if (!p) {
            c = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        } else {
            ts->busy = p;
            ts->cap_busy = cap;
        }
    }
    if (c == DUET_OK) {
        snprintf(ts->busy[ts->n_busy++], DUET_SESSION_ID_SIZE, "%s", id);
    }
    pthread_mutex_unlock(&ts->lock);
    return c;
}

static void give_back_session(duet_chat_turns *ts, const char *id)
{
    pthread_mutex_lock(&ts->lock);
    for (size_t i = 0; i < ts->n_busy; i++) {
        if (strcmp(ts->busy[i], id) == 0) {
            memcpy(ts->busy[i], ts->busy[--ts->n_busy], DUET_SESSION_ID_SIZE);
            break;
        }
    }
    pthread_mutex_unlock(&ts->lock);
}

/* ---- building the conversation ---- */

/* a and b joined by a blank line; either may be NULL. */
static char *join_texts(const char *a, const char *b)
{
    if (!a || !b) {
        return strdup(a ? a : b ? b : "");
    }
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + 2 + lb + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, "\n\n", 2);
        memcpy(s + la + 2, b, lb + 1);
    }
    return s;
}

static bool build_session_conversation(duet_chat_turn *t)
{
    free(t->conv);
    free(t->seqs);
    free(t->system_text);
    t->conv = NULL;
    t->seqs = NULL;
    t->system_text = NULL;
    size_t cap = 1 + t->stored.count + t->n_given;
    t->conv = calloc(cap, sizeof *t->conv);
    t->seqs = calloc(cap, sizeof *t->seqs);
    if (!t->conv || !t->seqs) {
        return false;
    }
    size_t n = 0;
    const char *system = t->sets_system ? t->new_system : t->info.system_prompt;
    if (t->summary) {
        char *lead = malloc(sizeof SUMMARY_LEAD + strlen(t->summary));
        if (!lead) {
            return false;
        }
        memcpy(lead, SUMMARY_LEAD, sizeof SUMMARY_LEAD - 1);
        strcpy(lead + sizeof SUMMARY_LEAD - 1, t->summary);
        t->system_text = join_texts(system, lead);
        free(lead);
        if (!t->system_text) {
            return false;
        }
        system = t->system_text;
    }
    if (system && system[0]) {
        t->conv[n++] = (duet_chat_message){DUET_ROLE_SYSTEM, system};
    }
    for (size_t i = 0; i < t->stored.count; i++) {
        const duet_session_message *m = &t->stored.items[i];
        if (m->seq <= t->summary_upto || (m->partial && m->content[0] == '\0')) {
            continue;
        }
        t->seqs[n] = m->seq;
        t->conv[n++] = (duet_chat_message){m->role, m->content};
    }
    for (size_t i = 0; i < t->n_given; i++) {
        if (t->given[i].role != DUET_ROLE_SYSTEM) {
            t->conv[n++] = t->given[i];
        }
    }
    t->n_conv = n;
    return true;
}

static duet_code copy_given(duet_chat_turn *t, const duet_chat_message *msgs, size_t n,
                            duet_status *st)
{
    t->given = calloc(n, sizeof *t->given);
    if (!t->given) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    t->n_given = n;
    for (size_t i = 0; i < n; i++) {
        t->given[i].role = msgs[i].role;
        t->given[i].content = strdup(msgs[i].content);
        if (!t->given[i].content) {
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        }
    }
    return DUET_OK;
}

/* The request's system messages joined (NULL when there are none). */
static duet_code join_given_system(duet_chat_turn *t, char **out, duet_status *st)
{
    *out = NULL;
    for (size_t i = 0; i < t->n_given; i++) {
        if (t->given[i].role != DUET_ROLE_SYSTEM) {
            continue;
        }
        char *joined = join_texts(*out, t->given[i].content);
        free(*out);
        *out = joined;
        if (!joined) {
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        }
    }
    return DUET_OK;
}

static duet_code open_in_session(duet_chat_turn *t, duet_status *st)
{
    duet_session_store *store = t->turns->store;
    size_t n_new = 0;
    for (size_t i = 0; i < t->n_given; i++) {
        n_new += t->given[i].role != DUET_ROLE_SYSTEM;
    }
    if (n_new == 0 || t->given[t->n_given - 1].role != DUET_ROLE_USER) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "with a session id, messages are only the new ones and end with "
                               "the user's message (the gateway keeps the history)");
    }
    duet_code c = take_session(t->turns, t->session_id, st);
    if (c != DUET_OK) {
        return c;
    }
    t->registered = true;
    c = duet_session_store_get(store, t->user, t->session_id, &t->info, st);
    if (c != DUET_OK) {
        return c;
    }
    if (t->info.summary) {
        t->summary = strdup(t->info.summary);
        if (!t->summary) {
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        }
        t->summary_upto = t->info.summary_upto;
    }
    c = duet_session_store_messages(store, t->user, t->session_id, 0, &t->stored, st);
    if (c == DUET_OK) {
        c = join_given_system(t, &t->new_system, st);
        t->sets_system = t->new_system != NULL;
    }
    if (c == DUET_OK && !build_session_conversation(t)) {
        c = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    return c;
}

duet_code duet_chat_turn_open(duet_chat_turns *turns, const char *user, const char *session_id,
                              const duet_chat_message *msgs, size_t n, duet_chat_turn **out,
                              duet_status *st)
{
    if (n == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "messages must not be empty");
    }
    if (session_id && strlen(session_id) >= DUET_SESSION_ID_SIZE) {
        return duet_status_set(st, DUET_NOT_FOUND, "no session %.64s...", session_id);
    }
    duet_chat_turn *t = calloc(1, sizeof *t);
    if (!t || !(t->user = strdup(user))) {
        free(t);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    t->turns = turns;
    duet_code c = copy_given(t, msgs, n, st);
    if (c == DUET_OK && session_id) {
        snprintf(t->session_id, sizeof t->session_id, "%s", session_id);
        t->in_session = true;
        c = open_in_session(t, st);
    } else if (c == DUET_OK) {
        /* sent as given: the client's history is the conversation */
        t->conv = t->given;
        t->seqs = calloc(n, sizeof *t->seqs);
        t->n_conv = n;
        if (!t->seqs) {
            c = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        }
    }
    if (c != DUET_OK) {
        duet_chat_turn_close(t);
        return c;
    }
    *out = t;
    return DUET_OK;
}

void duet_chat_turn_conversation(const duet_chat_turn *t, const duet_chat_message **msgs,
                                 const int64_t **seqs, size_t *n)
{
    *msgs = t->conv;
    *seqs = t->seqs;
    *n = t->n_conv;
}

int64_t duet_chat_turn_summarized(const duet_chat_turn *t)
{
    return t->summary ? t->summary_upto : 0;
}

const char *duet_chat_turn_summary(const duet_chat_turn *t)
{
    return t->summary;
}

bool duet_chat_turn_in_session(const duet_chat_turn *t)
{
    return t->in_session;
}

duet_code duet_chat_turn_set_summary(duet_chat_turn *t, const char *summary, int64_t upto_seq,
                                     duet_status *st)
{
    if (!t->in_session || t->committed) {
        return duet_status_set(st, DUET_FAILED_PRECONDITION,
                               "a summary is set in a session's turn before it is committed");
    }
    char *copy = strdup(summary);
    if (!copy) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    duet_code c = duet_session_store_set_summary(t->turns->store, t->user, t->session_id, summary,
                                                 upto_seq, st);
    if (c != DUET_OK) {
        free(copy);
        return c;
    }
    free(t->summary);
    t->summary = copy;
    t->summary_upto = upto_seq;
    if (!build_session_conversation(t)) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    return DUET_OK;
}

/* ---- storing ---- */

/* The new messages but the system ones, and the answer to come, for append_many. */
static duet_session_new_message *to_append(const duet_chat_turn *t, size_t *n)
{
    duet_session_new_message *m = calloc(t->n_given + 1, sizeof *m);
    if (!m) {
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < t->n_given; i++) {
        if (t->given[i].role != DUET_ROLE_SYSTEM) {
            m[k++] = (duet_session_new_message){t->given[i].role, t->given[i].content, false,
                                                DUET_SESSION_TOKENS_UNKNOWN};
        }
    }
    m[k++] = (duet_session_new_message){DUET_ROLE_ASSISTANT, "", true, 0};
    *n = k;
    return m;
}

static const char *first_user_text(const duet_chat_turn *t)
{
    for (size_t i = 0; i < t->n_given; i++) {
        if (t->given[i].role == DUET_ROLE_USER) {
            return t->given[i].content;
        }
    }
    return "";
}

duet_code duet_chat_turn_commit(duet_chat_turn *t, duet_status *st)
{
    duet_session_store *store = t->turns->store;
    char title[DUET_CHAT_TITLE_MAX + 8];
    duet_chat_title_from(first_user_text(t), title, sizeof title);
    duet_code c = DUET_OK;
    bool created = false;
    if (!t->in_session) {
        char *system = NULL;
        c = join_given_system(t, &system, st);
        if (c == DUET_OK) {
            c = duet_session_store_create(store, t->user, title[0] ? title : NULL, system,
                                          t->session_id, st);
        }
        free(system);
        if (c == DUET_OK) {
            created = true;
            c = take_session(t->turns, t->session_id, st);
            t->registered = c == DUET_OK;
        }
    } else {
        if (t->sets_system) {
            c = duet_session_store_set_system_prompt(store, t->user, t->session_id, t->new_system,
                                                     st);
        }
        /* a session made empty (the web page's "new chat") is named by its first question */
        if (c == DUET_OK && t->info.n_messages == 0 && title[0] &&
            strcmp(t->info.title, DUET_SESSION_DEFAULT_TITLE) == 0) {
            c = duet_session_store_rename(store, t->user, t->session_id, title, st);
        }
    }
    size_t n = 0;
    duet_session_new_message *m = c == DUET_OK ? to_append(t, &n) : NULL;
    if (c == DUET_OK && !m) {
        c = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    int64_t first = 0;
    if (c == DUET_OK) {
        c = duet_session_store_append_many(store, t->user, t->session_id, m, n, &first, st);
    }
    free(m);
    if (c != DUET_OK) {
        if (created) {
            duet_status ignored;
            duet_session_store_delete(store, t->user, t->session_id, &ignored);
        }
        return c;
    }
    t->answer_seq = first + (int64_t)n - 1;
    t->committed = true;
    t->last_save_ns = duet_now_ns();
    return DUET_OK;
}

const char *duet_chat_turn_session_id(const duet_chat_turn *t)
{
    return t->in_session || t->committed ? t->session_id : "";
}

duet_code duet_chat_turn_save(duet_chat_turn *t, const char *text, int64_t tokens,
                              uint32_t interval_ms, duet_status *st)
{
    if (!t->committed) {
        return duet_status_set(st, DUET_FAILED_PRECONDITION, "the turn is not committed");
    }
    int64_t now = duet_now_ns();
    if (interval_ms && now - t->last_save_ns < (int64_t)interval_ms * 1000000) {
        return DUET_OK;
    }
    t->last_save_ns = now;
    return duet_session_store_complete(t->turns->store, t->user, t->session_id, t->answer_seq, text,
                                       true, tokens, st);
}

duet_code duet_chat_turn_finish(duet_chat_turn *t, const char *text, int64_t tokens, bool complete,
                                duet_status *st)
{
    if (!t->committed) {
        return duet_status_set(st, DUET_FAILED_PRECONDITION, "the turn is not committed");
    }
    return duet_session_store_complete(t->turns->store, t->user, t->session_id, t->answer_seq, text,
                                       !complete, tokens, st);
}

void duet_chat_turn_close(duet_chat_turn *t)
{
    if (!t) {
        return;
    }
    if (t->registered) {
        give_back_session(t->turns, t->session_id);
    }
    if (t->conv != t->given) {
        free(t->conv);
    }
    for (size_t i = 0; i < t->n_given; i++) {
        free((char *)t->given[i].content);
    }
    free(t->given);
    free(t->seqs);
    free(t->system_text);
    free(t->new_system);
    free(t->summary);
    duet_session_info_free(&t->info);
    duet_session_messages_free(&t->stored);
    free(t->user);
    free(t);
}

/* ---- titles ---- */

void duet_chat_title_from(const char *text, char *out, size_t cap)
{
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r') {
        text++;
    }
    size_t line = strcspn(text, "\r\n");
    while (line > 0 && (text[line - 1] == ' ' || text[line - 1] == '\t')) {
        line--;
    }
    size_t keep = line;
    bool cut = false;
    if (keep > DUET_CHAT_TITLE_MAX) {
        keep = DUET_CHAT_TITLE_MAX;
        while (keep > 0 && ((unsigned char)text[keep] & 0xC0) == 0x80) {
            keep--; /* not inside a character */
        }
        cut = true;
    }
    if (cap == 0) {
        return;
    }
    if (keep + (cut ? 3 : 0) + 1 > cap) {
        keep = 0;
        cut = false;
    }
    memcpy(out, text, keep);
    if (cut) {
        memcpy(out + keep, "\xE2\x80\xA6", 3); /* … */
        keep += 3;
    }
    out[keep] = '\0';
}
