/* entity — one description per stored resource (lead, agent, listing)
 * drives everything generic about it: validating and normalising JSON
 * input, the INSERT / UPDATE / SELECT statements, rows back to JSON, soft
 * deletes with optimistic concurrency, and keyset-paginated lists.
 *
 * Column names come only from the static field tables, never from input;
 * every value is a bound parameter. Every statement is scoped by the
 * transaction's tenant. All functions run inside a store transaction
 * (thread pool). */
#ifndef EH_ENTITY_H
#define EH_ENTITY_H

#include <jansson.h>
#include <stdint.h>

#include "base/buf.h"
#include "store/store.h"

typedef enum {
    F_TEXT,   /* string up to maxlen bytes */
    F_INT,    /* integer */
    F_REAL,   /* finite number >= 0 */
    F_BOOL,   /* true/false, stored 0/1 */
    F_LIST,   /* array of up to 50 strings (each up to maxlen), stored as JSON text */
    F_ENUM,   /* one of enums[] */
    F_PHONE,  /* normalised to E.164 */
    F_EMAIL,  /* normalised, validated */
    F_REF,    /* id of another row of the tenant (checked by the caller) */
    F_LAT,    /* latitude -90..90 */
    F_LNG,    /* longitude -180..180 */
    F_JSON,   /* a JSON array or object, at most maxlen bytes compact; checked by the entity's check */
} field_type;

enum {
    FF_READONLY = 1 << 0, /* set by the server; ignored in input */
    FF_REQUIRED = 1 << 1, /* must be present (non-null) on create */
    FF_FILTER = 1 << 2,   /* ?name=value equality filter on lists */
};

typedef struct field {
    const char *name; /* column and JSON key */
    field_type t;
    size_t maxlen;
    int flags;
    const char *const *enums; /* F_ENUM: NULL-terminated */
} field;

struct ent_vals;
typedef struct entity {
    const char *table;   /* "leads" */
    const char *kind;    /* "lead": event types "lead.created"... */
    const field *fields; /* excluding id, tenant_id, version, created_at, updated_at, deleted_at */
    int nfields;
    int versioned;       /* has a version column */
    /* Rules across fields or inside a F_JSON value, after each field was
     * parsed: adds {field: message} to errors (created on demand) for
     * each problem. in is the request's JSON. May be NULL. */
    void (*check)(const struct ent_vals *v, json_t *in, int creating, json_t **errors);
} entity;

extern const entity entity_lead, entity_agent, entity_listing;

/* Parsed input: one slot per field of the entity, in table order. */
typedef struct ent_vals {
    const entity *e;
    unsigned char present[64]; /* field given in the input (possibly null) */
    store_val v[64];
    char *owned[64];           /* normalised strings we allocated (freed by ent_vals_free) */
    /* Leads: who changes consent, for the consent log (src/privacy). Set
     * after ent_parse (which clears them); NULL source = "api". Not owned. */
    const char *consent_source, *consent_evidence;
} ent_vals;

/* Validates a JSON object against e. creating: required fields must be
 * present. default_country: for phone normalisation. On failure returns -1
 * and *errors gets a JSON object {field: message}; caller owns it. */
int ent_parse(const entity *e, json_t *in, int creating, const char *default_country,
              ent_vals *out, json_t **errors);
void ent_vals_free(ent_vals *v);
/* Index of a field by name, or -1. */
int ent_field(const entity *e, const char *name);
/* Adds {field: message} to *errors (created on demand), for check hooks. */
void ent_error(json_t **errors, const char *field, const char *message);

/* INSERT with the present values; returns the new id. */
int ent_insert(store_tx *tx, const ent_vals *v, int64_t now_ms, int64_t *id, store_err *err);
/* The same, and *row (if row is not NULL; the caller's) gets the new row as
 * ent_get would read it, from the INSERT's RETURNING. */
int ent_insert_row(store_tx *tx, const ent_vals *v, int64_t now_ms, int64_t *id, json_t **row, store_err *err);
/* ent_insert_row, and *text (if text is not NULL; the caller's, eh_free)
 * gets the same row as compact JSON text (ent_row_text). */
int ent_insert_row_text(store_tx *tx, const ent_vals *v, int64_t now_ms, int64_t *id, json_t **row, char **text,
                        store_err *err);
/* UPDATE the present values of row id. expect_version > 0 requires that
 * version (else STORE_CONFLICT with msg "version"). STORE_NOTFOUND if no
 * live row. Bumps version and updated_at. */
int ent_update(store_tx *tx, const ent_vals *v, int64_t id, int64_t expect_version,
               int64_t now_ms, store_err *err);
/* The live row id as a JSON object, or STORE_NOTFOUND. */
int ent_get(store_tx *tx, const entity *e, int64_t id, json_t **out, store_err *err);
/* Soft delete; STORE_NOTFOUND if no live row. */
int ent_delete(store_tx *tx, const entity *e, int64_t id, int64_t now_ms, store_err *err);

/* A list query: equality filters, extra SQL conditions (built only from
 * constant text with $N parameters), keyset cursor, newest first. */
typedef struct ent_query {
    const entity *e;
    char where[2048];   /* " AND ..." conditions */
    store_val params[32];
    int nparams;        /* params[0] is the tenant, params[1] the cursor */
    int64_t before_id;  /* keyset cursor: rows with id < before_id (0 = from the newest) */
    int limit;          /* 1..500 */
} ent_query;

void ent_query_init(ent_query *q, const entity *e, int64_t tenant, int64_t before_id, int limit);
/* Appends " AND <cond>" where cond uses $? for the next parameter; returns
 * -1 if the query is full. */
int ent_query_add(ent_query *q, const char *cond_fmt, store_val v);
/* Runs it: *out = {"items":[...], "next_cursor": "..."|null}. */
int ent_list(store_tx *tx, ent_query *q, json_t **out, store_err *err);

/* Turns one row of a SELECT of all columns (id, fields..., version,
 * created_at, updated_at) into JSON. */
json_t *ent_row_json(const entity *e, const store_rows *r, int row);
/* The same document as compact JSON text, appended to out, written
 * straight from the row (an event payload needs no tree: this runs with
 * every lead created). Keys and values as json_dumps(ent_row_json(...),
 * JSON_COMPACT) gives them; strings are escaped by buf_json_str. A BUF_
 * code on failure. */
int ent_row_text(const entity *e, const store_rows *r, int row, buf *out);

#endif
