/* Chat templates: turning a list of chat messages into the prompt text a model was
 * trained on, without running Jinja.
 *
 * A GGUF model carries its template as Jinja text (tokenizer.chat_template). Like
 * llama.cpp's built-in templates, duet recognises the family from tell-tale substrings of
 * that text (duet_template_detect) and renders each family with fixed code
 * (duet_template_render). For the same messages the output is byte-for-byte what
 * llama.cpp's llama_chat_apply_template gives for that family, except where noted below.
 *
 * Families and what one turn looks like ("..." is the message content):
 *   plain            System: ...\n  User: ...\n  Assistant: ...\n   prompt "Assistant:"
 *                    (duet's fallback for models with no or an unknown template)
 *   chatml           <|im_start|>role\n...<|im_end|>\n     prompt "<|im_start|>assistant\n"
 *                    (Qwen, SmolLM, OpenHermes and many others)
 *   llama3           <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>  (content trimmed)
 *   llama2           [INST] ... [/INST]...</s>[INST] ... [/INST]   (system: "...\n" before the
 *                    first user text; Mistral v0.1/v0.2's own template)
 *   llama2-sys       same, system as "<<SYS>>\n...\n<</SYS>>\n\n"
 *   llama2-sys-bos   same as llama2-sys, later turns start "<s>[INST] "
 *   llama2-sys-strip same as llama2-sys, every content trimmed (Meta's Llama 2 chat)
 *   mistral-v1       " [INST] sys\n\nuser [/INST] assistant</s>"
 *   mistral-v3       "[INST] sys\n\nuser[/INST] assistant</s>"  (assistant content trimmed)
 *   mistral-v3-tekken "[INST]sys\n\nuser[/INST]assistant</s>"
 *   mistral-v7       "[SYSTEM_PROMPT] sys[/SYSTEM_PROMPT][INST] user[/INST] assistant</s>"
 *   mistral-v7-tekken the same without the spaces after the tags
 *   zephyr           <|role|>\n...</s>\n          prompt "<|assistant|>\n"
 *                    (HuggingFaceH4 Zephyr, TinyLlama-Chat: their eos_token is "</s>")
 *   zephyr-endoftext <|role|>\n...<|endoftext|>\n prompt "<|assistant|>\n"
 *                    (what llama.cpp names "zephyr"; for Zephyr-style models whose EOS is
 *                    <|endoftext|>, e.g. StableLM 2 Zephyr. Detected only when the template
 *                    writes <|endoftext|> literally: one that writes eos_token is taken for
 *                    "zephyr", so force this one by name for such a model)
 *   gemma            <start_of_turn>user\n...<end_of_turn>\n, assistant role written "model",
 *                    content trimmed; system text is folded into the next user turn as
 *                    "system\n\nuser" (text with no later user turn is dropped, as in llama.cpp)
 *   phi3             <|role|>\n...<|end|>\n       prompt "<|assistant|>\n"
 *   phi4             <|im_start|>role<|im_sep|>...<|im_end|>  prompt
 * "<|im_start|>assistant<|im_sep|>"
 *
 * The [INST] families (llama2*, mistral*) have no separate generation prompt: a user turn
 * already ends with "[/INST]", after which the model answers; add_generation_prompt changes
 * nothing for them (as in llama.cpp).
 *
 * BOS and other control texts: the renderer never writes the BOS text at the start of the
 * prompt, whether or not the Jinja text begins with {{ bos_token }}; the tokenizer adds BOS
 * when the model asks for it (tokenizer.ggml.add_bos_token), exactly as llama.cpp does.
 * Control tokens inside the conversation ARE written as text ("</s>", "<|im_end|>",
 * "<|eot_id|>", and the "<s>" that llama2-sys-bos puts before later turns), so the prompt
 * must be tokenized with special-token parsing on for them to become their control ids.
 *
 * Differences from llama.cpp, on purpose: "zephyr" ends turns with "</s>" (llama.cpp's
 * "zephyr" is duet's "zephyr-endoftext"); Zephyr/TinyLlama templates (which write
 * eos_token after <|user|>/<|assistant|>) are detected as zephyr, where llama.cpp's heuristic
 * takes them for GLM-Edge; and "plain" is duet's own fallback (llama.cpp refuses unknown
 * templates). Families llama.cpp knows beyond these (vicuna, command-r, deepseek, ...) are
 * not recognised and fall back to plain.
 *
 * continue_last renders the last message, which must be the assistant's, without its
 * end-of-turn text, so the model continues it (e.g. after a stream broke off mid-answer).
 * Its content is written as given, except that families which trim contents still trim
 * its leading white space; trailing white space is kept since the model continues from it.
 *
 * All functions are pure and thread-safe. */
#ifndef DUET_CHAT_TEMPLATE_H
#define DUET_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

typedef enum {
    DUET_ROLE_SYSTEM,
    DUET_ROLE_USER,
    DUET_ROLE_ASSISTANT,
} duet_chat_role;

typedef struct {
    duet_chat_role role;
    const char *content; /* NUL-terminated UTF-8; must not be NULL ("" is fine) */
} duet_chat_message;

typedef enum {
    DUET_TEMPLATE_PLAIN,
    DUET_TEMPLATE_CHATML,
    DUET_TEMPLATE_LLAMA2,
    DUET_TEMPLATE_LLAMA2_SYS,
    DUET_TEMPLATE_LLAMA2_SYS_BOS,
    DUET_TEMPLATE_LLAMA2_SYS_STRIP,
    DUET_TEMPLATE_LLAMA3,
    DUET_TEMPLATE_MISTRAL_V1,
    DUET_TEMPLATE_MISTRAL_V3,
    DUET_TEMPLATE_MISTRAL_V3_TEKKEN,
    DUET_TEMPLATE_MISTRAL_V7,
    DUET_TEMPLATE_MISTRAL_V7_TEKKEN,
    DUET_TEMPLATE_ZEPHYR,
    DUET_TEMPLATE_ZEPHYR_ENDOFTEXT,
    DUET_TEMPLATE_GEMMA,
    DUET_TEMPLATE_PHI3,
    DUET_TEMPLATE_PHI4,
    DUET_TEMPLATE_COUNT_ /* not a template: the number of kinds */
} duet_template_kind;

/* The family of a Jinja template text. A text that is exactly a template name ("chatml",
 * "llama3", ...) gives that template. NULL, "" and unrecognised texts give
 * DUET_TEMPLATE_PLAIN. */
duet_template_kind duet_template_detect(const char *jinja_text);

/* Looks up a template by its name (the names listed above, case-sensitive), e.g. for a
 * configuration key that forces one. False, *out untouched, when the name is unknown or
 * NULL. */
bool duet_template_from_name(const char *name, duet_template_kind *out);

/* The name of a template ("chatml", ...), or "unknown" for a value outside the enum. */
const char *duet_template_name(duet_template_kind k);

/* Renders msgs[0..n) as prompt text in *out (malloc'd, NUL-terminated; the caller frees
 * it). add_generation_prompt appends the header that opens the assistant's answer;
 * continue_last leaves the last message, which must be the assistant's, open instead (the
 * two are exclusive). Errors, with *out left NULL: INVALID_ARGUMENT for an unknown kind,
 * n == 0, NULL msgs or out, a role outside duet_chat_role, NULL content, both flags set,
 * or continue_last with a last message that is not the assistant's; RESOURCE_EXHAUSTED
 * when out of memory. */
duet_code duet_template_render(duet_template_kind k, const duet_chat_message *msgs, size_t n,
                               bool add_generation_prompt, bool continue_last, char **out,
                               duet_status *st);

#endif
