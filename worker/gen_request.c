#include "gen_request.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void duet_gen_request_free(duet_gen_request *r)
{
    free(r->prompt);
    for (size_t i = 0; i < r->n_stops; i++) {
        free(r->stops[i]);
    }
    free(r->stops);
    memset(r, 0, sizeof *r);
}

static duet_code sampling_from_proto(const Duet__V1__SamplingParams *p, duet_sampler_params *out,
                                     duet_status *st)
{
    *out = duet_sampler_params_default();
    if (!p) {
        return DUET_OK;
    }
    if (p->temperature_opt_case) {
        out->temperature = p->temperature;
    }
    if (p->top_k_opt_case) {
        out->top_k = p->top_k;
    }
    if (p->top_p_opt_case) {
        out->top_p = p->top_p;
    }
    if (p->min_p_opt_case) {
        out->min_p = p->min_p;
    }
    if (p->repeat_penalty_opt_case) {
        out->repeat_penalty = p->repeat_penalty;
    }
    if (p->repeat_last_n_opt_case) {
        out->repeat_last_n = p->repeat_last_n;
    }
    if (p->frequency_penalty_opt_case) {
        out->frequency_penalty = p->frequency_penalty;
    }
    if (p->presence_penalty_opt_case) {
        out->presence_penalty = p->presence_penalty;
    }
    if (p->seed_opt_case) {
        out->has_seed = true;
        out->seed = p->seed;
    }
    /* the sampler checks the ranges; trying one here gives the caller its message now */
    duet_sampler *probe;
    if (duet_sampler_new(out, 1, &probe, st) != DUET_OK) {
        return st->code;
    }
    duet_sampler_free(probe);
    return DUET_OK;
}

static duet_code role_from_proto(Duet__V1__Role role, size_t index, duet_chat_role *out,
                                 duet_status *st)
{
    switch (role) {
    case DUET__V1__ROLE__ROLE_SYSTEM:
        *out = DUET_ROLE_SYSTEM;
        return DUET_OK;
    case DUET__V1__ROLE__ROLE_USER:
        *out = DUET_ROLE_USER;
        return DUET_OK;
    case DUET__V1__ROLE__ROLE_ASSISTANT:
        *out = DUET_ROLE_ASSISTANT;
        return DUET_OK;
    default:
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "chat message %zu has no role (system, user or assistant)", index);
    }
}

static duet_code render_chat(const Duet__V1__ChatPrompt *chat, const duet_gen_limits *lim,
                             char **text, duet_status *st)
{
    if (chat->n_messages == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "the chat has no messages");
    }
    duet_chat_message *msgs = calloc(chat->n_messages, sizeof *msgs);
    if (!msgs) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    duet_code rc = DUET_OK;
    for (size_t i = 0; i < chat->n_messages && rc == DUET_OK; i++) {
        rc = role_from_proto(chat->messages[i]->role, i, &msgs[i].role, st);
        msgs[i].content = chat->messages[i]->content;
    }
    if (rc == DUET_OK) {
        rc = duet_template_render(lim->template_kind, msgs, chat->n_messages, !chat->continue_last,
                                  chat->continue_last, text, st);
    }
    free(msgs);
    return rc;
}

static duet_code prompt_from_proto(const Duet__V1__GenerateRequest *msg, const duet_gen_limits *lim,
                                   duet_gen_request *r, duet_status *st)
{
    const uint32_t n_vocab = duet_tokenizer_n_tokens(lim->tok);
    size_t n = 0;
    switch (msg->prompt_case) {
    case DUET__V1__GENERATE_REQUEST__PROMPT_TOKENS: {
        n = msg->tokens->n_ids;
        if (n == 0 || n > lim->context) {
            break; /* the length checks below say what is wrong */
        }
        r->prompt = malloc(n * sizeof *r->prompt);
        if (!r->prompt) {
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
            if (msg->tokens->ids[i] >= n_vocab) {
                return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                       "prompt token %u at index %zu is outside the vocabulary "
                                       "of %u",
                                       msg->tokens->ids[i], i, n_vocab);
            }
            r->prompt[i] = (int32_t)msg->tokens->ids[i];
        }
        break;
    }
    case DUET__V1__GENERATE_REQUEST__PROMPT_TEXT:
    case DUET__V1__GENERATE_REQUEST__PROMPT_CHAT: {
        char *rendered = NULL;
        const char *text = msg->text;
        if (msg->prompt_case == DUET__V1__GENERATE_REQUEST__PROMPT_CHAT) {
            if (render_chat(msg->chat, lim, &rendered, st) != DUET_OK) {
                return st->code;
            }
            text = rendered;
        }
        duet_code rc = duet_tokenize(lim->tok, text, strlen(text), true, true, &r->prompt, &n, st);
        free(rendered);
        if (rc != DUET_OK) {
            return rc;
        }
        break;
    }
    default:
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "no prompt: give chat messages, text or token ids");
    }
    if (n == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "the prompt is empty");
    }
    if (n >= lim->context) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "prompt of %zu tokens does not fit the context of %u (at most %u "
                               "prompt tokens, to leave room for an answer)",
                               n, lim->context, lim->context - 1);
    }
    r->n_prompt = (uint32_t)n;
    return DUET_OK;
}

static duet_code stops_from_proto(const Duet__V1__GenerateRequest *msg, duet_gen_request *r,
                                  duet_status *st)
{
    if (msg->n_stop > DUET_STOP_STRINGS_MAX) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "%zu stop strings (at most %d)",
                               msg->n_stop, DUET_STOP_STRINGS_MAX);
    }
    if (msg->n_stop == 0) {
        return DUET_OK;
    }
    r->stops = calloc(msg->n_stop, sizeof *r->stops);
    if (!r->stops) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < msg->n_stop; i++) {
        size_t len = strlen(msg->stop[i]);
        if (len > DUET_STOP_STRING_BYTES_MAX) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "stop string %zu is %zu bytes long (at most %d)", i, len,
                                   DUET_STOP_STRING_BYTES_MAX);
        }
        r->stops[i] = strdup(msg->stop[i]);
        if (!r->stops[i]) {
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        }
        r->n_stops = i + 1;
    }
    return DUET_OK;
}

duet_code duet_gen_request_from_proto(const Duet__V1__GenerateRequest *msg,
                                      const duet_gen_limits *lim, duet_gen_request *r,
                                      duet_status *st)
{
    memset(r, 0, sizeof *r);
    size_t sid = strlen(msg->session_id);
    if (sid > DUET_SESSION_ID_MAX) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "session id of %zu bytes (at most %d)",
                               sid, DUET_SESSION_ID_MAX);
    }
    memcpy(r->session_id, msg->session_id, sid + 1);
    r->ignore_eos = msg->ignore_eos;
    if (sampling_from_proto(msg->sampling, &r->sampling, st) != DUET_OK ||
        prompt_from_proto(msg, lim, r, st) != DUET_OK || stops_from_proto(msg, r, st) != DUET_OK) {
        duet_gen_request_free(r);
        return st->code;
    }
    const uint32_t room = lim->context - r->n_prompt;
    r->max_tokens = room;
    if (msg->max_tokens_opt_case == DUET__V1__GENERATE_REQUEST__MAX_TOKENS_OPT_MAX_TOKENS) {
        if (msg->max_tokens == 0) {
            duet_gen_request_free(r);
            return duet_status_set(st, DUET_INVALID_ARGUMENT, "max_tokens must be at least 1");
        }
        r->max_tokens = msg->max_tokens < room ? msg->max_tokens : room;
    }
    return DUET_OK;
}
