/* Lead upsert and activities: the domain writes shared by the REST API,
 * the GoHighLevel webhooks and CSV import. */
#include <stdio.h>
#include <string.h>

#include "leads.h"
#include "base/alloc.h"
#include "coach/coach.h"
#include "nurture/nurture.h"
#include "score/score.h"

static const store_val *val_of(const ent_vals *v, const char *name) {
    int i = ent_field(v->e, name);
    if (i < 0 || !v->present[i] || v->v[i].t == SV_NULL) return NULL;
    return &v->v[i];
}

/* The tenant's live lead with the same GHL contact id, else email, else
 * phone: GHL's duplicate rules, most specific first. One statement of
 * three scalar subqueries, each planned on its own as a lookup in its
 * partial index (leads_email and leads_phone hold id: index-only; leads_ghl
 * is unique among live leads, so it needs no ORDER BY, which made
 * PostgreSQL walk leads_list instead on fresh tables); a key the input
 * lacks is bound as NULL and matches nothing. */
static int find_duplicate(store_tx *tx, const ent_vals *v, int64_t *id, store_err *err) {
    static const char *const keys[] = {"ghl_contact_id", "email", "phone"};
    *id = 0;
    store_val p[4] = {SV_I(store_tx_tenant(tx)), SV_NULLV, SV_NULLV, SV_NULLV};
    int any = 0;
    for (int k = 0; k < 3; k++) {
        const store_val *sv = val_of(v, keys[k]);
        if (sv) {
            p[k + 1] = *sv;
            any = 1;
        }
    }
    if (!any) return STORE_OK;
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT (SELECT id FROM leads WHERE tenant_id = $1 AND ghl_contact_id = $2 "
                         "AND deleted_at IS NULL LIMIT 1), "
                         "(SELECT id FROM leads WHERE tenant_id = $1 AND email = $3 "
                         "AND deleted_at IS NULL ORDER BY id LIMIT 1), "
                         "(SELECT id FROM leads WHERE tenant_id = $1 AND phone = $4 "
                         "AND deleted_at IS NULL ORDER BY id LIMIT 1)",
                         p, 4, &r, err);
    if (rc) return rc;
    for (int k = 0; k < 3 && !*id && store_rows_count(r); k++)
        if (!store_rows_isnull(r, 0, k)) *id = store_rows_int(r, 0, k);
    store_rows_free(r);
    return STORE_OK;
}

/* An agent reference must name one of the tenant's live agents: the
 * foreign key alone would accept another tenant's agent id. */
static int check_agent_ref(store_tx *tx, const ent_vals *v, store_err *err) {
    int i = ent_field(v->e, "agent_id");
    if (i < 0 || !v->present[i] || v->v[i].t == SV_NULL) return STORE_OK;
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(v->v[i].i)};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT 1 FROM agents WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL", p, 2,
                         &r, err);
    if (rc) return rc;
    int found = store_rows_count(r) > 0;
    store_rows_free(r);
    if (found) return STORE_OK;
    snprintf(err->msg, sizeof err->msg, "agent_id: no such agent");
    err->code = STORE_INVALID;
    return STORE_INVALID;
}

int leads_upsert(store_tx *tx, const ent_vals *v, int64_t now_ms, int64_t *id, int *created,
                 store_err *err) {
    int64_t dup;
    int rc = check_agent_ref(tx, v, err);
    if (rc) return rc;
    if ((rc = find_duplicate(tx, v, &dup, err))) return rc;
    json_t *lead = NULL;
    if (dup) {
        *created = 0;
        *id = dup;
        if ((rc = ent_update(tx, v, dup, 0, now_ms, err))) return rc;
        if ((rc = ent_get(tx, &entity_lead, dup, &lead, err))) return rc;
        json_t *ev = json_pack("{s:O, s:s}", "lead", lead, "via", "upsert");
        rc = leads_event(tx, "lead.updated", ev, err);
        json_decref(ev);
        json_decref(lead);
        if (!rc) rc = nurture_on_lead_changed(tx, dup, now_ms, err);
        return rc ? rc : score_lead(tx, dup, now_ms, err);
    }
    *created = 1;
    /* the new row comes back from the INSERT itself, and routing reads the
     * lead's areas and language from it */
    char *text;
    if ((rc = ent_insert_row_text(tx, v, now_ms, id, NULL, &text, err))) return rc;
    /* the event's text comes from the row, without a JSON tree of it */
    rc = store_event_append(tx, "lead.created", text, NULL, err);
    eh_free(text);
    if (!rc && !val_of(v, "agent_id")) {
        /* routing reads the lead's id, areas and language: as inserted
         * (an absent areas is the column's [], which matches no agent's
         * areas, as a missing one does) */
        const store_val *areas = val_of(v, "areas"), *lang = val_of(v, "language");
        lead = json_pack("{s:I}", "id", (json_int_t)*id);
        if (lead && areas && areas->t == SV_TEXT)
            json_object_set_new(lead, "areas", json_loadb(areas->s, areas->n, 0, NULL));
        if (lead && lang && lang->t == SV_TEXT) json_object_set_new(lead, "language", json_stringn(lang->s, lang->n));
        int64_t agent;
        rc = lead ? leads_route_lead(tx, lead, "new lead", now_ms, &agent, err) : STORE_NOMEM;
        json_decref(lead);
    }
    /* speed to lead: the first touch is queued with the lead itself */
    if (!rc) rc = nurture_on_new_lead(tx, *id, now_ms, err);
    /* nothing above adds an activity: the new lead has none to read */
    return rc ? rc : score_new_lead(tx, *id, now_ms, err);
}

int leads_add_activity(store_tx *tx, int64_t lead_id, const activity_in *a, int64_t now_ms,
                       int64_t *id, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(lead_id), SV_S(a->channel), SV_S(a->direction),
                     SV_S(a->body), SV_S(a->status), SV_S(a->provider_message_id), SV_S(a->ghl_id),
                     SV_I(a->occurred_at ? a->occurred_at : now_ms), SV_I(now_ms)};
    store_rows *r = NULL;
    int rc = store_insert_returning(tx,
                                    "INSERT INTO activities (tenant_id, lead_id, channel, direction, body, status, "
                                    "provider_message_id, ghl_id, occurred_at, created_at) "
                                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                                    "activities", "id", p, 10, &r, err);
    if (rc) return rc;
    *id = store_rows_int(r, 0, 0);
    store_rows_free(r);
    /* The event carries no message body: bodies are personal data, and
     * consumers that need one read it through the API. */
    json_t *ev = json_pack("{s:I, s:I, s:s, s:s, s:s?, s:I}", "id", (json_int_t)*id, "lead_id",
                           (json_int_t)lead_id, "channel", a->channel, "direction", a->direction,
                           "status", a->status, "occurred_at",
                           (json_int_t)(a->occurred_at ? a->occurred_at : now_ms));
    rc = leads_event(tx, "activity.created", ev, err);
    json_decref(ev);
    /* a reply ends the lead's sequences (a person takes over), and the
     * agent is coached on it at once */
    if (!rc && !strcmp(a->direction, "inbound")) {
        int n;
        rc = nurture_exit_lead(tx, lead_id, "replied", now_ms, &n, err);
        if (!rc && strcmp(a->channel, "task") && strcmp(a->channel, "appointment")) rc = coach_on_inbound(tx, lead_id, err);
    }
    /* a message or call by the agent: a person took over from the sequence */
    if (!rc && !strcmp(a->direction, "outbound") && !a->automated)
        rc = nurture_on_outbound(tx, lead_id, *id, a->channel, a->provider_message_id, now_ms, err);
    /* messages, calls and appointments are what the score reads most */
    return rc ? rc : score_lead(tx, lead_id, now_ms, err);
}

json_t *leads_activity_json(const store_rows *r, int row) {
    json_t *o = json_object();
    const char *names[] = {"id", "lead_id", "channel", "direction", "body", "status", "provider_message_id",
                           "occurred_at", "created_at"};
    for (int c = 0; c < 9; c++) {
        json_t *v;
        if (store_rows_isnull(r, row, c)) v = json_null();
        else if (c == 0 || c == 1 || c == 7 || c == 8) v = json_integer(store_rows_int(r, row, c));
        else v = json_string(store_rows_text(r, row, c));
        json_object_set_new(o, names[c], v);
    }
    return o;
}
