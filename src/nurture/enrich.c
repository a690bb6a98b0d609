/* Background work of the nurture module, one round at a time, driven by
 * the dispatcher's timer: storage on the thread pool, Apollo's calls on
 * the loop (the dispatcher's curlloop), then storage again:
 *
 * - Apollo enrichment: leads queued in lead_enrichments (by the
 *   transaction that created them, for tenants with an Apollo key) are
 *   matched with POST /api/v1/people/match, and the company, title and
 *   LinkedIn URL found are stored on the lead (lead.enriched). Ingestion
 *   never waits for it. Its own rate limit per tenant (--apollo-limit,
 *   shared by the nodes through Redis with --bus redis://, limit.c; a 429
 *   holds every node back), timeout (APOLLO_TIMEOUT_MS), retries with
 *   backoff, and breaker.
 * - "Gone cold": every --cold-every, for tenants with a cold_sequence_id,
 *   open leads that have not written for cold_days days (their last
 *   inbound activity, or their creation) or whose churn risk (src/score)
 *   is high are enrolled in that sequence, COLD_BATCH leads per tenant per
 *   round, a cursor walking the tenant's leads. A lead is enrolled at most
 *   once per cold_days in that sequence, and never twice while active. */
#include <curl/curl.h>
#include <sodium.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "http/curlloop.h"
#include "leads/leads.h"
#include "nurture.h"
#include "nurture_int.h"
#include "score/score.h"

#define ENRICH_EVERY_MS 1000
#define ENRICH_BATCH 20
#define ENRICH_LEASE_MS 60000
#define APOLLO_TIMEOUT_MS 5000
#define APOLLO_FAILS 5         /* retryable failures in a row open the breaker */
#define APOLLO_COOL_MS 30000
#define COLD_BATCH 200
#define COLD_TENANTS 64

typedef struct cold_cursor {
    int64_t tenant, after;
} cold_cursor;

typedef struct enr_batch enr_batch;

typedef struct apollo_breaker {
    int64_t tenant;
    int fails;
    int64_t open_until;
} apollo_breaker;

struct nurture_bg {
    app *a;
    int64_t next_enrich, next_cold;
    char url[600];
    nurture_limit *win;
    apollo_breaker br[64];
    int nbr;
    cold_cursor cur[COLD_TENANTS];
    int ncur;
    metric *m_enrich, *m_cold;
    enr_batch *bt;   /* this round's enrichments, from claim to record */
    int inflight;    /* Apollo calls out on the loop */
    void (*sent)(void *ud);
    void *sent_ud;
};

nurture_bg *nurture_bg_new(app *a) {
    nurture_bg *b = eh_calloc(1, sizeof *b);
    if (!b) return NULL;
    int n = 50;
    int64_t w = 60000;
    if (nurture_rate_parse(a->cfg.apollo_limit, &n, &w)) {
        log_msg(a->log, LOG_WARN, "nurture: --apollo-limit is N/s, N/m or N/h; using 50/m", a->cfg.apollo_limit);
        n = 50, w = 60000;
    }
    /* a shared entry counts as in flight until the round records it, or
     * for as long as a claim holds if this node dies first */
    if (!(b->win = nurture_limit_new(a, "apollo", "Apollo", "enrichments", n, w, ENRICH_LEASE_MS))) {
        eh_free(b);
        return NULL;
    }
    b->a = a;
    snprintf(b->url, sizeof b->url, "%s/api/v1/people/match", a->cfg.apollo_url);
    int64_t now = clock_wall_ms();
    b->next_enrich = now;
    b->next_cold = now + (a->cfg.cold_every_ms ? a->cfg.cold_every_ms : 300000);
    b->m_enrich = metrics_counter(a->m, "ehub_enrich_total", "Apollo enrichments by outcome", "outcome");
    b->m_cold = metrics_counter(a->m, "ehub_nurture_cold_enrolled_total", "leads enrolled because they went cold",
                                "why");
    return b;
}

void nurture_bg_free(nurture_bg *b) {
    if (!b) return;
    nurture_limit_free(b->win);
    eh_free(b);
}

int nurture_bg_due(nurture_bg *b, int64_t now) { return now >= b->next_enrich || now >= b->next_cold; }

/* ---- Apollo ---- */

static apollo_breaker *breaker_of(nurture_bg *b, int64_t tenant) {
    for (int i = 0; i < b->nbr; i++)
        if (b->br[i].tenant == tenant) return &b->br[i];
    int i = b->nbr < 64 ? b->nbr++ : (int)(tenant % 64); /* full: share a slot (it only ever delays) */
    b->br[i] = (apollo_breaker){tenant, 0, 0};
    return &b->br[i];
}

typedef struct enr {
    struct nurture_bg *b;
    int64_t id, tenant, lead;
    int attempts;
    char key[200];
    char *json;
    struct curl_slist *hd;
    buf body;
    CURL *h;
    CURLcode cc;
    int64_t retry_after_ms;
    nurture_lease lease; /* its place in the rate window */
    /* outcome */
    int state; /* 0 done, 1 not found, 2 failed, 3 queued again */
    int64_t due;
    int not_attempt;
    char result[300];
    json_t *found;
} enr;

struct enr_batch {
    enr e[ENRICH_BATCH];
    int n;
};

static int enr_claim_tx(store_tx *tx, void *arg, store_err *err) {
    enr_batch *bt = arg;
    int64_t now = clock_wall_ms();
    store_val p[] = {SV_I(now), SV_I(now - ENRICH_LEASE_MS), SV_I(ENRICH_BATCH)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         store_tx_kind(tx) == STORE_POSTGRES
                             ? "SELECT id, tenant_id, lead_id, attempts FROM lead_enrichments WHERE (state = 'queued' "
                               "AND due_at <= $1) OR (state = 'sending' AND updated_at < $2) ORDER BY due_at LIMIT $3 "
                               "FOR UPDATE SKIP LOCKED"
                             : "SELECT id, tenant_id, lead_id, attempts FROM lead_enrichments WHERE (state = 'queued' "
                               "AND due_at <= $1) OR (state = 'sending' AND updated_at < $2) ORDER BY due_at LIMIT $3",
                         p, 3, &r, err);
    for (int i = 0; !rc && i < store_rows_count(r) && i < ENRICH_BATCH; i++) {
        enr *e = &bt->e[i];
        e->id = store_rows_int(r, i, 0);
        e->tenant = store_rows_int(r, i, 1);
        e->lead = store_rows_int(r, i, 2);
        e->attempts = (int)store_rows_int(r, i, 3) + 1;
        store_val u[] = {SV_I(e->id), SV_I(now)};
        rc = store_query(tx,
                         "UPDATE lead_enrichments SET state = 'sending', attempts = attempts + 1, updated_at = $2 "
                         "WHERE id = $1",
                         u, 2, NULL, err);
        bt->n = i + 1;
    }
    store_rows_free(r);
    return rc;
}

/* The request's body from the lead: what Apollo matches people on. */
static int enr_read_tx(store_tx *tx, void *arg, store_err *err) {
    enr *e = arg;
    store_val p[] = {SV_I(e->tenant), SV_I(e->lead)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT n.apollo_api_key, l.first_name, l.last_name, l.email, l.company, l.deleted_at "
                         "FROM leads l LEFT JOIN nurture_settings n ON n.tenant_id = l.tenant_id "
                         "WHERE l.tenant_id = $1 AND l.id = $2",
                         p, 2, &r, err);
    if (rc) return rc;
    if (!store_rows_count(r) || !store_rows_isnull(r, 0, 5) || store_rows_isnull(r, 0, 0)) {
        e->state = 2;
        snprintf(e->result, sizeof e->result, "%s",
                 store_rows_count(r) && store_rows_isnull(r, 0, 0) ? "no Apollo key" : "lead gone");
    } else if (store_rows_isnull(r, 0, 3) && (store_rows_isnull(r, 0, 1) || store_rows_isnull(r, 0, 2))) {
        e->state = 1;
        snprintf(e->result, sizeof e->result, "nothing to match on (an email, or a full name)");
    } else {
        snprintf(e->key, sizeof e->key, "%s", store_rows_text(r, 0, 0));
        json_t *in = json_pack("{s:b, s:b}", "reveal_personal_emails", 0, "reveal_phone_number", 0);
        static const char *const names[] = {"first_name", "last_name", "email", "organization_name"};
        for (int c = 0; c < 4; c++)
            if (!store_rows_isnull(r, 0, c + 1))
                json_object_set_new(in, names[c], json_string(store_rows_text(r, 0, c + 1)));
        e->json = json_dumps(in, JSON_COMPACT);
        json_decref(in);
        e->state = e->json ? -1 : 3; /* -1: ask Apollo */
    }
    store_rows_free(r);
    return STORE_OK;
}

static size_t enr_body(char *d, size_t sz, size_t n, void *ud) {
    enr *e = ud;
    buf_append(&e->body, d, sz * n);
    return sz * n;
}

static size_t enr_header(char *d, size_t sz, size_t n, void *ud) {
    enr *e = ud;
    size_t len = sz * n;
    if (len > 12 && !strncasecmp(d, "Retry-After:", 12)) {
        long secs = strtol(d + 12, NULL, 10);
        e->retry_after_ms = (secs > 0 && secs < 3600 ? secs : 1) * 1000;
    }
    return len;
}

static void enr_begin(nurture_bg *b, enr *e) {
    buf_init(&e->body, 256 * 1024);
    if (!(e->h = curl_easy_init())) {
        e->cc = CURLE_OUT_OF_MEMORY;
        return;
    }
    char hdr[300];
    snprintf(hdr, sizeof hdr, "X-Api-Key: %s", e->key);
    e->hd = curl_slist_append(e->hd, hdr);
    e->hd = curl_slist_append(e->hd, "Content-Type: application/json");
    e->hd = curl_slist_append(e->hd, "Cache-Control: no-cache");
    e->hd = curl_slist_append(e->hd, "Accept: application/json");
    curl_easy_setopt(e->h, CURLOPT_URL, b->url);
    curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, e->hd);
    curl_easy_setopt(e->h, CURLOPT_POSTFIELDS, e->json);
    curl_easy_setopt(e->h, CURLOPT_TIMEOUT_MS, (long)APOLLO_TIMEOUT_MS);
    curl_easy_setopt(e->h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(e->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e->h, CURLOPT_WRITEFUNCTION, enr_body);
    curl_easy_setopt(e->h, CURLOPT_WRITEDATA, e);
    curl_easy_setopt(e->h, CURLOPT_HEADERFUNCTION, enr_header);
    curl_easy_setopt(e->h, CURLOPT_HEADERDATA, e);
    curl_easy_setopt(e->h, CURLOPT_PROTOCOLS_STR, "http,https");
}

/* Apollo's answer into the outcome. */
static void enr_end(nurture_bg *b, enr *e, int64_t now) {
    long status = 0;
    if (e->h && e->cc == CURLE_OK) curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &status);
    int retryable = e->cc != CURLE_OK || status == 408 || status == 429 || status >= 500;
    int throttled = status == 429;
    apollo_breaker *br = breaker_of(b, e->tenant);
    if (status >= 200 && status < 300) {
        json_t *j = e->body.p ? json_loads(e->body.p, 0, NULL) : NULL;
        json_t *person = json_object_get(j, "person");
        if (json_is_object(person)) {
            const char *org = json_string_value(json_object_get(json_object_get(person, "organization"), "name"));
            const char *title = json_string_value(json_object_get(person, "title"));
            const char *li = json_string_value(json_object_get(person, "linkedin_url"));
            /* bounded as the lead's other text fields */
            e->found = json_pack("{s:s?, s:s?, s:s?}", "company", org && strlen(org) <= 200 ? org : NULL, "title",
                                 title && strlen(title) <= 200 ? title : NULL, "linkedin_url",
                                 li && strlen(li) <= 300 ? li : NULL);
            e->state = 0;
            snprintf(e->result, sizeof e->result, "matched");
        } else {
            e->state = 1;
            snprintf(e->result, sizeof e->result, "%s", j ? "no match" : "Apollo sent no JSON");
        }
        json_decref(j);
        br->fails = 0;
    } else {
        json_t *j = e->body.p ? json_loads(e->body.p, 0, NULL) : NULL;
        const char *msg = json_string_value(json_object_get(j, "error"));
        if (!msg) msg = json_string_value(json_object_get(j, "message"));
        if (e->cc != CURLE_OK) snprintf(e->result, sizeof e->result, "Apollo: %s", curl_easy_strerror(e->cc));
        else snprintf(e->result, sizeof e->result, "Apollo %ld: %.200s", status, msg ? msg : "error");
        json_decref(j);
        if (retryable && !throttled && ++br->fails >= APOLLO_FAILS && br->open_until <= now)
            br->open_until = now + APOLLO_COOL_MS;
        if (throttled) {
            e->state = 3;
            e->not_attempt = 1;
            e->due = now + (e->retry_after_ms ? e->retry_after_ms : 1000);
        } else if (retryable && e->attempts < NURTURE_MAX_ATTEMPTS) {
            e->state = 3;
            e->due = now + (int64_t)pow(2, e->attempts) * 1000;
        } else {
            e->state = 2;
        }
    }
    nurture_limit_done(b->win, e->tenant, &e->lease, now, throttled ? e->due : 0);
}

static int enr_record_tx(store_tx *tx, void *arg, store_err *err) {
    enr *e = arg;
    int64_t now = clock_wall_ms();
    static const char *const states[] = {"done", "not_found", "failed", "queued"};
    store_val u[] = {SV_I(e->id), SV_S(states[e->state]), SV_S(e->result), SV_I(e->due ? e->due : now), SV_I(now),
                     SV_I(e->not_attempt)};
    int rc = store_query(tx,
                         "UPDATE lead_enrichments SET state = $2, result = $3, due_at = $4, updated_at = $5, "
                         "attempts = attempts - $6 WHERE id = $1",
                         u, 6, NULL, err);
    if (rc || e->state != 0) return rc;
    json_t *f = e->found;
    const char *org = json_string_value(json_object_get(f, "company"));
    const char *title = json_string_value(json_object_get(f, "title"));
    const char *li = json_string_value(json_object_get(f, "linkedin_url"));
    store_val l[] = {SV_I(store_tx_tenant(tx)), SV_I(e->lead), SV_S(org), SV_S(title), SV_S(li), SV_I(now)};
    if ((rc = store_query(tx,
                          "UPDATE leads SET company = COALESCE($3, company), job_title = COALESCE($4, job_title), "
                          "linkedin_url = COALESCE($5, linkedin_url), updated_at = $6 "
                          "WHERE tenant_id = $1 AND id = $2",
                          l, 6, NULL, err)))
        return rc;
    json_t *ev = json_pack("{s:I, s:O}", "lead_id", (json_int_t)e->lead, "found", f);
    rc = leads_event(tx, "lead.enriched", ev, err);
    json_decref(ev);
    return rc;
}

/* Stage 1, on the pool: claim, read each lead, build the requests. */
static void enrich_claim(nurture_bg *b) {
    app *a = b->a;
    store_err err = {0};
    enr_batch *bt = eh_calloc(1, sizeof *bt);
    b->bt = NULL;
    if (!bt) return;
    if (store_write(a->st, 0, enr_claim_tx, bt, &err)) {
        log_msg(a->log, LOG_WARN, "nurture: cannot claim enrichments", err.msg);
        eh_free(bt);
        return;
    }
    if (!bt->n) {
        eh_free(bt);
        return;
    }
    b->bt = bt;
    int64_t now = clock_wall_ms();
    for (int i = 0; i < bt->n; i++) {
        enr *e = &bt->e[i];
        e->lease = (nurture_lease){.slot = -1};
        if (store_read(a->st, e->tenant, enr_read_tx, e, &err)) {
            e->state = 3; /* try again later */
            e->due = now + 5000;
            e->not_attempt = 1;
            snprintf(e->result, sizeof e->result, "storage: %.200s", err.msg);
            continue;
        }
        if (e->state != -1) continue;
        apollo_breaker *br = breaker_of(b, e->tenant);
        int64_t until = br->open_until > now ? br->open_until : nurture_limit_take(b->win, e->tenant, now, &e->lease);
        if (until) {
            e->state = 3;
            e->due = until;
            e->not_attempt = 1;
            snprintf(e->result, sizeof e->result, "%s",
                     br->open_until > now ? "circuit open: Apollo failed 5 times in a row" : "Apollo rate limit");
            continue;
        }
        enr_begin(b, e);
    }
}

static void on_apollo(CURL *h, CURLcode cc, void *ud) {
    enr *e = ud;
    nurture_bg *b = e->b;
    (void)h;
    e->cc = cc;
    if (--b->inflight == 0) b->sent(b->sent_ud);
}

/* Stage 2, on the loop. */
int nurture_bg_send(nurture_bg *b, curlloop *cl, void (*sent)(void *ud), void *ud) {
    b->inflight = 0;
    b->sent = sent;
    b->sent_ud = ud;
    for (int i = 0; b->bt && i < b->bt->n; i++) {
        enr *e = &b->bt->e[i];
        if (e->state != -1 || !e->h || e->cc != CURLE_OK) continue;
        e->b = b;
        /* refused (stopping, or full): not sent, queued again */
        if (curlloop_add(cl, e->h, on_apollo, e)) e->cc = CURLE_ABORTED_BY_CALLBACK;
        else b->inflight++;
    }
    return b->inflight;
}

/* Stage 3, on the pool: Apollo's answers into storage. */
void nurture_bg_record(nurture_bg *b) {
    app *a = b->a;
    store_err err = {0};
    enr_batch *bt = b->bt;
    if (!bt) return;
    int64_t now = clock_wall_ms();
    for (int i = 0; i < bt->n; i++) {
        enr *e = &bt->e[i];
        if (e->state == -1) {
            if (e->cc == CURLE_ABORTED_BY_CALLBACK) { /* cut at shutdown: again after the restart */
                e->state = 3;
                e->due = now;
                e->not_attempt = 1;
                snprintf(e->result, sizeof e->result, "not sent: the server was stopping");
                nurture_limit_done(b->win, e->tenant, &e->lease, now, 0);
            } else {
                enr_end(b, e, now);
            }
            if (b->m_enrich) {
                static const char *const o[] = {"matched", "not_found", "failed", "retry"};
                const char *lv[] = {o[e->state]};
                metric_add(b->m_enrich, lv, 1);
            }
        }
        if (e->h) curl_easy_cleanup(e->h);
        curl_slist_free_all(e->hd);
        free(e->json);
        buf_free(&e->body);
        if (store_write(a->st, e->tenant, enr_record_tx, e, &err))
            log_msg(a->log, LOG_WARN, "nurture: cannot record an enrichment (it will be retried)", err.msg);
        json_decref(e->found);
    }
    eh_free(bt);
    b->bt = NULL;
}

/* ---- gone cold ---- */

typedef struct cold_tenant {
    int64_t tenant, sequence, days;
} cold_tenant;

typedef struct cold_list {
    cold_tenant t[COLD_TENANTS];
    int n;
} cold_list;

static int cold_list_tx(store_tx *tx, void *arg, store_err *err) {
    cold_list *l = arg;
    store_rows *r = NULL;
    store_val p[] = {SV_I(COLD_TENANTS)};
    int rc = store_query(tx,
                         "SELECT tenant_id, cold_sequence_id, cold_days FROM nurture_settings "
                         "WHERE cold_sequence_id IS NOT NULL ORDER BY tenant_id LIMIT $1",
                         p, 1, &r, err);
    for (int i = 0; !rc && i < store_rows_count(r); i++)
        l->t[l->n++] = (cold_tenant){store_rows_int(r, i, 0), store_rows_int(r, i, 1), store_rows_int(r, i, 2)};
    store_rows_free(r);
    return rc;
}

typedef struct cold_run {
    cold_tenant *t;
    int64_t after, last;
    int scanned, silent, churn;
} cold_run;

static int cold_tx(store_tx *tx, void *arg, store_err *err) {
    cold_run *c = arg;
    int64_t now = clock_wall_ms(), since = now - c->t->days * 86400000;
    c->scanned = c->silent = c->churn = 0;
    store_val p[] = {SV_I(c->t->tenant), SV_I(c->after), SV_I(c->t->sequence), SV_I(since), SV_I(COLD_BATCH)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT l.id, COALESCE((SELECT MAX(a.occurred_at) FROM activities a WHERE a.tenant_id = $1 "
                         "AND a.lead_id = l.id AND a.direction = 'inbound'), l.created_at) < $4 "
                         "FROM leads l WHERE l.tenant_id = $1 AND l.id > $2 AND l.deleted_at IS NULL "
                         "AND l.status = 'open' AND l.dnd = 0 AND NOT EXISTS (SELECT 1 FROM nurture_enrollments e "
                         "WHERE e.tenant_id = $1 AND e.lead_id = l.id AND e.sequence_id = $3 "
                         "AND (e.state = 'active' OR e.created_at > $4)) ORDER BY l.id LIMIT $5",
                         p, 5, &r, err);
    if (rc) return rc;
    int n = store_rows_count(r);
    c->scanned = n;
    c->last = n ? store_rows_int(r, n - 1, 0) : 0;
    for (int i = 0; i < n && !rc; i++) {
        int64_t lead = store_rows_int(r, i, 0), enr;
        const char *why = NULL;
        if (store_rows_int(r, i, 1)) {
            why = "gone cold: no reply";
        } else {
            json_t *ch = NULL;
            if ((rc = score_churn(tx, lead, now, &ch, err))) break;
            const char *risk = json_string_value(json_object_get(ch, "risk"));
            if (risk && !strcmp(risk, "high")) why = "gone cold: churn risk high";
            json_decref(ch);
        }
        if (!why) continue;
        rc = nurture_enroll_why(tx, c->t->sequence, lead, why, now, &enr, err);
        if (rc == STORE_NOTFOUND) { /* the sequence was deleted or paused: nothing to enrol in */
            rc = STORE_OK;
            break;
        }
        if (!rc && store_rows_int(r, i, 1)) c->silent++;
        else if (!rc) c->churn++;
    }
    store_rows_free(r);
    return rc;
}

static void cold_round(nurture_bg *b) {
    app *a = b->a;
    store_err err = {0};
    cold_list l = {0};
    if (store_read(a->st, 0, cold_list_tx, &l, &err)) {
        log_msg(a->log, LOG_WARN, "nurture: cannot list the gone-cold settings", err.msg);
        return;
    }
    for (int i = 0; i < l.n; i++) {
        cold_cursor *cur = NULL;
        for (int k = 0; k < b->ncur; k++)
            if (b->cur[k].tenant == l.t[i].tenant) cur = &b->cur[k];
        if (!cur && b->ncur < COLD_TENANTS) {
            cur = &b->cur[b->ncur++];
            *cur = (cold_cursor){l.t[i].tenant, 0};
        }
        cold_run c = {&l.t[i], cur ? cur->after : 0, 0, 0, 0, 0};
        if (store_write(a->st, l.t[i].tenant, cold_tx, &c, &err)) {
            log_msg(a->log, LOG_WARN, "nurture: the gone-cold scan failed", err.msg);
            continue;
        }
        /* the next round goes on from here; a short page means the end: start over */
        if (cur) cur->after = c.scanned == COLD_BATCH ? c.last : 0;
        if (b->m_cold) {
            const char *s[] = {"no_reply"}, *h[] = {"churn_high"};
            if (c.silent) metric_add(b->m_cold, s, c.silent);
            if (c.churn) metric_add(b->m_cold, h, c.churn);
        }
    }
}

void nurture_bg_work(nurture_bg *b) {
    int64_t now = clock_wall_ms();
    if (now >= b->next_enrich) {
        enrich_claim(b);
        /* +-25 %: nodes on one fixed period lock into a phase where the one
         * that polls just after the shared window frees always takes it, and
         * the other only ever claims rows to give them back */
        b->next_enrich = clock_wall_ms() + ENRICH_EVERY_MS * 3 / 4 + randombytes_uniform(ENRICH_EVERY_MS / 2 + 1);
    }
    if (now >= b->next_cold) {
        cold_round(b);
        b->next_cold = clock_wall_ms() + (b->a->cfg.cold_every_ms ? b->a->cfg.cold_every_ms : 300000);
    }
}
