/* libFuzzer target for the model side of ml: an XGBoost JSON model from an
 * untrusted source (`model import`, a file dropped into the models
 * directory) and the features of a /predict request.
 *
 * Input: the first byte chooses whether the rest is a model or a features
 * object. A model is loaded against a fixed 4-feature schema; when it
 * loads, a few rows are scored and explained, and SHAP must stay additive.
 * A features object is encoded against a schema with numeric and
 * categorical fields; it either encodes or reports an error, never both.
 * ml_predict_model's name must be the body's "model" string. A batch body
 * is read by ml_batch_rows and, differentially, by jansson +
 * ml_encode_json: both must accept the same bodies and rows and produce
 * the same floats. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "ml/ml.h"

static const char schema_text[] =
    "{\"features\":[{\"name\":\"a\",\"type\":\"numeric\"},{\"name\":\"b\",\"type\":\"numeric\"},"
    "{\"name\":\"c\",\"type\":\"categorical\",\"categories\":[\"x\",\"y\"],\"other\":[\"z\"]},"
    "{\"name\":\"d\",\"type\":\"numeric\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    json_t *schema = json_loads(schema_text, 0, NULL);
    char err[ML_ERR_LEN];
    if ((data[0] & 3) == 3) {
        /* a /predict body: the direct reader against jansson + ml_encode_json */
        ml_schema *s = ml_schema_from_json(schema, err, sizeof err);
        float x1[5], x2[5];
        int explain;
        int st = ml_read_predict(s, (const char *)data + 1, size - 1, x1, &explain, err, sizeof err);
        json_t *j = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, NULL);
        json_t *loose = j ? NULL : json_loadb((const char *)data + 1, size - 1, 0, NULL);
        if (loose || memchr(data + 1, 0, size - 1)) {
            /* repeated keys or a raw NUL: see below */
        } else if (!j) {
            if (st != 400) abort();
        } else if (json_is_object(j)) {
            /* the fast path's name is the body's "model" string */
            char name[65];
            if (ml_predict_model((const char *)data + 1, size - 1, name)) {
                const char *m = json_string_value(json_object_get(j, "model"));
                if (!m || strcmp(m, name) != 0) abort();
            }
            json_t *f = json_object_get(j, "features");
            int bad = !f || ml_encode_json(s, f, x2, err, sizeof err) != 0;
            if (bad != (st == 422)) abort();
            if (!bad && (st != 0 || memcmp(x1, x2, sizeof x1) != 0)) abort();
            if (!bad && explain != json_is_true(json_object_get(j, "explain"))) abort();
        }
        json_decref(j);
        json_decref(loose);
        ml_schema_free(s);
    } else if ((data[0] & 3) == 2) {
        ml_schema *s = ml_schema_from_json(schema, err, sizeof err);
        float *X = NULL;
        size_t n = 0;
        int st = ml_batch_rows(s, (const char *)data + 1, size - 1, 10, &X, &n, err, sizeof err);
        json_t *j = json_loadb((const char *)data + 1, size - 1, 0, NULL);
        json_t *strict = j ? json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, NULL) : NULL;
        if ((j && !strict) || memchr(data + 1, 0, size - 1)) {
            /* repeated keys: jansson keeps the last, the batch reader refuses
             * a repeated feature; a raw NUL byte: jansson takes it for the
             * end of the text, the batch reader for what it is, invalid
             * JSON. Nothing to compare. */
        } else if (!j) {
            /* jansson allows deeper nesting than we do; otherwise both refuse */
            if (st != 400 && st != 503) abort();
        } else if (json_is_object(j) && json_is_array(json_object_get(j, "rows"))) {
            json_t *rows = json_object_get(j, "rows");
            int bad = 0;
            float x[5];
            for (size_t i = 0; i < json_array_size(rows) && i < 10 && !bad; i++) {
                bad = ml_encode_json(s, json_array_get(rows, i), x, err, sizeof err) != 0;
                if (!bad && st == 0 && (i >= n || memcmp(x, X + i * 5, sizeof x) != 0)) {
                    /* NaN payloads compare by bits: both paths write NAN */
                    abort();
                }
            }
            if (json_array_size(rows) > 10 && !bad) {
                if (st != 413) abort();
            } else if (bad != (st == 422)) {
                abort();
            } else if (!bad && (st != 0 || n != json_array_size(rows))) {
                abort();
            }
        }
        json_decref(j);
        json_decref(strict);
        eh_free(X);
        ml_schema_free(s);
    } else if (data[0] & 1) {
        ml_model *m = ml_model_from_json((const char *)data + 1, size - 1, schema, err, sizeof err);
        if (m) {
            float rows[3][5] = {{0, 0, 1, 0, 0}, {NAN, 5, 0, 1, -3}, {1e30f, -1e30f, NAN, NAN, 0.5f}};
            double phi[5], base, mgs[3];
            ml_model_margins(m, &rows[0][0], 3, mgs);
            for (int r = 0; r < 3; r++) {
                double mg = ml_model_margin(m, rows[r]), ref = ml_model_margin_reference(m, rows[r]);
                /* the flat walkers: the plain walker's sum, bit for bit */
                if (memcmp(&mg, &ref, sizeof mg) || memcmp(&mgs[r], &ref, sizeof mg)) abort();
                char g[ML_G15_LEN], want[64];
                ml_format_g15(mg, g);
                snprintf(want, sizeof want, "%.15g", mg);
                if (strcmp(g, want)) abort();
                ml_model_shap(m, rows[r], phi, &base);
                double sum = base;
                for (int c = 0; c < 5; c++) sum += phi[c];
                if (isfinite(mg) && isfinite(sum) && fabs(sum - mg) > 1e-6 * (1 + fabs(mg))) abort();
                (void)ml_model_output(m, mg);
            }
            ml_model_free(m);
        }
    } else {
        ml_schema *s = ml_schema_from_json(schema, err, sizeof err);
        json_t *f = json_loadb((const char *)data + 1, size - 1, 0, NULL);
        if (s && f) {
            float x[5];
            err[0] = 0;
            int rc = ml_encode_json(s, f, x, err, sizeof err);
            if ((rc == 0) != (err[0] == 0)) abort();
        }
        json_decref(f);
        ml_schema_free(s);
    }
    json_decref(schema);
    return 0;
}
