/* libsaclient calls over the main API, item service and work-management
 * (api.md §4–§8, §13): users, projects, folders, items, workflows, statuses,
 * annotation delete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_i.h"

/* ------------------------------------------------------------------ */
/* Entities                                                            */

void sa_user_clear(struct sa_user *u)
{
    if (!u)
        return;
    free(u->id);
    free(u->email);
    memset(u, 0, sizeof *u);
}

void sa_team_clear(struct sa_team *t)
{
    if (!t)
        return;
    free(t->name);
    memset(t, 0, sizeof *t);
}

void sa_project_clear(struct sa_project *p)
{
    if (!p)
        return;
    free(p->name);
    free(p->created_at);
    free(p->updated_at);
    memset(p, 0, sizeof *p);
}

void sa_folder_clear(struct sa_folder *f)
{
    if (!f)
        return;
    free(f->name);
    free(f->created_at);
    free(f->updated_at);
    memset(f, 0, sizeof *f);
}

void sa_item_clear(struct sa_item *i)
{
    if (!i)
        return;
    free(i->name);
    free(i->created_at);
    free(i->updated_at);
    memset(i, 0, sizeof *i);
}

void sa_project_list_clear(struct sa_project_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        sa_project_clear(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

void sa_folder_list_clear(struct sa_folder_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        sa_folder_clear(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

void sa_item_list_clear(struct sa_item_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        sa_item_clear(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

void sa_workflow_clear(struct sa_workflow *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_statuses; i++)
        free(w->statuses[i].name);
    free(w->statuses);
    memset(w, 0, sizeof *w);
}

const char *sa_project_type_name(int type)
{
    static const char *const names[] = {NULL,    "Vector", "Pixel",      "Video",     "Document",
                                        "Tiled", "Other",  "PointCloud", "Multimodal"};
    if (type >= 1 && type <= 8)
        return names[type];
    return "Unsupported";
}

int64_t sa_parse_time_ms(const char *iso)
{
    int Y, M, D, h, m, s, n = 0;
    if (!iso)
        return 0;
    if (sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &s, &n) != 6 || n != 19)
        return 0;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || s > 60)
        return 0;
    const char *p = iso + n;
    int64_t ms = 0;
    if (*p == '.') {
        int digits = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (!digits)
            return 0;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    if (*p != 'Z' || p[1])
        return 0;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = s;
    time_t t = timegm(&tm);
    return (int64_t)t * 1000 + ms;
}

static char *jstr2(json_t *o, const char *a, const char *b)
{
    char *s = sa_jstrdup(o, a);
    return s ? s : sa_jstrdup(o, b);
}

static void parse_project(json_t *o, struct sa_project *p)
{
    p->id = sa_jint(o, "id");
    p->team_id = sa_jint(o, "team_id");
    p->name = sa_jstrdup(o, "name");
    p->type = (int)sa_jint(o, "type");
    p->status = (int)sa_jint(o, "status");
    p->root_folder_id = sa_jint(o, "folder_id");
    p->workflow_id = sa_jint(o, "workflow_id");
    p->upload_state = (int)sa_jint(o, "upload_state");
    p->created_at = jstr2(o, "createdAt", "created_at");
    p->updated_at = jstr2(o, "updatedAt", "updated_at");
}

static void parse_folder(json_t *o, struct sa_folder *f)
{
    f->id = sa_jint(o, "id");
    f->project_id = sa_jint(o, "project_id");
    f->name = sa_jstrdup(o, "name");
    f->is_root = json_is_true(json_object_get(o, "is_root")) || sa_jint(o, "is_root") != 0;
    f->status = (int)sa_jint(o, "status");
    f->created_at = jstr2(o, "createdAt", "created_at");
    f->updated_at = jstr2(o, "updatedAt", "updated_at");
}

static void parse_item(json_t *o, struct sa_item *it)
{
    it->id = sa_jint(o, "id");
    it->folder_id = sa_jint(o, "folder_id");
    it->name = sa_jstrdup(o, "name");
    it->annotation_status = (int)sa_jint(o, "annotation_status");
    it->created_at = jstr2(o, "createdAt", "created_at");
    it->updated_at = jstr2(o, "updatedAt", "updated_at");
    it->updated_ms = sa_parse_time_ms(it->updated_at);
}

static enum sa_err need_object(json_t *j, const char *what)
{
    if (!json_is_object(j)) {
        sa_set_error("%s: response is not a JSON object", what);
        return SA_ERR_PROTO;
    }
    return SA_OK;
}

/* A user-supplied name must be UTF-8: jansson cannot put anything else into
 * a JSON string (json_pack fails, which looked like ENOMEM), and no platform
 * name can be anything else. SA_ERR_INVAL with the detail "<what>: ..." */
static enum sa_err name_ok(const char *what, const char *name)
{
    if (name && !sa_utf8_ok(name)) {
        sa_set_error("%s: the name is not valid UTF-8", what);
        return SA_ERR_INVAL;
    }
    return SA_OK;
}

static enum sa_err names_ok(const char *what, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!names[i] || !sa_utf8_ok(names[i])) {
            sa_set_error("%s: item name #%zu is %s", what, i + 1,
                         names[i] ? "not valid UTF-8" : "missing");
            return SA_ERR_INVAL;
        }
    return SA_OK;
}

/* ------------------------------------------------------------------ */
/* §4 user, team                                                       */

enum sa_err sa_get_user(struct sa_client *c, struct sa_user *out)
{
    SA_CALL;
    json_t *j = NULL;
    struct sa_req rq = {.method = "GET", .svc = SA_SVC_MAIN, .path = "user/ME", .kind = SA_REQ_AUTH};
    sa_clear_error();
    if (out)
        memset(out, 0, sizeof *out);
    enum sa_err e = sa_http_json(c, &rq, &j);
    if (e == SA_OK)
        e = need_object(j, "GET user/ME");
    if (e == SA_OK && out) {
        out->id = sa_jstrdup(j, "id");
        out->email = sa_jstrdup(j, "email");
    }
    json_decref(j);
    return sa_fail(c, e);
}

enum sa_err sa_get_team(struct sa_client *c, struct sa_team *out)
{
    SA_CALL;
    json_t *j = NULL;
    char path[64];
    snprintf(path, sizeof path, "api/v1/team/%lld", c->team_id);
    struct sa_req rq = {.method = "GET", .svc = SA_SVC_MAIN, .path = path,
                        .query = "include_users=False", .kind = SA_REQ_AUTH};
    sa_clear_error();
    if (out)
        memset(out, 0, sizeof *out);
    enum sa_err e = sa_http_json(c, &rq, &j);
    if (e == SA_OK)
        e = need_object(j, "GET team");
    if (e == SA_OK && out) {
        out->id = sa_jint(j, "id");
        out->name = sa_jstrdup(j, "name");
    }
    json_decref(j);
    return sa_fail(c, e);
}

/* ------------------------------------------------------------------ */
/* Style A pagination (§3.2)                                           */

typedef enum sa_err (*row_fn)(void *ud, json_t *row);

/* One page @p j (consumed) of a paginated listing of up to 2000 rows: hands
 * each row of its "data" array to @p fn, advances *offset by the rows and
 * sets *last when no page follows. @p method and @p path name the call in
 * the error message. */
static enum sa_err take_page(json_t *j, const char *method, const char *path, row_fn fn,
                             void *ud, long long *offset, int *last)
{
    json_t *data = json_object_get(j, "data");
    if (!json_is_array(data)) {
        json_decref(j);
        sa_set_error("%s %s: no \"data\" array in the response", method, path);
        return SA_ERR_PROTO;
    }
    size_t n = json_array_size(data);
    long long total = sa_jint(j, "total");
    if (!total)
        total = sa_jint(j, "count");
    for (size_t i = 0; i < n; i++) {
        enum sa_err e = fn(ud, json_array_get(data, i));
        if (e != SA_OK) {
            json_decref(j);
            return e;
        }
    }
    json_decref(j);
    *offset += (long long)n;
    *last = n == 0 || n < 2000 || *offset >= total;
    return SA_OK;
}

/* GET path?query&offset=n with pages of up to 2000 rows. */
static enum sa_err paginate_a(struct sa_client *c, enum sa_svc svc, const char *path,
                              const char *query, enum sa_req_kind kind, row_fn fn, void *ud)
{
    long long offset = 0;
    double deadline = sa_call_deadline(c);
    for (;;) {
        struct sa_buf q = {0};
        json_t *j = NULL;
        if (query && *query)
            sa_buf_addf(&q, "%s&", query);
        sa_buf_addf(&q, "offset=%lld", offset);
        if (q.oom) {
            sa_buf_free(&q);
            return SA_ERR_NOMEM;
        }
        struct sa_req rq = {.method = "GET", .svc = svc, .path = path, .query = q.p,
                            .kind = kind, .deadline = deadline};
        enum sa_err e = sa_http_json(c, &rq, &j);
        sa_buf_free(&q);
        if (e != SA_OK)
            return e;
        int last = 0;
        e = take_page(j, "GET", path, fn, ud, &offset, &last);
        if (e != SA_OK || last)
            return e;
    }
}

/* Growable arrays of entities */
static int grow(void **v, size_t n, size_t elem)
{
    /* grow by doubling at powers of two */
    if (n && (n & (n - 1)))
        return 0;
    size_t cap = n ? n * 2 : 16;
    void *p = realloc(*v, cap * elem);
    if (!p)
        return -1;
    *v = p;
    return 0;
}

/* Room for row @p n of an array *v of @p elem-byte rows (16 at first, then
 * doubling); returns the new row zeroed, or NULL when out of memory. */
static void *next_row(void **v, size_t n, size_t elem)
{
    if (n >= 16 && grow(v, n, elem))
        return NULL;
    if (n < 16 && !*v && !(*v = calloc(16, elem)))
        return NULL;
    void *row = (char *)*v + n * elem;
    memset(row, 0, elem);
    return row;
}

static enum sa_err add_project(void *ud, json_t *row)
{
    struct sa_project_list *l = ud;
    struct sa_project *p = next_row((void **)&l->v, l->n, sizeof *l->v);
    if (!p)
        return SA_ERR_NOMEM;
    l->n++;
    parse_project(row, p);
    return SA_OK;
}

static enum sa_err add_folder(void *ud, json_t *row)
{
    struct sa_folder_list *l = ud;
    struct sa_folder *f = next_row((void **)&l->v, l->n, sizeof *l->v);
    if (!f)
        return SA_ERR_NOMEM;
    l->n++;
    parse_folder(row, f);
    return SA_OK;
}

static enum sa_err add_item(void *ud, json_t *row)
{
    struct sa_item_list *l = ud;
    struct sa_item *it = next_row((void **)&l->v, l->n, sizeof *l->v);
    if (!it)
        return SA_ERR_NOMEM;
    l->n++;
    parse_item(row, it);
    return SA_OK;
}

/* ------------------------------------------------------------------ */
/* §5 projects                                                         */

enum sa_err sa_list_projects(struct sa_client *c, const char *name_filter,
                             struct sa_project_list *out)
{
    SA_CALL;
    struct sa_buf q = {0};
    sa_clear_error();
    memset(out, 0, sizeof *out);
    if (name_ok("list projects", name_filter) != SA_OK)
        return sa_fail(c, SA_ERR_INVAL);
    if (name_filter) {
        sa_buf_adds(&q, "name=");
        sa_buf_addq(&q, name_filter);
    }
    if (q.oom)
        return sa_fail(c, SA_ERR_NOMEM);
    enum sa_err e = paginate_a(c, SA_SVC_MAIN, "api/v1/projects", q.p, SA_REQ_PROJECT,
                               add_project, out);
    sa_buf_free(&q);
    if (e != SA_OK)
        sa_project_list_clear(out);
    return sa_fail(c, e);
}

enum sa_err sa_get_project_by_name(struct sa_client *c, const char *name, struct sa_project *out)
{
    SA_CALL;
    struct sa_project_list l;
    memset(out, 0, sizeof *out);
    sa_clear_error();
    if (!name || !*name) {
        sa_set_error("empty project name");
        return sa_fail(c, SA_ERR_INVAL);
    }
    if (name_ok("project by name", name) != SA_OK)
        return sa_fail(c, SA_ERR_INVAL);
    enum sa_err e = sa_list_projects(c, name, &l);
    if (e != SA_OK)
        return e; /* already counted */
    e = SA_ERR_NOTFOUND;
    for (size_t i = 0; i < l.n; i++)
        if (l.v[i].name && !strcmp(l.v[i].name, name)) {
            *out = l.v[i];
            memset(&l.v[i], 0, sizeof l.v[i]);
            e = SA_OK;
            break;
        }
    sa_project_list_clear(&l);
    if (e != SA_OK)
        sa_set_error("no project named \"%s\"", name);
    return sa_fail(c, e);
}

enum sa_err sa_get_project(struct sa_client *c, long long project_id, struct sa_project *out)
{
    SA_CALL;
    json_t *j = NULL;
    char path[64];
    sa_clear_error();
    memset(out, 0, sizeof *out);
    snprintf(path, sizeof path, "api/v1/project/%lld", project_id);
    struct sa_req rq = {.method = "GET", .svc = SA_SVC_MAIN, .path = path,
                        .query = "include_users=False", .kind = SA_REQ_PROJECT};
    enum sa_err e = sa_http_json(c, &rq, &j);
    if (e == SA_OK)
        e = need_object(j, "GET project");
    if (e == SA_OK)
        parse_project(j, out);
    json_decref(j);
    return sa_fail(c, e);
}

/* ------------------------------------------------------------------ */
/* §6 folders                                                          */

enum sa_err sa_list_folders(struct sa_client *c, long long project_id, struct sa_folder_list *out)
{
    SA_CALL;
    char q[64];
    sa_clear_error();
    memset(out, 0, sizeof *out);
    snprintf(q, sizeof q, "project_id=%lld", project_id);
    enum sa_err e = paginate_a(c, SA_SVC_MAIN, "folders", q, SA_REQ_FOLDER, add_folder, out);
    if (e != SA_OK)
        sa_folder_list_clear(out);
    return sa_fail(c, e);
}

enum sa_err sa_get_folder_by_name(struct sa_client *c, long long project_id, const char *name,
                                  struct sa_folder *out)
{
    SA_CALL;
    json_t *j = NULL;
    struct sa_buf q = {0};
    sa_clear_error();
    memset(out, 0, sizeof *out);
    if (name_ok("folder by name", name) != SA_OK)
        return sa_fail(c, SA_ERR_INVAL);
    sa_buf_addf(&q, "project_id=%lld&name=", project_id);
    sa_buf_addq(&q, name ? name : "");
    if (q.oom)
        return sa_fail(c, SA_ERR_NOMEM);
    struct sa_req rq = {.method = "GET", .svc = SA_SVC_MAIN, .path = "folder/getFolderByName",
                        .query = q.p, .kind = SA_REQ_FOLDER};
    enum sa_err e = sa_http_json(c, &rq, &j);
    sa_buf_free(&q);
    if (e == SA_OK)
        e = need_object(j, "GET folder/getFolderByName");
    if (e == SA_OK)
        parse_folder(j, out);
    json_decref(j);
    return sa_fail(c, e);
}

/* POST folder is not re-sent blindly (client/README.md, "Re-sending"): its
 * landed() looks the folder up by name. */
struct folder_key {
    long long project_id;
    const char *name;
};

static enum sa_err folder_landed(struct sa_client *c, void *ud, double deadline,
                                 struct sa_resp *resp)
{
    const struct folder_key *k = ud;
    struct sa_buf q = {0};
    sa_buf_addf(&q, "project_id=%lld&name=", k->project_id);
    sa_buf_addq(&q, k->name);
    if (q.oom) {
        sa_buf_free(&q);
        sa_set_error("folder look-up: out of memory");
        return SA_ERR_NOMEM;
    }
    struct sa_req rq = {.method = "GET", .svc = SA_SVC_MAIN, .path = "folder/getFolderByName",
                        .query = q.p, .kind = SA_REQ_FOLDER, .deadline = deadline};
    enum sa_err e = sa_http(c, &rq, resp);
    sa_buf_free(&q);
    if (e != SA_OK)
        return e;
    /* the very name (a look-up that matched another spelling is not ours) */
    json_t *j = json_loadb(resp->body, resp->len, 0, NULL);
    json_t *nm = json_object_get(j, "name");
    int same = json_is_string(nm) && !strcmp(json_string_value(nm), k->name);
    json_decref(j);
    if (!j) {
        sa_set_error("GET folder/getFolderByName: response is not JSON");
        return SA_ERR_PROTO;
    }
    return same ? SA_OK : SA_ERR_NOTFOUND;
}

enum sa_err sa_create_folder(struct sa_client *c, long long project_id, const char *name,
                             struct sa_folder *out)
{
    SA_CALL;
    json_t *j = NULL;
    char q[64];
    sa_clear_error();
    if (out)
        memset(out, 0, sizeof *out);
    if (name_ok("create folder", name) != SA_OK)
        return sa_fail(c, SA_ERR_INVAL);
    snprintf(q, sizeof q, "project_id=%lld", project_id);
    json_t *b = json_pack("{s:s}", "name", name ? name : "");
    char *body = b ? sa_jdump(b) : NULL;
    json_decref(b);
    if (!body) {
        sa_set_error("create folder: out of memory");
        return sa_fail(c, SA_ERR_NOMEM);
    }
    struct folder_key key = {.project_id = project_id, .name = name ? name : ""};
    struct sa_req rq = {.method = "POST", .svc = SA_SVC_MAIN, .path = "folder", .query = q,
                        .body = body, .body_len = strlen(body), .kind = SA_REQ_FOLDER,
                        .landed = folder_landed, .landed_ud = &key};
    enum sa_err e = sa_http_json(c, &rq, &j);
    free(body);
    if (e == SA_OK)
        e = need_object(j, "POST folder");
    if (e == SA_OK && out)
        parse_folder(j, out);
    json_decref(j);
    return sa_fail(c, e);
}

enum sa_err sa_rename_folder(struct sa_client *c, long long project_id, long long folder_id,
                             const char *new_name)
{
    SA_CALL;
    char q[64], path[64];
    struct sa_resp r;
    sa_clear_error();
    snprintf(q, sizeof q, "project_id=%lld", project_id);
    snprintf(path, sizeof path, "folder/%lld", folder_id);
    if (name_ok("rename folder", new_name) != SA_OK)
        return sa_fail(c, SA_ERR_INVAL);
    json_t *b = json_pack("{s:I,s:s,s:I}", "id", (json_int_t)folder_id, "name",
                          new_name ? new_name : "", "project_id", (json_int_t)project_id);
    char *body = b ? sa_jdump(b) : NULL;
    json_decref(b);
    if (!body) {
        sa_set_error("rename folder: out of memory");
        return sa_fail(c, SA_ERR_NOMEM);
    }
    struct sa_req rq = {.method = "PUT", .svc = SA_SVC_MAIN, .path = path, .query = q,
                        .body = body, .body_len = strlen(body), .kind = SA_REQ_FOLDER};
    enum sa_err e = sa_http(c, &rq, &r);
    free(body);
    sa_resp_clear(&r);
    return sa_fail(c, e);
}

enum sa_err sa_delete_folders(struct sa_client *c, long long project_id,
                              const long long *folder_ids, size_t n)
{
    SA_CALL;
    char q[64];
    struct sa_resp r;
    sa_clear_error();
    if (n == 0)
        return SA_OK;
    snprintf(q, sizeof q, "project_id=%lld", project_id);
    json_t *ids = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(ids, json_integer(folder_ids[i]));
    json_t *b = json_pack("{s:o}", "folder_ids", ids);
    char *body = b ? sa_jdump(b) : NULL;
    json_decref(b);
    if (!body)
        return sa_fail(c, SA_ERR_NOMEM);
    struct sa_req rq = {.method = "PUT", .svc = SA_SVC_MAIN, .path = "image/delete/images",
                        .query = q, .body = body, .body_len = strlen(body),
                        .kind = SA_REQ_FOLDER};
    enum sa_err e = sa_http(c, &rq, &r);
    free(body);
    sa_resp_clear(&r);
    return sa_fail(c, e);
}

/* A JSON array of the @p k strings @p names (one chunk of a bulk call;
 * checked by names_ok first), new; NULL when out of memory. */
static json_t *names_array(const char *const *names, size_t k)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < k; i++)
        if (json_array_append_new(arr, json_string(names[i]))) {
            json_decref(arr);
            arr = NULL;
        }
    return arr;
}

/* ------------------------------------------------------------------ */
/* §7 items                                                            */

/* One items/search query (style B, 2000 rows a page) with the condition
 * @p cond (borrowed; NULL = all). */
static enum sa_err search_items(struct sa_client *c, long long project_id, long long folder_id,
                                json_t *cond, double deadline, struct sa_item_list *out)
{
    char ctx[160];
    if (folder_id)
        snprintf(ctx, sizeof ctx, "{\"team_id\":%lld,\"project_id\":%lld,\"folder_id\":%lld}",
                 c->team_id, project_id, folder_id);
    else
        snprintf(ctx, sizeof ctx, "{\"team_id\":%lld,\"project_id\":%lld}", c->team_id,
                 project_id);
    long long offset = 0;
    for (;;) {
        json_t *search = cond ? json_pack("{s:[O]}", "$and", cond) : json_object();
        json_t *b = json_pack("{s:{s:i,s:I,s:o,s:[{s:s,s:[s]}]}}", "query", "limit", 2000,
                              "offset", (json_int_t)offset, "search", search, "join", "field",
                              "metadata", "select", "path");
        char *body = b ? sa_jdump(b) : NULL;
        json_decref(b);
        if (!body)
            return SA_ERR_NOMEM;
        json_t *j = NULL;
        struct sa_req rq = {.method = "POST", .svc = SA_SVC_ITEM, .path = "items/search",
                            .body = body, .body_len = strlen(body), .ctx = ctx,
                            .kind = SA_REQ_LIST, .deadline = deadline};
        enum sa_err e = sa_http_json(c, &rq, &j);
        free(body);
        if (e != SA_OK)
            return e;
        int last = 0;
        e = take_page(j, "POST", "item:items/search", add_item, out, &offset, &last);
        if (e != SA_OK || last)
            return e;
    }
}

enum sa_err sa_list_items(struct sa_client *c, long long project_id, long long folder_id,
                          const char *const *names, size_t n_names, struct sa_item_list *out)
{
    SA_CALL;
    enum sa_err e = SA_OK;
    sa_clear_error();
    memset(out, 0, sizeof *out);
    if (names && names_ok("list items", names, n_names) != SA_OK)
        return sa_fail(c, SA_ERR_INVAL);
    if (!names) {
        e = search_items(c, project_id, folder_id, NULL, sa_call_deadline(c), out);
    } else {
        for (size_t at = 0; at < n_names && e == SA_OK; at += 1000) {
            size_t k = n_names - at < 1000 ? n_names - at : 1000;
            json_t *arr = names_array(names + at, k);
            json_t *cond = arr ? json_pack("{s:{s:o}}", "name", "$in", arr) : NULL;
            if (!cond) {
                sa_set_error("list items: out of memory");
                e = SA_ERR_NOMEM;
            } else {
                e = search_items(c, project_id, folder_id, cond, sa_call_deadline(c), out);
            }
            json_decref(cond);
        }
    }
    if (e != SA_OK)
        sa_item_list_clear(out);
    return sa_fail(c, e);
}

enum sa_err sa_get_item(struct sa_client *c, long long project_id, long long item_id,
                        struct sa_item *out)
{
    SA_CALL;
    char ctx[128], path[64];
    json_t *j = NULL;
    sa_clear_error();
    memset(out, 0, sizeof *out);
    snprintf(ctx, sizeof ctx, "{\"team_id\":%lld,\"project_id\":%lld}", c->team_id, project_id);
    snprintf(path, sizeof path, "items/%lld", item_id);
    struct sa_req rq = {.method = "GET", .svc = SA_SVC_ITEM, .path = path, .ctx = ctx,
                        .kind = SA_REQ_LIST};
    enum sa_err e = sa_http_json(c, &rq, &j);
    if (e == SA_OK)
        e = need_object(j, "GET item:items/{id}");
    if (e == SA_OK)
        parse_item(j, out);
    json_decref(j);
    return sa_fail(c, e);
}

/* ------------------------------------------------------------------ */
/* §9.3 classes                                                        */

static enum sa_err add_class(void *ud, json_t *row)
{
    return json_array_append(ud, row) ? SA_ERR_NOMEM : SA_OK;
}

enum sa_err sa_list_classes(struct sa_client *c, long long project_id, char **json,
                            size_t *len)
{
    SA_CALL;
    char q[64];
    enum sa_err e;
    sa_clear_error();
    *json = NULL;
    *len = 0;
    json_t *arr = json_array();
    if (!arr) {
        sa_set_error("list classes: out of memory");
        return sa_fail(c, SA_ERR_NOMEM);
    }
    snprintf(q, sizeof q, "project_id=%lld", project_id);
    e = paginate_a(c, SA_SVC_MAIN, "classes", q, SA_REQ_OTHER, add_class, arr);
    if (e == SA_OK) {
        char *s = json_dumps(arr, JSON_COMPACT);
        if (s) {
            *json = s;
            *len = strlen(s);
        } else {
            sa_set_error("list classes: out of memory");
            e = SA_ERR_NOMEM;
        }
    } else if (e == SA_ERR_NOMEM && !sa_last_error()[0]) {
        sa_set_error("list classes: out of memory");
    }
    json_decref(arr);
    return sa_fail(c, e);
}

/* ------------------------------------------------------------------ */
/* §8 workflows and statuses                                           */

enum sa_err sa_workflow_copy(struct sa_workflow *dst, const struct sa_workflow *src)
{
    memset(dst, 0, sizeof *dst);
    dst->id = src->id;
    dst->is_system = src->is_system;
    if (src->n_statuses) {
        dst->statuses = calloc(src->n_statuses, sizeof *dst->statuses);
        if (!dst->statuses)
            return SA_ERR_NOMEM;
    }
    for (size_t i = 0; i < src->n_statuses; i++) {
        dst->statuses[i].value = src->statuses[i].value;
        dst->statuses[i].name = strdup(src->statuses[i].name ? src->statuses[i].name : "");
        dst->n_statuses = i + 1;
        if (!dst->statuses[i].name) {
            sa_workflow_clear(dst);
            return SA_ERR_NOMEM;
        }
    }
    return SA_OK;
}

static enum sa_err fetch_workflow(struct sa_client *c, long long project_id,
                                  long long workflow_id, struct sa_workflow *out)
{
    char ctx[128], q[96], path[96];
    json_t *j = NULL;
    double deadline = sa_call_deadline(c);
    memset(out, 0, sizeof *out);
    out->id = workflow_id;
    snprintf(ctx, sizeof ctx, "{\"team_id\": \"%lld\", \"project_id\": %lld}", c->team_id,
             project_id);
    snprintf(q, sizeof q, "filter=id%%7C%%7C%%24eq%%7C%%7C%lld&offset=0", workflow_id);
    struct sa_req rq = {.method = "GET", .svc = SA_SVC_WM, .path = "workflows", .query = q,
                        .ctx = ctx, .kind = SA_REQ_WORKFLOW, .deadline = deadline};
    enum sa_err e = sa_http_json(c, &rq, &j);
    if (e != SA_OK)
        return e;
    json_t *data = json_object_get(j, "data");
    json_t *wf = json_array_get(data, 0);
    if (!json_is_object(wf)) {
        json_decref(j);
        sa_set_error("GET wm:workflows: no workflow with id %lld", workflow_id);
        return SA_ERR_NOTFOUND;
    }
    json_t *type = json_object_get(wf, "type");
    out->is_system = json_is_string(type) && !strcmp(json_string_value(type), "system");
    json_decref(j);
    j = NULL;

    snprintf(path, sizeof path, "workflows/%lld/workflowstatuses", workflow_id);
    struct sa_req rq2 = {.method = "GET", .svc = SA_SVC_WM, .path = path, .query = "join=status",
                         .ctx = ctx, .kind = SA_REQ_WORKFLOW, .deadline = deadline};
    e = sa_http_json(c, &rq2, &j);
    if (e != SA_OK)
        return e;
    data = json_object_get(j, "data");
    if (!json_is_array(data)) {
        json_decref(j);
        sa_set_error("GET wm:%s: no \"data\" array in the response", path);
        return SA_ERR_PROTO;
    }
    size_t n = json_array_size(data);
    out->statuses = calloc(n ? n : 1, sizeof *out->statuses);
    if (!out->statuses) {
        json_decref(j);
        return SA_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_array_get(data, i);
        json_t *st = json_object_get(row, "status");
        char *name = sa_jstrdup(st, "name");
        if (!name)
            continue;
        out->statuses[out->n_statuses].value = (int)sa_jint(row, "value");
        out->statuses[out->n_statuses].name = name;
        out->n_statuses++;
    }
    json_decref(j);
    return SA_OK;
}

enum sa_err sa_get_workflow(struct sa_client *c, long long project_id, long long workflow_id,
                            struct sa_workflow *out)
{
    SA_CALL;
    sa_clear_error();
    memset(out, 0, sizeof *out);
    double now = sa_now();
    pthread_mutex_lock(&c->wf_mu);
    for (int i = 0; i < SA_WF_CACHE_N; i++) {
        struct sa_wf_cache_ent *ce = &c->wf_cache[i];
        if (ce->at > 0 && now - ce->at < 5.0 && ce->project_id == project_id &&
            ce->workflow_id == workflow_id && !sa_cancelled()) {
            enum sa_err e = sa_workflow_copy(out, &ce->wf);
            pthread_mutex_unlock(&c->wf_mu);
            return sa_fail(c, e);
        }
    }
    pthread_mutex_unlock(&c->wf_mu);

    struct sa_workflow w;
    enum sa_err e = fetch_workflow(c, project_id, workflow_id, &w);
    if (e != SA_OK) {
        sa_workflow_clear(&w);
        return sa_fail(c, e);
    }
    pthread_mutex_lock(&c->wf_mu);
    int slot = 0;
    for (int i = 0; i < SA_WF_CACHE_N; i++) {
        struct sa_wf_cache_ent *ce = &c->wf_cache[i];
        if (ce->project_id == project_id && ce->workflow_id == workflow_id) {
            slot = i;
            break;
        }
        if (ce->at < c->wf_cache[slot].at)
            slot = i;
    }
    struct sa_wf_cache_ent *ce = &c->wf_cache[slot];
    sa_workflow_clear(&ce->wf);
    ce->at = 0;
    if (sa_workflow_copy(&ce->wf, &w) == SA_OK) {
        ce->project_id = project_id;
        ce->workflow_id = workflow_id;
        ce->at = sa_now();
    }
    pthread_mutex_unlock(&c->wf_mu);
    *out = w;
    return SA_OK;
}

int sa_workflow_status_value(const struct sa_workflow *w, const char *name)
{
    for (size_t i = 0; name && i < w->n_statuses; i++)
        if (!strcmp(w->statuses[i].name, name))
            return w->statuses[i].value;
    return -1;
}

const char *sa_workflow_status_name(const struct sa_workflow *w, int value)
{
    for (size_t i = 0; i < w->n_statuses; i++)
        if (w->statuses[i].value == value)
            return w->statuses[i].name;
    return NULL;
}

enum sa_err sa_set_annotation_statuses(struct sa_client *c, long long project_id,
                                       long long folder_id, int status_value,
                                       const char *const *names, size_t n)
{
    SA_CALL;
    char q[64];
    enum sa_err e = SA_OK;
    sa_clear_error();
    if (names_ok("set statuses", names, n) != SA_OK)
        return sa_fail(c, SA_ERR_INVAL);
    snprintf(q, sizeof q, "project_id=%lld", project_id);
    double deadline = sa_call_deadline(c);
    for (size_t at = 0; at < n && e == SA_OK; at += 500) {
        size_t k = n - at < 500 ? n - at : 500;
        json_t *arr = names_array(names + at, k);
        json_t *b = arr ? json_pack("{s:I,s:i,s:o}", "folder_id", (json_int_t)folder_id,
                                    "annotation_status", status_value, "image_names", arr)
                        : NULL;
        char *body = b ? sa_jdump(b) : NULL;
        json_decref(b);
        if (!body) {
            sa_set_error("set statuses: out of memory");
            e = SA_ERR_NOMEM;
            break;
        }
        struct sa_resp r;
        struct sa_req rq = {.method = "PUT", .svc = SA_SVC_MAIN,
                            .path = "image/updateAnnotationStatusBulk", .query = q,
                            .body = body, .body_len = strlen(body), .kind = SA_REQ_STATUS,
                            .deadline = deadline};
        e = sa_http(c, &rq, &r);
        free(body);
        /* the SDK checks only the 2xx; an answer that is not JSON (a proxy's
         * page, a cut body) is no proof the change was made */
        if (e == SA_OK && r.len) {
            json_t *j = json_loadb(r.body, r.len, 0, NULL);
            if (!j) {
                sa_set_error("PUT image/updateAnnotationStatusBulk: the answer is not JSON; "
                             "the status may not be set");
                e = SA_ERR_PROTO;
            }
            json_decref(j);
        }
        sa_resp_clear(&r);
    }
    return sa_fail(c, e);
}

/* ------------------------------------------------------------------ */
/* §13 delete annotations                                              */

enum sa_err sa_delete_annotations(struct sa_client *c, long long project_id,
                                  long long folder_id, const char *const *names, size_t n)
{
    SA_CALL;
    char q[96];
    enum sa_err e = SA_OK;
    sa_clear_error();
    /* n == 0 would mean "the whole folder" on the wire: never do that by
     * accident */
    if (n == 0)
        return SA_OK;
    /* every name is checked before anything is sent: a chunk must never go
     * out with names dropped (an empty list means the whole folder) */
    if (names_ok("annotations/remove", names, n) != SA_OK)
        return sa_fail(c, SA_ERR_INVAL);
    double deadline = sa_call_deadline(c);
    snprintf(q, sizeof q, "project_id=%lld&folder_id=%lld", project_id, folder_id);
    for (size_t at = 0; at < n && e == SA_OK; at += 2000) {
        size_t k = n - at < 2000 ? n - at : 2000;
        json_t *arr = names_array(names + at, k);
        json_t *b = arr ? json_pack("{s:o}", "image_names", arr) : NULL;
        char *body = b ? sa_jdump(b) : NULL;
        json_decref(b);
        if (!body) {
            sa_set_error("annotations/remove: out of memory");
            e = SA_ERR_NOMEM;
            break;
        }
        json_t *j = NULL;
        struct sa_req rq = {.method = "POST", .svc = SA_SVC_MAIN, .path = "annotations/remove",
                            .query = q, .body = body, .body_len = strlen(body),
                            .kind = SA_REQ_DELETE, .deadline = deadline};
        e = sa_http_json(c, &rq, &j);
        free(body);
        if (e != SA_OK)
            break;
        json_t *pid = json_object_get(j, "poll_id");
        char *poll = sa_jstrdup(j, "poll_id");
        json_decref(j);
        if (!pid || !poll) {
            free(poll);
            sa_set_error("POST annotations/remove: no poll_id in the response");
            e = SA_ERR_PROTO;
            break;
        }
        /* poll, sleeping 100 ms growing to 1 s */
        struct sa_buf pq = {0};
        sa_buf_addf(&pq, "project_id=%lld&poll_id=", project_id);
        sa_buf_addq(&pq, poll);
        free(poll);
        double nap = 0.1;
        for (;;) {
            json_t *s = NULL;
            struct sa_req prq = {.method = "GET", .svc = SA_SVC_MAIN,
                                 .path = "annotations/getRemoveStatus", .query = pq.p,
                                 .kind = SA_REQ_DELETE, .deadline = deadline};
            e = sa_http_json(c, &prq, &s);
            if (e != SA_OK)
                break;
            json_t *pv = json_object_get(s, "process");
            long long process = pv ? sa_jint(s, "process") : -1;
            json_decref(s);
            if (process < 0) {
                sa_set_error("annotations/getRemoveStatus: delete failed (process %lld)",
                             process);
                e = SA_ERR_SERVER;
                break;
            }
            if (process == 0 || process >= 100)
                break;
            if (sa_now() + nap >= deadline) {
                sa_set_error("annotations/getRemoveStatus: still %lld%% at the call deadline",
                             process);
                e = SA_ERR_TIMEOUT;
                break;
            }
            if ((e = sa_nap(nap, "annotations/getRemoveStatus: waiting")) != SA_OK)
                break;
            nap = nap * 2 > 1.0 ? 1.0 : nap * 2;
        }
        sa_buf_free(&pq);
    }
    return sa_fail(c, e);
}
