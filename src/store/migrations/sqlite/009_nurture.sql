-- Nurture: message templates, sequences of steps, enrollments of leads in
-- sequences, and the durable queue of steps to run. Messages sent are
-- activities (channel sms/email, direction outbound, provider_message_id,
-- status); provider callbacks are de-duplicated through webhook_inbox.
CREATE TABLE nurture_templates (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    channel TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
    subject TEXT,
    body TEXT NOT NULL,
    marketing INTEGER NOT NULL DEFAULT 1,
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE UNIQUE INDEX nurture_templates_name ON nurture_templates(tenant_id, name) WHERE deleted_at IS NULL;
CREATE INDEX nurture_templates_list ON nurture_templates(tenant_id, id);

CREATE TABLE nurture_sequences (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    start_on TEXT NOT NULL DEFAULT 'manual' CHECK (start_on IN ('new_lead', 'manual')),
    steps TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX nurture_sequences_list ON nurture_sequences(tenant_id, id);

CREATE TABLE nurture_enrollments (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    sequence_id INTEGER NOT NULL REFERENCES nurture_sequences(id),
    lead_id INTEGER NOT NULL REFERENCES leads(id),
    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'completed', 'exited')),
    step INTEGER NOT NULL DEFAULT 0,
    exit_reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX nurture_enrollments_once ON nurture_enrollments(tenant_id, sequence_id, lead_id) WHERE state = 'active';
CREATE INDEX nurture_enrollments_lead ON nurture_enrollments(tenant_id, lead_id, state);

-- One row per step run; idem_key (tenant:enrollment:step) is what a
-- provider sees as the idempotency key, so a retried send is one message.
CREATE TABLE nurture_jobs (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    enrollment_id INTEGER NOT NULL REFERENCES nurture_enrollments(id),
    step INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sending', 'done', 'skipped', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    idem_key TEXT NOT NULL UNIQUE,
    result TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX nurture_jobs_due ON nurture_jobs(state, due_at);
CREATE INDEX nurture_jobs_enrollment ON nurture_jobs(tenant_id, enrollment_id, id);

CREATE TABLE nurture_settings (
    tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
    twilio_account_sid TEXT,
    twilio_auth_token TEXT,
    twilio_from TEXT,
    sendgrid_api_key TEXT,
    sendgrid_from TEXT,
    sendgrid_public_key TEXT,
    quiet_start INTEGER NOT NULL DEFAULT 1260, -- minutes after local midnight: 21:00
    quiet_end INTEGER NOT NULL DEFAULT 480,    -- 08:00
    daily_cap INTEGER NOT NULL DEFAULT 3,
    updated_at INTEGER NOT NULL DEFAULT 0
);
