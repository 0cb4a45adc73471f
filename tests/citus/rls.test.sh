#!/usr/bin/env bash
# SPEC §8.3: enable_rls works before or after create_distributed_table, and
# every shard carries the policy, forced.  (What the policy lets through on
# the workers needs the catalog there: not yet.)
set -euo pipefail
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
q -c "CREATE EXTENSION tenancy"
# After: distributed first, then isolated.
q -c "CREATE TABLE after_dist (tenant_id uuid NOT NULL, id bigint NOT NULL, item text, PRIMARY KEY (tenant_id, id))" \
  -c "SELECT create_distributed_table('after_dist', 'tenant_id')" >/dev/null
q -c "SELECT tenancy.enable_rls('after_dist')" >/dev/null
# Before: isolated first, then distributed.
q -c "CREATE TABLE before_dist (tenant_id uuid NOT NULL, id bigint NOT NULL, item text, PRIMARY KEY (tenant_id, id))" \
  -c "SELECT tenancy.enable_rls('before_dist')" >/dev/null
q -c "SELECT create_distributed_table('before_dist', 'tenant_id')" >/dev/null
for t in after_dist before_dist; do
  shards=$(q -c "SELECT count(*) FROM citus_shards WHERE table_name = '$t'::regclass")
  got=$(q -c "SELECT sum(result::int) FROM run_command_on_shards('$t', \$\$SELECT count(*) FROM pg_policies p JOIN pg_class c ON c.relname = p.tablename AND c.relrowsecurity AND c.relforcerowsecurity WHERE p.tablename = '%s' AND p.policyname = 'tenancy_isolation'\$\$)")
  [ "$got" = "$shards" ] || { echo "$t: $got of $shards shards carry the forced policy"; exit 1; }
  def=$(q -c "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = '$t'::regclass AND a.attname = 'tenant_id'")
  [ "$def" = "tenancy.current_tenant_id()" ] || { echo "$t: coordinator's tenant_id default is '$def'"; exit 1; }
  reg=$(q -c "SELECT count(*) FROM tenancy.rls_tables WHERE tbl = '$t'::regclass")
  [ "$reg" = 1 ] || { echo "$t not registered"; exit 1; }
  echo "$t: policy on all $shards shards, default on the coordinator"
done
# And disable_rls takes it all off again, on every shard.
for t in after_dist before_dist; do
  q -c "SELECT tenancy.disable_rls('$t')" >/dev/null
  got=$(q -c "SELECT sum(result::int) FROM run_command_on_shards('$t', \$\$SELECT count(*) FROM pg_policies WHERE tablename = '%s'\$\$)")
  [ "$got" = 0 ] || { echo "$t: $got shards keep a policy after disable_rls"; exit 1; }
done
echo "disable_rls: no policy left on any shard"
