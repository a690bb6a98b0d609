"""Readiness, metrics, the OpenAPI description and /docs, the CLI."""
import json
import os
import re
import subprocess


def test_ready(t):
    st, h, j = t.srv.get_json("/ready")
    assert st == 200, j
    assert j["status"] == "ready"
    assert j["storage"]["backend"] == t.backend
    assert j["storage"]["reachable"] is True
    assert j["storage"]["schema_version"] == j["storage"]["schema_latest"] >= 1


def test_metrics_prometheus(t):
    t.srv.request("GET", "/health")
    t.srv.request("GET", "/ready")
    st, h, b = t.srv.request("GET", "/metrics")
    assert st == 200
    assert h["content-type"].startswith("text/plain")
    text = b.decode()
    for name in ["ehub_http_requests_total", "ehub_http_request_duration_seconds_bucket",
                 "ehub_http_inflight_requests", "ehub_ws_connections", "ehub_threadpool_queue_depth",
                 "ehub_store_query_duration_seconds", "process_resident_memory_bytes", "process_open_fds"]:
        assert name in text, name
    assert re.search(r'ehub_http_requests_total\{route="/health",method="GET",status="200"\} \d+', text)
    rss = float(re.search(r"^process_resident_memory_bytes (\S+)$", text, re.M).group(1))
    assert rss > 1e6
    # every sample line parses as name{labels} value
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert re.match(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [-+0-9.eEInfa]+$', line), line


def test_openapi_lists_every_route(t):
    st, h, doc = t.srv.get_json("/openapi.json")
    assert st == 200 and doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for p in ["/health", "/ready", "/metrics", "/openapi.json", "/docs"]:
        assert p in paths and "get" in paths[p], p
    # debug routes are hidden from the description
    assert "/debug/echo" not in paths


def test_every_registered_route_is_documented(t):
    # Each route the server answers (not 404) must be in the description, and
    # each documented route must answer (not 404).
    st, h, doc = t.srv.get_json("/openapi.json")
    for path, item in doc["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method in item:
            st2, _, _ = t.srv.request(method.upper(), concrete, body=b"{}" if method in ("post", "put", "patch") else None,
                                      headers={"Content-Type": "application/json"})
            assert st2 != 404 or "{" in path, (method, path, st2)
            assert st2 != 405, (method, path)


def test_docs_page(t):
    st, h, b = t.srv.request("GET", "/docs")
    assert st == 200 and h["content-type"].startswith("text/html")
    assert b"/openapi.json" in b


def test_cli_help_lists_options(t):
    out = subprocess.run([t.binary, "--help"], capture_output=True, text=True).stdout
    for opt in ["--host", "--port", "--data-dir", "--store", "--bus", "--demo", "--log-level", "EHUB_PORT"]:
        assert opt in out, opt
    out = subprocess.run([t.binary, "serve", "--help"], capture_output=True, text=True).stdout
    assert "--port" in out and "8080" in out


def test_cli_bad_flag(t):
    r = subprocess.run([t.binary, "serve", "--port", "notaport"], capture_output=True, text=True)
    assert r.returncode == 2 and "port" in r.stderr
    r = subprocess.run([t.binary, "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2


def test_cli_migrate_and_tenant(t):
    if t.backend == "postgres":
        store = t.store
    else:
        store = "sqlite:" + os.path.join(t.srv.tmp, "cli.db")
    r = subprocess.run([t.binary, "migrate", "--store", store], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout.strip().splitlines()[-1])
    assert j["schema_version"] == j["schema_latest"] >= 1
    r2 = subprocess.run([t.binary, "migrate", "--store", store], capture_output=True, text=True)
    assert json.loads(r2.stdout.strip().splitlines()[-1])["applied"] == 0
    slug = "cli-%d" % os.getpid()
    r = subprocess.run([t.binary, "tenant", "add", slug, "CLI Team", "--store", store], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["slug"] == slug
    r = subprocess.run([t.binary, "tenant", "add", slug, "--store", store], capture_output=True, text=True)
    assert r.returncode == 1 and "already exists" in r.stderr
    r = subprocess.run([t.binary, "tenant", "add", "Bad Slug!", "--store", store], capture_output=True, text=True)
    assert r.returncode == 1


def test_env_overrides(t):
    # EHUB_* variables configure the server when no flag says otherwise.
    s = t.new_server(env={"EHUB_MAX_URL": "100"}, name="env")
    assert s.request("GET", "/health?" + "a" * 50)[0] == 200
    data = s.raw(b"GET /health?" + b"a" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 414"), data[:40]
    s.stop()


def test_flag_beats_env(t):
    s = t.new_server(extra=["--max-url", "1000"], env={"EHUB_MAX_URL": "100"}, name="flag-env")
    assert s.request("GET", "/health?" + "a" * 200)[0] == 200
    s.stop()


def test_bad_store_fails_clearly(t):
    s = t.new_server(store="postgres://nobody@127.0.0.1:1/none", start=False, name="badstore")
    s.proc = subprocess.Popen(s.args(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = s.proc.communicate(timeout=30)
    assert s.proc.returncode != 0
    assert "cannot open storage" in out


def test_no_route_reachable_without_authentication(t):
    # Every route is either on the explicit public list or refuses a caller
    # without credentials (401) before doing anything.
    public = {("get", "/health"), ("get", "/ready"), ("get", "/metrics"), ("get", "/openapi.json"),
              ("get", "/docs"), ("post", "/v1/webhooks/ghl/{tenant}"),
              # provider webhooks check their own signatures
              ("post", "/v1/webhooks/twilio/{tenant}"), ("post", "/v1/webhooks/sendgrid/{tenant}"),
              # the login routes: the request proves itself (password or refresh token)
              ("post", "/v1/auth/login"), ("post", "/v1/auth/refresh"), ("post", "/v1/auth/logout")}
    st, h, doc = t.srv.get_json("/openapi.json")
    checked = 0
    for path, item in doc["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method, op in item.items():
            if (method, path) in public:
                assert op.get("security") == [], (method, path)
                continue
            assert "security" not in op, (method, path, "marked public but not on the list")
            for hdr in ({}, {"Authorization": "Bearer ehk_" + "0" * 40}, {"Authorization": "Basic abc"}):
                st2, _, body = t.srv.request(method.upper(), concrete, body=b"{}" if method in ("post", "put", "patch") else None,
                                             headers=dict(hdr, **{"Content-Type": "application/json"}))
                assert st2 == 401, (method, path, hdr, st2, body[:100])
            checked += 1
    assert checked >= 15, checked
