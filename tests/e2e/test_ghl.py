"""GoHighLevel webhooks end to end: POST /v1/webhooks/ghl/{tenant} signed with
real Ed25519 / RSA keys made here (configured through PATCH /v1/settings),
every handled event type and its effect seen through the REST API (or, where
the API has no window on it -- opportunities, the webhook inbox -- in the
database itself), replays, freshness, malformed input, bad or forged
signatures, GHL's published keys, token mode, routing and durability across
SIGKILL.

Each test makes its own tenant (ehub tenant add / ehub key create against the
server's store), so tests do not see each other's leads."""
import base64
import datetime
import itertools
import json
import os
import socket
import subprocess
import threading
import time
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from tenants import db_rows

HOOK = "/v1/webhooks/ghl/%s"
LOCATION = "loc_e2e_0001"
_seq = itertools.count(1)

# ---------------------------------------------------------------- keys


class _Keys:
    """Ed25519 and RSA-2048 key pairs, made once per module (RSA takes a while
    under a slow machine, and every test can share them)."""
    _cache = {}

    @classmethod
    def get(cls, name):
        if name not in cls._cache:
            if name.startswith("ed"):
                cls._cache[name] = ed25519.Ed25519PrivateKey.generate()
            else:
                cls._cache[name] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls._cache[name]


def pub_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def sign_ed(key, body):
    return base64.b64encode(key.sign(body)).decode()


def sign_rsa(key, body):
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


# ---------------------------------------------------------------- tenants


def _store_args(t, srv):
    if t.backend == "postgres":
        return ["--store", srv.store, "--data-dir", os.path.join(srv.tmp, "data")]
    data = os.path.join(srv.tmp, "data")
    return ["--store", "sqlite:" + os.path.join(data, "ehub.db"), "--data-dir", data]


def _cli(t, srv, *args):
    r = subprocess.run([t.binary] + list(args) + _store_args(t, srv), capture_output=True, text=True,
                       timeout=30 * t.slow)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


class Tenant:
    """A fresh tenant on srv with an admin key; by default configured with this
    module's Ed25519 and RSA public keys (keys=False leaves GHL's published
    keys in place)."""

    def __init__(self, t, srv=None, keys=True, prefix="ghl"):
        self.t = t
        self.srv = srv or t.srv
        self.slug = "%s-%d-%d" % (prefix, os.getpid(), next(_seq))
        _cli(t, self.srv, "tenant", "add", self.slug, "GHL e2e")
        self.key = _cli(t, self.srv, "key", "create", "admin", "e2e", "--tenant", self.slug)["key"]
        self.ed = _Keys.get("ed")
        self.rsa = _Keys.get("rsa")
        if keys:
            st, s = self.api("PATCH", "/v1/settings", {"ghl_ed25519_public_key": pub_pem(self.ed),
                                                       "ghl_rsa_public_key": pub_pem(self.rsa)})
            assert st == 200, s
            assert s["ghl_ed25519_public_key"] == "custom" and s["ghl_rsa_public_key"] == "custom", s

    # -- REST API
    def api(self, method, path, body=None, headers=None):
        h = {"Authorization": "Bearer " + self.key}
        h.update(headers or {})
        if body is not None:
            h["Content-Type"] = "application/json"
            body = json.dumps(body).encode()
        st, _, b = self.srv.request(method, path, body=body, headers=h)
        return st, (json.loads(b) if b else None)

    def leads(self, **filters):
        q = "&".join("%s=%s" % kv for kv in filters.items())
        st, j = self.api("GET", "/v1/leads?limit=500" + ("&" + q if q else ""))
        assert st == 200, (st, j)
        return j["items"]

    def lead_by_contact(self, contact_id):
        items = self.leads(ghl_contact_id=contact_id)
        assert len(items) <= 1, items
        return items[0] if items else None

    def activities(self, lead_id):
        st, j = self.api("GET", "/v1/leads/%d/activities?limit=500" % lead_id)
        assert st == 200, (st, j)
        return j["items"]

    # -- webhooks
    def post_raw(self, body, headers=None, slug=None, query=""):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        st, _, b = self.srv.request("POST", (HOOK % (slug or self.slug)) + query, body=body, headers=h)
        try:
            j = json.loads(b) if b else None
        except ValueError:
            j = {"raw": b[:200]}
        return st, j

    def send(self, event, sig="ed", key=None, slug=None):
        """Serialises event, signs it (sig: "ed", "rsa" or None) and posts it."""
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        h = {}
        if sig == "ed":
            h["x-ghl-signature"] = sign_ed(key or self.ed, body)
        elif sig == "rsa":
            h["x-wh-signature"] = sign_rsa(key or self.rsa, body)
        return self.post_raw(body, h, slug=slug)

    def accept(self, event, **kw):
        st, j = self.send(event, **kw)
        assert st == 200, (st, j, event)
        assert j["status"] == "accepted", j
        return j

    # -- the database, for what the API does not show
    def db(self, sql):
        return db_rows(self.t, self.srv, sql.replace("{tenant}", "(SELECT id FROM tenants WHERE slug = '%s')"
                                                     % self.slug))

    def events(self, type_=None):
        where = " AND type = '%s'" % type_ if type_ else ""
        return self.db("SELECT seq, type FROM events WHERE tenant_id = {tenant}%s ORDER BY seq" % where)

    def inbox(self, webhook_id=None):
        where = " AND webhook_id = '%s'" % q(webhook_id) if webhook_id else ""
        return self.db("SELECT webhook_id, type, body FROM webhook_inbox WHERE tenant_id = {tenant}%s" % where)

    def opportunity(self, ghl_id):
        rows = self.db("SELECT lead_id, name, pipeline, stage, monetary_value, status, agent_id FROM opportunities "
                       "WHERE tenant_id = {tenant} AND ghl_opportunity_id = '%s'" % q(ghl_id))
        assert len(rows) <= 1
        return rows[0] if rows else None


def q(s):
    return s.replace("'", "''")


# ---------------------------------------------------------------- events


def iso(ms):
    d = datetime.datetime.fromtimestamp(ms / 1000.0, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def now_ms():
    return int(time.time() * 1000)


def ev(type_, **fields):
    """A flat GHL marketplace event: type, locationId, webhookId, timestamp + fields."""
    e = {"type": type_, "locationId": LOCATION, "webhookId": str(uuid.uuid4()), "timestamp": iso(now_ms())}
    e.update(fields)
    return e


def cid():
    return "c_" + uuid.uuid4().hex[:16]


def contact(contact_id=None, **fields):
    c = {"id": contact_id or cid(), "firstName": "Jane", "lastName": "Doe", "email": "Jane.Doe+%s@Example.COM"
         % uuid.uuid4().hex[:6], "phone": "(415) 555-%04d" % (next(_seq) % 10000), "source": "Zillow",
         "tags": ["buyer", "hot"]}
    c.update(fields)
    return ev("ContactCreate", **c)


# ---------------------------------------------------------------- contacts


def test_contact_create_ed25519_normalises(t):
    tn = Tenant(t)
    e = contact(firstName="Ana", lastName="Lima", email="  Ana.Lima@Example.COM ", phone="(415) 555-0132",
                timezone="America/Los_Angeles")
    j = tn.accept(e)
    assert j["type"] == "ContactCreate" and j["webhook_id"] == e["webhookId"], j
    lead = tn.lead_by_contact(e["id"])
    assert lead, "ContactCreate created no lead"
    assert lead["phone"] == "+14155550132", lead
    assert lead["email"] == "ana.lima@example.com", lead
    assert (lead["first_name"], lead["last_name"]) == ("Ana", "Lima"), lead
    assert lead["ghl_location_id"] == LOCATION and lead["source"] == "Zillow", lead
    assert sorted(lead["tags"]) == ["buyer", "hot"], lead
    assert lead["timezone"] == "America/Los_Angeles", lead
    # the body is in the inbox, byte for byte, once the 200 is out
    rows = tn.inbox(e["webhookId"])
    assert len(rows) == 1 and rows[0]["type"] == "ContactCreate", rows
    assert json.loads(rows[0]["body"]) == e


def test_contact_create_rsa_legacy_signature(t):
    tn = Tenant(t)
    e = contact(phone="+1 212 555 0199", email="RSA@Example.com")
    tn.accept(e, sig="rsa")
    lead = tn.lead_by_contact(e["id"])
    assert lead and lead["phone"] == "+12125550199" and lead["email"] == "rsa@example.com", lead


def test_loop_and_pool_paths_check_alike(t):
    """A small Ed25519 webhook of a tenant already loaded is checked on the
    loop; the tenant's first webhook, RSA and bodies over 8 KiB go to the
    pool. Each path accepts a good one and refuses a forged or stale one
    with nothing stored."""
    tn = Tenant(t)
    first = contact()
    tn.accept(first)  # loads the tenant (pool)
    cases = {"small": contact(), "large": contact(notes="n" * 20000)}
    assert len(json.dumps(cases["small"])) < 8192 < len(json.dumps(cases["large"]))
    for name, e in cases.items():
        body = json.dumps(e).encode()
        forged = json.dumps(dict(e, email="mallory@example.com")).encode()
        st, j = tn.post_raw(forged, {"x-ghl-signature": sign_ed(tn.ed, body)})
        assert st == 401 and j["error"]["code"] == "bad_signature", (name, st, j)
        stale = dict(e, webhookId=str(uuid.uuid4()), timestamp=iso(now_ms() - 10 * 60 * 1000))
        st, j = tn.send(stale)
        assert st == 401 and j["error"]["code"] == "stale_timestamp", (name, st, j)
        assert tn.lead_by_contact(e["id"]) is None and tn.inbox(e["webhookId"]) == [], name
        tn.accept(e)
        lead = tn.lead_by_contact(e["id"])
        assert lead and lead["email"] == e["email"].lower(), (name, lead)
        assert len(tn.inbox(e["webhookId"])) == 1, name
        st, j = tn.send(e)  # the replay: same answer on either path
        assert st == 200 and j["status"] == "duplicate", (name, st, j)


def test_contact_create_name_only_splits(t):
    tn = Tenant(t)
    c = cid()
    tn.accept(ev("ContactCreate", id=c, name="Maria de la Cruz", phone="4155550177"))
    lead = tn.lead_by_contact(c)
    assert lead and lead["first_name"] == "Maria" and lead["last_name"] == "de la Cruz", lead
    assert lead["phone"] == "+14155550177", lead


def test_contact_create_bad_field_is_dropped_not_fatal(t):
    # A phone GHL got wrong must not lose the contact: the lead is created
    # without it (the event is stored, answered 200).
    tn = Tenant(t)
    c = cid()
    tn.accept(ev("ContactCreate", id=c, firstName="Bad", phone="not a phone", email="bad.phone@example.com"))
    lead = tn.lead_by_contact(c)
    assert lead and lead["email"] == "bad.phone@example.com" and lead["phone"] is None, lead


def test_contact_update_updates(t):
    tn = Tenant(t)
    e = contact()
    tn.accept(e)
    before = tn.lead_by_contact(e["id"])
    tn.accept(ev("ContactUpdate", id=e["id"], firstName="Janet", email="JANET@NEW.example.com",
                 phone="+44 20 7946 0958", tags=["seller"]))
    after = tn.lead_by_contact(e["id"])
    assert after["id"] == before["id"], (before, after)
    assert after["first_name"] == "Janet" and after["email"] == "janet@new.example.com", after
    assert after["phone"] == "+442079460958", after
    assert after["tags"] == ["seller"], after
    assert after["last_name"] == "Doe", after  # not in the update: kept
    assert after["version"] > before["version"], (before, after)
    assert len(tn.leads()) == 1


def test_contact_delete_deletes(t):
    tn = Tenant(t)
    e = contact()
    tn.accept(e)
    lead = tn.lead_by_contact(e["id"])
    assert lead
    tn.accept(ev("ContactDelete", id=e["id"], email=e["email"]))
    st, j = tn.api("GET", "/v1/leads/%d" % lead["id"])
    assert st == 404, (st, j)
    assert tn.lead_by_contact(e["id"]) is None
    assert len(tn.events("lead.deleted")) == 1, tn.events()


def test_contact_delete_of_unknown_contact_is_acknowledged(t):
    tn = Tenant(t)
    tn.accept(ev("ContactDelete", id=cid()))
    assert tn.leads() == []


def test_contact_recreated_after_delete(t):
    # GHL can restore a deleted contact (or merge one back); ContactCreate for
    # the same id after ContactDelete must give a live lead again, not a 500.
    tn = Tenant(t)
    e = contact()
    tn.accept(e)
    tn.accept(ev("ContactDelete", id=e["id"]))
    assert tn.lead_by_contact(e["id"]) is None
    e2 = contact(e["id"], firstName="Back")
    st, j = tn.send(e2)
    assert st == 200, ("ContactCreate after ContactDelete", st, j)
    lead = tn.lead_by_contact(e["id"])
    assert lead and lead["first_name"] == "Back", lead


def test_message_after_contact_delete(t):
    # A message that arrives after the contact was deleted is still answered
    # 200 and kept (not a 5xx that GHL retries forever).
    tn = Tenant(t)
    e = contact()
    tn.accept(e)
    tn.accept(ev("ContactDelete", id=e["id"]))
    m = ev("InboundMessage", contactId=e["id"], messageType="SMS", body="still there?", messageId="m-late",
           direction="inbound")
    st, j = tn.send(m)
    assert st == 200, ("InboundMessage after ContactDelete", st, j)
    assert len(tn.inbox(m["webhookId"])) == 1


def test_contact_tag_update(t):
    tn = Tenant(t)
    e = contact(tags=["buyer"])
    tn.accept(e)
    tn.accept(ev("ContactTagUpdate", id=e["id"], tags=["buyer", "pre-approved", "vip"]))
    lead = tn.lead_by_contact(e["id"])
    assert sorted(lead["tags"]) == ["buyer", "pre-approved", "vip"], lead
    assert [x["id"] for x in tn.leads(tag="vip")] == [lead["id"]]
    tn.accept(ev("ContactTagUpdate", id=e["id"], tags=[]))
    assert tn.lead_by_contact(e["id"])["tags"] == []


def test_contact_dnd_update_changes_consent(t):
    tn = Tenant(t)
    e = contact(dndSettings={"SMS": {"status": "inactive"}, "Email": {"status": "inactive"},
                             "Call": {"status": "inactive"}})
    tn.accept(e)
    lead = tn.lead_by_contact(e["id"])
    assert (lead["consent_sms"], lead["consent_email"], lead["consent_call"], lead["dnd"]) == \
        (True, True, True, False), lead
    tn.accept(ev("ContactDndUpdate", id=e["id"], dnd=False, dndSettings={"SMS": {"status": "active"}}))
    lead = tn.lead_by_contact(e["id"])
    assert (lead["consent_sms"], lead["consent_email"], lead["consent_call"]) == (False, True, True), lead
    assert len(tn.events("lead.consent_changed")) >= 1, tn.events()
    tn.accept(ev("ContactDndUpdate", id=e["id"], dnd=True))
    lead = tn.lead_by_contact(e["id"])
    assert lead["dnd"] is True, lead
    assert (lead["consent_sms"], lead["consent_email"], lead["consent_call"]) == (False, False, False), lead


# ---------------------------------------------------------------- activities


def test_inbound_and_outbound_messages(t):
    tn = Tenant(t)
    e = contact()
    tn.accept(e)
    lead = tn.lead_by_contact(e["id"])
    tn.accept(ev("InboundMessage", contactId=e["id"], messageType="SMS", body="Is 12 Oak St still available?",
                 messageId="msg-in-1", direction="inbound", status="delivered"))
    tn.accept(ev("OutboundMessage", contactId=e["id"], messageType="Email", body="Yes! Want a tour?",
                 messageId="msg-out-1", direction="outbound", status="sent"))
    acts = tn.activities(lead["id"])
    assert len(acts) == 2, acts
    by = {a["provider_message_id"]: a for a in acts}
    a_in, a_out = by["msg-in-1"], by["msg-out-1"]
    assert (a_in["direction"], a_in["channel"], a_in["body"]) == \
        ("inbound", "sms", "Is 12 Oak St still available?"), a_in
    assert (a_out["direction"], a_out["channel"], a_out["body"]) == ("outbound", "email", "Yes! Want a tour?"), a_out
    assert a_in["lead_id"] == lead["id"] and a_out["status"] == "sent", acts


def test_message_for_unseen_contact_creates_lead(t):
    tn = Tenant(t)
    c = cid()
    tn.accept(ev("InboundMessage", contactId=c, messageType="SMS", body="hi", messageId="m-" + c))
    lead = tn.lead_by_contact(c)
    assert lead, "a message for a contact not seen yet must create the lead"
    assert lead["ghl_location_id"] == LOCATION, lead
    acts = tn.activities(lead["id"])
    assert len(acts) == 1 and acts[0]["direction"] == "inbound" and acts[0]["body"] == "hi", acts


def test_note_task_appointment_create(t):
    tn = Tenant(t)
    e = contact()
    tn.accept(e)
    lead = tn.lead_by_contact(e["id"])
    tn.accept(ev("NoteCreate", id="note-1", contactId=e["id"], body="Prefers mornings",
                 dateAdded="2025-01-28T14:35:00.000Z"))
    tn.accept(ev("TaskCreate", id="task-1", contactId=e["id"], title="Call back", body="about financing",
                 completed=False))
    start = now_ms() + 86400000
    tn.accept(ev("AppointmentCreate", appointment={"id": "appt-1", "contactId": e["id"], "title": "Showing",
                                                   "appointmentStatus": "confirmed", "startTime": iso(start)}))
    acts = {a["channel"]: a for a in tn.activities(lead["id"])}
    assert set(acts) == {"note", "task", "appointment"}, acts
    note, task, appt = acts["note"], acts["task"], acts["appointment"]
    assert note["body"] == "Prefers mornings" and note["direction"] == "none", note
    assert note["occurred_at"] == 1738074900000, note
    assert "Call back" in task["body"] and "about financing" in task["body"] and task["status"] == "open", task
    assert appt["body"] == "Showing" and appt["status"] == "confirmed", appt
    assert abs(appt["occurred_at"] - start) < 1000, (appt, start)


# ---------------------------------------------------------------- opportunities


def test_opportunity_lifecycle(t):
    tn = Tenant(t)
    st, ag = tn.api("POST", "/v1/agents", {"name": "Olivia Opp", "ghl_user_id": "usr-olivia", "capacity": 10})
    assert st == 201, (st, ag)
    e = contact()
    tn.accept(e)
    lead = tn.lead_by_contact(e["id"])
    oid = "opp-" + uuid.uuid4().hex[:8]
    tn.accept(ev("OpportunityCreate", id=oid, contactId=e["id"], name="12 Oak St", pipelineId="pipe-1",
                 pipelineStageId="stage-new", monetaryValue=450000, status="open"))
    o = tn.opportunity(oid)
    assert o, "OpportunityCreate stored no opportunity"
    assert (o["lead_id"], o["name"], o["pipeline"], o["stage"], o["status"]) == \
        (lead["id"], "12 Oak St", "pipe-1", "stage-new", "open"), o
    assert float(o["monetary_value"]) == 450000.0, o
    assert len(tn.events("opportunity.created")) == 1

    tn.accept(ev("OpportunityStageUpdate", id=oid, contactId=e["id"], pipelineId="pipe-1",
                 pipelineStageId="stage-showing"))
    assert tn.opportunity(oid)["stage"] == "stage-showing"
    tn.accept(ev("OpportunityMonetaryValueUpdate", id=oid, contactId=e["id"], monetaryValue=475000.5))
    assert float(tn.opportunity(oid)["monetary_value"]) == 475000.5
    tn.accept(ev("OpportunityAssignedToUpdate", id=oid, contactId=e["id"], assignedTo="usr-olivia"))
    o = tn.opportunity(oid)
    assert o["agent_id"] == ag["id"] and o["stage"] == "stage-showing" and o["name"] == "12 Oak St", o
    assert len(tn.events("opportunity.updated")) == 3, tn.events()
    assert tn.lead_by_contact(e["id"])["status"] == "open"

    tn.accept(ev("OpportunityStatusUpdate", id=oid, contactId=e["id"], status="won"))
    assert tn.opportunity(oid)["status"] == "won"
    assert tn.lead_by_contact(e["id"])["status"] == "won", "a won opportunity sets its lead's status"


def test_opportunity_lost_sets_lead_status_and_creates_unseen_contact(t):
    tn = Tenant(t)
    c = cid()
    oid = "opp-" + uuid.uuid4().hex[:8]
    tn.accept(ev("OpportunityCreate", id=oid, contactId=c, name="Condo", status="open"))
    lead = tn.lead_by_contact(c)
    assert lead and lead["status"] == "open", lead
    assert tn.opportunity(oid)["lead_id"] == lead["id"]
    tn.accept(ev("OpportunityStatusUpdate", id=oid, contactId=c, status="lost"))
    assert tn.lead_by_contact(c)["status"] == "lost"
    # an unknown status is ignored, not stored
    tn.accept(ev("OpportunityStatusUpdate", id=oid, contactId=c, status="exploded"))
    assert tn.opportunity(oid)["status"] == "lost"


# ---------------------------------------------------------------- shapes


def test_data_wrapped_shape(t):
    tn = Tenant(t)
    c = cid()
    wid = str(uuid.uuid4())
    body = {"type": "ContactCreate", "locationId": LOCATION, "webhookId": wid, "timestamp": iso(now_ms()),
            "data": {"id": c, "firstName": "Wrapped", "email": "Wrapped@Example.com", "phone": "415.555.0188"}}
    j = tn.accept(body)
    assert j["webhook_id"] == wid and j["type"] == "ContactCreate", j
    lead = tn.lead_by_contact(c)
    assert lead and lead["first_name"] == "Wrapped" and lead["email"] == "wrapped@example.com", lead
    assert lead["phone"] == "+14155550188" and lead["ghl_location_id"] == LOCATION, lead
    # and a wrapped message for it
    tn.accept({"type": "InboundMessage", "locationId": LOCATION, "webhookId": str(uuid.uuid4()),
               "timestamp": iso(now_ms()), "data": {"contactId": c, "messageType": "SMS", "body": "wrapped hi",
                                                     "messageId": "wm-1"}}, sig="rsa")
    acts = tn.activities(lead["id"])
    assert len(acts) == 1 and acts[0]["body"] == "wrapped hi" and acts[0]["direction"] == "inbound", acts


def test_timestamp_forms(t):
    # ISO with an offset, epoch milliseconds and epoch seconds are all read.
    tn = Tenant(t)
    n = now_ms()
    local = datetime.datetime.fromtimestamp(n / 1000.0, datetime.timezone(datetime.timedelta(hours=-5)))
    for ts in [local.strftime("%Y-%m-%dT%H:%M:%S-05:00"), n, n // 1000]:
        c = cid()
        tn.accept(ev("ContactCreate", id=c, firstName="T", timestamp=ts))
        assert tn.lead_by_contact(c), ts


# ---------------------------------------------------------------- replay, freshness


def test_replay_is_duplicate_and_changes_nothing(t):
    tn = Tenant(t)
    e = contact()
    body = json.dumps(e).encode()
    sig = {"x-ghl-signature": sign_ed(tn.ed, body)}
    st, j = tn.post_raw(body, sig)
    assert st == 200 and j["status"] == "accepted", (st, j)
    lead = tn.lead_by_contact(e["id"])
    nev = len(tn.events())
    st, j = tn.post_raw(body, sig)
    assert st == 200 and j["status"] == "duplicate" and j["webhook_id"] == e["webhookId"], (st, j)
    # a different body under the same webhookId is a replay too: nothing applied
    e2 = dict(e, firstName="Changed", email="changed@example.com")
    st, j = tn.send(e2, sig="rsa")
    assert st == 200 and j["status"] == "duplicate", (st, j)
    after = tn.lead_by_contact(e["id"])
    assert after["version"] == lead["version"] and after["first_name"] == "Jane", (lead, after)
    assert len(tn.leads()) == 1
    assert len(tn.events()) == nev, "a replay appended events"
    assert len(tn.inbox(e["webhookId"])) == 1
    assert json.loads(tn.inbox(e["webhookId"])[0]["body"]) == e, "the first body is the one kept"


def test_replayed_message_adds_one_activity(t):
    tn = Tenant(t)
    c = cid()
    m = ev("InboundMessage", contactId=c, messageType="SMS", body="once", messageId="m-once")
    tn.accept(m)
    for _ in range(3):
        st, j = tn.send(m)
        assert st == 200 and j["status"] == "duplicate", (st, j)
    lead = tn.lead_by_contact(c)
    assert len(tn.activities(lead["id"])) == 1


def test_concurrent_deliveries_apply_once(t):
    # GHL retries can overlap; the same webhookId delivered 8 times at once is
    # applied exactly once.
    tn = Tenant(t)
    c = cid()
    m = ev("InboundMessage", contactId=c, messageType="SMS", body="race", messageId="m-race")
    body = json.dumps(m).encode()
    h = {"x-ghl-signature": sign_ed(tn.ed, body)}
    results = []

    def one():
        results.append(tn.post_raw(body, h))

    th = [threading.Thread(target=one) for _ in range(8)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    assert all(st == 200 for st, _ in results), results
    statuses = sorted(j["status"] for _, j in results)
    assert statuses == ["accepted"] + ["duplicate"] * 7, statuses
    leads = tn.leads()
    assert len(leads) == 1, leads
    assert len(tn.activities(leads[0]["id"])) == 1


def test_concurrent_events_for_new_contact(t):
    # A form fill makes GHL send ContactCreate, ContactTagUpdate and the first
    # InboundMessage for a brand-new contact at the same moment (different
    # webhookIds). Every one must be applied (200), to one lead.
    tn = Tenant(t)
    for round_ in range(3):
        c = cid()
        evs = [contact(c, phone="+1 415 555 %04d" % (1000 + round_), email="race%d-%s@example.com" % (round_, c)),
               ev("ContactTagUpdate", id=c, tags=["web-form"])]
        evs += [ev("InboundMessage", contactId=c, messageType="SMS", body="hello %d" % i, messageId="%s-%d" % (c, i))
                for i in range(4)]
        results = []
        barrier = threading.Barrier(len(evs))

        def one(e):
            body = json.dumps(e).encode()
            h = {"x-ghl-signature": sign_ed(tn.ed, body)}
            barrier.wait()
            results.append((e["type"], tn.post_raw(body, h)))

        th = [threading.Thread(target=one, args=(e,)) for e in evs]
        for x in th:
            x.start()
        for x in th:
            x.join()
        bad = [(ty, st, j) for ty, (st, j) in results if st != 200 or j["status"] != "accepted"]
        assert not bad, ("round %d" % round_, bad)
        lead = tn.lead_by_contact(c)
        assert lead, c
        assert len(tn.activities(lead["id"])) == 4


def test_sigterm_answers_queued_webhooks_after_their_commit(t):
    # Webhooks wait for their group commit on the writer with no thread
    # parked per webhook; a SIGTERM while dozens are queued must still answer
    # each one only after its commit (every 200 "accepted" is in the store
    # after a restart) and exit 0 once they are all answered.
    import signal
    srv = t.new_server(name="ghl-sigterm")
    tn = Tenant(t, srv)
    per, nthreads = 6, 16
    bodies = [[json.dumps(contact(cid())).encode() for _ in range(per)] for _ in range(nthreads)]
    signed = [[(b, sign_ed(tn.ed, b)) for b in row] for row in bodies]
    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(nthreads + 1)

    def one(row):
        barrier.wait()
        for body, sig in row:
            try:
                st, j = tn.post_raw(body, {"x-ghl-signature": sig})
            except OSError:
                st, j = None, None  # refused once the server stopped listening
            with lock:
                results.append((json.loads(body)["id"], st, j))

    th = [threading.Thread(target=one, args=(row,)) for row in signed]
    for x in th:
        x.start()
    barrier.wait()
    time.sleep(0.03)
    srv.proc.send_signal(signal.SIGTERM)
    for x in th:
        x.join()
    assert srv.proc.wait(15 * t.slow) == 0  # drained, then exited on its own
    srv.stop()
    accepted = [c for c, st, j in results if st == 200 and j and j.get("status") == "accepted"]
    bad = [(c, st, j) for c, st, j in results if st not in (None, 200, 503)]
    assert not bad, bad
    assert accepted, results  # some got in before the signal
    srv.start()
    for c in accepted:
        assert tn.lead_by_contact(c), c
    inbox = {r["webhook_id"] for r in tn.inbox()}
    for c, st, j in results:
        if c in accepted:
            assert j["webhook_id"] in inbox, j
    srv.stop()


def test_contact_create_links_existing_api_lead(t):
    # A lead typed in by hand and the same person arriving from GHL are one
    # lead (upsert by ghl_contact_id, email or phone).
    tn = Tenant(t)
    st, lead = tn.api("POST", "/v1/leads", {"first_name": "Hand", "email": "hand.made@example.com"})
    assert st == 201, lead
    e = contact(email="Hand.Made@Example.com", firstName="Hand", lastName="Made")
    tn.accept(e)
    assert len(tn.leads()) == 1
    got = tn.lead_by_contact(e["id"])
    assert got and got["id"] == lead["id"] and got["last_name"] == "Made", got


def test_stale_timestamp_rejected(t):
    tn = Tenant(t)
    for ts in [iso(now_ms() - 6 * 60 * 1000), now_ms() - 6 * 60 * 1000, (now_ms() - 3600 * 1000) // 1000,
               "2020-01-01T00:00:00Z"]:
        e = contact(timestamp=ts)
        st, j = tn.send(e)
        assert st == 401 and j["error"]["code"] == "stale_timestamp", (ts, st, j)
        assert tn.lead_by_contact(e["id"]) is None
        assert tn.inbox(e["webhookId"]) == []
    # four minutes old is still fresh
    e = contact(timestamp=iso(now_ms() - 4 * 60 * 1000))
    tn.accept(e)


def test_future_timestamp_rejected(t):
    # "more than 5 minutes from now", in either direction.
    tn = Tenant(t)
    for ts in [iso(now_ms() + 6 * 60 * 1000), now_ms() + 24 * 3600 * 1000, "2099-01-01T00:00:00Z"]:
        e = contact(timestamp=ts)
        st, j = tn.send(e)
        assert st == 401 and j["error"]["code"] == "stale_timestamp", (ts, st, j)
        assert tn.lead_by_contact(e["id"]) is None
    tn.accept(contact(timestamp=iso(now_ms() + 60 * 1000)))


def test_unreadable_timestamp_rejected(t):
    tn = Tenant(t)
    for ts in ["yesterday", "2025-13-45T99:00:00Z", True, {"at": 1}]:
        e = contact(timestamp=ts)
        st, j = tn.send(e)
        assert 400 <= st < 500, (ts, st, j)
        assert tn.lead_by_contact(e["id"]) is None


# ---------------------------------------------------------------- malformed input


def test_malformed_json_400(t):
    tn = Tenant(t)
    for body in [b'{"type": "ContactCreate", ', b"not json at all", b'["ContactCreate"]', b'"x"',
                 b'{"type":"ContactCreate","bad":"\xff\xfe"}']:
        st, j = tn.send(body)
        assert st == 400 and j["error"]["code"] == "invalid_json", (body, st, j)
    st, j = tn.post_raw(b"", {"x-ghl-signature": sign_ed(tn.ed, b"")})
    assert st == 400, (st, j)
    assert tn.leads() == [] and tn.inbox() == []


def test_missing_required_fields_400(t):
    tn = Tenant(t)
    for drop in ["type", "webhookId", "timestamp"]:
        e = contact()
        del e[drop]
        st, j = tn.send(e)
        assert st == 400, (drop, st, j)
        assert tn.lead_by_contact(e["id"]) is None, drop
    for bad in [{"type": ""}, {"type": 42}, {"type": "X" * 65}, {"webhookId": "w" * 129}, {"webhookId": 7}]:
        e = contact()
        e.update(bad)
        st, j = tn.send(e)
        assert st == 400, (bad, st, j)
        assert tn.lead_by_contact(e["id"]) is None, bad
    assert tn.leads() == [] and tn.inbox() == []


def test_missing_location_id_400(t):
    # The issue: marketplace events are flat JSON with type, locationId,
    # webhookId and timestamp; one without locationId is not a GHL event.
    tn = Tenant(t)
    e = contact()
    del e["locationId"]
    st, j = tn.send(e)
    assert st == 400, ("ContactCreate without locationId", st, j)
    assert tn.lead_by_contact(e["id"]) is None


def test_oversize_body_413(t):
    tn = Tenant(t)
    e = contact(notes="x" * (1024 * 1024 + 100))
    body = json.dumps(e).encode()
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            "x-ghl-signature: %s\r\n\r\n" % (HOOK % tn.slug, len(body), sign_ed(tn.ed, body))).encode()
    s = socket.create_connection(("127.0.0.1", tn.srv.port), timeout=10 * t.slow)
    data = b""
    try:
        s.sendall(head)
        try:
            for i in range(0, len(body), 65536):
                s.sendall(body[i:i + 65536])
        except OSError:
            pass  # the server may answer and close before the whole body is sent
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        except OSError:
            pass
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert b"body_too_large" in data, data[:400]
    assert tn.lead_by_contact(e["id"]) is None and tn.inbox() == []


def test_chunked_body_signature_is_over_the_decoded_body(t):
    tn = Tenant(t)
    e = contact()
    body = json.dumps(e).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 50]), body[i:i + 50]) for i in range(0, len(body), 50))
    req = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
           "Connection: close\r\nx-ghl-signature: %s\r\n\r\n" % (HOOK % tn.slug, sign_ed(tn.ed, body))).encode()
    data = tn.srv.raw(req + chunks + b"0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200"), data[:300]
    assert tn.lead_by_contact(e["id"])


def test_unknown_type_stored_and_acknowledged(t):
    tn = Tenant(t)
    e = ev("InvoicePaid", invoiceId="inv-1", amount=1200, contactId=cid())
    st, j = tn.send(e)
    assert st == 200 and j["status"] == "stored" and j["type"] == "InvoicePaid", (st, j)
    rows = tn.inbox(e["webhookId"])
    assert len(rows) == 1 and rows[0]["type"] == "InvoicePaid", rows
    assert json.loads(rows[0]["body"]) == e
    assert tn.leads() == [], "an unknown type must change nothing but the inbox"
    st, j = tn.send(e)
    assert st == 200 and j["status"] == "duplicate", (st, j)


# ---------------------------------------------------------------- signatures


def test_bad_signatures_401_and_nothing_changes(t):
    tn = Tenant(t)
    other_ed = _Keys.get("ed-other")
    other_rsa = _Keys.get("rsa-other")
    e = contact()
    body = json.dumps(e).encode()
    other_body = json.dumps(dict(e, firstName="Mallory")).encode()
    cases = {
        "missing": {},
        "garbage ed": {"x-ghl-signature": "not-base64!!"},
        "random ed": {"x-ghl-signature": base64.b64encode(os.urandom(64)).decode()},
        "short ed": {"x-ghl-signature": base64.b64encode(os.urandom(10)).decode()},
        "empty ed": {"x-ghl-signature": ""},
        "other ed key": {"x-ghl-signature": sign_ed(other_ed, body)},
        "ed over other body": {"x-ghl-signature": sign_ed(tn.ed, other_body)},
        "garbage rsa": {"x-wh-signature": "%%%"},
        "random rsa": {"x-wh-signature": base64.b64encode(os.urandom(256)).decode()},
        "other rsa key": {"x-wh-signature": sign_rsa(other_rsa, body)},
        "rsa over other body": {"x-wh-signature": sign_rsa(tn.rsa, other_body)},
        "rsa sig in ed header": {"x-ghl-signature": sign_rsa(tn.rsa, body)},
        "ed sig in rsa header": {"x-wh-signature": sign_ed(tn.ed, body)},
        "token instead of signature": {"X-Webhook-Token": "a" * 32},
    }
    for name, h in cases.items():
        st, j = tn.post_raw(body, h)
        assert st == 401, (name, st, j)
        assert j["error"]["code"] in ("missing_signature", "bad_signature"), (name, j)
    # the signed body, modified after signing
    sig = sign_ed(tn.ed, body)
    st, j = tn.post_raw(body.replace(b"Jane", b"Jann"), {"x-ghl-signature": sig})
    assert st == 401, ("tampered body", st, j)
    st, j = tn.post_raw(body + b" ", {"x-ghl-signature": sig})
    assert st == 401, ("trailing byte", st, j)
    assert tn.leads() == [] and tn.inbox() == [] and tn.events("lead.created") == []
    # the rejected attempts did not use up the webhookId
    st, j = tn.post_raw(body, {"x-ghl-signature": sig})
    assert st == 200 and j["status"] == "accepted", (st, j)
    assert tn.lead_by_contact(e["id"])["first_name"] == "Jane"


def test_signature_checked_before_body_is_parsed(t):
    # Unsigned junk gets 401, not a parse error: nothing is read before the proof.
    tn = Tenant(t)
    st, j = tn.post_raw(b"{not json")
    assert st == 401, (st, j)
    st, j = tn.post_raw(json.dumps({"webhookId": "x"}).encode(), {"x-ghl-signature": "AAAA"})
    assert st == 401, (st, j)


def test_published_keys_reject_forged(t):
    # A tenant left on GoHighLevel's published keys: our own keys are forgeries.
    tn = Tenant(t, keys=False)
    st, s = tn.api("GET", "/v1/settings")
    assert st == 200 and s["ghl_mode"] == "signed", s
    assert s["ghl_ed25519_public_key"] == "ghl-published" and s["ghl_rsa_public_key"] == "ghl-published", s
    e = contact()
    for sig in ["ed", "rsa", None]:
        st, j = tn.send(e, sig=sig)
        assert st == 401, (sig, st, j)
    assert tn.leads() == [] and tn.inbox() == []


def test_custom_keys_reset_to_published(t):
    tn = Tenant(t)
    tn.accept(contact())
    st, s = tn.api("PATCH", "/v1/settings", {"ghl_ed25519_public_key": None, "ghl_rsa_public_key": None})
    assert st == 200 and s["ghl_ed25519_public_key"] == "ghl-published", s
    # effective at once, not after the 30 s cache
    for sig in ["ed", "rsa"]:
        st, j = tn.send(contact(), sig=sig)
        assert st == 401, (sig, st, j)
    assert len(tn.leads()) == 1


def test_key_rotation_takes_effect_at_once(t):
    tn = Tenant(t)
    tn.accept(contact())
    new_ed = _Keys.get("ed-rotated")
    st, s = tn.api("PATCH", "/v1/settings", {"ghl_ed25519_public_key": pub_pem(new_ed)})
    assert st == 200, s
    st, j = tn.send(contact())  # old key
    assert st == 401, (st, j)
    tn.accept(contact(), key=new_ed)
    tn.accept(contact(), sig="rsa")  # the RSA key was left alone


def test_settings_reject_bad_public_keys(t):
    tn = Tenant(t, keys=False)
    ed_pem, rsa_pem = pub_pem(_Keys.get("ed")), pub_pem(_Keys.get("rsa"))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    for field, val in [("ghl_ed25519_public_key", "not a key"), ("ghl_ed25519_public_key", rsa_pem),
                       ("ghl_rsa_public_key", ed_pem), ("ghl_rsa_public_key", pub_pem(small)),
                       ("ghl_rsa_public_key", 12), ("ghl_mode", "open"), ("ghl_token", "short")]:
        st, j = tn.api("PATCH", "/v1/settings", {field: val})
        assert st == 422 and field in j["error"]["fields"], (field, val, st, j)
    st, s = tn.api("GET", "/v1/settings")
    assert s["ghl_ed25519_public_key"] == "ghl-published" and s["ghl_rsa_public_key"] == "ghl-published", s


def test_tenant_keys_do_not_cross_tenants(t):
    # A tenant with its own keys and a tenant on GHL's keys: a body signed for
    # the first is refused at the second. webhookIds are per tenant.
    a = Tenant(t)
    b = Tenant(t, keys=False)
    e = contact()
    st, j = a.send(e, slug=b.slug)
    assert st == 401, (st, j)
    assert b.leads() == []
    c = Tenant(t)
    a.accept(e)
    c.accept(e)  # same webhookId, other tenant: not a duplicate
    assert a.lead_by_contact(e["id"]) and c.lead_by_contact(e["id"])


def test_unknown_tenant_404(t):
    tn = Tenant(t)
    e = contact()
    for slug in ["no-such-tenant-%d" % os.getpid(), "x" * 65, "UPPER"]:
        st, j = tn.send(e, slug=slug)
        assert st == 404 and j["error"]["code"] in ("unknown_tenant", "not_found"), (slug, st, j)


def test_webhook_needs_no_api_key_and_ignores_one(t):
    tn = Tenant(t)
    e = contact()
    body = json.dumps(e).encode()
    st, j = tn.post_raw(body, {"Authorization": "Bearer " + tn.key})
    assert st == 401, "an API key is no substitute for the signature: %r" % ((st, j),)
    st, j = tn.post_raw(body, {"x-ghl-signature": sign_ed(tn.ed, body), "Authorization": "Bearer nonsense"})
    assert st == 200, (st, j)


# ---------------------------------------------------------------- token mode


def test_token_mode(t):
    tn = Tenant(t)
    token = "tok_" + uuid.uuid4().hex
    st, s = tn.api("PATCH", "/v1/settings", {"ghl_mode": "token", "ghl_token": token})
    assert st == 200 and s["ghl_mode"] == "token" and s["ghl_token_set"] is True, s
    assert token not in json.dumps(s)
    e = contact()
    body = json.dumps(e).encode()
    for name, h, query in [("missing", {}, ""), ("wrong", {"X-Webhook-Token": token + "x"}, ""),
                           ("prefix", {"X-Webhook-Token": token[:-1]}, ""), ("empty", {"X-Webhook-Token": ""}, ""),
                           ("wrong query", {}, "?token=nope"),
                           ("signature only", {"x-ghl-signature": sign_ed(tn.ed, body)}, "")]:
        st, j = tn.post_raw(body, h, query=query)
        assert st == 401, (name, st, j)
    assert tn.leads() == [] and tn.inbox() == []
    st, j = tn.post_raw(body, {"X-Webhook-Token": token})
    assert st == 200 and j["status"] == "accepted", (st, j)
    assert tn.lead_by_contact(e["id"])["email"] == e["email"].lower()
    e2 = contact()
    st, j = tn.post_raw(json.dumps(e2).encode(), query="?token=" + token)
    assert st == 200 and j["status"] == "accepted", (st, j)
    assert tn.lead_by_contact(e2["id"])


def test_token_mode_unsigned_workflow_body(t):
    # A workflow "custom webhook": no webhookId, no timestamp; the body's hash
    # identifies the delivery, so the same body again is a duplicate.
    tn = Tenant(t)
    token = "tok_" + uuid.uuid4().hex
    st, s = tn.api("PATCH", "/v1/settings", {"ghl_mode": "token", "ghl_token": token})
    assert st == 200, s
    c = cid()
    body = json.dumps({"type": "ContactCreate", "locationId": LOCATION, "id": c, "firstName": "Flow",
                       "phone": "415-555-0111"}).encode()
    st, j = tn.post_raw(body, {"X-Webhook-Token": token})
    assert st == 200 and j["status"] == "accepted" and j["webhook_id"].startswith("sha256:"), (st, j)
    lead = tn.lead_by_contact(c)
    assert lead and lead["phone"] == "+14155550111", lead
    st, j = tn.post_raw(body, {"X-Webhook-Token": token})
    assert st == 200 and j["status"] == "duplicate", (st, j)
    assert tn.lead_by_contact(c)["version"] == lead["version"]
    # still fresh-checked when a timestamp is given
    st, j = tn.post_raw(json.dumps({"type": "ContactCreate", "id": cid(), "timestamp": iso(now_ms() - 3600000)})
                        .encode(), {"X-Webhook-Token": token})
    assert st == 401, (st, j)


def test_token_mode_needs_token_and_can_go_back(t):
    tn = Tenant(t)
    st, j = tn.api("PATCH", "/v1/settings", {"ghl_mode": "token"})
    assert st == 422, (st, j)
    token = "tok_" + uuid.uuid4().hex
    st, s = tn.api("PATCH", "/v1/settings", {"ghl_mode": "token", "ghl_token": token})
    assert st == 200, s
    st, j = tn.send(contact())
    assert st == 401, ("signed request in token mode", st, j)
    st, s = tn.api("PATCH", "/v1/settings", {"ghl_mode": "signed"})
    assert st == 200 and s["ghl_mode"] == "signed", s
    tn.accept(contact())
    st, j = tn.post_raw(json.dumps(contact()).encode(), {"X-Webhook-Token": token})
    assert st == 401, ("token in signed mode", st, j)


def test_token_not_readable_by_other_roles(t):
    tn = Tenant(t)
    viewer = _cli(t, tn.srv, "key", "create", "viewer", "v", "--tenant", tn.slug)["key"]
    st, _, b = tn.srv.request("PATCH", "/v1/settings", body=json.dumps({"ghl_mode": "signed"}).encode(),
                              headers={"Authorization": "Bearer " + viewer, "Content-Type": "application/json"})
    assert st == 403, (st, b)


# ---------------------------------------------------------------- routing


def test_webhook_leads_are_routed(t):
    tn = Tenant(t)
    st, a1 = tn.api("POST", "/v1/agents", {"name": "Ann Agent", "capacity": 10, "ghl_user_id": "usr-ann"})
    assert st == 201, a1
    st, a2 = tn.api("POST", "/v1/agents", {"name": "Bob Agent", "capacity": 10, "ghl_user_id": "usr-bob"})
    assert st == 201, a2
    ids = set()
    for _ in range(4):
        e = contact()
        tn.accept(e)
        lead = tn.lead_by_contact(e["id"])
        assert lead["agent_id"] in (a1["id"], a2["id"]), ("webhook lead not routed", lead)
        ids.add(lead["agent_id"])
    assert ids == {a1["id"], a2["id"]}, "round robin over 4 leads should use both agents"
    assert len(tn.events("lead.assigned")) >= 4, tn.events()
    # GHL's assignedTo names the agent: that one, whatever round robin says
    for _ in range(2):
        e = contact(assignedTo="usr-bob")
        tn.accept(e)
        assert tn.lead_by_contact(e["id"])["agent_id"] == a2["id"]


def test_webhook_leads_unrouted_when_routing_off(t):
    tn = Tenant(t)
    st, a = tn.api("POST", "/v1/agents", {"name": "Idle Agent", "capacity": 10})
    assert st == 201, a
    st, s = tn.api("PATCH", "/v1/settings", {"routing_mode": "off"})
    assert st == 200, s
    e = contact()
    tn.accept(e)
    assert tn.lead_by_contact(e["id"])["agent_id"] is None


def test_unseen_contact_from_message_is_routed(t):
    tn = Tenant(t)
    st, a = tn.api("POST", "/v1/agents", {"name": "Msg Agent", "capacity": 10})
    assert st == 201, a
    c = cid()
    tn.accept(ev("InboundMessage", contactId=c, messageType="SMS", body="hello?", messageId="m-r"))
    assert tn.lead_by_contact(c)["agent_id"] == a["id"]


def test_default_country_applies_to_webhook_phones(t):
    tn = Tenant(t)
    st, s = tn.api("PATCH", "/v1/settings", {"default_country": "GB"})
    assert st == 200, s
    e = contact(phone="020 7946 0958")
    tn.accept(e)
    assert tn.lead_by_contact(e["id"])["phone"] == "+442079460958"


# ---------------------------------------------------------------- durability


def test_acknowledged_webhooks_survive_sigkill(t):
    s = t.new_server(name="ghl-kill")
    tn = Tenant(t, srv=s, prefix="ghlkill")
    events = [contact() for _ in range(12)]
    results = {}

    def one(e):
        results[e["id"]] = tn.send(e)

    th = [threading.Thread(target=one, args=(e,)) for e in events]
    for x in th:
        x.start()
    for x in th:
        x.join()
    acked = [c for c, (st, j) in results.items() if st == 200 and j["status"] == "accepted"]
    assert len(acked) == len(events), results
    s.kill()  # SIGKILL right after the last 200: no shutdown, no checkpoint
    assert s.proc.returncode == -9, s.proc.returncode
    s.start()
    for c in acked:
        lead = tn.lead_by_contact(c)
        assert lead, "acknowledged ContactCreate %s lost after SIGKILL" % c
    # and the inbox still makes a replay a duplicate
    st, j = tn.send(events[0])
    assert st == 200 and j["status"] == "duplicate", (st, j)
    s.stop()
