/* coach — conversation intelligence and agent coaching.
 *
 * analysis.c reads a lead's conversation (SMS, e-mail, call notes and
 * transcripts, in time order) and finds: sentiment per message and its
 * trend (lexicon with negation, intensifiers and "but"), buyer intents,
 * objections with the phrases that triggered them, the qualification state
 * (budget, timeline, pre-approval, location, property type, motivation,
 * decision makers: known from which message or lead field, or missing),
 * response times on both sides, and the talk ratio of labelled call
 * transcripts. playbook.c turns an analysis into suggestions (questions for
 * missing items, objection handling and next steps from a playbook, and
 * warnings: sentiment dropping, lead waiting > 5 min, quiet hours), each
 * with its reason and the message it refers to. api.c serves it over HTTP
 * and keeps the record of suggestions shown and their feedback.
 *
 * The lexicon, cues and default playbook are data files (src/coach/data/)
 * compiled into the binary; coach_ctx_new parses them once. A coach_ctx is
 * immutable after that and safe to share between threads. */
#ifndef EH_COACH_H
#define EH_COACH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct app;

typedef struct coach_ctx coach_ctx;

/* Limits on what a caller may hand in (API and analysis alike). */
#define COACH_MAX_MESSAGES 500
#define COACH_MAX_BODY 8192

enum { COACH_NONE = 0, COACH_IN = 1, COACH_OUT = 2 };

typedef struct coach_msg {
    int64_t id;           /* activity id, or the position for ad-hoc messages */
    int dir;              /* COACH_IN / COACH_OUT / COACH_NONE */
    const char *channel;  /* "sms", "call", ... (NULL = "sms") */
    const char *body;     /* UTF-8, not necessarily NUL-terminated */
    size_t len;           /* <= COACH_MAX_BODY */
    int64_t at_ms;        /* epoch milliseconds; 0 = unknown */
} coach_msg;

/* What the lead record already says (all optional). */
typedef struct coach_facts {
    int has_budget;
    double budget_max;
    const char *timeline;       /* NULL = unknown */
    int preapproved;            /* -1 unknown, 0 no, 1 yes */
    int areas;                  /* number of areas */
    const char *property_type;  /* NULL = unknown */
    const char *timezone;       /* IANA name or UTC offset; NULL = unknown */
} coach_facts;

/* Builds the context from the embedded data. NULL on failure, with why (a
 * short message) in why[0..whylen). Free with coach_ctx_free. */
coach_ctx *coach_ctx_new(char *why, size_t whylen);
void coach_ctx_free(coach_ctx *c);

/* Analyses msgs[0..n) (n <= COACH_MAX_MESSAGES; sorted by at_ms then id
 * inside, the array is not changed). facts may be NULL. now_ms is used for
 * "waiting" (0 = do not compute). Returns a new JSON object (caller owns)
 * or NULL on out-of-memory or bad arguments (n too large, a body too
 * long). Shape: see README "Coaching". */
json_t *coach_analyze(const coach_ctx *c, const coach_msg *msgs, int n, const coach_facts *facts,
                      int64_t now_ms);

/* The default playbook (a new reference to an immutable object: do not
 * modify). */
json_t *coach_playbook_default(const coach_ctx *c);
/* Validates a tenant playbook override: an object with optional
 * "questions", "objections", "intents", "warnings" maps whose keys are the
 * known items and whose values are {"text", "why"} strings of 1-1000
 * bytes. 0 if valid, else -1 with the problem in why. */
int coach_playbook_check(const coach_ctx *c, const json_t *pb, char *why, size_t whylen);
/* The default with a tenant override merged over it, item by item (new
 * reference; override may be NULL). */
json_t *coach_playbook_merge(const coach_ctx *c, const json_t *override);

/* Suggestions for an analysis with a (merged) playbook: a new JSON array
 * of {type: warning|objection|next_step|question, item, text, reason,
 * message_id (or null)}, most urgent first, at most 12. NULL on OOM. */
json_t *coach_suggest(const coach_ctx *c, const json_t *analysis, const json_t *playbook);

/* Local hour (0-23) of utc_ms in tz (IANA names of common US/EU/Asia
 * zones with their DST rules, "UTC", or offsets "+05:30"/"UTC-08:00").
 * -1 if the zone is unknown. */
int coach_local_hour(const char *tz, int64_t utc_ms);

/* HTTP routes: POST /get-coaching, POST /v1/leads/{id}/coaching,
 * GET/PUT /v1/coaching/playbook, POST /v1/coaching/feedback,
 * GET /coaching-stats and /v1/coaching-stats, GET /v1/agents/{id}/performance. */
int coach_api_register(struct app *a);

/* Coaching for a stored lead from its latest activities and fields:
 * *out = {lead_id, agent_id, analysis, suggestions}; record: store the
 * suggestions as shown (each gets an id for feedback). agent_hint: the
 * agent when the lead has none. Inside a write transaction to record; with
 * record 0 it only reads (a read transaction will do). */
struct store_tx;
struct store_err;
int coach_lead(struct store_tx *tx, const coach_ctx *c, int64_t lead_id, int64_t agent_hint, int record, json_t **out,
               struct store_err *err);
/* In the transaction that stores an inbound message: coaches the lead and
 * appends coaching.updated {lead_id, agent_id, suggestions, warnings}, so
 * the agent's dashboard hears of it with the message. A no-op without a
 * coach in the store's context (leads_coach). */
int coach_on_inbound(struct store_tx *tx, int64_t lead_id, struct store_err *err);

/* ---- the 30-day conversion forecast per agent (forecast.c) ---- */
#define COACH_FORECAST_MODEL "agent_forecast"
/* training needs this many labelled agent-and-lead snapshots, with this
 * many converted and not converted; before that the prior forecasts */
#define COACH_FORECAST_MIN_ROWS 60
#define COACH_FORECAST_MIN_CLASS 10
/* Trains the tenant's agent_forecast model from its history (blocking:
 * pool or CLI). 0 with the training report, 1 with {error:
 * not_enough_history, rows, converted, not_converted, min_rows, min_class},
 * -1 with err. */
int coach_forecast_train(struct app *a, int64_t tenant, int64_t now_ms, json_t **report, char *err, size_t errlen);
/* Inside a transaction: {horizon_days, expected_conversions, open_leads,
 * kind: model|prior, model_version, auc, prior_base_rate, drivers:
 * [{feature, effect, mean_value}]} for the agent's open leads. */
struct store_tx;
struct store_err;
int coach_forecast(struct store_tx *tx, struct app *a, int64_t agent, int64_t now_ms, json_t **out,
                   struct store_err *err);

/* ---- LLM reply drafts (draft.c; see README "Coaching") ---- */
enum { COACH_DRAFT_WAIT = 0, COACH_DRAFT_ASYNC = 1, COACH_DRAFT_OFF = 2 };
/* Calls to the provider running at once, at most; more get "busy". A call
 * holds no thread (it runs on the loop), but a socket, up to ~0.8 MB of
 * answer buffers at worst (256 KB each for the body, an SSE event and its
 * text) and a share of the provider's own concurrency, whose refusals (429)
 * feed the breaker; past a few dozen, a burst is better served by the
 * built-in coaching at once than by drafts that come seconds late. */
#define COACH_DRAFT_MAX_INFLIGHT 32
/* "wait" (default, also NULL), "async", "off"; -1 if none of them. */
int coach_draft_mode(const char *s);
/* The prompt for a coaching answer {analysis, suggestions}: built from the
 * structured analysis only and passed whole through pii_redact. New string
 * (eh_free), NULL on OOM. */
char *coach_draft_prompt(const json_t *coaching);
const char *coach_draft_system_prompt(void);
/* Loop thread. Answers q with out (stolen) plus "draft": at once when no
 * provider is configured (null), mode is off, or the breaker is open;
 * otherwise asks the provider (on the loop) and answers when the draft is in
 * or --llm-budget has passed (then "pending", and the draft follows as a
 * coaching.updated event); async answers "pending" at once. */
struct http_req;
void coach_draft_reply(struct http_req *q, struct app *a, int64_t tenant, json_t *out, int mode);

/* Drafts for the pushed coaching of inbound messages: with a provider, each
 * committed coaching.updated of an inbound message (coach_on_inbound) is
 * followed by a draft on the feed, coaching.updated {lead_id, agent_id,
 * draft, for_seq} (for_seq: the event it follows). coach_drafts_new (loop
 * thread, after the loop exists; NULL on OOM); coach_drafts_on_commit from
 * the store's on_commit hook (any thread; copies what it needs);
 * coach_drafts_stop on shutdown (loop thread: later events are ignored);
 * coach_drafts_free after the store is closed and the loop has run out. */
typedef struct coach_drafts coach_drafts;
struct store_event;
coach_drafts *coach_drafts_new(struct app *a);
void coach_drafts_on_commit(coach_drafts *d, const struct store_event *ev, int n);
void coach_drafts_stop(coach_drafts *d);
void coach_drafts_free(coach_drafts *d);

#endif
