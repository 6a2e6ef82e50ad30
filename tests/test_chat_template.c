/* Chat templates: byte-exact renderings per family (the expectations are llama.cpp's
 * test-chat-template outputs for the same conversation), detection from real template
 * texts, names, continuation, and argument errors. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "gguf.h"

/* llama.cpp's test conversation: it checks system handling, trimming of the answer with
 * spaces around it, and the generation prompt after a final user turn. */
static const duet_chat_message conversation[] = {
    {DUET_ROLE_SYSTEM, "You are a helpful assistant"},
    {DUET_ROLE_USER, "Hello"},
    {DUET_ROLE_ASSISTANT, "Hi there"},
    {DUET_ROLE_USER, "Who are you"},
    {DUET_ROLE_ASSISTANT, "   I am an assistant   "},
    {DUET_ROLE_USER, "Another question"},
};
#define N_CONV (sizeof conversation / sizeof conversation[0])

static char *render(duet_template_kind k, const duet_chat_message *m, size_t n, bool add_gen,
                    bool cont)
{
    char *out = NULL;
    duet_status st;
    duet_code rc = duet_template_render(k, m, n, add_gen, cont, &out, &st);
    cr_assert_eq(rc, DUET_OK, "%s: %s", duet_template_name(k), st.message);
    cr_assert_not_null(out);
    return out;
}

static void expect_render(duet_template_kind k, const char *expected)
{
    char *out = render(k, conversation, N_CONV, true, false);
    cr_expect_str_eq(out, expected, "%s:\n got [%s]\nwant [%s]", duet_template_name(k), out,
                     expected);
    free(out);
}

/* ---- renderings of the full conversation with a generation prompt ---- */

Test(chat_template, chatml)
{
    expect_render(DUET_TEMPLATE_CHATML,
                  "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
                  "<|im_start|>user\nHello<|im_end|>\n"
                  "<|im_start|>assistant\nHi there<|im_end|>\n"
                  "<|im_start|>user\nWho are you<|im_end|>\n"
                  "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n"
                  "<|im_start|>user\nAnother question<|im_end|>\n"
                  "<|im_start|>assistant\n");
}

Test(chat_template, llama2_without_system_block)
{
    expect_render(DUET_TEMPLATE_LLAMA2,
                  "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>"
                  "[INST] Who are you [/INST]   I am an assistant   </s>"
                  "[INST] Another question [/INST]");
}

Test(chat_template, llama2_sys)
{
    expect_render(DUET_TEMPLATE_LLAMA2_SYS,
                  "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi "
                  "there</s>[INST] Who are you [/INST]   I am an assistant   </s>"
                  "[INST] Another question [/INST]");
}

Test(chat_template, llama2_sys_bos)
{
    expect_render(DUET_TEMPLATE_LLAMA2_SYS_BOS,
                  "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi "
                  "there</s><s>[INST] Who are you [/INST]   I am an assistant   </s>"
                  "<s>[INST] Another question [/INST]");
}

Test(chat_template, llama2_sys_strip)
{
    expect_render(DUET_TEMPLATE_LLAMA2_SYS_STRIP,
                  "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi "
                  "there</s>[INST] Who are you [/INST]I am an assistant</s>"
                  "[INST] Another question [/INST]");
}

Test(chat_template, llama3)
{
    expect_render(DUET_TEMPLATE_LLAMA3,
                  "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful "
                  "assistant<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

Test(chat_template, mistral_v1)
{
    expect_render(DUET_TEMPLATE_MISTRAL_V1,
                  " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s>"
                  " [INST] Who are you [/INST]    I am an assistant   </s>"
                  " [INST] Another question [/INST]");
}

Test(chat_template, mistral_v3)
{
    expect_render(DUET_TEMPLATE_MISTRAL_V3,
                  "[INST] You are a helpful assistant\n\nHello[/INST] Hi there</s>"
                  "[INST] Who are you[/INST] I am an assistant</s>"
                  "[INST] Another question[/INST]");
}

Test(chat_template, mistral_v3_tekken)
{
    expect_render(DUET_TEMPLATE_MISTRAL_V3_TEKKEN,
                  "[INST]You are a helpful assistant\n\nHello[/INST]Hi there</s>"
                  "[INST]Who are you[/INST]   I am an assistant   </s>"
                  "[INST]Another question[/INST]");
}

Test(chat_template, mistral_v7)
{
    expect_render(DUET_TEMPLATE_MISTRAL_V7,
                  "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT]"
                  "[INST] Hello[/INST] Hi there</s>"
                  "[INST] Who are you[/INST]    I am an assistant   </s>"
                  "[INST] Another question[/INST]");
}

Test(chat_template, mistral_v7_tekken)
{
    expect_render(DUET_TEMPLATE_MISTRAL_V7_TEKKEN,
                  "[SYSTEM_PROMPT]You are a helpful assistant[/SYSTEM_PROMPT]"
                  "[INST]Hello[/INST]Hi there</s>"
                  "[INST]Who are you[/INST]   I am an assistant   </s>"
                  "[INST]Another question[/INST]");
}

Test(chat_template, zephyr)
{
    expect_render(DUET_TEMPLATE_ZEPHYR, "<|system|>\nYou are a helpful assistant</s>\n"
                                        "<|user|>\nHello</s>\n"
                                        "<|assistant|>\nHi there</s>\n"
                                        "<|user|>\nWho are you</s>\n"
                                        "<|assistant|>\n   I am an assistant   </s>\n"
                                        "<|user|>\nAnother question</s>\n"
                                        "<|assistant|>\n");
}

Test(chat_template, zephyr_endoftext)
{
    expect_render(DUET_TEMPLATE_ZEPHYR_ENDOFTEXT,
                  "<|system|>\nYou are a helpful assistant<|endoftext|>\n"
                  "<|user|>\nHello<|endoftext|>\n"
                  "<|assistant|>\nHi there<|endoftext|>\n"
                  "<|user|>\nWho are you<|endoftext|>\n"
                  "<|assistant|>\n   I am an assistant   <|endoftext|>\n"
                  "<|user|>\nAnother question<|endoftext|>\n"
                  "<|assistant|>\n");
}

Test(chat_template, gemma_folds_system_into_first_user_turn)
{
    expect_render(DUET_TEMPLATE_GEMMA,
                  "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n"
                  "<start_of_turn>model\nHi there<end_of_turn>\n"
                  "<start_of_turn>user\nWho are you<end_of_turn>\n"
                  "<start_of_turn>model\nI am an assistant<end_of_turn>\n"
                  "<start_of_turn>user\nAnother question<end_of_turn>\n"
                  "<start_of_turn>model\n");
}

Test(chat_template, phi3)
{
    expect_render(DUET_TEMPLATE_PHI3, "<|system|>\nYou are a helpful assistant<|end|>\n"
                                      "<|user|>\nHello<|end|>\n"
                                      "<|assistant|>\nHi there<|end|>\n"
                                      "<|user|>\nWho are you<|end|>\n"
                                      "<|assistant|>\n   I am an assistant   <|end|>\n"
                                      "<|user|>\nAnother question<|end|>\n"
                                      "<|assistant|>\n");
}

Test(chat_template, phi4)
{
    expect_render(DUET_TEMPLATE_PHI4,
                  "<|im_start|>system<|im_sep|>You are a helpful assistant<|im_end|>"
                  "<|im_start|>user<|im_sep|>Hello<|im_end|>"
                  "<|im_start|>assistant<|im_sep|>Hi there<|im_end|>"
                  "<|im_start|>user<|im_sep|>Who are you<|im_end|>"
                  "<|im_start|>assistant<|im_sep|>   I am an assistant   <|im_end|>"
                  "<|im_start|>user<|im_sep|>Another question<|im_end|>"
                  "<|im_start|>assistant<|im_sep|>");
}

Test(chat_template, plain_fallback)
{
    expect_render(DUET_TEMPLATE_PLAIN, "System: You are a helpful assistant\n"
                                       "User: Hello\n"
                                       "Assistant: Hi there\n"
                                       "User: Who are you\n"
                                       "Assistant:    I am an assistant   \n"
                                       "User: Another question\n"
                                       "Assistant:");
}

/* ---- generation prompt and continuation ---- */

Test(chat_template, without_generation_prompt)
{
    static const duet_chat_message m[] = {{DUET_ROLE_USER, "Hi"}};
    struct {
        duet_template_kind k;
        const char *want;
    } cases[] = {
        {DUET_TEMPLATE_CHATML, "<|im_start|>user\nHi<|im_end|>\n"},
        {DUET_TEMPLATE_LLAMA3, "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"},
        {DUET_TEMPLATE_GEMMA, "<start_of_turn>user\nHi<end_of_turn>\n"},
        {DUET_TEMPLATE_PHI3, "<|user|>\nHi<|end|>\n"},
        {DUET_TEMPLATE_ZEPHYR, "<|user|>\nHi</s>\n"},
        {DUET_TEMPLATE_PLAIN, "User: Hi\n"},
        /* [INST] families: the prompt is implicit in [/INST], so the flag changes nothing */
        {DUET_TEMPLATE_LLAMA2_SYS, "[INST] Hi [/INST]"},
        {DUET_TEMPLATE_MISTRAL_V7, "[INST] Hi[/INST]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = render(cases[i].k, m, 1, false, false);
        cr_expect_str_eq(out, cases[i].want, "%s: got [%s]", duet_template_name(cases[i].k), out);
        free(out);
        if (cases[i].k == DUET_TEMPLATE_LLAMA2_SYS || cases[i].k == DUET_TEMPLATE_MISTRAL_V7) {
            out = render(cases[i].k, m, 1, true, false);
            cr_expect_str_eq(out, cases[i].want);
            free(out);
        }
    }
}

Test(chat_template, continue_last_leaves_the_answer_open)
{
    static const duet_chat_message m[] = {
        {DUET_ROLE_SYSTEM, "Be brief."},
        {DUET_ROLE_USER, "Tell me a story"},
        {DUET_ROLE_ASSISTANT, "  Once upon a "},
    };
    struct {
        duet_template_kind k;
        const char *want;
    } cases[] = {
        {DUET_TEMPLATE_CHATML, "<|im_start|>system\nBe brief.<|im_end|>\n"
                               "<|im_start|>user\nTell me a story<|im_end|>\n"
                               "<|im_start|>assistant\n  Once upon a "},
        /* trimming families trim the start only: the model continues after "a " */
        {DUET_TEMPLATE_LLAMA3, "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                               "<|start_header_id|>user<|end_header_id|>\n\nTell me a "
                               "story<|eot_id|>"
                               "<|start_header_id|>assistant<|end_header_id|>\n\nOnce upon a "},
        {DUET_TEMPLATE_GEMMA, "<start_of_turn>user\nBe brief.\n\nTell me a story<end_of_turn>\n"
                              "<start_of_turn>model\nOnce upon a "},
        {DUET_TEMPLATE_LLAMA2_SYS_STRIP,
         "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nTell me a story [/INST]Once upon a "},
        {DUET_TEMPLATE_MISTRAL_V1, " [INST] Be brief.\n\nTell me a story [/INST]   Once upon a "},
        {DUET_TEMPLATE_MISTRAL_V3, "[INST] Be brief.\n\nTell me a story[/INST] Once upon a "},
        {DUET_TEMPLATE_MISTRAL_V7, "[SYSTEM_PROMPT] Be brief.[/SYSTEM_PROMPT]"
                                   "[INST] Tell me a story[/INST]   Once upon a "},
        {DUET_TEMPLATE_PHI3, "<|system|>\nBe brief.<|end|>\n<|user|>\nTell me a story<|end|>\n"
                             "<|assistant|>\n  Once upon a "},
        {DUET_TEMPLATE_ZEPHYR, "<|system|>\nBe brief.</s>\n<|user|>\nTell me a story</s>\n"
                               "<|assistant|>\n  Once upon a "},
        {DUET_TEMPLATE_PLAIN,
         "System: Be brief.\nUser: Tell me a story\nAssistant:   Once upon a "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = render(cases[i].k, m, 3, false, true);
        cr_expect_str_eq(out, cases[i].want, "%s:\n got [%s]\nwant [%s]",
                         duet_template_name(cases[i].k), out, cases[i].want);
        free(out);
    }
}

Test(chat_template, closed_last_answer_is_terminated)
{
    static const duet_chat_message m[] = {
        {DUET_ROLE_USER, "Hi"},
        {DUET_ROLE_ASSISTANT, "Hello"},
    };
    char *out = render(DUET_TEMPLATE_CHATML, m, 2, false, false);
    cr_expect_str_eq(out,
                     "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n");
    free(out);
    out = render(DUET_TEMPLATE_LLAMA2, m, 2, false, false);
    cr_expect_str_eq(out, "[INST] Hi [/INST]Hello</s>");
    free(out);
}

Test(chat_template, gemma_system_between_turns_goes_to_the_next_user_turn)
{
    static const duet_chat_message m[] = {
        {DUET_ROLE_USER, "a"},     {DUET_ROLE_ASSISTANT, "b"}, {DUET_ROLE_SYSTEM, "  one "},
        {DUET_ROLE_SYSTEM, "two"}, {DUET_ROLE_USER, "c"},
    };
    char *out = render(DUET_TEMPLATE_GEMMA, m, 5, true, false);
    cr_expect_str_eq(out,
                     "<start_of_turn>user\na<end_of_turn>\n<start_of_turn>model\nb<end_of_turn>\n"
                     "<start_of_turn>user\nonetwo\n\nc<end_of_turn>\n<start_of_turn>model\n");
    free(out);
}

Test(chat_template, empty_contents_render)
{
    static const duet_chat_message m[] = {{DUET_ROLE_USER, ""}};
    char *out = render(DUET_TEMPLATE_CHATML, m, 1, true, false);
    cr_expect_str_eq(out, "<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n");
    free(out);
    /* a lone system text has nowhere to go in gemma: only the prompt remains (as llama.cpp) */
    static const duet_chat_message s[] = {{DUET_ROLE_SYSTEM, "x"}};
    out = render(DUET_TEMPLATE_GEMMA, s, 1, false, false);
    cr_expect_str_eq(out, "");
    free(out);
}

/* ---- errors ---- */

static void expect_error(duet_template_kind k, const duet_chat_message *m, size_t n, bool add_gen,
                         bool cont, const char *what)
{
    char *out = (char *)"sentinel";
    duet_status st;
    duet_code rc = duet_template_render(k, m, n, add_gen, cont, &out, &st);
    cr_expect_eq(rc, DUET_INVALID_ARGUMENT, "%s: rc %d", what, rc);
    cr_expect_eq(st.code, DUET_INVALID_ARGUMENT, "%s", what);
    cr_expect_neq(st.message[0], '\0', "%s: no message", what);
    cr_expect_null(out, "%s: output not cleared", what);
}

Test(chat_template, errors)
{
    static const duet_chat_message ok[] = {{DUET_ROLE_USER, "Hi"}};
    expect_error(DUET_TEMPLATE_CHATML, ok, 0, true, false, "empty list");
    expect_error(DUET_TEMPLATE_CHATML, NULL, 1, true, false, "NULL list");
    duet_chat_message bad_role[] = {{DUET_ROLE_USER, "a"}, {(duet_chat_role)7, "b"}};
    expect_error(DUET_TEMPLATE_CHATML, bad_role, 2, true, false, "role 7");
    duet_chat_message neg_role[] = {{(duet_chat_role)-1, "a"}};
    expect_error(DUET_TEMPLATE_LLAMA3, neg_role, 1, true, false, "role -1");
    duet_chat_message null_content[] = {{DUET_ROLE_USER, NULL}};
    expect_error(DUET_TEMPLATE_PLAIN, null_content, 1, true, false, "NULL content");
    expect_error(DUET_TEMPLATE_CHATML, ok, 1, false, true, "continue after a user message");
    expect_error(DUET_TEMPLATE_CHATML, ok, 1, true, true, "both flags");
    expect_error((duet_template_kind)99, ok, 1, true, false, "unknown kind");
    expect_error(DUET_TEMPLATE_COUNT_, ok, 1, true, false, "count as a kind");

    duet_status st;
    cr_expect_eq(duet_template_render(DUET_TEMPLATE_CHATML, ok, 1, true, false, NULL, &st),
                 DUET_INVALID_ARGUMENT);
}

/* ---- names ---- */

Test(chat_template, names_round_trip)
{
    for (int k = 0; k < DUET_TEMPLATE_COUNT_; k++) {
        const char *name = duet_template_name((duet_template_kind)k);
        cr_assert_str_neq(name, "unknown", "kind %d has no name", k);
        duet_template_kind back = DUET_TEMPLATE_COUNT_;
        cr_expect(duet_template_from_name(name, &back), "%s not found", name);
        cr_expect_eq(back, k, "%s maps to %d, not %d", name, back, k);
        /* a forced name given where the template text goes works too */
        cr_expect_eq(duet_template_detect(name), k, "%s", name);
        for (int j = 0; j < k; j++) {
            cr_expect_str_neq(name, duet_template_name((duet_template_kind)j), "duplicate name");
        }
    }
    duet_template_kind untouched = DUET_TEMPLATE_GEMMA;
    cr_expect_not(duet_template_from_name("llama-3", &untouched));
    cr_expect_not(duet_template_from_name("ChatML", &untouched));
    cr_expect_not(duet_template_from_name("", &untouched));
    cr_expect_not(duet_template_from_name(NULL, &untouched));
    cr_expect_eq(untouched, DUET_TEMPLATE_GEMMA);
    cr_expect_str_eq(duet_template_name((duet_template_kind)-1), "unknown");
    cr_expect_str_eq(duet_template_name(DUET_TEMPLATE_COUNT_), "unknown");
    cr_expect_str_eq(duet_template_name(DUET_TEMPLATE_LLAMA3), "llama3");
    cr_expect_str_eq(duet_template_name(DUET_TEMPLATE_CHATML), "chatml");
}

/* ---- detection from real templates (as published in the models' tokenizer_config.json,
 * Jinja escapes kept as the GGUF converter stores them) ---- */

static const char llama2_chat[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
    "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set "
    "system_message = false %}{% endif %}{% for message in loop_messages %}{% if "
    "(message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation "
    "roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == "
    "0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] "
    "%}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + "
    "' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + "
    "eos_token }}{% endif %}{% endfor %}";

static const char llama3_instruct[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
    "endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

static const char qwen2_instruct[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' "
    "+ message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

static const char smollm2_instruct[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}";

static const char mistral_instruct_v02[] =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ "
    "'[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
    "message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}";

static const char mistral_v1_official[] =
    "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = "
    "messages[0]['content'] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    "
    "{%- set loop_messages = messages %}\n{%- endif %}\n\n{{- bos_token }}\n{%- for message in "
    "loop_messages %}\n    {%- if message['role'] == 'user' %}\n        {%- if loop.first and "
    "system_message is defined %}\n            {{- ' [INST] ' + system_message + '\\n\\n' + "
    "message['content'] + ' [/INST]' }}\n        {%- else %}\n            {{- ' [INST] ' + "
    "message['content'] + ' [/INST]' }}\n        {%- endif %}\n    {%- elif message['role'] == "
    "'assistant' %}\n        {{- ' ' + message['content'] + eos_token}}\n    {%- endif %}\n{%- "
    "endfor %}\n";

static const char mistral_v3_excerpt[] =
    "{%- for message in loop_messages %}\n    {%- if message[\"role\"] == \"user\" %}\n        "
    "{%- if tools is not none and (message == user_messages[-1]) %}\n            {{- "
    "\"[AVAILABLE_TOOLS] [\" }}\n{%- endif %}\n        {%- if loop.last and system_message is "
    "defined %}\n            {{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] "
    "+ \"[/INST]\" }}\n        {%- else %}\n            {{- \"[INST] \" + message[\"content\"] + "
    "\"[/INST]\" }}\n        {%- endif %}\n";

static const char mistral_v3_tekken_excerpt[] =
    "{%- if tools is not none and (message == user_messages[-1]) %}\n            {{- "
    "\"[AVAILABLE_TOOLS][\" }}\n{%- endif %}\n        {%- if loop.last and system_message is "
    "defined %}\n            {{- \"[INST]\" + system_message + \"\\n\\n\" + message[\"content\"] "
    "+ \"[/INST]\" }}\n        {%- else %}\n            {{- \"[INST]\" + message[\"content\"] + "
    "\"[/INST]\" }}\n";

static const char mistral_v7[] =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
    "message['content'] + '[/INST]' }}{% elif message['role'] == 'system' %}{{ '[SYSTEM_PROMPT] "
    "' + message['content'] + '[/SYSTEM_PROMPT]' }}{% elif message['role'] == 'assistant' %}{{ ' "
    "' + message['content'] + eos_token }}{% else %}{{ raise_exception('Only user, system and "
    "assistant roles are supported!') }}{% endif %}{% endfor %}";

static const char fusionnet[] =
    "{%- for idx in range(0, messages|length) -%}\n{%- if messages[idx]['role'] == 'user' -%}\n{%- "
    "if idx > 1 -%}\n{{- bos_token + '[INST] ' + messages[idx]['content'] + ' [/INST]' -}}\n{%- "
    "else -%}\n{{- messages[idx]['content'] + ' [/INST]' -}}\n{%- endif -%}\n{% elif "
    "messages[idx]['role'] == 'system' %}\n{{- '[INST] <<SYS>>\\n' + messages[idx]['content'] + "
    "'\\n<</SYS>>\\n\\n' -}}\n{%- elif messages[idx]['role'] == 'assistant' -%}\n{{- ' '  + "
    "messages[idx]['content'] + ' ' + eos_token -}}\n{% endif %}\n{% endfor %}";

static const char zephyr_beta[] =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
    "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' "
    "+ message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ "
    "'<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and "
    "add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

/* llama.cpp's zephyr rule: a template that writes <|endoftext|> itself */
static const char zephyr_endoftext[] =
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + "
    "message['content'] + '<|endoftext|>\\n' }}{% elif message['role'] == 'assistant' %}{{ "
    "'<|assistant|>\\n' + message['content'] + '<|endoftext|>\\n' }}{% endif %}{% endfor %}";

static const char gemma_it[] =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
    "supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% "
    "set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ "
    "'<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor "
    "%}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

/* The template inside ggml-vocab-phi-3.gguf (checked against the file below). */
static const char phi3_mini[] =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' "
    "+ '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif "
    "(message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% "
    "endfor %}";

static const char phi4[] =
    "{% for message in messages %}{% if (message['role'] == 'system') "
    "%}{{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}{% elif "
    "(message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + message['content'] + "
    "'<|im_end|><|im_start|>assistant<|im_sep|>'}}{% elif (message['role'] == 'assistant') "
    "%}{{message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}";

static const char vicuna[] =
    "{%- for message in messages %}{%- if message['role'] == 'system' -%}{{- '' + "
    "message['content'] + '\n\n' -}}{%- else -%}{%- if message['role'] == 'user' -%}{{-'USER: ' + "
    "message['content'] + '\n'-}}{%- else -%}{{-'ASSISTANT: ' + message['content'] + '</s>\n' "
    "-}}{%- endif -%}{%- endif -%}{%- endfor -%}{%- if add_generation_prompt "
    "-%}{{-'ASSISTANT:'-}}{%- endif -%}";

Test(chat_template, detects_real_templates)
{
    struct {
        const char *what;
        const char *text;
        duet_template_kind want;
    } cases[] = {
        {"Llama 2 chat", llama2_chat, DUET_TEMPLATE_LLAMA2_SYS_STRIP},
        {"Llama 3 instruct", llama3_instruct, DUET_TEMPLATE_LLAMA3},
        {"Qwen2 instruct", qwen2_instruct, DUET_TEMPLATE_CHATML},
        {"SmolLM2 instruct", smollm2_instruct, DUET_TEMPLATE_CHATML},
        {"Mistral 7B instruct v0.2", mistral_instruct_v02, DUET_TEMPLATE_LLAMA2},
        {"Mistral v1 (official)", mistral_v1_official, DUET_TEMPLATE_MISTRAL_V1},
        {"Mistral v3 (Large 2407)", mistral_v3_excerpt, DUET_TEMPLATE_MISTRAL_V3},
        {"Mistral v3 tekken (Nemo)", mistral_v3_tekken_excerpt, DUET_TEMPLATE_MISTRAL_V3_TEKKEN},
        {"Mistral v7 (Large 2411)", mistral_v7, DUET_TEMPLATE_MISTRAL_V7},
        {"FusionNet (BOS in history)", fusionnet, DUET_TEMPLATE_LLAMA2_SYS_BOS},
        {"Zephyr 7B beta / TinyLlama chat", zephyr_beta, DUET_TEMPLATE_ZEPHYR},
        {"literal <|endoftext|> zephyr", zephyr_endoftext, DUET_TEMPLATE_ZEPHYR_ENDOFTEXT},
        {"Gemma it", gemma_it, DUET_TEMPLATE_GEMMA},
        {"Phi-3 mini", phi3_mini, DUET_TEMPLATE_PHI3},
        {"Phi-4", phi4, DUET_TEMPLATE_PHI4},
        {"Vicuna (not supported)", vicuna, DUET_TEMPLATE_PLAIN},
        {"unknown text", "{{ messages }} whatever", DUET_TEMPLATE_PLAIN},
        {"empty", "", DUET_TEMPLATE_PLAIN},
        {"NULL", NULL, DUET_TEMPLATE_PLAIN},
        {"mistral prefix", "mistral-something", DUET_TEMPLATE_LLAMA2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        duet_template_kind got = duet_template_detect(cases[i].text);
        cr_expect_eq(got, cases[i].want, "%s: detected %s, want %s", cases[i].what,
                     duet_template_name(got), duet_template_name(cases[i].want));
    }
}

/* The real template stored in the shared Phi-3 vocabulary file, read with the GGUF reader. */
Test(chat_template, detects_template_in_phi3_gguf)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    char path[1024];
    snprintf(path, sizeof path, "%s/ggml-vocab-phi-3.gguf",
             dir && *dir ? dir : DUET_SOURCE_DIR "/../shared/models");
    FILE *f = fopen(path, "rb");
    if (!f) {
        cr_skip_test("SKIPPED: %s is missing (set DUET_TEST_MODELS to the shared models folder)",
                     path);
    }
    fclose(f);

    duet_gguf *g = NULL;
    duet_status st;
    cr_assert_eq(duet_gguf_open(path, &g, &st), DUET_OK, "%s", st.message);
    duet_gguf_string s;
    cr_assert(duet_gguf_get_string(g, "tokenizer.chat_template", &s), "no chat template");
    char *text = malloc(s.len + 1);
    cr_assert_not_null(text);
    memcpy(text, s.ptr, s.len);
    text[s.len] = '\0';
    duet_gguf_close(g);

    cr_expect_str_eq(text, phi3_mini, "the excerpt above no longer matches the file");
    cr_expect_eq(duet_template_detect(text), DUET_TEMPLATE_PHI3);

    /* this template has no system role; llama.cpp's phi3 rendering writes it anyway */
    static const duet_chat_message m[] = {{DUET_ROLE_USER, "Hello"}};
    char *out = render(duet_template_detect(text), m, 1, true, false);
    cr_expect_str_eq(out, "<|user|>\nHello<|end|>\n<|assistant|>\n");
    free(out);
    free(text);
}
