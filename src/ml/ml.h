/* ml — gradient-boosted models, trained and served in C.
 *
 * The pipeline, in the order data flows through it:
 *   ml_table   a CSV read into memory as strings (header + cells)
 *   ml_schema  which columns are features, numeric or categorical (with a
 *              vocabulary), inferred from a table or read from schema.json;
 *              it turns raw values (CSV cells or JSON fields) into the dense
 *              float row the trees read (numeric as is, NaN for missing,
 *              categoricals one-hot over their vocabulary)
 *   ml_train   a seeded stratified split, XGBoost training with early
 *              stopping on a validation fold, honest metrics on the held-out
 *              part, and a model directory: model.json (XGBoost's own JSON,
 *              loadable by Python/R XGBoost), schema.json, metrics.json
 *   ml_model   a loaded model for serving: the trees flattened into arrays
 *              and walked directly (a few µs per row, no XGBoost call on the
 *              request path), with exact TreeSHAP explanations per raw
 *              feature (the one-hot columns of a categorical are summed)
 *
 * Every function reports failure through its return value and an error
 * text; nothing here logs or exits. Tables, schemas and models are owned by
 * their creator; a loaded ml_model is immutable and may be shared by any
 * number of threads. */
#ifndef EH_ML_H
#define EH_ML_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define ML_ERR_LEN 256

/* ---- tables ---- */

typedef struct ml_table ml_table;

/* Reads a CSV file with a header row (',' ';' or tab, detected from the
 * header). Rows with a different number of fields than the header are
 * skipped and counted (ml_table_skipped). Returns NULL with err set. */
ml_table *ml_table_read(const char *path, char *err, size_t errlen);
void ml_table_free(ml_table *t);
size_t ml_table_rows(const ml_table *t);
size_t ml_table_cols(const ml_table *t);
size_t ml_table_skipped(const ml_table *t);
const char *ml_table_name(const ml_table *t, size_t col);
/* -1 if there is no such column. */
int ml_table_col(const ml_table *t, const char *name);
/* The cell, trimmed of surrounding blanks; never NULL. */
const char *ml_table_cell(const ml_table *t, size_t row, size_t col);

/* "", NA, N/A, NaN, null, None, ? (any case): a missing value. */
int ml_is_missing(const char *s);
/* Parses a whole cell as a finite number ("$1,250.50" and "12%" too).
 * Returns 0 on success. */
int ml_parse_number(const char *s, double *out);
/* x as printf's "%.15g" writes it, into out (NUL-terminated); returns the
 * length. Scores and contributions are written this way by the thousand:
 * the common range is done with integer arithmetic, the rest by snprintf. */
#define ML_G15_LEN 32
int ml_format_g15(double x, char out[ML_G15_LEN]);

/* ---- schemas ---- */

typedef struct ml_schema ml_schema;

typedef enum { ML_NUMERIC = 0, ML_CATEGORICAL = 1 } ml_kind;

/* What to do with a category the model never saw in training. */
typedef enum { ML_UNKNOWN_ERROR = 0, ML_UNKNOWN_MISSING = 1 } ml_unknown;

typedef struct ml_infer_opts {
    const char *label;      /* the label column (left out of the features) */
    const char *drop;       /* comma-separated columns to leave out, or NULL */
    int max_categories;     /* one-hot columns per categorical; default 64 */
    int min_category_count; /* rarer categories share the "other" (all-zero) code; default 5 */
    ml_unknown unknown;     /* policy recorded for unseen categories */
} ml_infer_opts;

/* Infers a schema from a table: a column whose non-missing cells all parse
 * as numbers is numeric, any other is categorical. A categorical column
 * with one distinct value, or whose values are all distinct (an id), is
 * left out, and so is a column that is missing everywhere. */
ml_schema *ml_schema_infer(const ml_table *t, const ml_infer_opts *o, char *err, size_t errlen);
void ml_schema_free(ml_schema *s);
/* Raw features (table columns used) and encoded width (floats per row). */
int ml_schema_features(const ml_schema *s);
int ml_schema_width(const ml_schema *s);
const char *ml_schema_feature(const ml_schema *s, int i);
ml_kind ml_schema_kind(const ml_schema *s, int i);
/* The raw feature an encoded column belongs to. */
int ml_schema_owner(const ml_schema *s, int col);
/* "age" or "job=admin." — the encoded column's name. */
const char *ml_schema_col_name(const ml_schema *s, int col);

json_t *ml_schema_to_json(const ml_schema *s);
ml_schema *ml_schema_from_json(const json_t *j, char *err, size_t errlen);

/* Encodes table row r into out[width]. Unknown categories follow the
 * schema's policy as missing (tables are trusted training/scoring input). */
void ml_encode_table_row(const ml_schema *s, const ml_table *t, const int *colmap, size_t r, float *out);
/* colmap[i] = table column of raw feature i, or -1 when absent (then
 * missing). Returns 0, or -1 with err naming the first feature missing from
 * the table when require_all is set. */
int ml_schema_map_table(const ml_schema *s, const ml_table *t, int *colmap, int require_all, char *err,
                        size_t errlen);

/* Encodes a JSON object of raw features into out[width]. Every feature
 * must be present; null means missing; numbers must be JSON numbers (or numeric strings) and
 * finite; categorical values strings (or numbers, read as their text).
 * Unknown keys are an error, so a typo cannot silently score as missing.
 * Returns 0, or -1 with err saying which feature is wrong and why. */
int ml_encode_json(const ml_schema *s, const json_t *features, float *out, char *err, size_t errlen);

/* One raw value, as the encoders see it (from jansson or from the batch
 * parser). */
typedef enum { ML_V_NULL, ML_V_INT, ML_V_REAL, ML_V_BOOL, ML_V_STRING, ML_V_OTHER } ml_vtype;
typedef struct ml_value {
    ml_vtype type; /* ML_V_OTHER: an array or object, never valid */
    long long i;   /* INT, BOOL */
    double d;      /* REAL */
    const char *s; /* STRING, NUL-terminated */
} ml_value;

/* Raw feature index by name, -1 if unknown. */
int ml_schema_find(const ml_schema *s, const char *name);
/* Sets out[width] to "all missing", then each present feature through
 * ml_encode_value (same rules as ml_encode_json). */
void ml_encode_begin(const ml_schema *s, float *out);
int ml_encode_value(const ml_schema *s, int feature, const ml_value *v, float *out, char *err, size_t errlen);

/* Batch requests parsed straight from the bytes into encoded rows, without
 * building a JSON tree (batch.c): {"model": NAME, "rows": [{...}, ...]}.
 * ml_batch_model finds the top-level "model" string (name[65]); returns 0,
 * or -1 (400: not JSON, or no model string) with err. */
int ml_batch_model(const char *json, size_t len, char name[65], char *err, size_t errlen);
/* The fast path of a single /predict: 1 with name set when the body's first
 * key is "model" with a string of at most 64 bytes, else 0 (the caller then
 * uses ml_batch_model). Reads only that far: ml_read_predict, which parses
 * the whole body, checks the rest (and rejects a second "model"). */
int ml_predict_model(const char *json, size_t len, char name[65]);
/* Encodes every row into *X (rows x width floats, the caller frees with
 * eh_free); at most max_rows. Returns 0, or the HTTP status of the problem
 * (400 malformed JSON, 413 too many rows, 422 a bad row: err says which)
 * with *X NULL. */
int ml_batch_rows(const ml_schema *s, const char *json, size_t len, size_t max_rows, float **X, size_t *nrows,
                  char *err, size_t errlen);

/* A /predict body read the same way into x[width]; *explain from
 * "explain": true. Returns 0 or an HTTP status (400, 422) with err. */
int ml_read_predict(const ml_schema *s, const char *json, size_t len, float *x, int *explain, char *err,
                    size_t errlen);

/* ---- metrics ---- */

/* label: 0/1. Ties in score are handled (average rank). NaN if one class
 * is absent. */
double ml_auc(const double *score, const float *label, size_t n);
double ml_logloss(const double *p, const float *label, size_t n);
double ml_brier(const double *p, const float *label, size_t n);
/* Expected calibration error over `bins` equal-width probability bins. */
double ml_ece(const double *p, const float *label, size_t n, int bins);

/* One equal-width probability bin [lo, hi) (the last one includes 1): how
 * many rows fell in it, their mean predicted probability and the observed
 * share of positives (both NaN for an empty bin). */
typedef struct ml_calib_bin {
    double lo, hi;
    size_t count;
    double mean_pred, observed;
} ml_calib_bin;

#define ML_CALIB_MAX_BINS 1000

/* Fills out[0..bins) for a reliability diagram; ECE is
 * sum(count * |observed - mean_pred|) / n over them. Returns 0, or -1 when
 * bins is outside 1..ML_CALIB_MAX_BINS. */
int ml_calibration(const double *p, const float *label, size_t n, int bins, ml_calib_bin *out);

/* The same bins as a JSON array of {lo, hi, count, mean_pred, observed}
 * (null for an empty bin's rates), or NULL. */
json_t *ml_calibration_json(const double *p, const float *label, size_t n, int bins);
double ml_rmse(const double *pred, const float *y, size_t n);
double ml_mae(const double *pred, const float *y, size_t n);

/* ---- training ---- */

/* Model names: 1-64 of a-z 0-9 _ - */
int ml_name_valid(const char *name);

typedef struct ml_train_opts {
    const char *data;     /* CSV path */
    const char *label;
    const char *positive; /* classification: the label value that is 1 (NULL: inferred for yes/no, 1/0, true/false) */
    const char *drop;     /* comma-separated columns to leave out */
    const char *model;    /* model name: [a-z0-9_-]{1,64} */
    const char *out;      /* models directory; the model goes to OUT/NAME/vN */
    const char *trained_by;
    int regression;
    int log_target;       /* regression on log(y) (y > 0 required) */
    uint64_t seed;        /* split and sampling seed */
    int nthread;          /* 0: all cores but one */
    double test_fraction; /* default 0.25 */
    int max_rounds;       /* default 2000 */
    int early_stopping;   /* rounds without improvement on the validation fold; default 50 */
    double eta;           /* default 0.05 */
    int max_depth;        /* default 4 */
} ml_train_opts;

/* Trains, evaluates and saves a model. On success *report holds what
 * metrics.json holds (model, version, dir, rows, features, metrics...). */
int ml_train(const ml_train_opts *o, json_t **report, char *err, size_t errlen);

/* Imports a model trained elsewhere (Python/R XGBoost: save_model to
 * .json) with a schema.json naming its features in column order, as
 * OUT/NAME/vN, after loading it exactly as the server will. */
int ml_import(const char *out, const char *name, const char *model_path, const char *schema_path, json_t **report,
              char *err, size_t errlen);

/* ---- serving ---- */

typedef struct ml_model ml_model;

/* A whole file, NUL-terminated (eh_free it); at most max bytes. NULL with
 * err ("cannot read PATH: why"). */
char *ml_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);

/* The newest version under a model's directory (NAME/vN), 0 if none. */
int ml_newest_version(const char *model_dir);
/* The version to serve: the one NAME/active names, else the newest; 0 if
 * none. */
int ml_active_version(const char *model_dir);
/* Records NAME/active (replaced atomically by rename). 0 or -1 (errno). */
int ml_set_active(const char *model_dir, int version);

/* Loads a model directory (model.json + schema.json [+ metrics.json]).
 * dir may also name a model's directory (OUT/NAME): its newest version is
 * loaded. */
ml_model *ml_model_load(const char *dir, char *err, size_t errlen);
/* From XGBoost JSON text and a schema (import of models trained elsewhere). */
ml_model *ml_model_from_json(const char *xgb_json, size_t len, const json_t *schema, char *err, size_t errlen);
void ml_model_free(ml_model *m);
const ml_schema *ml_model_schema(const ml_model *m);
int ml_model_is_regression(const ml_model *m);
int ml_model_log_target(const ml_model *m);
/* metrics.json, or NULL. Borrowed. */
const json_t *ml_model_info(const ml_model *m);
const char *ml_model_dir(const ml_model *m);
int ml_model_trees(const ml_model *m);
/* 1 when explanations use the per-leaf tables (tens of µs a row), 0 when
 * they fall back to the recursive algorithm (hundreds). */
int ml_model_fast_shap(const ml_model *m);

/* schema.json's training_distribution (NULL for imported models). */
const json_t *ml_model_training(const ml_model *m);

/* The raw margin (sum of leaves + base) of an encoded row. */
double ml_model_margin(const ml_model *m, const float *x);
/* The margins of n rows (X: n x width, row-major) into out[n]: the same
 * values bit for bit as ml_model_margin, evaluated a block of rows per
 * tree so each tree stays in L1. */
void ml_model_margins(const ml_model *m, const float *X, size_t n, double *out);
/* The plain recursive-free walker over the model's original node array,
 * one node at a time: kept as the reference the fast walkers are tested
 * against bit for bit. */
double ml_model_margin_reference(const ml_model *m, const float *x);
/* The score users see: a probability for classifiers, the prediction in the
 * original unit for regression (exp back for log targets). */
double ml_model_output(const ml_model *m, double margin);
/* Exact TreeSHAP: phi[width] per encoded column and *base (the expected
 * margin), with base + sum(phi) == margin. */
void ml_model_shap(const ml_model *m, const float *x, double *phi, double *base);
/* The same by the recursive TreeSHAP algorithm (Lundberg et al. 2018),
 * which ml_model_shap uses when the per-leaf tables would be too large
 * (deep trees); kept callable as the reference for the fast one. */
void ml_model_shap_recursive(const ml_model *m, const float *x, double *phi, double *base);

/* Scores a table into a CSV stream: the columns `score` (and `margin`),
 * one row per table row. Returns 0 or -1 with err. */
int ml_predict_table(const ml_model *m, const ml_table *t, FILE *out, char *err, size_t errlen);

/* ---- drift (drift.c) ----
 * Live feature distributions against the training rows', as the
 * population stability index per feature. Not thread-safe: one owner, or
 * one per job and ml_drift_merge on the owner's thread. */
typedef struct ml_drift ml_drift;
/* NULL when the model has no training distribution (imported) or OOM. */
ml_drift *ml_drift_new(const ml_model *m);
void ml_drift_free(ml_drift *d);
void ml_drift_add(ml_drift *d, const float *x);
void ml_drift_merge(ml_drift *into, const ml_drift *from);
uint64_t ml_drift_rows(const ml_drift *d);
/* PSI of raw feature i; NaN before any row. */
double ml_drift_psi(const ml_drift *d, int feature);

/* ---- serving over HTTP (serve.c) ----
 * Loads every model under DATA_DIR/models and registers /predict,
 * /batch-predict, /models, /stats (and /v1/...) and
 * /v1/models/{name}/activate. Sets a->ml; ml_serve_free releases it. */
struct app;
typedef struct ml_ctx ml_ctx;
int ml_serve_register(struct app *a);
void ml_serve_free(ml_ctx *c);

/* ---- command line (ehub train / ehub predict) ---- */

typedef struct ml_cli {
    ml_train_opts train;
    const char *model_dir; /* predict --model DIR */
    const char *output;    /* predict --output FILE (default stdout) */
    const char *builtin;   /* train --builtin NAME (with --tenant) */
    int json;
} ml_cli;

/* Takes the train/predict flags out of argv (--data, --label, --positive,
 * --regression, --log-target, --drop, --model, --out, --seed, --nthread,
 * --test-fraction, --json, --output) and leaves the rest (common options)
 * in rest[] as indexes. Returns 0, or -1 with err. */
int ml_cli_parse(int argc, char **argv, ml_cli *c, int *rest, int *nrest, char *err, size_t errlen);
extern const char ml_cli_train_help[], ml_cli_predict_help[];

#endif
