/* score: free-text timelines into buckets, score_lead against a real
 * SQLite store (prior scoring, history only when the score moves, a
 * missing lead), and the model registry: an earlier release's model files
 * imported into the store once, activation and what is served; drift: the
 * rows a built-in model scores binned against its stored training
 * distribution (PSI checked against a hand binning). A new lead scored
 * without reading activities (score_new_lead) scores as score_lead does,
 * and a created row's event text (ent_row_text) is the document
 * ent_row_json gives, byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "leads/entity.h"
#include "leads/leads.h"
#include "ml/ml.h"
#include "score/internal.h"
#include "score/score.h"

static void test_timeline_buckets(void **state) {
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"ASAP", "0-3m"},        {"ready now", "0-3m"},     {"Immediately", "0-3m"},   {"1-2 months", "0-3m"},
        {"0-3 months", "0-3m"},  {"30 days", "0-3m"},       {"6 weeks", "0-3m"},       {"3-6 months", "3-6m"},
        {"within 6 months", "3-6m"}, {"6-12 months", "6-12m"}, {"1 year", "6-12m"},    {"12+ months", "6-12m"},
        {"2 years", "12m+"},     {"18 months", "12m+"},     {"just looking", NULL},    {"", NULL},
        {"not sure", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = score_timeline_bucket(cases[i].in);
        if (!cases[i].want) {
            if (got) fail_msg("%s: want NULL, got %s", cases[i].in, got);
        } else if (!got || strcmp(got, cases[i].want)) {
            fail_msg("%s: want %s, got %s", cases[i].in, cases[i].want, got ? got : "NULL");
        }
    }
    assert_null(score_timeline_bucket(NULL));
}

typedef struct fx {
    char dir[64];
    store *st;
    int64_t tenant, lead;
} fx;

static int mk_tenant(store_tx *tx, void *arg, store_err *err) {
    return store_tenant_create(tx, "t1", "T1", &((fx *)arg)->tenant, err);
}

static int mk_lead(store_tx *tx, void *arg, store_err *err) {
    fx *f = arg;
    store_val p[] = {SV_I(f->tenant)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "INSERT INTO leads (tenant_id, email, preapproved, timeline, created_at, updated_at) "
                         "VALUES ($1, 'a@example.com', 1, 'asap', 0, 0) RETURNING id",
                         p, 1, &r, err);
    if (!rc) f->lead = store_rows_int(r, 0, 0);
    store_rows_free(r);
    return rc;
}

typedef struct call {
    int64_t lead, now;
} call;

static int do_score(store_tx *tx, void *arg, store_err *err) {
    call *c = arg;
    return score_lead(tx, c->lead, c->now, err);
}

typedef struct count_q {
    const char *sql;
    int64_t n;
    double score;
} count_q;

static int count_tx(store_tx *tx, void *arg, store_err *err) {
    count_q *q = arg;
    store_val p[] = {SV_I(store_tx_tenant(tx))};
    store_rows *r = NULL;
    int rc = store_query(tx, q->sql, p, 1, &r, err);
    if (!rc) {
        q->n = store_rows_int(r, 0, 0);
        q->score = store_rows_real(r, 0, 1);
    }
    store_rows_free(r);
    return rc;
}

static count_q scores(fx *f) {
    count_q q = {"SELECT (SELECT COUNT(*) FROM lead_scores WHERE tenant_id = $1), "
                 "(SELECT score FROM leads WHERE tenant_id = $1)", 0, 0};
    assert_int_equal(store_read(f->st, f->tenant, count_tx, &q, NULL), 0);
    return q;
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ehub-score-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/t.db", f->dir);
    store_err err = {0};
    f->st = store_open(url, NULL, &err);
    if (!f->st) return -1;
    if (store_write(f->st, 0, mk_tenant, f, &err) || store_write(f->st, f->tenant, mk_lead, f, &err)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    store_close(f->st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd)) return -1;
    free(f);
    return 0;
}

static void test_score_lead_prior(void **state) {
    fx *f = *state;
    store_err err = {0};
    call c = {f->lead, 1000};
    /* no context: the prior scores. 10 + 20 pre-approved + 15 timeline +
     * 2 preferences (timeline) + 2 email = 49 */
    assert_int_equal(store_write(f->st, f->tenant, do_score, &c, &err), 0);
    count_q q = scores(f);
    assert_int_equal(q.n, 1);
    assert_true(q.score > 0.489 && q.score < 0.491);
    /* nothing moved: no new history row */
    assert_int_equal(store_write(f->st, f->tenant, do_score, &c, &err), 0);
    assert_int_equal(scores(f).n, 1);
    c.lead = f->lead + 100;
    assert_int_equal(store_write(f->st, f->tenant, do_score, &c, &err), STORE_NOTFOUND);
}

/* Two versions of lead_scoring as an earlier release left them, trained by
 * the real trainer on a small seeded history, v1 active. */
static void old_release(fx *f, char *mdir, size_t n) {
    char csv[128], out[128];
    snprintf(csv, sizeof csv, "%s/h.csv", f->dir);
    snprintf(out, sizeof out, "%s/tenants/%lld/models", f->dir, (long long)f->tenant);
    FILE *fp = fopen(csv, "w");
    assert_non_null(fp);
    fprintf(fp, "preapproved,inbound_messages,appointments,label\n");
    unsigned x = 7;
    for (int i = 0; i < 400; i++) {
        x = x * 1103515245u + 12345u;
        int p = (x >> 16) & 1, in = (x >> 17) % 4, a = ((x >> 20) % 10) < 3;
        int won = p + in + 2 * a + (int)((x >> 24) % 3) >= 3;
        fprintf(fp, "%d,%d,%d,%d\n", p, in, a, won);
    }
    fclose(fp);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", out);
    assert_int_equal(system(cmd), 0);
    for (uint64_t seed = 1; seed <= 2; seed++) {
        ml_train_opts o = {.data = csv, .label = "label", .positive = "1", .model = "lead_scoring", .out = out,
                           .seed = seed, .nthread = 1};
        json_t *rep = NULL;
        char err[256];
        if (ml_train(&o, &rep, err, sizeof err)) fail_msg("train: %s", err);
        assert_int_equal(json_integer_value(json_object_get(rep, "version")), (json_int_t)seed);
        json_decref(rep);
    }
    snprintf(mdir, n, "%s/lead_scoring", out);
    assert_int_equal(ml_set_active(mdir, 1), 0);
}

static json_t *lead_scoring_of(json_t *models) {
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m) if (!strcmp(json_string_value(json_object_get(m, "name")), "lead_scoring")) return m;
    return NULL;
}

static void test_registry_imports_files_once_and_activates(void **state) {
    fx *f = *state;
    char mdir[256];
    old_release(f, mdir, sizeof mdir);
    score_ctx *c = score_ctx_new(f->dir);
    score_ctx_set_store(c, f->st);
    int n = -1;
    assert_int_equal(score_import_files(c, f->st, NULL, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(access(mdir, F_OK), -1); /* renamed: imported once */
    assert_int_equal(score_import_files(c, f->st, NULL, &n), 0);
    assert_int_equal(n, 0);

    json_t *models = score_models(c, f->tenant);
    json_t *ls = lead_scoring_of(models);
    assert_non_null(ls);
    assert_string_equal(json_string_value(json_object_get(ls, "serving")), "model");
    assert_int_equal(json_integer_value(json_object_get(ls, "active_version")), 1);
    json_t *vs = json_object_get(ls, "versions");
    assert_int_equal(json_array_size(vs), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(vs, 0), "version")), 2);
    assert_true(json_number_value(json_object_get(json_object_get(json_array_get(vs, 1), "metrics"), "auc")) > 0.6);
    json_decref(models);

    /* served on first use (the import's activation is generation 1) */
    json_t *feats = json_pack("{s:s, s:n, s:n, s:b, s:n, s:n, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:n, s:i, "
                              "s:i, s:i, s:i}",
                              "source", "zillow", "timeline", "property_type", "preapproved", 1, "budget_max",
                              "budget_vs_area", "preferences", 2, "has_email", 1, "has_phone", 1, "consents", 0,
                              "inbound_messages", 2, "outbound_messages", 0, "calls", 0, "appointments", 1,
                              "first_response_min", "days_since_inbound", 1, "days_since_activity", 1, "age_days",
                              2, "tags", 0);
    assert_non_null(feats);
    assert_int_equal(score_model_generation(c, f->tenant, "lead_scoring"), -1);
    json_t *out = NULL;
    char err[256];
    if (score_features(c, f->tenant, "lead_scoring", feats, 0, &out, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(json_integer_value(json_object_get(out, "version")), 1);
    double s1 = json_number_value(json_object_get(out, "score"));
    json_decref(out);
    assert_int_equal(score_model_generation(c, f->tenant, "lead_scoring"), 1);

    /* activation: an unknown version changes nothing; a known one is
     * served at once, as the next generation */
    assert_int_equal(score_activate(c, f->tenant, "lead_scoring", 9, "test", NULL, err, sizeof err), 404);
    assert_int_equal(score_activate(c, f->tenant, "nope", 1, "test", NULL, err, sizeof err), 404);
    assert_int_equal(score_model_generation(c, f->tenant, "lead_scoring"), 1);
    assert_int_equal(score_activate(c, f->tenant, "lead_scoring", 2, "test", NULL, err, sizeof err), 0);
    assert_int_equal(score_model_generation(c, f->tenant, "lead_scoring"), 2);
    if (score_features(c, f->tenant, "lead_scoring", feats, 0, &out, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(json_integer_value(json_object_get(out, "version")), 2);
    json_decref(out);
    /* a second context (another node on the same store) loads what the
     * store says, and a reload that finds nothing newer changes nothing */
    score_ctx *c2 = score_ctx_new(f->dir);
    score_ctx_set_store(c2, f->st);
    int v = 0;
    assert_int_equal(score_model_reload(c2, f->tenant, "lead_scoring", &v, err, sizeof err), 0);
    assert_int_equal(v, 2);
    assert_int_equal(score_activate(c2, f->tenant, "lead_scoring", 1, "test", NULL, err, sizeof err), 0);
    assert_int_equal(score_model_generation(c2, f->tenant, "lead_scoring"), 3);
    assert_int_equal(score_model_generation(c, f->tenant, "lead_scoring"), 2); /* until its event */
    assert_int_equal(score_model_reload(c, f->tenant, "lead_scoring", &v, err, sizeof err), 0);
    assert_int_equal(v, 1);
    if (score_features(c, f->tenant, "lead_scoring", feats, 0, &out, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(json_integer_value(json_object_get(out, "version")), 1);
    assert_true(json_number_value(json_object_get(out, "score")) == s1);
    json_decref(out);

    count_q q = {"SELECT COUNT(*), 0 FROM events WHERE tenant_id = $1 AND type = 'model.activated'", 0, 0};
    assert_int_equal(store_read(f->st, f->tenant, count_tx, &q, NULL), 0);
    assert_int_equal(q.n, 3); /* the import's, v2, v1 */
    json_decref(feats);
    score_ctx_free(c2);
    score_ctx_free(c);
}

/* ---- drift of the rows the built-in models score ---- */

/* A lead_scoring model trained by the real trainer on a seeded history of
 * source (three common values and one rare), inbound messages and
 * pre-approval, stored as v1 of f's tenant and activated. */
static unsigned drift_gen(unsigned *x, const char **src, int *in, int *pre) {
    *x = *x * 1103515245u + 12345u;
    unsigned r = (*x >> 8) % 100;
    *src = r < 40 ? "zillow" : r < 70 ? "open house" : "facebook";
    *in = (int)((*x >> 17) % 4);
    *pre = (*x >> 24) & 1;
    return *x;
}

static score_ctx *drift_model(fx *f) {
    char csv[128], out[128];
    snprintf(csv, sizeof csv, "%s/d.csv", f->dir);
    snprintf(out, sizeof out, "%s/tenants/%lld/models", f->dir, (long long)f->tenant);
    FILE *fp = fopen(csv, "w");
    assert_non_null(fp);
    fprintf(fp, "source,inbound_messages,preapproved,label\n");
    unsigned x = 11;
    for (int i = 0; i < 600; i++) {
        const char *src;
        int in, pre;
        drift_gen(&x, &src, &in, &pre);
        if (i < 3) src = "referral"; /* rarer than 5: the schema's "other" */
        int won = pre + in + (int)((x >> 26) % 3) >= 3;
        fprintf(fp, "%s,%d,%d,%d\n", src, in, pre, won);
    }
    fclose(fp);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", out);
    assert_int_equal(system(cmd), 0);
    ml_train_opts o = {.data = csv, .label = "label", .positive = "1", .model = "lead_scoring", .out = out,
                       .seed = 1, .nthread = 1};
    json_t *rep = NULL;
    char err[256];
    if (ml_train(&o, &rep, err, sizeof err)) fail_msg("train: %s", err);
    json_decref(rep);
    score_ctx *c = score_ctx_new(f->dir);
    score_ctx_set_store(c, f->st);
    int n = 0;
    assert_int_equal(score_import_files(c, f->st, NULL, &n), 0);
    assert_int_equal(n, 1);
    return c;
}

/* Every lead feature null but the three the model reads. */
static json_t *lead_row(const char *src, json_t *in, json_t *pre) {
    static const char *const names[] = {"timeline", "property_type", "budget_max", "budget_vs_area", "preferences",
                                        "has_email", "has_phone", "consents", "outbound_messages", "calls",
                                        "appointments", "first_response_min", "days_since_inbound",
                                        "days_since_activity", "age_days", "tags"};
    json_t *o = json_object();
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) json_object_set_new(o, names[i], json_null());
    json_object_set_new(o, "source", src ? json_string(src) : json_null());
    json_object_set_new(o, "inbound_messages", in);
    json_object_set_new(o, "preapproved", pre);
    return o;
}

static void score_row(score_ctx *c, fx *f, const char *src, json_t *in, json_t *pre) {
    json_t *row = lead_row(src, in, pre), *out = NULL;
    char err[256];
    if (score_features(c, f->tenant, "lead_scoring", row, 0, &out, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(json_string_value(json_object_get(out, "kind")), "model");
    json_decref(out);
    json_decref(row);
}

static json_t *lead_drift(score_ctx *c, fx *f) {
    json_t *models = score_models(c, f->tenant);
    assert_non_null(models);
    json_t *d = json_incref(json_object_get(lead_scoring_of(models), "drift"));
    json_decref(models);
    return d;
}

typedef struct schema_q {
    json_t *schema;
} schema_q;

static int schema_tx(store_tx *tx, void *arg, store_err *err) {
    store_val p[] = {SV_I(store_tx_tenant(tx))};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT schema FROM model_versions WHERE tenant_id = $1 AND name = 'lead_scoring' "
                             "AND version = 1", p, 1, &r, err);
    if (!rc) ((schema_q *)arg)->schema = json_loads(store_rows_text(r, 0, 0), 0, NULL);
    store_rows_free(r);
    return rc;
}

/* The PSI a reader of the stored schema expects for live values of one
 * feature, binned by hand: a numeric value into (-inf, e0], (e0, e1] ...
 * (e_last, inf) or missing; a category into its own bin, a rare one into
 * "other", an unknown one (scored as missing) and null into missing. */
static double expected_psi(const json_t *schema, const char *feature, const char *const *cat, const double *num,
                           int n) {
    const json_t *td = json_object_get(json_object_get(schema, "training_distribution"), feature), *fs = NULL;
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(schema, "features"), i, it) {
        if (!strcmp(json_string_value(json_object_get(it, "name")), feature)) fs = it;
    }
    assert_non_null(td);
    assert_non_null(fs);
    double train[80], live[80] = {0};
    int nb;
    double miss = json_number_value(json_object_get(td, "missing"));
    const json_t *edges = json_object_get(td, "edges"), *cats = json_object_get(fs, "categories");
    if (edges) {
        int ne = (int)json_array_size(edges);
        nb = ne + 2;
        const json_t *fr = json_object_get(td, "fractions"); /* per bin, recorded by the trainer */
        assert_int_equal(json_array_size(fr), (size_t)ne + 1);
        for (int k = 0; k <= ne; k++) train[k] = json_number_value(json_array_get(fr, (size_t)k));
        train[ne + 1] = miss;
        for (int r = 0; r < n; r++) {
            int b = 0;
            if (isnan(num[r])) b = ne + 1;
            else
                while (b < ne && (float)num[r] > (float)json_number_value(json_array_get(edges, (size_t)b))) b++;
            live[b]++;
        }
    } else {
        int nc = (int)json_array_size(cats);
        nb = nc + 2;
        const json_t *fr = json_object_get(td, "fractions");
        for (int k = 0; k < nc; k++) train[k] = json_number_value(json_array_get(fr, (size_t)k));
        train[nc] = json_number_value(json_object_get(td, "other"));
        train[nc + 1] = miss;
        for (int r = 0; r < n; r++) {
            int b = nc + 1;
            for (int k = 0; cat[r] && k < nc; k++)
                if (!strcmp(cat[r], json_string_value(json_array_get(cats, (size_t)k)))) b = k;
            json_array_foreach(json_object_get(fs, "other"), i, it) {
                if (cat[r] && !strcmp(cat[r], json_string_value(it))) b = nc;
            }
            live[b]++;
        }
    }
    double psi = 0;
    for (int b = 0; b < nb; b++) {
        double e = train[b] > 1e-4 ? train[b] : 1e-4, a = live[b] / n > 1e-4 ? live[b] / n : 1e-4;
        psi += (a - e) * log(a / e);
    }
    return psi;
}

static double psi_of(const json_t *d, const char *feature) {
    const json_t *v = json_object_get(json_object_get(d, "psi"), feature);
    if (!json_is_number(v)) fail_msg("%s: no PSI", feature);
    return json_number_value(v);
}

static void test_drift_of_builtin_rows(void **state) {
    fx *f = *state;
    score_ctx *c = drift_model(f);
    json_t *d = lead_drift(c, f);
    assert_non_null(d); /* not loaded by the listing: nothing scored here yet */
    assert_int_equal(json_integer_value(json_object_get(d, "rows")), 0);
    assert_int_equal(json_object_size(json_object_get(d, "psi")), 0);
    json_decref(d);
    assert_int_equal(score_model_generation(c, f->tenant, "lead_scoring"), -1);
    score_row(c, f, "zillow", json_integer(1), json_integer(1));
    d = lead_drift(c, f);
    assert_int_equal(json_integer_value(json_object_get(d, "rows")), 1);
    assert_int_equal(json_object_size(json_object_get(d, "psi")), 3);
    json_decref(d);

    /* rows from the training population (another stretch of the same
     * generator): every feature stable */
    unsigned x = 99991;
    for (int i = 1; i < 800; i++) {
        const char *src;
        int in, pre;
        drift_gen(&x, &src, &in, &pre);
        score_row(c, f, src, json_integer(in), json_integer(pre));
    }
    d = lead_drift(c, f);
    assert_int_equal(json_integer_value(json_object_get(d, "rows")), 800);
    printf("# PSI on the training population: source %.4f, inbound_messages %.4f, preapproved %.4f\n",
           psi_of(d, "source"), psi_of(d, "inbound_messages"), psi_of(d, "preapproved"));
    for (const char *const *k = (const char *const[]){"source", "inbound_messages", "preapproved", NULL}; *k; k++)
        if (psi_of(d, *k) > 0.05) fail_msg("%s: PSI %f on the training population", *k, psi_of(d, *k));
    json_decref(d);

    /* an activation (here of the same version) starts the counts again */
    char err[256];
    assert_int_equal(score_activate(c, f->tenant, "lead_scoring", 1, "test", NULL, err, sizeof err), 0);
    d = lead_drift(c, f);
    assert_int_equal(json_integer_value(json_object_get(d, "rows")), 0);
    json_decref(d);

    /* a shifted population, binned exactly: 30 facebook leads with 10
     * messages (beyond every training value) and no pre-approval known,
     * 15 from an unknown source (scored as missing) with none, 5 from the
     * rare "referral" (the other bin), pre-approved */
    const char *cats[50];
    double ins[50], pres[50];
    for (int i = 0; i < 50; i++) {
        cats[i] = i < 30 ? "facebook" : i < 45 ? "tiktok" : "referral";
        ins[i] = i < 30 ? 10 : 0;
        pres[i] = i < 30 ? NAN : i < 45 ? 0 : 1;
        score_row(c, f, cats[i], json_integer((json_int_t)ins[i]),
                  isnan(pres[i]) ? json_null() : json_integer((json_int_t)pres[i]));
    }
    schema_q q = {0};
    assert_int_equal(store_read(f->st, f->tenant, schema_tx, &q, NULL), 0);
    assert_non_null(q.schema);
    d = lead_drift(c, f);
    assert_int_equal(json_integer_value(json_object_get(d, "rows")), 50);
    double want[3] = {expected_psi(q.schema, "source", cats, NULL, 50),
                      expected_psi(q.schema, "inbound_messages", NULL, ins, 50),
                      expected_psi(q.schema, "preapproved", NULL, pres, 50)};
    const char *names[3] = {"source", "inbound_messages", "preapproved"};
    printf("# PSI shifted: source %.4f, inbound_messages %.4f, preapproved %.4f\n", want[0], want[1], want[2]);
    for (int k = 0; k < 3; k++) {
        if (fabs(psi_of(d, names[k]) - want[k]) > 1e-9)
            fail_msg("%s: PSI %.12f, want %.12f", names[k], psi_of(d, names[k]), want[k]);
        if (want[k] < 0.25) fail_msg("%s: PSI %f, a shift this large should pass 0.25", names[k], want[k]);
    }
    json_decref(d);
    json_decref(q.schema);
    score_ctx_free(c);
}


/* Two identical leads: one scored as new, one by the full query. */
typedef struct twin {
    int64_t a, b;
    int fresh;
} twin;

static int mk_twins(store_tx *tx, void *arg, store_err *err) {
    twin *t = arg;
    for (int i = 0; i < 2; i++) {
        store_val p[] = {SV_I(store_tx_tenant(tx))};
        store_rows *r = NULL;
        int rc = store_query(tx,
                             "INSERT INTO leads (tenant_id, email, phone, preapproved, timeline, budget_max, areas, "
                             "beds, tags, consent_sms, created_at, updated_at) VALUES ($1, 'b@example.com', "
                             "'+14155550100', 0, '3-6 months', 450000, '[\"95814\"]', 3, '[\"x\"]', 1, 500, 500) "
                             "RETURNING id",
                             p, 1, &r, err);
        if (rc) return rc;
        *(i ? &t->b : &t->a) = store_rows_int(r, 0, 0);
        store_rows_free(r);
    }
    return STORE_OK;
}

static int score_twins(store_tx *tx, void *arg, store_err *err) {
    twin *t = arg;
    int rc = score_new_lead(tx, t->a, 1000, err);
    return rc ? rc : score_lead(tx, t->b, 1000, err);
}

typedef struct score_hist {
    int64_t lead;
    char text[2048];
} score_hist;

static int read_score(store_tx *tx, void *arg, store_err *err) {
    score_hist *s = arg;
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(s->lead)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT score, kind, reasons FROM lead_scores WHERE tenant_id = $1 AND lead_id = $2",
                         p, 2, &r, err);
    if (rc) return rc;
    if (store_rows_count(r) != 1) s->text[0] = 0;
    else
        snprintf(s->text, sizeof s->text, "%s %s %s", store_rows_text(r, 0, 0), store_rows_text(r, 0, 1),
                 store_rows_text(r, 0, 2));
    store_rows_free(r);
    return STORE_OK;
}

/* The lead.scored event of s->lead, and its score's reasons as stored. */
static int read_scored_event(store_tx *tx, void *arg, store_err *err) {
    score_hist *s = arg;
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(s->lead)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT e.payload, (SELECT reasons FROM lead_scores WHERE tenant_id = $1 AND lead_id = $2) "
                         "FROM events e WHERE e.tenant_id = $1 AND e.type = 'lead.scored' "
                         "AND json_extract(e.payload, '$.lead_id') = $2",
                         p, 2, &r, err);
    if (rc) return rc;
    s->text[0] = 0;
    if (store_rows_count(r) == 1)
        snprintf(s->text, sizeof s->text, "%s\n%s", store_rows_text(r, 0, 0), store_rows_text(r, 0, 1));
    store_rows_free(r);
    return STORE_OK;
}

static void test_new_lead_scores_as_score_lead(void **state) {
    fx *f = *state;
    store_err err = {0};
    twin t = {0};
    assert_int_equal(store_write(f->st, f->tenant, mk_twins, &t, &err), 0);
    assert_int_equal(store_write(f->st, f->tenant, score_twins, &t, &err), 0);
    score_hist a = {t.a, ""}, b = {t.b, ""};
    assert_int_equal(store_read(f->st, f->tenant, read_score, &a, &err), 0);
    assert_int_equal(store_read(f->st, f->tenant, read_score, &b, &err), 0);
    assert_true(a.text[0] != 0);
    assert_string_equal(a.text, b.text);
    /* lead.scored: the score's fields, then the stored reasons, as one
     * JSON document */
    score_hist ev = {t.a, ""};
    assert_int_equal(store_read(f->st, f->tenant, read_scored_event, &ev, &err), 0);
    char *nl = strchr(ev.text, '\n');
    assert_non_null(nl);
    *nl = 0;
    json_t *payload = json_loads(ev.text, 0, NULL), *stored = json_loads(nl + 1, 0, NULL);
    assert_non_null(payload);
    assert_non_null(stored);
    assert_true(json_array_size(stored) > 0);
    assert_true(json_equal(json_object_get(payload, "reasons"), stored));
    assert_int_equal(json_integer_value(json_object_get(payload, "lead_id")), t.a);
    assert_true(json_is_null(json_object_get(payload, "previous")));
    assert_string_equal(json_string_value(json_object_get(payload, "kind")), "prior");
    assert_int_equal(json_object_size(payload), 6);
    json_t *want = json_pack("{s:I, s:O, s:n, s:s, s:n, s:O}", "lead_id", (json_int_t)t.a, "score",
                             json_object_get(payload, "score"), "previous", "kind", "prior", "model_version",
                             "reasons", stored);
    char *wt = json_dumps(want, JSON_COMPACT);
    assert_string_equal(ev.text, wt); /* byte for byte, keys in order */
    free(wt);
    json_decref(want);
    json_decref(payload);
    json_decref(stored);
}

typedef struct row_text {
    const char *input;
    json_t *row;
    char *text;
} row_text;

static int insert_text(store_tx *tx, void *arg, store_err *err) {
    row_text *q = arg;
    json_t *in = json_loads(q->input, 0, NULL);
    ent_vals v;
    json_t *errors = NULL;
    if (!in || ent_parse(&entity_lead, in, 1, "US", &v, &errors)) {
        json_decref(in);
        json_decref(errors);
        return STORE_INVALID;
    }
    int64_t id;
    int rc = ent_insert_row_text(tx, &v, 1234, &id, &q->row, &q->text, err);
    ent_vals_free(&v);
    json_decref(in);
    return rc;
}

static void test_row_text_is_row_json(void **state) {
    fx *f = *state;
    store_err err = {0};
    static const char *const inputs[] = {
        "{\"first_name\":\"Ana \\\"Q\\\" \\\\ M\u00fcller \u2603\",\"email\":\"ana@example.com\","
        "\"phone\":\"+1 415 555 0101\",\"tags\":[\"buyer\",\"a\\\"b\"],\"areas\":[\"95814\"],"
        "\"budget_min\":250000.5,\"budget_max\":450000,\"beds\":3,\"baths\":2.25,\"consent_sms\":true,"
        "\"consent_email\":false,\"preapproved\":true,\"timeline\":\"3-6 months\",\"source\":\"web/zillow\"}",
        "{\"last_name\":\"Solo\"}",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        row_text q = {inputs[i], NULL, NULL};
        assert_int_equal(store_write(f->st, f->tenant, insert_text, &q, &err), 0);
        assert_non_null(q.row);
        assert_non_null(q.text);
        char *want = json_dumps(q.row, JSON_COMPACT);
        assert_string_equal(q.text, want);
        free(want);
        json_decref(q.row);
        eh_free(q.text);
    }
}

/* The score events are written as text (score_reasons_text,
 * score_scored_text, score_hot_text): byte for byte what the JSON trees
 * (score_reasons_json, json_pack) dumped compact gave, over random
 * features and reasons: categorical values with quotes, backslashes and
 * UTF-8, missing values, integral and fractional numbers, huge ones,
 * infinite effects (left out by both), model and prior kinds. */
static void test_event_text_is_json_text(void **state) {
    uint64_t x = 0x9E3779B97F4A7C15ULL;
#define RND() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    static const char *const cats[] = {"", "zillow", "a \"q\" \\ b", "M\u00fcller \u2603", "3-6 months", "x/y\tz"};
    for (int round_ = 0; round_ < 3000; round_++) {
        feats f;
        memset(&f, 0, sizeof f);
        for (int i = 0; i < NFEAT; i++) {
            snprintf(f.cat[i], sizeof f.cat[i], "%s", cats[RND() % 6]);
            switch (RND() % 6) {
            case 0: f.num[i] = NAN; break;
            case 1: f.num[i] = (double)(RND() % 1000); break;
            case 2: f.num[i] = (double)(int64_t)(RND() >> 24) / 997.0; break;
            case 3: f.num[i] = 1e16 + (double)(RND() % 7); break;
            case 4: f.num[i] = (RND() & 1) ? INFINITY : 1e306; break;
            default: f.num[i] = -(double)(RND() % 100000) / 3.0; break;
            }
        }
        reason rs[NFEAT], rs2[NFEAT];
        int n = (int)(RND() % 10);
        for (int i = 0; i < n; i++) {
            rs[i].feature = (int)(RND() % NFEAT);
            rs[i].effect = (RND() % 17 == 0) ? INFINITY : (double)(int64_t)(RND() >> 30) / 1e6;
        }
        memcpy(rs2, rs, sizeof rs);
        int model = (int)(RND() & 1);
        json_t *tree = score_reasons_json(&f, rs, n, model);
        char *want = json_dumps(tree, JSON_COMPACT);
        buf t;
        buf_init(&t, 1 << 16);
        assert_int_equal(score_reasons_text(&f, rs2, n, model, &t), BUF_OK);
        assert_string_equal(t.p, want);
        free(want);

        int64_t lead = (int64_t)(RND() % 1000000) + 1, agent = (int64_t)(RND() % 3);
        double sc = round((double)(RND() % 1000000) / 1e6 * 10000) / 10000, old = (double)(RND() % 100) / 100;
        int had = (int)(RND() & 1), version = model ? (int)(RND() % 20) + 1 : 0;
        const char *kind = version ? "model" : "prior";
        json_t *ev = json_pack("{s:I, s:f, s:o, s:s, s:o, s:O}", "lead_id", (json_int_t)lead, "score", sc, "previous",
                               had ? json_real(old) : json_null(), "kind", kind, "model_version",
                               version ? json_integer(version) : json_null(), "reasons", tree);
        want = json_dumps(ev, JSON_COMPACT);
        buf e;
        buf_init(&e, 1 << 16);
        assert_int_equal(score_scored_text(&e, lead, sc, had, old, kind, version, t.p, t.len), BUF_OK);
        assert_string_equal(e.p, want);
        free(want);
        json_decref(ev);
        double thr = (double)(RND() % 100) / 100;
        ev = json_pack("{s:I, s:f, s:f, s:o, s:O}", "lead_id", (json_int_t)lead, "score", sc, "threshold", thr,
                       "agent_id", agent ? json_integer(agent) : json_null(), "reasons", tree);
        want = json_dumps(ev, JSON_COMPACT);
        buf_reset(&e);
        assert_int_equal(score_hot_text(&e, lead, sc, thr, agent, t.p, t.len), BUF_OK);
        assert_string_equal(e.p, want);
        free(want);
        json_decref(ev);
        buf_free(&e);
        buf_free(&t);
        json_decref(tree);
    }
    /* routing's events */
    static const char *const why[] = {"new lead; round robin; load 0/5", "x \"q\" \\ \u00e9\t\u2603", ""};
    for (int i = 0; i < 3; i++)
        for (int64_t agent = 0; agent < 2; agent++) {
            json_t *ev = agent ? json_pack("{s:I, s:I, s:s}", "lead_id", (json_int_t)42, "agent_id",
                                           (json_int_t)(agent * 9000000000LL), "reason", why[i])
                               : json_pack("{s:I, s:s}", "lead_id", (json_int_t)-7, "reason", why[i]);
            char *want = json_dumps(ev, JSON_COMPACT);
            buf b;
            buf_init(&b, 1024);
            assert_int_equal(leads_route_event_text(&b, agent ? 42 : -7, agent * 9000000000LL, why[i]), BUF_OK);
            assert_string_equal(b.p, want);
            buf_free(&b);
            free(want);
            json_decref(ev);
        }
    /* a score with no JSON form fails (the tree's json_pack failed too) */
    buf e;
    buf_init(&e, 1024);
    assert_int_equal(score_scored_text(&e, 1, NAN, 0, 0, "prior", 0, "[]", 2), BUF_INVALID);
    buf_free(&e);
#undef RND
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeline_buckets),
        cmocka_unit_test_setup_teardown(test_score_lead_prior, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_imports_files_once_and_activates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drift_of_builtin_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_lead_scores_as_score_lead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_text_is_row_json, setup, teardown),
        cmocka_unit_test(test_event_text_is_json_text),
    };
    return cmocka_run_group_tests_name("score", tests, NULL, NULL);
}
