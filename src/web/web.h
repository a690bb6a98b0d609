/* web — the dashboard's static files (web/dist, built by `make`), served by
 * ehub itself at / and under it.
 *
 * Two sources fill one table, served by one code path: the copy of web/dist
 * built into the binary (tools/embed_web.c writes build/gen/web_dist.c), or,
 * when --web-dir is given, that directory, read once at start-up (regular
 * files only: symbolic links, devices and dot-files are skipped, so nothing
 * outside the directory can be reached). Either way at most WEB_MAX_FILE
 * bytes a file, WEB_MAX_TOTAL in all, paths as web_path_ok allows, and the
 * precompressed siblings NAME.gz and NAME.br taken when the build wrote
 * them. A request is answered from that table by exact path, so a path can
 * name nothing but a file that was there at start: `..`, `//`, encoded
 * slashes and the like simply find nothing (and are refused before the
 * lookup anyway).
 *
 * Answers: hashed asset names (`name-HASH.ext`, HASH 8+ of A-Z0-9, as
 * esbuild writes them) are `Cache-Control: public, max-age=31536000,
 * immutable`; everything else (index.html) `no-cache` with an ETag, and a
 * matching If-None-Match is a 304. The .br or .gz copy goes out with
 * Content-Encoding when Accept-Encoding admits it (Vary: Accept-Encoding).
 * Every answer carries the dashboard's security headers (CSP with
 * script-src 'self' and connect-src 'self' ws: wss:, frame-ancestors
 * 'none', nosniff, no-referrer).
 *
 * Client-side routes (/leads/123) get index.html when the request is a
 * browser navigation (GET or HEAD, Accept names text/html, the last segment
 * has no dot); never below the API's own first segments (/v1, /ws, /health,
 * /predict, ...: JSON 404 as before). With nothing to serve (a binary built
 * without web/dist, or a --web-dir that is not a directory), / answers a
 * JSON 404 that says why. */
#ifndef EH_WEB_H
#define EH_WEB_H

#include <stddef.h>

#define WEB_MAX_FILE (8u << 20)
#define WEB_MAX_TOTAL (64u << 20)
#define WEB_MAX_FILES 4096

typedef struct app app;
typedef struct logger logger;
typedef struct web_ctx web_ctx;

/* One file as the binary carries it: "/assets/app-X.js", its bytes. The
 * .gz/.br copies are entries of their own ("/assets/app-X.js.gz"), as they
 * are files of their own in the directory. */
typedef struct web_embedded {
    const char *path;
    const unsigned char *data;
    unsigned long len;
} web_embedded;

/* The copy of web/dist built into the binary (build/gen/web_dist.c):
 * web_dist_count rows, 0 when it was built without one. */
extern const web_embedded web_dist_files[];
extern const unsigned long web_dist_count;

/* Loads the dashboard from cfg.web_dir when it is set, from web_dist_files
 * otherwise, and installs the router's fallback. A missing directory or an
 * empty table is not an error: it is logged, and / explains. Call after
 * every module registered its routes. 0, or -1 on out of memory. */
int web_register(app *a);
void web_free(web_ctx *w);

/* The loader web_register uses: dir when dir is non-empty (a directory that
 * cannot be opened gives an empty table), else the n rows of files, which
 * must outlive the result (their bytes are served in place, not copied).
 * log may be NULL. The caller owns the result (web_free); NULL on out of
 * memory. */
web_ctx *web_load(const char *dir, const web_embedded *files, size_t n, const logger *log);

/* What was loaded: the number of files served (without .gz/.br copies), the
 * bytes held (copies included), and "embedded" or "directory". */
size_t web_files(const web_ctx *w);
size_t web_bytes(const web_ctx *w);
const char *web_source(const web_ctx *w);

/* For tests: how path ("/index.html") is served; 0 if it is not, else 1 and
 * *v filled (pointers valid while w lives). */
typedef struct web_file_view {
    const char *data;
    size_t len, gzlen, brlen; /* 0: no such copy */
    const char *ctype;
    const char *etag; /* 16 hex digits */
    int hashed;
} web_file_view;
int web_lookup(const web_ctx *w, const char *path, web_file_view *v);

/* Path rules, exposed for the unit tests: 1 if path ("/a/b.js") is one a
 * dashboard file may have (segments of [A-Za-z0-9._~-], none empty or
 * starting with '.', at most 1024 bytes). */
int web_path_ok(const char *path);
/* 1 if a file name looks like a content-hashed asset (app-4F2KQ7ZA.js). */
int web_is_hashed(const char *name);
/* Which precompressed copy an Accept-Encoding header admits: 2 br, 1 gzip,
 * 0 neither (has_br/has_gz: which copies exist). */
int web_pick_encoding(const char *accept_encoding, int has_br, int has_gz);
/* 1 if an If-None-Match header value matches etag ("\"abc\""), W/ and *
 * included. */
int web_etag_match(const char *if_none_match, const char *etag);

#endif
