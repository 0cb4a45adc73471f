-- Schema isolation (SPEC §4 "Schema"): naming, migrations, provisioning in
-- the creating transaction, CALL tenancy.migrate(), the ledger and status,
-- search_path, destroy; and choosing the isolation (hybrid).
\set VERBOSITY verbose
CREATE EXTENSION tenancy;

-- Migrations: registered in order, validated, immutable.
SELECT position, name FROM tenancy.add_migration('001_orders', 'CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL)');
SELECT position, name FROM tenancy.add_migration('002_customers', $$
    CREATE TABLE customers (id serial PRIMARY KEY, name text);
    ALTER TABLE orders ADD COLUMN customer_id int REFERENCES customers (id);
$$);
SELECT tenancy.add_migration('001_orders', 'SELECT 1');
SELECT tenancy.add_migration('', 'SELECT 1');
SELECT tenancy.add_migration('   ', 'SELECT 1');
SELECT tenancy.add_migration(repeat('m', 64), 'SELECT 1');
SELECT tenancy.add_migration('empty', ' ;; ');
-- Transaction control inside a migration is refused when it runs.
BEGIN;
SELECT name FROM tenancy.add_migration('000_commits', 'CREATE TABLE x (a int); COMMIT;');
SELECT tenancy.create_tenant('commits', 'Commits', isolation => 'schema');
ROLLBACK;
\set VERBOSITY sqlstate
UPDATE tenancy.migrations SET sql = 'SELECT 1';
DELETE FROM tenancy.migrations;
\set VERBOSITY verbose
SELECT position, name FROM tenancy.migrations ORDER BY position;

-- A schema tenant gets its schema, with every migration applied, at creation.
SELECT identifier, isolation, schema_name FROM tenancy.create_tenant('acme-corp', 'Acme', isolation => 'schema', id => '00000000-0000-7000-8000-00000000000a');
\dt tenant_acme_corp.*
SELECT migration, status, error FROM tenancy.migration_ledger ORDER BY migration;
SELECT action, details FROM tenancy.audit_log WHERE action = 'provision';
-- A failing migration aborts the creation: no row, no schema.
BEGIN;
SELECT name FROM tenancy.add_migration('999_broken', 'SELECT 1 / 0');
SAVEPOINT before_create;
SELECT tenancy.create_tenant('doomed', 'Doomed', isolation => 'schema');
ROLLBACK TO before_create;
SELECT count(*) FROM tenancy.tenants WHERE identifier = 'doomed';
SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_doomed';
ROLLBACK;

-- The prefix comes from tenancy.schema_prefix, fixed at creation.
SET tenancy.schema_prefix = 'org_';
SELECT identifier, schema_name FROM tenancy.create_tenant('globex', 'Globex', isolation => 'schema', id => '00000000-0000-7000-8000-00000000000b');
RESET tenancy.schema_prefix;
-- A rename keeps the schema.
SELECT identifier, schema_name FROM tenancy.update_tenant('00000000-0000-7000-8000-00000000000b', identifier => 'globex-two');

-- set_tenant puts the schema first on search_path; clear_tenant takes it off.
SELECT identifier FROM tenancy.set_tenant('acme-corp');
SHOW search_path;
INSERT INTO orders (item) VALUES ('anvil');
SELECT identifier FROM tenancy.set_tenant('globex-two');
SHOW search_path;
SELECT count(*) FROM orders;
SELECT identifier FROM tenancy.create_tenant('plain-rls', 'Plain', isolation => 'rls');
SELECT identifier FROM tenancy.set_tenant('plain-rls');
SHOW search_path;
SELECT identifier FROM tenancy.set_tenant('acme-corp');
SELECT tenancy.clear_tenant();
SHOW search_path;
SET search_path = "$user", public, "tenant_acme_corp";
SELECT identifier FROM tenancy.set_tenant('globex-two');
SHOW search_path;
SELECT tenancy.clear_tenant();
RESET search_path;

-- CALL tenancy.migrate(): pending migrations to every tenant, one
-- transaction each; a failing tenant is recorded and skipped.
CREATE TABLE org_globex.audit_trail (note text);   -- will make 003 fail for globex
SELECT name FROM tenancy.add_migration('003_audit_trail', 'CREATE TABLE audit_trail (at timestamptz DEFAULT now(), what text)');
SELECT identifier, applied, pending, last_applied, last_error FROM tenancy.migration_status ORDER BY identifier;
-- migrate needs its own transactions.
BEGIN;
\set VERBOSITY sqlstate
CALL tenancy.migrate();
\set VERBOSITY verbose
ROLLBACK;
CALL tenancy.migrate();
SELECT identifier, applied, pending, last_applied, last_error FROM tenancy.migration_status ORDER BY identifier;
-- Fix the failing tenant by hand, then re-run: only it is migrated.
DROP TABLE org_globex.audit_trail;
CALL tenancy.migrate();
SELECT identifier, applied, pending, last_applied, last_error FROM tenancy.migration_status ORDER BY identifier;
SELECT t.identifier, l.migration, l.status FROM tenancy.migration_ledger l JOIN tenancy.tenants t ON t.id = l.tenant_id ORDER BY 1, 2;
SELECT t.identifier, a.details FROM tenancy.audit_log a JOIN tenancy.tenants t ON t.id = a.tenant_id WHERE a.action = 'migrate' ORDER BY a.id;
-- Nothing pending: a no-op.
CALL tenancy.migrate();

-- Deleted tenants are not migrated.
SELECT name FROM tenancy.add_migration('004_index', 'CREATE INDEX ON customers (name)');
SELECT tenancy.delete_tenant('00000000-0000-7000-8000-00000000000b');
CALL tenancy.migrate();
SELECT identifier, applied, pending FROM tenancy.migration_status ORDER BY identifier;

-- A cancel is not a failing migration: migrate_tenant catches errors as
-- EXCEPTION WHEN OTHERS does, which a cancel escapes, so the run stops and
-- records nothing.  (The migration sleeps only when told to.)
SELECT name FROM tenancy.add_migration('005_slow',
    $$SELECT pg_sleep(CASE WHEN current_setting('tenancy_regress.slow', true) = 'on' THEN 5 ELSE 0 END)$$);
SET tenancy_regress.slow = on;
SET statement_timeout = '200ms';
\set VERBOSITY sqlstate
SELECT tenancy.migrate_tenant('00000000-0000-7000-8000-00000000000a');
\set VERBOSITY verbose
RESET statement_timeout;
RESET tenancy_regress.slow;
SELECT count(*) AS ledger_rows FROM tenancy.migration_ledger WHERE migration = '005_slow';
SELECT count(*) AS audit_rows FROM tenancy.audit_log WHERE action = 'migrate' AND details->'applied' ? '005_slow';
CALL tenancy.migrate();
SELECT identifier, applied, pending, last_error FROM tenancy.migration_status ORDER BY identifier;

-- Choosing the isolation: argument, else tenancy.default_isolation, and
-- under hybrid the metadata tier.
SET tenancy.default_isolation = 'schema';
SELECT identifier, isolation, schema_name FROM tenancy.create_tenant('by-default', 'By default');
SET tenancy.default_isolation = 'hybrid';
SELECT identifier, isolation FROM tenancy.create_tenant('premium-co', 'Premium', '{"tier": "premium"}');
SELECT identifier, isolation FROM tenancy.create_tenant('free-co', 'Free', '{"tier": "free"}');
SELECT identifier, isolation FROM tenancy.create_tenant('no-tier', 'No tier');
SET tenancy.premium_tiers = 'gold, platinum';
SELECT identifier, isolation FROM tenancy.create_tenant('gold-co', 'Gold', '{"tier": "gold"}');
SELECT identifier, isolation FROM tenancy.create_tenant('premium-two', 'Premium two', '{"tier": "premium"}');
SELECT identifier, isolation FROM tenancy.create_tenant('forced-rls', 'Forced', '{"tier": "gold"}', isolation => 'rls');
RESET tenancy.premium_tiers;
RESET tenancy.default_isolation;

-- destroy_data drops the schema.
SELECT tenancy.delete_tenant(id, destroy_data => true) FROM tenancy.tenants WHERE schema_name IS NOT NULL ORDER BY identifier;
SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\_%' OR nspname LIKE 'org\_%';
SELECT details FROM tenancy.audit_log WHERE action = 'destroy' ORDER BY id;
-- A hard delete without destroy_data keeps the schema but closes it to the
-- roles that had it.
CREATE ROLE tenancy_schema_user NOLOGIN;
SELECT identifier FROM tenancy.create_tenant('kept-data', 'Kept', isolation => 'schema', id => '00000000-0000-7000-8000-0000000000cd');
SELECT tenancy.grant_tenant('tenancy_schema_user', '00000000-0000-7000-8000-0000000000cd');
SELECT has_schema_privilege('tenancy_schema_user', 'tenant_kept_data', 'USAGE') AS before_delete;
SET tenancy.soft_delete = off;
SELECT tenancy.delete_tenant('00000000-0000-7000-8000-0000000000cd');
RESET tenancy.soft_delete;
SELECT has_schema_privilege('tenancy_schema_user', 'tenant_kept_data', 'USAGE') AS after_delete;
SET client_min_messages = warning;
DROP SCHEMA tenant_kept_data CASCADE;
RESET client_min_messages;
DROP ROLE tenancy_schema_user;
-- Hard delete of a schema tenant with destroy_data.
SELECT identifier FROM tenancy.create_tenant('short-lived', 'Short', isolation => 'schema', id => '00000000-0000-7000-8000-0000000000cc');
SET tenancy.soft_delete = off;
SELECT tenancy.delete_tenant('00000000-0000-7000-8000-0000000000cc', destroy_data => true);
RESET tenancy.soft_delete;
SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_short_lived';
SELECT count(*) FROM tenancy.migration_ledger WHERE tenant_id = '00000000-0000-7000-8000-0000000000cc';

DROP EXTENSION tenancy;
