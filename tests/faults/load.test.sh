#!/usr/bin/env bash
# Load: 8 clients for TENANCY_LOAD_SECONDS (60) of a mixed workload through
# pgbench: create_tenant, set_tenant + RLS read, merge_metadata on one shared
# tenant, status changes, search.  Afterwards the invariants hold: one row per
# successful create, no lost metadata key, audit rows matching the changes,
# no error at all.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
seconds=${TENANCY_LOAD_SECONDS:-60}
q <<'SQL' >/dev/null
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'load_app') THEN CREATE ROLE load_app LOGIN; END IF;
END $$;
CREATE EXTENSION tenancy;
SELECT count(tenancy.create_tenant('base-' || i, 'Base ' || i, CASE WHEN i = 1 THEN '{"seed": 0}' ELSE '{}' END::jsonb, id => ('00000000-0000-7000-8000-' || lpad(i::text, 12, '0'))::uuid))
  FROM generate_series(1, 20) i;
CREATE SEQUENCE create_seq;
CREATE SEQUENCE merge_seq;
CREATE SEQUENCE flip_seq;
CREATE TABLE items (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, n int);
INSERT INTO items (tenant_id, n) SELECT t.id, g FROM tenancy.tenants t, generate_series(1, 50) g;
SELECT tenancy.enable_rls('items');
GRANT SELECT ON items TO load_app;
GRANT USAGE ON SEQUENCE create_seq, merge_seq, flip_seq TO load_app;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA tenancy TO load_app;
SELECT tenancy.grant_all_tenants('load_app');
SQL
dir=$(mktemp -d)
cat > "$dir/create.sql" <<'SQL'
SELECT 1 FROM tenancy.create_tenant('load-' || nextval('create_seq'), 'Load tenant');
SQL
cat > "$dir/read.sql" <<'SQL'
\set i random(1, 20)
BEGIN;
SELECT 1 FROM tenancy.set_tenant('base-' || :i, true);
SELECT count(*) FROM items WHERE n > 0;
COMMIT;
SQL
cat > "$dir/merge.sql" <<'SQL'
SELECT 1 FROM tenancy.merge_metadata('00000000-0000-7000-8000-000000000001', jsonb_build_object('m' || nextval('merge_seq'), true));
SQL
cat > "$dir/status.sql" <<'SQL'
\set i random(2, 20)
BEGIN;
SELECT nextval('flip_seq');
SELECT 1 FROM tenancy.suspend_tenant(('00000000-0000-7000-8000-' || lpad(:i::text, 12, '0'))::uuid);
SELECT 1 FROM tenancy.activate_tenant(('00000000-0000-7000-8000-' || lpad(:i::text, 12, '0'))::uuid);
COMMIT;
SQL
cat > "$dir/search.sql" <<'SQL'
\set i random(1, 20)
SELECT count(*) FROM tenancy.search_tenants('base-' || :i);
SQL
pgbench -n -c 8 -j 2 -T "$seconds" -U load_app \
  -f "$dir/create.sql@2" -f "$dir/read.sql@4" -f "$dir/merge.sql@2" -f "$dir/status.sql@1" -f "$dir/search.sql@1" \
  "$PGDATABASE" > "$dir/pgbench.out" 2>&1
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$dir/pgbench.out")
total=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$dir/pgbench.out")
per_script() { awk -v s="$1" 'index($0, "SQL script") == 1 && index($0, s) { getline; getline; print $2 }' "$dir/pgbench.out"; }
creates=$(per_script "$dir/create.sql"); merges=$(per_script "$dir/merge.sql"); flips=$(per_script "$dir/status.sql")
reads=$(per_script "$dir/read.sql"); searches=$(per_script "$dir/search.sql")
aborted=$(grep -c "aborted" "$dir/pgbench.out" || true)
echo "transactions: $total (creates $creates, reads $reads, merges $merges, status flips $flips, searches $searches); failed ${failed:-?}; aborted clients $aborted"
rm -rf "$dir"

check() { # label, got, want
  if [ "$2" != "$3" ]; then echo "INVARIANT BROKEN: $1: got $2, want $3"; exit 1; fi
  echo "ok: $1 = $2"
}
# pgbench's own counts can miss a transaction that committed as the timer
# ran out, so the invariants compare server-side counts: each sequence
# advanced once per attempted operation (and none failed).
creates=$(q -c "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM create_seq")
merges=$(q -c "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM merge_seq")
flips=$(q -c "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM flip_seq")
echo "attempted on the server: creates $creates, merges $merges, status flips $flips"
check "failed transactions" "${failed:-missing}" 0
check "aborted clients" "$aborted" 0
check "rows created" "$(q -c "SELECT count(*) FROM tenancy.tenants WHERE identifier LIKE 'load-%'")" "$creates"
check "create audit rows" "$(q -c "SELECT count(*) FROM tenancy.audit_log WHERE action = 'create' AND details->>'identifier' LIKE 'load-%'")" "$creates"
check "metadata keys kept (no lost merge)" "$(q -c "SELECT count(*) - 1 FROM tenancy.tenants t, jsonb_object_keys(t.metadata) WHERE t.id = '00000000-0000-7000-8000-000000000001'")" "$merges"
check "metadata audit rows" "$(q -c "SELECT count(*) FROM tenancy.audit_log WHERE action = 'metadata'")" "$merges"
check "status audit rows (two per flip)" "$(q -c "SELECT count(*) FROM tenancy.audit_log WHERE action = 'status'")" "$((2 * flips))"
check "tenants not active" "$(q -c "SELECT count(*) FROM tenancy.tenants WHERE status <> 'active'")" 0
