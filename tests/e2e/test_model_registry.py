"""The tenants' model registry in the store: a built-in model trained
through one node is served by another within a second (same score for the
same features, its version in the answer), a rollback on either reaches
the other, activations flipping under load on one node while another
serves fail no request, and the model directories of an earlier release
are imported into the store once at start.

The cluster tests need a PostgreSQL --store and --redis (run with
scripts/services.sh); the import test runs on both backends. Standard
library only."""
import json
import os
import random
import subprocess
import threading
import time

import test_scoring as sc
from tenants import Tenant, cli_json, run_cli

ROWS = [dict(sc.LEAD_FEATURES, preapproved=p, inbound_messages=i, appointments=a)
        for p in (True, False) for i in (0, 1, 3) for a in (0, 1)]


def _cluster_ok(t):
    if not (t.redis and t.backend == "postgres"):
        print("     (cluster tests need --redis and a postgres --store; run with scripts/services.sh)")
        return False
    return True


def _predict(c, row):
    st, j = c.api("POST", "/predict", {"model": "lead_scoring", "features": row})
    assert st == 200, (st, j)
    return j


def _wait_version(c, version, row, slow):
    """Seconds until c serves version for row (polled every 10 ms)."""
    t0 = time.time()
    while True:
        j = _predict(c, row)
        if j["version"] == version:
            return time.time() - t0, j
        assert time.time() - t0 < 10 * slow, ("never served", version, j)
        time.sleep(0.01)


def test_registry_cluster_train_on_a_serves_on_b_and_rollback_on_b_reaches_a(t):
    if not _cluster_ok(t):
        return
    a = t.new_server(extra=["--bus", t.redis], name="reg-node-a")
    b = t.new_server(extra=["--bus", t.redis], name="reg-node-b")
    ta = Tenant(t, srv=a, prefix="reg")
    tb = Tenant.__new__(Tenant)  # the same tenant and key, talking to node b
    tb.__dict__.update(ta.__dict__, srv=b, _roles={})
    sc._history(ta, random.Random(11), 220)
    row = ROWS[0]
    # b has served this tenant's prior: a cached "no model" must not stick
    assert _predict(tb, row)["kind"] == "prior"

    st, rep = ta.api("POST", "/v1/models/lead_scoring/train", {"seed": 3})
    assert st == 201 and rep["version"] == 1, (st, rep)
    lag1, jb = _wait_version(tb, 1, row, t.slow)
    ja = _predict(ta, row)
    assert jb["kind"] == "model" and jb["score"] == ja["score"], (ja, jb)
    ref = {1: [_predict(tb, r)["score"] for r in ROWS]}
    assert ref[1] == [_predict(ta, r)["score"] for r in ROWS]

    st, rep = ta.api("POST", "/v1/models/lead_scoring/train", {"seed": 5})
    assert st == 201 and rep["version"] == 2, (st, rep)
    lag2, _ = _wait_version(tb, 2, row, t.slow)
    ref[2] = [_predict(tb, r)["score"] for r in ROWS]
    assert ref[2] == [_predict(ta, r)["score"] for r in ROWS]
    assert ref[1] != ref[2], "two seeds should give two different models"

    # rollback on b reaches a
    st, j = tb.api("POST", "/v1/builtin-models/lead_scoring/activate", {"version": 1})
    assert st == 200 and j["active_version"] == 1, (st, j)
    assert _predict(tb, row)["version"] == 1  # b answered after serving it
    lag3, ja = _wait_version(ta, 1, row, t.slow)
    assert ja["score"] == ref[1][0], (ja, ref[1][0])
    print("    train on a -> served by b after %.0f ms, %.0f ms; rollback on b -> a after %.0f ms"
          % (lag1 * 1000, lag2 * 1000, lag3 * 1000))
    for lag in (lag1, lag2, lag3):
        assert lag < 1.0 * t.slow, (lag1, lag2, lag3)
    # b loaded them on a's model.activated events (it had cached the prior)
    loaded = [json.loads(ln) for ln in b.lines if '"activated model loaded"' in ln]
    assert [x["version"] for x in loaded][:2] == [1, 2], loaded

    # both nodes list the same registry: versions, who trained them, active
    for c in (ta, tb):
        st, j = c.api("GET", "/v1/builtin-models")
        assert st == 200, (st, j)
        ls = {m["name"]: m for m in j["models"]}["lead_scoring"]
        assert ls["active_version"] == 1 and [v["version"] for v in ls["versions"]] == [2, 1], ls
        assert all(v["trained_by"].startswith(ta.slug) for v in ls["versions"]), ls
        assert ls["versions"][1]["active"] and ls["versions"][1]["training"]["seed"] == 3, ls["versions"][1]
    ev = [e["payload"] for e in ta.events("model.activated")]
    assert [(e["name"], e["version"], e["previous"]) for e in ev] == [
        ("lead_scoring", 1, None), ("lead_scoring", 2, 1), ("lead_scoring", 1, 2)], ev

    # activations flipping on a while b serves under load: no request fails,
    # every answer is exactly its version's score
    stop = threading.Event()
    lock = threading.Lock()
    results = []

    def worker(w):
        n = w
        while not stop.is_set():
            i = n % len(ROWS)
            try:
                st_, j = tb.api("POST", "/predict", {"model": "lead_scoring", "features": ROWS[i]})
                v = j.get("version") if isinstance(j, dict) else None
                bad = None if st_ == 200 and v in ref and j["score"] == ref[v][i] else (st_, j)
            except Exception as e:  # a dropped connection is a failure too
                v, bad = None, repr(e)
            with lock:
                results.append((v, bad))
            n += 1

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(4)]
    for th in threads:
        th.start()
    switches = []
    try:
        time.sleep(0.1 * t.slow)
        for k in range(10):
            want = 2 if k % 2 == 0 else 1
            st, j = ta.api("POST", "/v1/builtin-models/lead_scoring/activate", {"version": want})
            switches.append((st, j.get("active_version")))
            time.sleep(0.05 * t.slow)
        time.sleep(0.2 * t.slow)
    finally:
        stop.set()
        for th in threads:
            th.join(30 * t.slow)
    assert switches == [(200, 2), (200, 1)] * 5, switches
    problems = [r for r in results if r[1]]
    print("    hot swap across nodes: %d requests on b during 10 activations on a, %d failed"
          % (len(results), len(problems)))
    assert not problems, problems[:5]
    assert {r[0] for r in results} == {1, 2} and len(results) >= 40, (len(results), {r[0] for r in results})
    _wait_version(tb, 1, row, t.slow)  # the last activation (v1) wins on b too
    a.stop()
    b.stop()


def _old_release_files(t, srv, tenant_id):
    """Model directories as an earlier release wrote them:
    DATA_DIR/tenants/ID/models/lead_scoring/v1, v2, and active = v1."""
    data = os.path.join(srv.tmp, "data")
    out = os.path.join(data, "tenants", str(tenant_id), "models")
    csv = os.path.join(srv.tmp, "history.csv")
    rng = random.Random(5)
    with open(csv, "w") as f:
        f.write("preapproved,inbound_messages,appointments,won\n")
        for _ in range(600):
            p, i, a = rng.random() < 0.5, rng.randrange(0, 4), rng.random() < 0.3
            z = -3.3 + 3.0 * p + 1.35 * i + 2.4 * a
            f.write("%d,%d,%d,%s\n" % (p, i, a, "yes" if rng.random() < 1 / (1 + 2.718281828 ** -z) else "no"))
    reps = []
    for seed in (1, 2):
        r = subprocess.run([t.binary, "train", "--data", csv, "--label", "won", "--model", "lead_scoring",
                            "--out", out, "--seed", str(seed), "--json"], capture_output=True, text=True,
                           timeout=120 * t.slow)
        assert r.returncode == 0, r.stderr
        reps.append(json.loads(r.stdout.strip().splitlines()[-1]))
    with open(os.path.join(out, "lead_scoring", "active"), "w") as f:
        f.write("v1\n")
    # coaching's forecast model lives beside them and is not the registry's
    os.makedirs(os.path.join(out, "agent_forecast", "v1"))
    return out, reps


def test_registry_imports_model_files_of_an_earlier_release_once(t):
    srv = t.new_server(name="reg-import")
    tn = Tenant(t, srv=srv, prefix="regi")
    tid = tn.db("SELECT id FROM tenants WHERE slug = '%s'" % tn.slug)[0]["id"]
    out, reps = _old_release_files(t, srv, tid)
    assert [r["version"] for r in reps] == [1, 2], reps
    # what the files score, by the CLI on the same row
    row = dict(sc.LEAD_FEATURES, preapproved=True, inbound_messages=1, appointments=0)
    rowcsv = os.path.join(srv.tmp, "row.csv")
    with open(rowcsv, "w") as f:
        f.write("preapproved,inbound_messages,appointments\n1,1,0\n")
    want = {}
    for v in (1, 2):
        r = subprocess.run([t.binary, "predict", "--model", os.path.join(out, "lead_scoring", "v%d" % v),
                            "--data", rowcsv], capture_output=True, text=True, timeout=60 * t.slow)
        assert r.returncode == 0, r.stderr
        want[v] = float(r.stdout.strip().splitlines()[-1].split(",")[1])

    srv.stop()
    srv.start()  # the upgrade: files into the store
    assert any('"model files imported into the store"' in ln and '"versions":2' in ln for ln in srv.lines), \
        srv.lines[-20:]
    st, j = tn.api("GET", "/v1/builtin-models")
    assert st == 200, (st, j)
    ls = {m["name"]: m for m in j["models"]}["lead_scoring"]
    assert ls["serving"] == "model" and ls["active_version"] == 1, ls
    assert [v["version"] for v in ls["versions"]] == [2, 1], ls
    for v in ls["versions"]:
        rep = reps[v["version"] - 1]
        assert v["trained_by"] == "cli" and v["trained_at"] == rep["trained_at"], (v, rep)
        assert abs(v["metrics"]["auc"] - rep["metrics"]["auc"]) < 1e-12 and v["rows"] == rep["rows"], (v, rep)
    j = _predict(tn, row)
    # (built-in scores are given to 4 decimals)
    assert abs(want[1] - want[2]) > 1e-3, want
    assert j["kind"] == "model" and j["version"] == 1 and abs(j["score"] - want[1]) <= 5.1e-5, (j, want)
    # the directory is kept, renamed: a second start imports nothing
    left = os.listdir(out)
    assert "lead_scoring" not in left and any(n.startswith("lead_scoring.imported-") for n in left), left
    assert "agent_forecast" in left, left
    srv.stop()
    srv.start()
    assert len([ln for ln in srv.lines if '"model files imported into the store"' in ln]) == 1
    st, j = tn.api("GET", "/v1/builtin-models")
    ls = {m["name"]: m for m in j["models"]}["lead_scoring"]
    assert [v["version"] for v in ls["versions"]] == [2, 1] and ls["active_version"] == 1, ls
    assert len(tn.events("model.activated")) == 1
    # the imported versions keep their numbers: the next training is v3,
    # and a rollback to an imported one serves the file's model
    st, j = tn.api("POST", "/v1/builtin-models/lead_scoring/activate", {"version": 2})
    assert st == 200, (st, j)
    j = _predict(tn, row)
    assert j["version"] == 2 and abs(j["score"] - want[2]) <= 5.1e-5, (j, want)
    sc._history(tn, random.Random(4), 160)
    r = run_cli(t, srv, "train", "--tenant", tn.slug, "--builtin", "lead_scoring", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["version"] == 3
    srv.stop()
