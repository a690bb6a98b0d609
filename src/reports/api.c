/* GET /v1/reports/pipeline: parameters checked on the loop, the query on
 * the thread pool (api_job), the answer built there too. */
#include <string.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "leads/entity.h"
#include "reports/reports.h"

typedef struct pipeline_in {
    reports_filter f;
    char source[REPORTS_MAX_SOURCE + 1];
} pipeline_in;

static int pipeline_tx(store_tx *tx, api_job *j, store_err *err) {
    pipeline_in *in = j->extra;
    if (in->f.agent > 0) { /* an agent of another tenant is not found, like any id */
        json_t *ag = NULL;
        int rc = ent_get(tx, &entity_agent, in->f.agent, &ag, err);
        json_decref(ag);
        if (rc == STORE_NOTFOUND) return api_job_fail(j, 404, "not_found", "no such agent");
        if (rc) return rc;
    }
    return reports_pipeline(tx, &in->f, &j->out, err);
}

static void h_pipeline(http_req *q, app *a, const auth_principal *p, void *ud) {
    const char *why = NULL, *ag = http_req_query(q, "agent_id"), *src = http_req_query(q, "source");
    reports_filter f = {.agent = 0, .source = NULL};
    if (reports_range_parse(http_req_query(q, "from"), http_req_query(q, "to"), clock_wall_ms(), &f.range, &why)) {
        http_reply_error(q, 400, "bad_query", why);
        return;
    }
    if (ag && (f.agent = api_parse_id(ag)) < 0) {
        http_reply_error(q, 400, "bad_query", "invalid value for query parameter \"agent_id\": a positive integer");
        return;
    }
    if (src && (!*src || strlen(src) > REPORTS_MAX_SOURCE)) {
        http_reply_error(q, 400, "bad_query", "invalid value for query parameter \"source\": 1-200 bytes");
        return;
    }
    /* an agent sees only its own leads (as for its performance route); a key
     * of the agent role that is not linked to an agent sees none */
    if (p->role == ROLE_AGENT) {
        int64_t own = p->agent_id > 0 ? p->agent_id : -1;
        if (f.agent && f.agent != own) {
            http_reply_error(q, 403, "forbidden", "agents may only see reports on their own leads");
            return;
        }
        f.agent = own;
    }
    pipeline_in *in = eh_calloc(1, sizeof *in);
    if (!in) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    if (src) {
        memcpy(in->source, src, strlen(src) + 1);
        f.source = in->source;
    }
    in->f = f;
    api_job *j = api_job_for(q, a, p);
    if (!j) {
        eh_free(in);
        return;
    }
    j->extra = in;
    j->extra_free = eh_free;
    j->fn = pipeline_tx;
    api_job_run(q, j);
}

static const http_route_doc d_pipeline = {
    "Pipeline report over the leads created in [from, to) (UTC days or epoch ms; default the last 30 days, at most 366), "
    "optionally of one agent_id and/or source: leads by stage and status, the funnel created → contacted → "
    "appointment → won with conversions, win rate, speed to lead (creation → first outbound sms/email/call: p50/p90 "
    "and buckets) overall, per source and per agent, and a daily series. An agent sees only its own leads",
    "reports", NULL,
    "{range, filters, leads, by_stage, by_status, funnel, win_rate, speed_to_lead:{overall, by_source, by_agent}, daily}"};

int reports_register(struct app *a) {
    return app_route(a, "GET", "/v1/reports/pipeline", h_pipeline, NULL, ROLES_ANY, &d_pipeline) ? -1 : 0;
}
