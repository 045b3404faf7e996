/** @file
 * Names and paths (filesystem.md §1): the SOURCE levels, the reversible
 * escaping of platform names into file names, and path resolution.
 *
 * Escaping (fs_escape_name), a bijection from platform names onto the
 * names it produces; fs_unescape_name is its exact inverse:
 *   `/`            -> `／`   (U+FF0F)
 *   a literal `／` -> `‛／`  (U+201B U+FF0F)
 *   a literal `‛`  -> `‛‛`  (U+201B U+201B)
 *   every other byte as is (invalid UTF-8 included).
 * So a `‛` in a shown name always starts a two-character escape, and a `／`
 * not after such a `‛` always stands for `/`.
 *
 * fs_unescape_name reads left to right: `‛‛` -> `‛`, `‛／` -> `／`,
 * `／` -> `/`. A shown name no escape produces (one typed by a user: mkdir,
 * create) has a lone `‛`, one followed by neither `‛` nor `／`: that `‛`
 * stands for itself. So `mkdir "a‛b"` asks for the platform folder `a‛b`,
 * which lists as `a‛‛b`; `mkdir "a‛‛b"` gives the same folder under the
 * name typed. Unescaping is the inverse of escaping on escaped names only:
 * `‛‛‛` and `‛‛‛‛` both unescape to `‛‛`. fs_unescape_item_name is the
 * same without the directory forms below: an item named `．` has the file
 * `．___objects.json`, and its name is `．`, not `.`.
 *
 * Directories: a folder named `.` or `..` is shown as `．` / `．．`
 * (U+FF0E), an empty name as `．．．`. A file name longer than NAME_MAX
 * with its suffix is shown as its first 200 bytes (cut at a UTF-8 boundary)
 * + `‥` (U+2025) + 8 hex digits of the CRC-32 of the full platform name.
 * Shortened names are not reversible: they are resolved through the listing
 * (the folder's by_fname table), as every item name is.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

#define FULLWIDTH_SLASH "\xef\xbc\x8f"   /* U+FF0F */
#define REV_QUOTE "\xe2\x80\x9b"         /* U+201B */
#define FULLWIDTH_DOT "\xef\xbc\x8e"     /* U+FF0E */
#define TWO_DOTS "\xe2\x80\xa5"          /* U+2025 */
#define FRAMES_SUFFIX "___frames.json"

uint32_t fs_crc32(const char *s, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= (unsigned char)s[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

char *fs_escape_name(const char *name)
{
    size_t n = strlen(name);
    /* worst case: every byte a `/` (1 -> 3 bytes); a `／` or `‛` is 3 -> 6 */
    char *out = malloc(n * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = name; *p;) {
        if (*p == '/') {
            memcpy(o, FULLWIDTH_SLASH, 3);
            o += 3;
            p++;
        } else if (!strncmp(p, FULLWIDTH_SLASH, 3)) {
            memcpy(o, REV_QUOTE FULLWIDTH_SLASH, 6);
            o += 6;
            p += 3;
        } else if (!strncmp(p, REV_QUOTE, 3)) {
            memcpy(o, REV_QUOTE REV_QUOTE, 6);
            o += 6;
            p += 3;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}

char *fs_unescape_item_name(const char *shown)
{
    size_t n = strlen(shown);
    char *out, *o;

    out = malloc(n + 1);
    if (!out)
        return NULL;
    o = out;
    for (const char *p = shown; *p;) {
        if (!strncmp(p, REV_QUOTE REV_QUOTE, 6) || !strncmp(p, REV_QUOTE FULLWIDTH_SLASH, 6)) {
            /* `‛‛` -> `‛`, `‛／` -> `／`: the escaped character */
            memcpy(o, p + 3, 3);
            o += 3;
            p += 6;
        } else if (!strncmp(p, FULLWIDTH_SLASH, 3)) {
            *o++ = '/';
            p += 3;
        } else {
            /* includes a lone `‛`: it stands for itself */
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}

char *fs_unescape_name(const char *shown)
{
    if (!strcmp(shown, FULLWIDTH_DOT))
        return strdup(".");
    if (!strcmp(shown, FULLWIDTH_DOT FULLWIDTH_DOT))
        return strdup("..");
    return fs_unescape_item_name(shown);
}

char *fs_dir_name(const char *name)
{
    if (!strcmp(name, "."))
        return strdup(FULLWIDTH_DOT);
    if (!strcmp(name, ".."))
        return strdup(FULLWIDTH_DOT FULLWIDTH_DOT);
    if (!*name)
        return strdup(FULLWIDTH_DOT FULLWIDTH_DOT FULLWIDTH_DOT);
    return fs_escape_name(name);
}

char *fs_item_fname(const char *name, const char *suffix)
{
    char *e = fs_escape_name(name), *out;
    size_t el, sl = strlen(suffix);

    if (!e)
        return NULL;
    el = strlen(e);
    if (el + sl <= NAME_MAX) {
        out = malloc(el + sl + 1);
        if (out) {
            memcpy(out, e, el);
            memcpy(out + el, suffix, sl + 1);
        }
    } else {
        size_t cut = 200;
        /* back off to a UTF-8 boundary: never cut before a continuation byte
         * (at most 3: a longer run is invalid UTF-8, which is kept as it is,
         * not cut down to nothing) */
        while (cut > 197 && ((unsigned char)e[cut] & 0xC0) == 0x80)
            cut--;
        out = malloc(cut + 3 + 8 + sl + 1);
        if (out) {
            memcpy(out, e, cut);
            memcpy(out + cut, TWO_DOTS, 3);
            snprintf(out + cut + 3, 9, "%08x", fs_crc32(name, strlen(name)));
            memcpy(out + cut + 11, suffix, sl + 1);
        }
    }
    free(e);
    return out;
}

int fs_ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

int fs_is_fuse_hidden(const char *name)
{
    return !strncmp(name, ".fuse_hidden", 12);
}

/* Look @p name up in a folder directory: item, scratch, ghost, frames or
 * nothing (a name an unlink hid is nothing, with loc->item set). */
static int lookup_in_folder(struct fs_state *st, struct fs_folder *f, const char *name,
                            struct fs_loc *loc)
{
    /* libfuse probes `.fuse_hidden…` names when it hides an open file: no
     * listing for them */
    if (!fs_is_fuse_hidden(name)) {
        int r = fs_folder_refresh(st, f, FS_REFRESH_LOOKUP);
        if (r)
            return r;
    }
    pthread_mutex_lock(&st->mu);
    loc->fold = f;
    loc->kind = FS_K_NONE;
    if ((loc->item = fs_map_get(&f->by_fname, name))) {
        loc->kind = FS_K_ITEM;
    } else if ((loc->scr = fs_map_get(&f->scratch, name))) {
        loc->kind = FS_K_SCRATCH;
        loc->scr->refs++;
    } else if (fs_ghost_kept(fs_map_get(&f->ghosts, name))) {
        /* libfuse unlinks a ghost at its last close; a node that raced
         * with the hide still reaches it afterwards (its open, then its
         * fstat, which has no descriptor): kept for FS_GHOST_KEEP s */
        loc->ghost = fs_map_get(&f->ghosts, name);
        loc->kind = FS_K_GHOST;
        loc->item = loc->ghost->item;
    } else if (f->proj->p.type == SA_PT_VIDEO && fs_ends_with(name, FRAMES_SUFFIX) &&
               strlen(name) > strlen(FRAMES_SUFFIX)) {
        size_t bl = strlen(name) - strlen(FRAMES_SUFFIX), sl = strlen(f->proj->suffix);
        char *fn = malloc(bl + sl + 1);
        if (fn) {
            memcpy(fn, name, bl);
            memcpy(fn + bl, f->proj->suffix, sl + 1);
            loc->item = fs_map_get(&f->by_fname, fn);
            free(fn);
        }
        loc->kind = loc->item ? FS_K_FRAMES : FS_K_NONE;
    }
    if (loc->item)
        fs_item_get(loc->item);
    pthread_mutex_unlock(&st->mu);
    if ((loc->kind == FS_K_ITEM || loc->kind == FS_K_FRAMES) && fs_doc_hidden(st, loc->item))
        loc->kind = FS_K_NONE; /* removed in this mount; loc->item kept for a re-create */
    return 0;
}

void fs_loc_put(struct fs_state *st, struct fs_loc *loc)
{
    if (loc->item)
        fs_item_put(st, loc->item);
    if (loc->scr) {
        pthread_mutex_lock(&st->mu);
        loc->scr->refs--;
        fs_scratch_maybe_free_locked(st, loc->scr);
        pthread_mutex_unlock(&st->mu);
    }
    loc->item = NULL;
    loc->scr = NULL;
    loc->ghost = NULL;
}

/* Projects and folders change rarely: a name found in a listing younger
 * than max(cache_timeout, 1 s) is trusted without a request (with
 * cache_timeout=0 every getattr of `ls -l dir` would otherwise re-list the
 * project's folders). A name not found re-lists as cache_timeout says. */
static int young(struct fs_state *st, int listed, double at)
{
    double ttl = st->cfg->cache_timeout > FS_LOOKUP_MIN_TTL ? st->cfg->cache_timeout
                                                            : FS_LOOKUP_MIN_TTL;
    return listed && fs_now() - at < ttl;
}

int fs_resolve(struct fs_state *st, const char *path, struct fs_loc *loc)
{
    enum fs_kind cur;
    const char *p = path;
    char name[NAME_MAX * 4 + 1];
    int r;

    memset(loc, 0, sizeof *loc);
    cur = st->level == 0 ? FS_K_TEAM : st->level == 1 ? FS_K_PROJECT : FS_K_FOLDER;
    loc->proj = st->src_proj;
    loc->fold = st->level == 1 ? st->src_proj->root : st->src_fold;
    loc->kind = cur;
    loc->parent = FS_K_NONE;

    while (*p) {
        const char *e;
        size_t n;
        while (*p == '/')
            p++;
        if (!*p)
            break;
        e = strchr(p, '/');
        n = e ? (size_t)(e - p) : strlen(p);
        if (n > NAME_MAX)
            r = -ENAMETOOLONG;
        else
            r = 0;
        if (r || cur == FS_K_ITEM || cur == FS_K_FRAMES || cur == FS_K_SCRATCH ||
            cur == FS_K_GHOST || cur == FS_K_CLASSES_FILE || cur == FS_K_NONE) {
            if (!r)
                r = cur == FS_K_NONE ? -ENOENT : -ENOTDIR;
            fs_loc_put(st, loc);
            return r;
        }
        memcpy(name, p, n);
        name[n] = 0;
        switch (cur) {
        case FS_K_ITEM:
        case FS_K_FRAMES:
        case FS_K_SCRATCH:
        case FS_K_GHOST:
        case FS_K_CLASSES_FILE:
        case FS_K_NONE:
            break;
        case FS_K_CLASSES_DIR:
            loc->parent = FS_K_CLASSES_DIR;
            loc->leaf = p;
            loc->kind = !strcmp(name, "classes.json") ? FS_K_CLASSES_FILE : FS_K_NONE;
            break;
        case FS_K_TEAM: {
            struct fs_project *pr;
            pthread_mutex_lock(&st->mu);
            pr = young(st, st->plisted, st->plisted_at) ? fs_map_get(&st->projects_by_dname, name)
                                                        : NULL;
            pthread_mutex_unlock(&st->mu);
            if (!pr) {
                r = fs_projects_refresh(st, 0);
                if (r)
                    return r;
                pthread_mutex_lock(&st->mu);
                pr = fs_map_get(&st->projects_by_dname, name);
                pthread_mutex_unlock(&st->mu);
            }
            loc->parent = FS_K_TEAM;
            loc->leaf = p;
            if (pr) {
                loc->proj = pr;
                loc->fold = pr->root;
                loc->kind = FS_K_PROJECT;
            } else {
                loc->kind = FS_K_NONE;
            }
            break;
        }
        case FS_K_PROJECT: {
            struct fs_folder *fo;
            pthread_mutex_lock(&st->mu);
            fo = young(st, loc->proj->listed, loc->proj->listed_at)
                     ? fs_map_get(&loc->proj->by_dname, name) : NULL;
            pthread_mutex_unlock(&st->mu);
            if (!fo && !fs_is_fuse_hidden(name)) {
                r = fs_project_refresh(st, loc->proj, 0);
                if (r)
                    return r;
                pthread_mutex_lock(&st->mu);
                fo = fs_map_get(&loc->proj->by_dname, name);
                pthread_mutex_unlock(&st->mu);
            }
            loc->parent = FS_K_PROJECT;
            loc->leaf = p;
            if (fo) {
                loc->fold = fo;
                loc->kind = FS_K_FOLDER;
            } else if (!strcmp(name, "classes") && fs_classes_shown(st, loc->proj)) {
                loc->kind = FS_K_CLASSES_DIR;
            } else {
                r = lookup_in_folder(st, loc->proj->root, name, loc);
                if (r)
                    return r;
            }
            break;
        }
        case FS_K_FOLDER:
            loc->parent = FS_K_FOLDER;
            loc->leaf = p;
            r = lookup_in_folder(st, loc->fold, name, loc);
            if (r)
                return r;
            break;
        }
        cur = loc->kind;
        p += n;
    }
    return 0;
}
