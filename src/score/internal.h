/* Shared between the score module's files (score.c: features, priors,
 * the model cache, scoring and training; match.c: buyer-to-listing
 * matching). Not part of the module's interface: that is score.h. */
#ifndef EH_SCORE_INTERNAL_H
#define EH_SCORE_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

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
 * (prior only). */
double score_predict(score_ctx *c, int64_t tenant, int b, const feats *f, reason *rs, int *n, int *version,
                     double *base);
/* The top reasons, biggest effect first (sorts rs). */
json_t *score_reasons_json(const feats *f, reason *rs, int n, int kind_model);
/* Appends an event; steals ev (NULL = out of memory). */
int score_append_event(store_tx *tx, const char *type, json_t *ev, store_err *err);

#endif
