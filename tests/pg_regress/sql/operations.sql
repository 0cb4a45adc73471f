-- Tenant data operations (SPEC §9): export_tenant, import_tenant, clone_tenant.
-- The export's shape and order, one snapshot, the round trip of every common
-- column type, sequences, errors (nothing changed), audit rows, who may call
-- them and as whom they write.  The round trip into a fresh database is
-- tests/faults/export_roundtrip.test.sh.
\set VERBOSITY terse
CREATE EXTENSION tenancy;
\set a '''00000000-0000-7000-8000-0000000000a1'''
\set b '''00000000-0000-7000-8000-0000000000b1'''
SELECT identifier FROM tenancy.create_tenant('ops-a', 'Ops "A"', '{"plan": "pro", "seats": 3}', id => :a);
SELECT identifier FROM tenancy.create_tenant('ops-b', 'Ops B', id => :b);
-- Fixed creation times, for outputs that show them.
UPDATE tenancy.tenants SET created_at = '2024-01-01 00:00:00+00', updated_at = '2024-01-01 00:00:00+00';

-- Shared tables owned by a role below superuser, with a trigger that shows
-- as whom rows are written.
CREATE ROLE ops_owner NOLOGIN;
CREATE SCHEMA ops AUTHORIZATION ops_owner;
GRANT EXECUTE ON FUNCTION tenancy.enable_rls(regclass, name) TO ops_owner;
SET ROLE ops_owner;
CREATE TABLE ops.written_as (tbl text, who name);
CREATE FUNCTION ops.note_writer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ops.written_as VALUES (TG_TABLE_NAME, current_user);
  RETURN NULL;
END $$;
-- Declared children first: the export puts them after what they reference.
CREATE TABLE ops.customers (tenant_id uuid NOT NULL, id int GENERATED ALWAYS AS IDENTITY, name text NOT NULL,
                            PRIMARY KEY (tenant_id, id));
CREATE TABLE ops.orders (tenant_id uuid NOT NULL, id bigserial, customer_id int NOT NULL, parent bigint,
                         note text, total numeric(12,2), at timestamptz, doc jsonb, tags text[], blob bytea, ratio float8,
                         doubled numeric GENERATED ALWAYS AS (total * 2) STORED,
                         PRIMARY KEY (tenant_id, id),
                         FOREIGN KEY (tenant_id, customer_id) REFERENCES ops.customers,
                         FOREIGN KEY (tenant_id, parent) REFERENCES ops.orders);
CREATE TABLE ops.a_lines (tenant_id uuid NOT NULL, order_id bigint NOT NULL, n int NOT NULL,
                          FOREIGN KEY (tenant_id, order_id) REFERENCES ops.orders, PRIMARY KEY (tenant_id, order_id, n));
CREATE TRIGGER note_writer AFTER INSERT ON ops.orders FOR EACH STATEMENT EXECUTE FUNCTION ops.note_writer();
SELECT tenancy.enable_rls('ops.customers');
SELECT tenancy.enable_rls('ops.orders');
SELECT tenancy.enable_rls('ops.a_lines');
RESET ROLE;

-- Rows of both tenants; a's cover the types a user is likely to have.
SET timezone = 'UTC';
INSERT INTO ops.customers (tenant_id, name) VALUES
  (:a, 'Ann "quoted" O''Neil'), (:a, E'back\\slash\nnew line\ttab'), (:b, 'B only');
INSERT INTO ops.orders (tenant_id, customer_id, parent, note, total, at, doc, tags, blob, ratio) VALUES
  (:a, 1, NULL, 'first', 12.50, '2024-01-02 03:04:05.123456+02', '{"k": [1, null], "s": "x\"y"}', '{a,"b c",NULL}', '\x00ff', 0.1),
  (:a, 2, 1, NULL, NULL, NULL, 'null', NULL, NULL, NULL),
  (:a, 2, 2, '', 'NaN', 'infinity', NULL, '{}', '', 'Infinity'),
  (:b, 3, NULL, 'B''s order', 1, '2024-05-05', '{}', '{}', '\x01', 1);
INSERT INTO ops.a_lines VALUES (:a, 1, 1), (:a, 1, 2), (:a, 3, 1), (:b, 4, 1);
TRUNCATE ops.written_as;

-- The export: a header, then a line per row; tables after those they
-- reference; no tenant column, no generated column, none of b's rows.
CREATE TEMP TABLE lines_a AS SELECT line FROM tenancy.export_tenant(:a) WITH ORDINALITY AS e(line, n) ORDER BY n;
SELECT line->'format' AS format, line->'version' AS version, (line->'tenant') - '{id,created_at}'::text[] AS tenant,
       line->'migrations' AS migrations, jsonb_pretty(line->'tables') AS tables
  FROM lines_a WHERE line ? 'format';
SELECT (SELECT line->'tenant'->>'id' FROM lines_a WHERE line ? 'format') = :a AS exports_its_id;
SELECT line->>'table' AS tbl, line->'row' AS row FROM tenancy.export_tenant(:a) WITH ORDINALITY AS e(line, n)
 WHERE NOT line ? 'format' ORDER BY n;
-- In COPY, as clients save it: one JSON value per line (newlines escaped).
COPY (SELECT tenancy.export_tenant(:b)) TO STDOUT;
-- A stopped export (LIMIT) closes its cursors; the next one starts afresh.
SELECT count(*) FROM (SELECT tenancy.export_tenant(:a) LIMIT 2) x;
SELECT count(*) FROM tenancy.export_tenant(:a);

-- One snapshot: rows written after the export started are not in it, in
-- any table, however the lines are fetched.
BEGIN;
DECLARE e CURSOR FOR SELECT tenancy.export_tenant(:a) - 'tenant'::text AS line;
FETCH 1 FROM e;
INSERT INTO ops.customers (tenant_id, name) VALUES (:a, 'late');
DELETE FROM ops.a_lines WHERE tenant_id = :a AND n = 2;
FETCH ALL FROM e;
ROLLBACK;

-- Import into a new tenant of the same database (the round trip into a
-- fresh database is the shell test): the same rows, the new tenant's id.
CREATE TEMP TABLE lines (line jsonb);
INSERT INTO lines SELECT line FROM lines_a;
SELECT identifier, name, status, isolation, metadata FROM tenancy.import_tenant('lines', 'ops-a-copy');
SELECT id AS copy FROM tenancy.tenant_by_identifier('ops-a-copy') \gset
CREATE FUNCTION pg_temp.fingerprint(t uuid) RETURNS text LANGUAGE sql AS $$
  SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
    SELECT format('c %s %s', id, name) FROM ops.customers WHERE tenant_id = t
    UNION ALL SELECT format('o %s %s %s %s %s %s %s %s %s %s %s', id, customer_id, parent, quote_nullable(note), total, at,
                            quote_nullable(doc::text), quote_nullable(tags::text), quote_nullable(blob::text), ratio, doubled)
      FROM ops.orders WHERE tenant_id = t
    UNION ALL SELECT format('l %s %s', order_id, n) FROM ops.a_lines WHERE tenant_id = t) r(x) $$;
SELECT pg_temp.fingerprint(:a) = pg_temp.fingerprint(:'copy') AS same_rows,
       pg_temp.fingerprint(:a) <> pg_temp.fingerprint(:b) AS differs_from_b;
-- A JSON null and an SQL NULL in a jsonb column stay apart.
SELECT id, doc IS NULL AS sql_null, doc = 'null' AS json_null FROM ops.orders WHERE tenant_id = :'copy' ORDER BY id;
-- Written as the table's owner (its trigger ran as ops_owner), once per batch.
SELECT * FROM ops.written_as;
SELECT action, details - 'from' AS details FROM tenancy.audit_log WHERE tenant_id = :'copy' ORDER BY id;
SELECT details->'from'->>'identifier' AS from_identifier, details->'from'->>'id' = :a AS from_id
  FROM tenancy.audit_log WHERE tenant_id = :'copy' AND action = 'import';
-- The identifier and name default to the exported ones.
SELECT identifier, name FROM tenancy.import_tenant('lines', 'ops-a-two');
SELECT identifier FROM tenancy.update_tenant(:a, identifier => 'ops-a-renamed');
SELECT identifier, name FROM tenancy.import_tenant('lines');

-- Malformed exports: 22023, and nothing changed.
SELECT count(*) AS tenants, (SELECT count(*) FROM tenancy.audit_log) AS audit FROM tenancy.tenants \gset before_
CREATE FUNCTION pg_temp.try_import(edit text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE lines;
  INSERT INTO lines SELECT line FROM lines_a;
  EXECUTE edit;
  PERFORM tenancy.import_tenant('lines', 'ops-bad');
  RETURN 'imported';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT pg_temp.try_import('DELETE FROM lines WHERE line ? ''format''');
SELECT pg_temp.try_import('INSERT INTO lines SELECT line FROM lines WHERE line ? ''format''');
SELECT pg_temp.try_import('UPDATE lines SET line = line - ''version'' WHERE line ? ''format''');
SELECT pg_temp.try_import('UPDATE lines SET line = line || ''{"format": "pg_dump"}'' WHERE line ? ''format''');
SELECT pg_temp.try_import('UPDATE lines SET line = line || ''{"version": 2}'' WHERE line ? ''format''');
SELECT pg_temp.try_import('UPDATE lines SET line = line - ''tables'' WHERE line ? ''format''');
SELECT pg_temp.try_import('UPDATE lines SET line = jsonb_set(line, ''{tenant,metadata}'', ''[]'') WHERE line ? ''format''');
SELECT pg_temp.try_import('DELETE FROM lines WHERE line->>''table'' = ''ops.a_lines'' AND line->''row''->>''n'' = ''2''');
SELECT pg_temp.try_import('INSERT INTO lines VALUES (''{"table": "ops.unlisted", "row": {}}'')');
SELECT pg_temp.try_import('INSERT INTO lines VALUES (''[1, 2]''), (''"text"'')');
SELECT pg_temp.try_import('UPDATE lines SET line = jsonb_set(line, ''{row}'', ''[1]'') WHERE line->''row''->>''name'' = ''Ann "quoted" O''''Neil''');
SELECT pg_temp.try_import('UPDATE lines SET line = jsonb_set(line, ''{row,extra}'', ''1'') WHERE line->''row''->>''note'' = ''first''');
SELECT pg_temp.try_import('UPDATE lines SET line = jsonb_set(line, ''{row,total}'', ''"twelve"'') WHERE line->''row''->>''note'' = ''first''');
SELECT pg_temp.try_import('ALTER TABLE lines ADD COLUMN more jsonb');
-- What this database cannot take: 0A000 naming it, nothing changed.
SELECT pg_temp.try_import('UPDATE lines SET line = jsonb_set(line, ''{tables,0,table}'', ''"ops.gone"'') WHERE line ? ''format''; UPDATE lines SET line = jsonb_set(line, ''{table}'', ''"ops.gone"'') WHERE line->>''table'' = ''ops.customers''');
SELECT pg_temp.try_import('UPDATE lines SET line = jsonb_set(line, ''{tables,0,columns}'', ''["id", "name", "nickname"]'') WHERE line ? ''format''');
SELECT pg_temp.try_import('UPDATE lines SET line = jsonb_set(line, ''{tables,1,columns}'', (line->''tables''->1->''columns'') || ''["doubled"]'') WHERE line ? ''format''');
SELECT pg_temp.try_import('UPDATE lines SET line = jsonb_set(line, ''{migrations}'', ''["001_missing"]'') WHERE line ? ''format''');
SELECT pg_temp.try_import('UPDATE lines SET line = jsonb_set(line, ''{tenant,isolation}'', ''"database"'') WHERE line ? ''format''');
-- A row the table refuses aborts the whole import.
SELECT pg_temp.try_import('UPDATE lines SET line = jsonb_set(line, ''{row,customer_id}'', ''99'') WHERE line->''row''->>''note'' = ''first''');
SELECT count(*) = :before_tenants AS no_tenant_added, (SELECT count(*) FROM tenancy.audit_log) = :before_audit AS no_audit_row,
       (SELECT count(*) FROM ops.customers) AS customers_rows FROM tenancy.tenants;
-- Not a one-jsonb-column table; no such relation.
SELECT tenancy.import_tenant('ops.customers', 'ops-bad');
SELECT tenancy.import_tenant('no_such_table', 'ops-bad');
SELECT tenancy.import_tenant(NULL, 'ops-bad');

-- Clone: one statement, one snapshot, a new tenant with all the data.
TRUNCATE ops.written_as;
SELECT identifier, name, isolation, metadata FROM tenancy.clone_tenant(:a, 'ops-a-clone');
SELECT id AS clone FROM tenancy.tenant_by_identifier('ops-a-clone') \gset
SELECT pg_temp.fingerprint(:a) = pg_temp.fingerprint(:'clone') AS same_rows;
SELECT * FROM ops.written_as;
SELECT action, details->'rows' AS rows, details->'source'->>'identifier' AS source
  FROM tenancy.audit_log WHERE tenant_id = :'clone' ORDER BY id;
-- Sequences go on past the copied values (here they were past already).
INSERT INTO ops.orders (tenant_id, customer_id) VALUES (:'clone', 1) RETURNING id;
-- A unique key without the tenant column would collide: 0A000 before
-- anything is written (enable_rls warned about it).
CREATE TABLE ops.tickets (id serial PRIMARY KEY, tenant_id uuid NOT NULL);
SELECT tenancy.enable_rls('ops.tickets');
INSERT INTO ops.tickets (tenant_id) VALUES (:a);
SELECT tenancy.clone_tenant(:a, 'ops-a-clash');
SELECT count(*) AS clash_created FROM tenancy.tenants WHERE identifier = 'ops-a-clash';
-- Another tenant's row there is no obstacle.
UPDATE ops.tickets SET tenant_id = :b;
SELECT identifier FROM tenancy.clone_tenant(:a, 'ops-a-clone-two');
DROP TABLE ops.tickets;
SELECT tenancy.clone_tenant(:a, 'ops-a-clone');
SELECT tenancy.clone_tenant('00000000-0000-7000-8000-0000000000ff', 'ops-none');
SELECT tenancy.clone_tenant(:a, NULL);

-- Schema tenants: tables of the schema, bare names, migrations named;
-- identity and serial sequences of the new schema advanced.
SELECT name FROM tenancy.add_migration('001_shop', $$
  CREATE TABLE products (id serial PRIMARY KEY, title text NOT NULL);
  CREATE TABLE sales (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, product_id int NOT NULL REFERENCES products, qty int)$$);
SELECT id AS s FROM tenancy.create_tenant('ops-shop', 'Shop', isolation => 'schema') \gset
INSERT INTO tenant_ops_shop.products (title) VALUES ('anvil'), ('rocket');
INSERT INTO tenant_ops_shop.sales (product_id, qty) VALUES (2, 1), (1, 5), (2, 2);
SELECT line - 'tenant' AS header FROM tenancy.export_tenant(:'s') line WHERE line ? 'format';
TRUNCATE lines;
INSERT INTO lines SELECT tenancy.export_tenant(:'s');
SELECT identifier, schema_name FROM tenancy.import_tenant('lines', 'ops-shop-copy');
SELECT * FROM tenant_ops_shop_copy.sales ORDER BY id;
INSERT INTO tenant_ops_shop_copy.products (title) VALUES ('new') RETURNING id;
INSERT INTO tenant_ops_shop_copy.sales (product_id, qty) VALUES (3, 1) RETURNING id;
SELECT identifier, schema_name FROM tenancy.clone_tenant(:'s', 'ops-shop-clone');
SELECT (SELECT string_agg(format('%s %s %s', id, product_id, qty), ',' ORDER BY id) FROM tenant_ops_shop_clone.sales)
     = (SELECT string_agg(format('%s %s %s', id, product_id, qty), ',' ORDER BY id) FROM tenant_ops_shop.sales) AS same_sales;
-- A table of the source schema that the new tenant's migrations do not create.
CREATE TABLE tenant_ops_shop.extra (x int);
INSERT INTO tenant_ops_shop.extra VALUES (1);
SELECT tenancy.clone_tenant(:'s', 'ops-shop-three');
TRUNCATE lines;
INSERT INTO lines SELECT tenancy.export_tenant(:'s');
SELECT tenancy.import_tenant('lines', 'ops-shop-three');
SELECT count(*) AS half_made FROM pg_namespace WHERE nspname = 'tenant_ops_shop_three';
DROP TABLE tenant_ops_shop.extra;

-- Database tenants: 0A000 in every function.
CREATE DATABASE tenant_ops_db;
SELECT id AS d FROM tenancy.create_tenant('ops-db', 'Db', isolation => 'database') \gset
SELECT tenancy.export_tenant(:'d');
SELECT tenancy.clone_tenant(:'d', 'ops-db-two');

-- Who may call them: not PUBLIC; an admin with EXECUTE only for tenants it
-- may act for; import reads the source with the caller's own rights.
CREATE ROLE ops_admin NOLOGIN;
CREATE ROLE ops_nobody NOLOGIN;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA tenancy TO ops_admin;
SELECT tenancy.grant_tenant('ops_admin', :a);
SET ROLE ops_nobody;
SELECT tenancy.export_tenant(:a);
SELECT tenancy.clone_tenant(:a, 'ops-nobody');
SELECT tenancy.import_tenant('lines', 'ops-nobody');
SET ROLE ops_admin;
SELECT count(*) AS lines_a FROM tenancy.export_tenant(:a);
SELECT tenancy.export_tenant(:b);
SELECT tenancy.clone_tenant(:b, 'ops-admin-b');
SELECT tenancy.import_tenant('lines', 'ops-admin-import');
CREATE TEMP TABLE admin_lines (line jsonb);
INSERT INTO admin_lines SELECT tenancy.export_tenant(:a);
SELECT identifier FROM tenancy.import_tenant('admin_lines', 'ops-admin-import');
SELECT identifier FROM tenancy.clone_tenant(:a, 'ops-admin-clone');
RESET ROLE;
SELECT pg_temp.fingerprint(:a) = pg_temp.fingerprint((tenancy.tenant_by_identifier('ops-admin-import')).id) AS admin_import_same,
       pg_temp.fingerprint(:a) = pg_temp.fingerprint((tenancy.tenant_by_identifier('ops-admin-clone')).id) AS admin_clone_same;
SELECT DISTINCT actor FROM tenancy.audit_log WHERE action IN ('import', 'clone') ORDER BY 1;

DROP TABLE lines, lines_a, admin_lines;
DROP SCHEMA ops CASCADE;
SET client_min_messages = warning;
DROP EXTENSION tenancy CASCADE;
DROP SCHEMA IF EXISTS tenant_ops_shop, tenant_ops_shop_copy, tenant_ops_shop_clone CASCADE;
RESET client_min_messages;
DROP DATABASE tenant_ops_db;
DROP ROLE ops_owner, ops_admin, ops_nobody;
