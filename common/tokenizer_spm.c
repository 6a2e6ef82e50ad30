/* SentencePiece (BPE-by-score) encoding as llama.cpp's llm_tokenizer_spm does it: the text
 * (spaces as '▁') starts as one symbol per UTF-8 character; the adjacent pair whose joined
 * text is a token with the highest score is merged first (leftmost on ties), repeatedly;
 * every final symbol is its token, or its bytes as <0xXX> byte tokens when it is none. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"
#include "utf8.h"

duet_code tok_spm_prepare(duet_tokenizer *t, duet_status *st)
{
    (void)st;
    for (int b = 0; b < 256; b++) {
        char name[8];
        static const char hex[] = "0123456789ABCDEF";
        memcpy(name, "<0x", 3);
        name[3] = hex[b >> 4];
        name[4] = hex[b & 15];
        name[5] = '>';
        int32_t id = duet_bytemap_get(&t->token_map, name, 6);
        if (id < 0) {
            /* llama.cpp falls back to the byte itself as a token. */
            char one = (char)b;
            id = duet_bytemap_get(&t->token_map, &one, 1);
        }
        t->byte_token[b] = id >= 0 ? id : t->unk;
    }
    return DUET_OK;
}

typedef struct {
    int32_t prev, next;
    uint32_t start, n; /* bytes of the escaped text; n == 0 once merged into its left */
} symbol;

typedef struct {
    float score;
    int32_t left, right;
    uint32_t size;
} bigram;

/* Max-heap order: higher score first, then the leftmost pair. */
static int before(const bigram *a, const bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct {
    bigram *v;
    size_t n, cap;
} heap;

static int heap_push(heap *h, bigram b)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        bigram *v = realloc(h->v, cap * sizeof *v);
        if (!v) {
            return 0;
        }
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&b, &h->v[p])) {
            break;
        }
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
    return 1;
}

static bigram heap_pop(heap *h)
{
    bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) {
            break;
        }
        if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c])) {
            c++;
        }
        if (!before(&h->v[c], &last)) {
            break;
        }
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) {
        h->v[i] = last;
    }
    return top;
}

typedef struct {
    const duet_tokenizer *t;
    const char *text;
    symbol *sym;
    heap q;
} session;

static int try_add(session *s, int32_t left, int32_t right)
{
    if (left < 0 || right < 0) {
        return 1;
    }
    uint32_t size = s->sym[left].n + s->sym[right].n;
    int32_t id = duet_bytemap_get(&s->t->token_map, s->text + s->sym[left].start, size);
    if (id < 0) {
        return 1;
    }
    return heap_push(&s->q, (bigram){s->t->scores[id], left, right, size});
}

duet_code tok_spm_encode(const duet_tokenizer *t, const char *text, size_t len, bool prefix_space,
                         tok_ids *out, duet_status *st)
{
    /* Escape: the optional leading space, and every ' ' as U+2581 '▁'. */
    char *buf = malloc(3 * (len + 1));
    symbol *sym = malloc((len + 3) * sizeof *sym);
    session s = {t, buf, sym, {0}};
    duet_code c = DUET_OK;
    if (!buf || !sym) {
        c = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory tokenizing");
        goto done;
    }
    size_t n = 0;
    if (prefix_space) {
        memcpy(buf, "\xe2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            buf[n++] = text[i];
        }
    }
    if (n == 0) {
        goto done;
    }

    /* One symbol per character, by the lead byte's announced length (cut at the end). */
    int32_t n_sym = 0;
    for (size_t off = 0; off < n;) {
        size_t cl = duet_utf8_lead_len((unsigned char)buf[off]);
        if (cl > n - off) {
            cl = n - off;
        }
        sym[n_sym] =
            (symbol){n_sym - 1, off + cl == n ? -1 : n_sym + 1, (uint32_t)off, (uint32_t)cl};
        n_sym++;
        off += cl;
    }
    for (int32_t i = 1; i < n_sym; i++) {
        if (!try_add(&s, i - 1, i)) {
            c = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory tokenizing");
            goto done;
        }
    }
    while (s.q.n) {
        bigram b = heap_pop(&s.q);
        symbol *l = &sym[b.left], *r = &sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) {
            continue; /* stale: one side was merged since */
        }
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) {
            sym[r->next].prev = b.left;
        }
        if (!try_add(&s, l->prev, b.left) || !try_add(&s, b.left, l->next)) {
            c = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory tokenizing");
            goto done;
        }
    }
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        int32_t id = duet_bytemap_get(&t->token_map, buf + sym[i].start, sym[i].n);
        if (id >= 0) {
            if (!tok_ids_push(out, id)) {
                c = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory tokenizing");
                goto done;
            }
            continue;
        }
        for (uint32_t k = 0; k < sym[i].n; k++) {
            int32_t bt = t->byte_token[(unsigned char)buf[sym[i].start + k]];
            if (bt >= 0 && !tok_ids_push(out, bt)) {
                c = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory tokenizing");
                goto done;
            }
        }
    }
done:
    free(buf);
    free(sym);
    free(s.q.v);
    return c;
}
