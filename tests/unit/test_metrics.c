/* metrics: exact Prometheus exposition, escaping, number formatting,
 * concurrent updates, the series cap, gauge functions, /proc figures,
 * allocation failure and name validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/metrics.h"

#define DROPPED_HEAD                                                                     \
    "# HELP ehub_metrics_dropped_series_total Metric updates dropped because a family " \
    "reached its series cap or memory ran out.\n"                                        \
    "# TYPE ehub_metrics_dropped_series_total counter\n"

/* Renders m into a fresh string the caller frees with eh_free. */
static char *render(metrics *m) {
    buf b;
    buf_init(&b, 16 << 20);
    assert_int_equal(metrics_render(m, &b), BUF_OK);
    return buf_detach(&b, NULL);
}

/* The value on the line that starts with `series ` (NAN if none). */
static double sample(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
    }
    return NAN;
}

static int count_prefix(const char *text, const char *prefix) {
    int c = 0;
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, n) == 0) c++;
    return c;
}

static void test_exposition_exact(void **st) {
    metrics *m = metrics_new();
    assert_non_null(m);
    metric *c = metrics_counter(m, "http_requests_total", "Requests by \"route\" and status.",
                                "route,status");
    metric *g = metrics_gauge(m, "queue_depth", "Jobs waiting.\nSecond line, one \\ backslash.",
                              NULL);
    static const double bounds[] = {0.005, 0.1, 1};
    metric *h = metrics_histogram(m, "db_seconds", "Storage latency.", "op", bounds, 3);
    metric *idle = metrics_histogram(m, "job_seconds", NULL, NULL, bounds, 3);
    assert_non_null(c);
    assert_non_null(g);
    assert_non_null(h);
    assert_non_null(idle);

    metric_add(c, (const char *[]){"/leads", "200"}, 3);
    metric_add(c, (const char *[]){"/leads", "404"}, 1);
    metric_add(c, (const char *[]){"/leads", "200"}, 2);
    metric_add(c, (const char *[]){"a\"b\\c\nd", "500"}, 1);
    metric_set(g, NULL, 7);
    metric_add(g, NULL, -2.5);
    /* 0.1 lands in le="0.1": bounds are inclusive. */
    metric_observe(h, (const char *[]){"get"}, 0.00390625);
    metric_observe(h, (const char *[]){"get"}, 0.1);
    metric_observe(h, (const char *[]){"get"}, 0.5);
    metric_observe(h, (const char *[]){"get"}, 4);

    char *out = render(m);
    assert_string_equal(out,
        DROPPED_HEAD
        "ehub_metrics_dropped_series_total 0\n"
        "# HELP http_requests_total Requests by \"route\" and status.\n"
        "# TYPE http_requests_total counter\n"
        "http_requests_total{route=\"/leads\",status=\"200\"} 5\n"
        "http_requests_total{route=\"/leads\",status=\"404\"} 1\n"
        "http_requests_total{route=\"a\\\"b\\\\c\\nd\",status=\"500\"} 1\n"
        "# HELP queue_depth Jobs waiting.\\nSecond line, one \\\\ backslash.\n"
        "# TYPE queue_depth gauge\n"
        "queue_depth 4.5\n"
        "# HELP db_seconds Storage latency.\n"
        "# TYPE db_seconds histogram\n"
        "db_seconds_bucket{op=\"get\",le=\"0.005\"} 1\n"
        "db_seconds_bucket{op=\"get\",le=\"0.1\"} 2\n"
        "db_seconds_bucket{op=\"get\",le=\"1\"} 3\n"
        "db_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n"
        "db_seconds_sum{op=\"get\"} 4.60390625\n"
        "db_seconds_count{op=\"get\"} 4\n"
        "# TYPE job_seconds histogram\n"
        "job_seconds_bucket{le=\"0.005\"} 0\n"
        "job_seconds_bucket{le=\"0.1\"} 0\n"
        "job_seconds_bucket{le=\"1\"} 0\n"
        "job_seconds_bucket{le=\"+Inf\"} 0\n"
        "job_seconds_sum 0\n"
        "job_seconds_count 0\n");
    eh_free(out);
    metrics_free(m);
}

static void test_number_format(void **st) {
    metrics *m = metrics_new();
    metric *g = metrics_gauge(m, "v", NULL, "k");
    const double vals[] = {1e-05, 0.1, 1e20, 123456789, -0.5, 1.0 / 3, 9007199254740992.0,
                           NAN, INFINITY, -INFINITY, 0};
    const char *want[] = {"1e-05", "0.1", "1e+20", "123456789", "-0.5", "0.3333333333333333",
                          "9007199254740992", "NaN", "+Inf", "-Inf", "0"};
    char key[8];
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        snprintf(key, sizeof key, "%zu", i);
        metric_set(g, (const char *[]){key}, vals[i]);
    }
    char *out = render(m);
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char line[80];
        snprintf(line, sizeof line, "v{k=\"%zu\"} %s\n", i, want[i]);
        assert_non_null(strstr(out, line));
    }
    eh_free(out);
    metrics_free(m);
}

static void test_label_values(void **st) {
    metrics *m = metrics_new();
    metric *c = metrics_counter(m, "c_total", NULL, "k");
    /* 1 + 100 two-byte characters: the cut at 128 bytes would split one. */
    char longv[256] = "x";
    for (int i = 0; i < 100; i++) strcat(longv, "\xc3\xa9");
    char longv2[256];
    strcpy(longv2, longv);
    strcat(longv2, "-differs-past-the-cut");
    metric_add(c, (const char *[]){longv}, 1);
    metric_add(c, (const char *[]){longv2}, 1);
    metric_add(c, (const char *[]){"bad \xff utf8"}, 1);
    metric_add(c, NULL, 1);                  /* every value "" */
    metric_add(c, (const char *[]){NULL}, 1); /* same series */
    char *out = render(m);
    char want[300];
    snprintf(want, sizeof want, "c_total{k=\"%.127s\"} 2\n", longv);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "c_total{k=\"bad \xef\xbf\xbd utf8\"} 1\n"));
    assert_non_null(strstr(out, "c_total{k=\"\"} 2\n"));
    assert_int_equal(count_prefix(out, "c_total{"), 3);
    eh_free(out);
    metrics_free(m);
}

static void test_ignored_updates(void **st) {
    metrics *m = metrics_new();
    metric *c = metrics_counter(m, "c_total", NULL, NULL);
    metric *g = metrics_gauge(m, "g", NULL, NULL);
    static const double b[] = {1};
    metric *h = metrics_histogram(m, "h", NULL, NULL, b, 1);
    metric_add(c, NULL, 2);
    metric_add(c, NULL, -1);  /* counters never go down */
    metric_add(c, NULL, NAN);
    metric_set(c, NULL, 100); /* not a gauge */
    metric_observe(g, NULL, 1);
    metric_add(h, NULL, 1);
    metric_observe(h, NULL, NAN);
    metric_add(NULL, NULL, 1);
    metric_set(NULL, NULL, 1);
    metric_observe(NULL, NULL, 1);
    char *out = render(m);
    assert_true(sample(out, "c_total") == 2);
    assert_true(sample(out, "g") == 0);
    assert_true(sample(out, "h_count") == 0);
    assert_true(sample(out, "h_sum") == 0);
    eh_free(out);
    metrics_free(m);
}

struct worker {
    metric *c, *h, *own;
    const char *name;
};

enum { THREADS = 8, PER_THREAD = 100000 };

static void *work(void *arg) {
    struct worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        metric_add(w->c, (const char *[]){"shared"}, 1);
        metric_add(w->own, (const char *[]){w->name}, 1);
        metric_observe(w->h, NULL, (i & 1) ? 0.5 : 2);
    }
    return NULL;
}

struct reader {
    metrics *m;
    atomic_int stop; /* set once the workers are joined */
    int renders;
};

static void *read_loop(void *arg) {
    struct reader *r = arg;
    while (!atomic_load(&r->stop)) {
        buf b;
        buf_init(&b, 16 << 20);
        if (metrics_render(r->m, &b) == BUF_OK) r->renders++;
        buf_free(&b);
    }
    return NULL;
}

static void test_concurrent(void **st) {
    metrics *m = metrics_new();
    static const double b[] = {1};
    struct worker w[THREADS];
    metric *c = metrics_counter(m, "c_total", NULL, "k");
    metric *own = metrics_counter(m, "own_total", NULL, "thread");
    metric *h = metrics_histogram(m, "h", NULL, NULL, b, 1);
    static const char *names[THREADS] = {"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"};
    pthread_t t[THREADS], rt;
    struct reader r = {.m = m};
    assert_int_equal(pthread_create(&rt, NULL, read_loop, &r), 0);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){c, h, own, names[i]};
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    atomic_store(&r.stop, 1);
    pthread_join(rt, NULL);

    char *out = render(m);
    assert_true(sample(out, "c_total{k=\"shared\"}") == THREADS * PER_THREAD);
    for (int i = 0; i < THREADS; i++) {
        char s[64];
        snprintf(s, sizeof s, "own_total{thread=\"%s\"}", names[i]);
        assert_true(sample(out, s) == PER_THREAD);
    }
    assert_true(sample(out, "h_count") == THREADS * PER_THREAD);
    assert_true(sample(out, "h_bucket{le=\"1\"}") == THREADS * PER_THREAD / 2);
    assert_true(sample(out, "h_sum") == THREADS * PER_THREAD / 2 * 2.5);
    assert_true(r.renders > 0);
    eh_free(out);
    metrics_free(m);
}

static void test_series_cap(void **st) {
    metrics *m = metrics_new();
    metric *c = metrics_counter(m, "cap_total", NULL, "id");
    char id[16];
    for (int i = 0; i < METRICS_MAX_SERIES + 7; i++) {
        snprintf(id, sizeof id, "%d", i);
        metric_add(c, (const char *[]){id}, 1);
    }
    metric_add(c, (const char *[]){"0"}, 1); /* existing series still update */
    char *out = render(m);
    assert_int_equal(count_prefix(out, "cap_total{"), METRICS_MAX_SERIES);
    assert_true(sample(out, "ehub_metrics_dropped_series_total") == 7);
    assert_true(sample(out, "cap_total{id=\"0\"}") == 2);
    assert_true(sample(out, "cap_total{id=\"1999\"}") == 1);
    assert_true(isnan(sample(out, "cap_total{id=\"2000\"}")));
    eh_free(out);
    metrics_free(m);
}

static double count_calls(void *ud) {
    int *n = ud;
    return ++*n;
}

static void test_gauge_fn(void **st) {
    metrics *m = metrics_new();
    int calls = 0;
    assert_int_equal(metrics_gauge_fn(m, "calls", "Renders so far.", count_calls, &calls), 0);
    assert_int_equal(calls, 0); /* not evaluated until render */
    assert_int_equal(metrics_gauge_fn(m, "calls", NULL, count_calls, &calls), -1);
    assert_int_equal(metrics_gauge_fn(m, "no_fn", NULL, NULL, NULL), -1);
    assert_int_equal(metrics_gauge_fn(m, "bad-name", NULL, count_calls, &calls), -1);
    char *out = render(m);
    assert_non_null(strstr(out, "# HELP calls Renders so far.\n# TYPE calls gauge\ncalls 1\n"));
    eh_free(out);
    out = render(m);
    assert_true(sample(out, "calls") == 2);
    eh_free(out);
    metrics_free(m);
}

static void test_process(void **st) {
    double rss = metrics_process_rss_bytes(NULL);
    double fds = metrics_process_open_fds(NULL);
    assert_true(rss > 0);
    assert_true(fds > 0);
    assert_true(fmod(rss, (double)sysconf(_SC_PAGESIZE)) == 0);
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    assert_true(metrics_process_open_fds(NULL) == fds + 1);
    close(fd);
    assert_true(metrics_process_open_fds(NULL) == fds);

    metrics *m = metrics_new();
    assert_int_equal(metrics_gauge_fn(m, "process_resident_memory_bytes", "RSS.",
                                      metrics_process_rss_bytes, NULL), 0);
    assert_int_equal(metrics_gauge_fn(m, "process_open_fds", "Open fds.",
                                      metrics_process_open_fds, NULL), 0);
    char *out = render(m);
    assert_true(sample(out, "process_resident_memory_bytes") > 0);
    assert_true(sample(out, "process_open_fds") > 0);
    eh_free(out);
    metrics_free(m);
}

/* Builds a small registry and renders it; returns the text (eh_free) or
 * NULL if any step failed. Must never crash, whatever fails. */
static char *scenario(void) {
    static const double b[] = {0.1, 1};
    metrics *m = metrics_new();
    metric *c = metrics_counter(m, "c_total", "Help.", "a,b");
    metric *h = metrics_histogram(m, "h", "Help.", "op", b, 2);
    metric *g = metrics_gauge(m, "g", NULL, NULL);
    int fn = metrics_gauge_fn(m, "fds", NULL, metrics_process_rss_bytes, NULL);
    for (int i = 0; i < 20; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        metric_add(c, (const char *[]){v, "x"}, 1);
        metric_observe(h, (const char *[]){v}, i / 10.0);
    }
    metric_set(g, NULL, 3);
    char *out = NULL;
    buf o;
    buf_init(&o, 1 << 20);
    int rc = metrics_render(m, &o);
    if (m && c && h && g && fn == 0 && rc == BUF_OK &&
        sample(o.p, "ehub_metrics_dropped_series_total") == 0) {
        eh_alloc_fail_after(-1);
        out = buf_detach(&o, NULL);
    }
    if (!m) assert_null(o.p);
    buf_free(&o);
    metrics_free(m);
    return out;
}

static void test_alloc_failure(void **st) {
    char *out = NULL;
    int n;
    for (n = 0; n < 2000 && !out; n++) {
        eh_alloc_fail_after(n);
        out = scenario();
        eh_alloc_fail_after(-1);
    }
    assert_non_null(out);
    assert_true(n > 40); /* the loop really did fail many distinct allocations */
    eh_free(out);
}

static void test_bad_names(void **st) {
    metrics *m = metrics_new();
    static const double b[] = {0.1, 1};
    const char *bad[] = {"", "1abc", "a-b", "a b", "caf\xc3\xa9", "a.b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(metrics_counter(m, bad[i], NULL, NULL));
        assert_null(metrics_gauge(m, bad[i], NULL, NULL));
        assert_null(metrics_histogram(m, bad[i], NULL, NULL, b, 2));
    }
    assert_null(metrics_counter(m, NULL, NULL, NULL));
    assert_null(metrics_counter(NULL, "ok", NULL, NULL));
    const char *bad_labels[] = {"a,", ",a", "a,,b", "1a", "a:b", "__a", "a b",
                                "a,a", "a,b,c,d,e", "a-b"};
    for (size_t i = 0; i < sizeof bad_labels / sizeof bad_labels[0]; i++)
        assert_null(metrics_counter(m, "x_total", NULL, bad_labels[i]));
    assert_null(metrics_histogram(m, "h", NULL, "le", b, 2));
    assert_null(metrics_histogram(m, "h", NULL, "op,le", b, 2));
    static const double unsorted[] = {1, 0.1}, dup[] = {1, 1}, inf[] = {1, INFINITY},
                        nan[] = {NAN};
    assert_null(metrics_histogram(m, "h", NULL, NULL, unsorted, 2));
    assert_null(metrics_histogram(m, "h", NULL, NULL, dup, 2));
    assert_null(metrics_histogram(m, "h", NULL, NULL, inf, 2));
    assert_null(metrics_histogram(m, "h", NULL, NULL, nan, 1));
    assert_null(metrics_histogram(m, "h", NULL, NULL, b, -1));
    assert_null(metrics_histogram(m, "h", NULL, NULL, NULL, 2));

    /* good ones, including the edges of the charset */
    assert_non_null(metrics_counter(m, "x_total", NULL, "a,b,c,d"));
    assert_non_null(metrics_gauge(m, "ns:sub_x9", NULL, "_a,B9"));
    assert_non_null(metrics_histogram(m, "h", NULL, "op", b, 2));
    assert_non_null(metrics_gauge(m, "le_gauge", NULL, "le")); /* le is fine off histograms */
    assert_non_null(metrics_histogram(m, "nobuckets", NULL, "", NULL, 0));

    /* clashes with names already exposed */
    assert_null(metrics_gauge(m, "x_total", NULL, NULL));
    assert_null(metrics_counter(m, "h_count", NULL, NULL));
    assert_null(metrics_gauge(m, "h_bucket", NULL, NULL));
    assert_non_null(metrics_histogram(m, "x", NULL, NULL, b, 2)); /* x_total is not x_count */
    assert_non_null(metrics_gauge(m, "y_sum", NULL, NULL));
    assert_null(metrics_histogram(m, "y", NULL, NULL, b, 2));
    assert_null(metrics_counter(m, "ehub_metrics_dropped_series_total", NULL, NULL));

    char *out = render(m);
    assert_non_null(strstr(out, "# TYPE nobuckets histogram\n"));
    assert_non_null(strstr(out, "nobuckets_bucket{le=\"+Inf\"} 0\n"));
    eh_free(out);
    metrics_free(m);
    metrics_free(NULL);
}

static void test_render_error_leaves_buf(void **st) {
    metrics *m = metrics_new();
    metric *c = metrics_counter(m, "c_total", NULL, "k");
    metric_add(c, (const char *[]){"v"}, 1);
    buf b;
    buf_init(&b, 64);
    assert_int_equal(buf_puts(&b, "keep"), BUF_OK);
    assert_int_equal(metrics_render(m, &b), BUF_TOO_BIG);
    assert_string_equal(b.p, "keep");
    assert_int_equal(b.len, 4);
    buf_free(&b);
    metrics_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exposition_exact),  cmocka_unit_test(test_number_format),
        cmocka_unit_test(test_label_values),      cmocka_unit_test(test_ignored_updates),
        cmocka_unit_test(test_concurrent),        cmocka_unit_test(test_series_cap),
        cmocka_unit_test(test_gauge_fn),          cmocka_unit_test(test_process),
        cmocka_unit_test(test_alloc_failure),     cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_render_error_leaves_buf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
