/* The session store: sessions and messages round-trip in order; users see only their own
 * sessions (another's is "not found", word for word); rename, delete and its cascade;
 * a streamed answer stored partial then completed; limits and bad input refused with
 * nothing stored; everything survives close and reopen, and every acknowledged write
 * survives a kill -9 of the writer; files that are not ours are refused, untouched. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "session_store.h"
#include "support.h"

static char dir[512];
static char db_path[600];
static duet_session_store *store;
static duet_status st;

static void setup(void)
{
    test_make_temp_dir(dir, sizeof dir, "duet-sessions");
    snprintf(db_path, sizeof db_path, "%s/sessions.db", dir);
    cr_assert_eq(duet_session_store_open(db_path, &store, &st), DUET_OK, "%s", st.message);
}

static void teardown(void)
{
    duet_session_store_close(store);
    store = NULL;
    test_remove_dir(dir);
}

TestSuite(session_store, .init = setup, .fini = teardown);

static void reopen(void)
{
    duet_session_store_close(store);
    store = NULL;
    cr_assert_eq(duet_session_store_open(db_path, &store, &st), DUET_OK, "%s", st.message);
}

static void create(const char *user, const char *title, const char *system_prompt,
                   char id[DUET_SESSION_ID_SIZE])
{
    cr_assert_eq(duet_session_store_create(store, user, title, system_prompt, id, &st), DUET_OK,
                 "%s", st.message);
}

static int64_t append(const char *user, const char *id, duet_chat_role role, const char *content)
{
    int64_t seq = 0;
    cr_assert_eq(duet_session_store_append(store, user, id, role, content, false,
                                           DUET_SESSION_TOKENS_UNKNOWN, &seq, &st),
                 DUET_OK, "%s", st.message);
    return seq;
}

static size_t count_messages(const char *user, const char *id)
{
    duet_session_messages m;
    cr_assert_eq(duet_session_store_messages(store, user, id, 0, &m, &st), DUET_OK, "%s",
                 st.message);
    size_t n = m.count;
    duet_session_messages_free(&m);
    return n;
}

/* One integer from the file, read behind the store's back. */
static int64_t raw_int(const char *path, const char *sql, const char *text_param)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    if (text_param) {
        sqlite3_bind_text(q, 1, text_param, -1, SQLITE_STATIC);
    }
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW, "%s", sqlite3_errmsg(db));
    int64_t v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

static bool is_lower_hex(const char *s, size_t len)
{
    if (strlen(s) != len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

Test(session_store, sessions_and_messages_round_trip_in_order)
{
    char a[DUET_SESSION_ID_SIZE], b[DUET_SESSION_ID_SIZE];
    create("alice", "Trip to Oslo", "You are terse.", a);
    create("alice", NULL, NULL, b);
    cr_assert(is_lower_hex(a, 32), "id '%s'", a);
    cr_assert(is_lower_hex(b, 32), "id '%s'", b);
    cr_assert_str_neq(a, b);

    cr_assert_eq(append("alice", a, DUET_ROLE_USER, "Is Oslo cold? ❄"), 1);
    int64_t seq = 0;
    cr_assert_eq(duet_session_store_append(store, "alice", a, DUET_ROLE_ASSISTANT, "Yes.", false, 7,
                                           &seq, &st),
                 DUET_OK, "%s", st.message);
    cr_assert_eq(seq, 2);
    cr_assert_eq(append("alice", a, DUET_ROLE_USER, ""), 3, "empty content is a message too");

    duet_session_info info;
    cr_assert_eq(duet_session_store_get(store, "alice", a, &info, &st), DUET_OK, "%s", st.message);
    cr_assert_str_eq(info.id, a);
    cr_assert_str_eq(info.title, "Trip to Oslo");
    cr_assert_str_eq(info.system_prompt, "You are terse.");
    cr_assert_null(info.summary);
    cr_assert_eq(info.summary_upto, 0);
    cr_assert_eq(info.n_messages, 3);
    cr_assert_gt(info.updated_ms, info.created_ms, "appending moved updated_ms on");
    duet_session_info_free(&info);

    cr_assert_eq(duet_session_store_get(store, "alice", b, &info, &st), DUET_OK, "%s", st.message);
    cr_assert_str_eq(info.title, DUET_SESSION_DEFAULT_TITLE);
    cr_assert_null(info.system_prompt);
    cr_assert_eq(info.n_messages, 0);
    duet_session_info_free(&info);

    duet_session_messages m;
    cr_assert_eq(duet_session_store_messages(store, "alice", a, 0, &m, &st), DUET_OK, "%s",
                 st.message);
    cr_assert_eq(m.count, 3);
    cr_assert_eq(m.items[0].seq, 1);
    cr_assert_eq(m.items[0].role, DUET_ROLE_USER);
    cr_assert_str_eq(m.items[0].content, "Is Oslo cold? ❄");
    cr_assert_eq(m.items[0].tokens, DUET_SESSION_TOKENS_UNKNOWN);
    cr_assert_eq(m.items[1].role, DUET_ROLE_ASSISTANT);
    cr_assert_str_eq(m.items[1].content, "Yes.");
    cr_assert_eq(m.items[1].tokens, 7);
    cr_assert_not(m.items[1].partial);
    cr_assert_str_eq(m.items[2].content, "");
    cr_assert_lt(m.items[0].created_ms, m.items[1].created_ms);
    cr_assert_lt(m.items[1].created_ms, m.items[2].created_ms);
    duet_session_messages_free(&m);

    cr_assert_eq(duet_session_store_messages(store, "alice", a, 2, &m, &st), DUET_OK, "%s",
                 st.message);
    cr_assert_eq(m.count, 1, "only what follows after_seq");
    cr_assert_eq(m.items[0].seq, 3);
    duet_session_messages_free(&m);

    cr_assert_eq(duet_session_store_messages(store, "alice", b, 0, &m, &st), DUET_OK, "%s",
                 st.message);
    cr_assert_eq(m.count, 0);
    cr_assert_null(m.items);
    duet_session_messages_free(&m);
}

Test(session_store, list_is_newest_activity_first_and_pages)
{
    char ids[4][DUET_SESSION_ID_SIZE];
    for (int i = 0; i < 4; i++) {
        char title[32];
        snprintf(title, sizeof title, "chat %d", i);
        create("alice", title, NULL, ids[i]);
    }
    append("alice", ids[1], DUET_ROLE_USER, "hello");
    append("alice", ids[1], DUET_ROLE_ASSISTANT, "hi");
    cr_assert_eq(duet_session_store_rename(store, "alice", ids[0], "renamed", &st), DUET_OK);

    /* Order now: 0 (renamed last), 1 (messages), 3, 2 — all within a few milliseconds. */
    duet_session_list l;
    cr_assert_eq(duet_session_store_list(store, "alice", 10, 0, &l, &st), DUET_OK, "%s",
                 st.message);
    cr_assert_eq(l.count, 4);
    cr_assert_eq(l.total, 4);
    const int expect[4] = {0, 1, 3, 2};
    for (int i = 0; i < 4; i++) {
        cr_assert_str_eq(l.items[i].id, ids[expect[i]], "position %d", i);
    }
    cr_assert_str_eq(l.items[0].title, "renamed");
    cr_assert_eq(l.items[1].n_messages, 2);
    cr_assert_eq(l.items[2].n_messages, 0);
    for (int i = 1; i < 4; i++) {
        cr_assert_gt(l.items[i - 1].updated_ms, l.items[i].updated_ms);
    }
    duet_session_list_free(&l);

    cr_assert_eq(duet_session_store_list(store, "alice", 2, 1, &l, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(l.count, 2);
    cr_assert_eq(l.total, 4);
    cr_assert_str_eq(l.items[0].id, ids[1]);
    cr_assert_str_eq(l.items[1].id, ids[3]);
    duet_session_list_free(&l);

    cr_assert_eq(duet_session_store_list(store, "alice", 2, 4, &l, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(l.count, 0, "past the end");
    cr_assert_eq(l.total, 4);
    duet_session_list_free(&l);

    cr_assert_eq(duet_session_store_list(store, "alice", 0, 0, &l, &st), DUET_INVALID_ARGUMENT);
    cr_assert_eq(duet_session_store_list(store, "alice", DUET_SESSION_LIST_MAX + 1, 0, &l, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "1001"), "%s", st.message);
}

Test(session_store, another_users_session_is_not_found_word_for_word)
{
    char id[DUET_SESSION_ID_SIZE];
    create("alice", "private", "secret prompt", id);
    append("alice", id, DUET_ROLE_USER, "my secret");
    int64_t answer = 0;
    cr_assert_eq(duet_session_store_append(store, "alice", id, DUET_ROLE_ASSISTANT, "", true,
                                           DUET_SESSION_TOKENS_UNKNOWN, &answer, &st),
                 DUET_OK);

    /* What an id that exists nowhere gives; bob must get exactly that for alice's id. */
    const char *missing = "0123456789abcdef0123456789abcdef";
    duet_session_info info;
    cr_assert_eq(duet_session_store_get(store, "bob", missing, &info, &st), DUET_NOT_FOUND);
    char expected[DUET_STATUS_MESSAGE_MAX];
    snprintf(expected, sizeof expected, "%s", st.message);
    char *at = strstr(expected, missing);
    cr_assert_not_null(at, "the message names the id: %s", expected);
    memcpy(at, id, strlen(id));

#define CHECK_HIDDEN(call)                                                                         \
    do {                                                                                           \
        duet_status_clear(&st);                                                                    \
        cr_assert_eq((call), DUET_NOT_FOUND, #call);                                               \
        cr_assert_str_eq(st.message, expected, #call);                                             \
    } while (0)

    duet_session_messages m;
    CHECK_HIDDEN(duet_session_store_get(store, "bob", id, &info, &st));
    CHECK_HIDDEN(duet_session_store_messages(store, "bob", id, 0, &m, &st));
    CHECK_HIDDEN(duet_session_store_append(store, "bob", id, DUET_ROLE_USER, "hi", false,
                                           DUET_SESSION_TOKENS_UNKNOWN, NULL, &st));
    CHECK_HIDDEN(duet_session_store_complete(store, "bob", id, answer, "pwned", false,
                                             DUET_SESSION_TOKENS_UNKNOWN, &st));
    CHECK_HIDDEN(duet_session_store_rename(store, "bob", id, "mine now", &st));
    CHECK_HIDDEN(duet_session_store_set_system_prompt(store, "bob", id, "obey bob", &st));
    CHECK_HIDDEN(duet_session_store_set_summary(store, "bob", id, "stolen", 1, &st));
    CHECK_HIDDEN(duet_session_store_delete(store, "bob", id, &st));
    /* User names match exactly, not by case or prefix. */
    CHECK_HIDDEN(duet_session_store_get(store, "Alice", id, &info, &st));
    CHECK_HIDDEN(duet_session_store_get(store, "alic", id, &info, &st));
#undef CHECK_HIDDEN

    duet_session_list l;
    cr_assert_eq(duet_session_store_list(store, "bob", 10, 0, &l, &st), DUET_OK);
    cr_assert_eq(l.count, 0);
    cr_assert_eq(l.total, 0, "bob cannot even count alice's sessions");
    duet_session_list_free(&l);

    /* Alice's session is as she left it. */
    cr_assert_eq(duet_session_store_get(store, "alice", id, &info, &st), DUET_OK, "%s", st.message);
    cr_assert_str_eq(info.title, "private");
    cr_assert_str_eq(info.system_prompt, "secret prompt");
    cr_assert_null(info.summary);
    cr_assert_eq(info.n_messages, 2);
    duet_session_info_free(&info);
    cr_assert_eq(duet_session_store_messages(store, "alice", id, 0, &m, &st), DUET_OK);
    cr_assert_str_eq(m.items[1].content, "");
    cr_assert(m.items[1].partial);
    duet_session_messages_free(&m);
}

Test(session_store, rename_prompt_and_delete_with_its_messages)
{
    char a[DUET_SESSION_ID_SIZE], b[DUET_SESSION_ID_SIZE];
    create("alice", "first", "be kind", a);
    create("alice", "second", NULL, b);
    append("alice", a, DUET_ROLE_USER, "one");
    append("alice", a, DUET_ROLE_ASSISTANT, "two");
    append("alice", b, DUET_ROLE_USER, "three");

    cr_assert_eq(duet_session_store_rename(store, "alice", a, "Première", &st), DUET_OK, "%s",
                 st.message);
    cr_assert_eq(duet_session_store_set_system_prompt(store, "alice", a, NULL, &st), DUET_OK);
    cr_assert_eq(duet_session_store_set_system_prompt(store, "alice", b, "be brief", &st), DUET_OK);
    duet_session_info info;
    cr_assert_eq(duet_session_store_get(store, "alice", a, &info, &st), DUET_OK);
    cr_assert_str_eq(info.title, "Première");
    cr_assert_null(info.system_prompt, "NULL removes the prompt");
    duet_session_info_free(&info);
    cr_assert_eq(duet_session_store_get(store, "alice", b, &info, &st), DUET_OK);
    cr_assert_str_eq(info.system_prompt, "be brief");
    duet_session_info_free(&info);

    cr_assert_eq(duet_session_store_delete(store, "alice", a, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_session_store_get(store, "alice", a, &info, &st), DUET_NOT_FOUND);
    cr_assert_eq(duet_session_store_delete(store, "alice", a, &st), DUET_NOT_FOUND,
                 "deleting twice");
    cr_assert_eq(duet_session_store_append(store, "alice", a, DUET_ROLE_USER, "late", false,
                                           DUET_SESSION_TOKENS_UNKNOWN, NULL, &st),
                 DUET_NOT_FOUND);
    cr_assert_eq(count_messages("alice", b), 1, "the other session keeps its messages");

    /* The cascade really removed the rows (foreign keys are on). */
    cr_assert_eq(raw_int(db_path, "SELECT COUNT(*) FROM messages WHERE session_id = ?1", a), 0);
    cr_assert_eq(raw_int(db_path, "SELECT COUNT(*) FROM messages WHERE session_id = ?1", b), 1);
}

Test(session_store, a_streamed_answer_is_stored_partial_then_completed)
{
    char id[DUET_SESSION_ID_SIZE];
    create("alice", NULL, NULL, id);
    int64_t question = append("alice", id, DUET_ROLE_USER, "Count to three.");
    int64_t seq = 0;
    cr_assert_eq(duet_session_store_append(store, "alice", id, DUET_ROLE_ASSISTANT, "", true,
                                           DUET_SESSION_TOKENS_UNKNOWN, &seq, &st),
                 DUET_OK, "%s", st.message);
    cr_assert_eq(seq, 2);

    duet_session_info before, after;
    cr_assert_eq(duet_session_store_get(store, "alice", id, &before, &st), DUET_OK);
    cr_assert_eq(duet_session_store_complete(store, "alice", id, seq, "One, two", true, 4, &st),
                 DUET_OK, "%s", st.message);
    duet_session_messages m;
    cr_assert_eq(duet_session_store_messages(store, "alice", id, 1, &m, &st), DUET_OK);
    cr_assert_eq(m.count, 1);
    cr_assert_str_eq(m.items[0].content, "One, two");
    cr_assert(m.items[0].partial, "progress saved, still partial");
    cr_assert_eq(m.items[0].tokens, 4);
    duet_session_messages_free(&m);

    cr_assert_eq(duet_session_store_complete(store, "alice", id, seq, "One, two, three.", false,
                                             DUET_SESSION_TOKENS_UNKNOWN, &st),
                 DUET_OK, "%s", st.message);
    cr_assert_eq(duet_session_store_messages(store, "alice", id, 0, &m, &st), DUET_OK);
    cr_assert_eq(m.count, 2, "completing adds no message");
    cr_assert_str_eq(m.items[1].content, "One, two, three.");
    cr_assert_not(m.items[1].partial);
    cr_assert_eq(m.items[1].tokens, DUET_SESSION_TOKENS_UNKNOWN);
    duet_session_messages_free(&m);
    cr_assert_eq(duet_session_store_get(store, "alice", id, &after, &st), DUET_OK);
    cr_assert_gt(after.updated_ms, before.updated_ms);
    duet_session_info_free(&before);
    duet_session_info_free(&after);

    cr_assert_eq(duet_session_store_complete(store, "alice", id, seq, "rewritten", false, 1, &st),
                 DUET_FAILED_PRECONDITION, "a complete answer is final");
    cr_assert(strstr(st.message, "already complete"), "%s", st.message);
    cr_assert_eq(duet_session_store_complete(store, "alice", id, question, "x", false, 1, &st),
                 DUET_FAILED_PRECONDITION, "a question is not an answer");
    cr_assert(strstr(st.message, "user"), "%s", st.message);
    cr_assert_eq(duet_session_store_complete(store, "alice", id, 9, "x", false, 1, &st),
                 DUET_NOT_FOUND);
    cr_assert_eq(duet_session_store_append(store, "alice", id, DUET_ROLE_USER, "?", true,
                                           DUET_SESSION_TOKENS_UNKNOWN, NULL, &st),
                 DUET_INVALID_ARGUMENT, "only answers are partial");
    cr_assert_eq(duet_session_store_messages(store, "alice", id, 0, &m, &st), DUET_OK);
    cr_assert_str_eq(m.items[0].content, "Count to three.");
    cr_assert_str_eq(m.items[1].content, "One, two, three.");
    cr_assert_eq(m.count, 2);
    duet_session_messages_free(&m);
}

Test(session_store, append_many_stores_all_in_order_or_nothing)
{
    char id[DUET_SESSION_ID_SIZE];
    create("alice", NULL, NULL, id);
    duet_session_new_message turn[] = {
        {DUET_ROLE_USER, "first", false, DUET_SESSION_TOKENS_UNKNOWN},
        {DUET_ROLE_ASSISTANT, "second", false, 3},
        {DUET_ROLE_USER, "third", false, DUET_SESSION_TOKENS_UNKNOWN},
        {DUET_ROLE_ASSISTANT, "", true, 0},
    };
    int64_t first = 0;
    cr_assert_eq(duet_session_store_append_many(store, "alice", id, turn, 4, &first, &st), DUET_OK,
                 "%s", st.message);
    cr_assert_eq(first, 1);
    duet_session_new_message bad[] = {
        {DUET_ROLE_USER, "fine", false, DUET_SESSION_TOKENS_UNKNOWN},
        {DUET_ROLE_USER, "a user message cannot be partial", true, DUET_SESSION_TOKENS_UNKNOWN},
    };
    cr_assert_eq(duet_session_store_append_many(store, "alice", id, bad, 2, &first, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert_eq(duet_session_store_append_many(store, "bob", id, turn, 1, &first, &st),
                 DUET_NOT_FOUND, "another user's session takes nothing");
    duet_session_messages ms;
    cr_assert_eq(duet_session_store_messages(store, "alice", id, 0, &ms, &st), DUET_OK);
    cr_assert_eq(ms.count, 4, "the refused batches left nothing behind");
    cr_assert_str_eq(ms.items[2].content, "third");
    cr_assert(ms.items[3].partial);
    cr_assert_eq(ms.items[1].tokens, 3);
    duet_session_messages_free(&ms);
    cr_assert_eq(duet_session_store_append_many(store, "alice", id, turn, 1, &first, &st), DUET_OK);
    cr_assert_eq(first, 5);
}

Test(session_store, summary_covers_existing_messages_only)
{
    char id[DUET_SESSION_ID_SIZE];
    create("alice", NULL, NULL, id);
    append("alice", id, DUET_ROLE_USER, "q1");
    append("alice", id, DUET_ROLE_ASSISTANT, "a1");
    append("alice", id, DUET_ROLE_USER, "q2");

    cr_assert_eq(duet_session_store_set_summary(store, "alice", id, "asked q1", 2, &st), DUET_OK,
                 "%s", st.message);
    duet_session_info info;
    cr_assert_eq(duet_session_store_get(store, "alice", id, &info, &st), DUET_OK);
    cr_assert_str_eq(info.summary, "asked q1");
    cr_assert_eq(info.summary_upto, 2);
    duet_session_info_free(&info);

    cr_assert_eq(duet_session_store_set_summary(store, "alice", id, "too far", 4, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "4") && strstr(st.message, "3"), "%s", st.message);
    cr_assert_eq(duet_session_store_set_summary(store, "alice", id, "nothing", 0, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert_eq(duet_session_store_get(store, "alice", id, &info, &st), DUET_OK);
    cr_assert_str_eq(info.summary, "asked q1", "refused changes change nothing");
    duet_session_info_free(&info);

    cr_assert_eq(duet_session_store_set_summary(store, "alice", id, NULL, 0, &st), DUET_OK);
    cr_assert_eq(duet_session_store_get(store, "alice", id, &info, &st), DUET_OK);
    cr_assert_null(info.summary);
    cr_assert_eq(info.summary_upto, 0);
    duet_session_info_free(&info);
}

Test(session_store, bad_input_is_refused_with_the_numbers_and_nothing_stored)
{
    char id[DUET_SESSION_ID_SIZE];
    char title[DUET_SESSION_TITLE_MAX + 2];
    memset(title, 't', sizeof title - 1);
    title[sizeof title - 1] = '\0';
    cr_assert_eq(duet_session_store_create(store, "alice", title, NULL, id, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "201") && strstr(st.message, "200"), "%s", st.message);
    title[DUET_SESSION_TITLE_MAX] = '\0';
    create("alice", title, NULL, id); /* exactly the limit is fine */
    cr_assert_eq(duet_session_store_rename(store, "alice", id, "", &st), DUET_INVALID_ARGUMENT);

    const char *bad_utf8[] = {"caf\xc3",
                              "\xc3\x28",
                              "\xc0\xaf overlong",
                              "\xed\xa0\x80 surrogate",
                              "\xf4\x90\x80\x80 too high",
                              "\xff"};
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        cr_assert_eq(duet_session_store_append(store, "alice", id, DUET_ROLE_USER, bad_utf8[i],
                                               false, DUET_SESSION_TOKENS_UNKNOWN, NULL, &st),
                     DUET_INVALID_ARGUMENT, "content %zu", i);
        cr_assert(strstr(st.message, "UTF-8"), "%s", st.message);
        cr_assert_eq(duet_session_store_rename(store, "alice", id, bad_utf8[i], &st),
                     DUET_INVALID_ARGUMENT, "title %zu", i);
        cr_assert_eq(duet_session_store_set_system_prompt(store, "alice", id, bad_utf8[i], &st),
                     DUET_INVALID_ARGUMENT, "system prompt %zu", i);
    }

    size_t big = DUET_SESSION_CONTENT_MAX + 1;
    char *content = malloc(big + 1);
    memset(content, 'x', big);
    content[big] = '\0';
    cr_assert_eq(duet_session_store_append(store, "alice", id, DUET_ROLE_USER, content, false,
                                           DUET_SESSION_TOKENS_UNKNOWN, NULL, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "1048577") && strstr(st.message, "1048576"), "%s", st.message);
    content[big - 1] = '\0';
    cr_assert_eq(append("alice", id, DUET_ROLE_USER, content), 1, "exactly 1 MiB is fine");
    free(content);

    cr_assert_eq(duet_session_store_append(store, "alice", id, (duet_chat_role)7, "hi", false,
                                           DUET_SESSION_TOKENS_UNKNOWN, NULL, &st),
                 DUET_INVALID_ARGUMENT, "bad role");
    cr_assert_eq(
        duet_session_store_append(store, "alice", id, DUET_ROLE_USER, "hi", false, -2, NULL, &st),
        DUET_INVALID_ARGUMENT, "bad token count");
    cr_assert_eq(duet_session_store_append(store, "alice", id, DUET_ROLE_USER, NULL, false,
                                           DUET_SESSION_TOKENS_UNKNOWN, NULL, &st),
                 DUET_INVALID_ARGUMENT, "no content");
    cr_assert_eq(duet_session_store_append(store, "", id, DUET_ROLE_USER, "hi", false,
                                           DUET_SESSION_TOKENS_UNKNOWN, NULL, &st),
                 DUET_INVALID_ARGUMENT, "no user");
    cr_assert_eq(duet_session_store_append(store, "alice", "0123456789abcdef0123456789abcdef",
                                           DUET_ROLE_USER, "hi", false, DUET_SESSION_TOKENS_UNKNOWN,
                                           NULL, &st),
                 DUET_NOT_FOUND, "unknown session");
    const char *bad_ids[] = {"", "../etc", "a b", "x'; DROP TABLE sessions; --",
                             "0123456789012345678901234567890123456789012345678901234567890123X"};
    duet_session_info info;
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        cr_assert_eq(duet_session_store_get(store, "alice", bad_ids[i], &info, &st),
                     DUET_INVALID_ARGUMENT, "id '%s'", bad_ids[i]);
    }

    cr_assert_eq(count_messages("alice", id), 1, "only the valid message was stored");
    cr_assert_eq(duet_session_store_get(store, "alice", id, &info, &st), DUET_OK);
    cr_assert_eq(strlen(info.title), DUET_SESSION_TITLE_MAX);
    cr_assert_null(info.system_prompt);
    duet_session_info_free(&info);
}

Test(session_store, everything_survives_close_and_reopen)
{
    char a[DUET_SESSION_ID_SIZE], b[DUET_SESSION_ID_SIZE];
    create("alice", "kept", "sys", a);
    create("bob", "bob's", NULL, b);
    append("alice", a, DUET_ROLE_SYSTEM, "extra system text");
    append("alice", a, DUET_ROLE_USER, "question");
    cr_assert_eq(duet_session_store_append(store, "alice", a, DUET_ROLE_ASSISTANT, "half an", true,
                                           3, NULL, &st),
                 DUET_OK);
    cr_assert_eq(duet_session_store_set_summary(store, "alice", a, "gist", 1, &st), DUET_OK);
    duet_session_info before;
    cr_assert_eq(duet_session_store_get(store, "alice", a, &before, &st), DUET_OK);

    reopen();
    cr_assert_eq(raw_int(db_path, "SELECT user_version FROM pragma_user_version", NULL),
                 DUET_SESSION_SCHEMA_VERSION);

    duet_session_info info;
    cr_assert_eq(duet_session_store_get(store, "alice", a, &info, &st), DUET_OK, "%s", st.message);
    cr_assert_str_eq(info.title, "kept");
    cr_assert_str_eq(info.system_prompt, "sys");
    cr_assert_str_eq(info.summary, "gist");
    cr_assert_eq(info.summary_upto, 1);
    cr_assert_eq(info.created_ms, before.created_ms);
    cr_assert_eq(info.updated_ms, before.updated_ms);
    cr_assert_eq(info.n_messages, 3);
    duet_session_info_free(&info);

    duet_session_messages m;
    cr_assert_eq(duet_session_store_messages(store, "alice", a, 0, &m, &st), DUET_OK);
    cr_assert_eq(m.count, 3);
    cr_assert_eq(m.items[0].role, DUET_ROLE_SYSTEM);
    cr_assert_eq(m.items[1].role, DUET_ROLE_USER);
    cr_assert_str_eq(m.items[2].content, "half an");
    cr_assert(m.items[2].partial, "a partial answer stays partial");
    cr_assert_eq(m.items[2].tokens, 3);
    duet_session_messages_free(&m);
    cr_assert_eq(count_messages("bob", b), 0);

    /* Work goes on where it stopped, and time keeps moving forward. */
    cr_assert_eq(duet_session_store_complete(store, "alice", a, 3, "half an answer", false, 4, &st),
                 DUET_OK, "%s", st.message);
    cr_assert_eq(append("alice", a, DUET_ROLE_USER, "next"), 4);
    cr_assert_eq(duet_session_store_get(store, "alice", a, &info, &st), DUET_OK);
    cr_assert_gt(info.updated_ms, before.updated_ms);
    duet_session_info_free(&info);
    duet_session_info_free(&before);
}

/* Several threads appending to one session get distinct, gapless seqs. */
#define WRITERS 4
#define APPENDS_EACH 15

typedef struct {
    const char *id, *user;
    int64_t seqs[APPENDS_EACH];
    duet_code code;
    int refused; /* appends answered NOT_FOUND */
} writer_job;

static void *write_messages(void *arg)
{
    writer_job *job = arg;
    duet_status wst;
    for (int i = 0; i < APPENDS_EACH && job->code == DUET_OK; i++) {
        job->code = duet_session_store_append(store, job->user, job->id, DUET_ROLE_USER, "hi",
                                              false, i, &job->seqs[i], &wst);
        if (job->code == DUET_NOT_FOUND) {
            job->refused++;
            job->code = DUET_OK;
        }
    }
    return NULL;
}

Test(session_store, concurrent_appends_get_distinct_gapless_seqs)
{
    char id[DUET_SESSION_ID_SIZE];
    create("alice", NULL, NULL, id);
    pthread_t threads[WRITERS];
    writer_job jobs[WRITERS];
    for (int t = 0; t < WRITERS; t++) {
        jobs[t] = (writer_job){.id = id, .user = "alice", .code = DUET_OK};
        cr_assert_eq(pthread_create(&threads[t], NULL, write_messages, &jobs[t]), 0);
    }
    bool seen[WRITERS * APPENDS_EACH + 1] = {false};
    for (int t = 0; t < WRITERS; t++) {
        pthread_join(threads[t], NULL);
        cr_assert_eq(jobs[t].code, DUET_OK);
        for (int i = 0; i < APPENDS_EACH; i++) {
            int64_t seq = jobs[t].seqs[i];
            cr_assert(seq >= 1 && seq <= WRITERS * APPENDS_EACH, "seq %lld", (long long)seq);
            cr_assert_not(seen[seq], "seq %lld given twice", (long long)seq);
            seen[seq] = true;
            cr_assert(i == 0 || seq > jobs[t].seqs[i - 1], "one thread's seqs increase");
        }
    }
    cr_assert_eq(count_messages("alice", id), WRITERS * APPENDS_EACH);
}

/* Writes committed together stand or fall alone: another user's appends, refused inside
 * the shared transactions, take nothing from the owner's. */
Test(session_store, a_refused_write_in_a_group_commit_leaves_the_others)
{
    char id[DUET_SESSION_ID_SIZE];
    create("alice", NULL, NULL, id);
    pthread_t threads[2 * WRITERS];
    writer_job jobs[2 * WRITERS];
    for (int t = 0; t < 2 * WRITERS; t++) {
        jobs[t] = (writer_job){.id = id, .user = t % 2 ? "mallory" : "alice", .code = DUET_OK};
        cr_assert_eq(pthread_create(&threads[t], NULL, write_messages, &jobs[t]), 0);
    }
    for (int t = 0; t < 2 * WRITERS; t++) {
        pthread_join(threads[t], NULL);
        cr_assert_eq(jobs[t].code, DUET_OK);
        cr_assert_eq(jobs[t].refused, t % 2 ? APPENDS_EACH : 0, "writer %d", t);
    }
    cr_assert_eq(count_messages("alice", id), WRITERS * APPENDS_EACH);
    duet_session_messages ms;
    cr_assert_eq(duet_session_store_messages(store, "alice", id, 0, &ms, &st), DUET_OK);
    for (size_t i = 0; i < ms.count; i++) {
        cr_assert_eq(ms.items[i].seq, (int64_t)i + 1, "gapless");
    }
    duet_session_messages_free(&ms);
}

/* ---- kill -9 ---- */

typedef enum { ACK_QUESTION, ACK_PARTIAL, ACK_ANSWER } ack_kind;

typedef struct {
    int64_t seq;
    int32_t kind;
    int32_t turn;
} ack;

static void answer_text(int turn, char *out, size_t cap)
{
    /* Several kilobytes, so one commit spans pages. */
    int n = snprintf(out, cap, "answer %d:", turn);
    for (size_t i = (size_t)n; i + 1 < cap; i++) {
        out[i] = (char)('a' + (i * 7 + (size_t)turn) % 26);
    }
    out[cap - 1] = '\0';
}

/* The child: question, partial answer, completed answer, over and over; after each call
 * returns, it tells the parent what is now acknowledged. It never exits on its own. */
static void write_until_killed(const char *id, int ack_fd)
{
    duet_session_store *s;
    duet_status cst;
    if (duet_session_store_open(db_path, &s, &cst) != DUET_OK) {
        _exit(2);
    }
    static char answer[6000];
    for (int turn = 0; turn < 100000; turn++) {
        char question[64];
        snprintf(question, sizeof question, "question %d", turn);
        ack a = {.turn = turn};
        if (duet_session_store_append(s, "alice", id, DUET_ROLE_USER, question, false,
                                      DUET_SESSION_TOKENS_UNKNOWN, &a.seq, &cst) != DUET_OK) {
            _exit(3);
        }
        a.kind = ACK_QUESTION;
        if (write(ack_fd, &a, sizeof a) != sizeof a) {
            _exit(4);
        }
        if (duet_session_store_append(s, "alice", id, DUET_ROLE_ASSISTANT, "", true,
                                      DUET_SESSION_TOKENS_UNKNOWN, &a.seq, &cst) != DUET_OK) {
            _exit(3);
        }
        a.kind = ACK_PARTIAL;
        if (write(ack_fd, &a, sizeof a) != sizeof a) {
            _exit(4);
        }
        answer_text(turn, answer, sizeof answer);
        if (duet_session_store_complete(s, "alice", id, a.seq, answer, false, turn, &cst) !=
            DUET_OK) {
            _exit(3);
        }
        a.kind = ACK_ANSWER;
        if (write(ack_fd, &a, sizeof a) != sizeof a) {
            _exit(4);
        }
    }
    _exit(5);
}

static bool read_ack(int fd, ack *a)
{
    size_t got = 0;
    while (got < sizeof *a) {
        ssize_t n = read(fd, (char *)a + got, sizeof *a - got);
        if (n <= 0) {
            cr_assert_eq(got, 0, "a torn acknowledgement");
            return false;
        }
        got += (size_t)n;
    }
    return true;
}

#define ACKS_BEFORE_KILL 45
#define MAX_ACKS 4096

Test(session_store, acknowledged_writes_survive_kill_9)
{
    char id[DUET_SESSION_ID_SIZE];
    create("alice", "crash test", NULL, id);
    duet_session_store_close(store);
    store = NULL;

    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        write_until_killed(id, fds[1]);
    }
    close(fds[1]);

    static ack acks[MAX_ACKS];
    size_t n = 0;
    while (n < ACKS_BEFORE_KILL && read_ack(fds[0], &acks[n])) {
        n++;
    }
    cr_assert_eq(n, ACKS_BEFORE_KILL, "the writer stopped early");
    kill(pid, SIGKILL);
    /* What it acknowledged before the kill landed counts too. */
    while (n < MAX_ACKS && read_ack(fds[0], &acks[n])) {
        n++;
    }
    close(fds[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %d", status);

    cr_assert_eq(raw_int(db_path,
                         "SELECT COUNT(*) FROM pragma_integrity_check WHERE "
                         "integrity_check <> 'ok'",
                         NULL),
                 0, "the file is intact");
    cr_assert_eq(duet_session_store_open(db_path, &store, &st), DUET_OK, "%s", st.message);
    duet_session_messages m;
    cr_assert_eq(duet_session_store_messages(store, "alice", id, 0, &m, &st), DUET_OK, "%s",
                 st.message);

    /* Every acknowledged write is there; at most one more append (in flight at the kill). */
    int64_t last_acked = 0;
    for (size_t i = 0; i < n; i++) {
        last_acked = acks[i].seq > last_acked ? acks[i].seq : last_acked;
    }
    cr_assert(m.count == (size_t)last_acked || m.count == (size_t)last_acked + 1,
              "%zu messages for %lld acknowledged", m.count, (long long)last_acked);
    static char answer[6000];
    for (size_t i = 0; i < m.count; i++) {
        const duet_session_message *msg = &m.items[i];
        cr_assert_eq(msg->seq, (int64_t)i + 1, "gapless");
        int turn = (int)(i / 2);
        if (i % 2 == 0) {
            char question[64];
            snprintf(question, sizeof question, "question %d", turn);
            cr_assert_eq(msg->role, DUET_ROLE_USER);
            cr_assert_str_eq(msg->content, question);
        } else {
            cr_assert_eq(msg->role, DUET_ROLE_ASSISTANT);
            answer_text(turn, answer, sizeof answer);
            bool still_partial = msg->partial && strcmp(msg->content, "") == 0;
            bool completed =
                !msg->partial && strcmp(msg->content, answer) == 0 && msg->tokens == turn;
            cr_assert(still_partial || completed, "message %lld is neither state",
                      (long long)msg->seq);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (acks[i].kind == ACK_ANSWER) {
            cr_assert_not(m.items[acks[i].seq - 1].partial, "acknowledged answer %lld",
                          (long long)acks[i].seq);
        }
    }
    duet_session_messages_free(&m);
}

/* ---- files that are not ours ---- */

static char *read_whole(const char *path, size_t *len)
{
    char *data = test_read_file(path, len);
    cr_assert_not_null(data, "reading %s", path);
    return data;
}

Test(session_store, a_file_that_is_not_a_database_is_refused_untouched)
{
    char path[700];
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 200; i++) {
        fprintf(f, "line %d of some notes that are certainly not SQLite\n", i);
    }
    fclose(f);
    size_t len_before, len_after;
    char *before = read_whole(path, &len_before);

    duet_session_store *other = (duet_session_store *)1;
    cr_assert_eq(duet_session_store_open(path, &other, &st), DUET_DATA_LOSS, "%s", st.message);
    cr_assert_null(other);
    cr_assert(strstr(st.message, path), "names the file: %s", st.message);
    cr_assert(strstr(st.message, "not a SQLite database"), "%s", st.message);

    char *after = read_whole(path, &len_after);
    cr_assert_eq(len_after, len_before);
    cr_assert_eq(memcmp(before, after, len_before), 0, "the file was left as it was");
    free(before);
    free(after);
}

Test(session_store, a_newer_schema_version_is_refused)
{
    duet_session_store_close(store);
    store = NULL;
    raw_exec(db_path, "PRAGMA user_version = 2");

    cr_assert_eq(duet_session_store_open(db_path, &store, &st), DUET_FAILED_PRECONDITION);
    cr_assert_null(store);
    cr_assert(strstr(st.message, db_path), "%s", st.message);
    cr_assert(strstr(st.message, "schema version 2"), "%s", st.message);
    cr_assert_eq(raw_int(db_path, "SELECT user_version FROM pragma_user_version", NULL), 2);

    raw_exec(db_path, "PRAGMA user_version = 1");
    reopen(); /* and it is still a good store */
    cr_assert_eq(
        raw_int(db_path, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'sessions'", NULL), 1);
}

Test(session_store, another_applications_database_is_refused)
{
    char path[700];
    snprintf(path, sizeof path, "%s/other.db", dir);
    raw_exec(path, "CREATE TABLE accounts (name TEXT); INSERT INTO accounts VALUES ('x')");

    duet_session_store *other;
    cr_assert_eq(duet_session_store_open(path, &other, &st), DUET_FAILED_PRECONDITION);
    cr_assert(strstr(st.message, path), "%s", st.message);
    cr_assert_eq(raw_int(path, "SELECT COUNT(*) FROM sqlite_schema", NULL), 1, "no tables added");
    cr_assert_eq(raw_int(path, "SELECT COUNT(*) FROM accounts", NULL), 1);
}

Test(session_store, a_missing_folder_is_not_found_and_named)
{
    char path[700];
    snprintf(path, sizeof path, "%s/no/such/folder/sessions.db", dir);
    duet_session_store *other;
    cr_assert_eq(duet_session_store_open(path, &other, &st), DUET_NOT_FOUND, "%s", st.message);
    cr_assert(strstr(st.message, path), "%s", st.message);
}

Test(session_store, the_file_uses_wal_and_memory_stores_work)
{
    cr_assert_eq(raw_int(db_path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode", NULL), 1);
    duet_session_store *mem;
    cr_assert_eq(duet_session_store_open(":memory:", &mem, &st), DUET_OK, "%s", st.message);
    char id[DUET_SESSION_ID_SIZE];
    cr_assert_eq(duet_session_store_create(mem, "alice", NULL, NULL, id, &st), DUET_OK);
    cr_assert_eq(duet_session_store_append(mem, "alice", id, DUET_ROLE_USER, "hi", false,
                                           DUET_SESSION_TOKENS_UNKNOWN, NULL, &st),
                 DUET_OK);
    duet_session_list l;
    cr_assert_eq(duet_session_store_list(mem, "alice", 5, 0, &l, &st), DUET_OK);
    cr_assert_eq(l.count, 1);
    cr_assert_eq(l.items[0].n_messages, 1);
    duet_session_list_free(&l);
    duet_session_store_close(mem);

    cr_assert_eq(duet_session_store_list(store, "alice", 5, 0, &l, &st), DUET_OK);
    cr_assert_eq(l.total, 0, "the memory store is separate from the file");
    duet_session_list_free(&l);
}
