/* app — the server context: everything a running ehub owns (event loop,
 * configuration, logger, metrics, storage, router, HTTP server), created in
 * app_init, passed to every handler through the router's user data, and torn
 * down in app_free. There is no other process-wide state. */
#ifndef EH_APP_H
#define EH_APP_H

#include <uv.h>

#include "auth/auth.h"
#include "base/config.h"
#include "base/log.h"
#include "base/metrics.h"
#include "http/http.h"
#include "leads/leads.h"
#include "store/store.h"

#define EHUB_VERSION "0.1.0"

typedef struct key_cache key_cache;
typedef struct route_entry route_entry;
typedef struct leads_ctx leads_ctx;
typedef struct ml_ctx ml_ctx;
typedef struct score_ctx score_ctx;
typedef struct nurture_ctx nurture_ctx;
typedef struct auth_ctx auth_ctx;
typedef struct coach_ctx coach_ctx;
typedef struct rt_hub rt_hub;
typedef struct llm llm;
typedef struct privacy_ctx privacy_ctx;
typedef struct web_ctx web_ctx;
typedef struct app_posts app_posts;

typedef struct app {
    uv_loop_t *loop;
    ehub_config cfg;
    logger *log;
    metrics *m;
    store *st;
    http_router *router;
    http_server *srv;
    metric *m_store_lat, *m_store_err;
    metric *m_store_batch;  /* SQLite group commits: write transactions in each */
    char *openapi;  /* /openapi.json, built once after all routes are registered */
    size_t openapi_len;
    uv_signal_t sig_term, sig_int;
    key_cache *keys;       /* API-key lookups, loop thread only */
    route_entry **routes;  /* guarded routes' handlers and roles */
    int nroutes, caproutes;
    metric *m_auth_fail;
    leads_ctx *leads;      /* webhook tenant cache and keys (leads module) */
    ml_ctx *ml;            /* models served (ml module) */
    score_ctx *score;      /* tenants' built-in models (score module) */
    leads_domain domain;   /* the store's context: what domain code in a transaction reaches (score, coach) */
    nurture_ctx *nurture;  /* the nurture dispatcher (nurture module) */
    auth_ctx *auth;        /* JWT keys, login and rate limits (src/auth/api.c) */
    coach_ctx *coach;      /* coaching lexicon, cues and default playbook (coach module) */
    rt_hub *rt;            /* realtime feed and event bus (realtime module) */
    llm *llm;              /* the coaching drafts' LLM provider, NULL if off (src/llm) */
    int llm_inflight;      /* drafts being written (loop thread) */
    metric *m_llm;         /* ehub_llm_requests_total{result} */
    struct coach_drafts *drafts; /* drafts for inbound messages' coaching, NULL without a provider (src/coach/draft.c) */
    privacy_ctx *privacy;  /* retention scheduler (src/privacy) */
    web_ctx *web;          /* the dashboard's files (web module) */
    app_posts *posts;      /* work handed back to the loop (app_post, src/app/post.c) */
    int stopping;
    int exit_code;
} app;

/* Opens storage (applying migrations unless cfg->no_migrate), builds the
 * router and the server. Does not listen. Returns 0, or -1 after logging why
 * (the app is then safe to app_free). */
int app_init(app *a, uv_loop_t *loop, const ehub_config *cfg, logger *log);
/* Listens and runs the loop until SIGTERM/SIGINT and a graceful shutdown. */
int app_run(app *a);
void app_free(app *a);

/* Creates the demo tenant with sample agents, listings (demo/
 * sacramento.csv beside the binary's build/ directory) and leads if
 * missing, trains its property_value model on those listings, and makes a
 * fresh admin API key for this run (key_out). Blocking; call before
 * app_run. */
int app_demo_seed(app *a, char key_out[AUTH_KEY_LEN + 1]);
/* The demo's users, one per role (the agent is linked to Sofia Reyes), all
 * with one password per run: EHUB_DEMO_PASSWORD, or 12 random characters.
 * app_demo_users_seed creates them, or resets them to this run's password
 * (revoking their sessions), and fills password_out. */
#define DEMO_USERS 5
#define DEMO_PASSWORD_LEN 12
typedef struct demo_user {
    const char *email, *role, *agent_email;
} demo_user;
extern const demo_user demo_users[DEMO_USERS];
void demo_password(char out[DEMO_PASSWORD_LEN + 1]);
int demo_users_seed(store *st, int64_t tenant, const char *password, store_err *err);
int app_demo_users_seed(app *a, char *password_out, size_t len);
/* The sample data itself (src/app/demo.c). created: the tenant is new.
 * listings_csv: Sacramento.csv-shaped listings to add (NULL or missing:
 * only the built-in few). */
int demo_data_seed(store *st, int64_t tenant, int created, const char *listings_csv,
                   char key_out[AUTH_KEY_LEN + 1], store_err *err);

/* ---- authenticated routes ----
 * app_route registers a route that only principals with one of `roles` may
 * call: the guard reads `Authorization: Bearer <key or JWT>` (or
 * `X-API-Key`); an API key is resolved in storage (cached for 30 s on the
 * loop thread; revocation on this node takes effect at once), an access
 * token is verified locally (src/auth/jwt.c). It answers 401/403/429
 * itself (rate limits: auth_ctx_admit), and otherwise calls fn with the
 * principal. Public routes use http_router_add with HTTP_ROUTE_PUBLIC. */
typedef void (*api_handler)(http_req *q, app *a, const auth_principal *p, void *ud);
int app_route(app *a, const char *method, const char *pattern, api_handler fn, void *ud, int roles,
              const http_route_doc *doc);
/* The same with router flags, e.g. HTTP_ROUTE_STREAM: the guard then runs
 * when the headers are in, before any of the body is read. */
int app_route_flags(app *a, const char *method, const char *pattern, api_handler fn, void *ud, int roles,
                    int flags, const http_route_doc *doc);
void app_routes_free(app *a);
/* Forgets a cached key (after revocation). */
void app_key_forget(app *a, int64_t key_id);
/* The same key resolution for callers that are not routes (WebSocket auth
 * messages). app_req_key: the key a request presents (Authorization: Bearer
 * or X-API-Key), or NULL. app_key_cached (loop thread): -1 if key is
 * malformed (or an access token that does not verify); 1 with *p if it is
 * cached or a valid access token (JWT, checked locally); 0 if it must be
 * looked up (hash filled). app_is_access_token: the credential is a JWT,
 * not an API key. app_key_lookup (thread pool; blocking): STORE_OK with *p,
 * STORE_NOTFOUND for an unknown or revoked key, or a store error.
 * app_key_remember (loop thread): caches a looked-up key. */
const char *app_req_key(http_req *q);
int app_is_access_token(const char *key);
int app_key_cached(app *a, const char *key, char hash[AUTH_HASH_HEX], auth_principal *p);
int app_key_lookup(app *a, const char *hash, auth_principal *p, store_err *err);
void app_key_remember(app *a, const char *hash, const auth_principal *p);

/* ---- running storage work for a request ----
 * A job carries what a handler parsed on the loop thread to a function that
 * runs inside a store transaction on the pool, and the result back. Fill in
 * fn, write, and inputs; api_job_run schedules it and replies: with j->out
 * (status j->status, default 200) on success, with j->code/j->msg if fn
 * called api_job_fail, or with a status mapped from the store error. The job
 * and everything it owns (in, out, extra via extra_free) is freed after. */
/* ---- the audit of writes ----
 * Every write a principal makes through an app_route route is appended to
 * the tenant's audit trail in the transaction that makes it: actor,
 * action "METHOD pattern" ("PATCH /v1/leads/{id}"), target from the path
 * ids ("lead:5"; a create without one: from the Location it answers), the
 * client address (http_req_client) and a detail without personal data:
 * the names of the body's top-level fields (never their values) and the
 * status. api_job_run does this for every write job by itself; a route
 * that writes without an api_job uses these three directly.
 * app_write_audit_new (loop thread): NULL unless the request is a POST,
 * PUT, PATCH or DELETE by a principal (or out of memory). body: the parsed
 * request body, or NULL to look at the raw body. app_write_audit_append
 * (inside the write's transaction, any thread): status is the answer's;
 * location may be NULL; extra (borrowed, may be NULL) is merged into the
 * detail and must hold no personal data. */
typedef struct app_write_audit app_write_audit;
app_write_audit *app_write_audit_new(http_req *q, const auth_principal *p, json_t *body);
int app_write_audit_append(store_tx *tx, const app_write_audit *w, int status, const char *location, json_t *extra,
                           store_err *err);
void app_write_audit_free(app_write_audit *w);
/* For a write that is not a store transaction (a model file written on the
 * pool): appends the entry in a transaction of its own, right after it
 * (blocking; thread pool). */
int app_write_audit_commit(app *a, int64_t tenant, const app_write_audit *w, int status, json_t *extra,
                           store_err *err);
/* Exposed for the unit tests: the audit target of a route pattern with its
 * path values (vals[i] for the i-th {param}), e.g. "lead:5" or
 * "lead:5,activity:9"; "" if the pattern has no params. */
void app_audit_target(const char *pattern, const char *const *vals, int nvals, char *out, size_t outlen);
/* The names of a JSON object's fields for a detail: at most 32 names that
 * look like field names ([A-Za-z0-9_.-], 1-64 bytes), sorted; anything else
 * is only counted. Returns {"fields":[...]} plus "other_fields": n when
 * some were left out, or {"items": n} for an array. New reference. */
json_t *app_audit_fields(const json_t *body);

typedef struct api_job api_job;
struct api_job {
    app *a;
    auth_principal p;
    int write;
    int (*fn)(store_tx *tx, api_job *j, store_err *err);
    /* Optional: runs on the pool before the transaction, for slow work that
     * must not hold it (password hashing). Non-zero (api_job_fail) skips fn. */
    int (*pre)(api_job *j);
    /* Optional: runs on the pool after fn's transaction committed, for work
     * that cannot run inside one (the purge after an erasure); may add to
     * out. */
    void (*post)(api_job *j);
    int64_t tenant;       /* defaults to p.tenant */
    json_t *in;           /* parsed request body, may be NULL */
    int64_t id, id2;      /* path ids */
    int64_t version;      /* If-Match, 0 if absent */
    void *extra;
    void (*extra_free)(void *);
    /* Replies instead of the JSON default when fn succeeded (e.g. CSV). */
    void (*on_done)(http_req *q, api_job *j);
    /* results */
    int status;
    json_t *out;
    char etag[48];
    char location[128];
    char code[48];
    char msg[256];
    json_t *details;      /* optional {"field": "problem"} for 422 */
    /* Set by a write fn that appended its own, more precise audit entry
     * (key.create, user.update...): then no generic one is added. */
    int audited;
    app_write_audit *wa;  /* filled by api_job_run for writes */
    int fail_status;
    int rc;
    store_err err;
};
api_job *api_job_new(app *a, const auth_principal *p);
/* The same for a handler: answers 503 itself when it returns NULL. */
api_job *api_job_for(http_req *q, app *a, const auth_principal *p);
void api_job_run(http_req *q, api_job *j);
/* Inside fn: records an error answer and returns STORE_ABORTED (return it). */
int api_job_fail(api_job *j, int status, const char *code, const char *msg);
/* Parses a positive decimal id; -1 if invalid. */
int64_t api_parse_id(const char *s);
/* Parses If-Match ("3", "\"v3\"", W/"v3"); 0 if absent, -1 if malformed. */
int64_t api_if_match(http_req *q);

/* ---- handing work back to the loop ----
 * app_post (any thread) runs it->fn(it) on the loop thread soon after; the
 * item is the caller's (embed it in its job) and is not touched by the app
 * once fn starts. Items posted close together run in one wake-up of the
 * loop, in posting order. Returns 0, or -1 once the app has stopped taking
 * them (shutdown, after the HTTP server drained): then fn never runs.
 * app_posts_start / app_posts_stop (loop thread) open and close the
 * channel; stop runs what is still queued. */
typedef struct app_post_item app_post_item;
struct app_post_item {
    app_post_item *next;
    void (*fn)(app_post_item *it);
};
int app_post(app *a, app_post_item *it);
int app_posts_start(app *a);
void app_posts_stop(app *a);

/* Route registration, one function per module. */
int api_system_register(app *a);
int leads_api_register(app *a);
int leads_ghl_register(app *a);
int leads_import_register(app *a);
int leads_settings_register(app *a);
leads_ctx *leads_ctx_new(void);
void leads_ctx_free(leads_ctx *c);
/* Drops a tenant's cached webhook settings (after they change). */
void leads_ctx_forget(leads_ctx *c, const char *slug);
/* Users, login, tokens, API keys, audit (src/auth/api.c): creates a->auth
 * (loading the JWT keys; -1 after logging why) and registers the routes. */
int auth_api_register(app *a);
void auth_ctx_free(auth_ctx *c);
/* For the route guard: verifies a bearer JWT locally into *p; 0, or -1 with
 * a reason for the client in *why. */
int auth_ctx_jwt(app *a, const char *tok, size_t n, auth_principal *p, const char **why);
/* For the route guard: applies the per-principal and per-tenant rate limits
 * and sets the RateLimit-* headers. 1 to go on now; 0 once it answered 429,
 * or when the buckets are in Redis (--bus redis://): then the check runs on
 * the pool and go(q, ud, p) is called on the loop if the request may pass. */
int auth_ctx_admit(app *a, http_req *q, const auth_principal *p,
                   void (*go)(http_req *q, void *ud, const auth_principal *p), void *ud);
/* Builds a->openapi from the router. */
int api_openapi_build(app *a);

#endif
