/** @file
 * -o writeback (docs/fs-choices.md "Write-back"): close() journals a save
 * (journal.c) and the store shows its final form; background threads (the
 * uploader, WB_THREADS of them: one batch each in flight) land journaled
 * saves in batches per folder:
 *
 *   1. the batch's versions: one listing by names (never a GET per item);
 *      a key other than the save's base is a conflict, unless the platform
 *      already holds this document (an upload whose answer was lost,
 *      recognised by content: the documents of those items in one bulk
 *      download, compared with sa_doc_equal);
 *   2. the upload: sa_upload_annotations (multipart batches by the API's
 *      10 MiB / name-length rules, large documents by their own path),
 *      statuses kept; each success is marked in the journal (an upload marker);
 *   3. the status step: sa_set_annotation_statuses per status (500 names a
 *      call);
 *   4. the versions after: one listing by names; each item's bytes become
 *      the version of its new key (the mtime kept); the record is removed.
 *
 * Saves of one file coalesce: a save queued and not sent yet is replaced
 * by the next one (its record removed once the new one is durable); a save
 * made while its predecessor is in flight waits for it and is then based
 * on the key it landed at. Transient failures (busy, timeouts, network,
 * 5xx) are retried with backoff and stay journaled; final ones (conflict,
 * refused, item gone) put the bytes in the recovery folder with a log line.
 *
 * Lock: wb->mu is a leaf (fs_i.h); no other lock is taken under it, and
 * requests and journal I/O happen outside it, except the rare rewrite of a
 * waiting save's record when its predecessor lands.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs_i.h"
#include "sa/doc.h"

#define WB_BATCH 500         /* saves per batch (the status call's size) */
#define WB_GATHER 0.3        /* a folder quiet this long goes */
#define WB_MAX_WAIT 2.0      /* a save waits at most this long for its neighbours */
#define WB_BACKOFF_MAX 30.0
#define WB_THREADS 2         /* batches in flight at once (other folders, or more of one) */

struct wb_old { uint64_t seq; char *data; size_t len; };

struct wbe {
    struct wbe *next;
    struct fs_jrec r;
    struct wb_old *olds;     /**< earlier records of this item still on disk */
    size_t n_olds;
    struct fs_item *it;      /**< a ref, or NULL (replayed from the journal) */
    struct fs_ver *ver;      /**< the version the store shows for it (a ref), or NULL */
    const struct sa_project *proj;
    int inflight, waiting;
    int sent;                /**< was part of an upload request (its answer may be lost) */
    int heir;                /**< a save of this item, being journaled, took its base from
                              *   this one: if this one lands first, wb->landed says where */
    int same;                /**< its bytes equal those this mount holds for key
                              *   (same_ms, same_status), a key not proven current: nothing
                              *   to upload if the platform still has it (not journaled: a
                              *   replay uploads it, the status untouched) */
    int64_t same_ms;
    int same_status;
    double at, due;
    int tries;
};

struct wb_err { int err; char why[200]; };
struct wb_landed { int blind; int64_t ms; int status; };

struct fs_wb {
    pthread_mutex_t mu;
    pthread_cond_t cv, done_cv;
    char *dir;
    int lock_fd;
    uint64_t next_seq;
    struct wbe *head;
    struct fs_map errs;      /**< "%lld" item id -> struct wb_err */
    struct fs_map landed;    /**< "%llu" seq of an heir's predecessor that landed while the
                              *   heir was journaled -> struct wb_landed (consumed by it) */
    struct sa_project *projs;/**< projects of replayed records (owned) */
    size_t n_projs;
    int stop, started, urgent;
    size_t removing; /* landed saves whose records are being removed */
    double deadline;
    pthread_t th[WB_THREADS];
    uint64_t n_failed, n_conflicted;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void key_str(char *b, size_t n, long long id)
{
    snprintf(b, n, "%lld", id);
}

static const char *seq_key(char *b, size_t n, uint64_t seq)
{
    snprintf(b, n, "%llu", (unsigned long long)seq);
    return b;
}

/* (wb->mu held) The save being journaled takes its base from @p src now:
 * a landing of the one it followed before is of no use to it any more. */
static void drop_heir(struct fs_wb *wb, uint64_t heir_of)
{
    char k[32];
    for (struct wbe *x = wb->head; x; x = x->next)
        if (x->r.seq == heir_of) {
            x->heir = 0;
            return;
        }
    free(fs_map_del(&wb->landed, seq_key(k, sizeof k, heir_of)));
}

static void adopt_heir(struct fs_wb *wb, struct wbe *src, uint64_t *heir_of)
{
    if (*heir_of && *heir_of != src->r.seq)
        drop_heir(wb, *heir_of);
    src->heir = 1;
    *heir_of = src->r.seq;
}

static void entry_free(struct fs_state *st, struct wbe *e)
{
    if (!e)
        return;
    fs_jrec_clear(&e->r);
    for (size_t i = 0; i < e->n_olds; i++)
        free(e->olds[i].data);
    free(e->olds);
    fs_ver_unref(st, e->ver);
    if (e->it)
        fs_item_put(st, e->it);
    free(e);
}

/* The entry of an item (wb->mu): the one queued or in flight (waiting 0),
 * or the one waiting behind it (waiting 1). */
static struct wbe *find(struct fs_wb *wb, long long item_id, int waiting)
{
    for (struct wbe *e = wb->head; e; e = e->next)
        if (e->r.item_id == item_id && e->waiting == waiting)
            return e;
    return NULL;
}

static void unlink_entry(struct fs_wb *wb, struct wbe *x)
{
    for (struct wbe **pp = &wb->head; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            x->next = NULL;
            return;
        }
}

static void push_entry(struct fs_wb *wb, struct wbe *e)
{
    struct wbe **pp = &wb->head;
    while (*pp)
        pp = &(*pp)->next;
    *pp = e;
}

static void set_err(struct fs_wb *wb, long long item_id, int err, const char *why)
{
    char k[32];
    struct wb_err *x;
    key_str(k, sizeof k, item_id);
    x = fs_map_get(&wb->errs, k);
    if (!x) {
        x = calloc(1, sizeof *x);
        if (!x)
            return;
        fs_map_put(&wb->errs, k, x);
    }
    x->err = err;
    snprintf(x->why, sizeof x->why, "%s", why);
}

static void clear_err(struct fs_wb *wb, long long item_id)
{
    char k[32];
    key_str(k, sizeof k, item_id);
    free(fs_map_del(&wb->errs, k));
}

/* ------------------------------------------------------------ close path */

int fs_wb_save(struct fs_state *st, struct fs_item *it, const char *data, size_t len,
               struct fs_save *o, struct fs_ver *base, const struct timespec *mtime)
{
    struct fs_wb *wb = st->wb;
    struct fs_folder *f = it->folder;
    struct fs_project *p = f->proj;
    struct fs_doc *d = &it->doc;
    struct fs_ver *cmp = NULL, *v;
    struct sa_workflow w;
    struct wbe *e, *ex, *old = NULL, *old2 = NULL;
    struct timespec mt;
    char why[256], *prep = NULL, *final = NULL, *pend = NULL;
    size_t preplen = 0, flen = 0;
    const char *set_name = NULL;
    char k[32];
    uint64_t heir_of = 0, jseq;
    int64_t jms;
    int jblind, jstatus, jwait;
    int r, final_status, same = 0, cmp_sure = 0, cmp_status = 0;
    int64_t cmp_ms = 0;
    enum sa_err se;

    if (o->newbase)
        *o->newbase = NULL;
    /* unchanged (no request: what this mount shows now) */
    pthread_mutex_lock(&st->ds.mu);
    cmp = d->wb ? d->wb : (d->cur && d->cur->data ? d->cur : NULL);
    if (cmp && !o->status && !d->pending_status) {
        cmp_sure = cmp == d->wb || fs_ver_trusted(st, cmp);
        cmp_ms = cmp->ms;
        cmp_status = cmp->status;
        cmp->pins++;
        cmp->refs++;
    } else {
        cmp = NULL;
    }
    pthread_mutex_unlock(&st->ds.mu);
    if (cmp) {
        int eq = sa_doc_equal(data, len, cmp->data, cmp->len, p->p.type) == 1;
        if (eq && !cmp_sure) {
            /* the same bytes as a version the platform may have left since
             * (sync mode would ask): journaled, but the uploader sends
             * nothing if the platform still has that key, and the status
             * stays (as a skipped save keeps it) */
            same = 1;
            eq = 0;
        }
        if (eq) {
            if (mtime)
                fs_doc_set_mtime(st, it, mtime);
            pthread_mutex_lock(&st->mu);
            st->own.uploads_skipped++;
            pthread_mutex_unlock(&st->mu);
            fs_log(st, LOG_DEBUG, "%s: unchanged, nothing journaled", o->path);
            pthread_mutex_lock(&st->ds.mu);
            cmp->refs++;
            pthread_mutex_unlock(&st->ds.mu);
            if (o->newbase)
                *o->newbase = cmp;
            else
                fs_ver_unref(st, cmp);
            fs_ver_unpin(st, cmp);
            return 0;
        }
        fs_ver_unpin(st, cmp);
    }

    /* the status the upload ends with, from the cached workflow */
    r = fs_workflow(st, &p->p, &w);
    if (r) {
        fs_log(st, LOG_ERR, "%s: the project's workflow is unknown; the save is refused",
               o->path);
        fs_recover(st, "failed", f, o->path, data, len);
        return r;
    }
    pthread_mutex_lock(&st->ds.mu);
    pend = d->pending_status;
    d->pending_status = NULL;
    final_status = d->status;
    pthread_mutex_unlock(&st->ds.mu);
    if (o->status) {
        free(pend);
        pend = strdup(o->status);
    }
    if (pend)
        set_name = pend;
    else if (same)
        final_status = cmp_status;
    else if (!st->cfg->keep_status && w.is_system)
        set_name = "InProgress";
    if (set_name) {
        int sv = sa_workflow_status_value(&w, set_name);
        if (sv >= 0)
            final_status = sv;
        else
            set_name = NULL;
    }
    sa_workflow_clear(&w);

    {
        char *iname = fs_item_name(st, it);
        se = sa_doc_prepare(data, len, iname ? iname : "", st->email ? st->email : "",
                            now_ms(), p->p.type, &prep, &preplen, why, sizeof why);
        free(iname);
    }
    if (se) {
        fs_log(st, LOG_ERR, "%s: invalid annotation document: %s", o->path, why);
        fs_recover(st, "invalid", f, o->path, data, len);
        free(pend);
        return -EINVAL;
    }
    r = fs_served_form(st, p, prep, preplen, final_status, &final, &flen);
    if (r) {
        free(prep);
        free(pend);
        return r;
    }

    e = calloc(1, sizeof *e);
    if (!e) {
        free(prep);
        free(final);
        free(pend);
        return -ENOMEM;
    }
    e->r.project_id = p->p.id;
    e->r.folder_id = f->id;
    e->r.item_id = it->id;
    e->r.name = fs_item_name(st, it);
    e->r.fname = fs_item_fname_copy(st, it);
    pthread_mutex_lock(&st->mu);
    e->r.pname = strdup(p->p.name ? p->p.name : "");
    e->r.folder = strdup(f->is_root ? "root" : f->name);
    fs_item_get(it);
    pthread_mutex_unlock(&st->mu);
    e->it = it;
    e->proj = &p->p;
    e->r.status = set_name ? strdup(set_name) : NULL;
    e->same = same && !pend;
    e->same_ms = cmp_ms;
    e->same_status = cmp_status;
    e->r.data = prep;
    e->r.len = preplen;
    e->at = fs_now();
    free(pend);

    pthread_mutex_lock(&wb->mu);
    e->r.seq = wb->next_seq++;
    ex = find(wb, it->id, 0);
    if (ex) {
        /* based on the save before it; should that one land while this
         * record is written, settle() leaves where in wb->landed */
        e->r.blind = ex->r.blind;
        e->r.base_ms = ex->r.base_ms;
        e->r.base_status = ex->r.base_status;
        heir_of = ex->r.seq;
        ex->heir = 1;
    } else if (!base) {
        e->r.blind = 1;
    }
    pthread_mutex_unlock(&wb->mu);
    if (!heir_of && base) {
        /* the base, followed through this mount's own changes now: a save
         * of ours that landed since save.c took it (no entry left, so its
         * landing has linked its successor) */
        pthread_mutex_lock(&st->ds.mu);
        v = fs_ver_last_locked(base);
        e->r.base_ms = v->ms;
        e->r.base_status = v->status;
        pthread_mutex_unlock(&st->ds.mu);
    }

    mt = mtime ? *mtime : (struct timespec){0};
    if (!mtime)
        clock_gettime(CLOCK_REALTIME, &mt);
    r = fs_journal_write(wb->dir, &e->r);
    if (r) {
        fs_log(st, LOG_ERR, "%s: cannot write the journal %s: %s; the save is refused",
               o->path, wb->dir, strerror(-r));
        fs_recover(st, "failed", f, o->path, data, len);
        pthread_mutex_lock(&wb->mu);
        if (heir_of)
            drop_heir(wb, heir_of);
        pthread_mutex_unlock(&wb->mu);
        free(final);
        entry_free(st, e);
        return -EIO;
    }
    v = fs_doc_wb_set(st, it, final, flen, &mt, final_status);
    e->ver = v;

    for (;;) {
        struct wb_landed *ld = NULL;
        struct wbe *src;
        pthread_mutex_lock(&wb->mu);
        if (heir_of)
            ld = fs_map_del(&wb->landed, seq_key(k, sizeof k, heir_of));
        if (ld) {
            /* the predecessor landed while this was written: based on where */
            heir_of = 0;
            e->r.blind = ld->blind;
            e->r.base_ms = ld->ms;
            e->r.base_status = ld->status;
            free(ld);
        } else {
            /* this save follows the newest queued one of the item (a waiting
             * one, which it replaces, else the one queued or in flight): its
             * base, which settle() moves when the one before it lands */
            src = find(wb, it->id, 1);
            if (!src)
                src = find(wb, it->id, 0);
            if (!src || (src->r.blind == e->r.blind && src->r.base_ms == e->r.base_ms &&
                         src->r.base_status == e->r.base_status)) {
                if (src && src->r.seq != heir_of)
                    adopt_heir(wb, src, &heir_of);
                break; /* wb->mu held: what is queued lands after this is */
            }
            e->r.blind = src->r.blind;
            e->r.base_ms = src->r.base_ms;
            e->r.base_status = src->r.base_status;
            adopt_heir(wb, src, &heir_of);
        }
        pthread_mutex_unlock(&wb->mu);
        r = fs_journal_write(wb->dir, &e->r);
        if (r)
            fs_log(st, LOG_WARNING, "%s: cannot rewrite the journal record in %s: %s; a "
                   "replay after a crash would find a conflict (the bytes then go to the "
                   "recovery folder)", o->path, wb->dir, strerror(-r));
    }
    clear_err(wb, it->id);
    ex = find(wb, it->id, 0);
    if (ex && !ex->inflight) {
        /* coalesce: the queued save is replaced; the record stays when it
         * may have been sent already (its upload's answer lost) */
        unlink_entry(wb, ex);
        e->r.blind = ex->r.blind;
        e->r.base_ms = ex->r.base_ms;
        e->r.base_status = ex->r.base_status;
        e->olds = ex->olds;
        e->n_olds = ex->n_olds;
        ex->olds = NULL;
        ex->n_olds = 0;
        /* a save waiting for ex (ex was in flight then, and its try
         * failed) is older than this one: it goes too, never sent */
        old2 = find(wb, it->id, 1);
        if (old2)
            unlink_entry(wb, old2);
        if (ex->sent || ex->r.uploaded) {
            struct wb_old *no = realloc(e->olds, (e->n_olds + 1) * sizeof *no);
            if (no) {
                e->olds = no;
                no[e->n_olds].seq = ex->r.seq;
                no[e->n_olds].data = ex->r.data;
                no[e->n_olds++].len = ex->r.len;
                ex->r.data = NULL;
                ex->r.seq = 0;
            }
        }
        old = ex;
    } else if (ex) {
        /* the previous save is in flight: this one waits for it */
        e->waiting = 1;
        old = find(wb, it->id, 1);
        if (old)
            unlink_entry(wb, old);
    }
    if (heir_of)
        drop_heir(wb, heir_of); /* queued now: settle() moves its base */
    push_entry(wb, e);
    jseq = e->r.seq;
    jblind = e->r.blind;
    jms = e->r.base_ms;
    jstatus = e->r.base_status;
    jwait = e->waiting;
    pthread_cond_broadcast(&wb->cv);
    pthread_mutex_unlock(&wb->mu);
    if (old) {
        if (old->r.seq)
            fs_journal_remove(wb->dir, old->r.seq);
        entry_free(st, old);
    }
    if (old2) {
        fs_journal_remove(wb->dir, old2->r.seq);
        entry_free(st, old2);
    }
    fs_log(st, LOG_DEBUG, "%s: journaled (%zu bytes) as save %llu, based on %s%lld/%d%s", o->path,
           len, (unsigned long long)jseq, jblind ? "nothing (blind) " : "key ", (long long)jms,
           jstatus, jwait ? ", after the one in flight" : "");
    if (o->newbase && v) {
        pthread_mutex_lock(&st->ds.mu);
        v->refs++;
        pthread_mutex_unlock(&st->ds.mu);
        *o->newbase = v;
    }
    return 0;
}

/* ------------------------------------------------------------- uploader */

static int transient(enum sa_err e)
{
    return e == SA_ERR_BUSY || e == SA_ERR_TIMEOUT || e == SA_ERR_NET || e == SA_ERR_SERVER ||
           e == SA_ERR_PROTO || e == SA_ERR_NOMEM || e == SA_ERR_CANCELLED;
}

struct batch {
    struct wbe **v;
    size_t n;
    int *state;              /* per entry: see below */
    int64_t *ms;             /* the listed key */
    int *status;
    double t0;               /* before the version check */
};
enum { B_TODO, B_UPLOAD, B_CHECK, B_STATUS, B_DONE, B_RETRY, B_FINAL };

static void retry(struct fs_state *st, struct batch *b, size_t i, enum sa_err e, const char *what)
{
    struct wbe *x = b->v[i];
    b->state[i] = B_RETRY;
    fs_log(st, LOG_WARNING, "write-back %s/%s/%s: %s failed (%s%s%s); kept journaled, retried",
           x->r.pname, x->r.folder, x->r.fname ? x->r.fname : x->r.name, what, sa_strerror(e),
           *sa_last_error() ? ": " : "", sa_last_error());
}

/* A final failure: the bytes go to the recovery folder (wb->mu NOT held). */
static void final_fail(struct fs_state *st, struct batch *b, size_t i, int conflict, int err,
                       const char *why)
{
    struct fs_wb *wb = st->wb;
    struct wbe *x = b->v[i];
    b->state[i] = B_FINAL;
    fs_log(st, LOG_ERR, "write-back %s/%s/%s: %s; not uploaded", x->r.pname, x->r.folder,
           x->r.fname ? x->r.fname : x->r.name, why);
    fs_recover_named(st, conflict ? "conflict" : "failed", x->r.pname, x->r.folder,
                     x->r.fname ? x->r.fname : x->r.name, x->r.data, x->r.len);
    pthread_mutex_lock(&wb->mu);
    set_err(wb, x->r.item_id, err, why);
    if (conflict)
        wb->n_conflicted++;
    else
        wb->n_failed++;
    pthread_mutex_unlock(&wb->mu);
    if (conflict) {
        pthread_mutex_lock(&st->mu);
        st->own.conflicts++;
        pthread_mutex_unlock(&st->mu);
    }
    if (x->it && b->ms[i] >= 0)
        /* the file shows the platform's document again: its key as listed */
        fs_doc_learn(st, x->it, b->ms[i], b->status[i], b->t0);
    if (x->it && x->ver)
        fs_doc_wb_clear(st, x->it, x->ver);
    if (x->it) {
        char *path = fs_item_path(st, x->it);
        if (path)
            fs_kernel_inval_later(st, path);
        free(path);
    }
}

struct dl_ctx { struct fs_state *st; struct batch *b; size_t *idx; size_t n; int type; int *match; };

static int dl_cb(void *ud, long long item_id, const char *json, size_t len)
{
    struct dl_ctx *c = ud;
    for (size_t k = 0; k < c->n; k++) {
        struct wbe *x = c->b->v[c->idx[k]];
        if (x->r.item_id != item_id)
            continue;
        if (sa_doc_equal(x->r.data, x->r.len, json, len, c->type) == 1) {
            c->match[k] = 2; /* ours landed */
        } else {
            for (size_t o = 0; o < x->n_olds; o++)
                if (sa_doc_equal(x->olds[o].data, x->olds[o].len, json, len, c->type) == 1)
                    c->match[k] = 1; /* an earlier save of ours: this one is based on it */
        }
    }
    return 0;
}

static int find_listed(const struct sa_item_list *l, const struct wbe *x)
{
    for (size_t j = 0; j < l->n; j++)
        if (l->v[j].id == x->r.item_id)
            return (int)j;
    for (size_t j = 0; j < l->n; j++)
        if (l->v[j].name && !strcmp(l->v[j].name, x->r.name))
            return (int)j;
    return -1;
}

static void run_batch(struct fs_state *st, struct batch *b)
{
    struct fs_wb *wb = st->wb;
    const struct sa_project *p = b->v[0]->proj;
    long long fid = b->v[0]->r.folder_id;
    const char **names = calloc(b->n + 1, sizeof *names);
    struct sa_item_list l = {0};
    enum sa_err e;
    size_t n = b->n;

    if (!names) {
        for (size_t i = 0; i < n; i++)
            b->state[i] = B_RETRY;
        return;
    }
    for (size_t i = 0; i < n; i++)
        names[i] = b->v[i]->r.name;

    /* 1. versions: one listing by names */
    b->t0 = fs_now();
    e = sa_list_items(st->c, p->id, fid, names, n, &l);
    if (e) {
        for (size_t i = 0; i < n; i++) {
            if (e == SA_ERR_NOTFOUND)
                final_fail(st, b, i, 0, ENOENT, "the folder no longer exists");
            else if (transient(e))
                retry(st, b, i, e, "the version check");
            else
                final_fail(st, b, i, 0, EIO, sa_strerror(e));
        }
        free(names);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct wbe *x = b->v[i];
        int j = find_listed(&l, x);
        if (j < 0) {
            final_fail(st, b, i, 0, ENOENT, "the item no longer exists");
            continue;
        }
        b->ms[i] = l.v[j].updated_ms;
        b->status[i] = l.v[j].annotation_status;
        if (x->r.uploaded)
            b->state[i] = B_STATUS;
        else if (x->same && b->ms[i] == x->same_ms && b->status[i] == x->same_status) {
            /* the platform still has the very bytes: nothing to send */
            fs_log(st, LOG_DEBUG, "write-back %s/%s/%s: unchanged, nothing uploaded",
                   x->r.pname, x->r.folder, x->r.name);
            pthread_mutex_lock(&st->mu);
            st->own.uploads_skipped++;
            pthread_mutex_unlock(&st->mu);
            b->state[i] = B_DONE;
        } else if (x->r.blind || (b->ms[i] == x->r.base_ms && b->status[i] == x->r.base_status))
            b->state[i] = B_UPLOAD;
        else
            b->state[i] = B_CHECK;
    }
    sa_item_list_clear(&l);

    /* 1b. a key that moved: ours (an answer lost), or someone else's */
    {
        size_t k = 0, *idx = calloc(n + 1, sizeof *idx);
        long long *ids = calloc(n + 1, sizeof *ids);
        const char **cn = calloc(n + 1, sizeof *cn);
        int *match = calloc(n + 1, sizeof *match);
        for (size_t i = 0; idx && ids && cn && match && i < n; i++)
            if (b->state[i] == B_CHECK) {
                idx[k] = i;
                ids[k] = b->v[i]->r.item_id;
                cn[k++] = b->v[i]->r.name;
            }
        if (k) {
            struct dl_ctx c = {st, b, idx, k, p->type, match};
            e = sa_download_annotations(st->c, p->id, fid, ids, cn, k, dl_cb, &c);
            for (size_t q = 0; q < k; q++) {
                size_t i = idx[q];
                if (e && transient(e))
                    retry(st, b, i, e, "the conflict check");
                else if (match[q] == 2) {
                    fs_log(st, LOG_INFO, "write-back %s/%s/%s: already on the platform (an "
                           "upload whose answer was lost)", b->v[i]->r.pname,
                           b->v[i]->r.folder, b->v[i]->r.name);
                    b->state[i] = B_STATUS;
                    b->v[i]->r.uploaded = 1;
                } else if (match[q] == 1)
                    b->state[i] = B_UPLOAD;
                else {
                    fs_log(st, LOG_DEBUG, "write-back %s: save %llu based on key %lld/%d, the "
                           "platform's %lld/%d, content differs", b->v[i]->r.name,
                           (unsigned long long)b->v[i]->r.seq, (long long)b->v[i]->r.base_ms,
                           b->v[i]->r.base_status, (long long)b->ms[i], b->status[i]);
                    final_fail(st, b, i, 1, ESTALE, "conflict: the item changed on the "
                               "platform since this mount read it; the platform keeps the "
                               "other edit");
                }
            }
        }
        free(idx);
        free(ids);
        free(cn);
        free(match);
    }

    /* 2. the upload (the API's own batching), statuses kept */
    {
        struct sa_upload_doc *docs = calloc(n + 1, sizeof *docs);
        size_t *idx = calloc(n + 1, sizeof *idx), k = 0;
        uint64_t *seqs = calloc(n + 1, sizeof *seqs);
        size_t ns = 0;
        for (size_t i = 0; docs && idx && i < n; i++)
            if (b->state[i] == B_UPLOAD) {
                docs[k].item_id = b->v[i]->r.item_id;
                docs[k].name = b->v[i]->r.name;
                docs[k].json = b->v[i]->r.data;
                docs[k].len = b->v[i]->r.len;
                b->v[i]->sent = 1;
                idx[k++] = i;
            }
        if (k) {
            sa_upload_annotations(st->c, p, fid, docs, k, 1);
            for (size_t q = 0; q < k; q++) {
                size_t i = idx[q];
                enum sa_err de = docs[q].result;
                if (!de) {
                    b->state[i] = B_STATUS;
                    b->v[i]->r.uploaded = 1;
                    if (seqs)
                        seqs[ns++] = b->v[i]->r.seq;
                    pthread_mutex_lock(&st->mu);
                    st->own.uploads++;
                    pthread_mutex_unlock(&st->mu);
                } else if (transient(de)) {
                    retry(st, b, i, de, "the upload");
                } else {
                    char why[320];
                    snprintf(why, sizeof why, "refused by the platform: %s%s%s",
                             sa_strerror(de), docs[q].detail[0] ? ": " : "", docs[q].detail);
                    final_fail(st, b, i, 0, de == SA_ERR_NOTFOUND ? ENOENT : EIO, why);
                }
            }
            fs_journal_mark_uploaded(wb->dir, seqs, ns);
        }
        free(docs);
        free(idx);
        free(seqs);
    }

    /* 3. the status step, one call per status (500 names a call) */
    for (size_t i = 0; i < n; i++) {
        const char *sname;
        const char **sn;
        size_t k = 0;
        int v;
        struct sa_workflow w;
        if (b->state[i] != B_STATUS || !b->v[i]->r.status)
            continue;
        sname = b->v[i]->r.status;
        if (fs_workflow(st, p, &w)) {
            retry(st, b, i, SA_ERR_NET, "the status step (workflow)");
            continue;
        }
        v = sa_workflow_status_value(&w, sname);
        sa_workflow_clear(&w);
        sn = calloc(n + 1, sizeof *sn);
        if (!sn)
            break;
        for (size_t j = i; j < n; j++)
            if (b->state[j] == B_STATUS && b->v[j]->r.status &&
                !strcmp(b->v[j]->r.status, sname)) {
                b->state[j] = B_DONE;
                if (v >= 0 && b->status[j] != v)
                    sn[k++] = b->v[j]->r.name;
            }
        if (v >= 0 && k) {
            e = sa_set_annotation_statuses(st->c, p->id, fid, v, sn, k);
            if (e)
                for (size_t j = i; j < n; j++)
                    if (b->state[j] == B_DONE && b->v[j]->r.status &&
                        !strcmp(b->v[j]->r.status, sname))
                        retry(st, b, j, e, "the status step");
        }
        free(sn);
    }
    for (size_t i = 0; i < n; i++)
        if (b->state[i] == B_STATUS)
            b->state[i] = B_DONE;

    /* 4. the versions after: one listing by names */
    {
        size_t k = 0;
        double t0 = fs_now();
        for (size_t i = 0; i < n; i++)
            if (b->state[i] == B_DONE && b->v[i]->it)
                names[k++] = b->v[i]->r.name;
        memset(&l, 0, sizeof l);
        e = k ? sa_list_items(st->c, p->id, fid, names, k, &l) : SA_OK;
        for (size_t i = 0; i < n; i++) {
            struct wbe *x = b->v[i];
            int j;
            if (b->state[i] != B_DONE)
                continue;
            j = !e ? find_listed(&l, x) : -1;
            b->ms[i] = j >= 0 ? l.v[j].updated_ms : -1;
            b->status[i] = j >= 0 ? l.v[j].annotation_status : 0;
            if (x->it && x->ver) {
                if (j >= 0)
                    fs_doc_learn(st, x->it, b->ms[i], b->status[i], t0);
                fs_doc_wb_landed(st, x->it, x->ver, b->ms[i], b->status[i]);
            }
            fs_log(st, LOG_INFO, "write-back %s/%s/%s: uploaded (%zu bytes)", x->r.pname,
                   x->r.folder, x->r.fname ? x->r.fname : x->r.name, x->r.len);
        }
        sa_item_list_clear(&l);
    }
    free(names);
}

static double backoff(int tries)
{
    double d = 0.5;
    for (int i = 1; i < tries && d < WB_BACKOFF_MAX; i++)
        d *= 2;
    return d < WB_BACKOFF_MAX ? d : WB_BACKOFF_MAX;
}

/* After a batch (wb->mu held): remove what landed or failed, requeue the
 * rest, promote saves that waited. Returns the records to remove. */
static void settle(struct fs_state *st, struct batch *b, struct wbe **gone)
{
    struct fs_wb *wb = st->wb;
    double now = fs_now();
    for (size_t i = 0; i < b->n; i++) {
        struct wbe *x = b->v[i], *w;
        x->inflight = 0;
        if (b->state[i] == B_RETRY || b->state[i] == B_TODO) {
            x->tries++;
            x->due = now + backoff(x->tries);
            if (wb->stop && x->due > now + 1.0)
                x->due = now + 1.0;
            continue;
        }
        w = find(wb, x->r.item_id, 1);
        if (w) {
            /* the waiting save is based on where this one landed; its
             * record says so before this one's goes */
            if (b->state[i] == B_DONE) {
                if (b->ms[i] >= 0) {
                    w->r.blind = 0;
                    w->r.base_ms = b->ms[i];
                    w->r.base_status = b->status[i];
                } else {
                    w->r.blind = 1;
                }
                fs_journal_write(wb->dir, &w->r);
            }
            w->waiting = 0;
            w->due = 0;
        } else if (x->heir && b->state[i] == B_DONE) {
            /* its heir is being journaled (fs_wb_save) and not queued yet */
            struct wb_landed *ld = calloc(1, sizeof *ld);
            char k[32];
            if (ld) {
                ld->blind = b->ms[i] < 0;
                ld->ms = b->ms[i];
                ld->status = b->status[i];
                free(fs_map_del(&wb->landed, seq_key(k, sizeof k, x->r.seq)));
                fs_map_put(&wb->landed, k, ld);
            }
        }
        unlink_entry(wb, x);
        x->next = *gone;
        *gone = x;
        wb->removing++;
    }
    pthread_cond_broadcast(&wb->done_cv);
    pthread_cond_broadcast(&wb->cv); /* promoted saves, for the other thread */
}

/* May @p e go now? (its batch then takes every queued save of its folder) */
static int sendable(const struct wbe *e, double now)
{
    return !e->inflight && !e->waiting && e->due <= now;
}

/* A folder's queued saves go together once the folder is quiet (its newest
 * queued save WB_GATHER old: cp or rsync is done with it, or pauses), or
 * its oldest is WB_MAX_WAIT old, or a whole batch is queued; at once when
 * someone waits (fsync, unmount). @p *at: when it would be, if not now. */
static int folder_ready(const struct fs_wb *wb, const struct wbe *first, double now, double *at)
{
    double newest = first->at;
    size_t n = 0;
    if (!sendable(first, now))
        return 0;
    if (wb->stop || wb->urgent)
        return 1;
    for (const struct wbe *e = first; e; e = e->next)
        if (!e->inflight && !e->waiting && e->r.project_id == first->r.project_id &&
            e->r.folder_id == first->r.folder_id) {
            n++;
            if (e->at > newest)
                newest = e->at;
        }
    *at = newest + WB_GATHER;
    if (first->at + WB_MAX_WAIT < *at)
        *at = first->at + WB_MAX_WAIT;
    if (first->due > *at)
        *at = first->due;
    return n >= WB_BATCH || now >= *at;
}

static void *uploader(void *ud)
{
    struct fs_state *st = ud;
    struct fs_wb *wb = st->wb;
    struct batch b = {0};

    b.v = calloc(WB_BATCH, sizeof *b.v);
    b.state = calloc(WB_BATCH, sizeof *b.state);
    b.ms = calloc(WB_BATCH, sizeof *b.ms);
    b.status = calloc(WB_BATCH, sizeof *b.status);
    if (!b.v || !b.state || !b.ms || !b.status)
        goto out;
    pthread_mutex_lock(&wb->mu);
    for (;;) {
        double now = fs_now(), next = now + 1.0;
        struct wbe *first = NULL, *gone = NULL;

        if (wb->stop && (!wb->head || now >= wb->deadline))
            break;
        {
            /* the oldest sendable save of each folder decides for its
             * folder (a few folders at a time are looked at per pass) */
            long long seen[16][2];
            size_t n_seen = 0;
            for (struct wbe *e = wb->head; e && !first; e = e->next) {
                double at = next;
                size_t k;
                if (e->inflight || e->waiting)
                    continue;
                for (k = 0; k < n_seen; k++)
                    if (seen[k][0] == e->r.project_id && seen[k][1] == e->r.folder_id)
                        break;
                if (k < n_seen)
                    continue;
                if (n_seen < 16) {
                    seen[n_seen][0] = e->r.project_id;
                    seen[n_seen][1] = e->r.folder_id;
                    n_seen++;
                }
                if (folder_ready(wb, e, now, &at))
                    first = e;
                else if (at < next)
                    next = at;
            }
        }
        if (!first) {
            struct timespec ts;
            if (wb->stop && next > wb->deadline)
                next = wb->deadline;
            {
                double real;
                struct timespec rt;
                clock_gettime(CLOCK_REALTIME, &rt);
                real = rt.tv_sec + rt.tv_nsec / 1e9 + (next - now);
                if (real < rt.tv_sec + rt.tv_nsec / 1e9 + 0.005)
                    real = rt.tv_sec + rt.tv_nsec / 1e9 + 0.005;
                ts.tv_sec = (time_t)real;
                ts.tv_nsec = (long)((real - (double)ts.tv_sec) * 1e9);
            }
            pthread_cond_timedwait(&wb->cv, &wb->mu, &ts);
            continue;
        }
        b.n = 0;
        for (struct wbe *e = first; e && b.n < WB_BATCH; e = e->next)
            /* every queued save of the folder, also those in backoff: one
             * of them is due, so the server is tried anyway */
            if (!e->inflight && !e->waiting && e->r.project_id == first->r.project_id &&
                e->r.folder_id == first->r.folder_id) {
                e->inflight = 1;
                b.state[b.n] = B_TODO;
                b.ms[b.n] = -1;
                b.status[b.n] = 0;
                b.v[b.n++] = e;
            }
        pthread_mutex_unlock(&wb->mu);
        run_batch(st, &b);
        pthread_mutex_lock(&wb->mu);
        settle(st, &b, &gone);
        pthread_mutex_unlock(&wb->mu);
        size_t n_gone = 0;
        while (gone) {
            struct wbe *x = gone;
            gone = x->next;
            if (x->r.seq)
                fs_journal_remove(wb->dir, x->r.seq);
            for (size_t o = 0; o < x->n_olds; o++)
                fs_journal_remove(wb->dir, x->olds[o].seq);
            entry_free(st, x);
            n_gone++;
        }
        pthread_mutex_lock(&wb->mu);
        /* a waiter (fsync) returns once the landed saves' records are gone */
        wb->removing -= n_gone;
        pthread_cond_broadcast(&wb->done_cv);
    }
    pthread_mutex_unlock(&wb->mu);
out:
    free(b.v);
    free(b.state);
    free(b.ms);
    free(b.status);
    return NULL;
}

/* --------------------------------------------------------- life cycle */

static const struct sa_project *replay_project(struct fs_state *st, long long id)
{
    struct fs_wb *wb = st->wb;
    struct sa_project p, *nv;
    for (size_t i = 0; i < wb->n_projs; i++)
        if (wb->projs[i].id == id)
            return &wb->projs[i];
    memset(&p, 0, sizeof p);
    if (sa_get_project(st->c, id, &p)) {
        sa_project_clear(&p);
        return NULL;
    }
    nv = realloc(wb->projs, (wb->n_projs + 1) * sizeof *nv);
    if (!nv) {
        sa_project_clear(&p);
        return NULL;
    }
    wb->projs = nv;
    wb->projs[wb->n_projs] = p;
    return &wb->projs[wb->n_projs++];
}

static int in_scope(struct fs_state *st, const struct fs_jrec *r)
{
    if (st->level >= 1 && st->src_proj && r->project_id != st->src_proj->p.id)
        return 0;
    if (st->level >= 2 && st->src_fold && r->folder_id != st->src_fold->id)
        return 0;
    return 1;
}

int fs_wb_init(struct fs_state *st, char *err, size_t errlen)
{
    struct fs_wb *wb;
    struct fs_jrec **recs = NULL;
    size_t n = 0, replayed = 0, left = 0;

    if (!st->cfg->writeback)
        return 0;
    wb = calloc(1, sizeof *wb);
    if (!wb) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&wb->mu, NULL);
    pthread_cond_init(&wb->cv, NULL);
    pthread_cond_init(&wb->done_cv, NULL);
    fs_map_init(&wb->errs);
    fs_map_init(&wb->landed);
    wb->lock_fd = -1;
    wb->next_seq = 1;
    st->wb = wb;
    if (fs_journal_open(st, &wb->dir, &wb->lock_fd, err, errlen)) {
        fs_wb_free(st);
        return -1;
    }
    fs_journal_load(wb->dir, &recs, &n);
    for (size_t i = 0; i < n; i++) {
        struct fs_jrec *r = recs[i];
        struct wbe *e = NULL;
        if (r->seq >= wb->next_seq)
            wb->next_seq = r->seq + 1;
        if (!in_scope(st, r) || !(e = calloc(1, sizeof *e)) ||
            !(e->proj = replay_project(st, r->project_id))) {
            free(e);
            left++;
            fs_jrec_clear(r);
            free(r);
            continue;
        }
        {
            /* the last journaled save of an item lands; earlier ones are
             * kept to recognise one whose upload's answer was lost */
            struct wbe *ex = find(wb, r->item_id, 0);
            e->r = *r;
            free(r);
            e->at = 0;
            if (ex) {
                struct wb_old *no = realloc(ex->olds, (ex->n_olds + 1) * sizeof *no);
                unlink_entry(wb, ex);
                e->r.blind = ex->r.blind;
                e->r.base_ms = ex->r.base_ms;
                e->r.base_status = ex->r.base_status;
                if (no) {
                    no[ex->n_olds].seq = ex->r.seq;
                    no[ex->n_olds].data = ex->r.data;
                    no[ex->n_olds++].len = ex->r.len;
                    ex->r.data = NULL;
                    ex->olds = no;
                }
                e->olds = ex->olds;
                e->n_olds = ex->n_olds;
                ex->olds = NULL;
                ex->n_olds = 0;
                entry_free(st, ex);
                replayed--;
            }
            push_entry(wb, e);
            replayed++;
        }
    }
    free(recs);
    if (replayed)
        fs_log(st, LOG_INFO, "write-back: %zu journaled save(s) in %s are replayed", replayed,
               wb->dir);
    if (left)
        fs_log(st, LOG_INFO, "write-back: %zu journaled record(s) in %s are for other "
               "projects or folders (or their project is unreadable) and stay there", left,
               wb->dir);
    if (st->src_proj) {
        /* the close path needs the workflow and makes no request */
        struct sa_workflow w;
        if (fs_workflow(st, &st->src_proj->p, &w) == 0)
            sa_workflow_clear(&w);
    }
    fs_log(st, LOG_INFO, "write-back: journal %s (drain_timeout %.0f s)", wb->dir,
           st->cfg->drain_timeout);
    return 0;
}

void fs_wb_start(struct fs_state *st)
{
    struct fs_wb *wb = st->wb;
    if (!wb || wb->started)
        return;
    for (int i = 0; i < WB_THREADS; i++) {
        if (pthread_create(&wb->th[i], NULL, uploader, st))
            break;
        wb->started++;
    }
    if (!wb->started)
        fs_log(st, LOG_ERR, "write-back: cannot start the uploader; saves stay journaled");
}

void fs_wb_stop(struct fs_state *st)
{
    struct fs_wb *wb = st->wb;
    size_t left = 0;
    if (!wb)
        return;
    pthread_mutex_lock(&wb->mu);
    wb->stop = 1;
    wb->deadline = fs_now() + st->cfg->drain_timeout;
    for (struct wbe *e = wb->head; e; e = e->next) {
        if (e->due > fs_now())
            e->due = fs_now();
        left++;
    }
    pthread_cond_broadcast(&wb->cv);
    pthread_mutex_unlock(&wb->mu);
    if (left)
        fs_log(st, LOG_INFO, "write-back: unmount drains %zu journaled save(s) (at most %.0f s)",
               left, st->cfg->drain_timeout);
    for (int i = 0; i < wb->started; i++)
        pthread_join(wb->th[i], NULL);
    wb->started = 0;
    left = 0;
    pthread_mutex_lock(&wb->mu);
    for (struct wbe *e = wb->head; e; e = e->next)
        left++;
    pthread_mutex_unlock(&wb->mu);
    if (left)
        fs_log(st, LOG_WARNING, "write-back: %zu save(s) not uploaded within drain_timeout; "
               "they stay journaled in %s and the next mount with -o writeback uploads them",
               left, wb->dir);
}

static void free_err(void *ud, const char *k, void *v)
{
    (void)ud;
    (void)k;
    free(v);
}

void fs_wb_free(struct fs_state *st)
{
    struct fs_wb *wb = st->wb;
    if (!wb)
        return;
    while (wb->head) {
        struct wbe *e = wb->head;
        wb->head = e->next;
        entry_free(st, e);
    }
    fs_map_each(&wb->errs, free_err, NULL);
    fs_map_clear(&wb->errs);
    fs_map_each(&wb->landed, free_err, NULL);
    fs_map_clear(&wb->landed);
    for (size_t i = 0; i < wb->n_projs; i++)
        sa_project_clear(&wb->projs[i]);
    free(wb->projs);
    if (wb->lock_fd >= 0)
        close(wb->lock_fd);
    free(wb->dir);
    pthread_mutex_destroy(&wb->mu);
    pthread_cond_destroy(&wb->cv);
    pthread_cond_destroy(&wb->done_cv);
    free(wb);
    st->wb = NULL;
}

/* ------------------------------------------------------ fsync, unlink */

static int pending_for(struct fs_wb *wb, long long item_id, long long folder_id)
{
    if (wb->removing)
        return 1;
    for (struct wbe *e = wb->head; e; e = e->next)
        if ((item_id && e->r.item_id == item_id) ||
            (!item_id && (!folder_id || e->r.folder_id == folder_id)))
            return 1;
    return 0;
}

static int wait_pending(struct fs_state *st, long long item_id, long long folder_id)
{
    struct fs_wb *wb = st->wb;
    int r = 0;
    if (!wb)
        return 0;
    pthread_mutex_lock(&wb->mu);
    wb->urgent++;
    /* someone waits: a save in backoff is tried again now */
    for (struct wbe *e = wb->head; e; e = e->next)
        if ((item_id && e->r.item_id == item_id) ||
            (!item_id && (!folder_id || e->r.folder_id == folder_id)))
            e->due = 0;
    pthread_cond_broadcast(&wb->cv);
    /* bounded by the operation's deadline (contract §6: fsync never hangs,
     * also when the server is down): past it, EIO, the saves stay journaled */
    double left = sa_op_remaining();
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    if (left >= 0) {
        until.tv_sec += (time_t)left;
        until.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
        if (until.tv_nsec >= 1000000000L)
            until.tv_sec++, until.tv_nsec -= 1000000000L;
    }
    while (pending_for(wb, item_id, folder_id) && wb->started) {
        if (left < 0) {
            pthread_cond_wait(&wb->done_cv, &wb->mu);
        } else if (pthread_cond_timedwait(&wb->done_cv, &wb->mu, &until) == ETIMEDOUT &&
                   pending_for(wb, item_id, folder_id)) {
            r = -EIO;
            break;
        }
    }
    wb->urgent--;
    if (r) {
        pthread_mutex_unlock(&wb->mu);
        fs_log(st, LOG_ERR, "fsync: %s %lld still has saves pending after the operation's deadline "
                            "(op_timeout=%g s); they stay journaled and are retried: EIO",
               item_id ? "item" : "folder", item_id ? item_id : folder_id, st->cfg->op_timeout);
        return r;
    }
    if (item_id) {
        char k[32];
        struct wb_err *x;
        key_str(k, sizeof k, item_id);
        x = fs_map_get(&wb->errs, k);
        if (x)
            r = -x->err;
    }
    pthread_mutex_unlock(&wb->mu);
    return r;
}

int fs_wb_wait_item(struct fs_state *st, struct fs_item *it)
{
    return wait_pending(st, it->id, 0);
}

int fs_wb_wait_folder(struct fs_state *st, struct fs_folder *f)
{
    struct fs_wb *wb = st->wb;
    int r;
    if (!wb)
        return 0;
    r = wait_pending(st, 0, f ? f->id : 0);
    if (f && !r) {
        /* an error of an item of this folder (kept until its next save) */
        pthread_mutex_lock(&st->mu);
        for (size_t i = 0; i < f->n_items && !r; i++) {
            char k[32];
            struct wb_err *x;
            key_str(k, sizeof k, f->items[i]->id);
            pthread_mutex_lock(&wb->mu);
            x = fs_map_get(&wb->errs, k);
            if (x)
                r = -x->err;
            pthread_mutex_unlock(&wb->mu);
        }
        pthread_mutex_unlock(&st->mu);
    }
    return r;
}

void fs_wb_cancel(struct fs_state *st, struct fs_item *it, const char *path)
{
    struct fs_wb *wb = st->wb;
    struct wbe *q, *w;
    if (!wb)
        return;
    pthread_mutex_lock(&wb->mu);
    /* ordered after an upload in flight */
    while ((q = find(wb, it->id, 0)) && q->inflight && wb->started)
        pthread_cond_wait(&wb->done_cv, &wb->mu);
    q = find(wb, it->id, 0);
    if (q && q->inflight)
        q = NULL;
    if (q)
        unlink_entry(wb, q);
    w = find(wb, it->id, 1);
    if (w)
        unlink_entry(wb, w);
    clear_err(wb, it->id);
    pthread_cond_broadcast(&wb->done_cv);
    pthread_mutex_unlock(&wb->mu);
    for (int k = 0; k < 2; k++) {
        struct wbe *x = k ? w : q;
        if (!x)
            continue;
        fs_log(st, LOG_WARNING, "%s: unlinked with a journaled save not yet uploaded; the "
               "save is cancelled", path);
        fs_recover_named(st, "unlinked", x->r.pname, x->r.folder,
                         x->r.fname ? x->r.fname : x->r.name, x->r.data, x->r.len);
        if (x->r.seq)
            fs_journal_remove(wb->dir, x->r.seq);
        for (size_t o = 0; o < x->n_olds; o++)
            fs_journal_remove(wb->dir, x->olds[o].seq);
        if (x->ver)
            fs_doc_wb_clear(st, it, x->ver);
        entry_free(st, x);
    }
}

void fs_wb_sync_state(struct fs_state *st, struct fs_item *it, char *buf, size_t n)
{
    struct fs_wb *wb = st->wb;
    char k[32];
    struct wb_err *x;
    if (!wb) {
        snprintf(buf, n, "clean");
        return;
    }
    key_str(k, sizeof k, it->id);
    pthread_mutex_lock(&wb->mu);
    if (find(wb, it->id, 0) || find(wb, it->id, 1))
        snprintf(buf, n, "pending");
    else if ((x = fs_map_get(&wb->errs, k)))
        snprintf(buf, n, "error: %s", x->why);
    else
        snprintf(buf, n, "clean");
    pthread_mutex_unlock(&wb->mu);
}

void fs_wb_counts(struct fs_state *st, uint64_t *pending, uint64_t *failed,
                  uint64_t *conflicted)
{
    struct fs_wb *wb = st->wb;
    *pending = *failed = *conflicted = 0;
    if (!wb)
        return;
    pthread_mutex_lock(&wb->mu);
    for (struct wbe *e = wb->head; e; e = e->next)
        (*pending)++;
    *failed = wb->n_failed;
    *conflicted = wb->n_conflicted;
    pthread_mutex_unlock(&wb->mu);
}
