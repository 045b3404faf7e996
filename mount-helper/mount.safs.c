/** @file
 * mount.safs: the helper mount(8) runs for `mount -t safs SOURCE DIR -o opts`
 * and for fstab lines of type `safs`.
 *
 *     mount.safs SOURCE DIR [-sfnvi] [-N ns] [-t type] [-o opts]
 *
 * -s sloppy (drop options safs does not know), -f fake (check and print,
 * do not mount), -n no mtab (nothing to do: /etc/mtab is a symlink), -v
 * verbose (print the safs command). Runs `safs SOURCE DIR -o opts` with the
 * fstab-only options dropped, waits for it (safs returns once the mount is
 * up, or fails before it detaches) and maps the result to mount(8)'s exit
 * codes: 0 mounted, 1 bad usage, 32 mount failure.
 *
 * The safs binary is looked up next to this helper (its real path), then in
 * ../fs/ of it (the build tree), then in the configured bindir, then on PATH.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SAFS_BINDIR
#define SAFS_BINDIR "/usr/local/bin"
#endif

enum { EX_OK_ = 0, EX_USAGE_ = 1, EX_FAIL_ = 32 };

/* fstab-only options: dropped. A trailing '=' or '.' matches a prefix. */
static const char *const fstab_only[] = {
    "_netdev", "nofail", "auto", "noauto", "user", "user=", "users", "nouser",
    "defaults", "rw", "x-systemd.", "x-", "comment=", "owner", "group",
    "relatime", "norelatime", "strictatime", "nostrictatime", "diratime",
    "nodiratime", "lazytime", "nolazytime", NULL
};

/* What safs accepts (fs/config.c); with -s anything else is dropped. */
static const char *const known[] = {
    "url=", "item_url=", "assets_url=", "wm_url=", "token_file=", "cafile=",
    "insecure", "keep_status", "suffix=", "cache_timeout=", "timeout=",
    "max_doc=", "fps=", "list_frames", "recovery_dir=", "cache_dir=",
    "max_threads=", "uid=", "gid=", "umask=", "ro", "allow_other", "loglevel=", "log_file=",
    "debug", "fsname=", "subtype=",
    "attr_timeout=", "entry_timeout=", "negative_timeout=", "ac_attr_timeout=",
    "remember=", "noforget", "kernel_cache", "auto_cache", "noauto_cache",
    "allow_root", "auto_unmount",
    "dev", "nodev", "suid", "nosuid", "exec", "noexec", "async", "sync",
    "dirsync", "atime", "noatime",
    NULL
};

static int matches(const char *opt, const char *const *list)
{
    for (const char *const *o = list; *o; o++) {
        size_t n = strlen(*o);
        char last = (*o)[n - 1];
        if ((last == '=' || last == '.' || last == '-') ? !strncmp(opt, *o, n)
                                                        : !strcmp(opt, *o))
            return 1;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mount.safs SOURCE DIR [-sfnv] [-o opts]\n"
               "       (run by mount(8): mount -t safs SOURCE DIR -o opts; see safs(1))\n");
}

/** Append @p opt to the comma-separated list @p *out. */
static int add_opt(char **out, size_t *len, const char *opt, size_t n)
{
    char *p = realloc(*out, *len + n + 2);
    if (!p)
        return -1;
    *out = p;
    if (*len)
        p[(*len)++] = ',';
    memcpy(p + *len, opt, n);
    *len += n;
    p[*len] = '\0';
    return 0;
}

/** Find the safs binary; returns a new string or NULL. */
static char *find_safs(void)
{
    char self[PATH_MAX];
    char *cand = NULL;
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            const char *rel[] = { "/safs", "/../fs/safs" };
            for (size_t i = 0; i < 2; i++) {
                if (asprintf(&cand, "%s%s", self, rel[i]) < 0)
                    return NULL;
                if (access(cand, X_OK) == 0)
                    return cand;
                free(cand);
                cand = NULL;
            }
        }
    }
    if (access(SAFS_BINDIR "/safs", X_OK) == 0)
        return strdup(SAFS_BINDIR "/safs");
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    char *copy = strdup(path), *save = NULL;
    for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
        if (asprintf(&cand, "%s/safs", d) < 0) {
            cand = NULL;
            break;
        }
        if (access(cand, X_OK) == 0)
            break;
        free(cand);
        cand = NULL;
    }
    free(copy);
    return cand;
}

int main(int argc, char **argv)
{
    int sloppy = 0, fake = 0, verbose = 0;
    char *opts = NULL;
    size_t olen = 0;
    const char *pos[2];
    int npos = 0;
    int ret = EX_USAGE_;

    /* mount(8) may put options before or after the two operands. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1]) {
            if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                usage(stdout);
                free(opts);
                return EX_OK_;
            }
            for (const char *c = a + 1; *c; c++) {
                switch (*c) {
                case 's': sloppy = 1; break;
                case 'f': fake = 1; break;
                case 'n': break;
                case 'v': verbose = 1; break;
                case 'i': break;
                case 'o': case 't': case 'N': {
                    const char *val = c[1] ? c + 1 : (i + 1 < argc ? argv[++i] : NULL);
                    if (!val) {
                        fprintf(stderr, "mount.safs: -%c needs a value\n", *c);
                        usage(stderr);
                        goto out;
                    }
                    if (*c == 'o' && add_opt(&opts, &olen, val, strlen(val)))
                        goto nomem;
                    if (*c == 'N') {
                        fprintf(stderr, "mount.safs: -N (mount namespaces) is not supported\n");
                        goto out;
                    }
                    goto next_arg; /* the rest of this argument was the value */
                }
                default:
                    fprintf(stderr, "mount.safs: unknown option -%c\n", *c);
                    usage(stderr);
                    goto out;
                }
            }
        next_arg:
            continue;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "mount.safs: too many arguments: %s\n", a);
            usage(stderr);
            goto out;
        }
    }
    if (npos != 2) {
        usage(stderr);
        goto out;
    }

    /* Filter the options: drop fstab-only ones; with -s, unknown ones too. */
    char *kept = NULL;
    size_t klen = 0;
    if (opts) {
        char *save = NULL;
        for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
            if (!*o || matches(o, fstab_only))
                continue;
            if (!matches(o, known)) {
                if (sloppy) {
                    if (verbose)
                        fprintf(stderr, "mount.safs: ignoring unknown option %s (sloppy)\n", o);
                    continue;
                }
                if (!strncmp(o, "token=", 6) || !strcmp(o, "token"))
                    fprintf(stderr, "mount.safs: the token is never accepted in options: "
                                    "use token_file=PATH (mode 0600)\n");
                else
                    fprintf(stderr, "mount.safs: unknown option %.*s (see safs --help)\n",
                            (int)strcspn(o, "="), o);
                free(kept);
                goto out;
            }
            if (add_opt(&kept, &klen, o, strlen(o))) {
                free(kept);
                goto nomem;
            }
        }
    }

    char *safs = find_safs();
    if (!safs) {
        fprintf(stderr, "mount.safs: safs binary not found (looked next to mount.safs, in "
                        SAFS_BINDIR " and on PATH)\n");
        free(kept);
        ret = EX_FAIL_;
        goto out;
    }
    const char *cmd[7];
    int nc = 0;
    cmd[nc++] = safs;
    cmd[nc++] = pos[0];
    cmd[nc++] = pos[1];
    if (kept) {
        cmd[nc++] = "-o";
        cmd[nc++] = kept;
    }
    cmd[nc] = NULL;
    if (verbose || fake) {
        fprintf(stderr, "mount.safs: %s", fake ? "would run:" : "running:");
        for (int i = 0; i < nc; i++)
            fprintf(stderr, " '%s'", cmd[i]);
        fputc('\n', stderr);
    }
    if (fake) {
        ret = EX_OK_;
    } else {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "mount.safs: fork: %s\n", strerror(errno));
            ret = EX_FAIL_;
        } else if (pid == 0) {
            execv(safs, (char *const *)cmd);
            fprintf(stderr, "mount.safs: cannot run %s: %s\n", safs, strerror(errno));
            _exit(127);
        } else {
            int st;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                ret = EX_OK_;
            else {
                if (WIFSIGNALED(st))
                    fprintf(stderr, "mount.safs: safs killed by signal %d\n", WTERMSIG(st));
                ret = EX_FAIL_;
            }
        }
    }
    free(safs);
    free(kept);
out:
    free(opts);
    return ret;
nomem:
    fprintf(stderr, "mount.safs: out of memory\n");
    free(opts);
    return EX_FAIL_;
}
