-- 015_check_without_in: on SQLite, the CHECK (col IN (...)) constraints of
-- leads, activities, opportunities and consent_log are rewritten as
-- `col = 'a' OR ...` (SQLite builds an ephemeral b-tree for an IN list of
-- three or more constants on every insert). PostgreSQL evaluates IN lists
-- without that cost and keeps its constraints: nothing to change here; the
-- version is recorded so both backends share one migration history.
SELECT 1;
