/* From ids back to text: each token's piece (computed once at creation), llama.cpp's
 * detokenize rules, and the streaming detokenizer that only hands out whole characters. */
#include <stdlib.h>
#include <string.h>

#include "gpt2_bytes.h"
#include "tokenizer_internal.h"
#include "utf8.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Writes token id's piece (special = true form) to out, which has room for 3x its text
 * (BPE decoding only shrinks; SPM '▁' -> ' ' shrinks); returns its length. */
static size_t make_piece(const duet_tokenizer *t, int32_t id, char *out)
{
    size_t len;
    const char *s = tok_text(t, id, &len);
    uint8_t type = t->types[id];
    if (type == DUET_TOKEN_CONTROL || type == DUET_TOKEN_UNKNOWN ||
        type == DUET_TOKEN_USER_DEFINED) {
        memcpy(out, s, len);
        return len;
    }
    if (t->kind == DUET_VOCAB_SPM) {
        if (type == DUET_TOKEN_BYTE) {
            int hi, lo;
            if (len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && (hi = hexval(s[3])) >= 0 &&
                (lo = hexval(s[4])) >= 0) {
                out[0] = (char)(hi * 16 + lo);
                return 1;
            }
            memcpy(out, s, len);
            return len;
        }
        if (type != DUET_TOKEN_NORMAL) {
            return 0; /* unused/undefined tokens print nothing, as in llama.cpp */
        }
        size_t n = 0;
        for (size_t i = 0; i < len;) {
            if (len - i >= 3 && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                out[n++] = ' ';
                i += 3;
            } else {
                out[n++] = s[i++];
            }
        }
        return n;
    }
    if (type != DUET_TOKEN_NORMAL) {
        return 0;
    }
    /* BPE: each code point stands for one byte; one outside the mapping (a vocabulary
     * quirk) is kept as written rather than dropped. */
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t cl = duet_utf8_decode(s + i, len - i, &cp);
        int b = cl ? duet_gpt2_cp_to_byte(cp) : -1;
        if (b >= 0) {
            out[n++] = (char)b;
        } else {
            cl = cl ? cl : 1;
            memcpy(out + n, s + i, cl);
            n += cl;
        }
        i += cl;
    }
    return n;
}

duet_code tok_pieces_build(duet_tokenizer *t, duet_status *st)
{
    size_t total = (size_t)t->text_off[t->n_tokens];
    t->piece = malloc(total + 1);
    t->piece_off = malloc(((size_t)t->n_tokens + 1) * sizeof *t->piece_off);
    if (!t->piece || !t->piece_off) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory (token pieces)");
    }
    size_t n = 0;
    t->piece_off[0] = 0;
    for (uint32_t i = 0; i < t->n_tokens; i++) {
        n += make_piece(t, (int32_t)i, t->piece + n);
        t->piece_off[i + 1] = n;
    }
    return DUET_OK;
}

const char *duet_token_piece(const duet_tokenizer *t, int32_t id, bool special, size_t *len)
{
    *len = 0;
    if (id < 0 || (uint32_t)id >= t->n_tokens) {
        return NULL;
    }
    uint8_t type = t->types[id];
    const char *p = t->piece + t->piece_off[id];
    if (!special && (type == DUET_TOKEN_CONTROL || type == DUET_TOKEN_UNKNOWN)) {
        return p;
    }
    *len = (size_t)(t->piece_off[id + 1] - t->piece_off[id]);
    return p;
}

/* llama.cpp's clean_up_tokenization_spaces, three passes in place over s[0..n). */
static size_t clean_spaces(char *s, size_t n)
{
    /* " ?", " !", " .", " ," lose the space. */
    size_t total = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = s[i];
        if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) {
            total--;
        }
        s[total++] = x;
    }
    /* " ' " becomes "'". */
    size_t n2 = total;
    total = n2 ? 1 : 0;
    for (size_t i = 1; i < n2; i++) {
        char x = s[i];
        if (x == '\'' && i + 1 < n2 && s[i - 1] == ' ' && s[i + 1] == ' ') {
            total--;
            s[++i] = '\0';
        }
        s[total++] = x;
    }
    /* " 's", " 'm", " 're", " 've" lose the space (" 't", " 'd", " 'll" keep it). */
    size_t n3 = total;
    total = n3 ? 1 : 0;
    for (size_t i = 1; i < n3; i++) {
        char x = s[i];
        if (s[i - 1] == ' ' && x == '\'' && i + 1 < n3) {
            char x1 = s[i + 1];
            if (x1 == 's' || x1 == 'm') {
                total--;
            } else if (x1 != 't' && x1 != 'd' && i + 2 < n3) {
                char x2 = s[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) {
                    total--;
                }
            }
        }
        s[total++] = x;
    }
    return total;
}

static duet_code bad_id(duet_status *st, int32_t id, uint32_t n)
{
    return duet_status_set(st, DUET_INVALID_ARGUMENT,
                           "token id %d is outside the vocabulary (%u tokens)", id, n);
}

duet_code duet_detokenize(const duet_tokenizer *t, const int32_t *ids, size_t n_ids, unsigned flags,
                          char **text, size_t *len, duet_status *st)
{
    *text = NULL;
    *len = 0;
    if (!ids && n_ids) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "detokenize: NULL ids");
    }
    bool special = flags & DUET_DETOK_SPECIAL;
    bool strip = t->add_space_prefix && !(flags & DUET_DETOK_KEEP_LEADING_SPACE);
    if ((flags & DUET_DETOK_REMOVE_SPECIAL) && t->add_bos && n_ids && ids[0] == t->bos) {
        strip = false; /* llama.cpp's rule: no space removal once BOS is dropped */
        ids++;
        n_ids--;
    }
    if ((flags & DUET_DETOK_REMOVE_SPECIAL) && t->add_eos && n_ids && ids[n_ids - 1] == t->eos) {
        n_ids--;
    }
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= t->n_tokens) {
            return bad_id(st, ids[i], t->n_tokens);
        }
        size_t n;
        duet_token_piece(t, ids[i], special, &n);
        total += n;
    }
    char *out = malloc(total + 1);
    if (!out) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory detokenizing");
    }
    size_t at = 0;
    for (size_t i = 0; i < n_ids; i++) {
        size_t n;
        const char *p = duet_token_piece(t, ids[i], special, &n);
        if (strip && n && p[0] == ' ') {
            p++;
            n--;
        }
        strip = false;
        memcpy(out + at, p, n);
        at += n;
    }
    if ((flags & DUET_DETOK_CLEAN_SPACES) && t->clean_spaces) {
        at = clean_spaces(out, at);
    }
    out[at] = '\0';
    *text = out;
    *len = at;
    return DUET_OK;
}

/* ---- streaming ------------------------------------------------------------------------- */

struct duet_detok_stream {
    const duet_tokenizer *t;
    unsigned flags;
    bool started;
    char held[4]; /* the start of a character whose other bytes have not arrived */
    size_t n_held;
    char *buf;
    size_t cap;
};

duet_code duet_detok_stream_create(const duet_tokenizer *t, unsigned flags, duet_detok_stream **out,
                                   duet_status *st)
{
    *out = calloc(1, sizeof **out);
    if (!*out) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    (*out)->t = t;
    (*out)->flags = flags;
    return DUET_OK;
}

void duet_detok_stream_free(duet_detok_stream *s)
{
    if (s) {
        free(s->buf);
        free(s);
    }
}

static const char REPLACEMENT[3] = {(char)0xEF, (char)0xBF, (char)0xBD}; /* U+FFFD */

duet_code duet_detok_stream_push(duet_detok_stream *s, int32_t id, const char **text, size_t *len,
                                 duet_status *st)
{
    *text = "";
    *len = 0;
    const duet_tokenizer *t = s->t;
    if (id < 0 || (uint32_t)id >= t->n_tokens) {
        return bad_id(st, id, t->n_tokens);
    }
    size_t n;
    const char *p = duet_token_piece(t, id, s->flags & DUET_DETOK_SPECIAL, &n);
    if (!s->started) {
        s->started = true;
        if (t->add_space_prefix && !(s->flags & DUET_DETOK_KEEP_LEADING_SPACE) && n &&
            p[0] == ' ') {
            p++;
            n--;
        }
    }
    /* Worst case every byte is invalid and becomes a 3-byte U+FFFD. */
    size_t in = s->n_held + n, need = 3 * in + 1;
    if (s->cap < need + in) {
        char *b = realloc(s->buf, need + in);
        if (!b) {
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory detokenizing");
        }
        s->buf = b;
        s->cap = need + in;
    }
    /* The input (held bytes + piece) goes after the output area, then is scanned. */
    char *src = s->buf + need;
    memcpy(src, s->held, s->n_held);
    memcpy(src + s->n_held, p, n);
    size_t o = 0, i = 0;
    s->n_held = 0;
    while (i < in) {
        size_t v = duet_utf8_valid_prefix(src + i, in - i);
        uint32_t cp;
        size_t cl = duet_utf8_decode(src + i, in - i, &cp);
        if (cl) {
            memcpy(s->buf + o, src + i, cl);
            o += cl;
            i += cl;
        } else if (v && v == in - i) {
            memcpy(s->held, src + i, v); /* may still be completed: wait */
            s->n_held = v;
            break;
        } else {
            memcpy(s->buf + o, REPLACEMENT, 3);
            o += 3;
            i += v ? v : 1;
        }
    }
    s->buf[o] = '\0';
    *text = s->buf;
    *len = o;
    return DUET_OK;
}

void duet_detok_stream_flush(duet_detok_stream *s, const char **text, size_t *len)
{
    *text = "";
    *len = 0;
    if (s->n_held) {
        *text = REPLACEMENT;
        *len = 3;
    }
    s->n_held = 0;
    s->started = false;
}
