#!/usr/bin/env bash
# Runs the Node.js example's tests against the PostgreSQL given by PGHOST,
# PGPORT and PGUSER (a superuser; trust auth), in a fresh database.
# Ends with "N passed, N failed"; exits non-zero when a test failed.
# KEEP=1 keeps the database and the role afterwards for inspection.
set -euo pipefail
cd "$(dirname "$0")"
source ../lib.sh
summary_on_early_exit

export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
DB=tenancy_example_node
export APP_ROLE=example_node_app

# --- tools: install only what is missing -------------------------------------
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
command -v psql >/dev/null || apt_install postgresql-client

# npm ci only when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi

# --- a fresh database and role -----------------------------------------------
cleanup() { drop_database "$DB" "$APP_ROLE"; }
fresh_database "$DB" "$APP_ROLE"
create_app_role "$DB" "$APP_ROLE"

# --- run ---------------------------------------------------------------------
export PGDATABASE="$DB"
tap=$(mktemp)
set +e
node --test --test-reporter=spec --test-reporter-destination=stdout \
            --test-reporter=tap --test-reporter-destination="$tap" test/*.test.js
rc=$?
set -e
passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" | tail -1)
failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" | tail -1)
rm -f "$tap"

[ "${KEEP:-0}" = 1 ] || cleanup >/dev/null 2>&1 || true
report "$passed" "$failed" "$rc"
