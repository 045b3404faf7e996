/* fs/config.c: the command line (fuse_opt) and ~/.superannotate/config.ini,
 * through fs_config_parse as main.c calls it.
 * Input: the config.ini bytes, then, NUL-separated, the arguments after
 * argv[0] (none: "project/folder MOUNTPOINT"). The run happens in a private
 * directory (HOME, the mountpoint and the working directory are in it);
 * inputs naming log_file (which creates a file where it points) or holding
 * a backslash (fuse_opt's escape, which could spell it) are skipped.
 * Properties: a result of -1 (with a reason), 0 or 1; on success the token
 * is non-empty and trimmed, the source has at most one inner '/', the
 * mountpoint is absolute, the fuse arguments start with argv[0]; nothing
 * leaks (LeakSanitizer). */
#include <fcntl.h>
#include <ftw.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ctype.h>

#include "config.h"
#include "fuzz.h"

static char dir[256], home[300], ini[340], mnt[300];
static char prog[] = "safs", dflt_src[] = "project/folder";

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static void cleanup(void)
{
    if (dir[0])
        nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    const char *tmp = getenv("SAFS_FUZZ_TMP");
    if (!tmp || !*tmp)
        tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/safs-fuzz-config-XXXXXX", tmp);
    if (!mkdtemp(dir))
        abort();
    atexit(cleanup);
    snprintf(home, sizeof home, "%s/home", dir);
    snprintf(mnt, sizeof mnt, "%s/mnt", dir);
    snprintf(ini, sizeof ini, "%s/.superannotate/config.ini", home);
    char sa[320];
    snprintf(sa, sizeof sa, "%s/.superannotate", home);
    if (mkdir(home, 0700) || mkdir(sa, 0700) || mkdir(mnt, 0700) || chdir(dir))
        abort();
    setenv("HOME", home, 1);
    unsetenv("SA_TOKEN");
    unsetenv("SA_URL");
    unsetenv("VERIFY_SSL");
    unsetenv("XDG_CACHE_HOME");
    /* --help and --version print to stdout */
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
        dup2(null, 1);
        close(null);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (!dir[0])
            LLVMFuzzerInitialize(NULL, NULL);
        ready = 1;
    }
    if (memchr(data, '\\', size))
        return 0;
    char *buf = malloc(size + 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = 0;
    size_t il = strlen(buf);
    /* the arguments */
    char *argv[64];
    int argc = 0;
    argv[argc++] = prog;
    for (size_t i = il + 1; i <= size && argc < 63;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    for (int i = 1; i < argc; i++)
        if (strstr(argv[i], "log_file")) {
            free(buf);
            return 0;
        }
    if (argc == 1) {
        argv[argc++] = dflt_src;
        argv[argc++] = mnt;
    }
    argv[argc] = NULL;

    int fd = open(ini, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    if (il && write(fd, buf, il) != (ssize_t)il)
        abort();
    close(fd);

    struct fs_config cfg;
    memset(&cfg, 0, sizeof cfg);
    struct fuse_args fa = FUSE_ARGS_INIT(0, NULL);
    char err[512];
    int r = fs_config_parse(argc, argv, &cfg, &fa, err, sizeof err);
    FUZZ_CHECK(r >= -1 && r <= 1, "result %d", r);
    if (r == -1)
        FUZZ_CHECK(memchr(err, 0, sizeof err) && err[0], "a usage error without a reason");
    if (r == 0) {
        FUZZ_CHECK(cfg.token && cfg.token[0], "no token");
        size_t tl = strlen(cfg.token);
        FUZZ_CHECK(!isspace((unsigned char)cfg.token[0]) &&
                       !isspace((unsigned char)cfg.token[tl - 1]),
                   "token not trimmed");
        FUZZ_CHECK(cfg.token_source && cfg.url && cfg.suffix && cfg.source, "defaults");
        const char *sl = strchr(cfg.source, '/');
        FUZZ_CHECK(!sl || (sl != cfg.source && sl[1] && !strchr(sl + 1, '/')),
                   "bad source '%s'", cfg.source);
        FUZZ_CHECK(cfg.probe || (cfg.mountpoint && cfg.mountpoint[0] == '/'), "mountpoint");
        FUZZ_CHECK(fa.argc >= 1 && !strcmp(fa.argv[0], "safs"), "fuse args");
        FUZZ_CHECK(cfg.max_threads >= 1 && cfg.fps > 0 && cfg.max_doc > 0 &&
                       cfg.cache_timeout >= 0 && cfg.timeout_scale > 0 && cfg.umask <= 0777,
                   "a value out of range");
        fs_config_clear(&cfg);
        fuse_opt_free_args(&fa);
    }
    free(buf);
    return 0;
}
