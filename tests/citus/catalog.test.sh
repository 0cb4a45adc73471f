#!/usr/bin/env bash
# SPEC §8.1 and §8.2: tenants, status changes and grants made on the
# coordinator are in force on every node in the same transaction.  A worker
# checks a context against its copy of the catalog's state (reference
# tables): a suspended tenant, a revoked grant, a tenant the role was never
# granted and a tenant that does not exist are refused there, by set_tenant
# or by a hand-set GUC, whether the query comes through the coordinator or
# straight to the worker (which has Citus's metadata and can run it).
set -euo pipefail
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
w1() { q -h "$CITUS_DIR/worker1" -p $((CITUS_PORT + 1)) "$@"; }
w2() { q -h "$CITUS_DIR/worker2" -p $((CITUS_PORT + 2)) "$@"; }
# expect_error SQLSTATE CMD...: CMD fails with that SQLSTATE.
expect_error() {
  local state=$1; shift
  local out
  if out=$("$@" -v VERBOSITY=verbose 2>&1); then
    echo "expected $state, got success: $out"; exit 1
  fi
  case "$out" in *"ERROR:  $state:"*) ;; *) echo "expected $state, got: $out"; exit 1 ;; esac
}

q -c "CREATE EXTENSION tenancy"
a=$(q -c "SELECT id FROM tenancy.create_tenant('acme', 'Acme')")
b=$(q -c "SELECT id FROM tenancy.create_tenant('globex', 'Globex')")
q -c "CREATE ROLE cat_app LOGIN" -c "CREATE ROLE cat_other LOGIN" -c "GRANT cat_other TO cat_app" >/dev/null
q -c "SELECT tenancy.grant_tenant('cat_app', '$a')" -c "SELECT tenancy.grant_tenant('cat_other', '$b')" >/dev/null
q -c "CREATE TABLE items (tenant_id uuid NOT NULL, v text)" \
  -c "SELECT create_distributed_table('items', 'tenant_id')" \
  -c "SELECT tenancy.enable_rls('items')" \
  -c "GRANT SELECT, INSERT, UPDATE, DELETE ON items TO cat_app, cat_other" >/dev/null
q -c "INSERT INTO items VALUES ('$a', 'a1'), ('$b', 'b1')"

# The state is on every node: the tenants, and the grants by role name.
for w in w1 w2; do
  got=$($w -c "SELECT string_agg(identifier || ':' || status, ',' ORDER BY identifier) FROM tenancy.cluster_tenants")
  [ "$got" = "acme:active,globex:active" ] || { echo "$w tenants: $got"; exit 1; }
  got=$($w -c "SELECT string_agg(role_name, ',' ORDER BY role_name) FROM tenancy.cluster_grants")
  [ "$got" = "cat_app,cat_other" ] || { echo "$w grants: $got"; exit 1; }
done

# Straight to a worker (which has Citus's metadata and runs the query
# across the cluster), the request form sees the tenant's rows and only
# those; granted through membership (cat_other's grant) too, as on one node.
for w in w1 w2; do
  got=$($w -U cat_app -c "BEGIN" -c "SELECT FROM tenancy.set_tenant('acme', true)" -c "SELECT string_agg(v, ',' ORDER BY v) FROM items" -c "COMMIT")
  [ "$got" = "a1" ] || { echo "$w acme through cat_app: $got"; exit 1; }
  got=$($w -U cat_app -c "BEGIN" -c "SELECT FROM tenancy.set_tenant('globex', true)" -c "SELECT string_agg(v, ',' ORDER BY v) FROM items" -c "COMMIT")
  [ "$got" = "b1" ] || { echo "$w globex through membership in cat_other: $got"; exit 1; }
  # A hand-set context is checked there as on one node.
  got=$($w -U cat_app -c "SET tenancy.tenant_id = '$a'" -c "SELECT tenancy.current_tenant_id()")
  [ "$got" = "$a" ] || { echo "$w hand-set acme: $got"; exit 1; }
  # No context: no rows.
  got=$($w -U cat_app -c "SELECT count(*) FROM items")
  [ "$got" = 0 ] || { echo "$w no context: $got rows"; exit 1; }
done

# A role not granted: refused on the coordinator and on each worker.
q -c "REVOKE cat_other FROM cat_app" >/dev/null
expect_error 42501 q -U cat_app -c "BEGIN" -c "SELECT tenancy.set_tenant('globex', true)"
for w in w1 w2; do
  expect_error 42501 $w -U cat_app -c "SET tenancy.tenant_id = '$b'" -c "SELECT tenancy.current_tenant_id()"
  expect_error 42501 $w -U cat_app -c "BEGIN" -c "SELECT tenancy.set_tenant('globex', true)"
done
# A forged context sent through the coordinator (SET LOCAL, which Citus
# propagates) is checked on the worker too.
expect_error 42501 q -U cat_app -c "BEGIN" -c "SET LOCAL citus.propagate_set_commands = 'local'" \
  -c "SET LOCAL tenancy.tenant_id = '$b'" -c "SELECT count(*) FROM items WHERE tenant_id = '$b'"
# set_config never reaches the workers: the worker sees no tenant, no rows.
got=$(q -U cat_app -c "BEGIN" -c "SELECT set_config('tenancy.tenant_id', '$a', true)" -c "SELECT count(*) FROM items WHERE tenant_id = '$a'" -c "COMMIT" | tail -1)
# (the coordinator's own check passes: cat_app may act for acme)
[ "$got" = 0 ] || { echo "set_config context reached a worker: $got rows"; exit 1; }
# A tenant that does not exist.
for w in w1 w2; do
  expect_error P0002 $w -U cat_app -c "SET tenancy.tenant_id = '00000000-0000-0000-0000-000000000001'" -c "SELECT tenancy.current_tenant_id()"
done

# A suspension rolled back changes nothing; committed, it is in force on
# every node at once.
q -c "BEGIN" -c "SELECT tenancy.suspend_tenant('$a')" -c "ROLLBACK" >/dev/null
for w in w1 w2; do
  got=$($w -U cat_app -c "BEGIN" -c "SELECT FROM tenancy.set_tenant('acme', true)" -c "SELECT count(*) FROM items" -c "COMMIT")
  [ "$got" = 1 ] || { echo "$w after a rolled-back suspension: $got"; exit 1; }
done
# A session on a worker that checked acme before the suspension.
w1 -U cat_app -c "SET tenancy.tenant_id = '$a'" -c "SELECT tenancy.current_tenant_id() IS NOT NULL" -c "SELECT pg_sleep(3)" \
   -c "SELECT tenancy.current_tenant_id()" > /tmp/tenancy-citus-across.out 2>&1 &
sleep 1.5
q -c "SELECT tenancy.suspend_tenant('$a')" >/dev/null
wait $! || true
out=$(cat /tmp/tenancy-citus-across.out)
out=$(grep -v "^+" <<<"$out"); case "$out" in t*"is suspended, not active"*) ;; *) echo "worker session across the suspension: $out"; exit 1 ;; esac
for w in w1 w2; do
  expect_error 55000 $w -U cat_app -c "SET tenancy.tenant_id = '$a'" -c "SELECT tenancy.current_tenant_id()"
done
expect_error 55000 q -U cat_app -c "BEGIN" -c "SET LOCAL citus.propagate_set_commands = 'local'" \
  -c "SET LOCAL tenancy.tenant_id = '$a'" -c "SELECT count(*) FROM items WHERE tenant_id = '$a'"
q -c "SELECT tenancy.activate_tenant('$a')" >/dev/null

# Through the coordinator, the request form works for the granted tenant,
# the INSERT's tenant column is filled in, a row of another tenant is refused.
got=$(q -U cat_app <<SQL
BEGIN;
SELECT identifier FROM tenancy.set_tenant('acme', true);
INSERT INTO items (v) VALUES ('a2');
UPDATE items SET v = v || '!' WHERE v = 'a1';
SELECT string_agg(v, ',' ORDER BY v) FROM items;
COMMIT;
SQL
)
[ "$(echo "$got" | tail -1)" = "a1!,a2" ] || { echo "request as acme: $got"; exit 1; }
expect_error 42501 q -U cat_app -c "BEGIN" -c "SELECT tenancy.set_tenant('acme', true)" -c "INSERT INTO items VALUES ('$b', 'forged')"

# A revoke committed on the coordinator is in force on the workers.
q -c "SELECT tenancy.revoke_tenant('cat_app', '$a')" >/dev/null
for w in w1 w2; do
  expect_error 42501 $w -U cat_app -c "SET tenancy.tenant_id = '$a'" -c "SELECT tenancy.current_tenant_id()"
done
got=$(w1 -c "SELECT count(*) FROM tenancy.cluster_grants WHERE role_name = 'cat_app'")
[ "$got" = 0 ] || { echo "revoked grant still on worker1: $got"; exit 1; }

# DROP OWNED takes a role's grants away on the coordinator (it loses the
# marker privilege); the copy follows, so a new role of the same name (the
# workers match grants by name) inherits nothing there.
q -c "CREATE ROLE cat_gone LOGIN" -c "SELECT tenancy.grant_tenant('cat_gone', '$a')" >/dev/null
got=$(w1 -U cat_gone -c "SET tenancy.tenant_id = '$a'" -c "SELECT tenancy.current_tenant_id()")
[ "$got" = "$a" ] || { echo "cat_gone before DROP OWNED: $got"; exit 1; }
q -c "DROP OWNED BY cat_gone" -c "DROP ROLE cat_gone" -c "CREATE ROLE cat_gone LOGIN" >/dev/null
for w in w1 w2; do
  expect_error 42501 $w -U cat_gone -c "SET tenancy.tenant_id = '$a'" -c "SELECT tenancy.current_tenant_id()"
done

# A tenant removed on the coordinator is gone from every node's copy.
q -c "SET tenancy.soft_delete = off" -c "SELECT tenancy.delete_tenant('$b')" >/dev/null
got=$(w2 -c "SELECT count(*) FROM tenancy.cluster_tenants WHERE id = '$b'")
[ "$got" = 0 ] || { echo "hard-deleted tenant still on worker2"; exit 1; }

# citus_setup() is idempotent: it copies the catalog's state anew.
q -c "SELECT tenancy.citus_setup()" -c "SELECT tenancy.citus_setup()" >/dev/null
got=$(w1 -c "SELECT string_agg(identifier || ':' || status, ',' ORDER BY identifier) FROM tenancy.cluster_tenants")
[ "$got" = "acme:active" ] || { echo "after citus_setup: $got"; exit 1; }
echo "catalog: ok"
