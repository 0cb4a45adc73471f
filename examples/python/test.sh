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

: "${PGHOST:?set PGHOST (socket directory or host of the server)}"
export PGHOST
export PGPORT="${PGPORT:-5432}"
export PGUSER="${PGUSER:-postgres}"
db=tenancy_example_python
# Unique to this suite: the roles are cluster-wide and other suites share the server.
roles=(tenancy_example_python_admin tenancy_example_python_app tenancy_example_python_other)

# --- Python environment -----------------------------------------------------
python=python3
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python=/root/.pyenv/shims/python3
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=.venv/.requirements-stamp
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
    echo "$want" > "$stamp"
fi

# --- Database and roles -----------------------------------------------------
psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }

existing="$(psql_admin -d postgres -At -c \
    "SELECT string_agg(quote_ident(rolname), ', ') FROM pg_roles WHERE rolname = ANY (string_to_array('${roles[*]}', ' '))")"
if [ -n "$existing" ] && [ "$(psql_admin -d postgres -At -c "SELECT count(*) FROM pg_database WHERE datname = '$db'")" = 1 ]; then
    psql_admin -d "$db" -c "DROP OWNED BY $existing CASCADE"
fi
psql_admin -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
for r in "${roles[@]}"; do
    psql_admin -d postgres -c "DROP ROLE IF EXISTS $r"
done
psql_admin -d postgres -c "CREATE DATABASE $db"
psql_admin -d "$db" <<SQL
CREATE EXTENSION tenancy;
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
junit="$here/.junit.xml"
rm -f "$junit"
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider --junitxml="$junit" "$@"
rc=$?
set -e

summary="$(.venv/bin/python - "$junit" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0 0"); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
tests = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(tests - bad - skipped, bad)
PY
)"
read -r passed failed <<<"$summary"
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1   # pytest failed without a test failing: collection or usage error
fi
echo "$passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
