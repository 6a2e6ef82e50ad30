/* duet-worker's one-shot mode, run as a process on stories260K: text, ids, top logits,
 * tokenization, and clear refusals. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static char model[1024];

static void find_model(void)
{
    const char *dir = getenv("DUET_TEST_MODELS");
    snprintf(model, sizeof model, "%s/stories260K.gguf", dir && *dir ? dir : "../shared/models");
    FILE *f = fopen(model, "rb");
    if (!f) {
        cr_skip_test("TEST MODELS MISSING: %s not found (set DUET_TEST_MODELS)", model);
    }
    fclose(f);
}

TestSuite(oneshot, .init = find_model);

Test(oneshot, greedy_text_from_bos)
{
    /* an empty prompt is just BOS: the reference continuation from SOURCES.md */
    const char *argv[] = {"duet-worker", "-m",     model, "-p", "",  "-n",
                          "64",          "--temp", "0",   "-t", "1", NULL};
    char *out, *err;
    int rc = test_run_tool_capture(argv, &out, &err);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
    const char *expect = "Once upon a time, there was a little girl named Lily. She loved to "
                         "play outside in the park. One day, she saw a big, red ball. She "
                         "wanted to play with it, but it was too high.\nLily";
    cr_assert(strncmp(out, expect, strlen(expect)) == 0, "got: %s", out);
    free(out);
    free(err);
}

Test(oneshot, ids_from_prompt_ids)
{
    const char *argv[] = {"duet-worker", "-m",     model, "--prompt-ids", "1", "-n",
                          "8",           "--temp", "0",   "--tokens",     NULL};
    char *out, *err;
    cr_assert_eq(test_run_tool_capture(argv, &out, &err), 0, "%s", err);
    cr_assert_str_eq(out, "403 407 261 378 432 383 286 261\n");
    free(out);
    free(err);
}

Test(oneshot, top_logits_json_lines)
{
    const char *argv[] = {"duet-worker", "-m",     model, "--prompt-ids", "1", "-n",
                          "3",           "--temp", "0",   "--top-logits", "4", NULL};
    char *out, *err;
    cr_assert_eq(test_run_tool_capture(argv, &out, &err), 0, "%s", err);
    int lines = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "{\"step\":%d,\"token\":", lines);
        cr_assert(strncmp(line, prefix, strlen(prefix)) == 0, "line %d: %s", lines, line);
        int entries = 0;
        for (const char *p = line; (p = strstr(p, "\"logit\":")); p++) {
            entries++;
        }
        cr_assert_eq(entries, 4, "line %d: %s", lines, line);
    }
    cr_assert_eq(lines, 3);
    free(out);
    free(err);
}

Test(oneshot, top_logits_are_in_descending_order_and_pick_the_token)
{
    const char *argv[] = {"duet-worker", "-m",     model, "--prompt-ids", "1", "-n",
                          "1",           "--temp", "0",   "--top-logits", "3", NULL};
    char *out, *err;
    cr_assert_eq(test_run_tool_capture(argv, &out, &err), 0, "%s", err);
    int token, id0, id1, id2;
    float l0, l1, l2;
    int n = sscanf(out,
                   "{\"step\":0,\"token\":%d,\"top\":[{\"id\":%d,\"logit\":%f},{\"id\":%d,"
                   "\"logit\":%f},{\"id\":%d,\"logit\":%f}]}",
                   &token, &id0, &l0, &id1, &l1, &id2, &l2);
    cr_assert_eq(n, 7, "unparsable: %s", out);
    cr_assert_eq(token, 403);
    cr_assert_eq(id0, 403);
    cr_assert(l0 >= l1 && l1 >= l2, "%s", out);
    free(out);
    free(err);
}

Test(oneshot, tokenize_adds_bos)
{
    const char *argv[] = {"duet-worker", "-m", model, "--tokenize", "Once upon a time", NULL};
    char *out, *err;
    cr_assert_eq(test_run_tool_capture(argv, &out, &err), 0, "%s", err);
    cr_assert(strncmp(out, "1 ", 2) == 0, "BOS first: %s", out);
    cr_assert(strstr(out, "403 407"), "the story's own first tokens: %s", out);
    free(out);
    free(err);
}

Test(oneshot, prompt_longer_than_the_context)
{
    const char *argv[] = {"duet-worker", "-m", model, "-p", "Once upon a time there was a dog",
                          "--ctx",       "8",  NULL};
    char *out, *err;
    cr_assert_eq(test_run_tool_capture(argv, &out, &err), 2);
    cr_assert(strstr(err, "context is 8"), "%s", err);
    free(out);
    free(err);
}

Test(oneshot, refusals_are_clear)
{
    const char *missing[] = {"duet-worker", "-m", "/nonexistent.gguf", "-p", "x", NULL};
    char *out, *err;
    cr_assert_eq(test_run_tool_capture(missing, &out, &err), 1);
    cr_assert(strstr(err, "/nonexistent.gguf"), "%s", err);
    free(out);
    free(err);
    const char *bad_ids[] = {"duet-worker", "-m", model, "--prompt-ids", "1,99999", NULL};
    cr_assert_neq(test_run_tool_capture(bad_ids, &out, &err), 0);
    cr_assert(strstr(err, "prompt-ids"), "%s", err);
    free(out);
    free(err);
    const char *no_prompt[] = {"duet-worker", "-m", model, NULL};
    cr_assert_eq(test_run_tool_capture(no_prompt, &out, &err), 2);
    free(out);
    free(err);
}
