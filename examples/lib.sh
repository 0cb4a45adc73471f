# Shared by examples/*/test.sh and clients/python/test.sh: each suite gets a
# fresh database and its own roles on the server given by PGHOST, PGPORT and
# PGUSER (a superuser, trust auth), and ends with "N passed, N failed".

psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }

apt_install() {
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# drop_database DB ROLE...: the database and the roles, each step coping with
# the thing not existing.  Roles are cluster-wide: what they hold in DB goes
# first (DROP OWNED BY), then DB, then the roles.
drop_database() {
    local db=$1; shift
    local roles="$*"
    if [ "$(psql_admin -d postgres -At -c "SELECT count(*) FROM pg_database WHERE datname = '$db'")" = 1 ]; then
        local existing
        existing=$(psql_admin -d postgres -At -c \
            "SELECT string_agg(quote_ident(rolname), ', ') FROM pg_roles WHERE rolname = ANY (string_to_array('$roles', ' '))")
        [ -z "$existing" ] || psql_admin -d "$db" -c "DROP OWNED BY $existing CASCADE"
    fi
    psql_admin -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
    local r
    for r in $roles; do psql_admin -d postgres -c "DROP ROLE IF EXISTS $r"; done
}

# fresh_database DB ROLE...: drop_database, then DB made again with tenancy
# installed.  The caller creates the roles it needs.
fresh_database() {
    drop_database "$@"
    psql_admin -d postgres -c "CREATE DATABASE $1"
    psql_admin -d "$1" -c "CREATE EXTENSION tenancy"
}

# create_app_role DB ROLE: a LOGIN role allowed to connect to DB, and
# deliberately not a superuser (superusers and BYPASSRLS roles are not
# subject to row-level security).
create_app_role() {
    psql_admin -d "$1" -c "CREATE ROLE $2 LOGIN NOSUPERUSER NOBYPASSRLS" -c "GRANT CONNECT ON DATABASE $1 TO $2"
}

# create_admin_and_app_roles DB PREFIX: PREFIX_admin, which administers
# tenants through tenancy's functions (and reads the audit log), not a
# superuser; PREFIX_app and PREFIX_other, application roles that are not
# superusers, have no BYPASSRLS and own no table, so RLS applies to them.
create_admin_and_app_roles() {
    psql_admin -d "$1" <<SQL
CREATE ROLE $2_admin LOGIN;
GRANT USAGE ON SCHEMA tenancy TO $2_admin;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA tenancy TO $2_admin;
GRANT SELECT ON tenancy.audit_log TO $2_admin;
CREATE ROLE $2_app LOGIN;
CREATE ROLE $2_other LOGIN;
SQL
}

# summary_on_early_exit: a script stopped early (a failed install, build or
# setup) still ends with the summary line CI reads.  report sets $summary.
summary_on_early_exit() {
    summary=""
    trap '[ -n "$summary" ] || echo "0 passed, 1 failed"' EXIT
}

# report PASSED FAILED RC: prints "N passed, N failed" (a run that failed,
# RC non-zero, without a failed test, say a crash before any test ran,
# counts one failure); succeeds when nothing failed.
report() {
    local passed=${1:-0} failed=${2:-0} rc=$3
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
    summary="$passed passed, $failed failed"
    echo "$summary"
    [ "$failed" -eq 0 ]
}

# python_venv FILE PIP_ARGS...: a venv in .venv, with `pip install PIP_ARGS`
# run again only when FILE (the requirements or pyproject.toml) changes.
python_venv() {
    local file=$1; shift
    local python=python3
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python=/root/.pyenv/shims/python3
    fi
    [ -x .venv/bin/python ] || "$python" -m venv .venv
    local stamp=.venv/.install-stamp want
    want="$(sha256sum "$file" | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
        .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@"
        echo "$want" > "$stamp"
    fi
}

# run_pytest ARGS...: pytest in .venv, then the line "N passed, N failed"
# (from its JUnit report); fails when a test failed or none ran.
run_pytest() {
    local junit="$PWD/.junit.xml" rc passed failed
    rm -f "$junit"
    set +e
    .venv/bin/python -m pytest -q -p no:cacheprovider --junitxml="$junit" "$@"
    rc=$?
    set -e
    read -r passed failed < <(.venv/bin/python - "$junit" <<'PY'
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
)
    # pytest failing without a failed test is a collection or usage error.
    report "$passed" "$failed" "$rc" && [ "$passed" -gt 0 ]
}
