/* Reports: query-time parsing, range rules, speed-to-lead buckets,
 * nearest-rank percentiles, UTC dates; and the pipeline report on a real
 * SQLite store (exact counts, percentiles, every allocation failure
 * answered with an error, never a crash or a leak). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "reports/reports.h"

#define DAY REPORTS_DAY_MS

static void test_parse_time(void **state) {
    int64_t ms = -1;
    assert_int_equal(reports_parse_time("1970-01-01", 0, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(reports_parse_time("1970-01-01", 1, &ms), 0);
    assert_int_equal(ms, DAY);
    assert_int_equal(reports_parse_time("2026-11-23", 0, &ms), 0);
    assert_int_equal(ms, 1795392000000LL);
    assert_int_equal(reports_parse_time("2024-02-29", 0, &ms), 0);
    assert_int_equal(reports_parse_time("2000-02-29", 0, &ms), 0);
    assert_int_equal(reports_parse_time("1795392000123", 0, &ms), 0);
    assert_int_equal(ms, 1795392000123LL);
    assert_int_equal(reports_parse_time("0", 0, &ms), 0);
    assert_int_equal(ms, 0);
    const char *bad[] = {"", "2025-02-29", "1900-02-29", "2026-02-30", "2026-13-01", "2026-00-10", "2026-01-00",
                         "2026-04-31", "1969-12-31", "2026-1-01", "2026/01/01", "2026-01-0a", "-1", "+5", "1e5",
                         "1234567890123456", " 12", "12 ", "0x10", NULL};
    for (int i = 0; bad[i]; i++) {
        int64_t v = 42;
        if (reports_parse_time(bad[i], 0, &v) == 0) fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(v, 42); /* nothing written on failure */
    }
    assert_int_equal(reports_parse_time(NULL, 0, &ms), -1);
}

static void test_range(void **state) {
    reports_range r;
    const char *why = NULL;
    int64_t now = 1795392000000LL + 5 * 3600000; /* 2026-11-23 05:00 UTC */
    assert_int_equal(reports_range_parse(NULL, NULL, now, &r, &why), 0);
    assert_int_equal(r.to, 1795392000000LL + DAY);
    assert_int_equal(r.from, r.to - 30 * DAY);
    assert_int_equal(r.days, 30);
    assert_int_equal(reports_range_parse("2026-11-01", "2026-11-01", now, &r, &why), 0);
    assert_int_equal(r.to - r.from, DAY);
    assert_int_equal(r.days, 1);
    assert_int_equal(reports_range_parse("1000", "1001", now, &r, &why), 0);
    assert_int_equal(r.days, 1); /* a partial day is a day of the series */
    assert_int_equal(reports_range_parse("0", "172800001", now, &r, &why), 0);
    assert_int_equal(r.days, 3);
    assert_int_equal(reports_range_parse("2024-01-01", "2024-12-31", now, &r, &why), 0);
    assert_int_equal(r.days, 366);
    assert_int_equal(reports_range_parse("2026-11-01", NULL, now, &r, &why), 0);
    assert_int_equal(r.days, 23);
    assert_int_equal(reports_range_parse(NULL, "1970-01-05", now, &r, &why), 0); /* default from clamps at 0 */
    assert_int_equal(r.from, 0);
    struct {
        const char *from, *to;
    } bad[] = {{"2025-01-01", "2026-01-02"}, {"2026-05-02", "2026-05-01"}, {"1000", "1000"}, {"x", NULL},
               {NULL, "y"}, {"0", "31708800001"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why = NULL;
        assert_int_equal(reports_range_parse(bad[i].from, bad[i].to, now, &r, &why), -1);
        assert_non_null(why);
    }
}

static void test_buckets_ranks_dates(void **state) {
    int64_t edges[][2] = {{-1, 6},      {0, 0},       {59999, 0},    {60000, 1},    {299999, 1},
                          {300000, 2},  {899999, 2},  {900000, 3},   {3599999, 3},  {3600000, 4},
                          {86399999, 4}, {86400000, 5}, {999 * DAY, 5}};
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) assert_int_equal(reports_bucket(edges[i][0]), edges[i][1]);
    assert_string_equal(reports_bucket_names[0], "lt_1m");
    assert_string_equal(reports_bucket_names[REPORTS_BUCKETS - 1], "never");
    /* nearest rank: ceil(p * n / 100) */
    assert_int_equal(reports_rank(50, 0), 0);
    assert_int_equal(reports_rank(50, 1), 1);
    assert_int_equal(reports_rank(90, 1), 1);
    assert_int_equal(reports_rank(50, 2), 1);
    assert_int_equal(reports_rank(50, 7), 4);
    assert_int_equal(reports_rank(90, 7), 7);
    assert_int_equal(reports_rank(90, 10), 9);
    assert_int_equal(reports_rank(90, 11), 10);
    assert_int_equal(reports_rank(50, 100000), 50000);
    char d[11];
    reports_date(0, d);
    assert_string_equal(d, "1970-01-01");
    reports_date(1795392000000LL + DAY - 1, d);
    assert_string_equal(d, "2026-11-23");
    reports_date(951782400000LL, d); /* 2000-02-29 */
    assert_string_equal(d, "2000-02-29");
    reports_date(1709164800000LL, d);
    assert_string_equal(d, "2024-02-29");
    reports_date(1735603200000LL, d);
    assert_string_equal(d, "2024-12-31");
    /* every day from 1970 to 2100 round-trips through the parser */
    for (int64_t day = 0; day < 47500; day++) {
        int64_t ms;
        reports_date(day * DAY + 12345, d);
        assert_int_equal(reports_parse_time(d, 0, &ms), 0);
        assert_int_equal(ms, day * DAY);
    }
}

/* ---- the report on a real SQLite store ---- */

typedef struct fx {
    char dir[64], url[128];
    store *st;
    int64_t tenant;
} fx;

static int seed_fn(store_tx *tx, void *arg, store_err *err) {
    fx *f = arg;
    int rc = store_tenant_create(tx, "acme", "Acme", &f->tenant, err);
    if (rc) return rc;
    return STORE_OK;
}

/* 20 leads on 2026-11-01 (created at 10:00 + i minutes), source "s" + i % 2,
 * the odd ones won, the ones with i % 4 == 0 lost; lead i first touched
 * i * 7 minutes after creation, the last four never */
static int leads_fn(store_tx *tx, void *arg, store_err *err) {
    fx *f = arg;
    int64_t base = 1793527200000LL; /* 2026-11-01 10:00 UTC */
    for (int i = 0; i < 20; i++) {
        int64_t c = base + i * 60000LL;
        const char *status = i % 2 ? "won" : i % 4 == 0 ? "lost" : "open";
        char src[8];
        snprintf(src, sizeof src, "s%d", i % 2);
        store_val p[] = {SV_I(f->tenant), SV_S(src), SV_S(status), SV_I(c)};
        store_rows *r = NULL;
        int rc = store_query(tx, "INSERT INTO leads (tenant_id, source, status, created_at, updated_at) "
                                 "VALUES ($1, $2, $3, $4, $4) RETURNING id",
                             p, 4, &r, err);
        if (rc) return rc;
        int64_t id = store_rows_int(r, 0, 0);
        store_rows_free(r);
        if (i >= 16) continue;
        store_val a[] = {SV_I(f->tenant), SV_I(id), SV_I(c + i * 7 * 60000LL)};
        if ((rc = store_query(tx, "INSERT INTO activities (tenant_id, lead_id, channel, direction, occurred_at, "
                                  "created_at) VALUES ($1, $2, 'sms', 'outbound', $3, $3)",
                              a, 3, NULL, err)))
            return rc;
    }
    return STORE_OK;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) { return remove(p); }

typedef struct run_arg {
    reports_filter f;
    json_t *out;
} run_arg;

static int run_fn(store_tx *tx, void *arg, store_err *err) {
    run_arg *a = arg;
    return reports_pipeline(tx, &a->f, &a->out, err);
}

static void test_pipeline_store(void **state) {
    fx f = {0};
    snprintf(f.dir, sizeof f.dir, "/tmp/ehub-reports-test-XXXXXX");
    assert_non_null(mkdtemp(f.dir));
    snprintf(f.url, sizeof f.url, "sqlite:%s/t.db", f.dir);
    store_opts o = {.pool_size = 2};
    store_err err = {0};
    assert_non_null(f.st = store_open(f.url, &o, &err));
    assert_int_equal(store_write(f.st, 0, seed_fn, &f, &err), 0);
    assert_int_equal(store_write(f.st, f.tenant, leads_fn, &f, &err), 0);

    run_arg a = {.f = {.agent = 0, .source = NULL}};
    const char *why;
    assert_int_equal(reports_range_parse("2026-10-31", "2026-11-02", 0, &a.f.range, &why), 0);
    assert_int_equal(store_read(f.st, f.tenant, run_fn, &a, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(a.out, "leads")), 20);
    json_t *ov = json_object_get(json_object_get(a.out, "speed_to_lead"), "overall");
    /* delays 0, 7, ..., 105 min over 16 touched: p50 rank 8 → 49 min, p90 rank 15 → 98 min */
    assert_int_equal(json_integer_value(json_object_get(ov, "touched")), 16);
    assert_int_equal(json_integer_value(json_object_get(ov, "p50_ms")), 49 * 60000);
    assert_int_equal(json_integer_value(json_object_get(ov, "p90_ms")), 98 * 60000);
    int64_t want[REPORTS_BUCKETS] = {1, 0, 2, 6, 7, 0, 4}; /* 0 | - | 7,14 | 21..56 | 63..105 | - | 4 never */
    json_t *b = json_object_get(ov, "buckets");
    for (int i = 0; i < REPORTS_BUCKETS; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(b, (size_t)i), "leads")), want[i]);
    json_t *daily = json_object_get(a.out, "daily");
    assert_int_equal(json_array_size(daily), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(daily, 1), "created")), 20);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(daily, 1), "touched_5m")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(daily, 1), "date")), "2026-11-01");
    /* win rate: 10 won, 5 lost */
    assert_true(json_real_value(json_object_get(a.out, "win_rate")) > 0.666 &&
                json_real_value(json_object_get(a.out, "win_rate")) < 0.667);
    char *full = json_dumps(a.out, JSON_COMPACT);
    json_decref(a.out);

    /* an empty range: every group empty, percentiles null, the days still there */
    reports_range keep = a.f.range;
    assert_int_equal(reports_range_parse("2020-01-01", "2020-01-07", 0, &a.f.range, &why), 0);
    a.out = NULL;
    assert_int_equal(store_read(f.st, f.tenant, run_fn, &a, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(a.out, "leads")), 0);
    ov = json_object_get(json_object_get(a.out, "speed_to_lead"), "overall");
    assert_true(json_is_null(json_object_get(ov, "p50_ms")));
    assert_int_equal(json_array_size(json_object_get(json_object_get(a.out, "speed_to_lead"), "by_agent")), 0);
    assert_int_equal(json_array_size(json_object_get(a.out, "by_stage")), 0);
    assert_int_equal(json_array_size(json_object_get(a.out, "daily")), 7);
    assert_true(json_is_null(json_object_get(a.out, "win_rate")));
    json_decref(a.out);
    a.f.range = keep;

    /* a source filter, then every allocation failure: an error, or the same answer */
    a.f.source = "s1";
    a.out = NULL;
    assert_int_equal(store_read(f.st, f.tenant, run_fn, &a, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(a.out, "leads")), 10);
    json_decref(a.out);
    a.f.source = NULL;
    int failures = 0;
    for (long k = 0; k < 4000; k++) {
        a.out = NULL;
        eh_alloc_fail_after(k);
        int rc = store_read(f.st, f.tenant, run_fn, &a, &err);
        eh_alloc_fail_after(-1);
        if (rc) {
            failures++;
            assert_null(a.out);
            continue;
        }
        char *s = json_dumps(a.out, JSON_COMPACT);
        assert_string_equal(s, full);
        free(s);
        json_decref(a.out);
        break;
    }
    assert_true(failures > 0);
    free(full);
    store_close(f.st);
    nftw(f.dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_buckets_ranks_dates),
        cmocka_unit_test(test_pipeline_store),
    };
    return cmocka_run_group_tests_name("reports", tests, NULL, NULL);
}
