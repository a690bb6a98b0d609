/* libFuzzer target for the HTTP request path: the real server (parser,
 * limits, router, replies, pipelining, WebSocket upgrade, thread-pool
 * bridge) on a libuv loop, fed through a real loopback socket. The input is
 * written by a client that then half-closes; the loop runs until the server
 * hangs up. A harness may keep its fixture in statics: it is not ehub code. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http.h"

static uv_loop_t loop;
static http_server *srv;

static void h_health(http_req *q, void *ud) { http_reply(q, 200, "application/json", "{}", 2); }
static void h_echo(http_req *q, void *ud) {
    json_t *j = http_req_json(q);
    if (j) http_reply_json(q, 200, j);
}
static void work(void *arg) {}
static void done(http_req *q, void *arg) { http_reply_error(q, 503, "x", http_req_param(q, "id") ? "y" : "z"); }
static void h_async(http_req *q, void *ud) {
    if (http_req_query(q, "a")) http_res_header(q, "X-A", "1");
    if (http_req_work(q, work, done, NULL)) http_reply_error(q, 500, "x", "y");
}
static void ws_msg(http_ws *ws, int op, const char *d, size_t n, void *ud) { http_ws_send(ws, op, d, n); }
static void ws_close(http_ws *ws, int code, void *ud) {}
static const http_ws_handler wsh = {ws_msg, ws_close};
static void h_ws(http_req *q, void *ud) { http_ws_accept(q, &wsh, NULL, NULL); }

static void setup(void) {
    uv_loop_init(&loop);
    http_router *r = http_router_new();
    http_router_add(r, "GET", "/health", h_health, NULL, 0, NULL);
    http_router_add(r, "POST", "/echo", h_echo, NULL, 0, NULL);
    http_router_add(r, "GET", "/a/{id}", h_async, NULL, 0, NULL);
    http_router_add(r, "GET", "/ws", h_ws, NULL, HTTP_ROUTE_WS, NULL);
    http_config cfg = {.host = "127.0.0.1", .port = 0, .max_body = 4096, .max_header = 2048,
                       .max_url = 512, .max_connections = 100, .header_timeout_ms = 60000,
                       .body_timeout_ms = 60000, .idle_timeout_ms = 60000,
                       .shutdown_timeout_ms = 1000, .ws_max_message = 1024,
                       .ws_max_queue = 65536, .ws_ping_ms = 60000, .cors_origins = "*"};
    logger *lg = log_new(open("/dev/null", O_WRONLY), LOG_OFF);
    srv = http_server_new(&loop, &cfg, r, lg, NULL);
    if (!srv || http_server_listen(srv)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!srv) setup();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_server_port(srv)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) abort();
    fcntl(fd, F_SETFL, O_NONBLOCK);
    size_t off = 0;
    int eof = 0;
    char sink[65536];
    for (int spins = 0; spins < 200000 && !eof; spins++) {
        if (off < size) {
            ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
            if (w > 0) off += (size_t)w;
            else if (w < 0 && errno != EAGAIN) off = size;
            if (off == size) shutdown(fd, SHUT_WR);
        } else if (size == 0 && off == 0) {
            shutdown(fd, SHUT_WR);
            off = 1;
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t r = recv(fd, sink, sizeof sink, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) eof = 1;
    }
    close(fd);
    /* Let the server notice and free the connection before the next input. */
    for (int i = 0; i < 100 && http_server_connections(srv) > 0; i++) uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}
