/* sqlite.c — the embedded backend.
 *
 * SQLite allows one writer at a time, and in WAL mode the cost of a write
 * transaction is mostly its COMMIT. So all writes go through one connection
 * owned by a writer thread that does group commit: callers queue a job and
 * sleep; the writer takes every queued job, opens one BEGIN IMMEDIATE
 * transaction, runs each job's callback inside its own SAVEPOINT (a failing
 * callback is rolled back to its savepoint, the others keep their work),
 * COMMITs once, then wakes each caller with its own result (or, for a job
 * queued by store_write_async, calls its callback: nobody sleeps on such a
 * job, so a batch is not capped by how many threads can wait). Reads never wait
 * for that: they run on a pool of reader connections, each read in a
 * deferred transaction, which in WAL mode is a consistent snapshot.
 *
 * Checkpoints (copying the WAL back into the database file, with an fsync
 * of each) do not run on the writer: SQLite's automatic checkpoint would run
 * inside the COMMIT that crosses 1000 WAL pages, and every caller of that
 * batch would wait for two fsyncs (measured: 0.5-8 ms, the p99 of small
 * writes such as a coaching answer). A checkpointer thread with its own
 * connection runs a PASSIVE checkpoint when the writer's WAL hook says the
 * log has grown past CKPT_PAGES; WAL lets it run while the writer appends.
 * Durability is unchanged: a commit is as durable as before (synchronous
 * NORMAL or FULL decides that), only who waits for the checkpoint moves.
 * The price is a larger WAL under sustained writes (see wal_hook), bounded
 * by CKPT_HARD_PAGES, past which the writer checkpoints itself as SQLite
 * would. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../base/alloc.h"
#include "../base/clock.h"
#include "backend.h"

#define CACHE_CAP 128
/* WAL size (pages) that wakes the checkpointer (SQLite's own default), and
 * the size past which the writer checkpoints inline (back-pressure). */
#define CKPT_PAGES 1000
#define CKPT_HARD_PAGES 16000
/* how long the writer must be idle before the checkpointer finishes the
 * log with one more pass (see ckpt_main) */
#define CKPT_RETRY_MS 100

/* A cached statement and where each $k is bound (SQLite numbers parameters
 * in order of first appearance, so "$2 ... $1" makes $2 index 1). */
typedef struct sq_stmt {
    sqlite3_stmt *st;
    int nparams;  /* highest $k */
    int map[];    /* map[k-1] = bind index of $k, 0 if unused */
} sq_stmt;

typedef struct sq_conn {
    sqlite3 *db;
    stmt_cache cache;
} sq_conn;

typedef struct sq_job {
    store_fn fn;
    void *arg;
    int64_t tenant;
    store_tx tx;
    int rc;
    store_err err;
    int done;
    pthread_cond_t cv;  /* store_write: the caller sleeps on this, under sq_store.qmu */
    /* store_write_async: called instead of waking a caller; the job was
     * allocated by sq_write_async and is freed after the call */
    store_done_fn on_done;
    void *done_arg;
    struct sq_job *next;
} sq_job;

typedef struct sq_store {
    store *s;
    sq_conn writer;
    sq_conn *readers;
    int nreaders;
    int *free_readers;  /* stack of indexes into readers */
    int nfree;
    pthread_mutex_t rmu;
    pthread_cond_t rcv;
    pthread_mutex_t qmu;
    pthread_cond_t qcv;  /* the writer sleeps on this */
    sq_job *qhead, *qtail;
    int stopping;
    pthread_t writer_thread;
    int writer_started;
    int sync_init;  /* how many of the mutexes/condvars exist */
    /* the checkpointer (see the top of the file) */
    sqlite3 *ckpt_db;
    pthread_t ckpt_thread;
    int ckpt_started;
    pthread_mutex_t cmu;
    pthread_cond_t ccv;
    int ckpt_want, ckpt_stop;  /* guarded by cmu */
    atomic_int ckpt_last;      /* written by the writer: the WAL's size at its last commit */
    int ckpt_next;             /* writer thread: the size that wakes the checkpointer next */
} sq_store;

/* ---- errors ---- */

static int map_code(int ext) {
    switch (ext) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_ROWID:
        return STORE_CONFLICT;
    case SQLITE_CONSTRAINT_NOTNULL:
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return STORE_INVALID;
    }
    switch (ext & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return STORE_BUSY;
    case SQLITE_NOMEM:
        return STORE_NOMEM;
    case SQLITE_CANTOPEN:
    case SQLITE_NOTADB:
        return STORE_UNAVAILABLE;
    case SQLITE_READONLY:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG:
        return STORE_INVALID;
    }
    return STORE_ERR;
}

/* SQLite's messages name tables, columns and constraints, never values. */
static int db_err(sqlite3 *db, int rc, store_err *err) {
    int ext = db ? sqlite3_extended_errcode(db) : rc;
    if ((ext & 0xff) != (rc & 0xff)) ext = rc;
    int code = map_code(ext);
    store__err(err, code, "sqlite: %s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return code;
}

/* ---- statements ---- */

static void drop_stmt(void *ud, void *val) {
    sq_stmt *st = val;
    sqlite3_finalize(st->st);
    eh_free(st);
}

/* Parses "$k"; 0 if the name is anything else. */
static int param_number(const char *name) {
    if (!name || name[0] != '$' || name[1] < '1' || name[1] > '9') return 0;
    long k = 0;
    for (const char *p = name + 1; *p; p++) {
        if (*p < '0' || *p > '9' || k > 100000) return 0;
        k = k * 10 + (*p - '0');
    }
    return (int)k;
}

static int prepare(sq_conn *c, const char *sql, int persistent, sq_stmt **out, store_err *err) {
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int rc = sqlite3_prepare_v3(c->db, sql, -1, persistent ? SQLITE_PREPARE_PERSISTENT : 0, &st,
                                &tail);
    if (rc != SQLITE_OK) return db_err(c->db, rc, err);
    if (!st) {
        store__err(err, STORE_INVALID, "empty statement");
        return STORE_INVALID;
    }
    while (tail && (*tail == ' ' || *tail == '\t' || *tail == '\n' || *tail == '\r' || *tail == ';'))
        tail++;
    if (tail && *tail) {
        /* PostgreSQL refuses several statements in one prepared statement;
         * refuse here too instead of silently running only the first. */
        sqlite3_finalize(st);
        store__err(err, STORE_INVALID, "one statement per store_query");
        return STORE_INVALID;
    }
    int cnt = sqlite3_bind_parameter_count(st), maxk = 0;
    for (int j = 1; j <= cnt; j++) {
        int k = param_number(sqlite3_bind_parameter_name(st, j));
        if (k == 0) {
            sqlite3_finalize(st);
            store__err(err, STORE_INVALID, "placeholders must be $1..$N");
            return STORE_INVALID;
        }
        if (k > maxk) maxk = k;
    }
    sq_stmt *s = eh_calloc(1, sizeof *s + (size_t)maxk * sizeof(int));
    if (!s) {
        sqlite3_finalize(st);
        store__err(err, STORE_NOMEM, "out of memory");
        return STORE_NOMEM;
    }
    s->st = st;
    s->nparams = maxk;
    for (int j = 1; j <= cnt; j++) s->map[param_number(sqlite3_bind_parameter_name(st, j)) - 1] = j;
    *out = s;
    return STORE_OK;
}

/* A cached statement for sql. *owned is set when it could not be cached
 * (out of memory) and the caller must drop it after use. */
static int get_stmt(sq_conn *c, const char *sql, sq_stmt **out, int *owned, store_err *err) {
    *owned = 0;
    sq_stmt *st = sc_get(&c->cache, sql);
    if (st) {
        *out = st;
        return STORE_OK;
    }
    int rc = prepare(c, sql, 1, &st, err);
    if (rc) return rc;
    if (sc_put(&c->cache, sql, st)) *owned = 1;
    *out = st;
    return STORE_OK;
}

static void done_stmt(sq_stmt *st, int owned) {
    sqlite3_reset(st->st);
    /* Parameters are bound SQLITE_STATIC: forget the caller's pointers. */
    sqlite3_clear_bindings(st->st);
    if (owned) drop_stmt(NULL, st);
}

/* Runs a parameterless control statement (BEGIN, SAVEPOINT, COMMIT ...). */
static int ctl(sq_conn *c, const char *sql, store_err *err) {
    sq_stmt *st;
    int owned;
    int rc = get_stmt(c, sql, &st, &owned, err);
    if (rc) {
        /* Out of memory for the cache must not stop a ROLLBACK. */
        char *emsg = NULL;
        int src = sqlite3_exec(c->db, sql, NULL, NULL, &emsg);
        sqlite3_free(emsg);
        if (src == SQLITE_OK) return STORE_OK;
        return db_err(c->db, src, err);
    }
    int src = sqlite3_step(st->st);
    if (src != SQLITE_DONE && src != SQLITE_ROW) {
        rc = db_err(c->db, src, err);
    }
    done_stmt(st, owned);
    return rc;
}

static int bind_all(sq_conn *c, sq_stmt *st, const store_val *params, int n, store_err *err) {
    if (n != st->nparams) {
        store__err(err, STORE_INVALID, "statement has %d parameters, %d given", st->nparams, n);
        return STORE_INVALID;
    }
    for (int k = 0; k < n; k++) {
        int j = st->map[k];
        if (!j) continue;
        const store_val *v = &params[k];
        int rc;
        switch (v->t) {
        case SV_INT: rc = sqlite3_bind_int64(st->st, j, v->i); break;
        case SV_REAL: rc = sqlite3_bind_double(st->st, j, v->d); break;
        case SV_TEXT:
            rc = v->s ? sqlite3_bind_text64(st->st, j, v->s, v->n, SQLITE_STATIC, SQLITE_UTF8)
                      : sqlite3_bind_null(st->st, j);
            break;
        case SV_BLOB: rc = sqlite3_bind_blob64(st->st, j, v->s ? v->s : "", v->n, SQLITE_STATIC); break;
        default: rc = sqlite3_bind_null(st->st, j); break;
        }
        if (rc != SQLITE_OK) return db_err(c->db, rc, err);
    }
    return STORE_OK;
}

static int add_row(store_rows *r, sqlite3_stmt *st, int ncols) {
    for (int i = 0; i < ncols; i++) {
        char num[32];
        int rc;
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_NULL: rc = store__rows_cell(r, NULL, 0); break;
        case SQLITE_INTEGER:
            rc = store__rows_cell(r, num, store__fmt_int(sqlite3_column_int64(st, i), num));
            break;
        case SQLITE_FLOAT:
            /* SQLite's own text keeps 15 digits; ours reads back exactly. */
            store__fmt_double(sqlite3_column_double(st, i), num, sizeof num);
            rc = store__rows_cell(r, num, strlen(num));
            break;
        case SQLITE_BLOB: {
            const void *p = sqlite3_column_blob(st, i);
            rc = store__rows_cell(r, p ? p : "", (size_t)sqlite3_column_bytes(st, i));
            break;
        }
        default: {
            const unsigned char *p = sqlite3_column_text(st, i);
            if (!p) return STORE_NOMEM;
            rc = store__rows_cell(r, (const char *)p, (size_t)sqlite3_column_bytes(st, i));
            break;
        }
        }
        if (rc) return rc;
    }
    return STORE_OK;
}

static int sq_query(store_tx *tx, const char *sql, const store_val *params, int n,
                    store_rows **rows, store_err *err) {
    sq_conn *c = tx->conn;
    uint64_t t0 = clock_mono_ns();
    sq_stmt *st;
    int owned;
    int rc = get_stmt(c, sql, &st, &owned, err);
    if (rc) {
        if (rc != STORE_INVALID || sqlite3_errcode(c->db) != SQLITE_OK) store__tx_fail(tx, err);
        store__on_query(tx->s, t0, 0);
        return rc;
    }
    rc = bind_all(c, st, params, n, err);
    if (rc) {
        done_stmt(st, owned);
        store__on_query(tx->s, t0, 0);
        return rc;
    }
    store_rows *r = NULL;
    int ncols = sqlite3_column_count(st->st);
    if (rows) {
        r = store__rows_new(ncols);
        for (int i = 0; r && i < ncols; i++) {
            const char *name = sqlite3_column_name(st->st, i);
            if (store__rows_name(r, i, name ? name : "")) {
                store_rows_free(r);
                r = NULL;
            }
        }
        if (!r) {
            done_stmt(st, owned);
            store__err(err, STORE_NOMEM, "out of memory");
            store__on_query(tx->s, t0, 0);
            return STORE_NOMEM;
        }
    }
    int src;
    while ((src = sqlite3_step(st->st)) == SQLITE_ROW) {
        if (r && add_row(r, st->st, ncols)) {
            src = SQLITE_NOMEM;
            break;
        }
    }
    if (src == SQLITE_DONE) {
        if (!sqlite3_stmt_readonly(st->st)) tx->changes = sqlite3_changes64(c->db);
        rc = STORE_OK;
    } else if (src == SQLITE_NOMEM && r) {
        store__err(err, STORE_NOMEM, "out of memory");
        rc = STORE_NOMEM;
    } else {
        rc = db_err(c->db, src, err);
    }
    done_stmt(st, owned);
    if (rc) {
        store__tx_fail(tx, err);
        store_rows_free(r);
        r = NULL;
    }
    if (rows) *rows = r;
    store__on_query(tx->s, t0, rc == 0);
    return rc;
}

static int sq_exec_script(store_tx *tx, const char *sql, store_err *err) {
    sq_conn *c = tx->conn;
    uint64_t t0 = clock_mono_ns();
    char *emsg = NULL;
    int src = sqlite3_exec(c->db, sql, NULL, NULL, &emsg);
    int rc = STORE_OK;
    if (src != SQLITE_OK) {
        rc = map_code(sqlite3_extended_errcode(c->db));
        store__err(err, rc, "sqlite: %s", emsg ? emsg : sqlite3_errstr(src));
        store__tx_fail(tx, err);
    }
    sqlite3_free(emsg);
    store__on_query(tx->s, t0, rc == 0);
    return rc;
}

/* ---- connections ---- */

/* SQLite's memory statistics (sqlite3_memory_used, the soft heap limit:
 * unused here) take a process-wide mutex and update counters on every
 * allocation SQLite makes, ~200 per ingested webhook. Off, before SQLite
 * initialises; once per process (a process-wide setting of the library,
 * not state of ours). */
static pthread_once_t sq_config_once = PTHREAD_ONCE_INIT;
static void sq_config(void) { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

static int conn_open(sq_store *q, sq_conn *c, const char *path, int writer, store_err *err) {
    pthread_once(&sq_config_once, sq_config);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        if (!c->db) {
            store__err(err, STORE_NOMEM, "sqlite: out of memory");
            return STORE_NOMEM;
        }
        store__err(err, STORE_UNAVAILABLE, "sqlite: cannot open database: %s", sqlite3_errmsg(c->db));
        sqlite3_close(c->db);
        c->db = NULL;
        return STORE_UNAVAILABLE;
    }
    sc_init(&c->cache, CACHE_CAP, drop_stmt, NULL);
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, q->s->opts.busy_timeout_ms);
    char pragmas[256];
    if (writer) {
        /* WAL: readers never block the writer nor it them. NORMAL syncs the
         * WAL only at checkpoints: a commit survives a process crash, and
         * FULL (fsync per commit, cheap with group commit) survives power
         * loss too. */
        /* secure_delete: content freed by a DELETE or an UPDATE is zeroed
         * in the page, so an erased person's bytes leave the file (GDPR
         * erasure, src/privacy) once the WAL is checkpointed. */
        /* temp_store=MEMORY: each job in a group commit runs in a savepoint,
         * whose statement journal would otherwise be a temporary file —
         * measured at 40 KB written per webhook. */
        /* page_size=2048, for a new database only (an existing one keeps
         * its size: WAL mode cannot change it): most of a webhook's WAL
         * frames are index leaves it dirties at random keys (e-mail, phone,
         * contact id, webhook id), copied whole into the WAL. Half-size
         * pages cut the WAL written per webhook from 8.2 KB to 6.1 KB,
         * and with it the disk traffic that the WAL restart's fsyncs, on
         * the writer, wait behind (the longest measured 11.4 -> 5.4 ms). */
        snprintf(pragmas, sizeof pragmas,
                 "PRAGMA page_size=2048; PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=ON; "
                 "PRAGMA temp_store=MEMORY; PRAGMA secure_delete=ON;",
                 q->s->opts.sync_full ? "FULL" : "NORMAL");
    } else {
        /* store_read promises a read-only transaction; make SQLite enforce it. */
        snprintf(pragmas, sizeof pragmas, "PRAGMA foreign_keys=ON; PRAGMA query_only=1;");
    }
    char *emsg = NULL;
    /* Switching to WAL needs a lock that SQLite does not wait for with the
     * busy handler: two nodes opening one new database at once, or an open
     * while the last connection checkpoints on close, get SQLITE_BUSY at
     * once. The pragmas are idempotent, so wait and retry, as long as the
     * busy timeout would have. */
    for (int waited = 0;; waited += 10) {
        rc = sqlite3_exec(c->db, pragmas, NULL, NULL, &emsg);
        if ((rc & 0xff) != SQLITE_BUSY || waited >= q->s->opts.busy_timeout_ms) break;
        sqlite3_free(emsg);
        emsg = NULL;
        sqlite3_sleep(10);
    }
    if (rc == SQLITE_OK && writer) {
        /* journal_mode answers with the mode it got; a read-only directory or
         * a network file system can refuse WAL. */
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode", -1, &st, NULL);
        if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
            const unsigned char *m = sqlite3_column_text(st, 0);
            if (!m || strcmp((const char *)m, "wal") != 0) rc = SQLITE_ERROR;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_OK) {
            store__err(err, STORE_ERR, "sqlite: cannot enable WAL mode");
            sqlite3_free(emsg);
            sqlite3_close(c->db);
            c->db = NULL;
            return STORE_ERR;
        }
    }
    if (rc != SQLITE_OK) {
        int code = map_code(sqlite3_extended_errcode(c->db));
        if (code == STORE_ERR && (rc & 0xff) == SQLITE_NOTADB) code = STORE_UNAVAILABLE;
        store__err(err, code, "sqlite: %s", emsg ? emsg : sqlite3_errstr(rc));
        sqlite3_free(emsg);
        sqlite3_close(c->db);
        c->db = NULL;
        return code;
    }
    return STORE_OK;
}

static void conn_close(sq_conn *c) {
    if (!c->db) return;
    sc_clear(&c->cache);
    sqlite3_close(c->db);
    c->db = NULL;
}

static int acquire_reader(sq_store *q, sq_conn **out, store_err *err) {
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    long ms = q->s->opts.busy_timeout_ms;
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&q->rmu);
    while (q->nfree == 0) {
        if (pthread_cond_timedwait(&q->rcv, &q->rmu, &dl) == ETIMEDOUT && q->nfree == 0) {
            pthread_mutex_unlock(&q->rmu);
            store__err(err, STORE_BUSY, "no free reader connection");
            return STORE_BUSY;
        }
    }
    *out = &q->readers[q->free_readers[--q->nfree]];
    pthread_mutex_unlock(&q->rmu);
    return STORE_OK;
}

static void release_reader(sq_store *q, sq_conn *c) {
    if (!sqlite3_get_autocommit(c->db)) {
        char *emsg = NULL;
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, &emsg);
        sqlite3_free(emsg);
    }
    pthread_mutex_lock(&q->rmu);
    q->free_readers[q->nfree++] = (int)(c - q->readers);
    pthread_cond_signal(&q->rcv);
    pthread_mutex_unlock(&q->rmu);
}

/* ---- the writer ---- */

static void finish_jobs(sq_store *q, sq_job *batch) {
    sq_job *async = NULL, **tail = &async;
    pthread_mutex_lock(&q->qmu);
    for (sq_job *j = batch, *next; j; j = next) {
        next = j->next;  /* j lives on its caller's stack: done ends our use */
        if (j->on_done) {
            *tail = j;
            tail = &j->next;
            continue;
        }
        j->done = 1;
        pthread_cond_signal(&j->cv);
    }
    *tail = NULL;
    pthread_mutex_unlock(&q->qmu);
    /* Outside the lock: a callback may queue its write again (a retry). */
    for (sq_job *j = async, *next; j; j = next) {
        next = j->next;
        j->on_done(j->done_arg, j->rc, &j->err);
        eh_free(j);
    }
}

/* The batch cannot commit: every job fails with err (their callbacks' work
 * is rolled back with everything else). */
static void fail_batch(sq_store *q, sq_job *batch, const store_err *err) {
    sq_conn *w = &q->writer;
    if (!sqlite3_get_autocommit(w->db)) {
        store_err e2;
        ctl(w, "ROLLBACK", &e2);
    }
    for (sq_job *j = batch; j; j = j->next) {
        store__tx_clear(&j->tx);
        j->rc = err->code;
        j->err = *err;
    }
    log_msg(q->s->opts.log, LOG_ERROR, "store.group_commit_failed", err->msg);
}

static void run_batch_jobs(sq_store *q, sq_job *batch);

static void run_batch(sq_store *q, sq_job *batch) {
    if (!q->s->opts.on_batch) {
        run_batch_jobs(q, batch);
        return;
    }
    int n = 0;
    for (sq_job *j = batch; j; j = j->next) n++;
    uint64_t t0 = clock_mono_ns();
    run_batch_jobs(q, batch); /* the jobs may be gone after this */
    q->s->opts.on_batch(q->s->opts.on_query_ud, n, (double)(clock_mono_ns() - t0) / 1e9);
}

static void run_batch_jobs(sq_store *q, sq_job *batch) {
    sq_conn *w = &q->writer;
    store_err err;
    /* IMMEDIATE takes the write lock now, so no job can hit SQLITE_BUSY
     * halfway through (another process may hold it; busy_timeout waits). */
    if (ctl(w, "BEGIN IMMEDIATE", &err)) {
        fail_batch(q, batch, &err);
        finish_jobs(q, batch);
        return;
    }
    /* A job alone needs no savepoint: the transaction is its own, and if
     * it fails, ROLLBACK undoes exactly its work. A savepoint is not free:
     * SQLite copies each page the job first touches into a statement
     * journal, and truncates that at RELEASE. */
    if (!batch->next) {
        sq_job *j = batch;
        store__tx_init(&j->tx, q->s, j->tenant, 0, w);
        j->rc = store__run_fn(&j->tx, j->fn, j->arg, &j->err);
        if (sqlite3_get_autocommit(w->db)) {
            store__err(&err, j->rc ? j->rc : STORE_ERR, "transaction rolled back by the engine: %s",
                       j->rc ? j->err.msg : "unknown");
            fail_batch(q, batch, &err);
        } else if (j->rc) {
            store__tx_clear(&j->tx);
            if (ctl(w, "ROLLBACK", &err)) fail_batch(q, batch, &err);
        } else {
            uint64_t t0 = clock_mono_ns();
            int rc = ctl(w, "COMMIT", &err);
            store__on_query(q->s, t0, rc == 0);
            if (rc) {
                fail_batch(q, batch, &err);
            } else {
                store__tx_committed(&j->tx);
                store__tx_clear(&j->tx);
            }
        }
        finish_jobs(q, batch);
        return;
    }
    for (sq_job *j = batch; j; j = j->next) {
        if (ctl(w, "SAVEPOINT job", &err)) {
            fail_batch(q, batch, &err);
            finish_jobs(q, batch);
            return;
        }
        store__tx_init(&j->tx, q->s, j->tenant, 0, w);
        j->rc = store__run_fn(&j->tx, j->fn, j->arg, &j->err);
        if (sqlite3_get_autocommit(w->db)) {
            /* Some errors (disk full, I/O, out of memory) make SQLite roll
             * back the whole transaction: the earlier jobs' work is gone. */
            store__err(&err, j->rc ? j->rc : STORE_ERR, "transaction rolled back by the engine: %s",
                       j->rc ? j->err.msg : "unknown");
            fail_batch(q, batch, &err);
            finish_jobs(q, batch);
            return;
        }
        if (j->rc == 0) {
            if (ctl(w, "RELEASE job", &err)) {
                fail_batch(q, batch, &err);
                finish_jobs(q, batch);
                return;
            }
        } else {
            store__tx_clear(&j->tx);
            /* ROLLBACK TO keeps the savepoint open; RELEASE closes it. */
            if (ctl(w, "ROLLBACK TO job", &err) || ctl(w, "RELEASE job", &err)) {
                fail_batch(q, batch, &err);
                finish_jobs(q, batch);
                return;
            }
        }
    }
    uint64_t t0 = clock_mono_ns();
    int rc = ctl(w, "COMMIT", &err);
    store__on_query(q->s, t0, rc == 0);
    if (rc) {
        /* Nothing of the batch is durable: jobs that had succeeded fail too. */
        fail_batch(q, batch, &err);
    } else {
        for (sq_job *j = batch; j; j = j->next) {
            if (j->rc == 0) store__tx_committed(&j->tx);
            store__tx_clear(&j->tx);
        }
    }
    finish_jobs(q, batch);
}

static void *writer_main(void *arg) {
    sq_store *q = arg;
    pthread_setname_np(pthread_self(), "ehub-writer"); /* top -H, perf, gdb */
    for (;;) {
        pthread_mutex_lock(&q->qmu);
        while (!q->qhead && !q->stopping) pthread_cond_wait(&q->qcv, &q->qmu);
        if (!q->stopping) {
            /* Let whatever else is runnable on this CPU go first: the
             * threads preparing the next writes add them to this batch.
             * Woken by the first job, the writer otherwise preempts them
             * and commits alone: with ehub on one core and writes queued
             * by store_write_async, 80 % of the batches held one job
             * (mean 5), 37 jobs on average with this. With an idle CPU
             * beside it, it returns at once: no wait is added. */
            pthread_mutex_unlock(&q->qmu);
            sched_yield();
            pthread_mutex_lock(&q->qmu);
        }
        sq_job *batch = q->qhead;
        q->qhead = q->qtail = NULL;
        pthread_mutex_unlock(&q->qmu);
        if (!batch) break;  /* stopping and drained */
        run_batch(q, batch);
    }
    return NULL;
}

static int sq_write(store *s, int64_t tenant, store_fn fn, void *arg, store_err *err) {
    sq_store *q = s->impl;
    if (pthread_equal(pthread_self(), q->writer_thread)) {
        /* Called from a write callback: the writer would wait for itself. */
        store__err(err, STORE_INVALID, "store_write called inside a store_write callback");
        return STORE_INVALID;
    }
    sq_job j;
    memset(&j, 0, sizeof j);
    j.fn = fn;
    j.arg = arg;
    j.tenant = tenant;
    if (pthread_cond_init(&j.cv, NULL)) {
        store__err(err, STORE_NOMEM, "cannot create condition variable");
        return STORE_NOMEM;
    }
    pthread_mutex_lock(&q->qmu);
    if (q->stopping) {
        pthread_mutex_unlock(&q->qmu);
        pthread_cond_destroy(&j.cv);
        store__err(err, STORE_UNAVAILABLE, "store is closing");
        return STORE_UNAVAILABLE;
    }
    if (q->qtail) q->qtail->next = &j;
    else q->qhead = &j;
    q->qtail = &j;
    pthread_cond_signal(&q->qcv);
    while (!j.done) pthread_cond_wait(&j.cv, &q->qmu);
    pthread_mutex_unlock(&q->qmu);
    pthread_cond_destroy(&j.cv);
    *err = j.err;
    return j.rc;
}

static int sq_write_async(store *s, int64_t tenant, store_fn fn, void *arg, store_done_fn done, void *done_arg,
                          store_err *err) {
    sq_store *q = s->impl;
    sq_job *j = eh_calloc(1, sizeof *j);
    if (!j) {
        store__err(err, STORE_NOMEM, "out of memory");
        return STORE_NOMEM;
    }
    j->fn = fn;
    j->arg = arg;
    j->tenant = tenant;
    j->on_done = done;
    j->done_arg = done_arg;
    pthread_mutex_lock(&q->qmu);
    if (q->stopping) {
        pthread_mutex_unlock(&q->qmu);
        eh_free(j);
        store__err(err, STORE_UNAVAILABLE, "store is closing");
        return STORE_UNAVAILABLE;
    }
    if (q->qtail) q->qtail->next = j;
    else q->qhead = j;
    q->qtail = j;
    pthread_cond_signal(&q->qcv);
    pthread_mutex_unlock(&q->qmu);
    return STORE_OK;
}

static int sq_read(store *s, int64_t tenant, store_fn fn, void *arg, store_err *err) {
    sq_store *q = s->impl;
    sq_conn *c;
    int rc = acquire_reader(q, &c, err);
    if (rc) return rc;
    rc = ctl(c, "BEGIN", err);
    if (rc == 0) {
        store_tx tx;
        store__tx_init(&tx, s, tenant, 1, c);
        rc = store__run_fn(&tx, fn, arg, err);
        store__tx_clear(&tx);
        store_err e2;
        ctl(c, rc ? "ROLLBACK" : "COMMIT", &e2);
    }
    release_reader(q, c);
    return rc;
}

static int sq_ping(store *s, store_err *err) {
    sq_store *q = s->impl;
    sq_conn *c;
    int rc = acquire_reader(q, &c, err);
    if (rc) return rc;
    uint64_t t0 = clock_mono_ns();
    rc = ctl(c, "SELECT 1", err);
    store__on_query(s, t0, rc == 0);
    release_reader(q, c);
    return rc;
}

/* ---- open / close ---- */

/* ---- the checkpointer ---- */

/* Writer thread, after each commit: nframes is the WAL's size in pages.
 * The checkpointer is woken each time the log has grown by CKPT_PAGES, so
 * it copies about as much per pass as SQLite's own checkpoint would. The
 * log starts over from its beginning only when a checkpoint has copied all
 * of it before the writer's next transaction; under writes that never
 * pause the checkpointer, copying while the writer appends, may not get
 * there, and the log grows (SQLite then simply appends) until a pause lets
 * it finish (ckpt_main). Only past CKPT_HARD_PAGES does the writer
 * checkpoint inline: it then copies only what the checkpointer has not,
 * but waits for the fsyncs. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int nframes) {
    sq_store *q = arg;
    if (nframes < atomic_load(&q->ckpt_last)) q->ckpt_next = CKPT_PAGES; /* the log started over */
    atomic_store(&q->ckpt_last, nframes);
    if (nframes < q->ckpt_next) return SQLITE_OK;
    q->ckpt_next = nframes + CKPT_PAGES;
    if (nframes >= CKPT_HARD_PAGES || !q->ckpt_started) {
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        return SQLITE_OK;
    }
    pthread_mutex_lock(&q->cmu);
    q->ckpt_want = 1;
    pthread_cond_signal(&q->ccv);
    pthread_mutex_unlock(&q->cmu);
    return SQLITE_OK;
}

static void *ckpt_main(void *arg) {
    sq_store *q = arg;
    pthread_setname_np(pthread_self(), "ehub-ckpt");
    int finish = 0;    /* the log may be complete once writes pause */
    int last_seen = 0; /* the writer's ckpt_last when last looked at */
    for (;;) {
        pthread_mutex_lock(&q->cmu);
        int go = 0;
        while (!go && !q->ckpt_want && !q->ckpt_stop) {
            if (!finish) {
                pthread_cond_wait(&q->ccv, &q->cmu);
                continue;
            }
            /* Look again in a while: if the writer has been idle since, one
             * more pass copies the rest of the log, and its next write
             * starts the log over. While it writes, the wake-ups above do
             * the work and no extra pass (and fsync) is made. */
            struct timespec dl;
            clock_gettime(CLOCK_MONOTONIC, &dl);
            dl.tv_nsec += CKPT_RETRY_MS * 1000000L;
            if (dl.tv_nsec >= 1000000000L) dl.tv_sec++, dl.tv_nsec -= 1000000000L;
            if (pthread_cond_timedwait(&q->ccv, &q->cmu, &dl) == ETIMEDOUT) {
                int now = atomic_load(&q->ckpt_last);
                go = now == last_seen;
                last_seen = now;
            }
        }
        int stop = q->ckpt_stop;
        q->ckpt_want = 0;
        pthread_mutex_unlock(&q->cmu);
        if (stop) break;
        /* PASSIVE: copies what no reader still needs, waits for nobody. A
         * reader on an old snapshot leaves frames behind for next time. */
        int nlog = 0, nckpt = 0;
        int rc = sqlite3_wal_checkpoint_v2(q->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
        if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
            log_msg(q->s->opts.log, LOG_WARN, "store.checkpoint_failed", sqlite3_errstr(rc));
        /* nlog is the log as the pass found it; the writer may have added
         * to it since */
        last_seen = atomic_load(&q->ckpt_last);
        finish = !(rc == SQLITE_OK && (nlog <= 0 || (nckpt == nlog && last_seen == nlog)));
    }
    return NULL;
}

/* Opens the checkpointer's connection and starts it; on failure the writer
 * keeps checkpointing itself (wal_hook), so this is not fatal. */
static void ckpt_start(sq_store *q, const char *path) {
    if (sqlite3_open_v2(path, &q->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        log_msg(q->s->opts.log, LOG_WARN, "store.checkpointer_unavailable", sqlite3_errmsg(q->ckpt_db));
        sqlite3_close(q->ckpt_db);
        q->ckpt_db = NULL;
        return;
    }
    sqlite3_busy_timeout(q->ckpt_db, q->s->opts.busy_timeout_ms);
    /* A connection opens the WAL when it first reads the database; until
     * then a checkpoint through it is a no-op (log size -1). */
    char *emsg = NULL;
    if (sqlite3_exec(q->ckpt_db, "SELECT count(*) FROM sqlite_master", NULL, NULL, &emsg) != SQLITE_OK) {
        log_msg(q->s->opts.log, LOG_WARN, "store.checkpointer_unavailable", emsg ? emsg : "cannot read");
        sqlite3_free(emsg);
        sqlite3_close(q->ckpt_db);
        q->ckpt_db = NULL;
        return;
    }
    if (pthread_create(&q->ckpt_thread, NULL, ckpt_main, q)) {
        log_msg(q->s->opts.log, LOG_WARN, "store.checkpointer_unavailable", "cannot start the thread");
        sqlite3_close(q->ckpt_db);
        q->ckpt_db = NULL;
        return;
    }
    q->ckpt_started = 1;
}

static void ckpt_stop(sq_store *q) {
    if (q->ckpt_started) {
        pthread_mutex_lock(&q->cmu);
        q->ckpt_stop = 1;
        pthread_cond_signal(&q->ccv);
        pthread_mutex_unlock(&q->cmu);
        pthread_join(q->ckpt_thread, NULL);
        q->ckpt_started = 0;
    }
    if (q->ckpt_db) sqlite3_close(q->ckpt_db);
    q->ckpt_db = NULL;
}

static int mkdirs(const char *path) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n >= sizeof tmp) return -1;
    memcpy(tmp, path, n + 1);
    char *slash = strrchr(tmp, '/');
    if (!slash || slash == tmp) return 0;
    *slash = '\0';
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
    return 0;
}

static void sq_free(sq_store *q) {
    for (int i = 0; i < q->nreaders; i++) conn_close(&q->readers[i]);
    if (q->writer.db) {
        /* Fold the WAL back into the database so the file is whole on its
         * own and the -wal file is left empty. */
        char *emsg = NULL;
        sqlite3_exec(q->writer.db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, &emsg);
        sqlite3_free(emsg);
        conn_close(&q->writer);
    }
    if (q->sync_init >= 1) pthread_mutex_destroy(&q->rmu);
    if (q->sync_init >= 2) pthread_cond_destroy(&q->rcv);
    if (q->sync_init >= 3) pthread_mutex_destroy(&q->qmu);
    if (q->sync_init >= 4) pthread_cond_destroy(&q->qcv);
    if (q->sync_init >= 5) pthread_mutex_destroy(&q->cmu);
    if (q->sync_init >= 6) pthread_cond_destroy(&q->ccv);
    eh_free(q->readers);
    eh_free(q->free_readers);
    eh_free(q);
}

static int init_sync(sq_store *q) {
    pthread_condattr_t ca;
    if (pthread_mutex_init(&q->rmu, NULL)) return -1;
    q->sync_init = 1;
    if (pthread_condattr_init(&ca)) return -1;
    /* Pool waits have a deadline; measure it on a clock that does not jump. */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&q->rcv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc) return -1;
    q->sync_init = 2;
    if (pthread_mutex_init(&q->qmu, NULL)) return -1;
    q->sync_init = 3;
    if (pthread_cond_init(&q->qcv, NULL)) return -1;
    q->sync_init = 4;
    if (pthread_mutex_init(&q->cmu, NULL)) return -1;
    q->sync_init = 5;
    if (pthread_condattr_init(&ca)) return -1;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the checkpointer's retry waits too */
    rc = pthread_cond_init(&q->ccv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc) return -1;
    q->sync_init = 6;
    return 0;
}

static int sq_open(store *s, const char *url, store_err *err) {
    const char *path = url + strlen("sqlite:");
    if (!*path || strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0) {
        /* Separate connections to ":memory:" would be separate databases. */
        store__err(err, STORE_INVALID, "sqlite URL needs a file path (sqlite:PATH)");
        return STORE_INVALID;
    }
    if (!sqlite3_threadsafe()) {
        store__err(err, STORE_ERR, "sqlite library built without thread support");
        return STORE_ERR;
    }
    if (mkdirs(path)) {
        store__err(err, STORE_UNAVAILABLE, "cannot create the database directory: %s", strerror(errno));
        return STORE_UNAVAILABLE;
    }
    sq_store *q = eh_calloc(1, sizeof *q);
    if (!q) {
        store__err(err, STORE_NOMEM, "out of memory");
        return STORE_NOMEM;
    }
    q->s = s;
    int n = s->opts.pool_size;
    q->readers = eh_calloc((size_t)n, sizeof *q->readers);
    q->free_readers = eh_calloc((size_t)n, sizeof *q->free_readers);
    if (!q->readers || !q->free_readers) {
        sq_free(q);
        store__err(err, STORE_NOMEM, "out of memory");
        return STORE_NOMEM;
    }
    if (init_sync(q)) {
        sq_free(q);
        store__err(err, STORE_NOMEM, "cannot create mutex");
        return STORE_NOMEM;
    }
    int rc = conn_open(q, &q->writer, path, 1, err);
    if (rc) {
        sq_free(q);
        return rc;
    }
    for (int i = 0; i < n; i++) {
        rc = conn_open(q, &q->readers[i], path, 0, err);
        if (rc) {
            sq_free(q);
            return rc;
        }
        q->nreaders++;
        q->free_readers[q->nfree++] = i;
    }
    /* Replaces SQLite's automatic checkpoint (itself a WAL hook). */
    q->ckpt_next = CKPT_PAGES;
    sqlite3_wal_hook(q->writer.db, wal_hook, q);
    ckpt_start(q, path);
    if (pthread_create(&q->writer_thread, NULL, writer_main, q)) {
        ckpt_stop(q);
        sq_free(q);
        store__err(err, STORE_ERR, "cannot start the writer thread");
        return STORE_ERR;
    }
    q->writer_started = 1;
    s->impl = q;
    return STORE_OK;
}

static void sq_close(store *s) {
    sq_store *q = s->impl;
    if (!q) return;
    if (q->writer_started) {
        pthread_mutex_lock(&q->qmu);
        q->stopping = 1;
        pthread_cond_signal(&q->qcv);
        pthread_mutex_unlock(&q->qmu);
        /* The writer runs what is queued before it sees `stopping`. */
        pthread_join(q->writer_thread, NULL);
    }
    ckpt_stop(q);
    sq_free(q);
    s->impl = NULL;
}

/* A separate connection may checkpoint a WAL database; TRUNCATE waits
 * (busy timeout) for the writer and readers, copies every frame into the
 * database and empties the -wal file, so no old page image is left in it. */
static int sq_checkpoint(store *s, store_err *err) {
    sq_store *q = s->impl;
    const char *path = sqlite3_db_filename(q->writer.db, "main");
    sqlite3 *db = NULL;
    if (!path || sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        store__err(err, STORE_UNAVAILABLE, "sqlite: cannot open the database to checkpoint it");
        return STORE_UNAVAILABLE;
    }
    sqlite3_busy_timeout(db, s->opts.busy_timeout_ms);
    int busy = 0, rc = STORE_OK;
    /* Only one checkpoint runs at a time: while the checkpointer thread is
     * in one, this one is refused at once (SQLITE_BUSY, not the busy
     * handler), so retry for as long as the busy timeout allows. */
    for (int waited = 0;; waited += 10) {
        sqlite3_stmt *st = NULL;
        busy = 0;
        rc = STORE_OK;
        int src = sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &st, NULL);
        if (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) busy = sqlite3_column_int(st, 0);
        else rc = STORE_ERR;
        sqlite3_finalize(st);
        if (!((busy || (src & 0xff) == SQLITE_BUSY || (src & 0xff) == SQLITE_LOCKED) &&
              waited < s->opts.busy_timeout_ms))
            break;
        sqlite3_sleep(10);
    }
    sqlite3_close(db);
    if (rc || busy) {
        store__err(err, busy ? STORE_BUSY : STORE_ERR, "sqlite: the WAL checkpoint did not complete");
        return busy ? STORE_BUSY : STORE_ERR;
    }
    return STORE_OK;
}

const store_backend store_sqlite_backend = {
    .open = sq_open,
    .close = sq_close,
    .write = sq_write,
    .write_async = sq_write_async,
    .read = sq_read,
    .query = sq_query,
    .exec_script = sq_exec_script,
    .ping = sq_ping,
    .checkpoint = sq_checkpoint,
};
