/* The dashboard file server's rules (src/web): which paths may name a
 * file, which names are content-hashed, content negotiation, ETags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "http/http.h"
#include "web/web.h"

static void test_paths(void **st) {
    const char *ok[] = {"/", "/index.html", "/assets/app-4F2KQ7ZA.js", "/leads/123", "/a/b/c/", "/x~y_z-1.js"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) assert_true(web_path_ok(ok[i]));
    const char *bad[] = {"", "index.html", "//", "/..", "/../etc/passwd", "/assets/../x", "/a/./b", "/.git/config",
                         "/a//b", "/a\\b", "/a%2fb", "/a b", "/a\x01", "/\xc3\xa9", "/a?b", "/a#b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_false(web_path_ok(bad[i]));
    char long_path[1100];
    long_path[0] = '/';
    for (int i = 1; i < 1030; i++) long_path[i] = 'a';
    long_path[1030] = 0;
    assert_false(web_path_ok(long_path));
}

static void test_hashed(void **st) {
    assert_true(web_is_hashed("/assets/app-4F2KQ7ZA.js"));
    assert_true(web_is_hashed("chunk-O2XFH626.js"));
    assert_true(web_is_hashed("/assets/style-A5NXAJQC.css"));
    assert_false(web_is_hashed("/index.html"));
    assert_false(web_is_hashed("/favicon.svg"));
    assert_false(web_is_hashed("/assets/app-abc.js"));        /* too short */
    assert_false(web_is_hashed("/assets/my-component.js"));   /* lower case: a name, not a hash */
    assert_false(web_is_hashed("/assets-ABCDEFGH/app.js"));   /* only the file name counts */
}

static void test_encoding(void **st) {
    assert_int_equal(web_pick_encoding(NULL, 1, 1), 0);
    assert_int_equal(web_pick_encoding("gzip, deflate, br", 1, 1), 2);
    assert_int_equal(web_pick_encoding("gzip, deflate, br", 0, 1), 1);
    assert_int_equal(web_pick_encoding("gzip", 1, 1), 1);
    assert_int_equal(web_pick_encoding("br;q=0, gzip", 1, 1), 1);
    assert_int_equal(web_pick_encoding("br;q=0, gzip;q=0", 1, 1), 0);
    assert_int_equal(web_pick_encoding("identity", 1, 1), 0);
    assert_int_equal(web_pick_encoding("*", 1, 1), 2);
    assert_int_equal(web_pick_encoding("*;q=0", 1, 1), 0);
    assert_int_equal(web_pick_encoding("GZIP ; q=0.5", 0, 1), 1);
    assert_int_equal(web_pick_encoding("gzipx, brr", 1, 1), 0);
}

static void test_etag(void **st) {
    assert_true(web_etag_match("\"abc\"", "\"abc\""));
    assert_true(web_etag_match("W/\"abc\"", "\"abc\""));
    assert_true(web_etag_match("\"x\", \"abc\"", "\"abc\""));
    assert_true(web_etag_match("*", "\"abc\""));
    assert_false(web_etag_match("\"abcd\"", "\"abc\""));
    assert_false(web_etag_match("\"ab\"", "\"abc\""));
    assert_false(web_etag_match(NULL, "\"abc\""));
    assert_false(web_etag_match("", "\"abc\""));
}

static void h(http_req *q, void *ud) {}
static void fb(http_req *q, void *ud) {}

static void test_router_fallback(void **st) {
    http_router *r = http_router_new();
    http_match m;
    assert_int_equal(http_router_add(r, "GET", "/v1/leads", h, NULL, 0, NULL), 0);
    assert_int_equal(http_router_match(r, "GET", "/leads/1", &m), HTTP_MATCH_NOT_FOUND);
    assert_int_equal(http_router_fallback(r, &m), 0);
    int ud = 7;
    http_router_set_fallback(r, fb, &ud, "/{web}");
    assert_int_equal(http_router_fallback(r, &m), 1);
    assert_ptr_equal(m.fn, fb);
    assert_ptr_equal(m.ud, &ud);
    assert_string_equal(m.pattern, "/{web}");
    /* routes still win */
    assert_int_equal(http_router_match(r, "GET", "/v1/leads", &m), HTTP_MATCH_OK);
    assert_ptr_equal(m.fn, h);
    http_router_free(r);
}

/* A table as tools/embed_web.c writes it, with what the loader must leave
 * out: names web_path_ok refuses, a copy without its file, a second copy
 * of a kind, a file over WEB_MAX_FILE. */
static const unsigned char INDEX[] = "<!doctype html><script src=/assets/app-AB12CD34.js></script>";
static const unsigned char APP[] = "console.log('dashboard')";
static const unsigned char APP_GZ[] = "gz bytes";
static const unsigned char APP_BR[] = "br bytes";
static const unsigned char ICON[] = "<svg/>";
#define ROW(p, d) {p, d, sizeof d - 1}

static void test_load_embedded(void **st) {
    unsigned char *big = calloc(1, WEB_MAX_FILE + 1);
    assert_non_null(big);
    const web_embedded t[] = {
        ROW("/assets/app-AB12CD34.js.gz", APP_GZ), /* a copy listed before its file */
        ROW("/index.html", INDEX),
        ROW("/assets/app-AB12CD34.js", APP),
        ROW("/assets/app-AB12CD34.js.br", APP_BR),
        ROW("/favicon.svg", ICON),
        ROW("/orphan.js.gz", APP_GZ),
        ROW("/.secret", ICON),
        ROW("/../etc/passwd", ICON),
        ROW("/a//b.js", ICON),
        ROW("relative.js", ICON),
        {"/big.js", big, WEB_MAX_FILE + 1},
        {NULL, NULL, 0},
    };
    web_ctx *w = web_load("", t, sizeof t / sizeof t[0], NULL);
    assert_non_null(w);
    assert_string_equal(web_source(w), "embedded");
    assert_int_equal(web_files(w), 3);
    assert_int_equal(web_bytes(w), sizeof INDEX + sizeof APP + sizeof APP_GZ + sizeof APP_BR + sizeof ICON - 5);
    web_file_view v;
    assert_true(web_lookup(w, "/index.html", &v));
    assert_ptr_equal(v.data, (const char *)INDEX); /* served in place, not copied */
    assert_int_equal(v.len, sizeof INDEX - 1);
    assert_string_equal(v.ctype, "text/html; charset=utf-8");
    assert_false(v.hashed);
    assert_int_equal(v.gzlen, 0);
    assert_true(web_lookup(w, "/assets/app-AB12CD34.js", &v));
    assert_true(v.hashed);
    assert_int_equal(v.gzlen, sizeof APP_GZ - 1);
    assert_int_equal(v.brlen, sizeof APP_BR - 1);
    assert_string_equal(v.ctype, "text/javascript; charset=utf-8");
    assert_true(web_lookup(w, "/favicon.svg", &v));
    const char *absent[] = {"/assets/app-AB12CD34.js.gz", "/orphan.js", "/orphan.js.gz", "/.secret", "/big.js",
                            "/../etc/passwd", "/a//b.js", "relative.js"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) assert_false(web_lookup(w, absent[i], &v));
    web_free(w);
    free(big);
}

/* The same bytes from a directory and from the table give the same answers:
 * one table, one set of rules. */
static void put(const char *dir, const char *name, const unsigned char *d, size_t n) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, n, f), n);
    fclose(f);
}

static void test_embedded_matches_directory(void **st) {
    char dir[] = "/tmp/ehub-web-unit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[600];
    snprintf(sub, sizeof sub, "%s/assets", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    put(dir, "index.html", INDEX, sizeof INDEX - 1);
    put(dir, "assets/app-AB12CD34.js", APP, sizeof APP - 1);
    put(dir, "assets/app-AB12CD34.js.gz", APP_GZ, sizeof APP_GZ - 1);
    const web_embedded t[] = {ROW("/index.html", INDEX), ROW("/assets/app-AB12CD34.js", APP),
                              ROW("/assets/app-AB12CD34.js.gz", APP_GZ)};
    web_ctx *d = web_load(dir, t, 3, NULL), *e = web_load(NULL, t, 3, NULL);
    assert_non_null(d);
    assert_non_null(e);
    assert_string_equal(web_source(d), "directory");
    assert_string_equal(web_source(e), "embedded");
    assert_int_equal(web_files(d), web_files(e));
    assert_int_equal(web_bytes(d), web_bytes(e));
    const char *paths[] = {"/index.html", "/assets/app-AB12CD34.js"};
    for (int i = 0; i < 2; i++) {
        web_file_view a, b;
        assert_true(web_lookup(d, paths[i], &a));
        assert_true(web_lookup(e, paths[i], &b));
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        assert_string_equal(a.etag, b.etag);
        assert_string_equal(a.ctype, b.ctype);
        assert_int_equal(a.hashed, b.hashed);
        assert_int_equal(a.gzlen, b.gzlen);
        assert_ptr_not_equal(a.data, b.data); /* the directory's are read into memory */
    }
    web_free(d);
    web_free(e);
    char p[700];
    snprintf(p, sizeof p, "%s/assets/app-AB12CD34.js.gz", dir), unlink(p);
    snprintf(p, sizeof p, "%s/assets/app-AB12CD34.js", dir), unlink(p);
    snprintf(p, sizeof p, "%s/index.html", dir), unlink(p);
    rmdir(sub);
    rmdir(dir);
}

/* An empty table (a binary built without web/dist), a directory that is not
 * there, and out of memory at every step of a load. */
static void test_load_empty_and_oom(void **st) {
    web_ctx *w = web_load(NULL, web_dist_files, 0, NULL);
    assert_non_null(w);
    assert_int_equal(web_files(w), 0);
    assert_string_equal(web_source(w), "embedded");
    web_free(w);
    w = web_load("/nonexistent/ehub-web", web_dist_files, web_dist_count, NULL);
    assert_non_null(w);
    assert_int_equal(web_files(w), 0);
    assert_string_equal(web_source(w), "directory");
    web_free(w);
    const web_embedded t[] = {ROW("/index.html", INDEX), ROW("/assets/app-AB12CD34.js", APP),
                              ROW("/assets/app-AB12CD34.js.gz", APP_GZ)};
    int failed = 0;
    for (long n = 0; n < 10; n++) {
        eh_alloc_fail_after(n);
        w = web_load(NULL, t, 3, NULL);
        eh_alloc_fail_after(-1);
        if (!w) failed++;
        else {
            assert_int_equal(web_files(w), 2);
            web_free(w);
        }
    }
    assert_true(failed > 0);
}

/* The table this binary was built with: whatever web/dist held, under the
 * loader's rules (index.html, when the build made one, is among them). */
static void test_built_in_table(void **st) {
    web_ctx *w = web_load(NULL, web_dist_files, web_dist_count, NULL);
    assert_non_null(w);
    size_t copies = 0;
    for (unsigned long i = 0; i < web_dist_count; i++) {
        size_t n = strlen(web_dist_files[i].path);
        copies += n > 3 && (strcmp(web_dist_files[i].path + n - 3, ".gz") == 0 ||
                            strcmp(web_dist_files[i].path + n - 3, ".br") == 0);
    }
    assert_int_equal(web_files(w), web_dist_count - copies);
    web_file_view v;
    if (web_dist_count) assert_true(web_lookup(w, "/index.html", &v));
    web_free(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),   cmocka_unit_test(test_hashed),          cmocka_unit_test(test_encoding),
        cmocka_unit_test(test_etag),    cmocka_unit_test(test_router_fallback),
        cmocka_unit_test(test_load_embedded), cmocka_unit_test(test_embedded_matches_directory),
        cmocka_unit_test(test_load_empty_and_oom), cmocka_unit_test(test_built_in_table),
    };
    return cmocka_run_group_tests_name("web", tests, NULL, NULL);
}
