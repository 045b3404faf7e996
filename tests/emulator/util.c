/** @file
 * Small helpers: byte buffers, replies, the clock and timestamps,
 * URL/base64 decoding, UTF-8.
 */
#include "emu_i.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *xrealloc(void *p, size_t n)
{
  void *q = realloc(p, n ? n : 1);
  if(!q) {
    fprintf(stderr, "sa-emulator: out of memory\n");
    abort();
  }
  return q;
}

void buf_add(struct buf *b, const void *data, size_t n)
{
  if(b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while(cap < b->len + n + 1)
      cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
  }
  if(n)
    memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void buf_adds(struct buf *b, const char *s)
{
  buf_add(b, s, strlen(s));
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if(n < 0)
    return;
  if((size_t)n < sizeof tmp) {
    buf_add(b, tmp, (size_t)n);
    return;
  }
  char *big = xrealloc(NULL, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  buf_add(b, big, (size_t)n);
  free(big);
}

char *buf_take(struct buf *b, size_t *len)
{
  if(!b->p)
    buf_add(b, "", 0);
  char *p = b->p;
  if(len)
    *len = b->len;
  b->p = NULL;
  b->len = b->cap = 0;
  return p;
}

void buf_free(struct buf *b)
{
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

void reply_json(struct reply *r, int status, json_t *v)
{
  free(r->body);
  r->status = status;
  r->body = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
  r->len = r->body ? strlen(r->body) : 0;
  r->ctype = "application/json";
  json_decref(v);
}

void reply_error(struct reply *r, int status, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  reply_json(r, status, json_pack("{s:o}", "error",
                                  json_string_lossy(msg, strlen(msg))));
}

void reply_raw(struct reply *r, int status, const char *ctype,
               const char *data, size_t len)
{
  free(r->body);
  r->status = status;
  r->body = xrealloc(NULL, len + 1);
  memcpy(r->body, data, len);
  r->body[len] = '\0';
  r->len = len;
  r->ctype = ctype;
}

/* ---- the emulator's clock ------------------------------------------------ */
static pthread_mutex_t clock_lock = PTHREAD_MUTEX_INITIALIZER;
static int clock_frozen;
static long long clock_at;     /* frozen: the time it stands at */
static long long clock_offset; /* running: added to the real time */

static long long real_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long now_ms(void)
{
  long long t;
  pthread_mutex_lock(&clock_lock);
  t = clock_frozen ? clock_at : real_ms() + clock_offset;
  pthread_mutex_unlock(&clock_lock);
  return t;
}

int clock_state(long long *now)
{
  pthread_mutex_lock(&clock_lock);
  int frozen = clock_frozen;
  *now = frozen ? clock_at : real_ms() + clock_offset;
  pthread_mutex_unlock(&clock_lock);
  return frozen;
}

void clock_freeze(long long ms)
{
  pthread_mutex_lock(&clock_lock);
  clock_frozen = 1;
  clock_at = ms;
  clock_offset = 0;
  pthread_mutex_unlock(&clock_lock);
}

void clock_advance(long long ms)
{
  pthread_mutex_lock(&clock_lock);
  if(clock_frozen)
    clock_at += ms;
  else
    clock_offset += ms;
  pthread_mutex_unlock(&clock_lock);
}

void clock_real(void)
{
  pthread_mutex_lock(&clock_lock);
  clock_frozen = 0;
  clock_at = clock_offset = 0;
  pthread_mutex_unlock(&clock_lock);
}

long long mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* floor division: whole seconds and ms of a (possibly negative) epoch ms */
static void split_ms(long long ms, time_t *sec, int *rest)
{
  long long s = ms / 1000, r = ms % 1000;
  if(r < 0) {
    s--;
    r += 1000;
  }
  *sec = (time_t)s;
  *rest = (int)r;
}

void fmt_ts(long long ms, char *out)
{
  time_t sec;
  int rest;
  split_ms(ms, &sec, &rest);
  struct tm tm;
  gmtime_r(&sec, &tm);
  char tmp[96];
  snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
           tm.tm_min, tm.tm_sec, emu.ms_timestamps ? rest : 0);
  memcpy(out, tmp, 25);
  out[24] = '\0';
}

void fmt_http_date(long long ms, char *out)
{
  static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed",
                                   "Thu", "Fri", "Sat"};
  static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr",
                                    "May", "Jun", "Jul", "Aug",
                                    "Sep", "Oct", "Nov", "Dec"};
  time_t sec;
  int rest;
  split_ms(ms, &sec, &rest);
  struct tm tm;
  gmtime_r(&sec, &tm);
  char tmp[96];
  snprintf(tmp, sizeof tmp, "%s, %02d %s %04d %02d:%02d:%02d GMT",
           wd[tm.tm_wday % 7], tm.tm_mday, mon[tm.tm_mon % 12],
           tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  memcpy(out, tmp, 29);
  out[29] = '\0';
}

json_t *json_ts(long long ms)
{
  char s[32];
  fmt_ts(ms, s);
  return json_string(s);
}

static int hexval(int c)
{
  if(c >= '0' && c <= '9')
    return c - '0';
  if(c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if(c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

char *url_decode(const char *s, size_t n, int plus)
{
  char *out = xrealloc(NULL, n + 1);
  size_t o = 0;
  for(size_t i = 0; i < n; i++) {
    if(s[i] == '%' && i + 2 < n &&
       hexval((unsigned char)s[i + 1]) >= 0 &&
       hexval((unsigned char)s[i + 2]) >= 0) {
      out[o++] = (char)(hexval((unsigned char)s[i + 1]) * 16 +
                        hexval((unsigned char)s[i + 2]));
      i += 2;
    }
    else if(plus && s[i] == '+')
      out[o++] = ' ';
    else
      out[o++] = s[i];
  }
  out[o] = '\0';
  return out;
}

static int b64val(int c)
{
  if(c >= 'A' && c <= 'Z')
    return c - 'A';
  if(c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if(c >= '0' && c <= '9')
    return c - '0' + 52;
  if(c == '+' || c == '-')
    return 62;
  if(c == '/' || c == '_')
    return 63;
  return -1;
}

unsigned char *b64_decode(const char *s, size_t *outlen)
{
  size_t n = strlen(s);
  unsigned char *out = xrealloc(NULL, n / 4 * 3 + 4);
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  for(size_t i = 0; i < n; i++) {
    int c = (unsigned char)s[i];
    if(c == '=' || c == ' ' || c == '\n' || c == '\r' || c == '\t')
      continue;
    int v = b64val(c);
    if(v < 0) {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if(bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)((acc >> bits) & 0xff);
    }
  }
  out[o] = 0;
  *outlen = o;
  return out;
}

/* Length of the valid UTF-8 sequence at s (max n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
  unsigned c = s[0];
  size_t len;
  unsigned min;
  if(c < 0x80)
    return 1;
  if(c >= 0xc2 && c <= 0xdf) {
    len = 2;
    min = 0x80;
  }
  else if(c >= 0xe0 && c <= 0xef) {
    len = 3;
    min = 0x800;
  }
  else if(c >= 0xf0 && c <= 0xf4) {
    len = 4;
    min = 0x10000;
  }
  else
    return 0;
  if(len > n)
    return 0;
  unsigned cp = c & (0x7f >> len);
  for(size_t i = 1; i < len; i++) {
    if((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if(cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

json_t *json_string_lossy(const char *s, size_t n)
{
  struct buf b = {0};
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while(i < n) {
    size_t l = utf8_seq(u + i, n - i);
    if(l == 0 || (l == 1 && u[i] == 0)) {
      buf_adds(&b, l == 0 ? "\xef\xbf\xbd" : "\\u0000");
      i++;
    }
    else {
      buf_add(&b, s + i, l);
      i += l;
    }
  }
  json_t *v = json_stringn(b.p ? b.p : "", b.len);
  buf_free(&b);
  return v ? v : json_string("");
}

size_t utf8_len(const char *s)
{
  size_t n = 0;
  for(; *s; s++)
    if(((unsigned char)*s & 0xc0) != 0x80)
      n++;
  return n;
}

void sleep_ms(long long ms)
{
  if(ms <= 0)
    return;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while(nanosleep(&ts, &ts) != 0)
    ;
}
