"""One-off messages (issues 7 + 9): POST /v1/leads/{id}/messages sends an
agent's own SMS or e-mail through the tenant's provider, on the same durable
queue as sequence steps. Against the local servers that speak Twilio's
Messages API and SendGrid's mail/send (the fakes of test_nurture.py, which
check Basic auth / Bearer key and honour the idempotency key as the real
ones do): the text arrives once with the right form, an Idempotency-Key
replay sends nothing, a signed status callback moves the activity, consent,
STOP and do-not-disturb refuse it, an agent cannot write to another agent's
lead, bad input is a 4xx that writes nothing, and the request is audited."""
import base64
import hashlib
import hmac
import json
import time
import urllib.parse

import test_nurture as nu
from lib import wait_for
from tenants import Client

SERVER_ARGS = nu.SERVER_ARGS
PASSWORD = "correct horse battery"


def _acts(tn, lead_id):
    return tn.ok("GET", "/v1/leads/%d/activities" % lead_id)["items"]


def _act(tn, lead_id, aid):
    return next(a for a in _acts(tn, lead_id) if a["id"] == aid)


def _sms_to(phone):
    return [m for m in nu._provider().state["sms"] if m["To"] == phone]


def _mail_to(addr):
    return [m for m in nu._provider().state["mail"] if m["personalizations"][0]["to"][0]["email"] == addr]


def _twilio_callback(tn, params):
    path = "/v1/webhooks/twilio/%s" % tn.slug
    url = "http://127.0.0.1:%d%s" % (tn.srv.port, path)
    data = url + "".join(k + params[k] for k in sorted(params))
    sig = base64.b64encode(hmac.new(nu.TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()
    return tn.srv.request("POST", path, urllib.parse.urlencode(params).encode(),
                          {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig})


def _agent_client(tn, agent_id, name):
    email = "%s@%s.test" % (name, tn.slug)
    tn.ok("POST", "/v1/users", {"email": email, "role": "agent", "password": PASSWORD, "agent_id": agent_id})
    st, h, b = tn.srv.request("POST", "/v1/auth/login", {"tenant": tn.slug, "email": email, "password": PASSWORD})
    assert st == 200, (st, b)
    return Client(tn.srv, json.loads(b)["access_token"])


def test_messages_sms_via_twilio_once_replay_and_status_callback(t):
    tn = nu._tenant(t)
    # quiet hours around now: an agent's reply is not marketing and goes anyway
    now = time.gmtime()
    tn.ok("PATCH", "/v1/nurture/settings", {"quiet_start": "%02d:00" % ((now.tm_hour + 23) % 24),
                                            "quiet_end": "%02d:00" % ((now.tm_hour + 2) % 24), "daily_cap": 1})
    # the lead is in a sequence whose next step waits: the agent's text takes over
    tn.ok("POST", "/v1/templates", {"name": "later", "channel": "sms", "body": "Still looking? Reply STOP to opt out"})
    seq = tn.ok("POST", "/v1/sequences", {"name": "s", "steps": [{"type": "wait", "minutes": 60},
                                                               {"type": "sms", "template": "later"}]})
    lead = tn.create_lead(first_name="Ola", phone="+14155556001", consent_sms=True, timezone="UTC")
    tn.ok("POST", "/v1/sequences/%d/enroll" % seq["id"], {"lead_id": lead["id"]})
    body = "Hi Ola, the 2-bed on Elm is still open. Tour at 5? {{not a variable}} & <b>"
    key = {"Idempotency-Key": "reply-%s-1" % tn.slug}
    st, h, j = tn.call("POST", "/v1/leads/%d/messages" % lead["id"], {"channel": "sms", "body": body}, key)
    assert st == 202 and j["status"] == "queued" and j["channel"] == "sms", (st, j)
    aid = j["activity_id"]
    # written first: the activity is there, queued, before anything went out
    got = wait_for(lambda: _sms_to("+14155556001"), timeout=10)
    assert len(got) == 1, got
    m = got[0]
    assert m["Body"] == body and m["From"] == nu.FROM, m  # sent as written: no template, no footer
    assert m["StatusCallback"].endswith("/v1/webhooks/twilio/%s" % tn.slug), m
    assert m["key"].startswith("t") and ":m%d|" % j["message_id"] in m["key"], m
    a = wait_for(lambda: (lambda x: x if x["status"] == "sent" else None)(_act(tn, lead["id"], aid)))
    assert a and a["provider_message_id"] == m["sid"] and a["direction"] == "outbound" and a["body"] == body, a
    # a retry with the same key: the same answer, nothing new sent or written
    st, h, j2 = tn.call("POST", "/v1/leads/%d/messages" % lead["id"], {"channel": "sms", "body": body}, key)
    assert st == 202 and j2["activity_id"] == aid and j2["status"] == "sent", (st, j2)
    assert h.get("idempotent-replayed") == "true" or h.get("Idempotent-Replayed") == "true", h
    # the same key for another message is refused
    st, e = tn.api("POST", "/v1/leads/%d/messages" % lead["id"], {"channel": "sms", "body": "other"}, key)
    assert st == 422 and e["error"]["code"] == "idempotency_key_reused", (st, e)
    time.sleep(0.5)
    assert len(_sms_to("+14155556001")) == 1
    assert len([x for x in _acts(tn, lead["id"]) if x["direction"] == "outbound"]) == 1
    # the agent took over: the sequence ended before its text
    enr = tn.ok("GET", "/v1/leads/%d/enrollments" % lead["id"])["items"]
    assert enr[0]["state"] == "exited" and enr[0]["exit_reason"] == "agent_takeover", enr
    # Twilio's delivery receipt moves the activity, with a message.status event
    st, h, b = _twilio_callback(tn, {"MessageSid": m["sid"], "MessageStatus": "delivered",
                                     "To": "+14155556001", "From": nu.FROM})
    assert st == 200, (st, b)
    assert _act(tn, lead["id"], aid)["status"] == "delivered"
    types = [e["type"] for e in tn.events() if e["type"].startswith("message.")]
    assert types == ["message.queued", "message.sent", "message.status"], types
    sent = tn.events("message.sent")[0]["payload"]
    assert sent["activity_id"] == aid and sent["provider"] == "twilio" and sent["lead_id"] == lead["id"], sent
    # a second message is not held by the daily cap (1) either
    st, j3 = tn.api("POST", "/v1/leads/%d/messages" % lead["id"], {"channel": "sms", "body": "See you at 5."})
    assert st == 202, (st, j3)
    assert wait_for(lambda: len(_sms_to("+14155556001")) == 2, timeout=10)
    # audited: one generic entry per sending request, no body in it
    audit = [x for x in tn.ok("GET", "/v1/audit?limit=500")["items"]
             if x["action"] == "POST /v1/leads/{id}/messages"]
    assert len(audit) == 2 and all(x["target"] == "lead:%d" % lead["id"] for x in audit), audit
    assert audit[-1]["detail"]["fields"] == ["body", "channel"] and "Elm" not in json.dumps(audit), audit


def test_messages_email_via_sendgrid_html_escaped(t):
    tn = nu._tenant(t)
    lead = tn.create_lead(first_name="Eve", email="eve.oneoff@example.com", consent_email=True)
    st, j = tn.api("POST", "/v1/leads/%d/messages" % lead["id"],
                   {"channel": "email", "subject": "Your tour", "body": "Hi Eve,\nSee you at 5 <3 & bring ID"})
    assert st == 202, (st, j)
    got = wait_for(lambda: _mail_to("eve.oneoff@example.com"), timeout=10)
    assert len(got) == 1, got
    g = got[0]
    assert g["subject"] == "Your tour" and g["from"]["email"] == nu.SG_FROM, g
    assert g["content"][0]["value"] == "Hi Eve,<br>\nSee you at 5 &lt;3 &amp; bring ID", g
    a = wait_for(lambda: (lambda x: x if x["status"] == "sent" else None)(_act(tn, lead["id"], j["activity_id"])))
    assert a and a["provider_message_id"] == g["id"], a


def test_messages_refused_without_consent_after_stop_and_dnd(t):
    tn = nu._tenant(t)
    none = tn.create_lead(first_name="No", phone="+14155556101", consent_sms=False, email="no.oneoff@example.com")
    st, e = tn.api("POST", "/v1/leads/%d/messages" % none["id"], {"channel": "sms", "body": "hi"})
    assert st == 409 and e["error"]["code"] == "no_consent", (st, e)
    st, e = tn.api("POST", "/v1/leads/%d/messages" % none["id"], {"channel": "email", "subject": "s", "body": "hi"})
    assert st == 409 and e["error"]["code"] == "no_consent", (st, e)
    dnd = tn.create_lead(first_name="Dnd", phone="+14155556102", consent_sms=True, dnd=True)
    st, e = tn.api("POST", "/v1/leads/%d/messages" % dnd["id"], {"channel": "sms", "body": "hi"})
    assert st == 409 and e["error"]["code"] == "do_not_disturb", (st, e)
    nophone = tn.create_lead(first_name="Nophone", email="np.oneoff@example.com", consent_sms=True)
    st, e = tn.api("POST", "/v1/leads/%d/messages" % nophone["id"], {"channel": "sms", "body": "hi"})
    assert st == 422 and e["error"]["code"] == "no_address", (st, e)
    # STOP from the lead's phone withdraws consent: the next reply is refused
    stop = tn.create_lead(first_name="Stop", phone="+14155556103", consent_sms=True)
    st, h, b = _twilio_callback(tn, {"MessageSid": "SMoneoffstop1", "From": "+14155556103", "To": nu.FROM,
                                     "Body": "STOP"})
    assert st == 200, (st, b)
    st, e = tn.api("POST", "/v1/leads/%d/messages" % stop["id"], {"channel": "sms", "body": "hi"})
    assert st == 409 and e["error"]["code"] == "no_consent" and "STOP" in e["error"]["message"], (st, e)
    for lid in (none["id"], dnd["id"], nophone["id"], stop["id"]):
        assert not [a for a in _acts(tn, lid) if a["direction"] == "outbound"], lid
    assert not _sms_to("+14155556101") and not _sms_to("+14155556102") and not _sms_to("+14155556103")
    assert not [x for x in tn.ok("GET", "/v1/audit?limit=500")["items"]
                if x["action"] == "POST /v1/leads/{id}/messages"]
    # consent withdrawn after queueing: the queued message fails, nothing goes out
    late = tn.create_lead(first_name="Late", phone="+14155556104", consent_sms=True)
    with nu._provider().state["lock"]:
        nu._provider().state["fail"] = 1  # the first try is refused, so STOP lands between the tries
    st, j = tn.api("POST", "/v1/leads/%d/messages" % late["id"], {"channel": "sms", "body": "hi"})
    assert st == 202, (st, j)
    wait_for(lambda: nu._provider().state["fail"] == 0, timeout=10)
    tn.ok("PATCH", "/v1/leads/%d" % late["id"], {"consent_sms": False})
    a = wait_for(lambda: (lambda x: x if x["status"] == "failed" else None)(_act(tn, late["id"], j["activity_id"])),
                 timeout=15)
    assert a, _act(tn, late["id"], j["activity_id"])
    assert not _sms_to("+14155556104")
    failed = tn.events("message.failed")[-1]["payload"]
    assert failed["activity_id"] == j["activity_id"] and failed["result"] == "no SMS consent", failed


def test_messages_roles_and_bad_input(t):
    tn = nu._tenant(t)
    tn.set_routing("off")
    mine, theirs = tn.create_agent("Mine A"), tn.create_agent("Theirs B")
    lead_mine = tn.create_lead(first_name="M", phone="+14155556201", consent_sms=True, agent_id=mine["id"])
    lead_theirs = tn.create_lead(first_name="T", phone="+14155556202", consent_sms=True, agent_id=theirs["id"])
    agent = _agent_client(tn, mine["id"], "mine")
    st, e = agent.api("POST", "/v1/leads/%d/messages" % lead_theirs["id"], {"channel": "sms", "body": "hi"})
    assert st == 403 and e["error"]["code"] == "not_your_lead", (st, e)
    st, j = agent.api("POST", "/v1/leads/%d/messages" % lead_mine["id"], {"channel": "sms", "body": "hi from me"})
    assert st == 202, (st, j)
    # an agent key bound to no agent owns no lead
    st, e = tn.role_client("agent").api("POST", "/v1/leads/%d/messages" % lead_mine["id"],
                                        {"channel": "sms", "body": "hi"})
    assert st == 403, (st, e)
    for role in ("viewer", "analyst"):
        st, e = tn.role_client(role).api("POST", "/v1/leads/%d/messages" % lead_mine["id"],
                                         {"channel": "sms", "body": "hi"})
        assert st == 403, (role, st, e)
    st, j = tn.role_client("manager").api("POST", "/v1/leads/%d/messages" % lead_theirs["id"],
                                          {"channel": "sms", "body": "manager here"})
    assert st == 202, (st, j)
    path = "/v1/leads/%d/messages" % lead_mine["id"]
    bad = [
        ({"channel": "fax", "body": "x"}, "channel"),
        ({"channel": "sms"}, "body"),
        ({"channel": "sms", "body": "   "}, "body"),
        ({"channel": "sms", "body": "x" * 1531}, "body"),  # 11 GSM-7 segments
        ({"channel": "sms", "body": "\u00e9\u4e2d" * 336}, "body"),  # 672 UCS-2 units: 11 segments
        ({"channel": "sms", "body": "x", "subject": "s"}, "subject"),
        ({"channel": "email", "body": "x"}, "subject"),
        ({"channel": "email", "body": "x", "subject": "a\r\nBcc: evil@example.com"}, "subject"),
        ({"channel": "email", "body": "<" * 1001, "subject": "s"}, "body"),  # 4004 bytes escaped
        ({"channel": "sms", "body": "x", "to": "+1"}, "to"),
    ]
    for b, field in bad:
        st, e = tn.api("POST", path, b)
        assert st == 422 and field in e["error"]["fields"], (b, st, e)
    st, e = tn.api("POST", path, {"channel": "sms", "body": "x" * 1530})  # 10 segments: fine
    assert st == 202, (st, e)
    st, e = tn.api("POST", path, {"channel": "sms", "body": "x"}, {"Idempotency-Key": "has space"})
    assert st == 400 and e["error"]["code"] == "bad_idempotency_key", (st, e)
    st, e = tn.api("POST", "/v1/leads/99999999/messages", {"channel": "sms", "body": "x"})
    assert st == 404, (st, e)
    st, h, b = tn.srv.request("POST", path, b"{not json", {"Authorization": "Bearer " + tn.key,
                                                            "Content-Type": "application/json"})
    assert st == 400, (st, b)
    got = wait_for(lambda: len(_sms_to("+14155556201")) == 2 and len(_sms_to("+14155556202")) == 1, timeout=10)
    assert got, (_sms_to("+14155556201"), _sms_to("+14155556202"))
    # the events name the lead's agent: the realtime feed shows them to that agent
    sent = wait_for(lambda: [e["payload"] for e in tn.events("message.sent")
                             if e["payload"]["lead_id"] == lead_mine["id"]] or None)
    assert sent and all(p["agent_id"] == mine["id"] for p in sent), sent
    queued = [e["payload"] for e in tn.events("message.queued") if e["payload"]["lead_id"] == lead_theirs["id"]]
    assert queued and queued[0]["agent_id"] == theirs["id"], queued


def test_messages_status_callback_before_the_send_is_recorded(t):
    """Twilio's callback can beat the record of its own answer: the status
    waits in the webhook inbox and is applied when the send is recorded."""
    tn = nu._tenant(t)
    lead = tn.create_lead(first_name="Race", phone="+14155556301", consent_sms=True)
    fake = nu._provider().state
    with fake["lock"]:
        sid = "SM%032d" % (len(fake["sms"]) + 1)  # the sid the fake gives the next text
    st, h, b = _twilio_callback(tn, {"MessageSid": sid, "MessageStatus": "delivered", "To": "+14155556301",
                                     "From": nu.FROM})
    assert st == 200, (st, b)
    st, j = tn.api("POST", "/v1/leads/%d/messages" % lead["id"], {"channel": "sms", "body": "Quick one"})
    assert st == 202, (st, j)
    a = wait_for(lambda: (lambda x: x if x["provider_message_id"] else None)(_act(tn, lead["id"], j["activity_id"])),
                 timeout=10)
    assert a and a["provider_message_id"] == sid and a["status"] == "delivered", a
