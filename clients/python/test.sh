#!/usr/bin/env bash
# Tests of tenancy-store against a running PostgreSQL with tenancy installed.
#
#   PGHOST=/tmp/sock PGPORT=5432 PGUSER=postgres clients/python/test.sh [pytest args]
#
# PGUSER must be a superuser (it creates the database and the roles).  Makes a
# fresh database tenancy_client_python, the login roles the tests connect as,
# a venv in .venv (reinstalled only when pyproject.toml changes), fetches
# fastapi-tenancy's sdist for its store tests, runs pytest on ours and theirs
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

# --- fastapi-tenancy's own store tests ----------------------------------------
# The sdist of the installed fastapi-tenancy (PyPI's wheel has no tests), kept
# in the venv so a rerun downloads nothing.  Its tests/ is unpacked into .peer
# as it is; peer/conftest.py and the two store test files it runs go one
# directory below their tests/storage/conftest.py, so that pytest's fixture
# overriding puts our store behind their `any_sqla_store` / `postgres_store`.
peer_version="$(.venv/bin/python -c 'from importlib.metadata import version; print(version("fastapi-tenancy"))')"
peer_sdist=".venv/peer/fastapi_tenancy-$peer_version.tar.gz"
if [ ! -f "$peer_sdist" ]; then
    .venv/bin/python -m pip download --quiet --disable-pip-version-check \
        --no-deps --no-binary :all: --dest .venv/peer "fastapi-tenancy==$peer_version"
fi
rm -rf .peer
mkdir .peer
top="fastapi_tenancy-$peer_version/tests"
tar -xzf "$peer_sdist" -C .peer --strip-components=1 \
    "$top/__init__.py" "$top/conftest.py" "$top/_services.py" "$top/storage"
peer_dir=.peer/tests/storage/tenancy
mkdir "$peer_dir"
: > "$peer_dir/__init__.py"
cp peer/conftest.py "$peer_dir/"
cp .peer/tests/storage/test_sqla_contract.py .peer/tests/storage/test_postgres_store.py "$peer_dir/"
export TENANCY_PEER_VERSION="$peer_version"

# --- Database and roles -----------------------------------------------------
fresh_database "$db" "${roles[@]}"
create_admin_and_app_roles "$db" tenancy_client_python

# --- Tests ------------------------------------------------------------------
export TENANCY_TEST_DB="$db"
# Ours and theirs in one run, so that the line below counts both (unless the
# arguments name what to run).
paths=(tests "$peer_dir")
for arg in "$@"; do
    case "$arg" in -*) ;; *) paths=() ;; esac
done
run_pytest "${paths[@]}" "$@"
