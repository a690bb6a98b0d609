/* The security routes: login, refresh and logout (public: the request
 * proves itself), API keys, users and the audit trail (admin), and the two
 * hooks the route guard calls: local JWT verification and rate limits.
 *
 * Everything an admin or a login changes is appended to the tenant's audit
 * trail in the same transaction. Password hashing (Argon2id, ~0.1 s and
 * 64 MiB) runs on the pool before the transaction (api_job.pre), and at most
 * LOGIN_INFLIGHT logins run at once: more answer 503 + Retry-After, so a
 * login flood cannot take the pool or the memory. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "app/app.h"
#include "auth.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "jwt.h"

#define LOGIN_INFLIGHT 4
#define LIMITER_SLOTS 16384

struct auth_ctx {
    jwt_keyset *ks;
    auth_limiter *lim;
    auth_rate login_acct, login_ip, principal, tenant;
    int logins_inflight;
    char issuer[64];
    int64_t ttl_s, leeway_s, refresh_ttl_ms;
    metric *m_login, *m_limited;
    /* --bus redis://: the request buckets live in Redis, shared by the nodes */
    auth_redis_limiter *shared;
    metric *m_fallback, *m_shared_up;
    int shared_down; /* loop thread: Redis failed last time (logged once per outage) */
};

void auth_ctx_free(auth_ctx *c) {
    if (!c) return;
    jwt_keyset_free(c->ks);
    auth_limiter_free(c->lim);
    auth_redis_limiter_free(c->shared);
    eh_free(c);
}

/* ---- guard hooks ---- */

int auth_ctx_jwt(app *a, const char *tok, size_t n, auth_principal *p, const char **why) {
    auth_ctx *c = a->auth;
    jwt_claims cl;
    int rc = c ? jwt_verify(c->ks, tok, n, c->issuer, clock_wall_ms() / 1000, c->leeway_s, &cl) : JWT_ALG;
    if (rc != JWT_OK) {
        *why = rc == JWT_EXPIRED ? "access token expired: refresh it" : "invalid access token";
        return -1;
    }
    int role = auth_role_parse(cl.role);
    if (role < 0) {
        *why = "invalid access token";
        return -1;
    }
    memset(p, 0, sizeof *p);
    p->tenant = cl.tid;
    snprintf(p->tenant_slug, sizeof p->tenant_slug, "%s", cl.tenant);
    p->role = role;
    p->user_id = cl.sub;
    p->agent_id = cl.agent;
    return 0;
}

static void limit_headers(http_req *q, const auth_limit_info *in) {
    char v[32];
    snprintf(v, sizeof v, "%ld", in->limit);
    http_res_header(q, "RateLimit-Limit", v);
    snprintf(v, sizeof v, "%ld", in->remaining < 0 ? 0 : in->remaining);
    http_res_header(q, "RateLimit-Remaining", v);
    snprintf(v, sizeof v, "%ld", in->reset_s);
    http_res_header(q, "RateLimit-Reset", v);
}

static void too_many(http_req *q, auth_ctx *c, const char *scope, const auth_limit_info *in, const char *msg) {
    char v[32];
    snprintf(v, sizeof v, "%ld", in->retry_after_s);
    http_res_header(q, "Retry-After", v);
    limit_headers(q, in);
    const char *lv[] = {scope};
    if (c->m_limited) metric_add(c->m_limited, lv, 1);
    http_reply_error(q, 429, "rate_limited", msg);
}

typedef struct admit_keys {
    char kp[64], kt[32];
    size_t np, nt;
} admit_keys;

static void admit_keys_of(const auth_principal *p, admit_keys *k) {
    k->np = p->user_id ? (size_t)snprintf(k->kp, sizeof k->kp, "P:u:%lld:%lld", (long long)p->tenant, (long long)p->user_id)
                       : (size_t)snprintf(k->kp, sizeof k->kp, "P:k:%lld", (long long)p->key_id);
    k->nt = (size_t)snprintf(k->kt, sizeof k->kt, "T:%lld", (long long)p->tenant);
}

/* Answers 429 for the bucket that is empty, or sets the headers of the one
 * closer to running out; 1 if the request may go on. */
static int admit_answer(http_req *q, auth_ctx *c, int okp, const auth_limit_info *ip, int okt,
                        const auth_limit_info *it) {
    if (!okp) {
        too_many(q, c, "principal", ip, "too many requests for this API key or user");
        return 0;
    }
    if (!okt) {
        too_many(q, c, "tenant", it, "too many requests for this tenant");
        return 0;
    }
    if (ip->limit && (!it->limit || ip->remaining <= it->remaining)) limit_headers(q, ip);
    else if (it->limit) limit_headers(q, it);
    return 1;
}

static int admit_local(http_req *q, auth_ctx *c, const admit_keys *k) {
    int64_t now = clock_wall_ms();
    auth_limit_info ip = {0}, it = {0};
    int okp = auth_limiter_check(c->lim, k->kp, k->np, &c->principal, now, 0, &ip);
    int okt = auth_limiter_check(c->lim, k->kt, k->nt, &c->tenant, now, 0, &it);
    if (okp && okt) {
        auth_limiter_check(c->lim, k->kp, k->np, &c->principal, now, 1, &ip);
        auth_limiter_check(c->lim, k->kt, k->nt, &c->tenant, now, 1, &it);
    }
    return admit_answer(q, c, okp, &ip, okt, &it);
}

typedef struct shared_job {
    app *a;
    auth_principal p;
    admit_keys k;
    void (*go)(http_req *q, void *ud, const auth_principal *p);
    void *ud;
    int rc, ok;
    auth_limit_info info[2];
} shared_job;

static void shared_work(void *arg) {
    shared_job *j = arg;
    auth_ctx *c = j->a->auth;
    const char *keys[2];
    auth_rate rates[2];
    int n = 0;
    /* only the limits that are on; info[0] principal, info[1] tenant */
    if (c->principal.burst > 0) {
        keys[n] = j->k.kp;
        rates[n++] = c->principal;
    }
    if (c->tenant.burst > 0) {
        keys[n] = j->k.kt;
        rates[n++] = c->tenant;
    }
    auth_limit_info got[2] = {{0}};
    j->rc = auth_redis_limiter_take(c->shared, n, keys, rates, &j->ok, got);
    int g = 0;
    if (c->principal.burst > 0) j->info[0] = got[g++];
    if (c->tenant.burst > 0) j->info[1] = got[g];
}

static void shared_done(http_req *q, void *arg) {
    shared_job *j = arg;
    auth_ctx *c = j->a->auth;
    int go;
    if (j->rc) {
        /* Redis did not answer: this node's own buckets, so a Redis outage
         * degrades the limit to per node instead of refusing everyone */
        if (c->m_fallback) metric_add(c->m_fallback, NULL, 1);
        if (!c->shared_down) {
            c->shared_down = 1;
            if (c->m_shared_up) metric_set(c->m_shared_up, NULL, 0);
            log_msg(j->a->log, LOG_WARN, "rate limits: Redis unreachable, using this node's buckets", NULL);
        }
        go = admit_local(q, c, &j->k);
    } else {
        if (c->shared_down) {
            c->shared_down = 0;
            if (c->m_shared_up) metric_set(c->m_shared_up, NULL, 1);
            log_msg(j->a->log, LOG_INFO, "rate limits: shared through Redis again", NULL);
        }
        /* refused: the principal's bucket if it is below a token, else the tenant's */
        int okp = j->ok || !(c->principal.burst > 0 && j->info[0].retry_after_s > 0);
        int okt = j->ok || !okp;
        go = admit_answer(q, c, okp, &j->info[0], okt, &j->info[1]);
    }
    if (go) j->go(q, j->ud, &j->p);
    eh_free(j);
}

int auth_ctx_admit(app *a, http_req *q, const auth_principal *p,
                   void (*go)(http_req *q, void *ud, const auth_principal *p), void *ud) {
    auth_ctx *c = a->auth;
    /* Off by default: then nothing here may cost the hot path anything. */
    if (!c || (c->principal.burst <= 0 && c->tenant.burst <= 0)) return 1;
    admit_keys k;
    admit_keys_of(p, &k);
    if (!c->shared) return admit_local(q, c, &k);
    shared_job *j = eh_calloc(1, sizeof *j);
    if (!j) {
        http_reply_error(q, 503, "overloaded", "out of memory");
        return 0;
    }
    j->a = a;
    j->p = *p;
    j->k = k;
    j->go = go;
    j->ud = ud;
    if (http_req_work(q, shared_work, shared_done, j)) {
        eh_free(j);
        http_reply_error(q, 503, "overloaded", "cannot schedule work");
    }
    return 0;
}

/* ---- shared helpers ---- */

static void reply_422(http_req *q, const char *msg) { http_reply_error(q, 422, "validation_failed", msg); }

static json_t *body_object(http_req *q) {
    json_t *in = http_req_json(q);
    if (!in) return NULL;
    if (!json_is_object(in)) {
        json_decref(in);
        reply_422(q, "expected a JSON object");
        return NULL;
    }
    return in;
}

/* 1 if every key of o is in the NULL-terminated list. */
static const char *unknown_key(json_t *o, const char *const *allowed) {
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(*a, k);
        if (!ok) return k;
    }
    return NULL;
}

/* What an admin job carries besides the body. */
typedef struct admin_in {
    char ip[48];
    char actor[32];
    char email[AUTH_EMAIL_MAX + 1];
    int role;            /* -1 = unchanged */
    int disabled;        /* -1 = unchanged */
    int set_agent;
    int64_t agent_id;
    char *password;
    size_t pwlen;
    char pwhash[AUTH_PWHASH_LEN];
    const char *name;
    char key[AUTH_KEY_LEN + 1];
    int64_t new_id;
    auth_ctx *ctx;       /* logins only: the in-flight count */
} admin_in;

static void admin_in_free(void *p) {
    admin_in *in = p;
    if (!in) return;
    if (in->ctx) in->ctx->logins_inflight--;
    if (in->password) {
        sodium_memzero(in->password, in->pwlen);
        eh_free(in->password);
    }
    sodium_memzero(in, sizeof *in);
    eh_free(in);
}

static api_job *admin_job(http_req *q, app *a, const auth_principal *p, json_t *body) {
    api_job *j = api_job_new(a, p);
    admin_in *in = eh_calloc(1, sizeof *in);
    if (!j || !in) {
        eh_free(j);
        eh_free(in);
        json_decref(body);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return NULL;
    }
    in->role = -1;
    in->disabled = -1;
    http_req_client(q, in->ip, sizeof in->ip);
    auth_actor_name(p, in->actor);
    j->audited = 1; /* key.*, user.*: each of these jobs appends its own entry */
    j->in = body;
    j->extra = in;
    j->extra_free = admin_in_free;
    return j;
}

static int audit(store_tx *tx, api_job *j, const char *action, const char *target, json_t *detail, store_err *err) {
    admin_in *in = j->extra;
    auth_actor who = {in->actor, in->ip[0] ? in->ip : NULL};
    int rc = auth_audit(tx, store_tx_tenant(tx), &who, action, target, detail, clock_wall_ms(), err);
    json_decref(detail);
    return rc;
}

static int64_t path_id(http_req *q) {
    int64_t id = api_parse_id(http_req_param(q, "id"));
    if (id < 0) http_reply_error(q, 404, "not_found", "no such resource");
    return id;
}

static int query_limit(http_req *q, int *limit, int64_t *cursor) {
    const char *l = http_req_query(q, "limit"), *cur = http_req_query(q, "cursor");
    *limit = 100;
    *cursor = 0;
    if (l) {
        int64_t v = api_parse_id(l);
        if (v < 1 || v > 500) {
            http_reply_error(q, 400, "bad_request", "limit: 1-500");
            return -1;
        }
        *limit = (int)v;
    }
    if (cur && (*cursor = api_parse_id(cur)) < 0) {
        http_reply_error(q, 400, "bad_request", "cursor: use next_cursor from the previous page");
        return -1;
    }
    return 0;
}

static json_t *page(json_t *items, int64_t next) {
    char nc[24];
    snprintf(nc, sizeof nc, "%lld", (long long)next);
    return json_pack("{s:o, s:o}", "items", items, "next_cursor", next ? json_string(nc) : json_null());
}

/* ---- login / refresh / logout ---- */

typedef struct login_state {
    admin_in in;
    char slug[65];
    auth_user u;
    int found, ok, tenant_found;
    const char *reason;
    char refresh[AUTH_REFRESH_LEN + 1];
    int64_t refresh_expires;
} login_state;

static int login_find_tx(store_tx *tx, void *arg, store_err *err) {
    login_state *s = arg;
    int rc = auth_user_find_login(tx, s->slug, s->in.email, &s->u, err);
    if (rc == STORE_OK) {
        s->found = s->tenant_found = 1;
        return STORE_OK;
    }
    if (rc != STORE_NOTFOUND) return rc;
    int64_t tid = 0;
    rc = store_tenant_find(tx, s->slug, &tid, err);
    if (rc == STORE_OK) {
        s->tenant_found = 1;
        s->u.tenant = tid;
        return STORE_OK;
    }
    return rc == STORE_NOTFOUND ? STORE_OK : rc;
}

static int login_pre2(api_job *j) {
    login_state *s = j->extra;
    store_err err = {0};
    int rc = store_read(j->a->st, 0, login_find_tx, s, &err);
    if (rc) {
        j->err = err;
        return api_job_fail(j, 503, "unavailable", "storage unavailable");
    }
    /* The password is checked even when there is no such user (against a
     * dummy hash), so the answer takes as long either way. */
    int good = auth_password_verify(s->found ? s->u.pwhash : NULL, s->in.password, s->in.pwlen);
    sodium_memzero(s->in.password, s->in.pwlen);
    if (!s->found) s->reason = "no such user";
    else if (!good) s->reason = "wrong password";
    else if (s->u.disabled) s->reason = "user disabled";
    else if (s->u.role < 0) s->reason = "user has no valid role";
    else s->ok = 1;
    if (!s->tenant_found) return api_job_fail(j, 401, "invalid_credentials", "wrong tenant, e-mail or password");
    j->tenant = s->u.tenant;
    return 0;
}

static int login_tx(store_tx *tx, api_job *j, store_err *err) {
    login_state *s = j->extra;
    auth_ctx *c = j->a->auth;
    int64_t now = clock_wall_ms();
    char target[32];
    snprintf(target, sizeof target, "user:%lld", (long long)s->u.id);
    auth_actor who = {s->found ? target : "anonymous", s->in.ip[0] ? s->in.ip : NULL};
    int rc;
    if (!s->ok) {
        json_t *d = json_pack("{s:s, s:s}", "email", s->in.email, "reason", s->reason);
        rc = auth_audit(tx, s->u.tenant, &who, "auth.login_failed", s->found ? target : NULL, d, now, err);
        json_decref(d);
        if (rc) return rc;
        /* Committed (the audit entry), answered 401. */
        api_job_fail(j, 401, "invalid_credentials", "wrong tenant, e-mail or password");
        return STORE_OK;
    }
    store_val v[] = {SV_I(now), SV_I(s->u.id)};
    if ((rc = store_query(tx, "UPDATE users SET last_login_at = $1 WHERE id = $2", v, 2, NULL, err))) return rc;
    if ((rc = auth_refresh_issue(tx, s->u.tenant, s->u.id, NULL, now, c->refresh_ttl_ms, s->refresh, NULL, err)))
        return rc;
    s->refresh_expires = c->refresh_ttl_ms / 1000;
    s->u.last_login_at = now;
    json_t *d = json_pack("{s:s}", "email", s->in.email);
    rc = auth_audit(tx, s->u.tenant, &who, "auth.login", target, d, now, err);
    json_decref(d);
    return rc;
}

/* Signs an access token for u; 0 or -1. */
static int issue_access(auth_ctx *c, const auth_user *u, char *out, size_t cap) {
    jwt_claims cl = {0};
    snprintf(cl.iss, sizeof cl.iss, "%s", c->issuer);
    cl.sub = u->id;
    cl.tid = u->tenant;
    snprintf(cl.tenant, sizeof cl.tenant, "%s", u->tenant_slug);
    snprintf(cl.role, sizeof cl.role, "%s", auth_role_name(u->role));
    cl.agent = u->agent_id;
    cl.iat = clock_wall_ms() / 1000;
    cl.exp = cl.iat + c->ttl_s;
    return jwt_sign(c->ks, &cl, out, cap) ? 0 : -1;
}

static void reply_tokens(http_req *q, auth_ctx *c, const auth_user *u, const char *refresh, int64_t refresh_s) {
    char tok[JWT_MAX_LEN];
    if (issue_access(c, u, tok, sizeof tok)) {
        http_reply_error(q, 500, "internal", "cannot sign the access token");
        return;
    }
    http_res_header(q, "Cache-Control", "no-store");
    json_t *user = auth_user_json(u);
    json_object_set_new(user, "tenant", json_string(u->tenant_slug));
    http_reply_json(q, 200, json_pack("{s:s, s:s, s:I, s:s, s:I, s:o}", "access_token", tok, "token_type", "Bearer",
                                      "expires_in", (json_int_t)c->ttl_s, "refresh_token", refresh,
                                      "refresh_expires_in", (json_int_t)refresh_s, "user", user));
}

static void login_done(http_req *q, api_job *j) {
    login_state *s = j->extra;
    const char *lv[] = {"ok"};
    if (j->a->auth->m_login) metric_add(j->a->auth->m_login, lv, 1);
    reply_tokens(q, j->a->auth, &s->u, s->refresh, s->refresh_expires);
}

/* The login being limited: what the request said, until the limits let it
 * run (on the loop, or after the Redis check on the pool). */
typedef struct login_req {
    app *a;
    login_state *s;
    char ka[80], ki[80]; /* bucket keys: account (hashed), address */
    size_t na, ni;
    int rc, ok;
    auth_limit_info info[2];
} login_req;

static void login_req_free(login_req *lr) {
    if (!lr) return;
    if (lr->s) {
        if (lr->s->in.password) {
            sodium_memzero(lr->s->in.password, lr->s->in.pwlen);
            eh_free(lr->s->in.password);
        }
        sodium_memzero(lr->s, sizeof *lr->s);
        eh_free(lr->s);
    }
    eh_free(lr);
}

static void login_refused(http_req *q, auth_ctx *c, int oka, const auth_limit_info *ia, const auth_limit_info *ii) {
    const char *lv[] = {"rate_limited"};
    if (c->m_login) metric_add(c->m_login, lv, 1);
    too_many(q, c, oka ? "login_ip" : "login_account", oka ? ii : ia, "too many login attempts; retry later");
}

/* This node's buckets: 1 if the attempt may run (and was counted). */
static int login_limit_local(http_req *q, auth_ctx *c, const login_req *lr) {
    int64_t now = clock_wall_ms();
    auth_limit_info ia, ii;
    int oka = auth_limiter_check(c->lim, lr->ka, lr->na, &c->login_acct, now, 0, &ia);
    int oki = auth_limiter_check(c->lim, lr->ki, lr->ni, &c->login_ip, now, 0, &ii);
    if (!oka || !oki) {
        login_refused(q, c, oka, &ia, &ii);
        return 0;
    }
    auth_limiter_check(c->lim, lr->ka, lr->na, &c->login_acct, now, 1, NULL);
    auth_limiter_check(c->lim, lr->ki, lr->ni, &c->login_ip, now, 1, NULL);
    return 1;
}

/* Past the limits: the password check and the transaction. Takes lr. */
static void login_run(http_req *q, login_req *lr) {
    app *a = lr->a;
    auth_ctx *c = a->auth;
    if (c->logins_inflight >= LOGIN_INFLIGHT) {
        login_req_free(lr);
        http_res_header(q, "Retry-After", "1");
        http_reply_error(q, 503, "busy", "too many logins in progress; retry");
        return;
    }
    api_job *j = api_job_new(a, NULL);
    if (!j) {
        login_req_free(lr);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    login_state *s = lr->s;
    lr->s = NULL;
    login_req_free(lr);
    s->in.ctx = c;
    c->logins_inflight++;
    j->extra = s;
    j->extra_free = admin_in_free; /* login_state starts with admin_in; frees the whole block */
    j->pre = login_pre2;
    j->fn = login_tx;
    j->write = 1;
    j->on_done = login_done;
    api_job_run(q, j);
}

/* --bus redis://: both login buckets in Redis, shared by the nodes (the
 * same script as the request limits: both taken or neither). */
static void login_limit_work(void *arg) {
    login_req *lr = arg;
    auth_ctx *c = lr->a->auth;
    const char *keys[2];
    auth_rate rates[2];
    int n = 0, ia = -1, ii = -1;
    if (c->login_acct.burst > 0) {
        ia = n;
        keys[n] = lr->ka;
        rates[n++] = c->login_acct;
    }
    if (c->login_ip.burst > 0) {
        ii = n;
        keys[n] = lr->ki;
        rates[n++] = c->login_ip;
    }
    auth_limit_info got[2] = {{0}};
    lr->rc = auth_redis_limiter_take(c->shared, n, keys, rates, &lr->ok, got);
    if (ia >= 0) lr->info[0] = got[ia];
    if (ii >= 0) lr->info[1] = got[ii];
}

static void login_limit_done(http_req *q, void *arg) {
    login_req *lr = arg;
    auth_ctx *c = lr->a->auth;
    int go;
    if (lr->rc) {
        /* Redis did not answer: this node's buckets, as for the request limits */
        if (c->m_fallback) metric_add(c->m_fallback, NULL, 1);
        if (!c->shared_down) {
            c->shared_down = 1;
            if (c->m_shared_up) metric_set(c->m_shared_up, NULL, 0);
            log_msg(lr->a->log, LOG_WARN, "rate limits: Redis unreachable, using this node's buckets", NULL);
        }
        go = login_limit_local(q, c, lr);
    } else {
        if (c->shared_down) {
            c->shared_down = 0;
            if (c->m_shared_up) metric_set(c->m_shared_up, NULL, 1);
            log_msg(lr->a->log, LOG_INFO, "rate limits: shared through Redis again", NULL);
        }
        go = lr->ok;
        if (!go) {
            int oka = !(c->login_acct.burst > 0 && lr->info[0].retry_after_s > 0);
            login_refused(q, c, oka, &lr->info[0], &lr->info[1]);
        }
    }
    if (go) login_run(q, lr);
    else login_req_free(lr);
}

static void h_login(http_req *q, void *ud) {
    app *a = ud;
    auth_ctx *c = a->auth;
    json_t *in = body_object(q);
    if (!in) return;
    static const char *const allowed[] = {"tenant", "email", "password", NULL};
    const char *bad = unknown_key(in, allowed);
    const char *slug = json_string_value(json_object_get(in, "tenant"));
    const char *email = json_string_value(json_object_get(in, "email"));
    const char *pw = json_string_value(json_object_get(in, "password"));
    size_t pwlen = pw ? json_string_length(json_object_get(in, "password")) : 0;
    char em[AUTH_EMAIL_MAX + 1];
    if (bad || !slug || !email || !pw || strlen(slug) > 64 || !*slug || auth_email_normalize(email, em) ||
        pwlen == 0 || pwlen > AUTH_PASSWORD_MAX || strlen(pw) != pwlen) {
        json_decref(in);
        reply_422(q, bad ? "unknown field" : "expected {tenant, email, password}");
        return;
    }
    login_req *lr = eh_calloc(1, sizeof *lr);
    login_state *s = lr ? eh_calloc(1, sizeof *s) : NULL;
    char *pwc = s ? eh_malloc(pwlen + 1) : NULL;
    if (!pwc) {
        eh_free(lr);
        eh_free(s);
        json_decref(in);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    memcpy(pwc, pw, pwlen + 1);
    lr->a = a;
    lr->s = s;
    s->in.password = pwc;
    s->in.pwlen = pwlen;
    snprintf(s->in.email, sizeof s->in.email, "%s", em);
    snprintf(s->slug, sizeof s->slug, "%s", slug);
    http_req_client(q, s->in.ip, sizeof s->in.ip);
    json_decref(in); /* the password copy is ours now; jansson's is freed */
    /* The account's bucket is named by a hash of tenant and e-mail: bounded,
     * and no address is written into Redis. */
    unsigned char md[crypto_generichash_BYTES];
    char hex[2 * crypto_generichash_BYTES + 1], acct[340];
    int an = snprintf(acct, sizeof acct, "%s\n%s", s->slug, s->in.email);
    crypto_generichash(md, sizeof md, (const unsigned char *)acct, (size_t)an, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, md, sizeof md);
    lr->na = (size_t)snprintf(lr->ka, sizeof lr->ka, "L:a:%s", hex);
    lr->ni = (size_t)snprintf(lr->ki, sizeof lr->ki, "L:i:%s", s->in.ip);
    if (c->shared && (c->login_acct.burst > 0 || c->login_ip.burst > 0)) {
        if (http_req_work(q, login_limit_work, login_limit_done, lr)) {
            login_req_free(lr);
            http_reply_error(q, 503, "overloaded", "cannot schedule work");
        }
        return;
    }
    if (login_limit_local(q, c, lr)) login_run(q, lr);
    else login_req_free(lr);
}

typedef struct refresh_state {
    admin_in in;
    char token[AUTH_REFRESH_LEN + 1];
    auth_user u;
    char refresh[AUTH_REFRESH_LEN + 1];
    int logout;
} refresh_state;

static int refresh_tx(store_tx *tx, api_job *j, store_err *err) {
    refresh_state *s = j->extra;
    auth_ctx *c = j->a->auth;
    int64_t now = clock_wall_ms();
    auth_refresh r;
    int rc = auth_refresh_find(tx, s->token, &r, err);
    if (rc == STORE_NOTFOUND) {
        if (s->logout) return STORE_OK; /* idempotent */
        return api_job_fail(j, 401, "invalid_token", "unknown refresh token");
    }
    if (rc) return rc;
    char actor[32];
    snprintf(actor, sizeof actor, "user:%lld", (long long)r.user);
    auth_actor who = {actor, s->in.ip[0] ? s->in.ip : NULL};
    if (s->logout) {
        if ((rc = auth_refresh_revoke_all(tx, r.family, 0, 0, now, err))) return rc;
        return auth_audit(tx, r.tenant, &who, "auth.logout", actor, NULL, now, err);
    }
    if (r.revoked_at) {
        /* A token used twice was copied: end the whole session, everywhere. */
        if ((rc = auth_refresh_revoke_all(tx, r.family, 0, 0, now, err))) return rc;
        json_t *d = json_pack("{s:s}", "family", r.family);
        rc = auth_audit(tx, r.tenant, &who, "auth.refresh_reused", actor, d, now, err);
        json_decref(d);
        if (rc) return rc;
        api_job_fail(j, 401, "invalid_token", "refresh token already used; the session is revoked, log in again");
        return STORE_OK;
    }
    if (r.expires_at <= now) return api_job_fail(j, 401, "invalid_token", "refresh token expired; log in again");
    rc = auth_user_get(tx, r.tenant, r.user, &s->u, err);
    if (rc && rc != STORE_NOTFOUND) return rc;
    if (rc == STORE_NOTFOUND || s->u.disabled || s->u.role < 0) {
        if ((rc = auth_refresh_revoke_all(tx, r.family, 0, 0, now, err))) return rc;
        api_job_fail(j, 401, "invalid_token", "the user is disabled or gone");
        return STORE_OK;
    }
    int64_t nid = 0;
    if ((rc = auth_refresh_issue(tx, r.tenant, r.user, r.family, now, c->refresh_ttl_ms, s->refresh, &nid, err)))
        return rc;
    return auth_refresh_revoke(tx, r.id, nid, now, err);
}

static void refresh_done(http_req *q, api_job *j) {
    refresh_state *s = j->extra;
    if (s->logout) {
        http_reply(q, 204, NULL, NULL, 0);
        return;
    }
    reply_tokens(q, j->a->auth, &s->u, s->refresh, j->a->auth->refresh_ttl_ms / 1000);
}

static void refresh_common(http_req *q, app *a, int logout) {
    json_t *in = body_object(q);
    if (!in) return;
    static const char *const allowed[] = {"refresh_token", NULL};
    const char *tok = json_string_value(json_object_get(in, "refresh_token"));
    if (unknown_key(in, allowed) || !tok) {
        json_decref(in);
        reply_422(q, "expected {refresh_token}");
        return;
    }
    if (!auth_refresh_wellformed(tok, strlen(tok))) {
        json_decref(in);
        http_reply_error(q, 401, "invalid_token", "malformed refresh token");
        return;
    }
    api_job *j = api_job_new(a, NULL);
    refresh_state *s = eh_calloc(1, sizeof *s);
    if (!j || !s) {
        eh_free(j);
        eh_free(s);
        json_decref(in);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    memcpy(s->token, tok, AUTH_REFRESH_LEN + 1);
    json_decref(in);
    s->logout = logout;
    http_req_client(q, s->in.ip, sizeof s->in.ip);
    j->extra = s;
    j->extra_free = admin_in_free;
    j->fn = refresh_tx;
    j->write = 1;
    j->on_done = refresh_done;
    api_job_run(q, j);
}

static void h_refresh(http_req *q, void *ud) { refresh_common(q, ud, 0); }
static void h_logout(http_req *q, void *ud) { refresh_common(q, ud, 1); }

/* ---- API keys ---- */

static int key_create_tx(store_tx *tx, api_job *j, store_err *err) {
    admin_in *in = j->extra;
    int rc = auth_key_create(tx, in->name, in->role, in->key, &in->new_id, err);
    if (rc) return rc;
    char target[32], prefix[13];
    snprintf(target, sizeof target, "key:%lld", (long long)in->new_id);
    snprintf(prefix, sizeof prefix, "%.12s", in->key);
    if ((rc = audit(tx, j, "key.create", target, json_pack("{s:s, s:s}", "role", auth_role_name(in->role), "name", in->name), err)))
        return rc;
    j->status = 201;
    snprintf(j->location, sizeof j->location, "/v1/keys/%lld", (long long)in->new_id);
    j->out = json_pack("{s:I, s:s, s:s, s:s, s:s, s:I}", "id", (json_int_t)in->new_id, "name", in->name, "role",
                       auth_role_name(in->role), "prefix", prefix, "key", in->key, "created_at",
                       (json_int_t)clock_wall_ms());
    return STORE_OK;
}

static void key_created(http_req *q, api_job *j) {
    http_res_header(q, "Cache-Control", "no-store");
    http_res_header(q, "Location", j->location);
    json_t *out = j->out;
    j->out = NULL;
    http_reply_json(q, 201, out);
}

static void h_key_create(http_req *q, app *a, const auth_principal *p, void *ud) {
    json_t *in = body_object(q);
    if (!in) return;
    static const char *const allowed[] = {"role", "name", NULL};
    int role = auth_role_parse(json_string_value(json_object_get(in, "role")));
    json_t *nv = json_object_get(in, "name");
    const char *name = nv ? json_string_value(nv) : "api";
    if (unknown_key(in, allowed) || role < 0 || !name || !*name || strlen(name) > 100) {
        json_decref(in);
        reply_422(q, "expected {role: admin|manager|analyst|agent|viewer, name: 1-100 characters}");
        return;
    }
    api_job *j = admin_job(q, a, p, in);
    if (!j) return;
    admin_in *ai = j->extra;
    ai->role = role;
    ai->name = name; /* points into j->in */
    j->fn = key_create_tx;
    j->write = 1;
    j->on_done = key_created;
    api_job_run(q, j);
}

static int key_list_tx(store_tx *tx, api_job *j, store_err *err) {
    json_t *items;
    int rc = auth_key_list(tx, &items, err);
    if (!rc) j->out = json_pack("{s:o}", "items", items);
    return rc;
}

static void h_key_list(http_req *q, app *a, const auth_principal *p, void *ud) {
    api_job *j = admin_job(q, a, p, NULL);
    if (!j) return;
    j->fn = key_list_tx;
    api_job_run(q, j);
}

static int key_revoke_tx(store_tx *tx, api_job *j, store_err *err) {
    int rc = auth_key_revoke(tx, j->id, clock_wall_ms(), err);
    if (rc) return rc;
    char target[32];
    snprintf(target, sizeof target, "key:%lld", (long long)j->id);
    j->status = 204;
    return audit(tx, j, "key.revoke", target, NULL, err);
}

static void key_revoked(http_req *q, api_job *j) {
    /* This node stops accepting it now, not in 30 s. */
    app_key_forget(j->a, j->id);
    http_reply(q, 204, NULL, NULL, 0);
}

static void h_key_revoke(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = path_id(q);
    if (id < 0) return;
    api_job *j = admin_job(q, a, p, NULL);
    if (!j) return;
    j->id = id;
    j->fn = key_revoke_tx;
    j->write = 1;
    j->on_done = key_revoked;
    api_job_run(q, j);
}

/* ---- users ---- */

static int user_hash_pre(api_job *j) {
    admin_in *in = j->extra;
    if (!in->password) return 0;
    int rc = auth_password_hash(in->password, in->pwlen, in->pwhash);
    sodium_memzero(in->password, in->pwlen);
    if (rc) return api_job_fail(j, 503, "overloaded", "cannot hash the password now; retry");
    return 0;
}

static int user_create_tx(store_tx *tx, api_job *j, store_err *err) {
    admin_in *in = j->extra;
    int64_t now = clock_wall_ms(), id = 0;
    int rc = auth_user_create(tx, in->email, in->role, in->pwhash, in->agent_id, now, &id, err);
    if (rc == STORE_INVALID) return api_job_fail(j, 422, "validation_failed", "agent_id: no such agent");
    if (rc == STORE_CONFLICT) return api_job_fail(j, 409, "conflict", "a user with this e-mail exists");
    if (rc) return rc;
    auth_user u;
    if ((rc = auth_user_get(tx, store_tx_tenant(tx), id, &u, err))) return rc;
    char target[32];
    snprintf(target, sizeof target, "user:%lld", (long long)id);
    if ((rc = audit(tx, j, "user.create", target, json_pack("{s:s, s:s}", "email", u.email, "role", auth_role_name(u.role)), err)))
        return rc;
    j->out = auth_user_json(&u);
    j->status = 201;
    snprintf(j->location, sizeof j->location, "/v1/users/%lld", (long long)id);
    return STORE_OK;
}

/* Reads the user fields of a POST/PATCH body into in; NULL or the problem. */
static const char *user_fields(json_t *body, admin_in *in, int creating) {
    static const char *const allowed[] = {"email", "role", "password", "agent_id", "disabled", NULL};
    if (unknown_key(body, allowed)) return "unknown field (email, role, password, agent_id, disabled)";
    json_t *v;
    if ((v = json_object_get(body, "email"))) {
        if (!json_is_string(v) || auth_email_normalize(json_string_value(v), in->email)) return "email: not an e-mail address";
    } else if (creating) return "email is required";
    if ((v = json_object_get(body, "role"))) {
        if ((in->role = auth_role_parse(json_string_value(v))) < 0) return "role: admin, manager, analyst, agent or viewer";
    } else if (creating) return "role is required";
    if ((v = json_object_get(body, "password"))) {
        if (!json_is_string(v)) return "password: a string";
        const char *pw = json_string_value(v);
        size_t n = json_string_length(v);
        const char *why = strlen(pw) != n ? "not valid UTF-8" : auth_password_problem(pw, n);
        if (why) return why[0] == 'a' ? "password: 8-1024 bytes" : "password: no control characters, valid UTF-8";
        if (!(in->password = eh_malloc(n + 1))) return "out of memory";
        memcpy(in->password, pw, n + 1);
        in->pwlen = n;
    } else if (creating) return "password is required";
    if ((v = json_object_get(body, "agent_id"))) {
        in->set_agent = 1;
        if (json_is_null(v)) in->agent_id = 0;
        else if (!json_is_integer(v) || json_integer_value(v) <= 0) return "agent_id: an agent id or null";
        else in->agent_id = json_integer_value(v);
    }
    if ((v = json_object_get(body, "disabled"))) {
        if (!json_is_boolean(v)) return "disabled: true or false";
        in->disabled = json_is_true(v);
    }
    return NULL;
}

static void h_user_create(http_req *q, app *a, const auth_principal *p, void *ud) {
    json_t *in = body_object(q);
    if (!in) return;
    api_job *j = admin_job(q, a, p, in);
    if (!j) return;
    const char *why = user_fields(in, j->extra, 1);
    if (!why && ((admin_in *)j->extra)->disabled == 1) why = "disabled: create the user, then disable it";
    if (why) {
        reply_422(q, why);
        admin_in_free(j->extra);
        json_decref(j->in);
        eh_free(j);
        return;
    }
    /* The body holds the password: drop it before the job travels. */
    json_decref(j->in);
    j->in = NULL;
    j->pre = user_hash_pre;
    j->fn = user_create_tx;
    j->write = 1;
    api_job_run(q, j);
}

static int user_get_tx(store_tx *tx, api_job *j, store_err *err) {
    auth_user u;
    int rc = auth_user_get(tx, store_tx_tenant(tx), j->id, &u, err);
    if (!rc) j->out = auth_user_json(&u);
    return rc;
}

static void h_user_get(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = path_id(q);
    if (id < 0) return;
    api_job *j = admin_job(q, a, p, NULL);
    if (!j) return;
    j->id = id;
    j->fn = user_get_tx;
    api_job_run(q, j);
}

static int user_list_tx(store_tx *tx, api_job *j, store_err *err) {
    json_t *items;
    int64_t next;
    int rc = auth_user_list(tx, j->id2, (int)j->version, &items, &next, err);
    if (!rc) j->out = page(items, next);
    return rc;
}

static void h_user_list(http_req *q, app *a, const auth_principal *p, void *ud) {
    int limit;
    int64_t cursor;
    if (query_limit(q, &limit, &cursor)) return;
    api_job *j = admin_job(q, a, p, NULL);
    if (!j) return;
    j->id2 = cursor;
    j->version = limit;
    j->fn = user_list_tx;
    api_job_run(q, j);
}

static int user_patch_tx(store_tx *tx, api_job *j, store_err *err) {
    admin_in *in = j->extra;
    int64_t now = clock_wall_ms();
    auth_user u;
    int rc = auth_user_get(tx, store_tx_tenant(tx), j->id, &u, err);
    if (rc) return rc;
    json_t *fields = json_array();
    store_val v[] = {SV_I(j->id), SV_I(now), SV_NULLV};
    const char *sql = NULL;
#define SET(col, val)                                                                  \
    do {                                                                               \
        v[2] = (val);                                                                  \
        sql = "UPDATE users SET " col " = $3, updated_at = $2 WHERE id = $1";          \
        if ((rc = store_query(tx, sql, v, 3, NULL, err))) goto out;                    \
        json_array_append_new(fields, json_string(col));                               \
    } while (0)
    if (in->email[0] && strcmp(in->email, u.email)) SET("email", SV_S(in->email));
    if (in->role >= 0 && in->role != u.role) SET("role", SV_S(auth_role_name(in->role)));
    if (in->password) SET("password_hash", SV_S(in->pwhash));
    if (in->set_agent && in->agent_id != u.agent_id) {
        if (in->agent_id) {
            store_rows *r = NULL;
            store_val av[] = {SV_I(in->agent_id), SV_I(store_tx_tenant(tx))};
            rc = store_query(tx, "SELECT 1 FROM agents WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL", av, 2,
                             &r, err);
            int found = rc == STORE_OK && store_rows_count(r) > 0;
            store_rows_free(r);
            if (rc) goto out;
            if (!found) {
                rc = api_job_fail(j, 422, "validation_failed", "agent_id: no such agent");
                goto out;
            }
        }
        SET("agent_id", in->agent_id ? SV_I(in->agent_id) : SV_NULLV);
    }
    if (in->disabled >= 0 && in->disabled != u.disabled) SET("disabled", SV_I(in->disabled));
#undef SET
    /* Disabling or a new password ends the user's sessions: refresh fails
     * from now on, and access tokens already out expire within --jwt-ttl. */
    if (in->disabled == 1 || in->password)
        if ((rc = auth_refresh_revoke_all(tx, NULL, store_tx_tenant(tx), j->id, now, err))) goto out;
    if (json_array_size(fields)) {
        char target[32];
        snprintf(target, sizeof target, "user:%lld", (long long)j->id);
        if ((rc = audit(tx, j, "user.update", target, json_pack("{s:O}", "fields", fields), err))) goto out;
    }
    if ((rc = auth_user_get(tx, store_tx_tenant(tx), j->id, &u, err))) goto out;
    j->out = auth_user_json(&u);
out:
    json_decref(fields);
    if (rc == STORE_CONFLICT) return api_job_fail(j, 409, "conflict", "a user with this e-mail exists");
    return rc;
}

static void h_user_patch(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = path_id(q);
    if (id < 0) return;
    json_t *in = body_object(q);
    if (!in) return;
    api_job *j = admin_job(q, a, p, in);
    if (!j) return;
    const char *why = user_fields(in, j->extra, 0);
    if (why) {
        reply_422(q, why);
        admin_in_free(j->extra);
        json_decref(j->in);
        eh_free(j);
        return;
    }
    json_decref(j->in);
    j->in = NULL;
    j->id = id;
    j->pre = user_hash_pre;
    j->fn = user_patch_tx;
    j->write = 1;
    api_job_run(q, j);
}

static int user_delete_tx(store_tx *tx, api_job *j, store_err *err) {
    auth_user u;
    int rc = auth_user_get(tx, store_tx_tenant(tx), j->id, &u, err);
    if (rc) return rc;
    store_val v[] = {SV_I(j->id), SV_I(store_tx_tenant(tx))};
    if ((rc = store_query(tx, "DELETE FROM refresh_tokens WHERE user_id = $1 AND tenant_id = $2", v, 2, NULL, err)))
        return rc;
    if ((rc = store_query(tx, "DELETE FROM users WHERE id = $1 AND tenant_id = $2", v, 2, NULL, err))) return rc;
    char target[32];
    snprintf(target, sizeof target, "user:%lld", (long long)j->id);
    j->status = 204;
    return audit(tx, j, "user.delete", target, json_pack("{s:s}", "email", u.email), err);
}

static void h_user_delete(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = path_id(q);
    if (id < 0) return;
    api_job *j = admin_job(q, a, p, NULL);
    if (!j) return;
    j->id = id;
    j->fn = user_delete_tx;
    j->write = 1;
    api_job_run(q, j);
}

/* ---- audit ---- */

static int audit_list_tx(store_tx *tx, api_job *j, store_err *err) {
    json_t *items;
    int64_t next;
    int rc = auth_audit_list(tx, j->id2, (int)j->version, &items, &next, err);
    if (!rc) j->out = page(items, next);
    return rc;
}

static void h_audit(http_req *q, app *a, const auth_principal *p, void *ud) {
    int limit;
    int64_t cursor;
    if (query_limit(q, &limit, &cursor)) return;
    api_job *j = admin_job(q, a, p, NULL);
    if (!j) return;
    j->id2 = cursor;
    j->version = limit;
    j->fn = audit_list_tx;
    api_job_run(q, j);
}

/* ---- registration ---- */

static const http_route_doc d_login = {
    "Log in with tenant, e-mail and password: an access token (JWT, EdDSA) and a refresh token. "
    "Limited per account and per client address (429 + Retry-After)",
    "auth", "{tenant, email, password}",
    "{access_token, token_type, expires_in, refresh_token, refresh_expires_in, user}"};
static const http_route_doc d_refresh = {
    "Trade a refresh token for new tokens (rotation: the old one is revoked; presenting a revoked one revokes its "
    "whole session)", "auth", "{refresh_token}", "as login"};
static const http_route_doc d_logout = {"Revoke a refresh token's session", "auth", "{refresh_token}", "204"};
static const http_route_doc d_key_create = {"Create an API key (shown once)", "keys", "{role, name}",
                                            "{id, name, role, prefix, key, created_at}"};
static const http_route_doc d_key_list = {"The tenant's API keys (never the keys themselves)", "keys", NULL,
                                          "{items:[{id, name, prefix, role, created_at, last_used_at, revoked_at}]}"};
static const http_route_doc d_key_revoke = {"Revoke an API key", "keys", NULL, "204"};
static const http_route_doc d_user_create = {"Create a user", "users", "{email, role, password, agent_id?}",
                                             "the user"};
static const http_route_doc d_user_list = {"The tenant's users (?limit, ?cursor)", "users", NULL,
                                           "{items, next_cursor}"};
static const http_route_doc d_user_get = {"One user", "users", NULL, "{id, email, role, agent_id, disabled, ...}"};
static const http_route_doc d_user_patch = {
    "Change a user: email, role, password, agent_id, disabled (disabling or a new password ends its sessions)",
    "users", "fields to change", "the user"};
static const http_route_doc d_user_delete = {"Delete a user (and its sessions)", "users", NULL, "204"};
static const http_route_doc d_audit = {"The tenant's audit trail, newest first (?limit, ?cursor)", "audit", NULL,
                                       "{items:[{seq, time, actor, action, target, ip, detail, hash}], next_cursor}"};

static int rate(const char *name, const char *val, auth_rate *r, logger *log) {
    if (auth_rate_parse(val, r) == 0) return 0;
    log_line l;
    if (log_begin(log, &l, LOG_ERROR, "invalid rate (N/s, N/m, N/h or off)")) {
        log_str(&l, "option", name);
        log_str(&l, "value", val);
        log_end(&l);
    }
    return -1;
}

int auth_api_register(app *a) {
    const ehub_config *cfg = &a->cfg;
    auth_ctx *c = eh_calloc(1, sizeof *c);
    if (!c) return -1;
    a->auth = c;
    char err[512];
    if (!(c->ks = auth_jwt_keys_load(cfg, err, sizeof err))) {
        log_msg(a->log, LOG_ERROR, "cannot load the JWT keys", err);
        return -1;
    }
    if (!(c->lim = auth_limiter_new(LIMITER_SLOTS))) return -1;
    if (rate("login-limit-account", cfg->login_limit_account, &c->login_acct, a->log) ||
        rate("login-limit-ip", cfg->login_limit_ip, &c->login_ip, a->log) ||
        rate("rate-limit-principal", cfg->rate_limit_principal, &c->principal, a->log) ||
        rate("rate-limit-tenant", cfg->rate_limit_tenant, &c->tenant, a->log))
        return -1;
    snprintf(c->issuer, sizeof c->issuer, "%s", cfg->jwt_issuer);
    for (const char *p = c->issuer; *p; p++)
        if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\') c->issuer[0] = 0;
    if (!c->issuer[0]) {
        log_msg(a->log, LOG_ERROR, "invalid --jwt-issuer", "1-63 printable ASCII characters without quotes or spaces");
        return -1;
    }
    c->ttl_s = cfg->jwt_ttl_ms / 1000 ? cfg->jwt_ttl_ms / 1000 : 1;
    c->leeway_s = cfg->jwt_leeway_ms / 1000;
    c->refresh_ttl_ms = cfg->refresh_ttl_ms ? cfg->refresh_ttl_ms : 1000;
    c->m_login = metrics_counter(a->m, "ehub_auth_logins_total", "login attempts answered", "result");
    c->m_limited = metrics_counter(a->m, "ehub_rate_limited_total", "requests refused by a rate limit", "scope");
    if (!strncmp(cfg->bus, "redis://", 8) && (c->principal.burst > 0 || c->tenant.burst > 0 ||
                                              c->login_acct.burst > 0 || c->login_ip.burst > 0)) {
        if (!(c->shared = auth_redis_limiter_new(cfg->bus, "ehub:rl:", err, sizeof err))) {
            log_msg(a->log, LOG_ERROR, "rate limits: bad --bus URL", err);
            return -1;
        }
        c->m_fallback = metrics_counter(a->m, "ehub_rate_limit_fallbacks_total",
                                        "requests limited by this node's buckets because Redis did not answer", NULL);
        c->m_shared_up = metrics_gauge(a->m, "ehub_rate_limit_shared", "1 while the rate limits are shared through Redis",
                                       NULL);
        if (c->m_shared_up) metric_set(c->m_shared_up, NULL, 1);
    }
    log_line l;
    if (log_begin(a->log, &l, LOG_INFO, "jwt keys loaded")) {
        log_str(&l, "signing_kid", jwt_keyset_kid(c->ks, 0));
        log_int(&l, "keys", jwt_keyset_count(c->ks));
        log_bool(&l, "hs256", cfg->jwt_hs256_secret_file[0] != 0);
        log_end(&l);
    }

    http_router *r = a->router;
    int rc = http_router_add(r, "POST", "/v1/auth/login", h_login, a, HTTP_ROUTE_PUBLIC, &d_login);
    rc |= http_router_add(r, "POST", "/v1/auth/refresh", h_refresh, a, HTTP_ROUTE_PUBLIC, &d_refresh);
    rc |= http_router_add(r, "POST", "/v1/auth/logout", h_logout, a, HTTP_ROUTE_PUBLIC, &d_logout);
    rc |= app_route(a, "POST", "/v1/keys", h_key_create, NULL, ROLE_ADMIN, &d_key_create);
    rc |= app_route(a, "GET", "/v1/keys", h_key_list, NULL, ROLE_ADMIN, &d_key_list);
    rc |= app_route(a, "DELETE", "/v1/keys/{id}", h_key_revoke, NULL, ROLE_ADMIN, &d_key_revoke);
    rc |= app_route(a, "POST", "/v1/users", h_user_create, NULL, ROLE_ADMIN, &d_user_create);
    rc |= app_route(a, "GET", "/v1/users", h_user_list, NULL, ROLE_ADMIN, &d_user_list);
    rc |= app_route(a, "GET", "/v1/users/{id}", h_user_get, NULL, ROLE_ADMIN, &d_user_get);
    rc |= app_route(a, "PATCH", "/v1/users/{id}", h_user_patch, NULL, ROLE_ADMIN, &d_user_patch);
    rc |= app_route(a, "DELETE", "/v1/users/{id}", h_user_delete, NULL, ROLE_ADMIN, &d_user_delete);
    rc |= app_route(a, "GET", "/v1/audit", h_audit, NULL, ROLE_ADMIN, &d_audit);
    return rc ? -1 : 0;
}
