/* metrics — counters, gauges and histograms, rendered in the Prometheus
 * text exposition format (version 0.0.4) for GET /metrics.
 *
 * A `metrics` registry owns its families; a family (`metric`) has a fixed
 * list of label names and one series per distinct label-value tuple,
 * created on first use. All update functions are thread-safe (storage
 * latency is observed from pool threads) and never allocate after a series
 * exists. Series count per family is capped (METRICS_MAX_SERIES): updates
 * for new label tuples past the cap (or when memory runs out) are dropped
 * and counted in ehub_metrics_dropped_series_total, and label values are
 * cut to METRICS_MAX_LABEL_VALUE bytes, so a client cannot grow memory by
 * inventing label values. */
#ifndef EH_METRICS_H
#define EH_METRICS_H

#include "buf.h"

#define METRICS_MAX_SERIES 2000
#define METRICS_MAX_LABELS 4
#define METRICS_MAX_LABEL_VALUE 128

typedef struct metrics metrics;
typedef struct metric metric;

metrics *metrics_new(void);       /* NULL on OOM */
void metrics_free(metrics *m);    /* frees every family */

/* Registers a family. labels: comma-separated label names ("route,status")
 * or NULL for none; at most METRICS_MAX_LABELS. Names follow Prometheus
 * rules ([a-zA-Z_:][a-zA-Z0-9_:]*; label names without ':', not starting
 * with "__", and not "le" on a histogram). Returns NULL on OOM, a bad or
 * repeated label name, or a name that clashes with one already registered
 * (a histogram also claims name_bucket, name_sum, name_count). The
 * registry owns the family. */
metric *metrics_counter(metrics *m, const char *name, const char *help, const char *labels);
metric *metrics_gauge(metrics *m, const char *name, const char *help, const char *labels);
/* buckets: finite upper bounds in strictly ascending order (+Inf is
 * implicit), copied; NULL is returned otherwise. */
metric *metrics_histogram(metrics *m, const char *name, const char *help, const char *labels,
                          const double *buckets, int nbuckets);
/* A gauge without labels whose value is computed at render time by fn
 * (e.g. process RSS, open fds, connection counts). fn runs on the thread
 * that renders, without registry locks held. Returns 0, or -1 as above. */
int metrics_gauge_fn(metrics *m, const char *name, const char *help, double (*fn)(void *ud),
                     void *ud);

/* label values: an array with one string per label name (NULL when the
 * family has none); a NULL value counts as "". Values are copied on series
 * creation. f may be NULL (a failed registration) or of another kind: the
 * call then does nothing, as does a negative or NaN add to a counter or a
 * NaN observation. */
void metric_add(metric *f, const char *const *values, double v);  /* counter or gauge */
void metric_set(metric *f, const char *const *values, double v);  /* gauge */
void metric_observe(metric *f, const char *const *values, double v); /* histogram */

/* Appends the whole registry in exposition format. Returns BUF_OK or a
 * buf error, in which case out is left as it was. */
int metrics_render(metrics *m, buf *out);

/* Process figures read from /proc/self (Linux): resident set size in bytes
 * and the number of open file descriptors; -1 if unreadable. */
double metrics_process_rss_bytes(void *unused);
double metrics_process_open_fds(void *unused);

#endif
