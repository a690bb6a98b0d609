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
 * the loop (libcurl multi, hard --llm-timeout) and a timer on the loop races
 * it; neither holds a thread. A draft ready within the budget goes in the
 * same answer ("draft": {"status": "ready", ...}); otherwise the answer
 * leaves with {"status": "pending", "id"} and the draft follows as a
 * coaching.updated event {lead_id, agent_id, draft} on the realtime feed
 * (topic coaching:{agent}), whether it succeeded or not. */
#include <stdio.h>
#include <string.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "base/ids.h"
#include "base/pii.h"
#include "http/curlloop.h"
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

/* ---- the calls ----
 *
 * Every provider call runs on the loop, in the drafts' own curl multi
 * (src/http/curlloop.h): the request is built where the prompt is (on the
 * loop for an answer, on the pool for an inbound message, which has to read
 * the lead first), the transfer is driven by the loop's sockets and timers,
 * the answer is read as it comes (an SSE stream incrementally) and parsed
 * when it ends, on the loop: at most LLM_MAX_RESPONSE of JSON, tens of µs
 * for a real draft. No thread waits on the provider; the pool does only
 * storage (an inbound message's lead, a late draft's event). */

/* Calls for inbound messages at once, at most, out of
 * COACH_DRAFT_MAX_INFLIGHT: they come at the webhooks' pace, not at an
 * agent's, and a burst of them must leave room for the drafts agents are
 * waiting for in an answer. */
#define INBOUND_MAX_INFLIGHT 16

typedef struct pushed {
    int64_t tenant, lead_id, agent_id, seq;
} pushed;

struct coach_drafts {
    app *a;
    curlloop *curl;             /* every provider call; NULL once closed */
    uv_mutex_t mu;
    uv_async_t wake;
    pushed *q;  /* guarded by mu */
    int nq, capq, closed;
    int handle_closed, curl_closed, freeing; /* loop thread */
    int inflight;               /* loop thread: inbound drafts being written */
};

static json_t *result_json(llm *l, const char *id, const llm_result *r) {
    if (r->status == LLM_OK)
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:b}", "id", id, "status", "ready", "text", r->text,
                         "provider", llm_provider_name(llm_get_provider(l)), "model", llm_model(l), "latency_ms",
                         (json_int_t)r->ms, "streamed", r->streamed);
    return json_pack("{s:s, s:s, s:s, s:I}", "id", id, "status", "unavailable", "reason", llm_status_name(r->status),
                     "latency_ms", (json_int_t)r->ms);
}

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

static void count(app *a, const char *result) {
    const char *res[] = {result};
    metric_add(a->m_llm, res, 1);
}

/* ---- a coaching answer's draft ---- */

typedef struct draft_call {
    uv_timer_t timer;     /* the budget; its close frees the call */
    uv_work_t work;       /* publishing a late draft */
    app *a;
    http_req *q;          /* until replied */
    json_t *out;          /* the coaching answer, until replied */
    int64_t tenant;
    late_event late;      /* a late draft's event (late.draft owned) */
    char id[24];
    llm_call *call;       /* until the transfer has ended */
    llm_result res;
} draft_call;

static void reply(draft_call *d, json_t *draft) {
    json_object_set_new(d->out, "draft", draft);
    http_reply_json(d->q, 200, d->out);
    d->out = NULL;
    d->q = NULL;
}

static void on_timer_closed(uv_handle_t *h) {
    draft_call *d = h->data;
    llm_result_free(&d->res);
    json_decref(d->out);
    json_decref(d->late.draft);
    eh_free(d);
}

/* The budget ran out first: the answer leaves, the draft follows. */
static void on_budget(uv_timer_t *t) {
    draft_call *d = t->data;
    if (d->q) reply(d, json_pack("{s:s, s:s}", "id", d->id, "status", "pending"));
}

static void publish_work(uv_work_t *w) {
    draft_call *d = w->data;
    publish_late(d->a, d->tenant, &d->late);
}

static void publish_done(uv_work_t *w, int status) {
    draft_call *d = w->data;
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
    (void)status;
}

/* Loop (curlloop): the provider answered, failed or timed out. */
static void draft_done(CURL *h, CURLcode cc, void *ud) {
    draft_call *d = ud;
    app *a = d->a;
    (void)h;
    llm_call_end(d->call, cc, &d->res);
    d->call = NULL;
    uv_timer_stop(&d->timer);
    count(a, llm_status_name(d->res.status));
    a->llm_inflight--;
    json_t *draft = result_json(a->llm, d->id, &d->res);
    /* the client hung up: its reply would be dropped with the draft in it,
     * so the draft follows on the feed, as one past the budget does */
    if (d->q && http_req_gone(d->q)) reply(d, json_pack("{s:s, s:s}", "id", d->id, "status", "pending"));
    if (d->q) {
        reply(d, draft);
    } else {
        /* the answer left with "pending": the draft follows on the feed */
        d->late.draft = draft;
        d->work.data = d;
        if (uv_queue_work(a->loop, &d->work, publish_work, publish_done) == 0) return;
        log_msg(a->log, LOG_WARN, "coaching draft not published", "cannot schedule");
    }
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

static void reply_now(http_req *q, json_t *out, json_t *draft) {
    json_object_set_new(out, "draft", draft);
    http_reply_json(q, 200, out);
}

static void reply_unavailable(http_req *q, app *a, json_t *out, const char *id, const char *why) {
    count(a, why);
    reply_now(q, out, json_pack("{s:s, s:s, s:s}", "id", id, "status", "unavailable", "reason", why));
}

void coach_draft_reply(http_req *q, app *a, int64_t tenant, json_t *out, int mode) {
    if (!a->llm || !a->drafts || mode == COACH_DRAFT_OFF) {
        reply_now(q, out, a->llm ? json_pack("{s:s}", "status", "off") : json_null());
        return;
    }
    char id[24];
    ids_random_hex(id, sizeof id, 8);
    if (a->llm_inflight >= COACH_DRAFT_MAX_INFLIGHT) {
        reply_unavailable(q, a, out, id, "busy");
        return;
    }
    /* a provider that keeps failing is not even tried (and costs no wait) */
    if (llm_breaker_is_open(a->llm)) {
        reply_unavailable(q, a, out, id, "breaker_open");
        return;
    }
    char *prompt = coach_draft_prompt(out);
    llm_call *call = NULL;
    llm_status st = prompt ? llm_call_new(a->llm, SYSTEM_PROMPT, prompt, &call) : LLM_E_NOMEM;
    eh_free(prompt); /* the call has its own copy, in the request body */
    draft_call *d = call ? eh_calloc(1, sizeof *d) : NULL;
    if (!d) {
        llm_call_cancel(call);
        reply_unavailable(q, a, out, id, st == LLM_E_BREAKER ? "breaker_open" : "out_of_memory");
        return;
    }
    d->a = a;
    d->q = q;
    d->out = out;
    d->call = call;
    d->tenant = tenant;
    d->late.lead_id = json_integer_value(json_object_get(out, "lead_id"));
    d->late.agent_id = json_integer_value(json_object_get(out, "agent_id"));
    memcpy(d->id, id, sizeof id);
    if (curlloop_add(a->drafts->curl, llm_call_handle(call), draft_done, d)) {
        llm_call_cancel(call);
        eh_free(d);
        reply_unavailable(q, a, out, id, "cannot_schedule");
        return;
    }
    uv_timer_init(a->loop, &d->timer);
    d->timer.data = d;
    a->llm_inflight++;
    /* the transfer starts when the loop comes round: neither callback can
     * run before this returns */
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
 * here; the pool then reads the lead's coaching again and builds the call
 * (same redacted prompt as an answer's), the loop runs it (same breaker,
 * --llm-timeout and in-flight caps), and the pool appends the result as
 * coaching.updated {lead_id, agent_id, draft, for_seq}. Nothing waits for
 * it. A transaction's callback may run twice (PostgreSQL retries), so this
 * cannot start from inside it: only committed events count, and only on
 * the node that committed them. */

typedef struct inbound_draft {
    uv_work_t work;    /* reading the lead, then publishing */
    coach_drafts *cd;
    app *a;
    pushed p;
    char id[24];
    json_t *coaching;  /* the lead's coaching, read again on the pool */
    llm_call *call;    /* built on the pool, run on the loop */
    llm_result res;
    json_t *draft;     /* the event's draft */
} inbound_draft;

static int inbound_read_tx(store_tx *tx, void *arg, store_err *err) {
    inbound_draft *d = arg;
    json_decref(d->coaching); /* a retried transaction starts over */
    d->coaching = NULL;
    return coach_lead(tx, d->a->coach, d->p.lead_id, d->p.agent_id, 0, &d->coaching, err);
}

/* Pool: the lead's coaching, and the call for it (or, in res.status, why
 * there is none: the breaker opened meanwhile, out of memory). */
static void inbound_read(uv_work_t *w) {
    inbound_draft *d = w->data;
    store_err err = {0};
    if (store_read(d->a->st, d->p.tenant, inbound_read_tx, d, &err)) {
        log_msg(d->a->log, LOG_WARN, "coaching draft: cannot read the lead", err.msg);
        json_decref(d->coaching);
        d->coaching = NULL;
        return;
    }
    char *prompt = coach_draft_prompt(d->coaching);
    d->res.status = prompt ? llm_call_new(d->a->llm, SYSTEM_PROMPT, prompt, &d->call) : LLM_E_NOMEM;
    eh_free(prompt);
}

static void inbound_free(inbound_draft *d) {
    d->a->llm_inflight--;
    d->cd->inflight--;
    llm_call_cancel(d->call);
    llm_result_free(&d->res);
    json_decref(d->coaching);
    json_decref(d->draft);
    eh_free(d);
}

static void inbound_publish(uv_work_t *w) {
    inbound_draft *d = w->data;
    late_event e = {d->p.lead_id, d->p.agent_id, d->p.seq, d->draft};
    publish_late(d->a, d->p.tenant, &e);
}

static void inbound_published(uv_work_t *w, int status) {
    inbound_free(w->data);
    (void)status;
}

/* Loop: the provider's answer (or why there is none) goes to the feed. */
static void inbound_result(inbound_draft *d) {
    count(d->a, llm_status_name(d->res.status));
    d->draft = result_json(d->a->llm, d->id, &d->res);
    if (uv_queue_work(d->a->loop, &d->work, inbound_publish, inbound_published)) inbound_free(d);
}

static void inbound_call_done(CURL *h, CURLcode cc, void *ud) {
    inbound_draft *d = ud;
    (void)h;
    llm_call_end(d->call, cc, &d->res);
    d->call = NULL;
    inbound_result(d);
}

static void inbound_read_done(uv_work_t *w, int status) {
    inbound_draft *d = w->data;
    (void)status;
    if (d->call) {
        /* stopping: the call is dropped unsent, as one not started at all */
        if (curlloop_add(d->cd->curl, llm_call_handle(d->call), inbound_call_done, d)) inbound_free(d);
    } else if (d->coaching) {
        inbound_result(d); /* asked, and refused: breaker_open, out_of_memory */
    } else {
        inbound_free(d);   /* the lead could not be read (logged) */
    }
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
        count(a, skip);
        return;
    }
    inbound_draft *d = eh_calloc(1, sizeof *d);
    if (!d) return;
    d->cd = cd;
    d->a = a;
    d->p = *p;
    ids_random_hex(d->id, sizeof d->id, 8);
    d->work.data = d;
    if (uv_queue_work(a->loop, &d->work, inbound_read, inbound_read_done)) {
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
    /* one transfer per draft in flight and none waiting: the caps above
     * are checked first, and a queued call's wait would not count against
     * its --llm-timeout */
    if (!(cd->curl = curlloop_new(a->loop, COACH_DRAFT_MAX_INFLIGHT, 0))) {
        eh_free(cd);
        return NULL;
    }
    if (uv_mutex_init(&cd->mu)) {
        curlloop_close(cd->curl, 0, NULL, NULL);
        eh_free(cd);
        return NULL;
    }
    if (uv_async_init(a->loop, &cd->wake, on_pushed)) {
        curlloop_close(cd->curl, 0, NULL, NULL);
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

static void maybe_release(coach_drafts *cd) {
    if (cd->freeing && cd->handle_closed && cd->curl_closed) drafts_release(cd);
}

static void on_wake_closed(uv_handle_t *h) {
    coach_drafts *cd = h->data;
    cd->handle_closed = 1;
    maybe_release(cd);
}

static void on_curl_closed(void *ud) {
    coach_drafts *cd = ud;
    cd->curl = NULL;
    cd->curl_closed = 1;
    maybe_release(cd);
}

void coach_drafts_stop(coach_drafts *cd) {
    if (!cd) return;
    uv_mutex_lock(&cd->mu);
    int was = cd->closed;
    cd->closed = 1;
    uv_mutex_unlock(&cd->mu);
    if (was) return;
    uv_close((uv_handle_t *)&cd->wake, on_wake_closed);
    /* calls still out end by their own --llm-timeout first (and are
     * published as before), but no later than --shutdown-timeout, as
     * nurture's sends: --llm-timeout may be minutes, and a process that
     * does not exit in its orchestrator's grace is killed mid-write. Cut
     * calls are published as timeouts. */
    uint64_t grace = (uint64_t)cd->a->cfg.llm_timeout_ms + 1000;
    if (cd->a->cfg.shutdown_timeout_ms && cd->a->cfg.shutdown_timeout_ms < grace) grace = cd->a->cfg.shutdown_timeout_ms;
    curlloop_close(cd->curl, grace, on_curl_closed, cd);
}

void coach_drafts_free(coach_drafts *cd) {
    if (!cd) return;
    coach_drafts_stop(cd); /* a start-up that failed never ran the loop */
    cd->freeing = 1;
    /* else freed when the handles have closed (main runs the loop once more) */
    maybe_release(cd);
}
