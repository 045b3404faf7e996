/* client/doc.c on untrusted documents: what a program writes into a mount
 * (fs/save.c: validate, equal, prepare), what the platform serves (fetch.c,
 * unlink.c: pretty, is_empty; the emulator: with_status) and a stream
 * object's metadata (annotations.c: meta).
 * Input: byte 0 picks the project type and the status, the rest is the
 * document. Properties: validate and pretty agree; a valid document's pretty
 * form is valid, ends with a newline, pretty-prints to itself and is equal
 * (sa_doc_equal) and as empty as the original; prepare's and with_status's
 * output is valid, carries the name/status set, and is equal to the input;
 * with_status is idempotent byte for byte. Differential: the strict object
 * check (is_empty != -1) agrees with jansson, where jansson has no
 * documented reason to differ (integers beyond int64, reals beyond double,
 * lone surrogates Python accepts, its depth limit, raw NUL bytes it lets
 * through). */
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "sa/doc.h"

static const char *const statuses[] = {
    "NotStarted", "InProgress", "QualityCheck", "Returned", "Completed", "Skipped",
    "a \"quoted\" \\ st\xe2\x80\x9btus", "",
};
static const char *const names[] = {
    "img.jpg", ("a/b\xef\xbc\x8f" "c.png"), "\xe2\x80\x9b\"\\\n\t\x01", "",
};

static int why_ok(const char *why, size_t n)
{
    return memchr(why, 0, n) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int type = data[0] % 6; /* 0 is no valid type: must still be safe */
    const char *status = statuses[(data[0] >> 3) % 8];
    const char *name = names[(data[0] >> 6) % 4];
    char *doc = fuzz_dup(data + 1, size - 1);
    size_t len = size - 1;
    char why[256];
    char *out = NULL, *out2 = NULL;
    size_t ol = 0, ol2 = 0;

    enum sa_err ev = sa_doc_validate(doc, len, why, sizeof why);
    FUZZ_CHECK(ev == SA_OK || (ev == SA_ERR_INVAL && why_ok(why, sizeof why) && why[0]),
               "validate: %d", ev);
    int empty = sa_doc_is_empty(doc, len);
    FUZZ_CHECK(empty >= -1 && empty <= 1, "is_empty %d", empty);
    if (ev == SA_OK)
        FUZZ_CHECK(empty != -1, "is_empty says invalid, validate says valid");

    json_error_t je;
    json_t *j = json_loadb(doc, len, JSON_ALLOW_NUL, &je);
    /* jansson 2.14 takes a raw NUL byte between tokens (`[2\0]`) as
     * whitespace; JSON (and Python) refuse it, as doc.c does */
    if (j && !memchr(doc, 0, len))
        FUZZ_CHECK(empty != -1 || !json_is_object(j), "jansson reads an object, doc.c refuses");
    else if (empty != -1)
        FUZZ_CHECK(strstr(je.text, "too big") || strstr(je.text, "overflow") ||
                       strstr(je.text, "nvalid Unicode") || strstr(je.text, "depth"),
                   "doc.c accepts what jansson refuses: %s", je.text);
    json_decref(j);

    long long id = 0;
    char *mname = NULL;
    enum sa_err em = sa_doc_meta(doc, len, &id, &mname);
    if (ev == SA_OK)
        FUZZ_CHECK(em == SA_OK, "meta failed on a valid document: %d", em);
    free(mname);

    int self = sa_doc_equal(doc, len, doc, len, type);
    if (ev == SA_OK)
        FUZZ_CHECK(self == 1, "a valid document is not equal to itself: %d", self);

    enum sa_err ep = sa_doc_pretty(doc, len, &out, &ol, why, sizeof why);
    FUZZ_CHECK((ep == SA_OK) == (ev == SA_OK), "validate %d but pretty %d", ev, ep);
    if (ep == SA_OK) {
        FUZZ_CHECK(out && ol > 0 && out[ol - 1] == '\n' && out[ol] == '\0', "pretty output");
        FUZZ_CHECK(sa_doc_validate(out, ol, why, sizeof why) == SA_OK, "pretty invalid: %s",
                   why);
        FUZZ_CHECK(sa_doc_pretty(out, ol, &out2, &ol2, why, sizeof why) == SA_OK &&
                       ol2 == ol && !memcmp(out, out2, ol),
                   "pretty is not idempotent");
        free(out2);
        out2 = NULL;
        FUZZ_CHECK(sa_doc_equal(doc, len, out, ol, type) == 1, "pretty form not equal");
        FUZZ_CHECK(sa_doc_is_empty(out, ol) == empty, "pretty form changes emptiness");
    } else {
        FUZZ_CHECK(!out, "failed pretty left output");
    }
    free(out);
    out = NULL;

    /* an upload (save.c) */
    enum sa_err er = sa_doc_prepare(doc, len, name, "user@example.com", 1700000000123LL, type,
                                    &out, &ol, why, sizeof why);
    if (ev != SA_OK)
        FUZZ_CHECK(er != SA_OK && !out, "prepare accepted an invalid document");
    if (er == SA_OK) {
        FUZZ_CHECK(out && out[ol] == '\0', "prepare output");
        FUZZ_CHECK(sa_doc_validate(out, ol, why, sizeof why) == SA_OK, "prepared invalid: %s",
                   why);
        char *n2 = NULL;
        FUZZ_CHECK(sa_doc_meta(out, ol, &id, &n2) == SA_OK && n2 && !strcmp(n2, name),
                   "prepared name is not the item's");
        free(n2);
        FUZZ_CHECK(sa_doc_equal(doc, len, out, ol, type) == 1, "prepare changed the content");
    }
    free(out);
    out = NULL;

    /* what the platform serves */
    enum sa_err es = sa_doc_with_status(doc, len, status, &out, &ol, why, sizeof why);
    FUZZ_CHECK((es == SA_OK) == (ev == SA_OK), "validate %d but with_status %d", ev, es);
    if (es == SA_OK) {
        FUZZ_CHECK(sa_doc_validate(out, ol, why, sizeof why) == SA_OK, "with_status invalid: %s",
                   why);
        FUZZ_CHECK(sa_doc_with_status(out, ol, status, &out2, &ol2, why, sizeof why) == SA_OK &&
                       ol2 == ol && !memcmp(out, out2, ol),
                   "with_status is not idempotent");
        free(out2);
        FUZZ_CHECK(sa_doc_equal(doc, len, out, ol, type) == 1, "with_status changed content");
    }
    free(out);
    free(doc);
    return 0;
}
