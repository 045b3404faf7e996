/** @file
 * Extended attributes (filesystem.md §4).
 *  - user.superannotate.status: get/set the item's status by workflow name
 *    (save.c sets it); on a folder or project directory, set every item
 *    directly in it. An annotation file lists only this one, so `cp -a`
 *    and `rsync -aX` copy statuses and nothing else.
 *  - read-only user.superannotate.id / name / created_at / updated_at, read
 *    by name; setting or removing them, and removing the status, succeed and
 *    change nothing (debug log), so xattr round trips exit 0.
 *  - user.safs.stats: the mount's counters as JSON, never listed.
 *  - security.*, system.*, trusted.*: answered here, never with a request.
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
#define X_SYNC "user.safs.sync"

static const char item_list[] = X_STATUS;

static int local_ns(const char *name)
{
    return !strncmp(name, "security.", 9) || !strncmp(name, "system.", 7) ||
           !strncmp(name, "trusted.", 8);
}

static int read_only_attr(const char *name)
{
    return !strcmp(name, X_ID) || !strcmp(name, X_NAME) || !strcmp(name, X_CREATED) ||
           !strcmp(name, X_UPDATED);
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

static int stats_json(struct fs_state *st, char **out, size_t *len)
{
    struct sa_stats s;
    char buf[2048];
    size_t o = 0, bytes, budget;
    double now = fs_now();
    uint64_t wpend, wfail, wconf;
    struct fs_dc_stats dcs;

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
    fs_store_stats(st, &bytes, &budget);
    fs_wb_counts(st, &wpend, &wfail, &wconf);
    fs_dc_stats(st, &dcs);
    o += snprintf(buf + o, sizeof buf - o, "{\"requests\":{");
    for (int k = 0; k < SA_REQ__COUNT; k++)
        o += snprintf(buf + o, sizeof buf - o, "%s\"%s\":%llu", k ? "," : "",
                      sa_req_kind_name((enum sa_req_kind)k),
                      (unsigned long long)s.requests[k]);
    pthread_mutex_lock(&st->mu);
    o += snprintf(buf + o, sizeof buf - o,
                  "},\"retries\":%llu,\"bytes_down\":%llu,\"bytes_up\":%llu,"
                  "\"cache_hits\":%llu,\"cache_misses\":%llu,\"cache_bytes\":%zu,"
                  "\"cache_budget\":%zu,\"uploads\":%llu,"
                  "\"uploads_skipped_unchanged\":%llu,\"uploads_pending\":%llu,"
                  "\"uploads_failed\":%llu,\"uploads_conflicted\":%llu,"
                  "\"conflicts\":%llu,\"deletes\":%llu,",
                  (unsigned long long)s.retries, (unsigned long long)s.bytes_down,
                  (unsigned long long)s.bytes_up, (unsigned long long)st->own.cache_hits,
                  (unsigned long long)st->own.cache_misses, bytes, budget,
                  (unsigned long long)st->own.uploads,
                  (unsigned long long)st->own.uploads_skipped,
                  (unsigned long long)wpend, (unsigned long long)wfail,
                  (unsigned long long)wconf,
                  (unsigned long long)st->own.conflicts,
                  (unsigned long long)st->own.deletes);
    o += snprintf(buf + o, sizeof buf - o,
                  "\"disk_cache\":{\"enabled\":%s,\"hits\":%llu,\"misses\":%llu,"
                  "\"stored\":%llu,\"evicted\":%llu,\"corrupt\":%llu,\"bytes\":%llu,"
                  "\"max\":%llu,\"queued\":%llu,\"dropped\":%llu}}",
                  dcs.enabled ? "true" : "false", (unsigned long long)dcs.hits,
                  (unsigned long long)dcs.misses, (unsigned long long)dcs.stored,
                  (unsigned long long)dcs.evicted, (unsigned long long)dcs.corrupt,
                  (unsigned long long)dcs.bytes, (unsigned long long)dcs.max,
                  (unsigned long long)dcs.queued, (unsigned long long)dcs.dropped);
    free(st->stats_snap);
    st->stats_snap = strdup(buf);
    st->stats_len = o;
    st->stats_at = now;
    pthread_mutex_unlock(&st->mu);
    *out = strdup(buf);
    *len = o;
    return *out ? 0 : -ENOMEM;
}

/* An annotation file's attribute (new string in *out), or -ENODATA. */
static int item_attr(struct fs_state *st, struct fs_item *it, const char *name, char **out)
{
    char buf[128];
    *out = NULL;
    if (!strcmp(name, X_SYNC)) {
        /* -o writeback: clean, pending or error: <reason> (always clean without it) */
        char sb[256];
        fs_wb_sync_state(st, it, sb, sizeof sb);
        *out = strdup(sb);
        return *out ? 0 : -ENOMEM;
    }
    if (!strcmp(name, X_STATUS)) {
        int v, r;
        if (fs_doc_shown_status(st, it, &v))
            return -ENODATA;
        r = fs_status_name(st, it->folder->proj, v, buf, sizeof buf);
        if (r)
            return r;
        *out = strdup(buf);
        return *out ? 0 : -ENOMEM;
    }
    pthread_mutex_lock(&st->mu);
    if (!strcmp(name, X_ID)) {
        snprintf(buf, sizeof buf, "%lld", it->id);
        *out = strdup(buf);
    } else if (!strcmp(name, X_NAME)) {
        *out = strdup(it->name ? it->name : "");
    } else if (!strcmp(name, X_CREATED)) {
        *out = strdup(it->created_at ? it->created_at : "");
    } else if (!strcmp(name, X_UPDATED)) {
        *out = strdup(it->updated_at ? it->updated_at : "");
    } else {
        pthread_mutex_unlock(&st->mu);
        return -ENODATA;
    }
    pthread_mutex_unlock(&st->mu);
    return *out ? 0 : -ENOMEM;
}

static int dir_attr(struct fs_state *st, const struct fs_loc *l, const char *name, char **out)
{
    char buf[32];
    *out = NULL;
    pthread_mutex_lock(&st->mu);
    if (l->kind == FS_K_PROJECT && !strcmp(name, X_ID)) {
        snprintf(buf, sizeof buf, "%lld", l->proj->p.id);
        *out = strdup(buf);
    } else if (l->kind == FS_K_PROJECT && !strcmp(name, X_NAME)) {
        *out = strdup(l->proj->p.name);
    } else if (l->kind == FS_K_FOLDER && !strcmp(name, X_ID)) {
        snprintf(buf, sizeof buf, "%lld", l->fold->id);
        *out = strdup(buf);
    } else if (l->kind == FS_K_FOLDER && !strcmp(name, X_NAME)) {
        *out = strdup(l->fold->name);
    } else {
        pthread_mutex_unlock(&st->mu);
        return -ENODATA;
    }
    pthread_mutex_unlock(&st->mu);
    return *out ? 0 : -ENOMEM;
}

static int reply_str(int r, char *s, char *value, size_t size)
{
    if (!r)
        r = reply(s, strlen(s), value, size);
    free(s);
    return r;
}

int fs_op_getxattr(const char *path, const char *name, char *value, size_t size)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    char *s = NULL;
    int r;

    if (local_ns(name) || strncmp(name, "user.", 5))
        return -ENODATA;
    r = fs_resolve(st, path, &l);
    if (r)
        return r;
    switch (l.kind) {
    case FS_K_NONE:
        r = -ENOENT;
        break;
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
        if (!strcmp(name, X_STATS)) {
            size_t n;
            r = stats_json(st, &s, &n);
            if (!r)
                r = reply(s, n, value, size);
            free(s);
            break;
        }
        r = dir_attr(st, &l, name, &s);
        r = reply_str(r, s, value, size);
        break;
    case FS_K_ITEM:
        r = item_attr(st, l.item, name, &s);
        r = reply_str(r, s, value, size);
        break;
    case FS_K_FRAMES:
    case FS_K_GHOST:
    case FS_K_CLASSES_DIR:
    case FS_K_CLASSES_FILE:
        r = -ENODATA;
        break;
    case FS_K_SCRATCH: {
        const struct fs_xattr *x;
        pthread_mutex_lock(&l.scr->mu);
        x = fs_xattr_find(l.scr->xattrs, name);
        r = x ? reply(x->value, x->len, value, size) : -ENODATA;
        pthread_mutex_unlock(&l.scr->mu);
        break;
    }
    }
    fs_loc_put(st, &l);
    return r;
}

static int set_item(struct fs_state *st, struct fs_loc *l, const char *path, const char *name,
                    const char *val)
{
    if (!strcmp(name, X_STATUS)) {
        int r = fs_check_writable(st, l->proj, path);
        return r ? r : fs_status_set_item(st, l->item, val, path);
    }
    if (read_only_attr(name)) {
        /* server-owned: rsync -aX / cp -a round trips set them back */
        fs_log(st, LOG_DEBUG, "setxattr %s %s: read-only attribute, nothing changed", path,
               name);
        return 0;
    }
    fs_log(st, LOG_INFO, "setxattr %s %s: not supported on annotation files", path, name);
    return -ENOTSUP;
}

int fs_op_setxattr(const char *path, const char *name, const char *value, size_t size,
                   int flags)
{
    struct fs_state *st = fs_st();
    struct fs_loc l;
    char val[1024];
    size_t vlen = size;
    int r;

    if (local_ns(name) || strncmp(name, "user.", 5) || !strncmp(name, "user.safs.", 10))
        return -ENOTSUP;
    if (!strcmp(name, X_STATUS)) {
        /* a name, not bytes: setfattr -v "Completed\n"-style trailing
         * newlines are dropped; a NUL inside is refused */
        if (size >= sizeof val || memchr(value, 0, size)) {
            fs_log(st, LOG_ERR, "setxattr %s %s: refused (EINVAL): %s", path, name,
                   size >= sizeof val ? "a value over 1023 bytes is no status name"
                                      : "the value holds a NUL byte");
            return -EINVAL;
        }
        memcpy(val, value, size);
        val[size] = 0;
        while (vlen && (val[vlen - 1] == '\n' || val[vlen - 1] == '\r'))
            val[--vlen] = 0;
    }
    r = fs_resolve(st, path, &l);
    if (r)
        return r;
    switch (l.kind) {
    case FS_K_NONE:
        r = -ENOENT;
        break;
    case FS_K_TEAM:
        r = strcmp(name, X_STATUS) ? -ENOTSUP : -EPERM;
        break;
    case FS_K_PROJECT:
    case FS_K_FOLDER:
        if (!strcmp(name, X_STATUS)) {
            r = fs_check_writable(st, l.proj, path);
            if (!r)
                r = fs_status_set_dir(st, l.fold, val, path);
            if (!r)
                fs_folder_invalidate(st, l.fold);
        } else {
            char *cur = NULL;
            r = dir_attr(st, &l, name, &cur);
            free(cur);
            r = r == -ENODATA ? -ENOTSUP : 0;
        }
        break;
    case FS_K_FRAMES:
    case FS_K_CLASSES_FILE:
        r = -EACCES;
        break;
    case FS_K_GHOST:
    case FS_K_CLASSES_DIR:
        r = -ENOTSUP;
        break;
    case FS_K_ITEM:
        r = set_item(st, &l, path, name, val);
        break;
    case FS_K_SCRATCH:
        if (!strcmp(name, X_STATUS)) {
            r = fs_status_value(st, l.proj, val);
            if (r < 0)
                break;
        }
        pthread_mutex_lock(&l.scr->mu);
        if ((flags & XATTR_CREATE) && fs_xattr_find(l.scr->xattrs, name))
            r = -EEXIST;
        else if ((flags & XATTR_REPLACE) && !fs_xattr_find(l.scr->xattrs, name))
            r = -ENODATA;
        else
            r = fs_xattr_set_local(&l.scr->xattrs, name, !strcmp(name, X_STATUS) ? val : value,
                                   !strcmp(name, X_STATUS) ? strlen(val) : size);
        pthread_mutex_unlock(&l.scr->mu);
        if (r == -ENOSPC)
            fs_log(st, LOG_ERR, "setxattr %s %s: no space: a scratch file keeps at most %d "
                                "attributes and %u bytes of names and values (ENOSPC)",
                   path, name, FS_XATTR_MAX_N, FS_XATTR_MAX_BYTES);
        break;
    }
    fs_loc_put(st, &l);
    return r;
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
        r = -ENOENT;
        break;
    case FS_K_ITEM:
        r = reply(item_list, sizeof item_list, list, size);
        break;
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
        r = buf ? reply(buf, n, list, size) : -ENOMEM;
        free(buf);
        break;
    }
    case FS_K_TEAM:
    case FS_K_PROJECT:
    case FS_K_FOLDER:
    case FS_K_FRAMES:
    case FS_K_GHOST:
    case FS_K_CLASSES_DIR:
    case FS_K_CLASSES_FILE:
        r = 0;
        break;
    }
    fs_loc_put(st, &l);
    return r;
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
    if (l.kind == FS_K_NONE) {
        r = -ENOENT;
    } else if (l.kind == FS_K_SCRATCH) {
        pthread_mutex_lock(&l.scr->mu);
        r = fs_xattr_del_local(&l.scr->xattrs, name);
        pthread_mutex_unlock(&l.scr->mu);
    } else if (l.kind == FS_K_ITEM && (!strcmp(name, X_STATUS) || read_only_attr(name))) {
        /* an item always has a status, and the rest is the platform's: an
         * rsync -aX from a tree without xattrs removes them; nothing changes */
        fs_log(st, LOG_DEBUG, "removexattr %s %s: nothing changed", path, name);
        r = 0;
    } else {
        r = -ENODATA;
    }
    fs_loc_put(st, &l);
    return r;
}
