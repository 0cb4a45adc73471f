#!/usr/bin/env bash
# SPEC §8.4: under a tenant context, each single-tenant statement on a
# distributed RLS table runs as one task on the node of the tenant's shard,
# as the hand-written `… WHERE tenant_id = '<uuid>'` does, while the policy
# still guards every shard (src/citus/routing.rs, docs/design/citus-routing.md).
# Checked: the task count and node of every statement shape; the rows they
# see and change; that a forged, suspended or ungranted context is refused
# before anything is routed; and that no plan built for one tenant ever
# runs for another (prepared statements and generic plans, PL/pgSQL, tenant
# switches inside a transaction and across, clear_tenant, savepoints, a
# hand-set GUC, a SQL function body, a cursor).
set -euo pipefail
# Only errors reach the output parsed below (Citus relays workers' warnings,
# e.g. about its maintenance workers when the cluster holds many databases).
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=error"
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
app() { psql -X -q -At -v ON_ERROR_STOP=1 -U app "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

q -c "CREATE EXTENSION tenancy"
(q <<SQL
CREATE TABLE items (tenant_id uuid NOT NULL, id bigint NOT NULL, amount int NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('items', 'tenant_id');
SELECT tenancy.enable_rls('items');
CREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL, body text, PRIMARY KEY (tenant_id, id));
SELECT tenancy.enable_rls('notes');
SELECT create_distributed_table('notes', 'tenant_id', colocate_with => 'items');
SQL
) >/dev/null
shards=$(q -c "SELECT count(*) FROM citus_shards WHERE table_name = 'items'::regclass")
node_of() { q -c "SELECT nodeport FROM citus_shards WHERE shardid = get_shard_id_for_distribution_column('items', '$1')"; }
a=$(q -c "SELECT id FROM tenancy.create_tenant('acme', 'Acme')")
# globex on the other worker than acme, so that a switch changes nodes.
for i in 1 2 3 4 5 6 7 8; do
  b=$(q -c "SELECT id FROM tenancy.create_tenant('globex-$i', 'Globex')")
  [ "$(node_of "$a")" = "$(node_of "$b")" ] || break
done
g=$(q -c "SELECT identifier FROM tenancy.tenants WHERE id = '$b'")
c=$(q -c "SELECT id FROM tenancy.create_tenant('initech', 'Initech')")
s=$(q -c "SELECT id FROM tenancy.create_tenant('umbrella', 'Umbrella')")
(q <<SQL
-- acme 3 items, globex 5, initech 7, umbrella 2; a note per item.
INSERT INTO items SELECT t, g, g * 10 FROM (VALUES ('$a'::uuid, 3), ('$b', 5), ('$c', 7), ('$s', 2)) v(t, n), generate_series(1, n) g;
INSERT INTO notes SELECT tenant_id, id, 'note ' || id FROM items;
CREATE ROLE app LOGIN;
GRANT SELECT, INSERT, UPDATE, DELETE ON items, notes TO app;
SELECT tenancy.grant_tenant('app', '$a');
SELECT tenancy.grant_tenant('app', '$b');
SELECT tenancy.grant_tenant('app', '$s');
SELECT tenancy.suspend_tenant('$s');
SQL
) >/dev/null
[ "$(node_of "$a")" != "$(node_of "$b")" ] || fail "no globex on the other node than acme's"

# EXPLAIN of a statement under tenant $1: "tasks port".
plan() {
  app -c "BEGIN" -c "SELECT 1 FROM tenancy.set_tenant('$1', true)" -c "EXPLAIN (COSTS OFF) $2" -c "ROLLBACK" 2>&1 |
    awk '/Task Count:/ { n = $3 } /Node: host=/ { match($0, /port=[0-9]+/); p = substr($0, RSTART + 5, RLENGTH - 5) } END { print n, p }'
}
expect_routed() {  # tenant uuid, statement
  local got; got=$(plan "$1" "$2")
  [ "$got" = "1 $(node_of "$1")" ] || fail "not routed to the tenant's node ($(node_of "$1")): '$2' -> tasks/port '$got'"
}
for stmt in \
  "SELECT count(*) FROM items" \
  "SELECT * FROM items WHERE amount > 10 ORDER BY id" \
  "SELECT * FROM items i JOIN notes n USING (tenant_id, id)" \
  "SELECT * FROM items i LEFT JOIN notes n ON n.id = i.id" \
  "SELECT * FROM items WHERE id IN (SELECT id FROM notes WHERE body LIKE 'note%')" \
  "SELECT (SELECT count(*) FROM notes), count(*) FROM items" \
  "WITH n AS (SELECT * FROM notes) SELECT count(*) FROM n" \
  "SELECT * FROM (SELECT id, amount FROM items WHERE amount > 0) sub" \
  "UPDATE items SET amount = amount + 1" \
  "UPDATE items SET amount = 0 WHERE id = 2" \
  "DELETE FROM items WHERE id = 3" \
  "DELETE FROM notes" \
  "INSERT INTO notes (tenant_id, id, body) SELECT tenant_id, id + 100, 'copy' FROM items"; do
  expect_routed "$a" "$stmt"
  expect_routed "$b" "$stmt"
done
# The user's own tenant_id = '<uuid>', the hand-written query routing is to
# match, goes where it names.
expect_routed "$a" "SELECT count(*) FROM items WHERE tenant_id = '$a'"
# Another tenant's id in the user's own WHERE: routed to that tenant's shard,
# where acme's policy lets nothing through (rows checked below).
[ "$(plan acme "SELECT * FROM items WHERE tenant_id = '$b'" | cut -d' ' -f1)" = 1 ] || fail "user's tenant_id = other not one task"
# Without a context, a one-table statement goes to one shard (its $K is the
# nil uuid, no tenant's) and a join to every shard; the policy lets nothing
# through either way.  (The first call loads tenancy, as set_tenant would.)
out=$(app -c "SELECT tenancy.current_tenant_id() IS NULL" -c "EXPLAIN (COSTS OFF) SELECT count(*) FROM items" \
  -c "EXPLAIN (COSTS OFF) SELECT count(*) FROM items i JOIN notes n USING (tenant_id, id)" \
  -c "SELECT count(*) FROM items" -c "SELECT count(*) FROM items i JOIN notes n USING (tenant_id, id)" |
  awk '/Task Count:/ { print $3; next } /^[a-z0-9]+$/ { print }' | tr '\n' ' ')
[ "$out" = "t 1 $shards 0 0 " ] || fail "no context: '$out', want 't 1 $shards 0 0 '"
# A role that bypasses RLS gets no security quals, so nothing is added.
got=$(q -c "BEGIN" -c "SELECT 1 FROM tenancy.set_tenant('acme', true)" -c "EXPLAIN (COSTS OFF) SELECT count(*) FROM items" -c "ROLLBACK" | awk '/Task Count:/ { print $3 }')
[ "$got" = "$shards" ] || fail "superuser (bypasses RLS): $got tasks, want $shards"
# And the negative control: with routing off, the same statements fan out.
got=$(app -c "SET tenancy.citus_routing = off" -c "BEGIN" -c "SELECT 1 FROM tenancy.set_tenant('acme', true)" \
  -c "EXPLAIN (COSTS OFF) SELECT count(*) FROM items" -c "ROLLBACK" | awk '/Task Count:/ { print $3 }')
[ "$got" = "$shards" ] || fail "tenancy.citus_routing = off: $got tasks, want $shards"
echo "routed: SELECT (plain, filtered, joins, sub-queries, CTE), UPDATE, DELETE, INSERT ... SELECT: 1 task on the tenant's node"

# Rows: what each statement sees and changes is the tenant's, routed or not.
in_tx() {  # tenant, statements...: runs them as app after set_tenant(tenant, true), rolled back
  local t=$1; shift
  { echo "BEGIN;"; echo "SELECT 1 FROM tenancy.set_tenant('$t', true) \\g /dev/null"; printf '%s;\n' "$@"; echo "ROLLBACK;"; } | app "${opts[@]}"
}
opts=()
[ "$(in_tx acme "SELECT count(*), sum(amount) FROM items")" = "3|60" ] || fail "acme's items"
[ "$(in_tx $g "SELECT count(*), sum(amount) FROM items")" = "5|150" ] || fail "globex's items"
[ "$(in_tx acme "SELECT count(*) FROM items WHERE tenant_id = '$b'")" = 0 ] || fail "acme reads globex's rows by naming them"
[ "$(in_tx acme "SELECT count(*) FROM items i JOIN notes n USING (tenant_id, id)")" = 3 ] || fail "join"
[ "$(in_tx acme "SELECT count(*) FROM items i LEFT JOIN notes n ON n.id = i.id")" = 3 ] || fail "left join"
[ "$(in_tx acme "WITH n AS (SELECT * FROM notes) SELECT count(*) FROM n")" = 3 ] || fail "CTE"
[ "$(in_tx acme "SELECT count(*) FROM items WHERE id IN (SELECT id FROM notes)")" = 3 ] || fail "sublink"
# (INSERT ... SELECT ... RETURNING on an RLS table fails in Citus 13.2 with
# "missing FROM-clause entry", routed or not: counted afterwards instead.)
out=$(in_tx acme "UPDATE items SET amount = amount + 1 RETURNING tenant_id" "DELETE FROM notes WHERE id = 1 RETURNING tenant_id" \
  "INSERT INTO notes (tenant_id, id, body) SELECT tenant_id, id + 100, 'copy' FROM items" \
  "SELECT tenant_id FROM notes WHERE body = 'copy'" | sort -u)
[ "$out" = "$a" ] || fail "writes under acme touched: $out"
out=$(in_tx acme "UPDATE items SET amount = amount + 1" "SELECT tenant_id, sum(amount) FROM items GROUP BY 1" | tail -1)
[ "$out" = "$a|63" ] || fail "acme's update: $out"
[ "$(q -c "SELECT sum(amount) FROM items WHERE tenant_id <> '$a'")" = "$((150 + 280 + 30))" ] || fail "others' rows changed"
echo "rows: each statement sees and changes only the tenant's rows"

# Tables Citus does not shard by the policy's column are not routed, and
# read right: distributed by another column, a reference table, a local one.
(q <<SQL
CREATE TABLE by_id (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('by_id', 'id');
SELECT tenancy.enable_rls('by_id');
CREATE TABLE shared (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT create_reference_table('shared');
SELECT tenancy.enable_rls('shared');
CREATE TABLE local_t (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenancy.enable_rls('local_t');
INSERT INTO by_id SELECT tenant_id, row_number() OVER () FROM items;
INSERT INTO shared SELECT * FROM by_id;
INSERT INTO local_t SELECT * FROM by_id;
GRANT SELECT ON by_id, shared, local_t TO app;
SQL
) >/dev/null
for t in by_id shared local_t; do
  got=$(in_tx acme "SELECT count(*) FROM $t" "SELECT count(*) FROM $t WHERE id > 0" "SELECT count(*) FROM $t x JOIN $t y USING (id)" | tr '\n' ' ')
  [ "$got" = "3 3 3 " ] || fail "$t under acme: $got"
done
echo "tables not sharded by the tenant column: not routed, right rows"

# A forged context is refused before anything is routed, with the errors
# current_tenant_id() raises: a tenant not granted to the role (42501),
# suspended (55000), unknown (P0002).
forged() {  # uuid, statement -> SQLSTATE
  app -v VERBOSITY=verbose -c "BEGIN" -c "SET LOCAL tenancy.tenant_id = '$1'" -c "$2" -c "ROLLBACK" 2>&1 |
    sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1
}
for stmt in "SELECT count(*) FROM items" "EXPLAIN SELECT count(*) FROM items" "UPDATE items SET amount = 0" "DELETE FROM notes"; do
  [ "$(forged "$c" "$stmt")" = 42501 ] || fail "ungranted initech: '$stmt' -> $(forged "$c" "$stmt")"
  [ "$(forged "$s" "$stmt")" = 55000 ] || fail "suspended umbrella: '$stmt'"
  [ "$(forged 00000000-0000-7000-8000-000000000000 "$stmt")" = P0002 ] || fail "unknown tenant: '$stmt'"
done
[ "$(q -c "SELECT count(*) FROM items WHERE amount = 0")" = 0 ] || fail "a refused statement wrote"
echo "forged context: 42501 / 55000 / P0002, nothing routed"

# Plans.  A prepared statement run 8 times (custom plans, then the generic
# one PostgreSQL keeps), under acme, then globex in the same transaction,
# back to acme through ROLLBACK TO SAVEPOINT, a hand-set GUC, clear_tenant,
# and the next transaction; with generic plans forced too.
for mode in auto force_generic_plan force_custom_plan; do
  out=$(app <<SQL
SET plan_cache_mode = $mode;
PREPARE p AS SELECT count(*) FROM items;
PREPARE j AS SELECT count(*) FROM items i JOIN notes n USING (tenant_id, id);
BEGIN;
SELECT 1 FROM tenancy.set_tenant('acme', true) \g /dev/null
EXECUTE p; EXECUTE p; EXECUTE p; EXECUTE p; EXECUTE p; EXECUTE p; EXECUTE p; EXECUTE p;
EXECUTE j; EXECUTE j; EXECUTE j; EXECUTE j; EXECUTE j; EXECUTE j; EXECUTE j;
SAVEPOINT s;
SELECT 1 FROM tenancy.set_tenant('$g', true) \g /dev/null
EXECUTE p; EXECUTE j;
ROLLBACK TO SAVEPOINT s;
EXECUTE p;
SET LOCAL citus.propagate_set_commands = 'local';
SET LOCAL tenancy.tenant_id = '$b';
EXECUTE p;
SELECT tenancy.clear_tenant(true);
EXECUTE p;
COMMIT;
BEGIN;
SELECT 1 FROM tenancy.set_tenant('$g', true) \g /dev/null
EXECUTE p;
COMMIT;
BEGIN;
SELECT 1 FROM tenancy.set_tenant('acme', true) \g /dev/null
EXECUTE p;
EXPLAIN (COSTS OFF) EXECUTE p;
COMMIT;
SQL
)
  want=$(printf '%s\n' 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 5 5 3 5 "" 0 5 3)
  got=$(echo "$out" | grep -v "^ \|Custom Scan\|^Aggregate" | head -23)
  [ "$got" = "$want" ] || { echo "got:"; echo "$got"; fail "prepared statements ($mode)"; }
  echo "$out" | grep -q "Task Count: 1" || fail "prepared statement no longer routed ($mode)"
done
echo "prepared statements (8 runs, generic and custom plans): right at every tenant switch, savepoint, hand-set GUC, clear_tenant"

# One-table statements are routed by a parameter tenancy adds past the
# statement's own ($K), filled in at each execution: the statement's own
# parameters, used or not, never stand in for it, whatever they hold.
for mode in auto force_generic_plan force_custom_plan; do
  out=$(app <<SQL
SET plan_cache_mode = $mode;
PREPARE u(int, uuid, text) AS SELECT count(*) FROM items WHERE amount > \$1;
PREPARE w(uuid) AS SELECT count(*) FROM items WHERE amount > 0;
PREPARE upd(int, uuid) AS UPDATE items SET amount = amount + \$1 WHERE id <= 2;
BEGIN;
SELECT 1 FROM tenancy.set_tenant('acme', true) \g /dev/null
EXECUTE u(0, '$b', 'x'); EXECUTE u(0, '$b', 'x'); EXECUTE u(0, '$b', 'x'); EXECUTE u(0, '$b', 'x');
EXECUTE u(0, '$b', 'x'); EXECUTE u(0, '$b', 'x'); EXECUTE u(15, '$b', 'x');
EXECUTE w('$b'); EXECUTE w('$b'); EXECUTE w('$b'); EXECUTE w('$b'); EXECUTE w('$b'); EXECUTE w('$b'); EXECUTE w('$b');
SELECT 1 FROM tenancy.set_tenant('$g', true) \g /dev/null
EXECUTE u(0, '$a', 'x'); EXECUTE w('$a');
EXECUTE upd(1, '$a'); EXECUTE upd(1, '$a'); EXECUTE upd(1, '$a'); EXECUTE upd(1, '$a'); EXECUTE upd(1, '$a'); EXECUTE upd(1, '$a'); EXECUTE upd(1, '$a');
SELECT sum(amount) FROM items;
ROLLBACK;
SQL
)
  want=$(printf '%s\n' 3 3 3 3 3 3 2 3 3 3 3 3 3 3 5 5 "$((150 + 7 * 2))")
  [ "$out" = "$want" ] || { echo "got:"; echo "$out"; fail "statement parameters ($mode)"; }
done
# Prepared with no context, run under tenants: routed all the same (the
# parameter is the context of each execution), and with Citus's fast path
# off (its router planner does not prune on parameters: every shard, each
# answering for the tenant through the parameter and its own policy).
out=$(app <<SQL
PREPARE n AS SELECT count(*) FROM items;
EXECUTE n; EXECUTE n; EXECUTE n; EXECUTE n; EXECUTE n; EXECUTE n;
BEGIN;
SELECT 1 FROM tenancy.set_tenant('$g', true) \g /dev/null
EXECUTE n;
EXPLAIN (COSTS OFF) EXECUTE n;
SET LOCAL citus.enable_fast_path_router_planner = off;
SELECT count(*) FROM items;
SELECT count(*) FROM items WHERE amount > 0;
COMMIT;
SQL
)
[ "$(echo "$out" | grep -v '^ \|Custom Scan' | tr '\n' ' ')" = "0 0 0 0 0 0 5 5 5 " ] || { echo "$out"; fail "prepared without a context"; }
echo "$out" | grep -q "Task Count: 1" || fail "prepared without a context: not routed"
echo "statement parameters never route; prepared before any context: routed under each tenant"

# PL/pgSQL's static SQL keeps its plans: the same.
q >/dev/null <<'SQL'
CREATE FUNCTION count_items() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  SELECT count(*) INTO n FROM items;
  RETURN n;
END $$;
CREATE FUNCTION count_for(t text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  PERFORM tenancy.set_tenant(t, true);
  SELECT count(*) INTO n FROM items;
  RETURN n;
END $$;
-- Variables in the statement, and a uuid variable that is not the tenant.
CREATE FUNCTION count_above(floor int, other uuid) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint; unused uuid := other; k int := floor;
BEGIN
  SELECT count(*) INTO n FROM items WHERE amount > k;
  RETURN n;
END $$;
SQL
out=$(app <<SQL
BEGIN;
SELECT 1 FROM tenancy.set_tenant('acme', true) \g /dev/null
SELECT count_items(), count_items(), count_items(), count_items(), count_items(), count_items(), count_items();
SELECT 1 FROM tenancy.set_tenant('$g', true) \g /dev/null
SELECT count_items();
SELECT count_for('acme'), count_for('$g'), count_for('acme');
SELECT 1 FROM tenancy.set_tenant('$g', true) \g /dev/null
SELECT count_above(15, '$b'), count_above(15, '$b'), count_above(15, '$b'), count_above(15, '$b'), count_above(15, '$b'), count_above(15, '$b');
SELECT 1 FROM tenancy.set_tenant('acme', true) \g /dev/null
SELECT count_above(15, '$b'), count_above(0, '$b');
COMMIT;
SQL
)
[ "$out" = "$(printf '%s\n' "3|3|3|3|3|3|3" 5 "3|5|3" "4|4|4|4|4|4" "2|3")" ] || { echo "$out"; fail "PL/pgSQL"; }
echo "PL/pgSQL: right at every tenant switch, its variables never route"

# A plan the plan cache does not keep, planned under one tenant and first
# run under another: a SQL function's body (planned before it runs) and a
# cursor opened before set_tenant.  Either right or refused (0A000), never
# another tenant's count.
q -c "CREATE FUNCTION switch_and_count(t text) RETURNS bigint LANGUAGE sql AS \$\$ SELECT 1 FROM tenancy.set_tenant(t, true); SELECT count(*) FROM items; \$\$"
out=$(opts=(-v VERBOSITY=verbose); in_tx acme "SELECT switch_and_count('$g')" 2>&1 | head -1 || true)
case "$out" in 5|"ERROR:  0A000:"*) ;; *) fail "SQL function switching tenant: $out" ;; esac
echo "SQL function switching tenant: $out"
out=$(app -v VERBOSITY=verbose 2>&1 <<SQL | head -1 || true
BEGIN;
SELECT 1 FROM tenancy.set_tenant('acme', true) \g /dev/null
DECLARE c CURSOR FOR SELECT count(*) FROM items;
SELECT 1 FROM tenancy.set_tenant('$g', true) \g /dev/null
FETCH c;
ROLLBACK;
SQL
)
case "$out" in "ERROR:  0A000:"*) ;; *) fail "cursor opened under acme, read under globex: $out" ;; esac
# Read under the tenant it was opened for, then switched: Citus ran it at
# the first read, so the rest is acme's, as on one node.
out=$(app <<SQL
BEGIN;
SELECT 1 FROM tenancy.set_tenant('acme', true) \g /dev/null
DECLARE c CURSOR FOR SELECT id FROM items ORDER BY id;
FETCH 1 FROM c;
SELECT 1 FROM tenancy.set_tenant('$g', true) \g /dev/null
FETCH ALL FROM c;
ROLLBACK;
SQL
)
[ "$out" = "$(printf '%s\n' 1 2 3)" ] || fail "cursor read across a switch: $out"
echo "plans run under another tenant than planned for: refused (0A000)"
echo "routing: every single-tenant statement one task on its node; no plan outlives its tenant"
