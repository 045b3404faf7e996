/** @file
 * Raw JSON spans: documents are stored as the exact bytes the client sent,
 * so we locate values without re-serialising them (jansson would rewrite
 * numbers such as 12.3 or 30-digit integers).
 */
#include "emu_i.h"

#include <string.h>

static int is_ws(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t string_len(const char *p, size_t n)
{
  for(size_t i = 1; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if(c == '\\')
      i++;
    else if(c == '"')
      return i + 1;
    else if(c < 0x20)
      return 0;
  }
  return 0;
}

size_t rawjson_value_len(const char *p, size_t n)
{
  if(n == 0)
    return 0;
  if(p[0] == '"')
    return string_len(p, n);
  if(p[0] == '{' || p[0] == '[') {
    size_t depth = 0;
    for(size_t i = 0; i < n; i++) {
      char c = p[i];
      if(c == '"') {
        size_t l = string_len(p + i, n - i);
        if(!l)
          return 0;
        i += l - 1;
      }
      else if(c == '{' || c == '[')
        depth++;
      else if(c == '}' || c == ']') {
        if(--depth == 0)
          return i + 1;
      }
    }
    return 0;
  }
  size_t i = 0;
  while(i < n && ((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'z') ||
                  (p[i] >= 'A' && p[i] <= 'Z') || p[i] == '+' || p[i] == '-' ||
                  p[i] == '.'))
    i++;
  return i;
}

int rawjson_members(const char *p, size_t n, rawjson_member_fn fn, void *ctx)
{
  size_t i = 0;
  while(i < n && is_ws(p[i]))
    i++;
  if(i >= n || p[i] != '{')
    return -1;
  i++;
  while(i < n && is_ws(p[i]))
    i++;
  if(i < n && p[i] == '}') {
    i++;
    goto tail;
  }
  for(;;) {
    if(i >= n || p[i] != '"')
      return -1;
    size_t kl = string_len(p + i, n - i);
    if(!kl)
      return -1;
    json_error_t jerr;
    json_t *k = json_loadb(p + i, kl, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if(!json_is_string(k)) {
      json_decref(k);
      return -1;
    }
    i += kl;
    while(i < n && is_ws(p[i]))
      i++;
    if(i >= n || p[i] != ':') {
      json_decref(k);
      return -1;
    }
    i++;
    while(i < n && is_ws(p[i]))
      i++;
    size_t vl = rawjson_value_len(p + i, n - i);
    if(!vl) {
      json_decref(k);
      return -1;
    }
    int rc = fn ? fn(ctx, json_string_value(k), p + i, vl) : 0;
    json_decref(k);
    if(rc)
      return rc;
    i += vl;
    while(i < n && is_ws(p[i]))
      i++;
    if(i < n && p[i] == ',') {
      i++;
      while(i < n && is_ws(p[i]))
        i++;
      continue;
    }
    if(i < n && p[i] == '}') {
      i++;
      break;
    }
    return -1;
  }
tail:
  while(i < n && is_ws(p[i]))
    i++;
  return i == n ? 0 : -1;
}

int rawjson_valid(const char *p, size_t n, int must_be_object)
{
  json_error_t jerr;
  json_t *v = json_loadb(p, n,
                         JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY |
                             JSON_ALLOW_NUL,
                         &jerr);
  if(!v)
    return 0;
  int ok = !must_be_object || json_is_object(v);
  json_decref(v);
  return ok;
}
