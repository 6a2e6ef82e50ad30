/* The KV caches of chat sessions, kept between requests so a session's next turn computes
 * only what its cache lacks.
 *
 * A session id names one cached sequence: its KV cache (pages from the engine's pool) and
 * the token ids those positions hold. A request acquires its session's sequence, cut to the
 * longest prefix its prompt shares with the cached tokens, and releases it with the tokens
 * the cache then holds. A sequence is never shared across session ids, and a session serves
 * one request at a time. Requests without a session id get an anonymous sequence, freed at
 * release.
 *
 * Idle sessions are the pool's reserve: when an allocation finds the pool short, the least
 * recently used idle sessions are forgotten until it fits (the cache installs itself as
 * the pool's reclaimer, see kv_pool.h). Sessions in use are never evicted.
 *
 * Thread-safe: one mutex guards the table. Lookups scan the sessions (compared by hash
 * first); every idle session holds at least one page, so they are at most the pool's pages. */
#ifndef DUET_SESSION_CACHE_H
#define DUET_SESSION_CACHE_H

#include <stdint.h>

#include "kv_cache.h"
#include "kv_pool.h"
#include "status.h"

#define DUET_SESSION_ID_MAX 128 /* bytes */

typedef struct duet_session_cache duet_session_cache;
/* One cached sequence, acquired by one request at a time. */
typedef struct duet_session duet_session;

/* Sessions of up to max_ctx positions over pool, which must outlive the cache. At most one
 * session cache per pool (it is the pool's reclaimer). */
duet_code duet_session_cache_new(duet_kv_pool *pool, uint32_t max_ctx, duet_session_cache **out,
                                 duet_status *st);
/* Frees every session; none may be in use. */
void duet_session_cache_free(duet_session_cache *c);

/* The sequence for a prompt of n tokens in session_id (NULL or "" for an anonymous one).
 * A known idle session's cache is cut to the longest common prefix of its tokens and the
 * prompt, at most n - 1 positions so that the last prompt token is computed again for its
 * logits; *reused receives the positions kept (0 for a new session). INVALID_ARGUMENT for an
 * id longer than DUET_SESSION_ID_MAX bytes; FAILED_PRECONDITION when the session is in use. */
duet_code duet_session_cache_acquire(duet_session_cache *c, const char *session_id,
                                     const uint32_t *prompt, uint32_t n, duet_session **seq,
                                     uint32_t *reused, duet_status *st);

/* The sequence's cache, to run the engine on while acquired. */
duet_kv_cache *duet_session_kv(duet_session *seq);

/* Ends a request's use of seq. tokens[0..n) are the tokens of its positions in order; the
 * cache keeps the first min(n, length) of them (a token sampled but never fed is not in the
 * cache) and drops positions past n. An anonymous sequence, a dropped session or one left
 * empty is freed; seq is not to be used after. */
void duet_session_cache_release(duet_session_cache *c, duet_session *seq, const uint32_t *tokens,
                                uint32_t n);

/* Forgets a session: at once when idle, at its release when in use (a new request may then
 * start the id afresh). NOT_FOUND when the cache does not know it. */
duet_code duet_session_cache_drop(duet_session_cache *c, const char *session_id, duet_status *st);

/* Sessions known (idle and in use; anonymous sequences not counted). */
uint32_t duet_session_cache_count(duet_session_cache *c);
/* Idle sessions forgotten so far to make room in the pool. */
uint64_t duet_session_cache_evictions(duet_session_cache *c);

#endif
