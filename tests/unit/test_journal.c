/* fs/journal.c, pure: records written durably are loaded back whole and in
 * seq order (names, base key, status, the prepared bytes with NULs and
 * newlines), the upload marker is seen, removal removes, and all of it is
 * one log file (format 2: no file per record). A torn tail (a crash in the
 * middle of an append: cut short, garbage after the last record, a flipped
 * byte) is ignored and every record before it stands; a record written
 * after that replay is kept too. A rewrite of the same seq replaces the
 * record and keeps its upload marker. A journal of format 1 (a `<seq>.rec`
 * file per save, `<seq>.up` markers, a half-written `.<seq>.tmp`) is read
 * and migrated into a log; a record without its header line stays where it
 * is. The log is compacted once it is mostly dead. Writers in four threads
 * at once lose nothing. A log of another format makes fs_journal_open
 * refuse, naming it. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs_i.h"

static int failures;

#define check(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);                      \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

static void touch(const char *dir, const char *name, const char *text)
{
    char p[4096];
    FILE *f;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static int exists(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* files in dir ending in ext; the last one's path into last */
static int count(const char *dir, const char *ext, char *last, size_t n)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int c = 0;
    while (d && (de = readdir(d)))
        if (fs_ends_with(de->d_name, ext)) {
            c++;
            if (last)
                snprintf(last, n, "%s/%s", dir, de->d_name);
        }
    if (d)
        closedir(d);
    return c;
}

static off_t size_of(const char *path)
{
    struct stat sb;
    return stat(path, &sb) ? -1 : sb.st_size;
}

/* where the log's records end (the zeros written ahead follow): its
 * records walked by their length fields */
static off_t log_end(const char *path)
{
    unsigned char h[24];
    off_t off = 8;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    while (pread(fd, h, sizeof h, off) == (ssize_t)sizeof h &&
           h[4] == 'j' && h[5] == 'r' && h[6] == 'f' && h[7] == 's')
        off += 24 + (h[12] | h[13] << 8 | h[14] << 16 | (off_t)h[15] << 24);
    close(fd);
    return off;
}

static void free_all(struct fs_jrec **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fs_jrec_clear(v[i]);
        free(v[i]);
    }
    free(v);
}

static size_t load_n(const char *dir, struct fs_jrec ***v)
{
    size_t n = 0;
    check(fs_journal_load(dir, v, &n) == 0);
    return n;
}

static void empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[4096];
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.' || (de->d_name[1] && strcmp(de->d_name, ".."))) {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
}

static struct fs_jrec rec(uint64_t seq, char *data)
{
    static char name[] = "img.jpg", pn[] = "P", fo[] = "root", fn[] = "img.jpg___objects.json";
    struct fs_jrec r = {0};
    r.seq = seq;
    r.project_id = 1;
    r.folder_id = 2;
    r.item_id = (long long)seq + 100;
    r.name = name;
    r.pname = pn;
    r.folder = fo;
    r.fname = fn;
    r.data = data;
    r.len = strlen(data);
    return r;
}

static void basics(const char *dir)
{
    static const char doc[] = "{\"a\":\"x\\ny\"}\n\n{\"second line\":1}\0tail";
    struct fs_jrec a = {0}, b = {0}, **v = NULL;
    size_t n;
    uint64_t up[1] = {7};
    char n1[] = "img \"one\"\n.jpg", n2[] = "P/q", n3[] = "root", n4[] = "img.jpg___objects.json",
         n5[] = "InProgress", n6[] = "{}";

    a.seq = 7;
    a.project_id = 11;
    a.folder_id = 22;
    a.item_id = 33;
    a.name = n1;
    a.pname = n2;
    a.folder = n3;
    a.fname = n4;
    a.base_ms = 1700000000123;
    a.base_status = 2;
    a.status = n5;
    a.data = (char *)doc;
    a.len = sizeof doc - 1;
    b = a;
    b.seq = 3;
    b.blind = 1;
    b.status = NULL;
    b.data = n6;
    b.len = 2;
    check(fs_journal_write(dir, &a) == 0);
    check(fs_journal_write(dir, &b) == 0);
    fs_journal_mark_uploaded(dir, up, 1);
    /* one log, no file per record */
    check(count(dir, ".log", NULL, 0) == 1);
    check(count(dir, ".rec", NULL, 0) == 0 && count(dir, ".up", NULL, 0) == 0);

    n = load_n(dir, &v);
    check(n == 2);
    if (n == 2) {
        check(v[0]->seq == 3 && v[1]->seq == 7);
        check(v[0]->blind && !v[0]->uploaded && !v[0]->status);
        check(v[0]->len == 2 && !memcmp(v[0]->data, "{}", 2));
        check(!v[1]->blind && v[1]->uploaded);
        check(v[1]->project_id == 11 && v[1]->folder_id == 22 && v[1]->item_id == 33);
        check(!strcmp(v[1]->name, a.name) && !strcmp(v[1]->pname, "P/q"));
        check(!strcmp(v[1]->fname, n4) && !strcmp(v[1]->folder, "root"));
        check(v[1]->base_ms == a.base_ms && v[1]->base_status == 2);
        check(v[1]->status && !strcmp(v[1]->status, "InProgress"));
        check(v[1]->len == a.len && !memcmp(v[1]->data, doc, a.len));
    }
    free_all(v, n);
    check(count(dir, ".log", NULL, 0) == 1); /* the load rewrote it: still one */

    /* a rewrite of seq 7 (a waiting save with its new base) replaces it and
     * keeps its upload marker */
    a.base_ms = 1700000009999;
    check(fs_journal_write(dir, &a) == 0);
    n = load_n(dir, &v);
    check(n == 2 && v[1]->seq == 7 && v[1]->base_ms == 1700000009999 && v[1]->uploaded);
    free_all(v, n);

    fs_journal_remove(dir, 7);
    n = load_n(dir, &v);
    check(n == 1 && v[0]->seq == 3);
    free_all(v, n);
    fs_journal_remove(dir, 3);
    n = load_n(dir, &v);
    check(n == 0);
    free_all(v, n);
    empty_dir(dir);
}

/* the log of dir after 3 records; then its tail is torn in various ways */
static void torn(const char *dir)
{
    char d1[] = "{\"n\":1}", d2[] = "{\"n\":2}", d3[] = "{\"n\":3}", d4[] = "{\"n\":4}";
    struct fs_jrec r1 = rec(1, d1), r2 = rec(2, d2), r3 = rec(3, d3), r4 = rec(4, d4);
    struct fs_jrec **v = NULL;
    char log[4096];
    off_t two, three;
    size_t n;
    int fd;

    for (int how = 0; how < 4; how++) {
        check(fs_journal_write(dir, &r1) == 0);
        check(fs_journal_write(dir, &r2) == 0);
        check(count(dir, ".log", log, sizeof log) == 1);
        two = log_end(log);
        check(fs_journal_write(dir, &r3) == 0);
        three = log_end(log);
        check(three > two);
        fd = open(log, O_RDWR);
        check(fd >= 0);
        if (how == 0) {
            /* a crash in the middle of the third append */
            check(ftruncate(fd, two + (three - two) / 2) == 0);
        } else if (how == 1) {
            /* cut inside its 24-byte header */
            check(ftruncate(fd, two + 10) == 0);
        } else if (how == 2) {
            /* a byte of its payload not written */
            char c;
            check(pread(fd, &c, 1, three - 3) == 1);
            c ^= 0x40;
            check(pwrite(fd, &c, 1, three - 3) == 1);
        } else {
            /* its length field says more than the file holds */
            check(pwrite(fd, "\xff\xff\xff\x00", 4, two + 12) == 4);
        }
        close(fd);
        n = load_n(dir, &v);
        check(n == 2);
        if (n == 2)
            check(v[0]->seq == 1 && v[1]->seq == 2 && !strcmp(v[1]->data, d2));
        free_all(v, n);
        /* after the replay the next close is journaled and kept as well */
        check(fs_journal_write(dir, &r4) == 0);
        n = load_n(dir, &v);
        check(n == 3 && v[2]->seq == 4 && !strcmp(v[2]->data, d4));
        free_all(v, n);
        check(count(dir, ".log", NULL, 0) == 1);
        for (uint64_t s = 1; s <= 4; s++)
            fs_journal_remove(dir, s);
        n = load_n(dir, &v);
        check(n == 0);
        free_all(v, n);
    }
    /* garbage after the last record (a torn append of something else) */
    check(fs_journal_write(dir, &r1) == 0);
    check(count(dir, ".log", log, sizeof log) == 1);
    fd = open(log, O_WRONLY);
    check(fd >= 0 && pwrite(fd, "\x01garbage that is not a record", 30, log_end(log)) == 30);
    close(fd);
    n = load_n(dir, &v);
    check(n == 1 && v[0]->seq == 1);
    free_all(v, n);
    empty_dir(dir);
}

static void format1(const char *dir)
{
    struct fs_jrec **v = NULL;
    size_t n;

    /* what safs before the log left: two records, one marked uploaded, a
     * half-written temporary one, one without its header line */
    touch(dir, "0000000000000005.rec",
          "{\"seq\":5,\"project_id\":1,\"folder_id\":2,\"item_id\":30,\"name\":\"a.jpg\","
          "\"project\":\"P\",\"folder\":\"root\",\"file\":\"a.jpg___objects.json\","
          "\"blind\":false,\"base_ms\":1700000000000,\"base_status\":1,"
          "\"status\":\"InProgress\"}\n{\"x\":1}");
    touch(dir, "0000000000000009.rec",
          "{\"seq\":9,\"project_id\":1,\"folder_id\":2,\"item_id\":31,\"name\":\"b.jpg\","
          "\"project\":\"P\",\"folder\":\"root\",\"file\":\"b.jpg___objects.json\","
          "\"blind\":true,\"base_ms\":0,\"base_status\":0}\n{\"y\":2}");
    touch(dir, "0000000000000009.up", "");
    touch(dir, ".000000000000000b.tmp", "{\"seq\":11");
    touch(dir, "000000000000000a.rec", "no header line");
    n = load_n(dir, &v);
    check(n == 2);
    if (n == 2) {
        check(v[0]->seq == 5 && !v[0]->uploaded && v[0]->item_id == 30);
        check(v[0]->status && !strcmp(v[0]->status, "InProgress"));
        check(v[0]->base_ms == 1700000000000 && v[0]->base_status == 1 && !v[0]->blind);
        check(v[0]->len == 7 && !memcmp(v[0]->data, "{\"x\":1}", 7));
        check(v[1]->seq == 9 && v[1]->uploaded && v[1]->blind);
    }
    free_all(v, n);
    /* migrated: the log holds them, the old files are gone (the unreadable
     * one stays, it is not ours to drop) */
    check(count(dir, ".log", NULL, 0) == 1);
    check(!exists(dir, "0000000000000005.rec") && !exists(dir, "0000000000000009.rec"));
    check(!exists(dir, "0000000000000009.up") && !exists(dir, ".000000000000000b.tmp"));
    check(exists(dir, "000000000000000a.rec"));
    n = load_n(dir, &v);
    check(n == 2 && v[1]->uploaded);
    free_all(v, n);
    fs_journal_remove(dir, 5);
    fs_journal_remove(dir, 9);
    n = load_n(dir, &v);
    check(n == 0);
    free_all(v, n);
    empty_dir(dir);
}

static void compaction(const char *dir)
{
    static char big[64 * 1024];
    struct fs_jrec **v = NULL;
    char log[4096];
    size_t n;

    memset(big, 'x', sizeof big - 1);
    big[0] = '"';
    big[sizeof big - 2] = '"';
    {
        struct fs_jrec keep = rec(1, big);
        check(fs_journal_write(dir, &keep) == 0);
    }
    /* 200 saves of 64 KiB land one after the other: 12 MiB appended */
    for (uint64_t s = 2; s < 202; s++) {
        struct fs_jrec r = rec(s, big);
        check(fs_journal_write(dir, &r) == 0);
        fs_journal_remove(dir, s);
    }
    check(count(dir, ".log", log, sizeof log) == 1);
    check(log_end(log) < 9 << 20 && size_of(log) <= 10 << 20);
    n = load_n(dir, &v);
    check(n == 1 && v[0]->seq == 1 && v[0]->len == sizeof big - 1);
    free_all(v, n);
    check(count(dir, ".log", log, sizeof log) == 1 && log_end(log) < 70 * 1024);
    check(size_of(log) <= 2 << 20); /* the zeros written ahead: 1 MiB at a time */
    fs_journal_remove(dir, 1);
    empty_dir(dir);
}

/* four closes at once (FUSE threads) and the uploader's markers and
 * removals: every record written and not removed is loaded back whole */
struct thr { const char *dir; uint64_t first; int err; };

static void *writer(void *arg)
{
    struct thr *t = arg;
    char data[64];
    for (uint64_t s = t->first; s < t->first + 200; s++) {
        struct fs_jrec r;
        snprintf(data, sizeof data, "{\"seq\":%llu}", (unsigned long long)s);
        r = rec(s, data);
        if (fs_journal_write(t->dir, &r))
            t->err++;
        if (s % 2) {
            fs_journal_mark_uploaded(t->dir, &s, 1);
            fs_journal_remove(t->dir, s);
        }
    }
    return NULL;
}

static void threads(const char *dir)
{
    pthread_t th[4];
    struct thr t[4];
    struct fs_jrec **v = NULL;
    size_t n, bad = 0;

    for (int i = 0; i < 4; i++) {
        t[i] = (struct thr){dir, 1 + (uint64_t)i * 1000, 0};
        check(pthread_create(&th[i], NULL, writer, &t[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        check(t[i].err == 0);
    }
    n = load_n(dir, &v);
    check(n == 400);
    for (size_t i = 0; i < n; i++) {
        char want[64];
        snprintf(want, sizeof want, "{\"seq\":%llu}", (unsigned long long)v[i]->seq);
        bad += v[i]->seq % 2 == 1 || strcmp(v[i]->data, want) || v[i]->uploaded ||
               (i && v[i]->seq <= v[i - 1]->seq);
    }
    check(bad == 0);
    free_all(v, n);
    for (int i = 0; i < 4; i++)
        for (uint64_t s = t[i].first + 1; s < t[i].first + 200; s += 2)
            fs_journal_remove(dir, s);
    n = load_n(dir, &v);
    check(n == 0);
    free_all(v, n);
    empty_dir(dir);
}

static void foreign(const char *base)
{
    struct fs_config cfg = {0};
    struct fs_state st;
    char err[1024] = "", jdir[4096], *dir = NULL;
    int fd = -1;
    char url[] = "http://x/";

    memset(&st, 0, sizeof st);
    cfg.url = url;
    st.cfg = &cfg;
    st.team_id = 5;
    setenv("XDG_STATE_HOME", base, 1);
    check(fs_journal_open(&st, &dir, &fd, err, sizeof err) == 0);
    if (dir) {
        snprintf(jdir, sizeof jdir, "%s", dir);
        free(dir);
        dir = NULL;
        close(fd);
        touch(jdir, "00000000000000ff.log", "safsjnl9 from the future");
        check(fs_journal_open(&st, &dir, &fd, err, sizeof err) == -1);
        check(strstr(err, "00000000000000ff.log") && strstr(err, "format 2"));
        check(exists(jdir, "00000000000000ff.log"));
        /* nor is it dropped by a load that bypasses the refusal */
        {
            struct fs_jrec **v = NULL;
            size_t n = load_n(jdir, &v);
            check(n == 0);
            free_all(v, n);
            check(exists(jdir, "00000000000000ff.log"));
        }
        /* a log a crash left shorter than its magic is no reason */
        empty_dir(jdir);
        touch(jdir, "0000000000000001.log", "safs");
        err[0] = 0;
        check(fs_journal_open(&st, &dir, &fd, err, sizeof err) == 0);
        free(dir);
        close(fd);
        empty_dir(jdir);
        rmdir(jdir);
    }
    snprintf(jdir, sizeof jdir, "%s/safs", base);
    rmdir(jdir);
}

int main(void)
{
    char d1[] = "/tmp/safs-journal-XXXXXX", d2[] = "/tmp/safs-journal-XXXXXX",
         d3[] = "/tmp/safs-journal-XXXXXX", d4[] = "/tmp/safs-journal-XXXXXX",
         d5[] = "/tmp/safs-journal-XXXXXX", d6[] = "/tmp/safs-journal-XXXXXX";

    if (!mkdtemp(d1) || !mkdtemp(d2) || !mkdtemp(d3) || !mkdtemp(d4) || !mkdtemp(d5) ||
        !mkdtemp(d6))
        return 1;
    basics(d1);
    torn(d2);
    format1(d3);
    compaction(d4);
    threads(d6);
    foreign(d5);
    rmdir(d1);
    rmdir(d2);
    rmdir(d3);
    rmdir(d4);
    rmdir(d5);
    rmdir(d6);
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
