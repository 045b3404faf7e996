/* Private to libsaclient: the incremental parser of the annotation stream
 * (api.md §9.2): JSON objects separated by the 6 bytes `\n;)\n` (a literal
 * backslash-n). Memory is bounded by the largest single object. */
#ifndef SA_STREAM_I_H
#define SA_STREAM_I_H

#include <stddef.h>

/* One complete top-level object. has_metadata / has_error tell whether the
 * object has a top-level `metadata` key, and an `error` or `errors` key.
 * Return nonzero to stop the parser (sa_stream_feed then returns -1). */
typedef int (*sa_stream_obj_fn)(void *ud, const char *json, size_t len, int has_metadata,
                                int has_error);

struct sa_stream {
    sa_stream_obj_fn fn;
    void *ud;
    /* current object */
    char *buf;
    size_t len, cap;
    int depth, in_str, esc;
    size_t key_start;     /* offset of the current depth-1 string (after '"') */
    size_t key_len;       /* length of the last depth-1 string, awaiting ':' */
    int key_pending;
    int has_meta, has_err;
    size_t delim;         /* bytes of the delimiter matched so far */
    size_t objects;       /* complete objects so far */
    int failed;
    int too_big;          /* failed because one object is over max */
    char why[128];
    size_t max;           /* largest object in bytes (0 = no limit): a server
                             that never closes one cannot grow the buffer
                             past it */
};

void sa_stream_init(struct sa_stream *s, sa_stream_obj_fn fn, void *ud);
/* Feed bytes in any chunking. 0 = fine, -1 = syntax error, callback stop or
 * out of memory (why says which); the parser then stays failed. */
int sa_stream_feed(struct sa_stream *s, const char *p, size_t n);
/* End of input: 0 if no partial object is pending, -1 otherwise. */
int sa_stream_finish(struct sa_stream *s);
/* Start again from scratch (a retried request); keeps fn/ud and max. */
void sa_stream_reset(struct sa_stream *s);
void sa_stream_free(struct sa_stream *s);

#endif
