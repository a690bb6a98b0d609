/* Batch requests read straight from the bytes.
 *
 * A 10,000-row /batch-predict body is about 5 MB of JSON. Building it as a
 * jansson tree and freeing it again was 70% of the request (measured: 470M
 * + 80M of 800M instructions); here each row is encoded into its float row
 * as it is read, with nothing allocated per value.
 *
 * The grammar is full RFC 8259 (strings with every escape and UTF-8
 * checked, numbers, literals, nesting up to MAX_DEPTH for values that are
 * skipped); only the meaning is narrow: a top-level object whose "rows" is
 * an array of flat objects. Values that cannot be features (arrays,
 * objects) are reported like the jansson path reports them. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "ml.h"

#define MAX_DEPTH 2048 /* as jansson: the same bodies are JSON to both paths */
#define MAX_STR 1024 /* longer keys and values are read but cannot match */

typedef struct rd {
    const char *p, *end, *start;
    char *err;
    size_t errlen;
    int status; /* first error's HTTP status */
} rd;

static int fail(rd *r, int status, const char *what) {
    if (!r->status) {
        r->status = status;
        if (status == 400)
            snprintf(r->err, r->errlen, "invalid JSON: %s at byte %zu", what, (size_t)(r->p - r->start));
        else snprintf(r->err, r->errlen, "%s", what);
    }
    return -1;
}

static void ws(rd *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t')) r->p++;
}

static int expect(rd *r, char c) {
    ws(r);
    if (r->p >= r->end || *r->p != c) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", c);
        return fail(r, 400, what);
    }
    r->p++;
    return 0;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000)
        return o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
               o[2] = (char)(0x80 | (cp & 0x3F)), 3;
    return o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
           o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F)), 4;
}

/* Length of a valid UTF-8 sequence starting at p (p < end), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, min = 0x10000;
    else return 0;
    if ((size_t)(end - p) < n) return 0;
    unsigned cp = c & (0xFF >> (n + 1));
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

/* A string at r->p (after ws). Decoded into out[cap] when out; *len is the
 * decoded length (may exceed cap - 1: then out holds a prefix and *trunc). */
static int string(rd *r, char *out, size_t cap, size_t *len, int *trunc) {
    if (expect(r, '"')) return -1;
    size_t n = 0;
    *trunc = 0;
    for (;;) {
        /* the common case: a run of printable ASCII, copied at once */
        const char *run = r->p, *p = r->p, *end = r->end;
        /* eight bytes at a time while none is a quote, a backslash, a
         * control character or non-ASCII (haszero() over each byte lane:
         * a set high bit flags a lane that may be one; the byte loop below
         * then finds which exactly) */
        while (end - p >= 8) {
            uint64_t v;
            memcpy(&v, p, 8);
            const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
            uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
            uint64_t flag = ((q - ones) & ~q) | ((b - ones) & ~b) | (v - ones * 0x20) | v;
            if (flag & highs) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                /* the lowest flagged lane is exact (a borrow only flags lanes
                 * above a real one): go straight to that byte */
                p += __builtin_ctzll(flag & highs) >> 3;
#endif
                break;
            }
            p += 8;
        }
        while (p < end) {
            unsigned char a = (unsigned char)*p;
            if (a < 0x20 || a >= 0x80 || a == '"' || a == '\\') break;
            p++;
        }
        r->p = p;
        if (r->p > run) {
            size_t k = (size_t)(r->p - run);
            if (out && n + k < cap) memcpy(out + n, run, k);
            else if (out) {
                if (n + 1 < cap) memcpy(out + n, run, cap - 1 - n); /* the prefix that fits */
                *trunc = 1;
            } else *trunc = 1;
            n += k;
        }
        if (r->p >= r->end) return fail(r, 400, "unterminated string");
        unsigned char c = (unsigned char)*r->p;
        char tmp[4];
        size_t k;
        if (c == '"') {
            r->p++;
            break;
        }
        if (c < 0x20) return fail(r, 400, "control character in string");
        if (c == '\\') {
            if (r->end - r->p < 2) return fail(r, 400, "unterminated string");
            char e = r->p[1];
            r->p += 2;
            switch (e) {
            case '"': tmp[0] = '"', k = 1; break;
            case '\\': tmp[0] = '\\', k = 1; break;
            case '/': tmp[0] = '/', k = 1; break;
            case 'b': tmp[0] = '\b', k = 1; break;
            case 'f': tmp[0] = '\f', k = 1; break;
            case 'n': tmp[0] = '\n', k = 1; break;
            case 'r': tmp[0] = '\r', k = 1; break;
            case 't': tmp[0] = '\t', k = 1; break;
            case 'u': {
                unsigned cp, lo;
                if (r->end - r->p < 4 || hex4(r->p, &cp)) return fail(r, 400, "bad \\u escape");
                r->p += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(r, 400, "lone low surrogate");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' || hex4(r->p + 2, &lo) ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        return fail(r, 400, "lone high surrogate");
                    r->p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                if (cp == 0) return fail(r, 400, "\\u0000 in string");
                k = put_utf8(tmp, cp);
                break;
            }
            default: return fail(r, 400, "bad escape");
            }
        } else {
            k = utf8_len((const unsigned char *)r->p, (const unsigned char *)r->end);
            if (!k) return fail(r, 400, "invalid UTF-8");
            memcpy(tmp, r->p, k);
            r->p += k;
        }
        if (out && n + k < cap) memcpy(out + n, tmp, k);
        else *trunc = 1;
        n += k;
    }
    if (out) out[n < cap ? n : cap - 1] = 0;
    *len = n;
    return 0;
}

/* A number at r->p into v (INT when it has no fraction or exponent). */
static int number(rd *r, ml_value *v) {
    const char *s = r->p;
    if (r->p < r->end && *r->p == '-') r->p++;
    if (r->p >= r->end) return fail(r, 400, "bad number");
    if (*r->p == '0') r->p++;
    else if (*r->p >= '1' && *r->p <= '9')
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') r->p++;
    else return fail(r, 400, "bad number");
    int real = 0;
    if (r->p < r->end && *r->p == '.') {
        real = 1;
        r->p++;
        if (r->p >= r->end || *r->p < '0' || *r->p > '9') return fail(r, 400, "bad number");
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') r->p++;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        real = 1;
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-')) r->p++;
        if (r->p >= r->end || *r->p < '0' || *r->p > '9') return fail(r, 400, "bad number");
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') r->p++;
    }
    char buf[64];
    size_t n = (size_t)(r->p - s);
    if (n >= sizeof buf) {
        /* a long integer overflows like jansson's would; a long real is
         * still a real */
        if (!real) return fail(r, 400, "integer too big");
        char *tmp = eh_malloc(n + 1);
        if (!tmp) return fail(r, 503, "out of memory");
        memcpy(tmp, s, n);
        tmp[n] = 0;
        v->type = ML_V_REAL;
        v->d = strtod(tmp, NULL);
        eh_free(tmp);
    } else {
        memcpy(buf, s, n);
        buf[n] = 0;
        errno = 0;
        if (real) {
            v->type = ML_V_REAL;
            v->d = strtod(buf, NULL);
            if (!isfinite(v->d)) return fail(r, 400, "real number overflow");
        } else {
            v->type = ML_V_INT;
            v->i = strtoll(buf, NULL, 10);
            if (errno == ERANGE) return fail(r, 400, "integer too big");
        }
    }
    return 0;
}

static int literal(rd *r, const char *word, size_t n) {
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) return fail(r, 400, "unexpected character");
    r->p += n;
    return 0;
}

/* Skips any value (validating it). */
static int skip(rd *r, int depth) {
    ws(r);
    if (r->p >= r->end) return fail(r, 400, "unexpected end");
    if (depth > MAX_DEPTH) return fail(r, 400, "nested too deeply");
    char c = *r->p;
    size_t len;
    int trunc;
    ml_value v;
    switch (c) {
    case '"': return string(r, NULL, 0, &len, &trunc);
    case 't': return literal(r, "true", 4);
    case 'f': return literal(r, "false", 5);
    case 'n': return literal(r, "null", 4);
    case '[':
        r->p++;
        ws(r);
        if (r->p < r->end && *r->p == ']') return r->p++, 0;
        for (;;) {
            if (skip(r, depth + 1)) return -1;
            ws(r);
            if (r->p < r->end && *r->p == ',') {
                r->p++;
                continue;
            }
            return expect(r, ']');
        }
    case '{':
        r->p++;
        ws(r);
        if (r->p < r->end && *r->p == '}') return r->p++, 0;
        for (;;) {
            ws(r);
            if (string(r, NULL, 0, &len, &trunc) || expect(r, ':') || skip(r, depth + 1)) return -1;
            ws(r);
            if (r->p < r->end && *r->p == ',') {
                r->p++;
                continue;
            }
            return expect(r, '}');
        }
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return number(r, &v);
        return fail(r, 400, "unexpected character");
    }
}

/* Walks the top-level object; for each key calls on_key, which either
 * consumes the value (returns 1) or leaves it to be skipped (0). */
static int top(rd *r, int (*on_key)(rd *r, const char *key, void *ud), void *ud) {
    char key[MAX_STR];
    size_t len;
    int trunc;
    if (expect(r, '{')) return -1;
    ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
    } else {
        for (;;) {
            ws(r);
            if (string(r, key, sizeof key, &len, &trunc) || expect(r, ':')) return -1;
            ws(r);
            int rc = trunc ? 0 : on_key(r, key, ud);
            if (rc < 0) return -1;
            if (rc == 0 && skip(r, 1)) return -1;
            ws(r);
            if (r->p < r->end && *r->p == ',') {
                r->p++;
                continue;
            }
            if (expect(r, '}')) return -1;
            break;
        }
    }
    ws(r);
    if (r->p != r->end) return fail(r, 400, "text after the JSON value");
    return 0;
}

static int skip_all(rd *r, const char *key, void *ud) {
    (void)r, (void)key, (void)ud;
    return 0;
}

/* A bad row (413/422) is only worth naming when the body is JSON at all;
 * otherwise it is a 400 wherever the first bad row was. Returns 0 and
 * leaves err as it was, or -1 with err saying what is malformed. */
static int still_json(const char *json, size_t len, char *err, size_t errlen) {
    char keep[ML_ERR_LEN + 64];
    snprintf(keep, sizeof keep, "%s", err);
    rd v = {json, json + len, json, err, errlen, 0};
    if (top(&v, skip_all, NULL)) return -1;
    snprintf(err, errlen, "%s", keep);
    return 0;
}

/* ---- "model" ---- */

typedef struct model_ud {
    char *name;
    int found;
} model_ud;

static int on_model_key(rd *r, const char *key, void *ud) {
    model_ud *m = ud;
    if (strcmp(key, "model") != 0) return 0;
    if (m->found) return fail(r, 400, "duplicate key \"model\"");
    if (r->p >= r->end || *r->p != '"') return 0;
    size_t len;
    int trunc;
    char tmp[MAX_STR];
    if (string(r, tmp, sizeof tmp, &len, &trunc)) return -1;
    m->found = 1;
    if (!trunc && len <= 64) memcpy(m->name, tmp, len + 1);
    return 1;
}

int ml_predict_model(const char *json, size_t len, char name[65]) {
    rd r = {json, json + len, json, NULL, 0, 0};
    char key[8];
    size_t n;
    int trunc;
    char tmp[72];
    /* fail() writes into err: give it somewhere harmless to write */
    char scratch[8];
    r.err = scratch, r.errlen = sizeof scratch;
    if (expect(&r, '{')) return 0;
    ws(&r);
    if (string(&r, key, sizeof key, &n, &trunc) || trunc || strcmp(key, "model") != 0 || expect(&r, ':')) return 0;
    ws(&r);
    if (r.p >= r.end || *r.p != '"' || string(&r, tmp, sizeof tmp, &n, &trunc) || trunc || n > 64) return 0;
    memcpy(name, tmp, n + 1);
    return 1;
}

int ml_batch_model(const char *json, size_t len, char name[65], char *err, size_t errlen) {
    rd r = {json, json + len, json, err, errlen, 0};
    model_ud m = {name, 0};
    name[0] = 0;
    if (top(&r, on_model_key, &m)) return -1;
    if (!m.found) {
        snprintf(err, errlen, "\"model\" (string) is required; GET /models lists them");
        return -1;
    }
    return 0;
}

/* ---- "rows" ---- */

typedef struct rows_ud {
    const ml_schema *s;
    size_t max_rows;
    float *X;
    size_t n, cap;
    unsigned char *seen; /* per feature, for the current row */
    int found;
} rows_ud;

static int row(rd *r, rows_ud *u) {
    int w = ml_schema_width(u->s), nf = ml_schema_features(u->s);
    char msg[ML_ERR_LEN + 32], key[MAX_STR], sval[MAX_STR];
    size_t len;
    int trunc;
    if (u->n == u->max_rows) {
        snprintf(msg, sizeof msg, "at most %zu rows per batch", u->max_rows);
        return fail(r, 413, msg);
    }
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 256;
        if (cap > u->max_rows) cap = u->max_rows;
        float *nx = eh_realloc(u->X, cap * (size_t)w * sizeof *nx);
        if (!nx) return fail(r, 503, "out of memory");
        u->X = nx;
        u->cap = cap;
    }
    float *x = u->X + u->n * (size_t)w;
    ml_encode_begin(u->s, x);
    memset(u->seen, 0, (size_t)nf);
    int nseen = 0;
    ws(r);
    if (r->p >= r->end || *r->p != '{') {
        snprintf(msg, sizeof msg, "row %zu: \"features\" must be an object of raw field values", u->n);
        if (skip(r, 2)) return -1;
        return fail(r, 422, msg);
    }
    r->p++;
    ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
    } else {
        for (;;) {
            ws(r);
            if (string(r, key, sizeof key, &len, &trunc) || expect(r, ':')) return -1;
            int f = trunc ? -1 : ml_schema_find(u->s, key);
            if (f < 0) {
                snprintf(msg, sizeof msg, "row %zu: unknown feature \"%.64s\" (GET /models lists each model's features)",
                         u->n, key);
                return fail(r, 422, msg);
            }
            if (u->seen[f]) return fail(r, 400, "duplicate key in a row");
            ws(r);
            ml_value v = {.type = ML_V_OTHER};
            char c = r->p < r->end ? *r->p : 0;
            if (c == '"') {
                if (string(r, sval, sizeof sval, &len, &trunc)) return -1;
                if (trunc || strlen(sval) != len) sval[0] = 1, sval[1] = 0; /* cannot match: unknown */
                v.type = ML_V_STRING;
                v.s = sval;
            } else if (c == 't' || c == 'f') {
                if (literal(r, c == 't' ? "true" : "false", c == 't' ? 4 : 5)) return -1;
                v.type = ML_V_BOOL;
                v.i = c == 't';
            } else if (c == 'n') {
                if (literal(r, "null", 4)) return -1;
                v.type = ML_V_NULL;
            } else if (c == '-' || (c >= '0' && c <= '9')) {
                if (number(r, &v)) return -1;
            } else if (skip(r, 3)) {
                return -1;
            }
            char e[ML_ERR_LEN];
            if (ml_encode_value(u->s, f, &v, x, e, sizeof e)) {
                snprintf(msg, sizeof msg, "row %zu: %s", u->n, e);
                return fail(r, 422, msg);
            }
            u->seen[f] = 1;
            nseen++;
            ws(r);
            if (r->p < r->end && *r->p == ',') {
                r->p++;
                continue;
            }
            if (expect(r, '}')) return -1;
            break;
        }
    }
    if (nseen < nf)
        for (int f = 0; f < nf; f++)
            if (!u->seen[f]) {
                snprintf(msg, sizeof msg, "row %zu: feature \"%.64s\" is missing (send null if its value is unknown)",
                         u->n, ml_schema_feature(u->s, f));
                return fail(r, 422, msg);
            }
    u->n++;
    return 0;
}

static int on_rows_key(rd *r, const char *key, void *ud) {
    rows_ud *u = ud;
    if (strcmp(key, "rows") != 0) return 0;
    if (u->found) return fail(r, 400, "duplicate key \"rows\"");
    if (r->p >= r->end) return fail(r, 400, "unexpected end");
    if (*r->p != '[') return fail(r, 400, "\"rows\" must be an array of feature objects");
    u->found = 1;
    r->p++;
    ws(r);
    if (r->p < r->end && *r->p == ']') return r->p++, 1;
    for (;;) {
        if (row(r, u)) return -1;
        ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (expect(r, ']')) return -1;
        return 1;
    }
}

int ml_batch_rows(const ml_schema *s, const char *json, size_t len, size_t max_rows, float **X, size_t *nrows,
                  char *err, size_t errlen) {
    rd r = {json, json + len, json, err, errlen, 0};
    rows_ud u = {.s = s, .max_rows = max_rows};
    *X = NULL;
    *nrows = 0;
    u.seen = eh_malloc((size_t)ml_schema_features(s));
    if (!u.seen) {
        snprintf(err, errlen, "out of memory");
        return 503;
    }
    int rc = top(&r, on_rows_key, &u);
    eh_free(u.seen);
    if (rc && (r.status == 413 || r.status == 422) && still_json(json, len, err, errlen)) {
        eh_free(u.X);
        return 400;
    }
    if (rc == 0 && !u.found) {
        eh_free(u.X);
        snprintf(err, errlen, "\"rows\" must be an array of feature objects");
        return 400;
    }
    if (rc) {
        eh_free(u.X);
        return r.status ? r.status : 400;
    }
    *X = u.X;
    *nrows = u.n;
    return 0;
}

/* ---- one row: {"model", "features": {...}, "explain": bool} ---- */

typedef struct one_ud {
    rows_ud rows;
    int found, explain, model;
} one_ud;

static int on_one_key(rd *r, const char *key, void *ud) {
    one_ud *o = ud;
    /* the model's name was read by ml_predict_model or ml_batch_model; a
     * second "model" would leave it ambiguous (ml_predict_model reads only
     * the first key) */
    if (strcmp(key, "model") == 0) {
        if (o->model) return fail(r, 400, "duplicate key \"model\"");
        o->model = 1;
        return 0;
    }
    if (strcmp(key, "features") == 0) {
        if (o->found) return fail(r, 400, "duplicate key \"features\"");
        o->found = 1;
        if (row(r, &o->rows)) return -1;
        return 1;
    }
    if (strcmp(key, "explain") == 0 && r->p < r->end && (*r->p == 't' || *r->p == 'f')) {
        o->explain = *r->p == 't';
        return literal(r, o->explain ? "true" : "false", o->explain ? 4 : 5) ? -1 : 1;
    }
    return 0;
}

int ml_read_predict(const ml_schema *s, const char *json, size_t len, float *x, int *explain, char *err,
                    size_t errlen) {
    rd r = {json, json + len, json, err, errlen, 0};
    one_ud o = {.rows = {.s = s, .max_rows = 1, .X = x, .cap = 1}};
    unsigned char seen[256];
    o.rows.seen = ml_schema_features(s) <= 256 ? seen : eh_malloc((size_t)ml_schema_features(s));
    if (!o.rows.seen) {
        snprintf(err, errlen, "out of memory");
        return 503;
    }
    int rc = top(&r, on_one_key, &o);
    if (o.rows.seen != seen) eh_free(o.rows.seen);
    *explain = o.explain;
    if (rc) {
        if (r.status == 422) {
            /* the row reader says "row 0: ..."; a single row has no number */
            if (strncmp(err, "row 0: ", 7) == 0) memmove(err, err + 7, strlen(err + 7) + 1);
            if (still_json(json, len, err, errlen)) return 400;
        }
        return r.status ? r.status : 400;
    }
    if (!o.found) {
        snprintf(err, errlen, "\"features\" must be an object of raw field values");
        return 422;
    }
    return 0;
}
