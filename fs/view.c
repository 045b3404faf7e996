/** @file
 * What the kernel is shown: attributes (getattr) and directory listings
 * (readdir). Sizes come from the document store only (fs_doc_size): a stat
 * gives the length the next open serves, fstat the length of that
 * descriptor's version, and a stat during unsaved writes the newest
 * writer's length. When open descriptors of one file serve versions of
 * different lengths, every attribute reply is made uncacheable (the
 * kernel's attributes are dropped before replying), so no descriptor's
 * fstat is answered from another's.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_i.h"

void fs_dir_stat(struct fs_state *st, const char *updated_at, struct stat *sb)
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

void fs_item_stat_base(struct fs_state *st, struct fs_item *it, struct stat *sb)
{
    const struct fs_config *cfg = st->cfg;
    memset(sb, 0, sizeof *sb);
    sb->st_mode = S_IFREG | (0644 & ~cfg->umask);
    if (it->folder->proj->p.type == SA_PT_MULTIMODAL || cfg->read_only)
        sb->st_mode &= ~0222;
    sb->st_nlink = 1;
    sb->st_uid = cfg->uid_set ? cfg->uid : getuid();
    sb->st_gid = cfg->gid_set ? cfg->gid : getgid();
    sb->st_blksize = 4096;
    fs_doc_mtime(st, it, &sb->st_mtim);
    sb->st_ctim = sb->st_atim = sb->st_mtim;
}

static void set_size(struct stat *sb, size_t n)
{
    sb->st_size = (off_t)n;
    sb->st_blocks = (sb->st_size + 511) / 512;
}

static void readonly_file(struct fs_state *st, struct stat *sb)
{
    sb->st_mode = S_IFREG | (0444 & ~st->cfg->umask);
}

static int classes_stat(struct fs_state *st, struct fs_project *p, struct stat *sb,
                        size_t *known)
{
    char *out;
    size_t len;
    int r;
    fs_dir_stat(st, p->p.updated_at, sb);
    sb->st_mode = S_IFREG | (0644 & ~st->cfg->umask);
    sb->st_nlink = 1;
    if (known) {
        set_size(sb, *known);
        return 0;
    }
    r = fs_classes_get(st, p, &out, &len);
    if (r)
        return r;
    free(out);
    set_size(sb, len);
    return 0;
}

/* The size of an annotation file for a stat by path. */
static int item_size(struct fs_state *st, struct fs_item *it, size_t *size)
{
    if (fs_doc_dirty_len(st, it, size))
        return 0; /* unsaved writes: what the writer sees */
    return fs_doc_size(st, it, size);
}

int fs_getattr(struct fs_state *st, const char *path, struct stat *sb, struct fs_handle *h)
{
    struct fs_loc l;
    size_t size;
    int r = 0;

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
            fs_item_stat_base(st, h->item, sb);
            readonly_file(st, sb);
            set_size(sb, fs_h_len(h));
            return 0;
        case FS_H_CLASSES:
            size = fs_h_len(h);
            return classes_stat(st, h->proj, sb, &size);
        case FS_H_ITEM:
            /* fstat of an open file: the bytes this descriptor serves */
            fs_item_stat_base(st, h->item, sb);
            size = fs_h_len(h);
            set_size(sb, size);
            if (fs_doc_kernel_given(st, h->item, size) && h->path)
                fs_kernel_inval_path(st, h->path);
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
        r = -ENOENT;
        break;
    case FS_K_TEAM:
        fs_dir_stat(st, NULL, sb);
        break;
    case FS_K_PROJECT:
        pthread_mutex_lock(&st->mu);
        fs_dir_stat(st, l.proj->p.updated_at, sb);
        pthread_mutex_unlock(&st->mu);
        break;
    case FS_K_FOLDER:
        /* a concurrent re-list may replace updated_at: read it under st->mu */
        pthread_mutex_lock(&st->mu);
        fs_dir_stat(st, l.fold->updated_at, sb);
        pthread_mutex_unlock(&st->mu);
        break;
    case FS_K_CLASSES_DIR:
        pthread_mutex_lock(&st->mu);
        fs_dir_stat(st, l.proj->p.updated_at, sb);
        pthread_mutex_unlock(&st->mu);
        break;
    case FS_K_CLASSES_FILE:
        r = classes_stat(st, l.proj, sb, NULL);
        break;
    case FS_K_ITEM:
        r = item_size(st, l.item, &size);
        if (r)
            break;
        fs_item_stat_base(st, l.item, sb);
        set_size(sb, size);
        if (fs_doc_kernel_given(st, l.item, size))
            fs_kernel_inval_path(st, path);
        break;
    case FS_K_FRAMES:
        r = fs_frames_size(st, l.item, &size);
        if (r)
            break;
        fs_item_stat_base(st, l.item, sb);
        readonly_file(st, sb);
        set_size(sb, size);
        break;
    case FS_K_SCRATCH:
        fs_scratch_stat(st, l.scr, sb);
        break;
    case FS_K_GHOST:
        fs_item_stat_base(st, l.item, sb);
        sb->st_mtim = l.ghost->mtime;
        sb->st_nlink = 0;
        set_size(sb, l.ghost->size);
        break;
    }
    fs_loc_put(st, &l);
    return r;
}

/* -------------------------------------------------------------- readdir */

static int fill_dirs(void *buf, fuse_fill_dir_t filler, struct fs_state *st, char **names,
                     char **upd, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (!names[i])
            continue;
        fs_dir_stat(st, upd[i], &sb);
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
    for (size_t i = 0; items && i < n; i++) {
        items[i] = f->items[i];
        fs_item_get(items[i]);
    }
    for (size_t b = 0; scr && b < f->scratch.nb; b++)
        for (struct fs_map_ent *e = f->scratch.b[b]; e; e = e->next)
            if (!fs_is_fuse_hidden(e->key))
                scr[ns++] = strdup(e->key);
    pthread_mutex_unlock(&st->mu);
    if (!items || !scr) {
        for (size_t i = 0; items && i < n; i++)
            fs_item_put(st, items[i]);
        free(items);
        free(scr);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        ssize_t known;
        size_t dl;
        char *fname;
        if (r || fs_doc_hidden(st, items[i]))
            continue;
        fname = fs_item_fname_copy(st, items[i]);
        if (!fname)
            continue;
        /* attributes only where the size is known: never a download here */
        known = fs_doc_dirty_len(st, items[i], &dl) ? (ssize_t)dl
                                                    : fs_doc_size_known(st, items[i]);
        if (known >= 0 && !fs_doc_kernel_given(st, items[i], (size_t)known)) {
            fs_item_stat_base(st, items[i], &sb);
            set_size(&sb, (size_t)known);
            r = filler(buf, fname, &sb, 0, FUSE_FILL_DIR_PLUS);
        } else {
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
    }
    for (size_t i = 0; i < ns; i++) {
        struct stat ms = {.st_mode = S_IFREG};
        if (!r)
            r = filler(buf, scr[i], &ms, 0, 0);
        free(scr[i]);
    }
    for (size_t i = 0; i < n; i++)
        fs_item_put(st, items[i]);
    free(items);
    free(scr);
    return 0;
}

int fs_readdir(struct fs_state *st, const char *path, void *buf, fuse_fill_dir_t filler)
{
    struct fs_loc l;
    struct stat dsb;
    char **names = NULL, **upd = NULL;
    size_t n = 0;
    int r = fs_resolve(st, path, &l);

    if (r)
        return r;
    switch (l.kind) {
    case FS_K_NONE:
        r = -ENOENT;
        goto out;
    case FS_K_ITEM:
    case FS_K_FRAMES:
    case FS_K_SCRATCH:
    case FS_K_GHOST:
    case FS_K_CLASSES_FILE:
        r = -ENOTDIR;
        goto out;
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
    case FS_K_CLASSES_DIR:
        break;
    }
    fs_dir_stat(st, NULL, &dsb);
    filler(buf, ".", &dsb, 0, 0);
    filler(buf, "..", &dsb, 0, 0);
    if (l.kind == FS_K_CLASSES_DIR) {
        struct stat ms = {.st_mode = S_IFREG};
        filler(buf, "classes.json", &ms, 0, 0);
    } else if (l.kind == FS_K_TEAM) {
        r = fs_projects_refresh(st, 0);
        if (r)
            goto out;
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
            goto out;
        pthread_mutex_lock(&st->mu);
        names = calloc(l.proj->n_folders + 2, sizeof *names);
        upd = calloc(l.proj->n_folders + 2, sizeof *upd);
        for (size_t i = 0; names && upd && i < l.proj->n_folders; i++) {
            names[n] = strdup(l.proj->folders[i]->dname);
            upd[n++] = l.proj->folders[i]->updated_at ? strdup(l.proj->folders[i]->updated_at)
                                                      : NULL;
        }
        pthread_mutex_unlock(&st->mu);
        if (names && upd && fs_classes_shown(st, l.proj)) {
            names[n] = strdup("classes");
            upd[n++] = NULL;
        }
        if (fill_dirs(buf, filler, st, names, upd, n) == 0)
            r = fill_folder(buf, filler, st, l.proj->root);
    } else {
        r = fill_folder(buf, filler, st, l.fold);
    }
out:
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
        free(upd[i]);
    }
    free(names);
    free(upd);
    fs_loc_put(st, &l);
    return r;
}
