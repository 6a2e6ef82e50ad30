#include "chat_api.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_template.h"
#include "duet.pb-c.h"
#include "log.h"
#include "openai_request.h"
#include "openai_response.h"
#include "trim.h"

struct duet_chat_api {
    duet_chat_api_options o;
    duet_api_key *keys;
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

static void reply_json(duet_http_exchange *x, int status, char *json, const char *const *headers)
{
    static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                              "\"param\":null,\"code\":null}}";
    if (json) {
        duet_http_reply(x, (uint16_t)status, "application/json", json, strlen(json), headers);
    } else {
        duet_http_reply(x, 500, "application/json", oom, sizeof oom - 1, NULL);
    }
    free(json);
}

static void retry_after_header(uint64_t ms, char *buf, size_t cap)
{
    uint64_t s = ms == UINT64_MAX ? 60 : (ms + 999) / 1000;
    snprintf(buf, cap, "%llu", (unsigned long long)(s ? s : 1));
}

/* An OpenAI-style error; 429 and 503 carry Retry-After. */
static void reply_error(duet_http_exchange *x, duet_code code, const char *message,
                        const char *param, uint64_t retry_ms)
{
    duet_openai_error_kind kind = duet_openai_error_kind_of(code);
    char retry[32];
    const char *headers[] = {"Retry-After", retry, NULL};
    bool with_retry = kind.http_status == 429 || kind.http_status == 503;
    if (with_retry) {
        retry_after_header(retry_ms, retry, sizeof retry);
    }
    reply_json(x, kind.http_status,
               duet_openai_error_json(code, message, param && param[0] ? param : NULL, NULL),
               with_retry ? headers : NULL);
}

/* An error answer to a chat request, counted for /metrics. */
static void chat_error(duet_chat_api *api, duet_http_exchange *x, duet_code code,
                       const char *message, const char *param, uint64_t retry_ms)
{
    count_status(api, duet_openai_error_kind_of(code).http_status);
    reply_error(x, code, message, param, retry_ms);
}

/* The user the request's API key signs in, or NULL. */
static const char *sign_in(duet_chat_api *api, duet_http_exchange *x)
{
    const char *auth = duet_http_header(x, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7) != 0) {
        return NULL;
    }
    const char *key = auth + 7;
    for (size_t i = 0; i < api->o.n_keys; i++) {
        /* every byte compared, so the time taken says nothing about a near miss */
        const char *want = api->keys[i].key;
        size_t lw = strlen(want), lk = strlen(key);
        unsigned diff = (unsigned)(lw ^ lk);
        for (size_t j = 0; j < lw; j++) {
            diff |= (unsigned)(want[j] ^ (j < lk ? key[j] : 0));
        }
        if (diff == 0) {
            return api->keys[i].user;
        }
    }
    return NULL;
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

/* ---- one answer ---- */

typedef struct {
    duet_chat_api *api;
    atomic_int refs; /* the handler's, the relay's (until on_end), the cancel timer's */
    pthread_mutex_t lock;
    duet_http_exchange *x;    /* whole answers: replied to at the end */
    duet_http_stream *stream; /* streamed answers */
    duet_relay *relay;
    char id[DUET_OPENAI_ID_LEN + 1];
    char model[128];
    duet_openai_answer a;
    duet_openai_extension ext;
    char *text; /* whole answers: the text so far */
    size_t len, cap;
    bool cancel_armed, cancel_wanted;
    duet_timer_entry cancel_timer;
} answer;

static void answer_unref(answer *an)
{
    if (atomic_fetch_sub(&an->refs, 1) != 1) {
        return;
    }
    duet_relay_release(an->relay);
    atomic_fetch_sub(&an->api->active, 1);
    pthread_mutex_destroy(&an->lock);
    free(an->text);
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

static void on_text(void *arg, const char *text, size_t len, uint32_t tokens)
{
    (void)tokens;
    answer *an = arg;
    if (len == 0) {
        return; /* a token whose text is held back (part of a character, a stop string) */
    }
    if (an->stream) {
        stream_event(an, duet_openai_content_chunk(&an->a, text, len));
        return;
    }
    pthread_mutex_lock(&an->lock);
    if (an->len + len + 1 > an->cap) {
        size_t cap = (an->len + len + 1) * 2;
        char *p = realloc(an->text, cap);
        if (p) {
            an->text = p;
            an->cap = cap;
        }
    }
    if (an->len + len + 1 <= an->cap) {
        memcpy(an->text + an->len, text, len);
        an->len += len;
        an->text[an->len] = '\0';
    }
    pthread_mutex_unlock(&an->lock);
}

static void on_end(void *arg, const duet_relay_result *r)
{
    answer *an = arg;
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
        const char *headers[] = {"X-Duet-Trimmed", dropped, NULL};
        count_status(an->api, 200);
        reply_json(an->x, 200,
                   duet_openai_completion_json(&an->a, an->text ? an->text : "", an->len, finish,
                                               &usage, &an->ext),
                   headers);
    } else {
        chat_error(an->api, an->x, r->status.code, r->status.message, NULL, 5000);
    }
    answer_unref(an);
}

/* ---- POST /v1/chat/completions ---- */

static duet_chat_role role_of(duet_openai_role r)
{
    return r == DUET_OPENAI_ROLE_SYSTEM ? DUET_ROLE_SYSTEM
           : r == DUET_OPENAI_ROLE_USER ? DUET_ROLE_USER
                                        : DUET_ROLE_ASSISTANT;
}

static Duet__V1__Role proto_role(duet_chat_role r)
{
    return r == DUET_ROLE_SYSTEM ? DUET__V1__ROLE__ROLE_SYSTEM
           : r == DUET_ROLE_USER ? DUET__V1__ROLE__ROLE_USER
                                 : DUET__V1__ROLE__ROLE_ASSISTANT;
}

/* The worker's request: the kept messages and the sampling asked for. */
typedef struct {
    Duet__V1__GenerateRequest req;
    Duet__V1__ChatPrompt chat;
    Duet__V1__ChatMessage *msgs;
    Duet__V1__ChatMessage **ptrs;
    Duet__V1__SamplingParams sp;
} worker_request;

static bool build_request(worker_request *w, const duet_openai_request *in,
                          const duet_chat_message *kept, size_t n)
{
    duet__v1__generate_request__init(&w->req);
    duet__v1__chat_prompt__init(&w->chat);
    duet__v1__sampling_params__init(&w->sp);
    w->msgs = calloc(n, sizeof *w->msgs);
    w->ptrs = calloc(n, sizeof *w->ptrs);
    if (!w->msgs || !w->ptrs) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        duet__v1__chat_message__init(&w->msgs[i]);
        w->msgs[i].role = proto_role(kept[i].role);
        w->msgs[i].content = (char *)kept[i].content;
        w->ptrs[i] = &w->msgs[i];
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
    if (in->session_id) {
        w->req.session_id = in->session_id;
    }
    return true;
}

static void chat_completions(duet_http_exchange *x, void *arg)
{
    duet_chat_api *api = arg;
    const char *user = sign_in(api, x);
    if (!user) {
        chat_error(api, x, DUET_UNAUTHENTICATED,
                   "a valid API key is needed: send \"Authorization: Bearer KEY\"", NULL, 0);
        return;
    }
    if (atomic_load(&api->draining)) {
        chat_error(api, x, DUET_UNAVAILABLE, "the gateway is shutting down", NULL, 5000);
        return;
    }
    const uint8_t *body;
    size_t body_len;
    duet_http_body(x, &body, &body_len);
    duet_openai_request in;
    char param[DUET_OPENAI_PARAM_MAX];
    duet_status st;
    if (duet_openai_request_parse((const char *)body, body_len, &in, param, &st) != DUET_OK) {
        chat_error(api, x, st.code, st.message, param, 0);
        return;
    }
    served_model m;
    if (!served(api, &m)) {
        duet_openai_request_free(&in);
        chat_error(api, x, DUET_UNAVAILABLE, "no worker is ready yet; retry in a moment", NULL,
                   5000);
        return;
    }
    duet_chat_message *msgs = calloc(in.n_messages, sizeof *msgs);
    if (!msgs) {
        duet_openai_request_free(&in);
        chat_error(api, x, DUET_RESOURCE_EXHAUSTED, "out of memory", NULL, 1000);
        return;
    }
    for (size_t i = 0; i < in.n_messages; i++) {
        msgs[i] = (duet_chat_message){role_of(in.messages[i].role), in.messages[i].content};
    }
    uint32_t budget = in.has_max_tokens ? in.max_tokens : api->o.answer_tokens;
    if (budget >= m.context) {
        budget = m.context > 1 ? m.context - 1 : 1;
    }
    duet_trim_limits lim = {m.tok, m.template_kind, m.context, budget};
    duet_trim_result trim;
    uint64_t retry_ms = 0;
    worker_request w = {0};
    duet_chat_message *kept = NULL;
    answer *an = NULL;
    duet_code rc = duet_trim_fit(msgs, in.n_messages, &lim, &trim, &st);
    if (rc == DUET_OK) {
        rc = duet_admission_take(api->o.admission, user, trim.prompt_tokens, &retry_ms, &st);
    }
    if (rc == DUET_OK) {
        size_t n_kept = trim.n_system + in.n_messages - trim.first_kept;
        kept = calloc(n_kept, sizeof *kept);
        an = calloc(1, sizeof *an);
        if (!kept || !an || duet_openai_new_id(an->id, &st) != DUET_OK) {
            rc = duet_status_set(&st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        } else {
            memcpy(kept, msgs, trim.n_system * sizeof *kept);
            memcpy(kept + trim.n_system, msgs + trim.first_kept,
                   (in.n_messages - trim.first_kept) * sizeof *kept);
            if (!build_request(&w, &in, kept, n_kept)) {
                rc = duet_status_set(&st, DUET_RESOURCE_EXHAUSTED, "out of memory");
            }
        }
    }
    if (rc != DUET_OK) {
        free(w.msgs);
        free(w.ptrs);
        free(kept);
        free(an);
        free(msgs);
        duet_openai_request_free(&in);
        chat_error(api, x, rc, st.message, NULL, retry_ms);
        return;
    }
    an->api = api;
    atomic_init(&an->refs, 2); /* this handler's and the relay's */
    atomic_fetch_add(&api->active, 1);
    pthread_mutex_init(&an->lock, NULL);
    snprintf(an->model, sizeof an->model, "%s", m.name);
    an->a = (duet_openai_answer){.id = an->id,
                                 .model = an->model,
                                 .created = (int64_t)time(NULL),
                                 .include_usage = in.include_usage};
    an->ext.dropped_messages = (uint32_t)trim.dropped;
    atomic_fetch_add(&api->trimmed_messages, trim.dropped);
    if (in.stream) {
        char dropped[16];
        snprintf(dropped, sizeof dropped, "%zu", trim.dropped);
        const char *headers[] = {"X-Duet-Trimmed", dropped, NULL};
        an->stream = duet_http_stream_begin(x, 200, "text/event-stream", headers);
        count_status(api, an->stream ? 200 : 500);
        if (an->stream) {
            stream_event(an, duet_openai_first_chunk(&an->a, &an->ext));
        }
    } else {
        an->x = x;
    }
    duet_relay_sink sink = {.on_text = on_text, .on_end = on_end, .arg = an};
    duet_relay *r = NULL;
    if (!in.stream || an->stream) {
        if (duet_relay_start(api->o.pool, api->o.timer, &w.req, &api->o.relay, &sink, &r, &st) !=
            DUET_OK) {
            duet_relay_result res = {.worker = -1, .status = st};
            on_end(an, &res);
        }
    } else {
        answer_unref(an); /* stream_begin already answered 500 */
    }
    pthread_mutex_lock(&an->lock);
    an->relay = r;
    bool cancel = an->cancel_wanted;
    pthread_mutex_unlock(&an->lock);
    if (cancel && r) {
        duet_relay_cancel(r);
    }
    free(w.msgs);
    free(w.ptrs);
    free(kept);
    free(msgs);
    duet_openai_request_free(&in);
    answer_unref(an);
}

/* ---- GET /v1/models and GET /health ---- */

static void models(duet_http_exchange *x, void *arg)
{
    duet_chat_api *api = arg;
    if (!sign_in(api, x)) {
        reply_error(x, DUET_UNAUTHENTICATED,
                    "a valid API key is needed: send \"Authorization: Bearer KEY\"", NULL, 0);
        return;
    }
    served_model m;
    duet_openai_model model = {.id = m.name, .created = api->started_unix};
    bool known = served(api, &m);
    reply_json(x, 200, duet_openai_models_json(&model, known ? 1 : 0), NULL);
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
    reply_json(x, usable ? 200 : 503, text, NULL);
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
    if (!api || (o->n_keys && !(api->keys = calloc(o->n_keys, sizeof *api->keys)))) {
        free(api);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    api->o = *o;
    api->started_unix = (int64_t)time(NULL);
    for (size_t i = 0; i < o->n_keys; i++) {
        api->keys[i].key = strdup(o->keys[i].key);
        api->keys[i].user = strdup(o->keys[i].user);
        if (!api->keys[i].key || !api->keys[i].user) {
            api->o.n_keys = i + 1;
            duet_chat_api_free(api);
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        }
    }
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
    if (!api) {
        return;
    }
    for (size_t i = 0; i < api->o.n_keys && api->keys; i++) {
        free(api->keys[i].key);
        free(api->keys[i].user);
    }
    free(api->keys);
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
