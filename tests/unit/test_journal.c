/* fs/journal.c, pure: records written durably are loaded back whole and in
 * seq order (names, base key, status, the prepared bytes with NULs and
 * newlines), the upload marker is seen, removal removes both files, a
 * half-written temporary record (a crash before its rename) is dropped at
 * load, and a record without its header line is ignored. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs_i.h"

static int failures;

#define check(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);                      \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

static void touch(const char *dir, const char *name, const char *text)
{
    char p[4096];
    FILE *f;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static int exists(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

int main(void)
{
    char dir[] = "/tmp/safs-journal-XXXXXX";
    static const char doc[] = "{\"a\":\"x\\ny\"}\n\n{\"second line\":1}";
    struct fs_jrec a = {0}, b = {0}, **v = NULL;
    size_t n = 0;
    uint64_t up[1] = {7};

    if (!mkdtemp(dir))
        return 1;
    a.seq = 7;
    a.project_id = 11;
    a.folder_id = 22;
    a.item_id = 33;
    char n1[] = "img \"one\"\n.jpg", n2[] = "P/q", n3[] = "root", n4[] = "img.jpg___objects.json",
         n5[] = "InProgress", n6[] = "{}";
    a.name = n1;
    a.pname = n2;
    a.folder = n3;
    a.fname = n4;
    a.base_ms = 1700000000123;
    a.base_status = 2;
    a.status = n5;
    a.data = (char *)doc;
    a.len = sizeof doc - 1;
    b = a;
    b.seq = 3;
    b.blind = 1;
    b.status = NULL;
    b.data = n6;
    b.len = 2;
    check(fs_journal_write(dir, &a) == 0);
    check(fs_journal_write(dir, &b) == 0);
    fs_journal_mark_uploaded(dir, up, 1);
    touch(dir, ".0000000000000009.tmp", "{\"seq\":9");
    touch(dir, "000000000000000a.rec", "no header line");

    check(fs_journal_load(dir, &v, &n) == 0);
    check(n == 2);
    if (n == 2) {
        check(v[0]->seq == 3 && v[1]->seq == 7);
        check(v[0]->blind && !v[0]->uploaded && !v[0]->status);
        check(v[0]->len == 2 && !memcmp(v[0]->data, "{}", 2));
        check(!v[1]->blind && v[1]->uploaded);
        check(v[1]->project_id == 11 && v[1]->folder_id == 22 && v[1]->item_id == 33);
        check(!strcmp(v[1]->name, a.name) && !strcmp(v[1]->pname, "P/q"));
        check(!strcmp(v[1]->fname, n4) && !strcmp(v[1]->folder, "root"));
        check(v[1]->base_ms == a.base_ms && v[1]->base_status == 2);
        check(v[1]->status && !strcmp(v[1]->status, "InProgress"));
        check(v[1]->len == a.len && !memcmp(v[1]->data, doc, a.len));
    }
    for (size_t i = 0; i < n; i++) {
        fs_jrec_clear(v[i]);
        free(v[i]);
    }
    free(v);
    check(!exists(dir, ".0000000000000009.tmp"));

    fs_journal_remove(dir, 7);
    check(!exists(dir, "0000000000000007.rec") && !exists(dir, "0000000000000007.up"));
    check(fs_journal_load(dir, &v, &n) == 0 && n == 1);
    for (size_t i = 0; i < n; i++) {
        fs_jrec_clear(v[i]);
        free(v[i]);
    }
    free(v);
    fs_journal_remove(dir, 3);
    unlink(strcat(strcpy((char[4096]){0}, dir), "/000000000000000a.rec"));
    rmdir(dir);
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
