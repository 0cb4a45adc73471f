-- RLS isolation (SPEC §4 "RLS"): enable_rls / disable_rls, the policy, the
-- default, the index, tenancy.rls_tables, and plans at 100,000 rows.
\set VERBOSITY verbose
CREATE EXTENSION tenancy;
\set a '''00000000-0000-7000-8000-00000000000a'''
\set b '''00000000-0000-7000-8000-00000000000b'''
SELECT identifier FROM tenancy.create_tenant('acme', 'Acme', id => :a);
SELECT identifier FROM tenancy.create_tenant('globex', 'Globex', id => :b);
CREATE ROLE tenancy_app NOLOGIN;
SELECT tenancy.grant_all_tenants('tenancy_app');

CREATE TABLE items (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, name text);
SELECT tenancy.enable_rls('items');
\d items
SELECT polname, polpermissive, polcmd, pg_get_expr(polqual, polrelid) AS using, pg_get_expr(polwithcheck, polrelid) AS with_check
  FROM pg_policy WHERE polrelid = 'items'::regclass;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'items'::regclass;
SELECT tbl, tenant_column, policy_name FROM tenancy.rls_tables;
-- Idempotent: a second call changes nothing and adds no second index.
SELECT tenancy.enable_rls('items', 'tenant_id');
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'items'::regclass;
SELECT count(*) AS policies FROM pg_policy WHERE polrelid = 'items'::regclass;
-- An existing index leading with the column is reused.
CREATE TABLE notes (tenant_id uuid, n int, body text);
CREATE INDEX notes_tenant_n ON notes (tenant_id, n);
SELECT tenancy.enable_rls('notes');
SELECT indexrelid::regclass FROM pg_index WHERE indrelid = 'notes'::regclass;
-- Another column name.
CREATE TABLE docs (owner uuid, body text);
SELECT tenancy.enable_rls('docs', 'owner');
SELECT tbl, tenant_column FROM tenancy.rls_tables ORDER BY 1;

-- Errors: PostgreSQL's own codes.
CREATE TABLE wrong (tenant_id text, other int);
SELECT tenancy.enable_rls('wrong');
SELECT tenancy.enable_rls('wrong', 'missing');
SELECT tenancy.enable_rls('wrong', 'other');
CREATE VIEW a_view AS SELECT 1 AS tenant_id;
SELECT tenancy.enable_rls('a_view');
\set VERBOSITY sqlstate
SELECT tenancy.enable_rls('no_such_table');
\set VERBOSITY verbose
SELECT count(*) FROM tenancy.rls_tables;

-- Rows, as a role subject to RLS.
INSERT INTO items (tenant_id, name) SELECT :a, 'a' || i FROM generate_series(1, 3) i;
INSERT INTO items (tenant_id, name) SELECT :b, 'b' || i FROM generate_series(1, 2) i;
GRANT SELECT, INSERT, UPDATE, DELETE ON items TO tenancy_app;
GRANT USAGE ON SEQUENCE items_id_seq TO tenancy_app;
SET ROLE tenancy_app;
-- No tenant: no rows, and writes are refused.
SELECT count(*) FROM items;
\set VERBOSITY sqlstate
INSERT INTO items (name) VALUES ('nobody''s');
\set VERBOSITY verbose
SELECT identifier FROM tenancy.set_tenant('acme');
SELECT name FROM items ORDER BY id;
INSERT INTO items (name) VALUES ('a4') RETURNING tenant_id = :a AS defaulted;
SELECT identifier FROM tenancy.set_tenant('globex');
SELECT name FROM items ORDER BY id;
UPDATE items SET name = name || '!' RETURNING name;
DELETE FROM items WHERE name = 'b1!' RETURNING name;
SELECT tenancy.clear_tenant();
RESET ROLE;
SELECT tenant_id = :a AS is_a, count(*) FROM items GROUP BY 1 ORDER BY 1;

-- The policy uses the same index plan as the hand-written filter, on a
-- table of 100,000 rows over 100 tenants.
CREATE TABLE events (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, payload text);
INSERT INTO tenancy.tenants (id, identifier, name, isolation)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(1000 + i), 12, '0'))::uuid, 'bulk-' || i, 'Bulk ' || i, 'rls'
  FROM generate_series(1, 100) i;
INSERT INTO events (tenant_id, payload)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(1000 + 1 + i % 100), 12, '0'))::uuid, 'event ' || i
  FROM generate_series(1, 100000) i;
SELECT tenancy.enable_rls('events');
ANALYZE events;
GRANT SELECT ON events TO tenancy_app;
SET ROLE tenancy_app;
SELECT identifier FROM tenancy.set_tenant('bulk-42');
SELECT count(*) FROM events;
EXPLAIN (COSTS OFF) SELECT * FROM events;
EXPLAIN (COSTS OFF) SELECT count(*) FROM events;
EXPLAIN (COSTS OFF) SELECT * FROM events ORDER BY id DESC LIMIT 10;
RESET ROLE;
-- The hand-written query it must match:
EXPLAIN (COSTS OFF) SELECT * FROM events WHERE tenant_id = '00000000-0000-7000-8000-000000000412';

-- disable_rls reverses it; the index stays.
SELECT tenancy.disable_rls('items');
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'items'::regclass;
SELECT count(*) AS policies FROM pg_policy WHERE polrelid = 'items'::regclass;
SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'items'::regclass AND adnum = 2;
SELECT tbl FROM tenancy.rls_tables ORDER BY 1;
SELECT tenancy.disable_rls('items');  -- no-op

-- destroy_data deletes the tenant's rows from every isolated table.
SELECT count(*) FROM events WHERE tenant_id = '00000000-0000-7000-8000-000000000412';
SELECT tenancy.delete_tenant('00000000-0000-7000-8000-000000000412', destroy_data => true);
SELECT count(*) FROM events WHERE tenant_id = '00000000-0000-7000-8000-000000000412';
SELECT action, details FROM tenancy.audit_log WHERE action = 'destroy';

DROP TABLE items, notes, docs, wrong, events;
DROP VIEW a_view;
DROP EXTENSION tenancy;
DROP ROLE tenancy_app;
