/* leads — the leads domain: contacts/leads with their activities and
 * opportunities, agents and automatic routing, listings, the GoHighLevel
 * webhook receiver, and CSV import/export.
 *
 * Domain functions here run inside a store transaction (thread pool) and
 * append their events to the tenant's event log in that same transaction,
 * so a change and its event commit together or not at all. The HTTP
 * handlers live in api.c (REST), ghl.c (webhooks) and import.c (CSV). */
#ifndef EH_LEADS_H
#define EH_LEADS_H

#include <jansson.h>
#include <stdint.h>

#include "entity.h"
#include "store/store.h"

/* A resource served by the generic REST handlers (create, list with
 * filters and keyset pagination, get with ETag, PATCH with If-Match,
 * soft delete), each write with its "<kind>.created/updated/deleted"
 * event: agents and listings here, templates and sequences in nurture. */
typedef struct leads_crud {
    const entity *e;
    const char *base; /* "/v1/agents"; must outlive the server */
} leads_crud;
struct app;
struct http_route_doc;
/* Registers POST base, GET base, GET/PATCH/DELETE base/{id}; docs: their
 * descriptions in that order. */
int leads_crud_register(struct app *a, const leads_crud *c, int read_roles, int write_roles,
                        const struct http_route_doc *docs);

/* What domain code inside a transaction can reach: the store's context
 * (store_opts.ctx) is one of these, owned by the app (or a CLI command).
 * Members may be NULL. */
struct score_ctx;
struct coach_ctx;
typedef struct leads_domain {
    struct score_ctx *score;
    struct coach_ctx *coach;
} leads_domain;
static inline struct score_ctx *leads_scorer(const store_tx *tx) {
    const leads_domain *d = store_tx_ctx(tx);
    return d ? d->score : NULL;
}
static inline struct coach_ctx *leads_coach(const store_tx *tx) {
    const leads_domain *d = store_tx_ctx(tx);
    return d ? d->coach : NULL;
}

/* Appends an event whose payload is `data` (not stolen). */
int leads_event(store_tx *tx, const char *type, json_t *data, store_err *err);

/* lead.assigned's payload {"lead_id","agent_id","reason"} (agent_id 0:
 * lead.unassigned's {"lead_id","reason"}) as compact JSON text appended to
 * out: what json_pack and json_dumps gave, without the tree. A BUF_ code. */
int leads_route_event_text(buf *out, int64_t lead_id, int64_t agent_id, const char *reason);

/* Assigns an agent to lead_id according to the tenant's routing mode (off,
 * round_robin, least_loaded): among active agents with free capacity
 * (capacity = max open leads), those covering the lead's areas and speaking
 * its language are preferred. Appends lead.assigned with the reason, or
 * lead.unassigned when nobody can take it. *agent_id = 0 if none. */
int leads_route(store_tx *tx, int64_t lead_id, const char *why, int64_t now_ms, int64_t *agent_id,
                store_err *err);
/* The same for a lead the caller holds as JSON (ent_get's shape: id,
 * areas, language), without reading it again. */
int leads_route_lead(store_tx *tx, json_t *lead, const char *why, int64_t now_ms, int64_t *agent_id,
                     store_err *err);
/* Re-routes every open lead of an agent that was deactivated or deleted. */
int leads_reassign_from(store_tx *tx, int64_t agent_id, int64_t now_ms, int *moved, store_err *err);

/* Creates a lead, or updates the tenant's existing lead with the same GHL
 * contact id, email or phone (GHL contacts/upsert semantics). New leads are
 * routed unless they come with an agent. *created tells which happened. */
int leads_upsert(store_tx *tx, const ent_vals *v, int64_t now_ms, int64_t *id, int *created,
                 store_err *err);

/* Adds an activity to a lead; appends activity.created. channel, direction
 * are validated by the caller. */
typedef struct activity_in {
    const char *channel, *direction, *body, *status, *provider_message_id, *ghl_id;
    int64_t occurred_at;
    int automated; /* written by nurture: an outbound one is not the agent taking over */
} activity_in;
int leads_add_activity(store_tx *tx, int64_t lead_id, const activity_in *a, int64_t now_ms,
                       int64_t *id, store_err *err);
json_t *leads_activity_json(const store_rows *r, int row);

/* Tenant routing settings, default_country etc. */
typedef struct tenant_settings {
    char routing_mode[16];
    char default_country[4];
    char ghl_mode[8];
    char ghl_token_hash[65];
    char *ghl_ed25519_pem; /* NULL = GHL's published key; owned */
    char *ghl_rsa_pem;
    double hot_threshold; /* a lead scored at or above it is hot (lead.hot) */
} tenant_settings;
int leads_settings_load(store_tx *tx, tenant_settings *s, store_err *err);
void leads_settings_free(tenant_settings *s);

/* CLI import: reads a CSV file into the tenant's leads. *result gets the
 * summary ({rows, imported, updated, failed, errors, ignored_columns});
 * returns 0, or -1 if the import could not run to the end. */
int leads_import_file(store *st, int64_t tenant, const char *path, const char *map, json_t **result);

#endif
