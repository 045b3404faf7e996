/* The annotation stream parser (client/stream.c) as annotations.c drives it:
 * bytes in whatever chunks curl hands over, each complete object checked for
 * metadata/error (a bad one stops the parser, as on_object does), then read
 * with sa_doc_meta and pretty-printed as fs/fetch.c does.
 * Input: byte 0 seeds the chunk sizes, the rest is the response body.
 * Properties: any chunking yields the same objects and the same verdict as
 * one feed; a reset parser gives the same again; every object delivered is
 * the exact bytes from '{' to its matching '}'; a failed parser stays failed. */
#include <string.h>

#include "fuzz.h"
#include "sa/doc.h"
#include "stream_i.h"

struct rec {
    char *all;  /* every object delivered, each followed by its flags */
    size_t len, cap;
    size_t n;
};

static void rec_add(struct rec *r, const char *p, size_t n)
{
    if (r->len + n > r->cap) {
        size_t c = r->cap ? r->cap : 256;
        while (c < r->len + n)
            c *= 2;
        r->all = realloc(r->all, c);
        if (!r->all)
            abort();
        r->cap = c;
    }
    memcpy(r->all + r->len, p, n);
    r->len += n;
}

static int on_object(void *ud, const char *json, size_t len, int has_meta, int has_err)
{
    struct rec *r = ud;
    FUZZ_CHECK(len >= 2 && json[0] == '{' && json[len - 1] == '}' && json[len] == '\0',
               "object of %zu bytes not {...}", len);
    char flags[2] = {(char)('0' + has_meta), (char)('0' + has_err)};
    rec_add(r, json, len);
    rec_add(r, flags, 2);
    r->n++;
    if (!has_meta || has_err)
        return 1; /* annotations.c: an invalid object stops the batch */
    /* dl_deliver, then fetch.c */
    long long id = 0;
    char *name = NULL;
    if (sa_doc_meta(json, len, &id, &name) == SA_OK) {
        char *out = NULL, why[256];
        size_t ol = 0;
        if (sa_doc_pretty(json, len, &out, &ol, why, sizeof why) == SA_OK)
            FUZZ_CHECK(out && ol > 0 && out[ol - 1] == '\n', "pretty output");
        else
            FUZZ_CHECK(!out && memchr(why, 0, sizeof why), "failed pretty leaves output");
        free(out);
    }
    free(name);
    return 0;
}

/* feed in chunks; returns the verdict: 0 ok, 1 feed failed, 2 finish failed */
static int run(struct sa_stream *s, const char *p, size_t n, unsigned seed)
{
    size_t i = 0;
    unsigned x = seed * 2654435761u + 1;
    while (i < n) {
        size_t k = n - i;
        if (seed) {
            x = x * 1103515245u + 12345u;
            size_t c = 1 + (x >> 16) % (seed % 17 + 1);
            if (c < k)
                k = c;
        }
        if (sa_stream_feed(s, p + i, k) != 0) {
            FUZZ_CHECK(s->failed, "feed failed without the failed flag");
            FUZZ_CHECK(sa_stream_feed(s, "{}", 2) == -1, "a failed parser accepted more");
            FUZZ_CHECK(memchr(s->why, 0, sizeof s->why), "why not terminated");
            return 1;
        }
        i += k;
    }
    return sa_stream_finish(s) ? 2 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned seed = data[0];
    char *body = fuzz_dup(data + 1, size - 1);
    size_t n = size - 1;

    struct rec a = {0}, b = {0}, c = {0};
    struct sa_stream s;
    sa_stream_init(&s, on_object, &a);
    int va = run(&s, body, n, 0);
    sa_stream_free(&s);

    sa_stream_init(&s, on_object, &b);
    int vb = run(&s, body, n, seed ? seed : 1);
    /* a retried request: the same parser, reset */
    sa_stream_reset(&s);
    s.ud = &c;
    int vc = run(&s, body, n, seed / 3 + 1);
    sa_stream_free(&s);

    FUZZ_CHECK(va == vb && va == vc, "verdicts differ with chunking: %d %d %d", va, vb, vc);
    FUZZ_CHECK(a.n == b.n && a.len == b.len && (!a.len || !memcmp(a.all, b.all, a.len)),
               "objects differ with chunking (%zu vs %zu)", a.n, b.n);
    FUZZ_CHECK(a.n == c.n && a.len == c.len && (!a.len || !memcmp(a.all, c.all, a.len)),
               "objects differ after reset (%zu vs %zu)", a.n, c.n);
    free(a.all);
    free(b.all);
    free(c.all);
    free(body);
    return 0;
}
