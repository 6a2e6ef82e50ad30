#include "trim.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

duet_code duet_trim_count(const duet_chat_message *msgs, size_t n, const duet_trim_limits *lim,
                          uint32_t *tokens, duet_status *st)
{
    char *text = NULL;
    if (duet_template_render(lim->template_kind, msgs, n, true, false, &text, st) != DUET_OK) {
        return st->code;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    duet_code rc = duet_tokenize(lim->tok, text, strlen(text), true, true, &ids, &n_ids, st);
    free(text);
    free(ids);
    if (rc == DUET_OK) {
        *tokens = n_ids > UINT32_MAX ? UINT32_MAX : (uint32_t)n_ids;
    }
    return rc;
}

/* The system messages followed by msgs[from..n), counted. */
static duet_code count_from(const duet_chat_message *msgs, size_t n, size_t n_system, size_t from,
                            const duet_trim_limits *lim, duet_chat_message *scratch,
                            uint32_t *tokens, duet_status *st)
{
    memcpy(scratch, msgs, n_system * sizeof *scratch);
    memcpy(scratch + n_system, msgs + from, (n - from) * sizeof *scratch);
    return duet_trim_count(scratch, n_system + n - from, lim, tokens, st);
}

duet_code duet_trim_fit(const duet_chat_message *msgs, size_t n, const duet_trim_limits *lim,
                        duet_trim_result *out, duet_status *st)
{
    if (n == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "no messages");
    }
    if (lim->answer_budget == 0 || lim->answer_budget >= lim->context) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "an answer budget of %u tokens leaves no room in a context of %u",
                               lim->answer_budget, lim->context);
    }
    const uint32_t room = lim->context - lim->answer_budget;
    size_t n_system = 0;
    while (n_system < n - 1 && msgs[n_system].role == DUET_ROLE_SYSTEM) {
        n_system++;
    }
    duet_chat_message *scratch = malloc(n * sizeof *scratch);
    if (!scratch) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    uint32_t tokens = 0;
    duet_code rc = count_from(msgs, n, n_system, n_system, lim, scratch, &tokens, st);
    size_t first = n_system;
    if (rc == DUET_OK && tokens > room) {
        /* the fewest dropped that fit: counts only grow with what is kept, so bisect on the
         * first kept message between n_system (all, too many) and n - 1 (the last alone) */
        uint32_t last_alone;
        rc = count_from(msgs, n, n_system, n - 1, lim, scratch, &last_alone, st);
        if (rc == DUET_OK && last_alone > room) {
            rc = duet_status_set(st, DUET_INVALID_ARGUMENT,
                                 "the last message and the system prompt are %u tokens; the "
                                 "context of %u minus %u for the answer leaves %u",
                                 last_alone, lim->context, lim->answer_budget, room);
        }
        size_t lo = n_system, hi = n - 1; /* lo: does not fit; hi: fits */
        tokens = last_alone;
        while (rc == DUET_OK && hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            uint32_t t;
            rc = count_from(msgs, n, n_system, mid, lim, scratch, &t, st);
            if (rc == DUET_OK && t <= room) {
                hi = mid;
                tokens = t;
            } else {
                lo = mid;
            }
        }
        first = hi;
        /* whole turns: do not open on an answer whose question is gone */
        if (rc == DUET_OK && first < n - 1 && msgs[first].role == DUET_ROLE_ASSISTANT) {
            first++;
            rc = count_from(msgs, n, n_system, first, lim, scratch, &tokens, st);
        }
    }
    free(scratch);
    if (rc != DUET_OK) {
        return rc;
    }
    *out = (duet_trim_result){.n_system = n_system,
                              .first_kept = first,
                              .dropped = first - n_system,
                              .prompt_tokens = tokens};
    return DUET_OK;
}
