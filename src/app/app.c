#include "app.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "coach/coach.h"
#include "llm/llm.h"
#include "ml/ml.h"
#include "nurture/nurture.h"
#include "score/score.h"
#include "realtime/realtime.h"
#include "privacy/privacy.h"
#include "reports/reports.h"
#include "web/web.h"

static const double store_buckets[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                       0.005,   0.01,   0.025,   0.05,   0.1,   0.5, 1};

static void on_store_query(void *ud, double secs, int ok) {
    app *a = ud;
    metric_observe(a->m_store_lat, NULL, secs);
    if (!ok) metric_add(a->m_store_err, NULL, 1);
}

static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};

static void on_store_batch(void *ud, int jobs, double secs) {
    app *a = ud;
    metric_observe(a->m_store_batch, NULL, (double)jobs);
}

static double g_conns(void *ud) { return (double)http_server_connections(((app *)ud)->srv); }
static double g_ws(void *ud) { return (double)http_server_ws_connections(((app *)ud)->srv); }
static double g_inflight(void *ud) { return (double)http_server_inflight(((app *)ud)->srv); }
static double g_pool(void *ud) { return (double)http_server_pool_depth(((app *)ud)->srv); }
static double g_uptime(void *ud) {
    return (double)(clock_wall_ms() - http_server_started_ms(((app *)ud)->srv)) / 1000.0;
}

/* Committed events go to the realtime feed and, with an LLM provider, to
 * the drafts for inbound messages' coaching. Any thread (store_opts). */
static void on_commit(void *ud, const store_event *ev, int n) {
    app *a = ud;
    realtime_on_commit(a->rt, ev, n);
    coach_drafts_on_commit(a->drafts, ev, n);
}

static double g_llm_open(void *ud) { return llm_breaker_is_open(((app *)ud)->llm); }

/* The coaching drafts' provider (--llm-*), if one is configured. The key is
 * read here, once, and lives only in the llm context. */
static int app_llm_init(app *a, const ehub_config *cfg) {
    int p = llm_provider_parse(cfg->llm_provider);
    char why[300] = "";
    if (p < 0) {
        log_msg(a->log, LOG_ERROR, "startup failed", "--llm-provider: off, anthropic or openai");
        return -1;
    }
    a->m_llm = metrics_counter(a->m, "ehub_llm_requests_total", "coaching drafts asked of the LLM provider, by result",
                               "result");
    if (p == LLM_OFF) return 0;
    if (!(a->drafts = coach_drafts_new(a))) {
        log_msg(a->log, LOG_ERROR, "startup failed", "out of memory");
        return -1;
    }
    char key[512];
    if (llm_key_load(cfg->llm_key_file, getenv("EHUB_LLM_API_KEY"), key, sizeof key, why, sizeof why)) {
        log_msg(a->log, LOG_ERROR, "startup failed", why);
        return -1;
    }
    llm_opts o = {.provider = (llm_provider)p, .url = cfg->llm_url, .model = cfg->llm_model, .key = key,
                  .timeout_ms = cfg->llm_timeout_ms, .stream = cfg->llm_stream,
                  .breaker_cooldown_ms = cfg->llm_cooldown_ms};
    a->llm = llm_new(&o, why, sizeof why);
    memset(key, 0, sizeof key);
    if (!a->llm) {
        log_msg(a->log, LOG_ERROR, "startup failed", why);
        return -1;
    }
    metrics_gauge_fn(a->m, "ehub_llm_breaker_open", "1 while the LLM provider's circuit breaker refuses calls",
                     g_llm_open, a);
    log_line l;
    if (log_begin(a->log, &l, LOG_INFO, "LLM drafts on")) {
        log_str(&l, "provider", llm_provider_name((llm_provider)p));
        log_str(&l, "model", llm_model(a->llm));
        log_int(&l, "budget_ms", cfg->llm_budget_ms);
        log_end(&l);
    }
    return 0;
}

int app_init(app *a, uv_loop_t *loop, const ehub_config *cfg, logger *log) {
    memset(a, 0, sizeof *a);
    a->loop = loop;
    a->cfg = *cfg;
    a->log = log;
    a->m = metrics_new();
    a->router = http_router_new();
    if (!a->m || !a->router) {
        log_msg(log, LOG_ERROR, "startup failed", "out of memory");
        return -1;
    }
    a->m_store_lat = metrics_histogram(a->m, "ehub_store_query_duration_seconds",
                                       "storage statement latency", NULL, store_buckets,
                                       (int)(sizeof store_buckets / sizeof store_buckets[0]));
    a->m_store_batch = metrics_histogram(a->m, "ehub_store_group_commit_writes",
                                         "SQLite: write transactions sharing one group commit", NULL, batch_buckets,
                                         (int)(sizeof batch_buckets / sizeof batch_buckets[0]));
    a->m_store_err = metrics_counter(a->m, "ehub_store_errors_total", "failed storage statements", NULL);
    a->m_auth_fail = metrics_counter(a->m, "ehub_auth_failures_total", "requests refused by the route guard", "reason");

    if (app_posts_start(a)) {
        log_msg(log, LOG_ERROR, "startup failed", "out of memory");
        return -1;
    }
    /* Before the store: the store's on_commit hook hands events to it. */
    if (!(a->rt = realtime_new(a))) {
        log_msg(log, LOG_ERROR, "startup failed", "out of memory");
        return -1;
    }
    char url[1100];
    config_store_url(cfg, url, sizeof url);
    a->score = score_ctx_new(cfg->data_dir);
    if (!a->score) {
        log_msg(log, LOG_ERROR, "startup failed", "out of memory");
        return -1;
    }
    char why[160] = "";
    if (!(a->coach = coach_ctx_new(why, sizeof why))) {
        log_msg(log, LOG_ERROR, "startup failed: coaching data", why);
        return -1;
    }
    if (app_llm_init(a, cfg)) return -1;
    store_opts so = {
        .pool_size = (int)cfg->pool_size,
        .sync_full = cfg->sqlite_sync_full,
        .no_migrate = cfg->no_migrate,
        .log = log,
        .on_query = on_store_query,
        .on_query_ud = a,
        .on_batch = on_store_batch,
        .ctx = &a->domain,
        .on_commit = on_commit,
        .on_commit_ud = a,
    };
    a->domain.score = a->score;
    a->domain.coach = a->coach;
    store_err err = {0};
    a->st = store_open(url, &so, &err);
    if (!a->st) {
        log_line l;
        if (log_begin(log, &l, LOG_ERROR, "cannot open storage")) {
            log_str(&l, "backend", strncmp(url, "sqlite:", 7) == 0 ? "sqlite" : "postgres");
            log_str(&l, "error", err.msg);
            log_end(&l);
        }
        return -1;
    }
    score_ctx_set_store(a->score, a->st);
    /* tenant models an earlier release kept on disk move into the store
     * once, before anything is served (a failure is logged and retried at
     * the next start: the files stay) */
    int imported = 0;
    score_import_files(a->score, a->st, log, &imported);

    http_config hc = {
        .host = cfg->host,
        .port = cfg->port,
        .max_body = cfg->max_body,
        .max_header = cfg->max_header,
        .max_url = cfg->max_url,
        .max_connections = cfg->max_connections,
        .header_timeout_ms = cfg->header_timeout_ms,
        .body_timeout_ms = cfg->body_timeout_ms,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .shutdown_timeout_ms = cfg->shutdown_timeout_ms,
        .ws_max_message = cfg->ws_max_message,
        .ws_max_queue = cfg->ws_max_queue,
        .ws_ping_ms = cfg->ws_ping_ms,
        .ws_writers = cfg->ws_writers,
        .ws_parallel_min = cfg->ws_parallel_min,
        .cors_origins = cfg->cors_origins,
        .trusted_proxies = cfg->trusted_proxies,
    };
    a->srv = http_server_new(loop, &hc, a->router, log, a->m);
    if (!a->srv) {
        log_msg(log, LOG_ERROR, "startup failed", "out of memory");
        return -1;
    }
    metrics_gauge_fn(a->m, "ehub_http_connections", "open HTTP and WebSocket connections", g_conns, a);
    metrics_gauge_fn(a->m, "ehub_ws_connections", "open WebSocket connections", g_ws, a);
    metrics_gauge_fn(a->m, "ehub_http_inflight_requests", "requests being handled", g_inflight, a);
    metrics_gauge_fn(a->m, "ehub_threadpool_queue_depth", "work items queued or running on the thread pool", g_pool, a);
    metrics_gauge_fn(a->m, "ehub_uptime_seconds", "seconds since start", g_uptime, a);
    metrics_gauge_fn(a->m, "process_resident_memory_bytes", "resident set size", metrics_process_rss_bytes, NULL);
    metrics_gauge_fn(a->m, "process_open_fds", "open file descriptors", metrics_process_open_fds, NULL);

    if (api_system_register(a) || leads_api_register(a) || leads_ghl_register(a) ||
        leads_import_register(a) || leads_settings_register(a) || ml_serve_register(a) || score_api_register(a) ||
        nurture_register(a) || auth_api_register(a) || coach_api_register(a) || realtime_start(a) ||
        score_registry_start(a) || nurture_wake_start(a) ||
        privacy_register(a) || reports_register(a) || api_openapi_build(a) || web_register(a)) {
        log_msg(log, LOG_ERROR, "startup failed", "cannot register routes");
        return -1;
    }
    return 0;
}

static void on_shutdown_done(void *ud) {
    app *a = ud;
    nurture_stop(a->nurture);
    privacy_drain(a); /* a last webhook checkpoint: the HTTP server has drained */
    realtime_stop(a);
    coach_drafts_stop(a->drafts);
    app_posts_stop(a); /* the requests that waited on posts have been answered */
    uv_close((uv_handle_t *)&a->sig_term, NULL);
    uv_close((uv_handle_t *)&a->sig_int, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
    app *a = h->data;
    if (a->stopping) {
        log_msg(a->log, LOG_WARN, "second signal: exiting now", NULL);
        exit(1);
    }
    a->stopping = 1;
    log_line l;
    if (log_begin(a->log, &l, LOG_INFO, "shutting down")) {
        log_str(&l, "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT");
        log_int(&l, "inflight", (int64_t)http_server_inflight(a->srv));
        log_int(&l, "websockets", (int64_t)http_server_ws_connections(a->srv));
        log_end(&l);
    }
    http_server_shutdown(a->srv, on_shutdown_done, a);
}

int app_run(app *a) {
    int rc = http_server_listen(a->srv);
    if (rc) {
        log_line l;
        if (log_begin(a->log, &l, LOG_ERROR, "cannot listen")) {
            log_str(&l, "host", a->cfg.host);
            log_int(&l, "port", a->cfg.port);
            log_str(&l, "error", uv_strerror(rc));
            log_end(&l);
        }
        return -1;
    }
    uv_signal_init(a->loop, &a->sig_term);
    uv_signal_init(a->loop, &a->sig_int);
    a->sig_term.data = a->sig_int.data = a;
    uv_signal_start(&a->sig_term, on_signal, SIGTERM);
    uv_signal_start(&a->sig_int, on_signal, SIGINT);
    log_line l;
    if (log_begin(a->log, &l, LOG_INFO, "listening")) {
        log_str(&l, "host", a->cfg.host);
        log_int(&l, "port", http_server_port(a->srv));
        log_str(&l, "store", store_kind_name(store_get_kind(a->st)));
        log_str(&l, "bus", a->cfg.bus);
        log_str(&l, "version", EHUB_VERSION);
        log_end(&l);
    }
    uv_run(a->loop, UV_RUN_DEFAULT);
    log_msg(a->log, LOG_INFO, "stopped", NULL);
    return a->exit_code;
}

void app_free(app *a) {
    /* Storage last: store_close waits for queued writes and checkpoints. */
    http_server_free(a->srv);
    store_close(a->st);
    app_posts_stop(a); /* if the loop never ran to shutdown (main runs it once more) */
    realtime_free(a); /* after the store: its last commits may still call the hook */
    coach_drafts_free(a->drafts);
    score_ctx_free(a->score);
    nurture_free(a->nurture);
    privacy_stop(a); /* its timer closes with the loop's last run, as nurture's */
    coach_ctx_free(a->coach);
    llm_free(a->llm);
    http_router_free(a->router);
    app_routes_free(a);
    leads_ctx_free(a->leads);
    ml_serve_free(a->ml);
    auth_ctx_free(a->auth);
    web_free(a->web);
    metrics_free(a->m);
    eh_free(a->openapi);
    memset(a, 0, sizeof *a);
}

typedef struct demo_seed {
    int64_t tenant;
    int created;
} demo_seed;

static int seed_tenant(store_tx *tx, void *arg, store_err *err) {
    demo_seed *d = arg;
    int rc = store_tenant_find(tx, "demo", &d->tenant, err);
    if (rc != STORE_NOTFOUND) return rc;
    d->created = 1;
    return store_tenant_create(tx, "demo", "Demo Realty", &d->tenant, err);
}

static int find_demo_tx(store_tx *tx, void *arg, store_err *err) {
    return store_tenant_find(tx, "demo", (int64_t *)arg, err);
}

int app_demo_seed(app *a, char key_out[AUTH_KEY_LEN + 1]) {
    store_err err = {0};
    demo_seed d = {0};
    /* demo/sacramento.csv of the source tree the binary was built in
     * (build/ehub -> ../demo, build/asan/ehub -> ../../demo) */
    char exe[1024], csv[1100];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    snprintf(csv, sizeof csv, "%s/../demo/sacramento.csv", exe);
    if (access(csv, R_OK) != 0) /* build/asan/ehub */
        snprintf(csv, sizeof csv, "%s/../../demo/sacramento.csv", exe);
    if (store_write(a->st, 0, seed_tenant, &d, &err) ||
        demo_data_seed(a->st, d.tenant, d.created, access(csv, R_OK) == 0 ? csv : NULL, key_out, &err)) {
        log_msg(a->log, LOG_ERROR, "demo seed failed", err.msg);
        return -1;
    }
    log_msg(a->log, LOG_INFO, d.created ? "demo tenant created" : "demo tenant ready", NULL);
    if (d.created) {
        /* the demo's listings are enough to value homes at once */
        char why[512];
        json_t *rep = NULL;
        int rc = score_train(a->st, a->score, d.tenant, SCORE_VALUE, "demo", 42, clock_wall_ms(), &rep, NULL, why,
                             sizeof why);
        log_line l;
        if (rc == 0 && log_begin(a->log, &l, LOG_INFO, "demo property_value model trained")) {
            log_int(&l, "listings", json_integer_value(json_object_get(rep, "listings")));
            log_double(&l, "test_rmse_log_price", json_number_value(json_object_get(json_object_get(rep, "metrics"), "rmse")));
            log_end(&l);
        } else if (rc) {
            log_msg(a->log, LOG_WARN, "demo property_value model not trained", why);
        }
        json_decref(rep);
    }
    return 0;
}

int app_demo_users_seed(app *a, char *password_out, size_t len) {
    const char *env = getenv("EHUB_DEMO_PASSWORD");
    char pw[AUTH_PASSWORD_MAX + 1];
    if (env && *env) {
        const char *why = auth_password_problem(env, strlen(env));
        if (why) {
            log_msg(a->log, LOG_ERROR, "EHUB_DEMO_PASSWORD refused", why);
            return -1;
        }
        snprintf(pw, sizeof pw, "%s", env);
    } else {
        demo_password(pw);
    }
    store_err err = {0};
    int64_t tenant = 0;
    if (store_write(a->st, 0, find_demo_tx, &tenant, &err) || demo_users_seed(a->st, tenant, pw, &err)) {
        log_msg(a->log, LOG_ERROR, "demo users failed", err.msg);
        return -1;
    }
    snprintf(password_out, len, "%s", pw);
    return 0;
}
