#!/usr/bin/env bash
# A real crash: the backend running CALL tenancy.migrate() is killed with
# SIGKILL, so the whole server goes through crash recovery.  Afterwards no
# tenant is half-migrated, the ledger matches the schemas, and a re-run
# completes.  Then the same for a backend inside create_tenant.
set -euo pipefail
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
wait_ready() {
  for _ in $(seq 1 200); do
    if psql -X -q -At -d "$PGDATABASE" -c "SELECT 1" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "server did not come back"; return 1
}

q <<'SQL' >/dev/null
CREATE EXTENSION tenancy;
SELECT count(tenancy.create_tenant('crash-' || i, 'Crash ' || i, isolation => 'schema')) FROM generate_series(1, 6) i;
SELECT tenancy.add_migration('001_slow', 'SELECT pg_sleep(0.3); CREATE TABLE things (id int); INSERT INTO things SELECT generate_series(1, 10);');
SQL
PGAPPNAME=crash-migrator psql -X -q -c "CALL tenancy.migrate()" >/dev/null 2>&1 &
for _ in $(seq 1 100); do
  n=$(q -c "SELECT count(*) FROM tenancy.migration_ledger WHERE status = 'applied'")
  [ "$n" -ge 2 ] && break
  sleep 0.05
done
pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'crash-migrator'")
kill -9 "$pid"
wait || true
wait_ready
applied=$(q -c "SELECT count(*) FROM tenancy.migration_ledger WHERE status = 'applied'")
echo "crashed after $applied of 6 tenants"
[ "$applied" -ge 2 ] && [ "$applied" -lt 6 ]
q <<'SQL'
DO $$
DECLARE t record; has_table boolean; in_ledger boolean;
BEGIN
  FOR t IN SELECT id, schema_name FROM tenancy.tenants LOOP
    has_table := to_regclass(format('%I.things', t.schema_name)) IS NOT NULL;
    in_ledger := EXISTS (SELECT FROM tenancy.migration_ledger l WHERE l.tenant_id = t.id AND l.status = 'applied');
    IF has_table IS DISTINCT FROM in_ledger THEN
      RAISE EXCEPTION 'tenant % half-migrated after the crash', t.schema_name;
    END IF;
  END LOOP;
END $$;
SQL
q -c "CALL tenancy.migrate()"
pending=$(q -c "SELECT sum(pending) FROM tenancy.migration_status")
echo "after the re-run: pending $pending"
[ "$pending" -eq 0 ]

# A crash inside create_tenant (the new tenant's migration sleeps).
q -c "SELECT tenancy.add_migration('002_sleepy', 'SELECT pg_sleep(30)')" >/dev/null
PGAPPNAME=crash-creator psql -X -q -c "SELECT tenancy.create_tenant('crash-victim', 'Victim', isolation => 'schema')" >/dev/null 2>&1 &
for _ in $(seq 1 100); do
  pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'crash-creator' AND wait_event = 'PgSleep'")
  [ -n "$pid" ] && break
  sleep 0.05
done
[ -n "$pid" ]
kill -9 "$pid"
wait || true
wait_ready
left=$(q -c "SELECT (SELECT count(*) FROM tenancy.tenants WHERE identifier = 'crash-victim')
                  + (SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_crash_victim')")
echo "objects left by the crashed create_tenant: $left"
[ "$left" -eq 0 ]
