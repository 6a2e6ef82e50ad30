/* Byte-level BPE encoding as llama.cpp's llm_tokenizer_bpe does it: the pre-tokenizer splits
 * the text into words; each word's bytes become GPT-2's printable code points, one symbol
 * per byte; the adjacent pair with the lowest merge rank is merged first (leftmost on
 * ties), repeatedly; every final symbol is its token. */
#include <stdlib.h>
#include <string.h>

#include "gpt2_bytes.h"
#include "tokenizer_internal.h"

duet_code tok_bpe_prepare(duet_tokenizer *t, const duet_vocab *v, duet_status *st)
{
    size_t bytes = (size_t)(v->n_merges ? v->merge_off[v->n_merges] : 0);
    t->merge_text = malloc(bytes + 1);
    if (!t->merge_text) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory (merges)");
    }
    if (bytes) {
        memcpy(t->merge_text, v->merge_text, bytes);
    }
    duet_code c = duet_bytemap_init(&t->merge_map, v->n_merges, st);
    if (c != DUET_OK) {
        return c;
    }
    for (uint32_t i = 0; i < v->n_merges; i++) {
        size_t off = (size_t)v->merge_off[i], len = (size_t)(v->merge_off[i + 1] - off);
        const char *m = t->merge_text + off;
        /* Split at the first space after the first byte, as llama.cpp does; a merge without
         * one can never apply. The first of duplicate merges keeps its rank. */
        const char *sp = len > 1 ? memchr(m + 1, ' ', len - 1) : NULL;
        if (!sp) {
            continue;
        }
        c = duet_bytemap_put(&t->merge_map, m, len, (uint32_t)(sp - m), (int32_t)i, false, st);
        if (c != DUET_OK) {
            return c;
        }
    }
    return duet_pretok_create(v->pre, &t->pretok, st);
}

typedef struct {
    int32_t prev, next;
    uint32_t start, n; /* bytes of the encoded word; n == 0 once merged into its left */
} symbol;

typedef struct {
    int32_t rank;
    int32_t left, right;
    uint32_t size;
} bigram;

/* Min-heap order: lower rank first, then the leftmost pair. */
static int before(const bigram *a, const bigram *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
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
    char *word; /* the encoded word */
    size_t word_cap;
    symbol *sym;
    size_t sym_cap;
    heap q;
} session;

static int try_add(session *s, int32_t left, int32_t right)
{
    if (left < 0 || right < 0) {
        return 1;
    }
    const symbol *l = &s->sym[left], *r = &s->sym[right];
    int32_t rank =
        duet_bytemap_get_pair(&s->t->merge_map, s->word + l->start, l->n, s->word + r->start, r->n);
    if (rank < 0) {
        return 1;
    }
    return heap_push(&s->q, (bigram){rank, left, right, l->n + r->n});
}

static int emit_symbol(session *s, const symbol *y, tok_ids *out)
{
    const duet_tokenizer *t = s->t;
    int32_t id = duet_bytemap_get(&t->token_map, s->word + y->start, y->n);
    if (id >= 0) {
        return tok_ids_push(out, id);
    }
    /* Not a token: one token per byte. A byte the vocabulary has no token for is dropped,
     * as llama.cpp drops it (many vocabularies lack 0xC0, 0xC1, 0xF5..0xFF, which valid
     * UTF-8 never contains; BPE's unknown token is often EOS, which must not appear). */
    for (uint32_t k = 0; k < y->n;) {
        unsigned char c0 = (unsigned char)s->word[y->start + k];
        size_t n = c0 < 0x80 ? 1 : 2; /* encoded bytes are U+0021..U+0143 */
        int32_t bt = duet_bytemap_get(&t->token_map, s->word + y->start + k, n);
        if (bt >= 0 && !tok_ids_push(out, bt)) {
            return 0;
        }
        k += (uint32_t)n;
    }
    return 1;
}

/* Encodes one word (raw bytes) into out. */
static int encode_word(session *s, const char *raw, size_t len, tok_ids *out)
{
    if (s->word_cap < 2 * len) {
        char *w = realloc(s->word, 2 * len);
        if (!w) {
            return 0;
        }
        s->word = w;
        s->word_cap = 2 * len;
    }
    if (s->sym_cap < len) {
        symbol *y = realloc(s->sym, len * sizeof *y);
        if (!y) {
            return 0;
        }
        s->sym = y;
        s->sym_cap = len;
    }
    uint32_t wn = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t n = (uint32_t)duet_gpt2_byte_utf8((uint8_t)raw[i], s->word + wn);
        s->sym[i] = (symbol){(int32_t)i - 1, i + 1 == len ? -1 : (int32_t)i + 1, wn, n};
        wn += n;
    }
    const duet_tokenizer *t = s->t;
    if (t->ignore_merges) {
        int32_t id = duet_bytemap_get(&t->token_map, s->word, wn);
        if (id >= 0) {
            return tok_ids_push(out, id);
        }
    }
    s->q.n = 0;
    for (size_t i = 1; i < len; i++) {
        if (!try_add(s, (int32_t)i - 1, (int32_t)i)) {
            return 0;
        }
    }
    while (s->q.n) {
        bigram b = heap_pop(&s->q);
        symbol *l = &s->sym[b.left], *r = &s->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) {
            continue; /* stale: one side was merged since */
        }
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) {
            s->sym[r->next].prev = b.left;
        }
        if (!try_add(s, l->prev, b.left) || !try_add(s, b.left, l->next)) {
            return 0;
        }
    }
    for (int32_t i = 0; i != -1; i = s->sym[i].next) {
        if (!emit_symbol(s, &s->sym[i], out)) {
            return 0;
        }
    }
    return 1;
}

duet_code tok_bpe_encode(const duet_tokenizer *t, const char *text, size_t len, tok_ids *out,
                         duet_status *st)
{
    duet_spans words = {0};
    duet_code c = duet_pretok_split(t->pretok, text, len, &words, st);
    session s = {t, NULL, 0, NULL, 0, {0}};
    for (size_t i = 0; i < words.n && c == DUET_OK; i++) {
        if (!encode_word(&s, text + words.v[i].off, words.v[i].len, out)) {
            c = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory tokenizing");
        }
    }
    duet_spans_free(&words);
    free(s.word);
    free(s.sym);
    free(s.q.v);
    return c;
}
