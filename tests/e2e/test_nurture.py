"""Nurture end to end: templates (variables, opt-out rule, preview and SMS
segments), sequences started by a new lead with the first text reaching a
local server that speaks Twilio's Messages API within a second, waits,
consent, quiet hours, retries of 5xx answers with one message in the end,
SendGrid mail/send, and the providers' webhooks: Twilio status callbacks and
inbound STOP (X-Twilio-Signature), SendGrid events (ECDSA P-256 signature
made here with a fresh key).

The fake providers check what the real ones check (Basic auth with the
account SID and token, Bearer key, the form and JSON fields) and honour the
idempotency key ehub sends, as the exactly-once design relies on.
Standard library plus python3-cryptography (Debian)."""
import base64
import hashlib
import hmac
import json
import re
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lib import FakeProvider, start_fake, wait_for
from tenants import Tenant

SID, TOKEN, FROM = "AC" + "1" * 32, "twilio-test-token", "+14155550000"
SG_KEY, SG_FROM = "SG.test-key", "team@example.com"


class Fake(FakeProvider):
    """Twilio's POST /2010-04-01/Accounts/{sid}/Messages.json and SendGrid's
    POST /v3/mail/send."""
    def do_POST(self):
        st = self.server.state
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        with st["lock"]:
            if st["fail"]:
                st["fail"] -= 1
                st["refused"] += 1
                return self._reply(503, {"code": 20500, "message": "Service unavailable", "status": 503})
        if self.path == "/2010-04-01/Accounts/%s/Messages.json" % SID:
            auth = base64.b64encode(("%s:%s" % (SID, TOKEN)).encode()).decode()
            if self.headers.get("Authorization") != "Basic " + auth:
                return self._reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
            form = dict(urllib.parse.parse_qsl(raw.decode()))
            # ehub's keys are unique within one store; the servers of this
            # module with stores of their own share this fake, so a key is
            # taken per recipient
            key = self.headers.get("I-Twilio-Idempotency-Token", "")
            key = key and key + "|" + form.get("To", "")
            with st["lock"]:
                if key and key in st["keys"]:
                    sid = st["keys"][key]
                else:
                    sid = "SM%032d" % (len(st["sms"]) + 1)
                    st["sms"].append(dict(form, sid=sid, at=time.time(), key=key))
                    st["keys"][key] = sid
            # taken, but the answer held back (a provider that hangs) while
            # the number starts with hold_to
            end = time.time() + 30
            while st["hold_to"] and form.get("To", "").startswith(st["hold_to"]) and time.time() < end:
                time.sleep(0.05)
            return self._reply(201, {"sid": sid, "status": "queued", "to": form.get("To"), "body": form.get("Body")})
        if self.path == "/v3/mail/send":
            if self.headers.get("Authorization") != "Bearer " + SG_KEY:
                return self._reply(401, {"errors": [{"message": "bad key"}]})
            m = json.loads(raw)
            key = self.headers.get("Idempotency-Key", "")
            with st["lock"]:
                if key and key in st["keys"]:
                    mid = st["keys"][key]
                else:
                    mid = "msg%d" % (len(st["mail"]) + 1)
                    st["mail"].append(dict(m, id=mid, key=key))
                    st["keys"][key] = mid
            return self._reply(202, None, {"X-Message-Id": mid})
        self._reply(404, {"message": "not found"})


_fake = None


def _provider():
    global _fake
    if _fake is None:
        _fake = start_fake(Fake, {"sms": [], "mail": [], "keys": {}, "fail": 0, "refused": 0, "hold_to": None})
    return _fake


# Every server of this module sends to the fake providers: with PostgreSQL
# the servers share one queue, as the nodes of a cluster do, and any of
# them may send a step.
_URL = "http://127.0.0.1:%d" % _provider().server_address[1]
SERVER_ARGS = ["--twilio-url", _URL, "--sendgrid-url", _URL]


def _server(t):
    return t.srv


def _tenant(t, **settings):
    tn = Tenant(t, srv=_server(t), prefix="nu")
    base = {"twilio_account_sid": SID, "twilio_auth_token": TOKEN, "twilio_from": FROM,
            "sendgrid_api_key": SG_KEY, "sendgrid_from": SG_FROM,
            # no quiet hours unless a test asks: 00:00-00:00 is never
            "quiet_start": "00:00", "quiet_end": "00:00"}
    base.update(settings)
    tn.ok("PATCH", "/v1/nurture/settings", base)
    return tn


def _sms_to(phone):
    return [m for m in _provider().state["sms"] if m["To"] == phone]


def test_nurture_templates_validation_and_preview(t):
    tn = _tenant(t)
    st, e = tn.api("POST", "/v1/templates", {"name": "no-stop", "channel": "sms", "body": "Hi {{first_name}}"})
    assert st == 422 and "opt out" in e["error"]["fields"]["body"], (st, e)
    st, e = tn.api("POST", "/v1/templates", {"name": "bad-var", "channel": "sms", "marketing": False,
                                              "body": "Hi {{firstname}}"})
    assert st == 422 and "unknown variable" in e["error"]["fields"]["body"], (st, e)
    st, e = tn.api("POST", "/v1/templates", {"name": "mail", "channel": "email", "body": "x"})
    assert st == 422 and "subject" in e["error"]["fields"], (st, e)
    tpl = tn.ok("POST", "/v1/templates", {"name": "hello", "channel": "sms",
                                          "body": "Hi {{first_name|there}}, {{agent.name}} here. Reply STOP to opt out"})
    st, pv = tn.api("POST", "/v1/templates/%d/preview" % tpl["id"])
    assert st == 200 and pv["body"] == "Hi Alex, Your Agent here. Reply STOP to opt out", pv
    assert pv["sms"] == {"encoding": "GSM-7", "units": len(pv["body"]), "segments": 1}, pv
    # the tenant's own name, as the real send uses it, in a sample preview too
    team = tn.ok("POST", "/v1/templates", {"name": "team", "channel": "sms",
                                           "body": "{{tenant.name}}: hi {{first_name}}. Reply STOP to opt out"})
    st, pv = tn.api("POST", "/v1/templates/%d/preview" % team["id"])
    assert st == 200 and pv["body"] == "E2E %s: hi Alex. Reply STOP to opt out" % tn.slug, pv
    lead = tn.create_lead(first_name="", last_name="Ng")
    st, pv = tn.api("POST", "/v1/templates/%d/preview" % tpl["id"], {"lead_id": lead["id"]})
    assert st == 200 and pv["body"].startswith("Hi there, "), pv  # the default for an empty name
    emoji = tn.ok("POST", "/v1/templates", {"name": "long", "channel": "sms", "marketing": False,
                                            "body": "🏡 " + "x" * 80})
    st, pv = tn.api("POST", "/v1/templates/%d/preview" % emoji["id"])
    assert pv["sms"]["encoding"] == "UCS-2" and pv["sms"]["units"] == 83 and pv["sms"]["segments"] == 2, pv
    html = tn.ok("POST", "/v1/templates", {"name": "h", "channel": "email", "subject": "For {{first_name}}",
                                           "body": "<p>{{first_name}}</p>"})
    lead2 = tn.create_lead(first_name="<b>Bo</b>")
    st, pv = tn.api("POST", "/v1/templates/%d/preview" % html["id"], {"lead_id": lead2["id"]})
    assert pv["body"] == "<p>&lt;b&gt;Bo&lt;/b&gt;</p>" and pv["subject"] == "For <b>Bo</b>", pv
    # sequences are checked too
    for steps in ([], [{"type": "wait", "minutes": 5}], [{"type": "sms"}], [{"type": "fax", "template": "x"}],
                  [{"type": "wait", "minutes": 0}, {"type": "sms", "template": "hello"}]):
        st, e = tn.api("POST", "/v1/sequences", {"name": "s", "steps": steps})
        assert st == 422 and "steps" in e["error"]["fields"], (steps, st, e)
    st, e = tn.role_client("viewer").api("POST", "/v1/templates", {"name": "v", "channel": "sms", "body": "STOP"})
    assert st == 403, (st, e)


def test_nurture_first_touch_within_a_second_then_waits(t):
    tn = _tenant(t)
    agent = tn.create_agent("Dana Agent", phone="+14155550111")
    tn.ok("POST", "/v1/templates", {"name": "welcome", "channel": "sms",
                                    "body": "Hi {{first_name}}, it's {{agent.name}}. Reply STOP to opt out"})
    tn.ok("POST", "/v1/templates", {"name": "follow", "channel": "email", "subject": "Homes for you",
                                    "body": "<p>Hi {{first_name}}</p>"})
    seq = tn.ok("POST", "/v1/sequences", {"name": "speed", "start_on": "new_lead", "steps": [
        {"type": "sms", "template": "welcome"}, {"type": "wait", "minutes": 60},
        {"type": "email", "template": "follow"}]})
    # leads arrive as GoHighLevel ContactCreate webhooks (token mode), one
    # after another; each first text must reach "Twilio" within a second
    token = "tok_" + "9" * 32
    tn.ok("PATCH", "/v1/settings", {"ghl_mode": "token", "ghl_token": token})
    latencies = []
    lead = None
    for i in range(200):
        phone = "+1415555%04d" % (2000 + i)
        event = {"type": "ContactCreate", "locationId": "loc_nurture", "webhookId": "wh-%s-%d" % (tn.slug, i),
                 "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), "id": "c_%s_%d" % (tn.slug, i),
                 "firstName": "Lee%d" % i, "phone": phone, "assignedTo": None,
                 "dndSettings": {"SMS": {"status": "inactive"}}}
        t0 = time.time()
        st, h, b = tn.srv.request("POST", "/v1/webhooks/ghl/%s" % tn.slug, json.dumps(event).encode(),
                                  {"Content-Type": "application/json", "X-Webhook-Token": token})
        assert st == 200, (st, b)
        got = wait_for(lambda: _sms_to(phone), timeout=3 * t.slow, step=0.005)
        assert got, "no text for %s" % phone
        latencies.append(got[0]["at"] - t0)
        assert got[0]["Body"].startswith("Hi Lee%d, it's " % i), got[0]
        assert got[0]["From"] == FROM and got[0]["StatusCallback"].endswith("/v1/webhooks/twilio/" + tn.slug)
    latencies.sort()
    p99 = latencies[int(0.99 * len(latencies))]
    assert p99 < 1.0, ("speed to lead p50 %.3f s, p99 %.3f s" % (latencies[100], p99), latencies[-10:])
    lead = tn.list_page(phone=phone)["items"][0]
    # the agent's name comes from the lead's agent
    tn.ok("PATCH", "/v1/leads/%d" % lead["id"], {"agent_id": agent["id"]})
    one = tn.create_lead(first_name="Agented", phone="+14155559999", consent_sms=True, agent_id=agent["id"])
    got = wait_for(lambda: _sms_to("+14155559999"), timeout=3 * t.slow)
    assert got and got[0]["Body"] == "Hi Agented, it's Dana Agent. Reply STOP to opt out", got
    lead = one
    # the message is the lead's activity (recorded once Twilio has answered,
    # so a moment after the fake saw it), the next step waits an hour
    def sent_sms():
        acts = tn.ok("GET", "/v1/leads/%d/activities" % lead["id"])["items"]
        return [a for a in acts if a["direction"] == "outbound" and a["channel"] == "sms"]
    sent = wait_for(sent_sms, timeout=3 * t.slow)
    assert len(sent) == 1 and sent[0]["provider_message_id"].startswith("SM"), sent
    enr = wait_for(lambda: [e for e in tn.ok("GET", "/v1/leads/%d/enrollments" % lead["id"])["items"]
                         if len(e["history"]) == 2])
    hist = enr[0]["history"]
    assert enr[0]["sequence_id"] == seq["id"] and hist[0]["state"] == "done", enr
    assert hist[1]["state"] == "queued" and hist[1]["step"] == 2, hist
    assert 59 * 60000 < hist[1]["due_at"] - hist[0]["updated_at"] < 61 * 60000, hist
    assert any(e["payload"]["lead_id"] == lead["id"] for e in tn.events("nurture.enrolled"))


def test_nurture_consent_quiet_hours_and_stop(t):
    tn = _tenant(t)
    tn.ok("POST", "/v1/templates", {"name": "w", "channel": "sms", "body": "Hello. Reply STOP to opt out"})
    seq = tn.ok("POST", "/v1/sequences", {"name": "m", "steps": [{"type": "sms", "template": "w"},
                                                               {"type": "task", "text": "Call them"}]})
    # no consent: the text is skipped, the task still comes
    quiet = tn.create_lead(first_name="NoConsent", phone="+14155553001", consent_sms=False)
    tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": quiet["id"]})
    enr = wait_for(lambda: [e for e in tn.ok("GET", "/v1/leads/%d/enrollments" % quiet["id"])["items"]
                         if e["state"] == "completed"])
    assert enr and [h["state"] for h in enr[0]["history"]] == ["skipped", "done"], enr
    assert enr[0]["history"][0]["result"] == "no SMS consent"
    assert not _sms_to("+14155553001")
    st, e = tn.api("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": 999999})
    assert st == 404, (st, e)

    # quiet hours in the lead's zone: around now in UTC, so the step waits
    now = time.gmtime()
    start = "%02d:%02d" % ((now.tm_hour + 23) % 24, now.tm_min)
    end = "%02d:%02d" % ((now.tm_hour + 1) % 24, now.tm_min)
    tn.ok("PATCH", "/v1/nurture/settings", {"quiet_start": start, "quiet_end": end})
    night = tn.create_lead(first_name="Night", phone="+14155553002", consent_sms=True, timezone="UTC")
    tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": night["id"]})
    hist = wait_for(lambda: [h for e in tn.ok("GET", "/v1/leads/%d/enrollments" % night["id"])["items"]
                          for h in e["history"] if h["result"]])
    assert hist and hist[0]["state"] == "queued" and "quiet hours" in hist[0]["result"], hist
    assert 3500 * 1000 < hist[0]["due_at"] - int(time.time() * 1000) < 3700 * 1000, hist
    assert not _sms_to("+14155553002")
    tn.ok("PATCH", "/v1/nurture/settings", {"quiet_start": "00:00", "quiet_end": "00:00"})

    # STOP from the lead's phone, signed the way Twilio signs
    talk = tn.create_lead(first_name="Talk", phone="+14155553003", consent_sms=True)
    tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": talk["id"]})
    path = "/v1/webhooks/twilio/%s" % tn.slug
    params = {"MessageSid": "SMinbound1", "From": "+14155553003", "To": FROM, "Body": " stop "}
    body = urllib.parse.urlencode(params).encode()
    url = "http://127.0.0.1:%d%s" % (tn.srv.port, path)
    data = url + "".join(k + params[k] for k in sorted(params))
    good = base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()
    hdr = {"Content-Type": "application/x-www-form-urlencoded"}
    st, h, b = tn.srv.request("POST", path, body, dict(hdr, **{"X-Twilio-Signature": "AAAA" + good[4:]}))
    assert st == 401, (st, b)
    st, h, b = tn.srv.request("POST", path, body, dict(hdr, **{"X-Twilio-Signature": good}))
    assert st == 200 and b"<Response>" in b, (st, b)
    lead = tn.get_lead(talk["id"])
    assert lead["consent_sms"] is False, lead
    enr = tn.ok("GET", "/v1/leads/%d/enrollments" % talk["id"])["items"]
    assert enr[0]["state"] == "exited" and enr[0]["exit_reason"] == "opt_out", enr
    # the same callback again changes nothing
    st, h, b = tn.srv.request("POST", path, body, dict(hdr, **{"X-Twilio-Signature": good}))
    assert st == 200
    inbound = [a for a in tn.ok("GET", "/v1/leads/%d/activities" % talk["id"])["items"] if a["direction"] == "inbound"]
    assert len(inbound) == 1 and inbound[0]["body"] == " stop ", inbound


def test_nurture_status_callbacks_and_retries_send_once(t):
    tn = _tenant(t)
    tn.ok("POST", "/v1/templates", {"name": "w", "channel": "sms", "body": "Hi. Reply STOP to opt out"})
    seq = tn.ok("POST", "/v1/sequences", {"name": "r", "steps": [{"type": "sms", "template": "w"}]})
    fake = _provider().state
    with fake["lock"]:
        fake["fail"] = 2  # two 503s, then it works
    lead = tn.create_lead(first_name="Retry", phone="+14155554001", consent_sms=True)
    tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": lead["id"]})
    got = wait_for(lambda: _sms_to("+14155554001"), timeout=20)
    assert len(got) == 1, got
    hist = wait_for(lambda: [h for e in tn.ok("GET", "/v1/leads/%d/enrollments" % lead["id"])["items"]
                          for h in e["history"] if h["state"] == "done"])
    assert hist[0]["attempts"] == 3, hist
    # a delivery receipt
    sid = got[0]["sid"]
    path = "/v1/webhooks/twilio/%s" % tn.slug
    params = {"MessageSid": sid, "MessageStatus": "delivered", "To": "+14155554001", "From": FROM}
    url = "http://127.0.0.1:%d%s" % (tn.srv.port, path)
    data = url + "".join(k + params[k] for k in sorted(params))
    sig = base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()
    st, h, b = tn.srv.request("POST", path, urllib.parse.urlencode(params).encode(),
                              {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig})
    assert st == 200, (st, b)
    acts = tn.ok("GET", "/v1/leads/%d/activities" % lead["id"])["items"]
    assert [a["status"] for a in acts if a["provider_message_id"] == sid] == ["delivered"], acts


def test_nurture_email_through_sendgrid_and_its_event_webhook(t):
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    tn = _tenant(t, sendgrid_public_key=base64.b64encode(pub).decode())
    st, e = tn.api("PATCH", "/v1/nurture/settings", {"sendgrid_public_key": "not a key"})
    assert st == 422, (st, e)
    s = tn.ok("GET", "/v1/nurture/settings")
    assert s["sendgrid_api_key_set"] is True and "sendgrid_api_key" not in s and s["twilio_auth_token_set"], s
    tn.ok("POST", "/v1/templates", {"name": "m", "channel": "email", "subject": "Hi {{first_name}}",
                                    "body": "<p>New homes, {{first_name}}</p>"})
    seq = tn.ok("POST", "/v1/sequences", {"name": "e", "steps": [{"type": "email", "template": "m"}]})
    lead = tn.create_lead(first_name="Mia", email="mia@example.com", consent_email=True)
    tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": lead["id"]})
    fake = _provider().state
    got = wait_for(lambda: [m for m in fake["mail"] if m["personalizations"][0]["to"][0]["email"] == "mia@example.com"])
    assert got and got[0]["subject"] == "Hi Mia" and got[0]["content"][0]["value"] == "<p>New homes, Mia</p>", got
    assert got[0]["from"]["email"] == SG_FROM
    mid = got[0]["id"]
    wait_for(lambda: [a for a in tn.ok("GET", "/v1/leads/%d/activities" % lead["id"])["items"]
                   if a["provider_message_id"] == mid])

    def post_events(events, tamper=False):
        body = json.dumps(events).encode()
        ts = str(int(time.time()))
        sig = key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
        if tamper:
            body = body.replace(b"delivered", b"bounce")
        return tn.srv.request("POST", "/v1/webhooks/sendgrid/%s" % tn.slug, body,
                              {"Content-Type": "application/json",
                               "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
                               "X-Twilio-Email-Event-Webhook-Timestamp": ts})

    events = [{"email": "mia@example.com", "event": "delivered", "sg_event_id": "ev1",
               "sg_message_id": mid + ".filter001", "timestamp": int(time.time())}]
    st, h, b = post_events(events, tamper=True)
    assert st == 401, (st, b)
    st, h, b = post_events(events)
    assert st == 200 and json.loads(b)["applied"] == 1, (st, b)
    st, h, b = post_events(events)  # a redelivery is applied once
    assert st == 200 and json.loads(b)["applied"] == 0, (st, b)
    acts = tn.ok("GET", "/v1/leads/%d/activities" % lead["id"])["items"]
    assert [a["status"] for a in acts if a["provider_message_id"] == mid] == ["delivered"], acts
    st, h, b = post_events([{"email": "mia@example.com", "event": "unsubscribe", "sg_event_id": "ev2",
                             "timestamp": int(time.time())}])
    assert st == 200, (st, b)
    assert tn.get_lead(lead["id"])["consent_email"] is False


def test_nurture_sigkill_mid_batch_sends_each_message_once(t):
    srv = t.new_server(extra=SERVER_ARGS, name="nurture-crash")
    tn = Tenant(t, srv=srv, prefix="nk")
    tn.ok("PATCH", "/v1/nurture/settings", {"twilio_account_sid": SID, "twilio_auth_token": TOKEN,
                                            "twilio_from": FROM, "quiet_start": "00:00", "quiet_end": "00:00",
                                            "daily_cap": 5})
    tn.ok("POST", "/v1/templates", {"name": "hi", "channel": "sms", "body": "Hi {{first_name}}. Reply STOP to opt out"})
    tn.ok("POST", "/v1/sequences", {"name": "speed", "start_on": "new_lead", "steps": [{"type": "sms", "template": "hi"}]})
    n = 1000
    phones = ["+1415666%04d" % i for i in range(n)]
    csv = "first_name,phone,consent_sms\n" + "".join("K%d,%s,yes\n" % (i, p) for i, p in enumerate(phones))
    st, h, b = srv.request("POST", "/v1/leads/import", csv.encode(),
                           {"Authorization": "Bearer " + tn.key, "Content-Type": "text/csv"}, timeout=120)
    assert st == 200 and json.loads(b)["imported"] == n, (st, b[:300])
    wanted = set(phones)
    fake = _provider().state

    def delivered():
        with fake["lock"]:
            return [m for m in fake["sms"] if m["To"] in wanted]

    assert wait_for(lambda: len(delivered()) >= n // 4, timeout=60 * t.slow), len(delivered())
    srv.kill()  # SIGKILL in the middle of the batch
    before = len(delivered())
    assert before < n, "all sent before the kill: the test proves nothing"
    srv.start()
    ok = wait_for(lambda: len(delivered()) == n, timeout=120 * t.slow)
    assert ok, (len(delivered()), tn.db("SELECT state, attempts, substr(result, 1, 12) AS r, COUNT(*) AS n "
                                        "FROM nurture_jobs WHERE tenant_id = {tenant} GROUP BY 1, 2, 3"))
    time.sleep(1.5)  # anything extra would show up now
    got = delivered()
    assert sorted(m["To"] for m in got) == sorted(phones), "each lead exactly one message"
    # every step ends done: those the crash left "sending" are claimed
    # again when their lease runs out and re-sent with the same idempotency
    # key, which the provider answers with the same message
    q = "SELECT state, COUNT(*) AS n FROM nurture_jobs WHERE tenant_id = {tenant} GROUP BY state"
    rows = wait_for(lambda: tn.db(q) == [{"state": "done", "n": n}], timeout=60 * t.slow)
    assert rows, tn.db("SELECT state, attempts, result FROM nurture_jobs WHERE tenant_id = {tenant} AND state <> 'done'")
    assert sorted(m["To"] for m in delivered()) == sorted(phones), "still one message each"
    srv.stop()


def test_nurture_sigterm_cuts_sends_in_flight_and_resends_them_once(t):
    """SIGTERM while the provider holds its answers: ehub stops within its
    2 s grace for calls in flight (not the 10 s send timeout), the cut steps
    are queued again with the attempt given back, and after the restart
    they go out with the same idempotency key: one message each."""
    srv = t.new_server(extra=SERVER_ARGS, name="nurture-term")
    tn = Tenant(t, srv=srv, prefix="nt")
    tn.ok("PATCH", "/v1/nurture/settings", {"twilio_account_sid": SID, "twilio_auth_token": TOKEN,
                                            "twilio_from": FROM, "quiet_start": "00:00", "quiet_end": "00:00"})
    tn.ok("POST", "/v1/templates", {"name": "hi", "channel": "sms", "body": "Hi {{first_name}}. Reply STOP to opt out"})
    tn.ok("POST", "/v1/sequences", {"name": "speed", "start_on": "new_lead", "steps": [{"type": "sms", "template": "hi"}]})
    fake = _provider().state
    prefix = "+1415777"
    # five leads, one after another, so in several claims: a held send
    # holds back only itself, so all five are out when the signal comes
    phones = [prefix + "%04d" % i for i in range(5)]

    def taken():
        with fake["lock"]:
            return [m for m in fake["sms"] if m["To"].startswith(prefix)]

    with fake["lock"]:
        fake["hold_to"] = prefix
    try:
        for p in phones:
            tn.create_lead(first_name="T", phone=p, consent_sms=True)
        assert wait_for(lambda: len(taken()) == len(phones), timeout=10 * t.slow), taken()
        t0 = time.time()
        assert srv.stop() == 0
        took = time.time() - t0
        assert took < 6 * t.slow, "stopped in %.1f s" % took
        if t.backend == "sqlite":  # on PostgreSQL another node may have claimed them already
            rows = tn.db("SELECT state, attempts, result FROM nurture_jobs WHERE tenant_id = {tenant}")
            assert len(rows) == len(phones) and all(r["state"] == "queued" and r["attempts"] == 0 and "stopping" in r["result"]
                                          for r in rows), rows
    finally:
        with fake["lock"]:
            fake["hold_to"] = None
    srv.start()
    q = "SELECT state, COUNT(*) AS n FROM nurture_jobs WHERE tenant_id = {tenant} GROUP BY state"
    assert wait_for(lambda: tn.db(q) == [{"state": "done", "n": len(phones)}], timeout=30 * t.slow), tn.db(q)
    time.sleep(0.5)
    assert sorted(m["To"] for m in taken()) == sorted(phones), "one message each"
    srv.stop()


def test_nurture_circuit_breaker_opens_and_recovers(t):
    tn = _tenant(t)
    tn.ok("POST", "/v1/templates", {"name": "w", "channel": "sms", "body": "Hi. Reply STOP to opt out"})
    seq = tn.ok("POST", "/v1/sequences", {"name": "b", "steps": [{"type": "sms", "template": "w"}]})
    fake = _provider().state
    leads = [tn.create_lead(first_name="B%d" % i, phone="+1415557%04d" % i, consent_sms=True) for i in range(6)]
    with fake["lock"]:
        fake["fail"], fake["refused"] = 1000, 0  # the provider is down
    try:
        for lead in leads:
            tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": lead["id"]})

        def results():
            return [h["result"] or "" for lead in leads
                    for e in tn.ok("GET", "/v1/leads/%d/enrollments" % lead["id"])["items"] for h in e["history"]]

        # five failures in a row open the circuit: the retries wait without calling the provider
        assert wait_for(lambda: sum("circuit open" in r for r in results()) == 6, timeout=15 * t.slow), results()
        # the five that open it, plus any already on their way in the same
        # batch (all six when they were claimed together)
        refused = fake["refused"]
        assert 5 <= refused < 12, refused
        time.sleep(1)
        assert fake["refused"] == refused, "no calls while the circuit is open"
    finally:
        with fake["lock"]:
            fake["fail"] = 0  # the provider is back
    # after the cool-down the waiting steps go out, and the circuit closes
    assert wait_for(lambda: all(_sms_to("+1415557%04d" % i) for i in range(6)), timeout=20 * t.slow)
    st, h, b = tn.srv.request("GET", "/metrics")
    assert b'ehub_nurture_breaker_open_total{channel="sms"}' in b, b[-2000:]


def _held_tenant(t, prefix, n):
    """A tenant whose new leads get a first text, and n of its leads whose
    numbers start with prefix: the provider takes each text and holds its
    answer (hold_to) until the test lets go. Returns (tenant, phones)."""
    tn = _tenant(t)
    tn.ok("POST", "/v1/templates", {"name": "hi", "channel": "sms", "body": "Hi {{first_name}}. Reply STOP to opt out"})
    tn.ok("POST", "/v1/sequences", {"name": "speed", "start_on": "new_lead", "steps": [{"type": "sms", "template": "hi"}]})
    return tn, [prefix + "%04d" % i for i in range(n)]


def _taken(prefix):
    fake = _provider().state
    with fake["lock"]:
        return [m for m in fake["sms"] if m["To"].startswith(prefix)]


def _first_touch_within_a_second(t, prefix):
    """Another tenant's new lead: its first text reaches the provider
    within a second of the lead's creation."""
    other, _ = _held_tenant(t, prefix, 0)
    phone = prefix + "0001"
    t0 = time.time()
    other.create_lead(first_name="Quick", phone=phone, consent_sms=True)
    got = wait_for(lambda: _sms_to(phone), timeout=5 * t.slow, step=0.005)
    assert got, "no first touch for the other tenant's lead"
    took = got[0]["at"] - t0
    assert took < 1.0 * t.slow, "the other tenant's first touch took %.2f s" % took
    return other, phone


def _each_sent_once(t, tn, phones):
    """After the provider lets go: every held step done, one message and one
    outbound activity per lead."""
    q = "SELECT state, COUNT(*) AS n FROM nurture_jobs WHERE tenant_id = {tenant} GROUP BY state"
    assert wait_for(lambda: tn.db(q) == [{"state": "done", "n": len(phones)}], timeout=30 * t.slow), tn.db(q)
    time.sleep(0.5)  # a repeat would show up now
    assert sorted(m["To"] for m in _taken(phones[0][:-4])) == sorted(phones), "one message each"
    acts = tn.db("SELECT a.lead_id, COUNT(*) AS n FROM activities a WHERE a.tenant_id = {tenant} "
                 "AND a.direction = 'outbound' AND a.channel = 'sms' GROUP BY a.lead_id")
    assert len(acts) == len(phones) and all(a["n"] == 1 for a in acts), acts


def test_nurture_hung_provider_holds_back_only_its_own_sends(t):
    """The provider hangs on every text to tenant A's numbers (ten of them,
    one lead after another: more than the three batches the dispatcher once
    had, each kept out by its held send). Tenant B's new lead still gets its
    first text within a second; when the provider answers, A's ten are
    recorded, one message each."""
    prefix = "+1415778"
    tn, phones = _held_tenant(t, prefix, 10)
    fake = _provider().state
    with fake["lock"]:
        fake["hold_to"] = prefix
    try:
        for p in phones:
            tn.create_lead(first_name="H", phone=p, consent_sms=True)
        # each one claimed and its call made, though none has an answer
        assert wait_for(lambda: len(_taken(prefix)) == len(phones), timeout=5 * t.slow), len(_taken(prefix))
        _first_touch_within_a_second(t, "+1415779")
        held = tn.db("SELECT state, COUNT(*) AS n FROM nurture_jobs WHERE tenant_id = {tenant} GROUP BY state")
        assert held == [{"state": "sending", "n": len(phones)}], held
    finally:
        with fake["lock"]:
            fake["hold_to"] = None
    _each_sent_once(t, tn, phones)


def test_nurture_one_tenant_cannot_take_every_call_in_flight(t):
    """A tenant with more held texts than its share of the calls in flight
    (200 of 300): the provider sees at most 200 of them at once, the rest
    wait (attempt given back) instead of taking the room, another tenant's
    first touch still goes out within a second, and when the provider
    answers every lead gets one message."""
    prefix = "+1415780"
    tn, phones = _held_tenant(t, prefix, 220)
    fake = _provider().state
    with fake["lock"]:
        fake["hold_to"] = prefix
    try:
        csv = "first_name,phone,consent_sms\n" + "".join("F%d,%s,yes\n" % (i, p) for i, p in enumerate(phones))
        st, h, b = tn.srv.request("POST", "/v1/leads/import", csv.encode(),
                                  {"Authorization": "Bearer " + tn.key, "Content-Type": "text/csv"}, timeout=60)
        assert st == 200 and json.loads(b)["imported"] == len(phones), (st, b[:300])
        assert wait_for(lambda: len(_taken(prefix)) >= 200, timeout=10 * t.slow), len(_taken(prefix))
        waiting = "SELECT COUNT(*) AS n FROM nurture_jobs WHERE tenant_id = {tenant} AND state = 'queued' " \
                  "AND attempts = 0 AND result LIKE 'waiting: the tenant has 200 provider calls in flight%'"
        assert wait_for(lambda: tn.db(waiting)[0]["n"] == len(phones) - 200, timeout=10 * t.slow), tn.db(waiting)
        _first_touch_within_a_second(t, "+1415781")
        time.sleep(1.5)  # the waiting ones come round again, and wait again
        assert len(_taken(prefix)) == 200, len(_taken(prefix))
        st, h, b = tn.srv.request("GET", "/metrics")
        m = re.search(rb"^ehub_nurture_deferred_total (\d+)", b, re.M)
        assert m and int(m.group(1)) >= len(phones) - 200, b[-1500:]
    finally:
        with fake["lock"]:
            fake["hold_to"] = None
    _each_sent_once(t, tn, phones)
