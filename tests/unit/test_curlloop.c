/* curlloop: real transfers over loopback TCP against a small HTTP server
 * running on the same libuv loop (so a transfer that blocked the loop
 * would never be answered): many at once under the concurrency bound, a
 * slow answer while others go on, a refused connection, a timeout, and
 * shutdown with transfers in flight (within the grace, and past it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/curlloop.h"

/* ---- the server: GET /fast answers now, /slow after 300 ms, /hang never ---- */

typedef struct conn {
    uv_tcp_t tcp;
    char in[4096];
    size_t len;
    uv_timer_t delay;
    int delay_on;
    int closing; /* handles still to close */
    struct srv *s;
} conn;

typedef struct srv {
    uv_tcp_t listener;
    int port;
    int conns, requests;
} srv;

static const char OK_REPLY[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";

static void on_wrote(uv_write_t *w, int status) {
    (void)status;
    free(w);
}

static void reply(conn *c) {
    uv_write_t *w = malloc(sizeof *w);
    uv_buf_t b = uv_buf_init((char *)OK_REPLY, sizeof OK_REPLY - 1);
    if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_wrote)) free(w);
}

static void on_delay(uv_timer_t *t) { reply(t->data); }

static void on_conn_closed(uv_handle_t *h) {
    conn *c = h->data;
    if (--c->closing == 0) free(c); /* the last of its handles */
}

static void conn_close(conn *c) {
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    c->s->conns--;
    c->closing = 1 + c->delay_on;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    if (c->delay_on) uv_close((uv_handle_t *)&c->delay, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
    conn *c = h->data;
    (void)sz;
    *b = uv_buf_init(c->in + c->len, (unsigned)(sizeof c->in - c->len - 1));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    conn *c = st->data;
    (void)b;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    c->in[c->len] = 0;
    char *end;
    while ((end = strstr(c->in, "\r\n\r\n"))) { /* GETs only: no bodies */
        c->s->requests++;
        if (!strncmp(c->in, "GET /fast", 9)) reply(c);
        else if (!strncmp(c->in, "GET /slow", 9)) {
            if (!c->delay_on) {
                uv_timer_init(c->tcp.loop, &c->delay);
                c->delay.data = c;
                c->delay_on = 1;
            }
            uv_timer_start(&c->delay, on_delay, 300, 0);
        } /* /hang: nothing */
        size_t used = (size_t)(end + 4 - c->in);
        memmove(c->in, end + 4, c->len - used + 1);
        c->len -= used;
    }
}

static void on_connection(uv_stream_t *l, int status) {
    srv *s = l->data;
    if (status) return;
    conn *c = calloc(1, sizeof *c);
    c->s = s;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp)) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    s->conns++;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void srv_start(uv_loop_t *loop, srv *s) {
    memset(s, 0, sizeof *s);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_init(loop, &s->listener), 0);
    s->listener.data = s;
    assert_int_equal(uv_tcp_bind(&s->listener, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 512, on_connection), 0);
    struct sockaddr_in got;
    int len = sizeof got;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len);
    s->port = ntohs(got.sin_port);
}

static void close_all(uv_handle_t *h, void *arg) {
    (void)arg;
    if (uv_is_closing(h)) return;
    if (h->type == UV_TCP && h->data && h->data != (void *)arg) {
        conn_close(h->data);
        return;
    }
    if (h->type == UV_TCP) uv_close(h, NULL);
}

/* The server's handles go; then the loop must run dry (nothing of curlloop left). */
static void srv_stop_and_drain(uv_loop_t *loop, srv *s) {
    uv_walk(loop, close_all, s);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
}

/* ---- transfers ---- */

typedef struct result {
    int done;
    CURLcode cc;
    long status;
    uint64_t at; /* uv_now when it ended */
    int active_seen;
    curlloop *cl;
} result;

static void on_done(CURL *h, CURLcode cc, void *ud) {
    result *r = ud;
    r->done++;
    r->cc = cc;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    r->at = uv_now(uv_default_loop());
    r->active_seen = curlloop_active(r->cl);
    curl_easy_cleanup(h);
}

static size_t discard(char *d, size_t sz, size_t n, void *ud) {
    (void)d, (void)ud;
    return sz * n;
}

static CURL *get(int port, const char *path, long timeout_ms) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    return h;
}

static int closed_calls;
static void on_closed(void *ud) {
    (void)ud;
    closed_calls++;
}

/* Runs the loop until every r[0..n) is done. */
static void run_until(uv_loop_t *loop, result *r, int n) {
    for (;;) {
        int left = 0;
        for (int i = 0; i < n; i++) left += !r[i].done;
        if (!left) return;
        uv_run(loop, UV_RUN_ONCE);
    }
}

static void test_many_bounded(void **st) {
    (void)st;
    uv_loop_t *loop = uv_default_loop();
    srv s;
    srv_start(loop, &s);
    curlloop *cl = curlloop_new(loop, 16, 1000);
    assert_non_null(cl);
    enum { N = 300 };
    static result r[N];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++) {
        r[i].cl = cl;
        assert_int_equal(curlloop_add(cl, get(s.port, "/fast", 5000), on_done, &r[i]), 0);
    }
    assert_int_equal(curlloop_active(cl), 16);
    assert_int_equal(curlloop_queued(cl), N - 16);
    run_until(loop, r, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].done, 1);
        assert_int_equal(r[i].cc, CURLE_OK);
        assert_int_equal(r[i].status, 200);
        assert_true(r[i].active_seen < 16); /* the one that ended is out already */
    }
    assert_int_equal(s.requests, N);
    assert_true(s.conns <= 16); /* connections are kept and reused, never more than the bound */
    closed_calls = 0;
    curlloop_close(cl, 1000, on_closed, NULL);
    srv_stop_and_drain(loop, &s);
    assert_int_equal(closed_calls, 1);
}

static void test_slow_timeout_refused(void **st) {
    (void)st;
    uv_loop_t *loop = uv_default_loop();
    srv s;
    srv_start(loop, &s);
    /* a port nobody listens on: bind one, close it */
    srv dead;
    srv_start(loop, &dead);
    int dead_port = dead.port;
    uv_close((uv_handle_t *)&dead.listener, NULL);
    uv_run(loop, UV_RUN_NOWAIT);

    curlloop *cl = curlloop_new(loop, 8, 8);
    result r[4] = {{0}};
    for (int i = 0; i < 4; i++) r[i].cl = cl;
    uint64_t t0 = uv_now(loop);
    assert_int_equal(curlloop_add(cl, get(s.port, "/slow", 5000), on_done, &r[0]), 0);
    assert_int_equal(curlloop_add(cl, get(s.port, "/fast", 5000), on_done, &r[1]), 0);
    assert_int_equal(curlloop_add(cl, get(s.port, "/hang", 200), on_done, &r[2]), 0);
    assert_int_equal(curlloop_add(cl, get(dead_port, "/fast", 5000), on_done, &r[3]), 0);
    run_until(loop, r, 4);
    assert_int_equal(r[0].cc, CURLE_OK);
    assert_true(r[0].at - t0 >= 290);
    assert_int_equal(r[1].cc, CURLE_OK);
    assert_true(r[1].at < r[0].at); /* the slow one held nothing up */
    assert_int_equal(r[2].cc, CURLE_OPERATION_TIMEDOUT);
    assert_true(r[2].at - t0 >= 190 && r[2].at - t0 < 2000);
    assert_int_equal(r[3].cc, CURLE_COULDNT_CONNECT);
    closed_calls = 0;
    curlloop_close(cl, 0, on_closed, NULL);
    srv_stop_and_drain(loop, &s);
    assert_int_equal(closed_calls, 1);
}

static void test_queue_full_and_closing_refuse(void **st) {
    (void)st;
    uv_loop_t *loop = uv_default_loop();
    srv s;
    srv_start(loop, &s);
    curlloop *cl = curlloop_new(loop, 1, 1);
    result r[2] = {{0}};
    r[0].cl = r[1].cl = cl;
    assert_int_equal(curlloop_add(cl, get(s.port, "/fast", 5000), on_done, &r[0]), 0);
    assert_int_equal(curlloop_add(cl, get(s.port, "/fast", 5000), on_done, &r[1]), 0);
    CURL *extra = get(s.port, "/fast", 5000);
    assert_int_equal(curlloop_add(cl, extra, on_done, &r[0]), -1); /* 1 running + 1 waiting: full */
    run_until(loop, r, 2);
    assert_int_equal(r[0].cc, CURLE_OK);
    assert_int_equal(r[1].cc, CURLE_OK);
    closed_calls = 0;
    curlloop_close(cl, 1000, on_closed, NULL);
    assert_int_equal(curlloop_add(cl, extra, on_done, &r[0]), -1); /* closing */
    curl_easy_cleanup(extra);
    srv_stop_and_drain(loop, &s);
    assert_int_equal(closed_calls, 1);
}

/* Shutdown: what finishes within the grace finishes; the rest is aborted
 * at the bound, and the loop runs dry. */
static void test_shutdown_in_flight(void **st) {
    (void)st;
    uv_loop_t *loop = uv_default_loop();
    srv s;
    srv_start(loop, &s);
    curlloop *cl = curlloop_new(loop, 4, 100);
    enum { N = 10 };
    result r[N];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++) {
        r[i].cl = cl;
        assert_int_equal(curlloop_add(cl, get(s.port, i == 0 ? "/slow" : "/hang", 30000), on_done, &r[i]), 0);
    }
    /* let them connect and send */
    uint64_t t0 = uv_now(loop);
    while (uv_now(loop) - t0 < 50) uv_run(loop, UV_RUN_ONCE);
    closed_calls = 0;
    t0 = uv_now(loop);
    curlloop_close(cl, 600, on_closed, NULL);
    run_until(loop, r, N);
    assert_int_equal(r[0].cc, CURLE_OK); /* /slow answered within the grace */
    for (int i = 1; i < N; i++) {
        assert_int_equal(r[i].done, 1);
        assert_int_equal(r[i].cc, CURLE_ABORTED_BY_CALLBACK);
        assert_true(r[i].at - t0 >= 590 && r[i].at - t0 < 1500);
    }
    srv_stop_and_drain(loop, &s);
    assert_int_equal(closed_calls, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_bounded),
        cmocka_unit_test(test_slow_timeout_refused),
        cmocka_unit_test(test_queue_full_and_closing_refuse),
        cmocka_unit_test(test_shutdown_in_flight),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_loop_close(uv_default_loop());
    curl_global_cleanup();
    return rc;
}
