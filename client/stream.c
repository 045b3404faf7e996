/* The annotation stream (api.md §9.2), parsed as it arrives. Only ASCII
 * bytes are structural in JSON and UTF-8 continuation bytes are never ASCII,
 * so a multi-byte character split across chunks needs no special care: the
 * object's bytes are kept whole until its closing brace. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream_i.h"

static const char DELIM[] = "\\n;)\\n"; /* 5C 6E 3B 29 5C 6E */
#define DELIM_LEN 6

void sa_stream_init(struct sa_stream *s, sa_stream_obj_fn fn, void *ud)
{
    memset(s, 0, sizeof *s);
    s->fn = fn;
    s->ud = ud;
}

void sa_stream_reset(struct sa_stream *s)
{
    sa_stream_obj_fn fn = s->fn;
    void *ud = s->ud;
    char *buf = s->buf;
    size_t cap = s->cap, max = s->max;
    memset(s, 0, sizeof *s);
    s->fn = fn;
    s->ud = ud;
    s->buf = buf;
    s->cap = cap;
    s->max = max;
}

void sa_stream_free(struct sa_stream *s)
{
    free(s->buf);
    s->buf = NULL;
    s->cap = s->len = 0;
}

static int fail(struct sa_stream *s, const char *why)
{
    s->failed = 1;
    snprintf(s->why, sizeof s->why, "%s (after %zu objects)", why, s->objects);
    return -1;
}

static int push(struct sa_stream *s, const char *p, size_t n)
{
    if (s->max && s->len + n > s->max)
        return 1;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (!b)
            return -1;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return 0;
}

static void check_key(struct sa_stream *s)
{
    const char *k = s->buf + s->key_start;
    size_t n = s->key_len;
    if (n == 8 && !memcmp(k, "metadata", 8))
        s->has_meta = 1;
    else if ((n == 5 && !memcmp(k, "error", 5)) || (n == 6 && !memcmp(k, "errors", 6)))
        s->has_err = 1;
}

/* push's failure: 1 = over s->max, -1 = out of memory */
static int too_big(struct sa_stream *s, int r)
{
    if (r < 0)
        return fail(s, "out of memory");
    s->failed = 1;
    s->too_big = 1;
    snprintf(s->why, sizeof s->why, "one object is over %zu bytes (after %zu objects)", s->max,
             s->objects);
    return -1;
}

int sa_stream_feed(struct sa_stream *s, const char *p, size_t n)
{
    if (s->failed)
        return -1;
    size_t i = 0;
    int r;
    while (i < n) {
        if (s->depth == 0) {
            /* between objects: a delimiter, whitespace, or the next '{' */
            char ch = p[i];
            if (s->delim > 0 || ch == '\\') {
                if (ch != DELIM[s->delim])
                    return fail(s, "bad delimiter between objects");
                if (++s->delim == DELIM_LEN)
                    s->delim = 0;
                i++;
                continue;
            }
            if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') {
                i++;
                continue;
            }
            if (ch != '{')
                return fail(s, "expected '{' at the start of an object");
            s->len = 0;
            s->has_meta = s->has_err = 0;
            s->in_str = s->esc = 0;
            s->key_pending = 0;
            s->depth = 1;
            if (push(s, "{", 1))
                return fail(s, "out of memory");
            i++;
            continue;
        }
        /* inside an object: copy a run of bytes, watching the structure */
        size_t start = i;
        int done = 0;
        for (; i < n && !done; i++) {
            unsigned char ch = (unsigned char)p[i];
            if (s->in_str) {
                if (s->esc) {
                    s->esc = 0;
                } else if (ch == '\\') {
                    s->esc = 1;
                } else if (ch == '"') {
                    s->in_str = 0;
                    if (s->depth == 1 && s->key_start) {
                        /* offset in buf of this byte = len + (i - start) */
                        s->key_len = s->len + (i - start) - s->key_start;
                        s->key_pending = 1;
                    }
                }
                continue;
            }
            switch (ch) {
            case '"':
                s->in_str = 1;
                s->key_start = s->depth == 1 ? s->len + (i - start) + 1 : 0;
                break;
            case ':':
                if (s->depth == 1 && s->key_pending) {
                    /* make the bytes so far visible in buf, then look */
                    if ((r = push(s, p + start, i - start)))
                        return too_big(s, r);
                    start = i;
                    check_key(s);
                    s->key_pending = 0;
                }
                break;
            case ',':
                s->key_pending = 0;
                break;
            case '{':
            case '[':
                s->key_pending = 0;
                s->depth++;
                break;
            case '}':
            case ']':
                s->depth--;
                if (s->depth == 0)
                    done = 1;
                break;
            default:
                break;
            }
        }
        if ((r = push(s, p + start, i - start)))
            return too_big(s, r);
        if (done) {
            s->objects++;
            if (s->buf[s->len - 1] != '}')
                return fail(s, "mismatched brackets");
            if (s->fn(s->ud, s->buf, s->len, s->has_meta, s->has_err)) {
                s->failed = 1;
                snprintf(s->why, sizeof s->why, "stopped by the reader at object %zu",
                         s->objects);
                return -1;
            }
            s->len = 0;
            s->delim = 0;
        }
    }
    return 0;
}

int sa_stream_finish(struct sa_stream *s)
{
    if (s->failed)
        return -1;
    if (s->depth != 0)
        return fail(s, "stream ended inside an object");
    if (s->delim != 0)
        return fail(s, "stream ended inside a delimiter");
    return 0;
}
