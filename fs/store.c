/** @file
 * The document store: the one owner of an item's bytes, size, version and
 * what the kernel was last given (docs/architecture.md).
 *
 * Per item (struct fs_doc, guarded by st->ds.mu, never st->mu): the
 * platform's version key as last learned, the version served for it
 * (struct fs_ver: immutable bytes, reference-counted), the one download in
 * flight that concurrent readers wait for, the version last served, the
 * open handles and their lengths, the unsaved-write state stat shows, the
 * unlink state (unlink.c) and the size the kernel may cache.
 *
 * Versions: `refs` keep a version's identity (key, length, hash), `pins`
 * keep its bytes. Unpinned bytes live in an LRU under a memory budget;
 * evicted ones keep their identity, so a size stays known. A version is
 * *settled* when it was fetched at server time >= its updatedAt + 1 s: with
 * whole-second updatedAt, only then does its key prove its bytes. Unsettled
 * versions (fetched within their updatedAt's second, or computed locally
 * after this mount's own change) are trusted for max(cache_timeout, 1 s)
 * and then fetched again; saves based on them compare content.
 *
 * Seams for the next tiers: fs_doc_get is the one read path, and asks the
 * tier below memory (struct fs_tier: the on-disk cache) before the network;
 * fs_doc_fill_locked is the one entry point for bytes; fs_doc_own_change
 * installs locally computed versions (write-back's journaled saves will be
 * such versions, shown by stat and read before they land).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

/* A stat of an item whose fetch just failed fails at once for this long
 * (the next attempt is due then), so `ls -l` of a folder whose batch failed
 * does not retry file by file; an open always retries. */
#define FETCH_ERR_HOLD 1.0

/* A word at a time (the byte-wise FNV-1a this replaced was 16 % of the
 * daemon's CPU on a warm `cp -r`, three passes per document): each step is
 * a bijection of h for a given word, so documents of one length that
 * differ in one word never collide; the disk cache's checksum too. */
uint64_t fs_hash(const char *p, size_t n)
{
    const uint64_t k = 0x9e3779b97f4a7c15ull;
    uint64_t h = 1469598103934665603ull ^ (n * k);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * k;
        h ^= h >> 31;
    }
    for (; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

double fs_trust_window(const struct fs_state *st)
{
    return st->cfg->cache_timeout > FS_LOOKUP_MIN_TTL ? st->cfg->cache_timeout
                                                      : FS_LOOKUP_MIN_TTL;
}

int fs_ver_trusted(const struct fs_state *st, const struct fs_ver *v)
{
    return v && (v->settled || fs_now() - v->made < fs_trust_window(st));
}

/* Bytes to serve to an open: an unsettled download is trusted for
 * cache_timeout exactly (0: every open fetches again until the version is
 * a second old), this mount's own computed bytes for the trust window. */
static int open_fresh(const struct fs_state *st, const struct fs_ver *v)
{
    double ttl = v->derived ? fs_trust_window(st) : st->cfg->cache_timeout;
    return v->settled || fs_now() - v->made < ttl;
}

void fs_store_init(struct fs_state *st)
{
    pthread_mutex_init(&st->ds.mu, NULL);
    pthread_cond_init(&st->ds.cv, NULL);
    pthread_cond_init(&st->ds.del_cv, NULL);
}

void fs_store_free(struct fs_state *st)
{
    pthread_mutex_destroy(&st->ds.mu);
    pthread_cond_destroy(&st->ds.cv);
    pthread_cond_destroy(&st->ds.del_cv);
}

/* ----------------------------------------------------------------- LRU */

static void lru_unlink(struct fs_store *ds, struct fs_ver *v)
{
    if (!v->in_lru)
        return;
    if (v->lru_prev)
        v->lru_prev->lru_next = v->lru_next;
    else
        ds->lru_head = v->lru_next;
    if (v->lru_next)
        v->lru_next->lru_prev = v->lru_prev;
    else
        ds->lru_tail = v->lru_prev;
    v->lru_prev = v->lru_next = NULL;
    v->in_lru = 0;
}

static void lru_push(struct fs_store *ds, struct fs_ver *v)
{
    if (v->in_lru)
        lru_unlink(ds, v);
    v->lru_prev = NULL;
    v->lru_next = ds->lru_head;
    if (ds->lru_head)
        ds->lru_head->lru_prev = v;
    ds->lru_head = v;
    if (!ds->lru_tail)
        ds->lru_tail = v;
    v->in_lru = 1;
}

static void drop_data(struct fs_store *ds, struct fs_ver *v)
{
    lru_unlink(ds, v);
    if (v->data) {
        ds->lru_bytes -= v->len;
        free(v->data);
        v->data = NULL;
    }
}

/* Evict unpinned bytes, oldest first, until under budget. */
static void evict(struct fs_store *ds, const struct fs_ver *keep)
{
    struct fs_ver *v = ds->lru_tail;
    while (ds->lru_bytes > ds->lru_budget && v) {
        struct fs_ver *prev = v->lru_prev;
        if (!v->pins && v != keep)
            drop_data(ds, v);
        v = prev;
    }
}

void fs_store_stats(struct fs_state *st, size_t *bytes, size_t *budget)
{
    pthread_mutex_lock(&st->ds.mu);
    *bytes = st->ds.lru_bytes;
    *budget = st->ds.lru_budget;
    pthread_mutex_unlock(&st->ds.mu);
}

/* ------------------------------------------------------------ versions */

static struct fs_ver *ver_new_hashed(struct fs_store *ds, int64_t ms, int status, char *data,
                                     size_t len, uint64_t hash, int settled, int derived)
{
    struct fs_ver *v = calloc(1, sizeof *v);
    if (!v) {
        free(data);
        return NULL;
    }
    v->refs = 1;
    v->ms = ms;
    v->status = status;
    v->data = data;
    v->len = len;
    v->hash = hash;
    v->settled = settled;
    v->derived = derived;
    v->made = fs_now();
    ds->lru_bytes += len;
    lru_push(ds, v);
    return v;
}

static struct fs_ver *ver_new(struct fs_store *ds, int64_t ms, int status, char *data,
                              size_t len, int settled, int derived)
{
    return ver_new_hashed(ds, ms, status, data, len, fs_hash(data, len), settled, derived);
}

void fs_ver_ref_locked(struct fs_ver *v)
{
    if (v)
        v->refs++;
}

void fs_ver_unref_locked(struct fs_state *st, struct fs_ver *v)
{
    while (v && --v->refs == 0) {
        struct fs_ver *next = v->next;
        drop_data(&st->ds, v);
        free(v);
        v = next;
    }
}

void fs_ver_unref(struct fs_state *st, struct fs_ver *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&st->ds.mu);
    fs_ver_unref_locked(st, v);
    pthread_mutex_unlock(&st->ds.mu);
}

void fs_ver_unpin(struct fs_state *st, struct fs_ver *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&st->ds.mu);
    if (v->pins > 0)
        v->pins--;
    if (!v->pins)
        evict(&st->ds, NULL);
    fs_ver_unref_locked(st, v);
    pthread_mutex_unlock(&st->ds.mu);
}

struct fs_ver *fs_ver_last_locked(struct fs_ver *v)
{
    while (v && v->next)
        v = v->next;
    return v;
}

/* ---------------------------------------------------------------- keys */

static int key_is(const struct fs_doc *d, int64_t ms, int status)
{
    return d->has_key && d->ms == ms && d->status == status;
}

static int kernel_holds(const struct fs_state *st, const struct fs_doc *d)
{
    return d->k_valid && fs_now() - d->k_at <= st->attr_timeout + 0.5;
}

int fs_doc_learn(struct fs_state *st, struct fs_item *it, int64_t ms, int status, double t0)
{
    struct fs_doc *d = &it->doc;
    int stale = 0;

    pthread_mutex_lock(&st->ds.mu);
    if (d->has_key && d->key_at > t0) {
        /* an answer older than what we know (a listing that started before
         * our own upload finished) never rolls a version back */
        pthread_mutex_unlock(&st->ds.mu);
        return 0;
    }
    d->key_at = t0;
    if (!key_is(d, ms, status)) {
        d->has_key = 1;
        d->ms = ms;
        d->status = status;
        if (d->cur && (d->cur->ms != ms || d->cur->status != status)) {
            fs_ver_unref_locked(st, d->cur);
            d->cur = NULL;
        }
        d->fetch_err = 0;
        if (d->tomb == FS_TOMB_GONE && (ms != d->hide_ms || status != d->hide_status)) {
            /* a colleague annotated it after our delete: the name shows again */
            d->tomb = FS_TOMB_NONE;
            fs_ver_unref_locked(st, d->tomb_pre);
            d->tomb_pre = NULL;
        }
        if (kernel_holds(st, d)) {
            stale = 1;
            d->k_valid = 0;
        }
        pthread_cond_broadcast(&st->ds.cv);
    }
    pthread_mutex_unlock(&st->ds.mu);
    return stale;
}

int fs_doc_key(struct fs_state *st, struct fs_item *it, int64_t *ms, int *status)
{
    int has;
    pthread_mutex_lock(&st->ds.mu);
    has = it->doc.has_key;
    *ms = it->doc.ms;
    *status = it->doc.status;
    pthread_mutex_unlock(&st->ds.mu);
    return has ? 0 : -ENOENT;
}

int fs_doc_shown_status(struct fs_state *st, struct fs_item *it, int *status)
{
    int has;
    pthread_mutex_lock(&st->ds.mu);
    has = it->doc.has_key || it->doc.wb;
    *status = it->doc.wb ? it->doc.wb_status : it->doc.status;
    pthread_mutex_unlock(&st->ds.mu);
    return has ? 0 : -ENOENT;
}

int fs_doc_hidden(struct fs_state *st, struct fs_item *it)
{
    int h;
    pthread_mutex_lock(&st->ds.mu);
    h = it->doc.tomb != FS_TOMB_NONE;
    pthread_mutex_unlock(&st->ds.mu);
    return h;
}

void fs_doc_free(struct fs_state *st, struct fs_item *it)
{
    struct fs_doc *d = &it->doc;
    pthread_mutex_lock(&st->ds.mu);
    fs_ver_unref_locked(st, d->cur);
    fs_ver_unref_locked(st, d->served);
    fs_ver_unref_locked(st, d->tomb_pre);
    if (d->wb) {
        if (d->wb->pins > 0)
            d->wb->pins--;
        fs_ver_unref_locked(st, d->wb);
    }
    d->cur = d->served = d->tomb_pre = d->wb = NULL;
    free(d->pending_status);
    d->pending_status = NULL;
    pthread_mutex_unlock(&st->ds.mu);
}

/* --------------------------------------------------------------- bytes */

struct fs_ver *fs_doc_fill_locked(struct fs_state *st, struct fs_item *it, int64_t ms,
                                  int status, char *data, size_t len, int settled,
                                  int derived)
{
    struct fs_doc *d = &it->doc;
    struct fs_ver *v = d->cur;
    uint64_t hash;

    if (!key_is(d, ms, status)) {
        free(data);
        return NULL;
    }
    hash = fs_hash(data, len);
    if (v && v->len == len && v->hash == hash && v->derived == derived) {
        /* the same bytes again: re-attach them, refresh the trust */
        if (!v->data) {
            v->data = data;
            st->ds.lru_bytes += len;
        } else {
            free(data);
        }
        if (settled)
            v->settled = 1;
        v->made = fs_now();
        lru_push(&st->ds, v);
        evict(&st->ds, v);
        pthread_cond_broadcast(&st->ds.cv);
        return v;
    }
    v = ver_new_hashed(&st->ds, ms, status, data, len, hash, settled, derived);
    if (!v)
        return NULL;
    fs_ver_unref_locked(st, d->cur);
    d->cur = v;
    d->fetch_err = 0;
    evict(&st->ds, v);
    pthread_cond_broadcast(&st->ds.cv);
    return v;
}

static void serve_locked(struct fs_state *st, struct fs_doc *d, struct fs_ver *v)
{
    if (d->served == v)
        return;
    fs_ver_ref_locked(v);
    fs_ver_unref_locked(st, d->served);
    d->served = v;
}

static int recent_err(const struct fs_doc *d)
{
    return d->fetch_err && fs_now() - d->fetch_err_at < FETCH_ERR_HOLD;
}

/* Hand @p v to fs_doc_get's caller: pinned and referenced, the served
 * version if asked; unlocks the store. */
static int hand_out_unlock(struct fs_state *st, struct fs_doc *d, struct fs_ver *v,
                           int mark_served, struct fs_ver **out)
{
    v->pins++;
    v->refs++;
    if (mark_served)
        serve_locked(st, d, v);
    pthread_mutex_unlock(&st->ds.mu);
    *out = v;
    return 0;
}

int fs_doc_get(struct fs_state *st, struct fs_item *it, int fresh, int mark_served,
               struct fs_ver **out)
{
    struct fs_doc *d = &it->doc;
    int tries = 0, reread = 0, r;

    *out = NULL;
    pthread_mutex_lock(&st->ds.mu);
    for (;;) {
        struct fs_ver *v = d->cur;
        int64_t ms;
        int status, settled;
        char *data;
        size_t len;

        if (d->wb && d->wb->data) {
            /* a journaled save not yet landed (-o writeback): its final form */
            return hand_out_unlock(st, d, d->wb, mark_served, out);
        }
        if (!d->has_key) {
            pthread_mutex_unlock(&st->ds.mu);
            return -ENOENT;
        }
        if (v && v->data && (fresh ? v->settled : open_fresh(st, v))) {
            lru_push(&st->ds, v);
            hand_out_unlock(st, d, v, mark_served, out);
            pthread_mutex_lock(&st->mu);
            st->own.cache_hits++;
            pthread_mutex_unlock(&st->mu);
            return 0;
        }
        if (d->fetching || (d->batching && !fresh)) {
            if ((r = fs_fetch_wait_locked(st, it->id))) {
                pthread_mutex_unlock(&st->ds.mu);
                return r;
            }
            continue;
        }
        /* an open retries a failed fetch at once (stats do not: fs_doc_size) */
        d->fetching = 1;
        ms = d->ms;
        status = d->status;
        pthread_mutex_unlock(&st->ds.mu);

        pthread_mutex_lock(&st->mu);
        st->own.cache_misses++;
        pthread_mutex_unlock(&st->mu);
        r = -ENOENT;
        if (st->ds.tier) {
            /* the tier below (the disk cache) for exactly this key; a save
             * asking for a fresh copy takes only settled bytes */
            r = st->ds.tier->get(st->ds.tier->ud, it->id, ms, status, &data, &len, &settled);
            if (!r && fresh && !settled) {
                free(data);
                r = -ENOENT;
            }
        }
        if (r && !fresh && !reread) {
            /* bytes the memory budget dropped, not on disk: a batch of this
             * item and its dropped neighbours (a re-read of a folder bigger
             * than mem_max costs batches, not a request per file) */
            pthread_mutex_lock(&st->ds.mu);
            reread = 1;
            if (d->cur && !d->cur->data && d->cur->ms == ms && d->cur->status == status &&
                fs_ver_trusted(st, d->cur)) {
                d->fetching = 0;
                fs_fetch_reread_locked(st, it);
                if (d->batching) {
                    pthread_cond_broadcast(&st->ds.cv);
                    continue;
                }
                d->fetching = 1;
            }
            pthread_mutex_unlock(&st->ds.mu);
        }
        if (r) {
            r = fs_fetch_one(st, it, ms, status, &data, &len, &settled);
            if (!r && st->ds.tier)
                st->ds.tier->put(st->ds.tier->ud, it->id, ms, status, data, len, settled);
        }

        pthread_mutex_lock(&st->ds.mu);
        d->fetching = 0;
        pthread_cond_broadcast(&st->ds.cv);
        if (r) {
            d->fetch_err = -r;
            d->fetch_err_at = fs_now();
            pthread_mutex_unlock(&st->ds.mu);
            return r;
        }
        v = fs_doc_fill_locked(st, it, ms, status, data, len, settled, 0);
        if (!v) {
            /* the key moved while we downloaded: fetch the new one */
            if (++tries < 3)
                continue;
            pthread_mutex_unlock(&st->ds.mu);
            return -EIO;
        }
        return hand_out_unlock(st, d, v, mark_served, out);
    }
}

ssize_t fs_doc_size_known(struct fs_state *st, struct fs_item *it)
{
    ssize_t n = -1;
    pthread_mutex_lock(&st->ds.mu);
    if (it->doc.wb)
        n = (ssize_t)it->doc.wb->len;
    else if (fs_ver_trusted(st, it->doc.cur))
        n = (ssize_t)it->doc.cur->len;
    pthread_mutex_unlock(&st->ds.mu);
    return n;
}

int fs_doc_size(struct fs_state *st, struct fs_item *it, size_t *size)
{
    struct fs_doc *d = &it->doc;
    int queued = 0, r = 0;
    struct fs_ver *v;

    pthread_mutex_lock(&st->ds.mu);
    for (;;) {
        if (d->wb) {
            *size = d->wb->len;
            pthread_mutex_unlock(&st->ds.mu);
            return 0;
        }
        if (fs_ver_trusted(st, d->cur)) {
            *size = d->cur->len;
            if (d->ra_mark) {
                d->ra_mark = 0;
                fs_fetch_readahead_locked(st, it->folder);
            }
            pthread_mutex_unlock(&st->ds.mu);
            return 0;
        }
        if (d->fetching || d->batching) {
            if ((r = fs_fetch_wait_locked(st, it->id)))
                break;
            continue;
        }
        if (recent_err(d)) {
            r = -d->fetch_err;
            break;
        }
        /* the folder's batch failed: no request per file until it is due */
        if ((r = -fs_fetch_folder_err_locked(st, it->folder)))
            break;
        if (queued)
            break;
        queued = 1;
        fs_fetch_batch_locked(st, it);
        if (!d->batching)
            break;
    }
    pthread_mutex_unlock(&st->ds.mu);
    if (r)
        return r;
    /* not covered by a batch (absent item, key moved): fetch it alone */
    r = fs_doc_get(st, it, 0, 0, &v);
    if (r)
        return r;
    *size = v->len;
    fs_ver_unpin(st, v);
    return 0;
}

/* --------------------------------------------------------- open handles */

void fs_doc_open_add(struct fs_state *st, struct fs_handle *h, size_t len)
{
    struct fs_doc *d = &h->item->doc;
    pthread_mutex_lock(&st->ds.mu);
    h->olen = len;
    h->odirty = 0;
    h->onext = d->open;
    d->open = h;
    pthread_mutex_unlock(&st->ds.mu);
}

void fs_doc_open_del(struct fs_state *st, struct fs_handle *h)
{
    struct fs_doc *d = &h->item->doc;
    pthread_mutex_lock(&st->ds.mu);
    for (struct fs_handle **pp = &d->open; *pp; pp = &(*pp)->onext)
        if (*pp == h) {
            *pp = h->onext;
            break;
        }
    h->onext = NULL;
    pthread_mutex_unlock(&st->ds.mu);
}

void fs_doc_open_len(struct fs_state *st, struct fs_handle *h, size_t len, int dirty)
{
    pthread_mutex_lock(&st->ds.mu);
    h->olen = len;
    if (dirty)
        h->owseq = ++st->ds.wseq;
    h->odirty = dirty;
    pthread_mutex_unlock(&st->ds.mu);
}

static int dirty_len_locked(const struct fs_doc *d, size_t *len)
{
    uint64_t best = 0;
    int any = 0;
    for (const struct fs_handle *h = d->open; h; h = h->onext)
        if (h->odirty && (!any || h->owseq > best)) {
            any = 1;
            best = h->owseq;
            *len = h->olen;
        }
    return any;
}

int fs_doc_dirty_len(struct fs_state *st, struct fs_item *it, size_t *len)
{
    int any;
    pthread_mutex_lock(&st->ds.mu);
    any = dirty_len_locked(&it->doc, len);
    pthread_mutex_unlock(&st->ds.mu);
    return any;
}

/* Do open handles (or the current version) disagree with @p size? */
static int lengths_differ_locked(const struct fs_doc *d, size_t size)
{
    for (const struct fs_handle *h = d->open; h; h = h->onext)
        if (h->olen != size)
            return 1;
    return 0;
}

int fs_doc_kernel_given(struct fs_state *st, struct fs_item *it, size_t size)
{
    struct fs_doc *d = &it->doc;
    int uncacheable;
    pthread_mutex_lock(&st->ds.mu);
    uncacheable = lengths_differ_locked(d, size);
    if (uncacheable) {
        d->k_valid = 0;
    } else {
        d->k_valid = 1;
        d->k_size = size;
        d->k_at = fs_now();
    }
    pthread_mutex_unlock(&st->ds.mu);
    return uncacheable;
}

int fs_doc_kernel_stale(struct fs_state *st, struct fs_item *it, size_t size)
{
    struct fs_doc *d = &it->doc;
    int stale;
    pthread_mutex_lock(&st->ds.mu);
    stale = (kernel_holds(st, d) && d->k_size != size) || lengths_differ_locked(d, size);
    if (stale)
        d->k_valid = 0;
    pthread_mutex_unlock(&st->ds.mu);
    return stale;
}

/* ---------------------------------------------------------------- mtime */

static void ms_to_ts(int64_t ms, struct timespec *ts)
{
    ts->tv_sec = ms / 1000;
    ts->tv_nsec = (ms % 1000) * 1000000;
}

void fs_doc_mtime(struct fs_state *st, struct fs_item *it, struct timespec *ts)
{
    struct fs_doc *d = &it->doc;
    pthread_mutex_lock(&st->ds.mu);
    if (d->wb)
        *ts = d->wb_mtime;
    else if (d->has_mtime && d->mtime_ms == d->ms && d->mtime_status == d->status)
        *ts = d->mtime;
    else
        ms_to_ts(d->ms, ts);
    pthread_mutex_unlock(&st->ds.mu);
}

void fs_doc_set_mtime(struct fs_state *st, struct fs_item *it, const struct timespec *ts)
{
    struct fs_doc *d = &it->doc;
    pthread_mutex_lock(&st->ds.mu);
    if (d->wb)
        d->wb_mtime = *ts; /* the journaled save's, kept when it lands */
    d->has_mtime = 1;
    d->mtime = *ts;
    d->mtime_ms = d->ms;
    d->mtime_status = d->status;
    /* FUSE's setattr of futimens(2) carries no file handle: a time set
     * while a writer has unsaved bytes belongs to its coming save */
    for (const struct fs_handle *h = d->open; h; h = h->onext)
        if (h->odirty) {
            d->has_pending_mtime = 1;
            d->pending_mtime = *ts;
            break;
        }
    pthread_mutex_unlock(&st->ds.mu);
}

int fs_doc_take_pending_mtime(struct fs_state *st, struct fs_item *it, struct timespec *ts)
{
    int has;
    pthread_mutex_lock(&st->ds.mu);
    has = it->doc.has_pending_mtime;
    if (has)
        *ts = it->doc.pending_mtime;
    it->doc.has_pending_mtime = 0;
    pthread_mutex_unlock(&st->ds.mu);
    return has;
}

/* ------------------------------------------------------- own changes */

void fs_doc_serve(struct fs_state *st, struct fs_item *it, struct fs_ver *v)
{
    pthread_mutex_lock(&st->ds.mu);
    serve_locked(st, &it->doc, v);
    pthread_mutex_unlock(&st->ds.mu);
}

/* from's chain ends in @p v (a ref is taken), unless that makes no sense */
static void link_locked(struct fs_ver *from, struct fs_ver *v)
{
    struct fs_ver *last = fs_ver_last_locked(from);
    if (!last || last == v || last->next)
        return;
    for (struct fs_ver *x = v; x; x = x->next)
        if (x == last)
            return; /* would make a cycle */
    v->refs++;
    last->next = v;
}

struct fs_ver *fs_doc_own_change(struct fs_state *st, struct fs_item *it,
                                 struct fs_ver *const *from, size_t n_from, int64_t ms,
                                 int status, char *data, size_t len)
{
    struct fs_ver *v;
    pthread_mutex_lock(&st->ds.mu);
    v = fs_doc_fill_locked(st, it, ms, status, data, len, 0, 1);
    if (v) {
        for (size_t i = 0; i < n_from; i++)
            if (from[i])
                link_locked(from[i], v);
        serve_locked(st, &it->doc, v);
        v->refs++;
    }
    pthread_mutex_unlock(&st->ds.mu);
    return v;
}

struct fs_ver *fs_ver_detached(int64_t ms, int status)
{
    struct fs_ver *v = calloc(1, sizeof *v);
    if (v) {
        v->refs = 1;
        v->ms = ms;
        v->status = status;
        v->made = fs_now();
        v->settled = 1; /* nothing to compare: the key is all a save can check */
    }
    return v;
}

struct fs_ver *fs_doc_cur_ref(struct fs_state *st, struct fs_item *it, int pin)
{
    struct fs_ver *v;
    pthread_mutex_lock(&st->ds.mu);
    v = it->doc.cur;
    if (v) {
        v->refs++;
        if (pin && v->data)
            v->pins++;
        else if (pin)
            v = (v->refs--, NULL);
    }
    pthread_mutex_unlock(&st->ds.mu);
    return v;
}

/* ---------------------------------------------------------- write-back */

struct fs_ver *fs_doc_wb_set(struct fs_state *st, struct fs_item *it, char *data, size_t len,
                             const struct timespec *mtime, int status)
{
    struct fs_doc *d = &it->doc;
    struct fs_ver *v;
    pthread_mutex_lock(&st->ds.mu);
    v = ver_new(&st->ds, d->ms, d->status, data, len, 0, 1);
    if (v) {
        /* pinned while it is the dirty version: never evicted (its bytes
         * are also in the journal, but reads must not wait for the disk) */
        v->pins = 1;
        if (d->wb) {
            link_locked(d->wb, v);
            if (d->wb->pins > 0)
                d->wb->pins--;
            fs_ver_unref_locked(st, d->wb);
        }
        d->wb = v;
        d->wb_mtime = *mtime;
        d->wb_status = status;
        serve_locked(st, d, v);
        v->refs++;
    }
    pthread_cond_broadcast(&st->ds.cv);
    pthread_mutex_unlock(&st->ds.mu);
    return v;
}

static void wb_drop_locked(struct fs_state *st, struct fs_doc *d)
{
    struct fs_ver *v = d->wb;
    d->wb = NULL;
    if (v->pins > 0)
        v->pins--;
    fs_ver_unref_locked(st, v);
}

void fs_doc_wb_landed(struct fs_state *st, struct fs_item *it, struct fs_ver *v, int64_t ms,
                      int status)
{
    struct fs_doc *d = &it->doc;
    char *copy = NULL;

    pthread_mutex_lock(&st->ds.mu);
    if (ms >= 0 && v->data && (copy = malloc(v->len + 1))) {
        memcpy(copy, v->data, v->len + 1);
    }
    pthread_mutex_unlock(&st->ds.mu);
    if (copy) {
        struct fs_ver *from[1] = {v};
        struct fs_ver *nv;
        struct timespec mt;
        pthread_mutex_lock(&st->ds.mu);
        mt = d->wb == v ? d->wb_mtime : d->mtime;
        if (v->next)
            from[0] = NULL; /* a newer journaled save follows it: writers go there */
        pthread_mutex_unlock(&st->ds.mu);
        nv = fs_doc_own_change(st, it, from, 1, ms, status, copy, v->len);
        pthread_mutex_lock(&st->ds.mu);
        if (nv && d->wb == v) {
            /* the landing changes neither the bytes nor the mtime */
            d->has_mtime = 1;
            d->mtime = mt;
            d->mtime_ms = ms;
            d->mtime_status = status;
        }
        fs_ver_unref_locked(st, nv);
        pthread_mutex_unlock(&st->ds.mu);
    }
    pthread_mutex_lock(&st->ds.mu);
    if (d->wb == v)
        wb_drop_locked(st, d);
    pthread_cond_broadcast(&st->ds.cv);
    pthread_mutex_unlock(&st->ds.mu);
}

void fs_doc_wb_clear(struct fs_state *st, struct fs_item *it, struct fs_ver *v)
{
    struct fs_doc *d = &it->doc;
    pthread_mutex_lock(&st->ds.mu);
    if (d->wb && (d->wb == v || !v))
        wb_drop_locked(st, d);
    pthread_cond_broadcast(&st->ds.cv);
    pthread_mutex_unlock(&st->ds.mu);
}
