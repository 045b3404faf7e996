/** @file
 * safs internals: the state struct, the in-memory tree, the document store
 * and the helpers each fs/ source file provides. Private to fs/.
 * docs/architecture.md maps the modules, the call paths and the lock order.
 *
 * Lock order (outermost first; a lock is never taken while a later one is
 * held, and no network call or disk I/O happens under st->mu or ds.mu):
 *   1. fs_handle.mu          one open file (reads, writes, its save)
 *   2. fs_item.save_mu       saves, deletes and status changes of one item
 *                            (network calls happen under it)
 *   3. list_mu               one listing fetch per project / folder (network)
 *   4. fs_scratch.mu         one scratch file's bytes and attributes
 *   5. st->mu                the tree: projects, folders, items, names, maps
 *   6. st->ds.mu             the document store: versions, keys, sizes, open
 *                            handles, unlink state, what the kernel was given
 *   7. leaf locks            inv_mu (kernel invalidation queue), kern_lk
 *                            (-o writeback: wb->mu, the uploader's queue;
 *                            journal I/O happens outside it but for the
 *                            rewrite of a waiting record; after it journal.c's
 *                            jmu, the open log, held over an append and its
 *                            flush; wf_mu, the workflow cache),
 *                            (shared around one notification), the
 *                            deleter's and fetchers' queues (ds.mu guards them),
 *                            dc->mu (diskcache.c: counters; its file I/O runs
 *                            with none of these held)
 * Kernel notifications (fs_kernel_inval_*) are sent with none of these held.
 */
#ifndef FS_I_H
#define FS_I_H

#include <pthread.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <fuse.h>

#include "config.h"
#include "sa/client.h"

/* ---------------------------------------------------------------- map */
/** String -> pointer hash table. Keys are copied; values borrowed. */
struct fs_map_ent { struct fs_map_ent *next; char *key; void *val; };
struct fs_map { struct fs_map_ent **b; size_t nb, n; };
void fs_map_init(struct fs_map *m);
void fs_map_clear(struct fs_map *m);
void *fs_map_get(const struct fs_map *m, const char *key);
int fs_map_put(struct fs_map *m, const char *key, void *val);
void *fs_map_del(struct fs_map *m, const char *key);
/** Calls fn for each entry (order unspecified). */
void fs_map_each(const struct fs_map *m, void (*fn)(void *ud, const char *k, void *v), void *ud);

/* ------------------------------------------------------------- buffer */
/** A growable byte buffer that spills to an unlinked temp file beyond
 * FS_BUF_SPILL bytes. Not thread-safe: the owner locks. */
#define FS_BUF_SPILL (4u << 20)
struct fs_buf { char *mem; size_t len, cap; int fd; const char *dir; };
void fs_buf_init(struct fs_buf *b, const char *spill_dir);
void fs_buf_free(struct fs_buf *b);
int fs_buf_pwrite(struct fs_buf *b, const char *data, size_t n, off_t off); /* 0 / -errno */
ssize_t fs_buf_pread(const struct fs_buf *b, char *out, size_t n, off_t off);
int fs_buf_truncate(struct fs_buf *b, off_t size);
int fs_buf_set(struct fs_buf *b, const char *data, size_t n);
/** A new malloc'd copy of the whole content (NUL-terminated). */
int fs_buf_copy(const struct fs_buf *b, char **out, size_t *len);

/* ------------------------------------------------------------ versions */
/** One version of an item's document, as this mount serves it: immutable
 * bytes (pretty-printed) for a version key. Reference-counted under ds.mu:
 * `refs` keep the identity (key, length, hash) alive, `pins` keep the bytes
 * (readers, bases that must be compared); unpinned bytes may be evicted by
 * the memory budget, the identity stays. */
struct fs_ver {
    int refs, pins;
    int64_t ms;             /**< key: updatedAt (epoch ms) */
    int status;             /**< key: annotation_status value */
    char *data;             /**< NUL-terminated; NULL once evicted */
    size_t len;
    uint64_t hash;          /**< of the bytes */
    int settled;            /**< fetched at server time >= updatedAt + 1 s: the key proves the bytes */
    int derived;            /**< computed locally after this mount's own change */
    double made;            /**< fs_now() when learned. An unsettled version's length is
                                 trusted for max(cache_timeout, FS_LOOKUP_MIN_TTL) after
                                 it; its bytes for cache_timeout (own computed bytes: the
                                 longer of the two) */
    struct fs_ver *next;    /**< successor by this mount's own change (a ref), or NULL */
    struct fs_ver *lru_prev, *lru_next;
    int in_lru;
};

/** unlink state of an item (filesystem.md §2 `unlink`). */
enum fs_tomb {
    FS_TOMB_NONE = 0,
    FS_TOMB_GRACE,      /**< hidden; the delete is due at tomb_due unless re-created */
    FS_TOMB_DELETING,   /**< hidden; the deleter is sending it */
    FS_TOMB_GONE,       /**< hidden until the item's key differs from the hide key */
};

struct fs_handle;
struct fs_item;

/** The store's per-item state. Every field is guarded by st->ds.mu. */
struct fs_doc {
    int has_key;
    int64_t ms;             /**< the platform's version as last learned */
    int status;
    double key_at;          /**< fs_now() before the request that taught it */
    struct fs_ver *cur;     /**< the version for the current key, or NULL */
    struct fs_ver *served;  /**< the version this mount last served to a reader */
    int fetching;           /**< a single download is in flight (others wait) */
    int batching;           /**< part of an in-flight batch fetch */
    int ra_mark;            /**< a stat here asks for the next batch (read-ahead) */
    int fetch_err;          /**< errno of the last failed fetch of the key ... */
    double fetch_err_at;    /**< ... and when (fs_now) */
    char *pending_status;   /**< status name to set after the next save */
    uint64_t estale_seq;    /**< writers older than this keep failing with ESTALE */
    uint64_t deleted_seq;   /**< handles older than this are never uploaded */
    int has_mtime;          /**< mtime set by a program, for key (mtime_ms, mtime_status) */
    struct timespec mtime;
    int64_t mtime_ms;
    int mtime_status;
    int has_pending_mtime;  /**< set by utimens while a writer had unsaved bytes ... */
    struct timespec pending_mtime; /**< ... and carried by that writer's save */
    int k_valid;            /**< the kernel may hold attributes with size k_size */
    size_t k_size;
    double k_at;
    struct fs_handle *open; /**< open item handles (fs_handle.onext) */
    enum fs_tomb tomb;
    double tomb_due;
    struct fs_ver *tomb_pre;/**< the version when unlinked (a ref), or NULL */
    int64_t hide_ms;        /**< FS_TOMB_GONE: hidden while the key is this one */
    int hide_status;
    struct fs_item *tomb_next; /**< the deleter's queue */
    int tomb_queued;        /**< in that queue (it holds a ref) */
    /* -o writeback (uploader.c): the journaled save not yet landed */
    struct fs_ver *wb;      /**< its final form (a ref, pinned): stat and read show it */
    struct timespec wb_mtime; /**< the mtime shown for it, kept across the landing */
    int wb_status;          /**< the status its final form shows (the xattr's too) */
};

/* --------------------------------------------------------------- tree */
struct fs_state;
struct fs_folder;
struct fs_project;

struct fs_item {
    long long id;
    struct fs_folder *folder;
    char *name;             /**< platform name (st->mu) */
    char *fname;            /**< shown file name, suffix included (st->mu) */
    int present;            /**< in the last listing (st->mu) */
    int refs;               /**< holders besides the tree (st->mu): freed when absent and 0 */
    char *created_at, *updated_at; /**< strings for xattrs (st->mu) */
    pthread_mutex_t save_mu;/**< serializes saves, deletes and status changes */
    struct fs_doc doc;      /**< the store's state (st->ds.mu) */
};

struct fs_ghost {           /**< `.fuse_hidden…`: an unlinked item still open */
    struct fs_item *item;   /**< a ref */
    size_t size;
    struct timespec mtime;
    double gone_at;         /**< libfuse unlinked it at the last close (fs_now; 0: not) */
};

struct fs_folder {
    long long id;
    struct fs_project *proj;
    char *name;             /**< platform name ("root" for the root) */
    char *dname;            /**< shown directory name */
    int is_root;
    int present;
    char *updated_at;
    pthread_mutex_t list_mu;
    int listed;
    double listed_at, list_dur;
    struct fs_map by_id;    /**< "%lld" -> item (present, or absent but referenced) */
    struct fs_map by_fname; /**< shown file name -> present item */
    struct fs_item **items; /**< present items, listing order */
    size_t n_items;
    struct fs_map scratch;  /**< name -> struct fs_scratch */
    struct fs_map ghosts;   /**< `.fuse_hidden…` name -> struct fs_ghost */
    /* batch fetches (fetch.c), under ds.mu */
    int fetch_running;
    size_t ra_next;         /**< listing index where read-ahead continues */
    struct fs_fetch_job *jobs, *jobs_tail;
    int fetch_err;          /**< errno of the last failed batch request, until ... */
    double fetch_err_until; /**< ... fs_now() reaches this: the next attempt is due */
};

struct fs_project {
    struct sa_project p;
    char *dname;
    int present;
    const char *suffix;     /**< file-name suffix of this project's items */
    pthread_mutex_t list_mu;
    int listed;
    double listed_at, list_dur;
    struct fs_folder *root;
    struct fs_map by_id;    /**< folders, "%lld" */
    struct fs_map by_dname; /**< present non-root folders */
    struct fs_folder **folders;
    size_t n_folders;
    /* the SDK's classes/classes.json (classes.c), under st->mu */
    char *classes;
    size_t classes_len;
    double classes_at;
};

struct fs_xattr { struct fs_xattr *next; char *name; char *value; size_t len; };

struct fs_scratch {
    char *name;
    struct fs_folder *folder;
    pthread_mutex_t mu;     /**< guards buf, times, mode, xattrs */
    struct fs_buf buf;
    mode_t mode;
    struct timespec atime, mtime, ctime;
    struct fs_xattr *xattrs;
    int nopen;              /**< open handles (st->mu) */
    int refs;               /**< resolved locations holding it (st->mu) */
    int linked;             /**< in folder->scratch (st->mu) */
    int became;             /**< became an annotation */
    uint64_t seq;           /**< creation generation */
};

enum fs_hkind { FS_H_ITEM, FS_H_SCRATCH, FS_H_FRAMES, FS_H_DIR, FS_H_CLASSES };
struct fs_handle {
    enum fs_hkind kind;
    struct fs_item *item;   /**< a ref (FS_H_ITEM, FS_H_FRAMES) */
    struct fs_scratch *scr; /**< counted in scr->nopen */
    struct fs_project *proj;/**< FS_H_CLASSES */
    pthread_mutex_t mu;
    struct fs_ver *ver;     /**< FS_H_ITEM: the pinned version served at open, until written */
    struct fs_buf buf;      /**< FS_H_ITEM once written (own), FS_H_FRAMES, FS_H_CLASSES */
    int own;                /**< buf holds this handle's bytes */
    struct fs_ver *base;    /**< the version a save is judged against (a ref), NULL = blind */
    int writable;
    int dirty;              /**< unsaved writes */
    int err;                /**< a refused or failed save: flush returns it until written again */
    uint64_t seq;           /**< generation at open */
    char *path;
    int set_mtime;
    struct timespec mtime;
    /* the store's view (ds.mu) */
    struct fs_handle *onext;
    size_t olen;            /**< length of this handle's bytes */
    int odirty;
    uint64_t owseq;         /**< order of the last write (the newest dirty length is shown) */
};

/* --------------------------------------------------------------- store */
struct fs_fetch_job;

/** A tier below the store's memory (the on-disk cache of issue 11 plugs in
 * here). Called without any lock. get: 0 and new bytes (pretty, as served)
 * for exactly that key, with whether they are settled; -ENOENT if absent.
 * put: bytes the store just fetched or computed, for that key. */
struct fs_tier {
    int (*get)(void *ud, long long item_id, int64_t ms, int status, char **data, size_t *len,
               int *settled);
    void (*put)(void *ud, long long item_id, int64_t ms, int status, const char *data,
                size_t len, int settled);
    void *ud;
};

struct fs_store {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /**< any version, fetch or tomb change */
    struct fs_ver *lru_head, *lru_tail;
    size_t lru_bytes, lru_budget;
    uint64_t wseq;
    /* deleter (unlink.c) */
    struct fs_item *tomb_head;
    int del_stop, del_started, del_busy;
    pthread_t del_thread;
    pthread_cond_t del_cv;
    /* background fetch workers (fetch.c) */
    int fetchers;
    volatile int bg_cancel;     /**< unmount: background fetches stop */
    const struct fs_tier *tier; /**< below memory, or NULL (set before mounting) */
};

/* ---------------------------------------------------------------- state */
struct fs_stats_own {
    uint64_t cache_hits, cache_misses, uploads, uploads_skipped, conflicts, deletes;
};

struct fs_state {
    struct fs_config *cfg;
    struct sa_client *c;
    struct fuse *fuse;
    char *email;
    long long team_id;
    int level;              /**< 0 team, 1 project, 2 folder */
    char *src_project, *src_folder;
    int loglevel, foreground;
    int64_t started_ms;     /**< mount time: the team root's mtime */
    double attr_timeout;    /**< the kernel's attribute TTL (fuse_config) */

    pthread_mutex_t mu;
    /* Project and folder names replaced by a re-list: other threads may read
     * them without st->mu, so an old name lives until unmount (rare). */
    char **retired_names;
    size_t n_retired, cap_retired;
    uint64_t seq;           /**< generations (handles, scratch files, unlinks) */
    pthread_mutex_t plist_mu;
    int plisted;
    double plisted_at, plist_dur;
    struct fs_map projects_by_id;
    struct fs_map projects_by_dname;
    struct fs_project **projects;
    size_t n_projects;
    struct fs_project *src_proj;
    struct fs_folder *src_fold;
    struct fs_stats_own own;

    struct fs_store ds;

    char *stats_snap;
    size_t stats_len;
    double stats_at;

    /* asynchronous kernel invalidations (kernel.c) */
    pthread_mutex_t inv_mu;
    pthread_cond_t inv_cv;
    char **inv_q;
    size_t inv_n, inv_cap;
    int inv_stop, inv_started;
    pthread_t inv_thread;
    /* held shared around each fuse_invalidate_path, exclusively to clear
     * st->fuse when the loop ends (fs_kernel_detach) */
    pthread_rwlock_t kern_lk;
    /* -o writeback: the journal and the uploader (uploader.c), or NULL */
    struct fs_wb *wb;
    /* the on-disk document cache (diskcache.c), or NULL when disabled */
    struct fs_dc *dc;
};

struct fs_state *fs_st(void);
struct fs_wb;
struct fs_dc;

/* ---------------------------------------------------------------- log */
void fs_log(struct fs_state *st, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void fs_client_log(void *ud, int level, const char *msg);

/* ------------------------------------------------------------- errmap */
int fs_errno(enum sa_err e);
/** Logs one line (operation, path, sa_strerror, detail; ENOENT at debug)
 * and returns -errno. */
int fs_fail(struct fs_state *st, const char *op, const char *path, enum sa_err e);
/** One log line for a refusal decided by the daemon, then -err (ENOENT at debug). */
int fs_refuse(struct fs_state *st, const char *op, const char *path, int err, const char *why);

/* --------------------------------------------------------------- path */
/** Escape a platform name for display (new string). */
char *fs_escape_name(const char *name);
/** Shown file name of an item: escape + suffix, shortened if too long. */
char *fs_item_fname(const char *name, const char *suffix);
/** Shown name of a folder/project directory. */
char *fs_dir_name(const char *name);
/** Reverse of fs_escape_name for a directory name (new string). */
char *fs_unescape_name(const char *shown);
/** Reverse of fs_escape_name for an item's file name minus its suffix: no
 * `．`/`．．` directory forms (new string). */
char *fs_unescape_item_name(const char *shown);
uint32_t fs_crc32(const char *s, size_t n);
int fs_ends_with(const char *s, const char *suf);
/** libfuse's name for an unlinked file that is still open (hard_remove off). */
int fs_is_fuse_hidden(const char *name);

enum fs_kind {
    FS_K_NONE, FS_K_TEAM, FS_K_PROJECT, FS_K_FOLDER, FS_K_ITEM, FS_K_FRAMES, FS_K_SCRATCH,
    FS_K_GHOST, FS_K_CLASSES_DIR, FS_K_CLASSES_FILE
};
struct fs_loc {
    enum fs_kind kind;
    struct fs_project *proj;
    struct fs_folder *fold;     /**< the folder the leaf is in, or the dir itself */
    struct fs_item *item;       /**< a ref (fs_loc_put): ITEM, FRAMES, GHOST, or a hidden
                                     item behind FS_K_NONE */
    struct fs_scratch *scr;     /**< a ref (fs_loc_put) */
    struct fs_ghost *ghost;     /**< borrowed, valid while item's ref is held */
    const char *leaf;           /**< last component (points into the path) */
    enum fs_kind parent;        /**< kind of the parent directory */
};
/** Resolve a path. Returns 0 (kind NONE: the parent exists, the leaf not)
 * or -errno. May make listing requests. The caller ends with fs_loc_put. */
int fs_resolve(struct fs_state *st, const char *path, struct fs_loc *loc);
void fs_loc_put(struct fs_state *st, struct fs_loc *loc);
/** The item's path in this mount (new string), for kernel notifications. */
char *fs_item_path(struct fs_state *st, struct fs_item *it);

/* --------------------------------------------------------------- tree */
double fs_now(void);
/** A new generation (handles, scratch files, unlinks, conflicts); takes st->mu. */
uint64_t fs_next_seq(struct fs_state *st);
int fs_tree_init(struct fs_state *st, char *err, size_t errlen);
void fs_tree_free(struct fs_state *st);
int fs_projects_refresh(struct fs_state *st, int force);
int fs_project_refresh(struct fs_state *st, struct fs_project *p, int force);
/* How fresh a folder's item listing must be (fs_folder_refresh's mode). */
enum fs_refresh {
    FS_REFRESH_LOOKUP = 0, /* resolving a name: trust a listing younger than
                              max(cache_timeout, FS_LOOKUP_MIN_TTL) */
    FS_REFRESH_FORCE = 1,  /* always re-list */
    FS_REFRESH_LIST = 2,   /* readdir: younger than cache_timeout */
};
/* With cache_timeout=0 and kernel TTLs at 0, `ls -l` of N files is one
 * readdir and N getattrs: without a floor each getattr re-lists the folder
 * (N listings for one command). One second covers the getattrs that follow
 * a readdir; uploads check the platform's version anyway. */
#define FS_LOOKUP_MIN_TTL 1.0
int fs_folder_refresh(struct fs_state *st, struct fs_folder *f, int mode);
/** Look an item name up on the platform (cheap name filter) and add it; *out is a ref. */
int fs_folder_find_item(struct fs_state *st, struct fs_folder *f, const char *fname,
                        struct fs_item **out);
/** sa_get_item and learn its key. NOTFOUND if the item is gone. */
enum sa_err fs_item_refetch(struct fs_state *st, struct fs_item *it);
/** Before an open: when the folder's listing is older than cache_timeout
 * (only below the 1 s lookup floor), ask for this item's version alone. */
void fs_item_revalidate(struct fs_state *st, struct fs_item *it);
/** Learn the keys of @p items (one listing by names per 1000). */
void fs_items_refetch(struct fs_state *st, struct fs_folder *f, struct fs_item **items, size_t n);
void fs_folder_invalidate(struct fs_state *st, struct fs_folder *f);
int fs_project_read_only(struct fs_state *st, struct fs_project *p, const char *path);
/** Writes refused on a read-only mount or a Multimodal project (logged). */
int fs_check_writable(struct fs_state *st, struct fs_project *p, const char *path);
void fs_item_get(struct fs_item *it);            /* st->mu held */
void fs_item_put(struct fs_state *st, struct fs_item *it);
void fs_item_put_locked(struct fs_state *st, struct fs_item *it);
/** Copies of the item's names (new strings, "" if none), under st->mu. */
char *fs_item_name(struct fs_state *st, struct fs_item *it);
char *fs_item_fname_copy(struct fs_state *st, struct fs_item *it);

/* --------------------------------------------------------------- store */
void fs_store_init(struct fs_state *st);
void fs_store_free(struct fs_state *st);
/** Drop an item's store state (the item is being freed; ds.mu NOT held). */
void fs_doc_free(struct fs_state *st, struct fs_item *it);
/** Learn the item's key from a request that started at @p t0 (fs_now);
 * an answer older than what is known is ignored. Returns 1 if the key
 * changed and the kernel may hold the old size. */
int fs_doc_learn(struct fs_state *st, struct fs_item *it, int64_t ms, int status, double t0);
int fs_doc_key(struct fs_state *st, struct fs_item *it, int64_t *ms, int *status);
/** Is the name hidden by an unlink? */
int fs_doc_hidden(struct fs_state *st, struct fs_item *it);
double fs_trust_window(const struct fs_state *st);
/** A usable version: has bytes or a known length, and is settled or young enough. */
int fs_ver_trusted(const struct fs_state *st, const struct fs_ver *v);
void fs_ver_ref_locked(struct fs_ver *v);
void fs_ver_unref_locked(struct fs_state *st, struct fs_ver *v);
void fs_ver_unref(struct fs_state *st, struct fs_ver *v);
void fs_ver_unpin(struct fs_state *st, struct fs_ver *v);
/** Install bytes for a key (ds.mu held). Returns the item's version for
 * that key (a borrowed pointer; the slot keeps a ref), or NULL if the
 * item's key has moved on (the bytes are then dropped). */
struct fs_ver *fs_doc_fill_locked(struct fs_state *st, struct fs_item *it, int64_t ms,
                                  int status, char *data, size_t len, int settled,
                                  int derived);
/** The version to serve for the current key, with its bytes, pinned (unpin
 * with fs_ver_unpin + unref). Downloads if needed; concurrent callers wait
 * for one download. @p fresh: download unless the version is settled.
 * @p mark_served: this is a read. */
int fs_doc_get(struct fs_state *st, struct fs_item *it, int fresh, int mark_served,
               struct fs_ver **out);
/** Length of the current version (getattr). May wait for a batch fetch. */
int fs_doc_size(struct fs_state *st, struct fs_item *it, size_t *size);
/** Length if known now, without any request; -1 if unknown. */
ssize_t fs_doc_size_known(struct fs_state *st, struct fs_item *it);
/** Register/unregister an open item handle; record its length/dirtiness. */
void fs_doc_open_add(struct fs_state *st, struct fs_handle *h, size_t len);
void fs_doc_open_del(struct fs_state *st, struct fs_handle *h);
void fs_doc_open_len(struct fs_state *st, struct fs_handle *h, size_t len, int dirty);
/** Unsaved writes: length shown by stat (the newest writer's). 1 if dirty. */
int fs_doc_dirty_len(struct fs_state *st, struct fs_item *it, size_t *len);
/** The kernel was given (or is about to be given) attributes with @p size.
 * Returns 1 if the reply must not be cached (another open version has a
 * different length): the caller invalidates before replying. */
int fs_doc_kernel_given(struct fs_state *st, struct fs_item *it, size_t size);
/** Must the kernel's cached attributes be dropped before serving @p size? */
int fs_doc_kernel_stale(struct fs_state *st, struct fs_item *it, size_t size);
/** The mtime to show for the current key (program-set, else updatedAt). */
void fs_doc_mtime(struct fs_state *st, struct fs_item *it, struct timespec *ts);
void fs_doc_set_mtime(struct fs_state *st, struct fs_item *it, const struct timespec *ts);
/** The mtime a program set (utimens by path, e.g. tar's futimens) while a
 * writer had unsaved bytes: the save carries it. 1 and *ts if there is one. */
int fs_doc_take_pending_mtime(struct fs_state *st, struct fs_item *it, struct timespec *ts);
/** Follow own-change successors from @p v (ds.mu held): the last one. */
struct fs_ver *fs_ver_last_locked(struct fs_ver *v);
uint64_t fs_hash(const char *p, size_t n);
/** The version @p v is what this mount now serves to readers (a read, or a save). */
void fs_doc_serve(struct fs_state *st, struct fs_item *it, struct fs_ver *v);
/** This mount changed the item (save, status, delete): install the locally
 * computed bytes for the new key (stolen) and make them the successor of
 * each of @p from, so writers based on them are not ESTALE by our own
 * change. Returns a ref to the new version, or NULL (the key moved on). */
struct fs_ver *fs_doc_own_change(struct fs_state *st, struct fs_item *it,
                                 struct fs_ver *const *from, size_t n_from, int64_t ms,
                                 int status, char *data, size_t len);
/** A version known only by its key (no bytes, settled: a save can only
 * check the key). INT64_MIN: a base no key matches. */
struct fs_ver *fs_ver_detached(int64_t ms, int status);
/** A ref to the current version (pinned: only if it has bytes, else NULL). */
struct fs_ver *fs_doc_cur_ref(struct fs_state *st, struct fs_item *it, int pin);
void fs_store_stats(struct fs_state *st, size_t *bytes, size_t *budget);

/* --------------------------------------------------------------- fetch */
/** Download one item's document for @p ms/@p status (no store lock held):
 * new pretty bytes in *out, *settled from the server's Date. ENOENT if the
 * item is gone, EIO (logged) if the platform returned no document. */
int fs_fetch_one(struct fs_state *st, struct fs_item *it, int64_t ms, int status, char **out,
                 size_t *len, int *settled);
/** A size miss of @p it (ds.mu held): queue one batch around it in listing
 * order (st->mu is NOT held; the listing is read under it by the worker). */
void fs_fetch_batch_locked(struct fs_state *st, struct fs_item *it);
/** An open of @p it whose bytes the memory budget dropped and the disk
 * cache does not hold (ds.mu held): the same batch, which also takes the
 * neighbours whose bytes were dropped, so re-reading a folder costs
 * batches, not one request per file. */
void fs_fetch_reread_locked(struct fs_state *st, struct fs_item *it);
/** Read-ahead: a stat served from a batch asks for the next one (ds.mu held). */
void fs_fetch_readahead_locked(struct fs_state *st, struct fs_folder *f);
/** Unmount: stop background fetches and wait for their threads (bounded). */
void fs_fetch_stop(struct fs_state *st);
/** ds.mu held: the errno of @p f's last failed batch if its next attempt is
 * not yet due (stats of the folder's other items fail at once), else 0. */
int fs_fetch_folder_err_locked(struct fs_state *st, struct fs_folder *f);
/** ds.mu held: wait on ds.cv, but not past the calling operation's deadline
 * (sa_op_deadline): 0 after a wake-up, -EIO (with a log line naming item
 * @p id) once the deadline has passed. */
int fs_fetch_wait_locked(struct fs_state *st, long long id);

/* ---------------------------------------------------------------- save */
struct fs_save {
    const char *path;       /**< for log lines */
    struct fs_ver *base;    /**< borrowed; NULL = blind write */
    uint64_t seq;           /**< the writer's generation */
    int scratch;            /**< bytes of a scratch file (not a handle opened before an unlink) */
    const struct timespec *mtime; /**< program-set mtime, or NULL */
    const char *status;     /**< a status name to set after (scratch xattr), or NULL */
    struct fs_handle *h;    /**< the handle being saved (marked clean inside), or NULL */
    struct fs_ver **newbase;/**< out: the version the writer's next save is based on (a ref) */
};
/** The save pipeline (filesystem.md §2): validate, version check, change
 * check, conflict check, upload, status step, the new version computed
 * locally. Returns 0 or -errno; failures put the bytes in the recovery folder. */
int fs_save_doc(struct fs_state *st, struct fs_item *it, const char *data, size_t len,
                struct fs_save *o);
/** What the platform serves for @p doc with status value @p status:
 * metadata.status filled in, pretty-printed (new bytes). */
int fs_served_form(struct fs_state *st, struct fs_project *p, const char *doc, size_t len,
                   int status, char **out, size_t *outlen);
/** setxattr user.superannotate.status on an annotation file. */
int fs_status_set_item(struct fs_state *st, struct fs_item *it, const char *status,
                       const char *path);
/** The same on a folder or project directory: every item directly in it. */
int fs_status_set_dir(struct fs_state *st, struct fs_folder *f, const char *status,
                      const char *path);
/** Validate a status name against the project's workflow: value or -errno. */
int fs_status_value(struct fs_state *st, struct fs_project *p, const char *name);
/** Name of a status value (buf), from the workflow; -errno on failure. */
int fs_status_name(struct fs_state *st, struct fs_project *p, int value, char *buf, size_t n);

/* -------------------------------------------------------------- unlink */
int fs_unlink_item(struct fs_state *st, struct fs_item *it, const char *path);
/** rename(item, .fuse_hidden…): libfuse hides an open file being unlinked. */
int fs_unlink_hide(struct fs_state *st, struct fs_item *it, struct fs_folder *f,
                   const char *ghost, const char *path);
int fs_unlink_ghost(struct fs_state *st, struct fs_folder *f, const char *name);
/** A ghost still resolves (not unlinked by libfuse, or within FS_GHOST_KEEP
 * s of it, for a node that raced with the hide); under st->mu. */
int fs_ghost_kept(const struct fs_ghost *g);
/** A re-create of a hidden name: cancels the pending delete and returns the
 * base of the save (a ref, or NULL). Waits for a delete in flight. */
struct fs_ver *fs_recreate(struct fs_state *st, struct fs_item *it);
void fs_deleter_start(struct fs_state *st);
/** Unmount: send every pending delete now, then stop. */
void fs_deleter_stop(struct fs_state *st);

/* ------------------------------------------------------------- handles */
/** @p rbase (a ref, stolen) and @p recreated: the name was hidden by an
 * unlink and is created again (fs_recreate). */
int fs_open_item(struct fs_state *st, struct fs_item *it, const char *path,
                 struct fuse_file_info *fi, struct fs_ver *rbase, int recreated);
int fs_open_classes(struct fs_state *st, struct fs_project *p, const char *path,
                    struct fuse_file_info *fi);
/** Length of the per-frame view (rendered). */
int fs_frames_size(struct fs_state *st, struct fs_item *it, size_t *len);
int fs_open_frames(struct fs_state *st, struct fs_item *it, const char *path,
                   struct fuse_file_info *fi);
int fs_open_scratch(struct fs_state *st, struct fs_scratch *s, const char *path,
                    struct fuse_file_info *fi);
int fs_open_dir(struct fs_state *st, const char *path, struct fuse_file_info *fi);
int fs_h_read(struct fs_handle *h, char *buf, size_t size, off_t off);
int fs_h_write(struct fs_state *st, struct fs_handle *h, const char *buf, size_t size, off_t off,
               int append);
int fs_h_flush(struct fs_state *st, struct fs_handle *h);
int fs_h_release(struct fs_state *st, struct fs_handle *h);
int fs_h_truncate(struct fs_state *st, struct fs_handle *h, off_t size);
/** Length of the bytes a handle serves. */
size_t fs_h_len(struct fs_handle *h);
/** truncate(2) by path of an annotation file: a whole save. */
int fs_truncate_item(struct fs_state *st, struct fs_item *it, const char *path, off_t size);
int fs_truncate_scratch(struct fs_scratch *s, off_t size);
void fs_handle_free(struct fs_state *st, struct fs_handle *h);

/* -------------------------------------------------------------- rename */
/** What a new name in a folder may be: 0 and *item (a ref) for an item's
 * name (also one an unlink hid), 0 and NULL for a scratch name, or -errno
 * (logged: missing item, masks, per-frame views, outside folders). */
int fs_check_new_name(struct fs_state *st, const struct fs_loc *l, const char *path,
                      struct fs_item **item);
int fs_rename(struct fs_state *st, const char *from, const char *to, unsigned int flags);

/* ---------------------------------------------------------------- dirs */
int fs_mkdir(struct fs_state *st, const char *path);
int fs_rmdir(struct fs_state *st, const char *path);
int fs_rename_folder(struct fs_state *st, struct fs_loc *a, struct fs_loc *b,
                     const char *from, const char *to);

/* ---------------------------------------------------------------- view */
int fs_getattr(struct fs_state *st, const char *path, struct stat *sb, struct fs_handle *h);
int fs_readdir(struct fs_state *st, const char *path, void *buf, fuse_fill_dir_t filler);
void fs_dir_stat(struct fs_state *st, const char *updated_at, struct stat *sb);
void fs_item_stat_base(struct fs_state *st, struct fs_item *it, struct stat *sb);

/* ------------------------------------------------------------- scratch */
struct fs_scratch *fs_scratch_new(struct fs_state *st, struct fs_folder *f, const char *name,
                                  mode_t mode);
/** Free an unlinked scratch nobody holds (st->mu held). */
void fs_scratch_maybe_free_locked(struct fs_state *st, struct fs_scratch *s);
void fs_scratch_unlink_locked(struct fs_state *st, struct fs_scratch *s);
void fs_scratch_free(struct fs_scratch *s);
void fs_scratch_stat(struct fs_state *st, struct fs_scratch *s, struct stat *sb);
void fs_scratch_report_all(struct fs_state *st);
int fs_scratch_move(struct fs_state *st, struct fs_scratch *s, struct fs_folder *to,
                    const char *name);
const struct fs_xattr *fs_xattr_find(const struct fs_xattr *x, const char *name);
/** Set one local xattr (scratch files). At most FS_XATTR_MAX_N attributes
 * and FS_XATTR_MAX_BYTES of names and values per file: beyond, -ENOSPC (as
 * a local filesystem whose xattr space is full; the caller logs it). */
#define FS_XATTR_MAX_N 128
#define FS_XATTR_MAX_BYTES (256u * 1024)
int fs_xattr_set_local(struct fs_xattr **head, const char *name, const char *v, size_t n);
int fs_xattr_del_local(struct fs_xattr **head, const char *name);
void fs_xattr_free_all(struct fs_xattr **head);

/* ------------------------------------------------------------- classes */
/** The project's classes as the SDK writes them (new pretty bytes). */
int fs_classes_get(struct fs_state *st, struct fs_project *p, char **out, size_t *len);
/** A write of classes/classes.json: 0 if its parsed content equals them, else -EROFS. */
int fs_classes_check(struct fs_state *st, struct fs_project *p, const char *data, size_t len,
                     const char *path);
/** Is classes/ shown in this project directory (suffix=.json, no real folder)? */
int fs_classes_shown(struct fs_state *st, struct fs_project *p);

/* -------------------------------------------------------------- xattr */
int fs_op_getxattr(const char *path, const char *name, char *value, size_t size);
int fs_op_setxattr(const char *path, const char *name, const char *value, size_t size,
                   int flags);
int fs_op_listxattr(const char *path, char *list, size_t size);
int fs_op_removexattr(const char *path, const char *name);

/* ------------------------------------------------------------ recovery */
/** Save bytes to the recovery folder; logs the file name. */
void fs_recover(struct fs_state *st, const char *reason, struct fs_folder *f,
                const char *fname, const char *data, size_t len);

/** The same with the names given (a journaled save replayed at mount). */
void fs_recover_named(struct fs_state *st, const char *reason, const char *project,
                      const char *folder, const char *fname, const char *data, size_t len);

/* ----------------------------------------------------------- writeback */
/** One journaled save (journal.c): the prepared document and what the
 * uploader needs without the tree. Strings and data are owned. */
struct fs_jrec {
    uint64_t seq;
    long long project_id, folder_id, item_id;
    char *name;             /**< the item's platform name */
    char *pname, *folder;   /**< project and folder names (recovery file names) */
    char *fname;            /**< the shown file name */
    int blind;              /**< no base: overwrite whatever the platform holds */
    int64_t base_ms;        /**< the platform's key this save is based on */
    int base_status;
    char *status;           /**< status name to set after the upload, or NULL */
    int uploaded;           /**< the upload succeeded (its marker exists) */
    char *data;             /**< the prepared document (sent as is) */
    size_t len;
};
void fs_jrec_clear(struct fs_jrec *r);
/** The directory name of this API URL and team ("%08x-team%lld": CRC-32 of
 * the URL, team id): the journal's and the document cache's. */
void fs_team_key(const struct fs_state *st, char *buf, size_t n);
/** mkdir -p (each missing component with @p mode). 0 / -1 and errno. */
int fs_mkdir_p(const char *dir, mode_t mode);
/** Open (create) the journal of this API URL and team and lock it for this
 * daemon; -1 with a reason if another daemon holds it. */
int fs_journal_open(struct fs_state *st, char **dir_out, int *fd_out, char *err, size_t errlen);
/** Write a record durably: one checksummed record appended to the log and
 * one fdatasync (no file created, no directory fsync). The same seq again
 * replaces the record (its upload marker kept). 0 / -errno. */
int fs_journal_write(const char *dir, const struct fs_jrec *r);
/** Mark records uploaded (one append and one flush for all). */
void fs_journal_mark_uploaded(const char *dir, const uint64_t *seqs, size_t n);
/** A landed (or cancelled) record is gone (appended, not flushed). */
void fs_journal_remove(const char *dir, uint64_t seq);
/** Every live record, sorted by seq (new array of new records); format 1's
 * files are read too, and everything is rewritten into a fresh log. */
int fs_journal_load(const char *dir, struct fs_jrec ***out, size_t *n);

/** -o writeback (uploader.c). init: after the pre-flight (opens and locks
 * the journal, loads what it holds for this mount); start: in init (the
 * thread); stop: in destroy (drains within drain_timeout). */
int fs_wb_init(struct fs_state *st, char *err, size_t errlen);
void fs_wb_start(struct fs_state *st);
void fs_wb_stop(struct fs_state *st);
void fs_wb_free(struct fs_state *st);
/** The close path of a save in writeback mode (fs_save_doc after its
 * checks): journal the bytes, show their final form. No request. */
int fs_wb_save(struct fs_state *st, struct fs_item *it, const char *data, size_t len,
               struct fs_save *o, struct fs_ver *base, const struct timespec *mtime);
/** fsync: wait for the item's (folder's; NULL: all) pending saves; their error. */
int fs_wb_wait_item(struct fs_state *st, struct fs_item *it);
int fs_wb_wait_folder(struct fs_state *st, struct fs_folder *f);
/** unlink: a pending save is cancelled (bytes to recovery), after one in flight. */
void fs_wb_cancel(struct fs_state *st, struct fs_item *it, const char *path);
/** user.safs.sync: "clean", "pending" or "error: <reason>". */
void fs_wb_sync_state(struct fs_state *st, struct fs_item *it, char *buf, size_t n);
void fs_wb_counts(struct fs_state *st, uint64_t *pending, uint64_t *failed,
                  uint64_t *conflicted);
/** The store's side: show @p data (stolen) as the item's dirty version; a
 * ref to it. Clear: the landing (or a cancel) of exactly @p v. */
struct fs_ver *fs_doc_wb_set(struct fs_state *st, struct fs_item *it, char *data, size_t len,
                             const struct timespec *mtime, int status);
/** The status the item shows (its xattr): a pending write-back save's final
 * form's, else the platform's key's; -ENOENT if not known. */
int fs_doc_shown_status(struct fs_state *st, struct fs_item *it, int *status);
/** After the landing at key (ms, status): the bytes become that key's
 * version (successor of @p v), the mtime is kept; then the dirty version
 * goes. @p ms < 0: the key is unknown, the next read fetches. */
void fs_doc_wb_landed(struct fs_state *st, struct fs_item *it, struct fs_ver *v, int64_t ms,
                      int status);
void fs_doc_wb_clear(struct fs_state *st, struct fs_item *it, struct fs_ver *v);
/** The workflow of a project, cached (save.c): one request per project per
 * minute, none when cached (the close path of -o writeback uses it). */
int fs_workflow(struct fs_state *st, const struct sa_project *p, struct sa_workflow *out);

/* ----------------------------------------------------------- diskcache */
/** The on-disk document cache (diskcache.c, issue 11): settled documents by
 * (item id, version key), shared by every mount of the team on this machine.
 * init: after the pre-flight (the team is known); installs st->ds.tier.
 * Returns 0 (also when disabled or the directory is unusable: logged). */
int fs_dc_init(struct fs_state *st);
void fs_dc_free(struct fs_state *st);
/** One entry (no lock held): 0 and new NUL-terminated bytes, or -ENOENT
 * (absent, another version, or corrupt: then removed and counted). */
int fs_dc_get(struct fs_state *st, long long id, int64_t ms, int status, char **data,
              size_t *len);
/** Store settled bytes for that key (no lock held; unsettled: nothing). */
void fs_dc_put(struct fs_state *st, long long id, int64_t ms, int status, const char *data,
               size_t len, int settled);
/** The same from a batch (fetch.c): @p data is stolen and written by the
 * writer thread (started in init, stopped in destroy); waits while its
 * queue is full (16 MiB). */
void fs_dc_put_async(struct fs_state *st, long long id, int64_t ms, int status, char *data,
                     size_t len, int settled);
void fs_dc_start(struct fs_state *st);
void fs_dc_stop(struct fs_state *st);
/** Counters for user.safs.stats. */
struct fs_dc_stats {
    int enabled;
    uint64_t hits, misses, stored, evicted, corrupt, bytes, max, queued, dropped;
};
void fs_dc_stats(struct fs_state *st, struct fs_dc_stats *out);

/* -------------------------------------------------------------- kernel */
/** Drop the kernel's cached attributes of @p path now (no lock held). */
void fs_kernel_inval_path(struct fs_state *st, const char *path);
void fs_kernel_inval_item(struct fs_state *st, struct fs_item *it);
/** The same from a worker thread, soon (listing-time changes). */
void fs_kernel_inval_later(struct fs_state *st, const char *path);
void fs_kernel_start(struct fs_state *st);
void fs_kernel_stop(struct fs_state *st);
/** The FUSE loop has ended: no notification is sent from now on. libfuse
 * frees its node tables in fuse_destroy before it calls our destroy, where
 * the deleter still sends pending deletes: a notification then would read
 * freed memory. Waits for a notification in progress. */
void fs_kernel_detach(struct fs_state *st);

/* ----------------------------------------------------------------- ops */
extern const struct fuse_operations fs_ops;

#endif
