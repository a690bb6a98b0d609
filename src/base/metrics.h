/* metrics — counters, gauges and histograms, rendered in the Prometheus
 * text exposition format (version 0.0.4) for GET /metrics.
 *
 * A `metrics` registry owns its families; a family (`metric`) has a fixed
 * list of label names and one series per distinct label-value tuple,
 * created on first use. All update functions are thread-safe (storage
 * latency is observed from pool threads) and never allocate after a series
 * exists. Series count per family is capped (METRICS_MAX_SERIES): updates
 * for new label tuples past the cap are dropped and counted in
 * ehub_metrics_dropped_series_total, so a client cannot grow memory by
 * inventing label values. */
#ifndef EH_METRICS_H
#define EH_METRICS_H

#include "buf.h"

#define METRICS_MAX_SERIES 2000
#define METRICS_MAX_LABELS 4

typedef struct metrics metrics;
typedef struct metric metric;

metrics *metrics_new(void);       /* NULL on OOM */
void metrics_free(metrics *m);    /* frees every family */

/* Registers a family. labels: comma-separated label names ("route,status")
 * or NULL for none; at most METRICS_MAX_LABELS. Names follow Prometheus
 * rules ([a-zA-Z_:][a-zA-Z0-9_:]*). Returns NULL on OOM or a bad name. The
 * registry owns the family. */
metric *metrics_counter(metrics *m, const char *name, const char *help, const char *labels);
metric *metrics_gauge(metrics *m, const char *name, const char *help, const char *labels);
/* buckets: upper bounds in ascending order (+Inf is implicit), copied. */
metric *metrics_histogram(metrics *m, const char *name, const char *help, const char *labels,
                          const double *buckets, int nbuckets);
/* A gauge without labels whose value is computed at render time by fn
 * (e.g. process RSS, open fds, connection counts). fn runs on the thread
 * that renders. */
int metrics_gauge_fn(metrics *m, const char *name, const char *help, double (*fn)(void *ud),
                     void *ud);

/* label values: an array with one string per label name (NULL when the
 * family has none). Values are copied on series creation. */
void metric_add(metric *f, const char *const *values, double v);  /* counter or gauge */
void metric_set(metric *f, const char *const *values, double v);  /* gauge */
void metric_observe(metric *f, const char *const *values, double v); /* histogram */

/* Appends the whole registry in exposition format. Returns BUF_OK or a
 * buf error. */
int metrics_render(metrics *m, buf *out);

/* Process figures read from /proc/self (Linux): resident set size in bytes
 * and the number of open file descriptors; -1 if unreadable. */
double metrics_process_rss_bytes(void *unused);
double metrics_process_open_fds(void *unused);

#endif
