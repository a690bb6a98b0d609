"""The built-in lead_scoring model end to end: the points prior on a new
tenant, re-scoring on every lead write with history and lead.scored /
lead.hot events, the minimum of outcomes, training a tenant's model over
HTTP and with `ehub train --tenant --builtin lead_scoring`, and the model
taking over from the prior.

Every test makes its own tenant. Standard library only."""
import json
import math
import random
import time

from tenants import Tenant, cli_json, run_cli


def _score(tn, lead_id):
    st, j = tn.api("GET", "/v1/leads/%d/score" % lead_id)
    assert st == 200, (st, j)
    return j


def _act(tn, lead_id, channel, direction="inbound", **kw):
    tn.ok("POST", "/v1/leads/%d/activities" % lead_id, dict(kw, channel=channel, direction=direction, body="x"))


def test_scoring_prior_scores_new_leads_with_reasons(t):
    tn = Tenant(t, prefix="sc")
    bare = tn.create_lead(first_name="Bare")
    keen = tn.create_lead(first_name="Keen", email="keen@example.com", phone="+14155550101", preapproved=True,
                          timeline="ASAP", budget_max=500000, beds=3, baths=2, property_type="house",
                          areas=["94110"])
    assert 0 < bare["score"] < keen["score"] < 1, (bare["score"], keen["score"])
    s = _score(tn, keen["id"])
    assert s["kind"] == "prior" and s["model_version"] is None, s
    assert abs(s["score"] - keen["score"]) < 1e-9 and s["threshold"] == 0.7
    feats = {r["feature"]: r for r in s["reasons"]}
    assert feats["preapproved"]["effect"] == 20 and feats["timeline"]["value"] == "0-3m", s["reasons"]
    # the prior's points add up to the score: 10 base + every reason
    pts = 10 + sum(r["effect"] for r in s["reasons"])
    assert abs(min(99, max(1, pts)) / 100 - s["score"]) < 1e-9, (pts, s)
    assert len(s["history"]) == 1 and s["history"][0]["kind"] == "prior"
    ev = [e for e in tn.events("lead.scored") if e["payload"]["lead_id"] == keen["id"]]
    assert len(ev) == 1 and abs(ev[0]["payload"]["score"] - keen["score"]) < 1e-9, ev
    assert ev[0]["payload"]["previous"] is None and ev[0]["payload"]["kind"] == "prior"


def test_scoring_rescored_on_activity_and_update_with_history(t):
    tn = Tenant(t, prefix="sc")
    lead = tn.create_lead(first_name="Moving", email="m@example.com")
    first = lead["score"]
    _act(tn, lead["id"], "sms")
    s1 = _score(tn, lead["id"])
    assert s1["score"] > first, (first, s1)
    _act(tn, lead["id"], "appointment", "none")
    s2 = _score(tn, lead["id"])
    assert s2["score"] > s1["score"], (s1, s2)
    # PATCH answers with the new score (and the version is the lead's own:
    # a score is derived, it does not bump it)
    st, h, patched = tn.call("PATCH", "/v1/leads/%d" % lead["id"], {"preapproved": True})
    assert st == 200 and patched["score"] > s2["score"], (st, patched)
    assert patched["version"] == lead["version"] + 1, (lead["version"], patched["version"])
    s3 = _score(tn, lead["id"])
    assert [round(x["score"], 4) for x in s3["history"]] == [round(v, 4) for v in
                                                            (s3["score"], s2["score"], s1["score"], first)]
    # a write that changes nothing the score reads adds no history
    tn.ok("PATCH", "/v1/leads/%d" % lead["id"], {"last_name": "Still"})
    assert len(_score(tn, lead["id"])["history"]) == 4
    scored = [e["payload"]["score"] for e in tn.events("lead.scored") if e["payload"]["lead_id"] == lead["id"]]
    assert len(scored) == 4, scored
    # the list filter sees the stored score
    page = tn.list_page(score_min=s3["score"] - 0.0001)
    assert lead["id"] in [x["id"] for x in page["items"]], page


def test_scoring_hot_event_when_crossing_threshold_once(t):
    tn = Tenant(t, prefix="sc", settings={"hot_threshold": 0.5})
    st, j = tn.api("GET", "/v1/settings")
    assert st == 200 and j["hot_threshold"] == 0.5, j
    st, j = tn.api("PATCH", "/v1/settings", {"hot_threshold": 1.5})
    assert st == 422 and "hot_threshold" in j["error"]["fields"], j
    lead = tn.create_lead(first_name="Warm", phone="+14155550177", preapproved=True)
    assert lead["score"] < 0.5, lead
    assert not [e for e in tn.events("lead.hot")]
    _act(tn, lead["id"], "appointment", "none")
    s = _score(tn, lead["id"])
    assert s["score"] >= 0.5 and s["hot"] is True, s
    hot = tn.events("lead.hot")
    assert len(hot) == 1 and hot[0]["payload"]["lead_id"] == lead["id"], hot
    assert hot[0]["payload"]["threshold"] == 0.5 and hot[0]["payload"]["reasons"], hot
    _act(tn, lead["id"], "sms")  # higher still: already hot, no second event
    assert _score(tn, lead["id"])["score"] > s["score"]
    assert len(tn.events("lead.hot")) == 1


LEAD_FEATURES = {"source": "zillow", "timeline": "ASAP", "property_type": None, "preapproved": True,
                 "budget_max": 400000, "budget_vs_area": None, "preferences": 2, "has_email": 1, "has_phone": 1,
                 "consents": 0, "inbound_messages": 1, "outbound_messages": 0, "calls": 0, "appointments": 0,
                 "first_response_min": None, "days_since_inbound": 1, "days_since_activity": 1, "age_days": 2,
                 "tags": 0}


def test_scoring_predict_route_scores_raw_features_with_the_prior(t):
    tn = Tenant(t, prefix="sc")
    st, j = tn.api("POST", "/predict", {"model": "lead_scoring", "features": LEAD_FEATURES, "explain": True})
    assert st == 200 and j["kind"] == "prior" and j["version"] is None, (st, j)
    # 10 + 20 pre-approved + 15 timeline + 5 one inbound + 4 preferences + 3 + 2 = 59 points
    assert abs(j["score"] - 0.59) < 1e-9, j
    e = j["explanation"]
    assert abs(e["base"] + sum(e["contributions"].values()) - j["score"]) < 1e-9, e
    st, j = tn.api("POST", "/v1/predict", {"model": "lead_scoring", "features": LEAD_FEATURES})
    assert st == 200 and "explanation" not in j, j
    for bad in (dict(LEAD_FEATURES, calls=-2), {k: v for k, v in LEAD_FEATURES.items() if k != "tags"},
                dict(LEAD_FEATURES, typo=1), dict(LEAD_FEATURES, source=5)):
        st, j = tn.api("POST", "/predict", {"model": "lead_scoring", "features": bad})
        assert st == 422 and j["error"]["code"] == "invalid_features", (bad, st, j)
    st, j = tn.api("POST", "/predict", {"model": "property_value", "features": {
        "type": "Residential", "zip": "95823", "city": "Sacramento", "beds": 3, "baths": 2, "sqft": 1400,
        "lat": 38.5, "lng": -121.4}})
    assert st == 409 and j["error"]["code"] == "no_model", (st, j)
    st, j = tn.api("POST", "/predict", {"model": "churn", "features": {"calls": 1}})
    assert st == 422, (st, j)


def test_scoring_training_needs_enough_outcomes(t):
    tn = Tenant(t, prefix="sc")
    for i in range(5):
        lead = tn.create_lead(first_name="L%d" % i)
        tn.ok("PATCH", "/v1/leads/%d" % lead["id"], {"status": "won" if i % 2 else "lost"})
    st, j = tn.api("POST", "/v1/models/lead_scoring/train")
    assert st == 409 and j["error"]["code"] == "not_enough_outcomes", (st, j)
    d = j["error"]["details"]
    assert d["labelled"] == 5 and d["won"] == 2 and d["lost"] == 3 and d["min_outcomes"] == 100, d
    # only analysts and admins train
    st, j = tn.role_client("viewer").api("POST", "/v1/models/lead_scoring/train")
    assert st == 403, (st, j)
    st, j = tn.api("POST", "/v1/models/lead_scoring/train", {"seed": "x"})
    assert st == 422, (st, j)
    r = run_cli(t, tn.srv, "train", "--tenant", tn.slug, "--builtin", "lead_scoring")
    assert r.returncode == 1 and "training needs 100 outcomes" in r.stderr, (r.returncode, r.stderr)
    r = run_cli(t, tn.srv, "train", "--tenant", tn.slug, "--builtin", "churn_magic")
    assert r.returncode == 2 and "unknown built-in" in r.stderr, r.stderr


def _history(tn, rng, n):
    """n leads with a known pattern: pre-approval, inbound messages and
    appointments make a win likely; the outcome is drawn from it."""
    won = lost = 0
    for i in range(n):
        pre = rng.random() < 0.5
        inbound = rng.randrange(0, 4)
        appt = rng.random() < 0.3
        lead = tn.create_lead(first_name="H%d" % i, preapproved=pre,
                              source=rng.choice(["zillow", "open house", "facebook"]))
        for _ in range(inbound):
            _act(tn, lead["id"], "sms")
        if appt:
            _act(tn, lead["id"], "appointment", "none")
        # strong enough that the held-out AUC (55 rows) stays well above the
        # test's bar: the best possible is ~0.89, the sampling spread ~0.05
        z = -3.3 + 3.0 * pre + 1.35 * inbound + 2.4 * appt
        w = rng.random() < 1 / (1 + math.exp(-z))
        won += w
        lost += not w
        tn.ok("PATCH", "/v1/leads/%d" % lead["id"], {"status": "won" if w else "lost"})
    return won, lost


def test_scoring_trained_model_takes_over_from_prior(t):
    tn = Tenant(t, prefix="sc")
    rng = random.Random(7)
    won, lost = _history(tn, rng, 220)
    open_strong = tn.create_lead(first_name="Strong", preapproved=True)
    for _ in range(3):
        _act(tn, open_strong["id"], "sms")
    _act(tn, open_strong["id"], "appointment", "none")
    open_weak = tn.create_lead(first_name="Weak", preapproved=False)
    assert _score(tn, open_weak["id"])["kind"] == "prior"

    st, rep = tn.api("POST", "/v1/models/lead_scoring/train", {"seed": 3})
    assert st == 201, (st, rep)
    assert rep["model"] == "lead_scoring" and rep["version"] == 1, rep
    assert rep["won"] == won and rep["lost"] == lost and rep["rows"] == won + lost, (rep, won, lost)
    assert rep["rescored"] == 2, rep  # the two open leads
    # the pattern is strong: a model that learned nothing would sit at 0.5
    assert rep["metrics"]["auc"] >= 0.75, rep["metrics"]

    strong, weak = _score(tn, open_strong["id"]), _score(tn, open_weak["id"])
    for s in (strong, weak):
        assert s["kind"] == "model" and s["model_version"] == 1, s
        assert s["history"][0]["kind"] == "model" and s["history"][1]["kind"] == "prior", s["history"]
    # (by how much depends on timing features such as age_days, which vary
    # with how fast the history was written: a sanitizer build is slower)
    assert strong["score"] > weak["score"] + 0.1, (strong["score"], weak["score"])
    # reasons are SHAP contributions (log-odds), biggest first, and name the
    # features that drive the pattern
    top = [r["feature"] for r in strong["reasons"][:3]]
    assert "preapproved" in top or "appointments" in top or "inbound_messages" in top, strong["reasons"]
    eff = [abs(r["effect"]) for r in strong["reasons"]]
    assert eff == sorted(eff, reverse=True), strong["reasons"]

    # /predict with the built-in's name scores raw features with this
    # tenant's model; SHAP adds up to the margin
    raw = dict(LEAD_FEATURES, preapproved=1, inbound_messages=3, appointments=1)
    st, j = tn.api("POST", "/predict", {"model": "lead_scoring", "features": raw, "explain": True})
    assert st == 200 and j["kind"] == "model" and j["version"] == 1, (st, j)
    margin = j["explanation"]["base"] + sum(j["explanation"]["contributions"].values())
    assert abs(1 / (1 + math.exp(-margin)) - j["score"]) < 1e-3, (margin, j)

    # new leads are scored by the model from then on
    fresh = tn.create_lead(first_name="Fresh", preapproved=True)
    assert _score(tn, fresh["id"])["kind"] == "model"
    ev = [e["payload"] for e in tn.events("lead.scored") if e["payload"]["lead_id"] == fresh["id"]]
    assert ev and ev[-1]["kind"] == "model" and ev[-1]["model_version"] == 1, ev

    # the CLI trains the next version from the same history (same seed,
    # same data: the same metrics)
    rep2 = cli_json(t, tn.srv, "train", "--tenant", tn.slug, "--builtin", "lead_scoring", "--seed", "3", "--json")
    assert rep2["version"] == 2 and rep2["rows"] == rep["rows"], rep2
    assert abs(rep2["metrics"]["auc"] - rep["metrics"]["auc"]) < 1e-9, (rep2["metrics"], rep["metrics"])

    # the running server serves the CLI's version with nothing else
    # happening: its bus reads the log's heads once a second and so meets
    # the CLI's model.activated
    deadline = time.time() + 5 * t.slow
    while True:
        st, j = tn.api("POST", "/predict", {"model": "lead_scoring", "features": raw})
        assert st == 200, (st, j)
        if j["version"] == 2:
            break
        assert time.time() < deadline, "v2 never served"
        time.sleep(0.1)
    lead = tn.create_lead(first_name="Later")
    assert _score(tn, lead["id"])["model_version"] == 2
    st, j = tn.api("GET", "/v1/builtin-models")
    assert st == 200, j
    ls = {m["name"]: m for m in j["models"]}
    assert ls["lead_scoring"]["serving"] == "model" and ls["lead_scoring"]["active_version"] == 2, ls
    assert [v["version"] for v in ls["lead_scoring"]["versions"]] == [2, 1], ls["lead_scoring"]
    assert ls["lead_scoring"]["versions"][1]["trained_by"].startswith(tn.slug), ls["lead_scoring"]["versions"]
    # each version's held-out calibration bins, the same as its training report's
    cal = ls["lead_scoring"]["versions"][1]["metrics"]["calibration"]
    assert len(cal) == 10, cal
    for a, b in zip(cal, rep["metrics"]["calibration"]):  # metrics.json keeps 10 digits
        assert a["count"] == b["count"] and a["lo"] == b["lo"], (a, b)
        for k in ("mean_pred", "observed"):
            assert (a[k] is None) == (b[k] is None) and (a[k] is None or abs(a[k] - b[k]) < 1e-8), (a, b)
    assert sum(b["count"] for b in cal) == rep["test_rows"], (cal, rep["test_rows"])
    ece = sum(b["count"] * abs(b["observed"] - b["mean_pred"]) for b in cal if b["count"]) / rep["test_rows"]
    assert abs(ece - rep["metrics"]["ece"]) < 1e-6, (ece, rep["metrics"]["ece"])
    assert ls["churn"]["serving"] == "prior" and ls["property_value"]["serving"] == "none", ls

    # rollback to v1, over HTTP
    st, j = tn.role_client("viewer").api("POST", "/v1/builtin-models/lead_scoring/activate", {"version": 1})
    assert st == 403, (st, j)
    for body, want in (({"version": 9}, 404), ({"version": "1"}, 422), ({}, 422)):
        st, j = tn.api("POST", "/v1/builtin-models/lead_scoring/activate", body)
        assert st == want, (body, st, j)
    st, j = tn.api("POST", "/v1/builtin-models/nope/activate", {"version": 1})
    assert st == 404, (st, j)
    st, j = tn.api("POST", "/v1/builtin-models/lead_scoring/activate", {"version": 1})
    assert st == 200 and j["active_version"] == 1, (st, j)
    lead = tn.create_lead(first_name="Rolled back")
    assert _score(tn, lead["id"])["model_version"] == 1

    # the HTTP training and the activation each wrote their audit entry in
    # the transaction that stored the version (the CLI's training is no
    # request: no entry); refused ones wrote none; the chain verifies
    items = tn.ok("GET", "/v1/audit?limit=500")["items"]
    got = [(x["action"], x["target"], x["detail"].get("version"), x["detail"]["status"]) for x in reversed(items)
           if "models" in x["action"]]
    assert got == [("POST /v1/models/{name}/train", "model:lead_scoring", 1, 201),
                   ("POST /v1/builtin-models/{name}/activate", "builtin-model:lead_scoring", 1, 200)], got
    r = run_cli(t, tn.srv, "audit", "verify", "--tenant", tn.slug)
    assert r.returncode == 0 and json.loads(r.stdout.strip().splitlines()[-1])["ok"], (r.stdout, r.stderr)


# ---------------------------------------------------------------- churn

DAY = 86400000


def _ago(days):
    return int(time.time() * 1000) - int(days * DAY)


def test_churn_prior_bands_drivers_and_interventions(t):
    tn = Tenant(t, prefix="ch")
    quiet = tn.create_lead(first_name="Quiet", phone="+14155550123")
    _act(tn, quiet["id"], "sms", "inbound", occurred_at=_ago(10))
    _act(tn, quiet["id"], "sms", "outbound", occurred_at=_ago(8))
    st, j = tn.api("POST", "/v1/predict-churn", {"lead_id": quiet["id"]})
    assert st == 200, (st, j)
    # 0.10 + 0.25 (silent 10 days) + 0.10 (never called) + 0.10 (awaiting a
    # reply) + 0.05 (agent quiet 8 days)
    assert j["kind"] == "prior" and abs(j["probability"] - 0.60) < 1e-9 and j["risk"] == "high", j
    assert j["lead_id"] == quiet["id"] and j["horizon_days"] == 14
    drivers = [d["feature"] for d in j["drivers"]]
    assert drivers[0] == "days_since_inbound" and j["drivers"][0]["value"] == 10, j["drivers"]
    assert any("call today" in s for s in j["interventions"]), j["interventions"]
    assert len(j["interventions"]) == 3, j

    warm = tn.create_lead(first_name="Warm", preapproved=True)
    _act(tn, warm["id"], "sms", "outbound", occurred_at=_ago(1.5))
    _act(tn, warm["id"], "sms", "inbound", occurred_at=_ago(1))
    _act(tn, warm["id"], "call", "outbound", occurred_at=_ago(0.5))
    _act(tn, warm["id"], "appointment", "none")
    st, w = tn.api("POST", "/predict-churn", {"lead_id": warm["id"]})  # the old route
    assert st == 200 and w["risk"] == "low" and w["probability"] < 0.1, w

    # the same from raw features
    feats = {"timeline": None, "preapproved": False, "inbound_messages": 1, "outbound_messages": 1, "calls": 0,
             "appointments": 0, "first_response_min": None, "days_since_inbound": 10, "days_since_outbound": 8,
             "days_since_call": None, "awaiting_reply": True, "age_days": 10}
    st, r = tn.api("POST", "/v1/predict-churn", {"features": feats})
    assert st == 200 and abs(r["probability"] - 0.60) < 1e-9 and "lead_id" not in r, r
    for bad, why in [({k: v for k, v in feats.items() if k != "calls"}, "calls"),
                     (dict(feats, budget=3), "budget"), (dict(feats, calls=-1), "calls"),
                     (dict(feats, calls="two"), "calls")]:
        st, e = tn.api("POST", "/v1/predict-churn", {"features": bad})
        assert st == 422 and why in e["error"]["message"], (bad, st, e)
    for body in ({}, {"lead_id": quiet["id"], "features": feats}, {"lead_id": "x"}, {"lead": 1}):
        st, e = tn.api("POST", "/v1/predict-churn", body)
        assert st == 422, (body, st, e)
    st, e = tn.api("POST", "/v1/predict-churn", {"lead_id": 999999999})
    assert st == 404, (st, e)
    # another tenant's lead is not found
    other = Tenant(t, prefix="ch")
    st, e = other.api("POST", "/v1/predict-churn", {"lead_id": quiet["id"]})
    assert st == 404, (st, e)


def test_churn_model_trained_on_tenant_history(t):
    tn = Tenant(t, prefix="ch")
    rng = random.Random(11)
    st, j = tn.api("POST", "/v1/models/churn/train")
    assert st == 409 and j["error"]["details"]["labelled"] == 0, (st, j)
    st, j = tn.api("POST", "/v1/models/nope/train")
    assert st == 404, (st, j)
    cold = 0
    for i in range(170):
        lead = tn.create_lead(first_name="C%d" % i)
        # engaged 20 days ago; what the agent did before the snapshot
        # (14 days ago) decides whether the lead replies again
        _act(tn, lead["id"], "sms", "inbound", occurred_at=_ago(20))
        called = rng.random() < 0.5
        appt = rng.random() < 0.3
        if called:
            _act(tn, lead["id"], "call", "outbound", occurred_at=_ago(16))
        if appt:
            _act(tn, lead["id"], "appointment", "none", occurred_at=_ago(15))
        p_reply = 0.15 + 0.45 * called + 0.35 * appt
        if rng.random() < p_reply:
            _act(tn, lead["id"], "sms", "inbound", occurred_at=_ago(rng.uniform(1, 13)))
        else:
            cold += 1
    st, rep = tn.api("POST", "/v1/models/churn/train", {"seed": 5})
    assert st == 201, (st, rep)
    assert rep["model"] == "churn" and rep["cold"] == cold and rep["replied"] == 170 - cold, (rep, cold)
    assert rep["metrics"]["auc"] >= 0.7, rep["metrics"]
    assert "rescored" not in rep
    lead = tn.create_lead(first_name="Now")
    _act(tn, lead["id"], "sms", "inbound", occurred_at=_ago(3))
    st, j = tn.api("POST", "/v1/predict-churn", {"lead_id": lead["id"]})
    assert st == 200 and j["kind"] == "model" and j["version"] == 1, j
    assert j["risk"] in ("low", "medium", "high") and 0 < j["probability"] < 1, j
    eff = [abs(d["effect"]) for d in j["drivers"]]
    assert eff == sorted(eff, reverse=True) and j["drivers"], j


# ---------------------------------------------------------------- matching and valuation

def _listing(tn, **kw):
    base = dict(address="%d Test St" % random.randrange(10 ** 6), city="Sacramento", state="CA", status="active")
    base.update(kw)
    return tn.ok("POST", "/v1/listings", base, want=201)


def test_matching_hard_filters_soft_score_and_reasons(t):
    tn = Tenant(t, prefix="mt")
    buyer = tn.create_lead(first_name="Buyer", budget_min=200000, budget_max=400000, beds=3, baths=2,
                           areas=["95823", "95828"])
    good = _listing(tn, zip="95823", price=355000, beds=3, baths=2, type="Residential", lat=38.47, lng=-121.43)
    roomy = _listing(tn, zip="95828", price=380000, beds=5, baths=3, type="Residential", lat=38.49, lng=-121.40)
    cheap = _listing(tn, zip="95823", price=210000, beds=3, baths=2, type="Residential", lat=38.48, lng=-121.44)
    excluded = [
        _listing(tn, zip="95823", price=450000, beds=3, baths=2),            # over budget
        _listing(tn, zip="95823", price=150000, beds=3, baths=2),            # under budget_min
        _listing(tn, zip="95823", price=300000, beds=2, baths=2),            # too few beds
        _listing(tn, zip="95823", price=300000, beds=3, baths=1),            # too few baths
        _listing(tn, zip="95814", price=300000, beds=3, baths=2),            # another area
        _listing(tn, zip="95823", price=300000, beds=3, baths=2, status="sold"),
    ]
    st, j = tn.api("GET", "/v1/leads/%d/matches" % buyer["id"])
    assert st == 200, (st, j)
    ids = [m["listing"]["id"] for m in j["matches"]]
    assert sorted(ids) == sorted([good["id"], roomy["id"], cheap["id"]]), (ids, j)
    assert not set(ids) & {x["id"] for x in excluded}
    scores = [m["score"] for m in j["matches"]]
    assert scores == sorted(scores, reverse=True) and ids[0] == good["id"], j["matches"]
    top = j["matches"][0]
    assert [r["factor"] for r in top["reasons"]] == ["price", "size", "place", "value"], top
    assert top["value"] is None and "no valuation model" in top["reasons"][3]["detail"]
    assert "90%" not in top["reasons"][0]["detail"] or top["reasons"][0]["fit"] > 0.9
    # the score is the weighted sum of the fits it reports
    f = [r["fit"] for r in top["reasons"]]
    assert abs(0.35 * f[0] + 0.25 * f[1] + 0.2 * f[2] + 0.2 * f[3] - top["score"]) < 0.002, top
    st, j = tn.api("GET", "/v1/leads/%d/matches?limit=1" % buyer["id"])
    assert st == 200 and len(j["matches"]) == 1 and j["candidates"] == 3, j
    # a radius around a point replaces the areas
    st, j = tn.api("GET", "/v1/leads/%d/matches?radius_km=2&lat=38.47&lng=-121.43" % buyer["id"])
    assert st == 200, j
    near = [m["listing"]["id"] for m in j["matches"]]
    assert good["id"] in near and roomy["id"] not in near, (near, j)
    assert "km from the point" in j["matches"][0]["reasons"][2]["detail"]
    for q in ("limit=0", "limit=51", "limit=x", "radius_km=5", "radius_km=-1&lat=1&lng=1", "lat=91&lng=0"):
        st, e = tn.api("GET", "/v1/leads/%d/matches?%s" % (buyer["id"], q))
        assert st == 400 and e["error"]["code"] == "invalid_query", (q, st, e)
    st, e = tn.api("GET", "/v1/leads/99999999/matches")
    assert st == 404, (st, e)


def test_matching_reverse_on_new_listing_and_price_change(t):
    tn = Tenant(t, prefix="mt")
    fits = tn.create_lead(first_name="Fits", budget_max=300000, beds=2, areas=["95838"])
    other_area = tn.create_lead(first_name="Elsewhere", budget_max=300000, areas=["95814"])
    vague = tn.create_lead(first_name="Vague")  # no budget, no area: not told about everything
    closed = tn.create_lead(first_name="Closed", budget_max=300000, areas=["95838"])
    tn.ok("PATCH", "/v1/leads/%d" % closed["id"], {"status": "lost"})
    home = _listing(tn, zip="95838", price=320000, beds=3, baths=2)
    assert not [e for e in tn.events("listing.matched")], "over budget: no match yet"
    tn.ok("PATCH", "/v1/listings/%d" % home["id"], {"price": 289000})
    ev = [e["payload"] for e in tn.events("listing.matched")]
    assert [(e["listing_id"], e["lead_id"], e["why"]) for e in ev] == [(home["id"], fits["id"], "price changed")], ev
    assert 0 < ev[0]["score"] <= 1 and len(ev[0]["reasons"]) == 4 and ev[0]["agent_id"] == fits["agent_id"]
    second = _listing(tn, zip="95838", price=250000, beds=2, baths=1)
    ev = [e["payload"] for e in tn.events("listing.matched") if e["payload"]["listing_id"] == second["id"]]
    assert [(e["lead_id"], e["why"]) for e in ev] == [(fits["id"], "new listing")], ev
    # a change that is not the price tells nobody again
    tn.ok("PATCH", "/v1/listings/%d" % second["id"], {"sqft": 1200})
    assert len([e for e in tn.events("listing.matched") if e["payload"]["listing_id"] == second["id"]]) == 1
    assert not {other_area["id"], vague["id"], closed["id"]} & {e["payload"]["lead_id"]
                                                             for e in tn.events("listing.matched")}


def test_property_value_trained_on_listings_and_used_in_matches(t):
    tn = Tenant(t, prefix="pv")
    rng = random.Random(5)
    st, e = tn.api("GET", "/v1/listings/1/valuation")
    assert st in (404, 409), (st, e)
    zips = {"95823": 1.0, "95828": 1.15, "95838": 0.85, "95835": 1.4}
    last = None
    for i in range(130):
        z = rng.choice(list(zips))
        sqft = rng.randrange(800, 3000)
        beds = max(1, min(6, round(sqft / 550)))
        price = round(zips[z] * (60000 + 110 * sqft) * rng.uniform(0.9, 1.1), -2)
        last = _listing(tn, zip=z, price=price, beds=beds, baths=max(1, beds - 1), sqft=sqft, type="Residential",
                        lat=38.5 + rng.uniform(-0.1, 0.1), lng=-121.4 + rng.uniform(-0.1, 0.1))
    st, e = tn.api("GET", "/v1/listings/%d/valuation" % last["id"])
    assert st == 409 and e["error"]["code"] == "no_model", (st, e)
    st, rep = tn.api("POST", "/v1/models/property_value/train")
    assert st == 201, (st, rep)
    assert rep["listings"] == 130 and rep["task"] == "regression" and rep["metrics"]["rmse"] < 0.2, rep
    st, v = tn.api("GET", "/v1/listings/%d/valuation" % last["id"])
    assert st == 200 and v["model_version"] == 1, (st, v)
    assert 0.7 < v["ratio"] < 1.4 and v["estimate"] > 0, v
    assert "sqft" in [r["feature"] for r in v["reasons"]], v["reasons"]
    buyer = tn.create_lead(first_name="B", budget_max=400000, areas=["95823"])
    st, j = tn.api("GET", "/v1/leads/%d/matches" % buyer["id"])
    assert st == 200 and j["matches"], j
    m = j["matches"][0]
    assert m["value"]["model_version"] == 1 and m["value"]["estimate"] > 0, m
    assert "estimated" in m["reasons"][3]["detail"], m["reasons"]


def test_demo_has_sacramento_listings_a_value_model_and_matches(t):
    srv = t.new_server(extra=["--demo"], store=None, name="demo")
    key = None
    for line in srv.lines:
        if "ehk_" in line:
            key = "ehk_" + line.split("ehk_")[1][:40]
            break
    assert key, srv.lines[-20:]
    from tenants import Client
    c = Client(srv, key)
    trained = [x for x in srv.log_json() if x.get("msg") == "demo property_value model trained"]
    assert trained and trained[0]["listings"] >= 900, trained
    # the reference pipeline reaches 0.28-0.37 on this data (DESIGN.md)
    assert trained[0]["test_rmse_log_price"] < 0.38, trained
    st, j = c.api("GET", "/v1/listings?limit=1")
    assert st == 200, j
    found = 0
    for lead_id in range(1, 11):
        st, j = c.api("GET", "/v1/leads/%d/matches?limit=3" % lead_id)
        assert st == 200, (st, j)
        found += bool(j["matches"])
        for m in j["matches"]:
            assert m["value"] and m["value"]["estimate"] > 0, m
    assert found >= 5, found
    srv.stop()
