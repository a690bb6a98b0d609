/* Lead routing: which agent gets a new lead, and why. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "leads.h"

int leads_event(store_tx *tx, const char *type, json_t *data, store_err *err) {
    char *s = json_dumps(data, JSON_COMPACT);
    if (!s) {
        if (err) {
            err->code = STORE_NOMEM;
            snprintf(err->msg, sizeof err->msg, "out of memory");
        }
        return STORE_NOMEM;
    }
    /* the seq is not needed: the row is written with the transaction's others */
    int rc = store_event_append(tx, type, s, NULL, err);
    free(s);
    return rc;
}

int leads_settings_load(store_tx *tx, tenant_settings *s, store_err *err) {
    memset(s, 0, sizeof *s);
    strcpy(s->routing_mode, "round_robin");
    strcpy(s->default_country, "US");
    strcpy(s->ghl_mode, "signed");
    s->hot_threshold = 0.7;
    store_val p[] = {SV_I(store_tx_tenant(tx))};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT routing_mode, default_country, ghl_mode, ghl_token_hash, "
                         "ghl_ed25519_pem, ghl_rsa_pem, hot_threshold FROM tenant_settings WHERE tenant_id = $1",
                         p, 1, &r, err);
    if (rc) return rc;
    if (store_rows_count(r) == 1) {
        snprintf(s->routing_mode, sizeof s->routing_mode, "%s", store_rows_text(r, 0, 0));
        snprintf(s->default_country, sizeof s->default_country, "%s", store_rows_text(r, 0, 1));
        snprintf(s->ghl_mode, sizeof s->ghl_mode, "%s", store_rows_text(r, 0, 2));
        if (!store_rows_isnull(r, 0, 3))
            snprintf(s->ghl_token_hash, sizeof s->ghl_token_hash, "%s", store_rows_text(r, 0, 3));
        if (!store_rows_isnull(r, 0, 4)) s->ghl_ed25519_pem = eh_strdup(store_rows_text(r, 0, 4));
        if (!store_rows_isnull(r, 0, 5)) s->ghl_rsa_pem = eh_strdup(store_rows_text(r, 0, 5));
        s->hot_threshold = store_rows_real(r, 0, 6);
    }
    store_rows_free(r);
    return STORE_OK;
}

void leads_settings_free(tenant_settings *s) {
    eh_free(s->ghl_ed25519_pem);
    eh_free(s->ghl_rsa_pem);
    s->ghl_ed25519_pem = s->ghl_rsa_pem = NULL;
}

int leads_route_event_text(buf *out, int64_t lead_id, int64_t agent_id, const char *reason) {
    int rc = buf_puts(out, "{\"lead_id\":");
    rc |= buf_json_int(out, (long long)lead_id);
    if (agent_id) {
        rc |= buf_puts(out, ",\"agent_id\":");
        rc |= buf_json_int(out, (long long)agent_id);
    }
    rc |= buf_puts(out, ",\"reason\":\"");
    rc |= buf_json_str(out, reason, strlen(reason));
    return rc ? rc : buf_puts(out, "\"}");
}

/* The routing event, written as text (on the path of every new lead). */
static int route_event(store_tx *tx, int64_t lead_id, int64_t agent_id, const char *reason, store_err *err) {
    buf b;
    buf_init(&b, 4096);
    int rc = leads_route_event_text(&b, lead_id, agent_id, reason);
    if (rc) {
        buf_free(&b);
        err->code = STORE_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return STORE_NOMEM;
    }
    rc = store_event_append(tx, agent_id ? "lead.assigned" : "lead.unassigned", b.p, NULL, err);
    buf_free(&b);
    return rc;
}

/* 1 if the two JSON arrays of strings share an item (case-insensitive). */
static int overlap(json_t *a, json_t *b) {
    size_t i, j;
    json_t *x, *y;
    json_array_foreach(a, i, x) json_array_foreach(b, j, y) {
        if (json_is_string(x) && json_is_string(y) &&
            strcasecmp(json_string_value(x), json_string_value(y)) == 0)
            return 1;
    }
    return 0;
}

static int has_lang(json_t *langs, const char *lang) {
    size_t i;
    json_t *x;
    if (!lang || !*lang) return 0;
    json_array_foreach(langs, i, x) {
        if (json_is_string(x) && strncasecmp(json_string_value(x), lang, 2) == 0) return 1;
    }
    return 0;
}

/* Routes lead_id given its areas (a JSON array or NULL; borrowed) and
 * language. The tenant's mode comes with the agents in one statement: a
 * lead write is on the webhook hot path. */
static int route(store_tx *tx, int64_t lead_id, json_t *lead_areas, const char *lang, const char *why,
                 int64_t now_ms, int64_t *agent_id, store_err *err) {
    *agent_id = 0;
    int64_t t = store_tx_tenant(tx);
    store_rows *ar = NULL;
    store_val ap[] = {SV_I(t)};
    /* One row per active agent, each with the mode; one row with NULL agent
     * columns when there is none. In no particular order: an ORDER BY here
     * cost SQLite a temporary b-tree per new lead; ties go to the lowest id
     * below instead. */
    int rc = store_query(tx,
                         "SELECT s.mode, a.id, a.capacity, a.areas, a.languages, a.last_assigned_at, "
                         "(SELECT COUNT(*) FROM leads l WHERE l.tenant_id = a.tenant_id AND "
                         "l.agent_id = a.id AND l.status = 'open' AND l.deleted_at IS NULL) "
                         "FROM (SELECT COALESCE((SELECT routing_mode FROM tenant_settings WHERE tenant_id = $1), "
                         "'round_robin') AS mode) s "
                         "LEFT JOIN agents a ON a.tenant_id = $1 AND a.active = 1 AND a.deleted_at IS NULL",
                         ap, 1, &ar, err);
    if (rc) return rc;
    const char *mode = store_rows_count(ar) ? store_rows_text(ar, 0, 0) : "round_robin";
    if (strcmp(mode, "off") == 0) {
        store_rows_free(ar);
        return STORE_OK;
    }
    int best = -1, best_pref = -1;
    double best_load = 2.0;
    int64_t best_last = 0;
    int least_loaded = strcmp(mode, "least_loaded") == 0;
    int n = store_rows_count(ar);
    int pref_area = 0, pref_lang = 0;
    for (int i = 0; i < n; i++) {
        if (store_rows_isnull(ar, i, 1)) continue; /* no agent at all */
        int64_t cap = store_rows_int(ar, i, 2), load = store_rows_int(ar, i, 6);
        if (load >= cap) continue;
        json_t *areas = json_loads(store_rows_text(ar, i, 3), 0, NULL);
        json_t *langs = json_loads(store_rows_text(ar, i, 4), 0, NULL);
        int a_match = json_is_array(lead_areas) && json_is_array(areas) && overlap(lead_areas, areas);
        int l_match = json_is_array(langs) && has_lang(langs, lang);
        json_decref(areas);
        json_decref(langs);
        int pref = 2 * a_match + l_match;
        double ratio = cap ? (double)load / (double)cap : 1.0;
        int64_t last = store_rows_int(ar, i, 5);
        /* Preference first; then round robin (least recently assigned) or
         * least loaded (lowest load/capacity), each tie-broken by the other. */
        int64_t id = store_rows_int(ar, i, 1);
        int better;
        if (pref != best_pref) better = pref > best_pref;
        else if (least_loaded) better = ratio < best_load || (ratio == best_load && last < best_last);
        else better = last < best_last || (last == best_last && ratio < best_load);
        /* a full tie: the lowest id, as when the rows came in id order */
        if (!better && best >= 0 && pref == best_pref && ratio == best_load && last == best_last)
            better = id < store_rows_int(ar, best, 1);
        if (best < 0 || better) {
            best = i;
            best_pref = pref;
            best_load = ratio;
            best_last = last;
            pref_area = a_match;
            pref_lang = l_match;
        }
    }
    char reason[256];
    if (best < 0) {
        store_rows_free(ar);
        snprintf(reason, sizeof reason, "%s: no active agent with free capacity", why);
        return route_event(tx, lead_id, 0, reason, err);
    }
    int64_t aid = store_rows_int(ar, best, 1);
    int64_t load = store_rows_int(ar, best, 6), cap = store_rows_int(ar, best, 2);
    store_rows_free(ar);
    snprintf(reason, sizeof reason, "%s; %s%s%s; load %lld/%lld", why,
             least_loaded ? "least loaded" : "round robin", pref_area ? ", covers the lead's area" : "",
             pref_lang ? ", speaks the lead's language" : "", (long long)load, (long long)cap);
    store_val up[] = {SV_I(t), SV_I(lead_id), SV_I(aid), SV_I(now_ms)};
    rc = store_query(tx, "UPDATE leads SET agent_id = $3, updated_at = $4, version = version + 1 "
                         "WHERE tenant_id = $1 AND id = $2", up, 4, NULL, err);
    store_val ag[] = {SV_I(t), SV_I(aid), SV_I(now_ms)};
    if (!rc)
        rc = store_query(tx, "UPDATE agents SET last_assigned_at = $3 WHERE tenant_id = $1 AND id = $2",
                         ag, 3, NULL, err);
    if (rc) return rc;
    rc = route_event(tx, lead_id, aid, reason, err);
    if (!rc) *agent_id = aid;
    return rc;
}

int leads_route(store_tx *tx, int64_t lead_id, const char *why, int64_t now_ms, int64_t *agent_id,
                store_err *err) {
    *agent_id = 0;
    store_val lp[] = {SV_I(store_tx_tenant(tx)), SV_I(lead_id)};
    store_rows *lr = NULL;
    int rc = store_query(tx, "SELECT areas, language FROM leads WHERE tenant_id = $1 AND id = $2", lp, 2, &lr, err);
    if (rc) return rc;
    if (store_rows_count(lr) == 0) {
        store_rows_free(lr);
        return STORE_OK;
    }
    json_t *lead_areas = json_loads(store_rows_text(lr, 0, 0), 0, NULL);
    char lang[17] = "";
    if (!store_rows_isnull(lr, 0, 1)) snprintf(lang, sizeof lang, "%s", store_rows_text(lr, 0, 1));
    store_rows_free(lr);
    rc = route(tx, lead_id, lead_areas, lang, why, now_ms, agent_id, err);
    json_decref(lead_areas);
    return rc;
}

int leads_route_lead(store_tx *tx, json_t *lead, const char *why, int64_t now_ms, int64_t *agent_id,
                     store_err *err) {
    json_t *lang = json_object_get(lead, "language");
    return route(tx, json_integer_value(json_object_get(lead, "id")), json_object_get(lead, "areas"),
                 json_is_string(lang) ? json_string_value(lang) : "", why, now_ms, agent_id, err);
}

int leads_reassign_from(store_tx *tx, int64_t agent_id, int64_t now_ms, int *moved, store_err *err) {
    *moved = 0;
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(agent_id), SV_I(now_ms)};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT id FROM leads WHERE tenant_id = $1 AND agent_id = $2 AND "
                             "status = 'open' AND deleted_at IS NULL ORDER BY id", p, 2, &r, err);
    if (rc) return rc;
    /* a change like any other: new version (ETags go stale), updated_at */
    rc = store_query(tx, "UPDATE leads SET agent_id = NULL, version = version + 1, updated_at = $3 "
                         "WHERE tenant_id = $1 AND agent_id = $2 AND status = 'open' AND deleted_at IS NULL",
                     p, 3, NULL, err);
    for (int i = 0; rc == STORE_OK && i < store_rows_count(r); i++) {
        int64_t to;
        rc = leads_route(tx, store_rows_int(r, i, 0), "reassigned: previous agent deactivated", now_ms, &to, err);
        if (!rc) (*moved)++;
    }
    store_rows_free(r);
    return rc;
}
