/* property_match: listings for a buyer, and buyers for a listing.
 *
 * Hard filters first (what a buyer said no to is never shown): active
 * listings within the budget, with at least the beds and baths asked for,
 * of the property type asked for, in the buyer's areas (zip codes) or
 * within a radius of a point. Then a soft score in [0, 1], a weighted sum
 * of four fits, each reported as a reason:
 *   price  0.35  1 at 90% of the budget's top, falling off either side
 *   size   0.25  1 for exactly the beds/baths asked, less per extra room
 *   place  0.20  by distance to the point asked (exp(-km/5)), else 1 in
 *                the buyer's areas
 *   value  0.20  the tenant's property_value model against the asking
 *                price: 0.5 at par, 1 when priced 20% under the estimate
 * A fit with nothing to go on (no budget, no point, no model) counts 0.5,
 * so it neither helps nor hurts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "internal.h"
#include "leads/leads.h"
#include "score.h"

#define MAX_CANDIDATES 5000
#define MAX_AREAS 20
#define MAX_REVERSE 200

typedef struct pref {
    double bmin, bmax, beds, baths; /* NaN = not given */
    char type[65];                  /* "" = any */
    const char *area[MAX_AREAS];
    int nareas;
    json_t *areas_json; /* owns area[] */
} pref;

typedef struct cand {
    int row;
    double score, value;
    double fit[4];
    double km;
} cand;

static double nan_or(const store_rows *r, int row, int col) {
    return store_rows_isnull(r, row, col) ? NAN : store_rows_real(r, row, col);
}

static double haversine_km(double lat1, double lng1, double lat2, double lng2) {
    const double rad = M_PI / 180;
    double dlat = (lat2 - lat1) * rad, dlng = (lng2 - lng1) * rad;
    double a = sin(dlat / 2) * sin(dlat / 2) + cos(lat1 * rad) * cos(lat2 * rad) * sin(dlng / 2) * sin(dlng / 2);
    return 6371.0 * 2 * atan2(sqrt(a), sqrt(1 - a));
}

static void pref_load(pref *p, const store_rows *r, int row) {
    memset(p, 0, sizeof *p);
    p->bmin = nan_or(r, row, 0);
    p->bmax = nan_or(r, row, 1);
    p->beds = nan_or(r, row, 2);
    p->baths = nan_or(r, row, 3);
    const char *t = store_rows_text(r, row, 4);
    if (t) snprintf(p->type, sizeof p->type, "%s", t);
    p->areas_json = json_loads(store_rows_text(r, row, 5) ? store_rows_text(r, row, 5) : "[]", 0, NULL);
    for (size_t i = 0; json_is_array(p->areas_json) && i < json_array_size(p->areas_json) && p->nareas < MAX_AREAS;
         i++) {
        const char *s = json_string_value(json_array_get(p->areas_json, i));
        if (s && *s) p->area[p->nareas++] = s;
    }
}

/* The four fits of a listing (row of a LISTING_COLS result) for p; the
 * weighted score. value: the model's estimate (NaN: none). km: distance to
 * the point asked (NaN: none). */
static double fits(const pref *p, const store_rows *r, int row, double value, double km, double fit[4]) {
    double price = nan_or(r, row, L_PRICE);
    fit[0] = 0.5;
    if (!isnan(p->bmax) && p->bmax > 0 && !isnan(price)) {
        double target = 0.9 * p->bmax;
        fit[0] = fmax(0, 1 - fabs(price - target) / p->bmax * 2.5);
    }
    fit[1] = 0.5;
    double beds = nan_or(r, row, L_BEDS), baths = nan_or(r, row, L_BATHS);
    if ((!isnan(p->beds) && !isnan(beds)) || (!isnan(p->baths) && !isnan(baths))) {
        double extra = (!isnan(p->beds) && !isnan(beds) ? fmax(0, beds - p->beds) : 0) +
                       (!isnan(p->baths) && !isnan(baths) ? 0.5 * fmax(0, baths - p->baths) : 0);
        fit[1] = fmax(0, 1 - 0.2 * extra);
    }
    if (!isnan(km)) fit[2] = exp(-km / 5.0);
    else fit[2] = p->nareas ? 1.0 : 0.5; /* in an asked area (the filter made sure) */
    fit[3] = 0.5;
    if (!isnan(value) && !isnan(price) && price > 0) fit[3] = fmin(1, fmax(0, 0.5 + (value / price - 1) * 2.5));
    return 0.35 * fit[0] + 0.25 * fit[1] + 0.20 * fit[2] + 0.20 * fit[3];
}

static json_t *listing_json(const store_rows *r, int row) {
    json_t *o = json_object();
    static const struct {
        const char *name;
        int col, num;
    } cols[] = {{"id", L_ID, 2},     {"address", L_ADDRESS, 0}, {"city", L_CITY, 0},  {"zip", L_ZIP, 0},
                {"price", L_PRICE, 1}, {"beds", L_BEDS, 1},      {"baths", L_BATHS, 1}, {"sqft", L_SQFT, 1},
                {"type", L_TYPE, 0},  {"lat", L_LAT, 1},        {"lng", L_LNG, 1},    {"status", L_STATUS, 0}};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        json_t *v = store_rows_isnull(r, row, cols[i].col) ? json_null()
                    : cols[i].num == 2                     ? json_integer(store_rows_int(r, row, cols[i].col))
                    : cols[i].num                          ? json_real(store_rows_real(r, row, cols[i].col))
                                                           : json_string(store_rows_text(r, row, cols[i].col));
        json_object_set_new(o, cols[i].name, v);
    }
    return o;
}

static json_t *reasons_of(const pref *p, const store_rows *r, int row, const double fit_in[4], double value,
                          double km) {
    double fit[4];
    for (int i = 0; i < 4; i++) fit[i] = round(fit_in[i] * 1000) / 1000;
    json_t *a = json_array();
    char d[200];
    double price = nan_or(r, row, L_PRICE);
    if (!isnan(p->bmax) && !isnan(price))
        snprintf(d, sizeof d, "$%.0f is %.0f%% of the $%.0f budget", price, 100 * price / p->bmax, p->bmax);
    else
        snprintf(d, sizeof d, "no budget given");
    json_array_append_new(a, json_pack("{s:s, s:f, s:s}", "factor", "price", "fit", fit[0], "detail", d));
    double beds = nan_or(r, row, L_BEDS), baths = nan_or(r, row, L_BATHS);
    char want_beds[32] = "any", want_baths[32] = "any";
    if (!isnan(p->beds)) snprintf(want_beds, sizeof want_beds, "%g+", p->beds);
    if (!isnan(p->baths)) snprintf(want_baths, sizeof want_baths, "%g+", p->baths);
    snprintf(d, sizeof d, "%g beds, %g baths; asked %s beds, %s baths", isnan(beds) ? 0 : beds,
             isnan(baths) ? 0 : baths, want_beds, want_baths);
    json_array_append_new(a, json_pack("{s:s, s:f, s:s}", "factor", "size", "fit", fit[1], "detail", d));
    if (!isnan(km)) snprintf(d, sizeof d, "%.1f km from the point asked", km);
    else if (p->nareas) snprintf(d, sizeof d, "in %s, one of the buyer's areas", store_rows_text(r, row, L_ZIP));
    else snprintf(d, sizeof d, "no area given");
    json_array_append_new(a, json_pack("{s:s, s:f, s:s}", "factor", "place", "fit", fit[2], "detail", d));
    if (!isnan(value) && !isnan(price) && price > 0)
        snprintf(d, sizeof d, "asking $%.0f against an estimated $%.0f (%+.0f%%)", price, value,
                 100 * (value / price - 1));
    else
        snprintf(d, sizeof d, "no valuation model trained for this tenant");
    json_array_append_new(a, json_pack("{s:s, s:f, s:s}", "factor", "value", "fit", fit[3], "detail", d));
    return a;
}

static int cmp_cand(const void *a, const void *b) {
    double x = ((const cand *)a)->score, y = ((const cand *)b)->score;
    if (x != y) return x < y ? 1 : -1;
    return ((const cand *)a)->row - ((const cand *)b)->row; /* oldest listing first on ties: stable */
}

static double estimate(score_ctx *c, store_tx *tx, int64_t tenant, const store_rows *r, int row, int *version) {
    feats f;
    score_listing_features(r, row, &f);
    int n = 0;
    return score_predict(c, tx, tenant, B_VALUE, &f, NULL, &n, version, NULL);
}

int score_matches(store_tx *tx, int64_t lead_id, const score_match_opts *o, json_t **out, store_err *err) {
    *out = NULL;
    int64_t tenant = store_tx_tenant(tx);
    store_val lp[] = {SV_I(tenant), SV_I(lead_id)};
    store_rows *lr = NULL;
    int rc = store_query(tx,
                         "SELECT budget_min, budget_max, beds, baths, property_type, areas FROM leads "
                         "WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
                         lp, 2, &lr, err);
    if (rc) return rc;
    if (!store_rows_count(lr)) {
        store_rows_free(lr);
        err->code = STORE_NOTFOUND;
        snprintf(err->msg, sizeof err->msg, "no such lead");
        return STORE_NOTFOUND;
    }
    pref p;
    pref_load(&p, lr, 0);
    store_rows_free(lr);
    int radius = o->radius_km > 0 && !isnan(o->lat) && !isnan(o->lng);

    /* the hard filters, in SQL; only the ones the buyer gave */
    char sql[2048];
    buf b;
    buf_init(&b, sizeof sql);
    store_val v[8 + MAX_AREAS];
    int nv = 0;
    v[nv++] = SV_I(tenant);
    buf_puts(&b, LISTING_COLS "WHERE tenant_id = $1 AND deleted_at IS NULL AND status = 'active'");
    if (!isnan(p.bmax)) v[nv++] = SV_D(p.bmax), buf_printf(&b, " AND price <= $%d", nv);
    if (!isnan(p.bmin)) v[nv++] = SV_D(p.bmin), buf_printf(&b, " AND price >= $%d", nv);
    if (!isnan(p.beds)) v[nv++] = SV_D(p.beds), buf_printf(&b, " AND beds >= $%d", nv);
    if (!isnan(p.baths)) v[nv++] = SV_D(p.baths), buf_printf(&b, " AND baths >= $%d", nv);
    if (p.type[0]) v[nv++] = SV_S(p.type), buf_printf(&b, " AND LOWER(type) = LOWER($%d)", nv);
    if (radius) {
        /* a bounding box the index can narrow; the exact circle below */
        double dlat = o->radius_km / 111.0, dlng = o->radius_km / (111.0 * fmax(0.01, cos(o->lat * M_PI / 180)));
        v[nv++] = SV_D(o->lat - dlat), buf_printf(&b, " AND lat >= $%d", nv);
        v[nv++] = SV_D(o->lat + dlat), buf_printf(&b, " AND lat <= $%d", nv);
        v[nv++] = SV_D(o->lng - dlng), buf_printf(&b, " AND lng >= $%d", nv);
        v[nv++] = SV_D(o->lng + dlng), buf_printf(&b, " AND lng <= $%d", nv);
    } else if (p.nareas) {
        buf_puts(&b, " AND zip IN (");
        for (int i = 0; i < p.nareas; i++) {
            v[nv++] = SV_S(p.area[i]);
            buf_printf(&b, "%s$%d", i ? ", " : "", nv);
        }
        buf_putc(&b, ')');
    }
    buf_printf(&b, " ORDER BY id LIMIT %d", MAX_CANDIDATES);
    store_rows *r = NULL;
    rc = b.p ? store_query(tx, b.p, v, nv, &r, err) : STORE_NOMEM;
    buf_free(&b);
    if (rc) {
        json_decref(p.areas_json);
        return rc;
    }
    int n = store_rows_count(r), kept = 0, version = 0;
    cand *cs = malloc((size_t)(n ? n : 1) * sizeof *cs);
    score_ctx *c = leads_scorer(tx);
    for (int i = 0; cs && i < n; i++) {
        double km = NAN;
        if (radius) {
            if (store_rows_isnull(r, i, L_LAT) || store_rows_isnull(r, i, L_LNG)) continue;
            km = haversine_km(o->lat, o->lng, store_rows_real(r, i, L_LAT), store_rows_real(r, i, L_LNG));
            if (km > o->radius_km) continue;
        }
        cand *k = &cs[kept++];
        k->row = i;
        k->km = km;
        k->value = estimate(c, tx, tenant, r, i, &version);
        k->score = fits(&p, r, i, k->value, km, k->fit);
    }
    if (!cs) {
        store_rows_free(r);
        json_decref(p.areas_json);
        err->code = STORE_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return STORE_NOMEM;
    }
    qsort(cs, (size_t)kept, sizeof *cs, cmp_cand);
    json_t *arr = json_array();
    for (int i = 0; i < kept && i < o->limit; i++) {
        cand *k = &cs[i];
        json_t *val = isnan(k->value) ? json_null()
                                      : json_pack("{s:f, s:f, s:i}", "estimate", round(k->value),
                                                  "ratio", round(k->value / nan_or(r, k->row, L_PRICE) * 1000) / 1000,
                                                  "model_version", version);
        json_array_append_new(arr, json_pack("{s:o, s:f, s:o, s:o}", "listing", listing_json(r, k->row), "score",
                                             round(k->score * 10000) / 10000, "value", val, "reasons",
                                             reasons_of(&p, r, k->row, k->fit, k->value, k->km)));
    }
    *out = json_pack("{s:I, s:i, s:i, s:o}", "lead_id", (json_int_t)lead_id, "candidates", kept, "scanned", n,
                     "matches", arr);
    if (n == MAX_CANDIDATES) json_object_set_new(*out, "truncated", json_true());
    free(cs);
    store_rows_free(r);
    json_decref(p.areas_json);
    return STORE_OK;
}

int score_listing_matched(store_tx *tx, int64_t listing_id, const char *why, int *matched, store_err *err) {
    *matched = 0;
    int64_t tenant = store_tx_tenant(tx);
    store_val lp[] = {SV_I(tenant), SV_I(listing_id)};
    store_rows *r = NULL;
    int rc = store_query(tx, LISTING_COLS "WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL", lp, 2, &r, err);
    if (rc) return rc;
    /* only an active, priced listing is offered to anyone */
    if (!store_rows_count(r) || strcmp(store_rows_text(r, 0, L_STATUS), "active") || store_rows_isnull(r, 0, L_PRICE)) {
        store_rows_free(r);
        return STORE_OK;
    }
    double price = store_rows_real(r, 0, L_PRICE);
    char sql[1024], like[80];
    buf b;
    buf_init(&b, sizeof sql);
    store_val v[8];
    int nv = 0;
    v[nv++] = SV_I(tenant);
    v[nv++] = SV_D(price);
    /* the buyer's hard filters, seen from the listing; a buyer who gave
     * neither a budget nor an area is not told about every listing */
    buf_puts(&b, "SELECT budget_min, budget_max, beds, baths, property_type, areas, id, agent_id FROM leads "
                 "WHERE tenant_id = $1 AND status = 'open' AND deleted_at IS NULL "
                 "AND (budget_max IS NULL OR budget_max >= $2) AND (budget_min IS NULL OR budget_min <= $2) "
                 "AND (budget_max IS NOT NULL OR areas <> '[]')");
    if (store_rows_isnull(r, 0, L_BEDS)) buf_puts(&b, " AND beds IS NULL");
    else v[nv++] = SV_D(store_rows_real(r, 0, L_BEDS)), buf_printf(&b, " AND (beds IS NULL OR beds <= $%d)", nv);
    if (store_rows_isnull(r, 0, L_BATHS)) buf_puts(&b, " AND baths IS NULL");
    else v[nv++] = SV_D(store_rows_real(r, 0, L_BATHS)), buf_printf(&b, " AND (baths IS NULL OR baths <= $%d)", nv);
    if (store_rows_isnull(r, 0, L_TYPE)) buf_puts(&b, " AND property_type IS NULL");
    else
        v[nv++] = SV_S(store_rows_text(r, 0, L_TYPE)),
        buf_printf(&b, " AND (property_type IS NULL OR LOWER(property_type) = LOWER($%d))", nv);
    if (store_rows_isnull(r, 0, L_ZIP)) {
        buf_puts(&b, " AND areas = '[]'");
    } else {
        snprintf(like, sizeof like, "%%\"%s\"%%", store_rows_text(r, 0, L_ZIP));
        v[nv++] = SV_S(like);
        buf_printf(&b, " AND (areas = '[]' OR areas LIKE $%d)", nv);
    }
    buf_printf(&b, " ORDER BY id LIMIT %d", MAX_REVERSE);
    store_rows *lr = NULL;
    rc = b.p ? store_query(tx, b.p, v, nv, &lr, err) : STORE_NOMEM;
    buf_free(&b);
    if (rc) {
        store_rows_free(r);
        return rc;
    }
    int version = 0;
    double value = estimate(leads_scorer(tx), tx, tenant, r, 0, &version);
    for (int i = 0; i < store_rows_count(lr) && !rc; i++) {
        pref p;
        pref_load(&p, lr, i);
        double fit[4];
        double s = fits(&p, r, 0, value, NAN, fit);
        json_t *ev = json_pack("{s:I, s:I, s:o, s:f, s:s, s:o}", "listing_id", (json_int_t)listing_id, "lead_id",
                               (json_int_t)store_rows_int(lr, i, 6), "agent_id",
                               store_rows_isnull(lr, i, 7) ? json_null() : json_integer(store_rows_int(lr, i, 7)),
                               "score", round(s * 10000) / 10000, "why", why, "reasons",
                               reasons_of(&p, r, 0, fit, value, NAN));
        rc = score_append_event(tx, "listing.matched", ev, err);
        json_decref(p.areas_json);
        if (!rc) (*matched)++;
    }
    store_rows_free(lr);
    store_rows_free(r);
    return rc;
}

int score_valuation(store_tx *tx, int64_t listing_id, json_t **out, store_err *err) {
    *out = NULL;
    store_val lp[] = {SV_I(store_tx_tenant(tx)), SV_I(listing_id)};
    store_rows *r = NULL;
    int rc = store_query(tx, LISTING_COLS "WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL", lp, 2, &r, err);
    if (rc) return rc;
    if (!store_rows_count(r)) {
        store_rows_free(r);
        err->code = STORE_NOTFOUND;
        snprintf(err->msg, sizeof err->msg, "no such listing");
        return STORE_NOTFOUND;
    }
    feats f;
    score_listing_features(r, 0, &f);
    reason rs[NFEAT + 16];
    int n = 0, version = 0;
    double value = score_predict(leads_scorer(tx), tx, store_tx_tenant(tx), B_VALUE, &f, rs, &n, &version, NULL);
    double price = nan_or(r, 0, L_PRICE);
    if (isnan(value)) {
        store_rows_free(r);
        err->code = STORE_INVALID;
        snprintf(err->msg, sizeof err->msg, "no property_value model: train one (POST /v1/models/property_value/train)");
        return STORE_INVALID;
    }
    *out = json_pack("{s:I, s:o, s:f, s:o, s:s, s:i, s:o, s:o}", "listing_id", (json_int_t)listing_id, "price",
                     isnan(price) ? json_null() : json_real(price), "estimate", round(value), "ratio",
                     isnan(price) || price <= 0 ? json_null() : json_real(round(value / price * 1000) / 1000),
                     "model", SCORE_VALUE, "model_version", version, "listing", listing_json(r, 0),
                     /* SHAP on the log price: effects multiply the estimate by exp(effect) */
                     "reasons", score_reasons_json(&f, rs, n, 1));
    store_rows_free(r);
    return STORE_OK;
}
