#include "api_auth.h"

#include <stdlib.h>
#include <string.h>

struct duet_api_keys {
    duet_api_key *keys;
    size_t n;
};

duet_code duet_api_keys_new(const duet_api_key *keys, size_t n, duet_api_keys **out,
                            duet_status *st)
{
    duet_api_keys *k = calloc(1, sizeof *k);
    if (!k || (n && !(k->keys = calloc(n, sizeof *k->keys)))) {
        free(k);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        k->n = i + 1;
        k->keys[i].key = strdup(keys[i].key);
        k->keys[i].user = strdup(keys[i].user);
        if (!k->keys[i].key || !k->keys[i].user) {
            duet_api_keys_free(k);
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
        }
    }
    *out = k;
    return DUET_OK;
}

void duet_api_keys_free(duet_api_keys *k)
{
    if (!k) {
        return;
    }
    for (size_t i = 0; i < k->n; i++) {
        free(k->keys[i].key);
        free(k->keys[i].user);
    }
    free(k->keys);
    free(k);
}

const char *duet_api_keys_sign_in(const duet_api_keys *k, const duet_http_exchange *x)
{
    const char *auth = duet_http_header(x, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7) != 0) {
        return NULL;
    }
    const char *key = auth + 7;
    size_t lk = strlen(key);
    const char *user = NULL;
    for (size_t i = 0; i < k->n; i++) {
        const char *want = k->keys[i].key;
        size_t lw = strlen(want);
        unsigned diff = (unsigned)(lw ^ lk);
        for (size_t j = 0; j < lw; j++) {
            diff |= (unsigned)(want[j] ^ (j < lk ? key[j] : 0));
        }
        if (diff == 0 && !user) {
            user = k->keys[i].user;
        }
    }
    return user;
}
