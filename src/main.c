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

static const char usage[] =
    "ehub " EHUB_VERSION " — EnterpriseHub lead intelligence server\n"
    "\n"
    "Usage: ehub COMMAND [options]\n"
    "\n"
    "Commands:\n"
    "  serve                 run the HTTP/WebSocket server (default port 8080)\n"
    "  migrate               apply pending storage migrations and print the schema version\n"
    "  tenant add SLUG [NAME]  create a tenant (SLUG: 1-64 of a-z 0-9 _ -)\n"
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
        fprintf(out, "Usage: ehub tenant add SLUG [NAME] [options]\n\n");
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
    if (app_init(&a, &loop, cfg, log) == 0 && (!cfg->demo || app_demo_seed(&a) == 0)) {
        if (cfg->demo) {
            fprintf(stderr, "\n  ehub is starting with demo data at http://%s:%d/  (API docs: /docs)\n\n",
                    strcmp(cfg->host, "0.0.0.0") == 0 ? "localhost" : cfg->host, cfg->port);
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
    return store_tenant_create(tx, t->slug, t->name, &t->id, err);
}

static int cmd_tenant(ehub_config *cfg, logger *log, int npos, char **pos) {
    if (npos < 2 || strcmp(pos[0], "add") != 0) {
        fprintf(stderr, "usage: ehub tenant add SLUG [NAME]\n");
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
    tenant_args t = {pos[1], npos > 2 ? pos[2] : pos[1], 0};
    int rc = store_write(st, 0, tenant_add_tx, &t, &err);
    if (rc == STORE_OK) printf("{\"id\":%lld,\"slug\":\"%s\"}\n", (long long)t.id, t.slug);
    else if (rc == STORE_CONFLICT) fprintf(stderr, "ehub tenant: tenant \"%s\" already exists\n", t.slug);
    else fprintf(stderr, "ehub tenant: %s\n", err.msg);
    store_close(st);
    return rc == STORE_OK ? 0 : 1;
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
    if (strcmp(cmd, "serve") && strcmp(cmd, "migrate") && strcmp(cmd, "tenant")) {
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
    if (argc - 2 > 64 || config_load(&cfg, argc - 2, argv + 2, rest, &nrest, err, sizeof err)) {
        fprintf(stderr, "ehub %s: %s\n", cmd, argc - 2 > 64 ? "too many arguments" : err);
        return 2;
    }
    char *pos[64];
    for (int i = 0; i < nrest; i++) pos[i] = argv[2 + rest[i]];
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
    } else {
        rc = cmd_tenant(&cfg, log, nrest, pos);
    }
    log_free(log);
    return rc;
}
