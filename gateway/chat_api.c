#include "chat_api.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_reply.h"
#include "chat_template.h"
#include "duet.pb-c.h"
#include "log.h"
#include "openai_request.h"
#include "openai_response.h"
#include "summary_prompt.h"
#include "trim.h"

struct duet_chat_api {
    duet_chat_api_options o;
    atomic_uint active;
    atomic_bool draining;
    /* for /metrics */
    atomic_ullong answered[6]; /* by status: 2xx, 400, 401, 429, 503, other */
    atomic_ullong completion_tokens, prompt_tokens, trimmed_messages, failovers;
    int64_t started_unix;
};

/* ---- replies ---- */

static void count_status(duet_chat_api *api, int status)
{
    int i = status / 100 == 2 ? 0
            : status == 400   ? 1
            : status == 401   ? 2
            : status == 429   ? 3
            : status == 503   ? 4
                              : 5;
    atomic_fetch_add(&api->answered[i], 1);
}

/* An error answer to a chat request, counted for /metrics. */
static void chat_error(duet_chat_api *api, duet_http_exchange *x, duet_code code,
                       const char *message, const char *param, uint64_t retry_ms)
{
    const char *reason = code == DUET_NOT_FOUND ? "session_not_found"
                         : code == DUET_ABORTED ? "session_busy"
                                                : NULL;
    /* counted before the reply leaves: a client reading /metrics right after sees it */
    count_status(api, duet_openai_error_kind_of(code).http_status);
    duet_api_reply_error(x, code, message, param, reason, retry_ms);
}

/* The model as the workers serve it: tokenizer, context, template and name. */
typedef struct {
    const duet_tokenizer *tok;
    uint32_t context;
    duet_template_kind template_kind;
    char name[128];
} served_model;

static bool served(duet_chat_api *api, served_model *m)
{
    m->tok = duet_worker_pool_tokenizer(api->o.pool, &m->context, m->name, sizeof m->name);
    if (!m->tok) {
        return false;
    }
    m->template_kind = DUET_TEMPLATE_PLAIN;
    for (size_t i = 0; i < duet_worker_pool_size(api->o.pool); i++) {
        duet_worker_status s;
        duet_worker_pool_status(api->o.pool, (int)i, &s);
        if (s.has_model) {
            duet_template_from_name(s.chat_template, &m->template_kind);
            break;
        }
    }
    return true;
}

/* ---- the worker's request ---- */

static Duet__V1__Role proto_role(duet_chat_role r)
{
    return r == DUET_ROLE_SYSTEM ? DUET__V1__ROLE__ROLE_SYSTEM
           : r == DUET_ROLE_USER ? DUET__V1__ROLE__ROLE_USER
                                 : DUET__V1__ROLE__ROLE_ASSISTANT;
}

/* The kept messages and the sampling asked for. */
typedef struct {
    Duet__V1__GenerateRequest req;
    Duet__V1__ChatPrompt chat;
    Duet__V1__ChatMessage *msgs;
    Duet__V1__ChatMessage **ptrs;
    Duet__V1__SamplingParams sp;
} worker_request;

static void free_request(worker_request *w)
{
    free(w->msgs);
    free(w->ptrs);
}

/* The messages of conv that trim keeps, as the worker's request with in's sampling. */
static bool build_request(worker_request *w, const duet_openai_request *in,
                          const duet_chat_message *conv, size_t n_conv, const duet_trim_result *t)
{
    memset(w, 0, sizeof *w);
    duet__v1__generate_request__init(&w->req);
    duet__v1__chat_prompt__init(&w->chat);
    duet__v1__sampling_params__init(&w->sp);
    size_t n = t->n_system + n_conv - t->first_kept;
    w->msgs = calloc(n, sizeof *w->msgs);
    w->ptrs = calloc(n, sizeof *w->ptrs);
    if (!w->msgs || !w->ptrs) {
        free_request(w);
        return false;
    }
    for (size_t i = 0, k = 0; i < n_conv; i++) {
        if (i >= t->n_system && i < t->first_kept) {
            continue;
        }
        duet__v1__chat_message__init(&w->msgs[k]);
        w->msgs[k].role = proto_role(conv[i].role);
        w->msgs[k].content = (char *)conv[i].content;
        w->ptrs[k] = &w->msgs[k];
        k++;
    }
    w->chat.messages = w->ptrs;
    w->chat.n_messages = n;
    w->req.prompt_case = DUET__V1__GENERATE_REQUEST__PROMPT_CHAT;
    w->req.chat = &w->chat;
    w->req.sampling = &w->sp;
    if (in->has_temperature) {
        w->sp.temperature_opt_case = DUET__V1__SAMPLING_PARAMS__TEMPERATURE_OPT_TEMPERATURE;
        w->sp.temperature = (float)in->temperature;
    }
    if (in->has_top_p) {
        w->sp.top_p_opt_case = DUET__V1__SAMPLING_PARAMS__TOP_P_OPT_TOP_P;
        w->sp.top_p = (float)in->top_p;
    }
    if (in->has_top_k) {
        w->sp.top_k_opt_case = DUET__V1__SAMPLING_PARAMS__TOP_K_OPT_TOP_K;
        w->sp.top_k = in->top_k;
    }
    if (in->has_min_p) {
        w->sp.min_p_opt_case = DUET__V1__SAMPLING_PARAMS__MIN_P_OPT_MIN_P;
        w->sp.min_p = (float)in->min_p;
    }
    if (in->has_repeat_penalty) {
        w->sp.repeat_penalty_opt_case =
            DUET__V1__SAMPLING_PARAMS__REPEAT_PENALTY_OPT_REPEAT_PENALTY;
        w->sp.repeat_penalty = (float)in->repeat_penalty;
    }
    if (in->has_frequency_penalty) {
        w->sp.frequency_penalty_opt_case =
            DUET__V1__SAMPLING_PARAMS__FREQUENCY_PENALTY_OPT_FREQUENCY_PENALTY;
        w->sp.frequency_penalty = (float)in->frequency_penalty;
    }
    if (in->has_presence_penalty) {
        w->sp.presence_penalty_opt_case =
            DUET__V1__SAMPLING_PARAMS__PRESENCE_PENALTY_OPT_PRESENCE_PENALTY;
        w->sp.presence_penalty = (float)in->presence_penalty;
    }
    if (in->has_seed) {
        w->sp.seed_opt_case = DUET__V1__SAMPLING_PARAMS__SEED_OPT_SEED;
        w->sp.seed = (uint64_t)in->seed;
    }
    if (in->has_max_tokens) {
        w->req.max_tokens_opt_case = DUET__V1__GENERATE_REQUEST__MAX_TOKENS_OPT_MAX_TOKENS;
        w->req.max_tokens = in->max_tokens;
    }
    w->req.stop = (char **)in->stop;
    w->req.n_stop = in->n_stop;
    return true;
}

/* ---- one answer ---- */

typedef struct {
    char *text;
    size_t len, cap;
} text_buf;

/* Appends (NUL-terminated after); false when memory runs out (the text stays as it was). */
static bool text_append(text_buf *b, const char *text, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = (b->len + len + 1) * 2;
        char *p = realloc(b->text, cap);
        if (!p) {
            return false;
        }
        b->text = p;
        b->cap = cap;
    }
    memcpy(b->text + b->len, text, len);
    b->len += len;
    b->text[b->len] = '\0';
    return true;
}

typedef struct {
    duet_chat_api *api;
    /* the handler's, each relay's (until its on_end), the cancel timer's */
    atomic_int refs;
    pthread_mutex_t lock;
    const char *user;
    duet_openai_request in;
    served_model m;
    uint32_t budget;
    duet_chat_turn *turn;
    duet_trim_result trim;
    duet_http_exchange *x;    /* until the reply, or the stream, begins */
    duet_http_stream *stream; /* streamed answers */
    duet_relay *relay;
    char id[DUET_OPENAI_ID_LEN + 1];
    char model[128];
    char session_id[DUET_SESSION_ID_SIZE];
    duet_openai_answer a;
    duet_openai_extension ext;
    text_buf text; /* the answer so far */
    uint32_t tokens;
    bool cancel_armed, cancel_wanted;
    duet_timer_entry cancel_timer;
    /* trim_policy summarize */
    duet_relay *summary_relay;
    text_buf summary;
    int64_t summary_upto;
} answer;

static void answer_unref(answer *an)
{
    if (atomic_fetch_sub(&an->refs, 1) != 1) {
        return;
    }
    duet_relay_release(an->relay);
    duet_relay_release(an->summary_relay);
    duet_chat_turn_close(an->turn);
    duet_openai_request_free(&an->in);
    atomic_fetch_sub(&an->api->active, 1);
    pthread_mutex_destroy(&an->lock);
    free(an->text.text);
    free(an->summary.text);
    free(an);
}

/* Runs on the timer thread: cancelling from inside the relay's own callback would end the
 * answer under our feet. */
static void cancel_later(void *arg)
{
    answer *an = arg;
    pthread_mutex_lock(&an->lock);
    duet_relay *r = an->relay;
    an->cancel_wanted = r == NULL;
    pthread_mutex_unlock(&an->lock);
    if (r) {
        duet_relay_cancel(r);
    }
    answer_unref(an);
}

static void stream_event(answer *an, char *event)
{
    if (!event) {
        return;
    }
    duet_code rc = duet_http_stream_write(an->stream, event, strlen(event));
    free(event);
    if (rc == DUET_UNAVAILABLE) {
        /* the client went away (or pressed stop): the answer ends, stored partial */
        pthread_mutex_lock(&an->lock);
        bool arm = !an->cancel_armed;
        an->cancel_armed = true;
        pthread_mutex_unlock(&an->lock);
        if (arm) {
            atomic_fetch_add(&an->refs, 1);
            duet_timer_arm(an->api->o.timer, &an->cancel_timer, duet_now_ns(), cancel_later, an);
        }
    }
}

/* The trimmed counts an answer reports: stored messages sent only through the summary, and
 * the messages trimming left out. */
static void note_trimmed(answer *an)
{
    an->ext.dropped_messages =
        (uint32_t)(an->trim.dropped + (size_t)duet_chat_turn_summarized(an->turn));
    an->ext.summarized = duet_chat_turn_summary(an->turn) != NULL;
}

static void on_text(void *arg, const char *text, size_t len, uint32_t tokens)
{
    answer *an = arg;
    an->tokens += tokens;
    if (len == 0) {
        return; /* a token whose text is held back (part of a character, a stop string) */
    }
    pthread_mutex_lock(&an->lock);
    bool kept = text_append(&an->text, text, len);
    pthread_mutex_unlock(&an->lock);
    if (kept) {
        duet_status st;
        if (duet_chat_turn_save(an->turn, an->text.text, an->tokens, DUET_CHAT_SAVE_INTERVAL_MS,
                                &st) != DUET_OK) {
            duet_log_warn("answer %s: saving its progress: %s", an->id, st.message);
        }
    }
    if (an->stream) {
        stream_event(an, duet_openai_content_chunk(&an->a, text, len));
    }
}

static void on_end(void *arg, const duet_relay_result *r)
{
    answer *an = arg;
    duet_relay_result last_resort;
    if (r->status.code == DUET_UNAVAILABLE && an->api->o.last_resort_message && an->text.len == 0) {
        /* no worker could serve: the configured text stands in for the answer */
        duet_log_info("answer %s: no worker could serve (%s): sending the last-resort message",
                      an->id, r->status.message);
        const char *msg = an->api->o.last_resort_message;
        on_text(an, msg, strlen(msg), 0);
        last_resort = *r;
        duet_status_clear(&last_resort.status);
        last_resort.finish_reason = DUET__V1__FINISH_REASON__FINISH_REASON_STOP;
        r = &last_resort;
    }
    duet_openai_finish finish = r->finish_reason == DUET__V1__FINISH_REASON__FINISH_REASON_LENGTH
                                    ? DUET_OPENAI_FINISH_LENGTH
                                    : DUET_OPENAI_FINISH_STOP;
    duet_openai_usage usage = {.prompt_tokens = r->prompt_tokens,
                               .cached_prompt_tokens = r->cached_prompt_tokens,
                               .completion_tokens = r->completion_tokens};
    if (r->status.code != DUET_OK) {
        duet_log_info("answer %s failed after %u attempts: %s", an->id, r->attempts,
                      r->status.message);
    }
    /* stored, and the session free for its next turn, before the client hears the end */
    duet_status st;
    if (duet_chat_turn_finish(an->turn, an->text.text ? an->text.text : "", r->completion_tokens,
                              r->status.code == DUET_OK, &st) != DUET_OK) {
        duet_log_warn("answer %s: storing it in session %s: %s", an->id, an->session_id,
                      st.message);
    }
    duet_chat_turn_close(an->turn);
    an->turn = NULL;
    atomic_fetch_add(&an->api->completion_tokens, r->completion_tokens);
    atomic_fetch_add(&an->api->prompt_tokens, r->prompt_tokens);
    if (r->attempts > 1) {
        atomic_fetch_add(&an->api->failovers, r->attempts - 1);
    }
    if (an->stream) {
        if (r->status.code == DUET_OK) {
            stream_event(an, duet_openai_finish_chunk(&an->a, finish));
            if (an->a.include_usage) {
                stream_event(an, duet_openai_usage_chunk(&an->a, &usage));
            }
        } else {
            char *err = duet_openai_error_json(r->status.code, r->status.message, NULL, NULL);
            stream_event(an, err ? duet_openai_sse_event(err) : NULL);
            free(err);
        }
        duet_http_stream_write(an->stream, DUET_OPENAI_SSE_DONE, strlen(DUET_OPENAI_SSE_DONE));
        duet_http_stream_end(an->stream);
        an->stream = NULL;
    } else if (r->status.code == DUET_OK) {
        char dropped[16];
        snprintf(dropped, sizeof dropped, "%u", an->ext.dropped_messages);
        const char *headers[] = {"X-Duet-Trimmed", dropped, "X-Duet-Session", an->session_id, NULL};
        count_status(an->api, 200);
        duet_api_reply_json(an->x, 200,
                            duet_openai_completion_json(&an->a, an->text.text ? an->text.text : "",
                                                        an->text.len, finish, &usage, &an->ext),
                            headers);
    } else {
        chat_error(an->api, an->x, r->status.code, r->status.message, NULL, 5000);
    }
    an->x = NULL;
    answer_unref(an);
}

/* The answer's turn is stored, its reply begun and the worker asked. Errors before the
 * reply begins are answered here. */
static void start_answer(answer *an)
{
    duet_chat_api *api = an->api;
    duet_status st;
    if (duet_chat_turn_commit(an->turn, &st) != DUET_OK) {
        chat_error(api, an->x, st.code, st.message, NULL, 1000);
        return;
    }
    snprintf(an->session_id, sizeof an->session_id, "%s", duet_chat_turn_session_id(an->turn));
    an->ext.session_id = an->session_id;
    note_trimmed(an);
    atomic_fetch_add(&api->trimmed_messages, an->ext.dropped_messages);

    const duet_chat_message *conv;
    const int64_t *seqs;
    size_t n_conv;
    duet_chat_turn_conversation(an->turn, &conv, &seqs, &n_conv);
    worker_request w;
    if (!build_request(&w, &an->in, conv, n_conv, &an->trim)) {
        duet_status_set(&st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        duet_chat_turn_finish(an->turn, "", 0, false, &st);
        chat_error(api, an->x, DUET_RESOURCE_EXHAUSTED, "out of memory", NULL, 1000);
        return;
    }
    /* the worker keeps this conversation's cache under the session's id, so a next turn
     * computes only its new tokens */
    w.req.session_id = an->session_id;
    if (an->in.stream) {
        char dropped[16];
        snprintf(dropped, sizeof dropped, "%u", an->ext.dropped_messages);
        const char *headers[] = {"X-Duet-Trimmed", dropped, "X-Duet-Session", an->session_id, NULL};
        an->stream = duet_http_stream_begin(an->x, 200, "text/event-stream", headers);
        an->x = NULL;
        count_status(api, an->stream ? 200 : 500);
        if (!an->stream) {
            duet_chat_turn_finish(an->turn, "", 0, false, &st);
            free_request(&w);
            return; /* stream_begin answered 500 */
        }
        stream_event(an, duet_openai_first_chunk(&an->a, &an->ext));
    }
    atomic_fetch_add(&an->refs, 1); /* the relay's, until on_end */
    duet_relay_sink sink = {.on_text = on_text, .on_end = on_end, .arg = an};
    duet_relay *r = NULL;
    if (!an->m.tok) {
        duet_relay_result res = {.worker = -1};
        duet_status_set(&res.status, DUET_UNAVAILABLE, "no worker is ready");
        on_end(an, &res);
    } else if (duet_relay_start(api->o.pool, api->o.timer, &w.req, &api->o.relay, &sink, &r, &st) !=
               DUET_OK) {
        duet_relay_result res = {.worker = -1, .status = st};
        on_end(an, &res);
    }
    free_request(&w);
    pthread_mutex_lock(&an->lock);
    an->relay = r;
    bool cancel = an->cancel_wanted;
    pthread_mutex_unlock(&an->lock);
    if (cancel && r) {
        duet_relay_cancel(r);
    }
}

static duet_code trim_turn(answer *an, duet_status *st)
{
    const duet_chat_message *conv;
    const int64_t *seqs;
    size_t n;
    duet_chat_turn_conversation(an->turn, &conv, &seqs, &n);
    duet_trim_limits lim = {an->m.tok, an->m.template_kind, an->m.context, an->budget};
    return duet_trim_fit(conv, n, &lim, &an->trim, st);
}

/* ---- trim_policy summarize ---- */

static void on_summary_text(void *arg, const char *text, size_t len, uint32_t tokens)
{
    (void)tokens;
    answer *an = arg;
    text_append(&an->summary, text, len);
}

static void on_summary_end(void *arg, const duet_relay_result *r)
{
    answer *an = arg;
    duet_status st;
    const char *s = an->summary.text ? an->summary.text + strspn(an->summary.text, " \n") : "";
    if (r->status.code != DUET_OK || !s[0]) {
        duet_log_warn("answer %s: no summary of the trimmed turns (%s): they are left out", an->id,
                      r->status.code != DUET_OK ? r->status.message : "empty answer");
    } else if (duet_chat_turn_set_summary(an->turn, s, an->summary_upto, &st) != DUET_OK ||
               trim_turn(an, &st) != DUET_OK) {
        chat_error(an->api, an->x, st.code, st.message, NULL, 1000);
        answer_unref(an);
        return;
    }
    start_answer(an);
    answer_unref(an);
}

/* Under trim_policy summarize, when trimming leaves stored turns out: asks the worker for a
 * summary of them (and of the earlier summary), then answers. False when there is nothing
 * to summarize or the summary request cannot be made (the turns are then just left out). */
static bool start_summary(answer *an)
{
    duet_chat_api *api = an->api;
    if (api->o.trim_policy != DUET_TRIM_SUMMARIZE || !duet_chat_turn_in_session(an->turn) ||
        an->trim.dropped == 0) {
        return false;
    }
    const duet_chat_message *conv;
    const int64_t *seqs;
    size_t n;
    duet_chat_turn_conversation(an->turn, &conv, &seqs, &n);
    const duet_chat_message *dropped = conv + an->trim.n_system;
    size_t n_dropped = 0;
    an->summary_upto = 0;
    for (size_t i = an->trim.n_system; i < an->trim.first_kept && seqs[i] > 0; i++) {
        an->summary_upto = seqs[i];
        n_dropped++;
    }
    if (n_dropped == 0) {
        return false;
    }
    duet_chat_message *prompt = calloc(DUET_SUMMARY_PROMPT_SIZE(n_dropped), sizeof *prompt);
    if (!prompt) {
        return false;
    }
    size_t np = duet_summary_prompt(duet_chat_turn_summary(an->turn), dropped, n_dropped, prompt);
    duet_trim_limits lim = {an->m.tok, an->m.template_kind, an->m.context, api->o.summary_tokens};
    duet_trim_result fit;
    duet_status st;
    worker_request w;
    duet_openai_request sampling = {.has_max_tokens = true, .max_tokens = api->o.summary_tokens};
    bool ok = api->o.summary_tokens < an->m.context &&
              duet_trim_fit(prompt, np, &lim, &fit, &st) == DUET_OK &&
              build_request(&w, &sampling, prompt, np, &fit);
    if (ok) {
        atomic_fetch_add(&an->refs, 1); /* the summary relay's, until on_summary_end */
        duet_relay_sink sink = {.on_text = on_summary_text, .on_end = on_summary_end, .arg = an};
        duet_relay *r = NULL;
        if (duet_relay_start(api->o.pool, api->o.timer, &w.req, &api->o.relay, &sink, &r, &st) !=
            DUET_OK) {
            duet_relay_result res = {.worker = -1, .status = st};
            on_summary_end(an, &res);
        } else {
            an->summary_relay = r;
        }
        free_request(&w);
    }
    free(prompt);
    return ok;
}

/* ---- POST /v1/chat/completions ---- */

static duet_chat_role role_of(duet_openai_role r)
{
    return r == DUET_OPENAI_ROLE_SYSTEM ? DUET_ROLE_SYSTEM
           : r == DUET_OPENAI_ROLE_USER ? DUET_ROLE_USER
                                        : DUET_ROLE_ASSISTANT;
}

/* The turn of the request's session (or of a new one), or an error to answer. */
static duet_code open_turn(duet_chat_api *api, duet_http_exchange *x, answer *an, duet_status *st)
{
    const char *header = duet_http_header(x, "X-Duet-Session");
    if (header && !header[0]) {
        header = NULL;
    }
    if (header && an->in.session_id && strcmp(header, an->in.session_id) != 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "the X-Duet-Session header and the session_id field name "
                               "different sessions");
    }
    duet_chat_message *msgs = calloc(an->in.n_messages, sizeof *msgs);
    if (!msgs) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < an->in.n_messages; i++) {
        msgs[i] = (duet_chat_message){role_of(an->in.messages[i].role), an->in.messages[i].content};
    }
    duet_code rc = duet_chat_turn_open(api->o.turns, an->user, header ? header : an->in.session_id,
                                       msgs, an->in.n_messages, &an->turn, st);
    free(msgs);
    return rc;
}

static void chat_completions(duet_http_exchange *x, void *arg)
{
    duet_chat_api *api = arg;
    const char *user = duet_api_keys_sign_in(api->o.keys, x);
    if (!user) {
        chat_error(api, x, DUET_UNAUTHENTICATED, DUET_API_KEY_NEEDED, NULL, 0);
        return;
    }
    if (atomic_load(&api->draining)) {
        chat_error(api, x, DUET_UNAVAILABLE, "the gateway is shutting down", NULL, 5000);
        return;
    }
    answer *an = calloc(1, sizeof *an);
    duet_status st;
    if (!an || duet_openai_new_id(an->id, &st) != DUET_OK) {
        free(an);
        chat_error(api, x, DUET_RESOURCE_EXHAUSTED, "out of memory", NULL, 1000);
        return;
    }
    an->api = api;
    an->user = user;
    an->x = x;
    atomic_init(&an->refs, 1); /* this handler's */
    atomic_fetch_add(&api->active, 1);
    pthread_mutex_init(&an->lock, NULL);

    const uint8_t *body;
    size_t body_len;
    duet_http_body(x, &body, &body_len);
    char param[DUET_OPENAI_PARAM_MAX];
    if (duet_openai_request_parse((const char *)body, body_len, &an->in, param, &st) != DUET_OK) {
        chat_error(api, x, st.code, st.message, param, 0);
        answer_unref(an);
        return;
    }
    bool ready = served(api, &an->m);
    if (!ready && !api->o.last_resort_message) {
        chat_error(api, x, DUET_UNAVAILABLE, "no worker is ready yet; retry in a moment", NULL,
                   5000);
        answer_unref(an);
        return;
    }
    if (!ready) {
        /* answered with the last-resort message: nothing to count tokens with or trim */
        an->m = (served_model){.tok = NULL, .context = UINT32_MAX, .name = "none"};
    }
    an->budget = an->in.has_max_tokens ? an->in.max_tokens : api->o.answer_tokens;
    if (an->budget >= an->m.context) {
        an->budget = an->m.context > 1 ? an->m.context - 1 : 1;
    }
    uint64_t retry_ms = 0;
    duet_code rc = open_turn(api, x, an, &st);
    if (rc == DUET_OK && ready) {
        rc = trim_turn(an, &st);
    }
    if (rc == DUET_OK) {
        rc = duet_admission_take(api->o.admission, user, an->trim.prompt_tokens, &retry_ms, &st);
    }
    if (rc != DUET_OK) {
        chat_error(api, x, rc, st.message, NULL, rc == DUET_ABORTED ? 0 : retry_ms);
        answer_unref(an);
        return;
    }
    snprintf(an->model, sizeof an->model, "%s", an->m.name);
    an->a = (duet_openai_answer){.id = an->id,
                                 .model = an->model,
                                 .created = (int64_t)time(NULL),
                                 .include_usage = an->in.include_usage};
    if (!start_summary(an)) {
        start_answer(an);
    }
    answer_unref(an);
}

/* ---- GET /v1/models and GET /health ---- */

static void models(duet_http_exchange *x, void *arg)
{
    duet_chat_api *api = arg;
    if (!duet_api_keys_sign_in(api->o.keys, x)) {
        duet_api_reply_error(x, DUET_UNAUTHENTICATED, DUET_API_KEY_NEEDED, NULL, NULL, 0);
        return;
    }
    served_model m;
    duet_openai_model model = {.id = m.name, .created = api->started_unix};
    bool known = served(api, &m);
    duet_api_reply_json(x, 200, duet_openai_models_json(&model, known ? 1 : 0), NULL);
}

static void health(duet_http_exchange *x, void *arg)
{
    duet_chat_api *api = arg;
    json_t *workers = json_array();
    size_t usable = 0;
    for (size_t i = 0; i < duet_worker_pool_size(api->o.pool); i++) {
        duet_worker_status s;
        duet_worker_pool_status(api->o.pool, (int)i, &s);
        bool ok = s.connected && s.has_model && s.breaker != DUET_BREAKER_OPEN;
        usable += ok;
        static const char *const states[] = {"unknown", "loading", "ready", "failed", "stopping"};
        json_array_append_new(
            workers,
            json_pack("{s:s, s:b, s:s, s:s, s:i, s:i, s:f, s:s, s:i, s:s}", "url", s.url,
                      "connected", s.connected, "state",
                      states[s.load_state >= 0 && s.load_state <= 4 ? s.load_state : 0], "breaker",
                      duet_breaker_state_name(s.breaker), "running", (int)s.running, "waiting",
                      (int)s.waiting, "tokens_per_second", s.tokens_per_second, "model", s.model,
                      "context", (int)s.context, "last_error", s.last_error));
    }
    const char *status = usable == duet_worker_pool_size(api->o.pool) ? "ok"
                         : usable                                     ? "degraded"
                                                                      : "unavailable";
    json_t *root = json_pack("{s:s, s:o, s:i}", "status", status, "workers", workers,
                             "active_answers", (int)atomic_load(&api->active));
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    duet_api_reply_json(x, usable ? 200 : 503, text, NULL);
}

/* The process's resident set, from /proc/self/statm (0 when it cannot be read). */
static uint64_t resident_bytes(void)
{
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &resident) != 2) {
            resident = 0;
        }
        fclose(f);
    }
    long page = sysconf(_SC_PAGESIZE);
    return (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096);
}

/* GET /metrics: Prometheus text. */
static void metrics(duet_http_exchange *x, void *arg)
{
    duet_chat_api *api = arg;
    size_t cap = 4096 + duet_worker_pool_size(api->o.pool) * 1024, n = 0;
    char *out = malloc(cap);
    if (!out) {
        duet_http_reply(x, 500, "text/plain", "out of memory\n", 14, NULL);
        return;
    }
#define PUT(...) n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__)
    static const char *const classes[] = {"2xx", "400", "401", "429", "503", "other"};
    PUT("# HELP duet_gateway_responses_total Chat API answers by HTTP status.\n"
        "# TYPE duet_gateway_responses_total counter\n");
    for (int i = 0; i < 6; i++) {
        PUT("duet_gateway_responses_total{status=\"%s\"} %llu\n", classes[i],
            (unsigned long long)atomic_load(&api->answered[i]));
    }
    PUT("# TYPE duet_gateway_active_answers gauge\nduet_gateway_active_answers %u\n",
        atomic_load(&api->active));
    PUT("# TYPE duet_gateway_completion_tokens_total counter\n"
        "duet_gateway_completion_tokens_total %llu\n",
        (unsigned long long)atomic_load(&api->completion_tokens));
    PUT("# TYPE duet_gateway_prompt_tokens_total counter\nduet_gateway_prompt_tokens_total "
        "%llu\n",
        (unsigned long long)atomic_load(&api->prompt_tokens));
    PUT("# TYPE duet_gateway_trimmed_messages_total counter\n"
        "duet_gateway_trimmed_messages_total %llu\n",
        (unsigned long long)atomic_load(&api->trimmed_messages));
    PUT("# TYPE duet_gateway_failovers_total counter\nduet_gateway_failovers_total %llu\n",
        (unsigned long long)atomic_load(&api->failovers));
    PUT("# TYPE duet_worker_up gauge\n# TYPE duet_worker_breaker_open gauge\n"
        "# TYPE duet_worker_running gauge\n# TYPE duet_worker_waiting gauge\n"
        "# TYPE duet_worker_tokens_per_second gauge\n"
        "# TYPE duet_worker_health_checks_failed_total counter\n");
    for (size_t i = 0; i < duet_worker_pool_size(api->o.pool) && n < cap; i++) {
        duet_worker_status s;
        duet_worker_pool_status(api->o.pool, (int)i, &s);
        const char *u = s.url; /* NNG URLs hold no quote or backslash to escape */
        PUT("duet_worker_up{worker=\"%s\"} %d\n", u, s.connected && s.has_model);
        PUT("duet_worker_breaker_open{worker=\"%s\"} %d\n", u, s.breaker == DUET_BREAKER_OPEN);
        PUT("duet_worker_running{worker=\"%s\"} %u\n", u, s.running);
        PUT("duet_worker_waiting{worker=\"%s\"} %u\n", u, s.waiting);
        PUT("duet_worker_tokens_per_second{worker=\"%s\"} %.3f\n", u, s.tokens_per_second);
        PUT("duet_worker_health_checks_failed_total{worker=\"%s\"} %llu\n", u,
            (unsigned long long)s.checks_failed);
    }
    PUT("# HELP process_resident_memory_bytes The gateway's resident memory.\n"
        "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n",
        (unsigned long long)resident_bytes());
#undef PUT
    if (n >= cap) {
        n = cap - 1;
    }
    duet_http_reply(x, 200, "text/plain; version=0.0.4", out, n, NULL);
    free(out);
}

/* ---- setup ---- */

duet_code duet_chat_api_new(duet_http_server *srv, const duet_chat_api_options *o,
                            duet_chat_api **out, duet_status *st)
{
    duet_chat_api *api = calloc(1, sizeof *api);
    if (!api) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    api->o = *o;
    api->started_unix = (int64_t)time(NULL);
    if (duet_http_server_route(srv, "POST", "/v1/chat/completions", false, chat_completions, api,
                               st) != DUET_OK ||
        duet_http_server_route(srv, "GET", "/v1/models", false, models, api, st) != DUET_OK ||
        duet_http_server_route(srv, "GET", "/health", false, health, api, st) != DUET_OK ||
        duet_http_server_route(srv, "GET", "/metrics", false, metrics, api, st) != DUET_OK) {
        duet_chat_api_free(api);
        return st->code;
    }
    *out = api;
    return DUET_OK;
}

void duet_chat_api_free(duet_chat_api *api)
{
    free(api);
}

void duet_chat_api_drain(duet_chat_api *api)
{
    atomic_store(&api->draining, true);
}

uint32_t duet_chat_api_active(duet_chat_api *api)
{
    return atomic_load(&api->active);
}
