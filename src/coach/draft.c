/* LLM reply drafts for coaching answers.
 *
 * The built-in engine answers first; an LLM (src/llm) may then rephrase the
 * advice into a reply the agent can send. The prompt is built only from the
 * structured analysis (intents, objections and their phrases, what is known
 * and missing, sentiment, the suggestions' texts), never from the messages
 * themselves, and the whole prompt passes through pii_redact before it
 * leaves: the provider sees no e-mail, phone number, address...
 *
 * Coaching never waits on the provider beyond --llm-budget: the call runs on
 * the thread pool (libcurl, hard --llm-timeout) while a timer runs on the
 * loop. A draft ready within the budget goes in the same answer
 * ("draft": {"status": "ready", ...}); otherwise the answer leaves with
 * {"status": "pending", "id"} and the draft follows as a coaching.updated
 * event {lead_id, agent_id, draft} on the realtime feed (topic
 * coaching:{agent}), whether it succeeded or not. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "base/ids.h"
#include "base/pii.h"
#include "internal.h"
#include "llm/llm.h"

#define PROMPT_MAX (16 * 1024)

static const char SYSTEM_PROMPT[] =
    "You help a real-estate agent answer a lead by text message. You are given a structured analysis of the "
    "conversation and the coaching the agent received. Write the next message the agent could send: friendly, "
    "at most three short sentences, no placeholders, no personal data, and no promises about prices or rates. "
    "Answer with the message text only.";

static void add_list(buf *b, const char *title, json_t *arr, const char *key) {
    if (!json_array_size(arr)) return;
    buf_printf(b, "%s:\n", title);
    size_t i;
    json_t *h;
    json_array_foreach(arr, i, h) {
        const char *name = json_string_value(json_object_get(h, key));
        const char *phrase = json_string_value(json_object_get(h, "phrase"));
        if (!name) continue;
        if (phrase) buf_printf(b, "- %s (the lead said: \"%.200s\")\n", name, phrase);
        else buf_printf(b, "- %s\n", name);
    }
}

char *coach_draft_prompt(const json_t *coaching) {
    json_t *an = json_object_get(coaching, "analysis");
    buf b;
    buf_init(&b, PROMPT_MAX);
    buf_puts(&b, "Conversation analysis (personal data removed):\n");
    json_t *s = json_object_get(an, "sentiment");
    if (json_is_number(json_object_get(s, "average")))
        buf_printf(&b, "Lead sentiment: average %.2f, last %.2f, %s.\n", json_number_value(json_object_get(s, "average")),
                   json_number_value(json_object_get(s, "last")),
                   json_is_true(json_object_get(s, "dropping")) ? "dropping" : "not dropping");
    add_list(&b, "Buyer intents", json_object_get(an, "intents"), "intent");
    add_list(&b, "Objections", json_object_get(an, "objections"), "objection");
    json_t *q = json_object_get(an, "qualification");
    const char *k;
    json_t *v;
    int nk = 0;
    json_object_foreach(q, k, v) if (json_is_true(json_object_get(v, "known"))) {
        buf_printf(&b, "%s%s", nk++ ? ", " : "Known about the lead: ", k);
    }
    if (nk) buf_puts(&b, ".\n");
    json_t *miss = json_object_get(an, "missing");
    size_t i;
    if (json_array_size(miss)) {
        buf_puts(&b, "Still unknown: ");
        json_array_foreach(miss, i, v) buf_printf(&b, "%s%s", i ? ", " : "", json_string_value(v) ? json_string_value(v) : "");
        buf_puts(&b, ".\n");
    }
    json_t *sug = json_object_get(coaching, "suggestions");
    if (json_array_size(sug)) {
        buf_puts(&b, "Coaching for the agent, most urgent first:\n");
        json_array_foreach(sug, i, v) {
            const char *t = json_string_value(json_object_get(v, "type"));
            const char *it = json_string_value(json_object_get(v, "item"));
            const char *tx = json_string_value(json_object_get(v, "text"));
            if (t && tx) buf_printf(&b, "- [%s%s%s] %.1000s\n", t, it ? " " : "", it ? it : "", tx);
        }
    }
    buf_puts(&b, "Draft the agent's next message.\n");
    if (!b.p) {
        buf_free(&b);
        return NULL;
    }
    /* The analysis quotes redacted phrases already, but the playbook texts
     * are the tenant's and anything may be in them: redact it all. */
    size_t need = pii_redact(b.p, b.len, NULL, 0);
    char *out = eh_malloc(need + 1);
    if (out) pii_redact(b.p, b.len, out, need + 1);
    buf_free(&b);
    return out;
}

const char *coach_draft_system_prompt(void) { return SYSTEM_PROMPT; }

/* ---- the call ---- */

enum { D_WAITING, D_REPLIED, D_FINISHED };

typedef struct draft_call {
    uv_work_t work;
    uv_timer_t timer;
    pthread_mutex_t mu;
    int state;            /* guarded by mu */
    app *a;
    http_req *q;          /* until replied */
    json_t *out;          /* the coaching answer, until replied */
    char *prompt;
    int64_t tenant, lead_id, agent_id;
    char id[24];
    llm_result res;
    int published;
} draft_call;

static json_t *result_json(llm *l, const char *id, const llm_result *r) {
    if (r->status == LLM_OK)
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:b}", "id", id, "status", "ready", "text", r->text,
                         "provider", llm_provider_name(llm_get_provider(l)), "model", llm_model(l), "latency_ms",
                         (json_int_t)r->ms, "streamed", r->streamed);
    return json_pack("{s:s, s:s, s:s, s:I}", "id", id, "status", "unavailable", "reason", llm_status_name(r->status),
                     "latency_ms", (json_int_t)r->ms);
}

static json_t *draft_json(const draft_call *d) { return result_json(d->a->llm, d->id, &d->res); }

/* A late draft's event: coaching.updated {lead_id, agent_id, draft} and,
 * for an inbound message's, for_seq (the built-in coaching.updated it
 * follows). */
typedef struct late_event {
    int64_t lead_id, agent_id, for_seq;
    json_t *draft;  /* borrowed */
} late_event;

static int late_tx(store_tx *tx, void *arg, store_err *err) {
    late_event *e = arg;
    json_t *ev = json_pack("{s:o, s:o, s:O}", "lead_id", e->lead_id ? json_integer(e->lead_id) : json_null(),
                           "agent_id", e->agent_id ? json_integer(e->agent_id) : json_null(), "draft", e->draft);
    if (ev && e->for_seq) json_object_set_new(ev, "for_seq", json_integer(e->for_seq));
    int rc = ev ? leads_event(tx, "coaching.updated", ev, err) : STORE_NOMEM;
    json_decref(ev);
    return rc;
}

/* Thread pool: appends the late draft to the tenant's event log (and so
 * the realtime feed). 1 if it was written. */
static int publish_late(app *a, int64_t tenant, late_event *e) {
    store_err err = {0};
    int ok = e->draft && store_write(a->st, tenant, late_tx, e, &err) == STORE_OK;
    if (!ok) log_msg(a->log, LOG_WARN, "coaching draft not published", e->draft ? err.msg : "out of memory");
    return ok;
}

static void draft_work(uv_work_t *w) {
    draft_call *d = w->data;
    llm_complete(d->a->llm, SYSTEM_PROMPT, d->prompt, &d->res);
    pthread_mutex_lock(&d->mu);
    int late = d->state == D_REPLIED;
    if (!late) d->state = D_FINISHED;
    pthread_mutex_unlock(&d->mu);
    if (late) {
        /* the answer left with "pending": the draft follows on the feed */
        late_event e = {d->lead_id, d->agent_id, 0, draft_json(d)};
        d->published = publish_late(d->a, d->tenant, &e);
        json_decref(e.draft);
    }
}

static void reply(draft_call *d, json_t *draft) {
    json_object_set_new(d->out, "draft", draft);
    http_reply_json(d->q, 200, d->out);
    d->out = NULL;
    d->q = NULL;
}

static void on_timer_closed(uv_handle_t *h) {
    draft_call *d = h->data;
    pthread_mutex_destroy(&d->mu);
    llm_result_free(&d->res);
    json_decref(d->out);
    eh_free(d->prompt);
    eh_free(d);
}

static void on_budget(uv_timer_t *t) {
    draft_call *d = t->data;
    pthread_mutex_lock(&d->mu);
    int now = d->state == D_WAITING;
    if (now) d->state = D_REPLIED;
    pthread_mutex_unlock(&d->mu);
    if (now) reply(d, json_pack("{s:s, s:s}", "id", d->id, "status", "pending"));
}

static void draft_done(uv_work_t *w, int status) {
    draft_call *d = w->data;
    app *a = d->a;
    uv_timer_stop(&d->timer);
    const char *res[] = {llm_status_name(d->res.status)};
    metric_add(a->m_llm, res, 1);
    a->llm_inflight--;
    if (d->q) reply(d, draft_json(d));
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
    (void)status;
}

static void reply_now(http_req *q, json_t *out, json_t *draft) {
    json_object_set_new(out, "draft", draft);
    http_reply_json(q, 200, out);
}

void coach_draft_reply(http_req *q, app *a, int64_t tenant, json_t *out, int mode) {
    if (!a->llm || mode == COACH_DRAFT_OFF) {
        reply_now(q, out, a->llm ? json_pack("{s:s}", "status", "off") : json_null());
        return;
    }
    char id[24];
    ids_random_hex(id, sizeof id, 8);
    /* a provider that keeps failing is not even tried (and costs no wait) */
    if (llm_breaker_is_open(a->llm) || a->llm_inflight >= COACH_DRAFT_MAX_INFLIGHT) {
        const char *why = a->llm_inflight >= COACH_DRAFT_MAX_INFLIGHT ? "busy" : "breaker_open";
        const char *res[] = {why};
        metric_add(a->m_llm, res, 1);
        reply_now(q, out, json_pack("{s:s, s:s, s:s}", "id", id, "status", "unavailable", "reason", why));
        return;
    }
    draft_call *d = eh_calloc(1, sizeof *d);
    char *prompt = d ? coach_draft_prompt(out) : NULL;
    if (!prompt) {
        eh_free(d);
        reply_now(q, out, json_pack("{s:s, s:s}", "status", "unavailable", "reason", "out_of_memory"));
        return;
    }
    d->a = a;
    d->q = q;
    d->out = out;
    d->prompt = prompt;
    d->tenant = tenant;
    d->lead_id = json_integer_value(json_object_get(out, "lead_id"));
    d->agent_id = json_integer_value(json_object_get(out, "agent_id"));
    memcpy(d->id, id, sizeof id);
    d->state = mode == COACH_DRAFT_ASYNC ? D_REPLIED : D_WAITING;
    pthread_mutex_init(&d->mu, NULL);
    uv_timer_init(a->loop, &d->timer);
    d->timer.data = d;
    d->work.data = d;
    if (uv_queue_work(a->loop, &d->work, draft_work, draft_done)) {
        d->state = D_REPLIED;
        reply(d, json_pack("{s:s, s:s}", "status", "unavailable", "reason", "cannot_schedule"));
        uv_close((uv_handle_t *)&d->timer, on_timer_closed);
        return;
    }
    a->llm_inflight++;
    if (mode == COACH_DRAFT_ASYNC) reply(d, json_pack("{s:s, s:s}", "id", d->id, "status", "pending"));
    else uv_timer_start(&d->timer, on_budget, a->cfg.llm_budget_ms, 0);
}

int coach_draft_mode(const char *s) {
    if (!s || !*s || !strcmp(s, "wait")) return COACH_DRAFT_WAIT;
    if (!strcmp(s, "async")) return COACH_DRAFT_ASYNC;
    if (!strcmp(s, "off")) return COACH_DRAFT_OFF;
    return -1;
}

/* ---- drafts for an inbound message's pushed coaching ----
 *
 * An inbound message coaches its lead inside the transaction that stores it
 * (coach_on_inbound: built in, no wait). When that transaction has
 * committed, the store's on_commit hook hands the coaching.updated event
 * here; the loop then asks the provider on the pool, as for an answer
 * (same redacted prompt, breaker, --llm-timeout and in-flight cap), and the
 * draft follows on the feed as coaching.updated {lead_id, agent_id, draft,
 * for_seq}. Nothing waits for it. A transaction's callback may run twice
 * (PostgreSQL retries), so this cannot start from inside it: only committed
 * events count, and only on the node that committed them. */

typedef struct pushed {
    int64_t tenant, lead_id, agent_id, seq;
} pushed;

struct coach_drafts {
    app *a;
    uv_mutex_t mu;
    uv_async_t wake;
    pushed *q;  /* guarded by mu */
    int nq, capq, closed;
    int handle_closed, freeing; /* loop thread */
    int inflight;               /* loop thread: inbound drafts being written */
};

/* A provider call holds a pool thread (4 by default) for up to
 * --llm-timeout, and inbound messages come at the webhooks' pace, not at an
 * agent's: at most this many inbound drafts at once, so that storage work
 * keeps threads of its own. */
#define INBOUND_MAX_INFLIGHT 2

typedef struct inbound_draft {
    uv_work_t work;
    coach_drafts *cd;
    app *a;
    pushed p;
    char id[24];
    json_t *coaching;  /* the lead's coaching, read again on the pool */
    llm_result res;
    int asked;         /* the provider was called */
} inbound_draft;

static int inbound_read_tx(store_tx *tx, void *arg, store_err *err) {
    inbound_draft *d = arg;
    json_decref(d->coaching); /* a retried transaction starts over */
    d->coaching = NULL;
    return coach_lead(tx, d->a->coach, d->p.lead_id, d->p.agent_id, 0, &d->coaching, err);
}

static void inbound_work(uv_work_t *w) {
    inbound_draft *d = w->data;
    store_err err = {0};
    if (store_read(d->a->st, d->p.tenant, inbound_read_tx, d, &err)) {
        log_msg(d->a->log, LOG_WARN, "coaching draft: cannot read the lead", err.msg);
        return;
    }
    char *prompt = coach_draft_prompt(d->coaching);
    if (!prompt) return;
    llm_complete(d->a->llm, SYSTEM_PROMPT, prompt, &d->res);
    eh_free(prompt);
    d->asked = 1;
    late_event e = {d->p.lead_id, d->p.agent_id, d->p.seq, result_json(d->a->llm, d->id, &d->res)};
    publish_late(d->a, d->p.tenant, &e);
    json_decref(e.draft);
}

static void inbound_done(uv_work_t *w, int status) {
    inbound_draft *d = w->data;
    app *a = d->a;
    if (d->asked) {
        const char *res[] = {llm_status_name(d->res.status)};
        metric_add(a->m_llm, res, 1);
    }
    a->llm_inflight--;
    d->cd->inflight--;
    llm_result_free(&d->res);
    json_decref(d->coaching);
    eh_free(d);
    (void)status;
}

static void inbound_start(coach_drafts *cd, const pushed *p) {
    app *a = cd->a;
    /* A provider that keeps failing, or a full house, costs no call: the
     * agent already has the built-in coaching, so nothing is published. */
    if (a->stopping) return;
    const char *skip = llm_breaker_is_open(a->llm)                 ? "breaker_open"
                       : a->llm_inflight >= COACH_DRAFT_MAX_INFLIGHT || cd->inflight >= INBOUND_MAX_INFLIGHT
                           ? "busy"
                           : NULL;
    if (skip) {
        const char *res[] = {skip};
        metric_add(a->m_llm, res, 1);
        return;
    }
    inbound_draft *d = eh_calloc(1, sizeof *d);
    if (!d) return;
    d->cd = cd;
    d->a = a;
    d->p = *p;
    ids_random_hex(d->id, sizeof d->id, 8);
    d->work.data = d;
    if (uv_queue_work(a->loop, &d->work, inbound_work, inbound_done)) {
        eh_free(d);
        return;
    }
    a->llm_inflight++;
    cd->inflight++;
}

static void on_pushed(uv_async_t *h) {
    coach_drafts *cd = h->data;
    uv_mutex_lock(&cd->mu);
    pushed *q = cd->q;
    int n = cd->nq;
    cd->q = NULL;
    cd->nq = cd->capq = 0;
    uv_mutex_unlock(&cd->mu);
    for (int i = 0; i < n; i++) inbound_start(cd, &q[i]);
    eh_free(q);
}

coach_drafts *coach_drafts_new(app *a) {
    coach_drafts *cd = eh_calloc(1, sizeof *cd);
    if (!cd) return NULL;
    cd->a = a;
    if (uv_mutex_init(&cd->mu)) {
        eh_free(cd);
        return NULL;
    }
    if (uv_async_init(a->loop, &cd->wake, on_pushed)) {
        uv_mutex_destroy(&cd->mu);
        eh_free(cd);
        return NULL;
    }
    cd->wake.data = cd;
    return cd;
}

void coach_drafts_on_commit(coach_drafts *cd, const store_event *ev, int n) {
    if (!cd) return;
    int added = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(ev[i].type, "coaching.updated")) continue;
        json_t *p = json_loads(ev[i].payload, 0, NULL);
        /* the built-in coaching of an inbound message, not a draft's event */
        int inbound = json_is_array(json_object_get(p, "suggestions")) && !json_object_get(p, "draft");
        pushed x = {ev[i].tenant, json_integer_value(json_object_get(p, "lead_id")),
                    json_integer_value(json_object_get(p, "agent_id")), ev[i].seq};
        json_decref(p);
        if (!inbound || x.lead_id <= 0) continue;
        uv_mutex_lock(&cd->mu);
        if (!cd->closed && cd->nq == cd->capq) {
            int cap = cd->capq ? cd->capq * 2 : 16;
            pushed *q = cap <= 4096 ? eh_realloc(cd->q, (size_t)cap * sizeof *q) : NULL;
            if (q) {
                cd->q = q;
                cd->capq = cap;
            }
        }
        if (!cd->closed && cd->nq < cd->capq) {
            cd->q[cd->nq++] = x;
            added = 1;
        }
        uv_mutex_unlock(&cd->mu);
    }
    if (added) uv_async_send(&cd->wake);
}

static void drafts_release(coach_drafts *cd) {
    eh_free(cd->q);
    uv_mutex_destroy(&cd->mu);
    eh_free(cd);
}

static void on_wake_closed(uv_handle_t *h) {
    coach_drafts *cd = h->data;
    cd->handle_closed = 1;
    if (cd->freeing) drafts_release(cd);
}

void coach_drafts_stop(coach_drafts *cd) {
    if (!cd) return;
    uv_mutex_lock(&cd->mu);
    int was = cd->closed;
    cd->closed = 1;
    uv_mutex_unlock(&cd->mu);
    if (!was) uv_close((uv_handle_t *)&cd->wake, on_wake_closed);
}

void coach_drafts_free(coach_drafts *cd) {
    if (!cd) return;
    coach_drafts_stop(cd); /* a start-up that failed never ran the loop */
    cd->freeing = 1;
    /* else freed when the handle has closed (main runs the loop once more) */
    if (cd->handle_closed) drafts_release(cd);
}
