/** @file
 * The recovery folder (-o recovery_dir=, default ~/.cache/safs/recovery,
 * created 0700): bytes a program wrote that did not become the platform's
 * document (invalid, failed, conflict), and documents saved before a
 * delete. Name: <UTC yyyymmddTHHMMSSZ>_<reason>_<project>_<folder|root>_<file>,
 * every `/` in a part replaced by `_`. A counter is appended when two
 * saves fall in the same second.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs_i.h"

static int mkdir_p(const char *dir, mode_t mode)
{
    char tmp[PATH_MAX];
    size_t n = strlen(dir);
    if (n >= sizeof tmp)
        return -ENAMETOOLONG;
    memcpy(tmp, dir, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, mode) && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, mode) && errno != EEXIST)
        return -errno;
    return 0;
}

static void add_part(char *dst, size_t cap, const char *part)
{
    size_t l = strlen(dst);
    for (const char *p = part; *p && l + 1 < cap; p++)
        dst[l++] = *p == '/' ? '_' : *p;
    dst[l] = 0;
}

static void recover(struct fs_state *st, const char *reason, struct fs_folder *f,
                    const char *pname, const char *folder, const char *fname,
                    const char *data, size_t len)
{
    const char *dir = st->cfg->recovery_dir;
    char name[NAME_MAX + 1], path[PATH_MAX], stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    int fd = -1;

    if (!dir || mkdir_p(dir, 0700)) {
        fs_log(st, LOG_ERR, "recovery folder %s cannot be created: %s bytes of %s are lost",
               dir ? dir : "(unset)", reason, fname);
        return;
    }
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(name, sizeof name, "%s_%s_", stamp, reason);
    /* a concurrent re-list may rename (free) the project's or folder's name */
    pthread_mutex_lock(&st->mu);
    add_part(name, sizeof name - 16, f ? f->proj->p.name : pname ? pname : "unknown");
    add_part(name, sizeof name - 16, "_");
    add_part(name, sizeof name - 16,
             f ? (f->is_root ? "root" : f->name) : folder ? folder : "root");
    pthread_mutex_unlock(&st->mu);
    add_part(name, sizeof name - 16, "_");
    add_part(name, sizeof name - 16, fname ? fname : "unknown");
    for (int i = 0; i < 1000; i++) {
        if (i == 0)
            snprintf(path, sizeof path, "%s/%s", dir, name);
        else
            snprintf(path, sizeof path, "%s/%s.%d", dir, name, i);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    if (fd < 0) {
        fs_log(st, LOG_ERR, "recovery file %s: %s: %s bytes of %s are lost", path,
               strerror(errno), reason, fname);
        return;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            fs_log(st, LOG_ERR, "recovery file %s: %s", path, strerror(errno));
            break;
        }
        off += (size_t)w;
    }
    close(fd);
    fs_log(st, LOG_WARNING, "%s: %zu bytes (%s) saved to recovery file %s", fname, len, reason,
           path);
}

void fs_recover(struct fs_state *st, const char *reason, struct fs_folder *f,
                const char *fname, const char *data, size_t len)
{
    recover(st, reason, f, NULL, NULL, fname, data, len);
}

void fs_recover_named(struct fs_state *st, const char *reason, const char *project,
                      const char *folder, const char *fname, const char *data, size_t len)
{
    recover(st, reason, NULL, project, folder, fname, data, len);
}
