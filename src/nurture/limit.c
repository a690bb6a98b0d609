/* A provider's per-tenant request limit ("N requests in any T"), as both
 * GoHighLevel's sends (send.c) and Apollo's enrichments (enrich.c) need it.
 * Always this node's window (nurture_window); with --bus redis:// also the
 * window every node shares, through the sliding-window script beside the
 * token buckets in src/auth/rlredis.c, under ehub:<name>:w:<tenant>. Asked
 * on pool threads only: a Redis round trip may block there, never on the
 * loop. When Redis does not answer, the node's own window is the limit, as
 * with one node, said once per outage in the log and counted. A 429's
 * Retry-After blocks the window for every node (the script's block key). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "app/app.h"
#include "auth/auth.h"
#include "base/alloc.h"
#include "base/ids.h"
#include "nurture_int.h"

struct nurture_limit {
    app *a;
    char name[16], title[32], what[32];
    int limit;
    int64_t window_ms, hold_ms;
    pthread_mutex_t mu;
    nurture_window *win;         /* under mu */
    auth_redis_limiter *shared;  /* NULL: not shared (no Redis bus) */
    int down;                    /* under mu: Redis failed last time (logged once per outage) */
    uint64_t seq;                /* under mu: names this node's entries, with node_tag */
    char node_tag[17];
    metric *m_paced, *m_fallback, *m_shared;
};

nurture_limit *nurture_limit_new(app *a, const char *name, const char *title, const char *what, int limit,
                                 int64_t window_ms, int64_t hold_ms) {
    if (strlen(name) >= 16 || strlen(title) >= 32 || strlen(what) >= 32 || limit < 1 || window_ms < 1) return NULL;
    nurture_limit *l = eh_calloc(1, sizeof *l);
    if (!l) return NULL;
    l->a = a;
    snprintf(l->name, sizeof l->name, "%s", name);
    snprintf(l->title, sizeof l->title, "%s", title);
    snprintf(l->what, sizeof l->what, "%s", what);
    l->limit = limit;
    l->window_ms = window_ms;
    l->hold_ms = hold_ms;
    if (!(l->win = nurture_window_new(limit, window_ms))) {
        eh_free(l);
        return NULL;
    }
    char mname[96], help[200];
    snprintf(mname, sizeof mname, "ehub_nurture_%s_paced_total", name);
    snprintf(help, sizeof help,
             "%s %s held back by the window (%d per %lld ms), by the window that held them (shared through Redis, "
             "or this node's)",
             title, what, limit, (long long)window_ms);
    l->m_paced = metrics_counter(a->m, mname, help, "window");
    if (!strncmp(a->cfg.bus, "redis://", 8)) {
        char err[200] = "", msg[120];
        if (ids_random_hex(l->node_tag, sizeof l->node_tag, 8) ||
            !(l->shared = auth_redis_limiter_new(a->cfg.bus, "ehub:", err, sizeof err))) {
            snprintf(msg, sizeof msg, "nurture: cannot share the %s window", title);
            log_msg(a->log, LOG_ERROR, msg, err[0] ? err : "no randomness");
            nurture_window_free(l->win);
            eh_free(l);
            return NULL;
        }
        snprintf(mname, sizeof mname, "ehub_nurture_%s_window_fallbacks_total", name);
        snprintf(help, sizeof help, "%s %s limited by this node's window because Redis did not answer", title, what);
        l->m_fallback = metrics_counter(a->m, mname, help, NULL);
        snprintf(mname, sizeof mname, "ehub_nurture_%s_window_shared", name);
        snprintf(help, sizeof help, "1 while the %s window is shared through Redis", title);
        l->m_shared = metrics_gauge(a->m, mname, help, NULL);
        if (l->m_shared) metric_set(l->m_shared, NULL, 1);
    }
    pthread_mutex_init(&l->mu, NULL);
    return l;
}

void nurture_limit_free(nurture_limit *l) {
    if (!l) return;
    pthread_mutex_destroy(&l->mu);
    nurture_window_free(l->win);
    auth_redis_limiter_free(l->shared);
    eh_free(l);
}

int nurture_limit_max(const nurture_limit *l) { return l->limit; }
int64_t nurture_limit_window_ms(const nurture_limit *l) { return l->window_ms; }

static void shared_state(nurture_limit *l, int up) {
    pthread_mutex_lock(&l->mu);
    int change = l->down == up; /* down and now up, or up and now down */
    l->down = !up;
    pthread_mutex_unlock(&l->mu);
    if (!up && l->m_fallback) metric_add(l->m_fallback, NULL, 1);
    if (!change) return;
    if (l->m_shared) metric_set(l->m_shared, NULL, up);
    char msg[160];
    if (up) snprintf(msg, sizeof msg, "nurture: %s window shared through Redis again", l->title);
    else snprintf(msg, sizeof msg, "nurture: Redis unreachable, %s %s use this node's window", l->title, l->what);
    log_msg(l->a->log, up ? LOG_INFO : LOG_WARN, msg, NULL);
}

static void shared_key(const nurture_limit *l, int64_t tenant, char *key, size_t cap) {
    snprintf(key, cap, "%s:w:%lld", l->name, (long long)tenant);
}

int64_t nurture_limit_take(nurture_limit *l, int64_t tenant, int64_t now, nurture_lease *ls) {
    ls->slot = -1;
    ls->shared = 0;
    ls->member[0] = 0;
    pthread_mutex_lock(&l->mu);
    int64_t until = nurture_window_take(l->win, tenant, now, &ls->slot);
    uint64_t seq = ++l->seq;
    pthread_mutex_unlock(&l->mu);
    if (until) ls->slot = -1;
    const char *which = "local";
    if (!until && l->shared) {
        char key[48];
        int64_t wait = 0;
        shared_key(l, tenant, key, sizeof key);
        snprintf(ls->member, sizeof ls->member, "%s.%llu", l->node_tag, (unsigned long long)seq);
        if (auth_redis_window_take(l->shared, key, l->limit, l->window_ms, l->hold_ms, ls->member, &wait)) {
            shared_state(l, 0); /* the node's window alone decides */
        } else {
            shared_state(l, 1);
            if (!wait) {
                ls->shared = 1;
            } else {
                pthread_mutex_lock(&l->mu);
                nurture_window_release(l->win, tenant, ls->slot);
                pthread_mutex_unlock(&l->mu);
                ls->slot = -1;
                until = now + wait;
                which = "shared";
            }
        }
    }
    if (until && l->m_paced) {
        const char *lv[] = {which};
        metric_add(l->m_paced, lv, 1);
    }
    return until;
}

void nurture_limit_done(nurture_limit *l, int64_t tenant, nurture_lease *ls, int64_t end, int64_t retry_after_until) {
    pthread_mutex_lock(&l->mu);
    nurture_window_done(l->win, tenant, ls->slot, end, retry_after_until);
    pthread_mutex_unlock(&l->mu);
    ls->slot = -1;
    /* a 429 blocks every node even when this request was counted by the
     * node's window alone (Redis was away then) */
    if (!ls->shared && !(l->shared && retry_after_until > end)) return;
    char key[48];
    shared_key(l, tenant, key, sizeof key);
    /* unanswered: the entry keeps counting until its hold runs out, which
     * only errs on the side of sending less */
    auth_redis_window_done(l->shared, key, l->window_ms, ls->member,
                           retry_after_until > end ? retry_after_until - end : 0);
    ls->shared = 0;
}
