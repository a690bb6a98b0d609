"""Models move between ehub and Python XGBoost both ways: a booster trained
in Python is imported with `ehub model import` and served with the same
scores; a model trained by `ehub train` loads in Python and predicts what
`ehub predict` writes."""
import csv
import json
import math
import os
import re
import subprocess
import tempfile
import time

import numpy as np
import xgboost as xgb


def _data(rel):
    for base in (os.environ.get("EHUB_SHARED_DATA"), "../shared/data", "/work/shared/data"):
        if base and os.path.exists(os.path.join(base, rel)):
            return os.path.join(base, rel)
    raise AssertionError("shared data set %s not found" % rel)


def _num(v):
    v = v.strip()
    try:
        return float(v)
    except ValueError:
        return math.nan


def _admin_key(srv, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        for line in list(srv.lines):
            m = re.search(r"ehk_[0-9a-f]{40}", line)
            if m:
                return m.group(0)
        time.sleep(0.05)
    raise AssertionError("no demo admin key in the log")


def test_python_model_imported_and_served(t):
    path = _data("churn/wa_churn.csv")
    cols = ["tenure", "monthly_charges", "total_charges", "senior_citizen", "partner", "dependents"]
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    X = np.array([[_num(r[c]) for c in cols] for r in rows], dtype=np.float32)
    y = np.array([1.0 if r["churn"] == "Yes" else 0.0 for r in rows])
    bst = xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.1, "nthread": 1},
                    xgb.DMatrix(X, label=y, missing=math.nan), num_boost_round=40)
    tmp = tempfile.mkdtemp(prefix="ehub-interop-")
    bst.save_model(os.path.join(tmp, "model.json"))
    with open(os.path.join(tmp, "schema.json"), "w") as f:
        json.dump({"features": [{"name": c, "type": "numeric"} for c in cols]}, f)

    srv = t.new_server(extra=["--demo"], start=False, name="interop")
    data_dir = os.path.join(srv.tmp, "data")
    out = subprocess.run([t.binary, "model", "import", "churn_py", os.path.join(tmp, "model.json"),
                          os.path.join(tmp, "schema.json"), "--data-dir", data_dir],
                         capture_output=True, text=True, timeout=60 * t.slow)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["model"] == "churn_py" and rep["version"] == 1 and rep["trees"] == 40, rep
    srv.start()
    key = _admin_key(srv)
    sample = list(range(0, len(rows), 7))[:800]
    body = {"model": "churn_py",
            "rows": [{c: (None if math.isnan(float(X[i][j])) else float(X[i][j])) for j, c in enumerate(cols)}
                     for i in sample]}
    st, _, data = srv.request("POST", "/batch-predict", body, {"Authorization": "Bearer " + key})
    assert st == 200, data
    ours = json.loads(data)["scores"]
    theirs = bst.predict(xgb.DMatrix(X[sample], missing=math.nan))
    worst = max(abs(a - b) for a, b in zip(ours, theirs))
    assert worst < 1e-6, worst
    # the imported model is listed like any other
    st, _, data = srv.request("GET", "/models", None, {"Authorization": "Bearer " + key})
    assert any(m["name"] == "churn_py" and m["trained_by"] == "import" for m in json.loads(data)["models"])
    # a schema that does not fit the model is refused, and nothing is written
    with open(os.path.join(tmp, "bad.json"), "w") as f:
        json.dump({"features": [{"name": "a", "type": "numeric"}]}, f)
    out = subprocess.run([t.binary, "model", "import", "other", os.path.join(tmp, "model.json"),
                          os.path.join(tmp, "bad.json"), "--data-dir", data_dir],
                         capture_output=True, text=True, timeout=60 * t.slow)
    assert out.returncode == 1 and "features" in out.stderr, out.stderr
    assert not os.path.exists(os.path.join(data_dir, "models", "other", "v1"))


def _encode(schema, row):
    """schema.json's encoding, written again here from its description."""
    x = []
    for f in schema["features"]:
        v = row.get(f["name"], "").strip()
        missing = v.lower() in ("", "na", "n/a", "nan", "null", "none", "?", "#n/a", "-")
        if f["type"] == "numeric":
            x.append(math.nan if missing else _num(v.replace("$", "").replace(",", "")))
        else:
            cats = f["categories"]
            x.extend([math.nan] * len(cats) if missing else [1.0 if v == c else 0.0 for c in cats])
    return x


def test_ehub_model_loads_in_python(t):
    path = _data("property/Sacramento.csv")
    tmp = tempfile.mkdtemp(prefix="ehub-interop-")
    out = subprocess.run([t.binary, "train", "--data", path, "--label", "price", "--regression", "--log-target",
                          "--model", "homes", "--out", tmp, "--json"],
                         capture_output=True, text=True, timeout=120 * t.slow)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout.strip().splitlines()[-1])["dir"]
    pred = subprocess.run([t.binary, "predict", "--model", d, "--data", path], capture_output=True, text=True,
                          timeout=60 * t.slow)
    assert pred.returncode == 0, pred.stderr
    ours = list(csv.DictReader(pred.stdout.splitlines()))
    with open(os.path.join(d, "schema.json")) as f:
        schema = json.load(f)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(ours) == len(rows)
    X = np.array([_encode(schema, r) for r in rows], dtype=np.float32)
    assert X.shape[1] == len(schema["columns"])
    bst = xgb.Booster(model_file=os.path.join(d, "model.json"))
    margins = bst.predict(xgb.DMatrix(X, missing=math.nan), output_margin=True)
    worst = max(abs(float(o["margin"]) - float(m)) for o, m in zip(ours, margins))
    assert worst < 1e-4, worst  # log prices ~12: float32 sums in XGBoost
    # score is exp(margin) for a log-target model, in dollars
    assert abs(float(ours[0]["score"]) - math.exp(float(ours[0]["margin"]))) < 1e-3 * float(ours[0]["score"])
