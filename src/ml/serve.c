/* The model registry and the scoring routes.
 *
 * Models live on disk as DATA_DIR/models/NAME/vN (written by `ehub train`
 * or imported); NAME/active names the version served (the newest when
 * absent). All are loaded at start. Activating another version (a rollback,
 * or a model trained while the server runs) loads it aside and swaps one
 * pointer on the loop thread: requests in flight keep the version they
 * started with (batch jobs hold a reference), none is dropped.
 *
 * Single predictions run on the loop thread: encoding plus the tree walk
 * costs a few microseconds, less than a trip through the thread pool; so
 * do explanations from TreeSHAP tables (tens of µs). Batches, and
 * explanations of models too deep for tables (hundreds of µs), go to the
 * pool.
 *
 * Routes: POST /predict, /batch-predict, GET /models, /stats (the old
 * inference server's, kept for its clients) and the same under /v1, plus
 * POST /v1/models/{name}/activate. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "ml.h"
#include "score/score.h"

#define MAX_BATCH 10000
#define MAX_BATCH_BODY (32u * 1024 * 1024)
#define LAT_BUCKETS 96 /* latency histogram for /stats: bucket k holds <= 1.2^k µs */

typedef struct mref {
    ml_model *m;
    ml_drift *drift; /* live rows scored by this version (loop thread) */
    int version;
    int refs; /* the registry's, plus one per batch or explain job; loop thread only */
} mref;

typedef struct served {
    char name[65];
    mref *cur;
    uint64_t predictions, errors;
    uint64_t lat[LAT_BUCKETS];
} served;

struct ml_ctx {
    app *a;
    char dir[1100];
    served **v; /* each allocated alone: jobs keep pointers across a grow */
    int n, cap;
    metric *m_pred, *m_lat, *m_psi;
};

static void mref_put(mref *r) {
    if (r && --r->refs == 0) {
        ml_drift_free(r->drift);
        ml_model_free(r->m);
        eh_free(r);
    }
}

static served *find(ml_ctx *c, const char *name) {
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->v[i]->name, name) == 0) return c->v[i];
    return NULL;
}

static mref *load_version(ml_ctx *c, const char *name, int version, char *err, size_t errlen) {
    char vdir[1200];
    snprintf(vdir, sizeof vdir, "%s/%s/v%d", c->dir, name, version);
    ml_model *m = ml_model_load(vdir, err, errlen);
    if (!m) return NULL;
    mref *r = eh_calloc(1, sizeof *r);
    if (!r) {
        ml_model_free(m);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->m = m;
    r->drift = ml_drift_new(m);
    r->version = version;
    r->refs = 1;
    return r;
}

static served *add(ml_ctx *c, const char *name) {
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 8;
        served **nv = eh_realloc(c->v, (size_t)cap * sizeof *nv);
        if (!nv) return NULL;
        c->v = nv;
        c->cap = cap;
    }
    served *s = eh_calloc(1, sizeof *s);
    if (!s) return NULL;
    snprintf(s->name, sizeof s->name, "%s", name);
    c->v[c->n++] = s;
    return s;
}

/* Swaps in a loaded version (loop thread). */
static int install(ml_ctx *c, const char *name, mref *r) {
    served *s = find(c, name);
    if (!s && !(s = add(c, name))) return -1;
    mref *old = s->cur;
    s->cur = r;
    mref_put(old);
    return 0;
}

static void load_all(ml_ctx *c) {
    DIR *d = opendir(c->dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!ml_name_valid(e->d_name)) continue;
        char mdir[1400], err[ML_ERR_LEN];
        snprintf(mdir, sizeof mdir, "%s/%s", c->dir, e->d_name);
        int v = ml_active_version(mdir);
        if (!v) continue;
        mref *r = load_version(c, e->d_name, v, err, sizeof err);
        log_line l;
        if (!r) {
            if (log_begin(c->a->log, &l, LOG_WARN, "model not loaded")) {
                log_str(&l, "model", e->d_name);
                log_int(&l, "version", v);
                log_str(&l, "error", err);
                log_end(&l);
            }
            continue;
        }
        if (install(c, e->d_name, r)) {
            mref_put(r);
            continue;
        }
        if (log_begin(c->a->log, &l, LOG_INFO, "model loaded")) {
            log_str(&l, "model", e->d_name);
            log_int(&l, "version", v);
            log_int(&l, "trees", ml_model_trees(r->m));
            log_int(&l, "features", ml_schema_features(ml_model_schema(r->m)));
            log_end(&l);
        }
    }
    closedir(d);
}

/* PSI per feature into the ehub_ml_feature_psi gauge. */
static void publish_drift(ml_ctx *c, served *s) {
    const ml_drift *d = s->cur->drift;
    const ml_schema *sc = ml_model_schema(s->cur->m);
    if (!d || !ml_drift_rows(d)) return;
    for (int f = 0; f < ml_schema_features(sc); f++) {
        double psi = ml_drift_psi(d, f);
        const char *lv[] = {s->name, ml_schema_feature(sc, f)};
        if (!isnan(psi)) metric_set(c->m_psi, lv, psi);
    }
}

static void observe(ml_ctx *c, served *s, int64_t t0, size_t rows) {
    /* the gauges follow every 1,000 rows: cheap, and fresh enough to scrape */
    if ((s->predictions + rows) / 1000 != s->predictions / 1000) publish_drift(c, s);
    double us = (double)(clock_mono_ns() - t0) / 1000.0;
    int k = us <= 1 ? 0 : (int)ceil(log(us) / log(1.2));
    if (k >= LAT_BUCKETS) k = LAT_BUCKETS - 1;
    s->lat[k]++;
    s->predictions += rows;
    const char *lv[] = {s->name};
    metric_add(c->m_pred, lv, (double)rows);
    metric_observe(c->m_lat, lv, us / 1e6);
}

static double quantile_us(const served *s, double q) {
    uint64_t total = 0, seen = 0;
    for (int k = 0; k < LAT_BUCKETS; k++) total += s->lat[k];
    if (!total) return 0;
    for (int k = 0; k < LAT_BUCKETS; k++) {
        seen += s->lat[k];
        if ((double)seen >= q * (double)total) return pow(1.2, k);
    }
    return pow(1.2, LAT_BUCKETS - 1);
}

/* ---- request parsing shared by the routes ---- */


/* The answer to /predict, written directly (this is the hot path):
 * {"model","version","score","margin"[,"explanation":{"base","contributions"}]}.
 * Contributions are per raw feature: SHAP is additive, so a categorical's
 * one-hot columns add up to the feature's share. */
/* ",KEY":number" (key without quotes): the number as %.15g writes it */
static int put_num(buf *b, const char *key, double v) {
    char num[ML_G15_LEN];
    int n = ml_format_g15(v, num);
    int rc = buf_puts(b, key);
    return rc == BUF_OK ? buf_append(b, num, (size_t)n) : rc;
}

static void reply_scored(http_req *q, const served *s, const mref *r, double margin, const double *phi, double base) {
    const ml_model *m = r->m;
    buf b;
    buf_init(&b, (size_t)4 << 20);
    /* model names are [a-z0-9_-]: nothing to escape */
    int rc = buf_puts(&b, "{\"model\":\"");
    if (rc == BUF_OK) rc = buf_puts(&b, s->name);
    if (rc == BUF_OK) rc = buf_puts(&b, "\",\"version\":");
    if (rc == BUF_OK) rc = buf_json_int(&b, r->version);
    if (rc == BUF_OK) rc = put_num(&b, ",\"score\":", ml_model_output(m, margin));
    if (rc == BUF_OK) rc = put_num(&b, ",\"margin\":", margin);
    if (phi && rc == BUF_OK) {
        const ml_schema *sc = ml_model_schema(m);
        int nf = ml_schema_features(sc), w = ml_schema_width(sc);
        double byf_small[256], *byf = nf <= 256 ? byf_small : eh_calloc((size_t)nf, sizeof *byf);
        if (!byf) {
            rc = BUF_NOMEM;
        } else {
            memset(byf, 0, (size_t)nf * sizeof *byf);
            for (int col = 0; col < w; col++) byf[ml_schema_owner(sc, col)] += phi[col];
            rc = put_num(&b, ",\"explanation\":{\"base\":", base);
            if (rc == BUF_OK) rc = buf_puts(&b, ",\"contributions\":{");
            for (int f = 0; f < nf && rc == BUF_OK; f++) {
                const char *name = ml_schema_feature(sc, f);
                if (f) rc = buf_puts(&b, ",");
                if (rc == BUF_OK) rc = buf_puts(&b, "\"");
                if (rc == BUF_OK) rc = buf_json_str(&b, name, strlen(name));
                if (rc == BUF_OK) rc = put_num(&b, "\":", byf[f]);
            }
            if (rc == BUF_OK) rc = buf_puts(&b, "}}");
            if (byf != byf_small) eh_free(byf);
        }
    }
    if (rc == BUF_OK) rc = buf_puts(&b, "}");
    if (rc == BUF_OK) http_reply(q, 200, "application/json", b.p, b.len);
    else http_reply_error(q, 503, "overloaded", "out of memory");
    buf_free(&b);
}

/* ---- POST /predict ---- */

typedef struct explain_job {
    ml_ctx *c;
    served *s; /* stays valid: served entries are never removed */
    mref *r;
    float *x;
    double *phi;
    double base, margin;
    int64_t t0;
} explain_job;

static void explain_work(void *arg) {
    explain_job *j = arg;
    j->margin = ml_model_margin(j->r->m, j->x);
    ml_model_shap(j->r->m, j->x, j->phi, &j->base);
}

static void explain_done(http_req *q, void *arg) {
    explain_job *j = arg;
    observe(j->c, j->s, j->t0, 1);
    reply_scored(q, j->s, j->r, j->margin, j->phi, j->base);
    mref_put(j->r);
    eh_free(j->x);
    eh_free(j->phi);
    eh_free(j);
}

/* /predict for a tenant's built-in model (lead_scoring, churn,
 * property_value: src/score): on the pool, since the tenant's model may
 * have to be read from disk first. A shared model of the same name, if
 * one was trained, wins. */
typedef struct builtin_job {
    app *a;
    int64_t tenant;
    char name[65];
    json_t *features;
    int explain, status;
    json_t *out;
    char err[256];
} builtin_job;

static void builtin_work(void *arg) {
    builtin_job *j = arg;
    j->status = score_features(j->a->score, j->tenant, j->name, j->features, j->explain, &j->out, j->err,
                               sizeof j->err);
}

static void builtin_done(http_req *q, void *arg) {
    builtin_job *j = arg;
    if (j->status == 0) http_reply_json(q, 200, j->out);
    else
        http_reply_error(q, j->status, j->status == 422 ? "invalid_features" : j->status == 409 ? "no_model"
                                                                                                : "unknown_model",
                         j->err);
    json_decref(j->features);
    eh_free(j);
}

static void builtin_predict(http_req *q, app *a, const auth_principal *p, const char *body, size_t len,
                            const char *name) {
    json_error_t je;
    json_t *in = json_loadb(body, len, 0, &je);
    json_t *f = json_object_get(in, "features"), *ex = json_object_get(in, "explain");
    if (!json_is_object(f) || (ex && !json_is_boolean(ex))) {
        json_decref(in);
        http_reply_error(q, 422, "invalid_features", "send {\"model\", \"features\": {...}, \"explain\": bool}");
        return;
    }
    builtin_job *j = eh_calloc(1, sizeof *j);
    if (!j) {
        json_decref(in);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    j->a = a;
    j->tenant = p->tenant;
    snprintf(j->name, sizeof j->name, "%s", name);
    j->features = json_incref(f);
    j->explain = json_is_true(ex);
    json_decref(in);
    if (http_req_work(q, builtin_work, builtin_done, j)) {
        json_decref(j->features);
        eh_free(j);
        http_reply_error(q, 503, "overloaded", "cannot schedule");
    }
}

static void h_predict(http_req *q, app *a, const auth_principal *p, void *ud) {
    ml_ctx *c = ud;
    int64_t t0 = clock_mono_ns();
    /* Read without building a JSON tree: the model's name, then the
     * features straight into the encoded row (batch.c). */
    const char *body;
    size_t blen;
    char name[65], err[ML_ERR_LEN + 64];
    if (http_req_json_body(q, &body, &blen)) return; /* answered */
    /* Usually "model" comes first: read just that, and let ml_read_predict's
     * one pass check the rest. Otherwise, or when the name is not one of
     * ours (a malformed body must still answer 400 before 404), the whole
     * body is parsed for it first. */
    served *s = ml_predict_model(body, blen, name) ? find(c, name) : NULL;
    if (!s || !s->cur) {
        if (ml_batch_model(body, blen, name, err, sizeof err)) {
            http_reply_error(q, 400, strncmp(err, "invalid JSON", 12) == 0 ? "invalid_json" : "missing_field", err);
            return;
        }
        s = name[0] ? find(c, name) : NULL;
    }
    if ((!s || !s->cur) && score_builtin(name)) {
        builtin_predict(q, a, p, body, blen, name);
        return;
    }
    if (!s || !s->cur) {
        http_reply_error(q, 404, "unknown_model", "no such model; GET /models lists them");
        return;
    }
    const ml_model *m = s->cur->m;
    int w = ml_schema_width(ml_model_schema(m));
    float xs[512], *x = w <= 512 ? xs : eh_malloc((size_t)w * sizeof *x);
    if (!x) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    int explain = 0;
    int st = ml_read_predict(ml_model_schema(m), body, blen, x, &explain, err, sizeof err);
    if (st) {
        s->errors++;
        if (x != xs) eh_free(x);
        http_reply_error(q, st, st == 422 ? "invalid_features" : st == 400 ? "invalid_json" : "overloaded", err);
        return;
    }
    if (s->cur->drift) ml_drift_add(s->cur->drift, x);
    if (!explain) {
        double mg = ml_model_margin(m, x);
        if (x != xs) eh_free(x);
        observe(c, s, t0, 1);
        reply_scored(q, s, s->cur, mg, NULL, 0);
        return;
    }
    if (ml_model_fast_shap(m) && w <= 512) {
        /* Table-driven TreeSHAP costs about what the request around it
         * does: cheaper here than two trips through the thread pool. */
        double phi[512], base, mg = ml_model_margin(m, x);
        ml_model_shap(m, x, phi, &base);
        if (x != xs) eh_free(x);
        observe(c, s, t0, 1);
        reply_scored(q, s, s->cur, mg, phi, base);
        return;
    }
    explain_job *j = eh_calloc(1, sizeof *j);
    float *xc = eh_malloc((size_t)w * sizeof *xc);
    double *phi = eh_malloc((size_t)w * sizeof *phi);
    if (!j || !xc || !phi) {
        eh_free(j);
        eh_free(xc);
        eh_free(phi);
        if (x != xs) eh_free(x);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    memcpy(xc, x, (size_t)w * sizeof *xc);
    if (x != xs) eh_free(x);
    *j = (explain_job){c, s, s->cur, xc, phi, 0, 0, t0};
    s->cur->refs++;
    if (http_req_work(q, explain_work, explain_done, j)) {
        mref_put(j->r);
        eh_free(xc);
        eh_free(phi);
        eh_free(j);
        http_reply_error(q, 503, "overloaded", "cannot schedule work");
    }
}

/* ---- POST /batch-predict (body streamed: up to 10,000 rows, 32 MiB) ---- */

/* Three steps, so the loop never parses megabytes: the body is collected
 * (streamed); the model's name is found on the pool; the model is looked
 * up on the loop (where the registry lives); the rows are read straight
 * into encoded floats, scored and answered on the pool (ml_batch_rows: no
 * JSON tree is built). */
typedef struct batch_job {
    ml_ctx *c;
    served *s;
    mref *r;
    buf body;
    char name[65];
    buf out;
    ml_drift *drift; /* this batch's rows, merged on the loop */
    int status;
    char err[ML_ERR_LEN + 64];
    int64_t t0;
    size_t rows;
} batch_job;

static void batch_free(batch_job *j) {
    ml_drift_free(j->drift);
    mref_put(j->r);
    buf_free(&j->body);
    buf_free(&j->out);
    eh_free(j);
}

static void batch_fail(http_req *q, batch_job *j) {
    if (j->s) j->s->errors++;
    const char *code = j->status == 422   ? "invalid_features"
                       : j->status == 413 ? "too_large"
                       : j->status == 503 ? "overloaded"
                                          : "bad_request";
    http_reply_error(q, j->status, code, j->err);
    batch_free(j);
}

static void score_work(void *arg) {
    batch_job *j = arg;
    const ml_model *m = j->r->m;
    int w = ml_schema_width(ml_model_schema(m));
    float *X = NULL;
    size_t n = 0;
    j->status = ml_batch_rows(ml_model_schema(m), j->body.p, j->body.len, MAX_BATCH, &X, &n, j->err, sizeof j->err);
    buf_free(&j->body);
    if (j->status) return;
    j->rows = n;
    double *mg = eh_malloc((n ? n : 1) * sizeof *mg);
    if (!mg) {
        eh_free(X);
        j->status = 503;
        snprintf(j->err, sizeof j->err, "out of memory");
        return;
    }
    ml_model_margins(m, X, n, mg);
    if (j->drift)
        for (size_t i = 0; i < n; i++) ml_drift_add(j->drift, X + i * (size_t)w);
    eh_free(X);
    /* {"model":NAME,"version":N,"scores":[...]}: names are [a-z0-9_-] */
    buf_init(&j->out, (size_t)64 << 20);
    int rc = buf_printf(&j->out, "{\"model\":\"%s\",\"version\":%d,\"scores\":[", j->s->name, j->r->version);
    for (size_t i = 0; i < n && rc == BUF_OK; i++) rc = put_num(&j->out, i ? "," : "", ml_model_output(m, mg[i]));
    if (rc == BUF_OK) rc = buf_puts(&j->out, "]}");
    eh_free(mg);
    if (rc != BUF_OK) {
        j->status = 503;
        snprintf(j->err, sizeof j->err, "out of memory");
    }
}

static void score_done(http_req *q, void *arg) {
    batch_job *j = arg;
    if (j->status) {
        batch_fail(q, j);
        return;
    }
    ml_drift_merge(j->r->drift, j->drift);
    observe(j->c, j->s, j->t0, j->rows);
    http_reply(q, 200, "application/json", j->out.p, j->out.len);
    batch_free(j);
}

static void parse_work(void *arg) {
    batch_job *j = arg;
    if (ml_batch_model(j->body.p, j->body.len, j->name, j->err, sizeof j->err)) j->status = 400;
}

static void parse_done(http_req *q, void *arg) {
    batch_job *j = arg;
    if (j->status) {
        batch_fail(q, j);
        return;
    }
    served *s = j->name[0] ? find(j->c, j->name) : NULL;
    if (!s || !s->cur) {
        http_reply_error(q, 404, "unknown_model", "no such model; GET /models lists them");
        batch_free(j);
        return;
    }
    j->s = s;
    j->r = s->cur;
    j->r->refs++;
    j->drift = j->r->drift ? ml_drift_new(j->r->m) : NULL;
    if (http_req_work(q, score_work, score_done, j)) {
        http_reply_error(q, 503, "overloaded", "cannot schedule work");
        batch_free(j);
    }
}

static void batch_on_data(http_req *q, const char *data, size_t len, void *ud) {
    batch_job *j = ud;
    if (buf_append(&j->body, data, len) != BUF_OK) j->status = 413;
}

static void batch_on_end(http_req *q, int status, void *ud) {
    batch_job *j = ud;
    if (status || j->status) {
        j->status = status > 0 ? status : j->status ? j->status : 400;
        snprintf(j->err, sizeof j->err, "%s",
                 j->status == 413 ? "batch body exceeds 32 MiB" : "the request body could not be read");
        batch_fail(q, j);
        return;
    }
    if (http_req_work(q, parse_work, parse_done, j)) {
        http_reply_error(q, 503, "overloaded", "cannot schedule work");
        batch_free(j);
    }
}

static const http_body_stream batch_stream = {batch_on_data, batch_on_end};

static void h_batch(http_req *q, app *a, const auth_principal *p, void *ud) {
    ml_ctx *c = ud;
    batch_job *j = eh_calloc(1, sizeof *j);
    if (!j) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    j->c = c;
    j->t0 = clock_mono_ns();
    buf_init(&j->body, MAX_BATCH_BODY);
    if (http_req_stream_body(q, &batch_stream, j, MAX_BATCH_BODY)) {
        http_reply_error(q, 503, "unavailable", "client gone");
        batch_free(j);
    }
}

/* ---- GET /models, GET /stats ---- */

static json_t *model_json(const served *s) {
    const ml_model *m = s->cur->m;
    const ml_schema *sc = ml_model_schema(m);
    const json_t *info = ml_model_info(m);
    json_t *feats = json_array();
    for (int f = 0; f < ml_schema_features(sc); f++)
        json_array_append_new(feats, json_pack("{s:s, s:s}", "name", ml_schema_feature(sc, f), "type",
                                               ml_schema_kind(sc, f) == ML_NUMERIC ? "numeric" : "categorical"));
    json_t *o = json_pack("{s:s, s:i, s:s, s:i, s:o}", "name", s->name, "version", s->cur->version, "task",
                          ml_model_is_regression(m) ? "regression" : "classification", "trees", ml_model_trees(m),
                          "features", feats);
    if (s->cur->drift) {
        json_t *psi = json_object();
        for (int f = 0; f < ml_schema_features(sc); f++) {
            double v = ml_drift_psi(s->cur->drift, f);
            json_object_set_new(psi, ml_schema_feature(sc, f), isnan(v) ? json_null() : json_real(v));
        }
        json_object_set_new(o, "drift", json_pack("{s:I, s:o}", "rows", (json_int_t)ml_drift_rows(s->cur->drift),
                                                  "psi", psi));
    }
    if (info) {
        json_t *mt = json_object_get(info, "metrics");
        if (mt) json_object_set(o, "metrics", mt);
        const char *keys[] = {"trained_at", "trained_by", "rows", "label", "positive"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            json_t *v = json_object_get(info, keys[i]);
            if (v) json_object_set(o, keys[i], v);
        }
    }
    return o;
}

static int cmp_served(const void *a, const void *b) {
    return strcmp((*(served *const *)a)->name, (*(served *const *)b)->name);
}

static void h_models(http_req *q, app *a, const auth_principal *p, void *ud) {
    ml_ctx *c = ud;
    json_t *arr = json_array();
    for (int i = 0; i < c->n; i++)
        if (c->v[i]->cur) json_array_append_new(arr, model_json(c->v[i]));
    http_reply_json(q, 200, json_pack("{s:o}", "models", arr));
}

static void h_stats(http_req *q, app *a, const auth_principal *p, void *ud) {
    ml_ctx *c = ud;
    json_t *models = json_object();
    uint64_t total = 0;
    for (int i = 0; i < c->n; i++) {
        served *s = c->v[i];
        total += s->predictions;
        json_object_set_new(models, s->name,
                            json_pack("{s:I, s:I, s:{s:f, s:f, s:f}}", "predictions", (json_int_t)s->predictions,
                                      "errors", (json_int_t)s->errors, "latency_us", "p50", quantile_us(s, 0.5),
                                      "p90", quantile_us(s, 0.9), "p99", quantile_us(s, 0.99)));
    }
    http_reply_json(q, 200, json_pack("{s:I, s:o}", "predictions", (json_int_t)total, "models", models));
}

/* ---- POST /v1/models/{name}/activate {"version": N} ---- */

typedef struct activate_job {
    ml_ctx *c;
    char name[65];
    int version;
    mref *r;
    char err[ML_ERR_LEN];
    int64_t tenant;
    app_write_audit *wa;
    json_t *reply;
} activate_job;

static void activate_job_free(activate_job *j) {
    app_write_audit_free(j->wa);
    json_decref(j->reply);
    eh_free(j);
}

/* After the activation is installed: its audit entry, then the answer. */
static void audit_work(void *arg) {
    activate_job *j = arg;
    store_err se = {0};
    json_t *x = json_pack("{s:i}", "version", j->version);
    if (app_write_audit_commit(j->c->a, j->tenant, j->wa, 200, x, &se))
        log_msg(j->c->a->log, LOG_ERROR, "cannot audit the model activation", se.msg);
    json_decref(x);
}

static void audit_done(http_req *q, void *arg) {
    activate_job *j = arg;
    json_t *out = j->reply;
    j->reply = NULL;
    http_reply_json(q, 200, out);
    activate_job_free(j);
}

static void activate_work(void *arg) {
    activate_job *j = arg;
    j->r = load_version(j->c, j->name, j->version, j->err, sizeof j->err);
}

/* NAME/active is written on the loop thread (a few bytes, no fsync) so
 * that concurrent activations are recorded in the order they are
 * installed: the file always names the version being served. */
static int record_active(ml_ctx *c, const char *name, int version) {
    char mdir[1200];
    snprintf(mdir, sizeof mdir, "%s/%s", c->dir, name);
    return ml_set_active(mdir, version);
}

static void activate_done(http_req *q, void *arg) {
    activate_job *j = arg;
    if (!j->r) {
        char dir[1200];
        snprintf(dir, sizeof dir, "%s/%s/v%d", j->c->dir, j->name, j->version);
        struct stat sb;
        if (stat(dir, &sb) != 0) http_reply_error(q, 404, "unknown_version", "no such version of this model");
        else http_reply_error(q, 422, "cannot_activate", "this version does not load (see the server log)");
        log_msg(j->c->a->log, LOG_WARN, "model activation failed", j->err);
    } else if (record_active(j->c, j->name, j->version)) {
        log_msg(j->c->a->log, LOG_ERROR, "cannot record the active model version", strerror(errno));
        http_reply_error(q, 503, "unavailable", "cannot record the active version");
        mref_put(j->r);
    } else if (install(j->c, j->name, j->r)) {
        mref_put(j->r);
        http_reply_error(q, 503, "overloaded", "out of memory");
    } else {
        log_line l;
        if (log_begin(j->c->a->log, &l, LOG_INFO, "model activated")) {
            log_str(&l, "model", j->name);
            log_int(&l, "version", j->version);
            log_id(&l, "request_id", http_req_id(q));
            log_end(&l);
        }
        j->reply = model_json(find(j->c, j->name));
        if (j->wa && !http_req_work(q, audit_work, audit_done, j)) return;
        json_t *out = j->reply;
        j->reply = NULL;
        http_reply_json(q, 200, out);
    }
    activate_job_free(j);
}

static void h_activate(http_req *q, app *a, const auth_principal *p, void *ud) {
    ml_ctx *c = ud;
    const char *name = http_req_param(q, "name");
    if (!name || !ml_name_valid(name)) {
        http_reply_error(q, 404, "unknown_model", "no such model");
        return;
    }
    json_t *body = http_req_json(q);
    if (!body) return;
    json_t *v = json_object_get(body, "version");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 999999) {
        json_decref(body);
        http_reply_error(q, 400, "invalid_field", "\"version\" must be a positive integer");
        return;
    }
    activate_job *j = eh_calloc(1, sizeof *j);
    if (!j) {
        json_decref(body);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    j->c = c;
    snprintf(j->name, sizeof j->name, "%s", name);
    j->version = (int)json_integer_value(v);
    j->tenant = p->tenant;
    j->wa = app_write_audit_new(q, p, body);
    json_decref(body);
    if (http_req_work(q, activate_work, activate_done, j)) {
        activate_job_free(j);
        http_reply_error(q, 503, "overloaded", "cannot schedule work");
    }
}

/* ---- registration ---- */

static const http_route_doc d_predict = {
    "Score one row: {model, features:{raw field: value}, explain?}. With explain, SHAP contributions per "
    "feature: base + sum(contributions) = margin",
    "ml", "{model, features, explain}", "{model, version, score, margin, explanation:{base, contributions}}"};
static const http_route_doc d_batch = {"Score up to 10,000 rows: {model, rows:[{...}]}", "ml", "{model, rows}",
                                       "{model, version, scores:[...]}"};
static const http_route_doc d_models = {"Models served: version, task, features, test metrics, training time",
                                        "ml", NULL, "{models:[...]}"};
static const http_route_doc d_stats = {"Predictions served and latency percentiles per model", "ml", NULL,
                                       "{predictions, models:{name:{predictions, errors, latency_us}}}"};
static const http_route_doc d_activate = {
    "Serve another trained version of a model (rollback or upgrade), without dropping requests", "ml",
    "{version}", "the model as in GET /models"};

int ml_serve_register(app *a) {
    ml_ctx *c = eh_calloc(1, sizeof *c);
    if (!c) return -1;
    a->ml = c;
    c->a = a;
    snprintf(c->dir, sizeof c->dir, "%s/models", a->cfg.data_dir);
    static const double lat_buckets[] = {1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 5e-3, 2e-2, 0.1};
    c->m_pred = metrics_counter(a->m, "ehub_ml_predictions_total", "rows scored, per model", "model");
    c->m_lat = metrics_histogram(a->m, "ehub_ml_predict_seconds", "time to answer a scoring request, per model",
                                 "model", lat_buckets, (int)(sizeof lat_buckets / sizeof lat_buckets[0]));
    c->m_psi = metrics_gauge(a->m, "ehub_ml_feature_psi",
                             "population stability index of live rows vs training, per model and feature "
                             "(updated every 1,000 predictions)", "model,feature");
    load_all(c);
    if (c->n) qsort(c->v, (size_t)c->n, sizeof *c->v, cmp_served);
    int rc = 0;
    const char *pre[] = {"", "/v1"};
    for (int i = 0; i < 2; i++) {
        char path[64];
        snprintf(path, sizeof path, "%s/predict", pre[i]);
        rc |= app_route(a, "POST", path, h_predict, c, ROLES_ANY, &d_predict);
        snprintf(path, sizeof path, "%s/batch-predict", pre[i]);
        rc |= app_route_flags(a, "POST", path, h_batch, c, ROLES_ANY, HTTP_ROUTE_STREAM, &d_batch);
        snprintf(path, sizeof path, "%s/models", pre[i]);
        rc |= app_route(a, "GET", path, h_models, c, ROLES_ANY, &d_models);
        snprintf(path, sizeof path, "%s/stats", pre[i]);
        rc |= app_route(a, "GET", path, h_stats, c, ROLES_ANY, &d_stats);
    }
    rc |= app_route(a, "POST", "/v1/models/{name}/activate", h_activate, c, ROLE_ANALYST | ROLE_ADMIN, &d_activate);
    return rc ? -1 : 0;
}

void ml_serve_free(ml_ctx *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        mref_put(c->v[i]->cur);
        eh_free(c->v[i]);
    }
    eh_free(c->v);
    eh_free(c);
}
