/* Coaching over HTTP: analysis + suggestions for a stored lead or for
 * messages sent in the request, the tenant's playbook, feedback on
 * suggestions, coaching statistics and agent performance. Every suggestion
 * shown is stored (coaching_suggestions) so that feedback and outcomes can
 * be tied to it. Analysis runs inside the job on the thread pool: it is
 * pure CPU, bounded by COACH_MAX_MESSAGES x COACH_MAX_BODY. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "internal.h"
#include "leads/entity.h"

/* The request's conversation, when sent inline. */
typedef struct conv {
    coach_msg *m;
    int n;
    const char *tz;
    int draft;  /* COACH_DRAFT_*: ?draft=wait|async|off */
    int64_t now;     /* the analysis' clock and the suggestions' created_at */
    int rc;          /* the read transaction's result (coaching_pre) */
    store_err err;
} conv;

static void conv_free(void *p) {
    conv *c = p;
    if (!c) return;
    eh_free(c->m);
    eh_free(c);
}

static coach_ctx *ctx_of(api_job *j) { return j->a->coach; }

/* "2026-11-23T12:00:00Z", "...T12:00:00.250+02:00": epoch ms, -1 if not that. */
static int64_t parse_iso(const char *s) {
    int y, mo, d, h, mi, se, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &n) != 6 || n != 19) return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 || y < 1970) return -1;
    const char *p = s + 19;
    int ms = 0;
    if (*p == '.') {
        int k = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, k++)
            if (k < 3) ms = ms * 10 + (*p - '0');
        while (k++ < 3) ms *= 10;
    }
    int off = 0;
    if (*p == 'Z') p++;
    else if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2 || strlen(p) != 6) return -1;
        off = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else return -1;
    if (*p) return -1;
    int64_t days = coach_days_from_civil(y, mo, d);
    return ((days * 86400 + h * 3600 + mi * 60 + se) - off * 60) * 1000 + ms;
}

/* Validates {"messages":[...], "timezone"?} into c; on failure answers and
 * returns -1. */
static int parse_messages(http_req *q, json_t *in, conv *c) {
    json_t *ms = json_object_get(in, "messages");
    if (!json_is_array(ms)) {
        http_reply_error(q, 422, "validation_failed", "expected {\"lead_id\": N} or {\"messages\": [...]}");
        return -1;
    }
    size_t n = json_array_size(ms);
    if (n == 0) {
        http_reply_error(q, 422, "validation_failed", "messages is empty");
        return -1;
    }
    if (n > COACH_MAX_MESSAGES) {
        http_reply_error(q, 413, "too_many_messages", "at most 500 messages per request");
        return -1;
    }
    json_t *tz = json_object_get(in, "timezone");
    if (tz && !json_is_null(tz)) {
        if (!json_is_string(tz) || coach_local_hour(json_string_value(tz), 0) < 0) {
            http_reply_error(q, 422, "validation_failed", "timezone: an IANA zone this server knows or an offset like -08:00");
            return -1;
        }
        c->tz = json_string_value(tz);
    }
    c->m = eh_calloc(n, sizeof *c->m);
    if (!c->m) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return -1;
    }
    char msg[160];
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(ms, i), *v;
        coach_msg *m = &c->m[i];
        if (!json_is_object(o)) {
            snprintf(msg, sizeof msg, "messages[%zu]: expected an object", i);
            goto bad;
        }
        const char *dir = json_string_value(json_object_get(o, "direction"));
        if (!dir || (strcmp(dir, "inbound") && strcmp(dir, "outbound") && strcmp(dir, "none"))) {
            snprintf(msg, sizeof msg, "messages[%zu].direction: one of inbound, outbound, none", i);
            goto bad;
        }
        m->dir = dir[0] == 'i' ? COACH_IN : dir[0] == 'o' ? COACH_OUT : COACH_NONE;
        v = json_object_get(o, "body");
        if (!json_is_string(v)) {
            snprintf(msg, sizeof msg, "messages[%zu].body: a string", i);
            goto bad;
        }
        if (json_string_length(v) > COACH_MAX_BODY) {
            snprintf(msg, sizeof msg, "messages[%zu].body: at most %d bytes", i, COACH_MAX_BODY);
            http_reply_error(q, 413, "message_too_large", msg);
            return -1;
        }
        m->body = json_string_value(v);
        m->len = json_string_length(v);
        v = json_object_get(o, "channel");
        m->channel = json_is_string(v) ? json_string_value(v) : "sms";
        v = json_object_get(o, "id");
        m->id = json_is_integer(v) ? json_integer_value(v) : (int64_t)i + 1;
        v = json_object_get(o, "at");
        if (json_is_integer(v) && json_integer_value(v) > 0) m->at_ms = json_integer_value(v);
        else if (json_is_string(v) && (m->at_ms = parse_iso(json_string_value(v))) > 0) {}
        else if (v && !json_is_null(v)) {
            snprintf(msg, sizeof msg, "messages[%zu].at: epoch milliseconds or an ISO 8601 time with zone", i);
            goto bad;
        } else m->at_ms = 0;
    }
    c->n = (int)n;
    return 0;
bad:
    http_reply_error(q, 422, "validation_failed", msg);
    return -1;
}

/* The tenant's playbook override (NULL if none) as a new reference. */
static int load_override(store_tx *tx, json_t **ov, int64_t *version, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx))};
    store_rows *r = NULL;
    *ov = NULL;
    int rc = store_query(tx, "SELECT body, version FROM coaching_playbooks WHERE tenant_id = $1", p, 1, &r, err);
    if (rc) return rc;
    if (store_rows_count(r)) {
        *ov = json_loads(store_rows_text(r, 0, 0), 0, NULL);
        if (version) *version = store_rows_int(r, 0, 1);
    }
    store_rows_free(r);
    return STORE_OK;
}

/* Analysis + suggestions, nothing written: *out = {lead_id, agent_id,
 * analysis, suggestions} (suggestions without ids yet). Reads only, so the
 * routes run it in a read transaction, off the single writer. */
static int coach_compute(store_tx *tx, const coach_ctx *cc, const coach_msg *m, int n, const coach_facts *f,
                         int64_t lead_id, int64_t agent_id, int64_t now, json_t **out, store_err *err) {
    json_t *ov = NULL;
    int rc = load_override(tx, &ov, NULL, err);
    if (rc) return rc;
    json_t *pb = coach_playbook_merge(cc, ov);
    json_decref(ov);
    json_t *an = coach_analyze(cc, m, n, f, now);
    json_t *sug = an && pb ? coach_suggest(cc, an, pb) : NULL;
    json_decref(pb);
    *out = sug ? json_pack("{s:o, s:o, s:o, s:o}", "lead_id", lead_id ? json_integer(lead_id) : json_null(), "agent_id",
                           agent_id ? json_integer(agent_id) : json_null(), "analysis", an, "suggestions", sug)
               : NULL;
    if (!sug) json_decref(an);
    if (!*out) {
        err->code = STORE_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return STORE_NOMEM;
    }
    return STORE_OK;
}

/* Stores the suggestions of a coaching answer (from coach_compute) as
 * shown, and gives each its id. */
static int record_suggestions(store_tx *tx, json_t *out, int64_t now, store_err *err) {
    json_t *sug = json_object_get(out, "suggestions");
    int64_t lead_id = json_integer_value(json_object_get(out, "lead_id"));
    int64_t agent_id = json_integer_value(json_object_get(out, "agent_id"));
    /* One multi-row INSERT: the writer thread's time is what bounds
     * coaching throughput. Ids come back in insertion order. */
    size_t ns = json_array_size(sug);
    if (!ns) return STORE_OK;
    char sql[2048];
    size_t o = (size_t)snprintf(sql, sizeof sql, "INSERT INTO coaching_suggestions (tenant_id, lead_id, agent_id, "
                                                  "type, item, message_id, created_at) VALUES ");
    store_val p[4 + 3 * 12];
    p[0] = SV_I(store_tx_tenant(tx));
    p[1] = lead_id ? SV_I(lead_id) : SV_NULLV;
    p[2] = agent_id ? SV_I(agent_id) : SV_NULLV;
    p[3] = SV_I(now);
    for (size_t i = 0; i < ns && i < 12; i++) {
        json_t *s = json_array_get(sug, i), *mid = json_object_get(s, "message_id");
        p[4 + 3 * i] = SV_S(json_string_value(json_object_get(s, "type")));
        p[5 + 3 * i] = SV_S(json_string_value(json_object_get(s, "item")));
        p[6 + 3 * i] = json_is_integer(mid) && lead_id ? SV_I(json_integer_value(mid)) : SV_NULLV;
        o += (size_t)snprintf(sql + o, sizeof sql - o, "%s($1, $2, $3, $%zu, $%zu, $%zu, $4)", i ? ", " : "",
                              5 + 3 * i, 6 + 3 * i, 7 + 3 * i);
    }
    snprintf(sql + o, sizeof sql - o, " RETURNING id");
    store_rows *r = NULL;
    int rc = store_query(tx, sql, p, 4 + 3 * (int)(ns < 12 ? ns : 12), &r, err);
    if (rc) return rc;
    int64_t ids[12];
    int nr = store_rows_count(r);
    for (int i = 0; i < nr && i < 12; i++) ids[i] = store_rows_int(r, i, 0);
    store_rows_free(r);
    /* RETURNING's row order is not promised: ids grow with insertion order */
    for (int a = 1; a < nr && a < 12; a++)
        for (int b = a; b > 0 && ids[b - 1] > ids[b]; b--) {
            int64_t tmp = ids[b];
            ids[b] = ids[b - 1];
            ids[b - 1] = tmp;
        }
    for (size_t i = 0; i < ns && (int)i < nr; i++) json_object_set_new(json_array_get(sug, i), "id", json_integer(ids[i]));
    return STORE_OK;
}

/* Cuts a stored body (up to 20,000 bytes) to the analysis limit on a
 * character boundary. */
static size_t cut_len(const char *s, size_t n) {
    if (n <= COACH_MAX_BODY) return n;
    size_t k = COACH_MAX_BODY;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    return k;
}

/* coach_compute for a stored lead: its fields and latest activities. */
static int lead_compute(store_tx *tx, const coach_ctx *cc, int64_t lead_id, int64_t agent_hint, int64_t now,
                        json_t **out, store_err *err) {
    json_t *lead = NULL;
    int rc = ent_get(tx, &entity_lead, lead_id, &lead, err);
    if (rc) return rc;
    coach_facts f = {.preapproved = -1};
    json_t *v = json_object_get(lead, "budget_max");
    if (json_is_number(v)) f.has_budget = 1, f.budget_max = json_number_value(v);
    f.timeline = json_string_value(json_object_get(lead, "timeline"));
    v = json_object_get(lead, "preapproved");
    if (json_is_boolean(v)) f.preapproved = json_is_true(v);
    f.areas = (int)json_array_size(json_object_get(lead, "areas"));
    f.property_type = json_string_value(json_object_get(lead, "property_type"));
    f.timezone = json_string_value(json_object_get(lead, "timezone"));
    int64_t agent = json_integer_value(json_object_get(lead, "agent_id"));
    if (!agent) agent = agent_hint;
    /* the latest 500 activities, analysed oldest first */
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(lead_id), SV_I(COACH_MAX_MESSAGES)};
    store_rows *r = NULL;
    rc = store_query(tx, "SELECT id, channel, direction, body, occurred_at FROM activities WHERE tenant_id = $1 "
                         "AND lead_id = $2 AND channel IN ('sms', 'email', 'call', 'note', 'web') "
                         "ORDER BY occurred_at DESC, id DESC LIMIT $3",
                     p, 3, &r, err);
    if (rc) {
        json_decref(lead);
        return rc;
    }
    int n = store_rows_count(r);
    coach_msg *m = eh_calloc((size_t)n + 1, sizeof *m);
    if (!m) {
        store_rows_free(r);
        json_decref(lead);
        err->code = STORE_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return STORE_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        coach_msg *x = &m[n - 1 - i];
        x->id = store_rows_int(r, i, 0);
        x->channel = store_rows_text(r, i, 1);
        const char *d = store_rows_text(r, i, 2);
        x->dir = d && d[0] == 'i' ? COACH_IN : d && d[0] == 'o' ? COACH_OUT : COACH_NONE;
        x->body = store_rows_text(r, i, 3) ? store_rows_text(r, i, 3) : "";
        x->len = cut_len(x->body, strlen(x->body));
        x->at_ms = store_rows_int(r, i, 4);
    }
    rc = coach_compute(tx, cc, m, n, &f, lead_id, agent, now, out, err);
    eh_free(m);
    store_rows_free(r);
    json_decref(lead);
    return rc;
}

int coach_lead(store_tx *tx, const coach_ctx *cc, int64_t lead_id, int64_t agent_hint, int record, json_t **out,
               store_err *err) {
    int64_t now = clock_wall_ms();
    int rc = lead_compute(tx, cc, lead_id, agent_hint, now, out, err);
    if (!rc && record && (rc = record_suggestions(tx, *out, now, err))) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

/* The routes' coaching runs in two transactions: the reading and the
 * analysis (pure CPU, ~0.1-0.3 ms for 50 messages, up to ~22 ms for the
 * worst case) in a read transaction on a reader connection, then only the
 * INSERT of the suggestions shown (and the audit entry) on the single
 * writer, whose time every write of the node shares (SQLite group commit).
 * The answer still leaves after that commit, so each suggestion's id can
 * take feedback as soon as the agent sees it. */
static int read_tx(store_tx *tx, void *arg, store_err *err) {
    api_job *j = arg;
    conv *c = j->extra;
    json_decref(j->out); /* a retried transaction starts over */
    j->out = NULL;
    if (!c->m) return lead_compute(tx, ctx_of(j), j->id, j->p.agent_id, c->now, &j->out, err);
    coach_facts f = {.preapproved = -1, .timezone = c->tz};
    return coach_compute(tx, ctx_of(j), c->m, c->n, &f, 0, j->p.agent_id, c->now, &j->out, err);
}

static int coaching_pre(api_job *j) {
    conv *c = j->extra;
    c->now = clock_wall_ms();
    c->rc = store_read(j->a->st, j->tenant, read_tx, j, &c->err);
    return 0; /* a failed read fails record_tx, where the store's error maps to its answer */
}

static int record_tx(store_tx *tx, api_job *j, store_err *err) {
    conv *c = j->extra;
    if (c->rc) {
        *err = c->err;
        return c->rc;
    }
    return record_suggestions(tx, j->out, c->now, err);
}

int coach_on_inbound(store_tx *tx, int64_t lead_id, store_err *err) {
    const coach_ctx *cc = leads_coach(tx);
    if (!cc) return STORE_OK;
    json_t *out = NULL;
    /* pushed, not yet shown: the suggestions count as shown (and can take
     * feedback) when the agent opens the lead's coaching */
    int rc = coach_lead(tx, cc, lead_id, 0, 0, &out, err);
    if (rc) return rc;
    /* what the agent's phone shows at once (realtime topic coaching:{agent}) */
    json_t *an = json_object_get(out, "analysis");
    json_t *ev = json_pack("{s:O, s:O, s:O, s:O?}", "lead_id", json_object_get(out, "lead_id"), "agent_id",
                           json_object_get(out, "agent_id"), "suggestions", json_object_get(out, "suggestions"),
                           "warnings", json_object_get(an, "warnings"));
    rc = leads_event(tx, "coaching.updated", ev, err);
    json_decref(ev);
    json_decref(out);
    return rc;
}

/* The coaching is stored: answer, with the LLM's draft when there is a
 * provider (draft.c decides how long to wait for it). */
static void coaching_done(http_req *q, api_job *j) {
    conv *c = j->extra;
    json_t *out = j->out;
    j->out = NULL;
    coach_draft_reply(q, j->a, j->tenant, out, c->draft);
}

/* ?draft=wait|async|off into c; -1 once answered. */
static int draft_param(http_req *q, conv *c) {
    int mode = coach_draft_mode(http_req_query(q, "draft"));
    if (mode < 0) {
        http_reply_error(q, 400, "bad_query", "draft: wait, async or off");
        return -1;
    }
    c->draft = mode;
    return 0;
}

static void start_lead(http_req *q, app *a, const auth_principal *p, int64_t id) {
    conv *c = eh_calloc(1, sizeof *c);
    if (!c) { http_reply_error(q, 503, "overloaded", "out of memory"); return; }
    if (draft_param(q, c)) { conv_free(c); return; }
    api_job *j = api_job_new(a, p);
    if (!j) { conv_free(c); http_reply_error(q, 503, "overloaded", "out of memory"); return; }
    j->extra = c;
    j->extra_free = conv_free;
    j->id = id;
    j->write = 1;
    j->pre = coaching_pre;
    j->fn = record_tx;
    j->on_done = coaching_done;
    api_job_run(q, j);
}

/* POST /get-coaching: {"lead_id": N} or {"messages": [...], "timezone"}. */
static void h_get_coaching(http_req *q, app *a, const auth_principal *p, void *ud) {
    json_t *in = http_req_json(q);
    if (!in) return;
    if (!json_is_object(in)) {
        json_decref(in);
        http_reply_error(q, 422, "validation_failed", "expected a JSON object");
        return;
    }
    json_t *lid = json_object_get(in, "lead_id");
    if (lid && !json_is_null(lid)) {
        int64_t id = json_is_integer(lid) ? json_integer_value(lid) : -1;
        json_decref(in);
        if (id <= 0) { http_reply_error(q, 422, "validation_failed", "lead_id: a positive integer"); return; }
        start_lead(q, a, p, id);
        return;
    }
    conv *c = eh_calloc(1, sizeof *c);
    if (!c) { json_decref(in); http_reply_error(q, 503, "overloaded", "out of memory"); return; }
    if (draft_param(q, c) || parse_messages(q, in, c)) {
        conv_free(c);
        json_decref(in);
        return;
    }
    api_job *j = api_job_new(a, p);
    if (!j) { conv_free(c); json_decref(in); http_reply_error(q, 503, "overloaded", "out of memory"); return; }
    j->in = in; /* owns the strings c points into */
    j->extra = c;
    j->extra_free = conv_free;
    j->write = 1;
    j->pre = coaching_pre;
    j->fn = record_tx;
    j->on_done = coaching_done;
    api_job_run(q, j);
}

/* POST /v1/leads/{id}/coaching (no body needed). */
static void h_lead_coaching(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = api_parse_id(http_req_param(q, "id"));
    if (id < 0) { http_reply_error(q, 404, "not_found", "no such lead"); return; }
    start_lead(q, a, p, id);
}

/* ---- playbook ---- */

static int pb_get_tx(store_tx *tx, api_job *j, store_err *err) {
    json_t *ov = NULL;
    int64_t version = 0;
    int rc = load_override(tx, &ov, &version, err);
    if (rc) return rc;
    json_t *eff = coach_playbook_merge(ctx_of(j), ov);
    j->out = json_pack("{s:s, s:I, s:o, s:o}", "source", ov ? "tenant" : "default", "version", (json_int_t)version,
                       "override", ov ? ov : json_object(), "playbook", eff);
    return STORE_OK;
}

static void h_pb_get(http_req *q, app *a, const auth_principal *p, void *ud) {
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->fn = pb_get_tx;
    api_job_run(q, j);
}

static int pb_put_tx(store_tx *tx, api_job *j, store_err *err) {
    char *body = json_dumps(j->in, JSON_COMPACT | JSON_SORT_KEYS);
    if (!body) return api_job_fail(j, 503, "overloaded", "out of memory");
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_S(body), SV_I(clock_wall_ms())};
    int rc = store_query(tx, "INSERT INTO coaching_playbooks (tenant_id, body, updated_at) VALUES ($1, $2, $3) "
                             "ON CONFLICT (tenant_id) DO UPDATE SET body = excluded.body, "
                             "updated_at = excluded.updated_at, version = coaching_playbooks.version + 1",
                         p, 3, NULL, err);
    free(body);
    if (!rc) rc = pb_get_tx(tx, j, err);
    return rc;
}

static void h_pb_put(http_req *q, app *a, const auth_principal *p, void *ud) {
    json_t *in = http_req_json(q);
    if (!in) return;
    char why[200];
    if (coach_playbook_check(a->coach, in, why, sizeof why)) {
        json_decref(in);
        http_reply_error(q, 422, "validation_failed", why);
        return;
    }
    api_job *j = api_job_new(a, p);
    if (!j) { json_decref(in); http_reply_error(q, 503, "overloaded", "out of memory"); return; }
    j->in = in;
    j->write = 1;
    j->fn = pb_put_tx;
    api_job_run(q, j);
}

/* ---- feedback ---- */

static int feedback_tx(store_tx *tx, api_job *j, store_err *err) {
    const char *outcome = json_string_value(json_object_get(j->in, "outcome"));
    store_val p[] = {SV_S(outcome), SV_I(clock_wall_ms()), SV_I(store_tx_tenant(tx)), SV_I(j->id)};
    int rc = store_query(tx, "UPDATE coaching_suggestions SET status = $1, feedback_at = $2 "
                             "WHERE tenant_id = $3 AND id = $4",
                         p, 4, NULL, err);
    if (rc) return rc;
    if (store_tx_changes(tx) == 0) return api_job_fail(j, 404, "not_found", "no such suggestion");
    j->out = json_pack("{s:I, s:s}", "suggestion_id", (json_int_t)j->id, "status", outcome);
    return STORE_OK;
}

static void h_feedback(http_req *q, app *a, const auth_principal *p, void *ud) {
    json_t *in = http_req_json(q);
    if (!in) return;
    json_t *sid = json_object_get(in, "suggestion_id");
    const char *o = json_string_value(json_object_get(in, "outcome"));
    if (!json_is_object(in) || !json_is_integer(sid) || json_integer_value(sid) <= 0 || !o ||
        (strcmp(o, "accepted") && strcmp(o, "dismissed"))) {
        json_decref(in);
        http_reply_error(q, 422, "validation_failed",
                         "expected {\"suggestion_id\": N, \"outcome\": \"accepted\" | \"dismissed\"}");
        return;
    }
    api_job *j = api_job_new(a, p);
    if (!j) { json_decref(in); http_reply_error(q, 503, "overloaded", "out of memory"); return; }
    j->in = in;
    j->id = json_integer_value(sid);
    j->write = 1;
    j->fn = feedback_tx;
    api_job_run(q, j);
}

/* ---- statistics ---- */

/* Suggestion counts and the won rate of coached vs uncoached closed leads,
 * for the tenant or one agent (agent 0). */
static int stats_json(store_tx *tx, int64_t agent, json_t **out, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(agent)};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT type, status, COUNT(*) FROM coaching_suggestions WHERE tenant_id = $1 "
                             "AND ($2 = 0 OR agent_id = $2) GROUP BY type, status",
                         p, 2, &r, err);
    if (rc) return rc;
    int64_t tot[3] = {0, 0, 0};
    json_t *by = json_object();
    for (int i = 0; i < store_rows_count(r); i++) {
        const char *type = store_rows_text(r, i, 0), *st = store_rows_text(r, i, 1);
        int64_t c = store_rows_int(r, i, 2);
        int k = strcmp(st, "accepted") == 0 ? 1 : strcmp(st, "dismissed") == 0 ? 2 : 0;
        tot[k] += c;
        json_t *t = json_object_get(by, type);
        if (!t) json_object_set_new(by, type, t = json_pack("{s:i, s:i, s:i}", "shown", 0, "accepted", 0, "dismissed", 0));
        /* every suggestion was shown; feedback moves it to accepted/dismissed */
        json_object_set_new(t, "shown", json_integer(json_integer_value(json_object_get(t, "shown")) + c));
        if (k) json_object_set_new(t, st, json_integer(json_integer_value(json_object_get(t, st)) + c));
    }
    store_rows_free(r);
    rc = store_query(tx, "SELECT CASE WHEN EXISTS (SELECT 1 FROM coaching_suggestions s WHERE s.tenant_id = l.tenant_id "
                         "AND s.lead_id = l.id) THEN 1 ELSE 0 END AS coached, "
                         "SUM(CASE WHEN l.status = 'won' THEN 1 ELSE 0 END), "
                         "SUM(CASE WHEN l.status = 'lost' THEN 1 ELSE 0 END), COUNT(*) "
                         "FROM leads l WHERE l.tenant_id = $1 AND l.deleted_at IS NULL AND ($2 = 0 OR l.agent_id = $2) "
                         "GROUP BY 1",
                     p, 2, &r, err);
    if (rc) {
        json_decref(by);
        return rc;
    }
    json_t *grp[2] = {NULL, NULL};
    for (int i = 0; i < store_rows_count(r); i++) {
        int c = (int)store_rows_int(r, i, 0);
        int64_t won = store_rows_int(r, i, 1), lost = store_rows_int(r, i, 2), all = store_rows_int(r, i, 3);
        grp[c ? 0 : 1] = json_pack("{s:I, s:I, s:I, s:I, s:o}", "leads", (json_int_t)all, "won", (json_int_t)won, "lost",
                                   (json_int_t)lost, "closed", (json_int_t)(won + lost), "won_rate",
                                   won + lost ? json_real((double)won / (double)(won + lost)) : json_null());
    }
    store_rows_free(r);
    for (int g = 0; g < 2; g++)
        if (!grp[g]) grp[g] = json_pack("{s:i, s:i, s:i, s:i, s:n}", "leads", 0, "won", 0, "lost", 0, "closed", 0, "won_rate");
    int64_t shown = tot[0] + tot[1] + tot[2];
    *out = json_pack("{s:I, s:I, s:I, s:o, s:o, s:{s:o, s:o}}", "shown", (json_int_t)shown, "accepted",
                     (json_int_t)tot[1], "dismissed", (json_int_t)tot[2], "acceptance_rate",
                     tot[1] + tot[2] ? json_real((double)tot[1] / (double)(tot[1] + tot[2])) : json_null(), "by_type", by,
                     "outcomes", "coached", grp[0], "uncoached", grp[1]);
    return *out ? STORE_OK : STORE_NOMEM;
}

static int stats_tx(store_tx *tx, api_job *j, store_err *err) {
    if (j->id) {
        json_t *ag = NULL;
        int rc = ent_get(tx, &entity_agent, j->id, &ag, err);
        json_decref(ag);
        if (rc) return rc;
    }
    return stats_json(tx, j->id, &j->out, err);
}

static void h_stats(http_req *q, app *a, const auth_principal *p, void *ud) {
    const char *ag = http_req_query(q, "agent_id");
    int64_t agent = 0;
    if (ag && (agent = api_parse_id(ag)) < 0) {
        http_reply_error(q, 400, "bad_query", "agent_id must be a positive integer");
        return;
    }
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->id = agent;
    j->fn = stats_tx;
    api_job_run(q, j);
}

/* ---- agent performance ---- */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static json_t *rate(int64_t num, int64_t den) { return den ? json_real((double)num / (double)den) : json_null(); }

static int perf_tx(store_tx *tx, api_job *j, store_err *err) {
    json_t *agent = NULL;
    int rc = ent_get(tx, &entity_agent, j->id, &agent, err);
    if (rc) return rc;
    json_decref(agent);
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(j->id)};
    store_rows *r = NULL;
    rc = store_query(tx, "SELECT COUNT(*), SUM(CASE WHEN status = 'won' THEN 1 ELSE 0 END), "
                         "SUM(CASE WHEN status = 'lost' THEN 1 ELSE 0 END), "
                         "SUM(CASE WHEN EXISTS (SELECT 1 FROM activities a WHERE a.tenant_id = l.tenant_id AND "
                         "a.lead_id = l.id AND a.direction = 'outbound' AND a.channel IN ('sms', 'email', 'call')) "
                         "THEN 1 ELSE 0 END), "
                         "SUM(CASE WHEN EXISTS (SELECT 1 FROM activities a WHERE a.tenant_id = l.tenant_id AND "
                         "a.lead_id = l.id AND a.channel = 'appointment') THEN 1 ELSE 0 END) "
                         "FROM leads l WHERE l.tenant_id = $1 AND l.agent_id = $2 AND l.deleted_at IS NULL",
                     p, 2, &r, err);
    if (rc) return rc;
    int64_t leads = store_rows_int(r, 0, 0), won = store_rows_int(r, 0, 1), lost = store_rows_int(r, 0, 2),
            contacted = store_rows_int(r, 0, 3), appts = store_rows_int(r, 0, 4);
    store_rows_free(r);
    /* response time: from a lead's first unanswered inbound message to the
     * next outbound one, over at most 100,000 of the agent's messages (by lead) */
    rc = store_query(tx, "SELECT a.lead_id, a.direction, a.occurred_at FROM activities a JOIN leads l ON "
                         "l.tenant_id = a.tenant_id AND l.id = a.lead_id WHERE a.tenant_id = $1 AND l.agent_id = $2 "
                         "AND l.deleted_at IS NULL AND a.direction IN ('inbound', 'outbound') "
                         "AND a.channel IN ('sms', 'email', 'call') ORDER BY a.lead_id, a.occurred_at, a.id LIMIT 100000",
                     p, 2, &r, err);
    if (rc) return rc;
    int n = store_rows_count(r), nd = 0, answered_leads = 0;
    int64_t *d = eh_malloc(sizeof *d * (size_t)(n + 1));
    if (!d) {
        store_rows_free(r);
        return api_job_fail(j, 503, "overloaded", "out of memory");
    }
    int64_t cur = -1, pend = 0;
    for (int i = 0; i < n; i++) {
        int64_t lead = store_rows_int(r, i, 0), at = store_rows_int(r, i, 2);
        if (lead != cur) cur = lead, pend = 0;
        const char *dir = store_rows_text(r, i, 1);
        if (dir[0] == 'i' && !pend) pend = at;
        else if (dir[0] == 'o' && pend) {
            d[nd++] = at - pend;
            pend = 0;
        }
    }
    (void)answered_leads;
    store_rows_free(r);
    json_t *median = json_null();
    if (nd) {
        qsort(d, (size_t)nd, sizeof *d, cmp_i64);
        double med = nd % 2 ? (double)d[nd / 2] : ((double)d[nd / 2 - 1] + (double)d[nd / 2]) / 2;
        median = json_real(med / 60000.0);
    }
    eh_free(d);
    /* the open pipeline as the lead_scoring model sees it (XGBoost once the
     * tenant has trained one, the points prior before): expected wins is
     * the sum of the open leads' win probabilities, with no time horizon */
    rc = store_query(tx, "SELECT COUNT(*), SUM(l.score), "
                         "SUM(CASE WHEN (SELECT s.kind FROM lead_scores s WHERE s.tenant_id = l.tenant_id AND "
                         "s.lead_id = l.id ORDER BY s.id DESC LIMIT 1) = 'model' THEN 1 ELSE 0 END) "
                         "FROM leads l WHERE l.tenant_id = $1 AND l.agent_id = $2 AND l.deleted_at IS NULL "
                         "AND l.status = 'open'",
                     p, 2, &r, err);
    if (rc) {
        json_decref(median);
        return rc;
    }
    int64_t open = store_rows_int(r, 0, 0), by_model = store_rows_int(r, 0, 2);
    double expected = store_rows_real(r, 0, 1);
    store_rows_free(r);
    json_t *pipeline = json_pack("{s:I, s:f, s:I, s:I}", "open_leads", (json_int_t)open, "expected_wins",
                                 expected, "scored_by_model", (json_int_t)by_model, "scored_by_prior",
                                 (json_int_t)(open - by_model));
    json_t *coaching = NULL, *forecast = NULL;
    if ((rc = stats_json(tx, j->id, &coaching, err)) ||
        (rc = coach_forecast(tx, j->a, j->id, clock_wall_ms(), &forecast, err))) {
        json_decref(median);
        json_decref(pipeline);
        json_decref(coaching);
        return rc;
    }
    j->out = json_pack("{s:I, s:I, s:{s:o, s:i}, s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:o, s:o, s:o}", "agent_id",
                       (json_int_t)j->id, "leads", (json_int_t)leads, "response_time", "median_minutes", median,
                       "replies", nd, "contact_rate", rate(contacted, leads), "appointment_rate", rate(appts, leads),
                       "conversion", rate(won, won + lost), "contacted", (json_int_t)contacted, "appointments",
                       (json_int_t)appts, "won", (json_int_t)won, "lost", (json_int_t)lost, "coaching", coaching,
                       "pipeline", pipeline, "forecast_30d", forecast);
    return STORE_OK;
}

static void h_perf(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = api_parse_id(http_req_param(q, "id"));
    if (id < 0) { http_reply_error(q, 404, "not_found", "no such agent"); return; }
    if (p->role == ROLE_AGENT && p->agent_id != id) {
        http_reply_error(q, 403, "forbidden", "agents may only see their own performance");
        return;
    }
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->id = id;
    j->fn = perf_tx;
    api_job_run(q, j);
}

/* ---- the forecast model ---- */

static int train_pre(api_job *j) {
    char err[512];
    json_t *rep = NULL;
    int rc = coach_forecast_train(j->a, j->tenant, clock_wall_ms(), &rep, err, sizeof err);
    if (rc == 1) {
        j->details = rep;
        return api_job_fail(j, 422, "not_enough_history", err);
    }
    if (rc) return api_job_fail(j, 500, "training_failed", err);
    j->out = rep;
    return 0;
}

static int noop_tx(store_tx *tx, api_job *j, store_err *err) { return STORE_OK; }

static void h_forecast_train(http_req *q, app *a, const auth_principal *p, void *ud) {
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->pre = train_pre;
    j->fn = noop_tx;
    j->write = 1; /* the model file is written by pre; this transaction carries its audit entry */
    api_job_run(q, j);
}

/* ---- routes ---- */

#define DOC(name, sum, req, resp) static const http_route_doc name = {sum, "coaching", req, resp}
DOC(d_get, "Coaching for a stored lead or for messages sent inline (old route): analysis (sentiment, intents, objections, qualification, response times, talk ratio) and suggestions, each recorded with an id",
    "{lead_id} or {messages:[{direction, body, at, channel, id}], timezone}", "{lead_id, agent_id, analysis, suggestions:[{id, type, item, text, reason, message_id}], draft}");
DOC(d_lead, "Coaching for a lead's stored conversation (its latest 500 activities); ?draft=wait|async|off for the LLM draft", NULL, "{lead_id, agent_id, analysis, suggestions, draft}");
DOC(d_pb_get, "The tenant's coaching playbook: the default merged with the tenant's override", NULL, "{source, version, override, playbook}");
DOC(d_pb_put, "Replace the tenant's playbook override ({questions, objections, intents, warnings} maps of {text, why})", "the override", "{source, version, override, playbook}");
DOC(d_fb, "Record an agent's feedback on a suggestion", "{suggestion_id, outcome: accepted|dismissed}", "{suggestion_id, status}");
DOC(d_stats, "Coaching statistics (optionally ?agent_id=): suggestions shown/accepted/dismissed, won rate of coached vs uncoached leads", NULL, "{shown, accepted, dismissed, acceptance_rate, by_type, outcomes}");
DOC(d_perf, "An agent's performance: median response time, contact rate, appointment rate, conversion, coaching effectiveness, and the 30-day conversion forecast with its drivers", NULL, "{agent_id, leads, response_time, contact_rate, appointment_rate, conversion, coaching, pipeline, forecast_30d}");
DOC(d_fc_train, "Train the tenant's 30-day agent conversion forecast (XGBoost) from its own history", NULL, "the training report, or 422 not_enough_history");

int coach_api_register(app *a) {
    int rc = 0;
    rc |= app_route(a, "POST", "/get-coaching", h_get_coaching, NULL, ROLES_LEAD_WRITE, &d_get);
    rc |= app_route(a, "POST", "/v1/leads/{id}/coaching", h_lead_coaching, NULL, ROLES_LEAD_WRITE, &d_lead);
    rc |= app_route(a, "GET", "/v1/coaching/playbook", h_pb_get, NULL, ROLES_ANY, &d_pb_get);
    rc |= app_route(a, "PUT", "/v1/coaching/playbook", h_pb_put, NULL, ROLES_MANAGE, &d_pb_put);
    rc |= app_route(a, "POST", "/v1/coaching/feedback", h_feedback, NULL, ROLES_LEAD_WRITE, &d_fb);
    rc |= app_route(a, "GET", "/coaching-stats", h_stats, NULL, ROLES_ANY, &d_stats);
    rc |= app_route(a, "GET", "/v1/coaching-stats", h_stats, NULL, ROLES_ANY, &d_stats);
    rc |= app_route(a, "GET", "/v1/agents/{id}/performance", h_perf, NULL, ROLES_ANY, &d_perf);
    rc |= app_route(a, "POST", "/v1/agents/forecast/train", h_forecast_train, NULL, ROLES_MANAGE, &d_fc_train);
    return rc ? -1 : 0;
}
