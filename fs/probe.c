/** @file
 * `safs --probe [SOURCE]` (filesystem.md §7): read-only checks of the
 * assumptions api.md marks INFERRED, one line each.
 *
 * Most checks go through the client API (client/include/sa/client.h): a
 * shape the client cannot parse shows as its error. The client is tolerant
 * of a missing `count` (it pages until a short page), so the `count` of the
 * three paginated listings is checked on the raw response with one plain
 * libcurl request each (GET, or the items/search POST, which is a read).
 * Nothing here changes the platform.
 */
#include "probe.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#define PROBE_DOCS 50                    /**< documents downloaded for the stream checks */
#define DEFAULT_URL "https://api.superannotate.com"
#define PROD_ITEM_URL "https://item.superannotate.com/api/v1/"

struct probe {
    const struct fs_config *cfg;
    struct sa_client *c;
    int n_ok, n_fail, n_skip;
};

static void report(struct probe *p, const char *tag, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void report(struct probe *p, const char *tag, const char *what, const char *fmt, ...)
{
    if (!strcmp(tag, "ok"))
        p->n_ok++;
    else if (!strcmp(tag, "FAIL"))
        p->n_fail++;
    else
        p->n_skip++;
    printf("%-4s %s: ", tag, what);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void report_err(struct probe *p, const char *what, enum sa_err e)
{
    const char *d = sa_last_error();
    report(p, "FAIL", what, "%s%s%s", sa_strerror(e), *d ? ": " : "", d);
}

/** "YYYY-MM-DDTHH:MM:SS.fffZ" exactly (milliseconds present). */
static int is_ms_time(const char *s)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (!s || strlen(s) != sizeof(pat) - 1)
        return 0;
    for (size_t i = 0; pat[i]; i++)
        if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pat[i])
            return 0;
    return sa_parse_time_ms(s) != 0;
}

/* ------------------------------------------------------------------ */
/* Raw requests, for what the client hides (`count`)                    */

struct rbuf { char *p; size_t n; };

static size_t rbuf_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct rbuf *b = ud;
    size_t len = size * nmemb;
    if (b->n + len > (64u << 20))
        return 0;
    char *q = realloc(b->p, b->n + len + 1);
    if (!q)
        return 0;
    memcpy(q + b->n, data, len);
    b->p = q;
    b->n += len;
    b->p[b->n] = '\0';
    return len;
}

static char *base64(const char *s)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s);
    char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)s[i] << 16;
        if (i + 1 < n) v |= (unsigned char)s[i + 1] << 8;
        if (i + 2 < n) v |= (unsigned char)s[i + 2];
        *o++ = tab[(v >> 18) & 63];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/** Base with exactly one trailing '/'. New string. */
static char *with_slash(const char *u)
{
    size_t n = strlen(u);
    while (n && u[n - 1] == '/')
        n--;
    char *s = NULL;
    return asprintf(&s, "%.*s/", (int)n, u) < 0 ? NULL : s;
}

/** One request; @p url is complete but for team_id. Returns the parsed JSON
 * body (new) or NULL with @p why filled. */
static json_t *raw_json(struct probe *p, const char *url, const char *body, const char *ctx,
                        char *why, size_t whylen)
{
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(why, whylen, "curl_easy_init failed");
        return NULL;
    }
    char *full = NULL, *auth = NULL, *ctxh = NULL, *ctx64 = ctx ? base64(ctx) : NULL;
    struct curl_slist *hdr = NULL;
    struct rbuf b = {0};
    json_t *j = NULL;
    long team = sa_client_team_id(p->c);
    if (asprintf(&full, "%s%steam_id=%ld", url, strchr(url, '?') ? "&" : "?", team) < 0)
        full = NULL;
    if (asprintf(&auth, "Authorization: %s", p->cfg->token) < 0)
        auth = NULL;
    if (ctx64 && asprintf(&ctxh, "x-sa-entity-context: %s", ctx64) < 0)
        ctxh = NULL;
    if (!full || !auth || (ctx && !ctxh)) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    hdr = curl_slist_append(hdr, auth);
    hdr = curl_slist_append(hdr, "authtype: sdk");
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    if (ctxh)
        hdr = curl_slist_append(hdr, ctxh);
    double scale = p->cfg->timeout_scale > 0 ? p->cfg->timeout_scale : 1;
    curl_easy_setopt(h, CURLOPT_URL, full);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(10000 * scale));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(60000 * scale));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, rbuf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    if (p->cfg->cafile)
        curl_easy_setopt(h, CURLOPT_CAINFO, p->cfg->cafile);
    if (p->cfg->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(rc));
        goto out;
    }
    if (status < 200 || status >= 300) {
        snprintf(why, whylen, "HTTP %ld", status);
        goto out;
    }
    json_error_t je;
    j = json_loadb(b.p ? b.p : "", b.n, 0, &je);
    if (!j)
        snprintf(why, whylen, "not JSON: %s", je.text);
out:
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    if (auth) {
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    free(full);
    free(ctxh);
    free(ctx64);
    free(b.p);
    return j;
}

/** A paginated listing's first page: {"data": [...], "count": N >= len}. */
static void check_page(struct probe *p, const char *what, const char *url, const char *body,
                       const char *ctx)
{
    char why[256] = "";
    json_t *j = raw_json(p, url, body, ctx, why, sizeof(why));
    if (!j) {
        report(p, "FAIL", what, "%s", why);
        return;
    }
    json_t *data = json_object_get(j, "data");
    json_t *count = json_object_get(j, "count");
    if (!json_is_array(data))
        report(p, "FAIL", what, "no \"data\" array in the response");
    else if (!json_is_integer(count))
        report(p, "FAIL", what, "no integer \"count\" in the response (%zu rows in \"data\")",
               json_array_size(data));
    else if (json_integer_value(count) < (json_int_t)json_array_size(data))
        report(p, "FAIL", what, "\"count\" %lld is less than the %zu rows of the page",
               (long long)json_integer_value(count), json_array_size(data));
    else
        report(p, "ok", what, "{\"data\": [%zu rows], \"count\": %lld}", json_array_size(data),
               (long long)json_integer_value(count));
    json_decref(j);
}

static char *main_base(struct probe *p)
{
    return with_slash(p->cfg->url && *p->cfg->url ? p->cfg->url : DEFAULT_URL);
}

static char *item_base(struct probe *p)
{
    if (p->cfg->item_url && *p->cfg->item_url)
        return with_slash(p->cfg->item_url);
    char *m = main_base(p);
    if (!m)
        return NULL;
    char *s = NULL;
    if (!strcmp(m, DEFAULT_URL "/"))
        s = strdup(PROD_ITEM_URL);
    else if (asprintf(&s, "%sapi/v1/", m) < 0)
        s = NULL;
    free(m);
    return s;
}

/* ------------------------------------------------------------------ */
/* Documents                                                            */

struct docs {
    const long long *ids;
    size_t n;
    int *seen;               /**< per requested id */
    size_t got, bad_meta, unmatched;
    char bad_why[256];
    long long skel_id;       /**< the unannotated item to check, or 0 */
    int skel_checked, skel_ok;
    char skel_why[160];
};

static int doc_cb(void *ud, long long item_id, const char *json, size_t len)
{
    struct docs *d = ud;
    d->got++;
    size_t k = d->n;
    for (size_t i = 0; i < d->n; i++)
        if (d->ids[i] == item_id) {
            k = i;
            break;
        }
    if (k == d->n)
        d->unmatched++;
    else
        d->seen[k] = 1;
    json_error_t je;
    json_t *j = json_loadb(json, len, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &je);
    json_t *md = j ? json_object_get(j, "metadata") : NULL;
    json_t *id = md ? json_object_get(md, "id") : NULL;
    json_t *name = md ? json_object_get(md, "name") : NULL;
    if (!json_is_object(md) || (!json_is_number(id) && !json_is_string(name))) {
        if (!d->bad_meta++)
            snprintf(d->bad_why, sizeof(d->bad_why), "item %lld: %s", item_id,
                     !j ? je.text : !json_is_object(md) ? "no \"metadata\" object"
                                                        : "metadata has neither id nor name");
    }
    if (item_id == d->skel_id && d->skel_id) {
        d->skel_checked = 1;
        const char *why = NULL;
        if (!json_is_object(md))
            why = "no \"metadata\" object";
        else if (!json_is_array(json_object_get(j, "instances")))
            why = "no \"instances\" array";
        else if (json_array_size(json_object_get(j, "instances")))
            why = "\"instances\" not empty";
        if (why)
            snprintf(d->skel_why, sizeof(d->skel_why), "%s", why);
        d->skel_ok = !why;
    }
    json_decref(j);
    return 0;
}

/* ------------------------------------------------------------------ */

/** Split cfg->source into project and folder (new strings; folder may be NULL). */
static int split_source(const char *src, char **project, char **folder)
{
    *project = *folder = NULL;
    if (!src || !*src)
        return 0;
    const char *slash = strchr(src, '/');
    *project = slash ? strndup(src, (size_t)(slash - src)) : strdup(src);
    if (slash)
        *folder = strdup(slash + 1);
    return !*project || (slash && !*folder) ? -1 : 0;
}

int fs_probe(const struct fs_config *cfg, struct sa_client *c)
{
    struct probe p = { .cfg = cfg, .c = c };
    struct sa_user user = {0};
    struct sa_team team = {0};
    struct sa_project_list projects = {0};
    struct sa_project proj = {0};
    struct sa_folder root = {0}, folder = {0};
    struct sa_folder_list folders = {0};
    struct sa_item_list items = {0};
    struct sa_workflow wf = {0};
    char *pname = NULL, *fname = NULL, *mb = NULL, *ib = NULL, *url = NULL, *ctx = NULL;
    long long *ids = NULL;
    const char **names = NULL;
    struct docs d = {0};
    enum sa_err e;

    printf("probe: %s, team %lld, source %s (read-only)\n", cfg->url ? cfg->url : DEFAULT_URL,
           sa_client_team_id(c), cfg->source && *cfg->source ? cfg->source : "team");
    if (split_source(cfg->source, &pname, &fname) < 0) {
        report(&p, "FAIL", "source", "out of memory");
        goto out;
    }
    mb = main_base(&p);
    ib = item_base(&p);
    if (!mb || !ib) {
        report(&p, "FAIL", "setup", "out of memory");
        goto out;
    }

    /* §4: user/ME and team, bare objects */
    if ((e = sa_get_user(c, &user)) != SA_OK)
        report_err(&p, "user/ME (bare user object)", e);
    else if (!user.id || !user.email)
        report(&p, "FAIL", "user/ME (bare user object)", "missing %s", !user.id ? "id" : "email");
    else
        report(&p, "ok", "user/ME (bare user object)", "id and email present");
    if ((e = sa_get_team(c, &team)) != SA_OK)
        report_err(&p, "team (bare team object)", e);
    else if (team.id != sa_client_team_id(c))
        report(&p, "FAIL", "team (bare team object)", "id %lld, the token says %lld", team.id,
               sa_client_team_id(c));
    else
        report(&p, "ok", "team (bare team object)", "id %lld, name \"%s\"", team.id,
               team.name ? team.name : "");

    /* §5.1: projects */
    if ((e = sa_list_projects(c, NULL, &projects)) != SA_OK)
        report_err(&p, "projects list", e);
    else
        report(&p, "ok", "projects list", "%zu projects", projects.n);
    if (asprintf(&url, "%sapi/v1/projects?offset=0", mb) < 0)
        url = NULL;
    if (url)
        check_page(&p, "projects list page shape and count", url, NULL, NULL);
    free(url);
    url = NULL;

    if (pname) {
        if ((e = sa_get_project_by_name(c, pname, &proj)) != SA_OK) {
            report_err(&p, "project by name", e);
            goto out;
        }
        report(&p, "ok", "project by name", "\"%s\" id %lld type %s", proj.name, proj.id,
               sa_project_type_name(proj.type));
    } else if (projects.n) {
        size_t k = 0;
        for (size_t i = 0; i < projects.n; i++)
            if (projects.v[i].type == SA_PT_VECTOR) {
                k = i;
                break;
            }
        if ((e = sa_get_project(c, projects.v[k].id, &proj)) != SA_OK) {
            report_err(&p, "project by id", e);
            goto out;
        }
        report(&p, "ok", "project by id", "\"%s\" id %lld type %s (checks below use it)",
               proj.name, proj.id, sa_project_type_name(proj.type));
    } else {
        report(&p, "skip", "project checks", "the team has no project");
        goto out;
    }

    /* §6: the root folder by name, and in the /folders list */
    if ((e = sa_get_folder_by_name(c, proj.id, "root", &root)) != SA_OK)
        report_err(&p, "root folder via getFolderByName(\"root\")", e);
    else if (!root.is_root)
        report(&p, "FAIL", "root folder via getFolderByName(\"root\")", "is_root is not true");
    else if (proj.root_folder_id && root.id != proj.root_folder_id)
        report(&p, "FAIL", "root folder via getFolderByName(\"root\")",
               "id %lld, the project's folder_id is %lld", root.id, proj.root_folder_id);
    else
        report(&p, "ok", "root folder via getFolderByName(\"root\")", "id %lld, is_root", root.id);
    if ((e = sa_list_folders(c, proj.id, &folders)) != SA_OK) {
        report_err(&p, "/folders includes the root", e);
    } else {
        int found = 0;
        for (size_t i = 0; i < folders.n; i++)
            if (folders.v[i].is_root && (!root.id || folders.v[i].id == root.id))
                found = 1;
        if (found)
            report(&p, "ok", "/folders includes the root", "%zu folders, root among them",
                   folders.n);
        else
            report(&p, "FAIL", "/folders includes the root", "%zu folders, no is_root one",
                   folders.n);
    }
    if (asprintf(&url, "%sfolders?project_id=%lld&offset=0", mb, proj.id) < 0)
        url = NULL;
    if (url)
        check_page(&p, "/folders page shape and count", url, NULL, NULL);
    free(url);
    url = NULL;

    /* §7: items/search in the SOURCE's folder, or the root */
    long long fid = root.id;
    if (fname) {
        if ((e = sa_get_folder_by_name(c, proj.id, fname, &folder)) != SA_OK) {
            report_err(&p, "folder by name", e);
            goto out;
        }
        report(&p, "ok", "folder by name", "\"%s\" id %lld", folder.name, folder.id);
        fid = folder.id;
    }
    if ((e = sa_list_items(c, proj.id, fid, NULL, 0, &items)) != SA_OK)
        report_err(&p, "items/search", e);
    else
        report(&p, "ok", "items/search", "%zu items in folder %lld", items.n, fid);
    if (asprintf(&url, "%sitems/search", ib) < 0 ||
        asprintf(&ctx, "{\"team_id\":%lld,\"project_id\":%lld,\"folder_id\":%lld}",
                 sa_client_team_id(c), proj.id, fid) < 0) {
        report(&p, "FAIL", "items/search page shape and count", "out of memory");
    } else {
        check_page(&p, "items/search page shape and count", url,
                   "{\"query\":{\"limit\":2000,\"offset\":0,"
                   "\"join\":[{\"field\":\"metadata\",\"select\":[\"path\"]}]}}", ctx);
    }

    /* updatedAt with milliseconds */
    if (!items.n) {
        report(&p, "skip", "updatedAt format YYYY-MM-DDTHH:MM:SS.fffZ", "no item in the folder");
    } else {
        size_t bad = items.n;
        for (size_t i = 0; i < items.n && bad == items.n; i++)
            if (!is_ms_time(items.v[i].updated_at))
                bad = i;
        if (bad < items.n)
            report(&p, "FAIL", "updatedAt format YYYY-MM-DDTHH:MM:SS.fffZ", "item \"%s\": \"%s\"",
                   items.v[bad].name, items.v[bad].updated_at ? items.v[bad].updated_at : "(none)");
        else
            report(&p, "ok", "updatedAt format YYYY-MM-DDTHH:MM:SS.fffZ", "all %zu items",
                   items.n);
    }

    /* §8.1: workflow statuses */
    int not_started = 1;
    if ((e = sa_get_workflow(c, proj.id, proj.workflow_id, &wf)) != SA_OK) {
        report_err(&p, "workflow statuses (value + status.name)", e);
    } else if (!wf.n_statuses) {
        report(&p, "FAIL", "workflow statuses (value + status.name)", "no status");
    } else {
        size_t bad = wf.n_statuses;
        for (size_t i = 0; i < wf.n_statuses && bad == wf.n_statuses; i++)
            if (!wf.statuses[i].name || !*wf.statuses[i].name)
                bad = i;
        if (bad < wf.n_statuses)
            report(&p, "FAIL", "workflow statuses (value + status.name)",
                   "status value %d has no name", wf.statuses[bad].value);
        else
            report(&p, "ok", "workflow statuses (value + status.name)", "%zu statuses, %s workflow",
                   wf.n_statuses, wf.is_system ? "system" : "custom");
        if (wf.is_system) {
            static const char *const sys[] = { "NotStarted", "InProgress", "QualityCheck",
                                               "Returned", "Completed", "Skipped" };
            int okv = 1;
            for (int i = 0; i < 6; i++)
                if (sa_workflow_status_value(&wf, sys[i]) != i + 1)
                    okv = 0;
            report(&p, okv ? "ok" : "FAIL", "system workflow values NotStarted=1 … Skipped=6",
                   "%s", okv ? "as the SDK's old enum" : "differ from the SDK's old enum");
        }
        int v = sa_workflow_status_value(&wf, "NotStarted");
        if (v >= 0)
            not_started = v;
    }

    /* §9: download method, stream delimiter, metadata; §11.4 skeleton */
    if (!items.n) {
        report(&p, "skip", "download method + stream (\\n;)\\n) + metadata", "no item");
        report(&p, "skip", "skeleton of an unannotated item", "no item");
        goto out;
    }
    size_t n = items.n < PROBE_DOCS ? items.n : PROBE_DOCS;
    ids = calloc(n, sizeof(*ids));
    names = calloc(n, sizeof(*names));
    d.seen = calloc(n, sizeof(*d.seen));
    if (!ids || !names || !d.seen) {
        report(&p, "FAIL", "download", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        ids[i] = items.v[i].id;
        names[i] = items.v[i].name;
        if (!d.skel_id && items.v[i].annotation_status == not_started)
            d.skel_id = items.v[i].id;
    }
    d.ids = ids;
    d.n = n;
    e = sa_download_annotations(c, proj.id, fid, ids, names, n, doc_cb, &d);
    size_t seen = 0;
    for (size_t i = 0; i < n; i++)
        seen += d.seen[i] != 0;
    if (e != SA_OK)
        report_err(&p, "download method + stream (\\n;)\\n) + metadata", e);
    else if (seen < n)
        report(&p, "FAIL", "download method + stream (\\n;)\\n) + metadata",
               "%zu of %zu requested documents received (%zu unmatched)", seen, n, d.unmatched);
    else if (d.bad_meta)
        report(&p, "FAIL", "download method + stream (\\n;)\\n) + metadata",
               "%zu documents without metadata.id/name; first: %s", d.bad_meta, d.bad_why);
    else
        report(&p, "ok", "download method + stream (\\n;)\\n) + metadata",
               "%zu of %zu documents, each with metadata.id or metadata.name", seen, n);
    if (!d.skel_id)
        report(&p, "skip", "skeleton of an unannotated item", "no NotStarted item among the first %zu",
               n);
    else if (!d.skel_checked)
        report(&p, "FAIL", "skeleton of an unannotated item", "item %lld: no document returned",
               d.skel_id);
    else if (!d.skel_ok)
        report(&p, "skip", "skeleton of an unannotated item",
               "NotStarted item %lld has annotations (%s)", d.skel_id, d.skel_why);
    else
        report(&p, "ok", "skeleton of an unannotated item",
               "item %lld: metadata + empty instances", d.skel_id);

out:
    printf("probe: %d ok, %d failed, %d skipped\n", p.n_ok, p.n_fail, p.n_skip);
    fflush(stdout);
    free(ids);
    free(names);
    free(d.seen);
    free(url);
    free(ctx);
    free(mb);
    free(ib);
    free(pname);
    free(fname);
    sa_user_clear(&user);
    sa_team_clear(&team);
    sa_project_list_clear(&projects);
    sa_project_clear(&proj);
    sa_folder_clear(&root);
    sa_folder_clear(&folder);
    sa_folder_list_clear(&folders);
    sa_item_list_clear(&items);
    sa_workflow_clear(&wf);
    return p.n_fail ? 1 : 0;
}
