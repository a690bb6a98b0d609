/* The privacy domain inside transactions: consent log, export, erasure,
 * retention (see privacy.h). Every statement is scoped by the transaction's
 * tenant; on PostgreSQL row-level security holds the same line. */
#include "privacy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

#define EXPORT_MAX_ROWS 10000

static store_val T(store_tx *tx) { return SV_I(store_tx_tenant(tx)); }

/* A callback's error reaches store_write's caller only with err filled. */
static int notfound(store_err *err) {
    err->code = STORE_NOTFOUND;
    snprintf(err->msg, sizeof err->msg, "no such contact");
    return STORE_NOTFOUND;
}

/* ---- consent ---- */

static const char *const consent_cols[4] = {"sms", "email", "call", "all"};

int privacy_consent_record(store_tx *tx, int64_t lead, const char *channel, int given, const char *source,
                           const char *evidence, int64_t now_ms, store_err *err) {
    store_val p[] = {T(tx), SV_I(lead), SV_S(channel), SV_S(given ? "given" : "withdrawn"),
                     SV_S(source ? source : "api"), SV_S(evidence), SV_I(now_ms)};
    return store_query(tx,
                       "INSERT INTO consent_log (tenant_id, lead_id, channel, status, source, evidence, created_at) "
                       "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                       p, 7, NULL, err);
}

int privacy_consent_flags(store_tx *tx, int64_t lead, int flags[4], store_err *err) {
    store_val p[] = {T(tx), SV_I(lead)};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT consent_sms, consent_email, consent_call, dnd FROM leads WHERE tenant_id = $1 AND id = $2",
                         p, 2, &r, err);
    if (rc) return rc;
    if (store_rows_count(r) == 0) rc = notfound(err);
    else
        for (int i = 0; i < 4; i++) flags[i] = store_rows_int(r, 0, i) != 0;
    store_rows_free(r);
    return rc;
}

int privacy_consent_diff(store_tx *tx, int64_t lead, const int *before, const char *source, const char *evidence,
                         int64_t now_ms, store_err *err) {
    int now[4];
    int rc = privacy_consent_flags(tx, lead, now, err);
    return rc ? rc : privacy_consent_diff_known(tx, lead, before, now, source, evidence, now_ms, err);
}

int privacy_consent_diff_known(store_tx *tx, int64_t lead, const int *before, const int now[4], const char *source,
                               const char *evidence, int64_t now_ms, store_err *err) {
    /* The changes go in one INSERT (rows in channel order, as the ids
     * were given one by one before): this runs with every lead write. */
    char sql[512] = "INSERT INTO consent_log (tenant_id, lead_id, channel, status, source, evidence, created_at) VALUES ";
    size_t len = strlen(sql);
    store_val p[5 + 2 * 4] = {T(tx), SV_I(lead), SV_S(source ? source : "api"), SV_S(evidence), SV_I(now_ms)};
    int np = 5, rows = 0;
    for (int i = 0; i < 4; i++) {
        /* a new lead: what it came with (consent given, DND on) is recorded;
         * the defaults (no consent, no DND) are not news */
        if (before ? before[i] == now[i] : !now[i]) continue;
        int given = i < 3 ? now[i] : !now[i]; /* DND on = consent withdrawn on every channel */
        p[np++] = SV_S(consent_cols[i]);
        p[np++] = SV_S(given ? "given" : "withdrawn");
        len += (size_t)snprintf(sql + len, sizeof sql - len, "%s($1, $2, $%d, $%d, $3, $4, $5)", rows ? ", " : "",
                                np - 1, np);
        rows++;
    }
    return rows ? store_query(tx, sql, p, np, NULL, err) : STORE_OK;
}

/* Column values as typed JSON: ids, times and counters as numbers, JSON
 * text columns parsed, everything else as strings. */
static int numeric_col(const char *n) {
    if (!strncmp(n, "ghl_", 4) || !strncmp(n, "provider_", 9) || !strcmp(n, "webhook_id") || !strcmp(n, "idem_key"))
        return 0;
    size_t l = strlen(n);
    static const char *const exact[] = {"id", "seq", "score", "version", "step", "attempts", "consent_sms",
                                        "consent_email", "consent_call", "dnd", "budget_min", "budget_max",
                                        "beds", "baths", "preapproved", "monetary_value", "model_version", NULL};
    for (int i = 0; exact[i]; i++)
        if (!strcmp(n, exact[i])) return 1;
    return (l > 3 && !strcmp(n + l - 3, "_id")) || (l > 3 && !strcmp(n + l - 3, "_at"));
}
static int json_col(const char *n) {
    return !strcmp(n, "payload") || !strcmp(n, "detail") || !strcmp(n, "reasons") || !strcmp(n, "tags") ||
           !strcmp(n, "areas") || !strcmp(n, "steps");
}

static json_t *row_json(const store_rows *r, int row) {
    json_t *o = json_object();
    for (int c = 0; o && c < store_rows_cols(r); c++) {
        const char *n = store_rows_name(r, c);
        const char *t = store_rows_text(r, row, c);
        json_t *v = NULL;
        if (!t) v = json_null();
        else if (numeric_col(n)) {
            char *end;
            long long i = strtoll(t, &end, 10);
            v = *end ? json_real(strtod(t, NULL)) : json_integer(i);
        } else if (json_col(n)) {
            v = json_loads(t, JSON_DECODE_ANY, NULL);
        }
        if (!v) v = json_string(t);
        if (!v) v = json_stringn(t, store_rows_len(r, row, c)); /* not UTF-8: keep what can be kept */
        json_object_set_new(o, n, v ? v : json_null());
    }
    return o;
}

static int query_json(store_tx *tx, const char *sql, const store_val *p, int n, json_t **out, store_err *err) {
    store_rows *r = NULL;
    int rc = store_query(tx, sql, p, n, &r, err);
    if (rc) return rc;
    *out = json_array();
    for (int i = 0; i < store_rows_count(r); i++) json_array_append_new(*out, row_json(r, i));
    store_rows_free(r);
    return STORE_OK;
}

int privacy_consent_live(store_tx *tx, int64_t lead, store_err *err) {
    store_val p[] = {T(tx), SV_I(lead)};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT 1 FROM leads WHERE tenant_id = $1 AND id = $2 AND erased_at IS NULL", p, 2, &r, err);
    if (!rc && store_rows_count(r) == 0) rc = notfound(err);
    store_rows_free(r);
    return rc;
}

int privacy_consent_list(store_tx *tx, int64_t lead, json_t **items, store_err *err) {
    store_val p[] = {T(tx), SV_I(lead)};
    return query_json(tx,
                      "SELECT id, channel, status, source, evidence, created_at AS at FROM consent_log "
                      "WHERE tenant_id = $1 AND lead_id = $2 ORDER BY id LIMIT 10000",
                      p, 2, items, err);
}

/* ---- finding the person ----
 * Besides rows keyed by lead_id, a person's data sits in stored webhook
 * bodies and event payloads; they are found by the lead's id in an event's
 * lead fields and by the person's identifiers as text. */
typedef struct needles {
    char s[8][340];
    int n;
} needles;

static void needle_add(needles *nd, const char *s) {
    /* short strings would match unrelated text (and erase it) */
    if (!s || strlen(s) < 6 || strlen(s) >= sizeof nd->s[0] || nd->n == 8) return;
    for (int i = 0; i < nd->n; i++)
        if (!strcmp(nd->s[i], s)) return;
    snprintf(nd->s[nd->n++], sizeof nd->s[0], "%s", s);
}

static int person_needles(store_tx *tx, int64_t lead, needles *nd, int *erased, store_err *err) {
    memset(nd, 0, sizeof *nd);
    store_val p[] = {T(tx), SV_I(lead)};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT email, phone, ghl_contact_id, erased_at FROM leads WHERE tenant_id = $1 AND id = $2",
                         p, 2, &r, err);
    if (rc) return rc;
    if (store_rows_count(r) == 0) {
        store_rows_free(r);
        return notfound(err);
    }
    const char *email = store_rows_text(r, 0, 0), *phone = store_rows_text(r, 0, 1);
    *erased = !store_rows_isnull(r, 0, 3);
    needle_add(nd, email);
    if (email && strchr(email, '@')) { /* form-encoded, as in a provider's callback */
        char enc[340];
        size_t at = (size_t)(strchr(email, '@') - email);
        snprintf(enc, sizeof enc, "%.*s%%40%s", (int)at, email, email + at + 1);
        needle_add(nd, enc);
    }
    if (phone) {
        needle_add(nd, phone);
        const char *digits = phone[0] == '+' ? phone + 1 : phone;
        needle_add(nd, digits);
        char enc[64];
        snprintf(enc, sizeof enc, "%%2B%s", digits);
        needle_add(nd, enc);
        size_t dl = strlen(digits);
        if (dl > 10) needle_add(nd, digits + dl - 10); /* the national number without the country code */
    }
    needle_add(nd, store_rows_text(r, 0, 2));
    store_rows_free(r);
    return STORE_OK;
}

/* Events about the lead: its id in lead_id, lead.id, or the id of a lead.*
 * event (whose payload is the lead itself). */
static const char *events_about(store_tx *tx) {
    return store_tx_kind(tx) == STORE_POSTGRES
               ? "(payload->>'lead_id' = $2 OR payload #>> '{lead,id}' = $2 OR "
                 "(type LIKE 'lead.%' AND payload->>'id' = $2))"
               : "(json_extract(payload, '$.lead_id') = CAST($2 AS INTEGER) OR "
                 "json_extract(payload, '$.lead.id') = CAST($2 AS INTEGER) OR "
                 "(type LIKE 'lead.%' AND json_extract(payload, '$.id') = CAST($2 AS INTEGER)))";
}
static const char *text_has(store_tx *tx, const char *col) {
    /* instr / strpos: an exact substring, unlike LIKE with its wildcards */
    if (store_tx_kind(tx) == STORE_POSTGRES) return !strcmp(col, "payload") ? "strpos(payload::text, $2) > 0" : "strpos(body, $2) > 0";
    return !strcmp(col, "payload") ? "instr(payload, $2) > 0" : "instr(body, $2) > 0";
}

/* ---- export ---- */

int privacy_export(store_tx *tx, int64_t lead, json_t **out, store_err *err) {
    needles nd;
    int erased = 0, rc = person_needles(tx, lead, &nd, &erased, err);
    if (rc) return rc;
    if (erased) return notfound(err);
    char idtxt[24];
    snprintf(idtxt, sizeof idtxt, "%lld", (long long)lead);
    store_val p[] = {T(tx), SV_I(lead)};
    json_t *o = json_object(), *v = NULL;
    *out = o;
    static const struct { const char *key, *sql; } parts[] = {
        {"lead", "SELECT * FROM leads WHERE tenant_id = $1 AND id = $2"},
        {"activities", "SELECT * FROM activities WHERE tenant_id = $1 AND lead_id = $2 ORDER BY id LIMIT 10000"},
        {"opportunities", "SELECT * FROM opportunities WHERE tenant_id = $1 AND lead_id = $2 ORDER BY id LIMIT 10000"},
        {"scores", "SELECT id, score, kind, model_version, reasons, created_at FROM lead_scores "
                   "WHERE tenant_id = $1 AND lead_id = $2 ORDER BY id LIMIT 10000"},
        {"coaching_suggestions", "SELECT * FROM coaching_suggestions WHERE tenant_id = $1 AND lead_id = $2 ORDER BY id LIMIT 10000"},
        {"nurture_enrollments", "SELECT * FROM nurture_enrollments WHERE tenant_id = $1 AND lead_id = $2 ORDER BY id LIMIT 10000"},
        {"nurture_jobs", "SELECT j.id, j.enrollment_id, j.step, j.due_at, j.state, j.attempts, j.result, j.created_at, "
                         "j.updated_at FROM nurture_jobs j JOIN nurture_enrollments e ON e.id = j.enrollment_id "
                         "AND e.tenant_id = j.tenant_id WHERE j.tenant_id = $1 AND e.lead_id = $2 ORDER BY j.id LIMIT 10000"},
        {"consents", "SELECT id, channel, status, source, evidence, created_at FROM consent_log "
                     "WHERE tenant_id = $1 AND lead_id = $2 ORDER BY id LIMIT 10000"},
        {"enrichment", "SELECT id, state, attempts, result, created_at, updated_at FROM lead_enrichments "
                       "WHERE tenant_id = $1 AND lead_id = $2"},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if ((rc = query_json(tx, parts[i].sql, p, 2, &v, err))) return rc;
        if (i == 0) {
            json_object_set(o, "lead", json_array_get(v, 0));
            json_decref(v);
        } else {
            json_object_set_new(o, parts[i].key, v);
        }
    }
    /* events about the lead or naming the person */
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT seq, type, payload, created_at FROM events WHERE tenant_id = $1 AND %s ORDER BY seq LIMIT 10000",
             events_about(tx));
    store_val pe[] = {T(tx), SV_S(idtxt)};
    if ((rc = query_json(tx, sql, pe, 2, &v, err))) return rc;
    json_t *seen = json_object(), *events = v, *inbox = json_array(), *e;
    size_t k;
    json_array_foreach(events, k, e) {
        char s[24];
        snprintf(s, sizeof s, "%lld", (long long)json_integer_value(json_object_get(e, "seq")));
        json_object_set_new(seen, s, json_true());
    }
    for (int n = 0; n < nd.n; n++) {
        store_val pn[] = {T(tx), SV_S(nd.s[n])};
        snprintf(sql, sizeof sql, "SELECT seq, type, payload, created_at FROM events WHERE tenant_id = $1 AND %s "
                                  "ORDER BY seq LIMIT 10000", text_has(tx, "payload"));
        if ((rc = query_json(tx, sql, pn, 2, &v, err))) break;
        json_array_foreach(v, k, e) {
            char s[24];
            snprintf(s, sizeof s, "%lld", (long long)json_integer_value(json_object_get(e, "seq")));
            if (json_object_get(seen, s)) continue;
            json_object_set_new(seen, s, json_true());
            json_array_append(events, e);
        }
        json_decref(v);
        snprintf(sql, sizeof sql, "SELECT provider, webhook_id, type, body, received_at FROM webhook_inbox "
                                  "WHERE tenant_id = $1 AND %s ORDER BY received_at LIMIT 10000", text_has(tx, "body"));
        if ((rc = query_json(tx, sql, pn, 2, &v, err))) break;
        json_array_foreach(v, k, e) {
            char key[400];
            snprintf(key, sizeof key, "w:%s:%s", json_string_value(json_object_get(e, "provider")),
                     json_string_value(json_object_get(e, "webhook_id")));
            if (json_object_get(seen, key)) continue;
            json_object_set_new(seen, key, json_true());
            /* a provider's JSON body is shown as JSON, a form body as text */
            json_t *body = json_loads(json_string_value(json_object_get(e, "body")) ?: "", 0, NULL);
            if (body) json_object_set_new(e, "body", body);
            json_array_append(inbox, e);
        }
        json_decref(v);
    }
    json_decref(seen);
    json_object_set_new(o, "events", events);
    json_object_set_new(o, "webhook_inbox", inbox);
    if (rc) return rc;
    char target[40];
    snprintf(target, sizeof target, "lead:%lld", (long long)lead);
    store_val pa[] = {T(tx), SV_S(target)};
    if ((rc = query_json(tx,
                         "SELECT seq, created_at, actor, action, target, detail FROM audit_log "
                         "WHERE tenant_id = $1 AND target = $2 ORDER BY seq LIMIT 10000",
                         pa, 2, &v, err)))
        return rc;
    json_object_set_new(o, "audit", v);
    json_object_set_new(o, "format", json_string("ehub.contact_export.v1"));
    return STORE_OK;
}

/* ---- erasure ---- */

static int exec_count(store_tx *tx, const char *sql, const store_val *p, int n, json_t *summary, const char *key,
                      store_err *err) {
    int rc = store_query(tx, sql, p, n, NULL, err);
    if (!rc && summary) {
        json_int_t prev = json_integer_value(json_object_get(summary, key));
        json_object_set_new(summary, key, json_integer(prev + (json_int_t)store_tx_changes(tx)));
    }
    return rc;
}

int privacy_erase(store_tx *tx, int64_t lead, const auth_actor *actor, const char *reason, int64_t now_ms,
                  int *already, json_t **summary_out, store_err *err) {
    needles nd;
    int erased = 0, rc = person_needles(tx, lead, &nd, &erased, err);
    if (summary_out) *summary_out = NULL;
    *already = erased;
    if (rc || erased) return rc;
    json_t *sum = json_object();
    store_val p[] = {T(tx), SV_I(lead), SV_I(now_ms)};
    /* The row stays (counts by stage, status, source, agent; its score),
     * every column that describes the person is emptied. */
    rc = exec_count(tx,
                    "UPDATE leads SET first_name = NULL, last_name = NULL, email = NULL, phone = NULL, "
                    "ghl_contact_id = NULL, ghl_location_id = NULL, tags = '[]', timezone = NULL, language = NULL, "
                    "consent_sms = 0, consent_email = 0, consent_call = 0, dnd = 1, budget_min = NULL, "
                    "budget_max = NULL, beds = NULL, baths = NULL, property_type = NULL, areas = '[]', "
                    "timeline = NULL, preapproved = NULL, company = NULL, job_title = NULL, linkedin_url = NULL, "
                    "version = version + 1, updated_at = $3, "
                    "deleted_at = COALESCE(deleted_at, $3), erased_at = $3 WHERE tenant_id = $1 AND id = $2",
                    p, 3, sum, "leads", err);
    if (!rc)
        rc = exec_count(tx,
                        "UPDATE activities SET body = NULL, provider_message_id = NULL, ghl_id = NULL "
                        "WHERE tenant_id = $1 AND lead_id = $2",
                        p, 2, sum, "activities", err);
    if (!rc)
        rc = exec_count(tx,
                        "UPDATE opportunities SET name = NULL, ghl_opportunity_id = NULL, updated_at = $3 "
                        "WHERE tenant_id = $1 AND lead_id = $2",
                        p, 3, sum, "opportunities", err);
    /* the score stays; its reasons quote the person's preferences */
    if (!rc)
        rc = exec_count(tx, "UPDATE lead_scores SET reasons = '[]' WHERE tenant_id = $1 AND lead_id = $2", p, 2, sum,
                        "scores", err);
    /* one-off messages: the e-mail's subject (the body is the activity's,
     * emptied above); one still queued is not sent */
    if (!rc)
        rc = exec_count(tx, "UPDATE nurture_messages SET subject = NULL WHERE tenant_id = $1 AND lead_id = $2", p, 2,
                        sum, "messages", err);
    if (!rc)
        rc = exec_count(tx,
                        "UPDATE nurture_jobs SET result = NULL, state = CASE WHEN state IN ('queued', 'sending') "
                        "THEN 'skipped' ELSE state END, updated_at = $3 WHERE tenant_id = $1 AND message_id IN "
                        "(SELECT id FROM nurture_messages WHERE tenant_id = $1 AND lead_id = $2)",
                        p, 3, sum, "nurture_jobs", err);
    /* nothing more is sent; provider answers may quote the address */
    if (!rc)
        rc = exec_count(tx,
                        "UPDATE nurture_jobs SET result = NULL, state = CASE WHEN state IN ('queued', 'sending') "
                        "THEN 'skipped' ELSE state END, updated_at = $3 WHERE tenant_id = $1 AND enrollment_id IN "
                        "(SELECT id FROM nurture_enrollments WHERE tenant_id = $1 AND lead_id = $2)",
                        p, 3, sum, "nurture_jobs", err);
    if (!rc)
        rc = exec_count(tx,
                        "UPDATE nurture_enrollments SET state = CASE WHEN state = 'active' THEN 'exited' ELSE state END, "
                        "exit_reason = CASE WHEN state = 'active' THEN 'erased' ELSE exit_reason END, updated_at = $3 "
                        "WHERE tenant_id = $1 AND lead_id = $2",
                        p, 3, sum, "nurture_enrollments", err);
    if (!rc)
        rc = exec_count(tx, "UPDATE consent_log SET evidence = NULL WHERE tenant_id = $1 AND lead_id = $2", p, 2, sum,
                        "consents", err);
    /* Apollo's answer (company, title, LinkedIn) is about the person; a
     * match still waiting is not asked for any more */
    if (!rc)
        rc = exec_count(tx,
                        "UPDATE lead_enrichments SET result = NULL, state = CASE WHEN state IN ('queued', 'sending') "
                        "THEN 'failed' ELSE state END, updated_at = $3 WHERE tenant_id = $1 AND lead_id = $2",
                        p, 3, sum, "enrichment", err);
    /* events: the payload is replaced, the seq and type stay (the log keeps
     * its order and counts, consumers see that something happened) */
    char idtxt[24], repl[96], sql[512];
    snprintf(idtxt, sizeof idtxt, "%lld", (long long)lead);
    snprintf(repl, sizeof repl, "{\"erased\":true,\"lead_id\":%lld}", (long long)lead);
    store_val pe[] = {T(tx), SV_S(idtxt), SV_S(repl)};
    snprintf(sql, sizeof sql, "UPDATE events SET payload = $3 WHERE tenant_id = $1 AND %s", events_about(tx));
    if (!rc) rc = exec_count(tx, sql, pe, 3, sum, "events", err);
    /* the ids of the inbox rows emptied go into the audit entry: the
     * webhook checkpoints covering them hold each body's hash, and the
     * verifier accepts an emptied body only where an entry says why */
    json_t *inbox_ids = json_array(), *seen_ids = json_object();
    for (int n = 0; !rc && n < nd.n; n++) {
        store_val pn[] = {T(tx), SV_S(nd.s[n]), SV_S(repl)};
        snprintf(sql, sizeof sql, "UPDATE events SET payload = $3 WHERE tenant_id = $1 AND %s", text_has(tx, "payload"));
        rc = exec_count(tx, sql, pn, 3, sum, "events", err);
        /* the inbox row stays (its id de-duplicates a provider's retry) */
        snprintf(sql, sizeof sql, "UPDATE webhook_inbox SET body = '{}' WHERE tenant_id = $1 AND %s RETURNING id",
                 text_has(tx, "body"));
        store_rows *r = NULL;
        if (!rc) rc = store_query(tx, sql, pn, 2, &r, err);
        int nr = rc ? 0 : store_rows_count(r);
        if (!rc) {
            json_int_t prev = json_integer_value(json_object_get(sum, "webhook_inbox"));
            json_object_set_new(sum, "webhook_inbox", json_integer(prev + nr));
        }
        for (int i = 0; i < nr; i++) {
            char key[24];
            snprintf(key, sizeof key, "%lld", (long long)store_rows_int(r, i, 0));
            if (json_object_get(seen_ids, key)) continue;
            json_object_set_new(seen_ids, key, json_true());
            json_array_append_new(inbox_ids, json_integer((json_int_t)store_rows_int(r, i, 0)));
        }
        store_rows_free(r);
    }
    json_decref(seen_ids);
    if (!rc) {
        char target[40];
        snprintf(target, sizeof target, "lead:%lld", (long long)lead);
        json_t *d = json_pack("{s:O, s:s, s:O}", "erased", sum, "reason", reason ? reason : "request", "inbox_ids",
                              inbox_ids);
        rc = auth_audit(tx, store_tx_tenant(tx), actor, "contact.erase", target, d, now_ms, err);
        json_decref(d);
    }
    json_decref(inbox_ids);
    if (rc || !summary_out) json_decref(sum);
    else *summary_out = sum;
    return rc;
}

/* ---- after an erasure ---- */

/* Adds the counts of b into a ({table: n}). */
static void rows_add(json_t *a, json_t *b) {
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v) {
        json_int_t prev = json_integer_value(json_object_get(a, k));
        json_object_set_new(a, k, json_integer(prev + json_integer_value(v)));
    }
}

/* The keys of an erasure's "rows" are the API's names; these are the
 * tables behind them. */
static const struct { const char *key, *table; } row_tables[] = {
    {"leads", "leads"},
    {"activities", "activities"},
    {"opportunities", "opportunities"},
    {"scores", "lead_scores"},
    {"messages", "nurture_messages"},
    {"nurture_jobs", "nurture_jobs"},
    {"nurture_enrollments", "nurture_enrollments"},
    {"consents", "consent_log"},
    {"enrichment", "lead_enrichments"},
    {"events", "events"},
    {"webhook_inbox", "webhook_inbox"},
};

int privacy_changed_tables(const json_t *rows, const char **tables, int max) {
    int n = 0;
    for (size_t i = 0; i < sizeof row_tables / sizeof row_tables[0] && n < max; i++)
        if (json_integer_value(json_object_get(rows, row_tables[i].key)) > 0) tables[n++] = row_tables[i].table;
    return n;
}

/* ---- retention ---- */

int privacy_policy_get(store_tx *tx, privacy_policy *pol, store_err *err) {
    memset(pol, 0, sizeof *pol);
    store_val p[] = {T(tx)};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT lead_inactive_days, inbox_days, last_run_at FROM retention_policies WHERE tenant_id = $1",
                         p, 1, &r, err);
    if (!rc && store_rows_count(r)) {
        pol->lead_inactive_days = (int)store_rows_int(r, 0, 0);
        pol->inbox_days = (int)store_rows_int(r, 0, 1);
        pol->last_run_at = store_rows_int(r, 0, 2);
    }
    store_rows_free(r);
    return rc;
}

#define DAY_MS 86400000LL
#define RETENTION_BATCH 1000

int privacy_retention_run(store_tx *tx, const auth_actor *actor, int dry_run, int64_t claim_before, int64_t now_ms,
                          int *ran, json_t **report, store_err *err) {
    *ran = 0;
    *report = NULL;
    int rc;
    if (claim_before > 0) {
        /* One node wins: the UPDATE row-locks the policy; a second node's
         * UPDATE waits, then sees the new last_run_at and changes nothing. */
        store_val p[] = {T(tx), SV_I(now_ms), SV_I(claim_before)};
        if ((rc = store_query(tx,
                              "UPDATE retention_policies SET last_run_at = $2 WHERE tenant_id = $1 AND "
                              "(lead_inactive_days IS NOT NULL OR inbox_days IS NOT NULL) AND "
                              "(last_run_at IS NULL OR last_run_at < $3)",
                              p, 3, NULL, err)))
            return rc;
        if (store_tx_changes(tx) == 0) return STORE_OK;
    }
    privacy_policy pol;
    if ((rc = privacy_policy_get(tx, &pol, err))) return rc;
    *ran = 1;
    json_t *rep = json_pack("{s:b, s:{s:o?, s:o?}}", "dry_run", dry_run, "policy", "lead_inactive_days",
                            pol.lead_inactive_days ? json_integer(pol.lead_inactive_days) : NULL, "inbox_days",
                            pol.inbox_days ? json_integer(pol.inbox_days) : NULL);
    json_t *ids = json_array(), *rows = json_object();
    int64_t nleads = 0, ninbox = 0;
    if (pol.lead_inactive_days) {
        /* inactive: no change to the lead and no activity since the cutoff */
        int64_t cutoff = now_ms - (int64_t)pol.lead_inactive_days * DAY_MS;
        store_val p[] = {T(tx), SV_I(cutoff)};
        store_rows *r = NULL;
        rc = store_query(tx,
                         "SELECT id FROM leads l WHERE tenant_id = $1 AND erased_at IS NULL AND updated_at < $2 AND "
                         "NOT EXISTS (SELECT 1 FROM activities a WHERE a.tenant_id = $1 AND a.lead_id = l.id AND "
                         "a.created_at >= $2) ORDER BY id LIMIT 1000",
                         p, 2, &r, err);
        for (int i = 0; !rc && i < store_rows_count(r); i++) {
            int64_t id = store_rows_int(r, i, 0);
            json_array_append_new(ids, json_integer(id));
            nleads++;
            if (!dry_run) {
                int already;
                json_t *sum = NULL;
                rc = privacy_erase(tx, id, actor, "retention", now_ms, &already, &sum, err);
                rows_add(rows, sum);
                json_decref(sum);
            }
        }
        store_rows_free(r);
    }
    int64_t inbox_cutoff = 0;
    if (!rc && pol.inbox_days) {
        int64_t cutoff = now_ms - (int64_t)pol.inbox_days * DAY_MS;
        inbox_cutoff = cutoff;
        store_val p[] = {T(tx), SV_I(cutoff)};
        if (!dry_run) {
            rc = store_query(tx, "UPDATE webhook_inbox SET body = '{}' WHERE tenant_id = $1 AND received_at < $2 AND body <> '{}'",
                             p, 2, NULL, err);
            if (!rc) ninbox = store_tx_changes(tx);
        } else {
            store_rows *r = NULL;
            rc = store_query(tx, "SELECT count(*) FROM webhook_inbox WHERE tenant_id = $1 AND received_at < $2 AND body <> '{}'",
                             p, 2, &r, err);
            if (!rc) ninbox = store_rows_int(r, 0, 0);
            store_rows_free(r);
        }
    }
    json_object_set_new(rep, "leads", json_pack("{s:I, s:o}", "count", (json_int_t)nleads, "ids", ids));
    json_object_set_new(rep, "inbox", json_pack("{s:I}", "count", (json_int_t)ninbox));
    if (ninbox && !dry_run) { /* the emptied bodies' old versions, as an erasure's */
        json_int_t prev = json_integer_value(json_object_get(rows, "webhook_inbox"));
        json_object_set_new(rows, "webhook_inbox", json_integer(prev + (json_int_t)ninbox));
    }
    json_object_set_new(rep, "rows", rows);
    if (!rc && !dry_run) {
        json_t *d = json_pack("{s:I, s:I, s:O}", "leads_erased", (json_int_t)nleads, "inbox_emptied",
                              (json_int_t)ninbox, "policy", json_object_get(rep, "policy"));
        /* every inbox body received before this was emptied: the webhook
         * checkpoints' verifier accepts those (src/auth/audit.c) */
        if (inbox_cutoff) json_object_set_new(d, "inbox_before", json_integer((json_int_t)inbox_cutoff));
        rc = auth_audit(tx, store_tx_tenant(tx), actor, "retention.run", NULL, d, now_ms, err);
        json_decref(d);
    }
    if (rc) json_decref(rep);
    else *report = rep;
    return rc;
}
