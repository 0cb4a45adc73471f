#!/usr/bin/env bash
# A backend running CALL tenancy.migrate() is terminated in the middle:
# every tenant is left either fully migrated or not at all (one transaction
# per tenant), the ledger says which, and a re-run completes the rest.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

q <<'SQL'
CREATE EXTENSION tenancy;
SELECT count(tenancy.create_tenant('tenant-' || i, 'Tenant ' || i, isolation => 'schema')) FROM generate_series(1, 8) i;
SELECT tenancy.add_migration('001_slow_table', $$
    SELECT pg_sleep(0.25);
    CREATE TABLE things (id int);
    INSERT INTO things SELECT generate_series(1, 100);
$$);
SQL

PGAPPNAME=migrator psql -X -q -c "CALL tenancy.migrate()" > /tmp/tenancy-fault-migrator.out 2>&1 &
migrator=$!
# Wait until some, not all, tenants are migrated, then kill the backend.
wait_for "SELECT count(*) >= 2 FROM tenancy.migration_ledger WHERE status = 'applied'"
killed=$(q -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'migrator'")
wait "$migrator" || true
echo "terminated $killed backend(s)"
[ "$killed" -eq 1 ]

applied=$(q -c "SELECT count(*) FROM tenancy.migration_ledger WHERE status = 'applied'")
echo "applied before the kill: $applied of 8"
[ "$applied" -ge 2 ] && [ "$applied" -lt 8 ]
check_migrated_whole 100 >/dev/null
pending=$(q -c "SELECT sum(pending) FROM tenancy.migration_status")
echo "pending after the kill: $pending"
[ "$pending" -eq $((8 - applied)) ]

q -c "CALL tenancy.migrate()"
pending=$(q -c "SELECT sum(pending) FROM tenancy.migration_status")
tables=$(q -c "SELECT count(*) FROM tenancy.tenants t WHERE to_regclass(format('%I.things', t.schema_name)) IS NOT NULL")
audits=$(q -c "SELECT count(*) FROM tenancy.audit_log WHERE action = 'migrate'")
echo "after the re-run: pending $pending, tenants with the table $tables, migrate audit rows $audits"
[ "$pending" -eq 0 ] && [ "$tables" -eq 8 ] && [ "$audits" -eq 8 ]
