"""HTTP/1.1 behaviour of the real server: keep-alive, pipelining, chunked
bodies, limits, timeouts, errors, request ids, routing, HEAD/OPTIONS/CORS."""
import json
import socket
import time

from lib import parse_responses

SERVER_ARGS = ["--max-body", "64K", "--max-header", "4K", "--max-url", "1K",
               "--header-timeout", "1s", "--body-timeout", "1s", "--idle-timeout", "2s",
               "--cors-origins", "https://app.example.com, https://other.example.com"]


def assert_json_error(body, code=None):
    j = json.loads(body)
    assert "error" in j and "code" in j["error"] and "message" in j["error"], j
    if code:
        assert j["error"]["code"] == code, j
    return j


def test_health(t):
    st, h, j = t.srv.get_json("/health")
    assert st == 200, st
    assert j["status"] == "healthy" and j["version"] and "uptime_seconds" in j
    assert "websocket_connections" in j and "connections" in j
    assert h["content-type"] == "application/json"
    assert len(h["x-request-id"]) >= 16


def test_request_id_echoed_and_validated(t):
    st, h, _ = t.srv.request("GET", "/health", headers={"X-Request-Id": "abc-123"})
    assert h["x-request-id"] == "abc-123"
    st, h, _ = t.srv.request("GET", "/health", headers={"X-Request-Id": "bad id with spaces"})
    assert h["x-request-id"] != "bad id with spaces" and len(h["x-request-id"]) == 32


def test_not_found_is_json(t):
    st, h, b = t.srv.request("GET", "/no/such/route")
    assert st == 404
    assert_json_error(b, "not_found")


def test_method_not_allowed_has_allow(t):
    st, h, b = t.srv.request("DELETE", "/health")
    assert st == 405
    assert "GET" in h["allow"] and "HEAD" in h["allow"]
    assert_json_error(b, "method_not_allowed")


def test_head_has_no_body(t):
    data = t.srv.raw(b"HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"Content-Length:" in head
    assert body == b""


def test_options_and_cors_preflight(t):
    st, h, _ = t.srv.request("OPTIONS", "/debug/echo", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert st == 204
    assert h["access-control-allow-origin"] == "https://app.example.com"
    assert "POST" in h["access-control-allow-methods"]
    assert h["access-control-allow-headers"] == "content-type"
    st, h, _ = t.srv.request("GET", "/health", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in h
    st, h, _ = t.srv.request("GET", "/health", headers={"Origin": "https://other.example.com"})
    assert h["access-control-allow-origin"] == "https://other.example.com"


def test_echo_json(t):
    body = {"name": "Ana", "n": [1, 2, 3], "nested": {"ok": True}}
    st, h, b = t.srv.request("POST", "/debug/echo", body=body)
    assert st == 200 and json.loads(b) == body


def test_invalid_json_and_utf8(t):
    st, h, b = t.srv.request("POST", "/debug/echo", body=b'{"a":', headers={"Content-Type": "application/json"})
    assert st == 400
    assert_json_error(b, "invalid_json")
    st, h, b = t.srv.request("POST", "/debug/echo", body=b'{"a":"\xff\xfe"}', headers={"Content-Type": "application/json"})
    assert st == 400
    assert_json_error(b, "invalid_json")
    st, h, b = t.srv.request("POST", "/debug/echo", body=b'{"a":1}', headers={"Content-Type": "text/plain"})
    assert st == 415
    st, h, b = t.srv.request("POST", "/debug/echo", body=b'{"a":1,"a":2}', headers={"Content-Type": "application/json"})
    assert st == 400


def test_keep_alive_reuses_connection(t):
    s = socket.create_connection(("127.0.0.1", t.srv.port), timeout=3)
    for i in range(5):
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
        while len(rest) < n:
            rest += s.recv(65536)
        assert head.startswith(b"HTTP/1.1 200")
    s.close()


def test_pipelining_in_order(t):
    reqs = b"".join(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: r%d\r\n\r\n" % i for i in range(20))
    reqs += b"POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 7\r\nX-Request-Id: last\r\nConnection: close\r\n\r\n{\"a\":1}"
    resps = parse_responses(t.srv.raw(reqs))
    assert len(resps) == 21, len(resps)
    for i in range(20):
        assert resps[i][0] == 200 and resps[i][1]["x-request-id"] == "r%d" % i
    assert resps[20][1]["x-request-id"] == "last" and json.loads(resps[20][2]) == {"a": 1}


def test_chunked_body(t):
    body = b'{"chunked":true,"pad":"' + b"x" * 3000 + b'"}'
    chunks = b""
    for i in range(0, len(body), 1000):
        part = body[i:i + 1000]
        chunks += b"%x\r\n%s\r\n" % (len(part), part)
    chunks += b"0\r\n\r\n"
    data = t.srv.raw(b"POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks)
    st, h, b = parse_responses(data)[0]
    assert st == 200 and json.loads(b)["chunked"] is True


def test_body_too_large_413(t):
    big = b'{"a":"' + b"x" * (70 * 1024) + b'"}'
    data = t.srv.raw(b"POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(big) + big)
    st, h, b = parse_responses(data)[0]
    assert st == 413
    assert_json_error(b, "body_too_large")
    assert h.get("connection") == "close"


def test_chunked_body_too_large_413(t):
    chunk = b"x" * 16384
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6)) + b"0\r\n\r\n"
    data = t.srv.raw(b"POST /debug/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert parse_responses(data)[0][0] == 413


def test_url_too_long_414(t):
    data = t.srv.raw(b"GET /health?" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    st, h, b = parse_responses(data)[0]
    assert st == 414
    assert_json_error(b, "uri_too_long")


def test_headers_too_large_431(t):
    data = t.srv.raw(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
    st, h, b = parse_responses(data)[0]
    assert st == 431
    assert_json_error(b, "headers_too_large")
    many = b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(600))
    data = t.srv.raw(b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert parse_responses(data)[0][0] == 431


def test_malformed_request_400(t):
    data = t.srv.raw(b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 505"), data[:40]
    for bad in [b"GARBAGE\r\n\r\n", b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n",
                b"POST /debug/echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n"]:
        data = t.srv.raw(bad)
        r = parse_responses(data)
        assert r and r[0][0] == 400, (bad, data[:200])
        assert_json_error(r[0][2])
    # still serving
    assert t.srv.request("GET", "/health")[0] == 200


def test_expect_100_continue(t):
    s = socket.create_connection(("127.0.0.1", t.srv.port), timeout=3)
    s.sendall(b"POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 8\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
    first = s.recv(1024)
    assert first.startswith(b"HTTP/1.1 100 Continue"), first
    s.sendall(b'{"b":22}')
    data = first
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    assert b'{"b":22}' in data


def test_slowloris_header_timeout(t):
    s = socket.create_connection(("127.0.0.1", t.srv.port), timeout=5 * t.slow)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    t0 = time.time()
    data = b""
    try:
        while True:
            time.sleep(0.2)
            try:
                s.sendall(b"X-Slow: 1\r\n")  # trickle, never finish
            except OSError:
                break
            s.settimeout(0.01)
            try:
                d = s.recv(4096)
                if not d:
                    break
                data += d
            except socket.timeout:
                pass
            if time.time() - t0 > 4 * t.slow:
                break
    finally:
        s.close()
    assert time.time() - t0 < 3.5 * t.slow, "header timeout did not close the connection"
    assert b"408" in data.split(b"\r\n")[0], data[:100]


def test_idle_keepalive_timeout_closes(t):
    s = socket.create_connection(("127.0.0.1", t.srv.port), timeout=6 * t.slow)
    t0 = time.time()
    assert s.recv(10) == b""  # server closes the idle connection
    assert 1.5 < time.time() - t0 < 5 * t.slow
    s.close()


def test_body_timeout(t):
    s = socket.create_connection(("127.0.0.1", t.srv.port), timeout=5 * t.slow)
    s.sendall(b"POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":")
    t0 = time.time()
    data = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    s.close()
    assert time.time() - t0 < 3 * t.slow
    assert b" 408 " in data.split(b"\r\n")[0]


def test_http10(t):
    data = t.srv.raw(b"GET /health HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.0 200"), data[:40]


def test_query_and_absolute_form(t):
    data = t.srv.raw(b"GET http://localhost/health?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert parse_responses(data)[0][0] == 200


def test_request_log_lines(t):
    t.srv.request("GET", "/health", headers={"X-Request-Id": "log-check-1"})
    time.sleep(0.1)
    lines = [l for l in t.srv.log_json() if l.get("msg") == "http.request" and l.get("request_id") == "log-check-1"]
    assert lines, "no request log line"
    l = lines[0]
    for k in ("method", "path", "status", "bytes", "duration_ms", "request_id", "time", "level"):
        assert k in l, (k, l)
    assert l["status"] == 200 and l["method"] == "GET" and l["path"] == "/health"


def test_many_concurrent_connections(t):
    socks = []
    for i in range(200):
        socks.append(socket.create_connection(("127.0.0.1", t.srv.port), timeout=5))
    for s in socks:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    ok = 0
    for s in socks:
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        ok += data.startswith(b"HTTP/1.1 200")
    assert ok == 200, ok
