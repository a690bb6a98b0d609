/* Trusted proxies (--trusted-proxies): range parsing and which
 * X-Forwarded-For hop is the client; and the audit of writes' target and
 * field-name detail (no values). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "http/http.h"

static http_proxies *parse_ok(const char *spec) {
    http_proxies *p = NULL;
    char err[160];
    assert_int_equal(http_proxies_parse(spec, &p, err, sizeof err), 0);
    assert_non_null(p);
    return p;
}

static void test_parse(void **st) {
    http_proxies *p = parse_ok("");
    assert_int_equal(http_proxies_count(p), 0);
    http_proxies_free(p);
    p = parse_ok(" 10.0.0.0/8, 192.168.1.7 ,fd00::/8,");
    assert_int_equal(http_proxies_count(p), 3);
    assert_true(http_proxies_trusts(p, "10.200.3.4"));
    assert_false(http_proxies_trusts(p, "11.0.0.1"));
    assert_true(http_proxies_trusts(p, "192.168.1.7"));
    assert_false(http_proxies_trusts(p, "192.168.1.8"));
    assert_true(http_proxies_trusts(p, "fd12::1"));
    assert_false(http_proxies_trusts(p, "fe80::1"));
    assert_true(http_proxies_trusts(p, "::ffff:10.1.2.3")); /* mapped IPv4 matches the IPv4 rule */
    assert_false(http_proxies_trusts(p, "not an address"));
    http_proxies_free(p);
    /* host bits in the range are ignored; /0 trusts every address of a family */
    p = parse_ok("172.16.5.9/12, 0.0.0.0/0");
    assert_true(http_proxies_trusts(p, "172.31.255.255"));
    assert_true(http_proxies_trusts(p, "8.8.8.8"));
    assert_false(http_proxies_trusts(p, "::1"));
    http_proxies_free(p);
    const char *bad[] = {"10.0.0.0/33", "10.0.0/8", "fd00::/129", "10.0.0.0/", "10.0.0.0/8a", "example.com",
                         "1.2.3.4/-1", "::1/1000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[160];
        assert_int_equal(http_proxies_parse(bad[i], &p, err, sizeof err), -1);
        assert_null(p);
        assert_non_null(strstr(err, "CIDR"));
    }
}

static const char *client(const http_proxies *p, const char *peer, const char *xff) {
    static char out[64];
    return http_proxies_client(p, peer, xff, out, sizeof out);
}

static void test_hops(void **st) {
    http_proxies *none = parse_ok("");
    /* no proxy trusted: the header is never read */
    assert_string_equal(client(none, "127.0.0.1", "6.6.6.6"), "127.0.0.1");
    http_proxies_free(none);

    http_proxies *p = parse_ok("127.0.0.1, 10.0.0.0/8");
    /* untrusted peer: a spoofed header is ignored */
    assert_string_equal(client(p, "203.0.113.9", "1.2.3.4"), "203.0.113.9");
    /* trusted peer without the header */
    assert_string_equal(client(p, "127.0.0.1", NULL), "127.0.0.1");
    assert_string_equal(client(p, "127.0.0.1", ""), "127.0.0.1");
    /* the rightmost hop that is not a proxy; what the client wrote to its left is not read */
    assert_string_equal(client(p, "127.0.0.1", "1.1.1.1, 198.51.100.7"), "198.51.100.7");
    assert_string_equal(client(p, "127.0.0.1", "1.1.1.1, 198.51.100.7, 10.0.0.2,10.9.9.9"), "198.51.100.7");
    /* every hop a proxy: the leftmost */
    assert_string_equal(client(p, "127.0.0.1", "10.0.0.5, 10.0.0.2"), "10.0.0.5");
    /* garbage stops the walk at the proxy to its right */
    assert_string_equal(client(p, "127.0.0.1", "1.1.1.1, bogus, 10.0.0.2"), "10.0.0.2");
    assert_string_equal(client(p, "127.0.0.1", "bogus"), "127.0.0.1");
    assert_string_equal(client(p, "127.0.0.1", "1.1.1.1,,10.0.0.2"), "10.0.0.2");
    /* ports and brackets; IPv6 canonical form; a mapped peer */
    assert_string_equal(client(p, "127.0.0.1", "198.51.100.7:5123"), "198.51.100.7");
    assert_string_equal(client(p, "127.0.0.1", "[2001:DB8::0001]:443"), "2001:db8::1");
    assert_string_equal(client(p, "127.0.0.1", " 2001:db8::2 "), "2001:db8::2");
    assert_string_equal(client(p, "::ffff:127.0.0.1", "198.51.100.9"), "198.51.100.9");
    /* an over-long hop is not an address */
    char big[200];
    memset(big, '1', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_string_equal(client(p, "127.0.0.1", big), "127.0.0.1");
    http_proxies_free(p);
}

static void test_audit_target(void **st) {
    char out[192];
    const char *v1[] = {"5"};
    app_audit_target("/v1/leads/{id}", v1, 1, out, sizeof out);
    assert_string_equal(out, "lead:5");
    app_audit_target("/v1/leads/{id}/activities", v1, 1, out, sizeof out);
    assert_string_equal(out, "lead:5");
    const char *v2[] = {"churn model!"};
    app_audit_target("/v1/builtin-models/{name}/activate", v2, 1, out, sizeof out);
    assert_string_equal(out, "builtin-model:churn_model_");
    const char *v3[] = {"3", "9"};
    app_audit_target("/v1/activities/{a}/replies/{b}", v3, 2, out, sizeof out);
    assert_string_equal(out, "activity:3,reply:9");
    app_audit_target("/v1/leads", NULL, 0, out, sizeof out);
    assert_string_equal(out, "");
    app_audit_target("/{id}", v1, 1, out, sizeof out);
    assert_string_equal(out, "item:5");
}

static void test_audit_fields(void **st) {
    json_t *body = json_pack("{s:s, s:s, s:i, s:s, s:s}", "stage", "new", "email", "a@b.example", "12345", 1,
                             "someone@example.org", "x", "first_name", "Ann");
    json_t *d = app_audit_fields(body);
    char *s = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"fields\":[\"email\",\"first_name\",\"stage\"],\"other_fields\":2}");
    free(s);
    json_decref(d);
    json_decref(body);
    body = json_pack("[i,i,i]", 1, 2, 3);
    d = app_audit_fields(body);
    assert_int_equal(json_integer_value(json_object_get(d, "items")), 3);
    json_decref(d);
    json_decref(body);
    d = app_audit_fields(NULL);
    assert_int_equal(json_object_size(d), 0);
    json_decref(d);
    /* at most 32 names */
    body = json_object();
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof k, "f%02d", i);
        json_object_set_new(body, k, json_true());
    }
    d = app_audit_fields(body);
    assert_int_equal(json_array_size(json_object_get(d, "fields")), 32);
    assert_int_equal(json_integer_value(json_object_get(d, "other_fields")), 8);
    json_decref(d);
    json_decref(body);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_hops),
        cmocka_unit_test(test_audit_target),
        cmocka_unit_test(test_audit_fields),
    };
    return cmocka_run_group_tests_name("proxy", tests, NULL, NULL);
}
