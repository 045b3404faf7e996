/** @file
 * safs command line (filesystem.md §7): a fuse_opt table over struct
 * fs_config (libfuse example/hello.c style), --help/--version, the fstab-only
 * options, the libfuse options passed through, and the token sources.
 *
 * Our own -o options are consumed. Everything we hand on to libfuse is
 * collected in fuse_args: argv[0], the kernel/libfuse options listed in
 * pass_opts[], ro, allow_other (+ default_permissions), and
 * fsname=safs#SOURCE,subtype=safs. -d is NOT passed to libfuse (its request
 * trace is huge); -d means foreground + loglevel debug. -s is not passed
 * either (fuse_new does not know it): it sets max_threads to 1, one worker.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <fuse_opt.h>
#include <jansson.h>

#ifndef SAFS_VERSION
#define SAFS_VERSION "unknown"
#endif

#define DEFAULT_URL "https://api.superannotate.com"
#define DEFAULT_SUFFIX "___objects.json"
#define DEFAULT_MAX_DOC (256ULL << 20)
#define DEFAULT_MAX_THREADS 64
#define MAX_TOKEN_FILE 4096

enum {
    KEY_HELP, KEY_VERSION, KEY_PROBE, KEY_FOREGROUND, KEY_DEBUG, KEY_SINGLE,
    KEY_DISCARD, KEY_TOKEN, KEY_SUFFIX, KEY_CACHE_TIMEOUT, KEY_TIMEOUT,
    KEY_MAX_DOC,
    KEY_OP_TIMEOUT,
    KEY_RECOVERY_MAX, KEY_CACHE_MAX, KEY_MEM_MAX, KEY_FPS, KEY_MAX_THREADS, KEY_UID, KEY_GID, KEY_UMASK,
    KEY_RO, KEY_ALLOW_OTHER, KEY_LOGLEVEL, KEY_PASS, KEY_FSNAME, KEY_SUBTYPE,
    KEY_DRAIN_TIMEOUT,
};

/** Parse state: the config being filled plus what fuse_opt cannot hold. */
struct parse_ctx {
    struct fs_config c;
    char *pos[3];          /**< non-option arguments (a third one is an error) */
    int npos;
    int help, version;
    int single;
    int loglevel_set;
    int fsname_given, subtype_given;
    int failed;            /**< err already holds the reason */
    char *err;
    size_t errlen;
};

#define OPT(t, f, v) { t, offsetof(struct parse_ctx, c.f), v }

static const struct fuse_opt opts[] = {
    OPT("url=%s", url, 0),
    OPT("item_url=%s", item_url, 0),
    OPT("assets_url=%s", assets_url, 0),
    OPT("wm_url=%s", wm_url, 0),
    OPT("token_file=%s", token_file, 0),
    OPT("cafile=%s", cafile, 0),
    OPT("insecure", insecure, 1),
    OPT("keep_status", keep_status, 1),
    OPT("writeback", writeback, 1),
    OPT("list_frames", list_frames, 1),
    OPT("recovery_dir=%s", recovery_dir, 0),
    OPT("cache_dir=%s", cache_dir_opt, 0),
    OPT("log_file=%s", log_file, 0),
    FUSE_OPT_KEY("suffix=", KEY_SUFFIX),
    FUSE_OPT_KEY("cache_timeout=", KEY_CACHE_TIMEOUT),
    FUSE_OPT_KEY("drain_timeout=", KEY_DRAIN_TIMEOUT),
    FUSE_OPT_KEY("timeout=", KEY_TIMEOUT),
    FUSE_OPT_KEY("max_doc=", KEY_MAX_DOC),
    FUSE_OPT_KEY("op_timeout=", KEY_OP_TIMEOUT),
    FUSE_OPT_KEY("recovery_max=", KEY_RECOVERY_MAX),
    FUSE_OPT_KEY("cache_max=", KEY_CACHE_MAX),
    FUSE_OPT_KEY("mem_max=", KEY_MEM_MAX),
    FUSE_OPT_KEY("fps=", KEY_FPS),
    FUSE_OPT_KEY("max_threads=", KEY_MAX_THREADS),
    FUSE_OPT_KEY("uid=", KEY_UID),
    FUSE_OPT_KEY("gid=", KEY_GID),
    FUSE_OPT_KEY("umask=", KEY_UMASK),
    FUSE_OPT_KEY("loglevel=", KEY_LOGLEVEL),
    FUSE_OPT_KEY("ro", KEY_RO),
    FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
    FUSE_OPT_KEY("token=", KEY_TOKEN),
    FUSE_OPT_KEY("token", KEY_TOKEN),
    FUSE_OPT_KEY("fsname=", KEY_FSNAME),
    FUSE_OPT_KEY("subtype=", KEY_SUBTYPE),
    /* fstab-only: accepted and discarded (x-systemd.* and comment= in opt_proc) */
    FUSE_OPT_KEY("_netdev", KEY_DISCARD),
    FUSE_OPT_KEY("nofail", KEY_DISCARD),
    FUSE_OPT_KEY("auto", KEY_DISCARD),
    FUSE_OPT_KEY("noauto", KEY_DISCARD),
    FUSE_OPT_KEY("user", KEY_DISCARD),
    FUSE_OPT_KEY("user=", KEY_DISCARD),
    FUSE_OPT_KEY("nouser", KEY_DISCARD),
    FUSE_OPT_KEY("users", KEY_DISCARD),
    FUSE_OPT_KEY("defaults", KEY_DISCARD),
    FUSE_OPT_KEY("rw", KEY_DISCARD),
    /* atime variants libfuse 3.14 does not know; meaningless here */
    FUSE_OPT_KEY("relatime", KEY_DISCARD),
    FUSE_OPT_KEY("norelatime", KEY_DISCARD),
    FUSE_OPT_KEY("strictatime", KEY_DISCARD),
    FUSE_OPT_KEY("nostrictatime", KEY_DISCARD),
    FUSE_OPT_KEY("diratime", KEY_DISCARD),
    FUSE_OPT_KEY("nodiratime", KEY_DISCARD),
    FUSE_OPT_KEY("lazytime", KEY_DISCARD),
    FUSE_OPT_KEY("nolazytime", KEY_DISCARD),
    /* the command line */
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_KEY("--probe", KEY_PROBE),
    FUSE_OPT_KEY("-f", KEY_FOREGROUND),
    FUSE_OPT_KEY("-d", KEY_DEBUG),
    FUSE_OPT_KEY("debug", KEY_DEBUG),
    FUSE_OPT_KEY("-s", KEY_SINGLE),
    FUSE_OPT_END
};

/* Options libfuse (high-level layer, session or mount) understands and we
 * hand on unchanged. A trailing '=' means "takes a value". */
static const char *const pass_opts[] = {
    "attr_timeout=", "entry_timeout=", "negative_timeout=", "ac_attr_timeout=",
    "remember=", "noforget", "kernel_cache", "auto_cache", "noauto_cache",
    "allow_root", "auto_unmount",
    "dev", "nodev", "suid", "nosuid", "exec", "noexec", "async", "sync",
    "dirsync", "atime", "noatime",
    NULL
};

/** The help text: every option with its default. */
static void print_help(const char *prog)
{
    printf(
"usage: %s [SOURCE] MOUNTPOINT [-f] [-d] [-s] [-o opt,[opt...]]\n"
"       %s --probe [SOURCE] [-o opt,...]\n"
"       %s --help | --version\n"
"\n"
"Mount a SuperAnnotate team, project or folder: every item's annotation\n"
"document is a file.\n"
"\n"
"SOURCE: 'team' or '' (the whole team, default), '<project>' or\n"
"'<project>/<folder>'. With a single non-option argument, it is MOUNTPOINT.\n"
"\n"
"general options:\n"
"    -h, --help             print this help and exit 0\n"
"    -V, --version          print the version and exit 0\n"
"    --probe                check the API's inferred shapes against the account\n"
"                           (read-only) and exit 0 if all hold, 1 otherwise\n"
"    -f                     stay in the foreground (default: detach)\n"
"    -d                     debug: foreground and loglevel=debug (libfuse's own\n"
"                           request trace is not turned on)\n"
"    -s                     single-threaded: one FUSE worker, same as\n"
"                           -o max_threads=1 (default: multi-threaded)\n"
"\n"
"connection (-o):\n"
"    url=URL                base of every service (default: $SA_URL, else the\n"
"                           config file's, else " DEFAULT_URL ")\n"
"    item_url=URL           item service base (default: from url)\n"
"    wm_url=URL             work-management base (default: from url)\n"
"    assets_url=URL         assets-provider base, without version (default: from url)\n"
"    token_file=PATH        file holding the token; must not be readable by group\n"
"                           or others (default: unset; then $SA_TOKEN, then\n"
"                           ~/.superannotate/config.ini, then config.json)\n"
"    cafile=PATH            extra CA bundle (default: system CAs only)\n"
"    insecure               do not verify TLS (default: off; VERIFY_SSL=false too)\n"
"    timeout=SCALE          multiply every network deadline (default: 1)\n"
"    op_timeout=SECS        one file operation's deadline, all its requests and\n"
"                           retries included (default: 60 x timeout)\n"
"\n"
"behaviour (-o):\n"
"    keep_status            uploads keep the item's status (default: off, an\n"
"                           upload moves it to InProgress on system workflows)\n"
"    writeback              close() journals the bytes (fsync'd, no request) and a\n"
"                           background uploader sends them in batches; fsync\n"
"                           waits for them (default: off, close uploads)\n"
"    drain_timeout=SECS     unmount waits this long for journaled saves; the rest\n"
"                           stay journaled for the next mount (default: 60)\n"
"    suffix=S               ___objects.json or .json (default: ___objects.json)\n"
"    cache_timeout=SECS     listing and attribute cache lifetime (default: 5)\n"
"    max_doc=BYTES          largest document, K/M/G suffixes (default: 256M)\n"
"    fps=N                  frame rate of ___frames.json files (default: 1)\n"
"    list_frames            list ___frames.json files (default: off)\n"
"    recovery_dir=DIR       where refused or failed uploads are saved (default:\n"
"                           $XDG_CACHE_HOME/safs/recovery or ~/.cache/safs/recovery)\n"
"    recovery_max=BYTES     size of the recovery folder, oldest files pruned\n"
"                           first, K/M/G suffixes (default: 1G)\n"
"    cache_dir=DIR          spill files, and the document cache in DIR/<team key>\n"
"                           (default: $XDG_CACHE_HOME/safs or ~/.cache/safs;\n"
"                           /var/cache/safs without HOME); none: no document cache\n"
"    cache_max=BYTES        size of the document cache (default: 512M; K/M/G\n"
"                           suffixes), least recently used entries pruned first\n"
"    mem_max=BYTES          documents kept in memory (default: 64M, 256M with\n"
"                           cache_dir=none; K/M/G suffixes); beyond, the least\n"
"                           recently used are read again from the document cache\n"
"    max_threads=N          most FUSE worker threads (default: 64)\n"
"    uid=N, gid=N           owner of every file (default: the mounting user)\n"
"    umask=OCTAL            mode mask (default: 022)\n"
"    ro                     read-only mount (default: read-write)\n"
"    allow_other            let other users in; adds default_permissions\n"
"                           (default: off)\n"
"    loglevel=L             err, warning, notice, info, debug or 3..7\n"
"                           (default: info; -d gives debug)\n"
"    log_file=PATH          append the log to PATH (created 0600), with or\n"
"                           without -f, instead of syslog or stderr (default:\n"
"                           unset: stderr with -f, else syslog)\n"
"\n"
"accepted and ignored (fstab): _netdev, nofail, auto, noauto, user, users,\n"
"    nouser, defaults, rw, comment=..., x-systemd.*, relatime, strictatime,\n"
"    diratime, lazytime (and their no- forms)\n"
"passed to libfuse: attr_timeout, entry_timeout, negative_timeout,\n"
"    ac_attr_timeout, remember, noforget, kernel_cache, auto_cache,\n"
"    noauto_cache, allow_root, auto_unmount,\n"
"    fsname (default: safs#SOURCE), subtype (default: safs), and the mount\n"
"    flags dev, nodev, suid, nosuid, exec, noexec, async, sync, dirsync,\n"
"    atime, noatime\n"
"\n"
"The token is never accepted on the command line (-o token= is refused).\n",
           prog, prog, prog);
}

static int fail(struct parse_ctx *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(struct parse_ctx *p, const char *fmt, ...)
{
    if (!p->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
        p->failed = 1;
    }
    return -1;
}

/** "name=value" → value ("" when no '='). */
static const char *opt_value(const char *arg)
{
    const char *eq = strchr(arg, '=');
    return eq ? eq + 1 : "";
}

static int parse_double(struct parse_ctx *p, const char *arg, double *out, double min, int min_open)
{
    const char *v = opt_value(arg);
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (!*v || *end || errno || d != d || (min_open ? d <= min : d < min))
        return fail(p, "bad value in -o %s: expected a number %s %g", arg,
                    min_open ? ">" : ">=", min);
    *out = d;
    return 0;
}

static int parse_uint(struct parse_ctx *p, const char *arg, unsigned *out, int base,
                      unsigned long max)
{
    const char *v = opt_value(arg);
    char *end;
    errno = 0;
    unsigned long u = strtoul(v, &end, base);
    if (!*v || *end || errno || *v == '-' || u > max)
        return fail(p, "bad value in -o %s: expected %s", arg,
                    base == 8 ? "an octal mode" : "a non-negative integer");
    *out = (unsigned)u;
    return 0;
}

/** Bytes with an optional K/M/G (or KiB, MB…; powers of 1024) suffix. */
static int parse_size(struct parse_ctx *p, const char *arg, uint64_t *out)
{
    const char *v = opt_value(arg);
    char *end;
    errno = 0;
    unsigned long long u = strtoull(v, &end, 10);
    if (!*v || errno || *v == '-' || end == v)
        goto bad;
    unsigned shift = 0;
    if (*end) {
        switch (toupper((unsigned char)*end)) {
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        default: goto bad;
        }
        end++;
        if (!strcasecmp(end, "ib") || !strcasecmp(end, "b"))
            end += strlen(end);
        if (*end)
            goto bad;
    }
    if (u == 0 || (shift && u > (UINT64_MAX >> shift)))
        goto bad;
    *out = (uint64_t)u << shift;
    return 0;
bad:
    return fail(p, "bad value in -o %s: expected a size in bytes (K, M, G suffixes)", arg);
}

static int parse_loglevel(struct parse_ctx *p, const char *arg)
{
    static const struct { const char *name; int level; } names[] = {
        { "err", LOG_ERR }, { "error", LOG_ERR }, { "warning", LOG_WARNING },
        { "warn", LOG_WARNING }, { "notice", LOG_NOTICE }, { "info", LOG_INFO },
        { "debug", LOG_DEBUG },
    };
    const char *v = opt_value(arg);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcasecmp(v, names[i].name)) {
            p->c.loglevel = names[i].level;
            p->loglevel_set = 1;
            return 0;
        }
    if (v[0] >= '3' && v[0] <= '7' && !v[1]) {
        p->c.loglevel = v[0] - '0';
        p->loglevel_set = 1;
        return 0;
    }
    return fail(p, "bad value in -o %s: expected err, warning, notice, info, debug or 3..7", arg);
}

static int is_pass_opt(const char *arg)
{
    for (const char *const *o = pass_opts; *o; o++) {
        size_t n = strlen(*o);
        if ((*o)[n - 1] == '=' ? !strncmp(arg, *o, n) : !strcmp(arg, *o))
            return 1;
    }
    return 0;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    struct parse_ctx *p = data;
    (void)outargs;
    if (p->failed)
        return -1;
    switch (key) {
    case FUSE_OPT_KEY_NONOPT:
        if (p->npos >= 2)
            return fail(p, "too many arguments: '%s' (usage: safs [SOURCE] MOUNTPOINT)", arg);
        p->pos[p->npos] = strdup(arg);
        if (!p->pos[p->npos])
            return fail(p, "out of memory");
        p->npos++;
        return 0;
    case FUSE_OPT_KEY_OPT:
        if (!strncmp(arg, "x-systemd.", 10) || !strncmp(arg, "comment=", 8))
            return 0;
        if (is_pass_opt(arg))
            return 1;
        if (arg[0] == '-')
            return fail(p, "unknown option: %s (see safs --help)", arg);
        {
            size_t n = strcspn(arg, "=");
            return fail(p, "unknown option: -o %.*s (see safs --help)", (int)n, arg);
        }
    case KEY_HELP: p->help = 1; return 0;
    case KEY_VERSION: p->version = 1; return 0;
    case KEY_PROBE: p->c.probe = 1; return 0;
    case KEY_FOREGROUND: p->c.foreground = 1; return 0;
    case KEY_DEBUG: p->c.debug = 1; p->c.foreground = 1; return 0;
    case KEY_SINGLE: p->single = 1; return 0;
    case KEY_DISCARD: return 0;
    case KEY_TOKEN:
        return fail(p, "the token is never accepted on the command line: "
                       "use -o token_file=PATH (mode 0600) or the SA_TOKEN environment variable");
    case KEY_SUFFIX: {
        const char *v = opt_value(arg);
        if (strcmp(v, DEFAULT_SUFFIX) && strcmp(v, ".json"))
            return fail(p, "bad value in -o %s: only " DEFAULT_SUFFIX " or .json", arg);
        free(p->c.suffix);
        p->c.suffix = strdup(v);
        return p->c.suffix ? 0 : fail(p, "out of memory");
    }
    case KEY_CACHE_TIMEOUT: return parse_double(p, arg, &p->c.cache_timeout, 0, 0);
    case KEY_DRAIN_TIMEOUT: return parse_double(p, arg, &p->c.drain_timeout, 0, 0);
    case KEY_TIMEOUT: return parse_double(p, arg, &p->c.timeout_scale, 0, 1);
    case KEY_FPS: return parse_double(p, arg, &p->c.fps, 0, 1);
    case KEY_MAX_DOC: return parse_size(p, arg, &p->c.max_doc);
    case KEY_OP_TIMEOUT: return parse_double(p, arg, &p->c.op_timeout, 0, 1);
    case KEY_RECOVERY_MAX: return parse_size(p, arg, &p->c.recovery_max);
    case KEY_CACHE_MAX: return parse_size(p, arg, &p->c.cache_max);
    case KEY_MEM_MAX: return parse_size(p, arg, &p->c.mem_max);
    case KEY_MAX_THREADS: {
        unsigned u;
        if (parse_uint(p, arg, &u, 10, 100000))
            return -1;
        if (!u)
            return fail(p, "bad value in -o %s: expected at least 1", arg);
        p->c.max_threads = (int)u;
        return 0;
    }
    case KEY_UID: p->c.uid_set = 1; return parse_uint(p, arg, &p->c.uid, 10, UINT_MAX - 1);
    case KEY_GID: p->c.gid_set = 1; return parse_uint(p, arg, &p->c.gid, 10, UINT_MAX - 1);
    case KEY_UMASK: return parse_uint(p, arg, &p->c.umask, 8, 0777);
    case KEY_LOGLEVEL: return parse_loglevel(p, arg);
    case KEY_RO: p->c.read_only = 1; return 1;
    case KEY_ALLOW_OTHER: p->c.allow_other = 1; return 1;
    case KEY_FSNAME: p->fsname_given = 1; return 1;
    case KEY_SUBTYPE: p->subtype_given = 1; return 1;
    default:
        return fail(p, "internal error: option key %d", key);
    }
}

/* ------------------------------------------------------------------ */
/* Credentials                                                          */

static char *trim_dup(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) { s++; n--; }
    while (n && isspace((unsigned char)s[n - 1])) n--;
    return strndup(s, n);
}

/** Read @p path as a token file: a regular file nobody but its owner (and
 * root) can read. */
static int read_token_file(struct parse_ctx *p, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return fail(p, "token_file %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return fail(p, "token_file %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fail(p, "token_file %s refused: not a regular file", path);
    }
    if (st.st_mode & (S_IRGRP | S_IROTH)) {
        close(fd);
        return fail(p, "token_file %s refused: readable by group or others (mode %04o); "
                       "chmod 600 it", path, (unsigned)(st.st_mode & 07777));
    }
    if (st.st_size > MAX_TOKEN_FILE) {
        close(fd);
        return fail(p, "token_file %s refused: larger than %d bytes", path, MAX_TOKEN_FILE);
    }
    char buf[MAX_TOKEN_FILE + 1];
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return fail(p, "token_file %s: %s", path, strerror(e));
        }
        if (r == 0 || (len += (size_t)r) >= sizeof(buf) - 1)
            break;
    }
    close(fd);
    p->c.token = trim_dup(buf, len);
    explicit_bzero(buf, sizeof(buf));
    if (!p->c.token)
        return fail(p, "out of memory");
    if (!*p->c.token)
        return fail(p, "token_file %s is empty", path);
    if (asprintf(&p->c.token_source, "token_file %s", path) < 0) {
        p->c.token_source = NULL;
        return fail(p, "out of memory");
    }
    return 0;
}

/** "false", "0", "no", "off" (any case). */
static int is_false(const char *v)
{
    return !strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") ||
           !strcasecmp(v, "off");
}

struct cred_file {
    char *token, *url;
    int insecure;
};

static void cred_file_clear(struct cred_file *f)
{
    if (f->token) {
        explicit_bzero(f->token, strlen(f->token));
        free(f->token);
    }
    free(f->url);
    memset(f, 0, sizeof(*f));
}

/** ~/.superannotate/config.ini, Python configparser style: its [DEFAULT]
 * section, keys case-insensitive, "key = value" or "key: value", ';'/'#'
 * comment lines. Returns 1 if the file holds a token, 0 if not (or absent). */
static int read_config_ini(const char *path, struct cred_file *out)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    int in_default = 0;
    while (getline(&line, &cap, f) >= 0) {
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (!*s || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *e = strchr(s, ']');
            in_default = e && (size_t)(e - s - 1) == 7 && !strncmp(s + 1, "DEFAULT", 7);
            continue;
        }
        if (!in_default)
            continue;
        size_t k = strcspn(s, "=:");
        if (!s[k])
            continue;
        char *key = trim_dup(s, k);
        char *val = trim_dup(s + k + 1, strlen(s + k + 1));
        if (!key || !val) {
            free(key);
            free(val);
            break;
        }
        if (!strcasecmp(key, "SA_TOKEN")) {
            free(out->token);
            out->token = val;
            val = NULL;
        } else if (!strcasecmp(key, "SA_URL")) {
            free(out->url);
            out->url = val;
            val = NULL;
        } else if (!strcasecmp(key, "VERIFY_SSL")) {
            out->insecure = is_false(val);
        }
        free(key);
        if (val) {
            explicit_bzero(val, strlen(val));
            free(val);
        }
    }
    if (line) {
        explicit_bzero(line, cap);
        free(line);
    }
    fclose(f);
    if (out->token && !*out->token) {
        free(out->token);
        out->token = NULL;
    }
    if (out->url && !*out->url) {
        free(out->url);
        out->url = NULL;
    }
    return out->token != NULL;
}

/** ~/.superannotate/config.json: token, main_endpoint, ssl_verify. */
static int read_config_json(const char *path, struct cred_file *out)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return 0;
    if (json_is_object(root)) {
        const char *t = json_string_value(json_object_get(root, "token"));
        const char *u = json_string_value(json_object_get(root, "main_endpoint"));
        json_t *v = json_object_get(root, "ssl_verify");
        if (t && *t)
            out->token = trim_dup(t, strlen(t));
        if (u && *u)
            out->url = strdup(u);
        if (json_is_false(v) || (json_is_string(v) && is_false(json_string_value(v))) ||
            (json_is_integer(v) && json_integer_value(v) == 0))
            out->insecure = 1;
    }
    json_decref(root);
    return out->token && *out->token;
}

static int take_cred_file(struct parse_ctx *p, struct cred_file *cf, const char *source,
                          int url_from_env)
{
    p->c.token = cf->token;
    cf->token = NULL;
    if (!url_from_env && !p->c.url && cf->url) {
        p->c.url = cf->url;
        cf->url = NULL;
    }
    if (cf->insecure)
        p->c.insecure = 1;
    p->c.token_source = strdup(source);
    return p->c.token_source ? 0 : fail(p, "out of memory");
}

/** Token, in order: -o token_file, SA_TOKEN, ~/.superannotate/config.ini,
 * ~/.superannotate/config.json. A config file's URL and VERIFY_SSL are used
 * only with its own token (a token belongs to its server). */
static int resolve_token(struct parse_ctx *p)
{
    const char *env_url = getenv("SA_URL");
    int url_from_env = !p->c.url && env_url && *env_url;
    if (url_from_env && !(p->c.url = strdup(env_url)))
        return fail(p, "out of memory");

    if (p->c.token_file)
        return read_token_file(p, p->c.token_file);

    char *env = getenv("SA_TOKEN");
    if (env && *env) {
        p->c.token = trim_dup(env, strlen(env));
        p->c.token_source = strdup("SA_TOKEN");
        /* /proc/PID/environ reads the process's original environment block,
         * which unsetenv leaves as it was: wipe the value where it lies */
        explicit_bzero(env, strlen(env));
        unsetenv("SA_TOKEN");
        if (!p->c.token || !p->c.token_source)
            return fail(p, "out of memory");
        return 0;
    }

    const char *home = getenv("HOME");
    if (home && *home) {
        char path[PATH_MAX];
        struct cred_file cf = {0};
        snprintf(path, sizeof(path), "%s/.superannotate/config.ini", home);
        if (read_config_ini(path, &cf)) {
            int r = take_cred_file(p, &cf, "~/.superannotate/config.ini", url_from_env);
            cred_file_clear(&cf);
            return r;
        }
        cred_file_clear(&cf);
        snprintf(path, sizeof(path), "%s/.superannotate/config.json", home);
        if (read_config_json(path, &cf)) {
            int r = take_cred_file(p, &cf, "~/.superannotate/config.json", url_from_env);
            cred_file_clear(&cf);
            return r;
        }
        cred_file_clear(&cf);
    }
    return fail(p, "no token: use -o token_file=PATH (mode 0600), the SA_TOKEN environment "
                   "variable, or ~/.superannotate/config.ini");
}

/* ------------------------------------------------------------------ */

/** "" / "team" → ""; "safs#X" → X; trailing '/' dropped; at most one '/'. */
static int set_source(struct parse_ctx *p, const char *arg)
{
    if (!strncmp(arg, "safs#", 5))
        arg += 5;
    size_t n = strlen(arg);
    while (n && arg[n - 1] == '/')
        n--;
    while (n && *arg == '/') {
        arg++;
        n--;
    }
    if (n == 4 && !strncmp(arg, "team", 4))
        n = 0;
    p->c.source = strndup(arg, n);
    if (!p->c.source)
        return fail(p, "out of memory");
    char *slash = strchr(p->c.source, '/');
    if (slash && (slash == p->c.source || !slash[1] || strchr(slash + 1, '/')))
        return fail(p, "bad SOURCE '%s': expected team, <project> or <project>/<folder>", arg);
    return 0;
}

static char *cache_base(void)
{
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    char *s = NULL;
    int r;
    if (xdg && xdg[0] == '/')
        r = asprintf(&s, "%s/safs", xdg);
    else if (home && *home)
        r = asprintf(&s, "%s/.cache/safs", home);
    else
        r = asprintf(&s, "/tmp/safs-%u", (unsigned)getuid());
    return r < 0 ? NULL : s;
}

static int apply_defaults(struct parse_ctx *p)
{
    struct fs_config *c = &p->c;
    if (!c->source && !(c->source = strdup("")))
        return fail(p, "out of memory");
    if (!c->url && !(c->url = strdup(DEFAULT_URL)))
        return fail(p, "out of memory");
    if (!c->suffix && !(c->suffix = strdup(DEFAULT_SUFFIX)))
        return fail(p, "out of memory");
    char *base = cache_base();
    if (!base)
        return fail(p, "out of memory");
    if (!c->recovery_dir && asprintf(&c->recovery_dir, "%s/recovery", base) < 0) {
        c->recovery_dir = NULL;
        free(base);
        return fail(p, "out of memory");
    }
    if (c->cache_dir_opt && !strcmp(c->cache_dir_opt, "none")) {
        c->cache_none = 1;
        c->cache_dir = base;
    } else if (c->cache_dir_opt) {
        free(base);
        c->cache_dir = strdup(c->cache_dir_opt);
    } else {
        c->cache_dir = base;
    }
    if (!c->cache_dir)
        return fail(p, "out of memory");
    const char *vs = getenv("VERIFY_SSL");
    if (vs && is_false(vs))
        c->insecure = 1;
    if (p->single)
        c->max_threads = 1;
    if (c->debug && !p->loglevel_set)
        c->loglevel = LOG_DEBUG;
    return 0;
}

/** -o log_file: made absolute (the daemon chdirs to / when it detaches) and
 * opened for appending, created 0600 if missing. A FIFO nobody reads is
 * refused rather than waited for. */
static int open_log_file(struct parse_ctx *p)
{
    struct fs_config *c = &p->c;
    char *abs = NULL;
    struct stat st;
    int fd, fl;

    if (!c->log_file)
        return 0;
    if (!*c->log_file)
        return fail(p, "bad value in -o log_file=: expected a path");
    if (c->log_file[0] != '/') {
        char *cwd = getcwd(NULL, 0);
        if (!cwd)
            return fail(p, "log_file %s: cannot resolve a relative path: %s", c->log_file,
                        strerror(errno));
        int r = asprintf(&abs, "%s/%s", strcmp(cwd, "/") ? cwd : "", c->log_file);
        free(cwd);
        if (r < 0)
            return fail(p, "out of memory");
        free(c->log_file);
        c->log_file = abs;
    }
    fd = open(c->log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
              0600);
    if (fd < 0)
        return fail(p, "log_file %s: %s", c->log_file, strerror(errno));
    if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode) ||
                                S_ISFIFO(st.st_mode))) {
        close(fd);
        return fail(p, "log_file %s: not a regular file", c->log_file);
    }
    fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    c->log_fd = fd;
    return 0;
}

/** Add fsname=safs#SOURCE,subtype=safs (and default_permissions with
 * allow_other) to the arguments handed to libfuse. */
static int add_fuse_opts(struct parse_ctx *p, struct fuse_args *a)
{
    char *o = NULL;
    int r = 0;
    if (!p->fsname_given) {
        char *fsname = NULL;
        if (asprintf(&fsname, "fsname=safs#%s", *p->c.source ? p->c.source : "team") < 0)
            return fail(p, "out of memory");
        r = fuse_opt_add_opt_escaped(&o, fsname);
        free(fsname);
    }
    if (!r && !p->subtype_given)
        r = fuse_opt_add_opt(&o, "subtype=safs");
    if (!r && p->c.allow_other)
        r = fuse_opt_add_opt(&o, "default_permissions");
    if (!r && o)
        r = fuse_opt_add_arg(a, "-o") || fuse_opt_add_arg(a, o);
    free(o);
    return r ? fail(p, "out of memory") : 0;
}

int fs_config_parse(int argc, char **argv, struct fs_config *cfg, struct fuse_args *fuse_args,
                    char *err, size_t errlen)
{
    struct parse_ctx p;
    memset(&p, 0, sizeof(p));
    p.err = err;
    p.errlen = errlen;
    if (errlen)
        err[0] = '\0';
    p.c.timeout_scale = 1;
    p.c.cache_timeout = 5;
    p.c.drain_timeout = 60;
    p.c.max_doc = DEFAULT_MAX_DOC;
    p.c.recovery_max = (uint64_t)1 << 30;
    p.c.cache_max = (uint64_t)512 << 20;
    p.c.fps = 1;
    p.c.max_threads = DEFAULT_MAX_THREADS;
    p.c.umask = 022;
    p.c.loglevel = LOG_INFO;
    p.c.log_fd = -1;

    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    int ret = -1;
    if (fuse_opt_parse(&args, &p, opts, opt_proc) != 0) {
        if (!p.failed)
            fail(&p, "bad command line (see safs --help)");
        goto out;
    }
    if (p.help) {
        print_help(argc > 0 && argv[0] ? argv[0] : "safs");
        ret = 1;
        goto out;
    }
    if (p.version) {
        printf("safs %s (libfuse %d)\n", SAFS_VERSION, fuse_version());
        ret = 1;
        goto out;
    }

    if (p.c.probe) {
        if (p.npos > 1) {
            fail(&p, "--probe takes at most SOURCE, not a mountpoint");
            goto out;
        }
        if (set_source(&p, p.npos ? p.pos[0] : ""))
            goto out;
    } else {
        if (p.npos == 0) {
            fail(&p, "missing MOUNTPOINT (usage: safs [SOURCE] MOUNTPOINT [-o opts]; see --help)");
            goto out;
        }
        if (set_source(&p, p.npos == 2 ? p.pos[0] : ""))
            goto out;
        const char *mnt = p.pos[p.npos - 1];
        p.c.mountpoint = realpath(mnt, NULL);
        if (!p.c.mountpoint) {
            fail(&p, "mountpoint %s: %s", mnt, strerror(errno));
            goto out;
        }
        struct stat st;
        if (stat(p.c.mountpoint, &st) < 0 || !S_ISDIR(st.st_mode)) {
            fail(&p, "mountpoint %s: not a directory", mnt);
            goto out;
        }
    }
    if (resolve_token(&p) || apply_defaults(&p))
        goto out;
    if (add_fuse_opts(&p, &args) || open_log_file(&p))
        goto out;

    *cfg = p.c;
    memset(&p.c, 0, sizeof(p.c));
    *fuse_args = args;
    args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
    ret = 0;
out:
    for (int i = 0; i < p.npos; i++)
        free(p.pos[i]);
    fuse_opt_free_args(&args);
    if (ret != 0)
        fs_config_clear(&p.c);
    return ret;
}

void fs_config_clear(struct fs_config *cfg)
{
    if (!cfg)
        return;
    if (cfg->token) {
        explicit_bzero(cfg->token, strlen(cfg->token));
        free(cfg->token);
    }
    free(cfg->source);
    free(cfg->mountpoint);
    free(cfg->url);
    free(cfg->item_url);
    free(cfg->wm_url);
    free(cfg->assets_url);
    free(cfg->token_source);
    free(cfg->token_file);
    free(cfg->cafile);
    free(cfg->suffix);
    free(cfg->recovery_dir);
    free(cfg->cache_dir);
    free(cfg->cache_dir_opt);
    if (cfg->log_file && cfg->log_fd >= 0)
        close(cfg->log_fd);
    free(cfg->log_file);
    memset(cfg, 0, sizeof(*cfg));
}
