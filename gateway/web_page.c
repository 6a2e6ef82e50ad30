#include "web_page.h"

#include <stdio.h>
#include <string.h>

/* Only the page's own origin: its files, and fetch() to the API beside them. */
const char duet_web_csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
                            "img-src 'self'; connect-src 'self'; object-src 'none'; "
                            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".svg", "image/svg+xml; charset=utf-8"},
    {".json", "application/json; charset=utf-8"},
    {".webmanifest", "application/manifest+json; charset=utf-8"},
    {".txt", "text/plain; charset=utf-8"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
};

const char *duet_web_content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(dot, types[i].ext) == 0) {
            return types[i].type;
        }
    }
    return NULL;
}

static void serve(duet_http_exchange *x, void *arg)
{
    const duet_web_file *f = arg;
    const char *headers[] = {"Cache-Control",
                             "no-cache",
                             "X-Content-Type-Options",
                             "nosniff",
                             "Referrer-Policy",
                             "no-referrer",
                             "Content-Security-Policy",
                             duet_web_csp,
                             NULL};
    duet_http_reply(x, 200, duet_web_content_type(f->name), f->data, f->len, headers);
}

duet_code duet_web_page_register(duet_http_server *srv, duet_status *st)
{
    const duet_web_file *index = NULL;
    for (size_t i = 0; i < duet_web_file_count; i++) {
        if (!duet_web_content_type(duet_web_files[i].name)) {
            return duet_status_set(st, DUET_INTERNAL,
                                   "web page: no Content-Type for gateway/web/%s",
                                   duet_web_files[i].name);
        }
        if (strcmp(duet_web_files[i].name, "index.html") == 0) {
            index = &duet_web_files[i];
        }
    }
    if (!index) {
        return duet_status_set(st, DUET_INTERNAL, "web page: gateway/web/index.html is missing");
    }
    /* the files are constant: each route's argument points into the generated table */
    duet_code c = duet_http_server_route(srv, "GET", "/", false, serve, (void *)index, st);
    for (size_t i = 0; c == DUET_OK && i < duet_web_file_count; i++) {
        char path[300];
        snprintf(path, sizeof path, "/%s", duet_web_files[i].name);
        c = duet_http_server_route(srv, "GET", path, false, serve, (void *)&duet_web_files[i], st);
    }
    return c;
}
