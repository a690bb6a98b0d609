"""Nurture, the newer paths end to end: email over SMTP (a local asyncio
receiver: AUTH PLAIN with the password read from a file, MIME text + HTML,
the Message-ID as idempotency hint, 451 retried, 550 dead-lettered),
sending through GoHighLevel's conversations API (its request shape, its
100 requests per window never exceeded at the fake server, 429 with
Retry-After), the branch / wait_until / task steps, agent takeover, the
"gone cold" trigger, and Apollo people/match enrichment (429 and 5xx).

The fake GHL and Apollo check what the real ones check (Bearer token and
Version header; X-Api-Key). Windows are shortened for test speed:
--ghl-window 2s, --apollo-limit 5/s, --cold-every 1s."""
import json
import os
import sqlite3
import subprocess
import time

from smtp_fake import SmtpFake
from lib import FakeProvider, start_fake, wait_for
from tenants import Tenant

GHL_KEY, APOLLO_KEY = "pit-test-ghl-key", "apollo-test-key"
SMTP_USER, SMTP_PW = "mailer", "s3cret-pw"
GHL_WINDOW = 2.0


class Fake(FakeProvider):
    """GHL's POST /conversations/messages and Apollo's POST /api/v1/people/match."""
    def do_POST(self):
        st = self.server.state
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        at = time.time()
        if self.path == "/conversations/messages":
            if self.headers.get("Authorization") != "Bearer " + GHL_KEY:
                return self._reply(401, {"statusCode": 401, "message": "Invalid JWT"})
            if self.headers.get("Version") != "2021-04-15":
                return self._reply(400, {"statusCode": 400, "message": "version header was not found"})
            m = json.loads(raw)
            with st["lock"]:
                st["ghl_at"].append(at)
                if st["ghl_429"]:
                    st["ghl_429"] -= 1
                    st["ghl_throttled"] += 1
                    return self._reply(429, {"statusCode": 429, "message": "Too many requests"}, {"Retry-After": "1"})
                if m.get("type") not in ("SMS", "Email") or not m.get("contactId"):
                    return self._reply(422, {"statusCode": 422, "message": ["type must be a valid enum value"]})
                mid = "msg_%d" % (len(st["ghl"]) + 1)
                st["ghl"].append(dict(m, messageId=mid, at=at))
            return self._reply(201, {"conversationId": "conv_" + m["contactId"], "messageId": mid,
                                     "msg": "Message queued successfully."})
        if self.path == "/api/v1/people/match":
            if self.headers.get("X-Api-Key") != APOLLO_KEY:
                return self._reply(401, {"error": "Invalid access credentials."})
            m = json.loads(raw)
            em = m.get("email", "")
            with st["lock"]:
                st["apollo_at"].append(at)
                st["apollo"].append(m)
                if em.startswith("busy") and st["apollo_busy"]:
                    st["apollo_busy"] -= 1
                    return self._reply(429, {"error": "rate limit"}, {"Retry-After": "1"})
                if em.startswith("down"):
                    return self._reply(503, {"error": "Service Unavailable"})
            if em.startswith("nobody"):
                return self._reply(200, {"person": None})
            first = m.get("first_name", "x")
            return self._reply(200, {"person": {
                "id": "p_" + first, "first_name": first, "last_name": m.get("last_name"),
                "title": "VP Sales", "linkedin_url": "http://www.linkedin.com/in/" + first.lower(),
                "organization": {"id": "o1", "name": "Acme Realty"}}})
        self._reply(404, {"message": "not found"})


def _start():
    srv = start_fake(Fake, {"ghl": [], "ghl_at": [], "ghl_429": 0, "ghl_throttled": 0,
                 "apollo": [], "apollo_at": [], "apollo_busy": 0}, backlog=512)
    return srv


_fake = _start()
_smtp = SmtpFake(SMTP_USER, SMTP_PW)
_URL = "http://127.0.0.1:%d" % _fake.server_address[1]
SERVER_ARGS = ["--ghl-url", _URL, "--apollo-url", _URL, "--ghl-window", "%ds" % GHL_WINDOW,
               "--apollo-limit", "5/s", "--cold-every", "1s"]


def _tenant(t, **settings):
    tn = Tenant(t, srv=t.srv, prefix="np")
    base = {"quiet_start": "00:00", "quiet_end": "00:00", "daily_cap": 100}
    base.update(settings)
    tn.ok("PATCH", "/v1/nurture/settings", base)
    return tn


def _enrollments(tn, lead_id):
    return tn.ok("GET", "/v1/leads/%d/enrollments" % lead_id)["items"]


def _exec(t, tn, sql):
    """A write the API has no door for: moving a due time to now (time travel)."""
    sql = sql.replace("{tenant}", "(SELECT id FROM tenants WHERE slug = '%s')" % tn.slug)
    if t.backend == "postgres":
        r = subprocess.run(["psql", t.srv.store, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c",
                            "SELECT set_config('ehub.tenant_id', '0', false)", "-c", sql],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return
    c = sqlite3.connect(os.path.join(t.srv.tmp, "data", "ehub.db"), timeout=10)
    try:
        c.execute(sql)
        c.commit()
    finally:
        c.close()


def test_nurture_smtp_mime_auth_retry_and_dead_letter(t):
    # the operator leaves the password in DATA_DIR/secrets; the tenant names the file
    secrets = os.path.join(t.srv.tmp, "data", "secrets")
    os.makedirs(secrets, exist_ok=True)
    with open(os.path.join(secrets, "smtp-pw"), "w") as f:
        f.write(SMTP_PW + "\n")
    tn = _tenant(t, email_via="smtp", smtp_host="127.0.0.1", smtp_port=_smtp.port, smtp_tls="none",
                 smtp_user=SMTP_USER, smtp_password_from="file:smtp-pw", smtp_from="team@homes.example")
    s = tn.ok("GET", "/v1/nurture/settings")
    assert s["email_via"] == "smtp" and s["smtp_password_from"] == "file:smtp-pw" and "s3cret" not in json.dumps(s)
    # a password, another directory, a server variable: refused
    for ref in ("hunter2", "file:../ehub.db", "file:/etc/passwd", "env:EHUB_STORE", "env:EHUB_SMTP_a"):
        st, e = tn.api("PATCH", "/v1/nurture/settings", {"smtp_password_from": ref})
        assert st == 422 and "smtp_password_from" in e["error"]["fields"], (ref, st, e)
    st, e = tn.api("PATCH", "/v1/nurture/settings", {"cold_sequence_id": 987654321})
    assert st == 422 and "cold_sequence_id" in e["error"]["message"], (st, e)
    st, e = tn.api("PATCH", "/v1/nurture/settings", {"email_via": "pigeon", "smtp_port": 70000})
    assert st == 422 and set(e["error"]["fields"]) == {"email_via", "smtp_port"}, e
    tn.ok("POST", "/v1/templates", {"name": "m", "channel": "email", "subject": "Bienvenue {{first_name}} ✓",
                                    "body": "<p>Hi {{first_name}} &amp; family,</p><p>Homes for you</p>"})
    seq = tn.ok("POST", "/v1/sequences", {"name": "mail", "steps": [{"type": "email", "template": "m"}]})

    lead = tn.create_lead(first_name="Zoé", email="zoe@buyers.example", consent_email=True)
    tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": lead["id"]})
    got = wait_for(lambda: _smtp.to("zoe@buyers.example"))
    assert len(got) == 1, got
    m = got[0]
    assert m["auth"] == SMTP_USER and m["from"] == "team@homes.example", m
    msg = m["msg"]
    assert msg["Subject"] == "Bienvenue Zoé ✓" and msg.get_content_type() == "multipart/alternative", msg
    parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
    assert parts["text/html"] == "<p>Hi Zoé &amp; family,</p><p>Homes for you</p>", parts
    assert "Hi Zoé & family," in parts["text/plain"] and "<p>" not in parts["text/plain"], parts
    # recorded once the server has answered: a moment after the receiver has it
    acts = wait_for(lambda: [a for a in tn.ok("GET", "/v1/leads/%d/activities" % lead["id"])["items"]
                          if a["channel"] == "email"])
    assert acts and acts[0]["provider_message_id"] == msg["Message-ID"], (acts, msg["Message-ID"])
    hist = wait_for(lambda: [h for e in _enrollments(tn, lead["id"]) for h in e["history"] if h["state"] == "done"])
    assert "sent via smtp" in hist[0]["result"], hist

    # 451 twice: retried with backoff, one message in the end
    lead = tn.create_lead(first_name="Temp", email="tempfail+2@buyers.example", consent_email=True)
    tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": lead["id"]})
    got = wait_for(lambda: _smtp.to("tempfail+2@buyers.example"), timeout=25)
    assert len(got) == 1, got
    hist = wait_for(lambda: [h for e in _enrollments(tn, lead["id"]) for h in e["history"] if h["state"] == "done"])
    assert hist and hist[0]["attempts"] == 3, hist
    # 550: dead letter at once
    lead = tn.create_lead(first_name="Rej", email="reject@buyers.example", consent_email=True)
    tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": lead["id"]})
    hist = wait_for(lambda: [h for e in _enrollments(tn, lead["id"]) for h in e["history"] if h["state"] == "failed"])
    assert hist and hist[0]["attempts"] == 1 and "SMTP 550" in hist[0]["result"], hist
    assert any(e["payload"]["lead_id"] == lead["id"] for e in tn.events("nurture.failed"))
    st, h, b = t.srv.request("GET", "/metrics")
    assert b'ehub_nurture_provider_requests_total{provider="smtp",outcome="sent"}' in b
    # STARTTLS required (the default) and the server has none: nothing goes out in clear, no retry
    tn.ok("PATCH", "/v1/nurture/settings", {"smtp_tls": "starttls"})
    lead = tn.create_lead(first_name="Tls", email="tls@buyers.example", consent_email=True)
    tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": lead["id"]})
    hist = wait_for(lambda: [h for e in _enrollments(tn, lead["id"]) for h in e["history"] if h["state"] == "failed"])
    assert hist and hist[0]["attempts"] == 1 and "SMTP" in hist[0]["result"], hist
    assert not _smtp.to("tls@buyers.example")


def test_nurture_ghl_send_respects_100_per_window_and_429(t):
    tn = _tenant(t, sms_via="ghl", email_via="ghl", ghl_api_key=GHL_KEY)
    assert tn.ok("GET", "/v1/nurture/settings")["ghl_api_key_set"] is True
    tn.ok("POST", "/v1/templates", {"name": "g", "channel": "sms", "body": "Hi {{first_name}}. Reply STOP to opt out"})
    tn.ok("POST", "/v1/sequences", {"name": "ghl", "start_on": "new_lead", "steps": [{"type": "sms", "template": "g"}]})
    st = _fake.state
    with st["lock"]:
        st["ghl_429"] = 3
    t0 = time.time()
    ids = []
    for i in range(250):
        lead = tn.create_lead(first_name="G%d" % i, phone="+1415556%04d" % i, consent_sms=True,
                              ghl_contact_id="ct_%s_%d" % (tn.slug, i))
        ids.append(lead["id"])
    mine = lambda: [m for m in st["ghl"] if m["contactId"].startswith("ct_%s_" % tn.slug)]
    got = wait_for(lambda: len(mine()) >= 250 and mine(), timeout=60)
    assert len(got) == 250 and len({m["contactId"] for m in got}) == 250, len(got)
    assert got[0]["type"] == "SMS" and got[0]["message"].startswith("Hi G"), got[0]
    assert st["ghl_throttled"] == 3
    # never more than 100 requests (429s included) in any window, as GHL counts them
    at = sorted(a for a in st["ghl_at"] if a >= t0)
    worst = max(sum(1 for b in at[i:i + 101] if b - a < GHL_WINDOW) for i, a in enumerate(at))
    assert worst <= 100, worst
    assert at[-1] - at[0] >= 2 * GHL_WINDOW * 0.9, (at[-1] - at[0])  # 250 sends need two more windows
    # the message is the lead's activity with GHL's id; the echo of it is not an agent taking over
    lead = ids[0]
    acts = wait_for(lambda: [a for a in tn.ok("GET", "/v1/leads/%d/activities" % lead)["items"] if a["channel"] == "sms"])
    assert acts and acts[0]["provider_message_id"].startswith("msg_"), acts
    hist = [h for e in _enrollments(tn, lead) for h in e["history"]]
    assert "sent via ghl" in hist[0]["result"], hist
    st_, h, b = t.srv.request("GET", "/metrics")
    assert b'ehub_nurture_provider_requests_total{provider="ghl",outcome="throttled"} 3' in b, b[:0]


def test_nurture_steps_task_branch_wait_until_and_takeover(t):
    tn = _tenant(t)
    agent = tn.create_agent("Tess Agent")
    bad = [
        [{"type": "branch", "if": "score_at_least", "goto": 2}, {"type": "task", "text": "x"}],
        [{"type": "task", "text": "x"}, {"type": "branch", "if": "no_reply", "goto": 1}],
        [{"type": "wait_until", "start": "9:00", "end": "9:00"}, {"type": "task", "text": "x"}],
    ]
    for steps in bad:
        st, e = tn.api("POST", "/v1/sequences", {"name": "bad", "steps": steps})
        assert st == 422, (steps, st, e)
    st, e = tn.api("POST", "/v1/sequences", {"name": "bad", "steps": [
        {"type": "branch", "if": "replied", "goto": 3}, {"type": "task", "text": "a"}]})
    assert st == 422 and "exit_on_reply" in e["error"]["fields"], e

    # task for the agent, and a score branch that jumps over a step
    seq = tn.ok("POST", "/v1/sequences", {"name": "score", "steps": [
        {"type": "task", "text": "Call the lead"},
        {"type": "branch", "if": "score_at_least", "value": 0.0, "goto": 4},
        {"type": "task", "text": "skipped by the branch"},
        {"type": "task", "text": "after the branch"}]})
    lead = tn.create_lead(first_name="Br", phone="+14155557001", agent_id=agent["id"])
    tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": lead["id"]})
    enr = wait_for(lambda: [e for e in _enrollments(tn, lead["id"]) if e["state"] == "completed"])
    assert enr, _enrollments(tn, lead["id"])
    hist = enr[0]["history"]
    assert [h["step"] for h in hist] == [0, 1, 3], hist
    assert hist[1]["result"].startswith("score_at_least: score ") and "on to step 4" in hist[1]["result"], hist
    tasks = [e["payload"] for e in tn.events("nurture.task") if e["payload"]["lead_id"] == lead["id"]]
    assert [x["text"] for x in tasks] == ["Call the lead", "after the branch"], tasks
    assert tasks[0]["agent_id"] == agent["id"], tasks
    acts = tn.ok("GET", "/v1/leads/%d/activities" % lead["id"])["items"]
    assert sum(1 for a in acts if a["channel"] == "task" and a["status"] == "open") == 2, acts

    # a reply branch in a sequence that does not end on replies
    seq = tn.ok("POST", "/v1/sequences", {"name": "reply", "exit_on_reply": False, "steps": [
        {"type": "wait", "minutes": 60}, {"type": "branch", "if": "replied", "goto": 4},
        {"type": "task", "text": "no reply yet"}, {"type": "task", "text": "they replied"}]})
    lead = tn.create_lead(first_name="Rep", phone="+14155557002")
    tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": lead["id"]})
    tn.ok("POST", "/v1/leads/%d/activities" % lead["id"], {"channel": "sms", "direction": "inbound", "body": "yes!"})
    assert _enrollments(tn, lead["id"])[0]["state"] == "active"
    _exec(t, tn, "UPDATE nurture_jobs SET due_at = 0 WHERE tenant_id = {tenant} AND state = 'queued'")
    enr = wait_for(lambda: [e for e in _enrollments(tn, lead["id"]) if e["state"] == "completed"])
    assert enr and [h["step"] for h in enr[0]["history"]] == [1, 3], enr

    # a reply ends the lead's sequences that end on replies, and only those
    # (SQLite: the ids are read, then that UPDATE; PostgreSQL: UPDATE ... RETURNING)
    ends = tn.ok("POST", "/v1/sequences", {"name": "ends on reply", "steps": [
        {"type": "wait", "minutes": 60}, {"type": "task", "text": "never"}]})
    lead = tn.create_lead(first_name="Ends", phone="+14155557006")
    e1 = tn.ok("POST", "/v1/sequences/%d/enroll" % ends["id"], {"lead_id": lead["id"]})
    e2 = tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": lead["id"]})
    other = tn.create_lead(first_name="Other", phone="+14155557007")
    tn.ok("POST", "/v1/sequences/%d/enroll" % ends["id"], {"lead_id": other["id"]})
    tn.ok("POST", "/v1/leads/%d/activities" % lead["id"], {"channel": "sms", "direction": "inbound", "body": "hi"})
    by_seq = {e["sequence_id"]: e for e in _enrollments(tn, lead["id"])}
    assert by_seq[ends["id"]]["state"] == "exited" and by_seq[ends["id"]]["exit_reason"] == "replied", by_seq
    assert by_seq[seq["id"]]["state"] == "active", by_seq
    assert _enrollments(tn, other["id"])[0]["state"] == "active"
    exited = [e["payload"] for e in tn.events("nurture.exited") if e["payload"]["lead_id"] == lead["id"]]
    assert [(x["enrollment_id"], x["reason"]) for x in exited] == [(by_seq[ends["id"]]["id"], "replied")], (exited, e1, e2)
    # a second reply finds nothing to end
    tn.ok("POST", "/v1/leads/%d/activities" % lead["id"], {"channel": "sms", "direction": "inbound", "body": "hi again"})
    assert len([e for e in tn.events("nurture.exited") if e["payload"]["lead_id"] == lead["id"]]) == 1

    # wait_until a local window that is not now: due when it opens (UTC lead)
    now = time.gmtime()
    start_h = (now.tm_hour + 2) % 24
    seq = tn.ok("POST", "/v1/sequences", {"name": "window", "steps": [
        {"type": "wait_until", "start": "%02d:00" % start_h, "end": "%02d:00" % ((start_h + 1) % 24)},
        {"type": "task", "text": "in the window"}]})
    lead = tn.create_lead(first_name="Win", phone="+14155557003", timezone="UTC")
    tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": lead["id"]})
    h = _enrollments(tn, lead["id"])[0]["history"]
    want = (int(time.time()) // 3600 + 2) * 3600 * 1000
    assert h[0]["state"] == "queued" and h[0]["step"] == 1 and h[0]["due_at"] == want, (h, want)

    # the agent texts the lead by hand: the sequence gives way
    lead = tn.create_lead(first_name="Take", phone="+14155557004")
    tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": lead["id"]})
    tn.ok("POST", "/v1/leads/%d/activities" % lead["id"], {"channel": "call", "direction": "outbound"})
    enr = _enrollments(tn, lead["id"])
    assert enr[0]["state"] == "exited" and enr[0]["exit_reason"] == "agent_takeover", enr
    # won: the sequence ends too
    lead = tn.create_lead(first_name="Won", phone="+14155557005")
    tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": lead["id"]})
    tn.ok("PATCH", "/v1/leads/%d" % lead["id"], {"status": "won"})
    enr = _enrollments(tn, lead["id"])
    assert enr[0]["state"] == "exited" and enr[0]["exit_reason"] == "won", enr


def test_nurture_gone_cold_trigger_enrolls_once(t):
    tn = _tenant(t)
    seq = tn.ok("POST", "/v1/sequences", {"name": "cold", "steps": [
        {"type": "wait", "minutes": 600}, {"type": "task", "text": "Re-engage"}]})
    cold = tn.create_lead(first_name="Cold", phone="+14155558001")
    warm = tn.create_lead(first_name="Warm", phone="+14155558002")
    old = int(time.time() * 1000) - 10 * 86400000
    tn.ok("POST", "/v1/leads/%d/activities" % cold["id"], {"channel": "sms", "direction": "inbound", "body": "hi",
                                                            "occurred_at": old})
    tn.ok("POST", "/v1/leads/%d/activities" % warm["id"], {"channel": "sms", "direction": "inbound", "body": "hi"})
    st, e = tn.api("PATCH", "/v1/nurture/settings", {"cold_days": 0})
    assert st == 422, (st, e)
    tn.ok("PATCH", "/v1/nurture/settings", {"cold_sequence_id": seq["id"], "cold_days": 7})
    enr = wait_for(lambda: _enrollments(tn, cold["id"]), timeout=8)
    assert len(enr) == 1 and enr[0]["sequence_id"] == seq["id"] and enr[0]["state"] == "active", enr
    why = [e["payload"]["why"] for e in tn.events("nurture.enrolled") if e["payload"]["lead_id"] == cold["id"]]
    assert why == ["gone cold: no reply"], why
    time.sleep(3)  # more scans: still one enrollment
    assert len(_enrollments(tn, cold["id"])) == 1
    # the warm lead wrote today: low churn risk, not enrolled
    risk = tn.ok("POST", "/v1/predict-churn", {"lead_id": warm["id"]})["risk"]
    assert risk == "low" and not _enrollments(tn, warm["id"]), risk

    # churn risk high though not silent for cold_days (30): wrote 20 days ago, texted 5 days ago
    tn2 = _tenant(t)
    seq2 = tn2.ok("POST", "/v1/sequences", {"name": "cold2", "steps": [
        {"type": "wait", "minutes": 600}, {"type": "task", "text": "Re-engage"}]})
    lead = tn2.create_lead(first_name="Churny", phone="+14155558003")
    now = int(time.time() * 1000)
    tn2.ok("POST", "/v1/leads/%d/activities" % lead["id"], {"channel": "sms", "direction": "inbound", "body": "hi",
                                                             "occurred_at": now - 20 * 86400000})
    tn2.ok("POST", "/v1/leads/%d/activities" % lead["id"], {"channel": "sms", "direction": "outbound",
                                                             "body": "still looking?", "occurred_at": now - 5 * 86400000})
    assert tn2.ok("POST", "/v1/predict-churn", {"lead_id": lead["id"]})["risk"] == "high"
    tn2.ok("PATCH", "/v1/nurture/settings", {"cold_sequence_id": seq2["id"], "cold_days": 30})
    enr = wait_for(lambda: _enrollments(tn2, lead["id"]), timeout=8)
    assert len(enr) == 1 and enr[0]["sequence_id"] == seq2["id"], enr
    why = [e["payload"]["why"] for e in tn2.events("nurture.enrolled") if e["payload"]["lead_id"] == lead["id"]]
    assert why == ["gone cold: churn risk high"], why
    st, h, b = t.srv.request("GET", "/metrics")
    assert b'ehub_nurture_cold_enrolled_total{why="no_reply"}' in b and b'{why="churn_high"}' in b


def test_nurture_apollo_enrichment_with_limits(t):
    tn = _tenant(t, apollo_api_key=APOLLO_KEY)
    st = _fake.state
    with st["lock"]:
        st["apollo_busy"] = 1
    t0 = time.time()
    lead = tn.create_lead(first_name="Ann", last_name="Lee", email="ann@acme.example")
    assert time.time() - t0 < 1.0  # ingestion does not wait for Apollo
    got = wait_for(lambda: tn.get_lead(lead["id"]).get("company") and tn.get_lead(lead["id"]), timeout=10)
    assert got and got["company"] == "Acme Realty" and got["job_title"] == "VP Sales", got
    assert got["linkedin_url"] == "http://www.linkedin.com/in/ann", got
    req = [m for m in st["apollo"] if m.get("email") == "ann@acme.example"][0]
    assert req["first_name"] == "Ann" and req["last_name"] == "Lee" and req["reveal_personal_emails"] is False, req
    assert any(e["payload"]["lead_id"] == lead["id"] for e in tn.events("lead.enriched"))
    # 429 with Retry-After: waits, then matches (not counted as an attempt)
    busy = tn.create_lead(first_name="Bo", email="busy@acme.example")
    got = wait_for(lambda: tn.get_lead(busy["id"]).get("company"), timeout=10)
    assert got == "Acme Realty"
    rows = tn.db("SELECT state, attempts FROM lead_enrichments WHERE tenant_id = {tenant} AND lead_id = %d" % busy["id"])
    assert rows == [{"state": "done", "attempts": 1}], rows
    # 5xx: retried later, the lead untouched; no match: not_found
    down = tn.create_lead(first_name="Di", email="down@acme.example")
    nobody = tn.create_lead(first_name="No", email="nobody@acme.example")
    q = "SELECT state, attempts, result FROM lead_enrichments WHERE tenant_id = {tenant} AND lead_id = %d"
    rows = wait_for(lambda: [r for r in tn.db(q % down["id"]) if r["attempts"] >= 1 and r["state"] == "queued"])
    assert rows and "Apollo 503" in rows[0]["result"], rows
    rows = wait_for(lambda: [r for r in tn.db(q % nobody["id"]) if r["state"] == "not_found"])
    assert rows, tn.db(q % nobody["id"])
    assert tn.get_lead(down["id"])["company"] is None
    # the rate limit: 12 leads at 5/s are never more than 5 in a second at Apollo
    t1 = time.time()
    for i in range(12):
        tn.create_lead(first_name="R%d" % i, last_name="X", email="r%d@acme.example" % i)
    wait_for(lambda: sum(1 for m in st["apollo"] if m.get("email", "").startswith("r")) >= 12, timeout=15)
    at = sorted(a for a in st["apollo_at"] if a >= t1)
    assert len(at) >= 12
    worst = max(sum(1 for b in at[i:i + 6] if b - a < 1.0) for i, a in enumerate(at))
    assert worst <= 5, at
    st_, h, b = t.srv.request("GET", "/metrics")
    assert b'ehub_enrich_total{outcome="matched"}' in b and b'ehub_enrich_total{outcome="retry"}' in b
    # the enrichment's state through the API, as an enrollment's history is
    e = tn.ok("GET", "/v1/leads/%d/enrichment" % busy["id"])
    assert e["state"] == "done" and e["attempts"] == 1 and e["result"] == "matched", e
    st_, e = tn.api("GET", "/v1/leads/%d/enrichment" % 999999)
    assert st_ == 404, (st_, e)
    # what Apollo said is the person's data: exported, and gone after erasure
    ex = tn.ok("GET", "/v1/contacts/%d/export" % lead["id"])
    assert ex["lead"]["company"] == "Acme Realty" and ex["enrichment"][0]["state"] == "done", ex["enrichment"]
    tn.ok("DELETE", "/v1/contacts/%d" % lead["id"])
    left = tn.db("SELECT company, job_title, linkedin_url FROM leads WHERE tenant_id = {tenant} AND id = %d" % lead["id"])
    assert left == [{"company": None, "job_title": None, "linkedin_url": None}], left
    left = tn.db("SELECT result FROM lead_enrichments WHERE tenant_id = {tenant} AND lead_id = %d" % lead["id"])
    assert left == [{"result": None}], left
