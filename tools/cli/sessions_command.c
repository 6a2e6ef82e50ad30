#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "session_calls.h"
#include "session_print.h"

static int list(const duet_cli *c)
{
    duet_status st;
    json_t *all;
    if (duet_sessions_list(c->gw, &all, &st) != DUET_OK) {
        return duet_cli_fail(&st);
    }
    duet_print_session_list(stdout, all);
    json_decref(all);
    return 0;
}

static int show(const duet_cli *c, const char *which)
{
    duet_status st;
    char id[DUET_SESSION_ID_MAX];
    json_t *s;
    if (duet_sessions_resolve(c->gw, which, id, &st) != DUET_OK ||
        duet_sessions_get(c->gw, id, &s, &st) != DUET_OK) {
        return duet_cli_fail(&st);
    }
    duet_print_session_heading(stdout, s);
    duet_print_messages(stdout, json_object_get(s, "messages"), 0);
    json_decref(s);
    return 0;
}

/* The words of a title given without quotes, joined by spaces (malloc'd). */
static char *join_words(int argc, char **argv)
{
    size_t len = 1;
    for (int i = 0; i < argc; i++) {
        len += strlen(argv[i]) + 1;
    }
    char *s = calloc(1, len);
    for (int i = 0; s && i < argc; i++) {
        strcat(s, argv[i]);
        if (i + 1 < argc) {
            strcat(s, " ");
        }
    }
    return s;
}

static int rename_session(const duet_cli *c, const char *which, int argc, char **argv)
{
    char *title = join_words(argc, argv);
    duet_status st;
    char id[DUET_SESSION_ID_MAX];
    json_t *s = NULL;
    int rc = 0;
    if (!title) {
        rc = 1;
        fprintf(stderr, "duet: out of memory\n");
    } else if (duet_sessions_resolve(c->gw, which, id, &st) != DUET_OK ||
               duet_sessions_update(c->gw, id, title, false, NULL, &s, &st) != DUET_OK) {
        rc = duet_cli_fail(&st);
    } else {
        const char *now = json_string_value(json_object_get(s, "title"));
        printf("session %.*s is now \"%s\"\n", DUET_SHORT_ID, id, now ? now : title);
    }
    json_decref(s);
    free(title);
    return rc;
}

static int delete_session(const duet_cli *c, const char *which)
{
    duet_status st;
    char id[DUET_SESSION_ID_MAX];
    if (duet_sessions_resolve(c->gw, which, id, &st) != DUET_OK ||
        duet_sessions_delete(c->gw, id, &st) != DUET_OK) {
        return duet_cli_fail(&st);
    }
    printf("deleted session %s\n", id);
    return 0;
}

int duet_cli_sessions(const duet_cli *c, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "list";
    if (strcmp(sub, "list") == 0 && argc <= 1) {
        return list(c);
    }
    if (strcmp(sub, "show") == 0 && argc == 2) {
        return show(c, argv[1]);
    }
    if (strcmp(sub, "rename") == 0 && argc >= 3) {
        return rename_session(c, argv[1], argc - 2, argv + 2);
    }
    if (strcmp(sub, "delete") == 0 && argc == 2) {
        return delete_session(c, argv[1]);
    }
    fprintf(stderr, "usage: duet sessions [list]\n"
                    "       duet sessions show ID\n"
                    "       duet sessions rename ID TITLE\n"
                    "       duet sessions delete ID\n"
                    "(ID: a session id, or any unique start of one)\n");
    return 2;
}
