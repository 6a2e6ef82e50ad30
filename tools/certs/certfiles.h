/* Where duet-certs keeps its files and how it writes them.
 *
 * DIR holds ca.crt, ca.key and NAME.crt / NAME.key per node. Private keys are 0600 and a
 * folder duet-certs creates is 0700, whatever the umask. Every file appears atomically
 * (written to a temporary name, then linked or renamed into place), so a crash never
 * leaves half a key, and without `replace` an existing file is never touched, even if
 * it appears between the check and the write. */
#ifndef DUET_CERTS_CERTFILES_H
#define DUET_CERTS_CERTFILES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "status.h"

#define CERTFILES_PATH_MAX 4096
#define CERTFILES_KEY_MODE 0600
#define CERTFILES_CERT_MODE 0644

/* out = DIR/NAME.EXT. INVALID_ARGUMENT when it does not fit in cap. */
duet_code certfiles_path(char *out, size_t cap, const char *dir, const char *name, const char *ext,
                         duet_status *st);

/* True when something exists at path (a dangling symlink counts). */
bool certfiles_exists(const char *path);

/* Creates dir and any missing parents as 0700; an existing folder is left as it is.
 * Anything else in the way, or no permission: an error naming the path. */
duet_code certfiles_make_dir(const char *dir, duet_status *st);

/* ALREADY_EXISTS naming the first of paths that exists, unless replace; lets a command
 * refuse before it makes keys or writes anything. */
duet_code certfiles_refuse_existing(const char *const *paths, size_t count, bool replace,
                                    duet_status *st);

/* Writes data to path with exactly this mode. Without replace an existing path is
 * ALREADY_EXISTS and left alone; with it the old file is replaced in one step. */
duet_code certfiles_write(const char *path, const void *data, size_t len, mode_t mode, bool replace,
                          duet_status *st);

#endif
