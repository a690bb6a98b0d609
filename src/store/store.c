/* store.c — the public storage API: picks a backend from the URL, validates
 * arguments, applies the callback rules, and implements what is the same on
 * both engines (migrations, tenants, the event log, result sets). */
#include "store.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/alloc.h"
#include "../base/buf.h"
#include "../base/clock.h"
#include "backend.h"
#include "migrations.h"

/* Largest result set we materialise; past it a query fails instead of
 * growing without bound. */
#define ROWS_MAX_BYTES ((size_t)1 << 30)
#define MAX_PARAMS 65535

/* ---- errors ---- */

void store__err(store_err *err, int code, const char *fmt, ...) {
    if (!err) return;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

static void err_clear(store_err *err) {
    if (!err) return;
    err->code = 0;
    err->msg[0] = '\0';
}

/* ---- transactions ---- */

void store__tx_init(store_tx *tx, store *s, int64_t tenant, int readonly, void *conn) {
    memset(tx, 0, sizeof *tx);
    tx->s = s;
    tx->tenant = tenant;
    tx->readonly = readonly;
    tx->conn = conn;
}

void store__tx_clear(store_tx *tx) {
    for (int i = 0; i < tx->nev; i++) {
        eh_free((char *)tx->ev[i].type);
        eh_free((char *)tx->ev[i].payload);
    }
    eh_free(tx->ev);
    tx->ev = NULL;
    tx->nev = tx->evcap = 0;
    for (int i = 0; i < tx->npend; i++) {
        eh_free((char *)tx->pend[i].type);
        eh_free((char *)tx->pend[i].payload);
    }
    eh_free(tx->pend);
    tx->pend = NULL;
    tx->npend = tx->pendcap = 0;
}

void store__tx_fail(store_tx *tx, const store_err *err) {
    if (tx->fail.code) return;
    tx->fail = *err;
}

int store__run_fn(store_tx *tx, store_fn fn, void *arg, store_err *err) {
    err_clear(err);
    int rc = fn(tx, arg, err);
    /* The callback's deferred events are written inside its transaction
     * (its savepoint on SQLite): a failure here fails the callback. */
    if (rc == 0 && !tx->fail.code && tx->npend) rc = store__flush_events(tx, err);
    if (rc != 0) {
        if (err->code == 0) store__err(err, STORE_ABORTED, "transaction callback aborted");
        return err->code;
    }
    if (tx->fail.code) {
        /* The callback ignored a failed statement; the transaction cannot
         * commit, so report that statement's error. */
        *err = tx->fail;
        return err->code;
    }
    err_clear(err);
    return 0;
}

void store__tx_committed(store_tx *tx) {
    if (tx->nev && tx->s->opts.on_commit)
        tx->s->opts.on_commit(tx->s->opts.on_commit_ud, tx->ev, tx->nev);
}

void store__on_query(store *s, uint64_t start_ns, int ok) {
    if (!s->opts.on_query) return;
    s->opts.on_query(s->opts.on_query_ud, (double)(clock_mono_ns() - start_ns) / 1e9, ok);
}

size_t store__fmt_int(int64_t v, char out[24]) {
    /* result cells are text: every integer of every row goes through here */
    char t[24];
    size_t n = sizeof t;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do t[--n] = (char)('0' + u % 10); while ((u /= 10));
    if (v < 0) t[--n] = '-';
    memcpy(out, t + n, sizeof t - n);
    out[sizeof t - n] = 0;
    return sizeof t - n;
}

void store__fmt_double(double d, char *out, size_t outlen) {
    /* Shortest of 15..17 significant digits that round-trips. */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, outlen, "%.*g", prec, d);
        if (strtod(out, NULL) == d) return;
    }
}

/* ---- result sets ----
 * All text lives in one buffer (each cell NUL-terminated); cells are offsets
 * into it, so a result is three allocations however many rows it has. */

#define NULL_OFF ((size_t)-1)

struct store_rows {
    int ncols;
    size_t ncells, capcells;
    size_t *off;  /* NULL_OFF for SQL NULL */
    size_t *len;
    size_t *name_off;
    buf data;
};

store_rows *store__rows_new(int ncols) {
    store_rows *r = eh_calloc(1, sizeof *r);
    if (!r) return NULL;
    r->ncols = ncols;
    buf_init(&r->data, ROWS_MAX_BYTES);
    if (ncols > 0) {
        r->name_off = eh_calloc((size_t)ncols, sizeof *r->name_off);
        if (!r->name_off) {
            eh_free(r);
            return NULL;
        }
    }
    return r;
}

int store__rows_name(store_rows *r, int col, const char *name) {
    r->name_off[col] = r->data.len;
    if (buf_append(&r->data, name, strlen(name) + 1)) return STORE_NOMEM;
    return STORE_OK;
}

int store__rows_cell(store_rows *r, const char *p, size_t n) {
    if (r->ncells == r->capcells) {
        size_t cap = r->capcells ? r->capcells * 2 : 16;
        size_t *off = eh_realloc(r->off, cap * sizeof *off);
        if (!off) return STORE_NOMEM;
        r->off = off;
        size_t *len = eh_realloc(r->len, cap * sizeof *len);
        if (!len) return STORE_NOMEM;
        r->len = len;
        r->capcells = cap;
    }
    if (!p) {
        r->off[r->ncells] = NULL_OFF;
        r->len[r->ncells] = 0;
    } else {
        size_t at = r->data.len;
        /* Append the bytes and a terminator (the buffer adds its own NUL after
         * len, but the next cell would overwrite it). */
        if (buf_append(&r->data, p, n) || buf_append(&r->data, "", 1)) return STORE_NOMEM;
        r->off[r->ncells] = at;
        r->len[r->ncells] = n;
    }
    r->ncells++;
    return STORE_OK;
}

int store_rows_count(const store_rows *r) {
    return r && r->ncols > 0 ? (int)(r->ncells / (size_t)r->ncols) : 0;
}
int store_rows_cols(const store_rows *r) { return r ? r->ncols : 0; }

const char *store_rows_name(const store_rows *r, int col) {
    if (!r || col < 0 || col >= r->ncols) return NULL;
    return r->data.p + r->name_off[col];
}

static size_t cell_index(const store_rows *r, int row, int col, int *ok) {
    *ok = r && row >= 0 && col >= 0 && col < r->ncols && row < store_rows_count(r);
    return *ok ? (size_t)row * (size_t)r->ncols + (size_t)col : 0;
}

int store_rows_isnull(const store_rows *r, int row, int col) {
    int ok;
    size_t i = cell_index(r, row, col, &ok);
    return !ok || r->off[i] == NULL_OFF;
}

const char *store_rows_text(const store_rows *r, int row, int col) {
    int ok;
    size_t i = cell_index(r, row, col, &ok);
    if (!ok || r->off[i] == NULL_OFF) return NULL;
    return r->data.p + r->off[i];
}

size_t store_rows_len(const store_rows *r, int row, int col) {
    int ok;
    size_t i = cell_index(r, row, col, &ok);
    return ok ? r->len[i] : 0;
}

int64_t store_rows_int(const store_rows *r, int row, int col) {
    const char *t = store_rows_text(r, row, col);
    if (!t) return 0;
    long long v = strtoll(t, NULL, 10);
    return (int64_t)v;
}

double store_rows_real(const store_rows *r, int row, int col) {
    const char *t = store_rows_text(r, row, col);
    return t ? strtod(t, NULL) : 0.0;
}

void store_rows_free(store_rows *r) {
    if (!r) return;
    eh_free(r->off);
    eh_free(r->len);
    eh_free(r->name_off);
    buf_free(&r->data);
    eh_free(r);
}

/* ---- statement cache ---- */

/* Every query looks its statement up by its text (hundreds of bytes):
 * the hash takes eight bytes a step, not one. */
static uint64_t sc_hash(const char *s) {
    size_t n = strlen(s), i = 0;
    uint64_t h = 1469598103934665603ull ^ n, w;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    w = 0;
    memcpy(&w, s + i, n - i);
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 32);
}

void sc_init(stmt_cache *c, int cap, void (*drop)(void *ud, void *val), void *ud) {
    memset(c, 0, sizeof *c);
    c->cap = cap;
    c->drop = drop;
    c->ud = ud;
}

static void lru_unlink(stmt_cache *c, sc_entry *e) {
    if (e->prev) e->prev->next = e->next;
    else c->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(stmt_cache *c, sc_entry *e) {
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

static sc_entry **sc_slot(stmt_cache *c, const char *sql, uint64_t h) {
    sc_entry **pp = &c->bucket[h % SC_BUCKETS];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->sql, sql) != 0)) pp = &(*pp)->hnext;
    return pp;
}

static void sc_drop_entry(stmt_cache *c, sc_entry *e) {
    sc_entry **pp = sc_slot(c, e->sql, e->hash);
    if (*pp == e) *pp = e->hnext;
    lru_unlink(c, e);
    c->n--;
    if (c->drop) c->drop(c->ud, e->val);
    eh_free(e);
}

void *sc_get(stmt_cache *c, const char *sql) {
    uint64_t h = sc_hash(sql);
    sc_entry *e = *sc_slot(c, sql, h);
    if (!e) return NULL;
    if (c->head != e) {
        lru_unlink(c, e);
        lru_push_front(c, e);
    }
    return e->val;
}

int sc_put(stmt_cache *c, const char *sql, void *val) {
    size_t n = strlen(sql);
    sc_entry *e = eh_malloc(sizeof *e + n + 1);
    if (!e) return STORE_NOMEM;
    memcpy(e->sql, sql, n + 1);
    e->hash = sc_hash(sql);
    e->val = val;
    if (c->n >= c->cap && c->tail) sc_drop_entry(c, c->tail);
    sc_entry **pp = &c->bucket[e->hash % SC_BUCKETS];
    e->hnext = *pp;
    *pp = e;
    lru_push_front(c, e);
    c->n++;
    return STORE_OK;
}

void sc_remove(stmt_cache *c, const char *sql) {
    sc_entry *e = *sc_slot(c, sql, sc_hash(sql));
    if (e) sc_drop_entry(c, e);
}

void sc_clear(stmt_cache *c) {
    while (c->head) sc_drop_entry(c, c->head);
}

/* ---- opening and closing ---- */

const char *store_kind_name(store_kind k) {
    return k == STORE_SQLITE ? "sqlite" : k == STORE_POSTGRES ? "postgres" : "unknown";
}

store_kind store_get_kind(const store *s) { return s->kind; }

static void log_store(const store *s, log_level lvl, const char *msg, const store_err *err) {
    log_line l;
    if (!log_begin(s->opts.log, &l, lvl, msg)) return;
    log_str(&l, "store", store_kind_name(s->kind));
    if (err && err->code) {
        log_int(&l, "code", err->code);
        log_str(&l, "error", err->msg);
    }
    log_end(&l);
}

store *store_open(const char *url, const store_opts *opts, store_err *err) {
    err_clear(err);
    store_err local;
    if (!err) err = &local;
    if (!url || !*url) {
        store__err(err, STORE_INVALID, "empty store URL");
        return NULL;
    }
    const store_backend *be;
    store_kind kind;
    if (strncmp(url, "sqlite:", 7) == 0) {
        be = &store_sqlite_backend;
        kind = STORE_SQLITE;
    } else if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0) {
        be = &store_pg_backend;
        kind = STORE_POSTGRES;
    } else {
        store__err(err, STORE_INVALID, "unsupported store URL (want sqlite:PATH or postgres://...)");
        return NULL;
    }
    if (opts && (opts->pool_size < 0 || opts->pool_size > 256 || opts->busy_timeout_ms < 0)) {
        store__err(err, STORE_INVALID, "pool_size must be 0-256 and busy_timeout_ms >= 0");
        return NULL;
    }
    store *s = eh_calloc(1, sizeof *s);
    if (!s) {
        store__err(err, STORE_NOMEM, "out of memory");
        return NULL;
    }
    if (opts) s->opts = *opts;
    if (s->opts.pool_size == 0) s->opts.pool_size = 4;
    if (s->opts.busy_timeout_ms == 0) s->opts.busy_timeout_ms = 5000;
    s->kind = kind;
    s->be = be;
    s->migrations = kind == STORE_SQLITE ? sqlite_migrations : postgres_migrations;
    if (be->open(s, url, err)) {
        log_store(s, LOG_ERROR, "store.open_failed", err);
        eh_free(s);
        return NULL;
    }
    if (!s->opts.no_migrate && store_migrate(s, NULL, err)) {
        log_store(s, LOG_ERROR, "store.migrate_failed", err);
        store_close(s);
        return NULL;
    }
    log_store(s, LOG_INFO, "store.open", NULL);
    return s;
}

void store_close(store *s) {
    if (!s) return;
    s->be->close(s);
    eh_free(s);
}

int store_checkpoint(store *s, store_err *err) {
    err_clear(err);
    store_err local;
    return s->be->checkpoint ? s->be->checkpoint(s, err ? err : &local) : STORE_OK;
}

int store_purge(store *s, const char *const *tables, int n, size_t rewrite_max, store_purge_report *rep,
                store_err *err) {
    err_clear(err);
    store_err local;
    store_purge_report r;
    memset(&r, 0, sizeof r);
    if (!err) err = &local;
    int rc = STORE_OK;
    for (int i = 0; i < n && !rc; i++) {
        /* the names are spliced into VACUUM / ANALYZE: only plain identifiers */
        size_t len = tables[i] ? strlen(tables[i]) : 0;
        if (!len || len > 63 || strspn(tables[i], "abcdefghijklmnopqrstuvwxyz_") != len) {
            store__err(err, STORE_INVALID, "store_purge: not a table name");
            rc = STORE_INVALID;
        }
    }
    if (!rc) {
        if (s->be->purge) rc = s->be->purge(s, tables, n, rewrite_max, &r, err);
        else {
            rc = s->be->checkpoint ? s->be->checkpoint(s, err) : STORE_OK;
            r.clean = rc == STORE_OK;
        }
    }
    if (rep) *rep = r;
    return rc;
}

int store_ping(store *s, store_err *err) {
    err_clear(err);
    store_err local;
    return s->be->ping(s, err ? err : &local);
}

/* ---- transactions ---- */

int store_write(store *s, int64_t tenant, store_fn fn, void *arg, store_err *err) {
    err_clear(err);
    store_err local;
    if (!err) err = &local;
    if (!s || !fn || tenant < 0) {
        store__err(err, STORE_INVALID, "store_write: bad argument");
        return STORE_INVALID;
    }
    return s->be->write(s, tenant, fn, arg, err);
}

int store_write_async(store *s, int64_t tenant, store_fn fn, void *arg, store_done_fn done, void *done_arg,
                      store_err *err) {
    err_clear(err);
    store_err local;
    if (!err) err = &local;
    if (!s || !fn || !done || tenant < 0) {
        store__err(err, STORE_INVALID, "store_write_async: bad argument");
        return STORE_INVALID;
    }
    if (s->be->write_async) return s->be->write_async(s, tenant, fn, arg, done, done_arg, err);
    /* No writer thread to hand the work to (PostgreSQL): the transaction
     * runs here, as store_write's would, and its outcome is reported the
     * same way. */
    store_err e;
    int rc = store_write(s, tenant, fn, arg, &e);
    done(done_arg, rc, &e);
    return STORE_OK;
}

int store_write_queues(const store *s) { return s && s->be->write_async != NULL; }

int store_read(store *s, int64_t tenant, store_fn fn, void *arg, store_err *err) {
    err_clear(err);
    store_err local;
    if (!err) err = &local;
    if (!s || !fn || tenant < 0) {
        store__err(err, STORE_INVALID, "store_read: bad argument");
        return STORE_INVALID;
    }
    return s->be->read(s, tenant, fn, arg, err);
}

int64_t store_tx_tenant(const store_tx *tx) { return tx->tenant; }
store_kind store_tx_kind(const store_tx *tx) { return tx->s->kind; }
void *store_tx_ctx(const store_tx *tx) { return tx->s->opts.ctx; }
int64_t store_tx_changes(const store_tx *tx) { return tx->changes; }

/* Skips blanks and SQL comments. */
static const char *skip_space(const char *p) {
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n') p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
        } else {
            return p;
        }
    }
}

/* The store owns transaction boundaries (and, on SQLite, shares one
 * transaction among many callers), so SQL must not end or nest them. */
static int is_tx_control(const char *sql) {
    static const char *const words[] = {"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT",
                                        "RELEASE", "START", "ABORT"};
    const char *p = skip_space(sql);
    size_t n = 0;
    while (isalpha((unsigned char)p[n])) n++;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i]) == n && strncasecmp(p, words[i], n) == 0) return 1;
    return 0;
}

int store_query(store_tx *tx, const char *sql, const store_val *params, int n,
                store_rows **rows, store_err *err) {
    store_err local;
    if (!err) err = &local;
    if (rows) *rows = NULL;
    if (!tx || !sql || n < 0 || n > MAX_PARAMS || (n > 0 && !params)) {
        store__err(err, STORE_INVALID, "store_query: bad argument");
        return STORE_INVALID;
    }
    if (tx->fail.code) {
        store__err(err, tx->fail.code, "transaction already failed: %s", tx->fail.msg);
        return err->code;
    }
    for (int i = 0; i < n; i++) {
        const store_val *v = &params[i];
        if (v->t < SV_NULL || v->t > SV_BLOB) {
            store__err(err, STORE_INVALID, "parameter $%d: bad type", i + 1);
            return STORE_INVALID;
        }
        if ((v->t == SV_TEXT || v->t == SV_BLOB) && !v->s && v->n) {
            store__err(err, STORE_INVALID, "parameter $%d: NULL pointer with length", i + 1);
            return STORE_INVALID;
        }
        /* PostgreSQL text cannot hold NUL; refuse it on both engines. */
        if (v->t == SV_TEXT && v->s && memchr(v->s, 0, v->n)) {
            store__err(err, STORE_INVALID, "parameter $%d: text contains a NUL byte", i + 1);
            return STORE_INVALID;
        }
    }
    /* Read your own writes: a statement about the event log (events, or
     * tenants.event_seq) first gets this transaction's deferred events. */
    if (tx->npend && strstr(sql, "event")) {
        int rc = store__flush_events(tx, err);
        if (rc) return rc;
    }
    if (is_tx_control(sql)) {
        store__err(err, STORE_INVALID, "transaction control statements are not allowed");
        return STORE_INVALID;
    }
    return tx->s->be->query(tx, sql, params, n, rows, err);
}

int store_insert_returning(store_tx *tx, const char *insert_sql, const char *table, const char *cols,
                           const store_val *params, int n, store_rows **rows, store_err *err) {
    *rows = NULL;
    buf q;
    buf_init(&q, 64 * 1024);
    int rc;
    if (tx->s->kind == STORE_POSTGRES) {
        buf_puts(&q, insert_sql);
        buf_puts(&q, " RETURNING ");
        if (buf_puts(&q, cols)) {
            rc = STORE_NOMEM;
            store__err(err, rc, "out of memory");
        } else {
            rc = store_query(tx, q.p, params, n, rows, err);
        }
        buf_free(&q);
        return rc;
    }
    if ((rc = store_query(tx, insert_sql, params, n, NULL, err))) {
        buf_free(&q);
        return rc;
    }
    /* the writer's own last insert: nothing runs between the two on its
     * connection (no triggers on these tables) */
    int64_t changed = tx->changes;
    buf_puts(&q, "SELECT ");
    buf_puts(&q, cols);
    buf_puts(&q, " FROM ");
    buf_puts(&q, table);
    /* an INSERT that wrote nothing (ON CONFLICT DO NOTHING) answers no
     * row, as its RETURNING would, not the connection's previous insert */
    if (buf_puts(&q, changed ? " WHERE rowid = last_insert_rowid()" : " WHERE 0")) {
        rc = STORE_NOMEM;
        store__err(err, rc, "out of memory");
        store__tx_fail(tx, err);
    } else {
        rc = store_query(tx, q.p, NULL, 0, rows, err);
    }
    tx->changes = changed;
    buf_free(&q);
    return rc;
}

/* ---- migrations ---- */

static int known_version(const store *s) {
    int v = 0;
    for (const store_migration *m = s->migrations; m->sql; m++)
        if (m->version > v) v = m->version;
    return v;
}

/* Any fixed number will do; every node must use the same one. ("ehub") */
#define MIGRATE_LOCK_KEY "1701344610"

typedef struct mig_ctx {
    int applied;
    int64_t now;
} mig_ctx;

static int migrate_fn(store_tx *tx, void *arg, store_err *err) {
    mig_ctx *mc = arg;
    store *s = tx->s;
    mc->applied = 0;  /* the callback may be retried */
    /* Transaction-scoped, so it is released by COMMIT/ROLLBACK even if this
     * node dies, and it is held for the whole migration. Two nodes starting
     * together: the second waits here, then sees the first one's rows. */
    if (s->kind == STORE_POSTGRES &&
        store_query(tx, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", NULL, 0, NULL, err))
        return err->code;
    int rc = s->be->exec_script(tx,
                                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                " version integer PRIMARY KEY,"
                                " name text NOT NULL,"
                                " applied_at bigint NOT NULL)",
                                err);
    if (rc) return rc;
    store_rows *r;
    rc = store_query(tx, "SELECT version FROM schema_migrations", NULL, 0, &r, err);
    if (rc) return rc;
    int nr = store_rows_count(r);
    for (const store_migration *m = s->migrations; m->sql; m++) {
        int done = 0;
        for (int i = 0; i < nr && !done; i++) done = store_rows_int(r, i, 0) == m->version;
        if (done) continue;
        rc = s->be->exec_script(tx, m->sql, err);
        if (rc) {
            /* Say which file failed; the engine's text follows. */
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "migration %03d_%.30s: %.190s", m->version, m->name, err->msg);
            memcpy(err->msg, msg, sizeof msg);
            break;
        }
        store_val p[3] = {SV_I(m->version), SV_S(m->name), SV_I(mc->now)};
        rc = store_query(tx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                         p, 3, NULL, err);
        if (rc) break;
        mc->applied++;
        log_line l;
        if (log_begin(s->opts.log, &l, LOG_INFO, "store.migration_applied")) {
            log_int(&l, "version", m->version);
            log_str(&l, "name", m->name);
            log_end(&l);
        }
    }
    store_rows_free(r);
    return rc;
}

int store_migrate(store *s, int *applied, store_err *err) {
    if (applied) *applied = 0;
    mig_ctx mc = {0, clock_wall_ms()};
    int rc = store_write(s, 0, migrate_fn, &mc, err);
    if (rc == 0 && applied) *applied = mc.applied;
    return rc;
}

typedef struct ver_ctx {
    int applied;
} ver_ctx;

static int version_fn(store_tx *tx, void *arg, store_err *err) {
    ver_ctx *vc = arg;
    store_rows *r;
    /* Ask whether the table exists first: a failed SELECT would doom the
     * transaction on PostgreSQL. */
    const char *exists = tx->s->kind == STORE_SQLITE
                             ? "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
                             : "SELECT to_regclass('schema_migrations') IS NOT NULL";
    int rc = store_query(tx, exists, NULL, 0, &r, err);
    if (rc) return rc;
    int have = store_rows_int(r, 0, 0) != 0;
    store_rows_free(r);
    vc->applied = 0;
    if (!have) return 0;
    rc = store_query(tx, "SELECT coalesce(max(version), 0) FROM schema_migrations", NULL, 0, &r, err);
    if (rc) return rc;
    vc->applied = (int)store_rows_int(r, 0, 0);
    store_rows_free(r);
    return 0;
}

int store_schema_version(store *s, int *applied, int *known, store_err *err) {
    ver_ctx vc = {0};
    int rc = store_read(s, 0, version_fn, &vc, err);
    if (applied) *applied = rc ? 0 : vc.applied;
    if (known) *known = known_version(s);
    return rc;
}

/* ---- tenants ---- */

static int slug_ok(const char *s) {
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return 0;
        if (n >= 64) return 0;
    }
    return n >= 1;
}

int store_tenant_create(store_tx *tx, const char *slug, const char *name, int64_t *id,
                        store_err *err) {
    store_err local;
    if (!err) err = &local;
    if (!tx || !slug || !slug_ok(slug)) {
        store__err(err, STORE_INVALID, "tenant slug must be 1-64 of [a-z0-9_-]");
        return STORE_INVALID;
    }
    if (!name || !*name || strlen(name) > 200) {
        store__err(err, STORE_INVALID, "tenant name must be 1-200 bytes");
        return STORE_INVALID;
    }
    if (tx->tenant != 0 || tx->readonly) {
        store__err(err, STORE_INVALID, "tenants are created in a store_write with tenant 0");
        return STORE_INVALID;
    }
    store_val p[3] = {SV_S(slug), SV_S(name), SV_I(clock_wall_ms())};
    store_rows *r;
    int rc = store_query(tx, "INSERT INTO tenants (slug, name, created_at) VALUES ($1, $2, $3) RETURNING id",
                         p, 3, &r, err);
    if (rc == STORE_CONFLICT) store__err(err, STORE_CONFLICT, "tenant slug already exists");
    if (rc) return rc;
    if (id) *id = store_rows_int(r, 0, 0);
    store_rows_free(r);
    return STORE_OK;
}

int store_tenant_find(store_tx *tx, const char *slug, int64_t *id, store_err *err) {
    store_err local;
    if (!err) err = &local;
    if (!tx || !slug || !slug_ok(slug)) {
        /* A malformed slug cannot exist; say so without touching the DB. */
        store__err(err, STORE_NOTFOUND, "tenant not found");
        return STORE_NOTFOUND;
    }
    store_val p[1] = {SV_S(slug)};
    store_rows *r;
    int rc = store_query(tx, "SELECT id FROM tenants WHERE slug = $1", p, 1, &r, err);
    if (rc) return rc;
    if (store_rows_count(r) == 0) {
        store_rows_free(r);
        store__err(err, STORE_NOTFOUND, "tenant not found");
        return STORE_NOTFOUND;
    }
    if (id) *id = store_rows_int(r, 0, 0);
    store_rows_free(r);
    return STORE_OK;
}

/* ---- event log ---- */

static int keep_event(store_tx *tx, int64_t seq, int64_t ms, const char *type, const char *payload) {
    if (tx->nev == tx->evcap) {
        int cap = tx->evcap ? tx->evcap * 2 : 4;
        store_event *ev = eh_realloc(tx->ev, (size_t)cap * sizeof *ev);
        if (!ev) return STORE_NOMEM;
        tx->ev = ev;
        tx->evcap = cap;
    }
    char *t = eh_strdup(type), *p = eh_strdup(payload);
    if (!t || !p) {
        eh_free(t);
        eh_free(p);
        return STORE_NOMEM;
    }
    tx->ev[tx->nev++] = (store_event){tx->tenant, seq, ms, t, p};
    return STORE_OK;
}

/* Takes n event numbers from the tenant row; *last is the highest. On
 * PostgreSQL one UPDATE ... RETURNING; on SQLite the UPDATE, then a SELECT
 * of the row: a RETURNING there collects its rows in an ephemeral table
 * made for every run, ~17k instructions more than the SELECT (callgrind),
 * and the writer is alone on the row either way. STORE_NOTFOUND without a
 * tenant row. */
static int take_seqs(store_tx *tx, int n, int64_t *last, store_err *err) {
    store_val p[2] = {SV_I(tx->tenant), SV_I(n)};
    store_rows *r = NULL;
    int pg = tx->s->kind == STORE_POSTGRES;
    int rc = store_query(tx,
                         pg ? "UPDATE tenants SET event_seq = event_seq + $2 WHERE id = $1 RETURNING event_seq"
                            : "UPDATE tenants SET event_seq = event_seq + $2 WHERE id = $1",
                         p, 2, pg ? &r : NULL, err);
    if (!rc && !pg) rc = store_query(tx, "SELECT event_seq FROM tenants WHERE id = $1", p, 1, &r, err);
    if (rc) return rc;
    if (store_rows_count(r) == 0) {
        store_rows_free(r);
        store__err(err, STORE_NOTFOUND, "tenant not found");
        return STORE_NOTFOUND;
    }
    *last = store_rows_int(r, 0, 0);
    store_rows_free(r);
    return STORE_OK;
}

int store_event_append(store_tx *tx, const char *type, const char *payload, int64_t *seq,
                       store_err *err) {
    store_err local;
    if (!err) err = &local;
    if (!tx || tx->tenant == 0 || tx->readonly) {
        store__err(err, STORE_INVALID, "events are appended in a store_write with a tenant");
        return STORE_INVALID;
    }
    size_t tl = type ? strlen(type) : 0;
    if (tl == 0 || tl > 128 || !payload) {
        store__err(err, STORE_INVALID, "event type must be 1-128 bytes and payload JSON");
        return STORE_INVALID;
    }
    int64_t now = clock_wall_ms();
    if (!seq) {
        /* Nobody needs the number now: defer the row (store_tx.pend). */
        if (tx->npend == tx->pendcap) {
            int cap = tx->pendcap ? tx->pendcap * 2 : 8;
            store_event *pe = eh_realloc(tx->pend, (size_t)cap * sizeof *pe);
            if (!pe) goto nomem;
            tx->pend = pe;
            tx->pendcap = cap;
        }
        char *t = eh_strdup(type), *p = eh_strdup(payload);
        if (!t || !p) {
            eh_free(t);
            eh_free(p);
            goto nomem;
        }
        tx->pend[tx->npend++] = (store_event){tx->tenant, 0, now, t, p};
        return STORE_OK;
    }
    /* The caller needs its seq: earlier deferred events come first. */
    int rc = store__flush_events(tx, err);
    if (rc) return rc;
    /* Taking the next number from the tenant row (not max(seq)+1) makes
     * concurrent appenders queue on that row's lock on PostgreSQL, and a
     * rolled-back append gives its number back: no gaps, no duplicates. */
    int64_t s;
    if ((rc = take_seqs(tx, 1, &s, err))) return rc;
    store_val p2[5] = {SV_I(tx->tenant), SV_I(s), SV_SN(type, tl), SV_S(payload), SV_I(now)};
    rc = store_query(tx, "INSERT INTO events (tenant_id, seq, type, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
                     p2, 5, NULL, err);
    if (rc) return rc;
    if (tx->s->opts.on_commit && keep_event(tx, s, now, type, payload)) {
        /* The row is written but on_commit could not be told: fail the
         * transaction rather than commit an event nobody hears about. */
        store__err(err, STORE_NOMEM, "out of memory");
        store__tx_fail(tx, err);
        return STORE_NOMEM;
    }
    *seq = s;
    return STORE_OK;
nomem:
    store__err(err, STORE_NOMEM, "out of memory");
    store__tx_fail(tx, err);
    return STORE_NOMEM;
}

/* Rows per INSERT when flushing: 5 parameters each, far below both
 * engines' limits, and a handful of distinct statements to cache. */
#define FLUSH_ROWS 8

int store__flush_events(store_tx *tx, store_err *err) {
    store_err local;
    if (!err) err = &local;
    if (!tx->npend) return STORE_OK;
    /* Taken out first: the statements below mention the event log and
     * would flush again. */
    store_event *pe = tx->pend;
    int n = tx->npend;
    tx->pend = NULL;
    tx->npend = tx->pendcap = 0;
    /* One allocation for all of them, from the tenant row as in
     * store_event_append (the same lock and no-gap reasoning). */
    int64_t last = 0;
    int rc = take_seqs(tx, n, &last, err);
    if (rc == STORE_NOTFOUND) store__tx_fail(tx, err);
    int64_t first = rc ? 0 : last - n + 1;
    static const char *const head = "INSERT INTO events (tenant_id, seq, type, payload, created_at) VALUES ";
    for (int i = 0; !rc && i < n; i += FLUSH_ROWS) {
        int k = n - i < FLUSH_ROWS ? n - i : FLUSH_ROWS;
        /* the same text for the same k (so one cached statement), written
         * with appends: snprintf per row was ~2.3k instructions */
        char sql[512];
        size_t hl = strlen(head), len = hl;
        memcpy(sql, head, hl);
        store_val p[FLUSH_ROWS * 5];
        for (int j = 0; j < k; j++) {
            const store_event *e = &pe[i + j];
            p[j * 5] = SV_I(tx->tenant);
            p[j * 5 + 1] = SV_I(first + i + j);
            p[j * 5 + 2] = SV_S(e->type);
            p[j * 5 + 3] = SV_S(e->payload);
            p[j * 5 + 4] = SV_I(e->time_ms);
            if (j) sql[len++] = ',', sql[len++] = ' ';
            sql[len++] = '(';
            for (int c = 1; c <= 5; c++) {
                sql[len++] = '$';
                len += store__fmt_int(j * 5 + c, sql + len);
                if (c < 5) sql[len++] = ',', sql[len++] = ' ';
            }
            sql[len++] = ')';
        }
        sql[len] = '\0';
        rc = store_query(tx, sql, p, k * 5, NULL, err);
    }
    for (int i = 0; i < n; i++) {
        if (!rc && tx->s->opts.on_commit &&
            keep_event(tx, first + i, pe[i].time_ms, pe[i].type, pe[i].payload)) {
            store__err(err, STORE_NOMEM, "out of memory");
            store__tx_fail(tx, err);
            rc = STORE_NOMEM;
        }
        eh_free((char *)pe[i].type);
        eh_free((char *)pe[i].payload);
    }
    eh_free(pe);
    return rc;
}

int store_events_after(store_tx *tx, int64_t after, int limit, store_event_list *out,
                       store_err *err) {
    store_err local;
    if (!err) err = &local;
    if (out) {
        out->ev = NULL;
        out->n = 0;
    }
    if (!tx || !out || limit < 1 || limit > 10000 || after < 0) {
        store__err(err, STORE_INVALID, "store_events_after: limit must be 1-10000");
        return STORE_INVALID;
    }
    store_val p[3] = {SV_I(tx->tenant), SV_I(after), SV_I(limit)};
    store_rows *r;
    int rc = store_query(tx,
                         "SELECT seq, created_at, type, payload FROM events"
                         " WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                         p, 3, &r, err);
    if (rc) return rc;
    int n = store_rows_count(r);
    if (n == 0) {
        store_rows_free(r);
        return STORE_OK;
    }
    /* One block: the array, then every string, so one eh_free releases it. */
    size_t total = (size_t)n * sizeof(store_event);
    for (int i = 0; i < n; i++) total += store_rows_len(r, i, 2) + store_rows_len(r, i, 3) + 2;
    store_event *ev = eh_malloc(total);
    if (!ev) {
        store_rows_free(r);
        store__err(err, STORE_NOMEM, "out of memory");
        return STORE_NOMEM;
    }
    char *p2 = (char *)(ev + n);
    for (int i = 0; i < n; i++) {
        ev[i].tenant = tx->tenant;
        ev[i].seq = store_rows_int(r, i, 0);
        ev[i].time_ms = store_rows_int(r, i, 1);
        for (int c = 2; c <= 3; c++) {
            size_t len = store_rows_len(r, i, c);
            const char *t = store_rows_text(r, i, c);
            memcpy(p2, t ? t : "", len);
            p2[len] = '\0';
            if (c == 2) ev[i].type = p2;
            else ev[i].payload = p2;
            p2 += len + 1;
        }
    }
    store_rows_free(r);
    out->ev = ev;
    out->n = n;
    return STORE_OK;
}

void store_event_list_free(store_event_list *l) {
    if (!l) return;
    eh_free(l->ev);
    l->ev = NULL;
    l->n = 0;
}

int store_events_last_seq(store_tx *tx, int64_t *seq, store_err *err) {
    store_err local;
    if (!err) err = &local;
    if (!tx || !seq) {
        store__err(err, STORE_INVALID, "store_events_last_seq: bad argument");
        return STORE_INVALID;
    }
    store_val p[1] = {SV_I(tx->tenant)};
    store_rows *r;
    int rc = store_query(tx, "SELECT event_seq FROM tenants WHERE id = $1", p, 1, &r, err);
    if (rc) return rc;
    int found = store_rows_count(r) > 0;
    *seq = found ? store_rows_int(r, 0, 0) : 0;
    store_rows_free(r);
    if (!found) {
        store__err(err, STORE_NOTFOUND, "tenant not found");
        return STORE_NOTFOUND;
    }
    return STORE_OK;
}

int store_event_heads(store_tx *tx, int64_t after, int max, int64_t *tenant, int64_t *seq, int *n,
                      store_err *err) {
    store_err local;
    if (!err) err = &local;
    if (!tx || !tenant || !seq || !n || max < 1 || max > 10000) {
        store__err(err, STORE_INVALID, "store_event_heads: bad argument");
        return STORE_INVALID;
    }
    *n = 0;
    store_val p[2] = {SV_I(after), SV_I(max)};
    store_rows *r;
    int rc = store_query(tx, "SELECT id, event_seq FROM tenants WHERE id > $1 AND event_seq > 0 ORDER BY id LIMIT $2",
                         p, 2, &r, err);
    if (rc) return rc;
    for (int i = 0; i < store_rows_count(r) && i < max; i++) {
        tenant[i] = store_rows_int(r, i, 0);
        seq[i] = store_rows_int(r, i, 1);
        (*n)++;
    }
    store_rows_free(r);
    return STORE_OK;
}
