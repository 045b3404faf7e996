/** @file
 * Scratch files (filesystem.md §3): any name created in a folder directory
 * that is not `<existing item><suffix>`. Full POSIX semantics, local to
 * this mount, never uploaded, gone at unmount. Their user.* xattrs are kept
 * locally (rsync -X, cp -a temp files); user.superannotate.status carries
 * to the item when the scratch is renamed onto an annotation name.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs_i.h"

struct fs_scratch *fs_scratch_new(struct fs_state *st, struct fs_folder *f, const char *name,
                                  mode_t mode)
{
    struct fs_scratch *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->name = strdup(name);
    if (!s->name) {
        free(s);
        return NULL;
    }
    s->folder = f;
    pthread_mutex_init(&s->mu, NULL);
    fs_buf_init(&s->buf, st->cfg->cache_dir);
    s->mode = mode & 07777;
    clock_gettime(CLOCK_REALTIME, &s->mtime);
    s->atime = s->ctime = s->mtime;
    s->seq = ++st->seq;
    s->linked = 1;
    fs_map_put(&f->scratch, name, s);
    return s;
}

void fs_scratch_maybe_free_locked(struct fs_state *st, struct fs_scratch *s)
{
    (void)st;
    /* resolved locations hold refs, open handles count in nopen */
    if (s->linked || s->nopen || s->refs)
        return;
    fs_scratch_free(s);
}

void fs_scratch_unlink_locked(struct fs_state *st, struct fs_scratch *s)
{
    if (!s->linked)
        return;
    if (fs_map_get(&s->folder->scratch, s->name) == s)
        fs_map_del(&s->folder->scratch, s->name);
    s->linked = 0;
    fs_scratch_maybe_free_locked(st, s);
}

int fs_scratch_move(struct fs_state *st, struct fs_scratch *s, struct fs_folder *to,
                    const char *name)
{
    char *nn = strdup(name);
    struct fs_scratch *old;
    if (!nn)
        return -ENOMEM;
    pthread_mutex_lock(&st->mu);
    old = fs_map_get(&to->scratch, name);
    if (old && old != s)
        fs_scratch_unlink_locked(st, old);
    if (s->linked && fs_map_get(&s->folder->scratch, s->name) == s)
        fs_map_del(&s->folder->scratch, s->name);
    /* s->name may be read by a concurrent release's log line: swap under mu */
    free(s->name);
    s->name = nn;
    s->folder = to;
    s->linked = 1;
    fs_map_put(&to->scratch, nn, s);
    pthread_mutex_unlock(&st->mu);
    return 0;
}

void fs_scratch_stat(struct fs_state *st, struct fs_scratch *s, struct stat *sb)
{
    memset(sb, 0, sizeof *sb);
    pthread_mutex_lock(&s->mu);
    sb->st_mode = S_IFREG | s->mode;
    sb->st_nlink = s->linked ? 1 : 0;
    sb->st_uid = st->cfg->uid_set ? st->cfg->uid : getuid();
    sb->st_gid = st->cfg->gid_set ? st->cfg->gid : getgid();
    sb->st_size = (off_t)s->buf.len;
    sb->st_blksize = 4096;
    sb->st_blocks = (sb->st_size + 511) / 512;
    sb->st_atim = s->atime;
    sb->st_mtim = s->mtime;
    sb->st_ctim = s->ctime;
    pthread_mutex_unlock(&s->mu);
}

static void report_cb(void *ud, const char *k, void *v)
{
    struct fs_state *st = ud;
    struct fs_scratch *s = v;
    (void)k;
    if (s->buf.len && !s->became && !fs_is_fuse_hidden(s->name))
        fs_log(st, LOG_WARNING,
               "scratch file %s/%s held %zu bytes and never became an annotation; it is gone "
               "with the mount", s->folder->is_root ? s->folder->proj->p.name : s->folder->name,
               s->name, s->buf.len);
}

static void report_folder(struct fs_state *st, struct fs_folder *f)
{
    if (f)
        fs_map_each(&f->scratch, report_cb, st);
}

static void report_project(struct fs_state *st, struct fs_project *p)
{
    report_folder(st, p->root);
    for (size_t i = 0; i < p->n_folders; i++)
        report_folder(st, p->folders[i]);
}

void fs_scratch_report_all(struct fs_state *st)
{
    pthread_mutex_lock(&st->mu);
    if (st->level == 0) {
        for (size_t i = 0; i < st->n_projects; i++)
            report_project(st, st->projects[i]);
    } else if (st->level == 1) {
        report_project(st, st->src_proj);
    } else {
        report_folder(st, st->src_fold);
    }
    pthread_mutex_unlock(&st->mu);
}

const struct fs_xattr *fs_xattr_find(const struct fs_xattr *x, const char *name)
{
    for (; x; x = x->next)
        if (!strcmp(x->name, name))
            return x;
    return NULL;
}

int fs_xattr_set_local(struct fs_xattr **head, const char *name, const char *v, size_t n)
{
    struct fs_xattr *x;
    size_t count = 0, bytes = strlen(name) + n;
    char *val;

    /* bounded like one inode's xattr space on a local filesystem */
    for (x = *head; x; x = x->next)
        if (strcmp(x->name, name)) {
            count++;
            bytes += strlen(x->name) + x->len;
        }
    if (count + 1 > FS_XATTR_MAX_N || bytes > FS_XATTR_MAX_BYTES)
        return -ENOSPC;
    val = malloc(n + 1);
    if (!val)
        return -ENOMEM;
    memcpy(val, v, n);
    val[n] = 0;
    for (x = *head; x; x = x->next)
        if (!strcmp(x->name, name)) {
            free(x->value);
            x->value = val;
            x->len = n;
            return 0;
        }
    x = calloc(1, sizeof *x);
    if (!x || !(x->name = strdup(name))) {
        free(x);
        free(val);
        return -ENOMEM;
    }
    x->value = val;
    x->len = n;
    /* append, so listxattr keeps the order they were set in */
    while (*head)
        head = &(*head)->next;
    *head = x;
    return 0;
}

int fs_xattr_del_local(struct fs_xattr **head, const char *name)
{
    for (; *head; head = &(*head)->next) {
        struct fs_xattr *x = *head;
        if (!strcmp(x->name, name)) {
            *head = x->next;
            free(x->name);
            free(x->value);
            free(x);
            return 0;
        }
    }
    return -ENODATA;
}

void fs_xattr_free_all(struct fs_xattr **head)
{
    while (*head) {
        struct fs_xattr *x = *head;
        *head = x->next;
        free(x->name);
        free(x->value);
        free(x);
    }
}
