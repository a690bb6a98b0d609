-- 006_users: people who log in (users, with Argon2id password hashes), their
-- refresh tokens, and the tamper-evident audit trail (SQLite).

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    email TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    role TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'analyst', 'agent', 'viewer')),
    -- libsodium crypto_pwhash_str: "$argon2id$v=19$m=...,t=...,p=1$salt$hash"
    password_hash TEXT NOT NULL,
    agent_id INTEGER REFERENCES agents(id),
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_login_at INTEGER
);
-- E-mail addresses are stored lower-cased, so this is case-insensitive.
CREATE UNIQUE INDEX users_email ON users(tenant_id, email);

-- Only the SHA-256 of a refresh token is stored. Every token descends from
-- one login (family_id); refreshing revokes the presented token and points
-- it at its successor (replaced_by). Presenting a revoked token again means
-- it was copied: the whole family is revoked.
CREATE TABLE refresh_tokens (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    family_id TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    replaced_by INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens(tenant_id, user_id);

-- Audit trail: per tenant, seq gap-free from 1, each entry's hash is
-- SHA-256 over the previous entry's hash and this entry's canonical form
-- (see src/auth/audit.c). tenants.audit_seq is the last seq handed out, so
-- entries removed from the end are noticed too.
CREATE TABLE audit_log (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    seq INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    ip TEXT,
    detail TEXT NOT NULL DEFAULT '{}',
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
ALTER TABLE tenants ADD COLUMN audit_seq INTEGER NOT NULL DEFAULT 0;
