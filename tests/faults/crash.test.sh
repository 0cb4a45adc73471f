#!/usr/bin/env bash
# A real crash: the backend running CALL tenancy.migrate() is killed with
# SIGKILL, so the whole server goes through crash recovery.  Afterwards no
# tenant is half-migrated, the ledger matches the schemas, and a re-run
# completes.  Then the same for a backend inside create_tenant.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
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
wait_for "SELECT count(*) >= 2 FROM tenancy.migration_ledger WHERE status = 'applied'"
pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'crash-migrator'")
kill -9 "$pid"
wait || true
wait_ready
applied=$(q -c "SELECT count(*) FROM tenancy.migration_ledger WHERE status = 'applied'")
echo "crashed after $applied of 6 tenants"
[ "$applied" -ge 2 ] && [ "$applied" -lt 6 ]
check_migrated_whole 10 >/dev/null
q -c "CALL tenancy.migrate()"
pending=$(q -c "SELECT sum(pending) FROM tenancy.migration_status")
echo "after the re-run: pending $pending"
[ "$pending" -eq 0 ]

# A crash inside create_tenant (the new tenant's migration sleeps).
q -c "SELECT tenancy.add_migration('002_sleepy', 'SELECT pg_sleep(30)')" >/dev/null
PGAPPNAME=crash-creator psql -X -q -c "SELECT tenancy.create_tenant('crash-victim', 'Victim', isolation => 'schema')" >/dev/null 2>&1 &
wait_for "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'crash-creator' AND wait_event = 'PgSleep')"
pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'crash-creator'")
kill -9 "$pid"
wait || true
wait_ready
left=$(q -c "SELECT (SELECT count(*) FROM tenancy.tenants WHERE identifier = 'crash-victim')
                  + (SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_crash_victim')")
echo "objects left by the crashed create_tenant: $left"
[ "$left" -eq 0 ]
