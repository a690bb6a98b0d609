/* Model quality on held-out data. AUC by ranks (Mann-Whitney U, ties get
 * their average rank), so it is exact and O(n log n). */
#include <math.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "ml.h"

typedef struct ranked {
    double s;
    float y;
} ranked;

static int cmp_ranked(const void *a, const void *b) {
    double x = ((const ranked *)a)->s, y = ((const ranked *)b)->s;
    return x < y ? -1 : x > y;
}

double ml_auc(const double *score, const float *label, size_t n) {
    ranked *r = eh_malloc((n ? n : 1) * sizeof *r);
    if (!r) return NAN;
    double pos = 0;
    for (size_t i = 0; i < n; i++) {
        r[i].s = score[i];
        r[i].y = label[i];
        pos += label[i] > 0.5f;
    }
    double neg = (double)n - pos;
    if (pos == 0 || neg == 0) {
        eh_free(r);
        return NAN;
    }
    qsort(r, n, sizeof *r, cmp_ranked);
    double rank_sum = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && r[j].s == r[i].s) j++;
        double avg = (double)(i + 1 + j) / 2.0; /* ranks i+1..j */
        for (size_t k = i; k < j; k++)
            if (r[k].y > 0.5f) rank_sum += avg;
        i = j;
    }
    eh_free(r);
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

static double clampp(double p) { return p < 1e-15 ? 1e-15 : p > 1 - 1e-15 ? 1 - 1e-15 : p; }

double ml_logloss(const double *p, const float *label, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double q = clampp(p[i]);
        s -= label[i] > 0.5f ? log(q) : log(1 - q);
    }
    return n ? s / (double)n : NAN;
}

double ml_brier(const double *p, const float *label, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (p[i] - label[i]) * (p[i] - label[i]);
    return n ? s / (double)n : NAN;
}

/* Bins are equal-width in probability, so a bin's bounds do not depend on
 * the data and plots of two versions line up. */
int ml_calibration(const double *p, const float *label, size_t n, int bins, ml_calib_bin *out) {
    if (bins < 1 || bins > ML_CALIB_MAX_BINS) return -1;
    for (int b = 0; b < bins; b++) {
        out[b].lo = (double)b / bins;
        out[b].hi = (double)(b + 1) / bins;
        out[b].count = 0;
        out[b].mean_pred = 0; /* sums until the division below */
        out[b].observed = 0;
    }
    for (size_t i = 0; i < n; i++) {
        int b = (int)(p[i] * bins);
        if (b >= bins) b = bins - 1;
        if (b < 0) b = 0;
        out[b].mean_pred += p[i];
        out[b].observed += label[i] > 0.5f;
        out[b].count++;
    }
    for (int b = 0; b < bins; b++) {
        if (out[b].count) {
            out[b].mean_pred /= (double)out[b].count;
            out[b].observed /= (double)out[b].count;
        } else {
            out[b].mean_pred = out[b].observed = NAN;
        }
    }
    return 0;
}

double ml_ece(const double *p, const float *label, size_t n, int bins) {
    if (!n || bins < 1 || bins > ML_CALIB_MAX_BINS) return NAN;
    ml_calib_bin *c = eh_malloc((size_t)bins * sizeof *c);
    if (!c) return NAN;
    ml_calibration(p, label, n, bins, c);
    double e = 0;
    for (int b = 0; b < bins; b++)
        if (c[b].count) e += (double)c[b].count * fabs(c[b].observed - c[b].mean_pred) / (double)n;
    eh_free(c);
    return e;
}

static json_t *real_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

json_t *ml_calibration_json(const double *p, const float *label, size_t n, int bins) {
    if (bins < 1 || bins > ML_CALIB_MAX_BINS) return NULL;
    ml_calib_bin *c = eh_malloc((size_t)bins * sizeof *c);
    json_t *arr = c ? json_array() : NULL;
    if (!arr) {
        eh_free(c);
        return NULL;
    }
    ml_calibration(p, label, n, bins, c);
    for (int b = 0; b < bins; b++)
        json_array_append_new(arr, json_pack("{s:f, s:f, s:I, s:o, s:o}", "lo", c[b].lo, "hi", c[b].hi, "count",
                                             (json_int_t)c[b].count, "mean_pred", real_or_null(c[b].mean_pred),
                                             "observed", real_or_null(c[b].observed)));
    eh_free(c);
    return arr;
}

double ml_rmse(const double *pred, const float *y, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (pred[i] - y[i]) * (pred[i] - y[i]);
    return n ? sqrt(s / (double)n) : NAN;
}

double ml_mae(const double *pred, const float *y, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs(pred[i] - y[i]);
    return n ? s / (double)n : NAN;
}
