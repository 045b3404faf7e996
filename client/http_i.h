/* Private to libsaclient: the client object, the HTTP transport (http.c) and
 * small helpers shared by the call files (api.c, annotations.c). */
#ifndef SA_HTTP_I_H
#define SA_HTTP_I_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "sa/client.h"

/* The services of api.md §1, each with its own base URL. */
enum sa_svc { SA_SVC_MAIN, SA_SVC_ITEM, SA_SVC_WM, SA_SVC_V4, SA_SVC_V301, SA_SVC__COUNT };

/* One cached workflow (api.md §8.1: 5 s). */
struct sa_wf_cache_ent {
    long long project_id, workflow_id;
    double at;                 /* monotonic seconds; 0 = empty */
    struct sa_workflow wf;
};
#define SA_WF_CACHE_N 8

/* One pooled transfer slot: an easy handle and the multi handle that drives
 * it (the multi keeps the keep-alive connection between transfers; sa_http
 * polls it every SA_POLL_MS so a cancel is seen while the server is silent). */
struct sa_conn {
    CURL *h;
    CURLM *m;
};

struct sa_client {
    char *token;
    long long team_id;
    char *base[SA_SVC__COUNT];  /* each ends with '/' */
    char *cafile;
    int insecure;
    double scale;
    size_t max_body;            /* cap of any buffered response body and of one stream object */
    sa_log_fn log;
    void *log_ud;

    /* pool of easy handles */
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    struct sa_conn *pool;      /* free slots: pool[0..n_free) */
    size_t n_free, n_handles, max_handles;

    CURLSH *share;
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];

    /* counters, updated with __atomic builtins */
    struct sa_stats stats;

    pthread_mutex_t wf_mu;
    struct sa_wf_cache_ent wf_cache[SA_WF_CACHE_N];
};

/* Deadlines in seconds before timeout_scale (docs: style.md, brief). */
#define SA_CONNECT_S 10.0
#define SA_STALL_S 30.0
#define SA_CALL_S 60.0
#define SA_LARGE_S 600.0
/* Default cap of a response body or one stream object: the daemon's default
 * max_doc (256 MiB) plus 16 MiB of headroom. */
#define SA_MAX_BODY_DEFAULT ((size_t)272 << 20)
/* How often a waiting transfer, a backoff sleep or a poll nap looks at the
 * calling thread's cancel flag (ms). */
#define SA_POLL_MS 50

/* Sink for a 2xx response body (streamed downloads). Returns 0 to go on,
 * nonzero to abort the transfer. reset is called before each attempt. */
struct sa_sink {
    int (*write)(void *ud, const char *buf, size_t len);
    void (*reset)(void *ud);
    void *ud;
};

struct sa_resp;

/* One request. Strings are borrowed. */
struct sa_req {
    const char *method;        /* "GET", "POST", "PUT" */
    enum sa_svc svc;
    const char *path;          /* relative to the service base, no leading '/' needed */
    const char *query;         /* extra query, already escaped, without team_id; or NULL */
    const char *body;          /* JSON body or NULL */
    size_t body_len;
    const char *ctx;           /* x-sa-entity-context JSON (base64'd here); NULL = main default */
    const char *upload_id;     /* extra `upload_id:` header, or NULL */
    enum sa_req_kind kind;
    double deadline;           /* absolute (sa_now()); 0 = now + 60 s × scale */
    /* multipart: called for each attempt with the handle; returns a new mime */
    curl_mime *(*mime)(CURL *h, void *ud);
    void *mime_ud;
    const struct sa_sink *sink; /* NULL: buffer the body in resp */
    /* A request that must not be sent again blindly (client/README.md,
     * "Re-sending"): after a failed attempt that may have taken effect,
     * sa_http asks landed() before sending again, and once more before
     * giving up. landed() runs without the caller's pool slot, may make its
     * own requests (with @p deadline), and returns SA_OK with @p resp filled
     * as the 2xx answer would have been (the request took effect),
     * SA_ERR_NOTFOUND if it did not (sa_http sends it again), or another
     * error if it cannot tell (sa_http stops). NULL: re-send as usual. */
    enum sa_err (*landed)(struct sa_client *c, void *ud, double deadline,
                          struct sa_resp *resp);
    void *landed_ud;
};

struct sa_resp {
    long status;
    char *body;                /* NUL-terminated, new */
    size_t len;
    int unsure;                /* a failed attempt may have taken effect on the
                                  server: its bytes went out and then the
                                  connection failed, the attempt timed out, or
                                  the answer was 429/5xx (whatever the final
                                  result) */
};
void sa_resp_clear(struct sa_resp *r);

/* Do the request with retries (429/502/503/504, connection errors) within
 * its deadline. Returns SA_OK only for a 2xx; otherwise maps the failure,
 * sets the thread's detail and logs. resp is filled in both cases.
 * Records each response's Date for sa_last_dates(); with the thread's cancel
 * flag set, sends nothing / aborts the transfer / wakes the backoff and
 * returns SA_ERR_CANCELLED. rq->landed: see struct sa_req. */
enum sa_err sa_http(struct sa_client *c, const struct sa_req *rq, struct sa_resp *resp);

/* Same, then parses the body as JSON (new reference in *out). */
enum sa_err sa_http_json(struct sa_client *c, const struct sa_req *rq, json_t **out);

/* Thread-local detail (sa_last_error). */
void sa_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sa_clear_error(void);
/* Log through cfg.log (never includes the token: callers pass paths only). */
void sa_logf(struct sa_client *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Count a call that returned an error; returns e. */
enum sa_err sa_fail(struct sa_client *c, enum sa_err e);

double sa_now(void);            /* CLOCK_MONOTONIC seconds */
void sa_sleep(double s);

/* ---- the calling thread's call scope (http.c) ----
 * Every public call that can make requests starts with SA_CALL: it marks the
 * outermost call of the thread, so sa_last_dates() covers that call and the
 * public calls it makes itself (nested calls do not start a new record). */
int sa_call_enter(void);
void sa_call_leave(int *guard);
#define SA_CALL                                                                              \
    __attribute__((cleanup(sa_call_leave), unused)) int sa_call_guard_ = sa_call_enter()

/* What an internal worker thread takes over from the thread it works for:
 * the cancel flag and where server dates are recorded. */
struct sa_dates {
    int64_t first_ms, last_ms; /* 0 = none; updated with __atomic builtins */
};
struct sa_scope {
    const volatile int *cancel;
    struct sa_dates *dates;
    double deadline;            /* the operation's, 0 = none */
};
/* In the calling thread, before starting workers (also starts the call's
 * date record if no request has done it yet). */
void sa_scope_get(struct sa_scope *out);
/* In a worker thread, first thing; @p s must outlive the worker. */
void sa_scope_adopt(const struct sa_scope *s);
/* 1 if the calling thread's cancel flag is installed and set. */
int sa_cancelled(void);
/* Sleep @p s seconds, waking within SA_POLL_MS of a cancel: then sets the
 * detail "<what>: cancelled" and returns SA_ERR_CANCELLED; else SA_OK. */
enum sa_err sa_nap(double s, const char *what);

/* 1 if the NUL-terminated @p s is valid UTF-8 (jansson's rules: no overlong
 * forms, no surrogates, nothing above U+10FFFF). */
int sa_utf8_ok(const char *s);
/* now + 60 s × scale, or the thread's operation deadline if earlier */
double sa_call_deadline(const struct sa_client *c);
double sa_large_deadline(const struct sa_client *c);

/* Growing string. */
struct sa_buf { char *p; size_t len, cap; int oom; };
void sa_buf_add(struct sa_buf *b, const char *s, size_t n);
void sa_buf_adds(struct sa_buf *b, const char *s);
void sa_buf_addf(struct sa_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sa_buf_free(struct sa_buf *b);
/* Append @p s percent-encoded for a query value. */
void sa_buf_addq(struct sa_buf *b, const char *s);

/* JSON field helpers (0 / NULL when absent). */
long long sa_jint(json_t *o, const char *key);
char *sa_jstrdup(json_t *o, const char *key);
/* json_dumps compact into a new string, NULL on ENOMEM. */
char *sa_jdump(json_t *v);

/* Workflow copy helper (api.c). */
enum sa_err sa_workflow_copy(struct sa_workflow *dst, const struct sa_workflow *src);

#endif
