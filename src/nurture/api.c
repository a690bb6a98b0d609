/* Nurture over HTTP: templates and sequences (the generic resource
 * handlers), preview, enrolments, the tenant's provider settings, and the
 * Twilio and SendGrid webhooks (delivery receipts, replies, STOP). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/app.h"
#include "auth/sig.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "leads/leads.h"
#include "leads/normalize.h"
#include "nurture.h"
#include "nurture_int.h"
#include "privacy/privacy.h"

static const leads_crud crud_template = {&entity_template, "/v1/templates"};
static const leads_crud crud_sequence = {&entity_sequence, "/v1/sequences"};

static int64_t path_id(http_req *q, const char *name) {
    int64_t id = api_parse_id(http_req_param(q, name));
    if (id < 0) http_reply_error(q, 400, "invalid_id", "ids are positive integers");
    return id;
}

/* ---- preview ---- */

static int preview_tx(store_tx *tx, api_job *j, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(j->id)};
    store_rows *t = NULL;
    int rc = store_query(tx, "SELECT channel, subject, body FROM nurture_templates WHERE tenant_id = $1 AND id = $2 "
                             "AND deleted_at IS NULL", p, 2, &t, err);
    if (rc) return rc;
    if (!store_rows_count(t)) {
        store_rows_free(t);
        return api_job_fail(j, 404, "not_found", "no such template");
    }
    json_t *vars = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:{s:s, s:s}, s:{s:s}}", "first_name", "Alex",
                             "last_name", "Sample", "email", "alex@example.com", "phone", "+14155550100", "agent",
                             "name", "Your Agent", "phone", "+14155550199", "email", "agent@example.com", "listing",
                             "address", "123 Sample St", "price", "450000", "tenant", "name", "");
    /* The tenant's name is never a sample: sends use tenants.name (send.c),
     * so the preview must show the same text. */
    store_val tp[] = {SV_I(store_tx_tenant(tx))};
    store_rows *tr = NULL;
    rc = store_query(tx, "SELECT name FROM tenants WHERE id = $1", tp, 1, &tr, err);
    if (rc) {
        store_rows_free(t);
        json_decref(vars);
        return rc;
    }
    if (store_rows_count(tr) && store_rows_text(tr, 0, 0))
        json_object_set_new(json_object_get(vars, "tenant"), "name", json_string(store_rows_text(tr, 0, 0)));
    store_rows_free(tr);
    if (j->id2) { /* a real lead's values */
        store_val lp[] = {SV_I(store_tx_tenant(tx)), SV_I(j->id2)};
        store_rows *l = NULL;
        rc = store_query(tx,
                         "SELECT l.first_name, l.last_name, l.email, l.phone, g.name, g.phone, g.email FROM leads l "
                         "LEFT JOIN agents g ON g.id = l.agent_id AND g.tenant_id = l.tenant_id "
                         "WHERE l.tenant_id = $1 AND l.id = $2 AND l.deleted_at IS NULL",
                         lp, 2, &l, err);
        if (!rc && !store_rows_count(l)) {
            store_rows_free(l);
            store_rows_free(t);
            json_decref(vars);
            return api_job_fail(j, 404, "not_found", "no such lead");
        }
        static const char *const names[] = {"first_name", "last_name", "email", "phone"};
        for (int i = 0; !rc && i < 4; i++)
            json_object_set_new(vars, names[i], json_string(store_rows_text(l, 0, i) ? store_rows_text(l, 0, i) : ""));
        json_t *ag = json_object_get(vars, "agent");
        static const char *const an[] = {"name", "phone", "email"};
        for (int i = 0; !rc && i < 3; i++)
            json_object_set_new(ag, an[i], json_string(store_rows_text(l, 0, 4 + i) ? store_rows_text(l, 0, 4 + i) : ""));
        store_rows_free(l);
        if (rc) {
            store_rows_free(t);
            json_decref(vars);
            return rc;
        }
    }
    int email = !strcmp(store_rows_text(t, 0, 0), "email");
    buf body, subj;
    buf_init(&body, NURTURE_MAX_BODY + 1);
    buf_init(&subj, 1024);
    char e[256];
    int bad = nurture_render(store_rows_text(t, 0, 2), vars, email, &body, e, sizeof e) ||
              (email && nurture_render(store_rows_text(t, 0, 1), vars, 0, &subj, e, sizeof e));
    if (bad) {
        rc = api_job_fail(j, 422, "cannot_render", e);
    } else {
        j->out = json_pack("{s:s, s:s, s:s?}", "channel", store_rows_text(t, 0, 0), "body", body.p ? body.p : "",
                           "subject", email ? (subj.p ? subj.p : "") : NULL);
        if (!email) {
            nurture_sms_info si;
            nurture_sms_segments(body.p, &si);
            json_object_set_new(j->out, "sms", json_pack("{s:s, s:i, s:i}", "encoding", si.gsm7 ? "GSM-7" : "UCS-2",
                                                         "units", si.units, "segments", si.segments));
        }
    }
    buf_free(&body);
    buf_free(&subj);
    json_decref(vars);
    store_rows_free(t);
    return rc;
}

static void h_preview(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = path_id(q, "id");
    if (id < 0) return;
    int64_t lead = 0;
    size_t len = 0;
    http_req_body(q, &len);
    if (len) {
        json_t *in = http_req_json(q);
        if (!in) return;
        json_t *l = json_object_get(in, "lead_id");
        lead = json_is_integer(l) && json_integer_value(l) > 0 ? json_integer_value(l) : (l ? -1 : 0);
        json_decref(in);
        if (lead < 0) {
            http_reply_error(q, 422, "validation_failed", "lead_id: a positive integer");
            return;
        }
    }
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->id = id;
    j->id2 = lead;
    j->fn = preview_tx;
    api_job_run(q, j);
}

/* ---- enrolments ---- */

static int enroll_tx(store_tx *tx, api_job *j, store_err *err) {
    int64_t enr;
    int rc = nurture_enroll(tx, j->id, j->id2, clock_wall_ms(), &enr, err);
    if (rc == STORE_CONFLICT) return api_job_fail(j, 409, "already_enrolled", "the lead is active in this sequence");
    if (rc == STORE_NOTFOUND) return api_job_fail(j, 404, "not_found", err->msg);
    if (rc) return rc;
    j->out = json_pack("{s:I, s:I, s:I}", "enrollment_id", (json_int_t)enr, "sequence_id", (json_int_t)j->id,
                       "lead_id", (json_int_t)j->id2);
    j->status = 201;
    return STORE_OK;
}

static void h_enroll(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = path_id(q, "id");
    if (id < 0) return;
    json_t *in = http_req_json(q);
    if (!in) return;
    json_t *l = json_object_get(in, "lead_id");
    int64_t lead = json_is_integer(l) ? json_integer_value(l) : -1;
    json_decref(in);
    if (lead <= 0) {
        http_reply_error(q, 422, "validation_failed", "lead_id: a positive integer");
        return;
    }
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->id = id;
    j->id2 = lead;
    j->write = 1;
    j->fn = enroll_tx;
    api_job_run(q, j);
}

/* Another tenant's lead, or a deleted one, is not found (rather than an
 * empty answer). */
static int lead_live(store_tx *tx, api_job *j, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(j->id)};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT 1 FROM leads WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL", p, 2, &r, err);
    int found = !rc && store_rows_count(r) > 0;
    store_rows_free(r);
    if (rc) return rc;
    return found ? STORE_OK : api_job_fail(j, 404, "not_found", "no such lead");
}

static int enrollments_tx(store_tx *tx, api_job *j, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(j->id)};
    store_rows *r = NULL;
    int rc = lead_live(tx, j, err);
    if (rc) return rc;
    rc = store_query(tx,
                         "SELECT e.id, e.sequence_id, s.name, e.state, e.step, e.exit_reason, e.created_at, e.updated_at "
                         "FROM nurture_enrollments e JOIN nurture_sequences s ON s.id = e.sequence_id "
                         "WHERE e.tenant_id = $1 AND e.lead_id = $2 ORDER BY e.id DESC LIMIT 100",
                         p, 2, &r, err);
    if (rc) return rc;
    json_t *items = json_array();
    for (int i = 0; !rc && i < store_rows_count(r); i++) {
        int64_t enr = store_rows_int(r, i, 0);
        store_val jp[] = {SV_I(store_tx_tenant(tx)), SV_I(enr)};
        store_rows *jr = NULL;
        rc = store_query(tx,
                         "SELECT step, state, due_at, attempts, result, updated_at FROM nurture_jobs "
                         "WHERE tenant_id = $1 AND enrollment_id = $2 ORDER BY id LIMIT 100",
                         jp, 2, &jr, err);
        if (rc) break;
        json_t *steps = json_array();
        for (int k = 0; k < store_rows_count(jr); k++)
            json_array_append_new(steps, json_pack("{s:I, s:s, s:I, s:I, s:s?, s:I}", "step",
                                                   (json_int_t)store_rows_int(jr, k, 0), "state",
                                                   store_rows_text(jr, k, 1), "due_at",
                                                   (json_int_t)store_rows_int(jr, k, 2), "attempts",
                                                   (json_int_t)store_rows_int(jr, k, 3), "result",
                                                   store_rows_text(jr, k, 4), "updated_at",
                                                   (json_int_t)store_rows_int(jr, k, 5)));
        store_rows_free(jr);
        json_array_append_new(items, json_pack("{s:I, s:I, s:s, s:s, s:I, s:s?, s:I, s:I, s:o}", "id", (json_int_t)enr,
                                               "sequence_id", (json_int_t)store_rows_int(r, i, 1), "sequence",
                                               store_rows_text(r, i, 2), "state", store_rows_text(r, i, 3), "step",
                                               (json_int_t)store_rows_int(r, i, 4), "exit_reason",
                                               store_rows_text(r, i, 5), "created_at",
                                               (json_int_t)store_rows_int(r, i, 6), "updated_at",
                                               (json_int_t)store_rows_int(r, i, 7), "history", steps));
    }
    store_rows_free(r);
    if (rc) {
        json_decref(items);
        return rc;
    }
    j->out = json_pack("{s:o}", "items", items);
    return STORE_OK;
}

static void h_enrollments(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = path_id(q, "id");
    if (id < 0) return;
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->id = id;
    j->fn = enrollments_tx;
    api_job_run(q, j);
}

/* Apollo enrichment of a lead: where it stands (404 when the lead was never
 * queued: its tenant had no Apollo key then). */
static int enrichment_tx(store_tx *tx, api_job *j, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(j->id)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT state, attempts, result, due_at, created_at, updated_at FROM lead_enrichments "
                         "WHERE tenant_id = $1 AND lead_id = $2",
                         p, 2, &r, err);
    if (rc) return rc;
    if (!store_rows_count(r)) {
        store_rows_free(r);
        return api_job_fail(j, 404, "not_found", "this lead was not queued for enrichment");
    }
    j->out = json_pack("{s:I, s:s, s:I, s:s?, s:I, s:I, s:I}", "lead_id", (json_int_t)j->id, "state",
                       store_rows_text(r, 0, 0), "attempts", (json_int_t)store_rows_int(r, 0, 1), "result",
                       store_rows_text(r, 0, 2), "due_at", (json_int_t)store_rows_int(r, 0, 3), "created_at",
                       (json_int_t)store_rows_int(r, 0, 4), "updated_at", (json_int_t)store_rows_int(r, 0, 5));
    store_rows_free(r);
    return STORE_OK;
}

static void h_enrichment(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = path_id(q, "id");
    if (id < 0) return;
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->id = id;
    j->fn = enrichment_tx;
    api_job_run(q, j);
}

static int stop_tx(store_tx *tx, api_job *j, store_err *err) {
    int n;
    const char *reason = j->extra;
    int rc = lead_live(tx, j, err);
    if (!rc) rc = nurture_exit_lead(tx, j->id, reason, clock_wall_ms(), &n, err);
    if (!rc) j->out = json_pack("{s:i}", "exited", n);
    return rc;
}

static void h_stop(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = path_id(q, "id");
    if (id < 0) return;
    const char *reason = "manual";
    size_t len = 0;
    http_req_body(q, &len);
    if (len) {
        json_t *in = http_req_json(q);
        if (!in) return;
        const char *r = json_string_value(json_object_get(in, "reason"));
        int ok = !r || !strcmp(r, "manual") || !strcmp(r, "agent_takeover");
        if (r && ok) reason = !strcmp(r, "manual") ? "manual" : "agent_takeover";
        json_decref(in);
        if (!ok) {
            http_reply_error(q, 422, "validation_failed", "reason: manual or agent_takeover");
            return;
        }
    }
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->id = id;
    j->extra = (void *)reason; /* a literal: no extra_free */
    j->write = 1;
    j->fn = stop_tx;
    api_job_run(q, j);
}

/* ---- settings ---- */

static json_t *settings_json(const store_rows *r) {
    int have = r && store_rows_count(r);
    const char *s;
    json_t *o = json_object();
#define TXT(name, c) json_object_set_new(o, name, have && (s = store_rows_text(r, 0, c)) ? json_string(s) : json_null())
#define SET(name, c) json_object_set_new(o, name, json_boolean(have && !store_rows_isnull(r, 0, c)))
    TXT("twilio_account_sid", 0);
    SET("twilio_auth_token_set", 1);
    TXT("twilio_from", 2);
    SET("sendgrid_api_key_set", 3);
    TXT("sendgrid_from", 4);
    SET("sendgrid_public_key_set", 5);
#undef TXT
#undef SET
    int qs = have ? (int)store_rows_int(r, 0, 6) : 1260, qe = have ? (int)store_rows_int(r, 0, 7) : 480;
    char a[8], b[8];
    snprintf(a, sizeof a, "%02d:%02d", qs / 60 % 24, qs % 60);
    snprintf(b, sizeof b, "%02d:%02d", qe / 60 % 24, qe % 60);
    json_object_set_new(o, "quiet_start", json_string(a));
    json_object_set_new(o, "quiet_end", json_string(b));
    json_object_set_new(o, "daily_cap", json_integer(have ? store_rows_int(r, 0, 8) : 3));
#define TXT(name, c) json_object_set_new(o, name, have && (s = store_rows_text(r, 0, c)) ? json_string(s) : json_null())
#define SET(name, c) json_object_set_new(o, name, json_boolean(have && !store_rows_isnull(r, 0, c)))
    json_object_set_new(o, "email_via", json_string(have ? store_rows_text(r, 0, 9) : "sendgrid"));
    json_object_set_new(o, "sms_via", json_string(have ? store_rows_text(r, 0, 10) : "twilio"));
    TXT("smtp_host", 11);
    json_object_set_new(o, "smtp_port", have && !store_rows_isnull(r, 0, 12) ? json_integer(store_rows_int(r, 0, 12))
                                                                             : json_null());
    json_object_set_new(o, "smtp_tls", json_string(have ? store_rows_text(r, 0, 13) : "starttls"));
    TXT("smtp_user", 14);
    TXT("smtp_password_from", 15); /* a reference (env:NAME, file:PATH), not the password */
    TXT("smtp_from", 16);
    SET("ghl_api_key_set", 17);
    SET("apollo_api_key_set", 18);
    json_object_set_new(o, "cold_sequence_id", have && !store_rows_isnull(r, 0, 19)
                                                   ? json_integer(store_rows_int(r, 0, 19))
                                                   : json_null());
    json_object_set_new(o, "cold_days", json_integer(have ? store_rows_int(r, 0, 20) : 7));
#undef TXT
#undef SET
    return o;
}

#define SETTINGS_COLS                                                                                             \
    "twilio_account_sid, twilio_auth_token, twilio_from, sendgrid_api_key, sendgrid_from, sendgrid_public_key, " \
    "quiet_start, quiet_end, daily_cap, email_via, sms_via, smtp_host, smtp_port, smtp_tls, smtp_user, "         \
    "smtp_password_from, smtp_from, ghl_api_key, apollo_api_key, cold_sequence_id, cold_days"

static int settings_get_tx(store_tx *tx, api_job *j, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx))};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT " SETTINGS_COLS " FROM nurture_settings WHERE tenant_id = $1", p, 1, &r, err);
    if (!rc) j->out = settings_json(r);
    store_rows_free(r);
    return rc;
}

static void h_settings_get(http_req *q, app *a, const auth_principal *p, void *ud) {
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->fn = settings_get_tx;
    api_job_run(q, j);
}

static const char *const setting_names[] = {"twilio_account_sid", "twilio_auth_token", "twilio_from",
                                            "sendgrid_api_key",   "sendgrid_from",     "sendgrid_public_key",
                                            "quiet_start",        "quiet_end",         "daily_cap",
                                            "email_via",          "sms_via",           "smtp_host",
                                            "smtp_port",          "smtp_tls",          "smtp_user",
                                            "smtp_password_from", "smtp_from",         "ghl_api_key",
                                            "apollo_api_key",     "cold_sequence_id",  "cold_days"};

static int one_of(const char *s, const char *const *names) {
    for (; s && *names; names++)
        if (!strcmp(s, *names)) return 1;
    return 0;
}

static int settings_patch_tx(store_tx *tx, api_job *j, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx))};
    json_t *cold = json_object_get(j->in, "cold_sequence_id");
    if (json_is_integer(cold)) {
        store_val c[] = {SV_I(store_tx_tenant(tx)), SV_I(json_integer_value(cold))};
        store_rows *r = NULL;
        int rc = store_query(tx, "SELECT COUNT(*) FROM nurture_sequences WHERE tenant_id = $1 AND id = $2 "
                                 "AND deleted_at IS NULL", c, 2, &r, err);
        int64_t have = rc ? 0 : store_rows_int(r, 0, 0);
        store_rows_free(r);
        if (rc) return rc;
        if (!have) return api_job_fail(j, 422, "validation_failed", "cold_sequence_id: no such sequence");
    }
    int rc = store_query(tx,
                         "INSERT INTO nurture_settings (tenant_id) VALUES ($1) ON CONFLICT (tenant_id) DO NOTHING", p,
                         1, NULL, err);
    const char *key;
    json_t *v;
    json_object_foreach(j->in, key, v) {
        if (rc) break;
        char sql[160];
        /* key is one of setting_names (checked on the loop): never input text in SQL */
        snprintf(sql, sizeof sql, "UPDATE nurture_settings SET %s = $2, updated_at = $3 WHERE tenant_id = $1", key);
        store_val u[] = {SV_I(store_tx_tenant(tx)), json_is_integer(v) ? SV_I(json_integer_value(v))
                                                    : json_is_null(v)  ? SV_NULLV
                                                                       : SV_S(json_string_value(v)),
                         SV_I(clock_wall_ms())};
        rc = store_query(tx, sql, u, 3, NULL, err);
    }
    if (rc) return rc;
    json_t *ev = json_pack("{s:o}", "changed", json_array());
    json_object_foreach(j->in, key, v) json_array_append_new(json_object_get(ev, "changed"), json_string(key));
    rc = leads_event(tx, "nurture.settings_updated", ev, err); /* names only: never the secrets */
    json_decref(ev);
    return rc ? rc : settings_get_tx(tx, j, err);
}

static int parse_hhmm(const char *s) {
    int h, m;
    char extra;
    if (!s || sscanf(s, "%d:%d%c", &h, &m, &extra) != 2 || h < 0 || h > 23 || m < 0 || m > 59) return -1;
    return h * 60 + m;
}

static void h_settings_patch(http_req *q, app *a, const auth_principal *p, void *ud) {
    json_t *in = http_req_json(q);
    if (!in) return;
    json_t *errors = json_object(), *clean = json_object();
    const char *key;
    json_t *v;
    if (!json_is_object(in)) json_object_set_new(errors, "_", json_string("expected a JSON object"));
    json_object_foreach(in, key, v) {
        int known = 0;
        for (size_t i = 0; i < sizeof setting_names / sizeof setting_names[0]; i++) known |= !strcmp(key, setting_names[i]);
        const char *s = json_string_value(v);
        if (!known) {
            json_object_set_new(errors, key, json_string("unknown setting"));
        } else if (!strcmp(key, "quiet_start") || !strcmp(key, "quiet_end")) {
            int m = parse_hhmm(s);
            if (m < 0) json_object_set_new(errors, key, json_string("HH:MM, 24-hour"));
            else json_object_set_new(clean, key, json_integer(m));
        } else if (!strcmp(key, "email_via") || !strcmp(key, "sms_via") || !strcmp(key, "smtp_tls")) {
            static const char *const ev[] = {"sendgrid", "smtp", "ghl", NULL}, *const sv[] = {"twilio", "ghl", NULL},
                                     *const tv[] = {"starttls", "implicit", "none", NULL};
            const char *const *names = key[0] == 'e' ? ev : !strcmp(key, "smtp_tls") ? tv : sv;
            if (!one_of(s, names))
                json_object_set_new(errors, key, json_string(key[0] == 'e'   ? "sendgrid, smtp or ghl"
                                                             : names == tv ? "starttls, implicit or none"
                                                                           : "twilio or ghl"));
            else json_object_set_new(clean, key, json_incref(v));
        } else if (!strcmp(key, "smtp_port") || !strcmp(key, "cold_days") || !strcmp(key, "cold_sequence_id")) {
            json_int_t lo = 1, hi = key[0] == 's' ? 65535 : key[5] == 'd' ? 365 : INT64_MAX;
            if (json_is_null(v) && key[5] != 'd') json_object_set_new(clean, key, json_null());
            else if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
                json_object_set_new(errors, key, json_string(key[0] == 's'   ? "a port, 1-65535"
                                                             : key[5] == 'd' ? "1-365 days"
                                                                             : "a sequence's id, or null"));
            else json_object_set_new(clean, key, json_incref(v));
        } else if (!strcmp(key, "smtp_password_from") && s && nurture_secret_ref_ok(s)) {
            json_object_set_new(errors, key, json_string("env:EHUB_SMTP_... or file:NAME (a file in DATA_DIR/secrets); "
                                                         "the password itself is never stored"));
        } else if ((!strcmp(key, "smtp_from") || !strcmp(key, "smtp_host")) && s &&
                   (strpbrk(s, "<>\r\n \t/") || (key[5] == 'f' && !strchr(s, '@')))) {
            json_object_set_new(errors, key, json_string(key[5] == 'f' ? "an email address" : "a host name"));
        } else if (!strcmp(key, "daily_cap")) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100)
                json_object_set_new(errors, key, json_string("1-100 messages a day"));
            else json_object_set_new(clean, key, json_incref(v));
        } else if (json_is_null(v)) {
            json_object_set_new(clean, key, json_null());
        } else if (!s || !*s || strlen(s) > 2000) {
            json_object_set_new(errors, key, json_string("a non-empty string (or null to clear)"));
        } else if (!strcmp(key, "sendgrid_public_key")) {
            sig_key *k = NULL;
            int ok = sig_key_load(s, strlen(s), &k, NULL, 0) == SIG_OK && sig_key_kind(k) == SIG_KEY_EC_P256;
            sig_key_free(k);
            if (!ok) json_object_set_new(errors, key, json_string("SendGrid's verification key: an EC P-256 public key"));
            else json_object_set_new(clean, key, json_incref(v));
        } else if (!strcmp(key, "twilio_from")) {
            char e164[32];
            if (norm_phone_e164(s, "US", e164, sizeof e164) != NORM_OK)
                json_object_set_new(errors, key, json_string("a phone number (E.164)"));
            else json_object_set_new(clean, key, json_string(e164));
        } else {
            json_object_set_new(clean, key, json_incref(v));
        }
    }
    json_decref(in);
    if (json_object_size(errors)) {
        json_decref(clean);
        http_reply_json(q, 422, json_pack("{s:{s:s, s:s, s:s, s:o}}", "error", "code", "validation_failed", "message",
                                          "some settings are invalid", "request_id", http_req_id(q), "fields", errors));
        return;
    }
    json_decref(errors);
    api_job *j = api_job_new(a, p);
    if (!j) {
        json_decref(clean);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    j->in = clean;
    j->write = 1;
    j->fn = settings_patch_tx;
    api_job_run(q, j);
}

/* ---- provider webhooks ---- */

typedef struct hook_job {
    app *a;
    char slug[65];
    char *body;
    size_t len;
    char url[2048];
    char sig[256], ts[64];
    int twilio;
    int status;     /* reply status */
    char code[48], msg[256];
    int handled;    /* events applied */
} hook_job;

static int hex(int c) { return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1; }

/* Decodes a form-encoded body in place into at most max params. */
static int form_parse(char *s, size_t len, sig_param *out, int max) {
    int n = 0;
    char *end = s + len, *p = s;
    while (p < end && n < max) {
        char *amp = memchr(p, '&', (size_t)(end - p));
        char *e = amp ? amp : end;
        char *eq = memchr(p, '=', (size_t)(e - p));
        char *parts[2] = {p, eq ? eq + 1 : e};
        char *stops[2] = {eq ? eq : e, e};
        size_t lens[2];
        for (int k = 0; k < 2; k++) {
            char *w = parts[k];
            for (char *r = parts[k]; r < stops[k]; r++) {
                if (*r == '+') *w++ = ' ';
                else if (*r == '%' && r + 2 < stops[k] && hex(r[1]) >= 0 && hex(r[2]) >= 0) {
                    *w++ = (char)(hex(r[1]) * 16 + hex(r[2]));
                    r += 2;
                } else *w++ = *r;
            }
            lens[k] = (size_t)(w - parts[k]);
        }
        out[n++] = (sig_param){parts[0], lens[0], parts[1], lens[1]};
        p = e + 1;
    }
    return n;
}

static const char *param(const sig_param *ps, int n, const char *name, char *buf, size_t cap) {
    for (int i = 0; i < n; i++)
        if (ps[i].name_len == strlen(name) && !memcmp(ps[i].name, name, ps[i].name_len)) {
            snprintf(buf, cap, "%.*s", (int)ps[i].value_len, ps[i].value);
            return buf;
        }
    return NULL;
}

typedef struct hook_tx_args {
    hook_job *h;
    sig_param *ps;
    int n;
    json_t *events;
} hook_tx_args;

static int hook_fail(hook_job *h, int status, const char *code, const char *msg) {
    h->status = status;
    snprintf(h->code, sizeof h->code, "%s", code);
    snprintf(h->msg, sizeof h->msg, "%s", msg);
    return STORE_ABORTED;
}

/* First time this provider event is seen? (webhook_inbox is the
 * de-duplication log of every provider.) */
static int first_time(store_tx *tx, const char *provider, const char *id, const char *type, int64_t now, int *fresh,
                      store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_S(provider), SV_S(id), SV_S(type), SV_S("{}"), SV_I(now),
                     SV_S(auth_empty_body_hash)};
    /* the row count says whether it went in: no RETURNING (on SQLite an
     * ephemeral table per run) */
    int rc = store_query(tx,
                         "INSERT INTO webhook_inbox (tenant_id, provider, webhook_id, type, body, received_at, "
                         "body_hash) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                         p, 7, NULL, err);
    *fresh = !rc && store_tx_changes(tx) > 0;
    return rc;
}

/* source/evidence: the provider and the message or event id, for the
 * consent log (src/privacy), written in this transaction. */
static int set_consent(store_tx *tx, int64_t lead, const char *col, int on, const char *source, const char *evidence,
                       int64_t now, store_err *err) {
    int before[4];
    int rc = privacy_consent_flags(tx, lead, before, err);
    if (rc) return rc;
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE leads SET %s = $3, version = version + 1, updated_at = $4 "
                              "WHERE tenant_id = $1 AND id = $2", col);
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(lead), SV_I(on), SV_I(now)};
    if ((rc = store_query(tx, sql, p, 4, NULL, err))) return rc;
    json_t *ev = json_pack("{s:I, s:s, s:b, s:s}", "lead_id", (json_int_t)lead, "channel", col + 8, "consent", on,
                           "via", "keyword");
    rc = leads_event(tx, "lead.consent_changed", ev, err);
    json_decref(ev);
    return rc ? rc : privacy_consent_diff(tx, lead, before, source, evidence, now, err);
}

/* A provider's delivery status onto the message's activity, and on the
 * feed as message.status (the lead page shows it live). channel: only
 * activities of that channel, or NULL for any. */
static int status_update(store_tx *tx, const char *msgid, const char *status, const char *channel, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_S(msgid), SV_S(status), SV_S(channel)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         channel ? "UPDATE activities SET status = $3 WHERE tenant_id = $1 AND provider_message_id = $2 "
                                   "AND channel = $4 RETURNING id, lead_id, channel"
                                 : "UPDATE activities SET status = $3 WHERE tenant_id = $1 AND provider_message_id = $2 "
                                   "RETURNING id, lead_id, channel",
                         p, channel ? 4 : 3, &r, err);
    for (int i = 0; !rc && i < store_rows_count(r); i++) {
        /* the lead's agent: the realtime feed shows it the event by this */
        store_val lp[] = {SV_I(store_tx_tenant(tx)), SV_I(store_rows_int(r, i, 1))};
        store_rows *lr = NULL;
        if ((rc = store_query(tx, "SELECT agent_id FROM leads WHERE tenant_id = $1 AND id = $2", lp, 2, &lr, err)))
            break;
        int64_t agent = store_rows_count(lr) && !store_rows_isnull(lr, 0, 0) ? store_rows_int(lr, 0, 0) : 0;
        store_rows_free(lr);
        json_t *ev = json_pack("{s:I, s:I, s:s, s:s, s:o}", "activity_id", (json_int_t)store_rows_int(r, i, 0),
                               "lead_id", (json_int_t)store_rows_int(r, i, 1), "channel", store_rows_text(r, i, 2),
                               "status", status, "agent_id", agent ? json_integer(agent) : json_null());
        rc = leads_event(tx, "message.status", ev, err);
        json_decref(ev);
    }
    store_rows_free(r);
    return rc;
}

static int twilio_tx(store_tx *tx, void *arg, store_err *err) {
    hook_tx_args *x = arg;
    hook_job *h = x->h;
    int64_t now = clock_wall_ms();
    char sid[80], st[40], from[40], body[1700], key[140];
    const char *msid = param(x->ps, x->n, "MessageSid", sid, sizeof sid);
    const char *status = param(x->ps, x->n, "MessageStatus", st, sizeof st);
    if (!msid) return hook_fail(h, 422, "validation_failed", "MessageSid is missing");
    if (status && !param(x->ps, x->n, "Body", body, sizeof body)) {
        /* a delivery receipt for one of our messages */
        snprintf(key, sizeof key, "%s:%s", msid, status);
        int fresh, rc = first_time(tx, "twilio", key, "status", now, &fresh, err);
        if (rc || !fresh) return rc;
        rc = status_update(tx, msid, status, NULL, err);
        if (!rc) h->handled = 1;
        return rc;
    }
    /* an inbound message */
    if (!param(x->ps, x->n, "From", from, sizeof from) || !param(x->ps, x->n, "Body", body, sizeof body))
        return hook_fail(h, 422, "validation_failed", "an inbound message needs From and Body");
    int fresh, rc = first_time(tx, "twilio", msid, "inbound", now, &fresh, err);
    if (rc || !fresh) return rc;
    char e164[32];
    if (norm_phone_e164(from, "US", e164, sizeof e164) != NORM_OK) return STORE_OK; /* not a number we know */
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_S(e164)};
    store_rows *r = NULL;
    rc = store_query(tx, "SELECT id FROM leads WHERE tenant_id = $1 AND phone = $2 AND deleted_at IS NULL ORDER BY id",
                     p, 2, &r, err);
    int kw = nurture_keyword(body);
    for (int i = 0; !rc && i < store_rows_count(r); i++) {
        int64_t lead = store_rows_int(r, i, 0);
        int n;
        if (kw == 1) {
            /* STOP: no more texts, at once, from any sequence */
            rc = set_consent(tx, lead, "consent_sms", 0, "twilio", msid, now, err);
            if (!rc) rc = nurture_exit_lead(tx, lead, "opt_out", now, &n, err);
        } else if (kw == 2) {
            rc = set_consent(tx, lead, "consent_sms", 1, "twilio", msid, now, err);
        }
        if (rc) break;
        activity_in ai = {.channel = "sms", .direction = "inbound", .body = body, .status = "received",
                          .provider_message_id = msid, .occurred_at = now};
        int64_t aid;
        rc = leads_add_activity(tx, lead, &ai, now, &aid, err); /* a reply ends the lead's sequences */
        h->handled++;
    }
    store_rows_free(r);
    return rc;
}

static int sendgrid_tx(store_tx *tx, void *arg, store_err *err) {
    hook_tx_args *x = arg;
    hook_job *h = x->h;
    int64_t now = clock_wall_ms();
    size_t i;
    json_t *ev;
    int rc = 0;
    h->handled = 0;
    json_array_foreach(x->events, i, ev) {
        const char *id = json_string_value(json_object_get(ev, "sg_event_id"));
        const char *type = json_string_value(json_object_get(ev, "event"));
        const char *mid = json_string_value(json_object_get(ev, "sg_message_id"));
        const char *email = json_string_value(json_object_get(ev, "email"));
        if (!id || !type || strlen(id) > 100 || strlen(type) > 32) continue;
        int fresh;
        if ((rc = first_time(tx, "sendgrid", id, type, now, &fresh, err))) break;
        if (!fresh) continue;
        h->handled++;
        if (mid) {
            /* sg_message_id is X-Message-Id plus a suffix after a dot */
            char base[128];
            snprintf(base, sizeof base, "%.*s", (int)strcspn(mid, "."), mid);
            if ((rc = status_update(tx, base, type, "email", err))) break;
        }
        if (email && (!strcmp(type, "unsubscribe") || !strcmp(type, "spamreport") || !strcmp(type, "group_unsubscribe"))) {
            char norm[320];
            if (norm_email(email, norm, sizeof norm) != NORM_OK) continue;
            store_val p[] = {SV_I(store_tx_tenant(tx)), SV_S(norm)};
            store_rows *r = NULL;
            rc = store_query(tx, "SELECT id FROM leads WHERE tenant_id = $1 AND email = $2 AND deleted_at IS NULL", p, 2,
                             &r, err);
            for (int k = 0; !rc && k < store_rows_count(r); k++) {
                int n;
                rc = set_consent(tx, store_rows_int(r, k, 0), "consent_email", 0, "sendgrid", id, now, err);
                if (!rc) rc = nurture_exit_lead(tx, store_rows_int(r, k, 0), "opt_out", now, &n, err);
            }
            store_rows_free(r);
            if (rc) break;
        }
    }
    return rc;
}

typedef struct secrets {
    char slug[65];
    int64_t tenant;
    char token[256];
    char *pubkey;
} secrets;

static int secrets_tx(store_tx *tx, void *arg, store_err *err) {
    secrets *s = arg;
    int rc = store_tenant_find(tx, s->slug, &s->tenant, err);
    if (rc) return rc;
    store_val p[] = {SV_I(s->tenant)};
    store_rows *r = NULL;
    rc = store_query(tx, "SELECT twilio_auth_token, sendgrid_public_key FROM nurture_settings WHERE tenant_id = $1", p,
                     1, &r, err);
    if (!rc && store_rows_count(r)) {
        snprintf(s->token, sizeof s->token, "%s", store_rows_text(r, 0, 0) ? store_rows_text(r, 0, 0) : "");
        eh_free(s->pubkey);
        s->pubkey = store_rows_text(r, 0, 1) ? eh_strdup(store_rows_text(r, 0, 1)) : NULL;
    }
    store_rows_free(r);
    return rc;
}

static void hook_work(void *arg) {
    hook_job *h = arg;
    secrets s = {0};
    snprintf(s.slug, sizeof s.slug, "%s", h->slug);
    store_err err = {0};
    h->status = 200;
    if (store_read(h->a->st, 0, secrets_tx, &s, &err)) {
        if (err.code == STORE_NOTFOUND) hook_fail(h, 404, "unknown_tenant", "no such tenant");
        else hook_fail(h, 503, "unavailable", "storage is unavailable");
        eh_free(s.pubkey);
        return;
    }
    hook_tx_args x = {.h = h};
    sig_param ps[64];
    if (h->twilio) {
        x.n = form_parse(h->body, h->len, ps, 64);
        x.ps = ps;
        char want[SIG_HMAC_SHA1_B64_SIZE];
        if (!s.token[0]) {
            hook_fail(h, 401, "not_configured", "this tenant has no Twilio auth token");
        } else if (sig_twilio(s.token, h->url, ps, (size_t)x.n, want) != SIG_OK || strlen(h->sig) != strlen(want) ||
                   !sig_equal(want, h->sig, strlen(want))) {
            hook_fail(h, 401, "invalid_signature", "X-Twilio-Signature does not match");
        }
    } else {
        sig_key *k = NULL;
        size_t n = strlen(h->ts);
        char *msg = eh_malloc(n + h->len + 1);
        if (!s.pubkey || sig_key_load(s.pubkey, strlen(s.pubkey), &k, NULL, 0) != SIG_OK) {
            hook_fail(h, 401, "not_configured", "this tenant has no SendGrid verification key");
        } else if (!msg) {
            hook_fail(h, 503, "overloaded", "out of memory");
        } else {
            memcpy(msg, h->ts, n);
            memcpy(msg + n, h->body, h->len);
            if (!h->ts[0] || sig_verify_ecdsa_p256_sha256(k, msg, n + h->len, h->sig) != SIG_OK)
                hook_fail(h, 401, "invalid_signature", "the event webhook signature does not verify");
            else if ((x.events = json_loadb(h->body, h->len, 0, NULL)), !json_is_array(x.events))
                /* (json_is_array is a macro that evaluates its argument twice) */
                hook_fail(h, 400, "invalid_json", "expected a JSON array of events");
        }
        eh_free(msg);
        sig_key_free(k);
    }
    eh_free(s.pubkey);
    if (h->status == 200) {
        int rc = store_write(h->a->st, s.tenant, h->twilio ? twilio_tx : sendgrid_tx, &x, &err);
        if (rc && h->status == 200) hook_fail(h, 503, "unavailable", "could not store the callback");
    }
    json_decref(x.events);
}

static void hook_done(http_req *q, void *arg) {
    hook_job *h = arg;
    if (h->status != 200) {
        http_reply_error(q, h->status, h->code, h->msg);
    } else if (h->twilio) {
        /* TwiML: nothing to say back */
        static const char twiml[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";
        http_reply(q, 200, "text/xml", twiml, sizeof twiml - 1);
    } else {
        http_reply_json(q, 200, json_pack("{s:i}", "applied", h->handled));
    }
    eh_free(h->body);
    eh_free(h);
}

static void copy_hdr(http_req *q, const char *name, char *out, size_t cap) {
    const char *v = http_req_header(q, name);
    snprintf(out, cap, "%s", v && strlen(v) < cap ? v : "");
}

static void h_hook(http_req *q, void *ud, int twilio) {
    app *a = ud;
    const char *slug = http_req_param(q, "tenant");
    size_t len;
    const char *body = http_req_body(q, &len);
    if (!slug || strlen(slug) > 64) {
        http_reply_error(q, 404, "unknown_tenant", "no such tenant");
        return;
    }
    http_req_set_tenant(q, slug);
    hook_job *h = eh_calloc(1, sizeof *h);
    if (!h || !(h->body = eh_malloc(len + 1))) {
        eh_free(h);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    memcpy(h->body, body, len);
    h->body[len] = 0;
    h->len = len;
    h->a = a;
    h->twilio = twilio;
    snprintf(h->slug, sizeof h->slug, "%s", slug);
    /* Twilio signs the URL it called: ours as providers see it */
    const char *pub = a->cfg.public_url;
    char host[300];
    if (!*pub) {
        copy_hdr(q, "Host", host, sizeof host);
        snprintf(h->url, sizeof h->url, "http://%s%s", host, http_req_url(q));
    } else {
        snprintf(h->url, sizeof h->url, "%s%s", pub, http_req_url(q));
    }
    copy_hdr(q, twilio ? "X-Twilio-Signature" : "X-Twilio-Email-Event-Webhook-Signature", h->sig, sizeof h->sig);
    copy_hdr(q, "X-Twilio-Email-Event-Webhook-Timestamp", h->ts, sizeof h->ts);
    if (http_req_work(q, hook_work, hook_done, h)) {
        eh_free(h->body);
        eh_free(h);
        http_reply_error(q, 503, "overloaded", "cannot schedule");
    }
}

static void h_twilio(http_req *q, void *ud) { h_hook(q, ud, 1); }
static void h_sendgrid(http_req *q, void *ud) { h_hook(q, ud, 0); }

/* ---- registration ---- */

#define DOC(name, sum, req, resp) static const http_route_doc name = {sum, "nurture", req, resp}
static const http_route_doc d_templates[5] = {
    {"Create a message template: name, channel (sms, email), subject (email), body with {{variables}}, marketing",
     "nurture", "template", "the template"},
    {"List templates", "nurture", NULL, "{items, next_cursor}"},
    {"Get a template", "nurture", NULL, "the template"},
    {"Change a template (If-Match)", "nurture", "fields", "the template"},
    {"Delete a template", "nurture", NULL, "204"},
};
static const http_route_doc d_sequences[5] = {
    {"Create a sequence: name, start_on (new_lead, manual), steps [{type: sms|email, template} | {type: wait, "
     "minutes} | {type: task, text}], active",
     "nurture", "sequence", "the sequence"},
    {"List sequences", "nurture", NULL, "{items, next_cursor}"},
    {"Get a sequence", "nurture", NULL, "the sequence"},
    {"Change a sequence (If-Match); enrolments already running keep their step numbers", "nurture", "fields",
     "the sequence"},
    {"Delete a sequence", "nurture", NULL, "204"},
};
DOC(d_preview, "Render a template with a lead's values (lead_id) or sample values; SMS encoding and segments",
    "{lead_id?}", "{channel, subject, body, sms:{encoding, units, segments}}");
DOC(d_enroll, "Enrol a lead in a sequence (its first step is due now)", "{lead_id}", "{enrollment_id}");
DOC(d_enrichment, "A lead's Apollo enrichment: state (queued, sending, done, not_found, failed), attempts, result",
    NULL, "{lead_id, state, attempts, result, due_at, created_at, updated_at}");
DOC(d_enrollments, "A lead's enrolments with every step's state, attempts and result", NULL, "{items}");
DOC(d_stop, "End all of a lead's enrolments (reason manual or agent_takeover)", "{reason?}", "{exited}");
DOC(d_settings_get, "Nurture settings: Twilio, SendGrid, SMTP, GoHighLevel and Apollo (secrets write-only), quiet hours, daily cap, gone-cold trigger", NULL,
    "settings");
DOC(d_settings_patch, "Change nurture settings (admin)", "settings", "settings");
DOC(d_twilio, "Twilio status callbacks and inbound SMS (X-Twilio-Signature verified); STOP/START keywords", "form",
    "TwiML");
DOC(d_sendgrid, "SendGrid event webhook (ECDSA signature verified): delivery status, unsubscribes", "[events]",
    "{applied}");

int nurture_register(app *a) {
    a->nurture = nurture_ctx_start(a);
    if (!a->nurture) return -1;
    int rc = leads_crud_register(a, &crud_template, ROLES_ANY, ROLES_MANAGE, d_templates);
    rc |= leads_crud_register(a, &crud_sequence, ROLES_ANY, ROLES_MANAGE, d_sequences);
    rc |= app_route(a, "POST", "/v1/templates/{id}/preview", h_preview, NULL, ROLES_ANY, &d_preview);
    rc |= app_route(a, "POST", "/v1/sequences/{id}/enroll", h_enroll, NULL, ROLES_LEAD_WRITE, &d_enroll);
    rc |= app_route(a, "GET", "/v1/leads/{id}/enrollments", h_enrollments, NULL, ROLES_ANY, &d_enrollments);
    rc |= app_route(a, "GET", "/v1/leads/{id}/enrichment", h_enrichment, NULL, ROLES_ANY, &d_enrichment);
    rc |= app_route(a, "POST", "/v1/leads/{id}/nurture/stop", h_stop, NULL, ROLES_LEAD_WRITE, &d_stop);
    rc |= nurture_message_register(a);
    rc |= app_route(a, "GET", "/v1/nurture/settings", h_settings_get, NULL, ROLES_MANAGE, &d_settings_get);
    rc |= app_route(a, "PATCH", "/v1/nurture/settings", h_settings_patch, NULL, ROLE_ADMIN, &d_settings_patch);
    rc |= http_router_add(a->router, "POST", "/v1/webhooks/twilio/{tenant}", h_twilio, a, HTTP_ROUTE_PUBLIC, &d_twilio);
    rc |= http_router_add(a->router, "POST", "/v1/webhooks/sendgrid/{tenant}", h_sendgrid, a, HTTP_ROUTE_PUBLIC,
                          &d_sendgrid);
    return rc ? -1 : 0;
}
