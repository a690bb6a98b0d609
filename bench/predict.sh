#!/bin/bash
# ML scoring benchmark: ehub's POST /predict (plain and "explain":true) and
# POST /batch-predict next to the reference FastAPI + Uvicorn + XGBoost peer
# (../shared/peers/fastapi_ml), in the same run, on the same machine, with the
# same request bodies: real rows of bank_marketing.csv (without duration and
# the label), rotated by bench/predict.lua.
#
#   bench/predict.sh [seconds] [connections]     (defaults: 10 s, 64)
#
# Steps: `ehub train` the model (timed), start `ehub serve --demo` (its admin
# key authenticates the requests) and the peer, check that both answer a
# score (and that ehub's explanation adds up to its margin), then wrk each
# (one thread, 64 connections, exact percentiles from wrk's done() hook),
# then time a 10,000-row /batch-predict with curl (best and median of 5).
# The peer runs with 1 worker on the server's core and with 2 workers (its
# best on 2 cores; it then shares core 0 with wrk); each figure is compared
# with the peer's best.
#
# CPUs: with 2+ cores the servers get cores 1.., wrk and curl core 0.
# Env: EHUB_BIN (build/ehub), PEER_WORKERS ("1 2"; "none": ehub alone, for
# a quick before/after of two builds), PREDICT_TESTS ("predict explain
# batch": any subset, e.g. "batch" alone), PREDICT_ROWS (1000 distinct
# bodies), EHUB_BENCH_LOG (warn: the peer logs no requests either).
# Needs: wrk (scripts/deps.sh --bench), the peer's Debian packages
# (../shared/peers/deps.sh, and python3-sklearn, which XGBClassifier imports).
# Targets missed print MISSED; the exit status is non-zero only when the
# script itself fails (a server down, a wrong answer).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONNS=${2:-64}
BIN=${EHUB_BIN:-build/ehub}
PEER=../shared/peers/fastapi_ml/run.sh
CSV=../shared/data/leads/bank_marketing.csv
PEER_WORKERS=${PEER_WORKERS:-1 2}
[ "$PEER_WORKERS" = none ] && PEER_WORKERS=""
TESTS=" ${PREDICT_TESTS:-predict explain batch} "
ROWS=${PREDICT_ROWS:-1000}
BATCH=10000
LOGLEVEL=${EHUB_BENCH_LOG:-warn}
UTIL=bench/predict_util.py

die() { echo "predict.sh: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "$BIN not built (make)"
[ -f "$CSV" ] || die "no $CSV"
command -v wrk >/dev/null || scripts/deps.sh --bench
../shared/peers/deps.sh
if ! /usr/bin/python3 -c 'import sklearn' 2>/dev/null; then
  echo "installing python3-sklearn (the peer's XGBClassifier needs it)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-sklearn >/dev/null
fi

tmp=$(mktemp -d /tmp/ehub-predict.XXXXXX)
pids=() # each started in its own session (setsid): killed as a process group
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) * 1000))" "$1"; }

NCPU=$(nproc)
if [ "$NCPU" -ge 2 ]; then
  SRV_CPUS="1-$((NCPU - 1))"
  SRV=(taskset -c "$SRV_CPUS")
  CLI=(taskset -c 0)
  pinning="servers on cores $SRV_CPUS, wrk and curl on core 0"
else
  SRV_CPUS=""
  SRV=()
  CLI=()
  pinning="1 core: nothing pinned"
fi
echo "machine: $NCPU cores, $pinning; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), -t1 -c$CONNS -d${DUR}s; ehub log level $LOGLEVEL"

results=$tmp/results
: >"$results"

# ---- train ----
echo
echo "== ehub train"
t0=$(date +%s.%N)
"$BIN" train --data "$CSV" --label output --positive yes --drop duration --model lead_conv --data-dir "$tmp/data" \
  >"$tmp/train.log" 2>&1 || { cat "$tmp/train.log" >&2; die "ehub train failed"; }
t1=$(date +%s.%N)
sed 's/^/  /' "$tmp/train.log"
train_s=$(python3 -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$t1")
echo "train $train_s" >>"$results"
echo "  train wall clock: $train_s s   (target < 10 s)"

python3 "$UTIL" bodies "$CSV" "$tmp" --label output --drop duration --model lead_conv --rows "$ROWS" --batch "$BATCH"

# ---- servers ----
wait_http() { # pid url logfile what
  local i
  for i in $(seq 600); do
    kill -0 "$1" 2>/dev/null || { cat "$3" >&2; die "$4 exited"; }
    curl -fs -o /dev/null "$2" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$3" >&2
  die "$4 did not answer $2"
}

EPORT=$(free_port)
setsid "${SRV[@]}" "$BIN" serve --data-dir "$tmp/data" --demo --port "$EPORT" --log-level "$LOGLEVEL" \
  >"$tmp/ehub.log" 2>&1 &
EPID=$!
pids+=("$EPID")
EURL=http://127.0.0.1:$EPORT
wait_http "$EPID" "$EURL/health" "$tmp/ehub.log" "ehub serve"
KEY=$(grep -o 'ehk_[0-9a-f]*' "$tmp/ehub.log" | head -1)
[ -n "$KEY" ] || { cat "$tmp/ehub.log" >&2; die "no API key in the demo's log"; }

PEER_PID=""
start_peer() { # workers -> PURL, PEER_PID
  local w=$1 pin=()
  # one worker: the server's core, like ehub; more: every core when there is no spare one
  if [ "$w" -eq 1 ] || [ "$NCPU" -ge 3 ]; then pin=("${SRV[@]}"); fi
  local port
  port=$(free_port)
  mkdir -p "$tmp/peer$w"
  TMPDIR="$tmp/peer$w" setsid "${pin[@]}" "$PEER" --data "$CSV" --label output --positive yes --drop duration \
    --port "$port" --workers "$w" >"$tmp/peer$w.log" 2>&1 &
  PEER_PID=$!
  pids+=("$PEER_PID")
  local i
  for i in $(seq 1800); do # it trains its model first; "ready" comes before Uvicorn listens
    grep -q '^ready' "$tmp/peer$w.log" && break
    kill -0 "$PEER_PID" 2>/dev/null || { cat "$tmp/peer$w.log" >&2; die "the peer exited"; }
    sleep 0.1
  done
  grep -q '^ready' "$tmp/peer$w.log" || die "the peer never printed ready"
  PURL=http://127.0.0.1:$port
  wait_http "$PEER_PID" "$PURL/health" "$tmp/peer$w.log" "the peer"
}
stop_peer() {
  kill -TERM -- "-$PEER_PID" 2>/dev/null || kill -TERM "$PEER_PID" 2>/dev/null || true
  wait "$PEER_PID" 2>/dev/null || true
}

# ---- measurements ----
# CPU accounting around each run, for the server measured (SERVER_PG: its
# process group; SERVER_CPUS: its cores, empty when unpinned): on-CPU and
# run-queue wait of all its threads, busy time per core (/proc/stat).
# On-CPU: from the threads' schedstat (ns) when the same threads live at both
# ends of the run; else from /proc/PID/stat (clock ticks), which keeps the
# time of exited threads. The wait is the live threads' (schedstat).
snap() {
  local s=0 k=0 w=0 a b p t hz tids=""
  hz=$(getconf CLK_TCK)
  for p in $(pgrep -g "$SERVER_PG"); do
    t=$(sed 's/.*) //' /proc/"$p"/stat 2>/dev/null | awk '{print $12 + $13}') || continue
    k=$((k + ${t:-0} * 1000000000 / hz))
    for t in /proc/"$p"/task/*; do
      read -r a b _ <"$t/schedstat" 2>/dev/null || continue
      s=$((s + a))
      w=$((w + b))
      tids="$tids ${t##*/}"
    done
  done
  echo "$s $k $w $(echo "$tids" | cksum | cut -d' ' -f1) $(awk '/^cpu[0-9]/ {printf "%s:%d:%d ", $1, $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)"
}
cpu_report() { # server test before t0 requests
  local out
  out=$(python3 "$UTIL" cpu "$3" "$(snap)" $(($(date +%s%N) - $4)) "$5" "$SERVER_CPUS")
  echo "$out" | head -n -1
  echo "cpu $1 $2 $(echo "$out" | tail -1)" >>"$results"
}

run_wrk() { # server test url bodies key [warmup]
  local out line before t0
  before=$(snap)
  t0=$(date +%s%N)
  out=$("${CLI[@]}" wrk -t1 -c"$CONNS" -d"${6:-$DUR}s" --timeout 10s -s bench/predict.lua "$3/predict" -- "$4" "$5") ||
    die "wrk failed: $out"
  line=$(echo "$out" | grep '^RESULT') || die "no RESULT line from wrk: $out"
  [ -n "${6:-}" ] && return 0
  echo "wrk $1 $2 $line" >>"$results"
  echo "$line" | awk -v s="$1" -v t="$2" '{
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    err = v["status_errors"] + v["connect_errors"] + v["read_errors"] + v["write_errors"] + v["timeouts"]
    printf "  %-14s %-8s %10.0f req/s   p50 %8.3f ms   p99 %8.3f ms   max %8.3f ms   %s\n",
      s, t, v["rps"], v["p50_us"] / 1000, v["p99_us"] / 1000, v["max_us"] / 1000,
      err ? "ERRORS: " err " (non-2xx " v["status_errors"] ", timeouts " v["timeouts"] ")" : "" }'
  cpu_report "$1" "$2" "$before" "$t0" "$(echo "$line" | sed 's/.*requests=\([0-9]*\).*/\1/')"
}

run_batch() { # server url key
  local hdr=(-H 'Content-Type: application/json' -H 'Expect:')
  [ -n "$3" ] && hdr+=(-H "Authorization: Bearer $3")
  local i code t times=() before t0
  for i in 0 1 2 3 4 5; do # run 0 warms up and is checked
    [ "$i" = 1 ] && { before=$(snap); t0=$(date +%s%N); }
    read -r code t < <("${CLI[@]}" curl -s -o "$tmp/batch.out" -w '%{http_code} %{time_total}\n' "${hdr[@]}" \
      --data-binary @"$tmp/batch.json" "$2/batch-predict")
    [ "$code" = 200 ] || die "$1 /batch-predict answered $code: $(head -c 300 "$tmp/batch.out")"
    if [ "$i" = 0 ]; then python3 "$UTIL" batchcheck "$tmp/batch.out" "$BATCH" || die "$1 /batch-predict"
    else times+=("$t"); fi
  done
  echo "batch $1 ${times[*]}" >>"$results"
  python3 -c '
import statistics, sys
t = [float(x) * 1000 for x in sys.argv[2:]]
print("  %-14s batch    %d rows: best %.1f ms, median %.1f ms  (runs: %s)" % (sys.argv[1], '"$BATCH"', min(t),
      statistics.median(t), " ".join("%.1f" % x for x in t)))' "$1" "${times[@]}"
  cpu_report "$1" batch "$before" "$t0" 5
}

bench_server() { # name url key
  echo
  echo "== $1"
  python3 "$UTIL" check "$1" "$2" "$tmp/predict.jsonl" --key "$3" --count 20
  if [ "$1" = ehub ]; then python3 "$UTIL" check "$1" "$2" "$tmp/explain.jsonl" --key "$3" --count 50 --margin
  else python3 "$UTIL" check "$1" "$2" "$tmp/explain.jsonl" --key "$3" --count 50; fi
  run_wrk "$1" warmup "$2" "$tmp/predict.jsonl" "$3" 2
  [[ $TESTS == *" predict "* ]] && run_wrk "$1" predict "$2" "$tmp/predict.jsonl" "$3"
  [[ $TESTS == *" explain "* ]] && run_wrk "$1" explain "$2" "$tmp/explain.jsonl" "$3"
  [[ $TESTS == *" batch "* ]] && run_batch "$1" "$2" "$3"
  return 0
}

SERVER_PG=$EPID SERVER_CPUS=$SRV_CPUS
bench_server ehub "$EURL" "$KEY"
# The peers get the same Authorization header (they ignore it): same bytes on the wire.
for w in $PEER_WORKERS; do
  start_peer "$w"
  name="peer-${w}worker"
  SERVER_PG=$PEER_PID SERVER_CPUS=$SRV_CPUS
  if [ "$w" -eq 1 ] || [ "$NCPU" -ge 3 ]; then echo; echo "(peer: $w worker(s) on cores ${SRV_CPUS:-all})"
  else
    SERVER_CPUS=""
    echo; echo "(peer: $w workers, unpinned: they share core 0 with wrk)"
  fi
  bench_server "$name" "$PURL" "$KEY"
  stop_peer
done

python3 "$UTIL" summary "$results"
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure)"
