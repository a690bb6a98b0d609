-- Nurture, second part: SMTP and GoHighLevel sending, the "gone cold"
-- trigger, branches that read replies (sequences that do not end on one),
-- and Apollo enrichment (its queue and what it finds on the lead).
ALTER TABLE nurture_settings ADD COLUMN email_via text NOT NULL DEFAULT 'sendgrid'; -- sendgrid, smtp, ghl
ALTER TABLE nurture_settings ADD COLUMN sms_via text NOT NULL DEFAULT 'twilio';     -- twilio, ghl
ALTER TABLE nurture_settings ADD COLUMN smtp_host text;
ALTER TABLE nurture_settings ADD COLUMN smtp_port integer;
ALTER TABLE nurture_settings ADD COLUMN smtp_tls text NOT NULL DEFAULT 'starttls';  -- starttls, implicit, none
ALTER TABLE nurture_settings ADD COLUMN smtp_user text;
ALTER TABLE nurture_settings ADD COLUMN smtp_password_from text;                    -- env:NAME or file:PATH
ALTER TABLE nurture_settings ADD COLUMN smtp_from text;
ALTER TABLE nurture_settings ADD COLUMN ghl_api_key text;
ALTER TABLE nurture_settings ADD COLUMN apollo_api_key text;
ALTER TABLE nurture_settings ADD COLUMN cold_sequence_id bigint;
ALTER TABLE nurture_settings ADD COLUMN cold_days integer NOT NULL DEFAULT 7;
ALTER TABLE nurture_sequences ADD COLUMN exit_on_reply integer NOT NULL DEFAULT 1;

ALTER TABLE leads ADD COLUMN company text;
ALTER TABLE leads ADD COLUMN job_title text;
ALTER TABLE leads ADD COLUMN linkedin_url text;

-- One row per lead to enrich; queued in the transaction that creates the
-- lead, worked off the loop, so ingestion never waits for Apollo.
CREATE TABLE lead_enrichments (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    lead_id bigint NOT NULL REFERENCES leads(id),
    state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sending', 'done', 'not_found', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    due_at bigint NOT NULL,
    result text,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);
CREATE UNIQUE INDEX lead_enrichments_lead ON lead_enrichments(tenant_id, lead_id);
CREATE INDEX lead_enrichments_due ON lead_enrichments(state, due_at);
ALTER TABLE lead_enrichments ENABLE ROW LEVEL SECURITY;
ALTER TABLE lead_enrichments FORCE ROW LEVEL SECURITY;
CREATE POLICY lead_enrichments_tenant_isolation ON lead_enrichments
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
