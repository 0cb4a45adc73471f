-- SPEC §11: tenancy.doctor() and tenancy.auto_rls.
-- Each check: a database set up as the docs say gives no row; a planted
-- problem gives its row; its fix, run as the superuser, takes the row away.
-- In a database of its own, so that other tests' leftovers do not count.
\set regress_db :DBNAME
SET client_min_messages = warning;
CREATE DATABASE doctor_regress;
\c doctor_regress
SET client_min_messages = warning;
CREATE EXTENSION tenancy;
-- What doctor() says, and running every fix it gives (psql's \gexec runs
-- each as a statement of its own, as CALL tenancy.migrate() needs).
\set doctor 'SELECT severity, object, fix FROM tenancy.doctor();'
\set fix 'SELECT fix FROM tenancy.doctor() WHERE fix IS NOT NULL'

-- Set up as docs/isolation-rls.md and docs/isolation-schema.md say: a
-- shared table whose keys lead with the tenant column, an application role
-- that owns nothing, a schema tenant with its migrations.
SELECT id AS acme FROM tenancy.create_tenant('doc-acme', 'Acme') \gset
SELECT id AS globex FROM tenancy.create_tenant('doc-globex', 'Globex') \gset
CREATE TABLE orders (id bigserial, tenant_id uuid NOT NULL, item text NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenancy.enable_rls('orders');
CREATE TABLE order_lines (tenant_id uuid NOT NULL, order_id bigint NOT NULL, line int NOT NULL,
                          PRIMARY KEY (tenant_id, order_id, line),
                          FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id));
SELECT tenancy.enable_rls('order_lines');
CREATE VIEW order_counts WITH (security_invoker = true) AS SELECT tenant_id, count(*) FROM orders GROUP BY 1;
CREATE ROLE doctor_app NOLOGIN;
GRANT SELECT, INSERT, UPDATE, DELETE ON orders, order_lines, order_counts TO doctor_app;
SELECT tenancy.grant_tenant('doctor_app', :'acme');
SELECT count(*) FROM tenancy.add_migration('001_invoices', 'CREATE TABLE invoices (id bigserial PRIMARY KEY, total numeric)');
SELECT schema_name FROM tenancy.create_tenant('doc-initech', 'Initech', isolation => 'schema');
SELECT tenancy.grant_tenant('doctor_app', (tenancy.tenant_by_identifier('doc-initech')).id);
:doctor

-- Who may call it: not PUBLIC (it tells which tables and roles are weak);
-- a role granted EXECUTE, as a tenant admin is.
SET ROLE doctor_app;
SELECT count(*) FROM tenancy.doctor();
RESET ROLE;
CREATE ROLE doctor_admin NOLOGIN;
GRANT EXECUTE ON FUNCTION tenancy.doctor() TO doctor_admin;
SET ROLE doctor_admin;
SELECT count(*) FROM tenancy.doctor();
RESET ROLE;

-- 1. A table with a tenant column that nobody registered, and a partition
-- of a registered table (read directly, it has no policy).  Not: a tenant
-- column of another type, a temporary table, a table in a tenant's schema.
CREATE TABLE forgotten (id bigint, tenant_id uuid);
CREATE TABLE events (tenant_id uuid NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);
SELECT tenancy.enable_rls('events');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE text_tenant (tenant_id text);
CREATE TEMP TABLE scratch (tenant_id uuid);
CREATE TABLE tenant_doc_initech.local (tenant_id uuid);
SELECT severity, object, problem, fix FROM tenancy.doctor();
:fix \gexec
:doctor
DROP TABLE text_tenant, scratch, tenant_doc_initech.local;

-- 2, 3. Row-level security disabled, or no longer forced.
ALTER TABLE orders DISABLE ROW LEVEL SECURITY;
ALTER TABLE order_lines NO FORCE ROW LEVEL SECURITY;
SELECT severity, object, problem, fix FROM tenancy.doctor();
:fix \gexec
:doctor

-- 4. The tenancy policy dropped, altered to another condition, or to
-- other roles.
DROP POLICY tenancy_isolation ON orders;
ALTER POLICY tenancy_isolation ON order_lines USING (true);
ALTER POLICY tenancy_isolation ON events TO doctor_app;
SELECT severity, object, problem FROM tenancy.doctor();
:fix \gexec
:doctor

-- 5. Another permissive policy (OR-ed with the tenancy policy); a
-- restrictive one only narrows and is fine.
CREATE POLICY widgets_for_all ON orders FOR SELECT USING (item = 'WIDGET');
CREATE POLICY hide_cancelled ON orders AS RESTRICTIVE FOR SELECT USING (item <> 'CANCELLED');
SELECT severity, object, problem, fix FROM tenancy.doctor();
:fix \gexec
:doctor
DROP POLICY hide_cancelled ON orders;

-- 6, 7, 8. Keys and indexes: a foreign key without the tenant column, a
-- primary key and a unique index over all tenants, indexes that do not
-- lead with the tenant column (plain, on an expression, a unique key that
-- holds it second).  The rows come in the order their fixes must run.
SET client_min_messages = error;   -- enable_rls's own WARNINGs say the same
CREATE TABLE customers (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, email text, code text,
                        UNIQUE (code, tenant_id));
CREATE UNIQUE INDEX customers_email ON customers (email);
CREATE INDEX customers_lower_email ON customers (lower(email));
SELECT tenancy.enable_rls('customers');
CREATE TABLE visits (tenant_id uuid NOT NULL, customer_id bigint REFERENCES customers (id) ON DELETE CASCADE,
                     at timestamptz, PRIMARY KEY (tenant_id, at));
SELECT tenancy.enable_rls('visits');
RESET client_min_messages;
SET client_min_messages = warning;
SELECT severity, object, problem, fix FROM tenancy.doctor();
:fix \gexec
:doctor
\d customers
\d visits

-- A foreign key from a table with no tenant column: no fix to give, and
-- the key it references cannot be replaced while it stands.
CREATE TABLE shipments (id bigint PRIMARY KEY, tenant_id uuid NOT NULL);
SET client_min_messages = error;
SELECT tenancy.enable_rls('shipments');
SET client_min_messages = warning;
CREATE TABLE shipment_refs (shipment_id bigint REFERENCES shipments (id));
:doctor
DROP TABLE shipment_refs;
:fix \gexec
:doctor

-- 9. No index leads with the tenant column (a warning: slow, not a leak).
DROP INDEX events_tenant_id_idx;
:doctor
:fix \gexec
:doctor

-- 10. Views over a registered table run with their owner's rights: owned
-- by a superuser, directly or through an invoker view; a materialized view
-- (no fix: it holds the rows); a view a migration made in a tenant's
-- schema.  A view owned by a role that does not bypass row-level security
-- is filtered as that role, and is fine.
CREATE VIEW all_orders AS SELECT * FROM orders;
CREATE VIEW all_counts AS SELECT * FROM order_counts;
CREATE MATERIALIZED VIEW order_snapshot AS SELECT * FROM orders;
CREATE ROLE doctor_reporter NOLOGIN;
GRANT SELECT ON orders TO doctor_reporter;
CREATE VIEW reporter_orders AS SELECT * FROM orders;
ALTER VIEW reporter_orders OWNER TO doctor_reporter;
SELECT count(*) FROM tenancy.add_migration('002_report', 'CREATE VIEW order_report AS SELECT count(*) FROM public.orders');
CALL tenancy.migrate();
SELECT severity, object, problem, fix FROM tenancy.doctor();
:fix \gexec
DROP MATERIALIZED VIEW order_snapshot;
:doctor
DROP VIEW all_orders, all_counts, reporter_orders;

-- 11. A grantee with BYPASSRLS, also through membership in a grantee.
CREATE ROLE doctor_member NOLOGIN BYPASSRLS IN ROLE doctor_app;
ALTER ROLE doctor_app BYPASSRLS;
SELECT severity, object, problem, fix FROM tenancy.doctor();
:fix \gexec
:doctor

-- 12. A grantee that owns a registered table, or is a member of its owner.
CREATE ROLE doctor_owner NOLOGIN;
ALTER TABLE order_lines OWNER TO doctor_owner;
ALTER TABLE events OWNER TO doctor_app;
GRANT doctor_owner TO doctor_member;
SELECT severity, object, problem, fix FROM tenancy.doctor();
:fix \gexec
:doctor
SELECT relname, pg_get_userbyid(relowner) FROM pg_class WHERE relname IN ('order_lines', 'events') ORDER BY 1;

-- 13. PUBLIC privileges on a registered table or a tenant's schema.
GRANT SELECT ON orders TO PUBLIC;
GRANT USAGE ON SCHEMA tenant_doc_initech TO PUBLIC;
SELECT severity, object, problem, fix FROM tenancy.doctor();
:fix \gexec
:doctor

-- 14. TRUNCATE on a registered table for a role that does not own it.
GRANT TRUNCATE ON orders TO doctor_app;
SELECT severity, object, problem, fix FROM tenancy.doctor();
:fix \gexec
:doctor

-- 15. A SECURITY DEFINER function owned by a grantee; 16. one in a tenant's
-- schema without a pinned search_path (a pinned one is fine).
CREATE FUNCTION app_secrets() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT count(*) FROM public.orders';
ALTER FUNCTION app_secrets() OWNER TO doctor_app;
CREATE FUNCTION tenant_doc_initech.total() RETURNS numeric LANGUAGE plpgsql SECURITY DEFINER
    AS 'BEGIN RETURN (SELECT sum(total) FROM invoices); END';
CREATE FUNCTION tenant_doc_initech.pinned() RETURNS numeric LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = tenant_doc_initech, pg_catalog, pg_temp AS 'BEGIN RETURN (SELECT sum(total) FROM invoices); END';
SELECT severity, object, problem, fix FROM tenancy.doctor();
:fix \gexec
:doctor
SELECT proname, prosecdef, proconfig FROM pg_proc WHERE proname IN ('app_secrets', 'total', 'pinned') ORDER BY 1;
DROP FUNCTION app_secrets(), tenant_doc_initech.total(), tenant_doc_initech.pinned();

-- 17. A grantee with CREATEROLE (PostgreSQL 15 here: it can grant itself
-- any other grantee).
SET client_min_messages = error;
ALTER ROLE doctor_app CREATEROLE;
SET client_min_messages = warning;
SELECT severity, object, problem, fix FROM tenancy.doctor();
:fix \gexec
:doctor

-- 18. Registry rows naming nothing: a table dropped while tenancy's
-- sql_drop trigger was off, a temporary table, a table that lost its
-- tenant column, a grant of a dropped role.  19. The event trigger off.
-- (OIDs differ from run to run: shown as N.)
CREATE TABLE doomed (tenant_id uuid NOT NULL);
SELECT tenancy.enable_rls('doomed');
ALTER EVENT TRIGGER tenancy_forget_dropped_tables DISABLE;
DROP TABLE doomed;
CREATE TEMP TABLE temp_tenant (tenant_id uuid);
INSERT INTO tenancy.rls_tables (tbl, tenant_column, policy_name) VALUES ('temp_tenant', 'tenant_id', 'tenancy_isolation');
CREATE TABLE renamed (tenant_id uuid NOT NULL);
SELECT tenancy.enable_rls('renamed');
ALTER TABLE renamed RENAME COLUMN tenant_id TO org;
CREATE ROLE doctor_leaver NOLOGIN;
SELECT tenancy.grant_tenant('doctor_leaver', :'acme');
REVOKE USAGE ON TYPE tenancy.tenant_grantee FROM doctor_leaver;
DROP ROLE doctor_leaver;
SELECT severity, regexp_replace(regexp_replace(object, '\d+', 'N'), 'pg_temp_N', 'pg_temp'),
       regexp_replace(problem, 'pg_temp_\d+', 'pg_temp'), regexp_replace(fix, '\d+', 'N')
  FROM tenancy.doctor();
\set ECHO none
:fix \gexec
\set ECHO all
:doctor
DROP TABLE renamed, temp_tenant;

-- 20. Schema tenants behind: migrations pending (one row, fixed by CALL
-- tenancy.migrate()), and a migration that failed (no fix: its cause is
-- the user's).
SELECT count(*) FROM tenancy.add_migration('003_notes', 'CREATE TABLE notes (id bigserial PRIMARY KEY, body text)');
SELECT count(*) FROM tenancy.create_tenant('doc-hooli', 'Hooli', isolation => 'schema');
:doctor
:fix \gexec
:doctor
CREATE TABLE tenant_doc_hooli.tags (x int);
SELECT count(*) FROM tenancy.add_migration('004_tags', 'CREATE TABLE tags (id bigserial PRIMARY KEY)');
SET client_min_messages = error;   -- its WARNING names the tenant's id
CALL tenancy.migrate();
SET client_min_messages = warning;
SELECT severity, object, problem, fix FROM tenancy.doctor();
DROP TABLE tenant_doc_hooli.tags;
CALL tenancy.migrate();
:doctor

-- auto_rls: off by default, superuser only.
SHOW tenancy.auto_rls;
SHOW tenancy.tenant_column;
CREATE TABLE before_on (tenant_id uuid);
SELECT count(*) FROM tenancy.rls_tables WHERE tbl = 'before_on'::regclass;
SET ROLE doctor_app;
SET tenancy.auto_rls = on;
SET tenancy.tenant_column = 'org_id';
RESET ROLE;
SET tenancy.auto_rls = on;
SET client_min_messages = notice;
-- Every form that makes a table with the tenant column, in the same
-- transaction (a ROLLBACK takes the registration back with the table).
CREATE TABLE auto_plain (id bigserial, tenant_id uuid NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE auto_added (id int);
ALTER TABLE auto_added ADD COLUMN tenant_id uuid;
CREATE TABLE auto_as AS SELECT * FROM auto_plain;
SELECT * INTO auto_into FROM auto_plain;
CREATE TABLE auto_parts (tenant_id uuid NOT NULL, k int NOT NULL) PARTITION BY LIST (k);
CREATE TABLE auto_parts_1 PARTITION OF auto_parts FOR VALUES IN (1);
CREATE TABLE auto_renamed (owner uuid);
ALTER TABLE auto_renamed RENAME COLUMN owner TO tenant_id;
CREATE TABLE auto_retyped (tenant_id text);
ALTER TABLE auto_retyped ALTER COLUMN tenant_id TYPE uuid USING tenant_id::uuid;
-- A partition of a table registered under another column name gets that
-- column; a table attached as a partition is registered with it too.
SET tenancy.auto_rls = off;
CREATE TABLE auto_org (org_id uuid NOT NULL, k int NOT NULL) PARTITION BY LIST (k);
CREATE TABLE auto_org_2 (org_id uuid NOT NULL, k int NOT NULL);
SET tenancy.auto_rls = on;
SELECT tenancy.enable_rls('auto_org', 'org_id');
CREATE TABLE auto_org_1 PARTITION OF auto_org FOR VALUES IN (1);
ALTER TABLE auto_org ATTACH PARTITION auto_org_2 FOR VALUES IN (2);
BEGIN;
CREATE TABLE auto_rolled_back (tenant_id uuid);
ROLLBACK;
-- Not: another type (a WARNING), a temporary table, a tenant's schema.
CREATE TABLE auto_text (tenant_id text);
CREATE TEMP TABLE auto_temp (tenant_id uuid);
CREATE TABLE tenant_doc_initech.auto_local (tenant_id uuid);
-- As a role that is no superuser: enable_rls runs as that role, which owns
-- the table it just created.
CREATE SCHEMA doctor_apps AUTHORIZATION doctor_reporter;
SET ROLE doctor_reporter;
CREATE TABLE doctor_apps.reports (tenant_id uuid NOT NULL, body text);
RESET ROLE;
RESET client_min_messages;
SET client_min_messages = warning;
SELECT r.tbl, r.tenant_column, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner) AS owner,
       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
  FROM tenancy.rls_tables r JOIN pg_class c ON c.oid = r.tbl::oid
 WHERE c.relname LIKE 'auto%' OR c.relname = 'reports' ORDER BY r.tbl::text;
SELECT count(*) FROM pg_class WHERE relname = 'auto_rolled_back';
-- Registered tables give no rows; those left out are the user's to see.
:doctor
-- Off again: nothing is registered.
RESET tenancy.auto_rls;
CREATE TABLE after_off (tenant_id uuid);
SELECT count(*) FROM tenancy.rls_tables WHERE tbl = 'after_off'::regclass;
-- The event trigger exists and coexists with tenancy's others.
SELECT evtname, evtevent, evttags FROM pg_event_trigger ORDER BY 1;

\c :regress_db
SET client_min_messages = warning;
DROP DATABASE doctor_regress;
DROP ROLE doctor_member, doctor_owner, doctor_reporter, doctor_admin, doctor_app;
