/* Router: method + path pattern → handler. Routes are few (tens), so a
 * linear scan over pre-split patterns is faster than anything cleverer and
 * keeps registration order meaningful for /openapi.json. */
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "http.h"

#define MAX_SEGS 16

typedef struct route {
    char method[8];
    char *pattern;
    int nsegs;
    struct { char *text; size_t len; int param; } segs[MAX_SEGS];
    http_handler fn;
    void *ud;
    int flags;
    const http_route_doc *doc;
} route;

/* What a match checks first, kept apart from the (large) routes so a
 * lookup scans one small array in order: the segment count and the first
 * segment (its length and FNV-1a hash, unless it is a parameter). */
typedef struct route_key {
    uint32_t h0;
    uint16_t len0;
    uint8_t nsegs, param0;
} route_key;

struct http_router {
    route *routes;
    route_key *keys;
    int n, cap;
    http_handler fallback;
    void *fallback_ud;
    const char *fallback_label;
};

void http_router_set_fallback(http_router *r, http_handler fn, void *ud, const char *label) {
    r->fallback = fn;
    r->fallback_ud = ud;
    r->fallback_label = label;
}

int http_router_fallback(const http_router *r, http_match *m) {
    if (!r->fallback) return 0;
    memset(m, 0, sizeof *m);
    m->fn = r->fallback;
    m->ud = r->fallback_ud;
    m->pattern = r->fallback_label;
    m->flags = HTTP_ROUTE_PUBLIC;
    return 1;
}

http_router *http_router_new(void) { return eh_calloc(1, sizeof(http_router)); }

void http_router_free(http_router *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) eh_free(r->routes[i].pattern);
    eh_free(r->routes);
    eh_free(r->keys);
    eh_free(r);
}

/* Splits "/a/{b}/c" in place into segments; returns -1 if malformed. The
 * pattern copy is owned by the route and NUL-separated here. */
static uint32_t seg_hash(const char *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

static int split_pattern(route *rt) {
    char *p = rt->pattern;
    if (*p != '/') return -1;
    rt->nsegs = 0;
    if (p[1] == '\0') return 0; /* "/" has no segments */
    while (*p == '/') {
        *p++ = '\0';
        char *start = p;
        while (*p && *p != '/') p++;
        size_t len = (size_t)(p - start);
        if (len == 0 || rt->nsegs == MAX_SEGS) return -1;
        int param = start[0] == '{';
        if (param) {
            if (len < 3 || start[len - 1] != '}') return -1;
            start[len - 1] = '\0'; /* param names are used as C strings */
            start++;
            len -= 2;
        } else if (memchr(start, '{', len) || memchr(start, '}', len)) {
            return -1;
        }
        rt->segs[rt->nsegs].text = start;
        rt->segs[rt->nsegs].len = len;
        rt->segs[rt->nsegs].param = param;
        rt->nsegs++;
    }
    return *p ? -1 : 0;
}

int http_router_add(http_router *r, const char *method, const char *pattern, http_handler fn,
                    void *ud, int flags, const http_route_doc *doc) {
    if (strlen(method) >= sizeof(((route *)0)->method)) return -1;
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->routes[i].method, method) && !strcmp(r->routes[i].pattern + 0, pattern))
            return -1;
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 32;
        route *nr = eh_realloc(r->routes, (size_t)cap * sizeof *nr);
        if (!nr) return -1;
        r->routes = nr;
        route_key *nk = eh_realloc(r->keys, (size_t)cap * sizeof *nk);
        if (!nk) return -1;
        r->keys = nk;
        r->cap = cap;
    }
    route *rt = &r->routes[r->n];
    memset(rt, 0, sizeof *rt);
    strcpy(rt->method, method);
    /* Two copies in one allocation: the display pattern, then the split one. */
    size_t len = strlen(pattern);
    char *mem = eh_malloc(2 * len + 2);
    if (!mem) return -1;
    memcpy(mem, pattern, len + 1);
    memcpy(mem + len + 1, pattern, len + 1);
    rt->pattern = mem;
    char *split_copy = mem + len + 1;
    char *keep = rt->pattern;
    rt->pattern = split_copy;
    int bad = split_pattern(rt) || (rt->nsegs && rt->segs[0].len > UINT16_MAX); /* route_key.len0 */
    rt->pattern = keep;
    if (bad) {
        eh_free(mem);
        return -1;
    }
    rt->fn = fn;
    rt->ud = ud;
    rt->flags = flags;
    rt->doc = doc;
    route_key *k = &r->keys[r->n];
    k->nsegs = (uint8_t)rt->nsegs;
    k->param0 = rt->nsegs ? (uint8_t)rt->segs[0].param : 0;
    k->len0 = rt->nsegs ? (uint16_t)rt->segs[0].len : 0;
    k->h0 = rt->nsegs ? seg_hash(rt->segs[0].text, rt->segs[0].len) : 0;
    r->n++;
    return 0;
}

void http_router_each(const http_router *r, void (*fn)(const http_route_info *ri, void *ud),
                      void *ud) {
    for (int i = 0; i < r->n; i++) {
        http_route_info ri = {r->routes[i].method, r->routes[i].pattern, r->routes[i].flags,
                              r->routes[i].doc};
        fn(&ri, ud);
    }
}

static int path_matches(const route *rt, const char **segs, const size_t *lens, int n,
                        http_match *m) {
    if (rt->nsegs != n) return 0;
    int np = 0;
    for (int i = 0; i < n; i++) {
        if (rt->segs[i].param) {
            if (np == 8) return 0;
            if (m) {
                m->params[np].name = rt->segs[i].text;
                m->params[np].val = segs[i];
                m->params[np].len = lens[i];
            }
            np++;
        } else if (rt->segs[i].len != lens[i] || memcmp(rt->segs[i].text, segs[i], lens[i])) {
            return 0;
        }
    }
    if (m) m->nparams = np;
    return 1;
}

int http_router_match(const http_router *r, const char *method, const char *path, http_match *m) {
    const char *segs[MAX_SEGS + 1];
    size_t lens[MAX_SEGS + 1];
    int n = 0;
    memset(m, 0, sizeof *m);
    if (path[0] != '/') return HTTP_MATCH_NOT_FOUND;
    const char *p = path + 1;
    if (*p) {
        for (;;) {
            const char *e = strchr(p, '/');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            if (n == MAX_SEGS + 1) return HTTP_MATCH_NOT_FOUND;
            segs[n] = p;
            lens[n] = len;
            n++;
            if (len == 0) return HTTP_MATCH_NOT_FOUND; /* "//" or trailing "/" */
            if (!e) break;
            p = e + 1;
        }
    }
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    int path_found = 0;
    char allow[128] = "";
    int has_get = 0;
    uint32_t h0 = n ? seg_hash(segs[0], lens[0]) : 0;
    for (int i = 0; i < r->n; i++) {
        const route_key *k = &r->keys[i];
        if (k->nsegs != n || (n && !k->param0 && (k->len0 != lens[0] || k->h0 != h0))) continue;
        const route *rt = &r->routes[i];
        if (!path_matches(rt, segs, lens, n, NULL)) continue;
        if (!strcmp(rt->method, want)) {
            path_matches(rt, segs, lens, n, m);
            m->fn = rt->fn;
            m->ud = rt->ud;
            m->pattern = rt->pattern;
            m->flags = rt->flags;
            return HTTP_MATCH_OK;
        }
        path_found = 1;
        if (!strcmp(rt->method, "GET")) has_get = 1;
        if (!strstr(allow, rt->method) && strlen(allow) + strlen(rt->method) + 3 < sizeof allow) {
            if (*allow) strcat(allow, ", ");
            strcat(allow, rt->method);
        }
    }
    if (!path_found) return HTTP_MATCH_NOT_FOUND;
    if (has_get && strlen(allow) + 7 < sizeof allow) strcat(allow, ", HEAD");
    if (strlen(allow) + 10 < sizeof allow) strcat(allow, ", OPTIONS");
    memcpy(m->allow, allow, sizeof allow);
    return HTTP_MATCH_METHOD;
}
