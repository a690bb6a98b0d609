/* POST /v1/webhooks/ghl/{tenant}: GoHighLevel marketplace webhooks.
 *
 * Order of work, on the thread pool: resolve the tenant (cached), check the
 * signature over the raw body (Ed25519 x-ghl-signature, or legacy RSA
 * x-wh-signature; or a shared token for unsigned workflow "custom webhook"
 * actions when the tenant chose that mode), check freshness, then one
 * transaction that stores the body in the inbox (its primary key makes a
 * replay a no-op) and applies the event to leads, activities and
 * opportunities with their events. Only after that commit is durable does
 * GoHighLevel get its 200. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "app/app.h"
#include "auth/auth.h"
#include "auth/sig.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "leads.h"
#include "nurture/nurture.h"
#include "score/score.h"

#define FRESHNESS_MS (5 * 60 * 1000)
#define CACHE_TTL_MS 30000
/* the largest body checked on the loop (see h_ghl): parsing 8 KiB of JSON
 * takes ~50 us; GHL's contact events are 1-2 KiB */
#define GHL_INLINE_MAX 8192
#define TENANT_SLOTS 256

typedef struct tenant_slot {
    char slug[65];
    int64_t id;
    int token_mode;
    char token_hash[65];
    char country[4];
    sig_key *ed, *rsa;
    int64_t expires;
} tenant_slot;

/* Loaded public keys, by PEM text. Append-only and freed with the
 * context, so a key handed to a verifying thread can never be freed under
 * it; there are only as many entries as distinct keys ever configured. */
typedef struct key_entry {
    struct key_entry *next;
    char *pem;
    sig_key *key;
} key_entry;

struct leads_ctx {
    pthread_mutex_t mu;
    tenant_slot slot[TENANT_SLOTS];
    key_entry *keys;
};

leads_ctx *leads_ctx_new(void) {
    leads_ctx *c = eh_calloc(1, sizeof *c);
    if (c) pthread_mutex_init(&c->mu, NULL);
    return c;
}

void leads_ctx_free(leads_ctx *c) {
    if (!c) return;
    for (key_entry *k = c->keys, *next; k; k = next) {
        next = k->next;
        sig_key_free(k->key);
        eh_free(k->pem);
        eh_free(k);
    }
    pthread_mutex_destroy(&c->mu);
    eh_free(c);
}

void leads_ctx_forget(leads_ctx *c, const char *slug) {
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < TENANT_SLOTS; i++)
        if (strcmp(c->slot[i].slug, slug) == 0) c->slot[i].expires = 0;
    pthread_mutex_unlock(&c->mu);
}

/* The loaded key for pem (loading it once); NULL if it does not load. */
static sig_key *key_for(leads_ctx *c, const char *pem) {
    pthread_mutex_lock(&c->mu);
    for (key_entry *k = c->keys; k; k = k->next)
        if (strcmp(k->pem, pem) == 0) {
            pthread_mutex_unlock(&c->mu);
            return k->key;
        }
    pthread_mutex_unlock(&c->mu);
    sig_key *key = NULL;
    char err[128];
    if (sig_key_load(pem, strlen(pem), &key, err, sizeof err) != SIG_OK) return NULL;
    key_entry *e = eh_calloc(1, sizeof *e);
    if (!e || !(e->pem = eh_strdup(pem))) {
        eh_free(e);
        sig_key_free(key);
        return NULL;
    }
    e->key = key;
    pthread_mutex_lock(&c->mu);
    for (key_entry *k = c->keys; k; k = k->next)
        if (strcmp(k->pem, pem) == 0) { /* another thread loaded it meanwhile */
            pthread_mutex_unlock(&c->mu);
            sig_key_free(key);
            eh_free(e->pem);
            eh_free(e);
            return k->key;
        }
    e->next = c->keys;
    c->keys = e;
    pthread_mutex_unlock(&c->mu);
    return key;
}

static unsigned slug_hash(const char *s) {
    unsigned h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h % TENANT_SLOTS;
}

/* ---- the job ---- */

typedef struct ghl_job ghl_job;

/* A GHL contact payload as lead values (contact_parse). Fields GHL got
 * wrong (an unparseable phone, say) are dropped, not fatal: the event is
 * still stored, and the drop is reported in the lead event. Pure work (no
 * storage), so the receiver does it on the pool before queueing the
 * transaction: the writer, which every write waits for, does not. */
typedef struct contact_vals {
    json_t *in; /* the lead input; v's strings point into it */
    ent_vals v;
    int ok;     /* 0: nothing usable in it */
    /* the rest of the payload the transaction reads (contact_apply), so
     * the payload itself can be freed by the thread that parsed it */
    char *assigned_to, *evidence;
} contact_vals;


typedef struct apply_args {
    ghl_job *j;
    json_t *p; /* normalised payload */
    const char *country;
} apply_args;

struct ghl_job {
    app_post_item post; /* the write's outcome, handed to the loop */
    app *a;
    char slug[65];
    char *body;
    size_t len;
    char sig_ed[SIG_SIG_B64_MAX + 1];
    char sig_rsa[SIG_SIG_B64_MAX + 1];
    char token[129];
    int have_ed, have_rsa, have_token;
    /* result */
    int status;
    char code[40];
    char msg[200];
    int duplicate, stored_only;
    char type[65];
    char webhook_id[129];
    int64_t tenant;
    store_err err;
    /* the write, queued without a thread waiting for its COMMIT */
    apply_args aa;
    char country[4];
    /* the body's hash outlives the body (erasure, retention) so the audit
     * checkpoints covering its inbox row stay verifiable (src/auth/audit.c);
     * hashed here, not on the writer, which every write waits for */
    char body_hash[AUTH_HASH_HEX];
    contact_vals cv; /* ContactCreate / ContactUpdate, parsed on the pool (cv.in set) */
    int attempt;
    /* loop thread: what must still happen before the answer (ghl_done,
     * and ghl_posted when the write was queued); the request meanwhile */
    int waits;
    http_req *q;
};

static void fail(ghl_job *j, int status, const char *code, const char *msg) {
    j->status = status;
    snprintf(j->code, sizeof j->code, "%s", code);
    snprintf(j->msg, sizeof j->msg, "%s", msg);
}

typedef struct tenant_load {
    const char *slug;
    int64_t id;
    tenant_settings ts;
} tenant_load;

static int tenant_tx(store_tx *tx, void *arg, store_err *err) {
    tenant_load *t = arg;
    int rc = store_tenant_find(tx, t->slug, &t->id, err);
    if (rc) return rc;
    return STORE_OK;
}

static int settings_tx(store_tx *tx, void *arg, store_err *err) {
    return leads_settings_load(tx, &((tenant_load *)arg)->ts, err);
}

/* The tenant's slot if it is loaded and fresh: 1, else 0. Never reads
 * the store, so the loop may ask. */
static int tenant_cached(leads_ctx *c, const char *slug, tenant_slot *out) {
    int64_t now = clock_wall_ms();
    pthread_mutex_lock(&c->mu);
    tenant_slot *s = &c->slot[slug_hash(slug)];
    int hit = s->expires > now && strcmp(s->slug, slug) == 0;
    if (hit) *out = *s; /* the keys belong to c->keys and outlive every request */
    pthread_mutex_unlock(&c->mu);
    return hit;
}

/* Fills slot-equivalent data for j->slug; returns 0 or sets j->status. The
 * cache lock is held only to copy, never during storage or crypto work. */
static int resolve_tenant(ghl_job *j, leads_ctx *c, tenant_slot *out) {
    if (tenant_cached(c, j->slug, out)) return 0;
    unsigned h = slug_hash(j->slug);
    int64_t now = clock_wall_ms();

    tenant_load t = {.slug = j->slug};
    int rc = store_read(j->a->st, 0, tenant_tx, &t, &j->err);
    if (rc == STORE_NOTFOUND) {
        fail(j, 404, "unknown_tenant", "no such tenant");
        return -1;
    }
    if (!rc) rc = store_read(j->a->st, t.id, settings_tx, &t, &j->err);
    if (rc) {
        fail(j, 503, "unavailable", "storage unavailable");
        return -1;
    }
    tenant_slot fresh = {0};
    snprintf(fresh.slug, sizeof fresh.slug, "%s", j->slug);
    fresh.id = t.id;
    fresh.token_mode = strcmp(t.ts.ghl_mode, "token") == 0;
    memcpy(fresh.country, t.ts.default_country, sizeof fresh.country);
    memcpy(fresh.token_hash, t.ts.ghl_token_hash, sizeof fresh.token_hash);
    const char *ed = t.ts.ghl_ed25519_pem ? t.ts.ghl_ed25519_pem : SIG_GHL_ED25519_PEM;
    const char *rsa = t.ts.ghl_rsa_pem ? t.ts.ghl_rsa_pem : SIG_GHL_RSA_PEM;
    fresh.ed = key_for(c, ed);
    fresh.rsa = key_for(c, rsa);
    leads_settings_free(&t.ts);
    fresh.expires = now + CACHE_TTL_MS;
    pthread_mutex_lock(&c->mu);
    c->slot[h] = fresh;
    *out = fresh;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* Parses GHL's timestamp: ISO 8601 ("2025-01-28T14:35:00Z", optional
 * fraction and offset) or epoch milliseconds/seconds. -1 if unreadable. */
static int64_t parse_time(json_t *v) {
    if (json_is_integer(v)) {
        int64_t t = json_integer_value(v);
        return t < 100000000000LL ? t * 1000 : t;
    }
    if (!json_is_string(v)) return -1;
    const char *s = json_string_value(v);
    int Y, M, D, h, m, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6) return -1;
    const char *p = s + n;
    int64_t ms = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3) ms = ms * 10 + (*p - '0');
        for (; digits < 3; digits++) ms *= 10;
    }
    int off = 0;
    if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2) return -1;
        off = (oh * 60 + om) * (*p == '+' ? 1 : -1);
    } else if (*p != 'Z' && *p != '\0') {
        return -1;
    }
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return -1;
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec};
    time_t t = timegm(&tm);
    return ((int64_t)t - off * 60) * 1000 + ms;
}

/* ---- applying events ---- */

static const char *str(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

static int lead_by_ghl(store_tx *tx, const char *contact_id, int64_t *id, store_err *err) {
    *id = 0;
    if (!contact_id) return STORE_OK;
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_S(contact_id)};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT id FROM leads WHERE tenant_id = $1 AND ghl_contact_id = $2 AND deleted_at IS NULL",
                         p, 2, &r, err);
    if (!rc && store_rows_count(r)) *id = store_rows_int(r, 0, 0);
    store_rows_free(r);
    return rc;
}

static int agent_by_ghl(store_tx *tx, const char *user_id, int64_t *id, store_err *err) {
    *id = 0;
    if (!user_id) return STORE_OK;
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_S(user_id)};
    store_rows *r = NULL;
    int rc = store_query(tx, "SELECT id FROM agents WHERE tenant_id = $1 AND ghl_user_id = $2 AND deleted_at IS NULL",
                         p, 2, &r, err);
    if (!rc && store_rows_count(r)) *id = store_rows_int(r, 0, 0);
    store_rows_free(r);
    return rc;
}

/* GHL's dndSettings: {"SMS":{"status":"active"},...}; "active" means do
 * not disturb on that channel, i.e. no consent. */
static void dnd_to_consent(json_t *src, json_t *in) {
    json_t *dnd = json_object_get(src, "dnd");
    if (json_is_boolean(dnd)) json_object_set(in, "dnd", dnd);
    json_t *ds = json_object_get(src, "dndSettings");
    static const struct { const char *ghl, *field; } map[] = {
        {"SMS", "consent_sms"}, {"Email", "consent_email"}, {"Call", "consent_call"}};
    for (int i = 0; i < 3; i++) {
        json_t *ch = json_object_get(ds, map[i].ghl);
        const char *st = str(ch, "status");
        if (st) json_object_set_new(in, map[i].field, json_boolean(strcmp(st, "active") != 0));
    }
    if (json_is_true(dnd))
        for (int i = 0; i < 3; i++) json_object_set_new(in, map[i].field, json_false());
}

static void contact_parse(json_t *p, const char *country, contact_vals *cv) {
    memset(cv, 0, sizeof *cv);
    json_t *in = cv->in = json_object();
    if (!in) return;
    const char *at = str(p, "assignedTo"), *wid = str(p, "webhookId");
    if ((at && !(cv->assigned_to = eh_strdup(at))) || (wid && !(cv->evidence = eh_strdup(wid)))) {
        eh_free(cv->assigned_to);
        json_decref(in);
        memset(cv, 0, sizeof *cv); /* in == NULL: out of memory */
        return;
    }
    const char *id = str(p, "id") ? str(p, "id") : str(p, "contactId");
    if (id) json_object_set_new(in, "ghl_contact_id", json_string(id));
    if (str(p, "locationId")) json_object_set_new(in, "ghl_location_id", json_string(str(p, "locationId")));
    const char *fn = str(p, "firstName"), *ln = str(p, "lastName"), *name = str(p, "name");
    if (fn) json_object_set_new(in, "first_name", json_string(fn));
    if (ln) json_object_set_new(in, "last_name", json_string(ln));
    if (!fn && !ln && name) {
        const char *sp = strchr(name, ' ');
        if (sp) {
            json_object_set_new(in, "first_name", json_stringn(name, (size_t)(sp - name)));
            json_object_set_new(in, "last_name", json_string(sp + 1));
        } else {
            json_object_set_new(in, "first_name", json_string(name));
        }
    }
    if (str(p, "email")) json_object_set_new(in, "email", json_string(str(p, "email")));
    if (str(p, "phone")) json_object_set_new(in, "phone", json_string(str(p, "phone")));
    if (str(p, "source")) json_object_set_new(in, "source", json_string(str(p, "source")));
    if (str(p, "timezone")) json_object_set_new(in, "timezone", json_string(str(p, "timezone")));
    json_t *tags = json_object_get(p, "tags");
    if (json_is_array(tags)) json_object_set(in, "tags", tags);
    dnd_to_consent(p, in);
    /* the assigned agent is looked up in the transaction (contact_apply):
     * an id, it never makes the parse fail */
    json_t *errors = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (ent_parse(&entity_lead, in, 0, country, &cv->v, &errors) == 0) {
            cv->ok = 1;
            return;
        }
        const char *k;
        json_t *e;
        json_object_foreach(errors, k, e) json_object_del(in, k);
        json_decref(errors);
        errors = NULL;
    }
}

static void contact_vals_free(contact_vals *cv) {
    if (cv->ok) ent_vals_free(&cv->v);
    json_decref(cv->in);
    eh_free(cv->assigned_to);
    eh_free(cv->evidence);
    memset(cv, 0, sizeof *cv);
}

/* Upserts the lead of a parsed contact; STORE_INVALID when nothing in it
 * was usable. May run more than once (a retried transaction). */
static int contact_apply(store_tx *tx, contact_vals *cv, int64_t now, int64_t *lead_id, store_err *err) {
    if (!cv->ok) return STORE_INVALID;
    int64_t agent = 0;
    int rc = agent_by_ghl(tx, cv->assigned_to, &agent, err);
    if (rc) return rc;
    int ai = ent_field(&entity_lead, "agent_id");
    cv->v.present[ai] = agent != 0;
    cv->v.v[ai] = agent ? SV_I(agent) : SV_NULLV;
    cv->v.consent_source = "ghl";
    cv->v.consent_evidence = cv->evidence;
    int created;
    return leads_upsert(tx, &cv->v, now, lead_id, &created, err);
}

static int contact_upsert(store_tx *tx, json_t *p, const char *country, int64_t now, int64_t *lead_id,
                          store_err *err) {
    contact_vals cv;
    contact_parse(p, country, &cv);
    int rc = cv.in ? contact_apply(tx, &cv, now, lead_id, err) : STORE_NOMEM;
    contact_vals_free(&cv);
    return rc;
}

static int ensure_lead(store_tx *tx, json_t *p, const char *contact_id, const char *country, int64_t now,
                       int64_t *lead_id, store_err *err) {
    int rc = lead_by_ghl(tx, contact_id, lead_id, err);
    if (rc || *lead_id || !contact_id) return rc;
    /* A message or note for a contact we have not seen yet: create it from
     * what we know, so nothing is dropped. */
    json_t *contact = json_pack("{s:s, s:s?}", "id", contact_id, "locationId", str(p, "locationId"));
    rc = contact_upsert(tx, contact, country, now, lead_id, err);
    json_decref(contact);
    return rc;
}

static const char *channel_of(const char *message_type) {
    if (!message_type) return "sms";
    if (!strcasecmp(message_type, "SMS") || !strcasecmp(message_type, "TYPE_SMS")) return "sms";
    if (!strcasecmp(message_type, "Email") || !strcasecmp(message_type, "TYPE_EMAIL")) return "email";
    if (!strcasecmp(message_type, "Call") || !strcasecmp(message_type, "TYPE_CALL")) return "call";
    return "web";
}

static int set_lead_fields(store_tx *tx, int64_t lead_id, json_t *in, const char *country, int64_t now,
                           const char *event, const char *webhook_id, store_err *err) {
    ent_vals v;
    json_t *errors = NULL;
    if (ent_parse(&entity_lead, in, 0, country, &v, &errors)) {
        json_decref(errors);
        return STORE_OK; /* nothing usable */
    }
    v.consent_source = "ghl";
    v.consent_evidence = webhook_id;
    int rc = ent_update(tx, &v, lead_id, 0, now, err);
    ent_vals_free(&v);
    if (rc) return rc;
    json_t *lead = NULL;
    if ((rc = ent_get(tx, &entity_lead, lead_id, &lead, err))) return rc;
    json_t *ev = json_pack("{s:o, s:s}", "lead", lead, "via", "ghl");
    rc = leads_event(tx, event, ev, err);
    json_decref(ev);
    if (!rc) rc = nurture_on_lead_changed(tx, lead_id, now, err);
    return rc ? rc : score_lead(tx, lead_id, now, err);
}

static int opportunity(store_tx *tx, const char *type, json_t *p, const char *country, int64_t now,
                       store_err *err) {
    const char *oid = str(p, "id");
    if (!oid) return STORE_OK;
    int64_t lead_id = 0, agent = 0;
    int rc = ensure_lead(tx, p, str(p, "contactId"), country, now, &lead_id, err);
    if (!rc) rc = agent_by_ghl(tx, str(p, "assignedTo"), &agent, err);
    if (rc) return rc;
    const char *status = str(p, "status");
    if (status && strcmp(status, "open") && strcmp(status, "won") && strcmp(status, "lost") &&
        strcmp(status, "abandoned"))
        status = NULL;
    json_t *mv = json_object_get(p, "monetaryValue");
    store_val money = json_is_number(mv) ? SV_D(json_number_value(mv)) : SV_NULLV;
    store_val t = SV_I(store_tx_tenant(tx));
    store_rows *r = NULL;
    store_val fp[] = {t, SV_S(oid)};
    if ((rc = store_query(tx, "SELECT id FROM opportunities WHERE tenant_id = $1 AND ghl_opportunity_id = $2", fp, 2,
                          &r, err)))
        return rc;
    int exists = store_rows_count(r) > 0;
    store_rows_free(r);
    store_val up[] = {t,
                      SV_S(oid),
                      lead_id ? SV_I(lead_id) : SV_NULLV,
                      SV_S(str(p, "name")),
                      SV_S(str(p, "pipelineId")),
                      SV_S(str(p, "pipelineStageId")),
                      money,
                      SV_S(status),
                      agent ? SV_I(agent) : SV_NULLV,
                      SV_I(now)};
    if (exists)
        rc = store_query(tx,
                         "UPDATE opportunities SET lead_id = COALESCE($3, lead_id), name = COALESCE($4, name), "
                         "pipeline = COALESCE($5, pipeline), stage = COALESCE($6, stage), "
                         "monetary_value = COALESCE($7, monetary_value), status = COALESCE($8, status), "
                         "agent_id = COALESCE($9, agent_id), updated_at = $10 "
                         "WHERE tenant_id = $1 AND ghl_opportunity_id = $2",
                         up, 10, NULL, err);
    else
        rc = store_query(tx,
                         "INSERT INTO opportunities (tenant_id, ghl_opportunity_id, lead_id, name, pipeline, stage, "
                         "monetary_value, status, agent_id, created_at, updated_at) "
                         "VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, 'open'), $9, $10, $10)",
                         up, 10, NULL, err);
    if (rc) return rc;
    /* (jansson has no optional integer: "I?" would make json_pack fail) */
    json_t *ev = json_pack("{s:s, s:o, s:s?, s:s?, s:o, s:s}", "ghl_opportunity_id", oid, "lead_id",
                           lead_id ? json_integer((json_int_t)lead_id) : json_null(), "stage", str(p, "pipelineStageId"), "status", status,
                           "monetary_value", json_is_number(mv) ? json_real(json_number_value(mv)) : json_null(),
                           "ghl_event", type);
    rc = leads_event(tx, exists ? "opportunity.updated" : "opportunity.created", ev, err);
    json_decref(ev);
    /* A lead's status follows its opportunity's outcome. */
    if (!rc && lead_id && status) {
        json_t *in = json_pack("{s:s}", "status", status);
        rc = set_lead_fields(tx, lead_id, in, country, now, "lead.updated", str(p, "webhookId"), err);
        json_decref(in);
    }
    return rc;
}

static int apply_tx(store_tx *tx, void *arg, store_err *err) {
    apply_args *aa = arg;
    ghl_job *j = aa->j;
    json_t *p = aa->p;
    const char *cc = aa->country;
    int64_t now = clock_wall_ms();
    store_val ip[] = {SV_I(store_tx_tenant(tx)), SV_S("ghl"), SV_S(j->webhook_id), SV_S(j->type),
                      SV_SN(j->body, j->len), SV_I(now), SV_S(j->body_hash)};
    int rc = store_query(tx,
                         "INSERT INTO webhook_inbox (tenant_id, provider, webhook_id, type, body, received_at, "
                         "body_hash) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                         ip, 7, NULL, err);
    if (rc) return rc;
    if (store_tx_changes(tx) == 0) {
        j->duplicate = 1;
        return STORE_OK;
    }
    const char *t = j->type;
    int64_t lead_id = 0;
    if (!strcmp(t, "ContactCreate") || !strcmp(t, "ContactUpdate")) {
        rc = j->cv.in ? contact_apply(tx, &j->cv, now, &lead_id, err) : contact_upsert(tx, p, cc, now, &lead_id, err);
        if (rc == STORE_INVALID) rc = STORE_OK; /* nothing usable in it; the body is in the inbox */
    } else if (!strcmp(t, "ContactDelete")) {
        if (!(rc = lead_by_ghl(tx, str(p, "id"), &lead_id, err)) && lead_id) {
            rc = ent_delete(tx, &entity_lead, lead_id, now, err);
            json_t *ev = json_pack("{s:I, s:s}", "id", (json_int_t)lead_id, "via", "ghl");
            if (!rc) rc = leads_event(tx, "lead.deleted", ev, err);
            json_decref(ev);
        }
    } else if (!strcmp(t, "ContactTagUpdate") || !strcmp(t, "ContactDndUpdate")) {
        const char *cid = str(p, "id") ? str(p, "id") : str(p, "contactId");
        if (!(rc = ensure_lead(tx, p, cid, cc, now, &lead_id, err)) && lead_id) {
            json_t *in = json_object();
            json_t *tags = json_object_get(p, "tags");
            if (t[7] == 'T' && json_is_array(tags)) json_object_set(in, "tags", tags);
            if (t[7] == 'D') dnd_to_consent(p, in);
            rc = set_lead_fields(tx, lead_id, in, cc, now, t[7] == 'D' ? "lead.consent_changed" : "lead.updated",
                                 j->webhook_id, err);
            json_decref(in);
        }
    } else if (!strcmp(t, "InboundMessage") || !strcmp(t, "OutboundMessage") || !strcmp(t, "NoteCreate") ||
               !strcmp(t, "TaskCreate") || !strcmp(t, "AppointmentCreate")) {
        json_t *src = p;
        if (!strcmp(t, "AppointmentCreate") && json_is_object(json_object_get(p, "appointment")))
            src = json_object_get(p, "appointment");
        if (!(rc = ensure_lead(tx, p, str(src, "contactId"), cc, now, &lead_id, err)) && lead_id) {
            activity_in ai = {0};
            char body[512];
            if (t[0] == 'I' || t[0] == 'O') {
                ai.channel = channel_of(str(p, "messageType"));
                ai.direction = t[0] == 'I' ? "inbound" : "outbound";
                ai.body = str(p, "body");
                ai.status = str(p, "status");
                ai.provider_message_id = str(p, "messageId");
                ai.ghl_id = str(p, "messageId");
            } else if (t[0] == 'N') {
                ai.channel = "note";
                ai.direction = "none";
                ai.body = str(p, "body");
                ai.ghl_id = str(p, "id");
            } else if (t[0] == 'T') {
                ai.channel = "task";
                ai.direction = "none";
                snprintf(body, sizeof body, "%s%s%s", str(p, "title") ? str(p, "title") : "",
                         str(p, "body") ? ": " : "", str(p, "body") ? str(p, "body") : "");
                ai.body = body;
                ai.status = json_is_true(json_object_get(p, "completed")) ? "completed" : "open";
                ai.ghl_id = str(p, "id");
            } else {
                ai.channel = "appointment";
                ai.direction = "none";
                ai.body = str(src, "title");
                ai.status = str(src, "appointmentStatus");
                ai.ghl_id = str(src, "id");
                int64_t st = parse_time(json_object_get(src, "startTime"));
                if (st > 0) ai.occurred_at = st;
            }
            if (!ai.occurred_at) {
                int64_t da = parse_time(json_object_get(p, "dateAdded"));
                ai.occurred_at = da > 0 ? da : now;
            }
            int64_t aid;
            rc = leads_add_activity(tx, lead_id, &ai, now, &aid, err);
        }
    } else if (!strncmp(t, "Opportunity", 11)) {
        rc = opportunity(tx, t, p, cc, now, err);
    } else {
        j->stored_only = 1; /* unknown type: kept in the inbox, acknowledged */
    }
    return rc;
}

/* GHL sends either the flat shape or {"type":..., "data":{...}}; merge the
 * envelope into the data so the appliers see one shape. */
static json_t *normalise(json_t *root) {
    json_t *data = json_object_get(root, "data");
    if (!json_is_object(data)) return json_incref(root);
    json_t *p = json_deep_copy(data);
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) if (strcmp(k, "data") && !json_object_get(p, k)) json_object_set(p, k, v);
    return p;
}

static void write_failed(ghl_job *j, int rc) {
    if (rc == STORE_BUSY || rc == STORE_UNAVAILABLE) fail(j, 503, "unavailable", "storage unavailable, retry");
    else if (rc) fail(j, 500, "internal", "could not store the webhook");
}

static void ghl_posted(app_post_item *it);

/* store_write_async's callback: on the SQLite writer thread after the
 * COMMIT (or the failure), on the pool thread for PostgreSQL. */
static void ghl_written(void *arg, int rc, const store_err *err) {
    ghl_job *j = arg;
    /* Events racing for the same new contact (or the same webhookId) can
     * each find nothing and insert: the loser's unique violation rolls its
     * transaction back whole, and running it again finds the winner's row
     * (and answers "duplicate" for a replayed webhookId). */
    if (rc == STORE_CONFLICT && j->attempt < 3) {
        j->attempt++;
        j->duplicate = j->stored_only = 0;
        store_err e;
        rc = store_write_async(j->a->st, j->tenant, apply_tx, &j->aa, ghl_written, j, &e);
        if (rc == STORE_OK) return;
        err = &e;
    }
    if (rc) j->err = *err;
    contact_vals_free(&j->cv);
    json_decref(j->aa.p);
    j->aa.p = NULL;
    write_failed(j, rc);
    j->post.fn = ghl_posted;
    /* Cannot be refused: posts stop only after the HTTP server has drained,
     * and this request is in flight until ghl_posted answers it. */
    if (app_post(j->a, &j->post)) log_msg(j->a->log, LOG_ERROR, "ghl webhook lost", "the loop no longer takes work");
}

/* Checks the webhook and queues its transaction (ghl_written answers). */
static void ghl_process(ghl_job *j, const tenant_slot *ts) {
    app *a = j->a;
    j->tenant = ts->id;
    if (ts->token_mode) {
        char h[AUTH_HASH_HEX];
        auth_key_hash(j->token, strlen(j->token), h);
        if (!j->have_token || !ts->token_hash[0] || !sig_equal(h, ts->token_hash, 64)) {
            fail(j, 401, "bad_token", "missing or wrong webhook token");
            return;
        }
    } else {
        int rc;
        if (j->have_ed) rc = sig_verify_ed25519(ts->ed, j->body, j->len, j->sig_ed);
        else if (j->have_rsa) rc = sig_verify_rsa_sha256(ts->rsa, j->body, j->len, j->sig_rsa);
        else {
            fail(j, 401, "missing_signature", "x-ghl-signature or x-wh-signature is required");
            return;
        }
        if (rc == SIG_NOMEM) {
            fail(j, 503, "overloaded", "out of memory");
            return;
        }
        if (rc != SIG_OK) {
            fail(j, 401, "bad_signature", "the signature does not match the body");
            return;
        }
    }
    json_error_t je;
    json_t *root = json_loadb(j->body, j->len, 0, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        fail(j, 400, "invalid_json", "body must be a JSON object");
        return;
    }
    json_t *p = normalise(root);
    json_decref(root);
    const char *type = str(p, "type");
    if (!type || strlen(type) > 64) {
        json_decref(p);
        fail(j, 400, "missing_field", "\"type\" (string) is required");
        return;
    }
    snprintf(j->type, sizeof j->type, "%s", type);
    const char *wid = str(p, "webhookId");
    json_t *ts_v = json_object_get(p, "timestamp");
    if (!ts->token_mode && (!wid || !ts_v || !str(p, "locationId"))) {
        json_decref(p);
        fail(j, 400, "missing_field", "\"webhookId\", \"timestamp\" and \"locationId\" are required");
        return;
    }
    if (wid) {
        if (strlen(wid) > 128) {
            json_decref(p);
            fail(j, 400, "invalid_field", "webhookId is too long");
            return;
        }
        snprintf(j->webhook_id, sizeof j->webhook_id, "%s", wid);
    } else {
        /* Workflow custom webhooks carry no id: the body's hash is one. */
        char h[AUTH_HASH_HEX];
        auth_key_hash(j->body, j->len, h);
        snprintf(j->webhook_id, sizeof j->webhook_id, "sha256:%s", h);
    }
    if (ts_v) {
        int64_t t = parse_time(ts_v);
        int64_t now = clock_wall_ms();
        if (t < 0) {
            json_decref(p);
            fail(j, 400, "invalid_field", "timestamp must be ISO 8601 or epoch milliseconds");
            return;
        }
        if (t < now - FRESHNESS_MS || t > now + FRESHNESS_MS) {
            json_decref(p);
            fail(j, 401, "stale_timestamp", "timestamp is more than 5 minutes away from now; replays are refused");
            return;
        }
    }
    /* Queued, not waited for: this pool thread goes on to the next
     * webhook's signature, and the writer's group commit can take as many
     * webhooks as are in flight (a thread sleeping per write capped it at
     * the pool's size). The answer goes out when ghl_written posts the
     * outcome after the COMMIT. */
    memcpy(j->country, ts->country, sizeof j->country);
    auth_body_hash_hex(j->body, j->len, j->body_hash);
    if (!strcmp(j->type, "ContactCreate") || !strcmp(j->type, "ContactUpdate")) {
        contact_parse(p, ts->country, &j->cv);
        /* Parsed, the payload is not read again (apply_tx): freed here, by
         * the thread that allocated it, not by the writer after the
         * COMMIT, where it was a tenth of the writer's time. */
        if (j->cv.in) {
            json_decref(p);
            p = NULL;
        }
    }
    j->aa = (apply_args){j, p, j->country};
    j->waits = 2;
    int rc = store_write_async(a->st, ts->id, apply_tx, &j->aa, ghl_written, j, &j->err);
    if (rc) {
        /* done is never called for a call that fails at once */
        j->waits = 1;
        contact_vals_free(&j->cv);
        json_decref(p);
        write_failed(j, rc);
    }
    /* queued: the writer may be running it already, so touch nothing more */
}

static void ghl_work(void *arg) {
    ghl_job *j = arg;
    tenant_slot ts;
    if (resolve_tenant(j, j->a->leads, &ts)) return;
    ghl_process(j, &ts);
}

static void ghl_reply(ghl_job *j) {
    http_req *q = j->q;
    if (j->code[0]) {
        if (j->status >= 500) log_msg(j->a->log, LOG_ERROR, "ghl webhook failed", j->err.msg);
        if (j->status == 503) http_res_header(q, "Retry-After", "1");
        http_reply_error(q, j->status, j->code, j->msg);
    } else {
        /* {status, type, webhook_id}, written as http_reply_error writes
         * its document: every delivery gets this answer */
        buf b;
        buf_init(&b, 1024);
        buf_puts(&b, "{\"status\":\"");
        buf_puts(&b, j->duplicate ? "duplicate" : j->stored_only ? "stored" : "accepted");
        buf_puts(&b, "\",\"type\":\"");
        buf_json_str(&b, j->type, strlen(j->type));
        buf_puts(&b, "\",\"webhook_id\":\"");
        buf_json_str(&b, j->webhook_id, strlen(j->webhook_id));
        if (buf_puts(&b, "\"}") == BUF_OK) http_reply(q, 200, "application/json", b.p, b.len);
        else http_reply_error(q, 503, "overloaded", "out of memory");
        buf_free(&b);
    }
    eh_free(j->body);
    eh_free(j);
}

/* After ghl_work (loop thread). */
static void ghl_done(http_req *q, void *arg) {
    ghl_job *j = arg;
    j->q = q;
    if (--j->waits == 0) ghl_reply(j);
}

/* After the write's COMMIT (loop thread). */
static void ghl_posted(app_post_item *it) {
    ghl_job *j = (ghl_job *)it; /* the first member */
    if (--j->waits == 0) ghl_reply(j);
}

static void copy_header(http_req *q, const char *name, char *out, size_t cap, int *have) {
    const char *v = http_req_header(q, name);
    if (v && strlen(v) < cap) {
        memcpy(out, v, strlen(v) + 1);
        *have = 1;
    }
}

static void h_ghl(http_req *q, void *ud) {
    app *a = ud;
    const char *slug = http_req_param(q, "tenant");
    if (!slug || strlen(slug) > 64) {
        http_reply_error(q, 404, "unknown_tenant", "no such tenant");
        return;
    }
    http_req_set_tenant(q, slug);
    size_t len;
    const char *body = http_req_body(q, &len);
    if (len == 0) {
        http_reply_error(q, 400, "invalid_json", "empty body");
        return;
    }
    ghl_job *j = eh_calloc(1, sizeof *j);
    if (!j || !(j->body = eh_malloc(len))) {
        eh_free(j);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    memcpy(j->body, body, len);
    j->len = len;
    j->a = a;
    j->waits = 1;
    snprintf(j->slug, sizeof j->slug, "%s", slug);
    copy_header(q, "x-ghl-signature", j->sig_ed, sizeof j->sig_ed, &j->have_ed);
    copy_header(q, "x-wh-signature", j->sig_rsa, sizeof j->sig_rsa, &j->have_rsa);
    copy_header(q, "X-Webhook-Token", j->token, sizeof j->token, &j->have_token);
    if (!j->have_token) {
        const char *t = http_req_query(q, "token");
        if (t && strlen(t) < sizeof j->token) {
            memcpy(j->token, t, strlen(t) + 1);
            j->have_token = 1;
        }
    }
    /* A small webhook of a tenant already loaded, signed with Ed25519 (or
     * in token mode), is checked here on the loop: verifying (~22 us) and
     * parsing it cost less than handing it to a pool thread and back (two
     * wake-ups and their context switches: bench/ingest.sh unpinned gave
     * ~10 % more webhooks/s without them). The rest (first webhook of a tenant:
     * a store read; RSA: ~10x slower; large bodies) go to the pool, and
     * every webhook does on PostgreSQL, whose store_write_async runs the
     * transaction on the calling thread. */
    tenant_slot ts;
    if (len <= GHL_INLINE_MAX && store_write_queues(a->st) && tenant_cached(a->leads, slug, &ts) &&
        (ts.token_mode || j->have_ed)) {
        ghl_process(j, &ts);
        ghl_done(q, j);
        return;
    }
    if (http_req_work(q, ghl_work, ghl_done, j)) {
        eh_free(j->body);
        eh_free(j);
        http_reply_error(q, 503, "overloaded", "cannot schedule work");
    }
}

static const http_route_doc d_ghl = {
    "GoHighLevel webhook receiver (signed with x-ghl-signature Ed25519 or legacy x-wh-signature RSA; "
    "or X-Webhook-Token for tenants in token mode). Durable before 200; replays answer 200 \"duplicate\"",
    "webhooks", "a GHL event: flat or {type, data}", "{status: accepted|duplicate|stored, type, webhook_id}"};

int leads_ghl_register(app *a) {
    if (!a->leads && !(a->leads = leads_ctx_new())) return -1;
    return http_router_add(a->router, "POST", "/v1/webhooks/ghl/{tenant}", h_ghl, a, HTTP_ROUTE_PUBLIC, &d_ghl);
}
