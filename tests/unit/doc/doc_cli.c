/* Tiny driver of sa/doc.h for the Python comparison tests:
 *   doc_cli pretty FILE      pretty-printed document on stdout
 *   doc_cli validate FILE    "ok" or the reason
 *   doc_cli equal A B TYPE   1, 0 or -1
 *   doc_cli status FILE S    the document with metadata.status = S on stdout
 *   doc_cli empty FILE       1, 0 or -1 (sa_doc_is_empty)
 * Exit 0 on success, 1 with the reason on stdout for an invalid document,
 * 2 on usage or I/O errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sa/doc.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                b = NULL;
            }
            b = nb;
        }
    }
    fclose(f);
    *len = n;
    return b;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: doc_cli pretty|validate|empty FILE | equal A B TYPE | "
                        "status FILE S\n");
        return 2;
    }
    size_t len;
    char *d = slurp(argv[2], &len);
    if (!d) {
        perror(argv[2]);
        return 2;
    }
    char why[512] = "";
    int rc = 0;
    if (!strcmp(argv[1], "pretty")) {
        char *out = NULL;
        size_t ol = 0;
        if (sa_doc_pretty(d, len, &out, &ol, why, sizeof why) == SA_OK) {
            fwrite(out, 1, ol, stdout);
        } else {
            printf("%s\n", why);
            rc = 1;
        }
        free(out);
    } else if (!strcmp(argv[1], "validate")) {
        if (sa_doc_validate(d, len, why, sizeof why) == SA_OK) {
            printf("ok\n");
        } else {
            printf("%s\n", why);
            rc = 1;
        }
    } else if (!strcmp(argv[1], "status") && argc == 4) {
        char *out = NULL;
        size_t ol = 0;
        if (sa_doc_with_status(d, len, argv[3], &out, &ol, why, sizeof why) == SA_OK) {
            fwrite(out, 1, ol, stdout);
        } else {
            printf("%s\n", why);
            rc = 1;
        }
        free(out);
    } else if (!strcmp(argv[1], "empty")) {
        printf("%d\n", sa_doc_is_empty(d, len));
    } else if (!strcmp(argv[1], "equal") && argc == 5) {
        size_t l2;
        char *d2 = slurp(argv[3], &l2);
        if (!d2) {
            perror(argv[3]);
            free(d);
            return 2;
        }
        printf("%d\n", sa_doc_equal(d, len, d2, l2, atoi(argv[4])));
        free(d2);
    } else {
        rc = 2;
    }
    free(d);
    return rc;
}
