#!/bin/bash
# Builds every libFuzzer target in fuzz/ with clang (ASan + UBSan) and runs
# each for FUZZ_SECONDS (default 60) on a copy of its seed corpus.
#   scripts/fuzz.sh [target...]      e.g. scripts/fuzz.sh http ws
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-60}
mkdir -p build/fuzz
PKG="libuv jansson openssl"
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Isrc $(pkg-config --cflags $PKG)"
LIBS="$(pkg-config --libs $PKG) -lsodium -lhttp_parser -lwslay -lm -lpthread"
BASE="src/base/alloc.c src/base/buf.c src/base/arena.c src/base/log.c src/base/pii.c src/base/clock.c src/base/ids.c"
declare -A SRCS=(
  [http]="src/http/server.c src/http/router.c src/http/proxy.c src/http/ws.c src/base/metrics.c $BASE"
  [ws]="src/http/ws.c $BASE"
  [sig]="src/auth/sig.c src/auth/ed25519.c $BASE"
  [ed25519]="src/auth/ed25519.c src/base/alloc.c"
  [jwt]="src/auth/jwt.c $BASE"
  [csv]="src/base/csv.c $BASE"
  [pii]="src/base/pii.c"
  [coach]="src/coach/analysis.c src/coach/playbook.c src/base/tz.c build/gen/coach_data.c $BASE"
  [llm]="src/llm/llm.c -lcurl $BASE"
  [model]="src/ml/model.c src/ml/schema.c src/ml/table.c src/ml/batch.c src/base/csv.c $BASE"
)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=($(ls fuzz/fuzz_*.c | sed -E 's|fuzz/fuzz_(.*)\.c|\1|'))
for t in "${targets[@]}"; do
  [ -f "fuzz/fuzz_$t.c" ] || { echo "no fuzz/fuzz_$t.c"; exit 2; }
  echo "== fuzz_$t: building"
  # the coach's lexicon, cues and playbook are compiled in from a generated file
  [ "$t" = coach ] && make -s build/gen/coach_data.c
  clang $CFLAGS -o "build/fuzz/fuzz_$t" "fuzz/fuzz_$t.c" ${SRCS[$t]:-$BASE} $LIBS
  work="build/fuzz/corpus-$t"; mkdir -p "$work"
  [ -d "fuzz/corpus/$t" ] && cp -n fuzz/corpus/$t/* "$work/" 2>/dev/null || true
  echo "== fuzz_$t: running ${SECS}s"
  # the progress lines dropped, not the end: a sanitizer's report stays whole
  (cd build/fuzz && "./fuzz_$t" -max_total_time="$SECS" -print_final_stats=1 "corpus-$t" 2>&1 |
    grep -avE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|INITED|RELOAD)|^INFO: ')
done
