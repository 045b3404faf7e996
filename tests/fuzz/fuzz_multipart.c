/* The emulator's multipart/form-data parser (tests/emulator/multipart.c),
 * as api.c's upload handler calls it, then each part read as that handler
 * does (rawjson_valid, rawjson_members).
 * Input: the Content-Type header up to the first "\n", the body after it.
 * Properties: -1 with a reason, or n >= 0 parts, each with a name and a
 * data span inside the body; nothing leaks. */
#include <string.h>

#include "emu_i.h"
#include "fuzz.h"

/* util.c's clock reads the emulator's state (main.c): all zero here */
struct emu emu;

static int member(void *ctx, const char *key, const char *val, size_t vlen)
{
    size_t *count = ctx;
    FUZZ_CHECK(key && val && vlen > 0, "member");
    (*count)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t hl = nl ? (size_t)(nl - data) : size;
    char *ct = malloc(hl + 1);
    if (!ct)
        abort();
    memcpy(ct, data, hl);
    ct[hl] = 0;
    size_t bl = nl ? size - hl - 1 : 0;
    char *body = fuzz_dup(nl ? nl + 1 : data, bl);
    struct mpart *parts = NULL;
    char err[256];
    err[0] = 0;
    int n = multipart_parse(ct, body, bl, &parts, err, sizeof err);
    FUZZ_CHECK(n >= -1, "result %d", n);
    if (n < 0) {
        FUZZ_CHECK(!parts && memchr(err, 0, sizeof err) && err[0], "error without a reason");
    } else {
        for (int i = 0; i < n; i++) {
            FUZZ_CHECK(parts[i].name, "part without a name");
            FUZZ_CHECK(parts[i].data >= body && parts[i].data + parts[i].len <= body + bl,
                       "part %d outside the body", i);
            size_t count = 0;
            if (rawjson_valid(parts[i].data, parts[i].len, 1))
                FUZZ_CHECK(rawjson_members(parts[i].data, parts[i].len, member, &count) == 0,
                           "a valid object's members");
        }
        multipart_free(parts, n);
    }
    free(body);
    free(ct);
    return 0;
}
