#include "entity.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "normalize.h"
#include "privacy/privacy.h"

/* ---- the resources ---- */

static const char *const lead_status[] = {"open", "won", "lost", "abandoned", NULL};
static const char *const listing_status[] = {"active", "pending", "sold", "off_market", NULL};

static const field lead_fields[] = {
    {"ghl_contact_id", F_TEXT, 64, FF_FILTER, NULL},
    {"ghl_location_id", F_TEXT, 64, 0, NULL},
    {"first_name", F_TEXT, 100, 0, NULL},
    {"last_name", F_TEXT, 100, 0, NULL},
    {"email", F_EMAIL, 254, FF_FILTER, NULL},
    {"phone", F_PHONE, 32, FF_FILTER, NULL},
    {"source", F_TEXT, 100, FF_FILTER, NULL},
    {"tags", F_LIST, 64, 0, NULL},
    {"stage", F_TEXT, 64, FF_FILTER, NULL},
    {"status", F_ENUM, 16, FF_FILTER, lead_status},
    {"agent_id", F_REF, 0, FF_FILTER, NULL},
    {"timezone", F_TEXT, 64, 0, NULL},
    {"language", F_TEXT, 16, 0, NULL},
    {"consent_sms", F_BOOL, 0, 0, NULL},
    {"consent_email", F_BOOL, 0, 0, NULL},
    {"consent_call", F_BOOL, 0, 0, NULL},
    {"dnd", F_BOOL, 0, 0, NULL},
    {"budget_min", F_REAL, 0, 0, NULL},
    {"budget_max", F_REAL, 0, 0, NULL},
    {"beds", F_REAL, 0, 0, NULL},
    {"baths", F_REAL, 0, 0, NULL},
    {"property_type", F_TEXT, 32, 0, NULL},
    {"areas", F_LIST, 32, 0, NULL},
    {"timeline", F_TEXT, 64, 0, NULL},
    {"preapproved", F_BOOL, 0, 0, NULL},
    {"score", F_REAL, 0, FF_READONLY, NULL},
    /* found by Apollo enrichment (src/nurture/enrich.c) */
    {"company", F_TEXT, 200, FF_READONLY, NULL},
    {"job_title", F_TEXT, 200, FF_READONLY, NULL},
    {"linkedin_url", F_TEXT, 300, FF_READONLY, NULL},
};

static const field agent_fields[] = {
    {"name", F_TEXT, 200, FF_REQUIRED, NULL},
    {"email", F_EMAIL, 254, 0, NULL},
    {"phone", F_PHONE, 32, 0, NULL},
    {"active", F_BOOL, 0, FF_FILTER, NULL},
    {"capacity", F_INT, 0, 0, NULL},
    {"areas", F_LIST, 32, 0, NULL},
    {"languages", F_LIST, 16, 0, NULL},
    {"ghl_user_id", F_TEXT, 64, FF_FILTER, NULL},
};

static const field listing_fields[] = {
    {"external_id", F_TEXT, 64, FF_FILTER, NULL},
    {"address", F_TEXT, 300, FF_REQUIRED, NULL},
    {"city", F_TEXT, 100, FF_FILTER, NULL},
    {"state", F_TEXT, 32, 0, NULL},
    {"zip", F_TEXT, 10, FF_FILTER, NULL},
    {"lat", F_LAT, 0, 0, NULL},
    {"lng", F_LNG, 0, 0, NULL},
    {"price", F_REAL, 0, 0, NULL},
    {"beds", F_REAL, 0, 0, NULL},
    {"baths", F_REAL, 0, 0, NULL},
    {"sqft", F_REAL, 0, 0, NULL},
    {"type", F_TEXT, 32, FF_FILTER, NULL},
    {"status", F_ENUM, 16, FF_FILTER, listing_status},
};

#define N(a) ((int)(sizeof a / sizeof a[0]))
const entity entity_lead = {"leads", "lead", lead_fields, N(lead_fields), 1, NULL};
const entity entity_agent = {"agents", "agent", agent_fields, N(agent_fields), 1, NULL};
const entity entity_listing = {"listings", "listing", listing_fields, N(listing_fields), 1, NULL};

/* ---- input ---- */

int ent_field(const entity *e, const char *name) {
    for (int i = 0; i < e->nfields; i++)
        if (strcmp(e->fields[i].name, name) == 0) return i;
    return -1;
}

static int utf8_ok(const char *s, size_t n) {
    /* jansson already guarantees valid UTF-8 for decoded strings; this
     * guards against control characters, which no field here accepts. */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\t') return 0;
    return 1;
}

static void add_err(json_t **errors, const char *field, const char *msg) {
    if (!*errors) *errors = json_object();
    if (*errors) json_object_set_new(*errors, field, json_string(msg));
}

void ent_error(json_t **errors, const char *field, const char *message) { add_err(errors, field, message); }

static char *own(ent_vals *out, int i, const char *s) {
    eh_free(out->owned[i]);
    out->owned[i] = eh_strdup(s);
    return out->owned[i];
}

int ent_parse(const entity *e, json_t *in, int creating, const char *default_country,
              ent_vals *out, json_t **errors) {
    memset(out, 0, sizeof *out);
    out->e = e;
    *errors = NULL;
    if (!json_is_object(in)) {
        add_err(errors, "_", "expected a JSON object");
        return -1;
    }
    const char *key;
    json_t *val;
    json_object_foreach(in, key, val) {
        int i = ent_field(e, key);
        if (i < 0) {
            if (strcmp(key, "id") && strcmp(key, "version") && strcmp(key, "created_at") &&
                strcmp(key, "updated_at"))
                add_err(errors, key, "unknown field");
            continue; /* server-managed fields are ignored, as in a GET-modify-PUT round trip */
        }
        const field *f = &e->fields[i];
        if (f->flags & FF_READONLY) continue;
        out->present[i] = 1;
        if (json_is_null(val)) {
            out->v[i] = SV_NULLV;
            continue;
        }
        char buf[320];
        switch (f->t) {
        case F_TEXT:
        case F_ENUM:
        case F_PHONE:
        case F_EMAIL: {
            if (!json_is_string(val)) { add_err(errors, key, "expected a string"); break; }
            const char *s = json_string_value(val);
            size_t n = json_string_length(val);
            if (n > f->maxlen) { add_err(errors, key, "too long"); break; }
            if (!utf8_ok(s, n) || memchr(s, 0, n)) { add_err(errors, key, "control characters are not allowed"); break; }
            if (f->t == F_ENUM) {
                int ok = 0;
                for (const char *const *en = f->enums; *en; en++) ok |= strcmp(*en, s) == 0;
                if (!ok) { add_err(errors, key, "not one of the allowed values"); break; }
                out->v[i] = SV_SN(s, n);
            } else if (f->t == F_PHONE) {
                if (n == 0) { out->v[i] = SV_NULLV; break; }
                if (norm_phone_e164(s, default_country, buf, sizeof buf) != NORM_OK) {
                    add_err(errors, key, "not a valid phone number");
                    break;
                }
                if (!own(out, i, buf)) { add_err(errors, key, "out of memory"); break; }
                out->v[i] = SV_S(out->owned[i]);
            } else if (f->t == F_EMAIL) {
                if (n == 0) { out->v[i] = SV_NULLV; break; }
                if (norm_email(s, buf, sizeof buf) != NORM_OK) {
                    add_err(errors, key, "not a valid email address");
                    break;
                }
                if (!own(out, i, buf)) { add_err(errors, key, "out of memory"); break; }
                out->v[i] = SV_S(out->owned[i]);
            } else {
                out->v[i] = SV_SN(s, n);
            }
            break;
        }
        case F_INT:
        case F_REF:
            if (!json_is_integer(val) || json_integer_value(val) < 0 ||
                (f->t == F_INT && json_integer_value(val) > 1000000)) {
                add_err(errors, key, f->t == F_REF ? "expected an id" : "expected an integer 0..1000000");
                break;
            }
            out->v[i] = SV_I(json_integer_value(val));
            break;
        case F_REAL:
        case F_LAT:
        case F_LNG: {
            if (!json_is_number(val)) { add_err(errors, key, "expected a number"); break; }
            double d = json_number_value(val);
            double lo = f->t == F_LAT ? -90 : f->t == F_LNG ? -180 : 0;
            double hi = f->t == F_LAT ? 90 : f->t == F_LNG ? 180 : 1e12;
            if (!isfinite(d) || d < lo || d > hi) { add_err(errors, key, "number out of range"); break; }
            out->v[i] = SV_D(d);
            break;
        }
        case F_BOOL:
            if (!json_is_boolean(val)) { add_err(errors, key, "expected true or false"); break; }
            out->v[i] = SV_I(json_is_true(val) ? 1 : 0);
            break;
        case F_JSON: {
            if (!json_is_array(val) && !json_is_object(val)) { add_err(errors, key, "expected a JSON array or object"); break; }
            char *s = json_dumps(val, JSON_COMPACT);
            if (!s || strlen(s) > f->maxlen) { free(s); add_err(errors, key, s ? "too large" : "out of memory"); break; }
            if (!own(out, i, s)) { free(s); add_err(errors, key, "out of memory"); break; }
            free(s);
            out->v[i] = SV_S(out->owned[i]);
            break;
        }
        case F_LIST: {
            if (!json_is_array(val) || json_array_size(val) > 50) {
                add_err(errors, key, "expected an array of at most 50 strings");
                break;
            }
            size_t j;
            json_t *it;
            int bad = 0;
            json_array_foreach(val, j, it) {
                if (!json_is_string(it) || json_string_length(it) == 0 ||
                    json_string_length(it) > f->maxlen ||
                    !utf8_ok(json_string_value(it), json_string_length(it)))
                    bad = 1;
            }
            if (bad) { add_err(errors, key, "each item must be a non-empty string within the length limit"); break; }
            char *s = json_dumps(val, JSON_COMPACT);
            if (!s || !own(out, i, s)) { free(s); add_err(errors, key, "out of memory"); break; }
            free(s);
            out->v[i] = SV_S(out->owned[i]);
            break;
        }
        }
    }
    if (creating)
        for (int i = 0; i < e->nfields; i++)
            if ((e->fields[i].flags & FF_REQUIRED) && (!out->present[i] || out->v[i].t == SV_NULL))
                add_err(errors, e->fields[i].name, "required");
    if (!*errors && e->check) e->check(out, in, creating, errors);
    if (*errors) {
        ent_vals_free(out);
        return -1;
    }
    return 0;
}

void ent_vals_free(ent_vals *v) {
    for (int i = 0; i < 64; i++) {
        eh_free(v->owned[i]);
        v->owned[i] = NULL;
    }
}

/* ---- statements ---- */

static void set_err(store_err *err, int code, const char *msg) {
    if (!err) return;
    err->code = code;
    snprintf(err->msg, sizeof err->msg, "%s", msg);
}

static int touches_consent(const ent_vals *v) {
    static const char *const names[] = {"consent_sms", "consent_email", "consent_call", "dnd"};
    for (int k = 0; k < 4; k++) {
        int i = ent_field(v->e, names[k]);
        if (i >= 0 && v->present[i]) return 1;
    }
    return 0;
}

/* SQL text is built with plain appends, not printf: it is rebuilt for
 * every write (the statement cache is keyed by the text). */
static void put_col(buf *b, const char *name) {
    buf_append(b, ", ", 2);
    buf_puts(b, name);
}

/* Appends the placeholder $k (k > 0). */
static void put_param(buf *b, int k) {
    char t[16];
    size_t n = sizeof t;
    do t[--n] = (char)('0' + k % 10); while ((k /= 10) && n > 1);
    t[--n] = '$';
    buf_append(b, t + n, sizeof t - n);
}

static int select_cols(const entity *e, buf *b) {
    buf_puts(b, "id");
    for (int i = 0; i < e->nfields; i++) put_col(b, e->fields[i].name);
    return buf_puts(b, ", version, created_at, updated_at");
}

int ent_insert(store_tx *tx, const ent_vals *v, int64_t now_ms, int64_t *id, store_err *err) {
    return ent_insert_row(tx, v, now_ms, id, NULL, err);
}

int ent_insert_row(store_tx *tx, const ent_vals *v, int64_t now_ms, int64_t *id, json_t **row, store_err *err) {
    return ent_insert_row_text(tx, v, now_ms, id, row, NULL, err);
}

int ent_insert_row_text(store_tx *tx, const ent_vals *v, int64_t now_ms, int64_t *id, json_t **row, char **text,
                        store_err *err) {
    const entity *e = v->e;
    if (row) *row = NULL;
    if (text) *text = NULL;
    buf sql, vals;
    buf_init(&sql, 8192);
    buf_init(&vals, 4096);
    store_val p[70];
    int n = 0;
    p[n++] = SV_I(store_tx_tenant(tx));
    p[n++] = SV_I(now_ms);
    buf_puts(&sql, "INSERT INTO ");
    buf_puts(&sql, e->table);
    buf_puts(&sql, " (tenant_id, created_at, updated_at");
    buf_puts(&vals, "$1, $2, $2");
    for (int i = 0; i < e->nfields; i++) {
        if (!v->present[i]) continue;
        put_col(&sql, e->fields[i].name);
        p[n] = v->v[i];
        n++;
        buf_append(&vals, ", ", 2);
        put_param(&vals, n);
    }
    buf_puts(&sql, ") VALUES (");
    buf_append(&sql, vals.p, vals.len);
    buf_puts(&sql, ")");
    /* The whole row when asked, or when its consent flags are to be
     * logged, as the INSERT's RETURNING (SQLite: a SELECT of the new rowid,
     * cheaper than its RETURNING; see store_insert_returning). */
    int log_consent = e == &entity_lead && touches_consent(v);
    buf cols;
    buf_init(&cols, 4096);
    if (row || text || log_consent) select_cols(e, &cols);
    else buf_puts(&cols, "id");
    store_rows *r = NULL;
    int rc = sql.len < sql.max - 1 && cols.len && cols.len < cols.max - 1
                 ? store_insert_returning(tx, sql.p, e->table, cols.p, p, n, &r, err)
                 : STORE_ERR;
    buf_free(&cols);
    int flags[4];
    if (rc == STORE_OK) {
        *id = store_rows_int(r, 0, 0);
        if (row && !(*row = ent_row_json(e, r, 0))) {
            set_err(err, STORE_NOMEM, "out of memory");
            rc = STORE_NOMEM;
        }
        if (text && rc == STORE_OK) {
            buf t;
            buf_init(&t, 1 << 20);
            if (ent_row_text(e, r, 0, &t) || !t.p) {
                buf_free(&t);
                set_err(err, STORE_NOMEM, "out of memory");
                rc = STORE_NOMEM;
            } else {
                *text = buf_detach(&t, NULL);
            }
        }
        static const char *const names[] = {"consent_sms", "consent_email", "consent_call", "dnd"};
        for (int k = 0; log_consent && k < 4; k++) /* column 0 is id */
            flags[k] = store_rows_int(r, 0, ent_field(e, names[k]) + 1) != 0;
    }
    store_rows_free(r);
    buf_free(&sql);
    buf_free(&vals);
    /* consent given with a new lead is logged with it */
    if (rc == STORE_OK && log_consent)
        rc = privacy_consent_diff_known(tx, *id, NULL, flags, v->consent_source ? v->consent_source : "api",
                                        v->consent_evidence, now_ms, err);
    if (rc && row) {
        json_decref(*row);
        *row = NULL;
    }
    if (rc && text) {
        eh_free(*text);
        *text = NULL;
    }
    return rc;
}

static int live_version(store_tx *tx, const entity *e, int64_t id, int64_t *version, store_err *err) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT version FROM %s WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
             e->table);
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(id)};
    store_rows *r = NULL;
    int rc = store_query(tx, sql, p, 2, &r, err);
    if (rc == STORE_OK && store_rows_count(r) == 0) {
        rc = STORE_NOTFOUND;
        set_err(err, rc, "not found");
    } else if (rc == STORE_OK) {
        *version = store_rows_int(r, 0, 0);
    }
    store_rows_free(r);
    return rc;
}

int ent_update(store_tx *tx, const ent_vals *v, int64_t id, int64_t expect_version,
               int64_t now_ms, store_err *err) {
    const entity *e = v->e;
    int64_t cur = 0;
    int rc = live_version(tx, e, id, &cur, err);
    if (rc) return rc;
    /* Every consent change is logged in the transaction that makes it,
     * whichever path it came by (REST, GHL webhook, CSV import). */
    int consent[4], log_consent = e == &entity_lead && touches_consent(v);
    if (log_consent && (rc = privacy_consent_flags(tx, id, consent, err))) return rc;
    if (expect_version > 0 && cur != expect_version) {
        set_err(err, STORE_CONFLICT, "version");
        return STORE_CONFLICT;
    }
    buf sql;
    buf_init(&sql, 8192);
    store_val p[70];
    int n = 0;
    p[n++] = SV_I(store_tx_tenant(tx));
    p[n++] = SV_I(id);
    p[n++] = SV_I(now_ms);
    p[n++] = SV_I(cur);
    buf_printf(&sql, "UPDATE %s SET updated_at = $3, version = version + 1", e->table);
    for (int i = 0; i < e->nfields; i++) {
        if (!v->present[i]) continue;
        p[n] = v->v[i];
        n++;
        put_col(&sql, e->fields[i].name);
        buf_append(&sql, " = ", 3);
        put_param(&sql, n);
    }
    /* version = $4 makes the read-check-write above atomic on PostgreSQL,
     * where another transaction may commit in between. */
    buf_puts(&sql, " WHERE tenant_id = $1 AND id = $2 AND version = $4 AND deleted_at IS NULL");
    rc = store_query(tx, sql.p, p, n, NULL, err);
    if (rc == STORE_OK && store_tx_changes(tx) == 0) {
        rc = STORE_CONFLICT;
        set_err(err, rc, "version");
    }
    buf_free(&sql);
    if (rc == STORE_OK && log_consent)
        rc = privacy_consent_diff(tx, id, consent, v->consent_source ? v->consent_source : "api", v->consent_evidence,
                                  now_ms, err);
    return rc;
}

json_t *ent_row_json(const entity *e, const store_rows *r, int row) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "id", json_integer(store_rows_int(r, row, 0)));
    for (int i = 0; i < e->nfields; i++) {
        int c = i + 1;
        const field *f = &e->fields[i];
        json_t *v;
        if (store_rows_isnull(r, row, c)) v = json_null();
        else switch (f->t) {
            case F_INT:
            case F_REF: v = json_integer(store_rows_int(r, row, c)); break;
            case F_REAL:
            case F_LAT:
            case F_LNG: v = json_real(store_rows_real(r, row, c)); break;
            case F_BOOL: v = json_boolean(store_rows_int(r, row, c) != 0); break;
            case F_LIST: {
                v = json_loads(store_rows_text(r, row, c), 0, NULL);
                if (!json_is_array(v)) {
                    json_decref(v);
                    v = json_array();
                }
                break;
            }
            case F_JSON: {
                v = json_loads(store_rows_text(r, row, c), 0, NULL);
                if (!v) v = json_null();
                break;
            }
            default: v = json_string(store_rows_text(r, row, c)); break;
            }
        json_object_set_new(o, f->name, v);
    }
    int c = e->nfields + 1;
    json_object_set_new(o, "version", json_integer(store_rows_int(r, row, c)));
    json_object_set_new(o, "created_at", json_integer(store_rows_int(r, row, c + 1)));
    json_object_set_new(o, "updated_at", json_integer(store_rows_int(r, row, c + 2)));
    return o;
}

/* A JSON value through jansson's own encoder (reals: its number format;
 * stored JSON: parsed and written back compact, as ent_row_json would). */
static int put_json(buf *b, json_t *v) {
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    if (!s) return BUF_NOMEM;
    int rc = buf_puts(b, s);
    free(s);
    return rc;
}

/* An integer cell: its text when it is already canonical decimal (it is,
 * from both backends), else as ent_row_json reads it. */
static int put_int(buf *b, const store_rows *r, int row, int c) {
    const char *t = store_rows_text(r, row, c);
    size_t n = t ? strlen(t) : 0, i = n && t[0] == '-';
    int ok = n > i && n - i <= 18 && (t[i] != '0' || n - i == 1) && !(i && t[1] == '0');
    for (size_t k = i; ok && k < n; k++) ok = t[k] >= '0' && t[k] <= '9';
    if (ok) return buf_append(b, t, n);
    char num[24];
    snprintf(num, sizeof num, "%lld", (long long)store_rows_int(r, row, c));
    return buf_puts(b, num);
}

/* ,"name": in one append (names are the schema's, short and plain) */
static int put_key(buf *b, const char *name, int first) {
    char k[72];
    size_t n = strlen(name), o = 0;
    if (n > sizeof k - 4) return BUF_TOO_BIG;
    if (!first) k[o++] = ',';
    k[o++] = '"';
    memcpy(k + o, name, n);
    o += n;
    k[o++] = '"';
    k[o++] = ':';
    return buf_append(b, k, o);
}

int ent_row_text(const entity *e, const store_rows *r, int row, buf *out) {
    /* BUF_ codes are negative: OR-ing keeps any failure */
    int rc = buf_putc(out, '{');
    rc |= put_key(out, "id", 1);
    rc |= put_int(out, r, row, 0);
    for (int i = 0; !rc && i < e->nfields; i++) {
        int c = i + 1;
        const field *f = &e->fields[i];
        rc |= put_key(out, f->name, 0);
        if (store_rows_isnull(r, row, c)) {
            rc |= buf_append(out, "null", 4);
            continue;
        }
        switch (f->t) {
        case F_INT:
        case F_REF: rc |= put_int(out, r, row, c); break;
        case F_REAL:
        case F_LAT:
        case F_LNG: rc |= put_json(out, json_real(store_rows_real(r, row, c))); break;
        case F_BOOL: rc |= store_rows_int(r, row, c) ? buf_append(out, "true", 4) : buf_append(out, "false", 5); break;
        case F_LIST: {
            if (!strcmp(store_rows_text(r, row, c), "[]")) { /* the column's default */
                rc |= buf_append(out, "[]", 2);
                break;
            }
            json_t *v = json_loads(store_rows_text(r, row, c), 0, NULL);
            if (!json_is_array(v)) {
                json_decref(v);
                v = json_array();
            }
            rc |= put_json(out, v);
            break;
        }
        case F_JSON: {
            json_t *v = json_loads(store_rows_text(r, row, c), 0, NULL);
            rc |= v ? put_json(out, v) : buf_append(out, "null", 4);
            break;
        }
        default:
            rc |= buf_putc(out, '"');
            rc |= buf_json_str(out, store_rows_text(r, row, c), store_rows_len(r, row, c));
            rc |= buf_putc(out, '"');
            break;
        }
    }
    int c = e->nfields + 1;
    static const char *const tail[] = {"version", "created_at", "updated_at"};
    for (int k = 0; !rc && k < 3; k++) {
        rc |= put_key(out, tail[k], 0);
        rc |= put_int(out, r, row, c + k);
    }
    return rc ? rc : buf_putc(out, '}');
}

int ent_get(store_tx *tx, const entity *e, int64_t id, json_t **out, store_err *err) {
    buf sql;
    buf_init(&sql, 4096);
    buf_puts(&sql, "SELECT ");
    select_cols(e, &sql);
    buf_printf(&sql, " FROM %s WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL", e->table);
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(id)};
    store_rows *r = NULL;
    int rc = store_query(tx, sql.p, p, 2, &r, err);
    buf_free(&sql);
    if (rc == STORE_OK && store_rows_count(r) == 0) {
        rc = STORE_NOTFOUND;
        set_err(err, rc, "not found");
    } else if (rc == STORE_OK) {
        *out = ent_row_json(e, r, 0);
        if (!*out) rc = STORE_NOMEM;
    }
    store_rows_free(r);
    return rc;
}

int ent_delete(store_tx *tx, const entity *e, int64_t id, int64_t now_ms, store_err *err) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE %s SET deleted_at = $3, updated_at = $3, version = version + 1 "
             "WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
             e->table);
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(id), SV_I(now_ms)};
    int rc = store_query(tx, sql, p, 3, NULL, err);
    if (rc == STORE_OK && store_tx_changes(tx) == 0) {
        rc = STORE_NOTFOUND;
        set_err(err, rc, "not found");
    }
    return rc;
}

/* ---- lists ---- */

void ent_query_init(ent_query *q, const entity *e, int64_t tenant, int64_t before_id, int limit) {
    memset(q, 0, sizeof *q);
    q->e = e;
    q->before_id = before_id > 0 ? before_id : INT64_MAX;
    q->limit = limit < 1 ? 50 : limit > 500 ? 500 : limit;
    q->params[0] = SV_I(tenant);
    q->params[1] = SV_I(q->before_id);
    q->nparams = 2;
}

int ent_query_add(ent_query *q, const char *cond, store_val v) {
    if (q->nparams >= (int)(sizeof q->params / sizeof q->params[0])) return -1;
    q->params[q->nparams++] = v;
    size_t len = strlen(q->where);
    char num[16];
    snprintf(num, sizeof num, "$%d", q->nparams);
    /* " AND " + cond with each "$?" replaced by this parameter's number. */
    if (len + 5 + strlen(cond) + 16 * 4 >= sizeof q->where) return -1;
    strcat(q->where, " AND ");
    for (const char *p = cond; *p; p++) {
        if (p[0] == '$' && p[1] == '?') {
            strcat(q->where, num);
            p++;
        } else {
            size_t l = strlen(q->where);
            q->where[l] = *p;
            q->where[l + 1] = '\0';
        }
    }
    return 0;
}

int ent_list(store_tx *tx, ent_query *q, json_t **out, store_err *err) {
    const entity *e = q->e;
    buf sql;
    buf_init(&sql, 8192);
    buf_puts(&sql, "SELECT ");
    select_cols(e, &sql);
    buf_printf(&sql, " FROM %s WHERE tenant_id = $1 AND deleted_at IS NULL AND id < $2%s "
                     "ORDER BY id DESC LIMIT %d",
               e->table, q->where, q->limit + 1);
    store_rows *r = NULL;
    int rc = store_query(tx, sql.p, q->params, q->nparams, &r, err);
    buf_free(&sql);
    if (rc) return rc;
    json_t *items = json_array();
    int n = store_rows_count(r);
    int take = n > q->limit ? q->limit : n;
    for (int i = 0; i < take; i++) json_array_append_new(items, ent_row_json(e, r, i));
    json_t *next = json_null();
    if (n > q->limit) {
        char cur[32];
        snprintf(cur, sizeof cur, "%lld", (long long)store_rows_int(r, take - 1, 0));
        json_decref(next);
        next = json_string(cur);
    }
    store_rows_free(r);
    *out = json_pack("{s:o, s:o}", "items", items, "next_cursor", next);
    return *out ? STORE_OK : STORE_NOMEM;
}

