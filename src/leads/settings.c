/* GET/PATCH /v1/settings: a tenant's lead settings — routing mode, the
 * default country for phone numbers, and how GoHighLevel webhooks are
 * authenticated (signed with GHL's keys or the tenant's own, or a shared
 * token for unsigned workflow webhooks). The token is write-only: only its
 * SHA-256 is kept. */
#include <stdio.h>
#include <string.h>

#include "app/app.h"
#include "auth/sig.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "leads.h"
#include "normalize.h"

static json_t *settings_json(const tenant_settings *ts) {
    return json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:f}", "routing_mode", ts->routing_mode, "default_country",
                     ts->default_country, "ghl_mode", ts->ghl_mode, "ghl_token_set", ts->ghl_token_hash[0] != 0,
                     "ghl_ed25519_public_key", ts->ghl_ed25519_pem ? "custom" : "ghl-published",
                     "ghl_rsa_public_key", ts->ghl_rsa_pem ? "custom" : "ghl-published", "hot_threshold",
                     ts->hot_threshold);
}

static int get_tx(store_tx *tx, api_job *j, store_err *err) {
    tenant_settings ts;
    int rc = leads_settings_load(tx, &ts, err);
    if (!rc) j->out = settings_json(&ts);
    leads_settings_free(&ts);
    return rc;
}

static void h_get(http_req *q, app *a, const auth_principal *p, void *ud) {
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->fn = get_tx;
    api_job_run(q, j);
}

/* The values to store; NULL pointers leave a setting as it is. */
typedef struct patch {
    const char *routing_mode, *default_country, *ghl_mode;
    char token_hash[65];
    int token_set, token_clear;
    const char *ed_pem, *rsa_pem;
    int ed_clear, rsa_clear;
    double hot_threshold; /* 0: unchanged */
    char slug[65];
} patch;

static int patch_tx(store_tx *tx, api_job *j, store_err *err) {
    patch *p = j->extra;
    tenant_settings ts;
    int rc = leads_settings_load(tx, &ts, err);
    if (rc) return rc;
    if (p->routing_mode) snprintf(ts.routing_mode, sizeof ts.routing_mode, "%s", p->routing_mode);
    if (p->default_country) snprintf(ts.default_country, sizeof ts.default_country, "%s", p->default_country);
    if (p->ghl_mode) snprintf(ts.ghl_mode, sizeof ts.ghl_mode, "%s", p->ghl_mode);
    if (p->token_set) memcpy(ts.ghl_token_hash, p->token_hash, sizeof ts.ghl_token_hash);
    if (p->token_clear) ts.ghl_token_hash[0] = 0;
    if (p->hot_threshold > 0) ts.hot_threshold = p->hot_threshold;
    if (p->ed_pem || p->ed_clear) {
        eh_free(ts.ghl_ed25519_pem);
        ts.ghl_ed25519_pem = p->ed_pem ? eh_strdup(p->ed_pem) : NULL;
    }
    if (p->rsa_pem || p->rsa_clear) {
        eh_free(ts.ghl_rsa_pem);
        ts.ghl_rsa_pem = p->rsa_pem ? eh_strdup(p->rsa_pem) : NULL;
    }
    if (!strcmp(ts.ghl_mode, "token") && !ts.ghl_token_hash[0]) {
        leads_settings_free(&ts);
        return api_job_fail(j, 422, "validation_failed", "ghl_mode \"token\" needs ghl_token");
    }
    store_val v[] = {SV_I(store_tx_tenant(tx)), SV_S(ts.routing_mode), SV_S(ts.default_country), SV_S(ts.ghl_mode),
                     SV_S(ts.ghl_token_hash[0] ? ts.ghl_token_hash : NULL), SV_S(ts.ghl_ed25519_pem),
                     SV_S(ts.ghl_rsa_pem), SV_I(clock_wall_ms()), SV_D(ts.hot_threshold)};
    rc = store_query(tx,
                     "INSERT INTO tenant_settings (tenant_id, routing_mode, default_country, ghl_mode, ghl_token_hash, "
                     "ghl_ed25519_pem, ghl_rsa_pem, updated_at, hot_threshold) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                     "ON CONFLICT (tenant_id) DO UPDATE SET routing_mode = excluded.routing_mode, "
                     "default_country = excluded.default_country, ghl_mode = excluded.ghl_mode, "
                     "ghl_token_hash = excluded.ghl_token_hash, ghl_ed25519_pem = excluded.ghl_ed25519_pem, "
                     "ghl_rsa_pem = excluded.ghl_rsa_pem, updated_at = excluded.updated_at, "
                     "hot_threshold = excluded.hot_threshold",
                     v, 9, NULL, err);
    if (!rc) {
        j->out = settings_json(&ts);
        /* The event says what changed, never the token or key material. */
        json_t *ev = json_deep_copy(j->out);
        rc = leads_event(tx, "settings.updated", ev, err);
        json_decref(ev);
    }
    leads_settings_free(&ts);
    return rc;
}

static void patch_done_cb(http_req *q, api_job *j) {
    patch *p = j->extra;
    /* Webhook checks must see the new keys and mode now, not in 30 s. */
    leads_ctx_forget(j->a->leads, p->slug);
    json_t *out = j->out;
    j->out = NULL;
    http_reply_json(q, 200, out);
}

static int key_ok(const char *pem, int want) {
    sig_key *k = NULL;
    int ok = sig_key_load(pem, strlen(pem), &k, NULL, 0) == SIG_OK && (int)sig_key_kind(k) == want;
    sig_key_free(k);
    return ok;
}

static void h_patch(http_req *q, app *a, const auth_principal *pr, void *ud) {
    json_t *in = http_req_json(q);
    if (!in) return;
    patch *p = eh_calloc(1, sizeof *p);
    json_t *errors = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v) {
        const char *s = json_string_value(v);
        if (!strcmp(key, "routing_mode")) {
            if (!s || (strcmp(s, "off") && strcmp(s, "round_robin") && strcmp(s, "least_loaded")))
                json_object_set_new(errors, key, json_string("one of off, round_robin, least_loaded"));
            else p->routing_mode = s;
        } else if (!strcmp(key, "default_country")) {
            char tmp[8];
            if (!s || strlen(s) != 2 || norm_phone_e164("2025550123", s, tmp, sizeof tmp) == NORM_BADARG)
                json_object_set_new(errors, key, json_string("a supported two-letter country code (US, CA, GB, ...)"));
            else p->default_country = s;
        } else if (!strcmp(key, "ghl_mode")) {
            if (!s || (strcmp(s, "signed") && strcmp(s, "token")))
                json_object_set_new(errors, key, json_string("signed or token"));
            else p->ghl_mode = s;
        } else if (!strcmp(key, "ghl_token")) {
            if (json_is_null(v)) p->token_clear = 1;
            else if (!s || strlen(s) < 16 || strlen(s) > 128)
                json_object_set_new(errors, key, json_string("16-128 characters"));
            else {
                auth_key_hash(s, strlen(s), p->token_hash);
                p->token_set = 1;
            }
        } else if (!strcmp(key, "ghl_ed25519_public_key") || !strcmp(key, "ghl_rsa_public_key")) {
            int ed = key[4] == 'e';
            if (json_is_null(v)) {
                if (ed) p->ed_clear = 1;
                else p->rsa_clear = 1;
            } else if (!s || strlen(s) > SIG_KEY_TEXT_MAX || !key_ok(s, ed ? SIG_KEY_ED25519 : SIG_KEY_RSA)) {
                json_object_set_new(errors, key, json_string(ed ? "an Ed25519 public key (PEM)" : "an RSA public key (PEM, 2048-8192 bits)"));
            } else if (ed) {
                p->ed_pem = s;
            } else {
                p->rsa_pem = s;
            }
        } else if (!strcmp(key, "hot_threshold")) {
            double d = json_is_number(v) ? json_number_value(v) : -1;
            if (!(d > 0 && d <= 1)) json_object_set_new(errors, key, json_string("a probability in (0, 1]"));
            else p->hot_threshold = d;
        } else {
            json_object_set_new(errors, key, json_string("unknown setting"));
        }
    }
    if (json_object_size(errors) || !p) {
        eh_free(p);
        json_decref(in);
        http_reply_json(q, 422, json_pack("{s:{s:s, s:s, s:s, s:o}}", "error", "code", "validation_failed", "message",
                                          "some settings are invalid", "request_id", http_req_id(q), "fields", errors));
        return;
    }
    json_decref(errors);
    snprintf(p->slug, sizeof p->slug, "%s", pr->tenant_slug);
    api_job *j = api_job_new(a, pr);
    if (!j) {
        eh_free(p);
        json_decref(in);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    j->in = in; /* p's strings point into in */
    j->extra = p;
    j->extra_free = eh_free;
    j->write = 1;
    j->fn = patch_tx;
    j->on_done = patch_done_cb;
    api_job_run(q, j);
}

static const http_route_doc d_get = {"The tenant's lead settings (routing, default country, GHL webhook mode and keys)",
                                     "settings", NULL, "{routing_mode, default_country, ghl_mode, ghl_token_set, ...}"};
static const http_route_doc d_patch = {
    "Change lead settings: routing_mode (off, round_robin, least_loaded), default_country, hot_threshold (0-1], "
    "ghl_mode (signed, token), "
    "ghl_token (write-only), ghl_ed25519_public_key / ghl_rsa_public_key (PEM; null = GHL's published keys)",
    "settings", "settings to change", "the settings"};

int leads_settings_register(app *a) {
    int rc = app_route(a, "GET", "/v1/settings", h_get, NULL, ROLES_ANY, &d_get);
    rc |= app_route(a, "PATCH", "/v1/settings", h_patch, NULL, ROLE_ADMIN, &d_patch);
    return rc ? -1 : 0;
}
