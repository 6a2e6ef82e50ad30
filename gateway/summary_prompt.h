/* The chat that asks the model to summarize turns trimmed from a session (trim_policy
 * summarize): an instruction, the earlier summary when there is one, the turns themselves
 * in their own roles, and a closing request. The model's answer replaces all of them. */
#ifndef DUET_SUMMARY_PROMPT_H
#define DUET_SUMMARY_PROMPT_H

#include <stddef.h>

#include "chat_template.h"

/* Room out needs for n turns. */
#define DUET_SUMMARY_PROMPT_SIZE(n) ((n) + 3)

/* Fills out (DUET_SUMMARY_PROMPT_SIZE(n) entries, pointing at the given strings and at
 * static text) and returns how many it used. The instruction is the leading system
 * message and the request the last user message, so trimming the prompt keeps both and
 * drops the oldest turns first. */
size_t duet_summary_prompt(const char *earlier_summary, const duet_chat_message *turns, size_t n,
                           duet_chat_message *out);

#endif
