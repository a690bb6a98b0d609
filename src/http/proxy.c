/* Trusted reverse proxies (--trusted-proxies): which peers may tell us the
 * client's address in X-Forwarded-For, and which hop of that header is the
 * client.
 *
 * Each proxy appends the address it received the request from, so the
 * header reads "client, proxy1, proxy2" and only its right end was written
 * by machines we trust. Walking from the right, every hop that is itself a
 * trusted proxy is skipped; the first one that is not is the client. Hops
 * to the left of it may be anything the client wrote and are never read.
 * A hop that is not an address stops the walk: the trusted proxy to its
 * right is then the best address known. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "http.h"

#define MAX_PROXIES 64

typedef struct cidr {
    int family;           /* AF_INET or AF_INET6 */
    unsigned char a[16];  /* network address */
    int bits;
} cidr;

struct http_proxies {
    int n;
    cidr c[MAX_PROXIES];
};

/* Parses an address into family and 4 or 16 bytes. IPv4-mapped IPv6
 * (::ffff:a.b.c.d) counts as IPv4, so one rule covers both spellings. */
static int addr_parse(const char *s, size_t n, int *family, unsigned char out[16]) {
    char tmp[64];
    if (n == 0 || n >= sizeof tmp) return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (inet_pton(AF_INET, tmp, out) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, tmp, out) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(out, mapped, 12)) {
            memmove(out, out + 12, 4);
            *family = AF_INET;
        } else {
            *family = AF_INET6;
        }
        return 0;
    }
    return -1;
}

static int cidr_parse(const char *s, size_t n, cidr *c) {
    const char *slash = memchr(s, '/', n);
    size_t an = slash ? (size_t)(slash - s) : n;
    if (addr_parse(s, an, &c->family, c->a)) return -1;
    int max = c->family == AF_INET ? 32 : 128;
    c->bits = max;
    if (slash) {
        size_t bn = n - an - 1;
        if (bn == 0 || bn > 3) return -1;
        int b = 0;
        for (size_t i = 0; i < bn; i++) {
            char ch = slash[1 + i];
            if (ch < '0' || ch > '9') return -1;
            b = b * 10 + (ch - '0');
        }
        if (b > max) return -1;
        c->bits = b;
    }
    /* keep only the network part, so matching is a prefix compare */
    for (int i = 0; i < 16; i++) {
        int keep = c->bits - i * 8;
        if (keep <= 0) c->a[i] = 0;
        else if (keep < 8) c->a[i] &= (unsigned char)(0xff << (8 - keep));
    }
    return 0;
}

int http_proxies_parse(const char *spec, http_proxies **out, char *err, size_t errlen) {
    *out = NULL;
    if (!spec) spec = "";
    http_proxies *p = eh_calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *s = spec;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        const char *t = s;
        while (n && (*t == ' ' || *t == '\t')) t++, n--;
        while (n && (t[n - 1] == ' ' || t[n - 1] == '\t')) n--;
        if (n) {
            if (p->n == MAX_PROXIES) {
                snprintf(err, errlen, "at most %d trusted proxy ranges", MAX_PROXIES);
                eh_free(p);
                return -1;
            }
            if (cidr_parse(t, n, &p->c[p->n])) {
                snprintf(err, errlen, "not an address or CIDR range: %.*s", (int)(n > 64 ? 64 : n), t);
                eh_free(p);
                return -1;
            }
            p->n++;
        }
        if (!comma) break;
        s = comma + 1;
    }
    *out = p;
    return 0;
}

void http_proxies_free(http_proxies *p) { eh_free(p); }

int http_proxies_count(const http_proxies *p) { return p ? p->n : 0; }

static int trusted(const http_proxies *p, int family, const unsigned char a[16]) {
    for (int i = 0; p && i < p->n; i++) {
        const cidr *c = &p->c[i];
        if (c->family != family) continue;
        int full = c->bits / 8, rest = c->bits % 8;
        if (memcmp(a, c->a, (size_t)full)) continue;
        if (rest && ((a[full] & (unsigned char)(0xff << (8 - rest))) != c->a[full])) continue;
        return 1;
    }
    return 0;
}

int http_proxies_trusts(const http_proxies *p, const char *addr) {
    int fam;
    unsigned char a[16];
    if (!addr || addr_parse(addr, strlen(addr), &fam, a)) return 0;
    return trusted(p, fam, a);
}

/* One hop of X-Forwarded-For: "1.2.3.4", "1.2.3.4:5678", "2001:db8::1",
 * "[2001:db8::1]:443". 0 with the address in canonical text, or -1. */
static int hop_parse(const char *s, size_t n, int *fam, unsigned char a[16]) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (n && *s == '[') {
        const char *close = memchr(s, ']', n);
        if (!close) return -1;
        return addr_parse(s + 1, (size_t)(close - s - 1), fam, a);
    }
    if (!addr_parse(s, n, fam, a)) return 0;
    /* IPv4 with a port: exactly one colon */
    const char *colon = memchr(s, ':', n);
    if (colon && !memchr(colon + 1, ':', n - (size_t)(colon - s) - 1)) {
        if (addr_parse(s, (size_t)(colon - s), fam, a) == 0 && *fam == AF_INET) return 0;
    }
    return -1;
}

static void addr_text(int fam, const unsigned char a[16], char *out, size_t outlen) {
    if (!inet_ntop(fam, a, out, (socklen_t)outlen) && outlen) out[0] = 0;
}

const char *http_proxies_client(const http_proxies *p, const char *peer, const char *xff, char *out, size_t outlen) {
    int fam;
    unsigned char a[16];
    if (outlen) out[0] = 0;
    if (!peer || addr_parse(peer, strlen(peer), &fam, a)) {
        snprintf(out, outlen, "%s", peer ? peer : "");
        return out;
    }
    /* the peer in canonical form (a mapped IPv6 peer reads as IPv4) */
    addr_text(fam, a, out, outlen);
    if (!xff || !trusted(p, fam, a)) return out;
    size_t end = strlen(xff);
    for (;;) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',') start--;
        int hf;
        unsigned char ha[16];
        if (start == end && start == 0) return out;              /* empty header */
        if (hop_parse(xff + start, end - start, &hf, ha)) return out; /* garbage: stop at the proxy */
        addr_text(hf, ha, out, outlen);
        if (!trusted(p, hf, ha)) return out;  /* the first untrusted hop is the client */
        if (start == 0) return out;           /* every hop is a proxy: the leftmost */
        end = start - 1;
    }
}
