-- Lead scores: every score a lead was given (the history behind
-- leads.score), by the tenant's trained lead_scoring model or, until it has
-- enough won/lost outcomes, by the points prior. reasons is a JSON array of
-- {feature, value, effect}. The tenant's hot threshold decides lead.hot.
CREATE TABLE lead_scores (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    lead_id INTEGER NOT NULL REFERENCES leads(id),
    score REAL NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('prior', 'model')),
    model_version INTEGER,
    reasons TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL
);
CREATE INDEX lead_scores_lead ON lead_scores(tenant_id, lead_id, id);
ALTER TABLE tenant_settings ADD COLUMN hot_threshold REAL NOT NULL DEFAULT 0.7;
-- Buyer-to-listing matching and the area-price feature look listings up by zip.
CREATE INDEX listings_zip ON listings(tenant_id, zip) WHERE deleted_at IS NULL;
