/* store — durable storage behind one API: SQLite (embedded default) or
 * PostgreSQL (shared, scale-out).
 *
 * Everything the server accepts is written here before it is acknowledged.
 * Work happens inside transactions run by store_write / store_read, which
 * take a callback: the store owns the connection, begins the transaction,
 * scopes it to one tenant, calls you, and commits (or rolls back if your
 * callback returns non-zero). All calls block: run them on the thread pool,
 * never on the event-loop thread. A `store` is thread-safe; a `store_tx` is
 * only valid inside the callback it was passed to.
 *
 * SQL is written once for both backends with $1..$N placeholders; values are
 * always bound, never interpolated. Where the dialects differ, branch on
 * store_tx_kind().
 *
 * Both backends behave alike on purpose, so code tested on SQLite works on
 * PostgreSQL: a statement that fails dooms its transaction (later
 * store_query calls fail and it cannot commit, as in PostgreSQL), and a
 * callback may run more than once (PostgreSQL retries it on deadlock or
 * serialization failure), so it must have no effects outside the
 * transaction other than filling its own result.
 *
 * SQLite: WAL mode, one writer connection owned by a writer thread plus a
 * pool of reader connections. Concurrent store_write calls are grouped into
 * one transaction (group commit), each callback inside its own SAVEPOINT so
 * one failing callback rolls back only its own changes; every caller returns
 * (or, with store_write_async, is called back) only after the shared
 * COMMIT is durable.
 * PostgreSQL: a pool of libpq connections; each transaction runs
 * `SET LOCAL ehub.tenant_id` (as set_config(..., true), the id bound) so
 * row-level security policies can key on it.
 *
 * Migrations (src/store/migrations/<backend>/NNN_name.sql, embedded in the
 * binary) are applied by store_migrate, recorded in schema_migrations, and
 * serialised across nodes with an advisory lock on PostgreSQL. */
#ifndef EH_STORE_H
#define EH_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../base/log.h"

typedef struct store store;
typedef struct store_tx store_tx;
typedef struct store_rows store_rows;
struct store_event;

typedef enum { STORE_SQLITE = 1, STORE_POSTGRES = 2 } store_kind;

/* Error codes. Every function that can fail returns one (0 = STORE_OK) and
 * fills *err (when err is not NULL) with the code and a message that is safe
 * to log (no parameter values). Database errors map as: unique/primary key
 * -> CONFLICT; NOT NULL, CHECK, foreign key, bad value for a type, writing
 * in store_read -> INVALID; SQLite BUSY/LOCKED, PG 40001/40P01/55P03 ->
 * BUSY; connection failures -> UNAVAILABLE. */
enum {
    STORE_OK = 0,
    STORE_ERR = -1,         /* anything else (SQL error, I/O) */
    STORE_NOMEM = -2,
    STORE_CONFLICT = -3,    /* unique / primary-key violation */
    STORE_NOTFOUND = -4,
    STORE_BUSY = -5,        /* lock timeout, serialization failure: may retry */
    STORE_UNAVAILABLE = -6, /* cannot connect / connection lost */
    STORE_INVALID = -7,     /* bad argument or URL */
    STORE_ABORTED = -8,     /* the callback returned non-zero */
};

typedef struct store_err {
    int code;
    char msg[256];
} store_err;

typedef struct store_opts {
    int pool_size;        /* reader connections (SQLite) or pool size (PG); 0 = 4 */
    int sync_full;        /* SQLite: synchronous=FULL instead of NORMAL */
    int busy_timeout_ms;  /* 0 = 5000 */
    int no_migrate;       /* do not apply migrations in store_open */
    logger *log;          /* may be NULL; not owned */
    /* Called after every statement with its duration, from any thread (for
     * the storage-latency metric). May be NULL. */
    void (*on_query)(void *ud, double seconds, int ok);
    void *on_query_ud;
    /* SQLite: called on the writer thread after each group commit (or its
     * failure) with how many store_write transactions it held and how long
     * it took, BEGIN to COMMIT; with on_query_ud. May be NULL. */
    void (*on_batch)(void *ud, int jobs, double seconds);
    /* Called after a store_write transaction is durably committed, with the
     * events appended in it (in seq order), from the committing thread. The
     * array is valid only during the call. May be NULL.
     * SQLite: called on the writer thread, before that store_write returns,
     * in commit order; keep it short (hand off to a queue) and never call
     * store_write from it. PostgreSQL: called on the caller's thread, so
     * calls for concurrent transactions may arrive out of seq order; a
     * consumer needing strict order fills gaps with store_events_after. */
    void (*on_commit)(void *ud, const struct store_event *ev, int n);
    void *on_commit_ud;
    /* The application's context, handed to domain code running inside a
     * transaction (store_tx_ctx): in ehub a leads_domain (the scorer and
     * the coach), so that every write that changes a lead can re-score it
     * and coach its agent in the same transaction. Not owned; may be NULL. */
    void *ctx;
} store_opts;

/* Opens "sqlite:PATH" (the file and its directory are created) or
 * "postgres://..." / "postgresql://..." (any libpq connection URI). Applies
 * pending migrations unless opts->no_migrate. On failure returns NULL and
 * fills err. opts may be NULL for defaults. The caller owns the store and
 * frees it with store_close. */
store *store_open(const char *url, const store_opts *opts, store_err *err);

/* Waits for queued writes, checkpoints the SQLite WAL, closes every
 * connection, frees the store. NULL is a no-op. */
void store_close(store *s);

store_kind store_get_kind(const store *s);
const char *store_kind_name(store_kind k);  /* "sqlite" or "postgres" */

/* Applies pending migrations; *applied (may be NULL) gets how many ran. */
int store_migrate(store *s, int *applied, store_err *err);
/* Highest applied migration and the highest the binary knows. */
int store_schema_version(store *s, int *applied, int *known, store_err *err);
/* After an erasure: SQLite folds the WAL into the database file and
 * truncates it (with secure_delete on, freed content is zeroed, so erased
 * bytes leave both files). PostgreSQL: a no-op (see store_purge). Blocking. */
int store_checkpoint(store *s, store_err *err);
/* After an erasure: makes the erased values leave the database's files.
 * tables: the n tables the erasure changed (names from the caller's code,
 * [a-z_] only; anything else is STORE_INVALID).
 * SQLite: store_checkpoint (tables are not needed: secure_delete zeroes
 * freed content, the checkpoint empties the WAL).
 * PostgreSQL: an UPDATE leaves the old row version (and its index entries)
 * in the files until VACUUM, and a plain VACUUM only marks that space free:
 * the bytes stay (measured, see README "Privacy"). So, on a connection of
 * its own in autocommit mode (VACUUM cannot run in a transaction), each
 * table whose total size (indexes and TOAST included) is at most
 * rewrite_max bytes is rewritten with VACUUM FULL: it holds an ACCESS
 * EXCLUSIVE lock on the table for the rewrite (~0.7 s per 130 MB here),
 * and waits at most 2 s for it (lock_timeout: a waiting exclusive lock
 * would queue every reader behind it). The old files are truncated at its
 * commit. Larger tables (all, with rewrite_max 0) and tables whose lock
 * was not had in time get a plain VACUUM and are named in rep->residue.
 * Then ANALYZE of the tables and VACUUM FULL of pg_statistic: the planner's
 * samples (histogram bounds, common values) may quote the erased values.
 * rep->clean = 1 when nothing is left behind. Blocking; rep may be NULL. */
typedef struct store_purge_report {
    int rewritten, vacuumed; /* PostgreSQL: tables rewritten / only vacuumed */
    int clean;               /* 1: the erased bytes left the files */
    char residue[256];       /* tables only vacuumed, comma-separated */
} store_purge_report;
int store_purge(store *s, const char *const *tables, int n, size_t rewrite_max, store_purge_report *rep,
                store_err *err);
/* Cheap round trip to the database, for readiness checks. */
int store_ping(store *s, store_err *err);

/* A transaction callback. Return 0 to commit; any other value rolls back
 * and store_write/store_read return STORE_ABORTED (or the callback's err code if it set one). */
typedef int (*store_fn)(store_tx *tx, void *arg, store_err *err);

/* Runs fn in a read-write transaction scoped to tenant (0 = no tenant, for
 * cross-tenant admin work such as creating tenants). Returns after the
 * commit is durable, or with an error and nothing written. If fn returned 0
 * but a statement in it failed, that statement's error is returned.
 * Do not call store_write or store_read from inside fn (SQLite refuses a
 * nested store_write with STORE_INVALID; a pool can run dry). */
int store_write(store *s, int64_t tenant, store_fn fn, void *arg, store_err *err);
/* What store_write_async calls once the transaction is over: rc and err
 * as store_write would have returned them (err valid during the call). */
typedef void (*store_done_fn)(void *done_arg, int rc, const store_err *err);
/* store_write without waiting: queues fn and returns; done(done_arg, rc,
 * err) is called exactly once, after the COMMIT is durable or the
 * transaction failed, and only if this returns STORE_OK (a call that fails
 * at once never calls done). arg must stay valid until done is called.
 * SQLite: fn and done run on the writer thread, in the same group commits
 * as store_write (no thread sleeps until the commit: callers can keep more
 * writes in one batch than there are pool threads); done must be short
 * (hand off to another thread) and may call store_write_async again (a
 * retry), never store_write. PostgreSQL: runs the transaction on the
 * calling thread, blocking as store_write does, then calls done there
 * before returning; so call it from the thread pool, not the loop. */
int store_write_async(store *s, int64_t tenant, store_fn fn, void *arg, store_done_fn done, void *done_arg,
                      store_err *err);
/* 1 if store_write_async only queues (SQLite's writer thread), so the loop
 * may call it; 0 if it runs the transaction on the caller's thread
 * (PostgreSQL). */
int store_write_queues(const store *s);
/* Runs fn in a read-only transaction (a consistent snapshot). */
int store_read(store *s, int64_t tenant, store_fn fn, void *arg, store_err *err);

int64_t store_tx_tenant(const store_tx *tx);
store_kind store_tx_kind(const store_tx *tx);
/* store_opts.ctx of the transaction's store. */
void *store_tx_ctx(const store_tx *tx);

/* ---- statements ---- */

typedef enum { SV_NULL = 0, SV_INT, SV_REAL, SV_TEXT, SV_BLOB } store_vtype;

typedef struct store_val {
    store_vtype t;
    int64_t i;
    double d;
    const char *s;  /* SV_TEXT / SV_BLOB: not copied; must outlive the call */
    size_t n;
} store_val;

#define SV_NULLV ((store_val){.t = SV_NULL})
#define SV_I(x) ((store_val){.t = SV_INT, .i = (x)})
#define SV_D(x) ((store_val){.t = SV_REAL, .d = (x)})
/* A C string as a text value; NULL becomes SQL NULL. */
static inline store_val store_text(const char *str) {
    store_val v = {.t = SV_NULL};
    if (str) {
        v.t = SV_TEXT;
        v.s = str;
        v.n = strlen(str);
    }
    return v;
}
#define SV_S(str) store_text(str)
#define SV_SN(str, len) ((store_val){.t = SV_TEXT, .s = (str), .n = (len)})
#define SV_B(ptr, len) ((store_val){.t = SV_BLOB, .s = (const char *)(ptr), .n = (len)})

/* Runs one statement with $1..$n bound to params. If rows is not NULL it
 * receives the whole result (caller frees with store_rows_free; an empty
 * result is a valid store_rows with 0 rows); on error *rows is NULL.
 * n must equal the highest $k in sql. Text may not contain NUL bytes.
 * STORE_INVALID (without dooming the transaction) for a wrong parameter
 * count, other placeholder styles, several statements, or transaction
 * control (BEGIN/COMMIT/ROLLBACK/SAVEPOINT...: the store owns those).
 * Results are the same on both engines: integers and reals as decimal text
 * (reals read back exactly), booleans as 1/0, blobs/bytea as raw bytes. */
int store_query(store_tx *tx, const char *sql, const store_val *params, int n,
                store_rows **rows, store_err *err);
/* Rows changed by the last INSERT/UPDATE/DELETE run through store_query. */
int64_t store_tx_changes(const store_tx *tx);
/* Runs insert_sql, a one-row INSERT into table (a table whose INTEGER
 * PRIMARY KEY is its rowid, written without RETURNING), and answers the
 * new row's cols (a select list over table's columns) in *rows, as
 * `insert_sql RETURNING cols` would. PostgreSQL runs exactly that; SQLite
 * runs the INSERT, then selects the row by last_insert_rowid(): SQLite
 * collects RETURNING rows in an ephemeral table made for every run, ~17k
 * instructions more than that SELECT (callgrind). Ownership and errors as
 * store_query; store_tx_changes counts the INSERT; an INSERT that wrote
 * nothing (ON CONFLICT DO NOTHING) answers no row. */
int store_insert_returning(store_tx *tx, const char *insert_sql, const char *table, const char *cols,
                           const store_val *params, int n, store_rows **rows, store_err *err);

int store_rows_count(const store_rows *r);
int store_rows_cols(const store_rows *r);
const char *store_rows_name(const store_rows *r, int col);
int store_rows_isnull(const store_rows *r, int row, int col);
/* Text of a cell (NULL for SQL NULL); valid until store_rows_free. */
const char *store_rows_text(const store_rows *r, int row, int col);
/* Bytes in a cell (for blobs, which may hold NULs); 0 for NULL. */
size_t store_rows_len(const store_rows *r, int row, int col);
int64_t store_rows_int(const store_rows *r, int row, int col);   /* 0 for NULL */
double store_rows_real(const store_rows *r, int row, int col);   /* 0 for NULL */
void store_rows_free(store_rows *r);

/* ---- tenants ---- */

/* Creates a tenant (slug: 1-64 of [a-z0-9_-]). STORE_CONFLICT if the slug
 * exists. Use inside store_write with tenant 0 (STORE_INVALID elsewhere). */
int store_tenant_create(store_tx *tx, const char *slug, const char *name, int64_t *id,
                        store_err *err);
/* Looks a tenant up by slug; STORE_NOTFOUND if absent. */
int store_tenant_find(store_tx *tx, const char *slug, int64_t *id, store_err *err);

/* ---- event log ----
 * An append-only, per-tenant ordered log of domain events. seq starts at 1
 * for each tenant and has no gaps among committed events. */

typedef struct store_event {
    int64_t tenant;
    int64_t seq;
    int64_t time_ms;      /* epoch milliseconds */
    const char *type;     /* e.g. "lead.created" */
    const char *payload;  /* JSON text */
} store_event;

/* Appends an event to the transaction's tenant (must not be 0) and returns
 * its seq. With seq NULL the row is deferred: all such events of one
 * transaction take their numbers in one allocation and are written in one
 * multi-row INSERT when the callback returns (or before any later statement
 * that names the event log), so a write appending several events costs two
 * statements, not two per event. payload must be valid JSON text (else the
 * write fails: STORE_INVALID, at the flush when deferred). PostgreSQL
 * stores it as jsonb, so it reads back normalised ({"a": 1}); STORE_NOTFOUND
 * if the tenant does not exist. */
int store_event_append(store_tx *tx, const char *type, const char *payload, int64_t *seq,
                       store_err *err);

typedef struct store_event_list {
    store_event *ev;
    int n;
} store_event_list;

/* Events of the transaction's tenant with seq > after, oldest first, at
 * most limit (1-10000). Free with store_event_list_free. */
int store_events_after(store_tx *tx, int64_t after, int limit, store_event_list *out,
                       store_err *err);
void store_event_list_free(store_event_list *l);
/* Last assigned seq for the transaction's tenant (0 if none). */
int store_events_last_seq(store_tx *tx, int64_t *seq, store_err *err);
/* The last assigned seq of every tenant with id > after that has events,
 * by id, at most max (1-10000): *n gets how many. Cross-tenant: run it in a
 * transaction of tenant 0. The bus compares these heads with what it
 * delivered, to notice events committed by another process (the CLI) or
 * whose bus message never came. */
int store_event_heads(store_tx *tx, int64_t after, int max, int64_t *tenant, int64_t *seq, int *n,
                      store_err *err);

#endif
