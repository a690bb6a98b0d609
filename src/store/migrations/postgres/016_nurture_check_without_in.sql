-- 016_nurture_check_without_in: on SQLite, the CHECK (state IN (...))
-- constraints of nurture_enrollments, nurture_jobs and lead_enrichments are
-- rewritten as `state = 'a' OR ...` (SQLite builds an ephemeral b-tree for an
-- IN list of three or more constants on every statement that checks it).
-- PostgreSQL evaluates IN lists without that cost and keeps its
-- constraints: nothing to change here; the version is recorded so both
-- backends share one migration history.
SELECT 1;
