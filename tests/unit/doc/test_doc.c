/* Unit tests of client/doc.c (sa/doc.h). Pure: no emulator, no network.
 * Comparisons with Python's json module live in doc_vs_python.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sa/doc.h"

static int failures, checks;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        checks++;                                                                        \
        if (!(cond)) {                                                                   \
            failures++;                                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

static char *pretty(const char *in, char *why, size_t wl)
{
    char *out = NULL;
    size_t ol = 0;
    enum sa_err e = sa_doc_pretty(in, strlen(in), &out, &ol, why, wl);
    if (e != SA_OK)
        return NULL;
    if (strlen(out) != ol) {
        free(out);
        return NULL;
    }
    return out;
}

static void expect_pretty(const char *in, const char *want)
{
    char why[256];
    char *got = pretty(in, why, sizeof why);
    CHECK(got && !strcmp(got, want), "input %s\n got: [%s]\nwant: [%s] (%s)", in,
          got ? got : "(null)", want, got ? "" : why);
    free(got);
}

/* Invalid documents: the reason must contain @p want. */
static void expect_invalid(const char *in, size_t len, const char *want)
{
    char why[256] = "";
    enum sa_err e = sa_doc_validate(in, len, why, sizeof why);
    CHECK(e == SA_ERR_INVAL, "expected invalid: %.*s", (int)len, in);
    CHECK(strstr(why, want) != NULL, "input %.*s: reason [%s] lacks [%s]", (int)len, in, why,
          want);
    /* pretty refuses with the same reason and no output */
    char why2[256] = "";
    char *out = (char *)1;
    size_t ol = 99;
    e = sa_doc_pretty(in, len, &out, &ol, why2, sizeof why2);
    CHECK(e == SA_ERR_INVAL && out == NULL && ol == 0 && !strcmp(why, why2),
          "pretty of invalid %.*s: [%s] vs [%s]", (int)len, in, why, why2);
    CHECK(sa_doc_equal(in, len, "{}", 2, 1) == -1, "equal of invalid %.*s", (int)len, in);
}

#define INVALID(lit, want) expect_invalid(lit, sizeof(lit) - 1, want)

static void test_validate(void)
{
    /* positions: line, column (characters), byte offset */
    INVALID("{\"a\": 1,\n  \"b\" 2}", "line 2, column 7 (byte 15): expected ':'");
    INVALID("{\n\"a\": [1, 2\n\"x\"]}", "line 3, column 1 (byte 13): expected ',' or ']'");
    INVALID("{\"é\": 1 x}", "line 1, column 9 (byte 9): expected ',' or '}'");
    INVALID("", "line 1, column 1 (byte 0): expected '{', got end of input");
    INVALID("   \n ", "line 2, column 2 (byte 5)");
    INVALID("[1]", "a document must be a JSON object");
    INVALID("{\"a\": NaN}", "NaN and Infinity");
    INVALID("{\"a\": Infinity}", "NaN and Infinity");
    INVALID("{\"a\": -Infinity}", "NaN and Infinity");
    INVALID("{\"a\": 01}", "leading zeros");
    INVALID("{\"a\": -01}", "leading zeros");
    INVALID("{\"a\": 1.}", "expected a digit after '.'");
    INVALID("{\"a\": .5}", "expected a value");
    INVALID("{\"a\": 1e}", "exponent");
    INVALID("{\"a\": +1}", "expected a value");
    INVALID("{\"a\": -}", "expected a digit");
    INVALID("{\"a\": 1,}", "trailing comma before '}'");
    INVALID("{\"a\": [1,]}", "trailing comma before ']'");
    INVALID("{\"a\": [,1]}", "expected a value");
    INVALID("{,}", "expected a string key");
    INVALID("{\"a\": 1} // c", "unexpected data after the end");
    INVALID("{/* c */}", "expected a string key");
    INVALID("{\"a\": /* c */ 1}", "comments are not allowed");
    INVALID("{\"a\": 'x'}", "double quotes");
    INVALID("{a: 1}", "expected a string key");
    INVALID("{\"a\": 1}}", "unexpected data after the end");
    INVALID("{\"a\": 1} {}", "unexpected data");
    INVALID("{\"a\": tru}", "expected a value");
    INVALID("{\"a\": True}", "expected a value");
    INVALID("{\"a\": \"x\ty\"}", "control character U+0009");
    INVALID("{\"a\": \"x\ny\"}", "control character U+000A");
    INVALID("{\"a\": \"\\x\"}", "invalid escape '\\x'");
    INVALID("{\"a\": \"\\u12\"}", "expected 4 hex digits");
    INVALID("{\"a\": \"\\u12G4\"}", "expected 4 hex digits");
    INVALID("{\"a\": \"abc}", "unterminated string");
    INVALID("{\"a\": \"abc\\", "unterminated string");
    INVALID("{\"a\": [1, 2", "expected ',' or ']', got end of input");
    INVALID("{\"a\"", "expected ':' after key, got end of input");
    INVALID("{\"a\":", "expected a value, got end of input");
    INVALID("\xEF\xBB\xBF{}", "byte-order mark");
    /* invalid UTF-8 */
    INVALID("{\"a\": \"\x80\"}", "invalid UTF-8 byte 0x80");
    INVALID("{\"a\": \"\xC0\xAF\"}", "invalid UTF-8 byte 0xC0");           /* overlong */
    INVALID("{\"a\": \"\xE0\x80\xAF\"}", "invalid UTF-8 sequence");        /* overlong */
    INVALID("{\"a\": \"\xED\xA0\x80\"}", "invalid UTF-8 sequence");        /* surrogate */
    INVALID("{\"a\": \"\xF4\x90\x80\x80\"}", "invalid UTF-8 sequence");    /* > U+10FFFF */
    INVALID("{\"a\": \"\xF5\x80\x80\x80\"}", "invalid UTF-8 byte 0xF5");
    INVALID("{\"a\": \"\xC3\"}", "invalid UTF-8 sequence");                /* truncated */
    INVALID("{\"a\": \"\xE2\x82\"}", "invalid UTF-8 sequence");
    INVALID("{\"a\": 1, \xC3\xA9: 2}", "expected a string key");
    /* shape */
    INVALID("{\"metadata\": []}", "\"metadata\" must be an object");
    INVALID("{\"instances\": {}}", "\"instances\" must be an array");
    INVALID("{\"tags\": null}", "\"tags\" must be an array");
    INVALID("{\"comments\": \"x\"}", "\"comments\" must be an array");
    INVALID("{\"meta\\u0064ata\": 5}", "\"metadata\" must be an object");
    /* NUL inside the buffer */
    expect_invalid("{\"a\": \"x\0\"}", 10, "control character U+0000");
    expect_invalid("{}\0", 3, "unexpected data");

    /* valid ones */
    static const char *const ok[] = {
        "{}", " \t\r\n{ } \n", "{\"a\": [], \"b\": {}, \"c\": [[]]}",
        "{\"x\": -0, \"y\": 0.0e-0, \"z\": 1E+400, \"w\": 123456789012345678901234567890}",
        "{\"s\": \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00 \\ud800\"}",
        "{\"u\": \"\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF \x7F\"}",
        "{\"metadata\": {}, \"instances\": [], \"tags\": [], \"comments\": []}",
        "{\"a\": 1, \"a\": 2}", "{\"t\": true, \"f\": false, \"n\": null}",
        "{\"nested\": {\"metadata\": 5, \"instances\": 1}}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        char why[256] = "";
        CHECK(sa_doc_validate(ok[i], strlen(ok[i]), why, sizeof why) == SA_OK, "valid %s: %s",
              ok[i], why);
    }
    /* a small why buffer is truncated, never overrun */
    char small[8];
    memset(small, 'Z', sizeof small);
    CHECK(sa_doc_validate("{x", 2, small, 5) == SA_ERR_INVAL && small[4] == 0 && small[5] == 'Z',
          "why truncation");
    CHECK(sa_doc_validate("{x", 2, NULL, 0) == SA_ERR_INVAL, "NULL why");
}

static void test_depth(void)
{
    /* the document is level 1; 512 levels are fine, 513 are not */
    for (int levels = 511; levels <= 514; levels++) {
        size_t n = (size_t)levels * 2 + 16;
        char *s = malloc(n);
        size_t o = 0;
        s[o++] = '{';
        memcpy(s + o, "\"a\":", 4);
        o += 4;
        for (int i = 1; i < levels; i++)
            s[o++] = '[';
        for (int i = 1; i < levels; i++)
            s[o++] = ']';
        s[o++] = '}';
        char why[256] = "";
        enum sa_err e = sa_doc_validate(s, o, why, sizeof why);
        if (levels <= 512)
            CHECK(e == SA_OK, "%d levels: %s", levels, why);
        else
            CHECK(e == SA_ERR_INVAL && strstr(why, "nesting deeper than 512"), "%d levels: %s",
                  levels, why);
        CHECK(sa_doc_equal(s, o, s, o, 1) == (levels <= 512 ? 1 : -1), "equal at %d", levels);
        free(s);
    }
    /* a million levels: an error, not a stack overflow */
    size_t n = 2000000;
    char *s = malloc(n + 8);
    memcpy(s, "{\"a\":", 5);
    memset(s + 5, '[', n);
    char why[256] = "";
    CHECK(sa_doc_validate(s, n + 5, why, sizeof why) == SA_ERR_INVAL &&
              strstr(why, "nesting deeper"), "deep: %s", why);
    char *out = NULL;
    CHECK(sa_doc_pretty(s, n + 5, &out, NULL, why, sizeof why) == SA_ERR_INVAL && !out, "deep pretty");
    CHECK(sa_doc_equal(s, n + 5, "{}", 2, 1) == -1, "deep equal");
    free(s);
}

static void test_pretty(void)
{
    expect_pretty("{}", "{}\n");
    expect_pretty("  {  }  ", "{}\n");
    expect_pretty("{\"a\":1}", "{\n    \"a\": 1\n}\n");
    expect_pretty("{\"a\":[],\"b\":{},\"c\":[1,[2,{}],{\"d\":null}]}",
                  "{\n    \"a\": [],\n    \"b\": {},\n    \"c\": [\n        1,\n        [\n"
                  "            2,\n            {}\n        ],\n        {\n"
                  "            \"d\": null\n        }\n    ]\n}\n");
    /* tokens verbatim: numbers, escapes, raw UTF-8, key order, duplicates */
    expect_pretty("{\"z\":12.30,\"a\":1E5,\"m\":-0.0e-0,\"big\":123456789012345678901234567890}",
                  "{\n    \"z\": 12.30,\n    \"a\": 1E5,\n    \"m\": -0.0e-0,\n"
                  "    \"big\": 123456789012345678901234567890\n}\n");
    expect_pretty("{\"s\":\"\\u00e9\\/\\n\",\"\xC3\xA9\":\"\xE2\x82\xAC\",\"s\":true}",
                  "{\n    \"s\": \"\\u00e9\\/\\n\",\n    \"\xC3\xA9\": \"\xE2\x82\xAC\",\n"
                  "    \"s\": true\n}\n");
    /* already pretty input comes back unchanged */
    const char *p = "{\n    \"a\": [\n        1,\n        2.50\n    ]\n}\n";
    expect_pretty(p, p);
    /* jq-style 2-space, CRLF */
    expect_pretty("{\r\n  \"a\": [\r\n    1\r\n  ]\r\n}\r\n", "{\n    \"a\": [\n        1\n    ]\n}\n");
}

static void expect_prepare(const char *in, int type, const char *want)
{
    char *out = NULL;
    size_t ol = 0;
    char why[256] = "";
    enum sa_err e = sa_doc_prepare(in, strlen(in), "img \"1\".jpg", "a@b.c", 1700000000123LL, type,
                                   &out, &ol, why, sizeof why);
    CHECK(e == SA_OK && out && !strcmp(out, want) && ol == strlen(out),
          "prepare type %d of %s\n got: %s\nwant: %s (%s)", type, in, out ? out : "(null)", want,
          why);
    if (out) {
        CHECK(sa_doc_validate(out, ol, why, sizeof why) == SA_OK, "prepared invalid: %s", why);
        /* preparing twice changes nothing more */
        char *o2 = NULL;
        e = sa_doc_prepare(out, ol, "img \"1\".jpg", "a@b.c", 1700000000123LL, type, &o2, NULL,
                           why, sizeof why);
        CHECK(e == SA_OK && o2 && !strcmp(o2, out), "prepare idempotent: %s", o2 ? o2 : "(null)");
        free(o2);
        /* and an upload of it counts as unchanged against the input */
        CHECK(sa_doc_equal(in, strlen(in), out, ol, type) == 1, "prepared equal to input %s", in);
    }
    free(out);
}

#define LA "\"lastAction\":{\"email\":\"a@b.c\",\"timestamp\":1700000000123}"
#define NM "\"name\":\"img \\\"1\\\".jpg\""

static void test_prepare(void)
{
    expect_prepare("{}", 1, "{\"metadata\":{" NM "," LA "}}");
    /* whitespace around the document is dropped (the SDK's stream parser) */
    expect_prepare(" { \"tags\" : [ ] } ", 1, "{\"metadata\":{" NM "," LA "}, \"tags\" : [ ] }");
    expect_prepare("{\"metadata\":{}}", 1, "{\"metadata\":{" NM "," LA "}}");
    expect_prepare("{\"metadata\": {\"name\": \"old\", \"width\": 12.30}}", 1,
                   "{\"metadata\": {" LA ",\"name\": \"img \\\"1\\\".jpg\", \"width\": 12.30}}");
    expect_prepare("{\"metadata\": {\"lastAction\": {\"email\": \"x\", \"timestamp\": 1}, "
                   "\"x\": 1E5}}", 1,
                   "{\"metadata\": {" NM ",\"lastAction\": {\"email\":\"a@b.c\",\"timestamp\":"
                   "1700000000123}, \"x\": 1E5}}");
    /* instances, Vector: creationType kept where present, probability default */
    expect_prepare("{\"metadata\":{\"name\":\"n\"," LA "},\"instances\":[{},{\"creationType\":\"Manual\","
                   "\"x\":1.50},{\"probability\":7},3,{\"creationType\":\"Manual\",\"probability\":"
                   "90}]}", 1,
                   "{\"metadata\":{" NM "," LA "},\"instances\":[{\"creationType\":\"Preannotation\","
                   "\"probability\":100},{\"probability\":100,\"creationType\":\"Manual\",\"x\":1.50},"
                   "{\"creationType\":\"Preannotation\",\"probability\":7},3,{\"creationType\":"
                   "\"Manual\",\"probability\":90}]}");
    /* Document project (4): no probability */
    expect_prepare("{\"metadata\":{\"name\":\"n\"," LA "},\"instances\":[{\"type\":\"entity\"}]}", 4,
                   "{\"metadata\":{" NM "," LA "},\"instances\":[{\"creationType\":\"Preannotation\","
                   "\"type\":\"entity\"}]}");
    /* Pixel (2), Tiled (5): probability too */
    expect_prepare("{\"metadata\":{" NM "," LA "},\"instances\":[{\"a\":1}]}", 2,
                   "{\"metadata\":{" NM "," LA "},\"instances\":[{\"creationType\":\"Preannotation\","
                   "\"probability\":100,\"a\":1}]}");
    expect_prepare("{\"metadata\":{" NM "," LA "},\"instances\":[{}]}", 5,
                   "{\"metadata\":{" NM "," LA "},\"instances\":[{\"creationType\":\"Preannotation\","
                   "\"probability\":100}]}");
    /* Video: meta.creationType */
    expect_prepare("{\"metadata\":{" NM "," LA "},\"instances\":[{\"meta\":{\"type\":\"bbox\"}},"
                   "{\"meta\":{}},{\"meta\":{\"creationType\":\"Manual\"}},{\"parameters\":[]},"
                   "{\"meta\":null}]}", 3,
                   "{\"metadata\":{" NM "," LA "},\"instances\":[{\"meta\":{\"creationType\":"
                   "\"Preannotation\",\"type\":\"bbox\"}},{\"meta\":{\"creationType\":\"Preannotation\"}},"
                   "{\"meta\":{\"creationType\":\"Manual\"}},{\"meta\":{\"creationType\":"
                   "\"Preannotation\"},\"parameters\":[]},{\"meta\":null}]}");
    /* escaped key names are recognized */
    expect_prepare("{\"meta\\u0064ata\":{\"n\\u0061me\":\"x\"}}", 1,
                   "{\"meta\\u0064ata\":{" LA ",\"n\\u0061me\":\"img \\\"1\\\".jpg\"}}");
    /* duplicate metadata keys: every occurrence is set */
    expect_prepare("{\"metadata\":{\"name\":\"a\"},\"metadata\":{}}", 1,
                   "{\"metadata\":{" LA ",\"name\":\"img \\\"1\\\".jpg\"},\"metadata\":{" NM "," LA "}}");
    /* invalid input */
    char *out = (char *)1;
    char why[256] = "";
    CHECK(sa_doc_prepare("{\"a\":}", 6, "n", "e", 0, 1, &out, NULL, why, sizeof why) ==
              SA_ERR_INVAL && !out && strstr(why, "line 1, column 6 (byte 5)"),
          "prepare invalid: %s", why);
    CHECK(sa_doc_prepare("{\"instances\":{}}", 16, "n", "e", 0, 1, &out, NULL, why, sizeof why) ==
              SA_ERR_INVAL && strstr(why, "must be an array"),
          "prepare shape: %s", why);
    CHECK(sa_doc_prepare("{} x", 4, "n", "e", 0, 1, &out, NULL, why, sizeof why) == SA_ERR_INVAL,
          "prepare trailing");
    /* names with control characters and invalid UTF-8 stay valid JSON */
    size_t ol;
    CHECK(sa_doc_prepare("{}", 2, "a\n\x01\xff", "e", -5, 1, &out, &ol, why, sizeof why) == SA_OK &&
              strstr(out, "\"name\":\"a\\n\\u0001\xEF\xBF\xBD\"") && strstr(out, "\"timestamp\":-5"),
          "prepare odd name: %s", out);
    free(out);
}

static void expect_status(const char *in, const char *status, const char *want)
{
    char *out = NULL;
    size_t ol = 0;
    char why[256] = "";
    enum sa_err e = sa_doc_with_status(in, strlen(in), status, &out, &ol, why, sizeof why);
    CHECK(e == SA_OK && out && ol == strlen(out) && !strcmp(out, want),
          "with_status %s [%s]\n got: [%s]\nwant: [%s] (%s)", in, status, out ? out : "(null)",
          want, why);
    if (out) {
        CHECK(sa_doc_validate(out, ol, why, sizeof why) == SA_OK, "with_status output valid: %s",
              why);
        /* idempotent: a second pass changes nothing */
        char *again = NULL;
        size_t al = 0;
        CHECK(sa_doc_with_status(out, ol, status, &again, &al, why, sizeof why) == SA_OK &&
                  al == ol && !memcmp(again, out, ol),
              "with_status twice: %s", again ? again : "(null)");
        free(again);
    }
    free(out);
}

#define ST "\"status\":\"Completed\""

static void test_with_status(void)
{
    /* no metadata: created as the first member */
    expect_status("{}", "Completed", "{\"metadata\":{" ST "}}");
    expect_status(" { \"tags\" : [ ] } ", "Completed", " {\"metadata\":{" ST "}, \"tags\" : [ ] } ");
    /* metadata without status: appended after the last member's value */
    expect_status("{\"metadata\":{}}", "Completed", "{\"metadata\":{" ST "}}");
    expect_status("{\"metadata\": { } }", "Completed", "{\"metadata\": {" ST " } }");
    expect_status("{\"metadata\": {\"name\": \"a\", \"width\": 12.30}, \"x\": 1E5}", "Completed",
                  "{\"metadata\": {\"name\": \"a\", \"width\": 12.30," ST "}, \"x\": 1E5}");
    expect_status("{\r\n    \"metadata\": {\r\n        \"name\": \"a\"\r\n    },\r\n    \"instances\": []\r\n}",
                  "Completed",
                  "{\r\n    \"metadata\": {\r\n        \"name\": \"a\"," ST "\r\n    },\r\n"
                  "    \"instances\": []\r\n}");
    expect_status("{\"instances\":[{\"status\":\"x\"}],\"metadata\":{\"a\":{\"status\":1}},\"t\":[]}\n",
                  "Completed",
                  "{\"instances\":[{\"status\":\"x\"}],\"metadata\":{\"a\":{\"status\":1}," ST
                  "},\"t\":[]}\n");
    /* replaced in place, the value token only */
    expect_status("{\"metadata\": {\"status\": \"NotStarted\", \"name\": \"a\"}}", "Completed",
                  "{\"metadata\": {\"status\": \"Completed\", \"name\": \"a\"}}");
    expect_status("{\"metadata\":{\"status\":null}}", "Completed", "{\"metadata\":{" ST "}}");
    expect_status("{\"metadata\":{\"status\":{\"a\":[1, 2]},\"b\":0}}", "Completed",
                  "{\"metadata\":{" ST ",\"b\":0}}");
    expect_status("{\"metadata\":{\"status\":\"A\",\"status\":\"Completed\"}}", "Completed",
                  "{\"metadata\":{" ST "," ST "}}");
    expect_status("{\"metadata\":{\"st\\u0061tus\":\"A\"}}", "Completed",
                  "{\"metadata\":{\"st\\u0061tus\":\"Completed\"}}");
    /* duplicate metadata: every occurrence */
    expect_status("{\"metadata\":{\"status\":\"A\"},\"metadata\":{}}", "Completed",
                  "{\"metadata\":{" ST "},\"metadata\":{" ST "}}");
    /* already that status: the input, byte for byte (also when escaped) */
    expect_status("{ \"metadata\" : { \"status\" : \"Completed\" } , \"n\": 1.50 }", "Completed",
                  "{ \"metadata\" : { \"status\" : \"Completed\" } , \"n\": 1.50 }");
    expect_status("{\"metadata\":{\"status\":\"Complet\\u0065d\"}}", "Completed",
                  "{\"metadata\":{\"status\":\"Complet\\u0065d\"}}");
    /* the status is quoted like sa_json_quote does */
    expect_status("{\"metadata\":{\"status\":\"x\"}}", "In \"Q\"\\\n\x01\xC3\xA9",
                  "{\"metadata\":{\"status\":\"In \\\"Q\\\"\\\\\\n\\u0001\xC3\xA9\"}}");
    expect_status("{\"metadata\":{\"status\":\"x\"}}", "", "{\"metadata\":{\"status\":\"\"}}");
    /* the skeleton with its own status is unchanged; with another, only the status moves */
    char *sk = NULL;
    size_t skl = 0;
    CHECK(sa_doc_skeleton("a.jpg", "InProgress", 7, 8, &sk, &skl) == SA_OK, "skeleton");
    expect_status(sk, "InProgress", sk);
    char *sk2 = NULL;
    CHECK(sa_doc_skeleton("a.jpg", "Returned", 7, 8, &sk2, NULL) == SA_OK, "skeleton 2");
    expect_status(sk, "Returned", sk2);
    free(sk);
    free(sk2);
    /* invalid input */
    char *out = (char *)1;
    size_t ol = 99;
    char why[256] = "";
    CHECK(sa_doc_with_status("{\"a\":}", 6, "S", &out, &ol, why, sizeof why) == SA_ERR_INVAL &&
              !out && !ol && strstr(why, "line 1, column 6 (byte 5)"),
          "with_status invalid: %s", why);
    CHECK(sa_doc_with_status("{\"metadata\":[]}", 15, "S", &out, NULL, why, sizeof why) ==
              SA_ERR_INVAL && strstr(why, "must be an object"),
          "with_status shape: %s", why);
    CHECK(sa_doc_with_status("{\"tags\":{}}", 11, "S", &out, NULL, why, sizeof why) ==
              SA_ERR_INVAL && strstr(why, "must be an array"),
          "with_status shape tags: %s", why);
    CHECK(sa_doc_with_status("{} x", 4, "S", &out, NULL, why, sizeof why) == SA_ERR_INVAL,
          "with_status trailing");
    CHECK(sa_doc_with_status("[]", 2, "S", &out, NULL, why, sizeof why) == SA_ERR_INVAL,
          "with_status array");
    CHECK(sa_doc_with_status("{\"metadata\":{\"status\":\"x\"}}", 26, NULL, &out, NULL, why,
                             sizeof why) == SA_ERR_INVAL && !out,
          "with_status NULL status");
}

static int is_empty(const char *d)
{
    return sa_doc_is_empty(d, strlen(d));
}

static void test_is_empty(void)
{
    static const char *const empty[] = {
        "{}",
        " {\n} ",
        "{\"metadata\":{\"name\":\"x\",\"status\":\"Completed\"},\"instances\":[],\"tags\":[],"
        "\"comments\":[]}",
        "{\"metadata\":{\"name\":\"x\"},\"version\":\"1.0\",\"instances\":[ \r\n ]}",
        "{\r\n  \"metadata\": {\r\n    \"name\": \"x\"\r\n  },\r\n  \"instances\": [],\r\n"
        "  \"tags\": []\r\n}\r\n",
        "{\"freeText\":\"\",\"x\":null,\"y\":{ },\"instances\":{}}",
        "{\"metadata\":{},\"metadata\":5,\"version\":[1]}",
        "{\"tags\":[\"a\"],\"tags\":[]}",
        "{\"t\\u0061gs\":[\"a\"],\"tags\":[]}",
        "{\"metadata\":{\"instances\":[1]}}",
        "{\"metad\\u0061ta\":{\"a\":1},\"v\\u0065rsion\":2}",
    };
    for (size_t i = 0; i < sizeof empty / sizeof *empty; i++)
        CHECK(is_empty(empty[i]) == 1, "empty: %s", empty[i]);
    static const char *const full[] = {
        "{\"instances\":[{}]}",
        "{\"tags\":[\"a\"]}",
        "{\"comments\":[null]}",
        "{\"x\":0}",
        "{\"x\":false}",
        "{\"x\":\" \"}",
        "{\"x\":{\"a\":null}}",
        "{\"tags\":[],\"tags\":[\"a\"]}",
        "{\"metad\\u0061ta\":{\"a\":1},\"Metadata\":{\"a\":1}}",
        "{\n    \"metadata\": {},\n    \"instances\": [\n        {\n            \"type\": \"bbox\"\n"
        "        }\n    ]\n}",
    };
    for (size_t i = 0; i < sizeof full / sizeof *full; i++)
        CHECK(is_empty(full[i]) == 0, "not empty: %s", full[i]);
    static const char *const bad[] = {
        "", "[]", "{\"a\":}", "{} x", "{\"a\":nul}", "{\"a\":nullx}", "{\"a\":[],}",
        "{\"a\":\"\\x\"}", "\xEF\xBB\xBF{}", "{\"a\":[}", "null",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(is_empty(bad[i]) == -1, "invalid: %s", bad[i]);
    CHECK(sa_doc_is_empty(NULL, 0) == -1, "NULL");
    CHECK(sa_doc_is_empty("{}xyz", 2) == 1, "length respected");
}

static int eq(const char *a, const char *b, int type)
{
    return sa_doc_equal(a, strlen(a), b, strlen(b), type);
}

static void test_equal(void)
{
    CHECK(eq("{}", "{}", 1) == 1, "empty");
    CHECK(eq("{\"a\":1,\"b\":2}", "{ \"b\" : 2 , \"a\" : 1 }", 1) == 1, "order");
    CHECK(eq("{\"a\":[1,2]}", "{\"a\":[2,1]}", 1) == 0, "array order");
    CHECK(eq("{\"a\":12}", "{\"a\":12.0}", 1) == 1, "12 == 12.0");
    CHECK(eq("{\"a\":12}", "{\"a\":1.2e1}", 1) == 1, "12 == 1.2e1");
    CHECK(eq("{\"a\":12}", "{\"a\":120E-1}", 1) == 1, "12 == 120E-1");
    CHECK(eq("{\"a\":0.001}", "{\"a\":1e-3}", 1) == 1, "0.001 == 1e-3");
    CHECK(eq("{\"a\":0}", "{\"a\":-0.0}", 1) == 1, "0 == -0.0");
    CHECK(eq("{\"a\":0}", "{\"a\":0e7}", 1) == 1, "0 == 0e7");
    CHECK(eq("{\"a\":-1}", "{\"a\":1}", 1) == 0, "sign");
    CHECK(eq("{\"a\":12.3}", "{\"a\":12.30000000000000001}", 1) == 0, "exact decimals");
    CHECK(eq("{\"a\":123456789012345678901234567890}", "{\"a\":123456789012345678901234567891}", 1) == 0,
          "30-digit integers differ");
    CHECK(eq("{\"a\":123456789012345678901234567890}", "{\"a\":1.2345678901234567890123456789e29}", 1) == 1,
          "30-digit integers equal");
    CHECK(eq("{\"a\":1}", "{\"a\":true}", 1) == 0, "1 != true");
    CHECK(eq("{\"a\":null}", "{}", 1) == 0, "null != absent");
    CHECK(eq("{\"a\":\"\\u00e9\"}", "{\"a\":\"\xC3\xA9\"}", 1) == 1, "escape == raw");
    CHECK(eq("{\"\\u0061\":\"\\/\"}", "{\"a\":\"/\"}", 1) == 1, "escaped key");
    CHECK(eq("{\"a\":\"\\uD83D\\uDE00\"}", "{\"a\":\"\xF0\x9F\x98\x80\"}", 1) == 1, "surrogate pair");
    CHECK(eq("{\"a\":\"\\ud800\"}", "{\"a\":\"\\uD800\"}", 1) == 1, "lone surrogate");
    CHECK(eq("{\"a\":\"\\ud800\"}", "{\"a\":\"\\ufffd\"}", 1) == 0, "lone surrogate != FFFD");
    CHECK(eq("{\"a\":\"x\"}", "{\"a\":\"X\"}", 1) == 0, "case");
    CHECK(eq("{\"a\":1,\"a\":2}", "{\"a\":2}", 1) == 1, "duplicates: last wins");
    CHECK(eq("{\"a\":1,\"a\":2}", "{\"a\":1}", 1) == 0, "duplicates: first loses");
    /* server-owned metadata ignored */
    CHECK(eq("{\"metadata\":{\"name\":\"a\",\"status\":\"Completed\",\"id\":5,\"projectId\":7,"
             "\"lastAction\":{\"email\":\"x\",\"timestamp\":1},\"width\":10}}",
             "{\"metadata\":{\"width\":10.0,\"name\":\"b\"}}", 1) == 1, "metadata ignored");
    CHECK(eq("{\"metadata\":{\"width\":10}}", "{\"metadata\":{\"width\":11}}", 1) == 0, "width");
    CHECK(eq("{\"metadata\":{\"name\":\"a\"}}", "{}", 1) == 1, "absent metadata");
    CHECK(eq("{\"metadata\":{\"name\":\"a\",\"x\":1}}", "{}", 1) == 0, "absent metadata, extra key");
    CHECK(eq("{\"x\":{\"name\":\"a\"}}", "{\"x\":{}}", 1) == 0, "name elsewhere matters");
    /* instance defaults as an upload sets them */
    CHECK(eq("{\"instances\":[{\"type\":\"bbox\"}]}",
             "{\"instances\":[{\"type\":\"bbox\",\"creationType\":\"Preannotation\",\"probability\":100}]}",
             1) == 1, "defaults vector");
    CHECK(eq("{\"instances\":[{\"type\":\"bbox\"}]}",
             "{\"instances\":[{\"type\":\"bbox\",\"creationType\":\"Manual\",\"probability\":100}]}",
             1) == 0, "creationType Manual differs");
    CHECK(eq("{\"instances\":[{\"type\":\"bbox\"}]}",
             "{\"instances\":[{\"type\":\"bbox\",\"creationType\":\"Preannotation\"}]}", 1) == 1,
          "vector: both get probability 100");
    CHECK(eq("{\"instances\":[{\"type\":\"bbox\"}]}",
             "{\"instances\":[{\"type\":\"bbox\",\"probability\":50}]}", 1) == 0,
          "vector: probability 50 differs");
    CHECK(eq("{\"instances\":[{\"type\":\"e\"}]}",
             "{\"instances\":[{\"type\":\"e\",\"creationType\":\"Preannotation\"}]}", 4) == 1,
          "document: no probability");
    CHECK(eq("{\"instances\":[{\"meta\":{\"type\":\"bbox\"}}]}",
             "{\"instances\":[{\"meta\":{\"type\":\"bbox\",\"creationType\":\"Preannotation\"}}]}",
             3) == 1, "video meta default");
    CHECK(eq("{\"instances\":[{}]}", "{\"instances\":[{\"meta\":{\"creationType\":\"Preannotation\"}}]}",
             3) == 1, "video meta absent");
    CHECK(eq("{\"instances\":[{}]}", "{\"instances\":[{\"meta\":{}}]}", 3) == 1,
          "video meta absent vs empty");
    CHECK(eq("{\"instances\":[{}]}", "{\"instances\":[{\"creationType\":\"Preannotation\"}]}", 3) == 0,
          "video: no instance-level default");
    CHECK(eq("{\"x\":[{}]}", "{\"x\":[{\"creationType\":\"Preannotation\",\"probability\":100}]}", 1) == 0,
          "defaults only in instances");
    CHECK(eq("{\"instances\":[[]]}", "{\"instances\":[[]]}", 3) == 1, "odd instance");
    CHECK(eq("{", "{}", 1) == -1 && eq("{}", "[]", 1) == -1, "invalid");
    /* pretty output equals its input */
    const char *d = "{\"metadata\":{\"name\":\"x\",\"w\":1.50},\"instances\":[{\"points\":"
                    "{\"x1\":1E2}}],\"tags\":[\"\\u00e9\"]}";
    char why[128];
    char *p = pretty(d, why, sizeof why);
    CHECK(p && eq(d, p, 1) == 1, "pretty equal");
    free(p);
}

static void test_meta_skeleton_quote(void)
{
    long long id = -1;
    char *name = (char *)1;
    const char *d = "{\"instances\":[1,2],\"metadata\":{\"id\":42,\"name\":\"a\\u00e9\\n\\\"b\"},\"x\":";
    CHECK(sa_doc_meta(d, strlen(d), &id, &name) == SA_OK && id == 42 && name &&
              !strcmp(name, "a\xC3\xA9\n\"b"), "meta: %lld %s", id, name ? name : "(null)");
    free(name);
    d = "{\"metadata\":{\"name\":\"x\",\"id\":1.5}}";
    CHECK(sa_doc_meta(d, strlen(d), &id, NULL) == SA_OK && id == 0, "meta: float id");
    d = "{\"metadata\":{\"id\":99999999999999999999}}";
    CHECK(sa_doc_meta(d, strlen(d), &id, NULL) == SA_OK && id == 0, "meta: huge id");
    d = "{\"metadata\":{\"id\":-7, \"name\": null}}";
    CHECK(sa_doc_meta(d, strlen(d), &id, &name) == SA_OK && id == -7 && !name, "meta: null name");
    d = "{\"instances\":[]}";
    CHECK(sa_doc_meta(d, strlen(d), &id, &name) == SA_OK && id == 0 && !name, "meta: absent");
    d = "{\"instances\":[}";
    CHECK(sa_doc_meta(d, strlen(d), &id, &name) == SA_ERR_INVAL && id == 0 && !name, "meta invalid");
    d = "{\"metadata\":{\"id\":1,}}";
    CHECK(sa_doc_meta(d, strlen(d), &id, &name) == SA_ERR_INVAL, "meta invalid inside");
    d = "{\"metadata\":{\"id\":1, \"name\": \"x\"}, \"instances\": [1,]}";
    CHECK(sa_doc_meta(d, strlen(d), &id, &name) == SA_OK && id == 1 && name && !strcmp(name, "x"),
          "meta stops after metadata");
    free(name);
    CHECK(sa_doc_meta("{}", 2, NULL, NULL) == SA_OK, "meta NULLs");

    char *s = NULL;
    size_t sl = 0;
    CHECK(sa_doc_skeleton("a\"b.jpg", "NotStarted", 12, 345, &s, &sl) == SA_OK &&
              !strcmp(s, "{\"metadata\":{\"name\":\"a\\\"b.jpg\",\"height\":null,\"width\":null,"
                         "\"status\":\"NotStarted\",\"pinned\":false,\"annotatorEmail\":null,"
                         "\"qaEmail\":null,\"projectId\":12,\"id\":345},\"instances\":[],"
                         "\"tags\":[],\"comments\":[]}") && sl == strlen(s),
          "skeleton: %s", s);
    char why[128] = "";
    CHECK(sa_doc_validate(s, sl, why, sizeof why) == SA_OK, "skeleton valid: %s", why);
    long long sid;
    char *sn;
    CHECK(sa_doc_meta(s, sl, &sid, &sn) == SA_OK && sid == 345 && !strcmp(sn, "a\"b.jpg"), "skeleton meta");
    free(sn);
    free(s);

    char *q = sa_json_quote("a\"\\/\b\f\n\r\t\x01\x1f\x7f\xC3\xA9\xE2\x80\xA8");
    CHECK(q && !strcmp(q, "\"a\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xC3\xA9\xE2\x80\xA8\""),
          "quote: %s", q);
    free(q);
    q = sa_json_quote("");
    CHECK(q && !strcmp(q, "\"\""), "quote empty");
    free(q);
}

/* A large Vector-like document (about @p target bytes, compact). */
static char *big_doc(size_t target, size_t *len)
{
    size_t cap = target + 4096;
    char *s = malloc(cap);
    size_t o = 0;
    o += (size_t)sprintf(s + o, "{\"metadata\":{\"name\":\"big.jpg\",\"width\":1920,\"height\":1080},"
                                "\"instances\":[");
    unsigned seed = 12345;
    for (int i = 0; o + 600 < target; i++) {
        seed = seed * 1103515245u + 12345u;
        o += (size_t)sprintf(s + o,
                             "%s{\"type\":\"polygon\",\"classId\":%d,\"className\":\"c\\u00e9%u\","
                             "\"probability\":100,\"points\":[%u.25,%u.5,%u,%u.125,1E3,-0.0],"
                             "\"attributes\":[{\"id\":1,\"groupId\":2,\"name\":\"x\",\"groupName\":"
                             "\"\xC3\xA9t\xC3\xA9\"}],\"pointLabels\":{},\"locked\":false,\"visible\":true}",
                             i ? "," : "", i % 97, seed % 1000, seed % 1920, seed % 1080, seed % 777,
                             seed % 555);
    }
    o += (size_t)sprintf(s + o, "],\"tags\":[],\"comments\":[]}");
    *len = o;
    return s;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_big(void)
{
    size_t len;
    char *d = big_doc(50u << 20, &len);
    char *out = NULL, *out2 = NULL;
    size_t ol = 0, ol2 = 0;
    char why[256] = "";
    double t0 = now();
    enum sa_err e = sa_doc_pretty(d, len, &out, &ol, why, sizeof why);
    double t1 = now();
    CHECK(e == SA_OK, "big pretty: %s", why);
    printf("bench: pretty of a %.1f MB compact document: %.3f s, %.0f MB/s (output %.1f MB)\n",
           len / 1e6, t1 - t0, len / 1e6 / (t1 - t0), ol / 1e6);
    t0 = now();
    e = sa_doc_pretty(out, ol, &out2, &ol2, why, sizeof why);
    t1 = now();
    CHECK(e == SA_OK && ol2 == ol && !memcmp(out, out2, ol), "pretty is idempotent on big doc");
    printf("bench: pretty of a %.1f MB pretty document: %.0f MB/s\n", ol / 1e6, ol / 1e6 / (t1 - t0));
    t0 = now();
    e = sa_doc_validate(out, ol, why, sizeof why);
    t1 = now();
    CHECK(e == SA_OK, "validate big");
    printf("bench: validate: %.0f MB/s\n", ol / 1e6 / (t1 - t0));
    t0 = now();
    int r = sa_doc_equal(d, len, out, ol, 1);
    t1 = now();
    CHECK(r == 1, "big equal");
    printf("bench: equal of %.1f + %.1f MB: %.3f s\n", len / 1e6, ol / 1e6, t1 - t0);
    char *pr = NULL;
    size_t pl = 0;
    t0 = now();
    e = sa_doc_prepare(out, ol, "big.jpg", "e@x", 1, 1, &pr, &pl, why, sizeof why);
    t1 = now();
    CHECK(e == SA_OK && pl > ol, "big prepare: %s", why);
    printf("bench: prepare of %.1f MB: %.3f s\n", ol / 1e6, t1 - t0);
    CHECK(sa_doc_equal(pr, pl, d, len, 1) == 1, "big prepared equal");
    long long id;
    char *name = NULL;
    CHECK(sa_doc_meta(out, ol, &id, &name) == SA_OK && name && !strcmp(name, "big.jpg"), "big meta");
    free(name);
    /* a change deep inside is seen */
    char *m = strstr(out2 + ol2 / 2, "1E3");
    CHECK(m != NULL, "find 1E3");
    if (m) {
        m[2] = '4';
        CHECK(sa_doc_equal(d, len, out2, ol2, 1) == 0, "big change seen");
    }
    free(pr);
    free(out2);
    free(out);
    free(d);
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    test_validate();
    test_depth();
    test_pretty();
    test_prepare();
    test_equal();
    test_meta_skeleton_quote();
    test_with_status();
    test_is_empty();
    if (!quick)
        test_big();
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
