#!/bin/bash
# HTTP benchmark: wrk on loopback against ehub's GET /health and JSON POST
# echo, next to nginx serving a static 200, in the same run. The server gets
# core 1 and wrk core 0 (2-core machine), so neither steals the other's CPU.
#
#   bench/http.sh [seconds] [connections]     (defaults: 10 s, 256)
# Needs: wrk, nginx-light (scripts/deps.sh --bench), build/ehub.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONNS=${2:-256}
BIN=${EHUB_BIN:-build/ehub}
command -v wrk >/dev/null && command -v nginx >/dev/null || scripts/deps.sh --bench
tmp=$(mktemp -d /tmp/ehub-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# nginx: one worker, no access log, a fixed JSON 200 like /health's size.
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
    location / { default_type application/json; return 200 '{"status":"healthy","service":"nginx"}'; }
  }
}
NGX
taskset -c 1 nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
pids+=($!)

EPORT=$(free_port)
taskset -c 1 "$BIN" serve --port "$EPORT" --data-dir "$tmp/data" --test-routes --log-level "${EHUB_BENCH_LOG:-warn}" \
  2>"$tmp/ehub.log" &
pids+=($!)
for i in $(seq 50); do
  curl -fs "http://127.0.0.1:$EPORT/health" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$NPORT/" >/dev/null 2>&1 && break
  sleep 0.1
done

cat >"$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"type":"ContactCreate","locationId":"ve9EPM428h8vShlRW1KT","id":"nmFmQEsNgz6AVpgLVUJ0","firstName":"Ana","lastName":"Silva","email":"ana.silva@example.com","phone":"+19165550123","tags":["buyer","zillow"],"source":"zillow","dateAdded":"2026-11-23T09:00:00.000Z","customFields":[{"id":"budget","value":"450000"}]}'
LUA

run() { # name url [script]
  local out
  if [ -n "${3:-}" ]; then out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -s "$3" "$2")
  else out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$2"); fi
  local rps p50 p99 errs
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
  printf '%-28s %10s req/s   p50 %-9s p99 %-9s %s\n' "$1" "$rps" "$p50" "$p99" "$errs" >&2
  echo "$rps $p99"
}

echo "wrk -t1 -c$CONNS -d${DUR}s, server on core 1, wrk on core 0" >&2
n=$(run "nginx static 200" "http://127.0.0.1:$NPORT/")
e=$(run "ehub GET /health" "http://127.0.0.1:$EPORT/health")
p=$(run "ehub POST /debug/echo (332B)" "http://127.0.0.1:$EPORT/debug/echo" "$tmp/post.lua")
python3 - $n $e $p "$CONNS" <<'PY'
import sys
def ms(v):  # wrk prints 506.00us, 1.42ms, 1.02s
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    raise SystemExit("http.sh: cannot read wrk's p99 %r" % v)
n, n99, e, e99, p, p99, conns = sys.argv[1:]
n, e, p = float(n), float(e), float(p)
print("ratio ehub/nginx GET /health: %.2f   (target >= 0.80: %s)" % (e / n, "MET" if e / n >= 0.8 else "MISSED"))
print("ehub GET /health p99 %.2f ms at %s connections, nginx %.2f ms   (target < 2 ms: %s)"
      % (ms(e99), conns, ms(n99), "MET" if ms(e99) < 2 else "MISSED"))
print("ehub JSON POST echo: %.0f req/s (%.2f of nginx static), p99 %.2f ms" % (p, p / n, ms(p99)))
PY
