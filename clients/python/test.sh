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
psql_admin -d "$db" <<SQL
-- The store's role: administers tenants through the functions, nothing else.
CREATE ROLE tenancy_client_python_admin LOGIN;
GRANT USAGE ON SCHEMA tenancy TO tenancy_client_python_admin;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA tenancy TO tenancy_client_python_admin;
GRANT SELECT ON tenancy.audit_log TO tenancy_client_python_admin;
-- Application roles: no superuser, no BYPASSRLS, own no table; RLS applies.
CREATE ROLE tenancy_client_python_app LOGIN;
CREATE ROLE tenancy_client_python_other LOGIN;
SQL

# --- Tests ------------------------------------------------------------------
export TENANCY_TEST_DB="$db"
run_pytest "$@"
