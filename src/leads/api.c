/* The leads REST API under /v1: leads (with upsert and routing),
 * activities, agents and listings. Agents and listings share the generic
 * CRUD handlers; leads add upsert, routing and richer filters. */
#include <stdio.h>
#include <string.h>

#include "app/app.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/csv.h"
#include "base/pii.h"
#include "coach/coach.h"
#include "leads.h"
#include "nurture/nurture.h"
#include "score/score.h"

typedef leads_crud crud;

static const crud crud_lead = {&entity_lead, "/v1/leads"};
static const crud crud_agent = {&entity_agent, "/v1/agents"};
static const crud crud_listing = {&entity_listing, "/v1/listings"};

/* Per-job input for create/update: the values, validated inside the
 * transaction (phone numbers need the tenant's default country). */
typedef struct write_in {
    ent_vals v;
    int parsed;
    int creating;
    const crud *c;
} write_in;

static void write_in_free(void *p) {
    write_in *w = p;
    if (!w) return;
    if (w->parsed) ent_vals_free(&w->v);
    eh_free(w);
}

/* Validates j->in against the entity with the tenant's default country. */
static int validate(store_tx *tx, api_job *j, write_in *w, store_err *err) {
    tenant_settings ts;
    int rc = leads_settings_load(tx, &ts, err);
    leads_settings_free(&ts);
    if (rc) return rc;
    json_t *errors = NULL;
    if (ent_parse(w->c->e, j->in, w->creating, ts.default_country, &w->v, &errors)) {
        j->details = errors;
        return api_job_fail(j, 422, "validation_failed", "some fields are invalid");
    }
    w->parsed = 1;
    return STORE_OK;
}

static void set_etag(api_job *j, json_t *obj) {
    json_t *v = json_object_get(obj, "version");
    if (json_is_integer(v)) snprintf(j->etag, sizeof j->etag, "\"v%lld\"", (long long)json_integer_value(v));
}

/* Reads the JSON object body; on failure answers itself and returns NULL.
 * Field validation happens in the transaction (validate). */
static write_in *parse_body(http_req *q, const crud *c, int creating, json_t **body) {
    json_t *in = http_req_json(q);
    if (!in) return NULL;
    if (!json_is_object(in)) {
        json_decref(in);
        http_reply_error(q, 422, "validation_failed", "expected a JSON object");
        return NULL;
    }
    write_in *w = eh_calloc(1, sizeof *w);
    if (!w) {
        json_decref(in);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return NULL;
    }
    w->c = c;
    w->creating = creating;
    *body = in;
    return w;
}

static int64_t path_id(http_req *q, const char *name) {
    int64_t id = api_parse_id(http_req_param(q, name));
    if (id < 0) http_reply_error(q, 404, "not_found", "no such resource");
    return id;
}

/* Checks an agent reference belongs to the tenant. */
static int check_agent(store_tx *tx, api_job *j, const ent_vals *v) {
    int i = ent_field(v->e, "agent_id");
    if (i < 0 || !v->present[i] || v->v[i].t == SV_NULL) return STORE_OK;
    json_t *tmp = NULL;
    store_err e2;
    int rc = ent_get(tx, &entity_agent, v->v[i].i, &tmp, &e2);
    json_decref(tmp);
    if (rc == STORE_NOTFOUND) return api_job_fail(j, 422, "validation_failed", "agent_id: no such agent");
    return rc;
}

/* ---- create ---- */

static int create_tx(store_tx *tx, api_job *j, store_err *err) {
    write_in *w = j->extra;
    const entity *e = w->c->e;
    int64_t now = clock_wall_ms(), id = 0;
    int rc, created = 1;
    if ((rc = validate(tx, j, w, err))) return rc;
    if ((rc = check_agent(tx, j, &w->v))) return rc;
    char who[32];
    w->v.consent_evidence = auth_actor_name(&j->p, who);
    if (e == &entity_lead) {
        rc = leads_upsert(tx, &w->v, now, &id, &created, err);
    } else {
        rc = ent_insert(tx, &w->v, now, &id, err);
    }
    if (rc) return rc;
    if ((rc = ent_get(tx, e, id, &j->out, err))) return rc;
    if (e != &entity_lead) {
        char type[48];
        snprintf(type, sizeof type, "%s.created", e->kind);
        if ((rc = leads_event(tx, type, j->out, err))) return rc;
    }
    if (e == &entity_listing) {
        int matched;
        if ((rc = score_listing_matched(tx, id, "new listing", &matched, err))) return rc;
    }
    j->status = created ? 201 : 200;
    set_etag(j, j->out);
    snprintf(j->location, sizeof j->location, "%s/%lld", w->c->base, (long long)id);
    return STORE_OK;
}

static void h_create(http_req *q, app *a, const auth_principal *p, void *ud) {
    json_t *body = NULL;
    write_in *w = parse_body(q, ud, 1, &body);
    if (!w) return;
    api_job *j = api_job_new(a, p);
    if (!j) {
        write_in_free(w);
        json_decref(body);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    j->in = body;
    j->extra = w;
    j->extra_free = write_in_free;
    j->write = 1;
    j->fn = create_tx;
    api_job_run(q, j);
}

/* ---- get ---- */

static int get_tx(store_tx *tx, api_job *j, store_err *err) {
    const crud *c = j->extra;
    int rc = ent_get(tx, c->e, j->id, &j->out, err);
    if (!rc) set_etag(j, j->out);
    return rc;
}

static void h_get(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = path_id(q, "id");
    if (id < 0) return;
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->id = id;
    j->extra = (void *)ud;
    j->fn = get_tx;
    api_job_run(q, j);
}

/* ---- update ---- */

static int update_tx(store_tx *tx, api_job *j, store_err *err) {
    write_in *w = j->extra;
    const entity *e = w->c->e;
    int64_t now = clock_wall_ms();
    json_t *before = NULL;
    int rc = validate(tx, j, w, err);
    if (!rc) rc = check_agent(tx, j, &w->v);
    if (rc) return rc;
    if ((rc = ent_get(tx, e, j->id, &before, err))) return rc;
    char who[32];
    w->v.consent_evidence = auth_actor_name(&j->p, who);
    rc = ent_update(tx, &w->v, j->id, j->version, now, err);
    if (!rc) rc = ent_get(tx, e, j->id, &j->out, err);
    if (rc) {
        json_decref(before);
        return rc;
    }
    /* The event names the fields that actually changed. */
    json_t *changed = json_array();
    for (int i = 0; i < e->nfields; i++) {
        if (!w->v.present[i]) continue;
        const char *f = e->fields[i].name;
        if (!json_equal(json_object_get(before, f), json_object_get(j->out, f)))
            json_array_append_new(changed, json_string(f));
    }
    char type[48];
    snprintf(type, sizeof type, "%s.updated", e->kind);
    json_t *ev = json_pack("{s:O, s:o}", e->kind, j->out, "changed", changed);
    rc = leads_event(tx, type, ev, err);
    json_decref(ev);
    if (!rc && e == &entity_lead) {
        json_t *ba = json_object_get(before, "agent_id"), *aa = json_object_get(j->out, "agent_id");
        if (!json_equal(ba, aa)) {
            int un = !json_is_integer(aa);
            json_t *as = json_pack("{s:I, s:O, s:s}", "lead_id", (json_int_t)j->id, "agent_id", aa,
                                   "reason", un ? "unassigned by hand" : "assigned by hand");
            rc = leads_event(tx, un ? "lead.unassigned" : "lead.assigned", as, err);
            json_decref(as);
        }
    }
    if (!rc && e == &entity_lead) rc = nurture_on_lead_changed(tx, j->id, now, err);
    /* The score reads the lead's fields: re-score, and answer with it. */
    if (!rc && e == &entity_lead && !(rc = score_lead(tx, j->id, now, err))) {
        json_decref(j->out);
        j->out = NULL;
        rc = ent_get(tx, e, j->id, &j->out, err);
    }
    /* A new price, or a listing back on the market, is news for buyers. */
    if (!rc && e == &entity_listing) {
        json_t *bp = json_object_get(before, "price"), *ap = json_object_get(j->out, "price");
        const char *bs = json_string_value(json_object_get(before, "status"));
        const char *as = json_string_value(json_object_get(j->out, "status"));
        int relisted = as && !strcmp(as, "active") && bs && strcmp(bs, "active");
        int matched;
        if (!json_equal(bp, ap) || relisted)
            rc = score_listing_matched(tx, j->id, relisted ? "back on the market" : "price changed", &matched, err);
    }
    if (!rc && e == &entity_agent) {
        json_t *act = json_object_get(j->out, "active");
        if (json_is_false(act) && json_is_true(json_object_get(before, "active"))) {
            int moved;
            rc = leads_reassign_from(tx, j->id, now, &moved, err);
        }
    }
    json_decref(before);
    if (!rc) set_etag(j, j->out);
    return rc;
}

static void h_update(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = path_id(q, "id");
    if (id < 0) return;
    int64_t ver = api_if_match(q);
    if (ver < 0) {
        http_reply_error(q, 400, "bad_if_match", "If-Match must be an ETag from this API, e.g. \"v3\"");
        return;
    }
    json_t *body = NULL;
    write_in *w = parse_body(q, ud, 0, &body);
    if (!w) return;
    json_t *bv = json_object_get(body, "version");
    if (!ver && json_is_integer(bv)) ver = json_integer_value(bv);
    api_job *j = api_job_new(a, p);
    if (!j) {
        write_in_free(w);
        json_decref(body);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    j->in = body;
    j->id = id;
    j->version = ver;
    j->extra = w;
    j->extra_free = write_in_free;
    j->write = 1;
    j->fn = update_tx;
    api_job_run(q, j);
}

/* ---- delete ---- */

static int delete_tx(store_tx *tx, api_job *j, store_err *err) {
    const crud *c = j->extra;
    int64_t now = clock_wall_ms();
    int rc = ent_delete(tx, c->e, j->id, now, err);
    if (rc) return rc;
    if (c->e == &entity_agent) {
        int moved;
        if ((rc = leads_reassign_from(tx, j->id, now, &moved, err))) return rc;
    }
    char type[48];
    snprintf(type, sizeof type, "%s.deleted", c->e->kind);
    json_t *ev = json_pack("{s:I}", "id", (json_int_t)j->id);
    rc = leads_event(tx, type, ev, err);
    json_decref(ev);
    j->status = 204;
    return rc;
}

static void h_delete(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = path_id(q, "id");
    if (id < 0) return;
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->id = id;
    j->extra = (void *)ud;
    j->write = 1;
    j->fn = delete_tx;
    api_job_run(q, j);
}

/* ---- list ---- */

typedef struct list_in {
    ent_query q;
    char *strs[24]; /* owned copies of filter values */
    int nstrs;
} list_in;

static void list_in_free(void *p) {
    list_in *l = p;
    if (!l) return;
    for (int i = 0; i < l->nstrs; i++) eh_free(l->strs[i]);
    eh_free(l);
}

static const char *keep(list_in *l, const char *s) {
    if (l->nstrs == 24) return NULL;
    return l->strs[l->nstrs++] = eh_strdup(s);
}

static int parse_ms(const char *s, int64_t *out) {
    int64_t v = api_parse_id(s);
    if (v < 0 && !(s && strcmp(s, "0") == 0)) return -1;
    *out = v < 0 ? 0 : v;
    return 0;
}

static int parse_num(const char *s, double *out) {
    char *end;
    double d = strtod(s, &end);
    if (end == s || *end || d != d) return -1;
    *out = d;
    return 0;
}

static int list_tx(store_tx *tx, api_job *j, store_err *err) {
    list_in *l = j->extra;
    return ent_list(tx, &l->q, &j->out, err);
}

/* Builds a list query from the request's query string; answers 400 itself
 * and returns NULL on a bad parameter. max_limit bounds ?limit. */
static list_in *parse_list(http_req *q, const crud *c, const auth_principal *p, int max_limit) {
    const entity *e = c->e;
    (void)e;
    list_in *l = eh_calloc(1, sizeof *l);
    if (!l) { http_reply_error(q, 503, "overloaded", "out of memory"); return NULL; }
    const char *cur = http_req_query(q, "cursor"), *lim = http_req_query(q, "limit");
    int64_t before = 0, limit = max_limit < 50 ? max_limit : 50;
    if ((cur && (before = api_parse_id(cur)) < 0) || (lim && ((limit = api_parse_id(lim)) < 1 || limit > max_limit))) {
        list_in_free(l);
        char msg[96];
        snprintf(msg, sizeof msg, "cursor must come from next_cursor; limit must be 1-%d", max_limit);
        http_reply_error(q, 400, "bad_query", msg);
        return NULL;
    }
    ent_query_init(&l->q, e, p->tenant, before, (int)limit);
    l->q.limit = (int)limit; /* ent_query_init caps at 500; export asks for more */
    const char *bad = NULL;
    for (int i = 0; i < e->nfields && !bad; i++) {
        const field *f = &e->fields[i];
        if (!(f->flags & FF_FILTER)) continue;
        const char *v = http_req_query(q, f->name);
        if (!v) continue;
        char cond[96];
        snprintf(cond, sizeof cond, "%s = $?", f->name);
        if (f->t == F_REF || f->t == F_INT) {
            int64_t id = api_parse_id(v);
            if (id < 0) bad = f->name;
            else ent_query_add(&l->q, cond, SV_I(id));
        } else if (f->t == F_BOOL) {
            if (strcmp(v, "true") && strcmp(v, "false")) bad = f->name;
            else ent_query_add(&l->q, cond, SV_I(strcmp(v, "true") == 0));
        } else {
            const char *k = keep(l, v);
            if (!k || strlen(k) > 256) bad = f->name;
            else ent_query_add(&l->q, cond, SV_S(k));
        }
    }
    /* Time ranges on every resource; tag, score and text search on leads. */
    static const struct { const char *param, *cond; } ranges[] = {
        {"created_after", "created_at >= $?"}, {"created_before", "created_at < $?"},
        {"updated_after", "updated_at >= $?"}, {"updated_before", "updated_at < $?"}};
    for (size_t i = 0; i < 4 && !bad; i++) {
        const char *v = http_req_query(q, ranges[i].param);
        int64_t ms;
        if (!v) continue;
        if (parse_ms(v, &ms)) bad = ranges[i].param;
        else ent_query_add(&l->q, ranges[i].cond, SV_I(ms));
    }
    if (e == &entity_lead && !bad) {
        const char *tag = http_req_query(q, "tag"), *text = http_req_query(q, "q");
        const char *smin = http_req_query(q, "score_min"), *smax = http_req_query(q, "score_max");
        double d;
        if (tag) {
            char pat[300];
            if (strlen(tag) > 64 || strpbrk(tag, "\"%_\\")) bad = "tag";
            else {
                snprintf(pat, sizeof pat, "%%\"%s\"%%", tag);
                ent_query_add(&l->q, "tags LIKE $?", SV_S(keep(l, pat)));
            }
        }
        if (!bad && text) {
            char pat[300];
            if (strlen(text) < 1 || strlen(text) > 100 || strpbrk(text, "%_\\")) bad = "q";
            else {
                char low[128];
                size_t n = 0;
                for (const char *s = text; *s && n + 1 < sizeof low; s++)
                    low[n++] = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
                low[n] = 0;
                snprintf(pat, sizeof pat, "%%%s%%", low);
                ent_query_add(&l->q, "(LOWER(COALESCE(first_name,'') || ' ' || COALESCE(last_name,'')) LIKE $? "
                                     "OR email LIKE $? OR phone LIKE $?)", SV_S(keep(l, pat)));
            }
        }
        if (!bad && smin) {
            if (parse_num(smin, &d)) bad = "score_min";
            else ent_query_add(&l->q, "score >= $?", SV_D(d));
        }
        if (!bad && smax) {
            if (parse_num(smax, &d)) bad = "score_max";
            else ent_query_add(&l->q, "score <= $?", SV_D(d));
        }
    }
    if (bad) {
        char msg[128];
        snprintf(msg, sizeof msg, "invalid value for query parameter \"%s\"", bad);
        list_in_free(l);
        http_reply_error(q, 400, "bad_query", msg);
        return NULL;
    }
    return l;
}

static void h_list(http_req *q, app *a, const auth_principal *p, void *ud) {
    list_in *l = parse_list(q, ud, p, 500);
    if (!l) return;
    api_job *j = api_job_new(a, p);
    if (!j) { list_in_free(l); http_reply_error(q, 503, "overloaded", "out of memory"); return; }
    j->extra = l;
    j->extra_free = list_in_free;
    j->fn = list_tx;
    api_job_run(q, j);
}

/* ---- CSV export ---- */

#define EXPORT_MAX 100000

typedef struct export_job {
    list_in *l;
    buf out;
    int rows, truncated;
    int redact; /* ?redact=true: no direct identifiers, free text redacted */
} export_job;

/* A CSV field with personal data replaced by [EMAIL], [PHONE]... (see
 * base/pii.h). Short text is redacted on the stack; longer (an activity
 * body is up to 20,000 bytes, and placeholders can be longer than what they
 * replace) in a buffer of the size pii_redact asks for. */
static int csv_write_redacted(buf *out, const char *s, size_t n) {
    char small[1024];
    size_t need = pii_redact(s, n, small, sizeof small);
    if (need < sizeof small) return csv_write_field(out, small, need, 0);
    char *big = eh_malloc(need + 1);
    if (!big) return -1;
    pii_redact(s, n, big, need + 1);
    int rc = csv_write_field(out, big, need, 0);
    eh_free(big);
    return rc;
}

/* What ?redact=true leaves out of the leads export: the fields that name or
 * reach the person (analytics needs none of them to count and compare). */
static int direct_identifier(const char *name) {
    static const char *const ids[] = {"first_name", "last_name", "email", "phone", "ghl_contact_id",
                                      "linkedin_url", NULL};
    for (int i = 0; ids[i]; i++)
        if (strcmp(name, ids[i]) == 0) return 1;
    return 0;
}

static void export_free(void *p) {
    export_job *x = p;
    list_in_free(x->l);
    buf_free(&x->out);
    eh_free(x);
}

static int export_tx(store_tx *tx, api_job *j, store_err *err) {
    export_job *x = j->extra;
    const entity *e = &entity_lead;
    buf_puts(&x->out, "id");
    for (int i = 0; i < e->nfields; i++)
        if (!(x->redact && direct_identifier(e->fields[i].name))) buf_printf(&x->out, ",%s", e->fields[i].name);
    buf_puts(&x->out, ",version,created_at,updated_at\r\n");
    /* Page through with the keyset cursor inside one read transaction: one
     * consistent snapshot, bounded memory per page. */
    for (;;) {
        json_t *page = NULL;
        int rc = ent_list(tx, &x->l->q, &page, err);
        if (rc) return rc;
        json_t *items = json_object_get(page, "items");
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it) {
            if (x->rows == EXPORT_MAX) { x->truncated = 1; break; }
            char num[64];
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(json_object_get(it, "id")));
            csv_write_field(&x->out, num, strlen(num), CSV_WRITE_NUMBER);
            for (int f = 0; f <= e->nfields + 2; f++) {
                const char *name = f < e->nfields ? e->fields[f].name
                                 : f == e->nfields ? "version" : f == e->nfields + 1 ? "created_at" : "updated_at";
                if (x->redact && f < e->nfields && direct_identifier(name)) continue;
                json_t *v = json_object_get(it, name);
                buf_putc(&x->out, ',');
                if (json_is_null(v) || !v) continue;
                if (json_is_string(v) && x->redact && f < e->nfields) {
                    csv_write_redacted(&x->out, json_string_value(v), json_string_length(v));
                } else if (json_is_string(v)) {
                    /* E.164 phones are validated "+digits": a number, not a formula. */
                    int fl = f < e->nfields && e->fields[f].t == F_PHONE ? CSV_WRITE_NUMBER : 0;
                    csv_write_field(&x->out, json_string_value(v), json_string_length(v), fl);
                } else if (json_is_array(v)) {
                    /* lists as "a;b" */
                    buf tmp;
                    buf_init(&tmp, 8192);
                    size_t k;
                    json_t *s2;
                    json_array_foreach(v, k, s2) {
                        if (k) buf_putc(&tmp, ';');
                        buf_puts(&tmp, json_string_value(s2) ? json_string_value(s2) : "");
                    }
                    if (x->redact) csv_write_redacted(&x->out, tmp.p ? tmp.p : "", tmp.len);
                    else csv_write_field(&x->out, tmp.p ? tmp.p : "", tmp.len, 0);
                    buf_free(&tmp);
                } else {
                    char *s3 = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
                    if (s3) csv_write_field(&x->out, s3, strlen(s3), CSV_WRITE_NUMBER);
                    free(s3);
                }
            }
            if (buf_puts(&x->out, "\r\n")) { x->truncated = 1; break; }
            x->rows++;
        }
        json_t *next = json_object_get(page, "next_cursor");
        int more = json_is_string(next) && !x->truncated;
        if (more) x->l->q.params[1] = SV_I(api_parse_id(json_string_value(next)));
        json_decref(page);
        if (!more) break;
    }
    return STORE_OK;
}

static void export_done_reply(http_req *q, api_job *j);

/* ?NAME=true|false (absent: 0); -1 for anything else. */
static int query_bool(http_req *q, const char *name) {
    const char *v = http_req_query(q, name);
    if (!v || strcmp(v, "false") == 0) return 0;
    return strcmp(v, "true") == 0 ? 1 : -1;
}

static void h_export(http_req *q, app *a, const auth_principal *p, void *ud) {
    int redact = query_bool(q, "redact");
    if (redact < 0) {
        http_reply_error(q, 400, "bad_query", "redact: true or false");
        return;
    }
    list_in *l = parse_list(q, (void *)&crud_lead, p, 1000);
    if (!l) return;
    l->q.limit = 1000;
    export_job *x = eh_calloc(1, sizeof *x);
    api_job *j = x ? api_job_new(a, p) : NULL;
    if (!j) {
        eh_free(x);
        list_in_free(l);
        http_reply_error(q, 503, "overloaded", "out of memory");
        return;
    }
    x->l = l;
    x->redact = redact;
    buf_init(&x->out, 256u * 1024 * 1024);
    j->extra = x;
    j->extra_free = export_free;
    j->fn = export_tx;
    j->on_done = export_done_reply;
    api_job_run(q, j);
}

/* A CSV export's answer: the file, its row count, and whether the size
 * bound cut it short. */
static void reply_csv(http_req *q, const char *disposition, int rows, int truncated, const buf *out) {
    char n[32];
    snprintf(n, sizeof n, "%d", rows);
    http_res_header(q, "Content-Disposition", disposition);
    http_res_header(q, "X-Export-Rows", n);
    if (truncated) http_res_header(q, "X-Export-Truncated", "true");
    http_reply(q, 200, "text/csv; charset=utf-8", out->p ? out->p : "", out->len);
}

static void export_done_reply(http_req *q, api_job *j) {
    export_job *x = j->extra;
    reply_csv(q, "attachment; filename=\"leads.csv\"", x->rows, x->truncated, &x->out);
}

/* ---- activities ---- */

static const char *const channels[] = {"sms", "email", "call", "note", "web", "task", "appointment", NULL};
static const char *const directions[] = {"inbound", "outbound", "none", NULL};

static int one_of(const char *s, const char *const *list) {
    for (; s && *list; list++)
        if (strcmp(s, *list) == 0) return 1;
    return 0;
}

/* ---- analytics export: activities without personal data ----
 *
 * GET /v1/analytics/activities.csv: one row per activity for BI tools --
 * ids, channel, direction, status, time, the lead's agent, the body with
 * every e-mail, phone, SSN, card, address, date of birth and IBAN replaced
 * by its placeholder, and what the coach reads in it (sentiment, intents,
 * objections). No name, e-mail or phone column: the lead is its id. Built
 * like the leads export: keyset pages of 1,000 inside one read transaction
 * on the pool, at most 100,000 rows (X-Export-Truncated), buffered up to
 * 256 MiB. */

typedef struct analytics_job {
    int64_t since, until, lead, agent, after;
    const char *channel, *direction;
    int limit, rows, truncated;
    buf out;
} analytics_job;

static void analytics_free(void *p) {
    analytics_job *x = p;
    buf_free(&x->out);
    eh_free(x);
}

/* Joins the names in a of {key: name, ...} with ';' into a CSV field. */
static void csv_write_names(buf *out, json_t *a, const char *key) {
    char tmp[512];
    size_t n = 0, i;
    json_t *it;
    tmp[0] = 0;
    json_array_foreach(a, i, it) {
        const char *v = json_string_value(json_object_get(it, key));
        if (!v) continue;
        int w = snprintf(tmp + n, sizeof tmp - n, "%s%s", n ? ";" : "", v);
        if (w < 0 || (size_t)w >= sizeof tmp - n) break;
        n += (size_t)w;
    }
    csv_write_field(out, tmp, n, 0);
}

/* sentiment,intents,objections of one message, as the coach reads it alone
 * (intents and objections only from what the lead says). */
static void analytics_coach(buf *out, const coach_ctx *cc, int64_t id, const char *dir, const char *body,
                            size_t len) {
    json_t *an = NULL;
    if (cc && body && len) {
        coach_msg m = {.id = id, .dir = strcmp(dir, "inbound") == 0 ? COACH_IN : strcmp(dir, "outbound") == 0
                                                                                    ? COACH_OUT : COACH_NONE,
                       .body = body, .len = len < COACH_MAX_BODY ? len : COACH_MAX_BODY};
        an = coach_analyze(cc, &m, 1, NULL, 0);
    }
    json_t *per = json_array_get(json_object_get(json_object_get(an, "sentiment"), "per_message"), 0);
    json_t *score = json_object_get(per, "score");
    buf_putc(out, ',');
    if (json_is_number(score)) buf_printf(out, "%.3f", json_number_value(score));
    buf_putc(out, ',');
    csv_write_names(out, json_object_get(an, "intents"), "intent");
    buf_putc(out, ',');
    csv_write_names(out, json_object_get(an, "objections"), "objection");
    json_decref(an);
}

static int analytics_tx(store_tx *tx, api_job *j, store_err *err) {
    analytics_job *x = j->extra;
    const coach_ctx *cc = leads_coach(tx);
    buf_puts(&x->out, "activity_id,lead_id,agent_id,channel,direction,status,occurred_at,body,sentiment,intents,"
                      "objections\r\n");
    char sql[768];
    for (;;) {
        store_val p[8];
        int np = 0, n = 0;
        p[np++] = SV_I(store_tx_tenant(tx));
        p[np++] = SV_I(x->after);
        n = snprintf(sql, sizeof sql,
                     "SELECT a.id, a.lead_id, l.agent_id, a.channel, a.direction, a.status, a.occurred_at, a.body "
                     "FROM activities a JOIN leads l ON l.id = a.lead_id AND l.tenant_id = a.tenant_id "
                     "WHERE a.tenant_id = $1 AND a.id > $2 AND l.deleted_at IS NULL");
#define COND(c, v)                                                                          \
        do {                                                                                \
            p[np++] = v;                                                                    \
            n += snprintf(sql + n, sizeof sql - (size_t)n, " AND " c " $%d", np);           \
        } while (0)
        if (x->since) COND("a.occurred_at >=", SV_I(x->since));
        if (x->until) COND("a.occurred_at <", SV_I(x->until));
        if (x->lead) COND("a.lead_id =", SV_I(x->lead));
        if (x->agent) COND("l.agent_id =", SV_I(x->agent));
        if (x->channel) COND("a.channel =", SV_S(x->channel));
        if (x->direction) COND("a.direction =", SV_S(x->direction));
#undef COND
        snprintf(sql + n, sizeof sql - (size_t)n, " ORDER BY a.id LIMIT 1000");
        store_rows *r = NULL;
        int rc = store_query(tx, sql, p, np, &r, err);
        if (rc) return rc;
        int count = store_rows_count(r);
        for (int i = 0; i < count; i++) {
            if (x->rows == x->limit) { x->truncated = 1; break; }
            char num[160], ts[40];
            int64_t id = store_rows_int(r, i, 0), at = store_rows_int(r, i, 6);
            clock_rfc3339(at, ts, sizeof ts);
            int w = snprintf(num, sizeof num, "%lld,%lld,", (long long)id, (long long)store_rows_int(r, i, 1));
            if (!store_rows_isnull(r, i, 2)) w += snprintf(num + w, sizeof num - (size_t)w, "%lld",
                                                           (long long)store_rows_int(r, i, 2));
            buf_append(&x->out, num, (size_t)w);
            const char *dir = store_rows_text(r, i, 4);
            for (int c = 3; c <= 5; c++) {
                buf_putc(&x->out, ',');
                if (!store_rows_isnull(r, i, c))
                    csv_write_field(&x->out, store_rows_text(r, i, c), store_rows_len(r, i, c), 0);
            }
            buf_printf(&x->out, ",%s,", ts);
            const char *body = store_rows_isnull(r, i, 7) ? NULL : store_rows_text(r, i, 7);
            size_t blen = body ? store_rows_len(r, i, 7) : 0;
            if (body) csv_write_redacted(&x->out, body, blen);
            analytics_coach(&x->out, cc, id, dir ? dir : "none", body, blen);
            if (buf_puts(&x->out, "\r\n")) { x->truncated = 1; break; }
            x->rows++;
            x->after = id;
        }
        store_rows_free(r);
        if (x->truncated || count < 1000) break;
    }
    return STORE_OK;
}

static void analytics_done(http_req *q, api_job *j) {
    analytics_job *x = j->extra;
    reply_csv(q, "attachment; filename=\"activities.csv\"", x->rows, x->truncated, &x->out);
}

static void h_analytics_activities(http_req *q, app *a, const auth_principal *p, void *ud) {
    analytics_job *x = eh_calloc(1, sizeof *x);
    if (!x) { http_reply_error(q, 503, "overloaded", "out of memory"); return; }
    x->limit = EXPORT_MAX;
    const char *bad = NULL, *v;
    if ((v = http_req_query(q, "since")) && (parse_ms(v, &x->since) || x->since < 1)) bad = "since";
    else if ((v = http_req_query(q, "until")) && (parse_ms(v, &x->until) || x->until < 1)) bad = "until";
    else if ((v = http_req_query(q, "lead_id")) && (x->lead = api_parse_id(v)) < 1) bad = "lead_id";
    else if ((v = http_req_query(q, "agent_id")) && (x->agent = api_parse_id(v)) < 1) bad = "agent_id";
    else if ((v = http_req_query(q, "channel")) && !one_of(v, channels)) bad = "channel";
    else if ((v = http_req_query(q, "direction")) && !one_of(v, directions)) bad = "direction";
    else if ((v = http_req_query(q, "limit"))) {
        int64_t lim = api_parse_id(v);
        if (lim < 1 || lim > EXPORT_MAX) bad = "limit";
        else x->limit = (int)lim;
    }
    if (bad) {
        char msg[160];
        snprintf(msg, sizeof msg, "invalid value for query parameter \"%s\" (since/until: epoch milliseconds; "
                                  "limit: 1-%d)", bad, EXPORT_MAX);
        analytics_free(x);
        http_reply_error(q, 400, "bad_query", msg);
        return;
    }
    /* point into the constant lists, not the request, which the job outlives */
    for (int i = 0; channels[i]; i++)
        if ((v = http_req_query(q, "channel")) && strcmp(v, channels[i]) == 0) x->channel = channels[i];
    for (int i = 0; directions[i]; i++)
        if ((v = http_req_query(q, "direction")) && strcmp(v, directions[i]) == 0) x->direction = directions[i];
    api_job *j = api_job_new(a, p);
    if (!j) { analytics_free(x); http_reply_error(q, 503, "overloaded", "out of memory"); return; }
    buf_init(&x->out, 256u * 1024 * 1024);
    j->extra = x;
    j->extra_free = analytics_free;
    j->fn = analytics_tx;
    j->on_done = analytics_done;
    api_job_run(q, j);
}

static int lead_exists(store_tx *tx, int64_t id, store_err *err) {
    json_t *tmp = NULL;
    int rc = ent_get(tx, &entity_lead, id, &tmp, err);
    json_decref(tmp);
    return rc;
}

static int add_activity_tx(store_tx *tx, api_job *j, store_err *err) {
    int rc = lead_exists(tx, j->id, err);
    if (rc) return rc;
    json_t *in = j->in;
    activity_in ai = {
        .channel = json_string_value(json_object_get(in, "channel")),
        .direction = json_string_value(json_object_get(in, "direction")),
        .body = json_string_value(json_object_get(in, "body")),
        .status = json_string_value(json_object_get(in, "status")),
        .provider_message_id = json_string_value(json_object_get(in, "provider_message_id")),
        .occurred_at = json_integer_value(json_object_get(in, "occurred_at")),
    };
    if (!ai.direction) ai.direction = "none";
    int64_t now = clock_wall_ms(), id;
    if (!ai.occurred_at) ai.occurred_at = now;
    if ((rc = leads_add_activity(tx, j->id, &ai, now, &id, err))) return rc;
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(id)};
    store_rows *r = NULL;
    rc = store_query(tx, "SELECT id, lead_id, channel, direction, body, status, provider_message_id, "
                         "occurred_at, created_at FROM activities WHERE tenant_id = $1 AND id = $2",
                     p, 2, &r, err);
    if (!rc) j->out = leads_activity_json(r, 0);
    store_rows_free(r);
    j->status = 201;
    return rc;
}

static void h_add_activity(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = path_id(q, "id");
    if (id < 0) return;
    json_t *in = http_req_json(q);
    if (!in) return;
    json_t *errors = json_object();
    const char *known[] = {"channel", "direction", "body", "status", "provider_message_id", "occurred_at", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v) {
        int ok = 0;
        for (const char **k = known; *k; k++) ok |= strcmp(*k, key) == 0;
        if (!ok) json_object_set_new(errors, key, json_string("unknown field"));
    }
    if (!one_of(json_string_value(json_object_get(in, "channel")), channels))
        json_object_set_new(errors, "channel", json_string("one of sms, email, call, note, web, task, appointment"));
    json_t *dir = json_object_get(in, "direction");
    if (dir && !one_of(json_string_value(dir), directions))
        json_object_set_new(errors, "direction", json_string("one of inbound, outbound, none"));
    json_t *body = json_object_get(in, "body");
    if (body && (!json_is_string(body) || json_string_length(body) > 20000))
        json_object_set_new(errors, "body", json_string("a string of at most 20000 bytes"));
    const char *strs[] = {"status", "provider_message_id"};
    for (int i = 0; i < 2; i++) {
        json_t *s = json_object_get(in, strs[i]);
        if (s && (!json_is_string(s) || json_string_length(s) > 128))
            json_object_set_new(errors, strs[i], json_string("a string of at most 128 bytes"));
    }
    json_t *oa = json_object_get(in, "occurred_at");
    if (oa && (!json_is_integer(oa) || json_integer_value(oa) <= 0))
        json_object_set_new(errors, "occurred_at", json_string("epoch milliseconds"));
    if (json_object_size(errors)) {
        json_decref(in);
        http_reply_json(q, 422, json_pack("{s:{s:s, s:s, s:s, s:o}}", "error", "code", "validation_failed",
                                          "message", "some fields are invalid", "request_id",
                                          http_req_id(q), "fields", errors));
        return;
    }
    json_decref(errors);
    api_job *j = api_job_new(a, p);
    if (!j) { json_decref(in); http_reply_error(q, 503, "overloaded", "out of memory"); return; }
    j->in = in;
    j->id = id;
    j->write = 1;
    j->fn = add_activity_tx;
    api_job_run(q, j);
}

static int list_activities_tx(store_tx *tx, api_job *j, store_err *err) {
    int rc = lead_exists(tx, j->id, err);
    if (rc) return rc;
    int64_t before = j->id2 > 0 ? j->id2 : INT64_MAX;
    int limit = (int)j->version;
    store_val p[] = {SV_I(store_tx_tenant(tx)), SV_I(j->id), SV_I(before), SV_I(limit + 1)};
    store_rows *r = NULL;
    rc = store_query(tx, "SELECT id, lead_id, channel, direction, body, status, provider_message_id, "
                         "occurred_at, created_at FROM activities WHERE tenant_id = $1 AND lead_id = $2 "
                         "AND id < $3 ORDER BY id DESC LIMIT $4",
                     p, 4, &r, err);
    if (rc) return rc;
    json_t *items = json_array();
    int n = store_rows_count(r), take = n > limit ? limit : n;
    for (int i = 0; i < take; i++) json_array_append_new(items, leads_activity_json(r, i));
    json_t *next = json_null();
    if (n > limit) {
        char c[32];
        snprintf(c, sizeof c, "%lld", (long long)store_rows_int(r, take - 1, 0));
        next = json_string(c);
    }
    store_rows_free(r);
    j->out = json_pack("{s:o, s:o}", "items", items, "next_cursor", next);
    return STORE_OK;
}

static void h_list_activities(http_req *q, app *a, const auth_principal *p, void *ud) {
    int64_t id = path_id(q, "id");
    if (id < 0) return;
    const char *cur = http_req_query(q, "cursor"), *lim = http_req_query(q, "limit");
    int64_t before = 0, limit = 50;
    if ((cur && (before = api_parse_id(cur)) < 0) || (lim && ((limit = api_parse_id(lim)) < 1 || limit > 500))) {
        http_reply_error(q, 400, "bad_query", "cursor must come from next_cursor; limit must be 1-500");
        return;
    }
    api_job *j = api_job_for(q, a, p);
    if (!j) return;
    j->id = id;
    j->id2 = before;
    j->version = limit;
    j->fn = list_activities_tx;
    api_job_run(q, j);
}

/* ---- routes ---- */

#define DOC(name, sum, req, resp) static const http_route_doc name = {sum, "leads", req, resp}
DOC(d_lead_create, "Create a lead, or update the existing one with the same GHL id, email or phone (upsert); new leads are routed to an agent",
    "lead fields (see README)", "the lead; 201 if created, 200 if an existing lead was updated");
DOC(d_lead_list, "List leads, newest first: filters stage, status, agent_id, source, tag, email, phone, ghl_contact_id, score_min/max, created_/updated_after/before, q (name/email/phone); keyset pagination with cursor",
    NULL, "{items:[lead], next_cursor}");
DOC(d_lead_export, "Export leads as CSV (same filters as the list; at most 100,000 rows, X-Export-Truncated says if cut); redact=true leaves out names, e-mail, phone, GHL contact id and LinkedIn URL and redacts personal data in the other text columns", NULL, "text/csv");
static const http_route_doc d_analytics_acts = {
    "Activities for analytics as CSV, personal data redacted: activity_id, lead_id, agent_id, channel, direction, "
    "status, occurred_at, body (pii_redact), sentiment, intents, objections; filters since, until, lead_id, agent_id, "
    "channel, direction, limit (at most 100,000 rows, X-Export-Truncated says if cut)",
    "analytics", NULL, "text/csv"};
DOC(d_lead_get, "Get a lead (ETag carries its version)", NULL, "the lead");
DOC(d_lead_patch, "Update some fields of a lead; send If-Match with its ETag (or \"version\") to avoid lost updates", "lead fields", "the lead; 412 if the version changed");
DOC(d_lead_delete, "Delete a lead", NULL, "204");
DOC(d_act_add, "Add an activity (sms, email, call, note, web, task, appointment) to a lead", "{channel, direction, body, status, provider_message_id, occurred_at}", "the activity");
DOC(d_act_list, "List a lead's activities, newest first", NULL, "{items:[activity], next_cursor}");
DOC(d_agent_create, "Create an agent (capacity = max open leads)", "{name, email, phone, active, capacity, areas, languages, ghl_user_id}", "the agent");
DOC(d_agent_list, "List agents", NULL, "{items:[agent], next_cursor}");
DOC(d_agent_get, "Get an agent", NULL, "the agent");
DOC(d_agent_patch, "Update an agent; deactivating one re-routes its open leads", "agent fields", "the agent");
DOC(d_agent_delete, "Delete an agent; its open leads are re-routed", NULL, "204");
DOC(d_listing_create, "Create a listing", "{address, city, state, zip, lat, lng, price, beds, baths, sqft, type, status, external_id}", "the listing");
DOC(d_listing_list, "List listings", NULL, "{items:[listing], next_cursor}");
DOC(d_listing_get, "Get a listing", NULL, "the listing");
DOC(d_listing_patch, "Update a listing", "listing fields", "the listing");
DOC(d_listing_delete, "Delete a listing", NULL, "204");

int leads_api_register(app *a) {
    int rc = 0;
    void *L = (void *)&crud_lead, *A = (void *)&crud_agent, *S = (void *)&crud_listing;
    rc |= app_route(a, "POST", "/v1/leads", h_create, L, ROLES_LEAD_WRITE, &d_lead_create);
    rc |= app_route(a, "GET", "/v1/leads", h_list, L, ROLES_ANY, &d_lead_list);
    rc |= app_route(a, "GET", "/v1/leads/export.csv", h_export, L, ROLES_READ_ALL, &d_lead_export);
    rc |= app_route(a, "GET", "/v1/analytics/activities.csv", h_analytics_activities, NULL, ROLES_READ_ALL,
                    &d_analytics_acts);
    rc |= app_route(a, "GET", "/v1/leads/{id}", h_get, L, ROLES_ANY, &d_lead_get);
    rc |= app_route(a, "PATCH", "/v1/leads/{id}", h_update, L, ROLES_LEAD_WRITE, &d_lead_patch);
    rc |= app_route(a, "DELETE", "/v1/leads/{id}", h_delete, L, ROLES_MANAGE, &d_lead_delete);
    rc |= app_route(a, "POST", "/v1/leads/{id}/activities", h_add_activity, NULL, ROLES_LEAD_WRITE, &d_act_add);
    rc |= app_route(a, "GET", "/v1/leads/{id}/activities", h_list_activities, NULL, ROLES_ANY, &d_act_list);
    rc |= app_route(a, "POST", "/v1/agents", h_create, A, ROLES_MANAGE, &d_agent_create);
    rc |= app_route(a, "GET", "/v1/agents", h_list, A, ROLES_ANY, &d_agent_list);
    rc |= app_route(a, "GET", "/v1/agents/{id}", h_get, A, ROLES_ANY, &d_agent_get);
    rc |= app_route(a, "PATCH", "/v1/agents/{id}", h_update, A, ROLES_MANAGE, &d_agent_patch);
    rc |= app_route(a, "DELETE", "/v1/agents/{id}", h_delete, A, ROLES_MANAGE, &d_agent_delete);
    rc |= app_route(a, "POST", "/v1/listings", h_create, S, ROLES_MANAGE, &d_listing_create);
    rc |= app_route(a, "GET", "/v1/listings", h_list, S, ROLES_ANY, &d_listing_list);
    rc |= app_route(a, "GET", "/v1/listings/{id}", h_get, S, ROLES_ANY, &d_listing_get);
    rc |= app_route(a, "PATCH", "/v1/listings/{id}", h_update, S, ROLES_MANAGE, &d_listing_patch);
    rc |= app_route(a, "DELETE", "/v1/listings/{id}", h_delete, S, ROLES_MANAGE, &d_listing_delete);
    return rc ? -1 : 0;
}

int leads_crud_register(app *a, const leads_crud *c, int read_roles, int write_roles, const http_route_doc *docs) {
    char path[160];
    void *C = (void *)c;
    int rc = app_route(a, "POST", c->base, h_create, C, write_roles, &docs[0]);
    rc |= app_route(a, "GET", c->base, h_list, C, read_roles, &docs[1]);
    snprintf(path, sizeof path, "%s/{id}", c->base);
    rc |= app_route(a, "GET", path, h_get, C, read_roles, &docs[2]);
    rc |= app_route(a, "PATCH", path, h_update, C, write_roles, &docs[3]);
    rc |= app_route(a, "DELETE", path, h_delete, C, write_roles, &docs[4]);
    return rc ? -1 : 0;
}
