-- The tenant context (SPEC §4 "Context"): the tenancy.tenant_id GUC,
-- set_tenant / clear_tenant, current_tenant_id / current_tenant, and how
-- PostgreSQL's own rules (ROLLBACK, SET LOCAL, RESET, DISCARD ALL) undo it.
\set VERBOSITY verbose
CREATE EXTENSION tenancy;
\set a '''00000000-0000-7000-8000-00000000000a'''
\set b '''00000000-0000-7000-8000-00000000000b'''
SELECT identifier FROM tenancy.create_tenant('acme', 'Acme', id => :a);
SELECT identifier FROM tenancy.create_tenant('globex', 'Globex', id => :b);

-- No tenant at first.
SHOW tenancy.tenant_id;
SELECT tenancy.current_tenant_id() IS NULL AS no_tenant, tenancy.current_tenant() IS NULL AS no_row;

-- By identifier or by uuid (any form PostgreSQL accepts).
SELECT identifier FROM tenancy.set_tenant('acme');
SHOW tenancy.tenant_id;
SELECT tenancy.current_tenant_id(), (tenancy.current_tenant()).identifier;
SELECT identifier FROM tenancy.set_tenant('00000000-0000-7000-8000-00000000000B');
SELECT tenancy.current_tenant_id();
SELECT identifier FROM tenancy.set_tenant('{00000000-0000-7000-8000-00000000000a}');
SELECT tenancy.current_tenant_id();
SELECT tenancy.clear_tenant();
SELECT tenancy.current_tenant_id();

-- ROLLBACK undoes set_tenant.
BEGIN;
SELECT identifier FROM tenancy.set_tenant('acme');
ROLLBACK;
SELECT tenancy.current_tenant_id();

-- is_local lasts until the end of the transaction (the form for PgBouncer
-- transaction pooling), and a session-level tenant comes back after it.
SELECT identifier FROM tenancy.set_tenant('globex');
BEGIN;
SELECT identifier FROM tenancy.set_tenant('acme', is_local => true);
SELECT tenancy.current_tenant_id();
COMMIT;
SELECT tenancy.current_tenant_id();

-- RESET and DISCARD ALL clear it, as they do any setting.
RESET tenancy.tenant_id;
SELECT tenancy.current_tenant_id();
SELECT identifier FROM tenancy.set_tenant('acme');
DISCARD ALL;
SELECT tenancy.current_tenant_id();
SELECT identifier FROM tenancy.set_tenant('acme');
RESET ALL;
SELECT tenancy.current_tenant_id();

-- SET, SET LOCAL and set_config work too; the value is checked when used.
SET tenancy.tenant_id = '00000000-0000-7000-8000-00000000000b';
SELECT tenancy.current_tenant_id();
BEGIN;
SET LOCAL tenancy.tenant_id = '00000000-0000-7000-8000-00000000000a';
SELECT tenancy.current_tenant_id();
COMMIT;
SELECT tenancy.current_tenant_id();
SELECT set_config('tenancy.tenant_id', '', false);
SELECT tenancy.current_tenant_id();

-- A value that is not a uuid is refused when set (22023), and nothing changes.
\set VERBOSITY sqlstate
SET tenancy.tenant_id = 'acme';
SELECT set_config('tenancy.tenant_id', 'garbage', false);
\set VERBOSITY verbose
SHOW tenancy.tenant_id;

-- An unknown, suspended or deleted tenant set by hand raises when used,
-- never silently widening access.
SET tenancy.tenant_id = '00000000-0000-7000-8000-0000000000ff';
SELECT tenancy.current_tenant_id();
SELECT tenancy.current_tenant();
SET tenancy.tenant_id = '00000000-0000-7000-8000-00000000000a';
SELECT status FROM tenancy.suspend_tenant(:a);
SELECT tenancy.current_tenant_id();
SELECT tenancy.set_tenant('acme');
SELECT status FROM tenancy.activate_tenant(:a);
SELECT tenancy.current_tenant_id();
SELECT tenancy.delete_tenant(:a);
SELECT tenancy.current_tenant_id();
SELECT tenancy.set_tenant('acme');
RESET tenancy.tenant_id;

-- Unknown tenants.
SELECT tenancy.set_tenant('nobody');
SELECT tenancy.set_tenant('00000000-0000-7000-8000-0000000000ff');
SELECT tenancy.set_tenant('');
-- Malformed input is bad input, not an unknown tenant.
SELECT tenancy.set_tenant('Bad_Ident');
SELECT tenancy.tenant_by_identifier('has space');

-- current_tenant_id is STABLE and PARALLEL SAFE, and cheap when a query
-- calls it per row: the catalog is read once per statement.
SELECT identifier FROM tenancy.set_tenant('globex');
SELECT count(DISTINCT tenancy.current_tenant_id()) FROM generate_series(1, 50000);
SELECT provolatile, proparallel FROM pg_proc WHERE oid = 'tenancy.current_tenant_id'::regproc;

-- A tenant changed in this session is seen by the next call at once.
SELECT status FROM tenancy.suspend_tenant(:b);
SELECT tenancy.current_tenant_id();
SELECT status FROM tenancy.activate_tenant(:b);
SELECT tenancy.current_tenant_id();
SELECT tenancy.clear_tenant();

DROP EXTENSION tenancy;
