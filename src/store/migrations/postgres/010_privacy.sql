-- 010_privacy: the consent log, erasure marks and retention policies
-- (PostgreSQL). Same shape as the SQLite migration; row-level security as
-- on every tenant table.
CREATE TABLE consent_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    lead_id bigint NOT NULL REFERENCES leads(id),
    channel text NOT NULL CHECK (channel IN ('sms', 'email', 'call', 'all')),
    status text NOT NULL CHECK (status IN ('given', 'withdrawn')),
    source text NOT NULL,
    evidence text,
    created_at bigint NOT NULL
);
CREATE INDEX consent_log_lead ON consent_log(tenant_id, lead_id, id);

ALTER TABLE leads ADD COLUMN erased_at bigint;

CREATE TABLE retention_policies (
    tenant_id bigint PRIMARY KEY REFERENCES tenants(id),
    lead_inactive_days integer CHECK (lead_inactive_days BETWEEN 1 AND 36500),
    inbox_days integer CHECK (inbox_days BETWEEN 1 AND 36500),
    last_run_at bigint,
    updated_at bigint NOT NULL
);

ALTER TABLE consent_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE consent_log FORCE ROW LEVEL SECURITY;
CREATE POLICY consent_log_tenant_isolation ON consent_log
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE retention_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE retention_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY retention_policies_tenant_isolation ON retention_policies
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
