/* store: the same suite against SQLite (a temporary directory, always) and
 * PostgreSQL (when EHUB_TEST_PG_URL is set; each test gets a fresh schema
 * that is dropped afterwards, so reruns and parallel runs do not collide).
 * Worker threads never assert (cmocka's longjmp is per thread): they record
 * results and the test thread checks them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "store/migrations.h"
#include "store/store.h"

typedef struct fx {
    store_kind kind;
    const char *base;  /* PG: EHUB_TEST_PG_URL */
    char dir[256];     /* SQLite: temporary directory */
    char schema[64];   /* PG: this test's schema */
    char url[2048];
} fx;

/* ---- helpers ---- */

static int nmigrations(store_kind k) {
    int n = 0;
    for (const store_migration *m = k == STORE_SQLITE ? sqlite_migrations : postgres_migrations;
         m->sql; m++)
        n++;
    return n;
}

static int max_migration(store_kind k) {
    int v = 0;
    for (const store_migration *m = k == STORE_SQLITE ? sqlite_migrations : postgres_migrations;
         m->sql; m++)
        if (m->version > v) v = m->version;
    return v;
}

typedef struct sql_job {
    const char *sql;
} sql_job;

static int run_sql_fn(store_tx *tx, void *arg, store_err *err) {
    return store_query(tx, ((sql_job *)arg)->sql, NULL, 0, NULL, err);
}

static int exec_sql(store *s, const char *sql, store_err *err) {
    sql_job j = {sql};
    return store_write(s, 0, run_sql_fn, &j, err);
}

/* A URL whose connections use `schema` for unqualified names. */
static void pg_schema_url(char *out, size_t n, const char *base, const char *schema) {
    snprintf(out, n, "%s%coptions=-csearch_path%%3D%s", base, strchr(base, '?') ? '&' : '?',
             schema);
}

static int pg_admin(const char *base, const char *sql) {
    store_opts o = {.no_migrate = 1, .pool_size = 1};
    store_err err;
    store *s = store_open(base, &o, &err);
    if (!s) {
        fprintf(stderr, "pg admin: %s\n", err.msg);
        return -1;
    }
    int rc = exec_sql(s, sql, &err);
    if (rc) fprintf(stderr, "pg admin: %s\n", err.msg);
    store_close(s);
    return rc;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    return remove(p);
}

static int setup(void **state) {
    fx *f = *state;
    if (f->kind == STORE_SQLITE) {
        snprintf(f->dir, sizeof f->dir, "/tmp/ehub-store-test-XXXXXX");
        if (!mkdtemp(f->dir)) return -1;
        /* A subdirectory that does not exist yet: store_open creates it. */
        snprintf(f->url, sizeof f->url, "sqlite:%s/data/test.db", f->dir);
        return 0;
    }
    static atomic_int counter;
    snprintf(f->schema, sizeof f->schema, "ehub_store_test_%d_%d", (int)getpid(),
             atomic_fetch_add(&counter, 1));
    char sql[256];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", f->schema);
    if (pg_admin(f->base, sql)) return -1;
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", f->schema);
    if (pg_admin(f->base, sql)) return -1;
    pg_schema_url(f->url, sizeof f->url, f->base, f->schema);
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    if (f->kind == STORE_SQLITE) return nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    char sql[256];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", f->schema);
    return pg_admin(f->base, sql);
}

static store *open_ok(fx *f, const store_opts *o) {
    store_err err = {0};
    store *s = store_open(f->url, o, &err);
    if (!s) fprintf(stderr, "store_open: %d %s\n", err.code, err.msg);
    assert_non_null(s);
    return s;
}

typedef struct tenant_job {
    const char *slug;
    int64_t id;
} tenant_job;

static int create_tenant_fn(store_tx *tx, void *arg, store_err *err) {
    tenant_job *j = arg;
    return store_tenant_create(tx, j->slug, "Test Tenant", &j->id, err);
}

static int64_t make_tenant(store *s, const char *slug) {
    tenant_job j = {slug, 0};
    store_err err;
    int rc = store_write(s, 0, create_tenant_fn, &j, &err);
    if (rc) fprintf(stderr, "create tenant: %s\n", err.msg);
    assert_int_equal(rc, STORE_OK);
    assert_true(j.id > 0);
    return j.id;
}

typedef struct append_job {
    const char *type;
    const char *payload;
    int count;
    int64_t seq;
    int fail_after;  /* return 1 after appending */
} append_job;

static int append_fn(store_tx *tx, void *arg, store_err *err) {
    append_job *j = arg;
    for (int i = 0; i < j->count; i++) {
        int rc = store_event_append(tx, j->type, j->payload, &j->seq, err);
        if (rc) return rc;
    }
    return j->fail_after;
}

static int last_seq_fn(store_tx *tx, void *arg, store_err *err) {
    return store_events_last_seq(tx, arg, err);
}

static int64_t last_seq(store *s, int64_t tenant) {
    int64_t seq = -1;
    store_err err;
    assert_int_equal(store_read(s, tenant, last_seq_fn, &seq, &err), STORE_OK);
    return seq;
}

typedef struct page_job {
    int64_t after;
    int limit;
    store_event_list out;
} page_job;

static int page_fn(store_tx *tx, void *arg, store_err *err) {
    page_job *j = arg;
    return store_events_after(tx, j->after, j->limit, &j->out, err);
}

/* Every event of a tenant, checked to be seq 1..n without gaps. */
static int64_t check_gap_free(store *s, int64_t tenant) {
    int64_t after = 0;
    for (;;) {
        page_job j = {after, 1000, {0}};
        store_err err;
        assert_int_equal(store_read(s, tenant, page_fn, &j, &err), STORE_OK);
        for (int i = 0; i < j.out.n; i++) {
            assert_int_equal(j.out.ev[i].seq, after + 1);
            assert_int_equal(j.out.ev[i].tenant, tenant);
            after = j.out.ev[i].seq;
        }
        int n = j.out.n;
        store_event_list_free(&j.out);
        if (n == 0) return after;
    }
}

/* on_commit collector */
typedef struct captured {
    pthread_mutex_t mu;
    int calls;
    int n;
    int cap;
    store_event *ev;
    int ordered;  /* seq increased by one per tenant across calls */
    int64_t last[16];
} captured;

static void on_commit_cb(void *ud, const store_event *ev, int n) {
    captured *c = ud;
    pthread_mutex_lock(&c->mu);
    c->calls++;
    for (int i = 0; i < n; i++) {
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 64;
            c->ev = realloc(c->ev, (size_t)c->cap * sizeof *c->ev);
        }
        store_event e = ev[i];
        e.type = strdup(e.type);
        e.payload = strdup(e.payload);
        c->ev[c->n++] = e;
        if (e.tenant > 0 && e.tenant < 16) {
            if (e.seq != c->last[e.tenant] + 1) c->ordered = 0;
            c->last[e.tenant] = e.seq;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

static void captured_init(captured *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->ordered = 1;
}

static void captured_free(captured *c) {
    for (int i = 0; i < c->n; i++) {
        free((char *)c->ev[i].type);
        free((char *)c->ev[i].payload);
    }
    free(c->ev);
    pthread_mutex_destroy(&c->mu);
}

/* ---- open, migrate, version ---- */

static void test_open_migrate(void **state) {
    fx *f = *state;
    store_err err;
    int applied = -1, ver = -1, known = -1;
    store_opts nom = {.no_migrate = 1};
    store *s = open_ok(f, &nom);
    assert_int_equal(store_get_kind(s), f->kind);
    assert_string_equal(store_kind_name(store_get_kind(s)),
                        f->kind == STORE_SQLITE ? "sqlite" : "postgres");
    assert_int_equal(store_ping(s, &err), STORE_OK);
    assert_int_equal(store_schema_version(s, &ver, &known, &err), STORE_OK);
    assert_int_equal(ver, 0);
    assert_int_equal(known, max_migration(f->kind));
    assert_int_equal(store_migrate(s, &applied, &err), STORE_OK);
    assert_int_equal(applied, nmigrations(f->kind));
    assert_int_equal(store_migrate(s, &applied, &err), STORE_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(store_schema_version(s, &ver, &known, &err), STORE_OK);
    assert_int_equal(ver, known);
    store_close(s);

    /* Reopening (migrating on open) finds nothing to do. */
    s = open_ok(f, NULL);
    assert_int_equal(store_migrate(s, &applied, &err), STORE_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(store_schema_version(s, &ver, NULL, &err), STORE_OK);
    assert_int_equal(ver, max_migration(f->kind));
    store_close(s);
    store_close(NULL);
}

typedef struct open_thread {
    const char *url;
    int no_migrate;
    pthread_barrier_t *bar;
    int rc, applied;
} open_thread;

static void *open_thread_main(void *arg) {
    open_thread *t = arg;
    store_opts o = {.no_migrate = t->no_migrate, .pool_size = 2};
    store_err err;
    pthread_barrier_wait(t->bar);
    store *s = store_open(t->url, &o, &err);
    if (!s) {
        t->rc = err.code;
        fprintf(stderr, "# store_open: %s\n", err.msg);
        return NULL;
    }
    t->rc = t->no_migrate ? store_migrate(s, &t->applied, &err) : 0;
    if (t->rc) fprintf(stderr, "# store_migrate: %s\n", err.msg);
    store_close(s);
    return NULL;
}

/* Two nodes starting at once: one applies everything, the other waits on the
 * lock (advisory lock on PG, the write lock on SQLite) and applies nothing. */
static void test_concurrent_migrate(void **state) {
    fx *f = *state;
    pthread_barrier_t bar;
    for (int round = 0; round < 2; round++) {
        pthread_barrier_init(&bar, NULL, 2);
        open_thread t[2] = {{f->url, round == 0, &bar, -1, 0}, {f->url, round == 0, &bar, -1, 0}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, open_thread_main, &t[i]);
        for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
        pthread_barrier_destroy(&bar);
        assert_int_equal(t[0].rc, STORE_OK);
        assert_int_equal(t[1].rc, STORE_OK);
        assert_int_equal(t[0].applied + t[1].applied, round == 0 ? nmigrations(f->kind) : 0);
    }
}

/* ---- tenants ---- */

typedef struct tenants_ctx {
    int64_t acme, beta, found;
    int rc_missing, rc_dup, rc_bad, rc_find_bad;
} tenants_ctx;

static int tenants_fn(store_tx *tx, void *arg, store_err *err) {
    tenants_ctx *c = arg;
    int rc = store_tenant_create(tx, "acme", "Acme Realty", &c->acme, err);
    if (rc) return rc;
    if ((rc = store_tenant_create(tx, "beta_2-x", "Beta", &c->beta, err))) return rc;
    if ((rc = store_tenant_find(tx, "acme", &c->found, err))) return rc;
    c->rc_missing = store_tenant_find(tx, "nope", NULL, err);
    c->rc_bad = store_tenant_create(tx, "Bad Slug", "x", NULL, err);
    c->rc_find_bad = store_tenant_find(tx, "Bad Slug", NULL, err);
    return 0;
}

static int dup_fn(store_tx *tx, void *arg, store_err *err) {
    tenants_ctx *c = arg;
    c->rc_dup = store_tenant_create(tx, "acme", "Again", NULL, err);
    return c->rc_dup;
}

static int find_fn(store_tx *tx, void *arg, store_err *err) {
    tenant_job *j = arg;
    return store_tenant_find(tx, j->slug, &j->id, err);
}

static void test_tenants(void **state) {
    fx *f = *state;
    store *s = open_ok(f, NULL);
    store_err err;
    tenants_ctx c = {0};
    assert_int_equal(store_write(s, 0, tenants_fn, &c, &err), STORE_OK);
    assert_true(c.acme > 0 && c.beta > 0 && c.acme != c.beta);
    assert_int_equal(c.found, c.acme);
    assert_int_equal(c.rc_missing, STORE_NOTFOUND);
    assert_int_equal(c.rc_bad, STORE_INVALID);
    assert_int_equal(c.rc_find_bad, STORE_NOTFOUND);

    assert_int_equal(store_write(s, 0, dup_fn, &c, &err), STORE_CONFLICT);
    assert_int_equal(c.rc_dup, STORE_CONFLICT);
    assert_int_equal(err.code, STORE_CONFLICT);
    assert_null(strstr(err.msg, "acme"));  /* no values in messages */

    /* Found from a read transaction too; creating needs tenant 0. */
    tenant_job j = {"beta_2-x", 0};
    assert_int_equal(store_read(s, c.acme, find_fn, &j, &err), STORE_OK);
    assert_int_equal(j.id, c.beta);
    tenant_job k = {"gamma", 0};
    assert_int_equal(store_write(s, c.acme, create_tenant_fn, &k, &err), STORE_INVALID);
    assert_int_equal(store_read(s, 0, create_tenant_fn, &k, &err), STORE_INVALID);
    store_close(s);
}

/* ---- event log ---- */

typedef struct misuse_ctx {
    int rc_append, rc_limit0, rc_limit_big;
} misuse_ctx;

static int misuse_fn(store_tx *tx, void *arg, store_err *err) {
    misuse_ctx *c = arg;
    store_event_list l;
    c->rc_append = store_event_append(tx, "x", "{}", NULL, err);
    c->rc_limit0 = store_events_after(tx, 0, 0, &l, err);
    c->rc_limit_big = store_events_after(tx, 0, 10001, &l, err);
    return 0;
}

static void test_events(void **state) {
    fx *f = *state;
    store *s = open_ok(f, NULL);
    store_err err;
    int64_t a = make_tenant(s, "alpha"), b = make_tenant(s, "bravo");

    for (int i = 1; i <= 25; i++) {
        char payload[64];
        snprintf(payload, sizeof payload, "{\"n\": %d}", i);
        append_job j = {"lead.created", payload, 1, 0, 0};
        assert_int_equal(store_write(s, a, append_fn, &j, &err), STORE_OK);
        assert_int_equal(j.seq, i);
    }
    append_job jb = {"lead.updated", "[1, 2]", 1, 0, 0};
    assert_int_equal(store_write(s, b, append_fn, &jb, &err), STORE_OK);
    assert_int_equal(jb.seq, 1);  /* per-tenant numbering */

    int64_t t0 = clock_wall_ms();
    int64_t after = 0;
    int expect[] = {10, 10, 5, 0};
    for (int p = 0; p < 4; p++) {
        page_job j = {after, 10, {0}};
        assert_int_equal(store_read(s, a, page_fn, &j, &err), STORE_OK);
        assert_int_equal(j.out.n, expect[p]);
        for (int i = 0; i < j.out.n; i++) {
            char payload[64];
            snprintf(payload, sizeof payload, "{\"n\": %lld}", (long long)(after + 1));
            assert_int_equal(j.out.ev[i].seq, after + 1);
            assert_int_equal(j.out.ev[i].tenant, a);
            assert_string_equal(j.out.ev[i].type, "lead.created");
            assert_string_equal(j.out.ev[i].payload, payload);
            assert_true(j.out.ev[i].time_ms > t0 - 60000 && j.out.ev[i].time_ms <= t0 + 1000);
            after++;
        }
        store_event_list_free(&j.out);
        store_event_list_free(&j.out);  /* idempotent */
    }
    assert_int_equal(last_seq(s, a), 25);
    assert_int_equal(last_seq(s, b), 1);

    /* Bad JSON is refused by both engines and takes no number. */
    append_job bad = {"x", "{not json", 1, 0, 0};
    assert_int_equal(store_write(s, a, append_fn, &bad, &err), STORE_INVALID);
    assert_null(strstr(err.msg, "not json"));
    /* A rolled-back append gives its number back. */
    append_job rb = {"x", "{}", 3, 0, 1};
    assert_int_equal(store_write(s, a, append_fn, &rb, &err), STORE_ABORTED);
    assert_int_equal(last_seq(s, a), 25);
    append_job ok = {"x", "{}", 1, 0, 0};
    assert_int_equal(store_write(s, a, append_fn, &ok, &err), STORE_OK);
    assert_int_equal(ok.seq, 26);

    /* Misuse. */
    misuse_ctx m0 = {0}, m1 = {0};
    assert_int_equal(store_write(s, 0, misuse_fn, &m0, &err), STORE_OK);
    assert_int_equal(m0.rc_append, STORE_INVALID);  /* no tenant */
    assert_int_equal(store_read(s, a, misuse_fn, &m1, &err), STORE_OK);
    assert_int_equal(m1.rc_append, STORE_INVALID);  /* read-only */
    assert_int_equal(m1.rc_limit0, STORE_INVALID);
    assert_int_equal(m1.rc_limit_big, STORE_INVALID);
    append_job ghost = {"x", "{}", 1, 0, 0};
    assert_int_equal(store_write(s, 999999, append_fn, &ghost, &err), STORE_NOTFOUND);
    int64_t seq;
    assert_int_equal(store_read(s, 999999, last_seq_fn, &seq, &err), STORE_NOTFOUND);
    store_close(s);
}

/* ---- concurrency ---- */

typedef struct seq_thread {
    store *s;
    int64_t tenant;
    int n;
    int64_t *seqs;
    int failures;
    store_err last_err;
} seq_thread;

static void *seq_thread_main(void *arg) {
    seq_thread *t = arg;
    for (int i = 0; i < t->n; i++) {
        append_job j = {"tick", "{\"k\": 1}", 1, 0, 0};
        store_err err;
        if (store_write(t->s, t->tenant, append_fn, &j, &err)) {
            t->failures++;
            t->last_err = err;
            t->seqs[i] = -1;
        } else {
            t->seqs[i] = j.seq;
        }
    }
    return NULL;
}

static void test_seq_concurrent(void **state) {
    fx *f = *state;
    enum { T = 8, N = 200 };
    captured cap;
    captured_init(&cap);
    store_opts o = {.on_commit = on_commit_cb, .on_commit_ud = &cap, .pool_size = 8};
    store *s = open_ok(f, &o);
    int64_t tenant = make_tenant(s, "busy");
    assert_true(tenant < 16);
    seq_thread t[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        t[i] = (seq_thread){s, tenant, N, calloc(N, sizeof(int64_t)), 0, {0}};
        pthread_create(&th[i], NULL, seq_thread_main, &t[i]);
    }
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < T; i++) {
        if (t[i].failures) fprintf(stderr, "thread %d: %s\n", i, t[i].last_err.msg);
        assert_int_equal(t[i].failures, 0);
        for (int k = 1; k < N; k++) assert_true(t[i].seqs[k] > t[i].seqs[k - 1]);
        free(t[i].seqs);
    }
    assert_int_equal(check_gap_free(s, tenant), T * N);
    assert_int_equal(last_seq(s, tenant), T * N);
    assert_int_equal(cap.n, T * N);
    /* The SQLite writer thread reports commits in order; PostgreSQL callers
     * report from their own threads, so only the set is guaranteed. */
    if (f->kind == STORE_SQLITE) assert_true(cap.ordered);
    store_close(s);
    captured_free(&cap);
}

/* Many writers at once, some of them failing: on SQLite they share group
 * commits, and a failing one must take only its own changes with it. */
typedef struct mix_thread {
    store *s;
    int64_t tenant;
    int id;
    int n;
    int bad_rc, bad_code;  /* results that differed from expectations */
} mix_thread;

typedef struct mix_job {
    int64_t k;
    int mode;  /* 0 commit, 1 return 1, 2 set err + return -1, 3 unique violation ignored */
    int slow;
} mix_job;

static int mix_fn(store_tx *tx, void *arg, store_err *err) {
    mix_job *j = arg;
    if (j->slow) {
        /* Hold the writer so the others queue up behind us. */
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    char v[32];
    snprintf(v, sizeof v, "v%lld", (long long)j->k);
    store_val p[2] = {SV_I(j->k), SV_S(v)};
    int rc = store_query(tx, "INSERT INTO scratch (k, v) VALUES ($1, $2)", p, 2, NULL, err);
    if (rc) return rc;
    char payload[64];
    snprintf(payload, sizeof payload, "{\"k\": %lld}", (long long)j->k);
    if ((rc = store_event_append(tx, "mix", payload, NULL, err))) return rc;
    switch (j->mode) {
    case 1: return 1;
    case 2:
        err->code = STORE_NOTFOUND;
        snprintf(err->msg, sizeof err->msg, "callback says no");
        return -1;
    case 3: {
        /* The duplicate fails; the callback ignores that and returns 0, but
         * the transaction is doomed and must not commit. */
        store_err e2;
        store_query(tx, "INSERT INTO scratch (k, v) VALUES ($1, $2)", p, 2, NULL, &e2);
        return 0;
    }
    }
    return 0;
}

static int expected_rc(int mode) {
    return mode == 0 ? STORE_OK : mode == 1 ? STORE_ABORTED : mode == 2 ? STORE_NOTFOUND : STORE_CONFLICT;
}

static void *mix_thread_main(void *arg) {
    mix_thread *t = arg;
    for (int i = 0; i < t->n; i++) {
        mix_job j = {t->id * 1000 + i, i % 4, t->id == 0 && i % 10 == 0};
        store_err err;
        int rc = store_write(t->s, t->tenant, mix_fn, &j, &err);
        if (rc != expected_rc(j.mode)) t->bad_rc++;
        if (rc && err.code != rc) t->bad_code++;
    }
    return NULL;
}

static int count_fn(store_tx *tx, void *arg, store_err *err) {
    store_rows *r;
    int rc = store_query(tx, "SELECT count(*), coalesce(sum(k), 0) FROM scratch", NULL, 0, &r, err);
    if (rc) return rc;
    ((int64_t *)arg)[0] = store_rows_int(r, 0, 0);
    ((int64_t *)arg)[1] = store_rows_int(r, 0, 1);
    store_rows_free(r);
    return 0;
}

static void test_group_rollback(void **state) {
    fx *f = *state;
    enum { T = 16, N = 40 };
    captured cap;
    captured_init(&cap);
    store_opts o = {.on_commit = on_commit_cb, .on_commit_ud = &cap, .pool_size = 8};
    store *s = open_ok(f, &o);
    store_err err;
    assert_int_equal(exec_sql(s, "CREATE TABLE scratch (k bigint PRIMARY KEY, v text NOT NULL)", &err),
                     STORE_OK);
    int64_t tenant = make_tenant(s, "mix");
    mix_thread t[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        t[i] = (mix_thread){s, tenant, i, N, 0, 0};
        pthread_create(&th[i], NULL, mix_thread_main, &t[i]);
    }
    int64_t want_n = 0, want_sum = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].bad_rc, 0);
        assert_int_equal(t[i].bad_code, 0);
        for (int k = 0; k < N; k++)
            if (k % 4 == 0) {
                want_n++;
                want_sum += i * 1000 + k;
            }
    }
    int64_t got[2];
    assert_int_equal(store_read(s, tenant, count_fn, got, &err), STORE_OK);
    assert_int_equal(got[0], want_n);
    assert_int_equal(got[1], want_sum);
    /* Only committed callbacks' events exist, numbered without gaps, and
     * on_commit heard exactly those. */
    assert_int_equal(check_gap_free(s, tenant), want_n);
    assert_int_equal(cap.n, want_n);
    int64_t sum = 0;
    for (int i = 0; i < cap.n; i++) {
        assert_string_equal(cap.ev[i].type, "mix");
        sum += strtoll(strchr(cap.ev[i].payload, ':') + 1, NULL, 10);
    }
    assert_int_equal(sum, want_sum);
    store_close(s);
    captured_free(&cap);
}

/* ---- store_write_async ---- */

typedef struct async_job {
    mix_job m;
    store *s;
    int64_t tenant;
    int retries;         /* times done queues the job again before reporting */
    atomic_int *left;    /* jobs not yet reported */
    /* filled by done */
    int calls, rc, code, seen, resubmit_rc;
} async_job;

static int seen_fn(store_tx *tx, void *arg, store_err *err) {
    async_job *j = arg;
    store_val p[1] = {SV_I(j->m.k)};
    store_rows *r;
    int rc = store_query(tx, "SELECT count(*) FROM scratch WHERE k = $1", p, 1, &r, err);
    if (rc) return rc;
    j->seen = (int)store_rows_int(r, 0, 0);
    store_rows_free(r);
    return 0;
}

/* SQLite: on the writer thread, after the COMMIT. A fresh snapshot must
 * already hold a committed job's row: the callback comes after the commit,
 * never before. */
static void async_done(void *arg, int rc, const store_err *err) {
    async_job *j = arg;
    if (j->retries > 0 && rc == STORE_OK) {
        /* a retry from the callback, as the GHL receiver does on a conflict:
         * the row exists now, so the same insert fails with a conflict */
        j->retries--;
        store_err e;
        j->resubmit_rc = store_write_async(j->s, j->tenant, mix_fn, &j->m, async_done, j, &e);
        if (j->resubmit_rc == STORE_OK) return;
    }
    j->calls++;
    j->rc = rc;
    j->code = rc ? err->code : 0;
    store_err e2;
    if (store_read(j->s, j->tenant, seen_fn, j, &e2)) j->seen = -1;
    atomic_fetch_sub(j->left, 1);
}

static void wait_left(atomic_int *left) {
    for (int i = 0; i < 30000 && atomic_load(left) > 0; i++) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void test_write_async(void **state) {
    fx *f = *state;
    enum { N = 400 };
    captured cap;
    captured_init(&cap);
    store_opts o = {.on_commit = on_commit_cb, .on_commit_ud = &cap};
    store *s = open_ok(f, &o);
    store_err err;
    assert_int_equal(exec_sql(s, "CREATE TABLE scratch (k bigint PRIMARY KEY, v text NOT NULL)", &err),
                     STORE_OK);
    int64_t tenant = make_tenant(s, "async");
    async_job *jobs = calloc(N, sizeof *jobs);
    assert_non_null(jobs);
    atomic_int left = N;
    /* Queued from one thread without waiting: on SQLite they pile up
     * behind the slow first job and share group commits far larger than
     * any pool of waiting threads could make. Failing jobs (modes 1-3)
     * take only their own rows with them. */
    for (int i = 0; i < N; i++) {
        jobs[i] = (async_job){.m = {i + 1, i % 4, i == 0}, .s = s, .tenant = tenant, .left = &left};
        if (i == 8) jobs[i].retries = 1;
        assert_int_equal(store_write_async(s, tenant, mix_fn, &jobs[i].m, async_done, &jobs[i], &err), STORE_OK);
    }
    wait_left(&left);
    assert_int_equal(atomic_load(&left), 0);
    int64_t want_n = 0;
    for (int i = 0; i < N; i++) {
        async_job *j = &jobs[i];
        assert_int_equal(j->calls, 1);
        if (i == 8) {
            /* committed first, then the retry's insert met its own row */
            assert_int_equal(j->resubmit_rc, STORE_OK);
            assert_int_equal(j->rc, STORE_CONFLICT);
            assert_int_equal(j->seen, 1);
            want_n++;
            continue;
        }
        assert_int_equal(j->rc, expected_rc(j->m.mode));
        if (j->rc) assert_int_equal(j->code, j->rc);
        assert_int_equal(j->seen, j->m.mode == 0 ? 1 : 0);
        if (j->m.mode == 0) want_n++;
    }
    int64_t got[2];
    assert_int_equal(store_read(s, tenant, count_fn, got, &err), STORE_OK);
    assert_int_equal(got[0], want_n);
    assert_int_equal(check_gap_free(s, tenant), want_n);
    assert_int_equal(cap.n, want_n);

    /* Closing drains: every queued job runs and reports before
     * store_close returns. */
    atomic_store(&left, 50);
    for (int i = 0; i < 50; i++) {
        jobs[i] = (async_job){.m = {10000 + i, 0, 0}, .s = s, .tenant = tenant, .left = &left};
        assert_int_equal(store_write_async(s, tenant, mix_fn, &jobs[i].m, async_done, &jobs[i], &err), STORE_OK);
    }
    store_close(s);
    assert_int_equal(atomic_load(&left), 0);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(jobs[i].calls, 1);
        assert_int_equal(jobs[i].rc, STORE_OK);
        assert_int_equal(jobs[i].seen, 1);
    }
    s = open_ok(f, NULL);
    assert_int_equal(store_read(s, tenant, count_fn, got, &err), STORE_OK);
    assert_int_equal(got[0], want_n + 50);
    /* A call that fails at once never calls back. */
    assert_int_equal(store_write_async(s, tenant, mix_fn, &jobs[0].m, NULL, NULL, &err), STORE_INVALID);
    store_close(s);
    free(jobs);
    captured_free(&cap);
}

static int nested_fn(store_tx *tx, void *arg, store_err *err) {
    store *s = arg;
    store_err e2;
    int rc = store_write(s, 0, run_sql_fn, &(sql_job){"SELECT 1"}, &e2);
    return rc == STORE_INVALID ? 0 : 1;
}

/* SQLite: a write callback runs on the writer thread, so a nested
 * store_write would wait for itself; it is refused instead. */
static void test_nested_write(void **state) {
    fx *f = *state;
    store *s = open_ok(f, NULL);
    store_err err;
    assert_int_equal(store_write(s, 0, nested_fn, s, &err), STORE_OK);
    store_close(s);
}

/* ---- on_commit ---- */

static void test_on_commit(void **state) {
    fx *f = *state;
    captured cap;
    captured_init(&cap);
    store_opts o = {.on_commit = on_commit_cb, .on_commit_ud = &cap};
    store *s = open_ok(f, &o);
    store_err err;
    int64_t a = make_tenant(s, "hooked");
    assert_int_equal(cap.calls, 0);  /* creating a tenant appends nothing */

    append_job j = {"lead.scored", "{\"score\": 0.5}", 3, 0, 0};
    assert_int_equal(store_write(s, a, append_fn, &j, &err), STORE_OK);
    assert_int_equal(cap.calls, 1);  /* delivered before store_write returned */
    assert_int_equal(cap.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cap.ev[i].seq, i + 1);
        assert_int_equal(cap.ev[i].tenant, a);
        assert_string_equal(cap.ev[i].type, "lead.scored");
        assert_string_equal(cap.ev[i].payload, "{\"score\": 0.5}");
        assert_true(cap.ev[i].time_ms > 0);
    }
    append_job rb = {"x", "{}", 2, 0, 1};
    assert_int_equal(store_write(s, a, append_fn, &rb, &err), STORE_ABORTED);
    append_job none = {"x", "{}", 0, 0, 0};
    assert_int_equal(store_write(s, a, append_fn, &none, &err), STORE_OK);
    assert_int_equal(cap.calls, 1);
    append_job more = {"x", "{}", 1, 0, 0};
    assert_int_equal(store_write(s, a, append_fn, &more, &err), STORE_OK);
    assert_int_equal(cap.calls, 2);
    assert_int_equal(cap.ev[3].seq, 4);
    store_close(s);
    captured_free(&cap);
}

/* ---- statements and rows ---- */

typedef struct rows_ctx {
    int rc_insert[4];
    int64_t changes[3];
    store_rows *r, *empty, *b;
    int rc_wrong_n, rc_after_wrong, rc_qmark, rc_ctl, rc_nul, rc_ctl_comment;
} rows_ctx;

static const char blob[] = {0, 1, 2, (char)0xff, 0};

static int rows_fn(store_tx *tx, void *arg, store_err *err) {
    rows_ctx *c = arg;
    int pg = store_tx_kind(tx) == STORE_POSTGRES;
    int rc = store_query(tx,
                         pg ? "CREATE TABLE vals (id bigint PRIMARY KEY, i bigint, r double precision, s text, b bytea)"
                            : "CREATE TABLE vals (id INTEGER PRIMARY KEY, i INTEGER, r REAL, s TEXT, b BLOB)",
                         NULL, 0, NULL, err);
    if (rc) return rc;
    const char *ins = "INSERT INTO vals (id, i, r, s, b) VALUES ($1, $2, $3, $4, $5)";
    store_val blobv = {.t = SV_BLOB, .s = blob, .n = sizeof blob};
    store_val emptyb = {.t = SV_BLOB, .s = NULL, .n = 0};
    store_val r1[5] = {SV_I(1), SV_I(INT64_MAX), SV_D(0.1 + 0.2), SV_S("h\xc3\xa9llo \"q\" '"), blobv};
    store_val r2[5] = {SV_I(2), SV_NULLV, SV_NULLV, SV_S(NULL), SV_NULLV};
    store_val r3[5] = {SV_I(3), SV_I(INT64_MIN), SV_D(-1.5e300), SV_S(""), emptyb};
    c->rc_insert[0] = store_query(tx, ins, r1, 5, NULL, err);
    c->changes[0] = store_tx_changes(tx);
    c->rc_insert[1] = store_query(tx, ins, r2, 5, NULL, err);
    c->rc_insert[2] = store_query(tx, ins, r3, 5, NULL, err);
    /* Placeholders out of order, one used twice. */
    store_val r4[2] = {SV_I(4), SV_S("rev")};
    c->rc_insert[3] = store_query(tx, "INSERT INTO vals (s, id, i) VALUES ($2, $1, $1)", r4, 2, NULL, err);
    store_val up[1] = {SV_I(3)};
    if ((rc = store_query(tx, "UPDATE vals SET s = 'x' WHERE id >= $1", up, 1, NULL, err))) return rc;
    c->changes[1] = store_tx_changes(tx);
    /* A SELECT does not change the count. */
    if ((rc = store_query(tx, "SELECT 1", NULL, 0, NULL, err))) return rc;
    if (store_tx_changes(tx) != c->changes[1]) return 1;
    store_val del[1] = {SV_I(4)};
    if ((rc = store_query(tx, "DELETE FROM vals WHERE id = $1", del, 1, NULL, err))) return rc;
    c->changes[2] = store_tx_changes(tx);

    /* Local refusals do not doom the transaction. */
    c->rc_wrong_n = store_query(tx, "SELECT id FROM vals WHERE id = $1", NULL, 0, NULL, err);
    c->rc_ctl = store_query(tx, "COMMIT", NULL, 0, NULL, err);
    c->rc_ctl_comment = store_query(tx, "  -- sneaky\n /* x */ rollback", NULL, 0, NULL, err);
    store_val nul[1] = {SV_SN("a\0b", 3)};
    c->rc_nul = store_query(tx, "SELECT $1", nul, 1, NULL, err);
    c->rc_qmark = pg ? STORE_INVALID : store_query(tx, "SELECT id FROM vals WHERE id = ?", NULL, 0, NULL, err);
    store_val one[1] = {SV_I(1)};
    c->rc_after_wrong = store_query(tx, "SELECT id FROM vals WHERE id = $1", one, 1, NULL, err);

    if ((rc = store_query(tx, "SELECT id, i, r, s, b FROM vals ORDER BY id", NULL, 0, &c->r, err)))
        return rc;
    if ((rc = store_query(tx, "SELECT id, i FROM vals WHERE id < 0", NULL, 0, &c->empty, err)))
        return rc;
    return store_query(tx, "SELECT 1 = 1 AS yes, 1 = 2 AS no", NULL, 0, &c->b, err);
}

typedef struct ro_ctx {
    int rc;
} ro_ctx;

static int readonly_fn(store_tx *tx, void *arg, store_err *err) {
    ro_ctx *c = arg;
    store_val p[5] = {SV_I(9), SV_I(9), SV_D(9), SV_S("9"), SV_NULLV};
    c->rc = store_query(tx, "INSERT INTO vals (id, i, r, s, b) VALUES ($1, $2, $3, $4, $5)", p, 5,
                        NULL, err);
    return 0;
}

static void test_rows(void **state) {
    fx *f = *state;
    store *s = open_ok(f, NULL);
    store_err err;
    rows_ctx c = {0};
    int rc = store_write(s, 0, rows_fn, &c, &err);
    if (rc) fprintf(stderr, "rows: %s\n", err.msg);
    assert_int_equal(rc, STORE_OK);
    for (int i = 0; i < 4; i++) assert_int_equal(c.rc_insert[i], STORE_OK);
    assert_int_equal(c.changes[0], 1);
    assert_int_equal(c.changes[1], 2);
    assert_int_equal(c.changes[2], 1);
    assert_int_equal(c.rc_wrong_n, STORE_INVALID);
    assert_int_equal(c.rc_ctl, STORE_INVALID);
    assert_int_equal(c.rc_ctl_comment, STORE_INVALID);
    assert_int_equal(c.rc_nul, STORE_INVALID);
    assert_int_equal(c.rc_qmark, STORE_INVALID);
    assert_int_equal(c.rc_after_wrong, STORE_OK);

    store_rows *r = c.r;
    assert_int_equal(store_rows_count(r), 3);
    assert_int_equal(store_rows_cols(r), 5);
    const char *names[] = {"id", "i", "r", "s", "b"};
    for (int i = 0; i < 5; i++) assert_string_equal(store_rows_name(r, i), names[i]);
    assert_null(store_rows_name(r, 5));
    /* row 0: every type */
    assert_int_equal(store_rows_int(r, 0, 0), 1);
    assert_true(store_rows_int(r, 0, 1) == INT64_MAX);
    assert_true(store_rows_real(r, 0, 2) == 0.1 + 0.2);  /* exact round trip */
    assert_string_equal(store_rows_text(r, 0, 3), "h\xc3\xa9llo \"q\" '");
    assert_int_equal(store_rows_len(r, 0, 4), sizeof blob);
    assert_memory_equal(store_rows_text(r, 0, 4), blob, sizeof blob);
    for (int i = 0; i < 5; i++) assert_false(store_rows_isnull(r, 0, i));
    /* row 1: NULLs */
    for (int i = 1; i < 5; i++) {
        assert_true(store_rows_isnull(r, 1, i));
        assert_null(store_rows_text(r, 1, i));
        assert_int_equal(store_rows_int(r, 1, i), 0);
        assert_true(store_rows_real(r, 1, i) == 0.0);
    }
    /* row 2: extremes and empties (s was updated to 'x') */
    assert_true(store_rows_int(r, 2, 1) == INT64_MIN);
    assert_true(store_rows_real(r, 2, 2) == -1.5e300);
    assert_string_equal(store_rows_text(r, 2, 3), "x");
    assert_false(store_rows_isnull(r, 2, 4));
    assert_int_equal(store_rows_len(r, 2, 4), 0);
    /* out of range is NULL, not a crash */
    assert_null(store_rows_text(r, 3, 0));
    assert_null(store_rows_text(r, 0, -1));
    assert_true(store_rows_isnull(r, -1, 0));
    assert_int_equal(store_rows_int(r, 99, 99), 0);
    assert_int_equal(store_rows_count(NULL), 0);
    store_rows_free(r);

    assert_int_equal(store_rows_count(c.empty), 0);
    assert_int_equal(store_rows_cols(c.empty), 2);
    store_rows_free(c.empty);
    assert_int_equal(store_rows_int(c.b, 0, 0), 1);  /* booleans read as 1/0 on both */
    assert_int_equal(store_rows_int(c.b, 0, 1), 0);
    assert_string_equal(store_rows_text(c.b, 0, 0), "1");
    store_rows_free(c.b);
    store_rows_free(NULL);

    ro_ctx ro = {0};
    assert_int_equal(store_read(s, 0, readonly_fn, &ro, &err), STORE_INVALID);
    assert_int_equal(ro.rc, STORE_INVALID);
    store_close(s);
}

/* store_insert_returning: the new row's columns as RETURNING gives them
 * (SQLite: read back by rowid), the INSERT counted in store_tx_changes, and
 * each insert answering its own row. */
typedef struct ret_ctx {
    store_rows *a, *b, *skipped;
    int64_t changes_a;
    int rc_bad;
} ret_ctx;

static int returning_fn(store_tx *tx, void *arg, store_err *err) {
    ret_ctx *c = arg;
    int pg = store_tx_kind(tx) == STORE_POSTGRES;
    int rc = store_query(tx,
                         pg ? "CREATE TABLE rets (id bigserial PRIMARY KEY, s text NOT NULL, n bigint DEFAULT 7)"
                            : "CREATE TABLE rets (id INTEGER PRIMARY KEY, s TEXT NOT NULL, n INTEGER DEFAULT 7)",
                         NULL, 0, NULL, err);
    if (rc) return rc;
    store_val pa[1] = {SV_S("first")}, pb[1] = {SV_S("second")};
    rc = store_insert_returning(tx, "INSERT INTO rets (s) VALUES ($1)", "rets", "id, s, n", pa, 1, &c->a, err);
    if (rc) return rc;
    c->changes_a = store_tx_changes(tx);
    rc = store_insert_returning(tx, "INSERT INTO rets (s) VALUES ($1)", "rets", "id, s", pb, 1, &c->b, err);
    if (rc) return rc;
    /* an INSERT that writes nothing answers no row (not the last one) */
    rc = store_insert_returning(tx, "INSERT INTO rets (id, s) VALUES (1, $1) ON CONFLICT DO NOTHING", "rets", "id, s",
                                pb, 1, &c->skipped, err);
    if (rc) return rc;
    /* a failing INSERT answers its error and no rows */
    store_rows *none = (store_rows *)1;
    store_err e2;
    store_val pn[1] = {SV_NULLV};
    c->rc_bad = store_insert_returning(tx, "INSERT INTO rets (s) VALUES ($1)", "rets", "id", pn, 1, &none, &e2);
    if (none) c->rc_bad = -99;
    return 0;
}

static void test_insert_returning(void **state) {
    fx *f = *state;
    store *s = open_ok(f, NULL);
    store_err err;
    ret_ctx c = {0};
    store_write(s, 0, returning_fn, &c, &err); /* the failed INSERT dooms it */
    assert_non_null(c.a);
    assert_int_equal(store_rows_count(c.a), 1);
    assert_int_equal(store_rows_cols(c.a), 3);
    assert_int_equal(store_rows_int(c.a, 0, 0), 1);
    assert_string_equal(store_rows_text(c.a, 0, 1), "first");
    assert_int_equal(store_rows_int(c.a, 0, 2), 7); /* a default, as the row holds it */
    assert_int_equal(c.changes_a, 1);
    assert_int_equal(store_rows_count(c.b), 1);
    assert_int_equal(store_rows_cols(c.b), 2);
    assert_int_equal(store_rows_int(c.b, 0, 0), 2);
    assert_string_equal(store_rows_text(c.b, 0, 1), "second");
    assert_non_null(c.skipped);
    assert_int_equal(store_rows_count(c.skipped), 0);
    assert_int_equal(store_rows_cols(c.skipped), 2);
    store_rows_free(c.skipped);
    assert_true(c.rc_bad != STORE_OK && c.rc_bad != -99);
    store_rows_free(c.a);
    store_rows_free(c.b);
    store_close(s);
}

/* ---- errors ---- */

typedef struct conflict_ctx {
    int rc_dup, rc_after;
    store_err dup_err;
} conflict_ctx;

static int conflict_fn(store_tx *tx, void *arg, store_err *err) {
    conflict_ctx *c = arg;
    store_val b[1] = {SV_S("bbb")};
    store_val d[1] = {SV_S("dupvalue123")};
    int rc = store_query(tx, "INSERT INTO uniq (k) VALUES ($1)", b, 1, NULL, err);
    if (rc) return rc;
    c->rc_dup = store_query(tx, "INSERT INTO uniq (k) VALUES ($1)", d, 1, NULL, &c->dup_err);
    c->rc_after = store_query(tx, "SELECT 1", NULL, 0, NULL, err);
    return 0;  /* pretends all is well: the store must still refuse to commit */
}

static int insert_dup_fn(store_tx *tx, void *arg, store_err *err) {
    store_val d[1] = {SV_S("dupvalue123")};
    return store_query(tx, "INSERT INTO uniq (k) VALUES ($1)", d, 1, NULL, err);
}

static void test_conflict(void **state) {
    fx *f = *state;
    store *s = open_ok(f, NULL);
    store_err err;
    assert_int_equal(exec_sql(s, "CREATE TABLE uniq (k text PRIMARY KEY)", &err), STORE_OK);
    assert_int_equal(store_write(s, 0, insert_dup_fn, NULL, &err), STORE_OK);
    assert_int_equal(err.code, 0);
    assert_int_equal(store_write(s, 0, insert_dup_fn, NULL, &err), STORE_CONFLICT);
    assert_null(strstr(err.msg, "dupvalue123"));
    conflict_ctx c = {0};
    assert_int_equal(store_write(s, 0, conflict_fn, &c, &err), STORE_CONFLICT);
    assert_int_equal(c.rc_dup, STORE_CONFLICT);
    assert_int_equal(c.dup_err.code, STORE_CONFLICT);
    assert_true(strlen(c.dup_err.msg) > 0);
    assert_null(strstr(c.dup_err.msg, "dupvalue123"));
    assert_int_equal(c.rc_after, STORE_CONFLICT);  /* doomed */
    /* A bad statement: STORE_ERR with the engine's message. */
    assert_int_equal(exec_sql(s, "SELEKT nonsense", &err), STORE_ERR);
    assert_true(strlen(err.msg) > 0);
    assert_int_equal(exec_sql(s, "SELECT * FROM no_such_table", &err), STORE_ERR);
    store_close(s);
}

static int uniq_count_fn(store_tx *tx, void *arg, store_err *err) {
    store_rows *r;
    int rc = store_query(tx, "SELECT count(*) FROM uniq", NULL, 0, &r, err);
    if (rc) return rc;
    *(int64_t *)arg = store_rows_int(r, 0, 0);
    store_rows_free(r);
    return 0;
}

static void test_conflict_rolls_back(void **state) {
    fx *f = *state;
    store *s = open_ok(f, NULL);
    store_err err;
    assert_int_equal(exec_sql(s, "CREATE TABLE uniq (k text PRIMARY KEY)", &err), STORE_OK);
    assert_int_equal(store_write(s, 0, insert_dup_fn, NULL, &err), STORE_OK);
    conflict_ctx c = {0};
    assert_int_equal(store_write(s, 0, conflict_fn, &c, &err), STORE_CONFLICT);
    int64_t n = -1;
    assert_int_equal(store_read(s, 0, uniq_count_fn, &n, &err), STORE_OK);
    assert_int_equal(n, 1);
    store_close(s);
}

static void test_bad_urls(void **state) {
    store_err err;
    const char *bad[] = {"", "mysql://localhost/x", "sqlite:", "sqlite::memory:",
                         "postgres://%zz", "postgresql://localhost/db?no_such_option=1"};
    assert_null(store_open(NULL, NULL, &err));
    assert_int_equal(err.code, STORE_INVALID);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        assert_null(store_open(bad[i], NULL, &err));
        assert_int_equal(err.code, STORE_INVALID);
        assert_true(strlen(err.msg) > 0);
    }
    store_opts o = {.pool_size = -1};
    assert_null(store_open("sqlite:/tmp/x.db", &o, &err));
    assert_int_equal(err.code, STORE_INVALID);
    assert_null(store_open("sqlite:/proc/ehub-no/such/dir/x.db", NULL, &err));
    assert_int_equal(err.code, STORE_UNAVAILABLE);
    assert_null(store_open("mysql://x", NULL, NULL));  /* err may be NULL */
}

static void test_pg_unreachable(void **state) {
    store_err err;
    /* Port 1 on loopback: refused at once. */
    store *s = store_open("postgres://ehub@127.0.0.1:1/nothing?connect_timeout=2", NULL, &err);
    assert_null(s);
    assert_int_equal(err.code, STORE_UNAVAILABLE);
    assert_true(strlen(err.msg) > 0);
}

/* ---- allocation failures ---- */

typedef struct af_ctx {
    int64_t tenant;
} af_ctx;

static int af_setup_fn(store_tx *tx, void *arg, store_err *err) {
    af_ctx *c = arg;
    int rc = store_tenant_find(tx, "alloc", &c->tenant, err);
    if (rc == STORE_NOTFOUND) rc = store_tenant_create(tx, "alloc", "Alloc", &c->tenant, err);
    return rc;
}

static int af_write_fn(store_tx *tx, void *arg, store_err *err) {
    int rc = store_event_append(tx, "af", "{\"a\": [1, 2, 3]}", NULL, err);
    if (rc) return rc;
    store_rows *r;
    rc = store_query(tx, "SELECT id, slug, name FROM tenants", NULL, 0, &r, err);
    store_rows_free(r);
    return rc;
}

static int valid_code(int rc) { return rc <= 0 && rc >= STORE_ABORTED; }

static void test_alloc_failures(void **state) {
    fx *f = *state;
    captured cap;
    captured_init(&cap);
    store_opts o = {.on_commit = on_commit_cb, .on_commit_ud = &cap, .pool_size = 2};
    int clean = 0, failures = 0;
    long n;
    for (n = 0; n < 3000 && !clean; n++) {
        store_err err = {0};
        eh_alloc_fail_after(n);
        int ok = 1, rc;
        store *s = store_open(f->url, &o, &err);
        if (!s) {
            ok = 0;
            assert_true(valid_code(err.code) && err.code != 0);
        } else {
            af_ctx c = {0};
            rc = store_write(s, 0, af_setup_fn, &c, &err);
            assert_true(valid_code(rc));
            if (rc) ok = 0;
            if (rc == 0) {
                rc = store_write(s, c.tenant, af_write_fn, NULL, &err);
                assert_true(valid_code(rc));
                if (rc) ok = 0;
                page_job pj = {0, 100, {0}};
                rc = store_read(s, c.tenant, page_fn, &pj, &err);
                assert_true(valid_code(rc));
                if (rc) ok = 0;
                store_event_list_free(&pj.out);
                int v, k;
                if (store_schema_version(s, &v, &k, &err)) ok = 0;
            }
            store_close(s);
        }
        eh_alloc_fail_after(-1);
        if (ok) clean = 1;
        else failures++;
    }
    printf("store(%s): %d runs with an allocation failure, clean after %ld allocations\n",
           store_kind_name(f->kind), failures, n - 1);
    assert_true(clean);
    assert_true(failures > 10);
    captured_free(&cap);
}

/* ---- throughput ---- */

typedef struct bench_thread {
    store *s;
    int id, n, failures;
} bench_thread;

typedef struct bench_job {
    int64_t k;
} bench_job;

static int bench_fn(store_tx *tx, void *arg, store_err *err) {
    bench_job *j = arg;
    store_val p[2] = {SV_I(j->k), SV_S("{\"small\": true}")};
    return store_query(tx, "INSERT INTO bench (k, v) VALUES ($1, $2)", p, 2, NULL, err);
}

static void *bench_main(void *arg) {
    bench_thread *t = arg;
    for (int i = 0; i < t->n; i++) {
        bench_job j = {(int64_t)t->id * 1000000 + i};
        store_err err;
        if (store_write(t->s, 0, bench_fn, &j, &err)) t->failures++;
    }
    return NULL;
}

static void bench(fx *f, int sync_full) {
    enum { T = 32 };
    int n = f->kind == STORE_SQLITE ? 300 : 100;
    store_opts o = {.sync_full = sync_full, .pool_size = 16};
    store *s = open_ok(f, &o);
    store_err err;
    exec_sql(s, "DROP TABLE IF EXISTS bench", &err);
    assert_int_equal(exec_sql(s, "CREATE TABLE bench (k bigint PRIMARY KEY, v text NOT NULL)", &err),
                     STORE_OK);
    bench_thread t[T];
    pthread_t th[T];
    uint64_t t0 = clock_mono_ns();
    for (int i = 0; i < T; i++) {
        t[i] = (bench_thread){s, i, n, 0};
        pthread_create(&th[i], NULL, bench_main, &t[i]);
    }
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    double secs = (double)(clock_mono_ns() - t0) / 1e9;
    for (int i = 0; i < T; i++) assert_int_equal(t[i].failures, 0);
    printf("store(%s): %.0f writes/s with %d threads (%d durable write transactions%s)\n",
           store_kind_name(f->kind), T * n / secs, T, T * n,
           f->kind == STORE_SQLITE ? (sync_full ? ", synchronous=FULL" : ", synchronous=NORMAL") : "");
    store_close(s);
}

static void test_throughput(void **state) {
    fx *f = *state;
    bench(f, 0);
    if (f->kind == STORE_SQLITE) bench(f, 1);
}

/* ---- PostgreSQL row-level security ---- */

typedef struct rls_ctx {
    int64_t count;
    int rc_insert;
} rls_ctx;

static int rls_read_fn(store_tx *tx, void *arg, store_err *err) {
    rls_ctx *c = arg;
    /* The test connects as a superuser, who bypasses RLS: look through the
     * eyes of an ordinary role for the rest of this transaction. */
    int rc = store_query(tx, "SET LOCAL ROLE ehub_rls_probe", NULL, 0, NULL, err);
    if (rc) return rc;
    store_rows *r;
    if ((rc = store_query(tx, "SELECT count(*) FROM events", NULL, 0, &r, err))) return rc;
    c->count = store_rows_int(r, 0, 0);
    store_rows_free(r);
    return 0;
}

static int rls_write_fn(store_tx *tx, void *arg, store_err *err) {
    rls_ctx *c = arg;
    int rc = store_query(tx, "SET LOCAL ROLE ehub_rls_probe", NULL, 0, NULL, err);
    if (rc) return rc;
    /* Tenant 1's transaction writing a row for tenant 2. */
    store_val p[1] = {SV_I(2)};
    c->rc_insert = store_query(tx,
                               "INSERT INTO events (tenant_id, seq, type, payload, created_at)"
                               " VALUES ($1, 100, 'x', '{}', 0)",
                               p, 1, NULL, err);
    return c->rc_insert;
}

static void test_pg_rls(void **state) {
    fx *f = *state;
    store *s = open_ok(f, NULL);
    store_err err;
    int64_t a = make_tenant(s, "rls-a"), b = make_tenant(s, "rls-b");
    assert_int_equal(a, 1);
    assert_int_equal(b, 2);
    append_job ja = {"x", "{}", 3, 0, 0}, jb = {"x", "{}", 2, 0, 0};
    assert_int_equal(store_write(s, a, append_fn, &ja, &err), STORE_OK);
    assert_int_equal(store_write(s, b, append_fn, &jb, &err), STORE_OK);
    /* Roles are cluster-wide: create once, ignore "already exists". */
    exec_sql(s,
             "DO $$ BEGIN CREATE ROLE ehub_rls_probe NOLOGIN;"
             " EXCEPTION WHEN duplicate_object THEN NULL; END $$",
             &err);
    char sql[256];
    snprintf(sql, sizeof sql, "GRANT USAGE ON SCHEMA %s TO ehub_rls_probe", f->schema);
    assert_int_equal(exec_sql(s, sql, &err), STORE_OK);
    assert_int_equal(exec_sql(s, "GRANT SELECT, INSERT ON events TO ehub_rls_probe", &err), STORE_OK);
    rls_ctx c = {0};
    assert_int_equal(store_read(s, a, rls_read_fn, &c, &err), STORE_OK);
    assert_int_equal(c.count, 3);
    assert_int_equal(store_read(s, b, rls_read_fn, &c, &err), STORE_OK);
    assert_int_equal(c.count, 2);
    assert_int_equal(store_read(s, 0, rls_read_fn, &c, &err), STORE_OK);
    assert_int_equal(c.count, 5);  /* tenant 0: admin */
    assert_int_equal(store_read(s, 77, rls_read_fn, &c, &err), STORE_OK);
    assert_int_equal(c.count, 0);
    /* WITH CHECK: cannot write into another tenant. */
    assert_int_equal(store_write(s, a, rls_write_fn, &c, &err), STORE_ERR);
    assert_null(strstr(err.msg, "100"));
    store_close(s);
}

/* ---- PostgreSQL: reconnecting, retrying ---- */

static int pid_fn(store_tx *tx, void *arg, store_err *err) {
    store_rows *r;
    int rc = store_query(tx, "SELECT pg_backend_pid()", NULL, 0, &r, err);
    if (rc) return rc;
    *(int64_t *)arg = store_rows_int(r, 0, 0);
    store_rows_free(r);
    return 0;
}

static int kill_fn(store_tx *tx, void *arg, store_err *err) {
    store_val p[1] = {SV_I(*(int64_t *)arg)};
    /* The timeout makes it wait until the backend is gone. */
    return store_query(tx, "SELECT pg_terminate_backend($1::int, 5000)", p, 1, NULL, err);
}

static void kill_backend(fx *f, store *s) {
    int64_t pid = 0;
    store_err err;
    assert_int_equal(store_read(s, 0, pid_fn, &pid, &err), STORE_OK);
    store_opts o = {.no_migrate = 1, .pool_size = 1};
    store *admin = open_ok(f, &o);
    assert_int_equal(store_write(admin, 0, kill_fn, &pid, &err), STORE_OK);
    store_close(admin);
}

/* The server drops a pooled connection (restart, idle kill): the next
 * transaction notices at BEGIN, reconnects and goes ahead. */
static void test_pg_reconnect(void **state) {
    fx *f = *state;
    store_opts o = {.pool_size = 1};
    store *s = open_ok(f, &o);
    store_err err;
    kill_backend(f, s);
    tenant_job j = {"after-kill", 0};
    assert_int_equal(store_write(s, 0, create_tenant_fn, &j, &err), STORE_OK);
    kill_backend(f, s);
    tenant_job k = {"after-kill", 0};
    assert_int_equal(store_read(s, 0, find_fn, &k, &err), STORE_OK);
    assert_int_equal(k.id, j.id);
    kill_backend(f, s);
    assert_int_equal(store_ping(s, &err), STORE_OK);
    store_close(s);
}

typedef struct dl_ctx {
    pthread_barrier_t *bar;
    int64_t first, second;
    int attempts, rc;
    store *s;
} dl_ctx;

static int dl_fn(store_tx *tx, void *arg, store_err *err) {
    dl_ctx *c = arg;
    c->attempts++;
    store_val a[1] = {SV_I(c->first)}, b[1] = {SV_I(c->second)};
    int rc = store_query(tx, "UPDATE locks SET v = v + 1 WHERE k = $1", a, 1, NULL, err);
    if (rc) return rc;
    /* First time round, both hold one row and go for the other's. */
    if (c->attempts == 1) pthread_barrier_wait(c->bar);
    return store_query(tx, "UPDATE locks SET v = v + 1 WHERE k = $1", b, 1, NULL, err);
}

static void *dl_main(void *arg) {
    dl_ctx *c = arg;
    store_err err;
    c->rc = store_write(c->s, 0, dl_fn, c, &err);
    return NULL;
}

static int sum_locks_fn(store_tx *tx, void *arg, store_err *err) {
    store_rows *r;
    int rc = store_query(tx, "SELECT sum(v) FROM locks", NULL, 0, &r, err);
    if (rc) return rc;
    *(int64_t *)arg = store_rows_int(r, 0, 0);
    store_rows_free(r);
    return 0;
}

/* A real deadlock (40P01): the victim's callback is run again and both
 * writers succeed. */
static void test_pg_deadlock_retry(void **state) {
    fx *f = *state;
    store *s = open_ok(f, NULL);
    store_err err;
    assert_int_equal(exec_sql(s, "CREATE TABLE locks (k bigint PRIMARY KEY, v bigint NOT NULL)", &err),
                     STORE_OK);
    assert_int_equal(exec_sql(s, "INSERT INTO locks VALUES (1, 0), (2, 0)", &err), STORE_OK);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    dl_ctx c[2] = {{&bar, 1, 2, 0, -1, s}, {&bar, 2, 1, 0, -1, s}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, dl_main, &c[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    assert_int_equal(c[0].rc, STORE_OK);
    assert_int_equal(c[1].rc, STORE_OK);
    assert_int_equal(c[0].attempts + c[1].attempts, 3);
    int64_t sum = 0;
    assert_int_equal(store_read(s, 0, sum_locks_fn, &sum, &err), STORE_OK);
    assert_int_equal(sum, 4);
    store_close(s);
}

/* ---- deferred events ---- */

typedef struct deferred_ctx {
    int round;
    int64_t seq_c;     /* what the seq-asking append got */
    int seen_before_c; /* events store_events_after saw mid-transaction */
    char seen_types[8];
} deferred_ctx;

static int deferred_fn(store_tx *tx, void *arg, store_err *err) {
    deferred_ctx *c = arg;
    int rc;
    if (c->round == 1) {
        /* 11 deferred events: more than one multi-row INSERT's worth */
        for (int i = 0; i < 11; i++)
            if ((rc = store_event_append(tx, "bulk", "{\"i\": 1}", NULL, err))) return rc;
        return 0;
    }
    if (c->round == 2) {
        for (int i = 0; i < 3; i++)
            if ((rc = store_event_append(tx, "gone", "{}", NULL, err))) return rc;
        err->code = STORE_NOTFOUND;
        snprintf(err->msg, sizeof err->msg, "callback says no");
        return -1;
    }
    if ((rc = store_event_append(tx, "a", "{}", NULL, err)) || (rc = store_event_append(tx, "b", "{}", NULL, err)))
        return rc;
    /* reading the log in the same transaction sees the deferred ones */
    store_event_list l;
    if ((rc = store_events_after(tx, 0, 100, &l, err))) return rc;
    c->seen_before_c = l.n;
    for (int i = 0; i < l.n && i < 7; i++) c->seen_types[i] = l.ev[i].type[0];
    store_event_list_free(&l);
    /* asking for a seq writes at once, after what came before */
    if ((rc = store_event_append(tx, "c", "{}", &c->seq_c, err))) return rc;
    if ((rc = store_event_append(tx, "d", "{}", NULL, err)) || (rc = store_event_append(tx, "e", "{}", NULL, err)))
        return rc;
    return 0;
}

static void test_events_deferred(void **state) {
    fx *f = *state;
    captured cap;
    captured_init(&cap);
    store_opts o = {.on_commit = on_commit_cb, .on_commit_ud = &cap};
    store *s = open_ok(f, &o);
    store_err err;
    int64_t tenant = make_tenant(s, "deferred");
    deferred_ctx c = {0};
    assert_int_equal(store_write(s, tenant, deferred_fn, &c, &err), STORE_OK);
    assert_int_equal(c.seen_before_c, 2);
    assert_string_equal(c.seen_types, "ab");
    assert_int_equal(c.seq_c, 3);
    /* a rolled-back write's deferred events leave no gap */
    c.round = 2;
    assert_int_equal(store_write(s, tenant, deferred_fn, &c, &err), STORE_NOTFOUND);
    c.round = 1;
    assert_int_equal(store_write(s, tenant, deferred_fn, &c, &err), STORE_OK);
    assert_int_equal(check_gap_free(s, tenant), 16);
    page_job j = {0, 100, {0}};
    assert_int_equal(store_read(s, tenant, page_fn, &j, &err), STORE_OK);
    assert_int_equal(j.out.n, 16);
    const char *want = "abcde";
    for (int i = 0; i < 5; i++) assert_int_equal(j.out.ev[i].type[0], want[i]);
    for (int i = 5; i < 16; i++) assert_string_equal(j.out.ev[i].type, "bulk");
    store_event_list_free(&j.out);
    int64_t last = 0;
    assert_int_equal(store_read(s, tenant, last_seq_fn, &last, &err), STORE_OK);
    assert_int_equal(last, 16);
    /* on_commit heard every one, in order, with its seq */
    assert_int_equal(cap.n, 16);
    assert_true(cap.ordered);
    for (int i = 0; i < 5; i++) assert_int_equal(cap.ev[i].type[0], want[i]);
    store_close(s);
    captured_free(&cap);
}

/* ---- SQLite: checkpoints off the writer ---- */

static int blob_fn(store_tx *tx, void *arg, store_err *err) {
    static char b[8000];
    store_val v[] = {SV_B(b, sizeof b)};
    return store_query(tx, "INSERT INTO big (b) VALUES ($1)", v, 1, NULL, err);
}

/* The first n bytes of a file; zeros if it is missing or shorter. */
static void file_head(const char *path, unsigned char *h, size_t n) {
    memset(h, 0, n);
    FILE *fp = fopen(path, "rb");
    if (!fp) return;
    if (fread(h, 1, n, fp) != n) memset(h, 0, n);
    fclose(fp);
}

/* The WAL header's checkpoint sequence: it grows each time the log starts
 * over from its beginning, which needs a checkpoint of all of it first. */
static uint32_t wal_ckpt_seq(const fx *f) {
    char path[512];
    snprintf(path, sizeof path, "%s/data/test.db-wal", f->dir);
    unsigned char h[16];
    file_head(path, h, sizeof h);
    return (uint32_t)h[12] << 24 | (uint32_t)h[13] << 16 | (uint32_t)h[14] << 8 | h[15];
}

/* The writer no longer checkpoints below 16,000 WAL pages (it would wait
 * for the fsyncs inside a COMMIT); the checkpointer thread does, so a WAL
 * grown past 1,000 pages is copied back and starts over once writes pause
 * (for 100 ms). Fails if the checkpointer does nothing: the log would keep
 * growing. */
static void test_checkpointer(void **state) {
    fx *f = *state;
    store *s = open_ok(f, NULL);
    store_err err = {0};
    assert_int_equal(exec_sql(s, "CREATE TABLE big (b BLOB)", &err), STORE_OK);
    uint32_t seq0 = wal_ckpt_seq(f);
    for (int i = 0; i < 800; i++) assert_int_equal(store_write(s, 0, blob_fn, NULL, &err), STORE_OK); /* 6.4 MB: ~3,300 pages of 2 KB */
    int restarted = 0;
    for (int tries = 0; tries < 20 && !restarted; tries++) {
        usleep(250 * 1000); /* a pause in the writes: the checkpointer finishes the log */
        /* a restart shows in the header once the next frame is written */
        assert_int_equal(store_write(s, 0, blob_fn, NULL, &err), STORE_OK);
        restarted = wal_ckpt_seq(f) != seq0;
    }
    assert_true(restarted);
    store_close(s);
}

/* The page size in a database file's header (bytes 16-17; 1 means 65536). */
static unsigned db_page_size(const char *path) {
    unsigned char h[18];
    file_head(path, h, sizeof h);
    unsigned n = (unsigned)h[16] << 8 | h[17];
    return n == 1 ? 65536 : n;
}

/* A new database gets 2 KB pages (less WAL per random index insert, see
 * src/store/sqlite.c); an existing one keeps the size it was made with,
 * and its rows. */
static void test_page_size(void **state) {
    fx *f = *state;
    store_err err = {0};
    store *s = open_ok(f, NULL);
    assert_int_equal(exec_sql(s, "CREATE TABLE t (x)", &err), STORE_OK);
    store_close(s);
    char path[512];
    snprintf(path, sizeof path, "%s/data/test.db", f->dir);
    assert_int_equal(db_page_size(path), 2048);

    snprintf(path, sizeof path, "%s/data/old.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; "
                                  "CREATE TABLE old (x); INSERT INTO old VALUES (1);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    char url[600];
    snprintf(url, sizeof url, "sqlite:%s", path);
    s = store_open(url, NULL, &err);
    assert_non_null(s);
    assert_int_equal(exec_sql(s, "INSERT INTO old VALUES (2)", &err), STORE_OK);
    store_close(s);
    assert_int_equal(db_page_size(path), 4096);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM old", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ---- store_purge (after an erasure) ---- */

static int filenode_fn(store_tx *tx, void *arg, store_err *err) {
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT pg_relation_filenode('purged')", NULL, 0, &r, err);
    if (!rc) *(int64_t *)arg = store_rows_int(r, 0, 0);
    store_rows_free(r);
    return rc;
}

/* Names are checked before anything runs; SQLite folds its WAL; PostgreSQL
 * rewrites a table within the bound (a new file), only vacuums one over it
 * and says so. */
static void test_purge(void **state) {
    fx *f = *state;
    store *s = open_ok(f, NULL);
    store_err err;
    store_purge_report rep;
    assert_int_equal(exec_sql(s, "CREATE TABLE purged (id INTEGER PRIMARY KEY, secret TEXT)", &err), STORE_OK);
    assert_int_equal(exec_sql(s, "INSERT INTO purged VALUES (1, 'zoe@example.org'), (2, 'kept@example.org')", &err),
                     STORE_OK);
    assert_int_equal(exec_sql(s, "UPDATE purged SET secret = NULL WHERE id = 1", &err), STORE_OK);
    const char *bad[][1] = {{"purged; DROP TABLE purged"}, {""}, {"Purged"}, {NULL}};
    for (int i = 0; i < 4; i++) {
        memset(&rep, 0x55, sizeof rep);
        assert_int_equal(store_purge(s, bad[i], 1, 1 << 20, &rep, &err), STORE_INVALID);
        assert_int_equal(rep.clean, 0);
    }
    const char *t[] = {"purged"};
    if (f->kind == STORE_SQLITE) {
        assert_int_equal(store_purge(s, t, 1, 1 << 20, &rep, &err), STORE_OK);
        assert_int_equal(rep.clean, 1);
        store_close(s);
        return;
    }
    int64_t before = 0, after = 0;
    assert_int_equal(store_read(s, 0, filenode_fn, &before, &err), STORE_OK);
    assert_int_equal(store_purge(s, t, 1, 1 << 20, &rep, &err), STORE_OK);
    assert_int_equal(rep.rewritten, 1);
    assert_int_equal(rep.vacuumed, 0);
    assert_int_equal(rep.clean, 1);
    assert_string_equal(rep.residue, "");
    assert_int_equal(store_read(s, 0, filenode_fn, &after, &err), STORE_OK);
    assert_true(after != before); /* a new file: the old one was truncated */
    assert_int_equal(store_purge(s, t, 1, 0, &rep, &err), STORE_OK); /* rewriting off */
    assert_int_equal(rep.rewritten, 0);
    assert_int_equal(rep.vacuumed, 1);
    assert_int_equal(rep.clean, 0);
    assert_string_equal(rep.residue, "purged");
    assert_int_equal(store_read(s, 0, filenode_fn, &before, &err), STORE_OK);
    assert_int_equal(before, after);
    const char *missing[] = {"no_such_table"};
    assert_int_not_equal(store_purge(s, missing, 1, 1 << 20, &rep, &err), STORE_OK);
    store_close(s);
}

/* ---- runner ---- */

int main(void) {
    static fx sq = {.kind = STORE_SQLITE};
    static fx pg = {.kind = STORE_POSTGRES};
    pg.base = getenv("EHUB_TEST_PG_URL");
    if (pg.base && !*pg.base) pg.base = NULL;

    struct CMUnitTest tests[64];
    size_t n = 0;
#define T_SQ(fn) tests[n++] = (struct CMUnitTest){"sqlite/" #fn, fn, setup, teardown, &sq}
#define T_PG(fn) tests[n++] = (struct CMUnitTest){"postgres/" #fn, fn, setup, teardown, &pg}
#define T_BOTH(fn)           \
    do {                     \
        T_SQ(fn);            \
        if (pg.base) T_PG(fn); \
    } while (0)
    tests[n++] = (struct CMUnitTest){"bad_urls", test_bad_urls, NULL, NULL, NULL};
    tests[n++] = (struct CMUnitTest){"pg_unreachable", test_pg_unreachable, NULL, NULL, NULL};
    T_BOTH(test_open_migrate);
    T_BOTH(test_concurrent_migrate);
    T_BOTH(test_tenants);
    T_BOTH(test_events);
    T_BOTH(test_seq_concurrent);
    T_BOTH(test_group_rollback);
    T_BOTH(test_events_deferred);
    T_SQ(test_nested_write);
    T_BOTH(test_write_async);
    T_BOTH(test_on_commit);
    T_BOTH(test_rows);
    T_BOTH(test_insert_returning);
    T_BOTH(test_conflict);
    T_BOTH(test_conflict_rolls_back);
    T_BOTH(test_alloc_failures);
    T_BOTH(test_throughput);
    T_SQ(test_checkpointer);
    T_SQ(test_page_size);
    T_BOTH(test_purge);
    if (pg.base) {
        T_PG(test_pg_rls);
        T_PG(test_pg_reconnect);
        T_PG(test_pg_deadlock_retry);
    }
    if (!pg.base) printf("store: EHUB_TEST_PG_URL not set, PostgreSQL tests skipped\n");
    return _cmocka_run_group_tests("store", tests, n, NULL, NULL);
}
