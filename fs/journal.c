/** @file
 * The write-back journal (-o writeback, docs/fs-choices.md "Write-back"):
 * one directory per API URL and team under $XDG_STATE_HOME/safs/
 * (~/.local/state/safs/, /var/lib/safs/ without HOME), never under the
 * cache directory and never evicted.
 *
 *   lock               flock'd by the daemon that owns the journal, until it exits
 *   <seq>.rec          one journaled save: a JSON header line, then the
 *                      prepared document exactly as it is uploaded
 *   <seq>.up           the upload of <seq> succeeded (its status step may not have)
 *
 * A record is written to a temporary name, fsync'd, renamed and the
 * directory fsync'd: a crash leaves either no record or a whole one. The
 * uploader removes a record once its save has landed (upload and status);
 * the next mount replays what is left (uploader.c). No lock of the tree is
 * held here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>

#include "fs_i.h"

void fs_jrec_clear(struct fs_jrec *r)
{
    if (!r)
        return;
    free(r->name);
    free(r->pname);
    free(r->folder);
    free(r->fname);
    free(r->status);
    free(r->data);
    memset(r, 0, sizeof *r);
}

int fs_mkdir_p(const char *dir, mode_t mode)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, mode) && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, mode) && errno != EEXIST ? -1 : 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int r = 0;
    if (fd < 0)
        return -errno;
    if (fsync(fd))
        r = -errno;
    close(fd);
    return r;
}

void fs_team_key(const struct fs_state *st, char *buf, size_t n)
{
    /* keyed by API URL and team: the same team through another URL is
     * another platform */
    const char *url = st->cfg->url ? st->cfg->url : "";
    snprintf(buf, n, "%08x-team%lld", fs_crc32(url, strlen(url)), st->team_id);
}

int fs_journal_open(struct fs_state *st, char **dir_out, int *fd_out, char *err, size_t errlen)
{
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char base[PATH_MAX - 64], dir[PATH_MAX], lock[PATH_MAX + 8];
    char key[64];
    int fd;

    if (xdg && *xdg == '/')
        snprintf(base, sizeof base, "%s/safs", xdg);
    else if (home && *home)
        snprintf(base, sizeof base, "%s/.local/state/safs", home);
    else
        snprintf(base, sizeof base, "/var/lib/safs");
    fs_team_key(st, key, sizeof key);
    snprintf(dir, sizeof dir, "%s/%s", base, key);
    if (fs_mkdir_p(dir, 0700)) {
        snprintf(err, errlen, "-o writeback: cannot create the journal %s: %s", dir,
                 strerror(errno));
        return -1;
    }
    snprintf(lock, sizeof lock, "%s/lock", dir);
    fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "-o writeback: cannot open %s: %s", lock, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        snprintf(err, errlen, "-o writeback: the journal %s is in use by another safs daemon "
                 "of this team%s%s; one daemon at a time owns it (mount without -o "
                 "writeback, or unmount the other)", dir, *pid ? " (pid " : "",
                 *pid ? pid : "");
        if (*pid)
            strncat(err, ")", errlen - strlen(err) - 1);
        close(fd);
        return -1;
    }
    {
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) < 0)
            (void)0;
    }
    *dir_out = strdup(dir);
    *fd_out = fd;
    return 0;
}

static char *header(const struct fs_jrec *r)
{
    json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:b,s:I,s:i}",
                          "seq", (json_int_t)r->seq, "project_id", (json_int_t)r->project_id,
                          "folder_id", (json_int_t)r->folder_id, "item_id",
                          (json_int_t)r->item_id, "name", r->name ? r->name : "", "project",
                          r->pname ? r->pname : "", "folder", r->folder ? r->folder : "",
                          "file", r->fname ? r->fname : "", "blind", r->blind, "base_ms",
                          (json_int_t)r->base_ms, "base_status", r->base_status);
    char *s;
    if (!o)
        return NULL;
    if (r->status)
        json_object_set_new(o, "status", json_string(r->status));
    s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    return s;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int fs_journal_write(const char *dir, const struct fs_jrec *r)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    char *h = header(r);
    int fd, e;

    if (!h)
        return -ENOMEM;
    snprintf(tmp, sizeof tmp, "%s/.%016" PRIx64 ".tmp", dir, r->seq);
    snprintf(path, sizeof path, "%s/%016" PRIx64 ".rec", dir, r->seq);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        free(h);
        return -errno;
    }
    e = write_all(fd, h, strlen(h));
    if (!e)
        e = write_all(fd, "\n", 1);
    if (!e)
        e = write_all(fd, r->data, r->len);
    if (!e && fsync(fd))
        e = -errno;
    close(fd);
    free(h);
    if (!e && rename(tmp, path))
        e = -errno;
    if (!e)
        e = fsync_dir(dir);
    if (e)
        unlink(tmp);
    return e;
}

void fs_journal_mark_uploaded(const char *dir, const uint64_t *seqs, size_t n)
{
    char path[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        int fd;
        snprintf(path, sizeof path, "%s/%016" PRIx64 ".up", dir, seqs[i]);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
    if (n)
        fsync_dir(dir);
}

void fs_journal_remove(const char *dir, uint64_t seq)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%016" PRIx64 ".rec", dir, seq);
    unlink(path);
    snprintf(path, sizeof path, "%s/%016" PRIx64 ".up", dir, seq);
    unlink(path);
}

static char *dup_str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? strdup(s) : NULL;
}

static int load_one(const char *dir, const char *fn, struct fs_jrec *r)
{
    char path[PATH_MAX];
    FILE *f;
    char *buf = NULL, *nl;
    size_t cap = 0, len = 0;
    json_t *o;
    json_error_t je;
    struct stat sb;

    snprintf(path, sizeof path, "%s/%s", dir, fn);
    f = fopen(path, "rb");
    if (!f)
        return -1;
    if (fstat(fileno(f), &sb) == 0 && sb.st_size > 0) {
        cap = (size_t)sb.st_size + 1;
        buf = malloc(cap);
    }
    if (buf)
        len = fread(buf, 1, cap - 1, f);
    fclose(f);
    if (!buf)
        return -1;
    buf[len] = 0;
    nl = memchr(buf, '\n', len);
    if (!nl) {
        free(buf);
        return -1;
    }
    *nl = 0;
    o = json_loads(buf, 0, &je);
    if (!o) {
        free(buf);
        return -1;
    }
    memset(r, 0, sizeof *r);
    r->seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
    r->project_id = json_integer_value(json_object_get(o, "project_id"));
    r->folder_id = json_integer_value(json_object_get(o, "folder_id"));
    r->item_id = json_integer_value(json_object_get(o, "item_id"));
    r->name = dup_str(o, "name");
    r->pname = dup_str(o, "project");
    r->folder = dup_str(o, "folder");
    r->fname = dup_str(o, "file");
    r->status = dup_str(o, "status");
    r->blind = json_is_true(json_object_get(o, "blind"));
    r->base_ms = json_integer_value(json_object_get(o, "base_ms"));
    r->base_status = (int)json_integer_value(json_object_get(o, "base_status"));
    json_decref(o);
    r->len = len - (size_t)(nl + 1 - buf);
    r->data = malloc(r->len + 1);
    if (r->data) {
        memcpy(r->data, nl + 1, r->len);
        r->data[r->len] = 0;
    }
    free(buf);
    snprintf(path, sizeof path, "%s/%016" PRIx64 ".up", dir, r->seq);
    r->uploaded = access(path, F_OK) == 0;
    return r->data && r->name ? 0 : (fs_jrec_clear(r), -1);
}

static int by_seq(const void *a, const void *b)
{
    const struct fs_jrec *x = *(struct fs_jrec *const *)a, *y = *(struct fs_jrec *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int fs_journal_load(const char *dir, struct fs_jrec ***out, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    struct fs_jrec **v = NULL;
    size_t cnt = 0, cap = 0;

    *out = NULL;
    *n = 0;
    if (!d)
        return -errno;
    while ((de = readdir(d))) {
        struct fs_jrec *r;
        if (de->d_name[0] == '.' && fs_ends_with(de->d_name, ".tmp")) {
            /* a record a crash left half-written: never renamed, never a save */
            char tmp[PATH_MAX];
            snprintf(tmp, sizeof tmp, "%s/%s", dir, de->d_name);
            unlink(tmp);
            continue;
        }
        if (!fs_ends_with(de->d_name, ".rec") || de->d_name[0] == '.')
            continue;
        r = calloc(1, sizeof *r);
        if (!r || load_one(dir, de->d_name, r)) {
            free(r);
            continue;
        }
        if (cnt == cap) {
            struct fs_jrec **nv = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof *v);
            if (!nv) {
                fs_jrec_clear(r);
                free(r);
                break;
            }
            v = nv;
        }
        v[cnt++] = r;
    }
    closedir(d);
    if (cnt)
        qsort(v, cnt, sizeof *v, by_seq);
    *out = v;
    *n = cnt;
    return 0;
}
