/* The bus: local delivery, Redis fan-out, gap fills from the event log.
 * See bus.h for the contract. */
#include "bus.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libuv.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"

#define MAX_SUBS 8
#define FILL_TENANTS 64   /* tenants per fill job */
#define FILL_PAGE 1000    /* events per tenant per fill job */
#define GAP_WAIT_MS 30    /* a gap this young usually closes by itself */
#define TAIL_MS 1000      /* how often the log's heads are compared with ours */
#define TAIL_PAGE 4096    /* tenants read per tail */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 1000

struct bus {
    uv_loop_t *loop;
    store *st;
    logger *log;
    int redis;
    char host[256];
    int port;
    char channel[128];
    bus_seq *seq;
    struct {
        bus_fn fn;
        void *ud;
    } sub[MAX_SUBS];
    int nsub;
    redisAsyncContext *subc, *pubc;
    int sub_up, pub_up, ever_up;
    uv_timer_t retry_timer, fill_timer, watchdog, tail_timer;
    uint64_t sub_since, pub_since; /* loop ms when the current attempt began */
    int handles;     /* open uv handles of ours */
    unsigned backoff_ms;
    /* what we published while Redis was unreachable, oldest first */
    char **unsent;
    size_t *unsent_len;
    size_t nunsent, max_unsent;
    int fill_running, fill_all;
    /* tenants the tail found behind the log's head (or whose fill read a
     * full page): the next fill reads them */
    int64_t behind[FILL_TENANTS];
    int nbehind;
    int tail_running, tail_pass; /* tail_pass: 0 until the first full pass is done */
    int64_t tail_after;          /* the tail's cursor over tenant ids */
    int jobs;        /* pool jobs running */
    int freeing;
    double lag_ms;
    metric *m_events, *m_dups, *m_fills, *m_reconnects, *m_dropped, *m_tails;
};

/* ---- wire format ---- */

char *bus_encode(const store_event *ev, size_t *len) {
    size_t tl = strlen(ev->type), pl = strlen(ev->payload);
    size_t cap = 80 + tl + pl;
    char *s = eh_malloc(cap);
    if (!s) return NULL;
    int n = snprintf(s, cap, "%" PRId64 " %" PRId64 " %" PRId64 " %s\n", ev->tenant, ev->seq, ev->time_ms,
                     ev->type);
    memcpy(s + n, ev->payload, pl + 1);
    *len = (size_t)n + pl;
    return s;
}

static int parse_i64(const char **p, const char *end, int64_t *out) {
    const char *s = *p;
    int64_t v = 0;
    int neg = 0, digits = 0;
    if (s < end && *s == '-') neg = 1, s++;
    while (s < end && *s >= '0' && *s <= '9' && digits < 18) v = v * 10 + (*s++ - '0'), digits++;
    if (!digits || s >= end || *s != ' ') return -1;
    *out = neg ? -v : v;
    *p = s + 1;
    return 0;
}

int bus_decode(char *buf, size_t len, store_event *ev) {
    const char *p = buf, *end = buf + len;
    if (parse_i64(&p, end, &ev->tenant) || parse_i64(&p, end, &ev->seq) || parse_i64(&p, end, &ev->time_ms))
        return -1;
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl || nl == p || ev->tenant <= 0 || ev->seq <= 0) return -1;
    *nl = '\0';
    ev->type = p;
    if (memchr(nl + 1, '\0', (size_t)(end - nl - 1))) return -1;
    ev->payload = nl + 1;  /* hiredis NUL-terminates replies */
    return buf[len] == '\0' ? 0 : -1;
}

/* ---- delivery ---- */

static void deliver(void *ud, const store_event *ev) {
    bus *b = ud;
    if (b->freeing) return;
    b->lag_ms = (double)(clock_wall_ms() - ev->time_ms);
    for (int i = 0; i < b->nsub; i++) b->sub[i].fn(b->sub[i].ud, ev);
}

static void schedule_fill(bus *b, unsigned ms);

static void offer(bus *b, const store_event *ev, const char *source) {
    int rc = bus_seq_offer(b->seq, ev, deliver, b);
    if (b->m_events) {
        const char *lv[] = {source};
        metric_add(b->m_events, lv, 1);
    }
    if (rc == BUS_SEQ_DUP && b->m_dups) metric_add(b->m_dups, NULL, 1);
    if (rc == BUS_SEQ_HELD || rc == BUS_SEQ_NOMEM) schedule_fill(b, GAP_WAIT_MS);
}

/* ---- gap fills from the event log ---- */

typedef struct fill_job {
    uv_work_t w;
    bus *b;
    int n;
    int64_t tenant[FILL_TENANTS], after[FILL_TENANTS];
    store_event_list res[FILL_TENANTS];
    int rc[FILL_TENANTS];
    int64_t cur_after;
    store_event_list *cur;
} fill_job;

static int fill_tx(store_tx *tx, void *arg, store_err *err) {
    fill_job *j = arg;
    return store_events_after(tx, j->cur_after, FILL_PAGE, j->cur, err);
}

static void fill_work(uv_work_t *w) {
    fill_job *j = w->data;
    for (int i = 0; i < j->n; i++) {
        store_err err;
        j->cur_after = j->after[i];
        j->cur = &j->res[i];
        j->rc[i] = store_read(j->b->st, j->tenant[i], fill_tx, j, &err);
    }
}

static void maybe_free(bus *b);

static void add_behind(bus *b, int64_t tenant) {
    for (int i = 0; i < b->nbehind; i++)
        if (b->behind[i] == tenant) return;
    if (b->nbehind < FILL_TENANTS) b->behind[b->nbehind++] = tenant;
    /* more than that: the next tail finds the rest */
}

static void fill_done(uv_work_t *w, int status) {
    fill_job *j = w->data;
    bus *b = j->b;
    b->jobs--;
    b->fill_running = 0;
    int again = 0, failed = 0;
    for (int i = 0; i < j->n; i++) {
        if (j->rc[i] != STORE_OK) failed = 1;
        for (int k = 0; k < j->res[i].n && !b->freeing; k++) offer(b, &j->res[i].ev[k], "fill");
        if (j->res[i].n == FILL_PAGE) {
            again = 1;
            add_behind(b, j->tenant[i]); /* a tenant caught up from the tail has no gap to bring it back */
        }
        store_event_list_free(&j->res[i]);
    }
    if (b->m_fills) metric_add(b->m_fills, NULL, 1);
    if (failed) log_msg(b->log, LOG_WARN, "bus: gap fill could not read the event log; retrying", NULL);
    eh_free(j);
    if (b->freeing) {
        maybe_free(b);
        return;
    }
    if (again) schedule_fill(b, 0);
    else if (bus_seq_held(b->seq)) schedule_fill(b, failed ? 500 : GAP_WAIT_MS * 4);
}

static void start_fill(bus *b) {
    if (b->fill_running || b->freeing || !b->st) return;
    fill_job *j = eh_calloc(1, sizeof *j);
    if (!j) return;
    j->b = b;
    if (b->fill_all) {
        /* After a reconnect: every tenant we know may have missed events. */
        int64_t all[FILL_TENANTS * 4];
        int n = bus_seq_tenants(b->seq, all, (int)(sizeof all / sizeof all[0]));
        j->n = n > FILL_TENANTS ? FILL_TENANTS : n;
        memcpy(j->tenant, all, (size_t)j->n * sizeof all[0]);
        b->fill_all = 0;
        /* Larger tenant sets are caught up by the gaps their next events open. */
    } else {
        j->n = bus_seq_gaps(b->seq, j->tenant, FILL_TENANTS);
        for (int i = 0; i < b->nbehind && j->n < FILL_TENANTS; i++) {
            int dup = 0;
            for (int k = 0; k < j->n && !dup; k++) dup = j->tenant[k] == b->behind[i];
            if (!dup) j->tenant[j->n++] = b->behind[i];
        }
        b->nbehind = 0;
    }
    if (j->n == 0) {
        eh_free(j);
        return;
    }
    for (int i = 0; i < j->n; i++) j->after[i] = bus_seq_position(b->seq, j->tenant[i]);
    j->w.data = j;
    if (uv_queue_work(b->loop, &j->w, fill_work, fill_done)) {
        eh_free(j);
        return;
    }
    b->jobs++;
    b->fill_running = 1;
}

static void on_fill_timer(uv_timer_t *t) { start_fill(t->data); }

static void schedule_fill(bus *b, unsigned ms) {
    if (b->freeing || b->fill_running || uv_is_active((uv_handle_t *)&b->fill_timer)) return;
    uv_timer_start(&b->fill_timer, on_fill_timer, ms, 0);
}

/* ---- the tail: events nobody published to us ----
 * Events reach the bus when this node commits them or another node
 * publishes them. A process that commits to the same store without a bus
 * (the CLI: ehub train --tenant, ehub import, ehub retention run) publishes
 * nothing, and a tenant whose events stop after a lost Redis message shows
 * no gap to fill. So once a second a pool job reads every tenant's head
 * from the log (one small query over the tenants table, TAIL_PAGE tenants
 * at a time) and the next fill reads the tenants we are behind on. A
 * tenant first met by the tail starts at its head on the first pass (the
 * past is not news) and, later, the lookback before it (a tenant created by
 * another process since we started). A head read between another node's
 * commit and its Redis message makes a fill the sequencer finds
 * duplicates in: one read, no double delivery. */

typedef struct tail_job {
    uv_work_t w;
    bus *b;
    int64_t after;
    int n, rc;
    int64_t tenant[TAIL_PAGE], head[TAIL_PAGE];
} tail_job;

static int tail_tx(store_tx *tx, void *arg, store_err *err) {
    tail_job *j = arg;
    return store_event_heads(tx, j->after, TAIL_PAGE, j->tenant, j->head, &j->n, err);
}

static void tail_work(uv_work_t *w) {
    tail_job *j = w->data;
    store_err err;
    j->rc = store_read(j->b->st, 0, tail_tx, j, &err);
}

static void tail_done(uv_work_t *w, int status) {
    tail_job *j = w->data;
    bus *b = j->b;
    b->jobs--;
    b->tail_running = 0;
    if (b->freeing) {
        eh_free(j);
        maybe_free(b);
        return;
    }
    if (j->rc == STORE_OK) {
        if (b->m_tails) metric_add(b->m_tails, NULL, 1);
        for (int i = 0; i < j->n; i++) {
            int64_t pos = bus_seq_position(b->seq, j->tenant[i]);
            if (pos < 0) {
                int64_t from = b->tail_pass ? j->head[i] - 64 : j->head[i];
                bus_seq_watch(b->seq, j->tenant[i], from < 0 ? 0 : from);
                if (from < j->head[i]) add_behind(b, j->tenant[i]);
            } else if (j->head[i] > pos) {
                add_behind(b, j->tenant[i]);
            }
        }
        if (j->n == TAIL_PAGE) {
            b->tail_after = j->tenant[j->n - 1];
        } else {
            b->tail_after = 0;
            b->tail_pass = 1;
        }
        if (b->nbehind) schedule_fill(b, 0);
    }
    eh_free(j);
}

static void on_tail_timer(uv_timer_t *t) {
    bus *b = t->data;
    if (b->tail_running || b->freeing || !b->st) return;
    tail_job *j = eh_malloc(sizeof *j);
    if (!j) return;
    j->b = b;
    j->after = b->tail_after;
    j->n = 0;
    j->rc = STORE_OK;
    j->w.data = j;
    if (uv_queue_work(b->loop, &j->w, tail_work, tail_done)) {
        eh_free(j);
        return;
    }
    b->jobs++;
    b->tail_running = 1;
}

/* ---- Redis ---- */

static void connect_missing(bus *b);

static void on_retry(uv_timer_t *t) { connect_missing(t->data); }

static void schedule_retry(bus *b) {
    if (b->freeing || uv_is_active((uv_handle_t *)&b->retry_timer)) return;
    uv_timer_start(&b->retry_timer, on_retry, b->backoff_ms, 0);
    b->backoff_ms = b->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b->backoff_ms * 2;
}

static void log_state(bus *b, const char *msg, const char *err) {
    log_line l;
    if (log_begin(b->log, &l, err ? LOG_WARN : LOG_INFO, msg)) {
        log_str(&l, "host", b->host);
        log_int(&l, "port", b->port);
        if (err) log_str(&l, "error", err);
        log_end(&l);
    }
}

static void flush_unsent(bus *b) {
    for (size_t i = 0; i < b->nunsent; i++) {
        redisAsyncCommand(b->pubc, NULL, NULL, "PUBLISH %s %b", b->channel, b->unsent[i], b->unsent_len[i]);
        eh_free(b->unsent[i]);
    }
    b->nunsent = 0;
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv) {
    bus *b = ac->data;
    redisReply *rep = r;
    if (!rep || !b || b->freeing || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3) return;
    redisReply *kind = rep->element[0], *data = rep->element[2];
    if (kind->type != REDIS_REPLY_STRING) return;
    if (strcmp(kind->str, "subscribe") == 0) {
        b->sub_up = 1;
        b->backoff_ms = BACKOFF_MIN_MS;
        log_state(b, "bus: subscribed", NULL);
        if (b->ever_up) {
            /* Anything published while we were away is in the event log. */
            b->fill_all = 1;
            schedule_fill(b, 0);
        }
        b->ever_up = 1;
    } else if (strcmp(kind->str, "message") == 0 && data->type == REDIS_REPLY_STRING) {
        store_event ev;
        if (bus_decode(data->str, data->len, &ev) == 0) offer(b, &ev, "remote");
        else log_msg(b->log, LOG_WARN, "bus: malformed message on the channel", NULL);
    }
}

static void on_connect(const redisAsyncContext *ac, int status) {
    bus *b = ac->data;
    if (!b) return;
    int is_sub = ac == b->subc;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        if (is_sub) b->subc = NULL;
        else b->pubc = NULL;
        log_state(b, "bus: cannot connect to Redis", ac->errstr);
        schedule_retry(b);
        return;
    }
    if (!is_sub) {
        b->pub_up = 1;
        flush_unsent(b);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    bus *b = ac->data;
    if (!b) return;
    if (ac == b->subc) {
        b->subc = NULL;
        b->sub_up = 0;
    } else if (ac == b->pubc) {
        b->pubc = NULL;
        b->pub_up = 0;
    }
    if (b->freeing) {
        maybe_free(b);
        return;
    }
    if (b->m_reconnects) metric_add(b->m_reconnects, NULL, 1);
    log_state(b, "bus: lost Redis; reconnecting", ac->errstr[0] ? ac->errstr : "connection closed");
    schedule_retry(b);
}

static redisAsyncContext *open_ctx(bus *b) {
    redisAsyncContext *ac = redisAsyncConnect(b->host, b->port);
    if (!ac) return NULL;
    if (ac->err) {
        log_state(b, "bus: cannot connect to Redis", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = b;
    if (redisLibuvAttach(ac, b->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void connect_missing(bus *b) {
    if (b->freeing) return;
    log_msg(b->log, LOG_DEBUG, "bus: connecting to Redis", NULL);
    uint64_t now = uv_now(b->loop);
    if (!b->subc) {
        /* The command is buffered and sent once connected. */
        if ((b->subc = open_ctx(b)))
            redisAsyncCommand(b->subc, on_sub_reply, NULL, "SUBSCRIBE %s", b->channel);
        b->sub_since = now;
    }
    /* hiredis learns how a non-blocking connect went only when the socket
     * is first polled, which happens once a command is queued. */
    if (!b->pubc && (b->pubc = open_ctx(b))) {
        redisAsyncCommand(b->pubc, NULL, NULL, "PING");
        b->pub_since = now;
    }
    if (!b->subc || !b->pubc) schedule_retry(b);
}

/* A connection attempt that has not completed in CONNECT_TIMEOUT_MS is
 * dropped and retried: a peer that blackholes SYNs never answers, and the
 * libuv adapter of hiredis 0.14 ignores poll errors, so a refused connect
 * is never reported either. */
static void on_watchdog(uv_timer_t *t) {
    bus *b = t->data;
    uint64_t now = uv_now(b->loop);
    int retry = 0;
    if (b->subc && !b->sub_up && now - b->sub_since > CONNECT_TIMEOUT_MS) {
        redisAsyncContext *ac = b->subc;
        b->subc = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
        retry = 1;
    }
    if (b->pubc && !b->pub_up && now - b->pub_since > CONNECT_TIMEOUT_MS) {
        redisAsyncContext *ac = b->pubc;
        b->pubc = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
        retry = 1;
    }
    if (retry) {
        log_state(b, "bus: cannot connect to Redis", "no answer");
        schedule_retry(b);
    }
}

/* ---- API ---- */

static int parse_url(bus *b, const char *url, char *err, size_t errlen) {
    if (strcmp(url, "inproc") == 0) return 0;
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "unsupported --bus \"%.64s\" (inproc or redis://HOST:PORT)", url);
        return -1;
    }
    b->redis = 1;
    const char *h = url + 8, *at = strchr(h, '@');
    if (at) h = at + 1;  /* no AUTH support: credentials are refused below */
    if (at) {
        snprintf(err, errlen, "--bus: Redis credentials are not supported");
        return -1;
    }
    size_t hl = strcspn(h, ":/");
    if (hl == 0 || hl >= sizeof b->host) {
        snprintf(err, errlen, "--bus: missing or too long host");
        return -1;
    }
    memcpy(b->host, h, hl);
    b->host[hl] = '\0';
    const char *p = h + hl;
    b->port = 6379;
    if (*p == ':') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v < 1 || v > 65535) {
            snprintf(err, errlen, "--bus: bad port");
            return -1;
        }
        b->port = (int)v;
        p = end;
    }
    snprintf(b->channel, sizeof b->channel, "ehub:events");
    if (*p == '/' && p[1]) {
        size_t cl = strlen(p + 1);
        if (cl >= sizeof b->channel || strpbrk(p + 1, " \r\n")) {
            snprintf(err, errlen, "--bus: bad channel name");
            return -1;
        }
        memcpy(b->channel, p + 1, cl + 1);
    } else if (*p && strcmp(p, "/") != 0) {
        snprintf(err, errlen, "--bus: malformed URL");
        return -1;
    }
    return 0;
}

static double g_connected(void *ud) { return bus_connected(ud); }
static double g_lag(void *ud) { return ((bus *)ud)->lag_ms / 1000.0; }
static double g_held(void *ud) { return (double)bus_seq_held(((bus *)ud)->seq); }
static double g_unsent(void *ud) { return (double)((bus *)ud)->nunsent; }

bus *bus_new(const bus_opts *o, char *err, size_t errlen) {
    bus *b = eh_calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->loop = o->loop;
    b->st = o->st;
    b->log = o->log;
    b->max_unsent = o->max_unsent ? o->max_unsent : 10000;
    b->backoff_ms = BACKOFF_MIN_MS;
    if (parse_url(b, o->url ? o->url : "inproc", err, errlen)) {
        eh_free(b);
        return NULL;
    }
    b->seq = bus_seq_new(0);
    /* See bus_seq_set_lookback: costs one read of the log per tenant. */
    if (b->seq) bus_seq_set_lookback(b->seq, 64);
    if (b->redis) {
        b->unsent = eh_calloc(b->max_unsent, sizeof *b->unsent);
        b->unsent_len = eh_calloc(b->max_unsent, sizeof *b->unsent_len);
    }
    if (!b->seq || (b->redis && (!b->unsent || !b->unsent_len))) {
        bus_seq_free(b->seq);
        eh_free(b->unsent);
        eh_free(b->unsent_len);
        eh_free(b);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    uv_timer_init(b->loop, &b->retry_timer);
    uv_timer_init(b->loop, &b->fill_timer);
    uv_timer_init(b->loop, &b->watchdog);
    uv_timer_init(b->loop, &b->tail_timer);
    b->retry_timer.data = b->fill_timer.data = b->watchdog.data = b->tail_timer.data = b;
    b->handles = 4;
    if (b->st) {
        uv_timer_start(&b->tail_timer, on_tail_timer, 0, TAIL_MS);
        uv_unref((uv_handle_t *)&b->tail_timer); /* never what keeps a loop alive */
    }
    if (b->redis) uv_timer_start(&b->watchdog, on_watchdog, 250, 250);
    if (o->m) {
        b->m_events = metrics_counter(o->m, "ehub_bus_events_total", "events reaching the bus sequencer by source (local, remote, fill)", "source");
        b->m_dups = metrics_counter(o->m, "ehub_bus_duplicates_total", "events dropped as already delivered", NULL);
        b->m_fills = metrics_counter(o->m, "ehub_bus_gap_fills_total", "reads of the event log to fill gaps or catch up", NULL);
        b->m_reconnects = metrics_counter(o->m, "ehub_bus_disconnects_total", "Redis connections lost", NULL);
        b->m_dropped = metrics_counter(o->m, "ehub_bus_unsent_dropped_total", "events not published to Redis because the unsent queue was full", NULL);
        b->m_tails = metrics_counter(o->m, "ehub_bus_tails_total", "reads of every tenant's event-log head (once a second)", NULL);
        metrics_gauge_fn(o->m, "ehub_bus_connected", "1 if the bus reaches other nodes (always 1 for inproc)", g_connected, b);
        metrics_gauge_fn(o->m, "ehub_bus_lag_seconds", "commit-to-delivery time of the last delivered event", g_lag, b);
        metrics_gauge_fn(o->m, "ehub_bus_held_events", "events held behind a gap", g_held, b);
        metrics_gauge_fn(o->m, "ehub_bus_unsent_events", "events waiting for Redis to come back", g_unsent, b);
    }
    if (b->redis) connect_missing(b);
    return b;
}

int bus_subscribe(bus *b, bus_fn fn, void *ud) {
    if (b->nsub == MAX_SUBS) return -1;
    b->sub[b->nsub].fn = fn;
    b->sub[b->nsub].ud = ud;
    b->nsub++;
    return 0;
}

int bus_publish(bus *b, const store_event *ev, int n) {
    int rc = 0;
    for (int i = 0; i < n; i++) {
        offer(b, &ev[i], "local");
        if (!b->redis) continue;
        size_t len;
        char *msg = bus_encode(&ev[i], &len);
        if (!msg) {
            rc = -1;
            continue;
        }
        if (b->pub_up && b->pubc) {
            redisAsyncCommand(b->pubc, NULL, NULL, "PUBLISH %s %b", b->channel, msg, len);
            eh_free(msg);
        } else if (b->nunsent < b->max_unsent) {
            b->unsent[b->nunsent] = msg;
            b->unsent_len[b->nunsent++] = len;
        } else {
            /* Other nodes catch up from the event log when their next event
             * from this tenant shows the gap, or when they reconnect. */
            eh_free(msg);
            if (b->m_dropped) metric_add(b->m_dropped, NULL, 1);
        }
    }
    return rc;
}

void bus_watch(bus *b, int64_t tenant, int64_t seq) { bus_seq_watch(b->seq, tenant, seq); }
int64_t bus_position(const bus *b, int64_t tenant) { return bus_seq_position(b->seq, tenant); }
const char *bus_kind(const bus *b) { return b->redis ? "redis" : "inproc"; }
int bus_connected(const bus *b) { return !b->redis || (b->sub_up && b->pub_up); }
double bus_lag_ms(const bus *b) { return b->lag_ms; }

static void on_closed(uv_handle_t *h) {
    bus *b = h->data;
    b->handles--;
    maybe_free(b);
}

static void maybe_free(bus *b) {
    if (!b->freeing || b->handles || b->jobs || b->subc || b->pubc) return;
    for (size_t i = 0; i < b->nunsent; i++) eh_free(b->unsent[i]);
    eh_free(b->unsent);
    eh_free(b->unsent_len);
    bus_seq_free(b->seq);
    eh_free(b);
}

void bus_free(bus *b) {
    if (!b || b->freeing) return;
    b->freeing = 1;
    uv_close((uv_handle_t *)&b->retry_timer, on_closed);
    uv_close((uv_handle_t *)&b->fill_timer, on_closed);
    uv_close((uv_handle_t *)&b->watchdog, on_closed);
    uv_close((uv_handle_t *)&b->tail_timer, on_closed);
    /* redisAsyncFree calls the disconnect callback (for a connected
     * context), which clears our pointer; clear it anyway for one that never
     * connected. */
    redisAsyncContext *s = b->subc, *p = b->pubc;
    b->subc = b->pubc = NULL;
    if (s) {
        s->data = NULL;
        redisAsyncFree(s);
    }
    if (p) {
        p->data = NULL;
        redisAsyncFree(p);
    }
    maybe_free(b);
}
