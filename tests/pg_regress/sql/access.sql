-- Access (SPEC §4 "Access" and "Privileges") and the attack tests: a role
-- granted only tenant A, sending any SQL it likes, reaches none of tenant
-- B's rows and cannot grant itself more.
\set VERBOSITY verbose
CREATE EXTENSION tenancy;
\set a '''00000000-0000-7000-8000-00000000000a'''
\set b '''00000000-0000-7000-8000-00000000000b'''
\set sa '''00000000-0000-7000-8000-0000000000aa'''
\set sb '''00000000-0000-7000-8000-0000000000bb'''
CREATE ROLE tenancy_admin NOLOGIN;
CREATE ROLE tenancy_alice NOLOGIN;
CREATE ROLE tenancy_alice_app NOLOGIN IN ROLE tenancy_alice;
CREATE ROLE tenancy_bob NOLOGIN;
CREATE ROLE tenancy_ops NOLOGIN;
CREATE ROLE tenancy_bypass NOLOGIN BYPASSRLS;

-- A DBA lets an admin role run the API; it needs no privilege on the tables.
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA tenancy TO tenancy_admin;
SET ROLE tenancy_admin;
SELECT identifier FROM tenancy.create_tenant('tenant-a', 'A', id => :a);
SELECT identifier FROM tenancy.create_tenant('tenant-b', 'B', id => :b);
SELECT identifier, schema_name FROM tenancy.create_tenant('schema-a', 'Schema A', isolation => 'schema', id => :sa);
SELECT identifier, schema_name FROM tenancy.create_tenant('schema-b', 'Schema B', isolation => 'schema', id => :sb);
SELECT tenancy.grant_tenant('tenancy_alice', :a);
SELECT tenancy.grant_tenant('tenancy_alice', :sa);
SELECT tenancy.grant_tenant('tenancy_bob', :b);
SELECT tenancy.grant_all_tenants('tenancy_ops');
SELECT tenancy.grant_tenant('tenancy_alice', :a);   -- again: no-op
\set VERBOSITY sqlstate
SELECT count(*) FROM tenancy.tenants;                 -- the admin has no table privilege
\set VERBOSITY verbose
RESET ROLE;
SELECT role, tenant_id FROM tenancy.tenant_grants ORDER BY 1, 2;

-- A shared table isolated by RLS, and a table in each schema tenant.
CREATE TABLE orders (id int PRIMARY KEY, tenant_id uuid, item text);
SELECT tenancy.enable_rls('orders');
INSERT INTO orders VALUES (1, :a, 'a-1'), (2, :a, 'a-2'), (3, :b, 'b-1');
GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO tenancy_alice, tenancy_bob, tenancy_ops, tenancy_bypass;
CREATE TABLE tenant_schema_a.notes (note text);
CREATE TABLE tenant_schema_b.notes (note text);
INSERT INTO tenant_schema_a.notes VALUES ('secret of a');
INSERT INTO tenant_schema_b.notes VALUES ('secret of b');
SELECT tenancy.grant_tenant('tenancy_alice', :sa);   -- covers the new table

-- Alice acts for tenant A.
SET ROLE tenancy_alice;
SELECT identifier FROM tenancy.set_tenant('tenant-a');
SELECT * FROM orders ORDER BY id;
INSERT INTO orders (id, item) VALUES (10, 'a-new');    -- tenant_id defaults to A
SELECT id, tenant_id = :a AS is_a FROM orders WHERE id = 10;

-- Attack: ask for B.
SELECT tenancy.set_tenant('tenant-b');
SELECT tenancy.set_tenant('00000000-0000-7000-8000-00000000000b');
-- Attack: set the GUC to B by hand, in every way PostgreSQL offers.
SET tenancy.tenant_id = '00000000-0000-7000-8000-00000000000b';
SELECT * FROM orders;
SELECT tenancy.current_tenant_id();
BEGIN;
SET LOCAL tenancy.tenant_id = '00000000-0000-7000-8000-00000000000b';
SELECT * FROM orders;
ROLLBACK;
SELECT set_config('tenancy.tenant_id', '00000000-0000-7000-8000-00000000000b', false);
SELECT count(*) FROM orders;
UPDATE orders SET item = 'stolen';
DELETE FROM orders;
-- Attack: no tenant at all sees nothing and writes nothing.
RESET tenancy.tenant_id;
SELECT count(*) FROM orders;
\set VERBOSITY sqlstate
INSERT INTO orders (id, item) VALUES (11, 'orphan');
\set VERBOSITY verbose
-- Attack: write rows carrying B's id while acting for A.
SELECT identifier FROM tenancy.set_tenant('tenant-a');
\set VERBOSITY sqlstate
INSERT INTO orders VALUES (12, '00000000-0000-7000-8000-00000000000b', 'planted');
UPDATE orders SET tenant_id = '00000000-0000-7000-8000-00000000000b' WHERE id = 1;
\set VERBOSITY verbose
UPDATE orders SET item = 'touched' WHERE tenant_id = '00000000-0000-7000-8000-00000000000b';
DELETE FROM orders WHERE tenant_id = '00000000-0000-7000-8000-00000000000b';
-- Attack: grant itself more, or write the catalog directly.
\set VERBOSITY sqlstate
SELECT tenancy.grant_tenant('tenancy_alice', '00000000-0000-7000-8000-00000000000b');
SELECT tenancy.grant_all_tenants('tenancy_alice');
SELECT tenancy.revoke_tenant('tenancy_bob', '00000000-0000-7000-8000-00000000000b');
INSERT INTO tenancy.tenant_grants (role, tenant_id) VALUES ('tenancy_alice', '00000000-0000-7000-8000-00000000000b');
UPDATE tenancy.tenant_grants SET tenant_id = NULL;
UPDATE tenancy.tenants SET status = 'active';
SELECT count(*) FROM tenancy.tenants;
SELECT count(*) FROM tenancy.audit_log;
SELECT tenancy.tenant('00000000-0000-7000-8000-00000000000b');
SELECT tenancy.create_tenant('evil', 'Evil');
-- Attack: switch the table's security off.
ALTER TABLE orders DISABLE ROW LEVEL SECURITY;
ALTER TABLE orders NO FORCE ROW LEVEL SECURITY;
DROP POLICY tenancy_isolation ON orders;
SELECT tenancy.disable_rls('orders');
-- Attack: read B's schema.
SELECT * FROM tenant_schema_b.notes;
SET search_path = tenant_schema_b;
SELECT * FROM notes;
\set VERBOSITY verbose
RESET search_path;
-- Its own schema tenant works, and puts the schema first on search_path.
SELECT identifier FROM tenancy.set_tenant('schema-a');
SHOW search_path;
SELECT * FROM notes;
SELECT tenancy.clear_tenant();
SHOW search_path;
RESET ROLE;
-- B's rows are intact.
SELECT * FROM orders ORDER BY id;

-- A member of a granted role acts for the tenant too.
SET ROLE tenancy_alice_app;
SELECT identifier FROM tenancy.set_tenant('tenant-a');
SELECT count(*) FROM orders;
RESET ROLE;
-- A role granted all tenants may act for any; BYPASSRLS may act for any.
SET ROLE tenancy_ops;
SELECT identifier FROM tenancy.set_tenant('tenant-b');
SELECT id, item FROM orders ORDER BY id;
SELECT identifier FROM tenancy.set_tenant('schema-b');
SELECT * FROM notes;
RESET ROLE;
SET ROLE tenancy_bypass;
SELECT identifier FROM tenancy.set_tenant('tenant-b');
SELECT count(*) FROM orders;   -- BYPASSRLS sees every row, as PostgreSQL defines it
RESET ROLE;
SELECT tenancy.clear_tenant();

-- A suspended schema tenant's schema is closed to its grantees, and opens
-- again when it is activated.
SELECT status FROM tenancy.suspend_tenant(:sa);
SET ROLE tenancy_alice;
\set VERBOSITY sqlstate
SELECT * FROM tenant_schema_a.notes;
\set VERBOSITY verbose
RESET ROLE;
SELECT status FROM tenancy.activate_tenant(:sa);
SET ROLE tenancy_alice;
SELECT * FROM tenant_schema_a.notes;
RESET ROLE;
SELECT identifier, status FROM tenancy.bulk_set_status(ARRAY[:sa, :sb]::uuid[], 'suspended');
SET ROLE tenancy_ops;
\set VERBOSITY sqlstate
SELECT * FROM tenant_schema_b.notes;
\set VERBOSITY verbose
RESET ROLE;
SELECT count(*) FROM tenancy.bulk_set_status(ARRAY[:sa, :sb]::uuid[], 'active');
SET ROLE tenancy_ops;
SELECT * FROM tenant_schema_b.notes;
RESET ROLE;

-- Revoking takes effect at once, also for a context already set.
SET ROLE tenancy_alice;
SELECT identifier FROM tenancy.set_tenant('tenant-a');
RESET ROLE;
SELECT tenancy.revoke_tenant('tenancy_alice', :a);
SELECT tenancy.revoke_tenant('tenancy_alice', :sa);
SET ROLE tenancy_alice;
SELECT count(*) FROM orders;
SELECT tenancy.set_tenant('tenant-a');
\set VERBOSITY sqlstate
SELECT * FROM tenant_schema_a.notes;
\set VERBOSITY verbose
RESET tenancy.tenant_id;
RESET ROLE;
SELECT tenancy.revoke_all_tenants('tenancy_ops');
SET ROLE tenancy_ops;
SELECT tenancy.set_tenant('tenant-b');
RESET ROLE;

SELECT action, details FROM tenancy.audit_log WHERE action IN ('grant', 'revoke') ORDER BY id;

-- Clean up.
DROP TABLE orders;
SELECT tenancy.delete_tenant(:sa, destroy_data => true);
SELECT tenancy.delete_tenant(:sb, destroy_data => true);
DROP EXTENSION tenancy;
REVOKE ALL ON SCHEMA public FROM tenancy_admin;
DROP ROLE tenancy_admin, tenancy_alice_app, tenancy_alice, tenancy_bob, tenancy_ops, tenancy_bypass;
