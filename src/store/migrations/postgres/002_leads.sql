-- 002_leads: leads, activities, opportunities, agents, listings, API keys,
-- tenant settings and the webhook inbox (PostgreSQL). Same shape as the
-- SQLite migration: times are epoch ms, booleans are 0/1 integers and lists
-- are JSON text, so one set of statements serves both backends.

CREATE TABLE tenant_settings (
    tenant_id bigint PRIMARY KEY REFERENCES tenants(id),
    routing_mode text NOT NULL DEFAULT 'round_robin'
        CHECK (routing_mode IN ('off', 'round_robin', 'least_loaded')),
    rr_cursor bigint NOT NULL DEFAULT 0,
    default_country text NOT NULL DEFAULT 'US',
    ghl_mode text NOT NULL DEFAULT 'signed' CHECK (ghl_mode IN ('signed', 'token')),
    ghl_token_hash text,
    ghl_ed25519_pem text,
    ghl_rsa_pem text,
    updated_at bigint NOT NULL DEFAULT 0
);

CREATE TABLE api_keys (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    name text NOT NULL,
    prefix text NOT NULL,
    hash text NOT NULL UNIQUE,
    role text NOT NULL CHECK (role IN ('admin', 'manager', 'analyst', 'agent', 'viewer')),
    created_at bigint NOT NULL,
    last_used_at bigint,
    revoked_at bigint
);

CREATE TABLE agents (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    name text NOT NULL,
    email text,
    phone text,
    active integer NOT NULL DEFAULT 1,
    capacity integer NOT NULL DEFAULT 50,
    areas text NOT NULL DEFAULT '[]',
    languages text NOT NULL DEFAULT '[]',
    ghl_user_id text,
    last_assigned_at bigint NOT NULL DEFAULT 0,
    version bigint NOT NULL DEFAULT 1,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    deleted_at bigint
);
CREATE INDEX agents_tenant ON agents(tenant_id, id);
CREATE UNIQUE INDEX agents_ghl ON agents(tenant_id, ghl_user_id) WHERE ghl_user_id IS NOT NULL;

CREATE TABLE leads (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    ghl_contact_id text,
    ghl_location_id text,
    first_name text,
    last_name text,
    email text,
    phone text,
    source text,
    tags text NOT NULL DEFAULT '[]',
    stage text NOT NULL DEFAULT 'new',
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost', 'abandoned')),
    agent_id bigint REFERENCES agents(id),
    timezone text,
    language text,
    consent_sms integer NOT NULL DEFAULT 0,
    consent_email integer NOT NULL DEFAULT 0,
    consent_call integer NOT NULL DEFAULT 0,
    dnd integer NOT NULL DEFAULT 0,
    budget_min double precision,
    budget_max double precision,
    beds double precision,
    baths double precision,
    property_type text,
    areas text NOT NULL DEFAULT '[]',
    timeline text,
    preapproved integer,
    score double precision,
    version bigint NOT NULL DEFAULT 1,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    deleted_at bigint
);
CREATE UNIQUE INDEX leads_ghl ON leads(tenant_id, ghl_contact_id) WHERE ghl_contact_id IS NOT NULL;
CREATE INDEX leads_email ON leads(tenant_id, email) WHERE email IS NOT NULL;
CREATE INDEX leads_phone ON leads(tenant_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX leads_agent ON leads(tenant_id, agent_id, status);
CREATE INDEX leads_list ON leads(tenant_id, id);

CREATE TABLE activities (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    lead_id bigint NOT NULL REFERENCES leads(id),
    channel text NOT NULL CHECK (channel IN ('sms', 'email', 'call', 'note', 'web', 'task', 'appointment')),
    direction text NOT NULL DEFAULT 'none' CHECK (direction IN ('inbound', 'outbound', 'none')),
    body text,
    status text,
    provider_message_id text,
    ghl_id text,
    occurred_at bigint NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX activities_lead ON activities(tenant_id, lead_id, id);

CREATE TABLE opportunities (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    lead_id bigint REFERENCES leads(id),
    ghl_opportunity_id text,
    name text,
    pipeline text,
    stage text,
    monetary_value double precision,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost', 'abandoned')),
    agent_id bigint REFERENCES agents(id),
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);
CREATE UNIQUE INDEX opportunities_ghl ON opportunities(tenant_id, ghl_opportunity_id) WHERE ghl_opportunity_id IS NOT NULL;
CREATE INDEX opportunities_lead ON opportunities(tenant_id, lead_id);

CREATE TABLE listings (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    external_id text,
    address text NOT NULL,
    city text,
    state text,
    zip text,
    lat double precision,
    lng double precision,
    price double precision,
    beds double precision,
    baths double precision,
    sqft double precision,
    type text,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'pending', 'sold', 'off_market')),
    version bigint NOT NULL DEFAULT 1,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    deleted_at bigint
);
CREATE INDEX listings_tenant ON listings(tenant_id, id);
CREATE UNIQUE INDEX listings_ext ON listings(tenant_id, external_id) WHERE external_id IS NOT NULL;

-- Every provider webhook body, stored before it is acknowledged; the
-- primary key is what makes a replay a no-op.
CREATE TABLE webhook_inbox (
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    provider text NOT NULL,
    webhook_id text NOT NULL,
    type text NOT NULL,
    body text NOT NULL,
    received_at bigint NOT NULL,
    PRIMARY KEY (tenant_id, provider, webhook_id)
);

-- Row-level security on every tenant table, as on events (see 001): a
-- transaction sees only its tenant's rows; tenant 0 is the admin scope.
ALTER TABLE tenant_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_settings_tenant_isolation ON tenant_settings
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_tenant_isolation ON api_keys
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE agents FORCE ROW LEVEL SECURITY;
CREATE POLICY agents_tenant_isolation ON agents
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE leads ENABLE ROW LEVEL SECURITY;
ALTER TABLE leads FORCE ROW LEVEL SECURITY;
CREATE POLICY leads_tenant_isolation ON leads
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE activities ENABLE ROW LEVEL SECURITY;
ALTER TABLE activities FORCE ROW LEVEL SECURITY;
CREATE POLICY activities_tenant_isolation ON activities
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE opportunities ENABLE ROW LEVEL SECURITY;
ALTER TABLE opportunities FORCE ROW LEVEL SECURITY;
CREATE POLICY opportunities_tenant_isolation ON opportunities
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE listings ENABLE ROW LEVEL SECURITY;
ALTER TABLE listings FORCE ROW LEVEL SECURITY;
CREATE POLICY listings_tenant_isolation ON listings
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE webhook_inbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_inbox FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_inbox_tenant_isolation ON webhook_inbox
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
