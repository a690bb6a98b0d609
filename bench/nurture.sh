#!/bin/bash
# Nurture throughput and speed to lead, against nginx answering as Twilio
# (201 + a message sid) and SendGrid (202), on SQLite.
#
#   bench/nurture.sh [leads]          (default 100000)
#   EHUB_BIN=/tmp/oldb/ehub bench/nurture.sh   another binary (no build)
#
# 1. Throughput: LEADS leads imported by CSV into a tenant whose 3-step
#    sequence (sms, email, sms) starts on new leads; prints sends/s from
#    the first to the last message recorded, and how long the queue took
#    to drain.
# 2. Speed to lead: 200 leads created one by one through the API (5 ms
#    apart) with the queue empty; prints p50/p99 of lead created -> first
#    message accepted by the provider (the activity's time).
# Targets (issue 7): >= 2,000 sends/s on SQLite, speed to lead p99 < 1 s.
set -eu
cd "$(dirname "$0")/.."
LEADS=${1:-100000}
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
command -v nginx >/dev/null || scripts/deps.sh --bench
BIN=${EHUB_BIN:-build/ehub}
[ -n "${EHUB_BIN:-}" ] || make -s build/ehub
tmp=$(mktemp -d /tmp/ehub-nurture.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

NPORT=$(free_port)
mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<NGX
worker_processes 1;
daemon off;
error_log $tmp/nginx/logs/error.log warn;
pid $tmp/nginx/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NPORT;
    location ~ /Messages.json\$ { default_type application/json; return 201 '{"sid":"SM\$request_id","status":"queued"}'; }
    location = /v3/mail/send { add_header X-Message-Id \$request_id always; return 202; }
  }
}
NGX
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
pids+=($!)

EPORT=$(free_port)
"$BIN" serve --port "$EPORT" --data-dir "$tmp/data" --log-level warn --twilio-url "http://127.0.0.1:$NPORT" \
  --sendgrid-url "http://127.0.0.1:$NPORT" 2>"$tmp/ehub.log" &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$EPORT/ready" >/dev/null 2>&1 && break; sleep 0.1; done

"$BIN" tenant add bench Bench --data-dir "$tmp/data" >/dev/null
KEY=$("$BIN" key create admin bench --tenant bench --data-dir "$tmp/data" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["key"])')

"$PY" - "$EPORT" "$KEY" "$LEADS" "$tmp/data/ehub.db" <<'PY'
import http.client, json, sqlite3, sys, time
port, key, n, db = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
H = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}

def call(method, path, body=None, ctype="application/json"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    c.request(method, path, data, dict(H, **{"Content-Type": ctype}))
    r = c.getresponse()
    out = r.read()
    c.close()
    assert r.status < 300, (method, path, r.status, out[:300])
    return json.loads(out) if out else None

call("PATCH", "/v1/nurture/settings", {"twilio_account_sid": "AC" + "1" * 32, "twilio_auth_token": "tok",
     "twilio_from": "+14155550000", "sendgrid_api_key": "SG.k", "sendgrid_from": "team@example.com",
     "quiet_start": "00:00", "quiet_end": "00:00", "daily_cap": 10})
call("POST", "/v1/templates", {"name": "s", "channel": "sms", "body": "Hi {{first_name}}, {{agent.name|we}} here. Reply STOP to opt out"})
call("POST", "/v1/templates", {"name": "e", "channel": "email", "subject": "Homes for {{first_name}}", "body": "<p>Hi {{first_name}}</p>"})
seq = call("POST", "/v1/sequences", {"name": "three", "start_on": "new_lead", "steps": [
    {"type": "sms", "template": "s"}, {"type": "email", "template": "e"}, {"type": "sms", "template": "s"}]})

def sent_count(con):
    return con.execute("SELECT COUNT(*) FROM activities WHERE direction = 'outbound' AND provider_message_id IS NOT NULL").fetchone()[0]

con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30)
phone = lambda i, area: "+1%d%03d%04d" % (area, 200 + (i // 10000) % 800, i % 10000)
rows = "".join("L%d,%s,l%d@example.com,yes,yes\n" % (i, phone(i, 415), i) for i in range(n))
t0 = time.time()
res = call("POST", "/v1/leads/import", ("first_name,phone,email,consent_sms,consent_email\n" + rows).encode(), "text/csv")
assert res["imported"] == n, res
t_import = time.time() - t0
want = 3 * n
while True:
    done = con.execute("SELECT COUNT(*) FROM nurture_jobs WHERE state IN ('done', 'failed', 'skipped')").fetchone()[0]
    if done >= want or time.time() - t0 > 1800:
        break
    time.sleep(0.5)
t_drain = time.time() - t0
first, last, sent = con.execute("SELECT MIN(created_at), MAX(created_at), COUNT(*) FROM activities "
                                "WHERE direction = 'outbound' AND provider_message_id IS NOT NULL").fetchone()
failed = con.execute("SELECT COUNT(*) FROM nurture_jobs WHERE state = 'failed'").fetchone()[0]
rate = sent / max(0.001, (last - first) / 1000.0)
print("throughput: %d leads imported in %.1f s (%.0f/s); %d messages sent, %d failed; queue drained %.1f s after the import began"
      % (n, t_import, n / t_import, sent, failed, t_drain))
print("  sends/s (first to last message)  %.0f" % rate)

# speed to lead, queue empty
ids = []
for i in range(200):
    ids.append(call("POST", "/v1/leads", {"first_name": "S%d" % i, "phone": phone(i, 628),
                                          "consent_sms": True})["id"])
    time.sleep(0.005)
time.sleep(2)
lat = []
for lid in ids:
    r = con.execute("SELECT MIN(a.created_at) - l.created_at FROM activities a JOIN leads l ON l.id = a.lead_id "
                    "WHERE a.lead_id = ? AND a.direction = 'outbound' AND a.provider_message_id IS NOT NULL", (lid,)).fetchone()
    if r[0] is not None:
        lat.append(r[0])
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
print("speed to lead: %d/200 leads texted; lead created -> provider accepted the first text: p50 %d ms, p99 %d ms, max %d ms"
      % (len(lat), p(0.5), p(0.99), lat[-1] if lat else -1))
ok = rate >= 2000 and lat and p(0.99) < 1000
print("target (SQLite): >= 2000 sends/s and speed-to-lead p99 < 1 s: %s" % ("MET" if ok else "MISSED"))
PY
