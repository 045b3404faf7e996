/* The calling thread's call scope: server dates of a call (sa_last_dates)
 * and cancellation (sa_cancel_scope), asserted on what the emulator
 * received. Emulator: --seed demo --stream-batch 4 (Demo Vector/train's 27
 * items come back as 7 stream batches, fetched by worker threads). */
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"

static struct emu E;
static struct sa_client *C;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Requests the emulator recorded since the last reset-requests. */
static size_t recorded(void)
{
    char *body = NULL;
    fail_unless(emu_http(&E, "GET", "/_emulator/requests", NULL, &body) == 200);
    json_t *j = json_loads(body, 0, NULL);
    fail_unless_msg(j != NULL, "requests: %s", body);
    size_t n = json_array_size(json_object_get(j, "requests"));
    json_decref(j);
    free(body);
    return n;
}

static void before(void)
{
    emu_clear_faults(&E);
    emu_reset_stats(&E);
    fail_unless(emu_http(&E, "POST", "/_emulator/reset-requests", NULL, NULL) == 200);
}

struct where {
    struct sa_project p;
    struct sa_folder f;
    struct sa_item_list items;
    long long *ids;
    const char **names;
};

static void where_get(const char *proj, const char *folder, struct where *w)
{
    expect_ok(sa_get_project_by_name(C, proj, &w->p));
    expect_ok(sa_get_folder_by_name(C, w->p.id, folder, &w->f));
    expect_ok(sa_list_items(C, w->p.id, w->f.id, NULL, 0, &w->items));
    w->ids = calloc(w->items.n + 1, sizeof *w->ids);
    w->names = calloc(w->items.n + 1, sizeof *w->names);
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

struct count {
    size_t n;
    char *first; /* the first document, new */
    size_t first_len;
};

static int count_doc(void *ud, long long id, const char *json, size_t len)
{
    struct count *k = ud;
    (void)id;
    if (!k->first) {
        k->first = malloc(len + 1);
        memcpy(k->first, json, len);
        k->first[len] = '\0';
        k->first_len = len;
    }
    k->n++;
    return 0;
}

/* ---- server dates ---- */

static void test_dates_one_request(void)
{
    int64_t f = -1, l = -1;
    before();
    int64_t t0 = wall_ms();
    expect_ok(sa_get_user(C, NULL));
    int64_t t1 = wall_ms();
    sa_last_dates(&f, &l);
    fail_unless_msg(f > 0 && f == l, "first %lld last %lld", (long long)f, (long long)l);
    fail_unless(f % 1000 == 0); /* Date has whole seconds */
    fail_unless_msg(f >= t0 / 1000 * 1000 - 1000 && f <= t1 + 1000,
                    "Date %lld outside [%lld, %lld]", (long long)f, (long long)t0, (long long)t1);
    sa_last_dates(NULL, &l);
    sa_last_dates(&f, NULL);
    sa_last_dates(NULL, NULL);
}

static void test_dates_span_requests(void)
{
    /* sa_get_workflow makes two requests; the second is answered 1.5 s
     * later: first and last are a second or more apart */
    struct sa_client *c = emu_client(&E, NULL, 1.0, 0); /* empty workflow cache */
    struct sa_workflow w;
    int64_t f = 0, l = 0, f2 = 0, l2 = 0;
    before();
    emu_fault(&E, "{\"method\":\"GET\",\"path\":\"/api/v1/workflows/1/\",\"delay_ms\":1500}");
    expect_ok(sa_get_workflow(c, 101, 1, &w));
    sa_workflow_clear(&w);
    sa_last_dates(&f, &l);
    fail_unless_msg(f > 0 && l - f >= 1000, "first %lld last %lld", (long long)f,
                    (long long)l);
    fail_unless(emu_count(&E, "GET /api/v1/workflows*") == 2);

    /* a call that sends nothing (cached workflow) keeps the last record */
    expect_ok(sa_get_workflow(c, 101, 1, &w));
    sa_workflow_clear(&w);
    fail_unless(emu_count(&E, "GET /api/v1/workflows*") == 2);
    sa_last_dates(&f2, &l2);
    fail_unless(f2 == f && l2 == l);

    /* ... and so does a call refused before sending (not UTF-8) */
    expect_err(SA_ERR_INVAL, sa_create_folder(c, 101, "bad\xff", NULL));
    sa_last_dates(&f2, &l2);
    fail_unless(f2 == f && l2 == l);

    /* the next call that sends starts a new record */
    expect_ok(sa_get_user(c, NULL));
    sa_last_dates(&f2, &l2);
    fail_unless(f2 == l2 && f2 >= l);
    sa_client_free(c);
}

static void test_dates_nested_call(void)
{
    /* sa_upload_annotations makes its own sa_get_workflow and
     * sa_set_annotation_statuses calls: their responses belong to the
     * upload's record (the inner calls do not start a new one) */
    struct sa_client *c = emu_client(&E, NULL, 1.0, 0);
    struct where w;
    struct count k = {0};
    int64_t f = 0, l = 0;
    where_get("Demo Vector", "val", &w);
    expect_ok(sa_download_annotations(C, w.p.id, w.f.id, w.ids, w.names, 1, count_doc, &k));
    fail_unless(k.n == 1);
    before();
    emu_fault(&E, "{\"method\":\"PUT\",\"path\":\"/image/updateAnnotationStatusBulk\","
                  "\"delay_ms\":1500}");
    struct sa_upload_doc u = {.item_id = w.ids[0], .name = w.names[0], .json = k.first,
                              .len = k.first_len};
    expect_ok(sa_upload_annotations(c, &w.p, w.f.id, &u, 1, 0));
    fail_unless(emu_count(&E, "PUT /image/updateAnnotationStatusBulk") == 1);
    sa_last_dates(&f, &l);
    fail_unless_msg(f > 0 && l - f >= 1000, "first %lld last %lld", (long long)f,
                    (long long)l);
    free(k.first);
    where_free(&w);
    sa_client_free(c);
}

static void test_dates_workers(void)
{
    /* classify answers at once (taken by a no-op fault), the 7 stream
     * batches, fetched by worker threads, 1.2 s later: the call's last Date
     * comes from a worker */
    struct where w;
    struct count k = {0};
    int64_t f = 0, l = 0;
    where_get("Demo Vector", "train", &w);
    before();
    emu_fault(&E, "{\"method\":\"POST\",\"path\":\"/api/v4/items/annotations/download/method\"}");
    emu_fault(&E, "{\"method\":\"POST\",\"path\":\"/api/v4/items/annotations/download\","
                  "\"delay_ms\":1200,\"count\":-1}");
    expect_ok(sa_download_annotations(C, w.p.id, w.f.id, w.ids, w.names, w.items.n, count_doc,
                                      &k));
    emu_clear_faults(&E);
    fail_unless(k.n == w.items.n);
    fail_unless_msg(emu_count(&E, "POST /api/v4/items/annotations/download") >= 2,
                    "%lld stream requests",
                    emu_count(&E, "POST /api/v4/items/annotations/download"));
    sa_last_dates(&f, &l);
    fail_unless_msg(f > 0 && l - f >= 1000, "first %lld last %lld", (long long)f,
                    (long long)l);
    free(k.first);
    where_free(&w);
}

static void test_dates_none(void)
{
    /* a call that made requests but got no response: 0 and 0 */
    struct sa_config cfg = {.token = "k=1", .url = "http://127.0.0.1:1", .timeout_scale = 0.02};
    char err[128];
    struct sa_client *c = sa_client_new(&cfg, err, sizeof err);
    int64_t f = -1, l = -1;
    fail_unless(c != NULL);
    expect_ok(sa_get_user(C, NULL));
    sa_last_dates(&f, &l);
    fail_unless(f > 0);
    enum sa_err e = sa_get_user(c, NULL);
    fail_unless(e == SA_ERR_NET || e == SA_ERR_TIMEOUT);
    sa_last_dates(&f, &l);
    fail_unless_msg(f == 0 && l == 0, "first %lld last %lld", (long long)f, (long long)l);
    sa_client_free(c);
}

static void *dates_thread(void *arg)
{
    int64_t *out = arg;
    sa_last_dates(&out[0], &out[1]);
    return NULL;
}

static void test_dates_per_thread(void)
{
    /* another thread's record is its own (here: none) */
    int64_t got[2] = {-1, -1};
    pthread_t th;
    expect_ok(sa_get_user(C, NULL));
    fail_unless(pthread_create(&th, NULL, dates_thread, got) == 0);
    pthread_join(th, NULL);
    fail_unless(got[0] == 0 && got[1] == 0);
}

/* ---- cancellation ---- */

struct canceller {
    volatile int *flag;
    double after;   /* seconds */
    double set_at;  /* t_now() when set */
};

static void *cancel_later(void *arg)
{
    struct canceller *k = arg;
    usleep((useconds_t)(k->after * 1e6));
    k->set_at = t_now();
    *k->flag = 1;
    return NULL;
}

static void test_cancel_download(void)
{
    /* every stream batch answers after 20 s: cancelled from another thread
     * 0.5 s in, the call returns within a second, workers included */
    struct where w;
    struct count k = {0};
    volatile int flag = 0;
    struct canceller cn = {.flag = &flag, .after = 0.5};
    pthread_t th;
    where_get("Demo Vector", "train", &w);
    before();
    emu_fault(&E, "{\"method\":\"POST\",\"path\":\"/api/v4/items/annotations/download/method\"}");
    emu_fault(&E, "{\"method\":\"POST\",\"path\":\"/api/v4/items/annotations/download\","
                  "\"delay_ms\":20000,\"count\":-1}");
    sa_cancel_scope(&flag);
    fail_unless(pthread_create(&th, NULL, cancel_later, &cn) == 0);
    expect_err(SA_ERR_CANCELLED, sa_download_annotations(C, w.p.id, w.f.id, w.ids, w.names,
                                                         w.items.n, count_doc, &k));
    double dt = t_now() - cn.set_at;
    pthread_join(th, NULL);
    fail_unless_msg(dt < 1.0, "returned %.2f s after the cancel", dt);
    fail_unless_msg(strstr(sa_last_error(), "cancelled") != NULL, "detail: %s",
                    sa_last_error());
    fail_unless(k.n == 0);
    /* 7 batches, 7 workers: all of them were in flight, none re-sent */
    long long streams = emu_count(&E, "POST /api/v4/items/annotations/download");
    fail_unless_msg(streams == 7, "%lld stream requests", streams);
    sa_cancel_scope(NULL);
    emu_clear_faults(&E);

    /* the scope removed: the same call works again */
    expect_ok(sa_download_annotations(C, w.p.id, w.f.id, w.ids, w.names, w.items.n, count_doc,
                                      &k));
    fail_unless(k.n == w.items.n);
    free(k.first);
    where_free(&w);
}

static void test_cancel_single_request(void)
{
    volatile int flag = 0;
    struct canceller cn = {.flag = &flag, .after = 0.3};
    pthread_t th;
    before();
    emu_fault(&E, "{\"path\":\"/user/ME\",\"delay_ms\":20000}");
    sa_cancel_scope(&flag);
    fail_unless(pthread_create(&th, NULL, cancel_later, &cn) == 0);
    expect_err(SA_ERR_CANCELLED, sa_get_user(C, NULL));
    double dt = t_now() - cn.set_at;
    pthread_join(th, NULL);
    sa_cancel_scope(NULL);
    fail_unless_msg(dt < 0.5, "returned %.2f s after the cancel", dt);
    fail_unless(emu_count(&E, "GET /user/ME") == 1);
    emu_clear_faults(&E);
}

static void test_cancel_backoff(void)
{
    /* a 503 storm: the backoff sleeps grow (0.25, 0.5, 1, 2 s ...); a
     * cancel 1.2 s in wakes the sleep at once */
    volatile int flag = 0;
    struct canceller cn = {.flag = &flag, .after = 1.2};
    pthread_t th;
    before();
    emu_fault(&E, "{\"path\":\"/user/ME\",\"status\":503,\"count\":-1}");
    sa_cancel_scope(&flag);
    fail_unless(pthread_create(&th, NULL, cancel_later, &cn) == 0);
    double t0 = t_now();
    expect_err(SA_ERR_CANCELLED, sa_get_user(C, NULL));
    double dt = t_now() - cn.set_at;
    pthread_join(th, NULL);
    sa_cancel_scope(NULL);
    fail_unless_msg(dt < 0.3, "returned %.2f s after the cancel (%.2f s in all)", dt,
                    t_now() - t0);
    long long n = emu_count(&E, "GET /user/ME");
    fail_unless_msg(n >= 2 && n <= 5, "%lld requests", n);
    emu_clear_faults(&E);
}

struct holder {
    struct sa_client *c;
    enum sa_err e;
};

static void *hold_slot(void *arg)
{
    struct holder *h = arg;
    h->e = sa_get_user(h->c, NULL);
    return NULL;
}

static void test_cancel_before_start(void)
{
    /* the flag is already set: every call returns CANCELLED, nothing is
     * sent */
    volatile int flag = 1;
    struct sa_workflow wf;
    struct sa_project_list pl;
    struct sa_folder f;
    char *js = NULL;
    size_t len = 0;
    long long id = 100001;
    const char *name = "street_001.jpg";
    struct sa_project p = {.id = 101, .workflow_id = 1};
    struct sa_upload_doc u = {.item_id = 100001, .name = name, .json = "{}", .len = 2};
    struct count k = {0};

    /* the workflow cached first: a cached answer is not given either */
    expect_ok(sa_get_workflow(C, 101, 1, &wf));
    sa_workflow_clear(&wf);
    before();
    sa_cancel_scope(&flag);
    expect_err(SA_ERR_CANCELLED, sa_get_user(C, NULL));
    expect_err(SA_ERR_CANCELLED, sa_list_projects(C, NULL, &pl));
    fail_unless(pl.n == 0 && pl.v == NULL);
    expect_err(SA_ERR_CANCELLED, sa_create_folder(C, 101, "never", &f));
    fail_unless(f.name == NULL);
    expect_err(SA_ERR_CANCELLED, sa_get_workflow(C, 101, 1, &wf));
    expect_err(SA_ERR_CANCELLED, sa_list_classes(C, 101, &js, &len));
    fail_unless(js == NULL && len == 0);
    expect_err(SA_ERR_CANCELLED, sa_download_annotations(C, 101, 0, &id, &name, 1, count_doc,
                                                         &k));
    expect_err(SA_ERR_CANCELLED, sa_upload_annotations(C, &p, 1001, &u, 1, 0));
    fail_unless(u.result == SA_ERR_CANCELLED);
    expect_err(SA_ERR_CANCELLED, sa_delete_annotations(C, 101, 1001, &name, 1));
    expect_err(SA_ERR_CANCELLED, sa_set_annotation_statuses(C, 101, 1001, 2, &name, 1));
    fail_unless(strstr(sa_last_error(), "cancelled") != NULL);
    fail_unless_msg(emu_total(&E) == 0, "%lld requests sent", emu_total(&E));
    fail_unless(recorded() == 0);

    /* another thread's calls are not affected */
    struct holder h = {.c = C};
    pthread_t th;
    fail_unless(pthread_create(&th, NULL, hold_slot, &h) == 0);
    pthread_join(th, NULL);
    fail_unless(h.e == SA_OK);
    fail_unless(emu_total(&E) == 1);
    /* removed: this thread's calls work again */
    sa_cancel_scope(NULL);
    expect_ok(sa_get_user(C, NULL));
    fail_unless(k.n == 0);
}

static void test_cancel_pool_wait(void)
{
    /* one pool slot, held 3 s by another thread: a cancel ends this
     * thread's wait for it */
    struct sa_client *c = emu_client(&E, NULL, 1.0, 1);
    struct holder h = {.c = c};
    volatile int flag = 0;
    struct canceller cn = {.flag = &flag, .after = 0.5};
    pthread_t th, tc;
    before();
    emu_fault(&E, "{\"path\":\"/user/ME\",\"delay_ms\":3000}");
    fail_unless(pthread_create(&th, NULL, hold_slot, &h) == 0);
    usleep(200000);
    sa_cancel_scope(&flag);
    fail_unless(pthread_create(&tc, NULL, cancel_later, &cn) == 0);
    expect_err(SA_ERR_CANCELLED, sa_get_team(c, NULL));
    double dt = t_now() - cn.set_at;
    pthread_join(tc, NULL);
    sa_cancel_scope(NULL);
    fail_unless_msg(dt < 0.3, "returned %.2f s after the cancel", dt);
    fail_unless(emu_count(&E, "GET /api/v1/team/1") == 0);
    pthread_join(th, NULL);
    fail_unless(h.e == SA_OK); /* the other thread's call is not cancelled */
    sa_client_free(c);
}

int main(void)
{
    const char *args[] = {"--seed", "demo", "--stream-batch", "4", NULL};
    emu_start(&E, args);
    C = emu_client(&E, NULL, 1.0, 0);
    t_run("dates_one_request", test_dates_one_request);
    t_run("dates_span_requests", test_dates_span_requests);
    t_run("dates_nested_call", test_dates_nested_call);
    t_run("dates_workers", test_dates_workers);
    t_run("dates_none", test_dates_none);
    t_run("dates_per_thread", test_dates_per_thread);
    t_run("cancel_download", test_cancel_download);
    t_run("cancel_single_request", test_cancel_single_request);
    t_run("cancel_backoff", test_cancel_backoff);
    t_run("cancel_before_start", test_cancel_before_start);
    t_run("cancel_pool_wait", test_cancel_pool_wait);
    sa_client_free(C);
    emu_stop(&E);
    return t_done();
}
