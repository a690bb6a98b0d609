#!/usr/bin/env python3
"""Pipeline report timing: GET /v1/reports/pipeline over N leads (default
100,000) with about 2.6 activities each, on SQLite or PostgreSQL, next to
what the dashboard did before it (every page of GET /v1/leads).

    bench/reports_bench.py [--leads N] [--store postgres://...] [--binary build/ehub]

The leads and activities are written straight into the store (seeded
random data over 360 days: 6 sources, 10 agents and unassigned leads,
first outbound touch from seconds to days after creation or never, some
appointments), then the server is started on it and each report is asked
for 7 times (the first, cold, is reported apart). Standard library only
(PostgreSQL is filled with psql's COPY)."""
import argparse
import io
import json
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import http.client

DAY = 86400000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cli(binary, store, data, *args):
    r = subprocess.run([binary] + list(args) + ["--store", store, "--data-dir", data], capture_output=True, text=True)
    if r.returncode:
        sys.exit("ehub %s: %s" % (" ".join(args), r.stderr))
    return json.loads(r.stdout.strip().splitlines()[-1])


def generate(n, tenant, agents, now):
    rnd = random.Random(7)
    sources = ["zillow", "realtor.com", "web", "referral", "facebook", "open_house"]
    stages = ["new", "contacted", "qualified", "showing", "appointment", "offer"]
    leads, acts = [], []
    t0 = now - 360 * DAY
    for i in range(n):
        c = t0 + rnd.randrange(360 * DAY)
        st = rnd.choices(["open", "won", "lost", "abandoned"], [70, 10, 15, 5])[0]
        ag = rnd.choice(agents + [None])
        leads.append((i + 1, tenant, rnd.choice(sources), rnd.choice(stages), st, ag, c))
        acts.append((i + 1, "sms", "inbound", c + rnd.randrange(1, 600000)))
        if rnd.random() < 0.85:
            d = int(rnd.lognormvariate(12.5, 2.0))  # median ~4.5 min, a long tail into days
            acts.append((i + 1, rnd.choice(["sms", "email", "call"]), "outbound", c + d))
            acts.append((i + 1, "sms", "outbound", c + d + rnd.randrange(DAY)))
        if rnd.random() < 0.1:
            acts.append((i + 1, "appointment", "none", c + 3 * DAY))
    return leads, acts


def fill_sqlite(path, leads, acts, tenant):
    db = sqlite3.connect(path)
    off = db.execute("SELECT COALESCE(MAX(id), 0) FROM leads").fetchone()[0]
    db.executemany("INSERT INTO leads (id, tenant_id, source, stage, status, agent_id, created_at, updated_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [(l[0] + off,) + l[1:] + (l[6],) for l in leads])
    db.executemany("INSERT INTO activities (tenant_id, lead_id, channel, direction, occurred_at, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?)", [(tenant, a[0] + off, a[1], a[2], a[3], a[3]) for a in acts])
    db.commit()
    db.execute("ANALYZE")
    db.close()


def fill_pg(url, leads, acts, tenant):
    def copy(table, cols, rows):
        buf = io.StringIO()
        for r in rows:
            buf.write("\t".join("\\N" if v is None else str(v) for v in r) + "\n")
        r = subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                            "SELECT set_config('ehub.tenant_id', '%d', false)" % tenant, "-c",
                            "COPY %s (%s) FROM STDIN" % (table, cols)], input=buf.getvalue(), text=True,
                           capture_output=True)
        if r.returncode:
            sys.exit("psql: " + r.stderr)
    off = int(subprocess.run(["psql", url, "-X", "-At", "-c", "SELECT set_config('ehub.tenant_id', '0', false)",
                              "-c", "SELECT COALESCE(MAX(id), 0) FROM leads"], capture_output=True, text=True)
              .stdout.split()[-1])
    copy("leads", "id, tenant_id, source, stage, status, agent_id, created_at, updated_at",
         [(l[0] + off,) + l[1:] + (l[6],) for l in leads])
    copy("activities", "tenant_id, lead_id, channel, direction, occurred_at, created_at",
         [(tenant, a[0] + off, a[1], a[2], a[3], a[3]) for a in acts])
    subprocess.run(["psql", url, "-X", "-q", "-c", "SELECT setval(pg_get_serial_sequence('leads', 'id'), "
                    "(SELECT MAX(id) FROM leads))", "-c", "ANALYZE leads", "-c", "ANALYZE activities"],
                   capture_output=True)


def get(port, path, key):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    t = time.perf_counter()
    c.request("GET", path, headers={"Authorization": "Bearer " + key})
    r = c.getresponse()
    body = r.read()
    ms = (time.perf_counter() - t) * 1000
    c.close()
    if r.status != 200:
        sys.exit("%s: %d %s" % (path, r.status, body[:300]))
    return ms, json.loads(body)


def cpu_ms(pid):
    """utime + stime of a process, in ms (what the machine's load does not move much)."""
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--leads", type=int, default=100000)
    ap.add_argument("--store", default="")
    ap.add_argument("--binary", default="build/ehub")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the data directory (printed) for a look with sqlite3")
    o = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ehub-reports-bench.")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    store = o.store or "sqlite:" + os.path.join(data, "ehub.db")
    backend = "postgres" if o.store else "sqlite"
    proc = None
    try:
        cli(o.binary, store, data, "migrate")
        slug = "bench-%d" % os.getpid()
        tenant = cli(o.binary, store, data, "tenant", "add", slug, "Bench")["id"]
        key = cli(o.binary, store, data, "key", "create", "admin", "bench", "--tenant", slug)["key"]
        port = free_port()
        proc = subprocess.Popen([o.binary, "serve", "--port", str(port), "--store", store, "--data-dir", data,
                                 "--log-level", "warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        agents = []
        for i in range(10):
            c = http.client.HTTPConnection("127.0.0.1", port)
            c.request("POST", "/v1/agents", json.dumps({"name": "Agent %d" % i}),
                      {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
            agents.append(json.loads(c.getresponse().read())["id"])
        now = int(time.time() * 1000)
        t = time.time()
        leads, acts = generate(o.leads, tenant, agents, now)
        (fill_pg if o.store else fill_sqlite)(o.store or os.path.join(data, "ehub.db"), leads, acts, tenant)
        print("%s: %d leads, %d activities written in %.1f s" % (backend, len(leads), len(acts), time.time() - t))
        cases = [("366 days (every lead)", "/v1/reports/pipeline?from=%d&to=%d" % (now - 365 * DAY, now + DAY)),
                 ("default 30 days", "/v1/reports/pipeline"),
                 ("366 days, one agent", "/v1/reports/pipeline?from=%d&to=%d&agent_id=%d" % (now - 365 * DAY, now + DAY, agents[3])),
                 ("366 days, one source", "/v1/reports/pipeline?from=%d&to=%d&source=web" % (now - 365 * DAY, now + DAY))]
        for name, path in cases:
            times = []
            for i in range(o.runs):
                if i == 1:
                    c0 = cpu_ms(proc.pid)
                ms, j = get(port, path, key)
                times.append(ms)
            cpu = (cpu_ms(proc.pid) - c0) / (o.runs - 1)
            print("  %-24s leads %6d  cold %7.1f ms  warm median %7.1f ms  min %7.1f ms  ehub CPU %6.1f ms%s" % (
                name, j["leads"], times[0], statistics.median(times[1:]), min(times[1:]), cpu,
                " (the query runs in PostgreSQL)" if o.store else ""))
        # what the pipeline page did before: every page of the lead list
        t = time.perf_counter()
        cursor, rows, size = None, 0, 0
        while True:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            c.request("GET", "/v1/leads?limit=500" + ("&cursor=" + cursor if cursor else ""),
                      headers={"Authorization": "Bearer " + key})
            b = c.getresponse().read()
            size += len(b)
            j = json.loads(b)
            rows += len(j["items"])
            cursor = j.get("next_cursor")
            if not cursor:
                break
        print("  before: GET /v1/leads, every page: %d leads, %.1f MB, %.0f ms" % (
            rows, size / 1e6, (time.perf_counter() - t) * 1000))
        _, j = get(port, cases[0][1], key)
        print("  report size %.1f KB" % (len(json.dumps(j)) / 1e3))
    finally:
        if proc:
            proc.terminate()
            proc.wait()
        if o.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
