/* web — the dashboard's static files (web/dist, built by `make`), served by
 * ehub itself at / and under it.
 *
 * Every file of --web-dir is read into memory once at start-up (regular
 * files only: symbolic links, devices and dot-files are skipped, so nothing
 * outside the directory can be reached; at most WEB_MAX_FILE bytes a file,
 * WEB_MAX_TOTAL in all), with its precompressed siblings NAME.gz and NAME.br
 * when the build wrote them. A request is answered from that table by exact
 * path, so a path can name nothing but a file that was there at start:
 * `..`, `//`, encoded slashes and the like simply find nothing (and are
 * refused before the lookup anyway).
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
 * /predict, ...: JSON 404 as before). Without a web directory, / answers a
 * JSON 404 that says how to build it. */
#ifndef EH_WEB_H
#define EH_WEB_H

#include <stddef.h>

#define WEB_MAX_FILE (8u << 20)
#define WEB_MAX_TOTAL (64u << 20)
#define WEB_MAX_FILES 4096

typedef struct app app;
typedef struct web_ctx web_ctx;

/* Loads cfg.web_dir (a missing directory is not an error: it is logged and
 * / explains) and installs the router's fallback. Call after every module
 * registered its routes. 0, or -1 on out of memory. */
int web_register(app *a);
void web_free(web_ctx *w);

/* For tests: the number of files served (without .gz/.br copies). */
size_t web_files(const web_ctx *w);

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
