-- One-off messages: an agent's own SMS or e-mail to a lead, sent through the
-- same durable queue as sequence steps (nurture_jobs), so it gets the same
-- idempotency key per send, retries, breaker and dead letter. The body is
-- the activity's (privacy erasure empties it there); the subject is here.
-- client_key is the request's Idempotency-Key: a retry with it answers the
-- first request's result, and fingerprint (SHA-256 of lead, channel,
-- subject and body) tells a retry from a different request reusing the key.
CREATE TABLE nurture_messages (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    lead_id INTEGER NOT NULL REFERENCES leads(id),
    activity_id INTEGER NOT NULL REFERENCES activities(id),
    channel TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
    subject TEXT,
    client_key TEXT,
    fingerprint TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX nurture_messages_key ON nurture_messages(tenant_id, client_key) WHERE client_key IS NOT NULL;
CREATE INDEX nurture_messages_lead ON nurture_messages(tenant_id, lead_id);

-- A job is now a sequence step (enrollment_id, step) or a one-off message
-- (message_id). SQLite cannot drop a NOT NULL: the table is rebuilt.
CREATE TABLE nurture_jobs_new (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    enrollment_id INTEGER REFERENCES nurture_enrollments(id),
    message_id INTEGER REFERENCES nurture_messages(id),
    step INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sending', 'done', 'skipped', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    idem_key TEXT NOT NULL UNIQUE,
    result TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK ((enrollment_id IS NULL) <> (message_id IS NULL))
);
INSERT INTO nurture_jobs_new (id, tenant_id, enrollment_id, message_id, step, due_at, state, attempts, idem_key,
                              result, created_at, updated_at)
    SELECT id, tenant_id, enrollment_id, NULL, step, due_at, state, attempts, idem_key, result, created_at, updated_at
    FROM nurture_jobs;
DROP TABLE nurture_jobs;
ALTER TABLE nurture_jobs_new RENAME TO nurture_jobs;
CREATE INDEX nurture_jobs_due ON nurture_jobs(state, due_at);
CREATE INDEX nurture_jobs_enrollment ON nurture_jobs(tenant_id, enrollment_id, id);
CREATE INDEX nurture_jobs_message ON nurture_jobs(message_id) WHERE message_id IS NOT NULL;
