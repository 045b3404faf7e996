/** @file
 * fuse_operations (libfuse 3.14 high-level API): resolve the path, call the
 * file that owns the behaviour (docs/architecture.md), return -errno.
 * Per-open state lives in fi->fh (struct fs_handle); with nullpath_ok the
 * path may be NULL for an open file, so handle ops never need it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "fs_i.h"

/* Every operation starts here: the state, and the operation's one deadline
 * (-o op_timeout=) for all the client calls it makes, retries and backoff
 * included. A FUSE worker thread runs nothing but operations, so the next
 * operation's call replaces it; init and destroy clear it. */
struct fs_state *fs_st(void)
{
    struct fs_state *st = fuse_get_context()->private_data;
    if (st && st->cfg)
        sa_op_deadline(st->cfg->op_timeout);
    return st;
}

static struct fs_handle *H(const struct fuse_file_info *fi)
{
    return fi ? (struct fs_handle *)(uintptr_t)fi->fh : NULL;
}

/* ------------------------------------------------------------ lifecycle */

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    struct fs_state *st = fs_st();
    (void)conn;
    sa_op_deadline(0); /* this thread goes on as a FUSE worker */
    /* An unlink of an open file arrives as a rename to .fuse_hidden… and a
     * last-close unlink of that name (unlink.c): with hard_remove, libfuse
     * answers ESTALE to fstat on descriptors opened before the unlink. */
    cfg->hard_remove = 0;
    /* handle ops work on fi->fh; an unlinked-open file has no path */
    cfg->nullpath_ok = 1;
    cfg->use_ino = 0;
    st->attr_timeout = cfg->attr_timeout;
    st->fuse = fuse_get_context()->fuse;
    /* threads only now: after fuse_daemonize */
    fs_kernel_start(st);
    fs_dc_start(st);
    fs_deleter_start(st);
    fs_wb_start(st);
    return st;
}

static void op_destroy(void *data)
{
    struct fs_state *st = data;
    sa_op_deadline(0); /* pending deletes have their own deadlines */
    fs_wb_stop(st); /* -o writeback: journaled saves drain (drain_timeout) */
    fs_fetch_stop(st);
    fs_deleter_stop(st); /* pending deletes are sent now */
    fs_kernel_stop(st);
    fs_dc_stop(st); /* the document cache's queued writes, at most 5 s */
    fs_scratch_report_all(st);
}

/* ---------------------------------------------------------------- attrs */

static int op_getattr(const char *path, struct stat *sb, struct fuse_file_info *fi)
{
    return fs_getattr(fs_st(), path, sb, H(fi));
}

static int op_opendir(const char *path, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    int r = fs_resolve(st, path, &l);
    if (r)
        return r;
    switch (l.kind) {
    case FS_K_NONE:
        r = -ENOENT;
        break;
    case FS_K_ITEM:
    case FS_K_FRAMES:
    case FS_K_SCRATCH:
    case FS_K_GHOST:
    case FS_K_CLASSES_FILE:
        r = -ENOTDIR;
        break;
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
    case FS_K_CLASSES_DIR:
        r = fs_open_dir(st, path, fi);
        break;
    }
    fs_loc_put(st, &l);
    return r;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)off;
    (void)flags;
    /* with nullpath_ok, readdir gets no path: opendir kept it in fi->fh */
    if (H(fi))
        path = H(fi)->path;
    if (!path)
        return -ENOENT;
    return fs_readdir(fs_st(), path, buf, filler);
}

static int op_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    fs_handle_free(fs_st(), H(fi));
    fi->fh = 0;
    return 0;
}

/* ----------------------------------------------------------- open/create */

/* An open that raced with libfuse's hide of an open file (rm, or a rename
 * onto it: it looked the name up before, its OPEN reaches the hidden name).
 * rename and unlink are atomic, so a read-only open serves the item's
 * document; a write open would write a removed file. */
static int open_ghost(struct fs_state *st, struct fs_item *it, const char *path,
                      struct fuse_file_info *fi)
{
    if ((fi->flags & O_ACCMODE) != O_RDONLY)
        return fs_refuse(st, "open", path, ENOENT, "the file was removed while opening it");
    return fs_open_item(st, it, path, fi, NULL, 0);
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    int r = fs_resolve(st, path, &l);
    if (r)
        return r;
    switch (l.kind) {
    case FS_K_NONE:
        r = -ENOENT;
        break;
    case FS_K_GHOST:
        r = open_ghost(st, l.item, path, fi);
        break;
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
    case FS_K_CLASSES_DIR:
        r = -EISDIR;
        break;
    case FS_K_ITEM:
        /* -o writeback: an O_TRUNC write (cp's destination) reads nothing
         * and the uploader checks the version: no request at open */
        if (!(st->wb && (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY))
            fs_item_revalidate(st, l.item);
        r = fs_open_item(st, l.item, path, fi, NULL, 0);
        break;
    case FS_K_FRAMES:
        fs_item_revalidate(st, l.item);
        r = fs_open_frames(st, l.item, path, fi);
        break;
    case FS_K_SCRATCH:
        r = fs_open_scratch(st, l.scr, path, fi);
        break;
    case FS_K_CLASSES_FILE:
        r = fs_open_classes(st, l.proj, path, fi);
        break;
    }
    fs_loc_put(st, &l);
    return r;
}

static int create_new(struct fs_state *st, struct fs_loc *l, const char *path, mode_t mode,
                      struct fuse_file_info *fi)
{
    struct fs_item *it;
    struct fs_scratch *s;
    int r;

    if (st->cfg->read_only)
        return fs_refuse(st, "create", path, EROFS, "read-only mount");
    r = fs_check_new_name(st, l, path, &it);
    if (r)
        return r;
    if (it) {
        /* a name an unlink hid (tar x, mv across filesystems, install…):
         * the pending delete is cancelled, this is a save against it */
        int hidden = fs_doc_hidden(st, it);
        struct fs_ver *base = hidden ? fs_recreate(st, it) : NULL;
        r = fs_open_item(st, it, path, fi, base, hidden);
        fs_item_put(st, it);
        return r;
    }
    if (fs_project_read_only(st, l->proj, path))
        return -EROFS;
    pthread_mutex_lock(&st->mu);
    s = fs_map_get(&l->fold->scratch, l->leaf);
    if (!s)
        s = fs_scratch_new(st, l->fold, l->leaf, mode);
    if (s)
        s->refs++;
    pthread_mutex_unlock(&st->mu);
    if (!s)
        return -ENOMEM;
    fs_log(st, LOG_DEBUG, "%s: scratch file created", path);
    r = fs_open_scratch(st, s, path, fi);
    pthread_mutex_lock(&st->mu);
    s->refs--;
    fs_scratch_maybe_free_locked(st, s);
    pthread_mutex_unlock(&st->mu);
    return r;
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    int r = fs_resolve(st, path, &l);

    if (r)
        return r;
    switch (l.kind) {
    case FS_K_ITEM:
        r = (fi->flags & O_EXCL) ? -EEXIST : fs_open_item(st, l.item, path, fi, NULL, 0);
        break;
    case FS_K_SCRATCH:
        r = (fi->flags & O_EXCL) ? -EEXIST : fs_open_scratch(st, l.scr, path, fi);
        break;
    case FS_K_CLASSES_FILE:
        r = (fi->flags & O_EXCL) ? -EEXIST : fs_open_classes(st, l.proj, path, fi);
        break;
    case FS_K_GHOST:
        r = -EEXIST;
        break;
    case FS_K_FRAMES:
        r = fs_refuse(st, "create", path, EACCES, "the per-frame view is read-only");
        break;
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
    case FS_K_CLASSES_DIR:
        r = -EISDIR;
        break;
    case FS_K_NONE:
        r = create_new(st, &l, path, mode, fi);
        break;
    }
    fs_loc_put(st, &l);
    return r;
}

/* ------------------------------------------------------------ read/write */

static int op_read(const char *path, char *buf, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
    (void)path;
    return H(fi) ? fs_h_read(H(fi), buf, size, off) : -EBADF;
}

static int op_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)path;
    return H(fi) ? fs_h_write(fs_st(), H(fi), buf, size, off, fi->flags & O_APPEND) : -EBADF;
}

static int op_flush(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    return H(fi) ? fs_h_flush(fs_st(), H(fi)) : 0;
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    struct fs_handle *h = H(fi);
    int r;
    (void)datasync;
    r = op_flush(path, fi);
    /* -o writeback: every pending save of the item, whichever descriptor */
    if (!r && h && h->item && (h->kind == FS_H_ITEM) && fs_st()->wb)
        r = fs_wb_wait_item(fs_st(), h->item);
    return r;
}

static int op_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    int r;
    (void)datasync;
    if (!path && H(fi))
        path = H(fi)->path; /* nullpath_ok: the path opendir saw */
    if (!st->wb || !path)
        return 0;
    r = fs_resolve(st, path, &l);
    if (r)
        return r;
    /* a folder waits for its saves; the team or a project for all */
    r = fs_wb_wait_folder(st, l.kind == FS_K_FOLDER ? l.fold : NULL);
    fs_loc_put(st, &l);
    return r;
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    return H(fi) ? fs_h_release(fs_st(), H(fi)) : 0;
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    int r;

    if (H(fi))
        return fs_h_truncate(st, H(fi), size);
    if (!path)
        return -EBADF;
    r = fs_resolve(st, path, &l);
    if (r)
        return r;
    switch (l.kind) {
    case FS_K_NONE:
    case FS_K_GHOST:
        r = -ENOENT;
        break;
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
    case FS_K_CLASSES_DIR:
        r = -EISDIR;
        break;
    case FS_K_FRAMES:
    case FS_K_CLASSES_FILE:
        r = -EACCES;
        break;
    case FS_K_SCRATCH:
        r = fs_truncate_scratch(l.scr, size);
        break;
    case FS_K_ITEM:
        r = fs_truncate_item(st, l.item, path, size);
        break;
    }
    fs_loc_put(st, &l);
    return r;
}

/* --------------------------------------------------------------- unlink */

static int op_unlink(const char *path)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    int r = fs_resolve(st, path, &l);

    if (r)
        return r;
    switch (l.kind) {
    case FS_K_NONE:
        r = -ENOENT;
        break;
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
    case FS_K_CLASSES_DIR:
        r = -EISDIR;
        break;
    case FS_K_FRAMES:
        r = -EACCES;
        break;
    case FS_K_CLASSES_FILE:
        r = fs_refuse(st, "unlink", path, EROFS, "classes.json shows the project's classes");
        break;
    case FS_K_SCRATCH:
        pthread_mutex_lock(&st->mu);
        fs_scratch_unlink_locked(st, l.scr);
        pthread_mutex_unlock(&st->mu);
        break;
    case FS_K_GHOST:
        r = fs_unlink_ghost(st, l.fold, l.leaf);
        break;
    case FS_K_ITEM:
        r = fs_check_writable(st, l.proj, path);
        if (!r)
            r = fs_unlink_item(st, l.item, path);
        break;
    }
    fs_loc_put(st, &l);
    return r;
}

/* ------------------------------------------------------------ dirs, rename */

static int op_mkdir(const char *path, mode_t mode)
{
    (void)mode;
    return fs_mkdir(fs_st(), path);
}

static int op_rmdir(const char *path)
{
    return fs_rmdir(fs_st(), path);
}

static int op_rename(const char *from, const char *to, unsigned int flags)
{
    return fs_rename(fs_st(), from, to, flags);
}

/* Special files and links have no place on the platform. Emacs falls back
 * to a regular-file lock only on ENOSYS, EPERM or ENAMETOOLONG. */
static int op_symlink(const char *target, const char *path)
{
    (void)target;
    return fs_refuse(fs_st(), "symlink", path, EPERM, "symbolic links are not supported");
}

static int op_link(const char *from, const char *to)
{
    (void)from;
    return fs_refuse(fs_st(), "link", to, EPERM, "hard links are not supported");
}

static int op_mknod(const char *path, mode_t mode, dev_t dev)
{
    (void)mode;
    (void)dev;
    return fs_refuse(fs_st(), "mknod", path, EPERM,
                     "special files (fifos, devices, sockets) are not supported");
}

/* ------------------------------------------------------- chmod/utimens */

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_handle *h = H(fi);
    struct fs_loc l = {0};
    struct fs_scratch *s = h && h->kind == FS_H_SCRATCH ? h->scr : NULL;
    int r = 0;

    if (h && h->kind == FS_H_DIR)
        return 0;
    if (!h) {
        if (!path)
            return -ENOENT;
        r = fs_resolve(st, path, &l);
        if (r)
            return r;
        if (l.kind == FS_K_NONE)
            r = -ENOENT;
        else if (l.kind == FS_K_SCRATCH)
            s = l.scr;
    }
    if (!r && s) {
        pthread_mutex_lock(&s->mu);
        s->mode = mode & 07777;
        clock_gettime(CLOCK_REALTIME, &s->ctime);
        pthread_mutex_unlock(&s->mu);
    }
    /* annotation files and directories: accepted, so cp -p / rsync -a succeed */
    fs_loc_put(st, &l);
    return r;
}

static int op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    int r = 0;
    (void)uid;
    (void)gid;
    if (fi || !path)
        return 0;
    if (fs_resolve(st, path, &l) == 0) {
        if (l.kind == FS_K_NONE)
            r = -ENOENT;
        fs_loc_put(st, &l);
    }
    return r;
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
    struct fs_loc l = {0};
    struct timespec now[2];
    int r = 0;

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
        if (!path)
            return -ENOENT;
        r = fs_resolve(st, path, &l);
        if (r)
            return r;
        if (l.kind == FS_K_NONE)
            r = -ENOENT;
        else if (l.kind == FS_K_SCRATCH)
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
        fs_doc_set_mtime(st, it, &m);
    }
    fs_loc_put(st, &l);
    return r;
}

/* df: the platform has no quota API. These fixed figures (4 TiB, half of it
 * free; 16 M inodes, half free) only let tools that check free space go on;
 * docs/fs-choices.md says so. */
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
    .fsyncdir = op_fsyncdir,
    .release = op_release,
    .truncate = op_truncate,
    .unlink = op_unlink,
    .mkdir = op_mkdir,
    .rmdir = op_rmdir,
    .rename = op_rename,
    .symlink = op_symlink,
    .link = op_link,
    .mknod = op_mknod,
    .chmod = op_chmod,
    .chown = op_chown,
    .utimens = op_utimens,
    .statfs = op_statfs,
    .getxattr = fs_op_getxattr,
    .setxattr = fs_op_setxattr,
    .listxattr = fs_op_listxattr,
    .removexattr = fs_op_removexattr,
};
