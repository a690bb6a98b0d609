"""Shared helpers for the leads/import end-to-end tests: fresh tenants and
API keys made with the real CLI (`ehub tenant add`, `ehub key create`)
against the store a running server uses, a small JSON client bound to one
key, and read-only access to the store for what the API does not show (the
event log). Standard library only."""
import itertools
import json
import os
import sqlite3
import subprocess
import urllib.parse

_seq = itertools.count(1)


def store_args(t, srv):
    """--store/--data-dir for CLI commands that must act on srv's store."""
    data = os.path.join(srv.tmp, "data")
    if t.backend == "postgres":
        return ["--store", srv.store, "--data-dir", data]
    return ["--store", "sqlite:" + os.path.join(data, "ehub.db"), "--data-dir", data]


def run_cli(t, srv, *args, timeout=60):
    """Runs `ehub ARGS --store ...` on srv's store; returns the CompletedProcess."""
    return subprocess.run([t.binary] + list(args) + store_args(t, srv), capture_output=True, text=True,
                          timeout=timeout * t.slow)


def cli_json(t, srv, *args):
    r = run_cli(t, srv, *args)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def unique(prefix="t"):
    return "%s-%d-%d" % (prefix, os.getpid(), next(_seq))


class Client:
    """Talks JSON to srv with one API key."""

    def __init__(self, srv, key):
        self.srv = srv
        self.key = key

    def call(self, method, path, body=None, headers=None):
        """Returns (status, headers, parsed JSON or None)."""
        h = {"Authorization": "Bearer " + self.key} if self.key else {}
        h.update(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        st, hd, b = self.srv.request(method, path, body=body, headers=h, timeout=30)
        try:
            j = json.loads(b) if b else None
        except ValueError:
            j = {"_raw": b[:300]}
        return st, hd, j

    def api(self, method, path, body=None, headers=None):
        st, _, j = self.call(method, path, body, headers)
        return st, j

    def ok(self, method, path, body=None, want=(200, 201)):
        st, j = self.api(method, path, body)
        if isinstance(want, int):
            want = (want,)
        assert st in want, (method, path, body, st, j)
        return j


class Tenant(Client):
    """A fresh tenant on srv (default t.srv) with an admin key; keys for other
    roles are made on demand with role_client(role)."""

    def __init__(self, t, srv=None, prefix="lt", settings=None):
        self.t = t
        self.srv = srv = srv or t.srv
        self.slug = unique(prefix)
        cli_json(t, srv, "tenant", "add", self.slug, "E2E " + self.slug)
        Client.__init__(self, srv, self.make_key("admin"))
        self._roles = {"admin": self}
        if settings:
            st, j = self.api("PATCH", "/v1/settings", settings)
            assert st == 200, (st, j)

    def make_key(self, role, name="e2e"):
        return cli_json(self.t, self.srv, "key", "create", role, name, "--tenant", self.slug)["key"]

    def role_client(self, role):
        if role not in self._roles:
            self._roles[role] = Client(self.srv, self.make_key(role, role))
        return self._roles[role]

    # -- leads
    def create_lead(self, **fields):
        """POST /v1/leads; asserts 201 and returns the lead."""
        st, j = self.api("POST", "/v1/leads", fields)
        assert st == 201, (st, j, fields)
        return j

    def get_lead(self, lead_id):
        st, j = self.api("GET", "/v1/leads/%d" % lead_id)
        assert st == 200, (st, j)
        return j

    def list_page(self, path="/v1/leads", **params):
        q = urllib.parse.urlencode(params)
        st, j = self.api("GET", path + ("?" + q if q else ""))
        assert st == 200, (st, j, params)
        return j

    def list_all(self, path="/v1/leads", limit=500, **params):
        """Every item, following next_cursor."""
        out, cursor = [], None
        for _ in range(10000):
            p = dict(params, limit=limit)
            if cursor:
                p["cursor"] = cursor
            j = self.list_page(path, **p)
            out += j["items"]
            cursor = j["next_cursor"]
            if not cursor:
                return out
        raise AssertionError("pagination does not end")

    def create_agent(self, name, **fields):
        st, j = self.api("POST", "/v1/agents", dict(fields, name=name))
        assert st == 201, (st, j)
        return j

    def set_routing(self, mode):
        st, j = self.api("PATCH", "/v1/settings", {"routing_mode": mode})
        assert st == 200 and j["routing_mode"] == mode, (st, j)

    # -- the store itself, for what the API has no window on
    def db(self, sql):
        return db_rows(self.t, self.srv, sql.replace(
            "{tenant}", "(SELECT id FROM tenants WHERE slug = '%s')" % self.slug))

    def events(self, type_=None):
        """The tenant's event log as [{seq, type, payload(dict)}], in order."""
        where = " AND type = '%s'" % type_ if type_ else ""
        rows = self.db("SELECT seq, type, payload FROM events WHERE tenant_id = {tenant}%s ORDER BY seq" % where)
        for r in rows:
            if isinstance(r["payload"], str):
                r["payload"] = json.loads(r["payload"])
        return rows


def db_rows(t, srv, sql):
    """Rows of a read-only query as dicts, straight from srv's store (on
    PostgreSQL in the admin scope, tenant 0, that the RLS policies allow)."""
    if t.backend == "postgres":
        r = subprocess.run(["psql", srv.store, "-X", "-At", "-v", "ON_ERROR_STOP=1",
                            "-c", "SELECT set_config('ehub.tenant_id', '0', false)",
                            "-c", "SELECT coalesce(json_agg(r), '[]') FROM (%s) r" % sql],
                           capture_output=True, text=True, timeout=30 * t.slow)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.split("\n", 1)[1])
    c = sqlite3.connect("file:%s?mode=ro" % os.path.join(srv.tmp, "data", "ehub.db"), uri=True, timeout=10)
    try:
        c.row_factory = sqlite3.Row
        return [dict(r) for r in c.execute(sql).fetchall()]
    finally:
        c.close()
