/* Retries, Retry-After, deadlines and error mapping, asserted on the
 * requests the emulator actually received (its control-plane counters). */
#include <pthread.h>
#include <string.h>
#include <syslog.h>

#include <jansson.h>

#include "harness.h"

static struct emu E;

struct logrec {
    pthread_mutex_t mu;
    int info, debug;
    int token_seen;
    int took_effect; /* "had taken effect" lines at LOG_INFO */
};
static struct logrec L = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_log(void *ud, int level, const char *msg)
{
    (void)ud;
    pthread_mutex_lock(&L.mu);
    if (level == LOG_INFO)
        L.info++;
    if (level == LOG_DEBUG)
        L.debug++;
    if (strstr(msg, "emulator-token"))
        L.token_seen = 1;
    if (level == LOG_INFO && strstr(msg, "had taken effect"))
        L.took_effect++;
    pthread_mutex_unlock(&L.mu);
}

static struct sa_client *client(double scale)
{
    char err[256];
    struct sa_config cfg = {.token = "emulator-token=1", .url = E.url, .timeout_scale = scale,
                            .log = on_log};
    struct sa_client *c = sa_client_new(&cfg, err, sizeof err);
    fail_unless_msg(c != NULL, "%s", err);
    return c;
}

static void before(void)
{
    emu_clear_faults(&E);
    emu_reset_stats(&E);
    fail_unless(emu_http(&E, "POST", "/_emulator/reset-requests", NULL, NULL) == 200);
    pthread_mutex_lock(&L.mu);
    L.info = L.debug = L.took_effect = 0;
    pthread_mutex_unlock(&L.mu);
}

static void test_503_503_200(void)
{
    struct sa_client *c = client(1.0);
    struct sa_user u;
    struct sa_stats s;
    before();
    emu_fault(&E, "{\"method\":\"GET\",\"path\":\"/user/ME\",\"status\":503,\"count\":2}");
    expect_ok(sa_get_user(c, &u));
    fail_unless(u.email != NULL);
    fail_unless_msg(emu_count(&E, "GET /user/ME") == 3, "%lld requests",
                    emu_count(&E, "GET /user/ME"));
    sa_client_stats(c, &s);
    fail_unless(s.requests[SA_REQ_AUTH] == 3 && s.retries == 2 && s.errors == 0);
    fail_unless(L.info == 2); /* one log line per retry */
    fail_unless(!L.token_seen);
    sa_user_clear(&u);
    sa_client_free(c);
}

static void test_retry_after(void)
{
    struct sa_client *c = client(1.0);
    struct sa_user u;
    before();
    emu_fault(&E, "{\"method\":\"GET\",\"path\":\"/user/ME\",\"status\":503,\"count\":1,"
                  "\"retry_after\":1}");
    double t0 = t_now();
    expect_ok(sa_get_user(c, &u));
    double dt = t_now() - t0;
    fail_unless_msg(dt >= 1.0 && dt < 5.0, "took %.2f s", dt);
    fail_unless(emu_count(&E, "GET /user/ME") == 2);
    sa_user_clear(&u);
    sa_client_free(c);
}

static void test_429(void)
{
    struct sa_client *c = client(1.0);
    struct sa_project_list l;
    before();
    emu_fault(&E, "{\"method\":\"GET\",\"path\":\"/api/v1/projects\",\"status\":429,\"count\":2}");
    expect_ok(sa_list_projects(c, NULL, &l));
    fail_unless(l.n > 0);
    fail_unless(emu_count(&E, "GET /api/v1/projects") == 3);
    sa_project_list_clear(&l);
    sa_client_free(c);

    /* always 429: BUSY, within the (scaled) call deadline */
    c = client(0.05);
    before();
    emu_fault(&E, "{\"path\":\"/api/v1/projects\",\"status\":429,\"count\":1000}");
    double t0 = t_now();
    expect_err(SA_ERR_BUSY, sa_list_projects(c, NULL, &l));
    fail_unless(t_now() - t0 < 6.0);
    fail_unless(emu_count(&E, "GET /api/v1/projects") >= 2);
    fail_unless(strstr(sa_last_error(), "429") != NULL);
    fail_unless(L.debug >= 1);
    sa_client_free(c);
}

static void test_404_not_retried(void)
{
    struct sa_client *c = client(1.0);
    struct sa_project_list l;
    before();
    emu_fault(&E, "{\"path\":\"/api/v1/projects\",\"status\":404,\"count\":5,"
                  "\"body\":\"{\\\"error\\\":\\\"custom boom\\\"}\"}");
    expect_err(SA_ERR_NOTFOUND, sa_list_projects(c, NULL, &l));
    fail_unless(emu_count(&E, "GET /api/v1/projects") == 1);
    fail_unless_msg(strstr(sa_last_error(), "custom boom") != NULL, "detail: %s",
                    sa_last_error());
    fail_unless(strstr(sa_last_error(), "GET") != NULL);
    struct sa_stats s;
    sa_client_stats(c, &s);
    fail_unless(s.errors == 1 && s.retries == 0);
    sa_client_free(c);
}

static void test_status_mapping(void)
{
    static const struct {
        int status;
        enum sa_err want;
        int requests;
    } cases[] = {
        {400, SA_ERR_INVAL, 1},    {401, SA_ERR_DENIED, 1},   {403, SA_ERR_DENIED, 1},
        {409, SA_ERR_EXISTS, 1},   {412, SA_ERR_CONFLICT, 1}, {413, SA_ERR_TOOBIG, 1},
        {422, SA_ERR_INVAL, 1},    {500, SA_ERR_SERVER, 1},   {502, SA_ERR_SERVER, -1},
        {504, SA_ERR_SERVER, -1},  {503, SA_ERR_BUSY, -1},
    };
    struct sa_client *c = client(0.05);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char f[160];
        struct sa_team t;
        before();
        snprintf(f, sizeof f, "{\"path\":\"/api/v1/team/\",\"status\":%d,\"count\":1000}",
                 cases[i].status);
        emu_fault(&E, f);
        double t0 = t_now();
        enum sa_err e = sa_get_team(c, &t);
        fail_unless_msg(e == cases[i].want, "HTTP %d gave %s", cases[i].status,
                        sa_strerror(e));
        long long n = emu_count(&E, "GET /api/v1/team/1");
        if (cases[i].requests > 0)
            fail_unless_msg(n == cases[i].requests, "HTTP %d: %lld requests", cases[i].status,
                            n);
        else
            fail_unless_msg(n >= 2, "HTTP %d: %lld requests (not retried)", cases[i].status, n);
        fail_unless(t_now() - t0 < 6.0);
        fail_unless(t.name == NULL);
    }
    sa_client_free(c);
}

static void test_deadline(void)
{
    /* a server that answers after 20 s; the scaled call deadline is 3 s */
    struct sa_client *c = client(0.05);
    struct sa_user u;
    before();
    emu_fault(&E, "{\"path\":\"/user/ME\",\"delay_ms\":20000,\"count\":1000}");
    double t0 = t_now();
    expect_err(SA_ERR_TIMEOUT, sa_get_user(c, &u));
    double dt = t_now() - t0;
    fail_unless_msg(dt >= 1.0 && dt < 6.0, "took %.2f s", dt);
    emu_clear_faults(&E);
    sa_client_free(c);
}

static void test_op_deadline(void)
{
    /* one deadline for the thread's operation: two calls in a row against a
     * server 20 s late end within it (each call alone has 60 s) */
    struct sa_client *c = client(1.0);
    struct sa_user u;
    before();
    emu_fault(&E, "{\"path\":\"/user/ME\",\"delay_ms\":20000,\"count\":1000}");
    sa_op_deadline(2.0);
    fail_unless(sa_op_remaining() > 1.5 && sa_op_remaining() <= 2.0);
    double t0 = t_now();
    expect_err(SA_ERR_TIMEOUT, sa_get_user(c, &u));
    expect_err(SA_ERR_TIMEOUT, sa_get_user(c, &u));
    double dt = t_now() - t0;
    fail_unless_msg(dt >= 1.5 && dt < 3.5, "took %.2f s", dt);
    fail_unless(sa_op_remaining() == 0);
    /* retry sleeps are bounded by it too: 503 forever */
    emu_clear_faults(&E);
    emu_fault(&E, "{\"path\":\"/user/ME\",\"status\":503,\"count\":-1}");
    sa_op_deadline(1.5);
    t0 = t_now();
    expect_err(SA_ERR_BUSY, sa_get_user(c, &u));
    dt = t_now() - t0;
    fail_unless_msg(dt < 2.5, "took %.2f s", dt);
    sa_op_deadline(0);
    fail_unless(sa_op_remaining() < 0);
    emu_clear_faults(&E);
    expect_ok(sa_get_user(c, &u));
    sa_user_clear(&u);
    sa_client_free(c);
}

static void test_body_cap(void)
{
    /* a server-sized body over max_body is refused, not buffered */
    char err[256];
    struct sa_config cfg = {.token = "emulator-token=1", .url = E.url, .max_body = 4096,
                            .log = on_log};
    struct sa_client *c = sa_client_new(&cfg, err, sizeof err);
    struct sa_user u;
    fail_unless_msg(c != NULL, "%s", err);
    before();
    emu_fault(&E, "{\"path\":\"/user/ME\",\"status\":200,\"body\":\"{\\\"id\\\": \\\"\","
                  "\"pad\":100000,\"count\":1}");
    expect_err(SA_ERR_PROTO, sa_get_user(c, &u));
    fail_unless_msg(strstr(sa_last_error(), "over 4096 bytes") != NULL, "%s", sa_last_error());
    fail_unless(emu_count(&E, "GET /user/ME") == 1); /* not retried */
    expect_ok(sa_get_user(c, &u));
    sa_user_clear(&u);
    sa_client_free(c);
}

static void test_drop(void)
{
    struct sa_client *c = client(1.0);
    struct sa_user u;
    before();
    emu_fault(&E, "{\"path\":\"/user/ME\",\"drop\":true,\"count\":1}");
    expect_ok(sa_get_user(c, &u));
    fail_unless(emu_count(&E, "GET /user/ME") == 2);
    sa_user_clear(&u);
    sa_client_free(c);
}

static void test_post_retried(void)
{
    /* 502 then OK on items/search (a POST): retried, listing complete */
    struct sa_client *c = client(1.0);
    struct sa_project p;
    struct sa_item_list l;
    before();
    expect_ok(sa_get_project_by_name(c, "Demo Vector", &p));
    emu_fault(&E, "{\"method\":\"POST\",\"path\":\"/api/v1/items/search\",\"status\":502,"
                  "\"count\":1}");
    expect_ok(sa_list_items(c, p.id, p.root_folder_id, NULL, 0, &l));
    fail_unless(l.n == 3);
    fail_unless(emu_count(&E, "POST /api/v1/items/search") == 2);
    sa_item_list_clear(&l);
    sa_project_clear(&p);
    sa_client_free(c);
}

static void test_headers(void)
{
    /* the emulator records requests: our headers and team_id are there */
    struct sa_client *c = client(1.0);
    struct sa_user u;
    char *body = NULL;
    before();
    expect_ok(sa_get_user(c, &u));
    sa_user_clear(&u);
    long st = emu_http(&E, "GET", "/_emulator/requests", NULL, &body);
    fail_unless(st == 200);
    fail_unless(strstr(body, "/user/ME") != NULL);
    fail_unless(strstr(body, "team_id=1") != NULL);
    free(body);
    sa_client_free(c);
}

/* The requests recorded under @p prefix, as "METHOD /path" lines, into
 * out (one string, '\n' after each). */
static void sent(const char *prefix, char *out, size_t outlen)
{
    char q[256], *body = NULL;
    snprintf(q, sizeof q, "/_emulator/requests?path=%s", prefix);
    fail_unless(emu_http(&E, "GET", q, NULL, &body) == 200);
    json_t *j = json_loads(body, 0, NULL);
    fail_unless_msg(j != NULL, "requests: %s", body);
    size_t i, at = 0;
    json_t *r;
    out[0] = '\0';
    json_array_foreach(json_object_get(j, "requests"), i, r) {
        int n = snprintf(out + at, outlen - at, "%s %s\n",
                         json_string_value(json_object_get(r, "method")),
                         json_string_value(json_object_get(r, "path")));
        if (n > 0 && (size_t)n < outlen - at)
            at += (size_t)n;
    }
    json_decref(j);
    free(body);
}

static int folders_named(struct sa_client *c, long long pid, const char *name)
{
    struct sa_folder_list l;
    int n = 0;
    expect_ok(sa_list_folders(c, pid, &l));
    for (size_t i = 0; i < l.n; i++)
        n += !strcmp(l.v[i].name, name);
    sa_folder_list_clear(&l);
    return n;
}

static void test_create_folder_answer_lost(void)
{
    /* the folder is created, its answer cut short: not sent again, looked
     * up, found: SA_OK with it */
    struct sa_client *c = client(1.0);
    struct sa_folder f;
    char got[1024];
    before();
    emu_fault(&E, "{\"method\":\"POST\",\"path\":\"/folder\",\"drop\":true}");
    expect_ok(sa_create_folder(c, 101, "lost answer", &f));
    fail_unless(f.id > 0 && f.project_id == 101 && !strcmp(f.name, "lost answer"));
    sent("/folder", got, sizeof got);
    fail_unless_msg(!strcmp(got, "POST /folder\nGET /folder/getFolderByName\n"), "sent:\n%s",
                    got);
    fail_unless(folders_named(c, 101, "lost answer") == 1);
    fail_unless(L.took_effect == 1);
    struct sa_stats s;
    sa_client_stats(c, &s);
    fail_unless(s.errors == 0);
    sa_folder_clear(&f);

    /* and a duplicate is still EXISTS, with no look-up */
    before();
    expect_err(SA_ERR_EXISTS, sa_create_folder(c, 101, "lost answer", &f));
    sent("/folder", got, sizeof got);
    fail_unless_msg(!strcmp(got, "POST /folder\n"), "sent:\n%s", got);
    sa_client_free(c);
}

static void test_create_folder_503(void)
{
    /* a 503 might have been processed: looked up, not there, sent again */
    struct sa_client *c = client(1.0);
    struct sa_folder f;
    char got[1024];
    before();
    emu_fault(&E, "{\"method\":\"POST\",\"path\":\"/folder\",\"status\":503}");
    expect_ok(sa_create_folder(c, 101, "after 503", &f));
    fail_unless(!strcmp(f.name, "after 503"));
    sent("/folder", got, sizeof got);
    fail_unless_msg(!strcmp(got, "POST /folder\nGET /folder/getFolderByName\nPOST /folder\n"),
                    "sent:\n%s", got);
    fail_unless(folders_named(c, 101, "after 503") == 1);
    fail_unless(L.took_effect == 0);
    sa_folder_clear(&f);

    /* a 500 is not retried; the look-up finds nothing: SERVER, one POST */
    before();
    emu_fault(&E, "{\"method\":\"POST\",\"path\":\"/folder\",\"status\":500}");
    expect_err(SA_ERR_SERVER, sa_create_folder(c, 101, "after 500", &f));
    fail_unless_msg(strstr(sa_last_error(), "HTTP 500") != NULL, "detail: %s", sa_last_error());
    sent("/folder", got, sizeof got);
    fail_unless_msg(!strcmp(got, "POST /folder\nGET /folder/getFolderByName\n"), "sent:\n%s",
                    got);
    fail_unless(folders_named(c, 101, "after 500") == 0);
    sa_client_free(c);
}

static void test_create_folder_lookup_fails(void)
{
    /* the answer is lost and the look-up cannot tell (404 on the route is
     * NOTFOUND, so make it 400): no blind re-send, the create's own error */
    struct sa_client *c = client(1.0);
    struct sa_folder f;
    char got[1024];
    before();
    emu_fault(&E, "{\"method\":\"POST\",\"path\":\"/folder\",\"drop\":true}");
    emu_fault(&E, "{\"method\":\"GET\",\"path\":\"/folder/getFolderByName\",\"status\":400}");
    enum sa_err e = sa_create_folder(c, 101, "unknown fate", &f);
    fail_unless_msg(e == SA_ERR_NET, "got %s (%s)", sa_strerror(e), sa_last_error());
    fail_unless_msg(strstr(sa_last_error(), "unknown") != NULL, "detail: %s", sa_last_error());
    sent("/folder", got, sizeof got);
    fail_unless_msg(!strcmp(got, "POST /folder\nGET /folder/getFolderByName\n"), "sent:\n%s",
                    got);
    fail_unless(folders_named(c, 101, "unknown fate") == 1); /* it was created */
    sa_client_free(c);
}

static void test_idempotent_requests_resent(void)
{
    /* rename, status bulk PUT and folder delete are re-sent after a lost
     * answer and end right */
    struct sa_client *c = client(1.0);
    struct sa_folder f, g;
    before();
    expect_ok(sa_create_folder(c, 101, "to rename", &f));
    emu_fault(&E, "{\"method\":\"PUT\",\"path\":\"/folder/\",\"drop\":true}");
    expect_ok(sa_rename_folder(c, 101, f.id, "renamed twice"));
    fail_unless(emu_count(&E, "PUT /folder/*") == 2);
    expect_ok(sa_get_folder_by_name(c, 101, "renamed twice", &g));
    fail_unless(g.id == f.id);
    sa_folder_clear(&g);

    const char *names[] = {"street_001.jpg"};
    struct sa_project p;
    expect_ok(sa_get_project(c, 101, &p));
    emu_fault(&E, "{\"method\":\"PUT\",\"path\":\"/image/updateAnnotationStatusBulk\","
                  "\"drop\":true}");
    expect_ok(sa_set_annotation_statuses(c, 101, p.root_folder_id, 5, names, 1));
    fail_unless(emu_count(&E, "PUT /image/updateAnnotationStatusBulk") == 2);
    sa_project_clear(&p);

    long long ids[] = {f.id};
    emu_fault(&E, "{\"method\":\"PUT\",\"path\":\"/image/delete/images\",\"drop\":true}");
    expect_ok(sa_delete_folders(c, 101, ids, 1));
    fail_unless(emu_count(&E, "PUT /image/delete/images") == 2);
    expect_err(SA_ERR_NOTFOUND, sa_get_folder_by_name(c, 101, "renamed twice", &g));
    sa_folder_clear(&f);
    sa_client_free(c);
}

int main(void)
{
    const char *args[] = {"--seed", "demo", NULL};
    emu_start(&E, args);
    t_run("503_503_200", test_503_503_200);
    t_run("retry_after", test_retry_after);
    t_run("429", test_429);
    t_run("404_not_retried", test_404_not_retried);
    t_run("status_mapping", test_status_mapping);
    t_run("deadline", test_deadline);
    t_run("op_deadline", test_op_deadline);
    t_run("body_cap", test_body_cap);
    t_run("drop", test_drop);
    t_run("post_retried", test_post_retried);
    t_run("headers", test_headers);
    t_run("create_folder_answer_lost", test_create_folder_answer_lost);
    t_run("create_folder_503", test_create_folder_503);
    t_run("create_folder_lookup_fails", test_create_folder_lookup_fails);
    t_run("idempotent_requests_resent", test_idempotent_requests_resent);
    emu_stop(&E);
    return t_done();
}
