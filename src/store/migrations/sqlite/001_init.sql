-- 001_init: tenants and the per-tenant event log (SQLite).
-- Runs inside the migration transaction: no BEGIN/COMMIT here.

CREATE TABLE tenants (
    -- AUTOINCREMENT: a deleted tenant's id is never handed out again, so
    -- leftover rows can never be read by a new tenant.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    slug TEXT NOT NULL UNIQUE
        CHECK (length(slug) BETWEEN 1 AND 64 AND slug NOT GLOB '*[^a-z0-9_-]*'),
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,          -- epoch ms
    -- Last event seq handed out. Bumped in the same transaction as the
    -- event insert, so a rollback returns the number: seqs have no gaps.
    event_seq INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE events (
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    -- PostgreSQL stores jsonb and refuses bad JSON; do the same here.
    payload TEXT NOT NULL CHECK (json_valid(payload)),
    created_at INTEGER NOT NULL,          -- epoch ms
    PRIMARY KEY (tenant_id, seq)
);
