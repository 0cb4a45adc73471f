-- The lifecycle API (SPEC §2): create, look up, list, search, update,
-- status transitions, metadata, delete.
\set VERBOSITY verbose
CREATE EXTENSION tenancy;
\set a '''00000000-0000-7000-8000-00000000000a'''
\set b '''00000000-0000-7000-8000-00000000000b'''
\set c '''00000000-0000-7000-8000-00000000000c'''
\set d '''00000000-0000-7000-8000-00000000000d'''
\set missing '''00000000-0000-7000-8000-0000000000ff'''

-- create_tenant returns the whole row; defaults: metadata {}, rls, active.
SELECT id, identifier, name, status, isolation, schema_name, database_name, metadata,
       created_at = updated_at AS fresh
  FROM tenancy.create_tenant('acme-corp', 'Acme Corporation', id => :a);
SELECT identifier, metadata FROM tenancy.create_tenant('globex', 'Globex', '{"tier": "gold", "seats": 10}', id => :b);
SELECT identifier FROM tenancy.create_tenant('initech', 'Initech 50%_off \ deals', isolation => 'rls', id => :c);
SELECT identifier FROM tenancy.create_tenant('umbrella-acme', 'Umbrella', id => :d);
-- A generated id is a version 7 uuid.
SELECT substr(id::text, 15, 1) AS version FROM tenancy.create_tenant('hooli', 'Hooli');

-- Lookups.
SELECT identifier FROM tenancy.tenant(:a);
SELECT id FROM tenancy.tenant_by_identifier('globex');
SELECT tenancy.tenant(:missing);
SELECT tenancy.tenant_by_identifier('nobody');
SELECT tenancy.tenant_exists(:a), tenancy.tenant_exists(:missing);
SELECT tenancy.count_tenants(), tenancy.count_tenants('active'), tenancy.count_tenants('suspended');

-- list_tenants: newest first, ties broken by id descending; pages are stable.
SELECT identifier FROM tenancy.list_tenants();
SELECT identifier FROM tenancy.list_tenants(1, 2);
SELECT identifier FROM tenancy.list_tenants(skip => 4, "limit" => 10);
SELECT identifier FROM tenancy.list_tenants(0, 0);
BEGIN;  -- same created_at: the id decides
SELECT count(*) FROM (SELECT tenancy.create_tenant('tie-' || i, 'Tie ' || i, id => ('00000000-0000-7000-8000-0000000001' || lpad(i::text, 2, '0'))::uuid) FROM generate_series(1, 3) i) s;
SELECT identifier FROM tenancy.list_tenants(0, 3);
ROLLBACK;

-- search_tenants: case-insensitive substring, ranked exact identifier,
-- identifier prefix, name contains, identifier contains; then identifier.
SELECT identifier FROM tenancy.search_tenants('ACME');
SELECT identifier FROM tenancy.search_tenants('acme-corp');
SELECT identifier FROM tenancy.search_tenants('corporation');
SELECT identifier FROM tenancy.search_tenants('o', 3);
SELECT identifier FROM tenancy.search_tenants('zzz');
-- %, _ and \ are literal characters, never patterns.
SELECT identifier FROM tenancy.search_tenants('50%_');
SELECT identifier FROM tenancy.search_tenants('%');
SELECT identifier FROM tenancy.search_tenants('_');
SELECT identifier FROM tenancy.search_tenants('\');
SELECT identifier FROM tenancy.search_tenants('a_m');
SELECT count(*) FROM tenancy.search_tenants('');

-- tenants_by_ids: in the order given, unknown skipped, duplicates once.
SELECT identifier FROM tenancy.tenants_by_ids(ARRAY[:c, :missing, :a, :c, NULL, :b]::uuid[]);
SELECT count(*) FROM tenancy.tenants_by_ids('{}');

-- update_tenant replaces the given fields only; metadata is replaced.
SELECT identifier, name, metadata FROM tenancy.update_tenant(:b, name => 'Globex Corp');
SELECT identifier, name, metadata FROM tenancy.update_tenant(:b, metadata => '{"tier": "silver"}');
SELECT identifier, name FROM tenancy.update_tenant(:b, identifier => 'globex-corp');
SELECT identifier, updated_at > created_at AS moved FROM tenancy.update_tenant(:b);
SELECT tenancy.update_tenant(:b, identifier => 'acme-corp');
SELECT tenancy.update_tenant(:missing, name => 'x');

-- Status transitions.
SELECT status FROM tenancy.suspend_tenant(:a);
SELECT status FROM tenancy.suspend_tenant(:a);           -- no-op
SELECT status FROM tenancy.activate_tenant(:a);
SELECT status FROM tenancy.set_status(:a, 'suspended');
SELECT status FROM tenancy.set_status(:a, 'provisioning');
SELECT status FROM tenancy.set_status(:a, 'deleted');
SELECT status FROM tenancy.set_status(:a, 'active');     -- deleted is final
SELECT status FROM tenancy.set_status(:a, 'deleted');    -- no-op
-- A provisioning tenant (inserted by hand) can only become active.
INSERT INTO tenancy.tenants (id, identifier, name, isolation, status)
VALUES ('00000000-0000-7000-8000-0000000000e0', 'half-made', 'Half made', 'rls', 'provisioning');
SELECT status FROM tenancy.suspend_tenant('00000000-0000-7000-8000-0000000000e0');
SELECT status FROM tenancy.activate_tenant('00000000-0000-7000-8000-0000000000e0');

-- A soft-deleted tenant is still found, listed, counted and searched.
SELECT identifier, status FROM tenancy.tenant(:a);
SELECT identifier, status FROM tenancy.tenant_by_identifier('acme-corp');
SELECT identifier FROM tenancy.list_tenants(status => 'deleted');
SELECT tenancy.count_tenants('deleted');
SELECT identifier, status FROM tenancy.search_tenants('acme-corp', 1);
SELECT identifier, status FROM tenancy.tenants_by_ids(ARRAY[:a]::uuid[]);

-- bulk_set_status: one statement, all or nothing, unknown ids skipped,
-- rows back in the order of ids.
SELECT identifier, status FROM tenancy.bulk_set_status(ARRAY[:d, :missing, :c, :d]::uuid[], 'suspended');
SELECT identifier, status FROM tenancy.bulk_set_status(ARRAY[:c, :a, :d]::uuid[], 'active');
SELECT identifier, status FROM tenancy.tenants_by_ids(ARRAY[:c, :d]::uuid[]);  -- unchanged
SELECT identifier, status FROM tenancy.bulk_set_status(ARRAY[:c, :d]::uuid[], 'active');
SELECT count(*) FROM tenancy.bulk_set_status('{}', 'active');

-- merge_metadata: shallow merge; a key set to null stays as null.
SELECT metadata FROM tenancy.merge_metadata(:c, '{"plan": "pro", "limits": {"users": 5}}');
SELECT metadata FROM tenancy.merge_metadata(:c, '{"limits": {"api": 1}, "plan": null}');
SELECT metadata FROM tenancy.merge_metadata(:c, '{}');
SELECT tenancy.merge_metadata(:c, '"text"');
SELECT tenancy.merge_metadata(:c, '[]');
SELECT tenancy.merge_metadata(:missing, '{}');

-- remove_metadata_keys.
SELECT metadata FROM tenancy.remove_metadata_keys(:c, ARRAY['plan', 'nope']);
SELECT metadata FROM tenancy.remove_metadata_keys(:c, '{}');
SELECT tenancy.remove_metadata_keys(:missing, ARRAY['a']);

-- delete_tenant: soft by default; a second call is a no-op.
SELECT tenancy.delete_tenant(:d);
SELECT identifier, status FROM tenancy.tenant(:d);
SELECT tenancy.delete_tenant(:d);
SELECT tenancy.delete_tenant(:missing);
INSERT INTO tenancy.tenants (id, identifier, name, isolation, status)
VALUES ('00000000-0000-7000-8000-0000000000e1', 'half-made-2', 'Half made', 'rls', 'provisioning');
SELECT tenancy.delete_tenant('00000000-0000-7000-8000-0000000000e1');  -- provisioning
-- Hard delete removes the row and frees the identifier.
SET tenancy.soft_delete = off;
SELECT tenancy.delete_tenant(:d);
SELECT tenancy.tenant_exists(:d);
SELECT identifier FROM tenancy.create_tenant('umbrella-acme', 'Umbrella again', id => :d);
RESET tenancy.soft_delete;
-- The identifier of a soft-deleted tenant stays taken.
SELECT tenancy.create_tenant('acme-corp', 'Another Acme');

-- The whole history, in order.
SELECT tenant_id, actor = session_user AS by_me, action, details #- '{tenant,created_at}' #- '{tenant,updated_at}' AS details
  FROM tenancy.audit_log WHERE tenant_id IN (:a, :b, :c, :d) ORDER BY id;

DROP EXTENSION tenancy;
