#!/usr/bin/env bash
# Tests of tenancy-store against a running PostgreSQL with tenancy installed.
#
#   PGHOST=/tmp/sock PGPORT=5432 PGUSER=postgres clients/python/test.sh [pytest args]
#
# PGUSER must be a superuser (it creates the database and the roles).  Makes a
# fresh database tenancy_client_python, the login roles the tests connect as,
# a venv in .venv (reinstalled only when pyproject.toml changes), runs pytest
# and ends with the line "N passed, N failed".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
source ../../examples/lib.sh

: "${PGHOST:?set PGHOST (socket directory or host of the server)}"
export PGHOST
export PGPORT="${PGPORT:-5432}"
export PGUSER="${PGUSER:-postgres}"
db=tenancy_client_python
# Unique to this suite: the roles are cluster-wide and other suites share the server.
roles=(tenancy_client_python_admin tenancy_client_python_app tenancy_client_python_other)

# --- Python environment -----------------------------------------------------
# Editable: source changes need no reinstall, only dependency changes do.
python_venv pyproject.toml -e ".[test]"

# --- Database and roles -----------------------------------------------------
fresh_database "$db" "${roles[@]}"
create_admin_and_app_roles "$db" tenancy_client_python

# --- Tests ------------------------------------------------------------------
export TENANCY_TEST_DB="$db"
run_pytest "$@"
