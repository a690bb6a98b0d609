#!/bin/bash
# Durable webhook ingest benchmark: signed GoHighLevel ContactCreate webhooks
# posted by wrk to POST /v1/webhooks/ghl/{tenant}, on SQLite and on
# PostgreSQL in the same run.
#
#   bench/ingest.sh [seconds] [connections] [webhooks]   (defaults: 12 s, 64, 200000)
#   EHUB_BENCH_BACKENDS="sqlite postgres"   which backends (default both)
#   EHUB_BENCH_LOG=warn                     ehub --log-level during the run
#   EHUB_BENCH_KEEP=1                       keep the temporary directory (printed)
#   EHUB_BENCH_SERVER_CPUS=1 EHUB_BENCH_WRK_CPUS=0   taskset CPU lists (ehub and PostgreSQL; wrk)
#   EHUB_BENCH_LAYOUTS="paced pinned unpinned"   which SQLite runs, in that order, each on a
#                 fresh store (default: paced pinned):
#       paced     ehub and wrk on the CPU lists above, wrk sending EHUB_BENCH_RATE webhooks/s
#                 on a schedule (bench/ingest.lua, "Paced"): the target's load, >= 5,000/s,
#                 and its latency. First by default: right after a saturation run (a gigabyte
#                 written) it was sometimes slower (see README, GoHighLevel webhooks)
#       pinned    the same CPUs, wrk sending as fast as answers come back (saturation: the
#                 most webhooks/s ehub takes on one core)
#       unpinned  ehub and wrk both free to use every CPU, as a real deployment's ehub
#                 would be, at saturation
#   EHUB_BENCH_RATE=6000                    the paced run's rate (default 6000: 20 % above the target)
#   EHUB_BENCH_ARRIVALS=poisson             the paced run's spacing: poisson (random gaps, the
#                                           default) or even (one every 1/rate s)
#
# For each backend: a fresh store (SQLite in a temporary data dir; PostgreSQL
# from scripts/services.sh), a tenant whose webhook public key is a freshly
# generated Ed25519 key (PATCH /v1/settings ghl_ed25519_public_key), then
# `webhooks` distinct ContactCreate bodies (own webhookId, contact id, e-mail,
# phone; timestamp = signing time) are signed just before the run and wrk
# posts them round-robin (bench/ingest.lua, one thread, wrk on core 0; ehub --
# and PostgreSQL -- on core 1). After the run ehub is SIGKILLed, restarted on
# the same store, and the run is checked: every webhook acknowledged with 200
# "accepted" must have its lead (store and GET /v1/leads) and its inbox row.
#
# Prints per backend (and per layout for SQLite): durable webhooks/s (acknowledged / wrk's run time), wrk's
# latency percentiles (wrk 4 adds samples of its own to its histogram for
# every answer slower than twice the mean time between a connection's
# requests: its stats_correct; a stall shows larger there than on the wire),
# the same requests' latencies on the wire (tcpdump
# on lo, bench/wire_latency.py: from the request's first packet to the
# answer's, without wrk's own time -- it runs ingest.lua for every response on
# the same 2 cores, and its stats_correct: together 1-8 ms on its p99), status counts and socket
# errors (paced: also each request's latency from its slot in the schedule);
# then the target: >= 5,000 durable webhooks/s on SQLite with p99 < 10 ms and
# no errors at 64 connections (MET or MISSED), per SQLite run: at saturation
# judged on wrk's p99 and on the wire's, paced on the p99 from the slots.
# The paced run is the target as written (that load, that latency); at
# saturation 64 requests are always in flight, so the mean latency is 64 /
# throughput (Little's law) and the p99 says how far past the target ehub
# goes before queueing alone costs 10 ms. (EHUB_BENCH_WIRE=0: no capture; it
# needs root and tcpdump, and costs a few % of the run's CPU). Exit status: 0 whether or not the target is met; 1 if
# the benchmark itself could not run; 3 if an acknowledged webhook was not
# stored (durability broken).
# Needs: wrk and tcpdump (scripts/deps.sh --bench), PostgreSQL (scripts/deps.sh), python3-cryptography.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-12}
CONNS=${2:-64}
COUNT=${3:-200000}
BACKENDS=${EHUB_BENCH_BACKENDS:-sqlite postgres}
BIN=${EHUB_BIN:-build/ehub}
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
HELPER=bench/ingest_sign.py
TARGET_RATE=5000
PACE=${EHUB_BENCH_RATE:-6000}
ARRIVALS=${EHUB_BENCH_ARRIVALS:-poisson}
[[ "$PACE" =~ ^[1-9][0-9]*$ ]] || { echo "ingest: EHUB_BENCH_RATE must be a whole number of webhooks/s" >&2; exit 1; }
case "$ARRIVALS" in poisson|even) ;; *) echo "ingest: EHUB_BENCH_ARRIVALS is poisson or even" >&2; exit 1 ;; esac
TARGET_P99_MS=10
SLUG=ingest-bench

{ command -v wrk && command -v tcpdump; } >/dev/null || scripts/deps.sh --bench
"$PY" -c 'import cryptography' 2>/dev/null || scripts/deps.sh
if [ -z "${EHUB_BIN:-}" ]; then
  # Others may be editing src/: a failed build falls back to the last good binary, loudly.
  if ! make -s build/ehub >/tmp/ehub-ingest-make.$$ 2>&1; then
    cat /tmp/ehub-ingest-make.$$ >&2
    [ -x "$BIN" ] || { rm -f /tmp/ehub-ingest-make.$$; echo "ingest: build failed" >&2; exit 1; }
    echo "ingest: WARNING: build failed; benchmarking the existing $BIN" >&2
  fi
  rm -f /tmp/ehub-ingest-make.$$
fi
[ -x "$BIN" ] || { echo "ingest: $BIN not found" >&2; exit 1; }
CPUS=$(nproc)
SRV_CPU=${EHUB_BENCH_SERVER_CPUS:-1}; WRK_CPU=${EHUB_BENCH_WRK_CPUS:-0}
[ "$CPUS" -ge 2 ] || { SRV_CPU=0; WRK_CPU=0; echo "ingest: one CPU only: server and wrk share it" >&2; }

tmp=$(mktemp -d /tmp/ehub-ingest.XXXXXX)
srv_pid=""
cap_pid=""
services_dir=""
cleanup() {
  local rc=$?
  if [ -n "$cap_pid" ]; then kill "$cap_pid" 2>/dev/null || true; fi
  if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true; fi
  if [ -n "$services_dir" ]; then scripts/services.sh stop "$services_dir" || true; fi
  if [ -n "${EHUB_BENCH_KEEP:-}" ]; then echo "ingest: kept $tmp" >&2; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
jfield() { "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])[sys.argv[1]])' "$1"; }

# start_server STORE DATA_DIR LOG: sets srv_pid and PORT, waits for /ready.
start_server() {
  PORT=$(free_port)
  taskset -c "$SRV_CPU" "$BIN" serve --port "$PORT" --store "$1" --data-dir "$2" \
    --log-level "${EHUB_BENCH_LOG:-warn}" 2>>"$3" &
  srv_pid=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && return 0
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "ingest: ehub did not become ready:" >&2; tail -20 "$3" >&2
  exit 1
}

# wire_start DIR: starts tcpdump on lo for the server's port (its pid on
# stdout, nothing if it cannot capture: not root, no tcpdump) and waits until
# it listens. wrk's latencies include its own time: it runs ingest.lua for
# every response on the same 2 cores (see bench/wire_latency.py).
wire_start() {
  command -v tcpdump >/dev/null || return 0
  tcpdump -i lo -n -s 96 -B 262144 -w "$1/wire.pcap" "tcp port $PORT" >/dev/null 2>"$1/tcpdump.err" &
  local pid=$!
  for _ in $(seq 50); do
    grep -q "listening on" "$1/tcpdump.err" 2>/dev/null && { echo "$pid"; return 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  echo "ingest: no wire timings: $(head -c 200 "$1/tcpdump.err")" >&2
}

stop_server() { # SIGNAL
  kill -"$1" "$srv_pid" 2>/dev/null || true
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=""
}

# Prints the figures of one backend and appends "name rate p50 p99 errors ok acked wire_p50
# wire_p99 slot_p99" to $tmp/summary ("-" for what was not measured).
bench_backend() { # name store [rate: paced]
  local name=$1 store=$2 dir=$tmp/$1 r rate=${3:-} k=1
  # a layout listed twice gets a fresh store the second time
  while [ -e "$dir" ]; do k=$((k + 1)); dir=$tmp/$1.$k; store=${2/\/$1\//\/$1.$k\/}; done
  mkdir -p "$dir/data"
  local log=$dir/ehub.log
  echo "== $name ($store)"
  "$BIN" migrate --store "$store" --data-dir "$dir/data" >/dev/null 2>>"$log"
  local tenant key
  tenant=$("$BIN" tenant add "$SLUG" "Ingest benchmark" --store "$store" --data-dir "$dir/data" 2>>"$log" | jfield id)
  key=$("$BIN" key create admin bench --tenant "$SLUG" --store "$store" --data-dir "$dir/data" 2>>"$log" | jfield key)
  start_server "$store" "$dir/data" "$log"
  local base=http://127.0.0.1:$PORT

  "$PY" "$HELPER" keygen "$dir/ed25519.pem" >"$dir/ed25519.pub"
  "$PY" - "$dir/ed25519.pub" >"$dir/settings.json" <<'PY'
import json, sys
print(json.dumps({"ghl_ed25519_public_key": open(sys.argv[1]).read()}))
PY
  r=$(curl -s -o "$dir/settings.out" -w '%{http_code}' -X PATCH "$base/v1/settings" \
        -H "Authorization: Bearer $key" -H 'Content-Type: application/json' --data-binary @"$dir/settings.json")
  if [ "$r" != 200 ] || ! grep -q '"ghl_ed25519_public_key": *"custom"' "$dir/settings.out"; then
    echo "ingest: PATCH /v1/settings answered $r: $(cat "$dir/settings.out")" >&2; exit 1
  fi

  # Sign right before the run: the timestamps must stay within ehub's 5-minute window.
  local run
  run=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
  "$PY" "$HELPER" sign "$dir/ed25519.pem" "$dir/bodies" "$COUNT" "$run"
  # One signed webhook through curl first: a wrong key or body shows here, not as 60k 401s.
  local probe
  probe=$(tail -n1 "$dir/bodies")
  r=$(curl -s -o "$dir/probe.out" -w '%{http_code}' -X POST "$base/v1/webhooks/ghl/$SLUG" \
        -H 'Content-Type: application/json' -H "x-ghl-signature: ${probe%%$'\t'*}" \
        --data-binary "${probe#*$'\t'}")
  [ "$r" = 200 ] || { echo "ingest: probe webhook answered $r: $(cat "$dir/probe.out")" >&2; exit 1; }
  head -n $((COUNT - 1)) "$dir/bodies" >"$dir/bodies.run"   # the probe's webhook is not resent
  [ -n "${EHUB_BENCH_KEEP:-}" ] || rm -f "$dir/bodies"
  # The run starts on a quiet disk. The bodies just written (~200 MB) would
  # otherwise be written back 30 s later (vm.dirty_expire_centisecs), in the
  # middle of the next layout's run: its fdatasyncs then stalled 25-35 ms and
  # its p99 rose from 4-5 to 6-9 ms.
  sync

  local cpu0 cpu1 pg_pids="" pgcpu0=0 pgcpu1=0
  if [ "$name" = postgres ]; then
    pg_pids=$(head -n1 "$services_dir/pg/data/postmaster.pid")
    pgcpu0=$("$PY" "$HELPER" cpu "$pg_pids")
  fi
  cpu0=$("$PY" "$HELPER" cpu "$srv_pid")
  cap_pid=""
  if [ "${EHUB_BENCH_WIRE:-1}" = 1 ]; then cap_pid=$(wire_start "$dir"); fi
  INGEST_BODIES=$dir/bodies.run INGEST_ACKED=$dir/acked INGEST_RESULT=$dir/result INGEST_RATE=$rate INGEST_ARRIVALS=$ARRIVALS \
    taskset -c "$WRK_CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" --timeout 10s -s bench/ingest.lua \
    "$base/v1/webhooks/ghl/$SLUG" >"$dir/wrk.out" 2>&1 \
    || { echo "ingest: wrk failed:" >&2; cat "$dir/wrk.out" >&2; exit 1; }
  cpu1=$("$PY" "$HELPER" cpu "$srv_pid")
  echo '{}' >"$dir/wire.json"
  if [ -n "$cap_pid" ]; then
    kill -INT "$cap_pid" 2>/dev/null
    while kill -0 "$cap_pid" 2>/dev/null; do sleep 0.1; done   # not our child: started in $(wire_start)
    "$PY" bench/wire_latency.py "$dir/wire.pcap" "$PORT" >"$dir/wire.json" || echo '{}' >"$dir/wire.json"
    if [ -n "${EHUB_BENCH_KEEP:-}" ]; then echo "$PORT" >"$dir/wire.port"; else rm -f "$dir/wire.pcap"; fi
    cap_pid=""
  fi
  echo $((COUNT - 1)) >>"$dir/acked"   # the probe's webhook: acknowledged too
  [ -n "${EHUB_BENCH_KEEP:-}" ] || rm -f "$dir/bodies.run"
  [ -n "$pg_pids" ] && pgcpu1=$("$PY" "$HELPER" cpu "$pg_pids")
  [ -s "$dir/result" ] || { echo "ingest: wrk wrote no result:" >&2; cat "$dir/wrk.out" >&2; exit 1; }
  curl -fs "$base/metrics" >"$dir/metrics" || true

  # Durability: kill ehub without warning, restart it on the same store, then check.
  stop_server KILL
  start_server "$store" "$dir/data" "$log"
  local v
  v=$("$PY" "$HELPER" verify "$store" "$tenant" "$run" "$dir/acked" "http://127.0.0.1:$PORT" "$key")
  echo "$v" >"$dir/verify.json"
  stop_server TERM

  "$PY" - "$name" "$dir/result" "$dir/verify.json" "$cpu0" "$cpu1" "$pgcpu0" "$pgcpu1" \
    "$tmp/summary" "$dir/wire.json" <<'PY'
import json, sys
name, rf, vf = sys.argv[1:4]
cpu0, cpu1, pg0, pg1 = map(float, sys.argv[4:8])
summary = sys.argv[8]
w = json.load(open(sys.argv[9]))
r = {}
samples = []
for line in open(rf):
    k, _, v = line.rstrip("\n").partition(" ")
    if k == "sample": samples.append(v)
    else: r[k] = v
v = json.load(open(vf))
secs = int(r["duration_us"]) / 1e6
acked = int(r["acked"])
rate = acked / secs
p = lambda k: int(float(r[k])) / 1000.0
sock = sum(int(r[k]) for k in ("err_connect", "err_read", "err_write", "err_timeout"))
errors = int(r["non2xx"]) + sock
out = sys.stdout
print("  durable webhooks/s %.0f   (%d acknowledged in %.2f s; %d responses)" % (rate, acked, secs, int(r["responses"])), file=out)
print("  latency p50 %.2f ms   p90 %.2f ms   p99 %.2f ms   p99.9 %.2f ms   max %.2f ms   mean %.2f ms" % (
    p("lat_p50_us"), p("lat_p90_us"), p("lat_p99_us"), p("lat_p99_9_us"), p("lat_max_us"), float(r["lat_mean_us"]) / 1000), file=out)
if w.get("n"):
    print("  on the wire   p50 %.2f ms   p90 %.2f ms   p99 %.2f ms   p99.9 %.2f ms   max %.2f ms   (%d requests;"
          " tcpdump on lo, wrk's own time left out)" % (w["p50_ms"], w["p90_ms"], w["p99_ms"], w["p999_ms"], w["max_ms"],
                                                        w["n"]), file=out)
if r.get("co_n"):
    print("  from each request's slot   p50 %.2f ms   p90 %.2f ms   p99 %.2f ms   p99.9 %.2f ms   max %.2f ms   (paced at %s/s,"
          " %s arrivals, %s slots before wrk stopped, %s of them unanswered and counted until the stop;"
          " a request that could not go out on time is timed from when it should have)" % (
              p("co_p50_us"), p("co_p90_us"), p("co_p99_us"), p("co_p99_9_us"), p("co_max_us"), r["co_rate"],
              r["co_arrivals"], r.get("co_slots", "?"), r.get("co_unanswered", "?")), file=out)
print("  statuses %s   non-2xx %s   socket errors connect %s read %s write %s timeout %s   duplicates %s" % (
    r["statuses"], r["non2xx"], r["err_connect"], r["err_read"], r["err_write"], r["err_timeout"], r["duplicates"]), file=out)
for s in samples: print("    e.g. " + s, file=out)
if int(r["wraps"]):
    print("  WARNING: the signed webhooks ran out %s time(s): repeats answered 'duplicate' and the rate is"
          " understated; pass a larger count" % r["wraps"], file=out)
cpu = cpu1 - cpu0
print("  CPU: ehub %.2f s (%.0f%% of a core, %.0f us per webhook)" % (cpu, cpu / secs * 100, cpu / max(acked, 1) * 1e6)
      + ("; postgres %.2f s (%.0f%% of a core, %.0f us per webhook)" % (pg1 - pg0, (pg1 - pg0) / secs * 100, (pg1 - pg0) / max(acked, 1) * 1e6) if pg1 else ""), file=out)
ok = v["ok"]
print("  durability: %d acknowledged, %d leads in the store (%d via GET /v1/leads, %d pages), %d inbox rows;"
      " acknowledged without a lead: %d, without an inbox row: %d, missing from the API: %d;"
      " stored but not acknowledged (in flight when wrk stopped): %d  -> %s" % (
          v["acked"], v["leads"], v["api_leads"], v["api_pages"], v["inbox"], v["acked_missing_lead"],
          v["acked_missing_inbox"], v["acked_missing_api"], v["stored_not_acked"], "OK" if ok else "FAILED"), file=out)
print("  leads of acknowledged webhooks: %d = 200 \"accepted\" responses: %d to wrk + 1 to the curl probe" % (
    v["acked"] - v["acked_missing_lead"], acked), file=out)
with open(summary, "a") as f:
    f.write("%s %.0f %.2f %.2f %d %d %d %s %s %s\n" % (name, rate, p("lat_p50_us"), p("lat_p99_us"), errors, 1 if ok else 0,
                                                      acked, w.get("p50_ms") or "-", w.get("p99_ms") or "-",
                                                      "%.2f" % p("co_p99_us") if r.get("co_n") else "-"))
PY
  "$PY" "$HELPER" metrics "$dir/metrics" || true
}

echo "ingest: wrk -t1 -c$CONNS -d${DUR}s, $COUNT signed webhooks per backend; ehub on CPU $SRV_CPU, wrk on CPU $WRK_CPU; $(nproc) CPUs; ehub log level ${EHUB_BENCH_LOG:-warn}"
for b in $BACKENDS; do
  case "$b" in
    sqlite)
      for layout in ${EHUB_BENCH_LAYOUTS:-paced pinned}; do
        case "$layout" in
          pinned) bench_backend sqlite "sqlite:$tmp/sqlite/data/ehub.db" ;;
          paced)
            echo "(sqlite-paced: $PACE webhooks/s on a schedule, $ARRIVALS arrivals)"
            bench_backend sqlite-paced "sqlite:$tmp/sqlite-paced/data/ehub.db" "$PACE" ;;
          unpinned)
            pin_srv=$SRV_CPU; pin_wrk=$WRK_CPU
            SRV_CPU=0-$((CPUS - 1)); WRK_CPU=$SRV_CPU
            echo "(sqlite-unpinned: ehub and wrk both on CPUs $SRV_CPU)"
            bench_backend sqlite-unpinned "sqlite:$tmp/sqlite-unpinned/data/ehub.db"
            SRV_CPU=$pin_srv; WRK_CPU=$pin_wrk ;;
          *) echo "ingest: unknown layout $layout (pinned, paced, unpinned)" >&2; exit 1 ;;
        esac
      done ;;
    postgres)
      svc=$(scripts/services.sh start) || { echo "ingest: could not start PostgreSQL (scripts/services.sh)" >&2; exit 1; }
      eval "$svc"
      services_dir=$EHUB_SERVICES_DIR
      echo "(PostgreSQL from scripts/services.sh runs with fsync=off: a commit is durable against ehub crashing, not against power loss)"
      # PostgreSQL shares the server's core, so both backends get the same CPU budget
      # (new backends fork from the postmaster and inherit its affinity).
      for p in $(head -n1 "$services_dir/pg/data/postmaster.pid") $(pgrep -P "$(head -n1 "$services_dir/pg/data/postmaster.pid")"); do
        taskset -p -c "$SRV_CPU" "$p" >/dev/null 2>&1 || true   # a backend may have exited meanwhile
      done
      bench_backend postgres "$EHUB_TEST_PG_URL"
      scripts/services.sh stop "$services_dir"; services_dir=""
      ;;
    *) echo "ingest: unknown backend $b" >&2; exit 1 ;;
  esac
done

echo
# p50_ms/p99_ms: wrk's (its own time and stats_correct included); wire_*: the same requests on the wire.
printf '%-16s %12s %9s %9s %12s %12s %7s %11s\n' backend webhooks/s p50_ms p99_ms wire_p50_ms wire_p99_ms errors durability
broken=0
verdict() { # rate p99 errors
  "$PY" -c 'import sys; r,p,e,tr,tp=sys.argv[1:]; print("MET" if p!="-" and float(r)>=float(tr) and float(p)<float(tp) and float(e)==0 else "MISSED")' \
    "$1" "$2" "$3" "$TARGET_RATE" "$TARGET_P99_MS"
}
while read -r name rate p50 p99 errs ok _acked wp50 wp99 cop99; do
  printf '%-16s %12s %9s %9s %12s %12s %7s %11s\n' "$name" "$rate" "$p50" "$p99" "$wp50" "$wp99" "$errs" "$([ "$ok" = 1 ] && echo OK || echo FAILED)"
  [ "$ok" = 1 ] || broken=1
  case "$name" in
    sqlite|sqlite-paced|sqlite-unpinned)
      case "$name" in
        sqlite) lay="pinned, saturation" ;;
        sqlite-paced) lay="pinned, paced at $PACE/s, $ARRIVALS" ;;
        *) lay="unpinned, saturation" ;;
      esac
      line="target (SQLite, $CONNS connections, $lay): >= $TARGET_RATE durable webhooks/s, p99 < $TARGET_P99_MS ms, no errors:"
      if [ "$cop99" = - ]; then
        line="$line as wrk times it $(verdict "$rate" "$p99" "$errs") ($rate/s, p99 $p99 ms, $errs errors)"
        [ "$wp99" = - ] || line="$line; on the wire $(verdict "$rate" "$wp99" "$errs") (p99 $wp99 ms)"
      else
        # paced: judged from each request's slot, which counts the time a late
        # request waited to go out (wrk's and the wire's p99 leave it out)
        wire="wire $wp99 ms"; [ "$wp99" = - ] && wire="no wire capture"
        line="$line $(verdict "$rate" "$cop99" "$errs") ($rate/s, p99 $cop99 ms from each request's slot; wrk $p99 ms, $wire; $errs errors)"
      fi
      sqlite_lines="${sqlite_lines:-}$line"$'\n' ;;
  esac
done <"$tmp/summary"
[ -n "${sqlite_lines:-}" ] && printf '%s' "$sqlite_lines"
if [ "$broken" = 1 ]; then echo "DURABILITY FAILED: an acknowledged webhook was not stored (see above)"; exit 3; fi
exit 0
