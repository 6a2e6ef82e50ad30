#include "pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* ---- the regexes (facts from llama.cpp's llm_tokenizer_bpe; token ids depend on them) -- */

/* GPT-2's own pattern, also the core of several others. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"

/* Llama 3 (its "(?i:'s|...)" spelled out case by case, as llama.cpp does); Qwen2 differs only
 * in taking digits one at a time instead of up to three. */
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                                                  \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"   \
                    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"        \
                    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* CJK ideographs, U+0800..U+4E00 (sic, upstream's range) and Hangul. */
#define RE_CJK "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

/* DeepSeek LLM's cased letters (upstream lists the ranges instead of using \p{LC}). */
#define RE_DEEPSEEK_LETTERS                                                                        \
    "\\s?[\\x{41}-\\x{5A}\\x{61}-\\x{7A}\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}"     \
    "\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}"         \
    "\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-"         \
    "\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-"     \
    "\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}"        \
    "\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-"       \
    "\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-"         \
    "\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-"        \
    "\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}"        \
    "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}"         \
    "\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-"         \
    "\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-"         \
    "\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}"         \
    "\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-"       \
    "\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"      \
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"         \
    "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+"

/* ASCII and full-width punctuation, curly quotes, U+3000..U+3002. */
#define RE_DEEPSEEK_PUNCT                                                                          \
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+"

enum { MAX_REGEXES = 6 };

typedef struct {
    const char *name; /* of the sequence, for messages */
    const char *regex[MAX_REGEXES];
} regex_set;

static const regex_set SET_DEFAULT = {
    "default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}};
static const regex_set SET_GPT2 = {"gpt-2", {RE_GPT2}};
static const regex_set SET_LLAMA3 = {"llama3", {RE_LLAMA3}};
static const regex_set SET_QWEN2 = {"qwen2", {RE_QWEN2}};
static const regex_set SET_FALCON = {"falcon",
                                     {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}};
static const regex_set SET_STARCODER = {"starcoder", {"\\p{N}", RE_GPT2}};
static const regex_set SET_DEEPSEEK_LLM = {
    "deepseek-llm",
    {"[\\r\\n]", RE_DEEPSEEK_LETTERS, RE_DEEPSEEK_PUNCT, "\\s+$", RE_CJK, "\\p{N}+"}};
static const regex_set SET_DEEPSEEK_CODER = {
    "deepseek-coder", {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}"}};

typedef struct {
    const char *name;
    const regex_set *set;
    duet_pre_traits traits; /* ignore_merges, clean_spaces, add_bos */
} pre_entry;

/* tokenizer.ggml.pre values and what llama.cpp does with each (same regexes, same flags). */
static const pre_entry PRES[] = {
    {"default", &SET_DEFAULT, {false, true, false}},
    {"llama3", &SET_LLAMA3, {true, true, true}},
    {"llama-v3", &SET_LLAMA3, {true, true, true}},
    {"llama-bpe", &SET_LLAMA3, {true, true, true}},
    {"falcon3", &SET_LLAMA3, {true, true, true}},
    {"dbrx", &SET_LLAMA3, {false, true, false}},
    {"smaug-bpe", &SET_LLAMA3, {false, true, false}},
    {"qwen2", &SET_QWEN2, {false, false, false}},
    {"deepseek-r1-qwen", &SET_QWEN2, {false, false, false}},
    {"stablelm2", &SET_QWEN2, {false, true, false}},
    {"megrez", &SET_QWEN2, {false, true, false}},
    {"deepseek-llm", &SET_DEEPSEEK_LLM, {false, false, false}},
    {"deepseek-coder", &SET_DEEPSEEK_CODER, {false, false, false}},
    {"falcon", &SET_FALCON, {false, true, false}},
    {"gpt-2", &SET_GPT2, {false, true, false}},
    {"phi-2", &SET_GPT2, {false, true, false}},
    {"roberta-bpe", &SET_GPT2, {false, true, false}},
    {"gigachat", &SET_GPT2, {false, true, false}},
    {"mpt", &SET_GPT2, {false, true, false}},
    {"olmo", &SET_GPT2, {false, true, false}},
    {"jais", &SET_GPT2, {false, true, false}},
    {"starcoder", &SET_STARCODER, {false, true, false}},
    {"refact", &SET_STARCODER, {false, true, false}},
    {"command-r", &SET_STARCODER, {false, false, false}},
    {"smollm", &SET_STARCODER, {false, false, false}},
    {"codeshell", &SET_STARCODER, {false, true, false}},
    {"exaone", &SET_STARCODER, {false, true, false}},
    {"minerva-7b", &SET_STARCODER, {false, true, false}},
};

static const pre_entry *find_pre(const char *name)
{
    if (!name || !*name) {
        name = "default";
    }
    for (size_t i = 0; i < sizeof PRES / sizeof PRES[0]; i++) {
        if (strcmp(PRES[i].name, name) == 0) {
            return &PRES[i];
        }
    }
    return NULL;
}

bool duet_pre_lookup(const char *name, duet_pre_traits *traits)
{
    const pre_entry *e = find_pre(name);
    if (e && traits) {
        *traits = e->traits;
    }
    return e != NULL;
}

const char *duet_pre_supported(void)
{
    return "default, llama3, llama-v3, llama-bpe, falcon3, dbrx, smaug-bpe, qwen2, "
           "deepseek-r1-qwen, stablelm2, megrez, deepseek-llm, deepseek-coder, falcon, gpt-2, "
           "phi-2, roberta-bpe, gigachat, mpt, olmo, jais, starcoder, refact, command-r, "
           "smollm, codeshell, exaone, minerva-7b";
}

/* ---- compiled sequences ---------------------------------------------------------------- */

typedef struct {
    pcre2_code *code;
    bool plain_space; /* no \p{L}/\p{N}/\p{P}: llama.cpp matches it with wide spaces as \v */
} compiled_regex;

struct duet_pretok {
    size_t n;
    compiled_regex re[MAX_REGEXES];
};

void duet_pretok_free(duet_pretok *p)
{
    if (!p) {
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        pcre2_code_free(p->re[i].code);
    }
    free(p);
}

duet_code duet_pretok_create(const char *name, duet_pretok **out, duet_status *st)
{
    *out = NULL;
    const pre_entry *e = find_pre(name);
    if (!e) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "unknown pre-tokenizer '%s' (tokenizer.ggml.pre); supported: %s",
                               name, duet_pre_supported());
    }
    duet_pretok *p = calloc(1, sizeof *p);
    if (!p) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < MAX_REGEXES && e->set->regex[i]; i++) {
        const char *re = e->set->regex[i];
        int err;
        PCRE2_SIZE where;
        /* MATCH_INVALID_UTF: invalid bytes simply never match (no error, no crash). */
        pcre2_code *code =
            pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY,
                          &err, &where, NULL);
        if (!code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            duet_pretok_free(p);
            return duet_status_set(st, DUET_INTERNAL,
                                   "pre-tokenizer '%s': regex %zu does not compile at %zu: %s",
                                   e->set->name, i + 1, (size_t)where, (const char *)msg);
        }
        /* JIT is an optimisation: matching works (slower) without it. */
        (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
        p->re[i].code = code;
        p->re[i].plain_space =
            !strstr(re, "\\p{L}") && !strstr(re, "\\p{N}") && !strstr(re, "\\p{P}");
        p->n = i + 1;
    }
    *out = p;
    return DUET_OK;
}

/* ---- splitting ------------------------------------------------------------------------- */

void duet_spans_free(duet_spans *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static int spans_push(duet_spans *s, size_t off, size_t len)
{
    if (len == 0) {
        return 1;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        duet_span *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            return 0;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n].off = off;
    s->v[s->n].len = len;
    s->n++;
    return 1;
}

typedef struct {
    pcre2_match_data *md;
    char *tbuf;   /* the word with wide spaces as \v (plain_space regexes only) */
    size_t *tmap; /* tbuf offset -> word offset */
    size_t tcap;
} scratch;

/* Rewrites word into s->tbuf with every non-ASCII white space character as "\v", keeping
 * the offset map; returns its length, or (size_t)-1 when there is none (use word as is)
 * or memory ran out (*oom set). */
static size_t respace(scratch *s, const char *word, size_t len, int *oom)
{
    size_t i = 0;
    uint32_t cp;
    for (; i < len; i++) {
        size_t n;
        if ((unsigned char)word[i] >= 0xC2 && (n = duet_utf8_decode(word + i, len - i, &cp)) &&
            duet_utf8_is_wide_space(cp)) {
            break;
        }
    }
    if (i == len) {
        return (size_t)-1;
    }
    if (s->tcap < len + 1) {
        char *b = realloc(s->tbuf, len + 1);
        if (!b) {
            *oom = 1;
            return (size_t)-1;
        }
        s->tbuf = b;
        size_t *m = realloc(s->tmap, (len + 1) * sizeof *m);
        if (!m) {
            *oom = 1;
            return (size_t)-1;
        }
        s->tmap = m;
        s->tcap = len + 1;
    }
    size_t t = 0;
    for (i = 0; i < len;) {
        size_t n = duet_utf8_decode(word + i, len - i, &cp);
        if (n && duet_utf8_is_wide_space(cp)) {
            s->tmap[t] = i;
            s->tbuf[t++] = '\v';
            i += n;
            continue;
        }
        n = n ? n : 1;
        for (size_t k = 0; k < n; k++) {
            s->tmap[t] = i + k;
            s->tbuf[t++] = word[i + k];
        }
        i += n;
    }
    s->tmap[t] = len;
    return t;
}

/* Splits word (at base in the text) by one regex into out: matches and the gaps between. */
static duet_code split_word(const compiled_regex *re, scratch *s, const char *word, size_t len,
                            size_t base, duet_spans *out, duet_status *st)
{
    const char *subj = word;
    size_t slen = len;
    const size_t *map = NULL;
    if (re->plain_space) {
        int oom = 0;
        size_t t = respace(s, word, len, &oom);
        if (oom) {
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory pre-tokenizing");
        }
        if (t != (size_t)-1) {
            subj = s->tbuf;
            slen = t;
            map = s->tmap;
        }
    }
    size_t pos = 0, last = 0;
    uint32_t opts = 0;
    while (pos < slen) {
        int rc = pcre2_match(re->code, (PCRE2_SPTR)subj, slen, pos, opts, s->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) {
            break;
        }
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !(opts & PCRE2_NO_JIT)) {
            opts |= PCRE2_NO_JIT; /* the interpreter keeps its frames on the heap */
            continue;
        }
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return duet_status_set(st, DUET_INTERNAL, "pre-tokenizer regex failed: %s",
                                   (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) {
            /* An empty match splits nothing; step over one character. */
            size_t n = duet_utf8_valid_prefix(subj + ms, slen - ms);
            pos = ms + (n ? n : 1);
            continue;
        }
        size_t a = map ? map[last] : last, b = map ? map[ms] : ms, c = map ? map[me] : me;
        if (!spans_push(out, base + a, b - a) || !spans_push(out, base + b, c - b)) {
            return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory pre-tokenizing");
        }
        last = pos = me;
    }
    size_t a = map ? map[last] : last;
    if (!spans_push(out, base + a, len - a)) {
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory pre-tokenizing");
    }
    return DUET_OK;
}

duet_code duet_pretok_split(const duet_pretok *p, const char *text, size_t len, duet_spans *out,
                            duet_status *st)
{
    if (len == 0) {
        return DUET_OK;
    }
    scratch s = {0};
    duet_spans a = {0}, b = {0};
    duet_code c = DUET_OK;
    s.md = pcre2_match_data_create(1, NULL);
    if (!s.md || !spans_push(&a, 0, len)) {
        c = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory pre-tokenizing");
        goto done;
    }
    for (size_t r = 0; r < p->n; r++) {
        b.n = 0;
        for (size_t i = 0; i < a.n && c == DUET_OK; i++) {
            c = split_word(&p->re[r], &s, text + a.v[i].off, a.v[i].len, a.v[i].off, &b, st);
        }
        if (c != DUET_OK) {
            goto done;
        }
        duet_spans t = a;
        a = b;
        b = t;
    }
    for (size_t i = 0; i < a.n; i++) {
        if (!spans_push(out, a.v[i].off, a.v[i].len)) {
            c = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory pre-tokenizing");
            break;
        }
    }
done:
    pcre2_match_data_free(s.md);
    free(s.tbuf);
    free(s.tmap);
    duet_spans_free(&a);
    duet_spans_free(&b);
    return c;
}
