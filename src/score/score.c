/* Lead scoring: features from the store, the points prior, the per-tenant
 * model cache, and the re-scoring every lead write runs. See score.h. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "ml/ml.h"
#include "internal.h"
#include "leads/leads.h"
#include "score.h"

/* ---- features ---- */

static const char *const feat_name[NFEAT] = {
    "source",       "timeline",   "property_type",   "preapproved",  "budget_max",
    "budget_vs_area", "preferences", "has_email",     "has_phone",    "consents",
    "inbound_messages", "outbound_messages", "calls", "appointments", "first_response_min",
    "days_since_inbound", "days_since_activity", "age_days", "tags", "days_since_outbound",
    "days_since_call", "awaiting_reply", "type", "zip", "city", "beds", "baths", "sqft", "lat", "lng",
};
static int is_cat(int f) { return f < 3 || (f >= F_L_TYPE && f <= F_L_CITY); }
#define FB(f) (1ull << (f))
/* What each built-in model reads. lead_scoring: the lead and its
 * behaviour; churn: engagement only (who the lead is matters less than
 * whether the conversation is alive). */
static const struct builtin {
    const char *name;
    uint64_t feats;
} builtins[] = {
    {SCORE_MODEL, FB(F_SOURCE) | FB(F_TIMELINE) | FB(F_PROPERTY_TYPE) | FB(F_PREAPPROVED) | FB(F_BUDGET_MAX) |
                      FB(F_BUDGET_VS_AREA) | FB(F_PREFS) | FB(F_HAS_EMAIL) | FB(F_HAS_PHONE) | FB(F_CONSENTS) |
                      FB(F_INBOUND) | FB(F_OUTBOUND) | FB(F_CALLS) | FB(F_APPOINTMENTS) | FB(F_FIRST_RESPONSE_MIN) |
                      FB(F_DAYS_SINCE_INBOUND) | FB(F_DAYS_SINCE_ACTIVITY) | FB(F_AGE_DAYS) | FB(F_TAGS)},
    {SCORE_CHURN, FB(F_TIMELINE) | FB(F_PREAPPROVED) | FB(F_INBOUND) | FB(F_OUTBOUND) | FB(F_CALLS) |
                      FB(F_APPOINTMENTS) | FB(F_FIRST_RESPONSE_MIN) | FB(F_DAYS_SINCE_INBOUND) |
                      FB(F_DAYS_SINCE_OUTBOUND) | FB(F_DAYS_SINCE_CALL) | FB(F_AWAITING_REPLY) | FB(F_AGE_DAYS)},
    {SCORE_VALUE, FB(F_L_TYPE) | FB(F_L_ZIP) | FB(F_L_CITY) | FB(F_L_BEDS) | FB(F_L_BATHS) | FB(F_L_SQFT) |
                      FB(F_L_LAT) | FB(F_L_LNG)},
};

static int builtin_find(const char *name) {
    for (int i = 0; i < NBUILTIN; i++)
        if (name && strcmp(builtins[i].name, name) == 0) return i;
    return -1;
}

int score_builtin(const char *name) { return builtin_find(name) >= 0; }
int score_builtin_index(const char *name) { return builtin_find(name); }
const char *score_builtin_name(int b) { return b >= 0 && b < NBUILTIN ? builtins[b].name : NULL; }
/* One lead's row: its columns, then its activity aggregates up to a time
 * ($2: now when scoring, the snapshot time when building churn training
 * rows). The same columns serve scoring (one lead) and training. */
#define LEAD_COLS                                                                                         \
    "SELECT l.id, l.source, l.timeline, l.property_type, l.preapproved, l.budget_min, l.budget_max, "     \
    "l.beds, l.baths, l.areas, l.email, l.phone, l.consent_sms + l.consent_email + l.consent_call, "      \
    "l.tags, l.created_at, l.updated_at, l.score, l.agent_id, l.status, "
#define LEAD_THRESHOLD "(SELECT hot_threshold FROM tenant_settings s WHERE s.tenant_id = l.tenant_id) "
#define LEAD_SELECT                                                                                       \
    LEAD_COLS                                                                                             \
    "COALESCE(x.inb, 0), COALESCE(x.outb, 0), COALESCE(x.calls, 0), COALESCE(x.appts, 0), x.first_out, " \
    "x.last_in, x.last_act, x.last_out, x.last_call, " LEAD_THRESHOLD
#define LEAD_FROM                                                                \
    "FROM leads l LEFT JOIN (SELECT lead_id, "                                   \
    "SUM(CASE WHEN direction = 'inbound' THEN 1 ELSE 0 END) AS inb, "            \
    "SUM(CASE WHEN direction = 'outbound' THEN 1 ELSE 0 END) AS outb, "          \
    "SUM(CASE WHEN channel = 'call' THEN 1 ELSE 0 END) AS calls, "               \
    "SUM(CASE WHEN channel = 'appointment' THEN 1 ELSE 0 END) AS appts, "        \
    "MIN(CASE WHEN direction = 'outbound' THEN occurred_at END) AS first_out, "  \
    "MAX(CASE WHEN direction = 'inbound' THEN occurred_at END) AS last_in, "     \
    "MAX(occurred_at) AS last_act, "                                             \
    "MAX(CASE WHEN direction = 'outbound' THEN occurred_at END) AS last_out, "   \
    "MAX(CASE WHEN channel = 'call' THEN occurred_at END) AS last_call "         \
    "FROM activities WHERE tenant_id = $1 AND occurred_at <= $2 "
enum {
    C_ID, C_SOURCE, C_TIMELINE, C_PTYPE, C_PREAPPROVED, C_BMIN, C_BMAX, C_BEDS, C_BATHS, C_AREAS, C_EMAIL,
    C_PHONE, C_CONSENTS, C_TAGS, C_CREATED, C_UPDATED, C_SCORE, C_AGENT, C_STATUS, C_INB, C_OUTB, C_CALLS,
    C_APPTS, C_FIRST_OUT, C_LAST_IN, C_LAST_ACT, C_LAST_OUT, C_LAST_CALL, C_THRESHOLD,
    C_REPLIED_AFTER /* churn training only */
};
static const char sql_one[] = LEAD_SELECT LEAD_FROM "AND lead_id = $3 GROUP BY lead_id) x ON x.lead_id = l.id "
                                                    "WHERE l.tenant_id = $1 AND l.id = $3 AND l.deleted_at IS NULL";
/* The same row for a lead with no activity at all (one created in this
 * transaction): the aggregates are known without reading activities. */
static const char sql_one_new[] = LEAD_COLS "0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, " LEAD_THRESHOLD
                                            "FROM leads l WHERE l.tenant_id = $1 AND l.id = $2 AND l.deleted_at IS NULL";
/* lead_scoring's examples: every won or lost lead. */
static const char sql_won_lost[] = LEAD_SELECT LEAD_FROM "GROUP BY lead_id) x ON x.lead_id = l.id "
                                                         "WHERE l.tenant_id = $1 AND l.deleted_at IS NULL "
                                                         "AND l.status IN ('won', 'lost') ORDER BY l.id";
/* churn's examples: every lead engaged (it had replied) at the snapshot
 * time $2, with whether it replied again in the horizon after ($2, $3].
 * Engagement is read from the activities' own times, not from when the
 * lead row was made, so imported history counts. */
static const char sql_engaged_at[] =
    LEAD_SELECT ", (SELECT COUNT(*) FROM activities a2 WHERE a2.tenant_id = l.tenant_id AND a2.lead_id = l.id "
                "AND a2.direction = 'inbound' AND a2.occurred_at > $2 AND a2.occurred_at <= $3) " LEAD_FROM
                "GROUP BY lead_id) x ON x.lead_id = l.id WHERE l.tenant_id = $1 AND l.deleted_at IS NULL "
                "AND x.inb > 0 ORDER BY l.id";
#define FOREVER ((int64_t)1 << 62)

const char *score_timeline_bucket(const char *text) {
    if (!text || !*text) return NULL;
    char low[65];
    size_t n = 0;
    for (; text[n] && n < sizeof low - 1; n++) low[n] = (char)tolower((unsigned char)text[n]);
    low[n] = 0;
    if (strstr(low, "asap") || strstr(low, "now") || strstr(low, "immediate") || strstr(low, "ready"))
        return "0-3m";
    /* The largest number in the text, in months by the unit after it. */
    double best = -1;
    for (const char *s = low; *s;) {
        if (!isdigit((unsigned char)*s)) {
            s++;
            continue;
        }
        char *end;
        double v = strtod(s, &end);
        while (*end == ' ' || *end == '+') end++;
        double months = v;
        if (strncmp(end, "week", 4) == 0 || strncmp(end, "wk", 2) == 0) months = v / 4.345;
        else if (strncmp(end, "day", 3) == 0) months = v / 30.4;
        else if (strncmp(end, "year", 4) == 0 || strncmp(end, "yr", 2) == 0) months = v * 12;
        if (months > best) best = months;
        s = end;
    }
    if (best < 0) return NULL;
    if (best <= 3) return "0-3m";
    if (best <= 6) return "3-6m";
    if (best <= 12) return "6-12m";
    return "12m+";
}

/* Items of a stored JSON array of strings (tags, areas), counted without
 * parsing it into a tree: this runs in every lead write. */
static int json_array_len(const char *text) {
    int n = 0, in_str = 0, any = 0;
    for (const char *p = text ? text : ""; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == '"') in_str = 0;
        } else if (*p == '"') {
            in_str = 1;
            any = 1;
        } else if (*p == ',') {
            n++;
        } else if (*p != '[' && *p != ']' && *p != ' ') {
            any = 1;
        }
    }
    return any ? n + 1 : 0;
}

static double num_or_nan(const store_rows *r, int row, int col) {
    return store_rows_isnull(r, row, col) ? NAN : store_rows_real(r, row, col);
}

/* The average asking price of the tenant's active listings in the lead's
 * areas (zip codes; the first four). NaN when none. */
static int area_price(store_tx *tx, const char *areas, double *avg, store_err *err) {
    *avg = NAN;
    json_t *a = areas ? json_loads(areas, 0, NULL) : NULL;
    const char *zip[4];
    int nz = 0;
    for (size_t i = 0; json_is_array(a) && i < json_array_size(a) && nz < 4; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (s && *s) zip[nz++] = s;
    }
    if (!nz) {
        json_decref(a);
        return STORE_OK;
    }
    for (int i = nz; i < 4; i++) zip[i] = zip[0];
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_S(zip[0]), SV_S(zip[1]), SV_S(zip[2]), SV_S(zip[3])};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT AVG(price) FROM listings WHERE tenant_id = $1 AND zip IN ($2, $3, $4, $5) "
                         "AND deleted_at IS NULL AND status = 'active' AND price > 0",
                         p, 5, &r, err);
    json_decref(a);
    if (rc) return rc;
    if (store_rows_count(r) && !store_rows_isnull(r, 0, 0)) *avg = store_rows_real(r, 0, 0);
    store_rows_free(r);
    return STORE_OK;
}

/* Fills f from row `row` of a LEAD_COLS result, as of asof_ms. */
static int features_of(store_tx *tx, const store_rows *r, int row, int64_t asof_ms, feats *f,
                       store_err *err) {
    memset(f, 0, sizeof *f);
    for (int i = 0; i < NFEAT; i++) f->num[i] = NAN;
    const int catcol[3] = {C_SOURCE, C_TIMELINE, C_PTYPE};
    for (int i = 0; i < 3; i++) {
        const char *s = store_rows_text(r, row, catcol[i]);
        if (i == F_TIMELINE) s = score_timeline_bucket(s);
        if (s) snprintf(f->cat[i], sizeof f->cat[i], "%s", s);
    }
    f->num[F_PREAPPROVED] = num_or_nan(r, row, C_PREAPPROVED);
    double bmax = num_or_nan(r, row, C_BMAX), bmin = num_or_nan(r, row, C_BMIN);
    double budget = isnan(bmax) ? bmin : bmax;
    f->num[F_BUDGET_MAX] = budget;
    const char *areas = store_rows_text(r, row, C_AREAS);
    int nareas = json_array_len(areas);
    if (!isnan(budget) && nareas) {
        double avg;
        int rc = area_price(tx, areas, &avg, err);
        if (rc) return rc;
        if (!isnan(avg) && avg > 0) f->num[F_BUDGET_VS_AREA] = budget / avg;
    }
    f->num[F_PREFS] = (!isnan(budget)) + !store_rows_isnull(r, row, C_BEDS) + !store_rows_isnull(r, row, C_BATHS) +
                      !store_rows_isnull(r, row, C_PTYPE) + (nareas > 0) + !store_rows_isnull(r, row, C_TIMELINE);
    f->num[F_HAS_EMAIL] = !store_rows_isnull(r, row, C_EMAIL);
    f->num[F_HAS_PHONE] = !store_rows_isnull(r, row, C_PHONE);
    f->num[F_CONSENTS] = store_rows_real(r, row, C_CONSENTS);
    f->num[F_INBOUND] = store_rows_real(r, row, C_INB);
    f->num[F_OUTBOUND] = store_rows_real(r, row, C_OUTB);
    f->num[F_CALLS] = store_rows_real(r, row, C_CALLS);
    f->num[F_APPOINTMENTS] = store_rows_real(r, row, C_APPTS);
    int64_t created = store_rows_int(r, row, C_CREATED);
    const double day = 86400000.0;
    if (!store_rows_isnull(r, row, C_FIRST_OUT)) {
        double m = (double)(store_rows_int(r, row, C_FIRST_OUT) - created) / 60000.0;
        f->num[F_FIRST_RESPONSE_MIN] = m < 0 ? 0 : m;
    }
    if (!store_rows_isnull(r, row, C_LAST_IN))
        f->num[F_DAYS_SINCE_INBOUND] = fmax(0, (double)(asof_ms - store_rows_int(r, row, C_LAST_IN)) / day);
    if (!store_rows_isnull(r, row, C_LAST_ACT))
        f->num[F_DAYS_SINCE_ACTIVITY] = fmax(0, (double)(asof_ms - store_rows_int(r, row, C_LAST_ACT)) / day);
    f->num[F_AGE_DAYS] = fmax(0, (double)(asof_ms - created) / day);
    f->num[F_TAGS] = json_array_len(store_rows_text(r, row, C_TAGS));
    if (!store_rows_isnull(r, row, C_LAST_OUT))
        f->num[F_DAYS_SINCE_OUTBOUND] = fmax(0, (double)(asof_ms - store_rows_int(r, row, C_LAST_OUT)) / day);
    if (!store_rows_isnull(r, row, C_LAST_CALL))
        f->num[F_DAYS_SINCE_CALL] = fmax(0, (double)(asof_ms - store_rows_int(r, row, C_LAST_CALL)) / day);
    /* the agent wrote last and the lead has not answered */
    f->num[F_AWAITING_REPLY] = !store_rows_isnull(r, row, C_LAST_OUT) &&
                               (store_rows_isnull(r, row, C_LAST_IN) ||
                                store_rows_int(r, row, C_LAST_OUT) > store_rows_int(r, row, C_LAST_IN));
    return STORE_OK;
}

static json_t *feat_value(const feats *f, int i) {
    if (is_cat(i)) return f->cat[i][0] ? json_string(f->cat[i]) : json_null();
    double v = f->num[i];
    if (isnan(v)) return json_null();
    return v == floor(v) && fabs(v) < 1e15 ? json_integer((json_int_t)v) : json_real(round(v * 1000) / 1000);
}

void score_listing_features(const store_rows *r, int row, feats *f) {
    memset(f, 0, sizeof *f);
    for (int i = 0; i < NFEAT; i++) f->num[i] = NAN;
    const int cat[][2] = {{F_L_TYPE, L_TYPE}, {F_L_ZIP, L_ZIP}, {F_L_CITY, L_CITY}};
    for (int i = 0; i < 3; i++) {
        const char *s = store_rows_text(r, row, cat[i][1]);
        if (s) snprintf(f->cat[cat[i][0]], sizeof f->cat[0], "%s", s);
    }
    const int num[][2] = {{F_L_BEDS, L_BEDS}, {F_L_BATHS, L_BATHS}, {F_L_SQFT, L_SQFT}, {F_L_LAT, L_LAT},
                          {F_L_LNG, L_LNG}};
    for (int i = 0; i < 5; i++) f->num[num[i][0]] = num_or_nan(r, row, num[i][1]);
}

/* ---- the points prior ---- */

static void add_reason(reason *rs, int *n, int feature, double effect) {
    if (effect != 0) rs[(*n)++] = (reason){feature, effect};
}

/* Points out of 100, each documented in README "Lead scoring". */
static double prior(const feats *f, reason *rs, int *n) {
    double pts = 10;
    *n = 0;
    const double *x = f->num;
    if (x[F_PREAPPROVED] == 1) add_reason(rs, n, F_PREAPPROVED, 20);
    if (strcmp(f->cat[F_TIMELINE], "0-3m") == 0) add_reason(rs, n, F_TIMELINE, 15);
    else if (strcmp(f->cat[F_TIMELINE], "3-6m") == 0) add_reason(rs, n, F_TIMELINE, 8);
    else if (strcmp(f->cat[F_TIMELINE], "6-12m") == 0) add_reason(rs, n, F_TIMELINE, 3);
    if (x[F_APPOINTMENTS] > 0) add_reason(rs, n, F_APPOINTMENTS, 20);
    if (x[F_INBOUND] > 0) add_reason(rs, n, F_INBOUND, fmin(15, 5 * x[F_INBOUND]));
    if (x[F_FIRST_RESPONSE_MIN] <= 5) add_reason(rs, n, F_FIRST_RESPONSE_MIN, 10);
    else if (x[F_FIRST_RESPONSE_MIN] <= 60) add_reason(rs, n, F_FIRST_RESPONSE_MIN, 5);
    add_reason(rs, n, F_PREFS, 2 * x[F_PREFS]);
    if (x[F_HAS_PHONE] == 1) add_reason(rs, n, F_HAS_PHONE, 3);
    if (x[F_HAS_EMAIL] == 1) add_reason(rs, n, F_HAS_EMAIL, 2);
    if (x[F_BUDGET_VS_AREA] >= 0.8 && x[F_BUDGET_VS_AREA] <= 1.5) add_reason(rs, n, F_BUDGET_VS_AREA, 5);
    if (x[F_DAYS_SINCE_INBOUND] > 14) add_reason(rs, n, F_DAYS_SINCE_INBOUND, -10);
    for (int i = 0; i < *n; i++) pts += rs[i].effect;
    return fmin(99, fmax(1, pts)) / 100.0;
}

/* Churn risk within SCORE_CHURN_DAYS, in probability units, each
 * documented in README "Churn". */
static double churn_prior(const feats *f, reason *rs, int *n) {
    double p = 0.10;
    *n = 0;
    const double *x = f->num;
    double silent = x[F_DAYS_SINCE_INBOUND];
    if (isnan(silent)) add_reason(rs, n, F_DAYS_SINCE_INBOUND, 0.20);
    else if (silent > 14) add_reason(rs, n, F_DAYS_SINCE_INBOUND, 0.45);
    else if (silent > 7) add_reason(rs, n, F_DAYS_SINCE_INBOUND, 0.25);
    else if (silent > 3) add_reason(rs, n, F_DAYS_SINCE_INBOUND, 0.10);
    if (isnan(x[F_DAYS_SINCE_CALL]) || x[F_DAYS_SINCE_CALL] > 5) add_reason(rs, n, F_DAYS_SINCE_CALL, 0.10);
    if (x[F_AWAITING_REPLY] == 1) add_reason(rs, n, F_AWAITING_REPLY, 0.10);
    if (isnan(x[F_DAYS_SINCE_OUTBOUND]) || x[F_DAYS_SINCE_OUTBOUND] > 3) add_reason(rs, n, F_DAYS_SINCE_OUTBOUND, 0.05);
    if (x[F_APPOINTMENTS] > 0) add_reason(rs, n, F_APPOINTMENTS, -0.15);
    if (x[F_PREAPPROVED] == 1) add_reason(rs, n, F_PREAPPROVED, -0.05);
    if (strcmp(f->cat[F_TIMELINE], "0-3m") == 0) add_reason(rs, n, F_TIMELINE, -0.05);
    for (int i = 0; i < *n; i++) p += rs[i].effect;
    return fmin(0.98, fmax(0.02, p));
}

/* ---- scoring ---- */

static int cmp_reason(const void *a, const void *b) {
    double x = fabs(((const reason *)a)->effect), y = fabs(((const reason *)b)->effect);
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Scores f with t's model: encodes the features it knows, counts the row
 * for drift, explains with SHAP summed per raw feature into rs (NULL: no
 * explanation). */
static double model_score(score_ctx *c, tmodel *t, const feats *f, reason *rs, int *n, double *base_out) {
    const ml_model *m = t->m;
    const ml_schema *s = ml_model_schema(m);
    int w = ml_schema_width(s), nf = ml_schema_features(s);
    float xs[256];
    double phis[256];
    float *x = w <= 256 ? xs : eh_malloc((size_t)w * sizeof *x);
    double *phi = w <= 256 ? phis : eh_malloc((size_t)w * sizeof *phi);
    double *per = eh_calloc((size_t)nf + 1, sizeof *per);
    *n = 0;
    if (!x || !phi || !per) {
        if (x != xs) eh_free(x);
        if (phi != phis) eh_free(phi);
        eh_free(per);
        return NAN;
    }
    ml_encode_begin(s, x);
    char err[ML_ERR_LEN];
    for (int i = 0; i < NFEAT; i++) {
        int k = ml_schema_find(s, feat_name[i]);
        if (k < 0) continue;
        ml_value v = {.type = ML_V_NULL};
        if (is_cat(i)) {
            if (f->cat[i][0]) v = (ml_value){.type = ML_V_STRING, .s = f->cat[i]};
        } else if (!isnan(f->num[i])) {
            v = (ml_value){.type = ML_V_REAL, .d = f->num[i]};
        }
        if (ml_encode_value(s, k, &v, x, err, sizeof err)) {
            /* an unseen category: score it as missing */
            v = (ml_value){.type = ML_V_NULL};
            ml_encode_value(s, k, &v, x, err, sizeof err);
        }
    }
    reg_observe(c, t, x);
    double base, margin = ml_model_margin(m, x);
    if (rs) { /* explanations cost more than the score: only when asked */
        ml_model_shap(m, x, phi, &base);
        if (base_out) *base_out = base;
        for (int col = 0; col < w; col++) per[ml_schema_owner(s, col)] += phi[col];
        for (int i = 0; i < NFEAT; i++) {
            int k = ml_schema_find(s, feat_name[i]);
            if (k >= 0 && fabs(per[k]) > 1e-6) rs[(*n)++] = (reason){i, per[k]};
        }
    }
    if (x != xs) eh_free(x);
    if (phi != phis) eh_free(phi);
    eh_free(per);
    return ml_model_output(m, margin);
}

/* A score by the tenant's model of builtin b when it has one (kind model,
 * *version set), else by the prior. */
double score_predict(score_ctx *c, store_tx *tx, int64_t tenant, int b, const feats *f, reason *rs, int *n,
                     int *version, double *base) {
    tmodel *t = c ? reg_acquire(c, tx, tenant, b) : NULL;
    double sc = NAN;
    *version = 0;
    if (t && t->m) {
        sc = model_score(c, t, f, rs, n, base);
        *version = t->version;
    }
    if (c) reg_release(c, t);
    if (isnan(sc)) {
        *version = 0;
        if (b == B_VALUE) return NAN; /* no valuation without a model */
        reason own[NFEAT + 16];
        sc = b == B_CHURN ? churn_prior(f, rs ? rs : own, n) : prior(f, rs ? rs : own, n);
        if (base) *base = 0.10; /* both priors start there (10 points of 100) */
    }
    return round(sc * 10000) / 10000;
}

json_t *score_reasons_json(const feats *f, reason *rs, int n, int kind_model) {
    qsort(rs, (size_t)n, sizeof *rs, cmp_reason);
    json_t *a = json_array();
    for (int i = 0; i < n && i < 6; i++) {
        double e = kind_model ? round(rs[i].effect * 10000) / 10000 : rs[i].effect;
        json_array_append_new(a, json_pack("{s:s, s:o, s:f}", "feature", feat_name[rs[i].feature], "value",
                                           feat_value(f, rs[i].feature), "effect", e));
    }
    return a;
}

/* Reads one lead's row (sql_one, or sql_one_new when it has no activity)
 * as of now; STORE_NOTFOUND if none. */
static int lead_row(store_tx *tx, int64_t lead_id, int64_t now_ms, int fresh, store_rows **r, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(now_ms), SV_I(lead_id)};
    store_val pn[] = {SV_I(store_tx_tenant(tx)), SV_I(lead_id)};
    int rc = fresh ? store_query(tx, sql_one_new, pn, 2, r, err) : store_query(tx, sql_one, p, 3, r, err);
    if (rc) return rc;
    if (!store_rows_count(*r)) {
        store_rows_free(*r);
        *r = NULL;
        err->code = STORE_NOTFOUND;
        snprintf(err->msg, sizeof err->msg, "no such lead");
        return STORE_NOTFOUND;
    }
    return STORE_OK;
}

int score_append_event(store_tx *tx, const char *type, json_t *ev, store_err *err) {
    char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    int rc = text ? store_event_append(tx, type, text, NULL, err) : STORE_NOMEM;
    free(text);
    json_decref(ev);
    if (rc == STORE_NOMEM) {
        err->code = STORE_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
    }
    return rc;
}

/* Text writers for the score events: the bytes json_dumps(JSON_COMPACT)
 * gives for the JSON trees score_reasons_json and json_pack build (keys in
 * insertion order; reals in jansson's "%.17g" form, buf_json_real), without
 * building, encoding and freeing a tree per reason and per event on every
 * lead write. A unit test compares them with jansson's encoding. Strings
 * are escaped by buf_json_str (jansson writes \b and \f as such where it
 * writes \u0008 and \u000c: the same JSON value). */

/* ,"key": (or without the comma) */
static int put_key(buf *b, const char *k, int first) {
    int rc = first ? BUF_OK : buf_putc(b, ',');
    rc |= buf_putc(b, '"');
    rc |= buf_puts(b, k);
    return rc | buf_append(b, "\":", 2);
}

/* One reason's value, as feat_value gives it. */
static int put_feat_value(buf *b, const feats *f, int i) {
    if (is_cat(i)) {
        if (!f->cat[i][0]) return buf_append(b, "null", 4);
        int rc = buf_putc(b, '"');
        rc |= buf_json_str(b, f->cat[i], strlen(f->cat[i]));
        return rc | buf_putc(b, '"');
    }
    double v = f->num[i];
    if (isnan(v)) return buf_append(b, "null", 4);
    if (v == floor(v) && fabs(v) < 1e15) return buf_json_int(b, (long long)v);
    return buf_json_real(b, round(v * 1000) / 1000);
}

int score_reasons_text(const feats *f, reason *rs, int n, int kind_model, buf *out) {
    qsort(rs, (size_t)n, sizeof *rs, cmp_reason);
    int rc = buf_putc(out, '[');
    int written = 0;
    for (int i = 0; !rc && i < n && i < 6; i++) {
        double e = kind_model ? round(rs[i].effect * 10000) / 10000 : rs[i].effect;
        /* a value with no JSON form (an infinite effect, say) failed the
         * tree's json_pack, which left the reason out: so here too */
        double v = is_cat(rs[i].feature) ? 0 : f->num[rs[i].feature];
        if (!isfinite(e) || (!isnan(v) && !(v == floor(v) && fabs(v) < 1e15) && !isfinite(round(v * 1000) / 1000)))
            continue;
        if (written++) rc |= buf_putc(out, ',');
        rc |= buf_putc(out, '{');
        rc |= put_key(out, "feature", 1);
        rc |= buf_putc(out, '"');
        rc |= buf_puts(out, feat_name[rs[i].feature]);
        rc |= buf_putc(out, '"');
        rc |= put_key(out, "value", 0);
        rc |= put_feat_value(out, f, rs[i].feature);
        rc |= put_key(out, "effect", 0);
        rc |= buf_json_real(out, e);
        rc |= buf_putc(out, '}');
    }
    return rc ? rc : buf_putc(out, ']');
}

/* {"lead_id":..,"score":..,"previous":..,"kind":..,"model_version":..,"reasons":rtext} */
int score_scored_text(buf *out, int64_t lead_id, double sc, int had, double old, const char *kind, int version,
                      const char *rtext, size_t rlen) {
    int rc = buf_putc(out, '{');
    rc |= put_key(out, "lead_id", 1);
    rc |= buf_json_int(out, (long long)lead_id);
    rc |= put_key(out, "score", 0);
    rc |= buf_json_real(out, sc);
    rc |= put_key(out, "previous", 0);
    rc |= had ? buf_json_real(out, old) : buf_append(out, "null", 4);
    rc |= put_key(out, "kind", 0);
    rc |= buf_putc(out, '"');
    rc |= buf_json_str(out, kind, strlen(kind));
    rc |= buf_putc(out, '"');
    rc |= put_key(out, "model_version", 0);
    rc |= version ? buf_json_int(out, version) : buf_append(out, "null", 4);
    rc |= put_key(out, "reasons", 0);
    rc |= buf_append(out, rtext, rlen);
    return rc ? rc : buf_putc(out, '}');
}

/* {"lead_id":..,"score":..,"threshold":..,"agent_id":..,"reasons":rtext} */
int score_hot_text(buf *out, int64_t lead_id, double sc, double thr, int64_t agent, const char *rtext, size_t rlen) {
    int rc = buf_putc(out, '{');
    rc |= put_key(out, "lead_id", 1);
    rc |= buf_json_int(out, (long long)lead_id);
    rc |= put_key(out, "score", 0);
    rc |= buf_json_real(out, sc);
    rc |= put_key(out, "threshold", 0);
    rc |= buf_json_real(out, thr);
    rc |= put_key(out, "agent_id", 0);
    rc |= agent ? buf_json_int(out, (long long)agent) : buf_append(out, "null", 4);
    rc |= put_key(out, "reasons", 0);
    rc |= buf_append(out, rtext, rlen);
    return rc ? rc : buf_putc(out, '}');
}

/* A text writer's failure as the store's: out of memory, or a value with
 * no JSON form (a NaN score: the tree's json_pack failed there too). */
static int text_failed(int rc, store_err *err) {
    err->code = rc == BUF_INVALID ? STORE_INVALID : STORE_NOMEM;
    snprintf(err->msg, sizeof err->msg, "%s", rc == BUF_INVALID ? "score is not a finite number" : "out of memory");
    return err->code;
}

static int rescore(store_tx *tx, int64_t lead_id, int64_t now_ms, int fresh, store_err *err) {
    store_rows *r = NULL;
    int rc = lead_row(tx, lead_id, now_ms, fresh, &r, err);
    if (rc) return rc;
    feats f;
    if ((rc = features_of(tx, r, 0, now_ms, &f, err))) {
        store_rows_free(r);
        return rc;
    }
    int had = !store_rows_isnull(r, 0, C_SCORE);
    double old = store_rows_real(r, 0, C_SCORE);
    double thr = store_rows_isnull(r, 0, C_THRESHOLD) ? 0.7 : store_rows_real(r, 0, C_THRESHOLD);
    int64_t agent = store_rows_int(r, 0, C_AGENT);
    store_rows_free(r);

    reason rs[NFEAT + 16];
    int n = 0, version;
    double sc = score_predict(leads_scorer(tx), tx, store_tx_tenant(tx), B_LEAD, &f, rs, &n, &version, NULL);
    if (had && fabs(sc - old) < 0.001) return STORE_OK;

    const char *kind = version ? "model" : "prior";
    buf rt, ev;
    buf_init(&rt, 1 << 16);
    buf_init(&ev, 1 << 16);
    int brc = score_reasons_text(&f, rs, n, version != 0, &rt);
    if (brc) rc = text_failed(brc, err);
    store_val up[] = {SV_I(store_tx_tenant(tx)), SV_I(lead_id), SV_D(sc)};
    if (!rc) rc = store_query(tx, "UPDATE leads SET score = $3 WHERE tenant_id = $1 AND id = $2", up, 3, NULL, err);
    if (!rc) {
        store_val ins[] = {SV_I(store_tx_tenant(tx)), SV_I(lead_id), SV_D(sc), SV_S(kind),
                           version ? SV_I(version) : SV_NULLV, SV_SN(rt.p, rt.len), SV_I(now_ms)};
        rc = store_query(tx,
                         "INSERT INTO lead_scores (tenant_id, lead_id, score, kind, model_version, reasons, created_at) "
                         "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                         ins, 7, NULL, err);
    }
    /* both events end with the reasons: their text is the one just written */
    if (!rc) {
        if ((brc = score_scored_text(&ev, lead_id, sc, had, old, kind, version, rt.p, rt.len)))
            rc = text_failed(brc, err);
        else
            rc = store_event_append(tx, "lead.scored", ev.p, NULL, err);
    }
    if (!rc && sc >= thr && (!had || old < thr)) {
        buf_reset(&ev);
        if ((brc = score_hot_text(&ev, lead_id, sc, thr, agent, rt.p, rt.len))) rc = text_failed(brc, err);
        else rc = store_event_append(tx, "lead.hot", ev.p, NULL, err);
    }
    buf_free(&ev);
    buf_free(&rt);
    return rc;
}

int score_lead(store_tx *tx, int64_t lead_id, int64_t now_ms, store_err *err) {
    return rescore(tx, lead_id, now_ms, 0, err);
}

int score_new_lead(store_tx *tx, int64_t lead_id, int64_t now_ms, store_err *err) {
    return rescore(tx, lead_id, now_ms, 1, err);
}

/* ---- churn ---- */

/* What to do about a driver of churn risk; NULL when it suggests nothing. */
static const char *intervention(const feats *f, int feature, char *buf, size_t n) {
    double v = is_cat(feature) ? NAN : f->num[feature];
    switch (feature) {
    case F_DAYS_SINCE_CALL:
        if (isnan(v)) return "No call with the agent yet: call today";
        snprintf(buf, n, "No agent call in %.0f days: call today", floor(v));
        return buf;
    case F_DAYS_SINCE_OUTBOUND:
        if (isnan(v)) return "The agent has not written yet: send a personal message today";
        snprintf(buf, n, "No message from the agent in %.0f days: send a personal check-in today", floor(v));
        return buf;
    case F_DAYS_SINCE_INBOUND:
        if (isnan(v)) return "The lead has never replied: try another channel (call, or email if texts go unread)";
        snprintf(buf, n, "Silent for %.0f days: send new listings that match their search", floor(v));
        return buf;
    case F_AWAITING_REPLY: return "The last message is unanswered: switch channel (call instead of text)";
    case F_APPOINTMENTS: return "No appointment yet: offer a showing this week";
    case F_FIRST_RESPONSE_MIN: return "Slow first response: answer the next inbound message within 5 minutes";
    case F_OUTBOUND: return "Few touches so far: enrol the lead in a nurture sequence";
    case F_INBOUND: return "Little two-way conversation: ask an open question about their move";
    case F_CALLS: return "Few calls: schedule a call to re-qualify needs and budget";
    case F_PREAPPROVED: return "Not pre-approved: introduce a lender";
    case F_TIMELINE: return "Long or unknown timeline: switch to a monthly market update";
    case F_AGE_DAYS: return "An older lead: re-qualify needs and budget";
    default: return NULL;
    }
}

static json_t *churn_result(const feats *f, double p, int version, reason *rs, int n) {
    json_t *drivers = score_reasons_json(f, rs, n, version != 0); /* sorts rs */
    json_t *actions = json_array();
    for (int i = 0; i < n && json_array_size(actions) < 3; i++) {
        char buf[160];
        const char *s = rs[i].effect > 0 ? intervention(f, rs[i].feature, buf, sizeof buf) : NULL;
        if (s) json_array_append_new(actions, json_string(s));
    }
    const char *band = p >= SCORE_CHURN_HIGH ? "high" : p >= SCORE_CHURN_MEDIUM ? "medium" : "low";
    return json_pack("{s:s, s:s, s:o, s:f, s:s, s:i, s:o, s:o}", "model", SCORE_CHURN, "kind",
                     version ? "model" : "prior", "version", version ? json_integer(version) : json_null(),
                     "probability", p, "risk", band, "horizon_days", SCORE_CHURN_DAYS, "drivers", drivers,
                     "interventions", actions);
}

int score_churn(store_tx *tx, int64_t lead_id, int64_t now_ms, json_t **out, store_err *err) {
    *out = NULL;
    store_rows *r = NULL;
    int rc = lead_row(tx, lead_id, now_ms, 0, &r, err);
    if (rc) return rc;
    feats f;
    rc = features_of(tx, r, 0, now_ms, &f, err);
    store_rows_free(r);
    if (rc) return rc;
    reason rs[NFEAT + 16];
    int n = 0, version;
    double p = score_predict(leads_scorer(tx), tx, store_tx_tenant(tx), B_CHURN, &f, rs, &n, &version, NULL);
    *out = churn_result(&f, p, version, rs, n);
    json_object_set_new(*out, "lead_id", json_integer(lead_id));
    return STORE_OK;
}

/* Raw features of builtin b from JSON: every feature present (null when
 * unknown), of the right type. 0, or -1 with err. */
static int parse_features(int b, const json_t *in, feats *f, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    for (int i = 0; i < NFEAT; i++) f->num[i] = NAN;
    if (!json_is_object(in)) {
        snprintf(err, errlen, "features must be an object of the %s features", builtins[b].name);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)in, key, v) {
        int i = 0;
        while (i < NFEAT && strcmp(feat_name[i], key)) i++;
        if (i == NFEAT || !(builtins[b].feats & FB(i))) {
            snprintf(err, errlen, "features.%.64s: not a %s feature", key, builtins[b].name);
            return -1;
        }
        if (json_is_null(v)) continue;
        if (is_cat(i)) {
            const char *s = json_string_value(v);
            if (!s || strlen(s) > 64) {
                snprintf(err, errlen, "features.%s: a string of at most 64 bytes, or null", key);
                return -1;
            }
            if (i == F_TIMELINE) s = score_timeline_bucket(s); /* "3 months" as stored leads are read */
            if (s) snprintf(f->cat[i], sizeof f->cat[i], "%s", s);
            continue;
        }
        if (json_is_boolean(v)) {
            f->num[i] = json_is_true(v);
            continue;
        }
        double d = json_is_number(v) ? json_number_value(v) : NAN;
        int may_be_negative = i == F_L_LAT || i == F_L_LNG;
        if (!json_is_number(v) || !isfinite(d) || (d < 0 && !may_be_negative)) {
            snprintf(err, errlen, "features.%s: a %snumber or null", key, may_be_negative ? "" : "non-negative ");
            return -1;
        }
        f->num[i] = d;
    }
    for (int i = 0; i < NFEAT; i++)
        if ((builtins[b].feats & FB(i)) && !json_object_get(in, feat_name[i])) {
            snprintf(err, errlen, "features.%s: missing (send null when unknown)", feat_name[i]);
            return -1;
        }
    return 0;
}

int score_churn_features(score_ctx *c, int64_t tenant, const json_t *in, json_t **out, char *err, size_t errlen) {
    *out = NULL;
    feats f;
    if (parse_features(B_CHURN, in, &f, err, errlen)) return -1;
    reason rs[NFEAT + 16];
    int n = 0, version;
    double p = score_predict(c, NULL, tenant, B_CHURN, &f, rs, &n, &version, NULL);
    *out = churn_result(&f, p, version, rs, n);
    return 0;
}

int score_features(score_ctx *c, int64_t tenant, const char *name, const json_t *features, int explain, json_t **out,
                   char *err, size_t errlen) {
    *out = NULL;
    int b = builtin_find(name);
    feats f;
    if (b < 0) {
        snprintf(err, errlen, "no built-in model \"%.64s\"", name ? name : "");
        return 404;
    }
    if (parse_features(b, features, &f, err, errlen)) return 422;
    reason rs[NFEAT + 16];
    int n = 0, version;
    double base = NAN;
    /* SHAP is most of a model's cost: only when the caller asked for it */
    double sc = score_predict(c, NULL, tenant, b, &f, explain ? rs : NULL, &n, &version, explain ? &base : NULL);
    if (isnan(sc)) {
        snprintf(err, errlen, "no %s model for this tenant yet: train one (POST /v1/models/%s/train)", name, name);
        return 409;
    }
    *out = json_pack("{s:s, s:s, s:o, s:f}", "model", name, "kind", version ? "model" : "prior", "version",
                     version ? json_integer(version) : json_null(), "score", sc);
    if (explain) {
        /* model: SHAP on the margin (base + sum = margin); prior: its
         * points as probabilities (base + sum = score, before clamping) */
        json_t *contrib = json_object();
        for (int i = 0; i < n; i++) json_object_set_new(contrib, feat_name[rs[i].feature],
                                                        json_real(version ? rs[i].effect : rs[i].effect / 100.0));
        if (!version && b == B_CHURN) /* the churn prior's effects are probabilities already */
            for (int i = 0; i < n; i++) json_object_set_new(contrib, feat_name[rs[i].feature], json_real(rs[i].effect));
        json_object_set_new(*out, "explanation", json_pack("{s:f, s:o}", "base", base, "contributions", contrib));
    }
    return 0;
}

int score_get(store_tx *tx, int64_t lead_id, json_t **out, store_err *err) {

    *out = NULL;
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(lead_id)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT l.score, (SELECT hot_threshold FROM tenant_settings s WHERE s.tenant_id = l.tenant_id) "
                         "FROM leads l WHERE l.tenant_id = $1 AND l.id = $2 AND l.deleted_at IS NULL",
                         p, 2, &r, err);
    if (rc) return rc;
    if (!store_rows_count(r)) {
        store_rows_free(r);
        err->code = STORE_NOTFOUND;
        snprintf(err->msg, sizeof err->msg, "no such lead");
        return STORE_NOTFOUND;
    }
    double thr = store_rows_isnull(r, 0, 1) ? 0.7 : store_rows_real(r, 0, 1);
    json_t *o = json_pack("{s:I, s:o, s:f}", "lead_id", (json_int_t)lead_id, "score",
                          store_rows_isnull(r, 0, 0) ? json_null() : json_real(store_rows_real(r, 0, 0)),
                          "threshold", thr);
    store_rows_free(r);
    rc = store_query(tx,
                     "SELECT score, kind, model_version, reasons, created_at FROM lead_scores "
                     "WHERE tenant_id = $1 AND lead_id = $2 ORDER BY id DESC LIMIT 50",
                     p, 2, &r, err);
    if (rc) {
        json_decref(o);
        return rc;
    }
    json_t *hist = json_array();
    for (int i = 0; i < store_rows_count(r); i++) {
        json_t *mv = store_rows_isnull(r, i, 2) ? json_null() : json_integer(store_rows_int(r, i, 2));
        if (i == 0) {
            json_t *reasons = json_loads(store_rows_text(r, i, 3), 0, NULL);
            json_object_set_new(o, "kind", json_string(store_rows_text(r, i, 1)));
            json_object_set(o, "model_version", mv);
            json_object_set_new(o, "reasons", reasons ? reasons : json_array());
            json_object_set_new(o, "scored_at", json_integer(store_rows_int(r, i, 4)));
        }
        json_array_append_new(hist, json_pack("{s:f, s:s, s:o, s:I}", "score", store_rows_real(r, i, 0), "kind",
                                              store_rows_text(r, i, 1), "model_version", mv, "at",
                                              (json_int_t)store_rows_int(r, i, 4)));
    }
    store_rows_free(r);
    json_t *sc = json_object_get(o, "score");
    json_object_set_new(o, "hot", json_boolean(json_is_number(sc) && json_number_value(sc) >= thr));
    json_object_set_new(o, "history", hist);
    *out = o;
    return STORE_OK;
}

/* ---- training ---- */

typedef struct collect {
    int b;
    int64_t now;
    buf csv;
    int pos, neg;
    int bad; /* an append failed (out of memory, or past 1 GiB) */
} collect;

static int csv_cell(buf *b, const char *s) {
    int rc = buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"') rc |= buf_putc(b, '"');
        rc |= buf_putc(b, (*s == '\n' || *s == '\r') ? ' ' : *s);
    }
    return rc | buf_putc(b, '"');
}

static void csv_row(collect *c, const feats *f, const char *label) {
    for (int i = 0; i < NFEAT; i++) {
        if (!(builtins[c->b].feats & FB(i))) continue;
        if (is_cat(i)) c->bad |= csv_cell(&c->csv, f->cat[i]);
        else if (!isnan(f->num[i])) c->bad |= buf_printf(&c->csv, "%.6g", f->num[i]);
        c->bad |= buf_putc(&c->csv, ',');
    }
    c->bad |= buf_puts(&c->csv, label);
    c->bad |= buf_putc(&c->csv, '\n');
    strcmp(label, "0") ? c->pos++ : c->neg++;
}

/* lead_scoring: each won or lost lead, its behaviour as of the outcome
 * (the status change is the lead's last update), not as of today, which
 * would make every closed lead look stale. churn: each lead engaged at
 * the snapshot time (now - horizon), as it was then, labelled 1 when it
 * did not reply within the horizon. */
static int collect_tx(store_tx *tx, void *arg, store_err *err) {
    collect *c = arg;
    /* a read may run again (PostgreSQL retries): start over each time */
    buf_reset(&c->csv);
    c->pos = c->neg = c->bad = 0;
    for (int i = 0; i < NFEAT; i++)
        if (builtins[c->b].feats & FB(i)) c->bad |= buf_printf(&c->csv, "%s,", feat_name[i]);
    c->bad |= buf_puts(&c->csv, "label\n");
    int64_t snap = c->now - (int64_t)SCORE_CHURN_DAYS * 86400000;
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(c->b == B_CHURN ? snap : FOREVER), SV_I(c->now)};
    store_rows *r = NULL;
    int rc = c->b == B_CHURN   ? store_query(tx, sql_engaged_at, p, 3, &r, err)
             : c->b == B_VALUE ? store_query(tx, LISTING_COLS "WHERE tenant_id = $1 AND deleted_at IS NULL "
                                                              "AND price > 0 ORDER BY id", p, 1, &r, err)
                               : store_query(tx, sql_won_lost, p, 2, &r, err);
    if (rc) return rc;
    for (int row = 0; row < store_rows_count(r) && !rc; row++) {
        feats f;
        if (c->b == B_CHURN) {
            if ((rc = features_of(tx, r, row, snap, &f, err))) break;
            csv_row(c, &f, store_rows_int(r, row, C_REPLIED_AFTER) == 0 ? "1" : "0");
        } else if (c->b == B_VALUE) {
            score_listing_features(r, row, &f);
            csv_row(c, &f, store_rows_text(r, row, L_PRICE));
        } else {
            if ((rc = features_of(tx, r, row, store_rows_int(r, row, C_UPDATED), &f, err))) break;
            csv_row(c, &f, strcmp(store_rows_text(r, row, C_STATUS), "won") == 0 ? "1" : "0");
        }
    }
    store_rows_free(r);
    if (!rc && c->bad) {
        err->code = STORE_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        rc = STORE_NOMEM;
    }
    return rc;
}

static int mkdirs(const char *path) {
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
            *s = '/';
        }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

int score_train(store *st, score_ctx *c, int64_t tenant, const char *name, const char *trained_by, uint64_t seed,
                int64_t now_ms, json_t **report, const score_also *also, char *err, size_t errlen) {
    *report = NULL;
    int b = builtin_find(name);
    if (b < 0) {
        snprintf(err, errlen, "unknown built-in model \"%.64s\" (built-in: %s, %s, %s)", name ? name : "",
                 SCORE_MODEL, SCORE_CHURN, SCORE_VALUE);
        return -1;
    }
    collect col = {.b = b, .now = now_ms};
    buf_init(&col.csv, (size_t)1 << 30);
    store_err se = {0};
    int rc = store_read(st, tenant, collect_tx, &col, &se);
    if (rc) {
        snprintf(err, errlen, "cannot read the tenant's leads: %s", se.msg);
        buf_free(&col.csv);
        return -1;
    }
    const char *pos = b == B_CHURN ? "cold" : b == B_VALUE ? "listings" : "won";
    const char *neg = b == B_CHURN ? "replied" : "lost";
    int labelled = col.pos + col.neg;
    if (b == B_VALUE && labelled < SCORE_MIN_OUTCOMES) {
        *report = json_pack("{s:s, s:s, s:i, s:i}", "error", "not_enough_outcomes", "model", name, "listings",
                            labelled, "min_outcomes", SCORE_MIN_OUTCOMES);
        snprintf(err, errlen, "%d priced listings: training needs %d", labelled, SCORE_MIN_OUTCOMES);
        buf_free(&col.csv);
        return 1;
    }
    if (b != B_VALUE && (labelled < SCORE_MIN_OUTCOMES || col.pos < SCORE_MIN_CLASS || col.neg < SCORE_MIN_CLASS)) {
        *report = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i}", "error", "not_enough_outcomes", "model", name,
                            "labelled", labelled, pos, col.pos, neg, col.neg, "min_outcomes", SCORE_MIN_OUTCOMES,
                            "min_class", SCORE_MIN_CLASS);
        snprintf(err, errlen, "%d %s and %d %s leads: training needs %d outcomes with %d of each", col.pos, pos,
                 col.neg, neg, SCORE_MIN_OUTCOMES, SCORE_MIN_CLASS);
        buf_free(&col.csv);
        return 1;
    }
    /* ml_train works on files: a scratch directory of its own, removed
     * once the version is in the store */
    char base[1100], scratch[1200], csv[1300], vdir[1400];
    snprintf(base, sizeof base, "%s/tenants/%lld", reg_data_dir(c), (long long)tenant);
    snprintf(scratch, sizeof scratch, "%s/train-XXXXXX", base);
    if (mkdirs(base) || !mkdtemp(scratch)) {
        snprintf(err, errlen, "cannot create %s: %s", scratch, strerror(errno));
        buf_free(&col.csv);
        return -1;
    }
    snprintf(csv, sizeof csv, "%s/%s.csv", scratch, name);
    FILE *fp = fopen(csv, "w");
    int bad = !fp || fwrite(col.csv.p, 1, col.csv.len, fp) != col.csv.len;
    if (fp && fclose(fp)) bad = 1;
    buf_free(&col.csv);
    if (bad) {
        snprintf(err, errlen, "cannot write %s: %s", csv, strerror(errno));
        reg_remove_tree(scratch);
        return -1;
    }
    ml_train_opts o = {
        .data = csv,
        .label = "label",
        .positive = b == B_VALUE ? NULL : "1",
        .regression = b == B_VALUE,
        .log_target = b == B_VALUE,
        .model = name,
        .out = scratch,
        .trained_by = trained_by,
        .seed = seed ? seed : 42,
    };
    json_t *rep = NULL;
    rc = ml_train(&o, &rep, err, errlen);
    if (rc) {
        reg_remove_tree(scratch);
        return -1;
    }
    json_object_set_new(rep, pos, json_integer(b == B_VALUE ? labelled : col.pos));
    if (b != B_VALUE) json_object_set_new(rep, neg, json_integer(col.neg));
    snprintf(vdir, sizeof vdir, "%s/%s/v%d", scratch, name, (int)json_integer_value(json_object_get(rep, "version")));
    rc = reg_save_trained(c, st, tenant, b, vdir, rep, trained_by, now_ms, also, err, errlen);
    reg_remove_tree(scratch);
    if (rc) {
        json_decref(rep);
        return -1;
    }
    json_object_set_new(rep, "tenant_id", json_integer(tenant));
    *report = rep;
    return 0;
}

/* ---- re-scoring a tenant ---- */

typedef struct id_list {
    int64_t *id;
    int n;
    int64_t after;
} id_list;

static int open_ids_tx(store_tx *tx, void *arg, store_err *err) {
    id_list *l = arg;
    l->n = 0;
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(l->after)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT id FROM leads WHERE tenant_id = $1 AND id > $2 AND status = 'open' "
                         "AND deleted_at IS NULL ORDER BY id LIMIT 200",
                         p, 2, &r, err);
    if (rc) return rc;
    for (int i = 0; i < store_rows_count(r); i++) l->id[l->n++] = store_rows_int(r, i, 0);
    store_rows_free(r);
    return STORE_OK;
}

typedef struct rescore_args {
    id_list *l;
    int64_t now;
} rescore_args;

static int rescore_tx(store_tx *tx, void *arg, store_err *err) {
    rescore_args *ra = arg;
    for (int i = 0; i < ra->l->n; i++) {
        int rc = score_lead(tx, ra->l->id[i], ra->now, err);
        if (rc && rc != STORE_NOTFOUND) return rc; /* deleted meanwhile: nothing to score */
    }
    return STORE_OK;
}

int score_rescore_open(store *st, int64_t tenant, int64_t now_ms, int *n, store_err *err) {
    int64_t ids[200];
    id_list l = {ids, 0, 0};
    *n = 0;
    for (;;) {
        int rc = store_read(st, tenant, open_ids_tx, &l, err);
        if (rc) return rc;
        if (!l.n) return STORE_OK;
        rescore_args ra = {&l, now_ms};
        if ((rc = store_write(st, tenant, rescore_tx, &ra, err))) return rc;
        *n += l.n;
        l.after = ids[l.n - 1];
    }
}
