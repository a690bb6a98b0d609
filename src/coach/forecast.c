/* The 30-day conversion forecast per agent.
 *
 * One row per agent-and-lead snapshot: a lead as it stood at time S (its
 * start — the earlier of its creation and its first activity — plus one day,
 * then every 30 days while it stayed open), with what its agent had done by
 * then, labelled 1 if it was won within 30 days after S. Features:
 *   age_days             days from the lead's start to S
 *   first_response_min   minutes from its first inbound message to the
 *                        agent's next outbound one (missing: not answered by S)
 *   inbound_30d, outbound_30d, calls_30d   messages and calls in the 30 days before S
 *   appointments         appointments booked before S
 *   days_since_inbound   since the lead last wrote (missing: never)
 *   awaiting_reply       the last message before S was the lead's (1/0)
 *   preapproved, budget_max, timeline (0-3m, 3-6m, 6-12m, 12m+)
 *   lead_score           the lead_scoring probability as of S (its score
 *                        history; the current score for open leads now)
 *   agent_load           the agent's leads open at S
 *   agent_response_min   the agent's median first response over its leads
 *                        answered before S
 * A lead is won when its status is won; when it was won is taken as its last
 * change (updated_at), which is the status change unless it was edited
 * since. Rows whose 30 days are not over yet (open, S + 30 d > now) are not
 * labelled and not used.
 *
 * The model (XGBoost through src/ml, saved in DATA_DIR/tenants/<id>/models/
 * agent_forecast/vN like the built-ins of src/score) needs FC_MIN_ROWS
 * labelled rows with FC_MIN_CLASS of each label; before that, and for a
 * tenant that never trained it, a documented prior scores (see
 * prior_p). The forecast for an agent is the sum, over its open leads, of
 * each lead's probability of converting in the next 30 days, with the
 * drivers: per feature, the SHAP contributions of all its leads, scaled from
 * the margin to the probability and added up (expected conversions). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "internal.h"
#include "ml/ml.h"
#include "score/score.h"

#define DAY_MS 86400000LL
#define FC_HORIZON_DAYS 30
#define FC_MAX_LEADS 50000
#define FC_MAX_ACTS 1000000
#define FC_MAX_SNAPSHOTS 6
/* the prior's base rate is read from the tenant's newest leads only */
#define FC_PRIOR_SAMPLE 5000
#define FC_MIN_ROWS COACH_FORECAST_MIN_ROWS
#define FC_MIN_CLASS COACH_FORECAST_MIN_CLASS

enum {
    X_AGE, X_FIRST_RESP, X_IN30, X_OUT30, X_CALLS30, X_APPTS, X_DAYS_IN, X_AWAITING, X_PREAPPROVED, X_BUDGET,
    X_SCORE, X_LOAD, X_AGENT_RESP, NX
};
static const char *const xname[NX] = {"age_days", "first_response_min", "inbound_30d", "outbound_30d", "calls_30d",
                                      "appointments", "days_since_inbound", "awaiting_reply", "preapproved",
                                      "budget_max", "lead_score", "agent_load", "agent_response_min"};
#define X_TIMELINE NX /* the categorical one, last */

typedef struct act {
    int64_t at;
    char dir;   /* 'i', 'o', 'n' */
    char kind;  /* 'm' message, 'c' call, 'a' appointment */
} act;

typedef struct lead {
    int64_t id, agent;
    int open, won;
    int64_t start, closed_at; /* closed_at: INT64_MAX while open */
    int64_t resp_at;          /* the first answer to the first inbound; 0 none */
    double resp_min;
    double preapproved, budget, score_now;
    char timeline[8];
    act *a;                   /* into the shared array */
    int na;
    int64_t *sc_at;           /* score history (training) */
    double *sc;
    int nsc;
} lead;

typedef struct fdata {
    lead *l;
    int n;
    int *by_agent;  /* lead indexes by agent; a lead's agent owns [lo, hi) of it */
    int *lo, *hi;
    act *acts;
    int64_t *sc_at;
    double *sc;
} fdata;

static void fdata_free(fdata *d) {
    eh_free(d->l);
    eh_free(d->by_agent);
    eh_free(d->lo);
    eh_free(d->hi);
    eh_free(d->acts);
    eh_free(d->sc_at);
    eh_free(d->sc);
    memset(d, 0, sizeof *d);
}

static lead *find_lead(fdata *d, int64_t id) {
    int lo = 0, hi = d->n - 1;
    while (lo <= hi) {
        int m = (lo + hi) / 2;
        if (d->l[m].id == id) return &d->l[m];
        if (d->l[m].id < id) lo = m + 1;
        else hi = m - 1;
    }
    return NULL;
}

static int cmp_agent(const void *a, const void *b, void *arg) {
    const lead *l = arg;
    int x = *(const int *)a, y = *(const int *)b;
    if (l[x].agent != l[y].agent) return l[x].agent < l[y].agent ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int oom(store_err *err) {
    err->code = STORE_NOMEM;
    snprintf(err->msg, sizeof err->msg, "out of memory");
    return STORE_NOMEM;
}

/* Reads the leads with an agent (agent 0: all of them), their activities
 * and (history) their score history. */
static int load(store_tx *tx, int64_t agent, int max_leads, int history, fdata *d, store_err *err) {
    memset(d, 0, sizeof *d);
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(agent), SV_I(max_leads), SV_I(0)};
    store_rows *r = NULL;
    /* the newest max_leads leads, read oldest first */
    int rc = store_query(tx, "SELECT id, agent_id, status, created_at, updated_at, preapproved, timeline, budget_max, "
                             "score FROM leads WHERE tenant_id = $1 AND deleted_at IS NULL AND agent_id IS NOT NULL "
                             "AND ($2 = 0 OR agent_id = $2) ORDER BY id DESC LIMIT $3",
                         p, 3, &r, err);
    if (rc) return rc;
    d->n = store_rows_count(r);
    d->l = eh_calloc((size_t)d->n + 1, sizeof *d->l);
    if (!d->l) {
        store_rows_free(r);
        return oom(err);
    }
    for (int i = 0; i < d->n; i++) {
        lead *l = &d->l[d->n - 1 - i];
        l->id = store_rows_int(r, i, 0);
        l->agent = store_rows_int(r, i, 1);
        const char *st = store_rows_text(r, i, 2);
        l->open = !strcmp(st, "open");
        l->won = !strcmp(st, "won");
        l->start = store_rows_int(r, i, 3);
        l->closed_at = l->open ? INT64_MAX : store_rows_int(r, i, 4);
        l->preapproved = store_rows_isnull(r, i, 5) ? NAN : (double)(store_rows_int(r, i, 5) != 0);
        const char *tb = score_timeline_bucket(store_rows_text(r, i, 6));
        snprintf(l->timeline, sizeof l->timeline, "%s", tb ? tb : "");
        l->budget = store_rows_isnull(r, i, 7) ? NAN : store_rows_real(r, i, 7);
        l->score_now = store_rows_isnull(r, i, 8) ? NAN : store_rows_real(r, i, 8);
    }
    store_rows_free(r);
    p[2] = SV_I(FC_MAX_ACTS);
    p[3] = SV_I(d->n ? d->l[0].id : 0);
    rc = store_query(tx, "SELECT a.lead_id, a.channel, a.direction, a.occurred_at FROM activities a JOIN leads l ON "
                         "l.tenant_id = a.tenant_id AND l.id = a.lead_id WHERE a.tenant_id = $1 AND l.deleted_at IS NULL "
                         "AND l.agent_id IS NOT NULL AND ($2 = 0 OR l.agent_id = $2) AND a.lead_id >= $4 "
                         "AND a.channel IN ('sms', 'email', 'call', 'appointment') "
                         "ORDER BY a.lead_id, a.occurred_at, a.id LIMIT $3",
                     p, 4, &r, err);
    if (rc) return rc;
    int na = store_rows_count(r);
    d->acts = eh_calloc((size_t)na + 1, sizeof *d->acts);
    if (!d->acts) {
        store_rows_free(r);
        return oom(err);
    }
    lead *cur = NULL;
    for (int i = 0; i < na; i++) {
        int64_t id = store_rows_int(r, i, 0);
        if (!cur || cur->id != id) {
            cur = find_lead(d, id);
            if (cur) cur->a = &d->acts[i];
        }
        act *x = &d->acts[i];
        x->at = store_rows_int(r, i, 3);
        const char *ch = store_rows_text(r, i, 1), *dir = store_rows_text(r, i, 2);
        x->kind = ch[0] == 'a' ? 'a' : ch[0] == 'c' ? 'c' : 'm';
        x->dir = dir[0];
        if (cur) cur->na++;
    }
    store_rows_free(r);
    for (int i = 0; i < d->n; i++) {
        lead *l = &d->l[i];
        if (l->na && l->a[0].at < l->start) l->start = l->a[0].at;
        int64_t first_in = 0;
        for (int k = 0; k < l->na; k++) {
            const act *x = &l->a[k];
            if (x->kind == 'a') continue;
            if (x->dir == 'i' && !first_in) first_in = x->at;
            else if (x->dir == 'o' && first_in) {
                l->resp_at = x->at;
                l->resp_min = (double)(x->at - first_in) / 60000.0;
                break;
            }
        }
    }
    /* each lead's agent's leads, for the agent's figures at a snapshot */
    d->by_agent = eh_malloc(sizeof(int) * ((size_t)d->n + 1));
    d->lo = eh_malloc(sizeof(int) * ((size_t)d->n + 1));
    d->hi = eh_malloc(sizeof(int) * ((size_t)d->n + 1));
    if (!d->by_agent || !d->lo || !d->hi) return oom(err);
    for (int i = 0; i < d->n; i++) d->by_agent[i] = i;
    qsort_r(d->by_agent, (size_t)d->n, sizeof(int), cmp_agent, d->l);
    for (int i = 0; i < d->n;) {
        int j = i;
        while (j < d->n && d->l[d->by_agent[j]].agent == d->l[d->by_agent[i]].agent) j++;
        for (int k = i; k < j; k++) d->lo[d->by_agent[k]] = i, d->hi[d->by_agent[k]] = j;
        i = j;
    }
    if (!history) return STORE_OK;
    rc = store_query(tx, "SELECT s.lead_id, s.score, s.created_at FROM lead_scores s JOIN leads l ON l.tenant_id = "
                         "s.tenant_id AND l.id = s.lead_id WHERE s.tenant_id = $1 AND l.agent_id IS NOT NULL "
                         "AND ($2 = 0 OR l.agent_id = $2) AND s.lead_id >= $4 ORDER BY s.lead_id, s.id LIMIT $3",
                     p, 4, &r, err);
    if (rc) return rc;
    int ns = store_rows_count(r);
    d->sc_at = eh_calloc((size_t)ns + 1, sizeof *d->sc_at);
    d->sc = eh_calloc((size_t)ns + 1, sizeof *d->sc);
    if (!d->sc_at || !d->sc) {
        store_rows_free(r);
        return oom(err);
    }
    cur = NULL;
    for (int i = 0; i < ns; i++) {
        int64_t id = store_rows_int(r, i, 0);
        if (!cur || cur->id != id) {
            cur = find_lead(d, id);
            if (cur) cur->sc_at = &d->sc_at[i], cur->sc = &d->sc[i];
        }
        d->sc[i] = store_rows_real(r, i, 1);
        d->sc_at[i] = store_rows_int(r, i, 2);
        if (cur) cur->nsc++;
    }
    store_rows_free(r);
    return STORE_OK;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Features of lead l at time s; now: predicting (scores are current). */
static void features(const fdata *d, const lead *l, int64_t s, int now, double *x, double *tmp) {
    for (int i = 0; i < NX; i++) x[i] = NAN;
    x[X_AGE] = (double)(s - l->start) / DAY_MS;
    if (x[X_AGE] < 0) x[X_AGE] = 0;
    if (l->resp_at && l->resp_at < s) x[X_FIRST_RESP] = l->resp_min;
    int in = 0, out = 0, calls = 0, appts = 0;
    int64_t last_in = 0;
    char last_dir = 0;
    for (int k = 0; k < l->na && l->a[k].at < s; k++) {
        const act *a = &l->a[k];
        int recent = a->at >= s - FC_HORIZON_DAYS * DAY_MS;
        if (a->kind == 'a') {
            appts++;
            continue;
        }
        if (a->kind == 'c' && recent) calls++;
        if (a->dir == 'i') {
            in += recent;
            last_in = a->at;
        } else if (a->dir == 'o') {
            out += recent;
        }
        if (a->dir != 'n') last_dir = a->dir;
    }
    x[X_IN30] = in;
    x[X_OUT30] = out;
    x[X_CALLS30] = calls;
    x[X_APPTS] = appts;
    if (last_in) x[X_DAYS_IN] = (double)(s - last_in) / DAY_MS;
    x[X_AWAITING] = last_dir == 'i';
    x[X_PREAPPROVED] = l->preapproved;
    x[X_BUDGET] = l->budget;
    if (now) x[X_SCORE] = l->score_now;
    else
        for (int k = 0; k < l->nsc && l->sc_at[k] < s; k++) x[X_SCORE] = l->sc[k];
    /* the agent at s: its open leads and its median first response */
    int load = 0, nr = 0, me = (int)(l - d->l);
    for (int k = d->lo[me]; k < d->hi[me]; k++) {
        const lead *o = &d->l[d->by_agent[k]];
        if (o->start <= s && o->closed_at > s) load++;
        if (o->resp_at && o->resp_at < s) tmp[nr++] = o->resp_min;
    }
    x[X_LOAD] = load;
    if (nr) {
        qsort(tmp, (size_t)nr, sizeof *tmp, cmp_d);
        x[X_AGENT_RESP] = nr % 2 ? tmp[nr / 2] : (tmp[nr / 2 - 1] + tmp[nr / 2]) / 2;
    }
}

/* ---- the prior ---- */

/* p = base × factors, at most 0.9; each factor's effect goes to eff[]. The
 * base is the tenant's own 30-day conversion rate when it has 20 labelled
 * rows or more, else FC_PRIOR_BASE. Factors: answered within an hour ×1.5,
 * not answered (or waiting on the agent) for over a day ×0.6, an
 * appointment ×1.8, pre-approved ×1.4, timeline 0-3 months ×1.4 and 12
 * months+ ×0.5, lead score ×(0.5 + score). */
#define FC_PRIOR_BASE 0.05
static double prior_p(const double *x, const char *timeline, double base, double *eff) {
    double p = base;
    double f[NX + 1];
    for (int i = 0; i <= NX; i++) f[i] = 1;
    if (!isnan(x[X_FIRST_RESP]) && x[X_FIRST_RESP] <= 60) f[X_FIRST_RESP] = 1.5;
    if (x[X_AWAITING] > 0 && !isnan(x[X_DAYS_IN]) && x[X_DAYS_IN] > 1) f[X_AWAITING] = 0.6;
    if (x[X_APPTS] > 0) f[X_APPTS] = 1.8;
    if (x[X_PREAPPROVED] > 0) f[X_PREAPPROVED] = 1.4;
    if (!strcmp(timeline, "0-3m")) f[X_TIMELINE] = 1.4;
    else if (!strcmp(timeline, "12m+")) f[X_TIMELINE] = 0.5;
    if (!isnan(x[X_SCORE])) f[X_SCORE] = 0.5 + x[X_SCORE];
    for (int i = 0; i <= NX; i++) {
        double np = fmin(p * f[i], 0.9);
        if (eff) eff[i] += np - p;
        p = np;
    }
    return p;
}

/* ---- training ---- */

typedef struct collect {
    int64_t now;
    buf csv;
    int pos, neg;
} collect;

static void csv_num(buf *b, double v) {
    if (isnan(v)) buf_putc(b, ',');
    else buf_printf(b, "%.6g,", v);
}

static int collect_tx(store_tx *tx, void *arg, store_err *err) {
    collect *c = arg;
    fdata d;
    int rc = load(tx, 0, FC_MAX_LEADS, 1, &d, err);
    if (rc) {
        fdata_free(&d);
        return rc;
    }
    double *tmp = eh_malloc(sizeof *tmp * ((size_t)d.n + 1)), x[NX];
    if (!tmp) {
        fdata_free(&d);
        return oom(err);
    }
    for (int i = 0; i < NX; i++) buf_printf(&c->csv, "%s,", xname[i]);
    buf_puts(&c->csv, "timeline,label\n");
    for (int i = 0; i < d.n; i++) {
        const lead *l = &d.l[i];
        for (int k = 0; k < FC_MAX_SNAPSHOTS; k++) {
            int64_t s = l->start + DAY_MS + (int64_t)k * FC_HORIZON_DAYS * DAY_MS;
            if (s >= c->now || l->closed_at <= s) break; /* not open at s */
            int64_t end = s + FC_HORIZON_DAYS * DAY_MS;
            int label;
            if (l->won && l->closed_at <= end) label = 1;
            else if (!l->open || end <= c->now) label = 0;
            else break; /* its 30 days are not over */
            features(&d, l, s, 0, x, tmp);
            for (int f = 0; f < NX; f++) csv_num(&c->csv, x[f]);
            if (buf_printf(&c->csv, "%s,%d\n", l->timeline, label)) {
                eh_free(tmp);
                fdata_free(&d);
                return oom(err);
            }
            label ? c->pos++ : c->neg++;
            if (label) break;
        }
    }
    eh_free(tmp);
    fdata_free(&d);
    return STORE_OK;
}

static void model_dir(const app *a, int64_t tenant, char *out, size_t n) {
    snprintf(out, n, "%s/tenants/%lld/models/%s", a->cfg.data_dir, (long long)tenant, COACH_FORECAST_MODEL);
}

static int mkdirs(const char *path) {
    char tmp[1400];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
            *s = '/';
        }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

int coach_forecast_train(app *a, int64_t tenant, int64_t now_ms, json_t **report, char *err, size_t errlen) {
    *report = NULL;
    collect c = {.now = now_ms};
    buf_init(&c.csv, (size_t)1 << 30);
    store_err se = {0};
    if (store_read(a->st, tenant, collect_tx, &c, &se)) {
        snprintf(err, errlen, "cannot read the tenant's leads: %s", se.msg);
        buf_free(&c.csv);
        return -1;
    }
    if (c.pos + c.neg < FC_MIN_ROWS || c.pos < FC_MIN_CLASS || c.neg < FC_MIN_CLASS) {
        *report = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i}", "error", "not_enough_history", "model",
                            COACH_FORECAST_MODEL, "rows", c.pos + c.neg, "converted", c.pos, "not_converted", c.neg,
                            "min_rows", FC_MIN_ROWS, "min_class", FC_MIN_CLASS);
        snprintf(err, errlen, "%d labelled snapshots (%d converted within 30 days): training needs %d with %d of each",
                 c.pos + c.neg, c.pos, FC_MIN_ROWS, FC_MIN_CLASS);
        buf_free(&c.csv);
        return 1;
    }
    char dir[1300], models[1300], csv[1400];
    model_dir(a, tenant, dir, sizeof dir);
    snprintf(models, sizeof models, "%s/tenants/%lld/models", a->cfg.data_dir, (long long)tenant);
    snprintf(csv, sizeof csv, "%s/%s-train-%ld-%lld.csv", models, COACH_FORECAST_MODEL, (long)getpid(),
             (long long)now_ms);
    if (mkdirs(models)) {
        snprintf(err, errlen, "cannot create %s: %s", models, strerror(errno));
        buf_free(&c.csv);
        return -1;
    }
    FILE *fp = fopen(csv, "w");
    int bad = !fp || fwrite(c.csv.p, 1, c.csv.len, fp) != c.csv.len;
    if (fp && fclose(fp)) bad = 1;
    buf_free(&c.csv);
    if (bad) {
        snprintf(err, errlen, "cannot write %s: %s", csv, strerror(errno));
        unlink(csv);
        return -1;
    }
    ml_train_opts o = {.data = csv, .label = "label", .positive = "1", .model = COACH_FORECAST_MODEL,
                       .out = models, .trained_by = "api", .seed = 42, .nthread = 1, .max_depth = 3};
    json_t *rep = NULL;
    int rc = ml_train(&o, &rep, err, errlen);
    unlink(csv);
    if (rc) return -1;
    ml_set_active(dir, (int)json_integer_value(json_object_get(rep, "version")));
    json_object_set_new(rep, "tenant_id", json_integer(tenant));
    json_object_set_new(rep, "converted", json_integer(c.pos));
    json_object_set_new(rep, "not_converted", json_integer(c.neg));
    *report = rep;
    return 0;
}

/* ---- the forecast ---- */

/* The tenant's own 30-day conversion rate over its newest leads' first
 * snapshots, when there are 20 or more of them (else *rate is left). */
static int prior_base_rate(store_tx *tx, int64_t now_ms, double *rate, store_err *err) {
    fdata d;
    int rc = load(tx, 0, FC_PRIOR_SAMPLE, 0, &d, err);
    int rows = 0, pos = 0;
    for (int i = 0; !rc && i < d.n; i++) {
        const lead *l = &d.l[i];
        int64_t s = l->start + DAY_MS, end = s + FC_HORIZON_DAYS * DAY_MS;
        if (s >= now_ms || l->closed_at <= s) continue;
        if (l->won && l->closed_at <= end) rows++, pos++;
        else if (!l->open || end <= now_ms) rows++;
    }
    if (rows >= 20) *rate = (double)pos / rows;
    fdata_free(&d);
    return rc;
}

int coach_forecast(store_tx *tx, app *a, int64_t agent, int64_t now_ms, json_t **out, store_err *err) {
    *out = NULL;
    int64_t tenant = store_tx_tenant(tx);
    char dir[1300], why[ML_ERR_LEN];
    model_dir(a, tenant, dir, sizeof dir);
    ml_model *m = NULL;
    int version = ml_active_version(dir);
    if (version > 0) {
        char vdir[1400];
        snprintf(vdir, sizeof vdir, "%s/v%d", dir, version);
        m = ml_model_load(vdir, why, sizeof why);
    }
    fdata d;
    int rc = load(tx, agent, FC_MAX_LEADS, 0, &d, err);
    double base_rate = FC_PRIOR_BASE;
    if (!rc && !m) rc = prior_base_rate(tx, now_ms, &base_rate, err);
    if (rc) {
        fdata_free(&d);
        ml_model_free(m);
        return rc;
    }
    double *tmp = eh_malloc(sizeof *tmp * ((size_t)d.n + 1)), x[NX];
    const ml_schema *sc = m ? ml_model_schema(m) : NULL;
    int w = sc ? ml_schema_width(sc) : 0;
    float *enc = eh_malloc(sizeof *enc * ((size_t)w + 1));
    double *phi = eh_malloc(sizeof *phi * ((size_t)w + 1));
    if (!tmp || !enc || !phi) {
        eh_free(tmp), eh_free(enc), eh_free(phi);
        fdata_free(&d);
        ml_model_free(m);
        return oom(err);
    }
    double eff[NX + 1], val[NX + 1], expected = 0;
    int nval[NX + 1], open = 0;
    memset(eff, 0, sizeof eff);
    memset(val, 0, sizeof val);
    memset(nval, 0, sizeof nval);
    for (int i = 0; i < d.n; i++) {
        const lead *l = &d.l[i];
        if (l->agent != agent || !l->open) continue;
        open++;
        features(&d, l, now_ms, 1, x, tmp);
        for (int f = 0; f < NX; f++)
            if (!isnan(x[f])) val[f] += x[f], nval[f]++;
        double p;
        if (!m) {
            p = prior_p(x, l->timeline, base_rate, eff);
        } else {
            ml_encode_begin(sc, enc);
            for (int f = 0; f <= NX; f++) {
                int k = ml_schema_find(sc, f == NX ? "timeline" : xname[f]);
                if (k < 0) continue;
                ml_value v = {.type = ML_V_NULL};
                if (f == NX) {
                    if (l->timeline[0]) v.type = ML_V_STRING, v.s = l->timeline;
                } else if (!isnan(x[f])) {
                    v.type = ML_V_REAL, v.d = x[f];
                }
                ml_encode_value(sc, k, &v, enc, why, sizeof why); /* an unseen category reads as missing */
            }
            double margin = ml_model_margin(m, enc), base;
            p = ml_model_output(m, margin);
            ml_model_shap(m, enc, phi, &base);
            /* margin contributions to probability ones, in proportion */
            double pb = ml_model_output(m, base);
            double scale = fabs(margin - base) > 1e-9 ? (p - pb) / (margin - base) : p * (1 - p);
            for (int c = 0; c < w; c++) {
                const char *fname = ml_schema_feature(sc, ml_schema_owner(sc, c));
                int f = NX;
                for (int q = 0; q < NX; q++)
                    if (!strcmp(fname, xname[q])) f = q;
                eff[f] += phi[c] * scale;
            }
        }
        expected += p;
    }
    /* the drivers: biggest effect on expected conversions first */
    int order[NX + 1];
    for (int i = 0; i <= NX; i++) order[i] = i;
    for (int i = 1; i <= NX; i++)
        for (int j = i; j > 0 && fabs(eff[order[j - 1]]) < fabs(eff[order[j]]); j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    json_t *drivers = json_array();
    for (int i = 0; i <= NX && json_array_size(drivers) < 6; i++) {
        int f = order[i];
        if (fabs(eff[f]) < 1e-6) break;
        json_t *mean = f < NX && nval[f] ? json_real(round(val[f] / nval[f] * 1000) / 1000) : json_null();
        json_array_append_new(drivers, json_pack("{s:s, s:f, s:o}", "feature", f == NX ? "timeline" : xname[f],
                                                 "effect", round(eff[f] * 10000) / 10000, "mean_value", mean));
    }
    const json_t *info = m ? ml_model_info(m) : NULL;
    *out = json_pack("{s:i, s:f, s:i, s:s, s:o, s:o?, s:o, s:o}", "horizon_days", FC_HORIZON_DAYS,
                     "expected_conversions", round(expected * 1000) / 1000, "open_leads", open, "kind",
                     m ? "model" : "prior", "model_version", m ? json_integer(version) : json_null(), "auc",
                     info ? json_deep_copy(json_object_get(json_object_get(info, "metrics"), "auc")) : json_null(),
                     "prior_base_rate", m ? json_null() : json_real(round(base_rate * 10000) / 10000), "drivers",
                     drivers);
    eh_free(tmp), eh_free(enc), eh_free(phi);
    fdata_free(&d);
    ml_model_free(m);
    return *out ? STORE_OK : oom(err);
}
