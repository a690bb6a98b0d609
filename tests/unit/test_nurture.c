/* nurture: template rendering (defaults, escaping, unknown variables),
 * SMS encoding and segments, opt-out keywords, quiet hours across DST. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
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

/* wait_until: 09:00-11:00 in New York (January, UTC-5) */
static void test_window_opens(void **state) {
    /* 13:00 UTC = 08:00 local: opens at 09:00 local = 14:00 UTC */
    assert_int_equal(nurture_window_opens("America/New_York", 540, 660, utc_ms(2026, 1, 10, 13, 0)),
                     utc_ms(2026, 1, 10, 14, 0));
    /* inside it: now */
    assert_int_equal(nurture_window_opens("America/New_York", 540, 660, utc_ms(2026, 1, 10, 15, 0)),
                     utc_ms(2026, 1, 10, 15, 0));
    /* after it: tomorrow's */
    assert_int_equal(nurture_window_opens("America/New_York", 540, 660, utc_ms(2026, 1, 10, 16, 0)),
                     utc_ms(2026, 1, 11, 14, 0));
    /* a window over midnight, 22:00-02:00 UTC, at 23:00: now */
    assert_int_equal(nurture_window_opens("UTC", 1320, 120, utc_ms(2026, 1, 10, 23, 0)), utc_ms(2026, 1, 10, 23, 0));
}

/* GHL's 100 per window: the 101st waits for the first to be a window old,
 * counted from when its request ended; a 429 blocks the tenant. */
static void test_window_limiter(void **state) {
    nurture_window *w = nurture_window_new(3, 10000);
    int slot[4];
    assert_non_null(w);
    for (int i = 0; i < 3; i++) assert_int_equal(nurture_window_take(w, 7, 1000 + i, &slot[i]), 0);
    /* all in flight: look again a tenth of a window later */
    assert_int_equal(nurture_window_take(w, 7, 1003, &slot[3]), 1003 + 1001);
    /* another tenant has its own window */
    assert_int_equal(nurture_window_take(w, 8, 1003, &slot[3]), 0);
    nurture_window_done(w, 7, slot[0], 1500, 0); /* ended at 1.5 s */
    nurture_window_done(w, 7, slot[1], 1600, 0);
    nurture_window_done(w, 7, slot[2], 1700, 0);
    assert_int_equal(nurture_window_take(w, 7, 11000, &slot[3]), 11500);
    assert_int_equal(nurture_window_take(w, 7, 11500, &slot[3]), 0);
    assert_int_equal(slot[3], slot[0]);
    nurture_window_done(w, 7, slot[3], 11600, 20000); /* a 429: Retry-After until 20 s */
    assert_int_equal(nurture_window_take(w, 7, 12000, &slot[3]), 20000);
    assert_int_equal(nurture_window_take(w, 7, 20000, &slot[3]), 0);
    nurture_window_free(w);
    int n;
    int64_t win;
    assert_int_equal(nurture_rate_parse("50/m", &n, &win), 0);
    assert_true(n == 50 && win == 60000);
    assert_int_equal(nurture_rate_parse("5/s", &n, &win), 0);
    assert_true(n == 5 && win == 1000);
    assert_int_equal(nurture_rate_parse("5/d", &n, &win), -1);
    assert_int_equal(nurture_rate_parse("0/s", &n, &win), -1);
    assert_int_equal(nurture_rate_parse("5/sx", &n, &win), -1);
}

/* A slot taken and then given back (the shared window said wait) is free
 * again at once, and releasing a slot that is not in flight changes nothing. */
static void test_window_release(void **state) {
    (void)state;
    nurture_window *w = nurture_window_new(2, 10000);
    int a, b, c;
    assert_non_null(w);
    assert_int_equal(nurture_window_take(w, 7, 1000, &a), 0);
    assert_int_equal(nurture_window_take(w, 7, 1000, &b), 0);
    assert_int_not_equal(nurture_window_take(w, 7, 1000, &c), 0);
    nurture_window_release(w, 7, b);
    assert_int_equal(nurture_window_take(w, 7, 1001, &c), 0);
    assert_int_equal(c, b);
    nurture_window_done(w, 7, a, 1500, 0);
    nurture_window_release(w, 7, a); /* ended: it keeps counting */
    nurture_window_release(w, 9, a); /* a tenant never seen */
    assert_int_equal(nurture_window_take(w, 7, 2000, &c), 11500);
    nurture_window_free(w);
}

static void test_mime(void **state) {
    buf b;
    buf_init(&b, 1 << 16);
    assert_int_equal(nurture_mime(&b, "team@homes.example", "zoe@buyers.example", "Bienvenue Zo\xc3\xa9",
                                  "<p>Hi &amp; bye</p><br>Next", "<1.2.0.ehub@homes.example>", 0),
                     0);
    assert_non_null(strstr(b.p, "From: <team@homes.example>\r\nTo: <zoe@buyers.example>\r\n"));
    /* RFC 2047: "Bienvenue Zoé" */
    assert_non_null(strstr(b.p, "Subject: =?UTF-8?B?QmllbnZlbnVlIFpvw6k=?=\r\n"));
    assert_non_null(strstr(b.p, "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"));
    assert_non_null(strstr(b.p, "Message-ID: <1.2.0.ehub@homes.example>\r\n"));
    assert_non_null(strstr(b.p, "Content-Type: multipart/alternative; boundary=\"=_ehub__1.2.0.ehub_homes.example_\""));
    /* text part: "Hi & bye\n\nNext" */
    assert_non_null(strstr(b.p, "text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\nSGkgJiBieWUKCk5leHQ=\r\n"));
    assert_non_null(strstr(b.p, "--=_ehub__1.2.0.ehub_homes.example_--\r\n"));
    buf_reset(&b);
    assert_int_equal(nurture_html_to_text("<div>a\n  b</div>&lt;c&gt;", &b), 0);
    assert_string_equal(b.p, "a b\n<c>");
    buf_free(&b);
    /* over the cap: an error, not a truncated message */
    buf_init(&b, 100);
    assert_int_equal(nurture_mime(&b, "a@b.c", "d@e.f", "s", "<p>body</p>", "<x@y>", 0), -1);
    buf_free(&b);
}

/* An agent's one-off e-mail: the text as written, safe in HTML, its line
 * breaks kept; and back to text for the SMTP text part. */
static void test_text_to_html(void **state) {
    (void)state;
    buf b;
    buf_init(&b, 4000);
    assert_int_equal(nurture_text_to_html("Hi <b>Zoe</b> & \"you\"\r\nit's {{first_name}}\n", &b), 0);
    assert_string_equal(b.p, "Hi &lt;b&gt;Zoe&lt;/b&gt; &amp; &quot;you&quot;<br>\nit&#39;s {{first_name}}<br>\n");
    buf t;
    buf_init(&t, 4000);
    assert_int_equal(nurture_html_to_text(b.p, &t), 0);
    assert_non_null(strstr(t.p, "Hi <b>Zoe</b> & \"you\""));
    buf_free(&t);
    buf_free(&b);
    /* over the cap: an error (the API answers 422), never a cut message */
    buf_init(&b, 10);
    assert_int_not_equal(nurture_text_to_html("<<<", &b), 0);
    buf_reset(&b);
    assert_int_equal(nurture_text_to_html("<<", &b), 0); /* 8 bytes: fits */
    buf_free(&b);
}

static void test_secret_refs(void **state) {
    assert_int_equal(nurture_secret_ref_ok("env:EHUB_SMTP_PASSWORD"), 0);
    assert_int_equal(nurture_secret_ref_ok("file:smtp-pw.txt"), 0);
    assert_int_equal(nurture_secret_ref_ok("env:EHUB_STORE"), -1);
    assert_int_equal(nurture_secret_ref_ok("env:EHUB_SMTP_"), -1);
    assert_int_equal(nurture_secret_ref_ok("env:EHUB_SMTP_x"), -1);
    assert_int_equal(nurture_secret_ref_ok("file:../ehub.db"), -1);
    assert_int_equal(nurture_secret_ref_ok("file:/etc/passwd"), -1);
    assert_int_equal(nurture_secret_ref_ok("file:.hidden"), -1);
    assert_int_equal(nurture_secret_ref_ok("hunter2"), -1);
    char out[64], err[128];
    setenv("EHUB_SMTP_UNIT", "pw-from-env", 1);
    assert_int_equal(nurture_secret_read("env:EHUB_SMTP_UNIT", "/nonexistent", out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "pw-from-env");
    assert_int_equal(nurture_secret_read("env:EHUB_SMTP_UNSET_X", "/nonexistent", out, sizeof out, err, sizeof err), -1);
    assert_int_equal(nurture_secret_read("file:../x", "/tmp", out, sizeof out, err, sizeof err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_quiet_hours),
        cmocka_unit_test(test_window_opens),
        cmocka_unit_test(test_window_limiter),
        cmocka_unit_test(test_window_release),
        cmocka_unit_test(test_mime),
        cmocka_unit_test(test_secret_refs),
        cmocka_unit_test(test_text_to_html),
    };
    return cmocka_run_group_tests_name("nurture", tests, NULL, NULL);
}
