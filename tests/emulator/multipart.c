/** @file
 * multipart/form-data parsing. libmicrohttpd 0.9.75's post processor only
 * accepts quoted names and stops at the first '"' (docs/style.md, traps),
 * while the SDK sends quoted names with \" and \\ escapes and other clients
 * send bare names, so we parse the body ourselves.
 */
#include "emu_i.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *find(const char *hay, size_t hlen, const char *needle,
                        size_t nlen)
{
  return memmem(hay, hlen, needle, nlen);
}

/* Extracts the boundary parameter; 0 on success. */
static int get_boundary(const char *ct, char *out, size_t outlen)
{
  if(!ct)
    return -1;
  const char *p = ct;
  while(*p == ' ')
    p++;
  if(strncasecmp(p, "multipart/form-data", 19) != 0)
    return -1;
  for(p += 19; *p; p++) {
    if(strncasecmp(p, "boundary=", 9) == 0 &&
       (p[-1] == ';' || p[-1] == ' ' || p[-1] == '\t')) {
      p += 9;
      size_t o = 0;
      if(*p == '"') {
        for(p++; *p && *p != '"' && o + 1 < outlen; p++)
          out[o++] = *p;
      }
      else {
        for(; *p && *p != ';' && *p != ' ' && o + 1 < outlen; p++)
          out[o++] = *p;
      }
      out[o] = '\0';
      return o ? 0 : -1;
    }
  }
  return -1;
}

/* Parses one disposition parameter value at *pp (end e): quoted with
 * backslash escapes, or bare up to ';'. New string. */
static char *param_value(const char **pp, const char *e)
{
  const char *p = *pp;
  struct buf b = {0};
  if(p < e && *p == '"') {
    for(p++; p < e && *p != '"'; p++) {
      if(*p == '\\' && p + 1 < e)
        p++;
      buf_add(&b, p, 1);
    }
    if(p < e)
      p++; /* closing quote */
    while(p < e && *p != ';')
      p++;
  }
  else {
    const char *s = p;
    while(p < e && *p != ';')
      p++;
    const char *t = p;
    while(t > s && (t[-1] == ' ' || t[-1] == '\t'))
      t--;
    buf_add(&b, s, (size_t)(t - s));
  }
  *pp = p;
  return buf_take(&b, NULL);
}

/* Content-Disposition: form-data; name="..."; filename="..." */
static void parse_disposition(const char *p, const char *e, char **name,
                              char **filename)
{
  while(p < e && *p != ';')
    p++;
  while(p < e) {
    if(*p == ';')
      p++;
    while(p < e && (*p == ' ' || *p == '\t'))
      p++;
    const char *k = p;
    while(p < e && *p != '=' && *p != ';')
      p++;
    if(p >= e || *p != '=')
      continue;
    size_t kl = (size_t)(p - k);
    while(kl && (k[kl - 1] == ' ' || k[kl - 1] == '\t'))
      kl--;
    p++;
    while(p < e && (*p == ' ' || *p == '\t'))
      p++;
    char *v = param_value(&p, e);
    char **dst = NULL;
    int ext = 0;
    if(kl == 4 && strncasecmp(k, "name", 4) == 0)
      dst = name;
    else if(kl == 8 && strncasecmp(k, "filename", 8) == 0)
      dst = filename;
    else if(kl == 5 && strncasecmp(k, "name*", 5) == 0)
      dst = name, ext = 1;
    else if(kl == 9 && strncasecmp(k, "filename*", 9) == 0)
      dst = filename, ext = 1;
    if(dst && ext) {
      /* RFC 5987: charset'lang'percent-encoded */
      char *q = strchr(v, '\'');
      q = q ? strchr(q + 1, '\'') : NULL;
      if(q) {
        char *d = url_decode(q + 1, strlen(q + 1), 0);
        free(v);
        v = d;
      }
      free(*dst);
      *dst = v;
    }
    else if(dst && !*dst)
      *dst = v;
    else
      free(v);
  }
}

void multipart_free(struct mpart *parts, int n)
{
  if(!parts)
    return;
  for(int i = 0; i < n; i++)
    free(parts[i].name);
  free(parts);
}

int multipart_parse(const char *content_type, const char *body, size_t len,
                    struct mpart **out, char *err, size_t errlen)
{
  char boundary[256];
  char delim[260];
  *out = NULL;
  if(get_boundary(content_type, boundary, sizeof boundary) != 0) {
    snprintf(err, errlen, "Content-Type is not multipart/form-data with a "
                          "boundary");
    return -1;
  }
  size_t dl = (size_t)snprintf(delim, sizeof delim, "--%s", boundary);
  struct mpart *parts = NULL;
  int n = 0;
  size_t pos;
  if(len >= dl && memcmp(body, delim, dl) == 0)
    pos = dl;
  else {
    char crlfd[264];
    size_t cl = (size_t)snprintf(crlfd, sizeof crlfd, "\r\n%s", delim);
    const char *f = find(body, len, crlfd, cl);
    if(!f) {
      snprintf(err, errlen, "multipart body has no boundary line");
      return -1;
    }
    pos = (size_t)(f - body) + cl;
  }
  for(;;) {
    if(pos + 2 <= len && body[pos] == '-' && body[pos + 1] == '-')
      break; /* closing delimiter */
    while(pos < len && (body[pos] == ' ' || body[pos] == '\t'))
      pos++;
    if(pos + 2 > len || body[pos] != '\r' || body[pos + 1] != '\n') {
      snprintf(err, errlen, "multipart: malformed boundary line");
      goto fail;
    }
    pos += 2;
    char *name = NULL, *filename = NULL;
    for(;;) {
      const char *le = find(body + pos, len - pos, "\r\n", 2);
      if(!le) {
        free(name);
        free(filename);
        snprintf(err, errlen, "multipart: unterminated part headers");
        goto fail;
      }
      size_t ll = (size_t)(le - (body + pos));
      if(ll == 0) {
        pos += 2;
        break;
      }
      if(ll > 20 && strncasecmp(body + pos, "content-disposition:", 20) == 0)
        parse_disposition(body + pos + 20, le, &name, &filename);
      pos += ll + 2;
    }
    char crlfd[264];
    size_t cl = (size_t)snprintf(crlfd, sizeof crlfd, "\r\n%s", delim);
    const char *end = find(body + pos, len - pos, crlfd, cl);
    if(!end) {
      free(name);
      free(filename);
      snprintf(err, errlen, "multipart: part not terminated by the boundary");
      goto fail;
    }
    if(!name && !filename) {
      snprintf(err, errlen, "multipart: part without a name");
      goto fail;
    }
    parts = realloc(parts, sizeof *parts * (size_t)(n + 1));
    if(!parts)
      abort();
    parts[n].name = name ? name : filename;
    if(name)
      free(filename);
    parts[n].data = body + pos;
    parts[n].len = (size_t)(end - (body + pos));
    n++;
    pos = (size_t)(end - body) + cl;
  }
  *out = parts;
  return n;
fail:
  multipart_free(parts, n);
  return -1;
}
