/** @file
 * Saves and status changes (filesystem.md §2, §4): the one place that
 * decides whether a document changed, whether it conflicts, uploads it,
 * steps its status, and computes what the file shows afterwards.
 *
 * A save, under the item's save_mu:
 *   1. refused before any request: deleted while open, a repeated ESTALE,
 *      over max_doc, invalid JSON (EINVAL, bytes recovered);
 *   2. the item's version (one GET);
 *   3. conflict: the writer's base, followed through this mount's own
 *      changes (fs_ver.next), must have the platform's key; if the base is
 *      not settled (fetched or computed within its updatedAt's second, where
 *      a colleague's edit keeps the key), the platform's document is fetched
 *      and compared by content;
 *   4. unchanged (sa_doc_equal with the platform's document): no upload; a
 *      pending status is still set;
 *   5. upload (status InProgress as the SDK does, unless keep_status or a
 *      pending status), then the version after (one GET);
 *   6. what a fresh mount would read — the uploaded document with
 *      metadata.status, pretty-printed — is computed here and installed as
 *      the successor of the base, unless the version after shows a change
 *      in a later second than our write (someone else's: then nothing is
 *      assumed and the next read fetches it).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_i.h"
#include "sa/doc.h"

/* The workflow cache: the SDK reads a project's workflow once per call; a
 * mount reads it once a minute per project (a workflow's statuses do not
 * change under a mount in practice), so a save costs no workflow request
 * and -o writeback's close path none at all once it is warm. */
#define WF_TTL 60.0
struct wf_ent {
    struct wf_ent *next;
    long long project_id;
    double at;
    struct sa_workflow w;
};
static pthread_mutex_t wf_mu = PTHREAD_MUTEX_INITIALIZER;
static struct wf_ent *wf_head;

static int wf_copy(const struct sa_workflow *a, struct sa_workflow *b)
{
    memset(b, 0, sizeof *b);
    b->id = a->id;
    b->is_system = a->is_system;
    b->statuses = calloc(a->n_statuses + 1, sizeof *b->statuses);
    if (!b->statuses)
        return -ENOMEM;
    for (size_t i = 0; i < a->n_statuses; i++) {
        b->statuses[i].value = a->statuses[i].value;
        b->statuses[i].name = strdup(a->statuses[i].name ? a->statuses[i].name : "");
        b->n_statuses++;
    }
    return 0;
}

int fs_workflow(struct fs_state *st, const struct sa_project *p, struct sa_workflow *out)
{
    struct wf_ent *e;
    enum sa_err err;
    int r = -ENOENT;

    pthread_mutex_lock(&wf_mu);
    for (e = wf_head; e; e = e->next)
        if (e->project_id == p->id) {
            /* -o writeback: a stale entry is still used (the close path makes
             * no request); the uploader refreshes it */
            if (fs_now() - e->at < WF_TTL || st->wb)
                r = wf_copy(&e->w, out);
            break;
        }
    pthread_mutex_unlock(&wf_mu);
    if (r != -ENOENT)
        return r;
    err = sa_get_workflow(st->c, p->id, p->workflow_id, out);
    if (err) {
        sa_workflow_clear(out);
        return fs_fail(st, "get workflow", p->name, err);
    }
    pthread_mutex_lock(&wf_mu);
    for (e = wf_head; e; e = e->next)
        if (e->project_id == p->id)
            break;
    if (!e && (e = calloc(1, sizeof *e))) {
        e->project_id = p->id;
        e->next = wf_head;
        wf_head = e;
    } else if (e) {
        sa_workflow_clear(&e->w);
    }
    if (e) {
        e->at = fs_now();
        if (wf_copy(out, &e->w))
            e->at = 0;
    }
    pthread_mutex_unlock(&wf_mu);
    return 0;
}

int fs_status_value(struct fs_state *st, struct fs_project *p, const char *name)
{
    struct sa_workflow w;
    int v, r = fs_workflow(st, &p->p, &w);
    if (r)
        return r;
    v = sa_workflow_status_value(&w, name);
    sa_workflow_clear(&w);
    if (v < 0) {
        fs_log(st, LOG_ERR, "status \"%s\" is not in the workflow of project %s", name,
               p->p.name);
        return -EINVAL;
    }
    return v;
}

int fs_status_name(struct fs_state *st, struct fs_project *p, int value, char *buf, size_t n)
{
    struct sa_workflow w;
    const char *name;
    int r = fs_workflow(st, &p->p, &w);
    if (r)
        return r;
    name = sa_workflow_status_name(&w, value);
    if (name)
        snprintf(buf, n, "%s", name);
    else
        snprintf(buf, n, "%d", value);
    sa_workflow_clear(&w);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What the platform serves for document @p doc with status value @p status:
 * metadata.status filled in, pretty-printed (new bytes). */
int fs_served_form(struct fs_state *st, struct fs_project *p, const char *doc, size_t len,
                   int status, char **out, size_t *outlen)
{
    char name[128], why[256], *ws = NULL;
    size_t wl;
    enum sa_err e;
    int r = fs_status_name(st, p, status, name, sizeof name);

    *out = NULL;
    if (r)
        return r;
    e = sa_doc_with_status(doc, len, name, &ws, &wl, why, sizeof why);
    if (e)
        return -fs_errno(e);
    e = sa_doc_pretty(ws, wl, out, outlen, why, sizeof why);
    free(ws);
    return e ? -fs_errno(e) : 0;
}

/* Did someone else write after our last write? Whole seconds: only a key
 * in a later second than our write's answer proves it. */
static int foreign_after(int64_t key_ms, int64_t our_write_date_ms)
{
    return our_write_date_ms > 0 && key_ms / 1000 > our_write_date_ms / 1000;
}

/* After this mount's own status change (or a save's status step) of @p it:
 * learn the new key and serve @p from's document with the new status. */
static struct fs_ver *after_own_change(struct fs_state *st, struct fs_item *it,
                                       struct fs_ver *const *from, size_t n_from,
                                       const char *doc, size_t len, int64_t write_date)
{
    int64_t ms;
    int status;
    char *bytes;
    size_t bl;
    enum sa_err e = fs_item_refetch(st, it);

    if (e || fs_doc_key(st, it, &ms, &status))
        return NULL;
    if (foreign_after(ms, write_date)) {
        char *name = fs_item_name(st, it);
        fs_log(st, LOG_INFO, "%s: changed on the platform right after this mount's change; "
                             "the next read fetches it", name ? name : "?");
        free(name);
        /* a base no key matches: the writer's next save is ESTALE */
        return fs_ver_detached(INT64_MIN, -1);
    }
    if (!doc || fs_served_form(st, it->folder->proj, doc, len, status, &bytes, &bl))
        return fs_ver_detached(ms, status);
    return fs_doc_own_change(st, it, from, n_from, ms, status, bytes, bl);
}

static int set_status_req(struct fs_state *st, struct fs_item *it, const char *status,
                          const char *path, int64_t *date)
{
    struct fs_folder *f = it->folder;
    int v = fs_status_value(st, f->proj, status);
    const char *names[1];
    char *name;
    enum sa_err e;

    if (v < 0)
        return v;
    name = fs_item_name(st, it);
    if (!name)
        return -ENOMEM;
    names[0] = name;
    e = sa_set_annotation_statuses(st->c, f->proj->p.id, f->id, v, names, 1);
    free(name);
    if (e)
        return fs_fail(st, "set status", path, e);
    sa_last_dates(NULL, date);
    fs_log(st, LOG_INFO, "%s: status set to %s", path, status);
    return 0;
}

/* Is @p status the item's status already? (its key was just learned) */
static int status_is(struct fs_state *st, struct fs_item *it, const char *status)
{
    int64_t ms;
    int cur;
    int v = fs_status_value(st, it->folder->proj, status);
    return v >= 0 && fs_doc_key(st, it, &ms, &cur) == 0 && cur == v;
}

static char *take_pending(struct fs_state *st, struct fs_item *it, const char *given)
{
    char *p;
    pthread_mutex_lock(&st->ds.mu);
    p = it->doc.pending_status;
    it->doc.pending_status = NULL;
    pthread_mutex_unlock(&st->ds.mu);
    if (given) {
        free(p);
        p = strdup(given);
    }
    return p;
}

/* Do base (our idea of the platform's document) and cur (what it holds)
 * have the same content? Server-owned metadata is ignored. */
static int same_content(struct fs_state *st, struct fs_ver *base, struct fs_ver *cur, int type)
{
    int same;
    pthread_mutex_lock(&st->ds.mu);
    if (base->data)
        base->pins++;
    pthread_mutex_unlock(&st->ds.mu);
    if (base->data && cur->data)
        same = sa_doc_equal(base->data, base->len, cur->data, cur->len, type) == 1;
    else
        same = base->hash == cur->hash && base->len == cur->len;
    pthread_mutex_lock(&st->ds.mu);
    if (base->data && base->pins > 0)
        base->pins--;
    pthread_mutex_unlock(&st->ds.mu);
    return same;
}

int fs_save_doc(struct fs_state *st, struct fs_item *it, const char *data, size_t len,
                struct fs_save *o)
{
    struct fs_folder *f = it->folder;
    struct fs_project *p = f->proj;
    struct fs_doc *d = &it->doc;
    struct fs_ver *base = NULL, *cur = NULL, *nv = NULL;
    struct timespec pmt;
    const struct timespec *mtime;
    char why[256], *prep = NULL, *pend = NULL, *fname, *iname;
    size_t preplen = 0;
    int64_t ms, write_date = 0;
    int status, r = 0, eq, deleted, stale;
    enum sa_err e;

    fname = fs_item_fname_copy(st, it);
    iname = fs_item_name(st, it);
    if (o->newbase)
        *o->newbase = NULL;
    if (!fname || !iname) {
        free(fname);
        free(iname);
        return -ENOMEM;
    }
    pthread_mutex_lock(&it->save_mu);
    if (o->h)
        fs_doc_open_len(st, o->h, len, 0);
    mtime = fs_doc_take_pending_mtime(st, it, &pmt) && !o->mtime ? &pmt : o->mtime;
    pthread_mutex_lock(&st->ds.mu);
    deleted = !o->scratch && o->seq < d->deleted_seq;
    stale = o->seq < d->estale_seq;
    if (o->base) {
        base = fs_ver_last_locked(o->base);
        base->refs++;
    }
    pthread_mutex_unlock(&st->ds.mu);

    if (deleted) {
        /* the file was unlinked while open: its writes are not the item's any
         * more, but nothing written is lost */
        fs_log(st, LOG_WARNING, "%s: removed while open; these writes are not uploaded",
               o->path);
        fs_recover(st, "unlinked", f, fname, data, len);
        goto out;
    }
    if (stale) {
        fs_log(st, LOG_ERR, "%s: the item changed on the platform since this file was read "
                            "(ESTALE); the platform keeps the other edit", o->path);
        fs_recover(st, "conflict", f, fname, data, len);
        r = -ESTALE;
        goto out;
    }
    if (len > st->cfg->max_doc) {
        fs_log(st, LOG_ERR, "%s: %zu bytes is over max_doc", o->path, len);
        fs_recover(st, "invalid", f, fname, data, len);
        r = -EFBIG;
        goto out_status;
    }
    if (sa_doc_validate(data, len, why, sizeof why)) {
        fs_log(st, LOG_ERR, "%s: invalid annotation document: %s; the platform keeps its "
                            "previous document", o->path, why);
        fs_recover(st, "invalid", f, fname, data, len);
        r = -EINVAL;
        goto out_status;
    }
    if (st->wb) {
        /* -o writeback: journaled now, uploaded in the background */
        r = fs_wb_save(st, it, data, len, o, base, mtime);
        if (o->newbase) {
            nv = *o->newbase;
            *o->newbase = NULL;
        }
        goto out;
    }
    e = fs_item_refetch(st, it);
    if (e) {
        r = e == SA_ERR_NOTFOUND
                ? fs_refuse(st, "upload", o->path, ENOENT, "the item no longer exists")
                : fs_fail(st, "upload (get item)", o->path, e);
        fs_recover(st, "failed", f, fname, data, len);
        goto out;
    }
    fs_doc_key(st, it, &ms, &status);
    if (base && (base->ms != ms || base->status != status))
        goto conflict;
    r = fs_doc_get(st, it, base && !base->settled, 0, &cur);
    if (r) {
        fs_log(st, LOG_ERR, "%s: cannot read the platform's current document", o->path);
        fs_recover(st, "failed", f, fname, data, len);
        goto out;
    }
    if (base && !base->settled && !same_content(st, base, cur, p->p.type))
        goto conflict;

    eq = sa_doc_equal(data, len, cur->data, cur->len, p->p.type);
    if (eq == 1) {
        pend = take_pending(st, it, o->status);
        if (pend && status_is(st, it, pend)) {
            /* rsync -aX / cp -a of an unchanged file: nothing to send */
            free(pend);
            pend = NULL;
        }
        if (pend) {
            r = set_status_req(st, it, pend, o->path, &write_date);
            if (!r) {
                struct fs_ver *from[2] = {cur, base};
                nv = after_own_change(st, it, from, 2, cur->data, cur->len, write_date);
            }
        }
        if (!nv) {
            nv = cur;
            nv->refs++;
            fs_doc_serve(st, it, cur);
        }
        if (mtime)
            fs_doc_set_mtime(st, it, mtime);
        pthread_mutex_lock(&st->mu);
        st->own.uploads_skipped++;
        pthread_mutex_unlock(&st->mu);
        fs_log(st, LOG_DEBUG, "%s: unchanged, nothing uploaded", o->path);
        goto out;
    }

    e = sa_doc_prepare(data, len, iname, st->email ? st->email : "", now_ms(), p->p.type,
                       &prep, &preplen, why, sizeof why);
    if (e) {
        fs_log(st, LOG_ERR, "%s: invalid annotation document: %s", o->path, why);
        fs_recover(st, "invalid", f, fname, data, len);
        r = -EINVAL;
        goto out_status;
    }
    pend = take_pending(st, it, o->status);
    {
        struct sa_upload_doc u = {.item_id = it->id, .name = iname, .json = prep,
                                  .len = preplen};
        /* a pending status replaces the SDK's InProgress step: one request */
        e = sa_upload_annotations(st->c, &p->p, f->id, &u, 1, st->cfg->keep_status || pend);
        sa_last_dates(NULL, &write_date);
        if (e) {
            enum sa_err de = u.result ? u.result : e;
            fs_log(st, LOG_ERR, "upload %s: %s%s%s", o->path, sa_strerror(de),
                   u.detail[0] ? ": " : "", u.detail[0] ? u.detail : sa_last_error());
            r = -fs_errno(de);
            if (r != -ENOENT && r != -EACCES && r != -EINVAL && r != -EFBIG)
                r = -EIO;
            fs_recover(st, r == -EINVAL ? "invalid" : "failed", f, fname, data, len);
            goto out_pend;
        }
    }
    pthread_mutex_lock(&st->mu);
    st->own.uploads++;
    pthread_mutex_unlock(&st->mu);
    /* the upload kept the status: a pending one that equals it costs nothing */
    if (pend && !status_is(st, it, pend))
        r = set_status_req(st, it, pend, o->path, &write_date);
    free(pend);
    pend = NULL;
    {
        struct fs_ver *from[2] = {cur, base};
        nv = after_own_change(st, it, from, 2, prep, preplen, write_date);
    }
    if (mtime && nv && nv->data)
        fs_doc_set_mtime(st, it, mtime);
    fs_log(st, LOG_INFO, "%s: uploaded (%zu bytes)", o->path, len);
    goto out;

conflict:
    {
        /* writers older than now keep failing (the kernel retries a rename
         * once); a new open or scratch file is a deliberate overwrite, based
         * on what the platform holds now */
        uint64_t s = fs_next_seq(st);
        pthread_mutex_lock(&st->ds.mu);
        d->estale_seq = s;
        pthread_mutex_unlock(&st->ds.mu);
        pthread_mutex_lock(&st->mu);
        st->own.conflicts++;
        pthread_mutex_unlock(&st->mu);
        if (cur)
            fs_doc_serve(st, it, cur);
        else
            fs_doc_get(st, it, 0, 1, &cur);
    }
    fs_log(st, LOG_ERR, "%s: the item changed on the platform since this mount read it "
                        "(ESTALE); the platform keeps the other edit", o->path);
    fs_recover(st, "conflict", f, fname, data, len);
    r = -ESTALE;
    goto out;

out_status:
    /* refused bytes: a status the program asked for still applies */
    pend = take_pending(st, it, o->status);
out_pend:
    if (pend && set_status_req(st, it, pend, o->path, &write_date) == 0) {
        struct fs_ver *c0 = fs_doc_cur_ref(st, it, 1);
        struct fs_ver *from[1] = {c0};
        struct fs_ver *x = after_own_change(st, it, from, 1, c0 ? c0->data : NULL,
                                            c0 ? c0->len : 0, write_date);
        fs_ver_unref(st, x);
        if (c0)
            fs_ver_unpin(st, c0);
    }
out:
    pthread_mutex_unlock(&it->save_mu);
    if (cur)
        fs_ver_unpin(st, cur);
    if (o->newbase)
        *o->newbase = nv;
    else
        fs_ver_unref(st, nv);
    fs_ver_unref(st, base);
    free(fname);
    free(iname);
    free(prep);
    free(pend);
    return r;
}

/* --------------------------------------------------------------- status */

int fs_status_set_item(struct fs_state *st, struct fs_item *it, const char *status,
                       const char *path)
{
    struct fs_ver *from = NULL, *nv;
    size_t dl;
    int64_t date = 0;
    int r = fs_status_value(st, it->folder->proj, status), dirty;

    if (r < 0)
        return r;
    /* -o writeback: the journaled saves land first (their status step would
     * otherwise come after this one) */
    if (st->wb)
        fs_wb_wait_item(st, it);
    pthread_mutex_lock(&it->save_mu);
    dirty = fs_doc_dirty_len(st, it, &dl);
    if (dirty) {
        pthread_mutex_lock(&st->ds.mu);
        free(it->doc.pending_status);
        it->doc.pending_status = strdup(status);
        pthread_mutex_unlock(&st->ds.mu);
        pthread_mutex_unlock(&it->save_mu);
        fs_log(st, LOG_INFO, "%s: status %s will be set after the upload", path, status);
        return 0;
    }
    /* cp -a / rsync -aX set the status a file already has: the item's
     * current status (one read) decides, and nothing is written */
    if (fs_item_refetch(st, it) == SA_OK && status_is(st, it, status)) {
        pthread_mutex_unlock(&it->save_mu);
        fs_log(st, LOG_DEBUG, "%s: status is %s already, nothing sent", path, status);
        return 0;
    }
    from = fs_doc_cur_ref(st, it, 1);
    r = set_status_req(st, it, status, path, &date);
    if (!r) {
        struct fs_ver *f1[1] = {from};
        nv = after_own_change(st, it, f1, 1, from ? from->data : NULL, from ? from->len : 0,
                              date);
        fs_ver_unref(st, nv);
    }
    pthread_mutex_unlock(&it->save_mu);
    if (from)
        fs_ver_unpin(st, from);
    /* metadata.status is part of the bytes: the size changed */
    fs_kernel_inval_item(st, it);
    return r;
}

int fs_status_set_dir(struct fs_state *st, struct fs_folder *f, const char *status,
                      const char *path)
{
    struct fs_item **items = NULL;
    struct fs_ver **from = NULL;
    const char **names = NULL;
    size_t n = 0;
    int v = fs_status_value(st, f->proj, status), r;
    enum sa_err e;

    if (v < 0)
        return v;
    if (st->wb)
        fs_wb_wait_folder(st, f);
    r = fs_folder_refresh(st, f, FS_REFRESH_FORCE);
    if (r)
        return r;
    pthread_mutex_lock(&st->mu);
    items = calloc(f->n_items + 1, sizeof *items);
    names = calloc(f->n_items + 1, sizeof *names);
    for (size_t i = 0; items && names && i < f->n_items; i++) {
        items[n] = f->items[i];
        fs_item_get(items[n]);
        names[n++] = strdup(f->items[i]->name);
    }
    pthread_mutex_unlock(&st->mu);
    if (!items || !names) {
        free(items);
        free(names);
        return -ENOMEM;
    }
    from = calloc(n + 1, sizeof *from);
    for (size_t i = 0; from && i < n; i++)
        from[i] = fs_doc_cur_ref(st, items[i], 1);
    e = n ? sa_set_annotation_statuses(st->c, f->proj->p.id, f->id, v, names, n) : SA_OK;
    if (e) {
        r = fs_fail(st, "set status", path, e);
    } else {
        int64_t date = 0;
        sa_last_dates(NULL, &date);
        fs_log(st, LOG_INFO, "%s: status set to %s on %zu item(s)", path, status, n);
        /* the new keys in one listing; each item shows its new status */
        fs_folder_refresh(st, f, FS_REFRESH_FORCE);
        for (size_t i = 0; from && i < n; i++) {
            int64_t ms;
            int st_v;
            char *bytes;
            size_t bl;
            if (!from[i] || fs_doc_key(st, items[i], &ms, &st_v) || st_v != v ||
                foreign_after(ms, date))
                continue;
            if (fs_served_form(st, f->proj, from[i]->data, from[i]->len, st_v, &bytes, &bl) == 0) {
                struct fs_ver *f1[1] = {from[i]};
                fs_ver_unref(st, fs_doc_own_change(st, items[i], f1, 1, ms, st_v, bytes, bl));
            }
            fs_kernel_inval_item(st, items[i]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (from && from[i])
            fs_ver_unpin(st, from[i]);
        free((char *)names[i]);
        fs_item_put(st, items[i]);
    }
    free(from);
    free(items);
    free(names);
    return r;
}
