/** @file
 * `classes/classes.json` with -o suffix=.json (filesystem.md §4): the SDK's
 * download_annotations writes the project's classes there (api.md §9.3:
 * GET classes, `attribute_groups[*].is_multiselect` dropped), so an SDK
 * download folder copies back in with `cp -r dl/. MNT/Project/`. The file
 * shows the project's classes; a write whose parsed content equals them
 * sends nothing, any other is EROFS (classes are not edited through the
 * mount). A real platform folder named `classes` takes precedence.
 *
 * Class documents hold ids, names, colours and attribute groups, no
 * precision-sensitive numbers, so jansson parses and prints them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fs_i.h"

int fs_classes_shown(struct fs_state *st, struct fs_project *p)
{
    int shown;
    if (strcmp(p->suffix, ".json"))
        return 0;
    pthread_mutex_lock(&st->mu);
    shown = !fs_map_get(&p->by_dname, "classes");
    pthread_mutex_unlock(&st->mu);
    return shown;
}

/* The classes as the SDK writes them (new reference). */
static json_t *classes_json(struct fs_state *st, struct fs_project *p)
{
    char *raw = NULL;
    size_t len = 0;
    json_error_t je;
    json_t *a, *c, *g;
    size_t i, k;
    enum sa_err e = sa_list_classes(st->c, p->p.id, &raw, &len);

    if (e) {
        fs_fail(st, "list classes", p->p.name, e);
        return NULL;
    }
    a = json_loadb(raw, len, 0, &je);
    free(raw);
    if (!json_is_array(a)) {
        fs_log(st, LOG_ERR, "classes of %s: the platform's answer is not a list", p->p.name);
        json_decref(a);
        return NULL;
    }
    json_array_foreach(a, i, c) {
        json_array_foreach(json_object_get(c, "attribute_groups"), k, g)
            json_object_del(g, "is_multiselect");
    }
    return a;
}

int fs_classes_get(struct fs_state *st, struct fs_project *p, char **out, size_t *len)
{
    json_t *a;
    char *s;

    *out = NULL;
    pthread_mutex_lock(&st->mu);
    if (p->classes && fs_now() - p->classes_at < fs_trust_window(st)) {
        *out = malloc(p->classes_len + 1);
        if (*out) {
            memcpy(*out, p->classes, p->classes_len + 1);
            *len = p->classes_len;
        }
        pthread_mutex_unlock(&st->mu);
        return *out ? 0 : -ENOMEM;
    }
    pthread_mutex_unlock(&st->mu);
    a = classes_json(st, p);
    if (!a)
        return -EIO;
    s = json_dumps(a, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
    json_decref(a);
    if (!s)
        return -ENOMEM;
    *len = strlen(s) + 1;
    *out = malloc(*len + 1);
    if (!*out) {
        free(s);
        return -ENOMEM;
    }
    memcpy(*out, s, *len - 1);
    (*out)[*len - 1] = '\n';
    (*out)[*len] = 0;
    free(s);
    pthread_mutex_lock(&st->mu);
    free(p->classes);
    p->classes = malloc(*len + 1);
    if (p->classes) {
        memcpy(p->classes, *out, *len + 1);
        p->classes_len = *len;
        p->classes_at = fs_now();
    }
    pthread_mutex_unlock(&st->mu);
    return 0;
}

int fs_classes_check(struct fs_state *st, struct fs_project *p, const char *data, size_t len,
                     const char *path)
{
    json_error_t je;
    json_t *mine = json_loadb(data, len, 0, &je), *theirs;
    int same;

    if (!mine) {
        fs_log(st, LOG_ERR, "%s: not valid JSON (line %d: %s); classes are not changed through "
                            "the mount (EROFS)", path, je.line, je.text);
        return -EROFS;
    }
    theirs = classes_json(st, p);
    if (!theirs) {
        json_decref(mine);
        return -EIO;
    }
    same = json_equal(mine, theirs);
    json_decref(mine);
    json_decref(theirs);
    if (!same) {
        fs_log(st, LOG_ERR, "%s: differs from the project's classes; classes are not changed "
                            "through the mount (EROFS)", path);
        return -EROFS;
    }
    fs_log(st, LOG_DEBUG, "%s: equals the project's classes, nothing sent", path);
    return 0;
}
