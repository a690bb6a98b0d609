/* GET /v1/leads/{id}/score and POST /v1/models/lead_scoring/train. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "score.h"

static int get_tx(store_tx *tx, api_job *j, store_err *err) { return score_get(tx, j->id, &j->out, err); }

static void h_score(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = api_parse_id(http_req_param(q, "id"));
    if (id < 0) {
        http_reply_error(q, 400, "invalid_id", "the lead id must be a positive integer");
        return;
    }
    api_job *j = api_job_new(a, p);
    if (!j) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    j->id = id;
    j->fn = get_tx;
    api_job_run(q, j);
}

typedef struct train_job {
    app *a;
    int64_t tenant;
    char by[128];
    uint64_t seed;
    int rc;
    int rescored;
    json_t *report;
    char err[512];
} train_job;

static void train_work(void *arg) {
    train_job *t = arg;
    t->rc = score_train(t->a->st, t->a->score, t->tenant, t->by, t->seed, &t->report, t->err, sizeof t->err);
    if (t->rc == 0) {
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
        if (log_begin(t->a->log, &l, LOG_INFO, "lead_scoring trained")) {
            log_int(&l, "tenant", t->tenant);
            log_int(&l, "version", json_integer_value(json_object_get(t->report, "version")));
            log_int(&l, "rescored", t->rescored);
            log_end(&l);
        }
        if (t->err[0]) log_msg(t->a->log, LOG_WARN, "lead_scoring re-scoring", t->err);
        http_reply_json(q, 201, t->report);
        t->report = NULL;
    } else if (t->rc == 1) {
        json_t *e = json_pack("{s:{s:s, s:s, s:O, s:s}}", "error", "code", "not_enough_outcomes", "message", t->err,
                              "details", t->report, "request_id", http_req_id(q));
        http_reply_json(q, 409, e);
    } else {
        log_msg(t->a->log, LOG_ERROR, "lead_scoring training failed", t->err);
        http_reply_error(q, 500, "training_failed", t->err);
    }
    json_decref(t->report);
    eh_free(t);
}

static void h_train(http_req *q, app *a, const auth_principal *p, void *ud) {
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
    t->tenant = p->tenant;
    t->seed = seed;
    snprintf(t->by, sizeof t->by, "%s key %lld (%s)", p->tenant_slug, (long long)p->key_id, auth_role_name(p->role));
    if (http_req_work(q, train_work, train_done, t)) {
        eh_free(t);
        http_reply_error(q, 503, "overloaded", "cannot schedule training");
    }
}

static const http_route_doc d_score = {
    "A lead's score: probability of converting, kind (model or prior), model version, reasons, threshold, hot, "
    "and its history",
    "scoring", NULL, "{lead_id, score, kind, model_version, reasons, threshold, hot, history}"};
static const http_route_doc d_train = {
    "Train the tenant's lead_scoring model from its won/lost leads; serves it and re-scores open leads "
    "(409 not_enough_outcomes below the minimum)",
    "scoring", "{seed?}", "the training report: version, rows, features, auc, logloss, brier, ece, rescored"};

int score_api_register(app *a) {
    int rc = app_route(a, "GET", "/v1/leads/{id}/score", h_score, NULL, ROLES_ANY, &d_score);
    rc |= app_route(a, "POST", "/v1/models/lead_scoring/train", h_train, NULL, ROLE_ANALYST | ROLE_ADMIN, &d_train);
    return rc;
}
