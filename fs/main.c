/** @file
 * safs: start-up order (style.md): parse -> client -> one real call
 * (pre-flight: user, team, SOURCE; fails on the terminal with a one-line
 * reason and exit code 1 before mounting) -> fuse_new -> fuse_mount ->
 * fuse_daemonize (-o log_file was opened by the parse, before it) ->
 * threads started in init -> fuse_loop_mt -> on exit:
 * scratch files that held data are logged (in destroy).
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>
#include <fuse.h>
#include <fuse_lowlevel.h>

#include "config.h"
#include "fs_i.h"
#include "probe.h"

#define DOC_CACHE_BUDGET (256ull << 20)      /* -o mem_max= default without the disk cache */
#define DOC_CACHE_BUDGET_DISK (64ull << 20)  /* ... and with it */

static void state_free(struct fs_state *st)
{
    if (!st)
        return;
    fs_wb_free(st);
    fs_tree_free(st);
    fs_dc_free(st);
    sa_client_free(st->c);
    free(st->email);
    free(st->stats_snap);
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->plist_mu);
    pthread_mutex_destroy(&st->inv_mu);
    pthread_cond_destroy(&st->inv_cv);
    pthread_rwlock_destroy(&st->kern_lk);
    fs_store_free(st);
    free(st);
}

static int preflight(struct fs_state *st, char *err, size_t errlen)
{
    struct sa_user u;
    struct sa_team t;
    enum sa_err e;

    e = sa_get_user(st->c, &u);
    if (e) {
        snprintf(err, errlen, "cannot sign in with the token from %s: %s%s%s%s",
                 st->cfg->token_source ? st->cfg->token_source : "?", sa_strerror(e),
                 *sa_last_error() ? ": " : "", sa_last_error(),
                 strstr(sa_last_error(), "certificate")
                     ? " (the server's TLS certificate is not trusted: name its CA with "
                       "-o cafile=PATH, or skip verification with -o insecure)"
                     : "");
        sa_user_clear(&u);
        return -1;
    }
    st->email = u.email ? strdup(u.email) : strdup("");
    sa_user_clear(&u);
    e = sa_get_team(st->c, &t);
    if (e) {
        snprintf(err, errlen, "cannot read the team: %s%s%s", sa_strerror(e),
                 *sa_last_error() ? ": " : "", sa_last_error());
        sa_team_clear(&t);
        return -1;
    }
    st->team_id = t.id;
    fs_log(st, LOG_INFO, "signed in as %s, team \"%s\" (%lld)", st->email,
           t.name ? t.name : "", t.id);
    sa_team_clear(&t);
    return fs_tree_init(st, err, errlen);
}

int main(int argc, char **argv)
{
    struct fs_config cfg;
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    struct fs_state *st = NULL;
    struct fuse *fuse = NULL;
    struct fuse_loop_config *lc = NULL;
    char err[1024] = "";
    int r, ret = 1, mounted = 0;

    /* before the token is read: no core dump, and no ptrace or
     * /proc/PID/mem by other processes of this user, can copy it
     * (docs/fs-choices.md, "The token") */
    prctl(PR_SET_DUMPABLE, 0);
    memset(&cfg, 0, sizeof cfg);
    r = fs_config_parse(argc, argv, &cfg, &args, err, sizeof err);
    if (r == 1) {
        ret = 0;
        goto out;
    }
    if (r < 0) {
        fprintf(stderr, "safs: %s\n", err);
        goto out;
    }
    st = calloc(1, sizeof *st);
    if (!st) {
        fprintf(stderr, "safs: out of memory\n");
        goto out;
    }
    if (cfg.op_timeout <= 0)
        cfg.op_timeout = 60.0 * cfg.timeout_scale;
    st->cfg = &cfg;
    st->loglevel = cfg.loglevel;
    st->foreground = cfg.foreground || cfg.probe;
    fs_store_init(st);
    st->ds.lru_budget = cfg.mem_max ? cfg.mem_max : DOC_CACHE_BUDGET;
    /* documents are many small buffers freed by any of up to max_threads
     * threads: glibc's default of 8 arenas per core kept freed bytes in
     * each (a 50,000-item cp -r peaked at 766 MB for a 256 MiB budget) */
    mallopt(M_ARENA_MAX, 2);
    st->attr_timeout = 1.0;
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        st->started_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->plist_mu, NULL);
    pthread_mutex_init(&st->inv_mu, NULL);
    pthread_cond_init(&st->inv_cv, NULL);
    pthread_rwlock_init(&st->kern_lk, NULL);
    {
        struct sa_config sc = {
            .token = cfg.token,
            .url = cfg.url,
            .item_url = cfg.item_url,
            .wm_url = cfg.wm_url,
            .assets_url = cfg.assets_url,
            .cafile = cfg.cafile,
            .insecure = cfg.insecure,
            .timeout_scale = cfg.timeout_scale,
            .max_connections = 16,
            /* one document (or response) from the server: max_doc plus
             * headroom for the server's pretty-printing and metadata */
            .max_body = (size_t)cfg.max_doc + cfg.max_doc / 8 + ((size_t)1 << 20),
            .log = fs_client_log,
            .log_ud = st,
        };
        st->c = sa_client_new(&sc, err, sizeof err);
        if (!st->c) {
            fprintf(stderr, "safs: %s\n", err);
            goto out;
        }
    }
    if (cfg.probe) {
        ret = fs_probe(&cfg, st->c);
        goto out;
    }
    if (cfg.insecure)
        fs_log(st, LOG_WARNING, "TLS certificates are NOT verified (insecure)");
    if (preflight(st, err, sizeof err) || fs_wb_init(st, err, sizeof err)) {
        fprintf(stderr, "safs: %s\n", err);
        goto out;
    }
    fs_dc_init(st);
    /* with the disk cache behind it, memory needs less (a dropped document
     * is read back from the disk, not downloaded) */
    if (!cfg.mem_max && st->dc)
        st->ds.lru_budget = DOC_CACHE_BUDGET_DISK;
    fuse = fuse_new(&args, &fs_ops, sizeof fs_ops, st);
    if (!fuse) {
        fprintf(stderr, "safs: cannot set up FUSE (see the message above)\n");
        goto out;
    }
    if (fuse_mount(fuse, cfg.mountpoint)) {
        fprintf(stderr, "safs: cannot mount on %s\n", cfg.mountpoint);
        goto out;
    }
    mounted = 1;
    if (!cfg.foreground && !cfg.log_file)
        openlog("safs", LOG_PID, LOG_DAEMON);
    if (fuse_daemonize(cfg.foreground)) {
        fprintf(stderr, "safs: cannot detach\n");
        goto out;
    }
    /* detached with a log file: what libfuse or a sanitizer prints on
     * stderr (now /dev/null) goes to the log file too */
    if (!cfg.foreground && cfg.log_file && cfg.log_fd >= 0)
        dup2(cfg.log_fd, STDERR_FILENO);
    if (fuse_set_signal_handlers(fuse_get_session(fuse))) {
        fs_log(st, LOG_ERR, "cannot install signal handlers");
        goto out;
    }
    fs_log(st, LOG_INFO, "mounted %s on %s", *cfg.source ? cfg.source : "team",
           cfg.mountpoint);
    lc = fuse_loop_cfg_create();
    if (!lc)
        goto out_sig;
    fuse_loop_cfg_set_max_threads(lc, cfg.max_threads > 0 ? (unsigned)cfg.max_threads : 64);
    fuse_loop_cfg_set_clone_fd(lc, 0);
    ret = fuse_loop_mt(fuse, lc) ? 1 : 0;
    fs_kernel_detach(st);
    fs_log(st, LOG_INFO, "unmounting %s", cfg.mountpoint);
out_sig:
    fuse_remove_signal_handlers(fuse_get_session(fuse));
out:
    fs_kernel_detach(st);
    if (lc)
        fuse_loop_cfg_destroy(lc);
    if (fuse) {
        if (mounted)
            fuse_unmount(fuse);
        fuse_destroy(fuse);
    }
    state_free(st);
    fuse_opt_free_args(&args);
    fs_config_clear(&cfg);
    return ret;
}
