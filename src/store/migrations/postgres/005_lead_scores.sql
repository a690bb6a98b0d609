-- Lead scores: every score a lead was given (the history behind
-- leads.score), by the tenant's trained lead_scoring model or, until it has
-- enough won/lost outcomes, by the points prior. reasons is a JSON array of
-- {feature, value, effect}. The tenant's hot threshold decides lead.hot.
CREATE TABLE lead_scores (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    lead_id bigint NOT NULL REFERENCES leads(id),
    score double precision NOT NULL,
    kind text NOT NULL CHECK (kind IN ('prior', 'model')),
    model_version integer,
    reasons text NOT NULL DEFAULT '[]',
    created_at bigint NOT NULL
);
CREATE INDEX lead_scores_lead ON lead_scores(tenant_id, lead_id, id);
ALTER TABLE tenant_settings ADD COLUMN hot_threshold double precision NOT NULL DEFAULT 0.7;
-- Buyer-to-listing matching and the area-price feature look listings up by zip.
CREATE INDEX listings_zip ON listings(tenant_id, zip) WHERE deleted_at IS NULL;
ALTER TABLE lead_scores ENABLE ROW LEVEL SECURITY;
ALTER TABLE lead_scores FORCE ROW LEVEL SECURITY;
CREATE POLICY lead_scores_tenant_isolation ON lead_scores
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
