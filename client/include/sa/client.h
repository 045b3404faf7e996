/** @file
 * libsaclient: the SuperAnnotate REST API as the official Python SDK (v4.5.9)
 * speaks it (see docs/api.md). No FUSE and no errno in this API: every call
 * returns an `enum sa_err`; the detail of the last failure of the calling
 * thread is in sa_last_error().
 *
 * Ownership (jansson's words): a returned `char *` or filled struct is *new*
 * and freed by the matching _clear()/_free(); `const` arguments are
 * *borrowed*. Out-params are zeroed on entry, so _clear() is always safe,
 * also after a failure. _free(NULL) and _clear() of a zeroed struct are
 * no-ops.
 *
 * Threads: one struct sa_client may be used by any number of threads at once.
 * It keeps a pool of curl easy handles (each with its own keep-alive
 * connection) and shares only DNS and TLS sessions between them (sharing the
 * connection cache is a known bug in curl 7.88). Some state is per calling
 * thread, not per client: the error detail (sa_last_error), the server dates
 * of the last call (sa_last_dates) and the cancel flag (sa_cancel_scope);
 * the internal threads of a call share its caller's.
 *
 * Logging: the client never prints. It calls cfg.log (if set) with a syslog
 * level; the token never appears in a message.
 */
#ifndef SA_CLIENT_H
#define SA_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** One error enum for the whole client (curl's CURLcode model). 0 is OK. */
enum sa_err {
    SA_OK = 0,
    SA_ERR_NOTFOUND,  /**< no such project/folder/item (404, or not in a listing) */
    SA_ERR_DENIED,    /**< 401/403: bad token, no access */
    SA_ERR_INVAL,     /**< bad argument, invalid document, bad status value (400, 422) */
    SA_ERR_EXISTS,    /**< already exists (409 on create) */
    SA_ERR_CONFLICT,  /**< the item changed on the platform since it was read (412) */
    SA_ERR_BUSY,      /**< 429/503 still after every retry */
    SA_ERR_TIMEOUT,   /**< a deadline passed (connect, stalled transfer, call) */
    SA_ERR_NET,       /**< connection refused/reset, DNS, TLS */
    SA_ERR_SERVER,    /**< other 5xx after retries */
    SA_ERR_PROTO,     /**< a response we could not understand */
    SA_ERR_TOOBIG,    /**< over a size limit */
    SA_ERR_NOMEM,     /**< out of memory */
    SA_ERR_UNSUPP,    /**< the platform has no way to do this */
    SA_ERR_CANCELLED, /**< the calling thread's cancel flag was set (sa_cancel_scope) */
};

/** A static English phrase for @p e. Never NULL. */
const char *sa_strerror(enum sa_err e);

/** Detail of the calling thread's last failed call ("" if none). Borrowed;
 * valid until that thread's next client call. Never contains the token. */
const char *sa_last_error(void);

/* ------------------------------------------------------------------ */
/* The calling thread's calls: server time, cancellation               */

/** When the server answered the calling thread's most recent client call
 * that made requests (any sa_* call that sent at least one; a call that sent
 * nothing, e.g. a cached sa_get_workflow or a call refused before sending,
 * leaves the values of the call before it): the earliest (@p first_ms) and
 * the latest (@p last_ms) HTTP `Date` header among the responses that call
 * received, error responses and retried attempts included, and including the
 * responses received by the internal threads working for it (the parallel
 * stream and large-item downloads of sa_download_annotations). Epoch
 * milliseconds; `Date` has whole seconds, so both are multiples of 1000.
 * 0 and 0 if no response carried a parsable `Date`. Either pointer may be
 * NULL. A call made by another call (sa_get_project_by_name's listing,
 * sa_upload_annotations' status change) belongs to the outer call. Reads
 * thread-local state only: no lock, no request. */
void sa_last_dates(int64_t *first_ms, int64_t *last_ms);

/** Install @p flag (borrowed; it must stay valid while installed) as the
 * cancel flag of the calling thread's calls from now on; NULL removes it.
 * While it is installed and `*flag` is nonzero, every client call of this
 * thread stops within about 100 ms and returns SA_ERR_CANCELLED: a transfer
 * in progress is aborted (its connection closed), a retry backoff or a
 * status-poll sleep wakes up, a wait for a free pool handle ends, and the
 * internal worker threads of sa_download_annotations stop the same way (they
 * watch the caller's flag). A call that starts while the flag is set
 * returns SA_ERR_CANCELLED without sending anything. Another thread may set
 * `*flag` at any time (a plain store is enough; the client only reads it).
 * What a cancelled call had already done on the platform stays done (an
 * upload's earlier batches, a created folder); its out-params are as after
 * any failure, and sa_upload_annotations marks the documents it did not
 * finish SA_ERR_CANCELLED. */
void sa_cancel_scope(const volatile int *flag);

/** One deadline for everything the calling thread does from now on: every
 * call's requests, retries and backoff sleeps end by now + @p seconds (a
 * call's own 60 s × timeout_scale still applies if it is earlier; the large
 * path's 10 min does not shrink). The internal worker threads of a call
 * inherit it. @p seconds <= 0 removes it. */
void sa_op_deadline(double seconds);
/** Seconds left of the calling thread's operation deadline (0 if passed), or
 * -1 if none is set. */
double sa_op_remaining(void);

/** Log sink. @p level is a syslog level (LOG_ERR, LOG_WARNING, LOG_INFO,
 * LOG_DEBUG). Called from any thread. */
typedef void (*sa_log_fn)(void *ud, int level, const char *msg);

/** Client configuration. Strings are borrowed during sa_client_new() only
 * (the client copies what it keeps). */
struct sa_config {
    const char *token;      /**< "<key>=<team_id>", checked against api.md §2.1 */
    const char *url;        /**< base B: main API at B/, item + WM at B/api/v1/,
                                 assets at B/api/v4/ and B/api/v3.01/. Default
                                 https://api.superannotate.com (then the
                                 production hosts of api.md §1 for the others) */
    const char *item_url;   /**< override: item service base, e.g. http://h/api/v1/ */
    const char *wm_url;     /**< override: work-management base (…/api/v1/) */
    const char *assets_url; /**< override: assets-provider base WITHOUT version,
                                 e.g. http://h/api/ ; v4/ and v3.01/ are appended */
    const char *cafile;     /**< extra CA bundle, or NULL */
    int insecure;           /**< nonzero: do not verify TLS */
    double timeout_scale;   /**< multiplies every deadline; 0 means 1.0 */
    int max_connections;    /**< size of the easy-handle pool; 0 means 16 */
    size_t max_body;        /**< largest response body kept in memory and largest
                                 single stream object; bigger ones fail the call
                                 (SA_ERR_PROTO, detail says so). 0 means 272 MiB */
    sa_log_fn log;          /**< may be NULL */
    void *log_ud;
};

struct sa_client;

/** Create a client. No request is made. On failure returns NULL and writes a
 * one-line reason into @p err (e.g. "token is not of the form <key>=<team_id>"). */
struct sa_client *sa_client_new(const struct sa_config *cfg, char *err, size_t errlen);
void sa_client_free(struct sa_client *c);

/** The team id taken from the token. */
long long sa_client_team_id(const struct sa_client *c);

/* ------------------------------------------------------------------ */
/* Counters (for `getfattr -n user.safs.stats`)                        */

enum sa_req_kind {
    SA_REQ_AUTH, SA_REQ_PROJECT, SA_REQ_FOLDER, SA_REQ_LIST, SA_REQ_WORKFLOW,
    SA_REQ_CLASSIFY, SA_REQ_DOWNLOAD, SA_REQ_UPLOAD, SA_REQ_STATUS, SA_REQ_DELETE,
    SA_REQ_OTHER,
    SA_REQ__COUNT
};
/** "auth", "project", … for JSON output. */
const char *sa_req_kind_name(enum sa_req_kind k);

struct sa_stats {
    uint64_t requests[SA_REQ__COUNT]; /**< HTTP requests sent, retries included */
    uint64_t retries;                 /**< requests that were retries */
    uint64_t errors;                  /**< calls that returned an error */
    uint64_t bytes_down, bytes_up;    /**< body bytes */
};
void sa_client_stats(struct sa_client *c, struct sa_stats *out);

/* ------------------------------------------------------------------ */
/* Entities (api.md §4–§8). Strings are new, freed by the _clear().    */

struct sa_user { char *id; char *email; };
struct sa_team { long long id; char *name; };

enum sa_project_type {
    SA_PT_VECTOR = 1, SA_PT_PIXEL = 2, SA_PT_VIDEO = 3, SA_PT_DOCUMENT = 4,
    SA_PT_TILED = 5, SA_PT_OTHER = 6, SA_PT_POINTCLOUD = 7, SA_PT_MULTIMODAL = 8,
};
/** "Vector", "Pixel", … ; "Unsupported" for anything else. */
const char *sa_project_type_name(int type);

struct sa_project {
    long long id, team_id;
    char *name;
    int type;               /**< enum sa_project_type, or another int */
    int status;
    long long root_folder_id; /**< `folder_id` */
    long long workflow_id;
    int upload_state;
    char *created_at, *updated_at;
};
struct sa_folder {
    long long id, project_id;
    char *name;
    int is_root;
    int status;
    char *created_at, *updated_at;
};
struct sa_item {
    long long id, folder_id;
    char *name;
    int annotation_status;   /**< workflow status value (api.md §8.1) */
    char *created_at, *updated_at;
    int64_t updated_ms;      /**< updatedAt as epoch milliseconds (0 if unparsable) */
};

struct sa_project_list { struct sa_project *v; size_t n; };
struct sa_folder_list { struct sa_folder *v; size_t n; };
struct sa_item_list { struct sa_item *v; size_t n; };

void sa_user_clear(struct sa_user *u);
void sa_team_clear(struct sa_team *t);
void sa_project_clear(struct sa_project *p);
void sa_folder_clear(struct sa_folder *f);
void sa_item_clear(struct sa_item *i);
void sa_project_list_clear(struct sa_project_list *l);
void sa_folder_list_clear(struct sa_folder_list *l);
void sa_item_list_clear(struct sa_item_list *l);

/** Parse "YYYY-MM-DDTHH:MM:SS[.fff]Z" to epoch ms; 0 if unparsable. */
int64_t sa_parse_time_ms(const char *iso);

/* ------------------------------------------------------------------ */
/* Calls                                                               */

/* Names: every call that takes a user-supplied name (project, folder, item;
 * sa_list_projects' filter included) returns SA_ERR_INVAL, with a detail
 * saying "not valid UTF-8" and without sending anything, when one is not
 * valid UTF-8 (overlong forms, surrogates and code points above U+10FFFF
 * included): the platform's names are UTF-8, and no JSON body can carry
 * such a name. sa_upload_annotations fails only that document. */

/** §4: GET user/ME then GET api/v1/team/{id}. Either may be NULL. */
enum sa_err sa_get_user(struct sa_client *c, struct sa_user *out);
enum sa_err sa_get_team(struct sa_client *c, struct sa_team *out);

/** §5.1: every project of the team (name_filter NULL), or those the
 * server's name search returns. Paginated (2000). */
enum sa_err sa_list_projects(struct sa_client *c, const char *name_filter,
                             struct sa_project_list *out);
/** §5.1: the project whose name equals @p name exactly; NOTFOUND otherwise. */
enum sa_err sa_get_project_by_name(struct sa_client *c, const char *name,
                                   struct sa_project *out);
/** §5.2 */
enum sa_err sa_get_project(struct sa_client *c, long long project_id, struct sa_project *out);

/** §6: every folder of the project, the root (is_root, name "root") included. */
enum sa_err sa_list_folders(struct sa_client *c, long long project_id,
                            struct sa_folder_list *out);
/** §6: by name ("root" gives the root folder); NOTFOUND if none (never retried). */
enum sa_err sa_get_folder_by_name(struct sa_client *c, long long project_id,
                                  const char *name, struct sa_folder *out);
/** §6.1. sa_create_folder is not re-sent blindly: when an attempt fails in a way
 * the server may have acted on (the request went out and the connection
 * then failed or timed out, or the answer was 429/5xx), the folder is first
 * looked up by name; if it exists, the call returns SA_OK with it (the
 * create's answer was lost; logged at LOG_INFO), and only if it does not is
 * the create sent again. A folder of that name created by someone else in
 * that window is indistinguishable and also returned. */
enum sa_err sa_create_folder(struct sa_client *c, long long project_id, const char *name,
                             struct sa_folder *out);
enum sa_err sa_rename_folder(struct sa_client *c, long long project_id, long long folder_id,
                             const char *new_name);
enum sa_err sa_delete_folders(struct sa_client *c, long long project_id,
                              const long long *folder_ids, size_t n);

/** §7: items of one folder. @p names NULL: all items (2000-row pages);
 * otherwise only those names (`name $in`, 1000 names a request). Names that
 * do not exist are simply absent from @p out. */
enum sa_err sa_list_items(struct sa_client *c, long long project_id, long long folder_id,
                          const char *const *names, size_t n_names, struct sa_item_list *out);
/** §7.4: one item by id. */
enum sa_err sa_get_item(struct sa_client *c, long long project_id, long long item_id,
                        struct sa_item *out);

/** §9.3 (the SDK's `classes/classes.json`): every annotation class of the
 * project, `GET classes?project_id&offset` paginated like the other lists
 * (style A). On SA_OK *json is new (free() it), NUL-terminated, *len bytes:
 * a compact JSON array of the class objects as the API returned them, in
 * its order, every field kept. It is re-encoded by jansson, which is safe
 * here (ids and counts are integers; class documents carry no reals whose
 * digits could change); key order is kept, string escapes may differ.
 * On failure *json is NULL and *len 0. */
enum sa_err sa_list_classes(struct sa_client *c, long long project_id, char **json,
                            size_t *len);

/* ------------------------------------------------------------------ */
/* Workflows and statuses (§8)                                         */

struct sa_status_def { int value; char *name; };
struct sa_workflow {
    long long id;
    int is_system;              /**< type == "system" */
    struct sa_status_def *statuses;
    size_t n_statuses;
};
/** §8.1: the workflow (type) and its statuses. Cached by the client for 5 s. */
enum sa_err sa_get_workflow(struct sa_client *c, long long project_id, long long workflow_id,
                            struct sa_workflow *out);
void sa_workflow_clear(struct sa_workflow *w);
/** Exact, case-sensitive. -1 if the workflow has no such status. */
int sa_workflow_status_value(const struct sa_workflow *w, const char *name);
/** NULL if the value is unknown. Borrowed from @p w. */
const char *sa_workflow_status_name(const struct sa_workflow *w, int value);

/** §8.2: PUT image/updateAnnotationStatusBulk in chunks of 500 names. */
enum sa_err sa_set_annotation_statuses(struct sa_client *c, long long project_id,
                                       long long folder_id, int status_value,
                                       const char *const *names, size_t n);

/* ------------------------------------------------------------------ */
/* Annotations (§9, §10, §13)                                          */

/** Called once per document received. @p json is the document exactly as the
 * server sent it (borrowed, valid during the call only). Calls are never
 * concurrent, but may come from an internal thread. Return nonzero to abort
 * the download: the call then stops as soon as it can and returns
 * SA_ERR_INVAL. */
typedef int (*sa_doc_fn)(void *ud, long long item_id, const char *json, size_t len);

/** §9: bulk download of the documents of @p ids (items of one project).
 * Classify (1000 ids a request), large items through sync + v3.01 (4 at a
 * time), small batches as streams (`\n;)\n`, parsed incrementally), 8 in
 * parallel. @p folder_id is sent on the stream (download_annotations style)
 * when nonzero. A document is matched to its item by metadata.id, else by
 * metadata.name among the requested items (pass @p names parallel to @p ids,
 * or NULL). Items the server does not return are not reported. */
enum sa_err sa_download_annotations(struct sa_client *c, long long project_id,
                                    long long folder_id, const long long *ids,
                                    const char *const *names, size_t n,
                                    sa_doc_fn cb, void *ud);

/** One document to upload. @p json must already be prepared (sa_doc_prepare,
 * doc.h): the client sends it as is. result/detail are filled by the call. */
struct sa_upload_doc {
    long long item_id;
    const char *name;
    const char *json;
    size_t len;
    enum sa_err result;
    char detail[256];
};

/** §10: upload documents to items of one folder. Documents over 15 MiB take
 * the multipart large path (§10.5, checked: a FAILED sync is an error); the
 * rest go in multipart batches by the 10 MiB / name-length rules (§10.3), one
 * request at a time. Then, unless @p keep_status, the items that succeeded
 * move to `InProgress` when the project's workflow is the system one (§10.6).
 * Returns SA_OK when every document succeeded; otherwise the first failure's
 * code (each doc's own result is in docs[i].result). A large document whose
 * `finish` answer was lost is uploaded once more from `start` (a finished
 * upload refuses a second finish). A name that is not UTF-8 or holds CR/LF
 * fails that document (INVAL) without a request; cancelled, the documents not
 * yet done fail with SA_ERR_CANCELLED. */
enum sa_err sa_upload_annotations(struct sa_client *c, const struct sa_project *p,
                                  long long folder_id, struct sa_upload_doc *docs, size_t n,
                                  int keep_status);

/** §13: delete the annotations of the named items (chunks of 2000), then
 * poll getRemoveStatus, sleeping between polls, until done (SA_OK), failed
 * (SA_ERR_SERVER) or the call deadline (SA_ERR_TIMEOUT). @p n == 0 does
 * nothing (on the wire no names means the whole folder); a name that is not
 * UTF-8 fails the whole call with INVAL before any request, so no chunk is
 * ever sent with names left out. */
enum sa_err sa_delete_annotations(struct sa_client *c, long long project_id,
                                  long long folder_id, const char *const *names, size_t n);

#ifdef __cplusplus
}
#endif
#endif
