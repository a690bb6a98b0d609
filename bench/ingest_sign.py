#!/usr/bin/python3
"""Helper for bench/ingest.sh (Debian's python3 with python3-cryptography).

  ingest_sign.py keygen PRIVATE.pem                 new Ed25519 key; prints the public key (PEM)
  ingest_sign.py sign PRIVATE.pem OUT COUNT RUN [FIRST]
                                                    COUNT distinct signed ContactCreate webhooks, numbered
                                                    from FIRST (default 0), one per line:
                                                    "<base64 Ed25519 sig>\\t<json body>"
  ingest_sign.py verify ...                         after a run: is every acknowledged webhook stored?
  ingest_sign.py cpu PID...                         CPU seconds (user+sys) of PIDs and their descendants
  ingest_sign.py metrics FILE                       summary of a /metrics scrape (store + webhook route)

Webhook i of run RUN has webhookId "wh-RUN-i", contact id "c-RUN-i" (i in base 62, see _b62), e-mail "lead.i.RUN@example.com"
and phone +1 415 NXX XXXX (distinct for i < 8,000,000), so every one creates its own lead, and the
200 answer (which echoes webhook_id) tells which one was acknowledged."""
import base64
import datetime
import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

LOCATION = "bench_loc_0001"


def keygen(path):
    k = ed25519.Ed25519PrivateKey.generate()
    with open(path, "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    print(k.public_key().public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode(), end="")


_key = None


def _init(path):
    global _key
    with open(path, "rb") as f:
        _key = serialization.load_pem_private_key(f.read(), password=None)


_B62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _b62(i):
    """i in base 62: the contact id, the body's last field, so the last two
    characters before '"}' vary over 3,844 values. wrk's LuaJIT hashes a long
    string from four 4-byte samples only (its start, a quarter, the middle and
    its end); bodies differing elsewhere all share one hash chain, and interning
    200,000 of them, and sweeping that chain in one GC step, stalled wrk for
    tens of milliseconds, reported as ehub's latency."""
    s = ""
    while True:
        i, r = divmod(i, 62)
        s = _B62[r] + s
        if not i:
            return s


def _unb62(s):
    n = 0
    for ch in s:
        n = n * 62 + _B62.index(ch)
    return n


def _chunk(args):
    run, lo, hi, ts = args
    out = []
    for i in range(lo, hi):
        body = json.dumps({
            "type": "ContactCreate", "locationId": LOCATION, "webhookId": "wh-%s-%d" % (run, i),
            "timestamp": ts, "firstName": "Ana", "lastName": "Bench%d" % i,
            "email": "lead.%d.%s@example.com" % (i, run),
            "phone": "+1415%03d%04d" % (200 + i // 10000, i % 10000), "source": "zillow",
            "tags": ["buyer", "bench"], "timezone": "America/Los_Angeles", "dateAdded": ts,
            "dndSettings": {"SMS": {"status": "inactive"}, "Email": {"status": "inactive"}},
            "customFields": [{"id": "budget", "value": "450000"}],
            "id": "c-%s-%s" % (run, _b62(i)),
        }, separators=(",", ":")).encode()
        out.append(base64.b64encode(_key.sign(body)) + b"\t" + body + b"\n")
    return b"".join(out)


def sign(keyfile, outfile, count, run, first=0):
    if first + count > 8_000_000:
        sys.exit("sign: at most 8,000,000 distinct phone numbers")
    now = datetime.datetime.now(datetime.timezone.utc)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)
    step = 5000
    jobs = [(run, lo, min(lo + step, first + count), ts) for lo in range(first, first + count, step)]
    t0 = time.time()
    with multiprocessing.Pool(os.cpu_count() or 2, initializer=_init, initargs=(keyfile,)) as pool, \
            open(outfile, "wb") as f:
        for part in pool.imap(_chunk, jobs):
            f.write(part)
    print("  signed %d webhooks (timestamp %s) in %.1f s" % (count, ts, time.time() - t0))


# ---------------------------------------------------------------- verification

def _store_rows(store, sql):
    """First column of every row of a read-only query, straight from the store."""
    if store.startswith("sqlite:"):
        c = sqlite3.connect("file:%s?mode=ro" % store[len("sqlite:"):], uri=True, timeout=30)
        try:
            return [r[0] for r in c.execute(sql)]
        finally:
            c.close()
    # Row-level security keys on ehub.tenant_id; 0 is the admin scope that sees every tenant.
    env = dict(os.environ, PGOPTIONS="-c ehub.tenant_id=0")
    r = subprocess.run(["psql", store, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True, timeout=300, env=env)
    if r.returncode:
        sys.exit("verify: psql failed: " + r.stderr)
    return [line for line in r.stdout.split("\n") if line != ""]


def _api_leads(base, key):
    """Every live lead of the tenant through GET /v1/leads (keyset pagination)."""
    seen, cursor, pages = [], None, 0
    while True:
        url = base + "/v1/leads?limit=500" + ("&cursor=" + cursor if cursor else "")
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + key})
        with urllib.request.urlopen(req, timeout=60) as r:
            j = json.loads(r.read())
        pages += 1
        seen.extend(x.get("ghl_contact_id") for x in j["items"])
        cursor = j.get("next_cursor")
        if not cursor or not j["items"]:
            return seen, pages


def verify(store, tenant_id, run, acked_file, base, key):
    tenant_id = int(tenant_id)
    with open(acked_file) as f:
        acked = [int(x) for x in f.read().split()]
    acked_set = set(acked)
    out = {"acked": len(acked), "acked_unique": len(acked_set)}
    prefix = "c-%s-" % run
    leads = _store_rows(store, "SELECT ghl_contact_id FROM leads WHERE tenant_id = %d AND deleted_at IS NULL"
                        % tenant_id)
    inbox = _store_rows(store, "SELECT webhook_id FROM webhook_inbox WHERE tenant_id = %d" % tenant_id)
    stored = {_unb62(c[len(prefix):]) for c in leads if c and c.startswith(prefix)}
    in_inbox = {int(w[len("wh-%s-" % run):]) for w in inbox if w.startswith("wh-%s-" % run)}
    out["leads"] = len(leads)
    out["leads_distinct"] = len(stored)
    out["inbox"] = len(inbox)
    out["acked_missing_lead"] = len(acked_set - stored)
    out["acked_missing_inbox"] = len(acked_set - in_inbox)
    # stored but never acknowledged to wrk: the server committed and answered after wrk stopped
    # reading (requests in flight when the run ended)
    out["stored_not_acked"] = len(stored - acked_set)
    t0 = time.time()
    api, pages = _api_leads(base, key)
    api_set = {_unb62(c[len(prefix):]) for c in api if c and c.startswith(prefix)}
    out["api_leads"] = len(api)
    out["api_pages"] = pages
    out["api_seconds"] = round(time.time() - t0, 1)
    out["acked_missing_api"] = len(acked_set - api_set)
    out["ok"] = (len(acked) == len(acked_set) and not out["acked_missing_lead"] and not out["acked_missing_inbox"]
                 and not out["acked_missing_api"] and len(leads) == len(stored) == len(inbox) == len(api))
    print(json.dumps(out))


# ---------------------------------------------------------------- profiling aids

def cpu(pids):
    """utime+stime of the pids and of every live descendant, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    kids = {}
    stats = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        ppid = int(fields[1])
        kids.setdefault(ppid, []).append(int(d))
        stats[int(d)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo, seen = 0.0, [int(p) for p in pids], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += stats.get(p, 0.0)
        todo.extend(kids.get(p, []))
    print("%.2f" % total)


def metrics(path):
    """Mean and bucket-estimated p50/p99 of the store statement histogram, the writes per SQLite group
    commit and the webhook route."""
    hists = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name_labels, value = line.rsplit(" ", 1)
            if "{" in name_labels:
                name, labels = name_labels.split("{", 1)
                labels = labels.rstrip("}")
            else:
                name, labels = name_labels, ""
            for fam, want in (("ehub_store_query_duration_seconds", ""),
                              ("ehub_store_group_commit_writes", ""),
                              ("ehub_http_request_duration_seconds", 'route="/v1/webhooks/ghl/{tenant}"')):
                if not name.startswith(fam) or (want and want not in labels):
                    continue
                h = hists.setdefault(fam, {"buckets": []})
                if name.endswith("_bucket"):
                    le = labels.split('le="')[1].split('"')[0]
                    h["buckets"].append((float("inf") if le == "+Inf" else float(le), float(value)))
                elif name.endswith("_sum"):
                    h["sum"] = float(value)
                elif name.endswith("_count"):
                    h["count"] = float(value)
    for fam, label in (("ehub_store_query_duration_seconds", "store statements"),
                       ("ehub_store_group_commit_writes", "group commits (writes each)"),
                       ("ehub_http_request_duration_seconds", "webhook route (server side)")):
        h = hists.get(fam)
        if not h or not h.get("count"):
            continue
        n = h["count"]
        if fam == "ehub_store_group_commit_writes":
            # a count, not seconds; the first bucket is 1 (a write alone)
            b = sorted(h["buckets"])
            alone = b[0][1] if b else 0

            def qn(p):
                for le, c in b:
                    if c >= p * n:
                        return "<=%g" % le if le != float("inf") else ">max bucket"
                return "?"
            print("  %-30s n=%-9d mean %.1f   p50 %s   p99 %s   alone %.0f%%" % (
                label, n, h["sum"] / n, qn(0.5), qn(0.99), 100.0 * alone / n))
            continue

        def q(p):
            for le, c in sorted(h["buckets"]):
                if c >= p * n:
                    return "<=%gms" % (le * 1000) if le != float("inf") else ">max bucket"
            return "?"
        print("  %-30s n=%-9d mean %.3f ms   p50 %s   p99 %s" % (label, n, h["sum"] / n * 1000, q(0.5), q(0.99)))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    a = sys.argv[2:]
    if cmd == "keygen" and len(a) == 1:
        keygen(a[0])
    elif cmd == "sign" and len(a) in (4, 5):
        sign(a[0], a[1], int(a[2]), a[3], int(a[4]) if len(a) == 5 else 0)
    elif cmd == "verify" and len(a) == 6:
        verify(*a)
    elif cmd == "cpu" and a:
        cpu(a)
    elif cmd == "metrics" and len(a) == 1:
        metrics(a[0])
    else:
        sys.exit(__doc__)
