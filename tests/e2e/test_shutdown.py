"""Graceful shutdown: in-flight requests finish, WebSockets get 1001, the
process exits 0; a restart finds its data."""
import signal
import socket
import threading
import time

from lib import WS


def test_sigterm_closes_websockets_with_1001(t):
    s = t.new_server(name="shutdown-ws")
    ws = WS(s.port)
    ws.send_text("x")
    assert ws.recv() == (1, b"x")
    s.proc.send_signal(signal.SIGTERM)
    op, payload = ws.recv()
    assert op == 8 and int.from_bytes(payload[:2], "big") == 1001
    ws.send(8, payload[:2])  # complete the handshake
    ws.close()
    assert s.proc.wait(10 * t.slow) == 0
    s.stop()


def test_sigterm_finishes_inflight_and_refuses_new(t):
    s = t.new_server(name="shutdown-inflight")
    # A request whose body is still arriving when SIGTERM lands is finished.
    c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    c.sendall(b"POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"a\":")
    time.sleep(0.2)
    s.proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    c.sendall(b"123}")
    data = b""
    while True:
        d = c.recv(4096)
        if not d:
            break
        data += d
    c.close()
    assert data.startswith(b"HTTP/1.1 200") and b'{"a":123}' in data, data
    assert b"Connection: close" in data
    rc = s.proc.wait(10 * t.slow)
    assert rc == 0
    s.stop()
    try:
        socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
        refused = False
    except OSError:
        refused = True
    assert refused


def test_restart_keeps_data(t):
    s = t.new_server(name="restart")
    st, _, j1 = s.get_json("/ready")
    assert st == 200
    assert s.stop() == 0
    s.start()
    st, _, j2 = s.get_json("/ready")
    assert st == 200 and j2["storage"]["schema_version"] == j1["storage"]["schema_version"]
    s.stop()
