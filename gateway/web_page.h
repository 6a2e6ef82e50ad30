/* The web chat page: the static files of gateway/web/, embedded into the gateway at build
 * time (gateway/CMakeLists.txt generates web_files.c from them) and served as they are.
 *
 * GET / is index.html; every file is also served by its name (GET /app.js). No API key is
 * needed: the page asks for one and keeps it in the browser. Each reply carries the file's
 * Content-Type (text with charset=utf-8), Cache-Control: no-cache (a new gateway's page is
 * used at once; the files are small), X-Content-Type-Options: nosniff, Referrer-Policy:
 * no-referrer and a Content-Security-Policy that allows only the page's own files and its
 * own origin: no inline script or style, no framing. */
#ifndef DUET_WEB_PAGE_H
#define DUET_WEB_PAGE_H

#include <stddef.h>

#include "http_server.h"
#include "status.h"

/* One embedded file: its name in gateway/web/ and its bytes (followed by a NUL not counted
 * in len). */
typedef struct {
    const char *name;
    const unsigned char *data;
    size_t len;
} duet_web_file;

/* The embedded files (the generated web_files.c), sorted by name. */
extern const duet_web_file duet_web_files[];
extern const size_t duet_web_file_count;

/* The Content-Security-Policy every file is served with. */
extern const char duet_web_csp[];

/* The Content-Type for a file name, by its extension; NULL for an extension the page has
 * no business serving. */
const char *duet_web_content_type(const char *name);

/* Routes GET / and GET /NAME for each embedded file. Only before the server starts.
 * INTERNAL when a file has no known Content-Type or index.html is missing (a build
 * mistake). */
duet_code duet_web_page_register(duet_http_server *srv, duet_status *st);

#endif
