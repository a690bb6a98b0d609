/* pg.c — the PostgreSQL backend: a fixed pool of libpq connections, one
 * transaction per store_write/store_read, each scoped to its tenant with
 * set_config('ehub.tenant_id', ..., true) so row-level security policies can
 * key on it. Statements are prepared once per connection (keyed by SQL text)
 * and executed with text parameters. */
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/alloc.h"
#include "../base/buf.h"
#include "../base/clock.h"
#include "backend.h"

#define CACHE_CAP 256
#define NAME_LEN 24
#define MAX_RETRIES 3

/* Type OIDs we convert (from pg_type.h, stable since forever). */
#define OID_BOOL 16
#define OID_BYTEA 17

typedef struct pg_stmt {
    char name[NAME_LEN];
    int nparams;
} pg_stmt;

typedef struct pg_conn {
    struct pg_store *ps;
    PGconn *c;
    int broken;  /* protocol state unknown: reset before next use */
    stmt_cache cache;
    unsigned next_id;
    /* Names of evicted statements, deallocated before the next transaction
     * (DEALLOCATE fails inside an aborted transaction). */
    char (*dealloc)[NAME_LEN];
    int ndealloc, capdealloc;
    buf scratch;  /* parameter text */
} pg_conn;

typedef struct pg_store {
    store *s;
    char *url;
    pg_conn *conns;
    int n;
    int *free_conns;
    int nfree;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sync_init;
} pg_store;

/* ---- errors ---- */

static int map_sqlstate(const char *st) {
    if (!st || strlen(st) != 5) return STORE_ERR;
    if (strcmp(st, "23505") == 0) return STORE_CONFLICT;
    if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0)
        return STORE_BUSY;
    if (strncmp(st, "08", 2) == 0 || strncmp(st, "53", 2) == 0 || strcmp(st, "57P01") == 0 ||
        strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0)
        return STORE_UNAVAILABLE;
    if (strncmp(st, "22", 2) == 0 || strcmp(st, "23502") == 0 || strcmp(st, "23503") == 0 ||
        strcmp(st, "23514") == 0 || strcmp(st, "25006") == 0)
        return STORE_INVALID;
    return STORE_ERR;
}

/* Copies a libpq message without its trailing newline. */
static void trim_copy(char *out, size_t outlen, const char *msg) {
    snprintf(out, outlen, "%s", msg ? msg : "");
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = '\0';
}

static int conn_err(pg_conn *pc, store_err *err) {
    char m[200];
    trim_copy(m, sizeof m, PQerrorMessage(pc->c));
    store__err(err, STORE_UNAVAILABLE, "postgres: %s", m[0] ? m : "connection lost");
    return STORE_UNAVAILABLE;
}

/* Fills err from a failed result (res may be NULL). Only the primary
 * message is used: DETAIL repeats key values. */
static int res_err(pg_conn *pc, PGresult *res, store_err *err) {
    if (!res || PQstatus(pc->c) != CONNECTION_OK) {
        if (PQstatus(pc->c) != CONNECTION_OK) return conn_err(pc, err);
        store__err(err, STORE_NOMEM, "postgres: out of memory");
        return STORE_NOMEM;
    }
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int code = map_sqlstate(st);
    if (st && strncmp(st, "22", 2) == 0) {
        /* Data exceptions quote the offending input ("invalid input syntax
         * for type bigint: \"...\""): keep it out of the logs. */
        store__err(err, code, "postgres: invalid value (SQLSTATE %s)", st);
        return code;
    }
    char m[200];
    const char *prim = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    trim_copy(m, sizeof m, prim ? prim : PQresultErrorMessage(res));
    store__err(err, code, "postgres: %s (SQLSTATE %s)", m, st ? st : "?");
    return code;
}

/* ---- connections ---- */

static void drop_stmt(void *ud, void *val) {
    pg_conn *pc = ud;
    pg_stmt *st = val;
    if (pc->c && PQstatus(pc->c) == CONNECTION_OK) {
        if (pc->ndealloc == pc->capdealloc) {
            int cap = pc->capdealloc ? pc->capdealloc * 2 : 8;
            void *p = eh_realloc(pc->dealloc, (size_t)cap * NAME_LEN);
            if (p) {
                pc->dealloc = p;
                pc->capdealloc = cap;
            }
        }
        /* If that failed the statement stays prepared on the server until
         * the connection closes: harmless. */
        if (pc->ndealloc < pc->capdealloc) memcpy(pc->dealloc[pc->ndealloc++], st->name, NAME_LEN);
    }
    eh_free(st);
}

/* Server notices ("relation already exists, skipping") are not errors, and
 * libpq's default prints them on stderr. */
static void on_notice(void *arg, const char *msg) {
    pg_store *ps = arg;
    log_line l;
    if (log_begin(ps->s->opts.log, &l, LOG_DEBUG, "store.pg_notice")) {
        log_strn(&l, "notice", msg, strcspn(msg, "\n"));
        log_end(&l);
    }
}

/* Forgets everything the server knew about this session. */
static void forget_session(pg_conn *pc) {
    PGconn *c = pc->c;
    pc->c = NULL;  /* so drop_stmt does not queue DEALLOCATEs */
    sc_clear(&pc->cache);
    pc->c = c;
    pc->ndealloc = 0;
    pc->broken = 0;
}

static int connect_conn(pg_conn *pc, store_err *err) {
    pg_store *ps = pc->ps;
    /* Ours come first so anything in the URL overrides them. */
    const char *keys[] = {"connect_timeout", "application_name", "client_encoding", "dbname", NULL};
    const char *vals[] = {"10", "ehub", "UTF8", ps->url, NULL};
    pc->c = PQconnectdbParams(keys, vals, 1);
    if (!pc->c) {
        store__err(err, STORE_NOMEM, "postgres: out of memory");
        return STORE_NOMEM;
    }
    if (PQstatus(pc->c) != CONNECTION_OK) {
        conn_err(pc, err);
        PQfinish(pc->c);
        pc->c = NULL;
        return STORE_UNAVAILABLE;
    }
    PQsetNoticeProcessor(pc->c, on_notice, ps);
    forget_session(pc);
    return STORE_OK;
}

/* Makes the connection usable: connects lazily, and reconnects one that
 * broke (server restart, network) instead of failing forever. */
static int ensure_conn(pg_conn *pc, store_err *err) {
    if (!pc->c) return connect_conn(pc, err);
    if (PQstatus(pc->c) == CONNECTION_OK && !pc->broken) return STORE_OK;
    PQreset(pc->c);
    forget_session(pc);
    if (PQstatus(pc->c) != CONNECTION_OK) return conn_err(pc, err);
    return STORE_OK;
}

static int acquire(pg_store *ps, pg_conn **out, store_err *err) {
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    long ms = ps->s->opts.busy_timeout_ms;
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ps->mu);
    while (ps->nfree == 0) {
        if (pthread_cond_timedwait(&ps->cv, &ps->mu, &dl) == ETIMEDOUT && ps->nfree == 0) {
            pthread_mutex_unlock(&ps->mu);
            store__err(err, STORE_BUSY, "no free database connection");
            return STORE_BUSY;
        }
    }
    pg_conn *pc = &ps->conns[ps->free_conns[--ps->nfree]];
    pthread_mutex_unlock(&ps->mu);
    int rc = ensure_conn(pc, err);
    if (rc) {
        pthread_mutex_lock(&ps->mu);
        ps->free_conns[ps->nfree++] = (int)(pc - ps->conns);
        pthread_cond_signal(&ps->cv);
        pthread_mutex_unlock(&ps->mu);
        return rc;
    }
    *out = pc;
    return STORE_OK;
}

static void release(pg_store *ps, pg_conn *pc) {
    if (pc->c && PQstatus(pc->c) == CONNECTION_OK && !pc->broken &&
        PQtransactionStatus(pc->c) != PQTRANS_IDLE) {
        PGresult *r = PQexec(pc->c, "ROLLBACK");
        if (PQresultStatus(r) != PGRES_COMMAND_OK) pc->broken = 1;
        PQclear(r);
    }
    pthread_mutex_lock(&ps->mu);
    ps->free_conns[ps->nfree++] = (int)(pc - ps->conns);
    pthread_cond_signal(&ps->cv);
    pthread_mutex_unlock(&ps->mu);
}

/* ---- transactions ---- */

static void flush_dealloc(pg_conn *pc) {
    for (int i = 0; i < pc->ndealloc; i++) {
        char sql[NAME_LEN + 16];
        snprintf(sql, sizeof sql, "DEALLOCATE %s", pc->dealloc[i]);  /* our own name */
        PQclear(PQexec(pc->c, sql));
    }
    pc->ndealloc = 0;
}

/* BEGIN and set_config in one round trip (pipeline mode), the tenant id
 * bound as a parameter like every other value. */
static int pg_begin(pg_conn *pc, store *s, int64_t tenant, int readonly, store_err *err) {
    uint64_t t0 = clock_mono_ns();
    if (pc->ndealloc) flush_dealloc(pc);
    PGconn *c = pc->c;
    char tid[24];
    snprintf(tid, sizeof tid, "%lld", (long long)tenant);
    const char *vals[1] = {tid};
    /* A read is one consistent snapshot; READ ONLY lets the server skip
     * serialization bookkeeping. Writes use READ COMMITTED and row locks. */
    const char *begin = readonly ? "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY" : "BEGIN";
    /* A tenant's writes take its row lock first. Every write appends to the
     * tenant's event log (UPDATE tenants ... event_seq), which holds that
     * lock until commit anyway; taking it at the start instead makes each
     * read-then-write (duplicate detection, version checks) see the
     * previous writer's commit: under READ COMMITTED, two creates of the
     * same email would otherwise both find nothing, and two PATCHes would
     * fail each other's version check. SQLite has one writer already. */
    int lock = !readonly && tenant > 0;
    if (!PQenterPipelineMode(c) ||
        !PQsendQueryParams(c, begin, 0, NULL, NULL, NULL, NULL, 0) ||
        !PQsendQueryParams(c, "SELECT set_config('ehub.tenant_id', $1, true)", 1, NULL, vals, NULL,
                           NULL, 0) ||
        (lock && !PQsendQueryParams(c, "SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", 1, NULL, vals, NULL,
                                    NULL, 0)) ||
        !PQpipelineSync(c)) {
        pc->broken = 1;
        PQexitPipelineMode(c);
        store__on_query(s, t0, 0);
        return conn_err(pc, err);
    }
    int rc = STORE_OK, nulls = 0;
    for (;;) {
        PGresult *r = PQgetResult(c);
        if (!r) {
            /* One NULL ends each query's results; more than a few in a row
             * means the connection is gone. */
            if (++nulls > 3 || PQstatus(c) != CONNECTION_OK) {
                if (!rc) rc = conn_err(pc, err);
                pc->broken = 1;
                break;
            }
            continue;
        }
        nulls = 0;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        /* After a failure the rest of the pipeline reports PIPELINE_ABORTED;
         * the first error is the one worth keeping. */
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && !rc) rc = res_err(pc, r, err);
        PQclear(r);
    }
    if (!PQexitPipelineMode(c)) pc->broken = 1;
    store__on_query(s, t0, rc == 0);
    return rc;
}

static int pg_end(pg_conn *pc, store *s, int commit, store_err *err) {
    uint64_t t0 = clock_mono_ns();
    PGresult *r = PQexec(pc->c, commit ? "COMMIT" : "ROLLBACK");
    int rc = STORE_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = res_err(pc, r, err);
    } else if (commit && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        /* The server answers COMMIT of an aborted transaction with ROLLBACK. */
        store__err(err, STORE_ERR, "postgres: transaction was rolled back");
        rc = STORE_ERR;
    }
    PQclear(r);
    if (commit) store__on_query(s, t0, rc == 0);
    return rc;
}

static void backoff(int attempt) {
    /* 2, 4, 8 ms plus up to 2 ms of jitter so retriers do not collide again. */
    long ns = (2000000L << attempt) + (long)(clock_mono_ns() % 2000000u);
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

/* One attempt at a transaction. *began says whether BEGIN got through (if
 * not, nothing ran and the caller may safely try another connection). */
static int run_tx(pg_store *ps, int64_t tenant, int readonly, store_fn fn, void *arg,
                  store_tx *tx, int *began, store_err *err) {
    pg_conn *pc;
    *began = 0;
    int rc = acquire(ps, &pc, err);
    if (rc) return rc;
    rc = pg_begin(pc, ps->s, tenant, readonly, err);
    if (rc == 0) {
        *began = 1;
        store__tx_init(tx, ps->s, tenant, readonly, pc);
        rc = store__run_fn(tx, fn, arg, err);
        if (rc == 0) {
            rc = pg_end(pc, ps->s, 1, err);
        } else {
            store_err e2;
            pg_end(pc, ps->s, 0, &e2);
        }
    }
    release(ps, pc);
    return rc;
}

static int pg_tx(store *s, int64_t tenant, int readonly, store_fn fn, void *arg, store_err *err) {
    pg_store *ps = s->impl;
    int attempt = 0, reconnects = 0;
    for (;;) {
        store_tx tx;
        memset(&tx, 0, sizeof tx);
        int began;
        int rc = run_tx(ps, tenant, readonly, fn, arg, &tx, &began, err);
        if (rc == STORE_UNAVAILABLE && !began && reconnects++ == 0) {
            /* The pooled connection had died (server restart): nothing ran,
             * so try once more on a fresh one. */
            store__tx_clear(&tx);
            continue;
        }
        if (rc == STORE_BUSY && began && !readonly && attempt < MAX_RETRIES) {
            /* Deadlock / serialization failure / lock timeout: the whole
             * transaction was rolled back, so running it again is safe. */
            store__tx_clear(&tx);
            backoff(attempt++);
            continue;
        }
        if (rc == 0) store__tx_committed(&tx);
        store__tx_clear(&tx);
        return rc;
    }
}

static int pg_write(store *s, int64_t tenant, store_fn fn, void *arg, store_err *err) {
    return pg_tx(s, tenant, 0, fn, arg, err);
}

static int pg_read(store *s, int64_t tenant, store_fn fn, void *arg, store_err *err) {
    return pg_tx(s, tenant, 1, fn, arg, err);
}

/* ---- statements ---- */

static int prepare(store_tx *tx, pg_conn *pc, const char *sql, pg_stmt **out, int *owned,
                   store_err *err) {
    *owned = 0;
    pg_stmt *st = sc_get(&pc->cache, sql);
    if (st) {
        *out = st;
        return STORE_OK;
    }
    st = eh_calloc(1, sizeof *st);
    if (!st) {
        store__err(err, STORE_NOMEM, "out of memory");
        return STORE_NOMEM;
    }
    snprintf(st->name, sizeof st->name, "ehub_%u", pc->next_id++);
    PGresult *r = PQprepare(pc->c, st->name, sql, 0, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        int rc = res_err(pc, r, err);
        PQclear(r);
        eh_free(st);
        store__tx_fail(tx, err);
        return rc;
    }
    PQclear(r);
    /* The parameter count lets us reject a wrong number of values here,
     * with a clear message, like the SQLite backend. */
    r = PQdescribePrepared(pc->c, st->name);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        int rc = res_err(pc, r, err);
        PQclear(r);
        drop_stmt(pc, st);
        store__tx_fail(tx, err);
        return rc;
    }
    st->nparams = PQnparams(r);
    PQclear(r);
    if (sc_put(&pc->cache, sql, st)) *owned = 1;
    *out = st;
    return STORE_OK;
}

/* Results are copied into a store_rows so both engines return the same
 * thing: bytea as raw bytes, booleans as 1/0 (as SQLite stores them). */
static int convert(PGresult *res, store_rows **out, store_err *err) {
    int nc = PQnfields(res), nr = PQntuples(res);
    store_rows *r = store__rows_new(nc);
    if (!r) goto nomem;
    for (int i = 0; i < nc; i++)
        if (store__rows_name(r, i, PQfname(res, i))) goto nomem;
    for (int row = 0; row < nr; row++) {
        for (int i = 0; i < nc; i++) {
            int rc;
            if (PQgetisnull(res, row, i)) {
                rc = store__rows_cell(r, NULL, 0);
            } else if (PQftype(res, i) == OID_BYTEA) {
                size_t len;
                unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, i), &len);
                if (!b) goto nomem;
                rc = store__rows_cell(r, (const char *)b, len);
                PQfreemem(b);
            } else if (PQftype(res, i) == OID_BOOL) {
                rc = store__rows_cell(r, PQgetvalue(res, row, i)[0] == 't' ? "1" : "0", 1);
            } else {
                rc = store__rows_cell(r, PQgetvalue(res, row, i), (size_t)PQgetlength(res, row, i));
            }
            if (rc) goto nomem;
        }
    }
    *out = r;
    return STORE_OK;
nomem:
    store_rows_free(r);
    store__err(err, STORE_NOMEM, "out of memory");
    return STORE_NOMEM;
}

static int pg_query(store_tx *tx, const char *sql, const store_val *params, int n,
                    store_rows **rows, store_err *err) {
    pg_conn *pc = tx->conn;
    uint64_t t0 = clock_mono_ns();
    pg_stmt *st = NULL;
    int owned;
    int rc = prepare(tx, pc, sql, &st, &owned, err);
    if (rc) {
        store__on_query(tx->s, t0, 0);
        return rc;
    }
    if (n != st->nparams) {
        store__err(err, STORE_INVALID, "statement has %d parameters, %d given", st->nparams, n);
        rc = STORE_INVALID;
        goto out;
    }
    /* Numbers are formatted into the scratch buffer and text is copied
     * there too (libpq wants NUL-terminated text); pointers are taken once
     * the buffer stops moving. Blobs go as binary, no copy. */
    enum { STACK = 16 };
    const char *sv[STACK];
    int sl[STACK], sf[STACK];
    size_t so[STACK];
    const char **vals = sv;
    int *lens = sl, *fmts = sf;
    size_t *offs = so;
    if (n > STACK) {
        vals = eh_malloc((size_t)n * sizeof *vals);
        lens = eh_malloc((size_t)n * sizeof *lens);
        fmts = eh_malloc((size_t)n * sizeof *fmts);
        offs = eh_malloc((size_t)n * sizeof *offs);
        if (!vals || !lens || !fmts || !offs) {
            store__err(err, STORE_NOMEM, "out of memory");
            rc = STORE_NOMEM;
            goto free_arrays;
        }
    }
    buf_reset(&pc->scratch);
    for (int i = 0; i < n; i++) {
        const store_val *v = &params[i];
        char num[32];
        int brc = BUF_OK;
        lens[i] = 0;
        fmts[i] = 0;
        offs[i] = (size_t)-1;
        switch (v->t) {
        case SV_INT:
            offs[i] = pc->scratch.len;
            brc = buf_append(&pc->scratch, num, store__fmt_int(v->i, num) + 1);
            break;
        case SV_REAL:
            store__fmt_double(v->d, num, sizeof num);
            offs[i] = pc->scratch.len;
            brc = buf_append(&pc->scratch, num, strlen(num) + 1);
            break;
        case SV_TEXT:
            if (!v->s) break;
            offs[i] = pc->scratch.len;
            brc = buf_append(&pc->scratch, v->s, v->n);
            if (!brc) brc = buf_append(&pc->scratch, "", 1);
            break;
        case SV_BLOB:
            if (v->n > (size_t)INT32_MAX) brc = BUF_TOO_BIG;
            fmts[i] = 1;
            lens[i] = (int)v->n;
            break;
        default: break;
        }
        if (brc) {
            store__err(err, brc == BUF_NOMEM ? STORE_NOMEM : STORE_INVALID,
                       brc == BUF_NOMEM ? "out of memory" : "parameters too large");
            rc = err->code;
            goto free_arrays;
        }
    }
    for (int i = 0; i < n; i++) {
        if (params[i].t == SV_BLOB) vals[i] = params[i].s ? params[i].s : "";
        else vals[i] = offs[i] == (size_t)-1 ? NULL : pc->scratch.p + offs[i];
    }
    PGresult *res = PQexecPrepared(pc->c, st->name, n, vals, lens, fmts, 0);
    ExecStatusType es = PQresultStatus(res);
    if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK) {
        const char *cmd = PQcmdStatus(res);
        if (strncmp(cmd, "INSERT", 6) == 0 || strncmp(cmd, "UPDATE", 6) == 0 ||
            strncmp(cmd, "DELETE", 6) == 0 || strncmp(cmd, "MERGE", 5) == 0)
            tx->changes = strtoll(PQcmdTuples(res), NULL, 10);
        if (rows && (rc = convert(res, rows, err)) != 0) store__tx_fail(tx, err);
    } else {
        rc = res_err(pc, res, err);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        /* "cached plan must not change result type" (a migration altered a
         * table under a prepared statement) or a statement that vanished:
         * prepare it afresh next time. */
        if (!owned && state && (strcmp(state, "0A000") == 0 || strcmp(state, "26000") == 0))
            sc_remove(&pc->cache, sql);
        store__tx_fail(tx, err);
    }
    PQclear(res);
free_arrays:
    if (vals != sv) {
        eh_free(vals);
        eh_free(lens);
        eh_free(fmts);
        eh_free(offs);
    }
out:
    if (owned) drop_stmt(pc, st);
    store__on_query(tx->s, t0, rc == 0);
    return rc;
}

static int pg_exec_script(store_tx *tx, const char *sql, store_err *err) {
    pg_conn *pc = tx->conn;
    uint64_t t0 = clock_mono_ns();
    PGresult *r = PQexec(pc->c, sql);
    ExecStatusType es = PQresultStatus(r);
    int rc = STORE_OK;
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK) {
        rc = res_err(pc, r, err);
        store__tx_fail(tx, err);
    }
    PQclear(r);
    store__on_query(tx->s, t0, rc == 0);
    return rc;
}

static int pg_ping(store *s, store_err *err) {
    pg_store *ps = s->impl;
    int rc = STORE_OK;
    /* A second try on a fresh connection, so one connection the server
     * dropped (restart, idle timeout) does not make us look unready. */
    for (int attempt = 0; attempt < 2; attempt++) {
        pg_conn *pc;
        rc = acquire(ps, &pc, err);
        if (rc) return rc;
        uint64_t t0 = clock_mono_ns();
        PGresult *r = PQexec(pc->c, "SELECT 1");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) rc = res_err(pc, r, err);
        PQclear(r);
        store__on_query(s, t0, rc == 0);
        release(ps, pc);
        if (rc != STORE_UNAVAILABLE) break;
    }
    return rc;
}

/* ---- after an erasure (store_purge) ---- */

/* One statement on the purge's own connection; STORE_OK or the mapped
 * error (err filled). */
static int side_exec(pg_conn *pc, const char *sql, store_err *err) {
    uint64_t t0 = clock_mono_ns();
    PGresult *r = PQexec(pc->c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? STORE_OK : res_err(pc, r, err);
    PQclear(r);
    store__on_query(pc->ps->s, t0, rc == STORE_OK);
    return rc;
}

static void side_warn(pg_store *ps, const char *what, const char *table, const store_err *e) {
    log_line l;
    if (log_begin(ps->s->opts.log, &l, LOG_WARN, what)) {
        log_str(&l, "table", table);
        log_str(&l, "error", e->msg);
        log_end(&l);
    }
}

/* A connection of its own, not one of the pool's: VACUUM must run outside
 * a transaction, lock_timeout is set for the whole session, and a rewrite
 * may take a while, during which the pool keeps all its connections. */
static int pg_purge(store *s, const char *const *tables, int n, size_t rewrite_max, store_purge_report *rep,
                    store_err *err) {
    pg_store *ps = s->impl;
    pg_conn side;
    memset(&side, 0, sizeof side);
    side.ps = ps;
    sc_init(&side.cache, 1, drop_stmt, &side);
    int rc = connect_conn(&side, err);
    if (!rc) rc = side_exec(&side, "SET lock_timeout = '2s'", err);
    for (int i = 0; !rc && i < n; i++) {
        char sql[160], *id = PQescapeIdentifier(side.c, tables[i], strlen(tables[i]));
        if (!id) {
            rc = conn_err(&side, err);
            break;
        }
        int64_t size = -1;
        PGresult *r = NULL;
        const char *vals[1] = {tables[i]};
        if (rewrite_max) {
            r = PQexecParams(side.c, "SELECT pg_total_relation_size($1::regclass)", 1, NULL, vals, NULL, NULL, 0);
            if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) size = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            else rc = res_err(&side, r, err);
            PQclear(r);
        }
        int full = !rc && rewrite_max && size >= 0 && (uint64_t)size <= (uint64_t)rewrite_max;
        if (full) {
            store_err e;
            snprintf(sql, sizeof sql, "VACUUM (FULL) %s", id);
            if (side_exec(&side, sql, &e) == STORE_OK) {
                rep->rewritten++;
            } else {
                /* lock not had in time (55P03) or no disk for the copy:
                 * the plain VACUUM below still removes the dead rows */
                side_warn(ps, "store.purge_rewrite_failed", tables[i], &e);
                full = 0;
            }
        }
        if (!rc && !full) {
            snprintf(sql, sizeof sql, "VACUUM %s", id);
            rc = side_exec(&side, sql, err);
            if (!rc) {
                rep->vacuumed++;
                size_t l = strlen(rep->residue);
                snprintf(rep->residue + l, sizeof rep->residue - l, "%s%s", l ? "," : "", tables[i]);
            }
        }
        /* the planner's sample of the table may quote the erased values */
        if (!rc) {
            snprintf(sql, sizeof sql, "ANALYZE %s", id);
            rc = side_exec(&side, sql, err);
        }
        PQfreemem(id);
    }
    /* ANALYZE replaced the table's pg_statistic rows; the old versions, with
     * the old samples, stay in that catalog's files until it is rewritten.
     * Allowed to the database's owner (and superusers). */
    if (!rc && n) {
        store_err e;
        if (side_exec(&side, "VACUUM (FULL) pg_statistic", &e) != STORE_OK) {
            side_warn(ps, "store.purge_rewrite_failed", "pg_statistic", &e);
            size_t l = strlen(rep->residue);
            snprintf(rep->residue + l, sizeof rep->residue - l, "%spg_statistic", l ? "," : "");
            rep->vacuumed++;
        }
    }
    rep->clean = !rc && rep->vacuumed == 0;
    PGconn *c = side.c;
    side.c = NULL;
    sc_clear(&side.cache);
    if (c) PQfinish(c);
    eh_free(side.dealloc);
    return rc;
}

/* ---- open / close ---- */

static void ps_free(pg_store *ps) {
    for (int i = 0; i < ps->n; i++) {
        pg_conn *pc = &ps->conns[i];
        PGconn *c = pc->c;
        pc->c = NULL;  /* closing anyway: no DEALLOCATE */
        sc_clear(&pc->cache);
        if (c) PQfinish(c);
        eh_free(pc->dealloc);
        buf_free(&pc->scratch);
    }
    if (ps->sync_init >= 1) pthread_mutex_destroy(&ps->mu);
    if (ps->sync_init >= 2) pthread_cond_destroy(&ps->cv);
    eh_free(ps->conns);
    eh_free(ps->free_conns);
    eh_free(ps->url);
    eh_free(ps);
}

static int pg_open(store *s, const char *url, store_err *err) {
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (!opts) {
        /* libpq's message can quote the URL (and so a password): don't. */
        PQfreemem(perr);
        store__err(err, STORE_INVALID, "postgres: malformed connection URL");
        return STORE_INVALID;
    }
    PQconninfoFree(opts);
    pg_store *ps = eh_calloc(1, sizeof *ps);
    if (!ps) {
        store__err(err, STORE_NOMEM, "out of memory");
        return STORE_NOMEM;
    }
    ps->s = s;
    ps->n = s->opts.pool_size;
    ps->url = eh_strdup(url);
    ps->conns = eh_calloc((size_t)ps->n, sizeof *ps->conns);
    ps->free_conns = eh_calloc((size_t)ps->n, sizeof *ps->free_conns);
    if (!ps->url || !ps->conns || !ps->free_conns) {
        ps->n = ps->conns ? ps->n : 0;
        ps_free(ps);
        store__err(err, STORE_NOMEM, "out of memory");
        return STORE_NOMEM;
    }
    pthread_condattr_t ca;
    int ok = pthread_mutex_init(&ps->mu, NULL) == 0;
    if (ok) ps->sync_init = 1;
    ok = ok && pthread_condattr_init(&ca) == 0;
    if (ok) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        ok = pthread_cond_init(&ps->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
        if (ok) ps->sync_init = 2;
    }
    if (!ok) {
        ps_free(ps);
        store__err(err, STORE_NOMEM, "cannot create mutex");
        return STORE_NOMEM;
    }
    for (int i = 0; i < ps->n; i++) {
        pg_conn *pc = &ps->conns[i];
        pc->ps = ps;
        sc_init(&pc->cache, CACHE_CAP, drop_stmt, pc);
        buf_init(&pc->scratch, (size_t)1 << 30);
        ps->free_conns[ps->nfree++] = ps->n - 1 - i;  /* hand out conns[0] first */
    }
    /* Connect one now so a wrong URL or a down server fails store_open; the
     * rest connect when first needed. */
    int rc = connect_conn(&ps->conns[0], err);
    if (rc) {
        ps_free(ps);
        return rc;
    }
    s->impl = ps;
    return STORE_OK;
}

static void pg_close(store *s) {
    if (s->impl) ps_free(s->impl);
    s->impl = NULL;
}

const store_backend store_pg_backend = {
    .open = pg_open,
    .close = pg_close,
    .write = pg_write,
    .read = pg_read,
    .query = pg_query,
    .exec_script = pg_exec_script,
    .ping = pg_ping,
    .purge = pg_purge,
};
