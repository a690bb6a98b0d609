/* One-off messages: POST /v1/leads/{id}/messages, an agent's own SMS or
 * e-mail to a lead, sent for real through the tenant's provider.
 *
 * It is not a second sender: the request writes the lead's outbound
 * activity ("queued"), a nurture_messages row and a nurture_jobs row in one
 * transaction, and answers 202 only once that has committed. The dispatcher
 * (send.c) then claims it like a sequence step — the same provider choice,
 * idempotency key per send, retries with backoff, breaker, GoHighLevel
 * window and dead letter — and moves the activity to "sent" or "failed";
 * the provider's status callbacks move it on from there.
 *
 * Compliance (README "One-off messages"): no consent for the channel
 * (never given, or withdrawn by STOP / unsubscribe) or do-not-disturb is a
 * 409 and nothing is written. A reply the agent types is conversational,
 * not marketing (CTIA Messaging Principles and Best Practices §5: one-to-
 * one conversational messages are initiated by the consumer, with no
 * promotional content; the TCPA's marketing rules and the opt-out footer
 * govern marketing): so quiet hours, the daily cap and the STOP footer of
 * marketing templates do not apply. The agent writing to the lead is an
 * agent takeover (leads_add_activity applies the rule): the lead leaves
 * its sequences. */
#include <stdio.h>
#include <string.h>

#include "app/app.h"
#include "auth/auth.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "leads/leads.h"
#include "nurture.h"
#include "nurture_int.h"

#define SUBJECT_MAX 200 /* bytes of an e-mail subject */
#define SMS_MAX_SEGMENTS 10 /* Twilio's recommended ceiling (it refuses over 1,600 characters) */
#define CLIENT_KEY_MAX 128

typedef struct msg_req {
    char channel[8];
    char subject[SUBJECT_MAX + 1];
    char key[CLIENT_KEY_MAX + 1]; /* Idempotency-Key, or "" */
    char fingerprint[AUTH_HASH_HEX];
    int replayed;
} msg_req;

/* What makes two requests the same request: a retry carries all of it. */
static void fingerprint(int64_t lead, const char *channel, const char *subject, const char *body,
                        char out[AUTH_HASH_HEX]) {
    buf b;
    buf_init(&b, NURTURE_MAX_BODY * 2 + 1024);
    buf_printf(&b, "%lld", (long long)lead);
    buf_append(&b, "", 1);
    buf_puts(&b, channel);
    buf_append(&b, "", 1);
    buf_puts(&b, subject);
    buf_append(&b, "", 1);
    buf_puts(&b, body);
    auth_key_hash(b.p ? b.p : "", b.len, out);
    buf_free(&b);
}

static int reply_existing(store_tx *tx, api_job *j, msg_req *m, store_err *err, int *found) {
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_S(m->key)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT m.id, m.activity_id, m.fingerprint, a.status, m.channel FROM nurture_messages m "
                         "JOIN activities a ON a.id = m.activity_id WHERE m.tenant_id = $1 AND m.client_key = $2",
                         p, 2, &r, err);
    if (rc) return rc;
    *found = store_rows_count(r) > 0;
    if (*found) {
        const char *fp = store_rows_text(r, 0, 2);
        if (!fp || strcmp(fp, m->fingerprint)) {
            store_rows_free(r);
            return api_job_fail(j, 422, "idempotency_key_reused",
                                "this Idempotency-Key was used for a different message");
        }
        const char *st = store_rows_text(r, 0, 3);
        j->out = json_pack("{s:I, s:I, s:I, s:s, s:s}", "activity_id", (json_int_t)store_rows_int(r, 0, 1),
                           "message_id", (json_int_t)store_rows_int(r, 0, 0), "lead_id", (json_int_t)j->id, "channel",
                           store_rows_text(r, 0, 4), "status", st ? st : "queued");
        j->status = 202;
        m->replayed = 1;
        /* the first request's answer again: nothing was written, so there
         * is nothing to audit (README "Audit trail") */
        j->audited = 1;
    }
    store_rows_free(r);
    return STORE_OK;
}

static int message_tx(store_tx *tx, api_job *j, store_err *err) {
    msg_req *m = j->extra;
    int64_t tenant = store_tx_tenant(tx), now = clock_wall_ms();
    const char *body = json_string_value(json_object_get(j->in, "body"));
    int sms = !strcmp(m->channel, "sms");
    store_val lp[] = {SV_I(tenant), SV_I(j->id)};
    store_rows *r = NULL;
    int rc = store_query(tx,
                         "SELECT agent_id, consent_sms, consent_email, dnd, phone, email FROM leads "
                         "WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
                         lp, 2, &r, err);
    if (rc) return rc;
    if (!store_rows_count(r)) {
        store_rows_free(r);
        return api_job_fail(j, 404, "not_found", "no such lead");
    }
    int64_t owner = store_rows_isnull(r, 0, 0) ? 0 : store_rows_int(r, 0, 0);
    int consent = (int)store_rows_int(r, 0, sms ? 1 : 2), dnd = (int)store_rows_int(r, 0, 3);
    const char *addr = store_rows_text(r, 0, sms ? 4 : 5);
    int has_addr = addr && *addr;
    store_rows_free(r);
    /* an agent answers its own leads; an agent key bound to no agent owns none */
    if (j->p.role == ROLE_AGENT && (!j->p.agent_id || j->p.agent_id != owner))
        return api_job_fail(j, 403, "not_your_lead", "agents may only message their own leads");
    if (m->key[0]) {
        int found;
        if ((rc = reply_existing(tx, j, m, err, &found)) || found) return rc;
    }
    if (dnd) return api_job_fail(j, 409, "do_not_disturb", "the lead is set to do not disturb");
    if (!consent)
        return api_job_fail(j, 409, "no_consent",
                            sms ? "the lead has not consented to SMS, or opted out (STOP)"
                                : "the lead has not consented to e-mail, or unsubscribed");
    if (!has_addr)
        return api_job_fail(j, 422, "no_address", sms ? "the lead has no phone number" : "the lead has no e-mail address");
    /* the agent's own message: not automated, so it is an agent takeover */
    activity_in ai = {.channel = m->channel, .direction = "outbound", .body = body, .status = "queued",
                      .occurred_at = now};
    int64_t aid, mid;
    if ((rc = leads_add_activity(tx, j->id, &ai, now, &aid, err))) return rc;
    store_val mp[] = {SV_I(tenant), SV_I(j->id), SV_I(aid), SV_S(m->channel), sms ? SV_NULLV : SV_S(m->subject),
                      m->key[0] ? SV_S(m->key) : SV_NULLV, SV_S(m->fingerprint), SV_I(now)};
    rc = store_insert_returning(tx,
                                "INSERT INTO nurture_messages (tenant_id, lead_id, activity_id, channel, subject, "
                                "client_key, fingerprint, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                                "nurture_messages", "id", mp, 8, &r, err);
    if (rc) return rc;
    mid = store_rows_int(r, 0, 0);
    store_rows_free(r);
    /* the key the provider sees: one per message, the same for every attempt */
    char key[96];
    snprintf(key, sizeof key, "t%lld:m%lld", (long long)tenant, (long long)mid);
    store_val jp[] = {SV_I(tenant), SV_I(mid), SV_I(now), SV_S(key)};
    if ((rc = store_query(tx,
                          "INSERT INTO nurture_jobs (tenant_id, message_id, step, due_at, idem_key, created_at, "
                          "updated_at) VALUES ($1, $2, 0, $3, $4, $3, $3)",
                          jp, 4, NULL, err)))
        return rc;
    json_t *ev = json_pack("{s:I, s:I, s:I, s:s, s:s, s:o}", "activity_id", (json_int_t)aid, "lead_id",
                           (json_int_t)j->id, "message_id", (json_int_t)mid, "channel", m->channel, "status", "queued",
                           "agent_id", owner ? json_integer(owner) : json_null());
    rc = leads_event(tx, "message.queued", ev, err);
    json_decref(ev);
    if (rc) return rc;
    j->out = json_pack("{s:I, s:I, s:I, s:s, s:s}", "activity_id", (json_int_t)aid, "message_id", (json_int_t)mid,
                       "lead_id", (json_int_t)j->id, "channel", m->channel, "status", "queued");
    j->status = 202;
    return STORE_OK;
}

static void message_done(http_req *q, api_job *j) {
    msg_req *m = j->extra;
    if (m->replayed) http_res_header(q, "Idempotent-Replayed", "true");
    json_t *out = j->out;
    j->out = NULL;
    http_reply_json(q, j->status, out);
}

/* 1 if s is a usable Idempotency-Key: 1-128 visible ASCII characters. */
static int key_ok(const char *s) {
    size_t n = strlen(s);
    if (!n || n > CLIENT_KEY_MAX) return 0;
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e) return 0;
    return 1;
}

/* 1 if s holds a control character (a subject is one header line). */
static int has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
    return 0;
}

static void h_message(http_req *q, app *a, const auth_principal *p, void *ud) {
    (void)ud;
    int64_t id = api_parse_id(http_req_param(q, "id"));
    if (id < 0) {
        http_reply_error(q, 400, "invalid_id", "ids are positive integers");
        return;
    }
    const char *hk = http_req_header(q, "Idempotency-Key");
    if (hk && !key_ok(hk)) {
        http_reply_error(q, 400, "bad_idempotency_key", "Idempotency-Key: 1-128 visible ASCII characters");
        return;
    }
    json_t *in = http_req_json(q);
    if (!in) return;
    json_t *errors = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v) {
        if (strcmp(k, "channel") && strcmp(k, "body") && strcmp(k, "subject"))
            json_object_set_new(errors, k, json_string("unknown field"));
    }
    const char *channel = json_string_value(json_object_get(in, "channel"));
    int sms = channel && !strcmp(channel, "sms"), email = channel && !strcmp(channel, "email");
    if (!sms && !email) json_object_set_new(errors, "channel", json_string("sms or email"));
    json_t *bj = json_object_get(in, "body"), *sj = json_object_get(in, "subject");
    const char *body = json_string_value(bj);
    char why[160];
    why[0] = 0;
    if (!body || !*body || strspn(body, " \t\r\n") == strlen(body)) snprintf(why, sizeof why, "a non-empty string");
    else if (json_string_length(bj) != strlen(body)) snprintf(why, sizeof why, "no NUL characters");
    else if (sms) {
        nurture_sms_info si;
        nurture_sms_segments(body, &si);
        if (json_string_length(bj) > NURTURE_MAX_BODY || si.segments > SMS_MAX_SEGMENTS)
            snprintf(why, sizeof why, "at most %d SMS segments (this is %d, %s)", SMS_MAX_SEGMENTS, si.segments,
                     si.gsm7 ? "GSM-7" : "UCS-2");
    } else if (email) {
        /* the e-mail goes out as HTML: its escaped form must fit, as a template's does */
        buf h;
        buf_init(&h, NURTURE_MAX_BODY);
        if (nurture_text_to_html(body, &h))
            snprintf(why, sizeof why, "at most %d bytes once HTML-escaped", NURTURE_MAX_BODY);
        buf_free(&h);
    }
    if (why[0]) json_object_set_new(errors, "body", json_string(why));
    const char *subject = json_string_value(sj);
    if (email && (!subject || !*subject || json_string_length(sj) > SUBJECT_MAX || has_control(subject) ||
                  json_string_length(sj) != strlen(subject)))
        json_object_set_new(errors, "subject", json_string("an e-mail needs a subject: 1-200 bytes on one line"));
    if (sms && sj) json_object_set_new(errors, "subject", json_string("only an e-mail has a subject"));
    if (json_object_size(errors)) {
        json_decref(in);
        http_reply_json(q, 422, json_pack("{s:{s:s, s:s, s:s, s:o}}", "error", "code", "validation_failed", "message",
                                          "some fields are invalid", "request_id", http_req_id(q), "fields", errors));
        return;
    }
    json_decref(errors);
    msg_req *m = eh_calloc(1, sizeof *m);
    api_job *j = m ? api_job_for(q, a, p) : NULL;
    if (!j) {
        if (!m) http_reply_error(q, 503, "overloaded", "out of memory");
        eh_free(m);
        json_decref(in);
        return;
    }
    snprintf(m->channel, sizeof m->channel, "%s", channel);
    snprintf(m->subject, sizeof m->subject, "%s", email ? subject : "");
    snprintf(m->key, sizeof m->key, "%s", hk ? hk : "");
    fingerprint(id, m->channel, m->subject, body, m->fingerprint);
    j->in = in;
    j->id = id;
    j->write = 1;
    j->extra = m;
    j->extra_free = eh_free;
    j->fn = message_tx;
    j->on_done = message_done;
    api_job_run(q, j);
}

static const http_route_doc d_message = {
    "Send a one-off SMS or e-mail to a lead through the tenant's provider (agents: their own leads); "
    "Idempotency-Key makes a retry answer the first result; 409 without consent, after an opt-out or with DND",
    "nurture", "{channel: sms|email, body, subject (email)}", "202 {activity_id, message_id, lead_id, channel, status}"};

int nurture_message_register(app *a) {
    return app_route(a, "POST", "/v1/leads/{id}/messages", h_message, NULL, ROLES_LEAD_WRITE, &d_message);
}
