/* base: bounded buffers, JSON string escaping, arenas, the allocation
 * failure hook, request-id validation, log lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "base/buf.h"
#include "base/ids.h"
#include "base/log.h"

static void test_buf_cap(void **st) {
    buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_puts(&b, "hello"), BUF_OK);
    assert_int_equal(buf_puts(&b, "world"), BUF_OK);
    assert_int_equal(buf_puts(&b, "!"), BUF_TOO_BIG);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.p, "helloworld");
    buf_consume(&b, 5);
    assert_string_equal(b.p, "world");
    assert_int_equal(buf_printf(&b, "%d", 12345), BUF_OK);
    assert_int_equal(buf_printf(&b, "%d", 1), BUF_TOO_BIG);
    buf_free(&b);
}

static void test_buf_printf_long(void **st) {
    buf b;
    buf_init(&b, 100000);
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(buf_printf(&b, "%s-%s", big, big), BUF_OK);
    assert_int_equal(b.len, 1999);
    size_t n;
    char *p = buf_detach(&b, &n);
    assert_int_equal(n, 1999);
    eh_free(p);
    buf_free(&b);
}

static void test_json_escape(void **st) {
    buf b;
    buf_init(&b, 1000);
    const char in[] = "a\"b\\c\nd\x01 \xc3\xa9 \xff end";
    assert_int_equal(buf_json_str(&b, in, sizeof in - 1), BUF_OK);
    assert_string_equal(b.p, "a\\\"b\\\\c\\nd\\u0001 \xc3\xa9 \xef\xbf\xbd end");
    buf_reset(&b);
    /* overlong encoding and surrogates are invalid UTF-8 */
    assert_int_equal(buf_json_str(&b, "\xc0\xaf\xed\xa0\x80", 5), BUF_OK);
    assert_string_equal(b.p, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    buf_free(&b);
}

static void test_arena(void **st) {
    arena *a = arena_new(64, 1024);
    char *s = arena_strdup(a, "hello");
    assert_string_equal(s, "hello");
    void *big = arena_alloc(a, 500);
    assert_non_null(big);
    assert_int_equal(((uintptr_t)big) % 16, 0);
    assert_null(arena_alloc(a, 1000)); /* past the cap */
    arena_reset(a);
    assert_int_equal(arena_used(a), 0);
    assert_non_null(arena_alloc(a, 32));
    arena_free(a);
}

static void test_alloc_failure(void **st) {
    eh_alloc_fail_after(0);
    assert_null(eh_malloc(10));
    buf b;
    buf_init(&b, 100);
    assert_int_equal(buf_puts(&b, "x"), BUF_NOMEM);
    assert_null(arena_new(64, 0));
    eh_alloc_fail_after(1);
    arena *a = arena_new(64, 0);
    assert_non_null(a);
    assert_null(arena_alloc(a, 8));
    eh_alloc_fail_after(-1);
    arena_free(a);
    buf_free(&b);
}

static void test_request_ids(void **st) {
    assert_true(ids_request_id_valid("abc-123_x.y:z", 13));
    assert_false(ids_request_id_valid("", 0));
    assert_false(ids_request_id_valid("a b", 3));
    assert_false(ids_request_id_valid("a\r\nb", 4));
    char big[200];
    memset(big, 'a', sizeof big);
    assert_false(ids_request_id_valid(big, 129));
    char id[33];
    assert_int_equal(ids_random_hex(id, sizeof id, 16), 0);
    assert_int_equal(strlen(id), 32);
    char id2[33];
    ids_random_hex(id2, sizeof id2, 16);
    assert_string_not_equal(id, id2);
}

static void test_log_line(void **st) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    logger *lg = log_new(fds[1], LOG_INFO);
    log_line l;
    assert_false(log_begin(lg, &l, LOG_DEBUG, "hidden"));
    assert_true(log_begin(lg, &l, LOG_INFO, "http.request"));
    log_str(&l, "path", "/a\"b");
    log_int(&l, "status", 200);
    log_bool(&l, "ok", 1);
    log_end(&l);
    char out[4096];
    ssize_t n = read(fds[0], out, sizeof out - 1);
    assert_true(n > 0);
    out[n] = 0;
    assert_non_null(strstr(out, "\"msg\":\"http.request\""));
    assert_non_null(strstr(out, "\"path\":\"/a\\\"b\""));
    assert_non_null(strstr(out, "\"status\":200"));
    assert_int_equal(out[n - 1], '\n');
    /* An over-long line is cut, still valid JSON-ish, and says so. */
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_true(log_begin(lg, &l, LOG_INFO, "big"));
    log_str(&l, "v", big);
    log_end(&l);
    n = read(fds[0], out, sizeof out - 1);
    out[n] = 0;
    assert_non_null(strstr(out, "\"truncated\":true}"));
    assert_true(n <= LOG_LINE_MAX);
    log_free(lg);
    close(fds[0]);
    close(fds[1]);
}

/* Every free-text detail is redacted by the log module itself: the message,
 * log_str values and log_msg's error; identifiers written with log_id are
 * kept as they are. */
static void test_log_redacts_pii(void **st) {
    (void)st;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    logger *lg = log_new(fds[1], LOG_INFO);
    log_line l;
    assert_true(log_begin(lg, &l, LOG_WARN, "provider refused jane.doe@example.com"));
    log_str(&l, "error", "invalid value \"(415) 555-0101\" and card 4111 1111 1111 1111, SSN 123-45-6789");
    log_strn(&l, "body", "call me at +44 20 7946 0958 or 12 Oak St apt 4 - ignored", 46);
    log_id(&l, "request_id", "4111111111111111");
    log_end(&l);
    char out[4096];
    ssize_t n = read(fds[0], out, sizeof out - 1);
    assert_true(n > 0);
    out[n] = 0;
    for (const char *leak = "jane.doe|555-0101|4111 1111|123-45-6789|7946|Oak St"; *leak;) {
        const char *bar = strchr(leak, '|');
        size_t k = bar ? (size_t)(bar - leak) : strlen(leak);
        char needle[32];
        snprintf(needle, sizeof needle, "%.*s", (int)k, leak);
        if (strstr(out, needle)) fail_msg("%s leaked: %s", needle, out);
        leak += k + (bar ? 1 : 0);
    }
    assert_non_null(strstr(out, "\"msg\":\"provider refused [EMAIL]\""));
    assert_non_null(strstr(out, "invalid value \\\"[PHONE]\\\" and card [CARD], SSN [SSN]"));
    assert_non_null(strstr(out, "\"body\":\"call me at [PHONE] or [ADDRESS]\""));
    assert_non_null(strstr(out, "\"request_id\":\"4111111111111111\""));
    /* log_msg's error text too */
    log_msg(lg, LOG_ERROR, "storage error", "duplicate key: Key (email)=(a.b@c.io) already exists");
    n = read(fds[0], out, sizeof out - 1);
    out[n] = 0;
    assert_null(strstr(out, "a.b@c.io"));
    assert_non_null(strstr(out, "Key (email)=([EMAIL]) already exists"));
    /* a value too long for the line is dropped whole, never cut inside a span */
    char big[LOG_LINE_MAX + 64];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    memcpy(big + LOG_LINE_MAX - 40, " 4111-1111-1111-1111 ", 21);
    assert_true(log_begin(lg, &l, LOG_INFO, "big"));
    log_str(&l, "v", big);
    log_end(&l);
    n = read(fds[0], out, sizeof out - 1);
    out[n] = 0;
    assert_null(strstr(out, "4111"));
    assert_non_null(strstr(out, "\"truncated\":true}"));
    log_free(lg);
    close(fds[0]);
    close(fds[1]);
}

/* buf_json_real writes a real as jansson's json_dumps does, byte for byte:
 * checked on edge values and on 200,000 doubles from random bit patterns
 * (every exponent, both signs, subnormals). */
static void check_real(double d) {
    buf b;
    buf_init(&b, 64);
    json_t *j = json_real(d);
    if (!j) { /* NaN, infinities: no JSON form in either */
        assert_int_equal(buf_json_real(&b, d), BUF_INVALID);
        assert_int_equal(b.len, 0);
        buf_free(&b);
        return;
    }
    char *want = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    assert_int_equal(buf_json_real(&b, d), BUF_OK);
    assert_string_equal(b.p, want);
    free(want);
    json_decref(j);
    buf_free(&b);
}

static void test_json_real_is_janssons(void **st) {
    const double edge[] = {0.0, -0.0, 1.0, -1.0, 0.1, 0.7, 0.98, 0.02, 1e15, 1e16, 1e17, 1e20, 1e21, 1e-4, 1e-5,
                           1.5e-7, 123456789012345678.0, 2.5, 450000.0, 0.12345, 1e308, 5e-324, 2.2250738585072014e-308,
                           NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) check_real(edge[i]);
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof d);
        check_real(d);
        check_real((double)(int64_t)(x >> 20) / 10000.0); /* the score's 4-decimal values */
    }
    /* buf_json_int: decimal as printf's %lld */
    const long long ints[] = {0, 1, -1, 9, 10, -10, 1234567890123LL, LLONG_MAX, LLONG_MIN};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        buf b;
        buf_init(&b, 64);
        char want[32];
        snprintf(want, sizeof want, "%lld", ints[i]);
        assert_int_equal(buf_json_int(&b, ints[i]), BUF_OK);
        assert_string_equal(b.p, want);
        buf_free(&b);
    }
    /* buf_fmt_u64: the same digits, written in place */
    const uint64_t us[] = {0, 7, 10, 999, 1000, 18446744073709551615ULL};
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++) {
        char got[24], want[24];
        *buf_fmt_u64(got, us[i]) = 0;
        snprintf(want, sizeof want, "%llu", (unsigned long long)us[i]);
        assert_string_equal(got, want);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_cap),     cmocka_unit_test(test_buf_printf_long),
        cmocka_unit_test(test_json_escape), cmocka_unit_test(test_arena),
        cmocka_unit_test(test_alloc_failure), cmocka_unit_test(test_request_ids),
        cmocka_unit_test(test_log_line),    cmocka_unit_test(test_log_redacts_pii),
        cmocka_unit_test(test_json_real_is_janssons),
    };
    return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
