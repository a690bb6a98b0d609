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
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "ml.h"

#define MAX_DEPTH 64

typedef struct node {
    float val;    /* threshold, or the leaf value */
    int32_t feat; /* -1 for a leaf */
    int32_t left, right;
    int32_t dleft; /* missing goes left */
} node;

/* The layout the walkers read: each tree's nodes in breadth-first order,
 * a split's children side by side (right = left + 1), 16 bytes a node.
 * Choosing the child is arithmetic, not a branch: whether a row goes left
 * is a coin toss to the branch predictor. A leaf is a split that always
 * goes "left" to itself (threshold NaN: every comparison fails), so a tree
 * is walked a fixed number of steps, its depth, and several trees or rows
 * can be walked in lockstep. */
typedef struct fnode {
    float thr;    /* NaN in a leaf */
    int32_t feat; /* 0 in a leaf (any column will do) */
    int32_t left; /* absolute index; a leaf's is its own */
    int32_t nodl; /* 1 when a missing value goes right */
} fnode;

#define TREE_GROUP 8 /* trees walked in lockstep for one row */
#define ROW_BLOCK 32 /* rows walked in lockstep through one tree */

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
    /* Fast TreeSHAP tables (see fast_build); fast = 0 falls back to the
     * recursive algorithm */
    int fast;
    int max_tree_nodes;
    int32_t *leaf_start; /* ntrees + 1: each tree's leaves in `leaves` */
    struct fleaf *leaves;
    int32_t *lfeat;      /* each leaf's distinct path features */
    uint8_t *npos;       /* nnodes: at a split, the rank of its feature among
                            the distinct features of the path to it (first
                            occurrence first): the bit it sets in the masks
                            of the leaves below */
    float *tab;          /* each leaf: 2^d rows of d - 1 contributions */
    /* the walkers' layout (see fnode): a tree keeps its root's index */
    fnode *fn;       /* nnodes */
    float *lv;       /* nnodes: the leaf values, by fn index */
    uint8_t *tdepth; /* ntrees */
    uint8_t *gdepth; /* per TREE_GROUP trees: the deepest */
};

/* A unit of the tables: one leaf, or two sibling leaves (see fast_unit). */
typedef struct fleaf {
    double vl, vr;        /* the leaf's value; a pair's left and right leaves' */
    double vz;            /* sum of v times the product of its z_j: the share
                             in the tree's expected value */
    int32_t node;         /* relative to the tree's root: the leaf, or the pair's parent */
    int32_t feat0;        /* into lfeat */
    int64_t tab0;         /* into tab */
    uint8_t d, dp, pair;  /* distinct features; the parent's (pairs) */
} fleaf;

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
    eh_free(m->leaf_start);
    eh_free(m->leaves);
    eh_free(m->lfeat);
    eh_free(m->npos);
    eh_free(m->tab);
    eh_free(m->fn);
    eh_free(m->lv);
    eh_free(m->tdepth);
    eh_free(m->gdepth);
    eh_free(m);
}

const ml_schema *ml_model_schema(const ml_model *m) { return m->schema; }
int ml_model_is_regression(const ml_model *m) { return m->regression; }
int ml_model_log_target(const ml_model *m) { return m->log_target; }
const json_t *ml_model_info(const ml_model *m) { return m->info; }
const json_t *ml_model_training(const ml_model *m) { return m->training; }
const char *ml_model_dir(const ml_model *m) { return m->dir; }
int ml_model_trees(const ml_model *m) { return m->ntrees; }
int ml_model_fast_shap(const ml_model *m) { return m->fast; }

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

/* Lays the trees out for the walkers (see fnode). The loader checked
 * that children come after their parent; a node reached twice (a DAG, not
 * a tree) is refused here. */
static int flat_build(ml_model *m, char *err, size_t errlen) {
    int32_t maxk = 0;
    for (int t = 0; t < m->ntrees; t++) {
        int32_t end = t + 1 < m->ntrees ? m->root[t + 1] : m->nnodes;
        if (end - m->root[t] > maxk) maxk = end - m->root[t];
    }
    int ngroups = (m->ntrees + TREE_GROUP - 1) / TREE_GROUP;
    m->fn = eh_malloc((size_t)m->nnodes * sizeof *m->fn);
    m->lv = eh_malloc((size_t)m->nnodes * sizeof *m->lv);
    m->tdepth = eh_calloc((size_t)m->ntrees, 1);
    m->gdepth = eh_calloc((size_t)ngroups, 1);
    int32_t *q = eh_malloc((size_t)maxk * sizeof *q);
    uint8_t *qd = eh_malloc((size_t)maxk);
    if (!m->fn || !m->lv || !m->tdepth || !m->gdepth || !q || !qd) {
        eh_free(q);
        eh_free(qd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int t = 0; t < m->ntrees; t++) {
        int32_t root = m->root[t], end = t + 1 < m->ntrees ? m->root[t + 1] : m->nnodes, k = end - root;
        int32_t head = 0, tail = 1;
        /* every node has one parent at most, even among nodes no path
         * reaches (TreeSHAP's single pass relies on it) */
        memset(qd, 0, (size_t)k);
        for (int32_t i = root; i < end; i++) {
            const node *nd = &m->n[i];
            if (nd->feat < 0) continue;
            if (qd[nd->left - root]++ || qd[nd->right - root]++ || nd->left == nd->right) {
                eh_free(q);
                eh_free(qd);
                snprintf(err, errlen, "model.json: tree %d reaches a node twice", t);
                return -1;
            }
        }
        q[0] = root;
        qd[0] = 0;
        for (; head < tail; head++) {
            const node *nd = &m->n[q[head]];
            int32_t ni = root + head;
            fnode *f = &m->fn[ni];
            if (qd[head] > m->tdepth[t]) m->tdepth[t] = qd[head];
            if (nd->feat < 0) {
                *f = (fnode){NAN, 0, ni, 0};
                m->lv[ni] = nd->val;
                continue;
            }
            if (tail + 2 > k) {
                eh_free(q);
                eh_free(qd);
                snprintf(err, errlen, "model.json: tree %d reaches a node twice", t);
                return -1;
            }
            *f = (fnode){nd->val, nd->feat, root + tail, !nd->dleft};
            m->lv[ni] = 0;
            q[tail] = nd->left;
            q[tail + 1] = nd->right;
            qd[tail] = qd[tail + 1] = (uint8_t)(qd[head] + 1);
            tail += 2;
        }
        for (int32_t i = root + tail; i < end; i++) { /* unreachable: never walked */
            m->fn[i] = (fnode){NAN, 0, i, 0};
            m->lv[i] = 0;
        }
        if (m->tdepth[t] > m->gdepth[t / TREE_GROUP]) m->gdepth[t / TREE_GROUP] = m->tdepth[t];
    }
    eh_free(q);
    eh_free(qd);
    return 0;
}

/* ---- Fast TreeSHAP ----
 * (Yang 2021, "Fast TreeSHAP" v2.) For one leaf L with value v whose path
 * splits on the distinct features U (d of them), TreeSHAP's conditional
 * expectation is a product over U: feature j contributes o_j (1 if the row
 * follows every split of j on the path, else 0) when j is known and z_j
 * (the share of training cover that follows those splits) when not. The
 * Shapley value of i in U is then
 *   v (o_i - z_i) sum_k k!(d-1-k)!/d! e_k,
 * e_k the k-th coefficient of prod_{j != i} (z_j + o_j t). The o_j are 0
 * or 1, so per leaf there are only 2^d cases: all are computed at load,
 * and explaining a row is one pass over the tree's splits (parents before
 * children) carrying each node's mask of agreeing features down to its
 * children, then a table lookup per leaf. For depth-4 trees that is about
 * fifteen times less work than the recursive algorithm. */

#define FAST_MAX_D 12
#define FAST_BUDGET (4u << 20) /* table entries (doubles) per model */

typedef struct fast_build {
    ml_model *m;
    int32_t root;
    int32_t stack_node[MAX_DEPTH + 1];
    uint8_t stack_left[MAX_DEPTH + 1];
    int nl, nf;
    int64_t nt;
    int caplv, capfe;
    int64_t capta;
    int fail;
} fast_build;

static int grow(void **p, int *cap, int need, size_t size) {
    if (need <= *cap) return 0;
    int c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *n = eh_realloc(*p, (size_t)c * size);
    if (!n) return -1;
    *p = n;
    *cap = c;
    return 0;
}

/* The d contributions of one leaf (value v, cover shares z) for a row
 * agreeing with its path on the features in mask; w[k] = k!(d-1-k)!/d!. */
static void leaf_contrib(int d, const double *z, const double *w, double v, unsigned mask, double *out) {
    for (int i = 0; i < d; i++) {
        double c[FAST_MAX_D + 1] = {1.0};
        int deg = 0;
        for (int j = 0; j < d; j++) {
            if (j == i) continue;
            double o = (double)((mask >> j) & 1);
            for (int k = deg + 1; k >= 1; k--) c[k] = c[k] * z[j] + c[k - 1] * o;
            c[0] *= z[j];
            deg++;
        }
        double sum = 0;
        for (int k = 0; k < d; k++) sum += c[k] * w[k];
        out[i] = v * ((double)((mask >> i) & 1) - z[i]) * sum;
    }
}

/* One unit: the leaf at j, or, when pair, the two leaves below the split
 * j. Siblings share their distinct features, and their masks differ only
 * in the split's own bit: one table indexed by the parent's mask and the
 * way the row goes at j holds both leaves' sums, half the rows of two
 * tables (when j's feature is new on the path) and one lookup for two. */
static void fast_unit(fast_build *b, int32_t j, int depth, int pair) {
    ml_model *m = b->m;
    int32_t uf[FAST_MAX_D];
    double z[FAST_MAX_D];
    int d = 0;
    if (grow((void **)&m->leaves, &b->caplv, b->nl + 1, sizeof *m->leaves)) {
        b->fail = 1;
        return;
    }
    fleaf *L = &m->leaves[b->nl];
    L->node = j - b->root;
    L->pair = (uint8_t)pair;
    for (int k = 0; k < depth; k++) {
        const node *nd = &m->n[b->stack_node[k]];
        int pos;
        for (pos = 0; pos < d; pos++)
            if (uf[pos] == nd->feat) break;
        if (pos == d) {
            if (d == FAST_MAX_D) {
                b->fail = 1;
                return;
            }
            uf[d] = nd->feat;
            z[d++] = 1.0;
        }
        int32_t child = b->stack_left[k] ? nd->left : nd->right;
        double cl = m->cover[nd->left], cr = m->cover[nd->right];
        z[pos] *= cl + cr > 0 ? m->cover[child] / (cl + cr) : 0.5;
        m->npos[b->stack_node[k]] = (uint8_t)pos; /* the same from every leaf below */
    }
    int dp = d, pg = 0; /* the parent's distinct features; the split's position */
    double zl[FAST_MAX_D], zr[FAST_MAX_D];
    if (pair) {
        const node *nd = &m->n[j];
        for (pg = 0; pg < d; pg++)
            if (uf[pg] == nd->feat) break;
        if (pg == d) {
            if (d == FAST_MAX_D) {
                b->fail = 1;
                return;
            }
            uf[d] = nd->feat;
            z[d++] = 1.0;
        }
        m->npos[j] = (uint8_t)pg;
        double cl = m->cover[nd->left], cr = m->cover[nd->right];
        memcpy(zl, z, (size_t)d * sizeof *z);
        memcpy(zr, z, (size_t)d * sizeof *z);
        zl[pg] *= cl + cr > 0 ? cl / (cl + cr) : 0.5;
        zr[pg] *= cl + cr > 0 ? cr / (cl + cr) : 0.5;
    }
    /* states: the leaf's mask (d bits), or the parent's (dp bits) and the way taken */
    int sbits = pair ? dp + 1 : d;
    int64_t rows = (int64_t)1 << sbits, cols = d ? d - 1 : 0; /* (a tree that is one leaf: d = 0) */
    if (b->nt + rows * cols > (int64_t)FAST_BUDGET ||
        grow((void **)&m->lfeat, &b->capfe, b->nf + d, sizeof *m->lfeat)) {
        b->fail = 1;
        return;
    }
    if (b->nt + rows * cols > b->capta) {
        int64_t c = b->capta ? b->capta : 4096;
        while (c < b->nt + rows * cols) c *= 2;
        float *n = eh_realloc(m->tab, (size_t)c * sizeof *n);
        if (!n) {
            b->fail = 1;
            return;
        }
        m->tab = n;
        b->capta = c;
    }
    L->d = (uint8_t)d;
    L->dp = (uint8_t)dp;
    L->feat0 = b->nf;
    L->tab0 = b->nt;
    memcpy(m->lfeat + b->nf, uf, (size_t)d * sizeof *uf);
    b->nf += d;
    double w[FAST_MAX_D];
    for (int k = 0; k < d; k++) {
        double x = 1.0 / d;
        for (int a = 1; a <= k; a++) x *= (double)a / (double)(d - a); /* C(d-1, k)^-1 / d */
        w[k] = x;
    }
    double pz = 1, pzl = 1, pzr = 1;
    if (!pair) {
        L->vl = m->n[j].val;
        for (int i = 0; i < d; i++) pz *= z[i];
        L->vz = L->vl * pz;
    } else {
        L->vl = m->n[m->n[j].left].val;
        L->vr = m->n[m->n[j].right].val;
        for (int i = 0; i < d; i++) pzl *= zl[i], pzr *= zr[i];
        L->vz = L->vl * pzl + L->vr * pzr;
    }
    for (int64_t s = 0; s < rows; s++) {
        float *out = m->tab + b->nt + s * cols;
        double a[FAST_MAX_D], c[FAST_MAX_D];
        if (!pair) {
            leaf_contrib(d, z, w, L->vl, (unsigned)s, a);
        } else {
            unsigned gl = (unsigned)s & 1, mp = (unsigned)(s >> 1), full = (1u << d) - 1;
            unsigned bit = 1u << pg;
            if (dp < d) mp |= bit; /* the split's feature is new: its prefix agrees */
            leaf_contrib(d, zl, w, L->vl, (mp & ~(gl ? 0 : bit)) & full, a);
            leaf_contrib(d, zr, w, L->vr, (mp & ~(gl ? bit : 0)) & full, c);
            for (int i = 0; i < d; i++) a[i] += c[i];
        }
        for (int i = 0; i < cols; i++) out[i] = (float)a[i];
    }
    b->nt += rows * cols;
    b->nl++;
}

static void fast_walk(fast_build *b, int32_t j, int depth) {
    if (b->fail) return;
    const node *nd = &b->m->n[j];
    if (nd->feat < 0) {
        fast_unit(b, j, depth, 0);
        return;
    }
    if (b->m->n[nd->left].feat < 0 && b->m->n[nd->right].feat < 0) {
        fast_unit(b, j, depth, 1);
        return;
    }
    b->stack_node[depth] = j;
    b->stack_left[depth] = 1;
    fast_walk(b, nd->left, depth + 1);
    b->stack_left[depth] = 0;
    fast_walk(b, nd->right, depth + 1);
}

static void fast_build_all(ml_model *m) {
    fast_build b = {.m = m};
    m->leaf_start = eh_malloc((size_t)(m->ntrees + 1) * sizeof *m->leaf_start);
    m->npos = eh_calloc((size_t)m->nnodes, 1);
    if (!m->leaf_start || !m->npos) b.fail = 1;
    for (int t = 0; t < m->ntrees && !b.fail; t++) {
        m->leaf_start[t] = b.nl;
        b.root = m->root[t];
        int32_t end = t + 1 < m->ntrees ? m->root[t + 1] : m->nnodes;
        if (end - b.root > m->max_tree_nodes) m->max_tree_nodes = end - b.root;
        fast_walk(&b, m->root[t], 0);
    }
    if (!b.fail) m->leaf_start[m->ntrees] = b.nl;
    m->fast = !b.fail;
    if (!m->fast) { /* too deep or too large: the recursive algorithm serves */
        eh_free(m->leaf_start);
        eh_free(m->leaves);
        eh_free(m->lfeat);
        eh_free(m->npos);
        eh_free(m->tab);
        m->leaf_start = NULL;
        m->leaves = NULL;
        m->lfeat = NULL;
        m->npos = NULL;
        m->tab = NULL;
    }
}

/* A leaf's contributions for a row that agrees with its path on the
 * features in mask. The table holds them as floats (half the cache lines:
 * the tables of a model are read at random, and their size is what an
 * explanation costs), except the last feature's, which is what makes the
 * leaf's contributions add up, in double, to its share of the margin:
 * v (1 if the row reaches the leaf, else 0) minus v prod z. So base +
 * sum(phi) equals the margin to double rounding whatever the tables'
 * precision, and each contribution is within float rounding of exact. */
static inline void leaf_add(const ml_model *m, const fleaf *L, unsigned state, double reached, double *phi) {
    if (!L->d) return; /* a tree that is one leaf: its value is all base */
    int cols = L->d - 1;
    const float *row = m->tab + L->tab0 + (int64_t)state * cols;
    const int32_t *f = m->lfeat + L->feat0;
    double rest = 0;
    for (int k = 0; k < cols; k++) {
        phi[f[k]] += row[k];
        rest += row[k];
    }
    phi[f[cols]] += reached - L->vz - rest;
}

/* nm: scratch for the tree's nodes. A node's mask has bit k set while the
 * row agrees with every split on the way to it of the path's k-th
 * distinct feature; a split clears its feature's bit on the side the row
 * does not take. The loader checked that children come after their
 * parent, so one pass in index order sees every parent first; nodes no
 * path reaches (flat_build checked that none is reached twice) are
 * cleared first so nothing below them reads an unset mask. */
static void fast_shap(const ml_model *m, const float *x, double *phi, uint32_t *nm, uint8_t *dir) {
    for (int t = 0; t < m->ntrees; t++) {
        int32_t root = m->root[t], end = t + 1 < m->ntrees ? m->root[t + 1] : m->nnodes;
        memset(nm, 0, (size_t)(end - root) * sizeof *nm);
        nm[0] = ~0u;
        for (int32_t i = root; i < end; i++) {
            const node *nd = &m->n[i];
            if (nd->feat < 0) continue;
            float v = x[nd->feat];
            uint32_t left = (uint32_t)((v < nd->val) | (nd->dleft & (v != v)));
            uint32_t bit = 1u << m->npos[i], p = nm[i - root];
            dir[i - root] = (uint8_t)left;
            /* branch-free: which way a row goes is a coin toss to the
             * branch predictor */
            nm[nd->left - root] = p & ~(bit & (left - 1));
            nm[nd->right - root] = p & ~(bit & (0u - left));
        }
        for (int32_t l = m->leaf_start[t]; l < m->leaf_start[t + 1]; l++) {
            const fleaf *L = &m->leaves[l];
            if (L->pair) {
                unsigned full = (1u << L->dp) - 1, mp = nm[L->node] & full, gl = dir[L->node];
                leaf_add(m, L, mp << 1 | gl, mp == full ? (gl ? L->vl : L->vr) : 0, phi);
            } else {
                unsigned full = (1u << L->d) - 1, mask = nm[L->node] & full;
                leaf_add(m, L, mask, mask == full ? L->vl : 0, phi);
            }
        }
    }
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
    if (load_trees(m, root, err, errlen) || flat_build(m, err, errlen)) goto bad;
    fast_build_all(m);
    json_decref(root);
    return m;
bad:
    json_decref(root);
    ml_model_free(m);
    return NULL;
}

char *ml_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    buf b;
    buf_init(&b, max);
    char chunk[65536];
    size_t n;
    int rc = BUF_OK;
    while (rc == BUF_OK && (n = fread(chunk, 1, sizeof chunk, f)) > 0) rc = buf_append(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    *len = b.len;
    if (rc == BUF_OK && !bad) rc = buf_append(&b, "", 1); /* NUL-terminated for parsers that want it */
    if (rc != BUF_OK || bad) {
        snprintf(err, errlen, "cannot read %s: %s", path,
                 bad ? "read error" : rc == BUF_TOO_BIG ? "too large" : "out of memory");
        buf_free(&b);
        return NULL;
    }
    return b.p; /* eh_free */
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

int ml_active_version(const char *model_dir) {
    char path[1500];
    snprintf(path, sizeof path, "%s/active", model_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        int v = 0;
        if (fscanf(f, "v%d", &v) != 1) v = 0;
        fclose(f);
        if (v > 0) return v;
    }
    return ml_newest_version(model_dir);
}

int ml_set_active(const char *model_dir, int version) {
    char path[1500], tmp[1520];
    snprintf(path, sizeof path, "%s/active", model_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    int bad = fprintf(f, "v%d\n", version) < 0;
    if (fclose(f) != 0 || bad) return -1;
    return rename(tmp, path);
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
    char *text = ml_read_file(path, (size_t)1 << 30, &len, err, errlen);
    if (!text) return NULL;
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

double ml_model_margin_reference(const ml_model *m, const float *x) {
    double s = m->base_margin;
    for (int t = 0; t < m->ntrees; t++) s += m->n[leaf_of(m->n, m->root[t], x)].val;
    return s;
}

/* One step down: a NaN fails both comparisons, so it goes right unless
 * the node sends missing values left; a leaf stays where it is. */
static inline int32_t step(const fnode *fn, int32_t i, const float *x) {
    const fnode *f = &fn[i];
    float v = x[f->feat];
    return f->left + ((v >= f->thr) | (f->nodl & (v != v)));
}

/* The leaves are added in tree order, as ml_model_margin_reference does:
 * the same double sum, bit for bit. */
double ml_model_margin(const ml_model *m, const float *x) {
    const fnode *fn = m->fn;
    double s = m->base_margin;
    int t0 = 0;
    for (; t0 + TREE_GROUP <= m->ntrees; t0 += TREE_GROUP) {
        int32_t i[TREE_GROUP];
        for (int j = 0; j < TREE_GROUP; j++) i[j] = m->root[t0 + j];
        for (int d = m->gdepth[t0 / TREE_GROUP]; d > 0; d--)
            for (int j = 0; j < TREE_GROUP; j++) i[j] = step(fn, i[j], x);
        for (int j = 0; j < TREE_GROUP; j++) s += m->lv[i[j]];
    }
    for (; t0 < m->ntrees; t0++) {
        int32_t i = m->root[t0];
        for (int d = m->tdepth[t0]; d > 0; d--) i = step(fn, i, x);
        s += m->lv[i];
    }
    return s;
}

void ml_model_margins(const ml_model *m, const float *X, size_t n, double *out) {
    const fnode *fn = m->fn;
    size_t w = (size_t)m->width;
    for (size_t r0 = 0; r0 < n; r0 += ROW_BLOCK) {
        int nb = n - r0 < ROW_BLOCK ? (int)(n - r0) : ROW_BLOCK;
        const float *xb = X + r0 * w;
        double s[ROW_BLOCK];
        int32_t i[ROW_BLOCK];
        for (int r = 0; r < nb; r++) s[r] = m->base_margin;
        for (int t = 0; t < m->ntrees; t++) {
            for (int r = 0; r < nb; r++) i[r] = m->root[t];
            for (int d = m->tdepth[t]; d > 0; d--)
                for (int r = 0; r < nb; r++) i[r] = step(fn, i[r], xb + (size_t)r * w);
            for (int r = 0; r < nb; r++) s[r] += m->lv[i[r]];
        }
        memcpy(out + r0, s, (size_t)nb * sizeof *s);
    }
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
    for (int c = 0; c < m->width; c++) phi[c] = 0;
    *base = m->expected;
    if (m->fast) {
        uint32_t small_nm[1024];
        uint8_t small_dir[1024];
        int big = m->max_tree_nodes > 1024;
        uint32_t *nm = big ? eh_malloc((size_t)m->max_tree_nodes * sizeof *nm) : small_nm;
        uint8_t *dir = big ? eh_malloc((size_t)m->max_tree_nodes) : small_dir;
        int ok = nm && dir;
        if (ok) fast_shap(m, x, phi, nm, dir);
        if (big) {
            eh_free(nm);
            eh_free(dir);
        }
        if (ok) return;
    }
    ml_model_shap_recursive(m, x, phi, base);
}

void ml_model_shap_recursive(const ml_model *m, const float *x, double *phi, double *base) {
    for (int c = 0; c < m->width; c++) phi[c] = 0;
    *base = m->expected;
    /* each level of recursion keeps a copy of the path: (D+2)(D+3)/2 */
    pathel small[(20 + 2) * (20 + 3) / 2];
    size_t need = (size_t)(m->max_depth + 2) * (size_t)(m->max_depth + 3) / 2;
    pathel *buf = need <= sizeof small / sizeof small[0] ? small : eh_malloc(need * sizeof *buf);
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
