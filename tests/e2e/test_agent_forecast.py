"""The 30-day conversion forecast per agent, end to end: a tenant's history
generated through the API (leads, backdated activities, outcomes) where the
answer is known in direction — an agent who answers hot leads within
minutes converts most of them, one who lets cold leads wait two days
converts few — then the prior before training, the 422 while history is
short, the XGBoost model trained on the tenant's own history, and a higher
forecast for the fast agent with the drivers that say why.

Standard library only."""
import random
import time

from tenants import Tenant

MIN = 60000
DAY = 86400000


def _lead(tn, agent, hot, start, reply_after_ms, status, rng):
    lead = tn.create_lead(first_name="F", agent_id=agent, preapproved=hot,
                          timeline="1-2 months" if hot else "2 years")
    acts = [("sms", "inbound", 0, "Hi, is the house on Elm still available?")]
    if reply_after_ms is not None:
        acts.append(("sms", "outbound", reply_after_ms, "Yes! When would you like to see it?"))
        if hot:
            acts.append(("sms", "inbound", reply_after_ms + 3 * MIN, "Tomorrow at 5 works for us."))
            acts.append(("appointment", "none", reply_after_ms + 10 * MIN, "Showing booked"))
    for ch, d, off, body in acts:
        tn.ok("POST", "/v1/leads/%d/activities" % lead["id"],
              {"channel": ch, "direction": d, "body": body, "occurred_at": start + off + rng.randint(0, 999)})
    if status != "open":
        tn.ok("PATCH", "/v1/leads/%d" % lead["id"], {"status": status})
    return lead


def test_agent_forecast_prior_then_model_favours_the_fast_agent(t):
    rng = random.Random(7)
    tn = Tenant(t, prefix="fc")
    fast = tn.create_agent("Fast Fay")["id"]
    slow = tn.create_agent("Slow Sam")["id"]
    now = int(time.time() * 1000)
    # too little history: training says how much is missing
    _lead(tn, fast, True, now - 12 * DAY, 5 * MIN, "won", rng)
    st, j = tn.api("POST", "/v1/agents/forecast/train")
    assert st == 422 and j["error"]["code"] == "not_enough_history", (st, j)
    assert j["error"]["fields"]["min_rows"] == 60 and j["error"]["fields"]["rows"] == 1, j
    # history: closed leads that came in 5-25 days ago
    for i in range(44):
        won = i % 4 != 0  # 75 %
        _lead(tn, fast, True, now - rng.randint(5, 25) * DAY, rng.randint(2, 9) * MIN, "won" if won else "lost", rng)
    for i in range(44):
        won = i % 7 == 0  # ~15 %
        _lead(tn, slow, False, now - rng.randint(5, 25) * DAY, 2 * DAY + rng.randint(0, 600) * MIN,
              "won" if won else "lost", rng)
    # today's pipelines: 6 open leads each, two days old
    for i in range(6):
        _lead(tn, fast, True, now - 2 * DAY - i * MIN, 4 * MIN, "open", rng)
        _lead(tn, slow, False, now - 2 * DAY - i * MIN, None, "open", rng)
    # the prior first (no model yet): base = the tenant's own 30-day rate
    pf = tn.ok("GET", "/v1/agents/%d/performance" % fast, want=200)["forecast_30d"]
    ps = tn.ok("GET", "/v1/agents/%d/performance" % slow, want=200)["forecast_30d"]
    assert pf["kind"] == ps["kind"] == "prior" and pf["open_leads"] == ps["open_leads"] == 6, (pf, ps)
    assert 0.4 < pf["prior_base_rate"] < 0.5, pf  # (1 + 33 + 7) / 89
    assert pf["expected_conversions"] > 3 * ps["expected_conversions"] > 0, (pf, ps)
    # the model, trained on the tenant's history
    st, rep = tn.api("POST", "/v1/agents/forecast/train")
    assert st == 200, (st, rep)
    assert rep["model"] == "agent_forecast" and rep["converted"] >= 30 and rep["not_converted"] >= 40, rep
    f = tn.ok("GET", "/v1/agents/%d/performance" % fast, want=200)["forecast_30d"]
    s = tn.ok("GET", "/v1/agents/%d/performance" % slow, want=200)["forecast_30d"]
    assert f["kind"] == s["kind"] == "model" and f["model_version"] == rep["version"], (f, s)
    assert f["open_leads"] == s["open_leads"] == 6
    assert 0 <= s["expected_conversions"] < f["expected_conversions"] <= 6, (f, s)
    assert f["expected_conversions"] > 2 * s["expected_conversions"], (f, s)
    # the drivers say why: the fast agent's are positive, the slow one's negative
    assert f["drivers"] and s["drivers"], (f, s)
    assert sum(d["effect"] for d in f["drivers"]) > 0 > sum(d["effect"] for d in s["drivers"]), (f, s)
    known = {"first_response_min", "inbound_30d", "outbound_30d", "appointments", "days_since_inbound",
             "awaiting_reply", "preapproved", "timeline", "agent_response_min", "lead_score", "agent_load",
             "age_days", "calls_30d", "budget_max"}
    assert {d["feature"] for d in f["drivers"]} <= known
    # an agent key sees only its own forecast; a viewer cannot train
    st, j = tn.role_client("viewer").api("POST", "/v1/agents/forecast/train")
    assert st == 403, (st, j)
