#!/usr/bin/env bash
# Tests of the Python example app against a running PostgreSQL with tenancy installed.
#
#   PGHOST=/tmp/sock PGPORT=5432 PGUSER=postgres examples/python/test.sh [pytest args]
#
# PGUSER must be a superuser (it creates the database and the roles).  Makes a
# fresh database tenancy_example_python, the login roles the tests connect as,
# a venv in .venv (reinstalled only when requirements.txt changes), runs pytest
# and ends with the line "N passed, N failed".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
source ../lib.sh

: "${PGHOST:?set PGHOST (socket directory or host of the server)}"
export PGHOST
export PGPORT="${PGPORT:-5432}"
export PGUSER="${PGUSER:-postgres}"
db=tenancy_example_python
# Unique to this suite: the roles are cluster-wide and other suites share the server.
roles=(tenancy_example_python_admin tenancy_example_python_app tenancy_example_python_other)

# --- Python environment -----------------------------------------------------
python_venv requirements.txt -r requirements.txt

# --- Database and roles -----------------------------------------------------
fresh_database "$db" "${roles[@]}"
create_admin_and_app_roles "$db" tenancy_example_python

# --- Tests ------------------------------------------------------------------
export TENANCY_TEST_DB="$db"
run_pytest "$@"
