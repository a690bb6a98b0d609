-- 016_nurture_check_without_in: 015 for the nurture queue. The CHECK
-- constraints with an IN list of three or more constants, nurture_jobs.state,
-- nurture_enrollments.state and lead_enrichments.state, are written as
-- `col = 'a' OR ...`, which accepts and refuses exactly the same values
-- (NULL included) without the ephemeral b-tree SQLite builds for the list on
-- every statement run that checks it: every enrolment, every step queued,
-- and the claim and the record UPDATE of every step sent. Lists of two
-- constants (nurture_templates.channel, nurture_sequences.start_on,
-- nurture_messages.channel) are compiled to two comparisons already and
-- stay as they are. PostgreSQL keeps its constraints.
--
-- As in 015 the migration runs in one transaction with foreign keys on.
-- nurture_enrollments is the parent of nurture_jobs alone, and nurture_jobs
-- and lead_enrichments are nobody's parent: nurture_jobs is copied aside
-- and dropped first, then nurture_enrollments, so neither DROP has a child
-- left to count; both are made anew and filled from their copies (same
-- ids), the parent first. The foreign key checks are still deferred to the
-- COMMIT, which fails (changing nothing) unless every reference is whole.
--
-- The tables are written out as 014 left them. A store where a later
-- migration already changed one of them (a column or an index more: a
-- version applied out of order) would lose that change here, so the
-- migration refuses to run on it, naming itself, and changes nothing.
CREATE TEMP TABLE m016_guard (
    ok INTEGER CONSTRAINT "016_nurture_check_without_in: nurture_enrollments, nurture_jobs or lead_enrichments differ from 014"
        CHECK (ok)
);
INSERT INTO m016_guard (ok) SELECT
    (SELECT count(*) FROM pragma_table_info('nurture_enrollments')) = 9 AND
    (SELECT count(*) FROM pragma_table_info('nurture_jobs')) = 12 AND
    (SELECT count(*) FROM pragma_table_info('lead_enrichments')) = 9 AND
    (SELECT count(*) FROM pragma_index_list('nurture_enrollments')) = 2 AND
    (SELECT count(*) FROM pragma_index_list('nurture_jobs')) = 4 AND
    (SELECT count(*) FROM pragma_index_list('lead_enrichments')) = 2 AND
    (SELECT count(*) FROM sqlite_master WHERE type = 'trigger'
        AND tbl_name IN ('nurture_enrollments', 'nurture_jobs', 'lead_enrichments')) = 0;
DROP TABLE m016_guard;

PRAGMA defer_foreign_keys = ON;

CREATE TEMP TABLE m016_jobs AS SELECT * FROM nurture_jobs;
DROP TABLE nurture_jobs;
CREATE TEMP TABLE m016_enrollments AS SELECT * FROM nurture_enrollments;
DROP TABLE nurture_enrollments;

CREATE TABLE nurture_enrollments (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    sequence_id INTEGER NOT NULL REFERENCES nurture_sequences(id),
    lead_id INTEGER NOT NULL REFERENCES leads(id),
    state TEXT NOT NULL DEFAULT 'active' CHECK (state = 'active' OR state = 'completed' OR state = 'exited'),
    step INTEGER NOT NULL DEFAULT 0,
    exit_reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
INSERT INTO nurture_enrollments (id, tenant_id, sequence_id, lead_id, state, step, exit_reason, created_at, updated_at)
    SELECT id, tenant_id, sequence_id, lead_id, state, step, exit_reason, created_at, updated_at
    FROM m016_enrollments ORDER BY id;
DROP TABLE m016_enrollments;
CREATE UNIQUE INDEX nurture_enrollments_once ON nurture_enrollments(tenant_id, sequence_id, lead_id) WHERE state = 'active';
CREATE INDEX nurture_enrollments_lead ON nurture_enrollments(tenant_id, lead_id, state);

CREATE TABLE nurture_jobs (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    enrollment_id INTEGER REFERENCES nurture_enrollments(id),
    message_id INTEGER REFERENCES nurture_messages(id),
    step INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state = 'queued' OR state = 'sending' OR state = 'done' OR state = 'skipped' OR state = 'failed'),
    attempts INTEGER NOT NULL DEFAULT 0,
    idem_key TEXT NOT NULL UNIQUE,
    result TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK ((enrollment_id IS NULL) <> (message_id IS NULL))
);
INSERT INTO nurture_jobs (id, tenant_id, enrollment_id, message_id, step, due_at, state, attempts, idem_key, result,
                          created_at, updated_at)
    SELECT id, tenant_id, enrollment_id, message_id, step, due_at, state, attempts, idem_key, result,
           created_at, updated_at FROM m016_jobs ORDER BY id;
DROP TABLE m016_jobs;
CREATE INDEX nurture_jobs_due ON nurture_jobs(state, due_at);
CREATE INDEX nurture_jobs_enrollment ON nurture_jobs(tenant_id, enrollment_id, id);
CREATE INDEX nurture_jobs_message ON nurture_jobs(message_id) WHERE message_id IS NOT NULL;

-- lead_enrichments: nothing references it.
CREATE TABLE lead_enrichments_new (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    lead_id INTEGER NOT NULL REFERENCES leads(id),
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state = 'queued' OR state = 'sending' OR state = 'done' OR state = 'not_found' OR state = 'failed'),
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at INTEGER NOT NULL,
    result TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
INSERT INTO lead_enrichments_new (id, tenant_id, lead_id, state, attempts, due_at, result, created_at, updated_at)
    SELECT id, tenant_id, lead_id, state, attempts, due_at, result, created_at, updated_at
    FROM lead_enrichments ORDER BY id;
DROP TABLE lead_enrichments;
ALTER TABLE lead_enrichments_new RENAME TO lead_enrichments;
CREATE UNIQUE INDEX lead_enrichments_lead ON lead_enrichments(tenant_id, lead_id);
CREATE INDEX lead_enrichments_due ON lead_enrichments(state, due_at);
