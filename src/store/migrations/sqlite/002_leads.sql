-- Leads, their activities and opportunities, agents, listings, API keys,
-- per-tenant settings, and the webhook inbox. Times are epoch milliseconds;
-- lists (tags, areas, languages) are JSON arrays stored as text.

CREATE TABLE tenant_settings (
    tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
    routing_mode TEXT NOT NULL DEFAULT 'round_robin'
        CHECK (routing_mode IN ('off', 'round_robin', 'least_loaded')),
    rr_cursor INTEGER NOT NULL DEFAULT 0,
    default_country TEXT NOT NULL DEFAULT 'US',
    ghl_mode TEXT NOT NULL DEFAULT 'signed' CHECK (ghl_mode IN ('signed', 'token')),
    ghl_token_hash TEXT,
    ghl_ed25519_pem TEXT,
    ghl_rsa_pem TEXT,
    updated_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'analyst', 'agent', 'viewer')),
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);

CREATE TABLE agents (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    capacity INTEGER NOT NULL DEFAULT 50,
    areas TEXT NOT NULL DEFAULT '[]',
    languages TEXT NOT NULL DEFAULT '[]',
    ghl_user_id TEXT,
    last_assigned_at INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX agents_tenant ON agents(tenant_id, id);
CREATE UNIQUE INDEX agents_ghl ON agents(tenant_id, ghl_user_id) WHERE ghl_user_id IS NOT NULL;

CREATE TABLE leads (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    ghl_contact_id TEXT,
    ghl_location_id TEXT,
    first_name TEXT,
    last_name TEXT,
    email TEXT,
    phone TEXT,
    source TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    stage TEXT NOT NULL DEFAULT 'new',
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost', 'abandoned')),
    agent_id INTEGER REFERENCES agents(id),
    timezone TEXT,
    language TEXT,
    consent_sms INTEGER NOT NULL DEFAULT 0,
    consent_email INTEGER NOT NULL DEFAULT 0,
    consent_call INTEGER NOT NULL DEFAULT 0,
    dnd INTEGER NOT NULL DEFAULT 0,
    budget_min REAL,
    budget_max REAL,
    beds REAL,
    baths REAL,
    property_type TEXT,
    areas TEXT NOT NULL DEFAULT '[]',
    timeline TEXT,
    preapproved INTEGER,
    score REAL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE UNIQUE INDEX leads_ghl ON leads(tenant_id, ghl_contact_id) WHERE ghl_contact_id IS NOT NULL;
CREATE INDEX leads_email ON leads(tenant_id, email) WHERE email IS NOT NULL;
CREATE INDEX leads_phone ON leads(tenant_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX leads_agent ON leads(tenant_id, agent_id, status);
CREATE INDEX leads_list ON leads(tenant_id, id);

CREATE TABLE activities (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    lead_id INTEGER NOT NULL REFERENCES leads(id),
    channel TEXT NOT NULL CHECK (channel IN ('sms', 'email', 'call', 'note', 'web', 'task', 'appointment')),
    direction TEXT NOT NULL DEFAULT 'none' CHECK (direction IN ('inbound', 'outbound', 'none')),
    body TEXT,
    status TEXT,
    provider_message_id TEXT,
    ghl_id TEXT,
    occurred_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX activities_lead ON activities(tenant_id, lead_id, id);

CREATE TABLE opportunities (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    lead_id INTEGER REFERENCES leads(id),
    ghl_opportunity_id TEXT,
    name TEXT,
    pipeline TEXT,
    stage TEXT,
    monetary_value REAL,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost', 'abandoned')),
    agent_id INTEGER REFERENCES agents(id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX opportunities_ghl ON opportunities(tenant_id, ghl_opportunity_id) WHERE ghl_opportunity_id IS NOT NULL;
CREATE INDEX opportunities_lead ON opportunities(tenant_id, lead_id);

CREATE TABLE listings (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    external_id TEXT,
    address TEXT NOT NULL,
    city TEXT,
    state TEXT,
    zip TEXT,
    lat REAL,
    lng REAL,
    price REAL,
    beds REAL,
    baths REAL,
    sqft REAL,
    type TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'pending', 'sold', 'off_market')),
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX listings_tenant ON listings(tenant_id, id);
CREATE UNIQUE INDEX listings_ext ON listings(tenant_id, external_id) WHERE external_id IS NOT NULL;

-- Every provider webhook body, stored before it is acknowledged; the
-- primary key is what makes a replay a no-op.
CREATE TABLE webhook_inbox (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    provider TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, provider, webhook_id)
);
