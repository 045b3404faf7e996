/** @file
 * rename (filesystem.md §2, §3, §4):
 *  - scratch → annotation name: a save of the scratch file's bytes (rsync,
 *    sed -i, jq … > t && mv t f, atomic writes, editors); also onto a name an
 *    unlink hid (a re-create: the pending delete is cancelled);
 *  - annotation → scratch name: the scratch name gets a copy (editor
 *    backups); annotation → `.fuse_hidden…`: libfuse hiding an open file
 *    being unlinked (unlink.c);
 *  - annotation → another annotation name or another folder: EPERM (never
 *    EXDEV, or mv would copy and delete);
 *  - folder → new name in its project: the platform's folder rename;
 *  - scratch → scratch: local.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

/* rename(scratch, annotation name): upload the scratch's bytes. */
static int scratch_to_item(struct fs_state *st, struct fs_scratch *s, struct fs_item *it,
                           const char *from, const char *to, int recreated)
{
    struct fs_ver *base = NULL;
    char *data, *status = NULL;
    size_t len;
    struct timespec mtime;
    const struct fs_xattr *x;
    int r;

    if ((r = fs_check_writable(st, it->folder->proj, to)))
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
    if (recreated) {
        base = fs_recreate(st, it);
    } else {
        /* the target's version this mount last served (none: a blind write) */
        pthread_mutex_lock(&st->ds.mu);
        base = it->doc.served;
        fs_ver_ref_locked(base);
        pthread_mutex_unlock(&st->ds.mu);
    }
    {
        struct fs_save o = {.path = to, .base = base, .seq = s->seq, .scratch = 1, .mtime = &mtime,
                            .status = status};
        r = fs_save_doc(st, it, data, len, &o);
    }
    fs_ver_unref(st, base);
    free(data);
    free(status);
    if (!r) {
        pthread_mutex_lock(&st->mu);
        s->became = 1;
        fs_scratch_unlink_locked(st, s);
        pthread_mutex_unlock(&st->mu);
        /* the scratch file's inode becomes the annotation file: the kernel
         * holds the scratch's length, drop it before rename returns */
        fs_kernel_inval_path(st, from);
    }
    return r;
}

/* rename(annotation, scratch name): the scratch gets a copy. */
static int item_to_scratch(struct fs_state *st, struct fs_item *it, struct fs_folder *f,
                           const char *name)
{
    struct fs_scratch *s, *old;
    struct fs_ver *v;
    struct timespec mt;
    int r = fs_doc_get(st, it, 0, 1, &v);
    if (r)
        return r;
    fs_doc_mtime(st, it, &mt);
    pthread_mutex_lock(&st->mu);
    old = fs_map_get(&f->scratch, name);
    if (old)
        fs_scratch_unlink_locked(st, old);
    s = fs_scratch_new(st, f, name, 0644);
    pthread_mutex_unlock(&st->mu);
    if (!s) {
        fs_ver_unpin(st, v);
        return -ENOMEM;
    }
    pthread_mutex_lock(&s->mu);
    r = fs_buf_set(&s->buf, v->data, v->len);
    s->mtime = mt;
    pthread_mutex_unlock(&s->mu);
    fs_ver_unpin(st, v);
    return r;
}

/* The leaf of a new name in a folder directory: what may be created. Sets
 * *item (a ref) when the name is an existing item's. */
int fs_check_new_name(struct fs_state *st, const struct fs_loc *l, const char *path,
                      struct fs_item **item)
{
    const char *leaf = l->leaf;
    *item = NULL;
    if (l->parent != FS_K_PROJECT && l->parent != FS_K_FOLDER)
        return fs_refuse(st, "create", path, EPERM,
                         "files live in project and folder directories");
    if (fs_ends_with(leaf, "___save.png")) {
        fs_log(st, LOG_ERR, "%s: Pixel masks cannot be written: the platform's API has no mask "
                            "upload (api.md §10.9)", path);
        return -EOPNOTSUPP;
    }
    if (l->proj->p.type == SA_PT_VIDEO && fs_ends_with(leaf, "___frames.json"))
        return fs_refuse(st, "create", path, EACCES, "the per-frame view is read-only");
    if (fs_ends_with(leaf, l->proj->suffix) && !fs_is_fuse_hidden(leaf)) {
        int r;
        if (l->item) {
            /* a name an unlink hid */
            pthread_mutex_lock(&st->mu);
            fs_item_get(l->item);
            pthread_mutex_unlock(&st->mu);
            *item = l->item;
            return 0;
        }
        r = fs_folder_find_item(st, l->fold, leaf, item);
        if (r == -ENOENT && leaf[0] == '.') {
            /* a hidden name that matches no item is a scratch file (Emacs'
             * lock `.#name___objects.json`, editors' temp files) */
            return 0;
        }
        if (r == -ENOENT) {
            size_t bl = strlen(leaf) - strlen(l->proj->suffix);
            fs_log(st, LOG_ERR, "%s: no item named \"%.*s\" in %s/%s (missing item)", path,
                   (int)bl, leaf, l->proj->p.name, l->fold->is_root ? "root" : l->fold->name);
        }
        return r;
    }
    return 0;
}

static int rename_item(struct fs_state *st, struct fs_loc *a, struct fs_loc *b,
                       const char *from, const char *to)
{
    int r;
    if (b->kind == FS_K_ITEM && b->item == a->item)
        return 0;
    if (b->kind == FS_K_NONE && b->fold == a->fold && fs_is_fuse_hidden(b->leaf)) {
        if ((r = fs_check_writable(st, a->proj, from)))
            return r;
        return fs_unlink_hide(st, a->item, a->fold, b->leaf, from);
    }
    if (b->kind != FS_K_NONE && b->kind != FS_K_SCRATCH)
        goto eperm;
    if (b->fold != a->fold || b->item)
        goto eperm;
    if (b->kind == FS_K_NONE && fs_ends_with(b->leaf, a->proj->suffix) && b->leaf[0] != '.')
        goto eperm;
    /* a new scratch file: refused where files cannot be created */
    if ((r = fs_check_writable(st, a->proj, to)))
        return r;
    return item_to_scratch(st, a->item, b->fold, b->leaf);
eperm:
    fs_log(st, LOG_ERR, "rename %s -> %s: annotation files cannot be renamed (EPERM)", from,
           to);
    return -EPERM;
}

static int rename_scratch(struct fs_state *st, struct fs_loc *a, struct fs_loc *b,
                          const char *from, const char *to)
{
    struct fs_item *it;
    int r;
    switch (b->kind) {
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
    case FS_K_CLASSES_DIR:
        return -EISDIR;
    case FS_K_FRAMES:
        return -EACCES;
    case FS_K_CLASSES_FILE:
        return fs_refuse(st, "rename", to, EROFS, "classes.json is written in place");
    case FS_K_GHOST:
        return -EPERM;
    case FS_K_ITEM:
        return scratch_to_item(st, a->scr, b->item, from, to, 0);
    case FS_K_SCRATCH:
        if (b->scr == a->scr)
            return 0;
        return fs_scratch_move(st, a->scr, b->fold, b->leaf);
    case FS_K_NONE:
        break;
    }
    r = fs_check_new_name(st, b, to, &it);
    if (r)
        return r;
    if (it) {
        int hidden = fs_doc_hidden(st, it);
        r = scratch_to_item(st, a->scr, it, from, to, hidden);
        fs_item_put(st, it);
        return r;
    }
    return fs_scratch_move(st, a->scr, b->fold, b->leaf);
}

int fs_rename(struct fs_state *st, const char *from, const char *to, unsigned int flags)
{
    struct fs_loc a, b;
    int r;

    if (flags & RENAME_EXCHANGE)
        return fs_refuse(st, "rename", from, EINVAL, "RENAME_EXCHANGE is not supported");
    r = fs_resolve(st, from, &a);
    if (r)
        return r;
    r = fs_resolve(st, to, &b);
    if (r) {
        fs_loc_put(st, &a);
        return r;
    }
    if ((flags & RENAME_NOREPLACE) && b.kind != FS_K_NONE) {
        r = fs_refuse(st, "rename", to, EEXIST, "RENAME_NOREPLACE onto an existing name");
        goto out;
    }
    switch (a.kind) {
    case FS_K_NONE:
        r = -ENOENT;
        break;
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FRAMES:
    case FS_K_GHOST:
    case FS_K_CLASSES_DIR:
    case FS_K_CLASSES_FILE:
        r = fs_refuse(st, "rename", from, EPERM,
                      "projects, per-frame views and classes cannot be renamed");
        break;
    case FS_K_FOLDER:
        r = fs_rename_folder(st, &a, &b, from, to);
        break;
    case FS_K_ITEM:
        r = rename_item(st, &a, &b, from, to);
        break;
    case FS_K_SCRATCH:
        r = rename_scratch(st, &a, &b, from, to);
        break;
    }
out:
    fs_loc_put(st, &a);
    fs_loc_put(st, &b);
    return r;
}
