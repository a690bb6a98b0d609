"""Migration 016 (SQLite): the CHECK (state IN (...)) constraints of
nurture_enrollments, nurture_jobs and lead_enrichments written as
`state = 'a' OR ...` (an IN list of three or more constants costs SQLite an
ephemeral b-tree on every statement that checks it: every enrolment, every
step queued, claimed and recorded). The tables are rebuilt inside the
migration's transaction with foreign keys on, so this checks, on a store
holding nurture rows of every kind (enrolments active and completed, steps
done and queued, a one-off message's job, enrichments): that re-applying 016
keeps every row, id and reference, the indexes and the constraints (bad
states and dangling references still refused), that the server goes on
sending on the rebuilt store, and that 016 refuses, naming itself and
changing nothing, a store where one of the tables was changed later. On
PostgreSQL 016 changes nothing and the constraints still refuse bad values.
Standard library (the fake Twilio / SendGrid of test_nurture)."""
import sqlite3

import test_nurture as nu
from lib import wait_for
from rebuilds import assert_checks_refuse, assert_refuses_later_changes, reapply, snapshot, sqlite_db
from tenants import Tenant, db_rows
from test_auth import db_exec

SERVER_ARGS = nu.SERVER_ARGS + ["--apollo-url", nu._URL]

TABLES = {
    "nurture_enrollments": "SELECT * FROM nurture_enrollments ORDER BY id",
    "nurture_jobs": "SELECT * FROM nurture_jobs ORDER BY id",
    "lead_enrichments": "SELECT * FROM lead_enrichments ORDER BY id",
    "nurture_messages": "SELECT * FROM nurture_messages ORDER BY id",
    "activities": "SELECT * FROM activities ORDER BY id",
}

# (table, column, a value the constraint accepts, values it refuses)
CHECKS = [
    ("nurture_enrollments", "state", "exited", ["bogus", "Active", ""]),
    ("nurture_jobs", "state", "skipped", ["dead", "QUEUED", ""]),
    ("lead_enrichments", "state", "not_found", ["found", "Done"]),
]


def _fill(t, srv, prefix):
    """A tenant with nurture rows of every kind; waits for the first steps."""
    tn = Tenant(t, srv=srv, prefix=prefix)
    tn.ok("PATCH", "/v1/nurture/settings", {"twilio_account_sid": nu.SID, "twilio_auth_token": nu.TOKEN,
                                            "twilio_from": nu.FROM, "quiet_start": "00:00", "quiet_end": "00:00",
                                            "apollo_api_key": "apollo-key", "daily_cap": 10})
    tn.ok("POST", "/v1/templates", {"name": "hi", "channel": "sms", "body": "Hi {{first_name}}. Reply STOP to opt out"})
    tn.ok("POST", "/v1/sequences", {"name": "two", "start_on": "new_lead", "steps": [
        {"type": "sms", "template": "hi"}, {"type": "wait", "minutes": 600}, {"type": "sms", "template": "hi"}]})
    one = tn.ok("POST", "/v1/sequences", {"name": "one", "steps": [{"type": "sms", "template": "hi"}]})
    phones = ["+1415555%04d" % (7600 + i + 10 * ["n16", "n16r", "n16c"].index(prefix)) for i in range(3)]
    leads = [tn.create_lead(first_name="N%d" % i, phone=p, consent_sms=True, timezone="UTC")
             for i, p in enumerate(phones)]
    tn.ok("POST", "/v1/sequences/%d/enroll" % one["id"], {"lead_id": leads[0]["id"]}, want=(200, 201, 202))
    tn.ok("POST", "/v1/leads/%d/messages" % leads[1]["id"], {"channel": "sms", "body": "a one-off"},
          want=(202,))
    # every first step settled (three new-lead enrolments, one manual: sent,
    # or skipped when the one-off message, an agent takeover, ended its
    # enrolment first) and the one-off message sent; the second steps wait
    # 600 minutes
    done = wait_for(lambda: tn.db("SELECT count(*) AS n FROM nurture_jobs WHERE tenant_id = {tenant} "
                                  "AND step = 0 AND state IN ('done', 'skipped')")[0]["n"] >= 5, timeout=20 * t.slow)
    assert done, tn.db("SELECT * FROM nurture_jobs WHERE tenant_id = {tenant}")
    return tn, leads


def _snapshot(t, srv):
    return snapshot(t, srv, TABLES)


def test_nurture_schema_016_rebuild_keeps_rows_and_constraints(t):
    if t.backend != "sqlite":
        return
    srv = t.new_server(extra=SERVER_ARGS)
    tn, leads = _fill(t, srv, "n16")
    before = _snapshot(t, srv)
    states = {(r["state"], r["enrollment_id"] is None) for r in before["nurture_jobs"]}
    assert {("done", False), ("queued", False), ("done", True)} <= states, before["nurture_jobs"]
    assert {r["state"] for r in before["nurture_enrollments"]} == {"active", "completed", "exited"}, before
    assert len(before["lead_enrichments"]) == 3 and len(before["nurture_messages"]) == 1, before
    srv.stop()
    before = _snapshot(t, srv)  # as the server left it at shutdown

    r = reapply(t, srv, 16)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert '"applied":1' in r.stdout.replace(" ", ""), r.stdout
    assert _snapshot(t, srv) == before  # every row, id and value
    c = sqlite_db(srv)
    try:
        assert c.execute("PRAGMA foreign_key_check").fetchall() == []
        assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        for (name, sql) in c.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN "
                                     "('nurture_enrollments', 'nurture_jobs', 'lead_enrichments')"):
            assert " IN (" not in sql.upper(), (name, sql)
        idx = {n for (n,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"nurture_enrollments_once", "nurture_enrollments_lead", "nurture_jobs_due", "nurture_jobs_enrollment",
                "nurture_jobs_message", "sqlite_autoindex_nurture_jobs_1", "lead_enrichments_lead",
                "lead_enrichments_due"} <= idx, idx
        assert not [n for (n,) in c.execute("SELECT name FROM sqlite_master WHERE name LIKE 'm016%' "
                                             "OR name LIKE '%_new'")]
        c.execute("PRAGMA foreign_keys = ON")
        assert_checks_refuse(c, before, CHECKS, also_bad=[None])
        # the default, the unique idem_key, the partial unique index and the
        # one-of (enrollment, message) check are all still there
        job = before["nurture_jobs"][0]
        for sql, args, want in [
                ("INSERT INTO nurture_jobs (tenant_id, enrollment_id, step, due_at, idem_key, created_at, updated_at) "
                 "VALUES (?, ?, 9, 0, ?, 0, 0)", (job["tenant_id"], job["enrollment_id"], job["idem_key"]), "UNIQUE"),
                ("INSERT INTO nurture_jobs (tenant_id, step, due_at, idem_key, created_at, updated_at) "
                 "VALUES (?, 9, 0, 'neither', 0, 0)", (job["tenant_id"],), "CHECK"),
                ("INSERT INTO nurture_jobs (tenant_id, enrollment_id, step, due_at, idem_key, created_at, updated_at) "
                 "VALUES (?, 999999, 9, 0, 'nobody', 0, 0)", (job["tenant_id"],), "FOREIGN KEY"),
                ("INSERT INTO nurture_enrollments (tenant_id, sequence_id, lead_id, created_at, updated_at) "
                 "SELECT tenant_id, sequence_id, lead_id, 0, 0 FROM nurture_enrollments WHERE state = 'active'",
                 (), "UNIQUE"),
                ("INSERT INTO lead_enrichments (tenant_id, lead_id, due_at, created_at, updated_at) "
                 "VALUES (?, 999999, 0, 0, 0)", (job["tenant_id"],), "FOREIGN KEY")]:
            try:
                c.execute(sql, args)
            except sqlite3.IntegrityError as e:
                assert want in str(e), (sql, e)
            else:
                raise AssertionError("accepted: " + sql)
            c.rollback()
        c.execute("INSERT INTO nurture_jobs (tenant_id, enrollment_id, step, due_at, idem_key, created_at, updated_at) "
                  "VALUES (?, ?, 9, 0, 'defaulted', 0, 0)", (job["tenant_id"], job["enrollment_id"]))
        assert c.execute("SELECT state, attempts FROM nurture_jobs WHERE idem_key = 'defaulted'").fetchone() == \
            ("queued", 0)
        c.rollback()
    finally:
        c.close()

    # the server starts on the rebuilt store and goes on: a new lead is
    # enrolled and texted, and a one-off message is queued and sent
    srv.start()
    lead = tn.create_lead(first_name="After", phone="+14155557699", consent_sms=True, timezone="UTC")
    got = wait_for(lambda: nu._sms_to("+14155557699"), timeout=10 * t.slow)
    assert len(got) == 1, got
    tn.ok("POST", "/v1/leads/%d/messages" % leads[2]["id"], {"channel": "sms", "body": "after 016"}, want=(202,))
    assert wait_for(lambda: [m for m in nu._sms_to(leads[2]["phone"]) if m["Body"] == "after 016"],
                    timeout=10 * t.slow)
    rows = tn.db("SELECT state FROM nurture_enrollments WHERE tenant_id = {tenant} AND lead_id = %d" % lead["id"])
    assert rows == [{"state": "active"}], rows
    assert len(tn.db("SELECT id FROM lead_enrichments WHERE tenant_id = {tenant}")) == 4


def test_nurture_schema_016_refuses_a_table_changed_later(t):
    """016 writes the tables out as 014 left them: on a store where one
    already has a column or an index more (a later migration applied
    first), it refuses, naming itself, and changes nothing."""
    if t.backend != "sqlite":
        return
    srv = t.new_server(extra=SERVER_ARGS)
    _fill(t, srv, "n16r")
    srv.stop()
    assert_refuses_later_changes(
        t, srv, 16, "nurture_check_without_in", TABLES,
        ["ALTER TABLE nurture_jobs ADD COLUMN provider TEXT",
         "CREATE INDEX enrollments_later ON nurture_enrollments (sequence_id)",
         "CREATE INDEX enrichments_later ON lead_enrichments (lead_id)"],
        "016_nurture_check_without_in: nurture_enrollments, nurture_jobs or lead_enrichments differ from 014")

def test_nurture_schema_constraints_hold(t):
    """Both backends: the store refuses a job, enrolment or enrichment state
    outside its list (PostgreSQL keeps its IN checks)."""
    tn, _ = _fill(t, t.srv, "n16c")
    v = db_rows(t, t.srv, "SELECT max(version) AS v FROM schema_migrations")
    assert v[0]["v"] >= 16, v
    for table, col, _, bads in CHECKS:
        for sql in ["UPDATE %s SET %s = '%s' WHERE tenant_id = (SELECT id FROM tenants WHERE slug = '%s')"
                    % (table, col, bads[0], tn.slug)]:
            try:
                db_exec(t, t.srv, sql)
            except (AssertionError, sqlite3.IntegrityError) as e:
                assert "check" in str(e).lower(), e
            else:
                raise AssertionError("accepted: " + sql)
