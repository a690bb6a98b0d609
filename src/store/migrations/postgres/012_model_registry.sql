-- 012_model_registry: tenants' built-in model versions and the version each
-- serves (PostgreSQL). Same shape as the SQLite migration; row-level
-- security as on every tenant table.
CREATE TABLE model_versions (
    tenant_id bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name text NOT NULL,
    version integer NOT NULL CHECK (version > 0),
    task text NOT NULL CHECK (task IN ('classification', 'regression')),
    created_at bigint NOT NULL,
    trained_by text NOT NULL,
    metrics jsonb NOT NULL,
    training jsonb NOT NULL,
    schema jsonb NOT NULL,
    model bytea NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);

CREATE TABLE model_active (
    tenant_id bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name text NOT NULL,
    version integer NOT NULL,
    generation bigint NOT NULL,
    activated_at bigint NOT NULL,
    activated_by text NOT NULL,
    PRIMARY KEY (tenant_id, name),
    FOREIGN KEY (tenant_id, name, version) REFERENCES model_versions(tenant_id, name, version)
);

ALTER TABLE model_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE model_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY model_versions_tenant_isolation ON model_versions
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE model_active ENABLE ROW LEVEL SECURITY;
ALTER TABLE model_active FORCE ROW LEVEL SECURITY;
CREATE POLICY model_active_tenant_isolation ON model_active
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
