/* privacy — what GDPR/CCPA ask of a store of people: a consent log per
 * contact and channel, an export of everything held on a person, an
 * erasure that leaves no personal data behind (but keeps counts and the
 * audit of the erasure), and per-tenant retention policies run on a timer.
 *
 * A contact is a lead. Everything here runs inside a store transaction
 * (thread pool) except the routes' handlers and the scheduler's timer,
 * which run on the loop and hand the work to the pool. */
#ifndef EH_PRIVACY_H
#define EH_PRIVACY_H

#include <jansson.h>
#include <stdint.h>

#include "auth/auth.h"
#include "store/store.h"

/* ---- consent log ----
 * channel: "sms", "email", "call", or "all" (do-not-disturb: given = 0 means
 * DND switched on). source: which path made the change ("api", "import",
 * "ghl", "twilio", "sendgrid"...); evidence: what proves it (a webhook id,
 * a message sid, "key:3"); neither may hold the person's address. Both are
 * copied. Appends one row. */
int privacy_consent_record(store_tx *tx, int64_t lead, const char *channel, int given, const char *source,
                           const char *evidence, int64_t now_ms, store_err *err);
/* The lead's consent flags in the order sms, email, call, dnd (1/0). Also
 * for soft-deleted leads. STORE_NOTFOUND if the tenant has no such lead. */
int privacy_consent_flags(store_tx *tx, int64_t lead, int flags[4], store_err *err);
/* Compares before (privacy_consent_flags, or NULL for a new lead: every
 * flag counts as unknown) with the lead's flags now and records each
 * difference. */
int privacy_consent_diff(store_tx *tx, int64_t lead, const int *before, const char *source, const char *evidence,
                         int64_t now_ms, store_err *err);
/* The same with the flags now already known (a row the caller just wrote
 * and read back), without reading them again. */
int privacy_consent_diff_known(store_tx *tx, int64_t lead, const int *before, const int now[4], const char *source,
                               const char *evidence, int64_t now_ms, store_err *err);
/* STORE_OK if the tenant has the lead and it was not erased, else
 * STORE_NOTFOUND (err filled). */
int privacy_consent_live(store_tx *tx, int64_t lead, store_err *err);
/* The lead's consent log, oldest first: [{id, channel, status, source,
 * evidence, at}]. */
int privacy_consent_list(store_tx *tx, int64_t lead, json_t **items, store_err *err);

/* ---- export and erasure ---- */
/* Everything held on the lead (see README "Privacy"). STORE_NOTFOUND if the
 * tenant has no such lead or it was erased. *out is the caller's. */
int privacy_export(store_tx *tx, int64_t lead, json_t **out, store_err *err);
/* Erases the lead: personal columns emptied everywhere, rows kept for
 * counts, an audit entry "contact.erase" (counts only) appended by actor.
 * *already = 1 if it was erased before (then nothing changes and no entry
 * is appended). *summary (may be NULL) gets what was touched.
 * STORE_NOTFOUND if the tenant has no such lead. */
int privacy_erase(store_tx *tx, int64_t lead, const auth_actor *actor, const char *reason, int64_t now_ms,
                  int *already, json_t **summary, store_err *err);

/* The tables behind an erasure's or a retention run's "rows" ({key: n})
 * with n > 0, for store_purge: up to max names (static strings) into
 * tables; returns how many. */
#define PRIVACY_TABLES_MAX 16
int privacy_changed_tables(const json_t *rows, const char **tables, int max);

/* ---- retention ---- */
typedef struct privacy_policy {
    int lead_inactive_days; /* 0 = off */
    int inbox_days;         /* 0 = off */
    int64_t last_run_at;
} privacy_policy;
int privacy_policy_get(store_tx *tx, privacy_policy *p, store_err *err);
/* Applies the tenant's policy as of now_ms. dry_run: counts only, changes
 * nothing (and appends no audit entry). claim_before > 0: run only if the
 * last run was before it (node-safe scheduling: the claim row-locks the
 * policy, so a second node skips); *ran = 0 when skipped. *report gets
 * {dry_run, leads:{count, ids}, inbox:{count}, policy, rows:{table: n}}
 * (rows: what the erasures and the emptied bodies changed, for
 * privacy_changed_tables). */
int privacy_retention_run(store_tx *tx, const auth_actor *actor, int dry_run, int64_t claim_before, int64_t now_ms,
                          int *ran, json_t **report, store_err *err);

/* ---- server side (src/privacy/api.c) ---- */
struct app;
/* Registers the routes and starts the timer of retention and of the
 * webhook checkpoints (auth_inbox_checkpoint, every --audit-checkpoint). */
int privacy_register(struct app *a);
void privacy_stop(struct app *a);
/* At graceful shutdown, once the HTTP server has drained (every webhook
 * answered is stored) and before the store closes: privacy_stop, then one
 * last webhook checkpoint pass on the pool (unless --audit-checkpoint 0),
 * so the rows of the last interval are covered too. */
void privacy_drain(struct app *a);
/* ehub retention run --tenant T [--dry-run]: prints the report.
 * rewrite_max: --erase-rewrite-max (see store_purge). */
int privacy_cli_retention(const char *store_url, const char *tenant, int dry_run, size_t rewrite_max, char *errbuf,
                          size_t errlen, json_t **report);

#endif
