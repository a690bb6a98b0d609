-- 015_check_without_in: the same CHECK constraints, written without IN.
-- SQLite evaluates `col IN ('a', 'b', 'c', ...)` with three or more
-- constants by building an ephemeral b-tree of the list, once per statement
-- run: ~33k instructions per inserted row under callgrind (a plain INSERT
-- costs ~5k), against ~0.3k for `col = 'a' OR col = 'b' OR ...`, which
-- accepts and refuses exactly the same values (NULL included). The tables
-- of the webhook and lead write paths are rebuilt with the OR form (SQLite
-- cannot change a CHECK in place); PostgreSQL keeps its constraints.
--
-- Migrations run in one transaction with foreign keys on, where they
-- cannot be turned off. leads and activities are parents (of activities,
-- lead_scores, consent_log... and of nurture_messages): dropping one counts
-- its children as orphans, so the foreign key checks are deferred to the
-- COMMIT, the rows are kept in a temporary copy while the table is dropped
-- and created anew, and putting them back matches every child again: the
-- COMMIT fails unless each reference is whole. Temporary indexes on the
-- children's lead_id / activity_id keep those child lookups from scanning.
--
-- The tables are written out as 014 left them. A store where a later
-- migration already changed one of them (a column or an index more: a
-- version applied out of order) would lose that change here, so the
-- migration refuses to run on it, naming itself, and changes nothing.
CREATE TEMP TABLE m015_guard (
    ok INTEGER CONSTRAINT "015_check_without_in: leads, activities, opportunities or consent_log differ from 014"
        CHECK (ok)
);
INSERT INTO m015_guard (ok) SELECT
    (SELECT count(*) FROM pragma_table_info('leads')) = 36 AND
    (SELECT count(*) FROM pragma_table_info('activities')) = 11 AND
    (SELECT count(*) FROM pragma_table_info('opportunities')) = 12 AND
    (SELECT count(*) FROM pragma_table_info('consent_log')) = 8 AND
    (SELECT count(*) FROM pragma_index_list('leads')) = 5 AND
    (SELECT count(*) FROM pragma_index_list('activities')) = 1 AND
    (SELECT count(*) FROM pragma_index_list('opportunities')) = 2 AND
    (SELECT count(*) FROM pragma_index_list('consent_log')) = 1 AND
    (SELECT count(*) FROM sqlite_master WHERE type = 'trigger'
        AND tbl_name IN ('leads', 'activities', 'opportunities', 'consent_log')) = 0;
DROP TABLE m015_guard;

PRAGMA defer_foreign_keys = ON;

CREATE INDEX m015_activities_lead ON activities (lead_id);
CREATE INDEX m015_opportunities_lead ON opportunities (lead_id);
CREATE INDEX m015_lead_scores_lead ON lead_scores (lead_id);
CREATE INDEX m015_consent_log_lead ON consent_log (lead_id);
CREATE INDEX m015_coaching_suggestions_lead ON coaching_suggestions (lead_id);
CREATE INDEX m015_nurture_enrollments_lead ON nurture_enrollments (lead_id);
CREATE INDEX m015_lead_enrichments_lead ON lead_enrichments (lead_id);
CREATE INDEX m015_nurture_messages_lead ON nurture_messages (lead_id);
CREATE INDEX m015_nurture_messages_activity ON nurture_messages (activity_id);

-- consent_log and opportunities: nothing references them. (Dropping a table
-- drops its indexes: the temporary ones are made again for the leads step.)
CREATE TABLE consent_log_new (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    lead_id INTEGER NOT NULL REFERENCES leads(id),
    channel TEXT NOT NULL CHECK (channel = 'sms' OR channel = 'email' OR channel = 'call' OR channel = 'all'),
    status TEXT NOT NULL CHECK (status = 'given' OR status = 'withdrawn'),
    source TEXT NOT NULL,
    evidence TEXT,
    created_at INTEGER NOT NULL
);
INSERT INTO consent_log_new (id, tenant_id, lead_id, channel, status, source, evidence, created_at)
    SELECT id, tenant_id, lead_id, channel, status, source, evidence, created_at FROM consent_log ORDER BY id;
DROP TABLE consent_log;
ALTER TABLE consent_log_new RENAME TO consent_log;
CREATE INDEX consent_log_lead ON consent_log (tenant_id, lead_id, id);
CREATE INDEX m015_consent_log_lead ON consent_log (lead_id);

CREATE TABLE opportunities_new (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    lead_id INTEGER REFERENCES leads(id),
    ghl_opportunity_id TEXT,
    name TEXT,
    pipeline TEXT,
    stage TEXT,
    monetary_value REAL,
    status TEXT NOT NULL DEFAULT 'open'
        CHECK (status = 'open' OR status = 'won' OR status = 'lost' OR status = 'abandoned'),
    agent_id INTEGER REFERENCES agents(id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
INSERT INTO opportunities_new (id, tenant_id, lead_id, ghl_opportunity_id, name, pipeline, stage, monetary_value,
                               status, agent_id, created_at, updated_at)
    SELECT id, tenant_id, lead_id, ghl_opportunity_id, name, pipeline, stage, monetary_value,
           status, agent_id, created_at, updated_at FROM opportunities ORDER BY id;
DROP TABLE opportunities;
ALTER TABLE opportunities_new RENAME TO opportunities;
CREATE UNIQUE INDEX opportunities_ghl ON opportunities (tenant_id, ghl_opportunity_id) WHERE ghl_opportunity_id IS NOT NULL;
CREATE INDEX opportunities_lead ON opportunities (tenant_id, lead_id);
CREATE INDEX m015_opportunities_lead ON opportunities (lead_id);

-- activities: a parent of nurture_messages.
CREATE TEMP TABLE m015_activities AS SELECT * FROM activities;
DROP TABLE activities;
CREATE TABLE activities (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    lead_id INTEGER NOT NULL REFERENCES leads(id),
    channel TEXT NOT NULL CHECK (channel = 'sms' OR channel = 'email' OR channel = 'call' OR channel = 'note' OR
                                 channel = 'web' OR channel = 'task' OR channel = 'appointment'),
    direction TEXT NOT NULL DEFAULT 'none'
        CHECK (direction = 'inbound' OR direction = 'outbound' OR direction = 'none'),
    body TEXT,
    status TEXT,
    provider_message_id TEXT,
    ghl_id TEXT,
    occurred_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
INSERT INTO activities (id, tenant_id, lead_id, channel, direction, body, status, provider_message_id, ghl_id,
                        occurred_at, created_at)
    SELECT id, tenant_id, lead_id, channel, direction, body, status, provider_message_id, ghl_id,
           occurred_at, created_at FROM m015_activities ORDER BY id;
DROP TABLE m015_activities;
CREATE INDEX activities_lead ON activities (tenant_id, lead_id, id);
CREATE INDEX m015_activities_lead ON activities (lead_id);

-- leads: the parent of everything above; same columns, same order.
CREATE TEMP TABLE m015_leads AS SELECT * FROM leads;
DROP TABLE leads;
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
    status TEXT NOT NULL DEFAULT 'open'
        CHECK (status = 'open' OR status = 'won' OR status = 'lost' OR status = 'abandoned'),
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
    deleted_at INTEGER,
    erased_at INTEGER,
    company TEXT,
    job_title TEXT,
    linkedin_url TEXT
);
INSERT INTO leads (id, tenant_id, ghl_contact_id, ghl_location_id, first_name, last_name, email, phone, source, tags,
                   stage, status, agent_id, timezone, language, consent_sms, consent_email, consent_call, dnd,
                   budget_min, budget_max, beds, baths, property_type, areas, timeline, preapproved, score, version,
                   created_at, updated_at, deleted_at, erased_at, company, job_title, linkedin_url)
    SELECT id, tenant_id, ghl_contact_id, ghl_location_id, first_name, last_name, email, phone, source, tags,
           stage, status, agent_id, timezone, language, consent_sms, consent_email, consent_call, dnd,
           budget_min, budget_max, beds, baths, property_type, areas, timeline, preapproved, score, version,
           created_at, updated_at, deleted_at, erased_at, company, job_title, linkedin_url
    FROM m015_leads ORDER BY id;
DROP TABLE m015_leads;
CREATE UNIQUE INDEX leads_ghl ON leads (tenant_id, ghl_contact_id) WHERE ghl_contact_id IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX leads_email ON leads (tenant_id, email, id) WHERE email IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX leads_phone ON leads (tenant_id, phone, id) WHERE phone IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX leads_agent ON leads (tenant_id, agent_id, status);
CREATE INDEX leads_list ON leads (tenant_id, id);

DROP INDEX m015_activities_lead;
DROP INDEX m015_opportunities_lead;
DROP INDEX m015_lead_scores_lead;
DROP INDEX m015_consent_log_lead;
DROP INDEX m015_coaching_suggestions_lead;
DROP INDEX m015_nurture_enrollments_lead;
DROP INDEX m015_lead_enrichments_lead;
DROP INDEX m015_nurture_messages_lead;
DROP INDEX m015_nurture_messages_activity;
