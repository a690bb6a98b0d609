/* libFuzzer target for the model side of ml: an XGBoost JSON model from an
 * untrusted source (`model import`, a file dropped into the models
 * directory) and the features of a /predict request.
 *
 * Input: the first byte chooses whether the rest is a model or a features
 * object. A model is loaded against a fixed 4-feature schema; when it
 * loads, a few rows are scored and explained, and SHAP must stay additive.
 * A features object is encoded against a schema with numeric and
 * categorical fields; it either encodes or reports an error, never both. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ml/ml.h"

static const char schema_text[] =
    "{\"features\":[{\"name\":\"a\",\"type\":\"numeric\"},{\"name\":\"b\",\"type\":\"numeric\"},"
    "{\"name\":\"c\",\"type\":\"categorical\",\"categories\":[\"x\",\"y\"],\"other\":[\"z\"]},"
    "{\"name\":\"d\",\"type\":\"numeric\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    json_t *schema = json_loads(schema_text, 0, NULL);
    char err[ML_ERR_LEN];
    if (data[0] & 1) {
        ml_model *m = ml_model_from_json((const char *)data + 1, size - 1, schema, err, sizeof err);
        if (m) {
            float rows[3][5] = {{0, 0, 1, 0, 0}, {NAN, 5, 0, 1, -3}, {1e30f, -1e30f, NAN, NAN, 0.5f}};
            double phi[5], base;
            for (int r = 0; r < 3; r++) {
                double mg = ml_model_margin(m, rows[r]);
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
