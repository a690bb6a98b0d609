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
 * Tenant models live in DATA_DIR/tenants/<id>/models/lead_scoring/vN
 * (NAME/active picks the served version, as for the shared models). The
 * score_ctx caches them per tenant for the pool threads; it is the
 * store's context (store_opts.ctx), which is how domain code reaches it. */
#ifndef EH_SCORE_H
#define EH_SCORE_H

#include <jansson.h>
#include <stdint.h>

#include "store/store.h"

#define SCORE_MIN_OUTCOMES 100
#define SCORE_MIN_CLASS 20
#define SCORE_MODEL "lead_scoring"

typedef struct score_ctx score_ctx;

/* data_dir: where tenants' models live. NULL on out-of-memory. */
score_ctx *score_ctx_new(const char *data_dir);
void score_ctx_free(score_ctx *c);

/* Re-scores a lead of the transaction's tenant: writes leads.score, a
 * lead_scores row and lead.scored when the score moved (by 0.001 or more)
 * or the lead had none, and lead.hot when it crossed the tenant's
 * threshold from below. Uses store_tx_ctx(tx) for the tenant's model; with
 * no context (or no model) the prior scores. STORE_NOTFOUND if the lead
 * does not exist (or is deleted). */
int score_lead(store_tx *tx, int64_t lead_id, int64_t now_ms, store_err *err);

/* The lead's current score with its reasons and its history (newest
 * first, at most 50): {lead_id, score, kind, model_version, reasons,
 * threshold, hot, scored_at, history:[{score, kind, model_version, at}]}.
 * Read-only. */
int score_get(store_tx *tx, int64_t lead_id, json_t **out, store_err *err);

/* Trains the tenant's lead_scoring model from its won/lost leads, saves it
 * as the next version, serves it, and re-scores the tenant's open leads.
 * *report: the training report (as ehub train --json), or, when the tenant
 * has too few outcomes, {error, labelled, won, lost, min_outcomes,
 * min_class} with a return of 1. Returns 0 on success, 1 for too few
 * outcomes, -1 with err on failure. Blocking (seconds): thread pool or CLI
 * only. */
int score_train(store *st, score_ctx *c, int64_t tenant, const char *trained_by, uint64_t seed,
                json_t **report, char *err, size_t errlen);

/* Re-scores every open lead of a tenant (after a new model). *n: how many. */
int score_rescore_open(store *st, int64_t tenant, int64_t now_ms, int *n, store_err *err);

/* Turns free-text timelines into buckets: "0-3m", "3-6m", "6-12m", "12m+",
 * or NULL when no horizon can be read ("just looking"). */
const char *score_timeline_bucket(const char *text);

struct app;
/* GET /v1/leads/{id}/score, POST /v1/models/lead_scoring/train. */
int score_api_register(struct app *a);

#endif
