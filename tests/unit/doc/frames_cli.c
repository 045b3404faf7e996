/* frames_cli FILE FPS: sa_frames_render's output on stdout (exit 0), or
 * "ERROR: <reason>" on stdout (exit 1). Exit 2 on usage/I-O errors. */
#include <stdio.h>
#include <stdlib.h>

#include "sa/frames.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: frames_cli FILE FPS\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    size_t cap = 1 << 16, n = 0, r;
    char *b = malloc(cap);
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0)
        if ((n += r) == cap)
            b = realloc(b, cap *= 2);
    fclose(f);
    if (!b)
        return 2;
    char why[512] = "";
    char *out = NULL;
    size_t ol = 0;
    int rc = 0;
    if (sa_frames_render(b, n, strtod(argv[2], NULL), &out, &ol, why, sizeof why) == SA_OK) {
        fwrite(out, 1, ol, stdout);
    } else {
        printf("ERROR: %s\n", why);
        rc = 1;
    }
    free(out);
    free(b);
    return rc;
}
