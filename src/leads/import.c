/* CSV import of leads, shared by POST /v1/leads/import and
 * `ehub import leads FILE --tenant T`.
 *
 * The first record is the header. Columns map to lead fields by name (the
 * API's own names, or common CRM/portal spellings such as "First Name",
 * "Mobile", "Lead Source"), or explicitly with map=Header:field,... Each
 * data row is validated alone; a bad row is reported with its line number
 * and the reason, and skipped. Good rows are upserted (same rules as the
 * API) in batches of 500 per transaction; a row is either wholly written or
 * not at all (see flush). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/csv.h"
#include "leads.h"

#define BATCH 500
#define MAX_ERRORS 1000

static const struct { const char *alias, *field; } aliases[] = {
    {"first name", "first_name"}, {"firstname", "first_name"}, {"first", "first_name"}, {"given name", "first_name"},
    {"last name", "last_name"}, {"lastname", "last_name"}, {"last", "last_name"}, {"surname", "last_name"},
    {"name", "_name"}, {"full name", "_name"}, {"contact name", "_name"},
    {"email", "email"}, {"e-mail", "email"}, {"email address", "email"},
    {"phone", "phone"}, {"phone number", "phone"}, {"mobile", "phone"}, {"cell", "phone"}, {"mobile phone", "phone"},
    {"source", "source"}, {"lead source", "source"},
    {"tags", "tags"}, {"stage", "stage"}, {"status", "status"}, {"timezone", "timezone"}, {"time zone", "timezone"},
    {"language", "language"},
    {"budget min", "budget_min"}, {"min price", "budget_min"}, {"min budget", "budget_min"},
    {"budget max", "budget_max"}, {"max price", "budget_max"}, {"budget", "budget_max"}, {"max budget", "budget_max"},
    {"beds", "beds"}, {"bedrooms", "beds"}, {"baths", "baths"}, {"bathrooms", "baths"},
    {"property type", "property_type"}, {"areas", "areas"}, {"area", "areas"}, {"zip", "areas"},
    {"zip code", "areas"}, {"postal code", "areas"}, {"timeline", "timeline"},
    {"pre-approved", "preapproved"}, {"preapproved", "preapproved"}, {"pre approved", "preapproved"},
    {"sms consent", "consent_sms"}, {"email consent", "consent_email"}, {"call consent", "consent_call"},
    {"contact id", "ghl_contact_id"}, {"ghl contact id", "ghl_contact_id"},
};

typedef struct pending {
    ent_vals v;
    json_t *in; /* keeps the strings v points at alive */
    unsigned long line;
} pending;

/* A growable set of parsed rows. A streamed import parses a whole network
 * read before it stops for a write, so a set may pass BATCH a little. */
typedef struct rowset {
    pending *v;
    int n, cap;
} rowset;

struct import_session {
    store *st;
    int64_t tenant;
    char country[4];
    int header_done;
    int ncols;
    const char *col_field[512]; /* field name per column, NULL = ignored, "_name" = split */
    json_t *ignored;
    rowset fill; /* rows parsed, waiting to be written */
    rowset out;  /* rows being written (flush) */
    long imported, updated, failed, rows;
    json_t *errors;
    int fatal;
    store_err err;
    const char *map; /* "Header:field,..." or NULL */
    int batch_created, bad_row;
    int streamed; /* rows are written by the caller (HTTP), not from on_row */
    app_write_audit *wa; /* HTTP: each batch's transaction appends its audit entry (NULL: CLI) */
};

typedef struct import_session import_session;

static void add_error(import_session *s, unsigned long line, const char *msg, json_t *fields) {
    s->failed++;
    if (json_array_size(s->errors) >= MAX_ERRORS) {
        json_decref(fields);
        return;
    }
    json_t *e = json_pack("{s:I, s:s}", "line", (json_int_t)line, "error", msg);
    if (fields) json_object_set_new(e, "fields", fields);
    json_array_append_new(s->errors, e);
}

static const char *map_header(import_session *s, const char *h) {
    char low[128];
    size_t n = 0;
    while (*h == ' ') h++;
    for (; *h && n + 1 < sizeof low; h++) low[n++] = (char)(*h >= 'A' && *h <= 'Z' ? *h + 32 : *h);
    while (n && low[n - 1] == ' ') n--;
    low[n] = 0;
    if (s->map) {
        /* explicit mapping first: "CSV Header:field,..." (case-insensitive header) */
        const char *p = s->map;
        while (*p) {
            const char *colon = strchr(p, ':'), *comma = strchr(p, ',');
            if (!colon || (comma && comma < colon)) break;
            size_t hl = (size_t)(colon - p);
            const char *f = colon + 1;
            size_t fl = comma ? (size_t)(comma - f) : strlen(f);
            if (hl == n && strncasecmp(p, low, hl) == 0) {
                char field[64];
                snprintf(field, sizeof field, "%.*s", (int)fl, f);
                int i = ent_field(&entity_lead, field);
                if (i >= 0) return entity_lead.fields[i].name;
            }
            if (!comma) break;
            p = comma + 1;
        }
    }
    int i = ent_field(&entity_lead, low);
    if (i >= 0 && !(entity_lead.fields[i].flags & FF_READONLY)) return entity_lead.fields[i].name;
    for (size_t k = 0; k < sizeof aliases / sizeof aliases[0]; k++)
        if (strcmp(aliases[k].alias, low) == 0) return aliases[k].field;
    return NULL;
}

/* Turns one cell into the JSON type its field wants. Returns NULL (and a
 * message) if it cannot. */
static json_t *cell_json(const field *f, const char *v, const char **why) {
    char *end;
    switch (f->t) {
    case F_REAL:
    case F_LAT:
    case F_LNG: {
        char tmp[64];
        size_t n = 0;
        for (const char *p = v; *p && n + 1 < sizeof tmp; p++)
            if (*p != '$' && *p != ',' && *p != ' ') tmp[n++] = *p; /* "$450,000" */
        tmp[n] = 0;
        double d = strtod(tmp, &end);
        if (end == tmp || *end) { *why = "not a number"; return NULL; }
        return json_real(d);
    }
    case F_INT:
    case F_REF: {
        long long x = strtoll(v, &end, 10);
        if (end == v || *end) { *why = "not an integer"; return NULL; }
        return json_integer(x);
    }
    case F_BOOL:
        if (!strcasecmp(v, "yes") || !strcasecmp(v, "y") || !strcasecmp(v, "true") || !strcmp(v, "1"))
            return json_true();
        if (!strcasecmp(v, "no") || !strcasecmp(v, "n") || !strcasecmp(v, "false") || !strcmp(v, "0"))
            return json_false();
        *why = "expected yes/no";
        return NULL;
    case F_LIST: {
        json_t *a = json_array();
        const char *p = v;
        while (*p) {
            size_t n = strcspn(p, ",;|");
            const char *b = p, *e = p + n;
            while (b < e && *b == ' ') b++;
            while (e > b && e[-1] == ' ') e--;
            if (e > b) json_array_append_new(a, json_stringn(b, (size_t)(e - b)));
            p += n;
            if (*p) p++;
        }
        return a;
    }
    default:
        return json_string(v);
    }
}

/* The audit entry of a batch: how many rows, never what they hold. */
static int batch_audit(store_tx *tx, import_session *s, int rows, int created, store_err *err) {
    if (!s->wa) return STORE_OK;
    json_t *x = json_pack("{s:i, s:i}", "rows", rows, "created", created);
    int rc = x ? app_write_audit_append(tx, s->wa, 200, NULL, x, err) : STORE_ERR;
    json_decref(x);
    return rc;
}

/* One transaction for the whole batch: the fast path. */
static int flush_tx(store_tx *tx, void *arg, store_err *err) {
    import_session *s = arg;
    int64_t now = clock_wall_ms();
    s->batch_created = 0;
    for (int i = 0; i < s->out.n; i++) {
        int64_t id;
        int created;
        s->out.v[i].v.consent_source = "import";
        int rc = leads_upsert(tx, &s->out.v[i].v, now, &id, &created, err);
        if (rc) {
            s->bad_row = i;
            return rc;
        }
        s->batch_created += created;
    }
    return batch_audit(tx, s, s->out.n, s->batch_created, err);
}

typedef struct one_row {
    import_session *s;
    pending *p;
    int created;
} one_row;

static int row_tx(store_tx *tx, void *arg, store_err *err) {
    one_row *o = arg;
    int64_t id;
    o->p->v.consent_source = "import";
    int rc = leads_upsert(tx, &o->p->v, clock_wall_ms(), &id, &o->created, err);
    return rc ? rc : batch_audit(tx, o->s, 1, o->created, err);
}

static void rowset_clear(rowset *r) {
    for (int i = 0; i < r->n; i++) {
        ent_vals_free(&r->v[i].v);
        json_decref(r->v[i].in);
    }
    r->n = 0;
}

static void rowset_free(rowset *r) {
    rowset_clear(r);
    eh_free(r->v);
    r->v = NULL;
    r->cap = 0;
}

/* The next free slot, or NULL without memory. */
static pending *rowset_slot(rowset *r) {
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : BATCH;
        pending *nv = eh_realloc(r->v, (size_t)cap * sizeof *nv);
        if (!nv) return NULL;
        r->v = nv;
        r->cap = cap;
    }
    return &r->v[r->n];
}

/* Writes the parsed rows (s->fill) as one batch. A batch is one
 * transaction; if one row in it fails (a failed statement dooms the
 * transaction on both backends), nothing of the batch was written and each
 * row is retried alone, so only the rows that really fail are reported.
 * Blocking: runs on the pool for HTTP. */
static int flush(import_session *s) {
    rowset t = s->out;
    s->out = s->fill;
    s->fill = t;
    if (!s->out.n) return 0;
    s->bad_row = -1;
    int rc = store_write(s->st, s->tenant, flush_tx, s, &s->err);
    if (rc == STORE_OK) {
        s->imported += s->batch_created;
        s->updated += s->out.n - s->batch_created;
    } else if (rc == STORE_CONFLICT || rc == STORE_INVALID) {
        rc = 0;
        for (int i = 0; i < s->out.n; i++) {
            one_row o = {s, &s->out.v[i], 0};
            store_err e = {0};
            int r = store_write(s->st, s->tenant, row_tx, &o, &e);
            if (r == STORE_OK) {
                if (o.created) s->imported++;
                else s->updated++;
            } else if (r == STORE_CONFLICT || r == STORE_INVALID) {
                add_error(s, s->out.v[i].line, r == STORE_CONFLICT                      ? "conflicts with an existing lead"
                                               : strncmp(e.msg, "agent_id:", 9) == 0 ? e.msg
                                                                                     : "rejected by the database",
                          NULL);
            } else {
                s->err = e;
                add_error(s, s->out.v[i].line, "storage error; row not imported", NULL);
                s->fatal = 1;
                rc = r;
            }
        }
    } else {
        for (int i = 0; i < s->out.n; i++) add_error(s, s->out.v[i].line, "storage error; row not imported", NULL);
        s->fatal = 1;
    }
    rowset_clear(&s->out);
    return rc;
}

static int on_row(void *ud, const csv_row *row) {
    import_session *s = ud;
    if (row->error) {
        if (!s->header_done) {
            s->fatal = 1;
            add_error(s, row->line, csv_strerror(row->error->code), NULL);
            return 1;
        }
        s->rows++; /* a data row, if an unreadable one */
        add_error(s, row->line, csv_strerror(row->error->code), NULL);
        return 0;
    }
    if (!s->header_done) {
        s->header_done = 1;
        s->ncols = (int)row->nfields;
        int mapped = 0;
        for (size_t i = 0; i < row->nfields; i++) {
            s->col_field[i] = map_header(s, row->field[i]);
            if (s->col_field[i]) mapped++;
            else json_array_append_new(s->ignored, json_string(row->field[i]));
        }
        if (!mapped) {
            s->fatal = 1;
            add_error(s, row->line, "no column of the header maps to a lead field", NULL);
            return 1;
        }
        return 0;
    }
    s->rows++;
    json_t *in = json_object();
    json_t *cell_errors = NULL;
    for (size_t i = 0; i < row->nfields && i < (size_t)s->ncols; i++) {
        const char *f = s->col_field[i];
        const char *v = row->field[i];
        if (!f || !row->len[i]) continue;
        if (strcmp(f, "_name") == 0) {
            const char *sp = strchr(v, ' ');
            if (!json_object_get(in, "first_name"))
                json_object_set_new(in, "first_name", sp ? json_stringn(v, (size_t)(sp - v)) : json_string(v));
            if (sp && !json_object_get(in, "last_name")) json_object_set_new(in, "last_name", json_string(sp + 1));
            continue;
        }
        const field *fd = &entity_lead.fields[ent_field(&entity_lead, f)];
        const char *why = NULL;
        json_t *j = cell_json(fd, v, &why);
        if (!j) {
            if (!cell_errors) cell_errors = json_object();
            json_object_set_new(cell_errors, f, json_string(why));
            continue;
        }
        json_object_set_new(in, f, j);
    }
    if (cell_errors) {
        add_error(s, row->line, "invalid values", cell_errors);
        json_decref(in);
        return 0;
    }
    if (!json_object_get(in, "email") && !json_object_get(in, "phone") && !json_object_get(in, "first_name") &&
        !json_object_get(in, "last_name")) {
        add_error(s, row->line, "a lead needs a name, an email or a phone", NULL);
        json_decref(in);
        return 0;
    }
    pending *p = rowset_slot(&s->fill);
    if (!p) {
        add_error(s, row->line, "out of memory", NULL);
        json_decref(in);
        s->fatal = 1;
        return 1;
    }
    json_t *errors = NULL;
    if (ent_parse(&entity_lead, in, 1, s->country, &p->v, &errors)) {
        add_error(s, row->line, "invalid values", errors);
        json_decref(in);
        return 0;
    }
    p->in = in;
    p->line = row->line;
    s->fill.n++;
    if (!s->streamed && s->fill.n >= BATCH && flush(s)) return 1;
    return 0;
}

static int country_tx(store_tx *tx, void *arg, store_err *err) {
    import_session *s = arg;
    tenant_settings ts;
    int rc = leads_settings_load(tx, &ts, err);
    leads_settings_free(&ts);
    if (!rc) memcpy(s->country, ts.default_country, sizeof s->country);
    return rc;
}

static import_session *session_new(store *st, int64_t tenant, const char *map) {
    import_session *s = eh_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->st = st;
    s->tenant = tenant;
    s->map = map;
    strcpy(s->country, "US");
    s->errors = json_array();
    s->ignored = json_array();
    return s;
}

static json_t *session_result(import_session *s) {
    return json_pack("{s:I, s:I, s:I, s:I, s:O, s:O}", "rows", (json_int_t)s->rows, "imported",
                     (json_int_t)s->imported, "updated", (json_int_t)s->updated, "failed", (json_int_t)s->failed,
                     "errors", s->errors, "ignored_columns", s->ignored);
}

static void session_free(import_session *s) {
    if (!s) return;
    rowset_free(&s->fill);
    rowset_free(&s->out);
    json_decref(s->errors);
    json_decref(s->ignored);
    app_write_audit_free(s->wa);
    eh_free(s);
}

static const csv_limits import_limits = {.max_field = 8192, .max_fields = 512, .max_row = 256 * 1024};

/* Phones without a country code are read in the tenant's country. */
static void load_country(import_session *s) {
    store_read(s->st, s->tenant, country_tx, s, &s->err);
}

/* After the last row: what the whole import amounts to. */
static void finish_rows(import_session *s) {
    if (!s->header_done && !s->fatal) {
        s->fatal = 1;
        add_error(s, 1, "empty file: expected a header row", NULL);
    }
}

/* ---- HTTP ----
 * The body is streamed: rows are parsed on the loop thread as the bytes
 * arrive, and each time a batch is ready reading pauses while the batch is
 * written on the pool, so an upload of any size (up to --max-import) holds
 * about one batch in memory and the client is slowed to the database's
 * pace by TCP itself. */

typedef struct import_req {
    app *a;
    import_session *s;
    csv_reader *r;
    char *map;
    int busy;       /* a write is on the pool */
    int ended;      /* the body ended (on_end) */
    int end_status; /* what on_end said */
    int final;      /* the last write is on the pool */
    int64_t start_ms;
} import_req;

static void ireq_free(import_req *ir) {
    session_free(ir->s);
    if (ir->r) csv_free(ir->r);
    eh_free(ir->map);
    eh_free(ir);
}

static void reply_result(http_req *q, import_req *ir) {
    import_session *s = ir->s;
    int st = ir->end_status;
    if (st == 0 && s->fatal && (!s->header_done || (s->rows == 0 && !s->err.msg[0]))) {
        json_t *first = json_array_get(s->errors, 0);
        http_reply_error(q, 400, "invalid_csv", first ? json_string_value(json_object_get(first, "error")) : "bad CSV");
    } else if (st == 0 && s->fatal && !s->imported && !s->updated && s->err.msg[0]) {
        log_msg(ir->a->log, LOG_ERROR, "import failed", s->err.msg);
        http_reply_error(q, 503, "unavailable", "storage error during import; nothing from the failed batch was written");
    } else if (st == 0) {
        log_line l;
        if (log_begin(ir->a->log, &l, LOG_INFO, "leads imported")) {
            log_id(&l, "request_id", http_req_id(q));
            log_int(&l, "rows", s->rows);
            log_int(&l, "imported", s->imported);
            log_int(&l, "updated", s->updated);
            log_int(&l, "failed", s->failed);
            log_int(&l, "ms", clock_wall_ms() - ir->start_ms);
            log_end(&l);
        }
        http_reply_json(q, 200, session_result(s));
    } else {
        /* The upload stopped part-way. Rows of batches already written stay
         * (each is whole); rows parsed since are dropped; the client learns
         * how far it got. */
        const char *code = st == 413 ? "body_too_large" : st == 408 ? "timeout" : "bad_request";
        char msg[256];
        snprintf(msg, sizeof msg,
                 st == 413 ? "the CSV exceeds --max-import; %ld rows were written before it was cut off"
                 : st == 408 ? "the upload stalled; %ld rows were written before it stopped"
                             : "malformed request body; %ld rows were written before it",
                 s->imported + s->updated);
        json_t *body = json_pack("{s:{s:s, s:s, s:s, s:o}}", "error", "code", code, "message", msg, "request_id",
                                 http_req_id(q), "result", session_result(s));
        http_reply_json(q, st > 0 ? st : 400, body);
    }
    ireq_free(ir);
}

static void write_work(void *arg) {
    import_req *ir = arg;
    if (ir->final) {
        csv_finish(ir->r, on_row, ir->s);
        finish_rows(ir->s);
        if (!ir->s->fatal || ir->s->header_done) flush(ir->s);
    } else {
        flush(ir->s);
    }
}

static void write_done(http_req *q, void *arg) {
    import_req *ir = arg;
    ir->busy = 0;
    if (ir->final || http_req_gone(q) || (ir->ended && ir->end_status)) {
        reply_result(q, ir);
        return;
    }
    if (ir->s->fatal) {
        /* storage failed: stop reading and say so */
        ir->end_status = 0;
        reply_result(q, ir);
        return;
    }
    if (ir->ended) { /* cannot happen while paused; kept for safety */
        ir->final = 1;
        ir->busy = 1;
        if (http_req_work(q, write_work, write_done, ir) == 0) return;
        ir->busy = 0;
        http_reply_error(q, 503, "overloaded", "cannot schedule work");
        ireq_free(ir);
        return;
    }
    http_req_resume(q); /* may end the body: on_end runs from here */
}

static void schedule_write(http_req *q, import_req *ir) {
    ir->busy = 1;
    if (http_req_work(q, write_work, write_done, ir)) {
        ir->busy = 0;
        http_reply_error(q, 503, "overloaded", "cannot schedule work");
        ireq_free(ir);
    }
}

static void on_body_data(http_req *q, const char *data, size_t len, void *ud) {
    import_req *ir = ud;
    import_session *s = ir->s;
    int rc = csv_feed(ir->r, data, len, on_row, s);
    if (rc == CSV_STOPPED || rc < 0 || s->fatal) {
        /* A header no field maps to, or out of memory: answer now; the rest
         * of the body is not read. */
        if (rc < 0 && !s->fatal) {
            s->fatal = 1;
            add_error(s, 0, "out of memory", NULL);
        }
        reply_result(q, ir);
        return;
    }
    if (s->fill.n >= BATCH) {
        http_req_pause(q);
        schedule_write(q, ir);
    }
}

static void on_body_end(http_req *q, int status, void *ud) {
    import_req *ir = ud;
    ir->ended = 1;
    ir->end_status = status;
    if (ir->busy) return; /* write_done answers */
    if (status) {
        reply_result(q, ir);
        return;
    }
    ir->final = 1;
    schedule_write(q, ir);
}

static const http_body_stream import_stream = {on_body_data, on_body_end};

static void country_work(void *arg) {
    import_req *ir = arg;
    load_country(ir->s);
}

static void country_done(http_req *q, void *arg) {
    import_req *ir = arg;
    ir->busy = 0;
    if (http_req_gone(q) || http_req_stream_body(q, &import_stream, ir, ir->a->cfg.max_import)) {
        http_reply_error(q, 503, "unavailable", "client gone");
        ireq_free(ir);
    }
}

static void h_import(http_req *q, app *a, const auth_principal *p, void *ud) {
    (void)ud;
    const char *ct = http_req_header(q, "Content-Type");
    if (ct && strncasecmp(ct, "text/csv", 8) != 0 && strncasecmp(ct, "application/csv", 15) != 0 &&
        strncasecmp(ct, "text/plain", 10) != 0) {
        http_reply_error(q, 415, "unsupported_media_type", "send the CSV as text/csv");
        return;
    }
    const char *cl = http_req_header(q, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) == 0) {
        http_reply_error(q, 400, "invalid_csv", "empty body: expected a header row and data rows");
        return;
    }
    const char *map = http_req_query(q, "map");
    import_req *ir = eh_calloc(1, sizeof *ir);
    if (ir) {
        ir->a = a;
        ir->start_ms = clock_wall_ms();
        ir->map = map ? eh_strdup(map) : NULL;
        ir->s = session_new(a->st, p->tenant, ir->map);
        ir->r = csv_new(&import_limits);
    }
    if (ir && ir->s) ir->s->wa = app_write_audit_new(q, p, NULL);
    if (!ir || !ir->s || !ir->r || (map && !ir->map) || !ir->s->wa) {
        if (ir) ireq_free(ir);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    ir->s->streamed = 1;
    ir->busy = 1;
    if (http_req_work(q, country_work, country_done, ir)) {
        ireq_free(ir);
        http_reply_error(q, 503, "overloaded", "cannot schedule work");
    }
}

static const http_route_doc d_import = {
    "Import leads from CSV (text/csv body, streamed, up to --max-import). Header names map to lead fields (or use "
    "?map=Header:field,...); each bad row is reported with its line and skipped; good rows are upserted in "
    "batches of 500, each row wholly or not at all",
    "leads", "CSV with a header row", "{rows, imported, updated, failed, errors:[{line, error, fields}], ignored_columns}"};

int leads_import_register(app *a) {
    return app_route_flags(a, "POST", "/v1/leads/import", h_import, NULL, ROLES_LEAD_WRITE, HTTP_ROUTE_STREAM,
                           &d_import);
}

/* ---- CLI ---- */

int leads_import_file(store *st, int64_t tenant, const char *path, const char *map, json_t **result) {
    import_session *s = session_new(st, tenant, map);
    if (!s) return -1;
    load_country(s);
    csv_error ce;
    int rc = csv_read_file(path, &import_limits, on_row, s, &ce);
    if (!s->fatal) flush(s);
    finish_rows(s);
    *result = session_result(s);
    int failed = s->fatal || rc < 0;
    session_free(s);
    return failed ? -1 : 0;
}
