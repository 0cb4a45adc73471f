-- Errors (SPEC §3): each with its SQLSTATE, a message naming the bad value
-- or the tenant, and nothing changed by a call that fails.
\set VERBOSITY verbose
CREATE EXTENSION tenancy;
SELECT identifier FROM tenancy.create_tenant('acme-corp', 'Acme', id => '00000000-0000-7000-8000-00000000000a');
CREATE TEMP TABLE before AS
SELECT (SELECT count(*) FROM tenancy.tenants) AS tenants,
       (SELECT count(*) FROM tenancy.audit_log) AS audit,
       (SELECT jsonb_agg(t ORDER BY id) FROM tenancy.tenants t) AS rows;

-- 22023 invalid_parameter_value: identifier, name, metadata, limits, nulls.
SELECT tenancy.create_tenant('Acme', 'x');
SELECT tenancy.create_tenant('ab', 'x');
SELECT tenancy.create_tenant('-abc', 'x');
SELECT tenancy.create_tenant('abc-', 'x');
SELECT tenancy.create_tenant('a--b', 'x');
SELECT tenancy.create_tenant('a_b_c', 'x');
SELECT tenancy.create_tenant('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'x');
SELECT tenancy.create_tenant(repeat('a', 64), 'x');
SELECT tenancy.create_tenant('robert''); drop table students; --', 'x');
SELECT tenancy.create_tenant('new-one', '');
SELECT tenancy.create_tenant('new-one', '   ');
SELECT tenancy.create_tenant('new-one', repeat('x', 256));
SELECT tenancy.create_tenant('new-one', E'bell\x07');
SELECT tenancy.create_tenant('new-one', 'x', '[]');
SELECT tenancy.create_tenant('new-one', 'x', '"s"');
SELECT tenancy.create_tenant('new-one', 'x', 'null');
SELECT tenancy.create_tenant('new-one', 'x', NULL);
SELECT tenancy.create_tenant(NULL, 'x');
SELECT tenancy.create_tenant('new-one', NULL);
SELECT tenancy.list_tenants(-1);
SELECT tenancy.list_tenants(0, -5);
SELECT tenancy.search_tenants('a', -1);
SELECT tenancy.search_tenants(NULL);
SELECT tenancy.tenants_by_ids(NULL);
SELECT tenancy.tenant(NULL);
SELECT tenancy.update_tenant('00000000-0000-7000-8000-00000000000a', identifier => 'Bad');
SELECT tenancy.update_tenant('00000000-0000-7000-8000-00000000000a', name => '');
SELECT tenancy.update_tenant('00000000-0000-7000-8000-00000000000a', metadata => '1');
SELECT tenancy.set_status('00000000-0000-7000-8000-00000000000a', NULL);
SELECT tenancy.merge_metadata('00000000-0000-7000-8000-00000000000a', '[1]');
SELECT tenancy.remove_metadata_keys('00000000-0000-7000-8000-00000000000a', NULL);
-- Settings are checked when set (PostgreSQL raises these, so only the code is shown).
\set VERBOSITY sqlstate
SET tenancy.schema_prefix = 'Bad-Prefix';
SET tenancy.schema_prefix = 'abcdefghijklmnopqrstu';
SET tenancy.default_isolation = 'sharded';
SET tenancy.premium_tiers = 'gold,,platinum';
SET tenancy.soft_delete = 'maybe';
SET tenancy.tenant_id = 'not-a-uuid';
\set VERBOSITY verbose
-- An identifier that makes a schema name over 63 bytes.
SELECT tenancy.create_tenant('a' || repeat('b', 56), 'Long', isolation => 'schema');

-- 23505 unique_violation: identifier, id, schema name.
SELECT tenancy.create_tenant('acme-corp', 'Again');
SELECT tenancy.create_tenant('other', 'Again', id => '00000000-0000-7000-8000-00000000000a');
CREATE SCHEMA tenant_squatter;  -- a schema that is not a tenant's
SELECT tenancy.create_tenant('squatter', 'Squatter', isolation => 'schema');
DROP SCHEMA tenant_squatter;

-- P0002 no_data_found.
SELECT tenancy.tenant('00000000-0000-7000-8000-0000000000ff');
SELECT tenancy.tenant_by_identifier('nobody');
SELECT tenancy.set_status('00000000-0000-7000-8000-0000000000ff', 'active');
SELECT tenancy.delete_tenant('00000000-0000-7000-8000-0000000000ff');
SELECT tenancy.set_tenant('nobody');

-- 55000 object_not_in_prerequisite_state.
SELECT tenancy.set_status('00000000-0000-7000-8000-00000000000a', 'provisioning');
SELECT status FROM tenancy.suspend_tenant('00000000-0000-7000-8000-00000000000a');
SELECT tenancy.set_tenant('acme-corp');
SELECT status FROM tenancy.activate_tenant('00000000-0000-7000-8000-00000000000a');

-- 0A000 feature_not_supported: database isolation without dblink.
SELECT tenancy.create_tenant('own-db', 'Own database', isolation => 'database');

-- Nothing above changed anything (apart from the suspend/activate pair,
-- which is audited and restores the row).
SELECT (SELECT count(*) FROM tenancy.tenants) = tenants AS same_tenants,
       (SELECT count(*) FROM tenancy.audit_log) - audit AS new_audit_rows,
       (SELECT jsonb_agg(t - 'updated_at' ORDER BY id) FROM (SELECT to_jsonb(t) AS t, id FROM tenancy.tenants t) x)
         = (SELECT jsonb_agg(r - 'updated_at') FROM jsonb_array_elements(rows) r) AS same_rows
  FROM before;
SELECT action, details FROM tenancy.audit_log ORDER BY id;

DROP EXTENSION tenancy;
