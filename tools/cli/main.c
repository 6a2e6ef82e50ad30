/* duet: the command-line client of a duet gateway.
 *
 *   duet ask "question"   one answer, streamed to stdout (the question from stdin when it
 *                         is "-", or missing while stdin is not a terminal)
 *   duet chat             a conversation with line editing and history
 *
 * It talks to the gateway's OpenAI-compatible HTTP API, the same door as every other
 * client. */
#include <editline/readline.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_number.h"
#include "sse_client.h"

#define MAX_QUESTION_BYTES (1u << 20)

typedef struct {
    const char *gateway;
    char api_key[512];
    const char *system;
    long max_tokens; /* 0: the gateway's default */
    bool quiet;      /* no token counts on stderr */
} cli_opts;

static void usage(FILE *f)
{
    fprintf(f, "usage: duet [options] ask [QUESTION]\n"
               "       duet [options] chat\n"
               "\n"
               "Talks to a duet gateway's chat API and streams the answers.\n"
               "\n"
               "  -g, --gateway URL      the gateway (default $DUET_GATEWAY, else\n"
               "                         http://127.0.0.1:8080)\n"
               "  -k, --api-key KEY      the API key (default $DUET_API_KEY, else the first line\n"
               "                         of ~/.config/duet/api-key)\n"
               "  -s, --system TEXT      a system prompt\n"
               "  -n, --max-tokens N     longest answer, in tokens\n"
               "  -q, --quiet            no token counts on stderr\n"
               "  -h, --help             this text\n"
               "\n"
               "In chat: /new starts over, /system TEXT sets the system prompt, /quit (or\n"
               "Ctrl-D) leaves.\n");
}

static void find_api_key(cli_opts *o)
{
    if (o->api_key[0]) {
        return;
    }
    const char *env = getenv("DUET_API_KEY");
    if (env && env[0]) {
        snprintf(o->api_key, sizeof o->api_key, "%s", env);
        return;
    }
    const char *home = getenv("HOME");
    char path[1024];
    snprintf(path, sizeof path, "%s/.config/duet/api-key", home ? home : ".");
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(o->api_key, sizeof o->api_key, f)) {
            o->api_key[strcspn(o->api_key, "\r\n")] = '\0';
        }
        fclose(f);
    }
}

/* Prints each piece and keeps the whole answer (the next turn sends it back). */
typedef struct {
    char *text;
    size_t len, cap;
} collected;

static void on_text(void *arg, const char *text, size_t len)
{
    collected *c = arg;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    if (c->len + len + 1 > c->cap) {
        size_t cap = (c->len + len + 1) * 2;
        char *p = realloc(c->text, cap);
        if (!p) {
            return;
        }
        c->text = p;
        c->cap = cap;
    }
    memcpy(c->text + c->len, text, len);
    c->len += len;
    c->text[c->len] = '\0';
}

/* One turn: sends messages, streams the answer, appends it to messages. 0, or 1 on error
 * (reported on stderr). */
static int converse(const cli_opts *o, json_t *messages)
{
    json_t *req = json_pack("{s:O, s:b, s:{s:b}}", "messages", messages, "stream", 1,
                            "stream_options", "include_usage", 1);
    if (req && o->max_tokens > 0) {
        json_object_set_new(req, "max_tokens", json_integer(o->max_tokens));
    }
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body) {
        fprintf(stderr, "duet: the message is not valid UTF-8 text\n");
        return 1;
    }
    collected c = {0};
    duet_cli_answer ans;
    duet_status st;
    duet_code rc = duet_cli_chat(o->gateway, o->api_key, body, on_text, &c, &ans, &st);
    free(body);
    if (c.len > 0) {
        putchar('\n');
    }
    if (rc != DUET_OK) {
        fprintf(stderr, "duet: %s\n", st.message);
        free(c.text);
        return 1;
    }
    json_array_append_new(
        messages, json_pack("{s:s, s:s}", "role", "assistant", "content", c.text ? c.text : ""));
    if (!o->quiet) {
        fprintf(stderr, "[%u prompt + %u answer tokens%s%s%s]\n", ans.prompt_tokens,
                ans.completion_tokens,
                strcmp(ans.finish_reason, "length") == 0 ? ", cut at the length limit" : "",
                ans.trimmed_messages ? ", older messages left out to fit the context" : "", "");
    }
    free(c.text);
    return 0;
}

static json_t *new_conversation(const char *system)
{
    json_t *m = json_array();
    if (system && system[0]) {
        json_array_append_new(m, json_pack("{s:s, s:s}", "role", "system", "content", system));
    }
    return m;
}

static int ask(const cli_opts *o, const char *question)
{
    char *from_stdin = NULL;
    if (!question || strcmp(question, "-") == 0) {
        if (!question && isatty(STDIN_FILENO)) {
            fprintf(stderr, "duet ask: give the question as an argument, or pipe it in\n");
            return 2;
        }
        size_t len = 0, cap = 0;
        FILE *mem = open_memstream(&from_stdin, &cap);
        char buf[4096];
        size_t r;
        while (mem && (r = fread(buf, 1, sizeof buf, stdin)) > 0 && len < MAX_QUESTION_BYTES) {
            fwrite(buf, 1, r, mem);
            len += r;
        }
        if (mem) {
            fclose(mem);
        }
        if (!from_stdin || len == 0) {
            free(from_stdin);
            fprintf(stderr, "duet ask: nothing came on stdin\n");
            return 2;
        }
        question = from_stdin;
    }
    json_t *m = new_conversation(o->system);
    json_array_append_new(m, json_pack("{s:s, s:s}", "role", "user", "content", question));
    int rc = converse(o, m);
    json_decref(m);
    free(from_stdin);
    return rc;
}

static int chat(cli_opts *o)
{
    json_t *m = new_conversation(o->system);
    printf("duet chat with %s: /new starts over, /system TEXT sets the system prompt, /quit "
           "leaves\n",
           o->gateway);
    char *line;
    while ((line = readline("you> ")) != NULL) {
        if (line[0] == '\0') {
            free(line);
            continue;
        }
        add_history(line);
        if (strcmp(line, "/quit") == 0 || strcmp(line, "/exit") == 0) {
            free(line);
            break;
        }
        if (strcmp(line, "/new") == 0) {
            json_decref(m);
            m = new_conversation(o->system);
            printf("(a new conversation)\n");
        } else if (strncmp(line, "/system", 7) == 0) {
            const char *text = line + 7 + strspn(line + 7, " ");
            json_t *old = m;
            m = new_conversation(text);
            size_t i;
            json_t *msg;
            json_array_foreach(old, i, msg)
            {
                const char *role = json_string_value(json_object_get(msg, "role"));
                if (role && strcmp(role, "system") != 0) {
                    json_array_append(m, msg);
                }
            }
            json_decref(old);
            printf("(system prompt %s)\n", text[0] ? "set" : "cleared");
        } else if (line[0] == '/') {
            printf("(unknown command %s: /new, /system TEXT, /quit)\n", line);
        } else {
            json_array_append_new(m, json_pack("{s:s, s:s}", "role", "user", "content", line));
            printf("duet> ");
            fflush(stdout);
            if (converse(o, m) != 0) {
                /* keep the question out of the history: it got no answer */
                json_array_remove(m, json_array_size(m) - 1);
            }
        }
        free(line);
    }
    json_decref(m);
    return 0;
}

int main(int argc, char **argv)
{
    cli_opts o = {0};
    const char *env = getenv("DUET_GATEWAY");
    o.gateway = env && env[0] ? env : "http://127.0.0.1:8080";
    static const struct option longopts[] = {{"gateway", required_argument, NULL, 'g'},
                                             {"api-key", required_argument, NULL, 'k'},
                                             {"system", required_argument, NULL, 's'},
                                             {"max-tokens", required_argument, NULL, 'n'},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "+g:k:s:n:qh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'g':
            o.gateway = optarg;
            break;
        case 'k':
            snprintf(o.api_key, sizeof o.api_key, "%s", optarg);
            break;
        case 's':
            o.system = optarg;
            break;
        case 'n': {
            if (!duet_parse_long(optarg, 1, 1000000, &o.max_tokens)) {
                fprintf(stderr, "duet: --max-tokens wants a number 1..1000000, not \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        }
        case 'q':
            o.quiet = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    find_api_key(&o);
    const char *cmd = argv[optind++];
    if (strcmp(cmd, "ask") == 0) {
        if (argc - optind > 1) {
            fprintf(stderr, "duet ask: one question (quote it)\n");
            return 2;
        }
        return ask(&o, optind < argc ? argv[optind] : NULL);
    }
    if (strcmp(cmd, "chat") == 0) {
        return chat(&o);
    }
    fprintf(stderr, "duet: unknown command \"%s\" (ask, chat)\n", cmd);
    return 2;
}
