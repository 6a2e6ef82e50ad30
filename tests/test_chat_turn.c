/* A chat request's turn in a stored session: the conversation sent is the stored history
 * plus the new messages (system prompt first, then the summary, empty partial answers left
 * out); a request without a session is sent as given and recorded as a new session;
 * nothing is stored before commit; the answer is stored partial, saved, then finished;
 * one turn per session at a time; another user's session is not found. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "chat_turn.h"

static duet_session_store *store;
static duet_chat_turns *turns;
static duet_status st;

static void setup(void)
{
    cr_assert_eq(duet_session_store_open(":memory:", &store, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_chat_turns_new(store, &turns, &st), DUET_OK);
}

static void teardown(void)
{
    duet_chat_turns_free(turns);
    duet_session_store_close(store);
}

TestSuite(chat_turn, .init = setup, .fini = teardown);

static duet_chat_turn *open_turn(const char *user, const char *id, const duet_chat_message *m,
                                 size_t n)
{
    duet_chat_turn *t = NULL;
    cr_assert_eq(duet_chat_turn_open(turns, user, id, m, n, &t, &st), DUET_OK, "%s", st.message);
    return t;
}

static void answer(duet_chat_turn *t, const char *text)
{
    cr_assert_eq(duet_chat_turn_commit(t, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_chat_turn_finish(t, text, 5, true, &st), DUET_OK, "%s", st.message);
}

static void expect_conversation(const duet_chat_turn *t, const duet_chat_message *want, size_t n)
{
    const duet_chat_message *got;
    const int64_t *seqs;
    size_t n_got;
    duet_chat_turn_conversation(t, &got, &seqs, &n_got);
    cr_assert_eq(n_got, n, "%zu messages, not %zu", n_got, n);
    for (size_t i = 0; i < n; i++) {
        cr_expect_eq(got[i].role, want[i].role, "message %zu", i);
        cr_expect_str_eq(got[i].content, want[i].content, "message %zu", i);
    }
}

Test(chat_turn, without_a_session_the_request_is_sent_as_given_and_recorded)
{
    duet_chat_message req[] = {{DUET_ROLE_SYSTEM, "Be brief."},
                               {DUET_ROLE_USER, "Where is Oslo?\nI ask for a trip."},
                               {DUET_ROLE_ASSISTANT, "In Norway."},
                               {DUET_ROLE_USER, "Is it cold?"}};
    duet_chat_turn *t = open_turn("alice", NULL, req, 4);
    expect_conversation(t, req, 4);
    cr_assert_str_eq(duet_chat_turn_session_id(t), "", "no session before commit");
    duet_session_list list;
    cr_assert_eq(duet_session_store_list(store, "alice", 10, 0, &list, &st), DUET_OK);
    cr_assert_eq(list.total, 0, "opening stores nothing");
    duet_session_list_free(&list);

    answer(t, "Yes, in winter.");
    char id[DUET_SESSION_ID_SIZE];
    snprintf(id, sizeof id, "%s", duet_chat_turn_session_id(t));
    cr_assert_eq(strlen(id), 32);
    duet_chat_turn_close(t);

    duet_session_info info;
    cr_assert_eq(duet_session_store_get(store, "alice", id, &info, &st), DUET_OK);
    cr_assert_str_eq(info.system_prompt, "Be brief.");
    cr_assert_str_eq(info.title, "Where is Oslo?", "titled by its first question's first line");
    duet_session_info_free(&info);
    duet_session_messages ms;
    cr_assert_eq(duet_session_store_messages(store, "alice", id, 0, &ms, &st), DUET_OK);
    cr_assert_eq(ms.count, 4);
    cr_assert_str_eq(ms.items[2].content, "Is it cold?");
    cr_assert_str_eq(ms.items[3].content, "Yes, in winter.");
    cr_assert_not(ms.items[3].partial);
    cr_assert_eq(ms.items[3].tokens, 5);
    duet_session_messages_free(&ms);
}

Test(chat_turn, a_session_supplies_its_history_and_takes_only_new_messages)
{
    char id[DUET_SESSION_ID_SIZE];
    cr_assert_eq(duet_session_store_create(store, "alice", NULL, "Be brief.", id, &st), DUET_OK);
    duet_chat_message q1 = {DUET_ROLE_USER, "Where is Oslo?"};
    duet_chat_turn *t = open_turn("alice", id, &q1, 1);
    duet_chat_message want1[] = {{DUET_ROLE_SYSTEM, "Be brief."}, q1};
    expect_conversation(t, want1, 2);
    cr_assert_str_eq(duet_chat_turn_session_id(t), id);
    cr_assert(duet_chat_turn_in_session(t));
    answer(t, "In Norway.");
    duet_chat_turn_close(t);

    /* a second turn that sets a new system prompt */
    duet_chat_message q2[] = {{DUET_ROLE_SYSTEM, "Answer in French."},
                              {DUET_ROLE_USER, "Is it cold?"}};
    t = open_turn("alice", id, q2, 2);
    duet_chat_message want2[] = {{DUET_ROLE_SYSTEM, "Answer in French."},
                                 q1,
                                 {DUET_ROLE_ASSISTANT, "In Norway."},
                                 {DUET_ROLE_USER, "Is it cold?"}};
    expect_conversation(t, want2, 4);
    cr_assert_eq(duet_chat_turn_commit(t, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(duet_chat_turn_save(t, "Oui", 1, 0, &st), DUET_OK);
    cr_assert_eq(duet_chat_turn_save(t, "Oui, tr", 2, 60000, &st), DUET_OK,
                 "a save within the interval is skipped");
    duet_session_messages ms;
    cr_assert_eq(duet_session_store_messages(store, "alice", id, 2, &ms, &st), DUET_OK);
    cr_assert_eq(ms.count, 2);
    cr_assert_str_eq(ms.items[1].content, "Oui", "the saved progress, not the skipped save");
    cr_assert(ms.items[1].partial);
    duet_session_messages_free(&ms);
    cr_assert_eq(duet_chat_turn_finish(t, "Oui, très", 3, false, &st), DUET_OK);
    duet_chat_turn_close(t);

    duet_session_info info;
    cr_assert_eq(duet_session_store_get(store, "alice", id, &info, &st), DUET_OK);
    cr_assert_str_eq(info.system_prompt, "Answer in French.");
    cr_assert_str_eq(info.title, "Where is Oslo?", "an empty session is named by its first turn");
    duet_session_info_free(&info);
    cr_assert_eq(duet_session_store_messages(store, "alice", id, 0, &ms, &st), DUET_OK);
    cr_assert_eq(ms.count, 4);
    cr_assert_str_eq(ms.items[3].content, "Oui, très");
    cr_assert(ms.items[3].partial, "an answer that did not complete stays partial");
    duet_session_messages_free(&ms);

    /* the partial answer is history too; an empty partial one is not */
    duet_chat_message q3 = {DUET_ROLE_USER, "Why?"};
    t = open_turn("alice", id, &q3, 1);
    cr_assert_eq(duet_chat_turn_commit(t, &st), DUET_OK);
    duet_chat_turn_close(t); /* stopped before any text: an empty partial answer */
    duet_chat_message q4 = {DUET_ROLE_USER, "Why, again?"};
    t = open_turn("alice", id, &q4, 1);
    duet_chat_message want4[] = {{DUET_ROLE_SYSTEM, "Answer in French."},
                                 q1,
                                 {DUET_ROLE_ASSISTANT, "In Norway."},
                                 {DUET_ROLE_USER, "Is it cold?"},
                                 {DUET_ROLE_ASSISTANT, "Oui, très"},
                                 q3,
                                 q4};
    expect_conversation(t, want4, 7);
    duet_chat_turn_close(t);
}

Test(chat_turn, a_summary_stands_for_the_messages_it_covers)
{
    char id[DUET_SESSION_ID_SIZE];
    cr_assert_eq(duet_session_store_create(store, "alice", NULL, "Be brief.", id, &st), DUET_OK);
    const char *qs[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        duet_chat_message q = {DUET_ROLE_USER, qs[i]};
        duet_chat_turn *t = open_turn("alice", id, &q, 1);
        answer(t, "ok");
        duet_chat_turn_close(t);
    }
    duet_chat_message q = {DUET_ROLE_USER, "four"};
    duet_chat_turn *t = open_turn("alice", id, &q, 1);
    const duet_chat_message *conv;
    const int64_t *seqs;
    size_t n;
    duet_chat_turn_conversation(t, &conv, &seqs, &n);
    cr_assert_eq(n, 8);
    cr_assert_eq(seqs[0], 0, "the system prompt is not stored as a message");
    cr_assert_eq(seqs[1], 1);
    cr_assert_eq(seqs[6], 6);
    cr_assert_eq(seqs[7], 0, "the new message is not stored yet");
    cr_assert_eq(duet_chat_turn_set_summary(t, "They counted.", 4, &st), DUET_OK, "%s", st.message);
    duet_chat_message want[] = {
        {DUET_ROLE_SYSTEM, "Be brief.\n\nSummary of the earlier conversation: They counted."},
        {DUET_ROLE_USER, "three"},
        {DUET_ROLE_ASSISTANT, "ok"},
        q};
    expect_conversation(t, want, 4);
    cr_assert_eq(duet_chat_turn_summarized(t), 4);
    answer(t, "five");
    duet_chat_turn_close(t);

    /* the next turn starts from the stored summary */
    duet_chat_message q5 = {DUET_ROLE_USER, "six"};
    t = open_turn("alice", id, &q5, 1);
    cr_assert_str_eq(duet_chat_turn_summary(t), "They counted.");
    duet_chat_turn_conversation(t, &conv, &seqs, &n);
    cr_assert_eq(n, 6);
    cr_assert_str_eq(conv[1].content, "three");
    duet_chat_turn_close(t);
}

Test(chat_turn, one_turn_per_session_and_only_the_owners)
{
    char id[DUET_SESSION_ID_SIZE];
    cr_assert_eq(duet_session_store_create(store, "alice", NULL, NULL, id, &st), DUET_OK);
    duet_chat_message q = {DUET_ROLE_USER, "hello"};
    duet_chat_turn *t = open_turn("alice", id, &q, 1);
    duet_chat_turn *again = NULL;
    cr_assert_eq(duet_chat_turn_open(turns, "alice", id, &q, 1, &again, &st), DUET_ABORTED);
    cr_assert(strstr(st.message, "still answering"), "%s", st.message);
    duet_chat_turn_close(t);
    t = open_turn("alice", id, &q, 1);
    duet_chat_turn_close(t);

    cr_assert_eq(duet_chat_turn_open(turns, "bob", id, &q, 1, &again, &st), DUET_NOT_FOUND);
    cr_assert_eq(
        duet_chat_turn_open(turns, "alice", "0123456789abcdef0123456789abcdef", &q, 1, &again, &st),
        DUET_NOT_FOUND);
    t = open_turn("alice", id, &q, 1);
    duet_chat_turn_close(t); /* bob's refused attempt did not hold alice's session */
}

Test(chat_turn, a_session_turn_must_end_with_the_users_new_message)
{
    char id[DUET_SESSION_ID_SIZE];
    cr_assert_eq(duet_session_store_create(store, "alice", NULL, NULL, id, &st), DUET_OK);
    duet_chat_message only_system = {DUET_ROLE_SYSTEM, "Be brief."};
    duet_chat_message ends_with_answer[] = {{DUET_ROLE_USER, "hi"}, {DUET_ROLE_ASSISTANT, "hello"}};
    duet_chat_turn *t = NULL;
    cr_assert_eq(duet_chat_turn_open(turns, "alice", id, &only_system, 1, &t, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "only the new ones"), "%s", st.message);
    cr_assert_eq(duet_chat_turn_open(turns, "alice", id, ends_with_answer, 2, &t, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert_eq(duet_chat_turn_open(turns, "alice", NULL, NULL, 0, &t, &st),
                 DUET_INVALID_ARGUMENT);
}

Test(chat_turn, a_message_the_store_refuses_leaves_no_session_behind)
{
    duet_chat_message bad = {DUET_ROLE_USER, "broken \xC3 text"};
    duet_chat_turn *t = open_turn("alice", NULL, &bad, 1);
    cr_assert_eq(duet_chat_turn_commit(t, &st), DUET_INVALID_ARGUMENT);
    duet_chat_turn_close(t);
    duet_session_list list;
    cr_assert_eq(duet_session_store_list(store, "alice", 10, 0, &list, &st), DUET_OK);
    cr_assert_eq(list.total, 0);
    duet_session_list_free(&list);
}

Test(chat_turn, titles_are_the_first_line_cut_at_a_character)
{
    char out[DUET_CHAT_TITLE_MAX + 8];
    duet_chat_title_from("  Plan a trip  \nwith details", out, sizeof out);
    cr_assert_str_eq(out, "Plan a trip");
    duet_chat_title_from(" \n ", out, sizeof out);
    cr_assert_str_eq(out, "");
    char long_text[200];
    memset(long_text, 'a', sizeof long_text);
    memcpy(long_text + 57, "é", 2); /* bytes 57..58 */
    memcpy(long_text + 59, "ü", 2); /* bytes 59..60: a cut at 60 would split it */
    long_text[199] = '\0';
    duet_chat_title_from(long_text, out, sizeof out);
    cr_assert_eq(strlen(out), 59 + 3);
    cr_assert(memcmp(out + 57, "é…", 5) == 0, "cut before ü, with an ellipsis: %s", out + 50);
}
