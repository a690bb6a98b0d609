/* http — the HTTP/1.1 and WebSocket server: libuv for I/O, http-parser for
 * requests, wslay (through ws.h) for WebSocket frames, one port for both.
 *
 * The server runs on one libuv loop thread. Handlers run on that thread and
 * must not block: storage, ML and outbound calls go through http_req_work,
 * which runs a function on the libuv thread pool and finishes on the loop.
 * A handler answers exactly once with one of the http_reply* functions,
 * either before it returns or later (after work). A request whose client
 * went away is still answered by its handler; the reply is then dropped.
 *
 * Limits (head size, body size, URL length) and timeouts (head, body, idle
 * keep-alive) are enforced per connection; violations get a JSON error
 * (400/408/413/414/431) and the connection is closed. Responses to pipelined
 * requests go out in order because a connection handles one request at a
 * time and parses the next only after answering. */
#ifndef EH_HTTP_H
#define EH_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/arena.h"
#include "base/log.h"
#include "base/metrics.h"

typedef struct http_server http_server;
typedef struct http_req http_req;
typedef struct http_router http_router;
typedef struct http_ws http_ws;

/* ---- router ---- */

typedef void (*http_handler)(http_req *req, void *ud);

enum {
    HTTP_ROUTE_PUBLIC = 1 << 0, /* reachable without authentication */
    HTTP_ROUTE_WS = 1 << 1,     /* a WebSocket endpoint (GET + Upgrade) */
    HTTP_ROUTE_HIDDEN = 1 << 2, /* left out of /openapi.json (debug routes) */
    HTTP_ROUTE_STREAM = 1 << 3, /* the handler runs when the headers are in and reads the body
                                   in pieces with http_req_stream_body (no --max-body) */
};

/* What /openapi.json says about a route. Strings are not copied: use
 * literals or storage that outlives the router. */
typedef struct http_route_doc {
    const char *summary;
    const char *tag;
    const char *request;   /* short description of the request body, or NULL */
    const char *response;  /* short description of the 200 response */
} http_route_doc;

http_router *http_router_new(void);
void http_router_free(http_router *r);
/* Registers method + pattern. Pattern segments are literal or {name}
 * (e.g. "/v1/leads/{id}"). Returns 0, or -1 on OOM or a malformed pattern
 * or a duplicate method+pattern. */
int http_router_add(http_router *r, const char *method, const char *pattern, http_handler fn,
                    void *ud, int flags, const http_route_doc *doc);

typedef struct http_route_info {
    const char *method, *pattern;
    int flags;
    const http_route_doc *doc;
} http_route_info;
/* Calls fn for every route in registration order. */
void http_router_each(const http_router *r, void (*fn)(const http_route_info *ri, void *ud),
                      void *ud);

/* The handler for requests that match no route (the dashboard's files and
 * its client-side routes): it answers them all, 404s included. label names
 * them in logs and metrics (e.g. "/{web}"; not copied). NULL fn: plain JSON
 * 404s again. */
void http_router_set_fallback(http_router *r, http_handler fn, void *ud, const char *label);

/* Matching, used by the server and the unit tests. */
typedef struct http_match {
    http_handler fn;
    void *ud;
    const char *pattern;  /* the matched route's pattern (for metrics/logs) */
    int flags;
    int nparams;
    struct { const char *name; const char *val; size_t len; } params[8];
    char allow[128];      /* on 405: the methods the path allows, e.g. "GET, HEAD, POST" */
} http_match;
enum { HTTP_MATCH_OK = 0, HTTP_MATCH_NOT_FOUND = 404, HTTP_MATCH_METHOD = 405 };
/* path: the decoded path without query. HEAD matches GET routes. Param
 * values point into path. */
int http_router_match(const http_router *r, const char *method, const char *path, http_match *m);
/* Fills m with the fallback handler (after HTTP_MATCH_NOT_FOUND); 0 if none. */
int http_router_fallback(const http_router *r, http_match *m);

/* ---- server ---- */

typedef struct http_config {
    const char *host;
    int port;
    size_t max_body, max_header, max_url, max_connections;
    unsigned header_timeout_ms, body_timeout_ms, idle_timeout_ms, shutdown_timeout_ms;
    size_t ws_max_message, ws_max_queue;
    unsigned ws_ping_ms;
    /* Fan-out writes (see http_server_uncork): helper threads that write a
     * share of the gathered WebSocket bytes alongside the loop, when an
     * uncork has at least ws_parallel_min connections to write. 0 = none;
     * none are started either when the process may run on one CPU only. */
    int ws_writers;
    size_t ws_parallel_min;   /* 0 = 256 */
    const char *cors_origins;  /* "", "*", or comma-separated origins */
    const char *trusted_proxies; /* --trusted-proxies: CIDR list ("" = none; see http_req_client) */
} http_config;

/* Creates a server on loop (not yet listening). router, log and metrics are
 * borrowed and must outlive the server; metrics may be NULL. */
http_server *http_server_new(uv_loop_t *loop, const http_config *cfg, http_router *router,
                             logger *log, metrics *m);
/* Binds and listens. Returns 0 or a libuv error code. The bound port (useful
 * with port 0) is in http_server_port. */
int http_server_listen(http_server *s);
int http_server_port(const http_server *s);
/* Graceful shutdown: stops accepting, closes idle connections, lets
 * in-flight requests finish (up to shutdown_timeout_ms, then closes them),
 * closes WebSockets with 1001. done(ud) runs on the loop when every
 * connection is closed. */
void http_server_shutdown(http_server *s, void (*done)(void *ud), void *ud);
/* Frees the server; call after shutdown's done (or before listen). */
void http_server_free(http_server *s);

/* Between cork and uncork, what http_ws_send writes is gathered per
 * connection and each connection gets one write at the last uncork (calls
 * nest). A fan-out of a burst of events then costs one write(2) per
 * subscriber instead of one per event and subscriber. Anything else sent
 * on a connection meanwhile (a close, a pong) flushes its bytes first, so
 * order holds. Uncork in the same loop iteration. With ws_writers helper
 * threads, a large uncork's writes to connections with nothing queued in
 * libuv are shared between the loop and the helpers (plain non-blocking
 * sends on the sockets, nothing else); the loop waits for them, then
 * queues what a socket did not take, as for its own writes. */
void http_server_cork(http_server *s);
void http_server_uncork(http_server *s);

size_t http_server_connections(const http_server *s);
size_t http_server_ws_connections(const http_server *s);
size_t http_server_inflight(const http_server *s);
/* Work items queued or running on the thread pool. */
size_t http_server_pool_depth(const http_server *s);
int64_t http_server_started_ms(const http_server *s);

/* ---- requests ---- */

const char *http_req_method(const http_req *q);  /* "GET", ... */
const char *http_req_path(const http_req *q);    /* decoded, without query */
const char *http_req_url(const http_req *q);     /* raw request target */
const char *http_req_id(const http_req *q);
/* Case-insensitive; the first header with that name, or NULL. */
const char *http_req_header(const http_req *q, const char *name);
/* A query parameter, percent-decoded (arena memory), or NULL. */
const char *http_req_query(http_req *q, const char *name);
/* A path parameter from the route pattern ({name}), or NULL. */
const char *http_req_param(const http_req *q, const char *name);
const char *http_req_body(const http_req *q, size_t *len);
/* Per-request memory, freed after the reply is sent. */
arena *http_req_arena(http_req *q);
http_server *http_req_server(http_req *q);
/* Tenant name for the request log line (copied). */
void http_req_set_tenant(http_req *q, const char *tenant);
/* 1 once the client connection has gone away. */
int http_req_gone(const http_req *q);
/* The client's address ("127.0.0.1", "::1") into out (46 bytes is enough);
 * "" if unknown or the connection is gone. Returns out. */
const char *http_req_peer(const http_req *q, char *out, size_t outlen);
/* The client's address: the peer's, unless the peer is one of the server's
 * trusted proxies (http_config.trusted_proxies), in which case the
 * rightmost X-Forwarded-For hop that is not a trusted proxy (every
 * X-Forwarded-For header, in order). Use it for anything keyed on who the
 * client is (login limits, the audit trail, the request log). Returns out. */
const char *http_req_client(const http_req *q, char *out, size_t outlen);
/* The pattern of the route that matched ("/v1/leads/{id}"), or NULL. */
const char *http_req_route(const http_req *q);

/* ---- trusted proxies (src/http/proxy.c) ----
 * A list of address ranges ("10.0.0.0/8, 192.168.1.7, fd00::/8"): at most
 * 64, IPv4-mapped IPv6 matches IPv4 rules. http_proxies_parse: 0 with *out
 * (caller frees with http_proxies_free; an empty spec gives an empty list),
 * or -1 with a message in err. http_proxies_client: the client address for
 * a request from peer carrying X-Forwarded-For xff (NULL if none): peer
 * itself unless trusted, else the rightmost hop that is not a trusted proxy
 * (a malformed hop stops the walk at the proxy right of it). Returns out. */
typedef struct http_proxies http_proxies;
int http_proxies_parse(const char *spec, http_proxies **out, char *err, size_t errlen);
void http_proxies_free(http_proxies *p);
int http_proxies_count(const http_proxies *p);
int http_proxies_trusts(const http_proxies *p, const char *addr);
const char *http_proxies_client(const http_proxies *p, const char *peer, const char *xff, char *out, size_t outlen);

/* Parses the body as JSON (object or array). On failure answers 400 itself
 * (invalid_json, with the parser's message) or 415 (not JSON) and returns
 * NULL. The caller owns the result (json_decref). */
json_t *http_req_json(http_req *q);
/* The same checks (415 unless JSON, 400 when empty) for a handler that
 * reads the JSON itself: 0 with the body, or -1 once answered. */
int http_req_json_body(http_req *q, const char **body, size_t *len);

/* ---- streamed bodies (HTTP_ROUTE_STREAM routes) ----
 * The handler is called as soon as the headers are in. It either replies
 * at once (the body is then discarded and the connection closed after the
 * reply), or calls http_req_stream_body, possibly later (after async work),
 * to receive the body in pieces on the loop thread. Until then, and while
 * paused, the server stops reading (backpressure) and no timeout runs; while
 * pieces flow, --body-timeout applies to the gap between them. */
typedef struct http_body_stream {
    /* A piece of the body (chunked encoding already removed); data is valid
     * only during the call. May call http_req_pause. */
    void (*on_data)(http_req *q, const char *data, size_t len, void *ud);
    /* The body ended: status 0 when complete, else why it cannot be read on:
     * 413 (past max), 400 (malformed), 408 (too slow), or -1 (the client is
     * gone). Called exactly once; the handler then replies (after any work
     * of its own finishes). */
    void (*on_end)(http_req *q, int status, void *ud);
} http_body_stream;

/* max: largest body accepted (413 past it, also checked against
 * Content-Length up front). Returns 0, or -1 if the client is already gone
 * or the route does not stream (reply anyway). */
int http_req_stream_body(http_req *q, const http_body_stream *cb, void *ud, size_t max);
void http_req_pause(http_req *q);
void http_req_resume(http_req *q);

/* ---- responses (each request gets exactly one) ---- */

/* Adds a response header (copied). Call before replying. Names and values
 * with CR/LF are refused (returns -1). */
int http_res_header(http_req *q, const char *name, const char *value);
/* body is copied. */
void http_reply(http_req *q, int status, const char *content_type, const void *body,
                size_t len);
/* Steals the reference to body. */
void http_reply_json(http_req *q, int status, json_t *body);
/* {"error":{"code":code,"message":message,"request_id":...}} */
void http_reply_error(http_req *q, int status, const char *code, const char *message);

/* ---- streamed responses (Server-Sent Events) ----
 * http_stream_begin sends the status line and headers (plus any set with
 * http_res_header) and leaves the response open; the body follows in
 * pieces through http_stream_write (chunked on HTTP/1.1; the connection
 * closes after the response either way). At most max_queued bytes may wait
 * for a slow client: a write past that returns -1 and writes nothing (end
 * the stream then). on_stop(q, ud) is called once if the client goes away
 * or the server shuts down; the handler must then call http_stream_end (at
 * once or later) and not write any more. http_stream_end finishes the
 * response and the request (q is invalid after it).
 * http_stream_begin returns 0, or -1 if the client is already gone (then
 * nothing was sent: reply as usual, the reply is dropped). */
int http_stream_begin(http_req *q, int status, const char *content_type, size_t max_queued,
                      void (*on_stop)(http_req *q, void *ud), void *ud);
int http_stream_write(http_req *q, const void *data, size_t len);
void http_stream_end(http_req *q);

/* Runs work(arg) on the thread pool, then done(q, arg) on the loop. done
 * always runs (even if the client left) so it can free arg; it must reply.
 * Returns 0, or a libuv error code (then neither function runs). */
int http_req_work(http_req *q, void (*work)(void *arg), void (*done)(http_req *q, void *arg),
                  void *arg);

/* ---- WebSocket ---- */

typedef struct http_ws_handler {
    /* A complete text or binary message (data valid during the call). */
    void (*on_message)(http_ws *ws, int opcode, const char *data, size_t len, void *ud);
    /* The connection is gone; ud may be freed here. Called exactly once. */
    void (*on_close)(http_ws *ws, int code, void *ud);
} http_ws_handler;

/* Completes the handshake for a request on an HTTP_ROUTE_WS route and turns
 * the connection into a WebSocket. On failure (not an upgrade, bad key)
 * answers 400/426 itself and returns NULL. protocol: the subprotocol to echo
 * in Sec-WebSocket-Protocol, or NULL. After this call the request is
 * finished; do not reply to it. */
http_ws *http_ws_accept(http_req *q, const http_ws_handler *h, void *ud, const char *protocol);
/* Queues a message. Returns 0; or -1 if the connection is closing, or if
 * the backlog bound was hit, in which case the connection is being closed
 * with 1008 (policy: slow consumer). */
int http_ws_send(http_ws *ws, int opcode, const char *data, size_t len);
void http_ws_close(http_ws *ws, int code, const char *reason);
size_t http_ws_backlog(const http_ws *ws);

/* One message encoded once as a WebSocket frame, to send to many
 * connections (a fan-out): server frames are unmasked, so every connection
 * gets the same bytes. Refcounted; loop thread only. */
typedef struct http_ws_frame http_ws_frame;
/* A text (1) or binary (2) frame of len bytes at data (copied). The
 * caller holds one reference. NULL on OOM or a bad opcode. */
http_ws_frame *http_ws_frame_new(int opcode, const char *data, size_t len);
void http_ws_frame_unref(http_ws_frame *f);
/* Sends f on ws as http_ws_send would, with the same backlog bound and
 * results. Corked, the connection keeps a reference instead of a copy
 * (up to a few per connection) and writes it at uncork; uncorked, the
 * bytes go out at once (copied only if the socket does not take them
 * all). When the session has frames of its own queued (a reply deferred
 * inside its input processing), it falls back to the session's queue so
 * order holds. */
int http_ws_send_frame(http_ws *ws, http_ws_frame *f);

#endif
