/* Every non-annotation call of client.h against a live sa-emulator
 * (--seed demo, --seed-items Bench/f=4500): users, projects, folders,
 * items with pagination, workflows, statuses, bad token, 8 threads. */
#include <pthread.h>
#include <string.h>

#include <jansson.h>

#include "harness.h"

static struct emu E;
static struct sa_client *C;

static void test_user_team(void)
{
    struct sa_user u;
    struct sa_team t;
    expect_ok(sa_get_user(C, &u));
    fail_unless(u.email && strchr(u.email, '@'));
    fail_unless(u.id != NULL);
    sa_user_clear(&u);
    sa_user_clear(&u); /* twice is fine */
    expect_ok(sa_get_team(C, &t));
    fail_unless(t.id == 1);
    fail_unless(t.name != NULL);
    sa_team_clear(&t);
    expect_ok(sa_get_user(C, NULL));
}

static void test_bad_token(void)
{
    struct sa_client *bad = emu_client(&E, "wrong-token=1", 1.0, 0);
    struct sa_user u;
    emu_reset_stats(&E);
    expect_err(SA_ERR_DENIED, sa_get_user(bad, &u));
    fail_unless(u.id == NULL);
    fail_unless(emu_total(&E) == 1); /* 401 is not retried */
    fail_unless(strstr(sa_last_error(), "wrong-token") == NULL);
    fail_unless(strstr(sa_last_error(), "401") || strstr(sa_last_error(), "403"));
    struct sa_project_list l;
    expect_err(SA_ERR_DENIED, sa_list_projects(bad, NULL, &l));
    fail_unless(l.n == 0 && l.v == NULL);
    sa_client_free(bad);
}

static void test_projects(void)
{
    struct sa_project_list l;
    struct sa_project p, q;
    expect_ok(sa_list_projects(C, NULL, &l));
    fail_unless(l.n >= 9); /* 8 demo projects + Bench */
    int found = 0;
    for (size_t i = 0; i < l.n; i++)
        if (!strcmp(l.v[i].name, "Demo Vector")) {
            found = 1;
            fail_unless(l.v[i].type == SA_PT_VECTOR);
            fail_unless(l.v[i].root_folder_id > 0);
            fail_unless(l.v[i].team_id == 1);
        }
    fail_unless(found);
    sa_project_list_clear(&l);

    expect_ok(sa_list_projects(C, "demo v", &l)); /* server-side search */
    fail_unless(l.n >= 2);                        /* Demo Vector, Demo Video */
    sa_project_list_clear(&l);

    expect_ok(sa_get_project_by_name(C, "Demo Video", &p));
    fail_unless(!strcmp(p.name, "Demo Video") && p.type == SA_PT_VIDEO);
    expect_ok(sa_get_project(C, p.id, &q));
    fail_unless(q.id == p.id && !strcmp(q.name, p.name) && q.workflow_id == p.workflow_id);
    fail_unless(q.root_folder_id == p.root_folder_id);
    fail_unless(q.created_at && q.updated_at);
    sa_project_clear(&p);
    sa_project_clear(&q);

    expect_err(SA_ERR_NOTFOUND, sa_get_project_by_name(C, "Demo", &p)); /* exact only */
    expect_err(SA_ERR_NOTFOUND, sa_get_project_by_name(C, "No Such Project", &p));
    fail_unless(p.name == NULL);
    emu_reset_stats(&E);
    expect_err(SA_ERR_NOTFOUND, sa_get_project(C, 987654, &p));
    fail_unless(emu_total(&E) == 1); /* a 404 is never retried */
}

static void test_folders(void)
{
    struct sa_project p;
    struct sa_folder_list fl;
    struct sa_folder f, g;
    expect_ok(sa_get_project_by_name(C, "Demo Vector", &p));
    expect_ok(sa_list_folders(C, p.id, &fl));
    int root = 0, train = 0, val = 0;
    for (size_t i = 0; i < fl.n; i++) {
        if (fl.v[i].is_root) {
            root++;
            fail_unless(!strcmp(fl.v[i].name, "root"));
            fail_unless(fl.v[i].id == p.root_folder_id);
        }
        train += !strcmp(fl.v[i].name, "train");
        val += !strcmp(fl.v[i].name, "val");
        fail_unless(fl.v[i].project_id == p.id);
    }
    fail_unless(root == 1 && train == 1 && val == 1);
    sa_folder_list_clear(&fl);

    expect_ok(sa_get_folder_by_name(C, p.id, "root", &f));
    fail_unless(f.is_root && f.id == p.root_folder_id);
    sa_folder_clear(&f);
    expect_ok(sa_get_folder_by_name(C, p.id, "train", &f));
    fail_unless(!f.is_root && !strcmp(f.name, "train"));
    sa_folder_clear(&f);
    emu_reset_stats(&E);
    expect_err(SA_ERR_NOTFOUND, sa_get_folder_by_name(C, p.id, "nope", &f));
    fail_unless(emu_total(&E) == 1);
    fail_unless(f.name == NULL);

    /* create, duplicate, rename, delete */
    expect_ok(sa_create_folder(C, p.id, "new folder ü", &f));
    fail_unless(f.id > 0 && !strcmp(f.name, "new folder ü"));
    expect_err(SA_ERR_EXISTS, sa_create_folder(C, p.id, "new folder ü", &g));
    expect_ok(sa_rename_folder(C, p.id, f.id, "renamed"));
    expect_ok(sa_get_folder_by_name(C, p.id, "renamed", &g));
    fail_unless(g.id == f.id);
    sa_folder_clear(&g);
    expect_err(SA_ERR_NOTFOUND, sa_get_folder_by_name(C, p.id, "new folder ü", &g));
    long long ids[1] = {f.id};
    expect_ok(sa_delete_folders(C, p.id, ids, 1));
    expect_err(SA_ERR_NOTFOUND, sa_get_folder_by_name(C, p.id, "renamed", &g));
    sa_folder_clear(&f);
    sa_project_clear(&p);
}

static void test_items(void)
{
    struct sa_project p;
    struct sa_folder f;
    struct sa_item_list l;
    struct sa_item it;
    expect_ok(sa_get_project_by_name(C, "Demo Vector", &p));
    expect_ok(sa_get_folder_by_name(C, p.id, "train", &f));
    expect_ok(sa_list_items(C, p.id, f.id, NULL, 0, &l));
    fail_unless(l.n == 27);
    for (size_t i = 0; i < l.n; i++) {
        fail_unless(l.v[i].folder_id == f.id);
        fail_unless(l.v[i].updated_ms > 1500000000000LL);
        fail_unless(l.v[i].annotation_status >= 1);
    }
    sa_item_list_clear(&l);

    const char *names[] = {"東京.jpg", "a&b.jpg", "1+1.jpg", "50%_off.jpg", "missing.jpg",
                           "emoji_🚗.jpg"};
    expect_ok(sa_list_items(C, p.id, f.id, names, 6, &l));
    fail_unless_msg(l.n == 5, "got %zu items", l.n);
    long long id0 = 0;
    for (size_t i = 0; i < l.n; i++) {
        fail_unless(strcmp(l.v[i].name, "missing.jpg"));
        if (!strcmp(l.v[i].name, "東京.jpg"))
            id0 = l.v[i].id;
    }
    fail_unless(id0 > 0);
    sa_item_list_clear(&l);

    expect_ok(sa_get_item(C, p.id, id0, &it));
    fail_unless(it.id == id0 && !strcmp(it.name, "東京.jpg") && it.folder_id == f.id);
    fail_unless(it.updated_ms > 0);
    sa_item_clear(&it);
    expect_err(SA_ERR_NOTFOUND, sa_get_item(C, p.id, 99999999, &it));

    /* zero names: nothing asked, nothing returned */
    expect_ok(sa_list_items(C, p.id, f.id, names, 0, &l));
    fail_unless(l.n == 0);
    sa_item_list_clear(&l);
    sa_folder_clear(&f);
    sa_project_clear(&p);
}

static void test_pagination(void)
{
    struct sa_project p;
    struct sa_folder f;
    struct sa_item_list l;
    expect_ok(sa_get_project_by_name(C, "Bench", &p));
    expect_ok(sa_get_folder_by_name(C, p.id, "f", &f));
    emu_reset_stats(&E);
    expect_ok(sa_list_items(C, p.id, f.id, NULL, 0, &l));
    fail_unless_msg(l.n == 4500, "got %zu", l.n);
    fail_unless_msg(emu_count(&E, "POST /api/v1/items/search") == 3, "%lld searches",
                    emu_count(&E, "POST /api/v1/items/search"));
    /* every id once */
    for (size_t i = 1; i < l.n; i++)
        fail_unless(l.v[i].id != l.v[i - 1].id);

    /* 1500 names -> 2 requests of 1000 and 500 */
    const char **names = malloc(1500 * sizeof *names);
    for (size_t i = 0; i < 1500; i++)
        names[i] = l.v[i * 3].name;
    struct sa_item_list m;
    emu_reset_stats(&E);
    expect_ok(sa_list_items(C, p.id, f.id, names, 1500, &m));
    fail_unless(m.n == 1500);
    fail_unless(emu_count(&E, "POST /api/v1/items/search") == 2);
    free(names);
    sa_item_list_clear(&m);
    sa_item_list_clear(&l);
    sa_folder_clear(&f);
    sa_project_clear(&p);
}

static void test_workflow_statuses(void)
{
    struct sa_project p, cp;
    struct sa_workflow w, w2;
    expect_ok(sa_get_project_by_name(C, "Demo Vector", &p));
    emu_reset_stats(&E);
    expect_ok(sa_get_workflow(C, p.id, p.workflow_id, &w));
    long long reqs = emu_total(&E);
    fail_unless(reqs == 2);
    fail_unless(w.is_system);
    fail_unless(sa_workflow_status_value(&w, "InProgress") == 2);
    fail_unless(sa_workflow_status_value(&w, "Completed") == 5);
    fail_unless(sa_workflow_status_value(&w, "inprogress") == -1);
    fail_unless(!strcmp(sa_workflow_status_name(&w, 1), "NotStarted"));
    /* cached for 5 s */
    expect_ok(sa_get_workflow(C, p.id, p.workflow_id, &w2));
    fail_unless(emu_total(&E) == reqs);
    fail_unless(w2.n_statuses == w.n_statuses && w2.is_system);
    sa_workflow_clear(&w2);

    expect_ok(sa_get_project_by_name(C, "Demo Custom Workflow", &cp));
    expect_ok(sa_get_workflow(C, cp.id, cp.workflow_id, &w2));
    fail_unless(!w2.is_system);
    fail_unless(sa_workflow_status_value(&w2, "Review") == 7);

    /* set statuses on val/, then read them back */
    struct sa_folder f;
    struct sa_item_list l;
    expect_ok(sa_get_folder_by_name(C, p.id, "val", &f));
    const char *names[] = {"val_001.jpg", "val_002.jpg"};
    expect_ok(sa_set_annotation_statuses(C, p.id, f.id, 6, names, 2));
    expect_ok(sa_list_items(C, p.id, f.id, names, 2, &l));
    fail_unless(l.n == 2);
    for (size_t i = 0; i < l.n; i++)
        fail_unless(l.v[i].annotation_status == 6);
    sa_item_list_clear(&l);
    expect_err(SA_ERR_INVAL, sa_set_annotation_statuses(C, p.id, f.id, 4242, names, 2));

    /* 1200 names -> 3 requests of 500 */
    struct sa_project bp;
    struct sa_folder bf;
    expect_ok(sa_get_project_by_name(C, "Bench", &bp));
    expect_ok(sa_get_folder_by_name(C, bp.id, "f", &bf));
    expect_ok(sa_list_items(C, bp.id, bf.id, NULL, 0, &l));
    const char **many = malloc(1200 * sizeof *many);
    for (size_t i = 0; i < 1200; i++)
        many[i] = l.v[i].name;
    emu_reset_stats(&E);
    expect_ok(sa_set_annotation_statuses(C, bp.id, bf.id, 5, many, 1200));
    fail_unless(emu_count(&E, "PUT /image/updateAnnotationStatusBulk") == 3);
    free(many);
    sa_item_list_clear(&l);
    sa_folder_clear(&bf);
    sa_project_clear(&bp);

    sa_folder_clear(&f);
    sa_workflow_clear(&w);
    sa_workflow_clear(&w2);
    sa_project_clear(&cp);
    sa_project_clear(&p);
}

struct thr {
    int ok;
    char err[256];
};

static void *worker(void *arg)
{
    struct thr *t = arg;
    t->ok = 1;
    for (int k = 0; k < 10 && t->ok; k++) {
        struct sa_project p;
        struct sa_folder f;
        struct sa_item_list l;
        if (sa_get_project_by_name(C, "Demo Vector", &p) != SA_OK ||
            sa_get_folder_by_name(C, p.id, "train", &f) != SA_OK ||
            sa_list_items(C, p.id, f.id, NULL, 0, &l) != SA_OK || l.n != 27) {
            t->ok = 0;
            snprintf(t->err, sizeof t->err, "%s", sa_last_error());
        }
        struct sa_folder g;
        if (t->ok && sa_get_folder_by_name(C, p.id, "nope", &g) != SA_ERR_NOTFOUND) {
            t->ok = 0;
            snprintf(t->err, sizeof t->err, "missing folder not NOTFOUND");
        }
        if (t->ok && !strstr(sa_last_error(), "getFolderByName")) { /* thread-local detail */
            t->ok = 0;
            snprintf(t->err, sizeof t->err, "detail is \"%s\"", sa_last_error());
        }
        sa_item_list_clear(&l);
        sa_folder_clear(&f);
        sa_project_clear(&p);
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t th[8];
    struct thr t[8];
    struct sa_stats s0, s1;
    sa_client_stats(C, &s0);
    for (int i = 0; i < 8; i++)
        fail_unless(pthread_create(&th[i], NULL, worker, &t[i]) == 0);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++)
        fail_unless_msg(t[i].ok, "thread %d: %s", i, t[i].err);
    sa_client_stats(C, &s1);
    /* 8 threads × 10 rounds × (1 project + 2 folder + 1 list) requests */
    fail_unless(s1.requests[SA_REQ_PROJECT] - s0.requests[SA_REQ_PROJECT] == 80);
    fail_unless(s1.requests[SA_REQ_FOLDER] - s0.requests[SA_REQ_FOLDER] == 160);
    fail_unless(s1.requests[SA_REQ_LIST] - s0.requests[SA_REQ_LIST] == 80);
    fail_unless(s1.errors - s0.errors == 80);
    fail_unless(s1.bytes_down > s0.bytes_down);
}

static void test_classes(void)
{
    struct sa_project p;
    char *js = (char *)1;
    size_t len = 1;
    expect_ok(sa_get_project_by_name(C, "Demo Vector", &p));
    emu_reset_stats(&E);
    expect_ok(sa_list_classes(C, p.id, &js, &len));
    fail_unless(emu_count(&E, "GET /classes") == 1);
    fail_unless(js && len == strlen(js));
    json_error_t je;
    json_t *a = json_loads(js, 0, &je);
    fail_unless_msg(json_is_array(a), "not an array: %s", js);
    fail_unless(json_array_size(a) == 2);
    static const char *const names[] = {"car", "person"};
    for (size_t i = 0; i < 2; i++) {
        json_t *cl = json_array_get(a, i);
        fail_unless(json_integer_value(json_object_get(cl, "id")) ==
                    p.id * 100 + (long long)i + 1);
        fail_unless(!strcmp(json_string_value(json_object_get(cl, "name")), names[i]));
        fail_unless(json_integer_value(json_object_get(cl, "project_id")) == p.id);
        /* every field kept, nested ones too */
        json_t *g = json_array_get(json_object_get(cl, "attribute_groups"), 0);
        fail_unless(json_is_array(json_object_get(g, "attributes")));
        fail_unless(json_is_false(json_object_get(g, "is_multiselect")));
    }
    /* key order as the API sent it */
    fail_unless(!strncmp(js, "[{\"id\":", 7));
    json_decref(a);
    free(js);
    sa_project_clear(&p);

    expect_err(SA_ERR_NOTFOUND, sa_list_classes(C, 987654, &js, &len));
    fail_unless(js == NULL && len == 0);
}

static void test_invalid_utf8_names(void)
{
    /* each call that takes a name: INVAL, a detail saying so, nothing sent
     * (jansson refuses such strings; before, that read "out of memory") */
    static const char *const bad[] = {
        "bad\xff",          /* not a UTF-8 byte */
        "a\xc3",            /* truncated sequence */
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong '/', 3 bytes */
        "\xed\xa0\x80",     /* a UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\x80x",            /* a lone continuation byte */
    };
    struct sa_project p, q;
    struct sa_folder f;
    struct sa_item_list il;
    struct sa_project_list pl;
    expect_ok(sa_get_project_by_name(C, "Demo Vector", &p));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *names[] = {"street_001.jpg", bad[i]};
        emu_reset_stats(&E);
        expect_err(SA_ERR_INVAL, sa_create_folder(C, p.id, bad[i], &f));
        fail_unless_msg(strstr(sa_last_error(), "not valid UTF-8") != NULL, "detail: %s",
                        sa_last_error());
        fail_unless(f.name == NULL);
        expect_err(SA_ERR_INVAL, sa_rename_folder(C, p.id, p.root_folder_id + 1, bad[i]));
        fail_unless(strstr(sa_last_error(), "UTF-8") != NULL);
        expect_err(SA_ERR_INVAL, sa_get_folder_by_name(C, p.id, bad[i], &f));
        expect_err(SA_ERR_INVAL, sa_get_project_by_name(C, bad[i], &q));
        fail_unless(q.name == NULL);
        expect_err(SA_ERR_INVAL, sa_list_projects(C, bad[i], &pl));
        expect_err(SA_ERR_INVAL, sa_list_items(C, p.id, p.root_folder_id, names, 2, &il));
        fail_unless_msg(strstr(sa_last_error(), "#2") != NULL, "detail: %s", sa_last_error());
        fail_unless(il.n == 0 && il.v == NULL);
        expect_err(SA_ERR_INVAL,
                   sa_set_annotation_statuses(C, p.id, p.root_folder_id, 2, names, 2));
        fail_unless(strstr(sa_last_error(), "UTF-8") != NULL);
        expect_err(SA_ERR_INVAL, sa_delete_annotations(C, p.id, p.root_folder_id, names, 2));
        fail_unless_msg(emu_total(&E) == 0, "%s: %lld requests sent", bad[i], emu_total(&E));
    }
    /* valid UTF-8 of every length still goes through */
    expect_ok(sa_create_folder(C, p.id, "a\xc3\xa9\xe6\x9d\xb1\xf0\x9f\x9a\x97", &f));
    fail_unless(!strcmp(f.name, "a\xc3\xa9\xe6\x9d\xb1\xf0\x9f\x9a\x97"));
    long long ids[1] = {f.id};
    expect_ok(sa_delete_folders(C, p.id, ids, 1));
    sa_folder_clear(&f);
    sa_project_clear(&p);
}

int main(void)
{
    const char *args[] = {"--seed", "demo", "--seed-items", "Bench/f=4500", NULL};
    emu_start(&E, args);
    C = emu_client(&E, NULL, 1.0, 0);
    t_run("user_team", test_user_team);
    t_run("bad_token", test_bad_token);
    t_run("projects", test_projects);
    t_run("folders", test_folders);
    t_run("items", test_items);
    t_run("pagination", test_pagination);
    t_run("workflow_statuses", test_workflow_statuses);
    t_run("threads", test_threads);
    t_run("classes", test_classes);
    t_run("invalid_utf8_names", test_invalid_utf8_names);
    sa_client_free(C);
    emu_stop(&E);
    return t_done();
}
