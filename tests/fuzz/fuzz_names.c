/* fs/path.c's name escaping (filesystem.md §1), a property target.
 * Input: one or two platform names separated by a NUL byte; the first is
 * also read as a name a user typed (mkdir, create: fs/dirs.c, fs/tree.c).
 * Properties, for every name:
 *  - an escaped name (fs_escape_name, fs_dir_name, fs_item_fname) never holds
 *    '/' (nor NUL: it is a C string of the escaped bytes), so it is one path
 *    component; an item's file name fits NAME_MAX and ends with the suffix;
 *  - unescape(escape(n)) == n (the directory forms of `.`, `..` and the
 *    empty name excepted: documented);
 *  - a shown name dirs.c accepts (fs_dir_name(unescape(s)) == s) is the
 *    escape of exactly one platform name;
 *  - a shortened file name keeps valid UTF-8 valid (cut at a boundary);
 *  - distinct names never collide: escape, item file names (unless both are
 *    shortened with the same prefix and CRC-32) and directory names (the
 *    documented dot forms excepted);
 *  - the platform's skeleton document for the name is valid JSON and its
 *    metadata.name reads back as the name (valid UTF-8 names). */
#include <limits.h>
#include <string.h>

#include "fs_i.h"
#include "fuzz.h"
#include "sa/doc.h"

#define FW_DOT "\xef\xbc\x8e"
#define SUFFIX "___objects.json"

/* path.c's resolver calls into the rest of the daemon; the escaping never
 * does. These stand-ins keep the target to path.c (no --gc-sections: it
 * does not drop the resolver under libFuzzer's coverage instrumentation). */
void *fs_map_get(const struct fs_map *m, const char *key) { (void)m; (void)key; abort(); }
double fs_now(void) { abort(); }
int fs_projects_refresh(struct fs_state *st, int force) { (void)st; (void)force; abort(); }
int fs_project_refresh(struct fs_state *st, struct fs_project *p, int force)
{
    (void)st; (void)p; (void)force;
    abort();
}
int fs_folder_refresh(struct fs_state *st, struct fs_folder *f, int mode)
{
    (void)st; (void)f; (void)mode;
    abort();
}
void fs_item_get(struct fs_item *it) { (void)it; abort(); }
void fs_item_put(struct fs_state *st, struct fs_item *it) { (void)st; (void)it; abort(); }
int fs_doc_hidden(struct fs_state *st, struct fs_item *it) { (void)st; (void)it; abort(); }
void fs_scratch_maybe_free_locked(struct fs_state *st, struct fs_scratch *s)
{
    (void)st; (void)s;
    abort();
}
int fs_classes_shown(struct fs_state *st, struct fs_project *p) { (void)st; (void)p; abort(); }
int fs_ghost_kept(const struct fs_ghost *g) { (void)g; abort(); }

static int valid_utf8(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        int n = *u < 0x80 ? 0 : (*u & 0xE0) == 0xC0 ? 1 : (*u & 0xF0) == 0xE0 ? 2
              : (*u & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || (n == 1 && *u < 0xC2))
            return 0;
        unsigned cp = n == 0 ? *u : n == 1 ? (*u & 0x1Fu) : n == 2 ? (*u & 0x0Fu) : (*u & 0x07u);
        u++;
        for (int i = 0; i < n; i++, u++) {
            if ((*u & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (*u & 0x3Fu);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
    }
    return 1;
}

/* the names fs_dir_name shows in the documented special forms */
static int dot_case(const char *n)
{
    return !*n || !strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, FW_DOT) ||
           !strcmp(n, FW_DOT FW_DOT) || !strcmp(n, FW_DOT FW_DOT FW_DOT);
}

static char *nn(char *p)
{
    if (!p)
        abort();
    return p;
}

static int shortened(const char *f)
{
    return strlen(f) >= 3 + 8 + strlen(SUFFIX) &&
           !memcmp(f + strlen(f) - strlen(SUFFIX) - 11, "\xe2\x80\xa5", 3);
}

static void one(const char *n, char **esc, char **item, char **dir)
{
    char *e = nn(fs_escape_name(n));
    FUZZ_CHECK(!strchr(e, '/'), "escape holds '/'");
    char *u = nn(fs_unescape_name(e));
    if (strcmp(e, FW_DOT) && strcmp(e, FW_DOT FW_DOT))
        FUZZ_CHECK(!strcmp(u, n), "unescape(escape(n)) != n");
    free(u);

    char *f = nn(fs_item_fname(n, SUFFIX));
    size_t fl = strlen(f);
    FUZZ_CHECK(!strchr(f, '/'), "item file name holds '/'");
    FUZZ_CHECK(fl <= NAME_MAX, "item file name of %zu bytes", fl);
    FUZZ_CHECK(fs_ends_with(f, SUFFIX), "item file name lost its suffix");
    if (valid_utf8(n))
        FUZZ_CHECK(valid_utf8(f), "shortening broke UTF-8");
    if (shortened(f) && strlen(e) + strlen(SUFFIX) > NAME_MAX)
        FUZZ_CHECK(fl >= 197 + 3 + 8 + strlen(SUFFIX), "a shortened name kept %zu bytes", fl);
    if (!shortened(f) || strlen(e) + strlen(SUFFIX) <= NAME_MAX) {
        /* tree.c finds an item by unescaping its file name minus the suffix */
        char *base = nn(strndup(f, fl - strlen(SUFFIX)));
        u = nn(fs_unescape_item_name(base));
        FUZZ_CHECK(!strcmp(u, n), "item lookup: unescape(file name) != name");
        free(u);
        free(base);
    }

    char *d = nn(fs_dir_name(n));
    FUZZ_CHECK(!strchr(d, '/') && *d, "directory name empty or holds '/'");
    FUZZ_CHECK(strcmp(d, ".") && strcmp(d, ".."), "directory name . or ..");

    char *sk = NULL;
    size_t sl = 0;
    FUZZ_CHECK(sa_doc_skeleton(n, "NotStarted", 1, 2, &sk, &sl) == SA_OK, "skeleton");
    char why[256];
    FUZZ_CHECK(sa_doc_validate(sk, sl, why, sizeof why) == SA_OK, "skeleton invalid: %s", why);
    long long id = 0;
    char *mn = NULL;
    FUZZ_CHECK(sa_doc_meta(sk, sl, &id, &mn) == SA_OK && id == 2 && mn, "skeleton meta");
    if (valid_utf8(n))
        FUZZ_CHECK(!strcmp(mn, n), "skeleton name differs");
    free(mn);
    free(sk);
    *esc = e;
    *item = f;
    *dir = d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 2);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = 0;
    const char *a = buf, *b = buf + strlen(buf) + 1;
    int two = (size_t)(b - buf) <= size;

    char *ea, *fa, *da;
    one(a, &ea, &fa, &da);

    /* a as a shown name typed by a user */
    char *u = nn(fs_unescape_name(a));
    FUZZ_CHECK(strlen(u) <= strlen(a), "unescape grew the name");
    char *back = nn(fs_dir_name(u));
    if (!strcmp(back, a) && !dot_case(u)) {
        /* dirs.c accepts it: it is exactly the escape of u */
        char *e = nn(fs_escape_name(u));
        FUZZ_CHECK(!strcmp(e, a), "accepted shown name is not an escape");
        free(e);
    }
    free(back);
    free(u);

    if (two) {
        char *eb, *fb, *db;
        one(b, &eb, &fb, &db);
        if (strcmp(a, b)) {
            FUZZ_CHECK(strcmp(ea, eb), "two names escape alike");
            if (!(shortened(fa) && shortened(fb)))
                FUZZ_CHECK(strcmp(fa, fb), "two items share a file name");
            else if (!strcmp(fa, fb))
                FUZZ_CHECK(fs_crc32(a, strlen(a)) == fs_crc32(b, strlen(b)),
                           "shortened names collide without a CRC collision");
            if (!dot_case(a) && !dot_case(b))
                FUZZ_CHECK(strcmp(da, db), "two folders share a directory name");
        }
        free(eb);
        free(fb);
        free(db);
    }
    free(ea);
    free(fa);
    free(da);
    free(buf);
    return 0;
}
