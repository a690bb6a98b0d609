/* The tenants' model registry: every trained version of a tenant's built-in
 * model (lead_scoring, churn, property_value) is a model_versions row — the
 * XGBoost JSON model, its schema, test metrics, a training summary, who
 * trained it and when — and model_active names the version each serves.
 * Training and activation write those rows and a model.activated event in
 * one transaction, so every node sharing the store learns of it through
 * the event log (the bus), and loads the active version from the store.
 *
 * Each node keeps what it serves in memory (score_ctx): one entry per
 * tenant and model, loaded on first use and replaced whole on
 * model.activated. An entry is reference-counted, so a scoring that
 * started on one version finishes on it while the next is swapped in.
 * Storage is never touched under the cache's mutex: a thread holding it
 * could otherwise wait for a pool connection held by a thread waiting for
 * the mutex. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "internal.h"
#include "ml/ml.h"
#include "score.h"

/* A version's model.json is read whole; larger than this is not a model
 * ehub made. */
#define MODEL_MAX ((size_t)256 << 20)

struct score_ctx {
    char dir[1024];
    store *st; /* borrowed; NULL until score_ctx_set_store */
    pthread_mutex_t mu;
    tmodel **v;
    int n, cap;
    metric *m_psi; /* NULL: no gauge (CLI, unit tests) */
};

score_ctx *score_ctx_new(const char *data_dir) {
    score_ctx *c = eh_calloc(1, sizeof *c);
    if (!c) return NULL;
    snprintf(c->dir, sizeof c->dir, "%s", data_dir ? data_dir : "./data");
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void score_ctx_set_store(score_ctx *c, store *st) {
    if (c) c->st = st;
}

void score_ctx_set_metrics(score_ctx *c, metrics *m) {
    if (c && m)
        c->m_psi = metrics_gauge(m, "ehub_ml_builtin_feature_psi_max",
                                 "Largest population stability index over the features of a tenant's built-in model "
                                 "(its active version, rows scored on this node)",
                                 "tenant,model");
}

const char *reg_data_dir(const score_ctx *c) { return c->dir; }

static void tm_free(tmodel *t) {
    ml_drift_free(t->drift);
    ml_model_free(t->m);
    pthread_mutex_destroy(&t->dmu);
    eh_free(t);
}

static void tm_put_locked(tmodel *t) {
    if (t && --t->refs == 0) tm_free(t);
}

void score_ctx_free(score_ctx *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) tm_put_locked(c->v[i]);
    eh_free(c->v);
    pthread_mutex_destroy(&c->mu);
    eh_free(c);
}

static tmodel *find_locked(score_ctx *c, int64_t tenant, int b) {
    for (int i = 0; i < c->n; i++)
        if (c->v[i]->tenant == tenant && c->v[i]->b == b) return c->v[i];
    return NULL;
}

/* Serves t unless the cache holds the same or a later activation already
 * (two loads can finish in either order). Takes the caller's reference to
 * t; returns the entry served, without a reference for the caller. */
static tmodel *install_locked(score_ctx *c, tmodel *t) {
    for (int i = 0; i < c->n; i++)
        if (c->v[i]->tenant == t->tenant && c->v[i]->b == t->b) {
            if (c->v[i]->gen >= t->gen) {
                tm_put_locked(t);
                return c->v[i];
            }
            tm_put_locked(c->v[i]);
            c->v[i] = t;
            return t;
        }
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        tmodel **nv = eh_realloc(c->v, (size_t)cap * sizeof *nv);
        if (!nv) {
            tm_put_locked(t);
            return NULL;
        }
        c->v = nv;
        c->cap = cap;
    }
    c->v[c->n++] = t;
    return t;
}

/* ---- loading the active version ---- */

typedef struct load_args {
    tmodel *t;
    char err[ML_ERR_LEN];
} load_args;

static int load_tx(store_tx *tx, void *arg, store_err *err) {
    load_args *la = arg;
    tmodel *t = la->t;
    ml_model_free(t->m); /* a retried transaction starts again */
    t->m = NULL;
    t->version = 0;
    t->gen = 0;
    store_val p[] = {SV_I(t->tenant), SV_S(score_builtin_name(t->b))};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT a.version, a.generation, v.schema, v.model FROM model_active a "
                         "JOIN model_versions v ON v.tenant_id = a.tenant_id AND v.name = a.name "
                         "AND v.version = a.version WHERE a.tenant_id = $1 AND a.name = $2",
                         p, 2, &r, err);
    if (rc) return rc;
    if (store_rows_count(r) == 1) {
        t->gen = store_rows_int(r, 0, 1);
        json_error_t je;
        json_t *schema = json_loads(store_rows_text(r, 0, 2), 0, &je);
        if (!schema) snprintf(la->err, sizeof la->err, "schema: %s", je.text);
        else
            t->m = ml_model_from_json(store_rows_text(r, 0, 3), store_rows_len(r, 0, 3), schema, la->err,
                                      sizeof la->err);
        json_decref(schema);
        /* a version that does not load serves nothing (the prior scores):
         * the row stays for a rollback */
        if (t->m) t->version = (int)store_rows_int(r, 0, 0);
    }
    store_rows_free(r);
    return STORE_OK;
}

/* A new entry (one reference) with the tenant's active version, read
 * through tx or, with tx NULL, on a read transaction of its own. */
static tmodel *reg_load(store *st, store_tx *tx, int64_t tenant, int b, char *err, size_t errlen) {
    tmodel *t = eh_calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->tenant = tenant;
    t->b = b;
    t->refs = 1;
    pthread_mutex_init(&t->dmu, NULL);
    load_args la = {.t = t};
    store_err se = {0};
    int rc = tx ? load_tx(tx, &la, &se) : st ? store_read(st, tenant, load_tx, &la, &se) : STORE_INVALID;
    if (rc) {
        snprintf(err, errlen, "%s", st || tx ? se.msg : "no store");
        tm_free(t);
        return NULL;
    }
    if (la.err[0]) snprintf(err, errlen, "%s", la.err);
    /* NULL without a training distribution (a version imported from
     * elsewhere, or out of memory): it scores, unmeasured */
    if (t->m) t->drift = ml_drift_new(t->m);
    return t;
}

tmodel *reg_acquire(score_ctx *c, store_tx *tx, int64_t tenant, int b) {
    pthread_mutex_lock(&c->mu);
    tmodel *t = find_locked(c, tenant, b);
    if (t) t->refs++;
    pthread_mutex_unlock(&c->mu);
    if (t) return t;
    /* first use on this node: read outside the lock (two threads may both
     * read; the later activation, or the first of equals, is kept) */
    char err[ML_ERR_LEN];
    tmodel *nt = reg_load(c->st, tx, tenant, b, err, sizeof err);
    if (!nt) return NULL;
    pthread_mutex_lock(&c->mu);
    t = install_locked(c, nt);
    if (t) t->refs++;
    pthread_mutex_unlock(&c->mu);
    return t;
}

void reg_release(score_ctx *c, tmodel *t) {
    if (!t) return;
    pthread_mutex_lock(&c->mu);
    tm_put_locked(t);
    pthread_mutex_unlock(&c->mu);
}

/* ---- drift of the rows scored ---- */

/* The largest PSI over t's features (NaN before any row). Under t->dmu. */
static double psi_max_locked(const tmodel *t) {
    double worst = NAN;
    int nf = ml_schema_features(ml_model_schema(t->m));
    for (int f = 0; f < nf; f++) {
        double v = ml_drift_psi(t->drift, f);
        if (!isnan(v) && (isnan(worst) || v > worst)) worst = v;
    }
    return worst;
}

static void publish_psi(score_ctx *c, const tmodel *t, double psi) {
    if (!c->m_psi || isnan(psi)) return;
    char tenant[24];
    snprintf(tenant, sizeof tenant, "%lld", (long long)t->tenant);
    const char *lv[] = {tenant, score_builtin_name(t->b)};
    metric_set(c->m_psi, lv, psi);
}

void reg_observe(score_ctx *c, tmodel *t, const float *x) {
    if (!t->drift) return;
    pthread_mutex_lock(&t->dmu);
    ml_drift_add(t->drift, x);
    uint64_t rows = ml_drift_rows(t->drift);
    /* the gauge follows at 1, 2, 4 ... 512 rows, then every 1,000: a
     * tenant with few leads still shows, and the PSI's ~200 logarithms
     * stay off the common path */
    int publish = c->m_psi && (rows % 1000 == 0 || (rows <= 512 && (rows & (rows - 1)) == 0));
    double psi = publish ? psi_max_locked(t) : NAN;
    pthread_mutex_unlock(&t->dmu);
    if (publish) publish_psi(c, t, psi);
}

/* {rows, psi: {feature: PSI or null}} of the rows t scored, or NULL when
 * t's version carries no training distribution. Refreshes the gauge. */
static json_t *drift_json(score_ctx *c, tmodel *t) {
    if (!t->drift) return NULL;
    const ml_schema *s = ml_model_schema(t->m);
    json_t *psi = json_object();
    pthread_mutex_lock(&t->dmu);
    uint64_t rows = ml_drift_rows(t->drift);
    for (int f = 0; f < ml_schema_features(s); f++) {
        double v = ml_drift_psi(t->drift, f);
        json_object_set_new(psi, ml_schema_feature(s, f), isnan(v) ? json_null() : json_real(v));
    }
    double worst = psi_max_locked(t);
    pthread_mutex_unlock(&t->dmu);
    publish_psi(c, t, worst);
    return json_pack("{s:I, s:o}", "rows", (json_int_t)rows, "psi", psi);
}

int64_t score_model_generation(score_ctx *c, int64_t tenant, const char *name) {
    int b = score_builtin_index(name);
    if (b < 0) return -1;
    pthread_mutex_lock(&c->mu);
    tmodel *t = find_locked(c, tenant, b);
    int64_t g = t ? t->gen : -1;
    pthread_mutex_unlock(&c->mu);
    return g;
}

/* Loads the active version on st and serves it unless a later activation
 * is served already. */
static int reload_on(score_ctx *c, store *st, int64_t tenant, const char *name, int *version, char *err,
                     size_t errlen) {
    int b = score_builtin_index(name);
    if (b < 0) {
        snprintf(err, errlen, "no built-in model \"%.64s\"", name ? name : "");
        return -1;
    }
    err[0] = 0;
    tmodel *t = reg_load(st, NULL, tenant, b, err, errlen);
    if (!t) return -1;
    pthread_mutex_lock(&c->mu);
    tmodel *served = install_locked(c, t);
    if (version) *version = served ? served->version : 0;
    pthread_mutex_unlock(&c->mu);
    return served ? 0 : -1;
}

int score_model_reload(score_ctx *c, int64_t tenant, const char *name, int *version, char *err, size_t errlen) {
    return reload_on(c, c->st, tenant, name, version, err, errlen);
}

/* ---- writing versions and activations ---- */

/* Makes version the active one of name (inside the caller's transaction)
 * and appends model.activated {name, version, previous, generation}. */
static int activate_row(store_tx *tx, const char *name, int version, const char *by, int64_t now, int64_t *gen,
                        store_err *err) {
    int64_t tenant = store_tx_tenant(tx);
    store_val p[] = {SV_I(tenant), SV_S(name)};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT version FROM model_active WHERE tenant_id = $1 AND name = $2", p, 2, &r, err);
    if (rc) return rc;
    int previous = store_rows_count(r) ? (int)store_rows_int(r, 0, 0) : 0;
    store_rows_free(r);
    store_val up[] = {SV_I(tenant), SV_S(name), SV_I(version), SV_I(now), SV_S(by)};
    rc = store_query(tx,
                     "INSERT INTO model_active (tenant_id, name, version, generation, activated_at, activated_by) "
                     "VALUES ($1, $2, $3, 1, $4, $5) ON CONFLICT (tenant_id, name) DO UPDATE SET "
                     "version = excluded.version, generation = model_active.generation + 1, "
                     "activated_at = excluded.activated_at, activated_by = excluded.activated_by "
                     "RETURNING generation",
                     up, 5, &r, err);
    if (rc) return rc;
    *gen = store_rows_int(r, 0, 0);
    store_rows_free(r);
    json_t *ev = json_pack("{s:s, s:i, s:o, s:I}", "name", name, "version", version, "previous",
                           previous ? json_integer(previous) : json_null(), "generation", (json_int_t)*gen);
    return score_append_event(tx, "model.activated", ev, err);
}

/* One version to store: the model's files read, and what the row holds. */
typedef struct vrow {
    int version; /* import: the file's number; training: 0 = the next one */
    char task[16];
    char *by;
    int64_t created;
    char *metrics, *training, *schema; /* JSON text */
    char *model;
    size_t model_len;
    int stored; /* set by the transaction: 1 written, 0 already there */
} vrow;

static void vrow_free(vrow *v) {
    eh_free(v->by);
    free(v->metrics);
    free(v->training);
    free(v->schema);
    eh_free(v->model);
    memset(v, 0, sizeof *v);
}

/* Reads vdir's model.json and schema.json and checks that they load as the
 * server will load them. report: metrics.json's content (borrowed). */
static int vrow_read(vrow *v, const char *vdir, const json_t *report, const char *by, char *err, size_t errlen) {
    char path[1500];
    snprintf(path, sizeof path, "%s/model.json", vdir);
    if (!(v->model = ml_read_file(path, MODEL_MAX, &v->model_len, err, errlen))) return -1;
    snprintf(path, sizeof path, "%s/schema.json", vdir);
    json_error_t je;
    json_t *schema = json_load_file(path, 0, &je);
    if (!schema) {
        snprintf(err, errlen, "%s: %s", path, je.text);
        return -1;
    }
    ml_model *m = ml_model_from_json(v->model, v->model_len, schema, err, errlen);
    int ok = m != NULL;
    ml_model_free(m);
    const char *task = json_string_value(json_object_get(report, "task"));
    if (!task) task = json_string_value(json_object_get(schema, "task"));
    snprintf(v->task, sizeof v->task, "%s", task && !strcmp(task, "regression") ? "regression" : "classification");
    v->schema = json_dumps(schema, JSON_COMPACT);
    json_decref(schema);
    if (!ok) return -1;
    /* the row keeps the test metrics apart from what training saw */
    const json_t *metrics = json_object_get(report, "metrics");
    json_t *training = json_is_object(report) ? json_deep_copy(report) : json_object();
    if (training) {
        const char *drop[] = {"metrics", "dir", "model", "version", "trained_at", "trained_by", "tenant_id"};
        for (size_t i = 0; i < sizeof drop / sizeof *drop; i++) json_object_del(training, drop[i]);
        v->training = json_dumps(training, JSON_COMPACT | JSON_REAL_PRECISION(17));
        json_decref(training);
    }
    v->metrics = json_is_object(metrics) ? json_dumps(metrics, JSON_COMPACT | JSON_REAL_PRECISION(17)) : strdup("{}");
    v->by = eh_strdup(by ? by : "cli");
    if (!v->schema || !v->training || !v->metrics || !v->by) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int vrow_insert(store_tx *tx, const char *name, vrow *v, store_err *err) {
    int64_t tenant = store_tx_tenant(tx);
    int rc;
    if (!v->version) {
        store_val p[] = {SV_I(tenant), SV_S(name)};
        store_rows *r = NULL;
        rc = store_query(tx, "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE tenant_id = $1 AND name = $2",
                         p, 2, &r, err);
        if (rc) return rc;
        v->version = (int)store_rows_int(r, 0, 0);
        store_rows_free(r);
    }
    store_val ins[] = {SV_I(tenant),         SV_S(name),          SV_I(v->version),
                       SV_S(v->task),        SV_I(v->created),    SV_S(v->by),
                       SV_S(v->metrics),     SV_S(v->training),   SV_S(v->schema),
                       SV_B(v->model, v->model_len)};
    rc = store_query(tx,
                     "INSERT INTO model_versions (tenant_id, name, version, task, created_at, trained_by, metrics, "
                     "training, schema, model) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                     "ON CONFLICT (tenant_id, name, version) DO NOTHING",
                     ins, 10, NULL, err);
    if (!rc) v->stored = store_tx_changes(tx) > 0;
    return rc;
}

typedef struct save_args {
    const char *name;
    vrow *v;
    int64_t now, gen;
    const score_also *also;
} save_args;

static int save_tx(store_tx *tx, void *arg, store_err *err) {
    save_args *sa = arg;
    sa->v->version = 0; /* a retried transaction numbers again */
    int rc = vrow_insert(tx, sa->name, sa->v, err);
    if (!rc && !sa->v->stored) { /* another node took the number meanwhile */
        err->code = STORE_CONFLICT;
        snprintf(err->msg, sizeof err->msg, "version taken");
        return STORE_CONFLICT;
    }
    if (!rc) rc = activate_row(tx, sa->name, sa->v->version, sa->v->by, sa->now, &sa->gen, err);
    if (!rc && sa->also) rc = sa->also->fn(tx, sa->also->ud, (int)sa->v->version, err);
    return rc;
}

int reg_save_trained(score_ctx *c, store *st, int64_t tenant, int b, const char *vdir, json_t *rep,
                     const char *trained_by, int64_t now_ms, const score_also *also, char *err, size_t errlen) {
    vrow v = {.created = now_ms};
    const char *name = score_builtin_name(b);
    if (vrow_read(&v, vdir, rep, trained_by, err, errlen)) {
        vrow_free(&v);
        return -1;
    }
    save_args sa = {.name = name, .v = &v, .now = now_ms, .also = also};
    store_err se = {0};
    int rc;
    for (int tries = 0; (rc = store_write(st, tenant, save_tx, &sa, &se)) == STORE_CONFLICT && tries < 5; tries++) {
    }
    if (rc) {
        snprintf(err, errlen, "cannot store the trained model: %s", se.msg);
        vrow_free(&v);
        return -1;
    }
    json_object_set_new(rep, "version", json_integer(v.version));
    json_object_del(rep, "dir");
    vrow_free(&v);
    /* serve it here at once (or a later activation, if one won the race);
     * other nodes load it on model.activated */
    char lerr[ML_ERR_LEN];
    if (reload_on(c, st, tenant, name, NULL, lerr, sizeof lerr)) {
        snprintf(err, errlen, "stored version %lld but cannot serve it: %s",
                 (long long)json_integer_value(json_object_get(rep, "version")), lerr);
        return -1;
    }
    return 0;
}

/* ---- activation and listing ---- */

typedef struct act_args {
    const char *name, *by;
    int version;
    int64_t now, gen;
    const score_also *also;
} act_args;

static int act_tx(store_tx *tx, void *arg, store_err *err) {
    act_args *aa = arg;
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_S(aa->name), SV_I(aa->version)};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT 1 FROM model_versions WHERE tenant_id = $1 AND name = $2 AND version = $3", p, 3,
                         &r, err);
    if (rc) return rc;
    int found = store_rows_count(r);
    store_rows_free(r);
    if (!found) {
        err->code = STORE_NOTFOUND;
        snprintf(err->msg, sizeof err->msg, "%s has no version %d", aa->name, aa->version);
        return STORE_NOTFOUND;
    }
    rc = activate_row(tx, aa->name, aa->version, aa->by, aa->now, &aa->gen, err);
    if (!rc && aa->also) rc = aa->also->fn(tx, aa->also->ud, aa->version, err);
    return rc;
}

int score_activate(score_ctx *c, int64_t tenant, const char *name, int version, const char *by,
                   const score_also *also, char *err, size_t errlen) {
    int b = score_builtin_index(name);
    if (b < 0) {
        snprintf(err, errlen, "no built-in model \"%.64s\"", name ? name : "");
        return 404;
    }
    if (!c->st) {
        snprintf(err, errlen, "no store");
        return 503;
    }
    act_args aa = {.name = score_builtin_name(b), .by = by ? by : "api", .version = version, .now = clock_wall_ms(),
                   .also = also};
    store_err se = {0};
    int rc = store_write(c->st, tenant, act_tx, &aa, &se);
    if (rc == STORE_NOTFOUND) {
        snprintf(err, errlen, "%s", se.msg);
        return 404;
    }
    if (rc) {
        snprintf(err, errlen, "cannot record the active version: %s", se.msg);
        return 503;
    }
    /* recorded: serve it here before answering (requests in flight finish
     * on the version they started with); other nodes follow the event */
    int served = 0;
    char lerr[ML_ERR_LEN];
    if (score_model_reload(c, tenant, name, &served, lerr, sizeof lerr)) {
        snprintf(err, errlen, "version %d is active but cannot be loaded here: %s", version, lerr);
        return 503;
    }
    if (served != version && score_model_generation(c, tenant, name) == aa.gen) {
        snprintf(err, errlen, "version %d is active but does not load", version);
        return 503;
    }
    return 0;
}

typedef struct list_args {
    json_t *out;
} list_args;

static int list_tx(store_tx *tx, void *arg, store_err *err) {
    list_args *la = arg;
    json_decref(la->out);
    la->out = json_array();
    for (int b = 0; b < NBUILTIN; b++) {
        const char *name = score_builtin_name(b);
        store_val p[] = {SV_I(store_tx_tenant(tx)), SV_S(name)};
        store_rows *r = NULL;
        int rc = store_query(tx,
                             "SELECT v.version, v.task, v.created_at, v.trained_by, v.metrics, v.training, "
                             "(SELECT a.version FROM model_active a WHERE a.tenant_id = v.tenant_id AND a.name = v.name) "
                             "FROM model_versions v WHERE v.tenant_id = $1 AND v.name = $2 "
                             "ORDER BY v.version DESC LIMIT 50",
                             p, 2, &r, err);
        if (rc) return rc;
        int active = 0;
        json_t *versions = json_array();
        for (int i = 0; i < store_rows_count(r); i++) {
            if (!store_rows_isnull(r, i, 6)) active = (int)store_rows_int(r, i, 6);
            int v = (int)store_rows_int(r, i, 0);
            time_t secs = (time_t)(store_rows_int(r, i, 2) / 1000);
            struct tm tmv;
            char when[32];
            gmtime_r(&secs, &tmv);
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
            json_t *metrics = json_loads(store_rows_text(r, i, 4), 0, NULL);
            json_t *training = json_loads(store_rows_text(r, i, 5), 0, NULL);
            json_array_append_new(versions, json_pack("{s:i, s:s, s:O?, s:o?, s:s, s:s, s:o?, s:b}", "version", v,
                                                      "task", store_rows_text(r, i, 1), "rows",
                                                      json_object_get(training, "rows"), "metrics", metrics,
                                                      "trained_at", when, "trained_by", store_rows_text(r, i, 3),
                                                      "training", training, "active", 0));
        }
        store_rows_free(r);
        size_t i;
        json_t *v;
        json_array_foreach(versions, i, v) json_object_set_new(
            v, "active", json_boolean(json_integer_value(json_object_get(v, "version")) == active));
        json_array_append_new(la->out, json_pack("{s:s, s:s, s:o, s:o}", "name", name, "serving",
                                                 active ? "model" : b == B_VALUE ? "none" : "prior", "active_version",
                                                 active ? json_integer(active) : json_null(), "versions", versions));
    }
    return STORE_OK;
}

json_t *score_models(score_ctx *c, int64_t tenant) {
    list_args la = {0};
    store_err se = {0};
    if (!c->st || store_read(c->st, tenant, list_tx, &la, &se)) {
        json_decref(la.out);
        return NULL;
    }
    /* drift: what this node's copy of the active version scored since it
     * was activated (or first used) here. Listing does not load a model:
     * one this node has not served yet has scored nothing here (rows 0,
     * no features); null when no version is active or the served one
     * carries no training distribution. */
    size_t i;
    json_t *m;
    json_array_foreach(la.out, i, m) {
        int b = score_builtin_index(json_string_value(json_object_get(m, "name")));
        json_int_t active = json_integer_value(json_object_get(m, "active_version"));
        if (b < 0 || !active) {
            json_object_set_new(m, "drift", json_null());
            continue;
        }
        pthread_mutex_lock(&c->mu);
        tmodel *t = find_locked(c, tenant, b);
        if (t) t->refs++;
        pthread_mutex_unlock(&c->mu);
        json_t *d = !t || !t->m || t->version != active ? json_pack("{s:i, s:{}}", "rows", 0, "psi")
                                                         : drift_json(c, t);
        reg_release(c, t);
        json_object_set_new(m, "drift", d ? d : json_null());
    }
    return la.out;
}

/* ---- importing the model directories of earlier releases ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void reg_remove_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* metrics.json's trained_at ("2026-01-02T03:04:05Z") in epoch ms; else
 * the file's modification time. */
static int64_t trained_ms(const json_t *report, const char *vdir) {
    const char *s = json_string_value(json_object_get(report, "trained_at"));
    struct tm tmv = {0};
    if (s) {
        const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tmv);
        if (end && !*end) return (int64_t)timegm(&tmv) * 1000;
    }
    char path[1500];
    struct stat stt;
    snprintf(path, sizeof path, "%s/model.json", vdir);
    return stat(path, &stt) == 0 ? (int64_t)stt.st_mtime * 1000 : clock_wall_ms();
}

typedef struct import_args {
    vrow *rows[NBUILTIN];
    int n[NBUILTIN];
    int active[NBUILTIN]; /* the file's active version */
    int imported;
} import_args;

static int import_tx(store_tx *tx, void *arg, store_err *err) {
    import_args *ia = arg;
    ia->imported = 0;
    for (int b = 0; b < NBUILTIN; b++) {
        if (!ia->n[b]) continue;
        const char *name = score_builtin_name(b);
        int have_active = 0;
        for (int i = 0; i < ia->n[b]; i++) {
            int rc = vrow_insert(tx, name, &ia->rows[b][i], err);
            if (rc) return rc;
            ia->imported += ia->rows[b][i].stored;
            if (ia->rows[b][i].version == ia->active[b]) have_active = 1;
        }
        /* the file's choice becomes the stored one, unless the store has
         * one already (an import that ran before, or a newer training) */
        store_val p[] = {SV_I(store_tx_tenant(tx)), SV_S(name)};
        store_rows *r = NULL;
        int rc = store_query(tx, "SELECT 1 FROM model_active WHERE tenant_id = $1 AND name = $2", p, 2, &r, err);
        if (rc) return rc;
        int set = store_rows_count(r);
        store_rows_free(r);
        int64_t gen;
        int v = have_active ? ia->active[b] : ia->rows[b][ia->n[b] - 1].version;
        if (!set && (rc = activate_row(tx, name, v, "import", clock_wall_ms(), &gen, err))) return rc;
    }
    return STORE_OK;
}

static int cmp_version(const void *a, const void *b) {
    return ((const vrow *)a)->version - ((const vrow *)b)->version;
}

/* One tenant's DATA_DIR/tenants/ID/models. 0 (and *n versions stored), or
 * -1 after logging why (the directory stays for the next start). */
static int import_tenant(store *st, logger *log, int64_t tenant, const char *mdir, int *n, int *dirs) {
    import_args ia = {0};
    int rc = 0;
    *dirs = 0;
    for (int b = 0; b < NBUILTIN && !rc; b++) {
        char dir[1300];
        snprintf(dir, sizeof dir, "%s/%s", mdir, score_builtin_name(b));
        DIR *d = opendir(dir);
        if (!d) continue;
        (*dirs)++;
        ia.active[b] = ml_active_version(dir);
        struct dirent *e;
        while ((e = readdir(d)) && !rc) {
            char *end;
            long v = e->d_name[0] == 'v' ? strtol(e->d_name + 1, &end, 10) : 0;
            if (v <= 0 || v >= 1000000 || *end) continue;
            vrow *nv = eh_realloc(ia.rows[b], (size_t)(ia.n[b] + 1) * sizeof *nv);
            if (!nv) {
                rc = -1;
                break;
            }
            ia.rows[b] = nv;
            vrow *row = &nv[ia.n[b]];
            memset(row, 0, sizeof *row);
            char vdir[1400], path[1500], err[ML_ERR_LEN];
            snprintf(vdir, sizeof vdir, "%s/v%ld", dir, v);
            snprintf(path, sizeof path, "%s/metrics.json", vdir);
            json_t *report = json_load_file(path, 0, NULL);
            row->version = (int)v;
            row->created = trained_ms(report, vdir);
            if (vrow_read(row, vdir, report, json_string_value(json_object_get(report, "trained_by")), err,
                          sizeof err)) {
                /* a half-written or foreign directory is left out, not fatal */
                log_line l;
                if (log_begin(log, &l, LOG_WARN, "model version not imported")) {
                    log_str(&l, "dir", vdir);
                    log_str(&l, "error", err);
                    log_end(&l);
                }
                vrow_free(row);
            } else {
                ia.n[b]++;
            }
            json_decref(report);
        }
        closedir(d);
        if (ia.n[b]) qsort(ia.rows[b], (size_t)ia.n[b], sizeof *ia.rows[b], cmp_version);
    }
    store_err se = {0};
    if (!rc && *dirs) rc = store_write(st, tenant, import_tx, &ia, &se);
    if (rc) {
        log_line l;
        if (log_begin(log, &l, LOG_ERROR, "cannot import model files into the store")) {
            log_int(&l, "tenant", tenant);
            log_str(&l, "dir", mdir);
            log_str(&l, "error", se.msg[0] ? se.msg : "out of memory");
            log_end(&l);
        }
    }
    *n = ia.imported;
    for (int b = 0; b < NBUILTIN; b++) {
        for (int i = 0; i < ia.n[b]; i++) vrow_free(&ia.rows[b][i]);
        eh_free(ia.rows[b]);
    }
    return rc ? -1 : 0;
}

int score_import_files(score_ctx *c, store *st, logger *log, int *imported) {
    *imported = 0;
    char root[1100];
    snprintf(root, sizeof root, "%s/tenants", c->dir);
    DIR *d = opendir(root);
    if (!d) return 0; /* nothing from an earlier release */
    int failed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long long id = strtoll(e->d_name, &end, 10);
        if (id <= 0 || *end) continue;
        char mdir[1200];
        snprintf(mdir, sizeof mdir, "%s/%lld/models", root, id);
        struct stat stt;
        if (stat(mdir, &stt) || !S_ISDIR(stt.st_mode)) continue;
        int n = 0, dirs = 0;
        if (import_tenant(st, log, (int64_t)id, mdir, &n, &dirs)) {
            failed++;
            continue;
        }
        if (!dirs) continue; /* other modules' models (coaching's forecast) stay files */
        *imported += n;
        /* once: each built-in's directory is kept, renamed, for whoever
         * wants the files; a crash before the rename imports again, adding
         * nothing */
        int64_t now = clock_wall_ms();
        for (int b = 0; b < NBUILTIN; b++) {
            char dir[1300], done[1400];
            snprintf(dir, sizeof dir, "%s/%s", mdir, score_builtin_name(b));
            snprintf(done, sizeof done, "%s.imported-%lld", dir, (long long)now);
            if (rename(dir, done) && errno != ENOENT) {
                log_msg(log, LOG_ERROR, "cannot rename an imported model directory", strerror(errno));
                failed++;
            }
        }
        log_line l;
        if (log_begin(log, &l, LOG_INFO, "model files imported into the store")) {
            log_int(&l, "tenant", id);
            log_int(&l, "versions", n);
            log_str(&l, "dir", mdir);
            log_end(&l);
        }
    }
    closedir(d);
    return failed ? -1 : 0;
}
