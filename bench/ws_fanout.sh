#!/bin/bash
# WebSocket fan-out: N subscribers (default 1,000 and 10,000) on ehub's
# /ws/realtime (topic "system", broadcasts through POST /v1/broadcast, so
# each one is committed to the event log first) and on the FastAPI peer
# (/work/shared/peers/fastapi_ws: POST /broadcast, in memory only), in the
# same run. By default servers and load tool share every CPU (see SERVER_CPUS).
# Prints the tool's JSON line per run and the ehub/peer ratios.
#
#   bench/ws_fanout.sh [N ...]
# Environment:
#   EHUB_BIN      the ehub binary (default build/ehub), e.g. an older build to compare
#   ROUNDS        broadcasts sent one at a time for the latency figures (default 100,
#                 so p99 is not just the slowest one)
#   SERVER_CPUS   taskset list for the servers (default: every CPU, shared with the tool,
#                 so ehub's fan-out writer threads (--ws-writers) and the peer's event
#                 loop use what a real node would); "1" pins the server to one core, where
#                 ehub starts no writer thread (the layout of the figures before session 7)
#   TOOL_CPUS     taskset list for the load tool (default: every CPU; "0" with SERVER_CPUS=1
#                 keeps them apart)
#   TOOL_THREADS  the tool's reader threads (default: as many as TOOL_CPUS lists), so a
#                 tool given two cores reads with both, for ehub and the peer alike
#   SKIP_PEER=1   skip the FastAPI peer (before/after runs of ehub alone)
#   EHUB_ARGS     extra `ehub serve` options
# Needs: build/ehub, build/tools/ws_fanout (make bench-ws builds both).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${EHUB_BIN:-build/ehub}
TOOL=${WS_FANOUT:-build/tools/ws_fanout}
PEER=${PEER_DIR:-/work/shared/peers/fastapi_ws}
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 10000)
ROUNDS=${ROUNDS:-100}
ALL=0-$(($(nproc) - 1))
SCPU=${SERVER_CPUS:-$ALL}
TCPU=${TOOL_CPUS:-$ALL}
TTHREADS=${TOOL_THREADS:-$(taskset -c "$TCPU" nproc)}
echo "servers on CPUs $SCPU, load tool on CPUs $TCPU ($TTHREADS reader threads), $ROUNDS rounds, $("$BIN" version 2>/dev/null | head -1) ($BIN)"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d /tmp/ehub-wsbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# ehub: a tenant and an admin key made with the CLI, then the server.
"$BIN" tenant add bench "Bench" --data-dir "$tmp/data" >/dev/null
KEY=$("$BIN" key create admin bench --tenant bench --data-dir "$tmp/data" | sed -E 's/.*"key":"([^"]+)".*/\1/')
EPORT=$(free_port)
# shellcheck disable=SC2086
taskset -c "$SCPU" "$BIN" serve --port "$EPORT" --data-dir "$tmp/data" --log-level warn --max-connections 30000 ${EHUB_ARGS:-} &
pids+=($!); EPID=$!
wait_port "$EPORT"

if [ "${SKIP_PEER:-0}" != 1 ]; then
  PPORT=$(free_port)
  taskset -c "$SCPU" "$PEER/run.sh" --port "$PPORT" >/dev/null &
  pids+=($!)
  wait_port "$PPORT"
  PPID_=$(pgrep -f "serve.py --port $PPORT" | head -1)
fi

BODY='{"topic":"system","type":"bench","data":{"note":"a broadcast of about a hundred bytes of payload, like a dashboard notice"}}'
for n in "${SIZES[@]}"; do
  curl -s "http://127.0.0.1:$EPORT/metrics" >"$tmp/m0" || true
  e=$(taskset -c "$TCPU" "$TOOL" --port "$EPORT" -n "$n" --path "/ws/realtime?token=$KEY" \
      --subscribe '{"type":"subscribe","topics":["system"]}' --setup 2 \
      --post /v1/broadcast --auth "$KEY" --body "$BODY" --pid "$EPID" --rounds "$ROUNDS" --threads "$TTHREADS")
  echo "ehub  $e"
  # who wrote this run's fan-out passes, and how long a pass took (the
  # server's side of the latency; a binary without these metrics prints nothing)
  curl -s "http://127.0.0.1:$EPORT/metrics" >"$tmp/m1" || true
  python3 - "$tmp/m0" "$tmp/m1" <<'PY' || true
import re, sys
def read(path):
    try:
        t = open(path).read()
    except OSError:
        return {}
    return {k: float(v) for k, v in re.findall(r"^(ehub_ws_fanout_\w+\{\w+=\"\w+\"\}) (\S+)", t, re.M)}
a, b = read(sys.argv[1]), read(sys.argv[2])
d = lambda k: b.get(k, 0) - a.get(k, 0)
parts = []
for m in ("parallel", "loop"):
    n = d('ehub_ws_fanout_pass_seconds_count{mode="%s"}' % m)
    if n:
        parts.append("%s %d passes, mean %.1f ms" % (m, n, 1e3 * d('ehub_ws_fanout_pass_seconds_sum{mode="%s"}' % m) / n))
h, l = d('ehub_ws_fanout_writes_total{thread="helper"}'), d('ehub_ws_fanout_writes_total{thread="loop"}')
if h or l:
    parts.append("connections written by the helpers %.0f, by the loop %.0f" % (h, l))
if parts:
    print("ehub  fan-out: " + "; ".join(parts))
PY
  [ "${SKIP_PEER:-0}" != 1 ] || continue
  p=$(taskset -c "$TCPU" "$TOOL" --port "$PPORT" -n "$n" --post /broadcast --body "$BODY" --pid "$PPID_" --rounds "$ROUNDS" --threads "$TTHREADS")
  echo "peer  $p"
  python3 - "$e" "$p" <<'PY'
import json, sys
e, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("ratio n=%d: last-subscriber p50 %.1fx faster, p99 %.1fx faster, events/s %.1fx, RSS/conn %.2fx" % (
    e["subscribers"], p["last_p50_ms"] / e["last_p50_ms"], p["last_p99_ms"] / e["last_p99_ms"],
    e["events_per_s"] / p["events_per_s"], e["rss_per_conn_kb"] / p["rss_per_conn_kb"] if p["rss_per_conn_kb"] > 0 else float("nan")))
PY
done
