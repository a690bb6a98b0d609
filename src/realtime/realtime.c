/* The realtime hub: commit hand-off, fan-out to WebSocket and SSE clients,
 * resume from the event log, backpressure, and the event/broadcast routes.
 * See realtime.h for the flow. */
#include "realtime.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "bus/bus.h"

#define REPLAY_PAGE 500
#define MAX_HELD 4096         /* live events held per client during a replay */
#define AUTH_TIMEOUT_MS 5000  /* an unauthenticated socket gets this long */
#define SSE_KEEPALIVE_MS 15000
#define MAX_TOPICS 64
#define MAX_PENDING 8         /* messages that arrive while auth is looked up */
#define WS_TEXT_OPCODE 1      /* RFC 6455 text frame */

typedef enum { C_WS = 1, C_SSE = 2 } ckind;

typedef struct rt_client rt_client;
struct rt_client {
    rt_hub *h;
    rt_client *prev, *next;
    ckind kind;
    http_ws *ws;      /* C_WS, NULL once closed */
    http_req *sse;    /* C_SSE, NULL once ended */
    int closed;       /* the transport is gone: free when refs == 0 */
    int closing;      /* we are ending it: send nothing more */
    int close_code;   /* WebSocket close to send (see client_end) */
    char close_reason[64];
    int refs;         /* pool jobs referring to us */
    int authed, authing;
    auth_principal p;
    uint64_t deadline; /* loop ms by which auth must be done */
    uint64_t last_write;
    int proto_ehub;
    rt_filter f;
    json_t *topics;    /* as subscribed, echoed in the ack */
    int subscribed, replaying;
    int64_t pos;       /* last seq given or skipped */
    int64_t last_sent; /* last seq actually sent (the resume point we advertise) */
    store_event *held;
    int nheld, caph, held_overflow;
    int lagging;
    json_t *pending[MAX_PENDING];
    int npending;
};

struct rt_hub {
    app *a;
    uv_mutex_t mu;        /* guards q, nq, capq, closed */
    store_event *q;
    int nq, capq, closed;
    uv_async_t wake;
    uv_timer_t sweep;
    uv_timer_t closer;    /* sends pending WebSocket closes (see client_end) */
    uv_check_t flush;     /* uncorks the server after this iteration's events */
    int corked;
    int handles, stopped, freeing;
    bus *b;
    rt_client *clients;
    size_t nclients;
    int fanout, need_reap;
    uint64_t out_n;       /* events sent, not yet counted (count_out) */
    size_t soft, hard;    /* backlog bounds (bytes) */
    metric *m_msgs, *m_drops, *m_lagging, *m_replays, *m_resyncs;
};

/* ---- commit hand-off (any thread) ---- */

void realtime_on_commit(void *ud, const store_event *ev, int n) {
    rt_hub *h = ud;
    uv_mutex_lock(&h->mu);
    if (h->closed) {
        uv_mutex_unlock(&h->mu);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (h->nq == h->capq) {
            int cap = h->capq ? h->capq * 2 : 64;
            store_event *q = eh_realloc(h->q, (size_t)cap * sizeof *q);
            if (!q) break; /* dropped here; subscribers' gap fills read it back */
            h->q = q;
            h->capq = cap;
        }
        store_event c = ev[i];
        c.type = eh_strdup(ev[i].type);
        c.payload = eh_strdup(ev[i].payload);
        if (!c.type || !c.payload) {
            eh_free((char *)c.type);
            eh_free((char *)c.payload);
            break;
        }
        h->q[h->nq++] = c;
    }
    uv_mutex_unlock(&h->mu);
    uv_async_send(&h->wake);
}

static void on_wake(uv_async_t *w) {
    rt_hub *h = w->data;
    uv_mutex_lock(&h->mu);
    store_event *q = h->q;
    int n = h->nq;
    h->q = NULL;
    h->nq = h->capq = 0;
    uv_mutex_unlock(&h->mu);
    if (h->b && n) bus_publish(h->b, q, n);
    for (int i = 0; i < n; i++) {
        eh_free((char *)q[i].type);
        eh_free((char *)q[i].payload);
    }
    eh_free(q);
}

/* ---- clients ---- */

static void count_msg(rt_hub *h, const char *dir) {
    if (!h->m_msgs) return;
    const char *lv[] = {dir};
    metric_add(h->m_msgs, lv, 1);
}

static void held_clear(rt_client *c) {
    for (int i = 0; i < c->nheld; i++) {
        eh_free((char *)c->held[i].type);
        eh_free((char *)c->held[i].payload);
    }
    c->nheld = 0;
}

static void client_free(rt_client *c) {
    held_clear(c);
    eh_free(c->held);
    json_decref(c->topics);
    for (int i = 0; i < c->npending; i++) json_decref(c->pending[i]);
    eh_free(c);
}

static void client_unlink(rt_client *c) {
    rt_hub *h = c->h;
    if (c->prev) c->prev->next = c->next;
    else h->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    h->nclients--;
}

static void on_closer(uv_timer_t *t);

/* Frees a closed client once nothing refers to it, always later, from the
 * closer timer: the transport reports a close from deep inside a send (a
 * write that finds the peer gone), and the code that sent still holds c. */
static void client_release(rt_client *c) {
    rt_hub *h = c->h;
    if (!c->closed || c->refs) return;
    h->need_reap = 1;
    if (!h->stopped) uv_timer_start(&h->closer, on_closer, 0, 0);
}

static void reap(rt_hub *h) {
    if (!h->need_reap || h->fanout) return;
    h->need_reap = 0;
    rt_client *next;
    for (rt_client *c = h->clients; c; c = next) {
        next = c->next;
        if (c->closed && !c->refs) {
            client_unlink(c);
            client_free(c);
        }
    }
}

static rt_client *client_new(rt_hub *h, ckind kind) {
    rt_client *c = eh_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->h = h;
    c->kind = kind;
    c->deadline = uv_now(h->a->loop) + AUTH_TIMEOUT_MS;
    c->last_write = uv_now(h->a->loop);
    rt_filter_init(&c->f);
    return c;
}

static void client_link(rt_client *c) {
    rt_hub *h = c->h;
    c->next = h->clients;
    if (h->clients) h->clients->prev = c;
    h->clients = c;
    h->nclients++;
}

static void on_closer(uv_timer_t *t) {
    rt_hub *h = t->data;
    h->fanout++;
    for (rt_client *c = h->clients; c; c = c->next)
        if (c->close_code && c->ws && !c->closed) {
            int code = c->close_code;
            c->close_code = 0;
            http_ws_close(c->ws, code, c->close_reason); /* on_close follows and releases */
        }
    h->fanout--;
    reap(h);
}

/* Ends a client's feed from our side; nothing more is sent to it. A
 * WebSocket is closed from a zero-delay timer, not here: called while the
 * server is processing the client's frames (an error reply to its
 * message), the close frame would otherwise overtake the reply, because
 * control frames jump wslay's queue. */
static void client_end(rt_client *c, int code, const char *reason) {
    if (c->closed || c->closing) return;
    c->closing = 1;
    if (c->kind == C_WS && c->ws) {
        c->close_code = code ? code : 1000;
        snprintf(c->close_reason, sizeof c->close_reason, "%s", reason ? reason : "");
        if (!c->h->stopped) uv_timer_start(&c->h->closer, on_closer, 0, 0);
        else http_ws_close(c->ws, c->close_code, c->close_reason); /* the timer is gone */
    } else if (c->kind == C_SSE && c->sse) {
        http_req *q = c->sse;
        c->sse = NULL;
        c->closed = 1;
        http_stream_end(q);
        client_release(c);
    }
}

/* ---- sending ---- */

static int alive(const rt_client *c) {
    return !c->closed && !c->closing && (c->kind == C_WS ? c->ws != NULL : c->sse != NULL);
}

/* SSE framing: one "data:" line per line of the message. */
static int sse_write(rt_client *c, const char *event, int64_t id, const char *msg, size_t len) {
    buf b;
    buf_init(&b, len + 256 + len / 8);
    if (id > 0) buf_printf(&b, "id: %" PRId64 "\n", id);
    if (event) buf_printf(&b, "event: %s\n", event);
    const char *p = msg, *end = msg + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        buf_puts(&b, "data: ");
        buf_append(&b, p, n);
        buf_putc(&b, '\n');
        p += n + (nl ? 1 : 0);
    }
    int rc = buf_putc(&b, '\n');
    if (rc == BUF_OK) rc = http_stream_write(c->sse, b.p, b.len);
    buf_free(&b);
    c->last_write = uv_now(c->h->a->loop);
    return rc;
}

/* A control message ({"type":...}); event names it for SSE. */
static void send_ctl(rt_client *c, const char *event, const char *msg, size_t len) {
    if (!alive(c)) return;
    if (c->kind == C_WS) {
        if (http_ws_send(c->ws, WS_TEXT_OPCODE, msg, len) == 0) count_msg(c->h, "out");
        return;
    }
    if (sse_write(c, event, 0, msg, len)) {
        if (c->h->m_drops) {
            const char *lv[] = {"sse_backlog"};
            metric_add(c->h->m_drops, lv, 1);
        }
        client_end(c, 0, NULL);
    } else {
        count_msg(c->h, "out");
    }
}

static void send_error(rt_client *c, const char *code, const char *message) {
    buf b;
    buf_init(&b, 1024);
    buf_puts(&b, "{\"type\":\"error\",\"code\":\"");
    buf_json_str(&b, code, strlen(code));
    buf_puts(&b, "\",\"message\":\"");
    buf_json_str(&b, message, strlen(message));
    buf_puts(&b, "\"}");
    send_ctl(c, "error", b.p, b.len);
    buf_free(&b);
}

static void send_json(rt_client *c, json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s) return;
    const char *t = strstr(s, "\"type\":\"");
    char ev[48] = "message";
    if (t) {
        t += 8;
        size_t n = strcspn(t, "\"");
        if (n < sizeof ev) {
            memcpy(ev, t, n);
            ev[n] = '\0';
        }
    }
    send_ctl(c, ev, s, strlen(s));
    free(s);
}

/* One event's message, built once and shared by every client of the
 * tenant that gets it (they share the slug): the JSON text, and for a
 * fan-out the WebSocket frame, encoded once and written to every socket by
 * reference (http_ws_send_frame). */
typedef struct rt_out {
    char *msg;
    size_t len;
    char type[130];
    int shared;            /* a fan-out: worth a shared frame */
    http_ws_frame *frame;  /* built for the first WebSocket client */
} rt_out;

static void out_free(rt_out *o) {
    eh_free(o->msg);
    http_ws_frame_unref(o->frame);
}

/* An event, with backpressure: past the soft bound the client is told it
 * is lagging (once), past the hard bound it is closed with 1013 and the
 * seq to resume from, before the transport's own limit cuts it off with
 * no resume point. Other clients are not affected. Messages out are
 * counted in h->out_n (see count_out). */
static void send_event(rt_client *c, const store_event *ev, rt_out *o) {
    rt_hub *h = c->h;
    if (!alive(c)) return;
    if (c->kind == C_SSE) {
        if (sse_write(c, o->type, ev->seq, o->msg, o->len)) {
            if (h->m_drops) {
                const char *lv[] = {"sse_backlog"};
                metric_add(h->m_drops, lv, 1);
            }
            client_end(c, 0, NULL);
            return;
        }
        c->last_sent = ev->seq;
        h->out_n++;
        return;
    }
    size_t bl = http_ws_backlog(c->ws);
    if (bl + o->len > h->hard) {
        char reason[64];
        snprintf(reason, sizeof reason, "lagging; resume_from=%" PRId64, c->last_sent);
        if (h->m_drops) {
            const char *lv[] = {"ws_backlog"};
            metric_add(h->m_drops, lv, 1);
        }
        client_end(c, 1013, reason);
        return;
    }
    if (o->shared && !o->frame) o->frame = http_ws_frame_new(WS_TEXT_OPCODE, o->msg, o->len);
    int rc = o->frame ? http_ws_send_frame(c->ws, o->frame) : http_ws_send(c->ws, WS_TEXT_OPCODE, o->msg, o->len);
    if (rc) {
        c->closing = 1;
        return;
    }
    h->out_n++;
    c->last_sent = ev->seq;
    /* The backlog grew by at most the frame; ask again only near a bound. */
    if (bl + o->len + 16 > h->soft / 2 || c->lagging) bl = http_ws_backlog(c->ws);
    else bl = 0;
    if (!c->lagging && bl > h->soft) {
        c->lagging = 1;
        if (h->m_lagging) metric_add(h->m_lagging, NULL, 1);
        char m[96];
        int n = snprintf(m, sizeof m, "{\"type\":\"lagging\",\"resume_from\":%" PRId64 "}", c->last_sent);
        if (http_ws_send(c->ws, WS_TEXT_OPCODE, m, (size_t)n) == 0) count_msg(h, "out");
    } else if (c->lagging && bl < h->soft / 2) {
        c->lagging = 0;
    }
}

/* Adds the events sent since the last call to the messages counter: once
 * per fan-out, not once per client (the counter takes a lock). */
static void count_out(rt_hub *h) {
    if (!h->out_n) return;
    if (h->m_msgs) {
        const char *lv[] = {"out"};
        metric_add(h->m_msgs, lv, (double)h->out_n);
    }
    h->out_n = 0;
}

/* The message for one event: {"seq","type","tenant","time","data"}; a
 * broadcast shows its own type and its topic. Returns a new string. */
static char *build_event(const store_event *ev, const char *slug, json_t *payload, const rt_event_info *info,
                         size_t *len, char *type_out, size_t type_cap) {
    buf b;
    buf_init(&b, strlen(ev->payload) + 512);
    char iso[40];
    clock_rfc3339(ev->time_ms, iso, sizeof iso);
    const char *type = ev->type;
    char *data = NULL;
    if (info->btopic[0]) {
        const char *bt = json_string_value(json_object_get(payload, "type"));
        if (bt) type = bt;
        json_t *d = json_object_get(payload, "data");
        data = d ? json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    }
    snprintf(type_out, type_cap, "%s", type);
    buf_printf(&b, "{\"seq\":%" PRId64 ",\"type\":\"", ev->seq);
    buf_json_str(&b, type, strlen(type));
    buf_puts(&b, "\",\"tenant\":\"");
    buf_json_str(&b, slug, strlen(slug));
    buf_printf(&b, "\",\"time\":\"%s\",", iso);
    if (info->btopic[0]) {
        buf_puts(&b, "\"topic\":\"");
        buf_json_str(&b, info->btopic, strlen(info->btopic));
        buf_puts(&b, "\",");
    }
    buf_puts(&b, "\"data\":");
    buf_puts(&b, info->btopic[0] ? (data ? data : "{}") : ev->payload);
    int rc = buf_putc(&b, '}');
    free(data);
    if (rc != BUF_OK) {
        buf_free(&b);
        return NULL;
    }
    return buf_detach(&b, len);
}

/* Gives one event to one client: advances its position, applies its
 * filter, sends. o caches the message across the clients of a tenant. */
static void client_event(rt_client *c, const store_event *ev, json_t *payload, const rt_event_info *info, rt_out *o) {
    if (ev->seq <= c->pos) return;
    c->pos = ev->seq;
    if (!rt_filter_match(&c->f, info)) return;
    if (!o->msg && !(o->msg = build_event(ev, c->p.tenant_slug, payload, info, &o->len, o->type, sizeof o->type)))
        return;
    send_event(c, ev, o);
}

/* One event to one client, outside a fan-out (replay, held events). */
static void client_event1(rt_client *c, const store_event *ev) {
    json_t *payload = json_loads(ev->payload, 0, NULL);
    rt_event_info info;
    rt_event_classify(ev->type, payload, &info);
    rt_out o = {0};
    client_event(c, ev, payload, &info, &o);
    out_free(&o);
    json_decref(payload);
    count_out(c->h);
}

static void client_hold(rt_client *c, const store_event *ev) {
    if (c->held_overflow || ev->seq <= c->pos) return;
    if (c->nheld == MAX_HELD) {
        /* The log has them: read again from pos once this replay ends. */
        held_clear(c);
        c->held_overflow = 1;
        return;
    }
    if (c->nheld == c->caph) {
        int cap = c->caph ? c->caph * 2 : 16;
        store_event *n = eh_realloc(c->held, (size_t)cap * sizeof *n);
        if (!n) {
            held_clear(c);
            c->held_overflow = 1;
            return;
        }
        c->held = n;
        c->caph = cap;
    }
    store_event e = *ev;
    e.type = eh_strdup(ev->type);
    e.payload = eh_strdup(ev->payload);
    if (!e.type || !e.payload) {
        eh_free((char *)e.type);
        eh_free((char *)e.payload);
        held_clear(c);
        c->held_overflow = 1;
        return;
    }
    c->held[c->nheld++] = e;
}

static void uncork(rt_hub *h) {
    if (!h->corked) return;
    h->corked = 0;
    uv_check_stop(&h->flush);
    http_server_uncork(h->a->srv);
}

static void on_flush(uv_check_t *t) { uncork(t->data); }

/* The bus's subscriber: every event of every tenant, in order, once.
 * Events delivered in one loop iteration (a group commit, a burst from
 * Redis) go out together: the server is corked at the first and uncorked
 * after the poll phase, so each subscriber costs one write per burst. */
static void on_bus_event(void *ud, const store_event *ev) {
    rt_hub *h = ud;
    if (!h->corked && !h->stopped) {
        h->corked = 1;
        http_server_cork(h->a->srv);
        uv_check_start(&h->flush, on_flush);
    }
    json_t *payload = NULL;
    rt_event_info info;
    int classified = 0;
    rt_out o = {.shared = 1};
    h->fanout++;
    for (rt_client *c = h->clients; c; c = c->next) {
        if (!c->subscribed || c->p.tenant != ev->tenant || !alive(c)) continue;
        if (c->replaying) {
            client_hold(c, ev);
            continue;
        }
        if (!classified) {
            payload = json_loads(ev->payload, 0, NULL);
            rt_event_classify(ev->type, payload, &info);
            classified = 1;
        }
        client_event(c, ev, payload, &info, &o);
    }
    h->fanout--;
    out_free(&o);
    json_decref(payload);
    count_out(h);
    reap(h);
}

/* ---- subscribe: position, replay, switch to live ---- */

typedef struct replay_job {
    uv_work_t w;
    rt_client *c;
    int64_t tenant;
    int first;         /* the subscription's first read: also the last seq */
    int64_t after;     /* resume point, -1 for none */
    size_t window;
    int64_t last;
    int resync, fetch;
    store_event_list res;
    int rc;
    store_err err;
} replay_job;

static int replay_tx(store_tx *tx, void *arg, store_err *err) {
    replay_job *j = arg;
    int rc;
    if (j->first) {
        if ((rc = store_events_last_seq(tx, &j->last, err))) return rc;
        if (j->after >= 0) {
            if (j->after > j->last || (uint64_t)(j->last - j->after) > (uint64_t)j->window) j->resync = 1;
            else j->fetch = 1;
        }
    } else {
        j->fetch = 1;
    }
    if (!j->fetch) return STORE_OK;
    return store_events_after(tx, j->after, REPLAY_PAGE, &j->res, err);
}

static void replay_work(uv_work_t *w) {
    replay_job *j = w->data;
    j->rc = store_read(j->c->h->a->st, j->tenant, replay_tx, j, &j->err);
}

static void replay_done(uv_work_t *w, int status);

static int replay_start(rt_client *c, int first, int64_t after) {
    replay_job *j = eh_calloc(1, sizeof *j);
    if (!j) return -1;
    j->c = c;
    j->tenant = c->p.tenant;
    j->first = first;
    j->after = after;
    j->window = c->h->a->cfg.replay_window;
    j->w.data = j;
    if (uv_queue_work(c->h->a->loop, &j->w, replay_work, replay_done)) {
        eh_free(j);
        return -1;
    }
    c->refs++;
    c->replaying = 1;
    return 0;
}

static void go_live(rt_client *c) {
    if (c->held_overflow) {
        c->held_overflow = 0;
        held_clear(c);
        if (replay_start(c, 0, c->pos) == 0) return;
        send_error(c, "unavailable", "cannot read the event log");
        client_end(c, 1011, "cannot read the event log");
        return;
    }
    c->replaying = 0;
    /* Held live events are in order; those the replay already gave are
     * dropped by the position check. */
    for (int i = 0; i < c->nheld && alive(c); i++) client_event1(c, &c->held[i]);
    held_clear(c);
}

static void replay_done(uv_work_t *w, int status) {
    replay_job *j = w->data;
    rt_client *c = j->c;
    rt_hub *h = c->h;
    c->refs--;
    if (!alive(c)) goto out;
    if (j->rc != STORE_OK) {
        log_msg(h->a->log, LOG_ERROR, "realtime: cannot read the event log", j->err.msg);
        c->replaying = 0;
        send_error(c, "unavailable", "cannot read the event log");
        client_end(c, 1011, "cannot read the event log");
        goto out;
    }
    if (j->first) {
        if (h->b) bus_watch(h->b, c->p.tenant, j->last);
        json_t *ack = json_pack("{s:s, s:O, s:I}", "type", "subscribed", "topics", c->topics ? c->topics : json_null(),
                                "last_seq", (json_int_t)j->last);
        if (ack) send_json(c, ack);
        if (j->resync) {
            if (h->m_resyncs) metric_add(h->m_resyncs, NULL, 1);
            json_t *r = json_pack("{s:s, s:I, s:I}", "type", "resync_required", "last_seq", (json_int_t)j->last,
                                  "resume_from", (json_int_t)j->after);
            if (r) send_json(c, r);
            c->pos = j->last;
        } else if (j->after < 0) {
            c->pos = j->last;
        } else {
            c->pos = j->after;
            if (h->m_replays) metric_add(h->m_replays, NULL, 1);
        }
        c->last_sent = c->pos;
    }
    for (int i = 0; i < j->res.n && alive(c); i++) client_event1(c, &j->res.ev[i]);
    if (!alive(c)) goto out;
    if (j->res.n == REPLAY_PAGE) {
        if (replay_start(c, 0, c->pos)) {
            send_error(c, "unavailable", "cannot read the event log");
            client_end(c, 1011, "cannot read the event log");
        }
        goto out;
    }
    go_live(c);
out:
    store_event_list_free(&j->res);
    eh_free(j);
    client_release(c);
}

/* ---- subscriptions ---- */

/* Fills c->f from topics (array of strings), a filter object and the
 * principal. Returns NULL, or the error code with a message in msg. */
static const char *set_filter(rt_client *c, json_t *topics, json_t *filter, char *msg, size_t msglen) {
    rt_filter f;
    rt_filter_init(&f);
    const auth_principal *p = &c->p;
    if (!json_is_array(topics) || json_array_size(topics) == 0 || json_array_size(topics) > MAX_TOPICS) {
        snprintf(msg, msglen, "topics must be an array of 1-%d topic names", MAX_TOPICS);
        return "bad_subscribe";
    }
    size_t i;
    json_t *t;
    json_array_foreach(topics, i, t) {
        const char *s = json_string_value(t);
        if (!s || rt_filter_add_topic(&f, s, p->agent_id)) {
            snprintf(msg, msglen, "unknown topic \"%.64s\" (leads, lead:ID, scores, coaching:AGENT, nurture, "
                                  "system, activity, all)", s ? s : "?");
            return "unknown_topic";
        }
    }
    if (p->role == ROLE_AGENT) {
        f.only_agent = p->agent_id > 0 ? p->agent_id : -1;
        for (int k = 0; k < f.ncoaching; k++)
            if (f.coaching[k] != p->agent_id) {
                snprintf(msg, msglen, "agents may only follow their own coaching feed");
                return "forbidden";
            }
    }
    if (filter && !json_is_null(filter)) {
        if (!json_is_object(filter)) {
            snprintf(msg, msglen, "filter must be an object");
            return "bad_filter";
        }
        const char *k;
        json_t *v;
        json_object_foreach(filter, k, v) {
            if (strcmp(k, "min_score") == 0) {
                if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) {
                    snprintf(msg, msglen, "filter.min_score must be a number from 0 to 1");
                    return "bad_filter";
                }
                f.min_score = json_number_value(v);
            } else if (strcmp(k, "agent") == 0) {
                if (json_is_string(v) && strcmp(json_string_value(v), "me") == 0 && p->agent_id > 0) {
                    f.agent = p->agent_id;
                } else if (json_is_integer(v) && json_integer_value(v) > 0) {
                    f.agent = (int64_t)json_integer_value(v);
                } else {
                    snprintf(msg, msglen, "filter.agent must be an agent id, or \"me\" for a key bound to an agent");
                    return "bad_filter";
                }
            } else {
                snprintf(msg, msglen, "unknown filter \"%.64s\" (min_score, agent)", k);
                return "bad_filter";
            }
        }
    }
    c->f = f;
    json_decref(c->topics);
    c->topics = json_incref(topics);
    return NULL;
}

static void subscribe(rt_client *c, json_t *topics, json_t *filter, int64_t resume_from) {
    char msg[256];
    if (c->replaying) {
        send_error(c, "busy", "a subscription is still being set up");
        return;
    }
    const char *code = set_filter(c, topics, filter, msg, sizeof msg);
    if (code) {
        send_error(c, code, msg);
        return;
    }
    c->subscribed = 1;
    held_clear(c);
    c->held_overflow = 0;
    if (resume_from < 0) resume_from = -1;
    /* A client that subscribes again keeps its position unless it asks to
     * resume from elsewhere. */
    if (replay_start(c, 1, resume_from)) {
        send_error(c, "unavailable", "cannot schedule work");
        client_end(c, 1011, "overloaded");
    }
}

/* ---- WebSocket ---- */

static void ws_message(http_ws *ws, int opcode, const char *data, size_t len, void *ud);

static void ws_closed(http_ws *ws, int code, void *ud) {
    rt_client *c = ud;
    c->ws = NULL;
    c->closed = 1;
    client_release(c);
}

static const http_ws_handler ws_handler = {ws_message, ws_closed};

static void authenticated(rt_client *c, const auth_principal *p) {
    c->authed = 1;
    c->authing = 0;
    c->p = *p;
    json_t *m = json_pack("{s:s, s:s, s:s}", "type", "authenticated", "tenant", p->tenant_slug, "role",
                          auth_role_name(p->role));
    if (m) send_json(c, m);
}

typedef struct auth_job {
    uv_work_t w;
    rt_client *c;
    char hash[AUTH_HASH_HEX];
    auth_principal p;
    int rc;
    store_err err;
} auth_job;

static void auth_work(uv_work_t *w) {
    auth_job *j = w->data;
    j->rc = app_key_lookup(j->c->h->a, j->hash, &j->p, &j->err);
}

static void handle(rt_client *c, json_t *m);

static void auth_done(uv_work_t *w, int status) {
    auth_job *j = w->data;
    rt_client *c = j->c;
    c->refs--;
    if (alive(c)) {
        if (j->rc == STORE_OK) {
            app_key_remember(c->h->a, j->hash, &j->p);
            authenticated(c, &j->p);
            /* Messages sent right behind the auth message. */
            for (int i = 0; i < c->npending; i++) {
                if (alive(c)) handle(c, c->pending[i]);
                json_decref(c->pending[i]);
            }
            c->npending = 0;
        } else if (j->rc == STORE_NOTFOUND) {
            send_error(c, "unauthenticated", "unknown or revoked API key");
            client_end(c, 1008, "unauthenticated");
        } else {
            send_error(c, "unavailable", "storage unavailable");
            client_end(c, 1011, "storage unavailable");
        }
    }
    eh_free(j);
    client_release(c);
}

static void auth_message(rt_client *c, const char *token) {
    char hash[AUTH_HASH_HEX];
    auth_principal p;
    int r = token ? app_key_cached(c->h->a, token, hash, &p) : -1;
    if (r < 0) {
        send_error(c, "unauthenticated", "the first message must be {\"type\":\"auth\",\"token\":\"ehk_...\"}");
        client_end(c, 1008, "unauthenticated");
        return;
    }
    if (r == 1) {
        authenticated(c, &p);
        return;
    }
    auth_job *j = eh_calloc(1, sizeof *j);
    if (!j) {
        client_end(c, 1011, "out of memory");
        return;
    }
    j->c = c;
    memcpy(j->hash, hash, sizeof hash);
    j->w.data = j;
    if (uv_queue_work(c->h->a->loop, &j->w, auth_work, auth_done)) {
        eh_free(j);
        client_end(c, 1011, "overloaded");
        return;
    }
    c->refs++;
    c->authing = 1;
}

static void handle(rt_client *c, json_t *m) {
    const char *type = json_string_value(json_object_get(m, "type"));
    if (!type) {
        send_error(c, "bad_message", "messages are JSON objects with a \"type\"");
        return;
    }
    if (!c->authed) {
        if (strcmp(type, "auth") == 0) auth_message(c, json_string_value(json_object_get(m, "token")));
        else {
            send_error(c, "unauthenticated", "the first message must be {\"type\":\"auth\",\"token\":\"ehk_...\"}");
            client_end(c, 1008, "unauthenticated");
        }
        return;
    }
    if (strcmp(type, "subscribe") == 0) {
        json_t *rf = json_object_get(m, "resume_from");
        if (rf && !json_is_null(rf) && (!json_is_integer(rf) || json_integer_value(rf) < 0)) {
            send_error(c, "bad_subscribe", "resume_from must be a non-negative integer (a seq)");
            return;
        }
        subscribe(c, json_object_get(m, "topics"), json_object_get(m, "filter"),
                  json_is_integer(rf) ? (int64_t)json_integer_value(rf) : -1);
    } else if (strcmp(type, "ping") == 0) {
        static const char pong[] = "{\"type\":\"pong\"}";
        send_ctl(c, "pong", pong, sizeof pong - 1);
    } else if (strcmp(type, "auth") == 0) {
        send_error(c, "already_authenticated", "this connection is already authenticated");
    } else {
        send_error(c, "unknown_type", "unknown message type (auth, subscribe, ping)");
    }
}

static void ws_message(http_ws *ws, int opcode, const char *data, size_t len, void *ud) {
    rt_client *c = ud;
    count_msg(c->h, "in");
    if (!alive(c)) return;
    json_error_t e;
    json_t *m = opcode == WS_TEXT_OPCODE ? json_loadb(data, len, 0, &e) : NULL;
    if (!json_is_object(m)) {
        json_decref(m);
        send_error(c, "bad_message", "messages are JSON objects sent as text frames");
        if (!c->authed && !c->authing) client_end(c, 1008, "unauthenticated");
        return;
    }
    if (c->authing) {
        if (c->npending == MAX_PENDING) {
            json_decref(m);
            send_error(c, "busy", "too many messages before authentication finished");
            return;
        }
        c->pending[c->npending++] = m;
        return;
    }
    handle(c, m);
    json_decref(m);
}

typedef struct accept_job {
    rt_client *c;
    char hash[AUTH_HASH_HEX];
    auth_principal p;
    int rc;
    store_err err;
} accept_job;

static void accept_ws(http_req *q, rt_client *c) {
    http_ws *ws = http_ws_accept(q, &ws_handler, c, c->proto_ehub ? "ehub" : NULL);
    if (!ws) {
        client_free(c);
        return;
    }
    c->ws = ws;
    client_link(c);
    if (c->authed) authenticated(c, &c->p);
}

static void accept_work(void *arg) {
    accept_job *j = arg;
    j->rc = app_key_lookup(j->c->h->a, j->hash, &j->p, &j->err);
}

static void accept_done(http_req *q, void *arg) {
    accept_job *j = arg;
    rt_client *c = j->c;
    if (j->rc == STORE_OK) {
        app_key_remember(c->h->a, j->hash, &j->p);
        c->authed = 1;
        c->p = j->p;
        accept_ws(q, c);
    } else {
        client_free(c);
        if (j->rc == STORE_NOTFOUND) {
            http_res_header(q, "WWW-Authenticate", "Bearer realm=\"ehub\"");
            http_reply_error(q, 401, "unauthenticated", "unknown or revoked API key");
        } else {
            http_reply_error(q, 503, "unavailable", "storage unavailable");
        }
    }
    eh_free(j);
}

/* GET /ws/realtime, GET /v1/stream. The key may come with the handshake
 * (a Sec-WebSocket-Protocol entry, ?token=, or Authorization) and is then
 * checked before upgrading (401 if bad); otherwise the first message must
 * carry it within AUTH_TIMEOUT_MS. */
static void h_ws(http_req *q, void *ud) {
    rt_hub *h = ud;
    if (h->stopped) {
        http_reply_error(q, 503, "unavailable", "shutting down");
        return;
    }
    char key[AUTH_KEY_LEN + 8] = "";
    int ehub = 0;
    const char *proto = http_req_header(q, "Sec-WebSocket-Protocol");
    for (const char *p = proto; p && *p;) {
        while (*p == ' ' || *p == ',') p++;
        size_t n = strcspn(p, ", ");
        if (n == 4 && strncmp(p, "ehub", 4) == 0) ehub = 1;
        else if (n >= 4 && strncmp(p, "ehk_", 4) == 0 && n < sizeof key) {
            memcpy(key, p, n);
            key[n] = '\0';
        }
        p += n;
    }
    const char *k = key[0] ? key : http_req_query(q, "token");
    if (!k) k = app_req_key(q);
    rt_client *c = client_new(h, C_WS);
    if (!c) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    c->proto_ehub = ehub;
    if (!k) {
        /* Credentials may follow in the first message, but only on a
         * WebSocket: anything else without them is simply unauthenticated. */
        const char *up = http_req_header(q, "Upgrade");
        if (!up || strcasecmp(up, "websocket") != 0) {
            client_free(c);
            http_res_header(q, "WWW-Authenticate", "Bearer realm=\"ehub\"");
            http_reply_error(q, 401, "unauthenticated", "missing credentials: send an API key");
            return;
        }
        accept_ws(q, c);
        return;
    }
    char hash[AUTH_HASH_HEX];
    auth_principal p;
    int r = app_key_cached(h->a, k, hash, &p);
    if (r < 0) {
        client_free(c);
        http_res_header(q, "WWW-Authenticate", "Bearer realm=\"ehub\"");
        http_reply_error(q, 401, "unauthenticated", "malformed API key");
        return;
    }
    if (r == 1) {
        c->authed = 1;
        c->p = p;
        accept_ws(q, c);
        return;
    }
    accept_job *j = eh_calloc(1, sizeof *j);
    if (!j) {
        client_free(c);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    j->c = c;
    memcpy(j->hash, hash, sizeof hash);
    if (http_req_work(q, accept_work, accept_done, j)) {
        eh_free(j);
        client_free(c);
        http_reply_error(q, 503, "overloaded", "cannot schedule work");
    }
}

/* ---- Server-Sent Events: GET /v1/events/stream ---- */

static void sse_stop(http_req *q, void *ud) {
    rt_client *c = ud;
    c->sse = NULL;
    c->closed = 1;
    http_stream_end(q);
    client_release(c);
}

static int parse_seq(const char *s, int64_t *out) {
    if (!s || !*s || strlen(s) > 18) return -1;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

static void h_sse(http_req *q, app *a, const auth_principal *p, void *ud) {
    rt_hub *h = a->rt;
    if (h->stopped) {
        http_reply_error(q, 503, "unavailable", "shutting down");
        return;
    }
    rt_client *c = client_new(h, C_SSE);
    if (!c) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    c->authed = 1;
    c->p = *p;
    /* ?topics=leads,scores (default all), ?min_score=, ?agent= */
    json_t *topics = json_array();
    const char *tp = http_req_query(q, "topics");
    if (!tp || !*tp) tp = "all";
    for (const char *s = tp; *s;) {
        size_t n = strcspn(s, ",");
        if (n) json_array_append_new(topics, json_stringn(s, n));
        s += n;
        if (*s == ',') s++;
    }
    json_t *filter = json_object();
    const char *ms = http_req_query(q, "min_score"), *ag = http_req_query(q, "agent");
    char *end = NULL;
    if (ms) {
        double d = strtod(ms, &end);
        json_object_set_new(filter, "min_score", end && !*end && end != ms ? json_real(d) : json_string(ms));
    }
    if (ag) {
        int64_t id;
        json_object_set_new(filter, "agent", parse_seq(ag, &id) == 0 ? json_integer(id) : json_string(ag));
    }
    char msg[256];
    const char *code = set_filter(c, topics, filter, msg, sizeof msg);
    json_decref(topics);
    json_decref(filter);
    if (code) {
        client_free(c);
        http_reply_error(q, 400, code, msg);
        return;
    }
    int64_t resume = -1;
    const char *le = http_req_header(q, "Last-Event-ID");
    if (!le) le = http_req_query(q, "last_event_id");
    if (le && parse_seq(le, &resume)) {
        client_free(c);
        http_reply_error(q, 400, "bad_request", "Last-Event-ID must be an event seq");
        return;
    }
    http_res_header(q, "Cache-Control", "no-cache");
    http_res_header(q, "X-Accel-Buffering", "no");
    if (http_stream_begin(q, 200, "text/event-stream; charset=utf-8", h->hard, sse_stop, c)) {
        client_free(c);
        http_reply_error(q, 503, "unavailable", "client gone");
        return;
    }
    c->sse = q;
    client_link(c);
    static const char hello[] = "retry: 2000\n\n";
    http_stream_write(q, hello, sizeof hello - 1);
    c->subscribed = 1;
    if (replay_start(c, 1, resume)) client_end(c, 0, NULL);
}

/* ---- GET /v1/events: the log as pages ---- */

static int events_tx(store_tx *tx, api_job *j, store_err *err) {
    store_event_list l = {0};
    int64_t last;
    int rc = store_events_last_seq(tx, &last, err);
    if (!rc) rc = store_events_after(tx, j->id, (int)j->id2, &l, err);
    if (rc) return rc;
    json_t *items = json_array();
    for (int i = 0; i < l.n; i++) {
        char iso[40];
        clock_rfc3339(l.ev[i].time_ms, iso, sizeof iso);
        json_t *data = json_loads(l.ev[i].payload, JSON_DECODE_ANY, NULL);
        json_array_append_new(items, json_pack("{s:I, s:s, s:s, s:s, s:o}", "seq", (json_int_t)l.ev[i].seq, "type",
                                               l.ev[i].type, "tenant", j->p.tenant_slug, "time", iso, "data",
                                               data ? data : json_null()));
    }
    int more = l.n == (int)j->id2 && l.n && l.ev[l.n - 1].seq < last;
    json_t *next = more ? json_integer(l.ev[l.n - 1].seq) : json_null();
    j->out = json_pack("{s:o, s:o, s:I}", "items", items, "next_after", next, "last_seq", (json_int_t)last);
    store_event_list_free(&l);
    return j->out ? STORE_OK : STORE_NOMEM;
}

static void h_events(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t after = 0, limit = 100;
    const char *s = http_req_query(q, "after"), *l = http_req_query(q, "limit");
    if (s && parse_seq(s, &after)) {
        http_reply_error(q, 400, "bad_request", "after must be a seq (non-negative integer)");
        return;
    }
    if (l && (parse_seq(l, &limit) || limit < 1 || limit > 1000)) {
        http_reply_error(q, 400, "bad_request", "limit must be 1-1000");
        return;
    }
    api_job *j = api_job_new(a, p);
    if (!j) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    j->fn = events_tx;
    j->id = after;
    j->id2 = limit;
    api_job_run(q, j);
}

/* ---- POST /v1/broadcast ---- */

static int broadcast_tx(store_tx *tx, api_job *j, store_err *err) {
    char *s = json_dumps(j->in, JSON_COMPACT);
    if (!s) return STORE_NOMEM;
    int64_t seq;
    int rc = store_event_append(tx, "broadcast", s, &seq, err);
    free(s);
    if (rc) return rc;
    j->status = 202;
    j->out = json_pack("{s:I, s:O, s:O}", "seq", (json_int_t)seq, "topic", json_object_get(j->in, "topic"), "type",
                       json_object_get(j->in, "type"));
    return j->out ? STORE_OK : STORE_NOMEM;
}

static int valid_type(const char *t) {
    size_t n = strlen(t);
    if (n == 0 || n > 64) return 0;
    for (const char *p = t; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

static void h_broadcast(http_req *q, app *a, const auth_principal *p, void *ud) {
    json_t *in = http_req_json(q);
    if (!in) return;
    const char *bad = NULL;
    json_t *topic = json_object_get(in, "topic"), *type = json_object_get(in, "type"), *data = json_object_get(in, "data");
    if (!json_is_object(in)) bad = "the body must be an object {topic, type, data}";
    else if (!json_is_string(topic) || !rt_topic_valid(json_string_value(topic)))
        bad = "topic must be one of leads, lead:ID, scores, coaching:AGENT, nurture, system, activity";
    else if (!json_is_string(type) || !valid_type(json_string_value(type)))
        bad = "type must be 1-64 of a-z 0-9 . _ -";
    else if (data && !json_is_object(data)) bad = "data must be an object";
    else {
        const char *k;
        json_t *v;
        json_object_foreach(in, k, v) if (strcmp(k, "topic") && strcmp(k, "type") && strcmp(k, "data")) {
            bad = "unknown field (topic, type, data)";
            break;
        }
    }
    if (bad) {
        json_decref(in);
        http_reply_error(q, 422, "invalid", bad);
        return;
    }
    if (!data) json_object_set_new(in, "data", json_object());
    api_job *j = api_job_new(a, p);
    if (!j) {
        json_decref(in);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    j->write = 1;
    j->in = in;
    j->fn = broadcast_tx;
    api_job_run(q, j);
}

/* ---- the hub ---- */

static void on_sweep(uv_timer_t *t) {
    rt_hub *h = t->data;
    uint64_t now = uv_now(h->a->loop);
    h->fanout++;
    for (rt_client *c = h->clients; c; c = c->next) {
        if (!alive(c)) continue;
        if (!c->authed && !c->authing && now >= c->deadline) {
            send_error(c, "unauthenticated", "no auth message within 5 s");
            client_end(c, 1008, "authentication timeout");
        } else if (c->kind == C_SSE && now - c->last_write >= SSE_KEEPALIVE_MS) {
            /* Also how a vanished SSE client is noticed: the write fails. */
            static const char ka[] = ": keepalive\n\n";
            c->last_write = now;
            if (http_stream_write(c->sse, ka, sizeof ka - 1)) client_end(c, 0, NULL);
        }
    }
    h->fanout--;
    reap(h);
}

static void on_handle_closed(uv_handle_t *hd) {
    rt_hub *h = hd->data;
    if (--h->handles == 0 && h->freeing) {
        uv_mutex_destroy(&h->mu);
        eh_free(h);
    }
}

rt_hub *realtime_new(app *a) {
    rt_hub *h = eh_calloc(1, sizeof *h);
    if (!h) return NULL;
    h->a = a;
    if (uv_mutex_init(&h->mu)) {
        eh_free(h);
        return NULL;
    }
    uv_async_init(a->loop, &h->wake, on_wake);
    uv_timer_init(a->loop, &h->sweep);
    uv_timer_init(a->loop, &h->closer);
    uv_check_init(a->loop, &h->flush);
    h->wake.data = h->sweep.data = h->closer.data = h->flush.data = h;
    h->handles = 4;
    return h;
}

size_t realtime_clients(const app *a) { return a->rt ? a->rt->nclients : 0; }
const char *realtime_bus_kind(const app *a) { return a->rt && a->rt->b ? bus_kind(a->rt->b) : "none"; }
int realtime_bus_connected(const app *a) { return a->rt && a->rt->b && bus_connected(a->rt->b); }

static double g_clients(void *ud) { return (double)((rt_hub *)ud)->nclients; }

static const http_route_doc d_ws = {"Realtime feed over WebSocket: auth, subscribe to topics, resume from a seq", "realtime",
                                    "messages: {type:auth,token}, {type:subscribe,topics,filter,resume_from}, {type:ping}",
                                    "101 Switching Protocols; then {seq,type,tenant,time,data} per event"};
static const http_route_doc d_sse = {"Realtime feed as Server-Sent Events (?topics=, ?min_score=, ?agent=; Last-Event-ID resumes)",
                                     "realtime", NULL, "text/event-stream: id: seq, event: type, data: {seq,type,tenant,time,data}"};
static const http_route_doc d_events = {"The tenant's event log, oldest first (?after=SEQ&limit=1-1000)", "realtime", NULL,
                                        "{items:[{seq,type,tenant,time,data}], next_after, last_seq}"};
static const http_route_doc d_bcast = {"Broadcast a message to realtime subscribers of a topic (admin); 202 after commit",
                                       "realtime", "{topic, type, data}", "{seq, topic, type}"};

int realtime_subscribe(app *a, void (*fn)(void *ud, const store_event *ev), void *ud) {
    return a->rt && a->rt->b ? bus_subscribe(a->rt->b, fn, ud) : -1;
}

int realtime_start(app *a) {
    rt_hub *h = a->rt;
    size_t q = a->cfg.ws_max_queue ? a->cfg.ws_max_queue : 1024 * 1024;
    h->soft = q / 4;
    h->hard = q / 4 * 3;
    char err[256];
    bus_opts bo = {.loop = a->loop, .url = a->cfg.bus, .st = a->st, .log = a->log, .m = a->m};
    h->b = bus_new(&bo, err, sizeof err);
    if (!h->b) {
        log_msg(a->log, LOG_ERROR, "cannot start the event bus", err);
        return -1;
    }
    if (bus_subscribe(h->b, on_bus_event, h)) return -1;
    h->m_msgs = metrics_counter(a->m, "ehub_realtime_messages_total", "realtime feed messages (WebSocket and SSE)", "direction");
    h->m_drops = metrics_counter(a->m, "ehub_realtime_queue_drops_total",
                                 "realtime clients cut off because their backlog passed the hard bound", "reason");
    h->m_lagging = metrics_counter(a->m, "ehub_realtime_lagging_total", "lagging warnings sent to slow clients", NULL);
    h->m_replays = metrics_counter(a->m, "ehub_realtime_replays_total", "subscriptions resumed from the event log", NULL);
    h->m_resyncs = metrics_counter(a->m, "ehub_realtime_resyncs_total", "resumes refused as older than --replay-window", NULL);
    metrics_gauge_fn(a->m, "ehub_realtime_connections", "open realtime feeds (WebSocket and SSE)", g_clients, h);
    uv_timer_start(&h->sweep, on_sweep, 1000, 1000);
    int rc = 0;
    int ws = HTTP_ROUTE_WS; /* not public: the key comes with the handshake or as the first message */
    rc |= http_router_add(a->router, "GET", "/ws/realtime", h_ws, h, ws, &d_ws);
    rc |= http_router_add(a->router, "GET", "/v1/stream", h_ws, h, ws, &d_ws);
    rc |= app_route(a, "GET", "/v1/events/stream", h_sse, NULL, ROLES_ANY, &d_sse);
    rc |= app_route(a, "GET", "/v1/events", h_events, NULL, ROLES_READ_ALL, &d_events);
    rc |= app_route(a, "POST", "/v1/broadcast", h_broadcast, NULL, ROLE_ADMIN, &d_bcast);
    rc |= app_route(a, "POST", "/broadcast", h_broadcast, NULL, ROLE_ADMIN, &d_bcast);
    return rc ? -1 : 0;
}

void realtime_stop(app *a) {
    rt_hub *h = a->rt;
    if (!h || h->stopped) return;
    h->stopped = 1;
    uv_mutex_lock(&h->mu);
    h->closed = 1;
    uv_mutex_unlock(&h->mu);
    on_wake(&h->wake); /* what is queued still goes to local clients */
    uncork(h);
    bus_free(h->b);
    h->b = NULL;
    uv_close((uv_handle_t *)&h->wake, on_handle_closed);
    uv_close((uv_handle_t *)&h->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&h->closer, on_handle_closed);
    uv_close((uv_handle_t *)&h->flush, on_handle_closed);
}

void realtime_free(app *a) {
    rt_hub *h = a->rt;
    if (!h) return;
    realtime_stop(a);
    a->rt = NULL;
    /* The server is gone, so are its connections: whatever is left is ours. */
    rt_client *next;
    for (rt_client *c = h->clients; c; c = next) {
        next = c->next;
        client_free(c);
    }
    h->clients = NULL;
    uv_mutex_lock(&h->mu);
    for (int i = 0; i < h->nq; i++) {
        eh_free((char *)h->q[i].type);
        eh_free((char *)h->q[i].payload);
    }
    eh_free(h->q);
    h->q = NULL;
    h->nq = 0;
    uv_mutex_unlock(&h->mu);
    h->freeing = 1;
    if (h->handles == 0) {
        uv_mutex_destroy(&h->mu);
        eh_free(h);
    }
}
