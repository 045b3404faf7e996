/** @file
 * Extended attributes (filesystem.md §4).
 *  - user.superannotate.status: get/set the item's status by workflow name;
 *    on a folder or project directory, set every item directly in it.
 *  - read-only user.superannotate.id / name / created_at / updated_at
 *    (setting the current value succeeds, another EPERM).
 *  - user.safs.stats: the mount's counters as JSON, never listed.
 *  - security.* and system.*: answered here, never with a request.
 *  - scratch files keep any user.* locally.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "fs_i.h"

#define X_STATUS "user.superannotate.status"
#define X_ID "user.superannotate.id"
#define X_NAME "user.superannotate.name"
#define X_CREATED "user.superannotate.created_at"
#define X_UPDATED "user.superannotate.updated_at"
#define X_STATS "user.safs.stats"

static const char item_list[] = X_STATUS "\0" X_ID "\0" X_NAME "\0" X_CREATED "\0" X_UPDATED;

static int local_ns(const char *name)
{
    return !strncmp(name, "security.", 9) || !strncmp(name, "system.", 7) ||
           !strncmp(name, "trusted.", 8);
}

static int reply(const char *v, size_t n, char *out, size_t size)
{
    if (!size)
        return (int)n;
    if (size < n)
        return -ERANGE;
    memcpy(out, v, n);
    return (int)n;
}

int fs_status_value(struct fs_state *st, struct fs_project *p, const char *name)
{
    struct sa_workflow w;
    enum sa_err e = sa_get_workflow(st->c, p->p.id, p->p.workflow_id, &w);
    int v;
    if (e) {
        sa_workflow_clear(&w);
        return fs_fail(st, "get workflow", p->p.name, e);
    }
    v = sa_workflow_status_value(&w, name);
    sa_workflow_clear(&w);
    if (v < 0) {
        fs_log(st, LOG_ERR, "status \"%s\" is not in the workflow of project %s", name,
               p->p.name);
        return -EINVAL;
    }
    return v;
}

static int status_name(struct fs_state *st, struct fs_project *p, int value, char *buf,
                       size_t n)
{
    struct sa_workflow w;
    enum sa_err e = sa_get_workflow(st->c, p->p.id, p->p.workflow_id, &w);
    const char *name;
    if (e) {
        sa_workflow_clear(&w);
        return fs_fail(st, "get workflow", p->p.name, e);
    }
    name = sa_workflow_status_name(&w, value);
    if (name)
        snprintf(buf, n, "%s", name);
    else
        snprintf(buf, n, "%d", value);
    sa_workflow_clear(&w);
    return 0;
}

int fs_set_status_items(struct fs_state *st, struct fs_folder *f, struct fs_item **items,
                        size_t n, const char *status, const char *path)
{
    int v = fs_status_value(st, f->proj, status);
    const char **names;
    enum sa_err e;

    if (v < 0)
        return v;
    if (!n)
        return 0;
    names = calloc(n, sizeof *names);
    if (!names)
        return -ENOMEM;
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < n; i++)
        names[i] = strdup(items[i]->name);
    pthread_mutex_unlock(&st->mu);
    e = sa_set_annotation_statuses(st->c, f->proj->p.id, f->id, v, names, n);
    for (size_t i = 0; i < n; i++)
        free((char *)names[i]);
    free(names);
    if (e)
        return fs_fail(st, "set status", path, e);
    fs_log(st, LOG_INFO, "%s: status set to %s on %zu item(s)", path, status, n);
    return 0;
}

static int stats_json(struct fs_state *st, char **out, size_t *len)
{
    struct sa_stats s;
    char buf[2048];
    size_t o = 0;
    double now = fs_now();

    pthread_mutex_lock(&st->mu);
    if (st->stats_snap && now - st->stats_at < 1.0) {
        *out = malloc(st->stats_len + 1);
        if (*out) {
            memcpy(*out, st->stats_snap, st->stats_len + 1);
            *len = st->stats_len;
        }
        pthread_mutex_unlock(&st->mu);
        return *out ? 0 : -ENOMEM;
    }
    pthread_mutex_unlock(&st->mu);
    sa_client_stats(st->c, &s);
    o += snprintf(buf + o, sizeof buf - o, "{\"requests\":{");
    for (int k = 0; k < SA_REQ__COUNT; k++)
        o += snprintf(buf + o, sizeof buf - o, "%s\"%s\":%llu", k ? "," : "",
                      sa_req_kind_name((enum sa_req_kind)k),
                      (unsigned long long)s.requests[k]);
    pthread_mutex_lock(&st->mu);
    o += snprintf(buf + o, sizeof buf - o,
                  "},\"retries\":%llu,\"bytes_down\":%llu,\"bytes_up\":%llu,"
                  "\"cache_hits\":%llu,\"cache_misses\":%llu,\"uploads\":%llu,"
                  "\"uploads_skipped_unchanged\":%llu,\"uploads_pending\":0,"
                  "\"conflicts\":%llu}",
                  (unsigned long long)s.retries, (unsigned long long)s.bytes_down,
                  (unsigned long long)s.bytes_up, (unsigned long long)st->own.cache_hits,
                  (unsigned long long)st->own.cache_misses,
                  (unsigned long long)st->own.uploads,
                  (unsigned long long)st->own.uploads_skipped,
                  (unsigned long long)st->own.conflicts);
    free(st->stats_snap);
    st->stats_snap = strdup(buf);
    st->stats_len = o;
    st->stats_at = now;
    pthread_mutex_unlock(&st->mu);
    *out = strdup(buf);
    *len = o;
    return *out ? 0 : -ENOMEM;
}

static int item_attr(struct fs_state *st, struct fs_item *it, const char *name, char *buf,
                     size_t n)
{
    int r = 0;
    if (!strcmp(name, X_STATUS)) {
        int v;
        pthread_mutex_lock(&st->mu);
        v = it->status;
        pthread_mutex_unlock(&st->mu);
        return status_name(st, it->folder->proj, v, buf, n);
    }
    pthread_mutex_lock(&st->mu);
    if (!strcmp(name, X_ID))
        snprintf(buf, n, "%lld", it->id);
    else if (!strcmp(name, X_NAME))
        snprintf(buf, n, "%s", it->name);
    else if (!strcmp(name, X_CREATED))
        snprintf(buf, n, "%s", it->created_at ? it->created_at : "");
    else if (!strcmp(name, X_UPDATED))
        snprintf(buf, n, "%s", it->updated_at ? it->updated_at : "");
    else
        r = -ENODATA;
    pthread_mutex_unlock(&st->mu);
    return r;
}

static int dir_attr(struct fs_state *st, const struct fs_loc *l, const char *name, char *buf,
                    size_t n)
{
    int r = 0;
    pthread_mutex_lock(&st->mu);
    if (l->kind == FS_K_PROJECT && !strcmp(name, X_ID))
        snprintf(buf, n, "%lld", l->proj->p.id);
    else if (l->kind == FS_K_PROJECT && !strcmp(name, X_NAME))
        snprintf(buf, n, "%s", l->proj->p.name);
    else if (l->kind == FS_K_FOLDER && !strcmp(name, X_ID))
        snprintf(buf, n, "%lld", l->fold->id);
    else if (l->kind == FS_K_FOLDER && !strcmp(name, X_NAME))
        snprintf(buf, n, "%s", l->fold->name);
    else
        r = -ENODATA;
    pthread_mutex_unlock(&st->mu);
    return r;
}

int fs_op_getxattr(const char *path, const char *name, char *value, size_t size)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    char buf[1024];
    int r;

    if (local_ns(name))
        return -ENODATA;
    if (strncmp(name, "user.", 5))
        return -ENODATA;
    r = fs_resolve(st, path, &l);
    if (r)
        return r;
    switch (l.kind) {
    case FS_K_NONE:
        return -ENOENT;
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
        if (!strcmp(name, X_STATS)) {
            char *s;
            size_t n;
            r = stats_json(st, &s, &n);
            if (r)
                return r;
            r = reply(s, n, value, size);
            free(s);
            return r;
        }
        r = dir_attr(st, &l, name, buf, sizeof buf);
        return r ? r : reply(buf, strlen(buf), value, size);
    case FS_K_ITEM:
        if (!strcmp(name, X_NAME)) {
            /* a platform name may be longer than buf: reply with all of it */
            char *s;
            pthread_mutex_lock(&st->mu);
            s = strdup(l.item->name ? l.item->name : "");
            pthread_mutex_unlock(&st->mu);
            if (!s)
                return -ENOMEM;
            r = reply(s, strlen(s), value, size);
            free(s);
            return r;
        }
        r = item_attr(st, l.item, name, buf, sizeof buf);
        return r ? r : reply(buf, strlen(buf), value, size);
    case FS_K_FRAMES:
        return -ENODATA;
    case FS_K_SCRATCH: {
        const struct fs_xattr *x;
        pthread_mutex_lock(&l.scr->mu);
        x = fs_xattr_find(l.scr->xattrs, name);
        r = x ? reply(x->value, x->len, value, size) : -ENODATA;
        pthread_mutex_unlock(&l.scr->mu);
        return r;
    }
    }
    return -ENODATA;
}

/* Status on a folder/project directory: every item directly in it. */
static int dir_status(struct fs_state *st, struct fs_folder *f, const char *status,
                      const char *path)
{
    struct fs_item **items;
    size_t n;
    int r = fs_status_value(st, f->proj, status);
    if (r < 0)
        return r;
    r = fs_folder_refresh(st, f, FS_REFRESH_FORCE);
    if (r)
        return r;
    pthread_mutex_lock(&st->mu);
    n = f->n_items;
    items = calloc(n + 1, sizeof *items);
    if (items)
        memcpy(items, f->items, n * sizeof *items);
    pthread_mutex_unlock(&st->mu);
    if (!items)
        return -ENOMEM;
    r = fs_set_status_items(st, f, items, n, status, path);
    free(items);
    fs_folder_invalidate(st, f);
    return r;
}

int fs_op_setxattr(const char *path, const char *name, const char *value, size_t size,
                   int flags)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    char val[1024], cur[1024];
    size_t raw_size = size; /* a scratch file's user.* value is kept as given */
    int r;

    if (local_ns(name) || strncmp(name, "user.", 5) || !strncmp(name, "user.safs.", 10))
        return -ENOTSUP;
    r = fs_resolve(st, path, &l);
    if (r)
        return r;
    if (size >= sizeof val)
        size = sizeof val - 1;
    memcpy(val, value, size);
    val[size] = 0;
    /* setfattr -v "Completed\n"-style trailing newlines are not part of a name */
    while (size && (val[size - 1] == '\n' || val[size - 1] == '\r'))
        val[--size] = 0;

    switch (l.kind) {
    case FS_K_NONE:
        return -ENOENT;
    case FS_K_TEAM:
        return strcmp(name, X_STATUS) ? -ENOTSUP : -EPERM;
    case FS_K_PROJECT:
    case FS_K_FOLDER:
        if (!strcmp(name, X_STATUS)) {
            if (st->cfg->read_only)
                return -EROFS;
            if (fs_project_read_only(st, l.proj, path))
                return -EROFS;
            return dir_status(st, l.fold, val, path);
        }
        r = dir_attr(st, &l, name, cur, sizeof cur);
        if (r == -ENODATA)
            return -ENOTSUP;
        return strcmp(cur, val) ? -EPERM : 0;
    case FS_K_FRAMES:
        return -EACCES;
    case FS_K_ITEM:
        if (!strcmp(name, X_STATUS)) {
            int busy;
            if (st->cfg->read_only)
                return -EROFS;
            if (fs_project_read_only(st, l.proj, path))
                return -EROFS;
            r = fs_status_value(st, l.proj, val);
            if (r < 0)
                return r;
            pthread_mutex_lock(&st->mu);
            busy = l.item->dirty_handles > 0;
            if (busy) {
                free(l.item->pending_status);
                l.item->pending_status = strdup(val);
            }
            pthread_mutex_unlock(&st->mu);
            if (busy) {
                fs_log(st, LOG_INFO, "%s: status %s will be set after the upload", path, val);
                return 0;
            }
            r = fs_set_status_items(st, l.fold, &l.item, 1, val, path);
            if (!r)
                fs_item_refetch(st, l.item);
            return r;
        }
        r = item_attr(st, l.item, name, cur, sizeof cur);
        if (r == -ENODATA) {
            fs_log(st, LOG_INFO, "setxattr %s %s: not supported on annotation files", path,
                   name);
            return -ENOTSUP;
        }
        if (r)
            return r;
        if (strcmp(cur, val)) {
            fs_log(st, LOG_ERR, "setxattr %s %s: read-only attribute (EPERM)", path, name);
            return -EPERM;
        }
        return 0;
    case FS_K_SCRATCH:
        if (!strcmp(name, X_STATUS)) {
            r = fs_status_value(st, l.proj, val);
            if (r < 0)
                return r;
        }
        pthread_mutex_lock(&l.scr->mu);
        if ((flags & XATTR_CREATE) && fs_xattr_find(l.scr->xattrs, name))
            r = -EEXIST;
        else if ((flags & XATTR_REPLACE) && !fs_xattr_find(l.scr->xattrs, name))
            r = -ENODATA;
        else
            r = fs_xattr_set_local(&l.scr->xattrs, name,
                                   !strcmp(name, X_STATUS) ? val : value,
                                   !strcmp(name, X_STATUS) ? strlen(val) : raw_size);
        pthread_mutex_unlock(&l.scr->mu);
        return r;
    }
    return -ENOTSUP;
}

int fs_op_listxattr(const char *path, char *list, size_t size)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    int r = fs_resolve(st, path, &l);
    if (r)
        return r;
    switch (l.kind) {
    case FS_K_NONE:
        return -ENOENT;
    case FS_K_ITEM:
        return reply(item_list, sizeof item_list, list, size);
    case FS_K_SCRATCH: {
        size_t n = 0;
        char *buf;
        pthread_mutex_lock(&l.scr->mu);
        for (const struct fs_xattr *x = l.scr->xattrs; x; x = x->next)
            n += strlen(x->name) + 1;
        buf = malloc(n + 1);
        if (buf) {
            size_t o = 0;
            for (const struct fs_xattr *x = l.scr->xattrs; x; x = x->next) {
                size_t k = strlen(x->name) + 1;
                memcpy(buf + o, x->name, k);
                o += k;
            }
        }
        pthread_mutex_unlock(&l.scr->mu);
        if (!buf)
            return -ENOMEM;
        r = reply(buf, n, list, size);
        free(buf);
        return r;
    }
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
    case FS_K_FRAMES:
        return 0;
    }
    return 0;
}

int fs_op_removexattr(const char *path, const char *name)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    int r;

    if (local_ns(name) || strncmp(name, "user.", 5))
        return -ENOTSUP;
    r = fs_resolve(st, path, &l);
    if (r)
        return r;
    if (l.kind == FS_K_NONE)
        return -ENOENT;
    if (l.kind == FS_K_SCRATCH) {
        pthread_mutex_lock(&l.scr->mu);
        r = fs_xattr_del_local(&l.scr->xattrs, name);
        pthread_mutex_unlock(&l.scr->mu);
        return r;
    }
    if (!strncmp(name, "user.superannotate.", 19))
        return -EPERM;
    return -ENODATA;
}
