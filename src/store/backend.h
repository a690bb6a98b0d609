/* backend — the internal seam between store.c (public API, tenants, event
 * log, migrations, result sets) and the two storage engines (sqlite.c,
 * pg.c). Nothing outside src/store includes this.
 *
 * store.c validates arguments, owns the callback/abort rules and the event
 * bookkeeping; a backend only knows how to run a transaction around a
 * callback, run one statement, and run a migration script. */
#ifndef EH_STORE_BACKEND_H
#define EH_STORE_BACKEND_H

#include <stdint.h>

#include "migrations.h"
#include "store.h"

typedef struct store_backend {
    /* Connects and stores its state in s->impl. On failure fills err and
     * leaves s->impl NULL (everything it made is freed). */
    int (*open)(store *s, const char *url, store_err *err);
    /* Finishes queued work and frees s->impl. */
    void (*close)(store *s);
    int (*write)(store *s, int64_t tenant, store_fn fn, void *arg, store_err *err);
    /* Optional (NULL = write, then done on the caller's thread): see
     * store_write_async. */
    int (*write_async)(store *s, int64_t tenant, store_fn fn, void *arg, store_done_fn done, void *done_arg,
                       store_err *err);
    int (*read)(store *s, int64_t tenant, store_fn fn, void *arg, store_err *err);
    /* Arguments were validated by store_query. Fills tx->changes, dooms the
     * tx (store__tx_fail) on a database error. */
    int (*query)(store_tx *tx, const char *sql, const store_val *params, int n, store_rows **rows,
                 store_err *err);
    /* Runs trusted multi-statement SQL without parameters (migrations). */
    int (*exec_script)(store_tx *tx, const char *sql, store_err *err);
    int (*ping)(store *s, store_err *err);
    /* Optional (NULL = nothing to do): see store_checkpoint. */
    int (*checkpoint)(store *s, store_err *err);
    /* Optional (NULL = checkpoint): see store_purge; tables validated. */
    int (*purge)(store *s, const char *const *tables, int n, size_t rewrite_max, store_purge_report *rep,
                 store_err *err);
} store_backend;

extern const store_backend store_sqlite_backend;
extern const store_backend store_pg_backend;

struct store {
    store_kind kind;
    const store_backend *be;
    void *impl;
    store_opts opts;  /* copied, defaults filled in */
    const store_migration *migrations;
};

struct store_tx {
    store *s;
    int64_t tenant;
    int readonly;
    void *conn;        /* the backend's connection */
    int64_t changes;
    /* The first database error in this transaction. Once set the transaction
     * can only roll back: PostgreSQL aborts a transaction on any error, and
     * SQLite is made to behave the same so code tested on one works on the
     * other. */
    store_err fail;
    /* Events appended in this transaction, kept only when opts.on_commit is
     * set; strings owned here. */
    store_event *ev;
    int nev, evcap;
    /* Events appended without asking for their seq, not yet written: one
     * seq allocation and one multi-row INSERT for all of them when the
     * callback ends, or earlier when a statement reads the event log
     * (store__flush_events). tenant/seq unset; strings owned here. */
    store_event *pend;
    int npend, pendcap;
};

/* ---- helpers store.c provides to the backends ---- */

void store__err(store_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void store__tx_init(store_tx *tx, store *s, int64_t tenant, int readonly, void *conn);
/* Frees the collected events (after on_commit, on rollback, before a retry). */
void store__tx_clear(store_tx *tx);
/* Writes the transaction's pending events (see store_tx.pend). */
int store__flush_events(store_tx *tx, store_err *err);
/* Records err as the transaction's first failure. */
void store__tx_fail(store_tx *tx, const store_err *err);
/* Runs the user's callback and applies the abort rules. Returns 0 if the
 * transaction should commit, else the code to return (err filled). */
int store__run_fn(store_tx *tx, store_fn fn, void *arg, store_err *err);
/* Hands a committed transaction's events to opts.on_commit. */
void store__tx_committed(store_tx *tx);
/* Reports a statement's duration to opts.on_query. */
void store__on_query(store *s, uint64_t start_ns, int ok);
/* v in decimal, NUL-terminated, as "%lld" would; returns its length. */
size_t store__fmt_int(int64_t v, char out[24]);
/* Formats a double so it reads back exactly, in as few digits as possible
 * (the same text PostgreSQL produces). out: 32 bytes. */
void store__fmt_double(double d, char *out, size_t outlen);

/* Result sets are built column names first, then cells row by row. */
store_rows *store__rows_new(int ncols);
int store__rows_name(store_rows *r, int col, const char *name);
/* p may be NULL for SQL NULL. Returns STORE_OK or STORE_NOMEM. */
int store__rows_cell(store_rows *r, const char *p, size_t n);

/* ---- a prepared-statement cache, one per connection ----
 * Keyed by SQL text (callers pass the same literal every time), bounded, LRU
 * eviction. `drop` releases a value (finalize / DEALLOCATE). Not
 * thread-safe: a connection is used by one thread at a time. */
typedef struct sc_entry {
    struct sc_entry *hnext;       /* hash chain */
    struct sc_entry *prev, *next; /* LRU list, most recent first */
    uint64_t hash;
    void *val;
    char sql[];
} sc_entry;

#define SC_BUCKETS 256

typedef struct stmt_cache {
    sc_entry *bucket[SC_BUCKETS];
    sc_entry *head, *tail;
    int n, cap;
    void (*drop)(void *ud, void *val);
    void *ud;
} stmt_cache;

void sc_init(stmt_cache *c, int cap, void (*drop)(void *ud, void *val), void *ud);
void *sc_get(stmt_cache *c, const char *sql);
/* Takes val on success; on STORE_NOMEM the caller keeps it. May evict. */
int sc_put(stmt_cache *c, const char *sql, void *val);
/* Drops the entry for sql, if any. */
void sc_remove(stmt_cache *c, const char *sql);
/* Drops every entry (drop is called for each). */
void sc_clear(stmt_cache *c);

#endif
