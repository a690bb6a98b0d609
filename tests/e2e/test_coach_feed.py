"""Coaching on the feed: an inbound message, whichever way it comes in --
REST POST /v1/leads/{id}/activities, a signed GoHighLevel InboundMessage
webhook, a signed Twilio inbound SMS -- reaches the agent's own WebSocket
client as `coaching.updated` on `coaching:{agent_id}` within 50 ms of the
request being sent (p99 over 102 messages, x --slow: with 102 the p99 is
the second slowest, so one stall of a loaded machine is not the p99). The clock starts when
the request is written and stops when the event is read off the socket, so
it holds the whole path: HTTP parse, signature check, the write
transaction that stores the message and coaches the lead, the commit, the
event log and the fan-out to the agent's connection.

`measure()` is shared with bench/coaching_feed.py (a few hundred messages)."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import time
import urllib.parse
import uuid

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tenants import Tenant
from test_realtime import Feed

SID, TOKEN, FROM = "AC" + "2" * 32, "coach-feed-token", "+14155550000"
PASSWORD = "correct horse battery"
BUDGET_MS = 50.0

# what leads write: each message is a real turn of a conversation, so the
# coach has intents, objections and qualification items to work on
LINES = [
    "Hi, we're looking for a 3 bedroom house near Land Park, is it still available?",
    "Our budget is around $450k and we're pre-approved with Golden 1.",
    "Honestly that one is way too expensive for us.",
    "Can we schedule a showing for Saturday morning?",
    "We need to sell our house first, is that a problem?",
    "Rates are too high right now, we might wait.",
    "My wife and I decide together, our lease ends in June.",
]


class Setup:
    """A tenant with one agent, the agent's logged-in client subscribed to
    coaching:{agent_id}, and the tenant's GHL key and Twilio token set."""

    def __init__(self, t, srv=None, leads=3):
        self.tn = tn = Tenant(t, srv=srv, prefix="cf")
        self.srv = tn.srv
        self.agent = tn.create_agent("Feed Agent")
        email = "agent@%s.test" % tn.slug
        tn.ok("POST", "/v1/users", {"email": email, "role": "agent", "password": PASSWORD,
                                     "agent_id": self.agent["id"]})
        st, _, b = self.srv.request("POST", "/v1/auth/login", {"tenant": tn.slug, "email": email,
                                                               "password": PASSWORD})
        assert st == 200, (st, b)
        self.jwt = json.loads(b)["access_token"]
        self.ed = ed25519.Ed25519PrivateKey.generate()
        pem = self.ed.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        tn.ok("PATCH", "/v1/settings", {"ghl_ed25519_public_key": pem})
        tn.ok("PATCH", "/v1/nurture/settings", {"twilio_account_sid": SID, "twilio_auth_token": TOKEN,
                                                "twilio_from": FROM, "quiet_start": "00:00", "quiet_end": "00:00"})
        self.leads = []
        for i in range(leads):
            self.leads.append(tn.create_lead(
                first_name="Feed%d" % i, last_name="Lead", agent_id=self.agent["id"],
                phone="+1415555%04d" % (7000 + i + (os.getpid() % 500) * 4), consent_sms=True,
                ghl_contact_id="cf_%s" % uuid.uuid4().hex[:16]))
        self.feed = Feed(self.srv.port, self.jwt)
        assert self.feed.status == 101, self.feed.head
        me = self.feed.expect("authenticated")
        assert me["role"] == "agent", me
        self.feed.subscribe(["coaching:%d" % self.agent["id"]])
        self.conn = None
        self.n = 0

    # -- the three ways in; each returns (method, path, body, headers)
    def rest(self, lead, text):
        body = json.dumps({"channel": "sms", "direction": "inbound", "body": text}).encode()
        return ("POST", "/v1/leads/%d/activities" % lead["id"], body,
                {"Authorization": "Bearer " + self.tn.key, "Content-Type": "application/json"})

    def ghl(self, lead, text):
        ev = {"type": "InboundMessage", "locationId": "loc_feed", "webhookId": str(uuid.uuid4()),
              "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
              "contactId": lead["ghl_contact_id"], "messageType": "SMS", "body": text,
              "messageId": "m-" + uuid.uuid4().hex, "direction": "inbound", "status": "delivered"}
        body = json.dumps(ev).encode()
        sig = base64.b64encode(self.ed.sign(body)).decode()
        return ("POST", "/v1/webhooks/ghl/%s" % self.tn.slug, body,
                {"Content-Type": "application/json", "x-ghl-signature": sig})

    def twilio(self, lead, text):
        path = "/v1/webhooks/twilio/%s" % self.tn.slug
        params = {"MessageSid": "SM" + uuid.uuid4().hex, "From": lead["phone"], "To": FROM, "Body": text}
        url = "http://127.0.0.1:%d%s" % (self.srv.port, path)
        data = url + "".join(k + params[k] for k in sorted(params))
        sig = base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()
        return ("POST", path, urllib.parse.urlencode(params).encode(),
                {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig})

    def one(self, how, lead, text, timeout=5.0):
        """Sends one inbound message and returns the milliseconds from the
        request's first byte to the coaching.updated event for its lead."""
        if self.conn is None:  # keep-alive: connecting is not part of ingestion
            self.conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
            self.conn.connect()
        method, path, body, headers = getattr(self, how)(lead, text)
        t0 = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        end = t0 + timeout
        while True:
            m = self.feed.next(max(0.05, end - time.perf_counter()))
            if m.get("type") == "coaching.updated" and m["data"].get("lead_id") == lead["id"] \
                    and "suggestions" in m["data"]:
                ms = (time.perf_counter() - t0) * 1000.0
                break
        r = self.conn.getresponse()
        data = r.read()
        assert r.status in (200, 201), (how, r.status, data)
        assert m["data"]["agent_id"] == self.agent["id"] and m["data"]["suggestions"], m
        self.n += 1
        return ms

    def close(self):
        if self.conn:
            self.conn.close()
        self.feed.close()


def pct(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def measure(s, rounds, warm=3):
    """rounds x (REST, GHL, Twilio), leads and texts in turn; returns
    {how: [ms...]} (warm-up messages left out)."""
    out = {"rest": [], "ghl": [], "twilio": []}
    i = 0
    for r in range(rounds + warm):
        for how in ("rest", "ghl", "twilio"):
            lead = s.leads[i % len(s.leads)]
            ms = s.one(how, lead, LINES[i % len(LINES)])
            i += 1
            if r >= warm:
                out[how].append(ms)
    return out


def report(out):
    lines = []
    every = [x for v in out.values() for x in v]
    for how, xs in list(out.items()) + [("all", every)]:
        lines.append("%-7s n=%-4d p50 %6.2f ms  p90 %6.2f ms  p99 %6.2f ms  max %6.2f ms" % (
            how, len(xs), pct(xs, 50), pct(xs, 90), pct(xs, 99), max(xs)))
    return "\n".join(lines)


def test_coach_feed_inbound_message_coaches_the_agent_within_50ms(t):
    s = Setup(t)
    try:
        out = measure(s, rounds=34)  # 102 messages, 34 each way
        print(report(out))
        every = [x for v in out.values() for x in v]
        assert len(every) == 102 and all(len(v) == 34 for v in out.values()), out
        assert pct(every, 99) < BUDGET_MS * t.slow, report(out)
        # every message was stored, and one coaching.updated per message in the log
        ev = s.tn.events("coaching.updated")
        mine = [e for e in ev if e["payload"].get("agent_id") == s.agent["id"] and "suggestions" in e["payload"]]
        assert len(mine) == s.n, (len(mine), s.n)
        # an outbound message coaches nobody: nothing arrives for it
        lead = s.leads[0]
        s.tn.ok("POST", "/v1/leads/%d/activities" % lead["id"],
                {"channel": "sms", "direction": "outbound", "body": "Happy to help!"})
        s.tn.ok("POST", "/v1/broadcast", {"topic": "coaching:%d" % s.agent["id"], "type": "marker", "data": {}},
                want=202)
        m = s.feed.events(1)[0]
        assert m["type"] == "marker", m
    finally:
        s.close()
