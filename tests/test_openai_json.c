/* The OpenAI-compatible JSON layer: request bodies as real clients send them, every
 * validation error with its field, hostile bodies (not JSON, bad UTF-8, too big, too deep),
 * and the exact shapes of completions, stream events, errors and the model list. */
#include <criterion/criterion.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "openai_request.h"
#include "openai_response.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
/* LeakSanitizer only prints at exit; asking here makes a leak fail the test that made it. */
static void assert_no_leaks(void)
{
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks (see above)");
}
#else
static void assert_no_leaks(void) {}
#endif

static duet_status st;
static char param[DUET_OPENAI_PARAM_MAX];

/* A valid body with more members after the one user message. */
#define WITH(members) "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," members "}"

static duet_openai_request parse_ok(const char *body)
{
    duet_openai_request r;
    duet_code rc = duet_openai_request_parse(body, strlen(body), &r, param, &st);
    cr_assert_eq(rc, DUET_OK, "%s", st.message);
    cr_assert_str_empty(param);
    return r;
}

static void expect_invalid(const char *body, size_t len, const char *message,
                           const char *want_param)
{
    duet_openai_request r;
    memset(&r, 0x5a, sizeof r); /* parse must not rely on a zeroed struct */
    duet_code rc = duet_openai_request_parse(body, len, &r, param, &st);
    cr_expect_eq(rc, DUET_INVALID_ARGUMENT, "accepted: %s", body);
    cr_expect_str_eq(st.message, message, "for body %s: got \"%s\"", body, st.message);
    cr_expect_str_eq(param, want_param, "param for body %s", body);
    /* nothing left to free: a zeroed request */
    cr_expect_null(r.messages);
    cr_expect_eq(r.n_messages, 0);
    cr_expect_null(r.model);
    cr_expect_eq(r.n_stop, 0);
    duet_openai_request_free(&r);
}

/* ---- requests -------------------------------------------------------------------------- */

/* As the openai npm package (v4) sends it: JSON.stringify of the caller's params, with the
 * tools, logprobs, metadata and such that duet ignores. */
static const char npm_body[] =
    "{\"messages\":[{\"role\":\"developer\",\"content\":\"You are terse.\"},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hello, \"},"
    "{\"type\":\"text\",\"text\":\"w\\u00f6rld \xf0\x9f\x98\x80\"}],\"name\":\"ann\"},"
    "{\"role\":\"assistant\",\"content\":\"Hi!\",\"refusal\":null,\"tool_calls\":[]},"
    "{\"role\":\"user\",\"content\":\"Tell me\\nmore\"}],"
    "\"model\":\"gpt-4o-mini\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
    "\"temperature\":0.7,\"top_p\":1,\"max_tokens\":100,\"max_completion_tokens\":50,"
    "\"stop\":[\"\\n\\n\",\"END\"],\"seed\":42,\"presence_penalty\":0,\"frequency_penalty\":0.5,"
    "\"n\":1,\"user\":\"user-1234\",\"logprobs\":false,\"top_logprobs\":null,"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":"
    "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}],"
    "\"tool_choice\":\"auto\",\"parallel_tool_calls\":true,\"response_format\":{\"type\":\"text\"},"
    "\"metadata\":{\"trace\":\"abc\"},\"store\":false,\"service_tier\":\"auto\",\"logit_bias\":{"
    "\"50256\":-100}}";

Test(openai_request, npm_client_body_with_unknown_fields)
{
    duet_openai_request r = parse_ok(npm_body);
    cr_assert_str_eq(r.model, "gpt-4o-mini");
    cr_assert_eq(r.n_messages, 4);
    cr_assert_eq(r.messages[0].role, DUET_OPENAI_ROLE_SYSTEM, "developer is read as system");
    cr_assert_str_eq(r.messages[0].content, "You are terse.");
    cr_assert_eq(r.messages[1].role, DUET_OPENAI_ROLE_USER);
    cr_assert_str_eq(r.messages[1].content, "Hello, w\xc3\xb6rld \xf0\x9f\x98\x80");
    cr_assert_eq(r.messages[1].content_len, strlen("Hello, w\xc3\xb6rld \xf0\x9f\x98\x80"));
    cr_assert_eq(r.messages[2].role, DUET_OPENAI_ROLE_ASSISTANT);
    cr_assert_str_eq(r.messages[2].content, "Hi!");
    cr_assert_str_eq(r.messages[3].content, "Tell me\nmore");
    cr_assert(r.stream);
    cr_assert(r.include_usage);
    cr_assert(r.has_temperature);
    cr_assert_float_eq(r.temperature, 0.7, 1e-12);
    cr_assert(r.has_top_p);
    cr_assert_float_eq(r.top_p, 1.0, 0);
    cr_assert(r.has_max_tokens);
    cr_assert_eq(r.max_tokens, 50, "max_completion_tokens wins over max_tokens");
    cr_assert_eq(r.n_stop, 2);
    cr_assert_str_eq(r.stop[0], "\n\n");
    cr_assert_str_eq(r.stop[1], "END");
    cr_assert(r.has_seed);
    cr_assert_eq(r.seed, 42);
    cr_assert(r.has_presence_penalty);
    cr_assert_float_eq(r.presence_penalty, 0.0, 0);
    cr_assert(r.has_frequency_penalty);
    cr_assert_float_eq(r.frequency_penalty, 0.5, 0);
    cr_assert_str_eq(r.user, "user-1234");
    cr_assert_null(r.session_id);
    cr_assert_not(r.has_top_k || r.has_min_p || r.has_repeat_penalty);
    duet_openai_request_free(&r);
    assert_no_leaks();
}

Test(openai_request, minimal_body_leaves_everything_unset)
{
    duet_openai_request r = parse_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    cr_assert_null(r.model);
    cr_assert_eq(r.n_messages, 1);
    cr_assert_not(r.stream || r.include_usage);
    cr_assert_not(r.has_temperature || r.has_top_p || r.has_max_tokens || r.has_seed ||
                  r.has_presence_penalty || r.has_frequency_penalty || r.has_top_k || r.has_min_p ||
                  r.has_repeat_penalty);
    cr_assert_eq(r.n_stop, 0);
    cr_assert_null(r.user);
    cr_assert_null(r.session_id);
    duet_openai_request_free(&r);
    duet_openai_request_free(&r); /* a freed request is zeroed, so twice is safe */
    cr_assert_null(r.messages);
}

Test(openai_request, null_members_count_as_absent)
{
    duet_openai_request r =
        parse_ok(WITH("\"model\":null,\"temperature\":null,\"top_p\":null,\"max_tokens\":null,"
                      "\"max_completion_tokens\":null,\"stop\":null,\"seed\":null,\"n\":null,"
                      "\"stream\":null,\"stream_options\":null,\"user\":null,"
                      "\"session_id\":null,\"top_k\":null"));
    cr_assert_null(r.model);
    cr_assert_not(r.has_temperature || r.has_top_p || r.has_max_tokens || r.has_seed ||
                  r.has_top_k || r.stream);
    cr_assert_eq(r.n_stop, 0);
    cr_assert_null(r.session_id);
    duet_openai_request_free(&r);
}

Test(openai_request, duet_extensions_and_other_forms)
{
    duet_openai_request r = parse_ok(
        WITH("\"session_id\":\"sess_01.a:b-C\",\"top_k\":40,\"min_p\":0.05,\"repeat_penalty\":1.1,"
             "\"stop\":\"###\",\"max_tokens\":4294967295,\"seed\":-7,\"stream\":false,"
             "\"stream_options\":{\"include_usage\":false}"));
    cr_assert_str_eq(r.session_id, "sess_01.a:b-C");
    cr_assert(r.has_top_k);
    cr_assert_eq(r.top_k, 40);
    cr_assert(r.has_min_p);
    cr_assert_float_eq(r.min_p, 0.05, 0);
    cr_assert(r.has_repeat_penalty);
    cr_assert_float_eq(r.repeat_penalty, 1.1, 0);
    cr_assert_eq(r.n_stop, 1, "a lone stop string is one stop");
    cr_assert_str_eq(r.stop[0], "###");
    cr_assert(r.has_max_tokens);
    cr_assert_eq(r.max_tokens, 4294967295u);
    cr_assert_eq(r.seed, -7);
    cr_assert_not(r.stream || r.include_usage);
    duet_openai_request_free(&r);
}

Test(openai_request, range_ends_are_accepted)
{
    static const char *const bodies[] = {
        WITH("\"temperature\":0,\"top_p\":0,\"presence_penalty\":-2,\"frequency_penalty\":-2,"
             "\"min_p\":0,\"top_k\":0,\"max_tokens\":1,\"repeat_penalty\":10"),
        WITH("\"temperature\":2,\"top_p\":1,\"presence_penalty\":2,\"frequency_penalty\":2.0,"
             "\"min_p\":1,\"top_k\":4294967295,\"max_completion_tokens\":1,"
             "\"repeat_penalty\":0.0001,\"stop\":[]"),
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        duet_openai_request r = parse_ok(bodies[i]);
        cr_assert(r.has_temperature && r.has_top_p && r.has_presence_penalty &&
                  r.has_frequency_penalty && r.has_min_p && r.has_top_k && r.has_max_tokens &&
                  r.has_repeat_penalty);
        cr_assert_eq(r.max_tokens, 1);
        duet_openai_request_free(&r);
    }
}

Test(openai_request, content_parts_and_strings)
{
    duet_openai_request r = parse_ok(
        "{\"messages\":[{\"role\":\"system\",\"content\":[]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\","
        "\"text\":\"\"},{\"text\":\"b\",\"type\":\"text\",\"cache_control\":{}}]},"
        "{\"role\":\"assistant\",\"content\":\"\"},"
        "{\"role\":\"user\",\"content\":\"\\u00e9\\ud83d\\ude00\\\"\\\\\"}]}");
    cr_assert_eq(r.n_messages, 4);
    cr_assert_str_eq(r.messages[0].content, "", "no parts is empty text");
    cr_assert_eq(r.messages[0].content_len, 0);
    cr_assert_str_eq(r.messages[1].content, "ab", "parts are joined as they are");
    cr_assert_eq(r.messages[1].content_len, 2);
    cr_assert_str_eq(r.messages[2].content, "");
    cr_assert_str_eq(r.messages[3].content, "\xc3\xa9\xf0\x9f\x98\x80\"\\");
    cr_assert_str_eq(duet_openai_role_name(r.messages[0].role), "system");
    cr_assert_str_eq(duet_openai_role_name(r.messages[1].role), "user");
    cr_assert_str_eq(duet_openai_role_name(r.messages[2].role), "assistant");
    duet_openai_request_free(&r);
}

typedef struct {
    const char *body;
    const char *message;
    const char *param;
} bad_case;

static const bad_case field_cases[] = {
    {WITH("\"model\":5"), "model must be a string", "model"},
    {WITH("\"temperature\":\"hot\""), "temperature must be a number", "temperature"},
    {WITH("\"temperature\":2.5"), "temperature must be between 0 and 2", "temperature"},
    {WITH("\"temperature\":-0.1"), "temperature must be between 0 and 2", "temperature"},
    {WITH("\"top_p\":true"), "top_p must be a number", "top_p"},
    {WITH("\"top_p\":1.01"), "top_p must be between 0 and 1", "top_p"},
    {WITH("\"presence_penalty\":2.5"), "presence_penalty must be between -2 and 2",
     "presence_penalty"},
    {WITH("\"frequency_penalty\":-3"), "frequency_penalty must be between -2 and 2",
     "frequency_penalty"},
    {WITH("\"frequency_penalty\":[]"), "frequency_penalty must be a number", "frequency_penalty"},
    {WITH("\"max_tokens\":0"), "max_tokens must be between 1 and 4294967295", "max_tokens"},
    {WITH("\"max_tokens\":4294967296"), "max_tokens must be between 1 and 4294967295",
     "max_tokens"},
    {WITH("\"max_tokens\":10.5"), "max_tokens must be an integer", "max_tokens"},
    {WITH("\"max_tokens\":\"10\""), "max_tokens must be an integer", "max_tokens"},
    {WITH("\"max_tokens\":10,\"max_completion_tokens\":-1"),
     "max_completion_tokens must be between 1 and 4294967295", "max_completion_tokens"},
    {WITH("\"seed\":1.5"), "seed must be an integer", "seed"},
    {WITH("\"seed\":\"42\""), "seed must be an integer", "seed"},
    {WITH("\"n\":2"), "n must be 1: duet returns one choice per request", "n"},
    {WITH("\"n\":0"), "n must be 1: duet returns one choice per request", "n"},
    {WITH("\"n\":\"1\""), "n must be an integer", "n"},
    {WITH("\"stream\":\"yes\""), "stream must be true or false", "stream"},
    {WITH("\"stream\":1"), "stream must be true or false", "stream"},
    {WITH("\"stream_options\":true"), "stream_options must be an object", "stream_options"},
    {WITH("\"stream_options\":{\"include_usage\":1}"),
     "stream_options.include_usage must be true or false", "stream_options.include_usage"},
    {WITH("\"stop\":7"), "stop must be a string or an array of strings", "stop"},
    {WITH("\"stop\":\"\""), "stop must not be empty", "stop"},
    {WITH("\"stop\":[\"a\",1]"), "stop[1] must be a string", "stop[1]"},
    {WITH("\"stop\":[\"a\",\"\"]"), "stop[1] must not be empty", "stop[1]"},
    {WITH("\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]"), "stop holds 5 strings; the limit is 4",
     "stop"},
    {WITH("\"stop\":\"a\\u0000b\""), "stop must not contain NUL characters", "stop"},
    {WITH("\"user\":{}"), "user must be a string", "user"},
    {WITH("\"session_id\":5"), "session_id must be a string", "session_id"},
    {WITH("\"session_id\":\"\""),
     "session_id must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'", "session_id"},
    {WITH("\"session_id\":\"a b\""),
     "session_id must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'", "session_id"},
    {WITH("\"session_id\":\"../etc\\/passwd\""),
     "session_id must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'", "session_id"},
    {WITH("\"top_k\":-1"), "top_k must be between 0 and 4294967295", "top_k"},
    {WITH("\"top_k\":1.5"), "top_k must be an integer", "top_k"},
    {WITH("\"min_p\":1.5"), "min_p must be between 0 and 1", "min_p"},
    {WITH("\"repeat_penalty\":0"), "repeat_penalty must be greater than 0 (1 = off)",
     "repeat_penalty"},
    {WITH("\"repeat_penalty\":11"), "repeat_penalty must be between 0 and 10", "repeat_penalty"},
    {WITH("\"repeat_penalty\":\"1\""), "repeat_penalty must be a number", "repeat_penalty"},
    {"{\"model\":\"m\"}", "messages is required", "messages"},
    {"{\"messages\":null}", "messages is required", "messages"},
    {"{\"messages\":{}}", "messages must be an array", "messages"},
    {"{\"messages\":[]}", "messages must hold at least one message", "messages"},
    {"{\"messages\":[\"hi\"]}", "messages[0] must be an object", "messages[0]"},
    {"{\"messages\":[{\"content\":\"hi\"}]}", "messages[0].role is required", "messages[0].role"},
    {"{\"messages\":[{\"role\":3,\"content\":\"hi\"}]}", "messages[0].role must be a string",
     "messages[0].role"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"tool\",\"content\":\"42\","
     "\"tool_call_id\":\"c1\"}]}",
     "messages[1].role \"tool\" is not supported: duet serves chat without tools",
     "messages[1].role"},
    {"{\"messages\":[{\"role\":\"function\",\"name\":\"f\",\"content\":\"42\"}]}",
     "messages[0].role \"function\" is not supported: duet serves chat without tools",
     "messages[0].role"},
    {"{\"messages\":[{\"role\":\"robot\",\"content\":\"hi\"}]}",
     "messages[0].role must be system, developer, user or assistant (got \"robot\")",
     "messages[0].role"},
    {"{\"messages\":[{\"role\":\"user\\u0000\",\"content\":\"hi\"}]}",
     "messages[0].role must be system, developer, user or assistant (got \"user\")",
     "messages[0].role"},
    {"{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\","
     "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}]}",
     "messages[0].tool_calls is not supported: duet serves chat without tools",
     "messages[0].tool_calls"},
    {"{\"messages\":[{\"role\":\"assistant\",\"content\":\"\",\"function_call\":{\"name\":\"f\"}}]"
     "}",
     "messages[0].function_call is not supported: duet serves chat without tools",
     "messages[0].function_call"},
    {"{\"messages\":[{\"role\":\"user\"}]}", "messages[0].content is required",
     "messages[0].content"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":null}]}", "messages[0].content is required",
     "messages[0].content"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":5}]}",
     "messages[0].content must be a string or an array of text parts", "messages[0].content"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}",
     "messages[0].content must not contain NUL characters", "messages[0].content"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":[\"hi\"]}]}",
     "messages[0].content[0] must be an object", "messages[0].content[0]"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"hi\"}]}]}",
     "messages[0].content[0].type must be a string", "messages[0].content[0].type"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},"
     "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}}]}]}",
     "messages[0].content[1] has type \"image_url\": only text content is supported",
     "messages[0].content[1]"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\","
     "\"input_audio\":{}}]}]}",
     "messages[0].content[0] has type \"input_audio\": only text content is supported",
     "messages[0].content[0]"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":7}]}]}",
     "messages[0].content[0].text must be a string", "messages[0].content[0].text"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
     "messages[0].content[0].text must be a string", "messages[0].content[0].text"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"\\u0000\"}]}]}",
     "messages[0].content[0].text must not contain NUL characters", "messages[0].content[0].text"},
    /* errors after some allocations: the messages before, the model, the stops */
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\","
     "\"content\":[{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"user\",\"content\":{}}]}",
     "messages[2].content must be a string or an array of text parts", "messages[2].content"},
    {"{\"model\":\"m\",\"user\":\"u\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],"
     "\"stop\":[\"x\",\"y\"],\"session_id\":\"bad id\"}",
     "session_id must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'", "session_id"},
    {"[{\"messages\":[]}]", "request body must be a JSON object", ""},
};

Test(openai_request, every_field_error_names_the_field)
{
    for (size_t i = 0; i < sizeof field_cases / sizeof field_cases[0]; i++) {
        const bad_case *c = &field_cases[i];
        expect_invalid(c->body, strlen(c->body), c->message, c->param);
    }
    assert_no_leaks();
}

Test(openai_request, session_id_length_limit)
{
    char body[512];
    char id[DUET_OPENAI_MAX_SESSION_ID + 2];
    memset(id, 'a', sizeof id - 1);
    id[DUET_OPENAI_MAX_SESSION_ID] = '\0';
    snprintf(body, sizeof body, WITH("\"session_id\":\"%s\""), id);
    duet_openai_request r = parse_ok(body);
    cr_assert_eq(strlen(r.session_id), DUET_OPENAI_MAX_SESSION_ID);
    duet_openai_request_free(&r);

    id[DUET_OPENAI_MAX_SESSION_ID] = 'a';
    id[DUET_OPENAI_MAX_SESSION_ID + 1] = '\0';
    snprintf(body, sizeof body, WITH("\"session_id\":\"%s\""), id);
    expect_invalid(body, strlen(body),
                   "session_id must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'",
                   "session_id");
}

/* The parser's complaint follows the position; its wording is jansson's, so only the
 * position is pinned. */
static void expect_json_error(const char *body, size_t len, int line, int column)
{
    duet_openai_request r;
    cr_expect_eq(duet_openai_request_parse(body, len, &r, param, &st), DUET_INVALID_ARGUMENT);
    char want[96];
    int n = snprintf(want, sizeof want,
                     "request body is not valid JSON (line %d, column %d): ", line, column);
    cr_expect(strncmp(st.message, want, (size_t)n) == 0 && strlen(st.message) > (size_t)n,
              "want \"%s...\", got \"%s\"", want, st.message);
    cr_expect_str_empty(param);
    cr_expect_null(r.messages);
}

Test(openai_request, invalid_json_reports_line_and_column)
{
    const char body[] = "{\n  \"model\": \"m\",\n  \"messages\": [}\n}";
    expect_json_error(body, strlen(body), 3, 16);
    expect_json_error("", 0, 1, 0);
    expect_json_error(NULL, 0, 1, 0);
    expect_json_error("42", 2, 1, 2);
    expect_json_error("{\"a\":1,}", 8, 1, 8);
    const char trailing[] = WITH("\"model\":\"m\"") " {}";
    expect_json_error(trailing, strlen(trailing), 1, (int)strlen(trailing) - 1);
}

/* Invalid UTF-8 anywhere is refused by the parser, at the position of the bad byte. */
Test(openai_request, invalid_utf8_is_refused_with_position)
{
    static const struct {
        const char *body;
        int column;
    } cases[] = {
        /* not UTF-8 at all */
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"ab\xff\"}]}", 41},
        /* overlong '/' */
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"\xc0\xaf\"}]}", 39},
        /* a surrogate */
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}", 39},
        /* cut short */
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"\xe2\x82\"}]}", 39},
        /* above U+10FFFF */
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"\xf4\x90\x80\x80\"}]}", 39},
        /* a lone surrogate written as an escape */
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}]}", 46},
        /* in a member name */
        {"{\"messages\":[],\"\xff\":1}", 16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_json_error(cases[i].body, strlen(cases[i].body), 1, cases[i].column);
    }
}

Test(openai_request, body_need_not_be_nul_terminated)
{
    const char *body = WITH("\"model\":\"m\"") "garbage past the length";
    duet_openai_request r;
    size_t len = strlen(WITH("\"model\":\"m\""));
    cr_assert_eq(duet_openai_request_parse(body, len, &r, NULL, NULL), DUET_OK);
    cr_assert_str_eq(r.model, "m");
    duet_openai_request_free(&r);
}

static const char head[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"";
static const char tail[] = "\"}]}";

/* A valid body of exactly len bytes: one message whose content pads it out. */
static char *body_of_length(size_t len)
{
    char *body = malloc(len);
    cr_assert_not_null(body);
    size_t pad = len - (sizeof head - 1) - (sizeof tail - 1);
    memcpy(body, head, sizeof head - 1);
    memset(body + sizeof head - 1, 'a', pad);
    memcpy(body + sizeof head - 1 + pad, tail, sizeof tail - 1);
    return body;
}

Test(openai_request, body_size_cap)
{
    char *body = body_of_length(DUET_OPENAI_MAX_BODY_BYTES);
    duet_openai_request r;
    cr_assert_eq(duet_openai_request_parse(body, DUET_OPENAI_MAX_BODY_BYTES, &r, param, &st),
                 DUET_OK, "%s", st.message);
    cr_assert_eq(r.messages[0].content_len,
                 DUET_OPENAI_MAX_BODY_BYTES - strlen(head) - strlen(tail));
    duet_openai_request_free(&r);
    free(body);

    body = body_of_length(DUET_OPENAI_MAX_BODY_BYTES + 1);
    expect_invalid(body, DUET_OPENAI_MAX_BODY_BYTES + 1,
                   "request body is 4194305 bytes; the limit is 4194304", "");
    free(body);
}

/* A body with n copies of the same short user message. */
static char *body_with_messages(size_t n)
{
    static const char one[] = "{\"role\":\"user\",\"content\":\"x\"},";
    size_t cap = 16 + n * (sizeof one - 1);
    char *body = malloc(cap);
    cr_assert_not_null(body);
    size_t at = (size_t)sprintf(body, "{\"messages\":[");
    for (size_t i = 0; i < n; i++) {
        memcpy(body + at, one, sizeof one - 1);
        at += sizeof one - 1;
    }
    strcpy(body + at - 1, "]}"); /* over the last comma */
    return body;
}

Test(openai_request, message_count_cap)
{
    char *body = body_with_messages(DUET_OPENAI_MAX_MESSAGES);
    duet_openai_request r = parse_ok(body);
    cr_assert_eq(r.n_messages, DUET_OPENAI_MAX_MESSAGES);
    cr_assert_str_eq(r.messages[DUET_OPENAI_MAX_MESSAGES - 1].content, "x");
    duet_openai_request_free(&r);
    free(body);

    body = body_with_messages(DUET_OPENAI_MAX_MESSAGES + 1);
    expect_invalid(body, strlen(body), "messages holds 10001 messages; the limit is 10000",
                   "messages");
    free(body);
}

/* The valid body, plus an unknown member nested `extra` levels below the top object. */
static char *body_nested(size_t extra, char open, char close)
{
    size_t cap = 128 + 2 * extra;
    char *body = malloc(cap);
    cr_assert_not_null(body);
    size_t at =
        (size_t)sprintf(body, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"x\":");
    for (size_t i = 0; i < extra; i++) {
        body[at++] = open;
        if (open == '{' && i + 1 < extra) {
            at += (size_t)sprintf(body + at, "\"k\":");
        }
    }
    for (size_t i = 0; i < extra; i++) {
        body[at++] = close;
    }
    strcpy(body + at, "}");
    return body;
}

Test(openai_request, nesting_depth_cap)
{
    char *body = body_nested(DUET_OPENAI_MAX_DEPTH - 1, '[', ']');
    duet_openai_request r = parse_ok(body);
    duet_openai_request_free(&r);
    free(body);

    body = body_nested(DUET_OPENAI_MAX_DEPTH, '[', ']');
    expect_invalid(body, strlen(body),
                   "request body nests arrays and objects deeper than 64 levels", "");
    free(body);

    /* far deeper than jansson's own limit, and unbalanced: refused before parsing */
    size_t deep = 100000;
    body = malloc(deep);
    cr_assert_not_null(body);
    memset(body, '[', deep);
    expect_invalid(body, deep, "request body nests arrays and objects deeper than 64 levels", "");
    free(body);

    /* brackets inside strings, escaped quotes included, are text, not nesting */
    char text[512];
    char brackets[201];
    memset(brackets, '[', 200);
    brackets[200] = '\0';
    snprintf(text, sizeof text, "{\"messages\":[{\"role\":\"user\",\"content\":\"\\\"%s\\\\\"}]}",
             brackets);
    r = parse_ok(text);
    cr_assert_eq(r.messages[0].content_len, 202);
    duet_openai_request_free(&r);
}

/* ---- responses ------------------------------------------------------------------------- */

static const duet_openai_answer answer = {
    .id = "chatcmpl-AbCdEfGhIjKlMnOpQrStUvWx",
    .model = "duet-test",
    .created = 1700000000,
};

/* Parses builder output (which must be one line), failing the test if it is not JSON. */
static json_t *load(const char *text)
{
    cr_assert_not_null(text);
    cr_assert_null(strchr(text, '\n'), "not one line: %s", text);
    json_error_t err;
    json_t *v = json_loads(text, 0, &err);
    cr_assert_not_null(v, "not JSON (%s): %s", err.text, text);
    return v;
}

/* The JSON inside one SSE event, after checking the framing. */
static json_t *load_event(const char *event)
{
    cr_assert_not_null(event);
    size_t n = strlen(event);
    cr_assert(n > 8 && strncmp(event, "data: ", 6) == 0, "no data: prefix: %s", event);
    cr_assert(strcmp(event + n - 2, "\n\n") == 0, "no blank line after: %s", event);
    char *json = strndup(event + 6, n - 8);
    json_t *v = load(json);
    free(json);
    return v;
}

static const char *str_at(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    cr_assert(json_is_string(v), "\"%s\" is not a string", key);
    return json_string_value(v);
}

static json_int_t int_at(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    cr_assert(json_is_integer(v), "\"%s\" is not an integer", key);
    return json_integer_value(v);
}

Test(openai_response, ids_are_prefixed_random_alphanumerics)
{
    char ids[64][DUET_OPENAI_ID_LEN + 1];
    for (size_t i = 0; i < 64; i++) {
        cr_assert_eq(duet_openai_new_id(ids[i], &st), DUET_OK, "%s", st.message);
        cr_assert_eq(strlen(ids[i]), 33);
        cr_assert(strncmp(ids[i], "chatcmpl-", 9) == 0, "%s", ids[i]);
        for (size_t k = 9; k < 33; k++) {
            cr_assert(isalnum((unsigned char)ids[i][k]), "%s", ids[i]);
        }
        for (size_t j = 0; j < i; j++) {
            cr_assert_str_neq(ids[i], ids[j]);
        }
    }
}

Test(openai_response, completion_shape)
{
    duet_openai_usage usage = {
        .prompt_tokens = 12, .cached_prompt_tokens = 8, .completion_tokens = 5};
    char *text = duet_openai_completion_json(&answer, "Hello \"you\"\n\xc3\xa9", 14,
                                             DUET_OPENAI_FINISH_STOP, &usage, NULL);
    cr_assert_str_eq(
        text, "{\"id\":\"chatcmpl-AbCdEfGhIjKlMnOpQrStUvWx\",\"object\":\"chat.completion\","
              "\"created\":1700000000,\"model\":\"duet-test\",\"choices\":[{\"index\":0,"
              "\"message\":{\"role\":\"assistant\",\"content\":\"Hello \\\"you\\\"\\n\xc3\xa9\"},"
              "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,"
              "\"completion_tokens\":5,\"total_tokens\":17,\"prompt_tokens_details\":"
              "{\"cached_tokens\":8}}}");
    json_t *v = load(text);
    cr_assert_eq(json_object_size(v), 6, "no \"duet\" member without an extension");
    json_t *choice = json_array_get(json_object_get(v, "choices"), 0);
    cr_assert_str_eq(str_at(json_object_get(choice, "message"), "content"),
                     "Hello \"you\"\n\xc3\xa9");
    json_decref(v);
    free(text);

    duet_openai_usage big = {.prompt_tokens = UINT32_MAX, .completion_tokens = UINT32_MAX};
    text = duet_openai_completion_json(&answer, "", 0, DUET_OPENAI_FINISH_LENGTH, &big, NULL);
    v = load(text);
    choice = json_array_get(json_object_get(v, "choices"), 0);
    cr_assert_str_eq(str_at(choice, "finish_reason"), "length");
    cr_assert_str_eq(str_at(json_object_get(choice, "message"), "content"), "");
    cr_assert_eq(int_at(json_object_get(v, "usage"), "total_tokens"), 2 * (json_int_t)UINT32_MAX,
                 "the total does not wrap at 32 bits");
    json_decref(v);
    free(text);
    assert_no_leaks();
}

Test(openai_response, extension_only_when_it_says_something)
{
    duet_openai_usage usage = {0};
    duet_openai_extension full = {.session_id = "s-1", .dropped_messages = 3, .summarized = true};
    char *text =
        duet_openai_completion_json(&answer, "x", 1, DUET_OPENAI_FINISH_STOP, &usage, &full);
    json_t *v = load(text);
    json_t *duet = json_object_get(v, "duet");
    cr_assert_str_eq(str_at(duet, "session_id"), "s-1");
    json_t *trimmed = json_object_get(duet, "trimmed");
    cr_assert_eq(int_at(trimmed, "dropped_messages"), 3);
    cr_assert(json_is_true(json_object_get(trimmed, "summarized")));
    json_decref(v);
    free(text);

    duet_openai_extension session_only = {.session_id = "s-2"};
    text = duet_openai_completion_json(&answer, "x", 1, DUET_OPENAI_FINISH_STOP, &usage,
                                       &session_only);
    v = load(text);
    duet = json_object_get(v, "duet");
    cr_assert_eq(json_object_size(duet), 1);
    cr_assert_null(json_object_get(duet, "trimmed"));
    json_decref(v);
    free(text);

    duet_openai_extension summarized_only = {.summarized = true};
    text = duet_openai_completion_json(&answer, "x", 1, DUET_OPENAI_FINISH_STOP, &usage,
                                       &summarized_only);
    v = load(text);
    duet = json_object_get(v, "duet");
    cr_assert_null(json_object_get(duet, "session_id"));
    cr_assert_eq(int_at(json_object_get(duet, "trimmed"), "dropped_messages"), 0);
    cr_assert(json_is_true(json_object_get(json_object_get(duet, "trimmed"), "summarized")));
    json_decref(v);
    free(text);

    duet_openai_extension empty = {0};
    text = duet_openai_completion_json(&answer, "x", 1, DUET_OPENAI_FINISH_STOP, &usage, &empty);
    v = load(text);
    cr_assert_null(json_object_get(v, "duet"), "an empty extension is left out");
    json_decref(v);
    free(text);
    assert_no_leaks();
}

#define CHUNK_HEAD                                                                                 \
    "data: {\"id\":\"chatcmpl-AbCdEfGhIjKlMnOpQrStUvWx\",\"object\":\"chat.completion.chunk\","    \
    "\"created\":1700000000,\"model\":\"duet-test\","

Test(openai_response, stream_events_exact)
{
    char *first = duet_openai_first_chunk(&answer, NULL);
    cr_assert_str_eq(first, CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"role\":"
                                       "\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}"
                                       "\n\n");
    char *content = duet_openai_content_chunk(&answer, "line 1\nline 2", 13);
    cr_assert_str_eq(content, CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                                         "\"line 1\\nline 2\"},\"finish_reason\":null}]}\n\n");
    char *finish = duet_openai_finish_chunk(&answer, DUET_OPENAI_FINISH_LENGTH);
    cr_assert_str_eq(finish, CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{},"
                                        "\"finish_reason\":\"length\"}]}\n\n");
    duet_openai_usage usage = {
        .prompt_tokens = 3, .cached_prompt_tokens = 0, .completion_tokens = 4};
    char *usage_event = duet_openai_usage_chunk(&answer, &usage);
    cr_assert_str_eq(usage_event,
                     CHUNK_HEAD "\"choices\":[],\"usage\":{\"prompt_tokens\":3,"
                                "\"completion_tokens\":4,\"total_tokens\":7,"
                                "\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n");
    cr_assert_str_eq(DUET_OPENAI_SSE_DONE, "data: [DONE]\n\n");
    free(first);
    free(content);
    free(finish);
    free(usage_event);
    assert_no_leaks();
}

Test(openai_response, include_usage_puts_null_usage_on_every_chunk)
{
    duet_openai_answer a = answer;
    a.include_usage = true;
    char *events[3] = {duet_openai_first_chunk(&a, NULL), duet_openai_content_chunk(&a, "x", 1),
                       duet_openai_finish_chunk(&a, DUET_OPENAI_FINISH_STOP)};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = load_event(events[i]);
        json_t *u = json_object_get(v, "usage");
        cr_assert(json_is_null(u), "event %zu: %s", i, events[i]);
        cr_assert_eq(json_array_size(json_object_get(v, "choices")), 1);
        json_decref(v);
        free(events[i]);
    }
    duet_openai_usage usage = {.prompt_tokens = 1, .completion_tokens = 2};
    char *event = duet_openai_usage_chunk(&a, &usage);
    json_t *v = load_event(event);
    cr_assert_eq(int_at(json_object_get(v, "usage"), "total_tokens"), 3);
    cr_assert_eq(json_array_size(json_object_get(v, "choices")), 0);
    json_decref(v);
    free(event);
    assert_no_leaks();
}

Test(openai_response, first_chunk_carries_the_extension)
{
    duet_openai_extension ext = {.session_id = "abc", .dropped_messages = 2};
    char *event = duet_openai_first_chunk(&answer, &ext);
    json_t *v = load_event(event);
    json_t *duet = json_object_get(v, "duet");
    cr_assert_str_eq(str_at(duet, "session_id"), "abc");
    cr_assert_eq(int_at(json_object_get(duet, "trimmed"), "dropped_messages"), 2);
    cr_assert(json_is_false(json_object_get(json_object_get(duet, "trimmed"), "summarized")));
    json_t *delta = json_object_get(json_array_get(json_object_get(v, "choices"), 0), "delta");
    cr_assert_str_eq(str_at(delta, "role"), "assistant");
    json_decref(v);
    free(event);
}

/* The content a delta carries once its bytes went through the builder. */
static void expect_delta(const char *bytes, size_t n, const char *want, size_t want_len)
{
    char *event = duet_openai_content_chunk(&answer, bytes, n);
    cr_assert_not_null(event, "the builder failed on its input");
    json_error_t err;
    char *json = strndup(event + 6, strlen(event) - 8);
    json_t *v = json_loads(json, JSON_ALLOW_NUL, &err);
    cr_assert_not_null(v, "%s", err.text);
    json_t *delta = json_object_get(json_array_get(json_object_get(v, "choices"), 0), "delta");
    json_t *content = json_object_get(delta, "content");
    cr_expect_eq(json_string_length(content), want_len, "length for %s", json);
    cr_expect(memcmp(json_string_value(content), want, want_len) == 0, "got %s", json);
    json_decref(v);
    free(json);
    free(event);
}

#define FFFD "\xef\xbf\xbd"

Test(openai_response, invalid_utf8_in_a_delta_becomes_replacement_characters)
{
    expect_delta("a\xff"
                 "b",
                 3, "a" FFFD "b", 5);
    expect_delta("\xe2\x82", 2, FFFD, 3); /* cut short: one subpart */
    expect_delta("\xe2\x82"
                 "A",
                 3, FFFD "A", 4);                                 /* cut short, then more */
    expect_delta("\xc0\xaf", 2, FFFD FFFD, 6);                    /* overlong: no valid lead */
    expect_delta("\xed\xa0\x80", 3, FFFD FFFD FFFD, 9);           /* surrogate */
    expect_delta("\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD, 12); /* above U+10FFFF */
    expect_delta("\x80\x80", 2, FFFD FFFD, 6);                    /* stray continuations */
    expect_delta("\xc3\xa9\xf0\x9f\x98\x80", 6, "\xc3\xa9\xf0\x9f\x98\x80", 6); /* valid */
    expect_delta("a\0b", 3, "a\0b", 3); /* NUL is a character */
    expect_delta(NULL, 0, "", 0);
    assert_no_leaks();
}

Test(openai_response, other_text_is_sanitized_too)
{
    duet_openai_answer a = answer;
    a.model = "m\xff";
    duet_openai_usage usage = {0};
    duet_openai_extension ext = {.session_id = "\xc3"};
    char *text = duet_openai_completion_json(&a, "ok", 2, DUET_OPENAI_FINISH_STOP, &usage, &ext);
    json_t *v = load(text);
    cr_assert_str_eq(str_at(v, "model"), "m" FFFD);
    cr_assert_str_eq(str_at(json_object_get(v, "duet"), "session_id"), FFFD);
    json_decref(v);
    free(text);

    text = duet_openai_error_json(DUET_INVALID_ARGUMENT, "bad byte \xfe here", "p\xff", NULL);
    v = load(text);
    json_t *error = json_object_get(v, "error");
    cr_assert_str_eq(str_at(error, "message"), "bad byte " FFFD " here");
    cr_assert_str_eq(str_at(error, "param"), "p" FFFD);
    json_decref(v);
    free(text);
}

Test(openai_response, error_mapping_table)
{
    static const struct {
        duet_code code;
        int status;
        const char *type;
    } table[] = {
        {DUET_INVALID_ARGUMENT, 400, "invalid_request_error"},
        {DUET_UNAUTHENTICATED, 401, "authentication_error"},
        {DUET_PERMISSION_DENIED, 403, "permission_error"},
        {DUET_NOT_FOUND, 404, "invalid_request_error"},
        {DUET_RESOURCE_EXHAUSTED, 429, "rate_limit_error"},
        {DUET_UNAVAILABLE, 503, "server_error"},
        {DUET_DEADLINE_EXCEEDED, 504, "server_error"},
        {DUET_OK, 500, "server_error"},
        {DUET_CANCELLED, 500, "server_error"},
        {DUET_UNKNOWN, 500, "server_error"},
        {DUET_ALREADY_EXISTS, 500, "server_error"},
        {DUET_FAILED_PRECONDITION, 500, "server_error"},
        {DUET_ABORTED, 409, "conflict_error"},
        {DUET_OUT_OF_RANGE, 500, "server_error"},
        {DUET_UNIMPLEMENTED, 500, "server_error"},
        {DUET_INTERNAL, 500, "server_error"},
        {DUET_DATA_LOSS, 500, "server_error"},
        {(duet_code)99, 500, "server_error"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        duet_openai_error_kind k = duet_openai_error_kind_of(table[i].code);
        cr_expect_eq(k.http_status, table[i].status, "%s", duet_code_name(table[i].code));
        cr_expect_str_eq(k.type, table[i].type, "%s", duet_code_name(table[i].code));
    }
}

Test(openai_response, error_body_shape)
{
    char *text = duet_openai_error_json(DUET_INVALID_ARGUMENT, "temperature must be a number",
                                        "temperature", NULL);
    cr_assert_str_eq(text, "{\"error\":{\"message\":\"temperature must be a number\","
                           "\"type\":\"invalid_request_error\",\"param\":\"temperature\","
                           "\"code\":null}}");
    free(text);
    text = duet_openai_error_json(DUET_NOT_FOUND, "no model \"x\"", NULL, "model_not_found");
    cr_assert_str_eq(text, "{\"error\":{\"message\":\"no model \\\"x\\\"\",\"type\":"
                           "\"invalid_request_error\",\"param\":null,\"code\":"
                           "\"model_not_found\"}}");
    char *event = duet_openai_sse_event(text);
    cr_assert_str_eq(event, "data: {\"error\":{\"message\":\"no model \\\"x\\\"\",\"type\":"
                            "\"invalid_request_error\",\"param\":null,\"code\":"
                            "\"model_not_found\"}}\n\n");
    free(event);
    free(text);
    text = duet_openai_error_json(DUET_INTERNAL, NULL, NULL, NULL);
    cr_assert_str_eq(text, "{\"error\":{\"message\":\"\",\"type\":\"server_error\","
                           "\"param\":null,\"code\":null}}");
    free(text);
    assert_no_leaks();
}

Test(openai_response, model_list)
{
    duet_openai_model models[] = {{"llama-3.2-1b", 1700000000}, {"qwen2.5-0.5b", 1700000001}};
    char *text = duet_openai_models_json(models, 2);
    cr_assert_str_eq(text, "{\"object\":\"list\",\"data\":[{\"id\":\"llama-3.2-1b\",\"object\":"
                           "\"model\",\"created\":1700000000,\"owned_by\":\"duet\"},{\"id\":"
                           "\"qwen2.5-0.5b\",\"object\":\"model\",\"created\":1700000001,"
                           "\"owned_by\":\"duet\"}]}");
    free(text);
    text = duet_openai_models_json(NULL, 0);
    cr_assert_str_eq(text, "{\"object\":\"list\",\"data\":[]}");
    free(text);
    assert_no_leaks();
}

Test(openai_response, request_error_round_trip)
{
    /* what the gateway will do with a bad body: parse, then answer with the error */
    const char body[] = WITH("\"top_p\":7");
    duet_openai_request r;
    cr_assert_eq(duet_openai_request_parse(body, strlen(body), &r, param, &st),
                 DUET_INVALID_ARGUMENT);
    duet_openai_error_kind k = duet_openai_error_kind_of(st.code);
    cr_assert_eq(k.http_status, 400);
    char *text = duet_openai_error_json(st.code, st.message, param, NULL);
    json_t *v = load(text);
    json_t *error = json_object_get(v, "error");
    cr_assert_str_eq(str_at(error, "message"), "top_p must be between 0 and 1");
    cr_assert_str_eq(str_at(error, "param"), "top_p");
    cr_assert_str_eq(str_at(error, "type"), "invalid_request_error");
    json_decref(v);
    free(text);
}
