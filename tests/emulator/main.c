/** @file
 * sa-emulator: the SuperAnnotate API for tests, benchmarks and demos.
 * See tests/emulator/README.md for the CLI, routes and control plane.
 *
 * Per request: count it, record it, apply a queued fault (delay, status,
 * dropped connection) and the configured latency, check the token, route.
 * The control plane (/_emulator/...) takes no token and is not counted.
 */
#include "emu_i.h"

#include <errno.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct emu emu;

/* ---- query parameters ---------------------------------------------------- */
const char *req_param(const struct request *q, const char *key)
{
  for(size_t i = 0; i < q->nparams; i++)
    if(!strcmp(q->params[i].key, key))
      return q->params[i].val;
  return NULL;
}

int req_param_ll(const struct request *q, const char *key, long long *out)
{
  const char *v = req_param(q, key);
  if(!v || !*v)
    return 0;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if(*end || errno)
    return 0;
  *out = x;
  return 1;
}

static void parse_uri(struct request *q, const char *uri)
{
  const char *qm = strchr(uri, '?');
  size_t plen = qm ? (size_t)(qm - uri) : strlen(uri);
  q->path = url_decode(uri, plen, 0);
  q->query = strdup(qm ? qm + 1 : "");
  if(!q->query)
    abort();
  const char *p = q->query;
  while(*p) {
    const char *amp = strchr(p, '&');
    size_t n = amp ? (size_t)(amp - p) : strlen(p);
    if(n) {
      const char *eq = memchr(p, '=', n);
      size_t kl = eq ? (size_t)(eq - p) : n;
      q->params = realloc(q->params, sizeof *q->params * (q->nparams + 1));
      if(!q->params)
        abort();
      q->params[q->nparams].key = url_decode(p, kl, 1);
      q->params[q->nparams].val =
          eq ? url_decode(eq + 1, n - kl - 1, 1) : strdup("");
      q->nparams++;
    }
    p += n;
    if(*p == '&')
      p++;
  }
}

static void request_free(struct request *q)
{
  free(q->path);
  free(q->query);
  for(size_t i = 0; i < q->nparams; i++) {
    free(q->params[i].key);
    free(q->params[i].val);
  }
  free(q->params);
  json_decref(q->entity);
}

/* ---- stats, recorded requests, faults ------------------------------------ */
static pthread_mutex_t obs_lock = PTHREAD_MUTEX_INITIALIZER;
static long long stats_total;
static json_t *stats_routes; /* "METHOD /path" -> count */
#define REC_MAX 10000
#define REC_BODY_MAX (64 * 1024)
static json_t *recs[REC_MAX];
static size_t rec_head, rec_count;

struct fault {
  char method[16];
  char *path;
  int status, count, retry_after, drop;
  long long delay_ms;
  long long stream_limit; /* >= 0: the stream ends after this many documents */
  int exact;              /* path must equal, not just start the request's */
  char *body;
  double probability;     /* 0 = always; else the share of matching requests hit */
  long long hits;         /* requests it hit (reported by GET /_emulator/faults) */
  unsigned long long rng; /* xorshift64 state, from "seed" */
  long long pad;          /* bytes of 'x' appended to body */
};
static struct fault *faults;
static size_t nfaults;

static void stats_count(const char *method, const char *path)
{
  char key[1024];
  snprintf(key, sizeof key, "%s %s", method, path);
  pthread_mutex_lock(&obs_lock);
  stats_total++;
  json_t *v = json_object_get(stats_routes, key);
  if(v)
    json_integer_set(v, json_integer_value(v) + 1);
  else
    json_object_set_new(stats_routes, key, json_integer(1));
  pthread_mutex_unlock(&obs_lock);
}

static void record(const struct request *q, const char *entity_raw,
                   int authorized)
{
  json_t *params = json_object();
  for(size_t i = 0; i < q->nparams; i++) {
    json_t *k = json_string_lossy(q->params[i].key, strlen(q->params[i].key));
    const char *key = json_string_value(k);
    json_t *val = json_string_lossy(q->params[i].val, strlen(q->params[i].val));
    json_t *old = json_object_get(params, key);
    if(!old)
      json_object_set_new(params, key, val);
    else if(json_is_array(old))
      json_array_append_new(old, val);
    else
      json_object_set_new(params, key, json_pack("[O,o]", old, val));
    json_decref(k);
  }
  json_t *h = json_object();
  if(q->content_type)
    json_object_set_new(h, "content-type",
                        json_string_lossy(q->content_type,
                                          strlen(q->content_type)));
  if(q->upload_id)
    json_object_set_new(h, "upload_id",
                        json_string_lossy(q->upload_id, strlen(q->upload_id)));
  if(entity_raw)
    json_object_set_new(h, "x-sa-entity-context",
                        q->entity ? json_incref(q->entity)
                                  : json_string_lossy(entity_raw,
                                                      strlen(entity_raw)));
  size_t bl = q->body_len < REC_BODY_MAX ? q->body_len : REC_BODY_MAX;
  json_t *rec = json_object();
  json_object_set_new(rec, "method", json_string(q->method));
  json_object_set_new(rec, "path", json_string_lossy(q->path, strlen(q->path)));
  json_object_set_new(rec, "query",
                      json_string_lossy(q->query, strlen(q->query)));
  json_object_set_new(rec, "params", params);
  json_object_set_new(rec, "headers", h);
  json_object_set_new(rec, "authorized", json_boolean(authorized));
  json_object_set_new(rec, "body", json_string_lossy(q->body ? q->body : "", bl));
  json_object_set_new(rec, "body_length", json_integer((json_int_t)q->body_len));
  json_object_set_new(rec, "time", json_ts(now_ms()));
  pthread_mutex_lock(&obs_lock);
  size_t slot = (rec_head + rec_count) % REC_MAX;
  if(rec_count == REC_MAX) {
    json_decref(recs[rec_head]);
    rec_head = (rec_head + 1) % REC_MAX;
    slot = (rec_head + rec_count - 1) % REC_MAX;
  }
  else
    rec_count++;
  recs[slot] = rec;
  pthread_mutex_unlock(&obs_lock);
}

static void fault_clear_locked(void)
{
  for(size_t i = 0; i < nfaults; i++) {
    free(faults[i].path);
    free(faults[i].body);
  }
  free(faults);
  faults = NULL;
  nfaults = 0;
}

/* Takes one use of the first matching fault; 1 if one matched (copied). */
static int fault_take(const char *method, const char *path, struct fault *out)
{
  int hit = 0;
  pthread_mutex_lock(&obs_lock);
  for(size_t i = 0; i < nfaults; i++) {
    struct fault *f = &faults[i];
    if((f->method[0] && strcasecmp(f->method, method)) ||
       strncmp(path, f->path, strlen(f->path)) ||
       (f->exact && strcmp(path, f->path)))
      continue;
    /* a stream_limit fault waits for a stream: download/method, under the
     * same prefix, passes it by */
    if(f->stream_limit >= 0 && !api_is_stream(method, path))
      continue;
    if(f->probability > 0) {
      /* seeded: the same requests in the same order get the same faults */
      f->rng ^= f->rng << 13;
      f->rng ^= f->rng >> 7;
      f->rng ^= f->rng << 17;
      if((double)(f->rng >> 11) / 9007199254740992.0 >= f->probability)
        continue;
      f->hits++;
    }
    *out = *f;
    out->path = NULL;
    out->body = f->body ? strdup(f->body) : NULL;
    hit = 1;
    if(f->count > 0 && --f->count == 0) {
      free(f->path);
      free(f->body);
      memmove(f, f + 1, sizeof *f * (nfaults - i - 1));
      nfaults--;
    }
    break;
  }
  pthread_mutex_unlock(&obs_lock);
  return hit;
}

/* ---- responses ------------------------------------------------------------- */
struct dropper {
  char *body;
  size_t len, cut;
};

static ssize_t drop_read(void *cls, uint64_t pos, char *out, size_t max)
{
  struct dropper *d = cls;
  if(pos >= d->cut)
    return MHD_CONTENT_READER_END_WITH_ERROR;
  size_t n = d->cut - (size_t)pos;
  if(n > max)
    n = max;
  memcpy(out, d->body + pos, n);
  return (ssize_t)n;
}

static void drop_free(void *cls)
{
  struct dropper *d = cls;
  free(d->body);
  free(d);
}

static enum MHD_Result send_reply(struct MHD_Connection *c, struct reply *r,
                                  int drop)
{
  struct MHD_Response *resp;
  if(r->stream) {
    if(drop)
      stream_set_drop(r->stream);
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
                                             stream_read, r->stream,
                                             stream_free);
    r->stream = NULL;
  }
  else if(drop) {
    struct dropper *d = calloc(1, sizeof *d);
    if(!d)
      abort();
    d->body = r->body;
    d->len = r->len;
    d->cut = r->len / 2;
    r->body = NULL;
    resp = MHD_create_response_from_callback(d->len, 4096, drop_read, d,
                                             drop_free);
  }
  else {
    resp = MHD_create_response_from_buffer(r->len, r->body,
                                           MHD_RESPMEM_MUST_FREE);
    r->body = NULL;
  }
  if(!resp)
    return MHD_NO;
  MHD_add_response_header(resp, "Content-Type",
                          r->ctype ? r->ctype : "application/json");
  /* the emulator's clock, not the machine's. MHD 0.9.75 adds its own Date
   * only when the response has none; the daemon runs with
   * MHD_USE_SUPPRESS_DATE_NO_CLOCK, so MHD's own answers (bad requests)
   * carry no machine-clock Date either: exactly one Date, ours */
  char date[32];
  fmt_http_date(now_ms(), date);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_DATE, date);
  if(r->retry_after > 0) {
    char ra[32];
    snprintf(ra, sizeof ra, "%d", r->retry_after);
    MHD_add_response_header(resp, "Retry-After", ra);
  }
  enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* ---- control plane ---------------------------------------------------------- */
struct seed_doc_ctx {
  struct seed_req *s;
};

static int seed_doc_member(void *ctx, const char *key, const char *val,
                           size_t vlen)
{
  struct seed_req *s = ctx;
  s->doc_names = realloc(s->doc_names, sizeof *s->doc_names * (s->ndocs + 1));
  s->docs = realloc(s->docs, sizeof *s->docs * (s->ndocs + 1));
  s->doc_lens = realloc(s->doc_lens, sizeof *s->doc_lens * (s->ndocs + 1));
  if(!s->doc_names || !s->docs || !s->doc_lens)
    abort();
  s->doc_names[s->ndocs] = strdup(key);
  char *copy = malloc(vlen + 1);
  if(!copy || !s->doc_names[s->ndocs])
    abort();
  memcpy(copy, val, vlen);
  copy[vlen] = '\0';
  s->docs[s->ndocs] = copy;
  s->doc_lens[s->ndocs] = vlen;
  s->ndocs++;
  return 0;
}

static int find_documents(void *ctx, const char *key, const char *val,
                          size_t vlen)
{
  if(!strcmp(key, "documents"))
    return rawjson_members(val, vlen, seed_doc_member, ctx) ? 1 : 0;
  return 0;
}

static void control_seed(const struct request *q, struct reply *r)
{
  json_error_t jerr;
  json_t *b = json_loadb(q->body, q->body_len,
                         JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &jerr);
  struct seed_req s = {0};
  if(!json_is_object(b)) {
    reply_error(r, 400, "Invalid JSON body: %s", jerr.text);
    goto out;
  }
  s.project = json_string_value(json_object_get(b, "project"));
  if(!s.project || !*s.project) {
    reply_error(r, 400, "project (string) is required");
    goto out;
  }
  json_t *t = json_object_get(b, "type"), *w = json_object_get(b, "workflow");
  s.type = t ? (int)json_number_value(t) : 1;
  s.workflow = w ? (int)json_number_value(w) : 1;
  json_t *folder = json_object_get(b, "folder");
  s.folder = json_string_value(folder);
  if(folder && !json_is_null(folder) && !s.folder) {
    reply_error(r, 400, "folder must be a string");
    goto out;
  }
  json_t *items = json_object_get(b, "items");
  if(items && !json_is_array(items)) {
    reply_error(r, 400, "items must be an array of names");
    goto out;
  }
  s.items = calloc(json_array_size(items) + 1, sizeof *s.items);
  size_t i;
  json_t *v;
  json_array_foreach(items, i, v) {
    if(!json_is_string(v)) {
      reply_error(r, 400, "items must be an array of names");
      goto out;
    }
    s.items[s.nitems++] = json_string_value(v);
  }
  json_t *docs = json_object_get(b, "documents");
  if(docs && !json_is_object(docs)) {
    reply_error(r, 400, "documents must be an object");
    goto out;
  }
  if(docs && rawjson_members(q->body, q->body_len, find_documents, &s)) {
    reply_error(r, 400, "documents could not be read");
    goto out;
  }
  json_t *raw = json_object_get(b, "raw_documents");
  if(raw && !json_is_object(raw)) {
    reply_error(r, 400, "raw_documents must be an object of strings");
    goto out;
  }
  const char *key;
  json_object_foreach(raw, key, v) {
    if(!json_is_string(v)) {
      reply_error(r, 400, "raw_documents must be an object of strings");
      goto out;
    }
    seed_doc_member(&s, key, json_string_value(v), json_string_length(v));
  }
  json_t *st = json_object_get(b, "statuses");
  if(st && !json_is_object(st)) {
    reply_error(r, 400, "statuses must be an object name -> value");
    goto out;
  }
  s.status_names = calloc(json_object_size(st) + 1, sizeof *s.status_names);
  s.status_vals = calloc(json_object_size(st) + 1, sizeof *s.status_vals);
  json_object_foreach(st, key, v) {
    s.status_names[s.nstatus] = key;
    s.status_vals[s.nstatus++] = (long long)json_number_value(v);
  }
  json_t *res = NULL;
  char err[256];
  if(store_seed(&s, &res, err, sizeof err))
    reply_error(r, 400, "%s", err);
  else
    reply_json(r, 200, res);
out:
  for(size_t k = 0; k < s.ndocs; k++) {
    free((char *)s.doc_names[k]);
    free((char *)s.docs[k]);
  }
  free(s.doc_names);
  free(s.docs);
  free(s.doc_lens);
  free(s.items);
  free(s.status_names);
  free(s.status_vals);
  json_decref(b);
}

static void control_fault(const struct request *q, struct reply *r)
{
  json_error_t jerr;
  json_t *b = json_loadb(q->body, q->body_len, 0, &jerr);
  if(!json_is_object(b)) {
    json_decref(b);
    reply_error(r, 400, "Invalid JSON body");
    return;
  }
  struct fault f = {0};
  const char *m = json_string_value(json_object_get(b, "method"));
  const char *path = json_string_value(json_object_get(b, "path"));
  json_t *cnt = json_object_get(b, "count");
  json_t *body = json_object_get(b, "body");
  snprintf(f.method, sizeof f.method, "%s", m ? m : "");
  f.status = (int)json_integer_value(json_object_get(b, "status"));
  f.count = cnt ? (int)json_integer_value(cnt) : 1;
  f.retry_after = (int)json_integer_value(json_object_get(b, "retry_after"));
  f.delay_ms = json_integer_value(json_object_get(b, "delay_ms"));
  f.drop = json_is_true(json_object_get(b, "drop"));
  json_t *lim = json_object_get(b, "stream_limit");
  f.stream_limit = lim ? json_integer_value(lim) : -1;
  f.exact = json_is_true(json_object_get(b, "exact"));
  json_t *prob = json_object_get(b, "probability");
  f.probability = prob ? json_number_value(prob) : 0;
  json_t *seed = json_object_get(b, "seed");
  f.rng = seed ? (unsigned long long)json_integer_value(seed) : 1;
  f.rng = f.rng * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  if(!f.rng)
    f.rng = 88172645463325252ull;
  json_t *pad = json_object_get(b, "pad");
  f.pad = pad ? json_integer_value(pad) : 0;
  if((f.status && (f.status < 100 || f.status > 599)) || f.count == 0 ||
     f.count < -1 || f.delay_ms < 0 || (body && !json_is_string(body) &&
                                        !json_is_object(body)) ||
     (lim && (!json_is_integer(lim) || f.stream_limit < 0)) ||
     (prob && (!json_is_number(prob) || f.probability <= 0 || f.probability > 1)) ||
     (seed && !json_is_integer(seed)) ||
     (pad && (!json_is_integer(pad) || f.pad < 0 || f.pad > (1ll << 31) || !f.status))) {
    json_decref(b);
    reply_error(r, 400, "bad fault: status 100-599 or 0, count >= 1 or -1, "
                        "delay_ms >= 0, body a string or an object, "
                        "stream_limit >= 0, 0 < probability <= 1, seed an "
                        "integer, 0 <= pad <= 2^31 with a status");
    return;
  }
  f.path = strdup(path ? path : "/");
  if(json_is_string(body))
    f.body = strdup(json_string_value(body));
  else if(body)
    f.body = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
  pthread_mutex_lock(&obs_lock);
  faults = realloc(faults, sizeof *faults * (nfaults + 1));
  if(!faults)
    abort();
  faults[nfaults++] = f;
  size_t n = nfaults;
  pthread_mutex_unlock(&obs_lock);
  json_decref(b);
  reply_json(r, 200, json_pack("{s:b,s:I}", "ok", 1, "queued", (json_int_t)n));
}

static json_t *faults_json(void)
{
  json_t *a = json_array();
  pthread_mutex_lock(&obs_lock);
  for(size_t i = 0; i < nfaults; i++) {
    struct fault *f = &faults[i];
    json_array_append_new(
        a, json_pack("{s:s,s:s,s:b,s:i,s:i,s:i,s:I,s:b,s:s?,s:o?,s:f,s:I,s:I}",
                     "method", f->method, "path", f->path, "exact", f->exact,
                     "status", f->status, "count", f->count, "retry_after",
                     f->retry_after, "delay_ms", (json_int_t)f->delay_ms,
                     "drop", f->drop, "body", f->body, "stream_limit",
                     f->stream_limit >= 0
                         ? json_integer((json_int_t)f->stream_limit)
                         : NULL,
                     "probability", f->probability, "hits",
                     (json_int_t)f->hits, "pad", (json_int_t)f->pad));
  }
  pthread_mutex_unlock(&obs_lock);
  return a;
}

static void stats_reset(void)
{
  pthread_mutex_lock(&obs_lock);
  stats_total = 0;
  json_object_clear(stats_routes);
  pthread_mutex_unlock(&obs_lock);
}

static void requests_reset(void)
{
  pthread_mutex_lock(&obs_lock);
  for(size_t i = 0; i < rec_count; i++)
    json_decref(recs[(rec_head + i) % REC_MAX]);
  rec_head = rec_count = 0;
  pthread_mutex_unlock(&obs_lock);
}

static int cli_latency;

/* The latest time fmt_ts can write: 9999-12-31T23:59:59.999Z. */
#define CLOCK_MAX_MS 253402300799999LL

static void control_clock(const struct request *q, struct reply *r, int post)
{
  long long now;
  if(post) {
    json_error_t jerr;
    json_t *b = json_loadb(q->body, q->body_len, 0, &jerr);
    json_t *fz = json_object_get(b, "freeze_ms");
    json_t *adv = json_object_get(b, "advance_ms");
    json_t *real = json_object_get(b, "real");
    clock_state(&now);
    int ok = json_is_object(b) && json_object_size(b) == 1;
    if(ok && fz)
      ok = json_is_integer(fz) && json_integer_value(fz) >= 0 &&
           json_integer_value(fz) <= CLOCK_MAX_MS;
    else if(ok && adv)
      ok = json_is_integer(adv) && json_integer_value(adv) >= 0 &&
           json_integer_value(adv) <= CLOCK_MAX_MS - now;
    else if(ok)
      ok = json_is_true(real);
    if(!ok) {
      json_decref(b);
      reply_error(r, 400, "body must be one of {\"freeze_ms\": N}, "
                          "{\"advance_ms\": N} (N >= 0, up to year 9999), "
                          "{\"real\": true}");
      return;
    }
    if(fz)
      clock_freeze(json_integer_value(fz));
    else if(adv)
      clock_advance(json_integer_value(adv));
    else
      clock_real();
    json_decref(b);
  }
  int frozen = clock_state(&now);
  reply_json(r, 200, json_pack("{s:I,s:b}", "now_ms", (json_int_t)now,
                               "frozen", frozen));
}

static void control(const struct request *q, struct reply *r)
{
  const char *m = q->method, *p = q->path + strlen("/_emulator");
  int get = !strcmp(m, "GET"), post = !strcmp(m, "POST");
  if(get && !strcmp(p, "/stats")) {
    pthread_mutex_lock(&obs_lock);
    json_t *v = json_pack("{s:I,s:O}", "total", (json_int_t)stats_total,
                          "routes", stats_routes);
    pthread_mutex_unlock(&obs_lock);
    /* a deep copy, so later counts do not race with the serialisation */
    json_t *copy = json_deep_copy(v);
    json_decref(v);
    reply_json(r, 200, copy);
  }
  else if(post && !strcmp(p, "/reset-stats")) {
    stats_reset();
    reply_json(r, 200, json_pack("{s:b}", "ok", 1));
  }
  else if(get && !strcmp(p, "/requests")) {
    const char *pf = req_param(q, "path"), *mf = req_param(q, "method");
    json_t *a = json_array();
    pthread_mutex_lock(&obs_lock);
    for(size_t i = 0; i < rec_count; i++) {
      json_t *rec = recs[(rec_head + i) % REC_MAX];
      const char *rp = json_string_value(json_object_get(rec, "path"));
      const char *rm = json_string_value(json_object_get(rec, "method"));
      if((pf && strncmp(rp, pf, strlen(pf))) || (mf && strcasecmp(rm, mf)))
        continue;
      json_array_append(a, rec);
    }
    pthread_mutex_unlock(&obs_lock);
    reply_json(r, 200, json_pack("{s:o}", "requests", a));
  }
  else if(post && !strcmp(p, "/reset-requests")) {
    requests_reset();
    reply_json(r, 200, json_pack("{s:b}", "ok", 1));
  }
  else if(post && !strcmp(p, "/faults"))
    control_fault(q, r);
  else if(get && !strcmp(p, "/faults"))
    reply_json(r, 200, json_pack("{s:o}", "faults", faults_json()));
  else if(!strcmp(m, "DELETE") && !strcmp(p, "/faults")) {
    pthread_mutex_lock(&obs_lock);
    fault_clear_locked();
    pthread_mutex_unlock(&obs_lock);
    reply_json(r, 200, json_pack("{s:b}", "ok", 1));
  }
  else if(post && !strcmp(p, "/seed"))
    control_seed(q, r);
  else if(post && !strcmp(p, "/reset")) {
    char err[256];
    api_reset_state();
    pthread_mutex_lock(&obs_lock);
    fault_clear_locked();
    pthread_mutex_unlock(&obs_lock);
    stats_reset();
    requests_reset();
    emu.latency_ms = cli_latency;
    clock_real();
    if(store_reset(err, sizeof err))
      reply_error(r, 500, "reset failed: %s", err);
    else
      reply_json(r, 200, json_pack("{s:b}", "ok", 1));
  }
  else if(post && !strcmp(p, "/latency")) {
    json_error_t jerr;
    json_t *b = json_loadb(q->body, q->body_len, 0, &jerr);
    json_t *ms = json_object_get(b, "ms");
    if(!json_is_integer(ms) || json_integer_value(ms) < 0)
      reply_error(r, 400, "body must be {\"ms\": N}");
    else {
      emu.latency_ms = (int)json_integer_value(ms);
      reply_json(r, 200, json_pack("{s:b,s:i}", "ok", 1, "ms", emu.latency_ms));
    }
    json_decref(b);
  }
  else if((get || post) && !strcmp(p, "/clock"))
    control_clock(q, r, post);
  else if(get && !strcmp(p, "/health"))
    reply_json(r, 200, json_pack("{s:b,s:i}", "ok", 1, "port", emu.port));
  else
    reply_error(r, 404, "Unknown control route %s %s", m, q->path);
}

/* ---- the request cycle ------------------------------------------------------ */
struct conn_req {
  char *uri;
  struct buf body;
  int started, too_big;
  long long t0;
};

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
  (void)cls;
  (void)c;
  struct conn_req *cr = calloc(1, sizeof *cr);
  if(!cr)
    abort();
  cr->uri = strdup(uri ? uri : "/");
  cr->t0 = mono_ms();
  return cr;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
  (void)cls;
  (void)c;
  (void)toe;
  struct conn_req *cr = *con_cls;
  if(!cr)
    return;
  free(cr->uri);
  buf_free(&cr->body);
  free(cr);
  *con_cls = NULL;
}

static long long token_team(const char *auth)
{
  if(!auth)
    return -1;
  for(size_t i = 0; i < emu.ntokens; i++)
    if(!strcmp(auth, emu.tokens[i]))
      return strtoll(strrchr(auth, '=') + 1, NULL, 10);
  return -1;
}

static enum MHD_Result handle(struct MHD_Connection *c, struct conn_req *cr,
                              const char *method)
{
  struct request q = {0};
  struct reply r = {0};
  q.method = method;
  parse_uri(&q, cr->uri);
  q.body = cr->body.p;
  q.body_len = cr->body.len;
  q.content_type =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
  q.upload_id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "upload_id");
  const char *ent =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-sa-entity-context");
  if(ent) {
    size_t n;
    unsigned char *dec = b64_decode(ent, &n);
    if(dec) {
      json_error_t jerr;
      q.entity = json_loadb((char *)dec, n, 0, &jerr);
      if(!json_is_object(q.entity)) {
        json_decref(q.entity);
        q.entity = NULL;
      }
      free(dec);
    }
  }
  const char *auth =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  q.team_id = token_team(auth);
  int drop = 0;

  if(!strncmp(q.path, "/_emulator/", 11)) {
    control(&q, &r);
  }
  else {
    stats_count(method, q.path);
    record(&q, ent, q.team_id >= 0);
    struct fault f;
    int faulted = fault_take(method, q.path, &f);
    sleep_ms(emu.latency_ms + (faulted ? f.delay_ms : 0));
    if(faulted && f.status > 0) {
      if(f.pad > 0) {
        size_t bl = f.body ? strlen(f.body) : 0;
        char *big = malloc(bl + (size_t)f.pad + 1);
        if(!big)
          abort();
        memcpy(big, f.body ? f.body : "", bl);
        memset(big + bl, 'x', (size_t)f.pad);
        reply_raw(&r, f.status, "application/json", big, bl + (size_t)f.pad);
        free(big);
      }
      else if(f.body)
        reply_raw(&r, f.status, "application/json", f.body, strlen(f.body));
      else
        reply_error(&r, f.status, "injected fault");
      r.retry_after = f.retry_after;
    }
    else if(q.team_id < 0)
      reply_error(&r, 401, "Not authorized");
    else if(cr->too_big)
      reply_error(&r, 413, "Request body larger than %lld bytes",
                  emu.max_body);
    else if(!api_route(&q, &r))
      reply_error(&r, 404, "Not found: %s %s", method, q.path);
    if(faulted && f.stream_limit >= 0 && r.stream)
      stream_set_limit(r.stream, f.stream_limit);
    if(faulted) {
      drop = f.drop;
      free(f.body);
    }
  }
  if(!emu.quiet)
    fprintf(stderr, "sa-emulator: %s %s%s%s -> %d%s (%lld ms)\n", method,
            q.path, q.query[0] ? "?" : "", q.query, r.status,
            drop ? " dropped" : "", mono_ms() - cr->t0);
  enum MHD_Result ret = send_reply(c, &r, drop);
  free(r.body);
  if(r.stream)
    stream_free(r.stream);
  request_free(&q);
  return ret;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
  (void)cls;
  (void)url;
  (void)version;
  struct conn_req *cr = *con_cls;
  if(!cr) {
    cr = uri_log(NULL, url, c);
    *con_cls = cr;
  }
  if(!cr->started) {
    cr->started = 1;
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if(cl && strtoll(cl, NULL, 10) > emu.max_body)
      cr->too_big = 1;
    return MHD_YES;
  }
  if(*upload_data_size) {
    if(!cr->too_big) {
      if((long long)(cr->body.len + *upload_data_size) > emu.max_body) {
        cr->too_big = 1;
        buf_free(&cr->body);
      }
      else
        buf_add(&cr->body, upload_data, *upload_data_size);
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  return handle(c, cr, method);
}

/* ---- CLI ------------------------------------------------------------------------ */
static void usage(FILE *f)
{
  fprintf(f,
          "usage: sa-emulator [--port N|0] [--port-file F] [--db PATH]\n"
          "         [--token T]... [--seed demo] [--seed-items PROJECT/FOLDER=N]...\n"
          "         [--latency-ms N] [--large-threshold BYTES] [--stream-batch N]\n"
          "         [--delete-polls K] [--max-body BYTES] [--ms-timestamps]\n"
          "         [--tls-cert PEM --tls-key PEM] [--quiet]\n"
          "Serves the SuperAnnotate API on 127.0.0.1 (see README.md).\n");
}

static long long parse_ll(const char *opt, const char *v, long long min)
{
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if(!*v || *end || errno || x < min) {
    fprintf(stderr, "sa-emulator: bad value for %s: %s\n", opt, v);
    exit(2);
  }
  return x;
}

static void parse_seed_items(const char *arg)
{
  const char *eq = strrchr(arg, '=');
  if(!eq || eq == arg) {
    fprintf(stderr, "sa-emulator: --seed-items wants PROJECT/FOLDER=N\n");
    exit(2);
  }
  struct seed_items si;
  si.n = parse_ll("--seed-items", eq + 1, 0);
  const char *slash = memchr(arg, '/', (size_t)(eq - arg));
  size_t pl = slash ? (size_t)(slash - arg) : (size_t)(eq - arg);
  si.project = strndup(arg, pl);
  si.folder = slash ? strndup(slash + 1, (size_t)(eq - slash - 1))
                    : strdup("root");
  if(!si.project || !si.folder || !*si.project) {
    fprintf(stderr, "sa-emulator: --seed-items wants PROJECT/FOLDER=N\n");
    exit(2);
  }
  emu.seeds = realloc(emu.seeds, sizeof *emu.seeds * (emu.nseeds + 1));
  if(!emu.seeds)
    abort();
  emu.seeds[emu.nseeds++] = si;
}

static int valid_token(const char *t)
{
  const char *eq = strrchr(t, '=');
  if(!eq || eq == t || !eq[1])
    return 0;
  for(const char *p = eq + 1; *p; p++)
    if(*p < '0' || *p > '9')
      return 0;
  return 1;
}

/** The whole of a (small) PEM file, NUL-terminated, or exit 2. */
static char *read_pem(const char *opt, const char *path)
{
  FILE *f = fopen(path, "r");
  char *buf = f ? malloc(1 << 20) : NULL;
  size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
  if(!f || !buf || ferror(f) || !n) {
    fprintf(stderr, "sa-emulator: %s %s: %s\n", opt, path,
            f ? "cannot read" : strerror(errno));
    exit(2);
  }
  fclose(f);
  buf[n] = 0;
  return buf;
}

static int write_port_file(const char *path, int port)
{
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if(!f)
    return -1;
  fprintf(f, "%d\n", port);
  if(fclose(f) != 0 || rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv)
{
  static const struct option opts[] = {
      {"port", required_argument, NULL, 'p'},
      {"port-file", required_argument, NULL, 'f'},
      {"db", required_argument, NULL, 'd'},
      {"token", required_argument, NULL, 't'},
      {"seed", required_argument, NULL, 's'},
      {"seed-items", required_argument, NULL, 'i'},
      {"latency-ms", required_argument, NULL, 'l'},
      {"large-threshold", required_argument, NULL, 'L'},
      {"stream-batch", required_argument, NULL, 'b'},
      {"delete-polls", required_argument, NULL, 'k'},
      {"max-body", required_argument, NULL, 'm'},
      {"ms-timestamps", no_argument, NULL, 'M'},
      {"quiet", no_argument, NULL, 'q'},
      {"tls-cert", required_argument, NULL, 'C'},
      {"tls-key", required_argument, NULL, 'K'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  emu.large_threshold = 15LL * 1024 * 1024;
  emu.stream_batch = 500;
  emu.delete_polls = 2;
  emu.max_body = 256LL * 1024 * 1024;
  pthread_mutex_init(&emu.db_lock, NULL);
  int c;
  while((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch(c) {
    case 'p':
      emu.port = (int)parse_ll("--port", optarg, 0);
      break;
    case 'f':
      emu.port_file = optarg;
      break;
    case 'd':
      emu.db_path = optarg;
      break;
    case 't':
      if(!valid_token(optarg)) {
        fprintf(stderr, "sa-emulator: a token looks like KEY=TEAM_ID\n");
        return 2;
      }
      emu.tokens = realloc(emu.tokens, sizeof *emu.tokens * (emu.ntokens + 1));
      emu.tokens[emu.ntokens++] = optarg;
      break;
    case 's':
      if(strcmp(optarg, "demo")) {
        fprintf(stderr, "sa-emulator: the only seed is 'demo'\n");
        return 2;
      }
      emu.seed_demo = 1;
      break;
    case 'i':
      parse_seed_items(optarg);
      break;
    case 'l':
      emu.latency_ms = (int)parse_ll("--latency-ms", optarg, 0);
      break;
    case 'L':
      emu.large_threshold = parse_ll("--large-threshold", optarg, 0);
      break;
    case 'b':
      emu.stream_batch = parse_ll("--stream-batch", optarg, 1);
      break;
    case 'k':
      emu.delete_polls = (int)parse_ll("--delete-polls", optarg, 1);
      break;
    case 'm':
      emu.max_body = parse_ll("--max-body", optarg, 1);
      break;
    case 'M':
      emu.ms_timestamps = 1;
      break;
    case 'q':
      emu.quiet = 1;
      break;
    case 'C':
      emu.tls_cert = optarg;
      break;
    case 'K':
      emu.tls_key = optarg;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if(optind < argc) {
    usage(stderr);
    return 2;
  }
  static char *default_token[] = {(char *)"emulator-token=1"};
  if(!emu.ntokens) {
    emu.tokens = default_token;
    emu.ntokens = 1;
  }
  cli_latency = emu.latency_ms;
  stats_routes = json_object();

  char err[512];
  long long t0 = mono_ms();
  if(store_open(emu.db_path, err, sizeof err) ||
     store_run_cli_seeds(err, sizeof err)) {
    fprintf(stderr, "sa-emulator: %s\n", err);
    return 1;
  }
  if(emu.seed_demo || emu.nseeds)
    fprintf(stderr, "sa-emulator: seeded in %lld ms\n", mono_ms() - t0);

  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* MHD threads inherit the mask */

  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)emu.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION |
                   MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                   MHD_USE_ERROR_LOG | MHD_USE_SUPPRESS_DATE_NO_CLOCK;
  struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL},
                                  {MHD_OPTION_END, 0, NULL},
                                  {MHD_OPTION_END, 0, NULL}};
  if(!emu.tls_cert != !emu.tls_key) {
    fprintf(stderr, "sa-emulator: --tls-cert and --tls-key go together\n");
    return 2;
  }
  if(emu.tls_cert) {
    if(MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      fprintf(stderr, "sa-emulator: this libmicrohttpd has no TLS\n");
      return 2;
    }
    flags |= MHD_USE_TLS;
    tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
                                     read_pem("--tls-cert", emu.tls_cert)};
    tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0,
                                     read_pem("--tls-key", emu.tls_key)};
  }
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, (uint16_t)emu.port, NULL, NULL, on_access, NULL,
      MHD_OPTION_ARRAY, tls, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&addr, MHD_OPTION_URI_LOG_CALLBACK, uri_log, NULL,
      MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
      MHD_OPTION_CONNECTION_LIMIT, 2000u, MHD_OPTION_CONNECTION_TIMEOUT, 600u,
      MHD_OPTION_END);
  if(!d) {
    fprintf(stderr, "sa-emulator: cannot listen on 127.0.0.1:%d\n", emu.port);
    return 1;
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  emu.port = info ? info->port : emu.port;
  if(emu.port_file && write_port_file(emu.port_file, emu.port)) {
    fprintf(stderr, "sa-emulator: cannot write %s: %s\n", emu.port_file,
            strerror(errno));
    MHD_stop_daemon(d);
    return 1;
  }
  fprintf(stderr, "sa-emulator: listening on %s://127.0.0.1:%d/\n",
          emu.tls_cert ? "https" : "http", emu.port);

  int sig = 0;
  sigwait(&set, &sig);
  fprintf(stderr, "sa-emulator: signal %d, stopping\n", sig);
  MHD_stop_daemon(d);
  free((void *)tls[0].ptr_value);
  free((void *)tls[1].ptr_value);
  store_close();
  requests_reset();
  pthread_mutex_lock(&obs_lock);
  fault_clear_locked();
  pthread_mutex_unlock(&obs_lock);
  api_reset_state();
  json_decref(stats_routes);
  for(size_t i = 0; i < emu.nseeds; i++) {
    free(emu.seeds[i].project);
    free(emu.seeds[i].folder);
  }
  free(emu.seeds);
  if(emu.tokens != default_token)
    free(emu.tokens);
  return 0;
}
