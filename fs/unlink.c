/** @file
 * unlink of annotation files (filesystem.md §2 `unlink`).
 *
 * `rm f` hides the name at once (stat ENOENT, ls omits it) and queues the
 * item for the deleter thread, which sends delete_annotations FS_DELETE_GRACE
 * seconds later (or at unmount), in one request per folder for everything
 * due, after saving each document to the recovery folder. A re-create of
 * the name before that (open O_CREAT, rename of a scratch file onto it)
 * cancels the delete and is a plain save against the pre-delete document
 * (fs_recreate), so tar x, mv across filesystems, install,
 * cp --remove-destination and unzip -o, which unlink and create again, leave
 * the platform as a plain save would and send nothing when nothing changed.
 *
 * Before deleting, the deleter learns the items' versions (one listing by
 * names): an item a colleague changed since the unlink is not deleted (its
 * name shows again, with a log line), and an item whose document holds no
 * annotation (judged on the parsed document) costs no request. After the
 * delete the name stays hidden until the item's version differs from what
 * the delete left (fs_doc_learn). A failed delete is logged and the name
 * shows again.
 *
 * libfuse runs with hard_remove off, so an unlink of a file that is still
 * open arrives as rename(f, .fuse_hiddenXXXX) (fs_unlink_hide): the same
 * unlink, plus a *ghost* name that keeps fstat on the open descriptors
 * working (with hard_remove libfuse answers ESTALE for them). libfuse
 * unlinks the ghost at the last close. It does the same hide before a rename
 * onto an open file; the rename that follows is a re-create, which cancels
 * the delete.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_i.h"
#include "sa/doc.h"

#define FS_DELETE_GRACE 1.0

int fs_unlink_item(struct fs_state *st, struct fs_item *it, const char *path)
{
    struct fs_doc *d = &it->doc;
    uint64_t seq;

    /* -o writeback: a pending save is cancelled, after one in flight */
    fs_wb_cancel(st, it, path);
    pthread_mutex_lock(&it->save_mu);
    seq = fs_next_seq(st);
    pthread_mutex_lock(&st->ds.mu);
    if (d->tomb != FS_TOMB_NONE) {
        pthread_mutex_unlock(&st->ds.mu);
        pthread_mutex_unlock(&it->save_mu);
        return -ENOENT;
    }
    /* handles open now are never uploaded: their file is gone */
    d->deleted_seq = seq;
    d->tomb = FS_TOMB_GRACE;
    d->tomb_due = fs_now() + FS_DELETE_GRACE;
    fs_ver_unref_locked(st, d->tomb_pre);
    /* the version being removed: a re-create is a save against it */
    if (d->cur && d->cur->ms == d->ms && d->cur->status == d->status) {
        d->tomb_pre = d->cur;
        fs_ver_ref_locked(d->tomb_pre);
    } else {
        d->tomb_pre = d->has_key ? fs_ver_detached(d->ms, d->status) : NULL;
    }
    if (!d->tomb_queued) {
        /* a cancelled tomb may still be queued: never twice */
        fs_item_get(it);
        d->tomb_queued = 1;
        d->tomb_next = st->ds.tomb_head;
        st->ds.tomb_head = it;
    }
    pthread_cond_signal(&st->ds.del_cv);
    pthread_mutex_unlock(&st->ds.mu);
    pthread_mutex_unlock(&it->save_mu);
    fs_log(st, LOG_INFO, "%s: removed; its annotations are deleted in %.0f s unless the name "
                         "is created again", path, FS_DELETE_GRACE);
    return 0;
}

int fs_unlink_hide(struct fs_state *st, struct fs_item *it, struct fs_folder *f,
                   const char *ghost, const char *path)
{
    struct fs_ghost *g = calloc(1, sizeof *g);
    struct fs_ghost *old;
    ssize_t size;
    int r;

    if (!g)
        return -ENOMEM;
    size = fs_doc_size_known(st, it);
    g->size = size < 0 ? 0 : (size_t)size;
    fs_doc_mtime(st, it, &g->mtime);
    r = fs_unlink_item(st, it, path);
    if (r) {
        free(g);
        return r;
    }
    pthread_mutex_lock(&st->mu);
    fs_item_get(it);
    g->item = it;
    old = fs_map_del(&f->ghosts, ghost);
    fs_map_put(&f->ghosts, ghost, g);
    pthread_mutex_unlock(&st->mu);
    if (old) {
        fs_item_put(st, old->item);
        free(old);
    }
    return 0;
}

/* libfuse unlinks a ghost at its last close, and an open that raced with
 * the hide (it looked the name up before; its OPEN reaches the hidden name)
 * may arrive after that, followed by its fstat (by the same hidden name):
 * the ghost is kept, invisible in listings, for FS_GHOST_KEEP s so that
 * such a node still finds the item. A rename onto an open file can take
 * that long on a slow platform (libfuse sends the open after it). */
#define FS_GHOST_KEEP 60.0

int fs_ghost_kept(const struct fs_ghost *g)
{
    return g && (!g->gone_at || fs_now() - g->gone_at <= FS_GHOST_KEEP);
}

struct gone_scan {
    double now;
    char **keys;
    size_t n, cap;
};

static void gone_cb(void *ud, const char *k, void *v)
{
    struct gone_scan *s = ud;
    struct fs_ghost *g = v;
    if (!g->gone_at || s->now - g->gone_at <= FS_GHOST_KEEP)
        return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        char **nk = realloc(s->keys, cap * sizeof *nk);
        if (!nk)
            return; /* purged at a later unlink */
        s->keys = nk;
        s->cap = cap;
    }
    if ((s->keys[s->n] = strdup(k)))
        s->n++;
}

int fs_unlink_ghost(struct fs_state *st, struct fs_folder *f, const char *name)
{
    struct fs_ghost *g, **old = NULL;
    struct gone_scan s = {.now = fs_now()};
    size_t n = 0;

    pthread_mutex_lock(&st->mu);
    g = fs_map_get(&f->ghosts, name);
    if (!g || g->gone_at) {
        pthread_mutex_unlock(&st->mu);
        return -ENOENT;
    }
    g->gone_at = s.now;
    /* ghosts unlinked long ago go now */
    fs_map_each(&f->ghosts, gone_cb, &s);
    if (s.n)
        old = malloc(s.n * sizeof *old);
    for (size_t i = 0; i < s.n; i++) {
        struct fs_ghost *x = old ? fs_map_del(&f->ghosts, s.keys[i]) : NULL;
        if (x)
            old[n++] = x;
        free(s.keys[i]);
    }
    free(s.keys);
    pthread_mutex_unlock(&st->mu);
    for (size_t i = 0; i < n; i++) {
        fs_item_put(st, old[i]->item);
        free(old[i]);
    }
    free(old);
    return 0;
}

struct fs_ver *fs_recreate(struct fs_state *st, struct fs_item *it)
{
    struct fs_doc *d = &it->doc;
    struct fs_ver *base = NULL;
    enum fs_tomb was;

    pthread_mutex_lock(&st->ds.mu);
    while (d->tomb == FS_TOMB_DELETING)
        pthread_cond_wait(&st->ds.cv, &st->ds.mu);
    was = d->tomb;
    if (was != FS_TOMB_NONE) {
        d->tomb = FS_TOMB_NONE;
        base = d->tomb_pre;
        d->tomb_pre = NULL;
    }
    pthread_mutex_unlock(&st->ds.mu);
    if (was == FS_TOMB_GRACE) {
        char *n = fs_item_name(st, it);
        fs_log(st, LOG_INFO, "%s: created again; the pending delete is cancelled",
               n ? n : "?");
        free(n);
    }
    return base;
}

/* ------------------------------------------------------------- deleter */

struct got { struct fs_item **items; char **docs; size_t *lens; size_t n; struct fs_map idx; };

static int got_cb(void *ud, long long item_id, const char *json, size_t len)
{
    struct got *g = ud;
    char key[32], why[64];
    void *v;
    size_t i;
    snprintf(key, sizeof key, "%lld", item_id);
    v = fs_map_get(&g->idx, key);
    if (!v)
        return 0;
    i = (size_t)(uintptr_t)v - 1;
    if (!g->docs[i])
        sa_doc_pretty(json, len, &g->docs[i], &g->lens[i], why, sizeof why);
    return 0;
}

static void tomb_set(struct fs_state *st, struct fs_item *it, enum fs_tomb t, int use_key)
{
    struct fs_doc *d = &it->doc;
    pthread_mutex_lock(&st->ds.mu);
    d->tomb = t;
    if (use_key) {
        d->hide_ms = d->ms;
        d->hide_status = d->status;
    }
    if (t == FS_TOMB_NONE) {
        fs_ver_unref_locked(st, d->tomb_pre);
        d->tomb_pre = NULL;
    }
    pthread_cond_broadcast(&st->ds.cv);
    pthread_mutex_unlock(&st->ds.mu);
}

/* One folder's due deletes (all items of @p f, tomb DELETING). */
static void delete_group(struct fs_state *st, struct fs_folder *f, struct fs_item **items,
                         size_t n)
{
    struct got g = {0};
    const char **names = calloc(n + 1, sizeof *names);
    long long *ids = calloc(n + 1, sizeof *ids);
    int *want = calloc(n + 1, sizeof *want);
    size_t nw = 0, nfetch = 0;
    long long *fids = calloc(n + 1, sizeof *fids);
    const char **fnames = calloc(n + 1, sizeof *fnames);
    enum sa_err e;

    g.items = items;
    g.n = n;
    g.docs = calloc(n + 1, sizeof *g.docs);
    g.lens = calloc(n + 1, sizeof *g.lens);
    fs_map_init(&g.idx);
    if (!names || !ids || !want || !fids || !fnames || !g.docs || !g.lens) {
        for (size_t i = 0; i < n; i++)
            tomb_set(st, items[i], FS_TOMB_NONE, 0);
        goto out;
    }
    /* what the platform holds now: a colleague's change since the unlink
     * cancels the delete */
    fs_items_refetch(st, f, items, n);
    for (size_t i = 0; i < n; i++) {
        struct fs_doc *d = &items[i]->doc;
        int changed;
        names[i] = fs_item_name(st, items[i]);
        ids[i] = items[i]->id;
        pthread_mutex_lock(&st->ds.mu);
        changed = d->tomb_pre && (d->tomb_pre->ms != d->ms || d->tomb_pre->status != d->status);
        if (!changed && d->cur && d->cur->data && d->cur->ms == d->ms &&
            d->cur->status == d->status) {
            g.docs[i] = malloc(d->cur->len + 1);
            if (g.docs[i]) {
                memcpy(g.docs[i], d->cur->data, d->cur->len + 1);
                g.lens[i] = d->cur->len;
            }
        }
        pthread_mutex_unlock(&st->ds.mu);
        if (changed) {
            fs_log(st, LOG_WARNING, "%s: changed on the platform since it was removed; its "
                                    "annotations are not deleted", names[i] ? names[i] : "?");
            tomb_set(st, items[i], FS_TOMB_NONE, 0);
            continue;
        }
        want[i] = 1;
        if (!g.docs[i]) {
            char key[32];
            snprintf(key, sizeof key, "%lld", ids[i]);
            fs_map_put(&g.idx, key, (void *)(uintptr_t)(i + 1));
            fids[nfetch] = ids[i];
            fnames[nfetch++] = names[i] ? names[i] : "";
        }
    }
    if (nfetch) {
        e = sa_download_annotations(st->c, f->proj->p.id, f->id, fids, fnames, nfetch, got_cb,
                                    &g);
        if (e)
            fs_fail(st, "read before delete", f->name, e);
    }
    /* recover, decide emptiness */
    {
        const char **del = calloc(n + 1, sizeof *del);
        struct fs_item **delit = calloc(n + 1, sizeof *delit);
        for (size_t i = 0; i < n; i++) {
            char *fname;
            if (!want[i])
                continue;
            if (!g.docs[i]) {
                fs_log(st, LOG_ERR, "%s: its annotations could not be read; nothing deleted "
                                    "(the name shows again)", names[i] ? names[i] : "?");
                tomb_set(st, items[i], FS_TOMB_NONE, 0);
                continue;
            }
            if (sa_doc_is_empty(g.docs[i], g.lens[i]) == 1) {
                tomb_set(st, items[i], FS_TOMB_GONE, 1);
                continue;
            }
            fname = fs_item_fname_copy(st, items[i]);
            fs_recover(st, "deleted", f, fname ? fname : "?", g.docs[i], g.lens[i]);
            free(fname);
            if (del && delit) {
                delit[nw] = items[i];
                del[nw++] = names[i] ? names[i] : "";
            }
        }
        if (nw) {
            e = sa_delete_annotations(st->c, f->proj->p.id, f->id, del, nw);
            if (e) {
                fs_fail(st, "delete annotations", f->name, e);
                for (size_t i = 0; i < nw; i++) {
                    fs_log(st, LOG_ERR, "%s: the delete failed; the name shows again", del[i]);
                    tomb_set(st, delit[i], FS_TOMB_NONE, 0);
                }
            } else {
                pthread_mutex_lock(&st->mu);
                st->own.deletes += nw;
                pthread_mutex_unlock(&st->mu);
                fs_items_refetch(st, f, delit, nw);
                for (size_t i = 0; i < nw; i++) {
                    struct fs_item *it = delit[i];
                    int64_t ms;
                    int status;
                    char sname[128], *raw = NULL, *pretty = NULL, why[64];
                    size_t rl, pl;
                    fs_log(st, LOG_INFO, "%s: annotations deleted", del[i]);
                    /* what the delete left (api.md §11.4), computed here */
                    if (fs_doc_key(st, it, &ms, &status) == 0 &&
                        fs_status_name(st, f->proj, status, sname, sizeof sname) == 0 &&
                        sa_doc_skeleton(del[i], sname, f->proj->p.id, it->id, &raw, &rl) ==
                            SA_OK &&
                        sa_doc_pretty(raw, rl, &pretty, &pl, why, sizeof why) == SA_OK) {
                        struct fs_ver *pre;
                        pthread_mutex_lock(&st->ds.mu);
                        pre = it->doc.tomb_pre;
                        fs_ver_ref_locked(pre);
                        pthread_mutex_unlock(&st->ds.mu);
                        {
                            struct fs_ver *from[1] = {pre};
                            fs_ver_unref(st, fs_doc_own_change(st, it, from, 1, ms, status,
                                                               pretty, pl));
                        }
                        fs_ver_unref(st, pre);
                    } else {
                        free(pretty);
                    }
                    free(raw);
                    tomb_set(st, it, FS_TOMB_GONE, 1);
                }
            }
        }
        free(del);
        free(delit);
    }
out:
    for (size_t i = 0; i < n; i++) {
        if (names)
            free((char *)names[i]);
        if (g.docs)
            free(g.docs[i]);
    }
    fs_map_clear(&g.idx);
    free(g.docs);
    free(g.lens);
    free(names);
    free(ids);
    free(want);
    free(fids);
    free(fnames);
}

static void *deleter_main(void *arg)
{
    struct fs_state *st = arg;
    pthread_mutex_lock(&st->ds.mu);
    for (;;) {
        struct fs_item **due = NULL, **drop = NULL;
        size_t nd = 0, ndrop = 0, cap = 0;
        double now = fs_now(), next = 0;
        int stop = st->ds.del_stop;

        for (struct fs_item *it = st->ds.tomb_head; it; it = it->doc.tomb_next)
            cap++;
        if (cap) {
            due = calloc(cap, sizeof *due);
            drop = calloc(cap, sizeof *drop);
        }
        for (struct fs_item **pp = &st->ds.tomb_head; *pp && due && drop;) {
            struct fs_item *it = *pp;
            struct fs_doc *d = &it->doc;
            if (d->tomb != FS_TOMB_GRACE) {
                *pp = d->tomb_next;
                d->tomb_queued = 0;
                drop[ndrop++] = it;
            } else if (stop || d->tomb_due <= now) {
                *pp = d->tomb_next;
                d->tomb_queued = 0;
                d->tomb = FS_TOMB_DELETING;
                due[nd++] = it;
            } else {
                if (!next || d->tomb_due < next)
                    next = d->tomb_due;
                pp = &d->tomb_next;
            }
        }
        if (!nd && !ndrop) {
            free(due);
            free(drop);
            if (stop && !st->ds.tomb_head)
                break;
            if (next) {
                struct timespec ts;
                double wait = next - now;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += (time_t)wait;
                ts.tv_nsec += (long)((wait - (time_t)wait) * 1e9);
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&st->ds.del_cv, &st->ds.mu, &ts);
            } else {
                pthread_cond_wait(&st->ds.del_cv, &st->ds.mu);
            }
            continue;
        }
        st->ds.del_busy = 1;
        pthread_mutex_unlock(&st->ds.mu);
        /* one request per folder for everything due */
        for (size_t i = 0; i < nd; i++) {
            struct fs_item **grp;
            size_t ng = 0;
            struct fs_folder *f;
            if (!due[i])
                continue;
            f = due[i]->folder;
            grp = calloc(nd, sizeof *grp);
            if (!grp)
                break;
            for (size_t k = i; k < nd; k++)
                if (due[k] && due[k]->folder == f) {
                    grp[ng++] = due[k];
                    drop[ndrop++] = due[k];
                    due[k] = NULL;
                }
            delete_group(st, f, grp, ng);
            free(grp);
        }
        for (size_t i = 0; i < ndrop; i++)
            fs_item_put(st, drop[i]);
        free(due);
        free(drop);
        pthread_mutex_lock(&st->ds.mu);
        st->ds.del_busy = 0;
        pthread_cond_broadcast(&st->ds.cv);
    }
    pthread_mutex_unlock(&st->ds.mu);
    return NULL;
}

void fs_deleter_start(struct fs_state *st)
{
    pthread_mutex_lock(&st->ds.mu);
    if (!st->ds.del_started && pthread_create(&st->ds.del_thread, NULL, deleter_main, st) == 0)
        st->ds.del_started = 1;
    pthread_mutex_unlock(&st->ds.mu);
}

void fs_deleter_stop(struct fs_state *st)
{
    int started;
    pthread_mutex_lock(&st->ds.mu);
    started = st->ds.del_started;
    st->ds.del_stop = 1;
    pthread_cond_signal(&st->ds.del_cv);
    pthread_mutex_unlock(&st->ds.mu);
    if (started)
        pthread_join(st->ds.del_thread, NULL);
}
