/* In-process cost of scoring a lead with a tenant's built-in lead_scoring
 * model, per row: (1) score_features, the model's part alone (encode, walk
 * the trees, bin the row for drift), and (2) score_lead in a SQLite write
 * transaction, the re-score every lead write runs (read the lead and its
 * activity, score with reasons, compare; the score does not move, so
 * nothing is written). The model is trained by the real trainer on 2,000
 * synthetic leads over every lead feature, as an earlier release's file,
 * and imported into the store; (0) first, the drift binning alone (an
 * uncontended mutex around ml_drift_add, as reg_observe does). Built
 * against a build's libehub.a (`make build/tools/rescore_bench`; the same
 * file linked with another checkout's library compares two builds):
 *
 *   rescore_bench [rows]     (default 20000) */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "leads/leads.h"
#include "ml/ml.h"
#include "score/score.h"

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

typedef struct ctx {
    int64_t tenant, lead;
} ctx;

static int mk_tenant(store_tx *tx, void *arg, store_err *err) {
    return store_tenant_create(tx, "bench", "Bench", &((ctx *)arg)->tenant, err);
}

static int mk_lead(store_tx *tx, void *arg, store_err *err) {
    ctx *c = arg;
    store_val p[] = {SV_I(c->tenant)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "INSERT INTO leads (tenant_id, email, phone, source, preapproved, timeline, budget_max, "
                         "created_at, updated_at) VALUES ($1, 'a@example.com', '+14155550100', 'zillow', 1, 'asap', "
                         "450000, 0, 0) RETURNING id",
                         p, 1, &r, err);
    if (!rc) c->lead = store_rows_int(r, 0, 0);
    store_rows_free(r);
    return rc;
}

static int rescore(store_tx *tx, void *arg, store_err *err) {
    return score_lead(tx, ((ctx *)arg)->lead, 86400000, err);
}

int main(int argc, char **argv) {
    int rows = argc > 1 ? atoi(argv[1]) : 20000;
    if (rows < 100) rows = 100;
    char dir[] = "/tmp/ehub-rescore-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char url[128], csv[128], out[160], cmd[256];
    snprintf(url, sizeof url, "sqlite:%s/t.db", dir);
    score_ctx *sc = score_ctx_new(dir);
    leads_domain dom = {.score = sc};
    store_opts so = {.ctx = &dom};
    store_err se = {0};
    store *st = store_open(url, &so, &se);
    ctx c = {0};
    if (!st || store_write(st, 0, mk_tenant, &c, &se) || store_write(st, c.tenant, mk_lead, &c, &se)) {
        fprintf(stderr, "store: %s\n", se.msg);
        return 1;
    }
    score_ctx_set_store(sc, st);

    /* a history over every lead feature, with a pattern to learn */
    snprintf(csv, sizeof csv, "%s/h.csv", dir);
    snprintf(out, sizeof out, "%s/tenants/%lld/models", dir, (long long)c.tenant);
    snprintf(cmd, sizeof cmd, "mkdir -p %s", out);
    if (system(cmd)) return 1;
    FILE *fp = fopen(csv, "w");
    fprintf(fp, "source,timeline,property_type,preapproved,budget_max,budget_vs_area,preferences,has_email,has_phone,"
                "consents,inbound_messages,outbound_messages,calls,appointments,first_response_min,"
                "days_since_inbound,days_since_activity,age_days,tags,label\n");
    static const char *const src[] = {"zillow", "open house", "facebook", "referral", "website"};
    static const char *const tl[] = {"0-3m", "3-6m", "6-12m", "12m+", ""};
    static const char *const pt[] = {"house", "condo", "townhouse"};
    srand(7);
    for (int i = 0; i < 2000; i++) {
        int pre = rand() % 2, in = rand() % 6, ap = rand() % 4 == 0;
        double z = -2 + 1.5 * pre + 0.5 * in + 2 * ap + (rand() % 100) / 50.0 - 1;
        fprintf(fp, "%s,%s,%s,%d,%d,%.2f,%d,%d,%d,%d,%d,%d,%d,%d,%d,%.2f,%.2f,%.2f,%d,%d\n", src[rand() % 5],
                tl[rand() % 5], pt[rand() % 3], pre, 200000 + rand() % 800000, 0.5 + (rand() % 100) / 100.0,
                rand() % 7, rand() % 2, rand() % 2, rand() % 3, in, rand() % 6, rand() % 4, ap, rand() % 600,
                (rand() % 3000) / 100.0, (rand() % 3000) / 100.0, (rand() % 9000) / 100.0, rand() % 4, z > 0);
    }
    fclose(fp);
    ml_train_opts o = {.data = csv, .label = "label", .positive = "1", .model = "lead_scoring", .out = out,
                       .seed = 1, .nthread = 1};
    json_t *rep = NULL;
    char err[256];
    int n = 0;
    if (ml_train(&o, &rep, err, sizeof err)) {
        fprintf(stderr, "train: %s\n", err);
        return 1;
    }
    json_decref(rep);
    /* the binning alone, as reg_observe does it: an uncontended mutex
     * around ml_drift_add */
    char mdir[200];
    snprintf(mdir, sizeof mdir, "%s/lead_scoring", out);
    ml_model *m = ml_model_load(mdir, err, sizeof err);
    if (!m) {
        fprintf(stderr, "load: %s\n", err);
        return 1;
    }

    json_t *f = json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, "
                          "s:f, s:i}",
                          "source", "zillow", "timeline", "0-3m", "property_type", "house", "preapproved", 1,
                          "budget_max", 450000, "budget_vs_area", 1.1, "preferences", 3, "has_email", 1, "has_phone",
                          1, "consents", 1, "inbound_messages", 2, "outbound_messages", 1, "calls", 0,
                          "appointments", 1, "first_response_min", 4, "days_since_inbound", 1.5,
                          "days_since_activity", 1.0, "age_days", 3.0, "tags", 1);
    ml_drift *d = ml_drift_new(m);
    float *x = malloc((size_t)ml_schema_width(ml_model_schema(m)) * sizeof *x);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    if (!d || !x || ml_encode_json(ml_model_schema(m), f, x, err, sizeof err)) {
        fprintf(stderr, "drift: %s\n", d ? err : "no training distribution");
        return 1;
    }
    double t0 = now_ns();
    for (int i = 0; i < rows * 10; i++) {
        pthread_mutex_lock(&mu);
        ml_drift_add(d, x);
        pthread_mutex_unlock(&mu);
    }
    double bin_ns = (now_ns() - t0) / (rows * 10);
    int nf = ml_schema_features(ml_model_schema(m));
    ml_drift_free(d);
    free(x);
    ml_model_free(m);
    if (score_import_files(sc, st, NULL, &n) || n != 1) {
        fprintf(stderr, "import failed\n");
        return 1;
    }
    json_t *res = NULL;
    if (score_features(sc, c.tenant, "lead_scoring", f, 0, &res, err, sizeof err) ||
        strcmp(json_string_value(json_object_get(res, "kind")), "model")) {
        fprintf(stderr, "not scored by the model: %s\n", err);
        return 1;
    }
    json_decref(res);
    t0 = now_ns();
    for (int i = 0; i < rows; i++) {
        score_features(sc, c.tenant, "lead_scoring", f, 0, &res, err, sizeof err);
        json_decref(res);
    }
    double feat_ns = (now_ns() - t0) / rows;
    int lrows = rows / 10;
    store_write(st, c.tenant, rescore, &c, &se); /* the first score is written */
    t0 = now_ns();
    for (int i = 0; i < lrows; i++)
        if (store_write(st, c.tenant, rescore, &c, &se)) {
            fprintf(stderr, "score_lead: %s\n", se.msg);
            return 1;
        }
    double lead_ns = (now_ns() - t0) / lrows;
    printf("binning alone (%d features) %.1f ns/row; score_features %.0f ns/row (%d rows); score_lead in a write "
           "transaction %.0f ns/row (%d rows)\n",
           nf, bin_ns, feat_ns, rows, lead_ns, lrows);
    json_decref(f);
    store_close(st);
    score_ctx_free(sc);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) ? 1 : 0;
}
