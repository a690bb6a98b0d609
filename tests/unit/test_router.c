/* Router: literal and parameter segments, 404 vs 405 with Allow, HEAD. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "http/http.h"

static void h1(http_req *q, void *ud) {}
static void h2(http_req *q, void *ud) {}

static http_router *mk(void) {
    http_router *r = http_router_new();
    assert_non_null(r);
    assert_int_equal(http_router_add(r, "GET", "/health", h1, NULL, 0, NULL), 0);
    assert_int_equal(http_router_add(r, "GET", "/v1/leads", h1, NULL, 0, NULL), 0);
    assert_int_equal(http_router_add(r, "POST", "/v1/leads", h2, NULL, 0, NULL), 0);
    assert_int_equal(http_router_add(r, "GET", "/v1/leads/{id}", h2, (void *)7, 0, NULL), 0);
    assert_int_equal(http_router_add(r, "PATCH", "/v1/leads/{id}", h1, NULL, 0, NULL), 0);
    assert_int_equal(http_router_add(r, "GET", "/v1/leads/{id}/activities/{aid}", h1, NULL, 0, NULL), 0);
    assert_int_equal(http_router_add(r, "GET", "/", h1, NULL, 0, NULL), 0);
    /* a parameter first: matched whatever the first segment is (the
     * router's first check skips routes by their first literal segment) */
    assert_int_equal(http_router_add(r, "GET", "/{t}/status", h2, (void *)9, 0, NULL), 0);
    return r;
}

static void test_literal(void **st) {
    http_router *r = mk();
    http_match m;
    assert_int_equal(http_router_match(r, "GET", "/health", &m), HTTP_MATCH_OK);
    assert_ptr_equal(m.fn, h1);
    assert_string_equal(m.pattern, "/health");
    assert_int_equal(http_router_match(r, "GET", "/", &m), HTTP_MATCH_OK);
    assert_string_equal(m.pattern, "/");
    assert_int_equal(http_router_match(r, "GET", "/acme/status", &m), HTTP_MATCH_OK);
    assert_ptr_equal(m.ud, (void *)9);
    assert_memory_equal(m.params[0].val, "acme", 4);
    assert_int_equal(http_router_match(r, "GET", "/v1/status", &m), HTTP_MATCH_OK);
    assert_ptr_equal(m.ud, (void *)9);
    assert_int_equal(http_router_match(r, "GET", "/healthz", &m), HTTP_MATCH_NOT_FOUND);
    assert_int_equal(http_router_match(r, "GET", "/healt", &m), HTTP_MATCH_NOT_FOUND);
    http_router_free(r);
}

static void test_params(void **st) {
    http_router *r = mk();
    http_match m;
    assert_int_equal(http_router_match(r, "GET", "/v1/leads/abc123", &m), HTTP_MATCH_OK);
    assert_ptr_equal(m.fn, h2);
    assert_ptr_equal(m.ud, (void *)7);
    assert_int_equal(m.nparams, 1);
    assert_string_equal(m.params[0].name, "id");
    assert_int_equal(m.params[0].len, 6);
    assert_memory_equal(m.params[0].val, "abc123", 6);
    assert_int_equal(http_router_match(r, "GET", "/v1/leads/7/activities/9", &m), HTTP_MATCH_OK);
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.params[1].name, "aid");
    assert_memory_equal(m.params[1].val, "9", 1);
    http_router_free(r);
}

static void test_not_found(void **st) {
    http_router *r = mk();
    http_match m;
    assert_int_equal(http_router_match(r, "GET", "/nope", &m), HTTP_MATCH_NOT_FOUND);
    assert_int_equal(http_router_match(r, "GET", "/v1/leads/", &m), HTTP_MATCH_NOT_FOUND);
    assert_int_equal(http_router_match(r, "GET", "/v1//leads", &m), HTTP_MATCH_NOT_FOUND);
    assert_int_equal(http_router_match(r, "GET", "/v1/leads/1/2", &m), HTTP_MATCH_NOT_FOUND);
    assert_int_equal(http_router_match(r, "GET", "health", &m), HTTP_MATCH_NOT_FOUND);
    assert_int_equal(http_router_match(r, "GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s", &m), HTTP_MATCH_NOT_FOUND);
    http_router_free(r);
}

static void test_method(void **st) {
    http_router *r = mk();
    http_match m;
    assert_int_equal(http_router_match(r, "DELETE", "/v1/leads/5", &m), HTTP_MATCH_METHOD);
    assert_string_equal(m.allow, "GET, PATCH, HEAD, OPTIONS");
    assert_int_equal(http_router_match(r, "PUT", "/v1/leads", &m), HTTP_MATCH_METHOD);
    assert_string_equal(m.allow, "GET, POST, HEAD, OPTIONS");
    assert_int_equal(http_router_match(r, "HEAD", "/v1/leads/5", &m), HTTP_MATCH_OK);
    assert_ptr_equal(m.fn, h2);
    http_router_free(r);
}

static void test_bad_patterns(void **st) {
    http_router *r = http_router_new();
    assert_int_equal(http_router_add(r, "GET", "nope", h1, NULL, 0, NULL), -1);
    assert_int_equal(http_router_add(r, "GET", "/a//b", h1, NULL, 0, NULL), -1);
    assert_int_equal(http_router_add(r, "GET", "/a/{", h1, NULL, 0, NULL), -1);
    assert_int_equal(http_router_add(r, "GET", "/a/{}", h1, NULL, 0, NULL), -1);
    assert_int_equal(http_router_add(r, "GET", "/a/x{y}", h1, NULL, 0, NULL), -1);
    assert_int_equal(http_router_add(r, "GET", "/a/", h1, NULL, 0, NULL), -1);
    assert_int_equal(http_router_add(r, "TOOLONGMETHOD", "/a", h1, NULL, 0, NULL), -1);
    assert_int_equal(http_router_add(r, "GET", "/a/{b}", h1, NULL, 0, NULL), 0);
    assert_int_equal(http_router_add(r, "GET", "/a/{b}", h1, NULL, 0, NULL), -1); /* duplicate */
    http_router_free(r);
}

static void count_route(const http_route_info *ri, void *ud) { (*(int *)ud)++; }

static void test_each(void **st) {
    http_router *r = mk();
    int n = 0;
    http_router_each(r, count_route, &n);
    assert_int_equal(n, 8);
    http_router_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal),   cmocka_unit_test(test_params),
        cmocka_unit_test(test_not_found), cmocka_unit_test(test_method),
        cmocka_unit_test(test_bad_patterns), cmocka_unit_test(test_each),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
