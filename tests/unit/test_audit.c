/* auth on a real store: the audit chain under concurrent appenders (no
 * fork, no gap), what auth_audit_verify catches (an edited column, a
 * re-linked entry, a deleted middle or tail entry), users and refresh-token
 * families, webhook inbox checkpoints (split, margin, two at once, verify).
 * SQLite always; PostgreSQL too when EHUB_TEST_PG_URL is set
 * (each test in a schema of its own). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "base/clock.h"
#include "store/store.h"

typedef struct fx {
    store_kind kind;
    const char *base;
    char dir[256], schema[64], url[2048];
    store *st;
    int64_t tenant;
} fx;

static int sql_fn(store_tx *tx, void *arg, store_err *err) { return store_query(tx, arg, NULL, 0, NULL, err); }

static int pg_admin(const char *base, const char *sql) {
    store_opts o = {.no_migrate = 1, .pool_size = 1};
    store_err err;
    store *s = store_open(base, &o, &err);
    if (!s) return -1;
    int rc = store_write(s, 0, sql_fn, (void *)sql, &err);
    store_close(s);
    return rc;
}

static int tenant_fn(store_tx *tx, void *arg, store_err *err) {
    fx *f = arg;
    return store_tenant_create(tx, "acme", "Acme", &f->tenant, err);
}

static int setup(void **state) {
    fx *f = *state;
    if (f->kind == STORE_SQLITE) {
        snprintf(f->dir, sizeof f->dir, "/tmp/ehub-audit-test-XXXXXX");
        if (!mkdtemp(f->dir)) return -1;
        snprintf(f->url, sizeof f->url, "sqlite:%s/t.db", f->dir);
    } else {
        static atomic_int counter;
        snprintf(f->schema, sizeof f->schema, "ehub_audit_test_%d_%d", (int)getpid(), atomic_fetch_add(&counter, 1));
        char sql[256];
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", f->schema);
        if (pg_admin(f->base, sql)) return -1;
        snprintf(sql, sizeof sql, "CREATE SCHEMA %s", f->schema);
        if (pg_admin(f->base, sql)) return -1;
        snprintf(f->url, sizeof f->url, "%s%coptions=-csearch_path%%3D%s", f->base, strchr(f->base, '?') ? '&' : '?',
                 f->schema);
    }
    store_opts o = {.pool_size = 8};
    store_err err = {0};
    if (!(f->st = store_open(f->url, &o, &err))) {
        fprintf(stderr, "store_open: %s\n", err.msg);
        return -1;
    }
    return store_write(f->st, 0, tenant_fn, f, &err);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) { return remove(p); }

static int teardown(void **state) {
    fx *f = *state;
    store_close(f->st);
    f->st = NULL;
    if (f->kind == STORE_SQLITE) return nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    char sql[256];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", f->schema);
    return pg_admin(f->base, sql);
}

typedef struct append_arg {
    fx *f;
    int n;
    int fails;
} append_arg;

static int append_fn(store_tx *tx, void *arg, store_err *err) {
    append_arg *a = arg;
    auth_actor who = {"user:1", "10.0.0.1"};
    json_t *d = json_pack("{s:i, s:s}", "n", a->n, "note", "quote \" and newline \n");
    int rc = auth_audit(tx, store_tx_tenant(tx), &who, "test.append", "x", d, clock_wall_ms(), err);
    json_decref(d);
    return rc;
}

static void *appender(void *p) {
    append_arg *a = p;
    for (int i = 0; i < 25; i++) {
        store_err err;
        append_arg one = {a->f, i, 0};
        int rc;
        do rc = store_write(a->f->st, a->f->tenant, append_fn, &one, &err);
        while (rc == STORE_BUSY);
        if (rc) a->fails++;
    }
    return NULL;
}

typedef struct verify_arg {
    int64_t entries, bad;
    char why[200], head[65];
} verify_arg;

static int verify_fn(store_tx *tx, void *arg, store_err *err) {
    verify_arg *v = arg;
    return auth_audit_verify(tx, &v->entries, &v->bad, v->why, sizeof v->why, v->head, err);
}

static verify_arg verify(fx *f) {
    verify_arg v = {0};
    store_err err;
    assert_int_equal(store_read(f->st, f->tenant, verify_fn, &v, &err), STORE_OK);
    return v;
}

static void exec(fx *f, const char *sql) {
    store_err err;
    assert_int_equal(store_write(f->st, 0, sql_fn, (void *)sql, &err), STORE_OK);
}

static void test_chain_concurrent_and_tamper(void **state) {
    fx *f = *state;
    pthread_t th[8];
    append_arg args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (append_arg){f, 0, 0};
        pthread_create(&th[i], NULL, appender, &args[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].fails, 0);
    }
    verify_arg v = verify(f);
    assert_int_equal(v.bad, 0);
    assert_int_equal(v.entries, 200);
    assert_int_equal(strlen(v.head), 64);
    /* Edited column: caught at that entry. */
    exec(f, "UPDATE audit_log SET ip = '10.0.0.2' WHERE seq = 50");
    v = verify(f);
    assert_int_equal(v.bad, 50);
    assert_non_null(strstr(v.why, "changed"));
    exec(f, "UPDATE audit_log SET ip = '10.0.0.1' WHERE seq = 50");
    assert_int_equal(verify(f).bad, 0);
    /* NULL is not "": target NULL vs empty string differ. */
    exec(f, "UPDATE audit_log SET target = NULL WHERE seq = 7");
    assert_int_equal(verify(f).bad, 7);
    exec(f, "UPDATE audit_log SET target = 'x' WHERE seq = 7");
    /* Re-linked entry (prev_hash rewritten). */
    exec(f, "UPDATE audit_log SET prev_hash = hash WHERE seq = 120");
    v = verify(f);
    assert_int_equal(v.bad, 120);
    assert_non_null(strstr(v.why, "chain"));
    exec(f, "DELETE FROM audit_log WHERE seq >= 120");
    v = verify(f);
    assert_int_equal(v.bad, 120);
    assert_non_null(strstr(v.why, "end"));
    /* Appending after a deleted tail still leaves the gap visible. */
    append_arg one = {f, 1, 0};
    store_err err;
    assert_int_equal(store_write(f->st, f->tenant, append_fn, &one, &err), STORE_OK);
    v = verify(f);
    assert_int_equal(v.bad, 120);
    assert_non_null(strstr(v.why, "missing"));
}

typedef struct list_arg {
    int64_t before, next;
    json_t *items;
} list_arg;

static int list_fn(store_tx *tx, void *arg, store_err *err) {
    list_arg *l = arg;
    return auth_audit_list(tx, l->before, 3, &l->items, &l->next, err);
}

static void test_list_pages(void **state) {
    fx *f = *state;
    store_err err;
    for (int i = 0; i < 5; i++) {
        append_arg one = {f, i, 0};
        assert_int_equal(store_write(f->st, f->tenant, append_fn, &one, &err), STORE_OK);
    }
    list_arg l = {0};
    assert_int_equal(store_read(f->st, f->tenant, list_fn, &l, &err), STORE_OK);
    assert_int_equal(json_array_size(l.items), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(l.items, 0), "seq")), 5);
    assert_int_equal(l.next, 3);
    json_t *d = json_object_get(json_array_get(l.items, 0), "detail");
    assert_int_equal(json_integer_value(json_object_get(d, "n")), 4);
    json_decref(l.items);
    l.before = 3;
    assert_int_equal(store_read(f->st, f->tenant, list_fn, &l, &err), STORE_OK);
    assert_int_equal(json_array_size(l.items), 2);
    assert_int_equal(l.next, 0);
    json_decref(l.items);
    /* Another tenant sees none of it. */
    list_arg o = {0};
    assert_int_equal(store_read(f->st, f->tenant + 1000, list_fn, &o, &err), STORE_OK);
    assert_int_equal(json_array_size(o.items), 0);
    json_decref(o.items);
}

typedef struct tok_arg {
    fx *f;
    int64_t user, id1, id2;
    char t1[AUTH_REFRESH_LEN + 1], t2[AUTH_REFRESH_LEN + 1];
    auth_refresh r;
    auth_user u;
} tok_arg;

static int user_fn(store_tx *tx, void *arg, store_err *err) {
    tok_arg *a = arg;
    int rc = auth_user_create(tx, "ann@x.test", ROLE_AGENT, "$argon2id$fake", 0, 1000, &a->user, err);
    if (rc) return rc;
    if ((rc = auth_refresh_issue(tx, a->f->tenant, a->user, NULL, 1000, 60000, a->t1, &a->id1, err))) return rc;
    if ((rc = auth_refresh_find(tx, a->t1, &a->r, err))) return rc;
    return auth_refresh_issue(tx, a->f->tenant, a->user, a->r.family, 1000, 60000, a->t2, &a->id2, err);
}

static int dup_fn(store_tx *tx, void *arg, store_err *err) {
    int64_t id;
    return auth_user_create(tx, "ann@x.test", ROLE_VIEWER, "$argon2id$fake", 0, 1000, &id, err);
}

static int bad_agent_fn(store_tx *tx, void *arg, store_err *err) {
    int64_t id;
    return auth_user_create(tx, "bob@x.test", ROLE_VIEWER, "$argon2id$fake", 424242, 1000, &id, err);
}

static int revoke_fn(store_tx *tx, void *arg, store_err *err) {
    tok_arg *a = arg;
    int rc = auth_refresh_revoke_all(tx, a->r.family, 0, 0, 2000, err);
    if (rc) return rc;
    if ((rc = auth_refresh_find(tx, a->t2, &a->r, err))) return rc;
    return auth_user_find_login(tx, "acme", "ann@x.test", &a->u, err);
}

static void test_users_and_refresh_families(void **state) {
    fx *f = *state;
    tok_arg a = {.f = f};
    store_err err;
    assert_int_equal(store_write(f->st, f->tenant, user_fn, &a, &err), STORE_OK);
    assert_true(auth_refresh_wellformed(a.t1, strlen(a.t1)) && strcmp(a.t1, a.t2) != 0);
    assert_int_equal(a.r.user, a.user);
    assert_int_equal(a.r.revoked_at, 0);
    assert_int_equal(a.r.expires_at, 61000);
    assert_int_equal(store_write(f->st, f->tenant, dup_fn, &a, &err), STORE_CONFLICT);
    assert_int_equal(store_write(f->st, f->tenant, bad_agent_fn, &a, &err), STORE_INVALID);
    assert_int_equal(store_write(f->st, 0, revoke_fn, &a, &err), STORE_OK);
    assert_int_equal(a.r.revoked_at, 2000); /* t2 went with the family */
    assert_int_equal(a.u.id, a.user);
    assert_int_equal(a.u.role, ROLE_AGENT);
    assert_string_equal(a.u.tenant_slug, "acme");
}

/* ---- webhook inbox checkpoints ---- */

typedef struct inbox_arg {
    int64_t other;      /* a second tenant whose rows interleave */
    int n, young, legacy;
} inbox_arg;

static int beta_fn(store_tx *tx, void *arg, store_err *err) {
    return store_tenant_create(tx, "beta", "Beta", (int64_t *)arg, err);
}

/* n rows for the fixture's tenant, each followed by one of `other`'s (so
 * every row is a run of its own); `young` more at the end received now;
 * the first `legacy` rows without body_hash, as before migration 013. */
static int inbox_fill(store_tx *tx, void *arg, store_err *err) {
    inbox_arg *a = arg;
    int64_t now = clock_wall_ms(), t = store_tx_tenant(tx);
    int rc = STORE_OK;
    for (int i = 0; !rc && i < a->n + a->young; i++) {
        for (int k = 0; !rc && k < (i < a->n ? 2 : 1); k++) {
            char wid[48], body[96], bh[AUTH_HASH_HEX];
            snprintf(wid, sizeof wid, "wh-%d-%d", i, k);
            snprintf(body, sizeof body, "{\"n\":%d,\"email\":\"p%d@example.com\"}", i, i);
            auth_body_hash_hex(body, strlen(body), bh);
            store_val v[] = {SV_I(k ? a->other : t), SV_S(wid), SV_S(body), SV_I(i < a->n ? now - 60000 : now),
                             i < a->legacy ? SV_NULLV : SV_S(bh)};
            rc = store_query(tx,
                             "INSERT INTO webhook_inbox (tenant_id, provider, webhook_id, type, body, received_at, "
                             "body_hash) VALUES ($1, 'ghl', $2, 'ContactCreate', $3, $4, $5)",
                             v, 5, NULL, err);
        }
    }
    return rc;
}

typedef struct cp_arg {
    int64_t margin, rows;
    int entries;
} cp_arg;

static int cp_fn(store_tx *tx, void *arg, store_err *err) {
    cp_arg *c = arg;
    return auth_inbox_checkpoint(tx, c->margin, clock_wall_ms(), &c->entries, &c->rows, err);
}

static int inbox_verify_fn(store_tx *tx, void *arg, store_err *err) { return auth_inbox_verify(tx, arg, err); }

typedef struct cp_thread {
    fx *f;
    cp_arg c;
    int rc;
} cp_thread;

static void *checkpointer(void *p) {
    cp_thread *t = p;
    store_err err;
    /* an entry a transaction: go on until one writes nothing */
    int entries = 0;
    int64_t rows = 0;
    do {
        do t->rc = store_write(t->f->st, t->f->tenant, cp_fn, &t->c, &err);
        while (t->rc == STORE_BUSY);
        entries += t->c.entries;
        rows += t->c.rows;
    } while (t->rc == STORE_OK && t->c.entries);
    t->c.entries = entries;
    t->c.rows = rows;
    return NULL;
}

static void test_inbox_checkpoints(void **state) {
    fx *f = *state;
    store_err err;
    inbox_arg ia = {.n = 450, .young = 3, .legacy = 5};
    assert_int_equal(store_write(f->st, 0, beta_fn, &ia.other, &err), STORE_OK);
    assert_int_equal(store_write(f->st, f->tenant, inbox_fill, &ia, &err), STORE_OK);
    /* Two checkpointers at once: one covers, the other finds the mark
     * moved (PostgreSQL: waits on the tenant row) and writes nothing. */
    pthread_t th[2];
    cp_thread ct[2] = {{f, {.margin = 5000}, 0}, {f, {.margin = 5000}, 0}};
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, checkpointer, &ct[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    assert_int_equal(ct[0].rc, STORE_OK);
    assert_int_equal(ct[1].rc, STORE_OK);
    /* 450 old rows, each a run of its own: entries of at most 200 runs;
     * the 3 young ones wait for the margin */
    assert_int_equal(ct[0].c.rows + ct[1].c.rows, 450);
    assert_int_equal(ct[0].c.entries + ct[1].c.entries, 3);
    auth_inbox_report rep;
    assert_int_equal(store_read(f->st, f->tenant, inbox_verify_fn, &rep, &err), STORE_OK);
    assert_int_equal(rep.bad_seq, 0);
    assert_int_equal(rep.checkpoints, 3);
    assert_int_equal(rep.rows, 450);
    verify_arg v = verify(f);
    assert_int_equal(v.bad, 0);
    /* without a margin the young rows go in a fourth entry */
    cp_arg c = {.margin = 0};
    assert_int_equal(store_write(f->st, f->tenant, cp_fn, &c, &err), STORE_OK);
    assert_int_equal(c.entries, 1);
    assert_int_equal(c.rows, 3);
    assert_int_equal(store_write(f->st, f->tenant, cp_fn, &c, &err), STORE_OK);
    assert_int_equal(c.entries, 0);
    assert_int_equal(store_read(f->st, f->tenant, inbox_verify_fn, &rep, &err), STORE_OK);
    assert_int_equal(rep.bad_seq, 0);
    assert_int_equal(rep.rows, 453);
    /* the other tenant's rows are its own */
    int64_t me = f->tenant;
    f->tenant = ia.other;
    cp_thread all = {f, {.margin = 0}, 0};
    checkpointer(&all); /* its rows alternate with ours: 3 entries of 200 runs at most */
    assert_int_equal(all.rc, STORE_OK);
    assert_int_equal(all.c.entries, 3);
    assert_int_equal(all.c.rows, 450);
    assert_int_equal(store_read(f->st, f->tenant, inbox_verify_fn, &rep, &err), STORE_OK);
    assert_int_equal(rep.bad_seq, 0);
    f->tenant = me;
    /* a legacy row got its hash from the checkpoint; editing it now is caught */
    exec(f, "UPDATE webhook_inbox SET body = '{\"n\":0}' WHERE webhook_id = 'wh-0-0'");
    assert_int_equal(store_read(f->st, f->tenant, inbox_verify_fn, &rep, &err), STORE_OK);
    assert_true(rep.bad_seq > 0);
    assert_true(rep.bad_row > 0);
    assert_non_null(strstr(rep.why, "was edited"));
}

/* n contiguous rows for the fixture's tenant: one run, so only the row cap splits it */
static int inbox_run(store_tx *tx, void *arg, store_err *err) {
    int n = *(int *)arg, rc = STORE_OK;
    for (int i = 0; !rc && i < n; i++) {
        char wid[32];
        snprintf(wid, sizeof wid, "run-%d", i);
        store_val v[] = {SV_I(store_tx_tenant(tx)), SV_S(wid), SV_I(clock_wall_ms() - 60000), SV_S(auth_empty_body_hash)};
        rc = store_query(tx,
                         "INSERT INTO webhook_inbox (tenant_id, provider, webhook_id, type, body, received_at, "
                         "body_hash) VALUES ($1, 'ghl', $2, 'ContactCreate', '{}', $3, $4)",
                         v, 4, NULL, err);
    }
    return rc;
}

/* An entry holds at most AUTH_CHECKPOINT_ROWS rows and a transaction writes
 * one entry: 2.5 entries' worth of rows take three transactions. */
static void test_inbox_checkpoint_rows(void **state) {
    fx *f = *state;
    store_err err;
    int n = AUTH_CHECKPOINT_ROWS * 5 / 2;
    assert_int_equal(store_write(f->st, f->tenant, inbox_run, &n, &err), STORE_OK);
    cp_arg c = {.margin = 0};
    assert_int_equal(store_write(f->st, f->tenant, cp_fn, &c, &err), STORE_OK);
    assert_int_equal(c.entries, 1);
    assert_int_equal(c.rows, AUTH_CHECKPOINT_ROWS);
    cp_thread rest = {f, {.margin = 0}, 0};
    checkpointer(&rest);
    assert_int_equal(rest.rc, STORE_OK);
    assert_int_equal(rest.c.entries, 2);
    assert_int_equal(rest.c.rows, n - AUTH_CHECKPOINT_ROWS);
    auth_inbox_report rep;
    assert_int_equal(store_read(f->st, f->tenant, inbox_verify_fn, &rep, &err), STORE_OK);
    assert_int_equal(rep.bad_seq, 0);
    assert_int_equal(rep.checkpoints, 3);
    assert_int_equal(rep.rows, n);
}

int main(void) {
    static fx sq = {.kind = STORE_SQLITE}, pg = {.kind = STORE_POSTGRES};
    pg.base = getenv("EHUB_TEST_PG_URL");
    if (pg.base && !*pg.base) pg.base = NULL;
    struct CMUnitTest tests[10];
    size_t n = 0;
#define T(fn)                                                                                \
    do {                                                                                     \
        tests[n++] = (struct CMUnitTest){"sqlite/" #fn, fn, setup, teardown, &sq};           \
        if (pg.base) tests[n++] = (struct CMUnitTest){"postgres/" #fn, fn, setup, teardown, &pg}; \
    } while (0)
    T(test_chain_concurrent_and_tamper);
    T(test_list_pages);
    T(test_users_and_refresh_families);
    T(test_inbox_checkpoints);
    T(test_inbox_checkpoint_rows);
    if (!pg.base) printf("audit: EHUB_TEST_PG_URL not set, PostgreSQL tests skipped\n");
    return _cmocka_run_group_tests("audit", tests, n, NULL, NULL);
}
