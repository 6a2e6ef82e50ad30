/* Special tokens: cutting control, unknown and user-defined tokens out of the text before
 * SPM/BPE run, with llama.cpp's exact precedence: the special tokens are taken one at a
 * time, longest first (then lowest id), and each splits every stretch of raw text left at
 * its occurrences, left to right without overlaps. Doing that for every special token of
 * the vocabulary would cost (number of special tokens) x (text length), so a byte trie
 * first finds which special tokens occur in the text at all, and only those are applied. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

static int special_type(uint8_t type)
{
    return type == DUET_TOKEN_CONTROL || type == DUET_TOKEN_UNKNOWN ||
           type == DUET_TOKEN_USER_DEFINED;
}

typedef struct {
    size_t len;
    int32_t id;
} special_entry;

static int by_priority(const void *a, const void *b)
{
    const special_entry *x = a, *y = b;
    if (x->len != y->len) {
        return x->len > y->len ? -1 : 1;
    }
    return x->id < y->id ? -1 : x->id > y->id;
}

duet_code tok_special_build(duet_tokenizer *t, duet_status *st)
{
    size_t n = 0, bytes = 0;
    for (uint32_t i = 0; i < t->n_tokens; i++) {
        size_t len;
        tok_text(t, (int32_t)i, &len);
        if (special_type(t->types[i]) && len > 0) {
            n++;
            bytes += len;
        }
    }
    special_entry *ids = malloc((n ? n : 1) * sizeof *ids);
    t->special = calloc(bytes + 1, sizeof *t->special);
    t->special_by_rank = malloc((n ? n : 1) * sizeof *t->special_by_rank);
    if (!ids || !t->special || !t->special_by_rank) {
        free(ids);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory (special tokens)");
    }
    n = 0;
    for (uint32_t i = 0; i < t->n_tokens; i++) {
        size_t len;
        tok_text(t, (int32_t)i, &len);
        if (special_type(t->types[i]) && len > 0) {
            ids[n++] = (special_entry){len, (int32_t)i};
        }
    }
    qsort(ids, n, sizeof *ids, by_priority);
    t->n_special = (uint32_t)n;

    t->special[0].token = -1;
    t->n_special_nodes = 1;
    for (size_t r = 0; r < n; r++) {
        size_t len;
        const char *s = tok_text(t, ids[r].id, &len);
        t->special_by_rank[r] = ids[r].id;
        uint32_t node = 0;
        for (size_t k = 0; k < len; k++) {
            unsigned char b = (unsigned char)s[k];
            uint32_t c = t->special[node].child;
            while (c && t->special[c].byte != b) {
                c = t->special[c].sibling;
            }
            if (!c) {
                c = t->n_special_nodes++;
                t->special[c].byte = b;
                t->special[c].token = -1;
                t->special[c].sibling = t->special[node].child;
                t->special[node].child = c;
            }
            node = c;
        }
        /* Of two tokens with the same text the first in priority order wins. */
        if (t->special[node].token < 0) {
            t->special[node].token = ids[r].id;
            t->special[node].rank = (uint32_t)r;
        }
        t->special_first[(unsigned char)s[0]] |=
            t->types[ids[r].id] == DUET_TOKEN_USER_DEFINED ? 1 : 2;
    }
    for (uint32_t c = t->special[0].child; c; c = t->special[c].sibling) {
        t->special_root[t->special[c].byte] = c;
    }
    free(ids);
    return DUET_OK;
}

/* Fragment lists, rebuilt once per special token that occurs. */
typedef struct {
    tok_fragment *v;
    size_t n, cap;
} frag_list;

static int frag_push(frag_list *l, size_t off, size_t len, int32_t token)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        tok_fragment *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            return 0;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (tok_fragment){off, len, token};
    return 1;
}

/* Marks in present[] (by rank) the eligible special tokens that occur in text. */
static size_t find_present(const duet_tokenizer *t, const char *text, size_t len,
                           bool parse_special, unsigned char *present)
{
    unsigned mask = parse_special ? 3u : 1u; /* user-defined tokens always count */
    size_t n = 0;
    for (size_t pos = 0; pos < len; pos++) {
        if (!(t->special_first[(unsigned char)text[pos]] & mask)) {
            continue;
        }
        uint32_t node = t->special_root[(unsigned char)text[pos]];
        for (size_t k = pos + 1; node; k++) {
            int32_t tok = t->special[node].token;
            if (tok >= 0 && (parse_special || t->types[tok] == DUET_TOKEN_USER_DEFINED) &&
                !present[t->special[node].rank]) {
                present[t->special[node].rank] = 1;
                n++;
            }
            if (k == len) {
                break;
            }
            uint32_t c = t->special[node].child;
            while (c && t->special[c].byte != (unsigned char)text[k]) {
                c = t->special[c].sibling;
            }
            node = c;
        }
    }
    return n;
}

duet_code tok_special_split(const duet_tokenizer *t, const char *text, size_t len,
                            bool parse_special, tok_fragment **frags, size_t *n_frags,
                            duet_status *st)
{
    *frags = NULL;
    *n_frags = 0;
    frag_list cur = {0}, next = {0};
    unsigned char *present = calloc(t->n_special ? t->n_special : 1, 1);
    if (!present || !frag_push(&cur, 0, len, -1)) {
        goto oom;
    }
    if (find_present(t, text, len, parse_special, present)) {
        for (uint32_t r = 0; r < t->n_special; r++) {
            if (!present[r]) {
                continue;
            }
            int32_t tok = t->special_by_rank[r];
            size_t tlen;
            const char *ts = tok_text(t, tok, &tlen);
            next.n = 0;
            for (size_t i = 0; i < cur.n; i++) {
                tok_fragment f = cur.v[i];
                if (f.token >= 0) {
                    if (!frag_push(&next, f.off, f.len, f.token)) {
                        goto oom;
                    }
                    continue;
                }
                size_t at = f.off, end = f.off + f.len;
                const char *m;
                while (end - at >= tlen && (m = memmem(text + at, end - at, ts, tlen))) {
                    size_t mpos = (size_t)(m - text);
                    if ((mpos > at && !frag_push(&next, at, mpos - at, -1)) ||
                        !frag_push(&next, mpos, tlen, tok)) {
                        goto oom;
                    }
                    at = mpos + tlen;
                }
                if (at < end && !frag_push(&next, at, end - at, -1)) {
                    goto oom;
                }
            }
            frag_list tmp = cur;
            cur = next;
            next = tmp;
        }
    }
    free(present);
    free(next.v);
    *frags = cur.v;
    *n_frags = cur.n;
    return DUET_OK;
oom:
    free(present);
    free(cur.v);
    free(next.v);
    return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory splitting special tokens");
}
