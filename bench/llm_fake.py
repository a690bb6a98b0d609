"""A stand-in LLM provider for bench/coaching.sh: answers Anthropic Messages
API requests (POST /v1/messages) after a delay set by POST /delay?ms=N.
Loopback only. Usage: python3 bench/llm_fake.py PORTFILE"""
import http.server
import json
import sys
import threading
import time
import urllib.parse

state = {"delay": 0.0}


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        u = urllib.parse.urlparse(self.path)
        if u.path == "/delay":
            state["delay"] = float(urllib.parse.parse_qs(u.query)["ms"][0]) / 1000
            return self._send(200, {"delay_ms": state["delay"] * 1000})
        req = json.loads(body)
        time.sleep(state["delay"])
        try:
            self._send(200, {"id": "msg_bench", "type": "message", "role": "assistant", "model": req["model"],
                             "content": [{"type": "text", "text": "Happy to help: would a call tomorrow work?"}],
                             "stop_reason": "end_turn"})
        except (BrokenPipeError, ConnectionResetError):
            pass


class S(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


srv = S(("127.0.0.1", 0), H)
with open(sys.argv[1], "w") as f:
    f.write(str(srv.server_address[1]))
threading.Thread(target=srv.serve_forever, daemon=True).start()
while True:
    time.sleep(3600)
