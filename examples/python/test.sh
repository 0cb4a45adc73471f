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
psql_admin -d "$db" <<SQL
-- The tenant administrator: tenancy's functions, not a superuser.
CREATE ROLE tenancy_example_python_admin LOGIN;
GRANT USAGE ON SCHEMA tenancy TO tenancy_example_python_admin;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA tenancy TO tenancy_example_python_admin;
GRANT SELECT ON tenancy.audit_log TO tenancy_example_python_admin;
-- Application roles: no superuser, no BYPASSRLS, own no table; RLS applies.
CREATE ROLE tenancy_example_python_app LOGIN;
CREATE ROLE tenancy_example_python_other LOGIN;
SQL

# --- Tests ------------------------------------------------------------------
export TENANCY_TEST_DB="$db"
run_pytest "$@"
