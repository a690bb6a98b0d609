"""Helpers for ehub's end-to-end tests: start the real binary, talk to it
over TCP like a client would (HTTP/1.1 and WebSocket), read its logs.
Standard library only."""
import base64
import hashlib
import http.client
import http.server
import json
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import tempfile
import sys
import threading
import time

SANITIZER_RE = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:")


class Server:
    """One ehub process. Output lines (JSON logs) are collected in .lines."""

    def __init__(self, binary, store=None, extra=(), env=None, slow=1.0, logs_dir=None, name="ehub", cwd=None):
        # cwd: the working directory to start in (default this one's); the
        # binary's path is made absolute so it still names the same file.
        self.binary = os.path.abspath(binary) if cwd else binary
        self.cwd = cwd
        self.tmp = tempfile.mkdtemp(prefix="ehub-e2e-")
        self.store = store
        self.extra = list(extra)
        self.slow = slow
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.lines = []
        self.lock = threading.Lock()
        self.proc = None
        self.port = None
        self.logs_dir = logs_dir
        self.name = name

    def args(self):
        a = [self.binary, "serve", "--host", "127.0.0.1", "--port", "0",
             "--data-dir", os.path.join(self.tmp, "data"), "--test-routes", "--log-level", "debug"]
        if self.store:
            a += ["--store", self.store]
        return a + self.extra

    def start(self, timeout=10.0):
        self.port = None
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=self.env, text=True, errors="replace", cwd=self.cwd)
        ready = threading.Event()

        def pump():
            for line in self.proc.stdout:
                with self.lock:
                    self.lines.append(line.rstrip("\n"))
                if self.port is None and '"msg":"listening"' in line:
                    try:
                        self.port = json.loads(line)["port"]
                    except ValueError:
                        pass
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout * self.slow) or self.port is None:
            self.kill()
            raise RuntimeError("server did not start:\n" + "\n".join(self.lines[-30:]))
        return self

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Stops the server; returns its exit code."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout * self.slow)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        time.sleep(0.05)
        self.save_log()
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.save_log()

    def save_log(self):
        if self.logs_dir:
            with open(os.path.join(self.logs_dir, "server-%s-%d.log" % (self.name, os.getpid())), "a") as f:
                f.write("\n".join(self.lines) + "\n")

    def log_json(self):
        out = []
        with self.lock:
            lines = list(self.lines)
        for l in lines:
            if l.startswith("{"):
                try:
                    out.append(json.loads(l))
                except ValueError:
                    pass
        return out

    def sanitizer_errors(self):
        with self.lock:
            return [l for l in self.lines if SANITIZER_RE.search(l)]

    # ---- HTTP ----
    def request(self, method, path, body=None, headers=None, timeout=10.0):
        """Returns (status, headers(dict, lower-case names), body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * self.slow)
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hd = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hd, data

    def get_json(self, path, headers=None):
        st, h, b = self.request("GET", path, headers=headers)
        return st, h, (json.loads(b) if b else None)

    def raw(self, data, timeout=3.0, read_until_close=True):
        """Sends raw bytes and returns everything read until the server closes
        (or the timeout passes)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout * self.slow)
        if data:
            s.sendall(data)
        chunks = []
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                chunks.append(d)
                if not read_until_close:
                    break
        except socket.timeout:
            pass
        finally:
            s.close()
        return b"".join(chunks)


def parse_responses(data):
    """Splits a byte stream into [(status, headers, body)] using Content-Length."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hd = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            hd[k.strip().lower()] = v.strip()
        n = int(hd.get("content-length", "0"))
        if status in (101, 204, 304) or 100 <= status < 200:
            n = 0
        out.append((status, hd, rest[:n]))
        data = rest[n:]
    return out


class WS:
    """A minimal RFC 6455 client: masked frames out, frames in."""

    def __init__(self, port, path="/debug/ws-echo", headers=None, timeout=5.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, key))
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        self.s.sendall((req + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(4096)
            if not d:
                raise ConnectionError("closed during handshake: %r" % self.buf)
            self.buf += d
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")
        self.status = int(self.head.split()[1])
        want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.accept_ok = ("sec-websocket-accept: " + want.lower()) in self.head.lower()

    @staticmethod
    def frame(opcode, payload, fin=True, mask=True):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            h = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            h = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            h = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if not mask:
            return h + payload
        m = os.urandom(4)
        return h + m + bytes(b ^ m[i % 4] for i, b in enumerate(payload))

    def send(self, opcode, payload, **kw):
        if isinstance(payload, str):
            payload = payload.encode()
        self.s.sendall(self.frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send(1, text)

    def _need(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("closed")
            self.buf += d

    def recv(self):
        """Returns (opcode, payload bytes)."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, payload

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# ---- local provider servers (Twilio, SendGrid, GoHighLevel, Apollo, ...) ----

class FakeProvider(http.server.BaseHTTPRequestHandler):
    """Base of the tests' stand-ins for outbound providers: HTTP/1.1 with
    keep-alive (as the providers answer), quiet, JSON answers. A subclass
    implements do_POST and keeps what it saw in self.server.state."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _reply(self, code, body, headers=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


def start_fake(handler, state, backlog=512):
    """Serves handler on a free loopback port from a daemon thread; the
    server's .state is state plus a "lock". A large backlog: a batch of
    sends arrives at once (Python's default is 5)."""
    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = backlog
        daemon_threads = True

        def handle_error(self, request, client_address):
            # ehub hanging up (a timeout, a SIGTERM cutting calls in flight)
            # is what several tests make happen; anything else is printed
            if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
                super().handle_error(request, client_address)

    srv = Server(("127.0.0.1", 0), handler)
    srv.state = dict(state, lock=threading.Lock())
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def wait_for(pred, timeout=5.0, step=0.05):
    """pred's first truthy value within timeout seconds (polled every step),
    else its last value."""
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()
