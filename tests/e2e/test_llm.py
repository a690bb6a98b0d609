"""Coaching drafts by an LLM, end to end, against a local fake provider that
speaks both wire formats: Anthropic's Messages API (x-api-key,
anthropic-version, content blocks, SSE message_start / content_block_delta /
message_stop, {"type":"error","error":{"type":"overloaded_error"}}) and
OpenAI-compatible chat completions (Bearer, choices[0].message.content,
`data: {...}` chunks ending with `data: [DONE]`).

The fake checks what the real APIs need (path, key header, version header,
body shape) and records every body it receives, so the tests can prove that
no personal data from the conversation ever reaches the provider. Modes make
it slow, refuse (429, 5xx, overloaded), answer malformed JSON, or cut a
stream short; a closed port stands for a provider that is down.

Standard library only."""
import http.server
import json
import os
import socket
import tempfile
import threading
import time

from lib import wait_for
from tenants import Tenant

KEY = "sk-test-e2e-0123456789abcdef"
DRAFT = "Happy to help! Would a quick call tomorrow work to go over {missing}?"


class Fake(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for e in events:
            self.wfile.write(e.encode())
            self.wfile.flush()
            time.sleep(0.01)
        self.close_connection = True

    def do_POST(self):
        st = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        anthropic = self.path == "/v1/messages"
        if self.path not in ("/v1/messages", "/v1/chat/completions"):
            return self._send(404, {"error": {"type": "not_found_error", "message": self.path}})
        with st["lock"]:
            st["bodies"].append(body)
            st["headers"].append(dict(self.headers))
            mode = st["mode"]
        if anthropic and (self.headers.get("x-api-key") != KEY or self.headers.get("anthropic-version") != "2023-06-01"):
            return self._send(401, {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}})
        if not anthropic and self.headers.get("Authorization") != "Bearer " + KEY:
            return self._send(401, {"error": {"type": "invalid_request_error", "code": "invalid_api_key"}})
        req = json.loads(body)
        assert req["model"] and req["max_tokens"] > 0
        if anthropic:
            assert isinstance(req["system"], str)
            prompt = req["messages"][0]["content"][0]["text"]
            assert req["messages"][0]["role"] == "user" and req["messages"][0]["content"][0]["type"] == "text"
        else:
            assert req["messages"][0]["role"] == "system" and req["messages"][1]["role"] == "user"
            prompt = req["messages"][1]["content"]
        missing = "your budget"
        for line in prompt.splitlines():
            if line.startswith("Still unknown: "):
                missing = "your " + line[len("Still unknown: "):].split(",")[0].rstrip(".")
        text = DRAFT.format(missing=missing)
        if mode.startswith("slow"):
            time.sleep(float(mode[4:] or "2"))
        elif mode == "429":
            return self._send(429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
                              if anthropic else {"error": {"type": "requests", "code": "rate_limit_exceeded"}})
        elif mode == "500":
            return self._send(500, {"type": "error", "error": {"type": "api_error", "message": "boom"}})
        elif mode == "overloaded":
            if anthropic:
                return self._send(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            return self._send(503, {"error": {"type": "server_error", "message": "overloaded"}})
        elif mode == "malformed":
            return self._send(200, b'{"id": "msg_1", "content": [{"type": "text", "text": "unterminated')
        if req.get("stream"):
            if anthropic:
                ev = ['event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
                      '"role":"assistant","content":[],"model":"%s"}}\n\n' % req["model"],
                      'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
                      '"content_block":{"type":"text","text":""}}\n\n', "event: ping\ndata: {\"type\": \"ping\"}\n\n"]
                for i in range(0, len(text), 9):
                    ev.append('event: content_block_delta\ndata: %s\n\n' % json.dumps(
                        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text[i:i + 9]}}))
                    if mode == "stream_overloaded" and i >= 18:
                        ev.append('event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n')
                        return self._sse(ev)
                if mode == "stream_cut":
                    return self._sse(ev)
                ev += ['event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
                       'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"}}\n\n',
                       'event: message_stop\ndata: {"type":"message_stop"}\n\n']
            else:
                ev = ['data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n']
                for i in range(0, len(text), 9):
                    ev.append("data: %s\n\n" % json.dumps({"id": "c1", "object": "chat.completion.chunk", "choices": [
                        {"index": 0, "delta": {"content": text[i:i + 9]}, "finish_reason": None}]}))
                if mode == "stream_cut":
                    return self._sse(ev)
                ev += ['data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n', "data: [DONE]\n\n"]
            return self._sse(ev)
        if anthropic:
            return self._send(200, {"id": "msg_1", "type": "message", "role": "assistant", "model": req["model"],
                                    "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                                    "usage": {"input_tokens": 10, "output_tokens": 20}})
        return self._send(200, {"id": "c1", "object": "chat.completion", "model": req["model"], "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})


def _fake():
    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # ehub hung up on a slow answer (its timeout): expected
    srv = Server(("127.0.0.1", 0), Fake)
    srv.state = {"lock": threading.Lock(), "bodies": [], "headers": [], "mode": "ok"}
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


FAKE = _fake()
URL = "http://127.0.0.1:%d" % FAKE.server_address[1]
_dir = tempfile.mkdtemp(prefix="ehub-llm-")
KEY_FILE = os.path.join(_dir, "llm.key")
with open(KEY_FILE, "w") as f:
    f.write(KEY + "\n")
os.chmod(KEY_FILE, 0o600)

SERVER_ARGS = ["--llm-provider", "anthropic", "--llm-url", URL, "--llm-key-file", KEY_FILE, "--llm-budget", "3s",
               "--llm-cooldown", "1s"]


def _mode(m):
    with FAKE.state["lock"]:
        FAKE.state["mode"] = m


def _bodies():
    with FAKE.state["lock"]:
        return list(FAKE.state["bodies"])


# A conversation full of personal data, with objections and intents.
PII = ["maria.lopez@example.com", "(916) 555-0142", "916", "1842 Maple Avenue", "123-45-6789",
       "4111 1111 1111 1111", "03/14/1985", "GB82 WEST 1234 5698 7654 32", "+44 20 7946 0958"]
CONVO = [
    ("inbound", "Hi, I'm Maria, email me at maria.lopez@example.com or call (916) 555-0142. We're at 1842 Maple Avenue."),
    ("outbound", "Thanks Maria! What price range are you looking at?"),
    ("inbound", "Honestly the homes you sent are way too expensive for us. My SSN is 123-45-6789 if the lender needs it."),
    ("inbound", "Card for the application fee: 4111 1111 1111 1111. My date of birth is 03/14/1985."),
    ("inbound", "We already have an agent too. Can we schedule a showing Saturday? My UK number is +44 20 7946 0958, "
                "IBAN GB82 WEST 1234 5698 7654 32."),
]


def _msgs():
    return [{"direction": d, "body": b, "at": 1763900000000 + i * 60000} for i, (d, b) in enumerate(CONVO)]


def _coach(tn, query="", body=None, timeout_ok=True):
    t0 = time.time()
    st, j = tn.api("POST", "/get-coaching" + query, body or {"messages": _msgs()})
    assert st == 200, (st, j)
    assert j["suggestions"], j  # the built-in engine answered whatever the LLM did
    return j, time.time() - t0


def _no_pii(bodies):
    assert bodies
    for b in bodies:
        s = b.decode()
        for p in PII:
            if p == "916":
                continue
            assert p not in s, (p, s)
            assert p.replace(" ", "") not in s.replace(" ", ""), (p, s)
        assert "555-0142" not in s and "5550142" not in s


def _inbound_drafts(tn, n, lead_id=None):
    """Waits for n drafts that followed inbound messages' pushed coaching
    (coaching.updated with draft and for_seq) and returns them all."""
    def got():
        return [e["payload"] for e in tn.events("coaching.updated") if "for_seq" in e["payload"]
                and (lead_id is None or e["payload"]["lead_id"] == lead_id)]
    end = time.time() + 5 * tn.t.slow
    while time.time() < end and len(got()) < n:
        time.sleep(0.05)
    return got()


def test_llm_anthropic_draft_in_the_answer_without_personal_data(t):
    _mode("ok")
    tn = Tenant(t, prefix="llm")
    # the tenant's playbook is sent too (its texts): personal data in it is redacted as well
    tn.ok("PUT", "/v1/coaching/playbook", {"objections": {"price_too_high": {
        "text": "Offer to run the numbers together: call me at (916) 555-0177 or write to ann.agent@example.com.",
        "why": "Price objections soften when the buyer sees the monthly payment."}}})
    n0 = len(_bodies())
    j, dt = _coach(tn)
    d = j["draft"]
    assert d["status"] == "ready" and d["provider"] == "anthropic" and d["streamed"] is False, d
    assert d["text"].startswith("Happy to help!") and d["model"] == "claude-3-5-haiku-latest", d
    bodies = _bodies()[n0:]
    assert len(bodies) == 1
    _no_pii(bodies)
    assert "555-0177" not in bodies[0].decode() and "ann.agent@example.com" not in bodies[0].decode()
    assert "[PHONE]" in bodies[0].decode() and "[EMAIL]" in bodies[0].decode()
    prompt = json.loads(bodies[0])["messages"][0]["content"][0]["text"]
    # built from the structured analysis: objections, intents, missing items, suggestion texts
    assert "price_too_high" in prompt and "other_agent" in prompt and "wants_showing" in prompt, prompt
    assert "Still unknown:" in prompt and "Coaching for the agent" in prompt, prompt
    for s in j["suggestions"]:
        if s["type"] in ("objection", "question"):
            assert s["text"][:40] in prompt, (s, prompt)
    # the draft names the first missing item the prompt listed
    assert "your " in d["text"]
    # the key is never logged
    assert not any(KEY in l for l in t.srv.lines)


def test_llm_anthropic_streaming_and_stored_lead(t):
    srv = t.new_server(extra=SERVER_ARGS + ["--llm-stream"], name="llm-stream")
    tn = Tenant(t, srv=srv, prefix="llm")
    _mode("ok")
    lead = tn.create_lead(first_name="Maria", email="maria.lopez@example.com", phone="+19165550142")
    inbound = 0
    for i, (d, b) in enumerate(CONVO):
        st, j = tn.api("POST", "/v1/leads/%d/activities" % lead["id"],
                       {"channel": "sms", "direction": d, "body": b, "occurred_at": 1763900000000 + i * 60000})
        assert st == 201, (st, j)
        if d == "inbound":  # one at a time, so that each message's draft is in before the next
            inbound += 1
            assert len(_inbound_drafts(tn, inbound, lead["id"])) == inbound
    # each inbound message's pushed coaching is followed by a draft (streamed here too)
    ev = _inbound_drafts(tn, 4, lead["id"])
    assert len(ev) == 4 and all(e["draft"]["status"] == "ready" and e["draft"]["streamed"] for e in ev), ev
    n0 = len(_bodies())
    st, j = tn.api("POST", "/v1/leads/%d/coaching" % lead["id"])
    assert st == 200, (st, j)
    d = j["draft"]
    assert d["status"] == "ready" and d["streamed"] is True, d
    assert d["text"].startswith("Happy to help!"), d
    sent = _bodies()[n0:]
    assert json.loads(sent[0])["stream"] is True
    _no_pii(sent)
    # mid-stream overloaded error and a stream cut short: built-in only
    for mode, why in (("stream_overloaded", "overloaded"), ("stream_cut", "malformed")):
        _mode(mode)
        j, _ = _coach(tn)
        assert j["draft"]["status"] == "unavailable" and j["draft"]["reason"] == why, (mode, j["draft"])
    _mode("ok")


def test_llm_openai_plain_and_streamed(t):
    for extra in ([], ["--llm-stream"]):
        srv = t.new_server(extra=["--llm-provider", "openai", "--llm-url", URL + "/v1", "--llm-model", "local-model",
                                  "--llm-key-file", KEY_FILE] + extra, name="llm-openai")
        tn = Tenant(t, srv=srv, prefix="llm")
        _mode("ok")
        n0 = len(_bodies())
        j, _ = _coach(tn)
        d = j["draft"]
        assert d["status"] == "ready" and d["provider"] == "openai" and d["model"] == "local-model", d
        assert d["streamed"] is bool(extra) and d["text"].startswith("Happy to help!"), d
        sent = _bodies()[n0:]
        _no_pii(sent)
        req = json.loads(sent[0])
        assert req["model"] == "local-model" and req["messages"][1]["role"] == "user"
        for mode, why in (("429", "rate_limited"), ("overloaded", "overloaded"), ("500", "http_error"),
                          ("malformed", "malformed"), ("stream_cut", "malformed")):
            if mode == "stream_cut" and not extra:
                continue
            _mode(mode)
            j, _ = _coach(tn)
            assert j["draft"]["status"] == "unavailable" and j["draft"]["reason"] == why, (mode, j["draft"])
            _mode("ok")  # recover before the breaker's fifth failure
            assert _coach(tn)[0]["draft"]["status"] == "ready"
        srv.stop()


def test_llm_errors_fall_back_to_the_built_in_answer(t):
    tn = Tenant(t, prefix="llm")
    for mode, why in (("429", "rate_limited"), ("500", "http_error"), ("overloaded", "overloaded"),
                      ("malformed", "malformed")):
        _mode(mode)
        j, _ = _coach(tn)
        assert j["draft"]["status"] == "unavailable" and j["draft"]["reason"] == why, (mode, j["draft"])
        _mode("ok")
        assert _coach(tn)[0]["draft"]["status"] == "ready"
    # a provider that is down: connection refused
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = t.new_server(extra=["--llm-provider", "anthropic", "--llm-url", "http://127.0.0.1:%d" % port,
                              "--llm-key-file", KEY_FILE], name="llm-down")
    tn2 = Tenant(t, srv=srv, prefix="llm")
    j, dt = _coach(tn2)
    assert j["draft"]["status"] == "unavailable" and j["draft"]["reason"] == "connect_failed", j["draft"]
    assert dt < 1.5 * t.slow
    srv.stop()


def test_llm_slow_provider_answers_later_on_the_feed(t):
    srv = t.new_server(extra=SERVER_ARGS[:-4] + ["--llm-budget", "300ms", "--llm-timeout", "1500ms"], name="llm-slow")
    tn = Tenant(t, srv=srv, prefix="llm")
    agent = tn.create_agent("Ann")
    lead = tn.create_lead(first_name="Bo", agent_id=agent["id"])
    tn.ok("POST", "/v1/leads/%d/activities" % lead["id"],
          {"channel": "sms", "direction": "inbound", "body": "That house is way too expensive for us."})
    assert len(_inbound_drafts(tn, 1)) == 1  # the inbound message's own draft (see the test below)
    _mode("slow0.8")  # past the budget, within the timeout
    t0 = time.time()
    st, j = tn.api("POST", "/v1/leads/%d/coaching" % lead["id"])
    dt = time.time() - t0
    assert st == 200 and j["draft"]["status"] == "pending", j
    assert dt < 0.75 * t.slow, dt  # the answer did not wait for the provider
    did = j["draft"]["id"]

    def draft_events():
        return [e["payload"] for e in tn.events("coaching.updated") if "draft" in e["payload"]
                and "for_seq" not in e["payload"]]
    end = time.time() + 5 * t.slow
    while time.time() < end and not draft_events():
        time.sleep(0.05)
    ev = draft_events()
    assert ev and ev[0]["draft"]["id"] == did and ev[0]["draft"]["status"] == "ready", ev
    assert ev[0]["lead_id"] == lead["id"] and ev[0]["agent_id"] == agent["id"], ev
    # slower than the hard timeout: the event says so
    _mode("slow3")
    st, j = tn.api("POST", "/v1/leads/%d/coaching" % lead["id"])
    assert j["draft"]["status"] == "pending"
    end = time.time() + 5 * t.slow
    while time.time() < end and len(draft_events()) < 2:
        time.sleep(0.05)
    ev = draft_events()
    assert len(ev) == 2 and ev[1]["draft"]["status"] == "unavailable" and ev[1]["draft"]["reason"] == "timeout", ev
    # async: pending at once; off: no call at all
    _mode("ok")
    t0 = time.time()
    st, j = tn.api("POST", "/v1/leads/%d/coaching?draft=async" % lead["id"])
    assert st == 200 and j["draft"]["status"] == "pending" and time.time() - t0 < 0.5 * t.slow, j
    n0 = len(_bodies())
    time.sleep(0.3)
    n1 = len(_bodies())
    st, j = tn.api("POST", "/v1/leads/%d/coaching?draft=off" % lead["id"])
    assert st == 200 and j["draft"] == {"status": "off"}, j
    time.sleep(0.2)
    assert len(_bodies()) == n1 and n1 >= n0
    st, j = tn.api("POST", "/v1/leads/%d/coaching?draft=maybe" % lead["id"])
    assert st == 400 and j["error"]["code"] == "bad_query", j
    # a shutdown with a draft still being written: it ends (at the timeout) and exits cleanly
    _mode("slow3")
    st, j = tn.api("POST", "/v1/leads/%d/coaching?draft=async" % lead["id"])
    assert st == 200 and j["draft"]["status"] == "pending", j
    t0 = time.time()
    assert srv.stop() == 0
    assert time.time() - t0 < 5 * t.slow
    assert not srv.sanitizer_errors(), srv.sanitizer_errors()[:5]
    _mode("ok")


def test_llm_inbound_message_draft_follows_on_the_feed(t):
    srv = t.new_server(extra=SERVER_ARGS, name="llm-inbound")
    tn = Tenant(t, srv=srv, prefix="llm")
    agent = tn.create_agent("Ann")
    lead = tn.create_lead(first_name="Maria", email="maria.lopez@example.com", phone="+19165550142",
                          agent_id=agent["id"])
    _mode("slow0.8")
    n0 = len(_bodies())
    t0 = time.time()
    tn.ok("POST", "/v1/leads/%d/activities" % lead["id"],
          {"channel": "sms", "direction": "inbound", "body": CONVO[0][1] + " " + CONVO[2][1]})
    assert time.time() - t0 < 0.75 * t.slow  # the message is not held up by the provider
    # the built-in coaching is there at once, with the message
    built = [e for e in tn.events("coaching.updated") if e["payload"]["lead_id"] == lead["id"]]
    assert len(built) == 1 and built[0]["payload"]["suggestions"] and "draft" not in built[0]["payload"], built
    # then the draft for it, pointing at it
    ev = _inbound_drafts(tn, 1, lead["id"])
    assert len(ev) == 1, ev
    d = ev[0]["draft"]
    assert ev[0]["for_seq"] == built[0]["seq"] and ev[0]["agent_id"] == agent["id"], ev
    assert d["status"] == "ready" and d["text"].startswith("Happy to help!") and len(d["id"]) == 16, d
    sent = _bodies()[n0:]
    assert len(sent) == 1
    _no_pii(sent)  # the same redacted prompt as an answer's
    prompt = json.loads(sent[0])["messages"][0]["content"][0]["text"]
    assert "price_too_high" in prompt and "Coaching for the agent" in prompt, prompt
    # an outbound message is not coached, so no draft either
    _mode("ok")
    tn.ok("POST", "/v1/leads/%d/activities" % lead["id"], {"channel": "sms", "direction": "outbound", "body": "ok"})
    time.sleep(0.3)
    assert len(_bodies()) == n0 + 1
    # a failing provider: the failure follows instead, and the message was stored all the same
    _mode("500")
    tn.ok("POST", "/v1/leads/%d/activities" % lead["id"],
          {"channel": "sms", "direction": "inbound", "body": "Can we see it Saturday?"})
    ev = _inbound_drafts(tn, 2, lead["id"])
    assert len(ev) == 2 and ev[1]["draft"]["status"] == "unavailable" and ev[1]["draft"]["reason"] == "http_error", ev
    assert ev[1]["for_seq"] > ev[0]["for_seq"]
    m = srv.request("GET", "/metrics")[2].decode()
    assert 'ehub_llm_requests_total{result="ok"} 1' in m and 'ehub_llm_requests_total{result="http_error"} 1' in m, m[-1500:]
    # a burst of inbound messages with a slow provider: 16 inbound drafts at once at most (a
    # call holds no thread, but the webhooks' pace must leave room for the agents' own drafts),
    # the others are skipped and counted, and the messages are not held up
    _mode("slow%g" % (3 * t.slow))
    t0 = time.time()
    for k in range(20):
        tn.ok("POST", "/v1/leads/%d/activities" % lead["id"],
              {"channel": "sms", "direction": "inbound", "body": "Is it still available? (%d)" % k})
    assert time.time() - t0 < 1.5 * t.slow
    ev = _inbound_drafts(tn, 18, lead["id"])
    time.sleep(0.3)
    ev = _inbound_drafts(tn, 18, lead["id"])
    assert len(ev) == 18, ev  # 2 before + 16 of the burst
    assert all(e["draft"]["status"] == "ready" for e in ev[2:]), ev
    m = srv.request("GET", "/metrics")[2].decode()
    assert 'ehub_llm_requests_total{result="busy"} 4' in m, m[-1500:]
    _mode("ok")
    assert srv.stop() == 0
    assert not srv.sanitizer_errors(), srv.sanitizer_errors()[:5]


def test_llm_circuit_breaker_opens_and_recovers(t):
    srv = t.new_server(extra=SERVER_ARGS, name="llm-breaker")
    tn = Tenant(t, srv=srv, prefix="llm")
    _mode("500")
    n0 = len(_bodies())
    for _ in range(5):
        assert _coach(tn)[0]["draft"]["reason"] == "http_error"
    assert len(_bodies()) - n0 == 5
    # open: not called, answered at once
    for _ in range(3):
        j, dt = _coach(tn)
        assert j["draft"]["status"] == "unavailable" and j["draft"]["reason"] == "breaker_open", j["draft"]
    assert len(_bodies()) - n0 == 5
    st, _, m = srv.request("GET", "/metrics")
    m = m.decode()
    assert st == 200
    assert 'ehub_llm_requests_total{result="breaker_open"} 3' in m, m[-2000:]
    assert "ehub_llm_breaker_open 1" in m, m[-2000:]
    # after the cooldown one trial goes through; failing, it opens again
    time.sleep(1.2)
    assert _coach(tn)[0]["draft"]["reason"] == "http_error"
    assert _coach(tn)[0]["draft"]["reason"] == "breaker_open"
    assert len(_bodies()) - n0 == 6
    # the provider is back: the trial succeeds and closes the breaker
    _mode("ok")
    time.sleep(1.2)
    assert _coach(tn)[0]["draft"]["status"] == "ready"
    assert _coach(tn)[0]["draft"]["status"] == "ready"
    assert "ehub_llm_breaker_open 0" in srv.request("GET", "/metrics")[2].decode()
    srv.stop()


def test_llm_key_file_must_be_private_and_no_provider_means_no_draft(t):
    loose = os.path.join(_dir, "loose.key")
    with open(loose, "w") as f:
        f.write(KEY)
    os.chmod(loose, 0o644)
    srv = t.new_server(extra=["--llm-provider", "anthropic", "--llm-key-file", loose], start=False, name="llm-loose")
    try:
        srv.start(timeout=3)
        started = True
    except RuntimeError:
        started = False
    assert not started and any("chmod 600" in l for l in srv.lines), srv.lines[-5:]
    assert not any(KEY in l for l in srv.lines)
    srv.kill()
    srv = t.new_server(extra=["--llm-provider", "gemini"], start=False, name="llm-bad")
    try:
        srv.start(timeout=3)
        started = True
    except RuntimeError:
        started = False
    assert not started
    srv.kill()
    # without a provider the answer says draft: null and nothing is sent
    plain = t.new_server(name="llm-none")
    tn = Tenant(t, srv=plain, prefix="llm")
    n0 = len(_bodies())
    j, _ = _coach(tn)
    assert j["draft"] is None and len(_bodies()) == n0
    plain.stop()


def test_llm_slow_provider_holds_no_pool_thread(t):
    """More drafts waiting on a slow provider than the pool has threads: storage routes
    still answer at once, since a provider call runs on the loop and holds no thread."""
    srv = t.new_server(extra=SERVER_ARGS + ["--threads", "4", "--llm-timeout", "20s"], name="llm-pool")
    tn = Tenant(t, srv=srv, prefix="llm")
    agent = tn.create_agent("Ann")
    lead = tn.create_lead(first_name="Bo", agent_id=agent["id"])
    tn.ok("POST", "/v1/leads/%d/activities" % lead["id"],
          {"channel": "sms", "direction": "inbound", "body": "That house is way too expensive for us."})
    assert len(_inbound_drafts(tn, 1)) == 1
    hold = 4 * t.slow
    _mode("slow%g" % hold)
    n0 = len(_bodies())
    t0 = time.time()
    # 12 answers' drafts and 4 inbound messages' drafts: 16 calls held by the provider, 4 threads
    for _ in range(12):
        st, j = tn.api("POST", "/v1/leads/%d/coaching?draft=async" % lead["id"])
        assert st == 200 and j["draft"]["status"] == "pending", j
    for k in range(4):
        tn.ok("POST", "/v1/leads/%d/activities" % lead["id"],
              {"channel": "sms", "direction": "inbound", "body": "Can we see it on Saturday? (%d)" % k})
    end = time.time() + hold / 2
    while time.time() < end and len(_bodies()) - n0 < 16:
        time.sleep(0.02)
    assert len(_bodies()) - n0 == 16, len(_bodies()) - n0  # all of them are with the provider now
    lat = []
    for i in range(50):
        a = time.time()
        if i % 2:
            tn.ok("POST", "/v1/leads", {"first_name": "P%d" % i, "email": "p%d@example.com" % i}, want=201)
        else:
            st, j = tn.api("GET", "/v1/leads?limit=20")
            assert st == 200, (st, j)
        lat.append(time.time() - a)
    assert time.time() - t0 < hold, "the provider let go before the measurement ended"
    lat.sort()
    p99 = lat[int(len(lat) * 0.99 + 0.999) - 1]
    # with 50 requests the p99 is the slowest: bounded well below the hold
    # (a request that waited for a pool thread would take seconds; the old
    # design measured ~1 s) yet above a loaded machine's odd fsync stall
    assert p99 < 0.25 * t.slow, ["%.1f ms" % (x * 1000) for x in lat[-5:]]
    # and the drafts were all written, late, on the feed
    def drafts():
        return [e["payload"]["draft"] for e in tn.events("coaching.updated") if "draft" in e["payload"]]
    end = time.time() + hold + 5 * t.slow
    while time.time() < end and len(drafts()) < 1 + 16:
        time.sleep(0.1)
    d = drafts()
    assert len(d) == 17 and all(x["status"] == "ready" for x in d), d
    m = srv.request("GET", "/metrics")[2].decode()
    assert 'ehub_llm_requests_total{result="ok"} 17' in m and 'result="busy"' not in m, m[-1500:]
    _mode("ok")
    assert srv.stop() == 0
    assert not srv.sanitizer_errors(), srv.sanitizer_errors()[:5]


def test_llm_client_gone_before_its_draft_gets_it_on_the_feed(t):
    """A client that hangs up while its answer waits for the draft (within the budget): the
    draft, paid for, is not dropped with the reply nobody reads; it follows on the feed as a
    draft past the budget does."""
    srv = t.new_server(extra=SERVER_ARGS, name="llm-gone")  # --llm-budget 3s
    tn = Tenant(t, srv=srv, prefix="llm")
    agent = tn.create_agent("Ann")
    lead = tn.create_lead(first_name="Bo", agent_id=agent["id"])

    def drafts():
        return [e["payload"] for e in tn.events("coaching.updated") if "draft" in e["payload"]
                and "for_seq" not in e["payload"]]
    _mode("slow1")
    n0 = len(_bodies())
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(("POST /v1/leads/%d/coaching HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Length: 0\r\n\r\n" % (lead["id"], tn.key)).encode())
    assert wait_for(lambda: len(_bodies()) > n0, 3 * t.slow)  # the call is with the provider
    s.close()  # and the client is gone before it answers (1 s, within the 3 s budget)
    ev = wait_for(drafts, 5 * t.slow)
    assert len(ev) == 1 and ev[0]["draft"]["status"] == "ready", ev
    assert ev[0]["lead_id"] == lead["id"] and ev[0]["agent_id"] == agent["id"], ev
    # a client that stays still gets its draft in the answer, and nothing on the feed
    j, _ = _coach(tn)
    assert j["draft"]["status"] == "ready", j["draft"]
    time.sleep(0.3)
    assert len(drafts()) == 1
    _mode("ok")
    assert srv.stop() == 0
    assert not srv.sanitizer_errors(), srv.sanitizer_errors()[:5]


def test_llm_shutdown_waits_for_drafts_no_longer_than_shutdown_timeout(t):
    """SIGTERM with a draft out on a provider that takes longer than --shutdown-timeout (but
    within a long --llm-timeout): the draft is cut at --shutdown-timeout, as nurture's sends
    are, and its failure is still written (read back after a restart on the same store)."""
    srv = t.new_server(extra=SERVER_ARGS[:-4] + ["--llm-timeout", "60s", "--shutdown-timeout", "1s"],
                       name="llm-stop")
    tn = Tenant(t, srv=srv, prefix="llm")
    agent = tn.create_agent("Ann")
    lead = tn.create_lead(first_name="Bo", agent_id=agent["id"])
    _mode("slow15")
    n0 = len(_bodies())
    st, j = tn.api("POST", "/v1/leads/%d/coaching?draft=async" % lead["id"])
    assert st == 200 and j["draft"]["status"] == "pending", j
    did = j["draft"]["id"]
    assert wait_for(lambda: len(_bodies()) > n0, 3 * t.slow)
    t0 = time.time()
    assert srv.stop() == 0
    dt = time.time() - t0
    assert dt < 6 * t.slow, dt  # not the provider's 15 s
    assert not srv.sanitizer_errors(), srv.sanitizer_errors()[:5]
    _mode("ok")
    srv.start()
    ev = [e["payload"]["draft"] for e in tn.events("coaching.updated") if "draft" in e["payload"]]
    assert len(ev) == 1 and ev[0]["id"] == did and ev[0]["status"] == "unavailable", ev
    assert ev[0]["reason"] == "timeout", ev
    assert srv.stop() == 0
