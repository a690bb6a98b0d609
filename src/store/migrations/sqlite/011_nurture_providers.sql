-- Nurture, second part: SMTP and GoHighLevel sending, the "gone cold"
-- trigger, branches that read replies (sequences that do not end on one),
-- and Apollo enrichment (its queue and what it finds on the lead).
ALTER TABLE nurture_settings ADD COLUMN email_via TEXT NOT NULL DEFAULT 'sendgrid'; -- sendgrid, smtp, ghl
ALTER TABLE nurture_settings ADD COLUMN sms_via TEXT NOT NULL DEFAULT 'twilio';     -- twilio, ghl
ALTER TABLE nurture_settings ADD COLUMN smtp_host TEXT;
ALTER TABLE nurture_settings ADD COLUMN smtp_port INTEGER;
ALTER TABLE nurture_settings ADD COLUMN smtp_tls TEXT NOT NULL DEFAULT 'starttls';  -- starttls, implicit, none
ALTER TABLE nurture_settings ADD COLUMN smtp_user TEXT;
ALTER TABLE nurture_settings ADD COLUMN smtp_password_from TEXT;                    -- env:NAME or file:PATH
ALTER TABLE nurture_settings ADD COLUMN smtp_from TEXT;
ALTER TABLE nurture_settings ADD COLUMN ghl_api_key TEXT;
ALTER TABLE nurture_settings ADD COLUMN apollo_api_key TEXT;
ALTER TABLE nurture_settings ADD COLUMN cold_sequence_id INTEGER;
ALTER TABLE nurture_settings ADD COLUMN cold_days INTEGER NOT NULL DEFAULT 7;
ALTER TABLE nurture_sequences ADD COLUMN exit_on_reply INTEGER NOT NULL DEFAULT 1;

ALTER TABLE leads ADD COLUMN company TEXT;
ALTER TABLE leads ADD COLUMN job_title TEXT;
ALTER TABLE leads ADD COLUMN linkedin_url TEXT;

-- One row per lead to enrich; queued in the transaction that creates the
-- lead, worked off the loop, so ingestion never waits for Apollo.
CREATE TABLE lead_enrichments (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    lead_id INTEGER NOT NULL REFERENCES leads(id),
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sending', 'done', 'not_found', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at INTEGER NOT NULL,
    result TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX lead_enrichments_lead ON lead_enrichments(tenant_id, lead_id);
CREATE INDEX lead_enrichments_due ON lead_enrichments(state, due_at);
