-- 010_privacy: the consent log, erasure marks and retention policies (SQLite).

-- Every change of a lead's consent, appended in the transaction that makes
-- it: channel sms/email/call, or 'all' for do-not-disturb (withdrawn = DND
-- on, given = DND lifted). source says which path (api, import, ghl,
-- twilio, sendgrid, retention...), evidence what proves it (a webhook id,
-- a message sid, the API principal) and never holds the person's address.
CREATE TABLE consent_log (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    lead_id INTEGER NOT NULL REFERENCES leads(id),
    channel TEXT NOT NULL CHECK (channel IN ('sms', 'email', 'call', 'all')),
    status TEXT NOT NULL CHECK (status IN ('given', 'withdrawn')),
    source TEXT NOT NULL,
    evidence TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX consent_log_lead ON consent_log(tenant_id, lead_id, id);

-- An erased lead keeps its row (counts, stage, status, score survive) with
-- every personal column emptied; erased_at says it happened.
ALTER TABLE leads ADD COLUMN erased_at INTEGER;

-- Per-tenant retention: erase leads with no change and no activity for
-- lead_inactive_days; empty webhook inbox bodies older than inbox_days.
-- NULL = keep forever. last_run_at lets one node claim a scheduled run.
CREATE TABLE retention_policies (
    tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
    lead_inactive_days INTEGER CHECK (lead_inactive_days BETWEEN 1 AND 36500),
    inbox_days INTEGER CHECK (inbox_days BETWEEN 1 AND 36500),
    last_run_at INTEGER,
    updated_at INTEGER NOT NULL
);
