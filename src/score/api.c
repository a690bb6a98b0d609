/* GET /v1/leads/{id}/score, POST /predict-churn (the old churn server's
 * route) and /v1/predict-churn, POST /v1/models/{name}/train for the
 * built-in models. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "realtime/realtime.h"
#include "score.h"

static int get_tx(store_tx *tx, api_job *j, store_err *err) { return score_get(tx, j->id, &j->out, err); }

static void h_score(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = api_parse_id(http_req_param(q, "id"));
    if (id < 0) {
        http_reply_error(q, 400, "invalid_id", "the lead id must be a positive integer");
        return;
    }
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->id = id;
    j->fn = get_tx;
    api_job_run(q, j);
}

/* The request's audit entry, written in the transaction that stores or
 * activates the version (score_also), so the two commit together. */
typedef struct audit_in_tx {
    const app_write_audit *wa;
    int status;
} audit_in_tx;

static int audit_version(store_tx *tx, void *ud, int version, store_err *err) {
    const audit_in_tx *x = ud;
    json_t *extra = json_pack("{s:i}", "version", version);
    int rc = extra ? app_write_audit_append(tx, x->wa, x->status, NULL, extra, err) : STORE_NOMEM;
    json_decref(extra);
    return rc;
}

typedef struct train_job {
    app *a;
    char name[32];
    int64_t tenant;
    char by[128];
    uint64_t seed;
    int rc;
    int rescored;
    json_t *report;
    char err[512];
    app_write_audit *wa;
} train_job;

static void train_work(void *arg) {
    train_job *t = arg;
    audit_in_tx ax = {t->wa, 201};
    score_also also = {audit_version, &ax};
    t->rc = score_train(t->a->st, t->a->score, t->tenant, t->name, t->by, t->seed, clock_wall_ms(), &t->report,
                        t->wa ? &also : NULL, t->err, sizeof t->err);
    /* lead scores are stored, so a new model re-scores the open leads;
     * churn is computed when asked */
    if (t->rc == 0 && !strcmp(t->name, SCORE_MODEL)) {
        store_err se = {0};
        if (score_rescore_open(t->a->st, t->tenant, clock_wall_ms(), &t->rescored, &se))
            snprintf(t->err, sizeof t->err, "trained, but re-scoring open leads failed: %s", se.msg);
        json_object_set_new(t->report, "rescored", json_integer(t->rescored));
    }
}

static void train_done(http_req *q, void *arg) {
    train_job *t = arg;
    if (t->rc == 0) {
        log_line l;
        if (log_begin(t->a->log, &l, LOG_INFO, "built-in model trained")) {
            log_str(&l, "model", t->name);
            log_int(&l, "tenant", t->tenant);
            log_int(&l, "version", json_integer_value(json_object_get(t->report, "version")));
            log_int(&l, "rescored", t->rescored);
            log_end(&l);
        }
        if (t->err[0]) log_msg(t->a->log, LOG_WARN, "re-scoring after training", t->err);
        http_reply_json(q, 201, t->report);
        t->report = NULL;
    } else if (t->rc == 1) {
        json_t *e = json_pack("{s:{s:s, s:s, s:O, s:s}}", "error", "code", "not_enough_outcomes", "message", t->err,
                              "details", t->report, "request_id", http_req_id(q));
        http_reply_json(q, 409, e);
    } else {
        log_msg(t->a->log, LOG_ERROR, "built-in model training failed", t->err);
        http_reply_error(q, 500, "training_failed", t->err);
    }
    json_decref(t->report);
    app_write_audit_free(t->wa);
    eh_free(t);
}

static void h_train(http_req *q, app *a, const auth_principal *p, void *ud) {
    const char *name = http_req_param(q, "name");
    if (!score_builtin(name)) {
        http_reply_error(q, 404, "unknown_model",
                         "built-in models that train on your data: lead_scoring, churn, property_value");
        return;
    }
    uint64_t seed = 42;
    size_t len = 0;
    http_req_body(q, &len);
    if (len) {
        json_t *in = http_req_json(q);
        if (!in) return;
        json_t *s = json_object_get(in, "seed");
        int bad = !json_is_object(in) || (s && (!json_is_integer(s) || json_integer_value(s) < 0));
        if (!bad && s) seed = (uint64_t)json_integer_value(s);
        json_decref(in);
        if (bad) {
            http_reply_error(q, 422, "validation_failed", "the body is optional: {\"seed\": non-negative integer}");
            return;
        }
    }
    train_job *t = eh_calloc(1, sizeof *t);
    if (!t) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    t->a = a;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->tenant = p->tenant;
    t->seed = seed;
    t->wa = app_write_audit_new(q, p, NULL);
    snprintf(t->by, sizeof t->by, "%s key %lld (%s)", p->tenant_slug, (long long)p->key_id, auth_role_name(p->role));
    if (http_req_work(q, train_work, train_done, t)) {
        app_write_audit_free(t->wa);
        eh_free(t);
        http_reply_error(q, 503, "overloaded", "cannot schedule training");
    }
}

/* ---- the tenant's built-in models ---- */

typedef struct models_job {
    app *a;
    int64_t tenant;
    char name[65];
    int version, status;
    json_t *out;
    char err[256];
    char by[128];        /* activate */
    app_write_audit *wa; /* activate */
} models_job;

static void list_work(void *arg) {
    models_job *m = arg;
    m->out = score_models(m->a->score, m->tenant);
}

static void list_done(http_req *q, void *arg) {
    models_job *m = arg;
    if (!m->out) http_reply_error(q, 503, "unavailable", "cannot read the model registry");
    else http_reply_json(q, 200, json_pack("{s:o}", "models", m->out));
    eh_free(m);
}

static void h_models(http_req *q, app *a, const auth_principal *p, void *ud) {
    models_job *m = eh_calloc(1, sizeof *m);
    if (!m) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    m->a = a;
    m->tenant = p->tenant;
    if (http_req_work(q, list_work, list_done, m)) {
        eh_free(m);
        http_reply_error(q, 503, "overloaded", "cannot schedule");
    }
}

static void activate_work(void *arg) {
    models_job *m = arg;
    audit_in_tx ax = {m->wa, 200};
    score_also also = {audit_version, &ax};
    m->status = score_activate(m->a->score, m->tenant, m->name, m->version, m->by, m->wa ? &also : NULL, m->err,
                               sizeof m->err);
}

static void activate_done(http_req *q, void *arg) {
    models_job *m = arg;
    if (m->status) {
        http_reply_error(q, m->status, m->status == 404 ? "unknown_version" : "unavailable", m->err);
    } else {
        log_line l;
        if (log_begin(m->a->log, &l, LOG_INFO, "built-in model activated")) {
            log_str(&l, "model", m->name);
            log_int(&l, "tenant", m->tenant);
            log_int(&l, "version", m->version);
            log_end(&l);
        }
        http_reply_json(q, 200, json_pack("{s:s, s:i}", "model", m->name, "active_version", m->version));
    }
    app_write_audit_free(m->wa);
    eh_free(m);
}

static void h_activate(http_req *q, app *a, const auth_principal *p, void *ud) {
    const char *name = http_req_param(q, "name");
    if (!score_builtin(name)) {
        http_reply_error(q, 404, "unknown_model", "built-in models: lead_scoring, churn, property_value");
        return;
    }
    json_t *in = http_req_json(q);
    if (!in) return;
    json_t *v = json_object_get(in, "version");
    json_int_t version = json_is_integer(v) ? json_integer_value(v) : 0;
    json_decref(in);
    if (version < 1 || version > 1000000) {
        http_reply_error(q, 422, "validation_failed", "{\"version\": a positive integer}");
        return;
    }
    models_job *m = eh_calloc(1, sizeof *m);
    if (!m) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    m->a = a;
    m->tenant = p->tenant;
    m->version = (int)version;
    snprintf(m->name, sizeof m->name, "%s", name);
    m->wa = app_write_audit_new(q, p, NULL);
    snprintf(m->by, sizeof m->by, "%s key %lld (%s)", p->tenant_slug, (long long)p->key_id, auth_role_name(p->role));
    if (http_req_work(q, activate_work, activate_done, m)) {
        app_write_audit_free(m->wa);
        eh_free(m);
        http_reply_error(q, 503, "overloaded", "cannot schedule");
    }
}

/* ---- matching and valuation ---- */

static int matches_tx(store_tx *tx, api_job *j, store_err *err) {
    return score_matches(tx, j->id, j->extra, &j->out, err);
}

static int parse_num(const char *s, double *out) {
    if (!s) return 0;
    char *end;
    double d = strtod(s, &end);
    if (end == s || *end || !isfinite(d)) return -1;
    *out = d;
    return 0;
}

static void h_matches(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = api_parse_id(http_req_param(q, "id"));
    if (id < 0) {
        http_reply_error(q, 400, "invalid_id", "the lead id must be a positive integer");
        return;
    }
    score_match_opts *o = eh_calloc(1, sizeof *o);
    if (!o) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    double limit = 10;
    o->lat = o->lng = NAN;
    const char *bad = NULL;
    if (parse_num(http_req_query(q, "limit"), &limit) || limit < 1 || limit > 50 || limit != floor(limit))
        bad = "limit: an integer from 1 to 50";
    else if (parse_num(http_req_query(q, "radius_km"), &o->radius_km) || o->radius_km < 0 || o->radius_km > 500)
        bad = "radius_km: 0-500";
    else if (parse_num(http_req_query(q, "lat"), &o->lat) || (!isnan(o->lat) && fabs(o->lat) > 90))
        bad = "lat: -90 to 90";
    else if (parse_num(http_req_query(q, "lng"), &o->lng) || (!isnan(o->lng) && fabs(o->lng) > 180))
        bad = "lng: -180 to 180";
    else if (o->radius_km > 0 && (isnan(o->lat) || isnan(o->lng)))
        bad = "radius_km needs lat and lng";
    if (bad) {
        eh_free(o);
        http_reply_error(q, 400, "invalid_query", bad);
        return;
    }
    o->limit = (int)limit;
    api_job *j = api_job_new(a, p);
    if (!j) {
        eh_free(o);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    j->id = id;
    j->extra = o;
    j->extra_free = eh_free;
    j->fn = matches_tx;
    api_job_run(q, j);
}

static int valuation_tx(store_tx *tx, api_job *j, store_err *err) {
    int rc = score_valuation(tx, j->id, &j->out, err);
    if (rc == STORE_INVALID) return api_job_fail(j, 409, "no_model", err->msg);
    return rc;
}

static void h_valuation(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = api_parse_id(http_req_param(q, "id"));
    if (id < 0) {
        http_reply_error(q, 400, "invalid_id", "the listing id must be a positive integer");
        return;
    }
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->id = id;
    j->fn = valuation_tx;
    api_job_run(q, j);
}

/* ---- churn ---- */

/* Raw features need no storage, but the tenant's model may have to be
 * read before its first use on this node: on the pool. */
typedef struct churn_job {
    app *a;
    int64_t tenant;
    json_t *features, *out;
    int bad;
    char err[256];
} churn_job;

static void churn_work(void *arg) {
    churn_job *j = arg;
    j->bad = score_churn_features(j->a->score, j->tenant, j->features, &j->out, j->err, sizeof j->err) != 0;
}

static void churn_done(http_req *q, void *arg) {
    churn_job *j = arg;
    if (j->bad) http_reply_error(q, 422, "invalid_features", j->err);
    else http_reply_json(q, 200, j->out);
    json_decref(j->features);
    eh_free(j);
}

static int churn_tx(store_tx *tx, api_job *j, store_err *err) {
    return score_churn(tx, j->id, clock_wall_ms(), &j->out, err);
}

static void h_churn(http_req *q, app *a, const auth_principal *p, void *ud) {
    json_t *in = http_req_json(q);
    if (!in) return;
    json_t *id = json_object_get(in, "lead_id"), *feats = json_object_get(in, "features");
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v) {
        if (strcmp(key, "lead_id") && strcmp(key, "features")) {
            json_decref(in);
            http_reply_error(q, 422, "validation_failed", "send {\"lead_id\": N} or {\"features\": {...}}");
            return;
        }
    }
    if (!json_is_object(in) || (!id == !feats)) {
        json_decref(in);
        http_reply_error(q, 422, "validation_failed", "send either {\"lead_id\": N} or {\"features\": {...}}");
        return;
    }
    if (feats) {
        churn_job *cj = eh_calloc(1, sizeof *cj);
        if (!cj) {
            json_decref(in);
            http_reply_error(q, 503, "overloaded", "out of memory");
            return;
        }
        cj->a = a;
        cj->tenant = p->tenant;
        cj->features = json_incref(feats);
        json_decref(in);
        if (http_req_work(q, churn_work, churn_done, cj)) {
            json_decref(cj->features);
            eh_free(cj);
            http_reply_error(q, 503, "overloaded", "cannot schedule");
        }
        return;
    }
    int64_t lead = json_is_integer(id) ? json_integer_value(id) : -1;
    json_decref(in);
    if (lead <= 0) {
        http_reply_error(q, 422, "validation_failed", "lead_id: a positive integer");
        return;
    }
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->id = lead;
    j->fn = churn_tx;
    api_job_run(q, j);
}

static const http_route_doc d_churn = {
    "Churn risk of an engaged lead (no inbound reply in the next 14 days): by lead_id or raw engagement features; "
    "probability, risk band, drivers and suggested interventions",
    "scoring", "{lead_id} or {features:{...}}",
    "{probability, risk, kind, version, drivers, interventions, horizon_days}"};
static const http_route_doc d_models = {
    "The tenant's built-in models (lead_scoring, churn, property_value): what serves (model, prior or none), the "
    "active version, every version with its test metrics, rows, trained at/by, and the drift (PSI per feature) of the "
    "rows the active version scored on this node",
    "scoring", NULL, "{models:[{name, serving, active_version, drift:{rows, psi}|null, versions}]}"};
static const http_route_doc d_activate = {
    "Serve another version of a tenant's built-in model (rollback or upgrade); recorded in the store with a "
    "model.activated event, which every node follows",
    "scoring",
    "{version}", "{model, active_version}"};
static const http_route_doc d_matches = {
    "Listings for a lead, best first: hard filters (budget, beds, baths, type, areas or radius_km around lat/lng), "
    "then a soft score from price, size, place and value fits, each with its reason; limit 1-50 (default 10)",
    "scoring", NULL, "{lead_id, candidates, matches:[{listing, score, value, reasons}]}"};
static const http_route_doc d_valuation = {
    "The tenant's property_value estimate of a listing against its asking price, with SHAP reasons (log price)",
    "scoring", NULL, "{listing_id, price, estimate, ratio, model_version, reasons}"};
static const http_route_doc d_score = {
    "A lead's score: probability of converting, kind (model or prior), model version, reasons, threshold, hot, "
    "and its history",
    "scoring", NULL, "{lead_id, score, kind, model_version, reasons, threshold, hot, history}"};
static const http_route_doc d_train = {
    "Train a built-in model on the tenant's data: lead_scoring (won/lost leads; re-scores open leads), churn "
    "(engaged leads and whether they replied) or property_value (priced listings, log price); 409 "
    "not_enough_outcomes below the minimum",
    "scoring", "{seed?}", "the training report: version, rows, features, auc, logloss, brier, ece, rescored"};

/* ---- following activations (this node's and other nodes') ---- */

typedef struct reload_job {
    uv_work_t w;
    app *a;
    int64_t tenant;
    char name[32];
    int rc, version;
    char err[256];
} reload_job;

static void reload_work(uv_work_t *w) {
    reload_job *j = w->data;
    j->rc = score_model_reload(j->a->score, j->tenant, j->name, &j->version, j->err, sizeof j->err);
}

static void reload_done(uv_work_t *w, int status) {
    reload_job *j = w->data;
    log_line l;
    if (status == 0 && log_begin(j->a->log, &l, j->rc ? LOG_ERROR : LOG_INFO,
                                 j->rc ? "cannot load an activated model" : "activated model loaded")) {
        log_int(&l, "tenant", j->tenant);
        log_str(&l, "model", j->name);
        if (j->rc) log_str(&l, "error", j->err);
        else log_int(&l, "version", j->version);
        log_end(&l);
    }
    eh_free(j);
}

static void on_model_event(void *ud, const store_event *ev) {
    if (strcmp(ev->type, "model.activated")) return;
    app *a = ud;
    json_t *p = json_loads(ev->payload, 0, NULL);
    const char *name = json_string_value(json_object_get(p, "name"));
    json_int_t gen = json_integer_value(json_object_get(p, "generation"));
    /* the node that wrote it serves it already; others load it now rather
     * than on the next request */
    if (name && score_builtin(name) && score_model_generation(a->score, ev->tenant, name) < gen) {
        reload_job *j = eh_calloc(1, sizeof *j);
        if (j) {
            j->a = a;
            j->tenant = ev->tenant;
            snprintf(j->name, sizeof j->name, "%s", name);
            j->w.data = j;
            if (uv_queue_work(a->loop, &j->w, reload_work, reload_done)) eh_free(j);
        }
    }
    json_decref(p);
}

int score_registry_start(app *a) { return realtime_subscribe(a, on_model_event, a); }

int score_api_register(app *a) {
    score_ctx_set_metrics(a->score, a->m); /* before any pool thread scores */
    int rc = app_route(a, "GET", "/v1/leads/{id}/score", h_score, NULL, ROLES_ANY, &d_score);
    rc |= app_route(a, "POST", "/v1/models/{name}/train", h_train, NULL, ROLE_ANALYST | ROLE_ADMIN, &d_train);
    rc |= app_route(a, "GET", "/v1/builtin-models", h_models, NULL, ROLES_READ_ALL, &d_models);
    rc |= app_route(a, "POST", "/v1/builtin-models/{name}/activate", h_activate, NULL, ROLE_ANALYST | ROLE_ADMIN,
                    &d_activate);
    rc |= app_route(a, "GET", "/v1/leads/{id}/matches", h_matches, NULL, ROLES_ANY, &d_matches);
    rc |= app_route(a, "GET", "/v1/listings/{id}/valuation", h_valuation, NULL, ROLES_ANY, &d_valuation);
    rc |= app_route(a, "POST", "/predict-churn", h_churn, NULL, ROLES_ANY, &d_churn);
    rc |= app_route(a, "POST", "/v1/predict-churn", h_churn, NULL, ROLES_ANY, &d_churn);
    return rc;
}
