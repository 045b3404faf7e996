/** @file
 * The on-disk document cache (issue 11; docs/fs-choices.md "Document
 * cache"): the tier below the store's memory. One directory per API URL and
 * team (fs_team_key, the journal's key), `<cache_dir>/<key>/`, default
 * `$XDG_CACHE_HOME/safs/<key>` (`~/.cache/safs/<key>`, `/var/cache/safs/<key>`
 * without HOME); `-o cache_dir=none` turns it off.
 *
 *   <item id>.e    one entry: a 64-byte header, then the document exactly as
 *                  the mount serves it (pretty-printed)
 *   .t.<pid>.<n>   an entry being written (renamed onto its name when whole)
 *
 * Header (little-endian as the machine; a cache is not portable): magic
 * "SAFSDC1\n", item id, updatedAt (ms), status, flags, body length, the
 * checksum of the body (fs_hash, an FNV-style hash a word at a time), 0,
 * the checksum of the 56 bytes before. An entry is used only for
 * exactly the (id, updatedAt, status) asked for, and only whole: a short
 * file, a bad magic or a checksum that does not match is removed, counted
 * (`corrupt`) and the document fetched again.
 *
 * Trust rule: only *settled* documents are stored (downloaded at server
 * time >= updatedAt + 1 s, store.c), because updatedAt has whole seconds:
 * for an unsettled one the key does not prove the bytes.
 *
 * Sharing: every mount of the team on the machine (team, project and folder
 * mounts at once) uses the same directory; writers rename whole files into
 * place, readers verify the checksum, so a reader sees an old entry, a new
 * one or none, never a mix. Bounded by `-o cache_max=` (512 MiB): when the
 * directory holds more (this mount's count, corrected by a scan of the
 * directory at the first store and after every cache_max/8 bytes stored),
 * entries are removed, least recently used first (mtime: a hit older than
 * FS_DC_TOUCH s touches its entry), down to 90 %. Only `<digits>.e` and
 * stale `.t.*` files are ever removed: the journal and the recovery folder
 * live elsewhere.
 *
 * Writes of a batch's documents go to a writer thread (fs_dc_put_async;
 * at most 16 MiB queued: beyond, the batch's worker waits), so a cold `cp -r` does not
 * wait for file creation between stream batches; unmount writes what is
 * queued for at most 5 s.
 *
 * Locks: dc->mu is a leaf (counters, the size estimate, the writer's
 * queue); no file I/O happens under it, and none of the store's or tree's
 * locks is held when this file is called.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fs_i.h"

#define DC_MAGIC "SAFSDC1\n"
#define DC_HDR 64
#define DC_SETTLED 1u
#define FS_DC_TOUCH 600     /* a hit on an entry older than this refreshes its mtime */
#define DC_TMP_STALE 3600   /* a temp file older than this is a crashed writer's */

struct dc_hdr {
    char magic[8];
    int64_t id;
    int64_t ms;
    int32_t status;
    uint32_t flags;
    uint64_t len;
    uint64_t sum;       /* fs_hash of the body */
    uint64_t reserved;  /* 0 */
    uint64_t hsum;      /* fs_hash of the 56 bytes before */
};
_Static_assert(sizeof(struct dc_hdr) == DC_HDR, "the entry header is 64 bytes");

/* A store handed to the writer thread (fs_dc_put_async). */
struct dc_job {
    struct dc_job *next;
    long long id;
    int64_t ms;
    int status;
    char *data;
    size_t len;
};

/* Queued stores beyond this many bytes make the producer wait. */
#define DC_QUEUE_MAX ((size_t)16 << 20)
/* Unmount writes what is queued for at most this long. */
#define DC_DRAIN_SECS 5.0

struct fs_dc {
    char *dir;
    int dfd;                /* the directory, for *at() calls */
    uint64_t max;
    pthread_mutex_t mu;     /* leaf: what follows */
    uint64_t hits, misses, stored, evicted, corrupt;
    uint64_t bytes;         /* estimate of the entries' bytes */
    uint64_t since_scan;    /* bytes stored since the last scan */
    int scanned, pruning;
    unsigned tmp_seq;
    struct fs_tier tier;
    /* the writer thread (under mu): batches' stores leave the fetch path */
    struct dc_job *q_head, *q_tail;
    size_t q_bytes;
    uint64_t dropped;
    int w_started, w_stop, w_busy;
    pthread_cond_t w_cv;        /* the writer waits for work */
    pthread_cond_t q_cv;        /* a producer waits for room */
    pthread_t w_thread;
};

/* ------------------------------------------------------------- helpers */

static uint64_t fnv(const void *p, size_t n)
{
    return fs_hash(p, n);
}

static void entry_name(char *buf, size_t n, long long id)
{
    snprintf(buf, n, "%lld.e", id);
}

static int is_entry_name(const char *s)
{
    const char *p = s;
    while (*p >= '0' && *p <= '9')
        p++;
    return p > s && !strcmp(p, ".e");
}

static char *dc_base(const struct fs_config *cfg)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char *s = NULL, cwd[PATH_MAX];
    int r;
    if (cfg->cache_dir_opt && cfg->cache_dir_opt[0] == '/')
        r = asprintf(&s, "%s", cfg->cache_dir_opt);
    else if (cfg->cache_dir_opt) /* the daemon chdirs to / when it detaches */
        r = getcwd(cwd, sizeof cwd) ? asprintf(&s, "%s/%s", cwd, cfg->cache_dir_opt) : -1;
    else if (xdg && xdg[0] == '/')
        r = asprintf(&s, "%s/safs", xdg);
    else if (home && *home)
        r = asprintf(&s, "%s/.cache/safs", home);
    else
        r = asprintf(&s, "/var/cache/safs");
    return r < 0 ? NULL : s;
}

/* --------------------------------------------------------------- prune */

struct dc_ent { time_t mtime; long nsec; uint64_t size; char name[40]; };

static int ent_cmp(const void *a, const void *b)
{
    const struct dc_ent *x = a, *y = b;
    if (x->mtime != y->mtime)
        return x->mtime < y->mtime ? -1 : 1;
    if (x->nsec != y->nsec)
        return x->nsec < y->nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Scan the directory: the entries' bytes (new estimate), and when over
 * cache_max remove the least recently used down to 90 %. No lock held. */
static void dc_scan(struct fs_state *st, struct fs_dc *dc)
{
    struct dc_ent *v = NULL;
    size_t n = 0, cap = 0, removed = 0;
    uint64_t total = 0, freed = 0;
    time_t now = time(NULL);
    struct dirent *de;
    int fd = openat(dc->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((de = readdir(d))) {
        struct stat sb;
        int entry = is_entry_name(de->d_name);
        if (!entry && strncmp(de->d_name, ".t.", 3))
            continue;
        if (fstatat(dc->dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) || !S_ISREG(sb.st_mode))
            continue;
        if (!entry) {
            if (now - sb.st_mtime > DC_TMP_STALE)
                unlinkat(dc->dfd, de->d_name, 0);
            continue;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 1024;
            struct dc_ent *nv = realloc(v, nc * sizeof *v);
            if (!nv)
                break;
            v = nv;
            cap = nc;
        }
        v[n].mtime = sb.st_mtim.tv_sec;
        v[n].nsec = sb.st_mtim.tv_nsec;
        v[n].size = (uint64_t)sb.st_size;
        {
            size_t nl = strlen(de->d_name);
            if (nl >= sizeof v[n].name)
                continue; /* no id is that long: not ours */
            memcpy(v[n].name, de->d_name, nl + 1);
        }
        total += v[n].size;
        n++;
    }
    closedir(d);
    if (total > dc->max) {
        uint64_t target = dc->max / 10 * 9;
        qsort(v, n, sizeof *v, ent_cmp);
        for (size_t i = 0; i < n && total - freed > target; i++)
            if (!unlinkat(dc->dfd, v[i].name, 0) || errno == ENOENT) {
                freed += v[i].size;
                removed++;
            }
    }
    free(v);
    pthread_mutex_lock(&dc->mu);
    dc->bytes = total - freed;
    dc->since_scan = 0;
    dc->scanned = 1;
    dc->evicted += removed;
    pthread_mutex_unlock(&dc->mu);
    if (removed)
        fs_log(st, LOG_INFO, "document cache %s was over cache_max (%llu bytes): removed its "
                             "%zu least recently used entries (%llu bytes)",
               dc->dir, (unsigned long long)dc->max, removed, (unsigned long long)freed);
}

/* After a store: scan (and prune) when the estimate says so. */
static void dc_maybe_prune(struct fs_state *st, struct fs_dc *dc)
{
    int go;
    pthread_mutex_lock(&dc->mu);
    go = !dc->pruning && (!dc->scanned || dc->bytes > dc->max ||
                          dc->since_scan > dc->max / 8);
    if (go)
        dc->pruning = 1;
    pthread_mutex_unlock(&dc->mu);
    if (!go)
        return;
    dc_scan(st, dc);
    pthread_mutex_lock(&dc->mu);
    dc->pruning = 0;
    pthread_mutex_unlock(&dc->mu);
}

/* ----------------------------------------------------------- get / put */

static void count(struct fs_dc *dc, uint64_t *c)
{
    pthread_mutex_lock(&dc->mu);
    (*c)++;
    pthread_mutex_unlock(&dc->mu);
}

static void corrupt(struct fs_state *st, struct fs_dc *dc, const char *name, const char *why)
{
    fs_log(st, LOG_WARNING, "document cache: entry %s/%s is %s: removed, the document is "
                            "fetched again", dc->dir, name, why);
    unlinkat(dc->dfd, name, 0);
    pthread_mutex_lock(&dc->mu);
    dc->corrupt++;
    dc->misses++;
    pthread_mutex_unlock(&dc->mu);
}

int fs_dc_get(struct fs_state *st, long long id, int64_t ms, int status, char **data,
              size_t *len)
{
    struct fs_dc *dc = st->dc;
    char name[40], *body;
    struct dc_hdr h;
    struct stat sb;
    struct iovec iov[2];
    ssize_t got;
    size_t blen;
    int fd;

    *data = NULL;
    *len = 0;
    if (!dc)
        return -ENOENT;
    entry_name(name, sizeof name, id);
    fd = openat(dc->dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        count(dc, &dc->misses);
        return -ENOENT;
    }
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        count(dc, &dc->misses);
        return -ENOENT;
    }
    if (sb.st_size < DC_HDR) {
        close(fd);
        corrupt(st, dc, name, "shorter than its header");
        return -ENOENT;
    }
    blen = (size_t)sb.st_size - DC_HDR;
    if (blen > st->cfg->max_doc + st->cfg->max_doc / 8 + ((size_t)1 << 20)) {
        close(fd);
        corrupt(st, dc, name, "larger than max_doc allows");
        return -ENOENT;
    }
    body = malloc(blen + 1);
    if (!body) {
        close(fd);
        return -ENOMEM;
    }
    /* header and body in one read */
    iov[0].iov_base = &h;
    iov[0].iov_len = DC_HDR;
    iov[1].iov_base = body;
    iov[1].iov_len = blen;
    got = readv(fd, iov, 2);
    if (got == (ssize_t)(DC_HDR + blen) && sb.st_mtime < time(NULL) - FS_DC_TOUCH)
        futimens(fd, NULL); /* least recently used goes first */
    close(fd);
    if (got != (ssize_t)(DC_HDR + blen) || memcmp(h.magic, DC_MAGIC, 8) ||
        h.hsum != fnv(&h, offsetof(struct dc_hdr, hsum)) || h.id != id) {
        free(body);
        corrupt(st, dc, name, "damaged (header)");
        return -ENOENT;
    }
    if (h.ms != ms || h.status != status || !(h.flags & DC_SETTLED)) {
        /* another version of the item: a miss (the fetch that follows
         * replaces it) */
        free(body);
        count(dc, &dc->misses);
        return -ENOENT;
    }
    if (h.len != blen || h.sum != fnv(body, blen)) {
        free(body);
        corrupt(st, dc, name, "damaged (its body does not match its checksum)");
        return -ENOENT;
    }
    body[blen] = 0;
    *data = body;
    *len = blen;
    count(dc, &dc->hits);
    return 0;
}

void fs_dc_put(struct fs_state *st, long long id, int64_t ms, int status, const char *data,
               size_t len, int settled)
{
    struct fs_dc *dc = st->dc;
    char name[40], tmp[64];
    struct dc_hdr h;
    struct iovec iov[2];
    struct stat old;
    int fd, had;
    unsigned seq;
    ssize_t w;

    if (!dc || !settled)
        return;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, DC_MAGIC, 8);
    h.id = id;
    h.ms = ms;
    h.status = status;
    h.flags = DC_SETTLED;
    h.len = len;
    h.sum = fnv(data, len);
    h.hsum = fnv(&h, offsetof(struct dc_hdr, hsum));
    entry_name(name, sizeof name, id);
    pthread_mutex_lock(&dc->mu);
    seq = ++dc->tmp_seq;
    pthread_mutex_unlock(&dc->mu);
    snprintf(tmp, sizeof tmp, ".t.%ld.%u", (long)getpid(), seq);
    fd = openat(dc->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    iov[0].iov_base = &h;
    iov[0].iov_len = DC_HDR;
    iov[1].iov_base = (void *)data;
    iov[1].iov_len = len;
    w = writev(fd, iov, 2);
    if (close(fd) || w != (ssize_t)(DC_HDR + len)) {
        unlinkat(dc->dfd, tmp, 0);
        return;
    }
    had = fstatat(dc->dfd, name, &old, AT_SYMLINK_NOFOLLOW) == 0;
    if (renameat(dc->dfd, tmp, dc->dfd, name)) {
        unlinkat(dc->dfd, tmp, 0);
        return;
    }
    pthread_mutex_lock(&dc->mu);
    dc->stored++;
    dc->bytes += DC_HDR + len;
    if (had && dc->bytes >= (uint64_t)old.st_size)
        dc->bytes -= (uint64_t)old.st_size;
    dc->since_scan += DC_HDR + len;
    pthread_mutex_unlock(&dc->mu);
    dc_maybe_prune(st, dc);
}

/* -------------------------------------------------------- the writer */

static void *writer(void *arg)
{
    struct fs_state *st = arg;
    struct fs_dc *dc = st->dc;
    double drain_end = 0;

    pthread_mutex_lock(&dc->mu);
    for (;;) {
        struct dc_job *j;
        while (!dc->q_head && !dc->w_stop)
            pthread_cond_wait(&dc->w_cv, &dc->mu);
        if (dc->w_stop && !drain_end)
            drain_end = fs_now() + DC_DRAIN_SECS;
        if (!dc->q_head || (drain_end && fs_now() > drain_end))
            break;
        j = dc->q_head;
        dc->q_head = j->next;
        if (!dc->q_head)
            dc->q_tail = NULL;
        dc->q_bytes -= j->len;
        dc->w_busy = 1;
        pthread_cond_broadcast(&dc->q_cv);
        pthread_mutex_unlock(&dc->mu);
        fs_dc_put(st, j->id, j->ms, j->status, j->data, j->len, 1);
        free(j->data);
        free(j);
        pthread_mutex_lock(&dc->mu);
        dc->w_busy = 0;
    }
    pthread_mutex_unlock(&dc->mu);
    return NULL;
}

void fs_dc_start(struct fs_state *st)
{
    struct fs_dc *dc = st->dc;
    if (!dc)
        return;
    pthread_mutex_lock(&dc->mu);
    dc->w_started = pthread_create(&dc->w_thread, NULL, writer, st) == 0;
    pthread_mutex_unlock(&dc->mu);
}

void fs_dc_stop(struct fs_state *st)
{
    struct fs_dc *dc = st->dc;
    struct dc_job *j;
    int started;
    if (!dc)
        return;
    pthread_mutex_lock(&dc->mu);
    dc->w_stop = 1;
    pthread_cond_broadcast(&dc->q_cv);
    started = dc->w_started;
    dc->w_started = 0;
    pthread_cond_broadcast(&dc->w_cv);
    pthread_mutex_unlock(&dc->mu);
    if (started)
        pthread_join(dc->w_thread, NULL);
    pthread_mutex_lock(&dc->mu);
    while ((j = dc->q_head)) {
        dc->q_head = j->next;
        dc->dropped++;
        free(j->data);
        free(j);
    }
    dc->q_tail = NULL;
    dc->q_bytes = 0;
    pthread_cond_broadcast(&dc->q_cv);
    pthread_mutex_unlock(&dc->mu);
}

void fs_dc_put_async(struct fs_state *st, long long id, int64_t ms, int status, char *data,
                     size_t len, int settled)
{
    struct fs_dc *dc = st->dc;
    struct dc_job *j;
    if (!dc || !settled) {
        free(data);
        return;
    }
    pthread_mutex_lock(&dc->mu);
    if (!dc->w_started || dc->w_stop) {
        pthread_mutex_unlock(&dc->mu);
        fs_dc_put(st, id, ms, status, data, len, settled);
        free(data);
        return;
    }
    /* a full queue holds the batch's worker back (memory stays bounded,
     * and nothing a later read needs is dropped) */
    while (dc->q_bytes && dc->q_bytes + len > DC_QUEUE_MAX && !dc->w_stop)
        pthread_cond_wait(&dc->q_cv, &dc->mu);
    if (dc->w_stop || !(j = calloc(1, sizeof *j))) {
        dc->dropped++;
        pthread_mutex_unlock(&dc->mu);
        free(data);
        return;
    }
    j->id = id;
    j->ms = ms;
    j->status = status;
    j->data = data;
    j->len = len;
    if (dc->q_tail)
        dc->q_tail->next = j;
    else
        dc->q_head = j;
    dc->q_tail = j;
    dc->q_bytes += len;
    pthread_cond_signal(&dc->w_cv);
    pthread_mutex_unlock(&dc->mu);
}

/* ------------------------------------------------------------- the tier */

static int tier_get(void *ud, long long id, int64_t ms, int status, char **data, size_t *len,
                    int *settled)
{
    int r = fs_dc_get(ud, id, ms, status, data, len);
    *settled = r == 0;
    return r;
}

static void tier_put(void *ud, long long id, int64_t ms, int status, const char *data,
                     size_t len, int settled)
{
    fs_dc_put(ud, id, ms, status, data, len, settled);
}

int fs_dc_init(struct fs_state *st)
{
    struct fs_dc *dc;
    char key[64], *base;

    if (st->cfg->cache_none)
        return 0;
    base = dc_base(st->cfg);
    dc = calloc(1, sizeof *dc);
    if (!base || !dc)
        goto fail;
    fs_team_key(st, key, sizeof key);
    if (asprintf(&dc->dir, "%s/%s", base, key) < 0) {
        dc->dir = NULL;
        goto fail;
    }
    if (fs_mkdir_p(dc->dir, 0700) ||
        (dc->dfd = open(dc->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        fs_log(st, LOG_WARNING, "document cache %s: %s; the mount works without it", dc->dir,
               strerror(errno));
        goto fail;
    }
    dc->max = st->cfg->cache_max;
    pthread_mutex_init(&dc->mu, NULL);
    pthread_cond_init(&dc->w_cv, NULL);
    pthread_cond_init(&dc->q_cv, NULL);
    dc->tier.get = tier_get;
    dc->tier.put = tier_put;
    dc->tier.ud = st;
    st->dc = dc;
    st->ds.tier = &dc->tier;
    fs_log(st, LOG_DEBUG, "document cache: %s (cache_max %llu bytes)", dc->dir,
           (unsigned long long)dc->max);
    free(base);
    return 0;
fail:
    if (dc)
        free(dc->dir);
    free(dc);
    free(base);
    return 0;
}

void fs_dc_free(struct fs_state *st)
{
    struct fs_dc *dc = st->dc;
    if (!dc)
        return;
    st->ds.tier = NULL;
    st->dc = NULL;
    fs_dc_stop(st);
    close(dc->dfd);
    pthread_cond_destroy(&dc->w_cv);
    pthread_cond_destroy(&dc->q_cv);
    pthread_mutex_destroy(&dc->mu);
    free(dc->dir);
    free(dc);
}

void fs_dc_stats(struct fs_state *st, struct fs_dc_stats *o)
{
    struct fs_dc *dc = st->dc;
    memset(o, 0, sizeof *o);
    if (!dc)
        return;
    pthread_mutex_lock(&dc->mu);
    o->enabled = 1;
    o->hits = dc->hits;
    o->misses = dc->misses;
    o->stored = dc->stored;
    o->evicted = dc->evicted;
    o->corrupt = dc->corrupt;
    o->bytes = dc->bytes;
    o->max = dc->max;
    o->queued = (uint64_t)dc->w_busy; /* the one being written counts */
    for (const struct dc_job *j = dc->q_head; j; j = j->next)
        o->queued++;
    o->dropped = dc->dropped;
    pthread_mutex_unlock(&dc->mu);
}
