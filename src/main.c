/* ehub — EnterpriseHub's lead intelligence server. The command line:
 * parse the command, load the configuration, hand over to the module that
 * does the work. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "leads/leads.h"
#include "ml/ml.h"
#include "privacy/privacy.h"
#include "score/score.h"

static const char usage[] =
    "ehub " EHUB_VERSION " — EnterpriseHub lead intelligence server\n"
    "\n"
    "Usage: ehub COMMAND [options]\n"
    "\n"
    "Commands:\n"
    "  serve                 run the HTTP/WebSocket server (default port 8080)\n"
    "  migrate               apply pending storage migrations and print the schema version\n"
    "  tenant add SLUG [NAME | --name NAME]  create a tenant (SLUG: 1-64 of a-z 0-9 _ -)\n"
    "  key create ROLE [NAME] --tenant T   create an API key (admin, manager, analyst, agent, viewer);\n"
    "                        the key is printed once\n"
    "  key revoke ID --tenant T            revoke an API key\n"
    "  user add --tenant T --email E --role R [--password-file F]   create a user who can log in\n"
    "  audit verify [--tenant T]           check the audit trails' hash chains and webhook checkpoints (exit 1 if broken)\n"
    "  audit checkpoint [--tenant T]       cover the webhooks stored since the last checkpoint now\n"
    "  jwt rotate [--keep N]               new JWT signing key; previous ones keep verifying\n"
    "  import leads FILE.csv --tenant T    import leads from CSV (per-row errors reported)\n"
    "  retention run --tenant T [--dry-run]  apply the tenant's retention policy now (or report it)\n"
    "  train --data F.csv --label COL --model NAME   train and evaluate a model on any CSV\n"
    "  train --tenant T --builtin NAME     train a tenant's lead_scoring, churn or property_value\n"
    "  predict --model DIR --data F.csv    score a CSV with a trained model\n"
    "  model import NAME MODEL.json SCHEMA.json   serve a model trained with Python/R XGBoost\n"
    "  version               print the version\n"
    "  help                  this text; `ehub COMMAND --help` for a command\n"
    "\n"
    "Every command takes the options below. Precedence: flags, then EHUB_*\n"
    "environment variables, then the --config file, then defaults.\n\n";

static void print_help(FILE *out, const char *cmd) {
    if (cmd && strcmp(cmd, "serve") == 0)
        fprintf(out, "Usage: ehub serve [options]\n\nRuns the server until SIGTERM or SIGINT "
                     "(graceful: in-flight requests finish, WebSockets get 1001).\n\n");
    else if (cmd && strcmp(cmd, "migrate") == 0)
        fprintf(out, "Usage: ehub migrate [options]\n\nApplies pending migrations to --store "
                     "(safe to run from several nodes at once on PostgreSQL).\n\n");
    else if (cmd && strcmp(cmd, "tenant") == 0)
        fprintf(out, "Usage: ehub tenant add SLUG [NAME | --name NAME] [options]\n\n");
    else if (cmd && strcmp(cmd, "user") == 0)
        fputs(auth_cli_user_help, out);
    else if (cmd && strcmp(cmd, "audit") == 0)
        fputs(auth_cli_audit_help, out);
    else if (cmd && strcmp(cmd, "jwt") == 0)
        fputs(auth_cli_jwt_help, out);
    else if (cmd && strcmp(cmd, "key") == 0)
        fprintf(out, "Usage: ehub key create ROLE [NAME] --tenant T | ehub key revoke ID --tenant T\n\n"
                     "ROLE is admin, manager, analyst, agent or viewer. The key is printed once; only its\n"
                     "SHA-256 is stored.\n\n");
    else if (cmd && strcmp(cmd, "import") == 0)
        fprintf(out, "Usage: ehub import leads FILE.csv --tenant T\n\nHeader names map to lead fields "
                     "(see README). Bad rows are reported with their line and skipped.\n\n");
    else if (cmd && strcmp(cmd, "retention") == 0)
        fprintf(out, "Usage: ehub retention run --tenant T [--dry-run]\n\nApplies the tenant's retention policy "
                     "(PUT /v1/privacy/retention): erases leads inactive\nfor lead_inactive_days, empties webhook "
                     "bodies older than inbox_days; audited. --dry-run\nonly reports what it would do. Prints "
                     "{dry_run, policy, leads:{count, ids}, inbox:{count}}.\n\n");
    else if (cmd && strcmp(cmd, "train") == 0)
        fputs(ml_cli_train_help, out);
    else if (cmd && strcmp(cmd, "predict") == 0)
        fputs(ml_cli_predict_help, out);
    else if (cmd && strcmp(cmd, "model") == 0)
        fprintf(out, "Usage: ehub model import NAME MODEL.json SCHEMA.json\n\nCopies a model saved by Python or R "
                     "XGBoost (save_model(\"m.json\")) into DATA_DIR/models/NAME/vN after checking that it loads.\n"
                     "SCHEMA.json: {\"features\":[{\"name\":\"age\",\"type\":\"numeric\"},...]} in the model's column "
                     "order\n(categoricals: \"type\":\"categorical\",\"categories\":[...], one-hot in that order).\n"
                     "Supported: gbtree, binary:logistic, reg:logistic, binary:logitraw, reg:squarederror,\n"
                     "count:poisson, reg:gamma, reg:tweedie; numeric splits only.\n\n");
    else fputs(usage, out);
    config_print_help(out);
}

static int has_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    }
    return 0;
}

static int ensure_data_dir(const ehub_config *cfg, logger *log) {
    if (cfg->store[0] && strncmp(cfg->store, "sqlite:", 7) != 0) return 0;
    if (mkdir(cfg->data_dir, 0700) && errno != EEXIST) {
        log_msg(log, LOG_ERROR, "cannot create data directory", strerror(errno));
        return -1;
    }
    return 0;
}

static int cmd_serve(const ehub_config *cfg, logger *log) {
    /* The pool size must be set before libuv's first uv_queue_work. */
    char n[32];
    snprintf(n, sizeof n, "%zu", cfg->threads ? cfg->threads : 4);
    setenv("UV_THREADPOOL_SIZE", n, 1);
    if (ensure_data_dir(cfg, log)) return 1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    app a;
    int rc = 1;
    char key[AUTH_KEY_LEN + 1] = "", pw[AUTH_PASSWORD_MAX + 1] = "";
    if (app_init(&a, &loop, cfg, log) == 0 &&
        (!cfg->demo || (app_demo_seed(&a, key) == 0 && app_demo_users_seed(&a, pw, sizeof pw) == 0))) {
        if (cfg->demo) {
            const char *host = strcmp(cfg->host, "0.0.0.0") == 0 || strcmp(cfg->host, "127.0.0.1") == 0
                                   ? "localhost" : cfg->host;
            fprintf(stderr,
                    "\n  ehub demo: dashboard http://%s:%d/   API docs: http://%s:%d/docs\n"
                    "  dashboard login: tenant \"demo\", password %s (this run's, for every demo user):\n",
                    host, cfg->port, host, cfg->port, pw);
            for (int i = 0; i < DEMO_USERS; i++)
                fprintf(stderr, "    %-8s %s\n", demo_users[i].role, demo_users[i].email);
            fprintf(stderr,
                    "  admin API key for this run (shown once):\n    %s\n"
                    "  try: curl -H 'Authorization: Bearer %s' http://%s:%d/v1/leads\n\n",
                    key, key, host, cfg->port);
        }
        rc = app_run(&a) == 0 ? 0 : 1;
    }
    app_free(&a);
    uv_run(&loop, UV_RUN_DEFAULT); /* let closing handles finish */
    uv_loop_close(&loop);
    return rc;
}

static int cmd_migrate(ehub_config *cfg, logger *log) {
    if (ensure_data_dir(cfg, log)) return 1;
    char url[1100];
    config_store_url(cfg, url, sizeof url);
    store_opts so = {.log = log, .no_migrate = 1};
    store_err err = {0};
    store *st = store_open(url, &so, &err);
    if (!st) {
        fprintf(stderr, "ehub migrate: cannot open storage: %s\n", err.msg);
        return 1;
    }
    int applied = 0, version = 0, known = 0;
    int rc = store_migrate(st, &applied, &err);
    if (rc == STORE_OK) rc = store_schema_version(st, &version, &known, &err);
    if (rc == STORE_OK)
        printf("{\"backend\":\"%s\",\"applied\":%d,\"schema_version\":%d,\"schema_latest\":%d}\n",
               store_kind_name(store_get_kind(st)), applied, version, known);
    else fprintf(stderr, "ehub migrate: %s\n", err.msg);
    store_close(st);
    return rc == STORE_OK ? 0 : 1;
}

typedef struct tenant_args {
    const char *slug, *name;
    int64_t id;
} tenant_args;

static int tenant_add_tx(store_tx *tx, void *arg, store_err *err) {
    tenant_args *t = arg;
    int rc = store_tenant_create(tx, t->slug, t->name, &t->id, err);
    if (rc) return rc;
    auth_actor who = {"cli", NULL};
    return auth_audit(tx, t->id, &who, "tenant.create", t->slug, NULL, clock_wall_ms(), err);
}

static int tenant_find_tx(store_tx *tx, void *arg, store_err *err) {
    tenant_args *t = arg;
    return store_tenant_find(tx, t->slug, &t->id, err);
}

static int cmd_tenant(ehub_config *cfg, logger *log, const auth_cli *ac, int npos, char **pos) {
    if (npos < 2 || npos > 3 || strcmp(pos[0], "add") != 0 || (npos == 3 && ac->name)) {
        fprintf(stderr, "usage: ehub tenant add SLUG [NAME | --name NAME]\n");
        return 2;
    }
    if (ensure_data_dir(cfg, log)) return 1;
    char url[1100];
    config_store_url(cfg, url, sizeof url);
    store_opts so = {.log = log, .no_migrate = cfg->no_migrate};
    store_err err = {0};
    store *st = store_open(url, &so, &err);
    if (!st) {
        fprintf(stderr, "ehub tenant: cannot open storage: %s\n", err.msg);
        return 1;
    }
    tenant_args t = {pos[1], ac->name ? ac->name : npos > 2 ? pos[2] : pos[1], 0};
    int rc = store_write(st, 0, tenant_add_tx, &t, &err);
    if (rc == STORE_OK) printf("{\"id\":%lld,\"slug\":\"%s\"}\n", (long long)t.id, t.slug);
    else if (rc == STORE_CONFLICT) fprintf(stderr, "ehub tenant: tenant \"%s\" already exists\n", t.slug);
    else fprintf(stderr, "ehub tenant: %s\n", err.msg);
    store_close(st);
    return rc == STORE_OK ? 0 : 1;
}

/* Opens storage for a one-tenant CLI command and resolves --tenant. */
/* scorer: for commands that write leads, so they are scored as the server
 * would (the store's context, see leads_domain). */
static store *open_for_tenant(ehub_config *cfg, logger *log, const char *cmd, int64_t *tenant, leads_domain *ctx) {
    if (!cfg->tenant[0]) {
        fprintf(stderr, "ehub %s: --tenant SLUG is required\n", cmd);
        return NULL;
    }
    if (ensure_data_dir(cfg, log)) return NULL;
    char url[1100];
    config_store_url(cfg, url, sizeof url);
    store_opts so = {.log = log, .no_migrate = cfg->no_migrate, .ctx = ctx};
    store_err err = {0};
    store *st = store_open(url, &so, &err);
    if (!st) {
        fprintf(stderr, "ehub %s: cannot open storage: %s\n", cmd, err.msg);
        return NULL;
    }
    tenant_args t = {cfg->tenant, NULL, 0};
    if (store_read(st, 0, tenant_find_tx, &t, &err)) {
        fprintf(stderr, "ehub %s: no tenant \"%s\"\n", cmd, cfg->tenant);
        store_close(st);
        return NULL;
    }
    *tenant = t.id;
    return st;
}

typedef struct key_args {
    int role;
    const char *name;
    int64_t id;
    char key[AUTH_KEY_LEN + 1];
} key_args;

static int key_audit(store_tx *tx, key_args *k, const char *action, store_err *err) {
    char target[32];
    snprintf(target, sizeof target, "key:%lld", (long long)k->id);
    auth_actor who = {"cli", NULL};
    json_t *d = k->role ? json_pack("{s:s, s:s}", "role", auth_role_name(k->role), "name", k->name) : NULL;
    int rc = auth_audit(tx, store_tx_tenant(tx), &who, action, target, d, clock_wall_ms(), err);
    json_decref(d);
    return rc;
}

static int key_create_tx(store_tx *tx, void *arg, store_err *err) {
    key_args *k = arg;
    int rc = auth_key_create(tx, k->name, k->role, k->key, &k->id, err);
    return rc ? rc : key_audit(tx, k, "key.create", err);
}

static int key_revoke_tx(store_tx *tx, void *arg, store_err *err) {
    key_args *k = arg;
    int rc = auth_key_revoke(tx, k->id, clock_wall_ms(), err);
    return rc ? rc : key_audit(tx, k, "key.revoke", err);
}

static int cmd_key(ehub_config *cfg, logger *log, int npos, char **pos) {
    key_args k = {0};
    int create = npos >= 2 && !strcmp(pos[0], "create");
    int revoke = npos == 2 && !strcmp(pos[0], "revoke");
    if ((!create && !revoke) || (create && (k.role = auth_role_parse(pos[1])) < 0) ||
        (revoke && (k.id = strtoll(pos[1], NULL, 10)) <= 0)) {
        fprintf(stderr, "usage: ehub key create ROLE [NAME] --tenant T | ehub key revoke ID --tenant T\n"
                        "  ROLE: admin, manager, analyst, agent, viewer\n");
        return 2;
    }
    int64_t tenant;
    store *st = open_for_tenant(cfg, log, "key", &tenant, NULL);
    if (!st) return 1;
    store_err err = {0};
    k.name = npos > 2 ? pos[2] : "cli";
    int rc = store_write(st, tenant, create ? key_create_tx : key_revoke_tx, &k, &err);
    if (rc == STORE_OK && create)
        printf("{\"id\":%lld,\"tenant\":\"%s\",\"role\":\"%s\",\"key\":\"%s\"}\n", (long long)k.id,
               cfg->tenant, pos[1], k.key);
    else if (rc == STORE_OK) printf("{\"revoked\":%lld}\n", (long long)k.id);
    else fprintf(stderr, "ehub key: %s\n", err.msg);
    store_close(st);
    return rc == STORE_OK ? 0 : 1;
}

static int cmd_import(ehub_config *cfg, logger *log, int npos, char **pos) {
    if (npos != 2 || strcmp(pos[0], "leads") != 0) {
        fprintf(stderr, "usage: ehub import leads FILE.csv --tenant T\n");
        return 2;
    }
    int64_t tenant;
    score_ctx *sc = score_ctx_new(cfg->data_dir);
    leads_domain dom = {sc, NULL};
    store *st = sc ? open_for_tenant(cfg, log, "import", &tenant, &dom) : NULL;
    if (!st) {
        score_ctx_free(sc);
        return 1;
    }
    score_ctx_set_store(sc, st);
    json_t *result = NULL;
    int rc = leads_import_file(st, tenant, pos[1], NULL, &result);
    char *s = result ? json_dumps(result, JSON_INDENT(2)) : NULL;
    if (s) printf("%s\n", s);
    free(s);
    json_decref(result);
    store_close(st);
    score_ctx_free(sc);
    if (rc) fprintf(stderr, "ehub import: stopped early (see errors)\n");
    return rc ? 1 : 0;
}

/* ehub retention run --tenant T [--dry-run] */
static int cmd_retention(ehub_config *cfg, int npos, char **pos, int dry_run) {
    if (npos != 1 || strcmp(pos[0], "run") || !cfg->tenant[0]) {
        fprintf(stderr, "usage: ehub retention run --tenant T [--dry-run]\n");
        return 2;
    }
    char url[1100], err[300];
    config_store_url(cfg, url, sizeof url);
    json_t *report = NULL;
    if (privacy_cli_retention(url, cfg->tenant, dry_run, cfg->erase_rewrite_max, err, sizeof err, &report)) {
        fprintf(stderr, "ehub retention: %s\n", err);
        return 1;
    }
    char *s = json_dumps(report, JSON_COMPACT);
    if (s) printf("%s\n", s);
    free(s);
    json_decref(report);
    return 0;
}

/* ehub train --tenant T --builtin lead_scoring */
static int cmd_train_builtin(ehub_config *cfg, logger *log, ml_cli *c) {
    if (!score_builtin(c->builtin)) {
        fprintf(stderr, "ehub train: unknown built-in model \"%s\" (built-in: %s, %s)\n", c->builtin, SCORE_MODEL,
                SCORE_CHURN);
        return 2;
    }
    if (c->train.data || c->train.label || c->train.model) {
        fprintf(stderr, "ehub train: --builtin reads the tenant's leads: no --data, --label or --model\n");
        return 2;
    }
    int64_t tenant;
    score_ctx *sc = score_ctx_new(cfg->data_dir);
    leads_domain dom = {sc, NULL};
    store *st = sc ? open_for_tenant(cfg, log, "train", &tenant, &dom) : NULL;
    if (!st) {
        score_ctx_free(sc);
        return 1;
    }
    score_ctx_set_store(sc, st);
    /* versions an earlier release left on disk keep their numbers */
    int imported = 0;
    score_import_files(sc, st, log, &imported);
    char err[512];
    json_t *rep = NULL;
    int rc = score_train(st, sc, tenant, c->builtin, "cli", c->train.seed, clock_wall_ms(), &rep, NULL, err, sizeof err);
    int rescored = 0;
    store_err se = {0};
    int leads = !strcmp(c->builtin, SCORE_MODEL); /* churn is computed when asked, not stored */
    if (rc == 0 && leads && score_rescore_open(st, tenant, clock_wall_ms(), &rescored, &se)) {
        fprintf(stderr, "ehub train: trained, but re-scoring open leads failed: %s\n", se.msg);
        rc = -1;
    }
    if (rc == 0) {
        json_object_set_new(rep, "rescored", json_integer(rescored));
        char *s = json_dumps(rep, JSON_COMPACT | JSON_REAL_PRECISION(10));
        if (s && !c->json) {
            json_t *m = json_object_get(rep, "metrics");
            printf("%s v%lld for %s: %lld rows; test AUC %.4f; %d open leads re-scored\n", c->builtin,
                   (long long)json_integer_value(json_object_get(rep, "version")), cfg->tenant,
                   (long long)json_integer_value(json_object_get(rep, "rows")),
                   json_number_value(json_object_get(m, "auc")), rescored);
        } else if (s) {
            printf("%s\n", s);
        }
        free(s);
    } else {
        fprintf(stderr, "ehub train: %s\n", err);
    }
    json_decref(rep);
    store_close(st);
    score_ctx_free(sc);
    return rc == 0 ? 0 : 1;
}

static int cmd_train(ehub_config *cfg, ml_cli *c) {
    char out[sizeof cfg->data_dir + 16], err[512];
    if (!c->train.data || !c->train.label || !c->train.model) {
        fprintf(stderr, "ehub train: --data, --label and --model are required (ehub train --help)\n");
        return 2;
    }
    if (!c->train.out) {
        snprintf(out, sizeof out, "%s/models", cfg->data_dir);
        c->train.out = out;
    }
    c->train.trained_by = "cli";
    json_t *rep = NULL;
    if (ml_train(&c->train, &rep, err, sizeof err)) {
        fprintf(stderr, "ehub train: %s\n", err);
        return 1;
    }
    if (c->json) {
        char *s = json_dumps(rep, JSON_COMPACT | JSON_REAL_PRECISION(10));
        if (s) printf("%s\n", s);
        free(s);
    } else {
        json_t *m = json_object_get(rep, "metrics");
        printf("model %s v%lld: %lld rows (%lld train, %lld validation, %lld test), %lld features, %lld rounds, %lld ms\n",
               c->train.model, (long long)json_integer_value(json_object_get(rep, "version")),
               (long long)json_integer_value(json_object_get(rep, "rows")),
               (long long)json_integer_value(json_object_get(rep, "train_rows")),
               (long long)json_integer_value(json_object_get(rep, "valid_rows")),
               (long long)json_integer_value(json_object_get(rep, "test_rows")),
               (long long)json_integer_value(json_object_get(rep, "features")),
               (long long)json_integer_value(json_object_get(rep, "rounds")),
               (long long)json_integer_value(json_object_get(rep, "train_ms")));
        const char *k;
        json_t *v;
        printf("test:");
        json_object_foreach(m, k, v) if (json_is_number(v)) printf(" %s=%.4f", k, json_number_value(v));
        printf("\nsaved to %s\n", json_string_value(json_object_get(rep, "dir")));
    }
    json_decref(rep);
    return 0;
}

static int cmd_model(ehub_config *cfg, int npos, char **pos) {
    if (npos != 4 || strcmp(pos[0], "import") != 0) {
        fprintf(stderr, "usage: ehub model import NAME MODEL.json SCHEMA.json [--data-dir DIR]\n");
        return 2;
    }
    char out[sizeof cfg->data_dir + 16], err[512];
    snprintf(out, sizeof out, "%s/models", cfg->data_dir);
    json_t *rep;
    if (ml_import(out, pos[1], pos[2], pos[3], &rep, err, sizeof err)) {
        fprintf(stderr, "ehub model import: %s\n", err);
        return 1;
    }
    char *s = json_dumps(rep, JSON_COMPACT);
    if (s) printf("%s\n", s);
    free(s);
    json_decref(rep);
    return 0;
}

static int cmd_predict(ml_cli *c) {
    char err[512];
    if (!c->model_dir || !c->train.data) {
        fprintf(stderr, "ehub predict: --model DIR and --data FILE.csv are required\n");
        return 2;
    }
    ml_model *m = ml_model_load(c->model_dir, err, sizeof err);
    if (!m) {
        fprintf(stderr, "ehub predict: %s\n", err);
        return 1;
    }
    ml_table *t = ml_table_read(c->train.data, err, sizeof err);
    if (!t) {
        ml_model_free(m);
        fprintf(stderr, "ehub predict: %s\n", err);
        return 1;
    }
    FILE *out = c->output ? fopen(c->output, "w") : stdout;
    int rc = 0;
    if (!out) {
        fprintf(stderr, "ehub predict: cannot write %s\n", c->output);
        rc = 1;
    } else if (ml_predict_table(m, t, out, err, sizeof err)) {
        fprintf(stderr, "ehub predict: %s\n", err);
        rc = 1;
    }
    if (out && out != stdout) fclose(out);
    ml_table_free(t);
    ml_model_free(m);
    return rc;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        print_help(stdout, argc > 2 ? argv[2] : NULL);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("ehub %s\n", EHUB_VERSION);
        return 0;
    }
    if (strcmp(cmd, "serve") && strcmp(cmd, "migrate") && strcmp(cmd, "tenant") && strcmp(cmd, "key") &&
        strcmp(cmd, "import") && strcmp(cmd, "train") && strcmp(cmd, "predict") && strcmp(cmd, "model") &&
        strcmp(cmd, "user") && strcmp(cmd, "audit") && strcmp(cmd, "jwt") && strcmp(cmd, "retention")) {
        fprintf(stderr, "ehub: unknown command \"%s\" (see ehub --help)\n", cmd);
        return 2;
    }
    if (has_help(argc - 2, argv + 2)) {
        print_help(stdout, cmd);
        return 0;
    }
    ehub_config cfg;
    char err[512];
    int rest[64], nrest = 0;
    if (argc - 2 > 64) {
        fprintf(stderr, "ehub %s: too many arguments\n", cmd);
        return 2;
    }
    /* train/predict: their own flags first, the common options after */
    char *args[64];
    int nargs = argc - 2;
    ml_cli mlc;
    for (int i = 0; i < nargs; i++) args[i] = argv[2 + i];
    if (!strcmp(cmd, "train") || !strcmp(cmd, "predict")) {
        int keep[64], nkeep;
        if (ml_cli_parse(nargs, args, &mlc, keep, &nkeep, err, sizeof err)) {
            fprintf(stderr, "ehub %s: %s\n", cmd, err);
            return 2;
        }
        for (int i = 0; i < nkeep; i++) args[i] = argv[2 + keep[i]];
        nargs = nkeep;
    }
    /* user/tenant/jwt: the same for their flags (--email, --role, --name ...) */
    auth_cli ac;
    memset(&ac, 0, sizeof ac);
    if (!strcmp(cmd, "user") || !strcmp(cmd, "tenant") || !strcmp(cmd, "jwt")) {
        int keep[64], nkeep;
        char *tmp[64];
        if (auth_cli_parse(nargs, args, &ac, keep, &nkeep, err, sizeof err)) {
            fprintf(stderr, "ehub %s: %s\n", cmd, err);
            return 2;
        }
        for (int i = 0; i < nkeep; i++) tmp[i] = args[keep[i]];
        for (int i = 0; i < nkeep; i++) args[i] = tmp[i];
        nargs = nkeep;
    }
    /* retention: --dry-run is its own flag */
    int dry_run = 0;
    if (!strcmp(cmd, "retention")) {
        int k = 0;
        for (int i = 0; i < nargs; i++)
            if (!strcmp(args[i], "--dry-run")) dry_run = 1;
            else args[k++] = args[i];
        nargs = k;
    }
    if (config_load(&cfg, nargs, args, rest, &nrest, err, sizeof err)) {
        fprintf(stderr, "ehub %s: %s\n", cmd, err);
        return 2;
    }
    char *pos[64];
    for (int i = 0; i < nrest; i++) pos[i] = args[rest[i]];
    logger *log = log_new(2, (log_level)cfg.log_level);
    if (!log) return 1;
    int rc;
    if (!strcmp(cmd, "serve")) {
        if (nrest) {
            fprintf(stderr, "ehub serve: unexpected argument \"%s\"\n", pos[0]);
            rc = 2;
        } else {
            rc = cmd_serve(&cfg, log);
        }
    } else if (!strcmp(cmd, "migrate")) {
        rc = cmd_migrate(&cfg, log);
    } else if (!strcmp(cmd, "key")) {
        rc = cmd_key(&cfg, log, nrest, pos);
    } else if (!strcmp(cmd, "user")) {
        rc = auth_cli_user(&cfg, log, &ac, nrest, pos);
    } else if (!strcmp(cmd, "audit")) {
        rc = auth_cli_audit(&cfg, log, nrest, pos);
    } else if (!strcmp(cmd, "jwt")) {
        rc = auth_cli_jwt(&cfg, &ac, nrest, pos);
    } else if (!strcmp(cmd, "import")) {
        rc = cmd_import(&cfg, log, nrest, pos);
    } else if (!strcmp(cmd, "model")) {
        rc = cmd_model(&cfg, nrest, pos);
    } else if (!strcmp(cmd, "retention")) {
        rc = cmd_retention(&cfg, nrest, pos, dry_run);
    } else if (!strcmp(cmd, "train") || !strcmp(cmd, "predict")) {
        if (nrest) {
            fprintf(stderr, "ehub %s: unexpected argument \"%s\"\n", cmd, pos[0]);
            rc = 2;
        } else {
            rc = !strcmp(cmd, "predict") ? cmd_predict(&mlc)
                 : mlc.builtin           ? cmd_train_builtin(&cfg, log, &mlc)
                                         : cmd_train(&cfg, &mlc);
        }
    } else {
        rc = cmd_tenant(&cfg, log, &ac, nrest, pos);
    }
    log_free(log);
    return rc;
}
