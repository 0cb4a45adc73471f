-- SPEC §12: create_tenant(…, schema_name => …) names a schema tenant's
-- schema, and adopts an existing schema as a baseline: its tables are kept
-- and every registered migration is recorded as applied.  Adopting opens a
-- schema's tables to the tenant's grantees and later migrations run in it,
-- so who may adopt what, and with whose rights migrations run there, are
-- tested as carefully as the happy path.
\set VERBOSITY default
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS tenancy CASCADE;
RESET client_min_messages;
CREATE EXTENSION tenancy;
CREATE FUNCTION pg_temp.error_of(sql text) RETURNS TABLE (sqlstate text, message text)
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE sql;
  RETURN QUERY SELECT 'ok'::text, ''::text;
EXCEPTION WHEN OTHERS THEN
  RETURN QUERY SELECT SQLSTATE::text, SQLERRM::text;
END $$;
SELECT name FROM tenancy.add_migration('001_invoices', 'CREATE TABLE invoices (id serial PRIMARY KEY, total numeric)');

--------------------------------------------------------------------------
-- Bad input: 22023, nothing created.
--------------------------------------------------------------------------
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('bad', 'Bad', isolation => 'schema', schema_name => 'Tenant_bad')$$);
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('bad', 'Bad', isolation => 'schema', schema_name => 'tenant-bad')$$);
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('bad', 'Bad', isolation => 'schema', schema_name => '')$$);
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('bad', 'Bad', isolation => 'schema', schema_name => 'public')$$);
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('bad', 'Bad', isolation => 'schema', schema_name => 'tenancy')$$);
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('bad', 'Bad', isolation => 'schema', schema_name => 'information_schema')$$);
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('bad', 'Bad', isolation => 'schema', schema_name => 'pg_toast')$$);
-- Only schema tenants have a schema: rls and database tenants refuse it,
-- also when the isolation comes from tenancy.default_isolation.
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('bad', 'Bad', isolation => 'rls', schema_name => 'tenant_bad')$$);
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('bad', 'Bad', isolation => 'database', schema_name => 'tenant_bad')$$);
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('bad', 'Bad', schema_name => 'tenant_bad')$$);
SET tenancy.default_isolation = 'schema';
SELECT identifier, isolation, schema_name FROM tenancy.create_tenant('by-default', 'By default', schema_name => 'by_default_home');
RESET tenancy.default_isolation;
SELECT count(*) AS bad_tenants FROM tenancy.tenants WHERE identifier = 'bad';
SELECT count(*) AS bad_schemas FROM pg_namespace WHERE nspname = 'tenant_bad';

--------------------------------------------------------------------------
-- A new name: the schema is created under it and migrated as usual.
--------------------------------------------------------------------------
SELECT identifier, schema_name FROM tenancy.create_tenant('fresh', 'Fresh', isolation => 'schema', schema_name => 'fresh_home');
SELECT count(*) AS invoices_rows FROM fresh_home.invoices;
SELECT l.migration, l.status FROM tenancy.migration_ledger l JOIN tenancy.tenants t ON t.id = l.tenant_id WHERE t.identifier = 'fresh';
-- A name starts with a letter, like every tenant schema's (set_tenant
-- relies on it to recognise tenant schemas on search_path).
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('nine', 'Nine', isolation => 'schema', schema_name => '9lives')$$);
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('nine', 'Nine', isolation => 'schema', schema_name => '_nine')$$);
SELECT identifier, schema_name FROM tenancy.create_tenant('nine', 'Nine', isolation => 'schema', schema_name => 'n9_lives');
-- The name is the tenant's: another tenant may not have it (23505), not
-- even once the first is soft-deleted.
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('thief', 'Thief', isolation => 'schema', schema_name => 'fresh_home')$$);
SELECT tenancy.delete_tenant((tenancy.tenant_by_identifier('nine')).id);
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('thief', 'Thief', isolation => 'schema', schema_name => 'n9_lives')$$);

--------------------------------------------------------------------------
-- Adoption: a schema fastapi-tenancy (or anyone) made, with its tables
-- and rows, owned by the application's own role.
--------------------------------------------------------------------------
CREATE ROLE ad_owner NOLOGIN;
CREATE ROLE ad_reader NOLOGIN;
CREATE ROLE ad_stranger NOLOGIN;
CREATE SCHEMA tenant_hooli AUTHORIZATION ad_owner;
SET ROLE ad_owner;
CREATE TABLE tenant_hooli.invoices (id serial PRIMARY KEY, total numeric);
INSERT INTO tenant_hooli.invoices (total) VALUES (10), (20);
-- What ran who: a trigger of the schema's owner records the role it runs as.
CREATE TABLE tenant_hooli.ran_as (who name, superuser boolean);
CREATE FUNCTION tenant_hooli.note_role() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO tenant_hooli.ran_as SELECT current_user, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user;
  RETURN NEW;
END $$;
CREATE TRIGGER note_role BEFORE INSERT ON tenant_hooli.invoices FOR EACH ROW EXECUTE FUNCTION tenant_hooli.note_role();
-- The application opened it to everyone; and it set default privileges.
GRANT USAGE ON SCHEMA tenant_hooli TO PUBLIC;
GRANT SELECT ON tenant_hooli.invoices TO PUBLIC;
GRANT SELECT (total) ON tenant_hooli.invoices TO ad_stranger;
ALTER DEFAULT PRIVILEGES IN SCHEMA tenant_hooli GRANT SELECT ON TABLES TO ad_stranger;
RESET ROLE;
-- A table of another role in it (the superuser adopting has that role's privileges).
CREATE TABLE tenant_hooli.strangers_own (x int);
ALTER TABLE tenant_hooli.strangers_own OWNER TO ad_stranger;
-- In a transaction that rolls back: nothing is left but the schema as it was.
BEGIN;
SELECT identifier, schema_name FROM tenancy.create_tenant('hooli', 'Hooli', isolation => 'schema', schema_name => 'tenant_hooli');
ROLLBACK;
SELECT count(*) AS tenants_named_hooli FROM tenancy.tenants WHERE identifier = 'hooli';
SELECT has_table_privilege('ad_stranger', 'tenant_hooli.invoices', 'SELECT') AS privileges_as_they_were;
SELECT count(*) AS invoices_kept FROM tenant_hooli.invoices;
SELECT identifier, schema_name FROM tenancy.create_tenant('hooli', 'Hooli', isolation => 'schema', schema_name => 'tenant_hooli');
-- Tables and rows kept; every registered migration recorded, none run.
SELECT count(*) AS invoices_kept FROM tenant_hooli.invoices;
SELECT l.migration, l.status FROM tenancy.migration_ledger l JOIN tenancy.tenants t ON t.id = l.tenant_id WHERE t.identifier = 'hooli';
SELECT a.details FROM tenancy.audit_log a JOIN tenancy.tenants t ON t.id = a.tenant_id
 WHERE t.identifier = 'hooli' AND a.action = 'provision';
SELECT nspowner::regrole AS still_owned_by FROM pg_namespace WHERE nspname = 'tenant_hooli';
-- Tenancy opens and closes it from now on: no privilege of PUBLIC or of any
-- other role is left (on the schema, its tables and columns, or in the
-- owner's default privileges).
SET ROLE ad_stranger;
SELECT * FROM pg_temp.error_of($$SELECT count(*) FROM tenant_hooli.invoices$$);
RESET ROLE;
SELECT has_table_privilege('ad_stranger', 'tenant_hooli.strangers_own', 'SELECT') AS owner_keeps_its_own,
       has_table_privilege('ad_stranger', 'tenant_hooli.invoices', 'SELECT') AS but_not_the_others;
SELECT count(*) AS privileges_left FROM (
  SELECT aclexplode(nspacl) e, nspowner AS owner FROM pg_namespace WHERE nspname = 'tenant_hooli'
  UNION ALL SELECT aclexplode(relacl), relowner FROM pg_class WHERE relnamespace = 'tenant_hooli'::regnamespace
  UNION ALL SELECT aclexplode(attacl), c.relowner FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE c.relnamespace = 'tenant_hooli'::regnamespace
  UNION ALL SELECT aclexplode(defaclacl), defaclrole FROM pg_default_acl WHERE defaclnamespace = 'tenant_hooli'::regnamespace) x
 WHERE (x.e).grantee <> x.owner;
-- The tenant's grantees get its tables, and the tables later migrations make.
SELECT tenancy.grant_tenant('ad_reader', (tenancy.tenant_by_identifier('hooli')).id);
-- A later migration runs in the adopted schema as the schema's owner: the
-- owner's trigger never runs with the extension owner's rights.
SELECT name FROM tenancy.add_migration('002_more', 'INSERT INTO invoices (total) VALUES (30); CREATE TABLE later (id int)');
SELECT * FROM pg_temp.error_of($$SELECT tenancy.migrate_tenant((tenancy.tenant_by_identifier('hooli')).id)$$);
SELECT who, superuser FROM tenant_hooli.ran_as;
SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'tenant_hooli' ORDER BY 1;
SET ROLE ad_reader;
SELECT identifier FROM tenancy.set_tenant('hooli');
SELECT count(*) AS invoices_seen FROM invoices;
SELECT count(*) AS later_seen FROM later;
SELECT tenancy.clear_tenant();
RESET ROLE;
-- Suspended, it is closed to its grantees too; not to its owner, also when
-- the owner is granted the tenant (closing takes nothing it owns).
SELECT tenancy.grant_tenant('ad_owner', (tenancy.tenant_by_identifier('hooli')).id);
SELECT status FROM tenancy.suspend_tenant((tenancy.tenant_by_identifier('hooli')).id);
SELECT has_table_privilege('ad_owner', 'tenant_hooli.invoices', 'TRUNCATE') AS owner_keeps_truncate,
       has_schema_privilege('ad_owner', 'tenant_hooli', 'USAGE') AS owner_keeps_usage;
SELECT tenancy.revoke_tenant('ad_owner', (tenancy.tenant_by_identifier('hooli')).id);
SET ROLE ad_reader;
SELECT * FROM pg_temp.error_of($$SELECT count(*) FROM tenant_hooli.invoices$$);
RESET ROLE;
SELECT status FROM tenancy.activate_tenant((tenancy.tenant_by_identifier('hooli')).id);
-- A table another role puts in the schema later is not the tenant's to hand
-- out: the grants cover the relations of the schema's owner only.
SET ROLE ad_owner;
GRANT USAGE, CREATE ON SCHEMA tenant_hooli TO ad_stranger;
SET ROLE ad_stranger;
CREATE TABLE tenant_hooli.planted (x int);
RESET ROLE;
SELECT status FROM tenancy.suspend_tenant((tenancy.tenant_by_identifier('hooli')).id);
SELECT status FROM tenancy.activate_tenant((tenancy.tenant_by_identifier('hooli')).id);
SELECT has_table_privilege('ad_reader', 'tenant_hooli.invoices', 'SELECT') AS reader_gets_invoices,
       has_table_privilege('ad_reader', 'tenant_hooli.planted', 'SELECT') AS reader_gets_planted;
DROP TABLE tenant_hooli.planted;
REVOKE USAGE, CREATE ON SCHEMA tenant_hooli FROM ad_stranger;
-- A rename keeps the schema's name.
SELECT identifier, schema_name FROM tenancy.update_tenant((tenancy.tenant_by_identifier('hooli')).id, identifier => 'hooli-xyz');

-- The schema stays the tenant's while the tenant is not deleted: its owner
-- may neither rename it (another role could then create one under the old
-- name for the tenant's writes) nor drop it; nor may a superuser.
GRANT CREATE ON DATABASE :"DBNAME" TO ad_owner;
SET client_min_messages = warning;   -- DROP … CASCADE lists what it would drop
SET ROLE ad_owner;
SELECT * FROM pg_temp.error_of($$ALTER SCHEMA tenant_hooli RENAME TO tenant_hooli_v1$$);
SELECT * FROM pg_temp.error_of($$DROP SCHEMA tenant_hooli CASCADE$$);
RESET ROLE;
REVOKE CREATE ON DATABASE :"DBNAME" FROM ad_owner;
SELECT * FROM pg_temp.error_of($$ALTER SCHEMA tenant_hooli RENAME TO tenant_hooli_v1$$);
SELECT * FROM pg_temp.error_of($$DROP SCHEMA tenant_hooli CASCADE$$);
RESET client_min_messages;
SELECT count(*) AS hooli_schema_kept FROM pg_namespace WHERE nspname = 'tenant_hooli';
-- Other schemas are renamed and dropped as ever.
CREATE SCHEMA ad_scratch;
ALTER SCHEMA ad_scratch RENAME TO ad_scratch_two;
DROP SCHEMA ad_scratch_two;

--------------------------------------------------------------------------
-- Who may adopt: a tenant admin below superuser adopts only a schema whose
-- owner's privileges it has, and only if it has those of every table's
-- owner in it (else grant_tenant would hand out tables it could not grant).
--------------------------------------------------------------------------
CREATE ROLE ad_admin NOLOGIN;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA tenancy TO ad_admin;
CREATE SCHEMA payroll;
CREATE TABLE payroll.salaries (who text, amount numeric);
CREATE ROLE ad_app NOLOGIN;
GRANT ad_app TO ad_admin;
CREATE SCHEMA tenant_mixed AUTHORIZATION ad_app;
CREATE TABLE tenant_mixed.salaries (who text, amount numeric);   -- owned by the superuser
CREATE SCHEMA tenant_ours AUTHORIZATION ad_app;
CREATE TABLE tenant_ours.notes (body text);
ALTER TABLE tenant_ours.notes OWNER TO ad_app;
SET ROLE ad_admin;
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('grab', 'Grab', isolation => 'schema', schema_name => 'payroll')$$);
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('grab', 'Grab', isolation => 'schema', schema_name => 'tenant_mixed')$$);
SELECT identifier, schema_name FROM tenancy.create_tenant('ours', 'Ours', isolation => 'schema', schema_name => 'tenant_ours');
RESET ROLE;
-- A schema an extension owns is never a tenant's.
CREATE SCHEMA ext_owned;
ALTER EXTENSION tenancy ADD SCHEMA ext_owned;
SELECT * FROM pg_temp.error_of($$SELECT tenancy.create_tenant('ext', 'Ext', isolation => 'schema', schema_name => 'ext_owned')$$);
ALTER EXTENSION tenancy DROP SCHEMA ext_owned;
DROP SCHEMA ext_owned;
SELECT count(*) AS refused_tenants FROM tenancy.tenants WHERE identifier IN ('grab', 'ext');

--------------------------------------------------------------------------
-- The caller is the role that calls, not the session's: code of a role
-- below superuser that runs as that role inside a superuser's session (a
-- SECURITY DEFINER function, an index expression under the superuser's
-- ANALYZE, a trigger fired by a migration in an adopted schema) may not
-- register migrations, nor adopt a schema that role could not adopt itself.
-- (The review of 0.4.0's adoption: each route made a tenant admin superuser.)
--------------------------------------------------------------------------
CREATE ROLE ad_mallory NOLOGIN;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA tenancy TO ad_mallory;
CREATE SCHEMA mallory AUTHORIZATION ad_mallory;
CREATE SCHEMA vault;
CREATE TABLE vault.secrets (s text);
SET ROLE ad_mallory;
CREATE TABLE mallory.tries (route text, what text, outcome text);
CREATE FUNCTION mallory.try(route text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $f$
BEGIN
  BEGIN
    PERFORM tenancy.add_migration('zz_' || route, 'ALTER ROLE ad_mallory SUPERUSER');
    INSERT INTO mallory.tries VALUES (route, 'add_migration', 'ok');
  EXCEPTION WHEN OTHERS THEN INSERT INTO mallory.tries VALUES (route, 'add_migration', SQLSTATE);
  END;
  BEGIN
    PERFORM tenancy.create_tenant('vault-' || route, 'Vault', isolation => 'schema', schema_name => 'vault');
    INSERT INTO mallory.tries VALUES (route, 'adopt vault', 'ok');
  EXCEPTION WHEN OTHERS THEN INSERT INTO mallory.tries VALUES (route, 'adopt vault', SQLSTATE);
  END;
END $f$;
CREATE FUNCTION mallory.idx(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog AS $f$
BEGIN
  IF current_setting('mallory.armed', true) = 'on' THEN PERFORM mallory.try('index'); END IF;
  RETURN x;
END $f$;
CREATE TABLE mallory.t (x int);
INSERT INTO mallory.t SELECT 1 FROM generate_series(1, 10);
CREATE INDEX ON mallory.t (mallory.idx(x));
CREATE FUNCTION mallory.on_update() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.try('trigger'); RETURN NULL; END $f$;
CREATE TABLE mallory.invoices (id serial PRIMARY KEY, total numeric);
CREATE TRIGGER on_update AFTER UPDATE ON mallory.invoices FOR EACH STATEMENT EXECUTE FUNCTION mallory.on_update();
-- Its own schema it may adopt (it owns it and everything in it).
SELECT identifier FROM tenancy.create_tenant('mallory', 'Mallory', isolation => 'schema', schema_name => 'mallory');
RESET ROLE;
-- The superuser calls its function, runs ANALYZE, runs a migration.
SELECT mallory.try('definer');
SET mallory.armed = on;
ANALYZE mallory.t;
RESET mallory.armed;
SELECT name FROM tenancy.add_migration('003_touch', 'UPDATE invoices SET total = total');
SELECT * FROM pg_temp.error_of($$SELECT tenancy.migrate_tenant((tenancy.tenant_by_identifier('mallory')).id)$$);
SELECT route, what, outcome FROM mallory.tries GROUP BY 1, 2, 3 ORDER BY 1, 2;
SELECT rolsuper AS mallory_is_superuser FROM pg_roles WHERE rolname = 'ad_mallory';
SELECT count(*) AS vault_tenants FROM tenancy.tenants WHERE schema_name = 'vault';
SELECT count(*) AS planted_migrations FROM tenancy.migrations WHERE name LIKE 'zz\_%';

--------------------------------------------------------------------------
-- destroy_data drops an adopted schema like any tenant schema.
--------------------------------------------------------------------------
SET tenancy.soft_delete = off;
SELECT tenancy.delete_tenant((tenancy.tenant_by_identifier('hooli-xyz')).id, destroy_data => true);
SELECT count(*) AS hooli_schema_left FROM pg_namespace WHERE nspname = 'tenant_hooli';
RESET tenancy.soft_delete;
-- A soft-deleted tenant's schema is no longer guarded: it may be dropped by hand.
SELECT tenancy.delete_tenant((tenancy.tenant_by_identifier('ours')).id);
SET client_min_messages = warning;
DROP SCHEMA tenant_ours CASCADE;
RESET client_min_messages;
SET tenancy.soft_delete = off;
SELECT count(tenancy.delete_tenant(id, destroy_data => true)) FROM tenancy.tenants;
RESET tenancy.soft_delete;

--------------------------------------------------------------------------
-- enable_rls by a table owner without CREATE on the table's schema (public
-- on PostgreSQL 15): the policy is installed, and the index it cannot make
-- is a WARNING naming the statement to run, not an error.
--------------------------------------------------------------------------
CREATE TABLE public.ad_orders (id int, tenant_id uuid NOT NULL, item text);
ALTER TABLE public.ad_orders OWNER TO ad_owner;
GRANT EXECUTE ON FUNCTION tenancy.enable_rls TO ad_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;   -- PostgreSQL 15's default; explicit for older servers
SET ROLE ad_owner;
SELECT tenancy.enable_rls('public.ad_orders');
RESET ROLE;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'public.ad_orders'::regclass;
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'public.ad_orders'::regclass;
DROP TABLE public.ad_orders;

DROP SCHEMA payroll CASCADE;
DROP SCHEMA tenant_mixed CASCADE;
DROP SCHEMA vault CASCADE;
DROP EXTENSION tenancy;
DROP ROLE ad_owner, ad_reader, ad_stranger, ad_admin, ad_app, ad_mallory;
