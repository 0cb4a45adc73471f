#!/usr/bin/env bash
# Benchmarks tenancy against hand-written SQL (see bench/bench.py).
#   bench/run.sh            full run: builds and installs the release build, writes bench/RESULTS.md
#   bench/run.sh --smoke    seconds-long run with whatever build is installed (CI runs this)
#   bench/run.sh citus [--smoke]
#                           the Citus pairs on a coordinator and two workers (ports 28818-28820
#                           unless --port), writes bench/RESULTS-citus.md; needs Citus installed
# PG_BIN selects another (relocated) copy of PostgreSQL 15, for the build's install too.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
args=("$@")
if [ "${1:-}" = citus ]; then
  args=(--citus "${@:2}")
fi
if [[ " ${args[*]} " != *" --smoke "* ]]; then
  cargo pgrx install --release --pg-config "$bin/pg_config" >/dev/null
fi
exec python3 bench/bench.py "${args[@]}"
