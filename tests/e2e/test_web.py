"""The dashboard's static files (src/web): caching headers and ETags,
precompressed copies, security headers, the SPA fallback and where it must
not apply, and paths that must reach nothing outside --web-dir. Then the
copy of web/dist built into the binary: served from any working directory,
byte for byte what web/dist holds, and --web-dir taking precedence."""
import gzip
import os
import re
import shutil
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DIST = os.path.join(REPO, "web", "dist")

CSP_PARTS = ["script-src 'self'", "connect-src 'self' ws: wss:", "frame-ancestors 'none'"]
INDEX = b"<!doctype html><title>ehub test</title><script type=module src=/assets/app-AB12CD34.js></script>"
APP = b"console.log('dashboard');" * 40


def make_dir():
    d = tempfile.mkdtemp(prefix="ehub-web-")
    os.makedirs(os.path.join(d, "assets"))
    with open(os.path.join(d, "index.html"), "wb") as f:
        f.write(INDEX)
    with open(os.path.join(d, "assets", "app-AB12CD34.js"), "wb") as f:
        f.write(APP)
    with open(os.path.join(d, "assets", "app-AB12CD34.js.gz"), "wb") as f:
        f.write(gzip.compress(APP))
    with open(os.path.join(d, "assets", "app-AB12CD34.js.br"), "wb") as f:
        f.write(b"not really brotli, but what the server must send for br")
    with open(os.path.join(d, "favicon.svg"), "wb") as f:
        f.write(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    with open(os.path.join(d, ".secret"), "wb") as f:
        f.write(b"hidden")
    with open(os.path.join(d, "big.js"), "wb") as f:
        f.truncate(9 << 20)  # over WEB_MAX_FILE: not served
    os.symlink("/etc/passwd", os.path.join(d, "passwd.txt"))
    os.symlink("/etc", os.path.join(d, "etc"))
    return d


def server(t):
    d = make_dir()
    srv = t.new_server(extra=["--web-dir", d], name="web")
    return srv, d


def test_index_headers_etag_and_304(t):
    srv, d = server(t)
    try:
        for path in ["/", "/index.html"]:
            st, h, b = srv.request("GET", path)
            assert st == 200 and b == INDEX, (path, st, b[:80])
            assert h["content-type"].startswith("text/html"), h
            assert h["cache-control"] == "no-cache", h
            for part in CSP_PARTS:
                assert part in h["content-security-policy"], h["content-security-policy"]
            assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer", h
            etag = h["etag"]
            st, h2, b = srv.request("GET", path, headers={"If-None-Match": etag})
            assert st == 304 and b == b"" and h2["etag"] == etag, (st, h2)
            st, _, _ = srv.request("GET", path, headers={"If-None-Match": 'W/"other", ' + etag})
            assert st == 304
            st, _, b = srv.request("GET", path, headers={"If-None-Match": '"nope"'})
            assert st == 200 and b == INDEX
        st, h, b = srv.request("HEAD", "/")
        assert st == 200 and b == b"" and int(h["content-length"]) == len(INDEX), h
    finally:
        shutil.rmtree(d)


def test_hashed_assets_immutable_and_compressed(t):
    srv, d = server(t)
    try:
        st, h, b = srv.request("GET", "/assets/app-AB12CD34.js")
        assert st == 200 and b == APP and "content-encoding" not in h, h
        assert h["cache-control"] == "public, max-age=31536000, immutable", h
        assert h["content-type"].startswith("text/javascript") and h["vary"] == "Accept-Encoding", h
        st, h, b = srv.request("GET", "/assets/app-AB12CD34.js", headers={"Accept-Encoding": "gzip, deflate"})
        assert st == 200 and h["content-encoding"] == "gzip" and gzip.decompress(b) == APP, h
        assert h["etag"].endswith('-gz"'), h
        st, h, b = srv.request("GET", "/assets/app-AB12CD34.js", headers={"Accept-Encoding": "gzip, br"})
        assert h["content-encoding"] == "br" and b.startswith(b"not really brotli"), h
        st, h, b = srv.request("GET", "/assets/app-AB12CD34.js", headers={"Accept-Encoding": "br;q=0, gzip;q=0"})
        assert "content-encoding" not in h and b == APP, h
        st, h, b = srv.request("GET", "/assets/app-AB12CD34.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in h and b == APP, h
        st, h, _ = srv.request("GET", "/favicon.svg")
        assert st == 200 and h["cache-control"] == "no-cache" and h["content-type"] == "image/svg+xml", h
        # the .gz copy itself is not a resource
        st, _, _ = srv.request("GET", "/assets/app-AB12CD34.js.gz")
        assert st == 404
    finally:
        shutil.rmtree(d)


def test_spa_fallback_only_for_navigations_outside_the_api(t):
    srv, d = server(t)
    try:
        nav = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
        for path in ["/leads", "/leads/123", "/ml-models", "/sequences/"]:
            st, h, b = srv.request("GET", path, headers=nav)
            assert st == 200 and b == INDEX, (path, st, b[:100])
            assert h["cache-control"] == "no-cache"
        # API paths keep their JSON 404s, navigation or not
        for path in ["/v1/nope", "/v1/leads/1/nope", "/ws/nope", "/health/x", "/debug/x", "/predict/x"]:
            st, h, b = srv.request("GET", path, headers=nav)
            assert st == 404 and h["content-type"] == "application/json" and b"not_found" in b, (path, st, b[:100])
        # not a navigation, or a missing file: 404
        for path, hdr in [("/leads/123", {}), ("/assets/missing-ABCDEFGH.js", nav), ("/nope.css", nav)]:
            st, h, b = srv.request("GET", path, headers=hdr)
            assert st == 404 and b"not_found" in b, (path, st)
        st, h, _ = srv.request("POST", "/index.html", body=b"{}", headers={"Content-Type": "application/json"})
        assert st == 405 and "GET" in h["allow"], (st, h)
        st, _, _ = srv.request("POST", "/leads/1", body=b"{}", headers={"Content-Type": "application/json"})
        assert st == 404
    finally:
        shutil.rmtree(d)


def test_nothing_outside_the_directory(t):
    srv, d = server(t)
    try:
        nav = {"Accept": "text/html"}
        bad = ["/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/assets/..%2f..%2f..%2fetc%2fpasswd",
               "/assets/../index.html", "/passwd.txt", "/etc/passwd", "/.secret", "/assets/./app-AB12CD34.js",
               "//etc/passwd", "/big.js", "/%00", "/index.html%00.js", "/assets\\app-AB12CD34.js"]
        for path in bad:
            for hdr in [{}, nav]:
                st, h, b = srv.request("GET", path, headers=hdr)
                assert b"root:" not in b and b"hidden" not in b, (path, b[:80])
                if st == 200:  # only a navigation may get the app itself
                    assert b == INDEX and hdr, (path, st)
                else:
                    assert st in (400, 404), (path, st)
        with socket_raw(srv) as s:
            s.sendall(b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            assert b"root:" not in data and data.startswith(b"HTTP/1.1 404"), data[:120]
    finally:
        shutil.rmtree(d)


class socket_raw:
    def __init__(self, srv):
        import socket
        self.s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)

    def __enter__(self):
        return self.s

    def __exit__(self, *a):
        self.s.close()


def test_without_a_web_directory(t):
    # Given explicitly, a directory that is not there is not replaced by the
    # embedded copy: / says what is wrong instead.
    srv = t.new_server(extra=["--web-dir", "/nonexistent/ehub-web"], name="noweb")
    st, h, b = srv.request("GET", "/")
    assert st == 404 and b"not built" in b and b"--web-dir" in b and h["content-type"] == "application/json", (st, b)
    st, _, b = srv.request("GET", "/leads/1", headers={"Accept": "text/html"})
    assert st == 404 and b"not built" in b
    st, _, _ = srv.request("GET", "/health")
    assert st == 200


def read(path):
    with open(path, "rb") as f:
        return f.read()


def dist_files():
    """web/dist as the server should hold it: {"/path": bytes} without the
    .gz/.br copies, and the bytes of everything (copies included)."""
    files, total = {}, 0
    for root, _, names in os.walk(DIST):
        for n in names:
            p = os.path.join(root, n)
            total += os.path.getsize(p)
            if not n.endswith((".gz", ".br")):
                files["/" + os.path.relpath(p, DIST)] = p
    return files, total


def dashboard_log(srv):
    return [l for l in srv.log_json() if l.get("msg") == "dashboard files loaded"]


def test_embedded_copy_served_from_another_directory(t):
    """Started where there is no web/dist, without --web-dir: the binary's own
    copy, with the same headers, byte for byte what web/dist holds."""
    assert os.path.isfile(os.path.join(DIST, "index.html")), "web/dist is not built (run make)"
    cwd = tempfile.mkdtemp(prefix="ehub-cwd-")
    env = {k: "" for k in ["EHUB_WEB_DIR"]}  # nothing from the environment either
    try:
        srv = t.new_server(name="embedded", cwd=cwd, env=env)
        files, total = dist_files()
        logs = dashboard_log(srv)
        assert logs and logs[0]["source"] == "embedded" and "dir" not in logs[0], logs
        assert logs[0]["files"] == len(files) and logs[0]["bytes"] == total, (logs, len(files), total)

        index = read(os.path.join(DIST, "index.html"))
        st, h, b = srv.request("GET", "/")
        assert st == 200 and b == index, (st, b[:100])
        assert h["content-type"] == "text/html; charset=utf-8" and h["cache-control"] == "no-cache", h
        for part in CSP_PARTS:
            assert part in h["content-security-policy"], h
        st, _, b = srv.request("GET", "/", headers={"If-None-Match": h["etag"]})
        assert st == 304 and b == b""
        st, _, b = srv.request("GET", "/leads/12", headers={"Accept": "text/html"})
        assert st == 200 and b == index

        # the entry script index.html names: hashed, so immutable
        m = re.search(rb'src="?(/assets/app-[A-Z0-9]{8,}\.js)', index)
        assert m, index
        asset = m.group(1).decode()
        raw = read(DIST + asset)
        st, h, b = srv.request("GET", asset)
        assert st == 200 and b == raw and "content-encoding" not in h, (st, h)
        assert h["cache-control"] == "public, max-age=31536000, immutable", h
        assert h["content-type"] == "text/javascript; charset=utf-8" and h["vary"] == "Accept-Encoding", h
        for enc, suffix in [("gzip", ".gz"), ("gzip, deflate, br", ".br")]:
            if not os.path.exists(DIST + asset + suffix):
                continue
            st, h, b = srv.request("GET", asset, headers={"Accept-Encoding": enc})
            assert st == 200 and h["content-encoding"] == ("br" if suffix == ".br" else "gzip"), h
            assert b == read(DIST + asset + suffix), (asset, enc)
        if os.path.exists(DIST + asset + ".gz"):
            assert gzip.decompress(read(DIST + asset + ".gz")) == raw

        # every file, byte for byte
        for path, full in files.items():
            st, _, b = srv.request("GET", path)
            assert st == 200 and b == read(full), path

        st, _, b = srv.request("GET", "/metrics")
        assert st == 200
        assert ('ehub_dashboard_files{source="embedded"} %d' % len(files)).encode() in b, b[-600:]
        assert ('ehub_dashboard_bytes{source="embedded"} %d' % total).encode() in b
    finally:
        shutil.rmtree(cwd)


def test_web_dir_takes_precedence_over_the_embedded_copy(t):
    """--web-dir (flag or EHUB_WEB_DIR, here relative to the working
    directory) serves that directory, not the copy built in."""
    cwd = tempfile.mkdtemp(prefix="ehub-cwd-")
    try:
        os.makedirs(os.path.join(cwd, "site"))
        other = b"<!doctype html><title>another dashboard</title>"
        with open(os.path.join(cwd, "site", "index.html"), "wb") as f:
            f.write(other)
        for how in ["flag", "env"]:
            if how == "flag":
                srv = t.new_server(extra=["--web-dir", "site"], name="webdir-flag", cwd=cwd)
            else:
                srv = t.new_server(env={"EHUB_WEB_DIR": os.path.join(cwd, "site")}, name="webdir-env")
            st, h, b = srv.request("GET", "/")
            assert st == 200 and b == other and h["cache-control"] == "no-cache", (how, st, b[:80])
            # the embedded app's assets are not mixed in
            for path in dist_files()[0]:
                if path != "/index.html":
                    st, _, _ = srv.request("GET", path)
                    assert st == 404, (how, path)
            logs = dashboard_log(srv)
            assert logs and logs[0]["source"] == "directory" and logs[0]["files"] == 1, logs
            assert logs[0]["bytes"] == len(other), logs
            st, _, b = srv.request("GET", "/metrics")
            assert b'ehub_dashboard_files{source="directory"} 1' in b
            srv.stop()
    finally:
        shutil.rmtree(cwd)
