/* Annotation documents over the assets provider: bulk download (api.md §9:
 * classify, large items through sync + v3.01, small batches as streams) and
 * upload (§10: multipart batches, the large multipart-over-JSON path, the
 * status rule of §10.6). Documents are carried as text, never re-encoded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "http_i.h"
#include "sa/doc.h"
#include "stream_i.h"

#define CLASSIFY_CHUNK 1000
#define LARGE_WORKERS 4
#define SMALL_WORKERS 8
#define SYNC_QUERY                                                                           \
    "desired_transform_version=export&desired_version=V1.00&current_transform_version=V1.00"

/* ================================================================== */
/* Download                                                            */

struct batch {
    long long *ids;
    size_t n;
};

struct dl {
    struct sa_client *c;
    long long project_id, folder_id;
    const long long *ids;
    const char *const *names;
    size_t n;
    sa_doc_fn cb;
    void *ud;

    size_t *by_id;   /* indexes sorted by ids[] */
    size_t *by_name; /* indexes sorted by names[] (when names) */
    char *done;      /* per index: delivered */

    struct sa_scope scope; /* the caller's cancel flag and date record */

    pthread_mutex_t mu; /* callbacks, error, work queues */
    enum sa_err err;
    char detail[1024];
    int abort;

    long long *large;
    size_t n_large, next_large;
    struct batch *batches;
    size_t n_batches, next_batch, cap_batches;
};

/* qsort has no user pointer; these comparators read the arrays through
 * thread-local pointers set just before sorting. */
static __thread const long long *tl_ids;
static __thread const char *const *tl_names;

static int cmp_by_id(const void *a, const void *b)
{
    long long x = tl_ids[*(const size_t *)a], y = tl_ids[*(const size_t *)b];
    return (x > y) - (x < y);
}

static int cmp_by_name(const void *a, const void *b)
{
    const char *x = tl_names[*(const size_t *)a], *y = tl_names[*(const size_t *)b];
    return strcmp(x ? x : "", y ? y : "");
}

static long find_id(const struct dl *d, long long id)
{
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        long long v = d->ids[d->by_id[mid]];
        if (v == id)
            return (long)d->by_id[mid];
        if (v < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static long find_name(const struct dl *d, const char *name)
{
    if (!d->by_name || !name)
        return -1;
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *v = d->names[d->by_name[mid]];
        int r = strcmp(v ? v : "", name);
        if (!r)
            return (long)d->by_name[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Record the first error (and its detail, taken from this thread). */
static void dl_error(struct dl *d, enum sa_err e)
{
    pthread_mutex_lock(&d->mu);
    if (d->err == SA_OK) {
        d->err = e;
        snprintf(d->detail, sizeof d->detail, "%s", sa_last_error());
    }
    d->abort = 1;
    pthread_mutex_unlock(&d->mu);
}

static int dl_aborted(struct dl *d)
{
    pthread_mutex_lock(&d->mu);
    int a = d->abort;
    pthread_mutex_unlock(&d->mu);
    return a;
}

/* Hand one document to the caller (serialized). @p known_idx >= 0 when the
 * item is known (large path). Returns nonzero to stop. */
static int dl_deliver(struct dl *d, long known_idx, const char *json, size_t len)
{
    long idx = known_idx;
    if (idx < 0) {
        long long mid = 0;
        char *mname = NULL;
        if (sa_doc_meta(json, len, &mid, &mname) != SA_OK) {
            sa_set_error("download: a document in the stream is not valid JSON");
            dl_error(d, SA_ERR_PROTO);
            return 1;
        }
        if (mid)
            idx = find_id(d, mid);
        /* a document copied from another item keeps that item's id (the
         * uploader's metadata.id), while its name is the item's: when the
         * two disagree among the requested items, the name wins */
        if (idx >= 0 && mname && d->names && d->names[idx] && strcmp(d->names[idx], mname)) {
            long by_name = find_name(d, mname);
            if (by_name >= 0)
                idx = by_name;
        }
        if (idx < 0)
            idx = find_name(d, mname);
        if (idx < 0)
            sa_logf(d->c, LOG_DEBUG,
                    "download: a document (metadata.id %lld) matches no requested item", mid);
        free(mname);
        if (idx < 0)
            return 0;
    }
    pthread_mutex_lock(&d->mu);
    int stop = d->abort;
    if (!stop && !d->done[idx]) {
        d->done[idx] = 1;
        if (d->cb(d->ud, d->ids[idx], json, len)) {
            if (d->err == SA_OK) {
                d->err = SA_ERR_INVAL;
                snprintf(d->detail, sizeof d->detail, "download aborted by the caller");
            }
            d->abort = stop = 1;
        }
    }
    pthread_mutex_unlock(&d->mu);
    return stop;
}

/* ---- classify (§9.1 step 3) ---- */

static int add_batch(struct dl *d, json_t *arr)
{
    size_t n = json_array_size(arr);
    if (!n)
        return 0;
    if (d->n_batches == d->cap_batches) {
        size_t cap = d->cap_batches ? d->cap_batches * 2 : 16;
        struct batch *b = realloc(d->batches, cap * sizeof *b);
        if (!b)
            return -1;
        d->batches = b;
        d->cap_batches = cap;
    }
    struct batch *b = &d->batches[d->n_batches];
    b->ids = malloc(n * sizeof *b->ids);
    if (!b->ids)
        return -1;
    b->n = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_array_get(arr, i);
        long long id = json_is_integer(row) ? (long long)json_integer_value(row)
                                            : sa_jint(row, "id");
        if (id)
            b->ids[b->n++] = id;
    }
    d->n_batches++;
    return 0;
}

static enum sa_err classify(struct dl *d)
{
    struct sa_client *c = d->c;
    double deadline = sa_call_deadline(c);
    for (size_t at = 0; at < d->n; at += CLASSIFY_CHUNK) {
        size_t k = d->n - at < CLASSIFY_CHUNK ? d->n - at : CLASSIFY_CHUNK;
        json_t *arr = json_array();
        for (size_t i = 0; i < k; i++)
            json_array_append_new(arr, json_integer(d->ids[at + i]));
        json_t *b = json_pack("{s:I,s:o}", "project_id", (json_int_t)d->project_id, "item_ids",
                              arr);
        char *body = b ? sa_jdump(b) : NULL;
        json_decref(b);
        if (!body)
            return SA_ERR_NOMEM;
        char q[48];
        snprintf(q, sizeof q, "limit=%zu", k);
        json_t *j = NULL;
        struct sa_req rq = {.method = "POST", .svc = SA_SVC_V4,
                            .path = "items/annotations/download/method", .query = q,
                            .body = body, .body_len = strlen(body), .kind = SA_REQ_CLASSIFY,
                            .deadline = deadline};
        enum sa_err e = sa_http_json(c, &rq, &j);
        free(body);
        if (e != SA_OK)
            return e;
        json_t *small = json_object_get(j, "small");
        json_t *large = json_object_get(j, "large");
        if ((!small && !large) || (small && !json_is_object(small) && !json_is_array(small)) ||
            (large && !json_is_array(large))) {
            json_decref(j);
            sa_set_error("POST v4:items/annotations/download/method: unexpected response shape");
            return SA_ERR_PROTO;
        }
        const char *key;
        json_t *val;
        size_t idx;
        json_t *ent;
        if (json_is_object(small)) {
            json_object_foreach(small, key, val) {
                json_t *data = json_is_array(val) ? val : json_object_get(val, "data");
                if (add_batch(d, data)) {
                    json_decref(j);
                    return SA_ERR_NOMEM;
                }
            }
        } else if (json_is_array(small)) {
            json_array_foreach(small, idx, val) {
                json_t *data = json_is_array(val) ? val : json_object_get(val, "data");
                if (add_batch(d, data)) {
                    json_decref(j);
                    return SA_ERR_NOMEM;
                }
            }
        }
        size_t nl = json_array_size(large);
        if (nl) {
            long long *v = realloc(d->large, (d->n_large + nl) * sizeof *v);
            if (!v) {
                json_decref(j);
                return SA_ERR_NOMEM;
            }
            d->large = v;
            json_array_foreach(large, idx, ent) {
                long long id = json_is_integer(ent) ? (long long)json_integer_value(ent)
                                                    : sa_jint(ent, "id");
                if (id)
                    d->large[d->n_large++] = id;
            }
        }
        json_decref(j);
    }
    return SA_OK;
}

/* ---- large items (§9.1 step 4) ---- */

/* Poll items/{id}/annotations/sync/status until SUCCESS (0.5 s growing to
 * 1 s between polls), a FAILED… status (SERVER) or the deadline. */
static enum sa_err poll_sync(struct sa_client *c, const char *path, const char *q,
                             const char *upload_id, enum sa_req_kind kind, double deadline)
{
    double nap = 0.5;
    for (;;) {
        json_t *j = NULL;
        struct sa_req rq = {.method = "GET", .svc = SA_SVC_V4, .path = path, .query = q,
                            .upload_id = upload_id, .kind = kind, .deadline = deadline};
        enum sa_err e = sa_http_json(c, &rq, &j);
        if (e != SA_OK)
            return e;
        json_t *st = json_object_get(j, "status");
        char status[128];
        snprintf(status, sizeof status, "%s", json_is_string(st) ? json_string_value(st) : "");
        json_decref(j);
        if (!strcmp(status, "SUCCESS"))
            return SA_OK;
        if (!strncmp(status, "FAILED", 6)) {
            sa_set_error("GET v4:%s: sync ended with %s", path, status);
            return SA_ERR_SERVER;
        }
        if (sa_now() + nap >= deadline) {
            sa_set_error("GET v4:%s: sync still \"%s\" at the deadline", path, status);
            return SA_ERR_TIMEOUT;
        }
        char what[192];
        snprintf(what, sizeof what, "GET v4:%s: waiting for the sync", path);
        if ((e = sa_nap(nap, what)) != SA_OK)
            return e;
        nap = nap * 2 > 1.0 ? 1.0 : nap * 2;
    }
}

static enum sa_err download_large(struct dl *d, long long id)
{
    struct sa_client *c = d->c;
    double deadline = sa_large_deadline(c);
    char path[128], q[256];
    struct sa_resp r;
    enum sa_err e;

    snprintf(path, sizeof path, "items/%lld/annotations/sync", id);
    snprintf(q, sizeof q, "project_id=%lld&" SYNC_QUERY "&current_source=main&desired_source=secondary",
             d->project_id);
    struct sa_req rq = {.method = "POST", .svc = SA_SVC_V4, .path = path, .query = q,
                        .kind = SA_REQ_DOWNLOAD, .deadline = deadline};
    e = sa_http(c, &rq, &r);
    sa_resp_clear(&r);
    if (e != SA_OK)
        return e;
    snprintf(path, sizeof path, "items/%lld/annotations/sync/status", id);
    snprintf(q, sizeof q, "project_id=%lld&" SYNC_QUERY, d->project_id);
    e = poll_sync(c, path, q, NULL, SA_REQ_DOWNLOAD, deadline);
    if (e != SA_OK)
        return e;
    snprintf(path, sizeof path, "items/%lld/annotations/download", id);
    snprintf(q, sizeof q, "project_id=%lld&annotation_type=MAIN&version=V1.00", d->project_id);
    struct sa_req rq2 = {.method = "POST", .svc = SA_SVC_V301, .path = path, .query = q,
                         .kind = SA_REQ_DOWNLOAD, .deadline = deadline};
    e = sa_http(c, &rq2, &r);
    if (e == SA_OK) {
        long idx = find_id(d, id);
        if (idx < 0) {
            sa_logf(c, LOG_DEBUG, "download: the server classified unrequested item %lld", id);
        } else {
            dl_deliver(d, idx, r.body, r.len);
        }
    }
    sa_resp_clear(&r);
    return e;
}

static void *large_worker(void *arg)
{
    struct dl *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        if (d->abort || d->next_large >= d->n_large) {
            pthread_mutex_unlock(&d->mu);
            return NULL;
        }
        long long id = d->large[d->next_large++];
        pthread_mutex_unlock(&d->mu);
        enum sa_err e = download_large(d, id);
        if (e != SA_OK)
            dl_error(d, e);
    }
}

/* ---- small batches: the stream (§9.1 step 5, §9.2) ---- */

struct sctx {
    struct dl *d;
    struct sa_stream st;
    int first_bad;
    int bad_later;
    char why[256];
};

static int on_object(void *ud, const char *json, size_t len, int has_meta, int has_err)
{
    struct sctx *s = ud;
    if (!has_meta || has_err) {
        if (s->st.objects == 1)
            s->first_bad = 1;
        else
            s->bad_later = 1;
        size_t n = len < 200 ? len : 200;
        snprintf(s->why, sizeof s->why, "invalid object #%zu in the stream: %.*s", s->st.objects,
                 (int)n, json);
        return 1;
    }
    return dl_deliver(s->d, -1, json, len);
}

static int sink_write(void *ud, const char *buf, size_t len)
{
    struct sctx *s = ud;
    return sa_stream_feed(&s->st, buf, len) != 0;
}

static void sink_reset(void *ud)
{
    struct sctx *s = ud;
    sa_stream_reset(&s->st);
    s->first_bad = s->bad_later = 0;
    s->why[0] = '\0';
}

static enum sa_err download_batch(struct dl *d, const struct batch *b)
{
    struct sa_client *c = d->c;
    struct sctx s = {.d = d};
    struct sa_sink sink = {.write = sink_write, .reset = sink_reset, .ud = &s};
    char q[128];
    enum sa_err e = SA_OK;
    double deadline = sa_call_deadline(c);

    json_t *arr = json_array();
    for (size_t i = 0; i < b->n; i++)
        json_array_append_new(arr, json_integer(b->ids[i]));
    json_t *jb = json_pack("{s:o}", "image_ids", arr);
    char *body = jb ? sa_jdump(jb) : NULL;
    json_decref(jb);
    if (!body)
        return SA_ERR_NOMEM;
    if (d->folder_id)
        snprintf(q, sizeof q, "project_id=%lld&limit=%zu&folder_id=%lld", d->project_id, b->n,
                 d->folder_id);
    else
        snprintf(q, sizeof q, "project_id=%lld&limit=%zu", d->project_id, b->n);
    sa_stream_init(&s.st, on_object, &s);
    s.st.max = c->max_body;

    /* an invalid first object: the batch is tried again (3 attempts) */
    for (int attempt = 0; attempt < 3; attempt++) {
        struct sa_resp r;
        struct sa_req rq = {.method = "POST", .svc = SA_SVC_V4,
                            .path = "items/annotations/download", .query = q, .body = body,
                            .body_len = strlen(body), .kind = SA_REQ_DOWNLOAD,
                            .deadline = deadline, .sink = &sink};
        e = sa_http(c, &rq, &r);
        sa_resp_clear(&r);
        if (e == SA_OK && sa_stream_finish(&s.st) != 0) {
            sa_set_error("POST v4:items/annotations/download: %s", s.st.why);
            e = SA_ERR_PROTO;
        }
        if (e == SA_ERR_PROTO && s.st.failed) {
            if (s.first_bad || s.bad_later)
                sa_set_error("POST v4:items/annotations/download: %s", s.why);
            else if (dl_aborted(d))
                e = SA_OK; /* stopped by the caller or another worker: error kept */
            else
                sa_set_error("POST v4:items/annotations/download: %s", s.st.why);
        }
        if (!s.first_bad || dl_aborted(d))
            break;
        double nap = 0.3 * (attempt + 1);
        if (attempt == 2 || sa_now() + nap >= deadline)
            break;
        sa_logf(c, LOG_INFO, "%s; retry %d in %.1f s", sa_last_error(), attempt + 1, nap);
        enum sa_err ne = sa_nap(nap, "POST v4:items/annotations/download: retry backoff");
        if (ne != SA_OK) {
            e = ne;
            break;
        }
    }
    sa_stream_free(&s.st);
    free(body);
    return e;
}

static void *small_worker(void *arg)
{
    struct dl *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        if (d->abort || d->next_batch >= d->n_batches) {
            pthread_mutex_unlock(&d->mu);
            return NULL;
        }
        struct batch *b = &d->batches[d->next_batch++];
        pthread_mutex_unlock(&d->mu);
        enum sa_err e = download_batch(d, b);
        if (e != SA_OK)
            dl_error(d, e);
    }
}

/* A worker thread: the caller's cancel flag and date record, then fn. */
struct worker_arg {
    struct dl *d;
    void *(*fn)(void *);
};

static void *worker_main(void *arg)
{
    struct worker_arg *w = arg;
    sa_scope_adopt(&w->d->scope);
    return w->fn(w->d);
}

/* Run fn on up to @p max threads (the caller's thread alone for one job). */
static void run_workers(struct dl *d, void *(*fn)(void *), size_t jobs, size_t max)
{
    pthread_t th[SMALL_WORKERS];
    struct worker_arg wa = {.d = d, .fn = fn};
    size_t n = jobs < max ? jobs : max, started = 0;
    if (n <= 1) {
        if (jobs)
            fn(d);
        return;
    }
    sa_scope_get(&d->scope);
    for (size_t i = 0; i < n; i++)
        if (pthread_create(&th[started], NULL, worker_main, &wa) == 0)
            started++;
    if (!started)
        fn(d);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
}

enum sa_err sa_download_annotations(struct sa_client *c, long long project_id,
                                    long long folder_id, const long long *ids,
                                    const char *const *names, size_t n, sa_doc_fn cb, void *ud)
{
    SA_CALL;
    struct dl d = {.c = c, .project_id = project_id, .folder_id = folder_id, .ids = ids,
                   .names = names, .n = n, .cb = cb, .ud = ud};
    enum sa_err e = SA_OK;
    sa_clear_error();
    if (n == 0)
        return SA_OK;
    if (!ids || !cb) {
        sa_set_error("download: no ids or no callback");
        return sa_fail(c, SA_ERR_INVAL);
    }
    pthread_mutex_init(&d.mu, NULL);
    d.by_id = malloc(n * sizeof *d.by_id);
    d.done = calloc(n, 1);
    if (names)
        d.by_name = malloc(n * sizeof *d.by_name);
    if (!d.by_id || !d.done || (names && !d.by_name)) {
        e = SA_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        d.by_id[i] = i;
    tl_ids = ids;
    qsort(d.by_id, n, sizeof *d.by_id, cmp_by_id);
    if (names) {
        for (size_t i = 0; i < n; i++)
            d.by_name[i] = i;
        tl_names = names;
        qsort(d.by_name, n, sizeof *d.by_name, cmp_by_name);
    }

    e = classify(&d);
    if (e != SA_OK)
        goto out;
    run_workers(&d, large_worker, d.n_large, LARGE_WORKERS);
    if (!d.abort)
        run_workers(&d, small_worker, d.n_batches, SMALL_WORKERS);
    e = d.err;
    if (e != SA_OK)
        sa_set_error("%s", d.detail);
out:
    if (e == SA_ERR_NOMEM && !sa_last_error()[0])
        sa_set_error("download: out of memory");
    for (size_t i = 0; i < d.n_batches; i++)
        free(d.batches[i].ids);
    free(d.batches);
    free(d.large);
    free(d.by_id);
    free(d.by_name);
    free(d.done);
    pthread_mutex_destroy(&d.mu);
    return sa_fail(c, e);
}

/* ================================================================== */
/* Upload                                                              */

#define BIG_FILE_THRESHOLD (15u * 1024 * 1024)
#define CHUNK_BYTES (10u * 1024 * 1024)
#define URI_THRESHOLD (4 * 1024 - 120)
#define PART_BYTES (5u * 1024 * 1024)

static void doc_fail(struct sa_upload_doc *doc, enum sa_err e, const char *detail)
{
    doc->result = e;
    snprintf(doc->detail, sizeof doc->detail, "%s", detail);
}

/* ---- multipart body: one part per document, `{"data":<doc>}` ---- */

struct part_rd {
    const struct sa_upload_doc *doc;
    size_t pos; /* over prefix + doc + suffix */
};

#define PART_PREFIX "{\"data\":"
#define PART_PREFIX_LEN 8

static size_t part_read(char *buf, size_t size, size_t nitems, void *arg)
{
    struct part_rd *r = arg;
    size_t want = size * nitems, got = 0;
    size_t total = PART_PREFIX_LEN + r->doc->len + 1;
    while (got < want && r->pos < total) {
        const char *src;
        size_t avail;
        if (r->pos < PART_PREFIX_LEN) {
            src = PART_PREFIX + r->pos;
            avail = PART_PREFIX_LEN - r->pos;
        } else if (r->pos < PART_PREFIX_LEN + r->doc->len) {
            src = r->doc->json + (r->pos - PART_PREFIX_LEN);
            avail = PART_PREFIX_LEN + r->doc->len - r->pos;
        } else {
            src = "}";
            avail = 1;
        }
        if (avail > want - got)
            avail = want - got;
        memcpy(buf + got, src, avail);
        got += avail;
        r->pos += avail;
    }
    return got;
}

static int part_seek(void *arg, curl_off_t offset, int origin)
{
    struct part_rd *r = arg;
    if (origin != SEEK_SET || offset < 0)
        return CURL_SEEKFUNC_CANTSEEK;
    r->pos = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

struct mp {
    struct sa_upload_doc *docs;
    const size_t *idx;
    size_t k;
    struct part_rd *rd;
};

static curl_mime *build_mime(CURL *h, void *ud)
{
    struct mp *m = ud;
    curl_mime *mime = curl_mime_init(h);
    if (!mime)
        return NULL;
    /* part names as aiohttp writes them (api.md §10.3): '\' and '"'
     * backslash-escaped; curl's default would send '"' as "%22", which the
     * server takes as another item's name */
    curl_easy_setopt(h, CURLOPT_MIME_OPTIONS, (long)CURLMIMEOPT_FORMESCAPE);
    for (size_t i = 0; i < m->k; i++) {
        struct sa_upload_doc *doc = &m->docs[m->idx[i]];
        curl_mimepart *part = curl_mime_addpart(mime);
        m->rd[i].doc = doc;
        m->rd[i].pos = 0;
        if (!part || curl_mime_name(part, doc->name) || curl_mime_filename(part, doc->name) ||
            curl_mime_type(part, "application/json") ||
            curl_mime_data_cb(part, (curl_off_t)(PART_PREFIX_LEN + doc->len + 1), part_read,
                              part_seek, NULL, &m->rd[i])) {
            curl_mime_free(mime);
            return NULL;
        }
    }
    return mime;
}

/* One small-upload request (§10.3) for docs[idx[0..k)]. */
static void upload_batch(struct sa_client *c, const struct sa_project *p, long long folder_id,
                         struct sa_upload_doc *docs, const size_t *idx, size_t k)
{
    struct sa_buf q = {0};
    struct mp m = {.docs = docs, .idx = idx, .k = k};
    json_t *j = NULL;
    enum sa_err e;

    sa_buf_addf(&q, "project_id=%lld&folder_id=%lld", p->id, folder_id);
    for (size_t i = 0; i < k; i++) {
        sa_buf_adds(&q, "&image_names%5B%5D=");
        sa_buf_addq(&q, docs[idx[i]].name);
    }
    m.rd = calloc(k, sizeof *m.rd);
    if (q.oom || !m.rd) {
        e = SA_ERR_NOMEM;
        sa_set_error("upload: out of memory");
        goto fail;
    }
    struct sa_req rq = {.method = "POST", .svc = SA_SVC_V4, .path = "items/annotations/upload",
                        .query = q.p, .mime = build_mime, .mime_ud = &m,
                        .kind = SA_REQ_UPLOAD};
    e = sa_http_json(c, &rq, &j);
    if (e != SA_OK)
        goto fail;
    json_t *failed = json_object_get(j, "failedItems");
    if (!json_is_object(json_object_get(j, "missingResources")) ||
        (failed && !json_is_array(failed))) {
        e = SA_ERR_PROTO;
        sa_set_error("POST v4:items/annotations/upload: no missingResources in the response");
        goto fail;
    }
    size_t fi;
    json_t *fv;
    json_array_foreach(failed, fi, fv) {
        const char *nm = json_string_value(fv);
        if (!nm)
            continue;
        for (size_t i = 0; i < k; i++)
            if (!strcmp(docs[idx[i]].name, nm))
                doc_fail(&docs[idx[i]], SA_ERR_INVAL, "the platform rejected the document");
    }
    json_decref(j);
    free(m.rd);
    sa_buf_free(&q);
    return;
fail:
    for (size_t i = 0; i < k; i++)
        doc_fail(&docs[idx[i]], e, sa_last_error());
    json_decref(j);
    free(m.rd);
    sa_buf_free(&q);
}

/* Small-upload requests in flight at once (the "several in flight";
 * the SDK sends them one after another). */
#define UPLOAD_WORKERS 4

struct up_job {
    const size_t *idx;
    size_t k;
};

struct up {
    struct sa_client *c;
    const struct sa_project *p;
    long long folder_id;
    struct sa_upload_doc *docs;   /* each job writes only its own documents' results */
    struct up_job *jobs;
    size_t n_jobs, next;
    pthread_mutex_t mu;
    struct sa_scope scope;
};

static void up_loop(struct up *u)
{
    for (;;) {
        pthread_mutex_lock(&u->mu);
        struct up_job *j = u->next < u->n_jobs ? &u->jobs[u->next++] : NULL;
        pthread_mutex_unlock(&u->mu);
        if (!j)
            return;
        upload_batch(u->c, u->p, u->folder_id, u->docs, j->idx, j->k);
    }
}

static void *up_worker(void *arg)
{
    struct up *u = arg;
    sa_scope_adopt(&u->scope);
    up_loop(u);
    return NULL;
}

static void run_uploads(struct up *u)
{
    pthread_t th[UPLOAD_WORKERS - 1];
    size_t started = 0, want = u->n_jobs < UPLOAD_WORKERS ? u->n_jobs : UPLOAD_WORKERS;
    pthread_mutex_init(&u->mu, NULL);
    if (want > 1) {
        sa_scope_get(&u->scope);
        for (size_t i = 0; i + 1 < want; i++)
            if (pthread_create(&th[started], NULL, up_worker, u) == 0)
                started++;
    }
    up_loop(u); /* the calling thread takes its share */
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&u->mu);
}

/* ---- large path (§10.5) ---- */

/* `{"data_chunk": "<s[0..n) as a JSON string>"}`, new. */
static char *chunk_body(const char *s, size_t n, size_t *outlen)
{
    static const char hex[] = "0123456789abcdef";
    struct sa_buf b = {0};
    sa_buf_adds(&b, "{\"data_chunk\": \"");
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        sa_buf_add(&b, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0};
        size_t el = 2;
        switch (ch) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            el = 6;
            break;
        }
        sa_buf_add(&b, esc, el);
    }
    sa_buf_add(&b, s + run, n - run);
    sa_buf_adds(&b, "\"}");
    if (b.oom) {
        sa_buf_free(&b);
        return NULL;
    }
    *outlen = b.len;
    return b.p;
}

/* start, parts, finish (§10.5 steps 1-3). *upath / *upload_id are new (also
 * after a failure). *unsure: the last finish failed after an attempt that
 * may have taken effect. */
static enum sa_err upload_parts(struct sa_client *c, const char *q,
                                struct sa_upload_doc *doc, double deadline, char **upath,
                                char **upload_id, int *unsure)
{
    char path[160];
    json_t *j = NULL;
    struct sa_resp r;
    enum sa_err e;
    struct sa_buf pq = {0};

    *upath = *upload_id = NULL;
    *unsure = 0;
    snprintf(path, sizeof path, "items/%lld/annotations/upload/multipart/start", doc->item_id);
    struct sa_req rq = {.method = "POST", .svc = SA_SVC_V301, .path = path, .query = q,
                        .kind = SA_REQ_UPLOAD, .deadline = deadline};
    e = sa_http_json(c, &rq, &j);
    if (e != SA_OK)
        return e;
    *upath = sa_jstrdup(j, "path");
    *upload_id = sa_jstrdup(j, "upload_id");
    json_decref(j);
    j = NULL;
    if (!*upath || !*upload_id) {
        sa_set_error("POST v3.01:%s: no path/upload_id in the response", path);
        return SA_ERR_PROTO;
    }

    snprintf(path, sizeof path, "items/%lld/annotations/upload/multipart/part", doc->item_id);
    size_t at = 0;
    for (int chunk_id = 1; at < doc->len; chunk_id++) {
        size_t cut = doc->len - at > PART_BYTES ? at + PART_BYTES : doc->len;
        /* never split a UTF-8 character */
        while (cut < doc->len && cut > at && ((unsigned char)doc->json[cut] & 0xC0) == 0x80)
            cut--;
        if (cut == at) /* no character border in a whole part (not UTF-8) */
            cut = at + PART_BYTES;
        size_t blen = 0;
        char *body = chunk_body(doc->json + at, cut - at, &blen);
        if (!body) {
            e = SA_ERR_NOMEM;
            sa_set_error("upload: out of memory");
            goto out;
        }
        sa_buf_free(&pq);
        sa_buf_addf(&pq, "%s&path=", q);
        sa_buf_addq(&pq, *upath);
        sa_buf_addf(&pq, "&chunk_id=%d", chunk_id);
        struct sa_req prq = {.method = "POST", .svc = SA_SVC_V4, .path = path, .query = pq.p,
                             .body = body, .body_len = blen, .upload_id = *upload_id,
                             .kind = SA_REQ_UPLOAD, .deadline = deadline};
        e = sa_http(c, &prq, &r);
        sa_resp_clear(&r);
        free(body);
        if (e != SA_OK)
            goto out;
        at = cut;
    }

    snprintf(path, sizeof path, "items/%lld/annotations/upload/multipart/finish", doc->item_id);
    sa_buf_free(&pq);
    sa_buf_addf(&pq, "%s&path=", q);
    sa_buf_addq(&pq, *upath);
    struct sa_req frq = {.method = "POST", .svc = SA_SVC_V4, .path = path, .query = pq.p,
                         .upload_id = *upload_id, .kind = SA_REQ_UPLOAD, .deadline = deadline};
    e = sa_http(c, &frq, &r);
    *unsure = e != SA_OK && r.unsure;
    sa_resp_clear(&r);
out:
    sa_buf_free(&pq);
    return e;
}

static enum sa_err upload_large(struct sa_client *c, const struct sa_project *p,
                                long long folder_id, struct sa_upload_doc *doc)
{
    char path[160], q[128];
    struct sa_resp r;
    enum sa_err e;
    double deadline = sa_large_deadline(c);
    char *upath = NULL, *upload_id = NULL;

    if (doc->item_id <= 0) {
        sa_set_error("upload: the large path needs the item id of \"%s\"", doc->name);
        return SA_ERR_INVAL;
    }
    snprintf(q, sizeof q, "project_id=%lld&folder_id=%lld", p->id, folder_id);
    /* A finish whose answer was lost cannot be re-sent as it is: a finish
     * that did its work has closed the upload, and the re-sent one is refused
     * (the emulator: 400 "Unknown upload_id"). When the finish failed after
     * an attempt that may have taken effect, the document is uploaded once
     * more from the start (the same bytes: harmless if the first one was
     * stored). */
    for (int round = 0;; round++) {
        int unsure = 0;
        free(upath);
        free(upload_id);
        e = upload_parts(c, q, doc, deadline, &upath, &upload_id, &unsure);
        if (e == SA_OK || !unsure || round == 1 || e == SA_ERR_CANCELLED)
            break;
        sa_logf(c, LOG_INFO, "%s; the first finish may have been lost: uploading \"%s\" again",
                sa_last_error(), doc->name);
    }
    if (e != SA_OK)
        goto out;

    snprintf(path, sizeof path, "items/%lld/annotations/sync", doc->item_id);
    struct sa_req srq = {.method = "POST", .svc = SA_SVC_V4, .path = path, .query = q,
                         .upload_id = upload_id, .kind = SA_REQ_UPLOAD, .deadline = deadline};
    e = sa_http(c, &srq, &r);
    sa_resp_clear(&r);
    if (e != SA_OK)
        goto out;
    snprintf(path, sizeof path, "items/%lld/annotations/sync/status", doc->item_id);
    e = poll_sync(c, path, q, upload_id, SA_REQ_UPLOAD, deadline);
out:
    free(upath);
    free(upload_id);
    return e;
}

/* ---- the call ---- */

enum sa_err sa_upload_annotations(struct sa_client *c, const struct sa_project *p,
                                  long long folder_id, struct sa_upload_doc *docs, size_t n,
                                  int keep_status)
{
    SA_CALL;
    enum sa_err first = SA_OK;
    size_t *idx = NULL;
    const char **ok_names = NULL;
    char first_detail[512] = "";

    sa_clear_error();
    if (n == 0)
        return SA_OK;
    for (size_t i = 0; i < n; i++) {
        docs[i].result = SA_OK;
        docs[i].detail[0] = '\0';
        if (!docs[i].name || !docs[i].name[0] || !docs[i].json)
            doc_fail(&docs[i], SA_ERR_INVAL, "no item name or no document");
        else if (strpbrk(docs[i].name, "\r\n"))
            /* cannot be written into a multipart part header */
            doc_fail(&docs[i], SA_ERR_INVAL, "item name contains a line break");
        else if (!sa_utf8_ok(docs[i].name))
            /* no platform item has such a name */
            doc_fail(&docs[i], SA_ERR_INVAL, "item name is not valid UTF-8");
    }
    idx = malloc(n * sizeof *idx);
    if (!idx) {
        sa_set_error("upload: out of memory");
        return sa_fail(c, SA_ERR_NOMEM);
    }

    /* large documents first, one at a time */
    for (size_t i = 0; i < n; i++) {
        if (docs[i].result != SA_OK || docs[i].len <= BIG_FILE_THRESHOLD)
            continue;
        enum sa_err e = upload_large(c, p, folder_id, &docs[i]);
        if (e != SA_OK)
            doc_fail(&docs[i], e, sa_last_error());
    }

    /* small documents in batches: a batch ends before the document that
     * would take it to 10 MiB or its names past the URI budget; the batches
     * go UPLOAD_WORKERS at a time */
    struct up u = {.c = c, .p = p, .folder_id = folder_id, .docs = docs};
    u.jobs = calloc(n + 1, sizeof *u.jobs);
    size_t k = 0, size = 0, names = 0, used = 0;
    for (size_t i = 0; i <= n; i++) {
        int last = i == n;
        if (!last && (docs[i].result != SA_OK || docs[i].len > BIG_FILE_THRESHOLD))
            continue;
        if (k && (last || size + docs[i].len >= CHUNK_BYTES ||
                  (long)names >= (long)URI_THRESHOLD - 14L * (long)(k + 1))) {
            if (u.jobs) {
                u.jobs[u.n_jobs].idx = idx + used - k;
                u.jobs[u.n_jobs++].k = k;
            } else {
                upload_batch(c, p, folder_id, docs, idx + used - k, k);
            }
            k = size = names = 0;
        }
        if (last)
            break;
        idx[used++] = i;
        k++;
        size += docs[i].len;
        names += strlen(docs[i].name);
    }
    if (u.jobs)
        run_uploads(&u);
    free(u.jobs);

    size_t n_ok = 0;
    ok_names = malloc(n * sizeof *ok_names);
    if (!ok_names) {
        free(idx);
        sa_set_error("upload: out of memory");
        return sa_fail(c, SA_ERR_NOMEM);
    }
    for (size_t i = 0; i < n; i++) {
        if (docs[i].result == SA_OK) {
            ok_names[n_ok++] = docs[i].name;
        } else if (first == SA_OK) {
            first = docs[i].result;
            snprintf(first_detail, sizeof first_detail, "%s: %s", docs[i].name, docs[i].detail);
        }
    }

    /* §10.6: system workflow and !keep_status -> InProgress */
    if (!keep_status && n_ok > 0) {
        struct sa_workflow w;
        enum sa_err e = sa_get_workflow(c, p->id, p->workflow_id, &w);
        if (e == SA_OK && w.is_system) {
            int v = sa_workflow_status_value(&w, "InProgress");
            if (v < 0)
                v = 2; /* the system workflow's value (api.md §8.1) */
            e = sa_set_annotation_statuses(c, p->id, folder_id, v, ok_names, n_ok);
        }
        sa_workflow_clear(&w);
        if (e != SA_OK && first == SA_OK) {
            /* already counted in stats.errors by the inner call */
            free(idx);
            free(ok_names);
            return e;
        }
    }
    free(idx);
    free(ok_names);
    if (first != SA_OK)
        sa_set_error("%s", first_detail);
    return sa_fail(c, first);
}
