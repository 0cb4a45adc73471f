#!/usr/bin/env bash
# SPEC §8.2, first part: the transaction-local context reaches the workers.
# set_tenant(…, true) (and clear_tenant(true)) inside a transaction block is
# seen by every worker the transaction reaches, also by connections opened
# before it, and a savepoint rolled back takes the worker back too; without
# the user setting citus.propagate_set_commands.  (Checking the context on
# the workers needs the catalog there: not yet.)
set -euo pipefail
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
q -c "CREATE EXTENSION tenancy"
a=$(q -c "SELECT id FROM tenancy.create_tenant('acme', 'Acme')")
b=$(q -c "SELECT id FROM tenancy.create_tenant('globex', 'Globex')")
q -c "CREATE TABLE probe (tenant_id uuid NOT NULL, v int)" -c "SELECT create_distributed_table('probe', 'tenant_id')" >/dev/null
# One row per tenant; each query below is routed to the worker of the row it names.
q -c "INSERT INTO probe VALUES ('$a', 1), ('$b', 2)"
seen() { echo "SELECT current_setting('tenancy.tenant_id', true) FROM probe WHERE tenant_id = '$1'"; }
nodes=$(q -c "SELECT count(DISTINCT nodeport) FROM citus_shards WHERE table_name = 'probe'::regclass")
[ "$nodes" = 2 ] || { echo "probe's shards are on $nodes nodes, want 2"; exit 1; }

out=$(q <<SQL
SHOW citus.propagate_set_commands;
BEGIN;
SELECT count(*) FROM probe;                  -- connections to both workers open first
SELECT identifier FROM tenancy.set_tenant('acme', true);
$(seen "$a");
$(seen "$b");
SAVEPOINT s;
SELECT identifier FROM tenancy.set_tenant('globex', true);
$(seen "$a");
ROLLBACK TO SAVEPOINT s;
$(seen "$b");
SELECT tenancy.clear_tenant(true);
$(seen "$a");
COMMIT;
SQL
)
want=$(printf '%s\n' none 2 acme "$a" "$a" globex "$b" "$a" "" "")
[ "$out" = "$want" ] || { echo "got:"; echo "$out"; echo "want:"; echo "$want"; exit 1; }

# A session-level context could not reach them (Citus sends no session
# state): set_tenant refuses it for an rls tenant, with 0A000.
out=$(q -c "SELECT identifier FROM tenancy.set_tenant('acme')" -v VERBOSITY=verbose 2>&1 || true)
case "$out" in *"ERROR:  0A000: a session-level tenant context does not reach the workers"*) ;;
  *) echo "session-level set_tenant under Citus: $out"; exit 1 ;; esac
# A session-level GUC set by hand reaches no worker either: no rows there.
out=$(q -c "SET tenancy.tenant_id = '$a'" -c "BEGIN" -c "$(seen "$a")" -c "COMMIT")
[ -z "$out" ] || { echo "session-level GUC on a worker: $out"; exit 1; }
echo "set_tenant(…, true) reached both workers, savepoints included"
