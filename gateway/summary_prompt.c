#include "summary_prompt.h"

static const char instruction[] =
    "You condense conversations. Read the conversation that follows and write a short summary "
    "of it in plain sentences: who said what that matters, names, facts, numbers, decisions "
    "and questions still open. Write only the summary.";

static const char request[] = "Summarize the conversation above.";

size_t duet_summary_prompt(const char *earlier_summary, const duet_chat_message *turns, size_t n,
                           duet_chat_message *out)
{
    size_t k = 0;
    out[k++] = (duet_chat_message){DUET_ROLE_SYSTEM, instruction};
    if (earlier_summary && earlier_summary[0]) {
        /* as a user turn, so trimming may drop it like the oldest turn it is */
        out[k++] = (duet_chat_message){DUET_ROLE_USER, earlier_summary};
    }
    for (size_t i = 0; i < n; i++) {
        out[k++] = turns[i];
    }
    out[k++] = (duet_chat_message){DUET_ROLE_USER, request};
    return k;
}
