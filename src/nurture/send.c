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
 * A step goes through three stages: claimed (in a batch of up to BATCH)
 * and planned on the pool; its provider call on the loop, through the one
 * libcurl multi handle the loop drives (src/http/curlloop.h), within
 * SEND_TIMEOUT_MS, so no thread waits on a provider; then its outcome
 * recorded on the pool as soon as its own call ends, with the others that
 * ended in the same turn of the loop (each tenant's in one transaction).
 * A call that hangs holds back nothing but itself: claims go on while the
 * steps out stay within CALLS_MAX, and one tenant's calls in flight within
 * TENANT_CALLS. On shutdown the calls in flight get NURTURE_STOP_GRACE_MS
 * to finish; the rest are cut and their steps queued again, attempt given
 * back, for the same key to go out after the restart. */
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
#include "http/curlloop.h"
#include "leads/leads.h"
#include "nurture.h"
#include "nurture_int.h"
#include "realtime/realtime.h"

#define BATCH 100
#define SEND_TIMEOUT_MS 10000
/* longer than a step can take from claim to record (its call ends within
 * SEND_TIMEOUT_MS, then a recorder takes it): a step still "sending" after
 * this was orphaned by a crash */
#define NURTURE_LEASE_MS 30000
#define TICK_MS 100
#define NURTURE_STOP_GRACE_MS 2000 /* provider calls in flight at shutdown: then they are cut */
#define CURL_ACTIVE 320            /* provider calls at once: CALLS_MAX and an enrichment round */
#define CURL_QUEUED 1024

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

/* Claims run on the pool, up to CLAIMERS at once, each of at most BATCH
 * steps; a claim starts only while the steps out (claimed and not yet
 * recorded: their calls in flight, and outcomes waiting for a recorder)
 * plus BATCH for each claim under way stay within CALLS_MAX. A step is
 * recorded as soon as its own call ends, not when its batch's last one
 * does: the outcomes that end in one turn of the loop (and any that end
 * while a recorder is busy) go to storage together, each tenant's in one
 * transaction, up to RECORDERS at once. So a provider that hangs holds
 * back only its own calls, each for at most SEND_TIMEOUT_MS, and the room
 * that frees as the others end lets the next claim in. */
#define CLAIMERS 3
#define RECORDERS 2
#define CALLS_MAX 300 /* steps out at once; CURL_ACTIVE leaves room for an enrichment round */
/* One tenant's provider calls in flight: all but one claim's room, so a
 * tenant whose provider hangs (or who has a burst) always leaves a full
 * claim to everybody else, and a tenant alone still has two batches out
 * at once. A send past it waits TENANT_DEFER_MS, attempt given back. */
#define TENANT_CALLS (CALLS_MAX - BATCH)
#define TENANT_DEFER_MS 1000
struct claim;
struct step_run;

/* A circuit breaker per tenant and channel: BREAKER_FAILS retryable
 * failures in a row open it for BREAKER_COOL_MS, during which that
 * tenant's steps on that channel wait instead of calling the provider;
 * then one batch tries again (half open) and a success closes it. */
#define BREAKER_FAILS 5
#define BREAKER_COOL_MS 10000
#define BREAKERS 256
typedef struct breaker {
    int64_t tenant;
    int channel; /* a PROV_* */
    int fails;
    int64_t open_until;
} breaker;

/* Who carries a message. The breaker metric's label keeps "sms" and
 * "email" for Twilio and SendGrid. */
enum { PROV_TWILIO, PROV_SENDGRID, PROV_SMTP, PROV_GHL, PROV_N };
static const char *const prov_label[PROV_N] = {"sms", "email", "smtp", "ghl"};
static const char *const prov_name[PROV_N] = {"twilio", "sendgrid", "smtp", "ghl"};
#define GHL_LIMIT 100 /* GoHighLevel: 100 requests per 10 s per location */
/* a shared window's entry counts as in flight this long unless its request
 * ends sooner: longer than a step can take, so a node that dies holding
 * one errs on the side of sending less */
#define GHL_HOLD_MS NURTURE_LEASE_MS

typedef struct job {
    int64_t id, tenant, enrollment;
    int64_t message; /* a one-off message (nurture_messages), else 0: a sequence step */
    int step, attempts;
    char key[96];
} job;

typedef struct claim {
    job jobs[BATCH];
    int n;
} claim;

/* A claim under way: the steps it claimed, then their runs. */
typedef struct claimer {
    struct nurture_ctx *c;
    uv_work_t work;
    int busy;
    claim cl;
    struct step_run *runs[BATCH]; /* in the claim's (tenant) order */
    int n;
} claimer;

/* Outcomes on their way to storage. */
typedef struct recorder {
    struct nurture_ctx *c;
    uv_work_t work;
    int busy;
    struct step_run *runs[CALLS_MAX];
    int n;
    int sent[2], failed;
} recorder;

/* Provider calls in flight for one tenant (entries with n > 0 only, so at
 * most CALLS_MAX). */
typedef struct tenant_calls {
    int64_t tenant;
    int n;
} tenant_calls;

struct nurture_ctx {
    app *a;
    uv_timer_t timer;
    uv_check_t check;    /* records the outcomes that ended in this turn of the loop */
    int handles_open;    /* timer and check, until closed */
    pthread_mutex_t bmu; /* the claims and recorders share the breakers */
    breaker br[BREAKERS];
    int nbr;
    claimer claimers[CLAIMERS];
    recorder recorders[RECORDERS];
    int claiming, recording; /* of them, out on the pool */
    int out;                 /* steps claimed and not yet recorded */
    int more;                /* the last claim was full: more may be due */
    struct step_run *done, *done_tail; /* ended, waiting for a recorder */
    tenant_calls tcalls[CALLS_MAX];
    int ntcalls;
    int busy; /* claims, recorders and the background work out on the pool */
    int stopping, closed, freed;
    uint64_t last_kick; /* loop ms of the last claim started by an event */
    curlloop *curl;  /* every provider call, on the loop */
    int curl_closed;
    char twilio_url[512], sendgrid_url[512], public_url[512], ghl_url[512];
    char secrets_dir[1100];
    /* GHL's window: this node's, and the nodes' through Redis (limit.c) */
    nurture_limit *ghl_win;
    metric *m_sent, *m_fail, *m_open, *m_prov, *m_defer;
    /* enrichment and the "gone cold" scan (enrich.c), one at a time */
    uv_work_t bg_work;
    int bg_busy;
    nurture_bg *bg;
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
            const char *ch[] = {prov_label[channel]};
            metric_add(c->m_open, ch, 1);
        }
    }
    pthread_mutex_unlock(&c->bmu);
}

/* Claims the rows sql finds (at most BATCH in all): "sending", attempt counted. */
static int claim_some(store_tx *tx, claim *cl, const char *sql, int64_t cutoff, int64_t now, store_err *err) {
    store_val p[] = {SV_I(cutoff), SV_I(BATCH - cl->n)};
    store_rows *r = NULL;
    int rc = store_query(tx, sql, p, 2, &r, err);
    if (rc) return rc;
    int n = store_rows_count(r);
    for (int i = 0; i < n && cl->n < BATCH && !rc; i++) {
        job *j = &cl->jobs[cl->n];
        j->id = store_rows_int(r, i, 0);
        j->tenant = store_rows_int(r, i, 1);
        j->enrollment = store_rows_int(r, i, 2);
        j->message = store_rows_int(r, i, 6);
        j->step = (int)store_rows_int(r, i, 3);
        j->attempts = (int)store_rows_int(r, i, 4) + 1;
        snprintf(j->key, sizeof j->key, "%s", store_rows_text(r, i, 5));
        store_val u[] = {SV_I(j->id), SV_I(now)};
        rc = store_query(tx,
                         "UPDATE nurture_jobs SET state = 'sending', attempts = attempts + 1, updated_at = $2 "
                         "WHERE id = $1",
                         u, 2, NULL, err);
        cl->n++;
    }
    store_rows_free(r);
    return rc;
}

static int job_by_tenant(const void *x, const void *y) {
    const job *a = x, *b = y;
    return a->tenant < b->tenant ? -1 : a->tenant > b->tenant ? 1 : (a->id > b->id) - (a->id < b->id);
}

/* Two queries, not one with OR: each walks the (state, due_at) index in
 * order and stops at BATCH rows, where the OR made SQLite read and sort
 * every due row of the backlog for each claim. Steps orphaned by a crash
 * first (there are few), then the oldest due. */
static int claim_tx(store_tx *tx, void *arg, store_err *err) {
    claim *cl = arg;
    cl->n = 0;
    int64_t now = clock_wall_ms();
    int pg = store_tx_kind(tx) == STORE_POSTGRES;
    /* on PostgreSQL, nodes never claim the same step */
    int rc = claim_some(tx, cl,
                        pg ? "SELECT id, tenant_id, COALESCE(enrollment_id, 0), step, attempts, idem_key, "
                             "COALESCE(message_id, 0) FROM nurture_jobs "
                             "WHERE state = 'sending' AND updated_at < $1 ORDER BY updated_at LIMIT $2 "
                             "FOR UPDATE SKIP LOCKED"
                           : "SELECT id, tenant_id, COALESCE(enrollment_id, 0), step, attempts, idem_key, "
                             "COALESCE(message_id, 0) FROM nurture_jobs "
                             "WHERE state = 'sending' AND updated_at < $1 LIMIT $2",
                        now - NURTURE_LEASE_MS, now, err);
    if (!rc && cl->n < BATCH)
        rc = claim_some(tx, cl,
                        pg ? "SELECT id, tenant_id, COALESCE(enrollment_id, 0), step, attempts, idem_key, "
                             "COALESCE(message_id, 0) FROM nurture_jobs "
                             "WHERE state = 'queued' AND due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED"
                           : "SELECT id, tenant_id, COALESCE(enrollment_id, 0), step, attempts, idem_key, "
                             "COALESCE(message_id, 0) FROM nurture_jobs "
                             "WHERE state = 'queued' AND due_at <= $1 ORDER BY due_at LIMIT $2",
                        now, now, err);
    /* each tenant's steps together: one transaction each to plan and record */
    if (!rc) qsort(cl->jobs, (size_t)cl->n, sizeof cl->jobs[0], job_by_tenant);
    return rc;
}

/* What one step needs, read in one snapshot. */
typedef struct plan {
    job *j;
    int64_t now;
    int action;          /* PLAN_* */
    int64_t reschedule;  /* PLAN_WAIT: new due time */
    char why[300];
    char type[12];       /* sms, email, task, branch */
    int provider;        /* PROV_* for a send */
    int next_step;       /* PLAN_BRANCH: where the sequence goes on */
    nurture_lease win;   /* GHL: its place in the rate window */
    int64_t agent_id;    /* PLAN_TASK: whose task; a one-off message: the lead's agent */
    char smtp_url[600], smtp_user[128], smtp_pass[256];
    int smtp_tls;        /* 0 none, 1 STARTTLS required, 2 implicit (smtps) */
    char msgid[200];     /* SMTP: Message-ID */
    const char *secrets_dir; /* DATA_DIR/secrets: where smtp_password_from files are */
    json_t *steps;
    int64_t lead_id;
    int64_t activity_id; /* a one-off message: its activity, there from the start */
    char to[320], from[320], subject[256];
    buf body;
    char cred1[128], cred2[256]; /* twilio sid/token, or sendgrid key */
    char slug[65];
} plan;
enum { PLAN_SEND, PLAN_TASK, PLAN_SKIP, PLAN_WAIT, PLAN_DROP, PLAN_FAIL, PLAN_BRANCH };

static const char *col(const store_rows *r, int c) { return store_rows_text(r, 0, c) ? store_rows_text(r, 0, c) : ""; }

/* Where a branch goes: its goto (a 1-based step; past the last ends the
 * sequence) when the condition holds, else the next step. */
static int plan_branch(store_tx *tx, plan *p, const json_t *st, const store_rows *r, store_err *err) {
    const char *cond = json_string_value(json_object_get(st, "if"));
    int go = (int)json_integer_value(json_object_get(st, "goto")) - 1, hit;
    char what[120];
    if (!cond) cond = "";
    if (!strcmp(cond, "replied") || !strcmp(cond, "no_reply")) {
        /* a reply since this enrollment began */
        store_val q[] = {SV_I(p->j->tenant), SV_I(p->lead_id), SV_I(store_rows_int(r, 0, 37))};
        store_rows *ar = NULL;
        int rc = store_query(tx,
                             "SELECT COUNT(*) FROM activities WHERE tenant_id = $1 AND lead_id = $2 "
                             "AND direction = 'inbound' AND created_at >= $3",
                             q, 3, &ar, err);
        if (rc) return rc;
        int replied = store_rows_int(ar, 0, 0) > 0;
        store_rows_free(ar);
        hit = !strcmp(cond, "replied") ? replied : !replied;
        snprintf(what, sizeof what, "%s", replied ? "the lead replied" : "no reply");
    } else {
        double v = json_number_value(json_object_get(st, "value"));
        int scored = !store_rows_isnull(r, 0, 36);
        double sc = store_rows_real(r, 0, 36);
        hit = scored && (!strcmp(cond, "score_at_least") ? sc >= v : sc < v);
        if (scored) snprintf(what, sizeof what, "score %.3f %s %.3f", sc, sc >= v ? ">=" : "<", v);
        else snprintf(what, sizeof what, "not scored");
    }
    p->action = PLAN_BRANCH;
    p->next_step = hit ? go : p->j->step + 1;
    snprintf(p->why, sizeof p->why, "%s: %s, on to step %d", cond, what, p->next_step + 1);
    return STORE_OK;
}

/* Which provider carries a message, and what it needs; PLAN_FAIL with
 * why when the tenant has not configured it. */
static void plan_provider(plan *p, const store_rows *r, int sms) {
    const char *via = col(r, sms ? 27 : 26);
    char e[256];
    if (!strcmp(via, "ghl")) {
        p->provider = PROV_GHL;
        if (!*col(r, 34)) {
            p->action = PLAN_FAIL;
            snprintf(p->why, sizeof p->why, "GoHighLevel sending needs ghl_api_key (PATCH /v1/nurture/settings)");
        } else if (!*col(r, 35)) {
            p->action = PLAN_FAIL;
            snprintf(p->why, sizeof p->why, "the lead is no GoHighLevel contact (no ghl_contact_id)");
        } else {
            snprintf(p->to, sizeof p->to, "%s", col(r, 35)); /* contactId */
            snprintf(p->cred1, sizeof p->cred1, "%s", col(r, 34));
        }
        return;
    }
    if (sms) {
        p->provider = PROV_TWILIO;
        const char *c1 = col(r, 16), *c2 = col(r, 17), *from = col(r, 18);
        if (!*c1 || !*c2 || !*from) {
            p->action = PLAN_FAIL;
            snprintf(p->why, sizeof p->why, "Twilio is not configured for this tenant (PATCH /v1/nurture/settings)");
            return;
        }
        snprintf(p->from, sizeof p->from, "%s", from);
        snprintf(p->cred1, sizeof p->cred1, "%s", c1);
        snprintf(p->cred2, sizeof p->cred2, "%s", c2);
    } else if (!strcmp(via, "smtp")) {
        p->provider = PROV_SMTP;
        const char *host = col(r, 28), *tls = col(r, 30), *from = col(r, 33);
        if (!*host || !*from) {
            p->action = PLAN_FAIL;
            snprintf(p->why, sizeof p->why, "SMTP needs smtp_host and smtp_from (PATCH /v1/nurture/settings)");
            return;
        }
        p->smtp_tls = !strcmp(tls, "none") ? 0 : !strcmp(tls, "implicit") ? 2 : 1;
        int port = (int)store_rows_int(r, 0, 29);
        if (!port) port = p->smtp_tls == 2 ? 465 : p->smtp_tls == 1 ? 587 : 25;
        snprintf(p->smtp_url, sizeof p->smtp_url, "%s://%s:%d", p->smtp_tls == 2 ? "smtps" : "smtp", host, port);
        snprintf(p->smtp_user, sizeof p->smtp_user, "%s", col(r, 31));
        if (nurture_secret_read(col(r, 32), p->secrets_dir, p->smtp_pass, sizeof p->smtp_pass, e, sizeof e)) {
            p->action = PLAN_FAIL;
            snprintf(p->why, sizeof p->why, "SMTP password: %.200s", e);
            return;
        }
        snprintf(p->from, sizeof p->from, "%s", from);
        /* the same step is the same Message-ID: a receiver can drop a
         * repeat after a crash between its 250 and our record */
        const char *at = strchr(from, '@');
        const char *dom = at && at[1] ? at + 1 : "localhost";
        if (p->j->message)
            snprintf(p->msgid, sizeof p->msgid, "<%lld.m%lld.ehub@%.100s>", (long long)p->j->tenant,
                     (long long)p->j->message, dom);
        else
            snprintf(p->msgid, sizeof p->msgid, "<%lld.%lld.%d.ehub@%.100s>", (long long)p->j->tenant,
                     (long long)p->j->enrollment, p->j->step, dom);
    } else {
        p->provider = PROV_SENDGRID;
        const char *c1 = col(r, 19), *from = col(r, 20);
        if (!*c1 || !*from) {
            p->action = PLAN_FAIL;
            snprintf(p->why, sizeof p->why, "SendGrid is not configured for this tenant (PATCH /v1/nurture/settings)");
            return;
        }
        snprintf(p->from, sizeof p->from, "%s", from);
        snprintf(p->cred1, sizeof p->cred1, "%s", c1);
    }
}

/* Columns 3-36 of a plan's read, the same for a sequence step and a
 * one-off message, so plan_provider reads either. */
#define PLAN_LEAD_COLS                                                                                                 \
    "l.first_name, l.last_name, l.email, l.phone, "                                                                    \
    "l.consent_sms, l.consent_email, l.dnd, l.timezone, g.name, g.phone, g.email, t.name, t.slug, "                    \
    "n.twilio_account_sid, n.twilio_auth_token, n.twilio_from, n.sendgrid_api_key, n.sendgrid_from, "                  \
    "COALESCE(n.quiet_start, 1260), COALESCE(n.quiet_end, 480), COALESCE(n.daily_cap, 3), "                            \
    "l.deleted_at, l.status, COALESCE(n.email_via, 'sendgrid'), COALESCE(n.sms_via, 'twilio'), "                       \
    "n.smtp_host, COALESCE(n.smtp_port, 0), COALESCE(n.smtp_tls, 'starttls'), n.smtp_user, "                           \
    "n.smtp_password_from, n.smtp_from, n.ghl_api_key, l.ghl_contact_id, l.score"

/* A one-off message by an agent (POST /v1/leads/{id}/messages): what the
 * agent wrote, sent as written. It is a conversational reply, not
 * marketing: quiet hours and the daily cap do not hold it back (README
 * "One-off messages"). Consent and do-not-disturb were checked when it was
 * queued and are checked again here, as they may have changed since (a
 * STOP in between): then it fails, and its activity says so. */
static int plan_message_tx(store_tx *tx, plan *p, store_err *err) {
    job *j = p->j;
    store_val a[] = {SV_I(j->tenant), SV_I(j->message)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT 'active', m.lead_id, m.channel, " PLAN_LEAD_COLS ", m.activity_id, l.agent_id, "
                         "m.subject, a.body "
                         "FROM nurture_messages m JOIN leads l ON l.id = m.lead_id JOIN tenants t ON t.id = m.tenant_id "
                         "JOIN activities a ON a.id = m.activity_id "
                         "LEFT JOIN agents g ON g.id = l.agent_id AND g.tenant_id = l.tenant_id "
                         "LEFT JOIN nurture_settings n ON n.tenant_id = m.tenant_id "
                         "WHERE m.tenant_id = $1 AND m.id = $2",
                         a, 2, &r, err);
    if (rc) return rc;
    if (!store_rows_count(r)) {
        snprintf(p->why, sizeof p->why, "no such message");
        store_rows_free(r);
        return STORE_OK;
    }
    p->lead_id = store_rows_int(r, 0, 1);
    p->activity_id = store_rows_int(r, 0, 37);
    p->agent_id = store_rows_isnull(r, 0, 38) ? 0 : store_rows_int(r, 0, 38);
    snprintf(p->slug, sizeof p->slug, "%s", col(r, 15));
    snprintf(p->type, sizeof p->type, "%s", col(r, 2));
    int sms = !strcmp(p->type, "sms");
    p->action = PLAN_FAIL;
    if (!store_rows_isnull(r, 0, 24) || store_rows_isnull(r, 0, 40))
        snprintf(p->why, sizeof p->why, "the lead was deleted or erased");
    else if (store_rows_int(r, 0, 9))
        snprintf(p->why, sizeof p->why, "do not disturb");
    else if (!*col(r, sms ? 6 : 5))
        snprintf(p->why, sizeof p->why, "%s", sms ? "no phone number" : "no email address");
    else if (!store_rows_int(r, 0, sms ? 7 : 8))
        snprintf(p->why, sizeof p->why, "%s", sms ? "no SMS consent" : "no email consent");
    else if ((sms ? buf_puts(&p->body, col(r, 40)) : nurture_text_to_html(col(r, 40), &p->body)))
        snprintf(p->why, sizeof p->why, "the message is too long");
    else {
        p->action = PLAN_SEND;
        snprintf(p->subject, sizeof p->subject, "%s", col(r, 39));
        snprintf(p->to, sizeof p->to, "%s", col(r, sms ? 6 : 5));
        plan_provider(p, r, sms);
    }
    store_rows_free(r);
    return STORE_OK;
}

static int plan_tx(store_tx *tx, void *arg, store_err *err) {
    plan *p = arg;
    job *j = p->j;
    buf_reset(&p->body);
    json_decref(p->steps);
    p->steps = NULL;
    p->action = PLAN_DROP;
    if (j->message) return plan_message_tx(tx, p, err);
    store_val a[] = {SV_I(j->tenant), SV_I(j->enrollment)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT e.state, e.lead_id, s.steps, " PLAN_LEAD_COLS ", e.created_at, l.agent_id "
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
        p->agent_id = store_rows_int(r, 0, 38);
        buf_puts(&p->body, json_string_value(json_object_get(st, "text")));
        store_rows_free(r);
        return STORE_OK;
    }
    if (!strcmp(type, "branch")) {
        rc = plan_branch(tx, p, st, r, err);
        store_rows_free(r);
        return rc;
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
        if (bad) {
            p->action = PLAN_FAIL;
            snprintf(p->why, sizeof p->why, "%.250s", e);
        } else {
            p->action = PLAN_SEND;
            snprintf(p->to, sizeof p->to, "%s", col(r, sms ? 6 : 5));
            plan_provider(p, r, sms);
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
    struct curl_slist *hd, *rcpt;
    char *form, *json;
    buf body;          /* the answer (ids and errors; capped) */
    buf mail;          /* SMTP: the message */
    size_t mail_off;
    char msgid[200];   /* SendGrid's X-Message-Id; SMTP: our Message-ID */
    int64_t retry_after_ms; /* a 429's Retry-After */
    int provider;
    char errbuf[CURL_ERROR_SIZE];
    CURLcode cc;
} sendreq;

static size_t on_body(char *d, size_t sz, size_t n, void *ud) {
    sendreq *r = ud;
    buf_append(&r->body, d, sz * n); /* past the cap the rest is dropped: we only read ids and errors */
    return sz * n;
}

static void header_value(const char *d, size_t len, size_t name, char *out, size_t cap) {
    const char *v = d + name;
    while (v < d + len && *v == ' ') v++;
    size_t vl = (size_t)(d + len - v);
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n')) vl--;
    snprintf(out, cap, "%.*s", (int)vl, v);
}

static size_t on_header(char *d, size_t sz, size_t n, void *ud) {
    sendreq *r = ud;
    size_t len = sz * n;
    if (len > 14 && !strncasecmp(d, "X-Message-Id:", 13)) header_value(d, len, 13, r->msgid, sizeof r->msgid);
    if (len > 12 && !strncasecmp(d, "Retry-After:", 12)) {
        char v[32];
        header_value(d, len, 12, v, sizeof v);
        long secs = strtol(v, NULL, 10); /* seconds; an HTTP date is read as "soon" */
        r->retry_after_ms = (secs > 0 && secs < 3600 ? secs : 1) * 1000;
    }
    return len;
}

static size_t on_read(char *d, size_t sz, size_t n, void *ud) {
    sendreq *r = ud;
    size_t left = r->mail.len - r->mail_off, k = sz * n < left ? sz * n : left;
    memcpy(d, r->mail.p + r->mail_off, k);
    r->mail_off += k;
    return k;
}

static int send_begin(nurture_ctx *c, plan *p, sendreq *r) {
    memset(r, 0, sizeof *r);
    buf_init(&r->body, 65536);
    buf_init(&r->mail, NURTURE_MAX_BODY * 5 + 8192);
    r->provider = p->provider;
    if (!(r->h = curl_easy_init())) return -1;
    CURL *h = r->h;
    char url[1200], hdr[400], cb[1200];
    const char *protocols = "http,https";
    if (p->provider == PROV_TWILIO) {
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
    } else if (p->provider == PROV_SENDGRID) {
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
    } else if (p->provider == PROV_GHL) {
        /* conversations/messages: a message to a contact, over the
         * channel GHL has for it (the contact's phone or email) */
        snprintf(url, sizeof url, "%s/conversations/messages", c->ghl_url);
        int sms = !strcmp(p->type, "sms");
        json_t *m = sms ? json_pack("{s:s, s:s, s:s}", "type", "SMS", "contactId", p->to, "message",
                                    p->body.p ? p->body.p : "")
                        : json_pack("{s:s, s:s, s:s, s:s}", "type", "Email", "contactId", p->to, "subject",
                                    p->subject, "html", p->body.p ? p->body.p : "");
        r->json = m ? json_dumps(m, JSON_COMPACT) : NULL;
        json_decref(m);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->json ? r->json : "{}");
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", p->cred1);
        r->hd = curl_slist_append(r->hd, hdr);
        r->hd = curl_slist_append(r->hd, "Version: 2021-04-15");
        r->hd = curl_slist_append(r->hd, "Content-Type: application/json");
        r->hd = curl_slist_append(r->hd, "Accept: application/json");
    } else { /* SMTP */
        snprintf(url, sizeof url, "%s", p->smtp_url);
        protocols = "smtp,smtps";
        snprintf(r->msgid, sizeof r->msgid, "%s", p->msgid);
        if (nurture_mime(&r->mail, p->from, p->to, p->subject, p->body.p ? p->body.p : "", p->msgid, p->now)) {
            curl_easy_cleanup(h);
            r->h = NULL;
            return -1;
        }
        snprintf(hdr, sizeof hdr, "<%s>", p->from);
        curl_easy_setopt(h, CURLOPT_MAIL_FROM, hdr);
        snprintf(hdr, sizeof hdr, "<%s>", p->to);
        r->rcpt = curl_slist_append(NULL, hdr);
        curl_easy_setopt(h, CURLOPT_MAIL_RCPT, r->rcpt);
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, r);
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)(p->smtp_tls == 1 ? CURLUSESSL_ALL : CURLUSESSL_NONE));
        if (p->smtp_user[0]) {
            curl_easy_setopt(h, CURLOPT_USERNAME, p->smtp_user);
            curl_easy_setopt(h, CURLOPT_PASSWORD, p->smtp_pass);
        }
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (r->hd) curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->hd);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)SEND_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(h, CURLOPT_PRIVATE, r);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protocols);
    return 0;
}

/* The request's memory; again or on a zeroed one does nothing. */
static void send_free(sendreq *r) {
    if (r->h) curl_easy_cleanup(r->h);
    curl_slist_free_all(r->hd);
    curl_slist_free_all(r->rcpt);
    free(r->form);
    free(r->json);
    buf_free(&r->body);
    buf_free(&r->mail);
    r->h = NULL;
    r->hd = r->rcpt = NULL;
    r->form = r->json = NULL;
}

/* 1 when the provider took the message (its id in id), else 0 with err
 * and *retryable: no answer, 408, 429, 5xx (SMTP: no answer or 4xx). */
static int send_end(sendreq *r, char *id, size_t idlen, char *err, size_t errlen, int *retryable, long *status_out) {
    long status = 0;
    int ok = 0;
    *retryable = 0;
    if (!r->h) {
        snprintf(err, errlen, "out of memory");
    } else if (r->provider == PROV_SMTP) {
        /* the last reply code: 250 after the data, or the one that refused */
        curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
        if (r->cc == CURLE_OK) {
            ok = 1;
            snprintf(id, idlen, "%s", r->msgid);
        } else {
            snprintf(err, errlen, "SMTP %ld: %.200s", status, r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->cc));
            /* a server without the STARTTLS we require, or one that refuses
             * our login, is a setting to fix: retrying cannot help */
            *retryable = status < 500 && r->cc != CURLE_USE_SSL_FAILED && r->cc != CURLE_LOGIN_DENIED;
        }
    } else if (r->cc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(r->cc));
        *retryable = 1;
    } else {
        curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
        ok = status >= 200 && status < 300;
        *retryable = !ok && (status == 408 || status == 429 || status >= 500);
        json_t *j = r->provider != PROV_SENDGRID && r->body.p ? json_loads(r->body.p, 0, NULL) : NULL;
        const char *msg = json_string_value(json_object_get(j, "message"));
        if (r->provider == PROV_TWILIO) {
            const char *sid = json_string_value(json_object_get(j, "sid"));
            snprintf(id, idlen, "%s", sid ? sid : "");
            if (!ok) snprintf(err, errlen, "Twilio %ld: %.200s", status, msg ? msg : "error");
        } else if (r->provider == PROV_GHL) {
            const char *mid = json_string_value(json_object_get(j, "messageId"));
            snprintf(id, idlen, "%s", mid ? mid : "");
            if (!ok) snprintf(err, errlen, "GoHighLevel %ld: %.200s", status, msg ? msg : "error");
        } else {
            snprintf(id, idlen, "%s", r->msgid);
            if (!ok) snprintf(err, errlen, "SendGrid %ld: %.200s", status, r->body.p ? r->body.p : "");
        }
        json_decref(j);
    }
    send_free(r);
    *status_out = status;
    return ok;
}

/* ---- recording the outcome ---- */

typedef struct outcome {
    plan *p;
    int ok;              /* sent (or task done, or step skipped): go on */
    int retry;           /* a retryable failure: due again later */
    int throttled;       /* a 429: not an attempt */
    int64_t not_before;  /* the provider's Retry-After */
    char result[400];
    char provider_id[200];
} outcome;

/* A one-off message's outcome: its activity (written, "queued", when the
 * agent sent it) becomes "sent" with the provider's id, which the
 * provider's status callbacks then move on (delivered, undelivered...),
 * or "failed" for good (dead letter). */
/* How far a Twilio status has gone: a later callback never moves it back. */
static int twilio_rank(const char *s) {
    static const char *const last[] = {"delivered", "undelivered", "failed", "read", NULL};
    for (int i = 0; last[i]; i++)
        if (!strcmp(s, last[i])) return 3;
    return !strcmp(s, "sent") ? 2 : 1;
}

/* Twilio may call back before this record commits (its answer and its
 * "sent" callback race): such a callback found no activity with the sid
 * yet, but it is in the webhook inbox ("SID:status"). The furthest status
 * there is the message's. Looked up by exact ids, on the inbox's primary
 * key (a prefix range would depend on PostgreSQL's collation). */
static int twilio_early_status(store_tx *tx, int64_t tenant, const char *sid, char *out, size_t cap, store_err *err) {
    static const char *const sts[] = {"sent", "delivered", "undelivered", "failed", "read"};
    char ids[5][220];
    store_val q[6] = {SV_I(tenant)};
    for (int i = 0; i < 5; i++) {
        snprintf(ids[i], sizeof ids[i], "%s:%s", sid, sts[i]);
        q[i + 1] = SV_S(ids[i]);
    }
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT webhook_id FROM webhook_inbox WHERE tenant_id = $1 AND provider = 'twilio' "
                         "AND webhook_id IN ($2, $3, $4, $5, $6)",
                         q, 6, &r, err);
    if (rc) return rc;
    int best = 0;
    for (int i = 0; i < store_rows_count(r); i++) {
        const char *st = store_rows_text(r, i, 0) + strlen(sid) + 1;
        if (twilio_rank(st) > best) {
            best = twilio_rank(st);
            snprintf(out, cap, "%s", st);
        }
    }
    store_rows_free(r);
    return STORE_OK;
}

static int record_message(store_tx *tx, const outcome *o, store_err *err) {
    const plan *p = o->p;
    if (!p->activity_id) return STORE_OK; /* the message row is gone */
    char early[48] = "";
    if (o->ok && p->provider == PROV_TWILIO && o->provider_id[0]) {
        int rc = twilio_early_status(tx, p->j->tenant, o->provider_id, early, sizeof early, err);
        if (rc) return rc;
    }
    const char *status = !o->ok ? "failed" : early[0] && twilio_rank(early) > twilio_rank("sent") ? early : "sent";
    store_val u[] = {SV_I(p->j->tenant), SV_I(p->activity_id), SV_S(status),
                     o->ok && o->provider_id[0] ? SV_S(o->provider_id) : SV_NULLV};
    int rc = store_query(tx,
                         "UPDATE activities SET status = $3, provider_message_id = COALESCE($4, provider_message_id) "
                         "WHERE tenant_id = $1 AND id = $2",
                         u, 4, NULL, err);
    if (rc) return rc;
    json_t *ev = json_pack("{s:I, s:I, s:I, s:s, s:s, s:s, s:I}", "activity_id", (json_int_t)p->activity_id,
                           "lead_id", (json_int_t)p->lead_id, "message_id", (json_int_t)p->j->message, "channel",
                           p->type, "status", status, "result", o->result, "attempts", (json_int_t)p->j->attempts);
    if (p->action == PLAN_SEND) json_object_set_new(ev, "provider", json_string(prov_name[p->provider]));
    /* the realtime feed shows a lead's events to its agent by this */
    json_object_set_new(ev, "agent_id", p->agent_id ? json_integer(p->agent_id) : json_null());
    rc = leads_event(tx, o->ok ? "message.sent" : "message.failed", ev, err);
    json_decref(ev);
    return rc;
}

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
        int64_t due = now + (int64_t)(base + jit);
        if (o->not_before > due) due = o->not_before;
        store_val u[] = {SV_I(j->id), SV_I(due), SV_S(o->result), SV_I(now), SV_I(o->throttled)};
        /* a 429 is the provider pacing us, not a failure: it gives the attempt back */
        return store_query(tx, "UPDATE nurture_jobs SET state = 'queued', due_at = $2, result = $3, updated_at = $4, "
                               "attempts = attempts - $5 WHERE id = $1",
                           u, 5, NULL, err);
    }
    const char *state = p->action == PLAN_SKIP || p->action == PLAN_DROP ? "skipped" : o->ok ? "done" : "failed";
    store_val u[] = {SV_I(j->id), SV_S(state), SV_S(o->result), SV_I(now)};
    if ((rc = store_query(tx, "UPDATE nurture_jobs SET state = $2, result = $3, updated_at = $4 WHERE id = $1", u, 4,
                          NULL, err)))
        return rc;
    if (j->message) return record_message(tx, o, err);
    if (p->action == PLAN_DROP) return STORE_OK;
    if (o->ok && (p->action == PLAN_SEND || p->action == PLAN_TASK)) {
        activity_in ai = {.channel = p->action == PLAN_TASK ? "task" : p->type,
                          .direction = p->action == PLAN_TASK ? "none" : "outbound",
                          .body = p->body.p ? p->body.p : "",
                          .status = p->action == PLAN_TASK ? "open" : "queued",
                          .provider_message_id = o->provider_id[0] ? o->provider_id : NULL,
                          .occurred_at = now,
                          .automated = 1};
        int64_t aid;
        if ((rc = leads_add_activity(tx, p->lead_id, &ai, now, &aid, err))) return rc;
        if (p->action == PLAN_TASK) {
            /* the agent's to-do, on the realtime feed */
            json_t *tv = json_pack("{s:I, s:I, s:I, s:o, s:s}", "activity_id", (json_int_t)aid, "enrollment_id",
                                   (json_int_t)j->enrollment, "lead_id", (json_int_t)p->lead_id, "agent_id",
                                   p->agent_id ? json_integer(p->agent_id) : json_null(), "text",
                                   p->body.p ? p->body.p : "");
            rc = leads_event(tx, "nurture.task", tv, err);
            json_decref(tv);
            if (rc) return rc;
        }
    }
    json_t *ev = json_pack("{s:I, s:I, s:i, s:s, s:s, s:s}", "enrollment_id", (json_int_t)j->enrollment, "lead_id",
                           (json_int_t)p->lead_id, "step", j->step, "type", p->type, "state", state, "result",
                           o->result);
    if (p->action == PLAN_SEND) json_object_set_new(ev, "provider", json_string(prov_name[p->provider]));
    rc = leads_event(tx, o->ok || p->action == PLAN_SKIP ? "nurture.step" : "nurture.failed", ev, err);
    json_decref(ev);
    if (rc) return rc;
    /* a failed step does not stop the sequence: the lead may still get the next one */
    return nurture_schedule(tx, j->enrollment, p->steps, p->action == PLAN_BRANCH ? p->next_step : j->step + 1, now,
                            now, err);
}

/* One claimed step through plan, send and record; its own allocation, so
 * a call that hangs holds nothing but itself. */
typedef struct step_run {
    job j;
    plan p;
    outcome o;
    sendreq s;
    int planned, sending;
    int deferred; /* its tenant had TENANT_CALLS calls in flight: not sent, due again soon */
    struct nurture_ctx *c;
    struct step_run *next; /* in the done list */
} step_run;

/* p's request ended at `end`; retry_after_until > 0: GHL said wait until then. */
static void ghl_window_done(nurture_ctx *c, plan *p, int64_t end, int64_t retry_after_until) {
    nurture_limit_done(c->ghl_win, p->j->tenant, &p->win, end, retry_after_until);
}

static void settle(recorder *rc, step_run *r) {
    nurture_ctx *c = r->c;
    plan *p = &r->p;
    outcome *o = &r->o;
    job *j = p->j;
    o->p = p;
    if (p->action == PLAN_SEND && r->deferred) {
        /* never started: its place in GHL's window goes back, and the step
         * waits like any other (PLAN_WAIT gives the attempt back) */
        send_free(&r->s);
        if (p->provider == PROV_GHL) ghl_window_done(c, p, clock_wall_ms(), 0);
        p->action = PLAN_WAIT;
        p->reschedule = clock_wall_ms() + TENANT_DEFER_MS;
        snprintf(p->why, sizeof p->why, "waiting: the tenant has %d provider calls in flight", TENANT_CALLS);
        if (c->m_defer) metric_add(c->m_defer, NULL, 1);
    }
    switch (p->action) {
    case PLAN_SEND: {
        char e[300] = "";
        int retryable;
        long status;
        if (r->s.cc == CURLE_ABORTED_BY_CALLBACK) {
            /* cut at shutdown, or never started: maybe sent, maybe not. Due
             * again now, attempt given back; the same key makes a repeat
             * the same message. */
            send_end(&r->s, o->provider_id, sizeof o->provider_id, e, sizeof e, &retryable, &status);
            if (p->provider == PROV_GHL) ghl_window_done(c, p, clock_wall_ms(), 0);
            o->retry = o->throttled = 1;
            o->not_before = 0;
            o->provider_id[0] = 0;
            snprintf(o->result, sizeof o->result, "not sent: the server was stopping");
            break;
        }
        int ok = send_end(&r->s, o->provider_id, sizeof o->provider_id, e, sizeof e, &retryable, &status);
        int64_t end = clock_wall_ms();
        o->throttled = !ok && status == 429 && r->s.provider != PROV_SMTP;
        if (o->throttled) o->not_before = end + (r->s.retry_after_ms ? r->s.retry_after_ms : 1000);
        if (p->provider == PROV_GHL) ghl_window_done(c, p, end, o->throttled ? o->not_before : 0);
        /* being paced (429) is no sign the provider is down */
        breaker_note(c, j->tenant, p->provider, !ok && retryable && !o->throttled, p->now);
        if (c->m_prov) {
            const char *lv[] = {prov_name[p->provider], ok ? "sent" : o->throttled ? "throttled" : retryable ? "retry" : "failed"};
            metric_add(c->m_prov, lv, 1);
        }
        if (ok) {
            o->ok = 1;
            snprintf(o->result, sizeof o->result, "sent via %s (%s)", prov_name[p->provider],
                     o->provider_id[0] ? o->provider_id : "no id");
            rc->sent[strcmp(p->type, "sms") != 0]++;
        } else {
            /* retry what may succeed later: no answer, 408, 429, 5xx (SMTP: 4xx) */
            o->retry = retryable && (o->throttled || j->attempts < NURTURE_MAX_ATTEMPTS);
            snprintf(o->result, sizeof o->result, "%s%s", e[0] ? e : "provider error",
                     retryable && !o->retry ? " (gave up)" : "");
            if (!o->retry) rc->failed++;
        }
        break;
    }
    case PLAN_BRANCH:
        o->ok = 1;
        snprintf(o->result, sizeof o->result, "%s", p->why);
        break;
    case PLAN_TASK:
        o->ok = 1;
        snprintf(o->result, sizeof o->result, "task created");
        break;
    case PLAN_FAIL:
        rc->failed++;
        snprintf(o->result, sizeof o->result, "%s", p->why);
        break;
    default:
        snprintf(o->result, sizeof o->result, "%s", p->why);
    }
}

/* One tenant's runs: runs[from..to). */
typedef struct run_group {
    step_run **runs;
    int from, to;
} run_group;

static int plan_many_tx(store_tx *tx, void *arg, store_err *err) {
    run_group *m = arg;
    int rc = 0;
    for (int i = m->from; i < m->to && !rc; i++) {
        m->runs[i]->planned = 0;
        if (!(rc = plan_tx(tx, &m->runs[i]->p, err))) m->runs[i]->planned = 1;
    }
    return rc;
}

static int record_many_tx(store_tx *tx, void *arg, store_err *err) {
    run_group *m = arg;
    int rc = 0;
    for (int i = m->from; i < m->to && !rc; i++)
        if (m->runs[i]->planned) rc = record_tx(tx, &m->runs[i]->o, err);
    return rc;
}

static void run_free(step_run *r) {
    send_free(&r->s); /* a request built and never sent */
    json_decref(r->p.steps);
    buf_free(&r->p.body);
    eh_free(r);
}

/* On the pool: claim due steps, plan each, build its request. */
static void claim_work(uv_work_t *w) {
    claimer *k = w->data;
    nurture_ctx *c = k->c;
    store_err err = {0};
    k->n = 0;
    k->cl.n = 0;
    if (store_write(c->a->st, 0, claim_tx, &k->cl, &err)) {
        log_msg(c->a->log, LOG_WARN, "nurture: cannot claim steps", err.msg);
        k->cl.n = 0;
        return;
    }
    int64_t now = clock_wall_ms();
    for (int i = 0; i < k->cl.n; i++) {
        /* allocated for the steps claimed only: a tick that finds nothing
         * due allocates nothing */
        step_run *r = eh_calloc(1, sizeof *r);
        if (!r) { /* left "sending": the lease brings it back */
            log_msg(c->a->log, LOG_ERROR, "nurture: out of memory for a claimed step", NULL);
            continue;
        }
        r->j = k->cl.jobs[i];
        r->c = c;
        r->p.j = &r->j;
        r->p.now = now;
        r->p.secrets_dir = c->secrets_dir;
        buf_init(&r->p.body, NURTURE_MAX_BODY + 1);
        k->runs[k->n++] = r;
    }
    /* one read transaction per tenant (the claim put each tenant's steps together) */
    for (int i = 0; i < k->n;) {
        int e = i;
        while (e < k->n && k->runs[e]->j.tenant == k->runs[i]->j.tenant) e++;
        run_group m = {k->runs, i, e};
        if (store_read(c->a->st, k->runs[i]->j.tenant, plan_many_tx, &m, &err)) {
            /* storage trouble: leave them "sending"; the lease brings them back */
            log_msg(c->a->log, LOG_WARN, "nurture: cannot plan steps", err.msg);
            for (int x = i; x < e; x++) k->runs[x]->planned = 0;
        }
        i = e;
    }
    for (int i = 0; i < k->n; i++) {
        step_run *r = k->runs[i];
        if (!r->planned) continue;
        r->p.win = (nurture_lease){.slot = -1};
        int64_t until = r->p.action == PLAN_SEND ? breaker_open_until(c, r->j.tenant, r->p.provider, now) : 0;
        if (until) {
            r->p.action = PLAN_WAIT;
            r->p.reschedule = until;
            snprintf(r->p.why, sizeof r->p.why, "circuit open: the provider failed %d times in a row", BREAKER_FAILS);
        } else if (r->p.action == PLAN_SEND && r->p.provider == PROV_GHL) {
            /* GHL's limit, counted here so its 429s stay rare */
            if ((until = nurture_limit_take(c->ghl_win, r->j.tenant, now, &r->p.win))) {
                r->p.action = PLAN_WAIT;
                r->p.reschedule = until;
                snprintf(r->p.why, sizeof r->p.why, "GoHighLevel rate limit: %d sends per %lld ms",
                         nurture_limit_max(c->ghl_win), (long long)nurture_limit_window_ms(c->ghl_win));
            }
        }
        if (r->p.action == PLAN_SEND) {
            r->sending = 1;
            if (send_begin(c, &r->p, &r->s)) r->s.cc = CURLE_OUT_OF_MEMORY;
        }
    }
}

static int run_by_tenant(const void *x, const void *y) {
    const step_run *a = *(step_run *const *)x, *b = *(step_run *const *)y;
    return job_by_tenant(&a->j, &b->j);
}

/* On the pool: the outcomes into storage, each tenant's in one transaction. */
static void record_work(uv_work_t *w) {
    recorder *rc = w->data;
    nurture_ctx *c = rc->c;
    store_err err = {0};
    /* they ended in any order: each tenant's together */
    qsort(rc->runs, (size_t)rc->n, sizeof rc->runs[0], run_by_tenant);
    for (int i = 0; i < rc->n;) {
        int k = i;
        while (k < rc->n && rc->runs[k]->j.tenant == rc->runs[i]->j.tenant) {
            if (rc->runs[k]->planned) settle(rc, rc->runs[k]);
            k++;
        }
        run_group m = {rc->runs, i, k};
        if (store_write(c->a->st, rc->runs[i]->j.tenant, record_many_tx, &m, &err)) {
            /* one at a time, so one bad step cannot hold back the others */
            for (int x = i; x < k; x++) {
                step_run *r = rc->runs[x];
                if (r->planned && store_write(c->a->st, r->j.tenant, record_tx, &r->o, &err))
                    log_msg(c->a->log, LOG_ERROR, "nurture: cannot record a step (it will be retried)", err.msg);
            }
        }
        i = k;
    }
}

static void record_done(uv_work_t *w, int status);

/* The ended steps to recorders (all of them to the first free one). */
static void record_start(nurture_ctx *c) {
    for (int i = 0; i < RECORDERS && c->done && !c->freed; i++) {
        recorder *rc = &c->recorders[i];
        if (rc->busy) continue;
        rc->c = c;
        rc->work.data = rc;
        rc->n = 0;
        /* at most c->out (<= CALLS_MAX) are out, so all of them fit */
        while (c->done && rc->n < CALLS_MAX) {
            step_run *r = c->done;
            c->done = r->next;
            r->next = NULL;
            rc->runs[rc->n++] = r;
        }
        if (!c->done) c->done_tail = NULL;
        if (uv_queue_work(c->a->loop, &rc->work, record_work, record_done)) {
            /* cannot happen with a valid loop; the lease brings the steps back */
            for (int x = 0; x < rc->n; x++) run_free(rc->runs[x]);
            c->out -= rc->n;
            rc->n = 0;
            return;
        }
        rc->busy = 1;
        c->recording++;
        c->busy++;
    }
}

static void on_check(uv_check_t *h) {
    nurture_ctx *c = h->data;
    uv_check_stop(h);
    record_start(c);
}

/* A step's outcome is known (or it never went out): to storage with the
 * others that end in this turn of the loop. */
static void done_push(nurture_ctx *c, step_run *r) {
    if (c->freed) { /* the store may be gone: the lease brings the step back */
        run_free(r);
        c->out--;
        return;
    }
    r->next = NULL;
    if (c->done_tail) c->done_tail->next = r;
    else c->done = r;
    c->done_tail = r;
    if (c->stopping) record_start(c); /* the check handle is closed */
    else uv_check_start(&c->check, on_check);
}

/* Calls in flight per tenant: 0 and one more counted, or -1 at the cap. */
static int tenant_call_add(nurture_ctx *c, int64_t tenant) {
    for (int i = 0; i < c->ntcalls; i++)
        if (c->tcalls[i].tenant == tenant) {
            if (c->tcalls[i].n >= TENANT_CALLS) return -1;
            c->tcalls[i].n++;
            return 0;
        }
    if (c->ntcalls == CALLS_MAX) return -1; /* cannot be: calls in flight <= out <= CALLS_MAX */
    c->tcalls[c->ntcalls++] = (tenant_calls){tenant, 1};
    return 0;
}

static void tenant_call_drop(nurture_ctx *c, int64_t tenant) {
    for (int i = 0; i < c->ntcalls; i++)
        if (c->tcalls[i].tenant == tenant) {
            if (--c->tcalls[i].n == 0) c->tcalls[i] = c->tcalls[--c->ntcalls];
            return;
        }
}

static void on_sent(CURL *h, CURLcode cc, void *ud) {
    step_run *r = ud;
    nurture_ctx *c = r->c;
    (void)h;
    r->s.cc = cc;
    tenant_call_drop(c, r->j.tenant);
    done_push(c, r);
}

static void claim_start(nurture_ctx *c, int wanted);
static int ctx_idle(const nurture_ctx *c);
static void ctx_release(nurture_ctx *c);

/* On the loop: the claim's requests to the provider, each on its own. */
static void claim_done(uv_work_t *w, int status) {
    claimer *k = w->data;
    nurture_ctx *c = k->c;
    (void)status;
    k->busy = 0;
    c->claiming--;
    c->busy--;
    c->out += k->n;
    for (int i = 0; i < k->n; i++) {
        step_run *r = k->runs[i];
        k->runs[i] = NULL;
        if (!r->sending || !r->s.h || r->s.cc != CURLE_OK) {
            done_push(c, r);
            continue;
        }
        if (tenant_call_add(c, r->j.tenant)) {
            r->deferred = 1;
            done_push(c, r);
            continue;
        }
        /* refused (stopping, or full): not sent, queued again */
        if (curlloop_add(c->curl, r->s.h, on_sent, r)) {
            tenant_call_drop(c, r->j.tenant);
            r->s.cc = CURLE_ABORTED_BY_CALLBACK;
            done_push(c, r);
        }
    }
    c->more = k->cl.n == BATCH;
    k->n = 0;
    if (c->freed && ctx_idle(c)) {
        ctx_release(c);
        return;
    }
    claim_start(c, 0);
}

static void record_done(uv_work_t *w, int status) {
    recorder *rc = w->data;
    nurture_ctx *c = rc->c;
    (void)status;
    for (int i = 0; i < rc->n; i++) run_free(rc->runs[i]);
    c->out -= rc->n;
    rc->n = 0;
    rc->busy = 0;
    c->recording--;
    c->busy--;
    if (c->freed) { /* nurture_free ran while it was out */
        if (ctx_idle(c)) ctx_release(c);
        return;
    }
    if (c->m_sent) {
        const char *sms[] = {"sms"}, *email[] = {"email"};
        if (rc->sent[0]) metric_add(c->m_sent, sms, (double)rc->sent[0]);
        if (rc->sent[1]) metric_add(c->m_sent, email, (double)rc->sent[1]);
        if (rc->failed) metric_add(c->m_fail, NULL, (double)rc->failed);
    }
    rc->sent[0] = rc->sent[1] = rc->failed = 0;
    record_start(c); /* what ended while both were busy */
    claim_start(c, 0);
}

/* Claims while there is room: one when wanted (a tick, an event), more
 * while the last one was full. */
static void claim_start(nurture_ctx *c, int wanted) {
    while (!c->stopping && (wanted || c->more) && c->claiming < CLAIMERS &&
           c->out + (c->claiming + 1) * BATCH <= CALLS_MAX) {
        claimer *k = NULL;
        for (int i = 0; i < CLAIMERS && !k; i++)
            if (!c->claimers[i].busy) k = &c->claimers[i];
        k->c = c;
        k->work.data = k;
        k->n = 0;
        if (uv_queue_work(c->a->loop, &k->work, claim_work, claim_done)) return;
        k->busy = 1;
        c->claiming++;
        c->busy++;
        wanted = 0;
    }
}

static int ctx_idle(const nurture_ctx *c) {
    return c->freed && c->closed && c->curl_closed && !c->busy && !c->done;
}

static void ctx_release(nurture_ctx *c) {
    pthread_mutex_destroy(&c->bmu);
    nurture_limit_free(c->ghl_win);
    nurture_bg_free(c->bg);
    eh_free(c);
}

static void bg_run(uv_work_t *w) {
    nurture_ctx *c = w->data;
    nurture_bg_work(c->bg);
}

static void bg_record(uv_work_t *w) {
    nurture_ctx *c = w->data;
    nurture_bg_record(c->bg);
}

static void bg_done(uv_work_t *w, int status);

static void bg_sent(void *ud) {
    nurture_ctx *c = ud;
    if (uv_queue_work(c->a->loop, &c->bg_work, bg_record, bg_done)) bg_done(&c->bg_work, UV_ECANCELED);
}

static void bg_planned(uv_work_t *w, int status) {
    nurture_ctx *c = w->data;
    (void)status;
    if (!nurture_bg_send(c->bg, c->curl, bg_sent, c)) bg_sent(c);
}

static void bg_done(uv_work_t *w, int status) {
    nurture_ctx *c = w->data;
    (void)status;
    c->bg_busy = 0;
    c->busy--;
    if (ctx_idle(c)) ctx_release(c);
}

static void on_tick(uv_timer_t *t) {
    nurture_ctx *c = t->data;
    /* enrichment and the cold scan: their own pace, one at a time */
    if (!c->stopping && !c->bg_busy && nurture_bg_due(c->bg, clock_wall_ms())) {
        c->bg_work.data = c;
        if (!uv_queue_work(c->a->loop, &c->bg_work, bg_run, bg_planned)) {
            c->bg_busy = 1;
            c->busy++;
        }
    }
    claim_start(c, 1);
}

/* A speed-to-lead first touch or an agent's one-off would otherwise wait
 * for the next tick (50 ms on average). Their events start a claim at
 * once; at most one per KICK_MIN_MS, so a burst of enrolments (an import,
 * a webhook storm) costs a claim every few ms, not one each. Events of
 * other nodes kick too: whichever node claims first sends (SKIP LOCKED). */
#define KICK_MIN_MS 10
static void on_event(void *ud, const store_event *ev) {
    app *a = ud;
    nurture_ctx *c = a->nurture;
    if (!c || c->stopping || !ev->type) return;
    if (strcmp(ev->type, "nurture.enrolled") && strcmp(ev->type, "message.queued")) return;
    uint64_t now = uv_now(a->loop);
    if (c->last_kick && now - c->last_kick < KICK_MIN_MS) return;
    c->last_kick = now;
    claim_start(c, 1);
}

int nurture_wake_start(app *a) { return realtime_subscribe(a, on_event, a); }

static void on_closed(uv_handle_t *h) {
    nurture_ctx *c = h->data;
    if (--c->handles_open) return;
    c->closed = 1;
    if (ctx_idle(c)) ctx_release(c);
}

static void on_curl_closed(void *ud) {
    nurture_ctx *c = ud;
    c->curl_closed = 1;
    c->curl = NULL;
    if (ctx_idle(c)) ctx_release(c);
}

void nurture_stop(nurture_ctx *c) {
    if (!c || c->stopping) return;
    c->stopping = 1;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_closed);
    uv_close((uv_handle_t *)&c->check, on_closed);
    record_start(c); /* what the check would have taken */
    uint64_t grace = NURTURE_STOP_GRACE_MS;
    if (c->a->cfg.shutdown_timeout_ms && c->a->cfg.shutdown_timeout_ms < grace) grace = c->a->cfg.shutdown_timeout_ms;
    curlloop_close(c->curl, grace, on_curl_closed, c);
}

/* The memory goes when the timer and the check handle are closed and no
 * claim, call or record is out: after the loop has run its close
 * callbacks (main runs it once more after app_free). */
void nurture_free(nurture_ctx *c) {
    if (!c) return;
    nurture_stop(c);
    c->freed = 1;
    /* normally nothing is left (the loop ran until the recorders were
     * done); else the store may be gone: the lease brings the steps back */
    while (c->done) {
        step_run *r = c->done;
        c->done = r->next;
        run_free(r);
    }
    c->done_tail = NULL;
    if (ctx_idle(c)) ctx_release(c);
}

nurture_ctx *nurture_ctx_start(app *a) {
    nurture_ctx *c = eh_calloc(1, sizeof *c);
    if (!c) return NULL;
    /* before any pool thread uses libcurl: curlloop_new runs curl_global_init */
    if (!(c->curl = curlloop_new(a->loop, CURL_ACTIVE, CURL_QUEUED))) {
        eh_free(c);
        return NULL;
    }
    c->a = a;
    snprintf(c->twilio_url, sizeof c->twilio_url, "%s", a->cfg.twilio_url);
    snprintf(c->sendgrid_url, sizeof c->sendgrid_url, "%s", a->cfg.sendgrid_url);
    if (a->cfg.public_url[0]) snprintf(c->public_url, sizeof c->public_url, "%s", a->cfg.public_url);
    else snprintf(c->public_url, sizeof c->public_url, "http://%s:%d", a->cfg.host, a->cfg.port);
    c->m_sent = metrics_counter(a->m, "ehub_nurture_sent_total", "messages accepted by a provider", "channel");
    c->m_fail = metrics_counter(a->m, "ehub_nurture_failed_total", "nurture steps that failed for good", NULL);
    c->m_open = metrics_counter(a->m, "ehub_nurture_breaker_open_total", "times a provider's circuit opened", "channel");
    c->m_prov = metrics_counter(a->m, "ehub_nurture_provider_requests_total",
                                "provider calls by outcome (sent, retry, throttled, failed)", "provider,outcome");
    c->m_defer = metrics_counter(a->m, "ehub_nurture_deferred_total",
                                 "sends put off a second because their tenant had its most provider calls in flight", NULL);
    snprintf(c->ghl_url, sizeof c->ghl_url, "%s", a->cfg.ghl_url);
    snprintf(c->secrets_dir, sizeof c->secrets_dir, "%s/secrets", a->cfg.data_dir);
    int ghl_limit = a->cfg.ghl_limit > 0 ? a->cfg.ghl_limit : GHL_LIMIT;
    int64_t ghl_window_ms = a->cfg.ghl_window_ms ? a->cfg.ghl_window_ms : 10000;
    if (!(c->ghl_win = nurture_limit_new(a, "ghl", "GoHighLevel", "sends", ghl_limit, ghl_window_ms, GHL_HOLD_MS)) ||
        !(c->bg = nurture_bg_new(a))) {
        nurture_limit_free(c->ghl_win);
        curlloop_close(c->curl, 0, NULL, NULL);
        eh_free(c);
        return NULL;
    }
    pthread_mutex_init(&c->bmu, NULL);
    uv_timer_init(a->loop, &c->timer);
    uv_check_init(a->loop, &c->check);
    c->timer.data = c->check.data = c;
    c->handles_open = 2;
    uv_timer_start(&c->timer, on_tick, TICK_MS, TICK_MS);
    return c;
}
