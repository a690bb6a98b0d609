-- 012_model_registry: tenants' built-in model versions (lead_scoring,
-- churn, property_value) and the version each serves, in the store, so
-- every node sharing it serves the same model (SQLite).

-- One row per trained version. model holds XGBoost's JSON model (loads in
-- Python/R XGBoost as it is), schema the features in column order with
-- their vocabularies and training distribution; metrics the held-out test
-- metrics; training what it was trained on (rows, class counts, rounds,
-- seed, parameters). Nothing in them names a contact.
CREATE TABLE model_versions (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version > 0),
    task TEXT NOT NULL CHECK (task IN ('classification', 'regression')),
    created_at INTEGER NOT NULL,
    trained_by TEXT NOT NULL,
    metrics TEXT NOT NULL,
    training TEXT NOT NULL,
    schema TEXT NOT NULL,
    model BLOB NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);

-- The version each (tenant, model) serves. generation counts activations,
-- so a node that loads two of them concurrently keeps the later one
-- (a rollback lowers the version, so versions cannot tell).
CREATE TABLE model_active (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    activated_at INTEGER NOT NULL,
    activated_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name),
    FOREIGN KEY (tenant_id, name, version) REFERENCES model_versions(tenant_id, name, version)
);
