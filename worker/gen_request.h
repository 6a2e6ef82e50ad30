/* A Generate call turned into what the scheduler runs: the prompt as token ids, sampling
 * parameters, limits and stop strings, every field checked. The GenerateRequest message
 * (proto/duet.proto) is untrusted input: anything out of range is INVALID_ARGUMENT with a
 * message naming the field and the numbers. */
#ifndef DUET_GEN_REQUEST_H
#define DUET_GEN_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_template.h"
#include "duet.pb-c.h"
#include "sampler.h"
#include "session_cache.h"
#include "status.h"
#include "tokenizer.h"

#define DUET_STOP_STRINGS_MAX 16
#define DUET_STOP_STRING_BYTES_MAX 256

typedef struct {
    int32_t *prompt; /* malloc'd */
    uint32_t n_prompt;
    duet_sampler_params sampling;
    uint32_t max_tokens; /* after the defaults: at most context - n_prompt */
    char **stops;        /* n_stops NUL-terminated strings */
    size_t n_stops;
    char session_id[DUET_SESSION_ID_MAX + 1]; /* "" = no session */
    bool ignore_eos;
} duet_gen_request;

/* What the request is checked against. */
typedef struct {
    const duet_tokenizer *tok;
    duet_template_kind template_kind;
    uint32_t context; /* positions one sequence may hold */
} duet_gen_limits;

/* Builds r from msg. The prompt: chat messages rendered with the template and tokenized
 * with the model's BOS, control-token text parsed; raw text tokenized the same way; token
 * ids taken as they are. Errors: no prompt, an empty one, an id outside the vocabulary, a
 * prompt that leaves no room to generate in the context ("prompt of N tokens does not fit
 * the context of C"), sampling parameters out of range, too many or too long stop strings,
 * a session id over DUET_SESSION_ID_MAX bytes. On error r holds nothing to free. */
duet_code duet_gen_request_from_proto(const Duet__V1__GenerateRequest *msg,
                                      const duet_gen_limits *lim, duet_gen_request *r,
                                      duet_status *st);

void duet_gen_request_free(duet_gen_request *r);

#endif
