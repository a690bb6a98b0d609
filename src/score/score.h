/* score — the built-in lead_scoring model: the probability that a lead
 * converts (its opportunity is won), from what ehub knows of the lead.
 *
 * Features are read from the store (score_features): lead attributes
 * (source, timeline, property type, pre-approval, budget against the
 * average asking price in the lead's areas, how complete the buyer
 * preferences are, contact details and consent) and behaviour (inbound and
 * outbound messages, calls, appointments, minutes to the first agent
 * response, days since the lead last wrote, since anything happened, since
 * the lead came in).
 *
 * Each tenant trains its own model from its won/lost history
 * (score_train). Until a tenant has SCORE_MIN_OUTCOMES labelled leads with
 * at least SCORE_MIN_CLASS of each outcome, a transparent points prior
 * scores its leads instead, and says so (kind "prior"): every point it
 * gives is listed as a reason. A model's reasons are its exact SHAP
 * contributions.
 *
 * Leads are re-scored inside the transaction of every write that changes
 * them (score_lead), so a score, its history row and its lead.scored event
 * commit with the change or not at all; crossing the tenant's hot
 * threshold upwards appends lead.hot.
 *
 * Tenant models live in the store (registry.c): model_versions holds every
 * trained version (the XGBoost JSON model, schema, metrics, training
 * summary, who and when), model_active the version served; training and
 * activation write them with a model.activated event in one transaction.
 * The score_ctx caches the served models per tenant for the pool threads,
 * loads one on first use and swaps it when a model.activated event (this
 * node's or another's, through the bus) names a later activation; domain
 * code reaches it through the store's context (leads_domain,
 * leads_scorer). */
#ifndef EH_SCORE_H
#define EH_SCORE_H

#include <jansson.h>
#include <stdint.h>

#include "store/store.h"

#define SCORE_MIN_OUTCOMES 100
#define SCORE_MIN_CLASS 20
#define SCORE_MODEL "lead_scoring"
#define SCORE_CHURN "churn"
#define SCORE_VALUE "property_value"
/* churn: the probability that an engaged lead sends no inbound message in
 * the next SCORE_CHURN_DAYS; bands low < MEDIUM <= medium < HIGH <= high. */
#define SCORE_CHURN_DAYS 14
#define SCORE_CHURN_MEDIUM 0.3
#define SCORE_CHURN_HIGH 0.6

typedef struct score_ctx score_ctx;

/* data_dir: where training writes its scratch files (and where earlier
 * releases kept tenants' models: score_import_files). NULL on
 * out-of-memory. */
score_ctx *score_ctx_new(const char *data_dir);
/* The store models are read from outside a transaction (borrowed; set it
 * before the context is used from several threads). */
void score_ctx_set_store(score_ctx *c, store *st);
/* Registers ehub_ml_builtin_feature_psi_max{tenant,model} in m (the
 * registry owns it); the context sets it as its models score. Like
 * score_ctx_set_store, before the context is shared. */
struct metrics;
void score_ctx_set_metrics(score_ctx *c, struct metrics *m);
void score_ctx_free(score_ctx *c);

/* Imports the model directories earlier releases wrote
 * (DATA_DIR/tenants/ID/models/NAME/vN with NAME/active) into the store,
 * each version under its own number, the file's active version made the
 * stored one unless the store has one; each imported NAME directory is
 * then renamed to NAME.imported-MS, so this runs once (and a re-run after a
 * crash adds nothing). *imported: versions written. 0, or -1 when some
 * directory could not be imported (logged; it stays for the next start).
 * Blocking: start-up or CLI. */
int score_import_files(score_ctx *c, store *st, logger *log, int *imported);

/* The model.activated generation a tenant's served model was loaded at,
 * -1 when this node has not loaded it (or name is not built-in). */
int64_t score_model_generation(score_ctx *c, int64_t tenant, const char *name);
/* Loads the tenant's active version of name from the store and serves it,
 * unless a later activation is served already (requests in flight finish
 * on the model they started with). *version (may be NULL): the version
 * served after, 0 for none. 0, or -1 with err. Blocking: thread pool. */
int score_model_reload(score_ctx *c, int64_t tenant, const char *name, int *version, char *err, size_t errlen);

/* Re-scores a lead of the transaction's tenant: writes leads.score, a
 * lead_scores row and lead.scored when the score moved (by 0.001 or more)
 * or the lead had none, and lead.hot when it crossed the tenant's
 * threshold from below. Uses leads_scorer(tx) for the tenant's model; with
 * no context (or no model) the prior scores. STORE_NOTFOUND if the lead
 * does not exist (or is deleted). */
int score_lead(store_tx *tx, int64_t lead_id, int64_t now_ms, store_err *err);
/* score_lead for a lead created in this transaction, before any activity
 * of it: its activity counts are zero and its times unknown without
 * reading activities (a lead id is never reused: leads are soft-deleted,
 * and activities reference them). Same writes and events. */
int score_new_lead(store_tx *tx, int64_t lead_id, int64_t now_ms, store_err *err);

/* The lead's current score with its reasons and its history (newest
 * first, at most 50): {lead_id, score, kind, model_version, reasons,
 * threshold, hot, scored_at, history:[{score, kind, model_version, at}]}.
 * Read-only. */
int score_get(store_tx *tx, int64_t lead_id, json_t **out, store_err *err);

/* The churn risk of a lead now: {lead_id, model, kind, version,
 * probability, risk (low/medium/high), horizon_days, drivers:[{feature,
 * value, effect}], interventions:[text]}. Read-only; STORE_NOTFOUND if no
 * such lead. */
int score_churn(store_tx *tx, int64_t lead_id, int64_t now_ms, json_t **out, store_err *err);
/* The same from raw engagement features (every churn feature present,
 * null when unknown). -1 with err (a 422 message) if one is missing,
 * unknown or mistyped. No storage: callable on the loop thread. */
int score_churn_features(score_ctx *c, int64_t tenant, const json_t *features, json_t **out, char *err,
                         size_t errlen);

/* /predict for a built-in name: scores raw features (every feature of the
 * model present, null when unknown) with the tenant's model, or its prior:
 * {model, kind, version, score[, explanation:{base, contributions}]} —
 * SHAP on the margin for a model, the prior's points as probabilities.
 * Returns 0, or an HTTP status with err: 404 not built-in, 422 bad
 * features, 409 no model and no prior (property_value). No storage. */
int score_features(score_ctx *c, int64_t tenant, const char *name, const json_t *features, int explain, json_t **out,
                   char *err, size_t errlen);

/* Trains a tenant's built-in model (name: lead_scoring, churn or
 * property_value), stores it as the next version and activates it (one
 * transaction, with a model.activated event), and serves it here. lead_scoring learns from won/lost
 * leads; churn from leads engaged SCORE_CHURN_DAYS ago, as they were then,
 * and whether they replied since. *report: the training report (as ehub
 * train --json) with the class counts, or, when the tenant has too few
 * outcomes, {error, model, labelled, <class counts>, min_outcomes,
 * min_class} with a return of 1. Returns 0 on success, 1 for too few
 * outcomes, -1 with err on failure (an unknown name included). Blocking
 * (seconds): thread pool or CLI only. */
/* Work done inside the transaction that stores or activates a version, so
 * that it commits with it or not at all (the request's audit entry):
 * called with the version; non-zero rolls the whole write back. */
typedef struct score_also {
    int (*fn)(store_tx *tx, void *ud, int version, store_err *err);
    void *ud;
} score_also;

/* also: may be NULL. */
int score_train(store *st, score_ctx *c, int64_t tenant, const char *name, const char *trained_by, uint64_t seed,
                int64_t now_ms, json_t **report, const score_also *also, char *err, size_t errlen);
/* 1 if name is a built-in model. */
int score_builtin(const char *name);

/* The tenant's built-in models: [{name, serving (model, prior or none),
 * active_version, drift, versions:[{version, rows, metrics, trained_at,
 * trained_by, training, task, active}]}], newest first (50 at most).
 * drift: {rows, psi:{feature: PSI or null}} of the rows the active version
 * scored on this node since it was activated (or first used) here ({rows:
 * 0, psi: {}} before its first use here: listing loads nothing), null
 * when no version is active or the served one has no training
 * distribution.
 * Reads the store: thread pool only. NULL on a storage error. */
json_t *score_models(score_ctx *c, int64_t tenant);
/* Serves another version of a tenant's built-in model (rollback or
 * upgrade): records it in model_active with a model.activated event (one
 * transaction; every node follows), then serves it here. by: who, for the
 * row. Returns 0, or an HTTP status (404 no such model or version, 503
 * cannot record or load) with err. Thread pool only. Stored lead scores
 * are not recomputed; each lead gets the new model's score on its next
 * write. */
int score_activate(score_ctx *c, int64_t tenant, const char *name, int version, const char *by,
                   const score_also *also, char *err, size_t errlen);

/* ---- property_match and property_value (match.c) ---- */

typedef struct score_match_opts {
    int limit;        /* matches returned, 1-50 */
    double radius_km; /* > 0 with lat/lng: the place filter is this circle instead of the lead's areas */
    double lat, lng;  /* NaN when not given */
} score_match_opts;

/* Listings for a lead, best first: {lead_id, candidates, scanned,
 * matches:[{listing, score, value:{estimate, ratio, model_version}|null,
 * reasons:[{factor, fit, detail}]}]}. Read-only; STORE_NOTFOUND if no such
 * lead. */
int score_matches(store_tx *tx, int64_t lead_id, const score_match_opts *o, json_t **out, store_err *err);
/* Reverse matching, in the transaction that created a listing or changed
 * its price: appends listing.matched {listing_id, lead_id, agent_id, score,
 * why, reasons} for each open lead (at most 200) whose hard filters it
 * passes. *matched: how many. */
int score_listing_matched(store_tx *tx, int64_t listing_id, const char *why, int *matched, store_err *err);
/* The tenant's property_value estimate of a listing with its SHAP reasons
 * (on the log price). STORE_INVALID when the tenant has no such model,
 * STORE_NOTFOUND when no such listing. */
int score_valuation(store_tx *tx, int64_t listing_id, json_t **out, store_err *err);

/* Re-scores every open lead of a tenant (after a new model). *n: how many. */
int score_rescore_open(store *st, int64_t tenant, int64_t now_ms, int *n, store_err *err);

/* Turns free-text timelines into buckets: "0-3m", "3-6m", "6-12m", "12m+",
 * or NULL when no horizon can be read ("just looking"). */
const char *score_timeline_bucket(const char *text);

struct app;
/* Follows model.activated on the app's bus (this node's events and other
 * nodes'): a later activation than the one served is loaded on the thread
 * pool and swapped in. After realtime_start. 0 or -1. */
int score_registry_start(struct app *a);
/* GET /v1/leads/{id}/score, GET /v1/leads/{id}/matches, GET
 * /v1/listings/{id}/valuation, POST /predict-churn (and /v1/), POST
 * /v1/models/{lead_scoring|churn|property_value}/train. */
int score_api_register(struct app *a);

#endif
