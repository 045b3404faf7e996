/** @file
 * sa-emulator internals: the SuperAnnotate API (docs/api.md) over
 * libmicrohttpd + SQLite + jansson, with a control plane for tests.
 *
 * Threading: libmicrohttpd runs one thread per connection. All SQLite access
 * goes through one connection guarded by emu.db_lock; the other shared state
 * (faults, stats, recorded requests, upload sessions, delete polls) has its
 * own mutex. Lock order: db_lock first, then any of the others.
 */
#ifndef SA_EMU_I_H
#define SA_EMU_I_H

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define EMU_MAX_PAGE 2000
#define EMU_FOLDER_LIMIT 50000
#define EMU_PROJECT_LIMIT 500000
#define EMU_STATUS_BULK_MAX 500
#define EMU_REMOVE_MAX 2000
#define EMU_FOLDER_NAME_MAX 80

/* ---- growable byte buffer ---------------------------------------------- */
struct buf {
  char *p;
  size_t len, cap;
};
void buf_add(struct buf *b, const void *data, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** Returns the buffer's bytes (new, NUL-terminated) and empties b. */
char *buf_take(struct buf *b, size_t *len);
void buf_free(struct buf *b);

/* ---- a reply, built by a handler, turned into an MHD response ---------- */
struct stream_state; /* api.c */
struct reply {
  int status;
  char *body; /* new; may be NULL for an empty body */
  size_t len;
  const char *ctype; /* static string */
  int retry_after;   /* >0: Retry-After header */
  struct stream_state *stream; /* non-NULL: chunked annotation stream */
};
void reply_json(struct reply *r, int status, json_t *v); /* steals v */
void reply_error(struct reply *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void reply_raw(struct reply *r, int status, const char *ctype,
               const char *data, size_t len);

/* ---- one decoded request ---------------------------------------------- */
struct param {
  char *key, *val;
};
struct request {
  const char *method;
  char *path;  /* percent-decoded, no query */
  char *query; /* raw query string ("" if none) */
  struct param *params;
  size_t nparams;
  const char *body;
  size_t body_len;
  const char *content_type; /* borrowed from MHD or NULL */
  const char *upload_id;    /* header, or NULL */
  json_t *entity;           /* decoded x-sa-entity-context or NULL */
  long long team_id;        /* from the token */
};
/** First value of query parameter key, or NULL (borrowed). */
const char *req_param(const struct request *q, const char *key);
/** Parses a query parameter as an integer; 0 if absent/invalid, 1 if ok. */
int req_param_ll(const struct request *q, const char *key, long long *out);

/* ---- configuration and global state ----------------------------------- */
struct seed_items {
  char *project, *folder;
  long long n;
};
struct emu {
  int port;
  const char *port_file;
  const char *db_path;
  char **tokens;
  size_t ntokens;
  int seed_demo;
  struct seed_items *seeds;
  size_t nseeds;
  long long large_threshold;
  long long stream_batch;
  int delete_polls;
  int quiet;
  long long max_body;
  int ms_timestamps; /* --ms-timestamps: real milliseconds, else .000Z */
  volatile int latency_ms;
  const char *tls_cert, *tls_key; /* --tls-cert/--tls-key: serve HTTPS */

  sqlite3 *db;
  pthread_mutex_t db_lock;
  long long last_ms; /* last timestamp handed out (under db_lock) */
};
extern struct emu emu;

/* ---- utilities (util.c) ----------------------------------------------- */
/** The emulator's clock (epoch ms): real time, or frozen, or moved forward
 * by the control plane (POST /_emulator/clock). Every timestamp the
 * emulator stores or sends comes from it, the HTTP Date header too. */
long long now_ms(void);
/** The clock's time into *now; returns 1 if it is frozen. */
int clock_state(long long *now);
void clock_freeze(long long ms);   /* stands at ms until changed */
void clock_advance(long long ms);  /* forward by ms, frozen or running */
void clock_real(void);             /* back to real time */
/** Monotonic ms, for durations only (never a timestamp). */
long long mono_ms(void);
/** Formats epoch ms as YYYY-MM-DDTHH:MM:SS.mmmZ into out (>= 32 bytes);
 * mmm is 000 unless --ms-timestamps. */
void fmt_ts(long long ms, char *out);
/** RFC 7231 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into out
 * (>= 30 bytes). */
void fmt_http_date(long long ms, char *out);
json_t *json_ts(long long ms);
/** Percent-decodes s[0..n) ('+' as space when plus); new string. */
char *url_decode(const char *s, size_t n, int plus);
/** Decodes standard or URL-safe base64, padding optional; new or NULL. */
unsigned char *b64_decode(const char *s, size_t *outlen);
/** Copies s[0..n) into a valid UTF-8 JSON string (bad bytes -> U+FFFD). */
json_t *json_string_lossy(const char *s, size_t n);
/** Number of UTF-8 code points in s. */
size_t utf8_len(const char *s);
void sleep_ms(long long ms);

/* ---- raw JSON scanning (rawjson.c) ------------------------------------ */
/** Length of the JSON value starting at p (after whitespace skipped by the
 * caller), or 0 if it is not a well-formed value within n bytes. Only the
 * structure is checked here; use jansson for full validation. */
size_t rawjson_value_len(const char *p, size_t n);
/** Calls fn for each member of the object text p[0..n) (surrounding
 * whitespace allowed): key (decoded, new-ref'd per call, borrowed by fn),
 * and the raw value span. Returns 0 on success, -1 if it is not an object. */
typedef int (*rawjson_member_fn)(void *ctx, const char *key,
                                 const char *val, size_t vlen);
int rawjson_members(const char *p, size_t n, rawjson_member_fn fn, void *ctx);
/** 1 if p[0..n) is valid JSON per jansson (big ints allowed). */
int rawjson_valid(const char *p, size_t n, int must_be_object);

/* ---- multipart/form-data (multipart.c) -------------------------------- */
struct mpart {
  char *name; /* new; decoded field name (or filename), never NULL */
  const char *data; /* borrowed from the body */
  size_t len;
};
/** Parses body per content_type. Returns the number of parts (>= 0) and
 * a new array in *out, or -1 with a message in err. */
int multipart_parse(const char *content_type, const char *body, size_t len,
                    struct mpart **out, char *err, size_t errlen);
void multipart_free(struct mpart *parts, int n);

/* ---- store (store.c): all functions take db_lock themselves unless
 * named *_locked. ------------------------------------------------------ */
int store_open(const char *path, char *err, size_t errlen);
void store_close(void);
/** Wipes everything and runs the CLI seeds. */
int store_reset(char *err, size_t errlen);
int store_run_cli_seeds(char *err, size_t errlen);
/** A fresh timestamp from the clock: whole seconds (it repeats within a
 * second); with --ms-timestamps real ms, strictly greater than any handed
 * out before (+1 ms when the clock has not moved). */
long long store_next_ts_locked(void);
/** A prepared statement on emu.db; aborts with the SQL on a bad statement. */
sqlite3_stmt *store_prep_locked(const char *sql);

struct project_row {
  long long id, root_folder, workflow_id, created, updated;
  int type;
  char name[512];
};
int store_project_locked(long long id, struct project_row *out); /* 1 found */
/** Finds or creates folder name ("root"/NULL = the root folder). */
long long store_ensure_folder_locked(const struct project_row *p,
                                    const char *name);
int store_project_by_name_locked(const char *name, struct project_row *out);
json_t *store_project_json_locked(const struct project_row *p, long long team);
json_t *store_folder_json_locked(sqlite3_stmt *row_stmt, long long team);
json_t *store_item_json_locked(sqlite3_stmt *st);
/** Column list matching store_item_json_locked. */
#define ITEM_COLS \
  "i.id, i.name, i.folder_id, i.project_id, i.status, i.created, i.updated"
#define FOLDER_COLS "f.id, f.name, f.project_id, f.is_root, f.created, f.updated"

/** The status name of value v in workflow wf, or NULL. */
const char *workflow_status_name(long long wf, long long v);
int workflow_exists(long long wf);
json_t *workflow_json(long long wf, long long team);
json_t *workflow_statuses_json(long long wf);

/** The document of an item (new buffer): stored bytes, generated bytes, or
 * the skeleton. Returns 1 found, 0 no such item (in project if pid>0). */
int store_item_doc_locked(long long item, long long pid, long long fid,
                          char **doc, size_t *len);
/** Size of the stored/generated document (skeleton size if none). */
long long store_item_doc_size_locked(long long item, long long pid, int *found);
/** Sets a document (bytes copied) and moves updatedAt. */
void store_item_set_doc_locked(long long item, const char *doc, size_t len,
                               long long ts);

/** Creates project/folder/items as needed (see README "seed").
 * docs: object name -> raw text (strings are raw text). */
struct seed_req {
  const char *project;
  int type;
  int workflow;
  const char *folder; /* NULL or "root" = root */
  const char **items;
  size_t nitems;
  const char **doc_names; /* raw documents per name */
  const char **docs;
  size_t *doc_lens;
  size_t ndocs;
  long long gen_count; /* >0: add img_%06d.jpg items with generated docs */
  const char **status_names; /* explicit statuses per name */
  long long *status_vals;
  size_t nstatus;
};
/** Returns 0 and fills result (new) or -1 with err. Takes db_lock. */
int store_seed(const struct seed_req *s, json_t **result, char *err,
               size_t errlen);
int store_seed_demo(char *err, size_t errlen);

/** Deterministic generated Vector document for seeded bench items. */
char *gen_vector_doc(long long item_id, const char *name, long long pid,
                     const char *status, size_t *len);

/* ---- API (api.c) ------------------------------------------------------ */
/** Routes an authenticated API request. Returns 0 if no route matched. */
int api_route(struct request *q, struct reply *r);
/** For the stream reply: MHD content reader callback + free. */
ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max);
void stream_free(void *cls);
/** Cut the stream after about the first document (drop fault). */
void stream_set_drop(struct stream_state *s);
/** End the stream cleanly after its first n documents (stream_limit fault). */
void stream_set_limit(struct stream_state *s, long long n);
/** 1 if method + path is the annotation stream route. */
int api_is_stream(const char *method, const char *path);
void api_reset_state(void);

#endif
