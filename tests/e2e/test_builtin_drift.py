"""Drift of a tenant's built-in lead_scoring model end to end: a model
trained on the tenant's won/lost history, the same leads re-scored (their
population: every feature stable), then, after a re-activation starts the
counts again, new leads from one source with extreme budgets (those two
features drifted, pre-approval, drawn as before, stable); the PSI per
feature in GET /v1/builtin-models and the worst one per tenant and model in
/metrics.

Standard library only."""
import math
import random
import re

from tenants import Tenant

SOURCES = ["zillow", "open house", "facebook"]


def _lead_drift(tn):
    st, j = tn.api("GET", "/v1/builtin-models")
    assert st == 200, (st, j)
    return {m["name"]: m for m in j["models"]}["lead_scoring"]["drift"]


def _gauge(tn, tenant_id):
    body = tn.srv.request("GET", "/metrics")[2].decode()
    m = re.search(r'^ehub_ml_builtin_feature_psi_max\{tenant="%d",model="lead_scoring"\} (\S+)$' % tenant_id, body,
                  re.M)
    assert m, "no gauge for tenant %d" % tenant_id
    return float(m.group(1))


def test_builtin_drift_psi_per_feature_in_models_and_metrics(t):
    tn = Tenant(t, prefix="bd")
    tenant_id = tn.db("SELECT id FROM tenants WHERE id = {tenant}")[0]["id"]
    rng = random.Random(11)
    history = []
    for i in range(240):
        pre = rng.random() < 0.5
        inbound = rng.randrange(0, 3)
        lead = tn.create_lead(first_name="H%d" % i, preapproved=pre, source=rng.choice(SOURCES),
                              budget_max=rng.randrange(300, 800) * 1000)
        for _ in range(inbound):
            tn.ok("POST", "/v1/leads/%d/activities" % lead["id"], {"channel": "sms", "direction": "inbound",
                                                                  "body": "x"})
        z = -1.6 + 2.0 * pre + 0.9 * inbound
        won = rng.random() < 1 / (1 + math.exp(-z))
        tn.ok("PATCH", "/v1/leads/%d" % lead["id"], {"status": "won" if won else "lost"})
        history.append(lead["id"])

    # the listing loads nothing: before training there is no active version
    assert _lead_drift(tn) is None
    st, rep = tn.api("POST", "/v1/models/lead_scoring/train", {"seed": 4})
    assert st == 201 and rep["version"] == 1, (st, rep)
    d = _lead_drift(tn)
    assert d["rows"] == 0, d  # served here since training, nothing scored yet

    # the history's own leads, re-scored (a write that changes each): the
    # population the model was trained on
    for i, lead_id in enumerate(history):
        tn.ok("PATCH", "/v1/leads/%d" % lead_id, {"first_name": "Again%d" % i})
    d = _lead_drift(tn)
    assert d["rows"] >= len(history), d
    # (the clocks are not: age_days and days_since_* were read as of each
    # outcome, seconds ago, and are past every training value now)
    for f in ("source", "budget_max", "preapproved", "inbound_messages", "has_email", "appointments"):
        assert d["psi"][f] is not None and d["psi"][f] < 0.1, (f, d)
    print("# unshifted (%d rows): %s" % (d["rows"], {k: round(v, 4) for k, v in d["psi"].items() if v is not None}))

    # activating (here the same version again) starts the counts over
    tn.ok("POST", "/v1/builtin-models/lead_scoring/activate", {"version": 1})
    assert _lead_drift(tn)["rows"] == 0

    # new leads, all from one source, with budgets past any in the history;
    # pre-approval drawn as before
    for i in range(120):
        tn.create_lead(first_name="N%d" % i, preapproved=rng.random() < 0.5, source="facebook",
                       budget_max=rng.randrange(3000, 6000) * 1000)
    d = _lead_drift(tn)
    assert d["rows"] >= 120, d
    print("# shifted (%d rows): %s" % (d["rows"], {k: round(v, 4) for k, v in d["psi"].items() if v is not None}))
    assert d["psi"]["source"] > 0.25 and d["psi"]["budget_max"] > 0.25, d
    assert d["psi"]["preapproved"] < 0.1, d
    worst = max(v for v in d["psi"].values() if v is not None)
    assert abs(_gauge(tn, tenant_id) - worst) < 1e-6 * max(1, worst), (worst, d)
