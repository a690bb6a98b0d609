-- 006_users: people who log in (users, with Argon2id password hashes), their
-- refresh tokens, and the tamper-evident audit trail (PostgreSQL). Same shape
-- as the SQLite migration; row-level security as on every tenant table.

CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    email text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    role text NOT NULL CHECK (role IN ('admin', 'manager', 'analyst', 'agent', 'viewer')),
    password_hash text NOT NULL,
    agent_id bigint REFERENCES agents(id),
    disabled integer NOT NULL DEFAULT 0,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    last_login_at bigint
);
CREATE UNIQUE INDEX users_email ON users(tenant_id, email);

CREATE TABLE refresh_tokens (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    user_id bigint NOT NULL REFERENCES users(id),
    family_id text NOT NULL,
    hash text NOT NULL UNIQUE,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    revoked_at bigint,
    replaced_by bigint
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens(tenant_id, user_id);

-- detail is text, not jsonb: the hash covers its exact bytes.
CREATE TABLE audit_log (
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    seq bigint NOT NULL,
    created_at bigint NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target text,
    ip text,
    detail text NOT NULL DEFAULT '{}',
    prev_hash text NOT NULL,
    hash text NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
-- Appenders take the next seq with UPDATE ... RETURNING, which row-locks the
-- tenant: concurrent appends queue, so the chain never forks.
ALTER TABLE tenants ADD COLUMN audit_seq bigint NOT NULL DEFAULT 0;

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY users_tenant_isolation ON users
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY refresh_tokens_tenant_isolation ON refresh_tokens
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_log_tenant_isolation ON audit_log
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
