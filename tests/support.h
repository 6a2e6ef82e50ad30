/* Helpers shared by the test suites: scratch folders, the project's tools, free ports. */
#ifndef DUET_TEST_SUPPORT_H
#define DUET_TEST_SUPPORT_H

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
#endif
