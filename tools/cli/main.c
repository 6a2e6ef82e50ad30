/* duet: the command-line client of a duet gateway.
 *
 *   duet ask "question"   one answer, streamed to stdout, in a session of its own (or in
 *                         the one --session names)
 *   duet chat             a conversation in a session, with line editing and history
 *   duet sessions ...     list, show, rename and delete the sessions the gateway keeps
 *
 * It talks to the gateway's HTTP API (docs/http-api.md) over HTTP or HTTPS, the same door
 * as every other client. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_number.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: duet [options] ask [QUESTION]\n"
            "       duet [options] chat\n"
            "       duet [options] sessions [list | show ID | rename ID TITLE | delete ID]\n"
            "\n"
            "Talks to a duet gateway: streams answers as they are written, and keeps each\n"
            "conversation in a session the gateway stores.\n"
            "\n"
            "  ask [QUESTION]         one answer in a new session (with --session, the next\n"
            "                         turn of that one); the question from stdin when it is\n"
            "                         \"-\" or missing and stdin is not a terminal. The session\n"
            "                         and token counts go to stderr.\n"
            "  chat                   a conversation; the first message starts a session\n"
            "  sessions               your sessions: number, id, title, messages, last update\n"
            "  sessions show ID       a session's system prompt and messages (partial\n"
            "                         answers marked [partial])\n"
            "  sessions rename ID TITLE\n"
            "  sessions delete ID     delete a session and its messages\n"
            "\n"
            "  -g, --gateway URL      the gateway, http:// or https:// (default $DUET_GATEWAY,\n"
            "                         else http://127.0.0.1:8080)\n"
            "  -k, --api-key KEY      the API key (default $DUET_API_KEY, else the first line\n"
            "                         of ~/.config/duet/api-key)\n"
            "      --ca FILE          trust the CA in FILE (PEM, e.g. the lab's ca.crt) for\n"
            "                         an HTTPS gateway (default $DUET_CA, else the system's)\n"
            "  -S, --session ID       ask or chat in this session\n"
            "  -s, --system TEXT      the system prompt of a new session (with --session, it\n"
            "                         replaces that session's)\n"
            "  -n, --max-tokens N     longest answer, in tokens\n"
            "  -q, --quiet            no session and token counts on stderr\n"
            "  -h, --help             this text\n"
            "\n"
            "An ID is a session's id or any unique start of it (the 8 digits lists show).\n"
            "\n"
            "In chat:\n"
            "  /new                   the next message starts a new session\n"
            "  /sessions              your sessions, numbered\n"
            "  /switch N|ID           continue session N of that list, or that id\n"
            "  /system TEXT           set the session's system prompt (alone: clear it)\n"
            "  /rename TITLE          rename the session\n"
            "  /quit                  leave (Ctrl-D too); Ctrl-C stops an answer\n");
}

/* The API key and where it came from (for the message when the gateway refuses it). */
typedef struct {
    char key[512];
    char source[1100];
} api_key;

static void find_api_key(api_key *k)
{
    if (k->key[0]) {
        return; /* --api-key */
    }
    const char *env = getenv("DUET_API_KEY");
    if (env && env[0]) {
        snprintf(k->key, sizeof k->key, "%s", env);
        snprintf(k->source, sizeof k->source, "DUET_API_KEY");
        return;
    }
    const char *home = getenv("HOME");
    char path[1024];
    snprintf(path, sizeof path, "%s/.config/duet/api-key", home ? home : ".");
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(k->key, sizeof k->key, f)) {
            k->key[strcspn(k->key, "\r\n")] = '\0';
            snprintf(k->source, sizeof k->source, "%s", path);
        }
        fclose(f);
    }
}

int duet_cli_fail(const duet_status *st)
{
    fprintf(stderr, "duet: %s\n", st->message);
    return 1;
}

static const char *from_env(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

int main(int argc, char **argv)
{
    duet_cli c = {0};
    api_key key = {0};
    duet_gateway_config cfg = {.url = from_env("DUET_GATEWAY"), .ca_file = from_env("DUET_CA")};
    if (!cfg.url) {
        cfg.url = "http://127.0.0.1:8080";
    }
    enum { OPT_CA = 256 };
    static const struct option longopts[] = {{"gateway", required_argument, NULL, 'g'},
                                             {"api-key", required_argument, NULL, 'k'},
                                             {"ca", required_argument, NULL, OPT_CA},
                                             {"session", required_argument, NULL, 'S'},
                                             {"system", required_argument, NULL, 's'},
                                             {"max-tokens", required_argument, NULL, 'n'},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int opt;
    /* options may come before or after the command: "duet ask --session ID ..." */
    while ((opt = getopt_long(argc, argv, "g:k:S:s:n:qh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'g':
            cfg.url = optarg;
            break;
        case 'k':
            snprintf(key.key, sizeof key.key, "%s", optarg);
            snprintf(key.source, sizeof key.source, "--api-key");
            break;
        case OPT_CA:
            cfg.ca_file = optarg;
            break;
        case 'S':
            c.session = optarg;
            break;
        case 's':
            c.system = optarg;
            break;
        case 'n':
            if (!duet_parse_long(optarg, 1, 1000000, &c.max_tokens)) {
                fprintf(stderr, "duet: --max-tokens wants a number 1..1000000, not \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case 'q':
            c.quiet = true;
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
    const char *cmd = argv[optind++];
    int n_args = argc - optind;
    bool is_ask = strcmp(cmd, "ask") == 0, is_chat = strcmp(cmd, "chat") == 0,
         is_sessions = strcmp(cmd, "sessions") == 0;
    if (!is_ask && !is_chat && !is_sessions) {
        fprintf(stderr, "duet: unknown command \"%s\" (ask, chat, sessions; --help)\n", cmd);
        return 2;
    }
    if ((is_ask && n_args > 1) || (is_chat && n_args > 0)) {
        fprintf(stderr, is_ask ? "duet ask: one question (quote it)\n"
                               : "duet chat: no arguments (the messages are typed)\n");
        return 2;
    }
    if (is_sessions && c.session) {
        fprintf(stderr, "duet sessions: name the session after the subcommand "
                        "(duet sessions show ID)\n");
        return 2;
    }
    find_api_key(&key);
    cfg.api_key = key.key;
    cfg.key_source = key.source[0] ? key.source : NULL;
    duet_status st;
    if (duet_gateway_open(&cfg, &c.gw, &st) != DUET_OK) {
        return duet_cli_fail(&st);
    }
    int rc = is_ask    ? duet_cli_ask(&c, n_args ? argv[optind] : NULL)
             : is_chat ? duet_cli_chat(&c)
                       : duet_cli_sessions(&c, n_args, argv + optind);
    duet_gateway_close(c.gw);
    return rc;
}
