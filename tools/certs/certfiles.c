#include "certfiles.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_MODE 0700

static duet_code errno_status(duet_status *st, int err, const char *action, const char *path)
{
    duet_code code = err == EACCES || err == EPERM || err == EROFS ? DUET_PERMISSION_DENIED
                     : err == ENOENT || err == ENOTDIR             ? DUET_NOT_FOUND
                     : err == EEXIST                               ? DUET_ALREADY_EXISTS
                     : err == ENOSPC || err == EDQUOT              ? DUET_RESOURCE_EXHAUSTED
                                                                   : DUET_INTERNAL;
    return duet_status_set(st, code, "cannot %s %s: %s", action, path, strerror(err));
}

static duet_code refuse(const char *path, duet_status *st)
{
    return duet_status_set(st, DUET_ALREADY_EXISTS,
                           "%s already exists: not overwriting it (use --force to replace it)",
                           path);
}

duet_code certfiles_path(char *out, size_t cap, const char *dir, const char *name, const char *ext,
                         duet_status *st)
{
    int n = snprintf(out, cap, "%s/%s.%s", dir, name, ext);
    if (n < 0 || (size_t)n >= cap) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "path %s/%s.%s is too long", dir, name,
                               ext);
    }
    return DUET_OK;
}

bool certfiles_exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

duet_code certfiles_make_dir(const char *dir, duet_status *st)
{
    char path[CERTFILES_PATH_MAX];
    if (strlen(dir) == 0 || strlen(dir) >= sizeof path) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "DIR '%s' is empty or too long", dir);
    }
    strcpy(path, dir);
    /* Each prefix ending before a '/', then the whole path: mkdir -p. */
    for (char *slash = path + 1;; slash++) {
        bool last = *slash == '\0';
        if (!last && *slash != '/') {
            continue;
        }
        *slash = '\0';
        if (mkdir(path, DIR_MODE) == 0) {
            if (chmod(path, DIR_MODE) != 0) { /* the umask may have taken bits away */
                return errno_status(st, errno, "set permissions of", path);
            }
        } else if (errno != EEXIST) {
            return errno_status(st, errno, "create folder", path);
        }
        if (last) {
            break;
        }
        *slash = '/';
    }
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        return errno_status(st, errno, "open folder", dir);
    }
    if (!S_ISDIR(sb.st_mode)) {
        return duet_status_set(st, DUET_FAILED_PRECONDITION, "%s exists and is not a folder", dir);
    }
    return DUET_OK;
}

duet_code certfiles_refuse_existing(const char *const *paths, size_t count, bool replace,
                                    duet_status *st)
{
    for (size_t i = 0; i < count && !replace; i++) {
        if (certfiles_exists(paths[i])) {
            return refuse(paths[i], st);
        }
    }
    return DUET_OK;
}

static duet_code write_all(int fd, const void *data, size_t len, const char *path, duet_status *st)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return errno_status(st, errno, "write", path);
        }
        p += n;
        len -= (size_t)n;
    }
    return DUET_OK;
}

/* Gives the finished temporary file its real name. link() fails when path exists, so
 * nothing can be clobbered between the caller's check and here. */
static duet_code move_into_place(const char *tmp, const char *path, bool replace, duet_status *st)
{
    if (replace) {
        return rename(tmp, path) == 0 ? DUET_OK : errno_status(st, errno, "replace", path);
    }
    if (link(tmp, path) == 0) {
        return DUET_OK;
    }
    if (errno == EEXIST) {
        return refuse(path, st);
    }
    if (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS) {
        return errno_status(st, errno, "create", path);
    }
    /* A filesystem without hard links (FAT on a USB stick): check, then rename. */
    if (certfiles_exists(path)) {
        return refuse(path, st);
    }
    return rename(tmp, path) == 0 ? DUET_OK : errno_status(st, errno, "create", path);
}

duet_code certfiles_write(const char *path, const void *data, size_t len, mode_t mode, bool replace,
                          duet_status *st)
{
    char tmp[CERTFILES_PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        return duet_status_set(st, DUET_INVALID_ARGUMENT, "path %s is too long", path);
    }
    int fd = mkstemp(tmp); /* created 0600: nothing can read a key while it is written */
    if (fd < 0) {
        return errno_status(st, errno, "create a file next to", path);
    }
    duet_code code = write_all(fd, data, len, tmp, st);
    if (code == DUET_OK && fchmod(fd, mode) != 0) {
        code = errno_status(st, errno, "set permissions of", tmp);
    }
    if (code == DUET_OK && fsync(fd) != 0) {
        code = errno_status(st, errno, "flush", tmp);
    }
    if (close(fd) != 0 && code == DUET_OK) {
        code = errno_status(st, errno, "close", tmp);
    }
    if (code == DUET_OK) {
        code = move_into_place(tmp, path, replace, st);
    }
    unlink(tmp); /* gone already when renamed; the spare name when linked */
    return code;
}
