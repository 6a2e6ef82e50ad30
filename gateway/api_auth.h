/* Signing in API requests: each configured API key names one user (sessions and limits are
 * kept per user). A request signs in with "Authorization: Bearer KEY". */
#ifndef DUET_API_AUTH_H
#define DUET_API_AUTH_H

#include <stddef.h>

#include "gateway_config.h"
#include "http_server.h"
#include "status.h"

typedef struct duet_api_keys duet_api_keys;

/* Copies keys[0..n) (n may be 0: every request is then refused). */
duet_code duet_api_keys_new(const duet_api_key *keys, size_t n, duet_api_keys **out,
                            duet_status *st);

void duet_api_keys_free(duet_api_keys *k);

/* The user the request's bearer key signs in, or NULL (no header, another scheme, or an
 * unknown key). Every key is compared in full, so the time taken says nothing about how
 * near a guess came. The string lives as long as k. */
const char *duet_api_keys_sign_in(const duet_api_keys *k, const duet_http_exchange *x);

/* The message a refused request gets. */
#define DUET_API_KEY_NEEDED "a valid API key is needed: send \"Authorization: Bearer KEY\""

#endif
