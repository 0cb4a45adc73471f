#!/usr/bin/env bash
# A backend terminated in the middle of create_tenant (while provisioning a
# schema tenant's migrations) leaves no half-made tenant: no row, no schema,
# no ledger or audit rows; the same identifier can be created afterwards.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

q <<'SQL' >/dev/null
CREATE EXTENSION tenancy;
SELECT tenancy.add_migration('001_slow', 'CREATE TABLE before_sleep (id int); SELECT pg_sleep(30);');
SQL
PGAPPNAME=creator psql -X -q -c "SELECT tenancy.create_tenant('victim', 'Victim', isolation => 'schema')" > /dev/null 2>&1 &
creator=$!
wait_for "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'creator' AND query LIKE '%create_tenant%' AND wait_event = 'PgSleep')"
q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'creator'" >/dev/null
wait "$creator" || true
left=$(q -c "SELECT (SELECT count(*) FROM tenancy.tenants) + (SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_victim')
               + (SELECT count(*) FROM tenancy.migration_ledger) + (SELECT count(*) FROM tenancy.audit_log)")
echo "objects left by the killed create_tenant: $left"
[ "$left" -eq 0 ]
# The identifier is free again (an rls tenant: the slow migration only runs for schema tenants).
q -c "SELECT identifier FROM tenancy.create_tenant('victim', 'Victim')"
