/* duet-mkmodel without --vocab-from: the model carries duet's built-in vocabulary, which
 * the worker's code loads; any text (ASCII, accents, CJK, emoji, control bytes) tokenizes
 * and comes back exactly; common words are single tokens; and the worker generates from
 * the model (random weights: the text is gibberish, but it is produced). This is the
 * model the main job falls back to when no real GGUF is there. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "support.h"
#include "tokenizer.h"
#include "vocab_gguf.h"

static char dir[512], model[700];
static duet_status st;

static void make_model(void)
{
    test_make_temp_dir(dir, sizeof dir, "duet-mkmodel");
    snprintf(model, sizeof model, "%s/builtin.gguf", dir);
    const char *argv[] = {"duet-mkmodel", "--out",    model, "--dim",   "64", "--ffn",
                          "128",          "--layers", "2",   "--heads", "2",  "--type",
                          "q8_0",         "--quiet",  NULL};
    cr_assert_eq(test_run_tool(argv), 0, "duet-mkmodel failed");
}

static void remove_model(void)
{
    test_remove_dir(dir);
}

TestSuite(mkmodel, .init = make_model, .fini = remove_model);

static duet_tokenizer *load_tokenizer(void)
{
    duet_gguf *g = NULL;
    cr_assert_eq(duet_gguf_open(model, &g, &st), DUET_OK, "%s", st.message);
    duet_vocab v;
    cr_assert_eq(duet_vocab_from_gguf(g, &v, &st), DUET_OK, "%s", st.message);
    duet_gguf_close(g);
    duet_tokenizer *t = NULL;
    cr_assert_eq(duet_tokenizer_create(&v, &t, &st), DUET_OK, "%s", st.message);
    duet_vocab_free(&v);
    return t;
}

Test(mkmodel, the_builtin_vocabulary_round_trips_any_text)
{
    duet_tokenizer *t = load_tokenizer();
    const char *texts[] = {
        "the happy dog played in the park",
        "Ünïcödé, 日本語, emoji 🦊🎉 and\ttabs\nnew lines",
        "  leading spaces, \x01 control bytes, trailing  ",
        "Once upon a time, a little girl named Lily went home.",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        cr_assert_eq(duet_tokenize(t, texts[i], strlen(texts[i]), true, false, &ids, &n, &st),
                     DUET_OK, "%s", st.message);
        cr_assert_gt(n, 1);
        cr_assert_eq(ids[0], 1, "BOS first");
        char *back = NULL;
        size_t len = 0;
        /* what the worker streams: the tokens after BOS, the prefix space removed */
        cr_assert_eq(duet_detokenize(t, ids + 1, n - 1, 0, &back, &len, &st), DUET_OK, "%s",
                     st.message);
        cr_assert_str_eq(back, texts[i]);
        free(back);
        free(ids);
    }
    /* the words are pieces of their own: BOS + one token per word */
    int32_t *ids = NULL;
    size_t n = 0;
    cr_assert_eq(duet_tokenize(t, "the happy dog played", 20, true, false, &ids, &n, &st), DUET_OK);
    cr_assert_eq(n, 5, "%zu tokens", n);
    size_t plen;
    const char *piece = duet_token_piece(t, ids[2], false, &plen);
    cr_assert(plen == 6 && memcmp(piece, " happy", 6) == 0, "%.*s", (int)plen, piece);
    free(ids);
    duet_tokenizer_free(t);
}

Test(mkmodel, the_worker_generates_from_it)
{
    const char *argv[] = {"duet-worker", "-m", model, "-p", "Once upon a time", "-n", "12",
                          "--temp",      "0",  "-t",  "1",  "--tokens",         NULL};
    char *out = NULL, *err = NULL;
    int rc = test_run_tool_capture(argv, &out, &err);
    cr_assert_eq(rc, 0, "%s", err ? err : "");
    size_t ids = 0;
    for (char *p = strtok(out, " \n"); p; p = strtok(NULL, " \n")) {
        char *end;
        long id = strtol(p, &end, 10);
        cr_assert(*end == '\0' && id >= 0, "not an id: %s", p);
        ids++;
    }
    cr_assert_gt(ids, 0, "no tokens generated: %s", err ? err : "");
    free(out);
    free(err);
}
