/** @file
 * Documents and their sizes, keyed by version (item id, updatedAt ms,
 * annotation status). Bytes live in a memory-budgeted LRU; sizes are kept
 * separately and always (so `ls -l` of 50,000 items stays cheap after the
 * first scan even when the bytes were evicted).
 *
 * A getattr that misses a size starts ONE shared bulk fetch of every item
 * of that folder whose size is unknown (sa_download_annotations batches and
 * streams them); concurrent misses wait on the folder's condition variable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"
#include "sa/doc.h"

#define BULK_FIRST 500
#define BULK_CHUNK 2000

static void lru_unlink(struct fs_state *st, struct fs_item *it)
{
    if (!it->in_lru)
        return;
    if (it->lru_prev)
        it->lru_prev->lru_next = it->lru_next;
    else
        st->lru_head = it->lru_next;
    if (it->lru_next)
        it->lru_next->lru_prev = it->lru_prev;
    else
        st->lru_tail = it->lru_prev;
    it->lru_prev = it->lru_next = NULL;
    it->in_lru = 0;
}

static void lru_push(struct fs_state *st, struct fs_item *it)
{
    it->lru_prev = NULL;
    it->lru_next = st->lru_head;
    if (st->lru_head)
        st->lru_head->lru_prev = it;
    st->lru_head = it;
    if (!st->lru_tail)
        st->lru_tail = it;
    it->in_lru = 1;
}

void fs_lru_touch_locked(struct fs_state *st, struct fs_item *it)
{
    if (!it->in_lru)
        return;
    lru_unlink(st, it);
    lru_push(st, it);
}

void fs_doc_drop_locked(struct fs_state *st, struct fs_item *it)
{
    lru_unlink(st, it);
    if (it->doc) {
        st->lru_bytes -= it->doc_len;
        free(it->doc);
        it->doc = NULL;
        it->doc_len = 0;
    }
}

void fs_doc_put_locked(struct fs_state *st, struct fs_item *it, int64_t ms, int status,
                       const char *data, size_t len)
{
    fs_doc_drop_locked(st, it);
    it->has_size = 1;
    it->size = len;
    it->size_ms = ms;
    it->size_status = status;
    if (len > st->lru_budget)
        return;
    it->doc = malloc(len + 1);
    if (!it->doc)
        return;
    memcpy(it->doc, data, len);
    it->doc[len] = 0;
    it->doc_len = len;
    it->doc_ms = ms;
    it->doc_status = status;
    st->lru_bytes += len;
    lru_push(st, it);
    while (st->lru_bytes > st->lru_budget && st->lru_tail && st->lru_tail != it)
        fs_doc_drop_locked(st, st->lru_tail);
}

static int status_name(struct fs_state *st, struct fs_project *p, int value, char *buf,
                       size_t n)
{
    struct sa_workflow w;
    const char *name;
    if (sa_get_workflow(st->c, p->p.id, p->p.workflow_id, &w) == SA_OK &&
        (name = sa_workflow_status_name(&w, value))) {
        snprintf(buf, n, "%s", name);
        sa_workflow_clear(&w);
        return 0;
    }
    sa_workflow_clear(&w);
    snprintf(buf, n, "NotStarted");
    return -1;
}

/* The skeleton for an item the download did not return (pretty, new). */
static int skeleton(struct fs_state *st, struct fs_item *it, char **out, size_t *len)
{
    char sname[128], *raw = NULL, why[256], *iname;
    size_t rl;
    enum sa_err e;
    int status;
    pthread_mutex_lock(&st->mu);
    iname = strdup(it->name ? it->name : "");
    status = it->status;
    pthread_mutex_unlock(&st->mu);
    if (!iname)
        return -ENOMEM;
    status_name(st, it->folder->proj, status, sname, sizeof sname);
    e = sa_doc_skeleton(iname, sname, it->folder->proj->p.id, it->id, &raw, &rl);
    free(iname);
    if (e)
        return -fs_errno(e);
    e = sa_doc_pretty(raw, rl, out, len, why, sizeof why);
    free(raw);
    return e ? -fs_errno(e) : 0;
}

struct one_ctx { long long id; char *out; size_t len; int err; };

static int one_cb(void *ud, long long item_id, const char *json, size_t len)
{
    struct one_ctx *c = ud;
    char why[256];
    if (item_id != c->id || c->out)
        return 0;
    if (sa_doc_pretty(json, len, &c->out, &c->len, why, sizeof why))
        c->err = -EIO;
    return 0;
}

/* Under st->mu: the mount has now served version (ms, status) of @p it. */
static void served_locked(struct fs_item *it, int64_t ms, int status)
{
    it->served = 1;
    it->served_ms = ms;
    it->served_status = status;
}

int fs_doc_get(struct fs_state *st, struct fs_item *it, char **out, size_t *len,
               int mark_served)
{
    int64_t ms;
    int status;
    struct one_ctx c = {0};
    enum sa_err e;
    char *name;
    int r;

    *out = NULL;
    *len = 0;
    pthread_mutex_lock(&st->mu);
    ms = it->ms;
    status = it->status;
    if (it->doc && it->doc_ms == ms && it->doc_status == status) {
        *out = malloc(it->doc_len + 1);
        if (!*out) {
            pthread_mutex_unlock(&st->mu);
            return -ENOMEM;
        }
        memcpy(*out, it->doc, it->doc_len + 1);
        *len = it->doc_len;
        st->own.cache_hits++;
        fs_lru_touch_locked(st, it);
        if (mark_served)
            served_locked(it, ms, status);
        pthread_mutex_unlock(&st->mu);
        return 0;
    }
    st->own.cache_misses++;
    name = strdup(it->name ? it->name : "");  /* a re-list may rename the item */
    pthread_mutex_unlock(&st->mu);
    if (!name)
        return -ENOMEM;

    c.id = it->id;
    e = sa_download_annotations(st->c, it->folder->proj->p.id, it->folder->id, &it->id,
                                (const char *const *)&name, 1, one_cb, &c);
    if (e) {
        free(c.out);
        r = fs_fail(st, "download", name, e);
        free(name);
        return r;
    }
    if (c.err) {
        free(c.out);
        fs_log(st, LOG_ERR, "download %s: the platform sent a document that is not valid JSON",
               name);
        free(name);
        return c.err;
    }
    free(name);
    if (!c.out) {
        int r = skeleton(st, it, &c.out, &c.len);
        if (r)
            return r;
    }
    pthread_mutex_lock(&st->mu);
    /* an upload may have moved the version meanwhile: never replace the
     * bytes of the current version with an older answer */
    if (it->ms == ms && it->status == status)
        fs_doc_put_locked(st, it, ms, status, c.out, c.len);
    if (mark_served)
        served_locked(it, ms, status);
    pthread_mutex_unlock(&st->mu);
    *out = c.out;
    *len = c.len;
    return 0;
}

static int size_known_locked(const struct fs_item *it)
{
    return it->has_size && it->size_ms == it->ms && it->size_status == it->status;
}

struct bulk_ctx {
    struct fs_state *st;
    struct fs_folder *f;
    struct fs_map idx;      /* "%lld" -> index + 1 */
    struct fs_item **items;
    int64_t *ms;
    int *status;
    char *got;
};

static int bulk_cb(void *ud, long long item_id, const char *json, size_t len)
{
    struct bulk_ctx *b = ud;
    char key[32], why[256], *pretty = NULL;
    size_t pl, i;
    void *v;

    snprintf(key, sizeof key, "%lld", item_id);
    v = fs_map_get(&b->idx, key);
    if (!v)
        return 0;
    i = (size_t)(uintptr_t)v - 1;
    if (b->got[i])
        return 0;
    if (sa_doc_pretty(json, len, &pretty, &pl, why, sizeof why))
        return 0;
    b->got[i] = 1;
    pthread_mutex_lock(&b->st->mu);
    if (b->items[i]->ms == b->ms[i] && b->items[i]->status == b->status[i])
        fs_doc_put_locked(b->st, b->items[i], b->ms[i], b->status[i], pretty, pl);
    pthread_cond_broadcast(&b->f->bulk_cv);
    pthread_mutex_unlock(&b->st->mu);
    free(pretty);
    return 0;
}

struct bulk_job {
    struct bulk_ctx b;
    long long *ids;
    const char **names;
    size_t n;
};

static void bulk_job_free(struct bulk_job *j)
{
    if (!j)
        return;
    fs_map_clear(&j->b.idx);
    free(j->b.items);
    free(j->b.ms);
    free(j->b.status);
    free(j->b.got);
    free(j->ids);
    for (size_t i = 0; j->names && i < j->n; i++)
        free((char *)j->names[i]);
    free(j->names);
    free(j);
}

static void bulk_add(struct bulk_job *j, struct fs_item *it)
{
    char key[32];
    size_t n = j->n;
    snprintf(key, sizeof key, "%lld", it->id);
    if (fs_map_get(&j->b.idx, key))
        return;
    j->b.items[n] = it;
    j->b.ms[n] = it->ms;
    j->b.status[n] = it->status;
    j->ids[n] = it->id;
    j->names[n] = strdup(it->name ? it->name : "");
    fs_map_put(&j->b.idx, key, (void *)(uintptr_t)(n + 1));
    j->n++;
}

/* Collect the folder's unknown sizes, @p first at the front (st->mu held). */
static struct bulk_job *bulk_prepare_locked(struct fs_state *st, struct fs_folder *f,
                                            struct fs_item *first)
{
    struct bulk_job *j = calloc(1, sizeof *j);
    size_t cap = f->n_items + 1;

    if (!j)
        return NULL;
    j->b.st = st;
    j->b.f = f;
    fs_map_init(&j->b.idx);
    j->b.items = calloc(cap, sizeof *j->b.items);
    j->b.ms = calloc(cap, sizeof *j->b.ms);
    j->b.status = calloc(cap, sizeof *j->b.status);
    j->b.got = calloc(cap, 1);
    j->ids = calloc(cap, sizeof *j->ids);
    j->names = calloc(cap, sizeof *j->names);
    if (!j->b.items || !j->b.ms || !j->b.status || !j->b.got || !j->ids || !j->names) {
        bulk_job_free(j);
        return NULL;
    }
    if (first->present)
        bulk_add(j, first);
    for (size_t i = 0; i < f->n_items && j->n < cap; i++)
        if (!size_known_locked(f->items[i]))
            bulk_add(j, f->items[i]);
    return j;
}

/* The fetch itself, without st->mu. The first batch is small so that the
 * getattr that started it (its item is first) returns quickly; waiters are
 * woken as each document arrives. */
static void bulk_run(struct bulk_job *j)
{
    struct fs_state *st = j->b.st;
    struct fs_folder *f = j->b.f;
    size_t n = j->n;

    if (n)
        fs_log(st, LOG_DEBUG, "bulk fetch of %zu document(s) in folder %s", n, f->name);
    for (size_t off = 0; off < n;) {
        size_t chunk = off == 0 ? BULK_FIRST : BULK_CHUNK;
        size_t k = n - off < chunk ? n - off : chunk;
        enum sa_err e = sa_download_annotations(st->c, f->proj->p.id, f->id, j->ids + off,
                                                j->names + off, k, bulk_cb, &j->b);
        if (e) {
            fs_fail(st, "bulk download", f->name, e);
            break;
        }
        /* items the stream did not return have the skeleton (api.md §11.4) */
        for (size_t i = off; i < off + k; i++) {
            char *sk = NULL;
            size_t sl;
            if (j->b.got[i] || skeleton(st, j->b.items[i], &sk, &sl))
                continue;
            j->b.got[i] = 1;
            pthread_mutex_lock(&st->mu);
            if (j->b.items[i]->ms == j->b.ms[i] && j->b.items[i]->status == j->b.status[i])
                fs_doc_put_locked(st, j->b.items[i], j->b.ms[i], j->b.status[i], sk, sl);
            pthread_mutex_unlock(&st->mu);
            free(sk);
        }
        pthread_mutex_lock(&st->mu);
        st->own.cache_misses += k;
        pthread_cond_broadcast(&f->bulk_cv);
        pthread_mutex_unlock(&st->mu);
        off += k;
    }
}

static void bulk_finish(struct bulk_job *j)
{
    struct fs_state *st = j->b.st;
    struct fs_folder *f = j->b.f;
    pthread_mutex_lock(&st->mu);
    f->bulk_running = 0;
    pthread_cond_broadcast(&f->bulk_cv);
    st->bulk_threads--;
    pthread_cond_broadcast(&st->bulk_done_cv);
    pthread_mutex_unlock(&st->mu);
    bulk_job_free(j);
}

static void *bulk_thread(void *arg)
{
    bulk_run(arg);
    bulk_finish(arg);
    return NULL;
}

void fs_bulk_wait_all(struct fs_state *st)
{
    pthread_mutex_lock(&st->mu);
    while (st->bulk_threads)
        pthread_cond_wait(&st->bulk_done_cv, &st->mu);
    pthread_mutex_unlock(&st->mu);
}

int fs_doc_size(struct fs_state *st, struct fs_item *it, size_t *size)
{
    struct fs_folder *f = it->folder;
    int tried = 0;

    pthread_mutex_lock(&st->mu);
    for (;;) {
        if (size_known_locked(it)) {
            *size = it->size;
            pthread_mutex_unlock(&st->mu);
            return 0;
        }
        if (f->bulk_running) {
            pthread_cond_wait(&f->bulk_cv, &st->mu);
            continue;
        }
        if (tried || !it->present)
            break;
        tried = 1;
        {
            struct bulk_job *j = bulk_prepare_locked(st, f, it);
            pthread_t t;
            pthread_attr_t a;
            if (!j)
                break;
            f->bulk_running = 1;
            st->bulk_threads++;
            /* a worker, so that the getattr that started it returns as soon
             * as its own document arrived (it is in the first batch) */
            pthread_attr_init(&a);
            pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
            if (pthread_create(&t, &a, bulk_thread, j)) {
                pthread_mutex_unlock(&st->mu);
                bulk_run(j);
                bulk_finish(j);
                pthread_mutex_lock(&st->mu);
            }
            pthread_attr_destroy(&a);
        }
    }
    pthread_mutex_unlock(&st->mu);
    /* not covered by a bulk fetch (version moved, absent item): fetch it alone */
    {
        char *d;
        size_t l;
        int r = fs_doc_get(st, it, &d, &l, 0);
        if (r)
            return r;
        free(d);
        *size = l;
    }
    return 0;
}
