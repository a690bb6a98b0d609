/* Drift: how far the rows a model scores have moved from the rows it was
 * trained on, per feature, as the population stability index
 *     PSI = sum over bins of (live - train) * ln(live / train)
 * over the bins schema.json's training_distribution describes: a numeric
 * feature's training deciles (with each bin's share of the training rows)
 * plus a missing bin, a categorical's categories plus "other" and
 * missing. Rules of thumb: < 0.1 stable,
 * 0.1-0.25 shifting, > 0.25 the model is scoring a different population. */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "ml.h"

#define MAX_BINS 80
#define FLOOR 1e-4 /* empty bins would make ln() infinite */

typedef struct fdrift {
    int col0, ncols; /* encoded columns of the feature */
    int numeric;
    int nedges;
    float edges[9];
    int nbins;        /* numeric: nedges + 1 (+ missing); categorical: ncols + other + missing */
    double train[MAX_BINS];
    uint64_t live[MAX_BINS];
} fdrift;

struct ml_drift {
    int nfeat;
    uint64_t rows;
    fdrift *f;
};

ml_drift *ml_drift_new(const ml_model *m) {
    const json_t *td = ml_model_training(m);
    const ml_schema *s = ml_model_schema(m);
    if (!json_is_object(td)) return NULL;
    ml_drift *d = eh_calloc(1, sizeof *d);
    if (!d || !(d->f = eh_calloc((size_t)ml_schema_features(s), sizeof *d->f))) {
        eh_free(d);
        return NULL;
    }
    d->nfeat = ml_schema_features(s);
    for (int c = ml_schema_width(s) - 1; c >= 0; c--) {
        fdrift *f = &d->f[ml_schema_owner(s, c)];
        f->col0 = c;
        f->ncols++;
    }
    for (int i = 0; i < d->nfeat; i++) {
        fdrift *f = &d->f[i];
        const json_t *fj = json_object_get(td, ml_schema_feature(s, i));
        double miss = json_number_value(json_object_get(fj, "missing"));
        f->numeric = ml_schema_kind(s, i) == ML_NUMERIC;
        if (f->numeric) {
            const json_t *e = json_object_get(fj, "edges");
            f->nedges = json_is_array(e) && json_array_size(e) <= 9 ? (int)json_array_size(e) : 0;
            for (int k = 0; k < f->nedges; k++) f->edges[k] = (float)json_number_value(json_array_get(e, (size_t)k));
            f->nbins = f->nedges + 2;
            const json_t *fr = json_object_get(fj, "fractions");
            if (json_is_array(fr) && json_array_size(fr) == (size_t)f->nedges + 1) {
                /* each bin's share of the training rows, as trained since
                 * the fractions were recorded */
                for (int k = 0; k <= f->nedges; k++) f->train[k] = json_number_value(json_array_get(fr, (size_t)k));
            } else {
                /* edges alone (schema.json of earlier releases): distinct
                 * deciles hold a tenth of the present rows each; tied ones
                 * (counts, flags) leave the bins' shares unknown, and a
                 * tenth each would call the feature drifted on its own
                 * training rows: not measured */
                for (int k = 1; k < f->nedges; k++)
                    if (f->edges[k] == f->edges[k - 1]) f->nbins = 0;
                for (int k = 0; k <= f->nedges; k++) f->train[k] = (1 - miss) / (f->nedges + 1);
            }
            if (f->nbins) f->train[f->nedges + 1] = miss;
        } else {
            const json_t *fr = json_object_get(fj, "fractions");
            if (f->ncols + 2 > MAX_BINS || !json_is_array(fr) || json_array_size(fr) != (size_t)f->ncols) {
                f->nbins = 0; /* not measured */
                continue;
            }
            f->nbins = f->ncols + 2;
            for (int k = 0; k < f->ncols; k++) f->train[k] = json_number_value(json_array_get(fr, (size_t)k));
            f->train[f->ncols] = json_number_value(json_object_get(fj, "other"));
            f->train[f->ncols + 1] = miss;
        }
    }
    return d;
}

void ml_drift_free(ml_drift *d) {
    if (!d) return;
    eh_free(d->f);
    eh_free(d);
}

void ml_drift_add(ml_drift *d, const float *x) {
    d->rows++;
    for (int i = 0; i < d->nfeat; i++) {
        fdrift *f = &d->f[i];
        if (!f->nbins) continue;
        float v = x[f->col0];
        int b;
        if (isnan(v)) {
            b = f->nbins - 1;
        } else if (f->numeric) {
            b = 0; /* bins: (-inf, e0], (e0, e1], ... , (e_last, inf) */
            while (b < f->nedges && v > f->edges[b]) b++;
        } else {
            b = f->ncols; /* other */
            for (int k = 0; k < f->ncols; k++)
                if (x[f->col0 + k] == 1.0f) b = k;
        }
        f->live[b]++;
    }
}

void ml_drift_merge(ml_drift *into, const ml_drift *from) {
    if (!into || !from || into->nfeat != from->nfeat) return;
    into->rows += from->rows;
    for (int i = 0; i < into->nfeat; i++)
        for (int b = 0; b < into->f[i].nbins && b < MAX_BINS; b++) into->f[i].live[b] += from->f[i].live[b];
}

uint64_t ml_drift_rows(const ml_drift *d) { return d ? d->rows : 0; }

double ml_drift_psi(const ml_drift *d, int feature) {
    const fdrift *f = &d->f[feature];
    if (!f->nbins || !d->rows) return NAN;
    double psi = 0;
    for (int b = 0; b < f->nbins; b++) {
        double e = f->train[b] > FLOOR ? f->train[b] : FLOOR;
        double a = (double)f->live[b] / (double)d->rows;
        if (a < FLOOR) a = FLOOR;
        psi += (a - e) * log(a / e);
    }
    return psi;
}
