/* The dashboard's static files: loaded once at start, answered from memory
 * (see web.h for the rules). */
#include "web.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/app.h"
#include "base/alloc.h"

#define MAX_DEPTH 8
#define MAX_PREFIXES 64

/* What every dashboard answer carries. The API's own routes keep theirs:
 * these are for the HTML and its assets. */
static const char csp[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

typedef struct web_file {
    char *path;   /* "/assets/app-4F2KQ7ZA.js" */
    const char *data;
    size_t len;
    const char *gz, *br; /* precompressed copies, or NULL */
    size_t gzlen, brlen;
    const char *ctype;
    int hashed;
    char etag[20]; /* 16 hex digits of FNV-1a 64 over the content */
} web_file;

struct web_ctx {
    app *a;
    const logger *log;
    web_file *files;
    size_t n, cap;
    size_t total;
    int loaded;            /* the directory was there, or the binary carries a copy */
    int embedded;          /* the bytes are the binary's own: served in place, never freed */
    char *prefixes[MAX_PREFIXES]; /* first path segments of the API's routes */
    int nprefixes;
};

size_t web_files(const web_ctx *w) { return w ? w->n : 0; }
size_t web_bytes(const web_ctx *w) { return w ? w->total : 0; }
const char *web_source(const web_ctx *w) { return w && !w->embedded ? "directory" : "embedded"; }

/* ---- rules ---- */

int web_path_ok(const char *path) {
    size_t len = strlen(path);
    if (len == 0 || len > 1024 || path[0] != '/') return 0;
    if (len == 1) return 1;
    const char *p = path + 1;
    for (;;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || p[0] == '.') return 0; /* "//", "/.x", "/..", "/." */
        for (size_t i = 0; i < n; i++) {
            char c = p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-' || c == '~'))
                return 0;
        }
        if (!p[n]) return 1;
        p += n + 1;
        if (!*p) return 1; /* a trailing slash: a client route, never a file */
    }
}

int web_is_hashed(const char *name) {
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strchr(base, '.');
    if (!dot) return 0;
    const char *dash = NULL;
    for (const char *p = base; p < dot; p++)
        if (*p == '-') dash = p;
    if (!dash || dot - dash - 1 < 8) return 0;
    for (const char *p = dash + 1; p < dot; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) return 0;
    return 1;
}

/* q-value of one coding in an Accept-Encoding list: -1 if not named. */
static double coding_q(const char *h, const char *coding) {
    double star = -1, found = -1;
    const char *p = h;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        size_t n = strcspn(p, ";, \t");
        double qv = 1.0;
        const char *e = p + n;
        while (*e == ' ' || *e == '\t') e++;
        while (*e == ';') { /* parameters: only q counts */
            e++;
            while (*e == ' ' || *e == '\t') e++;
            if ((e[0] == 'q' || e[0] == 'Q') && e[1] == '=') qv = strtod(e + 2, NULL);
            e += strcspn(e, ";,");
        }
        if (n == strlen(coding) && strncasecmp(p, coding, n) == 0) found = qv;
        else if (n == 1 && *p == '*') star = qv;
        p = e;
        p += strcspn(p, ",");
    }
    return found >= 0 ? found : star;
}

int web_pick_encoding(const char *ae, int has_br, int has_gz) {
    if (!ae) return 0;
    if (has_br && coding_q(ae, "br") > 0) return 2;
    if (has_gz && coding_q(ae, "gzip") > 0) return 1;
    return 0;
}

int web_etag_match(const char *inm, const char *etag) {
    if (!inm) return 0;
    size_t el = strlen(etag);
    const char *p = inm;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        if (*p == '*') return 1;
        if (p[0] == 'W' && p[1] == '/') p += 2;
        size_t n = strcspn(p, ", \t");
        if (n == el && memcmp(p, etag, el) == 0) return 1;
        p += n;
    }
    return 0;
}

static const char *content_type(const char *name) {
    static const struct { const char *ext, *type; } types[] = {
        {".html", "text/html; charset=utf-8"},   {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},           {".map", "application/json"},
        {".svg", "image/svg+xml"},               {".png", "image/png"},
        {".ico", "image/x-icon"},                {".webp", "image/webp"},
        {".woff2", "font/woff2"},                {".txt", "text/plain; charset=utf-8"},
        {".webmanifest", "application/manifest+json"},
    };
    const char *dot = strrchr(name, '.');
    if (dot)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

static void fnv_hex(const char *d, size_t n, char out[20]) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)d[i];
        h *= 1099511628211ull;
    }
    snprintf(out, 20, "%016llx", (unsigned long long)h);
}

/* ---- loading ---- */

static void warn(web_ctx *w, const char *msg, const char *path) {
    log_line l;
    if (log_begin(w->log, &l, LOG_WARN, msg)) {
        log_str(&l, "path", path);
        log_end(&l);
    }
}

/* Reads a regular file (never through a symbolic link) of at most
 * WEB_MAX_FILE bytes. */
static char *read_file(web_ctx *w, int dirfd, const char *name, const char *rel, size_t *len) {
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) goto out;
    if ((size_t)st.st_size > WEB_MAX_FILE || w->total + (size_t)st.st_size > WEB_MAX_TOTAL) {
        warn(w, "web: file too large, not served", rel);
        goto out;
    }
    buf = eh_malloc((size_t)st.st_size + 1);
    if (!buf) goto out;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got != (size_t)st.st_size) {
        eh_free(buf);
        buf = NULL;
        goto out;
    }
    buf[got] = 0;
    *len = got;
    w->total += got;
out:
    close(fd);
    return buf;
}

static int cmp_file(const void *x, const void *y) {
    return strcmp(((const web_file *)x)->path, ((const web_file *)y)->path);
}

static web_file *find(web_ctx *w, const char *path) {
    web_file key = {.path = (char *)path};
    return w->n ? bsearch(&key, w->files, w->n, sizeof *w->files, cmp_file) : NULL;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a > b && strcmp(s + a - b, suf) == 0;
}

/* Both sources go through these two: pass 0 takes a file (data, owned by
 * the table unless w->embedded), pass 1 a .gz/.br copy of a file pass 0
 * took. A file refused is freed here. -1 only on out of memory. */
static int add_file(web_ctx *w, const char *path, const char *data, size_t len) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        web_file *nf = eh_realloc(w->files, cap * sizeof *nf);
        if (!nf) goto oom;
        w->files = nf;
        w->cap = cap;
    }
    web_file *f = &w->files[w->n];
    memset(f, 0, sizeof *f);
    if (!(f->path = eh_strdup(path))) goto oom;
    f->data = data;
    f->len = len;
    f->ctype = content_type(path);
    f->hashed = web_is_hashed(path);
    fnv_hex(f->data, f->len, f->etag);
    w->n++;
    return 0;
oom:
    if (!w->embedded) eh_free((char *)data);
    return -1;
}

/* The file a copy ("/a.js.gz") belongs to, if pass 0 took it and it has no
 * such copy yet; NULL otherwise (the copy is then not read at all). */
static web_file *copy_of(web_ctx *w, const char *path) {
    char base[1100];
    size_t n = strlen(path) - 3;
    if (n >= sizeof base) return NULL;
    memcpy(base, path, n);
    base[n] = 0;
    web_file *f = find(w, base);
    if (!f || (ends_with(path, ".gz") ? f->gz : f->br)) return NULL;
    return f;
}

static void add_copy(web_ctx *w, const char *path, const char *data, size_t len) {
    web_file *f = copy_of(w, path);
    if (!f) {
        if (!w->embedded) eh_free((char *)data);
        return;
    }
    if (ends_with(path, ".gz")) f->gz = data, f->gzlen = len;
    else f->br = data, f->brlen = len;
}

/* Walks dirfd; pass 0 takes the files, pass 1 the .gz/.br copies of files
 * taken. Returns -1 only on out of memory. */
static int walk(web_ctx *w, int dirfd, const char *rel, int depth, int pass) {
    if (depth > MAX_DEPTH) return 0;
    int fd = dup(dirfd);
    if (fd < 0) return 0;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return 0;
    }
    rewinddir(d); /* the dup shares its offset with dirfd, read by the pass before */
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        const char *name = e->d_name;
        if (name[0] == '.') continue; /* ., .., and hidden files */
        char path[1100];
        int pn = snprintf(path, sizeof path, "%s/%s", rel, name);
        if (pn < 0 || (size_t)pn >= sizeof path || !web_path_ok(path)) continue;
        struct stat st;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW)) continue;
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) continue;
            rc = walk(w, sub, path, depth + 1, pass);
            close(sub);
            continue;
        }
        if (!S_ISREG(st.st_mode)) continue; /* symbolic links, devices, sockets */
        int copy = ends_with(path, ".gz") || ends_with(path, ".br");
        if (pass == 0) {
            if (copy) continue;
            if (w->n == WEB_MAX_FILES) {
                warn(w, "web: too many files, the rest are not served", path);
                break;
            }
            size_t len = 0;
            char *data = read_file(w, dirfd, name, path, &len);
            if (data) rc = add_file(w, path, data, len);
        } else if (copy) {
            if (!copy_of(w, path)) continue;
            size_t len = 0;
            char *data = read_file(w, dirfd, name, path, &len);
            if (data) add_copy(w, path, data, len);
        }
    }
    closedir(d);
    return rc;
}

static void add_prefix(const http_route_info *ri, void *ud) {
    web_ctx *w = ud;
    const char *p = ri->pattern + 1;
    size_t n = strcspn(p, "/");
    if (n == 0 || w->nprefixes == MAX_PREFIXES) return;
    for (int i = 0; i < w->nprefixes; i++)
        if (strlen(w->prefixes[i]) == n && strncmp(w->prefixes[i], p, n) == 0) return;
    char *s = eh_malloc(n + 1);
    if (!s) return;
    memcpy(s, p, n);
    s[n] = 0;
    w->prefixes[w->nprefixes++] = s;
}

/* 1 if path lies under one of the API's first segments (/v1/..., /health). */
static int api_path(const web_ctx *w, const char *path) {
    const char *p = path + (path[0] == '/');
    size_t n = strcspn(p, "/");
    if (n == 0) return 0;
    static const char *const always[] = {"v1", "ws", "debug"};
    for (size_t i = 0; i < 3; i++)
        if (strlen(always[i]) == n && strncmp(always[i], p, n) == 0) return 1;
    for (int i = 0; i < w->nprefixes; i++)
        if (strlen(w->prefixes[i]) == n && strncmp(w->prefixes[i], p, n) == 0) return 1;
    return 0;
}

/* ---- serving ---- */

static void security_headers(http_req *q) {
    http_res_header(q, "Content-Security-Policy", csp);
    http_res_header(q, "X-Content-Type-Options", "nosniff");
    http_res_header(q, "X-Frame-Options", "DENY");
    http_res_header(q, "Referrer-Policy", "no-referrer");
    http_res_header(q, "Cross-Origin-Opener-Policy", "same-origin");
}

static void serve(http_req *q, const web_file *f) {
    int enc = web_pick_encoding(http_req_header(q, "Accept-Encoding"), f->br != NULL, f->gz != NULL);
    char etag[32];
    snprintf(etag, sizeof etag, "\"%s%s\"", f->etag, enc == 2 ? "-br" : enc == 1 ? "-gz" : "");
    security_headers(q);
    http_res_header(q, "Cache-Control", f->hashed ? "public, max-age=31536000, immutable" : "no-cache");
    http_res_header(q, "ETag", etag);
    if (f->br || f->gz) http_res_header(q, "Vary", "Accept-Encoding");
    if (web_etag_match(http_req_header(q, "If-None-Match"), etag)) {
        http_reply(q, 304, NULL, NULL, 0);
        return;
    }
    if (enc) http_res_header(q, "Content-Encoding", enc == 2 ? "br" : "gzip");
    const char *body = enc == 2 ? f->br : enc == 1 ? f->gz : f->data;
    size_t len = enc == 2 ? f->brlen : enc == 1 ? f->gzlen : f->len;
    http_reply(q, 200, f->ctype, body, len);
}

static int navigation(http_req *q, const char *path) {
    const char *accept = http_req_header(q, "Accept");
    if (!accept || !strstr(accept, "text/html")) return 0;
    const char *last = strrchr(path, '/');
    return !strchr(last ? last : path, '.');
}

static void h_web(http_req *q, void *ud) {
    web_ctx *w = ud;
    const char *method = http_req_method(q), *path = http_req_path(q);
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (api_path(w, path) || !web_path_ok(path)) {
        http_reply_error(q, 404, "not_found", "no such route");
        return;
    }
    web_file *f = strcmp(path, "/") == 0 ? find(w, "/index.html") : find(w, path);
    if (!f && get && navigation(q, path)) f = find(w, "/index.html");
    if (!f) {
        if (!w->loaded && (strcmp(path, "/") == 0 || navigation(q, path)))
            http_reply_error(q, 404, "not_found",
                             w->embedded ? "the dashboard is not built into this binary: build it with `make` "
                                           "(which builds web/dist first), or set --web-dir"
                                         : "the dashboard is not built: --web-dir is not a directory (run `make`, "
                                           "or fix --web-dir)");
        else
            http_reply_error(q, 404, "not_found", "no such route");
        return;
    }
    if (!get) {
        if (strcmp(method, "OPTIONS") == 0) {
            http_res_header(q, "Allow", "GET, HEAD, OPTIONS");
            http_reply(q, 204, NULL, NULL, 0);
            return;
        }
        http_res_header(q, "Allow", "GET, HEAD, OPTIONS");
        http_reply_error(q, 405, "method_not_allowed", "method not allowed on this route");
        return;
    }
    serve(q, f);
}

/* The embedded table, under the same rules as a directory: paths as
 * web_path_ok allows (the generator took whatever names it found), the
 * size limits, the files before their copies. */
static int load_embedded(web_ctx *w, const web_embedded *t, size_t n) {
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            const char *path = t[i].path;
            if (!path || !web_path_ok(path) || strlen(path) < 2) continue;
            int copy = ends_with(path, ".gz") || ends_with(path, ".br");
            if (copy != pass || (pass && !copy_of(w, path))) continue;
            if (!pass && w->n == WEB_MAX_FILES) {
                warn(w, "web: too many files, the rest are not served", path);
                break;
            }
            if (t[i].len > WEB_MAX_FILE || w->total + t[i].len > WEB_MAX_TOTAL) {
                warn(w, "web: file too large, not served", path);
                continue;
            }
            w->total += t[i].len;
            if (!pass) {
                if (add_file(w, path, (const char *)t[i].data, t[i].len)) return -1;
            } else {
                add_copy(w, path, (const char *)t[i].data, t[i].len);
            }
        }
        if (!pass && w->n) qsort(w->files, w->n, sizeof *w->files, cmp_file);
    }
    return 0;
}

web_ctx *web_load(const char *dir, const web_embedded *files, size_t n, const logger *log) {
    web_ctx *w = eh_calloc(1, sizeof *w);
    if (!w) return NULL;
    w->log = log;
    int rc = 0;
    if (dir && dir[0]) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            w->loaded = 1;
            rc = walk(w, fd, "", 0, 0);
            if (!rc && w->n) qsort(w->files, w->n, sizeof *w->files, cmp_file);
            if (!rc) rc = walk(w, fd, "", 0, 1);
            close(fd);
        }
    } else {
        w->embedded = 1;
        w->loaded = n > 0;
        rc = load_embedded(w, files, n);
    }
    if (rc) {
        web_free(w);
        return NULL;
    }
    return w;
}

int web_lookup(const web_ctx *w, const char *path, web_file_view *v) {
    const web_file *f = find((web_ctx *)w, path);
    if (!f) return 0;
    *v = (web_file_view){f->data, f->len, f->gz ? f->gzlen : 0, f->br ? f->brlen : 0, f->ctype, f->etag, f->hashed};
    return 1;
}

int web_register(app *a) {
    const char *dir = a->cfg.web_dir;
    web_ctx *w = web_load(dir, web_dist_files, web_dist_count, a->log);
    if (!w) return -1;
    w->a = a;
    a->web = w;
    http_router_each(a->router, add_prefix, w);
    int index = find(w, "/index.html") != NULL;
    log_line l;
    if (log_begin(a->log, &l, index || !w->loaded ? LOG_INFO : LOG_WARN,
                  index ? "dashboard files loaded"
                  : !w->loaded ? (w->embedded ? "no dashboard: this binary was built without web/dist"
                                              : "no dashboard: web directory absent")
                  : w->embedded ? "the embedded dashboard has no index.html"
                  : "web directory has no index.html")) {
        log_str(&l, "source", web_source(w));
        if (!w->embedded) log_str(&l, "dir", dir);
        log_int(&l, "files", (int64_t)w->n);
        log_int(&l, "bytes", (int64_t)w->total);
        log_end(&l);
    }
    /* The source as a labelled gauge: which one a running server serves is
     * what an operator asks after a deploy. */
    const char *src[] = {web_source(w)};
    metric_set(metrics_gauge(a->m, "ehub_dashboard_files",
                             "dashboard files served (without .gz/.br copies), by source", "source"),
               src, (double)w->n);
    metric_set(metrics_gauge(a->m, "ehub_dashboard_bytes",
                             "dashboard bytes held, .gz/.br copies included, by source", "source"),
               src, (double)w->total);
    http_router_set_fallback(a->router, h_web, w, "/{web}");
    return 0;
}

void web_free(web_ctx *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        eh_free(w->files[i].path);
        if (w->embedded) continue;
        eh_free((char *)w->files[i].data);
        eh_free((char *)w->files[i].gz);
        eh_free((char *)w->files[i].br);
    }
    eh_free(w->files);
    for (int i = 0; i < w->nprefixes; i++) eh_free(w->prefixes[i]);
    eh_free(w);
}
