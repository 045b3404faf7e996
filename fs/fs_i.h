/** @file
 * safs internals: the one state struct, the in-memory tree and the helpers
 * each fs/ source file provides. Private to fs/.
 *
 * Locking: st->mu protects every in-memory field of the tree (projects,
 * folders, items, maps, LRU, counters) and the scratch maps. It is never
 * held across a network call. Listing fetches are serialized per project /
 * folder by their list_mu (taken BEFORE st->mu). Uploads of one item are
 * serialized by item->up_mu (taken before list_mu and st->mu). Scratch
 * bytes are guarded by scratch->mu (taken after st->mu is released, or
 * alone). Objects (projects, folders, items) are never freed before
 * unmount, so pointers stay valid without reference counts.
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

/* --------------------------------------------------------------- tree */
struct fs_state;
struct fs_folder;
struct fs_project;

struct fs_item {
    long long id;
    struct fs_folder *folder;
    char *name;             /**< platform name */
    char *fname;            /**< shown file name, suffix included */
    int present;            /**< in the last listing */
    /* the platform's version as last seen */
    int64_t ms;
    int status;
    double ver_at;          /**< when the version was learned (fs_now) */
    char *created_at, *updated_at;
    /* size of the served bytes, for version (size_ms, size_status) */
    int has_size;
    size_t size;
    int64_t size_ms;
    int size_status;
    /* cached document bytes (LRU), for version (doc_ms, doc_status) */
    char *doc;
    size_t doc_len;
    int64_t doc_ms;
    int doc_status;
    struct fs_item *lru_prev, *lru_next;
    int in_lru;
    /* the version this mount last served (content read) */
    int served;
    int64_t served_ms;
    int served_status;
    /* the version whose bytes the kernel may cache */
    int kc;
    int64_t kc_ms;
    int kc_status;
    /* mtime set by utimens or carried by an upload, kept for that version */
    int has_mtime;
    struct timespec mtime;
    int64_t mtime_ms;
    int mtime_status;
    uint64_t estale_seq;    /**< handles/scratch older than this fail with ESTALE */
    uint64_t deleted_seq;   /**< handles older than this are never uploaded */
    int dirty_handles;      /**< open handles with unsaved writes */
    size_t wlen;            /**< length of the last written handle (shown while dirty) */
    char *pending_status;   /**< status name to set after the next upload */
    pthread_mutex_t up_mu;  /**< serializes uploads of this item */
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
    struct fs_map by_id;    /**< "%lld" -> item (every item ever seen) */
    struct fs_map by_fname; /**< shown file name -> present item */
    struct fs_item **items; /**< present items, listing order */
    size_t n_items;
    struct fs_map scratch;  /**< name -> struct fs_scratch */
    int bulk_running;
    pthread_cond_t bulk_cv;
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
    int nopen;              /**< open handles (under st->mu) */
    int linked;             /**< in folder->scratch (under st->mu) */
    int became;             /**< became an annotation */
    uint64_t seq;           /**< creation generation */
    struct fs_scratch *grave_next; /**< unlinked and closed: freed at unmount */
};

enum fs_hkind { FS_H_ITEM, FS_H_SCRATCH, FS_H_FRAMES, FS_H_DIR };
struct fs_handle {
    enum fs_hkind kind;
    struct fs_item *item;
    struct fs_scratch *scr;
    pthread_mutex_t mu;
    struct fs_buf buf;      /**< FS_H_ITEM, FS_H_FRAMES */
    int writable;
    int dirty;              /**< unsaved writes */
    int wrote;              /**< a write/truncate happened since the last save */
    int counted_dirty;      /**< counted in item->dirty_handles */
    int has_base;
    int64_t base_ms;
    int base_status;
    uint64_t seq;
    char *path;
    int set_mtime;
    struct timespec mtime;
};

/* --------------------------------------------------------------- state */
struct fs_stats_own {
    uint64_t cache_hits, cache_misses, uploads, uploads_skipped, conflicts;
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

    pthread_mutex_t mu;
    /* Project, folder and item names replaced by a re-list (a rename on the
     * platform): other threads read names without st->mu (log lines, the
     * recovery folder), so an old name lives until unmount. Renames are
     * rare; the list is freed by fs_tree_free. Under mu. */
    char **retired_names;
    size_t n_retired, cap_retired;
    uint64_t seq;
    pthread_mutex_t plist_mu;
    int plisted;
    double plisted_at, plist_dur;
    struct fs_map projects_by_id;
    struct fs_map projects_by_dname;
    struct fs_project **projects;
    size_t n_projects;
    struct fs_project *src_proj;
    struct fs_folder *src_fold;

    struct fs_item *lru_head, *lru_tail;
    size_t lru_bytes, lru_budget;
    struct fs_stats_own own;
    struct fs_scratch *graveyard;
    int bulk_threads;       /**< running bulk-fetch workers */
    pthread_cond_t bulk_done_cv;

    char *stats_snap;
    size_t stats_len;
    double stats_at;

    /* page-cache invalidation worker (never call fuse_invalidate_path inside
     * an operation that the kernel may be holding the inode for) */
    pthread_mutex_t inv_mu;
    pthread_cond_t inv_cv;
    char **inv_q;
    size_t inv_n, inv_cap;
    int inv_stop, inv_started;
    pthread_t inv_thread;
};

struct fs_state *fs_st(void);

/* ---------------------------------------------------------------- log */
void fs_log(struct fs_state *st, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void fs_client_log(void *ud, int level, const char *msg);

/* ------------------------------------------------------------- errmap */
int fs_errno(enum sa_err e);
/** Logs one line (operation, path, sa_strerror, detail; ENOENT at debug)
 * and returns -errno. */
int fs_fail(struct fs_state *st, const char *op, const char *path, enum sa_err e);

/* --------------------------------------------------------------- path */
/** Escape a platform name for display (new string). */
char *fs_escape_name(const char *name);
/** Shown file name of an item: escape + suffix, shortened if too long. */
char *fs_item_fname(const char *name, const char *suffix);
/** Shown name of a folder/project directory. */
char *fs_dir_name(const char *name);
/** Reverse of fs_escape_name for a directory name (new string). */
char *fs_unescape_name(const char *shown);
uint32_t fs_crc32(const char *s, size_t n);

enum fs_kind {
    FS_K_NONE, FS_K_TEAM, FS_K_PROJECT, FS_K_FOLDER, FS_K_ITEM, FS_K_FRAMES, FS_K_SCRATCH
};
struct fs_loc {
    enum fs_kind kind;
    struct fs_project *proj;
    struct fs_folder *fold;     /**< the folder the leaf is in, or the dir itself */
    struct fs_item *item;
    struct fs_scratch *scr;     /**< borrowed; valid while st->mu ... see ops */
    const char *leaf;           /**< last component (points into the path) */
    enum fs_kind parent;        /**< kind of the parent directory */
};
/** Resolve a path. Returns 0 (kind NONE: the parent exists, the leaf not)
 * or -errno. May make listing requests. */
int fs_resolve(struct fs_state *st, const char *path, struct fs_loc *loc);

/* --------------------------------------------------------------- tree */
double fs_now(void);
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
/** Look an item name up on the platform (cheap name filter) and add it. */
int fs_folder_find_item(struct fs_state *st, struct fs_folder *f, const char *fname,
                        struct fs_item **out);
/** Update an item's version fields from an sa_item fetched at @p t0
 * (fs_now() before the request); an answer older than what the item already
 * knows is ignored, so a slow listing never rolls a version back (st->mu held). */
void fs_item_update_locked(struct fs_state *st, struct fs_item *it, const struct sa_item *si,
                           double t0);
/** sa_get_item and update (takes st->mu). */
enum sa_err fs_item_refetch(struct fs_state *st, struct fs_item *it);
void fs_folder_invalidate(struct fs_state *st, struct fs_folder *f);
int fs_project_read_only(struct fs_state *st, struct fs_project *p, const char *path);

/* -------------------------------------------------------------- cache */
/** The bytes this mount serves for the item's current version (new copy in
 * *out). Downloads if not cached; marks the version served. */
int fs_doc_get(struct fs_state *st, struct fs_item *it, char **out, size_t *len,
               int mark_served);
/** Size of the served bytes for the current version: may start or join the
 * folder's shared bulk fetch. */
int fs_doc_size(struct fs_state *st, struct fs_item *it, size_t *size);
/** Record bytes for a version (st->mu held). Copies @p data. */
void fs_doc_put_locked(struct fs_state *st, struct fs_item *it, int64_t ms, int status,
                       const char *data, size_t len);
void fs_lru_touch_locked(struct fs_state *st, struct fs_item *it);
/** Wait until every bulk-fetch worker has finished (unmount). */
void fs_bulk_wait_all(struct fs_state *st);
void fs_doc_drop_locked(struct fs_state *st, struct fs_item *it);

/* ------------------------------------------------------------ handle */
int fs_item_stat(struct fs_state *st, struct fs_item *it, struct stat *sb, int need_size);
/** Upload pipeline (filesystem.md §2). @p seq and base describe the writer.
 * @p mtime non-NULL: the mtime the program set. @p status: pending status
 * name or NULL. Returns 0 or -errno. */
int fs_upload(struct fs_state *st, struct fs_item *it, const char *path, const char *data,
              size_t len, uint64_t seq, int has_base, int64_t base_ms, int base_status,
              const struct timespec *mtime, const char *status);
void fs_invalidate_later(struct fs_state *st, const char *path);
void fs_inval_start(struct fs_state *st);
void fs_inval_stop(struct fs_state *st);

/* ------------------------------------------------------------ scratch */
struct fs_scratch *fs_scratch_new(struct fs_state *st, struct fs_folder *f, const char *name,
                                  mode_t mode);
/** Drop a reference-less, unlinked scratch (st->mu held). */
void fs_scratch_maybe_free_locked(struct fs_state *st, struct fs_scratch *s);
void fs_scratch_unlink_locked(struct fs_state *st, struct fs_scratch *s);
void fs_scratch_stat(struct fs_state *st, struct fs_scratch *s, struct stat *sb);
void fs_scratch_report_all(struct fs_state *st);
const struct fs_xattr *fs_xattr_find(const struct fs_xattr *x, const char *name);
int fs_xattr_set_local(struct fs_xattr **head, const char *name, const char *v, size_t n);
int fs_xattr_del_local(struct fs_xattr **head, const char *name);
void fs_xattr_free_all(struct fs_xattr **head);

/* -------------------------------------------------------------- xattr */
int fs_op_getxattr(const char *path, const char *name, char *value, size_t size);
int fs_op_setxattr(const char *path, const char *name, const char *value, size_t size,
                   int flags);
int fs_op_listxattr(const char *path, char *list, size_t size);
int fs_op_removexattr(const char *path, const char *name);
/** Validate a status name against the project's workflow: value or -errno. */
int fs_status_value(struct fs_state *st, struct fs_project *p, const char *name);
int fs_set_status_items(struct fs_state *st, struct fs_folder *f, struct fs_item **items,
                        size_t n, const char *status, const char *path);

/* ------------------------------------------------------------ recovery */
/** Save bytes to the recovery folder; logs the file name. */
void fs_recover(struct fs_state *st, const char *reason, struct fs_folder *f,
                const char *fname, const char *data, size_t len);

/* ----------------------------------------------------------------- ops */
extern const struct fuse_operations fs_ops;

#endif
