/* Context trimming with a real tokenizer (stories260K's) and the chatml template: nothing
 * is dropped when the conversation fits; otherwise the oldest turns go, the system prompt
 * and the last message stay, the result fits and is the most that fits; the kept part
 * never opens on an orphaned answer; a last message too long alone is refused with the
 * numbers. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "trim.h"
#include "vocab_gguf.h"

static duet_tokenizer *tok;

static void setup(void)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    char path[1024];
    snprintf(path, sizeof path, "%s/stories260K.gguf", dir ? dir : "../shared/models");
    duet_gguf *g;
    duet_vocab v;
    duet_status st;
    if (duet_gguf_open(path, &g, &st) != DUET_OK) {
        cr_skip_test("TEST MODELS MISSING: %s", st.message);
    }
    cr_assert_eq(duet_vocab_from_gguf(g, &v, &st), DUET_OK);
    cr_assert_eq(duet_tokenizer_create(&v, &tok, &st), DUET_OK);
    duet_vocab_free(&v);
    duet_gguf_close(g);
}

static void teardown(void)
{
    duet_tokenizer_free(tok);
}

TestSuite(trim, .init = setup, .fini = teardown);

static const char *const TURNS[] = {
    "Tell me a story about a cat.",
    "Once upon a time there was a cat named Tom who liked to sleep in the sun.",
    "What did Tom do next?",
    "Tom woke up and went to find his friend the dog, who lived next door.",
    "Were they good friends?",
    "Yes, they played together every day and shared their toys.",
    "And how does it end?",
};
#define N_TURNS (sizeof TURNS / sizeof TURNS[0])

/* A system prompt and the turns, alternating user and assistant. */
static size_t conversation(duet_chat_message *m)
{
    m[0] = (duet_chat_message){.role = DUET_ROLE_SYSTEM, .content = "You tell short stories."};
    for (size_t i = 0; i < N_TURNS; i++) {
        m[i + 1] = (duet_chat_message){.role = i % 2 ? DUET_ROLE_ASSISTANT : DUET_ROLE_USER,
                                       .content = TURNS[i]};
    }
    return N_TURNS + 1;
}

static uint32_t count(const duet_chat_message *m, size_t n, const duet_trim_limits *lim)
{
    uint32_t t;
    duet_status st;
    cr_assert_eq(duet_trim_count(m, n, lim, &t, &st), DUET_OK, "%s", st.message);
    return t;
}

Test(trim, a_conversation_that_fits_is_kept_whole)
{
    duet_chat_message m[N_TURNS + 1];
    size_t n = conversation(m);
    duet_trim_limits lim = {tok, DUET_TEMPLATE_CHATML, 2048, 256};
    duet_trim_result r;
    duet_status st;
    cr_assert_eq(duet_trim_fit(m, n, &lim, &r, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(r.dropped, 0);
    cr_assert_eq(r.n_system, 1);
    cr_assert_eq(r.first_kept, 1);
    cr_assert_eq(r.prompt_tokens, count(m, n, &lim));
}

/* For every room between "only the last turn" and "everything", the kept part fits, is the
 * most that fits in whole turns, and keeps the system prompt and the last message. */
Test(trim, drops_the_oldest_turns_and_keeps_the_most_that_fits)
{
    duet_chat_message m[N_TURNS + 1], kept[N_TURNS + 1];
    size_t n = conversation(m);
    duet_trim_limits lim = {tok, DUET_TEMPLATE_CHATML, 0, 16};
    lim.context = 4096;
    uint32_t all = count(m, n, &lim);
    duet_chat_message last_only[2] = {m[0], m[n - 1]};
    uint32_t least = count(last_only, 2, &lim);
    size_t trimmed_cases = 0;
    for (uint32_t room = least; room < all; room += 3) {
        lim.context = room + lim.answer_budget;
        duet_trim_result r;
        duet_status st;
        cr_assert_eq(duet_trim_fit(m, n, &lim, &r, &st), DUET_OK, "room %u: %s", room, st.message);
        cr_assert_eq(r.n_system, 1);
        cr_assert_gt(r.dropped, 0, "room %u < %u: something must go", room, all);
        cr_assert_leq(r.prompt_tokens, room, "room %u: kept %u tokens", room, r.prompt_tokens);
        cr_assert_lt(r.first_kept, n, "the last message stays");
        cr_assert(r.first_kept == n - 1 || m[r.first_kept].role == DUET_ROLE_USER,
                  "room %u: the kept part opens on an answer", room);
        kept[0] = m[0];
        memcpy(kept + 1, m + r.first_kept, (n - r.first_kept) * sizeof *m);
        cr_assert_eq(count(kept, 1 + n - r.first_kept, &lim), r.prompt_tokens);
        /* one more whole turn would not fit */
        if (r.first_kept >= 3) {
            kept[0] = m[0];
            memcpy(kept + 1, m + r.first_kept - 2, (n - r.first_kept + 2) * sizeof *m);
            cr_assert_gt(count(kept, 3 + n - r.first_kept, &lim), room,
                         "room %u: an older turn would have fit", room);
        }
        trimmed_cases++;
    }
    cr_assert_gt(trimmed_cases, 5);
}

Test(trim, a_last_message_too_long_alone_is_refused_with_the_numbers)
{
    static char big[6000];
    memset(big, 'a', sizeof big - 1);
    for (size_t i = 5; i < sizeof big - 1; i += 6) {
        big[i] = ' ';
    }
    duet_chat_message m[2] = {{DUET_ROLE_USER, "hello"}, {DUET_ROLE_USER, big}};
    duet_trim_limits lim = {tok, DUET_TEMPLATE_CHATML, 512, 64};
    duet_trim_result r;
    duet_status st;
    cr_assert_eq(duet_trim_fit(m, 2, &lim, &r, &st), DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "512") && strstr(st.message, "64") && strstr(st.message, "448"),
              "%s", st.message);

    lim.answer_budget = 512;
    cr_assert_eq(duet_trim_fit(m, 2, &lim, &r, &st), DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "answer budget"), "%s", st.message);
    cr_assert_eq(duet_trim_fit(m, 0, &lim, &r, &st), DUET_INVALID_ARGUMENT);
}
