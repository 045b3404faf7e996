/* Pure tests of fs/path.c's name escaping (filesystem.md §1): `/` -> `／`,
 * `／` -> `‛／`, `‛` -> `‛‛`; fs_unescape_name is the exact inverse on
 * escaped names, and the escaping is injective. Generated names over an
 * alphabet rich in the three special characters, their stray bytes (a
 * partial UTF-8 sequence of each), dots and multi-byte UTF-8: every string
 * up to length 4 over a small alphabet, then random ones with a fixed seed.
 *
 * Only the escaping functions of path.c are used; the test links path.c with
 * --gc-sections so fs_resolve's references to the rest of the daemon drop
 * out (see meson.build). */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

#define FW_SLASH "\xef\xbc\x8f" /* ／ U+FF0F */
#define RQ "\xe2\x80\x9b"       /* ‛ U+201B */
#define FW_DOT "\xef\xbc\x8e"   /* ． U+FF0E */

static int failures;

#define check(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #cond);                       \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
            if (++failures > 20)                                                             \
                exit(1);                                                                     \
        }                                                                                    \
    } while (0)

/* printable form for messages: non-ASCII bytes as \xNN */
static const char *vis(const char *s)
{
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ & 3], *o = b;
    for (; *s && o < b + sizeof buf[0] - 5; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c < 0x7f)
            *o++ = (char)c;
        else
            o += sprintf(o, "\\x%02x", c);
    }
    *o = 0;
    return b;
}

static char *esc(const char *n)
{
    char *e = fs_escape_name(n);
    if (!e) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return e;
}

static char *unesc(const char *s)
{
    char *u = fs_unescape_name(s);
    if (!u) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return u;
}

static void expect_escape(const char *name, const char *shown)
{
    char *e = esc(name), *u = unesc(shown);
    check(!strcmp(e, shown), "escape(%s) = %s, want %s", vis(name), vis(e), vis(shown));
    check(!strcmp(u, name), "unescape(%s) = %s, want %s", vis(shown), vis(u), vis(name));
    free(e);
    free(u);
}

static void expect_unescape(const char *shown, const char *name)
{
    char *u = unesc(shown);
    check(!strcmp(u, name), "unescape(%s) = %s, want %s", vis(shown), vis(u), vis(name));
    free(u);
}

/* A shown name with no lone `‛` (one followed by neither `‛` nor `／`). */
static int canonical(const char *s)
{
    for (const char *p = s; *p;) {
        if (!strncmp(p, RQ, 3)) {
            if (strncmp(p + 3, RQ, 3) && strncmp(p + 3, FW_SLASH, 3))
                return 0;
            p += 6;
        } else {
            p++;
        }
    }
    return 1;
}

static int is_dot_name(const char *e)
{
    return !strcmp(e, FW_DOT) || !strcmp(e, FW_DOT FW_DOT);
}

/* The properties for one platform name; returns its escape (new). */
static char *one(const char *n)
{
    char *e = esc(n), *u = unesc(e);
    check(!strchr(e, '/'), "escape(%s) = %s holds a '/'", vis(n), vis(e));
    check(canonical(e), "escape(%s) = %s has a lone U+201B", vis(n), vis(e));
    if (is_dot_name(e))
        /* the directory case: `．`/`．．` are what `.`/`..` show as */
        check(!strcmp(u, strlen(e) == 3 ? "." : ".."), "unescape(%s) = %s", vis(e), vis(u));
    else
        check(!strcmp(u, n), "unescape(escape(%s)) = %s (escape: %s)", vis(n), vis(u), vis(e));
    free(u);
    return e;
}

struct pair {
    char *name, *shown;
};

static int by_shown(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    int c = strcmp(x->shown, y->shown);
    return c ? c : strcmp(x->name, y->name);
}

/* Distinct names must give distinct shown names. */
static void check_injective(struct pair *v, size_t n)
{
    qsort(v, n, sizeof *v, by_shown);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(v[i - 1].shown, v[i].shown))
            check(!strcmp(v[i - 1].name, v[i].name), "%s and %s both show as %s",
                  vis(v[i - 1].name), vis(v[i].name), vis(v[i].shown));
}

static void free_pairs(struct pair *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].shown);
    }
    free(v);
}

static const char *const small_alpha[] = {
    "/", FW_SLASH, RQ, "a", ".", "\xe2", "\x80\x9b", "\xef\xbc",
};
#define N_SMALL (sizeof small_alpha / sizeof small_alpha[0])

static void exhaustive(void)
{
    size_t total = 0, k = 0;
    for (size_t len = 0, c = 1; len <= 4; len++, c *= N_SMALL)
        total += c;
    struct pair *v = calloc(total, sizeof *v);
    for (size_t len = 0; len <= 4; len++) {
        size_t idx[4] = {0};
        for (;;) {
            char buf[64] = "";
            for (size_t i = 0; i < len; i++)
                strcat(buf, small_alpha[idx[i]]);
            v[k].name = strdup(buf);
            v[k].shown = one(buf);
            k++;
            size_t i = 0;
            while (i < len && ++idx[i] == N_SMALL)
                idx[i++] = 0;
            if (i == len)
                break;
        }
    }
    check(k == total, "generated %zu of %zu", k, total);
    check_injective(v, k);
    free_pairs(v, k);
    printf("ok exhaustive: %zu names up to 4 symbols over %zu\n", k, N_SMALL);
}

static uint64_t rng = 0x5afe5afe20240801ull;
static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static const char *const alpha[] = {
    "/", "/", FW_SLASH, FW_SLASH, RQ, RQ, RQ RQ, RQ FW_SLASH, ".", "..", FW_DOT,
    "a", "b", "Z", "0", " ", "_", "-", "\\", "%", "\xc3\xa9" /* é */,
    "\xe6\x9d\xb1" /* 東 */, "\xf0\x9f\x9a\x97" /* 🚗 */, "\xe2\x80\xa5" /* ‥ */,
    "\xe2\x80\x9c" /* “ */, "\xe2", "\x80", "\x9b", "\xef", "\xbc", "\x8f", "\xe2\x80",
    "\xef\xbc", "\xff",
};
#define N_ALPHA (sizeof alpha / sizeof alpha[0])

static void random_names(size_t count)
{
    struct pair *v = calloc(count, sizeof *v);
    size_t noncanon = 0;
    for (size_t k = 0; k < count; k++) {
        char buf[256] = "";
        size_t len = next() % 25;
        for (size_t i = 0; i < len; i++)
            strcat(buf, alpha[next() % N_ALPHA]);
        v[k].name = strdup(buf);
        v[k].shown = one(buf);

        /* the same string read as a shown name (so without '/'): unescaping
         * it and escaping the result gives it back exactly when it has no
         * lone `‛` */
        if (!is_dot_name(buf) && !strchr(buf, '/')) {
            char *u = unesc(buf), *e = esc(u);
            int same = !strcmp(e, buf);
            check(same == canonical(buf), "escape(unescape(%s)) = %s", vis(buf), vis(e));
            noncanon += !same;
            free(u);
            free(e);
        }
    }
    check_injective(v, count);
    free_pairs(v, count);
    printf("ok random: %zu names (seed fixed), %zu of them not canonical as shown names\n",
           count, noncanon);
}

static void fixed(void)
{
    /* the defect: these two used to both show as `‛／c.jpg` */
    expect_escape(RQ "/c.jpg", RQ RQ FW_SLASH "c.jpg");
    expect_escape(FW_SLASH "c.jpg", RQ FW_SLASH "c.jpg");
    expect_escape("a/b/c.jpg", "a" FW_SLASH "b" FW_SLASH "c.jpg");
    expect_escape(RQ FW_SLASH "d.jpg", RQ RQ RQ FW_SLASH "d.jpg");
    expect_escape(RQ RQ "x.jpg", RQ RQ RQ RQ "x.jpg");
    expect_escape("x" RQ "y", "x" RQ RQ "y");
    expect_escape(RQ, RQ RQ);
    expect_escape("plain name.jpg", "plain name.jpg");
    expect_escape("", "");
    expect_escape("//", FW_SLASH FW_SLASH);
    /* a partial `‛` or `／` is not one */
    expect_escape("\xe2\x80", "\xe2\x80");
    expect_escape("\xef\xbc/", "\xef\xbc" FW_SLASH);

    /* shown names no escape produces: a lone `‛` stands for itself */
    expect_unescape("a" RQ "b", "a" RQ "b");
    expect_unescape(RQ, RQ);
    expect_unescape("a" RQ, "a" RQ);
    expect_unescape(RQ RQ RQ, RQ RQ);
    expect_unescape(RQ RQ RQ RQ, RQ RQ);
    expect_unescape(RQ "/", RQ "/");
    /* directories */
    expect_unescape(FW_DOT, ".");
    expect_unescape(FW_DOT FW_DOT, "..");
    expect_unescape(FW_DOT "x", FW_DOT "x");

    char *d;
    d = fs_dir_name(".");
    check(!strcmp(d, FW_DOT), "dir . -> %s", vis(d));
    free(d);
    d = fs_dir_name("..");
    check(!strcmp(d, FW_DOT FW_DOT), "dir .. -> %s", vis(d));
    free(d);
    d = fs_dir_name("");
    check(!strcmp(d, FW_DOT FW_DOT FW_DOT), "dir '' -> %s", vis(d));
    free(d);
    d = fs_dir_name(RQ "/");
    check(!strcmp(d, RQ RQ FW_SLASH), "dir ‛/ -> %s", vis(d));
    free(d);

    /* item file names: suffix added; too long ones shortened within NAME_MAX */
    d = fs_item_fname(RQ "/c.jpg", "___objects.json");
    check(!strcmp(d, RQ RQ FW_SLASH "c.jpg___objects.json"), "item -> %s", vis(d));
    free(d);
    char longn[400] = "";
    for (int i = 0; i < 120; i++)
        strcat(longn, i % 3 ? RQ : "/");
    d = fs_item_fname(longn, "___objects.json");
    check(strlen(d) <= NAME_MAX && !strchr(d, '/'), "long -> %zu bytes", strlen(d));
    free(d);
    printf("ok fixed cases\n");
}

int main(void)
{
    fixed();
    exhaustive();
    random_names(20000);
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    return 0;
}
