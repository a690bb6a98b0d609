/* Demo data for `ehub serve --demo`: a team of agents, some listings and a
 * few dozen leads, generated deterministically (the same every time), plus
 * an admin API key for this run. Leads go through the real upsert and
 * routing paths, so the demo shows real assignments and events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "app.h"
#include "base/clock.h"
#include "leads/leads.h"
#include "ml/ml.h"
#include "nurture/nurture.h"

static const char *const first[] = {"Ana", "Ben", "Carla", "Dev", "Elena", "Farid", "Grace", "Hiro",
                                    "Ines", "Jamal", "Kara", "Luis", "Maya", "Noah", "Olivia", "Priya"};
static const char *const last[] = {"Silva", "Okafor", "Nguyen", "Patel", "Garcia", "Kim", "Rossi", "Haddad",
                                   "Müller", "Johnson", "Lopez", "Chen"};
static const char *const sources[] = {"zillow", "realtor.com", "facebook_ads", "open_house", "referral", "website"};
/* the zips with the most listings in demo/sacramento.csv */
static const char *const zips[] = {"95823", "95828", "95758", "95838", "95835", "95757", "95822", "95820"};
static const char *const timelines[] = {"0-3 months", "3-6 months", "6-12 months", "just looking"};

/* xorshift: deterministic, no shared state. */
static unsigned next(unsigned *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}
#define PICK(arr, s) arr[next(s) % (sizeof arr / sizeof arr[0])]

static int insert(store_tx *tx, const entity *e, json_t *in, int lead, store_err *err) {
    ent_vals v;
    json_t *errors = NULL;
    /* v points into in: keep in alive until the row is written. */
    int rc = ent_parse(e, in, 1, "US", &v, &errors);
    if (rc) {
        json_decref(in);
        char *s = json_dumps(errors, JSON_COMPACT);
        snprintf(err->msg, sizeof err->msg, "demo data invalid: %s", s ? s : "?");
        free(s);
        json_decref(errors);
        return STORE_INVALID;
    }
    int64_t id;
    int created;
    if (lead) rc = leads_upsert(tx, &v, clock_wall_ms(), &id, &created, err);
    else rc = ent_insert(tx, &v, clock_wall_ms(), &id, err);
    ent_vals_free(&v);
    json_decref(in);
    return rc;
}

static int seed_tx(store_tx *tx, void *arg, store_err *err) {
    int rc = 0;
    static const struct { const char *name, *email, *phone, *areas, *langs; int cap; } agents[] = {
        {"Sofia Reyes", "sofia@demo-realty.example", "+19165550101", "[\"95823\",\"95828\",\"95758\"]", "[\"en\",\"es\"]", 25},
        {"Marcus Lee", "marcus@demo-realty.example", "+19165550102", "[\"95838\",\"95835\",\"95757\"]", "[\"en\"]", 20},
        {"Aisha Khan", "aisha@demo-realty.example", "+19165550103", "[\"95822\",\"95820\"]", "[\"en\",\"hi\"]", 15},
        {"Tom Becker", "tom@demo-realty.example", "+19165550104", "[]", "[\"en\",\"de\"]", 10},
    };
    for (size_t i = 0; i < 4 && !rc; i++)
        rc = insert(tx, &entity_agent,
                    json_pack("{s:s, s:s, s:s, s:b, s:i, s:o, s:o}", "name", agents[i].name, "email",
                              agents[i].email, "phone", agents[i].phone, "active", 1, "capacity", agents[i].cap,
                              "areas", json_loads(agents[i].areas, 0, NULL), "languages",
                              json_loads(agents[i].langs, 0, NULL)),
                    0, err);
    static const struct { const char *addr, *zip; double lat, lng, price, beds, baths, sqft; const char *type; } homes[] = {
        {"2417 Capitol Ave", "95816", 38.5739, -121.4705, 529000, 3, 2, 1650, "Residential"},
        {"914 T St", "95811", 38.5697, -121.4990, 415000, 2, 2, 1180, "Condo"},
        {"3201 Freeport Blvd", "95818", 38.5552, -121.4960, 612000, 4, 3, 2210, "Residential"},
        {"5540 H St", "95819", 38.5700, -121.4410, 689000, 3, 2, 1890, "Residential"},
        {"7719 Center Pkwy", "95823", 38.4780, -121.4330, 339000, 3, 2, 1320, "Residential"},
        {"1820 Del Paso Blvd", "95815", 38.6050, -121.4470, 299000, 2, 1, 960, "Multi-Family"},
        {"44 Sandburg Dr", "95819", 38.5630, -121.4410, 749000, 4, 3, 2480, "Residential"},
        {"2601 Land Park Dr", "95818", 38.5500, -121.4990, 845000, 4, 3, 2750, "Residential"},
    };
    for (size_t i = 0; i < sizeof homes / sizeof homes[0] && !rc; i++)
        rc = insert(tx, &entity_listing,
                    json_pack("{s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:s, s:s}", "address", homes[i].addr,
                              "city", "Sacramento", "state", "CA", "zip", homes[i].zip, "lat", homes[i].lat, "lng",
                              homes[i].lng, "price", homes[i].price, "beds", homes[i].beds, "baths", homes[i].baths,
                              "sqft", homes[i].sqft, "type", homes[i].type, "status", "active"),
                    0, err);
    /* A follow-up sequence to enrol leads in by hand (not on every new lead:
     * the demo has no SMS or e-mail provider configured). */
    if (!rc)
        rc = insert(tx, &entity_template,
                    json_pack("{s:s, s:s, s:s, s:b}", "name", "intro_sms", "channel", "sms", "body",
                              "Hi {{first_name|there}}, it's {{agent.name}} from {{tenant.name}}. Want to see a few "
                              "homes that fit your budget this week? Reply STOP to opt out.", "marketing", 1),
                    0, err);
    if (!rc)
        rc = insert(tx, &entity_template,
                    json_pack("{s:s, s:s, s:s, s:s, s:b}", "name", "listings_email", "channel", "email", "subject",
                              "{{first_name|Hi}}, homes picked for you", "body",
                              "<p>Hi {{first_name|there}},</p><p>I put together a few homes that match what you are "
                              "looking for. Reply to this e-mail and I will set up showings.</p><p>{{agent.name}}<br>"
                              "{{agent.phone}}</p>", "marketing", 1),
                    0, err);
    if (!rc)
        rc = insert(tx, &entity_sequence,
                    json_pack("{s:s, s:s, s:b, s:[{s:s, s:s}, {s:s, s:i}, {s:s, s:s}, {s:s, s:s}]}", "name",
                              "Buyer follow-up", "start_on", "manual", "active", 1, "steps", "type", "sms", "template",
                              "intro_sms", "type", "wait", "minutes", 1440, "type", "email", "template",
                              "listings_email", "type", "task", "text", "Call to book a showing"),
                    0, err);
    unsigned s = 20261123u;
    for (int i = 0; i < 40 && !rc; i++) {
        const char *fn = PICK(first, &s), *ln = PICK(last, &s);
        char email[96], phone[24];
        snprintf(email, sizeof email, "%s.%s%d@example.com", fn, ln, i);
        for (char *c = email; *c; c++)
            if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
        /* Non-ASCII letters in names are fine; e-mail local parts here are ASCII. */
        for (char *c = email; *c; c++)
            if ((unsigned char)*c >= 0x80) *c = 'u';
        snprintf(phone, sizeof phone, "(916) 555-%04u", 1000 + next(&s) % 9000);
        /* 2008 Sacramento prices: a median sale near $215k */
        double budget = 150000 + (next(&s) % 40) * 7500;
        rc = insert(tx, &entity_lead,
                    json_pack("{s:s, s:s, s:s, s:s, s:s, s:[s], s:s, s:b, s:b, s:f, s:f, s:f, s:[s], s:s, s:b, s:s}",
                              "first_name", fn, "last_name", ln, "email", email, "phone", phone, "source",
                              PICK(sources, &s), "tags", "buyer", "stage", "new", "consent_sms", (int)(next(&s) % 4 != 0),
                              "consent_email", 1, "budget_min", budget * 0.8, "budget_max", budget, "beds",
                              (double)(2 + next(&s) % 3), "areas", PICK(zips, &s), "timeline", PICK(timelines, &s),
                              "preapproved", (int)(next(&s) % 2), "language", (next(&s) % 5 == 0) ? "es" : "en"),
                    1, err);
    }
    return rc;
}

/* Listings from a CSV with Sacramento.csv's columns (city, zip, beds,
 * baths, sqft, type, price, latitude, longitude): 932 real sales, offered
 * as the demo tenant's active listings. Rows that do not parse are
 * skipped. */
static int csv_listings_tx(store_tx *tx, void *arg, store_err *err) {
    const ml_table *t = arg;
    static const char *const need[] = {"city", "zip", "beds", "baths", "sqft", "type", "price", "latitude", "longitude"};
    int col[9];
    for (int i = 0; i < 9; i++)
        if ((col[i] = ml_table_col(t, need[i])) < 0) {
            snprintf(err->msg, sizeof err->msg, "demo listings: no column %s", need[i]);
            return STORE_INVALID;
        }
    int rc = 0;
    for (size_t r = 0; r < ml_table_rows(t) && !rc; r++) {
        double num[7];
        int ok = 1;
        for (int i = 2; i < 9; i++)
            if (i != 5) ok &= ml_parse_number(ml_table_cell(t, r, (size_t)col[i]), &num[i - 2]) == 0;
        const char *zip = ml_table_cell(t, r, (size_t)col[1]);
        if (*zip == 'z') zip++;
        if (!ok || strlen(zip) != 5) continue;
        char city[64], addr[160];
        snprintf(city, sizeof city, "%s", ml_table_cell(t, r, (size_t)col[0]));
        for (char *c = city + 1; *c; c++) /* SACRAMENTO -> Sacramento */
            if (*c >= 'A' && *c <= 'Z' && c[-1] != ' ') *c = (char)(*c + 32);
        snprintf(addr, sizeof addr, "Demo home %zu, %s %s", r + 1, city, zip);
        json_t *in = json_pack("{s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:s, s:s}", "address", addr, "city",
                               city, "state", "CA", "zip", zip, "lat", num[5], "lng", num[6], "price", num[4], "beds",
                               num[0], "baths", num[1], "sqft", num[2], "type", ml_table_cell(t, r, (size_t)col[5]),
                               "status", "active");
        if (num[2] <= 0) json_object_del(in, "sqft"); /* the data set has 0 for unknown */
        rc = insert(tx, &entity_listing, in, 0, err);
    }
    return rc;
}

typedef struct key_args {
    char *key;
} key_args;

static int key_tx(store_tx *tx, void *arg, store_err *err) {
    key_args *k = arg;
    /* One live demo key at a time: earlier runs' keys stop working. */
    store_val p[] = {SV_I(clock_wall_ms()), SV_I(store_tx_tenant(tx))};
    int rc = store_query(tx, "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND name = 'demo' "
                             "AND revoked_at IS NULL", p, 2, NULL, err);
    int64_t id;
    if (!rc) rc = auth_key_create(tx, "demo", ROLE_ADMIN, k->key, &id, err);
    return rc;
}

int demo_data_seed(store *st, int64_t tenant, int created, const char *listings_csv,
                   char key_out[AUTH_KEY_LEN + 1], store_err *err) {
    int rc = created ? store_write(st, tenant, seed_tx, NULL, err) : STORE_OK;
    if (!rc && created && listings_csv) {
        char why[ML_ERR_LEN];
        ml_table *t = ml_table_read(listings_csv, why, sizeof why);
        if (t) {
            rc = store_write(st, tenant, csv_listings_tx, t, err);
            ml_table_free(t);
        }
        /* a missing file leaves the eight listings above */
    }
    key_args k = {key_out};
    if (!rc) rc = store_write(st, tenant, key_tx, &k, err);
    return rc;
}

/* ---- demo users: one per role, for the dashboard ---- */

const demo_user demo_users[DEMO_USERS] = {
    {"admin@demo-realty.example", "admin", NULL},
    {"manager@demo-realty.example", "manager", NULL},
    {"analyst@demo-realty.example", "analyst", NULL},
    {"sofia@demo-realty.example", "agent", "sofia@demo-realty.example"},
    {"viewer@demo-realty.example", "viewer", NULL},
};

void demo_password(char out[DEMO_PASSWORD_LEN + 1]) {
    /* No look-alikes (0/O, 1/l/I): read off a terminal and typed. */
    static const char alpha[] = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    for (int i = 0; i < DEMO_PASSWORD_LEN; i++)
        out[i] = alpha[randombytes_uniform((uint32_t)(sizeof alpha - 1))];
    out[DEMO_PASSWORD_LEN] = 0;
}

typedef struct users_args {
    const char *pwhash;
} users_args;

static int users_tx(store_tx *tx, void *arg, store_err *err) {
    users_args *u = arg;
    int64_t tenant = store_tx_tenant(tx), now = clock_wall_ms();
    int rc = 0;
    for (int i = 0; i < DEMO_USERS && !rc; i++) {
        const demo_user *d = &demo_users[i];
        int64_t agent = 0;
        store_rows *r = NULL;
        if (d->agent_email) {
            store_val p[] = {SV_I(tenant), SV_S(d->agent_email)};
            rc = store_query(tx, "SELECT id FROM agents WHERE tenant_id = $1 AND email = $2", p, 2, &r, err);
            if (!rc && store_rows_count(r)) agent = store_rows_int(r, 0, 0);
            store_rows_free(r);
            r = NULL;
            if (rc) break;
        }
        store_val p[] = {SV_I(tenant), SV_S(d->email)};
        rc = store_query(tx, "SELECT id FROM users WHERE tenant_id = $1 AND email = $2", p, 2, &r, err);
        if (rc) break;
        int64_t id = store_rows_count(r) ? store_rows_int(r, 0, 0) : 0;
        store_rows_free(r);
        int role = auth_role_parse(d->role), existed = id != 0;
        if (existed) {
            /* This run's password; the role and agent as the demo says. */
            store_val v[] = {SV_S(u->pwhash), SV_S(d->role), agent ? SV_I(agent) : SV_NULLV, SV_I(now), SV_I(id),
                             SV_I(tenant)};
            rc = store_query(tx, "UPDATE users SET password_hash = $1, role = $2, agent_id = $3, disabled = 0, "
                                 "updated_at = $4 WHERE id = $5 AND tenant_id = $6", v, 6, NULL, err);
            if (!rc) rc = auth_refresh_revoke_all(tx, NULL, tenant, id, now, err);
        } else {
            rc = auth_user_create(tx, d->email, role, u->pwhash, agent, now, &id, err);
        }
        if (rc) break;
        char target[32];
        snprintf(target, sizeof target, "user:%lld", (long long)id);
        auth_actor who = {"cli", NULL};
        json_t *det = json_pack("{s:s, s:s, s:s}", "email", d->email, "role", d->role, "via", "demo");
        rc = auth_audit(tx, tenant, &who, existed ? "user.update" : "user.create", target,
                        det, now, err);
        json_decref(det);
    }
    return rc;
}

int demo_users_seed(store *st, int64_t tenant, const char *password, store_err *err) {
    char hash[AUTH_PWHASH_LEN];
    if (auth_password_hash(password, strlen(password), hash)) {
        snprintf(err->msg, sizeof err->msg, "cannot hash the demo password (out of memory)");
        return STORE_NOMEM;
    }
    users_args u = {hash};
    return store_write(st, tenant, users_tx, &u, err);
}
