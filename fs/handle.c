/** @file
 * Open-file buffers, item attributes, the upload pipeline (filesystem.md §2)
 * and the page-cache invalidation worker.
 *
 * A handle keeps its bytes in memory up to FS_BUF_SPILL and spills to an
 * unlinked temp file under the cache directory beyond.
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

/* --------------------------------------------------------------- stat */

static void ms_to_ts(int64_t ms, struct timespec *ts)
{
    ts->tv_sec = ms / 1000;
    ts->tv_nsec = (ms % 1000) * 1000000;
}

int fs_item_stat(struct fs_state *st, struct fs_item *it, struct stat *sb, int need_size)
{
    const struct fs_config *cfg = st->cfg;
    int r = 0;

    memset(sb, 0, sizeof *sb);
    sb->st_mode = S_IFREG | (0644 & ~cfg->umask);
    if (it->folder->proj->p.type == SA_PT_MULTIMODAL || cfg->read_only)
        sb->st_mode &= ~0222;
    sb->st_nlink = 1;
    sb->st_uid = cfg->uid_set ? cfg->uid : getuid();
    sb->st_gid = cfg->gid_set ? cfg->gid : getgid();
    sb->st_blksize = 4096;
    pthread_mutex_lock(&st->mu);
    if (it->dirty_handles)
        need_size = 0;
    pthread_mutex_unlock(&st->mu);
    if (need_size) {
        size_t size;
        r = fs_doc_size(st, it, &size);
        if (r)
            return r;
    }
    pthread_mutex_lock(&st->mu);
    if (it->dirty_handles > 0)
        sb->st_size = (off_t)it->wlen;  /* unsaved writes: what the writer sees */
    else if (it->has_size && it->size_ms == it->ms && it->size_status == it->status)
        sb->st_size = (off_t)it->size;
    else
        r = 1;
    if (it->has_mtime && it->mtime_ms == it->ms && it->mtime_status == it->status)
        sb->st_mtim = it->mtime;
    else
        ms_to_ts(it->ms, &sb->st_mtim);
    pthread_mutex_unlock(&st->mu);
    sb->st_ctim = sb->st_mtim;
    sb->st_atim = sb->st_mtim;
    sb->st_blocks = (sb->st_size + 511) / 512;
    return r;
}

/* ----------------------------------------------------------- uploads */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* After an upload or a status step: learn the new version and serve
 * exactly @p data, with @p mtime, for it. */
static void record_served(struct fs_state *st, struct fs_item *it, const char *data, size_t len,
                          const struct timespec *mtime)
{
    pthread_mutex_lock(&st->mu);
    fs_doc_put_locked(st, it, it->ms, it->status, data, len);
    it->served = 1;
    it->served_ms = it->ms;
    it->served_status = it->status;
    it->kc = 0;
    if (mtime) {
        it->has_mtime = 1;
        it->mtime = *mtime;
        it->mtime_ms = it->ms;
        it->mtime_status = it->status;
    }
    pthread_mutex_unlock(&st->mu);
}

int fs_upload(struct fs_state *st, struct fs_item *it, const char *path, const char *data,
              size_t len, uint64_t seq, int has_base, int64_t base_ms, int base_status,
              const struct timespec *mtime, const char *status)
{
    struct fs_folder *f = it->folder;
    struct fs_project *p = f->proj;
    char why[256], *cur = NULL, *prep = NULL, *pend = NULL;
    size_t curlen = 0, preplen = 0;
    enum sa_err e;
    int r = 0, eq;
    char *fname, *iname;

    pthread_mutex_lock(&it->up_mu);
    pthread_mutex_lock(&st->mu);
    /* copies: a concurrent listing may rename the item */
    fname = strdup(it->fname ? it->fname : "");
    iname = strdup(it->name ? it->name : "");
    if (it->deleted_seq > seq) {
        pthread_mutex_unlock(&st->mu);
        fs_log(st, LOG_INFO, "%s: deleted while open; these writes are not uploaded", path);
        goto out;
    }
    if (it->estale_seq > seq) {
        pthread_mutex_unlock(&st->mu);
        fs_log(st, LOG_ERR, "%s: the item changed on the platform since this file was read "
                            "(ESTALE); the platform keeps the other edit", path);
        fs_recover(st, "conflict", f, fname, data, len);
        r = -ESTALE;
        goto fail;
    }
    if (status)
        pend = strdup(status);
    else if (it->pending_status) {
        pend = it->pending_status;
        it->pending_status = NULL;
    }
    pthread_mutex_unlock(&st->mu);

    if (len > st->cfg->max_doc) {
        fs_log(st, LOG_ERR, "%s: %zu bytes is over max_doc", path, len);
        fs_recover(st, "invalid", f, fname, data, len);
        r = -EFBIG;
        goto fail;
    }
    if (sa_doc_validate(data, len, why, sizeof why)) {
        fs_log(st, LOG_ERR, "%s: invalid annotation document: %s; the platform keeps its "
                            "previous document", path, why);
        fs_recover(st, "invalid", f, fname, data, len);
        r = -EINVAL;
        goto fail;
    }
    e = fs_item_refetch(st, it);
    if (e) {
        r = fs_fail(st, "upload (get item)", path, e);
        fs_recover(st, "failed", f, fname, data, len);
        goto fail;
    }
    r = fs_doc_get(st, it, &cur, &curlen, 0);
    if (r) {
        fs_log(st, LOG_ERR, "%s: cannot read the platform's current document", path);
        fs_recover(st, "failed", f, fname, data, len);
        goto fail;
    }
    eq = sa_doc_equal(data, len, cur, curlen, p->p.type);
    if (eq == 1) {
        if (pend) {
            r = fs_set_status_items(st, f, &it, 1, pend, path);
            if (r)
                goto out;
            fs_item_refetch(st, it);
        }
        record_served(st, it, data, len, mtime);
        pthread_mutex_lock(&st->mu);
        st->own.uploads_skipped++;
        pthread_mutex_unlock(&st->mu);
        fs_log(st, LOG_DEBUG, "%s: unchanged, nothing uploaded", path);
        goto out;
    }
    pthread_mutex_lock(&st->mu);
    if (has_base && (it->ms != base_ms || it->status != base_status)) {
        it->estale_seq = ++st->seq;
        it->served = 1;
        it->served_ms = it->ms;
        it->served_status = it->status;
        st->own.conflicts++;
        pthread_mutex_unlock(&st->mu);
        fs_log(st, LOG_ERR, "%s: the item changed on the platform since this mount read it "
                            "(ESTALE); the platform keeps the other edit", path);
        fs_recover(st, "conflict", f, fname, data, len);
        r = -ESTALE;
        goto fail;
    }
    pthread_mutex_unlock(&st->mu);

    e = sa_doc_prepare(data, len, iname, st->email ? st->email : "", now_ms(), p->p.type,
                       &prep, &preplen, why, sizeof why);
    if (e) {
        fs_log(st, LOG_ERR, "%s: invalid annotation document: %s", path, why);
        fs_recover(st, "invalid", f, fname, data, len);
        r = -EINVAL;
        goto fail;
    }
    {
        struct sa_upload_doc d = {.item_id = it->id, .name = iname, .json = prep,
                                  .len = preplen};
        e = sa_upload_annotations(st->c, &p->p, f->id, &d, 1, st->cfg->keep_status);
        if (e) {
            enum sa_err de = d.result ? d.result : e;
            fs_log(st, LOG_ERR, "upload %s: %s%s%s", path, sa_strerror(de),
                   d.detail[0] ? ": " : "", d.detail[0] ? d.detail : sa_last_error());
            r = -fs_errno(de);
            if (r == -ENOENT || r == -EACCES || r == -EINVAL || r == -EFBIG)
                ; /* the platform's answer */
            else
                r = -EIO;
            fs_recover(st, r == -EINVAL ? "invalid" : "failed", f, fname, data, len);
            goto fail;
        }
    }
    pthread_mutex_lock(&st->mu);
    st->own.uploads++;
    pthread_mutex_unlock(&st->mu);
    if (pend)
        r = fs_set_status_items(st, f, &it, 1, pend, path);
    e = fs_item_refetch(st, it);
    if (e)
        fs_fail(st, "upload (re-read version)", path, e);
    record_served(st, it, data, len, mtime);
    fs_log(st, LOG_INFO, "%s: uploaded (%zu bytes)", path, len);
    goto out;
fail:
    /* the kernel may hold the refused bytes: the next open drops its pages
     * (keep_cache 0) and the worker invalidates them now */
    pthread_mutex_lock(&st->mu);
    it->kc = 0;
    pthread_mutex_unlock(&st->mu);
    fs_invalidate_later(st, path);
out:
    pthread_mutex_unlock(&it->up_mu);
    free(fname);
    free(iname);
    free(cur);
    free(prep);
    free(pend);
    return r;
}

/* ------------------------------------------------- invalidation worker */

static void *inval_main(void *arg)
{
    struct fs_state *st = arg;
    pthread_mutex_lock(&st->inv_mu);
    for (;;) {
        while (!st->inv_n && !st->inv_stop)
            pthread_cond_wait(&st->inv_cv, &st->inv_mu);
        if (!st->inv_n && st->inv_stop)
            break;
        {
            char *path = st->inv_q[0];
            memmove(st->inv_q, st->inv_q + 1, (st->inv_n - 1) * sizeof *st->inv_q);
            st->inv_n--;
            pthread_mutex_unlock(&st->inv_mu);
            if (st->fuse && path)
                fuse_invalidate_path(st->fuse, path);
            free(path);
            pthread_mutex_lock(&st->inv_mu);
        }
    }
    pthread_mutex_unlock(&st->inv_mu);
    return NULL;
}

void fs_invalidate_later(struct fs_state *st, const char *path)
{
    if (!path)
        return;
    pthread_mutex_lock(&st->inv_mu);
    if (st->inv_started && !st->inv_stop) {
        if (st->inv_n == st->inv_cap) {
            size_t cap = st->inv_cap ? st->inv_cap * 2 : 16;
            char **q = realloc(st->inv_q, cap * sizeof *q);
            if (q) {
                st->inv_q = q;
                st->inv_cap = cap;
            }
        }
        if (st->inv_n < st->inv_cap) {
            st->inv_q[st->inv_n++] = strdup(path);
            pthread_cond_signal(&st->inv_cv);
        }
    }
    pthread_mutex_unlock(&st->inv_mu);
}

void fs_inval_start(struct fs_state *st)
{
    pthread_mutex_lock(&st->inv_mu);
    if (!st->inv_started && pthread_create(&st->inv_thread, NULL, inval_main, st) == 0)
        st->inv_started = 1;
    pthread_mutex_unlock(&st->inv_mu);
}

void fs_inval_stop(struct fs_state *st)
{
    int started;
    pthread_mutex_lock(&st->inv_mu);
    started = st->inv_started;
    st->inv_stop = 1;
    pthread_cond_signal(&st->inv_cv);
    pthread_mutex_unlock(&st->inv_mu);
    if (started)
        pthread_join(st->inv_thread, NULL);
    for (size_t i = 0; i < st->inv_n; i++)
        free(st->inv_q[i]);
    free(st->inv_q);
    st->inv_q = NULL;
    st->inv_n = st->inv_cap = 0;
}
