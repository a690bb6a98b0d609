/* The dashboard file server's rules (src/web): which paths may name a
 * file, which names are content-hashed, content negotiation, ETags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),   cmocka_unit_test(test_hashed),          cmocka_unit_test(test_encoding),
        cmocka_unit_test(test_etag),    cmocka_unit_test(test_router_fallback),
    };
    return cmocka_run_group_tests_name("web", tests, NULL, NULL);
}
