/** @file
 * Annotation documents as text (see sa/doc.h).
 *
 * One recursive-descent scanner over the raw bytes serves every function
 * here. Number and string tokens are never converted on the way through:
 * pretty-printing and splicing copy them verbatim, so `12.30`, `1E5`,
 * `"\u00e9"` and 30-digit integers come out exactly as they went in.
 *
 * Strictness (RFC 8259): one value, nothing but whitespace after it; no
 * NaN/Infinity, comments, trailing commas, leading zeros, unescaped control
 * characters, bad escapes or invalid UTF-8 (overlong forms, UTF-8-encoded
 * surrogates and code points above U+10FFFF are invalid); nesting deeper than
 * DOC_MAX_DEPTH is an error, never a stack overflow. A byte-order mark is
 * refused (Python's json.loads refuses it too).
 *
 * Lone surrogates written as \u escapes (e.g. "\ud800") are accepted, as the
 * RFC's grammar and Python accept them. Where a string has to be decoded
 * (sa_doc_equal, sa_doc_meta) a lone surrogate becomes its 3-byte
 * generalized UTF-8 form (WTF-8), so it compares unequal to any real
 * character and equal only to the same lone surrogate.
 *
 * Positions in error messages: line and column are 1-based, the column
 * counts characters (UTF-8 sequences), the byte offset is 0-based.
 */
#include "sa/doc.h"
#include "json_i.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOC_MAX_DEPTH 512

/* ------------------------------------------------------------------ */
/* Growable output buffer                                              */

struct obuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static bool ob_reserve(struct obuf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + extra + 1) {
        if (ncap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        ncap += ncap / 2 + 64;
    }
    char *np = realloc(b->p, ncap);
    if (!np) {
        b->oom = true;
        return false;
    }
    b->p = np;
    b->cap = ncap;
    return true;
}

static inline void ob_add(struct obuf *b, const void *s, size_t n)
{
    if (!ob_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static inline void ob_addc(struct obuf *b, char c)
{
    if (!ob_reserve(b, 1))
        return;
    b->p[b->len++] = c;
}

static inline void ob_adds(struct obuf *b, const char *s)
{
    ob_add(b, s, strlen(s));
}

/* newline then 4*level spaces */
static inline void ob_indent(struct obuf *b, int level)
{
    size_t n = (size_t)level * 4;
    if (!ob_reserve(b, n + 1))
        return;
    b->p[b->len++] = '\n';
    memset(b->p + b->len, ' ', n);
    b->len += n;
}

/* ------------------------------------------------------------------ */
/* Scanner                                                             */

struct ps {
    const char *s;
    size_t len, pos;
    char *why;
    size_t whylen;
    bool failed;
    struct obuf *out; /* pretty output, or NULL */
};

/* Byte classes inside strings. */
enum { C_OK = 0, C_QUOTE, C_BSL, C_CTRL, C_U2, C_U3, C_U4, C_BAD };

static const unsigned char str_class[256] = {
#define R16(x) x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x
    R16(C_CTRL), R16(C_CTRL),
    C_OK, C_OK, C_QUOTE, C_OK, C_OK, C_OK, C_OK, C_OK,
    C_OK, C_OK, C_OK, C_OK, C_OK, C_OK, C_OK, C_OK,
    R16(C_OK), R16(C_OK),
    C_OK, C_OK, C_OK, C_OK, C_OK, C_OK, C_OK, C_OK,
    C_OK, C_OK, C_OK, C_OK, C_BSL, C_OK, C_OK, C_OK,
    R16(C_OK), R16(C_OK),
    /* 0x80-0xBF: continuation bytes, invalid as leads */
    R16(C_BAD), R16(C_BAD), R16(C_BAD), R16(C_BAD),
    /* 0xC0, 0xC1 overlong; 0xC2-0xDF two-byte */
    C_BAD, C_BAD, C_U2, C_U2, C_U2, C_U2, C_U2, C_U2,
    C_U2, C_U2, C_U2, C_U2, C_U2, C_U2, C_U2, C_U2,
    R16(C_U2),
    R16(C_U3),
    C_U4, C_U4, C_U4, C_U4, C_U4, C_BAD, C_BAD, C_BAD,
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
#undef R16
};

static int perr(struct ps *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int perr(struct ps *p, size_t at, const char *fmt, ...)
{
    if (p->failed)
        return -1;
    p->failed = true;
    if (!p->why || !p->whylen)
        return -1;
    if (at > p->len)
        at = p->len;
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at; i++) {
        unsigned char c = (unsigned char)p->s[i];
        if (c == '\n') {
            line++;
            col = 1;
        } else if ((c & 0xC0) != 0x80) {
            col++;
        }
    }
    int n = snprintf(p->why, p->whylen, "line %zu, column %zu (byte %zu): ", line, col, at);
    if (n >= 0 && (size_t)n < p->whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->why + n, p->whylen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static inline void skip_ws(struct ps *p)
{
    const char *s = p->s;
    size_t i = p->pos, n = p->len;
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t'))
        i++;
    p->pos = i;
}

static inline int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static inline bool is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    switch (str_class[c]) {
    case C_U2:
        return (n >= 2 && is_cont(s[1])) ? 2 : 0;
    case C_U3:
        if (n < 3 || !is_cont(s[1]) || !is_cont(s[2]))
            return 0;
        if (c == 0xE0 && s[1] < 0xA0)
            return 0; /* overlong */
        if (c == 0xED && s[1] >= 0xA0)
            return 0; /* surrogate */
        return 3;
    case C_U4:
        if (n < 4 || !is_cont(s[1]) || !is_cont(s[2]) || !is_cont(s[3]))
            return 0;
        if (c == 0xF0 && s[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xF4 && s[1] >= 0x90)
            return 0; /* above U+10FFFF */
        return 4;
    default:
        return c < 0x80 ? 1 : 0;
    }
}

/* At an opening '"'. Leaves pos after the closing '"'. */
static int scan_string(struct ps *p, bool *has_esc)
{
    const unsigned char *s = (const unsigned char *)p->s;
    size_t n = p->len, i = p->pos + 1;
    bool esc = false;
    for (;;) {
        while (i < n && str_class[s[i]] == C_OK)
            i++;
        if (i >= n)
            return perr(p, p->pos, "unterminated string");
        switch (str_class[s[i]]) {
        case C_QUOTE:
            p->pos = i + 1;
            if (has_esc)
                *has_esc = esc;
            return 0;
        case C_BSL:
            esc = true;
            if (i + 1 >= n)
                return perr(p, p->pos, "unterminated string");
            switch (s[i + 1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                i += 2;
                break;
            case 'u':
                for (int k = 0; k < 4; k++)
                    if (i + 2 + k >= n || hexval(s[i + 2 + k]) < 0)
                        return perr(p, i, "invalid \\u escape: expected 4 hex digits");
                i += 6;
                break;
            default:
                return perr(p, i, "invalid escape '\\%c' in string",
                            s[i + 1] >= 0x20 && s[i + 1] < 0x7f ? s[i + 1] : '?');
            }
            break;
        case C_CTRL:
            return perr(p, i, "control character U+%04X in string must be escaped", s[i]);
        case C_BAD:
            return perr(p, i, "invalid UTF-8 byte 0x%02X in string", s[i]);
        default: {
            size_t k = utf8_seq(s + i, n - i);
            if (!k)
                return perr(p, i, "invalid UTF-8 sequence in string");
            i += k;
        }
        }
    }
}

static inline bool isdig(char c)
{
    return c >= '0' && c <= '9';
}

static int scan_number(struct ps *p)
{
    const char *s = p->s;
    size_t n = p->len, i = p->pos;
    if (s[i] == '-') {
        i++;
        if (i < n && (s[i] == 'I' || s[i] == 'N'))
            return perr(p, p->pos, "NaN and Infinity are not valid JSON");
    }
    if (i >= n || !isdig(s[i]))
        return perr(p, i, "expected a digit");
    if (s[i] == '0') {
        i++;
        if (i < n && isdig(s[i]))
            return perr(p, p->pos, "leading zeros are not allowed in numbers");
    } else {
        while (i < n && isdig(s[i]))
            i++;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !isdig(s[i]))
            return perr(p, i, "expected a digit after '.'");
        while (i < n && isdig(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !isdig(s[i]))
            return perr(p, i, "expected a digit in the exponent");
        while (i < n && isdig(s[i]))
            i++;
    }
    p->pos = i;
    return 0;
}

static int scan_literal(struct ps *p)
{
    static const char *const lits[] = {"true", "false", "null"};
    for (size_t k = 0; k < 3; k++) {
        size_t l = strlen(lits[k]);
        if (p->len - p->pos >= l && !memcmp(p->s + p->pos, lits[k], l)) {
            p->pos += l;
            return 0;
        }
    }
    return perr(p, p->pos, "expected a value");
}

static const char *got(struct ps *p)
{
    return p->pos >= p->len ? ", got end of input" : "";
}

static int bad_value(struct ps *p)
{
    if (p->pos >= p->len)
        return perr(p, p->pos, "expected a value, got end of input");
    char c = p->s[p->pos];
    if (c == 'N' || c == 'I')
        return perr(p, p->pos, "NaN and Infinity are not valid JSON");
    if (c == '/')
        return perr(p, p->pos, "comments are not allowed in JSON");
    if (c == '\'')
        return perr(p, p->pos, "strings must use double quotes");
    return perr(p, p->pos, "expected a value");
}

/* Is the string token s[0..len) (with quotes) equal to @p name once decoded?
 * Names are plain ASCII without escapes. */
static bool key_is(const char *tok, size_t len, bool esc, const char *name);

/* Top-level shape rule for key @p k (token) whose value starts at p->pos. */
static int check_shape(struct ps *p, const char *k, size_t klen, bool esc)
{
    char c = p->pos < p->len ? p->s[p->pos] : 0;
    if (key_is(k, klen, esc, "metadata")) {
        if (c != '{')
            return perr(p, p->pos, "\"metadata\" must be an object");
    } else if (key_is(k, klen, esc, "instances") || key_is(k, klen, esc, "tags") ||
               key_is(k, klen, esc, "comments")) {
        if (c != '[')
            return perr(p, p->pos, "\"%.*s\" must be an array", (int)(klen - 2), k + 1);
    }
    return 0;
}

static int p_value(struct ps *p, int depth);

/* At the @p open byte of a container of level @p depth: steps past it.
 * Returns 0 when the container is empty (and consumed), 1 when members
 * follow, -1 on error. */
static int c_open(struct ps *p, int depth, char open, char close)
{
    if (depth > DOC_MAX_DEPTH)
        return perr(p, p->pos, "nesting deeper than %d levels", DOC_MAX_DEPTH);
    struct obuf *o = p->out;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        if (o) {
            const char empty[2] = {open, close};
            ob_add(o, empty, 2);
        }
        return 0;
    }
    if (o)
        ob_addc(o, open);
    return 1;
}

/* After a member of a container of level @p depth: returns 1 at a ',' (a
 * member follows), 0 at @p close (the container is consumed), -1 on error. */
static int c_next(struct ps *p, int depth, char close)
{
    struct obuf *o = p->out;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ',') {
        p->pos++;
        skip_ws(p);
        return 1;
    }
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        if (o) {
            ob_indent(o, depth - 1);
            ob_addc(o, close);
        }
        return 0;
    }
    return perr(p, p->pos, "expected ',' or '%c'%s", close, got(p));
}

/* At '{'. @p depth is this container's level (1 = the document). */
static int p_object(struct ps *p, int depth)
{
    int r = c_open(p, depth, '{', '}');
    if (r <= 0)
        return r;
    struct obuf *o = p->out;
    for (bool first = true;; first = false) {
        if (o) {
            if (!first)
                ob_addc(o, ',');
            ob_indent(o, depth);
        }
        if (p->pos >= p->len || p->s[p->pos] != '"') {
            if (!first && p->pos < p->len && p->s[p->pos] == '}')
                return perr(p, p->pos, "trailing comma before '}'");
            return perr(p, p->pos, "expected a string key%s", got(p));
        }
        size_t ks = p->pos;
        bool esc;
        if (scan_string(p, &esc))
            return -1;
        size_t kl = p->pos - ks;
        if (o)
            ob_add(o, p->s + ks, kl);
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':')
            return perr(p, p->pos, "expected ':' after key%s", got(p));
        p->pos++;
        if (o)
            ob_add(o, ": ", 2);
        skip_ws(p);
        if (depth == 1 && check_shape(p, p->s + ks, kl, esc))
            return -1;
        if (p_value(p, depth))
            return -1;
        r = c_next(p, depth, '}');
        if (r <= 0)
            return r;
    }
}

static int p_array(struct ps *p, int depth)
{
    int r = c_open(p, depth, '[', ']');
    if (r <= 0)
        return r;
    struct obuf *o = p->out;
    for (bool first = true;; first = false) {
        if (o) {
            if (!first)
                ob_addc(o, ',');
            ob_indent(o, depth);
        }
        if (!first && p->pos < p->len && p->s[p->pos] == ']')
            return perr(p, p->pos, "trailing comma before ']'");
        if (p_value(p, depth))
            return -1;
        r = c_next(p, depth, ']');
        if (r <= 0)
            return r;
    }
}

/* At the first byte of a value (whitespace already skipped). @p depth is the
 * level of the enclosing container (0 for the document itself). */
static int p_value(struct ps *p, int depth)
{
    if (p->pos >= p->len)
        return bad_value(p);
    size_t start = p->pos;
    int r;
    switch (p->s[start]) {
    case '{':
        return p_object(p, depth + 1);
    case '[':
        return p_array(p, depth + 1);
    case '"':
        r = scan_string(p, NULL);
        break;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        r = scan_number(p);
        break;
    case 't': case 'f': case 'n':
        r = scan_literal(p);
        break;
    default:
        return bad_value(p);
    }
    if (r)
        return r;
    if (p->out)
        ob_add(p->out, p->s + start, p->pos - start);
    return 0;
}

static void ps_init(struct ps *p, const char *buf, size_t len, char *why, size_t whylen)
{
    memset(p, 0, sizeof *p);
    p->s = buf ? buf : "";
    p->len = buf ? len : 0;
    p->why = why;
    p->whylen = whylen;
    if (why && whylen)
        why[0] = 0;
}

/* The document's start: optional whitespace then '{'. */
static int doc_begin(struct ps *p)
{
    if (p->len >= 3 && !memcmp(p->s, "\xEF\xBB\xBF", 3))
        return perr(p, 0, "a UTF-8 byte-order mark is not allowed");
    skip_ws(p);
    if (p->pos >= p->len)
        return perr(p, p->pos, "expected '{', got end of input (empty document)");
    if (p->s[p->pos] != '{') {
        if (p->s[p->pos] == '[' || p->s[p->pos] == '"' || p->s[p->pos] == '-' ||
            isdig(p->s[p->pos]) || p->s[p->pos] == 't' || p->s[p->pos] == 'f' ||
            p->s[p->pos] == 'n')
            return perr(p, p->pos, "expected '{': a document must be a JSON object");
        return bad_value(p);
    }
    return 0;
}

static int doc_end(struct ps *p)
{
    skip_ws(p);
    if (p->pos < p->len)
        return perr(p, p->pos, "unexpected data after the end of the document");
    return 0;
}

static int doc_parse(struct ps *p)
{
    if (doc_begin(p) || p_value(p, 0) || doc_end(p))
        return -1;
    return 0;
}

enum sa_err sa_doc_validate(const char *buf, size_t len, char *why, size_t whylen)
{
    struct ps p;
    ps_init(&p, buf, len, why, whylen);
    return doc_parse(&p) ? SA_ERR_INVAL : SA_OK;
}

enum sa_err sa_doc_pretty(const char *buf, size_t len, char **out, size_t *outlen, char *why,
                          size_t whylen)
{
    *out = NULL;
    if (outlen)
        *outlen = 0;
    struct obuf o = {0};
    struct ps p;
    ps_init(&p, buf, len, why, whylen);
    p.out = &o;
    /* Pretty output of an indented document is about its size; of a
     * compact one up to about twice (growth is by half). */
    if (!ob_reserve(&o, len + len / 4 + 64))
        return SA_ERR_NOMEM;
    if (doc_parse(&p)) {
        free(o.p);
        return SA_ERR_INVAL;
    }
    ob_addc(&o, '\n');
    if (o.oom) {
        free(o.p);
        if (why && whylen)
            snprintf(why, whylen, "out of memory");
        return SA_ERR_NOMEM;
    }
    o.p[o.len] = 0;
    *out = o.p;
    if (outlen)
        *outlen = o.len;
    return SA_OK;
}

/* ------------------------------------------------------------------ */
/* String decoding                                                     */

static size_t put_utf8(char *d, unsigned cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) { /* also lone surrogates: WTF-8 */
        d[0] = (char)(0xE0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static unsigned hex4(const char *s)
{
    return (unsigned)(hexval((unsigned char)s[0]) << 12 | hexval((unsigned char)s[1]) << 8 |
                      hexval((unsigned char)s[2]) << 4 | hexval((unsigned char)s[3]));
}

/* Decode the inside of a validated string token (without its quotes) into
 * @p d, which has room for @p n bytes (the decoded form is never longer).
 * Returns the decoded length. */
static size_t decode_str(const char *s, size_t n, char *d)
{
    size_t i = 0, o = 0;
    while (i < n) {
        if (s[i] != '\\') {
            d[o++] = s[i++];
            continue;
        }
        char c = s[i + 1];
        i += 2;
        switch (c) {
        case 'b': d[o++] = '\b'; break;
        case 'f': d[o++] = '\f'; break;
        case 'n': d[o++] = '\n'; break;
        case 'r': d[o++] = '\r'; break;
        case 't': d[o++] = '\t'; break;
        case 'u': {
            unsigned cp = hex4(s + i);
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u') {
                unsigned lo = hex4(s + i + 2);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
            }
            o += put_utf8(d + o, cp);
            break;
        }
        default: d[o++] = c; break; /* " \ / */
        }
    }
    return o;
}

static bool key_is(const char *tok, size_t len, bool esc, const char *name)
{
    size_t nl = strlen(name);
    if (!esc)
        return len == nl + 2 && !memcmp(tok + 1, name, nl);
    if (len - 2 > 6 * nl + 12)
        return false;
    char tmp[256];
    if (len - 2 > sizeof tmp)
        return false;
    size_t dl = decode_str(tok + 1, len - 2, tmp);
    return dl == nl && !memcmp(tmp, name, nl);
}

/* ------------------------------------------------------------------ */
/* Iterators for the walkers (prepare, meta)                           */

/* After '{' (pos just past it) or after a value inside an object. Returns 1
 * with pos at the value (key token in ks, kl, esc), 0 at the end (the '}'
 * consumed), -1 on error. */
static int it_obj(struct ps *p, bool *first, size_t *ks, size_t *kl, bool *esc)
{
    skip_ws(p);
    if (*first) {
        *first = false;
        if (p->pos < p->len && p->s[p->pos] == '}') {
            p->pos++;
            return 0;
        }
    } else {
        if (p->pos < p->len && p->s[p->pos] == '}') {
            p->pos++;
            return 0;
        }
        if (p->pos >= p->len || p->s[p->pos] != ',')
            return perr(p, p->pos, "expected ',' or '}'%s", got(p));
        p->pos++;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == '}')
            return perr(p, p->pos, "trailing comma before '}'");
    }
    if (p->pos >= p->len || p->s[p->pos] != '"')
        return perr(p, p->pos, "expected a string key%s", got(p));
    *ks = p->pos;
    if (scan_string(p, esc))
        return -1;
    *kl = p->pos - *ks;
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != ':')
        return perr(p, p->pos, "expected ':' after key%s", got(p));
    p->pos++;
    skip_ws(p);
    return 1;
}

static int it_arr(struct ps *p, bool *first)
{
    skip_ws(p);
    if (*first) {
        *first = false;
        if (p->pos < p->len && p->s[p->pos] == ']') {
            p->pos++;
            return 0;
        }
        return 1;
    }
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return 0;
    }
    if (p->pos >= p->len || p->s[p->pos] != ',')
        return perr(p, p->pos, "expected ',' or ']'%s", got(p));
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']')
        return perr(p, p->pos, "trailing comma before ']'");
    return 1;
}

static inline char cur(struct ps *p)
{
    return p->pos < p->len ? p->s[p->pos] : 0;
}

/* ------------------------------------------------------------------ */
/* sa_json_quote                                                       */

static void quote_into(struct obuf *b, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    ob_addc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            ob_addc(b, '\\');
            ob_addc(b, (char)c);
            i++;
        } else if (c < 0x20) {
            char e[8];
            switch (c) {
            case '\n': ob_add(b, "\\n", 2); break;
            case '\r': ob_add(b, "\\r", 2); break;
            case '\t': ob_add(b, "\\t", 2); break;
            case '\b': ob_add(b, "\\b", 2); break;
            case '\f': ob_add(b, "\\f", 2); break;
            default:
                snprintf(e, sizeof e, "\\u%04x", c);
                ob_add(b, e, 6);
            }
            i++;
        } else if (c < 0x80) {
            ob_addc(b, (char)c);
            i++;
        } else {
            size_t k = utf8_seq(u + i, n - i);
            if (k) {
                ob_add(b, u + i, k);
                i += k;
            } else { /* invalid UTF-8: U+FFFD, so the output stays valid */
                ob_add(b, "\xEF\xBF\xBD", 3);
                i++;
            }
        }
    }
    ob_addc(b, '"');
}

char *sa_json_quote(const char *s)
{
    struct obuf b = {0};
    quote_into(&b, s ? s : "");
    if (b.oom || !ob_reserve(&b, 0)) {
        free(b.p);
        return NULL;
    }
    b.p[b.len] = 0;
    return b.p;
}

/* ------------------------------------------------------------------ */
/* sa_doc_prepare                                                      */

struct edit {
    size_t pos, del;  /* replace s[pos, pos+del) */
    char *ins;        /* new */
    size_t inslen;
    size_t seq;
};

struct edits {
    struct edit *v;
    size_t n, cap;
    bool oom;
};

static void ed_add(struct edits *e, size_t pos, size_t del, const char *ins)
{
    if (e->oom)
        return;
    if (e->n == e->cap) {
        size_t nc = e->cap ? e->cap * 2 : 16;
        struct edit *nv = realloc(e->v, nc * sizeof *nv);
        if (!nv) {
            e->oom = true;
            return;
        }
        e->v = nv;
        e->cap = nc;
    }
    char *c = strdup(ins);
    if (!c) {
        e->oom = true;
        return;
    }
    e->v[e->n] = (struct edit){pos, del, c, strlen(c), e->n};
    e->n++;
}

static int ed_cmp(const void *a, const void *b)
{
    const struct edit *x = a, *y = b;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The text of @p buf with the edits applied, in position order (edits at
 * one position in the order they were added), into *out (new). */
static enum sa_err ed_apply(struct edits *e, const char *buf, size_t len, char **out,
                            size_t *outlen)
{
    if (e->oom)
        return SA_ERR_NOMEM;
    if (e->n)
        qsort(e->v, e->n, sizeof *e->v, ed_cmp);
    size_t total = len;
    for (size_t i = 0; i < e->n; i++)
        total = total - e->v[i].del + e->v[i].inslen;
    char *r = malloc(total + 1);
    if (!r)
        return SA_ERR_NOMEM;
    size_t at = 0, o = 0;
    for (size_t i = 0; i < e->n; i++) {
        struct edit *d = &e->v[i];
        memcpy(r + o, buf + at, d->pos - at);
        o += d->pos - at;
        memcpy(r + o, d->ins, d->inslen);
        o += d->inslen;
        at = d->pos + d->del;
    }
    memcpy(r + o, buf + at, len - at);
    o += len - at;
    r[o] = 0;
    *out = r;
    if (outlen)
        *outlen = o;
    return SA_OK;
}

static void ed_free(struct edits *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i].ins);
    free(e->v);
    e->v = NULL;
    e->n = e->cap = 0;
}

struct prep {
    struct ps p;
    struct edits ed;
    const char *qname;  /* "name" quoted */
    const char *qla;    /* lastAction object */
    int type;
};

/* Skip a value whose container is at level @p depth. */
static int skip_value(struct ps *p, int depth)
{
    return p_value(p, depth);
}

static int prep_metadata(struct prep *x)
{
    struct ps *p = &x->p;
    size_t open = p->pos;
    p->pos++;
    bool first = true, esc, any = false, has_name = false, has_la = false;
    size_t ks, kl;
    int r;
    while ((r = it_obj(p, &first, &ks, &kl, &esc)) == 1) {
        any = true;
        size_t vs = p->pos;
        if (skip_value(p, 2))
            return -1;
        if (key_is(p->s + ks, kl, esc, "name")) {
            has_name = true;
            ed_add(&x->ed, vs, p->pos - vs, x->qname);
        } else if (key_is(p->s + ks, kl, esc, "lastAction")) {
            has_la = true;
            ed_add(&x->ed, vs, p->pos - vs, x->qla);
        }
    }
    if (r < 0)
        return -1;
    if (!has_name || !has_la) {
        struct obuf b = {0};
        if (!has_name) {
            ob_adds(&b, "\"name\":");
            ob_adds(&b, x->qname);
        }
        if (!has_la) {
            if (!has_name)
                ob_addc(&b, ',');
            ob_adds(&b, "\"lastAction\":");
            ob_adds(&b, x->qla);
        }
        if (any)
            ob_addc(&b, ',');
        ob_addc(&b, 0);
        if (b.oom)
            x->ed.oom = true;
        else
            ed_add(&x->ed, open + 1, 0, b.p);
        free(b.p);
    }
    return 0;
}

static const char k_ct[] = "\"creationType\":\"Preannotation\"";

/* Video instance's meta object: add creationType if missing. */
static int prep_vmeta(struct prep *x, int depth)
{
    struct ps *p = &x->p;
    size_t open = p->pos;
    p->pos++;
    bool first = true, esc, any = false, has_ct = false;
    size_t ks, kl;
    int r;
    while ((r = it_obj(p, &first, &ks, &kl, &esc)) == 1) {
        any = true;
        if (key_is(p->s + ks, kl, esc, "creationType"))
            has_ct = true;
        if (skip_value(p, depth))
            return -1;
    }
    if (r < 0)
        return -1;
    if (!has_ct)
        ed_add(&x->ed, open + 1, 0, any ? "\"creationType\":\"Preannotation\"," : k_ct);
    return 0;
}

static int prep_instance(struct prep *x)
{
    struct ps *p = &x->p;
    size_t open = p->pos;
    p->pos++;
    bool first = true, esc, any = false, has_ct = false, has_prob = false, has_meta = false;
    bool video = x->type == 3, image = x->type == 1 || x->type == 2 || x->type == 5;
    size_t ks, kl;
    int r;
    while ((r = it_obj(p, &first, &ks, &kl, &esc)) == 1) {
        any = true;
        if (video && key_is(p->s + ks, kl, esc, "meta")) {
            has_meta = true;
            if (cur(p) == '{') {
                if (prep_vmeta(x, 4))
                    return -1;
                continue;
            }
        } else if (key_is(p->s + ks, kl, esc, "creationType")) {
            has_ct = true;
        } else if (key_is(p->s + ks, kl, esc, "probability")) {
            has_prob = true;
        }
        if (skip_value(p, 3))
            return -1;
    }
    if (r < 0)
        return -1;
    char ins[128];
    ins[0] = 0;
    if (video) {
        if (!has_meta)
            strcat(ins, "\"meta\":{\"creationType\":\"Preannotation\"}");
    } else {
        if (!has_ct)
            strcat(ins, k_ct);
        if (image && !has_prob)
            strcat(ins, has_ct ? "\"probability\":100" : ",\"probability\":100");
    }
    if (ins[0]) {
        if (any)
            strcat(ins, ",");
        ed_add(&x->ed, open + 1, 0, ins);
    }
    return 0;
}

static int prep_instances(struct prep *x)
{
    struct ps *p = &x->p;
    p->pos++;
    bool first = true;
    int r;
    while ((r = it_arr(p, &first)) == 1) {
        if (cur(p) == '{') {
            if (prep_instance(x))
                return -1;
        } else if (skip_value(p, 2)) {
            return -1;
        }
    }
    return r;
}

static int prep_doc(struct prep *x)
{
    struct ps *p = &x->p;
    if (doc_begin(p))
        return -1;
    size_t open = p->pos;
    p->pos++;
    bool first = true, esc, any = false, has_meta = false;
    size_t ks, kl;
    int r;
    while ((r = it_obj(p, &first, &ks, &kl, &esc)) == 1) {
        any = true;
        if (check_shape(p, p->s + ks, kl, esc))
            return -1;
        if (key_is(p->s + ks, kl, esc, "metadata")) {
            has_meta = true;
            if (prep_metadata(x))
                return -1;
        } else if (key_is(p->s + ks, kl, esc, "instances")) {
            if (prep_instances(x))
                return -1;
        } else if (skip_value(p, 1)) {
            return -1;
        }
    }
    if (r < 0 || doc_end(p))
        return -1;
    if (!has_meta) {
        struct obuf b = {0};
        ob_adds(&b, "\"metadata\":{\"name\":");
        ob_adds(&b, x->qname);
        ob_adds(&b, ",\"lastAction\":");
        ob_adds(&b, x->qla);
        ob_addc(&b, '}');
        if (any)
            ob_addc(&b, ',');
        ob_addc(&b, 0);
        if (b.oom)
            x->ed.oom = true;
        else
            ed_add(&x->ed, open + 1, 0, b.p);
        free(b.p);
    }
    return 0;
}

enum sa_err sa_doc_prepare(const char *buf, size_t len, const char *name, const char *email,
                           int64_t ts_ms, int project_type, char **out, size_t *outlen,
                           char *why, size_t whylen)
{
    *out = NULL;
    if (outlen)
        *outlen = 0;
    enum sa_err rc = SA_ERR_NOMEM;
    struct prep x;
    memset(&x, 0, sizeof x);
    ps_init(&x.p, buf, len, why, whylen);
    x.type = project_type;
    char *qname = sa_json_quote(name ? name : "");
    char *qemail = sa_json_quote(email ? email : "");
    char *qla = NULL;
    if (!qname || !qemail)
        goto out;
    size_t lal = strlen(qemail) + 64;
    qla = malloc(lal);
    if (!qla)
        goto out;
    snprintf(qla, lal, "{\"email\":%s,\"timestamp\":%lld}", qemail, (long long)ts_ms);
    x.qname = qname;
    x.qla = qla;
    if (prep_doc(&x)) {
        rc = x.p.failed ? SA_ERR_INVAL : SA_ERR_NOMEM;
        goto out;
    }
    rc = ed_apply(&x.ed, buf, len, out, outlen);
    if (rc == SA_OK) {
        /* no whitespace around the document: the SDK's stream parser reads
         * the delimiter right after the object (api.md §9.2), and a server
         * that stores the bytes as sent would serve it so */
        char *o = *out;
        size_t n = strlen(o), a = 0;
        while (n && strchr(" \t\r\n", o[n - 1]))
            n--;
        while (a < n && strchr(" \t\r\n", o[a]))
            a++;
        memmove(o, o + a, n - a);
        o[n - a] = 0;
        if (outlen)
            *outlen = n - a;
    }
out:
    if (rc == SA_ERR_NOMEM && why && whylen)
        snprintf(why, whylen, "out of memory");
    ed_free(&x.ed);
    free(qname);
    free(qemail);
    free(qla);
    return rc;
}

/* ------------------------------------------------------------------ */
/* sa_doc_with_status                                                  */

/* Is the validated string token tok[0..len) (quotes included) equal to
 * s[0..slen) once decoded? */
static bool str_tok_is(const char *tok, size_t len, bool esc, const char *s, size_t slen,
                       bool *oom)
{
    if (!esc)
        return len - 2 == slen && !memcmp(tok + 1, s, slen);
    char small[256];
    char *d = len - 2 <= sizeof small ? small : malloc(len - 2);
    if (!d) {
        *oom = true;
        return false;
    }
    size_t dl = decode_str(tok + 1, len - 2, d);
    bool eq = dl == slen && !memcmp(d, s, slen);
    if (d != small)
        free(d);
    return eq;
}

struct wstat {
    struct ps p;
    struct edits ed;
    const char *status; /* raw */
    size_t slen;
    const char *qstatus; /* quoted */
};

/* At a top-level "metadata" object: every "status" member whose value is
 * not already the string @status gets it; none there: appended after the
 * last member's value (or inside the empty braces). */
static int ws_metadata(struct wstat *x)
{
    struct ps *p = &x->p;
    size_t open = p->pos, last_end = 0;
    p->pos++;
    bool first = true, esc, has = false;
    size_t ks, kl;
    int r;
    while ((r = it_obj(p, &first, &ks, &kl, &esc)) == 1) {
        size_t vs = p->pos;
        bool is_str = cur(p) == '"', vesc = false;
        if (is_str ? scan_string(p, &vesc) : skip_value(p, 2))
            return -1;
        last_end = p->pos;
        if (!key_is(p->s + ks, kl, esc, "status"))
            continue;
        has = true;
        if (!is_str || !str_tok_is(p->s + vs, p->pos - vs, vesc, x->status, x->slen, &x->ed.oom))
            ed_add(&x->ed, vs, p->pos - vs, x->qstatus);
    }
    if (r < 0)
        return -1;
    if (!has) {
        struct obuf b = {0};
        if (last_end)
            ob_addc(&b, ',');
        ob_adds(&b, "\"status\":");
        ob_adds(&b, x->qstatus);
        ob_addc(&b, 0);
        if (b.oom)
            x->ed.oom = true;
        else
            ed_add(&x->ed, last_end ? last_end : open + 1, 0, b.p);
        free(b.p);
    }
    return 0;
}

static int ws_doc(struct wstat *x)
{
    struct ps *p = &x->p;
    if (doc_begin(p))
        return -1;
    size_t open = p->pos;
    p->pos++;
    bool first = true, esc, any = false, has_meta = false;
    size_t ks, kl;
    int r;
    while ((r = it_obj(p, &first, &ks, &kl, &esc)) == 1) {
        any = true;
        if (check_shape(p, p->s + ks, kl, esc))
            return -1;
        if (key_is(p->s + ks, kl, esc, "metadata")) {
            has_meta = true;
            if (ws_metadata(x))
                return -1;
        } else if (skip_value(p, 1)) {
            return -1;
        }
    }
    if (r < 0 || doc_end(p))
        return -1;
    if (!has_meta) {
        struct obuf b = {0};
        ob_adds(&b, "\"metadata\":{\"status\":");
        ob_adds(&b, x->qstatus);
        ob_addc(&b, '}');
        if (any)
            ob_addc(&b, ',');
        ob_addc(&b, 0);
        if (b.oom)
            x->ed.oom = true;
        else
            ed_add(&x->ed, open + 1, 0, b.p);
        free(b.p);
    }
    return 0;
}

enum sa_err sa_doc_with_status(const char *buf, size_t len, const char *status, char **out,
                               size_t *outlen, char *why, size_t whylen)
{
    *out = NULL;
    if (outlen)
        *outlen = 0;
    struct wstat x;
    memset(&x, 0, sizeof x);
    ps_init(&x.p, buf, len, why, whylen);
    if (!status) {
        if (why && whylen)
            snprintf(why, whylen, "no status given");
        return SA_ERR_INVAL;
    }
    enum sa_err rc = SA_ERR_NOMEM;
    char *q = sa_json_quote(status);
    if (!q)
        goto out;
    x.status = status;
    x.slen = strlen(status);
    x.qstatus = q;
    if (ws_doc(&x)) {
        rc = x.p.failed ? SA_ERR_INVAL : SA_ERR_NOMEM;
        goto out;
    }
    rc = ed_apply(&x.ed, buf, len, out, outlen);
out:
    if (rc == SA_ERR_NOMEM && why && whylen)
        snprintf(why, whylen, "out of memory");
    ed_free(&x.ed);
    free(q);
    return rc;
}

/* ------------------------------------------------------------------ */
/* sa_doc_is_empty                                                     */

/* A top-level member other than metadata/version: its key (decoded), its
 * place, and whether its value is empty. */
struct topm {
    const char *k; /* into the document, or new when escaped */
    size_t kl, idx;
    bool empty, owned;
};

static int topm_cmp(const void *a, const void *b)
{
    const struct topm *x = a, *y = b;
    size_t n = x->kl < y->kl ? x->kl : y->kl;
    int c = memcmp(x->k, y->k, n);
    if (c)
        return c;
    if (x->kl != y->kl)
        return x->kl < y->kl ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* At a value: is it [], {}, null or "" (whitespace inside brackets allowed)?
 * Does not move; the caller still scans (and so validates) it. */
static bool value_is_empty(const struct ps *p)
{
    const char *s = p->s;
    size_t i = p->pos, n = p->len;
    if (i >= n)
        return false;
    char c = s[i];
    if (c == '[' || c == '{') {
        i++;
        while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t'))
            i++;
        return i < n && s[i] == (c == '[' ? ']' : '}');
    }
    if (c == '"')
        return i + 1 < n && s[i + 1] == '"';
    return n - i >= 4 && !memcmp(s + i, "null", 4);
}

int sa_doc_is_empty(const char *buf, size_t len)
{
    struct ps p;
    ps_init(&p, buf, len, NULL, 0);
    if (doc_begin(&p))
        return -1;
    p.pos++;
    struct topm *v = NULL;
    size_t n = 0, cap = 0;
    bool first = true, esc;
    size_t ks, kl;
    int r, result = -1;
    while ((r = it_obj(&p, &first, &ks, &kl, &esc)) == 1) {
        bool meta = key_is(p.s + ks, kl, esc, "metadata") || key_is(p.s + ks, kl, esc, "version");
        bool empty = value_is_empty(&p);
        if (skip_value(&p, 1))
            goto out;
        if (meta)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct topm *nv = realloc(v, nc * sizeof *nv);
            if (!nv)
                goto out;
            v = nv;
            cap = nc;
        }
        struct topm m = {p.s + ks + 1, kl - 2, n, empty, false};
        if (esc) {
            char *d = malloc(kl);
            if (!d)
                goto out;
            m.kl = decode_str(p.s + ks + 1, kl - 2, d);
            m.k = d;
            m.owned = true;
        }
        v[n++] = m;
    }
    if (r < 0 || doc_end(&p))
        goto out;
    /* duplicate keys: the last one counts, as in Python's json.loads */
    if (n > 1)
        qsort(v, n, sizeof *v, topm_cmp);
    result = 1;
    for (size_t i = 0; i < n && result; i++) {
        bool last = i + 1 == n || v[i + 1].kl != v[i].kl || memcmp(v[i + 1].k, v[i].k, v[i].kl);
        if (last && !v[i].empty)
            result = 0;
    }
out:
    for (size_t i = 0; i < n; i++)
        if (v[i].owned)
            free((char *)v[i].k);
    free(v);
    return result;
}

/* ------------------------------------------------------------------ */
/* sa_doc_meta                                                         */

enum sa_err sa_doc_meta(const char *buf, size_t len, long long *id, char **name)
{
    if (id)
        *id = 0;
    if (name)
        *name = NULL;
    struct ps p;
    ps_init(&p, buf, len, NULL, 0);
    if (doc_begin(&p))
        return SA_ERR_INVAL;
    p.pos++;
    bool first = true, esc;
    size_t ks, kl;
    int r;
    while ((r = it_obj(&p, &first, &ks, &kl, &esc)) == 1) {
        if (!key_is(p.s + ks, kl, esc, "metadata")) {
            if (skip_value(&p, 1))
                return SA_ERR_INVAL;
            continue;
        }
        if (cur(&p) != '{')
            return SA_ERR_INVAL;
        p.pos++;
        bool f2 = true, e2;
        size_t k2, l2;
        long long vid = 0;
        char *vname = NULL;
        while ((r = it_obj(&p, &f2, &k2, &l2, &e2)) == 1) {
            size_t vs = p.pos;
            bool sesc = false;
            char c = cur(&p);
            if (c == '"') {
                if (scan_string(&p, &sesc)) {
                    r = -1;
                    break;
                }
            } else if (skip_value(&p, 2)) {
                r = -1;
                break;
            }
            size_t vl = p.pos - vs;
            if (key_is(p.s + k2, l2, e2, "id")) {
                vid = 0;
                bool integer = c == '-' || isdig(c);
                for (size_t i = 0; integer && i < vl; i++)
                    if (p.s[vs + i] == '.' || p.s[vs + i] == 'e' || p.s[vs + i] == 'E')
                        integer = false;
                if (integer) {
                    char tmp[32];
                    if (vl < sizeof tmp) {
                        memcpy(tmp, p.s + vs, vl);
                        tmp[vl] = 0;
                        errno = 0;
                        long long v = strtoll(tmp, NULL, 10);
                        if (!errno)
                            vid = v;
                    }
                }
            } else if (key_is(p.s + k2, l2, e2, "name")) {
                free(vname);
                vname = NULL;
                if (c == '"' && name) {
                    vname = malloc(vl);
                    if (!vname)
                        return SA_ERR_NOMEM;
                    size_t dl = decode_str(p.s + vs + 1, vl - 2, vname);
                    vname[dl] = 0;
                }
            }
        }
        if (r < 0) {
            free(vname);
            return SA_ERR_INVAL;
        }
        if (id)
            *id = vid;
        if (name)
            *name = vname;
        else
            free(vname);
        return SA_OK;
    }
    if (r < 0 || doc_end(&p))
        return SA_ERR_INVAL;
    return SA_OK;
}

/* ------------------------------------------------------------------ */
/* sa_doc_skeleton                                                     */

enum sa_err sa_doc_skeleton(const char *name, const char *status, long long project_id,
                            long long item_id, char **out, size_t *outlen)
{
    *out = NULL;
    if (outlen)
        *outlen = 0;
    struct obuf b = {0};
    char num[96];
    ob_adds(&b, "{\"metadata\":{\"name\":");
    quote_into(&b, name ? name : "");
    ob_adds(&b, ",\"height\":null,\"width\":null,\"status\":");
    quote_into(&b, status ? status : "NotStarted");
    snprintf(num, sizeof num, ",\"pinned\":false,\"annotatorEmail\":null,\"qaEmail\":null,"
             "\"projectId\":%lld,\"id\":%lld},", project_id, item_id);
    ob_adds(&b, num);
    ob_adds(&b, "\"instances\":[],\"tags\":[],\"comments\":[]}");
    if (b.oom || !ob_reserve(&b, 0)) {
        free(b.p);
        return SA_ERR_NOMEM;
    }
    b.p[b.len] = 0;
    *out = b.p;
    if (outlen)
        *outlen = b.len;
    return SA_OK;
}

/* ------------------------------------------------------------------ */
/* sa_doc_equal: a small tree of borrowed tokens                       */

/* The tree is json_i.h's, shared with frames.c. */
#define J_NULL SA_J_NULL
#define J_FALSE SA_J_FALSE
#define J_TRUE SA_J_TRUE
#define J_NUM SA_J_NUM
#define J_STR SA_J_STR
#define J_ARR SA_J_ARR
#define J_OBJ SA_J_OBJ
#define jt sa_jt
#define jn sa_jn

/* Bump allocator: freed at once. */
struct arena {
    struct achunk *head;
};
struct achunk {
    struct achunk *next;
    size_t used, cap;
    max_align_t data[];
};

static void *ar_alloc(struct arena *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > (1u << 20) ? n : (1u << 20);
        struct achunk *c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *r = (char *)a->head->data + a->head->used;
    a->head->used += n;
    return r;
}

static void ar_free(struct arena *a)
{
    while (a->head) {
        struct achunk *n = a->head->next;
        free(a->head);
        a->head = n;
    }
}

struct tb {
    struct ps p;
    bool shape; /* apply the document shape rules */
    struct arena ar;
    struct jn *stk; /* children being collected */
    size_t sn, scap;
    bool oom;
};

static bool tb_push(struct tb *t, const struct jn *j)
{
    if (t->sn == t->scap) {
        size_t nc = t->scap ? t->scap * 2 : 256;
        struct jn *nv = realloc(t->stk, nc * sizeof *nv);
        if (!nv) {
            t->oom = true;
            return false;
        }
        t->stk = nv;
        t->scap = nc;
    }
    t->stk[t->sn++] = *j;
    return true;
}

static int tb_str(struct tb *t, struct jn *j)
{
    size_t s = t->p.pos;
    bool esc;
    if (scan_string(&t->p, &esc))
        return -1;
    j->t = J_STR;
    if (!esc) {
        j->s = t->p.s + s + 1;
        j->len = t->p.pos - s - 2;
        return 0;
    }
    char *d = ar_alloc(&t->ar, t->p.pos - s);
    if (!d) {
        t->oom = true;
        return -1;
    }
    j->s = d;
    j->len = decode_str(t->p.s + s + 1, t->p.pos - s - 2, d);
    return 0;
}

static int tb_value(struct tb *t, struct jn *j, int depth);

static int tb_container(struct tb *t, struct jn *j, int depth, bool obj)
{
    struct ps *p = &t->p;
    if (depth > DOC_MAX_DEPTH)
        return perr(p, p->pos, "nesting deeper than %d levels", DOC_MAX_DEPTH);
    p->pos++;
    size_t base = t->sn;
    bool first = true, esc;
    size_t ks, kl, n = 0;
    int r;
    for (;;) {
        struct jn k = {0}, v = {0};
        if (obj) {
            r = it_obj(p, &first, &ks, &kl, &esc);
            if (r != 1)
                break;
            if (depth == 1 && t->shape && check_shape(p, p->s + ks, kl, esc))
                return -1;
            k.t = J_STR;
            if (!esc) {
                k.s = p->s + ks + 1;
                k.len = kl - 2;
            } else {
                char *d = ar_alloc(&t->ar, kl);
                if (!d) {
                    t->oom = true;
                    return -1;
                }
                k.s = d;
                k.len = decode_str(p->s + ks + 1, kl - 2, d);
            }
        } else {
            r = it_arr(p, &first);
            if (r != 1)
                break;
        }
        if (tb_value(t, &v, depth))
            return -1;
        if ((obj && !tb_push(t, &k)) || !tb_push(t, &v))
            return -1;
        n++;
    }
    if (r < 0)
        return -1;
    size_t cnt = t->sn - base;
    j->t = obj ? J_OBJ : J_ARR;
    j->n = n;
    j->kids = NULL;
    if (cnt) {
        j->kids = ar_alloc(&t->ar, cnt * sizeof *j->kids);
        if (!j->kids) {
            t->oom = true;
            return -1;
        }
        memcpy(j->kids, t->stk + base, cnt * sizeof *j->kids);
    }
    t->sn = base;
    return 0;
}

static int tb_value(struct tb *t, struct jn *j, int depth)
{
    struct ps *p = &t->p;
    if (p->pos >= p->len)
        return bad_value(p);
    size_t s = p->pos;
    switch (p->s[s]) {
    case '{':
        return tb_container(t, j, depth + 1, true);
    case '[':
        return tb_container(t, j, depth + 1, false);
    case '"':
        return tb_str(t, j);
    case 't': case 'f': case 'n':
        if (scan_literal(p))
            return -1;
        j->t = p->s[s] == 't' ? J_TRUE : p->s[s] == 'f' ? J_FALSE : J_NULL;
        return 0;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        if (scan_number(p))
            return -1;
        j->t = J_NUM;
        j->s = p->s + s;
        j->len = p->pos - s;
        return 0;
    default:
        return bad_value(p);
    }
}

static int tb_build(struct tb *t, const char *buf, size_t len, struct jn *root)
{
    memset(t, 0, sizeof *t);
    t->shape = true;
    ps_init(&t->p, buf, len, NULL, 0);
    if (doc_begin(&t->p) || tb_value(t, root, 0) || doc_end(&t->p))
        return -1;
    return 0;
}

static void tb_free(struct tb *t)
{
    ar_free(&t->ar);
    free(t->stk);
}

struct sa_jdoc {
    struct tb t;
    struct jn root;
};

int sa_jdoc_parse(const char *buf, size_t len, struct sa_jdoc **doc, const struct sa_jn **root,
                  char *why, size_t whylen)
{
    *doc = NULL;
    *root = NULL;
    struct sa_jdoc *d = calloc(1, sizeof *d);
    if (!d)
        return -2;
    ps_init(&d->t.p, buf, len, why, whylen);
    skip_ws(&d->t.p);
    if (tb_value(&d->t, &d->root, 0) || doc_end(&d->t.p)) {
        int rc = d->t.oom ? -2 : -1;
        if (rc == -2 && why && whylen)
            snprintf(why, whylen, "out of memory");
        sa_jdoc_free(d);
        return rc;
    }
    free(d->t.stk);
    d->t.stk = NULL;
    *doc = d;
    *root = &d->root;
    return 0;
}

void sa_jdoc_free(struct sa_jdoc *doc)
{
    if (!doc)
        return;
    tb_free(&doc->t);
    free(doc);
}

/* Numbers as exact decimals: value = 0.DIGITS x 10^point. */
struct dec {
    bool neg;
    char *dig;
    size_t nd;
    long long point;
};

static void num_norm(const char *s, size_t len, char *dig, struct dec *d)
{
    size_t i = 0, nd = 0, il = 0;
    d->neg = s[0] == '-';
    if (d->neg)
        i++;
    while (i < len && isdig(s[i]))
        dig[nd++] = s[i++];
    il = nd;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && isdig(s[i]))
            dig[nd++] = s[i++];
    }
    long long e = 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool en = false;
        if (s[i] == '+' || s[i] == '-')
            en = s[i++] == '-';
        while (i < len && isdig(s[i])) {
            if (e < 1000000000000000LL) /* saturate; see header note */
                e = e * 10 + (s[i] - '0');
            i++;
        }
        if (en)
            e = -e;
    }
    long long point = (long long)il + e;
    size_t lead = 0;
    while (lead < nd && dig[lead] == '0') {
        lead++;
        point--;
    }
    while (nd > lead && dig[nd - 1] == '0')
        nd--;
    d->dig = dig + lead;
    d->nd = nd - lead;
    d->point = point;
    if (!d->nd) {
        d->neg = false;
        d->point = 0;
    }
}

static bool num_eq(const struct jn *a, const struct jn *b)
{
    if (a->len == b->len && !memcmp(a->s, b->s, a->len))
        return true;
    char sa[64], sb[64];
    char *da = a->len <= sizeof sa ? sa : malloc(a->len);
    char *db = b->len <= sizeof sb ? sb : malloc(b->len);
    bool eq = false;
    if (da && db) {
        struct dec x, y;
        num_norm(a->s, a->len, da, &x);
        num_norm(b->s, b->len, db, &y);
        eq = x.neg == y.neg && x.nd == y.nd && x.point == y.point && !memcmp(x.dig, y.dig, x.nd);
    }
    if (da != sa)
        free(da);
    if (db != sb)
        free(db);
    return eq;
}

/* Comparison contexts: where a node sits decides how an upload would
 * normalize it. */
enum ctx { X_PLAIN, X_TOP, X_META, X_INSTS, X_INST, X_VINST, X_VMETA };

struct kv {
    const struct jn *k, *v;
    size_t idx;
};

static int kv_cmp(const void *a, const void *b)
{
    const struct kv *x = a, *y = b;
    size_t n = x->k->len < y->k->len ? x->k->len : y->k->len;
    int c = memcmp(x->k->s, y->k->s, n);
    if (c)
        return c;
    if (x->k->len != y->k->len)
        return x->k->len < y->k->len ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static bool str_is(const struct jn *k, const char *s)
{
    size_t n = strlen(s);
    return k->len == n && !memcmp(k->s, s, n);
}

static const struct jn k_key_ct = {J_STR, 0, "creationType", 12, NULL};
static const struct jn k_val_ct = {J_STR, 0, "Preannotation", 13, NULL};
static const struct jn k_key_prob = {J_STR, 0, "probability", 11, NULL};
static const struct jn k_val_prob = {J_NUM, 0, "100", 3, NULL};
static const struct jn k_key_meta = {J_STR, 0, "meta", 4, NULL};
static const struct jn k_key_metadata = {J_STR, 0, "metadata", 8, NULL};
static const struct jn k_empty_obj = {J_OBJ, 0, NULL, 0, NULL};

/* The normalized member list of object @p o in context @p c: duplicates
 * resolved (last wins), server-owned keys dropped, upload defaults added,
 * sorted by key. Returns a new array (count in *n), or NULL with *n = 0 for
 * an empty result; *oom on failure. */
static struct kv *norm_obj(const struct jn *o, enum ctx c, int type, size_t *n, bool *oom,
                           struct jn *vmeta_default)
{
    size_t cap = o->n + 3;
    struct kv *v = malloc(cap * sizeof *v);
    *n = 0;
    if (!v) {
        *oom = true;
        return NULL;
    }
    for (size_t i = 0; i < o->n; i++)
        v[i] = (struct kv){&o->kids[2 * i], &o->kids[2 * i + 1], i};
    qsort(v, o->n, sizeof *v, kv_cmp);
    size_t m = 0;
    for (size_t i = 0; i < o->n; i++) {
        /* keep the last of each run of equal keys */
        if (i + 1 < o->n && v[i + 1].k->len == v[i].k->len &&
            !memcmp(v[i + 1].k->s, v[i].k->s, v[i].k->len))
            continue;
        const struct jn *k = v[i].k;
        if (c == X_META && (str_is(k, "name") || str_is(k, "lastAction") || str_is(k, "status") ||
                            str_is(k, "id") || str_is(k, "projectId")))
            continue;
        v[m++] = v[i];
    }
    bool image = type == 1 || type == 2 || type == 5;
    bool has_ct = false, has_prob = false, has_meta = false, has_md = false;
    for (size_t i = 0; i < m; i++) {
        has_ct |= str_is(v[i].k, "creationType");
        has_prob |= str_is(v[i].k, "probability");
        has_meta |= str_is(v[i].k, "meta");
        has_md |= str_is(v[i].k, "metadata");
    }
    size_t m0 = m;
    if ((c == X_INST || c == X_VMETA) && !has_ct)
        v[m++] = (struct kv){&k_key_ct, &k_val_ct, SIZE_MAX};
    if (c == X_INST && image && !has_prob)
        v[m++] = (struct kv){&k_key_prob, &k_val_prob, SIZE_MAX};
    if (c == X_VINST && !has_meta)
        v[m++] = (struct kv){&k_key_meta, vmeta_default, SIZE_MAX};
    if (c == X_TOP && !has_md)
        v[m++] = (struct kv){&k_key_metadata, &k_empty_obj, SIZE_MAX};
    if (m != m0)
        qsort(v, m, sizeof *v, kv_cmp);
    *n = m;
    return v;
}

static int jn_eq(const struct jn *a, const struct jn *b, enum ctx c, int type, int depth);

static enum ctx child_ctx(enum ctx c, const struct jn *key, int type)
{
    switch (c) {
    case X_TOP:
        if (!key)
            return X_PLAIN;
        if (str_is(key, "metadata"))
            return X_META;
        if (str_is(key, "instances"))
            return X_INSTS;
        return X_PLAIN;
    case X_VINST:
        return key && str_is(key, "meta") ? X_VMETA : X_PLAIN;
    case X_INSTS:
        return type == 3 ? X_VINST : X_INST;
    case X_PLAIN:
    case X_META:
    case X_INST:
    case X_VMETA:
        return X_PLAIN;
    }
    return X_PLAIN;
}

/* 1 equal, 0 different, -1 out of memory */
static int jn_eq(const struct jn *a, const struct jn *b, enum ctx c, int type, int depth)
{
    if (depth > DOC_MAX_DEPTH + 2)
        return 0;
    if (a->t != b->t)
        return 0;
    switch ((enum jt)a->t) {
    case J_NULL:
    case J_FALSE:
    case J_TRUE:
        return 1;
    case J_NUM:
        return num_eq(a, b);
    case J_STR:
        return a->len == b->len && !memcmp(a->s, b->s, a->len);
    case J_ARR:
        if (a->n != b->n)
            return 0;
        for (size_t i = 0; i < a->n; i++) {
            int r = jn_eq(&a->kids[i], &b->kids[i], child_ctx(c, NULL, type), type, depth + 1);
            if (r != 1)
                return r;
        }
        return 1;
    case J_OBJ: {
        /* default meta of a video instance: {"creationType": "Preannotation"} */
        struct jn mk[2] = {k_key_ct, k_val_ct};
        struct jn md = {J_OBJ, 1, NULL, 0, mk};
        bool oom = false;
        size_t na, nb;
        if (c == X_INSTS)
            c = X_PLAIN;
        struct kv *va = norm_obj(a, c, type, &na, &oom, &md);
        struct kv *vb = norm_obj(b, c, type, &nb, &oom, &md);
        int r = 1;
        if (oom)
            r = -1;
        else if (na != nb)
            r = 0;
        for (size_t i = 0; r == 1 && i < na; i++) {
            if (va[i].k->len != vb[i].k->len || memcmp(va[i].k->s, vb[i].k->s, va[i].k->len))
                r = 0;
            else
                r = jn_eq(va[i].v, vb[i].v, child_ctx(c, va[i].k, type), type, depth + 1);
        }
        free(va);
        free(vb);
        return r;
    }
    }
    return 0;
}

int sa_doc_equal(const char *a, size_t alen, const char *b, size_t blen, int project_type)
{
    struct tb ta, tbb;
    struct jn ra, rb;
    int r = -1;
    int ea = tb_build(&ta, a, alen, &ra);
    int eb = ea ? -1 : tb_build(&tbb, b, blen, &rb);
    if (!ea && !eb)
        r = jn_eq(&ra, &rb, X_TOP, project_type, 0);
    tb_free(&ta);
    if (!ea)
        tb_free(&tbb);
    return r;
}
