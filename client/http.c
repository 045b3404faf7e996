/* libsaclient transport: configuration, the pool of curl easy handles, one
 * request with retries and deadlines, HTTP/curl -> enum sa_err (ONLY here),
 * the thread's error detail, counters, logging. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "http_i.h"

#ifndef SAFS_VERSION
#define SAFS_VERSION "0"
#endif

/* ------------------------------------------------------------------ */
/* Errors, logging                                                     */

static __thread char tl_err[1024];

const char *sa_strerror(enum sa_err e)
{
    switch (e) {
    case SA_OK: return "success";
    case SA_ERR_NOTFOUND: return "not found";
    case SA_ERR_DENIED: return "access denied";
    case SA_ERR_INVAL: return "invalid argument or document";
    case SA_ERR_EXISTS: return "already exists";
    case SA_ERR_CONFLICT: return "changed on the platform";
    case SA_ERR_BUSY: return "server busy";
    case SA_ERR_TIMEOUT: return "timed out";
    case SA_ERR_NET: return "network error";
    case SA_ERR_SERVER: return "server error";
    case SA_ERR_PROTO: return "unexpected response";
    case SA_ERR_TOOBIG: return "too big";
    case SA_ERR_NOMEM: return "out of memory";
    case SA_ERR_UNSUPP: return "not supported";
    case SA_ERR_CANCELLED: return "cancelled";
    }
    return "unknown error";
}

const char *sa_last_error(void)
{
    return tl_err;
}

void sa_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_err, sizeof tl_err, fmt, ap);
    va_end(ap);
}

void sa_clear_error(void)
{
    tl_err[0] = '\0';
}

void sa_logf(struct sa_client *c, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    if (!c->log)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->log(c->log_ud, level, msg);
}

enum sa_err sa_fail(struct sa_client *c, enum sa_err e)
{
    if (e != SA_OK)
        __atomic_fetch_add(&c->stats.errors, 1, __ATOMIC_RELAXED);
    return e;
}

const char *sa_req_kind_name(enum sa_req_kind k)
{
    static const char *const names[SA_REQ__COUNT] = {
        "auth", "project", "folder", "list", "workflow", "classify",
        "download", "upload", "status", "delete", "other",
    };
    if ((int)k < 0 || k >= SA_REQ__COUNT)
        return "other";
    return names[k];
}

void sa_client_stats(struct sa_client *c, struct sa_stats *out)
{
    for (int i = 0; i < SA_REQ__COUNT; i++)
        out->requests[i] = __atomic_load_n(&c->stats.requests[i], __ATOMIC_RELAXED);
    out->retries = __atomic_load_n(&c->stats.retries, __ATOMIC_RELAXED);
    out->errors = __atomic_load_n(&c->stats.errors, __ATOMIC_RELAXED);
    out->bytes_down = __atomic_load_n(&c->stats.bytes_down, __ATOMIC_RELAXED);
    out->bytes_up = __atomic_load_n(&c->stats.bytes_up, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* The calling thread's call scope: cancel flag, server dates          */

/* Per thread: the installed cancel flag; the dates of its most recent call
 * that made requests (own), or, in an internal worker thread, the record of
 * the thread it works for (inherited); the nesting of public calls; and
 * whether the outermost call has yet to start its record (fresh: done at
 * its first request, so a call that sends nothing keeps the last record). */
static __thread struct {
    const volatile int *cancel;
    struct sa_dates own;
    struct sa_dates *inherited;
    int depth, fresh;
    double deadline; /* the operation's (sa_now() seconds), 0 = none */
} tl_scope;

void sa_op_deadline(double seconds)
{
    tl_scope.deadline = seconds > 0 ? sa_now() + seconds : 0;
}

double sa_op_remaining(void)
{
    if (tl_scope.deadline <= 0)
        return -1;
    double left = tl_scope.deadline - sa_now();
    return left > 0 ? left : 0;
}

int sa_call_enter(void)
{
    if (tl_scope.depth++ == 0 && !tl_scope.inherited)
        tl_scope.fresh = 1;
    return 0;
}

void sa_call_leave(int *guard)
{
    (void)guard;
    tl_scope.depth--;
}

/* The record this thread's responses go to; starts the call's record. */
static struct sa_dates *dates_rec(void)
{
    if (tl_scope.inherited)
        return tl_scope.inherited;
    if (tl_scope.fresh) {
        tl_scope.fresh = 0;
        __atomic_store_n(&tl_scope.own.first_ms, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&tl_scope.own.last_ms, 0, __ATOMIC_RELAXED);
    }
    return &tl_scope.own;
}

static void dates_add(struct sa_dates *d, int64_t ms)
{
    int64_t cur = __atomic_load_n(&d->first_ms, __ATOMIC_RELAXED);
    while ((cur == 0 || ms < cur) &&
           !__atomic_compare_exchange_n(&d->first_ms, &cur, ms, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
    cur = __atomic_load_n(&d->last_ms, __ATOMIC_RELAXED);
    while (ms > cur && !__atomic_compare_exchange_n(&d->last_ms, &cur, ms, 0,
                                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

void sa_last_dates(int64_t *first_ms, int64_t *last_ms)
{
    if (first_ms)
        *first_ms = __atomic_load_n(&tl_scope.own.first_ms, __ATOMIC_RELAXED);
    if (last_ms)
        *last_ms = __atomic_load_n(&tl_scope.own.last_ms, __ATOMIC_RELAXED);
}

void sa_cancel_scope(const volatile int *flag)
{
    tl_scope.cancel = flag;
}

void sa_scope_get(struct sa_scope *out)
{
    out->cancel = tl_scope.cancel;
    out->dates = dates_rec();
    out->deadline = tl_scope.deadline;
}

void sa_scope_adopt(const struct sa_scope *s)
{
    tl_scope.cancel = s->cancel;
    tl_scope.inherited = s->dates;
    tl_scope.fresh = 0;
    tl_scope.deadline = s->deadline;
}

int sa_cancelled(void)
{
    const volatile int *f = tl_scope.cancel;
    return f && __atomic_load_n(f, __ATOMIC_ACQUIRE) != 0;
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

double sa_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sa_sleep(double s)
{
    struct timespec ts;
    if (s <= 0)
        return;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

enum sa_err sa_nap(double s, const char *what)
{
    double end = sa_now() + s;
    for (;;) {
        if (sa_cancelled()) {
            sa_set_error("%s: cancelled", what);
            return SA_ERR_CANCELLED;
        }
        double left = end - sa_now();
        if (left <= 0)
            return SA_OK;
        sa_sleep(left < SA_POLL_MS / 1000.0 ? left : SA_POLL_MS / 1000.0);
    }
}

int sa_utf8_ok(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned c = *s, cp, need;
        if (c < 0x80) {
            s++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            need = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            need = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            need = 3, cp = c & 0x07;
        else
            return 0; /* a continuation byte, an overlong 0xC0/0xC1, or > U+10FFFF */
        for (unsigned i = 1; i <= need; i++) {
            if ((s[i] & 0xC0) != 0x80)
                return 0; /* also stops at the NUL */
            cp = cp << 6 | (s[i] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        s += need + 1;
    }
    return 1;
}

double sa_call_deadline(const struct sa_client *c)
{
    double d = sa_now() + SA_CALL_S * c->scale;
    /* one user operation has one deadline, whatever number of calls it makes */
    if (tl_scope.deadline > 0 && tl_scope.deadline < d)
        d = tl_scope.deadline;
    return d;
}

double sa_large_deadline(const struct sa_client *c)
{
    return sa_now() + SA_LARGE_S * c->scale;
}

void sa_buf_add(struct sa_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sa_buf_adds(struct sa_buf *b, const char *s)
{
    sa_buf_add(b, s, strlen(s));
}

void sa_buf_addf(struct sa_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        sa_buf_add(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sa_buf_add(b, big, (size_t)n);
    free(big);
}

void sa_buf_free(struct sa_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void sa_buf_addq(struct sa_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            char one = (char)ch;
            sa_buf_add(b, &one, 1);
        } else {
            char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            sa_buf_add(b, enc, 3);
        }
    }
}

long long sa_jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        return (long long)json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    if (json_is_true(v))
        return 1;
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

char *sa_jstrdup(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_integer(v)) {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(v));
        return strdup(tmp);
    }
    return NULL;
}

char *sa_jdump(json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

void sa_resp_clear(struct sa_resp *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

static char *b64(const char *s, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_ALL);
}

/* api.md §2.1: ^[-.@_A-Za-z0-9]+=\d+$ ; the team id follows the '='. */
static int parse_token(const char *tok, long long *team)
{
    const char *p = tok;
    size_t key = 0;
    while (*p && *p != '=') {
        char ch = *p;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '@' || ch == '_'))
            return -1;
        p++;
        key++;
    }
    if (!key || *p != '=')
        return -1;
    p++;
    if (!*p)
        return -1;
    long long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    *team = v;
    return 0;
}

/* base + '/' if it lacks one (+ suffix), new. */
static char *join_base(const char *base, const char *suffix)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    size_t sn = suffix ? strlen(suffix) : 0;
    char *s = malloc(n + 1 + sn + 2);
    if (!s)
        return NULL;
    memcpy(s, base, n);
    s[n] = '/';
    if (sn) {
        memcpy(s + n + 1, suffix, sn);
        s[n + 1 + sn] = '\0';
        /* make sure it ends with '/' */
        if (s[n + sn] != '/') {
            s[n + 1 + sn] = '/';
            s[n + 2 + sn] = '\0';
        }
    } else {
        s[n + 1] = '\0';
    }
    return s;
}

#define SA_PROD_API "https://api.superannotate.com"

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *ud)
{
    (void)h;
    (void)a;
    struct sa_client *c = ud;
    pthread_mutex_lock(&c->share_mu[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *ud)
{
    (void)h;
    struct sa_client *c = ud;
    pthread_mutex_unlock(&c->share_mu[d]);
}

struct sa_client *sa_client_new(const struct sa_config *cfg, char *err, size_t errlen)
{
    struct sa_client *c = NULL;
    if (errlen)
        err[0] = '\0';
    if (!cfg || !cfg->token) {
        snprintf(err, errlen, "no token");
        return NULL;
    }
    long long team = 0;
    if (parse_token(cfg->token, &team) != 0) {
        snprintf(err, errlen, "token is not of the form <key>=<team_id>");
        return NULL;
    }
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        snprintf(err, errlen, "curl_global_init failed: %s", curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    c = calloc(1, sizeof *c);
    if (!c)
        goto oom;
    c->team_id = team;
    c->token = strdup(cfg->token);
    c->scale = cfg->timeout_scale > 0 ? cfg->timeout_scale : 1.0;
    c->insecure = cfg->insecure;
    c->log = cfg->log;
    c->log_ud = cfg->log_ud;
    c->max_handles = cfg->max_connections > 0 ? (size_t)cfg->max_connections : 16;
    c->max_body = cfg->max_body > 0 ? cfg->max_body : SA_MAX_BODY_DEFAULT;
    if (cfg->cafile && !(c->cafile = strdup(cfg->cafile)))
        goto oom;

    int prod = !cfg->url || !strcmp(cfg->url, SA_PROD_API) || !strcmp(cfg->url, SA_PROD_API "/");
    const char *url = cfg->url ? cfg->url : SA_PROD_API;
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
        snprintf(err, errlen, "url must start with http:// or https://");
        sa_client_free(c);
        return NULL;
    }
    c->base[SA_SVC_MAIN] = join_base(url, NULL);
    if (cfg->item_url)
        c->base[SA_SVC_ITEM] = join_base(cfg->item_url, NULL);
    else
        c->base[SA_SVC_ITEM] = prod ? join_base("https://item.superannotate.com/api/v1/", NULL)
                                    : join_base(url, "api/v1/");
    if (cfg->wm_url)
        c->base[SA_SVC_WM] = join_base(cfg->wm_url, NULL);
    else
        c->base[SA_SVC_WM] =
            prod ? join_base("https://work-management-api.superannotate.com/api/v1/", NULL)
                 : join_base(url, "api/v1/");
    const char *assets = cfg->assets_url;
    char *assets_own = NULL;
    if (!assets) {
        assets_own = prod ? join_base("https://assets-provider.superannotate.com/api/", NULL)
                          : join_base(url, "api/");
        assets = assets_own;
    }
    if (assets) {
        c->base[SA_SVC_V4] = join_base(assets, "v4/");
        c->base[SA_SVC_V301] = join_base(assets, "v3.01/");
    }
    free(assets_own);
    for (int i = 0; i < SA_SVC__COUNT; i++)
        if (!c->base[i])
            goto oom;
    if (!c->token)
        goto oom;

    pthread_mutex_init(&c->pool_mu, NULL);
    pthread_cond_init(&c->pool_cv, NULL);
    pthread_mutex_init(&c->wf_mu, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&c->share_mu[i], NULL);
    c->pool = calloc(c->max_handles, sizeof *c->pool);
    if (!c->pool)
        goto oom;
    c->share = curl_share_init();
    if (!c->share)
        goto oom;
    /* DNS and TLS sessions only: sharing the connection cache is a known
     * bug in curl 7.88 (KNOWN_BUGS "connection pool sharing"). */
    curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return c;
oom:
    snprintf(err, errlen, "out of memory");
    sa_client_free(c);
    return NULL;
}

void sa_client_free(struct sa_client *c)
{
    if (!c)
        return;
    if (c->pool) {
        for (size_t i = 0; i < c->n_free; i++) {
            curl_easy_cleanup(c->pool[i].h);
            curl_multi_cleanup(c->pool[i].m);
        }
        free(c->pool);
        pthread_mutex_destroy(&c->pool_mu);
        pthread_cond_destroy(&c->pool_cv);
        pthread_mutex_destroy(&c->wf_mu);
    }
    /* curl_share_cleanup still calls our lock callback: the share's mutexes
     * die after it */
    if (c->share)
        curl_share_cleanup(c->share);
    if (c->pool)
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
            pthread_mutex_destroy(&c->share_mu[i]);
    for (int i = 0; i < SA_WF_CACHE_N; i++)
        sa_workflow_clear(&c->wf_cache[i].wf);
    for (int i = 0; i < SA_SVC__COUNT; i++)
        free(c->base[i]);
    if (c->token) {
        /* do not leave the secret in freed memory */
        memset(c->token, 0, strlen(c->token));
        free(c->token);
    }
    free(c->cafile);
    free(c);
}

long long sa_client_team_id(const struct sa_client *c)
{
    return c->team_id;
}

/* ------------------------------------------------------------------ */
/* Handle pool                                                         */

/* A free slot into *out: 0; -1 when out of memory; 1 when the calling
 * thread's cancel flag was set while every slot was busy. */
static int pool_get(struct sa_client *c, struct sa_conn *out)
{
    pthread_mutex_lock(&c->pool_mu);
    while (c->n_free == 0 && c->n_handles >= c->max_handles) {
        if (sa_cancelled()) {
            pthread_mutex_unlock(&c->pool_mu);
            return 1;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += SA_POLL_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->pool_cv, &c->pool_mu, &ts);
    }
    if (c->n_free > 0) {
        *out = c->pool[--c->n_free];
        pthread_mutex_unlock(&c->pool_mu);
        return 0;
    }
    c->n_handles++;
    pthread_mutex_unlock(&c->pool_mu);
    out->h = curl_easy_init();
    out->m = curl_multi_init();
    if (!out->h || !out->m) {
        curl_easy_cleanup(out->h);
        if (out->m)
            curl_multi_cleanup(out->m);
        out->h = NULL;
        out->m = NULL;
        pthread_mutex_lock(&c->pool_mu);
        c->n_handles--;
        pthread_cond_signal(&c->pool_cv);
        pthread_mutex_unlock(&c->pool_mu);
        return -1;
    }
    return 0;
}

static void pool_put(struct sa_client *c, const struct sa_conn *k)
{
    pthread_mutex_lock(&c->pool_mu);
    c->pool[c->n_free++] = *k;
    pthread_cond_signal(&c->pool_cv);
    pthread_mutex_unlock(&c->pool_mu);
}

/* ------------------------------------------------------------------ */
/* Mapping                                                             */

/* A table, not a switch: -Wswitch-enum -Werror and a foreign enum. */
static const struct {
    CURLcode cc;
    enum sa_err e;
    int retry;
} curl_map[] = {
    {CURLE_COULDNT_CONNECT, SA_ERR_NET, 1},
    {CURLE_SEND_ERROR, SA_ERR_NET, 1},
    {CURLE_RECV_ERROR, SA_ERR_NET, 1},
    {CURLE_GOT_NOTHING, SA_ERR_NET, 1},
    {CURLE_PARTIAL_FILE, SA_ERR_NET, 1},
    {CURLE_HTTP2, SA_ERR_NET, 1},
    {CURLE_HTTP2_STREAM, SA_ERR_NET, 1},
    {CURLE_OPERATION_TIMEDOUT, SA_ERR_TIMEOUT, 1},
    {CURLE_COULDNT_RESOLVE_HOST, SA_ERR_NET, 0},
    {CURLE_COULDNT_RESOLVE_PROXY, SA_ERR_NET, 0},
    {CURLE_SSL_CONNECT_ERROR, SA_ERR_NET, 0},
    {CURLE_PEER_FAILED_VERIFICATION, SA_ERR_NET, 0},
    {CURLE_SSL_CACERT_BADFILE, SA_ERR_NET, 0},
    {CURLE_OUT_OF_MEMORY, SA_ERR_NOMEM, 0},
    {CURLE_URL_MALFORMAT, SA_ERR_INVAL, 0},
    {CURLE_UNSUPPORTED_PROTOCOL, SA_ERR_INVAL, 0},
    {CURLE_FILESIZE_EXCEEDED, SA_ERR_TOOBIG, 0},
    {CURLE_TOO_MANY_REDIRECTS, SA_ERR_PROTO, 0},
    {CURLE_BAD_CONTENT_ENCODING, SA_ERR_PROTO, 0},
    {CURLE_WRITE_ERROR, SA_ERR_PROTO, 0},
    {CURLE_ABORTED_BY_CALLBACK, SA_ERR_PROTO, 0},
};

static enum sa_err map_curl(CURLcode cc, int *retry)
{
    for (size_t i = 0; i < sizeof curl_map / sizeof curl_map[0]; i++)
        if (curl_map[i].cc == cc) {
            *retry = curl_map[i].retry;
            return curl_map[i].e;
        }
    *retry = 0;
    return SA_ERR_NET;
}

static enum sa_err map_status(long st, int *retry)
{
    *retry = (st == 429 || st == 502 || st == 503 || st == 504);
    if (st == 400 || st == 422)
        return SA_ERR_INVAL;
    if (st == 401 || st == 403)
        return SA_ERR_DENIED;
    if (st == 404)
        return SA_ERR_NOTFOUND;
    if (st == 409)
        return SA_ERR_EXISTS;
    if (st == 412)
        return SA_ERR_CONFLICT;
    if (st == 413)
        return SA_ERR_TOOBIG;
    if (st == 429 || st == 503)
        return SA_ERR_BUSY;
    if (st >= 500 && st <= 599)
        return SA_ERR_SERVER;
    if (st >= 400 && st <= 499)
        return SA_ERR_INVAL;
    return SA_ERR_PROTO;
}

/* The server's message: `error`, else `errors`, else `message`; else the
 * start of the body. Written into out (always NUL-terminated). */
static void server_message(const char *body, size_t len, char *out, size_t outlen)
{
    out[0] = '\0';
    if (!body || !len)
        return;
    json_t *j = json_loadb(body, len, 0, NULL);
    if (j) {
        static const char *const keys[] = {"error", "errors", "message"};
        for (size_t i = 0; i < 3; i++) {
            json_t *v = json_object_get(j, keys[i]);
            if (!v)
                continue;
            if (json_is_string(v)) {
                snprintf(out, outlen, "%s", json_string_value(v));
            } else {
                char *s = sa_jdump(v);
                snprintf(out, outlen, "%s", s ? s : "");
                free(s);
            }
            json_decref(j);
            return;
        }
        json_decref(j);
    }
    size_t n = len < outlen - 1 ? len : outlen - 1;
    if (n > 200)
        n = 200;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)body[i];
        out[i] = (ch < 32 || ch == 127) ? ' ' : (char)ch;
    }
    out[n] = '\0';
}

/* ------------------------------------------------------------------ */
/* One request                                                         */

struct xfer {
    CURL *h;
    const struct sa_sink *sink;
    struct sa_buf body;
    size_t max;                 /* cap of a buffered body */
    int sink_err, too_big;
};

static size_t on_write(char *p, size_t sz, size_t nm, void *ud)
{
    struct xfer *x = ud;
    size_t n = sz * nm;
    if (x->sink) {
        long code = 0;
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && code < 300) {
            if (x->sink->write(x->sink->ud, p, n)) {
                x->sink_err = 1;
                return 0;
            }
            return n;
        }
        if (x->body.len > 65536)
            return n; /* an error body: keep only its start */
    }
    if (x->body.len + n > x->max) {
        /* a server-sized allocation: never more than the cap */
        x->too_big = 1;
        return 0;
    }
    sa_buf_add(&x->body, p, n);
    return x->body.oom ? 0 : n;
}

/* Per-thread xorshift for jitter. */
static double jitter01(void)
{
    static __thread uint64_t s;
    if (!s) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&s;
        if (!s)
            s = 88172645463325252ull;
    }
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return (double)(s >> 11) / 9007199254740992.0;
}

static const char *const svc_name[SA_SVC__COUNT] = {"", "item:", "wm:", "v4:", "v3.01:"};

#define SA_MAX_RETRIES 6
#define SA_MAX_CONNECT_RETRIES 4

/* One transfer on @p k, driven here rather than by curl_easy_perform (whose
 * internal wait is up to 1 s): the multi is polled every SA_POLL_MS and the
 * calling thread's cancel flag checked in between. A cancel removes the
 * handle mid-transfer (curl closes that connection), sets *cancelled and
 * gives CURLE_ABORTED_BY_CALLBACK. */
static CURLcode perform(struct sa_conn *k, int *cancelled)
{
    CURLcode cc = CURLE_GOT_NOTHING;
    int running = 1;
    *cancelled = 0;
    CURLMcode mc = curl_multi_add_handle(k->m, k->h);
    if (mc != CURLM_OK)
        return mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
    for (;;) {
        mc = curl_multi_perform(k->m, &running);
        if (mc != CURLM_OK || !running)
            break;
        if (sa_cancelled()) {
            *cancelled = 1;
            break;
        }
        mc = curl_multi_poll(k->m, NULL, 0, SA_POLL_MS, NULL);
        if (mc != CURLM_OK)
            break;
    }
    if (mc != CURLM_OK) {
        cc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
    } else if (*cancelled) {
        cc = CURLE_ABORTED_BY_CALLBACK;
    } else {
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(k->m, &left)))
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == k->h)
                cc = msg->data.result;
    }
    curl_multi_remove_handle(k->m, k->h);
    return cc;
}

/* The response's `Date` header (if any, and parsable) into @p d. */
static void note_date(CURL *h, struct sa_dates *d)
{
    struct curl_header *hd = NULL;
    if (curl_easy_header(h, "Date", 0, CURLH_HEADER, -1, &hd) != CURLHE_OK || !hd ||
        !hd->value)
        return;
    time_t t = curl_getdate(hd->value, NULL);
    if (t > 0)
        dates_add(d, (int64_t)t * 1000);
}

/* After a failed attempt of @p rq that may have taken effect: ask its
 * landed(). The caller's pool slot must be released (landed makes its own
 * requests). SA_OK: *resp now holds the answer. SA_ERR_NOTFOUND: it did not
 * take effect (the detail is the failed attempt's again). Otherwise: it
 * cannot be told (the detail says both). */
static enum sa_err ask_landed(struct sa_client *c, const struct sa_req *rq, double deadline,
                              struct sa_resp *resp)
{
    char failed[1024];
    struct sa_resp lr;
    memset(&lr, 0, sizeof lr);
    snprintf(failed, sizeof failed, "%s", sa_last_error());
    /* one look-up even when the call deadline has passed */
    double floor = sa_now() + SA_CONNECT_S * c->scale;
    enum sa_err le = rq->landed(c, rq->landed_ud, deadline > floor ? deadline : floor, &lr);
    if (le == SA_OK) {
        int unsure = resp->unsure;
        sa_logf(c, LOG_INFO, "%s: the answer was lost, but the request had taken effect",
                failed);
        sa_resp_clear(resp);
        *resp = lr;
        resp->unsure = unsure;
        sa_clear_error();
        return SA_OK;
    }
    sa_resp_clear(&lr);
    if (le == SA_ERR_NOTFOUND) {
        sa_logf(c, LOG_INFO, "%s: the request had not taken effect", failed);
        sa_set_error("%s", failed);
        return le;
    }
    char why[512];
    snprintf(why, sizeof why, "%s", sa_last_error());
    sa_set_error("%s; whether it took effect is unknown: %s", failed, why);
    return le;
}

enum sa_err sa_http(struct sa_client *c, const struct sa_req *rq, struct sa_resp *resp)
{
    enum sa_err err = SA_OK;
    struct sa_buf url = {0};
    struct curl_slist *hdrs = NULL;
    char *ctx64 = NULL;
    char errbuf[CURL_ERROR_SIZE];
    char ua[64];
    struct sa_conn k = {0};
    int have = 0; /* k is ours */
    const char *path = rq->path;
    double deadline = rq->deadline > 0 ? rq->deadline : sa_call_deadline(c);

    memset(resp, 0, sizeof *resp);
    while (*path == '/')
        path++;
    sa_buf_adds(&url, c->base[rq->svc]);
    sa_buf_adds(&url, path);
    sa_buf_addf(&url, "%steam_id=%lld", strchr(path, '?') ? "&" : "?", c->team_id);
    if (rq->query && *rq->query) {
        sa_buf_adds(&url, "&");
        sa_buf_adds(&url, rq->query);
    }

    /* headers: the token lives only here */
    {
        struct sa_buf hb = {0};
        sa_buf_addf(&hb, "Authorization: %s", c->token);
        hdrs = curl_slist_append(hdrs, hb.p ? hb.p : "");
        sa_buf_free(&hb);
    }
    hdrs = curl_slist_append(hdrs, "authtype: sdk");
    if (!rq->mime)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    {
        char defctx[64];
        const char *ctx = rq->ctx;
        if (!ctx) {
            snprintf(defctx, sizeof defctx, "{\"team_id\": \"%lld\"}", c->team_id);
            ctx = defctx;
        }
        ctx64 = b64(ctx, strlen(ctx));
        struct sa_buf hb = {0};
        sa_buf_addf(&hb, "x-sa-entity-context: %s", ctx64 ? ctx64 : "");
        hdrs = curl_slist_append(hdrs, hb.p ? hb.p : "");
        sa_buf_free(&hb);
    }
    if (rq->upload_id) {
        struct sa_buf hb = {0};
        sa_buf_addf(&hb, "upload_id: %s", rq->upload_id);
        hdrs = curl_slist_append(hdrs, hb.p ? hb.p : "");
        sa_buf_free(&hb);
    }
    snprintf(ua, sizeof ua, "safs/%s", SAFS_VERSION);
    if (url.oom || !hdrs || !ctx64) {
        sa_set_error("%s %s%s: out of memory", rq->method, svc_name[rq->svc], path);
        err = SA_ERR_NOMEM;
        goto out;
    }
    if (sa_cancelled()) {
        /* nothing sent, and the call's date record left as it was */
        sa_set_error("%s %s%s: cancelled", rq->method, svc_name[rq->svc], path);
        err = SA_ERR_CANCELLED;
        goto out;
    }
    struct sa_dates *dates = dates_rec();

    for (int attempt = 0;; attempt++) {
        double remaining = deadline - sa_now();
        struct xfer x = {.sink = rq->sink, .max = c->max_body};
        curl_mime *mime = NULL;
        int retry = 0, cancelled = 0;
        long status = 0, reqsize = 0;
        char msg[512];

        if (remaining <= 0) {
            if (attempt == 0 || err == SA_OK || err == SA_ERR_TIMEOUT) {
                sa_set_error("%s %s%s: call deadline passed", rq->method, svc_name[rq->svc], path);
                err = SA_ERR_TIMEOUT;
            }
            break;
        }
        if (sa_cancelled()) {
            sa_set_error("%s %s%s: cancelled", rq->method, svc_name[rq->svc], path);
            err = SA_ERR_CANCELLED;
            break;
        }
        if (!have) {
            int pg = pool_get(c, &k);
            if (pg) {
                sa_set_error("%s %s%s: %s", rq->method, svc_name[rq->svc], path,
                             pg > 0 ? "cancelled" : "curl_easy_init failed");
                err = pg > 0 ? SA_ERR_CANCELLED : SA_ERR_NOMEM;
                break;
            }
            have = 1;
        }
        CURL *h = k.h;
        x.h = h;
        if (rq->sink && rq->sink->reset)
            rq->sink->reset(rq->sink->ud);

        curl_easy_reset(h); /* keeps the connection, DNS and TLS caches */
        errbuf[0] = '\0';
        curl_easy_setopt(h, CURLOPT_URL, url.p);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_SHARE, c->share);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_USERAGENT, ua);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        if (c->insecure) {
            curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        if (c->cafile)
            curl_easy_setopt(h, CURLOPT_CAINFO, c->cafile);
        long tmo = (long)(remaining * 1000.0) + 1;
        long ctmo = (long)(SA_CONNECT_S * c->scale * 1000.0);
        if (ctmo > tmo)
            ctmo = tmo;
        if (ctmo < 1)
            ctmo = 1;
        long stall = (long)(SA_STALL_S * c->scale + 0.5);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, tmo);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ctmo);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, stall < 1 ? 1L : stall);

        if (rq->mime) {
            mime = rq->mime(h, rq->mime_ud);
            if (!mime) {
                sa_set_error("%s %s%s: out of memory (multipart)", rq->method, svc_name[rq->svc],
                             path);
                err = SA_ERR_NOMEM;
                break;
            }
            curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
        } else if (!strcmp(rq->method, "GET")) {
            curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        } else {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
            if (strcmp(rq->method, "POST"))
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
        }

        CURLcode cc = perform(&k, &cancelled);
        curl_off_t up = 0, down = 0;
        curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
        curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &down);
        /* bytes of the request (headers) written to the socket by this
         * attempt: 0 means the server cannot have seen it */
        curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &reqsize);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        note_date(h, dates);
        __atomic_fetch_add(&c->stats.requests[rq->kind], 1, __ATOMIC_RELAXED);
        if (attempt > 0)
            __atomic_fetch_add(&c->stats.retries, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&c->stats.bytes_up, (uint64_t)(up > 0 ? up : 0), __ATOMIC_RELAXED);
        __atomic_fetch_add(&c->stats.bytes_down, (uint64_t)(down > 0 ? down : 0),
                           __ATOMIC_RELAXED);
        if (mime) {
            curl_easy_setopt(h, CURLOPT_MIMEPOST, NULL);
            curl_mime_free(mime);
        }
        int sent = reqsize > 0 || up > 0;

        if (cancelled) {
            if (sent && !(status >= 200 && status < 300))
                resp->unsure = 1;
            sa_buf_free(&x.body);
            sa_set_error("%s %s%s: cancelled", rq->method, svc_name[rq->svc], path);
            err = SA_ERR_CANCELLED;
            break;
        }
        if (cc == CURLE_OK) {
            if (status >= 200 && status < 300) {
                resp->status = status;
                resp->body = x.body.p ? x.body.p : strdup("");
                resp->len = x.body.len;
                if (!resp->body) {
                    err = SA_ERR_NOMEM;
                    sa_set_error("%s %s%s: out of memory", rq->method, svc_name[rq->svc], path);
                } else {
                    err = SA_OK;
                }
                goto out;
            }
            err = map_status(status, &retry);
            server_message(x.body.p, x.body.len, msg, sizeof msg);
            sa_set_error("%s %s%s: HTTP %ld%s%s", rq->method, svc_name[rq->svc], path, status,
                         msg[0] ? ": " : "", msg);
        } else if (x.sink_err) {
            err = SA_ERR_PROTO;
            retry = 0;
            sa_set_error("%s %s%s: response rejected by its reader", rq->method,
                         svc_name[rq->svc], path);
        } else if (x.too_big) {
            err = SA_ERR_PROTO;
            retry = 0;
            sa_set_error("%s %s%s: response body over %zu bytes (HTTP %ld): refused, nothing "
                         "of it is used", rq->method, svc_name[rq->svc], path, x.max, status);
        } else {
            err = map_curl(cc, &retry);
            if (x.body.oom)
                err = SA_ERR_NOMEM, retry = 0;
            sa_set_error("%s %s%s: %s", rq->method, svc_name[rq->svc], path,
                         errbuf[0] ? errbuf : curl_easy_strerror(cc));
        }
        /* May the server have acted on this attempt? Only if it got the
         * request, and then either no complete answer came (connection
         * failed, timed out, body cut) or the answer was 429/5xx, which a
         * proxy may give after the backend did the work. A 4xx or a 2xx
         * answer is the server's own word. */
        int acted = sent && (cc != CURLE_OK || status == 429 || status >= 500);
        if (acted)
            resp->unsure = 1;
        int ask = acted && rq->landed;
        /* nothing listens there (refused at once): a few quick tries cover a
         * server restarting; more would make a mount against a wrong URL
         * wait ~20 s before saying so */
        int max = cc == CURLE_COULDNT_CONNECT ? SA_MAX_CONNECT_RETRIES : SA_MAX_RETRIES;
        if (!retry || attempt >= max) {
            if (retry)
                sa_logf(c, LOG_DEBUG, "%s: giving up after %d attempts", sa_last_error(),
                        attempt + 1);
            resp->status = status;
            resp->body = x.body.p;
            resp->len = x.body.len;
            x.body.p = NULL;
            if (ask) {
                pool_put(c, &k);
                have = 0;
                enum sa_err le = ask_landed(c, rq, deadline, resp);
                if (le == SA_OK || le == SA_ERR_CANCELLED)
                    err = le;
            }
            break;
        }
        /* backoff: 250 ms × 2^n, ±50 %, capped at 8 s; Retry-After wins */
        double wait = 0.25 * (double)(1u << (attempt < 6 ? attempt : 6));
        if (wait > 8.0)
            wait = 8.0;
        wait *= 0.5 + jitter01();
        if (cc == CURLE_OK && (status == 429 || status == 503)) {
            curl_off_t ra = -1;
            if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
                wait = (double)ra;
        }
        sa_buf_free(&x.body);
        if (sa_now() + wait >= deadline) {
            if (err == SA_ERR_TIMEOUT)
                sa_set_error("%s %s%s: call deadline passed", rq->method, svc_name[rq->svc],
                             path);
            sa_logf(c, LOG_DEBUG, "%s (no time left to retry)", sa_last_error());
            resp->status = status;
            if (ask) {
                pool_put(c, &k);
                have = 0;
                enum sa_err le = ask_landed(c, rq, deadline, resp);
                if (le == SA_OK || le == SA_ERR_CANCELLED)
                    err = le;
            }
            break;
        }
        sa_logf(c, LOG_INFO, "%s; %s %d in %.2f s", sa_last_error(),
                ask ? "look-up before retry" : "retry", attempt + 1, wait);
        {
            char what[256];
            snprintf(what, sizeof what, "%s %s%s: retry backoff", rq->method, svc_name[rq->svc],
                     path);
            if (sa_nap(wait, what) != SA_OK) {
                err = SA_ERR_CANCELLED;
                break;
            }
        }
        if (ask) {
            /* not sent again blindly: did the failed attempt take effect? */
            pool_put(c, &k);
            have = 0;
            enum sa_err le = ask_landed(c, rq, deadline, resp);
            if (le == SA_OK) {
                err = SA_OK;
                goto out;
            }
            if (le != SA_ERR_NOTFOUND) {
                if (le == SA_ERR_CANCELLED)
                    err = le;
                break;
            }
        }
    }
    if (err != SA_OK)
        sa_logf(c, LOG_DEBUG, "%s", sa_last_error());
out:
    if (have)
        pool_put(c, &k);
    curl_slist_free_all(hdrs);
    free(ctx64);
    sa_buf_free(&url);
    return err;
}

enum sa_err sa_http_json(struct sa_client *c, const struct sa_req *rq, json_t **out)
{
    struct sa_resp r;
    json_error_t je;
    *out = NULL;
    enum sa_err e = sa_http(c, rq, &r);
    if (e != SA_OK) {
        sa_resp_clear(&r);
        return e;
    }
    *out = json_loadb(r.body, r.len, JSON_DECODE_ANY, &je);
    sa_resp_clear(&r);
    if (!*out) {
        sa_set_error("%s %s%s: response is not JSON: %s", rq->method, svc_name[rq->svc],
                     rq->path, je.text);
        return SA_ERR_PROTO;
    }
    return SA_OK;
}
