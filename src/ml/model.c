/* Serving: an XGBoost JSON model flattened into one node array and walked
 * directly, plus exact TreeSHAP (Lundberg, Erion & Lee 2018, Algorithm 2)
 * over the same arrays. No XGBoost call is on the request path: a row costs
 * a few microseconds and an explanation tens, where XGBoost's own
 * pred_contribs costs hundreds.
 *
 * Semantics follow XGBoost exactly: a row goes left when x < threshold
 * (compared as floats), a missing value (NaN) takes the node's default
 * branch, the margin is the sum of the reached leaves plus the base margin
 * (the base_score mapped through the objective's link). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "ml.h"

#define MAX_DEPTH 64

typedef struct node {
    float val;    /* threshold, or the leaf value */
    int32_t feat; /* -1 for a leaf */
    int32_t left, right;
    int32_t dleft; /* missing goes left */
} node;

typedef enum { LINK_LOGIT, LINK_IDENTITY, LINK_LOG, LINK_RAW } link_kind;

struct ml_model {
    ml_schema *schema;
    json_t *info;   /* metrics.json, or NULL */
    json_t *training; /* schema.json's training_distribution, or NULL */
    char *dir;
    int ntrees, nnodes, width, max_depth;
    int32_t *root;  /* ntrees */
    node *n;        /* nnodes */
    double *cover;  /* nnodes: sum of hessians, for TreeSHAP */
    double *mean;   /* nnodes: cover-weighted mean leaf value below */
    double base_margin;
    double expected; /* base_margin + sum of root means: SHAP's base value */
    link_kind link;
    int regression, log_target;
};

void ml_model_free(ml_model *m) {
    if (!m) return;
    ml_schema_free(m->schema);
    json_decref(m->info);
    json_decref(m->training);
    eh_free(m->dir);
    eh_free(m->root);
    eh_free(m->n);
    eh_free(m->cover);
    eh_free(m->mean);
    eh_free(m);
}

const ml_schema *ml_model_schema(const ml_model *m) { return m->schema; }
int ml_model_is_regression(const ml_model *m) { return m->regression; }
int ml_model_log_target(const ml_model *m) { return m->log_target; }
const json_t *ml_model_info(const ml_model *m) { return m->info; }
const json_t *ml_model_training(const ml_model *m) { return m->training; }
const char *ml_model_dir(const ml_model *m) { return m->dir; }
int ml_model_trees(const ml_model *m) { return m->ntrees; }

/* XGBoost writes numbers in its JSON as numbers, and model parameters as
 * strings ("5E-1"). */
static double num_of(const json_t *v) {
    if (json_is_number(v)) return json_number_value(v);
    if (json_is_string(v)) return strtod(json_string_value(v), NULL);
    return NAN;
}

static int arr_len(const json_t *t, const char *key, size_t want) {
    const json_t *a = json_object_get(t, key);
    return json_is_array(a) && json_array_size(a) == want;
}

static double mean_below(ml_model *m, int32_t i, int depth, int *maxd) {
    if (depth > *maxd) *maxd = depth;
    if (depth > MAX_DEPTH) return 0; /* refused by the caller; stop before the stack does */
    node *nd = &m->n[i];
    if (nd->feat < 0) return m->mean[i] = nd->val;
    double l = mean_below(m, nd->left, depth + 1, maxd), r = mean_below(m, nd->right, depth + 1, maxd);
    double cl = m->cover[nd->left], cr = m->cover[nd->right];
    return m->mean[i] = cl + cr > 0 ? (l * cl + r * cr) / (cl + cr) : (l + r) / 2;
}

static int load_trees(ml_model *m, const json_t *root, char *err, size_t errlen) {
    const json_t *learner = json_object_get(root, "learner");
    const json_t *gb = json_object_get(learner, "gradient_booster");
    const char *gbname = json_string_value(json_object_get(gb, "name"));
    if (!gbname || strcmp(gbname, "gbtree")) {
        snprintf(err, errlen, "model.json: only gbtree boosters are supported (got %s)", gbname ? gbname : "none");
        return -1;
    }
    const json_t *lmp = json_object_get(learner, "learner_model_param");
    if (num_of(json_object_get(lmp, "num_class")) > 1) {
        snprintf(err, errlen, "model.json: multi-class models are not supported");
        return -1;
    }
    double base_score = num_of(json_object_get(lmp, "base_score"));
    int nfeat = (int)num_of(json_object_get(lmp, "num_feature"));
    const char *obj = json_string_value(json_object_get(json_object_get(learner, "objective"), "name"));
    if (!obj || isnan(base_score)) {
        snprintf(err, errlen, "model.json: no objective or base_score (is this an XGBoost JSON model?)");
        return -1;
    }
    if (!strcmp(obj, "binary:logistic") || !strcmp(obj, "reg:logistic")) {
        m->link = LINK_LOGIT;
        if (base_score <= 0 || base_score >= 1) base_score = 0.5;
        m->base_margin = log(base_score / (1 - base_score));
    } else if (!strcmp(obj, "binary:logitraw")) {
        m->link = LINK_RAW;
        m->base_margin = base_score;
    } else if (!strcmp(obj, "reg:squarederror") || !strcmp(obj, "reg:pseudohubererror") ||
               !strcmp(obj, "reg:absoluteerror") || !strcmp(obj, "reg:linear")) {
        m->link = LINK_IDENTITY;
        m->base_margin = base_score;
        m->regression = 1;
    } else if (!strcmp(obj, "count:poisson") || !strcmp(obj, "reg:gamma") || !strcmp(obj, "reg:tweedie")) {
        m->link = LINK_LOG;
        m->base_margin = log(base_score > 0 ? base_score : 1);
        m->regression = 1;
    } else {
        snprintf(err, errlen, "model.json: objective %s is not supported", obj);
        return -1;
    }
    if (nfeat != m->width) {
        snprintf(err, errlen, "model.json has %d features but the schema encodes %d columns", nfeat, m->width);
        return -1;
    }
    const json_t *trees = json_object_get(json_object_get(gb, "model"), "trees");
    if (!json_is_array(trees) || json_array_size(trees) == 0 || json_array_size(trees) > 100000) {
        snprintf(err, errlen, "model.json: no trees");
        return -1;
    }
    m->ntrees = (int)json_array_size(trees);
    size_t total = 0;
    for (size_t t = 0; t < json_array_size(trees); t++)
        total += json_array_size(json_object_get(json_array_get(trees, t), "left_children"));
    if (total == 0 || total > 50000000) {
        snprintf(err, errlen, "model.json: bad tree sizes");
        return -1;
    }
    m->root = eh_malloc((size_t)m->ntrees * sizeof *m->root);
    m->n = eh_malloc(total * sizeof *m->n);
    m->cover = eh_malloc(total * sizeof *m->cover);
    m->mean = eh_malloc(total * sizeof *m->mean);
    if (!m->root || !m->n || !m->cover || !m->mean) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int32_t at = 0;
    m->expected = m->base_margin;
    for (size_t t = 0; t < json_array_size(trees); t++) {
        const json_t *tr = json_array_get(trees, t);
        size_t k = json_array_size(json_object_get(tr, "left_children"));
        if (!k || !arr_len(tr, "right_children", k) || !arr_len(tr, "split_indices", k) ||
            !arr_len(tr, "split_conditions", k) || !arr_len(tr, "default_left", k) || !arr_len(tr, "sum_hessian", k)) {
            snprintf(err, errlen, "model.json: tree %zu is malformed", t);
            return -1;
        }
        const json_t *st = json_object_get(tr, "split_type");
        const json_t *lc = json_object_get(tr, "left_children"), *rc = json_object_get(tr, "right_children");
        const json_t *si = json_object_get(tr, "split_indices"), *sc = json_object_get(tr, "split_conditions");
        const json_t *dl = json_object_get(tr, "default_left"), *sh = json_object_get(tr, "sum_hessian");
        for (size_t i = 0; i < k; i++) {
            node *nd = &m->n[at + (int32_t)i];
            long l = (long)num_of(json_array_get(lc, i)), r = (long)num_of(json_array_get(rc, i));
            nd->val = (float)num_of(json_array_get(sc, i));
            m->cover[at + (int32_t)i] = num_of(json_array_get(sh, i));
            if (!(m->cover[at + (int32_t)i] >= 0) || !isfinite(m->cover[at + (int32_t)i]) || !isfinite(nd->val)) {
                snprintf(err, errlen, "model.json: tree %zu node %zu has a bad value or cover", t, i);
                return -1;
            }
            if (l < 0) {
                nd->feat = -1;
                nd->left = nd->right = -1;
                nd->dleft = 0;
                continue;
            }
            long f = (long)num_of(json_array_get(si, i));
            if (json_is_array(st) && num_of(json_array_get(st, i)) != 0) {
                snprintf(err, errlen, "model.json: categorical splits are not supported (one-hot encode instead)");
                return -1;
            }
            if (l >= (long)k || r < 0 || r >= (long)k || l <= (long)i || r <= (long)i || f < 0 || f >= nfeat) {
                snprintf(err, errlen, "model.json: tree %zu node %zu points outside the tree", t, i);
                return -1;
            }
            nd->feat = (int32_t)f;
            nd->left = at + (int32_t)l;
            nd->right = at + (int32_t)r;
            nd->dleft = num_of(json_array_get(dl, i)) != 0;
        }
        m->root[t] = at;
        int maxd = 0;
        m->expected += mean_below(m, at, 0, &maxd);
        if (maxd > MAX_DEPTH) {
            snprintf(err, errlen, "model.json: trees deeper than %d are not supported", MAX_DEPTH);
            return -1;
        }
        if (maxd > m->max_depth) m->max_depth = maxd;
        at += (int32_t)k;
    }
    m->nnodes = at;
    return 0;
}

ml_model *ml_model_from_json(const char *xgb_json, size_t len, const json_t *schema, char *err, size_t errlen) {
    json_error_t je;
    json_t *root = json_loadb(xgb_json, len, 0, &je);
    if (!root) {
        snprintf(err, errlen, "model.json: %s (line %d)", je.text, je.line);
        return NULL;
    }
    ml_model *m = eh_calloc(1, sizeof *m);
    if (!m) {
        json_decref(root);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!(m->schema = ml_schema_from_json(schema, err, errlen))) goto bad;
    m->width = ml_schema_width(m->schema);
    m->log_target = json_is_true(json_object_get(schema, "log_target"));
    m->training = json_incref(json_object_get(schema, "training_distribution"));
    if (load_trees(m, root, err, errlen)) goto bad;
    json_decref(root);
    return m;
bad:
    json_decref(root);
    ml_model_free(m);
    return NULL;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 && n < (1L << 30) ? eh_malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        eh_free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        *len = (size_t)n;
    }
    return b;
}

int ml_newest_version(const char *model_dir) {
    DIR *d = opendir(model_dir);
    int best = 0;
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long v = e->d_name[0] == 'v' ? strtol(e->d_name + 1, &end, 10) : 0;
        if (v > best && v < 1000000 && !*end) best = (int)v;
    }
    closedir(d);
    return best;
}

ml_model *ml_model_load(const char *dir, char *err, size_t errlen) {
    char path[1200], vdir[1024];
    snprintf(path, sizeof path, "%s/model.json", dir);
    snprintf(vdir, sizeof vdir, "%s", dir);
    FILE *probe = fopen(path, "rb");
    if (probe) {
        fclose(probe);
    } else {
        /* a model's directory: take its newest version */
        int best = ml_newest_version(dir);
        if (!best) {
            snprintf(err, errlen, "%s: no model.json and no version directory", dir);
            return NULL;
        }
        snprintf(vdir, sizeof vdir, "%s/v%d", dir, best);
        snprintf(path, sizeof path, "%s/model.json", vdir);
    }
    size_t len;
    char *text = slurp(path, &len);
    if (!text) {
        snprintf(err, errlen, "cannot read %s", path);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/schema.json", vdir);
    json_error_t je;
    json_t *schema = json_load_file(path, 0, &je);
    if (!schema) {
        eh_free(text);
        snprintf(err, errlen, "%s: %s", path, je.text);
        return NULL;
    }
    ml_model *m = ml_model_from_json(text, len, schema, err, errlen);
    eh_free(text);
    json_decref(schema);
    if (!m) return NULL;
    snprintf(path, sizeof path, "%s/metrics.json", vdir);
    m->info = json_load_file(path, 0, &je); /* optional */
    m->dir = eh_strdup(vdir);
    return m;
}

/* ---- prediction ---- */

static inline int32_t leaf_of(const node *n, int32_t i, const float *x) {
    while (n[i].feat >= 0) {
        float v = x[n[i].feat];
        i = isnan(v) ? (n[i].dleft ? n[i].left : n[i].right) : (v < n[i].val ? n[i].left : n[i].right);
    }
    return i;
}

double ml_model_margin(const ml_model *m, const float *x) {
    double s = m->base_margin;
    for (int t = 0; t < m->ntrees; t++) s += m->n[leaf_of(m->n, m->root[t], x)].val;
    return s;
}

double ml_model_output(const ml_model *m, double margin) {
    double v;
    switch (m->link) {
    case LINK_LOGIT: return 1.0 / (1.0 + exp(-margin));
    case LINK_LOG: v = exp(margin); break;
    default: v = margin;
    }
    return m->log_target ? exp(v) : v;
}

/* ---- TreeSHAP ---- */

typedef struct pathel {
    int feat;
    double zero, one, w;
} pathel;

static void extend(pathel *p, int d, double zero, double one, int feat) {
    p[d].feat = feat;
    p[d].zero = zero;
    p[d].one = one;
    p[d].w = d == 0 ? 1.0 : 0.0;
    for (int i = d - 1; i >= 0; i--) {
        p[i + 1].w += one * p[i].w * (i + 1) / (double)(d + 1);
        p[i].w = zero * p[i].w * (d - i) / (double)(d + 1);
    }
}

static void unwind(pathel *p, int d, int idx) {
    double one = p[idx].one, zero = p[idx].zero, next = p[d].w;
    for (int i = d - 1; i >= 0; i--) {
        if (one != 0) {
            double t = p[i].w;
            p[i].w = next * (d + 1) / ((i + 1) * one);
            next = t - p[i].w * zero * (d - i) / (double)(d + 1);
        } else {
            p[i].w = p[i].w * (d + 1) / (zero * (d - i));
        }
    }
    for (int i = idx; i < d; i++) {
        p[i].feat = p[i + 1].feat;
        p[i].zero = p[i + 1].zero;
        p[i].one = p[i + 1].one;
    }
}

static double unwound_sum(const pathel *p, int d, int idx) {
    double one = p[idx].one, zero = p[idx].zero, next = p[d].w, total = 0;
    for (int i = d - 1; i >= 0; i--) {
        if (one != 0) {
            double t = next * (d + 1) / ((i + 1) * one);
            total += t;
            next = p[i].w - t * zero * (d - i) / (double)(d + 1);
        } else if (zero != 0) {
            total += p[i].w / zero / ((d - i) / (double)(d + 1));
        }
    }
    return total;
}

/* parent: the path so far (depth+1 elements); this call works on its own
 * copy right after it, so siblings never see each other's changes. */
static void shap_rec(const ml_model *m, const float *x, double *phi, int32_t j, int depth, pathel *parent,
                     double zero, double one, int feat) {
    pathel *p = parent + depth + 1;
    if (depth > 0) memcpy(p, parent, (size_t)(depth + 1) * sizeof *p);
    extend(p, depth, zero, one, feat);
    const node *nd = &m->n[j];
    if (nd->feat < 0) {
        for (int i = 1; i <= depth; i++) {
            double w = unwound_sum(p, depth, i);
            phi[p[i].feat] += w * (p[i].one - p[i].zero) * nd->val;
        }
        return;
    }
    float v = x[nd->feat];
    int32_t hot = isnan(v) ? (nd->dleft ? nd->left : nd->right) : (v < nd->val ? nd->left : nd->right);
    int32_t cold = hot == nd->left ? nd->right : nd->left;
    /* the children's covers, normalised: a model whose covers do not add
     * up (hand-edited, or rounded) stays additive, as mean_below assumes */
    double ch = m->cover[hot], cc = m->cover[cold];
    double hz = ch + cc > 0 ? ch / (ch + cc) : 0.5, cz = ch + cc > 0 ? cc / (ch + cc) : 0.5;
    double iz = 1, io = 1;
    int k;
    for (k = 1; k <= depth; k++)
        if (p[k].feat == nd->feat) break;
    if (k <= depth) {
        iz = p[k].zero;
        io = p[k].one;
        unwind(p, depth, k);
        depth--;
    }
    shap_rec(m, x, phi, hot, depth + 1, p, hz * iz, io, nd->feat);
    shap_rec(m, x, phi, cold, depth + 1, p, cz * iz, 0, nd->feat);
}

void ml_model_shap(const ml_model *m, const float *x, double *phi, double *base) {
    /* each level of recursion keeps a copy of the path: (D+2)(D+3)/2 */
    pathel small[(20 + 2) * (20 + 3) / 2];
    size_t need = (size_t)(m->max_depth + 2) * (size_t)(m->max_depth + 3) / 2;
    pathel *buf = need <= sizeof small / sizeof small[0] ? small : eh_malloc(need * sizeof *buf);
    for (int c = 0; c < m->width; c++) phi[c] = 0;
    *base = m->expected;
    if (!buf) {
        for (int c = 0; c < m->width; c++) phi[c] = NAN;
        return;
    }
    for (int t = 0; t < m->ntrees; t++) shap_rec(m, x, phi, m->root[t], 0, buf, 1, 1, -1);
    if (buf != small) eh_free(buf);
}

/* ---- batch scoring of a table ---- */

int ml_predict_table(const ml_model *m, const ml_table *t, FILE *out, char *err, size_t errlen) {
    const ml_schema *s = m->schema;
    int *colmap = eh_malloc((size_t)ml_schema_features(s) * sizeof *colmap);
    float *x = eh_malloc((size_t)m->width * sizeof *x);
    if (!colmap || !x) {
        eh_free(colmap);
        eh_free(x);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (ml_schema_map_table(s, t, colmap, 1, err, errlen)) {
        eh_free(colmap);
        eh_free(x);
        return -1;
    }
    fprintf(out, "row,score,margin\n");
    for (size_t r = 0; r < ml_table_rows(t); r++) {
        ml_encode_table_row(s, t, colmap, r, x);
        double mg = ml_model_margin(m, x);
        fprintf(out, "%zu,%.9g,%.9g\n", r + 1, ml_model_output(m, mg), mg);
    }
    eh_free(colmap);
    eh_free(x);
    return ferror(out) ? -1 : 0;
}
