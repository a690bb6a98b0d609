"""Models end to end: `ehub train` / `ehub predict` and the scoring routes of
a real server (/predict, /batch-predict, /models, /stats, their /v1 twins
and /v1/models/{name}/activate).

Models are trained with the real CLI into a server's DATA_DIR/models before
that server (re)starts, since models are loaded at start: the module's server
(t.srv) is restarted once with `churn` (wa_churn.csv, classifier) and `house`
(Sacramento.csv, log-price regression); the version-switching tests use a
server of their own with churn v1 and v2. API keys come from the CLI
(`ehub tenant add`, `ehub key create`) against the server's store.

The shared data sets live in ../shared/data (or $EHUB_SHARED_DATA).
Standard library only."""
import csv
import http.client
import itertools
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import parse_responses  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("EHUB_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
CHURN_CSV = os.path.join(SHARED, "churn", "wa_churn.csv")
HOUSE_CSV = os.path.join(SHARED, "property", "Sacramento.csv")

MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}
ML_ROUTES = [("POST", "/predict"), ("POST", "/v1/predict"), ("POST", "/batch-predict"),
             ("POST", "/v1/batch-predict"), ("GET", "/models"), ("GET", "/v1/models"),
             ("GET", "/stats"), ("GET", "/v1/stats"), ("POST", "/v1/models/churn/activate")]
_seq = itertools.count(1)


# ---------------------------------------------------------------- helpers

def _need_data():
    for p in (CHURN_CSV, HOUSE_CSV):
        if not os.path.exists(p):
            raise AssertionError("shared data set missing: %s (set EHUB_SHARED_DATA)" % p)


def _data_dir(srv):
    return os.path.join(srv.tmp, "data")


def _store_args(t, srv):
    data = _data_dir(srv)
    if t.backend == "postgres":
        return ["--store", srv.store, "--data-dir", data]
    return ["--store", "sqlite:" + os.path.join(data, "ehub.db"), "--data-dir", data]


def _cli(t, *args, timeout=120):
    return subprocess.run([t.binary] + list(args), capture_output=True, text=True, timeout=timeout * t.slow)


def _cli_json(t, srv, *args):
    r = _cli(t, *(list(args) + _store_args(t, srv)))
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def _train(t, data_dir, csv_path, label, model, *extra):
    """`ehub train ... --json` into data_dir/models; returns the report (last line)."""
    r = _cli(t, "train", "--data", csv_path, "--label", label, "--model", model, "--json",
             "--data-dir", data_dir, *extra)
    assert r.returncode == 0, (model, r.returncode, r.stdout[-500:], r.stderr[-2000:])
    lines = r.stdout.strip().splitlines()
    assert lines, "ehub train --json printed nothing"
    return json.loads(lines[-1])


class Client:
    """JSON over HTTP to one server with one API key (or none)."""

    def __init__(self, srv, key):
        self.srv = srv
        self.key = key

    def call(self, method, path, body=None, headers=None, timeout=30):
        """Returns (status, parsed JSON or {"_raw": bytes}). dict/list bodies
        are sent as JSON, bytes as they are (with Content-Type: application/json
        unless headers say otherwise)."""
        h = {"Authorization": "Bearer " + self.key} if self.key else {}
        if body is not None:
            h["Content-Type"] = "application/json"
            if not isinstance(body, bytes):
                body = json.dumps(body).encode()
        h.update(headers or {})
        st, hd, b = self.srv.request(method, path, body=body, headers=h, timeout=timeout)
        try:
            j = json.loads(b) if b else None
        except ValueError:
            j = {"_raw": b[:300]}
        return st, j

    def predict(self, model, features, explain=None, path="/predict"):
        body = {"model": model, "features": features}
        if explain is not None:
            body["explain"] = explain
        return self.call("POST", path, body)

    def ok_predict(self, model, features, **kw):
        st, j = self.predict(model, features, **kw)
        assert st == 200, (st, j, features)
        return j


def _keys(t, srv):
    """A fresh tenant on srv's store: (admin client, viewer client)."""
    # random part: other test modules import this one (a second _seq), and
    # on PostgreSQL every module shares one database
    slug = "ml-%d-%d-%s" % (os.getpid(), next(_seq), os.urandom(3).hex())
    _cli_json(t, srv, "tenant", "add", slug, "ML " + slug)
    admin = _cli_json(t, srv, "key", "create", "admin", "ml-admin", "--tenant", slug)["key"]
    viewer = _cli_json(t, srv, "key", "create", "viewer", "ml-viewer", "--tenant", slug)["key"]
    return Client(srv, admin), Client(srv, viewer)


def _schema(data_dir, model, version):
    with open(os.path.join(data_dir, "models", model, "v%d" % version, "schema.json")) as f:
        return json.load(f)


def _rows(csv_path, schema):
    """The CSV's rows as /predict feature objects: numbers for numeric
    features (the cell itself when Python cannot parse it: the server reads
    numeric strings like "$1,250" too), strings for categoricals, null for
    missing cells."""
    kinds = {f["name"]: f["type"] for f in schema["features"]}
    out = []
    with open(csv_path, newline="") as f:
        for rec in csv.DictReader(f):
            row = {}
            for name, kind in kinds.items():
                c = rec[name].strip()
                if c.lower() in MISSING:
                    row[name] = None
                elif kind == "numeric":
                    try:
                        row[name] = int(c) if c.lstrip("+-").isdigit() else float(c)
                    except ValueError:
                        row[name] = c
                else:
                    row[name] = c
            out.append(row)
    return out


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def _close(a, b, tol=1e-6):
    return abs(a - b) <= tol


def _assert_error(st, j, want, what):
    """A refused request: the wanted status (an int or a tuple), a JSON error
    body, and never a score."""
    want = (want,) if isinstance(want, int) else want
    assert st in want, (what, "want", want, "got", st, j)
    assert 400 <= st < 500, (what, st, j)
    assert isinstance(j, dict) and isinstance(j.get("error"), dict) and j["error"].get("code"), (what, st, j)
    for k in ("score", "scores", "margin"):
        assert k not in j, (what, j)


def _cli_scores(t, model_dir, csv_path, *extra):
    """`ehub predict`: its CSV output (row,score,margin), as text."""
    r = _cli(t, "predict", "--model", model_dir, "--data", csv_path, *extra)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    return r.stdout


def _parse_predict_csv(text):
    lines = text.strip("\n").split("\n")
    assert lines[0] == "row,score,margin", lines[0]
    out = []
    for ln in lines[1:]:
        a, b, c = ln.split(",")
        out.append((int(a), float(b), float(c)))
    return out


# ---------------------------------------------------------------- fixtures

def _main(t):
    """The module's server with churn v1 and house v1 loaded; cached on t."""
    st = getattr(t, "_ml", None)
    if st:
        return st
    _need_data()
    srv = t.srv
    data = _data_dir(srv)
    st = {"srv": srv, "data": data}
    st["churn_report"] = _train(t, data, CHURN_CSV, "churn", "churn", "--nthread", "1")
    st["house_report"] = _train(t, data, HOUSE_CSV, "price", "house", "--regression", "--log-target",
                                "--nthread", "1")
    srv.stop()
    srv.start()
    st["admin"], st["viewer"] = _keys(t, srv)
    st["churn_schema"] = _schema(data, "churn", 1)
    st["house_schema"] = _schema(data, "house", 1)
    st["churn_rows"] = _rows(CHURN_CSV, st["churn_schema"])
    st["house_rows"] = _rows(HOUSE_CSV, st["house_schema"])
    t._ml = st
    return st


def _swap(t):
    """A server of its own with churn v1 and v2 (different seed and depth,
    so their scores differ); v2, the newest, is served at start. Cached."""
    st = getattr(t, "_ml_swap", None)
    if st:
        return st
    _need_data()
    srv = t.new_server(start=False, name="ml-swap")
    data = _data_dir(srv)
    r1 = _train(t, data, CHURN_CSV, "churn", "churn", "--nthread", "1")
    r2 = _train(t, data, CHURN_CSV, "churn", "churn", "--nthread", "1", "--seed", "7", "--max-depth", "3")
    assert (r1["version"], r2["version"]) == (1, 2), (r1["version"], r2["version"])
    srv.start()
    admin, viewer = _keys(t, srv)
    schema = _schema(data, "churn", 1)
    rows = _rows(CHURN_CSV, schema)
    # reference scores of a few rows under each version, from the CLI
    ref = {}
    for v in (1, 2):
        out = _parse_predict_csv(_cli_scores(t, os.path.join(data, "models", "churn", "v%d" % v), CHURN_CSV))
        ref[v] = [s for _, s, _ in out]
    st = {"srv": srv, "data": data, "admin": admin, "viewer": viewer, "rows": rows, "ref": ref}
    t._ml_swap = st
    return st


def _served_version(c, name="churn"):
    st, j = c.call("GET", "/v1/models")
    assert st == 200, (st, j)
    for m in j["models"]:
        if m["name"] == name:
            return m["version"]
    raise AssertionError("model %s not listed: %s" % (name, j))


def _active_file(data, name="churn"):
    p = os.path.join(data, "models", name, "active")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return f.read().strip()


# ---------------------------------------------------------------- training CLI

def test_ml_train_json_report(t):
    _need_data()
    out = os.path.join(t.srv.tmp, "train-cli")
    c1 = _train(t, out, CHURN_CSV, "churn", "c", "--nthread", "1")
    assert c1["model"] == "c" and c1["version"] == 1, c1
    assert c1["rows"] == 7043, c1["rows"]
    assert c1["features"] == 19, c1["features"]
    for k in ("auc", "logloss"):
        assert isinstance(c1[k], float), (k, c1)
    assert 0.80 < c1["auc"] < 1.0 and 0 < c1["logloss"] < 0.6, c1
    assert "rmse" not in c1
    assert os.path.exists(os.path.join(out, "models", "c", "v1", "model.json"))
    # the next training of the same name is v2
    c2 = _train(t, out, CHURN_CSV, "churn", "c", "--nthread", "1")
    assert c2["version"] == 2, c2
    assert os.path.isdir(os.path.join(out, "models", "c", "v2"))
    # regression: rmse instead of auc/logloss
    h = _train(t, out, HOUSE_CSV, "price", "h", "--regression", "--log-target", "--nthread", "1")
    assert h["model"] == "h" and h["version"] == 1 and h["rows"] == 932, h
    assert h["features"] >= 5, h
    assert isinstance(h["rmse"], float) and 0 < h["rmse"] < 0.45, h
    assert "auc" not in h and "logloss" not in h, h
    # the JSON line is the last line; without --json the output is text
    r = _cli(t, "train", "--data", HOUSE_CSV, "--label", "price", "--regression", "--model", "h2",
             "--data-dir", out, "--nthread", "1")
    assert r.returncode == 0, r.stderr
    assert not r.stdout.strip().splitlines()[-1].startswith("{"), r.stdout
    # usage errors
    r = _cli(t, "train", "--data", HOUSE_CSV, "--model", "x", "--data-dir", out)
    assert r.returncode == 2 and "--label" in r.stderr, (r.returncode, r.stderr)
    r = _cli(t, "train", "--data", HOUSE_CSV, "--label", "nosuch", "--model", "x", "--data-dir", out)
    assert r.returncode == 1 and "nosuch" in r.stderr, (r.returncode, r.stderr)
    r = _cli(t, "train", "--data", HOUSE_CSV, "--label", "price", "--model", "Bad Name", "--data-dir", out)
    assert r.returncode != 0, r.returncode
    assert not os.path.exists(os.path.join(out, "models", "x"))


# ---------------------------------------------------------------- scoring

def test_ml_predict_routes(t):
    st = _main(t)
    a = st["admin"]
    row = st["churn_rows"][0]
    answers = []
    for path in ("/predict", "/v1/predict"):
        s, j = a.predict("churn", row, path=path)
        assert s == 200, (path, s, j)
        assert j["model"] == "churn" and j["version"] == 1, j
        assert isinstance(j["score"], float) and 0.0 < j["score"] < 1.0, j
        assert _close(j["score"], _sigmoid(j["margin"]), 1e-9), j
        answers.append(j)
    assert answers[0]["score"] == answers[1]["score"], answers
    # explain:false is the same as no explain; null features score as missing
    j = a.ok_predict("churn", row, explain=False)
    assert j["score"] == answers[0]["score"] and "explanation" not in j, j
    j = a.ok_predict("churn", {k: None for k in row})
    assert 0.0 < j["score"] < 1.0, j
    # numeric strings are read as numbers
    j2 = a.ok_predict("churn", dict(row, tenure=str(row["tenure"])))
    assert j2["score"] == answers[0]["score"], (j2, answers[0])
    # regression on log(price): the score is exp(margin), in dollars
    hrow = st["house_rows"][0]
    j = a.ok_predict("house", hrow, path="/v1/predict")
    assert j["model"] == "house" and j["version"] == 1, j
    assert _close(j["score"], math.exp(j["margin"]), 1e-9 * j["score"]), j
    assert 10000 < j["score"] < 2000000, j


def test_ml_explain_contributions_add_up(t):
    st = _main(t)
    a = st["admin"]
    for model, rows, schema in (("churn", st["churn_rows"], st["churn_schema"]),
                                ("house", st["house_rows"], st["house_schema"])):
        names = {f["name"] for f in schema["features"]}
        for i in (0, 1, 2, 17, 488, len(rows) - 1):
            plain = a.ok_predict(model, rows[i])
            for path in ("/predict", "/v1/predict"):
                j = a.ok_predict(model, rows[i], explain=True, path=path)
                assert j["version"] == 1 and j["score"] == plain["score"], (j, plain)
                ex = j["explanation"]
                contrib = ex["contributions"]
                assert set(contrib) == names, (model, sorted(contrib), sorted(names))
                total = ex["base"] + sum(contrib.values())
                assert _close(total, j["margin"]), (model, i, total, j["margin"])
                assert _close(j["margin"], plain["margin"], 1e-9), (j, plain)
    # a row with missing values explains too
    row = {k: None for k in st["churn_rows"][0]}
    j = a.ok_predict("churn", row, explain=True)
    assert _close(j["explanation"]["base"] + sum(j["explanation"]["contributions"].values()), j["margin"])


def test_ml_cli_predict_matches_server(t):
    st = _main(t)
    a = st["admin"]
    mdir = os.path.join(st["data"], "models", "churn")
    text = _cli_scores(t, mdir, CHURN_CSV)                       # the model's dir: its newest version
    out = _parse_predict_csv(text)
    rows = st["churn_rows"]
    assert len(out) == len(rows) == 7043, (len(out), len(rows))
    assert [r for r, _, _ in out] == list(range(1, len(rows) + 1))
    for _, s, m in out:
        assert 0 < s < 1 and _close(s, _sigmoid(m), 1e-7), (s, m)
    # --output FILE and a version directory give the same text
    path = os.path.join(t.srv.tmp, "scores.csv")
    _cli_scores(t, os.path.join(mdir, "v1"), CHURN_CSV, "--output", path)
    with open(path) as f:
        assert f.read() == text
    # POST /predict, row by row, for a sample (every 97th row and every row with a missing cell)
    sample = sorted(set(range(0, len(rows), 97)) | {i for i, r in enumerate(rows) if None in r.values()})
    assert len(sample) > 70, len(sample)
    for i in sample:
        j = a.ok_predict("churn", rows[i])
        assert _close(j["score"], out[i][1]), (i, j, out[i])
        assert _close(j["margin"], out[i][2]), (i, j, out[i])
    # and every row through /batch-predict
    s, j = a.call("POST", "/batch-predict", {"model": "churn", "rows": rows}, timeout=120)
    assert s == 200, (s, j)
    assert len(j["scores"]) == len(rows)
    bad = [i for i, sc in enumerate(j["scores"]) if not _close(sc, out[i][1])]
    assert not bad, ("batch and CLI differ", bad[:5], [(j["scores"][i], out[i]) for i in bad[:5]])
    # regression: the same in dollars (relative) and on the margin
    hout = _parse_predict_csv(_cli_scores(t, os.path.join(st["data"], "models", "house"), HOUSE_CSV))
    assert len(hout) == len(st["house_rows"]) == 932
    for i in range(0, 932, 31):
        j = a.ok_predict("house", st["house_rows"][i])
        assert _close(j["margin"], hout[i][2]), (i, j, hout[i])
        assert abs(j["score"] - hout[i][1]) <= 1e-6 * hout[i][1], (i, j, hout[i])
    # the data must have every feature column
    partial = os.path.join(t.srv.tmp, "partial.csv")
    with open(CHURN_CSV) as f, open(partial, "w") as g:
        for ln in itertools.islice(f, 5):
            g.write(",".join(ln.rstrip("\n").split(",")[:-1]) + "\n")   # no total_charges
    r = _cli(t, "predict", "--model", mdir, "--data", partial)
    assert r.returncode != 0 and "total_charges" in r.stderr, (r.returncode, r.stderr)
    r = _cli(t, "predict", "--model", os.path.join(mdir, "v9"), "--data", CHURN_CSV)
    assert r.returncode != 0 and r.stderr, r.returncode


def test_ml_batch_10000_rows_and_latency(t):
    st = _main(t)
    a = st["admin"]
    rows = st["churn_rows"]
    batch = [rows[i % len(rows)] for i in range(10000)]
    body = json.dumps({"model": "churn", "rows": batch}).encode()
    hdr = {"Authorization": "Bearer " + a.key, "Content-Type": "application/json"}
    times = []
    scores = None
    for path in ("/batch-predict", "/v1/batch-predict", "/batch-predict", "/v1/batch-predict", "/batch-predict"):
        c = http.client.HTTPConnection("127.0.0.1", st["srv"].port, timeout=60 * t.slow)
        c.connect()
        t0 = time.perf_counter()
        c.request("POST", path, body=body, headers=hdr)
        r = c.getresponse()
        data = r.read()
        times.append(time.perf_counter() - t0)
        c.close()
        assert r.status == 200, (path, r.status, data[:300])
        j = json.loads(data)
        assert j["model"] == "churn" and j["version"] == 1, {k: j[k] for k in j if k != "scores"}
        assert len(j["scores"]) == 10000, len(j["scores"])
        if scores is None:
            scores = j["scores"]
        else:
            assert j["scores"] == scores
    times.sort()
    print("    /batch-predict, 10,000 rows (%.1f MB body), end to end: best %.1f ms, median %.1f ms, worst %.1f ms"
          % (len(body) / 1e6, times[0] * 1e3, times[len(times) // 2] * 1e3, times[-1] * 1e3))
    assert times[len(times) // 2] < 0.5 * t.slow, times          # target < 50 ms on a release build
    # the batch agrees with single predictions
    for i in list(range(0, 10000, 211)) + [7042, 7043, 9999]:
        j = a.ok_predict("churn", batch[i])
        assert _close(j["score"], scores[i]), (i, j["score"], scores[i])
    # rows repeated after 7043 score the same as their originals
    assert scores[7043:7100] == scores[0:57]
    # 10,001 rows: too many
    s, j = a.call("POST", "/batch-predict", {"model": "churn", "rows": batch + [batch[0]]}, timeout=60)
    _assert_error(s, j, 413, "10,001 rows")
    s, j = a.call("POST", "/v1/batch-predict", {"model": "churn", "rows": batch + [batch[0]]}, timeout=60)
    _assert_error(s, j, 413, "10,001 rows on /v1")
    # an empty batch is fine
    s, j = a.call("POST", "/batch-predict", {"model": "house", "rows": []})
    assert s == 200 and j["scores"] == [] and j["model"] == "house", (s, j)


def _raw_post(srv, path, key, head_extra, chunks, timeout):
    """Sends a request with a body given as byte chunks over a raw socket
    (the server may answer and close before the body is all sent); returns
    the responses read."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    try:
        s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\n%s\r\n" % (path, key, head_extra)).encode())
        try:
            for c in chunks:
                s.sendall(c)
        except OSError:
            pass                                  # answered early and closed: expected
        data = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        except OSError:
            pass
        return parse_responses(data)
    finally:
        s.close()


def test_ml_batch_body_over_32_mib(t):
    st = _main(t)
    a = st["admin"]
    n = 33 * 1024 * 1024
    head = b'{"model":"churn","rows":[{"contract":"'
    tail = b'"}]}'
    mib = b"x" * (1024 * 1024)

    def body():
        yield head
        for _ in range(n // len(mib)):
            yield mib
        yield tail

    t0 = time.time()
    r = _raw_post(st["srv"], "/batch-predict", a.key, "Content-Length: %d\r\n" % (len(head) + n + len(tail)),
                  body(), 30 * t.slow)
    assert r and r[0][0] == 413, r[:1]
    j = json.loads(r[0][2])
    assert j["error"]["code"] and "scores" not in j, j
    # chunked: no length announced, refused once 32 MiB have arrived
    r = _raw_post(st["srv"], "/v1/batch-predict", a.key, "Transfer-Encoding: chunked\r\n",
                  (b"%x\r\n%s\r\n" % (len(c), c) for c in body()), 30 * t.slow)
    assert r and r[0][0] == 413, r[:1]
    assert time.time() - t0 < 20 * t.slow
    assert a.ok_predict("churn", st["churn_rows"][0])["version"] == 1


def test_ml_bad_inputs_are_4xx_json(t):
    st = _main(t)
    a = st["admin"]
    row = st["churn_rows"][0]
    good = json.dumps({"model": "churn", "features": row})
    missing = dict(row)
    del missing["tenure"]
    cases = [
        ("unknown model", {"model": "nope", "features": row}, 404),
        ("model not a string", {"model": 7, "features": row}, 400),
        ("no model", {"features": row}, 400),
        ("missing feature", {"model": "churn", "features": missing}, 422),
        ("string for a numeric feature", {"model": "churn", "features": dict(row, tenure="twelve")}, 422),
        ("object for a numeric feature", {"model": "churn", "features": dict(row, tenure={"v": 1})}, 422),
        ("array for a categorical", {"model": "churn", "features": dict(row, contract=["One year"])}, 422),
        ("unknown category", {"model": "churn", "features": dict(row, contract="Forever")}, 422),
        ("unknown feature key", {"model": "churn", "features": dict(row, tenur=5)}, 422),
        ("unknown key instead of a feature", {"model": "churn", "features": dict(missing, tenur=5)}, 422),
        ("number beyond float", {"model": "churn", "features": dict(row, tenure=1e300)}, 422),
        ("features is a list", {"model": "churn", "features": list(row.values())}, 422),
        ("features is a string", {"model": "churn", "features": "tenure=5"}, 422),
        ("features is null", {"model": "churn", "features": None}, 422),
        ("features is a number", {"model": "churn", "features": 5}, 422),
        ("no features", {"model": "churn"}, 422),
        ("body is a list", [{"model": "churn", "features": row}], 400),
        ("NaN", good.replace('"tenure": %s' % json.dumps(row["tenure"]), '"tenure": NaN').encode(), 400),
        ("Infinity", good.replace('"tenure": %s' % json.dumps(row["tenure"]), '"tenure": Infinity').encode(), 400),
        ("-Infinity", good.replace('"tenure": %s' % json.dumps(row["tenure"]), '"tenure": -Infinity').encode(), 400),
        ("1e999", good.replace('"tenure": %s' % json.dumps(row["tenure"]), '"tenure": 1e999').encode(), 400),
        ("invalid JSON", good[:-5].encode(), 400),
        ("not JSON at all", b"model=churn&tenure=1", 400),
        ("empty body", b"", 400),
        ("duplicate key", good.replace('{"model": "churn",', '{"model": "churn", "model": "house",').encode(), 400),
        # the name is read from a leading "model" alone, the rest in one pass after it: a second "model"
        # anywhere, or broken JSON after an unknown name, must still be caught
        ("duplicate key at the end", (good[:-1] + ', "model": "churn"}').encode(), 400),
        ("broken JSON after an unknown model", b'{"model": "nope", "features": {', 400),
    ]
    assert b"NaN" in cases[-10][1] and b"Infinity" in cases[-9][1], "test rows changed"
    for path in ("/predict", "/v1/predict"):
        for what, body, want in cases:
            s, j = a.call("POST", path, body)
            _assert_error(s, j, want, (path, what))
    s, j = a.call("POST", "/predict", good.encode(), headers={"Content-Type": "text/plain"})
    _assert_error(s, j, 415, "text/plain")
    # batches: one bad row refuses the whole batch, naming the row
    rows = st["churn_rows"][:20]
    bcases = [
        ("unknown model", {"model": "nope", "rows": rows}, 404),
        ("no model", {"rows": rows}, 400),
        ("rows not an array", {"model": "churn", "rows": rows[0]}, 400),
        ("no rows", {"model": "churn"}, 400),
        ("row 7 misses a feature", {"model": "churn", "rows": rows[:7] + [missing] + rows[8:]}, 422),
        ("row 3 mistyped", {"model": "churn", "rows": rows[:3] + [dict(row, tenure="x")] + rows[4:]}, 422),
        ("row 5 unknown category", {"model": "churn", "rows": rows[:5] + [dict(row, contract="?!")]}, 422),
        ("row 2 unknown key", {"model": "churn", "rows": rows[:2] + [dict(row, extra=1)]}, 422),
        ("row 1 not an object", {"model": "churn", "rows": rows[:1] + [[1, 2, 3]]}, 422),
        ("NaN", json.dumps({"model": "churn", "rows": rows}).replace(
            '"tenure": %s' % json.dumps(rows[4]["tenure"]), '"tenure": NaN', 1).encode(), 400),
        ("invalid JSON", json.dumps({"model": "churn", "rows": rows})[:-3].encode(), 400),
        ("body is a list", rows, 400),
    ]
    for path in ("/batch-predict", "/v1/batch-predict"):
        for what, body, want in bcases:
            s, j = a.call("POST", path, body)
            _assert_error(s, j, want, (path, what))
            if what.startswith("row 7"):
                assert "row 7" in j["error"]["message"], j
    # the server is still fine
    assert a.ok_predict("churn", row)["version"] == 1
    # "model" after "features" is read by the whole-body path, with the same answer
    s, j = a.call("POST", "/predict", {"features": row, "model": "churn"})
    assert s == 200 and j["score"] == a.ok_predict("churn", row)["score"], (s, j)


def test_ml_models_listing(t):
    st = _main(t)
    for c in (st["admin"], st["viewer"]):
        listings = []
        for path in ("/models", "/v1/models"):
            s, j = c.call("GET", path)
            assert s == 200, (path, s, j)
            listings.append(j)
            by = {m["name"]: m for m in j["models"]}
            assert set(by) == {"churn", "house"}, sorted(by)
            ch, ho = by["churn"], by["house"]
            assert ch["version"] == 1 and ho["version"] == 1, (ch["version"], ho["version"])
            assert ch["task"] == "classification" and ho["task"] == "regression", (ch["task"], ho["task"])
            assert set(ch["metrics"]) >= {"auc", "logloss"} and "rmse" in ho["metrics"], (ch["metrics"], ho["metrics"])
            assert abs(ch["metrics"]["auc"] - st["churn_report"]["auc"]) < 1e-6, ch["metrics"]
            assert abs(ho["metrics"]["rmse"] - st["house_report"]["rmse"]) < 1e-6, ho["metrics"]
            for m, schema in ((ch, st["churn_schema"]), (ho, st["house_schema"])):
                want = [(f["name"], f["type"]) for f in schema["features"]]
                got = [(f["name"], f["type"]) for f in m["features"]]
                assert got == want, (m["name"], got, want)
                assert m["trees"] > 0, m
            assert len(ch["features"]) == st["churn_report"]["features"] == 19
            kinds = {f["name"]: f["type"] for f in ch["features"]}
            assert kinds["tenure"] == "numeric" and kinds["contract"] == "categorical", kinds
        assert listings[0] == listings[1]


def test_ml_stats_count_predictions(t):
    st = _main(t)
    a = st["admin"]

    def stats(path="/stats"):
        s, j = a.call("GET", path)
        assert s == 200, (s, j)
        return j

    before = stats()
    row = st["churn_rows"][3]
    for i in range(3):
        a.ok_predict("churn", row)
    a.ok_predict("churn", row, explain=True)
    s, j = a.call("POST", "/v1/batch-predict", {"model": "churn", "rows": st["churn_rows"][:25]})
    assert s == 200, (s, j)
    a.ok_predict("house", st["house_rows"][0], path="/v1/predict")
    s, j = a.predict("churn", dict(row, contract="Forever"))
    assert s == 422, (s, j)
    after = stats("/v1/stats")
    bc, ac = before["models"]["churn"], after["models"]["churn"]
    assert ac["predictions"] - bc["predictions"] == 3 + 1 + 25, (bc, ac)
    assert ac["errors"] - bc["errors"] == 1, (bc, ac)
    assert after["models"]["house"]["predictions"] - before["models"]["house"]["predictions"] == 1
    assert after["predictions"] - before["predictions"] == 30, (before["predictions"], after["predictions"])
    assert after["predictions"] == sum(m["predictions"] for m in after["models"].values())
    lat = ac["latency_us"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"], lat
    assert stats() == stats("/v1/stats")
    # Prometheus has the same count
    s, h, b = st["srv"].request("GET", "/metrics")
    line = [l for l in b.decode().splitlines() if l.startswith('ehub_ml_predictions_total{model="churn"}')]
    assert line and float(line[0].split()[-1]) == ac["predictions"], (line, ac)


def test_ml_authentication_and_roles(t):
    st = _main(t)
    srv = st["srv"]
    body = {"model": "churn", "features": st["churn_rows"][0]}
    for hdr in ({}, {"Authorization": "Bearer ehk_" + "0" * 40}, {"Authorization": "Bearer nope"},
                {"X-API-Key": "ehk_" + "1" * 40}):
        for method, path in ML_ROUTES:
            b = {"version": 1} if path.endswith("/activate") else body if method == "POST" else None
            if path.endswith("batch-predict"):
                b = {"model": "churn", "rows": st["churn_rows"][:3]}
            c = Client(srv, None)
            s, j = c.call(method, path, b, headers=hdr)
            assert s == 401, (method, path, hdr, s, j)
            assert "score" not in j and "scores" not in j and "models" not in j, j
    # a large batch without a key is refused too (and the server does not choke on the body)
    s, j = Client(srv, None).call("POST", "/batch-predict",
                                  {"model": "churn", "rows": st["churn_rows"][:3000]})
    assert s == 401, (s, j)
    # X-API-Key works like the Bearer header
    s, j = Client(srv, None).call("POST", "/predict", body, headers={"X-API-Key": st["admin"].key})
    assert s == 200 and j["version"] == 1, (s, j)
    # a viewer reads and scores but does not switch versions
    v = st["viewer"]
    assert v.ok_predict("churn", body["features"])["model"] == "churn"
    assert v.ok_predict("churn", body["features"], explain=True, path="/v1/predict")["explanation"]
    s, j = v.call("POST", "/v1/batch-predict", {"model": "house", "rows": st["house_rows"][:10]})
    assert s == 200 and len(j["scores"]) == 10, (s, j)
    for path in ("/models", "/v1/models", "/stats", "/v1/stats"):
        assert v.call("GET", path)[0] == 200, path
    s, j = v.call("POST", "/v1/models/churn/activate", {"version": 1})
    _assert_error(s, j, 403, "viewer activates")
    assert _active_file(st["data"]) is None


# ---------------------------------------------------------------- versions

def test_ml_activate_switches_version_and_persists(t):
    sw = _swap(t)
    srv, a, data, ref = sw["srv"], sw["admin"], sw["data"], sw["ref"]
    row_i = 11
    row = sw["rows"][row_i]
    assert abs(ref[1][row_i] - ref[2][row_i]) > 1e-4, "v1 and v2 should score differently"
    # the newest is served at start
    assert _served_version(a) == 2
    j = a.ok_predict("churn", row)
    assert j["version"] == 2 and _close(j["score"], ref[2][row_i]), (j, ref[2][row_i])
    # roll back to v1
    s, j = a.call("POST", "/v1/models/churn/activate", {"version": 1})
    assert s == 200 and j["name"] == "churn" and j["version"] == 1, (s, j)
    assert _served_version(a) == 1
    s, j = a.call("GET", "/models")
    assert [m["version"] for m in j["models"] if m["name"] == "churn"] == [1], j
    for path in ("/predict", "/v1/predict"):
        j = a.ok_predict("churn", row, path=path)
        assert j["version"] == 1 and _close(j["score"], ref[1][row_i]), (path, j, ref[1][row_i])
    s, j = a.call("POST", "/batch-predict", {"model": "churn", "rows": [row]})
    assert s == 200 and j["version"] == 1 and _close(j["scores"][0], ref[1][row_i]), (s, j)
    assert _active_file(data) == "v1"
    # activating the version already served is fine
    s, j = a.call("POST", "/v1/models/churn/activate", {"version": 1})
    assert s == 200 and j["version"] == 1, (s, j)
    # a missing version, a model that does not exist, bad bodies: refused, nothing changes
    for what, path, body in [("missing version", "/v1/models/churn/activate", {"version": 9}),
                             ("unknown model", "/v1/models/nope/activate", {"version": 1}),
                             ("bad model name", "/v1/models/No%20Such/activate", {"version": 1}),
                             ("version 0", "/v1/models/churn/activate", {"version": 0}),
                             ("version -1", "/v1/models/churn/activate", {"version": -1}),
                             ("version as string", "/v1/models/churn/activate", {"version": "2"}),
                             ("version as float", "/v1/models/churn/activate", {"version": 1.5}),
                             ("no version", "/v1/models/churn/activate", {}),
                             ("invalid JSON", "/v1/models/churn/activate", b'{"version":')]:
        s, j = a.call("POST", path, body)
        assert 400 <= s < 500, (what, s, j)
        assert isinstance(j, dict) and "error" in j, (what, j)
    assert _served_version(a) == 1 and _active_file(data) == "v1"
    s, j = a.call("GET", "/v1/models")
    assert [m["name"] for m in j["models"]] == ["churn"], j
    # the choice survives a restart (NAME/active), though v2 is newer
    srv.stop()
    srv.start()
    assert _served_version(a) == 1
    j = a.ok_predict("churn", row)
    assert j["version"] == 1 and _close(j["score"], ref[1][row_i]), j
    # and forward again
    s, j = a.call("POST", "/v1/models/churn/activate", {"version": 2})
    assert s == 200 and j["version"] == 2, (s, j)
    assert a.ok_predict("churn", row)["version"] == 2
    assert _active_file(data) == "v2"
    srv.stop()
    srv.start()
    assert _served_version(a) == 2


def test_ml_hot_swap_under_load(t):
    sw = _swap(t)
    srv, a, ref, rows = sw["srv"], sw["admin"], sw["ref"], sw["rows"]
    sample = [5, 11, 42, 1000, 7042]
    stop = threading.Event()
    lock = threading.Lock()
    results = []          # (kind, status, versions seen, problem or None)

    def check(kind, st_, j, idx):
        if st_ != 200:
            return "status %s: %s" % (st_, j)
        if kind == "batch":
            if j.get("version") not in (1, 2) or len(j.get("scores", [])) != len(idx):
                return "bad batch answer %s" % {k: j[k] for k in j if k != "scores"}
            v = j["version"]
            for k, i in enumerate(idx):
                if not _close(j["scores"][k], ref[v][i]):
                    return "batch row %d scored %r, v%d says %r" % (i, j["scores"][k], v, ref[v][i])
            return None
        v = j.get("version")
        if v not in (1, 2):
            return "version %r" % v
        if not _close(j["score"], ref[v][idx]):
            return "row %d scored %r, v%d says %r" % (idx, j["score"], v, ref[v][idx])
        if kind == "explain":
            ex = j["explanation"]
            if not _close(ex["base"] + sum(ex["contributions"].values()), j["margin"]):
                return "explanation does not add up"
        return None

    def worker(w):
        n = 0
        while not stop.is_set():
            kind = ("plain", "plain", "explain", "batch")[w]
            try:
                if kind == "batch":
                    idx = sample * 40
                    s, j = a.call("POST", "/v1/batch-predict", {"model": "churn", "rows": [rows[i] for i in idx]})
                else:
                    idx = sample[n % len(sample)]
                    s, j = a.predict("churn", rows[idx], explain=(kind == "explain") or None)
                problem = check(kind, s, j, idx)
                v = j.get("version") if isinstance(j, dict) else None
            except Exception as e:  # a dropped connection is a failure too
                s, v, problem = None, None, "exception %r" % e
            with lock:
                results.append((kind, s, v, problem))
            n += 1

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(4)]
    for th in threads:
        th.start()
    switches = []
    try:
        time.sleep(0.1 * t.slow)
        for k in range(10):
            want = 1 if k % 2 == 0 else 2
            s, j = a.call("POST", "/v1/models/churn/activate", {"version": want})
            switches.append((s, j.get("version") if isinstance(j, dict) else j))
            time.sleep(0.03 * t.slow)
        time.sleep(0.1 * t.slow)
    finally:
        stop.set()
        for th in threads:
            th.join(30 * t.slow)
    assert all(s == 200 for s, _ in switches) and [v for _, v in switches] == [1, 2] * 5, switches
    problems = [r for r in results if r[3]]
    print("    hot swap: %d requests during 10 switches (%s), %d failed"
          % (len(results), ", ".join("%s %d" % (k, sum(1 for r in results if r[0] == k))
                                     for k in ("plain", "explain", "batch")), len(problems)))
    assert not problems, problems[:5]
    assert len(results) >= 40, len(results)
    seen = {r[2] for r in results}
    assert seen <= {1, 2} and seen == {1, 2}, seen
    assert _served_version(a) == 2 and _active_file(sw["data"]) == "v2"


def test_ml_concurrent_activations_stay_consistent(t):
    # Several admins switching versions at the same moment: each switch is
    # accepted (the versions exist), and afterwards the version served is
    # the one NAME/active records, so a restart serves the same version.
    sw = _swap(t)
    srv, a, data = sw["srv"], sw["admin"], sw["data"]
    refused, mismatched = [], []
    for rnd in range(20):
        barrier = threading.Barrier(8)
        res = []

        def switch(i):
            barrier.wait(10 * t.slow)
            s, j = a.call("POST", "/v1/models/churn/activate", {"version": 1 + i % 2})
            res.append((s, j if s != 200 else j["version"]))

        threads = [threading.Thread(target=switch, args=(i,)) for i in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60 * t.slow)
        refused += [r for r in res if r[0] != 200]
        served, recorded = _served_version(a), _active_file(data)
        if recorded != "v%d" % served:
            mismatched.append((rnd, "served v%d" % served, "NAME/active says %s" % recorded))
    assert not refused and not mismatched, ("refused", refused[:3], "served != recorded", mismatched[:3])
    srv.stop()
    srv.start()
    assert "v%d" % _served_version(a) == _active_file(data)


def test_ml_activate_model_trained_while_running(t):
    # A model trained after the server started is served once activated; the
    # models already served keep answering (and counting) meanwhile, with
    # explanations and batches in flight, as the registry grows past its
    # first allocation.
    sw = _swap(t)
    srv, a, data, ref, rows = sw["srv"], sw["admin"], sw["data"], sw["ref"], sw["rows"]
    s, j0 = a.call("GET", "/stats")
    before = j0["models"]["churn"]["predictions"]
    stop = threading.Event()
    lock = threading.Lock()
    ok = [0]
    problems = []

    def worker(w):
        while not stop.is_set():
            try:
                if w < 2:
                    s, j = a.call("POST", "/batch-predict", {"model": "churn", "rows": rows[:1000]})
                    n = 1000
                else:
                    s, j = a.predict("churn", rows[w], explain=True)
                    n = 1
                if s != 200 or j.get("version") not in (1, 2):
                    with lock:
                        problems.append((s, j if s != 200 else j.get("version")))
                else:
                    with lock:
                        ok[0] += n
            except Exception as e:
                with lock:
                    problems.append(repr(e))

    src = os.path.join(data, "models", "churn", "v1")
    names = ["late%02d" % i for i in range(40)]
    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(4)]
    for th in threads:
        th.start()
    try:
        for name in names:
            shutil.copytree(src, os.path.join(data, "models", name, "v1"))
            s, j = a.call("POST", "/v1/models/%s/activate" % name, {"version": 1})
            assert s == 200 and j["name"] == name and j["version"] == 1, (name, s, j)
    finally:
        stop.set()
        for th in threads:
            th.join(60 * t.slow)
    assert not problems, problems[:5]
    s, j = a.call("GET", "/v1/models")
    listed = [m["name"] for m in j["models"]]
    assert set(listed) == set(names) | {"churn"}, listed
    for name in names[::5]:
        jj = a.ok_predict(name, rows[11])
        assert jj["model"] == name and jj["version"] == 1 and _close(jj["score"], ref[1][11]), jj
    s, j = a.call("GET", "/stats")
    got = j["models"]["churn"]["predictions"] - before
    assert got == ok[0], ("predictions answered", ok[0], "counted by /stats", got)
