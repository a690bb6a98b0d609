/* The pipeline report: one SQL statement counts, a little C shapes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/tz.h"
#include "reports/reports.h"

const char *const reports_bucket_names[REPORTS_BUCKETS] = {"lt_1m", "1_5m", "5_15m", "15_60m",
                                                           "1_24h", "gt_24h", "never"};
const char *const reports_bucket_labels[REPORTS_BUCKETS] = {"< 1 min", "1-5 min", "5-15 min", "15-60 min",
                                                            "1-24 h", "> 24 h", "never"};
/* upper bounds (exclusive) of the timed buckets, in ms */
static const int64_t bucket_hi[REPORTS_BUCKETS - 2] = {60000, 300000, 900000, 3600000, REPORTS_DAY_MS};

int reports_bucket(int64_t d) {
    if (d < 0) return REPORTS_BUCKETS - 1;
    for (int i = 0; i < REPORTS_BUCKETS - 2; i++)
        if (d < bucket_hi[i]) return i;
    return REPORTS_BUCKETS - 2;
}

int64_t reports_rank(int pct, int64_t n) { return n > 0 ? (pct * n + 99) / 100 : 0; }

int reports_parse_time(const char *s, int end_of_day, int64_t *ms) {
    if (!s || !*s) return -1;
    size_t n = strlen(s);
    if (n == 10 && s[4] == '-' && s[7] == '-') {
        int v[3] = {0, 0, 0}, pos[3][2] = {{0, 4}, {5, 2}, {8, 2}};
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < pos[k][1]; i++) {
                char c = s[pos[k][0] + i];
                if (c < '0' || c > '9') return -1;
                v[k] = v[k] * 10 + (c - '0');
            }
        static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        if (v[0] < 1970 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > mdays[v[1] - 1]) return -1;
        int leap = (v[0] % 4 == 0 && v[0] % 100 != 0) || v[0] % 400 == 0;
        if (v[1] == 2 && v[2] == 29 && !leap) return -1;
        *ms = (tz_days_from_civil(v[0], v[1], v[2]) + (end_of_day ? 1 : 0)) * REPORTS_DAY_MS;
        return 0;
    }
    if (n > 15) return -1; /* 15 digits: beyond year 30000, and no overflow below */
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        x = x * 10 + (s[i] - '0');
    }
    *ms = x;
    return 0;
}

int reports_range_parse(const char *from_s, const char *to_s, int64_t now_ms, reports_range *r, const char **why) {
    int64_t from, to;
    if (to_s) {
        if (reports_parse_time(to_s, 1, &to)) {
            *why = "invalid value for query parameter \"to\": YYYY-MM-DD (UTC day, inclusive) or epoch ms";
            return -1;
        }
    } else {
        to = (now_ms / REPORTS_DAY_MS + 1) * REPORTS_DAY_MS; /* the end of today (UTC) */
    }
    if (from_s) {
        if (reports_parse_time(from_s, 0, &from)) {
            *why = "invalid value for query parameter \"from\": YYYY-MM-DD (UTC day) or epoch ms";
            return -1;
        }
    } else {
        from = to - REPORTS_DEFAULT_DAYS * REPORTS_DAY_MS;
        if (from < 0) from = 0;
    }
    if (from >= to) {
        *why = "\"from\" must be before \"to\"";
        return -1;
    }
    if (to - from > REPORTS_MAX_DAYS * REPORTS_DAY_MS) {
        *why = "the range is at most 366 days";
        return -1;
    }
    r->from = from;
    r->to = to;
    r->days = (int)((to - from + REPORTS_DAY_MS - 1) / REPORTS_DAY_MS);
    return 0;
}

void reports_date(int64_t ms, char out[11]) {
    /* civil_from_days (H. Hinnant), for days since 1970-01-01 >= 0 */
    int64_t z = (ms >= 0 ? ms : ms - REPORTS_DAY_MS + 1) / REPORTS_DAY_MS + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1), m = (int)(mp < 10 ? mp + 3 : mp - 9);
    if (m <= 2) y++;
    int yy = (int)(y % 10000);
    const int v[8] = {yy / 1000, yy / 100 % 10, yy / 10 % 10, yy % 10, m / 10, m % 10, d / 10, d % 10};
    for (int i = 0, o = 0; i < 8; i++) {
        out[o++] = (char)('0' + v[i]);
        if (i == 3 || i == 5) out[o++] = '-';
    }
    out[10] = 0;
}

/* ---- the query ----
 * b: the tenant's leads created in [from, to) (and of the agent / source
 * asked), each with the delay to its first outbound sms/email/call (d,
 * NULL if none; an activity dated before the lead, e.g. imported history,
 * counts as 0) and whether it has an appointment. The activities of the
 * range's leads are grouped once and joined: on 100,000 leads that was
 * 4x faster on PostgreSQL (and 1.7x on SQLite) than a correlated subquery
 * per lead. Then one row per group of each
 * kind, all with the same 13 columns, and the rows holding the p50
 * and p90 (nearest rank) of each group's delays. b is read by every
 * branch, so it is materialized once (SQLite >= 3.35, PostgreSQL 12+). */
#define AGG                                                                                            \
    "COUNT(*), SUM(CASE WHEN d IS NOT NULL THEN 1 ELSE 0 END), SUM(appt), "                            \
    "SUM(CASE WHEN status = 'won' THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'lost' THEN 1 ELSE 0 END), " \
    "SUM(CASE WHEN status = 'abandoned' THEN 1 ELSE 0 END), "                                          \
    "SUM(CASE WHEN d < 60000 THEN 1 ELSE 0 END), "                                                     \
    "SUM(CASE WHEN d >= 60000 AND d < 300000 THEN 1 ELSE 0 END), "                                     \
    "SUM(CASE WHEN d >= 300000 AND d < 900000 THEN 1 ELSE 0 END), "                                    \
    "SUM(CASE WHEN d >= 900000 AND d < 3600000 THEN 1 ELSE 0 END), "                                   \
    "SUM(CASE WHEN d >= 3600000 AND d < 86400000 THEN 1 ELSE 0 END), "                                 \
    "SUM(CASE WHEN d >= 86400000 THEN 1 ELSE 0 END), "                                                 \
    "SUM(CASE WHEN d IS NULL THEN 1 ELSE 0 END) "
#define NAGG 13
/* stages and days need only a count (and days the leads touched within
 * 5 min, in the first bucket's column): fewer CASEs over every lead */
#define COUNT_ONLY "COUNT(*), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 "
#define COUNT_FAST "COUNT(*), 0, 0, 0, 0, 0, SUM(CASE WHEN d < 300000 THEN 1 ELSE 0 END), 0, 0, 0, 0, 0, 0 "
static const char pipeline_sql[] =
    "WITH b AS MATERIALIZED (SELECT l.stage AS stage, l.status AS status, l.source AS source, "
    "l.agent_id AS agent_id, (l.created_at - $2) / 86400000 AS day, "
    "CASE WHEN x.fo IS NULL THEN NULL WHEN x.fo < l.created_at THEN 0 ELSE x.fo - l.created_at END AS d, "
    "COALESCE(x.appt, 0) AS appt FROM leads l LEFT JOIN ("
    "SELECT a.lead_id AS lead_id, MIN(CASE WHEN a.direction = 'outbound' AND a.channel IN ('sms', 'email', 'call') "
    "THEN a.occurred_at END) AS fo, MAX(CASE WHEN a.channel = 'appointment' THEN 1 ELSE 0 END) AS appt "
    "FROM activities a WHERE a.tenant_id = $1 AND a.lead_id IN (SELECT l2.id FROM leads l2 WHERE l2.tenant_id = $1 "
    "AND l2.created_at >= $2 AND l2.created_at < $3 AND ($4 = 0 OR l2.agent_id = $4) AND ($5 = '' OR l2.source = $5)) "
    "GROUP BY a.lead_id) x ON x.lead_id = l.id "
    "WHERE l.tenant_id = $1 AND l.deleted_at IS NULL AND l.created_at >= $2 AND l.created_at < $3 "
    "AND ($4 = 0 OR l.agent_id = $4) AND ($5 = '' OR l.source = $5)) "
    "SELECT 'all' AS k, '' AS g, " AGG "FROM b "
    "UNION ALL SELECT 'stage', stage, " COUNT_ONLY "FROM b GROUP BY stage "
    "UNION ALL SELECT 'source', source, " AGG "FROM b GROUP BY source "
    "UNION ALL SELECT 'agent', CAST(agent_id AS TEXT), " AGG "FROM b GROUP BY agent_id "
    "UNION ALL SELECT 'day', CAST(day AS TEXT), " COUNT_FAST "FROM b GROUP BY day "
    "UNION ALL SELECT k, g, n, rn, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 FROM ("
    "SELECT 'p_all' AS k, '' AS g, d, ROW_NUMBER() OVER (ORDER BY d) AS rn, COUNT(*) OVER () AS n "
    "FROM b WHERE d IS NOT NULL "
    "UNION ALL SELECT 'p_source', source, d, ROW_NUMBER() OVER (PARTITION BY source ORDER BY d), "
    "COUNT(*) OVER (PARTITION BY source) FROM b WHERE d IS NOT NULL "
    "UNION ALL SELECT 'p_agent', CAST(agent_id AS TEXT), d, ROW_NUMBER() OVER (PARTITION BY agent_id ORDER BY d), "
    "COUNT(*) OVER (PARTITION BY agent_id) FROM b WHERE d IS NOT NULL) w "
    "WHERE rn = (50 * n + 99) / 100 OR rn = (90 * n + 99) / 100";

typedef struct agg {
    const char *key; /* borrowed from the rows; NULL: no source / no agent */
    int64_t c[NAGG]; /* n, touched, appt, won, lost, abandoned, buckets... */
    int64_t p50, p90;
} agg;
enum { A_N, A_TOUCHED, A_APPT, A_WON, A_LOST, A_ABANDONED, A_B0 };

typedef struct group {
    agg *v;
    int n, cap;
} group;

static int group_add(group *g, const agg *a) {
    if (g->n == g->cap) {
        int cap = g->cap ? g->cap * 2 : 16;
        agg *v = eh_realloc(g->v, sizeof *v * (size_t)cap);
        if (!v) return -1;
        g->v = v, g->cap = cap;
    }
    g->v[g->n++] = *a;
    return 0;
}

/* NULL keys first, then by bytes: for bsearch of the percentile rows */
static int key_cmp(const char *x, const char *y) {
    if (!x || !y) return (x != NULL) - (y != NULL);
    return strcmp(x, y);
}
static int agg_key_cmp(const void *a, const void *b) { return key_cmp(((const agg *)a)->key, ((const agg *)b)->key); }
static int agg_count_cmp(const void *a, const void *b) {
    const agg *x = a, *y = b;
    if (x->c[A_N] != y->c[A_N]) return x->c[A_N] < y->c[A_N] ? 1 : -1;
    return key_cmp(x->key, y->key);
}

/* qsort and bsearch may not be given the NULL of an empty group */
static void group_sort(group *g, int (*cmp)(const void *, const void *)) {
    if (g->n > 1) qsort(g->v, (size_t)g->n, sizeof *g->v, cmp);
}

static agg *group_find(group *g, const char *key) {
    agg k = {.key = key};
    return g->n ? bsearch(&k, g->v, (size_t)g->n, sizeof *g->v, agg_key_cmp) : NULL;
}

static json_t *rate(int64_t num, int64_t den) { return den ? json_real((double)num / (double)den) : json_null(); }

/* speed to lead of one group */
static json_t *speed_json(const agg *a) {
    json_t *buckets = json_array();
    for (int i = 0; i < REPORTS_BUCKETS; i++)
        json_array_append_new(buckets, json_pack("{s:s, s:s, s:I}", "bucket", reports_bucket_names[i], "label",
                                                 reports_bucket_labels[i], "leads", (json_int_t)a->c[A_B0 + i]));
    int64_t fast = a->c[A_B0] + a->c[A_B0 + 1];
    return json_pack("{s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o}", "leads", (json_int_t)a->c[A_N], "touched",
                     (json_int_t)a->c[A_TOUCHED], "never", (json_int_t)a->c[A_B0 + REPORTS_BUCKETS - 1],
                     "within_5m", (json_int_t)fast, "within_5m_rate", rate(fast, a->c[A_N]), "p50_ms",
                     a->p50 >= 0 ? json_integer(a->p50) : json_null(), "p90_ms",
                     a->p90 >= 0 ? json_integer(a->p90) : json_null(), "buckets", buckets);
}

static int agent_names(store_tx *tx, json_t **names, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx))};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT id, name FROM agents WHERE tenant_id = $1", p, 1, &r, err);
    if (rc) return rc;
    *names = json_object();
    for (int i = 0; i < store_rows_count(r); i++) {
        char id[24];
        snprintf(id, sizeof id, "%lld", (long long)store_rows_int(r, i, 0));
        json_object_set_new(*names, id, json_string(store_rows_text(r, i, 1)));
    }
    store_rows_free(r);
    return STORE_OK;
}

int reports_pipeline(store_tx *tx, const reports_filter *f, json_t **out, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(f->range.from), SV_I(f->range.to), SV_I(f->agent),
                     SV_S(f->source ? f->source : "")};
    store_rows *r = NULL;
    json_t *names = NULL;
    int rc = STORE_OK;
    /* PostgreSQL plans a prepared statement generically after five runs;
     * without the range's values it guesses one lead and joins the grouped
     * activities in a nested loop (minutes on 100,000 leads instead of a
     * second). This transaction plans with the values it is given. */
    if (store_tx_kind(tx) == STORE_POSTGRES)
        rc = store_query(tx, "SET LOCAL plan_cache_mode = force_custom_plan", NULL, 0, NULL, err);
    if (rc || (rc = store_query(tx, pipeline_sql, p, 5, &r, err))) return rc;
    if ((rc = agent_names(tx, &names, err))) {
        store_rows_free(r);
        return rc;
    }
    agg all = {.p50 = -1, .p90 = -1};
    group stages = {0}, sources = {0}, agents = {0};
    int64_t *day_n = eh_calloc((size_t)f->range.days, sizeof *day_n), *day_fast = eh_calloc((size_t)f->range.days, sizeof *day_fast);
    rc = day_n && day_fast ? STORE_OK : STORE_NOMEM;
    int nrows = store_rows_count(r);
    /* the aggregate rows first (the percentile rows point into them) */
    for (int i = 0; i < nrows && rc == STORE_OK; i++) {
        const char *k = store_rows_text(r, i, 0);
        if (k[0] == 'p') continue;
        agg a = {.key = store_rows_isnull(r, i, 1) ? NULL : store_rows_text(r, i, 1), .p50 = -1, .p90 = -1};
        for (int c = 0; c < NAGG; c++) a.c[c] = store_rows_int(r, i, 2 + c);
        group *g = NULL;
        if (strcmp(k, "all") == 0) all = a, all.key = NULL;
        else if (strcmp(k, "stage") == 0) g = &stages;
        else if (strcmp(k, "source") == 0) g = &sources;
        else if (strcmp(k, "agent") == 0) g = &agents;
        else if (strcmp(k, "day") == 0 && a.key) {
            long long d = strtoll(a.key, NULL, 10);
            if (d >= 0 && d < f->range.days) {
                day_n[d] = a.c[A_N];
                day_fast[d] = a.c[A_B0] + a.c[A_B0 + 1];
            }
        }
        if (g && group_add(g, &a)) rc = STORE_NOMEM;
    }
    if (rc == STORE_OK) {
        group_sort(&sources, agg_key_cmp);
        group_sort(&agents, agg_key_cmp);
        for (int i = 0; i < nrows; i++) {
            const char *k = store_rows_text(r, i, 0);
            if (k[0] != 'p') continue;
            const char *key = store_rows_isnull(r, i, 1) ? NULL : store_rows_text(r, i, 1);
            int64_t n = store_rows_int(r, i, 2), rn = store_rows_int(r, i, 3), d = store_rows_int(r, i, 4);
            agg *a = strcmp(k, "p_all") == 0      ? &all
                     : strcmp(k, "p_source") == 0 ? group_find(&sources, key)
                                                  : group_find(&agents, key);
            if (!a) continue;
            if (rn == reports_rank(50, n)) a->p50 = d;
            if (rn == reports_rank(90, n)) a->p90 = d;
        }
    }
    if (rc != STORE_OK) goto done;

    /* stages and sources: most leads first, at most REPORTS_MAX_GROUPS */
    group_sort(&stages, agg_count_cmp);
    group_sort(&sources, agg_count_cmp);
    group_sort(&agents, agg_count_cmp);
    json_t *by_stage = json_array();
    for (int i = 0; i < stages.n && i < REPORTS_MAX_GROUPS; i++)
        json_array_append_new(by_stage, json_pack("{s:s?, s:I}", "stage", stages.v[i].key, "leads",
                                                  (json_int_t)stages.v[i].c[A_N]));
    /* status is open, won, lost or abandoned (a CHECK on the column) */
    int64_t st[4] = {all.c[A_N] - all.c[A_WON] - all.c[A_LOST] - all.c[A_ABANDONED], all.c[A_WON], all.c[A_LOST],
                     all.c[A_ABANDONED]};
    json_t *by_status = json_pack("{s:I, s:I, s:I, s:I}", "open", (json_int_t)st[0], "won", (json_int_t)st[1], "lost",
                                  (json_int_t)st[2], "abandoned", (json_int_t)st[3]);
    static const char *const steps[4] = {"created", "contacted", "appointment", "won"};
    int64_t sc[4] = {all.c[A_N], all.c[A_TOUCHED], all.c[A_APPT], all.c[A_WON]};
    json_t *funnel = json_array();
    for (int s = 0; s < 4; s++)
        json_array_append_new(funnel, json_pack("{s:s, s:I, s:o, s:o}", "step", steps[s], "leads", (json_int_t)sc[s],
                                                "conversion", s ? rate(sc[s], sc[s - 1]) : json_null(), "of_created",
                                                rate(sc[s], sc[0])));
    json_t *by_source = json_array();
    for (int i = 0; i < sources.n && i < REPORTS_MAX_GROUPS; i++) {
        json_t *o = speed_json(&sources.v[i]);
        json_object_set_new(o, "source", sources.v[i].key ? json_string(sources.v[i].key) : json_null());
        json_object_set_new(o, "won", json_integer(sources.v[i].c[A_WON]));
        json_object_set_new(o, "win_rate", rate(sources.v[i].c[A_WON], sources.v[i].c[A_WON] + sources.v[i].c[A_LOST]));
        json_array_append_new(by_source, o);
    }
    json_t *by_agent = json_array();
    for (int i = 0; i < agents.n; i++) {
        json_t *o = speed_json(&agents.v[i]);
        const char *key = agents.v[i].key;
        json_t *nm = key ? json_object_get(names, key) : NULL;
        json_object_set_new(o, "agent_id", key ? json_integer(strtoll(key, NULL, 10)) : json_null());
        json_object_set_new(o, "name", nm ? json_incref(nm) : key ? json_null() : json_string("Unassigned"));
        json_object_set_new(o, "won", json_integer(agents.v[i].c[A_WON]));
        json_object_set_new(o, "win_rate", rate(agents.v[i].c[A_WON], agents.v[i].c[A_WON] + agents.v[i].c[A_LOST]));
        json_array_append_new(by_agent, o);
    }
    json_t *daily = json_array();
    for (int d = 0; d < f->range.days; d++) {
        char date[11];
        int64_t start = f->range.from + d * REPORTS_DAY_MS;
        reports_date(start, date);
        json_array_append_new(daily, json_pack("{s:s, s:I, s:I, s:I}", "date", date, "start", (json_int_t)start,
                                               "created", (json_int_t)day_n[d], "touched_5m", (json_int_t)day_fast[d]));
    }
    *out = json_pack("{s:{s:I, s:I, s:i, s:s}, s:{s:o, s:o}, s:I, s:o, s:b, s:o, s:o, s:o, s:{s:o, s:o, s:b, s:o}, s:o}",
                     "range", "from", (json_int_t)f->range.from, "to", (json_int_t)f->range.to, "days", f->range.days,
                     "timezone", "UTC", "filters", "agent_id", f->agent > 0 ? json_integer(f->agent) : json_null(),
                     "source", f->source ? json_string(f->source) : json_null(), "leads", (json_int_t)all.c[A_N],
                     "by_stage", by_stage, "stages_truncated", stages.n > REPORTS_MAX_GROUPS, "by_status", by_status,
                     "funnel", funnel, "win_rate", rate(st[1], st[1] + st[2]), "speed_to_lead", "overall",
                     speed_json(&all), "by_source", by_source, "sources_truncated", sources.n > REPORTS_MAX_GROUPS,
                     "by_agent", by_agent, "daily", daily);
    rc = *out ? STORE_OK : STORE_NOMEM;
done:
    if (rc == STORE_NOMEM) {
        err->code = STORE_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
    }
    eh_free(day_n);
    eh_free(day_fast);
    eh_free(stages.v);
    eh_free(sources.v);
    eh_free(agents.v);
    json_decref(names);
    store_rows_free(r);
    return rc;
}
