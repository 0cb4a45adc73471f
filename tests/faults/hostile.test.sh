#!/usr/bin/env bash
# Hostile input: thousands of randomised calls of every API function with
# NULLs, empty strings, 100 kB strings, control characters, SQL fragments,
# non-object JSON, negative limits and unknown ids.  Every refusal carries
# one of SPEC's SQLSTATEs (never XX000), and the catalog and audit log are
# unchanged afterwards.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
calls=${TENANCY_HOSTILE_CALLS:-3000}
q <<'SQL' >/dev/null
CREATE EXTENSION tenancy;
SELECT tenancy.create_tenant('victim-one', 'Victim one', '{"keep": true}', id => '00000000-0000-7000-8000-000000000001');
CREATE TABLE outcomes (fn text, state text);
SQL
before=$(q -c "SELECT md5(string_agg(t::text, ';' ORDER BY id)) || '/' || (SELECT count(*) FROM tenancy.audit_log) FROM tenancy.tenants t")
PGOPTIONS="-c tenancy_test.calls=$calls" q <<'SQL'
DO $$
DECLARE
  texts text[] := ARRAY[NULL, '', ' ', 'x', 'ab', repeat('a', 100000), E'ctrl\x01\x7f', E'tab\tname',
                        'robert''); DROP TABLE outcomes; --', '%', '_', '\', 'Victim-One', 'victim--one',
                        '00000000-0000-7000-8000-000000000001', '{00000000-0000-7000-8000-000000000001}',
                        'tenant_' || repeat('z', 60), 'ünïcødé', '$1', ';', '''', '"'];
  jsons text[] := ARRAY[NULL, 'null', '[]', '"s"', '1', 'true', '{"a": [1, {"b": null}]}', '[{"x": 1}]'];
  ints text[] := ARRAY[NULL, '-1', '-2147483648', '0', '2147483647'];
  ids text[] := ARRAY[NULL, '00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff'];
  statuses text[] := ARRAY[NULL, 'active', 'suspended', 'deleted', 'provisioning'];
  calls text[] := ARRAY[
    'SELECT tenancy.create_tenant(%1$s::text, %2$s::text, %3$s::jsonb)',
    'SELECT tenancy.tenant(%4$s::uuid)',
    'SELECT tenancy.tenant_by_identifier(%1$s::text)',
    'SELECT count(*) FROM tenancy.list_tenants(%5$s::int, %6$s::int)',
    'SELECT count(*) FROM tenancy.search_tenants(%1$s::text, %5$s::int)',
    'SELECT count(*) FROM tenancy.tenants_by_ids(ARRAY[%4$s::uuid])',
    'SELECT tenancy.update_tenant(%4$s::uuid, %1$s::text, %2$s::text, %3$s::jsonb)',
    'SELECT tenancy.set_status(%4$s::uuid, %7$s::tenancy.tenant_status)',
    'SELECT count(*) FROM tenancy.bulk_set_status(ARRAY[%4$s::uuid], %7$s::tenancy.tenant_status)',
    'SELECT tenancy.merge_metadata(%4$s::uuid, %3$s::jsonb)',
    'SELECT tenancy.remove_metadata_keys(%4$s::uuid, ARRAY[%1$s::text])',
    'SELECT tenancy.delete_tenant(%4$s::uuid)',
    'SELECT tenancy.set_tenant(%1$s::text, true)',
    'SELECT set_config(''tenancy.tenant_id'', %1$s::text, true)',
    'SELECT tenancy.add_migration(%1$s::text, %2$s::text)',
    'SELECT tenancy.enable_rls(%1$s::regclass)',
    'SELECT tenancy.grant_tenant(%1$s::regrole, %4$s::uuid)',
    'SELECT tenancy.check_rate_limit(%4$s::uuid)',
    'SELECT tenancy.count_tenants(%7$s::tenancy.tenant_status)',
    'SELECT tenancy.tenant_exists(%4$s::uuid)'];
  sql text; state text; i int;
  pick_text text; victim text := '''00000000-0000-7000-8000-000000000001''';
BEGIN
  PERFORM setseed(0.42);
  FOR i IN 1..current_setting('tenancy_test.calls')::int LOOP
    pick_text := texts[1 + floor(random() * array_length(texts, 1))::int];
    sql := format(calls[1 + floor(random() * array_length(calls, 1))::int],
                  quote_nullable(pick_text),
                  quote_nullable(texts[1 + floor(random() * array_length(texts, 1))::int]),
                  quote_nullable(jsons[1 + floor(random() * array_length(jsons, 1))::int]),
                  CASE WHEN random() < 0.3 THEN victim ELSE quote_nullable(ids[1 + floor(random() * array_length(ids, 1))::int]) END,
                  quote_nullable(ints[1 + floor(random() * array_length(ints, 1))::int]),
                  quote_nullable(ints[1 + floor(random() * array_length(ints, 1))::int]),
                  quote_nullable(statuses[1 + floor(random() * array_length(statuses, 1))::int]));
    BEGIN
      EXECUTE sql;
      state := 'ok';
      -- A call that succeeded may have changed the victim legitimately:
      -- undo it, so the "unchanged" check covers only the refusals.
      RAISE SQLSTATE 'TT001';
    EXCEPTION WHEN SQLSTATE 'TT001' THEN
      state := 'ok';
    WHEN OTHERS THEN
      state := SQLSTATE;
    END;
    INSERT INTO outcomes VALUES (split_part(split_part(sql, '(', 1), ' ', 2), state);
  END LOOP;
END $$;
SQL
after=$(q -c "SELECT md5(string_agg(t::text, ';' ORDER BY id)) || '/' || (SELECT count(*) FROM tenancy.audit_log) FROM tenancy.tenants t")
q -c "SELECT state, count(*) FROM outcomes GROUP BY 1 ORDER BY 2 DESC" | tr '\n' ' '; echo
internal=$(q -c "SELECT count(*) FROM outcomes WHERE state = 'XX000'")
unexpected=$(q -c "SELECT string_agg(DISTINCT fn || ':' || state, ', ') FROM outcomes
                    WHERE state NOT IN ('ok', 'P0002', '22023', '23505', '55000', '42501', '0A000', '54000',
                                        '22P02', '42704', '42P01', '42883', '2D000', '22021', '42602')")
total=$(q -c "SELECT count(*) FROM outcomes")
echo "calls tried: $total; internal errors: $internal; unexpected SQLSTATEs: ${unexpected:-none}"
[ "$before" = "$after" ] || { echo "catalog or audit log changed: $before -> $after"; exit 1; }
[ "$total" -eq "$calls" ] && [ "$internal" -eq 0 ] && [ -z "$unexpected" ]
