"""Exports for analytics without personal data: GET
/v1/analytics/activities.csv (every activity, its body through pii_redact,
with the coach's reading of it) and GET /v1/leads/export.csv?redact=true (no
direct identifiers, personal data in the other text columns redacted).
Checked end to end: what goes in with an e-mail, phone, card, SSN and
address comes out with none of them and the rest of the row intact; roles;
filters; bad queries answer 400 JSON."""
import csv
import io
import time

from tenants import Tenant

PII = {
    "email": "jordan.miller@example.com",
    "phone": "(415) 555-0134",
    "card": "4111 1111 1111 1111",
    "ssn": "123-45-6789",
    "address": "1600 Pennsylvania Avenue",
}
BODY = ("Hi, it's Jordan. The price is too high for us. Email me at %(email)s or call %(phone)s. "
        "My card is %(card)s, SSN %(ssn)s, and we live at %(address)s." % PII)
REDACTED = ("Hi, it's Jordan. The price is too high for us. Email me at [EMAIL] or call [PHONE]. "
            "My card is [CARD], SSN [SSN], and we live at [ADDRESS].")
HEADER = ["activity_id", "lead_id", "agent_id", "channel", "direction", "status", "occurred_at", "body",
          "sentiment", "intents", "objections"]


def _csv(tn, path, want=200):
    st, h, b = tn.srv.request("GET", path, headers={"Authorization": "Bearer " + tn.key})
    assert st == want, (path, st, b[:300])
    if st != 200:
        return h, None, b
    assert h["content-type"].startswith("text/csv"), h
    return h, list(csv.reader(io.StringIO(b.decode("utf-8")))), b.decode("utf-8")


def _setup(t):
    tn = Tenant(t, prefix="ax")
    agent = tn.create_agent("Analytics Agent")
    lead = tn.create_lead(first_name="Jordan", last_name="Millerson", email="jordan.lead@example.org",
                          phone="+14155550177", agent_id=agent["id"], source="referral from pat.doe@example.net",
                          tags=["vip", "call 415-555-0199"])
    at = int(time.time() * 1000) - 60000
    a_in = tn.ok("POST", "/v1/leads/%d/activities" % lead["id"],
                 {"channel": "sms", "direction": "inbound", "body": BODY, "status": "received", "occurred_at": at})
    a_out = tn.ok("POST", "/v1/leads/%d/activities" % lead["id"],
                  {"channel": "email", "direction": "outbound", "body": "Thanks Jordan, happy to help!"})
    return tn, agent, lead, a_in, a_out, at


def test_export_analytics_activities_without_pii(t):
    tn, agent, lead, a_in, a_out, at = _setup(t)
    h, rows, text = _csv(tn, "/v1/analytics/activities.csv")
    assert rows[0] == HEADER, rows[0]
    assert h["x-export-rows"] == "2" and "x-export-truncated" not in h, h
    for v in list(PII.values()) + ["jordan.lead@example.org", "4155550177", "Millerson", "555-01", "4111", "6789"]:
        assert v not in text, (v, text)
    by = {int(r[0]): dict(zip(HEADER, r)) for r in rows[1:]}
    r = by[a_in["id"]]
    assert (int(r["lead_id"]), int(r["agent_id"]), r["channel"], r["direction"], r["status"]) == \
        (lead["id"], agent["id"], "sms", "inbound", "received"), r
    assert r["occurred_at"] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at / 1000)) + ".%03dZ" % (at % 1000), r
    assert r["body"] == REDACTED, r["body"]
    assert "price_too_high" in r["objections"].split(";"), r
    assert -1.0 <= float(r["sentiment"]) <= 1.0, r
    o = by[a_out["id"]]
    assert (o["channel"], o["direction"], o["body"]) == ("email", "outbound", "Thanks Jordan, happy to help!"), o
    assert o["intents"] == "" and o["objections"] == "" and float(o["sentiment"]) > 0, o  # the agent's words


def test_export_analytics_filters_limit_roles_and_bad_query(t):
    tn, agent, lead, a_in, a_out, at = _setup(t)
    other = tn.create_lead(first_name="Other")
    tn.ok("POST", "/v1/leads/%d/activities" % other["id"], {"channel": "note", "body": "met at open house"})
    _, rows, _ = _csv(tn, "/v1/analytics/activities.csv?direction=outbound")
    assert [int(r[0]) for r in rows[1:]] == [a_out["id"]], rows
    _, rows, _ = _csv(tn, "/v1/analytics/activities.csv?agent_id=%d&channel=sms" % agent["id"])
    assert [int(r[0]) for r in rows[1:]] == [a_in["id"]], rows
    _, rows, _ = _csv(tn, "/v1/analytics/activities.csv?lead_id=%d" % other["id"])
    assert len(rows) == 2 and rows[1][3:5] == ["note", "none"], rows
    _, rows, _ = _csv(tn, "/v1/analytics/activities.csv?since=%d&until=%d" % (at, at + 1))
    assert [int(r[0]) for r in rows[1:]] == [a_in["id"]], rows
    h, rows, _ = _csv(tn, "/v1/analytics/activities.csv?limit=1")
    assert len(rows) == 2 and h["x-export-rows"] == "1" and h["x-export-truncated"] == "true", (h, rows)
    # another tenant sees none of it
    t2 = Tenant(t, prefix="ax")
    _, rows, _ = _csv(t2, "/v1/analytics/activities.csv")
    assert rows == [HEADER], rows
    # roles: as the leads export (agents may not export)
    for role, want in (("agent", 403), ("viewer", 200), ("analyst", 200), ("manager", 200)):
        c = tn.role_client(role)
        st, j = c.api("GET", "/v1/analytics/activities.csv")
        assert st == want, (role, st, j)
        if want == 403:
            assert j["error"]["code"] == "forbidden", j
    for q in ("since=abc", "until=-5", "channel=fax", "direction=sideways", "lead_id=0", "agent_id=x",
              "limit=0", "limit=100001", "limit=ten"):
        st, j = tn.api("GET", "/v1/analytics/activities.csv?" + q)
        assert st == 400 and j["error"]["code"] == "bad_query", (q, st, j)
        assert q.split("=")[0] in j["error"]["message"], (q, j)


def test_export_leads_redact_true(t):
    tn, agent, lead, a_in, a_out, at = _setup(t)
    _, rows, text = _csv(tn, "/v1/leads/export.csv")
    assert "jordan.lead@example.org" in text and "first_name" in rows[0]  # the plain export is unchanged
    _, rows, text = _csv(tn, "/v1/leads/export.csv?redact=true")
    head = rows[0]
    for col in ("first_name", "last_name", "email", "phone", "ghl_contact_id", "linkedin_url"):
        assert col not in head, (col, head)
    for v in ("Jordan", "Millerson", "jordan.lead@example.org", "4155550177", "pat.doe@example.net", "415-555-0199"):
        assert v not in text, (v, text)
    r = dict(zip(head, rows[1]))
    assert int(r["id"]) == lead["id"] and int(r["agent_id"]) == agent["id"], r
    assert r["source"] == "referral from [EMAIL]" and r["tags"] == "vip;call [PHONE]", r
    assert r["status"] == "open" and r["consent_sms"] == "false", r
    assert len(head) == len(rows[1]), (head, rows[1])
    st, j = tn.api("GET", "/v1/leads/export.csv?redact=yes")
    assert st == 400 and j["error"]["code"] == "bad_query" and "redact" in j["error"]["message"], (st, j)
    st, j = tn.role_client("agent").api("GET", "/v1/leads/export.csv?redact=true")
    assert st == 403, (st, j)
