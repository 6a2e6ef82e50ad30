#include "service.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bucket.h"
#include "duet.pb-c.h"
#include "engine.h"
#include "gen_request.h"
#include "kv_pool.h"
#include "session_cache.h"
#include "loader.h"
#include "memory_check.h"
#include "model.h"
#include "model_template.h"
#include "scheduler.h"
#include "timer.h"
#include "tokenizer.h"
#include "vocab_gguf.h"
#include "vocab_proto.h"

/* One Generate call in flight. Found by its RPC call (the cancel callback's only handle)
 * and by session id (Cancel), always under the service's lock: the scheduler frees the
 * ticket right after the sink's end, which unlinks the call first. */
typedef struct gen_call {
    duet_worker_service *svc;
    duet_rpc_call *call;
    duet_gen_ticket *ticket; /* NULL until submitted */
    int cancel_pending;      /* a cancel that came before the ticket existed */
    char session_id[DUET_SESSION_ID_MAX + 1];
    struct gen_call *prev, *next;
} gen_call;

struct duet_worker_service {
    duet_model *model;
    duet_loader *loader;
    duet_engine *engine;
    duet_kv_pool *pool;
    duet_session_cache *sessions;
    duet_scheduler *scheduler;
    duet_bucket *bucket;
    double rate, burst;
    pthread_mutex_t lock;
    gen_call *calls; /* in flight */
    atomic_uint_fast64_t rejected;
    duet_vocab vocab;
    duet_tokenizer *tok;
    duet_template_kind template_kind;
    uint32_t context;
    uint32_t threads;
    uint64_t started_ns;
    atomic_uint_fast64_t total_requests;
    bool lock_ready;
};

duet_code duet_worker_service_new(const duet_worker_service_options *o, duet_worker_service **out,
                                  duet_status *st)
{
    if (!o->model_path || !o->model_path[0]) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "no model: give -m FILE.gguf or model.path in the config");
    }
    duet_worker_service *s = calloc(1, sizeof *s);
    if (!s) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    s->started_ns = duet_now_ns();
    duet_vocab_init(&s->vocab, DUET_VOCAB_SPM);
    duet_loader_options lo = {.mlock = o->mlock,
                              .show_progress = o->progress,
                              .throttle_bytes_per_s = o->load_rate_bytes_per_s};
    if (duet_model_load(o->model_path, &s->model, st) != DUET_OK ||
        duet_loader_check_memory(duet_gguf_file_size(s->model->gguf), o->memory_factor,
                                 (uint64_t)o->kv_cache_mib << 20, st) != DUET_OK ||
        duet_loader_start(s->model, &lo, &s->loader, st) != DUET_OK ||
        duet_vocab_from_gguf(s->model->gguf, &s->vocab, st) != DUET_OK ||
        duet_tokenizer_create(&s->vocab, &s->tok, st) != DUET_OK ||
        duet_model_template(s->model, o->chat_template, &s->template_kind, st) != DUET_OK) {
        duet_worker_service_free(s);
        return st->code;
    }
    const uint32_t trained = s->model->hp.n_ctx_train;
    s->context = o->context == 0 || o->context > trained ? trained : o->context;
    if (s->context == 0) {
        s->context = 4096; /* a model that does not say: llama.cpp's default */
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    s->threads = o->threads ? o->threads : (uint32_t)(cores > 0 ? cores : 1);
    s->rate = o->requests_per_second;
    s->burst = o->burst;
    duet_scheduler_options so = {.max_running = o->max_running, .max_waiting = o->max_waiting};
    uint32_t batch = o->max_batch < o->max_running ? o->max_running : o->max_batch;
    pthread_mutex_init(&s->lock, NULL);
    s->lock_ready = true;
    if (duet_kv_pool_new_typed(s->model, o->kv_cache_mib, o->kv_page_tokens,
                               (duet_kv_type)o->kv_type, &s->pool, st) != DUET_OK ||
        duet_session_cache_new(s->pool, s->context, &s->sessions, st) != DUET_OK ||
        duet_engine_new(s->model, (int)s->threads, batch, s->context, &s->engine, st) != DUET_OK ||
        duet_scheduler_new(s->engine, s->tok, s->sessions, s->context, &so, &s->scheduler, st) !=
            DUET_OK) {
        duet_worker_service_free(s);
        return st->code;
    }
    duet_engine_set_loader(s->engine, s->loader);
    s->bucket = duet_bucket_new(o->requests_per_second, o->burst);
    if (!s->bucket) {
        duet_worker_service_free(s);
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "admission: %g requests/s with a burst of %g is not a valid bucket",
                               o->requests_per_second, o->burst);
    }
    *out = s;
    return DUET_OK;
}

void duet_worker_service_free(duet_worker_service *s)
{
    if (!s) {
        return;
    }
    duet_scheduler_free(s->scheduler);
    duet_session_cache_free(s->sessions);
    duet_kv_pool_free(s->pool);
    duet_engine_free(s->engine);
    duet_bucket_free(s->bucket);
    if (s->lock_ready) {
        pthread_mutex_destroy(&s->lock);
    }
    duet_tokenizer_free(s->tok);
    duet_vocab_free(&s->vocab);
    duet_loader_free(s->loader); /* before the model it reads */
    duet_model_free(s->model);
    free(s);
}

uint32_t duet_worker_service_context(const duet_worker_service *s)
{
    return s->context;
}

const char *duet_worker_service_model_name(const duet_worker_service *s)
{
    return s->model->hp.name[0] ? s->model->hp.name : s->model->hp.arch_name;
}

static Duet__V1__LoadState load_state(const duet_load_progress *p)
{
    switch (p->state) {
    case DUET_LOADER_LOADING:
        return DUET__V1__LOAD_STATE__LOAD_STATE_LOADING;
    case DUET_LOADER_READY:
        return DUET__V1__LOAD_STATE__LOAD_STATE_READY;
    default:
        return DUET__V1__LOAD_STATE__LOAD_STATE_FAILED;
    }
}

/* Packs msg and ends the call with it. */
static void finish_with(duet_rpc_call *call, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        duet_rpc_call_fail(call, DUET_RESOURCE_EXHAUSTED, "out of memory for the answer");
        return;
    }
    protobuf_c_message_pack(msg, buf);
    duet_rpc_call_finish(call, buf, len);
    free(buf);
}

static void info_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    duet_worker_service *s = arg;
    atomic_fetch_add(&s->total_requests, 1);
    Duet__V1__InfoRequest *in = duet__v1__info_request__unpack(NULL, len, req);
    if (!in) {
        duet_rpc_call_fail(call, DUET_INVALID_ARGUMENT, "malformed InfoRequest");
        return;
    }
    Duet__V1__InfoResponse r = DUET__V1__INFO_RESPONSE__INIT;
    r.model_name = (char *)duet_worker_service_model_name(s);
    r.architecture = s->model->hp.arch_name;
    r.context_length = s->context;
    r.vocab_size = s->model->hp.n_vocab;
    duet_load_progress lp;
    duet_loader_progress(s->loader, &lp);
    r.load_state = load_state(&lp);
    r.chat_template = (char *)duet_template_name(s->template_kind);
    r.model_bytes = s->model->weight_bytes;
    r.quantization = s->model->hp.quant_name;
    r.worker_version = DUET_VERSION;
    Duet__V1__Vocabulary vocab;
    duet_status st;
    bool with_vocab = in->include_vocabulary;
    duet__v1__info_request__free_unpacked(in, NULL);
    if (with_vocab) {
        if (duet_vocab_to_proto(&s->vocab, &vocab, &st) != DUET_OK) {
            duet_rpc_call_fail(call, st.code, "%s", st.message);
            return;
        }
        r.vocabulary = &vocab;
    }
    finish_with(call, &r.base);
    if (with_vocab) {
        duet_vocab_proto_release(&vocab);
    }
}

static void health_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    duet_worker_service *s = arg;
    atomic_fetch_add(&s->total_requests, 1);
    Duet__V1__HealthRequest *in = duet__v1__health_request__unpack(NULL, len, req);
    if (!in) {
        duet_rpc_call_fail(call, DUET_INVALID_ARGUMENT, "malformed HealthRequest");
        return;
    }
    duet__v1__health_request__free_unpacked(in, NULL);
    Duet__V1__HealthResponse r = DUET__V1__HEALTH_RESPONSE__INIT;
    duet_load_progress lp;
    duet_loader_progress(s->loader, &lp);
    r.state = load_state(&lp);
    r.bytes_loaded = lp.bytes_done;
    r.bytes_total = lp.bytes_total;
    r.layers_loaded = lp.layers_done;
    r.layers_total = lp.n_layer;
    r.load_eta_ms = lp.eta_s > 0 ? (uint32_t)(lp.eta_s * 1000) : 0;
    char message[2 * DUET_STATUS_MESSAGE_MAX + 8];
    snprintf(message, sizeof message, "%s%s%s", lp.message,
             lp.message[0] && lp.warning[0] ? "; " : "", lp.warning);
    r.message = message;
    duet_scheduler_stats ss;
    duet_scheduler_stats_get(s->scheduler, &ss);
    r.kv_pages_free = duet_kv_pool_pages_free(s->pool);
    r.kv_pages_used = duet_kv_pool_pages_total(s->pool) - r.kv_pages_free;
    r.running_sequences = ss.running;
    r.waiting_sequences = ss.waiting;
    r.tokens_per_second = ss.tokens_per_second;
    r.total_prompt_tokens = ss.total_prompt_tokens;
    r.total_generated_tokens = ss.total_generated_tokens;
    r.rejected_requests = atomic_load(&s->rejected) + ss.rejected;
    r.total_requests = atomic_load(&s->total_requests);
    r.uptime_ms = (duet_now_ns() - s->started_ns) / 1000000u;
    finish_with(call, &r.base);
}

static void tokenize_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    duet_worker_service *s = arg;
    atomic_fetch_add(&s->total_requests, 1);
    Duet__V1__TokenizeRequest *in = duet__v1__tokenize_request__unpack(NULL, len, req);
    if (!in) {
        duet_rpc_call_fail(call, DUET_INVALID_ARGUMENT, "malformed TokenizeRequest");
        return;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    duet_status st;
    duet_code rc = duet_tokenize(s->tok, in->text, strlen(in->text), in->add_special,
                                 in->parse_special, &ids, &n, &st);
    duet__v1__tokenize_request__free_unpacked(in, NULL);
    if (rc != DUET_OK) {
        duet_rpc_call_fail(call, st.code, "%s", st.message);
        return;
    }
    Duet__V1__TokenizeResponse r = DUET__V1__TOKENIZE_RESPONSE__INIT;
    r.n_ids = n;
    r.ids = (uint32_t *)ids; /* ids from the tokenizer are never negative */
    finish_with(call, &r.base);
    free(ids);
}

static void detokenize_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    duet_worker_service *s = arg;
    atomic_fetch_add(&s->total_requests, 1);
    Duet__V1__DetokenizeRequest *in = duet__v1__detokenize_request__unpack(NULL, len, req);
    if (!in) {
        duet_rpc_call_fail(call, DUET_INVALID_ARGUMENT, "malformed DetokenizeRequest");
        return;
    }
    const uint32_t n_vocab = duet_tokenizer_n_tokens(s->tok);
    for (size_t i = 0; i < in->n_ids; i++) {
        if (in->ids[i] >= n_vocab) {
            duet_rpc_call_fail(call, DUET_INVALID_ARGUMENT,
                               "token id %u at index %zu is out of range (vocabulary of %u)",
                               in->ids[i], i, n_vocab);
            duet__v1__detokenize_request__free_unpacked(in, NULL);
            return;
        }
    }
    char *text = NULL;
    size_t text_len = 0;
    duet_status st;
    unsigned flags = in->render_special ? DUET_DETOK_SPECIAL : 0;
    duet_code rc =
        duet_detokenize(s->tok, (const int32_t *)in->ids, in->n_ids, flags, &text, &text_len, &st);
    duet__v1__detokenize_request__free_unpacked(in, NULL);
    if (rc != DUET_OK) {
        duet_rpc_call_fail(call, st.code, "%s", st.message);
        return;
    }
    Duet__V1__DetokenizeResponse r = DUET__V1__DETOKENIZE_RESPONSE__INIT;
    r.text = text;
    finish_with(call, &r.base);
    free(text);
}

/* ---- Generate and Cancel ------------------------------------------------------------------ */

static void unlink_call_locked(duet_worker_service *s, gen_call *g)
{
    if (g->prev) {
        g->prev->next = g->next;
    } else if (s->calls == g) {
        s->calls = g->next;
    }
    if (g->next) {
        g->next->prev = g->prev;
    }
    g->prev = g->next = NULL;
}

static gen_call *find_call_locked(duet_worker_service *s, const duet_rpc_call *call)
{
    for (gen_call *g = s->calls; g; g = g->next) {
        if (g->call == call) {
            return g;
        }
    }
    return NULL;
}

static void on_generate_cancel(duet_rpc_call *call, duet_code why, void *arg)
{
    duet_worker_service *s = arg;
    pthread_mutex_lock(&s->lock);
    gen_call *g = find_call_locked(s, call);
    if (g && g->ticket) {
        duet_scheduler_cancel(g->ticket, why);
    } else if (g) {
        g->cancel_pending = why;
    }
    pthread_mutex_unlock(&s->lock);
}

static duet_code sink_chunk(void *arg, const int32_t *ids, size_t n_ids, const char *text,
                            size_t len)
{
    gen_call *g = arg;
    Duet__V1__GenerateChunk c = DUET__V1__GENERATE_CHUNK__INIT;
    c.n_ids = n_ids;
    c.ids = (uint32_t *)ids;
    char *copy = strndup(text ? text : "", len); /* protobuf-c strings end in NUL */
    if (!copy) {
        return DUET_RESOURCE_EXHAUSTED;
    }
    c.text = copy;
    size_t size = duet__v1__generate_chunk__get_packed_size(&c);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        free(copy);
        return DUET_RESOURCE_EXHAUSTED;
    }
    duet__v1__generate_chunk__pack(&c, buf);
    duet_status st;
    duet_code rc = duet_rpc_call_send(g->call, buf, size, false, &st);
    free(buf);
    free(copy);
    return rc;
}

static Duet__V1__FinishReason finish_to_proto(duet_finish_reason f)
{
    switch (f) {
    case DUET_FINISH_STOP:
        return DUET__V1__FINISH_REASON__FINISH_REASON_STOP;
    case DUET_FINISH_LENGTH:
        return DUET__V1__FINISH_REASON__FINISH_REASON_LENGTH;
    default:
        return DUET__V1__FINISH_REASON__FINISH_REASON_CANCELLED;
    }
}

static void sink_end(void *arg, const duet_gen_result *res, const duet_status *st)
{
    gen_call *g = arg;
    duet_worker_service *s = g->svc;
    pthread_mutex_lock(&s->lock);
    unlink_call_locked(s, g);
    pthread_mutex_unlock(&s->lock);
    if (st->code != DUET_OK) {
        duet_rpc_call_fail(g->call, st->code, "%s", st->message);
        free(g);
        return;
    }
    Duet__V1__Usage usage = DUET__V1__USAGE__INIT;
    usage.prompt_tokens = res->prompt_tokens;
    usage.cached_prompt_tokens = res->cached_prompt_tokens;
    usage.completion_tokens = res->completion_tokens;
    Duet__V1__Timings timings = DUET__V1__TIMINGS__INIT;
    timings.queue_ms = res->queue_ms;
    timings.prefill_ms = res->prefill_ms;
    timings.decode_ms = res->decode_ms;
    timings.first_token_ms = res->first_token_ms;
    Duet__V1__GenerateEnd end = DUET__V1__GENERATE_END__INIT;
    end.finish_reason = finish_to_proto(res->finish);
    end.usage = &usage;
    end.timings = &timings;
    char *tail = strndup(res->tail ? res->tail : "", res->tail_len);
    end.text = tail ? tail : "";
    finish_with(g->call, &end.base);
    free(tail);
    free(g);
}

static void generate_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    duet_worker_service *s = arg;
    atomic_fetch_add(&s->total_requests, 1);
    uint64_t retry_ms = 0;
    if (!duet_bucket_take(s->bucket, 1, &retry_ms)) {
        atomic_fetch_add(&s->rejected, 1);
        duet_rpc_call_fail(call, DUET_RESOURCE_EXHAUSTED,
                           "over the admission limit (%.3g requests/s, burst %.0f); retry in "
                           "%llu ms",
                           s->rate, s->burst, (unsigned long long)retry_ms);
        return;
    }
    Duet__V1__GenerateRequest *in = duet__v1__generate_request__unpack(NULL, len, req);
    if (!in) {
        duet_rpc_call_fail(call, DUET_INVALID_ARGUMENT, "malformed GenerateRequest");
        return;
    }
    duet_gen_limits lim = {.tok = s->tok, .template_kind = s->template_kind, .context = s->context};
    duet_gen_request r;
    duet_status st;
    duet_code rc = duet_gen_request_from_proto(in, &lim, &r, &st);
    duet__v1__generate_request__free_unpacked(in, NULL);
    if (rc != DUET_OK) {
        duet_rpc_call_fail(call, rc, "%s", st.message);
        return;
    }
    gen_call *g = calloc(1, sizeof *g);
    if (!g) {
        duet_gen_request_free(&r);
        duet_rpc_call_fail(call, DUET_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    g->svc = s;
    g->call = call;
    memcpy(g->session_id, r.session_id, sizeof g->session_id);
    pthread_mutex_lock(&s->lock);
    g->next = s->calls;
    if (s->calls) {
        s->calls->prev = g;
    }
    s->calls = g;
    pthread_mutex_unlock(&s->lock);
    /* before submitting: once submitted, the scheduler may end (and free) the call at once */
    duet_rpc_call_on_cancel(call, on_generate_cancel, s);

    int64_t remaining = duet_rpc_call_remaining_ms(call);
    uint64_t deadline = remaining >= 0 ? duet_now_ns() + (uint64_t)remaining * 1000000u : 0;
    duet_gen_sink sink = {.chunk = sink_chunk, .end = sink_end, .arg = g};
    duet_gen_ticket *ticket = NULL;
    /* under the lock, so a cancel cannot slip between submit and recording the ticket */
    pthread_mutex_lock(&s->lock);
    rc = duet_scheduler_submit(s->scheduler, &r, deadline, &sink, &ticket, &st);
    if (rc == DUET_OK) {
        g->ticket = ticket;
        if (g->cancel_pending) {
            duet_scheduler_cancel(ticket, g->cancel_pending);
        }
    } else {
        unlink_call_locked(s, g);
    }
    pthread_mutex_unlock(&s->lock);
    if (rc != DUET_OK) {
        duet_gen_request_free(&r);
        free(g);
        duet_rpc_call_fail(call, rc, "%s", st.message);
    }
}

static void cancel_handler(duet_rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    duet_worker_service *s = arg;
    atomic_fetch_add(&s->total_requests, 1);
    Duet__V1__CancelRequest *in = duet__v1__cancel_request__unpack(NULL, len, req);
    if (!in) {
        duet_rpc_call_fail(call, DUET_INVALID_ARGUMENT, "malformed CancelRequest");
        return;
    }
    uint32_t n = 0;
    if (in->session_id[0]) {
        pthread_mutex_lock(&s->lock);
        for (gen_call *g = s->calls; g; g = g->next) {
            if (strcmp(g->session_id, in->session_id) == 0) {
                if (g->ticket) {
                    duet_scheduler_cancel(g->ticket, DUET_CANCELLED);
                } else {
                    g->cancel_pending = DUET_CANCELLED;
                }
                n++;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    duet__v1__cancel_request__free_unpacked(in, NULL);
    Duet__V1__CancelResponse r = DUET__V1__CANCEL_RESPONSE__INIT;
    r.cancelled = n;
    finish_with(call, &r.base);
}

uint32_t duet_worker_service_stop(duet_worker_service *s, uint32_t grace_ms)
{
    uint32_t cut = 0;
    if (!duet_scheduler_drain(s->scheduler, grace_ms)) {
        duet_scheduler_stats ss;
        duet_scheduler_stats_get(s->scheduler, &ss);
        cut = ss.running + ss.waiting;
    }
    duet_scheduler_shutdown(s->scheduler);
    return cut;
}

duet_code duet_worker_service_register(duet_worker_service *s, duet_rpc_server *srv,
                                       duet_status *st)
{
    static const struct {
        const char *method;
        duet_rpc_handler handler;
    } methods[] = {
        {DUET_WORKER_METHOD("Info"), info_handler},
        {DUET_WORKER_METHOD("Health"), health_handler},
        {DUET_WORKER_METHOD("Tokenize"), tokenize_handler},
        {DUET_WORKER_METHOD("Detokenize"), detokenize_handler},
        {DUET_WORKER_METHOD("Generate"), generate_handler},
        {DUET_WORKER_METHOD("Cancel"), cancel_handler},
    };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (duet_rpc_server_register(srv, methods[i].method, methods[i].handler, s, st) !=
            DUET_OK) {
            return st->code;
        }
    }
    return DUET_OK;
}
