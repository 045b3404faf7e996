/** @file
 * fuse_operations (libfuse 3.14 high-level API): path -> call -> errno.
 * Per-open state lives in fi->fh (struct fs_handle); with nullpath_ok the
 * path may be NULL for an open file, so handle ops never need it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "fs_i.h"
#include "sa/doc.h"
#include "sa/frames.h"

struct fs_state *fs_st(void)
{
    return fuse_get_context()->private_data;
}

static struct fs_handle *H(const struct fuse_file_info *fi)
{
    return fi ? (struct fs_handle *)(uintptr_t)fi->fh : NULL;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int is_write(int flags)
{
    return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

/* One log line for an error decided here (not by the platform), then -err. */
static int refuse(struct fs_state *st, const char *op, const char *path, int err,
                  const char *why)
{
    fs_log(st, err == ENOENT ? LOG_DEBUG : LOG_ERR, "%s %s: %s (%s)", op, path ? path : "-",
           strerror(err), why);
    return -err;
}

/* Writes refused on a read-only mount or a Multimodal project. */
static int check_writable(struct fs_state *st, struct fs_project *p, const char *path)
{
    if (st->cfg->read_only)
        return refuse(st, "write", path, EROFS, "read-only mount");
    if (fs_project_read_only(st, p, path))
        return -EROFS;
    return 0;
}

static void dir_stat(struct fs_state *st, const char *updated_at, struct stat *sb)
{
    int64_t ms = updated_at ? sa_parse_time_ms(updated_at) : 0;
    if (!ms)
        ms = st->started_ms;
    memset(sb, 0, sizeof *sb);
    sb->st_mode = S_IFDIR | (0755 & ~st->cfg->umask);
    if (st->cfg->read_only)
        sb->st_mode &= ~0222;
    sb->st_nlink = 2;
    sb->st_uid = st->cfg->uid_set ? st->cfg->uid : getuid();
    sb->st_gid = st->cfg->gid_set ? st->cfg->gid : getgid();
    sb->st_size = 4096;
    sb->st_blksize = 4096;
    sb->st_mtim.tv_sec = ms / 1000;
    sb->st_mtim.tv_nsec = (ms % 1000) * 1000000;
    sb->st_atim = sb->st_ctim = sb->st_mtim;
}

static int frames_render(struct fs_state *st, struct fs_item *it, char **out, size_t *len)
{
    char *doc, why[256];
    size_t dl;
    enum sa_err e;
    int r = fs_doc_get(st, it, &doc, &dl, 0);
    if (r)
        return r;
    e = sa_frames_render(doc, dl, st->cfg->fps, out, len, why, sizeof why);
    free(doc);
    if (e) {
        /* the SDK raises here: the file cannot be produced (EIO, reason logged) */
        fs_log(st, LOG_ERR, "%s: per-frame view: %s", it->name, why);
        return -EIO;
    }
    return 0;
}

static void frames_stat(struct fs_state *st, struct fs_item *it, size_t len, struct stat *sb)
{
    fs_item_stat(st, it, sb, 0);
    sb->st_mode = S_IFREG | (0444 & ~st->cfg->umask);
    sb->st_size = (off_t)len;
    sb->st_blocks = (sb->st_size + 511) / 512;
}

/* ------------------------------------------------------------ lifecycle */

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    struct fs_state *st = fs_st();
    (void)conn;
    /* unlink acts at once, never through a .fuse_hidden rename */
    cfg->hard_remove = 1;
    /* handle ops work on fi->fh; an unlinked-open file has no path */
    cfg->nullpath_ok = 1;
    cfg->use_ino = 0;
    st->fuse = fuse_get_context()->fuse;
    /* threads only now: after fuse_daemonize */
    fs_inval_start(st);
    return st;
}

static void op_destroy(void *data)
{
    struct fs_state *st = data;
    fs_bulk_wait_all(st);
    fs_inval_stop(st);
    fs_scratch_report_all(st);
}

/* ---------------------------------------------------------------- attrs */

static int op_getattr(const char *path, struct stat *sb, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_handle *h = H(fi);
    struct fs_loc l;
    int r;

    if (h && h->kind == FS_H_DIR) {
        path = h->path;
        h = NULL;
    }
    if (h) {
        switch (h->kind) {
        case FS_H_DIR:
            break;
        case FS_H_SCRATCH:
            fs_scratch_stat(st, h->scr, sb);
            return 0;
        case FS_H_FRAMES:
            pthread_mutex_lock(&h->mu);
            frames_stat(st, h->item, h->buf.len, sb);
            pthread_mutex_unlock(&h->mu);
            return 0;
        case FS_H_ITEM:
            /* fstat of an open file: the bytes this handle serves (no bulk
             * fetch for `cat`'s fstat) */
            pthread_mutex_lock(&h->mu);
            fs_item_stat(st, h->item, sb, 0);
            sb->st_size = (off_t)h->buf.len;
            sb->st_blocks = (sb->st_size + 511) / 512;
            pthread_mutex_unlock(&h->mu);
            return 0;
        }
    }
    if (!path)
        return -ENOENT;
    r = fs_resolve(st, path, &l);
    if (r)
        return r;
    switch (l.kind) {
    case FS_K_NONE:
        return -ENOENT;
    case FS_K_TEAM:
        dir_stat(st, NULL, sb);
        return 0;
    case FS_K_PROJECT:
        pthread_mutex_lock(&st->mu);
        dir_stat(st, l.proj->p.updated_at, sb);
        pthread_mutex_unlock(&st->mu);
        return 0;
    case FS_K_FOLDER:
        /* a concurrent re-list may replace updated_at: read it under st->mu */
        pthread_mutex_lock(&st->mu);
        dir_stat(st, l.fold->updated_at, sb);
        pthread_mutex_unlock(&st->mu);
        return 0;
    case FS_K_ITEM:
        r = fs_item_stat(st, l.item, sb, 1);
        return r < 0 ? r : 0;
    case FS_K_FRAMES: {
        char *out;
        size_t len;
        r = frames_render(st, l.item, &out, &len);
        if (r)
            return r;
        free(out);
        frames_stat(st, l.item, len, sb);
        return 0;
    }
    case FS_K_SCRATCH:
        fs_scratch_stat(st, l.scr, sb);
        return 0;
    }
    return -ENOENT;
}

/* -------------------------------------------------------------- readdir */

static int fill_dirs(void *buf, fuse_fill_dir_t filler, struct fs_state *st, char **names,
                     const char **upd, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (!names[i])
            continue;
        dir_stat(st, upd[i], &sb);
        if (filler(buf, names[i], &sb, 0, FUSE_FILL_DIR_PLUS))
            return 1;
    }
    return 0;
}

static int fill_folder(void *buf, fuse_fill_dir_t filler, struct fs_state *st,
                       struct fs_folder *f)
{
    struct fs_item **items;
    char **scr;
    size_t n, ns = 0;
    int r = fs_folder_refresh(st, f, FS_REFRESH_LIST);

    if (r)
        return r;
    pthread_mutex_lock(&st->mu);
    n = f->n_items;
    items = calloc(n + 1, sizeof *items);
    scr = calloc(f->scratch.n + 1, sizeof *scr);
    if (items)
        memcpy(items, f->items, n * sizeof *items);
    for (size_t b = 0; scr && b < f->scratch.nb; b++)
        for (struct fs_map_ent *e = f->scratch.b[b]; e; e = e->next)
            scr[ns++] = strdup(e->key);
    pthread_mutex_unlock(&st->mu);
    if (!items || !scr) {
        free(items);
        free(scr);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        /* attributes only where the size is known: never a download here */
        int known = fs_item_stat(st, items[i], &sb, 0) == 0;
        char *fname;
        pthread_mutex_lock(&st->mu);
        fname = strdup(items[i]->fname);
        pthread_mutex_unlock(&st->mu);
        if (!fname)
            continue;
        if (known)
            r = filler(buf, fname, &sb, 0, FUSE_FILL_DIR_PLUS);
        else {
            struct stat ms = {.st_mode = S_IFREG};
            r = filler(buf, fname, &ms, 0, 0);
        }
        if (!r && st->cfg->list_frames && f->proj->p.type == SA_PT_VIDEO) {
            size_t bl = strlen(fname) - strlen(f->proj->suffix);
            char fr[NAME_MAX * 2];
            struct stat ms = {.st_mode = S_IFREG};
            snprintf(fr, sizeof fr, "%.*s___frames.json", (int)bl, fname);
            r = filler(buf, fr, &ms, 0, 0);
        }
        free(fname);
        if (r)
            break;
    }
    for (size_t i = 0; i < ns; i++) {
        struct stat ms = {.st_mode = S_IFREG};
        if (!r)
            r = filler(buf, scr[i], &ms, 0, 0);
        free(scr[i]);
    }
    free(items);
    free(scr);
    return 0;
}

/* fs_resolve for a path that must be a directory (team, project, folder). */
static int resolve_dir(struct fs_state *st, const char *path, struct fs_loc *l)
{
    int r = fs_resolve(st, path, l);
    if (r)
        return r;
    switch (l->kind) {
    case FS_K_NONE:
        return -ENOENT;
    case FS_K_ITEM:
    case FS_K_FRAMES:
    case FS_K_SCRATCH:
        return -ENOTDIR;
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
        break;
    }
    return 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    struct stat dsb;
    char **names = NULL;
    const char **upd = NULL;
    size_t n = 0;
    int r;

    (void)off;
    (void)flags;
    /* with nullpath_ok, readdir gets no path: opendir kept it in fi->fh */
    if (H(fi))
        path = H(fi)->path;
    if (!path)
        return -ENOENT;
    r = resolve_dir(st, path, &l);
    if (r)
        return r;
    dir_stat(st, NULL, &dsb);
    filler(buf, ".", &dsb, 0, 0);
    filler(buf, "..", &dsb, 0, 0);
    if (l.kind == FS_K_TEAM) {
        r = fs_projects_refresh(st, 0);
        if (r)
            return r;
        pthread_mutex_lock(&st->mu);
        names = calloc(st->n_projects + 1, sizeof *names);
        upd = calloc(st->n_projects + 1, sizeof *upd);
        for (size_t i = 0; names && upd && i < st->n_projects; i++) {
            names[n] = strdup(st->projects[i]->dname);
            upd[n++] = st->projects[i]->p.updated_at ? strdup(st->projects[i]->p.updated_at)
                                                     : NULL;
        }
        pthread_mutex_unlock(&st->mu);
        fill_dirs(buf, filler, st, names, upd, n);
    } else if (l.kind == FS_K_PROJECT) {
        r = fs_project_refresh(st, l.proj, 0);
        if (r)
            return r;
        pthread_mutex_lock(&st->mu);
        names = calloc(l.proj->n_folders + 1, sizeof *names);
        upd = calloc(l.proj->n_folders + 1, sizeof *upd);
        for (size_t i = 0; names && upd && i < l.proj->n_folders; i++) {
            names[n] = strdup(l.proj->folders[i]->dname);
            upd[n++] = l.proj->folders[i]->updated_at ? strdup(l.proj->folders[i]->updated_at)
                                                      : NULL;
        }
        pthread_mutex_unlock(&st->mu);
        if (fill_dirs(buf, filler, st, names, upd, n) == 0)
            r = fill_folder(buf, filler, st, l.proj->root);
    } else {
        r = fill_folder(buf, filler, st, l.fold);
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
        free((char *)upd[i]);
    }
    free(names);
    free(upd);
    return r;
}

/* ----------------------------------------------------------- open/create */

static struct fs_handle *handle_new(struct fs_state *st, enum fs_hkind kind, const char *path)
{
    struct fs_handle *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->kind = kind;
    pthread_mutex_init(&h->mu, NULL);
    fs_buf_init(&h->buf, st->cfg->cache_dir);
    h->path = path ? strdup(path) : NULL;
    return h;
}

static void handle_free(struct fs_handle *h)
{
    if (!h)
        return;
    fs_buf_free(&h->buf);
    pthread_mutex_destroy(&h->mu);
    free(h->path);
    free(h);
}

static int op_opendir(const char *path, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    struct fs_handle *h;
    int r = resolve_dir(st, path, &l);
    if (r)
        return r;
    h = handle_new(st, FS_H_DIR, path);
    if (!h || !h->path) {
        handle_free(h);
        return -ENOMEM;
    }
    fi->fh = (uintptr_t)h;
    return 0;
}

static int op_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    handle_free(H(fi));
    fi->fh = 0;
    return 0;
}

static int open_item(struct fs_state *st, const char *path, struct fs_item *it,
                     struct fuse_file_info *fi)
{
    struct fs_handle *h;
    int w = is_write(fi->flags), r;

    if (w && (r = check_writable(st, it->folder->proj, path)))
        return r;
    h = handle_new(st, FS_H_ITEM, path);
    if (!h)
        return -ENOMEM;
    h->item = it;
    h->writable = w;
    if (fi->flags & O_TRUNC) {
        /* the local buffer starts empty; nothing is uploaded unless written */
        pthread_mutex_lock(&st->mu);
        h->seq = ++st->seq;
        h->has_base = it->served;
        h->base_ms = it->served_ms;
        h->base_status = it->served_status;
        pthread_mutex_unlock(&st->mu);
        fi->keep_cache = 0;
    } else {
        char *doc;
        size_t len;
        int keep;
        pthread_mutex_lock(&st->mu);
        keep = it->kc && it->kc_ms == it->ms && it->kc_status == it->status;
        pthread_mutex_unlock(&st->mu);
        r = fs_doc_get(st, it, &doc, &len, 1);
        if (r) {
            handle_free(h);
            return r;
        }
        r = fs_buf_set(&h->buf, doc, len);
        free(doc);
        if (r) {
            handle_free(h);
            return r;
        }
        pthread_mutex_lock(&st->mu);
        h->seq = ++st->seq;
        h->has_base = 1;
        h->base_ms = it->served_ms;
        h->base_status = it->served_status;
        /* keep the kernel's pages only while the version is unchanged */
        fi->keep_cache = keep && it->served_ms == it->kc_ms && it->served_status == it->kc_status;
        it->kc = 1;
        it->kc_ms = it->served_ms;
        it->kc_status = it->served_status;
        pthread_mutex_unlock(&st->mu);
    }
    fi->fh = (uintptr_t)h;
    return 0;
}

static int open_scratch(struct fs_state *st, struct fs_scratch *s, const char *path,
                        struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_new(st, FS_H_SCRATCH, path);
    if (!h)
        return -ENOMEM;
    h->scr = s;
    h->writable = is_write(fi->flags);
    pthread_mutex_lock(&st->mu);
    s->nopen++;
    pthread_mutex_unlock(&st->mu);
    if (fi->flags & O_TRUNC) {
        pthread_mutex_lock(&s->mu);
        fs_buf_truncate(&s->buf, 0);
        clock_gettime(CLOCK_REALTIME, &s->mtime);
        s->ctime = s->mtime;
        pthread_mutex_unlock(&s->mu);
    }
    fi->fh = (uintptr_t)h;
    return 0;
}

static int open_frames(struct fs_state *st, struct fs_item *it, const char *path,
                       struct fuse_file_info *fi)
{
    struct fs_handle *h;
    char *out;
    size_t len;
    int r;

    if (is_write(fi->flags))
        return refuse(st, "open", path, EACCES, "the per-frame view is read-only");
    r = frames_render(st, it, &out, &len);
    if (r)
        return r;
    h = handle_new(st, FS_H_FRAMES, path);
    if (!h) {
        free(out);
        return -ENOMEM;
    }
    h->item = it;
    r = fs_buf_set(&h->buf, out, len);
    free(out);
    if (r) {
        handle_free(h);
        return r;
    }
    fi->fh = (uintptr_t)h;
    return 0;
}

/* A lookup trusts a listing for at least FS_LOOKUP_MIN_TTL; content must
 * not: when the item's listing is older than cache_timeout (only possible
 * with cache_timeout < FS_LOOKUP_MIN_TTL), ask for the item's version alone
 * (one small request), so the next read after a remote change shows it. */
static void revalidate_for_open(struct fs_state *st, struct fs_item *it)
{
    double age;
    enum sa_err e;

    pthread_mutex_lock(&st->mu);
    age = fs_now() - it->folder->listed_at;
    pthread_mutex_unlock(&st->mu);
    if (age < st->cfg->cache_timeout)
        return;
    e = fs_item_refetch(st, it);
    if (e)
        fs_log(st, LOG_DEBUG, "revalidate %s: %s (%s); using the listed version", it->name,
               sa_strerror(e), sa_last_error());
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    int r = fs_resolve(st, path, &l);
    if (r)
        return r;
    if (l.kind == FS_K_ITEM || l.kind == FS_K_FRAMES)
        revalidate_for_open(st, l.item);
    switch (l.kind) {
    case FS_K_NONE:
        return -ENOENT;
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
        return -EISDIR;
    case FS_K_ITEM:
        return open_item(st, path, l.item, fi);
    case FS_K_FRAMES:
        return open_frames(st, l.item, path, fi);
    case FS_K_SCRATCH:
        return open_scratch(st, l.scr, path, fi);
    }
    return -ENOENT;
}

/* The leaf of a new name in a folder directory: what may be created. */
static int check_new_name(struct fs_state *st, const struct fs_loc *l, const char *path,
                          struct fs_item **item)
{
    const char *leaf = l->leaf;
    *item = NULL;
    if (l->parent != FS_K_PROJECT && l->parent != FS_K_FOLDER)
        return refuse(st, "create", path, EPERM, "files live in project and folder directories");
    if (ends_with(leaf, "___save.png")) {
        fs_log(st, LOG_ERR, "%s: Pixel masks cannot be written: the platform's API has no mask "
                            "upload (api.md §10.9)", path);
        return -EOPNOTSUPP;
    }
    if (l->proj->p.type == SA_PT_VIDEO && ends_with(leaf, "___frames.json"))
        return refuse(st, "create", path, EACCES, "the per-frame view is read-only");
    if (ends_with(leaf, l->proj->suffix)) {
        int r = fs_folder_find_item(st, l->fold, leaf, item);
        if (r == -ENOENT) {
            size_t bl = strlen(leaf) - strlen(l->proj->suffix);
            fs_log(st, LOG_ERR, "%s: no item named \"%.*s\" in %s/%s (missing item)", path,
                   (int)bl, leaf, l->proj->p.name, l->fold->is_root ? "root" : l->fold->name);
        }
        return r;
    }
    return 0;
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    struct fs_item *it;
    struct fs_scratch *s;
    int r = fs_resolve(st, path, &l);

    if (r)
        return r;
    switch (l.kind) {
    case FS_K_ITEM:
        return open_item(st, path, l.item, fi);
    case FS_K_SCRATCH:
        if (fi->flags & O_EXCL)
            return -EEXIST;
        return open_scratch(st, l.scr, path, fi);
    case FS_K_FRAMES:
        return refuse(st, "create", path, EACCES, "the per-frame view is read-only");
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
        return -EISDIR;
    case FS_K_NONE:
        break;
    }
    if (st->cfg->read_only)
        return -EROFS;
    r = check_new_name(st, &l, path, &it);
    if (r)
        return r;
    if (it)
        return open_item(st, path, it, fi);
    if (fs_project_read_only(st, l.proj, path))
        return -EROFS;
    pthread_mutex_lock(&st->mu);
    s = fs_map_get(&l.fold->scratch, l.leaf);
    if (!s)
        s = fs_scratch_new(st, l.fold, l.leaf, mode);
    pthread_mutex_unlock(&st->mu);
    if (!s)
        return -ENOMEM;
    fs_log(st, LOG_DEBUG, "%s: scratch file created", path);
    return open_scratch(st, s, path, fi);
}

/* ------------------------------------------------------------ read/write */

static int op_read(const char *path, char *buf, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
    struct fs_handle *h = H(fi);
    ssize_t r;
    (void)path;
    if (!h)
        return -EBADF;
    if (h->kind == FS_H_SCRATCH) {
        pthread_mutex_lock(&h->scr->mu);
        r = fs_buf_pread(&h->scr->buf, buf, size, off);
        pthread_mutex_unlock(&h->scr->mu);
    } else {
        pthread_mutex_lock(&h->mu);
        r = fs_buf_pread(&h->buf, buf, size, off);
        pthread_mutex_unlock(&h->mu);
    }
    return (int)r;
}

static void mark_dirty(struct fs_state *st, struct fs_handle *h)
{
    h->dirty = 1;
    h->wrote = 1;
    pthread_mutex_lock(&st->mu);
    if (!h->counted_dirty) {
        h->counted_dirty = 1;
        h->item->dirty_handles++;
    }
    h->item->wlen = h->buf.len;
    pthread_mutex_unlock(&st->mu);
}

static void mark_clean(struct fs_state *st, struct fs_handle *h)
{
    h->dirty = 0;
    if (h->counted_dirty) {
        h->counted_dirty = 0;
        pthread_mutex_lock(&st->mu);
        h->item->dirty_handles--;
        pthread_mutex_unlock(&st->mu);
    }
}

static int op_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_handle *h = H(fi);
    int r;
    (void)path;
    if (!h)
        return -EBADF;
    switch (h->kind) {
    case FS_H_DIR:
        return -EISDIR;
    case FS_H_FRAMES:
        return -EACCES;
    case FS_H_SCRATCH:
        pthread_mutex_lock(&h->scr->mu);
        if (fi->flags & O_APPEND)
            off = (off_t)h->scr->buf.len;
        r = fs_buf_pwrite(&h->scr->buf, buf, size, off);
        clock_gettime(CLOCK_REALTIME, &h->scr->mtime);
        h->scr->ctime = h->scr->mtime;
        pthread_mutex_unlock(&h->scr->mu);
        return r ? r : (int)size;
    case FS_H_ITEM:
        break;
    }
    pthread_mutex_lock(&h->mu);
    if (fi->flags & O_APPEND)
        off = (off_t)h->buf.len;
    if ((uint64_t)off + size > st->cfg->max_doc) {
        pthread_mutex_unlock(&h->mu);
        fs_log(st, LOG_ERR, "%s: a document over max_doc (%llu bytes) is refused",
               h->path ? h->path : "-", (unsigned long long)st->cfg->max_doc);
        return -EFBIG;
    }
    r = fs_buf_pwrite(&h->buf, buf, size, off);
    if (!r)
        mark_dirty(st, h);
    pthread_mutex_unlock(&h->mu);
    return r ? r : (int)size;
}

/* Upload a dirty item handle (h->mu held). */
static int save_handle(struct fs_state *st, struct fs_handle *h)
{
    char *data;
    size_t len;
    int r;

    if (!h->dirty)
        return 0;
    r = fs_buf_copy(&h->buf, &data, &len);
    if (r)
        return r;
    r = fs_upload(st, h->item, h->path ? h->path : h->item->fname, data, len, h->seq,
                  h->has_base, h->base_ms, h->base_status, h->set_mtime ? &h->mtime : NULL,
                  NULL);
    free(data);
    /* a refused or failed save already went to the recovery folder */
    mark_clean(st, h);
    if (!r) {
        /* the next save of this handle is judged against what it just wrote */
        pthread_mutex_lock(&st->mu);
        h->has_base = 1;
        h->base_ms = h->item->ms;
        h->base_status = h->item->status;
        pthread_mutex_unlock(&st->mu);
    }
    return r;
}

static int op_flush(const char *path, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_handle *h = H(fi);
    int r;
    (void)path;
    if (!h || h->kind != FS_H_ITEM)
        return 0;
    pthread_mutex_lock(&h->mu);
    r = save_handle(st, h);
    pthread_mutex_unlock(&h->mu);
    return r;
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)datasync;
    return op_flush(path, fi);
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_handle *h = H(fi);
    (void)path;
    if (!h)
        return 0;
    switch (h->kind) {
    case FS_H_ITEM:
        pthread_mutex_lock(&h->mu);
        if (h->dirty) {
            /* a killed process or mmap: flush never saw these bytes */
            int r = save_handle(st, h);
            if (r)
                fs_log(st, LOG_ERR, "%s: upload at release failed (%s)",
                       h->path ? h->path : h->item->fname, strerror(-r));
        }
        pthread_mutex_unlock(&h->mu);
        break;
    case FS_H_SCRATCH: {
        struct fs_scratch *s = h->scr;
        size_t len;
        pthread_mutex_lock(&s->mu);
        len = s->buf.len;
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_lock(&st->mu);
        if (len && !s->became && s->linked && h->writable)
            fs_log(st, LOG_INFO, "scratch file %s closed with %zu bytes: it stays local to "
                                 "this mount and is never uploaded", s->name, len);
        s->nopen--;
        fs_scratch_maybe_free_locked(st, s);
        pthread_mutex_unlock(&st->mu);
        break;
    }
    case FS_H_FRAMES:
    case FS_H_DIR:
        break;
    }
    handle_free(h);
    return 0;
}

/* ------------------------------------------------------------- truncate */

/* fs_resolve for a path whose bytes are to change (truncate, unlink): none is
 * ENOENT, a directory EISDIR, a frames view EACCES; 0 leaves an item or a
 * scratch file in @p l. */
static int resolve_file(struct fs_state *st, const char *path, struct fs_loc *l)
{
    int r = fs_resolve(st, path, l);
    if (r)
        return r;
    switch (l->kind) {
    case FS_K_NONE:
        return -ENOENT;
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
        return -EISDIR;
    case FS_K_FRAMES:
        return -EACCES;
    case FS_K_SCRATCH:
    case FS_K_ITEM:
        break;
    }
    return 0;
}

static int truncate_scratch(struct fs_scratch *s, off_t size)
{
    pthread_mutex_lock(&s->mu);
    int r = fs_buf_truncate(&s->buf, size);
    clock_gettime(CLOCK_REALTIME, &s->mtime);
    s->ctime = s->mtime;
    pthread_mutex_unlock(&s->mu);
    return r;
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_handle *h = H(fi);
    struct fs_loc l;
    int r;

    if (h) {
        switch (h->kind) {
        case FS_H_DIR:
            return -EISDIR;
        case FS_H_FRAMES:
            return -EACCES;
        case FS_H_SCRATCH:
            return truncate_scratch(h->scr, size);
        case FS_H_ITEM:
            if ((uint64_t)size > st->cfg->max_doc)
                return -EFBIG;
            pthread_mutex_lock(&h->mu);
            r = fs_buf_truncate(&h->buf, size);
            if (!r)
                mark_dirty(st, h);
            pthread_mutex_unlock(&h->mu);
            return r;
        }
    }
    if (!path)
        return -EBADF;
    r = resolve_file(st, path, &l);
    if (r)
        return r;
    if (l.kind == FS_K_SCRATCH)
        return truncate_scratch(l.scr, size);
    if ((r = check_writable(st, l.proj, path)))
        return r;
    if (size == 0) {
        /* an empty document is never a save; truncate-to-zero by path would
         * otherwise be the first half of a rewrite we cannot see */
        fs_log(st, LOG_ERR, "%s: truncate to 0 without an open file is refused (EINVAL)",
               path);
        return -EINVAL;
    }
    if ((uint64_t)size > st->cfg->max_doc)
        return -EFBIG;
    {
        char *doc, *nd;
        size_t len;
        uint64_t seq;
        int64_t bms;
        int bst;
        r = fs_doc_get(st, l.item, &doc, &len, 1);
        if (r)
            return r;
        nd = calloc(1, (size_t)size + 1);
        if (!nd) {
            free(doc);
            return -ENOMEM;
        }
        memcpy(nd, doc, len < (size_t)size ? len : (size_t)size);
        free(doc);
        pthread_mutex_lock(&st->mu);
        seq = ++st->seq;
        bms = l.item->served_ms;
        bst = l.item->served_status;
        pthread_mutex_unlock(&st->mu);
        r = fs_upload(st, l.item, path, nd, (size_t)size, seq, 1, bms, bst, NULL, NULL);
        free(nd);
        return r;
    }
}

/* --------------------------------------------------------------- unlink */

static int doc_is_empty(const char *d, size_t n)
{
    static const char *const keys[] = {"instances", "tags", "comments"};
    (void)n;
    /* pretty-printed: a top-level key is at 4 spaces; empty = "[]" */
    for (size_t i = 0; i < 3; i++) {
        char key[64], empty[64];
        snprintf(key, sizeof key, "\n    \"%s\": ", keys[i]);
        snprintf(empty, sizeof empty, "\n    \"%s\": []", keys[i]);
        if (strstr(d, key) && !strstr(d, empty))
            return 0;
    }
    return 1;
}

static int op_unlink(const char *path)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    int r = resolve_file(st, path, &l);
    char *doc;
    size_t len;

    if (r)
        return r;
    if (l.kind == FS_K_SCRATCH) {
        pthread_mutex_lock(&st->mu);
        if (l.scr->linked)
            fs_scratch_unlink_locked(st, l.scr);
        pthread_mutex_unlock(&st->mu);
        return 0;
    }
    if ((r = check_writable(st, l.proj, path)))
        return r;
    pthread_mutex_lock(&l.item->up_mu);
    r = fs_doc_get(st, l.item, &doc, &len, 0);
    if (r) {
        pthread_mutex_unlock(&l.item->up_mu);
        return r;
    }
    if (!doc_is_empty(doc, len)) {
        char *iname, *fname;
        const char *names[1];
        enum sa_err e;
        pthread_mutex_lock(&st->mu);
        iname = strdup(l.item->name);
        fname = strdup(l.item->fname);
        pthread_mutex_unlock(&st->mu);
        names[0] = iname ? iname : "";
        fs_recover(st, "deleted", l.fold, fname ? fname : l.leaf, doc, len);
        free(fname);
        e = sa_delete_annotations(st->c, l.proj->p.id, l.fold->id, names, 1);
        free(iname);
        if (e)
            r = fs_fail(st, "unlink (delete annotations)", path, e);
        else
            fs_log(st, LOG_INFO, "%s: annotations deleted", path);
        fs_item_refetch(st, l.item);
    }
    pthread_mutex_lock(&st->mu);
    /* handles open now are never uploaded, unless the delete failed (the
     * item keeps its annotations: their writes must not be dropped) */
    if (!r)
        l.item->deleted_seq = ++st->seq;
    fs_doc_drop_locked(st, l.item);
    l.item->has_mtime = 0;
    l.item->kc = 0;
    pthread_mutex_unlock(&st->mu);
    pthread_mutex_unlock(&l.item->up_mu);
    free(doc);
    return r;
}

/* ------------------------------------------------------------ directories */

static int check_folder_name(struct fs_state *st, const char *shown, const char *path,
                             char **out)
{
    char *name = fs_unescape_name(shown);
    size_t chars = 0;
    *out = NULL;
    if (!name)
        return -ENOMEM;
    if (strpbrk(name, "/\\:*?\"<>|") || strstr(name, "\xe2\x80\x9c") || !*name ||
        !strcmp(name, ".") || !strcmp(name, "..")) {
        fs_log(st, LOG_ERR, "%s: the platform would rewrite this folder name "
                            "(/ \\ : * ? \" < > | and \xe2\x80\x9c are not allowed)", path);
        free(name);
        return -EINVAL;
    }
    for (const char *p = name; *p; p++)
        if (((unsigned char)*p & 0xC0) != 0x80)
            chars++;
    if (chars > 80) {
        fs_log(st, LOG_ERR, "%s: folder names are at most 80 characters", path);
        free(name);
        return -ENAMETOOLONG;
    }
    *out = name;
    return 0;
}

static int op_mkdir(const char *path, mode_t mode)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    struct sa_folder nf;
    char *name;
    enum sa_err e;
    int r = fs_resolve(st, path, &l);

    (void)mode;
    if (r)
        return r;
    if (l.kind != FS_K_NONE)
        return refuse(st, "mkdir", path, EEXIST, "exists");
    if (l.parent != FS_K_PROJECT)
        return refuse(st, "mkdir", path, EPERM,
                      l.parent == FS_K_TEAM ? "projects are not created through the mount"
                                            : "folders are one level deep");
    if ((r = check_writable(st, l.proj, path)))
        return r;
    r = check_folder_name(st, l.leaf, path, &name);
    if (r)
        return r;
    e = sa_create_folder(st->c, l.proj->p.id, name, &nf);
    free(name);
    sa_folder_clear(&nf);
    if (e)
        return fs_fail(st, "mkdir", path, e);
    fs_log(st, LOG_INFO, "%s: folder created", path);
    return fs_project_refresh(st, l.proj, 1);
}

static int op_rmdir(const char *path)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    enum sa_err e;
    size_t n, ns;
    int r = fs_resolve(st, path, &l);

    if (r)
        return r;
    switch (l.kind) {
    case FS_K_NONE:
        return -ENOENT;
    case FS_K_ITEM:
    case FS_K_FRAMES:
    case FS_K_SCRATCH:
        return -ENOTDIR;
    case FS_K_TEAM:
    case FS_K_PROJECT:
        return refuse(st, "rmdir", path, EPERM, "projects are not deleted through the mount");
    case FS_K_FOLDER:
        break;
    }
    if (l.parent != FS_K_PROJECT)
        return refuse(st, "rmdir", path, EPERM, "the mount's own root");
    if ((r = check_writable(st, l.proj, path)))
        return r;
    r = fs_folder_refresh(st, l.fold, FS_REFRESH_FORCE);
    if (r)
        return r;
    pthread_mutex_lock(&st->mu);
    n = l.fold->n_items;
    ns = l.fold->scratch.n;
    pthread_mutex_unlock(&st->mu);
    if (n || ns)
        return refuse(st, "rmdir", path, ENOTEMPTY, "the folder has items");
    e = sa_delete_folders(st->c, l.proj->p.id, &l.fold->id, 1);
    if (e)
        return fs_fail(st, "rmdir", path, e);
    fs_log(st, LOG_INFO, "%s: folder deleted", path);
    return fs_project_refresh(st, l.proj, 1);
}

/* ---------------------------------------------------------------- rename */

static int move_scratch(struct fs_state *st, struct fs_scratch *s, struct fs_folder *to,
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
    if (s->linked)
        fs_map_del(&s->folder->scratch, s->name);
    free(s->name);
    s->name = nn;
    s->folder = to;
    s->linked = 1;
    fs_map_put(&to->scratch, nn, s);
    pthread_mutex_unlock(&st->mu);
    return 0;
}

/* rename(scratch, annotation name): upload the scratch's bytes. */
static int scratch_to_item(struct fs_state *st, struct fs_scratch *s, struct fs_item *it,
                           const char *to)
{
    char *data, *status = NULL;
    size_t len;
    struct timespec mtime;
    const struct fs_xattr *x;
    int r, has_base;
    int64_t bms;
    int bst;

    if ((r = check_writable(st, it->folder->proj, to)))
        return r;
    pthread_mutex_lock(&s->mu);
    if (s->buf.len > st->cfg->max_doc) {
        /* never copied whole: the scratch keeps its bytes, nothing is lost */
        len = s->buf.len;
        pthread_mutex_unlock(&s->mu);
        fs_log(st, LOG_ERR, "%s: %zu bytes is over max_doc (%llu bytes); the scratch file "
                            "keeps them", to, len, (unsigned long long)st->cfg->max_doc);
        return -EFBIG;
    }
    r = fs_buf_copy(&s->buf, &data, &len);
    mtime = s->mtime;
    x = fs_xattr_find(s->xattrs, "user.superannotate.status");
    if (x)
        status = strdup(x->value);
    pthread_mutex_unlock(&s->mu);
    if (r) {
        free(status);
        return r;
    }
    pthread_mutex_lock(&st->mu);
    has_base = it->served;
    bms = it->served_ms;
    bst = it->served_status;
    pthread_mutex_unlock(&st->mu);
    r = fs_upload(st, it, to, data, len, s->seq, has_base, bms, bst, &mtime, status);
    free(data);
    free(status);
    if (!r) {
        pthread_mutex_lock(&st->mu);
        s->became = 1;
        fs_scratch_unlink_locked(st, s);
        pthread_mutex_unlock(&st->mu);
    }
    return r;
}

/* rename(annotation, scratch name): the scratch gets a copy. */
static int item_to_scratch(struct fs_state *st, struct fs_item *it, struct fs_folder *f,
                           const char *name)
{
    char *doc;
    size_t len;
    struct fs_scratch *s, *old;
    struct stat sb;
    int r = fs_doc_get(st, it, &doc, &len, 1);
    if (r)
        return r;
    fs_item_stat(st, it, &sb, 0);
    pthread_mutex_lock(&st->mu);
    old = fs_map_get(&f->scratch, name);
    if (old)
        fs_scratch_unlink_locked(st, old);
    s = fs_scratch_new(st, f, name, 0644);
    pthread_mutex_unlock(&st->mu);
    if (!s) {
        free(doc);
        return -ENOMEM;
    }
    pthread_mutex_lock(&s->mu);
    r = fs_buf_set(&s->buf, doc, len);
    s->mtime = sb.st_mtim;
    pthread_mutex_unlock(&s->mu);
    free(doc);
    return r;
}

static int op_rename(const char *from, const char *to, unsigned int flags)
{
    struct fs_state *st = fs_st();
    struct fs_loc a, b;
    int r;

    if (flags & RENAME_EXCHANGE)
        return refuse(st, "rename", from, EINVAL, "RENAME_EXCHANGE is not supported");
    r = fs_resolve(st, from, &a);
    if (r)
        return r;
    r = fs_resolve(st, to, &b);
    if (r)
        return r;
    if ((flags & RENAME_NOREPLACE) && b.kind != FS_K_NONE)
        return refuse(st, "rename", to, EEXIST, "RENAME_NOREPLACE onto an existing name");
    switch (a.kind) {
    case FS_K_NONE:
        return -ENOENT;
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FRAMES:
        return refuse(st, "rename", from, EPERM, "projects and per-frame views cannot be renamed");
    case FS_K_FOLDER: {
        char *name;
        enum sa_err e;
        if (a.parent != FS_K_PROJECT || b.parent != FS_K_PROJECT || b.proj != a.proj)
            return refuse(st, "rename", from, EPERM, "a folder is renamed within its project");
        if (b.kind == FS_K_FOLDER && b.fold == a.fold)
            return 0;
        if (b.kind != FS_K_NONE)
            return refuse(st, "rename", to, b.kind == FS_K_FOLDER ? EEXIST : EPERM, "exists");
        if ((r = check_writable(st, a.proj, from)))
            return r;
        r = check_folder_name(st, b.leaf, to, &name);
        if (r)
            return r;
        e = sa_rename_folder(st->c, a.proj->p.id, a.fold->id, name);
        free(name);
        if (e)
            return fs_fail(st, "rename folder", from, e);
        fs_log(st, LOG_INFO, "%s: folder renamed to %s", from, to);
        return fs_project_refresh(st, a.proj, 1);
    }
    case FS_K_ITEM:
        if (b.kind == FS_K_ITEM && b.item == a.item)
            return 0;
        if (b.kind == FS_K_ITEM || b.kind == FS_K_FRAMES || b.kind == FS_K_TEAM ||
            b.kind == FS_K_PROJECT || b.kind == FS_K_FOLDER || b.fold != a.fold) {
            fs_log(st, LOG_ERR, "rename %s -> %s: annotation files cannot be renamed (EPERM)",
                   from, to);
            return -EPERM;
        }
        if (b.kind == FS_K_NONE && ends_with(b.leaf, a.proj->suffix)) {
            fs_log(st, LOG_ERR, "rename %s -> %s: annotation files cannot be renamed (EPERM)",
                   from, to);
            return -EPERM;
        }
        /* a new scratch file: refused where files cannot be created */
        if ((r = check_writable(st, a.proj, to)))
            return r;
        return item_to_scratch(st, a.item, b.fold, b.leaf);
    case FS_K_SCRATCH:
        break;
    }
    /* from a scratch file */
    switch (b.kind) {
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
        return -EISDIR;
    case FS_K_FRAMES:
        return -EACCES;
    case FS_K_ITEM:
        return scratch_to_item(st, a.scr, b.item, to);
    case FS_K_SCRATCH:
        if (b.scr == a.scr)
            return 0;
        return move_scratch(st, a.scr, b.fold, b.leaf);
    case FS_K_NONE: {
        struct fs_item *it;
        r = check_new_name(st, &b, to, &it);
        if (r)
            return r;
        if (it)
            return scratch_to_item(st, a.scr, it, to);
        return move_scratch(st, a.scr, b.fold, b.leaf);
    }
    }
    return -EPERM;
}

/* ------------------------------------------------------- chmod/utimens */

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_handle *h = H(fi);
    struct fs_scratch *s = h && h->kind == FS_H_SCRATCH ? h->scr : NULL;
    struct fs_loc l;
    if (h && h->kind == FS_H_DIR)
        return 0;
    if (!h) {
        int r;
        if (!path)
            return -ENOENT;
        r = fs_resolve(st, path, &l);
        if (r)
            return r;
        if (l.kind == FS_K_NONE)
            return -ENOENT;
        if (l.kind == FS_K_SCRATCH)
            s = l.scr;
    }
    if (s) {
        pthread_mutex_lock(&s->mu);
        s->mode = mode & 07777;
        clock_gettime(CLOCK_REALTIME, &s->ctime);
        pthread_mutex_unlock(&s->mu);
    }
    /* annotation files and directories: accepted, so cp -p / rsync -a succeed */
    return 0;
}

static int op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    (void)uid;
    (void)gid;
    if (fi || !path)
        return 0;
    if (fs_resolve(st, path, &l) == 0 && l.kind == FS_K_NONE)
        return -ENOENT;
    return 0;
}

static void pick_time(struct timespec *dst, const struct timespec *src)
{
    if (src->tv_nsec == UTIME_OMIT)
        return;
    if (src->tv_nsec == UTIME_NOW)
        clock_gettime(CLOCK_REALTIME, dst);
    else
        *dst = *src;
}

static int op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_handle *h = H(fi);
    struct fs_scratch *s = NULL;
    struct fs_item *it = NULL;
    struct fs_loc l;
    struct timespec now[2];

    if (!tv) {
        clock_gettime(CLOCK_REALTIME, &now[0]);
        now[1] = now[0];
        tv = now;
    }
    if (h && h->kind == FS_H_DIR)
        return 0;
    if (h) {
        if (h->kind == FS_H_SCRATCH)
            s = h->scr;
        else if (h->kind == FS_H_ITEM)
            it = h->item;
    } else {
        int r;
        if (!path)
            return -ENOENT;
        r = fs_resolve(st, path, &l);
        if (r)
            return r;
        if (l.kind == FS_K_NONE)
            return -ENOENT;
        if (l.kind == FS_K_SCRATCH)
            s = l.scr;
        else if (l.kind == FS_K_ITEM)
            it = l.item;
    }
    if (s) {
        pthread_mutex_lock(&s->mu);
        pick_time(&s->atime, &tv[0]);
        pick_time(&s->mtime, &tv[1]);
        clock_gettime(CLOCK_REALTIME, &s->ctime);
        pthread_mutex_unlock(&s->mu);
    }
    if (it && tv[1].tv_nsec != UTIME_OMIT) {
        struct timespec m;
        pick_time(&m, &tv[1]);
        if (h) {
            /* applies to this handle's next upload too */
            pthread_mutex_lock(&h->mu);
            h->set_mtime = 1;
            h->mtime = m;
            pthread_mutex_unlock(&h->mu);
        }
        pthread_mutex_lock(&st->mu);
        it->has_mtime = 1;
        it->mtime = m;
        it->mtime_ms = it->ms;
        it->mtime_status = it->status;
        pthread_mutex_unlock(&st->mu);
    }
    return 0;
}

static int op_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    memset(sv, 0, sizeof *sv);
    sv->f_bsize = 4096;
    sv->f_frsize = 4096;
    sv->f_blocks = 1ull << 30;
    sv->f_bfree = 1ull << 29;
    sv->f_bavail = 1ull << 29;
    sv->f_files = 1ull << 24;
    sv->f_ffree = 1ull << 23;
    sv->f_favail = 1ull << 23;
    sv->f_namemax = NAME_MAX;
    return 0;
}

const struct fuse_operations fs_ops = {
    .init = op_init,
    .destroy = op_destroy,
    .getattr = op_getattr,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .open = op_open,
    .create = op_create,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .fsync = op_fsync,
    .release = op_release,
    .truncate = op_truncate,
    .unlink = op_unlink,
    .mkdir = op_mkdir,
    .rmdir = op_rmdir,
    .rename = op_rename,
    .chmod = op_chmod,
    .chown = op_chown,
    .utimens = op_utimens,
    .statfs = op_statfs,
    .getxattr = fs_op_getxattr,
    .setxattr = fs_op_setxattr,
    .listxattr = fs_op_listxattr,
    .removexattr = fs_op_removexattr,
};
