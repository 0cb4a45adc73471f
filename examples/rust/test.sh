#!/usr/bin/env bash
# Runs the Rust example's tests against the PostgreSQL given by PGHOST, PGPORT
# and PGUSER (a superuser; trust auth), in a fresh database.
# Ends with "N passed, N failed"; exits non-zero when a test failed.
# KEEP=1 keeps the database and the role afterwards for inspection.
set -euo pipefail
cd "$(dirname "$0")"
source ../lib.sh
summary_on_early_exit

export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
DB=tenancy_example_rust
export APP_ROLE=example_rust_app

# --- tools: install only what is missing -------------------------------------
command -v psql >/dev/null || apt_install postgresql-client
if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
if ! command -v cargo >/dev/null; then
    # Debian's cargo is too old for edition 2024 and async closures: use rustup.
    command -v curl >/dev/null || apt_install curl ca-certificates
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    . "$HOME/.cargo/env"
fi
# Compile before touching the database (incremental: quick when nothing changed).
cargo build --tests --locked --quiet

# --- a fresh database and role -----------------------------------------------
cleanup() { drop_database "$DB" "$APP_ROLE"; }
fresh_database "$DB" "$APP_ROLE"
create_app_role "$DB" "$APP_ROLE"

# --- run ---------------------------------------------------------------------
export PGDATABASE="$DB"
out=$(mktemp)
set +e
cargo test --locked --quiet 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e
# One "test result: ... N passed; M failed; ..." line per test binary.
read -r passed failed < <(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed;.*/\1 \2/p' "$out" |
    awk '{p += $1; f += $2} END {print p + 0, f + 0}')
rm -f "$out"

[ "${KEEP:-0}" = 1 ] || cleanup >/dev/null 2>&1 || true
report "$passed" "$failed" "$rc"
