-- A short tour of tenancy, run by scripts/quickstart.sh against a throwaway
-- PostgreSQL.  Paste any part of it into psql.
\set ON_ERROR_STOP on
\set VERBOSITY verbose
DROP EXTENSION IF EXISTS tenancy CASCADE;
DROP TABLE IF EXISTS orders;
CREATE EXTENSION tenancy;

-- Tenants: create, look up, search.
SELECT id, identifier, status, isolation FROM tenancy.create_tenant('acme-corp', 'Acme Corporation', '{"plan": "pro"}');
SELECT identifier, isolation, schema_name FROM tenancy.create_tenant('globex', 'Globex', '{"tier": "premium"}', isolation => 'schema');
SELECT identifier, name FROM tenancy.search_tenants('acme');
SELECT metadata FROM tenancy.merge_metadata((tenancy.tenant_by_identifier('acme-corp')).id, '{"seats": 25}');

-- Row-level security: one shared table, each tenant sees its own rows.
CREATE TABLE orders (id serial, tenant_id uuid NOT NULL, item text NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenancy.enable_rls('orders');
CREATE ROLE walkthrough_app NOLOGIN;
GRANT SELECT, INSERT ON orders TO walkthrough_app;
GRANT USAGE ON SEQUENCE orders_id_seq TO walkthrough_app;
SELECT tenancy.grant_tenant('walkthrough_app', (tenancy.tenant_by_identifier('acme-corp')).id);

SET ROLE walkthrough_app;
BEGIN;                                                     -- one request
SELECT identifier FROM tenancy.set_tenant('acme-corp', is_local => true);
INSERT INTO orders (item) VALUES ('anvil'), ('rocket skates');   -- tenant_id filled in
SELECT item FROM orders;
COMMIT;
SELECT count(*) AS rows_without_a_tenant FROM orders;      -- the context ended with the transaction
\set ON_ERROR_STOP off
SELECT tenancy.set_tenant('globex');                       -- not granted: 42501
\set ON_ERROR_STOP on
RESET ROLE;

-- Schema tenants: migrations run in every tenant's schema.
SELECT name FROM tenancy.add_migration('001_invoices', 'CREATE TABLE invoices (id serial PRIMARY KEY, total numeric)');
CALL tenancy.migrate();
SELECT identifier, applied, pending FROM tenancy.migration_status;
SELECT identifier FROM tenancy.set_tenant('globex');
SHOW search_path;
INSERT INTO invoices (total) VALUES (99.50);
SELECT * FROM invoices;
SELECT tenancy.clear_tenant();

-- Lifecycle and the audit trail.
SELECT status FROM tenancy.suspend_tenant((tenancy.tenant_by_identifier('acme-corp')).id);
SELECT action, details FROM tenancy.audit_log ORDER BY id;

-- Clean up.
SELECT tenancy.delete_tenant(id, destroy_data => true) FROM tenancy.tenants WHERE isolation = 'schema';
DROP TABLE orders;
DROP EXTENSION tenancy;
DROP ROLE walkthrough_app;
