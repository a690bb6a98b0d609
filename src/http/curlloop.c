/* curlloop — see curlloop.h. The shape is curl's own multi-uv example:
 * curl tells us which sockets to watch for what (on_socket) and when to
 * call it back if nothing happens (on_timer_set); we tell it which socket
 * is ready (on_poll) or that the time came (on_timeout), and then read
 * the transfers that ended (dispatch). */
#include "http/curlloop.h"

#include <stddef.h>
#include <stdlib.h>

#include "base/alloc.h"

typedef struct xfer {
    CURL *h;
    curlloop_done_fn done;
    void *ud;
    struct xfer *prev, *next; /* in the active or the queued list */
} xfer;

/* One watched socket; freed in its poll handle's close callback. */
typedef struct sockctx {
    uv_poll_t poll;
    curl_socket_t fd;
    curlloop *cl;
} sockctx;

struct curlloop {
    uv_loop_t *loop;
    CURLM *m;
    uv_timer_t timer; /* curl's timeout */
    uv_timer_t grace; /* the shutdown bound */
    int max_active, max_queued;
    xfer *active;              /* doubly linked, any order */
    xfer *qhead, *qtail;       /* waiting, oldest first */
    int nactive, nqueued;
    int dispatching;           /* inside callbacks: closing waits */
    int closing, finished;
    int open;                  /* uv handles not yet closed (timers and sockets) */
    void (*closed)(void *);
    void *closed_ud;
};

static void list_unlink(xfer **head, xfer *x) {
    if (x->prev) x->prev->next = x->next;
    else *head = x->next;
    if (x->next) x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

/* Timers' data is the curlloop, polls' their sockctx. */
static void on_handle_closed(uv_handle_t *h) {
    curlloop *cl = h->data;
    if (h->type == UV_POLL) {
        sockctx *sc = h->data;
        cl = sc->cl;
        eh_free(sc);
    }
    if (--cl->open == 0) {
        void (*closed)(void *) = cl->closed;
        void *ud = cl->closed_ud;
        eh_free(cl);
        if (closed) closed(ud);
    }
}

static int start(curlloop *cl, xfer *x) {
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
    if (curl_multi_add_handle(cl->m, x->h) != CURLM_OK) return -1;
    x->prev = NULL;
    x->next = cl->active;
    if (cl->active) cl->active->prev = x;
    cl->active = x;
    cl->nactive++;
    return 0;
}

static void finish(curlloop *cl);

/* Ends a transfer: out of the multi handle, then its callback. */
static void end(curlloop *cl, xfer *x, CURLcode cc) {
    curl_multi_remove_handle(cl->m, x->h);
    list_unlink(&cl->active, x);
    cl->nactive--;
    x->done(x->h, cc, x->ud);
    eh_free(x);
}

/* Queued transfers into the free places; one that curl refuses ends at once. */
static void fill(curlloop *cl) {
    while (cl->qhead && cl->nactive < cl->max_active) {
        xfer *x = cl->qhead;
        cl->qhead = x->next;
        if (!cl->qhead) cl->qtail = NULL;
        x->next = NULL;
        cl->nqueued--;
        if (start(cl, x)) {
            x->done(x->h, CURLE_OUT_OF_MEMORY, x->ud);
            eh_free(x);
        }
    }
}

static void maybe_finish(curlloop *cl) {
    if (cl->closing && !cl->finished && !cl->dispatching && !cl->nactive && !cl->nqueued) finish(cl);
}

/* The transfers that ended, to their callbacks; then the queue moves up. */
static void dispatch(curlloop *cl) {
    CURLMsg *msg;
    int left;
    cl->dispatching++;
    while ((msg = curl_multi_info_read(cl->m, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *h = msg->easy_handle;
        CURLcode cc = msg->data.result; /* msg is invalid after the removal */
        xfer *x = NULL;
        curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&x);
        if (x) end(cl, x, cc);
    }
    fill(cl);
    cl->dispatching--;
    maybe_finish(cl);
}

static void on_timeout(uv_timer_t *t) {
    curlloop *cl = t->data;
    int running;
    if (cl->finished) return;
    curl_multi_socket_action(cl->m, CURL_SOCKET_TIMEOUT, 0, &running);
    dispatch(cl);
}

static int on_timer_set(CURLM *m, long timeout_ms, void *userp) {
    curlloop *cl = userp;
    (void)m;
    if (cl->finished) return 0;
    /* 0: as soon as the loop comes round, never from inside curl's call */
    if (timeout_ms < 0) uv_timer_stop(&cl->timer);
    else uv_timer_start(&cl->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

static void on_poll(uv_poll_t *p, int status, int events) {
    sockctx *sc = p->data;
    curlloop *cl = sc->cl;
    int flags = 0, running;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(cl->m, sc->fd, flags, &running);
    dispatch(cl);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
    curlloop *cl = userp;
    sockctx *sc = socketp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        /* stop watching now, while the descriptor is still curl's: closing
         * later could unregister a new socket that reused the number */
        if (sc) {
            curl_multi_assign(cl->m, s, NULL);
            uv_close((uv_handle_t *)&sc->poll, on_handle_closed);
        }
        return 0;
    }
    if (!sc) {
        if (!(sc = eh_calloc(1, sizeof *sc))) return -1;
        if (uv_poll_init_socket(cl->loop, &sc->poll, s)) {
            eh_free(sc);
            return -1;
        }
        sc->fd = s;
        sc->cl = cl;
        sc->poll.data = sc;
        cl->open++;
        curl_multi_assign(cl->m, s, sc);
    }
    int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&sc->poll, ev, on_poll);
    return 0;
}

curlloop *curlloop_new(uv_loop_t *loop, int max_active, int max_queued) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
    curlloop *cl = eh_calloc(1, sizeof *cl);
    if (!cl) return NULL;
    if (!(cl->m = curl_multi_init())) {
        eh_free(cl);
        return NULL;
    }
    cl->loop = loop;
    cl->max_active = max_active > 0 ? max_active : 1;
    cl->max_queued = max_queued > 0 ? max_queued : 0;
    /* keep a connection per transfer that may run at once: by default the
     * cache shrinks with the handles in it, and a batch's burst would
     * reconnect each time */
    curl_multi_setopt(cl->m, CURLMOPT_MAXCONNECTS, (long)cl->max_active);
    curl_multi_setopt(cl->m, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(cl->m, CURLMOPT_SOCKETDATA, cl);
    curl_multi_setopt(cl->m, CURLMOPT_TIMERFUNCTION, on_timer_set);
    curl_multi_setopt(cl->m, CURLMOPT_TIMERDATA, cl);
    uv_timer_init(loop, &cl->timer);
    uv_timer_init(loop, &cl->grace);
    cl->timer.data = cl->grace.data = cl;
    cl->open = 2;
    return cl;
}

int curlloop_add(curlloop *cl, CURL *h, curlloop_done_fn done, void *ud) {
    if (!cl || cl->closing || !h || !done) return -1;
    if (cl->nactive >= cl->max_active && cl->nqueued >= cl->max_queued) return -1;
    xfer *x = eh_calloc(1, sizeof *x);
    if (!x) return -1;
    x->h = h;
    x->done = done;
    x->ud = ud;
    if (cl->nactive < cl->max_active) {
        if (start(cl, x)) {
            eh_free(x);
            return -1;
        }
        return 0; /* curl asks for a 0 ms timeout: it starts when the loop comes round */
    }
    if (cl->qtail) cl->qtail->next = x;
    else cl->qhead = x;
    cl->qtail = x;
    cl->nqueued++;
    return 0;
}

int curlloop_active(const curlloop *cl) { return cl ? cl->nactive : 0; }
int curlloop_queued(const curlloop *cl) { return cl ? cl->nqueued : 0; }

/* Every transfer still out ends as aborted. */
static void abort_all(curlloop *cl) {
    cl->dispatching++;
    while (cl->qhead) {
        xfer *x = cl->qhead;
        cl->qhead = x->next;
        cl->nqueued--;
        x->done(x->h, CURLE_ABORTED_BY_CALLBACK, x->ud);
        eh_free(x);
    }
    cl->qtail = NULL;
    while (cl->active) end(cl, cl->active, CURLE_ABORTED_BY_CALLBACK);
    cl->dispatching--;
}

static void finish(curlloop *cl) {
    cl->finished = 1;
    uv_timer_stop(&cl->grace);
    /* closes the cached connections: their sockets' REMOVE closes the polls */
    curl_multi_cleanup(cl->m);
    cl->m = NULL;
    uv_close((uv_handle_t *)&cl->timer, on_handle_closed);
    uv_close((uv_handle_t *)&cl->grace, on_handle_closed);
}

static void on_grace(uv_timer_t *t) {
    curlloop *cl = t->data;
    abort_all(cl);
    maybe_finish(cl);
}

void curlloop_close(curlloop *cl, uint64_t grace_ms, void (*closed)(void *ud), void *ud) {
    if (!cl || cl->closing) return;
    cl->closing = 1;
    cl->closed = closed;
    cl->closed_ud = ud;
    if (!grace_ms) abort_all(cl);
    else if (cl->nactive || cl->nqueued) uv_timer_start(&cl->grace, on_grace, grace_ms, 0);
    maybe_finish(cl);
}
