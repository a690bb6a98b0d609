-- Coaching: a tenant's playbook override (merged item by item over the
-- built-in default) and every suggestion shown to an agent, with the
-- agent's feedback, so coaching's effect can be measured.
CREATE TABLE coaching_playbooks (
    tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
    body TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    updated_at INTEGER NOT NULL
);
CREATE TABLE coaching_suggestions (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    lead_id INTEGER REFERENCES leads(id),
    agent_id INTEGER REFERENCES agents(id),
    type TEXT NOT NULL,
    item TEXT NOT NULL,
    message_id INTEGER,
    status TEXT NOT NULL DEFAULT 'shown' CHECK (status IN ('shown', 'accepted', 'dismissed')),
    created_at INTEGER NOT NULL,
    feedback_at INTEGER
);
CREATE INDEX coaching_suggestions_lead ON coaching_suggestions(tenant_id, lead_id);
CREATE INDEX coaching_suggestions_agent ON coaching_suggestions(tenant_id, agent_id);
