#!/usr/bin/env bash
# The whole test suite, as the README's test command runs it:
#   1. unit tests of the pure Rust rules (no PostgreSQL)      cargo test --lib
#   2. in-backend tests                                       cargo pgrx test pg15
#   3. the pg_regress suite                                   tests/pg_regress
#   4. the isolation specs (concurrent sessions)              tests/isolation
#      and fault injection (killed backends)                  tests/faults
#      tenancy on a Citus cluster (skipped without Citus)     tests/citus
#      live statistics, on a server with tenancy preloaded    tests/observability
#   5. client examples (Python, Node, Rust), Python store     examples/*/test.sh, clients/python/test.sh
#      every SQL example of README.md and docs/*.md, as written  tests/docs/run.py
#      the benchmark in smoke mode (so it cannot rot)         bench/run.sh --smoke
#   6. the crate type-checks for pg13..pg18                   scripts/check-features.sh
# PostgreSQL always runs as the user postgres, on loopback, in throwaway
# clusters under $TENANCY_TEST_DIR.  Ends with one line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

PG_BIN=/usr/lib/postgresql/15/bin
PG_CONFIG=$PG_BIN/pg_config
PGXS=$(dirname "$(dirname "$($PG_CONFIG --pgxs)")")
PG_REGRESS=$PGXS/test/regress/pg_regress
PG_ISOLATION_REGRESS=$PGXS/test/isolation/pg_isolation_regress
export PATH="$HOME/.cargo/bin:$PATH"

work=${TENANCY_TEST_DIR:-/tmp/tenancy-test}
port=${TENANCY_TEST_PORT:-28816}
only=${1:-all}

passed=0
failed=0
failures=()

count() { # name passed failed
  passed=$((passed + $2))
  failed=$((failed + $3))
  [ "$3" -gt 0 ] && failures+=("$1: $3 failed")
  echo "== $1: $2 passed, $3 failed"
}

cargo_counts() { # log -> "passed failed" summed over every "test result:" line
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
       END { print p + 0, f + 0 }' "$1"
}

regress_counts() { # pg_regress (PostgreSQL 15) output -> "passed failed"
  awk '/^(test | +)[a-z_0-9]+ +\.\.\. ok/ { p++ } /^(test | +)[a-z_0-9]+ +\.\.\. (FAILED|failed)/ { f++ } END { print p + 0, f + 0 }' "$1"
}

tally() { # name log: counts "test X ... ok|FAILED" lines; a suite where nothing passed failed
  local p f
  read -r p f < <(regress_counts "$2")
  [ "$p" -eq 0 ] && f=$((f + 1))
  count "$1" "$p" "$f"
}

mkdir -p "$work"
chmod 755 "$work"

if [ "$only" = all ] || [ "$only" = unit ]; then
  echo "== unit tests (no PostgreSQL)"
  cargo test --lib validate:: 2>&1 | tee "$work/unit.log" | grep -E "^test |test result" || true
  read -r p f < <(cargo_counts "$work/unit.log")
  [ "$p" -eq 0 ] && f=$((f + 1))
  # The tree's layering (src/lib.rs): one more test.
  if python3 scripts/check-layers.py; then p=$((p + 1)); else f=$((f + 1)); fi
  count unit "$p" "$f"
fi

if [ "$only" = all ] || [ "$only" = pgtest ]; then
  echo "== in-backend tests (cargo pgrx test)"
  rm -rf "$work/pgrx-data"
  install -d -o postgres -g postgres "$work/pgrx-data"
  cargo pgrx test pg15 --runas postgres --pgdata "$work/pgrx-data" tests::tests:: > "$work/pgtest.log" 2>&1
  grep -E "^test |test result" "$work/pgtest.log" || tail -30 "$work/pgtest.log"
  read -r p f < <(cargo_counts "$work/pgtest.log")
  [ "$p" -eq 0 ] && f=$((f + 1))
  count pgtest "$p" "$f"
fi

# The suites below run against the normal (non-test) build of the extension.
if [ "$only" = all ] || [ "$only" = regress ] || [ "$only" = isolation ] || [ "$only" = faults ] || [ "$only" = citus ] || [ "$only" = observability ] || [ "$only" = examples ] || [ "$only" = docs ] || [ "$only" = bench ]; then
  echo "== installing the extension into PostgreSQL 15"
  if ! cargo pgrx install --pg-config "$PG_CONFIG" > "$work/install.log" 2>&1; then
    tail -30 "$work/install.log"; count install 0 1
    echo "$passed passed, $failed failed"; exit 1
  fi
  # Released install scripts, so that the upgrade test can start from them.
  cp sql/archive/tenancy--*.sql "$($PG_CONFIG --sharedir)/extension/"
  scripts/pg-cluster.sh stop "$work/pg" >/dev/null 2>&1
  rm -rf "$work/pg"
  scripts/pg-cluster.sh start "$work/pg" "$port" >/dev/null
  export PGHOST="$work/pg" PGPORT=$port PGUSER=postgres
fi

# run_pg_suite NAME TOOL INPUTDIR DBNAME [ARGS...]: pg_regress or
# pg_isolation_regress over INPUTDIR's schedule, its diffs shown on failure.
run_pg_suite() {
  local name=$1 tool=$2 input=$3 db=$4; shift 4
  local out="$work/$name"
  rm -rf "$out"; mkdir -p "$out"; chmod 777 "$out"
  "$tool" --inputdir="$input" --outputdir="$out" --bindir="$PG_BIN" \
    --host="$PGHOST" --port="$port" --user=postgres --dbname="$db" \
    --schedule="$input/schedule" "$@" > "$work/$name.log" 2>&1
  cat "$work/$name.log"
  # pg_isolation_regress writes its diffs under output_iso/
  for d in "$out/regression.diffs" "$out/output_iso/regression.diffs"; do
    [ -f "$d" ] && head -200 "$d"
  done
  tally "$name" "$work/$name.log"
}

if [ "$only" = all ] || [ "$only" = regress ]; then
  echo "== pg_regress suite"
  run_pg_suite regress "$PG_REGRESS" tests/pg_regress tenancy_regress
fi

if [ "$only" = all ] || [ "$only" = isolation ]; then
  echo "== isolation specs"
  run_pg_suite isolation "$PG_ISOLATION_REGRESS" tests/isolation tenancy_isolation --load-extension=tenancy
fi

if [ "$only" = all ] || [ "$only" = faults ]; then
  echo "== fault injection"
  bash tests/faults/run.sh | tee "$work/faults.log"
  tally faults "$work/faults.log"
fi

if [ "$only" = all ] || [ "$only" = citus ]; then
  echo "== tenancy on a Citus cluster (coordinator and two workers)"
  bash tests/citus/run.sh "$work/citus" $((port + 64)) | tee "$work/citus.log"
  if grep -q "^citus: skipped" "$work/citus.log"; then
    echo "== citus: skipped"
  else
    tally citus "$work/citus.log"
  fi
fi

if [ "$only" = all ] || [ "$only" = observability ]; then
  echo "== live statistics (two servers of its own: tenancy preloaded and not)"
  PG_BIN=$PG_BIN bash tests/observability/run.sh "$work/observability" $((port + 96)) | tee "$work/observability.log"
  tally observability "$work/observability.log"
fi

if [ "$only" = all ] || [ "$only" = examples ]; then
  echo "== client examples and the Python store (each test.sh ends with \"N passed, N failed\")"
  for dir in examples/python examples/node examples/rust clients/python; do
    [ -f "$dir/test.sh" ] || continue
    name=${dir//\//-}
    bash "$dir/test.sh" > "$work/$name.log" 2>&1
    rc=$?
    tail -15 "$work/$name.log"
    read -r p f < <(tail -1 "$work/$name.log" | awk '/^[0-9]+ passed, [0-9]+ failed$/ { print $1, $3; ok = 1 } END { if (!ok) print 0, 0 }')
    { [ "$rc" -ne 0 ] || [ "$p" -eq 0 ]; } && [ "$f" -eq 0 ] && f=1
    count "$name" "$p" "$f"
  done
fi

if [ "$only" = all ] || [ "$only" = docs ]; then
  echo "== docs: every SQL example of README.md and docs/*.md, as written"
  python3 tests/docs/run.py > "$work/docs.log" 2>&1
  rc=$?
  cat "$work/docs.log"
  read -r p f < <(tail -1 "$work/docs.log" | awk '/^[0-9]+ passed, [0-9]+ failed$/ { print $1, $3; ok = 1 } END { if (!ok) print 0, 0 }')
  { [ "$rc" -ne 0 ] || [ "$p" -eq 0 ]; } && [ "$f" -eq 0 ] && f=1
  count docs "$p" "$f"
fi

if { [ "$only" = all ] || [ "$only" = bench ]; } && [ -x bench/run.sh ]; then
  echo "== benchmark smoke run"
  if bench/run.sh --smoke > "$work/bench.log" 2>&1; then
    tail -20 "$work/bench.log"; count bench-smoke 1 0
  else
    tail -40 "$work/bench.log"; count bench-smoke 0 1
  fi
  # The Citus pair (a coordinator and two workers on 28890-28892), where Citus is installed.
  if [ -f "$($PG_CONFIG --pkglibdir)/citus.so" ]; then
    echo "== benchmark smoke run on Citus"
    if bench/run.sh citus --smoke --port 28890 > "$work/bench-citus.log" 2>&1; then
      tail -8 "$work/bench-citus.log"; count bench-citus-smoke 1 0
    else
      tail -40 "$work/bench-citus.log"; count bench-citus-smoke 0 1
    fi
  fi
fi

if [ "$only" = all ] || [ "$only" = features ]; then
  echo "== type-check for every PostgreSQL version"
  bash scripts/check-features.sh | tee "$work/features.log"
  p=$(grep -c '\.\.\. ok' "$work/features.log"); f=$(grep -c 'FAILED' "$work/features.log")
  count features "$p" "$f"
fi

if [ -n "${PGHOST:-}" ]; then
  scripts/pg-cluster.sh stop "$work/pg" >/dev/null 2>&1
fi

for f in "${failures[@]}"; do echo "FAILED $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
