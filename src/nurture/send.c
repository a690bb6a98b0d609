/* The dispatcher: claims due steps from the durable queue, decides what
 * each may do (consent, do-not-disturb, quiet hours, daily cap), renders
 * and sends it, and records the outcome — all on the thread pool, driven
 * by a 100 ms timer on the loop.
 *
 * Exactly once: a claimed step is marked "sending" (and its attempt
 * counted) in a committed transaction before anything goes out, and every
 * send carries the step's idempotency key (Twilio: I-Twilio-Idempotency-
 * Token; SendGrid: Idempotency-Key), so the provider turns a repeat into
 * the same message. A step left "sending" by a crash is claimed again
 * after NURTURE_LEASE_MS and re-sent with the same key.
 *
 * A batch's provider calls run at once through one libcurl multi handle
 * on the pool thread that runs the batch, each within SEND_TIMEOUT_MS;
 * the loop never waits on them. Each tenant's outcomes are recorded in one
 * transaction. */
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/tz.h"
#include "leads/leads.h"
#include "nurture.h"
#include "nurture_int.h"

#define BATCH 50
#define SEND_TIMEOUT_MS 10000
/* longer than a batch can take (its sends run at once, each within
 * SEND_TIMEOUT_MS): a step still "sending" after this was orphaned by a
 * crash */
#define NURTURE_LEASE_MS 30000
#define TICK_MS 100

int64_t nurture_quiet_until(const char *tz, int quiet_start, int quiet_end, int64_t now_ms) {
    int ok, off = tz_offset(tz, now_ms, &ok);
    if (!ok) off = tz_offset("America/New_York", now_ms, &ok); /* unknown zones: US Eastern */
    int64_t local_ms = now_ms + (int64_t)off * 60000;
    int64_t day_ms = 86400000;
    int minute = (int)((local_ms % day_ms + day_ms) % day_ms / 60000);
    int quiet = quiet_start > quiet_end ? (minute >= quiet_start || minute < quiet_end)
                                        : (minute >= quiet_start && minute < quiet_end);
    if (!quiet || quiet_start == quiet_end) return 0;
    int64_t midnight = local_ms - minute * (int64_t)60000 - local_ms % 60000;
    int64_t wake = midnight + (int64_t)quiet_end * 60000;
    if (wake <= local_ms) wake += day_ms;
    return wake - (int64_t)off * 60000;
}

/* ---- the dispatcher ---- */

/* A batch in flight. Two run at once, so one's sends and plans overlap
 * the other's writes (SQLite has one writer). */
#define SLOTS 2
typedef struct slot {
    struct nurture_ctx *c;
    uv_work_t work;
    int busy, claimed;
    int sent[2], failed;
} slot;

/* A circuit breaker per tenant and channel: BREAKER_FAILS retryable
 * failures in a row open it for BREAKER_COOL_MS, during which that
 * tenant's steps on that channel wait instead of calling the provider;
 * then one batch tries again (half open) and a success closes it. */
#define BREAKER_FAILS 5
#define BREAKER_COOL_MS 10000
#define BREAKERS 256
typedef struct breaker {
    int64_t tenant;
    int channel; /* 0 sms, 1 email */
    int fails;
    int64_t open_until;
} breaker;

struct nurture_ctx {
    app *a;
    uv_timer_t timer;
    pthread_mutex_t bmu; /* the two batch slots share the breakers */
    breaker br[BREAKERS];
    int nbr;
    slot slots[SLOTS];
    int busy; /* slots out */
    int stopping, closed, freed;
    char twilio_url[512], sendgrid_url[512], public_url[512];
    metric *m_sent, *m_fail, *m_open;
};

static breaker *breaker_get(nurture_ctx *c, int64_t tenant, int channel) {
    for (int i = 0; i < c->nbr; i++)
        if (c->br[i].tenant == tenant && c->br[i].channel == channel) return &c->br[i];
    if (c->nbr == BREAKERS) { /* full: forget the oldest closed one */
        for (int i = 0; i < c->nbr; i++)
            if (!c->br[i].fails) {
                c->br[i] = (breaker){tenant, channel, 0, 0};
                return &c->br[i];
            }
        return NULL;
    }
    c->br[c->nbr] = (breaker){tenant, channel, 0, 0};
    return &c->br[c->nbr++];
}

/* 0 when the provider may be called, else when the breaker closes. */
static int64_t breaker_open_until(nurture_ctx *c, int64_t tenant, int channel, int64_t now) {
    pthread_mutex_lock(&c->bmu);
    breaker *b = breaker_get(c, tenant, channel);
    int64_t until = b && b->open_until > now ? b->open_until : 0;
    pthread_mutex_unlock(&c->bmu);
    return until;
}

static void breaker_note(nurture_ctx *c, int64_t tenant, int channel, int retryable_failure, int64_t now) {
    pthread_mutex_lock(&c->bmu);
    breaker *b = breaker_get(c, tenant, channel);
    if (b && !retryable_failure) b->fails = 0;
    else if (b && ++b->fails >= BREAKER_FAILS && b->open_until <= now) {
        b->open_until = now + BREAKER_COOL_MS;
        if (c->m_open) {
            const char *ch[] = {channel ? "email" : "sms"};
            metric_add(c->m_open, ch, 1);
        }
    }
    pthread_mutex_unlock(&c->bmu);
}

typedef struct job {
    int64_t id, tenant, enrollment;
    int step, attempts;
    char key[96];
} job;

typedef struct claim {
    job jobs[BATCH];
    int n;
} claim;

static int claim_tx(store_tx *tx, void *arg, store_err *err) {
    claim *cl = arg;
    job *jobs = cl->jobs;
    cl->n = 0;
    int64_t now = clock_wall_ms();
    store_val p[] = {SV_I(now), SV_I(now - NURTURE_LEASE_MS), SV_I(BATCH)};
    const char *sql = store_tx_kind(tx) == STORE_POSTGRES
                          /* nodes never claim the same step */
                          ? "SELECT id, tenant_id, enrollment_id, step, attempts, idem_key FROM nurture_jobs "
                            "WHERE (state = 'queued' AND due_at <= $1) OR (state = 'sending' AND updated_at < $2) "
                            "ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED"
                          : "SELECT id, tenant_id, enrollment_id, step, attempts, idem_key FROM nurture_jobs "
                            "WHERE (state = 'queued' AND due_at <= $1) OR (state = 'sending' AND updated_at < $2) "
                            "ORDER BY due_at LIMIT $3";
    store_rows *r = NULL;
    int rc = store_query(tx, sql, p, 3, &r, err);
    if (rc) return rc;
    int n = store_rows_count(r);
    for (int i = 0; i < n && i < BATCH && !rc; i++) {
        job *j = &jobs[i];
        j->id = store_rows_int(r, i, 0);
        j->tenant = store_rows_int(r, i, 1);
        j->enrollment = store_rows_int(r, i, 2);
        j->step = (int)store_rows_int(r, i, 3);
        j->attempts = (int)store_rows_int(r, i, 4) + 1;
        snprintf(j->key, sizeof j->key, "%s", store_rows_text(r, i, 5));
        store_val u[] = {SV_I(j->id), SV_I(now)};
        rc = store_query(tx,
                         "UPDATE nurture_jobs SET state = 'sending', attempts = attempts + 1, updated_at = $2 "
                         "WHERE id = $1",
                         u, 2, NULL, err);
        cl->n = i + 1;
    }
    store_rows_free(r);
    return rc;
}

/* What one step needs, read in one snapshot. */
typedef struct plan {
    job *j;
    int64_t now;
    int action;          /* PLAN_* */
    int64_t reschedule;  /* PLAN_WAIT: new due time */
    char why[300];
    char type[8];        /* sms, email, task */
    json_t *steps;
    int64_t lead_id;
    char to[320], from[320], subject[256];
    buf body;
    char cred1[128], cred2[256]; /* twilio sid/token, or sendgrid key */
    char slug[65];
} plan;
enum { PLAN_SEND, PLAN_TASK, PLAN_SKIP, PLAN_WAIT, PLAN_DROP, PLAN_FAIL };

static const char *col(const store_rows *r, int c) { return store_rows_text(r, 0, c) ? store_rows_text(r, 0, c) : ""; }

static int plan_tx(store_tx *tx, void *arg, store_err *err) {
    plan *p = arg;
    job *j = p->j;
    buf_reset(&p->body);
    json_decref(p->steps);
    p->steps = NULL;
    p->action = PLAN_DROP;
    store_val a[] = {SV_I(j->tenant), SV_I(j->enrollment)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT e.state, e.lead_id, s.steps, l.first_name, l.last_name, l.email, l.phone, "
                         "l.consent_sms, l.consent_email, l.dnd, l.timezone, g.name, g.phone, g.email, t.name, t.slug, "
                         "n.twilio_account_sid, n.twilio_auth_token, n.twilio_from, n.sendgrid_api_key, n.sendgrid_from, "
                         "COALESCE(n.quiet_start, 1260), COALESCE(n.quiet_end, 480), COALESCE(n.daily_cap, 3), "
                         "l.deleted_at, l.status "
                         "FROM nurture_enrollments e JOIN nurture_sequences s ON s.id = e.sequence_id "
                         "JOIN leads l ON l.id = e.lead_id JOIN tenants t ON t.id = e.tenant_id "
                         "LEFT JOIN agents g ON g.id = l.agent_id AND g.tenant_id = l.tenant_id "
                         "LEFT JOIN nurture_settings n ON n.tenant_id = e.tenant_id "
                         "WHERE e.tenant_id = $1 AND e.id = $2",
                         a, 2, &r, err);
    if (rc) return rc;
    if (!store_rows_count(r) || strcmp(col(r, 0), "active") || !store_rows_isnull(r, 0, 24)) {
        snprintf(p->why, sizeof p->why, "enrollment no longer active");
        store_rows_free(r);
        return STORE_OK;
    }
    p->lead_id = store_rows_int(r, 0, 1);
    snprintf(p->slug, sizeof p->slug, "%s", col(r, 15));
    p->steps = json_loads(col(r, 2), 0, NULL);
    json_t *st = json_array_get(p->steps, (size_t)j->step);
    const char *type = json_string_value(json_object_get(st, "type"));
    if (!type) {
        snprintf(p->why, sizeof p->why, "the sequence changed: no step %d", j->step);
        store_rows_free(r);
        return STORE_OK;
    }
    snprintf(p->type, sizeof p->type, "%s", type);
    if (!strcmp(type, "task")) {
        p->action = PLAN_TASK;
        buf_puts(&p->body, json_string_value(json_object_get(st, "text")));
        store_rows_free(r);
        return STORE_OK;
    }
    int sms = !strcmp(type, "sms");
    /* consent and do-not-disturb: the step is skipped, the sequence goes on */
    if (store_rows_int(r, 0, 9) || !store_rows_int(r, 0, sms ? 7 : 8) || !*col(r, sms ? 6 : 5)) {
        p->action = PLAN_SKIP;
        snprintf(p->why, sizeof p->why, "%s", store_rows_int(r, 0, 9) ? "do not disturb"
                                             : !*col(r, sms ? 6 : 5) ? (sms ? "no phone number" : "no email address")
                                                                     : (sms ? "no SMS consent" : "no email consent"));
        store_rows_free(r);
        return STORE_OK;
    }
    int64_t wake = nurture_quiet_until(store_rows_text(r, 0, 10), (int)store_rows_int(r, 0, 21),
                                       (int)store_rows_int(r, 0, 22), p->now);
    if (wake) {
        p->action = PLAN_WAIT;
        p->reschedule = wake;
        snprintf(p->why, sizeof p->why, "quiet hours in the lead's time zone");
        store_rows_free(r);
        return STORE_OK;
    }
    /* the daily cap, over the last 24 hours */
    store_val c[] = {SV_I(j->tenant), SV_I(p->lead_id), SV_I(p->now - 86400000)};
    store_rows *cr = NULL;
    rc = store_query(tx,
                     "SELECT COUNT(*) FROM activities WHERE tenant_id = $1 AND lead_id = $2 AND direction = 'outbound' "
                     "AND channel IN ('sms', 'email') AND provider_message_id IS NOT NULL AND created_at > $3",
                     c, 3, &cr, err);
    if (rc) {
        store_rows_free(r);
        return rc;
    }
    int64_t today = store_rows_int(cr, 0, 0);
    store_rows_free(cr);
    if (today >= store_rows_int(r, 0, 23)) {
        p->action = PLAN_WAIT;
        p->reschedule = p->now + 86400000;
        snprintf(p->why, sizeof p->why, "daily cap of %lld messages reached", (long long)store_rows_int(r, 0, 23));
        store_rows_free(r);
        return STORE_OK;
    }
    const char *tname = json_string_value(json_object_get(st, "template"));
    store_val tq[] = {SV_I(j->tenant), SV_S(tname), SV_S(type)};
    store_rows *tr = NULL;
    rc = store_query(tx,
                     "SELECT subject, body, marketing FROM nurture_templates WHERE tenant_id = $1 AND name = $2 "
                     "AND channel = $3 AND deleted_at IS NULL",
                     tq, 3, &tr, err);
    if (rc) {
        store_rows_free(r);
        return rc;
    }
    if (!store_rows_count(tr)) {
        p->action = PLAN_FAIL;
        snprintf(p->why, sizeof p->why, "no %s template named \"%.60s\"", type, tname ? tname : "");
    } else {
        json_t *vars = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:{s:s}, s:{}}", "first_name", col(r, 3),
                                 "last_name", col(r, 4), "email", col(r, 5), "phone", col(r, 6), "agent", "name",
                                 col(r, 11), "phone", col(r, 12), "email", col(r, 13), "tenant", "name", col(r, 14),
                                 "listing");
        char e[256];
        int bad = nurture_render(store_rows_text(tr, 0, 1), vars, !sms, &p->body, e, sizeof e);
        buf subj;
        buf_init(&subj, sizeof p->subject - 1);
        if (!bad && !sms) bad = nurture_render(col(tr, 0), vars, 0, &subj, e, sizeof e);
        snprintf(p->subject, sizeof p->subject, "%s", subj.p ? subj.p : "");
        buf_free(&subj);
        json_decref(vars);
        if (!bad && sms && store_rows_int(tr, 0, 2) && !nurture_has_opt_out(p->body.p)) {
            bad = 1;
            snprintf(e, sizeof e, "a marketing SMS without opt-out text");
        }
        const char *c1 = col(r, sms ? 16 : 19), *c2 = col(r, 17), *from = col(r, sms ? 18 : 20);
        if (bad) {
            p->action = PLAN_FAIL;
            snprintf(p->why, sizeof p->why, "%.250s", e);
        } else if (!*c1 || !*from || (sms && !*c2)) {
            p->action = PLAN_FAIL;
            snprintf(p->why, sizeof p->why, "%s is not configured for this tenant (PATCH /v1/nurture/settings)",
                     sms ? "Twilio" : "SendGrid");
        } else {
            p->action = PLAN_SEND;
            snprintf(p->to, sizeof p->to, "%s", col(r, sms ? 6 : 5));
            snprintf(p->from, sizeof p->from, "%s", from);
            snprintf(p->cred1, sizeof p->cred1, "%s", c1);
            snprintf(p->cred2, sizeof p->cred2, "%s", sms ? c2 : "");
        }
    }
    store_rows_free(tr);
    store_rows_free(r);
    return STORE_OK;
}

/* ---- providers ---- */

/* One provider request: built by send_begin, run with the others of the
 * batch through one curl multi handle, read by send_end. */
typedef struct sendreq {
    CURL *h;
    struct curl_slist *hd;
    char *form, *json;
    buf body;        /* the answer (ids and errors; capped) */
    char msgid[128]; /* SendGrid's X-Message-Id */
    int sms;
    CURLcode cc;
} sendreq;

static size_t on_body(char *d, size_t sz, size_t n, void *ud) {
    sendreq *r = ud;
    buf_append(&r->body, d, sz * n); /* past the cap the rest is dropped: we only read ids and errors */
    return sz * n;
}

static size_t on_header(char *d, size_t sz, size_t n, void *ud) {
    sendreq *r = ud;
    size_t len = sz * n;
    if (len > 14 && !strncasecmp(d, "X-Message-Id:", 13)) {
        const char *v = d + 13;
        while (*v == ' ') v++;
        size_t vl = (size_t)(d + len - v);
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n')) vl--;
        snprintf(r->msgid, sizeof r->msgid, "%.*s", (int)vl, v);
    }
    return len;
}

static int send_begin(nurture_ctx *c, plan *p, sendreq *r) {
    memset(r, 0, sizeof *r);
    buf_init(&r->body, 65536);
    if (!(r->h = curl_easy_init())) return -1;
    CURL *h = r->h;
    char url[1200], hdr[300], cb[1200];
    r->sms = !strcmp(p->type, "sms");
    if (r->sms) {
        snprintf(url, sizeof url, "%s/2010-04-01/Accounts/%s/Messages.json", c->twilio_url, p->cred1);
        snprintf(cb, sizeof cb, "%s/v1/webhooks/twilio/%s", c->public_url, p->slug);
        char *to = curl_easy_escape(h, p->to, 0), *from = curl_easy_escape(h, p->from, 0);
        char *body = curl_easy_escape(h, p->body.p ? p->body.p : "", 0), *scb = curl_easy_escape(h, cb, 0);
        size_t n = strlen(to ? to : "") + strlen(from ? from : "") + strlen(body ? body : "") + strlen(scb ? scb : "") + 64;
        if ((r->form = malloc(n)))
            snprintf(r->form, n, "To=%s&From=%s&Body=%s&StatusCallback=%s", to ? to : "", from ? from : "",
                     body ? body : "", scb ? scb : "");
        curl_free(to), curl_free(from), curl_free(body), curl_free(scb);
        curl_easy_setopt(h, CURLOPT_USERNAME, p->cred1);
        curl_easy_setopt(h, CURLOPT_PASSWORD, p->cred2);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->form ? r->form : "");
        snprintf(hdr, sizeof hdr, "I-Twilio-Idempotency-Token: %s", p->j->key);
        r->hd = curl_slist_append(r->hd, hdr);
    } else {
        snprintf(url, sizeof url, "%s/v3/mail/send", c->sendgrid_url);
        json_t *m = json_pack("{s:[{s:[{s:s}], s:{s:s}}], s:{s:s}, s:s, s:[{s:s, s:s}]}", "personalizations", "to",
                              "email", p->to, "custom_args", "ehub_step", p->j->key, "from", "email", p->from,
                              "subject", p->subject, "content", "type", "text/html", "value",
                              p->body.p ? p->body.p : "");
        r->json = m ? json_dumps(m, JSON_COMPACT) : NULL;
        json_decref(m);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->json ? r->json : "{}");
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", p->cred1);
        r->hd = curl_slist_append(r->hd, hdr);
        r->hd = curl_slist_append(r->hd, "Content-Type: application/json");
        snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", p->j->key);
        r->hd = curl_slist_append(r->hd, hdr);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->hd);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)SEND_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_PRIVATE, r);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    return 0;
}

/* The HTTP status (0: no answer) and the provider's id of the message. */
static long send_end(sendreq *r, char *id, size_t idlen, char *err, size_t errlen) {
    long status = 0;
    if (!r->h) {
        snprintf(err, errlen, "out of memory");
    } else if (r->cc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(r->cc));
    } else {
        curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
        if (r->sms) {
            json_t *j = r->body.p ? json_loads(r->body.p, 0, NULL) : NULL;
            const char *sid = json_string_value(json_object_get(j, "sid"));
            snprintf(id, idlen, "%s", sid ? sid : "");
            if (status >= 300) {
                const char *msg = json_string_value(json_object_get(j, "message"));
                snprintf(err, errlen, "Twilio %ld: %.200s", status, msg ? msg : "error");
            }
            json_decref(j);
        } else {
            snprintf(id, idlen, "%s", r->msgid);
            if (status >= 300) snprintf(err, errlen, "SendGrid %ld: %.200s", status, r->body.p ? r->body.p : "");
        }
    }
    if (r->h) curl_easy_cleanup(r->h);
    curl_slist_free_all(r->hd);
    free(r->form);
    free(r->json);
    buf_free(&r->body);
    r->h = NULL;
    return status;
}

/* Runs every prepared request at once; returns when all are answered or
 * timed out (SEND_TIMEOUT_MS at most). */
static void send_all(sendreq **rs, int n) {
    CURLM *m = curl_multi_init();
    for (int i = 0; i < n; i++)
        if (rs[i]->h) {
            if (!m || curl_multi_add_handle(m, rs[i]->h) != CURLM_OK) rs[i]->cc = CURLE_OUT_OF_MEMORY;
        }
    int running = 1;
    while (m && running) {
        if (curl_multi_perform(m, &running) != CURLM_OK) break;
        if (running) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    CURLMsg *msg;
    int left;
    while (m && (msg = curl_multi_info_read(m, &left)))
        if (msg->msg == CURLMSG_DONE) {
            sendreq *r;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            r->cc = msg->data.result;
        }
    for (int i = 0; m && i < n; i++)
        if (rs[i]->h) curl_multi_remove_handle(m, rs[i]->h);
    if (m) curl_multi_cleanup(m);
}

/* ---- recording the outcome ---- */

typedef struct outcome {
    plan *p;
    int ok;              /* sent (or task done, or step skipped): go on */
    int retry;           /* a retryable failure: due again later */
    char result[400];
    char provider_id[128];
} outcome;

static int record_tx(store_tx *tx, void *arg, store_err *err) {
    outcome *o = arg;
    plan *p = o->p;
    job *j = p->j;
    int64_t now = clock_wall_ms();
    int rc;
    if (p->action == PLAN_WAIT) {
        store_val u[] = {SV_I(j->id), SV_I(p->reschedule), SV_S(p->why), SV_I(now)};
        /* not an attempt: give it back */
        return store_query(tx,
                           "UPDATE nurture_jobs SET state = 'queued', due_at = $2, result = $3, "
                           "attempts = attempts - 1, updated_at = $4 WHERE id = $1",
                           u, 4, NULL, err);
    }
    if (o->retry) {
        /* exponential backoff with jitter: 2^attempts s, +-25 % */
        unsigned h = (unsigned)(j->id * 2654435761u + (unsigned)now); /* no shared PRNG state */
        double base = pow(2, j->attempts) * 1000, jit = base * 0.25 * ((double)(h % 2001) / 1000 - 1);
        store_val u[] = {SV_I(j->id), SV_I(now + (int64_t)(base + jit)), SV_S(o->result), SV_I(now)};
        return store_query(tx, "UPDATE nurture_jobs SET state = 'queued', due_at = $2, result = $3, updated_at = $4 "
                               "WHERE id = $1",
                           u, 4, NULL, err);
    }
    const char *state = p->action == PLAN_SKIP || p->action == PLAN_DROP ? "skipped" : o->ok ? "done" : "failed";
    store_val u[] = {SV_I(j->id), SV_S(state), SV_S(o->result), SV_I(now)};
    if ((rc = store_query(tx, "UPDATE nurture_jobs SET state = $2, result = $3, updated_at = $4 WHERE id = $1", u, 4,
                          NULL, err)))
        return rc;
    if (p->action == PLAN_DROP) return STORE_OK;
    if (o->ok && (p->action == PLAN_SEND || p->action == PLAN_TASK)) {
        activity_in ai = {.channel = p->action == PLAN_TASK ? "task" : p->type,
                          .direction = p->action == PLAN_TASK ? "none" : "outbound",
                          .body = p->body.p ? p->body.p : "",
                          .status = p->action == PLAN_TASK ? "open" : "queued",
                          .provider_message_id = o->provider_id[0] ? o->provider_id : NULL,
                          .occurred_at = now};
        int64_t aid;
        if ((rc = leads_add_activity(tx, p->lead_id, &ai, now, &aid, err))) return rc;
    }
    json_t *ev = json_pack("{s:I, s:I, s:i, s:s, s:s, s:s}", "enrollment_id", (json_int_t)j->enrollment, "lead_id",
                           (json_int_t)p->lead_id, "step", j->step, "type", p->type, "state", state, "result",
                           o->result);
    rc = leads_event(tx, o->ok || p->action == PLAN_SKIP ? "nurture.step" : "nurture.failed", ev, err);
    json_decref(ev);
    if (rc) return rc;
    /* a failed step does not stop the sequence: the lead may still get the next one */
    return nurture_schedule(tx, j->enrollment, p->steps, j->step + 1, now, now, err);
}

/* One claimed step through plan, send and record. */
typedef struct step_run {
    plan p;
    outcome o;
    sendreq s;
    int planned, sending;
} step_run;

static void settle(slot *c, step_run *r) {
    plan *p = &r->p;
    outcome *o = &r->o;
    job *j = p->j;
    o->p = p;
    switch (p->action) {
    case PLAN_SEND: {
        char e[300] = "";
        long status = send_end(&r->s, o->provider_id, sizeof o->provider_id, e, sizeof e);
        if (status >= 200 && status < 300) {
            breaker_note(c->c, j->tenant, strcmp(p->type, "sms") != 0, 0, p->now);
            o->ok = 1;
            snprintf(o->result, sizeof o->result, "sent (%s)", o->provider_id[0] ? o->provider_id : "no id");
            c->sent[strcmp(p->type, "sms") != 0]++;
        } else {
            /* retry what may succeed later: no answer, 408, 429, 5xx */
            int retryable = status == 0 || status == 408 || status == 429 || status >= 500;
            breaker_note(c->c, j->tenant, strcmp(p->type, "sms") != 0, retryable, p->now);
            o->retry = retryable && j->attempts < NURTURE_MAX_ATTEMPTS;
            snprintf(o->result, sizeof o->result, "%s%s", e[0] ? e : "provider error",
                     retryable && !o->retry ? " (gave up)" : "");
            if (!o->retry) c->failed++;
        }
        break;
    }
    case PLAN_TASK:
        o->ok = 1;
        snprintf(o->result, sizeof o->result, "task created");
        break;
    case PLAN_FAIL:
        c->failed++;
        snprintf(o->result, sizeof o->result, "%s", p->why);
        break;
    default:
        snprintf(o->result, sizeof o->result, "%s", p->why);
    }
}

typedef struct record_many {
    step_run *runs;
    int from, to; /* one tenant's runs */
} record_many;

static int record_many_tx(store_tx *tx, void *arg, store_err *err) {
    record_many *m = arg;
    int rc = 0;
    for (int i = m->from; i < m->to && !rc; i++)
        if (m->runs[i].planned) rc = record_tx(tx, &m->runs[i].o, err);
    return rc;
}

static void batch_work(uv_work_t *w) {
    slot *sl = w->data;
    nurture_ctx *c = sl->c;
    claim *cl = eh_calloc(1, sizeof *cl);
    step_run *runs = cl ? eh_calloc(BATCH, sizeof *runs) : NULL;
    sendreq *reqs[BATCH];
    store_err err = {0};
    sl->claimed = 0;
    if (!runs) {
        eh_free(cl);
        return;
    }
    if (store_write(c->a->st, 0, claim_tx, cl, &err)) {
        log_msg(c->a->log, LOG_WARN, "nurture: cannot claim steps", err.msg);
        eh_free(runs);
        eh_free(cl);
        return;
    }
    int nreq = 0;
    int64_t now = clock_wall_ms();
    for (int i = 0; i < cl->n; i++) {
        step_run *r = &runs[i];
        r->p.j = &cl->jobs[i];
        r->p.now = now;
        buf_init(&r->p.body, NURTURE_MAX_BODY + 1);
        if (store_read(c->a->st, cl->jobs[i].tenant, plan_tx, &r->p, &err)) {
            /* storage trouble: leave it "sending"; the lease brings it back */
            log_msg(c->a->log, LOG_WARN, "nurture: cannot plan a step", err.msg);
            continue;
        }
        r->planned = 1;
        int64_t until = r->p.action == PLAN_SEND
                            ? breaker_open_until(c, cl->jobs[i].tenant, strcmp(r->p.type, "sms") != 0, now)
                            : 0;
        if (until) {
            r->p.action = PLAN_WAIT;
            r->p.reschedule = until;
            snprintf(r->p.why, sizeof r->p.why, "circuit open: the provider failed %d times in a row", BREAKER_FAILS);
        }
        if (r->p.action == PLAN_SEND) {
            if (send_begin(c, &r->p, &r->s)) r->s.cc = CURLE_OUT_OF_MEMORY;
            reqs[nreq++] = &r->s;
        }
    }
    send_all(reqs, nreq); /* all of the batch's messages at once */
    /* claims come ordered by due time, not tenant: group each tenant's
     * outcomes into one transaction where they are adjacent */
    for (int i = 0; i < cl->n;) {
        int k = i;
        while (k < cl->n && cl->jobs[k].tenant == cl->jobs[i].tenant) {
            if (runs[k].planned) settle(sl, &runs[k]);
            k++;
        }
        record_many m = {runs, i, k};
        if (store_write(c->a->st, cl->jobs[i].tenant, record_many_tx, &m, &err)) {
            /* one at a time, so one bad step cannot hold back the others */
            for (int x = i; x < k; x++)
                if (runs[x].planned && store_write(c->a->st, cl->jobs[x].tenant, record_tx, &runs[x].o, &err))
                    log_msg(c->a->log, LOG_ERROR, "nurture: cannot record a step (it will be retried)", err.msg);
        }
        i = k;
    }
    for (int i = 0; i < cl->n; i++) {
        json_decref(runs[i].p.steps);
        buf_free(&runs[i].p.body);
    }
    sl->claimed = cl->n;
    eh_free(runs);
    eh_free(cl);
}

static void on_tick(uv_timer_t *t);

static void ctx_release(nurture_ctx *c) {
    pthread_mutex_destroy(&c->bmu);
    eh_free(c);
}

static void batch_done(uv_work_t *w, int status) {
    slot *sl = w->data;
    nurture_ctx *c = sl->c;
    sl->busy = 0;
    c->busy--;
    if (c->freed && c->closed) { /* nurture_free ran while batches were out */
        if (!c->busy) ctx_release(c);
        return;
    }
    if (c->m_sent) {
        const char *sms[] = {"sms"}, *email[] = {"email"};
        if (sl->sent[0]) metric_add(c->m_sent, sms, (double)sl->sent[0]);
        if (sl->sent[1]) metric_add(c->m_sent, email, (double)sl->sent[1]);
        if (sl->failed) metric_add(c->m_fail, NULL, (double)sl->failed);
    }
    sl->sent[0] = sl->sent[1] = sl->failed = 0;
    /* a full batch: more may be due now */
    if (!c->stopping && sl->claimed == BATCH) on_tick(&c->timer);
}

static void on_tick(uv_timer_t *t) {
    nurture_ctx *c = t->data;
    for (int i = 0; i < SLOTS && !c->stopping; i++) {
        slot *sl = &c->slots[i];
        if (sl->busy) continue;
        sl->c = c;
        sl->work.data = sl;
        if (uv_queue_work(c->a->loop, &sl->work, batch_work, batch_done)) break;
        sl->busy = 1;
        c->busy++;
        /* start the second one only when there is a backlog */
        if (sl->claimed < BATCH) break;
    }
}

static void on_closed(uv_handle_t *h) {
    nurture_ctx *c = h->data;
    c->closed = 1;
    if (c->freed && !c->busy) ctx_release(c);
}

void nurture_stop(nurture_ctx *c) {
    if (!c || c->stopping) return;
    c->stopping = 1;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

/* The memory goes when the timer is closed and no batch is out: after the
 * loop has run its close callbacks (main runs it once more after
 * app_free). */
void nurture_free(nurture_ctx *c) {
    if (!c) return;
    nurture_stop(c);
    c->freed = 1;
    if (c->closed && !c->busy) ctx_release(c);
}

nurture_ctx *nurture_ctx_start(app *a) {
    nurture_ctx *c = eh_calloc(1, sizeof *c);
    if (!c) return NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any pool thread uses libcurl */
    c->a = a;
    snprintf(c->twilio_url, sizeof c->twilio_url, "%s", a->cfg.twilio_url);
    snprintf(c->sendgrid_url, sizeof c->sendgrid_url, "%s", a->cfg.sendgrid_url);
    if (a->cfg.public_url[0]) snprintf(c->public_url, sizeof c->public_url, "%s", a->cfg.public_url);
    else snprintf(c->public_url, sizeof c->public_url, "http://%s:%d", a->cfg.host, a->cfg.port);
    c->m_sent = metrics_counter(a->m, "ehub_nurture_sent_total", "messages accepted by a provider", "channel");
    c->m_fail = metrics_counter(a->m, "ehub_nurture_failed_total", "nurture steps that failed for good", NULL);
    c->m_open = metrics_counter(a->m, "ehub_nurture_breaker_open_total", "times a provider's circuit opened", "channel");
    pthread_mutex_init(&c->bmu, NULL);
    uv_timer_init(a->loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, on_tick, TICK_MS, TICK_MS);
    return c;
}
