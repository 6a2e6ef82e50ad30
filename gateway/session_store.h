/* The gateway's durable store of chat sessions and their messages: one SQLite file in WAL
 * mode, so conversations survive a kill -9 or a power cut and a restart of the gateway.
 *
 * Durability: a call that changes something has committed its change to disk (the WAL
 * fsynced) when it returns DUET_OK, so the gateway may acknowledge a message as soon as
 * duet_session_store_append returns. A change that fails leaves nothing behind.
 *
 * Ownership: every call names the user (the one the API key maps to). A session belongs to
 * the user who created it. Another user's session id gives DUET_NOT_FOUND with exactly the
 * message an id that does not exist gives, so ids cannot be probed.
 *
 * Session ids are 32 lowercase hex digits (128 random bits from getrandom): unguessable,
 * and safe to send to the worker as the key of its KV cache. Ids given to the store must be
 * 1 to DUET_SESSION_ID_MAX letters, digits, '-' or '_' (INVALID_ARGUMENT otherwise).
 *
 * Messages are numbered 1, 2, 3, ... per session in the order they were appended (no gaps:
 * messages are never removed on their own, so a session's message count is also its last
 * seq). An answer being streamed is appended as partial and completed in place later (see
 * duet_session_store_complete); an answer whose stream died stays stored as partial.
 *
 * Times are milliseconds since the Unix epoch. Within one store they strictly increase
 * (two changes in the same millisecond get consecutive values), so "newest first" is exact.
 * A session's updated_ms is the time of its last change of any kind.
 *
 * Limits, checked before anything is stored (INVALID_ARGUMENT, the message giving the
 * sizes): user 1..DUET_SESSION_USER_MAX bytes, title 1..DUET_SESSION_TITLE_MAX bytes,
 * message content, system prompt and summary at most DUET_SESSION_CONTENT_MAX bytes; all
 * text must be valid UTF-8.
 *
 * Thread-safe: one connection guarded by one mutex; calls from several threads take turns.
 * Creating sessions, appending and completing messages — the writes of every chat turn —
 * are committed in groups: writes that arrive while a commit syncs to disk wait and go
 * together into the next transaction (each in a savepoint of its own, so a refused write
 * leaves the others standing), one disk sync for all of them. Results are copies owned by
 * the caller. */
#ifndef DUET_SESSION_STORE_H
#define DUET_SESSION_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_template.h"
#include "status.h"

#define DUET_SESSION_ID_MAX 64
#define DUET_SESSION_ID_SIZE (DUET_SESSION_ID_MAX + 1) /* a buffer for an id and its NUL */
#define DUET_SESSION_USER_MAX 256
#define DUET_SESSION_TITLE_MAX 200
#define DUET_SESSION_CONTENT_MAX (1u << 20)
#define DUET_SESSION_LIST_MAX 1000       /* the largest limit duet_session_store_list takes */
#define DUET_SESSION_TOKENS_UNKNOWN (-1) /* a message's token count when none was recorded */
#define DUET_SESSION_DEFAULT_TITLE "New chat"
#define DUET_SESSION_SCHEMA_VERSION 1 /* PRAGMA user_version of the file's layout */

typedef struct duet_session_store duet_session_store;

/* One session as listed. */
typedef struct {
    char id[DUET_SESSION_ID_SIZE];
    char title[DUET_SESSION_TITLE_MAX + 1];
    int64_t created_ms, updated_ms;
    int64_t n_messages;
} duet_session_entry;

typedef struct {
    duet_session_entry *items; /* newest (largest updated_ms) first */
    size_t count;
    size_t total; /* the user's sessions in all, for paging */
} duet_session_list;

/* One session in full, but for its messages. */
typedef struct {
    char id[DUET_SESSION_ID_SIZE];
    char title[DUET_SESSION_TITLE_MAX + 1];
    char *system_prompt;  /* NULL when none */
    char *summary;        /* model-written summary of trimmed turns; NULL when none */
    int64_t summary_upto; /* messages 1..summary_upto are covered by the summary; 0 if none */
    int64_t created_ms, updated_ms;
    int64_t n_messages; /* also the last seq */
} duet_session_info;

typedef struct {
    int64_t seq;
    duet_chat_role role;
    char *content;
    bool partial; /* an answer whose stream has not completed (yet, or ever) */
    int64_t created_ms;
    int64_t tokens; /* DUET_SESSION_TOKENS_UNKNOWN when not recorded */
} duet_session_message;

typedef struct {
    duet_session_message *items; /* by seq, ascending */
    size_t count;
} duet_session_messages;

/* Opens the store at path, creating the file and its schema when missing (":memory:" gives
 * a private in-memory store, for tests). Errors name the path: DATA_LOSS when the file is
 * not a SQLite database or is corrupt, FAILED_PRECONDITION when it holds a newer schema
 * version than this gateway knows or some other application's tables, NOT_FOUND or
 * PERMISSION_DENIED when it cannot be opened. A file refused as not a database, newer, or
 * another application's is left exactly as it was. */
duet_code duet_session_store_open(const char *path, duet_session_store **out, duet_status *st);

/* Closes the store (NULL is fine). No call may be running or follow. */
void duet_session_store_close(duet_session_store *store);

/* Creates an empty session for user. title NULL means DUET_SESSION_DEFAULT_TITLE;
 * system_prompt may be NULL. Writes the new id to out_id. */
duet_code duet_session_store_create(duet_session_store *store, const char *user, const char *title,
                                    const char *system_prompt, char out_id[DUET_SESSION_ID_SIZE],
                                    duet_status *st);

/* The user's sessions, newest first, skipping offset of them and giving at most limit
 * (1..DUET_SESSION_LIST_MAX). Free with duet_session_list_free. */
duet_code duet_session_store_list(duet_session_store *store, const char *user, size_t limit,
                                  size_t offset, duet_session_list *out, duet_status *st);
void duet_session_list_free(duet_session_list *list);

/* One session of the user's. Free with duet_session_info_free. */
duet_code duet_session_store_get(duet_session_store *store, const char *user, const char *id,
                                 duet_session_info *out, duet_status *st);
void duet_session_info_free(duet_session_info *info);

/* The session's messages with seq > after_seq (0 for all), in order. Free with
 * duet_session_messages_free. */
duet_code duet_session_store_messages(duet_session_store *store, const char *user, const char *id,
                                      int64_t after_seq, duet_session_messages *out,
                                      duet_status *st);
void duet_session_messages_free(duet_session_messages *messages);

/* Appends a message and writes its seq to *seq (may be NULL). tokens >= 0 or
 * DUET_SESSION_TOKENS_UNKNOWN. Only an assistant message may be partial. Durable on return. */
duet_code duet_session_store_append(duet_session_store *store, const char *user, const char *id,
                                    duet_chat_role role, const char *content, bool partial,
                                    int64_t tokens, int64_t *seq, duet_status *st);

/* One message of duet_session_store_append_many. */
typedef struct {
    duet_chat_role role;
    const char *content;
    bool partial;
    int64_t tokens;
} duet_session_new_message;

/* Appends n >= 1 messages in one transaction (all or none; one disk sync) and writes the
 * first one's seq to *first_seq (may be NULL); the others follow it in order. */
duet_code duet_session_store_append_many(duet_session_store *s, const char *user, const char *id,
                                         const duet_session_new_message *msgs, size_t n,
                                         int64_t *first_seq, duet_status *st);

/* Replaces the content, partial flag and token count of a partial assistant message: with
 * partial true it saves an answer's progress, with partial false it completes the answer,
 * which is then final. NOT_FOUND when the session (of this user) or the message does not
 * exist; FAILED_PRECONDITION when the message is not the assistant's or already complete. */
duet_code duet_session_store_complete(duet_session_store *store, const char *user, const char *id,
                                      int64_t seq, const char *content, bool partial,
                                      int64_t tokens, duet_status *st);

duet_code duet_session_store_rename(duet_session_store *store, const char *user, const char *id,
                                    const char *title, duet_status *st);

/* Sets the system prompt; NULL removes it. */
duet_code duet_session_store_set_system_prompt(duet_session_store *store, const char *user,
                                               const char *id, const char *system_prompt,
                                               duet_status *st);

/* Records that summary stands for messages 1..upto_seq (which must exist; INVALID_ARGUMENT
 * otherwise). summary NULL with upto_seq 0 removes it. */
duet_code duet_session_store_set_summary(duet_session_store *store, const char *user,
                                         const char *id, const char *summary, int64_t upto_seq,
                                         duet_status *st);

/* Deletes the session and all its messages. */
duet_code duet_session_store_delete(duet_session_store *store, const char *user, const char *id,
                                    duet_status *st);

#endif
