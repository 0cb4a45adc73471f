#!/usr/bin/env bash
# SPEC §8, schema tenants under citus.enable_schema_based_sharding: the
# tenant's schema is a distributed schema and its migrated tables are
# single-shard tables of it; a granted role's set_tenant plus unqualified
# statements run as one task on the schema's node; CALL tenancy.migrate()
# changes every tenant's shards where they live, and a failed migration
# leaves nothing behind on any node; a tenant moved with citus_schema_move
# keeps working; another tenant's role reaches none of it, on any node;
# delete_tenant(…, destroy_data => true) leaves no shard anywhere.  And with
# schema-based sharding off, a schema tenant stays what it is on one node.
set -euo pipefail
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
# The SQLSTATE of the error psql's statements end with ("" if none).
sqlstate() { psql -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=sqlstate "$@" 2>&1 >/dev/null | sed -n 's/^ERROR: *//p' | tail -1; }
fail() { echo "FAIL: $*"; exit 1; }
workers=($((CITUS_PORT + 1)) $((CITUS_PORT + 2)))
db=$PGDATABASE

# New sessions of this database shard new schemas by schema.
q -c "ALTER DATABASE \"$db\" SET citus.enable_schema_based_sharding = on"
q -c "CREATE EXTENSION tenancy"
# Several statements in one migration: Citus sends a DDL statement's text to
# the shards, so each has to go alone.
q -c "SELECT tenancy.add_migration('001_items', \$\$
  CREATE TABLE items (id bigserial PRIMARY KEY, v text NOT NULL);
  CREATE INDEX items_v ON items (v);
  CREATE TABLE notes (id bigserial PRIMARY KEY, item_id bigint REFERENCES items (id) ON DELETE CASCADE, body text)
\$\$)" >/dev/null
for t in acme globex; do
  q -c "SELECT tenancy.create_tenant('$t', '$t', isolation => 'schema')" >/dev/null
done

# 1. Distributed schemas, single-shard tables of them, in the schema's colocation group.
got=$(q -c "SELECT string_agg(schema_name::text, ',' ORDER BY schema_name::text) FROM citus_schemas")
[ "$got" = "tenant_acme,tenant_globex" ] || fail "citus_schemas: $got"
got=$(q -c "SELECT string_agg(t.table_name::text || ':' || t.citus_table_type || ':' || (t.colocation_id = s.colocation_id), ',' ORDER BY t.table_name::text)
              FROM citus_tables t JOIN citus_schemas s ON s.schema_name::text = split_part(t.table_name::text, '.', 1)")
want="tenant_acme.items:schema:true,tenant_acme.notes:schema:true,tenant_globex.items:schema:true,tenant_globex.notes:schema:true"
[ "$got" = "$want" ] || fail "citus_tables: $got"
# The coordinator keeps no data of them: every shard is on a worker.
got=$(q -c "SELECT count(*) FROM citus_shards WHERE table_name::text LIKE 'tenant\_%' AND nodeport NOT IN (${workers[0]}, ${workers[1]})")
[ "$got" = 0 ] || fail "$got tenant shards outside the workers"
echo "create_tenant: distributed schemas, their tables single-shard tables of them"

node_of() { q -c "SELECT nodeport FROM citus_shards WHERE table_name = '$1.items'::regclass"; }
# Every worker that holds tenant_acme's shards lists them in its pg_class.
relations_on_workers() {
  q -c "SELECT string_agg(nodeport || '=' || result, ',' ORDER BY nodeport) FROM run_command_on_workers(\$\$SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '$1' AND c.relkind IN ('r', 'p')\$\$)"
}

# 2. A granted non-superuser role, unqualified names, one task on the schema's node.
# Roles are the cluster's: another database of the suite may have made them.
for r in schema_app_a schema_app_b; do
  q -c "SELECT 1 FROM pg_roles WHERE rolname = '$r'" | grep -q 1 || q -c "CREATE ROLE $r LOGIN"
done
q -c "SELECT tenancy.grant_tenant('schema_app_a', (SELECT id FROM tenancy.tenant_by_identifier('acme')))" \
  -c "SELECT tenancy.grant_tenant('schema_app_b', (SELECT id FROM tenancy.tenant_by_identifier('globex')))" >/dev/null
as_a() { q -U schema_app_a "$@"; }
as_b() { q -U schema_app_b "$@"; }
acme_node=$(node_of tenant_acme)
# Task counts and nodes of each EXPLAIN, then the rows.
routed=$(as_a <<'SQL'
BEGIN;
SELECT identifier FROM tenancy.set_tenant('acme', true);
INSERT INTO items (v) VALUES ('a1'), ('a2'), ('a3');
INSERT INTO notes (item_id, body) SELECT id, 'note of ' || v FROM items WHERE v = 'a1';
UPDATE items SET v = 'a2-new' WHERE v = 'a2';
DELETE FROM items WHERE v = 'a3';
EXPLAIN (COSTS OFF) SELECT * FROM items WHERE v = 'a1';
EXPLAIN (COSTS OFF) INSERT INTO items (v) VALUES ('x');
EXPLAIN (COSTS OFF) UPDATE items SET v = 'y' WHERE id = 1;
EXPLAIN (COSTS OFF) DELETE FROM items WHERE v = 'z';
EXPLAIN (COSTS OFF) SELECT i.v, n.body FROM items i JOIN notes n ON n.item_id = i.id;
SELECT string_agg(v, ',' ORDER BY v) FROM items;
COMMIT;
SQL
)
tasks=$(grep -c '^ *Task Count: 1$' <<<"$routed" || true)
[ "$tasks" = 5 ] || fail "set_tenant(…, true): $tasks of 5 statements ran as one task:"$'\n'"$routed"
nodes=$(grep -o 'port=[0-9]*' <<<"$routed" | sort -u)
[ "$nodes" = "port=$acme_node" ] || fail "tasks ran on $nodes, tenant_acme is on $acme_node"
[ "$(tail -1 <<<"$routed")" = "a1,a2-new" ] || fail "acme's rows: $(tail -1 <<<"$routed")"
echo "set_tenant(…, true): SELECT, INSERT, UPDATE, DELETE and a join as one task on port $acme_node"
# Session-level set_tenant works the same: the schema on search_path is all
# it takes, and names are resolved on the coordinator.
got=$(as_a -c "SELECT identifier FROM tenancy.set_tenant('acme')" -c "EXPLAIN (COSTS OFF) SELECT count(*) FROM items" -c "SELECT count(*) FROM items" | tr '\n' ' ')
grep -q "Task Count: 1 .*port=$acme_node .* 2 $" <<<"$got" || fail "session-level set_tenant: $got"
echo "set_tenant(…) at session level: one task on port $acme_node"

# 3. Isolation, on every node: globex's role reaches no table of acme.
[ "$(sqlstate -U schema_app_b -c "SELECT tenancy.set_tenant('acme', true)")" = 42501 ] || fail "schema_app_b set acme"
[ "$(sqlstate -U schema_app_b -c "SELECT count(*) FROM tenant_acme.items")" = 42501 ] || fail "schema_app_b read tenant_acme.items"
# (Without USAGE on the schema, an unqualified name does not resolve there.)
[ "$(sqlstate -U schema_app_b -c "SET search_path = tenant_acme" -c "DELETE FROM items")" = 42P01 ] || fail "schema_app_b deleted from acme"
shard=$(q -c "SELECT shard_name('tenant_acme.items'::regclass, shardid) FROM pg_dist_shard WHERE logicalrelid = 'tenant_acme.items'::regclass")
for p in "${workers[@]}"; do
  [ "$(sqlstate -h 127.0.0.1 -p "$p" -U schema_app_b -c "SELECT count(*) FROM $shard")" = 42501 ] || fail "schema_app_b read $shard on port $p"
done
# …while acme's own role reads its shard on its node, until acme is suspended.
[ "$(q -h 127.0.0.1 -p "$acme_node" -U schema_app_a -c "SELECT count(*) FROM $shard")" = 2 ] || fail "schema_app_a cannot read its shard"
q -c "SELECT tenancy.suspend_tenant(id) FROM tenancy.tenant_by_identifier('acme')" >/dev/null
[ "$(sqlstate -h 127.0.0.1 -p "$acme_node" -U schema_app_a -c "SELECT count(*) FROM $shard")" = 42501 ] || fail "suspended acme's shard readable on its worker"
q -c "SELECT tenancy.activate_tenant(id) FROM tenancy.tenant_by_identifier('acme')" >/dev/null
echo "isolation: globex's role is refused acme's tables on the coordinator and both workers; suspending acme closes its shard"

# 4. citus_schema_move: the tenant keeps working from its new node.
other=${workers[0]}; [ "$acme_node" = "$other" ] && other=${workers[1]}
q -c "SELECT citus_schema_move('tenant_acme', '127.0.0.1', $other, shard_transfer_mode => 'block_writes')" >/dev/null
[ "$(node_of tenant_acme)" = "$other" ] || fail "tenant_acme still on $(node_of tenant_acme)"
moved=$(as_a <<'SQL'
BEGIN;
SELECT identifier FROM tenancy.set_tenant('acme', true);
INSERT INTO items (v) VALUES ('after-move');
EXPLAIN (COSTS OFF) SELECT * FROM items;
SELECT string_agg(v, ',' ORDER BY v) FROM items;
COMMIT;
SQL
)
grep -q "Task Count: 1" <<<"$moved" && grep -q "port=$other " <<<"$moved" || fail "after the move: $moved"
[ "$(tail -1 <<<"$moved")" = "a1,a2-new,after-move" ] || fail "acme's rows after the move: $(tail -1 <<<"$moved")"
echo "citus_schema_move to port $other: set_tenant and queries still work, one task there"

# 5. CALL tenancy.migrate(): a column and a table on every tenant's shards,
# wherever each lives now; the new table open to the tenant's grantee.
q -c "SELECT tenancy.add_migration('002_qty', \$\$
  ALTER TABLE items ADD COLUMN qty int NOT NULL DEFAULT 1;
  CREATE TABLE tags (item_id bigint REFERENCES items (id), tag text);
  CREATE INDEX notes_body ON notes (body);
  ALTER TABLE notes ADD COLUMN at timestamptz
\$\$)" >/dev/null
q -c "CALL tenancy.migrate()"
got=$(q -c "SELECT string_agg(identifier || ':' || applied || ':' || pending || ':' || coalesce(last_error, ''), ',' ORDER BY identifier) FROM tenancy.migration_status")
[ "$got" = "acme:2:0:,globex:2:0:" ] || fail "migration_status: $got"
for s in tenant_acme tenant_globex; do
  got=$(q -c "SELECT string_agg(result, ',') FROM run_command_on_placements('$s.items', \$\$SELECT count(*) FROM pg_attribute WHERE attrelid = '%s'::regclass AND attname = 'qty' AND NOT attisdropped\$\$)")
  [ "$got" = 1 ] || fail "$s.items placements with qty: $got"
  got=$(q -c "SELECT string_agg(result, ',') FROM run_command_on_placements('$s.notes', \$\$SELECT count(*) FROM pg_attribute WHERE attrelid = '%s'::regclass AND attname = 'at'\$\$)")
  [ "$got" = 1 ] || fail "$s.notes placements with at: $got"
  got=$(q -c "SELECT string_agg(result, ',') FROM run_command_on_placements('$s.notes', \$\$SELECT count(*) FROM pg_index WHERE indrelid = '%1\$s'::regclass AND indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = '%1\$s'::regclass AND attname = 'body')\$\$)")
  [ "$got" = 1 ] || fail "$s.notes placements indexed on body: $got"
  got=$(q -c "SELECT citus_table_type || ':' || (colocation_id = (SELECT colocation_id FROM citus_schemas WHERE schema_name = '$s'::regnamespace)) FROM citus_tables WHERE table_name = '$s.tags'::regclass")
  [ "$got" = "schema:true" ] || fail "$s.tags: '$got'"
  [ "$(q -c "SELECT nodeport FROM citus_shards WHERE table_name = '$s.tags'::regclass")" = "$(node_of "$s")" ] || fail "$s.tags is not beside $s.items"
done
got=$(as_a -c "SELECT identifier FROM tenancy.set_tenant('acme')" -c "INSERT INTO tags SELECT id, 'red' FROM items WHERE v = 'a1'" -c "SELECT sum(qty) || ':' || (SELECT count(*) FROM tags) FROM items" | tail -1)
[ "$got" = "3:1" ] || fail "acme's grantee after migrate: $got"
echo "migrate(): column and table on every tenant's shard, where it lives; the grantee uses them"

# 5b. An adopted distributed schema owned by a role that is no superuser:
# later migrations run as that owner, with no more rights than it has, and
# Citus still makes their tables single-shard tables of the schema.
q -c "SELECT 1 FROM pg_roles WHERE rolname = 'schema_owner'" | grep -q 1 || q -c "CREATE ROLE schema_owner LOGIN"
q -c "SET citus.enable_schema_based_sharding = on" -c "CREATE SCHEMA tenant_adopted AUTHORIZATION schema_owner"
q -c "SELECT tenancy.create_tenant('adopted', 'Adopted', isolation => 'schema', schema_name => 'tenant_adopted')" >/dev/null 2>&1

# 6. A migration that fails for one tenant after creating a table: rolled
# back there with nothing left on any node; kept for the other.
q -c "SELECT tenancy.add_migration('003_half', \$\$
  CREATE TABLE audit_trail (at timestamptz DEFAULT now(), what text);
  INSERT INTO audit_trail (what) VALUES ('created');
  DO \$do\$ BEGIN IF current_schema() = 'tenant_globex' THEN RAISE EXCEPTION 'globex refuses'; END IF; END \$do\$
\$\$)" >/dev/null
q -c "CALL tenancy.migrate()" 2>/dev/null
got=$(q -c "SELECT string_agg(identifier || ':' || pending || ':' || coalesce(last_error, ''), ',' ORDER BY identifier) FROM tenancy.migration_status")
[ "$got" = "acme:0:,adopted:0:,globex:1:globex refuses" ] || fail "after a failed migration: $got"
[ "$(q -c "SELECT count(*) FROM pg_class WHERE relname LIKE 'audit\_trail%' AND relnamespace = 'tenant_globex'::regnamespace")" = 0 ] || fail "globex's audit_trail on the coordinator"
[ "$(q -c "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text = 'tenant_globex.audit_trail'")" = 0 ] || fail "globex's audit_trail in pg_dist_partition"
got=$(q -c "SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT count(*) FROM pg_class c WHERE c.relname LIKE 'audit\_trail%' AND c.relnamespace = 'tenant_globex'::regnamespace\$\$)")
[ "$got" = "0,0" ] || fail "globex's audit_trail left on the workers: $got"
got=$(q -c "SELECT citus_table_type FROM citus_tables WHERE table_name = 'tenant_acme.audit_trail'::regclass")-$(as_a -c "SELECT tenancy.set_tenant('acme')" -c "SELECT what FROM audit_trail" | tail -1)
[ "$got" = "schema-created" ] || fail "acme's audit_trail: $got"
got=$(q -c "SELECT table_owner || ':' || citus_table_type FROM citus_tables WHERE table_name = 'tenant_adopted.audit_trail'::regclass")
[ "$got" = "schema_owner:schema" ] || fail "the adopted schema's new table: '$got'"
echo "a migration failing for globex left no table, shard or metadata on any node; acme kept it, and in the adopted schema it ran as the schema's owner"

# 7. Schema-based sharding off: a schema tenant is a plain schema of the
# coordinator and its migrations plain tables, as on one node.
q -c "SET citus.enable_schema_based_sharding = off" -c "SELECT tenancy.create_tenant('hooli', 'Hooli', isolation => 'schema')" >/dev/null
[ "$(q -c "SELECT count(*) FROM citus_schemas WHERE schema_name::text = 'tenant_hooli'")" = 0 ] || fail "tenant_hooli distributed with sharding off"
got=$(q -c "SELECT string_agg(c.relname || ':' || EXISTS (SELECT FROM pg_dist_partition p WHERE p.logicalrelid = c.oid), ',' ORDER BY c.relname) FROM pg_class c WHERE c.relnamespace = 'tenant_hooli'::regnamespace AND c.relkind = 'r'")
[ "$got" = "audit_trail:false,items:false,notes:false,tags:false" ] || fail "hooli's tables: $got"
[ "$(relations_on_workers tenant_hooli)" = "${workers[0]}=0,${workers[1]}=0" ] || fail "hooli has relations on the workers"
echo "with schema-based sharding off: a plain schema and plain tables on the coordinator"

# 8. A table a migration creates where Citus does not convert it (inside a
# DO block) is refused, not left on the coordinator; create_tenant too.
q -c "SELECT tenancy.add_migration('004_nested', \$m\$DO \$do\$ BEGIN EXECUTE 'CREATE TABLE sneaky (id int)'; END \$do\$\$m\$)" >/dev/null
[ "$(sqlstate -c "SELECT tenancy.create_tenant('initech', 'Initech', isolation => 'schema')")" = 0A000 ] || fail "create_tenant with a nested CREATE TABLE"
[ "$(q -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_initech'")" = 0 ] || fail "initech's schema left behind"
q -c "CALL tenancy.migrate()" 2>/dev/null
got=$(q -c "SELECT last_error FROM tenancy.migration_status WHERE identifier = 'acme'")
grep -q "outside Citus" <<<"$got" || fail "acme's nested migration: '$got'"
[ "$(q -c "SELECT count(*) FROM pg_class WHERE relname = 'sneaky' AND relnamespace = 'tenant_acme'::regnamespace")" = 0 ] || fail "sneaky left in tenant_acme"
# hooli's schema is not distributed: the same migration runs there as on one node.
[ "$(q -c "SELECT pending || ':' || coalesce(last_error, '') FROM tenancy.migration_status WHERE identifier = 'hooli'")" = "0:" ] || fail "hooli's 004_nested"
echo "a table created inside a DO block is refused (0A000), in create_tenant and migrate()"

# 9. delete_tenant(…, destroy_data => true): no shard, table or schema left on any node.
before=$(relations_on_workers tenant_globex)
[ "$before" != "${workers[0]}=0,${workers[1]}=0" ] || fail "globex has no relations on the workers to begin with"
q -c "SELECT tenancy.delete_tenant(id, destroy_data => true) FROM tenancy.tenant_by_identifier('globex')" >/dev/null
[ "$(q -c "SELECT count(*) FROM citus_shards WHERE table_name::text LIKE 'tenant\_globex.%'")" = 0 ] || fail "globex's shards in citus_shards"
[ "$(q -c "SELECT count(*) FROM citus_schemas WHERE schema_name::text = 'tenant_globex'")" = 0 ] || fail "tenant_globex still in citus_schemas"
[ "$(q -c "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'tenant\_globex.%'")" = 0 ] || fail "globex in pg_dist_partition"
got=$(q -c "SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'tenant_globex'\$\$)")
[ "$got" = "0,0" ] || fail "globex's relations on the workers: $got (before: $before)"
got=$(q -c "SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_globex'\$\$)")
[ "$got" = "0,0" ] || fail "tenant_globex's schema on the workers: $got"
[ "$(relations_on_workers tenant_acme)" != "${workers[0]}=0,${workers[1]}=0" ] || fail "acme lost its shards"
echo "delete_tenant(…, destroy_data => true): globex's shards gone from every node (had $before), acme's kept"

