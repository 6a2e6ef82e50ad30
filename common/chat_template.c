/* Chat template detection and rendering (see chat_template.h for the families). */
#include "chat_template.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const template_names[DUET_TEMPLATE_COUNT_] = {
    [DUET_TEMPLATE_PLAIN] = "plain",
    [DUET_TEMPLATE_CHATML] = "chatml",
    [DUET_TEMPLATE_LLAMA2] = "llama2",
    [DUET_TEMPLATE_LLAMA2_SYS] = "llama2-sys",
    [DUET_TEMPLATE_LLAMA2_SYS_BOS] = "llama2-sys-bos",
    [DUET_TEMPLATE_LLAMA2_SYS_STRIP] = "llama2-sys-strip",
    [DUET_TEMPLATE_LLAMA3] = "llama3",
    [DUET_TEMPLATE_MISTRAL_V1] = "mistral-v1",
    [DUET_TEMPLATE_MISTRAL_V3] = "mistral-v3",
    [DUET_TEMPLATE_MISTRAL_V3_TEKKEN] = "mistral-v3-tekken",
    [DUET_TEMPLATE_MISTRAL_V7] = "mistral-v7",
    [DUET_TEMPLATE_MISTRAL_V7_TEKKEN] = "mistral-v7-tekken",
    [DUET_TEMPLATE_ZEPHYR] = "zephyr",
    [DUET_TEMPLATE_ZEPHYR_ENDOFTEXT] = "zephyr-endoftext",
    [DUET_TEMPLATE_GEMMA] = "gemma",
    [DUET_TEMPLATE_PHI3] = "phi3",
    [DUET_TEMPLATE_PHI4] = "phi4",
};

const char *duet_template_name(duet_template_kind k)
{
    if ((unsigned)k >= DUET_TEMPLATE_COUNT_) {
        return "unknown";
    }
    return template_names[k];
}

bool duet_template_from_name(const char *name, duet_template_kind *out)
{
    if (!name) {
        return false;
    }
    for (int k = 0; k < DUET_TEMPLATE_COUNT_; k++) {
        if (strcmp(name, template_names[k]) == 0) {
            if (out) {
                *out = (duet_template_kind)k;
            }
            return true;
        }
    }
    return false;
}

/* ---- detection ---- */

static bool has(const char *text, const char *needle)
{
    return strstr(text, needle) != NULL;
}

/* The [INST] families, told apart the way llama.cpp does: Mistral's official templates by
 * their system-prompt and tool markers, the Llama 2 variants by how they treat the system
 * message, BOS and white space. */
static duet_template_kind detect_inst(const char *t)
{
    if (has(t, "[SYSTEM_PROMPT]")) {
        return DUET_TEMPLATE_MISTRAL_V7;
    }
    if (has(t, "' [INST] ' + system_message") || has(t, "[AVAILABLE_TOOLS]")) {
        if (has(t, " [INST]")) {
            return DUET_TEMPLATE_MISTRAL_V1;
        }
        if (has(t, "\"[INST]\"")) {
            return DUET_TEMPLATE_MISTRAL_V3_TEKKEN;
        }
        return DUET_TEMPLATE_MISTRAL_V3;
    }
    if (has(t, "content.strip()")) {
        return DUET_TEMPLATE_LLAMA2_SYS_STRIP;
    }
    if (has(t, "bos_token + '[INST]")) {
        return DUET_TEMPLATE_LLAMA2_SYS_BOS;
    }
    if (has(t, "<<SYS>>")) {
        return DUET_TEMPLATE_LLAMA2_SYS;
    }
    return DUET_TEMPLATE_LLAMA2;
}

duet_template_kind duet_template_detect(const char *t)
{
    duet_template_kind named;
    if (!t || !*t) {
        return DUET_TEMPLATE_PLAIN;
    }
    if (duet_template_from_name(t, &named)) {
        return named;
    }
    /* Order matters: more specific markers are tested before the ones they contain. */
    if (has(t, "<|im_start|>")) {
        return has(t, "<|im_sep|>") ? DUET_TEMPLATE_PHI4 : DUET_TEMPLATE_CHATML;
    }
    if (strncmp(t, "mistral", 7) == 0 || has(t, "[INST]")) {
        return detect_inst(t);
    }
    if (has(t, "<|assistant|>") && has(t, "<|end|>")) {
        return DUET_TEMPLATE_PHI3;
    }
    if (has(t, "<|user|>") && has(t, "<|endoftext|>")) {
        return DUET_TEMPLATE_ZEPHYR_ENDOFTEXT;
    }
    if (has(t, "<|user|>") && has(t, "<|assistant|>") && (has(t, "eos_token") || has(t, "</s>"))) {
        return DUET_TEMPLATE_ZEPHYR;
    }
    if (has(t, "<start_of_turn>")) {
        return DUET_TEMPLATE_GEMMA;
    }
    if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>")) {
        return DUET_TEMPLATE_LLAMA3;
    }
    return DUET_TEMPLATE_PLAIN;
}

/* ---- output buffer ---- */

typedef struct {
    char *buf;
    size_t len;
    size_t cap;
    bool failed; /* out of memory: later appends are dropped, render reports it once */
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->failed || n == 0) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->failed = true;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->buf, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->buf = p;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

typedef enum { TRIM_NONE, TRIM_LEFT, TRIM_BOTH } trim_mode;

/* The C locale's white space, which is what llama.cpp's trim() removes. */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Appends content, trimmed as asked. An open (continued) message keeps its trailing
 * white space: the model goes on from exactly that text. */
static void sb_content(sbuf *b, const char *s, trim_mode trim, bool open)
{
    size_t start = 0;
    size_t end = strlen(s);
    if (trim != TRIM_NONE) {
        while (start < end && is_space(s[start])) {
            start++;
        }
    }
    if (trim == TRIM_BOTH && !open) {
        while (end > start && is_space(s[end - 1])) {
            end--;
        }
    }
    sb_put(b, s + start, end - start);
}

static const char *role_name(duet_chat_role r)
{
    switch (r) {
    case DUET_ROLE_SYSTEM:
        return "system";
    case DUET_ROLE_USER:
        return "user";
    case DUET_ROLE_ASSISTANT:
        return "assistant";
    }
    return "";
}

/* ---- families ---- */

/* Families where every turn is <pre>role<post>content<end>, whatever the role. */
typedef struct {
    const char *pre;
    const char *post;
    const char *end;
    const char *prompt;       /* the generation prompt */
    const char *const *roles; /* NULL: role_name() */
    trim_mode trim;
} turn_format;

static const char *const plain_roles[] = {"System", "User", "Assistant"};

static const turn_format fmt_plain = {"", ": ", "\n", "Assistant:", plain_roles, TRIM_NONE};
static const turn_format fmt_chatml = {
    "<|im_start|>", "\n", "<|im_end|>\n", "<|im_start|>assistant\n", NULL, TRIM_NONE};
static const turn_format fmt_llama3 = {"<|start_header_id|>",
                                       "<|end_header_id|>\n\n",
                                       "<|eot_id|>",
                                       "<|start_header_id|>assistant<|end_header_id|>\n\n",
                                       NULL,
                                       TRIM_BOTH};
static const turn_format fmt_phi3 = {"<|", "|>\n", "<|end|>\n", "<|assistant|>\n", NULL, TRIM_NONE};
static const turn_format fmt_phi4 = {
    "<|im_start|>", "<|im_sep|>", "<|im_end|>", "<|im_start|>assistant<|im_sep|>", NULL, TRIM_NONE};
static const turn_format fmt_zephyr = {"<|", "|>\n", "</s>\n", "<|assistant|>\n", NULL, TRIM_NONE};
static const turn_format fmt_zephyr_eot = {"<|", "|>\n",   "<|endoftext|>\n", "<|assistant|>\n",
                                           NULL, TRIM_NONE};

static void render_turns(sbuf *b, const turn_format *f, const duet_chat_message *m, size_t n,
                         bool add_gen, bool cont)
{
    for (size_t i = 0; i < n; i++) {
        bool open = cont && i == n - 1;
        sb_puts(b, f->pre);
        sb_puts(b, f->roles ? f->roles[m[i].role] : role_name(m[i].role));
        sb_puts(b, f->post);
        sb_content(b, m[i].content, f->trim, open);
        if (!open) {
            sb_puts(b, f->end);
        }
    }
    if (add_gen) {
        sb_puts(b, f->prompt);
    }
}

/* Llama 2 and its variants. The opening "[INST] " is written up front (BOS comes from the
 * tokenizer); each assistant answer closes the turn with "</s>". */
static void render_llama2(sbuf *b, duet_template_kind k, const duet_chat_message *m, size_t n,
                          bool cont)
{
    bool sys_block = k != DUET_TEMPLATE_LLAMA2;
    bool bos_inside = k == DUET_TEMPLATE_LLAMA2_SYS_BOS;
    trim_mode trim = k == DUET_TEMPLATE_LLAMA2_SYS_STRIP ? TRIM_BOTH : TRIM_NONE;
    bool inside_turn = true;
    sb_puts(b, "[INST] ");
    for (size_t i = 0; i < n; i++) {
        bool open = cont && i == n - 1;
        if (!inside_turn) {
            inside_turn = true;
            sb_puts(b, bos_inside ? "<s>[INST] " : "[INST] ");
        }
        switch (m[i].role) {
        case DUET_ROLE_SYSTEM:
            if (sys_block) {
                sb_puts(b, "<<SYS>>\n");
                sb_content(b, m[i].content, trim, false);
                sb_puts(b, "\n<</SYS>>\n\n");
            } else {
                sb_content(b, m[i].content, trim, false);
                sb_puts(b, "\n");
            }
            break;
        case DUET_ROLE_USER:
            sb_content(b, m[i].content, trim, false);
            sb_puts(b, " [/INST]");
            break;
        case DUET_ROLE_ASSISTANT:
            sb_content(b, m[i].content, trim, open);
            if (!open) {
                sb_puts(b, "</s>");
            }
            inside_turn = false;
            break;
        }
    }
}

/* Mistral's official v1 / v3 / v3-tekken formats: they differ only in the spaces around
 * the [INST] tags and whether the answer is trimmed. */
static void render_mistral(sbuf *b, duet_template_kind k, const duet_chat_message *m, size_t n,
                           bool cont)
{
    const char *lead = k == DUET_TEMPLATE_MISTRAL_V1 ? " " : "";
    const char *trail = k == DUET_TEMPLATE_MISTRAL_V3_TEKKEN ? "" : " ";
    trim_mode answer_trim = k == DUET_TEMPLATE_MISTRAL_V3 ? TRIM_BOTH : TRIM_NONE;
    bool inside_turn = false;
    for (size_t i = 0; i < n; i++) {
        bool open = cont && i == n - 1;
        if (!inside_turn) {
            sb_puts(b, lead);
            sb_puts(b, "[INST]");
            sb_puts(b, trail);
            inside_turn = true;
        }
        switch (m[i].role) {
        case DUET_ROLE_SYSTEM:
            sb_puts(b, m[i].content);
            sb_puts(b, "\n\n");
            break;
        case DUET_ROLE_USER:
            sb_puts(b, m[i].content);
            sb_puts(b, lead);
            sb_puts(b, "[/INST]");
            break;
        case DUET_ROLE_ASSISTANT:
            sb_puts(b, trail);
            sb_content(b, m[i].content, answer_trim, open);
            if (!open) {
                sb_puts(b, "</s>");
            }
            inside_turn = false;
            break;
        }
    }
}

static void render_mistral_v7(sbuf *b, duet_template_kind k, const duet_chat_message *m, size_t n,
                              bool cont)
{
    const char *sp = k == DUET_TEMPLATE_MISTRAL_V7 ? " " : "";
    for (size_t i = 0; i < n; i++) {
        bool open = cont && i == n - 1;
        switch (m[i].role) {
        case DUET_ROLE_SYSTEM:
            sb_puts(b, "[SYSTEM_PROMPT]");
            sb_puts(b, sp);
            sb_puts(b, m[i].content);
            sb_puts(b, "[/SYSTEM_PROMPT]");
            break;
        case DUET_ROLE_USER:
            sb_puts(b, "[INST]");
            sb_puts(b, sp);
            sb_puts(b, m[i].content);
            sb_puts(b, "[/INST]");
            break;
        case DUET_ROLE_ASSISTANT:
            sb_puts(b, sp);
            sb_puts(b, m[i].content);
            if (!open) {
                sb_puts(b, "</s>");
            }
            break;
        }
    }
}

/* Gemma has no system role: system texts (trimmed, concatenated) wait for the next user
 * turn and open it, followed by a blank line. */
static void render_gemma(sbuf *b, const duet_chat_message *m, size_t n, bool add_gen, bool cont)
{
    sbuf sys = {0};
    for (size_t i = 0; i < n; i++) {
        bool open = cont && i == n - 1;
        if (m[i].role == DUET_ROLE_SYSTEM) {
            sb_content(&sys, m[i].content, TRIM_BOTH, false);
            b->failed |= sys.failed;
            continue;
        }
        bool model = m[i].role == DUET_ROLE_ASSISTANT;
        sb_puts(b, model ? "<start_of_turn>model\n" : "<start_of_turn>user\n");
        if (!model && sys.len > 0) {
            sb_put(b, sys.buf, sys.len);
            sb_puts(b, "\n\n");
            sys.len = 0;
        }
        sb_content(b, m[i].content, TRIM_BOTH, open);
        if (!open) {
            sb_puts(b, "<end_of_turn>\n");
        }
    }
    free(sys.buf);
    if (add_gen) {
        sb_puts(b, "<start_of_turn>model\n");
    }
}

/* ---- rendering ---- */

static duet_code check_messages(const duet_chat_message *msgs, size_t n, bool add_gen, bool cont,
                                duet_status *st)
{
    if (!msgs || n == 0) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "chat template: no messages to render");
    }
    if (add_gen && cont) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "chat template: add_generation_prompt and continue_last are "
                               "exclusive");
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned)msgs[i].role > DUET_ROLE_ASSISTANT) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "chat template: message %zu has invalid role %d", i,
                                   (int)msgs[i].role);
        }
        if (!msgs[i].content) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT,
                                   "chat template: message %zu has no content", i);
        }
    }
    if (cont && msgs[n - 1].role != DUET_ROLE_ASSISTANT) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT,
                               "chat template: continue_last needs the last message to be the "
                               "assistant's, not %s",
                               role_name(msgs[n - 1].role));
    }
    return DUET_OK;
}

duet_code duet_template_render(duet_template_kind k, const duet_chat_message *msgs, size_t n,
                               bool add_gen, bool cont, char **out, duet_status *st)
{
    if (!out) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "chat template: no output pointer");
    }
    *out = NULL;
    if ((unsigned)k >= DUET_TEMPLATE_COUNT_) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "chat template: unknown kind %d", (int)k);
    }
    duet_code rc = check_messages(msgs, n, add_gen, cont, st);
    if (rc != DUET_OK) {
        return rc;
    }

    sbuf b = {0};
    switch (k) {
    case DUET_TEMPLATE_PLAIN:
        render_turns(&b, &fmt_plain, msgs, n, add_gen, cont);
        break;
    case DUET_TEMPLATE_CHATML:
        render_turns(&b, &fmt_chatml, msgs, n, add_gen, cont);
        break;
    case DUET_TEMPLATE_LLAMA3:
        render_turns(&b, &fmt_llama3, msgs, n, add_gen, cont);
        break;
    case DUET_TEMPLATE_PHI3:
        render_turns(&b, &fmt_phi3, msgs, n, add_gen, cont);
        break;
    case DUET_TEMPLATE_PHI4:
        render_turns(&b, &fmt_phi4, msgs, n, add_gen, cont);
        break;
    case DUET_TEMPLATE_ZEPHYR:
        render_turns(&b, &fmt_zephyr, msgs, n, add_gen, cont);
        break;
    case DUET_TEMPLATE_ZEPHYR_ENDOFTEXT:
        render_turns(&b, &fmt_zephyr_eot, msgs, n, add_gen, cont);
        break;
    case DUET_TEMPLATE_LLAMA2:
    case DUET_TEMPLATE_LLAMA2_SYS:
    case DUET_TEMPLATE_LLAMA2_SYS_BOS:
    case DUET_TEMPLATE_LLAMA2_SYS_STRIP:
        render_llama2(&b, k, msgs, n, cont);
        break;
    case DUET_TEMPLATE_MISTRAL_V1:
    case DUET_TEMPLATE_MISTRAL_V3:
    case DUET_TEMPLATE_MISTRAL_V3_TEKKEN:
        render_mistral(&b, k, msgs, n, cont);
        break;
    case DUET_TEMPLATE_MISTRAL_V7:
    case DUET_TEMPLATE_MISTRAL_V7_TEKKEN:
        render_mistral_v7(&b, k, msgs, n, cont);
        break;
    case DUET_TEMPLATE_GEMMA:
        render_gemma(&b, msgs, n, add_gen, cont);
        break;
    case DUET_TEMPLATE_COUNT_:
        break;
    }

    /* An empty rendering (e.g. gemma with only a system text) still yields a string. */
    if (!b.failed && !b.buf) {
        b.buf = calloc(1, 1);
        b.failed = b.buf == NULL;
    }
    if (b.failed) {
        free(b.buf);
        return duet_status_set(st, DUET_RESOURCE_EXHAUSTED,
                               "chat template: out of memory rendering %zu messages", n);
    }
    *out = b.buf;
    duet_status_clear(st);
    return DUET_OK;
}
