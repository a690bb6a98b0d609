-- 013_inbox_checkpoints: provider webhooks in the audit trail, by checkpoint.
-- Each inbox row gets a stable id (the order checkpoints cover rows in) and
-- the BLAKE2b-256 of its body as received (written at insert; erasure and
-- retention empty the body but leave the hash, so a checkpoint's digest
-- stays verifiable). tenants.inbox_checkpoint_id is the last inbox id a
-- webhooks.checkpoint audit entry covers (see src/auth/audit.c).
-- SQLite cannot add an INTEGER PRIMARY KEY column, and the implicit rowid
-- may be renumbered by VACUUM, so the table is rebuilt, rows in rowid
-- (arrival) order. The old primary key stays as a unique index: the same
-- two b-trees per insert as before (a rowid table + its autoindex).
CREATE TABLE webhook_inbox_new (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    provider TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body_hash TEXT,
    UNIQUE (tenant_id, provider, webhook_id)
);
INSERT INTO webhook_inbox_new (id, tenant_id, provider, webhook_id, type, body, received_at)
    SELECT rowid, tenant_id, provider, webhook_id, type, body, received_at FROM webhook_inbox ORDER BY rowid;
DROP TABLE webhook_inbox;
ALTER TABLE webhook_inbox_new RENAME TO webhook_inbox;
CREATE INDEX webhook_inbox_tenant_id ON webhook_inbox (tenant_id, id);
ALTER TABLE tenants ADD COLUMN inbox_checkpoint_id INTEGER NOT NULL DEFAULT 0;
