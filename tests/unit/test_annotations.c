/* Annotation download (classify, streams, large path), upload (multipart
 * batching rules, large multipart-over-JSON path, byte-exact numbers),
 * the status rule (§10.6) and delete polling, against sa-emulator. */
#include <pthread.h>
#include <string.h>

#include "harness.h"
#include "sa/doc.h"

static struct emu E;  /* --seed demo --seed-items Bench/f=2500 --delete-polls 2 (50, then 100) */
static struct emu EL; /* --large-threshold 1000 --stream-batch 4 */
static struct sa_client *C;

/* ---- collecting callback ---- */

struct coll {
    size_t n;
    long long ids[4096];
    char *docs[4096];
    size_t lens[4096];
    int stop_after; /* abort after this many (0 = never) */
    pthread_t thread;
};

static int collect(void *ud, long long item_id, const char *json, size_t len)
{
    struct coll *c = ud;
    fail_unless(c->n < 4096);
    c->ids[c->n] = item_id;
    c->docs[c->n] = malloc(len + 1);
    memcpy(c->docs[c->n], json, len);
    c->docs[c->n][len] = '\0';
    c->lens[c->n] = len;
    c->n++;
    return c->stop_after && (int)c->n >= c->stop_after;
}

static void coll_free(struct coll *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->docs[i]);
    c->n = 0;
}

static const char *coll_doc(struct coll *c, long long id)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->ids[i] == id)
            return c->docs[i];
    return NULL;
}

struct where {
    struct sa_project p;
    struct sa_folder f;
    struct sa_item_list items;
    long long *ids;
    const char **names;
};

static void where_get(struct sa_client *c, const char *proj, const char *folder, struct where *w)
{
    expect_ok(sa_get_project_by_name(c, proj, &w->p));
    expect_ok(sa_get_folder_by_name(c, w->p.id, folder, &w->f));
    expect_ok(sa_list_items(c, w->p.id, w->f.id, NULL, 0, &w->items));
    w->ids = malloc((w->items.n + 1) * sizeof *w->ids);
    w->names = malloc((w->items.n + 1) * sizeof *w->names);
    for (size_t i = 0; i < w->items.n; i++) {
        w->ids[i] = w->items.v[i].id;
        w->names[i] = w->items.v[i].name;
    }
}

static void where_free(struct where *w)
{
    free(w->ids);
    free(w->names);
    sa_item_list_clear(&w->items);
    sa_folder_clear(&w->f);
    sa_project_clear(&w->p);
}

static long long item_id_named(struct where *w, const char *name)
{
    for (size_t i = 0; i < w->items.n; i++)
        if (!strcmp(w->items.v[i].name, name))
            return w->items.v[i].id;
    t_fail(__FILE__, __LINE__, "no item %s", name);
    return 0;
}

static void check_all_delivered(struct where *w, struct coll *k)
{
    fail_unless_msg(k->n == w->items.n, "%zu documents for %zu items", k->n, w->items.n);
    for (size_t i = 0; i < w->items.n; i++) {
        const char *d = coll_doc(k, w->ids[i]);
        fail_unless_msg(d != NULL, "no document for %s", w->names[i]);
        long long mid = 0;
        char *mname = NULL;
        expect_ok(sa_doc_meta(d, strlen(d), &mid, &mname));
        fail_unless_msg(mname && !strcmp(mname, w->names[i]), "doc of %s names %s", w->names[i],
                        mname ? mname : "(none)");
        free(mname);
    }
    /* no item twice */
    for (size_t i = 0; i < k->n; i++)
        for (size_t j = i + 1; j < k->n; j++)
            fail_unless(k->ids[i] != k->ids[j]);
}

static void test_download_small(void)
{
    struct where w;
    struct coll *k = calloc(1, sizeof *k);
    where_get(C, "Demo Vector", "train", &w);
    emu_reset_stats(&E);
    expect_ok(sa_download_annotations(C, w.p.id, w.f.id, w.ids, w.names, w.items.n, collect, k));
    check_all_delivered(&w, k);
    fail_unless(emu_count(&E, "POST /api/v4/items/annotations/download/method") == 1);
    coll_free(k);

    /* ids only (no names): matched by metadata.id */
    expect_ok(sa_download_annotations(C, w.p.id, 0, w.ids, NULL, w.items.n, collect, k));
    check_all_delivered(&w, k);
    coll_free(k);

    /* the callback aborts: INVAL, and no more calls after it */
    k->stop_after = 2;
    expect_err(SA_ERR_INVAL, sa_download_annotations(C, w.p.id, w.f.id, w.ids, w.names,
                                                     w.items.n, collect, k));
    fail_unless(k->n == 2);
    coll_free(k);
    free(k);
    where_free(&w);
}

static void test_download_classify_chunks(void)
{
    /* 2500 ids -> 3 classify requests; Bench/f holds 2500 items */
    struct where w;
    struct coll *k = calloc(1, sizeof *k);
    where_get(C, "Bench", "f", &w);
    fail_unless(w.items.n == 2500);
    emu_reset_stats(&E);
    expect_ok(sa_download_annotations(C, w.p.id, w.f.id, w.ids, w.names, w.items.n, collect, k));
    fail_unless(emu_count(&E, "POST /api/v4/items/annotations/download/method") == 3);
    check_all_delivered(&w, k);
    coll_free(k);
    free(k);
    where_free(&w);
}

static void test_download_large_and_batches(void)
{
    struct sa_client *c = emu_client(&EL, NULL, 1.0, 0);
    struct where w;
    struct coll *k = calloc(1, sizeof *k);
    where_get(c, "Demo Vector", "train", &w);
    emu_reset_stats(&EL);
    expect_ok(sa_download_annotations(c, w.p.id, w.f.id, w.ids, w.names, w.items.n, collect, k));
    check_all_delivered(&w, k);
    long long large = emu_count(&EL, "POST /api/v3.01/items/*");
    long long streams = emu_count(&EL, "POST /api/v4/items/annotations/download");
    fail_unless_msg(large > 0, "no large downloads");
    fail_unless_msg(streams > 0 || large == (long long)w.items.n, "no streams");
    fail_unless(emu_count(&EL, "GET /api/v4/items/*") >= large); /* sync status polls */
    coll_free(k);

    /* val/ as well, the large and small paths mixed */
    where_free(&w);
    where_get(c, "Demo Vector", "val", &w);
    expect_ok(sa_download_annotations(c, w.p.id, w.f.id, w.ids, w.names, w.items.n, collect, k));
    check_all_delivered(&w, k);
    coll_free(k);

    /* a FAILED sync is an error, not an endless poll (the SDK's quirk) */
    emu_fault(&EL, "{\"method\":\"GET\",\"path\":\"/api/v4/items/\",\"status\":200,"
                   "\"count\":1000,\"body\":\"{\\\"status\\\":\\\"FAILED_SYNC\\\"}\"}");
    double t0 = t_now();
    expect_err(SA_ERR_SERVER, sa_download_annotations(c, w.p.id, w.f.id, w.ids, w.names,
                                                      w.items.n, collect, k));
    fail_unless(t_now() - t0 < 10);
    fail_unless(strstr(sa_last_error(), "FAILED_SYNC") != NULL);
    emu_clear_faults(&EL);
    coll_free(k);
    free(k);
    where_free(&w);
    sa_client_free(c);
}

static void test_download_invalid_objects(void)
{
    /* An object with "errors" and no metadata. Alone (first object of its
     * stream): the batch is tried 3 times, then PROTO. After a valid one:
     * PROTO at once. */
    emu_seed(&E, "{\"project\":\"Broken\",\"type\":1,\"workflow\":1,"
                 "\"items\":[\"a.jpg\",\"b.jpg\"],"
                 "\"raw_documents\":{\"b.jpg\":\"{\\\"errors\\\":[\\\"boom\\\"]}\"}}");
    struct where w;
    struct coll *k = calloc(1, sizeof *k);
    where_get(C, "Broken", "root", &w);
    fail_unless(w.items.n == 2);
    long long bid = item_id_named(&w, "b.jpg");
    const char *bn = "b.jpg";
    emu_reset_stats(&E);
    expect_err(SA_ERR_PROTO, sa_download_annotations(C, w.p.id, w.f.id, &bid, &bn, 1, collect, k));
    fail_unless(k->n == 0);
    fail_unless_msg(emu_count(&E, "POST /api/v4/items/annotations/download") == 3,
                    "%lld stream requests", emu_count(&E, "POST /api/v4/items/annotations/download"));
    fail_unless(strstr(sa_last_error(), "boom") != NULL);
    long long ids[2] = {item_id_named(&w, "a.jpg"), bid};
    const char *names[2] = {"a.jpg", "b.jpg"};
    emu_reset_stats(&E);
    enum sa_err e = sa_download_annotations(C, w.p.id, w.f.id, ids, names, 2, collect, k);
    fail_unless(e == SA_ERR_PROTO);
    coll_free(k);
    free(k);
    where_free(&w);
}

/* ---- upload ---- */

static char *make_doc(const char *name, const char *extra, size_t pad)
{
    size_t n = strlen(name) + strlen(extra) + pad + 256;
    char *d = malloc(n);
    int k = snprintf(d, n, "{\"metadata\":{\"name\":\"%s\"},\"instances\":[%s],\"pad\":\"", name,
                     extra);
    memset(d + k, 'p', pad);
    strcpy(d + k + pad, "\",\"tags\":[],\"comments\":[]}");
    return d;
}

static void test_upload_roundtrip_numbers(void)
{
    struct where w;
    where_get(C, "Demo Vector", "val", &w);
    const char *inst = "{\"type\":\"point\",\"x\":12.3,\"y\":1e-7,"
                       "\"z\":123456789012345678901234567890,\"s\":\"caf\xc3\xa9\"}";
    char *doc = make_doc("val_005.jpg", inst, 10);
    struct sa_upload_doc u = {.item_id = item_id_named(&w, "val_005.jpg"), .name = "val_005.jpg",
                              .json = doc, .len = strlen(doc)};
    expect_ok(sa_upload_annotations(C, &w.p, w.f.id, &u, 1, 1));
    fail_unless(u.result == SA_OK);
    struct coll *k = calloc(1, sizeof *k);
    long long id = u.item_id;
    const char *nm = "val_005.jpg";
    expect_ok(sa_download_annotations(C, w.p.id, w.f.id, &id, &nm, 1, collect, k));
    fail_unless(k->n == 1);
    fail_unless(strstr(k->docs[0], "12.3,") != NULL);
    fail_unless(strstr(k->docs[0], "1e-7") != NULL);
    fail_unless(strstr(k->docs[0], "123456789012345678901234567890") != NULL);
    fail_unless(strstr(k->docs[0], "caf\xc3\xa9") != NULL);
    coll_free(k);
    free(k);
    free(doc);
    where_free(&w);
}

static int status_of(struct where *w, const char *name)
{
    struct sa_item_list l;
    expect_ok(sa_list_items(C, w->p.id, w->f.id, &name, 1, &l));
    fail_unless(l.n == 1);
    int s = l.v[0].annotation_status;
    sa_item_list_clear(&l);
    return s;
}

/* The status name of value @p v in workflow 1 (the system workflow). */
static const char *wf1_name(int v)
{
    static const char *const names[] = {"?", "NotStarted", "InProgress", "QualityCheck",
                                        "Returned", "Completed", "Skipped"};
    fail_unless(v >= 1 && v <= 6);
    return names[v];
}

/* What the emulator serves for uploaded bytes @p doc of item @p name: the
 * document with the item's current status name spliced in
 * (sa_doc_with_status, as on the platform). New. */
static char *served(struct where *w, const char *name, const char *doc, size_t len,
                    size_t *outlen)
{
    const char *status = wf1_name(status_of(w, name));
    char *out = NULL;
    char why[256] = "";
    fail_unless_msg(sa_doc_with_status(doc, len, status, &out, outlen, why, sizeof why) == SA_OK,
                    "with_status: %s", why);
    return out;
}

static void test_upload_tricky_names(void)
{
    /* every train/ item (UTF-8, '&', '%', '+', '#', '?', ',', '[', '=' in
     * names): one multipart request, every document read back */
    struct where w;
    where_get(C, "Demo Vector", "train", &w);
    size_t n = w.items.n;
    struct sa_upload_doc *u = calloc(n, sizeof *u);
    char **docs = calloc(n, sizeof *docs);
    for (size_t i = 0; i < n; i++) {
        char extra[64];
        snprintf(extra, sizeof extra, "{\"type\":\"tag\",\"k\":%zu}", i);
        docs[i] = make_doc(w.names[i], extra, 3);
        u[i] = (struct sa_upload_doc){.item_id = w.ids[i], .name = w.names[i], .json = docs[i],
                                      .len = strlen(docs[i])};
    }
    emu_reset_stats(&E);
    expect_ok(sa_upload_annotations(C, &w.p, w.f.id, u, n, 1));
    fail_unless(emu_count(&E, "POST /api/v4/items/annotations/upload") == 1);
    struct coll *k = calloc(1, sizeof *k);
    expect_ok(sa_download_annotations(C, w.p.id, w.f.id, w.ids, w.names, n, collect, k));
    check_all_delivered(&w, k);
    for (size_t i = 0; i < n; i++) {
        /* byte for byte but for the status the server fills in */
        char *want = served(&w, w.names[i], docs[i], strlen(docs[i]), NULL);
        fail_unless_msg(!strcmp(coll_doc(k, w.ids[i]), want), "%s changed: %s", w.names[i],
                        coll_doc(k, w.ids[i]));
        free(want);
    }
    coll_free(k);
    free(k);
    for (size_t i = 0; i < n; i++)
        free(docs[i]);
    free(docs);
    free(u);
    where_free(&w);
}

static void test_upload_quote_backslash_names(void)
{
    /* a '"' or '\' in an item name must reach the server as the same name
     * in the multipart part (api.md §10.3: backslash-escaped, as aiohttp
     * sends it), not as "a%22b.jpg": that would fail silently, or land on
     * another item named a%22b.jpg */
    emu_seed(&E, "{\"project\":\"Quotes\",\"type\":1,\"workflow\":1,\"items\":"
                 "[\"a\\\"b.jpg\",\"a%22b.jpg\",\"c\\\\d.jpg\"]}");
    struct where w;
    where_get(C, "Quotes", "root", &w);
    fail_unless(w.items.n == 3);
    const char *nq = "a\"b.jpg", *nb = "c\\d.jpg";
    char *dq = make_doc("a\\\"b.jpg", "", 1), *db = make_doc("c\\\\d.jpg", "", 2);
    struct sa_upload_doc u[2] = {
        {.item_id = item_id_named(&w, nq), .name = nq, .json = dq, .len = strlen(dq)},
        {.item_id = item_id_named(&w, nb), .name = nb, .json = db, .len = strlen(db)},
    };
    expect_ok(sa_upload_annotations(C, &w.p, w.f.id, u, 2, 1));
    fail_unless(u[0].result == SA_OK && u[1].result == SA_OK);
    struct coll *k = calloc(1, sizeof *k);
    long long ids[3] = {item_id_named(&w, nq), item_id_named(&w, nb),
                        item_id_named(&w, "a%22b.jpg")};
    const char *nm[3] = {nq, nb, "a%22b.jpg"};
    expect_ok(sa_download_annotations(C, w.p.id, w.f.id, ids, nm, 3, collect, k));
    char *wq = served(&w, nq, dq, strlen(dq), NULL), *wb = served(&w, nb, db, strlen(db), NULL);
    fail_unless_msg(coll_doc(k, ids[0]) && !strcmp(coll_doc(k, ids[0]), wq), "a\"b.jpg: %s",
                    coll_doc(k, ids[0]) ? coll_doc(k, ids[0]) : "(none)");
    fail_unless_msg(coll_doc(k, ids[1]) && !strcmp(coll_doc(k, ids[1]), wb), "c\\d.jpg: %s",
                    coll_doc(k, ids[1]) ? coll_doc(k, ids[1]) : "(none)");
    free(wq);
    free(wb);
    fail_unless_msg(!coll_doc(k, ids[2]) || !strstr(coll_doc(k, ids[2]), "\"pad\""),
                    "a%%22b.jpg got another item's document: %s", coll_doc(k, ids[2]));
    coll_free(k);
    free(k);
    /* a line break cannot go into a part header: that document fails alone */
    struct sa_upload_doc lb = {.item_id = ids[0], .name = "a\nb.jpg", .json = dq,
                               .len = strlen(dq)};
    expect_err(SA_ERR_INVAL, sa_upload_annotations(C, &w.p, w.f.id, &lb, 1, 1));
    free(dq);
    free(db);
    where_free(&w);
}

static void test_status_rule(void)
{
    struct where w;
    where_get(C, "Demo Vector", "val", &w);
    const char *nm = "val_006.jpg";
    expect_ok(sa_set_annotation_statuses(C, w.p.id, w.f.id, 5, &nm, 1));
    char *doc = make_doc(nm, "", 1);
    struct sa_upload_doc u = {.item_id = item_id_named(&w, nm), .name = nm, .json = doc,
                              .len = strlen(doc)};
    /* keep_status: stays Completed */
    expect_ok(sa_upload_annotations(C, &w.p, w.f.id, &u, 1, 1));
    fail_unless(status_of(&w, nm) == 5);
    /* system workflow: InProgress */
    expect_ok(sa_upload_annotations(C, &w.p, w.f.id, &u, 1, 0));
    fail_unless(status_of(&w, nm) == 2);
    free(doc);
    where_free(&w);

    /* custom workflow: unchanged */
    where_get(C, "Demo Custom Workflow", "root", &w);
    nm = w.names[0];
    expect_ok(sa_set_annotation_statuses(C, w.p.id, w.f.id, 7, &nm, 1));
    doc = make_doc(nm, "", 1);
    struct sa_upload_doc v = {.item_id = w.ids[0], .name = nm, .json = doc, .len = strlen(doc)};
    emu_reset_stats(&E);
    expect_ok(sa_upload_annotations(C, &w.p, w.f.id, &v, 1, 0));
    fail_unless(status_of(&w, nm) == 7);
    fail_unless(emu_count(&E, "PUT /image/updateAnnotationStatusBulk") == 0);
    free(doc);
    where_free(&w);
}

static void test_upload_batching_size(void)
{
    /* 5 docs of 3 MiB: 3 + 3 + 3 < 10 MiB, a 4th would reach it -> 2 requests */
    struct where w;
    where_get(C, "Bench", "f", &w);
    struct sa_upload_doc u[5];
    char *docs[5];
    for (int i = 0; i < 5; i++) {
        docs[i] = make_doc(w.names[i], "", 3u * 1024 * 1024);
        u[i] = (struct sa_upload_doc){.item_id = w.ids[i], .name = w.names[i], .json = docs[i],
                                      .len = strlen(docs[i])};
    }
    emu_reset_stats(&E);
    expect_ok(sa_upload_annotations(C, &w.p, w.f.id, u, 5, 1));
    fail_unless_msg(emu_count(&E, "POST /api/v4/items/annotations/upload") == 2, "%lld uploads",
                    emu_count(&E, "POST /api/v4/items/annotations/upload"));
    for (int i = 0; i < 5; i++) {
        fail_unless(u[i].result == SA_OK);
        free(docs[i]);
    }
    /* one invalid document among valid ones: only it fails */
    char *good = make_doc(w.names[10], "", 5);
    const char *bad = "{\"metadata\":{\"name\":";
    struct sa_upload_doc m[2] = {
        {.item_id = w.ids[10], .name = w.names[10], .json = good, .len = strlen(good)},
        {.item_id = w.ids[11], .name = w.names[11], .json = bad, .len = strlen(bad)},
    };
    enum sa_err e = sa_upload_annotations(C, &w.p, w.f.id, m, 2, 1);
    fail_unless(e != SA_OK);
    fail_unless(m[0].result == SA_OK);
    fail_unless(m[1].result != SA_OK && m[1].detail[0]);
    free(good);
    where_free(&w);
}

static void test_upload_batching_names(void)
{
    /* 30 items with 200-byte names: 19 fit under 3976 - 14 × (k + 1) */
    struct sa_buf_like {
        char s[32768];
    } *sb = malloc(sizeof *sb);
    char names[30][201];
    size_t o = 0;
    o += (size_t)snprintf(sb->s + o, sizeof sb->s - o,
                          "{\"project\":\"LongNames\",\"type\":1,\"workflow\":1,\"items\":[");
    for (int i = 0; i < 30; i++) {
        memset(names[i], 'n', 200);
        snprintf(names[i], 8, "%03d_", i);
        names[i][4] = 'n';
        names[i][196] = '.';
        names[i][197] = 'j';
        names[i][198] = 'p';
        names[i][199] = 'g';
        names[i][200] = '\0';
        o += (size_t)snprintf(sb->s + o, sizeof sb->s - o, "%s\"%s\"", i ? "," : "", names[i]);
    }
    snprintf(sb->s + o, sizeof sb->s - o, "]}");
    emu_seed(&E, sb->s);
    free(sb);
    struct where w;
    where_get(C, "LongNames", "root", &w);
    fail_unless(w.items.n == 30);
    struct sa_upload_doc u[30];
    char *docs[30];
    for (int i = 0; i < 30; i++) {
        docs[i] = make_doc(w.names[i], "", 1);
        u[i] = (struct sa_upload_doc){.item_id = w.ids[i], .name = w.names[i], .json = docs[i],
                                      .len = strlen(docs[i])};
    }
    emu_reset_stats(&E);
    expect_ok(sa_upload_annotations(C, &w.p, w.f.id, u, 30, 1));
    fail_unless_msg(emu_count(&E, "POST /api/v4/items/annotations/upload") == 2, "%lld uploads",
                    emu_count(&E, "POST /api/v4/items/annotations/upload"));
    for (int i = 0; i < 30; i++)
        free(docs[i]);
    where_free(&w);

    /* 300 tiny documents named img_NNNNNN.jpg (14 bytes): a batch closes
     * when 14 k >= 3976 - 14 (k + 1), i.e. at k = 142 -> 142 + 142 + 16 */
    where_get(C, "Bench", "f", &w);
    struct sa_upload_doc *v = calloc(300, sizeof *v);
    char **vd = calloc(300, sizeof *vd);
    for (int i = 0; i < 300; i++) {
        fail_unless(strlen(w.names[100 + i]) == 14);
        vd[i] = make_doc(w.names[100 + i], "", 1);
        v[i] = (struct sa_upload_doc){.item_id = w.ids[100 + i], .name = w.names[100 + i],
                                      .json = vd[i], .len = strlen(vd[i])};
    }
    emu_reset_stats(&E);
    expect_ok(sa_upload_annotations(C, &w.p, w.f.id, v, 300, 1));
    fail_unless_msg(emu_count(&E, "POST /api/v4/items/annotations/upload") == 3, "%lld uploads",
                    emu_count(&E, "POST /api/v4/items/annotations/upload"));
    for (int i = 0; i < 300; i++)
        free(vd[i]);
    free(vd);
    free(v);
    where_free(&w);
}

static void test_upload_large(void)
{
    /* > 15 MiB with multi-byte characters: start, 4 parts, finish, sync,
     * status; read back byte for byte */
    struct where w;
    where_get(C, "Bench", "f", &w);
    size_t pad = 16u * 1024 * 1024;
    char *doc = make_doc(w.names[20], "", pad);
    /* sprinkle 3-byte characters so part borders fall inside some */
    char *p = strstr(doc, "ppp");
    for (size_t i = 0; i + 3 < pad; i += 1000003) {
        p[i] = (char)0xe2;
        p[i + 1] = (char)0x82;
        p[i + 2] = (char)0xac;
    }
    for (size_t i = 5u * 1024 * 1024 - 40; i < 5u * 1024 * 1024 + 10; i += 3) {
        p[i] = (char)0xe2;
        p[i + 1] = (char)0x82;
        p[i + 2] = (char)0xac;
    }
    struct sa_upload_doc u = {.item_id = w.ids[20], .name = w.names[20], .json = doc,
                              .len = strlen(doc)};
    emu_reset_stats(&E);
    expect_ok(sa_upload_annotations(C, &w.p, w.f.id, &u, 1, 1));
    fail_unless(emu_count(&E, "POST /api/v3.01/items/*") == 1);
    long long parts = emu_count(&E, "POST /api/v4/items/*");
    fail_unless_msg(parts == 4 + 2, "%lld v4 POSTs (4 parts + finish + sync)", parts);
    fail_unless(emu_count(&E, "POST /api/v4/items/annotations/upload") == 0);

    struct coll *k = calloc(1, sizeof *k);
    long long id = w.ids[20];
    expect_ok(sa_download_annotations(C, w.p.id, w.f.id, &id, &w.names[20], 1, collect, k));
    fail_unless(k->n == 1);
    size_t wl = 0;
    char *want = served(&w, w.names[20], doc, u.len, &wl);
    fail_unless_msg(k->lens[0] == wl && !memcmp(k->docs[0], want, wl),
                    "large document changed (%zu vs %zu bytes)", k->lens[0], wl);
    free(want);
    coll_free(k);
    free(k);

    /* the same upload whose sync ends FAILED: the document fails */
    emu_fault(&E, "{\"method\":\"GET\",\"path\":\"/api/v4/items/\",\"status\":200,"
                  "\"count\":1000,\"body\":\"{\\\"status\\\":\\\"FAILED\\\"}\"}");
    expect_err(SA_ERR_SERVER, sa_upload_annotations(C, &w.p, w.f.id, &u, 1, 1));
    fail_unless(u.result == SA_ERR_SERVER && strstr(u.detail, "FAILED"));
    emu_clear_faults(&E);
    free(doc);
    where_free(&w);
}

static void test_upload_large_no_char_boundary(void)
{
    /* > 5 MiB of UTF-8 continuation bytes (not UTF-8): no character border
     * to cut a part at. Each part must still move forward (no endless run of
     * empty parts until the deadline). */
    struct sa_client *c = emu_client(&E, NULL, 0.02, 0);
    struct where w;
    where_get(c, "Bench", "f", &w);
    size_t pad = 16u * 1024 * 1024;
    char *doc = make_doc(w.names[21], "", pad);
    memset(strstr(doc, "ppp"), 0x80, pad);
    struct sa_upload_doc u = {.item_id = w.ids[21], .name = w.names[21], .json = doc,
                              .len = strlen(doc)};
    emu_reset_stats(&E);
    (void)sa_upload_annotations(c, &w.p, w.f.id, &u, 1, 1);
    long long parts = emu_count(&E, "POST /api/v4/items/*");
    fail_unless_msg(parts <= 4 + 2, "%lld v4 POSTs for a 16 MiB document", parts);
    free(doc);
    where_free(&w);
    sa_client_free(c);
}

static void test_delete(void)
{
    struct where w;
    where_get(C, "Demo Vector", "root", &w);
    const char *names[] = {"street_001.jpg", "street_002.jpg"};
    emu_reset_stats(&E);
    expect_ok(sa_delete_annotations(C, w.p.id, w.f.id, names, 2));
    fail_unless(emu_count(&E, "POST /annotations/remove") == 1);
    fail_unless_msg(emu_count(&E, "GET /annotations/getRemoveStatus") == 2, "%lld polls",
                    emu_count(&E, "GET /annotations/getRemoveStatus"));
    struct coll *k = calloc(1, sizeof *k);
    long long ids[2] = {item_id_named(&w, names[0]), item_id_named(&w, names[1])};
    expect_ok(sa_download_annotations(C, w.p.id, w.f.id, ids, names, 2, collect, k));
    fail_unless(k->n == 2);
    for (size_t i = 0; i < 2; i++)
        fail_unless_msg(strstr(k->docs[i], "\"instances\":[]") != NULL, "not emptied: %.200s",
                        k->docs[i]);
    coll_free(k);
    free(k);
    fail_unless(status_of(&w, names[0]) == 1);
    where_free(&w);
}

static void test_delete_invalid_utf8_names(void)
{
    /* names that are not UTF-8 cannot go into JSON: never send an empty
     * image_names list for them (no names means "the whole folder") */
    struct where w;
    where_get(C, "Demo Vector", "val", &w);
    const char *names[] = {"bad\xff.jpg"};
    emu_reset_stats(&E);
    expect_err(SA_ERR_INVAL, sa_delete_annotations(C, w.p.id, w.f.id, names, 1));
    fail_unless_msg(emu_count(&E, "POST /annotations/remove") == 0, "%lld removes",
                    emu_count(&E, "POST /annotations/remove"));
    where_free(&w);
}

static void test_delete_failed(void)
{
    struct where w;
    where_get(C, "Demo Vector", "root", &w);
    const char *names[] = {"street_003.jpg"};
    emu_fault(&E, "{\"path\":\"/annotations/getRemoveStatus\",\"status\":200,\"count\":1,"
                  "\"body\":\"{\\\"process\\\":-1}\"}");
    expect_err(SA_ERR_SERVER, sa_delete_annotations(C, w.p.id, w.f.id, names, 1));
    emu_clear_faults(&E);
    where_free(&w);
}

static void test_upload_large_finish_lost(void)
{
    /* the finish stores the document but its answer is cut: the re-sent
     * finish is refused (the upload is closed: 400 Unknown upload_id), so
     * the document goes up once more from the start; SA_OK, stored intact */
    struct where w;
    where_get(C, "Bench", "f", &w);
    char *doc = make_doc(w.names[22], "", 16u * 1024 * 1024);
    struct sa_upload_doc u = {.item_id = w.ids[22], .name = w.names[22], .json = doc,
                              .len = strlen(doc)};
    char fault[256];
    snprintf(fault, sizeof fault,
             "{\"method\":\"POST\",\"path\":\"/api/v4/items/%lld/annotations/upload/multipart/"
             "finish\",\"drop\":true}",
             w.ids[22]);
    emu_reset_stats(&E);
    emu_fault(&E, fault);
    expect_ok(sa_upload_annotations(C, &w.p, w.f.id, &u, 1, 1));
    fail_unless(u.result == SA_OK);
    char route[160];
    snprintf(route, sizeof route,
             "POST /api/v3.01/items/%lld/annotations/upload/multipart/start", w.ids[22]);
    fail_unless_msg(emu_count(&E, route) == 2, "%lld starts", emu_count(&E, route));
    snprintf(route, sizeof route,
             "POST /api/v4/items/%lld/annotations/upload/multipart/finish", w.ids[22]);
    fail_unless_msg(emu_count(&E, route) == 3, "%lld finishes (dropped, refused, ok)",
                    emu_count(&E, route));
    snprintf(route, sizeof route, "POST /api/v4/items/%lld/annotations/sync", w.ids[22]);
    fail_unless(emu_count(&E, route) == 1);

    struct coll *k = calloc(1, sizeof *k);
    long long id = w.ids[22];
    expect_ok(sa_download_annotations(C, w.p.id, w.f.id, &id, &w.names[22], 1, collect, k));
    fail_unless(k->n == 1);
    /* the whole document, once (the platform fills metadata.status in) */
    fail_unless(sa_doc_equal(k->docs[0], k->lens[0], doc, u.len, SA_PT_VECTOR) == 1);
    coll_free(k);
    free(k);
    free(doc);
    where_free(&w);
}

static void test_upload_small_answer_lost(void)
{
    /* a small upload re-sent after its answer was lost: the same bytes
     * again, SA_OK */
    struct where w;
    where_get(C, "Demo Vector", "val", &w);
    char *doc = make_doc("val_006.jpg", "", 5);
    struct sa_upload_doc u = {.item_id = item_id_named(&w, "val_006.jpg"),
                              .name = "val_006.jpg", .json = doc, .len = strlen(doc)};
    emu_reset_stats(&E);
    emu_fault(&E, "{\"method\":\"POST\",\"path\":\"/api/v4/items/annotations/upload\","
                  "\"drop\":true}");
    expect_ok(sa_upload_annotations(C, &w.p, w.f.id, &u, 1, 1));
    fail_unless(emu_count(&E, "POST /api/v4/items/annotations/upload") == 2);
    struct coll *k = calloc(1, sizeof *k);
    expect_ok(sa_download_annotations(C, w.p.id, w.f.id, &u.item_id, &u.name, 1, collect, k));
    fail_unless(k->n == 1 && sa_doc_equal(k->docs[0], k->lens[0], doc, u.len, SA_PT_VECTOR) == 1);
    coll_free(k);
    free(k);
    free(doc);
    where_free(&w);
}

static void test_delete_answer_lost(void)
{
    /* annotations/remove re-sent after its answer was lost: the items still
     * match, so the emulator gives a new poll_id; its status is polled;
     * SA_OK, documents gone */
    struct where w;
    where_get(C, "Demo Vector", "val", &w);
    const char *names[] = {"val_002.jpg", "val_003.jpg"};
    emu_reset_stats(&E);
    emu_fault(&E, "{\"method\":\"POST\",\"path\":\"/annotations/remove\",\"drop\":true}");
    expect_ok(sa_delete_annotations(C, w.p.id, w.f.id, names, 2));
    fail_unless(emu_count(&E, "POST /annotations/remove") == 2);
    fail_unless(emu_count(&E, "GET /annotations/getRemoveStatus") == 2);
    struct coll *k = calloc(1, sizeof *k);
    long long ids[2] = {item_id_named(&w, names[0]), item_id_named(&w, names[1])};
    expect_ok(sa_download_annotations(C, w.p.id, w.f.id, ids, names, 2, collect, k));
    fail_unless(k->n == 2);
    for (size_t i = 0; i < 2; i++)
        fail_unless_msg(strstr(k->docs[i], "\"instances\":[]") != NULL, "not emptied: %.200s",
                        k->docs[i]);
    coll_free(k);
    free(k);
    where_free(&w);
}

static void test_upload_invalid_utf8_name(void)
{
    /* a name that is not UTF-8 fails alone, before anything is sent */
    struct where w;
    where_get(C, "Demo Vector", "val", &w);
    char *good = make_doc("val_005.jpg", "", 5);
    struct sa_upload_doc u[2] = {
        {.item_id = item_id_named(&w, "val_005.jpg"), .name = "val_005.jpg", .json = good,
         .len = strlen(good)},
        {.item_id = 1, .name = "bad\xc3(.jpg", .json = "{}", .len = 2},
    };
    emu_reset_stats(&E);
    expect_err(SA_ERR_INVAL, sa_upload_annotations(C, &w.p, w.f.id, u, 2, 1));
    fail_unless(u[0].result == SA_OK);
    fail_unless(u[1].result == SA_ERR_INVAL && strstr(u[1].detail, "UTF-8"));
    fail_unless(emu_count(&E, "POST /api/v4/items/annotations/upload") == 1);
    /* the multipart body named only the good document (not "bad": the
     * random hexadecimal multipart boundary may spell it) */
    char *body = NULL;
    fail_unless(emu_http(&E, "GET", "/_emulator/requests?path=/api/v4/items/annotations/upload",
                         NULL, &body) == 200);
    fail_unless(strstr(body, "val_005.jpg") && !strstr(body, "(.jpg"));
    free(body);
    free(good);
    where_free(&w);
}

struct dthr {
    struct where *w;
    int ok;
};

static void *dl_thread(void *arg)
{
    struct dthr *t = arg;
    struct coll *k = calloc(1, sizeof *k);
    t->ok = sa_download_annotations(C, t->w->p.id, t->w->f.id, t->w->ids, t->w->names,
                                    t->w->items.n, collect, k) == SA_OK &&
            k->n == t->w->items.n;
    coll_free(k);
    free(k);
    return NULL;
}

static void test_concurrent_downloads(void)
{
    struct where w;
    where_get(C, "Demo Vector", "train", &w);
    pthread_t th[8];
    struct dthr t[8];
    for (int i = 0; i < 8; i++) {
        t[i].w = &w;
        fail_unless(pthread_create(&th[i], NULL, dl_thread, &t[i]) == 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++)
        fail_unless(t[i].ok);
    where_free(&w);
}

int main(void)
{
    const char *a1[] = {"--seed", "demo", "--seed-items", "Bench/f=2500", "--delete-polls", "2",
                        NULL};
    const char *a2[] = {"--seed", "demo", "--large-threshold", "1000", "--stream-batch", "4",
                        NULL};
    emu_start(&E, a1);
    emu_start(&EL, a2);
    C = emu_client(&E, NULL, 1.0, 0);
    t_run("download_small", test_download_small);
    t_run("download_classify_chunks", test_download_classify_chunks);
    t_run("download_large_and_batches", test_download_large_and_batches);
    t_run("download_invalid_objects", test_download_invalid_objects);
    t_run("upload_roundtrip_numbers", test_upload_roundtrip_numbers);
    t_run("upload_tricky_names", test_upload_tricky_names);
    t_run("upload_quote_backslash_names", test_upload_quote_backslash_names);
    t_run("status_rule", test_status_rule);
    t_run("upload_batching_size", test_upload_batching_size);
    t_run("upload_batching_names", test_upload_batching_names);
    t_run("upload_large", test_upload_large);
    t_run("upload_large_no_char_boundary", test_upload_large_no_char_boundary);
    t_run("delete", test_delete);
    t_run("delete_invalid_utf8_names", test_delete_invalid_utf8_names);
    t_run("delete_failed", test_delete_failed);
    t_run("concurrent_downloads", test_concurrent_downloads);
    t_run("upload_large_finish_lost", test_upload_large_finish_lost);
    t_run("upload_small_answer_lost", test_upload_small_answer_lost);
    t_run("delete_answer_lost", test_delete_answer_lost);
    t_run("upload_invalid_utf8_name", test_upload_invalid_utf8_name);
    sa_client_free(C);
    emu_stop(&EL);
    emu_stop(&E);
    return t_done();
}
