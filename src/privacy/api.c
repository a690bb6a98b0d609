/* Privacy routes (consent log, export, erasure, retention), the scheduler
 * of retention and of the audit trail's webhook checkpoints (one timer on
 * the loop; the work on the pool) and the CLI's `ehub retention run`. */
#include <stdio.h>
#include <string.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "privacy.h"

struct privacy_ctx {
    app *a;
    uv_timer_t timer;
    uv_work_t work;
    int busy, stopping, closed;
    int final;              /* a last checkpoint pass is due (privacy_drain) */
    int retention_now;      /* set by the tick when a retention pass is due */
    int64_t retention_due;  /* loop time (ms) of the next retention pass */
    metric *m_erased, *m_runs, *m_checkpoints, *m_checkpoint_rows, *m_checkpoint_fail;
};

static int64_t contact_id(http_req *q) { return api_parse_id(http_req_param(q, "id")); }

/* ---- consents and export ---- */

static int consents_tx(store_tx *tx, api_job *j, store_err *err) {
    int flags[4];
    int rc = privacy_consent_flags(tx, j->id, flags, err);
    if (rc) return rc;
    /* an erased contact is gone on every route */
    if ((rc = privacy_consent_live(tx, j->id, err))) return rc;
    json_t *items = NULL;
    if ((rc = privacy_consent_list(tx, j->id, &items, err))) return rc;
    j->out = json_pack("{s:I, s:{s:b, s:b, s:b, s:b}, s:o}", "lead_id", (json_int_t)j->id, "current", "sms", flags[0],
                       "email", flags[1], "call", flags[2], "dnd", flags[3], "items", items);
    return STORE_OK;
}

static int export_tx(store_tx *tx, api_job *j, store_err *err) {
    int rc = privacy_export(tx, j->id, &j->out, err);
    if (!rc) json_object_set_new(j->out, "exported_at", json_integer(clock_wall_ms()));
    return rc;
}

static void run_read(http_req *q, app *a, const auth_principal *p, int (*fn)(store_tx *, api_job *, store_err *)) {
    int64_t id = contact_id(q);
    if (id < 0) {
        http_reply_error(q, 404, "not_found", "no such contact");
        return;
    }
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->id = id;
    j->fn = fn;
    api_job_run(q, j);
}

static void h_consents(http_req *q, app *a, const auth_principal *p, void *ud) { run_read(q, a, p, consents_tx); }
static void h_export(http_req *q, app *a, const auth_principal *p, void *ud) { run_read(q, a, p, export_tx); }

/* ---- erasure ---- */

typedef struct erase_job {
    app *a;
    auth_principal p;
    int64_t id;
    char actor[32], ip[64];
    int already, rc, purge_rc;
    json_t *summary;
    store_purge_report purge;
    store_err err;
} erase_job;

/* After the erasure committed: the old row versions out of the files
 * (store_purge: the SQLite WAL, PostgreSQL's dead tuples); tables from
 * rows ({key: n}). Logged, not fatal: the erasure itself is done. */
static int purge_after(app *a, const json_t *rows, store_purge_report *rep) {
    const char *tables[PRIVACY_TABLES_MAX];
    int n = privacy_changed_tables(rows, tables, PRIVACY_TABLES_MAX);
    store_err err;
    if (!n) { /* nothing changed, nothing left behind */
        memset(rep, 0, sizeof *rep);
        rep->clean = 1;
        return STORE_OK;
    }
    int rc = store_purge(a->st, tables, n, a->cfg.erase_rewrite_max, rep, &err);
    if (rc) log_msg(a->log, LOG_WARN, "purge after erasure failed", err.msg);
    else if (!rep->clean) {
        log_line l;
        if (log_begin(a->log, &l, LOG_WARN, "erased values may stay in free space until overwritten")) {
            log_str(&l, "tables", rep->residue);
            log_end(&l);
        }
    }
    return rc;
}

static json_t *residue_json(const store_purge_report *rep) {
    json_t *arr = json_array();
    const char *p = rep->residue;
    while (*p) {
        size_t l = strcspn(p, ",");
        json_array_append_new(arr, json_stringn(p, l));
        p += l + (p[l] == ',');
    }
    return arr;
}

static int erase_tx(store_tx *tx, void *arg, store_err *err) {
    erase_job *e = arg;
    json_decref(e->summary); /* a retried transaction starts again */
    e->summary = NULL;
    auth_actor who = {e->actor, e->ip[0] ? e->ip : NULL};
    return privacy_erase(tx, e->id, &who, "request", clock_wall_ms(), &e->already, &e->summary, err);
}

static void erase_work(void *arg) {
    erase_job *e = arg;
    e->rc = store_write(e->a->st, e->p.tenant, erase_tx, e, &e->err);
    /* The erased bytes are still in the SQLite WAL until a checkpoint, and
     * in PostgreSQL's old row versions until those are rewritten. */
    if (e->rc == STORE_OK && !e->already) e->purge_rc = purge_after(e->a, e->summary, &e->purge);
}

static void erase_done(http_req *q, void *arg) {
    erase_job *e = arg;
    if (e->rc == STORE_OK) {
        if (!e->already && e->a->privacy) metric_add(e->a->privacy->m_erased, NULL, 1);
        json_t *out = json_pack("{s:I, s:b, s:b}", "lead_id", (json_int_t)e->id, "erased", 1, "already_erased",
                                e->already);
        if (e->summary) json_object_set_new(out, "rows", e->summary);
        e->summary = NULL;
        if (!e->already) {
            json_object_set_new(out, "files_clean", json_boolean(e->purge_rc == 0 && e->purge.clean));
            if (e->purge.residue[0]) json_object_set_new(out, "files_residue", residue_json(&e->purge));
        }
        http_reply_json(q, 200, out);
    } else if (e->rc == STORE_NOTFOUND) {
        http_reply_error(q, 404, "not_found", "no such contact");
    } else {
        log_msg(e->a->log, LOG_ERROR, "erasure failed", e->err.msg);
        http_reply_error(q, e->rc == STORE_BUSY || e->rc == STORE_UNAVAILABLE ? 503 : 500, "unavailable",
                         "the erasure did not happen; retry");
    }
    json_decref(e->summary);
    eh_free(e);
}

static void h_erase(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = contact_id(q);
    if (id < 0) {
        http_reply_error(q, 404, "not_found", "no such contact");
        return;
    }
    erase_job *e = eh_calloc(1, sizeof *e);
    if (!e) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    e->a = a;
    e->p = *p;
    e->id = id;
    auth_actor_name(p, e->actor);
    http_req_client(q, e->ip, sizeof e->ip);
    if (http_req_work(q, erase_work, erase_done, e)) {
        eh_free(e);
        http_reply_error(q, 503, "overloaded", "cannot schedule work");
    }
}

/* ---- retention policy ---- */

static int policy_get_tx(store_tx *tx, api_job *j, store_err *err) {
    privacy_policy pol;
    int rc = privacy_policy_get(tx, &pol, err);
    if (rc) return rc;
    j->out = json_pack("{s:o, s:o, s:o}", "lead_inactive_days",
                       pol.lead_inactive_days ? json_integer(pol.lead_inactive_days) : json_null(), "inbox_days",
                       pol.inbox_days ? json_integer(pol.inbox_days) : json_null(), "last_run_at",
                       pol.last_run_at ? json_integer(pol.last_run_at) : json_null());
    return STORE_OK;
}

static int policy_put_tx(store_tx *tx, api_job *j, store_err *err) {
    json_t *l = json_object_get(j->in, "lead_inactive_days"), *b = json_object_get(j->in, "inbox_days");
    int64_t now = clock_wall_ms();
    store_val p[] = {SV_I(store_tx_tenant(tx)), json_is_integer(l) ? SV_I(json_integer_value(l)) : SV_NULLV,
                     json_is_integer(b) ? SV_I(json_integer_value(b)) : SV_NULLV, SV_I(now)};
    int rc = store_query(tx,
                         "INSERT INTO retention_policies (tenant_id, lead_inactive_days, inbox_days, updated_at) "
                         "VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE SET "
                         "lead_inactive_days = $2, inbox_days = $3, updated_at = $4",
                         p, 4, NULL, err);
    if (rc) return rc;
    char actor[32];
    auth_actor who = {auth_actor_name(&j->p, actor), NULL};
    if ((rc = auth_audit(tx, store_tx_tenant(tx), &who, "retention.policy", NULL, j->in, now, err))) return rc;
    return policy_get_tx(tx, j, err);
}

static int days_ok(json_t *v) {
    return !v || json_is_null(v) || (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 36500);
}

static void h_policy_get(http_req *q, app *a, const auth_principal *p, void *ud) {
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->fn = policy_get_tx;
    api_job_run(q, j);
}

static void h_policy_put(http_req *q, app *a, const auth_principal *p, void *ud) {
    json_t *in = http_req_json(q);
    if (!in) return;
    json_t *errors = json_object();
    const char *k;
    json_t *v;
    if (!json_is_object(in)) json_object_set_new(errors, "_", json_string("expected a JSON object"));
    else
        json_object_foreach(in, k, v) {
            if (strcmp(k, "lead_inactive_days") && strcmp(k, "inbox_days"))
                json_object_set_new(errors, k, json_string("unknown field"));
            else if (!days_ok(v))
                json_object_set_new(errors, k, json_string("a whole number of days, 1-36500, or null (off)"));
        }
    if (json_object_size(errors)) {
        json_t *body = json_pack("{s:{s:s, s:s, s:s, s:o}}", "error", "code", "validation_failed", "message",
                                 "invalid retention policy", "request_id", http_req_id(q), "fields", errors);
        http_reply_json(q, 422, body);
        json_decref(in);
        return;
    }
    json_decref(errors);
    api_job *j = api_job_for(q, a, p);
    if (!j) {
        json_decref(in);
        return;
    }
    j->in = in;
    j->write = 1;
    j->audited = 1; /* retention.policy */
    j->fn = policy_put_tx;
    api_job_run(q, j);
}

static int run_tx(store_tx *tx, api_job *j, store_err *err) {
    char actor[32];
    auth_actor who = {auth_actor_name(&j->p, actor), NULL};
    int ran;
    json_decref(j->out);
    j->out = NULL;
    return privacy_retention_run(tx, &who, (int)j->id2, 0, clock_wall_ms(), &ran, &j->out, err);
}

/* on the pool, after the run committed */
static void run_post(api_job *j) {
    if (j->id2 || !j->out) return; /* a dry run changed nothing */
    store_purge_report rep;
    int rc = purge_after(j->a, json_object_get(j->out, "rows"), &rep);
    json_object_set_new(j->out, "files_clean", json_boolean(rc == 0 && rep.clean));
    if (rep.residue[0]) json_object_set_new(j->out, "files_residue", residue_json(&rep));
}

static void h_run(http_req *q, app *a, const auth_principal *p, void *ud) {
    int dry = 0;
    size_t len = 0;
    http_req_body(q, &len);
    if (len) {
        json_t *in = http_req_json(q);
        if (!in) return;
        json_t *d = json_object_get(in, "dry_run");
        if (!json_is_object(in) || (d && !json_is_boolean(d)) || json_object_size(in) > (d ? 1u : 0u)) {
            json_decref(in);
            http_reply_error(q, 422, "validation_failed", "expected {\"dry_run\": true|false}");
            return;
        }
        dry = json_is_true(d);
        json_decref(in);
    }
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->id2 = dry;
    j->write = !dry;
    j->audited = 1; /* retention.run */
    j->fn = run_tx;
    j->post = run_post;
    api_job_run(q, j);
}

/* ---- the scheduler ----
 * One timer on the loop serves two jobs, the work of both on the pool:
 * - every --audit-checkpoint: the provider webhooks that arrived since the
 *   last pass are covered by webhooks.checkpoint audit entries, one per
 *   tenant with new inbox rows (auth_inbox_checkpoint; a compare-and-set on
 *   the tenant's mark lets nodes sharing a store run it at once);
 * - every --retention-every: each tenant with a policy is claimed
 *   (privacy_retention_run with claim_before), so among nodes sharing a
 *   store only the first one to claim a tenant runs it in that period.
 * The timer ticks at the shorter of the two; a tick while a pass is still
 * running is skipped. */

/* On PostgreSQL, ids come from a sequence and transactions commit in any
 * order: a checkpoint covers only rows received this long ago, by when the
 * transactions holding lower ids have committed (one webhook's transaction
 * is a few statements, ~10 ms; this also absorbs clock skew between nodes).
 * SQLite has one writer, so rows commit in id order. */
#define CHECKPOINT_MARGIN_PG_MS 5000
/* 500 entries of AUTH_CHECKPOINT_ROWS: 500,000 rows a tenant a pass, far
 * more than a node ingests in one --audit-checkpoint period. */
#define CHECKPOINT_ENTRIES_PER_PASS 500

typedef struct pending_arg {
    int64_t ids[4096];
    int n;
} pending_arg;

static int pending_tx(store_tx *tx, void *arg, store_err *err) {
    pending_arg *p = arg;
    return auth_inbox_pending(tx, p->ids, 4096, &p->n, err);
}

typedef struct checkpoint_arg {
    int64_t margin, now, rows;
    int entries;
} checkpoint_arg;

static int checkpoint_tx(store_tx *tx, void *arg, store_err *err) {
    checkpoint_arg *c = arg;
    return auth_inbox_checkpoint(tx, c->margin, c->now, &c->entries, &c->rows, err);
}

/* One pass over the tenants with uncovered rows. The last pass, at
 * shutdown, goes through every tenant even though stopping is set, and
 * without the margin: its transactions hold each tenant's row lock, which
 * every webhook's transaction takes before it draws an inbox id (see
 * auth_inbox_checkpoint), and this node's webhooks are all stored by then. */
static void checkpoint_pass(privacy_ctx *c, int last, int *entries, int64_t *rows) {
    app *a = c->a;
    pending_arg *p = eh_calloc(1, sizeof *p);
    store_err err;
    *entries = 0;
    *rows = 0;
    if (!p) return;
    if (store_read(a->st, 0, pending_tx, p, &err)) {
        log_msg(a->log, LOG_WARN, "audit checkpoint: cannot list tenants", err.msg);
        metric_add(c->m_checkpoint_fail, NULL, 1);
        eh_free(p);
        return;
    }
    int64_t margin = store_get_kind(a->st) == STORE_POSTGRES && !last ? CHECKPOINT_MARGIN_PG_MS : 0;
    for (int i = 0; i < p->n && (last || !c->stopping); i++) {
        /* An entry a transaction, so webhooks' writes go between them; at
         * most CHECKPOINT_ENTRIES_PER_PASS a tenant, the rest next tick. */
        for (int k = 0; k < CHECKPOINT_ENTRIES_PER_PASS && (last || !c->stopping); k++) {
            checkpoint_arg ca = {.margin = margin, .now = clock_wall_ms()};
            if (store_write(a->st, p->ids[i], checkpoint_tx, &ca, &err)) {
                log_msg(a->log, LOG_WARN, "audit checkpoint failed", err.msg);
                metric_add(c->m_checkpoint_fail, NULL, 1);
                break;
            }
            if (!ca.entries) break;
            metric_add(c->m_checkpoints, NULL, ca.entries);
            metric_add(c->m_checkpoint_rows, NULL, (double)ca.rows);
            *entries += ca.entries;
            *rows += ca.rows;
        }
    }
    eh_free(p);
}

typedef struct tenants_arg {
    int64_t ids[4096];
    int n;
} tenants_arg;

static int tenants_tx(store_tx *tx, void *arg, store_err *err) {
    tenants_arg *t = arg;
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT tenant_id FROM retention_policies WHERE lead_inactive_days IS NOT NULL OR "
                         "inbox_days IS NOT NULL ORDER BY tenant_id LIMIT 4096",
                         NULL, 0, &r, err);
    t->n = 0;
    for (int i = 0; !rc && i < store_rows_count(r); i++) t->ids[t->n++] = store_rows_int(r, i, 0);
    store_rows_free(r);
    return rc;
}

typedef struct sched_arg {
    int64_t claim_before, now;
    int ran;
    json_t *report;
} sched_arg;

static int sched_tx(store_tx *tx, void *arg, store_err *err) {
    sched_arg *s = arg;
    json_decref(s->report);
    s->report = NULL;
    auth_actor who = {"scheduler", NULL};
    return privacy_retention_run(tx, &who, 0, s->claim_before, s->now, &s->ran, &s->report, err);
}

static void retention_pass(privacy_ctx *c) {
    app *a = c->a;
    tenants_arg *t = eh_calloc(1, sizeof *t);
    store_err err;
    if (!t) return;
    if (store_read(a->st, 0, tenants_tx, t, &err)) {
        log_msg(a->log, LOG_WARN, "retention: cannot list policies", err.msg);
        eh_free(t);
        return;
    }
    json_t *rows = json_object(); /* every tenant's, for one purge */
    for (int i = 0; i < t->n && !c->stopping; i++) {
        int64_t now = clock_wall_ms();
        /* a little under the period, so timers drifting apart still run it once */
        sched_arg s = {.claim_before = now - (int64_t)a->cfg.retention_every_ms * 9 / 10, .now = now};
        int rc = store_write(a->st, t->ids[i], sched_tx, &s, &err);
        if (rc) log_msg(a->log, LOG_WARN, "retention run failed", err.msg);
        else if (s.ran) {
            metric_add(c->m_runs, NULL, 1);
            json_int_t n = json_integer_value(json_object_get(json_object_get(s.report, "leads"), "count"));
            metric_add(c->m_erased, NULL, (double)n);
            const char *k;
            json_t *v;
            json_object_foreach(json_object_get(s.report, "rows"), k, v) {
                json_int_t prev = json_integer_value(json_object_get(rows, k));
                json_object_set_new(rows, k, json_integer(prev + json_integer_value(v)));
            }
        }
        json_decref(s.report);
    }
    /* one pass for the whole run, not one per person */
    store_purge_report rep;
    if (json_object_size(rows)) purge_after(a, rows, &rep);
    json_decref(rows);
    eh_free(t);
}

static void sched_work(uv_work_t *w) {
    privacy_ctx *c = w->data;
    int entries;
    int64_t rows;
    if (c->a->cfg.audit_checkpoint_ms) checkpoint_pass(c, 0, &entries, &rows);
    if (c->retention_now && !c->stopping) retention_pass(c);
}

static void ctx_release(privacy_ctx *c) { eh_free(c); }

typedef struct final_pass {
    privacy_ctx *c;
    uv_work_t work;
    int entries;
    int64_t rows;
} final_pass;

static void final_work(uv_work_t *w) {
    final_pass *f = w->data;
    checkpoint_pass(f->c, 1, &f->entries, &f->rows);
}

static void final_done(uv_work_t *w, int status) {
    final_pass *f = w->data;
    privacy_ctx *c = f->c;
    log_line l;
    if (log_begin(c->a->log, &l, LOG_INFO, "audit checkpoint at shutdown")) {
        log_int(&l, "entries", f->entries);
        log_int(&l, "rows", f->rows);
        log_end(&l);
    }
    eh_free(f);
    c->busy = 0;
    if (c->closed) ctx_release(c);
}

/* The loop stays alive while the work is queued, so the store (closed by
 * app_free after uv_run returns) is still open for it. */
static void queue_final(privacy_ctx *c) {
    c->final = 0;
    final_pass *f = eh_calloc(1, sizeof *f);
    if (!f) return;
    f->c = c;
    f->work.data = f;
    if (uv_queue_work(c->a->loop, &f->work, final_work, final_done) == 0) c->busy = 1;
    else eh_free(f);
}

static void sched_done(uv_work_t *w, int status) {
    privacy_ctx *c = w->data;
    c->busy = 0;
    if (c->final) queue_final(c); /* the pass that was running stopped early */
    if (!c->busy && c->stopping && c->closed) ctx_release(c);
}

static void on_tick(uv_timer_t *t) {
    privacy_ctx *c = t->data;
    if (c->busy || c->stopping) return;
    const ehub_config *cfg = &c->a->cfg;
    int64_t now = (int64_t)uv_now(c->a->loop);
    c->retention_now = cfg->retention_every_ms && now >= c->retention_due;
    if (c->retention_now) c->retention_due = now + cfg->retention_every_ms;
    if (!c->retention_now && !cfg->audit_checkpoint_ms) return;
    c->work.data = c;
    if (uv_queue_work(c->a->loop, &c->work, sched_work, sched_done) == 0) c->busy = 1;
}

void privacy_drain(app *a) {
    privacy_ctx *c = a->privacy;
    if (!c || c->stopping) return;
    c->final = a->cfg.audit_checkpoint_ms != 0;
    privacy_stop(a);
    if (c->final && !c->busy) queue_final(c);
}

static void on_closed(uv_handle_t *h) {
    privacy_ctx *c = h->data;
    c->closed = 1;
    if (!c->busy) ctx_release(c);
}

void privacy_stop(app *a) {
    privacy_ctx *c = a->privacy;
    if (!c || c->stopping) return;
    c->stopping = 1;
    a->privacy = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

/* ---- routes ---- */

#define DOC(name, sum, req, resp) static const http_route_doc name = {sum, "privacy", req, resp}
DOC(d_consents, "A contact's consent log (per channel: given/withdrawn, source, time, evidence) and current flags", NULL,
    "{lead_id, current:{sms,email,call,dnd}, items:[{id, channel, status, source, evidence, at}]}");
DOC(d_export, "Everything held on a contact (GDPR/CCPA access): lead, activities, opportunities, scores, coaching, nurture, consents, events, webhook bodies, audit",
    NULL, "{format, lead, activities, ..., exported_at}");
DOC(d_erase, "Erase a contact: personal data emptied everywhere, counts kept, audited; idempotent", NULL,
    "{lead_id, erased, already_erased, rows:{table: count}, files_clean}");
DOC(d_policy_get, "The tenant's retention policy", NULL, "{lead_inactive_days, inbox_days, last_run_at}");
DOC(d_policy_put, "Set the retention policy (null turns a rule off)", "{lead_inactive_days, inbox_days}",
    "the policy");
DOC(d_run, "Run the retention policy now, or report what it would do", "{dry_run}",
    "{dry_run, policy, leads:{count, ids}, inbox:{count}}");

int privacy_register(app *a) {
    int rc = 0;
    rc |= app_route(a, "GET", "/v1/contacts/{id}/consents", h_consents, NULL, ROLES_MANAGE, &d_consents);
    rc |= app_route(a, "GET", "/v1/contacts/{id}/export", h_export, NULL, ROLE_ADMIN, &d_export);
    rc |= app_route(a, "DELETE", "/v1/contacts/{id}", h_erase, NULL, ROLE_ADMIN, &d_erase);
    rc |= app_route(a, "GET", "/v1/privacy/retention", h_policy_get, NULL, ROLE_ADMIN, &d_policy_get);
    rc |= app_route(a, "PUT", "/v1/privacy/retention", h_policy_put, NULL, ROLE_ADMIN, &d_policy_put);
    rc |= app_route(a, "POST", "/v1/privacy/retention/run", h_run, NULL, ROLE_ADMIN, &d_run);
    if (rc) return -1;
    privacy_ctx *c = eh_calloc(1, sizeof *c);
    if (!c) return -1;
    c->a = a;
    c->m_erased = metrics_counter(a->m, "ehub_privacy_erased_total", "contacts erased (request or retention)", NULL);
    c->m_runs = metrics_counter(a->m, "ehub_retention_runs_total", "retention policy runs done by this node", NULL);
    c->m_checkpoints = metrics_counter(a->m, "ehub_audit_checkpoints_total",
                                       "webhooks.checkpoint audit entries written by this node", NULL);
    c->m_checkpoint_rows = metrics_counter(a->m, "ehub_audit_checkpoint_rows_total",
                                           "webhook inbox rows covered by this node's checkpoints", NULL);
    c->m_checkpoint_fail = metrics_counter(a->m, "ehub_audit_checkpoint_failures_total",
                                           "checkpoint passes or tenants that failed (logged; retried next tick)", NULL);
    a->privacy = c;
    uv_timer_init(a->loop, &c->timer);
    c->timer.data = c;
    unsigned ret = a->cfg.retention_every_ms, cp = a->cfg.audit_checkpoint_ms;
    unsigned tick = !ret ? cp : !cp ? ret : cp < ret ? cp : ret;
    c->retention_due = (int64_t)uv_now(a->loop) + ret;
    if (tick) uv_timer_start(&c->timer, on_tick, tick, tick);
    return 0;
}

/* ---- CLI ---- */

typedef struct cli_arg {
    const char *slug;
    int64_t tenant;
} cli_arg;

static int find_tx(store_tx *tx, void *arg, store_err *err) {
    cli_arg *c = arg;
    return store_tenant_find(tx, c->slug, &c->tenant, err);
}

typedef struct cli_run {
    int dry;
    json_t *report;
} cli_run;

static int cli_run_tx(store_tx *tx, void *arg, store_err *err) {
    cli_run *r = arg;
    int ran;
    json_decref(r->report);
    r->report = NULL;
    auth_actor who = {"cli", NULL};
    return privacy_retention_run(tx, &who, r->dry, 0, clock_wall_ms(), &ran, &r->report, err);
}

int privacy_cli_retention(const char *store_url, const char *tenant, int dry_run, size_t rewrite_max, char *errbuf,
                          size_t errlen, json_t **report) {
    store_err err;
    store *st = store_open(store_url, NULL, &err);
    if (!st) {
        snprintf(errbuf, errlen, "%s", err.msg);
        return 1;
    }
    cli_arg c = {tenant, 0};
    cli_run r = {dry_run, NULL};
    int rc = store_read(st, 0, find_tx, &c, &err);
    if (rc == STORE_NOTFOUND) snprintf(err.msg, sizeof err.msg, "no such tenant");
    if (!rc) rc = dry_run ? store_read(st, c.tenant, cli_run_tx, &r, &err) : store_write(st, c.tenant, cli_run_tx, &r, &err);
    if (!rc && !dry_run) {
        const char *tables[PRIVACY_TABLES_MAX];
        int n = privacy_changed_tables(json_object_get(r.report, "rows"), tables, PRIVACY_TABLES_MAX);
        store_purge_report rep;
        store_err pe;
        int prc = n ? store_purge(st, tables, n, rewrite_max, &rep, &pe) : STORE_OK;
        if (prc) fprintf(stderr, "ehub retention: purge after erasure failed: %s\n", pe.msg);
        json_object_set_new(r.report, "files_clean", json_boolean(prc == 0 && (!n || rep.clean)));
        if (n && rep.residue[0]) json_object_set_new(r.report, "files_residue", residue_json(&rep));
    }
    store_close(st);
    if (rc) {
        snprintf(errbuf, errlen, "%s", err.msg);
        json_decref(r.report);
        return 1;
    }
    *report = r.report;
    return 0;
}
