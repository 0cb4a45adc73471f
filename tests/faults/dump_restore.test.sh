#!/usr/bin/env bash
# A database with rls, schema and database tenants, migrations, ledger,
# grants, per-tenant settings, RLS tables and audit rows survives pg_dump -Fc / pg_restore and a
# plain-SQL dump / psql restore into fresh databases: every row back, the
# extension working, set_tenant reaching the same data.
# A database tenant's own database is dumped with pg_dump -C (so its
# privileges come along), dropped as if lost with the old server, and
# restored with pg_restore -C: its rows and its grants come back.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
src=$PGDATABASE
export PGOPTIONS="-c client_min_messages=warning"
dbt=tenant_dump_db_one   # the database tenant's database (cluster-wide name)

q -d postgres -c "DROP DATABASE IF EXISTS $dbt" >/dev/null
q -d "$src" -c "CREATE EXTENSION tenancy" -c "CREATE EXTENSION dblink" >/dev/null
populate_fixture "$src"
q -d "$src" <<'SQL' >/dev/null
SELECT tenancy.create_tenant('dump-db-one', 'Database one', isolation => 'database', id => '00000000-0000-7000-8000-000000000004');
SELECT tenancy.grant_tenant('dump_app', '00000000-0000-7000-8000-000000000004');
-- Per-tenant settings (SPEC §10) are kept with the catalog.
SELECT tenancy.set_tenant_setting('00000000-0000-7000-8000-000000000001', 'statement_timeout', '3s');
SELECT tenancy.set_tenant_setting('00000000-0000-7000-8000-000000000001', 'max_concurrent_requests', '5');
SQL
q -d "$dbt" -c "CREATE TABLE ledger (id int PRIMARY KEY, amount numeric)" \
            -c "INSERT INTO ledger SELECT i, i * 1.5 FROM generate_series(1, 100) i" >/dev/null

dbfp() { # the database tenant: its rows and who may connect
  q -d "$1" -c "SELECT count(*), sum(amount) FROM ledger"
  q -d postgres -c "SELECT has_database_privilege('dump_app', '$1', 'CONNECT'),
                           coalesce((SELECT bool_or(a.grantee = 0) FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = '$1'), false)"
}
settings() { q -d "$1" -c "SELECT string_agg(format('%s|%s|%s', tenant_id, setting, value), ';' ORDER BY tenant_id, setting) FROM tenancy.tenant_settings"; }
before=$(fingerprint "$src"; q -d "$src" -c "SELECT database_name FROM tenancy.tenants WHERE isolation = 'database'"; settings "$src")
dbbefore=$(dbfp "$dbt")
[ "$dbbefore" = "$(printf '100|7575.0\nt|f')" ] || { echo "unexpected database tenant state: $dbbefore"; exit 1; }

check_restored() { # db
  local db=$1 after
  after=$(fingerprint "$db"; q -d "$db" -c "SELECT database_name FROM tenancy.tenants WHERE isolation = 'database'"; settings "$db")
  if [ "$before" != "$after" ]; then
    echo "restored $db differs:"; diff <(echo "$before") <(echo "$after") || true; return 1
  fi
  [ "$(q -d "$db" -c "SELECT count(*) FROM tenancy.database_ops")" = 0 ] || { echo "queued database ops restored"; return 1; }
  check_fixture_works "$db" >/dev/null
  echo "restored $db: same rows, extension working"
}

dump=$(mktemp -d)
chmod 777 "$dump"
pg_dump -Fc -d "$src" -f "$dump/db.dump"
pg_dump -Fc -C -d "$dbt" -f "$dump/tenant.dump"

q -d postgres -c "DROP DATABASE IF EXISTS ${src}_fc" -c "CREATE DATABASE ${src}_fc"
pg_restore --exit-on-error -d "${src}_fc" "$dump/db.dump"
check_restored "${src}_fc"

pg_dump -Fp -d "$src" -f "$dump/db.sql"
q -d postgres -c "DROP DATABASE IF EXISTS ${src}_sql" -c "CREATE DATABASE ${src}_sql"
psql -X -q -v ON_ERROR_STOP=1 -d "${src}_sql" -f "$dump/db.sql" >/dev/null
check_restored "${src}_sql"

# The tenant's database, lost and restored from its own dump.
q -d postgres -c "DROP DATABASE $dbt" >/dev/null
pg_restore --exit-on-error -C -d postgres "$dump/tenant.dump"
dbafter=$(dbfp "$dbt")
[ "$dbbefore" = "$dbafter" ] || { echo "database tenant differs: $dbbefore / $dbafter"; exit 1; }
echo "database tenant restored with its rows and privileges"

# A restored catalog still manages it: destroying the tenant drops its database at commit.
q -d "${src}_fc" -c "SELECT tenancy.delete_tenant('00000000-0000-7000-8000-000000000004', destroy_data => true)" >/dev/null
[ "$(q -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$dbt'")" = 0 ] || { echo "tenant database not dropped"; exit 1; }

rm -rf "$dump"
q -d postgres -c "DROP DATABASE ${src}_fc" -c "DROP DATABASE ${src}_sql" >/dev/null
