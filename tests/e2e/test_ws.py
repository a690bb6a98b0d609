"""WebSocket on the same port: handshake, echo, ping/pong, close handshake,
limits, malformed frames."""
import socket
import time

from lib import WS

SERVER_ARGS = ["--ws-max-message", "1K", "--ws-max-queue", "256K", "--ws-ping", "1s"]


def test_handshake_and_echo(t):
    ws = WS(t.srv.port)
    assert ws.status == 101 and ws.accept_ok, ws.head
    ws.send_text("hello")
    assert ws.recv() == (1, b"hello")
    ws.send(2, b"\x00\x01\x02")
    assert ws.recv() == (2, b"\x00\x01\x02")
    ws.close()


def test_health_counts_websockets(t):
    ws = WS(t.srv.port)
    st, h, j = t.srv.get_json("/health")
    assert j["websocket_connections"] >= 1
    ws.close()


def test_fragmented_message(t):
    ws = WS(t.srv.port)
    ws.send(1, b"frag", fin=False)
    ws.send(0, b"ment", fin=False)
    ws.send(0, b"ed", fin=True)
    assert ws.recv() == (1, b"fragmented")
    ws.close()


def test_ping_pong(t):
    ws = WS(t.srv.port)
    ws.send(9, b"are you there")
    assert ws.recv() == (10, b"are you there")
    ws.close()


def test_server_pings(t):
    ws = WS(t.srv.port)
    op, _ = ws.recv()  # within the 1 s ping interval
    assert op == 9
    ws.close()


def test_close_handshake(t):
    ws = WS(t.srv.port)
    ws.send(8, b"\x03\xe8bye")
    op, payload = ws.recv()
    assert op == 8 and payload[:2] == b"\x03\xe8"
    ws.s.settimeout(2)
    assert ws.s.recv(10) == b""
    ws.close()


def test_message_too_big_1009(t):
    ws = WS(t.srv.port)
    ws.send_text("x" * 2000)
    op, payload = ws.recv()
    assert op == 8 and int.from_bytes(payload[:2], "big") == 1009
    ws.close()


def test_invalid_utf8_1007(t):
    ws = WS(t.srv.port)
    ws.send(1, b"\xff\xfe")
    op, payload = ws.recv()
    assert op == 8 and int.from_bytes(payload[:2], "big") == 1007
    ws.close()


def test_unmasked_frame_1002(t):
    ws = WS(t.srv.port)
    ws.send(1, b"hi", mask=False)
    op, payload = ws.recv()
    assert op == 8 and int.from_bytes(payload[:2], "big") == 1002
    ws.close()


def test_truncated_frame_then_disconnect(t):
    ws = WS(t.srv.port)
    frame = WS.frame(1, b"hello world")
    ws.s.sendall(frame[:5])
    time.sleep(0.1)
    ws.close()
    assert t.srv.request("GET", "/health")[0] == 200


def test_handshake_errors(t):
    st, h, b = t.srv.request("GET", "/debug/ws-echo")
    assert st == 426
    data = t.srv.raw(b"GET /debug/ws-echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400"), data[:50]
    data = t.srv.raw(b"GET /debug/ws-echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 426"), data[:50]


def test_slow_consumer_disconnected(t):
    # Send many large messages that are echoed back while never reading:
    # the server's backlog bound (256K) must cut us off with 1008 instead of
    # buffering without limit, and other clients keep working.
    ws = WS(t.srv.port)
    ws.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    payload = "y" * 1000
    closed = False
    t0 = time.time()
    try:
        for i in range(20000):
            ws.send_text(payload)
            if time.time() - t0 > 20 * t.slow:
                break
    except OSError:
        closed = True
    # read what's there: somewhere ahead is a 1008 close, or the socket is gone
    ws.s.settimeout(5 * t.slow)
    saw = closed
    try:
        while not saw:
            op, p = ws.recv()
            if op == 8:
                saw = int.from_bytes(p[:2], "big") == 1008
                break
    except (ConnectionError, OSError):
        saw = True
    ws.close()
    assert saw, "slow consumer was not disconnected"
    other = WS(t.srv.port)
    other.send_text("still here")
    assert other.recv() == (1, b"still here")
    other.close()
