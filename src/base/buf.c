#include "buf.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

void buf_init(buf *b, size_t max) {
    b->p = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

static int grow(buf *b, size_t need) {
    if (need > b->max) return BUF_TOO_BIG;
    if (need + 1 <= b->cap) return BUF_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need + 1) cap *= 2;
    if (cap > b->max + 1) cap = b->max + 1;
    char *p = eh_realloc(b->p, cap);
    if (!p) return BUF_NOMEM;
    b->p = p;
    b->cap = cap;
    return BUF_OK;
}

int buf_append(buf *b, const void *data, size_t n) {
    if (n > b->max - b->len) return BUF_TOO_BIG;
    /* room already (most appends: result cells and names, SQL text, a few
     * hundred per ingested webhook): no call */
    if (b->len + n + 1 > b->cap) {
        int rc = grow(b, b->len + n);
        if (rc) return rc;
    }
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return BUF_OK;
}

int buf_puts(buf *b, const char *s) { return buf_append(b, s, strlen(s)); }
int buf_putc(buf *b, char c) { return buf_append(b, &c, 1); }

int buf_vprintf(buf *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0) return BUF_NOMEM;
    if ((size_t)n < sizeof small) return buf_append(b, small, (size_t)n);
    if ((size_t)n > b->max - b->len) return BUF_TOO_BIG;
    int rc = grow(b, b->len + (size_t)n);
    if (rc) return rc;
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return BUF_OK;
}

int buf_printf(buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    unsigned min;
    unsigned cp;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

int buf_json_real(buf *b, double d) {
    if (!isfinite(d)) return BUF_INVALID;
    char t[40];
    int n = snprintf(t, sizeof t - 3, "%.17g", d);
    if (n < 0 || (size_t)n >= sizeof t - 3) return BUF_INVALID;
    char *e = memchr(t, 'e', (size_t)n);
    if (!e && !memchr(t, '.', (size_t)n)) {
        t[n++] = '.';
        t[n++] = '0';
    } else if (e) {
        /* "1e+20" -> "1e20", "1e-05" -> "1e-5" (jansson's jsonp_dtostr) */
        char *start = e + 1, *end = start + 1;
        if (*start == '-') start++;
        while (end < t + n && *end == '0') end++;
        if (end != start) {
            memmove(start, end, (size_t)(t + n - end));
            n -= (int)(end - start);
        }
    }
    return buf_append(b, t, (size_t)n);
}

char *buf_fmt_u64(char *o, uint64_t v) {
    char t[20], *p = t + sizeof t;
    do *--p = (char)('0' + v % 10); while ((v /= 10));
    size_t n = (size_t)(t + sizeof t - p);
    memcpy(o, p, n);
    return o + n;
}

int buf_json_int(buf *b, long long v) {
    char t[24], *p = t;
    if (v < 0) *p++ = '-';
    p = buf_fmt_u64(p, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);
    return buf_append(b, t, (size_t)(p - t));
}

int buf_json_str(buf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    int rc;
    while (i < n) {
        unsigned char c = u[i];
        const char *esc = NULL;
        char tmp[8];
        size_t l = 1;
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (c < 0x20) { snprintf(tmp, sizeof tmp, "\\u%04x", c); esc = tmp; }
        else if (c >= 0x80) {
            l = utf8_len(u + i, n - i);
            if (l == 0) { esc = "\xEF\xBF\xBD"; l = 1; }
        }
        if (esc) {
            if (run && (rc = buf_append(b, s + i - run, run))) return rc;
            run = 0;
            if ((rc = buf_puts(b, esc))) return rc;
            i += l;
        } else {
            run += l;
            i += l;
        }
    }
    if (run) return buf_append(b, s + n - run, run);
    return BUF_OK;
}

void buf_reset(buf *b) {
    b->len = 0;
    if (b->p) b->p[0] = '\0';
}

void buf_consume(buf *b, size_t n) {
    if (n >= b->len) { buf_reset(b); return; }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
    b->p[b->len] = '\0';
}

char *buf_detach(buf *b, size_t *len) {
    char *p = b->p;
    if (len) *len = b->len;
    if (!p) p = eh_strdup("");
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void buf_free(buf *b) {
    eh_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
