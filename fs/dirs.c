/** @file
 * Folders (filesystem.md §4): mkdir creates one, rmdir deletes an empty
 * one, rename within its project renames it, and the platform's rules for
 * folder names (api.md §6.1) are checked here, before any request.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

static int valid_utf8(const unsigned char *s)
{
    while (*s) {
        int n = *s < 0x80 ? 0 : (*s & 0xE0) == 0xC0 ? 1 : (*s & 0xF0) == 0xE0 ? 2
              : (*s & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || (n == 1 && *s < 0xC2))
            return 0;
        s++;
        for (int i = 0; i < n; i++, s++)
            if ((*s & 0xC0) != 0x80)
                return 0;
    }
    return 1;
}

/* The platform name for a shown directory name, or -errno (logged). */
static int folder_name(struct fs_state *st, const char *shown, const char *path, char **out)
{
    char *name;
    size_t chars = 0;

    *out = NULL;
    if (!valid_utf8((const unsigned char *)shown))
        return fs_refuse(st, "mkdir", path, EINVAL, "folder names must be valid UTF-8");
    name = fs_unescape_name(shown);
    if (!name)
        return -ENOMEM;
    {
        /* a name that would show differently (a lone ‛): the program could
         * not find what it created under the name it typed */
        char *back = fs_dir_name(name);
        int same = back && !strcmp(back, shown);
        free(back);
        if (!same) {
            free(name);
            return fs_refuse(st, "mkdir", path, EINVAL,
                             "this name would show differently: a ‛ is written ‛‛ "
                             "(filesystem.md §1)");
        }
    }
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

int fs_mkdir(struct fs_state *st, const char *path)
{
    struct fs_loc l;
    struct sa_folder nf;
    char *name;
    enum sa_err e;
    int r = fs_resolve(st, path, &l);

    if (r)
        return r;
    if (l.kind != FS_K_NONE)
        r = fs_refuse(st, "mkdir", path, EEXIST, "exists");
    else if (l.parent != FS_K_PROJECT)
        r = fs_refuse(st, "mkdir", path, EPERM,
                      l.parent == FS_K_TEAM ? "projects are not created through the mount"
                                            : "folders are one level deep");
    else if (!(r = fs_check_writable(st, l.proj, path)) &&
             !(r = folder_name(st, l.leaf, path, &name))) {
        e = sa_create_folder(st->c, l.proj->p.id, name, &nf);
        free(name);
        sa_folder_clear(&nf);
        if (e) {
            r = fs_fail(st, "mkdir", path, e);
        } else {
            fs_log(st, LOG_INFO, "%s: folder created", path);
            r = fs_project_refresh(st, l.proj, 1);
        }
    }
    fs_loc_put(st, &l);
    return r;
}

int fs_rmdir(struct fs_state *st, const char *path)
{
    struct fs_loc l;
    enum sa_err e;
    size_t n, ns;
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
    case FS_K_CLASSES_DIR:
        r = fs_refuse(st, "rmdir", path, EROFS, "classes/ shows the project's classes");
        goto out;
    case FS_K_TEAM:
    case FS_K_PROJECT:
        r = fs_refuse(st, "rmdir", path, EPERM, "projects are not deleted through the mount");
        goto out;
    case FS_K_FOLDER:
        break;
    }
    if (l.parent != FS_K_PROJECT) {
        r = fs_refuse(st, "rmdir", path, EPERM, "the mount's own root");
        goto out;
    }
    if ((r = fs_check_writable(st, l.proj, path)))
        goto out;
    r = fs_folder_refresh(st, l.fold, FS_REFRESH_FORCE);
    if (r)
        goto out;
    pthread_mutex_lock(&st->mu);
    n = l.fold->n_items;
    ns = 0;
    for (size_t b = 0; b < l.fold->scratch.nb; b++)
        for (struct fs_map_ent *x = l.fold->scratch.b[b]; x; x = x->next)
            ns += !fs_is_fuse_hidden(x->key);
    pthread_mutex_unlock(&st->mu);
    if (n || ns) {
        r = fs_refuse(st, "rmdir", path, ENOTEMPTY, "the folder has items");
        goto out;
    }
    e = sa_delete_folders(st->c, l.proj->p.id, &l.fold->id, 1);
    if (e) {
        r = fs_fail(st, "rmdir", path, e);
        goto out;
    }
    fs_log(st, LOG_INFO, "%s: folder deleted", path);
    r = fs_project_refresh(st, l.proj, 1);
out:
    fs_loc_put(st, &l);
    return r;
}

int fs_rename_folder(struct fs_state *st, struct fs_loc *a, struct fs_loc *b,
                     const char *from, const char *to)
{
    char *name;
    enum sa_err e;
    int r;

    if (a->parent != FS_K_PROJECT || b->parent != FS_K_PROJECT || b->proj != a->proj)
        return fs_refuse(st, "rename", from, EPERM, "a folder is renamed within its project");
    if (b->kind == FS_K_FOLDER && b->fold == a->fold)
        return 0;
    if (b->kind != FS_K_NONE || b->item)
        return fs_refuse(st, "rename", to, b->kind == FS_K_FOLDER ? EEXIST : EPERM, "exists");
    if ((r = fs_check_writable(st, a->proj, from)))
        return r;
    r = folder_name(st, b->leaf, to, &name);
    if (r)
        return r;
    e = sa_rename_folder(st->c, a->proj->p.id, a->fold->id, name);
    free(name);
    if (e)
        return fs_fail(st, "rename folder", from, e);
    fs_log(st, LOG_INFO, "%s: folder renamed to %s", from, to);
    return fs_project_refresh(st, a->proj, 1);
}
