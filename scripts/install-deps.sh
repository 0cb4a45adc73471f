#!/usr/bin/env bash
# Installs what a fresh Debian machine with Rust lacks to build and test tenancy.
# Skips whatever is already present, so reruns take seconds.
set -euo pipefail

PGRX_VERSION=0.18.0
PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config

need_apt=()
for pkg in postgresql-$PG_MAJOR postgresql-contrib postgresql-server-dev-$PG_MAJOR \
           libclang-dev clang sudo pgbouncer; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi
# Debian's package starts a cluster on port 5432; we run our own throwaway ones.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
  pg_ctlcluster $PG_MAJOR main stop 2>/dev/null || true
fi

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
  echo "install-deps: cargo install cargo-pgrx $PGRX_VERSION"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

if ! grep -qs "pg$PG_MAJOR" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  echo "install-deps: cargo pgrx init --pg$PG_MAJOR"
  cargo pgrx init --pg$PG_MAJOR "$PG_CONFIG"
fi

# Citus, for the tests on a cluster (tests/citus): not in any registry, so
# built from the source kept beside this project (it skips when installed).
citus_vendor="$(cd "$(dirname "$0")/.." && pwd)/../shared/vendor/citus/build.sh"
# (scripts/quickstart.sh needs no cluster and skips it: TENANCY_NO_CITUS=1.)
if [ -n "${TENANCY_NO_CITUS:-}" ]; then
  :
elif [ -f "$citus_vendor" ]; then
  bash "$citus_vendor" "$PG_CONFIG"
else
  echo "install-deps: no ../shared/vendor/citus here; the citus tests will be skipped unless Citus is installed"
fi

# pgrx installs the extension into the Debian tree; the postgres user must be
# able to read the build tree when tests run with --runas postgres.
id postgres >/dev/null
echo "install-deps: ok"
