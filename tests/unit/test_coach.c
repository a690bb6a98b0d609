/* coach: the analyzer and the suggestion rules on small conversations —
 * sentiment with negation, intensifiers and "but"; intents (and negated
 * ones), objections, qualification from messages and lead fields; response
 * times, waiting, quiet hours with DST; talk ratio; playbook checks and
 * overrides; limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "coach/coach.h"

static coach_ctx *C;

static int setup(void **st) {
    (void)st;
    char why[160];
    C = coach_ctx_new(why, sizeof why);
    if (!C) fprintf(stderr, "coach_ctx_new: %s\n", why);
    return C ? 0 : -1;
}
static int teardown(void **st) {
    (void)st;
    coach_ctx_free(C);
    return 0;
}

#define T0 1763900000000LL /* 2025-11-23 12:13:20 UTC */

/* One inbound message's analysis. */
static json_t *one(const char *body) {
    coach_msg m = {1, COACH_IN, "sms", body, strlen(body), T0};
    return coach_analyze(C, &m, 1, NULL, 0);
}
static double score_of(const char *body) {
    json_t *a = one(body);
    assert_non_null(a);
    double s = json_real_value(json_object_get(json_object_get(a, "sentiment"), "last"));
    json_decref(a);
    return s;
}
static int has(const json_t *arr, const char *key, const char *name) {
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (strcmp(json_string_value(json_object_get(v, key)), name) == 0) return 1;
    return 0;
}

static void test_sentiment(void **st) {
    (void)st;
    double good = score_of("The house is good"), vgood = score_of("The house is very good");
    double notgood = score_of("The house is not good"), bad = score_of("The house is terrible");
    assert_true(good > 0.2);
    assert_true(vgood > good);
    assert_true(notgood < 0);
    assert_true(bad < -0.5);
    assert_true(score_of("It was nice but the kitchen is awful") < 0);
    assert_true(score_of("I love it!!!") > score_of("I love it"));
    assert_true(score_of("Call me at 3") == 0);
    /* curly apostrophe reads as a plain one */
    assert_true(score_of("I don\xe2\x80\x99t like it") < 0);
}

static void test_intents_objections(void **st) {
    (void)st;
    json_t *a = one("We're ready to make an offer! Can we see it tomorrow? What's the price and the HOA fees?");
    json_t *in = json_object_get(a, "intents");
    assert_true(has(in, "intent", "ready_to_buy"));
    assert_true(has(in, "intent", "wants_showing"));
    assert_true(has(in, "intent", "price_question"));
    json_decref(a);
    a = one("I'm not ready to buy, we have to sell our house first and my cousin is an agent");
    in = json_object_get(a, "intents");
    json_t *ob = json_object_get(a, "objections");
    assert_false(has(in, "intent", "ready_to_buy")); /* negated */
    assert_true(has(ob, "objection", "not_ready"));
    assert_true(has(ob, "objection", "needs_to_sell_first"));
    assert_true(has(ob, "objection", "other_agent"));
    json_decref(a);
    a = one("Rates are too high right now, we're just looking");
    ob = json_object_get(a, "objections");
    assert_true(has(ob, "objection", "rates_financing"));
    assert_false(has(ob, "objection", "price_too_high")); /* the longer phrase wins */
    assert_true(has(ob, "objection", "just_looking"));
    json_decref(a);
}

static void test_qualification(void **st) {
    (void)st;
    const char *b[] = {"What's your budget?", "We can spend up to $520,000. Pre-approved with Chase.",
                       "Looking for a condo near Midtown, moving in 3 months because of a new job. My husband decides too."};
    coach_msg m[3];
    for (int i = 0; i < 3; i++) m[i] = (coach_msg){10 + i, i == 0 ? COACH_OUT : COACH_IN, "sms", b[i], strlen(b[i]), T0 + i * 1000};
    json_t *a = coach_analyze(C, m, 3, NULL, 0);
    json_t *q = json_object_get(a, "qualification");
    const char *items[] = {"budget", "timeline", "preapproval", "location", "property_type", "motivation", "decision_makers"};
    for (int i = 0; i < 7; i++) assert_true(json_is_true(json_object_get(json_object_get(q, items[i]), "known")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(q, "budget"), "message_id")), 11);
    assert_int_equal(json_array_size(json_object_get(a, "missing")), 0);
    json_decref(a);
    /* the agent asking about budget does not make it known; lead fields do */
    coach_facts f = {.has_budget = 1, .budget_max = 400000, .preapproved = 0, .areas = 2, .timezone = NULL};
    a = coach_analyze(C, m, 1, &f, 0);
    q = json_object_get(a, "qualification");
    assert_string_equal(json_string_value(json_object_get(json_object_get(q, "budget"), "source")), "lead");
    assert_true(json_is_true(json_object_get(json_object_get(q, "preapproval"), "known")));
    assert_true(json_is_false(json_object_get(json_object_get(q, "timeline"), "known")));
    json_decref(a);
}

static void test_evidence_redacted(void **st) {
    (void)st;
    json_t *a = one("Our budget is 500k, call me at (916) 555-0142 or mail ann@example.com");
    const char *ev = json_string_value(json_object_get(json_object_get(json_object_get(a, "qualification"), "budget"), "evidence"));
    assert_non_null(ev);
    assert_string_equal(ev, "budget is 500k, call me at [PHONE] or mail [EMAIL]");
    json_decref(a);
}

static void test_times_and_warnings(void **st) {
    (void)st;
    const char *b[] = {"hi, is it still available?", "Yes! Want to see it?", "ok", "this is frustrating, nobody answers",
                       "I'm really annoyed and disappointed"};
    int d[] = {COACH_IN, COACH_OUT, COACH_IN, COACH_IN, COACH_IN};
    int64_t at[] = {T0, T0 + 120000, T0 + 420000, T0 + 900000, T0 + 960000};
    coach_msg m[5];
    for (int i = 0; i < 5; i++) m[i] = (coach_msg){i + 1, d[i], "sms", b[i], strlen(b[i]), at[i]};
    coach_facts f = {.preapproved = -1, .timezone = "America/New_York"};
    json_t *a = coach_analyze(C, m, 5, &f, T0 + 1200000);
    json_t *rt = json_object_get(a, "response_times");
    assert_true(json_real_value(json_object_get(json_object_get(rt, "agent"), "median_s")) == 120.0);
    assert_true(json_real_value(json_object_get(json_object_get(rt, "lead"), "median_s")) == 300.0);
    assert_true(json_real_value(json_object_get(rt, "waiting_s")) == 780.0);
    assert_int_equal(json_integer_value(json_object_get(rt, "waiting_message_id")), 3);
    assert_true(json_is_true(json_object_get(json_object_get(a, "sentiment"), "dropping")));
    /* 12:15 UTC is 07:15 in New York in November: quiet hours */
    assert_int_equal(json_array_size(json_object_get(a, "quiet_hours")), 1);
    json_t *pb = coach_playbook_merge(C, NULL);
    json_t *s = coach_suggest(C, a, pb);
    assert_true(has(s, "item", "lead_waiting"));
    assert_true(has(s, "item", "sentiment_dropping"));
    assert_true(has(s, "item", "quiet_hours"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(s, 0), "type")), "warning");
    size_t i;
    json_t *v;
    json_array_foreach(s, i, v) {
        assert_non_null(json_string_value(json_object_get(v, "reason")));
        assert_non_null(json_string_value(json_object_get(v, "text")));
    }
    json_decref(s);
    json_decref(pb);
    json_decref(a);
}

static void test_local_hour(void **st) {
    (void)st;
    /* 2025-07-01 12:00 UTC: New York on EDT (08), London on BST (13) */
    int64_t jul = 1751371200000LL, jan = 1736337600000LL; /* 2025-01-08 12:00 UTC */
    assert_int_equal(coach_local_hour("America/New_York", jul), 8);
    assert_int_equal(coach_local_hour("America/New_York", jan), 7);
    assert_int_equal(coach_local_hour("Europe/London", jul), 13);
    assert_int_equal(coach_local_hour("Europe/London", jan), 12);
    assert_int_equal(coach_local_hour("America/Phoenix", jul), 5);
    assert_int_equal(coach_local_hour("+05:30", jan), 17);
    assert_int_equal(coach_local_hour("UTC-08:00", jan), 4);
    assert_int_equal(coach_local_hour("Mars/Olympus", jan), -1);
    assert_int_equal(coach_local_hour("+25:00", jan), -1);
    assert_int_equal(coach_local_hour(NULL, jan), -1);
}

static void test_talk_ratio(void **st) {
    (void)st;
    const char *t = "Agent: Hi, thanks for calling, how can I help today with your search\n"
                    "Buyer: we need more space, baby on the way\nAgent: congratulations";
    coach_msg m = {1, COACH_NONE, "call", t, strlen(t), T0};
    json_t *a = coach_analyze(C, &m, 1, NULL, 0);
    json_t *tr = json_object_get(a, "talk_ratio");
    assert_true(json_is_object(tr));
    assert_int_equal(json_integer_value(json_object_get(tr, "agent_words")), 13);
    assert_int_equal(json_integer_value(json_object_get(tr, "lead_words")), 8);
    /* the agent's lines are not the lead's motivation... the buyer's are */
    assert_true(json_is_true(json_object_get(json_object_get(json_object_get(a, "qualification"), "motivation"), "known")));
    json_decref(a);
    coach_msg n = {1, COACH_IN, "call", "no labels here", 14, T0};
    a = coach_analyze(C, &n, 1, NULL, 0);
    assert_true(json_is_null(json_object_get(a, "talk_ratio")));
    json_decref(a);
}

static void test_playbook(void **st) {
    (void)st;
    char why[200];
    json_t *ov = json_loads("{\"objections\":{\"other_agent\":{\"text\":\"Ask if they signed.\",\"why\":\"Ethics.\"}}}", 0, NULL);
    assert_int_equal(coach_playbook_check(C, ov, why, sizeof why), 0);
    json_t *m = coach_playbook_merge(C, ov);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(m, "objections"), "other_agent"), "text")),
                        "Ask if they signed.");
    assert_non_null(json_object_get(json_object_get(m, "objections"), "price_too_high")); /* default kept */
    json_decref(m);
    json_decref(ov);
    const char *bad[] = {"[]", "{\"nope\":{}}", "{\"objections\":{\"made_up\":{\"text\":\"x\",\"why\":\"y\"}}}",
                         "{\"questions\":{\"budget\":{\"text\":\"\",\"why\":\"y\"}}}",
                         "{\"questions\":{\"budget\":{\"text\":\"x\"}}}"};
    for (int i = 0; i < 5; i++) {
        json_t *b = json_loads(bad[i], 0, NULL);
        assert_int_equal(coach_playbook_check(C, b, why, sizeof why), -1);
        json_decref(b);
    }
    json_t *d = coach_playbook_default(C);
    assert_int_equal(coach_playbook_check(C, d, why, sizeof why), 0);
    json_decref(d);
}

static void test_limits(void **st) {
    (void)st;
    static coach_msg m[COACH_MAX_MESSAGES + 1];
    static char big[COACH_MAX_BODY + 1];
    memset(big, 'a', sizeof big);
    for (int i = 0; i <= COACH_MAX_MESSAGES; i++) m[i] = (coach_msg){i + 1, COACH_IN, "sms", big, COACH_MAX_BODY, T0 + i};
    assert_null(coach_analyze(C, m, COACH_MAX_MESSAGES + 1, NULL, 0));
    json_t *a = coach_analyze(C, m, COACH_MAX_MESSAGES, NULL, 0);
    assert_non_null(a);
    json_decref(a);
    m[0].len = COACH_MAX_BODY + 1;
    assert_null(coach_analyze(C, m, 1, NULL, 0));
    assert_non_null(a = coach_analyze(C, m, 0, NULL, 0));
    assert_int_equal(json_array_size(json_object_get(a, "missing")), 7);
    json_decref(a);
    /* invalid UTF-8 and odd bytes must not break the output */
    const char *odd = "\xff\xfe budget \xe2\x80 $500k \xc3";
    coach_msg o = {1, COACH_IN, "sms", odd, strlen(odd), T0};
    a = coach_analyze(C, &o, 1, NULL, 0);
    assert_non_null(a);
    json_t *bq = json_object_get(json_object_get(a, "qualification"), "budget");
    assert_true(json_is_true(json_object_get(bq, "known")));
    assert_true(json_is_null(json_object_get(bq, "evidence")));
    json_decref(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sentiment),  cmocka_unit_test(test_intents_objections),
        cmocka_unit_test(test_qualification), cmocka_unit_test(test_evidence_redacted),
        cmocka_unit_test(test_times_and_warnings),
        cmocka_unit_test(test_local_hour), cmocka_unit_test(test_talk_ratio),
        cmocka_unit_test(test_playbook),   cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
