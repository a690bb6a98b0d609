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

double ml_ece(const double *p, const float *label, size_t n, int bins) {
    if (!n || bins < 1 || bins > 1000) return NAN;
    double conf[1000] = {0}, acc[1000] = {0};
    size_t cnt[1000] = {0};
    for (size_t i = 0; i < n; i++) {
        int b = (int)(p[i] * bins);
        if (b >= bins) b = bins - 1;
        if (b < 0) b = 0;
        conf[b] += p[i];
        acc[b] += label[i];
        cnt[b]++;
    }
    double e = 0;
    for (int b = 0; b < bins; b++)
        if (cnt[b]) e += fabs(acc[b] - conf[b]) / (double)n;
    return e;
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
