#include "session_store.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "utf8.h"

/* One connection guarded by our own mutex (the connection is opened SQLITE_OPEN_NOMUTEX).
 * SQLITE_OPEN_FULLMUTEX alone would not do: it serializes single calls, but our
 * transactions span several statements that must not interleave with another thread's. */
/* A write waiting for the next group commit. */
typedef struct pending_write {
    duet_code (*fn)(duet_session_store *s, void *ctx, duet_status *st);
    void *ctx;
    duet_status *st;
    duet_code rc;
    bool done;
    struct pending_write *next;
} pending_write;

struct duet_session_store {
    pthread_mutex_t lock; /* the connection */
    sqlite3 *db;
    sqlite3_stmt **stmts; /* prepared once, by statement_id */
    int64_t last_ms;      /* the last time handed out, to keep times strictly increasing */

    /* group commit: writes that arrive while one commit syncs go together in the next */
    pthread_mutex_t queue_lock;
    pthread_cond_t committed;
    pending_write *queue_head, *queue_tail;
    bool committing;
};

/* A long write by another process (say, a backup) makes us wait this long, not fail. */
#define BUSY_TIMEOUT_MS 5000

static const char schema_sql[] =
    "CREATE TABLE sessions ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " user TEXT NOT NULL,"
    " title TEXT NOT NULL,"
    " system_prompt TEXT,"
    " summary TEXT,"
    " summary_upto INTEGER NOT NULL DEFAULT 0 CHECK (summary_upto >= 0),"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);"
    "CREATE INDEX sessions_by_user ON sessions(user, updated_ms);"
    "CREATE TABLE messages ("
    " session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    " seq INTEGER NOT NULL CHECK (seq >= 1),"
    " role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),"
    " content TEXT NOT NULL,"
    " partial INTEGER NOT NULL DEFAULT 0 CHECK (partial IN (0, 1)),"
    " created_ms INTEGER NOT NULL,"
    " tokens INTEGER CHECK (tokens IS NULL OR tokens >= 0),"
    " PRIMARY KEY (session_id, seq));";

typedef enum {
    Q_OWNED,
    Q_INSERT_SESSION,
    Q_COUNT_SESSIONS,
    Q_LIST,
    Q_GET,
    Q_MESSAGES,
    Q_LAST_SEQ,
    Q_INSERT_MESSAGE,
    Q_TOUCH,
    Q_MESSAGE_STATE,
    Q_UPDATE_MESSAGE,
    Q_RENAME,
    Q_SET_SYSTEM_PROMPT,
    Q_SET_SUMMARY,
    Q_DELETE,
    Q_COUNT
} statement_id;

static const char *const statement_sql[Q_COUNT] = {
    [Q_OWNED] = "SELECT 1 FROM sessions WHERE id = ?1 AND user = ?2",
    [Q_INSERT_SESSION] = "INSERT INTO sessions (id, user, title, system_prompt, summary_upto,"
                         " created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, 0, ?5, ?5)",
    [Q_COUNT_SESSIONS] = "SELECT COUNT(*) FROM sessions WHERE user = ?1",
    /* Seqs are gapless, so MAX(seq) is the message count, found in the primary key's index
     * without counting rows. */
    [Q_LIST] = "SELECT id, title, created_ms, updated_ms,"
               " (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE session_id = sessions.id)"
               " FROM sessions WHERE user = ?1"
               " ORDER BY updated_ms DESC, rowid DESC LIMIT ?2 OFFSET ?3",
    [Q_GET] = "SELECT id, title, system_prompt, summary, summary_upto, created_ms, updated_ms,"
              " (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE session_id = sessions.id)"
              " FROM sessions WHERE id = ?1 AND user = ?2",
    [Q_MESSAGES] = "SELECT seq, role, content, partial, created_ms, tokens FROM messages"
                   " WHERE session_id = ?1 AND seq > ?2 ORDER BY seq",
    [Q_LAST_SEQ] = "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE session_id = ?1",
    [Q_INSERT_MESSAGE] = "INSERT INTO messages (session_id, seq, role, content, partial,"
                         " created_ms, tokens) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [Q_TOUCH] = "UPDATE sessions SET updated_ms = ?2 WHERE id = ?1",
    [Q_MESSAGE_STATE] = "SELECT role, partial FROM messages WHERE session_id = ?1 AND seq = ?2",
    [Q_UPDATE_MESSAGE] = "UPDATE messages SET content = ?3, partial = ?4, tokens = ?5"
                         " WHERE session_id = ?1 AND seq = ?2",
    [Q_RENAME] = "UPDATE sessions SET title = ?3, updated_ms = ?4 WHERE id = ?1 AND user = ?2",
    [Q_SET_SYSTEM_PROMPT] = "UPDATE sessions SET system_prompt = ?3, updated_ms = ?4"
                            " WHERE id = ?1 AND user = ?2",
    [Q_SET_SUMMARY] = "UPDATE sessions SET summary = ?2, summary_upto = ?3, updated_ms = ?4"
                      " WHERE id = ?1",
    [Q_DELETE] = "DELETE FROM sessions WHERE id = ?1 AND user = ?2",
};

static const char *const role_names[] = {
    [DUET_ROLE_SYSTEM] = "system",
    [DUET_ROLE_USER] = "user",
    [DUET_ROLE_ASSISTANT] = "assistant",
};

/* ---- errors ---- */

static duet_code code_for_sqlite(int rc, int sys_errno)
{
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return DUET_DATA_LOSS;
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
        return DUET_PERMISSION_DENIED;
    case SQLITE_CANTOPEN:
        if (sys_errno == ENOENT || sys_errno == ENOTDIR) {
            return DUET_NOT_FOUND;
        }
        if (sys_errno == EACCES || sys_errno == EPERM) {
            return DUET_PERMISSION_DENIED;
        }
        return DUET_UNAVAILABLE;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
        return DUET_RESOURCE_EXHAUSTED;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return DUET_UNAVAILABLE;
    default:
        return DUET_INTERNAL;
    }
}

/* Reports the connection's last error; call it before anything else touches the
 * connection (a rollback would replace the message). */
static duet_code db_error(sqlite3 *db, int rc, const char *doing, duet_status *st)
{
    return duet_status_set(st, code_for_sqlite(rc, sqlite3_system_errno(db)),
                           "session store: %s failed: %s", doing, sqlite3_errmsg(db));
}

static duet_code not_found(const char *id, duet_status *st)
{
    return duet_status_set(st, DUET_NOT_FOUND, "session '%s' not found", id);
}

/* ---- argument checks ---- */

/* The offset of the first byte that does not start a valid character, or len when all is
 * valid. */
static size_t first_invalid_utf8(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = duet_utf8_decode(s + i, len - i, &cp);
        if (n == 0) {
            return i;
        }
        i += n;
    }
    return len;
}

static duet_code check_text(const char *what, const char *text, size_t max, bool may_be_empty,
                            duet_status *st)
{
    if (!text) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "%s is missing", what);
    }
    size_t len = strlen(text);
    if (len == 0 && !may_be_empty) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "%s is empty", what);
    }
    if (len > max) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "%s is %zu bytes; the limit is %zu", what,
                               len, max);
    }
    size_t bad = first_invalid_utf8(text, len);
    if (bad < len) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "%s is not valid UTF-8 (byte 0x%02x at offset %zu)", what,
                               (unsigned char)text[bad], bad);
    }
    return DUET_OK;
}

static duet_code check_user(const char *user, duet_status *st)
{
    return check_text("user name", user, DUET_SESSION_USER_MAX, false, st);
}

/* Ids we hand out are hex; the narrow alphabet also keeps odd bytes out of error messages. */
static duet_code check_id(const char *id, duet_status *st)
{
    size_t len = id ? strnlen(id, DUET_SESSION_ID_MAX + 1) : 0;
    bool ok = len >= 1 && len <= DUET_SESSION_ID_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        char c = id[i];
        ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             c == '-' || c == '_';
    }
    if (!ok) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "a session id is 1 to %d letters, digits, '-' or '_'",
                               DUET_SESSION_ID_MAX);
    }
    return DUET_OK;
}

static duet_code check_title(const char *title, duet_status *st)
{
    return check_text("title", title, DUET_SESSION_TITLE_MAX, false, st);
}

static duet_code check_optional_content(const char *what, const char *text, duet_status *st)
{
    return text ? check_text(what, text, DUET_SESSION_CONTENT_MAX, true, st) : DUET_OK;
}

static duet_code check_tokens(int64_t tokens, duet_status *st)
{
    if (tokens < 0 && tokens != DUET_SESSION_TOKENS_UNKNOWN) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "a token count is >= 0, or %d for unknown; got %lld",
                               DUET_SESSION_TOKENS_UNKNOWN, (long long)tokens);
    }
    return DUET_OK;
}

/* ---- statements and transactions ---- */

static sqlite3_stmt *statement(duet_session_store *s, statement_id q)
{
    sqlite3_stmt *stmt = s->stmts[q];
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return stmt;
}

/* Binding NULL text stores SQL NULL. The text must outlive the statement's run. */
static bool bind_text(sqlite3_stmt *q, int i, const char *text)
{
    return sqlite3_bind_text(q, i, text, -1, SQLITE_STATIC) == SQLITE_OK;
}

static bool bind_int(sqlite3_stmt *q, int i, int64_t v)
{
    return sqlite3_bind_int64(q, i, v) == SQLITE_OK;
}

static bool bind_tokens(sqlite3_stmt *q, int i, int64_t tokens)
{
    return tokens == DUET_SESSION_TOKENS_UNKNOWN ? sqlite3_bind_null(q, i) == SQLITE_OK
                                                 : bind_int(q, i, tokens);
}

/* Runs a statement that returns no rows. */
static duet_code run(duet_session_store *s, sqlite3_stmt *q, const char *doing, duet_status *st)
{
    int rc = sqlite3_step(q);
    duet_code c = rc == SQLITE_DONE ? DUET_OK : db_error(s->db, rc, doing, st);
    sqlite3_reset(q);
    return c;
}

/* Runs a statement that returns one integer. */
static duet_code run_int(duet_session_store *s, sqlite3_stmt *q, int64_t *out, const char *doing,
                         duet_status *st)
{
    int rc = sqlite3_step(q);
    duet_code c = DUET_OK;
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(q, 0);
    } else {
        c = db_error(s->db, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc, doing, st);
    }
    sqlite3_reset(q);
    return c;
}

static duet_code begin(duet_session_store *s, bool write, duet_status *st)
{
    /* IMMEDIATE takes the write lock up front, so a write transaction cannot fail halfway
     * for want of it. */
    int rc = sqlite3_exec(s->db, write ? "BEGIN IMMEDIATE" : "BEGIN", NULL, NULL, NULL);
    return rc == SQLITE_OK ? DUET_OK : db_error(s->db, rc, "starting a transaction", st);
}

/* Commits when c is DUET_OK, else rolls back; returns the outcome. */
static duet_code end(duet_session_store *s, duet_code c, duet_status *st)
{
    if (c == DUET_OK) {
        int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            c = db_error(s->db, rc, "committing", st);
        }
    }
    if (!sqlite3_get_autocommit(s->db)) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return c;
}

/* Runs the writes of batch in one transaction, each inside a savepoint so that one that
 * fails leaves the others standing, and commits them with one disk sync. */
static void commit_batch(duet_session_store *s, pending_write *batch)
{
    pthread_mutex_lock(&s->lock);
    duet_status st;
    duet_code c = begin(s, true, &st);
    for (pending_write *p = batch; p; p = p->next) {
        if (c != DUET_OK) {
            p->rc = c;
            *p->st = st;
            continue;
        }
        int rc = sqlite3_exec(s->db, "SAVEPOINT one_write", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            p->rc = db_error(s->db, rc, "starting a write", p->st);
            continue;
        }
        p->rc = p->fn(s, p->ctx, p->st);
        if (p->rc != DUET_OK) {
            sqlite3_exec(s->db, "ROLLBACK TO one_write", NULL, NULL, NULL);
        }
        sqlite3_exec(s->db, "RELEASE one_write", NULL, NULL, NULL);
    }
    if (c == DUET_OK) {
        c = end(s, DUET_OK, &st);
        for (pending_write *p = batch; p && c != DUET_OK; p = p->next) {
            if (p->rc == DUET_OK) {
                p->rc = c;
                *p->st = st;
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
}

/* Runs fn(s, ctx, st) in a write transaction, durable on return. Writes from several threads
 * at once share transactions and disk syncs: the first caller commits what is queued, the
 * others wait, then the next one commits what queued meanwhile. */
static duet_code write_grouped(duet_session_store *s,
                               duet_code (*fn)(duet_session_store *, void *, duet_status *),
                               void *ctx, duet_status *st)
{
    pending_write me = {.fn = fn, .ctx = ctx, .st = st};
    pthread_mutex_lock(&s->queue_lock);
    if (s->queue_tail) {
        s->queue_tail->next = &me;
    } else {
        s->queue_head = &me;
    }
    s->queue_tail = &me;
    while (!me.done) {
        if (s->committing) {
            pthread_cond_wait(&s->committed, &s->queue_lock);
            continue;
        }
        s->committing = true;
        pending_write *batch = s->queue_head;
        s->queue_head = s->queue_tail = NULL;
        pthread_mutex_unlock(&s->queue_lock);
        commit_batch(s, batch);
        pthread_mutex_lock(&s->queue_lock);
        for (pending_write *p = batch, *next; p; p = next) {
            next = p->next; /* p may be gone once done is seen */
            p->done = true;
        }
        s->committing = false;
        pthread_cond_broadcast(&s->committed);
    }
    pthread_mutex_unlock(&s->queue_lock);
    return me.rc;
}

/* Within a transaction: is id a session of user's? */
static duet_code require_owned(duet_session_store *s, const char *user, const char *id,
                               duet_status *st)
{
    sqlite3_stmt *q = statement(s, Q_OWNED);
    if (!bind_text(q, 1, id) || !bind_text(q, 2, user)) {
        return db_error(s->db, sqlite3_errcode(s->db), "looking up a session", st);
    }
    int rc = sqlite3_step(q);
    duet_code c = DUET_OK;
    if (rc == SQLITE_DONE) {
        c = not_found(id, st);
    } else if (rc != SQLITE_ROW) {
        c = db_error(s->db, rc, "looking up a session", st);
    }
    sqlite3_reset(q);
    return c;
}

static duet_code touch(duet_session_store *s, const char *id, int64_t now, duet_status *st)
{
    sqlite3_stmt *q = statement(s, Q_TOUCH);
    if (!bind_text(q, 1, id) || !bind_int(q, 2, now)) {
        return db_error(s->db, sqlite3_errcode(s->db), "updating a session", st);
    }
    return run(s, q, "updating a session", st);
}

/* Wall-clock milliseconds, but always past the last value handed out: changes stay in order
 * when several land in one millisecond or the clock steps back. Called under the lock. */
static int64_t next_time_ms(duet_session_store *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (now <= s->last_ms) {
        now = s->last_ms + 1;
    }
    s->last_ms = now;
    return now;
}

static char *copy_column_text(sqlite3_stmt *q, int col)
{
    const unsigned char *text = sqlite3_column_text(q, col);
    if (!text) {
        return NULL;
    }
    size_t len = (size_t)sqlite3_column_bytes(q, col);
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, text, len + 1);
    }
    return copy;
}

static void copy_column_to(sqlite3_stmt *q, int col, char *out, size_t cap)
{
    const unsigned char *text = sqlite3_column_text(q, col);
    snprintf(out, cap, "%s", text ? (const char *)text : "");
}

/* ---- open and close ---- */

static duet_code open_error(sqlite3 *db, int rc, const char *path, const char *doing,
                            duet_status *st)
{
    const char *why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    int sys_errno = db ? sqlite3_system_errno(db) : 0;
    duet_code c = code_for_sqlite(rc, sys_errno);
    if (c == DUET_DATA_LOSS) {
        return duet_status_set(
            st, c, "session store '%s' is not a SQLite database or is corrupt (%s)", path, why);
    }
    if (sys_errno != 0 && (rc & 0xff) == SQLITE_CANTOPEN) {
        return duet_status_set(st, c, "cannot open session store '%s': %s", path,
                               strerror(sys_errno));
    }
    return duet_status_set(st, c, "session store '%s': %s failed: %s", path, doing, why);
}

static duet_code query_int(sqlite3 *db, const char *sql, int64_t *out, const char *path,
                           duet_status *st)
{
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(q, 0);
            rc = SQLITE_OK;
        }
    }
    duet_code c = rc == SQLITE_OK ? DUET_OK : open_error(db, rc, path, sql, st);
    sqlite3_finalize(q);
    return c;
}

static duet_code exec(sqlite3 *db, const char *sql, const char *path, duet_status *st)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? DUET_OK : open_error(db, rc, path, sql, st);
}

/* Reads the file's schema version and refuses one we do not know: newer than ours, or some
 * other application's tables. Only reads. */
static duet_code read_schema_version(sqlite3 *db, const char *path, int64_t *version,
                                     duet_status *st)
{
    int64_t objects = 0;
    duet_code c = query_int(db, "PRAGMA user_version", version, path, st);
    if (c == DUET_OK) {
        c = query_int(db, "SELECT COUNT(*) FROM sqlite_schema", &objects, path, st);
    }
    if (c != DUET_OK) {
        return c;
    }
    if (*version > DUET_SESSION_SCHEMA_VERSION) {
        return duet_status_set(st, DUET_FAILED_PRECONDITION,
                               "session store '%s' has schema version %lld, newer than the %d "
                               "this gateway knows; run a newer gateway or use another file",
                               path, (long long)*version, DUET_SESSION_SCHEMA_VERSION);
    }
    if (*version < 0 || (*version == 0 && objects > 0)) {
        return duet_status_set(st, DUET_FAILED_PRECONDITION,
                               "'%s' is a SQLite database of something else (it has tables but "
                               "no session store schema version); use another file",
                               path);
    }
    return DUET_OK;
}

/* Creates the schema in an empty file; the check is repeated under the write lock in case
 * another process got there first. */
static duet_code ensure_schema(sqlite3 *db, const char *path, duet_status *st)
{
    duet_code c = exec(db, "BEGIN IMMEDIATE", path, st);
    if (c != DUET_OK) {
        return c;
    }
    int64_t version = 0;
    c = read_schema_version(db, path, &version, st);
    if (c == DUET_OK && version == 0) {
        c = exec(db, schema_sql, path, st);
        if (c == DUET_OK) {
            /* PRAGMA takes no bound parameters; the version is our constant. */
            char sql[64];
            snprintf(sql, sizeof sql, "PRAGMA user_version = %d", DUET_SESSION_SCHEMA_VERSION);
            c = exec(db, sql, path, st);
        }
    }
    if (c == DUET_OK) {
        return exec(db, "COMMIT", path, st);
    }
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return c;
}

static duet_code configure(sqlite3 *db, const char *path, bool in_memory, duet_status *st)
{
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    /* Look before touching anything: a file that is not ours must stay as it is, and
     * switching to WAL rewrites the header. This read is also what finds a non-database. */
    int64_t version;
    duet_code c = read_schema_version(db, path, &version, st);
    if (c != DUET_OK) {
        return c;
    }
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(q, 0);
        bool ok = mode && (strcmp(mode, "wal") == 0 || (in_memory && strcmp(mode, "memory") == 0));
        if (!ok) {
            c = duet_status_set(st, DUET_FAILED_PRECONDITION,
                                "session store '%s' cannot use WAL journaling (got '%s'); is it "
                                "on a file system without shared memory support?",
                                path, mode ? mode : "?");
        }
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) {
        c = open_error(db, rc, path, "switching to WAL", st);
    }
    sqlite3_finalize(q);
    if (c != DUET_OK) {
        return c;
    }
    /* synchronous=FULL: in WAL mode every COMMIT fsyncs the WAL, so a change is on disk when
     * the call returns and the gateway may acknowledge it; NORMAL would survive a kill -9 but
     * could lose the last commits to a power cut.
     * cache_size=-2000: at most 2 MiB of page cache for the one connection, set explicitly
     * so the gateway's memory (target < 20 MiB with 100 sessions) does not depend on how
     * SQLite was built; the working set is a few sessions, and the OS caches the file.
     * journal_size_limit: after a checkpoint, trim a WAL that a burst grew beyond 4 MiB. */
    c = exec(db,
             "PRAGMA synchronous = FULL;"
             "PRAGMA foreign_keys = ON;"
             "PRAGMA cache_size = -2000;"
             "PRAGMA journal_size_limit = 4194304;",
             path, st);
    if (c != DUET_OK) {
        return c;
    }
    int64_t foreign_keys = 0;
    c = query_int(db, "PRAGMA foreign_keys", &foreign_keys, path, st);
    if (c == DUET_OK && foreign_keys != 1) {
        /* Deleting a session relies on ON DELETE CASCADE. */
        return duet_status_set(st, DUET_INTERNAL,
                               "this SQLite was built without foreign key support");
    }
    return c == DUET_OK ? ensure_schema(db, path, st) : c;
}

static duet_code prepare_all(duet_session_store *s, const char *path, duet_status *st)
{
    s->stmts = calloc(Q_COUNT, sizeof *s->stmts);
    if (!s->stmts) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (int i = 0; i < Q_COUNT; i++) {
        int rc = sqlite3_prepare_v3(s->db, statement_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->stmts[i], NULL);
        if (rc != SQLITE_OK) {
            return open_error(s->db, rc, path, "preparing statements", st);
        }
    }
    return DUET_OK;
}

duet_code duet_session_store_open(const char *path, duet_session_store **out, duet_status *st)
{
    *out = NULL;
    if (!path || !*path) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "the session store path is empty");
    }
    if (!sqlite3_threadsafe()) {
        /* Our mutex serializes calls, but a single-thread build may not be used from
         * several threads at all. */
        return duet_status_set(st, DUET_FAILED_PRECONDITION,
                               "this SQLite was built single-threaded; the session store needs "
                               "one built with SQLITE_THREADSAFE >= 1");
    }
    duet_session_store *s = calloc(1, sizeof *s);
    if (!s) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->queue_lock, NULL);
    pthread_cond_init(&s->committed, NULL);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
    duet_code c = rc == SQLITE_OK ? DUET_OK : open_error(s->db, rc, path, "opening", st);
    if (c == DUET_OK) {
        c = configure(s->db, path, strcmp(path, ":memory:") == 0, st);
    }
    if (c == DUET_OK) {
        c = prepare_all(s, path, st);
    }
    if (c == DUET_OK) {
        c = query_int(s->db, "SELECT COALESCE(MAX(updated_ms), 0) FROM sessions", &s->last_ms, path,
                      st);
    }
    if (c != DUET_OK) {
        duet_session_store_close(s);
        return c;
    }
    *out = s;
    duet_status_clear(st);
    return DUET_OK;
}

void duet_session_store_close(duet_session_store *s)
{
    if (!s) {
        return;
    }
    if (s->stmts) {
        for (int i = 0; i < Q_COUNT; i++) {
            sqlite3_finalize(s->stmts[i]);
        }
        free(s->stmts);
    }
    sqlite3_close(s->db); /* checkpoints the WAL into the file */
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->queue_lock);
    pthread_cond_destroy(&s->committed);
    free(s);
}

/* ---- sessions ---- */

static duet_code new_session_id(char out[DUET_SESSION_ID_SIZE], duet_status *st)
{
    unsigned char bytes[16];
    size_t got = 0;
    while (got < sizeof bytes) {
        ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
        if (n < 0 && errno != EINTR) {
            return duet_status_set(st, DUET_INTERNAL, "getrandom failed: %s", strerror(errno));
        }
        got += n > 0 ? (size_t)n : 0;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof bytes; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    out[2 * sizeof bytes] = '\0';
    return DUET_OK;
}

typedef struct {
    const char *id, *user, *title, *system_prompt;
} create_write;

static duet_code create_fn(duet_session_store *s, void *ctx, duet_status *st)
{
    create_write *w = ctx;
    sqlite3_stmt *q = statement(s, Q_INSERT_SESSION);
    if (!bind_text(q, 1, w->id) || !bind_text(q, 2, w->user) || !bind_text(q, 3, w->title) ||
        !bind_text(q, 4, w->system_prompt) || !bind_int(q, 5, next_time_ms(s))) {
        return db_error(s->db, sqlite3_errcode(s->db), "creating a session", st);
    }
    return run(s, q, "creating a session", st);
}

duet_code duet_session_store_create(duet_session_store *s, const char *user, const char *title,
                                    const char *system_prompt, char out_id[DUET_SESSION_ID_SIZE],
                                    duet_status *st)
{
    if (!title) {
        title = DUET_SESSION_DEFAULT_TITLE;
    }
    duet_code c = check_user(user, st);
    if (c == DUET_OK) {
        c = check_title(title, st);
    }
    if (c == DUET_OK) {
        c = check_optional_content("system prompt", system_prompt, st);
    }
    char id[DUET_SESSION_ID_SIZE];
    if (c == DUET_OK) {
        c = new_session_id(id, st);
    }
    if (c != DUET_OK) {
        return c;
    }
    create_write w = {id, user, title, system_prompt};
    c = write_grouped(s, create_fn, &w, st);
    if (c == DUET_OK) {
        memcpy(out_id, id, sizeof id);
    }
    return c;
}

static duet_code list_locked(duet_session_store *s, const char *user, size_t limit, size_t offset,
                             duet_session_list *out, duet_status *st)
{
    int64_t total = 0;
    sqlite3_stmt *q = statement(s, Q_COUNT_SESSIONS);
    if (!bind_text(q, 1, user)) {
        return db_error(s->db, sqlite3_errcode(s->db), "counting sessions", st);
    }
    duet_code c = run_int(s, q, &total, "counting sessions", st);
    if (c != DUET_OK) {
        return c;
    }
    out->total = (size_t)total;
    if (offset >= out->total) {
        return DUET_OK;
    }
    size_t want = out->total - offset < limit ? out->total - offset : limit;
    out->items = calloc(want, sizeof *out->items);
    if (!out->items) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory listing sessions");
    }
    q = statement(s, Q_LIST);
    if (!bind_text(q, 1, user) || !bind_int(q, 2, (int64_t)want) ||
        !bind_int(q, 3, (int64_t)offset)) {
        return db_error(s->db, sqlite3_errcode(s->db), "listing sessions", st);
    }
    int rc = SQLITE_DONE;
    while (out->count < want && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        duet_session_entry *e = &out->items[out->count++];
        copy_column_to(q, 0, e->id, sizeof e->id);
        copy_column_to(q, 1, e->title, sizeof e->title);
        e->created_ms = sqlite3_column_int64(q, 2);
        e->updated_ms = sqlite3_column_int64(q, 3);
        e->n_messages = sqlite3_column_int64(q, 4);
    }
    c = rc == SQLITE_DONE || rc == SQLITE_ROW ? DUET_OK
                                              : db_error(s->db, rc, "listing sessions", st);
    sqlite3_reset(q);
    return c;
}

duet_code duet_session_store_list(duet_session_store *s, const char *user, size_t limit,
                                  size_t offset, duet_session_list *out, duet_status *st)
{
    memset(out, 0, sizeof *out);
    duet_code c = check_user(user, st);
    if (c != DUET_OK) {
        return c;
    }
    if (limit < 1 || limit > DUET_SESSION_LIST_MAX) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "a list limit is 1 to %d sessions; got %zu", DUET_SESSION_LIST_MAX,
                               limit);
    }
    if (offset > INT64_MAX) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "list offset %zu is too large", offset);
    }
    pthread_mutex_lock(&s->lock);
    c = begin(s, false, st);
    if (c == DUET_OK) {
        c = end(s, list_locked(s, user, limit, offset, out, st), st);
    }
    pthread_mutex_unlock(&s->lock);
    if (c != DUET_OK) {
        duet_session_list_free(out);
    }
    return c;
}

void duet_session_list_free(duet_session_list *list)
{
    if (list) {
        free(list->items);
        memset(list, 0, sizeof *list);
    }
}

static duet_code get_locked(duet_session_store *s, const char *user, const char *id,
                            duet_session_info *out, duet_status *st)
{
    sqlite3_stmt *q = statement(s, Q_GET);
    if (!bind_text(q, 1, id) || !bind_text(q, 2, user)) {
        return db_error(s->db, sqlite3_errcode(s->db), "reading a session", st);
    }
    int rc = sqlite3_step(q);
    duet_code c = DUET_OK;
    if (rc == SQLITE_ROW) {
        copy_column_to(q, 0, out->id, sizeof out->id);
        copy_column_to(q, 1, out->title, sizeof out->title);
        out->system_prompt = copy_column_text(q, 2);
        out->summary = copy_column_text(q, 3);
        out->summary_upto = sqlite3_column_int64(q, 4);
        out->created_ms = sqlite3_column_int64(q, 5);
        out->updated_ms = sqlite3_column_int64(q, 6);
        out->n_messages = sqlite3_column_int64(q, 7);
        bool lost = (sqlite3_column_type(q, 2) != SQLITE_NULL && !out->system_prompt) ||
                    (sqlite3_column_type(q, 3) != SQLITE_NULL && !out->summary);
        if (lost) {
            c = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory reading a session");
        }
    } else if (rc == SQLITE_DONE) {
        c = not_found(id, st);
    } else {
        c = db_error(s->db, rc, "reading a session", st);
    }
    sqlite3_reset(q);
    return c;
}

duet_code duet_session_store_get(duet_session_store *s, const char *user, const char *id,
                                 duet_session_info *out, duet_status *st)
{
    memset(out, 0, sizeof *out);
    duet_code c = check_user(user, st);
    if (c == DUET_OK) {
        c = check_id(id, st);
    }
    if (c != DUET_OK) {
        return c;
    }
    pthread_mutex_lock(&s->lock);
    c = get_locked(s, user, id, out, st);
    pthread_mutex_unlock(&s->lock);
    if (c != DUET_OK) {
        duet_session_info_free(out);
    }
    return c;
}

void duet_session_info_free(duet_session_info *info)
{
    if (info) {
        free(info->system_prompt);
        free(info->summary);
        memset(info, 0, sizeof *info);
    }
}

/* ---- messages ---- */

static bool role_from_name(const char *name, duet_chat_role *role)
{
    for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++) {
        if (name && strcmp(name, role_names[i]) == 0) {
            *role = (duet_chat_role)i;
            return true;
        }
    }
    return false;
}

static duet_code read_message(sqlite3_stmt *q, duet_session_message *m, duet_status *st)
{
    m->seq = sqlite3_column_int64(q, 0);
    const char *role = (const char *)sqlite3_column_text(q, 1);
    if (!role_from_name(role, &m->role)) {
        return duet_status_set(st, DUET_DATA_LOSS, "message %lld has an unknown role '%s'",
                               (long long)m->seq, role ? role : "");
    }
    m->content = copy_column_text(q, 2);
    if (!m->content) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory reading messages");
    }
    m->partial = sqlite3_column_int(q, 3) != 0;
    m->created_ms = sqlite3_column_int64(q, 4);
    m->tokens = sqlite3_column_type(q, 5) == SQLITE_NULL ? DUET_SESSION_TOKENS_UNKNOWN
                                                         : sqlite3_column_int64(q, 5);
    return DUET_OK;
}

static duet_code messages_locked(duet_session_store *s, const char *user, const char *id,
                                 int64_t after_seq, duet_session_messages *out, duet_status *st)
{
    duet_code c = require_owned(s, user, id, st);
    if (c != DUET_OK) {
        return c;
    }
    sqlite3_stmt *q = statement(s, Q_MESSAGES);
    if (!bind_text(q, 1, id) || !bind_int(q, 2, after_seq)) {
        return db_error(s->db, sqlite3_errcode(s->db), "reading messages", st);
    }
    size_t cap = 0;
    int rc = SQLITE_DONE;
    while (c == DUET_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (out->count == cap) {
            size_t grown = cap ? 2 * cap : 16;
            duet_session_message *items = realloc(out->items, grown * sizeof *items);
            if (!items) {
                c = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory reading messages");
                break;
            }
            out->items = items;
            cap = grown;
        }
        duet_session_message *m = &out->items[out->count];
        memset(m, 0, sizeof *m);
        c = read_message(q, m, st);
        if (c == DUET_OK) {
            out->count++;
        }
    }
    if (c == DUET_OK && rc != SQLITE_DONE) {
        c = db_error(s->db, rc, "reading messages", st);
    }
    sqlite3_reset(q);
    return c;
}

duet_code duet_session_store_messages(duet_session_store *s, const char *user, const char *id,
                                      int64_t after_seq, duet_session_messages *out,
                                      duet_status *st)
{
    memset(out, 0, sizeof *out);
    duet_code c = check_user(user, st);
    if (c == DUET_OK) {
        c = check_id(id, st);
    }
    if (c == DUET_OK && after_seq < 0) {
        c = duet_status_set(st, DUET_INVALID_ARGUMENT, "after_seq is %lld; it must be >= 0",
                            (long long)after_seq);
    }
    if (c != DUET_OK) {
        return c;
    }
    pthread_mutex_lock(&s->lock);
    c = begin(s, false, st);
    if (c == DUET_OK) {
        c = end(s, messages_locked(s, user, id, after_seq, out, st), st);
    }
    pthread_mutex_unlock(&s->lock);
    if (c != DUET_OK) {
        duet_session_messages_free(out);
    }
    return c;
}

void duet_session_messages_free(duet_session_messages *messages)
{
    if (!messages) {
        return;
    }
    for (size_t i = 0; i < messages->count; i++) {
        free(messages->items[i].content);
    }
    free(messages->items);
    memset(messages, 0, sizeof *messages);
}

static duet_code append_locked(duet_session_store *s, const char *user, const char *id,
                               duet_chat_role role, const char *content, bool partial,
                               int64_t tokens, int64_t *seq, duet_status *st)
{
    duet_code c = require_owned(s, user, id, st);
    if (c != DUET_OK) {
        return c;
    }
    int64_t last = 0;
    sqlite3_stmt *q = statement(s, Q_LAST_SEQ);
    if (!bind_text(q, 1, id)) {
        return db_error(s->db, sqlite3_errcode(s->db), "numbering a message", st);
    }
    c = run_int(s, q, &last, "numbering a message", st);
    if (c != DUET_OK) {
        return c;
    }
    int64_t now = next_time_ms(s);
    q = statement(s, Q_INSERT_MESSAGE);
    if (!bind_text(q, 1, id) || !bind_int(q, 2, last + 1) || !bind_text(q, 3, role_names[role]) ||
        !bind_text(q, 4, content) || !bind_int(q, 5, partial) || !bind_int(q, 6, now) ||
        !bind_tokens(q, 7, tokens)) {
        return db_error(s->db, sqlite3_errcode(s->db), "storing a message", st);
    }
    c = run(s, q, "storing a message", st);
    if (c == DUET_OK) {
        c = touch(s, id, now, st);
    }
    if (c == DUET_OK && seq) {
        *seq = last + 1;
    }
    return c;
}

static duet_code check_new_message(const duet_session_new_message *m, duet_status *st)
{
    if ((int)m->role < 0 || (int)m->role > (int)DUET_ROLE_ASSISTANT) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "role %d is not system, user or assistant", (int)m->role);
    }
    if (m->partial && m->role != DUET_ROLE_ASSISTANT) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "only an assistant message may be partial");
    }
    duet_code c = check_text("message content", m->content, DUET_SESSION_CONTENT_MAX, true, st);
    return c == DUET_OK ? check_tokens(m->tokens, st) : c;
}

typedef struct {
    const char *user, *id;
    const duet_session_new_message *msgs;
    size_t n;
    int64_t first;
} append_write;

static duet_code append_fn(duet_session_store *s, void *ctx, duet_status *st)
{
    append_write *w = ctx;
    duet_code c = DUET_OK;
    for (size_t i = 0; i < w->n && c == DUET_OK; i++) {
        const duet_session_new_message *m = &w->msgs[i];
        c = append_locked(s, w->user, w->id, m->role, m->content, m->partial, m->tokens,
                          i == 0 ? &w->first : NULL, st);
    }
    return c;
}

duet_code duet_session_store_append_many(duet_session_store *s, const char *user, const char *id,
                                         const duet_session_new_message *msgs, size_t n,
                                         int64_t *first_seq, duet_status *st)
{
    duet_code c = check_user(user, st);
    if (c == DUET_OK) {
        c = check_id(id, st);
    }
    if (c == DUET_OK && n == 0) {
        c = duet_status_set(st, DUET_INVALID_ARGUMENT, "no message to append");
    }
    for (size_t i = 0; i < n && c == DUET_OK; i++) {
        c = check_new_message(&msgs[i], st);
    }
    if (c != DUET_OK) {
        return c;
    }
    append_write w = {user, id, msgs, n, 0};
    c = write_grouped(s, append_fn, &w, st);
    if (c == DUET_OK && first_seq) {
        *first_seq = w.first;
    }
    return c;
}

duet_code duet_session_store_append(duet_session_store *s, const char *user, const char *id,
                                    duet_chat_role role, const char *content, bool partial,
                                    int64_t tokens, int64_t *seq, duet_status *st)
{
    duet_session_new_message m = {role, content, partial, tokens};
    return duet_session_store_append_many(s, user, id, &m, 1, seq, st);
}

static duet_code complete_locked(duet_session_store *s, const char *user, const char *id,
                                 int64_t seq, const char *content, bool partial, int64_t tokens,
                                 duet_status *st)
{
    duet_code c = require_owned(s, user, id, st);
    if (c != DUET_OK) {
        return c;
    }
    sqlite3_stmt *q = statement(s, Q_MESSAGE_STATE);
    if (!bind_text(q, 1, id) || !bind_int(q, 2, seq)) {
        return db_error(s->db, sqlite3_errcode(s->db), "reading a message", st);
    }
    int rc = sqlite3_step(q);
    const char *role = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0) : NULL;
    if (rc == SQLITE_DONE) {
        c = duet_status_set(st, DUET_NOT_FOUND, "session '%s' has no message %lld", id,
                            (long long)seq);
    } else if (rc != SQLITE_ROW) {
        c = db_error(s->db, rc, "reading a message", st);
    } else if (!role || strcmp(role, "assistant") != 0) {
        c = duet_status_set(st, DUET_FAILED_PRECONDITION,
                            "message %lld is the %s's; only an assistant's answer can be completed",
                            (long long)seq, role ? role : "?");
    } else if (sqlite3_column_int(q, 1) == 0) {
        c = duet_status_set(st, DUET_FAILED_PRECONDITION,
                            "message %lld is already complete; a complete answer is final",
                            (long long)seq);
    }
    sqlite3_reset(q);
    if (c != DUET_OK) {
        return c;
    }
    q = statement(s, Q_UPDATE_MESSAGE);
    if (!bind_text(q, 1, id) || !bind_int(q, 2, seq) || !bind_text(q, 3, content) ||
        !bind_int(q, 4, partial) || !bind_tokens(q, 5, tokens)) {
        return db_error(s->db, sqlite3_errcode(s->db), "updating a message", st);
    }
    c = run(s, q, "updating a message", st);
    return c == DUET_OK ? touch(s, id, next_time_ms(s), st) : c;
}

typedef struct {
    const char *user, *id;
    int64_t seq;
    const char *content;
    bool partial;
    int64_t tokens;
} complete_write;

static duet_code complete_fn(duet_session_store *s, void *ctx, duet_status *st)
{
    complete_write *w = ctx;
    return complete_locked(s, w->user, w->id, w->seq, w->content, w->partial, w->tokens, st);
}

duet_code duet_session_store_complete(duet_session_store *s, const char *user, const char *id,
                                      int64_t seq, const char *content, bool partial,
                                      int64_t tokens, duet_status *st)
{
    duet_code c = check_user(user, st);
    if (c == DUET_OK) {
        c = check_id(id, st);
    }
    if (c == DUET_OK) {
        c = check_text("message content", content, DUET_SESSION_CONTENT_MAX, true, st);
    }
    if (c == DUET_OK) {
        c = check_tokens(tokens, st);
    }
    if (c != DUET_OK) {
        return c;
    }
    complete_write w = {user, id, seq, content, partial, tokens};
    return write_grouped(s, complete_fn, &w, st);
}

/* ---- session fields ---- */

/* One UPDATE or DELETE of the user's session, which commits on its own; no row changed
 * means the user has no such session. */
static duet_code change_session(duet_session_store *s, statement_id which, const char *user,
                                const char *id, const char *text, const char *doing,
                                duet_status *st)
{
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *q = statement(s, which);
    duet_code c;
    bool bound = bind_text(q, 1, id) && bind_text(q, 2, user);
    if (bound && which != Q_DELETE) {
        bound = bind_text(q, 3, text) && bind_int(q, 4, next_time_ms(s));
    }
    if (!bound) {
        c = db_error(s->db, sqlite3_errcode(s->db), doing, st);
    } else {
        c = run(s, q, doing, st);
    }
    if (c == DUET_OK && sqlite3_changes(s->db) == 0) {
        c = not_found(id, st);
    }
    pthread_mutex_unlock(&s->lock);
    return c;
}

duet_code duet_session_store_rename(duet_session_store *s, const char *user, const char *id,
                                    const char *title, duet_status *st)
{
    duet_code c = check_user(user, st);
    if (c == DUET_OK) {
        c = check_id(id, st);
    }
    if (c == DUET_OK) {
        c = check_title(title, st);
    }
    return c == DUET_OK ? change_session(s, Q_RENAME, user, id, title, "renaming a session", st)
                        : c;
}

duet_code duet_session_store_set_system_prompt(duet_session_store *s, const char *user,
                                               const char *id, const char *system_prompt,
                                               duet_status *st)
{
    duet_code c = check_user(user, st);
    if (c == DUET_OK) {
        c = check_id(id, st);
    }
    if (c == DUET_OK) {
        c = check_optional_content("system prompt", system_prompt, st);
    }
    return c == DUET_OK ? change_session(s, Q_SET_SYSTEM_PROMPT, user, id, system_prompt,
                                         "setting a system prompt", st)
                        : c;
}

duet_code duet_session_store_delete(duet_session_store *s, const char *user, const char *id,
                                    duet_status *st)
{
    duet_code c = check_user(user, st);
    if (c == DUET_OK) {
        c = check_id(id, st);
    }
    return c == DUET_OK ? change_session(s, Q_DELETE, user, id, NULL, "deleting a session", st) : c;
}

static duet_code set_summary_locked(duet_session_store *s, const char *user, const char *id,
                                    const char *summary, int64_t upto_seq, duet_status *st)
{
    duet_code c = require_owned(s, user, id, st);
    if (c != DUET_OK) {
        return c;
    }
    int64_t last = 0;
    sqlite3_stmt *q = statement(s, Q_LAST_SEQ);
    if (!bind_text(q, 1, id)) {
        return db_error(s->db, sqlite3_errcode(s->db), "counting messages", st);
    }
    c = run_int(s, q, &last, "counting messages", st);
    if (c != DUET_OK) {
        return c;
    }
    if (upto_seq > last) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "the summary covers messages up to %lld, but the session has %lld",
                               (long long)upto_seq, (long long)last);
    }
    q = statement(s, Q_SET_SUMMARY);
    if (!bind_text(q, 1, id) || !bind_text(q, 2, summary) || !bind_int(q, 3, upto_seq) ||
        !bind_int(q, 4, next_time_ms(s))) {
        return db_error(s->db, sqlite3_errcode(s->db), "setting a summary", st);
    }
    return run(s, q, "setting a summary", st);
}

duet_code duet_session_store_set_summary(duet_session_store *s, const char *user, const char *id,
                                         const char *summary, int64_t upto_seq, duet_status *st)
{
    duet_code c = check_user(user, st);
    if (c == DUET_OK) {
        c = check_id(id, st);
    }
    if (c == DUET_OK) {
        c = check_optional_content("summary", summary, st);
    }
    if (c == DUET_OK && (summary ? upto_seq < 1 : upto_seq != 0)) {
        c = duet_status_set(st, DUET_INVALID_ARGUMENT,
                            summary ? "a summary covers messages 1..n with n >= 1; got %lld"
                                    : "removing the summary takes upto_seq 0; got %lld",
                            (long long)upto_seq);
    }
    if (c != DUET_OK) {
        return c;
    }
    pthread_mutex_lock(&s->lock);
    c = begin(s, true, st);
    if (c == DUET_OK) {
        c = end(s, set_summary_locked(s, user, id, summary, upto_seq, st), st);
    }
    pthread_mutex_unlock(&s->lock);
    return c;
}
