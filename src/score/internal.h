/* Shared between the score module's files (score.c: features, priors,
 * the model cache, scoring and training; match.c: buyer-to-listing
 * matching). Not part of the module's interface: that is score.h. */
#ifndef EH_SCORE_INTERNAL_H
#define EH_SCORE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "base/buf.h"
#include "score.h"
#include "store/store.h"

/* Every feature a built-in model can read, by index. */
enum {
    F_SOURCE,
    F_TIMELINE,
    F_PROPERTY_TYPE,
    F_PREAPPROVED,
    F_BUDGET_MAX,
    F_BUDGET_VS_AREA,
    F_PREFS,
    F_HAS_EMAIL,
    F_HAS_PHONE,
    F_CONSENTS,
    F_INBOUND,
    F_OUTBOUND,
    F_CALLS,
    F_APPOINTMENTS,
    F_FIRST_RESPONSE_MIN,
    F_DAYS_SINCE_INBOUND,
    F_DAYS_SINCE_ACTIVITY,
    F_AGE_DAYS,
    F_TAGS,
    F_DAYS_SINCE_OUTBOUND,
    F_DAYS_SINCE_CALL,
    F_AWAITING_REPLY,
    /* listings (property_value) */
    F_L_TYPE,
    F_L_ZIP,
    F_L_CITY,
    F_L_BEDS,
    F_L_BATHS,
    F_L_SQFT,
    F_L_LAT,
    F_L_LNG,
    NFEAT
};

/* Built-in models: builtins[] in score.c. */
enum { B_LEAD, B_CHURN, B_VALUE, NBUILTIN };
/* builtins[] index of a name, -1 if none; and back. */
int score_builtin_index(const char *name);
const char *score_builtin_name(int b);

/* ---- the tenant model cache and registry (registry.c) ---- */

struct ml_model;
struct ml_drift;
/* A tenant's served model of one builtin, shared by the scorings in
 * progress: the cache holds one reference, each scoring one more, so a
 * swap never frees a model a request is still walking. */
typedef struct tmodel {
    int64_t tenant;
    int b;
    struct ml_model *m; /* NULL: the tenant has no model (yet) */
    int version;
    int64_t gen; /* model_active.generation it was loaded at (0: no row) */
    int refs;
    /* The rows this entry scored, binned like its training rows (NULL:
     * no training distribution). An entry is one activation on this node,
     * so the counts start again with each; dmu guards them, since pool
     * threads score concurrently. */
    struct ml_drift *drift;
    pthread_mutex_t dmu;
} tmodel;

/* The tenant's model of builtin b with a reference (release it with
 * reg_release), loaded from the store on first use: through tx when the
 * caller is inside a transaction (never a second connection from inside
 * one), else by a read of its own on c's store. NULL when it cannot be had
 * (out of memory, no store, a storage error): score with the prior then. */
tmodel *reg_acquire(score_ctx *c, store_tx *tx, int64_t tenant, int b);
void reg_release(score_ctx *c, tmodel *t);
/* Counts an encoded row t's model scored (x: the schema's width) into t's
 * drift; now and then refreshes the context's PSI gauge. Any thread. */
void reg_observe(score_ctx *c, tmodel *t, const float *x);
/* Stores a model ml_train wrote to vdir (model.json, schema.json) as the
 * next version of the tenant's builtin b and activates it, in one
 * transaction with a model.activated event; then serves it on this node.
 * rep is the training report: its version is set to the stored one and its
 * dir removed. 0, or -1 with err. */
int reg_save_trained(score_ctx *c, store *st, int64_t tenant, int b, const char *vdir, json_t *rep,
                     const char *trained_by, int64_t now_ms, const score_also *also, char *err, size_t errlen);
/* Removes a directory and everything under it (training's scratch). */
void reg_remove_tree(const char *dir);
/* DATA_DIR of the context (training writes its scratch files under it). */
const char *reg_data_dir(const score_ctx *c);

typedef struct feats {
    char cat[NFEAT][65]; /* categorical features (is_cat): "" = missing */
    double num[NFEAT];   /* numeric ones: NaN = missing */
} feats;

typedef struct reason {
    int feature;
    double effect;
} reason;

/* A listing's columns, read the same way by training and matching. */
#define LISTING_COLS "SELECT id, type, zip, city, beds, baths, sqft, lat, lng, price, address, status FROM listings "
enum { L_ID, L_TYPE, L_ZIP, L_CITY, L_BEDS, L_BATHS, L_SQFT, L_LAT, L_LNG, L_PRICE, L_ADDRESS, L_STATUS };
/* Fills f (all else missing) from row `row` of a LISTING_COLS result. */
void score_listing_features(const store_rows *r, int row, feats *f);

/* Scores f with the tenant's model of builtin b when it has one (*version
 * set), else with b's prior (*version 0); the value model has no prior:
 * NaN then. rs[0..*n) gets the reasons (rs NULL: a model's score without
 * them, cheaper). *base (may be NULL), with reasons: the model's expected
 * margin (SHAP base), or the prior's starting probability. c may be NULL
 * (prior only). tx: the caller's transaction, or NULL outside one (a model
 * not cached yet is then read on a connection of its own: pool threads
 * only). */
double score_predict(score_ctx *c, store_tx *tx, int64_t tenant, int b, const feats *f, reason *rs, int *n,
                     int *version, double *base);
/* The top reasons, biggest effect first (sorts rs). */
json_t *score_reasons_json(const feats *f, reason *rs, int n, int kind_model);
/* The same reasons as compact JSON text appended to out: byte for byte
 * json_dumps(score_reasons_json(...), JSON_COMPACT) (sorts rs). A BUF_ code. */
int score_reasons_text(const feats *f, reason *rs, int n, int kind_model, buf *out);
/* lead.scored's payload: {"lead_id","score","previous","kind","model_version","reasons"}, the last
 * spliced from rtext (the reasons' text); what json_pack and json_dumps gave. A BUF_ code. */
int score_scored_text(buf *out, int64_t lead_id, double sc, int had, double old, const char *kind, int version,
                      const char *rtext, size_t rlen);
/* lead.hot's payload: {"lead_id","score","threshold","agent_id","reasons"}; agent 0 = null. */
int score_hot_text(buf *out, int64_t lead_id, double sc, double thr, int64_t agent, const char *rtext, size_t rlen);
/* Appends an event; steals ev (NULL = out of memory). */
int score_append_event(store_tx *tx, const char *type, json_t *ev, store_err *err);

#endif
