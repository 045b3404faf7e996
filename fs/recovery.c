/** @file
 * The recovery folder (-o recovery_dir=, default ~/.cache/safs/recovery,
 * created 0700): bytes a program wrote that did not become the platform's
 * document (invalid, failed, conflict), and documents saved before a
 * delete. Name: <UTC yyyymmddTHHMMSSZ>_<reason>_<project>_<folder|root>_<file>,
 * every `/` in a part replaced by `_`. A counter is appended when two
 * saves fall in the same second.
 *
 * Bounded (-o recovery_max=, default 1 GiB): once the folder holds more,
 * its oldest files (by mtime, then name) are removed until it holds 90 % of
 * the cap, never the file just written; one log line per pruning, one per
 * removed file at info level.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
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

/* What this daemon knows of the folder's size: scanned at the first save,
 * then kept up to date (other mounts sharing the folder are seen at the
 * next pruning, which scans again). */
static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t rec_bytes;
static int rec_known;

struct rec_ent { char *name; time_t mtime; uint64_t size; };

static int ent_cmp(const void *a, const void *b)
{
    const struct rec_ent *x = a, *y = b;
    if (x->mtime != y->mtime)
        return x->mtime < y->mtime ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Scan @p dir: its regular files into *out (if out), their total size. */
static uint64_t scan(const char *dir, struct rec_ent **out, size_t *n_out)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint64_t total = 0;
    size_t n = 0, cap = 0;
    struct rec_ent *v = NULL;
    if (out)
        *out = NULL, *n_out = 0;
    if (!d)
        return 0;
    while ((de = readdir(d))) {
        struct stat sb;
        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) ||
            !S_ISREG(sb.st_mode))
            continue;
        total += (uint64_t)sb.st_size;
        if (!out)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 256;
            struct rec_ent *nv = realloc(v, nc * sizeof *nv);
            if (!nv)
                break;
            v = nv;
            cap = nc;
        }
        v[n].name = strdup(de->d_name);
        if (!v[n].name)
            break;
        v[n].mtime = sb.st_mtime;
        v[n].size = (uint64_t)sb.st_size;
        n++;
    }
    closedir(d);
    if (out)
        *out = v, *n_out = n;
    return total;
}

/* Called after @p just (a name in dir) was written with @p len bytes. */
static void prune(struct fs_state *st, const char *dir, const char *just, size_t len)
{
    uint64_t max = st->cfg->recovery_max;
    struct rec_ent *v = NULL;
    size_t n = 0, removed = 0;
    uint64_t freed = 0, total;

    if (!max)
        return;
    pthread_mutex_lock(&rec_mu);
    if (!rec_known) {
        rec_bytes = scan(dir, NULL, NULL);
        rec_known = 1;
    } else {
        rec_bytes += len;
    }
    if (rec_bytes <= max) {
        pthread_mutex_unlock(&rec_mu);
        return;
    }
    total = scan(dir, &v, &n);
    qsort(v, n, sizeof *v, ent_cmp);
    for (size_t i = 0; i < n && total > max / 10 * 9; i++) {
        char p[PATH_MAX];
        if (!strcmp(v[i].name, just))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, v[i].name);
        if (unlink(p) == 0) {
            total -= v[i].size;
            freed += v[i].size;
            removed++;
            fs_log(st, LOG_INFO, "recovery folder: removed %s (%llu bytes), the oldest",
                   v[i].name, (unsigned long long)v[i].size);
        }
    }
    rec_bytes = total;
    pthread_mutex_unlock(&rec_mu);
    fs_log(st, LOG_WARNING, "recovery folder %s is over recovery_max (%llu bytes): removed its %zu "
                            "oldest file(s), %llu bytes; it holds %llu bytes",
           dir, (unsigned long long)max, removed, (unsigned long long)freed,
           (unsigned long long)total);
    for (size_t i = 0; i < n; i++)
        free(v[i].name);
    free(v);
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
    prune(st, dir, strrchr(path, '/') + 1, len);
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
