"""Coaching end to end: realistic conversations written for these tests
(intents, objections, qualification items, warnings), a stored lead's
conversation with its fields, recording of suggestions and feedback,
statistics with coached vs uncoached outcomes, the tenant playbook, agent
performance, bad input (empty, huge, non-UTF-8), roles and tenant isolation.

Every test makes its own tenant. Standard library only."""
import json
import time

from tenants import Tenant

MIN = 60000

# (name, [(direction, body)], intents, objections, known qualification items)
CONVERSATIONS = [
    ("first-time buyer, fully qualified",
     [("inbound", "Hi! We saw your listing on Zillow. We're first time buyers looking for a 3 bedroom house near Land Park."),
      ("outbound", "Welcome! What price range are you thinking about?"),
      ("inbound", "Our budget is around $450k and we're pre-approved with Golden 1."),
      ("outbound", "Great. When would you like to move?"),
      ("inbound", "Our lease ends in June so within 4 months. My wife and I decide together.")],
     set(), set(), {"budget", "timeline", "preapproval", "location", "property_type", "motivation", "decision_makers"}),
    ("ready to write an offer",
     [("inbound", "We loved the house on 5th yesterday, we're ready to make an offer today!"),
      ("outbound", "Wonderful! Let's talk numbers.")],
     {"ready_to_buy"}, set(), set()),
    ("seller wants to list",
     [("inbound", "We're thinking we want to sell our house this spring. What is my home worth?")],
     {"ready_to_sell"}, set(), {"timeline"}),
    ("browsing only",
     [("inbound", "Just browsing for now, no rush at all."), ("outbound", "No problem, happy to help whenever.")],
     {"just_browsing"}, set(), set()),
    ("showing request",
     [("inbound", "Can we schedule a showing for the condo on Saturday morning?")],
     {"wants_showing"}, set(), {"property_type"}),
    ("price question",
     [("inbound", "What's the price on the Elm St listing and how much are the HOA fees?")],
     {"price_question"}, set(), set()),
    ("financing question",
     [("inbound", "What interest rate could we get and how much is the down payment for an FHA loan?")],
     {"financing_question"}, set(), set()),
    ("price too high",
     [("inbound", "Honestly that one is way too expensive for us."), ("outbound", "Understood.")],
     set(), {"price_too_high"}, set()),
    ("over budget",
     [("inbound", "Those homes are all over our budget, we can't afford 600k.")],
     set(), {"price_too_high"}, {"budget"}),
    ("not ready",
     [("inbound", "Thanks but we're not ready yet, maybe next year.")],
     set(), {"not_ready"}, {"timeline"}),
    ("other agent",
     [("inbound", "We already have an agent, my cousin is an agent in Folsom.")],
     set(), {"other_agent"}, set()),
    ("needs to sell first",
     [("inbound", "We'd love to move up but we need to sell our house first.")],
     set(), {"needs_to_sell_first"}, set()),
    ("rates objection",
     [("inbound", "Rates are too high right now, we're waiting for rates to come down.")],
     set(), {"rates_financing"}, set()),
    ("just looking objection",
     [("inbound", "We're just looking, not serious buyers yet.")],
     set(), {"just_looking"}, set()),
    ("relocation with timeline",
     [("inbound", "I'm relocating for a new job at UC Davis and need to move by August."),
      ("outbound", "Congrats! Which areas are you considering?"),
      ("inbound", "Somewhere close to campus, maybe in Davis. Just me buying.")],
     set(), set(), {"motivation", "timeline", "location", "decision_makers"}),
    ("downsizing retirees",
     [("inbound", "We're retiring next year and downsizing to a single-story ranch in Roseville.")],
     set(), set(), {"motivation", "timeline", "property_type", "location"}),
    ("cash buyer investor",
     [("inbound", "I'm a cash buyer looking for a duplex as an investment, up to 700k.")],
     set(), set(), {"preapproval", "property_type", "motivation", "budget"}),
    ("growing family",
     [("inbound", "Baby on the way so we need more room, a 4 bed house with a yard in the Elk Grove school district.")],
     set(), set(), {"motivation", "property_type", "location"}),
    ("prequalified couple",
     [("inbound", "My husband and I got prequalified last week for $380,000.")],
     set(), set(), {"decision_makers", "preapproval", "budget"}),
    ("townhouse near downtown",
     [("inbound", "Looking for a townhouse near downtown, something walkable.")],
     set(), set(), {"property_type", "location"}),
    ("showing and price",
     [("inbound", "Is the asking price negotiable? We'd like to see the property this weekend.")],
     {"price_question", "wants_showing"}, set(), set()),
    ("angry lead",
     [("inbound", "Hi, I'm interested in the Maple house"), ("outbound", "Thanks! Let me check."),
      ("inbound", "Still waiting on an answer, this is frustrating."),
      ("inbound", "Really disappointed, nobody called me back. Terrible service.")],
     set(), set(), set()),
    ("parents co-signing",
     [("inbound", "My parents will be co-signers, we want a condo in midtown under $350k.")],
     set(), set(), {"decision_makers", "property_type", "location", "budget"}),
    ("sell then buy",
     [("inbound", "We want to list our home and then buy something bigger, but we have to sell first.")],
     {"ready_to_sell"}, {"needs_to_sell_first"}, set()),
    ("lender talk",
     [("inbound", "I talked to a lender yesterday, the monthly payment would be about 2,800.")],
     {"financing_question"}, set(), {"preapproval"}),
    ("working with realtor",
     [("inbound", "Sorry, we're working with a realtor already.")],
     set(), {"other_agent"}, set()),
    ("hold off",
     [("inbound", "We decided to hold off until the kids finish school. Prices are insane anyway.")],
     set(), {"not_ready", "price_too_high"}, set()),
    ("credit issue",
     [("inbound", "Honestly my credit is bad and the bank said I don't qualify.")],
     set(), {"rates_financing"}, set()),
    ("email inquiry tour",
     [("inbound", "Hello, I would like to tour the bungalow on Oak and take a look at the backyard. We're tired of renting.")],
     {"wants_showing"}, set(), {"property_type", "motivation"}),
    ("asap buyer",
     [("inbound", "We need something ASAP, our apartment lease is up at the end of the month. Budget 500k, pre-approved.")],
     set(), set(), {"timeline", "budget", "preapproval"}),
    ("window shopping",
     [("inbound", "Just window shopping, seeing what's out there in East Sacramento.")],
     {"just_browsing"}, {"just_looking"}, {"location"}),
    ("negated intent",
     [("inbound", "We are not ready to buy, just curious about the market.")],
     {"just_browsing"}, {"not_ready"}, set()),
]


def _msgs(conv, start=None):
    start = start or int(time.time() * 1000) - 3600 * 1000
    return [{"direction": d, "body": b, "at": start + i * 2 * MIN, "id": i + 1} for i, (d, b) in enumerate(conv)]


def _coach(tn, body, want=200):
    st, j = tn.api("POST", "/get-coaching", body)
    assert st == want, (st, j, body)
    return j


def test_coach_conversations_find_intents_objections_and_qualification(t):
    tn = Tenant(t, prefix="co")
    assert len(CONVERSATIONS) >= 30
    covered = {"intents": set(), "objections": set(), "known": set()}
    for name, conv, intents, objections, known in CONVERSATIONS:
        j = _coach(tn, {"messages": _msgs(conv)})
        an = j["analysis"]
        got_i = {x["intent"] for x in an["intents"]}
        got_o = {x["objection"] for x in an["objections"]}
        got_k = {k for k, v in an["qualification"].items() if v["known"]}
        assert intents <= got_i, (name, intents, got_i)
        assert objections <= got_o, (name, objections, got_o)
        assert known <= got_k, (name, known, got_k, an["qualification"])
        covered["intents"] |= got_i & intents
        covered["objections"] |= got_o & objections
        covered["known"] |= got_k & known
        # every known item from a message names the message and quotes it
        for k in known:
            q = an["qualification"][k]
            assert q["source"] == "message" and 1 <= q["message_id"] <= len(conv) and q["evidence"], (name, k, q)
            assert q["evidence"].lower() in conv[q["message_id"] - 1][1].lower(), (name, q)
        assert set(an["missing"]) == set(an["qualification"]) - got_k, (name, an["missing"])
        # objections get playbook answers that quote the lead
        for o in objections:
            s = [x for x in j["suggestions"] if x["type"] == "objection" and x["item"] == o]
            assert s and s[0]["reason"].startswith("The lead said") and s[0]["id"] > 0, (name, o, j["suggestions"])
        for s in j["suggestions"]:
            assert s["text"] and s["reason"] and isinstance(s["id"], int), s
    assert covered["intents"] == {"ready_to_buy", "ready_to_sell", "just_browsing", "wants_showing", "price_question",
                                  "financing_question"}, covered
    assert covered["objections"] == {"price_too_high", "not_ready", "other_agent", "needs_to_sell_first",
                                     "rates_financing", "just_looking"}, covered
    assert covered["known"] == {"budget", "timeline", "preapproval", "location", "property_type", "motivation",
                                "decision_makers"}, covered
    # a negated intent is not an intent
    neg = _coach(tn, {"messages": _msgs(CONVERSATIONS[-1][1])})["analysis"]
    assert "ready_to_buy" not in {x["intent"] for x in neg["intents"]}, neg["intents"]


def test_coach_sentiment_waiting_and_quiet_hours(t):
    tn = Tenant(t, prefix="co")
    angry = [c for c in CONVERSATIONS if c[0] == "angry lead"][0][1]
    now = int(time.time() * 1000)
    j = _coach(tn, {"messages": _msgs(angry, start=now - 30 * MIN)})
    an = j["analysis"]
    per = [m["score"] for m in an["sentiment"]["per_message"] if m["direction"] == "inbound"]
    assert per[0] > 0 > per[-1], per
    assert an["sentiment"]["dropping"] is True and an["sentiment"]["message_id"] == 4, an["sentiment"]
    items = [s["item"] for s in j["suggestions"] if s["type"] == "warning"]
    assert "sentiment_dropping" in items and "lead_waiting" in items, j["suggestions"]
    wait = [s for s in j["suggestions"] if s["item"] == "lead_waiting"][0]
    assert wait["message_id"] == 3, wait  # the first unanswered message
    assert an["response_times"]["waiting_s"] > 5 * 60 and an["response_times"]["agent"]["median_s"] == 120, an
    # answered quickly and politely: no warnings
    calm = [("inbound", "Thanks, this is great!"), ("outbound", "Happy to help!")]
    j = _coach(tn, {"messages": _msgs(calm, start=now - 3 * MIN)})
    assert not [s for s in j["suggestions"] if s["type"] == "warning"], j["suggestions"]
    # quiet hours: 23:30 in Los Angeles is 07:30 UTC next day (PDT, July)
    msgs = [{"direction": "inbound", "body": "any news?", "at": "2025-07-02T06:00:00Z"},
            {"direction": "outbound", "body": "Yes! New listing just came in.", "at": "2025-07-02T06:30:00Z"}]
    j = _coach(tn, {"messages": msgs, "timezone": "America/Los_Angeles"})
    q = j["analysis"]["quiet_hours"]
    assert q == [{"message_id": 2, "local_hour": 23}], q
    assert [s for s in j["suggestions"] if s["item"] == "quiet_hours"][0]["message_id"] == 2
    j = _coach(tn, {"messages": msgs})  # zone unknown: no quiet-hours check
    assert j["analysis"]["quiet_hours"] == [] and j["analysis"]["timezone"] is None


def test_coach_stored_lead_uses_activities_fields_and_talk_ratio(t):
    tn = Tenant(t, prefix="co")
    agent = tn.create_agent("Coach Me", email="coach@example.com")
    lead = tn.create_lead(first_name="Dana", email="dana@example.com", budget_max=520000, preapproved=True,
                          timezone="America/New_York", agent_id=agent["id"])
    lid = lead["id"]
    now = int(time.time() * 1000)
    acts = [("sms", "inbound", "Hi, we're relocating from Chicago and need a 3 bedroom in East Sacramento", now - 50 * MIN),
            ("sms", "outbound", "Welcome! When do you need to be here?", now - 45 * MIN),
            ("call", "none", "Agent: thanks for taking my call\nClient: we are too stressed, rates are too high and "
                             "honestly we want to see the house on J street first, my husband too", now - 40 * MIN),
            ("sms", "inbound", "Are you there? We really need an answer", now - 20 * MIN)]
    ids = []
    for ch, d, b, at in acts:
        ids.append(tn.ok("POST", "/v1/leads/%d/activities" % lid,
                         {"channel": ch, "direction": d, "body": b, "occurred_at": at})["id"])
    st, j = tn.api("POST", "/v1/leads/%d/coaching" % lid)
    assert st == 200, (st, j)
    an = j["analysis"]
    assert j["lead_id"] == lid and j["agent_id"] == agent["id"], j
    q = an["qualification"]
    assert q["budget"]["source"] == "lead" and q["preapproval"]["source"] == "lead", q
    assert q["motivation"]["message_id"] == ids[0] and q["decision_makers"]["message_id"] == ids[2], q
    assert an["talk_ratio"] and an["talk_ratio"]["lead"] > an["talk_ratio"]["agent"], an["talk_ratio"]
    assert {"rates_financing"} <= {o["objection"] for o in an["objections"]}
    assert {"wants_showing"} <= {i["intent"] for i in an["intents"]}
    assert an["response_times"]["waiting_message_id"] == ids[3], an["response_times"]
    assert an["timezone"] == "America/New_York"
    # the old route gives the same analysis for the lead id
    j2 = _coach(tn, {"lead_id": lid})
    assert j2["analysis"]["qualification"] == q and j2["lead_id"] == lid
    # questions only for what is missing
    asked = {s["item"] for s in j["suggestions"] if s["type"] == "question"}
    assert asked and not asked & {"budget", "preapproval", "motivation"}, asked


def test_coach_feedback_stats_and_outcomes(t):
    tn = Tenant(t, prefix="co")
    agent = tn.create_agent("Stat Agent")
    coached = [tn.create_lead(first_name="C%d" % i, agent_id=agent["id"]) for i in range(3)]
    uncoached = [tn.create_lead(first_name="U%d" % i, agent_id=agent["id"]) for i in range(2)]
    for l in coached:
        tn.ok("POST", "/v1/leads/%d/activities" % l["id"], {"channel": "sms", "direction": "inbound",
                                                            "body": "It's too expensive and we're not ready"})
    shown = []
    for l in coached:
        shown += tn.ok("POST", "/v1/leads/%d/coaching" % l["id"], {}, want=200)["suggestions"]
    assert len(shown) >= 6
    tn.ok("POST", "/v1/coaching/feedback", {"suggestion_id": shown[0]["id"], "outcome": "accepted"})
    tn.ok("POST", "/v1/coaching/feedback", {"suggestion_id": shown[1]["id"], "outcome": "accepted"})
    tn.ok("POST", "/v1/coaching/feedback", {"suggestion_id": shown[2]["id"], "outcome": "dismissed"})
    for bad in ({"suggestion_id": shown[0]["id"], "outcome": "maybe"}, {"outcome": "accepted"}, {"suggestion_id": "x"}):
        st, j = tn.api("POST", "/v1/coaching/feedback", bad)
        assert st == 422 and j["error"]["code"] == "validation_failed", (bad, st, j)
    st, j = tn.api("POST", "/v1/coaching/feedback", {"suggestion_id": 10 ** 12, "outcome": "accepted"})
    assert st == 404, (st, j)
    # outcomes: 2 of 3 coached won, 1 of 2 uncoached won
    for l, s in zip(coached + uncoached, ["won", "won", "lost", "won", "lost"]):
        tn.ok("PATCH", "/v1/leads/%d" % l["id"], {"status": s})
    for path in ("/coaching-stats", "/v1/coaching-stats", "/v1/coaching-stats?agent_id=%d" % agent["id"]):
        st, s = tn.api("GET", path)
        assert st == 200, (path, st, s)
        assert s["shown"] == len(shown) and s["accepted"] == 2 and s["dismissed"] == 1, s
        assert abs(s["acceptance_rate"] - 2 / 3) < 1e-9
        c, u = s["outcomes"]["coached"], s["outcomes"]["uncoached"]
        assert (c["won"], c["closed"], u["won"], u["closed"]) == (2, 3, 1, 2), s["outcomes"]
        assert abs(c["won_rate"] - 2 / 3) < 1e-9 and abs(u["won_rate"] - 0.5) < 1e-9
        assert sum(v["shown"] for v in s["by_type"].values()) == s["shown"], s["by_type"]
    st, j = tn.api("GET", "/v1/coaching-stats?agent_id=abc")
    assert st == 400, (st, j)


def test_coach_agent_performance(t):
    tn = Tenant(t, prefix="co")
    a = tn.create_agent("Perf Agent")
    other = tn.create_agent("Other Agent")
    now = int(time.time() * 1000)
    leads = [tn.create_lead(first_name="P%d" % i, agent_id=a["id"]) for i in range(4)]
    # lead 0: replied after 4 min, appointment, won; lead 1: replied after 10 min, lost;
    # lead 2: never contacted; lead 3: replied after 6 min
    plan = {0: [("sms", "inbound", 0), ("sms", "outbound", 4), ("appointment", "none", 30)],
            1: [("sms", "inbound", 0), ("sms", "inbound", 2), ("email", "outbound", 10)],
            2: [("sms", "inbound", 0)],
            3: [("call", "inbound", 0), ("call", "outbound", 6)]}
    for i, acts in plan.items():
        for ch, d, m in acts:
            tn.ok("POST", "/v1/leads/%d/activities" % leads[i]["id"],
                  {"channel": ch, "direction": d, "body": "x", "occurred_at": now - 3600000 + m * MIN})
    tn.ok("PATCH", "/v1/leads/%d" % leads[0]["id"], {"status": "won"})
    tn.ok("PATCH", "/v1/leads/%d" % leads[1]["id"], {"status": "lost"})
    tn.ok("POST", "/v1/leads/%d/coaching" % leads[0]["id"], {})
    st, p = tn.api("GET", "/v1/agents/%d/performance" % a["id"])
    assert st == 200, (st, p)
    assert p["leads"] == 4 and p["response_time"]["replies"] == 3, p
    assert abs(p["response_time"]["median_minutes"] - 6) < 1e-6, p
    assert abs(p["contact_rate"] - 0.75) < 1e-9 and abs(p["appointment_rate"] - 0.25) < 1e-9, p
    assert abs(p["conversion"] - 0.5) < 1e-9, p
    assert p["coaching"]["shown"] > 0 and p["coaching"]["outcomes"]["coached"]["won"] == 1, p["coaching"]
    # the open pipeline: leads 2 and 3, each with its lead score (the prior on a new tenant)
    open_scores = [tn.get_lead(leads[i]["id"])["score"] for i in (2, 3)]
    pl = p["pipeline"]
    assert pl["open_leads"] == 2 and pl["scored_by_prior"] == 2 and pl["scored_by_model"] == 0, pl
    assert abs(pl["expected_wins"] - sum(open_scores)) < 1e-6, (pl, open_scores)
    # the 30-day forecast: too little history for a model, so the documented prior:
    # base 0.05 x (0.5 + lead score), x1.5 for lead 3 (answered within the hour)
    fc = p["forecast_30d"]
    assert fc["kind"] == "prior" and fc["horizon_days"] == 30 and fc["open_leads"] == 2, fc
    assert fc["prior_base_rate"] == 0.05 and fc["model_version"] is None, fc
    want = 0.05 * (0.5 + open_scores[0]) + 0.05 * 1.5 * (0.5 + open_scores[1])
    assert abs(fc["expected_conversions"] - want) < 2e-3, (fc, want)
    assert {d["feature"] for d in fc["drivers"]} >= {"first_response_min", "lead_score"}, fc
    st, p2 = tn.api("GET", "/v1/agents/%d/performance" % other["id"])
    assert st == 200 and p2["leads"] == 0 and p2["conversion"] is None and p2["response_time"]["median_minutes"] is None
    st, j = tn.api("GET", "/v1/agents/999999/performance")
    assert st == 404, (st, j)


def test_coach_playbook_override_roles_and_validation(t):
    tn = Tenant(t, prefix="co")
    st, pb = tn.api("GET", "/v1/coaching/playbook")
    assert st == 200 and pb["source"] == "default" and "price_too_high" in pb["playbook"]["objections"], pb
    override = {"objections": {"price_too_high": {"text": "Show the three closest comps first.", "why": "Our team rule."}}}
    viewer = tn.role_client("viewer")
    st, j = viewer.api("PUT", "/v1/coaching/playbook", override)
    assert st == 403, (st, j)
    st, j = viewer.api("GET", "/v1/coaching/playbook")
    assert st == 200, (st, j)
    st, j = viewer.api("POST", "/get-coaching", {"messages": [{"direction": "inbound", "body": "hi"}]})
    assert st == 403, (st, j)
    st, j = tn.api("PUT", "/v1/coaching/playbook", override)
    assert st == 200 and j["source"] == "tenant" and j["version"] == 1, j
    assert j["playbook"]["objections"]["price_too_high"]["text"] == "Show the three closest comps first."
    assert j["playbook"]["objections"]["not_ready"]["text"], "defaults stay for other items"
    st, j = tn.api("PUT", "/v1/coaching/playbook", override)
    assert j["version"] == 2, j
    c = _coach(tn, {"messages": [{"direction": "inbound", "body": "It is too expensive"}]})
    s = [x for x in c["suggestions"] if x["item"] == "price_too_high"][0]
    assert s["text"] == "Show the three closest comps first." and "Our team rule." in s["reason"], s
    # another tenant still sees the default
    other = Tenant(t, prefix="co")
    c = _coach(other, {"messages": [{"direction": "inbound", "body": "It is too expensive"}]})
    s = [x for x in c["suggestions"] if x["item"] == "price_too_high"][0]
    assert s["text"] != "Show the three closest comps first.", s
    for bad in ([], {"objections": {"made_up": {"text": "a", "why": "b"}}}, {"sections": {}},
                {"questions": {"budget": {"text": "x" * 1001, "why": "b"}}}, {"questions": {"budget": "ask"}}):
        st, j = tn.api("PUT", "/v1/coaching/playbook", bad)
        assert st == 422 and j["error"]["code"] == "validation_failed", (bad, st, j)
    st, pb = tn.api("GET", "/v1/coaching/playbook")
    assert pb["version"] == 2 and pb["override"] == override, pb


def test_coach_bad_input(t):
    tn = Tenant(t, prefix="co")
    cases = [
        ({}, 422), ({"messages": []}, 422), ({"messages": "hi"}, 422), ({"lead_id": "7"}, 422), ({"lead_id": -1}, 422),
        ({"messages": [{"direction": "sideways", "body": "x"}]}, 422),
        ({"messages": [{"direction": "inbound"}]}, 422),
        ({"messages": [{"direction": "inbound", "body": 5}]}, 422),
        ({"messages": [{"direction": "inbound", "body": "x", "at": "yesterday"}]}, 422),
        ({"messages": [{"direction": "inbound", "body": "x"}], "timezone": "Mars/Base"}, 422),
        ({"messages": [{"direction": "inbound", "body": "x" * 8193}]}, 413),
        ({"messages": [{"direction": "inbound", "body": "x"}] * 501}, 413),
        ([1, 2], 422),
    ]
    for body, want in cases:
        st, j = tn.api("POST", "/get-coaching", body)
        assert st == want and j["error"]["code"] and j["error"]["message"], (str(body)[:80], st, j)
    # exactly at the limits is fine
    j = _coach(tn, {"messages": [{"direction": "inbound", "body": "y" * 8192}]})
    assert j["analysis"]["messages"] == 1
    recorded = len(j["suggestions"])
    j = _coach(tn, {"messages": [{"direction": "inbound", "body": "ok"}] * 500})
    assert j["analysis"]["messages"] == 500
    recorded += len(j["suggestions"])
    # bigger than the server's body limit, empty, not JSON, invalid UTF-8
    st, j = tn.api("POST", "/get-coaching", b'{"messages": [' + b'{"direction":"inbound","body":"' + b"z" * 8000 +
                   b'"},' * 0 + b'"}' + b"]}" + b" " * (2 << 20))
    assert st == 413, (st, j)
    st, j = tn.api("POST", "/get-coaching", b"", {"Content-Type": "application/json"})
    assert st == 400 and j["error"]["code"] == "invalid_json", (st, j)
    st, j = tn.api("POST", "/get-coaching", b'{"messages": [{"direction": "inbound", "body": "caf\xe9 \xff"}]}',
                   {"Content-Type": "application/json"})
    assert st == 400 and j["error"]["code"] == "invalid_json", (st, j)
    st, j = tn.api("POST", "/get-coaching", b"messages=1", {"Content-Type": "text/plain"})
    assert st == 415, (st, j)
    # nothing was recorded by the refused requests: only the two good ones
    st, s = tn.api("GET", "/coaching-stats")
    assert st == 200 and s["shown"] == recorded > 0, (s, recorded)
    # unknown lead
    st, j = tn.api("POST", "/v1/leads/999999/coaching")
    assert st == 404, (st, j)
    st, j = tn.api("POST", "/get-coaching", {"lead_id": 999999})
    assert st == 404, (st, j)


def test_coach_tenant_isolation(t):
    a = Tenant(t, prefix="co")
    b = Tenant(t, prefix="co")
    lead = a.create_lead(first_name="Private", email="private@example.com")
    a.ok("POST", "/v1/leads/%d/activities" % lead["id"], {"channel": "sms", "direction": "inbound",
                                                          "body": "Our budget is $900k"})
    mine = a.ok("POST", "/v1/leads/%d/coaching" % lead["id"], {}, want=200)
    st, j = b.api("POST", "/v1/leads/%d/coaching" % lead["id"])
    assert st == 404, (st, j)
    st, j = b.api("POST", "/get-coaching", {"lead_id": lead["id"]})
    assert st == 404, (st, j)
    st, j = b.api("POST", "/v1/coaching/feedback", {"suggestion_id": mine["suggestions"][0]["id"], "outcome": "accepted"})
    assert st == 404, (st, j)
    st, s = b.api("GET", "/coaching-stats")
    assert st == 200 and s["shown"] == 0, s
    st, s = a.api("GET", "/coaching-stats")
    assert s["shown"] == len(mine["suggestions"]) and s["accepted"] == 0, s
    agent = a.create_agent("A's agent")
    st, j = b.api("GET", "/v1/agents/%d/performance" % agent["id"])
    assert st == 404, (st, j)


def test_coach_long_stored_bodies_and_openapi(t):
    tn = Tenant(t, prefix="co")
    lead = tn.create_lead(first_name="Long")
    # a 20,000-byte stored e-mail (the activity limit): analysed up to 8 KB,
    # on a character boundary, so a cue before the cut counts and one after does not
    # (the 8 KB cut falls inside a 2-byte "é")
    body = " we are not ready yet. " + "é" * 4090 + " my wife says it is too expensive " + "y" * 11700
    assert len(body.encode()) <= 20000
    tn.ok("POST", "/v1/leads/%d/activities" % lead["id"], {"channel": "email", "direction": "inbound", "body": body})
    j = tn.ok("POST", "/v1/leads/%d/coaching" % lead["id"], {}, want=200)
    obj = {o["objection"] for o in j["analysis"]["objections"]}
    assert obj == {"not_ready"}, obj
    assert not j["analysis"]["qualification"]["decision_makers"]["known"]
    st, doc = tn.api("GET", "/openapi.json")
    assert st == 200, st
    for path in ("/get-coaching", "/v1/leads/{id}/coaching", "/v1/coaching/playbook", "/v1/coaching/feedback",
                 "/coaching-stats", "/v1/coaching-stats", "/v1/agents/{id}/performance"):
        assert path in doc["paths"], path


def test_coach_inbound_message_coaches_the_agent_at_once(t):
    tn = Tenant(t, prefix="cz")
    agent = tn.create_agent("Casey Coach")
    lead = tn.create_lead(first_name="Riley", agent_id=agent["id"])
    tn.ok("POST", "/v1/leads/%d/activities" % lead["id"],
          {"channel": "sms", "direction": "inbound", "body": "The price is too high for us, we are just looking"})
    ev = [e["payload"] for e in tn.events("coaching.updated") if e["payload"]["lead_id"] == lead["id"]]
    assert len(ev) == 1 and ev[0]["agent_id"] == agent["id"], ev
    assert ev[0]["suggestions"] and all("type" in s for s in ev[0]["suggestions"]), ev
    # an outbound message is not news for the coach
    tn.ok("POST", "/v1/leads/%d/activities" % lead["id"], {"channel": "sms", "direction": "outbound", "body": "ok"})
    assert len([e for e in tn.events("coaching.updated") if e["payload"]["lead_id"] == lead["id"]]) == 1
