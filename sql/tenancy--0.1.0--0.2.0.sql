-- tenancy 0.1.0 -> 0.2.0 (ALTER EXTENSION tenancy UPDATE).
--
-- New in 0.2.0:
-- - merge_metadata is one statement (UPDATE, audit row, NOTIFY) instead of a
--   row lock followed by that statement; the SET expression hands the old
--   values of the patched keys to RETURNING through two internal functions,
--   merge_capture and merge_captured (not callable by PUBLIC, like every
--   non-context function).
-- - migrate_tenant is one C function (was PL/pgSQL calling migration_claim,
--   migration_apply and migration_finish, which go from SQL; their entry
--   points stay in the library for databases not yet updated).
-- Changed behind the same signatures (library only):
-- - set_tenant and tenant_by_identifier refuse a malformed identifier with
--   22023 (was P0002 "not found");
-- - check_rate_limit(id) refuses a tenant that is not active (55000);
-- - CALL tenancy.migrate() does its bookkeeping in fewer statements and
--   finds its targets without a plan that PostgreSQL would JIT-compile;
-- - tenant, tenant_by_identifier and list_tenants keep their symbols but are
--   hand-written entry points (list_tenants returns its page in materialize
--   mode);
-- - current_tenant_id() reuses a check until a writing transaction completes
--   anywhere or the current one writes (was: once per statement).
-- Every 0.1.0 C entry point still exists in the 0.2.0 library, so a database
-- keeps working between installing the new files and running the UPDATE.
--
-- tests/faults/upgrade.test.sh checks that an upgraded database is, object by
-- object, the same as a fresh CREATE EXTENSION of 0.2.0, and that its rows
-- are kept and work.
\echo Use "ALTER EXTENSION tenancy UPDATE" to load this file. \quit

CREATE FUNCTION tenancy.merge_capture(old jsonb, patch jsonb) RETURNS jsonb
VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'merge_capture_wrapper';

CREATE FUNCTION tenancy.merge_captured() RETURNS jsonb
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'merge_captured_wrapper';

REVOKE EXECUTE ON FUNCTION tenancy.merge_capture(jsonb, jsonb), tenancy.merge_captured() FROM PUBLIC;

-- migrate_tenant: the same signature, attributes, comment and privileges;
-- its body moves into the library.
DROP FUNCTION tenancy.migration_claim(uuid);
DROP FUNCTION tenancy.migration_apply(uuid, text);
DROP FUNCTION tenancy.migration_finish(uuid, text[], text, text);
CREATE OR REPLACE FUNCTION tenancy.migrate_tenant(tenant uuid) RETURNS jsonb
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'migrate_tenant_wrapper';
