-- 001_init: tenants and the per-tenant event log (PostgreSQL).
-- Runs inside the migration transaction (which holds the migration advisory
-- lock): no BEGIN/COMMIT here.

CREATE TABLE tenants (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9_-]{1,64}$'),
    name text NOT NULL,
    created_at bigint NOT NULL,           -- epoch ms
    -- Last event seq handed out. Appenders take the next one with
    -- UPDATE ... RETURNING, which row-locks the tenant: concurrent appends
    -- queue in commit order and a rollback returns the number, so seqs are
    -- gap-free and ordered.
    event_seq bigint NOT NULL DEFAULT 0
);

CREATE TABLE events (
    tenant_id bigint NOT NULL REFERENCES tenants (id),
    seq bigint NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL,
    created_at bigint NOT NULL,           -- epoch ms
    PRIMARY KEY (tenant_id, seq)
);

-- Row-level security: every store transaction sets ehub.tenant_id (local to
-- the transaction). A transaction for tenant N sees and writes only tenant
-- N's events; tenant 0 is the admin scope (migrations, cross-tenant jobs) and
-- sees all. With the setting absent or empty (a psql session, a connection
-- not going through the store) nothing is visible: deny by default.
--
-- FORCE ROW LEVEL SECURITY: without it the table owner -- normally the very
-- role ehub connects as -- is silently exempt and the policy would protect
-- nothing. Forcing it is safe because the admin path does not rely on the
-- owner exemption: it is the explicit tenant-0 clause in the policy.
-- (Superusers and BYPASSRLS roles still bypass every policy; run ehub as an
-- ordinary role in production.)
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;

CREATE POLICY events_tenant_isolation ON events
    USING (
        NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id)
    )
    WITH CHECK (
        NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id)
    );
