#!/usr/bin/python3
"""Instructions per nurture enrolment and per sent step, under callgrind
(deterministic: the same count for the same binary and inputs whatever else
the machine is doing).

  bench/nurture_callgrind.py BINARY [--n1 50] [--n2 250] [--idle 20]

nginx answers as Twilio (201 + a message sid), as in bench/nurture.sh. For
K = 0, 1 and 2 SMS steps in a sequence that starts on new leads, BINARY runs
under `valgrind --tool=callgrind` on a fresh SQLite store twice: once
importing n1 leads by CSV, once n2, each run waiting until the K x n steps
are done. (total(n2) - total(n1)) / (n2 - n1) is the cost of one lead with K
steps, start-up and set-up cancelling out; per step = cost(2) - cost(1), per
enrolment = cost(1) - cost(0) - per step (the enrolment row, the first job
row and their share of the import transaction).

The dispatcher claims due steps every 100 ms whatever the load, so two idle
runs (0 and --idle seconds) give that background rate in instructions per
second, subtracted as rate x duration of each run's import-and-drain phase.
Needs valgrind and nginx."""
import argparse
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

from callgrind_util import free_port, serve, tenant_with_key, total


def nginx(tmp):
    port = free_port()
    d = os.path.join(tmp, "nginx")
    os.makedirs(os.path.join(d, "logs"))
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write("""worker_processes 1;
daemon off;
error_log %(d)s/logs/error.log warn;
pid %(d)s/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:%(p)d;
    location ~ /Messages.json$ { default_type application/json; return 201 '{"sid":"SM$request_id","status":"queued"}'; }
  }
}
""" % {"d": d, "p": port})
    return subprocess.Popen(["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port


def run(binary, n, steps, idle=0.0):
    tmp = tempfile.mkdtemp(prefix="ehub-ncg-")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    ng, nport = nginx(tmp)
    key = tenant_with_key(binary, data)
    out = os.path.join(tmp, "callgrind.out")
    srv, port = serve(binary, data, out, ["--twilio-url", "http://127.0.0.1:%d" % nport])
    H = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}

    def call(method, path, body, ctype="application/json"):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        c.request(method, path, body if isinstance(body, bytes) else json.dumps(body).encode(),
                  dict(H, **{"Content-Type": ctype}))
        r = c.getresponse()
        b = r.read()
        c.close()
        assert r.status < 300, (method, path, r.status, b[:300])
        return json.loads(b) if b else None

    try:
        call("PATCH", "/v1/nurture/settings", {"twilio_account_sid": "AC" + "1" * 32, "twilio_auth_token": "tok",
             "twilio_from": "+14155550000", "quiet_start": "00:00", "quiet_end": "00:00", "daily_cap": 10})
        call("POST", "/v1/templates", {"name": "s", "channel": "sms", "body": "Hi {{first_name}}. Reply STOP to opt out"})
        if steps:
            call("POST", "/v1/sequences", {"name": "k", "start_on": "new_lead",
                                           "steps": [{"type": "sms", "template": "s"}] * steps})
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(data, "ehub.db"), uri=True, timeout=30)
        t0 = time.time()
        time.sleep(idle)
        if n:
            rows = "".join("L%d,+1415%03d%04d,yes\n" % (i, 200 + i // 10000, i % 10000) for i in range(n))
            res = call("POST", "/v1/leads/import", ("first_name,phone,consent_sms\n" + rows).encode(), "text/csv")
            assert res["imported"] == n, res
        want = steps * n
        while True:
            done = con.execute("SELECT COUNT(*) FROM nurture_jobs WHERE state = 'done'").fetchone()[0]
            bad = con.execute("SELECT COUNT(*) FROM nurture_jobs WHERE state IN ('failed', 'skipped')").fetchone()[0]
            if bad:
                sys.exit("%d steps failed or skipped" % bad)
            if done >= want:
                break
            if time.time() - t0 > 1800:
                sys.exit("only %d of %d steps done" % (done, want))
            time.sleep(0.2)
        dur = time.time() - t0
        con.close()
    finally:
        srv.terminate()
        srv.wait(300)
        ng.terminate()
        ng.wait(30)
    n_total = total(out)
    shutil.rmtree(tmp, ignore_errors=True)
    return n_total, dur


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--n1", type=int, default=50)
    ap.add_argument("--n2", type=int, default=250)
    ap.add_argument("--idle", type=float, default=20.0, help="seconds of the long idle run (0: no correction)")
    a = ap.parse_args()
    rate = 0.0
    if a.idle > 0:
        i0, d0 = run(a.binary, 0, 1)
        i1, d1 = run(a.binary, 0, 1, idle=a.idle)
        rate = (i1 - i0) / (d1 - d0)
    per = {}
    raw = {}
    for k in (0, 1, 2):
        t1, d1 = run(a.binary, a.n1, k)
        t2, d2 = run(a.binary, a.n2, k)
        raw[k] = round((t2 - t1) / (a.n2 - a.n1))
        per[k] = ((t2 - rate * d2) - (t1 - rate * d1)) / (a.n2 - a.n1)
    step = per[2] - per[1]
    print(json.dumps({"binary": a.binary, "n1": a.n1, "n2": a.n2, "background_per_second": round(rate),
                      "per_lead_raw": raw, "per_lead_corrected": {k: round(v) for k, v in per.items()},
                      "per_step": round(step), "per_enrolment": round(per[1] - per[0] - step)}))


if __name__ == "__main__":
    main()
