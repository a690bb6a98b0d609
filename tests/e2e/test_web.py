"""The dashboard's static files (src/web): caching headers and ETags,
precompressed copies, security headers, the SPA fallback and where it must
not apply, and paths that must reach nothing outside --web-dir."""
import gzip
import os
import shutil
import tempfile

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
    srv = t.new_server(extra=["--web-dir", "/nonexistent/ehub-web"], name="noweb")
    st, h, b = srv.request("GET", "/")
    assert st == 404 and b"not built" in b and h["content-type"] == "application/json", (st, b)
    st, _, b = srv.request("GET", "/leads/1", headers={"Accept": "text/html"})
    assert st == 404 and b"not built" in b
    st, _, _ = srv.request("GET", "/health")
    assert st == 200
