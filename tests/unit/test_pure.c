/* Client tests that need no server: the stream parser fed in every
 * chunking (byte by byte, split UTF-8), token validation, URL layout
 * errors, time parsing, names. */
#include <string.h>

#include "harness.h"
#include "stream_i.h"

struct got {
    char objs[16][256];
    int meta[16], err[16];
    int n;
    int stop_at; /* stop when n reaches this (0 = never) */
};

static int on_obj(void *ud, const char *json, size_t len, int has_meta, int has_err)
{
    struct got *g = ud;
    fail_unless(g->n < 16);
    fail_unless(len < sizeof g->objs[0]);
    fail_unless(json[len] == '\0' || 1);
    memcpy(g->objs[g->n], json, len);
    g->objs[g->n][len] = '\0';
    g->meta[g->n] = has_meta;
    g->err[g->n] = has_err;
    g->n++;
    return g->stop_at && g->n == g->stop_at;
}

#define D "\\n;)\\n"

/* Three objects: nested braces inside strings, escaped quotes, a key named
 * "metadata" inside a nested object (must not count), UTF-8 of 2, 3 and 4
 * bytes, and a top-level "error" key. */
static const char *const O1 =
    "{\"metadata\":{\"name\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80.jpg\",\"id\":1},"
    "\"instances\":[{\"s\":\"}{][\\\"\\\\\"}],\"n\":12.3}";
static const char *const O2 = "{\"x\":{\"metadata\":1},\"tags\":[]}";
static const char *const O3 = "{\"metadata\":{},\"error\":\"boom\",\"v\":1e-7}";

static void check_three(struct got *g)
{
    fail_unless(g->n == 3);
    fail_unless(!strcmp(g->objs[0], O1));
    fail_unless(!strcmp(g->objs[1], O2));
    fail_unless(!strcmp(g->objs[2], O3));
    fail_unless(g->meta[0] == 1 && g->err[0] == 0);
    fail_unless(g->meta[1] == 0 && g->err[1] == 0); /* nested "metadata" is not top-level */
    fail_unless(g->meta[2] == 1 && g->err[2] == 1);
}

static void feed_in_chunks(const char *s, size_t chunk)
{
    struct got g = {0};
    struct sa_stream st;
    sa_stream_init(&st, on_obj, &g);
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        fail_unless_msg(sa_stream_feed(&st, s + i, k) == 0, "chunk %zu at %zu: %s", chunk, i,
                        st.why);
    }
    fail_unless(sa_stream_finish(&st) == 0);
    check_three(&g);
    sa_stream_free(&st);
}

static void test_stream_chunkings(void)
{
    char all[2048];
    /* with a trailing delimiter and a leading one */
    snprintf(all, sizeof all, "%s" D "%s" D "%s" D, O1, O2, O3);
    for (size_t chunk = 1; chunk <= strlen(all); chunk++)
        feed_in_chunks(all, chunk);
    snprintf(all, sizeof all, D "%s" D "%s" D "%s", O1, O2, O3);
    feed_in_chunks(all, 1);
    feed_in_chunks(all, 7);
    feed_in_chunks(all, 100000);
}

static void test_stream_split_utf8(void)
{
    /* split exactly inside each multi-byte character of O1 */
    char all[1024];
    snprintf(all, sizeof all, "%s" D "%s" D "%s", O1, O2, O3);
    const char *p = strstr(all, "\xf0\x9f");
    fail_unless(p != NULL);
    for (size_t cut = (size_t)(p - all) - 8; cut <= (size_t)(p - all) + 4; cut++) {
        struct got g = {0};
        struct sa_stream st;
        sa_stream_init(&st, on_obj, &g);
        fail_unless(sa_stream_feed(&st, all, cut) == 0);
        fail_unless(g.n == 0); /* nothing complete yet */
        fail_unless(sa_stream_feed(&st, all + cut, strlen(all) - cut) == 0);
        fail_unless(sa_stream_finish(&st) == 0);
        check_three(&g);
        sa_stream_free(&st);
    }
}

static void test_stream_errors(void)
{
    struct got g = {0};
    struct sa_stream st;
    /* truncated object */
    sa_stream_init(&st, on_obj, &g);
    fail_unless(sa_stream_feed(&st, "{\"metadata\":{\"a\":\"}", 19) == 0);
    fail_unless(sa_stream_finish(&st) == -1);
    sa_stream_free(&st);
    /* garbage between objects */
    memset(&g, 0, sizeof g);
    sa_stream_init(&st, on_obj, &g);
    fail_unless(sa_stream_feed(&st, "{\"metadata\":{}};){}", 19) == -1);
    fail_unless(g.n == 1);
    sa_stream_free(&st);
    /* a top-level array is not an object */
    memset(&g, 0, sizeof g);
    sa_stream_init(&st, on_obj, &g);
    fail_unless(sa_stream_feed(&st, "[1]", 3) == -1);
    sa_stream_free(&st);
    /* stop from the callback; reset restarts cleanly */
    memset(&g, 0, sizeof g);
    g.stop_at = 1;
    sa_stream_init(&st, on_obj, &g);
    const char *two = "{\"metadata\":{}}" D "{\"metadata\":{}}";
    fail_unless(sa_stream_feed(&st, two, strlen(two)) == -1);
    fail_unless(g.n == 1);
    sa_stream_reset(&st);
    g.stop_at = 0;
    g.n = 0;
    fail_unless(sa_stream_feed(&st, two, strlen(two)) == 0);
    fail_unless(sa_stream_finish(&st) == 0);
    fail_unless(g.n == 2);
    sa_stream_free(&st);
    /* an empty stream is fine */
    memset(&g, 0, sizeof g);
    sa_stream_init(&st, on_obj, &g);
    fail_unless(sa_stream_finish(&st) == 0 && g.n == 0);
    sa_stream_free(&st);
}

struct big {
    size_t n, maxlen;
};

static int on_big(void *ud, const char *json, size_t len, int has_meta, int has_err)
{
    struct big *b = ud;
    fail_unless(has_meta && !has_err);
    fail_unless(json[0] == '{' && json[len - 1] == '}');
    b->n++;
    if (len > b->maxlen)
        b->maxlen = len;
    return 0;
}

static void test_stream_big_object_memory(void)
{
    /* 100 objects of 64 KiB fed in 1000-byte chunks: the parser's buffer
     * stays about one object big, never the whole batch */
    size_t one = 65536;
    char *obj = malloc(one + 64);
    fail_unless(obj != NULL);
    int k = snprintf(obj, 64, "{\"metadata\":{},\"pad\":\"");
    memset(obj + k, 'x', one);
    strcpy(obj + k + one, "\"}" D);
    size_t olen = strlen(obj);
    struct big b = {0};
    struct sa_stream st;
    sa_stream_init(&st, on_big, &b);
    for (int i = 0; i < 100; i++)
        for (size_t at = 0; at < olen; at += 1000)
            fail_unless(sa_stream_feed(&st, obj + at, olen - at < 1000 ? olen - at : 1000) == 0);
    fail_unless(sa_stream_finish(&st) == 0);
    fail_unless(b.n == 100);
    fail_unless(b.maxlen == olen - 6);
    fail_unless(st.cap <= 4 * olen);
    sa_stream_free(&st);
    free(obj);
}

static void test_tokens(void)
{
    char err[256];
    static const char *const bad[] = {"", "abc", "abc=", "=12", "a b=1", "abc=12x", "abc=1=2",
                                      "ab/c=1", NULL};
    for (int i = 0; bad[i]; i++) {
        struct sa_config cfg = {.token = bad[i], .url = "http://127.0.0.1:1"};
        err[0] = '\0';
        struct sa_client *c = sa_client_new(&cfg, err, sizeof err);
        fail_unless_msg(c == NULL, "token \"%s\" accepted", bad[i]);
        fail_unless(strstr(err, "token") != NULL);
        fail_unless(strstr(err, bad[i][0] ? bad[i] : "\x01") == NULL || !bad[i][0] ||
                    strlen(bad[i]) < 3); /* the message does not echo the token */
    }
    struct sa_config cfg = {.token = "Ab-c.d@e_f=12345", .url = "http://127.0.0.1:1/"};
    struct sa_client *c = sa_client_new(&cfg, err, sizeof err);
    fail_unless(c != NULL);
    fail_unless(sa_client_team_id(c) == 12345);
    sa_client_free(c);
    sa_client_free(NULL);
    struct sa_config cfg2 = {.token = "k=1", .url = "ftp://x"};
    fail_unless(sa_client_new(&cfg2, err, sizeof err) == NULL);
}

static void test_unreachable(void)
{
    /* nothing listens on port 1: NET quickly, no hang */
    struct sa_config cfg = {.token = "k=1", .url = "http://127.0.0.1:1", .timeout_scale = 0.05};
    char err[128];
    struct sa_client *c = sa_client_new(&cfg, err, sizeof err);
    fail_unless(c != NULL);
    struct sa_user u;
    double t0 = t_now();
    enum sa_err e = sa_get_user(c, &u);
    fail_unless_msg(e == SA_ERR_NET || e == SA_ERR_TIMEOUT, "got %s", sa_strerror(e));
    fail_unless(t_now() - t0 < 10);
    fail_unless(strstr(sa_last_error(), "user/ME") != NULL);
    fail_unless(strstr(sa_last_error(), "k=1") == NULL);
    fail_unless(u.id == NULL && u.email == NULL);
    sa_user_clear(&u);
    struct sa_stats s;
    sa_client_stats(c, &s);
    fail_unless(s.errors == 1);
    fail_unless(s.requests[SA_REQ_AUTH] >= 2); /* connection refused is retried */
    sa_client_free(c);
}

static void test_misc(void)
{
    fail_unless(sa_parse_time_ms("1970-01-01T00:00:01.000Z") == 1000);
    fail_unless(sa_parse_time_ms("2024-02-29T12:34:56.789Z") == 1709210096789LL);
    fail_unless(sa_parse_time_ms("2024-02-29T12:34:56Z") == 1709210096000LL);
    fail_unless(sa_parse_time_ms("2024-02-29 12:34:56Z") == 0);
    fail_unless(sa_parse_time_ms("garbage") == 0);
    fail_unless(sa_parse_time_ms(NULL) == 0);
    fail_unless(!strcmp(sa_project_type_name(1), "Vector"));
    fail_unless(!strcmp(sa_project_type_name(8), "Multimodal"));
    fail_unless(!strcmp(sa_project_type_name(9), "Unsupported"));
    fail_unless(!strcmp(sa_req_kind_name(SA_REQ_DOWNLOAD), "download"));
    for (int e = SA_OK; e <= SA_ERR_UNSUPP; e++)
        fail_unless(sa_strerror((enum sa_err)e)[0] != '\0');
    struct sa_workflow w = {0};
    fail_unless(sa_workflow_status_value(&w, "InProgress") == -1);
    fail_unless(sa_workflow_status_name(&w, 2) == NULL);
    sa_workflow_clear(&w);
}

int main(void)
{
    t_run("stream_chunkings", test_stream_chunkings);
    t_run("stream_split_utf8", test_stream_split_utf8);
    t_run("stream_errors", test_stream_errors);
    t_run("stream_big_object", test_stream_big_object_memory);
    t_run("tokens", test_tokens);
    t_run("unreachable", test_unreachable);
    t_run("misc", test_misc);
    return t_done();
}
