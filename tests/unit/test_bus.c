/* Unit tests for the pure parts of the realtime path: the bus sequencer
 * (order, dedup, gaps per tenant), the Redis wire format, and realtime's
 * topic/filter matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "bus/bus.h"
#include "realtime/realtime.h"

/* ---- sequencer ---- */

typedef struct rec {
    int64_t tenant[64], seq[64];
    char payload[64][32];
    int n;
} rec;

static void out(void *ud, const store_event *ev) {
    rec *r = ud;
    assert_true(r->n < 64);
    r->tenant[r->n] = ev->tenant;
    r->seq[r->n] = ev->seq;
    strncpy(r->payload[r->n], ev->payload, sizeof r->payload[0] - 1);
    r->n++;
}

static store_event ev(int64_t tenant, int64_t seq) {
    static char payload[64][32];
    static int k;
    char *p = payload[k++ % 64];
    snprintf(p, 32, "{\"s\":%d}", (int)seq);
    return (store_event){tenant, seq, 1000 + seq, "lead.created", p};
}

static int offer(bus_seq *q, rec *r, int64_t tenant, int64_t seq) {
    store_event e = ev(tenant, seq);
    return bus_seq_offer(q, &e, out, r);
}

static void test_seq_in_order_and_dups(void **st) {
    bus_seq *q = bus_seq_new(0);
    rec r = {0};
    assert_int_equal(offer(q, &r, 1, 5), BUS_SEQ_DELIVERED); /* first sight starts here */
    assert_int_equal(offer(q, &r, 1, 6), BUS_SEQ_DELIVERED);
    assert_int_equal(offer(q, &r, 1, 6), BUS_SEQ_DUP);
    assert_int_equal(offer(q, &r, 1, 3), BUS_SEQ_DUP);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.seq[0], 5);
    assert_int_equal(r.seq[1], 6);
    assert_int_equal(bus_seq_position(q, 1), 6);
    assert_int_equal(bus_seq_position(q, 2), -1);
    bus_seq_free(q);
}

static void test_seq_gap_held_then_released_in_order(void **st) {
    bus_seq *q = bus_seq_new(0);
    rec r = {0};
    bus_seq_watch(q, 7, 10);
    assert_int_equal(offer(q, &r, 7, 13), BUS_SEQ_HELD);
    assert_int_equal(offer(q, &r, 7, 12), BUS_SEQ_HELD);
    assert_int_equal(offer(q, &r, 7, 13), BUS_SEQ_DUP); /* held already */
    assert_int_equal(r.n, 0);
    int64_t gaps[4];
    assert_int_equal(bus_seq_gaps(q, gaps, 4), 1);
    assert_int_equal(gaps[0], 7);
    assert_int_equal(bus_seq_held(q), 2);
    assert_int_equal(offer(q, &r, 7, 11), BUS_SEQ_DELIVERED);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.seq[0], 11);
    assert_int_equal(r.seq[1], 12);
    assert_int_equal(r.seq[2], 13);
    assert_string_equal(r.payload[2], "{\"s\":13}"); /* the held copy */
    assert_int_equal(bus_seq_held(q), 0);
    assert_int_equal(bus_seq_gaps(q, gaps, 4), 0);
    bus_seq_free(q);
}

static void test_seq_watch_does_not_move_known_tenant(void **st) {
    bus_seq *q = bus_seq_new(0);
    rec r = {0};
    offer(q, &r, 3, 1);
    bus_seq_watch(q, 3, 0);
    assert_int_equal(bus_seq_position(q, 3), 1);
    bus_seq_watch(q, 4, 9);
    assert_int_equal(bus_seq_position(q, 4), 9);
    assert_int_equal(offer(q, &r, 4, 9), BUS_SEQ_DUP);
    assert_int_equal(offer(q, &r, 4, 10), BUS_SEQ_DELIVERED);
    bus_seq_free(q);
}

static void test_seq_tenants_independent_and_many(void **st) {
    bus_seq *q = bus_seq_new(0);
    rec r = {0};
    /* enough tenants to make the table grow several times */
    for (int64_t t = 1; t <= 500; t++) bus_seq_watch(q, t, 0);
    int64_t all[600];
    assert_int_equal(bus_seq_tenants(q, all, 600), 500);
    assert_int_equal(offer(q, &r, 2, 2), BUS_SEQ_HELD);
    assert_int_equal(offer(q, &r, 1, 1), BUS_SEQ_DELIVERED);
    assert_int_equal(offer(q, &r, 499, 1), BUS_SEQ_DELIVERED);
    assert_int_equal(r.n, 2);
    assert_int_equal(offer(q, &r, 2, 1), BUS_SEQ_DELIVERED);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.tenant[3], 2);
    assert_int_equal(r.seq[3], 2);
    bus_seq_free(q);
}

static void test_seq_lookback_first_sight(void **st) {
    bus_seq *q = bus_seq_new(0);
    bus_seq_set_lookback(q, 64);
    rec r = {0};
    /* 6 reported before 5 (two PostgreSQL commits racing to on_commit) */
    assert_int_equal(offer(q, &r, 1, 6), BUS_SEQ_HELD);
    assert_int_equal(bus_seq_position(q, 1), 0);
    int64_t gaps[2];
    assert_int_equal(bus_seq_gaps(q, gaps, 2), 1);
    assert_int_equal(offer(q, &r, 1, 5), BUS_SEQ_HELD);
    /* the fill from the log brings 1..4, then 5 and 6 follow in order */
    for (int64_t s = 1; s <= 4; s++) offer(q, &r, 1, s);
    assert_int_equal(r.n, 6);
    for (int i = 0; i < 6; i++) assert_int_equal(r.seq[i], i + 1);
    assert_int_equal(offer(q, &r, 1, 5), BUS_SEQ_DUP);
    /* a tenant far along starts 64 back */
    assert_int_equal(offer(q, &r, 2, 1000), BUS_SEQ_HELD);
    assert_int_equal(bus_seq_position(q, 2), 935);
    bus_seq_free(q);
}

static void test_seq_hold_limit(void **st) {
    bus_seq *q = bus_seq_new(2);
    rec r = {0};
    bus_seq_watch(q, 1, 0);
    assert_int_equal(offer(q, &r, 1, 3), BUS_SEQ_HELD);
    assert_int_equal(offer(q, &r, 1, 4), BUS_SEQ_HELD);
    assert_int_equal(offer(q, &r, 1, 5), BUS_SEQ_NOMEM); /* dropped: a fill brings it back */
    assert_int_equal(offer(q, &r, 1, 1), BUS_SEQ_DELIVERED);
    assert_int_equal(offer(q, &r, 1, 2), BUS_SEQ_DELIVERED);
    assert_int_equal(r.n, 4);
    assert_int_equal(bus_seq_position(q, 1), 4);
    assert_int_equal(offer(q, &r, 1, 5), BUS_SEQ_DELIVERED);
    bus_seq_free(q);
}

static void test_seq_oom_is_reported(void **st) {
    bus_seq *q = bus_seq_new(0);
    rec r = {0};
    bus_seq_watch(q, 1, 0);
    eh_alloc_fail_after(0);
    int rc = offer(q, &r, 1, 3);
    eh_alloc_fail_after(-1);
    assert_int_equal(rc, BUS_SEQ_NOMEM);
    assert_int_equal(bus_seq_held(q), 0);
    bus_seq_free(q);
}

/* ---- wire format ---- */

static void test_wire_roundtrip_and_rejects(void **st) {
    store_event e = {42, 7, 1700000000123, "lead.created", "{\"id\":1,\"note\":\"a\\nb\"}"};
    size_t len;
    char *s = bus_encode(&e, &len);
    assert_non_null(s);
    store_event d;
    assert_int_equal(bus_decode(s, len, &d), 0);
    assert_int_equal(d.tenant, 42);
    assert_int_equal(d.seq, 7);
    assert_int_equal(d.time_ms, 1700000000123);
    assert_string_equal(d.type, "lead.created");
    assert_string_equal(d.payload, e.payload);
    eh_free(s);
    const char *bad[] = {"", "1 2 3", "1 2 3 \n{}", "x 2 3 t\n{}", "0 2 3 t\n{}", "1 -2 3 t\n{}", "1 2 3 t{}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[64];
        strcpy(buf, bad[i]);
        assert_int_equal(bus_decode(buf, strlen(buf), &d), -1);
    }
}

/* ---- topics and filters ---- */

static int match(const rt_filter *f, const char *type, const char *payload) {
    json_t *p = json_loads(payload, 0, NULL);
    rt_event_info info;
    rt_event_classify(type, p, &info);
    int m = rt_filter_match(f, &info);
    json_decref(p);
    return m;
}

static void test_topics_parse(void **st) {
    rt_filter f;
    rt_filter_init(&f);
    assert_int_equal(rt_filter_add_topic(&f, "leads", 0), 0);
    assert_int_equal(rt_filter_add_topic(&f, "lead:42", 0), 0);
    assert_int_equal(rt_filter_add_topic(&f, "coaching:7", 0), 0);
    assert_int_equal(rt_filter_add_topic(&f, "coaching:me", 9), 0);
    assert_int_equal(f.nlead, 1);
    assert_int_equal(f.lead[0], 42);
    assert_int_equal(f.ncoaching, 2);
    assert_int_equal(f.coaching[1], 9);
    const char *bad[] = {"lead", "lead:", "lead:0", "lead:-1", "lead:1x", "coaching:me", "nope", "LEADS", "lead:1234567890123456789"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(rt_filter_add_topic(&f, bad[i], 0), -1);
    assert_true(rt_topic_valid("system"));
    assert_true(rt_topic_valid("lead:3"));
    assert_false(rt_topic_valid("all"));
    assert_false(rt_topic_valid("coaching:me"));
    assert_false(rt_topic_valid("x"));
}

static void test_topic_mapping(void **st) {
    rt_filter leads, scores, one, coach, sys, all;
    rt_filter_init(&leads);
    rt_filter_add_topic(&leads, "leads", 0);
    rt_filter_init(&scores);
    rt_filter_add_topic(&scores, "scores", 0);
    rt_filter_init(&one);
    rt_filter_add_topic(&one, "lead:5", 0);
    rt_filter_init(&coach);
    rt_filter_add_topic(&coach, "coaching:7", 0);
    rt_filter_init(&sys);
    rt_filter_add_topic(&sys, "system", 0);
    rt_filter_init(&all);
    rt_filter_add_topic(&all, "all", 0);

    const char *created = "{\"id\":5,\"agent_id\":null,\"score\":0.8}";
    assert_true(match(&leads, "lead.created", created));
    assert_true(match(&one, "lead.created", created));
    assert_false(match(&one, "lead.created", "{\"id\":6}"));
    assert_true(match(&one, "lead.updated", "{\"lead\":{\"id\":5},\"changed\":[]}"));
    assert_true(match(&one, "lead.assigned", "{\"lead_id\":5,\"agent_id\":2}"));
    assert_false(match(&scores, "lead.created", created));
    assert_true(match(&scores, "lead.scored", "{\"lead_id\":5,\"score\":0.9}"));
    assert_true(match(&leads, "lead.scored", "{\"lead_id\":5,\"score\":0.9}"));
    assert_true(match(&scores, "score.updated", "{\"lead_id\":5}"));
    assert_true(match(&coach, "coaching.tip", "{\"agent_id\":7}"));
    assert_false(match(&coach, "coaching.tip", "{\"agent_id\":8}"));
    assert_false(match(&leads, "coaching.tip", "{\"agent_id\":7}"));
    assert_true(match(&sys, "system.maintenance", "{}"));
    assert_false(match(&leads, "settings.updated", "{}"));
    assert_true(match(&all, "settings.updated", "{}"));
    /* broadcasts go where their topic says */
    assert_true(match(&sys, "broadcast", "{\"topic\":\"system\",\"type\":\"m\",\"data\":{}}"));
    assert_false(match(&leads, "broadcast", "{\"topic\":\"system\",\"type\":\"m\",\"data\":{}}"));
    assert_true(match(&one, "broadcast", "{\"topic\":\"lead:5\",\"type\":\"m\",\"data\":{}}"));
    assert_true(match(&coach, "broadcast", "{\"topic\":\"coaching:7\",\"type\":\"m\",\"data\":{}}"));
    assert_false(match(&coach, "broadcast", "{\"topic\":\"coaching:8\",\"type\":\"m\",\"data\":{}}"));
    /* unparsable payloads are only seen by topic */
    assert_true(match(&leads, "lead.created", "not json"));
    assert_false(match(&one, "lead.created", "not json"));
}

static void test_filters(void **st) {
    rt_filter f;
    rt_filter_init(&f);
    rt_filter_add_topic(&f, "leads", 0);
    f.min_score = 0.7;
    assert_true(match(&f, "lead.created", "{\"id\":1,\"score\":0.7}"));
    assert_false(match(&f, "lead.created", "{\"id\":1,\"score\":0.69}"));
    assert_false(match(&f, "lead.created", "{\"id\":1}"));
    assert_true(match(&f, "lead.updated", "{\"lead\":{\"id\":1,\"score\":0.9}}"));
    assert_true(match(&f, "broadcast", "{\"topic\":\"leads\",\"type\":\"x\",\"data\":{}}"));
    f.min_score = -1;
    f.agent = 3;
    assert_true(match(&f, "lead.created", "{\"id\":1,\"agent_id\":3}"));
    assert_false(match(&f, "lead.created", "{\"id\":1,\"agent_id\":4}"));
    assert_true(match(&f, "lead.assigned", "{\"lead_id\":1,\"agent_id\":3}"));
}

static void test_agent_principal_sees_own_only(void **st) {
    rt_filter f;
    rt_filter_init(&f);
    rt_filter_add_topic(&f, "all", 3);
    f.only_agent = 3;
    assert_true(match(&f, "lead.assigned", "{\"lead_id\":1,\"agent_id\":3}"));
    assert_false(match(&f, "lead.assigned", "{\"lead_id\":1,\"agent_id\":4}"));
    assert_false(match(&f, "lead.deleted", "{\"id\":1}")); /* cannot tell: hidden */
    assert_false(match(&f, "settings.updated", "{}"));
    assert_true(match(&f, "coaching.tip", "{\"agent_id\":3}"));
    assert_false(match(&f, "coaching.tip", "{\"agent_id\":4}"));
    f.only_agent = -1; /* an agent key bound to no agent */
    assert_false(match(&f, "lead.assigned", "{\"lead_id\":1,\"agent_id\":3}"));
    rt_filter_init(&f);
    rt_filter_add_topic(&f, "system", 0);
    f.only_agent = 3;
    assert_true(match(&f, "system.notice", "{}"));
    assert_true(match(&f, "broadcast", "{\"topic\":\"system\",\"type\":\"x\",\"data\":{}}"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seq_in_order_and_dups),
        cmocka_unit_test(test_seq_gap_held_then_released_in_order),
        cmocka_unit_test(test_seq_watch_does_not_move_known_tenant),
        cmocka_unit_test(test_seq_tenants_independent_and_many),
        cmocka_unit_test(test_seq_lookback_first_sight),
        cmocka_unit_test(test_seq_hold_limit),
        cmocka_unit_test(test_seq_oom_is_reported),
        cmocka_unit_test(test_wire_roundtrip_and_rejects),
        cmocka_unit_test(test_topics_parse),
        cmocka_unit_test(test_topic_mapping),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_agent_principal_sees_own_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
