/* post.c — handing finished work back to the loop thread from any thread.
 *
 * store_write_async calls its callback on the SQLite writer thread after a
 * group COMMIT; the answer to the HTTP request must be sent on the loop.
 * Each finished item is pushed on a list under a mutex and the loop is
 * woken with one uv_async: libuv coalesces the wake-ups, so a commit that
 * finishes forty webhooks wakes the loop once and it answers all forty. */
#include <pthread.h>

#include "app.h"
#include "base/alloc.h"

struct app_posts {
    uv_async_t async;
    pthread_mutex_t mu;
    app_post_item *head, *tail; /* guarded by mu */
    int closed;                 /* guarded by mu */
};

/* Takes the whole list (closing it if asked) and runs it in posting order:
 * the answers of one commit go out in commit order. */
static void run_all(app_posts *p, int close) {
    pthread_mutex_lock(&p->mu);
    if (close) p->closed = 1;
    app_post_item *it = p->head;
    p->head = p->tail = NULL;
    pthread_mutex_unlock(&p->mu);
    for (app_post_item *next; it; it = next) {
        next = it->next;
        it->fn(it);
    }
}

static void on_async(uv_async_t *h) { run_all(h->data, 0); }

int app_posts_start(app *a) {
    app_posts *p = eh_calloc(1, sizeof *p);
    if (!p) return -1;
    if (pthread_mutex_init(&p->mu, NULL)) {
        eh_free(p);
        return -1;
    }
    if (uv_async_init(a->loop, &p->async, on_async)) {
        pthread_mutex_destroy(&p->mu);
        eh_free(p);
        return -1;
    }
    p->async.data = p;
    a->posts = p;
    return 0;
}

int app_post(app *a, app_post_item *it) {
    app_posts *p = a->posts;
    it->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->closed) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    if (p->tail) p->tail->next = it;
    else p->head = it;
    p->tail = it;
    /* under the lock: after closed is set the handle may be closing */
    uv_async_send(&p->async);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static void on_closed(uv_handle_t *h) {
    app_posts *p = h->data;
    pthread_mutex_destroy(&p->mu);
    eh_free(p);
}

void app_posts_stop(app *a) {
    app_posts *p = a->posts;
    if (!p) return;
    a->posts = NULL;
    run_all(p, 1); /* anything posted after the last wake-up still runs */
    uv_close((uv_handle_t *)&p->async, on_closed);
}
