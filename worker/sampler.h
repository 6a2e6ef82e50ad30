/* Sampling: choosing the next token from the model's logits, and knowing when to stop.
 *
 * duet_sampler applies, in this order (llama.cpp's default sampler chain, less the stages
 * duet does not offer: DRY, top-n-sigma, typical-p, XTC):
 *
 *   1. penalties    over the last repeat_last_n accepted tokens. For a token seen c > 0
 *                   times in that window: a logit > 0 is divided by repeat_penalty, a logit
 *                   <= 0 multiplied by it; then c * frequency_penalty + presence_penalty is
 *                   subtracted. (llama.cpp's rule, in float arithmetic like llama.cpp.)
 *   2. top-k        keeps the k highest logits (0 = off).
 *   3. top-p        keeps the smallest set of the highest-logit tokens whose probabilities
 *                   (softmax of the logits left after top-k, at temperature 1) sum to at
 *                   least top_p (1 = off; 0 keeps only the best token).
 *   4. min-p        keeps tokens whose probability is at least min_p times the best token's,
 *                   i.e. logit >= max logit + ln(min_p) (0 = off).
 *   5. temperature  divides the logits left by temperature. 0 = greedy: the token with the
 *                   highest penalised logit, ties to the lowest id (the filters above always
 *                   keep it, so they do not matter then).
 *   6. sample       draws one token from the softmax of what is left.
 *
 * Ordering among equal logits is by id (lower first), so every stage is deterministic.
 * Randomness comes from duet's own generator (xoshiro256**, seeded through splitmix64) and
 * probabilities from duet's own exp(), in IEEE double arithmetic: the same seed, logits and
 * history give the same tokens on every machine. (llama.cpp's own draws, from std::mt19937,
 * are not reproduced; the distribution drawn from is the same.)
 *
 * Large vocabularies (128k-150k) are cheap: top-k selects with a bounded heap instead of
 * sorting, min-p is a linear filter, and top-p sorts only as far as it has to.
 *
 * A sampler belongs to one sequence and is not thread-safe; different samplers may be used
 * from different threads. */
#ifndef DUET_SAMPLER_H
#define DUET_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Mirrors SamplingParams in proto/duet.proto. */
typedef struct {
    float temperature;       /* >= 0; 0 = greedy */
    uint32_t top_k;          /* 0 = off */
    float top_p;             /* in [0, 1]; 1 = off */
    float min_p;             /* in [0, 1]; 0 = off */
    float repeat_penalty;    /* > 0; 1 = off */
    uint32_t repeat_last_n;  /* window of accepted tokens the penalties look at; 0 = off */
    float frequency_penalty; /* any finite value; 0 = off */
    float presence_penalty;  /* any finite value; 0 = off */
    bool has_seed;           /* false: a random seed (see duet_sampler_seed) */
    uint64_t seed;
} duet_sampler_params;

/* Largest repeat_last_n accepted. */
#define DUET_SAMPLER_MAX_LAST_N (1u << 20)

/* llama.cpp's defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05,
 * repeat_penalty 1 (off), repeat_last_n 64, frequency and presence 0, random seed. */
duet_sampler_params duet_sampler_params_default(void);

typedef struct duet_sampler duet_sampler;

/* A sampler over ids [0, vocab_size). INVALID_ARGUMENT for vocab_size <= 0, a NaN or
 * infinite parameter, or one outside the ranges above; RESOURCE_EXHAUSTED when out of
 * memory (it keeps about 16 bytes per vocabulary entry). */
duet_code duet_sampler_new(const duet_sampler_params *params, int32_t vocab_size,
                           duet_sampler **out, duet_status *st);

/* NULL is a no-op. */
void duet_sampler_free(duet_sampler *s);

/* Records a token in the penalty history. sample() does not do it by itself: the caller
 * accepts each token it keeps, and may first accept the prompt's tokens (llama.cpp's server
 * does) so that the penalties see them too. INVALID_ARGUMENT for an id outside the
 * vocabulary (nothing recorded). */
duet_code duet_sampler_accept(duet_sampler *s, int32_t id, duet_status *st);

/* The next token for logits[0..vocab_size). NaN logits count as -infinity; when no logit is
 * finite the lowest id left is returned. Never fails. */
int32_t duet_sampler_sample(duet_sampler *s, const float *logits);

/* Applies stage 1 (the penalties, from the current history) to logits[0..vocab_size) in
 * place, exactly as sample() does before filtering. */
void duet_sampler_penalize(const duet_sampler *s, float *logits);

/* Forgets the history and restarts the random sequence from the seed. */
void duet_sampler_reset(duet_sampler *s);

/* The seed in use (the random one when none was given), e.g. to log for a replay. */
uint64_t duet_sampler_seed(const duet_sampler *s);

/* ---- end-of-generation tokens ---- */

#define DUET_EOG_MAX 16

/* A small set of ids that end generation (EOS, EOT, <|im_end|>, <end_of_turn>, ...).
 * Zero-initialise it, or use duet_eog_clear. */
typedef struct {
    int32_t ids[DUET_EOG_MAX];
    size_t n;
} duet_eog_set;

void duet_eog_clear(duet_eog_set *set);

/* Adds id (again: no-op). INVALID_ARGUMENT for a negative id (GGUF's "none" is -1 /
 * 0xFFFFFFFF: skip it), RESOURCE_EXHAUSTED when DUET_EOG_MAX ids are there already. */
duet_code duet_eog_add(duet_eog_set *set, int32_t id, duet_status *st);

bool duet_eog_contains(const duet_eog_set *set, int32_t id);

/* ---- stop strings ----
 *
 * Generation stops before the first occurrence of any stop string in the detokenized text,
 * even when it spans several tokens. While the text so far ends with the beginning of a
 * stop string, those bytes are held back: they may turn out to be the stop string (and
 * never be shown) or not (and be released with the next text). Empty stop strings are
 * ignored. A held suffix starts where a stop string starts, so as long as the stop strings
 * and the text are whole UTF-8 characters, so is every released piece. */

typedef struct {
    bool found;   /* a stop string occurs */
    size_t which; /* the earliest-starting one (ties: the lower index) */
    size_t pos;   /* where it starts: the answer is text[0..pos) */
    size_t safe;  /* bytes from the start that can be shown now: pos when found; otherwise
                     len minus the longest suffix that is a proper prefix of a stop string */
} duet_stop_scan_result;

/* Scans text[0..len) for the stop strings (NUL-terminated). */
duet_stop_scan_result duet_stop_scan(const char *const *stops, size_t n_stops, const char *text,
                                     size_t len);

/* The same, incrementally over a stream of text pieces. */
typedef struct duet_stop_matcher duet_stop_matcher;

typedef struct {
    const char *text; /* bytes to show now; points into the matcher, valid until its next call */
    size_t len;
    bool stopped; /* a stop string was found: text is all that is left to show, and the
                     stop string and everything after it are dropped */
    size_t which; /* the stop string found, when stopped */
} duet_stop_output;

/* Copies the stop strings (n may be 0: every byte passes straight through).
 * INVALID_ARGUMENT for NULL stops with n > 0 or a NULL string; RESOURCE_EXHAUSTED when out
 * of memory. */
duet_code duet_stop_matcher_new(const char *const *stops, size_t n, duet_stop_matcher **out,
                                duet_status *st);

void duet_stop_matcher_free(duet_stop_matcher *m);

/* Adds the next piece of text. After a stop, further pieces are ignored (stopped, len 0).
 * RESOURCE_EXHAUSTED when out of memory (*out is then empty and nothing is lost). */
duet_code duet_stop_matcher_feed(duet_stop_matcher *m, const char *text, size_t len,
                                 duet_stop_output *out, duet_status *st);

/* Generation ended another way (EOG token, length): releases the held bytes. */
void duet_stop_matcher_flush(duet_stop_matcher *m, duet_stop_output *out);

/* Bytes held back right now. */
size_t duet_stop_matcher_held(const duet_stop_matcher *m);

#endif
