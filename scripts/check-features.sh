#!/usr/bin/env bash
# Type-checks the crate for every supported PostgreSQL major version
# (features pg13..pg18) from the bindings pgrx ships, without those servers.
# Prints one line per version and exits non-zero if any fails.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
status=0
for v in 13 14 15 16 17 18; do
  if RUSTC_WRAPPER="$PWD/scripts/rustc-docsrs-wrapper.sh" DOCS_RS=1 \
     cargo check --quiet --lib --no-default-features --features "pg$v" --target-dir target/check-features \
     > "target/check-pg$v.log" 2>&1; then
    echo "check pg$v ... ok"
  else
    echo "check pg$v ... FAILED"; tail -30 "target/check-pg$v.log"; status=1
  fi
done
exit $status
