-- SPEC §9: tenant_footprint, and the proof delete_tenant(…, destroy_data)
-- records; a tenant schema's drop never takes objects outside it along.
CREATE EXTENSION IF NOT EXISTS tenancy;
SET client_min_messages = warning;
SELECT count(*) FROM tenancy.add_migration('fp_001', 'CREATE TABLE notes (id serial PRIMARY KEY, body text)');
SELECT id AS s FROM tenancy.create_tenant('fp-schema', 'Schema tenant', isolation => 'schema') \gset
SELECT id AS r FROM tenancy.create_tenant('fp-shared', 'Shared tenant') \gset
SELECT id AS o FROM tenancy.create_tenant('fp-other', 'Other tenant') \gset
INSERT INTO tenant_fp_schema.notes (body) VALUES ('x'), ('y');
CREATE TABLE fp_items (tenant_id uuid NOT NULL, v text);
CREATE TABLE fp_orders (owner_tenant uuid NOT NULL, v text);
SELECT tenancy.enable_rls('fp_items');
SELECT tenancy.enable_rls('fp_orders', 'owner_tenant');
INSERT INTO fp_items VALUES (:'r', 'a'), (:'r', 'b'), (:'o', 'other'), (:'s', 'stray');
INSERT INTO fp_orders VALUES (:'r', 'o1');
-- Rows nobody registered: a table made by hand, a column named like a
-- registered tenant column, and a copy inside another tenant's schema.
CREATE TABLE fp_export_by_hand (tenant_id uuid, owner_tenant uuid, v text);
INSERT INTO fp_export_by_hand VALUES (:'r', NULL, 'c'), (NULL, :'r', 'd'), (:'o', NULL, 'e');
CREATE TABLE tenant_fp_schema.leaked (tenant_id uuid);
INSERT INTO tenant_fp_schema.leaked VALUES (:'r');
CREATE TABLE fp_no_match (tenant_id text);   -- not a uuid column: not counted
INSERT INTO fp_no_match VALUES (:'r');

SELECT * FROM tenancy.tenant_footprint(:'r') ORDER BY registered DESC, tbl::text;
SELECT * FROM tenancy.tenant_footprint(:'s') ORDER BY registered DESC, tbl::text;
-- Row-level security forced on a table does not hide rows from the count.
SELECT rows FROM tenancy.tenant_footprint(:'o') WHERE tbl = 'fp_items'::regclass;

-- Errors: NULL, unknown tenant, database tenant.
\set VERBOSITY terse
SELECT * FROM tenancy.tenant_footprint(NULL);
SELECT * FROM tenancy.tenant_footprint('00000000-0000-0000-0000-000000000001');
\set VERBOSITY default

-- destroy_data records what went and what remains (with a WARNING).
SET client_min_messages = notice;
SELECT tenancy.delete_tenant(:'r', destroy_data => true);
SELECT details->'removed' AS removed, details->'remaining' AS remaining, details->'rows_deleted' AS rows_deleted
  FROM tenancy.audit_log WHERE tenant_id = :'r' AND action = 'destroy';

-- A schema tenant's schema goes alone: a view elsewhere on its table stops it,
-- and nothing is changed.
CREATE VIEW fp_report AS SELECT count(*) FROM tenant_fp_schema.notes;
SELECT tenancy.delete_tenant(:'s', destroy_data => true);
SELECT status FROM tenancy.tenant(:'s');
SELECT count(*) FROM tenant_fp_schema.notes;
DROP VIEW fp_report;
DROP TABLE tenant_fp_schema.leaked;
SELECT tenancy.delete_tenant(:'s', destroy_data => true);
SELECT details->'removed' AS removed, details->'remaining' AS remaining
  FROM tenancy.audit_log WHERE tenant_id = :'s' AND action = 'destroy';
SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_fp_schema';
DROP TABLE fp_items, fp_orders, fp_export_by_hand, fp_no_match;

-- destroy_data deletes from referencing tables first: customers <- orders
-- <- order lines, whose names sort parents first.
SELECT id AS f FROM tenancy.create_tenant('fp-fk', 'FK tenant') \gset
CREATE TABLE fp_a_customers (tenant_id uuid NOT NULL, id int, PRIMARY KEY (tenant_id, id));
CREATE TABLE fp_b_orders (tenant_id uuid NOT NULL, id int, customer_id int, PRIMARY KEY (tenant_id, id));
CREATE TABLE fp_c_lines (tenant_id uuid NOT NULL, id int, order_id int, PRIMARY KEY (tenant_id, id));
ALTER TABLE fp_c_lines ADD FOREIGN KEY (tenant_id, order_id) REFERENCES fp_b_orders (tenant_id, id);
ALTER TABLE fp_b_orders ADD FOREIGN KEY (tenant_id, customer_id) REFERENCES fp_a_customers (tenant_id, id);
SELECT tenancy.enable_rls('fp_c_lines'), tenancy.enable_rls('fp_b_orders'), tenancy.enable_rls('fp_a_customers');
INSERT INTO fp_a_customers VALUES (:'f', 1);
INSERT INTO fp_b_orders VALUES (:'f', 1, 1);
INSERT INTO fp_c_lines VALUES (:'f', 1, 1);
SELECT tenancy.delete_tenant(:'f', destroy_data => true);
SELECT details->'removed' AS removed FROM tenancy.audit_log WHERE tenant_id = :'f' AND action = 'destroy';
DROP TABLE fp_c_lines, fp_b_orders, fp_a_customers;

-- No code of a table's owner runs with the extension owner's rights: a
-- partial index whose predicate calls the owner's function (run whenever
-- a query on the table is planned) never runs as a superuser, whether the
-- table is found by its column (tenant_footprint, destroy_data), is
-- registered (tenant_usage) or exported (export_tenant).
DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fp_trapper') THEN CREATE ROLE fp_trapper; END IF; END $$;
CREATE SCHEMA fp_trap AUTHORIZATION fp_trapper;
SET ROLE fp_trapper;
CREATE TABLE fp_trap.log (who name);
CREATE FUNCTION fp_trap.vol() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN INSERT INTO fp_trap.log VALUES (current_user); RETURN true; END $$;
CREATE FUNCTION fp_trap.imm() RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN fp_trap.vol(); END $$;
CREATE TABLE fp_trap.found (tenant_id uuid, n int);
CREATE TABLE fp_trap.registered (tenant_id uuid NOT NULL, n int);
RESET ROLE;
SELECT id AS t FROM tenancy.create_tenant('fp-trap', 'Trap') \gset
SET ROLE fp_trapper;
INSERT INTO fp_trap.found VALUES (:'t', 1);
INSERT INTO fp_trap.registered VALUES (:'t', 1);
CREATE INDEX found_trap ON fp_trap.found (n) WHERE fp_trap.imm();
CREATE INDEX registered_trap ON fp_trap.registered (n) WHERE fp_trap.imm();
RESET ROLE;
SELECT tenancy.enable_rls('fp_trap.registered');
SELECT tbl, rows, registered FROM tenancy.tenant_footprint(:'t') ORDER BY tbl::text;
SELECT tbl, rows FROM tenancy.tenant_usage(:'t') ORDER BY tbl::text;
SELECT count(*) FROM tenancy.export_tenant(:'t');
SELECT count(*) AS as_superuser FROM fp_trap.log l JOIN pg_roles r ON r.rolname = l.who WHERE r.rolsuper;
SET tenancy.soft_delete = off;
SELECT tenancy.delete_tenant(:'t', destroy_data => true);
RESET tenancy.soft_delete;
SELECT count(*) AS as_superuser FROM fp_trap.log l JOIN pg_roles r ON r.rolname = l.who WHERE r.rolsuper;
SELECT tenancy.disable_rls('fp_trap.registered');
DROP SCHEMA fp_trap CASCADE;
