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

/* ---- the audit of writes ---- */

struct app_write_audit {
    char actor[32];
    char action[160];
    char target[192];
    char ip[64];
    json_t *fields;
};

/* A path value as it may appear in a target: ids are digits; a name
 * ({name} of a model) keeps only [A-Za-z0-9_.-], at most 64 bytes. */
static size_t target_val(const char *v, char *out, size_t cap) {
    size_t n = 0;
    for (; v && *v && n + 1 < cap && n < 64; v++) {
        char c = *v;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                 c == '-';
        out[n++] = ok ? c : '_';
    }
    out[n] = 0;
    return n;
}

/* "leads" -> "lead", "activities" -> "activity": the kind a path segment
 * names, as the security actions already spell targets ("user:3"). */
static size_t singular(const char *seg, size_t n, char *out, size_t cap) {
    if (n > 3 && !memcmp(seg + n - 3, "ies", 3)) {
        n -= 3;
        if (n + 2 > cap) return 0;
        memcpy(out, seg, n);
        out[n++] = 'y';
        out[n] = 0;
        return n;
    }
    if (n > 1 && seg[n - 1] == 's') n--;
    if (n + 1 > cap) return 0;
    memcpy(out, seg, n);
    out[n] = 0;
    return n;
}

void app_audit_target(const char *pattern, const char *const *vals, int nvals, char *out, size_t outlen) {
    size_t len = 0;
    if (outlen) out[0] = 0;
    const char *prev = NULL;
    size_t prevn = 0;
    int k = 0;
    for (const char *p = pattern; p && *p;) {
        while (*p == '/') p++;
        const char *e = p;
        while (*e && *e != '/') e++;
        if (e == p) break;
        if (*p == '{') {
            char kind[64] = "item", val[80];
            if (prev && !singular(prev, prevn, kind, sizeof kind)) snprintf(kind, sizeof kind, "item");
            target_val(k < nvals ? vals[k] : NULL, val, sizeof val);
            k++;
            int w = snprintf(out + len, outlen - len, "%s%s:%s", len ? "," : "", kind, val);
            if (w < 0 || (size_t)w >= outlen - len) {
                out[len] = 0;
                return;
            }
            len += (size_t)w;
        } else {
            prev = p;
            prevn = (size_t)(e - p);
        }
        p = e;
    }
}

/* The target of a created resource from its Location ("/v1/leads/7"):
 * the last numeric segment and the one before it. */
static void target_from_location(const char *loc, char *out, size_t outlen) {
    const char *segs[16];
    size_t lens[16];
    int n = 0;
    for (const char *p = loc; *p && n < 16;) {
        while (*p == '/') p++;
        const char *e = p;
        while (*e && *e != '/' && *e != '?') e++;
        if (e == p) break;
        segs[n] = p;
        lens[n++] = (size_t)(e - p);
        if (*e == '?') break;
        p = e;
    }
    for (int i = n - 1; i > 0; i--) {
        int digits = lens[i] > 0 && lens[i] <= 18;
        for (size_t j = 0; digits && j < lens[i]; j++) digits = segs[i][j] >= '0' && segs[i][j] <= '9';
        if (!digits) continue;
        char kind[64];
        if (!singular(segs[i - 1], lens[i - 1], kind, sizeof kind)) return;
        snprintf(out, outlen, "%s:%.*s", kind, (int)lens[i], segs[i]);
        return;
    }
}

static int field_name_ok(const char *k) {
    size_t n = strlen(k);
    if (n == 0 || n > 64) return 0;
    for (; *k; k++) {
        char c = *k;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return 0;
        /* an address or a phone number is not a field name */
    }
    return 1;
}

static int cmp_str(const void *x, const void *y) { return strcmp(*(const char *const *)x, *(const char *const *)y); }

json_t *app_audit_fields(const json_t *body) {
    if (json_is_array(body)) return json_pack("{s:I}", "items", (json_int_t)json_array_size(body));
    json_t *out = json_object();
    if (!json_is_object(body) || !out) return out;
    const char *names[32];
    int n = 0, other = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v) {
        /* A name made only of digits, with '@', or long, may be the
         * person's data used as a key: counted, never written. */
        int digits = 1;
        for (const char *c = k; *c && digits; c++) digits = *c >= '0' && *c <= '9';
        if (n < 32 && field_name_ok(k) && !digits) names[n++] = k;
        else other++;
    }
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(arr, json_string(names[i]));
    json_object_set_new(out, "fields", arr);
    if (other) json_object_set_new(out, "other_fields", json_integer(other));
    return out;
}

app_write_audit *app_write_audit_new(http_req *q, const auth_principal *p, json_t *body) {
    const char *m = http_req_method(q);
    if (!p || (!p->user_id && !p->key_id) || !m) return NULL;
    if (strcmp(m, "POST") && strcmp(m, "PUT") && strcmp(m, "PATCH") && strcmp(m, "DELETE")) return NULL;
    app_write_audit *w = eh_calloc(1, sizeof *w);
    if (!w) return NULL;
    auth_actor_name(p, w->actor);
    const char *route = http_req_route(q);
    snprintf(w->action, sizeof w->action, "%s %s", m, route ? route : "?");
    /* the path values in pattern order */
    const char *vals[8];
    int nv = 0;
    for (const char *r = route; r && *r && nv < 8; r++) {
        if (*r != '{') continue;
        const char *e = strchr(r, '}');
        if (!e) break;
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(e - r - 1), r + 1);
        vals[nv++] = http_req_param(q, name);
        r = e;
    }
    app_audit_target(route, vals, nv, w->target, sizeof w->target);
    http_req_client(q, w->ip, sizeof w->ip);
    if (body) {
        w->fields = app_audit_fields(body);
    } else {
        size_t len = 0;
        const char *raw = http_req_body(q, &len);
        const char *ct = http_req_header(q, "Content-Type");
        json_t *j = NULL;
        if (raw && len && ct && strstr(ct, "json")) j = json_loadb(raw, len, 0, NULL);
        w->fields = app_audit_fields(j);
        json_decref(j);
    }
    if (!w->fields) {
        eh_free(w);
        return NULL;
    }
    return w;
}

int app_write_audit_append(store_tx *tx, const app_write_audit *w, int status, const char *location, json_t *extra,
                           store_err *err) {
    char target[192];
    snprintf(target, sizeof target, "%s", w->target);
    if (!target[0] && location && location[0]) target_from_location(location, target, sizeof target);
    json_t *d = json_deep_copy(w->fields);
    if (!d) return STORE_ERR;
    if (extra) json_object_update(d, extra);
    json_object_set_new(d, "status", json_integer(status));
    auth_actor who = {w->actor, w->ip[0] ? w->ip : NULL};
    int rc = auth_audit(tx, store_tx_tenant(tx), &who, w->action, target[0] ? target : NULL, d, clock_wall_ms(), err);
    json_decref(d);
    return rc;
}

typedef struct audit_commit {
    const app_write_audit *w;
    int status;
    json_t *extra;
} audit_commit;

static int audit_commit_tx(store_tx *tx, void *arg, store_err *err) {
    audit_commit *c = arg;
    return app_write_audit_append(tx, c->w, c->status, NULL, c->extra, err);
}

int app_write_audit_commit(app *a, int64_t tenant, const app_write_audit *w, int status, json_t *extra,
                           store_err *err) {
    if (!w) return STORE_OK;
    audit_commit c = {w, status, extra};
    return store_write(a->st, tenant, audit_commit_tx, &c, err);
}

void app_write_audit_free(app_write_audit *w) {
    if (!w) return;
    json_decref(w->fields);
    eh_free(w);
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
    int rc = j->fn(tx, j, err);
    /* A write that committed (also one answered with an error after
     * committing, like a failed login) is audited with it, in this
     * transaction, unless fn wrote its own entry. */
    if (rc == STORE_OK && j->wa && !j->audited)
        rc = app_write_audit_append(tx, j->wa, j->code[0] ? j->fail_status : j->status, j->location, NULL, err);
    return rc;
}

static void job_work(void *arg) {
    api_job *j = arg;
    if (j->pre && j->pre(j)) {
        j->rc = STORE_ABORTED;
        return;
    }
    j->rc = j->write ? store_write(j->a->st, j->tenant, job_tx, j, &j->err)
                     : store_read(j->a->st, j->tenant, job_tx, j, &j->err);
    if (j->rc == STORE_OK && j->post) j->post(j);
}

static void job_free(api_job *j) {
    json_decref(j->in);
    json_decref(j->out);
    json_decref(j->details);
    app_write_audit_free(j->wa);
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
    if (j->write && !j->wa && !(j->wa = app_write_audit_new(q, &j->p, j->in)) && j->p.tenant &&
        (j->p.user_id || j->p.key_id)) {
        const char *m = http_req_method(q);
        if (strcmp(m, "GET") && strcmp(m, "HEAD")) {
            /* a write that cannot be audited is not made */
            job_free(j);
            http_reply_error(q, 503, "overloaded", "out of memory");
            return;
        }
    }
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
