#!/bin/bash
# Runs every test suite and ends with one line "N passed, N failed" that adds
# them all up. Exit status is non-zero if anything failed.
#
#   scripts/test.sh            all suites: unit, a few seconds of each libFuzzer target,
#                              e2e on SQLite, e2e on PostgreSQL + Redis,
#                              then unit and e2e (SQLite) again under ASan + UBSan
#   scripts/test.sh unit       unit tests only (PostgreSQL parts run if EHUB_TEST_PG_URL is set)
#   scripts/test.sh e2e        e2e on SQLite only
#   scripts/test.sh web        the dashboard: Vitest unit tests, then the browser tests (Chromium)
#
# Expects `make all asan` to have run (make test does it).
set -u
cd "$(dirname "$0")/.."
only=${1:-all}
passed=0
failed=0
# Debian's python3 (with python3-cryptography from deps.sh), not whatever a
# version manager puts first on PATH.
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
log_dir=${EHUB_TEST_LOGS:-build/test-logs}
mkdir -p "$log_dir"
# Absolute, so suites that run from another directory (web/) write where we read.
log_dir=$(cd "$log_dir" && pwd)

add() { passed=$((passed + $1)); failed=$((failed + $2)); }

# cmocka prints "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s), listed below:".
run_unit() {
  local dir=$1 label=$2 t out p f rc
  for t in "$dir"/tests/test_*; do
    [ -x "$t" ] || continue
    out="$log_dir/$label-$(basename "$t").log"
    "$t" >"$out" 2>&1
    rc=$?
    p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$out" | tail -1 | grep -oE '[0-9]+' | head -1)
    f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$out" | tail -1 | grep -oE '[0-9]+' | head -1)
    p=${p:-0}; f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed or sanitizer abort
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$out"; then f=$((f + 1)); fi
    printf '%-12s %-28s %3d passed, %d failed\n' "$label" "$(basename "$t")" "$p" "$f"
    [ "$f" -gt 0 ] && { echo "---- $out"; grep -E 'ERROR|FAILED|Failure|runtime error|SUMMARY' "$out" | head -20; }
    add "$p" "$f"
  done
}

run_e2e() {
  local label=$1; shift
  local out="$log_dir/$label.log" line p f
  "$PY" tests/e2e/run.py --label "$label" --logs "$log_dir" "$@" >"$out" 2>&1
  local rc=$?
  grep -E '^(FAIL|ERROR)' "$out" | head -30
  line=$(grep -E "^$label: [0-9]+ passed, [0-9]+ failed" "$out" | tail -1)
  p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/'); f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
  [ -n "$line" ] || { p=0; f=1; echo "$label: runner crashed (see $out)"; tail -20 "$out"; }
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  printf '%-12s %-28s %3d passed, %d failed\n' "$label" "e2e" "$p" "$f"
  add "$p" "$f"
}

# The dashboard's suites. Vitest writes a JSON report; node --test prints TAP
# ("# pass N", "# fail N").
run_web() {
  local out="$log_dir/web-unit.log" json="$log_dir/web-unit.json" p f line
  rm -f "$json"
  (cd web && ./node_modules/.bin/vitest run --reporter=default --reporter=json --outputFile="$json") >"$out" 2>&1
  local rc=$?
  line=$("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["numPassedTests"], j["numFailedTests"])' "$json" 2>/dev/null)
  if [ -n "$line" ]; then p=${line% *}; f=${line#* }; else p=0; f=1; echo "web-unit: vitest did not report (see $out)"; tail -20 "$out"; fi
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  [ "$f" -gt 0 ] && grep -E "FAIL|✗|×|Error" "$out" | head -20
  printf '%-12s %-28s %3d passed, %d failed\n' "web-unit" "vitest" "$p" "$f"
  add "$p" "$f"
  out="$log_dir/web-browser.log"
  (cd web && EHUB_BINARY=../build/ehub timeout 600 node --test --test-reporter=tap test/browser/dashboard.e2e.mjs) >"$out" 2>&1
  rc=$?
  p=$(grep -E '^# pass [0-9]+' "$out" | tail -1 | grep -oE '[0-9]+'); f=$(grep -E '^# fail [0-9]+' "$out" | tail -1 | grep -oE '[0-9]+')
  [ -n "$p" ] || { p=0; f=1; echo "web-browser: runner crashed (see $out)"; tail -20 "$out"; }
  f=${f:-0}
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  [ "$f" -gt 0 ] && grep -E -A12 '^not ok' "$out" | head -40
  printf '%-12s %-28s %3d passed, %d failed\n' "web-browser" "chromium" "$p" "$f"
  add "$p" "$f"
}

# Every libFuzzer target builds and runs a few seconds on its seed corpus, so
# a target cannot rot between `make fuzz` runs (a module that grows a new
# dependency breaks its link here, not months later).
run_fuzz_smoke() {
  local t p=0 f=0 out
  for t in $(ls fuzz/fuzz_*.c | sed -E 's|fuzz/fuzz_(.*)\.c|\1|'); do
    out="$log_dir/fuzz-$t.log"
    if FUZZ_SECONDS=3 scripts/fuzz.sh "$t" >"$out" 2>&1 && grep -q '^Done ' "$out"; then p=$((p + 1))
    else f=$((f + 1)); echo "fuzz-smoke: fuzz_$t failed (see $out)"; tail -5 "$out"; fi
  done
  printf '%-12s %-28s %3d passed, %d failed\n' "fuzz-smoke" "libFuzzer targets" "$p" "$f"
  add "$p" "$f"
}

services_dir=""
cleanup() { [ -n "$services_dir" ] && scripts/services.sh stop "$services_dir"; }
trap cleanup EXIT

if [ "$only" = all ]; then
  if eval "$(scripts/services.sh start)"; then
    services_dir=$EHUB_SERVICES_DIR
  else
    echo "could not start PostgreSQL/Redis"; add 0 1
  fi
fi

case "$only" in
  unit) run_unit build unit ;;
  e2e) run_e2e e2e-sqlite --binary build/ehub ;;
  web) run_web ;;
  all)
    run_unit build unit
    run_fuzz_smoke
    run_web
    run_e2e e2e-sqlite --binary build/ehub
    if [ -n "$services_dir" ]; then
      run_e2e e2e-postgres --binary build/ehub --store "$EHUB_TEST_PG_URL" --redis "$EHUB_TEST_REDIS_URL"
    fi
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    run_unit build/asan unit-asan
    run_e2e e2e-asan --binary build/asan/ehub --slow 3
    ;;
  *) echo "usage: $0 [all|unit|e2e|web]"; exit 2 ;;
esac

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
