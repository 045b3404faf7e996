/** @file
 * The write-back journal (-o writeback, docs/fs-choices.md "Write-back"):
 * one directory per API URL and team under $XDG_STATE_HOME/safs/
 * (~/.local/state/safs/, /var/lib/safs/ without HOME), never under the
 * cache directory and never evicted.
 *
 *   lock               flock'd by the daemon that owns the journal, until it exits
 *   <n>.log            the log (format 2, below): journaled saves, their
 *                      upload markers and removals, appended
 *
 * A close appends one checksummed record and fdatasyncs the log (one flush;
 * no file is created, no directory fsync'd). The uploader marks uploads
 * (one flush per batch) and removes a record once its save has landed; the
 * next mount replays what is left (uploader.c). No lock of the tree is held
 * here; the format and the lock are described below, at "the format".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>

#include "fs_i.h"

void fs_jrec_clear(struct fs_jrec *r)
{
    if (!r)
        return;
    free(r->name);
    free(r->pname);
    free(r->folder);
    free(r->fname);
    free(r->status);
    free(r->data);
    memset(r, 0, sizeof *r);
}

int fs_mkdir_p(const char *dir, mode_t mode)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, mode) && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, mode) && errno != EEXIST ? -1 : 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int r = 0;
    if (fd < 0)
        return -errno;
    if (fsync(fd))
        r = -errno;
    close(fd);
    return r;
}

/* A log this safs cannot read (another format: a newer safs wrote it) is
 * never replayed nor removed: the mount is refused with the reason. A log
 * shorter than its magic is one a crash left at creation (nothing in it). */
static int foreign_log(const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int bad = 0;
    if (!d)
        return 0;
    while (!bad && (de = readdir(d))) {
        char path[PATH_MAX + 256], m[8];
        size_t n = strspn(de->d_name, "0123456789abcdef");
        int fd;
        ssize_t got;
        if (n != 16 || strcmp(de->d_name + n, ".log"))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        got = pread(fd, m, sizeof m, 0);
        close(fd);
        if (got == (ssize_t)sizeof m && memcmp(m, "safsjnl2", sizeof m)) {
            snprintf(err, errlen, "-o writeback: the journal %s holds %s, which is not a "
                     "journal of format 2 (written by another safs version?); its saves "
                     "are not replayed: mount with the safs that wrote it, or move the "
                     "file away", dir, de->d_name);
            bad = 1;
        }
    }
    closedir(d);
    return bad;
}

void fs_team_key(const struct fs_state *st, char *buf, size_t n)
{
    /* keyed by API URL and team: the same team through another URL is
     * another platform */
    const char *url = st->cfg->url ? st->cfg->url : "";
    snprintf(buf, n, "%08x-team%lld", fs_crc32(url, strlen(url)), st->team_id);
}

int fs_journal_open(struct fs_state *st, char **dir_out, int *fd_out, char *err, size_t errlen)
{
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char base[PATH_MAX - 64], dir[PATH_MAX], lock[PATH_MAX + 8];
    char key[64];
    int fd;

    if (xdg && *xdg == '/')
        snprintf(base, sizeof base, "%s/safs", xdg);
    else if (home && *home)
        snprintf(base, sizeof base, "%s/.local/state/safs", home);
    else
        snprintf(base, sizeof base, "/var/lib/safs");
    fs_team_key(st, key, sizeof key);
    snprintf(dir, sizeof dir, "%s/%s", base, key);
    if (fs_mkdir_p(dir, 0700)) {
        snprintf(err, errlen, "-o writeback: cannot create the journal %s: %s", dir,
                 strerror(errno));
        return -1;
    }
    snprintf(lock, sizeof lock, "%s/lock", dir);
    fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "-o writeback: cannot open %s: %s", lock, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        snprintf(err, errlen, "-o writeback: the journal %s is in use by another safs daemon "
                 "of this team%s%s; one daemon at a time owns it (mount without -o "
                 "writeback, or unmount the other)", dir, *pid ? " (pid " : "",
                 *pid ? pid : "");
        if (*pid)
            strncat(err, ")", errlen - strlen(err) - 1);
        close(fd);
        return -1;
    }
    if (foreign_log(dir, err, errlen)) {
        close(fd);
        return -1;
    }
    {
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) < 0)
            (void)0;
    }
    *dir_out = strdup(dir);
    *fd_out = fd;
    return 0;
}

static char *header(const struct fs_jrec *r)
{
    json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:b,s:I,s:i}",
                          "seq", (json_int_t)r->seq, "project_id", (json_int_t)r->project_id,
                          "folder_id", (json_int_t)r->folder_id, "item_id",
                          (json_int_t)r->item_id, "name", r->name ? r->name : "", "project",
                          r->pname ? r->pname : "", "folder", r->folder ? r->folder : "",
                          "file", r->fname ? r->fname : "", "blind", r->blind, "base_ms",
                          (json_int_t)r->base_ms, "base_status", r->base_status);
    char *s;
    if (!o)
        return NULL;
    if (r->status)
        json_object_set_new(o, "status", json_string(r->status));
    s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    return s;
}

static char *dup_str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? strdup(s) : NULL;
}

/* ------------------------------------------------------------ the format
 *
 * Format 2 (this one): the journal is a log, `<n>.log` (n: 16 hex digits),
 * written only by appending. It starts with the 8 bytes SEG_MAGIC; then
 * records, each
 *
 *   crc32 | magic | type | len | seq | payload      (little-endian; 24 + len bytes)
 *
 * crc32 covers everything after itself (magic .. payload). Types: a save
 * (payload: the JSON header line, "\n", the prepared document), its upload
 * marker, its removal (both without payload). A later save record of the
 * same seq replaces the earlier one (a waiting save rewritten with its new
 * base). After the last record the log holds zeros (written ahead, 1 MiB
 * at a time, so an append's flush is of data only). A close appends one
 * record and fdatasyncs the log: one flush, no file created, no directory
 * fsync. A crash can only tear the tail (a
 * record whose close had not returned; every returned one and everything
 * before it was flushed): reading stops at the first record whose magic,
 * length or crc does not check (the zeros too), and every record before it
 * stands.
 *
 * Loading (and compaction, once the log is 8 MiB and less than half of it
 * is live) reads every log in order, writes the live records to a new log
 * (fdatasync, directory fsync) and unlinks the older ones. Format 1 (one
 * `<seq>.rec` file per save and `<seq>.up` per upload marker, safs before
 * the log) is read first at load and migrated the same way. A log of
 * another format makes fs_journal_open refuse the mount.
 *
 * State per journal directory (its log's descriptor and the live records'
 * seqs) is kept here, found by the directory's path; jmu guards it and is
 * held over the append and its flush (a leaf lock: it is taken under
 * wb->mu for the rewrite of a waiting record, never the other way).
 */

#define SEG_MAGIC "safsjnl2"
#define SEG_HDR 8
#define REC_MAGIC 0x7366726aU /* "jrfs" */
#define REC_HDR 24
#define REC_SAVE 1
#define REC_UPLOADED 2
#define REC_REMOVED 3
#define COMPACT_AT ((uint64_t)8 << 20)
#define PREFILL ((uint64_t)1 << 20)

static uint32_t crc_tab[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
        crc_tab[i] = c;
    }
}

/* the CRC-32 of fs_crc32, by table (a document can be max_doc long) */
static uint32_t crc32_buf(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    pthread_once(&crc_once, crc_init);
    while (n--)
        c = crc_tab[(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* fills the record header at p (the payload follows it) */
static void rec_seal(unsigned char *p, uint32_t type, uint64_t seq, size_t len)
{
    put32(p + 4, REC_MAGIC);
    put32(p + 8, type);
    put32(p + 12, (uint32_t)len);
    put64(p + 16, seq);
    put32(p, crc32_buf(p + 4, REC_HDR - 4 + len));
}

/* a save record, whole: header, JSON line, "\n", data */
static unsigned char *save_rec(const struct fs_jrec *r, size_t *n)
{
    char *h = header(r);
    size_t hl, len;
    unsigned char *b;
    if (!h)
        return NULL;
    hl = strlen(h);
    len = hl + 1 + r->len;
    if (len > 0xffffffffu) {
        free(h);
        errno = EFBIG;
        return NULL;
    }
    b = malloc(REC_HDR + len);
    if (b) {
        memcpy(b + REC_HDR, h, hl);
        b[REC_HDR + hl] = '\n';
        if (r->len)
            memcpy(b + REC_HDR + hl + 1, r->data, r->len);
        rec_seal(b, REC_SAVE, r->seq, len);
        *n = REC_HDR + len;
    }
    free(h);
    return b;
}

/* a save's payload (or a format-1 file's bytes) back into a record */
static int parse_save(const char *buf, size_t len, struct fs_jrec *r)
{
    const char *nl = memchr(buf, '\n', len);
    json_t *o;
    json_error_t je;

    memset(r, 0, sizeof *r);
    if (!nl)
        return -1;
    o = json_loadb(buf, (size_t)(nl - buf), 0, &je);
    if (!o)
        return -1;
    r->seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
    r->project_id = json_integer_value(json_object_get(o, "project_id"));
    r->folder_id = json_integer_value(json_object_get(o, "folder_id"));
    r->item_id = json_integer_value(json_object_get(o, "item_id"));
    r->name = dup_str(o, "name");
    r->pname = dup_str(o, "project");
    r->folder = dup_str(o, "folder");
    r->fname = dup_str(o, "file");
    r->status = dup_str(o, "status");
    r->blind = json_is_true(json_object_get(o, "blind"));
    r->base_ms = json_integer_value(json_object_get(o, "base_ms"));
    r->base_status = (int)json_integer_value(json_object_get(o, "base_status"));
    json_decref(o);
    r->len = len - (size_t)(nl + 1 - buf);
    r->data = malloc(r->len + 1);
    if (r->data) {
        memcpy(r->data, nl + 1, r->len);
        r->data[r->len] = 0;
    }
    return r->data && r->name ? 0 : (fs_jrec_clear(r), -1);
}

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    char *buf = NULL;
    size_t got = 0;

    if (fd < 0)
        return NULL;
    if (fstat(fd, &sb) == 0 && (buf = malloc((size_t)sb.st_size + 1))) {
        while (got < (size_t)sb.st_size) {
            ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        buf[got] = 0;
    }
    close(fd);
    *len = got;
    return buf;
}

/* ------------------------------------------------- live records by seq */

struct lent {
    struct lent *next;
    uint64_t seq;
    uint64_t size;           /* its save record's bytes in the log */
    int uploaded;
    struct fs_jrec *rec;     /* while loading */
};

struct ltab { struct lent **b; size_t nb, n; };

static struct lent *lt_find(const struct ltab *t, uint64_t seq)
{
    if (!t->nb)
        return NULL;
    for (struct lent *e = t->b[seq % t->nb]; e; e = e->next)
        if (e->seq == seq)
            return e;
    return NULL;
}

static struct lent *lt_add(struct ltab *t, uint64_t seq)
{
    struct lent *e = lt_find(t, seq);
    if (e)
        return e;
    if (t->n >= t->nb) {
        size_t nb = t->nb ? t->nb * 2 : 256;
        struct lent **b = calloc(nb, sizeof *b);
        if (!b)
            return NULL;
        for (size_t i = 0; i < t->nb; i++)
            for (struct lent *x = t->b[i], *nx; x; x = nx) {
                nx = x->next;
                x->next = b[x->seq % nb];
                b[x->seq % nb] = x;
            }
        free(t->b);
        t->b = b;
        t->nb = nb;
    }
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->seq = seq;
    e->next = t->b[seq % t->nb];
    t->b[seq % t->nb] = e;
    t->n++;
    return e;
}

static void lent_free(struct lent *e)
{
    if (e->rec) {
        fs_jrec_clear(e->rec);
        free(e->rec);
    }
    free(e);
}

static void lt_del(struct ltab *t, uint64_t seq)
{
    if (!t->nb)
        return;
    for (struct lent **pp = &t->b[seq % t->nb]; *pp; pp = &(*pp)->next)
        if ((*pp)->seq == seq) {
            struct lent *e = *pp;
            *pp = e->next;
            lent_free(e);
            t->n--;
            return;
        }
}

static void lt_clear(struct ltab *t)
{
    for (size_t i = 0; i < t->nb; i++)
        for (struct lent *e = t->b[i], *nx; e; e = nx) {
            nx = e->next;
            lent_free(e);
        }
    free(t->b);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------- reading a dir */

static int is_hex_name(const char *s, const char *ext)
{
    size_t n = strspn(s, "0123456789abcdef");
    return n == 16 && !strcmp(s + n, ext);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void apply_save(struct ltab *t, struct fs_jrec *r, uint64_t size)
{
    struct lent *e = lt_add(t, r->seq);
    if (!e) {
        fs_jrec_clear(r);
        free(r);
        return;
    }
    if (e->rec) {
        fs_jrec_clear(e->rec);
        free(e->rec);
    }
    e->rec = r;
    e->size = size;
}

/* A log's records in order, up to a torn tail. 0: read (or shorter than
 * its magic: a crash at its creation), the log may go once rewritten; -1:
 * unreadable or of another format, it stays. */
static int read_log(const char *path, struct ltab *t)
{
    size_t len, off = SEG_HDR;
    unsigned char *b = (unsigned char *)slurp(path, &len);

    if (!b)
        return -1;
    if (len < SEG_HDR || memcmp(b, SEG_MAGIC, SEG_HDR)) {
        free(b);
        return len < SEG_HDR ? 0 : -1;
    }
    while (len - off >= REC_HDR) {
        const unsigned char *p = b + off;
        uint32_t type = get32(p + 8), n = get32(p + 12);
        uint64_t seq = get64(p + 16);
        if (get32(p + 4) != REC_MAGIC || n > len - off - REC_HDR ||
            crc32_buf(p + 4, REC_HDR - 4 + n) != get32(p))
            break; /* torn (a close that had not returned): the rest is not a record */
        if (type == REC_SAVE) {
            struct fs_jrec *r = calloc(1, sizeof *r);
            if (r && parse_save((const char *)p + REC_HDR, n, r) == 0 && r->seq == seq)
                apply_save(t, r, REC_HDR + (uint64_t)n);
            else
                free(r);
        } else if (type == REC_UPLOADED) {
            struct lent *e = lt_find(t, seq);
            if (e)
                e->uploaded = 1;
        } else if (type == REC_REMOVED) {
            lt_del(t, seq);
        }
        off += REC_HDR + (size_t)n;
    }
    free(b);
    return 0;
}

struct names { char **v; size_t n, cap; };

static void names_add(struct names *s, const char *name)
{
    char *d = strdup(name);
    if (!d)
        return;
    if (s->n == s->cap) {
        char **nv = realloc(s->v, (s->cap = s->cap ? s->cap * 2 : 16) * sizeof *nv);
        if (!nv) {
            free(d);
            return;
        }
        s->v = nv;
    }
    s->v[s->n++] = d;
}

static void names_free(struct names *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Every live record of dir into t (format 1 first, then the logs in
 * order); the files read go to @p old, the highest log number to *max. */
static int read_dir(const char *dir, struct ltab *t, struct names *old, uint64_t *max)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    struct names recs = {0}, ups = {0}, logs = {0};
    char path[PATH_MAX];

    *max = 0;
    if (!d)
        return -errno;
    while ((de = readdir(d))) {
        const char *fn = de->d_name;
        if (fn[0] == '.' && fs_ends_with(fn, ".tmp")) {
            /* format 1: a record a crash left half-written (never renamed) */
            snprintf(path, sizeof path, "%s/%s", dir, fn);
            unlink(path);
        } else if (is_hex_name(fn, ".rec")) {
            names_add(&recs, fn);
        } else if (is_hex_name(fn, ".up")) {
            names_add(&ups, fn);
        } else if (is_hex_name(fn, ".log")) {
            uint64_t no = strtoull(fn, NULL, 16);
            if (no > *max)
                *max = no;
            names_add(&logs, fn);
        }
    }
    closedir(d);
    for (size_t i = 0; i < recs.n; i++) {
        size_t len;
        char *buf;
        struct fs_jrec *r = calloc(1, sizeof *r);
        snprintf(path, sizeof path, "%s/%s", dir, recs.v[i]);
        buf = slurp(path, &len);
        if (r && buf && parse_save(buf, len, r) == 0) {
            apply_save(t, r, 0);
            names_add(old, recs.v[i]); /* migrated; one it cannot read stays */
        } else {
            free(r);
        }
        free(buf);
    }
    for (size_t i = 0; i < ups.n; i++) {
        struct lent *e = lt_find(t, strtoull(ups.v[i], NULL, 16));
        if (e)
            e->uploaded = 1;
        names_add(old, ups.v[i]);
    }
    if (logs.n)
        qsort(logs.v, logs.n, sizeof *logs.v, by_name);
    for (size_t i = 0; i < logs.n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, logs.v[i]);
        if (read_log(path, t) == 0)
            names_add(old, logs.v[i]);
    }
    names_free(&recs);
    names_free(&ups);
    names_free(&logs);
    return 0;
}

/* ------------------------------------------------------ the open journal */

struct jnl {
    struct jnl *next;
    char *dir;
    int fd;                  /* the log appended to; -1: (re)open first */
    uint64_t end;            /* its records' end */
    uint64_t cap;            /* its length: zeros from end to cap */
    uint64_t live_bytes;     /* its live save records' */
    struct ltab live;        /* seq -> size, uploaded */
};

static pthread_mutex_t jmu = PTHREAD_MUTEX_INITIALIZER;
static struct jnl *jnls;

static struct jnl *jnl_get(const char *dir)
{
    struct jnl *j;
    for (j = jnls; j; j = j->next)
        if (!strcmp(j->dir, dir))
            return j;
    j = calloc(1, sizeof *j);
    if (!j || !(j->dir = strdup(dir))) {
        free(j);
        return NULL;
    }
    j->fd = -1;
    j->next = jnls;
    jnls = j;
    return j;
}

static int pwrite_all(int fd, const unsigned char *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* The log is written with zeros ahead of its records (PREFILL at a time):
 * a record then lands in blocks the file already has, and its fdatasync
 * flushes data only, no inode (a third less than an append that grows the
 * file, on ext4). Reading stops at the zeros as at a torn record. */
static int prefill(struct jnl *j, size_t need)
{
    static const unsigned char zeros[64 * 1024];
    uint64_t to = j->end + need;
    if (to <= j->cap)
        return 0;
    to = (to + PREFILL - 1) / PREFILL * PREFILL;
    while (j->cap < to) {
        size_t n = to - j->cap < sizeof zeros ? (size_t)(to - j->cap) : sizeof zeros;
        int e = pwrite_all(j->fd, zeros, n, j->cap);
        if (e)
            return e;
        j->cap += n;
    }
    return 0;
}

/* appends after the last record; a failed append is cut off again (a
 * later record must not follow a torn one) */
static int append(struct jnl *j, const unsigned char *p, size_t n)
{
    int e;
    if (prefill(j, n))
        j->cap = j->end + n; /* no room for the zeros (ENOSPC): the record alone */
    e = pwrite_all(j->fd, p, n, j->end);
    if (e) {
        if (ftruncate(j->fd, (off_t)j->end)) {
            close(j->fd);
            j->fd = -1;
        }
        j->cap = j->end;
        return e;
    }
    j->end += n;
    return 0;
}

static int append_mark(struct jnl *j, uint32_t type, uint64_t seq)
{
    unsigned char b[REC_HDR];
    rec_seal(b, type, seq, 0);
    return append(j, b, sizeof b);
}

static int by_seq(const void *a, const void *b)
{
    const struct fs_jrec *x = *(struct fs_jrec *const *)a, *y = *(struct fs_jrec *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Reads dir, writes its live records to a new log and drops the older
 * files; *out (if asked) gets the records. The log stays closed (-1) if
 * the new one cannot be written: the older files stay and the next call
 * tries again. */
static int jnl_reopen(struct jnl *j, struct fs_jrec ***out, size_t *nout)
{
    struct ltab t = {0};
    struct names old = {0};
    uint64_t max;
    char path[PATH_MAX];
    int e, fd;

    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    lt_clear(&j->live);
    j->live_bytes = 0;
    e = read_dir(j->dir, &t, &old, &max);
    if (e)
        goto out;
    snprintf(path, sizeof path, "%s/%016" PRIx64 ".log", j->dir, max + 1);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        e = -errno;
        goto out;
    }
    j->fd = fd;
    j->end = j->cap = 0;
    e = append(j, (const unsigned char *)SEG_MAGIC, SEG_HDR);
    for (size_t i = 0; !e && i < t.nb; i++)
        for (struct lent *x = t.b[i]; !e && x; x = x->next) {
            size_t n;
            unsigned char *b = save_rec(x->rec, &n);
            struct lent *l;
            if (!b) {
                e = -ENOMEM;
                break;
            }
            e = append(j, b, n);
            free(b);
            if (!e && x->uploaded)
                e = append_mark(j, REC_UPLOADED, x->seq);
            if (!e && (l = lt_add(&j->live, x->seq))) {
                l->size = n;
                l->uploaded = x->uploaded;
                j->live_bytes += n;
            }
        }
    if (!e && fdatasync(j->fd))
        e = -errno;
    if (!e)
        e = fsync_dir(j->dir); /* the new log's name; also the unlinks before */
    if (e) {
        if (j->fd >= 0)
            close(j->fd);
        j->fd = -1;
        unlink(path);
        lt_clear(&j->live);
        j->live_bytes = 0;
        goto out;
    }
    for (size_t i = 0; i < old.n; i++) {
        snprintf(path, sizeof path, "%s/%s", j->dir, old.v[i]);
        unlink(path);
    }
out:
    if (out) {
        struct fs_jrec **v = t.n ? calloc(t.n, sizeof *v) : NULL;
        size_t cnt = 0;
        for (size_t i = 0; v && i < t.nb; i++)
            for (struct lent *x = t.b[i]; x; x = x->next) {
                x->rec->uploaded = x->uploaded;
                v[cnt++] = x->rec;
                x->rec = NULL;
            }
        if (cnt)
            qsort(v, cnt, sizeof *v, by_seq);
        *out = v;
        *nout = cnt;
    }
    lt_clear(&t);
    names_free(&old);
    return e;
}

static int jnl_ready(struct jnl *j)
{
    return j->fd >= 0 ? 0 : jnl_reopen(j, NULL, NULL);
}

static void maybe_compact(struct jnl *j)
{
    if (j->end >= COMPACT_AT && j->live_bytes * 2 < j->end)
        jnl_reopen(j, NULL, NULL);
}

int fs_journal_write(const char *dir, const struct fs_jrec *r)
{
    struct jnl *j;
    struct lent *l;
    unsigned char *b;
    size_t n = 0;
    int e;

    pthread_mutex_lock(&jmu);
    j = jnl_get(dir);
    e = j ? jnl_ready(j) : -ENOMEM;
    if (e)
        goto out;
    b = save_rec(r, &n);
    if (!b) {
        e = errno == EFBIG ? -EFBIG : -ENOMEM;
        goto out;
    }
    l = lt_find(&j->live, r->seq);
    if (l && l->uploaded) {
        /* a rewritten record keeps its upload marker: one append for both */
        unsigned char *nb = realloc(b, n + REC_HDR);
        if (!nb) {
            free(b);
            e = -ENOMEM;
            goto out;
        }
        b = nb;
        rec_seal(b + n, REC_UPLOADED, r->seq, 0);
    }
    e = append(j, b, n + (l && l->uploaded ? REC_HDR : 0));
    free(b);
    if (!e && fdatasync(j->fd)) {
        /* not known to be durable: the save is refused, so a new one must
         * not come back at replay either (a rewritten one may: both forms
         * are the same save); the next write opens a new log */
        e = -errno;
        if (!l && append_mark(j, REC_REMOVED, r->seq) == 0)
            fdatasync(j->fd);
        close(j->fd);
        j->fd = -1;
        goto out;
    }
    if (!e && (l || (l = lt_add(&j->live, r->seq)))) {
        j->live_bytes -= l->size;
        l->size = n;
        j->live_bytes += n;
    }
    if (!e)
        maybe_compact(j);
out:
    pthread_mutex_unlock(&jmu);
    return e;
}

void fs_journal_mark_uploaded(const char *dir, const uint64_t *seqs, size_t n)
{
    struct jnl *j;
    unsigned char *b;
    size_t k = 0;

    if (!n)
        return;
    pthread_mutex_lock(&jmu);
    j = jnl_get(dir);
    if (!j || jnl_ready(j) || !(b = malloc(n * REC_HDR)))
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct lent *l = lt_find(&j->live, seqs[i]);
        if (!l)
            continue;
        rec_seal(b + k++ * REC_HDR, REC_UPLOADED, seqs[i], 0);
        l->uploaded = 1;
    }
    if (k && append(j, b, k * REC_HDR) == 0)
        fdatasync(j->fd); /* one flush for the batch */
    free(b);
out:
    pthread_mutex_unlock(&jmu);
}

void fs_journal_remove(const char *dir, uint64_t seq)
{
    struct jnl *j;
    struct lent *l;

    pthread_mutex_lock(&jmu);
    j = jnl_get(dir);
    if (!j || jnl_ready(j) || !(l = lt_find(&j->live, seq)))
        goto out;
    /* not flushed (as an unlink without a directory fsync was): a removal
     * lost in a crash replays a landed save, recognised by content */
    if (append_mark(j, REC_REMOVED, seq) == 0) {
        j->live_bytes -= l->size;
        lt_del(&j->live, seq);
        if (!j->live.n)
            fdatasync(j->fd); /* everything landed: say so durably */
        maybe_compact(j);
    }
out:
    pthread_mutex_unlock(&jmu);
}

int fs_journal_load(const char *dir, struct fs_jrec ***out, size_t *n)
{
    struct jnl *j;
    int e;

    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&jmu);
    j = jnl_get(dir);
    e = j ? jnl_reopen(j, out, n) : -ENOMEM;
    pthread_mutex_unlock(&jmu);
    /* records read but not rewritten are still on disk: they are returned */
    return *n ? 0 : e;
}
