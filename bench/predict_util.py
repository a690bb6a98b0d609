#!/usr/bin/env python3
"""Helpers of bench/predict.sh (standard library only).

  bodies CSV OUTDIR --label L --drop C,... --model NAME --rows N --batch M
      Real rows of CSV, without the label and the dropped columns, as request
      bodies: OUTDIR/predict.jsonl and OUTDIR/explain.jsonl (N rows, one
      {"model","features"[,"explain":true]} a line, the same rows in both) and
      OUTDIR/batch.json ({"model","rows":[...]} with M rows). Columns whose
      every value is a number are sent as JSON numbers, the others as strings.
  check NAME URL BODIES [--key K] [--count N] [--margin]
      POSTs the first N bodies to URL/predict; each must answer 200 with a
      score in [0,1] (and an explanation when the body asks for one). With
      --margin (ehub), base + sum(contributions) must equal the margin.
  batchcheck FILE ROWS
      FILE is a /batch-predict answer: it must hold ROWS scores in [0,1].
  cpu BEFORE AFTER ELAPSED_NS REQUESTS SERVER_CPUS
      BEFORE/AFTER: snapshots of the server's processes and of /proc/stat
      around a run (predict.sh's snap()).
      Prints the server's CPU time per request, the time its threads were
      runnable but not running, and how busy the cores were (other work on
      the machine shows as busy time the server did not use); the last line
      is "cpu_us_per_req=.. wait_ms=.." for the results file.
  summary RESULTS
      The table of figures and targets, from the lines predict.sh collected.
"""
import csv, json, math, random, statistics, sys, urllib.request, urllib.error


def cmd_bodies(a):
    opts = dict(zip(a[2::2], a[3::2]))
    src, out = a[0], a[1]
    label, drop = opts["--label"], set(filter(None, opts.get("--drop", "").split(",")))
    model, nrows, nbatch = opts["--model"], int(opts["--rows"]), int(opts["--batch"])
    with open(src, newline="") as f:
        sample = f.read(65536)
        f.seek(0)
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        rows = list(csv.DictReader(f, dialect=dialect))
    cols = [c for c in rows[0] if c != label and c not in drop]

    def num(v):
        try:
            float(v)
            return True
        except ValueError:
            return False

    numeric = {c for c in cols if all(num(r[c]) for r in rows if r[c] != "")}

    def feats(r):
        o = {}
        for c in cols:
            v = r[c]
            if c in numeric and v != "":
                d = float(v)
                o[c] = int(d) if d.is_integer() and abs(d) < 2**53 else d
            else:
                o[c] = v if v != "" else None
        return o

    rng = random.Random(20261123)
    pick = rng.sample(range(len(rows)), min(nrows, len(rows)))
    with open(out + "/predict.jsonl", "w") as p, open(out + "/explain.jsonl", "w") as e:
        for i in pick:
            f_ = feats(rows[i])
            p.write(json.dumps({"model": model, "features": f_}, separators=(",", ":")) + "\n")
            e.write(json.dumps({"model": model, "features": f_, "explain": True}, separators=(",", ":")) + "\n")
    bpick = rng.sample(range(len(rows)), min(nbatch, len(rows)))
    with open(out + "/batch.json", "w") as b:
        json.dump({"model": model, "rows": [feats(rows[i]) for i in bpick]}, b, separators=(",", ":"))
    print("bodies: %d rows of %s (%d columns: %d numeric, %d categorical), batch of %d rows (%d bytes)" % (
        len(pick), src.rsplit("/", 1)[-1], len(cols), len(numeric), len(cols) - len(numeric), len(bpick),
        len(open(out + "/batch.json", "rb").read())))


def post(url, body, key):
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = "Bearer " + key
    req = urllib.request.Request(url, data=body.encode(), headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def cmd_check(a):
    name, url, path = a[0], a[1], a[2]
    key = a[a.index("--key") + 1] if "--key" in a else ""
    count = int(a[a.index("--count") + 1]) if "--count" in a else 20
    want_margin = "--margin" in a
    bodies = [l for l in open(path) if l.strip()][:count]
    worst, worst_peer, scores = 0.0, 0.0, []
    for b in bodies:
        st, raw = post(url + "/predict", b, key)
        if st != 200:
            sys.exit("check %s: POST /predict answered %d: %s" % (name, st, raw[:300].decode("utf-8", "replace")))
        o = json.loads(raw)
        s = o.get("score")
        if not isinstance(s, (int, float)) or not 0 <= s <= 1:
            sys.exit("check %s: no score in [0,1]: %s" % (name, raw[:300]))
        scores.append(s)
        if not json.loads(b).get("explain"):
            continue
        ex = o.get("explanation")
        if not isinstance(ex, dict) or "base" not in ex or not isinstance(ex.get("contributions"), dict):
            sys.exit("check %s: explain asked, no explanation {base, contributions}: %s" % (name, raw[:300]))
        total = ex["base"] + sum(ex["contributions"].values())
        if want_margin:
            if "margin" not in o:
                sys.exit("check %s: no margin in %s" % (name, raw[:300]))
            worst = max(worst, abs(total - o["margin"]))
        else:  # the peer has no margin: compare with logit(score) (information only)
            if 0 < s < 1:
                worst_peer = max(worst_peer, abs(total - math.log(s / (1 - s))))
    msg = "check %s: %d bodies -> 200 with a score (mean %.4f)" % (name, len(bodies), statistics.mean(scores))
    if want_margin:
        msg += "; base + sum(contributions) - margin: max |diff| %.2e" % worst
        if worst > 1e-3:
            print(msg)
            sys.exit("check %s: the explanation does not add up to the margin" % name)
    elif worst_peer:
        msg += "; base + sum(contributions) - logit(score): max |diff| %.2e" % worst_peer
    print(msg)


def cmd_batchcheck(a):
    o = json.load(open(a[0]))
    n = int(a[1])
    s = o.get("scores") if isinstance(o, dict) else None
    if not isinstance(s, list) or len(s) != n or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in s):
        sys.exit("batch answer does not hold %d scores in [0,1]: %s" % (n, json.dumps(o)[:300]))


def cmd_cpu(a):
    b, e, el, reqs, cpus = a[0].split(), a[1].split(), int(a[2]), max(int(float(a[3])), 1), a[4]
    # fields: schedstat on-CPU ns, /proc/PID/stat on-CPU ns, run-queue wait ns, thread-set checksum, cpuN:busy:idle...
    same = b[3] == e[3]
    on = int(e[0]) - int(b[0]) if same else int(e[1]) - int(b[1])
    wait = max(int(e[2]) - int(b[2]), 0)
    cb = {x.split(":")[0]: (int(x.split(":")[1]), int(x.split(":")[2])) for x in b[4:]}
    ce = {x.split(":")[0]: (int(x.split(":")[1]), int(x.split(":")[2])) for x in e[4:]}
    want = set()
    for part in filter(None, cpus.split(",")):
        lo, _, hi = part.partition("-")
        want.update(range(int(lo), int(hi or lo) + 1))
    busy = []
    for k in sorted(ce, key=lambda k: int(k[3:])):
        db, di = ce[k][0] - cb[k][0], ce[k][1] - cb[k][1]
        busy.append("%s %.0f%%" % (k, 100.0 * db / max(db + di, 1)))
    srv = "%.0f%% of %d core(s)" % (100.0 * on / el / max(len(want), 1), len(want)) if want else "%.0f%% of a core" % (
        100.0 * on / el)
    print("    server on-CPU %.1f us/request (%s); runnable, not running %.0f ms; cores busy: %s" % (
        on / 1000.0 / reqs, srv, wait / 1e6, ", ".join(busy)))
    print("cpu_us_per_req=%.2f wait_ms=%.0f" % (on / 1000.0 / reqs, wait / 1e6))


def cmd_summary(a):
    """RESULTS lines: 'train SECONDS', 'wrk SERVER TEST RESULT k=v ...', 'batch SERVER t1 t2 ...'."""
    train, wrk, batch, cpu = None, {}, {}, {}
    for line in open(a[0]):
        f = line.split()
        if not f:
            continue
        if f[0] == "train":
            train = float(f[1])
        elif f[0] == "wrk":
            wrk[(f[1], f[2])] = {k: float(v) for k, v in (x.split("=") for x in f[4:])}
        elif f[0] == "cpu":
            cpu[(f[1], f[2])] = {k: float(v) for k, v in (x.split("=") for x in f[3:])}
        elif f[0] == "batch":
            batch[f[1]] = [float(x) for x in f[2:]]
    ok = lambda c: "ok" if c else "MISSED"
    servers = sorted({s for s, _ in wrk} | set(batch), key=lambda s: (s != "ehub", s))
    peers = [s for s in servers if s != "ehub"]
    print("\n================ summary ================")
    if train is not None:
        print("ehub train (wall clock)           %8.2f s                      target < 10 s: %s" % (train, ok(train < 10)))
    for test, title in (("predict", "POST /predict"), ("explain", 'POST /predict "explain":true')):
        print("\n%s" % title)
        print("  %-26s %11s %10s %10s %10s %12s %10s" % ("server", "req/s", "p50 ms", "p99 ms", "errors",
                                                          "CPU us/req", "waited ms"))
        for s in servers:
            r = wrk.get((s, test))
            if not r:
                continue
            err = int(r["status_errors"] + r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"])
            c = cpu.get((s, test), {})
            print("  %-26s %11.0f %10.3f %10.3f %10s %12s %10s" % (
                s, r["rps"], r["p50_us"] / 1000, r["p99_us"] / 1000, err if err else "-",
                "%.1f" % c["cpu_us_per_req"] if c else "?", "%.0f" % c["wait_ms"] if c else "?"))
        e = wrk.get(("ehub", test))
        best = max((wrk[(p, test)] for p in peers if (p, test) in wrk), key=lambda r: r["rps"], default=None)
        bname = next((p for p in peers if wrk.get((p, test)) is best), None)
        if e and best:
            ratio = e["rps"] / best["rps"]
            line = "  ratio ehub/peer req/s: %.1fx (vs %s)" % (ratio, bname)
            line += "; p99 peer/ehub: %.1fx" % (best["p99_us"] / e["p99_us"])
            if test == "explain":
                line += "        target >= 200x: %s" % ok(ratio >= 200)
            print(line)
        if e and test == "predict":
            print("  ehub: %.0f req/s  target >= 40,000: %s;  p99 %.3f ms  target < 2 ms: %s" % (
                e["rps"], ok(e["rps"] >= 40000), e["p99_us"] / 1000, ok(e["p99_us"] < 2000)))
    print("  (CPU us/req: the server's processes' CPU time per request, kernel included; 'waited': time its\n"
          "   threads were runnable but not running, i.e. other work on its core, or its own threads queued)")
    if batch:
        print("\nPOST /batch-predict, 10,000 rows (curl time_total)")
        print("  %-26s %10s %10s %12s   %s" % ("server", "best ms", "median ms", "CPU ms/req", "runs ms"))
        for s in servers:
            t = batch.get(s)
            if t:
                c = cpu.get((s, "batch"))
                print("  %-26s %10.1f %10.1f %12s   %s" % (s, min(t) * 1000, statistics.median(t) * 1000,
                                                          "%.1f" % (c["cpu_us_per_req"] / 1000) if c else "?",
                                                          " ".join("%.1f" % (x * 1000) for x in t)))
        e = batch.get("ehub")
        if e:
            print("  ehub target < 50 ms: best %s, median %s" % (ok(min(e) < 0.05), ok(statistics.median(e) < 0.05)))
            pb = [statistics.median(batch[p]) for p in peers if p in batch]
            if pb:
                print("  ratio peer/ehub median time: %.1fx (vs the fastest peer)" % (min(pb) / statistics.median(e)))


if __name__ == "__main__":
    cmds = {"bodies": cmd_bodies, "check": cmd_check, "batchcheck": cmd_batchcheck, "cpu": cmd_cpu,
            "summary": cmd_summary}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](sys.argv[2:])
