/* ml: metrics against hand-computed values; schema inference and encoding;
 * our tree walker and TreeSHAP against XGBoost itself (same margins, SHAP
 * values to 1e-5, additivity); training reproducibility; and the quality
 * floors on the shared data sets (5 seeded stratified 75/25 splits, mean),
 * which fail when a change makes the models worse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xgboost/c_api.h>

#include "base/alloc.h"
#include "ml/ml.h"

static char tmpdir[256];

static const char *data_path(const char *rel, char *buf, size_t n) {
    const char *dir = getenv("EHUB_SHARED_DATA");
    snprintf(buf, n, "%s/%s", dir ? dir : "../shared/data", rel);
    if (access(buf, R_OK) != 0) snprintf(buf, n, "/work/shared/data/%s", rel);
    return buf;
}

static int setup(void **st) {
    (void)st;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ehub-test-ml-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **st) {
    (void)st;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- reading request bodies (batch.c) ---- */

/* The string reader checks eight bytes at a time for a quote, a backslash,
 * a control character or non-ASCII: put each of those at every offset of
 * a lane (and past it) and compare with what the byte-at-a-time rules say. */
static void test_body_strings(void **st) {
    (void)st;
    static const struct { const char *raw, *decoded; int ok; } cases[] = {
        {"\\\"", "\"", 1},       {"\\\\", "\\", 1},        {"\\u00e9", "\xc3\xa9", 1},
        {"\xc3\xa9", "\xc3\xa9", 1}, {"\\n", "\n", 1},      {"\x7f", "\x7f", 1},
        {"\t", NULL, 0},          {"\x01", NULL, 0},        {"\xff", NULL, 0},
        {"\xc3", NULL, 0},        {"\x1f", NULL, 0},        {" ", " ", 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int pre = 0; pre <= 17; pre++) {
            for (int post = 0; post <= 9; post += 9) {
                char raw[96], want[96], body[160], name[65], err[256];
                memset(raw, 'a', (size_t)pre);
                raw[pre] = 0;
                strcat(raw, cases[c].raw);
                memset(raw + strlen(raw), 'z', (size_t)post);
                raw[pre + strlen(cases[c].raw) + (size_t)post] = 0;
                snprintf(body, sizeof body, "{\"model\":\"%s\",\"rows\":[]}", raw);
                int rc = ml_batch_model(body, strlen(body), name, err, sizeof err);
                int fast = ml_predict_model(body, strlen(body), name);
                if (!cases[c].ok) {
                    assert_int_equal(rc, -1);
                    assert_int_equal(fast, 0);
                    continue;
                }
                memset(want, 'a', (size_t)pre);
                want[pre] = 0;
                strcat(want, cases[c].decoded);
                memset(want + strlen(want), 'z', (size_t)post);
                want[pre + strlen(cases[c].decoded) + (size_t)post] = 0;
                assert_int_equal(rc, 0);
                assert_string_equal(name, want);
                assert_int_equal(fast, 1);
                assert_string_equal(name, want);
            }
        }
    }
    /* the fast path reads only a first "model" string; anything else is
     * left to ml_batch_model */
    char name[65];
    const char *no[] = {"{\"rows\":[],\"model\":\"m\"}", "{\"model\":5}", "[\"model\"]", "{\"modelx\":\"m\"}",
                        "{\"model\":\"" /* unterminated */};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) assert_int_equal(ml_predict_model(no[i], strlen(no[i]), name), 0);
}

/* ---- metrics ---- */

static void test_auc(void **st) {
    (void)st;
    double s1[] = {0.1, 0.4, 0.35, 0.8};
    float y1[] = {0, 0, 1, 1};
    assert_true(fabs(ml_auc(s1, y1, 4) - 0.75) < 1e-12);
    double s2[] = {0.5, 0.5, 0.5, 0.5}; /* all tied: 0.5 */
    assert_true(fabs(ml_auc(s2, y1, 4) - 0.5) < 1e-12);
    double s3[] = {0.9, 0.8, 0.1, 0.2}; /* perfectly wrong */
    assert_true(fabs(ml_auc(s3, y1, 4) - 0.0) < 1e-12);
    float one[] = {1, 1, 1, 1};
    assert_true(isnan(ml_auc(s1, one, 4)));
}

static void test_losses(void **st) {
    (void)st;
    double p[] = {0.9, 0.2};
    float y[] = {1, 0};
    assert_true(fabs(ml_logloss(p, y, 2) - (-(log(0.9) + log(0.8)) / 2)) < 1e-12);
    assert_true(fabs(ml_brier(p, y, 2) - (0.01 + 0.04) / 2) < 1e-12);
    /* ECE: bins 9 (0.9, label 1) and 2 (0.2, label 0): |1-0.9|/2 + |0-0.2|/2 */
    assert_true(fabs(ml_ece(p, y, 2, 10) - 0.15) < 1e-12);
    double r[] = {1, 3};
    float t[] = {2, 2};
    assert_true(fabs(ml_rmse(r, t, 2) - 1) < 1e-12);
    assert_true(fabs(ml_mae(r, t, 2) - 1) < 1e-12);
}

/* A reliability diagram worked by hand: 6 rows over 10 bins.
 *   bin 0 [0.0,0.1): 0.05 (y 0)            count 1, mean 0.05,  observed 0
 *   bin 1 [0.1,0.2): 0.15 (y 1), 0.12 (0)  count 2, mean 0.135, observed 0.5
 *   bin 5 [0.5,0.6): 0.55 (y 0)            count 1, mean 0.55,  observed 0
 *   bin 9 [0.9,1.0]: 0.95 (y 1), 1.0 (1)   count 2, mean 0.975, observed 1
 * ECE = (1*0.05 + 2*0.365 + 1*0.55 + 2*0.025) / 6 = 1.38 / 6 = 0.23 */
static void test_calibration(void **st) {
    (void)st;
    double p[] = {0.05, 0.15, 0.12, 0.95, 1.0, 0.55};
    float y[] = {0, 1, 0, 1, 1, 0};
    ml_calib_bin c[10];
    assert_int_equal(ml_calibration(p, y, 6, 10, c), 0);
    static const size_t count[10] = {1, 2, 0, 0, 0, 1, 0, 0, 0, 2};
    static const double mean[10] = {0.05, 0.135, 0, 0, 0, 0.55, 0, 0, 0, 0.975};
    static const double obs[10] = {0, 0.5, 0, 0, 0, 0, 0, 0, 0, 1};
    for (int b = 0; b < 10; b++) {
        assert_true(fabs(c[b].lo - b / 10.0) < 1e-12 && fabs(c[b].hi - (b + 1) / 10.0) < 1e-12);
        assert_int_equal(c[b].count, count[b]);
        if (!count[b]) {
            assert_true(isnan(c[b].mean_pred) && isnan(c[b].observed));
            continue;
        }
        assert_true(fabs(c[b].mean_pred - mean[b]) < 1e-12);
        assert_true(fabs(c[b].observed - obs[b]) < 1e-12);
    }
    assert_true(fabs(ml_ece(p, y, 6, 10) - 0.23) < 1e-12);
    assert_int_equal(ml_calibration(p, y, 6, 0, c), -1);
    assert_true(ml_calibration_json(p, y, 6, ML_CALIB_MAX_BINS + 1) == NULL);

    /* as JSON: ten objects, null rates for empty bins, one line when compact */
    json_t *j = ml_calibration_json(p, y, 6, 10);
    assert_non_null(j);
    assert_int_equal(json_array_size(j), 10);
    json_t *b1 = json_array_get(j, 1);
    assert_int_equal(json_integer_value(json_object_get(b1, "count")), 2);
    assert_true(fabs(json_real_value(json_object_get(b1, "mean_pred")) - 0.135) < 1e-12);
    assert_true(fabs(json_real_value(json_object_get(b1, "observed")) - 0.5) < 1e-12);
    assert_true(fabs(json_real_value(json_object_get(b1, "lo")) - 0.1) < 1e-12);
    assert_true(json_is_null(json_object_get(json_array_get(j, 2), "mean_pred")));
    assert_true(json_is_null(json_object_get(json_array_get(j, 2), "observed")));
    char *s = json_dumps(j, JSON_COMPACT);
    assert_non_null(s);
    assert_null(strchr(s, '\n'));
    free(s);
    json_decref(j);
}

/* ml_format_g15 writes what printf's %.15g writes: random doubles over
 * every magnitude the fast path covers and beyond, values a rounding
 * boundary away, and the special ones. */
static void test_format_g15(void **st) {
    (void)st;
    char a[ML_G15_LEN], b[64];
    uint64_t r = 0x9E3779B97F4A7C15ull;
    static const double special[] = {0.0, -0.0, 1.0, -1.0, 0.5, 1e-4, 9.99999999999999e-5, 1e15, 999999999999999.5,
                                     99999999999999.95, 0.1, 0.30000000000000004, 123456789012345.6, 1e300, -1e-300,
                                     5e-324, NAN, INFINITY, -INFINITY, 0.99999999999999994, 9.9999999999999995e-5};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        int n = ml_format_g15(special[i], a);
        snprintf(b, sizeof b, "%.15g", special[i]);
        assert_string_equal(a, b);
        assert_int_equal(n, (int)strlen(b));
    }
    for (int i = 0; i < 3000000; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        double x;
        if (i % 3 == 0) { /* any bit pattern in a range of exponents */
            uint64_t bits = (r & 0x800FFFFFFFFFFFFFull) | ((uint64_t)(1023 - 20 + (r >> 52) % 75) << 52);
            memcpy(&x, &bits, sizeof x);
        } else if (i % 3 == 1) { /* probabilities and margins, as served */
            x = (double)(r >> 11) / 9007199254740992.0 * ((r & 1) ? 20 : 1) - ((r & 2) ? 10 : 0);
        } else { /* short decimals, where halfway cases live */
            x = (double)(r % 100000000000000000ull) / 1e9 / (double)(1 + (r >> 60));
        }
        ml_format_g15(x, a);
        snprintf(b, sizeof b, "%.15g", x);
        if (strcmp(a, b) != 0) fail_msg("%.17g: %s != %s", x, a, b);
    }
}

static void test_parse_number(void **st) {
    (void)st;
    double d;
    assert_int_equal(ml_parse_number("$1,250.50", &d), 0);
    assert_true(d == 1250.5);
    assert_int_equal(ml_parse_number("-3e2", &d), 0);
    assert_true(d == -300);
    assert_int_equal(ml_parse_number("12%", &d), 0);
    assert_int_equal(ml_parse_number("inf", &d), -1);
    assert_int_equal(ml_parse_number("nan", &d), -1);
    assert_int_equal(ml_parse_number("0x10", &d), -1);
    assert_int_equal(ml_parse_number("12 apples", &d), -1);
    assert_int_equal(ml_parse_number("", &d), -1);
    assert_true(ml_is_missing("NA") && ml_is_missing("") && ml_is_missing("?") && !ml_is_missing("0"));
}

/* ---- schema ---- */

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_schema(void **st) {
    (void)st;
    char path[512], err[ML_ERR_LEN];
    snprintf(path, sizeof path, "%s/s.csv", tmpdir);
    /* id: all distinct -> left out; const: one value -> left out; color:
     * categorical; size: numeric with a missing value; y: label */
    char text[8192] = "id,color,size,const,y\n";
    for (int i = 0; i < 120; i++) {
        char row[128];
        const char *color = i % 3 == 0 ? "red" : i % 3 == 1 ? "blue" : (i == 2 ? "mauve" : "green");
        snprintf(row, sizeof row, "u%d,%s,%s,k,%s\n", i, color, i == 5 ? "NA" : (i % 2 ? "1.5" : "\"$2,000\""), i % 2 ? "yes" : "no");
        strcat(text, row);
    }
    write_file(path, text);
    ml_table *t = ml_table_read(path, err, sizeof err);
    assert_non_null(t);
    assert_int_equal(ml_table_rows(t), 120);
    ml_infer_opts o = {.label = "y"};
    ml_schema *s = ml_schema_infer(t, &o, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(ml_schema_features(s), 2);
    assert_string_equal(ml_schema_feature(s, 0), "color");
    assert_int_equal(ml_schema_kind(s, 0), ML_CATEGORICAL);
    assert_string_equal(ml_schema_feature(s, 1), "size");
    assert_int_equal(ml_schema_width(s), 4); /* blue, green, red + size ("mauve" is rare: other) */
    assert_string_equal(ml_schema_col_name(s, 0), "color=blue");

    float x[4];
    json_t *f = json_pack("{s:s}", "color", "red"); /* size absent: an error, not a silent NaN */
    assert_int_equal(ml_encode_json(s, f, x, err, sizeof err), -1);
    assert_non_null(strstr(err, "\"size\" is missing"));
    json_decref(f);
    f = json_pack("{s:s, s:f}", "color", "red", "size", 3.0);
    assert_int_equal(ml_encode_json(s, f, x, err, sizeof err), 0);
    assert_true(x[0] == 0 && x[1] == 0 && x[2] == 1 && x[3] == 3.0f);
    json_decref(f);
    f = json_pack("{s:s, s:n}", "color", "mauve", "size"); /* seen but rare: all zeros; size null */
    assert_int_equal(ml_encode_json(s, f, x, err, sizeof err), 0);
    assert_true(x[0] == 0 && x[1] == 0 && x[2] == 0 && isnan(x[3]));
    json_decref(f);
    f = json_pack("{s:s, s:n}", "color", "purple", "size"); /* never seen: error by default */
    assert_int_equal(ml_encode_json(s, f, x, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown category"));
    json_decref(f);
    f = json_pack("{s:s, s:s, s:n}", "color", "red", "colour", "red", "size"); /* a typo is an error */
    assert_int_equal(ml_encode_json(s, f, x, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown feature"));
    json_decref(f);
    f = json_pack("{s:n, s:s}", "color", "size", "big");
    assert_int_equal(ml_encode_json(s, f, x, err, sizeof err), -1);
    json_decref(f);
    f = json_pack("{s:n, s:n}", "color", "size"); /* null: missing, NaN across the one-hot */
    assert_int_equal(ml_encode_json(s, f, x, err, sizeof err), 0);
    assert_true(isnan(x[0]) && isnan(x[1]) && isnan(x[2]));
    json_decref(f);

    /* the JSON form round-trips */
    json_t *j = ml_schema_to_json(s);
    ml_schema *s2 = ml_schema_from_json(j, err, sizeof err);
    assert_non_null(s2);
    assert_int_equal(ml_schema_width(s2), 4);
    assert_string_equal(ml_schema_col_name(s2, 2), "color=red");
    json_decref(j);
    ml_schema_free(s2);
    ml_schema_free(s);
    ml_table_free(t);
}

/* ---- training + serving vs XGBoost ---- */

static json_t *train(const char *data, const char *label, const char *drop, int regression, int log_target,
                     uint64_t seed, const char *name) {
    char err[ML_ERR_LEN];
    ml_train_opts o = {.data = data, .label = label, .drop = drop, .model = name, .out = tmpdir,
                       .regression = regression, .log_target = log_target, .seed = seed, .nthread = 2};
    json_t *rep = NULL;
    if (ml_train(&o, &rep, err, sizeof err)) fail_msg("train: %s", err);
    return rep;
}

/* Compares our margins and SHAP values with XGBoost's own predictions on
 * every row of the data set. */
static void check_against_xgboost(const char *data, json_t *rep) {
    char err[ML_ERR_LEN], path[1024];
    const char *dir = json_string_value(json_object_get(rep, "dir"));
    ml_model *m = ml_model_load(dir, err, sizeof err);
    if (!m) fail_msg("load: %s", err);
    ml_table *t = ml_table_read(data, err, sizeof err);
    assert_non_null(t);
    const ml_schema *s = ml_model_schema(m);
    int w = ml_schema_width(s), nf = ml_schema_features(s);
    size_t n = ml_table_rows(t);
    if (n > 3000) n = 3000;
    int *colmap = malloc((size_t)nf * sizeof *colmap);
    float *X = malloc(n * (size_t)w * sizeof *X);
    assert_int_equal(ml_schema_map_table(s, t, colmap, 1, err, sizeof err), 0);
    for (size_t r = 0; r < n; r++) ml_encode_table_row(s, t, colmap, r, X + r * (size_t)w);

    BoosterHandle b;
    assert_int_equal(XGBoosterCreate(NULL, 0, &b), 0);
    snprintf(path, sizeof path, "%s/model.json", dir);
    assert_int_equal(XGBoosterLoadModel(b, path), 0);
    XGBoosterSetParam(b, "nthread", "2");
    DMatrixHandle dm;
    assert_int_equal(XGDMatrixCreateFromMat(X, n, (bst_ulong)w, NAN, &dm), 0);
    const bst_ulong *shape;
    bst_ulong dim;
    const float *margin, *contrib;
    assert_int_equal(XGBoosterPredictFromDMatrix(b, dm, "{\"type\":1,\"training\":false,\"iteration_begin\":0,"
                                                 "\"iteration_end\":0,\"strict_shape\":false}",
                                                 &shape, &dim, &margin), 0);
    float *mg = malloc(n * sizeof *mg);
    memcpy(mg, margin, n * sizeof *mg);
    assert_int_equal(XGBoosterPredictFromDMatrix(b, dm, "{\"type\":2,\"training\":false,\"iteration_begin\":0,"
                                                 "\"iteration_end\":0,\"strict_shape\":false}",
                                                 &shape, &dim, &contrib), 0);
    assert_int_equal(shape[1], (bst_ulong)w + 1);
    /* the flat walkers against the plain one, bit for bit: one row at a
     * time, and in blocks (n is not a multiple of the block, so a partial
     * block is covered too) */
    double *batch = malloc(n * sizeof *batch);
    ml_model_margins(m, X, n, batch);
    for (size_t r = 0; r < n; r++) {
        double ref = ml_model_margin_reference(m, X + r * (size_t)w);
        if (memcmp(&ref, &batch[r], sizeof ref) != 0) fail_msg("row %zu: batch margin %.17g != %.17g", r, batch[r], ref);
        double one = ml_model_margin(m, X + r * (size_t)w);
        if (memcmp(&ref, &one, sizeof ref) != 0) fail_msg("row %zu: margin %.17g != %.17g", r, one, ref);
    }
    ml_model_margins(m, X + 1, 0, batch); /* no rows: nothing written */
    free(batch);
    double *phi = malloc((size_t)w * sizeof *phi), base, worst_m = 0, worst_s = 0, worst_add = 0;
    for (size_t r = 0; r < n; r++) {
        const float *x = X + r * (size_t)w;
        double ours = ml_model_margin(m, x);
        worst_m = fmax(worst_m, fabs(ours - mg[r]));
        ml_model_shap(m, x, phi, &base);
        double sum = base;
        for (int c = 0; c < w; c++) {
            sum += phi[c];
            worst_s = fmax(worst_s, fabs(phi[c] - contrib[r * ((size_t)w + 1) + (size_t)c]));
        }
        worst_s = fmax(worst_s, fabs(base - contrib[r * ((size_t)w + 1) + (size_t)w]));
        worst_add = fmax(worst_add, fabs(sum - ours));
    }
    /* the table-driven TreeSHAP against the recursive one, and their speed */
    double *phi2 = malloc((size_t)w * sizeof *phi2), base2, worst_fr = 0;
    struct timespec a, b2, c2;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (size_t r = 0; r < n; r++) ml_model_shap(m, X + r * (size_t)w, phi, &base);
    clock_gettime(CLOCK_MONOTONIC, &b2);
    for (size_t r = 0; r < n; r++) ml_model_shap_recursive(m, X + r * (size_t)w, phi2, &base2);
    clock_gettime(CLOCK_MONOTONIC, &c2);
    for (size_t r = 0; r < n; r += 7) {
        ml_model_shap(m, X + r * (size_t)w, phi, &base);
        ml_model_shap_recursive(m, X + r * (size_t)w, phi2, &base2);
        for (int c = 0; c < w; c++) worst_fr = fmax(worst_fr, fabs(phi[c] - phi2[c]));
    }
    double us_fast = ((b2.tv_sec - a.tv_sec) * 1e9 + (b2.tv_nsec - a.tv_nsec)) / 1e3 / (double)n;
    double us_rec = ((c2.tv_sec - b2.tv_sec) * 1e9 + (c2.tv_nsec - b2.tv_nsec)) / 1e3 / (double)n;
    printf("# %s: TreeSHAP %.1f µs/row (tables) vs %.1f µs/row (recursive); max difference %.2g\n",
           json_string_value(json_object_get(rep, "model")), us_fast, us_rec, worst_fr);
    /* the tables hold floats (see leaf_add): each contribution is within
     * float rounding of the recursive algorithm's; additivity, checked
     * below, stays exact to double rounding */
    assert_true(worst_fr < 1e-6);
    free(phi2);
    printf("# %s: %zu rows, %d trees: max |margin diff| %.2g, max |shap diff| %.2g, max additivity error %.2g\n",
           json_string_value(json_object_get(rep, "model")), n, ml_model_trees(m), worst_m, worst_s, worst_add);
    assert_true(worst_m < 1e-4);
    assert_true(worst_s < 1e-5 * 10); /* XGBoost sums in float; 1e-5 relative to margins ~1 */
    assert_true(worst_add < 1e-6);
    free(phi);
    free(mg);
    XGDMatrixFree(dm);
    XGBoosterFree(b);
    free(X);
    free(colmap);
    ml_table_free(t);
    ml_model_free(m);
}

static void test_walker_and_shap_match_xgboost(void **st) {
    (void)st;
    char p1[1024], p2[1024];
    data_path("property/Sacramento.csv", p1, sizeof p1);
    data_path("churn/wa_churn.csv", p2, sizeof p2);
    if (access(p1, R_OK) || access(p2, R_OK)) skip();
    json_t *r1 = train(p1, "price", NULL, 1, 1, 7, "sac");
    check_against_xgboost(p1, r1);
    json_decref(r1);
    json_t *r2 = train(p2, "churn", NULL, 0, 0, 7, "churn");
    check_against_xgboost(p2, r2);
    json_decref(r2);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    b[n] = 0;
    fclose(f);
    return b;
}

static void test_reproducible(void **st) {
    (void)st;
    char p[1024], a[1200], b[1200];
    data_path("churn/wa_churn.csv", p, sizeof p);
    if (access(p, R_OK)) skip();
    json_t *r1 = train(p, "churn", NULL, 0, 0, 11, "repro");
    json_t *r2 = train(p, "churn", NULL, 0, 0, 11, "repro");
    assert_int_equal(json_integer_value(json_object_get(r1, "version")) + 1,
                     json_integer_value(json_object_get(r2, "version")));
    snprintf(a, sizeof a, "%s/model.json", json_string_value(json_object_get(r1, "dir")));
    snprintf(b, sizeof b, "%s/model.json", json_string_value(json_object_get(r2, "dir")));
    char *ta = slurp(a), *tb = slurp(b);
    assert_non_null(ta);
    assert_non_null(tb);
    assert_string_equal(ta, tb); /* same seed, same bytes */
    assert_true(json_real_value(json_object_get(r1, "auc")) == json_real_value(json_object_get(r2, "auc")));
    /* the calibration bins cover every held-out row and give back the ECE */
    json_t *met = json_object_get(r1, "metrics"), *cal = json_object_get(met, "calibration");
    assert_int_equal(json_array_size(cal), 10);
    assert_null(json_object_get(r1, "calibration")); /* not among the headline numbers */
    json_int_t rows = 0;
    double ece = 0;
    size_t i;
    json_t *bin;
    json_array_foreach(cal, i, bin) {
        json_int_t c = json_integer_value(json_object_get(bin, "count"));
        rows += c;
        if (c) ece += (double)c * fabs(json_real_value(json_object_get(bin, "observed")) -
                                       json_real_value(json_object_get(bin, "mean_pred")));
    }
    assert_int_equal(rows, json_integer_value(json_object_get(r1, "test_rows")));
    assert_true(fabs(ece / (double)rows - json_real_value(json_object_get(met, "ece"))) < 1e-9);
    free(ta);
    free(tb);
    json_decref(r1);
    json_decref(r2);
}

static void test_train_errors(void **st) {
    (void)st;
    char path[512], err[ML_ERR_LEN];
    json_t *rep;
    snprintf(path, sizeof path, "%s/e.csv", tmpdir);
    write_file(path, "a,b,y\n1,2,maybe\n3,4,yes\n5,6,no\n");
    ml_train_opts o = {.data = path, .label = "y", .model = "bad", .out = tmpdir};
    assert_int_equal(ml_train(&o, &rep, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than two values"));
    o.label = "nope";
    assert_int_equal(ml_train(&o, &rep, err, sizeof err), -1);
    assert_non_null(strstr(err, "no column"));
    o.label = "y";
    o.model = "Bad Name";
    assert_int_equal(ml_train(&o, &rep, err, sizeof err), -1);
    o.model = "ok";
    o.data = "/nonexistent.csv";
    assert_int_equal(ml_train(&o, &rep, err, sizeof err), -1);
    assert_non_null(strstr(err, "nonexistent"));
}

/* Drift: the training data itself is stable; shifting one feature moves its
 * PSI and not the others'. */
static void test_drift(void **st) {
    (void)st;
    char p[1024], err[ML_ERR_LEN];
    data_path("churn/wa_churn.csv", p, sizeof p);
    if (access(p, R_OK)) skip();
    json_t *rep = train(p, "churn", NULL, 0, 0, 5, "drift");
    ml_model *m = ml_model_load(json_string_value(json_object_get(rep, "dir")), err, sizeof err);
    assert_non_null(m);
    ml_table *t = ml_table_read(p, err, sizeof err);
    const ml_schema *s = ml_model_schema(m);
    int w = ml_schema_width(s), tenure = -1, contract = -1;
    for (int f = 0; f < ml_schema_features(s); f++) {
        if (!strcmp(ml_schema_feature(s, f), "tenure")) tenure = f;
        if (!strcmp(ml_schema_feature(s, f), "contract")) contract = f;
    }
    assert_true(tenure >= 0 && contract >= 0);
    int *colmap = malloc((size_t)ml_schema_features(s) * sizeof *colmap);
    float *x = malloc((size_t)w * sizeof *x);
    ml_schema_map_table(s, t, colmap, 1, err, sizeof err);
    ml_drift *same = ml_drift_new(m), *shifted = ml_drift_new(m);
    assert_non_null(same);
    int tcol = -1;
    for (int c = 0; c < w; c++)
        if (ml_schema_owner(s, c) == tenure) tcol = c;
    for (size_t r = 0; r < ml_table_rows(t); r++) {
        ml_encode_table_row(s, t, colmap, r, x);
        ml_drift_add(same, x);
        x[tcol] += 40; /* everyone a long-time customer */
        ml_drift_add(shifted, x);
    }
    printf("# PSI tenure: same %.4f, shifted %.4f; contract: same %.4f, shifted %.4f\n", ml_drift_psi(same, tenure),
           ml_drift_psi(shifted, tenure), ml_drift_psi(same, contract), ml_drift_psi(shifted, contract));
    assert_true(ml_drift_psi(same, tenure) < 0.05);
    assert_true(ml_drift_psi(same, contract) < 0.05);
    assert_true(ml_drift_psi(shifted, tenure) > 0.25);
    assert_true(ml_drift_psi(shifted, contract) < 0.05);
    /* a 0/1 feature ties its deciles: measured against each bin's recorded
     * share of the training rows, its own rows are stable; a schema.json
     * of an earlier release, with edges only, leaves it unmeasured */
    int senior = -1;
    for (int f = 0; f < ml_schema_features(s); f++)
        if (!strcmp(ml_schema_feature(s, f), "senior_citizen")) senior = f;
    assert_true(senior >= 0);
    printf("# PSI senior_citizen (tied deciles): same %.4f\n", ml_drift_psi(same, senior));
    assert_true(ml_drift_psi(same, senior) < 0.05);
    char path[1200];
    snprintf(path, sizeof path, "%s/schema.json", json_string_value(json_object_get(rep, "dir")));
    json_t *schema = json_load_file(path, 0, NULL);
    assert_non_null(schema);
    const char *fname;
    json_t *fd;
    json_object_foreach(json_object_get(schema, "training_distribution"), fname, fd) json_object_del(fd, "fractions");
    snprintf(path, sizeof path, "%s/model.json", json_string_value(json_object_get(rep, "dir")));
    size_t len;
    char *xgb = ml_read_file(path, (size_t)1 << 28, &len, err, sizeof err);
    assert_non_null(xgb);
    ml_model *old = ml_model_from_json(xgb, len, schema, err, sizeof err);
    assert_non_null(old);
    ml_drift *od = ml_drift_new(old);
    assert_non_null(od);
    for (size_t r = 0; r < ml_table_rows(t); r++) {
        ml_encode_table_row(s, t, colmap, r, x);
        ml_drift_add(od, x);
    }
    assert_true(isnan(ml_drift_psi(od, senior)));
    assert_true(ml_drift_psi(od, tenure) < 0.05); /* distinct deciles: a tenth each, as before */
    ml_drift_free(od);
    ml_model_free(old);
    eh_free(xgb);
    json_decref(schema);
    ml_drift_merge(same, shifted);
    assert_int_equal(ml_drift_rows(same), 2 * ml_table_rows(t));
    ml_drift_free(same);
    ml_drift_free(shifted);
    free(colmap);
    free(x);
    ml_table_free(t);
    ml_model_free(m);
    json_decref(rep);
}

/* ---- quality floors (issue: ML engine) ---- */

static double mean_metric(const char *rel, const char *label, const char *drop, int regression, const char *key) {
    char p[1024];
    data_path(rel, p, sizeof p);
    if (access(p, R_OK)) return NAN;
    double sum = 0;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        json_t *r = train(p, label, drop, regression, regression, seed, "floor");
        sum += json_real_value(json_object_get(r, key));
        json_decref(r);
    }
    printf("# %s: mean %s over 5 splits = %.4f\n", rel, key, sum / 5);
    return sum / 5;
}

static void test_quality_bank_marketing(void **st) {
    (void)st;
    double auc = mean_metric("leads/bank_marketing.csv", "output", "duration", 0, "auc");
    if (isnan(auc)) skip();
    assert_true(auc >= 0.77);
}

static void test_quality_churn(void **st) {
    (void)st;
    double auc = mean_metric("churn/wa_churn.csv", "churn", NULL, 0, "auc");
    if (isnan(auc)) skip();
    assert_true(auc >= 0.84);
}

static void test_quality_sacramento(void **st) {
    (void)st;
    double rmse = mean_metric("property/Sacramento.csv", "price", NULL, 1, "rmse");
    if (isnan(rmse)) skip();
    assert_true(rmse <= 0.38);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auc),
        cmocka_unit_test(test_body_strings),
        cmocka_unit_test(test_losses),
        cmocka_unit_test(test_parse_number),
        cmocka_unit_test(test_format_g15),
        cmocka_unit_test(test_schema),
        cmocka_unit_test(test_walker_and_shap_match_xgboost),
        cmocka_unit_test(test_reproducible),
        cmocka_unit_test(test_train_errors),
        cmocka_unit_test(test_calibration),
        cmocka_unit_test(test_drift),
        cmocka_unit_test(test_quality_bank_marketing),
        cmocka_unit_test(test_quality_churn),
        cmocka_unit_test(test_quality_sacramento),
    };
    /* EHUB_TEST_FILTER=test_walker* runs only the matching tests (cmocka's glob) */
    if (getenv("EHUB_TEST_FILTER")) cmocka_set_test_filter(getenv("EHUB_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
