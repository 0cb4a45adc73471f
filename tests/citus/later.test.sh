#!/usr/bin/env bash
# SPEC §8 setup, the other order: a tenancy database that existed before
# Citus (tenants, grants, a table enable_rls protects with the one-node
# policy form) moves onto the cluster.  After CREATE EXTENSION citus and
# tenancy.citus_setup(), the workers have the extension and the catalog's
# state, the old policy has the form Citus distributes, and the table can be
# distributed and used as on one node.  citus_setup() is refused with 0A000
# in a database without Citus.
set -euo pipefail
db=${PGDATABASE}_later
node() { case $1 in 0) echo "-h $CITUS_DIR/coordinator -p $CITUS_PORT";; 1) echo "-h $CITUS_DIR/worker1 -p $((CITUS_PORT + 1))";; 2) echo "-h $CITUS_DIR/worker2 -p $((CITUS_PORT + 2))";; esac; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 $(node 0) -d "$db" "$@"; }
for i in 0 1 2; do
  psql -X -q $(node $i) -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
done

# One node's tenancy, as it was before Citus (the server preloads Citus, so
# the policy is given its one-node form by hand).
q -c "CREATE EXTENSION tenancy"
out=$(q -c "SELECT tenancy.citus_setup()" -v VERBOSITY=verbose 2>&1 || true)
case "$out" in *"ERROR:  0A000: Citus is not installed in this database"*) ;; *) echo "citus_setup without citus: $out"; exit 1 ;; esac
a=$(q -c "SELECT id FROM tenancy.create_tenant('acme', 'Acme')")
b=$(q -c "SELECT id FROM tenancy.create_tenant('globex', 'Globex')")
q -c "SELECT tenancy.suspend_tenant('$b')" >/dev/null
q -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'later_app') THEN CREATE ROLE later_app LOGIN; END IF; END \$\$" \
  -c "SELECT tenancy.grant_tenant('later_app', '$a')" >/dev/null
q -c "CREATE TABLE items (tenant_id uuid NOT NULL, v text)" -c "SELECT tenancy.enable_rls('items')" \
  -c "ALTER POLICY tenancy_isolation ON items USING (tenant_id = (SELECT tenancy.current_tenant_id())) WITH CHECK (tenant_id = (SELECT tenancy.current_tenant_id()))" \
  -c "GRANT SELECT, INSERT, UPDATE, DELETE ON items TO later_app" >/dev/null
q -c "INSERT INTO items VALUES ('$a', 'a1'), ('$b', 'b1')"

# Citus comes.
for i in 1 2; do psql -X -q $(node $i) -d "$db" -c "CREATE EXTENSION citus"; done
q -c "CREATE EXTENSION citus" -c "SELECT citus_set_coordinator_host('127.0.0.1', $CITUS_PORT)" \
  -c "SELECT citus_add_node('127.0.0.1', $((CITUS_PORT + 1)))" -c "SELECT citus_add_node('127.0.0.1', $((CITUS_PORT + 2)))" >/dev/null
out=$(q -c "SELECT create_distributed_table('items', 'tenant_id')" 2>&1 || true)
case "$out" in *"ubqueries are not supported in policies"*) ;; *) echo "distributing before citus_setup: $out"; exit 1 ;; esac
notices=$(q -c "SELECT tenancy.citus_setup()" 2>&1)
case "$notices" in *"policy of items rewritten for Citus"*) ;; *) echo "citus_setup said: $notices"; exit 1 ;; esac
q -c "SELECT create_distributed_table('items', 'tenant_id')" >/dev/null

for i in 1 2; do
  got=$(psql -X -q -At $(node $i) -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'tenancy'")
  [ -n "$got" ] || { echo "worker $i has no tenancy extension"; exit 1; }
  got=$(psql -X -q -At $(node $i) -d "$db" -c "SELECT string_agg(identifier || ':' || status, ',' ORDER BY identifier) FROM tenancy.cluster_tenants")
  [ "$got" = "acme:active,globex:suspended" ] || { echo "worker $i tenants: $got"; exit 1; }
  got=$(psql -X -q -At $(node $i) -d "$db" -U later_app -c "BEGIN" -c "SELECT FROM tenancy.set_tenant('acme', true)" -c "SELECT string_agg(v, ',') FROM items" -c "COMMIT")
  [ "$got" = "a1" ] || { echo "worker $i, acme's rows: $got"; exit 1; }
done
got=$(q -U later_app -c "BEGIN" -c "SELECT FROM tenancy.set_tenant('acme', true)" -c "INSERT INTO items (v) VALUES ('a2')" \
        -c "SELECT string_agg(v, ',' ORDER BY v) FROM items" -c "COMMIT")
[ "$got" = "a1,a2" ] || { echo "coordinator, acme's rows: $got"; exit 1; }
# The suspension made before Citus is in force on the workers.
out=$(psql -X -q -At $(node 2) -d "$db" -U later_app -c "SET tenancy.tenant_id = '$b'" -c "SELECT tenancy.current_tenant_id()" 2>&1 || true)
case "$out" in *"is suspended, not active"*) ;; *) echo "suspended tenant on worker 2: $out"; exit 1 ;; esac
echo "later: ok"
