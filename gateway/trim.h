/* Context trimming: fitting a conversation into the model's context window minus the
 * answer budget, counting tokens exactly as the worker will (the same chat template and
 * tokenizer; see duet_gen_request_from_proto on the worker's side).
 *
 * Kept always: the leading system messages and the last message. Kept as space allows: the
 * newest turns before the last message. Dropped: the oldest turns, whole (the kept part
 * never starts with an assistant message whose question was dropped). The caller reports
 * what was dropped, and under the summarize policy replaces it with a summary. */
#ifndef DUET_TRIM_H
#define DUET_TRIM_H

#include <stddef.h>
#include <stdint.h>

#include "chat_template.h"
#include "status.h"
#include "tokenizer.h"

typedef struct {
    const duet_tokenizer *tok;
    duet_template_kind template_kind;
    uint32_t context;       /* the worker's context length */
    uint32_t answer_budget; /* tokens kept free for the answer, 1 .. context - 1 */
} duet_trim_limits;

typedef struct {
    size_t n_system;        /* leading system messages, kept */
    size_t first_kept;      /* messages [n_system, first_kept) are dropped */
    size_t dropped;         /* first_kept - n_system */
    uint32_t prompt_tokens; /* of the prompt rendered from what is kept */
} duet_trim_result;

/* Decides what of msgs[0..n) to keep. INVALID_ARGUMENT when n is 0, when the budget does not
 * leave room in the context, or when the system messages and the last message alone do not
 * fit — the message gives their token count and the room ("the last message and the
 * system prompt are 5120 tokens; the context of 4096 minus 512 for the answer leaves
 * 3584"). */
duet_code duet_trim_fit(const duet_chat_message *msgs, size_t n, const duet_trim_limits *lim,
                        duet_trim_result *out, duet_status *st);

/* The tokens of the prompt the worker would build from msgs (template, generation prompt,
 * BOS as the model says, special-token text parsed). */
duet_code duet_trim_count(const duet_chat_message *msgs, size_t n, const duet_trim_limits *lim,
                          uint32_t *tokens, duet_status *st);

#endif
