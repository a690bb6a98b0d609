/* score: free-text timelines into buckets, and score_lead against a real
 * SQLite store (prior scoring, history only when the score moves, a
 * missing lead). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "score/score.h"

static void test_timeline_buckets(void **state) {
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"ASAP", "0-3m"},        {"ready now", "0-3m"},     {"Immediately", "0-3m"},   {"1-2 months", "0-3m"},
        {"0-3 months", "0-3m"},  {"30 days", "0-3m"},       {"6 weeks", "0-3m"},       {"3-6 months", "3-6m"},
        {"within 6 months", "3-6m"}, {"6-12 months", "6-12m"}, {"1 year", "6-12m"},    {"12+ months", "6-12m"},
        {"2 years", "12m+"},     {"18 months", "12m+"},     {"just looking", NULL},    {"", NULL},
        {"not sure", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = score_timeline_bucket(cases[i].in);
        if (!cases[i].want) {
            if (got) fail_msg("%s: want NULL, got %s", cases[i].in, got);
        } else if (!got || strcmp(got, cases[i].want)) {
            fail_msg("%s: want %s, got %s", cases[i].in, cases[i].want, got ? got : "NULL");
        }
    }
    assert_null(score_timeline_bucket(NULL));
}

typedef struct fx {
    char dir[64];
    store *st;
    int64_t tenant, lead;
} fx;

static int mk_tenant(store_tx *tx, void *arg, store_err *err) {
    return store_tenant_create(tx, "t1", "T1", &((fx *)arg)->tenant, err);
}

static int mk_lead(store_tx *tx, void *arg, store_err *err) {
    fx *f = arg;
    store_val p[] = {SV_I(f->tenant)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "INSERT INTO leads (tenant_id, email, preapproved, timeline, created_at, updated_at) "
                         "VALUES ($1, 'a@example.com', 1, 'asap', 0, 0) RETURNING id",
                         p, 1, &r, err);
    if (!rc) f->lead = store_rows_int(r, 0, 0);
    store_rows_free(r);
    return rc;
}

typedef struct call {
    int64_t lead, now;
} call;

static int do_score(store_tx *tx, void *arg, store_err *err) {
    call *c = arg;
    return score_lead(tx, c->lead, c->now, err);
}

typedef struct count_q {
    const char *sql;
    int64_t n;
    double score;
} count_q;

static int count_tx(store_tx *tx, void *arg, store_err *err) {
    count_q *q = arg;
    store_val p[] = {SV_I(store_tx_tenant(tx))};
    store_rows *r = NULL;
    int rc = store_query(tx, q->sql, p, 1, &r, err);
    if (!rc) {
        q->n = store_rows_int(r, 0, 0);
        q->score = store_rows_real(r, 0, 1);
    }
    store_rows_free(r);
    return rc;
}

static count_q scores(fx *f) {
    count_q q = {"SELECT (SELECT COUNT(*) FROM lead_scores WHERE tenant_id = $1), "
                 "(SELECT score FROM leads WHERE tenant_id = $1)", 0, 0};
    assert_int_equal(store_read(f->st, f->tenant, count_tx, &q, NULL), 0);
    return q;
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ehub-score-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/t.db", f->dir);
    store_err err = {0};
    f->st = store_open(url, NULL, &err);
    if (!f->st) return -1;
    if (store_write(f->st, 0, mk_tenant, f, &err) || store_write(f->st, f->tenant, mk_lead, f, &err)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    store_close(f->st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd)) return -1;
    free(f);
    return 0;
}

static void test_score_lead_prior(void **state) {
    fx *f = *state;
    store_err err = {0};
    call c = {f->lead, 1000};
    /* no context: the prior scores. 10 + 20 pre-approved + 15 timeline +
     * 2 preferences (timeline) + 2 email = 49 */
    assert_int_equal(store_write(f->st, f->tenant, do_score, &c, &err), 0);
    count_q q = scores(f);
    assert_int_equal(q.n, 1);
    assert_true(q.score > 0.489 && q.score < 0.491);
    /* nothing moved: no new history row */
    assert_int_equal(store_write(f->st, f->tenant, do_score, &c, &err), 0);
    assert_int_equal(scores(f).n, 1);
    c.lead = f->lead + 100;
    assert_int_equal(store_write(f->st, f->tenant, do_score, &c, &err), STORE_NOTFOUND);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeline_buckets),
        cmocka_unit_test_setup_teardown(test_score_lead_prior, setup, teardown),
    };
    return cmocka_run_group_tests_name("score", tests, NULL, NULL);
}
