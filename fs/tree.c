/** @file
 * The in-memory tree: projects, folders and item listings, with the TTL of
 * -o cache_timeout, and the string hash tables that resolve shown names.
 * Objects are created on first sight and kept until unmount (an item that
 * leaves the listing is marked absent), so pointers held by open handles
 * stay valid.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_i.h"

/* ---------------------------------------------------------------- map */

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void fs_map_init(struct fs_map *m)
{
    memset(m, 0, sizeof *m);
}

void fs_map_clear(struct fs_map *m)
{
    for (size_t i = 0; i < m->nb; i++) {
        struct fs_map_ent *e = m->b[i], *n;
        for (; e; e = n) {
            n = e->next;
            free(e->key);
            free(e);
        }
    }
    free(m->b);
    memset(m, 0, sizeof *m);
}

void *fs_map_get(const struct fs_map *m, const char *key)
{
    if (!m->nb)
        return NULL;
    for (struct fs_map_ent *e = m->b[hash_str(key) % m->nb]; e; e = e->next)
        if (!strcmp(e->key, key))
            return e->val;
    return NULL;
}

static int map_grow(struct fs_map *m)
{
    size_t nb = m->nb ? m->nb * 2 : 64;
    struct fs_map_ent **b = calloc(nb, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < m->nb; i++) {
        struct fs_map_ent *e = m->b[i], *n;
        for (; e; e = n) {
            size_t h = hash_str(e->key) % nb;
            n = e->next;
            e->next = b[h];
            b[h] = e;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
    return 0;
}

int fs_map_put(struct fs_map *m, const char *key, void *val)
{
    struct fs_map_ent *e;
    size_t h;

    if (m->n + 1 > m->nb && map_grow(m))
        return -ENOMEM;
    h = hash_str(key) % m->nb;
    for (e = m->b[h]; e; e = e->next)
        if (!strcmp(e->key, key)) {
            e->val = val;
            return 0;
        }
    e = malloc(sizeof *e);
    if (!e)
        return -ENOMEM;
    e->key = strdup(key);
    if (!e->key) {
        free(e);
        return -ENOMEM;
    }
    e->val = val;
    e->next = m->b[h];
    m->b[h] = e;
    m->n++;
    return 0;
}

void *fs_map_del(struct fs_map *m, const char *key)
{
    struct fs_map_ent **pp;
    if (!m->nb)
        return NULL;
    for (pp = &m->b[hash_str(key) % m->nb]; *pp; pp = &(*pp)->next) {
        struct fs_map_ent *e = *pp;
        if (!strcmp(e->key, key)) {
            void *v = e->val;
            *pp = e->next;
            free(e->key);
            free(e);
            m->n--;
            return v;
        }
    }
    return NULL;
}

void fs_map_each(const struct fs_map *m, void (*fn)(void *ud, const char *k, void *v), void *ud)
{
    for (size_t i = 0; i < m->nb; i++)
        for (struct fs_map_ent *e = m->b[i]; e; e = e->next)
            fn(ud, e->key, e->val);
}

/* --------------------------------------------------------------- tree */

uint64_t fs_next_seq(struct fs_state *st)
{
    uint64_t s;
    pthread_mutex_lock(&st->mu);
    s = ++st->seq;
    pthread_mutex_unlock(&st->mu);
    return s;
}

double fs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A listing is fresh for cache_timeout, and a multi-page one at least for
 * twice the time it took to fetch: with cache_timeout=0 a 50,000-item
 * folder (25 pages) would otherwise be re-listed by every getattr of an
 * `ls -l`, while a small folder stays immediately consistent. */
static int fresh(struct fs_state *st, int listed, double at, double dur, size_t n,
                 double min_ttl)
{
    double ttl = st->cfg->cache_timeout > min_ttl ? st->cfg->cache_timeout : min_ttl;
    /* only multi-page listings: a one-page folder stays exactly as fresh as
     * cache_timeout says, however slow the server is */
    if (n > 2000 && ttl < 2 * dur)
        ttl = 2 * dur;
    return listed && fs_now() - at < ttl;
}

static void replace_str(char **dst, const char *src)
{
    if (*dst && src && !strcmp(*dst, src))
        return;
    free(*dst);
    *dst = src ? strdup(src) : NULL;
}

/* replace_str for names, under st->mu: the old string is retired, not
 * freed (see fs_state.retired_names). */
static int retire_locked(struct fs_state *st, char *old)
{
    if (!old)
        return 0;
    if (st->n_retired == st->cap_retired) {
        size_t cap = st->cap_retired ? 2 * st->cap_retired : 16;
        char **v = realloc(st->retired_names, cap * sizeof *v);
        if (!v)
            return -1;
        st->retired_names = v;
        st->cap_retired = cap;
    }
    st->retired_names[st->n_retired++] = old;
    return 0;
}

static void rename_str_locked(struct fs_state *st, char **dst, const char *src)
{
    if (*dst && src && !strcmp(*dst, src))
        return;
    if (retire_locked(st, *dst))
        return; /* out of memory: keep the old name rather than free it under a reader */
    *dst = src ? strdup(src) : NULL;
}

static struct fs_folder *folder_new(struct fs_project *p, long long id, const char *name,
                                    int is_root)
{
    struct fs_folder *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->id = id;
    f->proj = p;
    f->name = strdup(name);
    f->dname = fs_dir_name(name);
    f->is_root = is_root;
    f->present = 1;
    pthread_mutex_init(&f->list_mu, NULL);
    fs_map_init(&f->by_id);
    fs_map_init(&f->by_fname);
    fs_map_init(&f->scratch);
    fs_map_init(&f->ghosts);
    return f;
}

static void item_free(struct fs_state *st, struct fs_item *it)
{
    fs_doc_free(st, it);
    free(it->name);
    free(it->fname);
    free(it->created_at);
    free(it->updated_at);
    pthread_mutex_destroy(&it->save_mu);
    free(it);
}

static void item_free_cb(void *ud, const char *k, void *v)
{
    (void)k;
    item_free(ud, v);
}

void fs_scratch_free(struct fs_scratch *s)
{
    fs_buf_free(&s->buf);
    fs_xattr_free_all(&s->xattrs);
    pthread_mutex_destroy(&s->mu);
    free(s->name);
    free(s);
}

static void scratch_free_cb(void *ud, const char *k, void *v)
{
    (void)ud;
    (void)k;
    fs_scratch_free(v);
}

static void ghost_free_cb(void *ud, const char *k, void *v)
{
    (void)ud;
    (void)k;
    free(v); /* its item is freed with the folder's items */
}

static void folder_free(struct fs_state *st, struct fs_folder *f)
{
    if (!f)
        return;
    fs_map_each(&f->ghosts, ghost_free_cb, NULL);
    fs_map_each(&f->by_id, item_free_cb, st);
    fs_map_each(&f->scratch, scratch_free_cb, NULL);
    fs_map_clear(&f->by_id);
    fs_map_clear(&f->by_fname);
    fs_map_clear(&f->scratch);
    fs_map_clear(&f->ghosts);
    while (f->jobs) {
        struct fs_fetch_job *j = f->jobs;
        f->jobs = *(struct fs_fetch_job **)j; /* next is the first member */
        free(j);
    }
    free(f->items);
    free(f->name);
    free(f->dname);
    free(f->updated_at);
    pthread_mutex_destroy(&f->list_mu);
    free(f);
}

struct free_ctx { struct fs_state *st; struct fs_project *p; };

static void folder_free_cb(void *ud, const char *k, void *v)
{
    struct free_ctx *c = ud;
    (void)k;
    if (v != c->p->root)
        folder_free(c->st, v);
}

static const char *project_suffix(struct fs_state *st, int type)
{
    /* Pixel projects show ___pixel.json unless the user chose a suffix */
    if (type == SA_PT_PIXEL && !strcmp(st->cfg->suffix, "___objects.json"))
        return "___pixel.json";
    return st->cfg->suffix;
}

/* Steals the strings of @p src. */
static struct fs_project *project_new(struct fs_state *st, struct sa_project *src)
{
    struct fs_project *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->p = *src;
    memset(src, 0, sizeof *src);
    p->dname = fs_dir_name(p->p.name);
    p->present = 1;
    p->suffix = project_suffix(st, p->p.type);
    pthread_mutex_init(&p->list_mu, NULL);
    fs_map_init(&p->by_id);
    fs_map_init(&p->by_dname);
    p->root = folder_new(p, p->p.root_folder_id, "root", 1);
    if (!p->root) {
        free(p);
        return NULL;
    }
    return p;
}

static void project_free(struct fs_state *st, struct fs_project *p)
{
    struct free_ctx c = {st, p};
    if (!p)
        return;
    fs_map_each(&p->by_id, folder_free_cb, &c);
    folder_free(st, p->root);
    free(p->classes);
    fs_map_clear(&p->by_id);
    fs_map_clear(&p->by_dname);
    free(p->folders);
    free(p->dname);
    sa_project_clear(&p->p);
    pthread_mutex_destroy(&p->list_mu);
    free(p);
}

static void project_free_cb(void *ud, const char *k, void *v)
{
    (void)k;
    project_free(ud, v);
}

int fs_tree_init(struct fs_state *st, char *err, size_t errlen)
{
    const char *src = st->cfg->source ? st->cfg->source : "";
    const char *slash = strchr(src, '/');
    enum sa_err e;

    fs_map_init(&st->projects_by_id);
    fs_map_init(&st->projects_by_dname);
    if (!*src) {
        st->level = 0;
        if (fs_projects_refresh(st, 1)) {
            snprintf(err, errlen, "cannot list the team's projects: %s", sa_last_error());
            return -1;
        }
        return 0;
    }
    st->level = slash ? 2 : 1;
    st->src_project = slash ? strndup(src, slash - src) : strdup(src);
    st->src_folder = slash ? strdup(slash + 1) : NULL;
    {
        struct sa_project sp;
        e = sa_get_project_by_name(st->c, st->src_project, &sp);
        if (e) {
            snprintf(err, errlen, "project \"%s\": %s%s%s", st->src_project, sa_strerror(e),
                     *sa_last_error() ? ": " : "", sa_last_error());
            sa_project_clear(&sp);
            return -1;
        }
        st->src_proj = project_new(st, &sp);
        sa_project_clear(&sp);
        if (!st->src_proj) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    if (st->level == 2) {
        struct sa_folder sf;
        e = sa_get_folder_by_name(st->c, st->src_proj->p.id, st->src_folder, &sf);
        if (e) {
            snprintf(err, errlen, "folder \"%s\" of project \"%s\": %s%s%s", st->src_folder,
                     st->src_project, sa_strerror(e), *sa_last_error() ? ": " : "",
                     sa_last_error());
            sa_folder_clear(&sf);
            return -1;
        }
        st->src_fold = folder_new(st->src_proj, sf.id, sf.name, sf.is_root);
        sa_folder_clear(&sf);
        if (!st->src_fold) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (st->src_fold->is_root) {
            folder_free(st, st->src_fold);
            st->src_fold = st->src_proj->root;
        }
    }
    return 0;
}

void fs_tree_free(struct fs_state *st)
{
    if (st->level == 0) {
        fs_map_each(&st->projects_by_id, project_free_cb, st);
    } else {
        if (st->src_fold && st->src_fold != st->src_proj->root)
            folder_free(st, st->src_fold);
        project_free(st, st->src_proj);
    }
    fs_map_clear(&st->projects_by_id);
    fs_map_clear(&st->projects_by_dname);
    free(st->projects);
    free(st->src_project);
    free(st->src_folder);
    for (size_t i = 0; i < st->n_retired; i++)
        free(st->retired_names[i]);
    free(st->retired_names);
    st->retired_names = NULL;
    st->n_retired = st->cap_retired = 0;
}

int fs_projects_refresh(struct fs_state *st, int force)
{
    struct sa_project_list l = {0};
    enum sa_err e;
    int r = 0;
    double t0;

    if (st->level != 0)
        return 0;
    pthread_mutex_lock(&st->plist_mu);
    pthread_mutex_lock(&st->mu);
    if (!force && fresh(st, st->plisted, st->plisted_at, st->plist_dur, st->n_projects, 0)) {
        pthread_mutex_unlock(&st->mu);
        goto out;
    }
    pthread_mutex_unlock(&st->mu);
    t0 = fs_now();
    e = sa_list_projects(st->c, NULL, &l);
    if (e) {
        r = fs_fail(st, "list projects", "/", e);
        goto out;
    }
    pthread_mutex_lock(&st->mu);
    {
        struct fs_project **arr = calloc(l.n + 1, sizeof *arr);
        size_t n = 0;
        for (size_t i = 0; i < st->n_projects; i++)
            st->projects[i]->present = 0;
        fs_map_clear(&st->projects_by_dname);
        for (size_t i = 0; arr && i < l.n; i++) {
            char key[32];
            struct fs_project *p;
            snprintf(key, sizeof key, "%lld", l.v[i].id);
            p = fs_map_get(&st->projects_by_id, key);
            if (!p) {
                p = project_new(st, &l.v[i]);
                if (!p)
                    continue;
                fs_map_put(&st->projects_by_id, key, p);
                if (strcmp(p->dname, p->p.name))
                    fs_log(st, LOG_INFO, "project \"%s\" is shown as \"%s\"", p->p.name,
                           p->dname);
            } else if (strcmp(p->p.name, l.v[i].name ? l.v[i].name : "")) {
                rename_str_locked(st, &p->p.name, l.v[i].name);
                free(p->dname);
                p->dname = fs_dir_name(p->p.name);
            }
            p->present = 1;
            fs_map_put(&st->projects_by_dname, p->dname, p);
            arr[n++] = p;
        }
        free(st->projects);
        st->projects = arr;
        st->n_projects = n;
        st->plisted = 1;
        st->plisted_at = fs_now();
        st->plist_dur = st->plisted_at - t0;
    }
    pthread_mutex_unlock(&st->mu);
out:
    pthread_mutex_unlock(&st->plist_mu);
    sa_project_list_clear(&l);
    return r;
}

int fs_project_refresh(struct fs_state *st, struct fs_project *p, int force)
{
    struct sa_folder_list l = {0};
    enum sa_err e;
    int r = 0;
    double t0;

    pthread_mutex_lock(&p->list_mu);
    pthread_mutex_lock(&st->mu);
    if (!force && fresh(st, p->listed, p->listed_at, p->list_dur, p->n_folders, 0)) {
        pthread_mutex_unlock(&st->mu);
        goto out;
    }
    pthread_mutex_unlock(&st->mu);
    t0 = fs_now();
    e = sa_list_folders(st->c, p->p.id, &l);
    if (e) {
        r = fs_fail(st, "list folders", p->p.name, e);
        goto out;
    }
    pthread_mutex_lock(&st->mu);
    {
        struct fs_folder **arr = calloc(l.n + 1, sizeof *arr);
        size_t n = 0;
        for (size_t i = 0; i < p->n_folders; i++)
            p->folders[i]->present = 0;
        fs_map_clear(&p->by_dname);
        for (size_t i = 0; arr && i < l.n; i++) {
            char key[32];
            struct fs_folder *f;
            if (l.v[i].is_root) {
                p->root->id = l.v[i].id;
                continue;
            }
            snprintf(key, sizeof key, "%lld", l.v[i].id);
            f = fs_map_get(&p->by_id, key);
            if (!f) {
                f = folder_new(p, l.v[i].id, l.v[i].name ? l.v[i].name : "", 0);
                if (!f)
                    continue;
                fs_map_put(&p->by_id, key, f);
                if (strcmp(f->dname, f->name))
                    fs_log(st, LOG_INFO, "folder \"%s\" of \"%s\" is shown as \"%s\"", f->name,
                           p->p.name, f->dname);
            } else if (strcmp(f->name, l.v[i].name ? l.v[i].name : "")) {
                rename_str_locked(st, &f->name, l.v[i].name);
                free(f->dname);
                f->dname = fs_dir_name(f->name);
            }
            replace_str(&f->updated_at, l.v[i].updated_at);
            f->present = 1;
            fs_map_put(&p->by_dname, f->dname, f);
            arr[n++] = f;
        }
        free(p->folders);
        p->folders = arr;
        p->n_folders = n;
        p->listed = 1;
        p->listed_at = fs_now();
        p->list_dur = p->listed_at - t0;
    }
    pthread_mutex_unlock(&st->mu);
out:
    pthread_mutex_unlock(&p->list_mu);
    sa_folder_list_clear(&l);
    return r;
}

/* ---------------------------------------------------------------- items */

void fs_item_get(struct fs_item *it)
{
    /* holders increment without st->mu (they already hold a ref, or
     * st->mu); the count reaches 0 only under st->mu (fs_item_put) */
    __atomic_add_fetch(&it->refs, 1, __ATOMIC_RELAXED);
}

/* Free an item that left the listing and that nobody holds (st->mu held). */
static void item_maybe_free_locked(struct fs_state *st, struct fs_item *it)
{
    char key[32];
    if (it->present || __atomic_load_n(&it->refs, __ATOMIC_RELAXED))
        return;
    snprintf(key, sizeof key, "%lld", it->id);
    if (fs_map_get(&it->folder->by_id, key) == it)
        fs_map_del(&it->folder->by_id, key);
    item_free(st, it);
}

void fs_item_put_locked(struct fs_state *st, struct fs_item *it)
{
    if (__atomic_sub_fetch(&it->refs, 1, __ATOMIC_RELAXED) == 0)
        item_maybe_free_locked(st, it);
}

void fs_item_put(struct fs_state *st, struct fs_item *it)
{
    if (!it)
        return;
    pthread_mutex_lock(&st->mu);
    fs_item_put_locked(st, it);
    pthread_mutex_unlock(&st->mu);
}

char *fs_item_name(struct fs_state *st, struct fs_item *it)
{
    char *s;
    pthread_mutex_lock(&st->mu);
    s = strdup(it->name ? it->name : "");
    pthread_mutex_unlock(&st->mu);
    return s;
}

char *fs_item_fname_copy(struct fs_state *st, struct fs_item *it)
{
    char *s;
    pthread_mutex_lock(&st->mu);
    s = strdup(it->fname ? it->fname : "");
    pthread_mutex_unlock(&st->mu);
    return s;
}

static char *item_path_locked(struct fs_state *st, struct fs_item *it)
{
    struct fs_folder *f = it->folder;
    const char *pd = st->level == 0 ? f->proj->dname : "";
    const char *fd = (st->level <= 1 && !f->is_root) ? f->dname : "";
    size_t n = strlen(pd) + strlen(fd) + strlen(it->fname ? it->fname : "") + 4;
    char *p = malloc(n);
    if (!p)
        return NULL;
    snprintf(p, n, "%s%s%s%s/%s", *pd ? "/" : "", pd, *fd ? "/" : "", fd,
             it->fname ? it->fname : "");
    return p;
}

char *fs_item_path(struct fs_state *st, struct fs_item *it)
{
    char *p;
    pthread_mutex_lock(&st->mu);
    p = item_path_locked(st, it);
    pthread_mutex_unlock(&st->mu);
    return p;
}

/* Learn an item's version from an answer that started at @p t0 (st->mu held). */
static void item_update_locked(struct fs_state *st, struct fs_item *it, const struct sa_item *si,
                               double t0)
{
    replace_str(&it->created_at, si->created_at);
    replace_str(&it->updated_at, si->updated_at);
    if (fs_doc_learn(st, it, si->updated_ms, si->annotation_status, t0)) {
        /* the kernel may cache the old version's length */
        char *p = item_path_locked(st, it);
        fs_kernel_inval_later(st, p);
        free(p);
    }
}

/* Find or create the item of @p si in @p f (st->mu held). */
static struct fs_item *item_merge_locked(struct fs_state *st, struct fs_folder *f,
                                         const struct sa_item *si, double t0)
{
    char key[32];
    struct fs_item *it;

    snprintf(key, sizeof key, "%lld", si->id);
    it = fs_map_get(&f->by_id, key);
    if (!it) {
        it = calloc(1, sizeof *it);
        if (!it)
            return NULL;
        it->id = si->id;
        it->folder = f;
        pthread_mutex_init(&it->save_mu, NULL);
        fs_map_put(&f->by_id, key, it);
    }
    if (!it->name || strcmp(it->name, si->name ? si->name : "")) {
        if (it->fname && fs_map_get(&f->by_fname, it->fname) == it)
            fs_map_del(&f->by_fname, it->fname);
        /* renamed on the platform: a reader may hold the old strings
         * without st->mu (log lines), so they are retired, not freed */
        rename_str_locked(st, &it->name, si->name ? si->name : "");
        if (!retire_locked(st, it->fname))
            it->fname = it->name ? fs_item_fname(it->name, f->proj->suffix) : NULL;
        if (it->fname && (strlen(it->fname) != strlen(it->name) + strlen(f->proj->suffix) ||
                          strncmp(it->fname, it->name, strlen(it->name))))
            fs_log(st, LOG_INFO, "item \"%s\" is shown as \"%s\"", it->name, it->fname);
    }
    item_update_locked(st, it, si, t0);
    return it;
}

int fs_folder_refresh(struct fs_state *st, struct fs_folder *f, int mode)
{
    int force = mode == FS_REFRESH_FORCE;
    double min_ttl = mode == FS_REFRESH_LOOKUP ? FS_LOOKUP_MIN_TTL : 0;
    struct sa_item_list l = {0};
    enum sa_err e;
    int r = 0;
    double t0;

    pthread_mutex_lock(&f->list_mu);
    pthread_mutex_lock(&st->mu);
    if (!force && fresh(st, f->listed, f->listed_at, f->list_dur, f->n_items, min_ttl)) {
        pthread_mutex_unlock(&st->mu);
        goto out;
    }
    pthread_mutex_unlock(&st->mu);
    t0 = fs_now();
    e = sa_list_items(st->c, f->proj->p.id, f->id, NULL, 0, &l);
    if (e) {
        r = fs_fail(st, "list items", f->name, e);
        goto out;
    }
    pthread_mutex_lock(&st->mu);
    {
        struct fs_item **arr = calloc(l.n + 1, sizeof *arr), **old = f->items;
        size_t n = 0, nold = f->n_items;
        if (!arr) {
            pthread_mutex_unlock(&st->mu);
            r = -ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < nold; i++)
            old[i]->present = 0;
        fs_map_clear(&f->by_fname);
        for (size_t i = 0; i < l.n; i++) {
            struct fs_item *it = item_merge_locked(st, f, &l.v[i], t0);
            if (!it || !it->fname)
                continue;
            it->present = 1;
            fs_map_put(&f->by_fname, it->fname, it);
            arr[n++] = it;
        }
        f->items = arr;
        f->n_items = n;
        f->listed = 1;
        f->listed_at = fs_now();
        f->list_dur = f->listed_at - t0;
        /* items that left the listing and that nobody holds are freed */
        for (size_t i = 0; i < nold; i++)
            item_maybe_free_locked(st, old[i]);
        free(old);
    }
    pthread_mutex_unlock(&st->mu);
out:
    pthread_mutex_unlock(&f->list_mu);
    sa_item_list_clear(&l);
    return r;
}

void fs_folder_invalidate(struct fs_state *st, struct fs_folder *f)
{
    pthread_mutex_lock(&st->mu);
    f->listed = 0;
    pthread_mutex_unlock(&st->mu);
}

/* Merge a listing by names (st->mu held); the items found get present. */
static void merge_found_locked(struct fs_state *st, struct fs_folder *f,
                               const struct sa_item_list *l, double t0)
{
    for (size_t i = 0; i < l->n; i++) {
        struct fs_item *it = item_merge_locked(st, f, &l->v[i], t0);
        if (!it || !it->fname || it->present || !f->listed)
            continue;
        struct fs_item **arr = realloc(f->items, (f->n_items + 1) * sizeof *arr);
        if (arr) {
            f->items = arr;
            f->items[f->n_items++] = it;
            it->present = 1;
            fs_map_put(&f->by_fname, it->fname, it);
        }
    }
}

int fs_folder_find_item(struct fs_state *st, struct fs_folder *f, const char *fname,
                        struct fs_item **out)
{
    const char *suf = f->proj->suffix;
    size_t fl = strlen(fname), sl = strlen(suf);
    struct sa_item_list l = {0};
    char *base, *name;
    const char *names[1];
    enum sa_err e;
    double t0;

    *out = NULL;
    if (fl <= sl || strcmp(fname + fl - sl, suf))
        return -ENOENT;
    base = strndup(fname, fl - sl);
    name = base ? fs_unescape_item_name(base) : NULL;
    free(base);
    if (!name)
        return -ENOMEM;
    names[0] = name;
    t0 = fs_now();
    e = sa_list_items(st->c, f->proj->p.id, f->id, names, 1, &l);
    free(name);
    if (e) {
        sa_item_list_clear(&l);
        return fs_fail(st, "find item", fname, e);
    }
    pthread_mutex_lock(&st->mu);
    merge_found_locked(st, f, &l, t0);
    for (size_t i = 0; i < l.n; i++) {
        char key[32];
        struct fs_item *it;
        snprintf(key, sizeof key, "%lld", l.v[i].id);
        it = fs_map_get(&f->by_id, key);
        if (it && it->fname && !strcmp(it->fname, fname) && !*out) {
            fs_item_get(it);
            *out = it;
        }
    }
    pthread_mutex_unlock(&st->mu);
    sa_item_list_clear(&l);
    return *out ? 0 : -ENOENT;
}

void fs_items_refetch(struct fs_state *st, struct fs_folder *f, struct fs_item **items, size_t n)
{
    const char **names = calloc(n + 1, sizeof *names);
    struct sa_item_list l = {0};
    double t0 = fs_now();

    if (!names || !n) {
        free(names);
        return;
    }
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < n; i++)
        names[i] = strdup(items[i]->name ? items[i]->name : "");
    pthread_mutex_unlock(&st->mu);
    if (sa_list_items(st->c, f->proj->p.id, f->id, names, n, &l) == SA_OK) {
        pthread_mutex_lock(&st->mu);
        for (size_t i = 0; i < l.n; i++) {
            char key[32];
            struct fs_item *it;
            snprintf(key, sizeof key, "%lld", l.v[i].id);
            it = fs_map_get(&f->by_id, key);
            if (it)
                item_update_locked(st, it, &l.v[i], t0);
        }
        pthread_mutex_unlock(&st->mu);
    }
    sa_item_list_clear(&l);
    for (size_t i = 0; i < n; i++)
        free((char *)names[i]);
    free(names);
}

enum sa_err fs_item_refetch(struct fs_state *st, struct fs_item *it)
{
    struct sa_item si;
    double t0 = fs_now();
    enum sa_err e = sa_get_item(st->c, it->folder->proj->p.id, it->id, &si);
    if (!e) {
        pthread_mutex_lock(&st->mu);
        item_update_locked(st, it, &si, t0);
        pthread_mutex_unlock(&st->mu);
    }
    sa_item_clear(&si);
    return e;
}

void fs_item_revalidate(struct fs_state *st, struct fs_item *it)
{
    double age;
    enum sa_err e;

    pthread_mutex_lock(&st->mu);
    age = fs_now() - it->folder->listed_at;
    pthread_mutex_unlock(&st->mu);
    if (age < st->cfg->cache_timeout)
        return;
    e = fs_item_refetch(st, it);
    if (e && e != SA_ERR_NOTFOUND)
        fs_log(st, LOG_DEBUG, "revalidate %s: %s (%s); using the listed version", it->name,
               sa_strerror(e), sa_last_error());
}

int fs_project_read_only(struct fs_state *st, struct fs_project *p, const char *path)
{
    if (p && p->p.type == SA_PT_MULTIMODAL) {
        fs_log(st, LOG_WARNING, "%s: Multimodal projects are read-only in safs", path);
        return 1;
    }
    return 0;
}

int fs_check_writable(struct fs_state *st, struct fs_project *p, const char *path)
{
    if (st->cfg->read_only)
        return fs_refuse(st, "write", path, EROFS, "read-only mount");
    if (fs_project_read_only(st, p, path))
        return -EROFS;
    return 0;
}
