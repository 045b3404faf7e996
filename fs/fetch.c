/** @file
 * Downloads that fill the document store: one item (fs_fetch_one, for
 * opens and saves), and batches for sizes (`ls -l`, `find -size`, rsync's
 * scan): a stat that misses a size queues ONE batch of at most FETCH_BATCH
 * items around it in listing order (the item first, then the ones after it,
 * which a scan stats next); a stat served from a batch's middle asks for the
 * next batch ahead (read-ahead), so a scan streams without one request per
 * file and a single `stat` (cp's look at its destination) costs one batch,
 * not the folder. Batches run in one worker thread per folder; unmount
 * cancels them (st->ds.bg_cancel, also aborting transfers in flight).
 *
 * Read-ahead batches are bigger (FETCH_AHEAD): the client classifies 1000
 * ids a request and streams the server's batches in parallel, so a scan
 * costs the API's minimum of classify calls and stream requests.
 *
 * A document the stream did not return, for an item that exists, is EIO
 * with a log line, never an empty file: the platform returns a skeleton for
 * every item without annotations (api.md §9.2), so a missing one means the
 * answer was cut short.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_i.h"
#include "sa/doc.h"

#define FETCH_BATCH 500   /* the batch a miss waits for: one stream batch of the server's */
#define FETCH_AHEAD 2000  /* read-ahead batches: 2 classify calls, 4 streams in parallel */
#define FETCH_HOLD_MAX 30.0 /* longest wait before a failed folder is fetched again */

struct fs_fetch_job {
    struct fs_fetch_job *next;
    struct fs_item *start;      /* a ref, or NULL: continue at f->ra_next */
    int reread;                 /* also items whose bytes the memory budget dropped */
};

/* Settled: the server answered at least one second after updatedAt. */
static int settled_at(int64_t date_ms, int64_t updated_ms)
{
    return date_ms > 0 && date_ms / 1000 >= updated_ms / 1000 + 1;
}

/* ------------------------------------------------------------ one item */

struct one_ctx { long long id; char *out; size_t len; int bad; };

static int one_cb(void *ud, long long item_id, const char *json, size_t len)
{
    struct one_ctx *c = ud;
    char why[256];
    if (item_id != c->id || c->out)
        return 0;
    if (sa_doc_pretty(json, len, &c->out, &c->len, why, sizeof why))
        c->bad = 1;
    return 0;
}

int fs_fetch_one(struct fs_state *st, struct fs_item *it, int64_t ms, int status, char **out,
                 size_t *len, int *settled)
{
    struct one_ctx c = {.id = it->id};
    char *name = fs_item_name(st, it);
    const char *names[1];
    int64_t first = 0;
    enum sa_err e;
    int r = 0;

    (void)status;
    *out = NULL;
    *len = 0;
    *settled = 0;
    if (!name)
        return -ENOMEM;
    names[0] = name;
    e = sa_download_annotations(st->c, it->folder->proj->p.id, it->folder->id, &it->id, names,
                                1, one_cb, &c);
    sa_last_dates(&first, NULL);
    if (e) {
        r = fs_fail(st, "download", name, e);
    } else if (c.bad) {
        fs_log(st, LOG_ERR, "download %s: the platform sent a document that is not valid JSON",
               name);
        r = -EIO;
    } else if (!c.out) {
        /* gone on the platform, or an answer cut short */
        e = fs_item_refetch(st, it);
        if (e == SA_ERR_NOTFOUND) {
            fs_log(st, LOG_DEBUG, "download %s: the item no longer exists", name);
            r = -ENOENT;
        } else {
            fs_log(st, LOG_ERR, "download %s: the platform's stream returned no document for "
                                "this item (an answer cut short); nothing is served (EIO)",
                   name);
            r = -EIO;
        }
    }
    free(name);
    if (r) {
        free(c.out);
        return r;
    }
    *out = c.out;
    *len = c.len;
    *settled = settled_at(first, ms);
    return 0;
}

/* ------------------------------------------------------------- batches */

struct batch {
    struct fs_state *st;
    struct fs_folder *f;
    size_t n;
    struct fs_item **items;     /* refs */
    long long *ids;
    char **names;
    int64_t *ms;
    int *status;
    uint64_t *hash;             /* of what arrived, 0 = nothing */
    struct fs_map idx;          /* "%lld" -> index + 1 */
    /* the disk cache (diskcache.c), when on: */
    unsigned char *disk;        /* served from it */
    char **net;                 /* a copy of what the stream sent, stored after the call
                                   if the call proves it settled */
    size_t *net_len;
    int reread;                 /* a re-read batch: nothing is stored (below) */
    long long *net_ids;         /* what is asked of the stream */
    char **net_names;           /* borrowed from names */
};

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->items[i])
            fs_item_put(b->st, b->items[i]);
        free(b->names[i]);
    }
    free(b->items);
    free(b->ids);
    free(b->names);
    free(b->ms);
    free(b->status);
    free(b->hash);
    fs_map_clear(&b->idx);
    if (b->net)
        for (size_t i = 0; i < b->n; i++)
            free(b->net[i]);
    free(b->net);
    free(b->net_len);
    free(b->disk);
    free(b->net_ids);
    free(b->net_names);
}

static int batch_cb(void *ud, long long item_id, const char *json, size_t len)
{
    struct batch *b = ud;
    struct fs_state *st = b->st;
    char key[32], why[256], *pretty = NULL;
    size_t pl, i;
    void *v;

    if (st->ds.bg_cancel)
        return 1;
    snprintf(key, sizeof key, "%lld", item_id);
    v = fs_map_get(&b->idx, key);
    if (!v)
        return 0;
    i = (size_t)(uintptr_t)v - 1;
    if (b->hash[i] || sa_doc_pretty(json, len, &pretty, &pl, why, sizeof why))
        return 0;
    b->hash[i] = fs_hash(pretty, pl) | 1;
    if (b->net && (b->net[i] = malloc(pl + 1))) {
        memcpy(b->net[i], pretty, pl + 1);
        b->net_len[i] = pl;
    }
    pthread_mutex_lock(&st->ds.mu);
    fs_doc_fill_locked(st, b->items[i], b->ms[i], b->status[i], pretty, pl, 0, 0);
    pthread_mutex_unlock(&st->ds.mu);
    return 0;
}

/* Choose the batch: under st->mu the listing, then under ds.mu the items
 * whose size is unknown and not already being fetched. */
static int batch_collect(struct batch *b, struct fs_fetch_job *j)
{
    struct fs_state *st = b->st;
    struct fs_folder *f = b->f;
    size_t start = 0, scanned = 0, cand_n = 0, max = j->start ? FETCH_BATCH : FETCH_AHEAD;
    size_t bytes = 0;
    struct fs_item **cand;

    pthread_mutex_lock(&st->mu);
    if (j->start) {
        start = f->n_items;
        for (size_t i = 0; i < f->n_items; i++)
            if (f->items[i] == j->start) {
                start = i;
                break;
            }
    } else {
        pthread_mutex_lock(&st->ds.mu);
        start = f->ra_next;
        pthread_mutex_unlock(&st->ds.mu);
    }
    cand = calloc(max + 1, sizeof *cand);
    if (!cand) {
        pthread_mutex_unlock(&st->mu);
        return -ENOMEM;
    }
    /* the starting item even if it left the listing: its stat waits */
    if (j->start) {
        fs_item_get(j->start);
        cand[cand_n++] = j->start;
    }
    pthread_mutex_lock(&st->ds.mu);
    for (size_t i = start; i < f->n_items && cand_n < max; i++, scanned++) {
        struct fs_item *it = f->items[i];
        struct fs_doc *d = &it->doc;
        if (it == j->start || d->fetching || d->batching || !d->has_key ||
            d->tomb != FS_TOMB_NONE ||
            (fs_ver_trusted(st, d->cur) && !(j->reread && !d->cur->data && !d->cur->pins)))
            continue;
        /* a re-read batch takes no more than half the memory budget: the
         * rest would be dropped again before it is read */
        if (j->reread && d->cur && (bytes += d->cur->len) > st->ds.lru_budget / 2)
            break;
        fs_item_get(it);
        cand[cand_n++] = it;
    }
    f->ra_next = start + scanned;
    pthread_mutex_unlock(&st->ds.mu);
    b->items = cand;
    b->n = 0;
    b->ids = calloc(cand_n + 1, sizeof *b->ids);
    b->names = calloc(cand_n + 1, sizeof *b->names);
    b->ms = calloc(cand_n + 1, sizeof *b->ms);
    b->status = calloc(cand_n + 1, sizeof *b->status);
    b->hash = calloc(cand_n + 1, sizeof *b->hash);
    fs_map_init(&b->idx);
    for (size_t i = 0; i < cand_n; i++)
        b->names[i] = strdup(cand[i]->name ? cand[i]->name : "");
    pthread_mutex_unlock(&st->mu);
    b->n = cand_n;
    if (!b->ids || !b->ms || !b->status || !b->hash)
        return -ENOMEM;

    pthread_mutex_lock(&st->ds.mu);
    for (size_t i = 0; i < cand_n; i++) {
        struct fs_doc *d = &cand[i]->doc;
        char key[32];
        b->ids[i] = cand[i]->id;
        b->ms[i] = d->ms;
        b->status[i] = d->status;
        d->batching = 1;
        snprintf(key, sizeof key, "%lld", cand[i]->id);
        fs_map_put(&b->idx, key, (void *)(uintptr_t)(i + 1));
    }
    /* a stat of the middle of this batch asks for the next one */
    if (cand_n >= FETCH_BATCH / 2)
        cand[j->start ? cand_n / 2 : cand_n / 4]->doc.ra_mark = 1;
    pthread_mutex_unlock(&st->ds.mu);
    return 0;
}

/* The disk cache first (no lock held while reading): what it holds for
 * exactly the batch's keys fills the store at once, DISK_CHUNK entries per
 * store lock, so the stat waiting for the batch's first item goes on after
 * one chunk. The rest goes into b->net_ids/net_names; returns how many. */
#define DISK_CHUNK 32
static size_t batch_from_disk(struct batch *b)
{
    struct fs_state *st = b->st;
    size_t nnet = 0;
    char *data[DISK_CHUNK];
    size_t len[DISK_CHUNK];

    b->disk = calloc(b->n, 1);
    /* A re-read batch fetches what the disk no longer holds: the folder is
     * bigger than cache_max, and storing it again would evict what the
     * same scan reads next (LRU under a cyclic scan larger than the cache
     * hits nothing, and each store costs a new inode): what the disk holds
     * stays, the rest is fetched in batches every time. */
    b->net = b->reread ? NULL : calloc(b->n, sizeof *b->net);
    b->net_len = calloc(b->n, sizeof *b->net_len);
    b->net_ids = calloc(b->n, sizeof *b->net_ids);
    b->net_names = calloc(b->n, sizeof *b->net_names);
    if (!b->disk || (!b->net && !b->reread) || !b->net_len || !b->net_ids || !b->net_names) {
        free(b->disk);
        free(b->net);
        free(b->net_len);
        free(b->net_ids);
        free(b->net_names);
        b->disk = NULL;
        b->net = NULL;
        b->net_len = NULL;
        b->net_ids = NULL;
        b->net_names = NULL;
        return b->n; /* all from the stream */
    }
    for (size_t c = 0; c < b->n; c += DISK_CHUNK) {
        size_t end = c + DISK_CHUNK < b->n ? c + DISK_CHUNK : b->n, hits = 0;
        for (size_t i = c; i < end; i++) {
            if (st->ds.bg_cancel || fs_dc_get(st, b->ids[i], b->ms[i], b->status[i],
                                              &data[i - c], &len[i - c])) {
                data[i - c] = NULL;
                b->net_ids[nnet] = b->ids[i];
                b->net_names[nnet++] = b->names[i];
            } else {
                hits++;
            }
        }
        if (!hits)
            continue;
        pthread_mutex_lock(&st->ds.mu);
        for (size_t i = c; i < end; i++)
            if (data[i - c]) {
                b->disk[i] = 1;
                b->hash[i] = 1;
                fs_doc_fill_locked(st, b->items[i], b->ms[i], b->status[i], data[i - c],
                                   len[i - c], 1, 0);
            }
        pthread_cond_broadcast(&st->ds.cv);
        pthread_mutex_unlock(&st->ds.mu);
    }
    return nnet;
}

static void batch_run(struct batch *b)
{
    struct fs_state *st = b->st;
    struct fs_folder *f = b->f;
    size_t got = 0;
    int64_t first = 0;
    enum sa_err e;
    double t0, hold = 0;

    long long *ids;
    char **names;
    size_t nnet;

    if (!b->n)
        return;
    ids = b->ids;
    names = b->names;
    nnet = b->n;
    if (st->dc) {
        nnet = batch_from_disk(b);
        if (b->net_ids) {
            ids = b->net_ids;
            names = b->net_names;
        }
    }
    t0 = fs_now();
    e = SA_OK;
    if (nnet) {
        fs_log(st, LOG_DEBUG, "fetching %zu document(s) of folder %s (%zu from the disk "
                              "cache)", nnet, f->name, b->n - nnet);
        sa_cancel_scope(&st->ds.bg_cancel);
        /* a batch is bounded like the operation waiting for it */
        sa_op_deadline(st->cfg->op_timeout);
        e = sa_download_annotations(st->c, f->proj->p.id, f->id, ids,
                                    (const char *const *)names, nnet, batch_cb, b);
        sa_last_dates(&first, NULL);
        sa_op_deadline(0);
        sa_cancel_scope(NULL);
    }
    pthread_mutex_lock(&st->mu);
    st->own.cache_misses += b->n;
    pthread_mutex_unlock(&st->mu);

    for (size_t i = 0; i < b->n; i++)
        got += b->hash[i] != 0;
    if (!e && got < b->n) {
        /* one line per missing document, so a user finds the file in the
         * log; its stats fail for a second without more lines */
        for (size_t i = 0; i < b->n; i++)
            if (!b->hash[i])
                fs_log(st, LOG_ERR, "download %s/%s: the platform's stream returned no "
                                    "document for this item (%zu of %zu arrived: an answer "
                                    "cut short); EIO until fetched again", f->name,
                       b->names[i], got, b->n);
    }
    pthread_mutex_lock(&st->ds.mu);
    for (size_t i = 0; i < b->n; i++) {
        struct fs_doc *d = &b->items[i]->doc;
        d->batching = 0;
        if (b->disk && b->disk[i]) {
            /* from the disk cache: stored settled */
        } else if (b->hash[i]) {
            /* the whole batch was read after `first`: settled if that is a
             * second past updatedAt */
            if (d->cur && d->cur->ms == b->ms[i] && d->cur->status == b->status[i] &&
                (d->cur->hash | 1) == b->hash[i] && settled_at(first, b->ms[i]))
                d->cur->settled = 1;
        } else if (d->has_key && d->ms == b->ms[i] && d->status == b->status[i]) {
            d->fetch_err = e && e != SA_ERR_CANCELLED ? fs_errno(e) : EIO;
            d->fetch_err_at = fs_now();
        }
    }
    if (e && e != SA_ERR_CANCELLED) {
        /* the folder's next attempt is due after as long as this one took
         * (1 s to FETCH_HOLD_MAX): until then its other stats fail at once */
        hold = fs_now() - t0;
        hold = hold < 1 ? 1 : hold > FETCH_HOLD_MAX ? FETCH_HOLD_MAX : hold;
        f->fetch_err = fs_errno(e);
        f->fetch_err_until = fs_now() + hold;
    } else if (!e) {
        f->fetch_err = 0;
    }
    pthread_cond_broadcast(&st->ds.cv);
    pthread_mutex_unlock(&st->ds.mu);
    /* what the stream sent, settled by the call's first Date, to the disk */
    if (b->net)
        for (size_t i = 0; i < b->n; i++)
            if (b->net[i]) {
                fs_dc_put_async(st, b->ids[i], b->ms[i], b->status[i], b->net[i],
                                b->net_len[i], settled_at(first, b->ms[i]));
                b->net[i] = NULL;
            }
    if (e && e != SA_ERR_CANCELLED) {
        char what[64];
        snprintf(what, sizeof what, "fetch %zu documents of folder", b->n);
        fs_fail(st, what, f->name, e);
        fs_log(st, LOG_ERR, "folder %s: the stats of its files whose size is not known fail "
                            "at once (%s) for %.1f s, then the next fetch is tried",
               f->name, strerror(fs_errno(e)), hold);
    }
}

int fs_fetch_folder_err_locked(struct fs_state *st, struct fs_folder *f)
{
    (void)st;
    return f->fetch_err && fs_now() < f->fetch_err_until ? f->fetch_err : 0;
}

int fs_fetch_wait_locked(struct fs_state *st, long long id)
{
    double left = sa_op_remaining();
    struct timespec ts;
    if (left < 0) {
        pthread_cond_wait(&st->ds.cv, &st->ds.mu);
        return 0;
    }
    if (left <= 0) {
        fs_log(st, LOG_ERR, "item %lld: the operation's deadline (op_timeout=%g s) passed while "
                            "waiting for its document: EIO",
               id, st->cfg->op_timeout);
        return -EIO;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)left;
    ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&st->ds.cv, &st->ds.mu, &ts);
    return 0;
}

struct worker_arg { struct fs_state *st; struct fs_folder *f; };

static void *worker(void *arg)
{
    struct worker_arg *wa = arg;
    struct fs_state *st = wa->st;
    struct fs_folder *f = wa->f;

    free(wa);
    pthread_mutex_lock(&st->ds.mu);
    while (f->jobs) {
        struct fs_fetch_job *j = f->jobs;
        struct batch b = {.st = st, .f = f, .reread = j->reread};
        f->jobs = j->next;
        if (!f->jobs)
            f->jobs_tail = NULL;
        pthread_mutex_unlock(&st->ds.mu);
        if (!st->ds.bg_cancel && batch_collect(&b, j) == 0)
            batch_run(&b);
        else if (j->start) {
            pthread_mutex_lock(&st->ds.mu);
            j->start->doc.batching = 0;
            pthread_cond_broadcast(&st->ds.cv);
            pthread_mutex_unlock(&st->ds.mu);
        }
        batch_free(&b);
        if (j->start)
            fs_item_put(st, j->start);
        free(j);
        pthread_mutex_lock(&st->ds.mu);
    }
    f->fetch_running = 0;
    st->ds.fetchers--;
    pthread_cond_broadcast(&st->ds.cv);
    pthread_mutex_unlock(&st->ds.mu);
    /* the folder's batches are done: give back what the evicted
     * documents' buffers left free (no lock held) */
    malloc_trim(0);
    return NULL;
}

static void enqueue_locked(struct fs_state *st, struct fs_folder *f, struct fs_fetch_job *j)
{
    if (f->jobs_tail)
        f->jobs_tail->next = j;
    else
        f->jobs = j;
    f->jobs_tail = j;
    if (!f->fetch_running) {
        struct worker_arg *wa = malloc(sizeof *wa);
        pthread_attr_t a;
        pthread_t t;
        if (!wa)
            return;
        wa->st = st;
        wa->f = f;
        f->fetch_running = 1;
        st->ds.fetchers++;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, worker, wa)) {
            f->fetch_running = 0;
            st->ds.fetchers--;
            free(wa);
        }
        pthread_attr_destroy(&a);
    }
}

static void batch_job_locked(struct fs_state *st, struct fs_item *it, int reread)
{
    struct fs_fetch_job *j;
    if (st->ds.bg_cancel)
        return;
    j = calloc(1, sizeof *j);
    if (!j)
        return;
    fs_item_get(it);
    j->start = it;
    j->reread = reread;
    it->doc.batching = 1;
    enqueue_locked(st, it->folder, j);
    if (!it->folder->fetch_running) {
        /* no worker: the caller fetches the item alone */
        it->doc.batching = 0;
    }
}

void fs_fetch_batch_locked(struct fs_state *st, struct fs_item *it)
{
    batch_job_locked(st, it, 0);
}

void fs_fetch_reread_locked(struct fs_state *st, struct fs_item *it)
{
    batch_job_locked(st, it, 1);
}

void fs_fetch_readahead_locked(struct fs_state *st, struct fs_folder *f)
{
    struct fs_fetch_job *j;
    if (st->ds.bg_cancel || f->jobs)
        return;
    j = calloc(1, sizeof *j);
    if (j)
        enqueue_locked(st, f, j);
}

void fs_fetch_stop(struct fs_state *st)
{
    struct timespec ts;
    pthread_mutex_lock(&st->ds.mu);
    st->ds.bg_cancel = 1;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    while (st->ds.fetchers)
        if (pthread_cond_timedwait(&st->ds.cv, &st->ds.mu, &ts)) {
            fs_log(st, LOG_WARNING, "%d background fetch(es) still running at unmount",
                   st->ds.fetchers);
            break;
        }
    pthread_mutex_unlock(&st->ds.mu);
}
