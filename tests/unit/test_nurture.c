/* nurture: template rendering (defaults, escaping, unknown variables),
 * SMS encoding and segments, opt-out keywords, quiet hours across DST. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

#include "nurture/nurture.h"
#include "nurture/nurture_int.h"

static void test_render(void **state) {
    json_t *v = json_pack("{s:s, s:s, s:{s:s}, s:{s:f}}", "first_name", "Ana <3", "last_name", "", "agent", "name",
                          "Bo & Co", "listing", "price", 450000.0);
    buf b;
    char err[256];
    buf_init(&b, 10000);
    assert_int_equal(nurture_render("Hi {{ first_name }}, {{last_name|friend}} {{agent.name}} ${{listing.price}}", v,
                                    0, &b, err, sizeof err),
                     0);
    assert_string_equal(b.p, "Hi Ana <3, friend Bo & Co $450000");
    buf_reset(&b);
    assert_int_equal(nurture_render("<p>{{first_name}} {{agent.name}}</p>", v, 1, &b, err, sizeof err), 0);
    assert_string_equal(b.p, "<p>Ana &lt;3 Bo &amp; Co</p>");
    buf_reset(&b);
    assert_int_equal(nurture_render("{{nope}}", v, 0, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "nope"));
    assert_int_equal(nurture_render("{{first_name", v, 0, &b, err, sizeof err), -1);
    assert_int_equal(nurture_check_vars("ok {{email}} {{tenant.name|us}}", err, sizeof err), 0);
    assert_int_equal(nurture_check_vars("{{agent.ssn}}", err, sizeof err), -1);
    buf_free(&b);
    json_decref(v);
}

static void test_segments(void **state) {
    nurture_sms_info s;
    char t[400];
    nurture_sms_segments("", &s);
    assert_int_equal(s.segments, 0);
    memset(t, 'a', 160), t[160] = 0;
    nurture_sms_segments(t, &s);
    assert_true(s.gsm7 && s.units == 160 && s.segments == 1);
    t[160] = 'a', t[161] = 0;
    nurture_sms_segments(t, &s);
    assert_true(s.gsm7 && s.units == 161 && s.segments == 2);
    nurture_sms_segments("price {80}€", &s); /* braces and euro take two septets each */
    assert_true(s.gsm7 && s.units == 14 && s.segments == 1);
    nurture_sms_segments("Olá, São Paulo", &s); /* á is GSM-7? no: UCS-2 */
    assert_false(s.gsm7);
    assert_int_equal(s.units, 14);
    nurture_sms_segments("é à ñ Ü", &s); /* all in the basic table */
    assert_true(s.gsm7);
    nurture_sms_segments("🏡", &s);
    assert_true(!s.gsm7 && s.units == 2 && s.segments == 1);
    memset(t, 'a', 67), strcpy(t + 67, "🏡"); /* 69 units */
    nurture_sms_segments(t, &s);
    assert_int_equal(s.segments, 1);
    memset(t, 'a', 70), strcpy(t + 70, "🏡"); /* 72 units: two parts of 67 */
    nurture_sms_segments(t, &s);
    assert_int_equal(s.segments, 2);
}

static void test_keywords(void **state) {
    assert_int_equal(nurture_keyword(" Stop "), 1);
    assert_int_equal(nurture_keyword("UNSUBSCRIBE."), 1);
    assert_int_equal(nurture_keyword("stopall"), 1);
    assert_int_equal(nurture_keyword("start"), 2);
    assert_int_equal(nurture_keyword("please stop texting"), 0);
    assert_int_equal(nurture_keyword(""), 0);
    assert_true(nurture_has_opt_out("Reply STOP to opt out"));
    assert_false(nurture_has_opt_out("Reply STOPPED"));
    assert_false(nurture_has_opt_out("no way out"));
}

static int64_t utc_ms(int y, int mo, int d, int h, int mi) {
    struct tm t = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&t) * 1000;
}

static void test_quiet_hours(void **state) {
    /* 21:00-08:00 in Los Angeles. July (PDT, UTC-7): 03:00 UTC is 20:00
     * local, awake; 05:00 UTC is 22:00 local, quiet until 08:00 local =
     * 15:00 UTC. */
    assert_int_equal(nurture_quiet_until("America/Los_Angeles", 1260, 480, utc_ms(2026, 7, 10, 3, 0)), 0);
    assert_int_equal(nurture_quiet_until("America/Los_Angeles", 1260, 480, utc_ms(2026, 7, 10, 5, 0)),
                     utc_ms(2026, 7, 10, 15, 0));
    /* January (PST, UTC-8): 15:30 UTC is 07:30 local, quiet until 16:00 UTC */
    assert_int_equal(nurture_quiet_until("America/Los_Angeles", 1260, 480, utc_ms(2026, 1, 10, 15, 30)),
                     utc_ms(2026, 1, 10, 16, 0));
    /* Phoenix keeps UTC-7 all year */
    assert_int_equal(nurture_quiet_until("America/Phoenix", 1260, 480, utc_ms(2026, 1, 10, 14, 0)),
                     utc_ms(2026, 1, 10, 15, 0));
    /* London in summer is UTC+1: 22:30 UTC is 23:30 local, quiet until 07:00 UTC */
    assert_int_equal(nurture_quiet_until("Europe/London", 1260, 480, utc_ms(2026, 7, 10, 22, 30)),
                     utc_ms(2026, 7, 11, 7, 0));
    /* unknown zones are US Eastern; an empty window is never quiet */
    assert_int_equal(nurture_quiet_until("Mars/Olympus", 1260, 480, utc_ms(2026, 1, 10, 12, 0)),
                     utc_ms(2026, 1, 10, 13, 0));
    assert_int_equal(nurture_quiet_until("UTC", 0, 0, utc_ms(2026, 1, 10, 3, 0)), 0);
    /* a window that does not wrap midnight: 12:00-13:00 UTC */
    assert_int_equal(nurture_quiet_until("UTC", 720, 780, utc_ms(2026, 1, 10, 12, 30)), utc_ms(2026, 1, 10, 13, 0));
    assert_int_equal(nurture_quiet_until("UTC", 720, 780, utc_ms(2026, 1, 10, 13, 0)), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_quiet_hours),
    };
    return cmocka_run_group_tests_name("nurture", tests, NULL, NULL);
}
