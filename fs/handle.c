/** @file
 * Open files: the byte buffers (fs_buf, spilling to an unlinked temp file
 * beyond FS_BUF_SPILL), and open/read/write/flush/release/truncate of
 * annotation files, per-frame views, scratch files and classes.json.
 *
 * An annotation file's handle serves one version, pinned in the store at
 * open (no copy); its first write copies it into its own buffer. Item and
 * per-frame handles are opened with direct_io: the kernel's page cache
 * belongs to the inode, so two descriptors of different versions (or a
 * writer's unsaved bytes) would otherwise read each other's pages, cut to
 * one shared i_size (filesystem.md §2 `stat`). Attributes the kernel may
 * cache are kept right by the store (fs_doc_kernel_*): an open whose
 * version's length differs from what the kernel was given, and every save,
 * drop them before returning.
 *
 * Saves happen in flush (only flush errors reach close(2)); a refused or
 * failed save's error is kept and returned by every later flush of the
 * handle until it is written again (Emacs ignores fsync's error; Python's
 * os.close after a raising os.fsync must fail too). release saves a handle
 * that is still dirty (a killed process, mmap).
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
#include "sa/doc.h"
#include "sa/frames.h"

/* -------------------------------------------------------------- fs_buf */

void fs_buf_init(struct fs_buf *b, const char *spill_dir)
{
    memset(b, 0, sizeof *b);
    b->fd = -1;
    b->dir = spill_dir;
}

void fs_buf_free(struct fs_buf *b)
{
    free(b->mem);
    if (b->fd >= 0)
        close(b->fd);
    b->mem = NULL;
    b->len = b->cap = 0;
    b->fd = -1;
}

static int open_spill(const char *dir)
{
    char tmpl[PATH_MAX];
    int fd;

    mkdir(dir, 0700);
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    snprintf(tmpl, sizeof tmpl, "%s/safs-spill-XXXXXX", dir);
    fd = mkstemp(tmpl);
    if (fd >= 0)
        unlink(tmpl);
    return fd;
}

static int spill(struct fs_buf *b)
{
    int fd = open_spill(b->dir ? b->dir : "/tmp");

    /* an unusable cache directory must not make writes fail: use /tmp */
    if (fd < 0 && b->dir)
        fd = open_spill("/tmp");
    if (fd < 0)
        return -errno;
    for (size_t off = 0; off < b->len;) {
        ssize_t w = pwrite(fd, b->mem + off, b->len - off, (off_t)off);
        if (w < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            close(fd);
            return -e;
        }
        off += (size_t)w;
    }
    free(b->mem);
    b->mem = NULL;
    b->cap = 0;
    b->fd = fd;
    return 0;
}

static int reserve(struct fs_buf *b, size_t need)
{
    size_t cap;
    char *m;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    m = realloc(b->mem, cap);
    if (!m)
        return -ENOMEM;
    b->mem = m;
    b->cap = cap;
    return 0;
}

int fs_buf_pwrite(struct fs_buf *b, const char *data, size_t n, off_t off)
{
    size_t end = (size_t)off + n;
    int r;

    if (b->fd < 0 && end > FS_BUF_SPILL && (r = spill(b)))
        return r;
    if (b->fd >= 0) {
        for (size_t done = 0; done < n;) {
            ssize_t w = pwrite(b->fd, data + done, n - done, off + (off_t)done);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return -errno;
            }
            done += (size_t)w;
        }
    } else {
        if ((r = reserve(b, end)))
            return r;
        if ((size_t)off > b->len)
            memset(b->mem + b->len, 0, (size_t)off - b->len);
        memcpy(b->mem + off, data, n);
    }
    if (end > b->len)
        b->len = end;
    return 0;
}

ssize_t fs_buf_pread(const struct fs_buf *b, char *out, size_t n, off_t off)
{
    if ((size_t)off >= b->len)
        return 0;
    if (n > b->len - (size_t)off)
        n = b->len - (size_t)off;
    if (b->fd >= 0) {
        size_t done = 0;
        while (done < n) {
            ssize_t r = pread(b->fd, out + done, n - done, off + (off_t)done);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                return -errno;
            }
            if (r == 0)
                break;
            done += (size_t)r;
        }
        return (ssize_t)done;
    }
    memcpy(out, b->mem + off, n);
    return (ssize_t)n;
}

int fs_buf_truncate(struct fs_buf *b, off_t size)
{
    int r;
    if (b->fd < 0 && (size_t)size > FS_BUF_SPILL && (r = spill(b)))
        return r;
    if (b->fd >= 0) {
        if (ftruncate(b->fd, size))
            return -errno;
    } else {
        if ((r = reserve(b, (size_t)size)))
            return r;
        if ((size_t)size > b->len)
            memset(b->mem + b->len, 0, (size_t)size - b->len);
    }
    b->len = (size_t)size;
    return 0;
}

int fs_buf_set(struct fs_buf *b, const char *data, size_t n)
{
    int r = fs_buf_truncate(b, 0);
    return r ? r : fs_buf_pwrite(b, data, n, 0);
}

int fs_buf_copy(const struct fs_buf *b, char **out, size_t *len)
{
    char *m = malloc(b->len + 1);
    ssize_t r;
    *out = NULL;
    *len = 0;
    if (!m)
        return -ENOMEM;
    r = fs_buf_pread(b, m, b->len, 0);
    if (r < 0) {
        free(m);
        return (int)r;
    }
    m[r] = 0;
    *out = m;
    *len = (size_t)r;
    return 0;
}

/* ------------------------------------------------------------- handles */

static int is_write(int flags)
{
    return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

static struct fs_handle *handle_new(struct fs_state *st, enum fs_hkind kind, const char *path)
{
    struct fs_handle *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->kind = kind;
    pthread_mutex_init(&h->mu, NULL);
    fs_buf_init(&h->buf, st->cfg->cache_dir);
    h->path = path ? strdup(path) : NULL;
    if (path && !h->path) {
        free(h);
        return NULL;
    }
    return h;
}

void fs_handle_free(struct fs_state *st, struct fs_handle *h)
{
    if (!h)
        return;
    if (h->ver)
        fs_ver_unpin(st, h->ver);
    fs_ver_unref(st, h->base);
    if (h->item)
        fs_item_put(st, h->item);
    fs_buf_free(&h->buf);
    pthread_mutex_destroy(&h->mu);
    free(h->path);
    free(h);
}

size_t fs_h_len(struct fs_handle *h)
{
    size_t n;
    pthread_mutex_lock(&h->mu);
    n = h->own || !h->ver ? h->buf.len : h->ver->len;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* -o writeback: the close path makes no request, so the workflow its save
 * needs (the status the upload ends with) is read at open (cached) */
static void warm_workflow(struct fs_state *st, struct fs_project *p)
{
    struct sa_workflow w;
    if (st->wb && p && fs_workflow(st, &p->p, &w) == 0)
        sa_workflow_clear(&w);
}

int fs_open_item(struct fs_state *st, struct fs_item *it, const char *path,
                 struct fuse_file_info *fi, struct fs_ver *rbase, int recreated)
{
    struct fs_handle *h;
    int w = is_write(fi->flags), r;
    size_t len = 0;

    if (w && (r = fs_check_writable(st, it->folder->proj, path))) {
        fs_ver_unref(st, rbase);
        return r;
    }
    warm_workflow(st, it->folder->proj);
    h = handle_new(st, FS_H_ITEM, path);
    if (!h) {
        fs_ver_unref(st, rbase);
        return -ENOMEM;
    }
    pthread_mutex_lock(&st->mu);
    fs_item_get(it);
    h->item = it;
    h->seq = ++st->seq;
    pthread_mutex_unlock(&st->mu);
    h->writable = w;
    if (recreated || (fi->flags & O_TRUNC)) {
        /* the local buffer starts empty; nothing is uploaded unless written.
         * The base: the pre-delete document of a re-created name, else the
         * version this mount last served (none: a blind write) */
        h->own = 1;
        if (recreated) {
            h->base = rbase;
        } else {
            pthread_mutex_lock(&st->ds.mu);
            h->base = it->doc.served;
            fs_ver_ref_locked(h->base);
            pthread_mutex_unlock(&st->ds.mu);
        }
    } else {
        struct fs_ver *v;
        r = fs_doc_get(st, it, 0, 1, &v);
        if (r) {
            fs_handle_free(st, h);
            return r;
        }
        h->ver = v;
        h->base = v;
        pthread_mutex_lock(&st->ds.mu);
        fs_ver_ref_locked(v);
        pthread_mutex_unlock(&st->ds.mu);
        len = v->len;
    }
    fs_doc_open_add(st, h, len);
    /* the kernel may hold another version's length: drop it before the
     * program's first fstat (sync: nothing of ours is locked here) */
    if (fs_doc_kernel_stale(st, it, len))
        fs_kernel_inval_path(st, path);
    fi->direct_io = 1;
    fi->keep_cache = 0;
    /* a read-only descriptor has nothing to save or report at close: no
     * FLUSH round trip (one of six per file of a `cp -r`) */
    fi->noflush = !h->writable;
    fi->fh = (uintptr_t)h;
    return 0;
}

int fs_open_scratch(struct fs_state *st, struct fs_scratch *s, const char *path,
                    struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_new(st, FS_H_SCRATCH, path);
    if (!h)
        return -ENOMEM;
    h->scr = s;
    h->writable = is_write(fi->flags);
    if (h->writable)
        warm_workflow(st, s->folder ? s->folder->proj : NULL);
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

static int frames_render(struct fs_state *st, struct fs_item *it, char **out, size_t *len)
{
    char why[256];
    struct fs_ver *v;
    enum sa_err e;
    int r = fs_doc_get(st, it, 0, 0, &v);
    if (r)
        return r;
    e = sa_frames_render(v->data, v->len, st->cfg->fps, out, len, why, sizeof why);
    fs_ver_unpin(st, v);
    if (e) {
        /* the SDK raises here: the file cannot be produced (EIO, reason logged) */
        fs_log(st, LOG_ERR, "%s: per-frame view: %s", it->name, why);
        return -EIO;
    }
    return 0;
}

int fs_frames_size(struct fs_state *st, struct fs_item *it, size_t *len)
{
    char *out;
    int r = frames_render(st, it, &out, len);
    free(out);
    return r;
}

int fs_open_frames(struct fs_state *st, struct fs_item *it, const char *path,
                   struct fuse_file_info *fi)
{
    struct fs_handle *h;
    char *out;
    size_t len;
    int r;

    if (is_write(fi->flags))
        return fs_refuse(st, "open", path, EACCES, "the per-frame view is read-only");
    r = frames_render(st, it, &out, &len);
    if (r)
        return r;
    h = handle_new(st, FS_H_FRAMES, path);
    if (!h) {
        free(out);
        return -ENOMEM;
    }
    pthread_mutex_lock(&st->mu);
    fs_item_get(it);
    pthread_mutex_unlock(&st->mu);
    h->item = it;
    r = fs_buf_set(&h->buf, out, len);
    free(out);
    if (r) {
        fs_handle_free(st, h);
        return r;
    }
    h->own = 1;
    fi->direct_io = 1;
    fi->fh = (uintptr_t)h;
    return 0;
}

int fs_open_classes(struct fs_state *st, struct fs_project *p, const char *path,
                    struct fuse_file_info *fi)
{
    struct fs_handle *h;
    char *out;
    size_t len;
    int r;

    if (is_write(fi->flags) && (r = fs_check_writable(st, p, path)))
        return r;
    h = handle_new(st, FS_H_CLASSES, path);
    if (!h)
        return -ENOMEM;
    h->proj = p;
    h->writable = is_write(fi->flags);
    h->own = 1;
    if (!(fi->flags & O_TRUNC)) {
        r = fs_classes_get(st, p, &out, &len);
        if (!r) {
            r = fs_buf_set(&h->buf, out, len);
            free(out);
        }
        if (r) {
            fs_handle_free(st, h);
            return r;
        }
    }
    fi->direct_io = 1;
    fi->fh = (uintptr_t)h;
    return 0;
}

int fs_open_dir(struct fs_state *st, const char *path, struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_new(st, FS_H_DIR, path);
    if (!h || !h->path) {
        fs_handle_free(st, h);
        return -ENOMEM;
    }
    fi->fh = (uintptr_t)h;
    return 0;
}

/* ------------------------------------------------------------ read/write */

int fs_h_read(struct fs_handle *h, char *buf, size_t size, off_t off)
{
    ssize_t r;
    if (h->kind == FS_H_DIR)
        return -EISDIR;
    if (h->kind == FS_H_SCRATCH) {
        pthread_mutex_lock(&h->scr->mu);
        r = fs_buf_pread(&h->scr->buf, buf, size, off);
        pthread_mutex_unlock(&h->scr->mu);
        return (int)r;
    }
    pthread_mutex_lock(&h->mu);
    if (h->own || !h->ver) {
        r = fs_buf_pread(&h->buf, buf, size, off);
    } else if ((size_t)off >= h->ver->len) {
        r = 0;
    } else {
        size_t n = h->ver->len - (size_t)off;
        if (n > size)
            n = size;
        memcpy(buf, h->ver->data + off, n);
        r = (ssize_t)n;
    }
    pthread_mutex_unlock(&h->mu);
    return (int)r;
}

/* The first change of an item handle: its bytes become its own (h->mu held). */
static int make_own(struct fs_state *st, struct fs_handle *h)
{
    int r;
    if (h->own)
        return 0;
    r = fs_buf_set(&h->buf, h->ver ? h->ver->data : "", h->ver ? h->ver->len : 0);
    if (r)
        return r;
    h->own = 1;
    if (h->ver) {
        fs_ver_unpin(st, h->ver);
        h->ver = NULL;
    }
    return 0;
}

static void touch_scratch(struct fs_scratch *s)
{
    clock_gettime(CLOCK_REALTIME, &s->mtime);
    s->ctime = s->mtime;
}

int fs_h_write(struct fs_state *st, struct fs_handle *h, const char *buf, size_t size, off_t off,
               int append)
{
    int r;
    switch (h->kind) {
    case FS_H_DIR:
        return -EISDIR;
    case FS_H_FRAMES:
        return -EACCES;
    case FS_H_SCRATCH:
        pthread_mutex_lock(&h->scr->mu);
        if (append)
            off = (off_t)h->scr->buf.len;
        r = fs_buf_pwrite(&h->scr->buf, buf, size, off);
        touch_scratch(h->scr);
        pthread_mutex_unlock(&h->scr->mu);
        return r ? r : (int)size;
    case FS_H_CLASSES:
    case FS_H_ITEM:
        break;
    }
    pthread_mutex_lock(&h->mu);
    if (append)
        off = (off_t)(h->own || !h->ver ? h->buf.len : h->ver->len);
    if ((uint64_t)off + size > st->cfg->max_doc) {
        pthread_mutex_unlock(&h->mu);
        fs_log(st, LOG_ERR, "%s: a document over max_doc (%llu bytes) is refused",
               h->path ? h->path : "-", (unsigned long long)st->cfg->max_doc);
        return -EFBIG;
    }
    r = make_own(st, h);
    if (!r)
        r = fs_buf_pwrite(&h->buf, buf, size, off);
    if (!r) {
        h->dirty = 1;
        h->err = 0;
        if (h->kind == FS_H_ITEM)
            fs_doc_open_len(st, h, h->buf.len, 1);
    }
    pthread_mutex_unlock(&h->mu);
    return r ? r : (int)size;
}

int fs_truncate_scratch(struct fs_scratch *s, off_t size)
{
    int r;
    pthread_mutex_lock(&s->mu);
    r = fs_buf_truncate(&s->buf, size);
    touch_scratch(s);
    pthread_mutex_unlock(&s->mu);
    return r;
}

int fs_h_truncate(struct fs_state *st, struct fs_handle *h, off_t size)
{
    int r;
    switch (h->kind) {
    case FS_H_DIR:
        return -EISDIR;
    case FS_H_FRAMES:
        return -EACCES;
    case FS_H_SCRATCH:
        return fs_truncate_scratch(h->scr, size);
    case FS_H_CLASSES:
    case FS_H_ITEM:
        break;
    }
    if ((uint64_t)size > st->cfg->max_doc)
        return -EFBIG;
    pthread_mutex_lock(&h->mu);
    r = make_own(st, h);
    if (!r)
        r = fs_buf_truncate(&h->buf, size);
    if (!r) {
        h->dirty = 1;
        h->err = 0;
        if (h->kind == FS_H_ITEM)
            fs_doc_open_len(st, h, h->buf.len, 1);
    }
    pthread_mutex_unlock(&h->mu);
    return r;
}

/* --------------------------------------------------------------- saves */

/* Upload a dirty item handle (h->mu held). */
static int save_handle(struct fs_state *st, struct fs_handle *h)
{
    struct fs_ver *nb = NULL;
    char *data;
    size_t len;
    int r = fs_buf_copy(&h->buf, &data, &len);
    if (r)
        return r;
    {
        struct fs_save o = {.path = h->path ? h->path : h->item->fname, .base = h->base,
                            .seq = h->seq, .mtime = h->set_mtime ? &h->mtime : NULL, .h = h,
                            .newbase = &nb};
        r = fs_save_doc(st, h->item, data, len, &o);
    }
    free(data);
    /* a refused or failed save already went to the recovery folder */
    h->dirty = 0;
    if (nb) {
        /* the next save of this handle is judged against what it just wrote */
        fs_ver_unref(st, h->base);
        h->base = nb;
    }
    return r;
}

static int flush_classes(struct fs_state *st, struct fs_handle *h)
{
    char *data;
    size_t len;
    int r;
    if (!h->dirty)
        return h->err;
    r = fs_buf_copy(&h->buf, &data, &len);
    if (r)
        return r;
    r = fs_classes_check(st, h->proj, data, len, h->path);
    free(data);
    h->dirty = 0;
    h->err = r;
    return r;
}

int fs_h_flush(struct fs_state *st, struct fs_handle *h)
{
    int r = 0, changed = 0;
    if (h->kind == FS_H_CLASSES) {
        pthread_mutex_lock(&h->mu);
        r = flush_classes(st, h);
        pthread_mutex_unlock(&h->mu);
        return r;
    }
    if (h->kind != FS_H_ITEM)
        return 0;
    pthread_mutex_lock(&h->mu);
    if (h->dirty) {
        r = save_handle(st, h);
        h->err = r;
    } else {
        r = h->err;
    }
    changed = h->own;
    pthread_mutex_unlock(&h->mu);
    /* the kernel holds the written length (or 0 after O_TRUNC); the file now
     * shows the platform's document: drop the kernel's attributes before
     * close(2) returns */
    if (changed && h->path)
        fs_kernel_inval_path(st, h->path);
    return r;
}

int fs_h_release(struct fs_state *st, struct fs_handle *h)
{
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
        fs_doc_open_del(st, h);
        break;
    case FS_H_SCRATCH: {
        struct fs_scratch *s = h->scr;
        size_t len;
        pthread_mutex_lock(&s->mu);
        len = s->buf.len;
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_lock(&st->mu);
        if (len && !s->became && s->linked && h->writable && !fs_is_fuse_hidden(s->name))
            fs_log(st, LOG_INFO, "scratch file %s closed with %zu bytes: it stays local to "
                                 "this mount and is never uploaded", s->name, len);
        s->nopen--;
        fs_scratch_maybe_free_locked(st, s);
        pthread_mutex_unlock(&st->mu);
        break;
    }
    case FS_H_CLASSES:
    case FS_H_FRAMES:
    case FS_H_DIR:
        break;
    }
    fs_handle_free(st, h);
    return 0;
}

int fs_truncate_item(struct fs_state *st, struct fs_item *it, const char *path, off_t size)
{
    struct fs_ver *v;
    char *nd;
    int r;

    if ((r = fs_check_writable(st, it->folder->proj, path)))
        return r;
    if (size == 0)
        /* an empty document is never a save; truncate-to-zero by path would
         * otherwise be the first half of a rewrite we cannot see */
        return fs_refuse(st, "truncate", path, EINVAL,
                         "truncate to 0 without an open file is refused");
    if ((uint64_t)size > st->cfg->max_doc)
        return -EFBIG;
    r = fs_doc_get(st, it, 0, 1, &v);
    if (r)
        return r;
    nd = calloc(1, (size_t)size + 1);
    if (!nd) {
        fs_ver_unpin(st, v);
        return -ENOMEM;
    }
    memcpy(nd, v->data, v->len < (size_t)size ? v->len : (size_t)size);
    {
        struct fs_save o = {.path = path, .base = v, .seq = fs_next_seq(st)};
        r = fs_save_doc(st, it, nd, (size_t)size, &o);
    }
    free(nd);
    fs_ver_unpin(st, v);
    fs_kernel_inval_path(st, path);
    return r;
}
