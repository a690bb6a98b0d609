"""Every write is audited (issue 6): a lead PATCH, a template, a sequence
and an enrolment, an activity, a CSV import... each leaves one hash-chained
audit entry with actor, "METHOD pattern", the path ids, the client address
and the names of the fields (never a value), and `ehub audit verify` still
passes. Also --trusted-proxies (X-Forwarded-For believed only from a trusted
peer) and the login limits shared by two nodes through Redis. Standard
library only."""
import json
import subprocess
import os

import test_ml as _ml  # its server with two trained versions of a model
from tenants import Tenant, run_cli, store_args, unique

PASSWORD = "correct horse battery"


def _audit(ten):
    return list(reversed(ten.ok("GET", "/v1/audit?limit=500")["items"]))


def _verify(t, srv, slug):
    r = run_cli(t, srv, "audit", "verify", "--tenant", slug)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0 and out["ok"], (r.stdout, r.stderr)
    return out


def _add_user(t, srv, slug, role="admin"):
    email = "%s@%s.test" % (role, unique("au"))
    r = subprocess.run([t.binary, "user", "add", "--tenant", slug, "--email", email, "--role", role]
                       + store_args(t, srv), capture_output=True, text=True, timeout=60 * t.slow,
                       env=dict(os.environ, EHUB_USER_PASSWORD=PASSWORD))
    assert r.returncode == 0, (r.stdout, r.stderr)
    return email


def _login(srv, slug, email, headers=None, password=PASSWORD):
    st, hd, b = srv.request("POST", "/v1/auth/login", {"tenant": slug, "email": email, "password": password},
                            headers=headers)
    return st, hd, (json.loads(b) if b else None)


def test_audit_every_write_no_pii(t):
    ten = Tenant(t, prefix="aw")
    email, phone, first, last = "jane.doe.audit@example.org", "+14155550177", "Janeaudit", "Doeaudit"
    before = len(_audit(ten))
    lead = ten.create_lead(first_name=first, last_name=last, email=email, phone=phone, source="web")
    lid = lead["id"]
    ten.ok("PATCH", "/v1/leads/%d" % lid, {"stage": "contacted", "email": "jane.new.audit@example.org"})
    ten.ok("POST", "/v1/leads/%d/activities" % lid, {"channel": "note", "body": "Called %s at %s" % (first, phone)})
    tpl = ten.ok("POST", "/v1/templates", {"name": "hello", "channel": "sms",
                                          "body": "Hi {{first_name}}. Reply STOP to opt out"})
    seq = ten.ok("POST", "/v1/sequences", {"name": "s1", "steps": [{"type": "task", "text": "Call them"}]})
    ten.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": lid})
    # a refused write changes nothing and is not audited
    st, _ = ten.api("PATCH", "/v1/leads/%d" % lid, {"no_such_field": 1})
    assert st == 422, st
    # a CSV import: one entry per batch transaction, with counts only
    csv = ("first_name,last_name,email,phone\nImpone,Audit,imp.one.audit@example.org,+14155550178\n"
           "Imptwo,Audit,imp.two.audit@example.org,+14155550179\n").encode()
    st, _, rep = ten.call("POST", "/v1/leads/import", csv, headers={"Content-Type": "text/csv"})
    assert st == 200 and rep["imported"] == 2, (st, rep)
    # keys audit themselves (key.create): no second, generic entry
    k = ten.ok("POST", "/v1/keys", {"role": "viewer", "name": "r"})
    ten.ok("DELETE", "/v1/leads/%d" % lid, want=(200, 204))

    items = _audit(ten)[before:]
    acts = [(a["action"], a["target"]) for a in items]
    want = [("POST /v1/leads", "lead:%d" % lid),
            ("PATCH /v1/leads/{id}", "lead:%d" % lid),
            ("POST /v1/leads/{id}/activities", "lead:%d" % lid),
            ("POST /v1/templates", "template:%d" % tpl["id"]),
            ("POST /v1/sequences", "sequence:%d" % seq["id"]),
            ("POST /v1/sequences/{id}/enroll", "sequence:%d" % seq["id"]),
            ("POST /v1/leads/import", None),
            ("key.create", "key:%d" % k["id"]),
            ("DELETE /v1/leads/{id}", "lead:%d" % lid)]
    assert acts == want, acts
    by = {a["action"]: a for a in items}
    patch = by["PATCH /v1/leads/{id}"]
    assert patch["detail"] == {"fields": ["email", "stage"], "status": 200}, patch
    assert patch["actor"].startswith("key:") and patch["ip"] == "127.0.0.1", patch
    assert by["POST /v1/leads/import"]["detail"] == {"rows": 2, "created": 2, "status": 200}, by
    assert by["POST /v1/sequences/{id}/enroll"]["detail"]["fields"] == ["lead_id"]
    assert "POST /v1/keys" not in by
    text = json.dumps(items)
    for pii in (email, "jane.new.audit", phone, phone[1:], first, last, "Impone", "imp.one.audit", "+14155550178",
                "Reply STOP"):
        assert pii not in text, (pii, text)
    # the chain still holds, and every entry is in it
    out = _verify(t, t.srv, ten.slug)
    assert out["entries"] == before + len(want), out
    # a key put into a field name that is the person's address is counted, never written
    st, _ = ten.api("PATCH", "/v1/settings", {email: 1})
    assert st == 422
    ten.ok("POST", "/v1/leads", {"first_name": "X", "email": "x.audit@example.org"})
    assert email not in json.dumps(_audit(ten))


def test_audit_app_audit_fields_skip_pii_names(t):
    """A write whose body has a key that is an address: counted, not named."""
    ten = Tenant(t, prefix="aw2")
    tpl = ten.ok("POST", "/v1/templates", {"name": "x", "channel": "sms", "body": "Hi. Reply STOP to opt out"})
    # PATCH a template with an unknown, address-like key: refused (nothing written, nothing audited)
    st, _ = ten.api("PATCH", "/v1/templates/%d" % tpl["id"], {"someone@example.org": "x"})
    assert st in (400, 422), st
    items = _audit(ten)
    assert "someone@example.org" not in json.dumps(items)
    assert [a["action"] for a in items][-1] == "POST /v1/templates"


def test_audit_model_activation(t):
    """A model activation writes files, not rows: its entry follows in a
    transaction of its own, before the answer; a refused one leaves none."""
    prev = getattr(t, "_ml_swap", None)
    if prev:
        del t._ml_swap  # a server of our own: test_ml's keeps its state
    try:
        sw = _ml._swap(t)
        a = sw["admin"]
        st, j = a.call("POST", "/v1/models/churn/activate", {"version": 1})
        assert st == 200 and j["version"] == 1, (st, j)
        st, _ = a.call("POST", "/v1/models/churn/activate", {"version": 9})
        assert st == 404, st
        st, au = a.call("GET", "/v1/audit?limit=500")
        assert st == 200, (st, au)
        got = [(x["action"], x["target"], x["detail"]) for x in au["items"] if x["action"].startswith("POST ")]
        assert got == [("POST /v1/models/{name}/activate", "model:churn",
                        {"fields": ["version"], "version": 1, "status": 200})], got
        slug = [x for x in au["items"] if x["action"] == "tenant.create"][0]["target"]
        _verify(t, sw["srv"], slug)
    finally:
        if prev:
            t._ml_swap = prev
        elif hasattr(t, "_ml_swap"):
            del t._ml_swap


def test_audit_trusted_proxies(t):
    # 127.0.0.1 is not a trusted proxy here: X-Forwarded-For is ignored
    srv = t.new_server(extra=("--trusted-proxies", "10.0.0.0/8", "--login-limit-ip", "3/m",
                              "--login-limit-account", "1000/m"), name="audit-untrusted")
    ten = Tenant(t, srv=srv, prefix="tp")
    email = _add_user(t, srv, ten.slug)
    codes = [_login(srv, ten.slug, email, headers={"X-Forwarded-For": "203.0.113.%d" % i})[0] for i in range(5)]
    assert codes == [200, 200, 200, 429, 429], codes
    ips = {a["ip"] for a in _audit(ten) if a["action"] == "auth.login"}
    assert ips == {"127.0.0.1"}, ips
    lines = [l for l in srv.log_json() if l.get("msg") == "http.request" and l.get("path") == "/v1/auth/login"]
    assert lines and {l.get("ip") for l in lines} == {"127.0.0.1"}, lines[:2]

    # 127.0.0.1 trusted (and 10/8 behind it): the rightmost untrusted hop is the client
    srv2 = t.new_server(extra=("--trusted-proxies", "127.0.0.1/32, 10.0.0.0/8", "--login-limit-ip", "2/m",
                               "--login-limit-account", "1000/m"), name="audit-trusted")
    ten2 = Tenant(t, srv=srv2, prefix="tp2")
    email2 = _add_user(t, srv2, ten2.slug)
    # the client put "1.1.1.1" in front itself; our proxies appended 198.51.100.7 and 10.0.0.2
    xff = {"X-Forwarded-For": "1.1.1.1, 198.51.100.7, 10.0.0.2"}
    assert [_login(srv2, ten2.slug, email2, headers=xff)[0] for _ in range(3)] == [200, 200, 429]
    # another client address behind the same proxy has its own bucket
    st, _, j = _login(srv2, ten2.slug, email2, headers={"X-Forwarded-For": "198.51.100.8"})
    assert st == 200, (st, j)
    # a write through the proxy is audited with the client's address
    c = ten2.ok("POST", "/v1/agents", {"name": "Proxy Agent", "email": "pa@example.org"})
    st, _, _ = ten2.call("PATCH", "/v1/agents/%d" % c["id"], {"name": "P2"},
                         headers={"X-Forwarded-For": "192.0.2.44"})
    assert st == 200, st
    items = _audit(ten2)
    assert {a["ip"] for a in items if a["action"] == "auth.login"} == {"198.51.100.7", "198.51.100.8"}, items
    assert [a["ip"] for a in items if a["action"] == "PATCH /v1/agents/{id}"] == ["192.0.2.44"], items
    lines = [l for l in srv2.log_json() if l.get("msg") == "http.request" and l.get("route") == "/v1/agents/{id}"]
    assert lines and lines[-1].get("ip") == "192.0.2.44", lines[-1:]
    _verify(t, srv2, ten2.slug)


def test_audit_bad_trusted_proxies_refused(t):
    srv = t.new_server(extra=("--trusted-proxies", "10.0.0.0/33",), start=False, name="audit-badproxy")
    p = subprocess.run(srv.args(), capture_output=True, text=True, timeout=30 * t.slow)
    assert p.returncode != 0 and "trusted-proxies" in (p.stdout + p.stderr), (p.returncode, p.stdout[-500:])


def test_audit_login_limit_shared_across_nodes(t):
    if not (t.redis and t.backend == "postgres"):
        print("     (shared login limits need --redis and a postgres --store; run with scripts/services.sh)")
        return
    extra = ["--bus", t.redis, "--login-limit-account", "4/h", "--login-limit-ip", "1000/h"]
    a = t.new_server(extra=extra, name="login-node-a")
    b = t.new_server(extra=extra, name="login-node-b")
    ten = Tenant(t, srv=a, prefix="ll")
    email = _add_user(t, a, ten.slug)
    codes = [_login((a, b)[i % 2], ten.slug, email, password="wrong password %d" % i)[0] for i in range(8)]
    # 4 attempts in all, over both nodes; then even the right password waits
    assert codes == [401] * 4 + [429] * 4, codes
    assert _login(b, ten.slug, email)[0] == 429 and _login(a, ten.slug, email)[0] == 429
    other = _add_user(t, a, ten.slug)
    assert _login(b, ten.slug, other)[0] == 200
