/* Helpers shared by the test suites: scratch folders, the project's tools, free ports. */
#ifndef DUET_TEST_SUPPORT_H
#define DUET_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>

/* Creates a fresh empty folder under $TMPDIR (or /tmp) and writes its path to out. */
void test_make_temp_dir(char *out, size_t cap, const char *prefix);

/* Removes a folder made by test_make_temp_dir and everything in it. */
void test_remove_dir(const char *path);

/* Runs DUET_TOOLS_DIR/<argv[0]> with the given arguments (NULL-terminated), output to
 * /dev/null unless DUET_TEST_VERBOSE is set; returns its exit status (-1 if it could not run). */
int test_run_tool(const char *const argv[]);

/* Like test_run_tool, but returns the tool's standard output (malloc'd, NUL-terminated) in
 * *out, and its standard error in *err when err is not NULL. */
int test_run_tool_capture(const char *const argv[], char **out, char **err);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int test_free_port(void);

/* Reads a whole file into a malloc'd NUL-terminated buffer; NULL on error. */
char *test_read_file(const char *path, size_t *len);

/* Makes a lab CA in dir with duet-certs and issues the nodes named (NULL-terminated),
 * each with its name as DNS SAN. Aborts the test run if duet-certs fails. */
void test_make_lab(const char *dir, const char *const names[]);

/* A tool started in the background (test_spawn_tool), its standard error going to a file. */
typedef struct {
    int pid;
    char err_path[256];
} test_process;

/* Starts DUET_TOOLS_DIR/<argv[0]> in the background; stdout goes to /dev/null, stderr to
 * p->err_path (read it with test_process_stderr). Aborts the test run if fork fails. */
void test_spawn_tool(const char *const argv[], test_process *p);

/* Sends sig and waits up to timeout_ms for the process to end, then kills it (SIGKILL).
 * Returns its exit status, 128 + signal when a signal ended it, or -1 when it had to be
 * killed after the timeout. */
int test_process_stop(test_process *p, int sig, int timeout_ms);

/* Waits up to timeout_ms for the process to exit on its own; status as above, -2 if still
 * running. */
int test_process_wait(test_process *p, int timeout_ms);

/* Sends an HTTP/1.1 request (the whole text) to 127.0.0.1:port and reads the answer into
 * out (NUL-terminated) until the server closes or a Content-Length body is complete, at
 * most timeout_ms. Returns the bytes read; aborts the test run if it cannot connect. */
size_t test_http(int port, const char *request, char *out, size_t cap, int timeout_ms);

/* Waits until the gateway process listens on port and its /health reports a ready
 * worker, at most timeout_ms. False (why in why) when it exits or the time runs out. */
bool test_wait_gateway_ready(test_process *gateway, int port, int timeout_ms, char *why,
                             size_t cap);

/* The status code of an HTTP answer read by test_http, or -1. */
int test_http_status(const char *answer);

/* Kills the process if it still runs and removes its stderr file. */
void test_process_forget(test_process *p);

/* What the process wrote to stderr so far (malloc'd, NUL-terminated). */
char *test_process_stderr(const test_process *p);

/* Runs a program found on PATH (argv[0], NULL-terminated arguments), standard input from
 * /dev/null, and waits for it. Its standard output and error, together, go to *out
 * (malloc'd, NUL-terminated) when out is not NULL. Returns the exit status (127 when it
 * could not be started), 128 + signal when a signal ended it, -1 on a local error. */
int test_run_program(const char *const argv[], char **out);

/* Waits up to timeout_ms until something listens on TCP port (any local address of this
 * process's network namespace). */
bool test_wait_listening(int port, int timeout_ms);
#endif
