#!/usr/bin/python3
"""Instructions per ingested webhook, under callgrind (deterministic: the same
count for the same binary and inputs whatever else the machine is doing).

  bench/ingest_callgrind.py BINARY [--n1 200] [--n2 1200] [--conns 1] [-- EXTRA SERVE ARGS...]

Runs BINARY twice under `valgrind --tool=callgrind` on a fresh SQLite store:
once posting n1 signed GoHighLevel ContactCreate webhooks, once n2 (one
keep-alive connection, one after another, so each is its own transaction;
--conns N: N keep-alive connections at once, so SQLite's group commits hold
several webhooks, as under load),
and prints the difference of the two totals divided by n2 - n1: start-up,
set-up and shutdown cancel out. Everything the process does while the
webhooks arrive counts, all threads included (the scoring, the event log,
the audit checkpoints if they are on).

Some work does not depend on the webhooks but on the clock (the nurture
dispatcher claims due steps every 100 ms, the realtime sweep every second),
and a run under callgrind lasts as long as the machine's load makes it. So
two idle runs (no webhook; 0 and --idle seconds) give that background rate
in instructions per second, and "corrected" subtracts rate x duration of the
webhook phase from each total before the difference.
Needs valgrind and python3-cryptography.
"""
import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from callgrind_util import serve, tenant_with_key, total

HERE = os.path.dirname(os.path.abspath(__file__))
SIGN = os.path.join(HERE, "ingest_sign.py")


def post_all(port, slug, lines, conns):
    """Posts every signed line over conns keep-alive connections at once; returns how many were accepted."""
    ok = [0]
    lock = threading.Lock()

    def worker(part):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        for line in part:
            sig, body = line.rstrip("\n").split("\t", 1)
            c.request("POST", "/v1/webhooks/ghl/" + slug, body.encode(),
                      {"Content-Type": "application/json", "x-ghl-signature": sig})
            r = c.getresponse()
            b = r.read()
            if r.status == 200 and b'"accepted"' in b:
                with lock:
                    ok[0] += 1
        c.close()

    th = [threading.Thread(target=worker, args=(lines[i::conns],)) for i in range(conns)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    return ok[0]


def run(binary, n, extra, keep, idle=0.0, conns=1):
    tmp = tempfile.mkdtemp(prefix="ehub-cg-")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    slug = "cg"
    key = tenant_with_key(binary, data, slug)
    priv = os.path.join(tmp, "k.pem")
    pub = subprocess.run([sys.executable, SIGN, "keygen", priv], capture_output=True, text=True, check=True).stdout
    out = os.path.join(tmp, "callgrind.out")
    srv, port = serve(binary, data, out, extra)
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("PATCH", "/v1/settings", json.dumps({"ghl_ed25519_public_key": pub}),
                  {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
        signed = os.path.join(tmp, "signed.txt")
        if n:
            subprocess.run([sys.executable, SIGN, "sign", priv, signed, str(n), "1"], check=True,
                           stdout=subprocess.DEVNULL)
        else:
            open(signed, "w").close()
        t0 = time.time()
        time.sleep(idle)
        with open(signed) as f:
            lines = f.readlines()
        ok = post_all(port, slug, lines, conns)
        if ok != n:
            sys.exit("only %d of %d webhooks accepted" % (ok, n))
        dur = time.time() - t0
        c.close()
    finally:
        srv.terminate()
        srv.wait(300)
    n_total = total(out)
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return n_total, dur


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--n1", type=int, default=200)
    ap.add_argument("--n2", type=int, default=1200)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of the long idle run (0: no correction)")
    ap.add_argument("--conns", type=int, default=1, help="connections posting at once")
    ap.add_argument("extra", nargs="*")
    a, unknown = ap.parse_known_args()
    a.extra = [x for x in unknown if x != "--"] + a.extra
    rate = 0.0
    if a.idle > 0:
        i0, d0 = run(a.binary, 0, a.extra, a.keep)
        i1, d1 = run(a.binary, 0, a.extra, a.keep, idle=a.idle)
        rate = (i1 - i0) / (d1 - d0)
    t1, d1 = run(a.binary, a.n1, a.extra, a.keep, conns=a.conns)
    t2, d2 = run(a.binary, a.n2, a.extra, a.keep, conns=a.conns)
    per = (t2 - t1) / (a.n2 - a.n1)
    cor = ((t2 - rate * d2) - (t1 - rate * d1)) / (a.n2 - a.n1)
    print(json.dumps({"binary": a.binary, "extra": a.extra, "conns": a.conns, "n1": a.n1, "total1": t1, "seconds1": round(d1, 1),
                      "n2": a.n2, "total2": t2, "seconds2": round(d2, 1),
                      "background_per_second": round(rate), "instructions_per_webhook": round(per),
                      "corrected_per_webhook": round(cor)}))


if __name__ == "__main__":
    main()
