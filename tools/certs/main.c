/* duet-certs: the command line. Reads and checks every argument first (a mistake there
 * is exit 2 and nothing is written), then makes and writes the files (a failure there is
 * exit 1). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certfiles.h"
#include "certgen.h"
#include "inspect.h"
#include "names.h"
#include "status.h"
#include "validity.h"
#include "x509_ext.h"

#define EXIT_USAGE 2
#define DEFAULT_CA_NAME "duet lab CA"
#define DEFAULT_CA_DAYS 3653 /* 10 years, leap days included */
#define DEFAULT_NODE_DAYS 825

static const char usage_text[] =
    "usage: duet-certs init DIR [--cn NAME] [--days N] [--force]\n"
    "       duet-certs issue DIR NAME [--dns HOST]... [--ip ADDR]... [--days N]\n"
    "                  [--not-before YYYY-MM-DD] [--not-after YYYY-MM-DD] [--force]\n"
    "       duet-certs show FILE.crt\n"
    "       duet-certs help\n"
    "\n"
    "Makes the certificates duet's nodes use for mutual TLS: one CA for the lab and one\n"
    "certificate per node (gateway, worker), all EC P-256. No openssl needed.\n"
    "\n"
    "init DIR\n"
    "    Creates the lab's CA: DIR/ca.crt (copy it to every node) and DIR/ca.key (mode\n"
    "    0600; keep it private: whoever has it can add nodes). DIR is created, mode 0700,\n"
    "    if missing.\n"
    "  --cn NAME         the CA's name (default \"" DEFAULT_CA_NAME "\"): letters, digits,\n"
    "                    spaces and - _ . : ( ) @\n"
    "  --days N          valid for N days from one hour ago (default 3653, 10 years)\n"
    "\n"
    "issue DIR NAME\n"
    "    Creates DIR/NAME.crt and DIR/NAME.key (mode 0600), signed by DIR/ca.key. NAME is\n"
    "    the node's DNS-style name (letters, digits, '-' and '.'): the certificate's CN\n"
    "    and first DNS name, and the name other nodes check when they dial this one. The\n"
    "    certificate serves both listening and dialing (serverAuth and clientAuth).\n"
    "  --dns HOST        another DNS name for the node (repeatable)\n"
    "  --ip ADDR         an IPv4 or IPv6 address for the node (repeatable); mbedTLS peers\n"
    "                    match DNS names only, so dial by IP with NAME as the server name\n"
    "  --days N          valid for N days from the start (default 825)\n"
    "  --not-before YYYY-MM-DD\n"
    "                    valid from 00:00:00 UTC that day (default: one hour ago, which\n"
    "                    allows for clocks a little behind)\n"
    "  --not-after YYYY-MM-DD\n"
    "                    valid until 23:59:59 UTC that day, instead of --days. Past dates\n"
    "                    for both make an expired certificate, for tests and drills:\n"
    "                    --not-before 2020-01-01 --not-after 2020-12-31\n"
    "\n"
    "  --force           (init and issue) replace existing files instead of refusing;\n"
    "                    a new CA makes every certificate the old one signed useless\n"
    "\n"
    "show FILE.crt\n"
    "    Prints subject, issuer, validity, names and key usages, and checks the\n"
    "    certificate against ca.crt in the same folder.\n"
    "\n"
    "The daemons take `--certs DIR --name NAME` and read DIR/ca.crt, DIR/NAME.crt and\n"
    "DIR/NAME.key. Exit status: 0 done; 1 failed (nothing written, or only whole files);\n"
    "2 usage error (nothing written).\n";

typedef enum { CMD_HELP, CMD_INIT, CMD_ISSUE, CMD_SHOW } command;

/* The command line, checked and resolved: everything run_* needs and nothing to parse. */
typedef struct {
    command cmd;
    const char *dir;
    const char *name; /* issue: node NAME; init: the CA's CN */
    const char *file; /* show */
    bool force;
    validity valid;
    x509_alt_name *alt; /* issue: --dns then --ip, in order; argc entries allocated */
    size_t alt_count;
} plan;

typedef struct {
    const char *cn, *days, *not_before, *not_after;
    const char **dns, **ip;
    size_t dns_count, ip_count;
    char *positional[3];
    size_t positional_count;
    bool force;
} raw_args;

static bool command_takes(command cmd, const char *option)
{
    static const char *const init_options[] = {"--cn", "--days", "--force", NULL};
    static const char *const issue_options[] = {"--dns",       "--ip",    "--days", "--not-before",
                                                "--not-after", "--force", NULL};
    const char *const *list = cmd == CMD_INIT    ? init_options
                              : cmd == CMD_ISSUE ? issue_options
                                                 : NULL;
    for (size_t i = 0; list && list[i]; i++) {
        if (strcmp(list[i], option) == 0) {
            return true;
        }
    }
    return false;
}

/* Splits argv (after the command word) into options and positional arguments. Accepts
 * "--opt value" and "--opt=value"; "--" ends the options. */
static duet_code split_args(command cmd, const char *cmd_word, int argc, char **argv, raw_args *raw,
                            bool *wants_help, duet_status *st)
{
    bool options_done = false;
    for (int i = 0; i < argc; i++) {
        char *arg = argv[i];
        if (options_done || strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (!options_done && strcmp(arg, "--") == 0) {
                options_done = true;
                continue;
            }
            if (!options_done && strcmp(arg, "-h") == 0) {
                *wants_help = true;
                return DUET_OK;
            }
            if (!options_done && arg[0] == '-' && arg[1] != '\0') {
                return duet_status_set(st, DUET_INVALID_ARGUMENT, "unknown option '%s' for %s", arg,
                                       cmd_word);
            }
            if (raw->positional_count == 3) {
                return duet_status_set(st, DUET_INVALID_ARGUMENT, "too many arguments for %s: '%s'",
                                       cmd_word, arg);
            }
            raw->positional[raw->positional_count++] = arg;
            continue;
        }
        char option[32];
        const char *value = NULL;
        const char *eq = strchr(arg, '=');
        size_t option_len = eq ? (size_t)(eq - arg) : strlen(arg);
        snprintf(option, sizeof option, "%.*s", (int)option_len, arg);
        if (strcmp(option, "--help") == 0) {
            *wants_help = true;
            return DUET_OK;
        }
        if (!command_takes(cmd, option)) {
            return duet_status_set(st, DUET_INVALID_ARGUMENT, "unknown option '%s' for %s", option,
                                   cmd_word);
        }
        if (strcmp(option, "--force") == 0) {
            if (eq) {
                return duet_status_set(st, DUET_INVALID_ARGUMENT, "--force takes no value");
            }
            raw->force = true;
            continue;
        }
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return duet_status_set(st, DUET_INVALID_ARGUMENT, "%s needs a value", option);
        }
        if (strcmp(option, "--dns") == 0) {
            raw->dns[raw->dns_count++] = value;
        } else if (strcmp(option, "--ip") == 0) {
            raw->ip[raw->ip_count++] = value;
        } else {
            const char **slot = strcmp(option, "--cn") == 0           ? &raw->cn
                                : strcmp(option, "--days") == 0       ? &raw->days
                                : strcmp(option, "--not-before") == 0 ? &raw->not_before
                                                                      : &raw->not_after;
            if (*slot) {
                return duet_status_set(st, DUET_INVALID_ARGUMENT, "%s given twice", option);
            }
            *slot = value;
        }
    }
    return DUET_OK;
}

static duet_code expect_positional(const raw_args *raw, size_t want, const char *shape,
                                   duet_status *st)
{
    if (raw->positional_count != want) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "expected: duet-certs %s", shape);
    }
    return DUET_OK;
}

/* Also drops trailing slashes, so that messages show lab/ca.key, not lab//ca.key. */
static duet_code check_dir_argument(char *dir, duet_status *st)
{
    if (dir[0] == '\0') {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "DIR is empty");
    }
    for (size_t len = strlen(dir); len > 1 && dir[len - 1] == '/'; len--) {
        dir[len - 1] = '\0';
    }
    if (strlen(dir) > CERTFILES_PATH_MAX - CERTS_DNS_NAME_MAX - 16) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "DIR is too long");
    }
    return DUET_OK;
}

static duet_code plan_init(const raw_args *raw, plan *p, duet_status *st)
{
    duet_code code = expect_positional(raw, 1, "init DIR [--cn NAME] [--days N] [--force]", st);
    if (code != DUET_OK || (code = check_dir_argument(raw->positional[0], st)) != DUET_OK) {
        return code;
    }
    p->dir = raw->positional[0];
    p->name = raw->cn ? raw->cn : DEFAULT_CA_NAME;
    if ((code = certs_check_ca_common_name(p->name, st)) != DUET_OK) {
        return code;
    }
    validity_request req = {0};
    if (raw->days && (code = validity_parse_days(raw->days, &req.days, st)) != DUET_OK) {
        return code;
    }
    return validity_resolve(&req, time(NULL), DEFAULT_CA_DAYS, &p->valid, st);
}

static duet_code plan_issue(const raw_args *raw, plan *p, duet_status *st)
{
    duet_code code = expect_positional(raw, 2, "issue DIR NAME [options] (see --help)", st);
    if (code != DUET_OK || (code = check_dir_argument(raw->positional[0], st)) != DUET_OK) {
        return code;
    }
    p->dir = raw->positional[0];
    p->name = raw->positional[1];
    if ((code = certs_check_node_name(p->name, st)) != DUET_OK) {
        return code;
    }
    for (size_t i = 0; i < raw->dns_count; i++) {
        if ((code = certs_check_dns_name(raw->dns[i], "--dns", st)) != DUET_OK) {
            return code;
        }
        p->alt[p->alt_count++] = (x509_alt_name){.kind = X509_ALT_DNS, .dns = raw->dns[i]};
    }
    for (size_t i = 0; i < raw->ip_count; i++) {
        x509_alt_name *ip = &p->alt[p->alt_count++];
        ip->kind = X509_ALT_IP;
        if ((code = certs_parse_ip(raw->ip[i], ip->ip, &ip->ip_len, st)) != DUET_OK) {
            return code;
        }
    }
    validity_request req = {.not_before_date = raw->not_before, .not_after_date = raw->not_after};
    if (raw->days && (code = validity_parse_days(raw->days, &req.days, st)) != DUET_OK) {
        return code;
    }
    return validity_resolve(&req, time(NULL), DEFAULT_NODE_DAYS, &p->valid, st);
}

static duet_code make_plan(int argc, char **argv, plan *p, duet_status *st)
{
    if (argc < 2) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "no command given");
    }
    const char *word = argv[1];
    if (strcmp(word, "help") == 0 || strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0) {
        p->cmd = CMD_HELP;
        return DUET_OK;
    }
    p->cmd = strcmp(word, "init") == 0    ? CMD_INIT
             : strcmp(word, "issue") == 0 ? CMD_ISSUE
             : strcmp(word, "show") == 0  ? CMD_SHOW
                                          : CMD_HELP;
    if (p->cmd == CMD_HELP) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "unknown command '%s'", word);
    }
    raw_args raw = {0};
    size_t slots = (size_t)argc;
    raw.dns = calloc(slots, sizeof *raw.dns);
    raw.ip = calloc(slots, sizeof *raw.ip);
    p->alt = calloc(slots, sizeof *p->alt);
    duet_code code = DUET_OK;
    if (!raw.dns || !raw.ip || !p->alt) {
        code = duet_status_set(st, DUET_RESOURCE_EXHAUSTED, "out of memory");
    }
    bool wants_help = false;
    if (code == DUET_OK) {
        code = split_args(p->cmd, word, argc - 2, argv + 2, &raw, &wants_help, st);
    }
    if (code == DUET_OK && wants_help) {
        p->cmd = CMD_HELP;
    } else if (code == DUET_OK) {
        p->force = raw.force;
        if (p->cmd == CMD_INIT) {
            code = plan_init(&raw, p, st);
        } else if (p->cmd == CMD_ISSUE) {
            code = plan_issue(&raw, p, st);
        } else {
            code = expect_positional(&raw, 1, "show FILE.crt", st);
            p->file = raw.positional[0];
        }
    }
    free(raw.dns);
    free(raw.ip);
    return code;
}

/* Writes key then certificate; if the certificate cannot be written, a key written just
 * now is taken away again so that a retry does not trip over it. */
static duet_code write_pair(const certgen_output *made, const char *cert_path, const char *key_path,
                            bool force, duet_status *st)
{
    duet_code code =
        certfiles_write(key_path, made->key_pem, made->key_len, CERTFILES_KEY_MODE, force, st);
    if (code != DUET_OK) {
        return code;
    }
    code =
        certfiles_write(cert_path, made->cert_pem, made->cert_len, CERTFILES_CERT_MODE, force, st);
    if (code != DUET_OK && !force) {
        remove(key_path);
    }
    return code;
}

static void describe_dates(const validity *v, char *out, size_t cap)
{
    char from[24], to[24];
    validity_format_human(v->not_before, from);
    validity_format_human(v->not_after, to);
    time_t now = time(NULL);
    snprintf(out, cap, "%s to %s%s", from, to,
             now > v->not_after    ? ", ALREADY EXPIRED"
             : now < v->not_before ? ", not valid yet"
                                   : "");
}

static duet_code run_init(const plan *p, duet_status *st)
{
    char cert_path[CERTFILES_PATH_MAX], key_path[CERTFILES_PATH_MAX];
    duet_code code = certfiles_path(cert_path, sizeof cert_path, p->dir, "ca", "crt", st);
    if (code == DUET_OK) {
        code = certfiles_path(key_path, sizeof key_path, p->dir, "ca", "key", st);
    }
    const char *targets[] = {cert_path, key_path};
    if (code == DUET_OK) {
        code = certfiles_refuse_existing(targets, 2, p->force, st);
    }
    bool replacing = code == DUET_OK && (certfiles_exists(cert_path) || certfiles_exists(key_path));
    if (code == DUET_OK) {
        code = certfiles_make_dir(p->dir, st);
    }
    certgen_output made = {0};
    if (code == DUET_OK) {
        code = certgen_make_ca(p->name, p->valid, &made, st);
    }
    if (code == DUET_OK) {
        code = write_pair(&made, cert_path, key_path, p->force, st);
    }
    if (code == DUET_OK) {
        char dates[96];
        describe_dates(&p->valid, dates, sizeof dates);
        printf("wrote %s (CA \"%s\", valid %s)\n", cert_path, p->name, dates);
        printf("wrote %s (mode 0600; keep it private: whoever has it can add nodes)\n", key_path);
        if (replacing) {
            fprintf(stderr, "duet-certs: note: replaced the old CA; certificates it signed no "
                            "longer verify, issue them again\n");
        }
        printf("next: duet-certs issue %s NAME for each node; the daemons then take "
               "--certs %s --name NAME\n",
               p->dir, p->dir);
    }
    certgen_output_free(&made);
    return code;
}

static duet_code run_issue(const plan *p, duet_status *st)
{
    char ca_cert[CERTFILES_PATH_MAX], ca_key[CERTFILES_PATH_MAX];
    char cert_path[CERTFILES_PATH_MAX], key_path[CERTFILES_PATH_MAX];
    duet_code code = certfiles_path(ca_cert, sizeof ca_cert, p->dir, "ca", "crt", st);
    if (code == DUET_OK) {
        code = certfiles_path(ca_key, sizeof ca_key, p->dir, "ca", "key", st);
    }
    if (code == DUET_OK) {
        code = certfiles_path(cert_path, sizeof cert_path, p->dir, p->name, "crt", st);
    }
    if (code == DUET_OK) {
        code = certfiles_path(key_path, sizeof key_path, p->dir, p->name, "key", st);
    }
    if (code != DUET_OK) {
        return code;
    }
    if (!certfiles_exists(ca_key)) {
        return duet_status_set(st, DUET_FAILED_PRECONDITION,
                               "%s not found: run `duet-certs init %s` first", ca_key, p->dir);
    }
    if (!certfiles_exists(ca_cert)) {
        return duet_status_set(st, DUET_FAILED_PRECONDITION,
                               "%s not found (but %s is): restore it, or start over with "
                               "`duet-certs init %s --force`",
                               ca_cert, ca_key, p->dir);
    }
    const char *targets[] = {cert_path, key_path};
    if ((code = certfiles_refuse_existing(targets, 2, p->force, st)) != DUET_OK) {
        return code;
    }
    certgen_node_request req = {
        .name = p->name, .extra_names = p->alt, .extra_count = p->alt_count, .valid = p->valid};
    certgen_output made = {0};
    code = certgen_issue_node(&req, ca_cert, ca_key, &made, st);
    if (code == DUET_OK) {
        code = write_pair(&made, cert_path, key_path, p->force, st);
    }
    if (code == DUET_OK) {
        char dates[96];
        describe_dates(&p->valid, dates, sizeof dates);
        printf("wrote %s (CN=%s, signed by %s, valid %s)\n", cert_path, p->name, made.issuer,
               dates);
        printf("wrote %s (mode 0600; copy it only to the node %s)\n", key_path, p->name);
        if (made.outlives_issuer) {
            fprintf(stderr,
                    "duet-certs: note: %s ends after %s does; it stops verifying when "
                    "the CA expires\n",
                    cert_path, ca_cert);
        }
        printf("use: start the node's daemon with --certs %s --name %s (elsewhere: copy ca.crt, "
               "%s.crt and %s.key into one folder there and give that as --certs)\n",
               p->dir, p->name, p->name, p->name);
    }
    certgen_output_free(&made);
    return code;
}

int main(int argc, char **argv)
{
    plan p = {0};
    duet_status st;
    duet_status_clear(&st);
    if (make_plan(argc, argv, &p, &st) != DUET_OK) {
        fprintf(stderr, "duet-certs: %s\nrun `duet-certs --help` for usage\n", st.message);
        free(p.alt);
        return EXIT_USAGE;
    }
    duet_code code = DUET_OK;
    switch (p.cmd) {
    case CMD_HELP:
        fputs(usage_text, stdout);
        break;
    case CMD_INIT:
        code = run_init(&p, &st);
        break;
    case CMD_ISSUE:
        code = run_issue(&p, &st);
        break;
    case CMD_SHOW:
        code = certs_show(p.file, stdout, &st);
        break;
    }
    free(p.alt);
    if (code != DUET_OK) {
        fprintf(stderr, "duet-certs: %s\n", st.message);
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}
