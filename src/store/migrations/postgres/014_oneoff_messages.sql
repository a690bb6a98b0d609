-- One-off messages: an agent's own SMS or e-mail to a lead, sent through the
-- same durable queue as sequence steps (nurture_jobs), so it gets the same
-- idempotency key per send, retries, breaker and dead letter. The body is
-- the activity's (privacy erasure empties it there); the subject is here.
-- client_key is the request's Idempotency-Key: a retry with it answers the
-- first request's result, and fingerprint (SHA-256 of lead, channel,
-- subject and body) tells a retry from a different request reusing the key.
CREATE TABLE nurture_messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    lead_id bigint NOT NULL REFERENCES leads(id),
    activity_id bigint NOT NULL REFERENCES activities(id),
    channel text NOT NULL CHECK (channel IN ('sms', 'email')),
    subject text,
    client_key text,
    fingerprint text NOT NULL,
    created_at bigint NOT NULL
);
CREATE UNIQUE INDEX nurture_messages_key ON nurture_messages(tenant_id, client_key) WHERE client_key IS NOT NULL;
CREATE INDEX nurture_messages_lead ON nurture_messages(tenant_id, lead_id);
ALTER TABLE nurture_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE nurture_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY nurture_messages_tenant_isolation ON nurture_messages
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));

-- A job is now a sequence step (enrollment_id, step) or a one-off message
-- (message_id).
ALTER TABLE nurture_jobs ALTER COLUMN enrollment_id DROP NOT NULL;
ALTER TABLE nurture_jobs ADD COLUMN message_id bigint REFERENCES nurture_messages(id);
ALTER TABLE nurture_jobs ADD CONSTRAINT nurture_jobs_one_owner CHECK ((enrollment_id IS NULL) <> (message_id IS NULL));
CREATE INDEX nurture_jobs_message ON nurture_jobs(message_id) WHERE message_id IS NOT NULL;
