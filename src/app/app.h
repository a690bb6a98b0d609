/* app — the server context: everything a running ehub owns (event loop,
 * configuration, logger, metrics, storage, router, HTTP server), created in
 * app_init, passed to every handler through the router's user data, and torn
 * down in app_free. There is no other process-wide state. */
#ifndef EH_APP_H
#define EH_APP_H

#include <uv.h>

#include "base/config.h"
#include "base/log.h"
#include "base/metrics.h"
#include "http/http.h"
#include "store/store.h"

#define EHUB_VERSION "0.1.0"

typedef struct app {
    uv_loop_t *loop;
    ehub_config cfg;
    logger *log;
    metrics *m;
    store *st;
    http_router *router;
    http_server *srv;
    metric *m_store_lat, *m_store_err;
    char *openapi;  /* /openapi.json, built once after all routes are registered */
    size_t openapi_len;
    uv_signal_t sig_term, sig_int;
    int stopping;
    int exit_code;
} app;

/* Opens storage (applying migrations unless cfg->no_migrate), builds the
 * router and the server. Does not listen. Returns 0, or -1 after logging why
 * (the app is then safe to app_free). */
int app_init(app *a, uv_loop_t *loop, const ehub_config *cfg, logger *log);
/* Listens and runs the loop until SIGTERM/SIGINT and a graceful shutdown. */
int app_run(app *a);
void app_free(app *a);

/* Creates the demo tenant (and, as the domains land, its sample data) if
 * missing. Blocking; call before app_run. */
int app_demo_seed(app *a);

/* Route registration, one function per module. */
int api_system_register(app *a);
/* Builds a->openapi from the router. */
int api_openapi_build(app *a);

#endif
