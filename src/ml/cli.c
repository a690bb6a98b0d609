/* The flags of `ehub train` and `ehub predict`. They are taken out of the
 * argument list before the common options (config.c) see the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml.h"

const char ml_cli_train_help[] =
    "Usage: ehub train --data FILE.csv --label COL --model NAME [options]\n"
    "       ehub train --tenant SLUG --builtin lead_scoring|churn|property_value [--seed N] [--json]\n"
    "\n"
    "The second form trains a tenant's built-in model from its own history (at least 100\n"
    "outcomes, 20 of each kind): lead_scoring from won/lost leads (then re-scores the open\n"
    "ones), churn from leads engaged 14 days ago and whether they replied since. The model is\n"
    "stored as the next version in the store and activated (model.activated in the tenant's\n"
    "event log): a running server on the same store serves it within about a second (its\n"
    "bus reads the log's heads once a second). POST /v1/models/NAME/train serves at once.\n"
    "\n"
    "Trains a gradient-boosted model (XGBoost) on any CSV with a header row, measures it on a\n"
    "held-out part and saves it as OUT/NAME/vN (model.json, schema.json, metrics.json).\n"
    "\n"
    "  --data FILE.csv        training data (',' ';' or tab separated, header row)\n"
    "  --label COL            the column to predict\n"
    "  --positive VALUE       classification: the label value that counts as 1\n"
    "                         (default: inferred when the label is yes/no, 1/0, true/false)\n"
    "  --regression           predict a number instead (reg:squarederror)\n"
    "  --log-target           with --regression: learn log(label); RMSE is reported on the log scale\n"
    "  --drop COL,...         columns to leave out (e.g. ones only known after the outcome)\n"
    "  --model NAME           model name (1-64 of a-z 0-9 _ -)\n"
    "  --out DIR              models directory (default DATA_DIR/models)\n"
    "  --seed N               split and sampling seed (default 42): same seed, same model\n"
    "  --test-fraction F      held-out share (default 0.25, stratified by class)\n"
    "  --nthread N            training threads (default: all cores but one)\n"
    "  --max-depth N          tree depth (default 4)\n"
    "  --eta F                learning rate (default 0.05)\n"
    "  --builtin NAME         a built-in model over ehub's own data (lead_scoring, churn), with --tenant\n"
    "  --json                 print the report as one JSON line (the last line of output)\n\n";

const char ml_cli_predict_help[] =
    "Usage: ehub predict --model DIR --data FILE.csv [--output FILE]\n"
    "\n"
    "Scores every row of FILE.csv with the model in DIR (a version directory, or a model's\n"
    "directory: its newest version) and writes CSV: row,score,margin. The data must have every\n"
    "feature column the model reads (schema.json lists them); other columns are ignored.\n\n";

int ml_cli_parse(int argc, char **argv, ml_cli *c, int *rest, int *nrest, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    c->train.seed = 42;
    *nrest = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        char name[64];
        if (strncmp(a, "--", 2) != 0) {
            rest[(*nrest)++] = i;
            continue;
        }
        const char *eq = strchr(a, '=');
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - a - 2) : (int)strlen(a + 2), a + 2);
        static const char *const valued[] = {"data", "label", "positive", "drop", "model", "out", "seed",
                                             "nthread", "test-fraction", "output", "max-depth", "eta", "builtin"};
        static const char *const flags[] = {"regression", "log-target", "json"};
        int known = 0, is_flag = 0;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) known |= !strcmp(name, valued[k]);
        for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) is_flag |= !strcmp(name, flags[k]);
        if (!known && !is_flag) {
            rest[(*nrest)++] = i;
            continue;
        }
        if (is_flag) {
            if (eq) {
                snprintf(err, errlen, "--%s takes no value", name);
                return -1;
            }
            if (!strcmp(name, "regression")) c->train.regression = 1;
            else if (!strcmp(name, "log-target")) c->train.log_target = 1;
            else c->json = 1;
            continue;
        }
        if (eq) v = eq + 1;
        else if (i + 1 < argc) v = argv[++i];
        else {
            snprintf(err, errlen, "--%s needs a value", name);
            return -1;
        }
        char *end;
        if (!strcmp(name, "data")) c->train.data = v;
        else if (!strcmp(name, "label")) c->train.label = v;
        else if (!strcmp(name, "positive")) c->train.positive = v;
        else if (!strcmp(name, "drop")) c->train.drop = v;
        else if (!strcmp(name, "model")) c->train.model = c->model_dir = v;
        else if (!strcmp(name, "out")) c->train.out = v;
        else if (!strcmp(name, "output")) c->output = v;
        else if (!strcmp(name, "builtin")) c->builtin = v;
        else if (!strcmp(name, "seed")) {
            c->train.seed = strtoull(v, &end, 10);
            if (*end || !*v) goto bad;
        } else if (!strcmp(name, "nthread")) {
            long n = strtol(v, &end, 10);
            if (*end || n < 0 || n > 256) goto bad;
            c->train.nthread = (int)n;
        } else if (!strcmp(name, "max-depth")) {
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 16) goto bad;
            c->train.max_depth = (int)n;
        } else if (!strcmp(name, "eta")) {
            double f = strtod(v, &end);
            if (*end || !(f > 0 && f <= 1)) goto bad;
            c->train.eta = f;
        } else if (!strcmp(name, "test-fraction")) {
            double f = strtod(v, &end);
            if (*end || !(f > 0 && f < 0.9)) goto bad;
            c->train.test_fraction = f;
        }
        continue;
    bad:
        snprintf(err, errlen, "--%s: bad value \"%s\"", name, v);
        return -1;
    }
    return 0;
}
