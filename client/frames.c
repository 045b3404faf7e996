/** @file
 * get_annotations_per_frame (api.md §12, §12.1), byte for byte.
 *
 * The document is read with doc.c's strict scanner into a tree of borrowed
 * tokens (json_i.h), so integers of any size stay integers and every float
 * is the double Python's json would read. Python semantics reproduced:
 *  - Python reads a JSON object with duplicate keys as a dict: lookups see
 *    the last value; when copied to the output the key sits where it first
 *    appeared, with the last value;
 *  - "iterating" instances/parameters/timestamps: an array gives its
 *    elements; an empty object or string gives nothing; a non-empty object or
 *    string gives strings, which then fail as Python fails; anything else
 *    raises;
 *  - bools are ints in arithmetic (True + 0 == 1);
 *  - int - int is exact, then true division; exact for |values| < 2^53
 *    (beyond that Python's exact big-int arithmetic is approximated);
 *  - round(x, 2) is CPython's: the correctly rounded 2-decimal string
 *    (glibc's printf is exact, ties to even on the binary value), read back;
 *  - floats print as repr(): shortest round-trip digits, fixed notation for
 *    decimal exponents -4..15, else d.ddde+XX; inf as Infinity.
 * Limits (where the SDK would hang or exhaust memory instead): more than
 * SA_FRAMES_MAX frames, or a frame number beyond +-2^62, is an error.
 * Interpolated frames outside 1..frames_count are never materialized (their
 * errors are still detected: they do not depend on the frame).
 */
#include "sa/frames.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_i.h"

#define SA_FRAMES_MAX 10000000LL

typedef struct sa_jn jv;

/* ------------------------------------------------------------------ */
/* Output buffer                                                       */

struct ob {
    char *p;
    size_t len, cap;
    bool oom;
};

static bool ob_need(struct ob *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->len + n + 1 <= b->cap)
        return true;
    size_t c = b->cap ? b->cap : 4096;
    while (c < b->len + n + 1)
        c *= 2;
    char *np = realloc(b->p, c);
    if (!np) {
        b->oom = true;
        return false;
    }
    b->p = np;
    b->cap = c;
    return true;
}

static void ob_add(struct ob *b, const char *s, size_t n)
{
    if (!ob_need(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void ob_adds(struct ob *b, const char *s)
{
    ob_add(b, s, strlen(s));
}

static void ob_nl(struct ob *b, int level)
{
    size_t n = (size_t)level * 4;
    if (!ob_need(b, n + 1))
        return;
    b->p[b->len++] = '\n';
    memset(b->p + b->len, ' ', n);
    b->len += n;
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */

struct fx {
    char *why;
    size_t whylen;
    bool failed;
    bool oom;
};

static int fail(struct fx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct fx *x, const char *fmt, ...)
{
    if (!x->failed && x->why && x->whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->why, x->whylen, fmt, ap);
        va_end(ap);
    }
    x->failed = true;
    return -1;
}

/* ------------------------------------------------------------------ */
/* Python values                                                       */

static bool str_eq(const jv *k, const char *s)
{
    size_t n = strlen(s);
    return k->t == SA_J_STR && k->len == n && !memcmp(k->s, s, n);
}

/* dict.get: the last occurrence, or NULL */
static const jv *get(const jv *o, const char *key)
{
    if (!o || o->t != SA_J_OBJ)
        return NULL;
    for (size_t i = o->n; i-- > 0;)
        if (str_eq(&o->kids[2 * i], key))
            return &o->kids[2 * i + 1];
    return NULL;
}

static bool is_int_tok(const jv *v)
{
    for (size_t i = 0; i < v->len; i++)
        if (v->s[i] == '.' || v->s[i] == 'e' || v->s[i] == 'E')
            return false;
    return true;
}

static double tok_double(const jv *v)
{
    char tmp[64];
    char *buf = v->len < sizeof tmp ? tmp : malloc(v->len + 1);
    if (!buf)
        return NAN;
    memcpy(buf, v->s, v->len);
    buf[v->len] = 0;
    double d = strtod(buf, NULL);
    if (buf != tmp)
        free(buf);
    return d;
}

/* A number (or bool) as Python arithmetic sees it. */
struct pn {
    bool is_int;
    bool small;     /* is_int and fits in i */
    long long i;
    double d;       /* float value (for ints: float(int), inf if too large) */
    const jv *node; /* for printing an int unchanged */
};

static bool pnum(const jv *v, struct pn *o)
{
    memset(o, 0, sizeof *o);
    o->node = v;
    if (!v)
        return false;
    if (v->t == SA_J_TRUE || v->t == SA_J_FALSE) {
        o->is_int = o->small = true;
        o->i = v->t == SA_J_TRUE;
        o->d = (double)o->i;
        return true;
    }
    if (v->t != SA_J_NUM)
        return false;
    o->d = tok_double(v);
    if (is_int_tok(v)) {
        o->is_int = true;
        char tmp[32];
        if (v->len < sizeof tmp) {
            memcpy(tmp, v->s, v->len);
            tmp[v->len] = 0;
            char *end;
            errno = 0;
            long long i = strtoll(tmp, &end, 10);
            if (!errno && *end == 0) {
                o->small = true;
                o->i = i;
            }
        }
    }
    return true;
}

/* float(x) for arithmetic with a float: Python raises OverflowError when an
 * int is too large for a double. */
static int pfloat(struct fx *x, const struct pn *a, double *d, const char *what)
{
    if (a->is_int && isinf(a->d))
        return fail(x, "%s: integer too large to convert to float (OverflowError)", what);
    *d = a->d;
    return 0;
}

/* (e - s) / n as Python computes it; a float. */
static int pdiff_div(struct fx *x, const struct pn *e, const struct pn *s, long long n, double *out,
                     const char *what)
{
    if (e->is_int && s->is_int && e->small && s->small) {
        __int128 d = (__int128)e->i - (__int128)s->i;
        *out = (double)d / (double)n;
        return 0;
    }
    double a = 0, b = 0;
    if (e->is_int && s->is_int) { /* big ints: approximated */
        *out = (e->d - s->d) / (double)n;
        if (isinf(*out) || isnan(*out))
            return fail(x, "%s: integer division result too large for a float", what);
        return 0;
    }
    if (pfloat(x, e, &a, what) || pfloat(x, s, &b, what))
        return -1;
    *out = (a - b) / (double)n;
    return 0;
}

/* CPython's round(x, 2) */
static double pround2(double v)
{
    if (!isfinite(v))
        return v;
    char tmp[400];
    int n = snprintf(tmp, sizeof tmp, "%.2f", v);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return v;
    return strtod(tmp, NULL);
}

/* repr(float) as json.dumps writes it */
static void py_float(struct ob *b, double v)
{
    if (isnan(v)) {
        ob_adds(b, "NaN");
        return;
    }
    if (isinf(v)) {
        ob_adds(b, v < 0 ? "-Infinity" : "Infinity");
        return;
    }
    char e[40];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    /* e = [-]d[.ddd]e[+-]XX */
    const char *s = e;
    bool neg = *s == '-';
    if (neg)
        s++;
    char dig[24];
    int nd = 0;
    while (*s && *s != 'e') {
        if (*s != '.')
            dig[nd++] = *s;
        s++;
    }
    int ex = atoi(s + 1);
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    char out[64];
    int o = 0;
    if (neg)
        out[o++] = '-';
    if (ex < -4 || ex >= 16) {
        out[o++] = dig[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++)
                out[o++] = dig[i];
        }
        o += snprintf(out + o, sizeof out - o, "e%c%02d", ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
    } else if (ex < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -ex - 1; i++)
            out[o++] = '0';
        for (int i = 0; i < nd; i++)
            out[o++] = dig[i];
    } else {
        int pt = ex + 1; /* digits before the point */
        for (int i = 0; i < pt; i++)
            out[o++] = i < nd ? dig[i] : '0';
        out[o++] = '.';
        if (nd > pt)
            for (int i = pt; i < nd; i++)
                out[o++] = dig[i];
        else
            out[o++] = '0';
    }
    ob_add(b, out, (size_t)o);
}

/* A Python int printed: the JSON token is already canonical but for "-0". */
static void py_int_tok(struct ob *b, const jv *v)
{
    if (v->len == 2 && v->s[0] == '-' && v->s[1] == '0')
        ob_adds(b, "0");
    else
        ob_add(b, v->s, v->len);
}

/* json.dumps(str, ensure_ascii=False) of decoded bytes */
static void py_str(struct ob *b, const char *s, size_t n)
{
    if (!ob_need(b, n + 2))
        return;
    b->p[b->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[8];
        switch (c) {
        case '"': ob_add(b, "\\\"", 2); break;
        case '\\': ob_add(b, "\\\\", 2); break;
        case '\n': ob_add(b, "\\n", 2); break;
        case '\r': ob_add(b, "\\r", 2); break;
        case '\t': ob_add(b, "\\t", 2); break;
        case '\b': ob_add(b, "\\b", 2); break;
        case '\f': ob_add(b, "\\f", 2); break;
        default:
            if (c < 0x20) {
                snprintf(e, sizeof e, "\\u%04x", c);
                ob_add(b, e, 6);
            } else if (ob_need(b, 1)) {
                b->p[b->len++] = (char)c;
            }
        }
    }
    ob_add(b, "\"", 1);
}

static bool key_same(const jv *a, const jv *b)
{
    return a->len == b->len && !memcmp(a->s, b->s, a->len);
}

/* json.dumps(value, indent=4) of a Python value read from JSON, at @p level */
static void py_dump(struct ob *b, const jv *v, int level)
{
    switch ((enum sa_jt)v->t) {
    case SA_J_NULL: ob_adds(b, "null"); return;
    case SA_J_TRUE: ob_adds(b, "true"); return;
    case SA_J_FALSE: ob_adds(b, "false"); return;
    case SA_J_NUM:
        if (is_int_tok(v))
            py_int_tok(b, v);
        else
            py_float(b, tok_double(v));
        return;
    case SA_J_STR: py_str(b, v->s, v->len); return;
    case SA_J_ARR:
        if (!v->n) {
            ob_adds(b, "[]");
            return;
        }
        ob_adds(b, "[");
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                ob_adds(b, ",");
            ob_nl(b, level + 1);
            py_dump(b, &v->kids[i], level + 1);
        }
        ob_nl(b, level);
        ob_adds(b, "]");
        return;
    case SA_J_OBJ: {
        if (!v->n) {
            ob_adds(b, "{}");
            return;
        }
        ob_adds(b, "{");
        bool first = true;
        for (size_t i = 0; i < v->n; i++) {
            const jv *k = &v->kids[2 * i];
            /* a duplicate key keeps its first place and its last value;
             * objects in annotations are small: quadratic is fine up to
             * a few thousand keys */
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++)
                seen = key_same(&v->kids[2 * j], k);
            if (seen)
                continue;
            const jv *val = &v->kids[2 * i + 1];
            for (size_t j = v->n; j-- > i + 1;)
                if (key_same(&v->kids[2 * j], k)) {
                    val = &v->kids[2 * j + 1];
                    break;
                }
            if (!first)
                ob_adds(b, ",");
            first = false;
            ob_nl(b, level + 1);
            py_str(b, k->s, k->len);
            ob_adds(b, ": ");
            py_dump(b, val, level + 1);
        }
        ob_nl(b, level);
        ob_adds(b, "}");
        return;
    }
    }
}

/* Python truthiness */
static bool truthy(const jv *v)
{
    if (!v)
        return false;
    switch ((enum sa_jt)v->t) {
    case SA_J_NULL:
    case SA_J_FALSE:
        return false;
    case SA_J_TRUE:
        return true;
    case SA_J_NUM:
        return tok_double(v) != 0.0 || (is_int_tok(v) && strspn(v->s, "-0") != v->len);
    case SA_J_STR:
    case SA_J_ARR:
    case SA_J_OBJ:
        return v->n || v->len;
    }
    return false;
}

/* len(): -1 if the value has none */
static long long pylen(const jv *v)
{
    if (!v)
        return -1;
    switch ((enum sa_jt)v->t) {
    case SA_J_ARR:
        return (long long)v->n;
    case SA_J_STR: {
        long long n = 0;
        for (size_t i = 0; i < v->len; i++)
            n += ((unsigned char)v->s[i] & 0xC0) != 0x80;
        return n;
    }
    case SA_J_OBJ: {
        long long n = 0;
        for (size_t i = 0; i < v->n; i++) {
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++)
                seen = key_same(&v->kids[2 * j], &v->kids[2 * i]);
            n += !seen;
        }
        return n;
    }
    case SA_J_NULL:
    case SA_J_TRUE:
    case SA_J_FALSE:
    case SA_J_NUM:
        return -1;
    }
    return -1;
}

/* `for e in v`: 0 with the array in *arr (or NULL for "nothing"), -1 if
 * Python would raise (here or when the elements are used as dicts). */
static int py_iter(struct fx *x, const jv *v, const jv **arr, const char *what)
{
    *arr = NULL;
    if (!v)
        return fail(x, "%s is missing (KeyError)", what);
    if (v->t == SA_J_ARR) {
        *arr = v;
        return 0;
    }
    if ((v->t == SA_J_OBJ || v->t == SA_J_STR) && pylen(v) == 0)
        return 0;
    if (v->t == SA_J_OBJ || v->t == SA_J_STR)
        return fail(x, "%s: its items are strings, not objects (TypeError)", what);
    return fail(x, "%s is not iterable (TypeError)", what);
}

/* ------------------------------------------------------------------ */
/* Annotations                                                         */

enum geo { G_KEY, G_NONE, G_EMPTY, G_BBOX, G_POINT, G_POLY_STEP, G_POLY_SAME };

struct interp {
    enum geo g;
    const jv *S;       /* start sample */
    const jv *spts;    /* S.points */
    double steps[4];   /* bbox x1,y1,x2,y2 or point x,y */
    double *psteps;    /* G_POLY_STEP: per value */
    const jv *attrs;   /* S.get("attributes") */
    struct interp *next; /* ownership list */
};

struct inst {
    long long id;
    const jv *type, *cname;
    char cid[48]; /* classId as printed, "" if omitted */
};

struct ann {
    long long frame;
    size_t seq;
    const struct inst *in;
    const jv *key;           /* key annotation: the sample; NULL for interpolated */
    const struct interp *ip; /* interpolated */
    long long k;
};

struct run {
    struct fx *x;
    double fps, R;
    long long fc;
    struct ann *a;
    size_t n, cap;
    struct interp *ips;
    struct inst *insts;
};

static int add_ann(struct run *r, const struct ann *a)
{
    if (a->frame < 1 || a->frame > r->fc)
        return 0;
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 64;
        struct ann *na = realloc(r->a, nc * sizeof *na);
        if (!na) {
            r->x->oom = true;
            return fail(r->x, "out of memory");
        }
        r->a = na;
        r->cap = nc;
    }
    r->a[r->n] = *a;
    r->a[r->n].seq = r->n;
    r->n++;
    return 0;
}

/* Field checks of one emitted Annotation (§12.1 point 5). Instance-level
 * fields are checked by check_inst once; here the attributes. */
static int check_attrs(struct fx *x, const struct inst *in, const jv *attrs)
{
    if (attrs && attrs->t != SA_J_NULL && attrs->t != SA_J_ARR)
        return fail(x, "§12.1.5: instance %lld: attributes must be a list or null", in->id);
    return 0;
}

/* lax int conversion of classId into in->cid */
static int class_id(struct fx *x, struct inst *in, const jv *meta)
{
    const jv *v = get(meta, "classId");
    in->cid[0] = 0;
    if (!v) {
        strcpy(in->cid, "-1");
        return 0;
    }
    switch ((enum sa_jt)v->t) {
    case SA_J_NULL:
        return 0;
    case SA_J_TRUE:
        strcpy(in->cid, "1");
        return 0;
    case SA_J_FALSE:
        strcpy(in->cid, "0");
        return 0;
    case SA_J_NUM:
        if (is_int_tok(v)) {
            if (v->len >= sizeof in->cid)
                return fail(x, "§12.1.5: instance %lld: classId too long", in->id);
            memcpy(in->cid, v->s, v->len);
            in->cid[v->len] = 0;
            if (!strcmp(in->cid, "-0"))
                strcpy(in->cid, "0");
            return 0;
        } else {
            double d = tok_double(v);
            if (!isfinite(d) || d != floor(d) || fabs(d) >= 1e40)
                return fail(x, "§12.1.5: instance %lld: classId is not an integer", in->id);
            snprintf(in->cid, sizeof in->cid, "%.0f", d);
            if (!strcmp(in->cid, "-0"))
                strcpy(in->cid, "0");
            return 0;
        }
    case SA_J_STR: {
        size_t i = 0, n = v->len, o = 0;
        const char *s = v->s;
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' ||
                         s[i] == '\f' || s[i] == '\v'))
            i++;
        while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' ||
                         s[n - 1] == '\r' || s[n - 1] == '\f' || s[n - 1] == '\v'))
            n--;
        bool neg = false;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            neg = s[i++] == '-';
        if (i >= n)
            return fail(x, "§12.1.5: instance %lld: classId is not an integer", in->id);
        for (size_t j = i; j < n; j++)
            if (s[j] < '0' || s[j] > '9')
                return fail(x, "§12.1.5: instance %lld: classId is not an integer", in->id);
        while (i + 1 < n && s[i] == '0')
            i++;
        if (n - i + 2 > sizeof in->cid)
            return fail(x, "§12.1.5: instance %lld: classId too long", in->id);
        if (neg && !(n - i == 1 && s[i] == '0'))
            in->cid[o++] = '-';
        memcpy(in->cid + o, s + i, n - i);
        in->cid[o + n - i] = 0;
        return 0;
    }
    case SA_J_ARR:
    case SA_J_OBJ:
        return fail(x, "§12.1.5: instance %lld: classId is not an integer", in->id);
    }
    return 0;
}

static int check_inst(struct fx *x, const struct inst *in, const jv *meta, bool *checked)
{
    if (*checked)
        return 0;
    *checked = true;
    if (in->type->t != SA_J_STR)
        return fail(x, "§12.1.5: instance %lld: meta.type must be a string", in->id);
    if (in->cname && in->cname->t != SA_J_NULL && in->cname->t != SA_J_STR)
        return fail(x, "§12.1.5: instance %lld: className must be a string or null", in->id);
    return class_id(x, (struct inst *)in, meta);
}

/* Interpolation between S (last of bucket a) and E (first of bucket b),
 * n = b - a > 1 (§12 step 5c). */
static int interpolate(struct run *r, const struct inst *in, const jv *S, const jv *E, long long a,
                       long long n)
{
    struct fx *x = r->x;
    (void)a;
    struct interp *ip = calloc(1, sizeof *ip);
    if (!ip) {
        x->oom = true;
        return fail(x, "out of memory");
    }
    ip->next = r->ips;
    r->ips = ip;
    ip->S = S;
    ip->attrs = get(S, "attributes");
    if (check_attrs(x, in, ip->attrs))
        return -1;
    const jv *type = in->type;
    long long id = in->id;
    const jv *sp = get(S, "points"), *ep = get(E, "points");
    ip->spts = sp;
    bool bbox = str_eq(type, "bbox"), point = str_eq(type, "point");
    bool poly = str_eq(type, "polygon") || str_eq(type, "polyline"), event = str_eq(type, "event");
    char what[96];
    snprintf(what, sizeof what, "§12 5c: instance %lld", id);
    if (bbox && truthy(sp) && truthy(ep)) {
        static const char *const c4[4] = {"x1", "y1", "x2", "y2"};
        if (sp->t != SA_J_OBJ || ep->t != SA_J_OBJ)
            return fail(x, "%s: bbox points must be objects (TypeError)", what);
        for (int i = 0; i < 4; i++) {
            struct pn s, e;
            const jv *sv = get(sp, c4[i]), *ev = get(ep, c4[i]);
            if (!sv || !ev)
                return fail(x, "%s: bbox points lack %s (KeyError)", what, c4[i]);
            if (!pnum(sv, &s) || !pnum(ev, &e))
                return fail(x, "%s: bbox %s is not a number (TypeError)", what, c4[i]);
            double d;
            if (pdiff_div(x, &e, &s, n, &d, what))
                return -1;
            ip->steps[i] = pround2(d);
            double sf;
            if (pfloat(x, &s, &sf, what))
                return -1;
        }
        ip->g = G_BBOX;
        return 0;
    }
    if (point) {
        static const char *const c2[2] = {"x", "y"};
        for (int i = 0; i < 2; i++) {
            struct pn s, e;
            const jv *sv = get(S, c2[i]), *ev = get(E, c2[i]);
            if (!sv || !ev)
                return fail(x, "%s: point lacks %s (KeyError)", what, c2[i]);
            if (!pnum(sv, &s) || !pnum(ev, &e))
                return fail(x, "%s: point %s is not a number (TypeError)", what, c2[i]);
            double d, sf;
            if (pdiff_div(x, &e, &s, n, &d, what) || pfloat(x, &s, &sf, what))
                return -1;
            ip->steps[i] = d;
        }
        ip->g = G_POINT;
        return 0;
    }
    if (event) {
        ip->g = G_NONE;
        return 0;
    }
    /* polygon, polyline, and the fall-through of every other type */
    if (!sp)
        return fail(x, "%s: points missing (KeyError)", what);
    long long ls = pylen(sp);
    if (ls < 0)
        return fail(x, "%s: points has no len() (TypeError)", what);
    bool same = false;
    if (poly) {
        if (!ep)
            return fail(x, "%s: end sample points missing (KeyError)", what);
        long long le = pylen(ep);
        if (le < 0)
            return fail(x, "%s: end sample points has no len() (TypeError)", what);
        same = ls == le;
    }
    if (ls == 0) {
        ip->g = G_EMPTY;
        return 0;
    }
    if (!poly)
        return fail(x, "%s: type %.*s cannot be interpolated over a gap (TypeError)", what,
                    (int)(type->t == SA_J_STR ? type->len : 1), type->t == SA_J_STR ? type->s : "?");
    if (sp->t != SA_J_ARR)
        return fail(x, "%s: points is not a list (TypeError/KeyError)", what);
    if (same) {
        if (ep->t != SA_J_ARR)
            return fail(x, "%s: end points is not a list (TypeError)", what);
        ip->psteps = malloc((size_t)ls * sizeof *ip->psteps);
        if (!ip->psteps) {
            x->oom = true;
            return fail(x, "out of memory");
        }
        for (long long i = 0; i < ls; i++) {
            struct pn s, e;
            if (!pnum(&sp->kids[i], &s) || !pnum(&ep->kids[i], &e))
                return fail(x, "%s: points[%lld] is not a number (TypeError)", what, i);
            double sf;
            if (pdiff_div(x, &e, &s, n, &ip->psteps[i], what) || pfloat(x, &s, &sf, what))
                return -1;
        }
        ip->g = G_POLY_SAME;
    } else {
        for (long long i = 0; i < ls; i++) {
            struct pn s;
            if (!pnum(&sp->kids[i], &s))
                return fail(x, "%s: points[%lld] is not a number (TypeError)", what, i);
        }
        ip->g = G_POLY_STEP;
    }
    return 0;
}

struct tsent {
    long long frame;
    int sub; /* 0: came from frame 0 (merged into 1, first); 1: otherwise */
    size_t idx;
    const jv *ts;
};

static int ts_cmp(const void *a, const void *b)
{
    const struct tsent *x = a, *y = b;
    if (x->frame != y->frame)
        return x->frame < y->frame ? -1 : 1;
    if (x->sub != y->sub)
        return x->sub - y->sub;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int key_ann(struct run *r, const struct inst *in, const jv *sample, long long frame)
{
    if (check_attrs(r->x, in, get(sample, "attributes")))
        return -1;
    struct ann a = {frame, 0, in, sample, NULL, 0};
    return add_ann(r, &a);
}

static int do_parameter(struct run *r, const struct inst *in, const jv *meta, const jv *param,
                        bool *checked)
{
    struct fx *x = r->x;
    if (param->t != SA_J_OBJ)
        return fail(x, "§12.1.4: instance %lld: a parameter is not an object (TypeError)", in->id);
    const jv *tsl;
    char what[80];
    snprintf(what, sizeof what, "§12.1.4: instance %lld: timestamps", in->id);
    if (py_iter(x, get(param, "timestamps"), &tsl, what))
        return -1;
    size_t nts = tsl ? tsl->n : 0;
    if (!nts)
        return 0;
    struct tsent *v = malloc(nts * sizeof *v);
    if (!v) {
        x->oom = true;
        return fail(x, "out of memory");
    }
    int rc = -1;
    for (size_t i = 0; i < nts; i++) {
        const jv *ts = &tsl->kids[i];
        if (ts->t != SA_J_OBJ) {
            fail(x, "§12.1.4: instance %lld: a timestamp entry is not an object (TypeError)", in->id);
            goto out;
        }
        struct pn t;
        const jv *tv = get(ts, "timestamp");
        if (!tv) {
            fail(x, "§12.1.4: instance %lld: timestamp missing (KeyError)", in->id);
            goto out;
        }
        if (!pnum(tv, &t)) {
            fail(x, "§12 5a: instance %lld: timestamp is not a number (TypeError)", in->id);
            goto out;
        }
        double td = 0;
        if (pfloat(x, &t, &td, "§12 5a: timestamp"))
            goto out;
        double f = ceil(td / r->R);
        if (isnan(f) || fabs(f) >= 4.6e18) {
            fail(x, "§12 5a: instance %lld: timestamp %g gives no frame number", in->id, td);
            goto out;
        }
        v[i] = (struct tsent){(long long)f, 1, i, ts};
        if (v[i].frame == 0) { /* §12 5b: frame 0 merges into frame 1, first */
            v[i].frame = 1;
            v[i].sub = 0;
        }
    }
    qsort(v, nts, sizeof *v, ts_cmp);
    if (check_inst(x, in, meta, checked))
        goto out;
    /* runs of equal frames */
    size_t nruns = 0;
    for (size_t i = 0; i < nts; i++)
        if (!i || v[i].frame != v[i - 1].frame)
            nruns++;
    if (nruns == 1) {
        /* §12 5d: a single occupied frame; its attributes key must exist */
        if (!get(v[0].ts, "attributes")) {
            fail(x, "§12 5d: instance %lld: the only key frame has no attributes (KeyError)", in->id);
            goto out;
        }
        rc = key_ann(r, in, v[0].ts, v[0].frame);
        goto out;
    }
    size_t i = 0;
    while (i < nts) {
        size_t j = i;
        while (j + 1 < nts && v[j + 1].frame == v[i].frame)
            j++;
        if (j + 1 >= nts)
            break;
        size_t k0 = j + 1; /* first of the next run */
        long long a = v[i].frame, b = v[k0].frame, n = b - a;
        if (n > 1) {
            if (interpolate(r, in, v[j].ts, v[k0].ts, a, n))
                goto out;
            long long lo = 1, hi = n - 1;
            if (a + lo < 1)
                lo = 1 - a;
            if (a + hi > r->fc)
                hi = r->fc - a;
            for (long long k = lo; k <= hi; k++) {
                struct ann an = {a + k, 0, in, NULL, r->ips, k};
                if (add_ann(r, &an))
                    goto out;
            }
        }
        /* key frames a and b; a was already written as the previous pair's b */
        if (i == 0 && key_ann(r, in, v[i].ts, a))
            goto out;
        if (key_ann(r, in, v[k0].ts, b))
            goto out;
        i = k0;
    }
    rc = 0;
out:
    free(v);
    return rc;
}

static int ann_cmp(const void *a, const void *b)
{
    const struct ann *x = a, *y = b;
    if (x->frame != y->frame)
        return x->frame < y->frame ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* A number computed by the interpolation, printed */
static void emit_ann(struct ob *b, const struct ann *a)
{
    const struct inst *in = a->in;
    char num[48];
    ob_adds(b, "{");
    ob_nl(b, 4);
    snprintf(num, sizeof num, "\"instanceId\": %lld,", in->id);
    ob_adds(b, num);
    ob_nl(b, 4);
    ob_adds(b, "\"type\": ");
    py_dump(b, in->type, 4);
    if (in->cname && in->cname->t != SA_J_NULL) {
        ob_adds(b, ",");
        ob_nl(b, 4);
        ob_adds(b, "\"className\": ");
        py_dump(b, in->cname, 4);
    }
    if (in->cid[0]) {
        ob_adds(b, ",");
        ob_nl(b, 4);
        ob_adds(b, "\"classId\": ");
        ob_adds(b, in->cid);
    }
    const jv *attrs;
    if (a->key) {
        static const char *const f3[3] = {"x", "y", "points"};
        for (int i = 0; i < 3; i++) {
            const jv *v = get(a->key, f3[i]);
            if (v && v->t != SA_J_NULL) {
                ob_adds(b, ",");
                ob_nl(b, 4);
                snprintf(num, sizeof num, "\"%s\": ", f3[i]);
                ob_adds(b, num);
                py_dump(b, v, 4);
            }
        }
        attrs = get(a->key, "attributes");
    } else {
        const struct interp *ip = a->ip;
        double k = (double)a->k;
        switch (ip->g) {
        case G_BBOX: {
            static const char *const c4[4] = {"x1", "y1", "x2", "y2"};
            ob_adds(b, ",");
            ob_nl(b, 4);
            ob_adds(b, "\"points\": {");
            for (int i = 0; i < 4; i++) {
                struct pn s;
                pnum(get(ip->spts, c4[i]), &s);
                if (i)
                    ob_adds(b, ",");
                ob_nl(b, 5);
                snprintf(num, sizeof num, "\"%s\": ", c4[i]);
                ob_adds(b, num);
                py_float(b, pround2(s.d + ip->steps[i] * k));
            }
            ob_nl(b, 4);
            ob_adds(b, "}");
            break;
        }
        case G_POINT: {
            static const char *const c2[2] = {"x", "y"};
            for (int i = 0; i < 2; i++) {
                struct pn s;
                pnum(get(ip->S, c2[i]), &s);
                ob_adds(b, ",");
                ob_nl(b, 4);
                snprintf(num, sizeof num, "\"%s\": ", c2[i]);
                ob_adds(b, num);
                py_float(b, pround2(s.d + ip->steps[i] * k));
            }
            break;
        }
        case G_EMPTY:
            ob_adds(b, ",");
            ob_nl(b, 4);
            ob_adds(b, "\"points\": []");
            break;
        case G_POLY_SAME:
        case G_POLY_STEP: {
            ob_adds(b, ",");
            ob_nl(b, 4);
            ob_adds(b, "\"points\": [");
            for (size_t i = 0; i < ip->spts->n; i++) {
                struct pn s;
                pnum(&ip->spts->kids[i], &s);
                if (i)
                    ob_adds(b, ",");
                ob_nl(b, 5);
                if (ip->g == G_POLY_SAME) {
                    py_float(b, s.d + k * ip->psteps[i]);
                } else if (s.is_int) { /* int + 0 stays that int */
                    if (s.node->t == SA_J_NUM)
                        py_int_tok(b, s.node);
                    else
                        ob_adds(b, s.i ? "1" : "0");
                } else {
                    py_float(b, s.d + 0.0);
                }
            }
            ob_nl(b, 4);
            ob_adds(b, "]");
            break;
        }
        case G_NONE:
        case G_KEY:
            break;
        }
        attrs = ip->attrs;
    }
    if (attrs && attrs->t != SA_J_NULL) {
        ob_adds(b, ",");
        ob_nl(b, 4);
        ob_adds(b, "\"attributes\": ");
        py_dump(b, attrs, 4);
    }
    ob_adds(b, ",");
    ob_nl(b, 4);
    ob_adds(b, a->key ? "\"keyframe\": true" : "\"keyframe\": false");
    ob_nl(b, 3);
    ob_adds(b, "}");
}

static int render(struct run *r, const jv *root, struct ob *out)
{
    struct fx *x = r->x;
    if (root->t != SA_J_OBJ)
        return fail(x, "§12: the document is not an object (TypeError)");
    const jv *md = get(root, "metadata");
    if (!md)
        return fail(x, "§12.1.4: metadata is missing (KeyError)");
    if (md->t != SA_J_OBJ)
        return fail(x, "§12.1.4: metadata is not an object (TypeError)");
    const jv *dur = get(md, "duration");
    if (!dur)
        return fail(x, "§12.1.4: metadata.duration is missing (KeyError)");
    double D = 0;
    if (truthy(dur)) {
        struct pn p;
        if (!pnum(dur, &p))
            return fail(x, "§12.1.4: metadata.duration is not a number (TypeError)");
        if (p.is_int && p.small && llabs(p.i) <= (1LL << 53)) {
            D = (double)p.i / 1e6;
        } else if (p.is_int) {
            D = p.d / 1e6;
            if (isinf(p.d))
                return fail(x, "§12.1.4: metadata.duration: integer too large (OverflowError)");
        } else {
            D = p.d / 1e6;
        }
    }
    if (r->fps == 0)
        return fail(x, "§12.1.8: fps is 0 (ZeroDivisionError)");
    if (isnan(r->fps))
        return fail(x, "§12.1.8: fps is not a number");
    r->R = 1e6 / r->fps;
    double fcd = ceil(D * r->fps);
    if (isnan(fcd) || isinf(fcd))
        return fail(x, "§12 step 3: frames_count is not finite (OverflowError)");
    if (fcd > (double)SA_FRAMES_MAX)
        return fail(x, "§12 step 3: %.0f frames: more than safs renders (%lld)", fcd, SA_FRAMES_MAX);
    r->fc = fcd < 1 ? 0 : (long long)fcd;

    const jv *insts;
    if (py_iter(x, get(root, "instances"), &insts, "§12 step 4: instances"))
        return -1;
    size_t ni = insts ? insts->n : 0;
    r->insts = calloc(ni ? ni : 1, sizeof *r->insts);
    if (!r->insts) {
        x->oom = true;
        return fail(x, "out of memory");
    }
    for (size_t i = 0; i < ni; i++) {
        const jv *inst = &insts->kids[i];
        struct inst *in = &r->insts[i];
        in->id = (long long)i;
        if (inst->t != SA_J_OBJ)
            return fail(x, "§12 step 4: instance %zu is not an object (TypeError)", i);
        const jv *meta = get(inst, "meta");
        if (!meta)
            return fail(x, "§12 step 4: instance %zu: meta is missing (KeyError)", i);
        if (meta->t != SA_J_OBJ)
            return fail(x, "§12 step 4: instance %zu: meta is not an object (TypeError)", i);
        in->type = get(meta, "type");
        if (!in->type)
            return fail(x, "§12 step 4: instance %zu: meta.type is missing (KeyError)", i);
        if (str_eq(in->type, "comment"))
            continue;
        in->cname = get(meta, "className");
        const jv *params = get(inst, "parameters");
        if (!params)
            continue;
        if (params->t == SA_J_NULL)
            return fail(x, "§12.1.4: instance %zu: parameters is null (TypeError)", i);
        const jv *pl;
        char what[64];
        snprintf(what, sizeof what, "§12.1.4: instance %zu: parameters", i);
        if (py_iter(x, params, &pl, what))
            return -1;
        bool checked = false;
        for (size_t p = 0; pl && p < pl->n; p++)
            if (do_parameter(r, in, meta, &pl->kids[p], &checked))
                return -1;
    }

    if (r->n)
        qsort(r->a, r->n, sizeof *r->a, ann_cmp);
    if (!r->fc) {
        ob_adds(out, "[]\n");
        return 0;
    }
    ob_adds(out, "[");
    size_t ai = 0;
    char num[64];
    for (long long f = 1; f <= r->fc; f++) {
        if (f > 1)
            ob_adds(out, ",");
        ob_nl(out, 1);
        ob_adds(out, "{");
        ob_nl(out, 2);
        snprintf(num, sizeof num, "\"frame\": %lld,", f);
        ob_adds(out, num);
        ob_nl(out, 2);
        if (ai < r->n && r->a[ai].frame == f) {
            ob_adds(out, "\"annotations\": [");
            bool first = true;
            for (; ai < r->n && r->a[ai].frame == f; ai++) {
                if (!first)
                    ob_adds(out, ",");
                first = false;
                ob_nl(out, 3);
                emit_ann(out, &r->a[ai]);
            }
            ob_nl(out, 2);
            ob_adds(out, "]");
        } else {
            ob_adds(out, "\"annotations\": []");
        }
        ob_nl(out, 1);
        ob_adds(out, "}");
        if (out->oom)
            return fail(x, "out of memory");
    }
    ob_adds(out, "\n]\n");
    return 0;
}

enum sa_err sa_frames_render(const char *doc, size_t len, double fps, char **out, size_t *outlen,
                             char *why, size_t whylen)
{
    *out = NULL;
    if (outlen)
        *outlen = 0;
    if (why && whylen)
        why[0] = 0;
    struct fx x = {why, whylen, false, false};
    struct sa_jdoc *jd = NULL;
    const jv *root = NULL;
    int pr = sa_jdoc_parse(doc, len, &jd, &root, why, whylen);
    if (pr)
        return pr == -2 ? SA_ERR_NOMEM : SA_ERR_INVAL;
    struct run r;
    memset(&r, 0, sizeof r);
    r.x = &x;
    r.fps = fps;
    struct ob b = {0};
    int rc = render(&r, root, &b);
    while (r.ips) {
        struct interp *n = r.ips->next;
        free(r.ips->psteps);
        free(r.ips);
        r.ips = n;
    }
    free(r.a);
    free(r.insts);
    sa_jdoc_free(jd);
    if (rc || b.oom) {
        free(b.p);
        return (x.oom || b.oom) ? SA_ERR_NOMEM : SA_ERR_INVAL;
    }
    b.p[b.len] = 0;
    *out = b.p;
    if (outlen)
        *outlen = b.len;
    return SA_OK;
}
