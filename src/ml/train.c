/* Training: CSV -> schema -> encoded matrix -> seeded stratified split ->
 * XGBoost with early stopping -> metrics on the held-out part -> a model
 * directory OUT/NAME/vN written atomically (built in a temporary directory,
 * then renamed).
 *
 * The split protocol: test_fraction of the rows (stratified by class for
 * classifiers) are held out and touched only to measure; 15% of the rest is
 * the validation fold that early stopping watches; the model keeps the
 * rounds up to the best validation score. The hyper-parameters are fixed,
 * general-purpose defaults (not tuned to any data set): eta 0.05, depth 4,
 * row and column subsampling 0.8, histogram trees. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xgboost/c_api.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "ml.h"

#define VALID_FRACTION 0.15

/* splitmix64: small, seedable, and the same on every platform */
static uint64_t next_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void shuffle(size_t *v, size_t n, uint64_t *seed) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(next_rand(seed) % i);
        size_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

int ml_name_valid(const char *name) {
    size_t n = strlen(name);
    if (n < 1 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return 0;
    }
    return 1;
}

static int mkdirs(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

static int write_json(const char *dir, const char *file, json_t *j) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return json_dump_file(j, path, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
}

/* Label of one cell: 1/0 for classifiers, the value for regression; -1
 * return if the row has no usable label. */
static int label_of(const ml_train_opts *o, const char *v, float *y) {
    if (ml_is_missing(v)) return -1;
    if (o->regression) {
        double d;
        if (ml_parse_number(v, &d)) return -1;
        if (o->log_target) {
            if (d <= 0) return -1;
            d = log(d);
        }
        *y = (float)d;
        return 0;
    }
    *y = strcmp(v, o->positive) == 0 ? 1.0f : 0.0f;
    return 0;
}

/* With no --positive: the usual spellings of "yes" when the label has
 * exactly two values. */
static const char *infer_positive(const ml_table *t, int lc, char *err, size_t errlen) {
    const char *a = NULL, *b = NULL;
    for (size_t r = 0; r < ml_table_rows(t); r++) {
        const char *v = ml_table_cell(t, r, (size_t)lc);
        if (ml_is_missing(v)) continue;
        if (!a) a = v;
        else if (strcmp(a, v) && !b) b = v;
        else if (strcmp(a, v) && strcmp(b, v)) {
            snprintf(err, errlen, "the label has more than two values; use --positive VALUE or --regression");
            return NULL;
        }
    }
    if (!a || !b) {
        snprintf(err, errlen, "the label needs two distinct values to train a classifier");
        return NULL;
    }
    static const char *const yes[] = {"yes", "y", "1", "true", "t", "positive", "won", "churn", "churned"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (!strcasecmp(a, yes[i])) return a;
        if (!strcasecmp(b, yes[i])) return b;
    }
    snprintf(err, errlen, "cannot tell which label value is positive (\"%.32s\" or \"%.32s\"); use --positive", a, b);
    return NULL;
}

#define XGB(call)                                                                                            \
    do {                                                                                                     \
        if ((call) != 0) {                                                                                   \
            snprintf(err, errlen, "xgboost: %s", XGBGetLastError());                                         \
            goto out;                                                                                        \
        }                                                                                                    \
    } while (0)

static DMatrixHandle make_dm(const float *X, const float *y, const size_t *idx, size_t n, int w, float *scratch,
                             float *yscratch) {
    for (size_t i = 0; i < n; i++) {
        memcpy(scratch + i * (size_t)w, X + idx[i] * (size_t)w, (size_t)w * sizeof *X);
        yscratch[i] = y[idx[i]];
    }
    DMatrixHandle h = NULL;
    if (XGDMatrixCreateFromMat(scratch, n, (bst_ulong)w, NAN, &h)) return NULL;
    if (XGDMatrixSetFloatInfo(h, "label", yscratch, n)) {
        XGDMatrixFree(h);
        return NULL;
    }
    return h;
}

static double parse_eval(const char *s) {
    const char *c = strrchr(s, ':');
    return c ? strtod(c + 1, NULL) : NAN;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Per-feature summary of the training rows, the reference for drift (PSI):
 * numeric features by decile edges, categoricals by their columns. */
static json_t *distribution(const ml_schema *s, const float *X, const size_t *idx, size_t n) {
    int w = ml_schema_width(s);
    json_t *out = json_object();
    float *v = eh_malloc((n ? n : 1) * sizeof *v);
    if (!v) return out;
    for (int f = 0; f < ml_schema_features(s); f++) {
        int c0 = -1, nc = 0;
        for (int c = 0; c < w; c++)
            if (ml_schema_owner(s, c) == f) {
                if (c0 < 0) c0 = c;
                nc++;
            }
        size_t miss = 0, m = 0;
        for (size_t i = 0; i < n; i++) {
            float x = X[idx[i] * (size_t)w + (size_t)c0];
            if (isnan(x)) miss++;
            else v[m++] = x;
        }
        json_t *d = json_object();
        json_object_set_new(d, "missing", json_real(n ? (double)miss / (double)n : 0));
        if (ml_schema_kind(s, f) == ML_NUMERIC) {
            qsort(v, m, sizeof *v, cmp_float);
            json_t *edges = json_array();
            float e[9];
            int ne = 0;
            for (int q = 1; q < 10 && m; q++) {
                e[ne] = v[(size_t)((double)q / 10 * (double)(m - 1))];
                json_array_append_new(edges, json_real(e[ne++]));
            }
            json_object_set_new(d, "edges", edges);
            /* each bin's share of the rows as drift bins them ((-inf, e0],
             * (e0, e1] ... (e_last, inf)): only continuous values fill
             * deciles evenly; counts and flags tie, and a tie leaves some
             * bins empty and others fuller */
            size_t cnt[10] = {0};
            for (size_t i = 0; i < m; i++) {
                int b = 0;
                while (b < ne && v[i] > e[b]) b++;
                cnt[b]++;
            }
            json_t *fr = json_array();
            for (int b = 0; b <= ne && m; b++) json_array_append_new(fr, json_real((double)cnt[b] / (double)n));
            json_object_set_new(d, "fractions", fr);
        } else {
            json_t *fr = json_array();
            size_t other = m;
            for (int k = 0; k < nc; k++) {
                size_t cnt = 0;
                for (size_t i = 0; i < n; i++)
                    if (X[idx[i] * (size_t)w + (size_t)(c0 + k)] == 1.0f) cnt++;
                other -= cnt;
                json_array_append_new(fr, json_real(n ? (double)cnt / (double)n : 0));
            }
            json_object_set_new(d, "fractions", fr);
            json_object_set_new(d, "other", json_real(n ? (double)other / (double)n : 0));
        }
        json_object_set_new(out, ml_schema_feature(s, f), d);
    }
    eh_free(v);
    return out;
}

/* XGBoost keeps the column names in model.json, where Python and R users
 * see them; it rejects some characters in them. */
static int set_names(DMatrixHandle dm, const ml_schema *s, char *err, size_t errlen) {
    int w = ml_schema_width(s);
    const char **names = eh_malloc((size_t)w * sizeof *names);
    char **owned = eh_calloc((size_t)w, sizeof *owned);
    int rc = -1;
    if (!names || !owned) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (int c = 0; c < w; c++) {
        if (!(owned[c] = eh_strdup(ml_schema_col_name(s, c)))) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        for (char *p = owned[c]; *p; p++)
            if (*p == '[' || *p == ']' || *p == '<' || *p == ',') *p = '_';
        names[c] = owned[c];
    }
    if (XGDMatrixSetStrFeatureInfo(dm, "feature_name", names, (bst_ulong)w)) {
        snprintf(err, errlen, "xgboost: %s", XGBGetLastError());
        goto done;
    }
    rc = 0;
done:
    if (owned)
        for (int c = 0; c < w; c++) eh_free(owned[c]);
    eh_free(owned);
    eh_free(names);
    return rc;
}

static int set_params(BoosterHandle b, const ml_train_opts *o, double base) {
    char num[64];
    int e = 0;
    e |= XGBoosterSetParam(b, "objective", o->regression ? "reg:squarederror" : "binary:logistic");
    e |= XGBoosterSetParam(b, "eval_metric", o->regression ? "rmse" : "logloss");
    e |= XGBoosterSetParam(b, "tree_method", "hist");
    snprintf(num, sizeof num, "%g", o->eta);
    e |= XGBoosterSetParam(b, "eta", num);
    snprintf(num, sizeof num, "%d", o->max_depth);
    e |= XGBoosterSetParam(b, "max_depth", num);
    e |= XGBoosterSetParam(b, "subsample", "0.8");
    e |= XGBoosterSetParam(b, "colsample_bytree", "0.8");
    e |= XGBoosterSetParam(b, "min_child_weight", "1");
    e |= XGBoosterSetParam(b, "verbosity", "1");
    snprintf(num, sizeof num, "%.17g", base);
    e |= XGBoosterSetParam(b, "base_score", num);
    snprintf(num, sizeof num, "%llu", (unsigned long long)(o->seed & 0x7fffffff));
    e |= XGBoosterSetParam(b, "seed", num);
    /* Default: all cores but one. OpenMP threads spin at each barrier; when
     * every core is asked for and one is busy (the server, another job),
     * training can take ten times longer waiting for it. */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(num, sizeof num, "%d", o->nthread > 0 ? o->nthread : ncpu > 1 ? (int)ncpu - 1 : 1);
    e |= XGBoosterSetParam(b, "nthread", num);
    return e;
}

int ml_train(const ml_train_opts *o, json_t **report, char *err, size_t errlen) {
    int rc = -1;
    ml_table *t = NULL;
    ml_schema *s = NULL;
    float *X = NULL, *y = NULL, *scratch = NULL, *yscratch = NULL;
    size_t *rows = NULL, *tr = NULL, *va = NULL, *te = NULL;
    DMatrixHandle dtr = NULL, dva = NULL, dte = NULL;
    BoosterHandle bst = NULL, best = NULL;
    double *pred = NULL;
    json_t *rep = NULL, *schema_j = NULL;
    char positive_buf[256] = "";
    ml_train_opts opt = *o;
    int64_t t0 = clock_mono_ns();
    *report = NULL;

    if (!opt.model || !ml_name_valid(opt.model)) {
        snprintf(err, errlen, "--model must be 1-64 of a-z 0-9 _ -");
        return -1;
    }
    if (!opt.label || !*opt.label) {
        snprintf(err, errlen, "--label is required");
        return -1;
    }
    if (opt.log_target && !opt.regression) {
        snprintf(err, errlen, "--log-target goes with --regression");
        return -1;
    }
    if (opt.test_fraction <= 0 || opt.test_fraction >= 0.9) opt.test_fraction = 0.25;
    if (opt.max_rounds <= 0) opt.max_rounds = 2000;
    if (opt.early_stopping <= 0) opt.early_stopping = 50;
    if (opt.eta <= 0) opt.eta = 0.05;
    if (opt.max_depth <= 0) opt.max_depth = 4;

    if (!(t = ml_table_read(opt.data, err, errlen))) return -1;
    int lc = ml_table_col(t, opt.label);
    if (lc < 0) {
        snprintf(err, errlen, "no column \"%.64s\" in %s", opt.label, opt.data);
        goto out;
    }
    if (!opt.regression && !opt.positive) {
        const char *p = infer_positive(t, lc, err, errlen);
        if (!p) goto out;
        snprintf(positive_buf, sizeof positive_buf, "%s", p);
        opt.positive = positive_buf;
    }
    ml_infer_opts io = {.label = opt.label, .drop = opt.drop};
    if (!(s = ml_schema_infer(t, &io, err, errlen))) goto out;
    int w = ml_schema_width(s);
    size_t n = ml_table_rows(t), used = 0;
    int *colmap = eh_malloc((size_t)ml_schema_features(s) * sizeof *colmap);
    X = eh_malloc((n ? n : 1) * (size_t)w * sizeof *X);
    y = eh_malloc((n ? n : 1) * sizeof *y);
    rows = eh_malloc((n ? n : 1) * sizeof *rows);
    if (!colmap || !X || !y || !rows) {
        eh_free(colmap);
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    ml_schema_map_table(s, t, colmap, 1, err, errlen);
    size_t npos = 0;
    for (size_t r = 0; r < n; r++) {
        float lab;
        if (label_of(&opt, ml_table_cell(t, r, (size_t)lc), &lab)) continue;
        ml_encode_table_row(s, t, colmap, r, X + used * (size_t)w);
        y[used] = lab;
        npos += lab > 0.5f;
        rows[used] = used;
        used++;
    }
    eh_free(colmap);
    if (used < 20) {
        snprintf(err, errlen, "only %zu rows with a usable label; at least 20 are needed", used);
        goto out;
    }
    if (!opt.regression && (npos < 5 || used - npos < 5)) {
        snprintf(err, errlen, "too few rows of one class (%zu with \"%s\", %zu without)", npos, opt.positive,
                 used - npos);
        goto out;
    }

    /* the split: per class (one "class" for regression), shuffled, first
     * test_fraction to test, then VALID_FRACTION of the rest to validation */
    tr = eh_malloc(used * sizeof *tr);
    va = eh_malloc(used * sizeof *va);
    te = eh_malloc(used * sizeof *te);
    scratch = eh_malloc(used * (size_t)w * sizeof *scratch);
    yscratch = eh_malloc(used * sizeof *yscratch);
    pred = eh_malloc(used * sizeof *pred);
    if (!tr || !va || !te || !scratch || !yscratch || !pred) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    size_t ntr = 0, nva = 0, nte = 0;
    uint64_t seed = opt.seed;
    for (int cls = 0; cls < (opt.regression ? 1 : 2); cls++) {
        size_t k = 0;
        for (size_t i = 0; i < used; i++)
            if (opt.regression || (y[i] > 0.5f) == cls) rows[k++] = i;
        shuffle(rows, k, &seed);
        size_t kt = (size_t)llround((double)k * opt.test_fraction);
        size_t kv = (size_t)llround((double)(k - kt) * VALID_FRACTION);
        for (size_t i = 0; i < k; i++) {
            if (i < kt) te[nte++] = rows[i];
            else if (i < kt + kv) va[nva++] = rows[i];
            else tr[ntr++] = rows[i];
        }
    }
    /* row order inside each part must not depend on the class */
    shuffle(tr, ntr, &seed);

    double base = 0;
    for (size_t i = 0; i < ntr; i++) base += y[tr[i]];
    base /= (double)ntr;
    if (!opt.regression) base = base < 0.01 ? 0.01 : base > 0.99 ? 0.99 : base;

    if (!(dtr = make_dm(X, y, tr, ntr, w, scratch, yscratch))) {
        snprintf(err, errlen, "xgboost: %s", XGBGetLastError());
        goto out;
    }
    if (!(dva = make_dm(X, y, va, nva, w, scratch, yscratch)) || !(dte = make_dm(X, y, te, nte, w, scratch, yscratch))) {
        snprintf(err, errlen, "xgboost: %s", XGBGetLastError());
        goto out;
    }
    if (set_names(dtr, s, err, errlen)) goto out;
    DMatrixHandle cache[1] = {dtr};
    XGB(XGBoosterCreate(cache, 1, &bst));
    XGB(set_params(bst, &opt, base));

    double best_score = INFINITY;
    int best_iter = 0;
    for (int it = 0; it < opt.max_rounds; it++) {
        XGB(XGBoosterUpdateOneIter(bst, it, dtr));
        const char *ev;
        DMatrixHandle evm[1] = {dva};
        const char *evn[1] = {"valid"};
        XGB(XGBoosterEvalOneIter(bst, it, evm, evn, 1, &ev));
        double sc = parse_eval(ev);
        if (sc < best_score - 1e-12) {
            best_score = sc;
            best_iter = it;
        } else if (it - best_iter >= opt.early_stopping) {
            break;
        }
    }
    /* The validation fold has chosen the number of rounds; the final model
     * learns from it too, with proportionally more rounds for the extra
     * rows (the usual refit after early stopping). */
    int rounds = (int)lround((best_iter + 1) * (double)(ntr + nva) / (double)ntr);
    for (size_t i = 0; i < nva; i++) tr[ntr + i] = va[i];
    XGDMatrixFree(dtr);
    if (!(dtr = make_dm(X, y, tr, ntr + nva, w, scratch, yscratch))) {
        snprintf(err, errlen, "xgboost: %s", XGBGetLastError());
        goto out;
    }
    if (set_names(dtr, s, err, errlen)) goto out;
    DMatrixHandle all[1] = {dtr};
    XGB(XGBoosterCreate(all, 1, &best));
    XGB(set_params(best, &opt, base));
    for (int it = 0; it < rounds; it++) XGB(XGBoosterUpdateOneIter(best, it, dtr));

    const bst_ulong *shape;
    bst_ulong dim;
    const float *res;
    XGB(XGBoosterPredictFromDMatrix(best, dte,
                                    "{\"type\":0,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,"
                                    "\"strict_shape\":false}",
                                    &shape, &dim, &res));
    for (size_t i = 0; i < nte; i++) pred[i] = res[i];
    for (size_t i = 0; i < nte; i++) yscratch[i] = y[te[i]];

    json_t *metrics = json_object();
    if (opt.regression) {
        json_object_set_new(metrics, "rmse", json_real(ml_rmse(pred, yscratch, nte)));
        json_object_set_new(metrics, "mae", json_real(ml_mae(pred, yscratch, nte)));
        if (opt.log_target) {
            /* also in the original unit, which is what users quote */
            double se = 0, ae = 0;
            for (size_t i = 0; i < nte; i++) {
                double d = exp(pred[i]) - exp((double)yscratch[i]);
                se += d * d;
                ae += fabs(d);
            }
            json_object_set_new(metrics, "rmse_original", json_real(sqrt(se / (double)nte)));
            json_object_set_new(metrics, "mae_original", json_real(ae / (double)nte));
        }
    } else {
        json_object_set_new(metrics, "auc", json_real(ml_auc(pred, yscratch, nte)));
        json_object_set_new(metrics, "logloss", json_real(ml_logloss(pred, yscratch, nte)));
        json_object_set_new(metrics, "brier", json_real(ml_brier(pred, yscratch, nte)));
        json_object_set_new(metrics, "ece", json_real(ml_ece(pred, yscratch, nte, 10)));
        /* the bins behind the ECE, for a reliability diagram */
        json_object_set_new(metrics, "calibration", ml_calibration_json(pred, yscratch, nte, 10));
    }

    /* the model directory, built aside then renamed into place */
    char mdir[1024], tmp[1100], path[1200];
    snprintf(mdir, sizeof mdir, "%s/%s", opt.out ? opt.out : "models", opt.model);
    if (mkdirs(mdir)) {
        snprintf(err, errlen, "cannot create %s: %s", mdir, strerror(errno));
        json_decref(metrics);
        goto out;
    }
    int version = ml_newest_version(mdir) + 1;
    snprintf(tmp, sizeof tmp, "%s/.tmp-v%d-%ld", mdir, version, (long)getpid());
    if (mkdir(tmp, 0755)) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        json_decref(metrics);
        goto out;
    }
    snprintf(path, sizeof path, "%s/model.json", tmp);
    XGB(XGBoosterSaveModel(best, path));

    time_t now = time(NULL);
    struct tm tmv;
    char when[32];
    gmtime_r(&now, &tmv);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    const char *fname = strrchr(opt.data, '/');
    rep = json_pack("{s:s, s:i, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:o, s:s, s:s, s:I, s:f}",
                    "model", opt.model, "version", version, "task", opt.regression ? "regression" : "classification",
                    "objective", opt.regression ? "reg:squarederror" : "binary:logistic", "label", opt.label,
                    "rows", (json_int_t)used, "train_rows", (json_int_t)ntr, "valid_rows", (json_int_t)nva,
                    "test_rows", (json_int_t)nte, "features", ml_schema_features(s), "columns", w, "rounds",
                    rounds, "metrics", metrics, "trained_at", when, "trained_by",
                    opt.trained_by ? opt.trained_by : "cli", "seed", (json_int_t)opt.seed, "test_fraction",
                    opt.test_fraction);
    if (!rep) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    json_object_set_new(rep, "data", json_pack("{s:s, s:I, s:I}", "file", fname ? fname + 1 : opt.data,
                                               "rows_read", (json_int_t)n, "rows_skipped",
                                               (json_int_t)(ml_table_skipped(t) + (n - used))));
    json_object_set_new(rep, "params", json_pack("{s:f, s:i, s:f, s:f, s:s, s:i, s:f}", "eta", opt.eta,
                                                 "max_depth", opt.max_depth, "subsample", 0.8,
                                                 "colsample_bytree", 0.8, "tree_method", "hist",
                                                 "early_stopping_rounds", opt.early_stopping, "base_score", base));
    if (!opt.regression) json_object_set_new(rep, "positive", json_string(opt.positive));
    if (opt.log_target) json_object_set_new(rep, "log_target", json_true());
    /* the headline metrics at the top too, for scripts (numbers only: the
     * calibration bins stay under "metrics") */
    const char *k;
    json_t *v;
    json_object_foreach(metrics, k, v) if (json_is_number(v)) json_object_set(rep, k, v);
    json_object_set_new(rep, "train_ms", json_integer((clock_mono_ns() - t0) / 1000000));

    schema_j = ml_schema_to_json(s);
    json_object_set_new(schema_j, "label", json_string(opt.label));
    json_object_set_new(schema_j, "task", json_string(opt.regression ? "regression" : "classification"));
    if (!opt.regression) json_object_set_new(schema_j, "positive", json_string(opt.positive));
    json_object_set_new(schema_j, "log_target", json_boolean(opt.log_target));
    json_object_set_new(schema_j, "training_distribution", distribution(s, X, tr, ntr));
    if (write_json(tmp, "schema.json", schema_j) || write_json(tmp, "metrics.json", rep)) {
        snprintf(err, errlen, "cannot write to %s: %s", tmp, strerror(errno));
        goto out;
    }
    char final[1100];
    snprintf(final, sizeof final, "%s/v%d", mdir, version);
    if (rename(tmp, final)) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
        goto out;
    }
    json_object_set_new(rep, "dir", json_string(final));
    json_object_set_new(rep, "train_ms", json_integer((clock_mono_ns() - t0) / 1000000));
    *report = rep;
    rep = NULL;
    rc = 0;
out:
    if (best) XGBoosterFree(best);
    if (bst) XGBoosterFree(bst);
    if (dtr) XGDMatrixFree(dtr);
    if (dva) XGDMatrixFree(dva);
    if (dte) XGDMatrixFree(dte);
    json_decref(rep);
    json_decref(schema_j);
    eh_free(X);
    eh_free(y);
    eh_free(rows);
    eh_free(tr);
    eh_free(va);
    eh_free(te);
    eh_free(scratch);
    eh_free(yscratch);
    eh_free(pred);
    ml_schema_free(s);
    ml_table_free(t);
    return rc;
}

/* ---- import of a model trained elsewhere ---- */

int ml_import(const char *out, const char *name, const char *model_path, const char *schema_path, json_t **report,
              char *err, size_t errlen) {
    *report = NULL;
    if (!ml_name_valid(name)) {
        snprintf(err, errlen, "model name must be 1-64 of a-z 0-9 _ -");
        return -1;
    }
    size_t len;
    char *text = ml_read_file(model_path, 512u * 1024 * 1024, &len, err, errlen);
    if (!text) return -1;
    json_error_t je;
    json_t *schema = json_load_file(schema_path, 0, &je);
    if (!schema) {
        snprintf(err, errlen, "%s: %s (line %d)", schema_path, je.text, je.line);
        eh_free(text);
        return -1;
    }
    /* it must load exactly as the server will load it */
    ml_model *m = ml_model_from_json(text, len, schema, err, errlen);
    int rc = -1;
    char mdir[1024], tmp[1100], path[1200], final[1100];
    json_t *rep = NULL;
    if (!m) goto done;
    snprintf(mdir, sizeof mdir, "%s/%s", out, name);
    if (mkdirs(mdir)) {
        snprintf(err, errlen, "cannot create %s: %s", mdir, strerror(errno));
        goto done;
    }
    int version = ml_newest_version(mdir) + 1;
    snprintf(tmp, sizeof tmp, "%s/.tmp-v%d-%ld", mdir, version, (long)getpid());
    snprintf(path, sizeof path, "%s/model.json", tmp);
    FILE *f = mkdir(tmp, 0755) == 0 ? fopen(path, "wb") : NULL;
    if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        if (f) fclose(f);
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        goto done;
    }
    time_t now = time(NULL);
    struct tm tmv;
    char when[32];
    gmtime_r(&now, &tmv);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    rep = json_pack("{s:s, s:i, s:s, s:s, s:s, s:i, s:i, s:s}", "model", name, "version", version, "task",
                    ml_model_is_regression(m) ? "regression" : "classification", "trained_at", when, "trained_by",
                    "import", "features", ml_schema_features(ml_model_schema(m)), "trees", ml_model_trees(m),
                    "source", model_path);
    if (!rep || write_json(tmp, "schema.json", schema) || write_json(tmp, "metrics.json", rep)) {
        snprintf(err, errlen, "cannot write to %s", tmp);
        goto done;
    }
    snprintf(final, sizeof final, "%s/v%d", mdir, version);
    if (rename(tmp, final)) {
        snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
        goto done;
    }
    json_object_set_new(rep, "dir", json_string(final));
    *report = rep;
    rep = NULL;
    rc = 0;
done:
    json_decref(rep);
    ml_model_free(m);
    json_decref(schema);
    eh_free(text);
    return rc;
}
