#include "service.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "duet.pb-c.h"
#include "model.h"
#include "model_template.h"
#include "timer.h"
#include "tokenizer.h"
#include "vocab_gguf.h"
#include "vocab_proto.h"

struct duet_worker_service {
    duet_model *model;
    duet_vocab vocab;
    duet_tokenizer *tok;
    duet_template_kind template_kind;
    uint32_t context;
    uint32_t threads;
    uint64_t started_ns;
    atomic_uint_fast64_t total_requests;
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
    if (duet_model_load(o->model_path, &s->model, st) != DUET_OK ||
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
    *out = s;
    return DUET_OK;
}

void duet_worker_service_free(duet_worker_service *s)
{
    if (!s) {
        return;
    }
    duet_tokenizer_free(s->tok);
    duet_vocab_free(&s->vocab);
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
    r.load_state = DUET__V1__LOAD_STATE__LOAD_STATE_READY;
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
    r.state = DUET__V1__LOAD_STATE__LOAD_STATE_READY;
    r.bytes_loaded = r.bytes_total = s->model->weight_bytes;
    r.layers_loaded = r.layers_total = s->model->hp.n_layer;
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
    };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (duet_rpc_server_register(srv, methods[i].method, methods[i].handler, s, st) !=
            DUET_OK) {
            return st->code;
        }
    }
    return DUET_OK;
}
