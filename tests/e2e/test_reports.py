"""Pipeline report end to end (GET /v1/reports/pipeline): a known data set
(leads with known first-outbound delays, stages, outcomes, sources and
agents, one of them deleted) checked to the exact count, bucket and
percentile; the filters; the agent rule (a linked agent sees only its own
leads, an unlinked agent key none); tenant isolation; bad parameters.

Every test makes its own tenant. Standard library only."""
import json
import time
import urllib.parse

from tenants import Tenant, unique

S, MIN, H = 1000, 60000, 3600000
PASSWORD = "correct horse battery staple"


def _report(cl, want=200, **params):
    q = urllib.parse.urlencode(params)
    st, j = cl.api("GET", "/v1/reports/pipeline" + ("?" + q if q else ""))
    assert st == want, (st, j, params)
    return j


def _act(tn, lead, at, channel="sms", direction="outbound"):
    tn.ok("POST", "/v1/leads/%d/activities" % lead["id"],
          {"channel": channel, "direction": direction, "body": "x", "occurred_at": at})


def _dataset(tn):
    """The leads of the module docstring; returns (agents, leads)."""
    tn.set_routing("off")
    a = tn.create_agent("Ann Agent", email="ann-%s@example.com" % tn.slug)
    b = tn.create_agent("Bob Agent", email="bob-%s@example.com" % tn.slug)
    # (source, agent, stage, status, delay to first outbound or None, appointment)
    spec = [("zillow", a, "new", "open", 30 * S, False),
            ("zillow", a, "contacted", "open", 3 * MIN, False),
            ("zillow", a, "appointment", "won", 10 * MIN, True),
            ("web", a, "appointment", "lost", 30 * MIN, True),
            ("web", b, "qualified", "won", 2 * H, False),
            ("web", b, "new", "abandoned", 30 * H, False),
            ("referral", b, "new", "open", None, False),
            ("referral", None, "new", "open", None, False),
            ("zillow", b, "contacted", "lost", -5 * MIN, False)]  # touched "before" creation: counts as 0
    leads = []
    for i, (src, ag, stage, status, delay, appt) in enumerate(spec):
        f = dict(first_name="L%d" % i, email="l%d-%s@example.com" % (i, tn.slug), source=src, stage=stage,
                 status=status)
        if ag:
            f["agent_id"] = ag["id"]
        lead = tn.create_lead(**f)
        c = lead["created_at"]
        _act(tn, lead, c + 1 * S, direction="inbound")          # the lead writing first is not a touch
        _act(tn, lead, c + 2 * S, channel="note", direction="none")
        if delay is not None:
            _act(tn, lead, c + delay, channel="email" if i % 2 else "sms")
            _act(tn, lead, c + delay + 40 * H, channel="call")   # later touches do not move the first
        if appt:
            _act(tn, lead, c + 3 * H, channel="appointment", direction="none")
        leads.append(lead)
    gone = tn.create_lead(first_name="Gone", source="zillow", agent_id=a["id"])
    _act(tn, gone, gone["created_at"] + 10 * S)
    tn.ok("DELETE", "/v1/leads/%d" % gone["id"], want=204)
    return (a, b), leads


def _buckets(o):
    return [x["leads"] for x in o["buckets"]]


def test_reports_pipeline_known_dataset(t):
    tn = Tenant(t, prefix="rp")
    (a, b), leads = _dataset(tn)
    r = _report(tn.role_client("viewer"))
    assert r["leads"] == 9, r
    assert r["range"]["days"] == 30 and r["range"]["timezone"] == "UTC"
    assert r["filters"] == {"agent_id": None, "source": None}
    assert r["by_status"] == {"open": 4, "won": 2, "lost": 2, "abandoned": 1}, r["by_status"]
    assert r["by_stage"] == [{"stage": "new", "leads": 4}, {"stage": "appointment", "leads": 2},
                             {"stage": "contacted", "leads": 2}, {"stage": "qualified", "leads": 1}], r["by_stage"]
    assert r["win_rate"] == 0.5
    f = {s["step"]: s for s in r["funnel"]}
    assert [s["step"] for s in r["funnel"]] == ["created", "contacted", "appointment", "won"]
    assert [s["leads"] for s in r["funnel"]] == [9, 7, 2, 2], r["funnel"]
    assert f["created"]["conversion"] is None and f["created"]["of_created"] == 1
    assert abs(f["contacted"]["conversion"] - 7 / 9) < 1e-9
    assert abs(f["appointment"]["conversion"] - 2 / 7) < 1e-9
    assert f["won"]["conversion"] == 1 and abs(f["won"]["of_created"] - 2 / 9) < 1e-9
    o = r["speed_to_lead"]["overall"]
    assert [x["bucket"] for x in o["buckets"]] == ["lt_1m", "1_5m", "5_15m", "15_60m", "1_24h", "gt_24h", "never"]
    assert _buckets(o) == [2, 1, 1, 1, 1, 1, 2], o
    # delays 0, 30 s, 3 min, 10 min, 30 min, 2 h, 30 h: nearest rank 4 and 7 of 7
    assert (o["touched"], o["never"], o["within_5m"], o["p50_ms"], o["p90_ms"]) == (7, 2, 3, 10 * MIN, 30 * H), o
    src = {x["source"]: x for x in r["speed_to_lead"]["by_source"]}
    assert [x["source"] for x in r["speed_to_lead"]["by_source"]] == ["zillow", "web", "referral"]
    assert (src["zillow"]["leads"], src["zillow"]["p50_ms"], src["zillow"]["p90_ms"]) == (4, 30 * S, 10 * MIN)
    assert _buckets(src["zillow"]) == [2, 1, 1, 0, 0, 0, 0]
    assert (src["web"]["leads"], src["web"]["p50_ms"], src["web"]["p90_ms"]) == (3, 2 * H, 30 * H)
    assert src["web"]["win_rate"] == 0.5 and src["web"]["won"] == 1
    assert (src["referral"]["touched"], src["referral"]["never"], src["referral"]["p50_ms"]) == (0, 2, None)
    ag = {x["agent_id"]: x for x in r["speed_to_lead"]["by_agent"]}
    assert set(ag) == {a["id"], b["id"], None}, ag
    assert (ag[a["id"]]["name"], ag[a["id"]]["leads"], ag[a["id"]]["p50_ms"], ag[a["id"]]["p90_ms"]) == \
        ("Ann Agent", 4, 3 * MIN, 30 * MIN)
    assert (ag[b["id"]]["leads"], ag[b["id"]]["touched"], ag[b["id"]]["p50_ms"], ag[b["id"]]["p90_ms"]) == \
        (4, 3, 2 * H, 30 * H)
    assert _buckets(ag[b["id"]]) == [1, 0, 0, 0, 1, 1, 1]
    assert ag[None]["name"] == "Unassigned" and ag[None]["leads"] == 1
    days = r["daily"]
    assert len(days) == 30 and sum(d["created"] for d in days) == 9 and sum(d["touched_5m"] for d in days) == 3
    assert days[-1]["start"] <= leads[-1]["created_at"] < days[-1]["start"] + 86400000
    assert days[-1]["created"] == 9
    assert days[-1]["date"] == time.strftime("%Y-%m-%d", time.gmtime(leads[-1]["created_at"] / 1000))
    assert all(days[i + 1]["start"] - days[i]["start"] == 86400000 for i in range(29))

    # filters: one agent, one source, both, a range starting part-way
    ra = _report(tn, agent_id=a["id"])
    assert ra["leads"] == 4 and ra["filters"]["agent_id"] == a["id"] and ra["by_status"]["won"] == 1
    assert [x["agent_id"] for x in ra["speed_to_lead"]["by_agent"]] == [a["id"]]
    rw = _report(tn, source="web")
    assert rw["leads"] == 3 and _buckets(rw["speed_to_lead"]["overall"]) == [0, 0, 0, 1, 1, 1, 0]
    assert _report(tn, source="web", agent_id=b["id"])["leads"] == 2
    assert _report(tn, source="nowhere")["leads"] == 0
    cut = leads[4]["created_at"]
    want = sum(1 for l in leads if l["created_at"] >= cut)
    rc = _report(tn, **{"from": cut, "to": cut + 86400000})
    assert rc["leads"] == want and rc["range"] == {"from": cut, "to": cut + 86400000, "days": 1, "timezone": "UTC"}
    assert _report(tn, **{"from": "2020-01-01", "to": "2020-12-31"})["leads"] == 0
    empty = _report(tn, **{"from": "2020-01-01", "to": "2020-01-01"})
    assert empty["range"]["days"] == 1 and empty["daily"][0]["date"] == "2020-01-01"
    assert empty["win_rate"] is None and empty["speed_to_lead"]["overall"]["p50_ms"] is None
    assert [s["leads"] for s in empty["funnel"]] == [0, 0, 0, 0]


def test_reports_pipeline_roles(t):
    tn = Tenant(t, prefix="rr")
    (a, b), leads = _dataset(tn)
    for role in ("viewer", "analyst", "manager", "admin"):
        assert _report(tn.role_client(role))["leads"] == 9, role
    # an agent user linked to Bob: Bob's leads only, whatever it asks
    email = "bob-user-%s@example.com" % tn.slug
    tn.ok("POST", "/v1/users", {"email": email, "role": "agent", "password": PASSWORD, "agent_id": b["id"]})
    st, _, lj = t.srv.request("POST", "/v1/auth/login", {"tenant": tn.slug, "email": email, "password": PASSWORD})
    assert st == 200, (st, lj)

    class Jwt:
        def api(self, m, p):
            st, _, body = t.srv.request(m, p, headers={"Authorization": "Bearer " + json.loads(lj)["access_token"]})
            return st, json.loads(body)
    bob = Jwt()
    rb = _report(bob)
    assert rb["leads"] == 4 and rb["filters"]["agent_id"] == b["id"], rb
    assert [x["agent_id"] for x in rb["speed_to_lead"]["by_agent"]] == [b["id"]]
    assert _report(bob, agent_id=b["id"])["leads"] == 4
    err = _report(bob, want=403, agent_id=a["id"])
    assert err["error"]["code"] == "forbidden"
    # an agent key linked to no agent sees no lead
    r0 = _report(tn.role_client("agent"))
    assert r0["leads"] == 0 and r0["speed_to_lead"]["by_agent"] == [], r0
    assert _report(tn.role_client("agent"), want=403, agent_id=a["id"])["error"]["code"] == "forbidden"
    st, _, _ = t.srv.request("GET", "/v1/reports/pipeline")
    assert st == 401


def test_reports_pipeline_tenant_isolation(t):
    ta = Tenant(t, prefix="ri")
    (a, b), _ = _dataset(ta)
    tb = Tenant(t, prefix="ri")
    other = tb.create_lead(first_name="Other", source="zillow")
    _act(tb, other, other["created_at"] + 5 * S)
    rb = _report(tb)
    assert rb["leads"] == 1 and rb["speed_to_lead"]["overall"]["p50_ms"] == 5 * S, rb
    for role in ("admin", "viewer", "manager"):
        e = _report(tb.role_client(role), want=404, agent_id=a["id"])  # tenant A's agent is no agent of B
        assert e["error"]["code"] == "not_found"
    assert _report(tb, source="web")["leads"] == 0
    assert _report(ta)["leads"] == 9


def test_reports_pipeline_bad_parameters(t):
    tn = Tenant(t, prefix="rb")
    tn.create_lead(first_name="One", source="web")
    bad = [{"from": "yesterday"}, {"to": "2026-13-01"}, {"from": "2026-02-30"}, {"from": "2025-02-29"},
           {"from": "1969-12-31"}, {"from": "-5"}, {"from": "1" * 16}, {"from": ""},
           {"from": "2026-05-02", "to": "2026-05-01"}, {"from": "2025-01-01", "to": "2026-01-02"},
           {"from": "1000", "to": "1000"}, {"agent_id": "abc"}, {"agent_id": "0"}, {"agent_id": "-1"},
           {"source": ""}, {"source": "x" * 201}]
    for p in bad:
        e = _report(tn, want=400, **p)
        assert e["error"]["code"] == "bad_query" and e["error"]["message"], (p, e)
    assert _report(tn, want=404, agent_id=987654321)["error"]["code"] == "not_found"
    # the limits themselves pass: 366 days, a 200-byte source, a leap day
    assert _report(tn, **{"from": "2024-01-01", "to": "2024-12-31"})["range"]["days"] == 366
    assert _report(tn, source="y" * 200)["leads"] == 0
    assert _report(tn, **{"from": "2024-02-29", "to": "2024-02-29"})["daily"][0]["date"] == "2024-02-29"
    assert _report(tn)["leads"] == 1
