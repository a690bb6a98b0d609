"""Provider webhooks in the tamper-evident audit trail (issue 6): signed
GoHighLevel webhooks and a Twilio message go in, a periodic job appends
webhooks.checkpoint entries covering their webhook_inbox rows, and
`ehub audit verify` recomputes each checkpoint from the rows. Then the store
is edited behind ehub's back (sqlite3 / psql): an edited body, an emptied
body, an edited type, a deleted row and a forged row inside a covered range
each fail verification naming the checkpoint and the row; an erasure and a
retention run that empty covered bodies do not. On PostgreSQL two nodes run
the checkpoints at once and their ranges neither overlap nor leave gaps.
Standard library + cryptography (as test_ghl)."""
import hashlib
import threading
import json
import time
import uuid

import test_privacy as _pv
from test_auth import db_exec
from test_ghl import Tenant as GhlTenant, contact, ev
from tenants import db_rows, run_cli

TID = "(SELECT id FROM tenants WHERE slug = '%s')"


def _bh(body):
    """body_hash: BLAKE2b-256 of the body as received."""
    return hashlib.blake2b(body.encode(), digest_size=32).hexdigest()


def _verify(t, srv, slug):
    r = run_cli(t, srv, "audit", "verify", "--tenant", slug)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return r.returncode, out


def _ok(t, srv, slug):
    rc, out = _verify(t, srv, slug)
    assert rc == 0 and out["ok"] is True, out
    return out


def _bad(t, srv, slug, row, words):
    rc, out = _verify(t, srv, slug)
    assert rc == 1 and out["ok"] is False, out
    assert out.get("bad_inbox_row") == row, (row, out)
    assert words in out["reason"] and "webhooks.checkpoint %d" % out["bad_seq"] in out["reason"], (words, out)
    return out


def _checkpoints(tn):
    st, j = tn.api("GET", "/v1/audit?limit=500")
    assert st == 200, j
    return [a for a in reversed(j["items"]) if a["action"] == "webhooks.checkpoint"]


def _inbox(t, srv, slug):
    return db_rows(t, srv, "SELECT id, provider, webhook_id, type, body, received_at, body_hash FROM webhook_inbox "
                           "WHERE tenant_id = %s ORDER BY id" % (TID % slug))


def _wait_covered(t, tn, timeout=30):
    """Until the checkpoints cover every inbox row of the tenant."""
    end = time.time() + timeout * t.slow
    while True:
        rows = _inbox(t, tn.srv, tn.slug)
        cps = _checkpoints(tn)
        covered = sum(c["detail"]["count"] for c in cps)
        if rows and covered == len(rows) and cps[-1]["detail"]["last_id"] == rows[-1]["id"]:
            return rows, cps
        assert time.time() < end, ("not covered", covered, len(rows), cps[-1:] if cps else None)
        time.sleep(0.2)


def _metric(srv, name):
    st, _, b = srv.request("GET", "/metrics")
    for line in b.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _sq(s):
    return "NULL" if s is None else "'" + str(s).replace("'", "''") + "'"


def _insert_row(t, srv, slug, r):
    db_exec(t, srv, "INSERT INTO webhook_inbox (id, tenant_id, provider, webhook_id, type, body, received_at, "
                    "body_hash) VALUES (%d, %s, %s, %s, %s, %s, %d, %s)"
            % (r["id"], TID % slug, _sq(r["provider"]), _sq(r["webhook_id"]), _sq(r["type"]), _sq(r["body"]),
               r["received_at"], _sq(r["body_hash"])))


def test_audit_webhooks_checkpoint_verify_tamper(t):
    # Checkpoints off at first: one webhook is aged by hand before any
    # checkpoint covers it (the retention run below needs an old body; once
    # covered, moving received_at is tampering).
    srv = t.new_server(extra=["--audit-checkpoint", "0"], name="whaudit")
    tn = GhlTenant(t, srv=srv, prefix="wha")
    other = GhlTenant(t, srv=srv, prefix="whb")  # interleaved ids: room for a forged row inside a range
    contacts = []
    for i in range(4):
        c = contact(email="wh.%s@example.com" % uuid.uuid4().hex[:8])
        tn.accept(c)
        other.accept(contact(email="o.%s@example.com" % uuid.uuid4().hex[:8]))
        contacts.append(c)
    tn.accept(ev("NoteCreate", contactId=contacts[0]["id"], body="call back about the loft", id="n_" + uuid.uuid4().hex[:6]))
    tn.accept(ev("NoteCreate", contactId=contacts[3]["id"], body="a webhook from long ago", id="n_" + uuid.uuid4().hex[:6]))
    st, j = tn.api("PATCH", "/v1/nurture/settings", {"twilio_account_sid": _pv.TWILIO_SID,
                                                     "twilio_auth_token": _pv.TWILIO_TOKEN,
                                                     "twilio_from": "+14155550000"})
    assert st == 200, j
    _pv._twilio(tn, "SM" + uuid.uuid4().hex, "+12125550123", "is the loft still available?")
    day = 86400000
    db_exec(t, srv, "UPDATE webhook_inbox SET received_at = received_at - %d WHERE tenant_id = %s AND type = "
                    "'NoteCreate' AND body LIKE '%%long ago%%'" % (10 * day, TID % tn.slug))
    assert not _checkpoints(tn)
    rc, out = _verify(t, srv, tn.slug)
    assert rc == 0 and out["checkpoints"] == 0 and out["inbox_covered_to"] == 0, out

    srv.stop()
    srv.extra = ["--audit-checkpoint", "200ms"]
    srv.start()
    rows, cps = _wait_covered(t, tn)
    assert len(rows) == 7 and {r["provider"] for r in rows} == {"ghl", "twilio"}, rows
    assert all(r["body_hash"] == _bh(r["body"]) for r in rows), rows
    d = cps[0]["detail"]
    assert set(d) == {"first_id", "last_id", "count", "runs", "digest"} and cps[0]["actor"] == "scheduler", cps[0]
    assert d["first_id"] == rows[0]["id"] and len(d["digest"]) == 64, d
    text = json.dumps(cps)
    assert not any(c["email"] in text or c["id"] in text for c in contacts), "personal data in a checkpoint"
    out = _ok(t, srv, tn.slug)
    assert out["checkpoints"] == len(cps) and out["inbox_rows"] == 7 and out["inbox_covered_to"] == rows[-1]["id"], out
    _ok(t, srv, other.slug)
    assert _metric(srv, "ehub_audit_checkpoints_total") >= 2 and _metric(srv, "ehub_audit_checkpoint_rows_total") >= 11

    # -- legitimate changes: an erasure and a retention run empty covered bodies
    lead = tn.lead_by_contact(contacts[0]["id"])
    st, j = tn.api("DELETE", "/v1/contacts/%d" % lead["id"])
    assert st == 200 and j["rows"]["webhook_inbox"] == 2, j
    st, au = tn.api("GET", "/v1/audit?limit=500")
    er = [a for a in au["items"] if a["action"] == "contact.erase"][0]
    emptied = sorted(r["id"] for r in _inbox(t, srv, tn.slug) if r["body"] == "{}" and r["provider"] == "ghl")
    assert sorted(er["detail"]["inbox_ids"]) == emptied and len(emptied) == 2, (er, emptied)
    _ok(t, srv, tn.slug)
    st, j = tn.api("PUT", "/v1/privacy/retention", {"inbox_days": 7})
    assert st == 200, j
    st, j = tn.api("POST", "/v1/privacy/retention/run", {"dry_run": False})
    assert st == 200 and j["inbox"]["count"] == 1, j
    aged = [r for r in _inbox(t, srv, tn.slug) if r["received_at"] < int(time.time() * 1000) - 7 * day]
    assert len(aged) == 1 and aged[0]["body"] == "{}", aged
    _ok(t, srv, tn.slug)

    # -- more webhooks: the next checkpoint starts right after the last one
    tn.accept(contact(email="late.%s@example.com" % uuid.uuid4().hex[:8]))
    other.accept(contact(email="o2.%s@example.com" % uuid.uuid4().hex[:8]))
    tn.accept(contact(email="later.%s@example.com" % uuid.uuid4().hex[:8]))
    rows, cps = _wait_covered(t, tn)
    assert len(cps) >= 2 and len(rows) == 9
    for a, b in zip(cps, cps[1:]):
        assert b["detail"]["first_id"] > a["detail"]["last_id"], (a, b)
    _wait_covered(t, other)
    out = _ok(t, srv, tn.slug)
    assert out["inbox_rows"] == 9, out
    srv.stop()  # nothing runs while the store is edited

    # -- tampering, each undone before the next
    live = [r for r in rows if r["body"] != "{}" and r["provider"] == "ghl"]
    r1, r2 = live[0], live[1]
    q = "UPDATE webhook_inbox SET %s WHERE id = %d"
    db_exec(t, srv, q % ("body = %s" % _sq(r1["body"].replace("Jane", "Jone")), r1["id"]))
    _bad(t, srv, tn.slug, r1["id"], "was edited (its body does not match")
    db_exec(t, srv, q % ("body = %s" % _sq(r1["body"]), r1["id"]))
    _ok(t, srv, tn.slug)

    db_exec(t, srv, q % ("body = '{}'", r2["id"]))
    _bad(t, srv, tn.slug, r2["id"], "was emptied, and no contact.erase or retention.run")
    db_exec(t, srv, q % ("body = %s" % _sq(r2["body"]), r2["id"]))

    # a forger who also rewrites body_hash: the digest catches it
    forged = r1["body"].replace("Jane", "Jone")
    db_exec(t, srv, q % ("body = %s, body_hash = '%s'" % (_sq(forged), _bh(forged)),
                         r1["id"]))
    rc, out = _verify(t, srv, tn.slug)
    assert rc == 1 and "digest differs" in out["reason"] and out["bad_seq"] > 0, out
    db_exec(t, srv, q % ("body = %s, body_hash = '%s'" % (_sq(r1["body"]), r1["body_hash"]), r1["id"]))
    db_exec(t, srv, q % ("type = 'ContactDelete'", r2["id"]))
    rc, out = _verify(t, srv, tn.slug)
    assert rc == 1 and "digest differs" in out["reason"], out
    db_exec(t, srv, q % ("type = %s" % _sq(r2["type"]), r2["id"]))
    _ok(t, srv, tn.slug)

    db_exec(t, srv, "DELETE FROM webhook_inbox WHERE id = %d" % r2["id"])
    _bad(t, srv, tn.slug, r2["id"], "inbox row %d was deleted" % r2["id"])
    _insert_row(t, srv, tn.slug, r2)
    _ok(t, srv, tn.slug)

    # a forged row, hash and all, with an id inside tn's covered range (taken
    # from the other tenant's row there, which that tenant's check reports)
    orows = _inbox(t, srv, other.slug)
    gap = [o for o in orows if rows[0]["id"] < o["id"] < rows[-1]["id"]][0]
    db_exec(t, srv, "DELETE FROM webhook_inbox WHERE id = %d" % gap["id"])
    body = json.dumps(ev("ContactCreate", id="c_forged", email="forged@example.com"))
    _insert_row(t, srv, tn.slug, {"id": gap["id"], "provider": "ghl", "webhook_id": str(uuid.uuid4()),
                                  "type": "ContactCreate", "body": body, "received_at": gap["received_at"],
                                  "body_hash": _bh(body)})
    _bad(t, srv, tn.slug, gap["id"], "inbox row %d was inserted inside the range" % gap["id"])
    _bad(t, srv, other.slug, gap["id"], "was deleted")
    db_exec(t, srv, "DELETE FROM webhook_inbox WHERE id = %d" % gap["id"])
    _insert_row(t, srv, other.slug, gap)
    _ok(t, srv, tn.slug)
    _ok(t, srv, other.slug)

    # the tenant's mark moved past the last checkpoint: rows would go uncovered
    db_exec(t, srv, "UPDATE tenants SET inbox_checkpoint_id = inbox_checkpoint_id + 1000 WHERE slug = '%s'" % tn.slug)
    rc, out = _verify(t, srv, tn.slug)
    assert rc == 1 and "inbox_checkpoint_id" in out["reason"], out


def test_audit_webhooks_two_nodes_no_overlap(t):
    # Two nodes checkpoint the same tenants at once (PostgreSQL: one shared
    # store; on SQLite one node, which still checks ranges and counts).
    srvs = [t.new_server(extra=["--audit-checkpoint", "100ms"], name="whaudit-n1")]
    if t.backend == "postgres":
        srvs.append(t.new_server(extra=["--audit-checkpoint", "100ms"], name="whaudit-n2"))
    tn = GhlTenant(t, srv=srvs[0], prefix="whn")
    n = 40
    for i in range(n):
        tn.srv = srvs[i % len(srvs)]
        tn.accept(contact(email="n%d.%s@example.com" % (i, uuid.uuid4().hex[:6])))
        if i % 10 == 9:
            time.sleep(0.3)
    tn.srv = srvs[0]
    rows, cps = _wait_covered(t, tn, timeout=40)
    assert len(rows) == n
    ids = []
    for c in cps:
        for a, b in c["detail"]["runs"]:
            ids += list(range(a, b + 1))
    assert ids == [r["id"] for r in rows], "each row covered exactly once, in order"
    out = _ok(t, srvs[0], tn.slug)
    assert out["inbox_rows"] == n and out["checkpoints"] == len(cps), out
    if len(srvs) == 2:
        assert all(_metric(s, "ehub_audit_checkpoint_rows_total") >= 0 for s in srvs)
        total = sum(_metric(s, "ehub_audit_checkpoint_rows_total") for s in srvs)
        assert total >= n, total


def test_audit_webhooks_pg_long_transaction_defers(t):
    """PostgreSQL: ids are taken before commit, so a transaction holding one
    for long could commit a row into a range a checkpoint already covers.
    While any transaction has held an xid for half the 5 s margin, the
    checkpoint waits. (SQLite commits in id order: nothing to wait for.)"""
    if t.backend != "postgres":
        return
    import subprocess
    srv = t.new_server(extra=["--audit-checkpoint", "200ms"], name="whaudit-long")
    tn = GhlTenant(t, srv=srv, prefix="whl")
    hold = subprocess.Popen(["psql", srv.store, "-X", "-q", "-v", "ON_ERROR_STOP=1",
                             "-c", "BEGIN; SELECT txid_current(); SELECT pg_sleep(9); COMMIT;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    time.sleep(0.5)
    for i in range(3):
        tn.accept(contact(email="long%d.%s@example.com" % (i, uuid.uuid4().hex[:6])))
    time.sleep(max(0.0, t0 + 7.5 - time.time()))
    assert hold.poll() is None, "the holding transaction ended early"
    assert not _checkpoints(tn), "a checkpoint was written while a long transaction was open"
    assert hold.wait(30) == 0, hold.stderr.read()
    rows, cps = _wait_covered(t, tn, timeout=20)
    assert len(rows) == 3 and time.time() - t0 >= 9, (rows, time.time() - t0)
    _ok(t, srv, tn.slug)


def _verify_full(t, srv, slug):
    r = run_cli(t, srv, "audit", "verify", "--tenant", slug)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


def test_audit_webhooks_uncovered_count_cli_checkpoint_and_shutdown_pass(t):
    # The periodic job far away (1 h): only the CLI and the shutdown pass
    # can cover anything here.
    srv = t.new_server(extra=["--audit-checkpoint", "1h"], name="whshut")
    tn = GhlTenant(t, srv=srv, prefix="whs")
    for _ in range(3):
        tn.accept(contact(email="s.%s@example.com" % uuid.uuid4().hex[:8]))
    # verify says how much is not covered yet, and that is not a failure
    out, err = _verify_full(t, srv, tn.slug)
    assert out["ok"] is True and out["checkpoints"] == 0 and out["inbox_uncovered"] == 3, out
    assert "3 webhook inbox row(s) after id 0 not yet covered" in err, err
    # `ehub audit checkpoint` covers them now (on PostgreSQL too: no margin)
    r = run_cli(t, srv, "audit", "checkpoint", "--tenant", tn.slug)
    assert r.returncode == 0, (r.stdout, r.stderr)
    cp = json.loads(r.stdout.strip().splitlines()[-1])
    rows = _inbox(t, srv, tn.slug)
    assert cp == {"tenant": tn.slug, "entries": 1, "rows": 3, "covered_to": rows[-1]["id"]}, (cp, rows)
    out, err = _verify_full(t, srv, tn.slug)
    assert out["checkpoints"] == 1 and out["inbox_rows"] == 3 and out["inbox_uncovered"] == 0, out
    assert "not yet covered" not in err, err
    r = run_cli(t, srv, "audit", "checkpoint", "--tenant", tn.slug)  # nothing new: nothing written
    assert r.returncode == 0 and json.loads(r.stdout)["entries"] == 0, r.stdout
    assert run_cli(t, srv, "audit", "frobnicate").returncode == 2

    # webhooks in flight when SIGTERM comes: every one answered 200 is
    # stored before the answer, and the last pass at shutdown covers it
    results = []

    def post():
        st, j = tn.send(contact(email="f.%s@example.com" % uuid.uuid4().hex[:8]))
        results.append(st)

    for _ in range(2):
        tn.accept(contact(email="g.%s@example.com" % uuid.uuid4().hex[:8]))
    out, _ = _verify_full(t, srv, tn.slug)
    assert out["inbox_uncovered"] == 2, out
    threads = [threading.Thread(target=lambda: _swallow(post)) for _ in range(4)]
    for th in threads:
        th.start()
    time.sleep(0.02)
    assert srv.stop() == 0
    for th in threads:
        th.join(30)
    done = [l for l in srv.log_json() if l.get("msg") == "audit checkpoint at shutdown"]
    assert len(done) == 1 and done[0]["entries"] >= 1 and done[0]["rows"] >= 2 + results.count(200), (done, results)
    rows = _inbox(t, srv, tn.slug)
    assert len(rows) >= 5 + results.count(200), (len(rows), results)
    out, err = _verify_full(t, srv, tn.slug)
    assert out["ok"] is True and out["inbox_uncovered"] == 0 and out["inbox_covered_to"] == rows[-1]["id"], out
    assert out["inbox_rows"] == len(rows) and out["checkpoints"] == 2, out
    cps = [json.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"]
           for r in db_rows(t, srv, "SELECT detail FROM audit_log WHERE tenant_id = %s AND action = "
                                    "'webhooks.checkpoint' ORDER BY seq" % (TID % tn.slug))]
    assert cps[-1]["first_id"] == cps[0]["last_id"] + 1 and cps[-1]["count"] == len(rows) - 3, cps


def _swallow(fn):
    try:
        fn()
    except Exception:  # refused or cut by the shutdown: not stored, not counted
        pass


def test_audit_webhooks_no_shutdown_pass_when_checkpoints_off(t):
    srv = t.new_server(extra=["--audit-checkpoint", "0"], name="whoff")
    tn = GhlTenant(t, srv=srv, prefix="who")
    tn.accept(contact(email="n.%s@example.com" % uuid.uuid4().hex[:8]))
    assert srv.stop() == 0
    assert not [l for l in srv.log_json() if l.get("msg") == "audit checkpoint at shutdown"]
    out, err = _verify_full(t, srv, tn.slug)
    assert out["checkpoints"] == 0 and out["inbox_uncovered"] == 1, out
