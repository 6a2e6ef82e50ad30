#include "builtin_vocab.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SentencePiece's word-start marker, U+2581. */
#define SPACE_MARK "\xE2\x96\x81"

/* Token types as GGUF numbers them. */
enum { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, BYTE = 6 };

static const char *const words[] = {
    "the",   "be",     "to",     "of",      "and",     "a",     "in",     "that",   "have",
    "I",     "it",     "for",    "not",     "on",      "with",  "he",     "as",     "you",
    "do",    "at",     "this",   "but",     "his",     "by",    "from",   "they",   "we",
    "say",   "her",    "she",    "or",      "an",      "will",  "my",     "one",    "all",
    "would", "there",  "their",  "what",    "so",      "up",    "out",    "if",     "about",
    "who",   "get",    "which",  "go",      "me",      "when",  "make",   "can",    "like",
    "time",  "no",     "just",   "him",     "know",    "take",  "people", "into",   "year",
    "your",  "good",   "some",   "could",   "them",    "see",   "other",  "than",   "then",
    "now",   "look",   "only",   "come",    "its",     "over",  "think",  "also",   "back",
    "after", "use",    "two",    "how",     "our",     "work",  "first",  "well",   "way",
    "even",  "new",    "want",   "because", "any",     "these", "give",   "day",    "most",
    "us",    "is",     "was",    "are",     "were",    "had",   "has",    "said",   "did",
    "very",  "little", "big",    "happy",   "sad",     "cat",   "dog",    "sun",    "tree",
    "park",  "ball",   "friend", "mom",     "dad",     "home",  "play",   "played", "once",
    "upon",  "story",  "girl",   "boy",     "named",   "lived", "loved",  "wanted", "saw",
    "went",  "found",  "made",   "help",    "hello",   "yes",   "thank",  "please", "why",
    "where", "here",   "water",  "food",    "book",    "read",  "write",  "answer", "question",
    "world", "house",  "school", "night",   "morning", "blue",  "red",    "green",  "long",
    "short", "old",    "young",  "many",    "more",    "again", "always",
};

typedef struct {
    duet_gguf_string *tokens;
    float *scores;
    int32_t *types;
    size_t n, cap;
} vocab_list;

static bool has(const vocab_list *v, const char *s, size_t len)
{
    for (size_t i = 0; i < v->n; i++) {
        if (v->tokens[i].len == len && memcmp(v->tokens[i].ptr, s, len) == 0) {
            return true;
        }
    }
    return false;
}

static bool push(vocab_list *v, const char *s, size_t len, float score, int32_t type)
{
    if (has(v, s, len)) {
        return true;
    }
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 1024;
        duet_gguf_string *t = realloc(v->tokens, cap * sizeof *t);
        if (t) {
            v->tokens = t;
        }
        float *sc = t ? realloc(v->scores, cap * sizeof *sc) : NULL;
        if (sc) {
            v->scores = sc;
        }
        int32_t *ty = sc ? realloc(v->types, cap * sizeof *ty) : NULL;
        if (!ty) {
            return false;
        }
        v->types = ty;
        v->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        return false;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    v->tokens[v->n] = (duet_gguf_string){.ptr = copy, .len = len};
    v->scores[v->n] = score;
    v->types[v->n] = type;
    v->n++;
    return true;
}

static void free_list(vocab_list *v)
{
    for (size_t i = 0; i < v->n; i++) {
        free((char *)v->tokens[i].ptr);
    }
    free(v->tokens);
    free(v->scores);
    free(v->types);
}

static bool build(vocab_list *v)
{
    bool ok = push(v, "<unk>", 5, 0, UNKNOWN) && push(v, "<s>", 3, 0, CONTROL) &&
              push(v, "</s>", 4, 0, CONTROL);
    for (int b = 0; ok && b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        ok = push(v, name, 6, 0, BYTE);
    }
    /* single characters: the starting points of every merge */
    ok = ok && push(v, SPACE_MARK, 3, -1000, NORMAL);
    for (int c = 0x21; ok && c < 0x7F; c++) {
        char s = (char)c;
        ok = push(v, &s, 1, -1000, NORMAL);
    }
    /* each word as "▁word", reached through its prefixes "▁w", "▁wo", ...: SentencePiece
     * merges the best-scoring pair present, and only these pairs are, so the longer a
     * piece the later it forms */
    for (size_t w = 0; ok && w < sizeof words / sizeof words[0]; w++) {
        char piece[64];
        size_t len = strlen(words[w]);
        memcpy(piece, SPACE_MARK, 3);
        memcpy(piece + 3, words[w], len);
        for (size_t k = 1; ok && k <= len; k++) {
            ok = push(v, piece, 3 + k, -(float)k, NORMAL);
        }
    }
    return ok;
}

uint32_t duet_builtin_vocab_write(duet_gguf_writer *w)
{
    vocab_list v = {0};
    if (!build(&v)) {
        free_list(&v);
        return 0;
    }
    duet_gguf_writer_string(w, "tokenizer.ggml.model", "llama");
    duet_gguf_writer_array_string(w, "tokenizer.ggml.tokens", v.tokens, v.n);
    duet_gguf_writer_array_f32(w, "tokenizer.ggml.scores", v.scores, v.n);
    duet_gguf_writer_array_i32(w, "tokenizer.ggml.token_type", v.types, v.n);
    duet_gguf_writer_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    duet_gguf_writer_u32(w, "tokenizer.ggml.bos_token_id", 1);
    duet_gguf_writer_u32(w, "tokenizer.ggml.eos_token_id", 2);
    duet_gguf_writer_bool(w, "tokenizer.ggml.add_bos_token", true);
    duet_gguf_writer_bool(w, "tokenizer.ggml.add_eos_token", false);
    uint32_t n = (uint32_t)v.n;
    free_list(&v);
    return n;
}
