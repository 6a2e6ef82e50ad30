/* duet_vocab <-> the Vocabulary message of proto/duet.proto: the worker sends its model's
 * vocabulary in Info, the gateway builds its tokenizer from it and counts tokens exactly as
 * the worker does. */
#ifndef DUET_VOCAB_PROTO_H
#define DUET_VOCAB_PROTO_H

#include "duet.pb-c.h"
#include "status.h"
#include "vocab.h"

/* Fills msg (initialised here) from v. Token texts point into v (v must outlive msg);
 * the arrays are allocated here: release them with duet_vocab_proto_release. */
duet_code duet_vocab_to_proto(const duet_vocab *v, Duet__V1__Vocabulary *msg, duet_status *st);
void duet_vocab_proto_release(Duet__V1__Vocabulary *msg);

/* Builds v from a received message, trusting nothing: an unknown kind, score or type arrays
 * whose length is neither 0 nor the token count, a token type outside 0..6, a merge or
 * pre-tokenizer name with an embedded NUL, or special ids out of range are INVALID_ARGUMENT
 * naming the field (ids of 0xFFFFFFFF mean none). On failure v is left empty. */
duet_code duet_vocab_from_proto(const Duet__V1__Vocabulary *msg, duet_vocab *v, duet_status *st);

#endif
