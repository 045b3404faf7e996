/* client/frames.c: the ___frames.json view of a Video document (fs/handle.c
 * renders it from the platform's document at -o fps=).
 * Input: byte 0 picks fps, the rest is the document. Properties: no crash,
 * no leak; on success the output is a JSON array (jansson reads it) ending
 * in a newline; on failure *out is NULL and a reason is given. */
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "sa/frames.h"

static const double fpss[] = {1, 2, 0.5, 30, 29.97, 0.001, 0, -1};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    double fps = fpss[data[0] % 8];
    char *doc = fuzz_dup(data + 1, size - 1);
    char *out = NULL, why[256];
    size_t ol = 0;
    why[0] = '\0';
    enum sa_err e = sa_frames_render(doc, size - 1, fps, &out, &ol, why, sizeof why);
    if (e == SA_OK) {
        FUZZ_CHECK(out && ol > 0 && out[ol - 1] == '\n' && out[ol] == '\0', "output");
        json_error_t je;
        /* Infinity is what Python prints for inf: not JSON, allowed */
        if (!strstr(out, "Infinity") && !strstr(out, "NaN")) {
            json_t *j = json_loadb(out, ol, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
            /* jansson refuses integers beyond int64: those are fine */
            FUZZ_CHECK(j || strstr(je.text, "too big") || strstr(je.text, "overflow"),
                       "output is not JSON: %s", je.text);
            if (j)
                FUZZ_CHECK(json_is_array(j), "output is not an array");
            json_decref(j);
        }
    } else {
        FUZZ_CHECK(!out && memchr(why, 0, sizeof why) && why[0], "error %d without reason", e);
    }
    free(out);
    free(doc);
    return 0;
}
