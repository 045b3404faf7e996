/** @file
 * safs command line, options and credentials (filesystem.md §7).
 * config.c owns option parsing (fuse_opt table), --help/--version, the token
 * sources and the fstab-only options; main.c owns start-up and the loop.
 */
#ifndef FS_CONFIG_H
#define FS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <fuse.h>

/** Every option of the mount. Strings are new (freed by fs_config_clear). */
struct fs_config {
    char *source;          /**< "" (team), "<project>" or "<project>/<folder>" */
    char *mountpoint;      /**< absolute */

    /* connection */
    char *url, *item_url, *wm_url, *assets_url; /**< -o url= etc. or SA_URL */
    char *token;           /**< resolved token (never logged, never in argv) */
    char *token_source;    /**< where it came from: "token_file /x", "SA_TOKEN", "~/.superannotate/config.ini" … */
    char *token_file;
    char *cafile;
    int insecure;          /**< -o insecure, or VERIFY_SSL=false / ssl_verify false */
    double timeout_scale;  /**< -o timeout= (a scale, default 1) */
    double op_timeout;     /**< -o op_timeout=: seconds one file operation may take in
                                all, every request and retry included (default 60 × timeout) */

    /* behaviour */
    int keep_status;       /**< -o keep_status */
    int writeback;         /**< -o writeback: close journals, a background uploader sends */
    double drain_timeout;  /**< -o drain_timeout= seconds at unmount (default 60) */
    char *suffix;          /**< "___objects.json" (default) or -o suffix=.json */
    double cache_timeout;  /**< seconds, default 5 */
    uint64_t max_doc;      /**< bytes, default 256 MiB */
    double fps;            /**< default 1 */
    int list_frames;
    char *recovery_dir;    /**< default $XDG_CACHE_HOME/safs/recovery or ~/.cache/safs/recovery */
    uint64_t recovery_max; /**< -o recovery_max=: bytes kept there, oldest pruned (default 1 GiB) */
    char *cache_dir;       /**< scratch and spill files; default $XDG_CACHE_HOME/safs */
    uint64_t cache_max;    /**< -o cache_max=: bytes of the document cache, oldest pruned (512 MiB) */
    int cache_none;        /**< -o cache_dir=none: no document cache */
    uint64_t mem_max;      /**< -o mem_max=: bytes of documents kept in memory; 0 = the default
                                (64 MiB with the disk cache, 256 MiB without) */
    int max_threads;       /**< default 64 */
    int uid_set, gid_set;
    unsigned uid, gid;
    unsigned umask;        /**< default 022 */
    int read_only;         /**< -o ro */
    int allow_other;       /**< turns on default_permissions */
    int loglevel;          /**< syslog level; default LOG_INFO, -d gives LOG_DEBUG */
    char *log_file;        /**< -o log_file=, made absolute; NULL if unset */
    int log_fd;            /**< log_file opened O_APPEND by fs_config_parse (meaningful only
                                when log_file is set; -1 before it is opened) */
    int foreground;        /**< -f (or -d) */
    int debug;             /**< -d */
    int probe;             /**< --probe */
    char *cache_dir_opt;   /**< -o cache_dir= as given (the document cache is <it>/<team key>), NULL if unset */
};

/** Parse argv. On success fills @p cfg and @p fuse_args (the arguments to
 * hand to fuse_new: the program name and the -o options libfuse's
 * high-level layer understands and we do not consume: attr_timeout,
 * entry_timeout, negative_timeout, allow_other (plus default_permissions,
 * added), ro is both ours and passed, fsname=safs#SOURCE and subtype=safs
 * are added), and returns 0. Our own options (url, token_file, …, -f, -d)
 * are consumed; fstab-only ones (_netdev, nofail, auto, noauto, user, users,
 * x-systemd.*, defaults) are discarded. Returns 1 after printing --help or --version
 * (exit 0), and -1 with a one-line reason in @p err on a usage error
 * (exit 1). Resolves the token as filesystem.md §7 orders the sources; the
 * token file is refused if group or others can read it. Opens -o log_file
 * last (append, created 0600), so a bad path is a usage error and a usage
 * error creates no log file. */
int fs_config_parse(int argc, char **argv, struct fs_config *cfg, struct fuse_args *fuse_args,
                    char *err, size_t errlen);
void fs_config_clear(struct fs_config *cfg);

#endif
