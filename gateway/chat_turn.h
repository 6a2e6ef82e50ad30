/* One chat request's turn in a stored session: what the gateway sends the worker, and how
 * the turn is recorded (docs/http-api.md, "Chat completions").
 *
 * Two ways in:
 *  - with a session id, the request's messages are only the new ones (the last one a user
 *    message); the conversation is the session's system prompt, its summary, its stored
 *    messages after those the summary covers (empty partial answers left out), then the new
 *    messages. A system message among the new ones replaces the system prompt.
 *  - without one, the request's messages are the whole conversation, sent as they are; the
 *    turn records them as a new session (system messages becoming its system prompt).
 *
 * A turn is opened (reads only: nothing is stored yet, so a request refused later leaves no
 * trace), then committed: the new messages and an empty partial answer are stored in one
 * transaction, on disk when commit returns. The answer is then saved as it grows and
 * finished complete, or left partial when it failed or was stopped.
 *
 * At most one turn per session is open at a time (ABORTED for a second one), so two answers
 * never interleave in one history and the worker's cache of the session stays one line. */
#ifndef DUET_CHAT_TURN_H
#define DUET_CHAT_TURN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_template.h"
#include "session_store.h"
#include "status.h"

/* The store and the set of sessions with a turn open. */
typedef struct duet_chat_turns duet_chat_turns;

duet_code duet_chat_turns_new(duet_session_store *store, duet_chat_turns **out, duet_status *st);
/* Every turn must have ended. */
void duet_chat_turns_free(duet_chat_turns *turns);

typedef struct duet_chat_turn duet_chat_turn;

/* Opens a turn of user with msgs[0..n) (copied). session_id NULL: a new session is recorded
 * at commit. Errors: NOT_FOUND (not one of the user's sessions), ABORTED (a turn of that
 * session is open), INVALID_ARGUMENT (no messages, or with a session the last one is not a
 * user message; a message the store refuses), others from the store. */
duet_code duet_chat_turn_open(duet_chat_turns *turns, const char *user, const char *session_id,
                              const duet_chat_message *msgs, size_t n, duet_chat_turn **out,
                              duet_status *st);

/* The conversation to send, valid until the turn changes or ends. seqs[i] is the stored
 * seq of msgs[i], 0 for the system prompt, the summary and the new messages. */
void duet_chat_turn_conversation(const duet_chat_turn *t, const duet_chat_message **msgs,
                                 const int64_t **seqs, size_t *n);

/* Stored messages covered by the session's summary (left out of the conversation). */
int64_t duet_chat_turn_summarized(const duet_chat_turn *t);

/* The summary the conversation carries, or NULL. */
const char *duet_chat_turn_summary(const duet_chat_turn *t);

/* True when the turn continues a stored session (the summarize policy applies). */
bool duet_chat_turn_in_session(const duet_chat_turn *t);

/* Stores summary as standing for messages 1..upto_seq and rebuilds the conversation with it.
 * Only before commit, in a session. */
duet_code duet_chat_turn_set_summary(duet_chat_turn *t, const char *summary, int64_t upto_seq,
                                     duet_status *st);

/* Stores the new messages and an empty partial answer; durable on return. */
duet_code duet_chat_turn_commit(duet_chat_turn *t, duet_status *st);

/* The session's id: the one given, or after commit the new one; "" before that. */
const char *duet_chat_turn_session_id(const duet_chat_turn *t);

/* Saves the answer so far (still partial) when the last save is at least interval_ms old,
 * or at once when interval_ms is 0. Only after commit. */
duet_code duet_chat_turn_save(duet_chat_turn *t, const char *text, int64_t tokens,
                              uint32_t interval_ms, duet_status *st);

/* Saves the answer for the last time: complete, or partial (it failed or was stopped). */
duet_code duet_chat_turn_finish(duet_chat_turn *t, const char *text, int64_t tokens, bool complete,
                                duet_status *st);

/* Ends the turn (the session may take the next one) and frees it; NULL is fine. */
void duet_chat_turn_close(duet_chat_turn *t);

/* A title from a message: its first line, at most DUET_CHAT_TITLE_MAX bytes cut at a
 * character boundary with "…" when cut, spaces trimmed; "" when nothing is left. */
#define DUET_CHAT_TITLE_MAX 60
void duet_chat_title_from(const char *text, char *out, size_t cap);

#endif
