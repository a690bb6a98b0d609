"""Users, login and tokens, API keys, rate limits and the audit trail,
against the real binary: every test talks HTTP to `ehub serve` or runs the
`ehub` CLI on the same store (SQLite file or PostgreSQL)."""
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tenants import Client, Tenant, cli_json, run_cli, store_args, unique

# Generous login limits for the shared server: every test logs in from
# 127.0.0.1. The limits themselves are tested on servers of their own.
SERVER_ARGS = ("--login-limit-account", "1000/m", "--login-limit-ip", "10000/m")
PASSWORD = "correct horse battery"


def add_user(t, srv, slug, role, email=None, password=PASSWORD, extra=()):
    email = email or "%s@%s.test" % (role, unique("u"))
    r = subprocess.run([t.binary, "user", "add", "--tenant", slug, "--email", email, "--role", role]
                       + list(extra) + store_args(t, srv), capture_output=True, text=True, timeout=60 * t.slow,
                       env=dict(os.environ, EHUB_USER_PASSWORD=password))
    assert r.returncode == 0, (r.stdout, r.stderr)
    u = json.loads(r.stdout.strip().splitlines()[-1])
    assert u["email"] == email.lower() and u["role"] == role, u
    return email.lower()


def login(srv, slug, email, password=PASSWORD, want=200):
    st, h, b = srv.request("POST", "/v1/auth/login", {"tenant": slug, "email": email, "password": password})
    j = json.loads(b) if b else None
    assert st == want, (st, j)
    return j if st == 200 else (st, h, j)


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def call(srv, method, path, tok=None, body=None, headers=None):
    h = dict(headers or {})
    if tok:
        h.update(bearer(tok))
    st, hd, b = srv.request(method, path, body=body, headers=h)
    try:
        j = json.loads(b) if b else None
    except ValueError:
        j = None
    return st, hd, j


def b64u(x):
    return base64.urlsafe_b64encode(x).rstrip(b"=").decode()


def server_key(srv):
    """The server's signing key (first line of DATA_DIR/jwt.keys)."""
    with open(os.path.join(srv.tmp, "data", "jwt.keys")) as f:
        line = [l for l in f.read().splitlines() if l.strip() and not l.startswith("#")][0].strip()
    sk = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(line))
    pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sk, pk, hashlib.sha256(pk).hexdigest()[:16]


def forge(header, claims, sign):
    si = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims).encode())
    return si + "." + b64u(sign(si.encode()))


def admin_claims(tenant_id, slug, exp_in=600, role="admin"):
    now = int(time.time())
    return {"iss": "ehub", "sub": "1", "tid": tenant_id, "tenant": slug, "role": role, "agent": None,
            "iat": now - 5, "exp": now + exp_in}


def db_exec(t, srv, sql):
    """A write straight to the store, behind ehub's back (tamper tests)."""
    if t.backend == "postgres":
        r = subprocess.run(["psql", srv.store, "-X", "-At", "-v", "ON_ERROR_STOP=1",
                            "-c", "SELECT set_config('ehub.tenant_id', '0', false)", "-c", sql],
                           capture_output=True, text=True, timeout=30 * t.slow)
        assert r.returncode == 0, r.stderr
        return
    c = sqlite3.connect(os.path.join(srv.tmp, "data", "ehub.db"), timeout=10)
    try:
        c.execute(sql)
        c.commit()
    finally:
        c.close()


# ---- users, passwords, login ----

def test_auth_user_cli_and_login(t):
    ten = Tenant(t, prefix="au")
    email = add_user(t, t.srv, ten.slug, "admin", email="Boss@%s.test" % ten.slug)
    j = login(t.srv, ten.slug, email.upper())  # e-mail is case-insensitive
    assert j["token_type"] == "Bearer" and j["expires_in"] == 900, j
    assert j["refresh_token"].startswith("ehr_") and len(j["refresh_token"]) == 68, j
    assert j["user"]["email"] == email and j["user"]["tenant"] == ten.slug and "password_hash" not in j["user"], j
    hdr, payload, sig = j["access_token"].split(".")
    h = json.loads(base64.urlsafe_b64decode(hdr + "=="))
    c = json.loads(base64.urlsafe_b64decode(payload + "=="))
    assert h["alg"] == "EdDSA" and len(h["kid"]) == 16, h
    assert c["iss"] == "ehub" and c["tenant"] == ten.slug and c["role"] == "admin" and c["exp"] - c["iat"] == 900, c
    st, hd, body = call(t.srv, "GET", "/v1/leads", j["access_token"])
    assert st == 200, (st, body)
    assert "ratelimit-limit" not in hd, hd  # request limits are off by default
    # The same answer whatever was wrong: tenant, e-mail or password.
    for slug, em, pw in ((ten.slug, email, "wrong password!"), (ten.slug, "nobody@x.test", PASSWORD),
                         ("no-such-tenant", email, PASSWORD)):
        st, _, e = login(t.srv, slug, em, pw, want=401)
        assert e["error"]["code"] == "invalid_credentials", e
    # Password sources: file (must be private), stdin; never argv.
    pwf = os.path.join(t.srv.tmp, "pw.txt")
    with open(pwf, "w") as f:
        f.write("file password 123\n")
    os.chmod(pwf, 0o644)
    r = run_cli(t, t.srv, "user", "add", "--tenant", ten.slug, "--email", "f@x.test", "--role", "viewer",
                "--password-file", pwf)
    assert r.returncode != 0 and "group or others" in r.stderr, (r.returncode, r.stderr)
    os.chmod(pwf, 0o600)
    r = run_cli(t, t.srv, "user", "add", "--tenant", ten.slug, "--email", "f@x.test", "--role", "viewer",
                "--password-file", pwf)
    assert r.returncode == 0, r.stderr
    login(t.srv, ten.slug, "f@x.test", "file password 123")
    r = subprocess.run([t.binary, "user", "add", "--tenant", ten.slug, "--email", "s@x.test", "--role", "agent"]
                       + store_args(t, t.srv), input="stdin password 1\n", capture_output=True, text=True,
                       timeout=60 * t.slow, env={k: v for k, v in os.environ.items() if k != "EHUB_USER_PASSWORD"})
    assert r.returncode == 0, r.stderr
    login(t.srv, ten.slug, "s@x.test", "stdin password 1")
    r = run_cli(t, t.srv, "user", "add", "--tenant", ten.slug, "--email", "p@x.test", "--role", "agent",
                "--password", "on the command line")
    assert r.returncode == 2 and "command line" in r.stderr, (r.returncode, r.stderr)
    # A duplicate, a bad role, a short password: refused, nothing created.
    r = subprocess.run([t.binary, "user", "add", "--tenant", ten.slug, "--email", email, "--role", "agent"]
                       + store_args(t, t.srv), capture_output=True, text=True, timeout=60 * t.slow,
                       env=dict(os.environ, EHUB_USER_PASSWORD=PASSWORD))
    assert r.returncode == 1 and "already exists" in r.stderr, r.stderr
    r = subprocess.run([t.binary, "user", "add", "--tenant", ten.slug, "--email", "q@x.test", "--role", "root"]
                       + store_args(t, t.srv), capture_output=True, text=True, env=dict(os.environ, EHUB_USER_PASSWORD=PASSWORD))
    assert r.returncode == 2, r.stderr
    r = subprocess.run([t.binary, "user", "add", "--tenant", ten.slug, "--email", "q@x.test", "--role", "agent"]
                       + store_args(t, t.srv), capture_output=True, text=True, env=dict(os.environ, EHUB_USER_PASSWORD="short"))
    assert r.returncode == 2 and "8 characters" in r.stderr, r.stderr
    st, _, users = call(t.srv, "GET", "/v1/users", j["access_token"])
    assert st == 200 and sorted(u["email"] for u in users["items"]) == sorted([email, "f@x.test", "s@x.test"]), users
    # The password is nowhere in the logs.
    assert not any(PASSWORD in l or "file password" in l for l in t.srv.lines)


def test_auth_login_bad_input(t):
    ten = Tenant(t, prefix="ab")
    cases = [b"[]", b'{"tenant":"x","email":"a@b.c"}', b'{"tenant":"x","email":"a@b.c","password":"p","extra":1}',
             b'{"tenant":1,"email":"a@b.c","password":"p"}', b'{"tenant":"x","email":"not-an-email","password":"p"}',
             json.dumps({"tenant": "x", "email": "a@b.c", "password": "p" * 1025}).encode()]
    for body in cases:
        st, _, j = call(t.srv, "POST", "/v1/auth/login", body=body, headers={"Content-Type": "application/json"})
        assert st == 422 and j["error"]["code"] == "validation_failed", (body, st, j)
    st, _, j = call(t.srv, "POST", "/v1/auth/login", body=b"{", headers={"Content-Type": "application/json"})
    assert st == 400, (st, j)
    st, _, j = call(t.srv, "POST", "/v1/auth/login", body=b"tenant=x", headers={"Content-Type": "text/plain"})
    assert st == 415, (st, j)
    for path in ("/v1/auth/refresh", "/v1/auth/logout"):
        st, _, j = call(t.srv, "POST", path, body={"refresh_token": "ehr_zz"})
        assert st == 401 and j["error"]["code"] == "invalid_token", (path, st, j)
        st, _, j = call(t.srv, "POST", path, body={"token": "x"})
        assert st == 422, (path, st, j)
    assert ten.db("SELECT count(*) AS n FROM refresh_tokens WHERE tenant_id = {tenant}")[0]["n"] == 0


def test_auth_roles_on_route_classes(t):
    ten = Tenant(t, prefix="ar")
    agent = ten.create_agent("Ann", email="ann@x.test")
    tok = {r: login(t.srv, ten.slug, add_user(t, t.srv, ten.slug, r))["access_token"]
           for r in ("viewer", "agent", "analyst", "manager", "admin")}
    lead = ten.create_lead(first_name="L", email="lead@x.test")
    # (method, path, body, roles that may)
    checks = [
        ("GET", "/v1/leads", None, {"viewer", "agent", "analyst", "manager", "admin"}),
        ("GET", "/v1/leads/export.csv", None, {"viewer", "analyst", "manager", "admin"}),
        ("POST", "/v1/leads", {"first_name": "X"}, {"agent", "manager", "admin"}),
        ("PATCH", "/v1/agents/%d" % agent["id"], {"capacity": 10}, {"manager", "admin"}),
        ("GET", "/v1/settings", None, {"viewer", "agent", "analyst", "manager", "admin"}),
        ("PATCH", "/v1/settings", {"routing_mode": "round_robin"}, {"admin"}),
        ("GET", "/v1/users", None, {"admin"}),
        ("GET", "/v1/keys", None, {"admin"}),
        ("GET", "/v1/audit", None, {"admin"}),
        ("DELETE", "/v1/leads/%d" % lead["id"], None, {"manager", "admin"}),
    ]
    for method, path, body, may in checks:
        for role in ("viewer", "agent", "analyst", "manager", "admin"):
            if method == "DELETE" and role == "admin":
                continue  # the manager already deleted it
            st, _, j = call(t.srv, method, path, tok[role], body)
            if role in may:
                assert st in (200, 201, 204), (method, path, role, st, j)
            else:
                assert st == 403 and j["error"]["code"] == "forbidden", (method, path, role, st, j)
    # An API key with a non-admin role cannot reach the admin routes either.
    mgr_key = ten.role_client("manager")
    assert mgr_key.api("GET", "/v1/users")[0] == 403
    # A user linked to an agent carries it in its token.
    email = add_user(t, t.srv, ten.slug, "agent", extra=("--agent-id", str(agent["id"])))
    j = login(t.srv, ten.slug, email)
    c = json.loads(base64.urlsafe_b64decode(j["access_token"].split(".")[1] + "=="))
    assert c["agent"] == agent["id"] and j["user"]["agent_id"] == agent["id"], (c, j["user"])


def test_auth_tokens_of_one_tenant_stay_there(t):
    a, b = Tenant(t, prefix="ta"), Tenant(t, prefix="tb")
    tok = login(t.srv, a.slug, add_user(t, t.srv, a.slug, "admin"))["access_token"]
    lb = b.create_lead(first_name="B", email="b@x.test")
    st, _, j = call(t.srv, "GET", "/v1/leads/%d" % lb["id"], tok)
    assert st == 404, (st, j)
    ub = add_user(t, t.srv, b.slug, "viewer")
    uid = [u for u in b.ok("GET", "/v1/users")["items"] if u["email"] == ub][0]["id"]
    for method in ("GET", "PATCH", "DELETE"):
        st, _, j = call(t.srv, method, "/v1/users/%d" % uid, tok, {"role": "admin"} if method == "PATCH" else None)
        assert st == 404, (method, st, j)
    assert b.ok("GET", "/v1/users/%d" % uid)["role"] == "viewer"


# ---- tokens: expiry, refresh, revocation ----

def test_auth_token_expiry_and_refresh(t):
    # A token's times are whole seconds: with a TTL of 1 s one issued at
    # x.999 expires 1 ms later. 2 s leaves a fresh token at least 1 s.
    srv = t.new_server(extra=("--jwt-ttl", "2s", "--jwt-leeway", "0") + SERVER_ARGS, name="auth-ttl")
    ten = Tenant(t, srv=srv, prefix="ae")
    email = add_user(t, srv, ten.slug, "viewer")
    j = login(srv, ten.slug, email)
    assert j["expires_in"] == 2
    assert call(srv, "GET", "/v1/leads", j["access_token"])[0] == 200
    time.sleep(3.2)
    st, hd, e = call(srv, "GET", "/v1/leads", j["access_token"])
    assert st == 401 and "expired" in e["error"]["message"] and "www-authenticate" in hd, (st, e)
    st, _, r = call(srv, "POST", "/v1/auth/refresh", body={"refresh_token": j["refresh_token"]})
    assert st == 200 and r["refresh_token"] != j["refresh_token"], (st, r)
    assert call(srv, "GET", "/v1/leads", r["access_token"])[0] == 200


def test_auth_refresh_rotation_and_reuse(t):
    ten = Tenant(t, prefix="rr")
    email = add_user(t, t.srv, ten.slug, "manager")
    r1 = login(t.srv, ten.slug, email)["refresh_token"]

    def refresh(tok, want=200):
        st, _, j = call(t.srv, "POST", "/v1/auth/refresh", body={"refresh_token": tok})
        assert st == want, (st, j)
        return j

    j2 = refresh(r1)
    assert j2["user"]["role"] == "manager" and call(t.srv, "GET", "/v1/leads", j2["access_token"])[0] == 200
    r3 = refresh(j2["refresh_token"])["refresh_token"]
    # r1 again: it was copied. The whole session goes, r3 included.
    e = refresh(r1, want=401)
    assert e["error"]["code"] == "invalid_token" and "already used" in e["error"]["message"], e
    refresh(r3, want=401)
    rows = ten.db("SELECT count(*) AS n, sum(CASE WHEN revoked_at IS NULL THEN 1 ELSE 0 END) AS live "
                  "FROM refresh_tokens WHERE tenant_id = {tenant}")
    assert rows[0]["n"] == 3 and (rows[0]["live"] or 0) == 0, rows
    chain = ten.db("SELECT id, replaced_by FROM refresh_tokens WHERE tenant_id = {tenant} ORDER BY id")
    assert chain[0]["replaced_by"] == chain[1]["id"] and chain[1]["replaced_by"] == chain[2]["id"], chain
    actions = [a["action"] for a in ten.ok("GET", "/v1/audit")["items"]]
    assert "auth.refresh_reused" in actions, actions
    # Another login is a new session, unaffected.
    j = login(t.srv, ten.slug, email)
    refresh(j["refresh_token"])
    # Logout ends a session; logging out twice is fine.
    j = login(t.srv, ten.slug, email)
    for _ in range(2):
        st, _, b = call(t.srv, "POST", "/v1/auth/logout", body={"refresh_token": j["refresh_token"]})
        assert st == 204, (st, b)
    refresh(j["refresh_token"], want=401)


def test_auth_disable_and_password_change_end_sessions(t):
    ten = Tenant(t, prefix="ds")
    email = add_user(t, t.srv, ten.slug, "agent")
    j = login(t.srv, ten.slug, email)
    uid = j["user"]["id"]
    u = ten.ok("PATCH", "/v1/users/%d" % uid, {"disabled": True})
    assert u["disabled"] is True
    st, _, e = call(t.srv, "POST", "/v1/auth/refresh", body={"refresh_token": j["refresh_token"]})
    assert st == 401, (st, e)
    login(t.srv, ten.slug, email, want=401)
    # Documented: an access token already out lives until it expires.
    assert call(t.srv, "GET", "/v1/leads", j["access_token"])[0] == 200
    ten.ok("PATCH", "/v1/users/%d" % uid, {"disabled": False})
    j = login(t.srv, ten.slug, email)
    ten.ok("PATCH", "/v1/users/%d" % uid, {"password": "a brand new password"})
    assert call(t.srv, "POST", "/v1/auth/refresh", body={"refresh_token": j["refresh_token"]})[0] == 401
    login(t.srv, ten.slug, email, want=401)
    login(t.srv, ten.slug, email, "a brand new password")


def test_auth_login_rate_limit(t):
    srv = t.new_server(extra=("--login-limit-account", "3/m", "--login-limit-ip", "5/m"), name="auth-login-limit")
    ten = Tenant(t, srv=srv, prefix="lr")
    email = add_user(t, srv, ten.slug, "viewer")
    for _ in range(3):
        login(srv, ten.slug, email, "wrong password!", want=401)
    st, hd, e = login(srv, ten.slug, email, want=429)  # even the right password, now
    assert e["error"]["code"] == "rate_limited" and int(hd["retry-after"]) >= 1, (hd, e)
    assert 1 <= int(hd["retry-after"]) <= 20 and hd["ratelimit-limit"] == "3" and hd["ratelimit-remaining"] == "0", hd
    # Another account from the same address: allowed until the address's own limit.
    other = add_user(t, srv, ten.slug, "viewer")
    login(srv, ten.slug, other)
    login(srv, ten.slug, other)
    st, hd, e = login(srv, ten.slug, other, want=429)
    assert hd["ratelimit-limit"] == "5", hd
    # Refused attempts are audited only when they ran: 3 failures, 2 logins.
    acts = [a["action"] for a in ten.ok("GET", "/v1/audit?limit=500")["items"]]
    assert acts.count("auth.login_failed") == 3 and acts.count("auth.login") == 2, acts


def test_auth_request_rate_limits(t):
    srv = t.new_server(extra=("--rate-limit-principal", "4/m", "--rate-limit-tenant", "6/m"), name="auth-rate")
    ten = Tenant(t, srv=srv, prefix="rl")  # the key used for the tenant set-up calls counts too
    k1, k2 = ten.make_key("viewer"), ten.make_key("viewer")
    seen = []
    for _ in range(4):
        st, hd, _ = call(srv, "GET", "/v1/leads", k1)
        assert st == 200, st
        seen.append(int(hd["ratelimit-remaining"]))
    assert seen == sorted(seen, reverse=True) and seen[-1] == 0, seen
    st, hd, e = call(srv, "GET", "/v1/leads", k1)
    assert st == 429 and e["error"]["code"] == "rate_limited" and int(hd["retry-after"]) >= 1, (st, hd, e)
    assert "ratelimit-reset" in hd
    # k2 has its own bucket, but the tenant's (6) runs out after two more.
    assert call(srv, "GET", "/v1/leads", k2)[0] == 200
    assert call(srv, "GET", "/v1/leads", k2)[0] == 200
    st, hd, e = call(srv, "GET", "/v1/leads", k2)
    assert st == 429 and "tenant" in e["error"]["message"], (st, e)
    # Another tenant is not affected.
    other = Tenant(t, srv=srv, prefix="rl2")
    assert call(srv, "GET", "/v1/leads", other.key)[0] == 200


# ---- API keys and users over HTTP ----

def test_auth_keys_api(t):
    ten = Tenant(t, prefix="ka")
    st, hd, k = ten.call("POST", "/v1/keys", {"role": "analyst", "name": "reporting"})
    assert st == 201 and k["key"].startswith("ehk_") and k["prefix"] == k["key"][:12], (st, k)
    assert hd.get("location") == "/v1/keys/%d" % k["id"] and hd.get("cache-control") == "no-store", hd
    new = Client(t.srv, k["key"])
    assert new.api("GET", "/v1/leads")[0] == 200
    items = ten.ok("GET", "/v1/keys")["items"]
    mine = [i for i in items if i["id"] == k["id"]][0]
    assert "key" not in mine and "hash" not in mine and mine["role"] == "analyst" and mine["name"] == "reporting"
    assert mine["last_used_at"] is not None and mine["revoked_at"] is None, mine
    assert new.api("GET", "/v1/keys")[0] == 403
    for bad in ({"role": "root"}, {"role": "viewer", "name": ""}, {"role": "viewer", "x": 1}, {"name": "n"}):
        st, j = ten.api("POST", "/v1/keys", bad)
        assert st == 422, (bad, st, j)
    assert len(ten.ok("GET", "/v1/keys")["items"]) == len(items)
    st, _ = ten.api("DELETE", "/v1/keys/%d" % k["id"])
    assert st == 204
    st, j = new.api("GET", "/v1/leads")  # at once, not after the cache's 30 s
    assert st == 401, (st, j)
    assert ten.api("DELETE", "/v1/keys/%d" % k["id"])[0] == 404
    other = Tenant(t, prefix="kb")
    assert other.api("DELETE", "/v1/keys/%d" % items[-1]["id"])[0] == 404  # another tenant's key
    acts = [(a["action"], a["target"]) for a in ten.ok("GET", "/v1/audit")["items"]]
    assert ("key.create", "key:%d" % k["id"]) in acts and ("key.revoke", "key:%d" % k["id"]) in acts, acts


def test_auth_users_api(t):
    ten = Tenant(t, prefix="ua")
    st, hd, u = ten.call("POST", "/v1/users", {"email": "Ann@X.test", "role": "agent", "password": "a long password"})
    assert st == 201 and u["email"] == "ann@x.test" and u["role"] == "agent" and hd["location"] == "/v1/users/%d" % u["id"]
    assert "password" not in json.dumps(u)
    j = login(t.srv, ten.slug, "ann@x.test", "a long password")
    assert j["user"]["id"] == u["id"]
    st, e = ten.api("POST", "/v1/users", {"email": "ann@x.test", "role": "viewer", "password": "another password"})
    assert st == 409, (st, e)
    bad = [{"email": "b@x.test", "role": "agent", "password": "short"},
           {"email": "b@x.test", "role": "god", "password": "long enough pw"},
           {"email": "nope", "role": "agent", "password": "long enough pw"},
           {"email": "b@x.test", "role": "agent", "password": "long enough pw", "admin": True},
           {"email": "b@x.test", "role": "agent", "password": "long enough pw", "agent_id": 999999},
           {"email": "b@x.test", "role": "agent"}]
    for b in bad:
        st, e = ten.api("POST", "/v1/users", b)
        assert st == 422 and e["error"]["code"] == "validation_failed", (b, st, e)
    for i in range(3):
        ten.ok("POST", "/v1/users", {"email": "p%d@x.test" % i, "role": "viewer", "password": "long enough pw"})
    p1 = ten.ok("GET", "/v1/users?limit=2")
    assert len(p1["items"]) == 2 and p1["next_cursor"], p1
    p2 = ten.ok("GET", "/v1/users?limit=2&cursor=" + p1["next_cursor"])
    assert [x["email"] for x in p1["items"] + p2["items"]] == ["ann@x.test", "p0@x.test", "p1@x.test", "p2@x.test"]
    assert ten.api("GET", "/v1/users?limit=0")[0] == 400
    u2 = ten.ok("PATCH", "/v1/users/%d" % u["id"], {"role": "manager", "email": "ann2@x.test"})
    assert u2["role"] == "manager" and u2["email"] == "ann2@x.test", u2
    st, e = ten.api("PATCH", "/v1/users/%d" % u["id"], {"email": "p0@x.test"})
    assert st == 409, (st, e)
    st, e = ten.api("PATCH", "/v1/users/%d" % u["id"], {"role": "boss"})
    assert st == 422 and ten.ok("GET", "/v1/users/%d" % u["id"])["role"] == "manager"
    assert ten.api("DELETE", "/v1/users/%d" % u["id"])[0] == 204
    assert ten.api("GET", "/v1/users/%d" % u["id"])[0] == 404
    assert call(t.srv, "POST", "/v1/auth/refresh", body={"refresh_token": j["refresh_token"]})[0] == 401
    login(t.srv, ten.slug, "ann2@x.test", "a long password", want=401)
    acts = [a["action"] for a in ten.ok("GET", "/v1/audit?limit=500")["items"]]
    for a in ("user.create", "user.update", "user.delete", "auth.login"):
        assert a in acts, (a, acts)


# ---- audit trail ----

def test_auth_audit_trail_and_tamper_detection(t):
    srv = t.new_server(extra=SERVER_ARGS, name="auth-audit")  # its own store: tampering stays here
    ten = Tenant(t, srv=srv, prefix="at")
    email = add_user(t, srv, ten.slug, "admin")
    login(srv, ten.slug, email, "bad password!!", want=401)
    login(srv, ten.slug, email)
    ten.ok("POST", "/v1/keys", {"role": "viewer", "name": "x"})
    items = ten.ok("GET", "/v1/audit?limit=500")["items"]
    acts = [a["action"] for a in reversed(items)]
    assert acts == ["tenant.create", "key.create", "user.create", "auth.login_failed", "auth.login", "key.create"], acts
    assert [a["seq"] for a in items] == list(range(len(items), 0, -1))
    failed = [a for a in items if a["action"] == "auth.login_failed"][0]
    assert failed["ip"] == "127.0.0.1" and failed["detail"]["reason"] == "wrong password", failed
    assert all(len(a["hash"]) == 64 for a in items)
    page = ten.ok("GET", "/v1/audit?limit=2")
    assert len(page["items"]) == 2 and page["next_cursor"] == str(page["items"][1]["seq"])

    def verify():
        r = run_cli(t, srv, "audit", "verify", "--tenant", ten.slug)
        return r.returncode, json.loads(r.stdout.strip().splitlines()[-1]), r.stderr

    rc, out, _ = verify()
    assert rc == 0 and out["ok"] and out["entries"] == 6, out
    tid = "(SELECT id FROM tenants WHERE slug = '%s')" % ten.slug
    # Edit one entry: caught at that entry.
    db_exec(t, srv, "UPDATE audit_log SET detail = '{\"reason\":\"nothing\"}' WHERE tenant_id = %s AND seq = 4" % tid)
    rc, out, err = verify()
    assert rc == 1 and out["ok"] is False and out["bad_seq"] == 4 and "changed" in out["reason"], (out, err)
    # Recompute that entry's hash too: the next entry no longer chains to it.
    db_exec(t, srv, "UPDATE audit_log SET hash = 'f' || substr(hash, 2) WHERE tenant_id = %s AND seq = 4" % tid)
    rc, out, _ = verify()
    assert rc == 1 and out["bad_seq"] == 4, out
    # Delete from the middle, and from the end.
    db_exec(t, srv, "DELETE FROM audit_log WHERE tenant_id = %s AND seq = 4" % tid)
    rc, out, _ = verify()
    assert rc == 1 and out["bad_seq"] == 4 and "missing" in out["reason"], out
    other = Tenant(t, srv=srv, prefix="at2")
    other.ok("POST", "/v1/keys", {"role": "viewer"})
    r = run_cli(t, srv, "audit", "verify", "--tenant", other.slug)
    assert r.returncode == 0, r.stdout
    db_exec(t, srv, "DELETE FROM audit_log WHERE tenant_id = (SELECT id FROM tenants WHERE slug = '%s') "
                    "AND seq = 3" % other.slug)
    r = run_cli(t, srv, "audit", "verify", "--tenant", other.slug)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 1 and out["bad_seq"] == 3 and "end" in out["reason"], out
    # Without --tenant every tenant is checked; one broken one fails the run.
    r = run_cli(t, srv, "audit", "verify")
    lines = [json.loads(l) for l in r.stdout.strip().splitlines()]
    assert r.returncode == 1 and {l["tenant"] for l in lines} >= {ten.slug, other.slug}, r.stdout


# ---- every route needs credentials ----

PUBLIC = {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/docs"),
          ("POST", "/v1/webhooks/ghl/{tenant}"), ("POST", "/v1/webhooks/twilio/{tenant}"),
          ("POST", "/v1/webhooks/sendgrid/{tenant}"), ("POST", "/v1/auth/login"), ("POST", "/v1/auth/refresh"),
          ("POST", "/v1/auth/logout")}


def test_auth_every_route_needs_credentials(t):
    ten = Tenant(t, prefix="en")
    tid = ten.db("SELECT id FROM tenants WHERE slug = '%s'" % ten.slug)[0]["id"]
    st, _, doc = call(t.srv, "GET", "/openapi.json")
    assert st == 200
    routes = [(m.upper(), p, op) for p, item in doc["paths"].items() for m, op in item.items()]
    public = {(m, p) for m, p, op in routes if op.get("security") == []}
    assert public == PUBLIC, "public routes changed: %r" % (public ^ PUBLIC)
    sk, pk, kid = server_key(t.srv)
    good = forge({"alg": "EdDSA", "typ": "JWT", "kid": kid}, admin_claims(tid, ten.slug), sk.sign)
    assert call(t.srv, "GET", "/v1/leads", good)[0] == 200  # the forging is right: only the defects below count
    bad_tokens = {
        "garbage": "not.a.jwt",
        "random": b64u(os.urandom(20)) + "." + b64u(os.urandom(40)) + "." + b64u(os.urandom(64)),
        "expired": forge({"alg": "EdDSA", "kid": kid}, admin_claims(tid, ten.slug, exp_in=-120), sk.sign),
        "alg_none": forge({"alg": "none", "kid": kid}, admin_claims(tid, ten.slug), lambda m: b""),
        "hs256_with_public_key": forge({"alg": "HS256", "kid": kid}, admin_claims(tid, ten.slug),
                                       lambda m: hmac.new(pk, m, hashlib.sha256).digest()),
        "other_key": forge({"alg": "EdDSA", "kid": kid}, admin_claims(tid, ten.slug),
                           ed25519.Ed25519PrivateKey.generate().sign),
        "wrong_issuer": forge({"alg": "EdDSA", "kid": kid}, dict(admin_claims(tid, ten.slug), iss="evil"), sk.sign),
        "bad_role": forge({"alg": "EdDSA", "kid": kid}, admin_claims(tid, ten.slug, role="root"), sk.sign),
        "tampered": good[:-8] + ("AAAAAAAA" if not good.endswith("AAAAAAAA") else "BBBBBBBB"),
    }
    checked = 0
    for method, path, op in routes:
        if (method, path) in PUBLIC:
            continue
        url = path.replace("{id}", "1").replace("{name}", "lead_scoring").replace("{tenant}", ten.slug)
        assert "{" not in url, "a path parameter this test does not know: " + path
        body = b"{}" if method in ("POST", "PATCH", "PUT") else None
        hdrs = {"Content-Type": "application/json"} if body else {}
        st, hd, j = call(t.srv, method, url, body=body, headers=hdrs)
        assert st == 401 and j["error"]["code"] == "unauthenticated", (method, path, "no credentials", st, j)
        assert hd.get("www-authenticate", "").startswith("Bearer"), (method, path, hd)
        for name, tok in bad_tokens.items():
            st, _, j = call(t.srv, method, url, tok, body=body, headers=hdrs)
            assert st == 401, (method, path, name, st, j)
        st, _, j = call(t.srv, method, url, body=body, headers=dict(hdrs, **{"X-API-Key": "ehk_" + "0" * 40}))
        assert st == 401, (method, path, "unknown key", st, j)
        checked += 1
    assert checked >= 30, checked


def test_auth_jwt_keys_rotation_and_files(t):
    srv = t.new_server(extra=SERVER_ARGS, name="auth-rotate")
    ten = Tenant(t, srv=srv, prefix="jr")
    email = add_user(t, srv, ten.slug, "viewer")
    old = login(srv, ten.slug, email)
    keys = os.path.join(srv.tmp, "data", "jwt.keys")
    assert os.stat(keys).st_mode & 0o777 == 0o600
    r = run_cli(t, srv, "jwt", "rotate", "--keep", "2")
    assert r.returncode == 0, r.stderr
    rot = json.loads(r.stdout)
    assert rot["keys"] == 2 and os.stat(keys).st_mode & 0o777 == 0o600, rot
    srv.stop()
    srv.start()
    # Tokens signed by the previous key still verify; new ones carry the new kid.
    assert call(srv, "GET", "/v1/leads", old["access_token"])[0] == 200
    new = login(srv, ten.slug, email)
    assert json.loads(base64.urlsafe_b64decode(new["access_token"].split(".")[0] + "=="))["kid"] == rot["kid"]
    # Rotating past --keep drops the oldest key: its tokens stop working.
    assert run_cli(t, srv, "jwt", "rotate", "--keep", "2").returncode == 0
    srv.stop()
    srv.start()
    assert call(srv, "GET", "/v1/leads", old["access_token"])[0] == 401
    assert call(srv, "GET", "/v1/leads", new["access_token"])[0] == 200
    # --jwt-key-file: must be private; a PEM key works.
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    kf = os.path.join(srv.tmp, "key.pem")
    with open(kf, "wb") as f:
        f.write(pem)
    os.chmod(kf, 0o640)
    r = subprocess.run([t.binary, "serve", "--port", "0", "--jwt-key-file", kf] + store_args(t, srv),
                       capture_output=True, text=True, timeout=30 * t.slow)
    assert r.returncode == 1 and "group or others" in r.stderr, (r.returncode, r.stderr[-500:])
    os.chmod(kf, 0o600)
    s2 = t.new_server(extra=("--jwt-key-file", kf) + SERVER_ARGS, store=srv.store, name="auth-pem")
    if t.backend == "sqlite":
        return  # s2 has its own SQLite file; the rest needs the shared store
    j = login(s2, ten.slug, email)
    assert call(s2, "GET", "/v1/leads", j["access_token"])[0] == 200
    assert call(srv, "GET", "/v1/leads", j["access_token"])[0] == 401  # a key srv does not hold
