#!/usr/bin/env bash
# Benchmarks tenancy against hand-written SQL (see bench/bench.py).
#   bench/run.sh            full run: builds and installs the release build, writes bench/RESULTS.md
#   bench/run.sh --smoke    seconds-long run with whatever build is installed (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if [[ " $* " != *" --smoke "* ]]; then
  cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config >/dev/null
fi
exec python3 bench/bench.py "$@"
