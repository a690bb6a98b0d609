/* The guard in front of every authenticated route, the API-key cache, and
 * the job runner that carries handler work to the thread pool and back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "base/alloc.h"
#include "base/clock.h"

#define CACHE_SLOTS 1024
#define CACHE_TTL_MS 30000

typedef struct cache_slot {
    char hash[AUTH_HASH_HEX];
    auth_principal p;
    int64_t expires;
} cache_slot;

struct key_cache {
    cache_slot slot[CACHE_SLOTS];
};

struct route_entry {
    app *a;
    api_handler fn;
    void *ud;
    int roles;
};

static cache_slot *slot_for(key_cache *c, const char *hash) {
    /* The hash is uniformly random: its first hex digits index directly. */
    unsigned idx = (unsigned)strtoul((char[]){hash[0], hash[1], hash[2], 0}, NULL, 16);
    return &c->slot[idx % CACHE_SLOTS];
}

void app_key_forget(app *a, int64_t key_id) {
    if (!a->keys) return;
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (a->keys->slot[i].p.key_id == key_id) a->keys->slot[i].expires = 0;
}

typedef struct guard_job {
    route_entry *re;
    char hash[AUTH_HASH_HEX];
    auth_principal p;
    int rc;
    store_err err;
} guard_job;

static void deny(http_req *q, app *a, int status, const char *code, const char *msg) {
    if (a->m_auth_fail) {
        const char *lv[] = {code};
        metric_add(a->m_auth_fail, lv, 1);
    }
    if (status == 401) http_res_header(q, "WWW-Authenticate", "Bearer realm=\"ehub\"");
    http_reply_error(q, status, code, msg);
}

static void admitted(http_req *q, void *ud, const auth_principal *p) {
    route_entry *re = ud;
    re->fn(q, re->a, p, re->ud);
}

static void admit(http_req *q, route_entry *re, const auth_principal *p) {
    http_req_set_tenant(q, p->tenant_slug);
    if (!(re->roles & p->role)) {
        deny(q, re->a, 403, "forbidden", "your role may not use this route");
        return;
    }
    if (!auth_ctx_admit(re->a, q, p, admitted, re)) return;
    re->fn(q, re->a, p, re->ud);
}

typedef struct key_lookup {
    const char *hash;
    auth_principal *p;
} key_lookup;

static int lookup_tx(store_tx *tx, void *arg, store_err *err) {
    key_lookup *k = arg;
    return auth_key_lookup(tx, k->hash, clock_wall_ms(), k->p, err);
}

static int touch_tx(store_tx *tx, void *arg, store_err *err) {
    key_lookup *k = arg;
    return auth_key_touch(tx, k->p->key_id, clock_wall_ms(), err);
}

const char *app_req_key(http_req *q) {
    const char *key = NULL;
    const char *h = http_req_header(q, "Authorization");
    if (h && strncasecmp(h, "Bearer ", 7) == 0) key = h + 7;
    else key = http_req_header(q, "X-API-Key");
    if (!key) return NULL;
    while (*key == ' ') key++;
    return *key ? key : NULL;
}

int app_is_access_token(const char *key) { return strncmp(key, "ehk_", 4) != 0 && strchr(key, '.') != NULL; }

int app_key_cached(app *a, const char *key, char hash[AUTH_HASH_HEX], auth_principal *p) {
    if (key && app_is_access_token(key)) { /* a JWT is complete in itself */
        const char *why;
        return auth_ctx_jwt(a, key, strlen(key), p, &why) ? -1 : 1;
    }
    if (!a->keys && !(a->keys = eh_calloc(1, sizeof *a->keys))) return 0;
    if (!key || !auth_key_wellformed(key, strlen(key))) return -1;
    auth_key_hash(key, strlen(key), hash);
    cache_slot *s = slot_for(a->keys, hash);
    if (s->expires > clock_wall_ms() && strcmp(s->hash, hash) == 0) {
        *p = s->p;
        return 1;
    }
    return 0;
}

int app_key_lookup(app *a, const char *hash, auth_principal *p, store_err *err) {
    key_lookup k = {hash, p};
    int rc = store_read(a->st, 0, lookup_tx, &k, err);
    /* last_used_at is refreshed when the key enters the cache, so at most
     * once per cache lifetime per node; a failure here does not deny. */
    if (rc == STORE_OK) {
        store_err e;
        store_write(a->st, p->tenant, touch_tx, &k, &e);
    }
    return rc;
}

void app_key_remember(app *a, const char *hash, const auth_principal *p) {
    if (!a->keys) return;
    cache_slot *s = slot_for(a->keys, hash);
    memcpy(s->hash, hash, sizeof s->hash);
    s->p = *p;
    s->expires = clock_wall_ms() + CACHE_TTL_MS;
}

static void guard_work(void *arg) {
    guard_job *g = arg;
    g->rc = app_key_lookup(g->re->a, g->hash, &g->p, &g->err);
}

static void guard_done(http_req *q, void *arg) {
    guard_job *g = arg;
    app *a = g->re->a;
    if (g->rc == STORE_OK) {
        app_key_remember(a, g->hash, &g->p);
        admit(q, g->re, &g->p);
    } else if (g->rc == STORE_NOTFOUND) {
        deny(q, a, 401, "unauthenticated", "unknown or revoked API key");
    } else {
        log_msg(a->log, LOG_ERROR, "key lookup failed", g->err.msg);
        http_reply_error(q, 503, "unavailable", "storage unavailable");
    }
    eh_free(g);
}

static void guard(http_req *q, void *ud) {
    route_entry *re = ud;
    app *a = re->a;
    const char *key = app_req_key(q);
    if (!key) {
        deny(q, a, 401, "unauthenticated", "missing credentials: send Authorization: Bearer <API key or access token>");
        return;
    }
    if (app_is_access_token(key)) {
        /* checked here, no storage involved; the guard says why it failed */
        auth_principal p;
        const char *why = "invalid access token";
        if (auth_ctx_jwt(a, key, strlen(key), &p, &why)) {
            deny(q, a, 401, "unauthenticated", why);
            return;
        }
        admit(q, re, &p);
        return;
    }
    char hash[AUTH_HASH_HEX];
    auth_principal p;
    int c = app_key_cached(a, key, hash, &p);
    if (c < 0) {
        deny(q, a, 401, "unauthenticated", "malformed API key");
        return;
    }
    if (c == 1) {
        admit(q, re, &p);
        return;
    }
    guard_job *g = eh_calloc(1, sizeof *g);
    if (!g) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    g->re = re;
    memcpy(g->hash, hash, sizeof hash);
    if (http_req_work(q, guard_work, guard_done, g)) {
        eh_free(g);
        http_reply_error(q, 503, "overloaded", "cannot schedule work");
    }
}

int app_route_flags(app *a, const char *method, const char *pattern, api_handler fn, void *ud, int roles,
                    int flags, const http_route_doc *doc) {
    if (!a->keys && !(a->keys = eh_calloc(1, sizeof *a->keys))) return -1;
    if (a->nroutes == a->caproutes) {
        /* The router keeps pointers to entries, so entries are allocated one
         * by one and only the array of pointers grows. */
        int cap = a->caproutes ? a->caproutes * 2 : 64;
        route_entry **nr = eh_realloc(a->routes, (size_t)cap * sizeof *nr);
        if (!nr) return -1;
        a->routes = nr;
        a->caproutes = cap;
    }
    route_entry *re = eh_calloc(1, sizeof *re);
    if (!re) return -1;
    a->routes[a->nroutes++] = re;
    re->a = a;
    re->fn = fn;
    re->ud = ud;
    re->roles = roles;
    return http_router_add(a->router, method, pattern, guard, re, flags, doc);
}

int app_route(app *a, const char *method, const char *pattern, api_handler fn, void *ud, int roles,
              const http_route_doc *doc) {
    return app_route_flags(a, method, pattern, fn, ud, roles, 0, doc);
}

void app_routes_free(app *a) {
    for (int i = 0; i < a->nroutes; i++) eh_free(a->routes[i]);
    eh_free(a->routes);
    eh_free(a->keys);
    a->routes = NULL;
    a->keys = NULL;
    a->nroutes = a->caproutes = 0;
}

/* ---- jobs ---- */

api_job *api_job_new(app *a, const auth_principal *p) {
    api_job *j = eh_calloc(1, sizeof *j);
    if (!j) return NULL;
    j->a = a;
    if (p) {
        j->p = *p;
        j->tenant = p->tenant;
    }
    j->status = 200;
    return j;
}

api_job *api_job_for(http_req *q, app *a, const auth_principal *p) {
    api_job *j = api_job_new(a, p);
    if (!j) http_reply_error(q, 503, "overloaded", "out of memory");
    return j;
}

int api_job_fail(api_job *j, int status, const char *code, const char *msg) {
    j->fail_status = status;
    snprintf(j->code, sizeof j->code, "%s", code);
    snprintf(j->msg, sizeof j->msg, "%s", msg);
    return STORE_ABORTED;
}

static int job_tx(store_tx *tx, void *arg, store_err *err) {
    api_job *j = arg;
    return j->fn(tx, j, err);
}

static void job_work(void *arg) {
    api_job *j = arg;
    if (j->pre && j->pre(j)) {
        j->rc = STORE_ABORTED;
        return;
    }
    j->rc = j->write ? store_write(j->a->st, j->tenant, job_tx, j, &j->err)
                     : store_read(j->a->st, j->tenant, job_tx, j, &j->err);
}

static void job_free(api_job *j) {
    json_decref(j->in);
    json_decref(j->out);
    json_decref(j->details);
    if (j->extra_free) j->extra_free(j->extra);
    eh_free(j);
}

static void job_done(http_req *q, void *arg) {
    api_job *j = arg;
    if (j->code[0]) {
        if (j->details) {
            json_t *body = json_pack("{s:{s:s, s:s, s:s, s:O}}", "error", "code", j->code, "message",
                                     j->msg, "request_id", http_req_id(q), "fields", j->details);
            http_reply_json(q, j->fail_status, body);
        } else {
            http_reply_error(q, j->fail_status, j->code, j->msg);
        }
    } else if (j->rc == STORE_OK && j->on_done) {
        j->on_done(q, j);
    } else if (j->rc == STORE_OK) {
        if (j->etag[0]) http_res_header(q, "ETag", j->etag);
        if (j->location[0]) http_res_header(q, "Location", j->location);
        json_t *out = j->out;
        j->out = NULL;
        if (out) http_reply_json(q, j->status, out);
        else http_reply(q, j->status == 200 ? 204 : j->status, NULL, NULL, 0);
    } else {
        switch (j->rc) {
        case STORE_NOTFOUND: http_reply_error(q, 404, "not_found", "no such resource"); break;
        case STORE_CONFLICT:
            if (strcmp(j->err.msg, "version") == 0)
                http_reply_error(q, 412, "version_mismatch", "the resource changed; fetch it again and retry with its ETag");
            else http_reply_error(q, 409, "conflict", "a resource with these unique values exists");
            break;
        case STORE_BUSY:
            http_res_header(q, "Retry-After", "1");
            http_reply_error(q, 503, "busy", "storage busy, retry");
            break;
        case STORE_UNAVAILABLE: http_reply_error(q, 503, "unavailable", "storage unavailable"); break;
        default:
            log_msg(j->a->log, LOG_ERROR, "storage error", j->err.msg);
            http_reply_error(q, 500, "internal", "storage error");
        }
    }
    job_free(j);
}

void api_job_run(http_req *q, api_job *j) {
    if (http_req_work(q, job_work, job_done, j)) {
        job_free(j);
        http_reply_error(q, 503, "overloaded", "cannot schedule work");
    }
}

int64_t api_parse_id(const char *s) {
    if (!s || !*s || strlen(s) > 18) return -1;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    return v > 0 ? v : -1;
}

int64_t api_if_match(http_req *q) {
    const char *h = http_req_header(q, "If-Match");
    if (!h) return 0;
    char tmp[32];
    size_t n = 0;
    for (const char *p = h; *p && n + 1 < sizeof tmp; p++)
        if (*p >= '0' && *p <= '9') tmp[n++] = *p;
        else if (*p != '"' && *p != 'W' && *p != '/' && *p != 'v' && *p != ' ') return -1;
    tmp[n] = '\0';
    int64_t v = api_parse_id(tmp);
    return v;
}
