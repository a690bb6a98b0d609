"""Migration 015 (SQLite): the CHECK constraints of leads, activities,
opportunities and consent_log written as `col = 'a' OR ...` instead of
`col IN (...)` (an IN list of three or more constants costs SQLite an
ephemeral b-tree per inserted row). The tables are rebuilt inside the
migration's transaction with foreign keys on, so this checks, on a store
holding GHL-ingested rows of every kind: that re-applying 015 keeps every row
and id and every reference whole (the deferred foreign key check at COMMIT),
that the rebuilt tables still refuse what the old constraints refused and
accept what they accepted, and that a reference left dangling behind ehub's
back is carried over as found. On PostgreSQL, 015 changes nothing and the constraints
still refuse bad values.
Standard library + cryptography (as test_ghl)."""
import sqlite3

from rebuilds import assert_checks_refuse, assert_refuses_later_changes, reapply, snapshot, sqlite_db
from test_auth import db_exec
from test_ghl import Tenant, contact, ev
from tenants import db_rows

TABLES = {
    "leads": "SELECT * FROM leads ORDER BY id",
    "activities": "SELECT * FROM activities ORDER BY id",
    "opportunities": "SELECT * FROM opportunities ORDER BY id",
    "consent_log": "SELECT * FROM consent_log ORDER BY id",
    "lead_scores": "SELECT * FROM lead_scores ORDER BY id",
}

# (table, column, a value the constraint accepts, values it refuses)
CHECKS = [
    ("leads", "status", "abandoned", ["bogus", "Open", ""]),
    ("activities", "channel", "appointment", ["fax", "SMS"]),
    ("activities", "direction", "none", ["sideways"]),
    ("opportunities", "status", "lost", ["maybe"]),
    ("consent_log", "channel", "all", ["pigeon"]),
    ("consent_log", "status", "withdrawn", ["perhaps"]),
]


def _ingest(t, srv):
    """A tenant with a lead of every row kind the webhook path writes."""
    tn = Tenant(t, srv=srv, prefix="m15")
    c = contact(dndSettings={"SMS": {"status": "inactive"}, "Email": {"status": "active"}})
    tn.accept(ev("ContactCreate", **c))
    tn.accept(ev("InboundMessage", contactId=c["id"], messageType="SMS", body="hi", messageId="m1"))
    tn.accept(ev("NoteCreate", contactId=c["id"], id="n1", body="note"))
    tn.accept(ev("OpportunityCreate", id="o1", contactId=c["id"], name="Deal", status="open", monetaryValue=5))
    tn.accept(ev("OpportunityStatusUpdate", id="o1", contactId=c["id"], status="won"))
    tn.accept(ev("ContactCreate", **contact()))
    return tn


def _snapshot(t, srv):
    return snapshot(t, srv, TABLES)


def test_ingest_schema_015_rebuild_keeps_rows_and_constraints(t):
    if t.backend != "sqlite":
        return
    srv = t.new_server()
    tn = _ingest(t, srv)
    lead = tn.leads()[0]
    before = _snapshot(t, srv)
    assert len(before["leads"]) == 2 and len(before["activities"]) == 2, before
    assert len(before["opportunities"]) == 1 and before["opportunities"][0]["status"] == "won", before
    assert before["leads"][-1]["status"] == "won" or before["leads"][0]["status"] == "won", before["leads"]
    assert len(before["consent_log"]) >= 1 and len(before["lead_scores"]) >= 2, before
    srv.stop()

    r = reapply(t, srv, 15)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert '"applied":1' in r.stdout.replace(" ", ""), r.stdout
    after = _snapshot(t, srv)
    assert after == before  # every row, id and value
    c = sqlite_db(srv)
    try:
        assert c.execute("PRAGMA foreign_key_check").fetchall() == []
        assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        for (name, sql) in c.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN "
                                     "('leads', 'activities', 'opportunities', 'consent_log')"):
            assert " IN (" not in sql.upper(), (name, sql)
        idx = {n for (n,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"leads_ghl", "leads_email", "leads_phone", "leads_agent", "leads_list", "activities_lead",
                "opportunities_ghl", "opportunities_lead", "consent_log_lead"} <= idx, idx
        assert not [n for n in idx if n.startswith("m015_")], idx
        c.execute("PRAGMA foreign_keys = ON")
        assert_checks_refuse(c, before, CHECKS)
        # the references into the rebuilt tables are still enforced
        try:
            c.execute("INSERT INTO activities (tenant_id, lead_id, channel, occurred_at, created_at) "
                      "VALUES (1, 999999, 'sms', 0, 0)")
        except sqlite3.IntegrityError as e:
            assert "FOREIGN KEY" in str(e), e
        else:
            raise AssertionError("an activity of no lead was accepted")
        c.rollback()
    finally:
        c.close()

    # the server starts on the rebuilt store, and webhooks and the API go on
    srv.start()
    tn.accept(ev("ContactCreate", **contact()))
    tn.accept(ev("InboundMessage", contactId=lead["ghl_contact_id"], messageType="Email", body="x", messageId="m2"))
    st, j = tn.api("PATCH", "/v1/leads/%d" % lead["id"], {"status": "lost"})
    assert st == 200 and j["status"] == "lost", (st, j)
    st, j = tn.api("PATCH", "/v1/leads/%d" % lead["id"], {"status": "bogus"})
    assert st == 422 and j["error"]["fields"] == {"status": "not one of the allowed values"}, (st, j)
    assert len(tn.leads()) == 3


def test_ingest_schema_015_keeps_a_dangling_reference_as_found(t):
    """A reference made behind ehub's back (foreign keys off) to a lead that
    never existed: the rebuild neither drops nor repairs it; it is carried
    over as found and PRAGMA foreign_key_check names the same row after as
    before (the deferred check at COMMIT covers the references the rebuild
    itself could break: those into the rows it drops and puts back)."""
    if t.backend != "sqlite":
        return
    srv = t.new_server()
    _ingest(t, srv)
    srv.stop()
    c = sqlite_db(srv)  # foreign keys off on this connection: the orphan goes in
    try:
        c.execute("INSERT INTO lead_scores (tenant_id, lead_id, kind, score, reasons, created_at) "
                  "SELECT tenant_id, 999999, kind, score, reasons, created_at FROM lead_scores LIMIT 1")
        c.commit()
        orphans = c.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        c.close()
    assert len(orphans) == 1 and orphans[0][0] == "lead_scores" and orphans[0][2] == "leads", orphans
    before = _snapshot(t, srv)
    r = reapply(t, srv, 15)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert _snapshot(t, srv) == before
    c = sqlite_db(srv)
    try:
        assert c.execute("PRAGMA foreign_key_check").fetchall() == orphans
    finally:
        c.close()


def test_ingest_schema_015_refuses_a_table_changed_later(t):
    """015 writes the tables out as 014 left them: on a store where one
    already has a column or an index more (a later migration applied
    first), it refuses, naming itself, and changes nothing."""
    if t.backend != "sqlite":
        return
    srv = t.new_server()
    _ingest(t, srv)
    srv.stop()
    assert_refuses_later_changes(
        t, srv, 15, "check_without_in", TABLES,
        ["ALTER TABLE leads ADD COLUMN nickname TEXT",
         "CREATE INDEX leads_later ON leads (tenant_id, source)",
         "CREATE INDEX consent_later ON consent_log (source)"],
        "015_check_without_in: leads, activities, opportunities or consent_log differ from 014")

def test_ingest_schema_constraints_hold(t):
    """Both backends: the store refuses a lead status, activity channel and
    consent channel outside their lists (PostgreSQL keeps its IN checks)."""
    tn = Tenant(t, prefix="m15c")
    tn.accept(ev("ContactCreate", **contact(dndSettings={"SMS": {"status": "inactive"}})))
    rows = tn.db("SELECT id FROM leads WHERE tenant_id = {tenant}")
    assert len(rows) == 1
    assert tn.db("SELECT count(*) AS n FROM consent_log WHERE tenant_id = {tenant}")[0]["n"] >= 1
    v = db_rows(t, t.srv, "SELECT max(version) AS v FROM schema_migrations")
    assert v[0]["v"] >= 15, v
    for sql in ["UPDATE leads SET status = 'bogus' WHERE id = %d" % rows[0]["id"],
                "UPDATE consent_log SET channel = 'pigeon' WHERE lead_id = %d" % rows[0]["id"]]:
        try:
            db_exec(t, t.srv, sql)
        except (AssertionError, sqlite3.IntegrityError) as e:
            assert "check" in str(e).lower(), e
        else:
            raise AssertionError("accepted: " + sql)
