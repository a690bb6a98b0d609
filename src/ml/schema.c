/* Feature schemas: which raw fields a model reads and how each becomes
 * floats. Numeric fields pass through (missing -> NaN, which XGBoost routes
 * down each split's learned default branch). Categorical fields are one-hot
 * over a vocabulary of their frequent values; a rarer value seen in
 * training is "other" (all zeros); a missing value is NaN in every column of
 * the field, so it too follows the learned default. One-hot keeps the
 * trees plain numeric splits, which our tree walker and TreeSHAP read
 * directly and every XGBoost binding can load. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "ml.h"

#define MAX_KNOWN 2000 /* beyond, the vocabulary is open: unseen values are "other" */

/* Exact-match lookup of a fixed set of strings (feature names, a
 * feature's categories): open addressing over their FNV-1a hashes, at
 * most half full. A batch of 10,000 rows looks up 130,000 keys and 90,000
 * categories; a linear strcmp scan was a fifth of reading it. */
typedef struct strtab {
    int32_t *slot; /* index into the owner's array, -1 when empty */
    uint32_t *hash; /* each slot's full hash: a probe compares strings only when it matches */
    uint32_t mask;
} strtab;

typedef struct feat {
    char *name;
    ml_kind kind;
    int col0;   /* first encoded column */
    int ncat;   /* encoded categories (one column each) */
    char **cat;
    int nrare;  /* seen in training but too rare for a column of their own */
    char **rare;
    int open;   /* too many distinct values to list: unseen values are "other" */
    ml_unknown unknown;
    strtab cat_tab, rare_tab; /* built by index_schema */
} feat;

struct ml_schema {
    int nfeat;
    feat *f;
    char **fname;     /* nfeat: the features' names (owned by f), for name_tab */
    strtab name_tab;
    int width;
    char **colname; /* width */
    int *owner;     /* width */
};

static void feat_free(feat *f) {
    eh_free(f->name);
    for (int i = 0; i < f->ncat; i++) eh_free(f->cat[i]);
    for (int i = 0; i < f->nrare; i++) eh_free(f->rare[i]);
    eh_free(f->cat);
    eh_free(f->rare);
    eh_free(f->cat_tab.slot);
    eh_free(f->cat_tab.hash);
    eh_free(f->rare_tab.slot);
    eh_free(f->rare_tab.hash);
}

static uint32_t str_hash(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int strtab_build(strtab *t, char *const *names, int n) {
    uint32_t size = 8;
    while (size < 2u * (uint32_t)n) size *= 2;
    eh_free(t->slot);
    eh_free(t->hash);
    t->slot = eh_malloc(size * sizeof *t->slot);
    t->hash = eh_malloc(size * sizeof *t->hash);
    if (!t->slot || !t->hash) {
        eh_free(t->slot);
        eh_free(t->hash);
        t->slot = NULL;
        t->hash = NULL;
        return -1;
    }
    t->mask = size - 1;
    for (uint32_t i = 0; i < size; i++) t->slot[i] = -1;
    for (int i = 0; i < n; i++) {
        uint32_t full = str_hash(names[i]), h = full & t->mask;
        while (t->slot[h] >= 0) h = (h + 1) & t->mask;
        t->slot[h] = i;
        t->hash[h] = full;
    }
    return 0;
}

/* The index of s in names, or -1 (the first of equal names). */
static int strtab_find(const strtab *t, char *const *names, const char *s) {
    if (!t->slot) return -1;
    int found = -1;
    uint32_t full = str_hash(s);
    for (uint32_t h = full & t->mask; t->slot[h] >= 0; h = (h + 1) & t->mask)
        if (t->hash[h] == full && strcmp(names[t->slot[h]], s) == 0 && (found < 0 || t->slot[h] < found))
            found = t->slot[h];
    return found;
}

void ml_schema_free(ml_schema *s) {
    if (!s) return;
    for (int i = 0; i < s->nfeat; i++) feat_free(&s->f[i]);
    for (int i = 0; i < s->width; i++) eh_free(s->colname[i]);
    eh_free(s->f);
    eh_free(s->name_tab.slot);
    eh_free(s->name_tab.hash);
    eh_free(s->fname);
    eh_free(s->colname);
    eh_free(s->owner);
    eh_free(s);
}

/* Lays out the encoded columns once the features are known. */
static int layout(ml_schema *s) {
    int w = 0;
    for (int i = 0; i < s->nfeat; i++) {
        s->f[i].col0 = w;
        w += s->f[i].kind == ML_NUMERIC ? 1 : s->f[i].ncat;
    }
    s->width = 0;
    s->colname = eh_calloc(w ? (size_t)w : 1, sizeof *s->colname);
    s->owner = eh_calloc(w ? (size_t)w : 1, sizeof *s->owner);
    if (!s->colname || !s->owner) return -1;
    for (int i = 0; i < s->nfeat; i++) {
        feat *f = &s->f[i];
        int n = f->kind == ML_NUMERIC ? 1 : f->ncat;
        for (int k = 0; k < n; k++) {
            size_t len = strlen(f->name) + (f->kind == ML_NUMERIC ? 0 : strlen(f->cat[k]) + 1) + 1;
            char *c = eh_malloc(len);
            if (!c) return -1;
            if (f->kind == ML_NUMERIC) snprintf(c, len, "%s", f->name);
            else snprintf(c, len, "%s=%s", f->name, f->cat[k]);
            s->colname[s->width] = c;
            s->owner[s->width] = i;
            s->width++;
        }
    }
    /* the lookup tables the encoder uses */
    s->fname = eh_malloc((size_t)(s->nfeat ? s->nfeat : 1) * sizeof *s->fname);
    if (!s->fname) return -1;
    for (int i = 0; i < s->nfeat; i++) s->fname[i] = s->f[i].name;
    if (strtab_build(&s->name_tab, s->fname, s->nfeat)) return -1;
    for (int i = 0; i < s->nfeat; i++) {
        feat *f = &s->f[i];
        if (f->kind == ML_CATEGORICAL &&
            (strtab_build(&f->cat_tab, f->cat, f->ncat) || strtab_build(&f->rare_tab, f->rare, f->nrare)))
            return -1;
    }
    return 0;
}

int ml_schema_features(const ml_schema *s) { return s->nfeat; }
int ml_schema_width(const ml_schema *s) { return s->width; }
const char *ml_schema_feature(const ml_schema *s, int i) { return s->f[i].name; }
ml_kind ml_schema_kind(const ml_schema *s, int i) { return s->f[i].kind; }
int ml_schema_owner(const ml_schema *s, int col) { return s->owner[col]; }
const char *ml_schema_col_name(const ml_schema *s, int col) { return s->colname[col]; }

/* ---- inference ---- */

static int in_list(const char *list, const char *name) {
    if (!list) return 0;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, name, n) == 0) return 1;
        p += k;
        if (*p) p++;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct vcount {
    const char *v;
    size_t n;
} vcount;

static int cmp_count(const void *a, const void *b) {
    const vcount *x = a, *y = b;
    if (x->n != y->n) return x->n > y->n ? -1 : 1;
    return strcmp(x->v, y->v);
}

ml_schema *ml_schema_infer(const ml_table *t, const ml_infer_opts *o, char *err, size_t errlen) {
    int maxcat = o->max_categories > 0 ? o->max_categories : 64;
    size_t mincount = o->min_category_count > 0 ? (size_t)o->min_category_count : 5;
    size_t nrows = ml_table_rows(t), ncols = ml_table_cols(t);
    ml_schema *s = eh_calloc(1, sizeof *s);
    const char **vals = eh_malloc((nrows ? nrows : 1) * sizeof *vals);
    vcount *vc = eh_malloc((nrows ? nrows : 1) * sizeof *vc);
    if (s) s->f = eh_calloc(ncols ? ncols : 1, sizeof *s->f);
    if (!s || !s->f || !vals || !vc) goto oom;
    for (size_t c = 0; c < ncols; c++) {
        const char *name = ml_table_name(t, c);
        if ((o->label && strcmp(name, o->label) == 0) || in_list(o->drop, name)) continue;
        size_t present = 0, numeric = 0;
        for (size_t r = 0; r < nrows; r++) {
            const char *v = ml_table_cell(t, r, c);
            double d;
            if (ml_is_missing(v)) continue;
            present++;
            if (ml_parse_number(v, &d) == 0) numeric++;
        }
        if (!present) continue; /* nothing to learn from */
        feat f = {0};
        f.unknown = o->unknown;
        if (numeric == present) {
            f.kind = ML_NUMERIC;
        } else {
            f.kind = ML_CATEGORICAL;
            size_t n = 0;
            for (size_t r = 0; r < nrows; r++) {
                const char *v = ml_table_cell(t, r, c);
                if (!ml_is_missing(v)) vals[n++] = v;
            }
            qsort(vals, n, sizeof *vals, cmp_str);
            size_t nd = 0;
            for (size_t i = 0; i < n; i++) {
                if (nd && strcmp(vc[nd - 1].v, vals[i]) == 0) vc[nd - 1].n++;
                else vc[nd++] = (vcount){vals[i], 1};
            }
            /* one value says nothing; a value per row is an identifier or
             * free text, which trees would only memorise */
            if (nd < 2 || (nd > 50 && nd * 2 > n)) continue;
            qsort(vc, nd, sizeof *vc, cmp_count);
            size_t nenc = 0;
            while (nenc < nd && nenc < (size_t)maxcat && vc[nenc].n >= mincount) nenc++;
            if (nenc == 0) continue;
            f.cat = eh_calloc(nenc, sizeof *f.cat);
            if (!f.cat) goto oom;
            for (size_t i = 0; i < nenc; i++)
                if (!(f.cat[f.ncat++] = eh_strdup(vc[i].v))) goto oom_f;
            size_t nrare = nd - nenc;
            if (nrare > MAX_KNOWN) {
                f.open = 1;
            } else if (nrare) {
                f.rare = eh_calloc(nrare, sizeof *f.rare);
                if (!f.rare) goto oom_f;
                for (size_t i = 0; i < nrare; i++)
                    if (!(f.rare[f.nrare++] = eh_strdup(vc[nenc + i].v))) goto oom_f;
            }
            /* the vocabulary in a stable order for readers of schema.json */
            qsort(f.cat, (size_t)f.ncat, sizeof *f.cat, cmp_str);
            if (f.nrare) qsort(f.rare, (size_t)f.nrare, sizeof *f.rare, cmp_str);
        }
        if (!(f.name = eh_strdup(name))) goto oom_f;
        s->f[s->nfeat++] = f;
        continue;
    oom_f:
        feat_free(&f);
        goto oom;
    }
    eh_free(vals);
    eh_free(vc);
    if (!s->nfeat) {
        snprintf(err, errlen, "no usable feature column (every column is the label, dropped, empty, constant or an identifier)");
        ml_schema_free(s);
        return NULL;
    }
    if (layout(s)) goto oom;
    return s;
oom:
    eh_free(vals);
    eh_free(vc);
    ml_schema_free(s);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

/* ---- JSON ---- */

static json_t *str_array(char **v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_string(v[i]));
    return a;
}

json_t *ml_schema_to_json(const ml_schema *s) {
    json_t *feats = json_array();
    for (int i = 0; i < s->nfeat; i++) {
        const feat *f = &s->f[i];
        json_t *o = json_pack("{s:s, s:s}", "name", f->name, "type", f->kind == ML_NUMERIC ? "numeric" : "categorical");
        if (f->kind == ML_CATEGORICAL) {
            json_object_set_new(o, "categories", str_array(f->cat, f->ncat));
            json_object_set_new(o, "other", str_array(f->rare, f->nrare));
            json_object_set_new(o, "open", json_boolean(f->open));
            json_object_set_new(o, "unknown", json_string(f->unknown == ML_UNKNOWN_MISSING ? "missing" : "error"));
        }
        json_array_append_new(feats, o);
    }
    return json_pack("{s:s, s:o, s:o}", "format", "ehub-schema/1", "features", feats, "columns",
                     str_array(s->colname, s->width));
}

static int read_strs(const json_t *a, char ***out, int *n) {
    *n = 0;
    *out = NULL;
    if (!a) return 0;
    if (!json_is_array(a)) return -1;
    size_t k = json_array_size(a);
    if (!k) return 0;
    *out = eh_calloc(k, sizeof **out);
    if (!*out) return -1;
    for (size_t i = 0; i < k; i++) {
        const char *v = json_string_value(json_array_get(a, i));
        if (!v || !((*out)[i] = eh_strdup(v))) return -1;
        (*n)++;
    }
    return 0;
}

ml_schema *ml_schema_from_json(const json_t *j, char *err, size_t errlen) {
    const json_t *feats = json_object_get(j, "features");
    if (!json_is_array(feats) || !json_array_size(feats) || json_array_size(feats) > 100000) {
        snprintf(err, errlen, "schema: \"features\" must be a non-empty array");
        return NULL;
    }
    ml_schema *s = eh_calloc(1, sizeof *s);
    if (!s || !(s->f = eh_calloc(json_array_size(feats), sizeof *s->f))) {
        ml_schema_free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(feats); i++) {
        const json_t *o = json_array_get(feats, i);
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *type = json_string_value(json_object_get(o, "type"));
        feat *f = &s->f[s->nfeat++];
        if (!name || !*name || !type || (strcmp(type, "numeric") && strcmp(type, "categorical"))) {
            snprintf(err, errlen, "schema: feature %zu needs a name and a type (numeric or categorical)", i);
            goto bad;
        }
        for (int k = 0; k + 1 < s->nfeat; k++)
            if (strcmp(s->f[k].name, name) == 0) {
                snprintf(err, errlen, "schema: feature \"%.64s\" appears twice", name);
                goto bad;
            }
        f->name = eh_strdup(name);
        f->kind = strcmp(type, "numeric") == 0 ? ML_NUMERIC : ML_CATEGORICAL;
        if (f->kind == ML_CATEGORICAL) {
            if (read_strs(json_object_get(o, "categories"), &f->cat, &f->ncat) || !f->ncat ||
                read_strs(json_object_get(o, "other"), &f->rare, &f->nrare)) {
                snprintf(err, errlen, "schema: categorical feature \"%.64s\" needs a non-empty \"categories\" array of strings", name);
                goto bad;
            }
            f->open = json_is_true(json_object_get(o, "open"));
            const char *u = json_string_value(json_object_get(o, "unknown"));
            f->unknown = u && strcmp(u, "missing") == 0 ? ML_UNKNOWN_MISSING : ML_UNKNOWN_ERROR;
        }
        if (!f->name) {
            snprintf(err, errlen, "out of memory");
            goto bad;
        }
    }
    if (layout(s)) {
        snprintf(err, errlen, "out of memory");
        goto bad;
    }
    return s;
bad:
    ml_schema_free(s);
    return NULL;
}

/* ---- encoding ---- */

static int find_cat(const feat *f, const char *v) { return strtab_find(&f->cat_tab, f->cat, v); }

static int is_rare(const feat *f, const char *v) {
    if (f->open) return 1;
    return f->nrare && strtab_find(&f->rare_tab, f->rare, v) >= 0;
}

static void put_missing(const feat *f, float *out) {
    int n = f->kind == ML_NUMERIC ? 1 : f->ncat;
    for (int k = 0; k < n; k++) out[f->col0 + k] = NAN;
}

/* 0 ok, 1 unknown category */
static int put_cat(const feat *f, const char *v, float *out) {
    int k = find_cat(f, v);
    if (k < 0 && !is_rare(f, v)) {
        if (f->unknown == ML_UNKNOWN_ERROR) return 1;
        put_missing(f, out);
        return 0;
    }
    for (int i = 0; i < f->ncat; i++) out[f->col0 + i] = 0.0f;
    if (k >= 0) out[f->col0 + k] = 1.0f;
    return 0;
}

int ml_schema_map_table(const ml_schema *s, const ml_table *t, int *colmap, int require_all, char *err,
                        size_t errlen) {
    for (int i = 0; i < s->nfeat; i++) {
        colmap[i] = ml_table_col(t, s->f[i].name);
        if (colmap[i] < 0 && require_all) {
            snprintf(err, errlen, "the data has no column \"%.64s\", which the model needs", s->f[i].name);
            return -1;
        }
    }
    return 0;
}

void ml_encode_table_row(const ml_schema *s, const ml_table *t, const int *colmap, size_t r, float *out) {
    for (int i = 0; i < s->nfeat; i++) {
        const feat *f = &s->f[i];
        const char *v = colmap[i] >= 0 ? ml_table_cell(t, r, (size_t)colmap[i]) : "";
        if (ml_is_missing(v)) {
            put_missing(f, out);
        } else if (f->kind == ML_NUMERIC) {
            double d;
            out[f->col0] = ml_parse_number(v, &d) == 0 ? (float)d : NAN;
        } else if (put_cat(f, v, out)) {
            put_missing(f, out);
        }
    }
}

static int find_feat(const ml_schema *s, const char *name) { return strtab_find(&s->name_tab, s->fname, name); }

int ml_schema_find(const ml_schema *s, const char *name) { return find_feat(s, name); }

void ml_encode_begin(const ml_schema *s, float *out) {
    for (int i = 0; i < s->nfeat; i++) put_missing(&s->f[i], out);
}

int ml_encode_value(const ml_schema *s, int i, const ml_value *v, float *out, char *err, size_t errlen) {
    const feat *f = &s->f[i];
    const char *key = f->name;
    if (v->type == ML_V_NULL) {
        put_missing(f, out); /* (a repeated key's last value wins) */
        return 0;
    }
    if (v->type == ML_V_OTHER) {
        snprintf(err, errlen, "feature \"%.64s\" must be a %s", key,
                 f->kind == ML_NUMERIC ? "number" : "string (one of its categories)");
        return -1;
    }
    if (f->kind == ML_NUMERIC) {
        double d;
        if (v->type == ML_V_INT) d = (double)v->i;
        else if (v->type == ML_V_REAL) d = v->d;
        else if (v->type == ML_V_BOOL) d = v->i != 0;
        else if (ml_is_missing(v->s)) return 0;
        else if (ml_parse_number(v->s, &d)) {
            snprintf(err, errlen, "feature \"%.64s\" must be a number", key);
            return -1;
        }
        if (!isfinite(d) || fabs(d) > 3.4e38) {
            snprintf(err, errlen, "feature \"%.64s\" must be finite", key);
            return -1;
        }
        out[f->col0] = (float)d;
        return 0;
    }
    char num[64];
    const char *sv;
    if (v->type == ML_V_STRING) sv = v->s;
    else if (v->type == ML_V_INT) snprintf(num, sizeof num, "%lld", v->i), sv = num;
    else if (v->type == ML_V_REAL) snprintf(num, sizeof num, "%.17g", v->d), sv = num;
    else sv = v->i ? "true" : "false";
    if (ml_is_missing(sv)) return 0;
    if (put_cat(f, sv, out)) {
        snprintf(err, errlen, "feature \"%.64s\": unknown category \"%.64s\"", key, sv);
        return -1;
    }
    return 0;
}

int ml_encode_json(const ml_schema *s, const json_t *features, float *out, char *err, size_t errlen) {
    if (!json_is_object(features)) {
        snprintf(err, errlen, "\"features\" must be an object of raw field values");
        return -1;
    }
    ml_encode_begin(s, out);
    /* Every feature must be named: a value really unknown is sent as null.
     * An absent key is more often a client bug, which would otherwise
     * score quietly as "missing". */
    if (json_object_size(features) < (size_t)s->nfeat) {
        for (int i = 0; i < s->nfeat; i++)
            if (!json_object_get(features, s->f[i].name)) {
                snprintf(err, errlen, "feature \"%.64s\" is missing (send null if its value is unknown)", s->f[i].name);
                return -1;
            }
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)features, key, v) {
        int i = find_feat(s, key);
        if (i < 0) {
            snprintf(err, errlen, "unknown feature \"%.64s\" (GET /models lists each model's features)", key);
            return -1;
        }
        ml_value mv = {.type = ML_V_OTHER};
        if (json_is_null(v)) mv.type = ML_V_NULL;
        else if (json_is_integer(v)) mv.type = ML_V_INT, mv.i = json_integer_value(v);
        else if (json_is_real(v)) mv.type = ML_V_REAL, mv.d = json_real_value(v);
        else if (json_is_boolean(v)) mv.type = ML_V_BOOL, mv.i = json_is_true(v);
        else if (json_is_string(v)) mv.type = ML_V_STRING, mv.s = json_string_value(v);
        if (ml_encode_value(s, i, &mv, out, err, errlen)) return -1;
    }
    return 0;
}
