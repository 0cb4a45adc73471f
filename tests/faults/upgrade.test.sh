#!/usr/bin/env bash
# A database created at each released version (0.1.0 to 0.4.0: the archived
# install scripts, run against the current library) upgrades with
# ALTER EXTENSION tenancy UPDATE: every row
# kept and working, and the upgraded extension identical, object by object,
# to a fresh CREATE EXTENSION of the current version (tests/faults/extension_shape.sql).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
db=$PGDATABASE
export PGOPTIONS="-c client_min_messages=warning"

extdir=$(/usr/lib/postgresql/15/bin/pg_config --sharedir)/extension
released=(0.1.0 0.2.0 0.3.0 0.4.0)
for v in "${released[@]}"; do
  cmp -s "$here/../../sql/archive/tenancy--$v.sql" "$extdir/tenancy--$v.sql" || {
    echo "$extdir/tenancy--$v.sql is not the archived $v script (scripts/test.sh installs it)"; exit 1; }
done
current=$(q -d "$db" -c "SELECT default_version FROM pg_available_extensions WHERE name = 'tenancy'")
for v in "${released[@]}"; do
  [ "$current" != "$v" ] || { echo "default_version is still the released $v"; exit 1; }
done

fresh=${db}_fresh
q -d postgres -c "DROP DATABASE IF EXISTS $fresh" -c "CREATE DATABASE $fresh" >/dev/null
q -d "$fresh" -c "CREATE EXTENSION tenancy" >/dev/null
psql -X -q -d "$fresh" -f "$here/extension_shape.sql" > "/tmp/tenancy-fresh-shape.txt"

# upgrade_from V DB: a database created at V, with the fixture, upgraded in a
# session that has already used the old functions; rows identical, catalog
# identical to a fresh install, everything working.
upgrade_from() {
  local from=$1 udb=$2
  q -d postgres -c "DROP DATABASE IF EXISTS $udb" -c "CREATE DATABASE $udb" >/dev/null
  q -d "$udb" -c "CREATE EXTENSION tenancy VERSION '$from'" >/dev/null
  populate_fixture "$udb"
  # Before the update, this library's add_migration registers nothing: up
  # to 0.3.0 it could not tell which role called it.
  local refused
  if [ "$from" != 0.4.0 ]; then
    refused=$(q -d "$udb" -c "DO \$\$ BEGIN PERFORM tenancy.add_migration('too_early', 'SELECT 1'); RAISE EXCEPTION 'registered';
                              EXCEPTION WHEN object_not_in_prerequisite_state THEN RAISE WARNING 'refused'; END \$\$" 2>&1)
    case "$refused" in *refused*) ;; *) echo "$from: add_migration before the update: $refused"; exit 1 ;; esac
  fi
  local before after got
  before=$(fingerprint "$udb")
  q -d "$udb" -c "SELECT tenancy.current_tenant_id()" -c "ALTER EXTENSION tenancy UPDATE" >/dev/null
  got=$(q -d "$udb" -c "SELECT extversion FROM pg_extension WHERE extname = 'tenancy'")
  [ "$got" = "$current" ] || { echo "$from: extversion $got after update, expected $current"; exit 1; }
  after=$(fingerprint "$udb")
  [ "$before" = "$after" ] || { echo "$from: rows changed by the upgrade:"; diff <(echo "$before") <(echo "$after") || true; exit 1; }
  # The fixture's own grants on the API (kept, as the fingerprint showed)
  # are not the extension's: without them the ACLs must match a fresh
  # install's, and pg_init_privs must anyway (the DBA's grants never become
  # initial privileges, which pg_dump would then leave out).
  q -d "$udb" -c "REVOKE EXECUTE ON FUNCTION tenancy.create_tenant, tenancy.update_tenant FROM dump_app" >/dev/null
  psql -X -q -d "$udb" -f "$here/extension_shape.sql" > "/tmp/tenancy-upgraded-shape.txt"
  if ! diff /tmp/tenancy-fresh-shape.txt /tmp/tenancy-upgraded-shape.txt; then
    echo "$from: upgraded extension differs from a fresh install (< fresh, > upgraded)"; exit 1
  fi
  echo "$from -> $current: $(grep -c . /tmp/tenancy-fresh-shape.txt) catalog facts identical to a fresh install"
  # The grants made before the upgrade still count (0.3.0 marks granted roles),
  # and the role cannot be dropped while they stand.
  check_fixture_works "$udb" >/dev/null
  local marked
  marked=$(q -d "$udb" -c "SELECT count(*) FROM pg_shdepend d JOIN pg_database b ON b.oid = d.dbid AND b.datname = current_database()
                            WHERE d.refobjid = 'dump_app'::regrole AND d.objid = 'tenancy.tenant_grantee'::regtype")
  [ "$marked" = 1 ] || { echo "$from: the granted role holds no tenant_grantee privilege after the upgrade ($marked)"; exit 1; }
}

upgrade_from 0.4.0 "${db}_from040"
q -d postgres -c "DROP DATABASE ${db}_from040" >/dev/null
upgrade_from 0.3.0 "${db}_from030"
q -d postgres -c "DROP DATABASE ${db}_from030" >/dev/null
upgrade_from 0.2.0 "${db}_from020"
q -d postgres -c "DROP DATABASE ${db}_from020" >/dev/null
upgrade_from 0.1.0 "$db"

# One session merges metadata at 0.1.0, runs the UPDATE, and merges again
# (the library finds the 0.2.0 objects once they exist): audit "old" values right.
straddle=${db}_straddle
q -d postgres -c "DROP DATABASE IF EXISTS $straddle" -c "CREATE DATABASE $straddle" >/dev/null
q -d "$straddle" -c "CREATE EXTENSION tenancy VERSION '0.1.0'" \
  -c "SELECT tenancy.create_tenant('merger', 'Merger', '{\"seats\": 5}', id => '00000000-0000-7000-8000-000000000009')" \
  -c "SELECT tenancy.merge_metadata('00000000-0000-7000-8000-000000000009', '{\"seats\": 6}')" \
  -c "ALTER EXTENSION tenancy UPDATE" \
  -c "SELECT tenancy.merge_metadata('00000000-0000-7000-8000-000000000009', '{\"seats\": 7}')" >/dev/null
merges=$(q -d "$straddle" -c "SELECT string_agg(details::text, ' ' ORDER BY id) FROM tenancy.audit_log WHERE action = 'metadata'")
want='{"old": {"seats": 5}, "merge": {"seats": 6}} {"old": {"seats": 6}, "merge": {"seats": 7}}'
[ "$merges" = "$want" ] || { echo "metadata audit across the upgrade: $merges"; exit 1; }
q -d postgres -c "DROP DATABASE $straddle" >/dev/null
# Rows written after the upgrade are kept like the old ones.
[ "$(q -d "$db" -c "SELECT count(*) FROM tenancy.tenants")" = 4 ] || { echo "tenant count after upgrade"; exit 1; }
q -d postgres -c "DROP DATABASE $fresh" >/dev/null
echo "rows kept and working after the upgrade"
