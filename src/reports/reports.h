/* reports — aggregates over a tenant's leads that a dashboard would
 * otherwise compute from the whole lead list: the pipeline (leads by stage
 * and status, the funnel created → contacted → appointment → won, win
 * rate) and speed to lead (lead creation → first outbound sms, email or
 * call: percentiles and buckets, overall, per source and per agent), with
 * a daily series.
 *
 * The counting is done by the store in one SQL statement (the same text on
 * SQLite and PostgreSQL); this module validates the request, runs it on the
 * thread pool inside a read transaction (tenant-scoped like every query)
 * and shapes the rows into JSON. The pure parts (time parsing, range rules,
 * buckets, percentile ranks, dates) are exposed for the unit tests. */
#ifndef EH_REPORTS_H
#define EH_REPORTS_H

#include <jansson.h>
#include <stdint.h>

#include "store/store.h"

#define REPORTS_DAY_MS 86400000LL
#define REPORTS_MAX_DAYS 366      /* longest range one report covers */
#define REPORTS_DEFAULT_DAYS 30   /* range when `from` is not given */
#define REPORTS_MAX_GROUPS 100    /* sources / stages listed (most leads first) */
#define REPORTS_MAX_SOURCE 200    /* bytes of a `source` filter */

/* Speed-to-lead buckets, in this order; the last is "never touched". */
enum { REPORTS_BUCKETS = 7 };
extern const char *const reports_bucket_names[REPORTS_BUCKETS]; /* "lt_1m", "1_5m", ... "never" */
extern const char *const reports_bucket_labels[REPORTS_BUCKETS]; /* "< 1 min", ... */
/* Bucket of a delay in ms (< 0: never touched). */
int reports_bucket(int64_t delay_ms);

/* Parses a query time: "YYYY-MM-DD" (a UTC day: its start, or with
 * end_of_day its end, i.e. the next day's start) or epoch milliseconds
 * (1-15 digits). 0, or -1 if malformed or out of range (years 1970-9999). */
int reports_parse_time(const char *s, int end_of_day, int64_t *ms);

/* The report's time range over lead creation, [from, to). from_s / to_s
 * are the query values (NULL when absent): `to` defaults to the end of
 * now's UTC day, `from` to REPORTS_DEFAULT_DAYS before `to`. 0 with *r
 * filled, or -1 with *why (a static message for a 400). */
typedef struct reports_range {
    int64_t from, to;
    int days; /* days in the series: ceil((to - from) / 1 day), 1..REPORTS_MAX_DAYS */
} reports_range;
int reports_range_parse(const char *from_s, const char *to_s, int64_t now_ms, reports_range *r, const char **why);

/* Nearest-rank percentile: the 1-based rank of the pct-th percentile of n
 * sorted values, ceil(pct * n / 100) (1 for n >= 1; 0 for n = 0). The SQL
 * uses the same integer formula. */
int64_t reports_rank(int pct, int64_t n);

/* "YYYY-MM-DD" of the UTC day holding ms. */
void reports_date(int64_t ms, char out[11]);

/* The pipeline report (thread pool; inside a read transaction of the
 * tenant). agent: 0 for every lead, > 0 one agent's, -1 none (an agent
 * principal not linked to an agent). source: NULL for all. *out is the
 * caller's. Store errors are returned as they are. */
typedef struct reports_filter {
    reports_range range;
    int64_t agent;
    const char *source;
} reports_filter;
int reports_pipeline(store_tx *tx, const reports_filter *f, json_t **out, store_err *err);

/* Registers GET /v1/reports/pipeline (src/reports/api.c). */
struct app;
int reports_register(struct app *a);

#endif
