/* System routes: liveness, readiness, metrics, the API description, and the
 * debug routes tests and benchmarks use. */
#include <string.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "realtime/realtime.h"

/* GET /health — liveness, no storage access: answers while the loop runs.
 * Formatted directly: monitors and load balancers call it constantly, and
 * building it through jansson cost more than the rest of the request. */
static void h_health(http_req *q, void *ud) {
    app *a = ud;
    /* assembled by hand: printf's float formatting was half of a /health */
    char body[400], *o = body;
    int64_t up = clock_wall_ms() - http_server_started_ms(a->srv);
    if (up < 0) up = 0;
#define PUT(s) (memcpy(o, s, sizeof s - 1), o += sizeof s - 1)
    PUT("{\"status\":\"healthy\",\"service\":\"ehub\",\"version\":\"" EHUB_VERSION "\",\"uptime_seconds\":");
    o = buf_fmt_u64(o, (uint64_t)up / 1000);
    unsigned ms = (unsigned)(up % 1000);
    *o++ = '.';
    *o++ = (char)('0' + ms / 100);
    *o++ = (char)('0' + ms / 10 % 10);
    *o++ = (char)('0' + ms % 10);
    PUT(",\"connections\":");
    o = buf_fmt_u64(o, http_server_connections(a->srv));
    PUT(",\"websocket_connections\":");
    o = buf_fmt_u64(o, http_server_ws_connections(a->srv));
    PUT(",\"inflight_requests\":");
    o = buf_fmt_u64(o, http_server_inflight(a->srv));
    PUT(",\"realtime_connections\":");
    o = buf_fmt_u64(o, realtime_clients(a));
    PUT("}");
#undef PUT
    http_reply(q, 200, "application/json", body, (size_t)(o - body));
}

/* GET /ready — storage reachable and migrations applied. The checks block,
 * so they run on the thread pool. */
typedef struct ready_job {
    app *a;
    int ping_rc, ver_rc, applied, known;
    store_err err;
} ready_job;

static void ready_work(void *arg) {
    ready_job *j = arg;
    j->ping_rc = store_ping(j->a->st, &j->err);
    if (j->ping_rc == STORE_OK)
        j->ver_rc = store_schema_version(j->a->st, &j->applied, &j->known, &j->err);
}

static void ready_done(http_req *q, void *arg) {
    ready_job *j = arg;
    /* A node cut off from the bus serves its own clients but misses other
     * nodes' events until it reconnects: not ready for new traffic. */
    int bus_ok = realtime_bus_connected(j->a);
    int ok = j->ping_rc == STORE_OK && j->ver_rc == STORE_OK && j->applied == j->known && bus_ok;
    json_t *storage = json_pack("{s:s, s:b, s:i, s:i}", "backend",
                                store_kind_name(store_get_kind(j->a->st)), "reachable",
                                j->ping_rc == STORE_OK, "schema_version", j->applied,
                                "schema_latest", j->known);
    if (!ok && storage) json_object_set_new(storage, "error", json_string(j->err.msg[0] ? j->err.msg : "migrations pending"));
    json_t *bus = json_pack("{s:s, s:b}", "kind", realtime_bus_kind(j->a), "connected", bus_ok);
    json_t *body = json_pack("{s:s, s:o, s:o}", "status", ok ? "ready" : "not_ready", "storage", storage, "bus", bus);
    http_reply_json(q, ok ? 200 : 503, body);
    eh_free(j);
}

static void h_ready(http_req *q, void *ud) {
    ready_job *j = eh_calloc(1, sizeof *j);
    if (!j) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    j->a = ud;
    if (http_req_work(q, ready_work, ready_done, j)) {
        eh_free(j);
        http_reply_error(q, 503, "overloaded", "cannot schedule work");
    }
}

/* GET /metrics — Prometheus text format. */
static void h_metrics(http_req *q, void *ud) {
    app *a = ud;
    buf b;
    buf_init(&b, 16 * 1024 * 1024);
    if (metrics_render(a->m, &b)) {
        buf_free(&b);
        http_reply_error(q, 500, "internal", "cannot render metrics");
        return;
    }
    http_reply(q, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
    buf_free(&b);
}

static void h_openapi(http_req *q, void *ud) {
    app *a = ud;
    http_res_header(q, "Cache-Control", "no-cache");
    http_reply(q, 200, "application/json", a->openapi, a->openapi_len);
}

extern const char api_docs_html[];

static void h_docs(http_req *q, void *ud) {
    http_res_header(q, "Content-Security-Policy",
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'");
    http_res_header(q, "X-Content-Type-Options", "nosniff");
    http_reply(q, 200, "text/html; charset=utf-8", api_docs_html, strlen(api_docs_html));
}

/* POST /debug/echo — answers with the JSON it was sent (parsed and
 * re-serialised, so it measures the JSON path too). --test-routes only. */
static void h_echo(http_req *q, void *ud) {
    json_t *j = http_req_json(q);
    if (!j) return;
    http_reply_json(q, 200, j);
}

/* GET /debug/ws-echo — a WebSocket that sends every message back.
 * --test-routes only. */
static void ws_echo_msg(http_ws *ws, int opcode, const char *data, size_t len, void *ud) {
    http_ws_send(ws, opcode, data, len);
}
static void ws_echo_close(http_ws *ws, int code, void *ud) {}
static const http_ws_handler ws_echo = {ws_echo_msg, ws_echo_close};

static void h_ws_echo(http_req *q, void *ud) { http_ws_accept(q, &ws_echo, NULL, NULL); }

static const http_route_doc d_health = {"Liveness: status, version, uptime, connection counts", "system", NULL,
                                        "{status, service, version, uptime_seconds, connections, websocket_connections, inflight_requests, realtime_connections}"};
static const http_route_doc d_ready = {"Readiness: storage reachable and migrations applied", "system", NULL,
                                       "{status, storage:{backend, reachable, schema_version, schema_latest}, bus:{kind, connected}}; 503 when not ready"};
static const http_route_doc d_metrics = {"Prometheus metrics", "system", NULL, "text exposition format 0.0.4"};
static const http_route_doc d_openapi = {"This API description (OpenAPI 3)", "system", NULL, "OpenAPI document"};
static const http_route_doc d_docs = {"Readable HTML page of the API description", "system", NULL, "HTML"};
static const http_route_doc d_echo = {"Echo the JSON body (test builds)", "debug", "any JSON", "the same JSON"};
static const http_route_doc d_ws_echo = {"WebSocket echo (test builds)", "debug", NULL, "101 Switching Protocols"};

int api_system_register(app *a) {
    http_router *r = a->router;
    int rc = 0;
    rc |= http_router_add(r, "GET", "/health", h_health, a, HTTP_ROUTE_PUBLIC, &d_health);
    rc |= http_router_add(r, "GET", "/ready", h_ready, a, HTTP_ROUTE_PUBLIC, &d_ready);
    rc |= http_router_add(r, "GET", "/metrics", h_metrics, a, HTTP_ROUTE_PUBLIC, &d_metrics);
    rc |= http_router_add(r, "GET", "/openapi.json", h_openapi, a, HTTP_ROUTE_PUBLIC, &d_openapi);
    rc |= http_router_add(r, "GET", "/docs", h_docs, a, HTTP_ROUTE_PUBLIC, &d_docs);
    if (a->cfg.test_routes) {
        rc |= http_router_add(r, "POST", "/debug/echo", h_echo, a, HTTP_ROUTE_PUBLIC | HTTP_ROUTE_HIDDEN, &d_echo);
        rc |= http_router_add(r, "GET", "/debug/ws-echo", h_ws_echo, a,
                              HTTP_ROUTE_PUBLIC | HTTP_ROUTE_HIDDEN | HTTP_ROUTE_WS, &d_ws_echo);
    }
    return rc ? -1 : 0;
}
