/* Sequences and enrollments: the sequence resource (steps validated on
 * every write), enrolling leads, queuing their steps, ending enrollments. */
#include <stdio.h>
#include <string.h>

#include "leads/leads.h"
#include "nurture.h"
#include "nurture_int.h"

static const char *const start_on[] = {"new_lead", "manual", NULL};
static const field sequence_fields[] = {
    {"name", F_TEXT, 100, FF_REQUIRED | FF_FILTER, NULL},
    {"start_on", F_ENUM, 16, FF_FILTER, start_on},
    {"steps", F_JSON, 16384, FF_REQUIRED, NULL},
    {"active", F_BOOL, 0, FF_FILTER, NULL},
    {"exit_on_reply", F_BOOL, 0, 0, NULL},
};

static int hhmm(const char *s) {
    int h, m;
    char extra;
    if (!s || sscanf(s, "%d:%d%c", &h, &m, &extra) != 2 || h < 0 || h > 23 || m < 0 || m > 59) return -1;
    return h * 60 + m;
}

/* Why a steps array is invalid, or NULL. */
static const char *steps_problem(const json_t *steps, char *buf, size_t n) {
    if (!json_is_array(steps) || json_array_size(steps) < 1 || json_array_size(steps) > NURTURE_MAX_STEPS) {
        snprintf(buf, n, "an array of 1-%d steps", NURTURE_MAX_STEPS);
        return buf;
    }
    size_t i;
    json_t *st;
    int actions = 0;
    json_array_foreach(steps, i, st) {
        const char *type = json_string_value(json_object_get(st, "type"));
        const char *key;
        json_t *v;
        if (!json_is_object(st) || !type) {
            snprintf(buf, n, "step %zu: an object with a type (sms, email, wait, task)", i + 1);
            return buf;
        }
        int sendy = !strcmp(type, "sms") || !strcmp(type, "email");
        int wait = !strcmp(type, "wait"), task = !strcmp(type, "task");
        int until = !strcmp(type, "wait_until"), branch = !strcmp(type, "branch");
        if (!sendy && !wait && !task && !until && !branch) {
            snprintf(buf, n, "step %zu: type must be sms, email, wait, wait_until, task or branch", i + 1);
            return buf;
        }
        json_object_foreach((json_t *)st, key, v) {
            int ok = !strcmp(key, "type") || (sendy && !strcmp(key, "template")) || (wait && !strcmp(key, "minutes")) ||
                     (task && !strcmp(key, "text")) || (until && (!strcmp(key, "start") || !strcmp(key, "end"))) ||
                     (branch && (!strcmp(key, "if") || !strcmp(key, "value") || !strcmp(key, "goto")));
            if (!ok) {
                snprintf(buf, n, "step %zu: unknown key \"%.40s\"", i + 1, key);
                return buf;
            }
        }
        const char *tpl = json_string_value(json_object_get(st, "template"));
        json_t *mins = json_object_get(st, "minutes");
        const char *text = json_string_value(json_object_get(st, "text"));
        if (sendy && (!tpl || !*tpl || strlen(tpl) > 100)) {
            snprintf(buf, n, "step %zu: template (a template's name) is required", i + 1);
            return buf;
        }
        if (wait && (!json_is_integer(mins) || json_integer_value(mins) < 1 || json_integer_value(mins) > 525600)) {
            snprintf(buf, n, "step %zu: minutes must be 1-525600", i + 1);
            return buf;
        }
        if (task && (!text || !*text || strlen(text) > 500)) {
            snprintf(buf, n, "step %zu: text (1-500 bytes) is required", i + 1);
            return buf;
        }
        if (until) {
            int a = hhmm(json_string_value(json_object_get(st, "start")));
            int b = hhmm(json_string_value(json_object_get(st, "end")));
            if (a < 0 || b < 0 || a == b) {
                snprintf(buf, n, "step %zu: start and end are different local times, \"HH:MM\"", i + 1);
                return buf;
            }
        }
        if (branch) {
            const char *cond = json_string_value(json_object_get(st, "if"));
            json_t *val = json_object_get(st, "value"), *go = json_object_get(st, "goto");
            int score = cond && (!strcmp(cond, "score_at_least") || !strcmp(cond, "score_below"));
            if (!cond || (!score && strcmp(cond, "replied") && strcmp(cond, "no_reply"))) {
                snprintf(buf, n, "step %zu: if must be replied, no_reply, score_at_least or score_below", i + 1);
                return buf;
            }
            if (score != (val != NULL) || (score && (!json_is_number(val) || json_number_value(val) < 0 ||
                                                     json_number_value(val) > 1))) {
                snprintf(buf, n, "step %zu: value (a score, 0-1) goes with score_at_least and score_below only", i + 1);
                return buf;
            }
            /* forward only: every enrollment ends */
            json_int_t g = json_integer_value(go);
            if (!json_is_integer(go) || g <= (json_int_t)i + 1 || g > (json_int_t)json_array_size(steps) + 1) {
                snprintf(buf, n, "step %zu: goto is a later step's number (%zu-%zu; the last + 1 ends the sequence)",
                         i + 1, i + 2, json_array_size(steps) + 1);
                return buf;
            }
        }
        actions += sendy || task;
    }
    if (!actions) {
        snprintf(buf, n, "a sequence needs at least one step that does something");
        return buf;
    }
    return NULL;
}

static void sequence_check(const ent_vals *v, json_t *in, int creating, json_t **errors) {
    json_t *steps = json_object_get(in, "steps");
    char buf[160];
    const char *why = steps && !json_is_null(steps) ? steps_problem(steps, buf, sizeof buf) : NULL;
    if (why) ent_error(errors, "steps", why);
    /* a reply ends such a sequence before any branch could see it */
    size_t i;
    json_t *st;
    int on_reply = 0;
    json_array_foreach(steps, i, st) {
        const char *cond = json_string_value(json_object_get(st, "if"));
        on_reply |= cond && (!strcmp(cond, "replied") || !strcmp(cond, "no_reply"));
    }
    if (!why && on_reply && !json_is_false(json_object_get(in, "exit_on_reply")))
        ent_error(errors, "exit_on_reply", "a branch on replies needs exit_on_reply: false (sent with the steps)");
}

const entity entity_sequence = {"nurture_sequences", "sequence", sequence_fields,
                                (int)(sizeof sequence_fields / sizeof sequence_fields[0]), 1, sequence_check};

/* Queues the first action step at or after `step` (waits before it add to
 * the due time), or completes the enrollment when none is left. */
static int lead_tz(store_tx *tx, int64_t enrollment, char *tz, size_t cap, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(enrollment)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT l.timezone FROM nurture_enrollments e JOIN leads l ON l.id = e.lead_id "
                         "WHERE e.tenant_id = $1 AND e.id = $2",
                         p, 2, &r, err);
    snprintf(tz, cap, "%s", !rc && store_rows_count(r) && store_rows_text(r, 0, 0) ? store_rows_text(r, 0, 0) : "");
    store_rows_free(r);
    return rc;
}

int nurture_schedule(store_tx *tx, int64_t enrollment, const json_t *steps, int step, int64_t due,
                     int64_t now_ms, store_err *err) {
    int64_t tenant = store_tx_tenant(tx);
    int n = (int)json_array_size(steps);
    char tz[72];
    int have_tz = 0;
    while (step < n) {
        json_t *st = json_array_get(steps, (size_t)step);
        const char *type = json_string_value(json_object_get(st, "type"));
        if (!strcmp(type, "wait")) {
            due += json_integer_value(json_object_get(st, "minutes")) * 60000;
        } else if (!strcmp(type, "wait_until")) {
            /* the next time the lead's local clock is inside the window */
            int rc;
            if (!have_tz && (rc = lead_tz(tx, enrollment, tz, sizeof tz, err))) return rc;
            have_tz = 1;
            due = nurture_window_opens(tz, hhmm(json_string_value(json_object_get(st, "start"))),
                                       hhmm(json_string_value(json_object_get(st, "end"))), due);
        } else {
            break;
        }
        step++;
    }
    if (step >= n) {
        store_val p[] = {SV_I(tenant), SV_I(enrollment), SV_I(now_ms), SV_I(n)};
        int rc = store_query(tx,
                             "UPDATE nurture_enrollments SET state = 'completed', step = $4, updated_at = $3 "
                             "WHERE tenant_id = $1 AND id = $2 AND state = 'active'",
                             p, 4, NULL, err);
        if (rc) return rc;
        json_t *ev = json_pack("{s:I}", "enrollment_id", (json_int_t)enrollment);
        rc = leads_event(tx, "nurture.completed", ev, err);
        json_decref(ev);
        return rc;
    }
    char key[96];
    snprintf(key, sizeof key, "t%lld:e%lld:s%d", (long long)tenant, (long long)enrollment, step);
    store_val p[] = {SV_I(tenant), SV_I(enrollment), SV_I(step), SV_I(due), SV_S(key), SV_I(now_ms)};
    int rc = store_query(tx,
                         "INSERT INTO nurture_jobs (tenant_id, enrollment_id, step, due_at, idem_key, created_at, "
                         "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
                         p, 6, NULL, err);
    if (rc) return rc;
    store_val u[] = {SV_I(tenant), SV_I(enrollment), SV_I(step), SV_I(now_ms)};
    return store_query(tx, "UPDATE nurture_enrollments SET step = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
                       u, 4, NULL, err);
}

static int enroll(store_tx *tx, int64_t sequence_id, const char *steps_text, int64_t lead_id, const char *why,
                  int64_t now_ms, int64_t *enrollment, store_err *err) {
    json_t *steps = json_loads(steps_text, 0, NULL);
    if (!json_is_array(steps)) {
        json_decref(steps);
        err->code = STORE_INVALID;
        snprintf(err->msg, sizeof err->msg, "sequence %lld has no valid steps", (long long)sequence_id);
        return STORE_INVALID;
    }
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(sequence_id), SV_I(lead_id), SV_I(now_ms)};
    store_rows *r = NULL;
    /* store_insert_returning: SQLite's RETURNING builds an ephemeral table
     * per run, dearer than selecting the new row */
    int rc = store_insert_returning(tx,
                                    "INSERT INTO nurture_enrollments (tenant_id, sequence_id, lead_id, created_at, "
                                    "updated_at) VALUES ($1, $2, $3, $4, $4)",
                                    "nurture_enrollments", "id", p, 4, &r, err);
    if (!rc) {
        *enrollment = store_rows_int(r, 0, 0);
        json_t *ev = json_pack("{s:I, s:I, s:I, s:s}", "enrollment_id", (json_int_t)*enrollment, "sequence_id",
                               (json_int_t)sequence_id, "lead_id", (json_int_t)lead_id, "why", why);
        rc = leads_event(tx, "nurture.enrolled", ev, err);
        json_decref(ev);
    }
    store_rows_free(r);
    if (!rc) rc = nurture_schedule(tx, *enrollment, steps, 0, now_ms, now_ms, err);
    json_decref(steps);
    return rc;
}

int nurture_on_new_lead(store_tx *tx, int64_t lead_id, int64_t now_ms, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx))};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT id, steps FROM nurture_sequences WHERE tenant_id = $1 AND start_on = 'new_lead' "
                         "AND active = 1 AND deleted_at IS NULL ORDER BY id LIMIT 20",
                         p, 1, &r, err);
    for (int i = 0; !rc && i < store_rows_count(r); i++) {
        int64_t enr;
        rc = enroll(tx, store_rows_int(r, i, 0), store_rows_text(r, i, 1), lead_id, "new lead", now_ms, &enr, err);
    }
    store_rows_free(r);
    if (rc) return rc;
    /* Apollo enrichment, for tenants that use it: queued with the lead,
     * done off the loop and never in ingestion's way */
    store_val q[] = {SV_I(store_tx_tenant(tx)), SV_I(lead_id), SV_I(now_ms)};
    return store_query(tx,
                       "INSERT INTO lead_enrichments (tenant_id, lead_id, due_at, created_at, updated_at) "
                       "SELECT $1, $2, $3, $3, $3 FROM nurture_settings WHERE tenant_id = $1 "
                       "AND apollo_api_key IS NOT NULL",
                       q, 3, NULL, err);
}

int nurture_enroll_why(store_tx *tx, int64_t sequence_id, int64_t lead_id, const char *why, int64_t now_ms,
                       int64_t *enrollment, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(sequence_id), SV_I(lead_id)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT s.steps, (SELECT COUNT(*) FROM leads l WHERE l.tenant_id = $1 AND l.id = $3 "
                         "AND l.deleted_at IS NULL) FROM nurture_sequences s "
                         "WHERE s.tenant_id = $1 AND s.id = $2 AND s.deleted_at IS NULL AND s.active = 1",
                         p, 3, &r, err);
    if (rc) return rc;
    if (!store_rows_count(r) || store_rows_int(r, 0, 1) == 0) {
        store_rows_free(r);
        err->code = STORE_NOTFOUND;
        snprintf(err->msg, sizeof err->msg, "no such lead, or no such active sequence");
        return STORE_NOTFOUND;
    }
    rc = enroll(tx, sequence_id, store_rows_text(r, 0, 0), lead_id, why ? why : "manual", now_ms, enrollment, err);
    store_rows_free(r);
    return rc;
}

int nurture_enroll(store_tx *tx, int64_t sequence_id, int64_t lead_id, int64_t now_ms, int64_t *enrollment,
                   store_err *err) {
    return nurture_enroll_why(tx, sequence_id, lead_id, "manual", now_ms, enrollment, err);
}

int nurture_exit_lead(store_tx *tx, int64_t lead_id, const char *reason, int64_t now_ms, int *n, store_err *err) {
    *n = 0;
    int64_t tenant = store_tx_tenant(tx);
    /* a reply ends the sequences that end on one; the others branch on it */
    int reply = !strcmp(reason, "replied");
    store_val p[] = {SV_I(tenant), SV_I(lead_id), SV_S(reason), SV_I(now_ms), SV_I(reply)};
    store_rows *r = NULL;
#define EXITING "WHERE tenant_id = $1 AND lead_id = $2 AND state = 'active' AND ($5 = 0 OR sequence_id IN " \
                "(SELECT id FROM nurture_sequences WHERE tenant_id = $1 AND exit_on_reply = 1))"
    /* Every inbound message comes here. PostgreSQL: one UPDATE ...
     * RETURNING. SQLite: its RETURNING builds an ephemeral table on every
     * run, so the ids are SELECTed first (the writer is alone: the UPDATE
     * then changes exactly those rows), and a lead in no sequence, the
     * usual case, costs that SELECT alone. */
    int rc;
    if (store_tx_kind(tx) == STORE_POSTGRES) {
        rc = store_query(tx,
                         "UPDATE nurture_enrollments SET state = 'exited', exit_reason = $3, updated_at = $4 " EXITING
                         " RETURNING id",
                         p, 5, &r, err);
    } else {
        rc = store_query(tx, "SELECT id FROM nurture_enrollments " EXITING, p, 5, &r, err);
        if (!rc && store_rows_count(r))
            rc = store_query(tx,
                             "UPDATE nurture_enrollments SET state = 'exited', exit_reason = $3, updated_at = $4 " EXITING,
                             p, 5, NULL, err);
    }
#undef EXITING
    for (int i = 0; !rc && i < store_rows_count(r); i++) {
        int64_t enr = store_rows_int(r, i, 0);
        store_val q[] = {SV_I(tenant), SV_I(enr), SV_I(now_ms)};
        rc = store_query(tx,
                         "UPDATE nurture_jobs SET state = 'skipped', result = 'enrollment ended', updated_at = $3 "
                         "WHERE tenant_id = $1 AND enrollment_id = $2 AND state = 'queued'",
                         q, 3, NULL, err);
        if (rc) break;
        json_t *ev = json_pack("{s:I, s:I, s:s}", "enrollment_id", (json_int_t)enr, "lead_id", (json_int_t)lead_id,
                               "reason", reason);
        rc = leads_event(tx, "nurture.exited", ev, err);
        json_decref(ev);
        (*n)++;
    }
    store_rows_free(r);
    return rc;
}

int nurture_on_lead_changed(store_tx *tx, int64_t lead_id, int64_t now_ms, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(lead_id)};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT status, dnd FROM leads WHERE tenant_id = $1 AND id = $2", p, 2, &r, err);
    if (rc || !store_rows_count(r)) {
        store_rows_free(r);
        return rc;
    }
    char reason[16];
    snprintf(reason, sizeof reason, "%s", store_rows_int(r, 0, 1) ? "dnd" : store_rows_text(r, 0, 0));
    store_rows_free(r);
    int n;
    /* a closed lead (won, lost, abandoned) or one that asked not to be disturbed */
    return strcmp(reason, "open") ? nurture_exit_lead(tx, lead_id, reason, now_ms, &n, err) : STORE_OK;
}

int nurture_on_outbound(store_tx *tx, int64_t lead_id, int64_t activity_id, const char *channel,
                        const char *provider_message_id, int64_t now_ms, store_err *err) {
    if (!channel || (strcmp(channel, "sms") && strcmp(channel, "email") && strcmp(channel, "call"))) return STORE_OK;
    if (provider_message_id && *provider_message_id) {
        /* GoHighLevel echoes the messages sent through it as OutboundMessage
         * events: one of ours is not the agent taking over */
        store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(lead_id), SV_S(provider_message_id), SV_I(activity_id)};
        store_rows *r = NULL;
        int rc = store_query(tx,
                             "SELECT COUNT(*) FROM activities WHERE tenant_id = $1 AND lead_id = $2 "
                             "AND provider_message_id = $3 AND id <> $4",
                             p, 4, &r, err);
        int64_t ours = rc ? 0 : store_rows_int(r, 0, 0);
        store_rows_free(r);
        if (rc || ours) return rc;
    }
    int n;
    return nurture_exit_lead(tx, lead_id, "agent_takeover", now_ms, &n, err);
}
