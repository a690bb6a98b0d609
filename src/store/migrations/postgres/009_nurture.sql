-- Nurture: message templates, sequences of steps, enrollments of leads in
-- sequences, and the durable queue of steps to run. Messages sent are
-- activities (channel sms/email, direction outbound, provider_message_id,
-- status); provider callbacks are de-duplicated through webhook_inbox.
CREATE TABLE nurture_templates (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    name text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('sms', 'email')),
    subject text,
    body text NOT NULL,
    marketing integer NOT NULL DEFAULT 1,
    version integer NOT NULL DEFAULT 1,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    deleted_at bigint
);
CREATE UNIQUE INDEX nurture_templates_name ON nurture_templates(tenant_id, name) WHERE deleted_at IS NULL;
CREATE INDEX nurture_templates_list ON nurture_templates(tenant_id, id);

CREATE TABLE nurture_sequences (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    name text NOT NULL,
    start_on text NOT NULL DEFAULT 'manual' CHECK (start_on IN ('new_lead', 'manual')),
    steps text NOT NULL,
    active integer NOT NULL DEFAULT 1,
    version integer NOT NULL DEFAULT 1,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    deleted_at bigint
);
CREATE INDEX nurture_sequences_list ON nurture_sequences(tenant_id, id);

CREATE TABLE nurture_enrollments (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    sequence_id bigint NOT NULL REFERENCES nurture_sequences(id),
    lead_id bigint NOT NULL REFERENCES leads(id),
    state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'completed', 'exited')),
    step integer NOT NULL DEFAULT 0,
    exit_reason text,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);
CREATE UNIQUE INDEX nurture_enrollments_once ON nurture_enrollments(tenant_id, sequence_id, lead_id) WHERE state = 'active';
CREATE INDEX nurture_enrollments_lead ON nurture_enrollments(tenant_id, lead_id, state);

-- One row per step run; idem_key (tenant:enrollment:step) is what a
-- provider sees as the idempotency key, so a retried send is one message.
CREATE TABLE nurture_jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    enrollment_id bigint NOT NULL REFERENCES nurture_enrollments(id),
    step integer NOT NULL,
    due_at bigint NOT NULL,
    state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sending', 'done', 'skipped', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    idem_key text NOT NULL UNIQUE,
    result text,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);
CREATE INDEX nurture_jobs_due ON nurture_jobs(state, due_at);
CREATE INDEX nurture_jobs_enrollment ON nurture_jobs(tenant_id, enrollment_id, id);

CREATE TABLE nurture_settings (
    tenant_id bigint PRIMARY KEY REFERENCES tenants(id),
    twilio_account_sid text,
    twilio_auth_token text,
    twilio_from text,
    sendgrid_api_key text,
    sendgrid_from text,
    sendgrid_public_key text,
    quiet_start integer NOT NULL DEFAULT 1260, -- minutes after local midnight: 21:00
    quiet_end integer NOT NULL DEFAULT 480,    -- 08:00
    daily_cap integer NOT NULL DEFAULT 3,
    updated_at bigint NOT NULL DEFAULT 0
);
ALTER TABLE nurture_templates ENABLE ROW LEVEL SECURITY;
ALTER TABLE nurture_templates FORCE ROW LEVEL SECURITY;
CREATE POLICY nurture_templates_tenant_isolation ON nurture_templates
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE nurture_sequences ENABLE ROW LEVEL SECURITY;
ALTER TABLE nurture_sequences FORCE ROW LEVEL SECURITY;
CREATE POLICY nurture_sequences_tenant_isolation ON nurture_sequences
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE nurture_enrollments ENABLE ROW LEVEL SECURITY;
ALTER TABLE nurture_enrollments FORCE ROW LEVEL SECURITY;
CREATE POLICY nurture_enrollments_tenant_isolation ON nurture_enrollments
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE nurture_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE nurture_jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY nurture_jobs_tenant_isolation ON nurture_jobs
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE nurture_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE nurture_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY nurture_settings_tenant_isolation ON nurture_settings
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
