#!/usr/bin/env bash
# A database created at 0.1.0 (the archived install script, run against the
# current library) upgrades with ALTER EXTENSION tenancy UPDATE: every row
# kept and working, and the upgraded extension identical, object by object,
# to a fresh CREATE EXTENSION of the current version (tests/faults/extension_shape.sql).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
db=$PGDATABASE
export PGOPTIONS="-c client_min_messages=warning"

extdir=$(/usr/lib/postgresql/15/bin/pg_config --sharedir)/extension
cmp -s "$here/../../sql/archive/tenancy--0.1.0.sql" "$extdir/tenancy--0.1.0.sql" || {
  echo "$extdir/tenancy--0.1.0.sql is not the archived 0.1.0 script (scripts/test.sh installs it)"; exit 1; }
current=$(q -d "$db" -c "SELECT default_version FROM pg_available_extensions WHERE name = 'tenancy'")
[ "$current" != 0.1.0 ] || { echo "default_version is still 0.1.0"; exit 1; }

q -d "$db" -c "CREATE EXTENSION tenancy VERSION '0.1.0'" >/dev/null
populate_fixture "$db"
before=$(fingerprint "$db")

# Upgrade in a session that has already used the old functions.
q -d "$db" -c "SELECT tenancy.current_tenant_id()" -c "ALTER EXTENSION tenancy UPDATE" >/dev/null
got=$(q -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'tenancy'")
[ "$got" = "$current" ] || { echo "extversion $got after update, expected $current"; exit 1; }

after=$(fingerprint "$db")
[ "$before" = "$after" ] || { echo "rows changed by the upgrade:"; diff <(echo "$before") <(echo "$after") || true; exit 1; }

fresh=${db}_fresh
q -d postgres -c "DROP DATABASE IF EXISTS $fresh" -c "CREATE DATABASE $fresh" >/dev/null
q -d "$fresh" -c "CREATE EXTENSION tenancy" >/dev/null
psql -X -q -d "$db" -f "$here/extension_shape.sql" > "/tmp/tenancy-upgraded-shape.txt"
psql -X -q -d "$fresh" -f "$here/extension_shape.sql" > "/tmp/tenancy-fresh-shape.txt"
if ! diff /tmp/tenancy-fresh-shape.txt /tmp/tenancy-upgraded-shape.txt; then
  echo "upgraded extension differs from a fresh install (< fresh, > upgraded)"; exit 1
fi
echo "0.1.0 -> $current: $(grep -c . /tmp/tenancy-fresh-shape.txt) catalog facts identical to a fresh install"

check_fixture_works "$db" >/dev/null

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
