/* YAML configuration: typed values, defaults, every kind of error with its position and key
 * path, the shipped conf/ files, and robustness against broken input. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "config.h"
#include "gateway_config.h"
#include "log.h"
#include "node_config.h"
#include "support.h"
#include "worker_config.h"

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

/* ---- a schema using every field type ------------------------------------------------ */

typedef struct {
    char *name;
    char **tags;
    size_t n_tags;
} t_item;

typedef struct {
    char *path;
    uint32_t depth;
} t_nested;

typedef struct {
    char *title;
    int64_t offset;
    uint32_t count;
    double ratio;
    bool flag;
    int color;
    char **tags;
    size_t n_tags;
    t_item *items;
    size_t n_items;
    t_nested nested;
} t_all;

enum { RED = 10, GREEN = 20, BLUE = 30 };
static const duet_config_enum_value colors[] = {
    {"red", RED}, {"green", GREEN}, {"blue", BLUE}, {NULL, 0}};

static const duet_config_field item_fields[] = {
    DUET_CONFIG_FIELD_STRING(t_item, name, "name", DUET_CONFIG_REQUIRED, NULL),
    DUET_CONFIG_FIELD_STRING_LIST(t_item, tags, n_tags, "tags", DUET_CONFIG_OPTIONAL, 0),
};
static const duet_config_schema item_schema = DUET_CONFIG_SCHEMA(t_item, item_fields);

static const duet_config_field nested_fields[] = {
    DUET_CONFIG_FIELD_STRING(t_nested, path, "path", DUET_CONFIG_OPTIONAL, "/var/lib/x"),
    DUET_CONFIG_FIELD_UINT32(t_nested, depth, "depth", DUET_CONFIG_OPTIONAL, 3, 0, 9),
};
static const duet_config_schema nested_schema = DUET_CONFIG_SCHEMA(t_nested, nested_fields);

static const duet_config_field all_fields[] = {
    DUET_CONFIG_FIELD_STRING(t_all, title, "title", DUET_CONFIG_REQUIRED, NULL),
    DUET_CONFIG_FIELD_INT64(t_all, offset, "offset", DUET_CONFIG_OPTIONAL, -5, INT64_MIN,
                            INT64_MAX),
    DUET_CONFIG_FIELD_UINT32(t_all, count, "count", DUET_CONFIG_OPTIONAL, 7, 1, 100),
    DUET_CONFIG_FIELD_DOUBLE(t_all, ratio, "ratio", DUET_CONFIG_OPTIONAL, 0.5, 0, 1),
    DUET_CONFIG_FIELD_BOOL(t_all, flag, "flag", DUET_CONFIG_OPTIONAL, true),
    DUET_CONFIG_FIELD_ENUM(t_all, color, "color", DUET_CONFIG_OPTIONAL, GREEN, colors),
    DUET_CONFIG_FIELD_STRING_LIST(t_all, tags, n_tags, "tags", DUET_CONFIG_OPTIONAL, 0),
    DUET_CONFIG_FIELD_SECTION_LIST(t_all, items, n_items, "items", DUET_CONFIG_OPTIONAL, 0,
                                   &item_schema),
    DUET_CONFIG_FIELD_SECTION(t_all, nested, "nested", DUET_CONFIG_OPTIONAL, &nested_schema),
};
static const duet_config_schema all_schema = DUET_CONFIG_SCHEMA(t_all, all_fields);

/* ---- helpers ------------------------------------------------------------------------ */

static duet_code load_all(const char *text, t_all *out)
{
    return duet_config_load_string("t.yaml", text, &all_schema, out, &st);
}

static duet_code load_worker(const char *text, duet_worker_config *cfg)
{
    return duet_config_load_string("w.yaml", text, &duet_worker_config_schema, cfg, &st);
}

static duet_code load_gateway(const char *text, duet_gateway_config *cfg)
{
    return duet_config_load_string("g.yaml", text, &duet_gateway_config_schema, cfg, &st);
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i]) {
            return false;
        }
    }
    return true;
}

/* The worker text must fail with exactly this message, leaving nothing behind. */
static void expect_worker_error(const char *text, const char *message)
{
    duet_worker_config cfg;
    memset(&cfg, 0xA5, sizeof cfg);
    cr_assert_eq(load_worker(text, &cfg), DUET_INVALID_ARGUMENT, "accepted: %s", text);
    cr_assert_eq(st.code, DUET_INVALID_ARGUMENT);
    cr_assert_str_eq(st.message, message, "got      %s\nexpected %s\nfor input:\n%s", st.message,
                     message, text);
    cr_assert(all_zero(&cfg, sizeof cfg), "a failed load left data in the struct");
    assert_no_leaks();
}

static void expect_gateway_error(const char *text, const char *message)
{
    duet_gateway_config cfg;
    memset(&cfg, 0xA5, sizeof cfg);
    cr_assert_eq(load_gateway(text, &cfg), DUET_INVALID_ARGUMENT, "accepted: %s", text);
    cr_assert_str_eq(st.message, message, "got      %s\nexpected %s\nfor input:\n%s", st.message,
                     message, text);
    cr_assert(all_zero(&cfg, sizeof cfg), "a failed load left data in the struct");
    assert_no_leaks();
}

static void expect_all_error(const char *text, const char *message)
{
    t_all out;
    memset(&out, 0xA5, sizeof out);
    cr_assert_eq(load_all(text, &out), DUET_INVALID_ARGUMENT, "accepted: %s", text);
    cr_assert_str_eq(st.message, message, "got      %s\nexpected %s\nfor input:\n%s", st.message,
                     message, text);
    cr_assert(all_zero(&out, sizeof out), "a failed load left data in the struct");
    assert_no_leaks();
}

static void source_path(char *out, size_t cap, const char *relative)
{
    snprintf(out, cap, "%s/%s", DUET_SOURCE_DIR, relative);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* ---- defaults and values ------------------------------------------------------------ */

Test(config, worker_defaults_are_the_documented_ones)
{
    duet_worker_config cfg;
    memset(&cfg, 0xA5, sizeof cfg);
    duet_worker_config_defaults(&cfg);
    cr_assert_str_eq(cfg.listen, "tls+tcp://0.0.0.0:7700");
    cr_assert_null(cfg.tls.certs_dir);
    cr_assert_null(cfg.tls.name);
    cr_assert_null(cfg.tls.ca_file);
    cr_assert_null(cfg.tls.cert_file);
    cr_assert_null(cfg.tls.key_file);
    cr_assert_eq(cfg.tls.insecure, false);
    cr_assert_eq(cfg.rpc.max_frame_bytes, 16u * 1024 * 1024);
    cr_assert_eq(cfg.rpc.compress_threshold_bytes, 4096u);
    cr_assert_eq(cfg.rpc.max_calls_per_connection, 1024u);
    cr_assert_eq(cfg.rpc.send_queue_bytes, 8u * 1024 * 1024);
    cr_assert_eq(cfg.rpc.connect_timeout_ms, 5000u);
    cr_assert_eq(cfg.admission.requests_per_second, 20.0);
    cr_assert_eq(cfg.admission.burst, 40.0);
    cr_assert_eq(cfg.log.level, DUET_LOG_INFO);
    duet_worker_config_free(&cfg);
    cr_assert_null(cfg.listen);
    assert_no_leaks();
}

Test(config, gateway_defaults_have_no_workers)
{
    duet_gateway_config cfg;
    memset(&cfg, 0xA5, sizeof cfg);
    duet_gateway_config_defaults(&cfg);
    cr_assert_null(cfg.workers);
    cr_assert_eq(cfg.n_workers, 0);
    cr_assert_eq(cfg.rpc.max_frame_bytes, 16u * 1024 * 1024);
    cr_assert_eq(cfg.log.level, DUET_LOG_INFO);
    cr_assert_eq(cfg.tls.insecure, false);
    duet_gateway_config_free(&cfg);
}

Test(config, generic_defaults_fill_every_type)
{
    t_all out;
    memset(&out, 0xA5, sizeof out);
    duet_config_defaults(&all_schema, &out);
    cr_assert_null(out.title);
    cr_assert_eq(out.offset, -5);
    cr_assert_eq(out.count, 7u);
    cr_assert_eq(out.ratio, 0.5);
    cr_assert_eq(out.flag, true);
    cr_assert_eq(out.color, GREEN);
    cr_assert_null(out.tags);
    cr_assert_eq(out.n_tags, 0);
    cr_assert_null(out.items);
    cr_assert_eq(out.n_items, 0);
    cr_assert_str_eq(out.nested.path, "/var/lib/x");
    cr_assert_eq(out.nested.depth, 3u);
    duet_config_free(&all_schema, &out);
    cr_assert_null(out.nested.path);
    assert_no_leaks();
}

Test(config, empty_input_is_an_empty_mapping)
{
    const char *empties[] = {"", "\n\n", "# only a comment\n", "---\n", "---\n...\n", "~\n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        duet_worker_config cfg;
        cr_assert_eq(load_worker(empties[i], &cfg), DUET_OK, "%s", st.message);
        cr_assert_str_eq(cfg.listen, "tls+tcp://0.0.0.0:7700");
        cr_assert_eq(cfg.rpc.connect_timeout_ms, 5000u);
        cr_assert_str_eq(st.message, "");
        duet_worker_config_free(&cfg);
    }
    /* the gateway's workers may come from --worker instead (duet-gateway then insists) */
    const char *gateway_empties[] = {"", "# nothing here\n", "tls:\n  insecure: true\n",
                                     "workers:\ntls:\n  insecure: true\n"};
    for (size_t i = 0; i < sizeof gateway_empties / sizeof gateway_empties[0]; i++) {
        duet_gateway_config cfg;
        cr_assert_eq(load_gateway(gateway_empties[i], &cfg), DUET_OK, "%s", st.message);
        cr_assert_eq(cfg.n_workers, 0u);
        cr_assert_null(cfg.workers);
        duet_gateway_config_free(&cfg);
    }
    assert_no_leaks();
}

Test(config, worker_values_parse_at_the_range_edges)
{
    const char *text = "listen: ipc:///tmp/duet-w.sock\n"
                       "tls:\n"
                       "  certs_dir: /etc/duet\n"
                       "  name: w9\n"
                       "  ca: /a/ca.pem\n"
                       "  cert: '/a/c.pem'\n"
                       "  key: \"/a/k.pem\"\n"
                       "  insecure: true\n"
                       "rpc:\n"
                       "  max_frame_bytes: 4096\n"
                       "  compress_threshold_bytes: 0\n"
                       "  max_calls_per_connection: 65536\n"
                       "  send_queue_bytes: 1073741824\n"
                       "  connect_timeout_ms: 100\n"
                       "admission:\n"
                       "  requests_per_second: 0.001\n"
                       "  burst: 1e6\n"
                       "log:\n"
                       "  level: error\n";
    duet_worker_config cfg;
    cr_assert_eq(load_worker(text, &cfg), DUET_OK, "%s", st.message);
    cr_assert_str_eq(cfg.listen, "ipc:///tmp/duet-w.sock");
    cr_assert_str_eq(cfg.tls.certs_dir, "/etc/duet");
    cr_assert_str_eq(cfg.tls.name, "w9");
    cr_assert_str_eq(cfg.tls.ca_file, "/a/ca.pem");
    cr_assert_str_eq(cfg.tls.cert_file, "/a/c.pem");
    cr_assert_str_eq(cfg.tls.key_file, "/a/k.pem");
    cr_assert_eq(cfg.tls.insecure, true);
    cr_assert_eq(cfg.rpc.max_frame_bytes, 4096u);
    cr_assert_eq(cfg.rpc.compress_threshold_bytes, 0u);
    cr_assert_eq(cfg.rpc.max_calls_per_connection, 65536u);
    cr_assert_eq(cfg.rpc.send_queue_bytes, 1u << 30);
    cr_assert_eq(cfg.rpc.connect_timeout_ms, 100u);
    cr_assert_eq(cfg.admission.requests_per_second, 0.001);
    cr_assert_eq(cfg.admission.burst, 1e6);
    cr_assert_eq(cfg.log.level, DUET_LOG_ERROR);
    duet_worker_config_free(&cfg);
    assert_no_leaks();
}

Test(config, flow_style_and_key_order_do_not_matter)
{
    duet_worker_config cfg;
    cr_assert_eq(
        load_worker("{log: {level: debug}, tls: {insecure: True}, listen: 'tcp://h:1'}", &cfg),
        DUET_OK, "%s", st.message);
    cr_assert_str_eq(cfg.listen, "tcp://h:1");
    cr_assert_eq(cfg.tls.insecure, true);
    cr_assert_eq(cfg.log.level, DUET_LOG_DEBUG);
    cr_assert_eq(cfg.rpc.max_frame_bytes, 16u << 20, "untouched sections keep defaults");
    duet_worker_config_free(&cfg);
}

Test(config, a_key_without_value_keeps_its_default)
{
    duet_worker_config cfg;
    cr_assert_eq(load_worker("listen:\ntls:\nrpc:\n  max_frame_bytes: ~\n  connect_timeout_ms: 99"
                             "9\nlog:\n  level: null\n",
                             &cfg),
                 DUET_OK, "%s", st.message);
    cr_assert_str_eq(cfg.listen, "tls+tcp://0.0.0.0:7700");
    cr_assert_eq(cfg.rpc.max_frame_bytes, 16u << 20);
    cr_assert_eq(cfg.rpc.connect_timeout_ms, 999u);
    cr_assert_eq(cfg.log.level, DUET_LOG_INFO);
    duet_worker_config_free(&cfg);
    assert_no_leaks();
}

Test(config, gateway_workers_list_parses_in_order)
{
    const char *text = "workers:\n"
                       "  - url: tls+tcp://10.0.0.5:7700\n"
                       "    server_name: big-box\n"
                       "  - url: tcp://10.0.0.6:7700\n"
                       "  - {url: ipc:///tmp/w3, server_name: w3}\n"
                       "tls:\n"
                       "  insecure: true\n"
                       "rpc:\n"
                       "  send_queue_bytes: 65536\n";
    duet_gateway_config cfg;
    cr_assert_eq(load_gateway(text, &cfg), DUET_OK, "%s", st.message);
    cr_assert_eq(cfg.n_workers, 3);
    cr_assert_str_eq(cfg.workers[0].url, "tls+tcp://10.0.0.5:7700");
    cr_assert_str_eq(cfg.workers[0].server_name, "big-box");
    cr_assert_str_eq(cfg.workers[1].url, "tcp://10.0.0.6:7700");
    cr_assert_null(cfg.workers[1].server_name);
    cr_assert_str_eq(cfg.workers[2].url, "ipc:///tmp/w3");
    cr_assert_str_eq(cfg.workers[2].server_name, "w3");
    cr_assert_eq(cfg.tls.insecure, true);
    cr_assert_eq(cfg.rpc.send_queue_bytes, 65536u);
    duet_gateway_config_free(&cfg);
    cr_assert_null(cfg.workers);
    cr_assert_eq(cfg.n_workers, 0);
    duet_gateway_config_free(&cfg); /* twice is harmless */
    assert_no_leaks();
}

Test(config, every_type_parses)
{
    const char *text = "title: yes\n" /* a string field: stays the text "yes" */
                       "offset: -0x10\n"
                       "count: 0x64\n"
                       "ratio: .25\n"
                       "flag: FALSE\n"
                       "color: blue\n"
                       "tags: [a, 'b c', \"d\\te\"]\n"
                       "items:\n"
                       "  - name: first\n"
                       "    tags:\n"
                       "      - x\n"
                       "      - 12\n"
                       "  - name: second\n"
                       "nested:\n"
                       "  depth: 0\n";
    t_all out;
    cr_assert_eq(load_all(text, &out), DUET_OK, "%s", st.message);
    cr_assert_str_eq(out.title, "yes");
    cr_assert_eq(out.offset, -16);
    cr_assert_eq(out.count, 100u);
    cr_assert_eq(out.ratio, 0.25);
    cr_assert_eq(out.flag, false);
    cr_assert_eq(out.color, BLUE);
    cr_assert_eq(out.n_tags, 3);
    cr_assert_str_eq(out.tags[0], "a");
    cr_assert_str_eq(out.tags[1], "b c");
    cr_assert_str_eq(out.tags[2], "d\te");
    cr_assert_eq(out.n_items, 2);
    cr_assert_str_eq(out.items[0].name, "first");
    cr_assert_eq(out.items[0].n_tags, 2);
    cr_assert_str_eq(out.items[0].tags[0], "x");
    cr_assert_str_eq(out.items[0].tags[1], "12");
    cr_assert_str_eq(out.items[1].name, "second");
    cr_assert_eq(out.items[1].n_tags, 0);
    cr_assert_null(out.items[1].tags);
    cr_assert_str_eq(out.nested.path, "/var/lib/x", "default inside a given section");
    cr_assert_eq(out.nested.depth, 0u);
    duet_config_free(&all_schema, &out);
    assert_no_leaks();
}

Test(config, int64_takes_its_whole_range)
{
    t_all out;
    cr_assert_eq(load_all("title: t\noffset: -9223372036854775808\n", &out), DUET_OK, "%s",
                 st.message);
    cr_assert_eq(out.offset, INT64_MIN);
    duet_config_free(&all_schema, &out);
    cr_assert_eq(load_all("title: t\noffset: +9223372036854775807\n", &out), DUET_OK, "%s",
                 st.message);
    cr_assert_eq(out.offset, INT64_MAX);
    duet_config_free(&all_schema, &out);
    expect_all_error("title: t\noffset: 9223372036854775808\n",
                     "t.yaml:2:9: offset: 9223372036854775808 is out of range "
                     "(-9223372036854775808 .. 9223372036854775807)");
    expect_all_error("title: t\noffset: -99999999999999999999999\n",
                     "t.yaml:2:9: offset: -99999999999999999999999 is out of range "
                     "(-9223372036854775808 .. 9223372036854775807)");
}

Test(config, aliases_are_followed_into_separate_copies)
{
    duet_gateway_config cfg;
    cr_assert_eq(load_gateway("workers: [&w {url: 'tcp://a:1'}, *w]\n", &cfg), DUET_OK, "%s",
                 st.message);
    cr_assert_eq(cfg.n_workers, 2);
    cr_assert_str_eq(cfg.workers[1].url, "tcp://a:1");
    cr_assert_neq(cfg.workers[0].url, cfg.workers[1].url, "each entry owns its strings");
    duet_gateway_config_free(&cfg);
    assert_no_leaks();
}

/* ---- errors ------------------------------------------------------------------------- */

Test(config, unknown_keys_name_where_and_what_is_known)
{
    expect_worker_error("tls:\n  insecure: true\nlisen: x\n",
                        "w.yaml:3:1: unknown key \"lisen\" in the top level "
                        "(known: listen, model, scheduler, kv_cache, tls, rpc, admission, log)");
    expect_worker_error("tls:\n  certdir: certs\n",
                        "w.yaml:2:3: unknown key \"certdir\" in tls "
                        "(known: certs_dir, name, ca, cert, key, insecure)");
    expect_gateway_error("workers:\n  - url: a\n  - url: b\n    sever_name: w\n",
                         "g.yaml:4:5: unknown key \"sever_name\" in workers[1] "
                         "(known: url, server_name)");
    expect_gateway_error(
        "workers:\n  - url: a\nadmission:\n  burst: 2\n",
        "g.yaml:3:1: unknown key \"admission\" in the top level "
        "(known: workers, http, api_keys, routing, limits, sessions, tls, rpc, log)");
    expect_worker_error("? [a, b]\n: c\n",
                        "w.yaml:1:3: a key in the top level must be a name, not a list");
    assert_no_leaks();
}

Test(config, wrong_type_for_bool)
{
    expect_worker_error("tls:\n  insecure: maybe\n",
                        "w.yaml:2:13: wrong type for tls.insecure: expected true or false, got "
                        "\"maybe\"");
    expect_worker_error("tls:\n  insecure: yes\n",
                        "w.yaml:2:13: wrong type for tls.insecure: expected true or false, got "
                        "\"yes\"");
    expect_worker_error("tls:\n  insecure: \"true\"\n",
                        "w.yaml:2:13: wrong type for tls.insecure: expected true or false, got "
                        "\"true\" (quoted, so a string)");
    expect_worker_error("tls:\n  insecure: [true]\n",
                        "w.yaml:2:13: wrong type for tls.insecure: expected true or false, got a "
                        "list");
}

Test(config, wrong_type_for_integers)
{
    expect_worker_error("rpc:\n  max_frame_bytes: lots\n",
                        "w.yaml:2:20: wrong type for rpc.max_frame_bytes: expected an integer, "
                        "got \"lots\"");
    expect_worker_error("rpc:\n  max_frame_bytes: 1.5e6\n",
                        "w.yaml:2:20: wrong type for rpc.max_frame_bytes: expected an integer, "
                        "got \"1.5e6\"");
    expect_worker_error("rpc:\n  max_frame_bytes: '65536'\n",
                        "w.yaml:2:20: wrong type for rpc.max_frame_bytes: expected an integer, "
                        "got \"65536\" (quoted, so a string)");
    expect_worker_error("rpc:\n  max_frame_bytes: 0x\n",
                        "w.yaml:2:20: wrong type for rpc.max_frame_bytes: expected an integer, "
                        "got \"0x\"");
    expect_all_error("title: t\noffset: 12abc\n",
                     "t.yaml:2:9: wrong type for offset: expected an integer, got \"12abc\"");
    expect_all_error("title: t\noffset: {a: 1}\n",
                     "t.yaml:2:9: wrong type for offset: expected an integer, got a mapping");
}

Test(config, wrong_type_for_double_enum_and_string)
{
    expect_worker_error("admission:\n  burst: fast\n",
                        "w.yaml:2:10: wrong type for admission.burst: expected a number, got "
                        "\"fast\"");
    expect_worker_error("admission:\n  burst: .inf\n",
                        "w.yaml:2:10: wrong type for admission.burst: expected a number, got "
                        "\".inf\"");
    expect_worker_error("admission:\n  burst: nan\n",
                        "w.yaml:2:10: wrong type for admission.burst: expected a number, got "
                        "\"nan\"");
    expect_worker_error("log:\n  level: verbose\n",
                        "w.yaml:2:10: wrong type for log.level: expected one of debug, info, warn, "
                        "error, got \"verbose\"");
    expect_worker_error("log:\n  level: off\n",
                        "w.yaml:2:10: wrong type for log.level: expected one of debug, info, warn, "
                        "error, got \"off\"");
    expect_worker_error("listen:\n  host: x\n",
                        "w.yaml:2:3: wrong type for listen: expected a string, got a mapping");
    expect_all_error("title: t\ntags: [a, [b]]\n",
                     "t.yaml:2:11: wrong type for tags[1]: expected a string, got a list");
    expect_all_error("title: t\ntags: [a, ~]\n",
                     "t.yaml:2:11: wrong type for tags[1]: expected a string, got no value");
    expect_all_error("title: \"a\\0b\"\n",
                     "t.yaml:1:8: title: the string contains a NUL character");
}

Test(config, out_of_range_numbers_show_the_range)
{
    expect_worker_error("rpc:\n  max_frame_bytes: 99999999999\n",
                        "w.yaml:2:20: rpc.max_frame_bytes: 99999999999 is out of range "
                        "(4096 .. 268435456)");
    expect_worker_error("rpc:\n  max_frame_bytes: 4095\n",
                        "w.yaml:2:20: rpc.max_frame_bytes: 4095 is out of range "
                        "(4096 .. 268435456)");
    expect_worker_error("rpc:\n  max_calls_per_connection: -1\n",
                        "w.yaml:2:29: rpc.max_calls_per_connection: -1 is out of range "
                        "(1 .. 65536)");
    expect_worker_error("rpc:\n  send_queue_bytes: 1073741825\n",
                        "w.yaml:2:21: rpc.send_queue_bytes: 1073741825 is out of range "
                        "(65536 .. 1073741824)");
    expect_worker_error("admission:\n  requests_per_second: 0\n",
                        "w.yaml:2:24: admission.requests_per_second: 0 is out of range "
                        "(0.001 .. 1000000)");
    expect_worker_error("admission:\n  burst: 1e999\n",
                        "w.yaml:2:10: admission.burst: 1e999 is out of range (1 .. 1000000)");
    expect_worker_error("admission:\n  burst: 1000000.5\n",
                        "w.yaml:2:10: admission.burst: 1000000.5 is out of range (1 .. 1000000)");
    expect_all_error("title: t\nnested:\n  depth: 10\n",
                     "t.yaml:3:10: nested.depth: 10 is out of range (0 .. 9)");
}

Test(config, missing_required_keys_point_at_their_mapping)
{
    expect_gateway_error("workers:\n  - url: a\n  - server_name: w\n",
                         "g.yaml:3:5: missing required key workers[1].url");
    expect_gateway_error("workers:\n  - url: a\n  - ~\n",
                         "g.yaml:3:5: missing required key workers[1].url");
    expect_gateway_error("workers:\n  - url:\n",
                         "g.yaml:2:5: workers[0].url has no value, and it is required");
    expect_all_error("count: 3\n", "t.yaml:1:1: missing required key title");
    expect_all_error("title: t\nitems:\n  - tags: [a]\n",
                     "t.yaml:3:5: missing required key items[0].name");
    assert_no_leaks();
}

Test(config, empty_workers_list_is_an_error_naming_the_key)
{
    expect_gateway_error("workers: []\n", "g.yaml:1:10: workers: needs at least 1 entry, got 0");
}

Test(config, duplicate_keys_are_errors)
{
    expect_worker_error("listen: a\nlisten: b\n",
                        "w.yaml:2:1: duplicate key listen (first at line 1, column 1)");
    expect_worker_error("listen: a\ntls:\n  name: x\n  insecure: true\n  name: y\n",
                        "w.yaml:5:3: duplicate key tls.name (first at line 3, column 3)");
    expect_gateway_error("workers:\n  - url: a\n    url: b\n",
                         "g.yaml:3:5: duplicate key workers[0].url (first at line 2, column 5)");
    expect_worker_error("tls:\ntls:\n",
                        "w.yaml:2:1: duplicate key tls (first at line 1, column 1)");
}

Test(config, yaml_syntax_errors_carry_libyaml_text_and_position)
{
    expect_worker_error("listen: [a, b\n",
                        "w.yaml:2:1: invalid YAML: did not find expected ',' or ']' "
                        "(while parsing a flow sequence at 1:9)");
    expect_worker_error("tls:\n  name: a\n insecure: true\n",
                        "w.yaml:3:2: invalid YAML: did not find expected key "
                        "(while parsing a block mapping at 1:1)");
    expect_worker_error("tls:\n\tname: a\n",
                        "w.yaml:2:1: invalid YAML: found character that cannot start any token "
                        "(while scanning for the next token at 2:1)");
    expect_worker_error("listen: \"open\n",
                        "w.yaml:2:1: invalid YAML: found unexpected end of stream "
                        "(while scanning a quoted scalar at 1:9)");
    expect_worker_error("listen: *nowhere\n", "w.yaml:1:9: invalid YAML: found undefined alias");
    expect_worker_error("listen: a\nlog:\n  level: \xff\n",
                        "w.yaml:3:10: invalid YAML: invalid leading UTF-8 octet");
    expect_worker_error("listen: a\n---\nlisten: b\n",
                        "w.yaml:2:1: a second YAML document; a configuration file holds one");
    assert_no_leaks();
}

Test(config, mapping_and_sequence_mismatches)
{
    expect_worker_error("tls: [a, b]\n",
                        "w.yaml:1:6: wrong type for tls: expected a mapping, got a list");
    expect_worker_error("rpc: 5\n",
                        "w.yaml:1:6: wrong type for rpc: expected a mapping, got \"5\"");
    expect_gateway_error("workers:\n  url: x\n",
                         "g.yaml:2:3: wrong type for workers: expected a list of mappings, got a "
                         "mapping");
    expect_gateway_error("workers:\n  - tls+tcp://h:1\n",
                         "g.yaml:2:5: wrong type for workers[0]: expected a mapping, got "
                         "\"tls+tcp://h:1\"");
    expect_worker_error("- listen: a\n",
                        "w.yaml:1:1: wrong type for the top level: expected a mapping, got a list");
    expect_worker_error("just text\n", "w.yaml:1:1: wrong type for the top level: expected a "
                                       "mapping, got \"just text\"");
    expect_all_error("title: t\ntags: {a: b}\n",
                     "t.yaml:2:7: wrong type for tags: expected a list of strings, got a mapping");
}

Test(config, self_referencing_aliases_do_not_loop)
{
    expect_all_error("title: t\ntags: &t [*t]\n",
                     "t.yaml:2:7: wrong type for tags[0]: expected a string, got a list");
    t_all out;
    cr_assert_eq(load_all("title: t\nnested: &n\n  path: *n\n", &out), DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "wrong type for nested.path: expected a string, got a mapping"),
              "%s", st.message);
    assert_no_leaks();
}

Test(config, long_bad_values_are_shortened_in_messages)
{
    char text[400];
    snprintf(text, sizeof text, "tls:\n  insecure: %0200d\n", 7);
    expect_worker_error(text, "w.yaml:2:13: wrong type for tls.insecure: expected true or false, "
                              "got \"0000000000000000000000000000000000000000...\"");
    /* the cut never splits a UTF-8 character: 39 ASCII bytes, then a 2-byte \u00e9 */
    snprintf(text, sizeof text, "tls:\n  insecure: %s\u00e9\u00e9\u00e9\n",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    expect_worker_error(text, "w.yaml:2:13: wrong type for tls.insecure: expected true or false, "
                              "got \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u00e9...\"");
    expect_worker_error("tls:\n  name: \"a\\tb\"\n  insecure: \"a\\tb\"\n",
                        "w.yaml:3:13: wrong type for tls.insecure: expected true or false, got "
                        "\"a?b\" (quoted, so a string)");
}

/* ---- files -------------------------------------------------------------------------- */

Test(config, missing_file_is_not_found)
{
    duet_worker_config cfg;
    memset(&cfg, 0xA5, sizeof cfg);
    cr_assert_eq(duet_worker_config_load("/nonexistent/duet/worker.yaml", &cfg, &st),
                 DUET_NOT_FOUND);
    cr_assert_str_eq(st.message, "/nonexistent/duet/worker.yaml: cannot read: No such file or "
                                 "directory");
    cr_assert(all_zero(&cfg, sizeof cfg));
}

Test(config, file_errors_name_the_file)
{
    char dir[512], path[600];
    test_make_temp_dir(dir, sizeof dir, "duet-config");
    snprintf(path, sizeof path, "%s/worker.yaml", dir);
    write_file(path, "# a comment\nrpc:\n  connect_timeout_ms: 50\n");
    duet_worker_config cfg;
    cr_assert_eq(duet_worker_config_load(path, &cfg, &st), DUET_INVALID_ARGUMENT);
    char expected[1024];
    snprintf(expected, sizeof expected,
             "%s:3:23: rpc.connect_timeout_ms: 50 is out of range (100 .. 600000)", path);
    cr_assert_str_eq(st.message, expected);

    cr_assert_eq(duet_worker_config_load(dir, &cfg, &st), DUET_INVALID_ARGUMENT);
    snprintf(expected, sizeof expected, "%s: not a regular file", dir);
    cr_assert_str_eq(st.message, expected);

    write_file(path, "listen: tcp://127.0.0.1:9\n");
    cr_assert_eq(duet_worker_config_load(path, &cfg, &st), DUET_OK, "%s", st.message);
    cr_assert_str_eq(cfg.listen, "tcp://127.0.0.1:9");
    duet_worker_config_free(&cfg);

    duet_gateway_config gw;
    write_file(path, "workers:\n  - url: tcp://127.0.0.1:9\n");
    cr_assert_eq(duet_gateway_config_load(path, &gw, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(gw.n_workers, 1);
    duet_gateway_config_free(&gw);
    test_remove_dir(dir);
    assert_no_leaks();
}

Test(config, oversized_file_is_refused)
{
    char dir[512], path[600];
    test_make_temp_dir(dir, sizeof dir, "duet-config");
    snprintf(path, sizeof path, "%s/huge.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < (1 << 20) / 16 + 1; i++) {
        fputs("# padding......\n", f);
    }
    fclose(f);
    duet_worker_config cfg;
    cr_assert_eq(duet_worker_config_load(path, &cfg, &st), DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "too big for a configuration file"), "%s", st.message);
    test_remove_dir(dir);
}

/* ---- the shipped files -------------------------------------------------------------- */

Test(config, shipped_worker_yaml_has_the_documented_values)
{
    char path[1024];
    source_path(path, sizeof path, "conf/worker.yaml");
    duet_worker_config cfg;
    cr_assert_eq(duet_worker_config_load(path, &cfg, &st), DUET_OK, "%s", st.message);
    cr_assert_str_eq(cfg.listen, "tls+tcp://127.0.0.1:7700");
    cr_assert_str_eq(cfg.tls.certs_dir, "certs");
    cr_assert_str_eq(cfg.tls.name, "worker-1");
    cr_assert_null(cfg.tls.ca_file);
    cr_assert_null(cfg.tls.cert_file);
    cr_assert_null(cfg.tls.key_file);
    cr_assert_eq(cfg.tls.insecure, false);
    cr_assert_eq(cfg.rpc.max_frame_bytes, 16u << 20);
    cr_assert_eq(cfg.rpc.compress_threshold_bytes, 4096u);
    cr_assert_eq(cfg.rpc.max_calls_per_connection, 1024u);
    cr_assert_eq(cfg.rpc.send_queue_bytes, 8u << 20);
    cr_assert_eq(cfg.rpc.connect_timeout_ms, 5000u);
    cr_assert_eq(cfg.admission.requests_per_second, 20.0);
    cr_assert_eq(cfg.admission.burst, 40.0);
    cr_assert_eq(cfg.log.level, DUET_LOG_INFO);

    char ca[256], cert[256], key[256];
    cr_assert_eq(duet_tls_settings_resolve(&cfg.tls, ca, cert, key, sizeof ca, &st), DUET_OK, "%s",
                 st.message);
    cr_assert_str_eq(ca, "certs/ca.crt");
    cr_assert_str_eq(cert, "certs/worker-1.crt");
    cr_assert_str_eq(key, "certs/worker-1.key");
    duet_worker_config_free(&cfg);
    assert_no_leaks();
}

Test(config, shipped_gateway_yaml_has_the_documented_values)
{
    char path[1024];
    source_path(path, sizeof path, "conf/gateway.yaml");
    duet_gateway_config cfg;
    cr_assert_eq(duet_gateway_config_load(path, &cfg, &st), DUET_OK, "%s", st.message);
    cr_assert_eq(cfg.n_workers, 1);
    cr_assert_str_eq(cfg.workers[0].url, "tls+tcp://127.0.0.1:7700");
    cr_assert_str_eq(cfg.workers[0].server_name, "worker-1");
    cr_assert_str_eq(cfg.tls.certs_dir, "certs");
    cr_assert_str_eq(cfg.tls.name, "gateway-1");
    cr_assert_eq(cfg.tls.insecure, false);
    cr_assert_eq(cfg.rpc.max_frame_bytes, 16u << 20);
    cr_assert_eq(cfg.rpc.connect_timeout_ms, 5000u);
    cr_assert_eq(cfg.log.level, DUET_LOG_INFO);

    char ca[256], cert[256], key[256];
    cr_assert_eq(duet_tls_settings_resolve(&cfg.tls, ca, cert, key, sizeof ca, &st), DUET_OK, "%s",
                 st.message);
    cr_assert_str_eq(cert, "certs/gateway-1.crt");
    duet_gateway_config_free(&cfg);
    assert_no_leaks();
}

/* Every key of the schema appears in the file, with a comment on the line above it. */
static void check_documented(const char *file, const char *text, yaml_document_t *doc,
                             yaml_node_t *mapping, const duet_config_schema *schema,
                             const char *path)
{
    cr_assert_eq(mapping->type, YAML_MAPPING_NODE, "%s: %s is not a mapping", file, path);
    for (size_t i = 0; i < schema->n_fields; i++) {
        const duet_config_field *f = &schema->fields[i];
        yaml_node_t *key = NULL, *value = NULL;
        for (yaml_node_pair_t *p = mapping->data.mapping.pairs.start;
             p < mapping->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            if (strcmp((const char *)k->data.scalar.value, f->key) == 0) {
                key = k;
                value = yaml_document_get_node(doc, p->value);
            }
        }
        cr_assert_not_null(key, "%s does not show the key %s%s", file, path, f->key);

        /* the text of the line above the key */
        size_t line = key->start_mark.line;
        cr_assert_gt(line, 0, "%s: %s%s on line 1 has no comment above", file, path, f->key);
        const char *above = text;
        for (size_t l = 0; l + 1 < line; l++) {
            above = strchr(above, '\n') + 1;
        }
        while (*above == ' ') {
            above++;
        }
        cr_assert_eq(*above, '#', "%s:%zu: key %s%s has no comment above it", file, line + 1, path,
                     f->key);

        char child[256];
        snprintf(child, sizeof child, "%s%s.", path, f->key);
        if (f->type == DUET_CONFIG_SECTION) {
            check_documented(file, text, doc, value, f->section, child);
        } else if (f->type == DUET_CONFIG_SECTION_LIST) {
            cr_assert_eq(value->type, YAML_SEQUENCE_NODE);
            cr_assert_gt(value->data.sequence.items.top - value->data.sequence.items.start, 0);
            yaml_node_t *first = yaml_document_get_node(doc, value->data.sequence.items.start[0]);
            check_documented(file, text, doc, first, f->section, child);
        }
    }
}

static void check_shipped_file(const char *relative, const duet_config_schema *schema)
{
    char path[1024];
    source_path(path, sizeof path, relative);
    size_t len;
    char *text = test_read_file(path, &len);
    cr_assert_not_null(text, "cannot read %s", path);
    yaml_parser_t parser;
    yaml_document_t doc;
    cr_assert(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    cr_assert(yaml_parser_load(&parser, &doc), "%s does not parse", relative);
    check_documented(relative, text, &doc, yaml_document_get_root_node(&doc), schema, "");
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(text);
}

Test(config, shipped_files_show_and_explain_every_key)
{
    check_shipped_file("conf/worker.yaml", &duet_worker_config_schema);
    check_shipped_file("conf/gateway.yaml", &duet_gateway_config_schema);
}

static void check_defaults_in_range(const duet_config_schema *schema)
{
    for (size_t i = 0; i < schema->n_fields; i++) {
        const duet_config_field *f = &schema->fields[i];
        switch (f->type) {
        case DUET_CONFIG_INT64:
        case DUET_CONFIG_UINT32:
            cr_assert(f->default_int >= f->min_int && f->default_int <= f->max_int,
                      "default of %s outside its range", f->key);
            if (f->type == DUET_CONFIG_UINT32) {
                cr_assert(f->min_int >= 0 && f->max_int <= UINT32_MAX, "%s", f->key);
            }
            break;
        case DUET_CONFIG_DOUBLE:
            cr_assert(f->default_double >= f->min_double && f->default_double <= f->max_double,
                      "default of %s outside its range", f->key);
            break;
        case DUET_CONFIG_ENUM: {
            bool found = false;
            for (const duet_config_enum_value *e = f->enum_values; e->name; e++) {
                found = found || e->value == f->default_int;
            }
            cr_assert(found, "default of %s is not one of its names", f->key);
            break;
        }
        case DUET_CONFIG_SECTION:
        case DUET_CONFIG_SECTION_LIST:
            cr_assert_eq(f->member_size, f->section->struct_size, "%s", f->key);
            check_defaults_in_range(f->section);
            break;
        default:
            break;
        }
    }
}

Test(config, every_default_lies_in_its_own_range)
{
    check_defaults_in_range(&duet_worker_config_schema);
    check_defaults_in_range(&duet_gateway_config_schema);
}

/* ---- tls paths ---------------------------------------------------------------------- */

Test(config, tls_paths_from_certs_dir_and_name)
{
    duet_tls_settings s = {.certs_dir = "/etc/duet", .name = "w1"};
    char ca[64], cert[64], key[64];
    cr_assert_eq(duet_tls_settings_resolve(&s, ca, cert, key, sizeof ca, &st), DUET_OK);
    cr_assert_str_eq(ca, "/etc/duet/ca.crt");
    cr_assert_str_eq(cert, "/etc/duet/w1.crt");
    cr_assert_str_eq(key, "/etc/duet/w1.key");
}

Test(config, tls_explicit_paths_win)
{
    duet_tls_settings s = {.certs_dir = "/etc/duet", .name = "w1", .ca_file = "/x/ca.pem"};
    char ca[64], cert[64], key[64];
    cr_assert_eq(duet_tls_settings_resolve(&s, ca, cert, key, sizeof ca, &st), DUET_OK);
    cr_assert_str_eq(ca, "/x/ca.pem");
    cr_assert_str_eq(cert, "/etc/duet/w1.crt");

    duet_tls_settings only_explicit = {.ca_file = "a", .cert_file = "b", .key_file = "c"};
    cr_assert_eq(duet_tls_settings_resolve(&only_explicit, ca, cert, key, sizeof ca, &st), DUET_OK,
                 "%s", st.message);
    cr_assert_str_eq(ca, "a");
    cr_assert_str_eq(cert, "b");
    cr_assert_str_eq(key, "c");
}

Test(config, tls_without_certificates_needs_insecure)
{
    duet_tls_settings s = {0};
    char ca[64], cert[64], key[64];
    cr_assert_eq(duet_tls_settings_resolve(&s, ca, cert, key, sizeof ca, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert_str_eq(st.message, "tls: no certificates configured: set tls.certs_dir and tls.name "
                                 "(or tls.ca, tls.cert and tls.key), or set tls.insecure: true "
                                 "to use only plain tcp:// and ipc://");
    s.insecure = true;
    cr_assert_eq(duet_tls_settings_resolve(&s, ca, cert, key, sizeof ca, &st), DUET_OK);
    cr_assert_str_eq(ca, "");
    cr_assert_str_eq(cert, "");
    cr_assert_str_eq(key, "");
}

Test(config, tls_half_configured_says_what_is_missing)
{
    char ca[64], cert[64], key[64];
    duet_tls_settings no_name = {.certs_dir = "certs", .insecure = true};
    cr_assert_eq(duet_tls_settings_resolve(&no_name, ca, cert, key, sizeof ca, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert_str_eq(st.message, "tls.cert is not set, and there is no tls.name to find it in "
                                 "certs");
    duet_tls_settings no_dir = {.name = "w1"};
    cr_assert_eq(duet_tls_settings_resolve(&no_dir, ca, cert, key, sizeof ca, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert_str_eq(st.message, "tls.ca is not set, and there is no tls.certs_dir to find it in");
    duet_tls_settings slash = {.certs_dir = "certs", .name = "../w1"};
    cr_assert_eq(duet_tls_settings_resolve(&slash, ca, cert, key, sizeof ca, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert(strstr(st.message, "tls.name \"../w1\" contains '/'"), "%s", st.message);
    duet_tls_settings long_dir = {.certs_dir = "/d",
                                  .name = "a-node-name-that-is-far-too-long-for-the-buffer"};
    cr_assert_eq(duet_tls_settings_resolve(&long_dir, ca, cert, key, 48, &st),
                 DUET_INVALID_ARGUMENT);
    cr_assert_str_eq(st.message, "tls.cert: the path is longer than 47 characters");
    cr_assert_str_eq(ca, "", "no half-written result on error");
}

/* ---- robustness --------------------------------------------------------------------- */

/* Loads text with the schema that fits name; every outcome must be clean. */
static void load_anything(const char *name, const char *text, const duet_config_schema *schema)
{
    union {
        duet_worker_config worker;
        duet_gateway_config gateway;
        t_all all;
    } out;
    duet_code rc = duet_config_load_string(name, text, schema, &out, &st);
    if (rc == DUET_OK) {
        duet_config_free(schema, &out);
        return;
    }
    cr_assert_eq(rc, DUET_INVALID_ARGUMENT, "%s", st.message);
    cr_assert_eq(strncmp(st.message, name, strlen(name)), 0, "message without file: %s",
                 st.message);
    cr_assert(all_zero(&out, schema->struct_size), "failed load left data behind");
}

static char *read_source(const char *relative)
{
    char path[1024];
    source_path(path, sizeof path, relative);
    char *text = test_read_file(path, NULL);
    cr_assert_not_null(text, "cannot read %s", path);
    return text;
}

Test(config, every_prefix_of_a_valid_file_is_handled)
{
    const char *generic = "title: t\noffset: -3\ncount: 5\nratio: 0.75\nflag: false\n"
                          "color: red\ntags: [a, b]\nitems:\n  - name: n\n    tags:\n      - x\n"
                          "nested: {path: /p, depth: 2}\n";
    char *worker = read_source("conf/worker.yaml");
    char *gateway = read_source("conf/gateway.yaml");
    struct {
        const char *text;
        const duet_config_schema *schema;
    } inputs[] = {
        {worker, &duet_worker_config_schema},
        {gateway, &duet_gateway_config_schema},
        {generic, &all_schema},
    };
    size_t failures = 0, successes = 0;
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        size_t len = strlen(inputs[i].text);
        char *prefix = malloc(len + 1);
        for (size_t n = 0; n <= len; n++) {
            memcpy(prefix, inputs[i].text, n);
            prefix[n] = '\0';
            load_anything("prefix.yaml", prefix, inputs[i].schema);
            if (st.code == DUET_OK) {
                successes++;
            } else {
                failures++;
            }
        }
        free(prefix);
    }
    /* Cutting through a key or a list must produce errors, not silence. */
    cr_assert_gt(failures, 100);
    cr_assert_gt(successes, 100);
    free(worker);
    free(gateway);
    assert_no_leaks();
}

/* "title: t\ntags: " and then levels nested lists, closed or not. */
static char *nested_tags(size_t levels, bool closed)
{
    char *text = malloc(2 * levels + 32);
    size_t n = (size_t)sprintf(text, "title: t\ntags: ");
    memset(text + n, '[', levels);
    memset(text + n + levels, ']', closed ? levels : 0);
    text[n + levels + (closed ? levels : 0)] = '\0';
    return text;
}

Test(config, deep_nesting_is_refused_quickly)
{
    /* the mapping is level 1 and tags level 2: 63 lists reach the limit of 64 */
    char *text = nested_tags(63, true);
    expect_all_error(text, "t.yaml:2:8: wrong type for tags[0]: expected a string, got a list");
    free(text);
    text = nested_tags(64, true);
    expect_all_error(text, "t.yaml:2:70: nested deeper than 64 levels");
    free(text);
    /* without the limit libyaml would take minutes over these */
    text = nested_tags(500000, true);
    expect_all_error(text, "t.yaml:2:70: nested deeper than 64 levels");
    free(text);
    text = nested_tags(500000, false);
    expect_all_error(text, "t.yaml:2:70: nested deeper than 64 levels");
    free(text);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

Test(config, random_corruption_never_crashes_or_leaks)
{
    static const char alphabet[] = ":-[]{}#&*!|>'\"%@`,? \n\t~0123456789abcxyz.\\\xc3\xff";
    char *sources[] = {read_source("conf/worker.yaml"), read_source("conf/gateway.yaml")};
    const duet_config_schema *schemas[] = {&duet_worker_config_schema, &duet_gateway_config_schema};
    for (int round = 0; round < 3000; round++) {
        int which = (int)(rng_next() % 2);
        size_t len = strlen(sources[which]);
        char *text = malloc(len + 64);
        memcpy(text, sources[which], len + 1);
        int edits = 1 + (int)(rng_next() % 4);
        for (int e = 0; e < edits && len > 0; e++) {
            size_t at = rng_next() % len;
            switch (rng_next() % 3) {
            case 0: /* overwrite one byte */
                text[at] = alphabet[rng_next() % (sizeof alphabet - 1)];
                break;
            case 1: { /* delete a run */
                size_t run = 1 + rng_next() % 40;
                run = run > len - at ? len - at : run;
                memmove(text + at, text + at + run, len - at - run + 1);
                len -= run;
                break;
            }
            default: /* insert one byte */
                memmove(text + at + 1, text + at, len - at + 1);
                text[at] = alphabet[rng_next() % (sizeof alphabet - 1)];
                len++;
                break;
            }
        }
        load_anything("fuzz.yaml", text, schemas[which]);
        free(text);
    }
    free(sources[0]);
    free(sources[1]);
    assert_no_leaks();
}
