-- Coaching: a tenant's playbook override (merged item by item over the
-- built-in default) and every suggestion shown to an agent, with the
-- agent's feedback, so coaching's effect can be measured.
CREATE TABLE coaching_playbooks (
    tenant_id bigint PRIMARY KEY REFERENCES tenants(id),
    body text NOT NULL,
    version integer NOT NULL DEFAULT 1,
    updated_at bigint NOT NULL
);
CREATE TABLE coaching_suggestions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    lead_id bigint REFERENCES leads(id),
    agent_id bigint REFERENCES agents(id),
    type text NOT NULL,
    item text NOT NULL,
    message_id bigint,
    status text NOT NULL DEFAULT 'shown' CHECK (status IN ('shown', 'accepted', 'dismissed')),
    created_at bigint NOT NULL,
    feedback_at bigint
);
CREATE INDEX coaching_suggestions_lead ON coaching_suggestions(tenant_id, lead_id);
CREATE INDEX coaching_suggestions_agent ON coaching_suggestions(tenant_id, agent_id);
ALTER TABLE coaching_playbooks ENABLE ROW LEVEL SECURITY;
ALTER TABLE coaching_playbooks FORCE ROW LEVEL SECURITY;
CREATE POLICY coaching_playbooks_tenant_isolation ON coaching_playbooks
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
ALTER TABLE coaching_suggestions ENABLE ROW LEVEL SECURITY;
ALTER TABLE coaching_suggestions FORCE ROW LEVEL SECURITY;
CREATE POLICY coaching_suggestions_tenant_isolation ON coaching_suggestions
    USING (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id))
    WITH CHECK (NULLIF(current_setting('ehub.tenant_id', true), '')::bigint IN (0, tenant_id));
