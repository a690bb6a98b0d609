/* The HTTP/1.1 + WebSocket server: connection lifecycle, parsing with
 * http-parser, limits and timeouts, responses, the thread-pool bridge, and
 * the WebSocket upgrade. See http.h for the contract. */
#include <ctype.h>
#include <errno.h>
#include <http_parser.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/ids.h"
#include "http.h"
#include "ws.h"

#define READ_CHUNK 65536
#define CORK_REFS 4 /* frames held by reference per corked connection; more are copied */
#define FAN_CHUNK 32 /* most connections a fan-out writer claims at a time */
#define FAN_MAX_WRITERS 8

typedef enum {
    ST_IDLE,     /* keep-alive, waiting for the next request */
    ST_HEAD,     /* reading a request line and headers */
    ST_BODY,     /* reading a body */
    ST_HANDLING, /* the request is with its handler; reading paused */
    ST_WS,       /* upgraded to WebSocket */
} conn_state;

typedef struct hdr {
    char *name, *value;
} hdr;

typedef struct conn conn;

struct http_req {
    conn *c;  /* NULL once the connection is gone or the reply was sent */
    http_server *srv;
    arena *a;
    char method[16];
    const char *url, *path, *query;
    hdr *hdrs;
    int nhdrs, caphdrs;
    buf body;
    http_match match;
    char id[132];
    char tenant[64];
    uint64_t start_ns;
    buf extra;  /* extra response headers */
    int replied, keep_alive, http10, upgrade, dispatched;
    int pending_work;
    int status;
    size_t bytes_out;
    /* body streaming (HTTP_ROUTE_STREAM) */
    int stream;         /* the route streams: dispatched at the end of the headers */
    int stream_wait;    /* dispatched; the handler has not asked for the body yet */
    int stream_on;      /* pieces go to scb */
    int stream_paused;  /* the handler asked us to stop for now */
    int stream_done;    /* on_end was called */
    size_t stream_max, stream_bytes;
    http_body_stream scb;
    void *sud;
    /* streamed response (http_stream_begin) */
    int out_stream, out_stopped;
    size_t out_max;
    void (*out_stop)(http_req *q, void *ud);
    void *out_ud;
};

struct http_ws {
    conn *c;
    ws_session *s;
    http_ws_handler h;
    void *ud;
    uint64_t last_seen_ns;
    int close_reported;
};

struct conn {
    uv_tcp_t tcp;
    http_server *srv;
    uint64_t deadline; /* loop time (ms) at which the current state times out; 0 = none */
    conn *prev, *next;
    http_parser parser;
    conn_state state;
    buf in;
    http_req *req;
    buf field, value; /* header accumulators (callbacks may split them) */
    int in_value;
    size_t head_bytes;
    int err_status;
    const char *err_code, *err_msg;
    int closing, handles;
    int pending_writes, close_after_write;
    int reading, in_process;
    int lingering;      /* response sent, write side shut: draining input */
    size_t linger_bytes;
    uv_shutdown_t shut;
    http_ws *ws;
    /* Inside a ws_session_* call the session must not be freed, so a write
     * failing there (the peer reset) only marks the connection; the close
     * happens when the call returns (see ws_leave). */
    int ws_busy, close_pending;
    /* WebSocket bytes gathered while the server is corked (see
     * http_server_cork), in order, written with one write at uncork. */
    buf cork;
    /* Shared frames (http_ws_send_frame) gathered after the cork bytes,
     * held by reference: a fan-out of one event to N subscribers costs no
     * copy per subscriber. All of cork.p comes before all of these. */
    http_ws_frame *cork_ref[CORK_REFS];
    int ncork_ref;
    size_t cork_ref_bytes;
    conn *cork_prev, *cork_next;
    int cork_linked, cork_ok;
};

struct http_ws_frame {
    int refs;   /* loop thread only */
    int opcode;
    size_t hl;  /* header bytes */
    size_t len; /* header + payload */
    char data[];
};

/* One connection's share of a parallel uncork: its fd, and what the send
 * did (filled by whichever thread claimed it). */
typedef struct fan_item {
    conn *c;
    int fd;
    int err;       /* errno of a failed send, 0 if none */
    ssize_t wrote; /* bytes the socket took; -1 on error */
} fan_item;

/* The helper threads of parallel uncorks. A pass hands out items[0..n) in
 * chunks through next; the loop thread writes too, then waits for every
 * helper's done. Between go and done the loop touches no libuv handle and
 * no connection state: the threads only read the items' cork bytes and
 * frames (which nobody changes meanwhile) and write to the sockets. */
typedef struct fan_pass {
    uv_thread_t threads[FAN_MAX_WRITERS];
    int nthreads;
    uv_sem_t go, done;
    int stop;       /* set before the last go */
    int busy;       /* a pass is being written or settled (no nesting) */
    fan_item *items;
    size_t n, cap, chunk;
    atomic_size_t next;
    atomic_size_t helped; /* items written by helpers in this pass */
} fan_pass;

struct http_server {
    uv_loop_t *loop;
    http_config cfg;
    char *host, *cors;
    http_proxies *proxies; /* --trusted-proxies */
    http_router *router;
    logger *log;
    metrics *m;
    metric *m_req, *m_lat, *m_ws_msgs, *m_ws_drops;
    uv_tcp_t listener;
    uv_timer_t ping_timer, shutdown_timer, sweep_timer;
    int listening, port;
    conn *conns;
    size_t nconns, nws, inflight, pool_depth;
    int shutting_down;
    void (*done)(void *ud);
    void *done_ud;
    int64_t started_ms;
    int closing_handles;
    int cork_depth;
    conn *corked;       /* connections with gathered bytes */
    size_t ncorked;
    uint64_t ws_out;    /* messages sent while corked, counted at uncork */
    fan_pass fan;       /* parallel fan-out writes (see fan_uncork) */
    metric *m_fan, *m_fan_pass;
    char read_buf[READ_CHUNK];
    char date[40];
    time_t date_sec;
    char id_prefix[17]; /* random per process: request ids are prefix + counter */
    uint64_t id_counter;
};

static const http_parser_settings parser_settings;
static void conn_close(conn *c);
static void conn_linger(conn *c);
static void conn_process(conn *c);
static void req_free(http_req *q);
static void start_read(conn *c);
static void ws_start(conn *c);
static void maybe_done(http_server *s);
static int split_target(http_req *q);

/* ---- small helpers ---- */

static const char *status_text(int s) {
    switch (s) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes n bytes of s into arena memory. Returns NULL on a bad
 * escape or an encoded NUL (neither has a meaning we accept). */
static char *url_decode(arena *a, const char *s, size_t n, int plus_space) {
    char *out = arena_alloc(a, n + 1);
    if (!out) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n) return NULL;
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0) return NULL;
            ch = (char)(h * 16 + l);
            if (ch == '\0') return NULL;
            i += 2;
        } else if (ch == '+' && plus_space) {
            ch = ' ';
        }
        out[j++] = ch;
    }
    out[j] = '\0';
    return out;
}

/* The Date header, formatted once per second. */
static const char *date_header(http_server *s) {
    time_t t = time(NULL);
    if (t != s->date_sec) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_sec = t;
    }
    return s->date;
}

/* ---- writing ---- */

typedef struct write_req {
    uv_write_t w;
    conn *c;
    size_t len;
    char data[];
} write_req;

static void on_write(uv_write_t *w, int status) {
    write_req *wr = (write_req *)w;
    conn *c = wr->c;
    eh_free(wr);
    c->pending_writes--;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after_write && c->pending_writes == 0) conn_linger(c);
}

/* Sends a then b. Returns 0 or -1 (connection closing).
 * When nothing is queued, the bytes are written right away with
 * uv_try_write: the common small response then costs one write(2) and no
 * allocation, copy, or epoll_ctl (libuv re-arms the watcher after every
 * queued write completes). Only what the socket did not take is copied and
 * queued. */
/* A write failed: close now, or once the ws_session call we are in returns. */
static void conn_fail(conn *c) {
    if (c->ws_busy) c->close_pending = 1;
    else conn_close(c);
}

/* Queues what the socket did not take of bufs (it took the first skip
 * bytes) as one copied libuv write. Returns 0, or -1 on out of memory or a
 * libuv error: the caller fails the connection. */
static int conn_queue(conn *c, const uv_buf_t *bufs, unsigned n, size_t total, size_t skip) {
    write_req *wr = eh_malloc(sizeof *wr + total - skip);
    if (!wr) return -1;
    wr->c = c;
    wr->len = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t l = bufs[i].len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(wr->data + wr->len, bufs[i].base + skip, l - skip);
        wr->len += l - skip;
        skip = 0;
    }
    uv_buf_t ub = uv_buf_init(wr->data, (unsigned)wr->len);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &ub, 1, on_write)) {
        eh_free(wr);
        return -1;
    }
    c->pending_writes++;
    return 0;
}

/* Writes n buffers in order (n <= CORK_REFS + 1). */
static int conn_writev(conn *c, uv_buf_t *bufs, unsigned n) {
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) total += bufs[i].len;
    size_t skip = 0; /* bytes the socket took at once */
    if (c->pending_writes == 0) {
        int w = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
        if (w >= 0) {
            if ((size_t)w >= total) return 0;
            skip = (size_t)w;
        } else if (w != UV_EAGAIN) {
            conn_fail(c);
            return -1;
        }
    }
    if (conn_queue(c, bufs, n, total, skip)) {
        conn_fail(c);
        return -1;
    }
    return 0;
}

static int conn_write(conn *c, const void *a, size_t alen, const void *b, size_t blen) {
    uv_buf_t bufs[2] = {uv_buf_init((char *)a, (unsigned)alen), uv_buf_init((char *)b, (unsigned)blen)};
    return conn_writev(c, bufs, blen ? 2 : 1);
}

static void cork_unlink(conn *c) {
    if (!c->cork_linked) return;
    if (c->cork_prev) c->cork_prev->cork_next = c->cork_next;
    else c->srv->corked = c->cork_next;
    if (c->cork_next) c->cork_next->cork_prev = c->cork_prev;
    c->cork_prev = c->cork_next = NULL;
    c->cork_linked = 0;
    c->srv->ncorked--;
}

static void frame_unref(http_ws_frame *f) {
    if (f && --f->refs == 0) eh_free(f);
}

static void cork_drop_refs(conn *c) {
    for (int i = 0; i < c->ncork_ref; i++) frame_unref(c->cork_ref[i]);
    c->ncork_ref = 0;
    c->cork_ref_bytes = 0;
}

/* Copies the referenced frames into the cork buffer (to append bytes
 * after them, or to make room). */
static int cork_materialize(conn *c) {
    int rc = BUF_OK;
    for (int i = 0; i < c->ncork_ref && rc == BUF_OK; i++)
        rc = buf_append(&c->cork, c->cork_ref[i]->data, c->cork_ref[i]->len);
    cork_drop_refs(c);
    return rc;
}

static void cork_link(conn *c) {
    if (c->cork_linked) return;
    c->cork_linked = 1;
    c->srv->ncorked++;
    c->cork_next = c->srv->corked;
    if (c->cork_next) c->cork_next->cork_prev = c;
    c->srv->corked = c;
}

/* The gathered bytes of c as buffers, bytes then frames (n <= CORK_REFS + 1). */
static unsigned cork_bufs(conn *c, uv_buf_t *bufs, size_t *total) {
    unsigned n = 0;
    *total = c->cork.len;
    if (c->cork.len) bufs[n++] = uv_buf_init(c->cork.p, (unsigned)c->cork.len);
    for (int i = 0; i < c->ncork_ref; i++) {
        bufs[n++] = uv_buf_init(c->cork_ref[i]->data, (unsigned)c->cork_ref[i]->len);
        *total += c->cork_ref[i]->len;
    }
    return n;
}

/* Forgets what was gathered for c. The buffer is freed, not kept: most
 * subscribers sit idle between bursts and their memory is the budget. */
static void cork_clear(conn *c) {
    cork_drop_refs(c);
    size_t max = c->cork.max;
    buf_free(&c->cork);
    buf_init(&c->cork, max);
}

/* Writes what was gathered for c, bytes then frames, in one write. */
static int cork_flush(conn *c) {
    cork_unlink(c);
    if (!c->cork.len && !c->ncork_ref) return 0;
    buf b = c->cork;
    buf_init(&c->cork, b.max);
    uv_buf_t bufs[CORK_REFS + 1];
    unsigned n = 0;
    if (b.len) bufs[n++] = uv_buf_init(b.p, (unsigned)b.len);
    for (int i = 0; i < c->ncork_ref; i++) bufs[n++] = uv_buf_init(c->cork_ref[i]->data, (unsigned)c->cork_ref[i]->len);
    int rc = conn_writev(c, bufs, n);
    cork_drop_refs(c);
    buf_free(&b);
    return rc;
}

static int conn_send(conn *c, const void *a, size_t alen, const void *b, size_t blen) {
    if (c->closing || c->close_pending) return -1;
    if (c->cork_ok) {
        if ((c->ncork_ref && cork_materialize(c) != BUF_OK) || buf_append(&c->cork, a, alen) != BUF_OK ||
            (blen && buf_append(&c->cork, b, blen) != BUF_OK)) {
            conn_fail(c);
            return -1;
        }
        cork_link(c);
        return 0;
    }
    /* Anything sent outside the cork (a close frame, a pong) goes after
     * what was gathered before it. */
    if ((c->cork.len || c->ncork_ref) && cork_flush(c)) return -1;
    return conn_write(c, a, alen, b, blen);
}

void http_server_cork(http_server *s) { s->cork_depth++; }

/* ---- parallel fan-out writes ---- */

/* Sends what was gathered for one connection: any thread, no libuv call.
 * MSG_NOSIGNAL because a helper thread must not take a SIGPIPE for a peer
 * that left (the loop's own writes rely on SIGPIPE being ignored). */
static void fan_write(fan_item *it) {
    conn *c = it->c;
    struct iovec iov[CORK_REFS + 1];
    int n = 0;
    if (c->cork.len) iov[n++] = (struct iovec){c->cork.p, c->cork.len};
    for (int i = 0; i < c->ncork_ref; i++) iov[n++] = (struct iovec){c->cork_ref[i]->data, c->cork_ref[i]->len};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w;
    do w = sendmsg(it->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
    it->wrote = w;
    it->err = w < 0 ? errno : 0;
}

/* Claims chunks of the pass until none is left; returns the items written. */
static size_t fan_run(fan_pass *f) {
    size_t done = 0;
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&f->next, f->chunk, memory_order_relaxed);
        if (i >= f->n) return done;
        size_t end = i + f->chunk < f->n ? i + f->chunk : f->n;
        done += end - i;
        for (; i < end; i++) fan_write(&f->items[i]);
    }
}

static void fan_thread(void *arg) {
    fan_pass *f = arg;
    pthread_setname_np(pthread_self(), "ehub-fanout");
    for (;;) {
        uv_sem_wait(&f->go);
        if (f->stop) return;
        atomic_fetch_add_explicit(&f->helped, fan_run(f), memory_order_relaxed);
        uv_sem_post(&f->done);
    }
}

/* Starts the helpers, unless the process may run on one CPU only (pinned
 * with taskset, say): a helper on the loop's own CPU would only take turns
 * with it. */
static void fan_start(http_server *s) {
    int want = s->cfg.ws_writers;
    if (want <= 0) return;
    if (want > FAN_MAX_WRITERS) want = FAN_MAX_WRITERS;
    cpu_set_t cs;
    if (sched_getaffinity(0, sizeof cs, &cs) == 0 && CPU_COUNT(&cs) < 2) return;
    if (uv_sem_init(&s->fan.go, 0)) return;
    if (uv_sem_init(&s->fan.done, 0)) {
        uv_sem_destroy(&s->fan.go);
        return;
    }
    while (s->fan.nthreads < want && uv_thread_create(&s->fan.threads[s->fan.nthreads], fan_thread, &s->fan) == 0)
        s->fan.nthreads++;
    if (s->fan.nthreads == 0) {
        uv_sem_destroy(&s->fan.go);
        uv_sem_destroy(&s->fan.done);
    }
}

static void fan_stop(http_server *s) {
    fan_pass *f = &s->fan;
    if (f->nthreads) {
        f->stop = 1;
        for (int i = 0; i < f->nthreads; i++) uv_sem_post(&f->go);
        for (int i = 0; i < f->nthreads; i++) uv_thread_join(&f->threads[i]);
        uv_sem_destroy(&f->go);
        uv_sem_destroy(&f->done);
        f->nthreads = 0;
    }
    eh_free(f->items);
    f->items = NULL;
    f->cap = 0;
}

/* The parallel uncork. Connections with nothing queued in libuv (their
 * next bytes go straight to the socket, as uv_try_write would send them)
 * are taken off the corked list and written by the loop and the helpers
 * together; the rest (a slow consumer's queue) go the usual way after.
 * Each item is then settled on the loop with no callback run: what a
 * socket did not take is queued through libuv, as conn_writev does, and
 * the cork state cleared. Failed connections are closed last, once every
 * item is settled, because closing runs handlers that may send on other
 * connections. Returns 0, or -1 (out of memory: the caller writes them
 * all itself). */
static int fan_uncork(http_server *s) {
    fan_pass *f = &s->fan;
    if (f->cap < s->ncorked) {
        size_t cap = s->ncorked + s->ncorked / 4;
        fan_item *it = eh_realloc(f->items, cap * sizeof *it);
        if (!it) return -1;
        f->items = it;
        f->cap = cap;
    }
    f->busy = 1;
    f->n = 0;
    conn *next;
    for (conn *c = s->corked; c; c = next) {
        next = c->cork_next;
        uv_os_fd_t fd;
        if (c->closing || c->close_pending || c->pending_writes || (!c->cork.len && !c->ncork_ref) ||
            uv_fileno((uv_handle_t *)&c->tcp, &fd))
            continue;
        cork_unlink(c);
        f->items[f->n++] = (fan_item){.c = c, .fd = fd};
    }
    atomic_store_explicit(&f->next, 0, memory_order_relaxed);
    atomic_store_explicit(&f->helped, 0, memory_order_relaxed);
    /* Chunks small enough that a short pass still leaves work for a helper
     * waking up (tens of µs), large enough to claim rarely in a long one. */
    size_t chunk = f->n / (8 * (size_t)(f->nthreads + 1));
    f->chunk = chunk < 1 ? 1 : chunk > FAN_CHUNK ? FAN_CHUNK : chunk;
    int helpers = f->n >= 2 ? f->nthreads : 0; /* one item (the others are slow) is not worth a wake-up */
    for (int i = 0; i < helpers; i++) uv_sem_post(&f->go);
    fan_run(f);
    for (int i = 0; i < helpers; i++) uv_sem_wait(&f->done);
    size_t nfail = 0;
    for (size_t i = 0; i < f->n; i++) {
        fan_item *it = &f->items[i];
        conn *c = it->c;
        uv_buf_t bufs[CORK_REFS + 1];
        size_t total;
        unsigned nb = cork_bufs(c, bufs, &total);
        int bad = it->wrote < 0 && it->err != EAGAIN && it->err != EWOULDBLOCK;
        if (!bad && (it->wrote < 0 || (size_t)it->wrote < total))
            bad = conn_queue(c, bufs, nb, total, it->wrote < 0 ? 0 : (size_t)it->wrote) != 0;
        cork_clear(c);
        if (bad) f->items[nfail++].c = c;
    }
    if (s->m_fan) {
        size_t helped = atomic_load_explicit(&f->helped, memory_order_relaxed);
        const char *lv[] = {"helper"}, *lv2[] = {"loop"};
        if (helped) metric_add(s->m_fan, lv, (double)helped);
        if (f->n > helped) metric_add(s->m_fan, lv2, (double)(f->n - helped));
    }
    while (s->corked) cork_flush(s->corked);
    for (size_t i = 0; i < nfail; i++)
        if (!f->items[i].c->closing) conn_fail(f->items[i].c);
    f->busy = 0;
    return 0;
}

void http_server_uncork(http_server *s) {
    if (s->cork_depth == 0 || --s->cork_depth > 0) return;
    size_t min = s->cfg.ws_parallel_min ? s->cfg.ws_parallel_min : 256;
    /* Large passes are timed, whoever writes them: the figure the helpers
     * are there to cut (and a loaded machine's to blame when it grows). */
    uint64_t t0 = s->ncorked >= min && s->m_fan_pass ? clock_mono_ns() : 0;
    const char *mode = "loop";
    if (s->fan.nthreads && !s->fan.busy && s->ncorked >= min && fan_uncork(s) == 0) mode = "parallel";
    else
        while (s->corked) cork_flush(s->corked);
    if (t0) {
        const char *lv[] = {mode};
        metric_observe(s->m_fan_pass, lv, (double)(clock_mono_ns() - t0) / 1e9);
    }
    if (s->ws_out && s->m_ws_msgs) {
        const char *lv[] = {"out"};
        metric_add(s->m_ws_msgs, lv, (double)s->ws_out);
    }
    s->ws_out = 0;
}

/* ---- connection lifecycle ---- */

static void on_handle_closed(uv_handle_t *h) {
    conn *c = h->data;
    if (--c->handles > 0) return;
    http_server *s = c->srv;
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    cork_unlink(c);
    cork_drop_refs(c);
    buf_free(&c->cork);
    buf_free(&c->in);
    buf_free(&c->field);
    buf_free(&c->value);
    eh_free(c);
    maybe_done(s);
}

static void conn_close(conn *c) {
    if (c->closing) return;
    c->closing = 1;
    http_server *s = c->srv;
    cork_unlink(c);
    cork_drop_refs(c);
    buf_free(&c->cork);
    if (c->ws) {
        http_ws *ws = c->ws;
        c->ws = NULL;
        s->nws--;
        if (!ws->close_reported && ws->h.on_close) {
            ws->close_reported = 1;
            ws->h.on_close(ws, 1006, ws->ud);
        }
        ws_session_free(ws->s);
        eh_free(ws);
    }
    if (c->req) {
        http_req *q = c->req;
        c->req = NULL;
        q->c = NULL;
        /* A request with its handler stays alive until the handler replies. */
        if (!q->dispatched) req_free(q);
        else if (q->stream_on && !q->stream_done) {
            q->stream_done = 1;
            q->scb.on_end(q, -1, q->sud);
        } else if (q->out_stream && !q->out_stopped) {
            q->out_stopped = 1;
            q->out_stop(q, q->out_ud);
        }
    }
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_timeout(conn *c) {
    if (c->lingering || c->state == ST_IDLE) {
        conn_close(c);
        return;
    }
    if (c->state == ST_BODY && c->req && c->req->stream_on && !c->req->stream_done) {
        http_req *q = c->req;
        q->stream_done = 1;
        q->keep_alive = 0;
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
        q->scb.on_end(q, 408, q->sud);
        return;
    }
    if (c->state == ST_HEAD || c->state == ST_BODY) {
        /* Slowloris and stalled uploads: answer 408 and hang up. */
        static const char body[] =
            "{\"error\":{\"code\":\"request_timeout\",\"message\":\"request not received in time\"}}";
        char head[256];
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                         sizeof body - 1);
        if (c->srv->m_req) {
            const char *lv[] = {"unmatched", "-", "408"};
            metric_add(c->srv->m_req, lv, 1);
        }
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
        c->close_after_write = 1;
        if (conn_send(c, head, (size_t)n, body, sizeof body - 1) == 0 && c->pending_writes == 0)
            conn_linger(c);
    }
}

static void start_read(conn *c);

static void on_shutdown(uv_shutdown_t *req, int status) {
    conn *c = req->data;
    if (status < 0) conn_close(c);
}

/* Closing right after an error response would make the kernel answer the
 * client's unread bytes (the rest of a too-large body, say) with a reset,
 * which can destroy the response before the client reads it. So: send FIN,
 * keep reading and discarding for a short while (nginx's lingering close),
 * then close. Bounded in time and bytes. */
static void conn_linger(conn *c) {
    if (c->closing || c->lingering) return;
    if (c->ws) {
        conn_close(c);
        return;
    }
    c->lingering = 1;
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown)) {
        conn_close(c);
        return;
    }
    c->deadline = uv_now(c->srv->loop) + 2000;
    if (!c->reading) {
        c->reading = 1;
        start_read(c);
    }
}

/* Timeouts are deadlines checked by one sweep timer per server (see
 * on_sweep), not a libuv timer per connection: re-arming a timer several
 * times per request showed up in profiles, and 10,000 idle WebSockets
 * should not mean 10,000 timer handles. */
static void arm_timer(conn *c, unsigned ms) {
    if (c->closing) return;
    c->deadline = ms ? uv_now(c->srv->loop) + ms : 0;
}

static void set_state(conn *c, conn_state st) {
    c->state = st;
    const http_config *cfg = &c->srv->cfg;
    switch (st) {
    case ST_IDLE: arm_timer(c, cfg->idle_timeout_ms); break;
    case ST_HEAD: arm_timer(c, cfg->header_timeout_ms); break;
    case ST_BODY: arm_timer(c, cfg->body_timeout_ms); break;
    case ST_HANDLING:
    case ST_WS: arm_timer(c, 0); break;
    }
}

/* ---- requests ---- */

static http_req *req_new(conn *c) {
    http_req *q = eh_calloc(1, sizeof *q);
    if (!q) return NULL;
    q->a = arena_new(4096, 0);
    if (!q->a) {
        eh_free(q);
        return NULL;
    }
    q->c = c;
    q->srv = c->srv;
    q->start_ns = clock_mono_ns();
    buf_init(&q->body, c->srv->cfg.max_body);
    buf_init(&q->extra, 8192);
    return q;
}

static void req_free(http_req *q) {
    if (!q) return;
    arena_free(q->a);
    buf_free(&q->body);
    buf_free(&q->extra);
    eh_free(q);
}

const char *http_req_method(const http_req *q) { return q->method; }
const char *http_req_path(const http_req *q) { return q->path; }
const char *http_req_url(const http_req *q) { return q->url; }
const char *http_req_id(const http_req *q) { return q->id; }
arena *http_req_arena(http_req *q) { return q->a; }
http_server *http_req_server(http_req *q) { return q->srv; }
int http_req_gone(const http_req *q) { return q->c == NULL; }

const char *http_req_peer(const http_req *q, char *out, size_t outlen) {
    struct sockaddr_storage ss;
    int n = sizeof ss;
    if (outlen) out[0] = 0;
    if (!q->c || uv_tcp_getpeername(&q->c->tcp, (struct sockaddr *)&ss, &n)) return out;
    if (ss.ss_family == AF_INET) uv_ip4_name((struct sockaddr_in *)&ss, out, outlen);
    else if (ss.ss_family == AF_INET6) uv_ip6_name((struct sockaddr_in6 *)&ss, out, outlen);
    return out;
}

const char *http_req_route(const http_req *q) { return q->match.pattern; }

const char *http_req_client(const http_req *q, char *out, size_t outlen) {
    char peer[64];
    http_req_peer(q, peer, sizeof peer);
    if (!peer[0] || !http_proxies_count(q->srv->proxies)) {
        snprintf(out, outlen, "%s", peer);
        return out;
    }
    /* Several X-Forwarded-For headers read as one list, in order: the last
     * one is what our proxy appended. Bounded by the header size limit. */
    buf all;
    buf_init(&all, q->srv->cfg.max_header ? q->srv->cfg.max_header : 16384);
    int any = 0;
    for (int i = 0; i < q->nhdrs; i++) {
        if (strcasecmp(q->hdrs[i].name, "X-Forwarded-For")) continue;
        if ((any && buf_putc(&all, ',')) || buf_puts(&all, q->hdrs[i].value)) {
            /* over the bound: nothing from the header can be trusted */
            buf_free(&all);
            snprintf(out, outlen, "%s", peer);
            return out;
        }
        any = 1;
    }
    const char *xff = NULL;
    if (any) xff = all.p ? all.p : "";
    http_proxies_client(q->srv->proxies, peer, xff, out, outlen);
    buf_free(&all);
    return out;
}

void http_req_set_tenant(http_req *q, const char *tenant) {
    snprintf(q->tenant, sizeof q->tenant, "%s", tenant ? tenant : "");
}

const char *http_req_header(const http_req *q, const char *name) {
    /* a request asks for several headers among several: most names differ
     * in their first letter, told apart without a strcasecmp call (| 0x20
     * folds ASCII letters; a non-letter that folds the same is left to
     * strcasecmp) */
    unsigned char f = (unsigned char)name[0] | 0x20;
    for (int i = 0; i < q->nhdrs; i++)
        if (((unsigned char)q->hdrs[i].name[0] | 0x20) == f && strcasecmp(q->hdrs[i].name, name) == 0)
            return q->hdrs[i].value;
    return NULL;
}

const char *http_req_param(const http_req *q, const char *name) {
    for (int i = 0; i < q->match.nparams; i++)
        if (strcmp(q->match.params[i].name, name) == 0) return q->match.params[i].val;
    return NULL;
}

const char *http_req_query(http_req *q, const char *name) {
    if (!q->query) return NULL;
    size_t nl = strlen(name);
    const char *p = q->query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        if (klen == nl && memcmp(p, name, nl) == 0) {
            if (!eq) return "";
            return url_decode(q->a, eq + 1, len - klen - 1, 1);
        }
        if (!amp) break;
        p = amp + 1;
    }
    return NULL;
}

const char *http_req_body(const http_req *q, size_t *len) {
    if (len) *len = q->body.len;
    return q->body.p ? q->body.p : "";
}

int http_req_json_body(http_req *q, const char **body, size_t *len) {
    const char *ct = http_req_header(q, "Content-Type");
    if (ct && strncasecmp(ct, "application/json", 16) != 0 && !strstr(ct, "+json")) {
        http_reply_error(q, 415, "unsupported_media_type", "expected Content-Type: application/json");
        return -1;
    }
    if (q->body.len == 0) {
        http_reply_error(q, 400, "invalid_json", "request body is empty; expected JSON");
        return -1;
    }
    *body = q->body.p;
    *len = q->body.len;
    return 0;
}

json_t *http_req_json(http_req *q) {
    const char *body;
    size_t len;
    if (http_req_json_body(q, &body, &len)) return NULL;
    json_error_t je;
    json_t *j = json_loadb(q->body.p, q->body.len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        char msg[256];
        snprintf(msg, sizeof msg, "invalid JSON at line %d column %d: %s", je.line, je.column,
                 je.text);
        http_reply_error(q, 400, "invalid_json", msg);
        return NULL;
    }
    return j;
}

int http_res_header(http_req *q, const char *name, const char *value) {
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n")) return -1;
    return buf_printf(&q->extra, "%s: %s\r\n", name, value) ? -1 : 0;
}

/* CORS: echo the origin when it is allowed. */
static void add_cors(http_req *q) {
    const char *cors = q->srv->cors;
    if (!cors || !*cors) return;
    const char *origin = http_req_header(q, "Origin");
    if (!origin) return;
    if (strcmp(cors, "*") == 0) {
        buf_puts(&q->extra, "Access-Control-Allow-Origin: *\r\n");
        return;
    }
    size_t ol = strlen(origin);
    const char *p = cors;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && *p == ' ') p++, len--;
        while (len && p[len - 1] == ' ') len--;
        if (len == ol && memcmp(p, origin, ol) == 0 && !strpbrk(origin, "\r\n")) {
            buf_printf(&q->extra, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", origin);
            return;
        }
        if (!comma) break;
        p = comma + 1;
    }
}

/* Appenders for a buffer sized in advance (http_reply's head). */
static char *put_mem(char *o, const void *p, size_t n) {
    if (n) memcpy(o, p, n);
    return o + n;
}

static void log_request(http_req *q, double secs) {
    http_server *s = q->srv;
    const char *route = q->match.pattern ? q->match.pattern : "unmatched";
    if (s->m_req) {
        char st[8];
        *buf_fmt_u64(st, (unsigned)q->status % 1000u) = 0;
        const char *lv[] = {route, q->method, st};
        metric_add(s->m_req, lv, 1);
        const char *lh[] = {route};
        metric_observe(s->m_lat, lh, secs);
    }
    log_line l;
    if (log_begin(s->log, &l, LOG_INFO, "http.request")) {
        log_id(&l, "method", q->method);
        log_str(&l, "path", q->path ? q->path : "");
        log_id(&l, "route", route);
        log_int(&l, "status", q->status);
        log_int(&l, "bytes", (int64_t)q->bytes_out);
        log_double(&l, "duration_ms", secs * 1000.0);
        log_id(&l, "request_id", q->id);
        char ip[64];
        if (q->c && http_req_client(q, ip, sizeof ip)[0]) log_id(&l, "ip", ip);
        if (q->tenant[0]) log_id(&l, "tenant", q->tenant);
        log_end(&l);
    }
}

/* Called when a request is answered: the connection moves on to the next
 * pipelined request, and the request is freed once no work refers to it. */
static void req_finish(http_req *q) {
    conn *c = q->c;
    http_server *s = q->srv;
    if (q->dispatched) s->inflight--;
    log_request(q, (double)(clock_mono_ns() - q->start_ns) / 1e9);
    if (c) {
        c->req = NULL;
        q->c = NULL;
    }
    int keep = q->keep_alive;
    if (q->pending_work == 0) req_free(q);
    if (!c || c->closing) return;
    if (c->state == ST_WS) return;
    if (!keep) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
        c->close_after_write = 1;
        if (c->pending_writes == 0) conn_linger(c);
        return;
    }
    set_state(c, ST_IDLE);
    if (!c->in_process) conn_process(c);
}

void http_reply(http_req *q, int status, const char *content_type, const void *body, size_t len) {
    if (q->replied) return;
    q->replied = 1;
    q->status = status;
    /* Answered before its body was read: the rest of the body is not HTTP
     * we can parse, so this connection ends after the reply. */
    if (q->stream && !q->stream_done) q->keep_alive = 0;
    conn *c = q->c;
    if (c && !c->closing) {
        http_server *s = q->srv;
        if (s->shutting_down) q->keep_alive = 0;
        add_cors(q);
        /* Assembled by hand into a stack buffer (a heap one only for very
         * large extra headers): this runs for every response, and growing a
         * buf through three reallocs plus two snprintf calls was a tenth of
         * a small request's instructions. The bound counts every fixed text
         * below generously. */
        const char *st = status_text(status), *date = date_header(s);
        size_t ctl = content_type ? strlen(content_type) : 0;
        size_t cap = 192 + strlen(st) + ctl + strlen(date) + strlen(q->id) + q->extra.len;
        char stack[1024], *head = cap <= sizeof stack ? stack : eh_malloc(cap);
        if (!head) {
            conn_close(c);
            req_finish(q);
            return;
        }
        char *o = head;
        o = put_mem(o, q->http10 ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
        o = buf_fmt_u64(o, (uint64_t)(unsigned)status);
        *o++ = ' ';
        o = put_mem(o, st, strlen(st));
        o = put_mem(o, "\r\n", 2);
        if (status != 204 && status != 304 && status >= 200) {
            if (content_type) {
                o = put_mem(o, "Content-Type: ", 14);
                o = put_mem(o, content_type, ctl);
                o = put_mem(o, "\r\n", 2);
            }
            o = put_mem(o, "Content-Length: ", 16);
            o = buf_fmt_u64(o, len);
            o = put_mem(o, "\r\n", 2);
        }
        o = put_mem(o, "Date: ", 6);
        o = put_mem(o, date, strlen(date));
        o = put_mem(o, "\r\nX-Request-Id: ", 16);
        o = put_mem(o, q->id, strlen(q->id));
        o = put_mem(o, "\r\n", 2);
        o = put_mem(o, q->extra.p, q->extra.len);
        if (!q->keep_alive) o = put_mem(o, "Connection: close\r\n", 19);
        else if (q->http10) o = put_mem(o, "Connection: keep-alive\r\n", 24);
        o = put_mem(o, "\r\n", 2);
        size_t hlen = (size_t)(o - head);
        int head_only = strcmp(q->method, "HEAD") == 0 || status == 204 || status == 304;
        q->bytes_out = hlen + (head_only ? 0 : len);
        conn_send(c, head, hlen, body, head_only ? 0 : len);
        if (head != stack) eh_free(head);
    }
    req_finish(q);
}

void http_reply_json(http_req *q, int status, json_t *body) {
    /* 15 significant digits: exact for every stored double we show, without
     * binary noise such as 2.0059999999999998. */
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(body);
    if (!s) {
        static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        http_reply(q, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    http_reply(q, status, "application/json", s, strlen(s));
    free(s);
}

void http_reply_error(http_req *q, int status, const char *code, const char *message) {
    buf b;
    buf_init(&b, 4096);
    buf_puts(&b, "{\"error\":{\"code\":\"");
    buf_json_str(&b, code, strlen(code));
    buf_puts(&b, "\",\"message\":\"");
    buf_json_str(&b, message, strlen(message));
    buf_printf(&b, "\",\"request_id\":\"%s\"}}", q->id);
    http_reply(q, status, "application/json", b.p, b.len);
    buf_free(&b);
}

/* ---- streamed responses ---- */

int http_stream_begin(http_req *q, int status, const char *content_type, size_t max_queued,
                      void (*on_stop)(http_req *q, void *ud), void *ud) {
    conn *c = q->c;
    if (q->replied || !c || c->closing) return -1;
    q->replied = 1;
    q->status = status;
    q->keep_alive = 0;
    q->out_stream = 1;
    q->out_max = max_queued;
    q->out_stop = on_stop;
    q->out_ud = ud;
    add_cors(q);
    buf h;
    buf_init(&h, 16384 + q->extra.len);
    buf_printf(&h, "%s %d %s\r\n", q->http10 ? "HTTP/1.0" : "HTTP/1.1", status, status_text(status));
    if (content_type) buf_printf(&h, "Content-Type: %s\r\n", content_type);
    if (!q->http10) buf_puts(&h, "Transfer-Encoding: chunked\r\n");
    buf_printf(&h, "Date: %s\r\nX-Request-Id: %s\r\n", date_header(q->srv), q->id);
    if (q->extra.len) buf_append(&h, q->extra.p, q->extra.len);
    int rc = buf_puts(&h, "Connection: close\r\n\r\n");
    if (rc == BUF_OK) {
        q->bytes_out += h.len;
        conn_send(c, h.p, h.len, NULL, 0);
    } else {
        conn_close(c);
    }
    buf_free(&h);
    return 0;
}

int http_stream_write(http_req *q, const void *data, size_t len) {
    conn *c = q->c;
    if (!q->out_stream || q->out_stopped || !c || c->closing) return -1;
    if (len == 0) return 0;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + len > q->out_max) return -1;
    char head[24];
    int n = q->http10 ? 0 : snprintf(head, sizeof head, "%zx\r\n", len);
    buf b;
    buf_init(&b, len + 32);
    buf_append(&b, head, (size_t)n);
    buf_append(&b, data, len);
    int rc = buf_puts(&b, q->http10 ? "" : "\r\n");
    if (rc == BUF_OK) {
        q->bytes_out += b.len;
        rc = conn_send(c, b.p, b.len, NULL, 0);
    }
    buf_free(&b);
    return rc == 0 ? 0 : -1;
}

void http_stream_end(http_req *q) {
    if (!q->out_stream) return;
    q->out_stream = 0;
    conn *c = q->c;
    if (c && !c->closing && !q->http10) conn_send(c, "0\r\n\r\n", 5, NULL, 0);
    req_finish(q);
}

/* ---- thread pool bridge ---- */

typedef struct work_item {
    uv_work_t w;
    http_req *q;
    void (*work)(void *);
    void (*done)(http_req *, void *);
    void *arg;
} work_item;

static void work_cb(uv_work_t *w) {
    work_item *wi = w->data;
    wi->work(wi->arg);
}

static void after_work_cb(uv_work_t *w, int status) {
    work_item *wi = w->data;
    http_req *q = wi->q;
    q->srv->pool_depth--;
    /* Our reference stays until done returns: done usually replies, and a
     * reply frees a request that no work refers to. */
    wi->done(q, wi->arg);
    eh_free(wi);
    if (--q->pending_work == 0 && q->replied) req_free(q);
}

int http_req_work(http_req *q, void (*work)(void *), void (*done)(http_req *, void *), void *arg) {
    work_item *wi = eh_calloc(1, sizeof *wi);
    if (!wi) return UV_ENOMEM;
    wi->q = q;
    wi->work = work;
    wi->done = done;
    wi->arg = arg;
    wi->w.data = wi;
    int rc = uv_queue_work(q->srv->loop, &wi->w, work_cb, after_work_cb);
    if (rc) {
        eh_free(wi);
        return rc;
    }
    q->pending_work++;
    q->srv->pool_depth++;
    return 0;
}

/* ---- parser callbacks ---- */

static int fail(conn *c, int status, const char *code, const char *msg) {
    c->err_status = status;
    c->err_code = code;
    c->err_msg = msg;
    return 1;
}

static int on_message_begin(http_parser *p) {
    conn *c = p->data;
    if (!c->req) {
        c->req = req_new(c);
        if (!c->req) return fail(c, 503, "overloaded", "out of memory");
    }
    c->head_bytes = 0;
    c->in_value = 0;
    buf_reset(&c->field);
    buf_reset(&c->value);
    if (c->state == ST_IDLE) set_state(c, ST_HEAD);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
    conn *c = p->data;
    http_req *q = c->req;
    size_t have = q->url ? strlen(q->url) : 0;
    if (have + len > c->srv->cfg.max_url)
        return fail(c, 414, "uri_too_long", "request URL exceeds the configured limit");
    c->head_bytes += len;
    char *u = arena_alloc(q->a, have + len + 1);
    if (!u) return fail(c, 503, "overloaded", "out of memory");
    if (have) memcpy(u, q->url, have);
    memcpy(u + have, at, len);
    u[have + len] = '\0';
    q->url = u;
    return 0;
}

static int commit_header(conn *c) {
    http_req *q = c->req;
    if (!c->field.len) return 0;
    if (q->nhdrs == q->caphdrs) {
        int cap = q->caphdrs ? q->caphdrs * 2 : 16;
        hdr *nh = arena_alloc(q->a, (size_t)cap * sizeof *nh);
        if (!nh) return fail(c, 503, "overloaded", "out of memory");
        if (q->nhdrs) memcpy(nh, q->hdrs, (size_t)q->nhdrs * sizeof *nh);
        q->hdrs = nh;
        q->caphdrs = cap;
    }
    hdr *h = &q->hdrs[q->nhdrs];
    h->name = arena_strndup(q->a, c->field.p, c->field.len);
    h->value = arena_strndup(q->a, c->value.p ? c->value.p : "", c->value.len);
    if (!h->name || !h->value) return fail(c, 503, "overloaded", "out of memory");
    q->nhdrs++;
    buf_reset(&c->field);
    buf_reset(&c->value);
    return 0;
}

static int head_limit(conn *c, size_t len) {
    c->head_bytes += len;
    if (c->head_bytes > c->srv->cfg.max_header)
        return fail(c, 431, "headers_too_large", "request headers exceed the configured limit");
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
    conn *c = p->data;
    if (head_limit(c, len)) return 1;
    if (c->in_value) {
        if (commit_header(c)) return 1;
        c->in_value = 0;
    }
    if (buf_append(&c->field, at, len)) return fail(c, 431, "headers_too_large", "header too large");
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
    conn *c = p->data;
    if (head_limit(c, len)) return 1;
    c->in_value = 1;
    if (buf_append(&c->value, at, len)) return fail(c, 431, "headers_too_large", "header too large");
    return 0;
}

static int on_headers_complete(http_parser *p) {
    conn *c = p->data;
    http_req *q = c->req;
    /* Here 1 would mean "no body" to http-parser: errors must be -1. */
    if (c->in_value && commit_header(c)) return -1;
    c->in_value = 0;
    if (p->http_major != 1)
        return -fail(c, 505, "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are supported");
    snprintf(q->method, sizeof q->method, "%s", http_method_str((enum http_method)p->method));
    q->http10 = p->http_major == 1 && p->http_minor == 0;
    q->keep_alive = http_should_keep_alive(p);
    q->upgrade = p->upgrade;
    if (!q->url) return -fail(c, 400, "bad_request", "missing request target");
    if (!q->upgrade && !split_target(q) &&
        http_router_match(c->srv->router, q->method, q->path, &q->match) == HTTP_MATCH_OK &&
        (q->match.flags & HTTP_ROUTE_STREAM))
        q->stream = 1;
    if (!q->stream && (p->flags & F_CONTENTLENGTH) && p->content_length > c->srv->cfg.max_body)
        return -fail(c, 413, "body_too_large", "request body exceeds the configured limit");
    const char *expect = http_req_header(q, "Expect");
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0)
            return -fail(c, 417, "expectation_failed", "only Expect: 100-continue is supported");
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        conn_send(c, cont, sizeof cont - 1, NULL, 0);
    }
    set_state(c, ST_BODY);
    if (q->stream) {
        /* Hand the request to its handler before reading the body. */
        q->stream_wait = 1;
        arm_timer(c, 0);
        http_parser_pause(p, 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
    conn *c = p->data;
    http_req *q = c->req;
    if (!q) {
        /* A streaming handler answered mid-body: the rest is dropped with
         * the connection. */
        http_parser_pause(p, 1);
        return 0;
    }
    if (q->stream_on) {
        if (len > q->stream_max - q->stream_bytes)
            return fail(c, 413, "body_too_large", "request body exceeds this route's limit");
        q->stream_bytes += len;
        arm_timer(c, c->srv->cfg.body_timeout_ms); /* the gap between pieces */
        q->scb.on_data(q, at, len, q->sud);
        /* The handler may have answered (and so freed q): stop here. */
        if (c->req != q || q->stream_paused) http_parser_pause(p, 1);
        return 0;
    }
    int rc = buf_append(&q->body, at, len);
    if (rc == BUF_TOO_BIG) return fail(c, 413, "body_too_large", "request body exceeds the configured limit");
    if (rc) return fail(c, 503, "overloaded", "out of memory");
    return 0;
}

static int on_message_complete(http_parser *p) {
    conn *c = p->data;
    /* Stop here: the next pipelined request is parsed after this one is
     * answered, which keeps responses in order. */
    http_parser_pause(p, 1);
    set_state(c, ST_HANDLING);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- dispatch ---- */

static int split_target(http_req *q) {
    const char *u = q->url;
    if (q->path) return 0; /* already split at the end of the headers */
    if (u[0] == '*' && u[1] == '\0') {
        q->path = "*";
        return 0;
    }
    if (u[0] != '/') {
        /* absolute-form (proxies): keep just the path */
        struct http_parser_url pu;
        http_parser_url_init(&pu);
        if (http_parser_parse_url(u, strlen(u), 0, &pu) || !(pu.field_set & (1 << UF_PATH)))
            return -1;
        u = u + pu.field_data[UF_PATH].off;
    }
    const char *qm = strchr(u, '?');
    const char *hash = strchr(u, '#');
    size_t plen = qm ? (size_t)(qm - u) : hash ? (size_t)(hash - u) : strlen(u);
    q->path = url_decode(q->a, u, plen, 0);
    if (!q->path) return -1;
    if (qm) {
        size_t ql = hash && hash > qm ? (size_t)(hash - qm - 1) : strlen(qm + 1);
        q->query = arena_strndup(q->a, qm + 1, ql);
    }
    return 0;
}

/* A client's valid X-Request-Id is kept; otherwise the id is this
 * process's random 64-bit prefix plus a counter: unique across restarts and
 * nodes without a random-number call (and its getpid) per request. */
static void set_request_id(http_req *q) {
    const char *rid = http_req_header(q, "X-Request-Id");
    if (rid && ids_request_id_valid(rid, strlen(rid))) {
        snprintf(q->id, sizeof q->id, "%s", rid);
        return;
    }
    http_server *s = q->srv;
    /* prefix (16 hex digits) + the counter as 16 hex digits, by hand: this
     * runs for every request and snprintf was 1.5k instructions of it */
    static const char hex[] = "0123456789abcdef";
    uint64_t n = ++s->id_counter;
    memcpy(q->id, s->id_prefix, 16);
    for (int i = 15; i >= 0; i--, n >>= 4) q->id[16 + i] = hex[n & 15];
    q->id[32] = 0;
}

static void preflight(http_req *q, const char *allow) {
    const char *acrm = http_req_header(q, "Access-Control-Request-Method");
    const char *origin = http_req_header(q, "Origin");
    if (acrm && origin && q->srv->cors && *q->srv->cors) {
        http_res_header(q, "Access-Control-Allow-Methods", allow);
        const char *acrh = http_req_header(q, "Access-Control-Request-Headers");
        if (acrh && strlen(acrh) < 512) http_res_header(q, "Access-Control-Allow-Headers", acrh);
        http_res_header(q, "Access-Control-Max-Age", "600");
    }
    http_res_header(q, "Allow", allow);
    http_reply(q, 204, NULL, NULL, 0);
}

static void dispatch(conn *c) {
    http_req *q = c->req;
    http_server *s = c->srv;
    q->dispatched = 1;
    s->inflight++;
    set_request_id(q);
    if (s->shutting_down) q->keep_alive = 0;
    if (q->upgrade && !q->keep_alive) q->keep_alive = 0;
    if (split_target(q)) {
        q->keep_alive = 0;
        http_reply_error(q, 400, "bad_request", "malformed request target");
        return;
    }
    if (strcmp(q->method, "OPTIONS") == 0 && strcmp(q->path, "*") == 0) {
        http_res_header(q, "Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
        http_reply(q, 204, NULL, NULL, 0);
        return;
    }
    int rc = http_router_match(s->router, q->method, q->path, &q->match);
    if (rc == HTTP_MATCH_NOT_FOUND) {
        if (http_router_fallback(s->router, &q->match)) {
            if (q->upgrade) q->keep_alive = 0;
            q->match.fn(q, q->match.ud);
            return;
        }
        q->match.pattern = NULL;
        http_reply_error(q, 404, "not_found", "no such route");
        return;
    }
    if (rc == HTTP_MATCH_METHOD) {
        if (strcmp(q->method, "OPTIONS") == 0) {
            preflight(q, q->match.allow);
            return;
        }
        http_res_header(q, "Allow", q->match.allow);
        q->match.pattern = NULL;
        http_reply_error(q, 405, "method_not_allowed", "method not allowed on this route");
        return;
    }
    /* Path parameters point into q->path, which lives in the arena: copy
     * them so each is NUL-terminated. */
    for (int i = 0; i < q->match.nparams; i++) {
        char *v = arena_strndup(q->a, q->match.params[i].val, q->match.params[i].len);
        if (!v) {
            http_reply_error(q, 503, "overloaded", "out of memory");
            return;
        }
        q->match.params[i].val = v;
    }
    /* An upgrade to a route that is not a WebSocket endpoint: answer it as a
     * plain request, then close (the bytes after it are not HTTP). */
    if (q->upgrade && !(q->match.flags & HTTP_ROUTE_WS)) q->keep_alive = 0;
    q->match.fn(q, q->match.ud);
}

static void reply_parse_error(conn *c) {
    http_req *q = c->req;
    int status = c->err_status ? c->err_status : 400;
    const char *code = c->err_code ? c->err_code : "bad_request";
    char msg[160];
    if (c->err_msg) snprintf(msg, sizeof msg, "%s", c->err_msg);
    else
        snprintf(msg, sizeof msg, "malformed HTTP request: %s",
                 http_errno_description(HTTP_PARSER_ERRNO(&c->parser)));
    if (!q) {
        q = c->req = req_new(c);
        if (!q) {
            conn_close(c);
            return;
        }
    }
    if (!q->method[0]) snprintf(q->method, sizeof q->method, "-");
    set_request_id(q);
    q->dispatched = 1;
    c->srv->inflight++;
    q->keep_alive = 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    set_state(c, ST_HANDLING);
    http_reply_error(q, status, code, msg);
}

/* Parses buffered input until a request is complete (then dispatches it)
 * or the input runs out. Loops, rather than recursing, across pipelined
 * requests answered synchronously. */
static void conn_process(conn *c) {
    c->in_process = 1;
    for (;;) {
        http_req *q = c->req;
        if (c->closing || c->lingering || c->close_after_write || c->state == ST_HANDLING ||
            c->state == ST_WS || c->in.len == 0)
            break;
        if (q && (q->stream_wait || q->stream_paused)) break; /* the handler has the floor */
        size_t n = http_parser_execute(&c->parser, &parser_settings, c->in.p, c->in.len);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        q = c->req;
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            buf_consume(&c->in, n);
            if (!q) break; /* answered early; the connection closes */
            if (q && q->stream_wait && !q->dispatched) {
                dispatch(c); /* end of headers of a streaming route */
                continue;
            }
            if (q && q->stream_paused && c->state != ST_HANDLING) continue;
            if (q && q->stream_on) {
                if (!q->stream_done) {
                    q->stream_done = 1;
                    q->scb.on_end(q, 0, q->sud);
                }
                continue;
            }
            dispatch(c);
            if (c->state == ST_WS) {
                c->in_process = 0;
                ws_start(c);
                return;
            }
            continue;
        }
        if (e != HPE_OK) {
            buf_consume(&c->in, c->in.len);
            if (q && q->stream_on && !q->stream_done) {
                /* The handler owns this request: it answers the error. */
                q->stream_done = 1;
                q->keep_alive = 0;
                uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = 0;
                set_state(c, ST_HANDLING);
                q->scb.on_end(q, c->err_status ? c->err_status : 400, q->sud);
            } else {
                reply_parse_error(c);
            }
            break;
        }
        buf_consume(&c->in, n);
        if (c->parser.upgrade && c->state == ST_HANDLING) continue;
    }
    c->in_process = 0;
    if (c->closing || c->lingering) return;
    if (c->state == ST_HANDLING || c->state == ST_WS) return;
    if (c->req && (c->req->stream_wait || c->req->stream_paused)) return;
    if (!c->reading && !c->close_after_write) {
        c->reading = 1;
        start_read(c);
    }
}

int http_req_stream_body(http_req *q, const http_body_stream *cb, void *ud, size_t max) {
    conn *c = q->c;
    if (!c || c->closing || !q->stream || q->stream_on || q->replied) return -1;
    q->stream_wait = 0;
    q->stream_on = 1;
    q->scb = *cb;
    q->sud = ud;
    q->stream_max = max;
    if ((c->parser.flags & F_CONTENTLENGTH) && c->parser.content_length > max) {
        q->stream_done = 1;
        q->keep_alive = 0;
        cb->on_end(q, 413, ud);
        return 0;
    }
    if (c->state == ST_BODY) arm_timer(c, c->srv->cfg.body_timeout_ms);
    if (!c->in_process) conn_process(c);
    return 0;
}

void http_req_pause(http_req *q) {
    conn *c = q->c;
    if (!c || !q->stream_on || q->stream_done || q->stream_paused) return;
    q->stream_paused = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    arm_timer(c, 0);
}

void http_req_resume(http_req *q) {
    conn *c = q->c;
    if (!q->stream_paused) return;
    q->stream_paused = 0;
    if (!c || c->closing) return;
    if (c->state == ST_BODY) arm_timer(c, c->srv->cfg.body_timeout_ms);
    if (!c->in_process) conn_process(c);
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    conn *c = h->data;
    http_server *s = c->srv;
    /* One read buffer for the whole loop: libuv calls on_read right after
     * each on_alloc, and on_read copies what it keeps. */
    b->base = s->read_buf;
    b->len = sizeof s->read_buf;
}

static void ws_feed(conn *c, const char *data, size_t len);

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
    conn *c = st->data;
    if (nread == 0) return;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (c->lingering) {
        c->linger_bytes += (size_t)nread;
        if (c->linger_bytes > 4u * 1024 * 1024) conn_close(c);
        return;
    }
    if (c->state == ST_WS) {
        ws_feed(c, b->base, (size_t)nread);
        return;
    }
    if (buf_append(&c->in, b->base, (size_t)nread)) {
        conn_close(c);
        return;
    }
    if (c->state == ST_HANDLING || (c->req && (c->req->stream_wait || c->req->stream_paused))) {
        /* Pipelined bytes while a request is being handled (or a streaming
         * handler is busy): keep them, but stop reading so a client cannot
         * queue without bound. */
        uv_read_stop(st);
        c->reading = 0;
        return;
    }
    if (c->state == ST_IDLE) set_state(c, ST_HEAD);
    conn_process(c);
}

static void start_read(conn *c) { uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read); }

static void on_connection(uv_stream_t *l, int status) {
    http_server *s = l->data;
    if (status < 0) return;
    conn *c = eh_calloc(1, sizeof *c);
    if (!c) return;
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    c->handles = 1;
    buf_init(&c->in, s->cfg.max_header + s->cfg.max_body + 2 * READ_CHUNK);
    buf_init(&c->cork, s->cfg.ws_max_queue + 64 * 1024);
    buf_init(&c->field, s->cfg.max_header);
    buf_init(&c->value, s->cfg.max_header);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) || s->shutting_down ||
        s->nconns > s->cfg.max_connections) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->state = ST_IDLE;
    set_state(c, ST_IDLE);
    c->reading = 1;
    start_read(c);
}

/* ---- WebSocket ---- */

static void ws_enter(conn *c) { c->ws_busy++; }
/* Returns 1 if the connection was closed here (c->ws is then gone). */
static int ws_leave(conn *c) {
    if (--c->ws_busy == 0 && c->close_pending && !c->closing) {
        conn_close(c);
        return 1;
    }
    return 0;
}

static int ws_write_cb(void *ud, const uint8_t *data, size_t len) {
    conn *c = ud;
    return conn_send(c, data, len, NULL, 0);
}

static void ws_message_cb(void *ud, int opcode, const uint8_t *data, size_t len) {
    conn *c = ud;
    http_ws *ws = c->ws;
    if (!ws) return;
    ws->last_seen_ns = clock_mono_ns();
    if (c->srv->m_ws_msgs) {
        const char *lv[] = {"in"};
        metric_add(c->srv->m_ws_msgs, lv, 1);
    }
    if (ws->h.on_message) ws->h.on_message(ws, opcode, (const char *)data, len, ws->ud);
}

static void ws_close_cb(void *ud, uint16_t code) {
    conn *c = ud;
    http_ws *ws = c->ws;
    if (ws && !ws->close_reported) {
        ws->close_reported = 1;
        if (ws->h.on_close) ws->h.on_close(ws, code, ws->ud);
    }
    /* Let the close frame go out, then hang up. */
    c->close_after_write = 1;
    if (c->pending_writes == 0) conn_linger(c);
}

static void ws_pong_cb(void *ud) {
    conn *c = ud;
    if (c->ws) c->ws->last_seen_ns = clock_mono_ns();
}

static void ws_feed(conn *c, const char *data, size_t len) {
    http_ws *ws = c->ws;
    if (!ws) return;
    ws->last_seen_ns = clock_mono_ns();
    ws_enter(c);
    ws_session_feed(ws->s, (const uint8_t *)data, len);
    if (ws_leave(c)) return;
    if (c->ws && ws_session_done(ws->s) && !c->closing) {
        c->close_after_write = 1;
        if (c->pending_writes == 0) conn_linger(c);
    }
}

static void ws_start(conn *c) {
    /* Bytes that arrived right behind the handshake belong to the socket. */
    if (c->in.len && c->ws) {
        buf rest = c->in;
        buf_init(&c->in, 0);
        ws_feed(c, rest.p, rest.len);
        buf_free(&rest);
    }
    if (!c->closing && !c->reading) {
        c->reading = 1;
        start_read(c);
    }
}

http_ws *http_ws_accept(http_req *q, const http_ws_handler *h, void *ud, const char *protocol) {
    const char *upgrade = http_req_header(q, "Upgrade");
    const char *key = http_req_header(q, "Sec-WebSocket-Key");
    const char *version = http_req_header(q, "Sec-WebSocket-Version");
    if (!q->upgrade || !upgrade || strcasecmp(upgrade, "websocket") != 0) {
        q->keep_alive = 0;
        http_res_header(q, "Upgrade", "websocket");
        http_reply_error(q, 426, "upgrade_required", "this endpoint speaks WebSocket only");
        return NULL;
    }
    char accept[32];
    if (!version || strcmp(version, "13") != 0) {
        q->keep_alive = 0;
        http_res_header(q, "Sec-WebSocket-Version", "13");
        http_reply_error(q, 426, "unsupported_version", "WebSocket version 13 required");
        return NULL;
    }
    if (!key || ws_handshake_accept(key, strlen(key), accept, sizeof accept)) {
        q->keep_alive = 0;
        http_reply_error(q, 400, "bad_handshake", "missing or invalid Sec-WebSocket-Key");
        return NULL;
    }
    conn *c = q->c;
    if (!c || c->closing) {
        http_reply(q, 101, NULL, NULL, 0);
        return NULL;
    }
    http_server *s = q->srv;
    http_ws *ws = eh_calloc(1, sizeof *ws);
    ws_limits lim = {s->cfg.ws_max_message, s->cfg.ws_max_queue};
    ws_callbacks cb = {c, ws_write_cb, ws_message_cb, ws_close_cb, ws_pong_cb};
    if (ws) ws->s = ws_session_new(&lim, &cb);
    if (!ws || !ws->s) {
        eh_free(ws);
        q->keep_alive = 0;
        http_reply_error(q, 503, "overloaded", "out of memory");
        return NULL;
    }
    ws->c = c;
    ws->h = *h;
    ws->ud = ud;
    ws->last_seen_ns = clock_mono_ns();
    buf hd;
    buf_init(&hd, 1024);
    buf_printf(&hd,
               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\nX-Request-Id: %s\r\n",
               accept, q->id);
    if (protocol && !strpbrk(protocol, "\r\n")) buf_printf(&hd, "Sec-WebSocket-Protocol: %s\r\n", protocol);
    buf_puts(&hd, "\r\n");
    conn_send(c, hd.p, hd.len, NULL, 0);
    buf_free(&hd);
    c->ws = ws;
    s->nws++;
    set_state(c, ST_WS);
    q->replied = 1;
    q->status = 101;
    q->keep_alive = 1;
    req_finish(q);
    /* Accepted later than dispatch (after async work): start reading now. */
    if (!c->in_process) ws_start(c);
    return ws;
}

int http_ws_send(http_ws *ws, int opcode, const char *data, size_t len) {
    conn *c = ws->c;
    if (c->closing || ws_session_closing(ws->s)) return -1;
    http_server *s = c->srv;
    if (http_ws_backlog(ws) + len > s->cfg.ws_max_queue) {
        if (s->m_ws_drops) metric_add(s->m_ws_drops, NULL, 1);
        http_ws_close(ws, 1008, "slow consumer");
        return -1;
    }
    ws_enter(c);
    c->cork_ok = s->cork_depth > 0;
    int rc = ws_session_send(ws->s, opcode, data, len);
    c->cork_ok = 0;
    if (ws_leave(c)) return -1;
    if (rc == WS_EQUEUE) {
        if (s->m_ws_drops) metric_add(s->m_ws_drops, NULL, 1);
        http_ws_close(ws, 1008, "slow consumer");
        return -1;
    }
    if (rc) return -1;
    if (s->m_ws_msgs) {
        const char *lv[] = {"out"};
        metric_add(s->m_ws_msgs, lv, 1);
    }
    return 0;
}

void http_ws_close(http_ws *ws, int code, const char *reason) {
    conn *c = ws->c;
    if (c->closing) return;
    if (ws_session_closing(ws->s)) return;
    ws_enter(c);
    ws_session_close(ws->s, (uint16_t)code, reason);
    if (ws_leave(c)) return;
    /* If the peer never answers the close, the ping sweep or shutdown timer
     * hangs up; a client that stopped reading is cut off right away. */
    if (http_ws_backlog(ws) > c->srv->cfg.ws_max_queue) conn_close(c);
}

size_t http_ws_backlog(const http_ws *ws) {
    const conn *c = ws->c;
    return ws_session_queued(ws->s) + c->cork.len + c->cork_ref_bytes +
           uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
}

http_ws_frame *http_ws_frame_new(int opcode, const char *data, size_t len) {
    uint8_t h[WS_FRAME_HEADER_MAX];
    size_t hl = ws_frame_header(h, opcode, len);
    if (!hl || (len && !data)) return NULL;
    http_ws_frame *f = eh_malloc(sizeof *f + hl + len);
    if (!f) return NULL;
    f->refs = 1;
    f->opcode = opcode;
    f->hl = hl;
    f->len = hl + len;
    memcpy(f->data, h, hl);
    if (len) memcpy(f->data + hl, data, len);
    return f;
}

void http_ws_frame_unref(http_ws_frame *f) { frame_unref(f); }

int http_ws_send_frame(http_ws *ws, http_ws_frame *f) {
    conn *c = ws->c;
    if (c->closing || c->close_pending) return -1;
    /* The session's own queue (a reply deferred inside feed) goes first:
     * then the frame takes the session's path, copied. */
    if (!ws_session_raw_ok(ws->s)) return http_ws_send(ws, f->opcode, f->data + f->hl, f->len - f->hl);
    http_server *s = c->srv;
    if (http_ws_backlog(ws) + f->len > s->cfg.ws_max_queue) {
        if (s->m_ws_drops) metric_add(s->m_ws_drops, NULL, 1);
        http_ws_close(ws, 1008, "slow consumer");
        return -1;
    }
    if (s->cork_depth > 0) {
        if (c->ncork_ref == CORK_REFS) {
            if (cork_materialize(c) != BUF_OK || buf_append(&c->cork, f->data, f->len) != BUF_OK) {
                conn_fail(c);
                return -1;
            }
        } else {
            f->refs++;
            c->cork_ref[c->ncork_ref++] = f;
            c->cork_ref_bytes += f->len;
        }
        cork_link(c);
        s->ws_out++;
        return 0;
    }
    if ((c->cork.len || c->ncork_ref) && cork_flush(c)) return -1;
    if (conn_write(c, f->data, f->len, NULL, 0)) return -1;
    if (s->m_ws_msgs) {
        const char *lv[] = {"out"};
        metric_add(s->m_ws_msgs, lv, 1);
    }
    return 0;
}

/* Pings every WebSocket each interval; one silent for two intervals is
 * gone (a dead peer otherwise holds its slot forever). */
static void on_ping_timer(uv_timer_t *t) {
    http_server *s = t->data;
    uint64_t now = clock_mono_ns();
    uint64_t limit = (uint64_t)s->cfg.ws_ping_ms * 2 * 1000000ull;
    conn *next;
    for (conn *c = s->conns; c; c = next) {
        next = c->next;
        if (!c->ws || c->closing) continue;
        if (now - c->ws->last_seen_ns > limit) conn_close(c);
        else if (!ws_session_closing(c->ws->s)) {
            ws_enter(c);
            ws_session_ping(c->ws->s);
            ws_leave(c);
        }
        else if (now - c->ws->last_seen_ns > limit / 2) conn_close(c);
    }
}

/* Fires every sweep interval and times out connections past their
 * deadline. The interval is a quarter of the shortest timeout, so a
 * timeout fires at most 25% late. */
static void on_sweep(uv_timer_t *t) {
    http_server *s = t->data;
    uint64_t now = uv_now(s->loop);
    conn *next;
    for (conn *c = s->conns; c; c = next) {
        next = c->next;
        if (c->deadline && c->deadline <= now && !c->closing) {
            c->deadline = 0;
            on_timeout(c);
        }
    }
}

static unsigned sweep_interval(const http_config *cfg) {
    unsigned m = cfg->header_timeout_ms;
    if (cfg->body_timeout_ms && cfg->body_timeout_ms < m) m = cfg->body_timeout_ms;
    if (cfg->idle_timeout_ms && cfg->idle_timeout_ms < m) m = cfg->idle_timeout_ms;
    m /= 4;
    return m < 50 ? 50 : m > 1000 ? 1000 : m;
}

/* ---- server ---- */

static const double latency_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                         0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                         1,      2.5,     5,      10};

http_server *http_server_new(uv_loop_t *loop, const http_config *cfg, http_router *router,
                             logger *log, metrics *m) {
    http_server *s = eh_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->loop = loop;
    s->cfg = *cfg;
    s->host = eh_strdup(cfg->host ? cfg->host : "127.0.0.1");
    s->cors = eh_strdup(cfg->cors_origins ? cfg->cors_origins : "");
    char perr[160];
    if (!s->host || !s->cors || http_proxies_parse(cfg->trusted_proxies, &s->proxies, perr, sizeof perr)) {
        if (s->host && s->cors) log_msg(log, LOG_ERROR, "invalid --trusted-proxies", perr);
        http_server_free(s);
        return NULL;
    }
    s->cfg.host = s->host;
    s->cfg.trusted_proxies = NULL; /* parsed into s->proxies */
    s->cfg.cors_origins = s->cors;
    if (!s->cfg.max_connections) s->cfg.max_connections = 20000;
    if (!s->cfg.ws_ping_ms) s->cfg.ws_ping_ms = 30000;
    s->router = router;
    s->log = log;
    s->m = m;
    if (m) {
        s->m_req = metrics_counter(m, "ehub_http_requests_total", "HTTP requests by route, method and status",
                                   "route,method,status");
        s->m_lat = metrics_histogram(m, "ehub_http_request_duration_seconds",
                                     "HTTP request latency by route", "route", latency_buckets,
                                     (int)(sizeof latency_buckets / sizeof latency_buckets[0]));
        s->m_ws_msgs = metrics_counter(m, "ehub_ws_messages_total", "WebSocket messages", "direction");
        s->m_ws_drops = metrics_counter(m, "ehub_ws_slow_consumer_disconnects_total",
                                        "WebSocket connections closed because their backlog hit the bound", NULL);
        s->m_fan = metrics_counter(m, "ehub_ws_fanout_writes_total",
                                   "connections written by parallel fan-out passes, by the thread that wrote them",
                                   "thread");
        s->m_fan_pass = metrics_histogram(m, "ehub_ws_fanout_pass_seconds",
                                          "time to write one fan-out pass of at least --ws-parallel-min connections, "
                                          "by who wrote it (the loop alone, or with the --ws-writers threads)",
                                          "mode", latency_buckets,
                                          (int)(sizeof latency_buckets / sizeof latency_buckets[0]));
    }
    uv_tcp_init(loop, &s->listener);
    uv_timer_init(loop, &s->ping_timer);
    uv_timer_init(loop, &s->shutdown_timer);
    uv_timer_init(loop, &s->sweep_timer);
    s->listener.data = s->ping_timer.data = s->shutdown_timer.data = s->sweep_timer.data = s;
    s->started_ms = clock_wall_ms();
    if (ids_random_hex(s->id_prefix, sizeof s->id_prefix, 8)) {
        http_server_free(s);
        return NULL;
    }
    fan_start(s);
    return s;
}

int http_server_listen(http_server *s) {
    struct sockaddr_storage addr;
    int rc;
    if (strchr(s->host, ':')) rc = uv_ip6_addr(s->host, s->cfg.port, (struct sockaddr_in6 *)&addr);
    else rc = uv_ip4_addr(s->host, s->cfg.port, (struct sockaddr_in *)&addr);
    if (rc) return rc;
    if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0))) return rc;
    if ((rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection))) return rc;
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    s->listening = 1;
    uv_timer_start(&s->ping_timer, on_ping_timer, s->cfg.ws_ping_ms, s->cfg.ws_ping_ms);
    unsigned sw = sweep_interval(&s->cfg);
    uv_timer_start(&s->sweep_timer, on_sweep, sw, sw);
    return 0;
}

int http_server_port(const http_server *s) { return s->port; }
size_t http_server_connections(const http_server *s) { return s->nconns; }
size_t http_server_ws_connections(const http_server *s) { return s->nws; }
size_t http_server_inflight(const http_server *s) { return s->inflight; }
size_t http_server_pool_depth(const http_server *s) { return s->pool_depth; }
int64_t http_server_started_ms(const http_server *s) { return s->started_ms; }

static void on_timer_closed(uv_handle_t *h) {
    http_server *s = h->data;
    if (--s->closing_handles == 0 && s->done) {
        void (*done)(void *) = s->done;
        s->done = NULL;
        done(s->done_ud);
    }
}

/* Once the listener and every connection are closed, close our timers and
 * then report. */
static void maybe_done(http_server *s) {
    if (!s->shutting_down || s->nconns || s->listening || s->closing_handles) return;
    s->closing_handles = 3;
    uv_close((uv_handle_t *)&s->ping_timer, on_timer_closed);
    uv_close((uv_handle_t *)&s->shutdown_timer, on_timer_closed);
    uv_close((uv_handle_t *)&s->sweep_timer, on_timer_closed);
}

static void on_listener_closed(uv_handle_t *h) {
    http_server *s = h->data;
    s->listening = 0;
    maybe_done(s);
}

static void on_shutdown_timeout(uv_timer_t *t) {
    http_server *s = t->data;
    conn *next;
    for (conn *c = s->conns; c; c = next) {
        next = c->next;
        conn_close(c);
    }
}

void http_server_shutdown(http_server *s, void (*done)(void *), void *ud) {
    if (s->shutting_down) return;
    s->shutting_down = 1;
    s->done = done;
    s->done_ud = ud;
    uv_timer_stop(&s->ping_timer);
    conn *next;
    for (conn *c = s->conns; c; c = next) {
        next = c->next;
        if (c->ws) http_ws_close(c->ws, 1001, "server shutting down");
        else if (c->req && c->req->out_stream && !c->req->out_stopped) {
            c->req->out_stopped = 1;
            c->req->out_stop(c->req, c->req->out_ud);
        } else if (c->state == ST_IDLE && c->pending_writes == 0) conn_close(c);
        else c->close_after_write = c->state == ST_IDLE;
    }
    uv_timer_start(&s->shutdown_timer, on_shutdown_timeout, s->cfg.shutdown_timeout_ms, 0);
    s->listening = 1; /* until the close callback says otherwise */
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}

void http_server_free(http_server *s) {
    if (!s) return;
    /* Call only after shutdown's done callback: by then every handle of
     * ours is closed. */
    fan_stop(s);
    eh_free(s->host);
    eh_free(s->cors);
    http_proxies_free(s->proxies);
    eh_free(s);
}
