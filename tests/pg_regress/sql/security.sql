-- Regression tests from the security review of 0.2.0
-- (reviews/security-2026-12-01.md): each section reproduces a finding by
-- roles below superuser and shows that it no longer works, or (for side
-- channels that only the table's design can close) that enable_rls warns.
-- Isolation cases (F2, L1, L2, L4) are in tests/isolation/specs.
--
-- Messages are shown without SQLSTATE or location (VERBOSITY default) where
-- their text matters, and as the SQLSTATE alone where only the code does.
\set VERBOSITY default
CREATE EXTENSION tenancy;
\set a '''00000000-0000-7000-8000-00000000000a'''
\set b '''00000000-0000-7000-8000-00000000000b'''
\set c '''00000000-0000-7000-8000-00000000000c'''
\set sa '''00000000-0000-7000-8000-0000000000aa'''
\set sb '''00000000-0000-7000-8000-0000000000bb'''
\set sc '''00000000-0000-7000-8000-0000000000cc'''
-- A tenant admin as docs/security.md recommends it: EXECUTE on tenancy's
-- routines, no superuser, no privilege on any table.
CREATE ROLE rt_admin NOLOGIN;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA tenancy TO rt_admin;
-- The owner of shared tables: a dedicated, non-superuser role.
CREATE ROLE rt_owner NOLOGIN;
CREATE SCHEMA rt_app AUTHORIZATION rt_owner;
CREATE ROLE rt_alice NOLOGIN;
CREATE ROLE rt_nogrant NOLOGIN;
GRANT USAGE ON SCHEMA rt_app TO rt_alice, rt_nogrant;
SELECT identifier FROM tenancy.create_tenant('rt-a', 'A', id => :a);
SELECT identifier FROM tenancy.create_tenant('rt-b', 'B', id => :b);
SELECT tenancy.grant_tenant('rt_alice', :a);
-- What (error) a statement raises: its SQLSTATE and message, or 'ok'.
CREATE FUNCTION pg_temp.error_of(sql text) RETURNS TABLE (sqlstate text, message text)
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE sql;
  RETURN QUERY SELECT 'ok'::text, ''::text;
EXCEPTION WHEN OTHERS THEN
  RETURN QUERY SELECT SQLSTATE::text, SQLERRM::text;
END $$;

--------------------------------------------------------------------------
-- F1 / L3: indexes that do not lead with the tenant column, and foreign
-- keys without it, are side channels (EXPLAIN ANALYZE counts the rows the
-- policy removes inside an index range; FK checks bypass RLS).  enable_rls
-- names each of them in a WARNING.
--------------------------------------------------------------------------
-- The review's schema: primary key on id, an index on secret, and a
-- foreign key on order_id alone.
CREATE TABLE rt_app.orders (id int PRIMARY KEY, tenant_id uuid NOT NULL, secret text);
CREATE INDEX orders_secret_idx ON rt_app.orders (secret);
CREATE TABLE rt_app.order_items (id int PRIMARY KEY, tenant_id uuid NOT NULL,
                                 order_id int CONSTRAINT order_items_order_fkey REFERENCES rt_app.orders (id) ON DELETE CASCADE,
                                 item text);
-- Each warns: orders_pkey, orders_secret_idx and order_items_order_fkey
-- (which references orders); order_items_pkey and order_items_order_fkey.
SELECT tenancy.enable_rls('rt_app.orders');
SELECT tenancy.enable_rls('rt_app.order_items');
INSERT INTO rt_app.orders VALUES (1, :a, 'SECRET-OF-A'), (2, :b, 'SECRET-OF-B'), (3, :b, 'SECRET-OF-B-2');
INSERT INTO rt_app.order_items VALUES (20, :b, 2, 'b-item');
ANALYZE rt_app.orders;
GRANT SELECT ON rt_app.orders TO rt_nogrant;
GRANT SELECT, INSERT ON rt_app.orders, rt_app.order_items TO rt_alice;
-- With such an index the channel stays (it is documented): a role with no
-- tenant sees no row, yet EXPLAIN ANALYZE counts B's row in the range.
SET ROLE rt_nogrant;
SELECT count(*) FROM rt_app.orders;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SET enable_sort = off;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT 1 FROM rt_app.orders WHERE secret >= 'SECRET-OF-B-' AND secret < 'SECRET-OF-B.' ORDER BY secret;
RESET ROLE;
-- And the foreign key on order_id alone is an existence oracle for B's ids
-- (L3): as A, order 2 (B's) is accepted, order 999 refused.
SET ROLE rt_alice;
SELECT identifier FROM tenancy.set_tenant('rt-a');
SELECT * FROM pg_temp.error_of($$INSERT INTO rt_app.order_items (id, order_id, item) VALUES (21, 2, 'probe')$$);
SELECT * FROM pg_temp.error_of($$INSERT INTO rt_app.order_items (id, order_id, item) VALUES (22, 999, 'probe')$$);
SELECT tenancy.clear_tenant();
RESET ROLE;
DELETE FROM rt_app.order_items WHERE id = 21;   -- (else destroying B's data would delete this row of A's)
RESET enable_seqscan;
RESET enable_bitmapscan;
RESET enable_sort;

-- The recommended schema: every index and key leads with tenant_id, and the
-- foreign key is composite.  enable_rls gives no warning.
CREATE TABLE rt_app.good_orders (tenant_id uuid NOT NULL, id int, secret text, PRIMARY KEY (tenant_id, id));
CREATE INDEX good_orders_secret_idx ON rt_app.good_orders (tenant_id, secret);
CREATE TABLE rt_app.good_items (tenant_id uuid NOT NULL, id int, order_id int, item text,
                                PRIMARY KEY (tenant_id, id),
                                CONSTRAINT good_items_order_fkey FOREIGN KEY (tenant_id, order_id)
                                    REFERENCES rt_app.good_orders (tenant_id, id));
SELECT tenancy.enable_rls('rt_app.good_orders');
SELECT tenancy.enable_rls('rt_app.good_items');
INSERT INTO rt_app.good_orders VALUES (:a, 1, 'SECRET-OF-A'), (:b, 2, 'SECRET-OF-B'), (:b, 3, 'SECRET-OF-B-2');
ANALYZE rt_app.good_orders;
GRANT SELECT ON rt_app.good_orders TO rt_nogrant;
GRANT SELECT, INSERT ON rt_app.good_orders, rt_app.good_items TO rt_alice;
-- The review's range probe: the Index Cond includes tenant_id, so no row of
-- another tenant is visited (no "Rows Removed by Filter"), with no tenant
-- and as tenant A.
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SET enable_sort = off;
SET ROLE rt_nogrant;
SELECT count(*) FROM rt_app.good_orders;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT id FROM rt_app.good_orders WHERE secret >= 'SECRET-OF-B-' AND secret < 'SECRET-OF-B.';
RESET ROLE;
SET ROLE rt_alice;
SELECT identifier FROM tenancy.set_tenant('rt-a');
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT id FROM rt_app.good_orders WHERE secret >= 'SECRET-OF-B-' AND secret < 'SECRET-OF-B.';
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT id FROM rt_app.good_orders WHERE id = 2;
-- The composite key refuses B's order 2 exactly as a missing one.
SELECT * FROM pg_temp.error_of($$INSERT INTO rt_app.good_items (id, order_id, item) VALUES (21, 2, 'probe')$$);
SELECT * FROM pg_temp.error_of($$INSERT INTO rt_app.good_items (id, order_id, item) VALUES (22, 999, 'probe')$$);
SELECT tenancy.clear_tenant();
RESET ROLE;
RESET enable_seqscan;
RESET enable_bitmapscan;
RESET enable_sort;

--------------------------------------------------------------------------
-- L8: a tenant grant is a dependency of the role (a privilege on the type
-- tenancy.tenant_grantee), so DROP ROLE refuses until it is revoked, and
-- DROP OWNED BY ends it; DROP TABLE of an isolated table forgets it.
--------------------------------------------------------------------------
CREATE ROLE rt_gone NOLOGIN;
SELECT tenancy.grant_tenant('rt_gone', :a);
DROP ROLE rt_gone;
SELECT sqlstate FROM pg_temp.error_of('DROP ROLE rt_gone');
SELECT count(*) AS grants_of_missing_roles FROM tenancy.tenant_grants g WHERE NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = g.role);
SELECT tenancy.revoke_tenant('rt_gone', :a);
DROP ROLE rt_gone;
SELECT count(*) AS grants_of_missing_roles FROM tenancy.tenant_grants g WHERE NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = g.role);
-- The same for an all-tenants grant.
CREATE ROLE rt_gone_all NOLOGIN;
SELECT tenancy.grant_all_tenants('rt_gone_all');
SELECT sqlstate FROM pg_temp.error_of('DROP ROLE rt_gone_all');
SELECT tenancy.revoke_all_tenants('rt_gone_all');
DROP ROLE rt_gone_all;
-- DROP OWNED BY takes the role's tenant grants with its other privileges:
-- a context it set before, and set_tenant, are refused after it.
CREATE ROLE rt_owned NOLOGIN;
SELECT tenancy.grant_tenant('rt_owned', :a);
SET ROLE rt_owned;
SELECT identifier FROM tenancy.set_tenant('rt-a');
RESET ROLE;
DROP OWNED BY rt_owned;
SET ROLE rt_owned;
SELECT sqlstate FROM pg_temp.error_of('SELECT tenancy.current_tenant_id()');
SELECT sqlstate FROM pg_temp.error_of($$SELECT tenancy.set_tenant('rt-a')$$);
RESET tenancy.tenant_id;
RESET ROLE;
-- A later grant of another tenant does not bring the old one back.
SELECT tenancy.grant_tenant('rt_owned', :b);
SET ROLE rt_owned;
SELECT sqlstate FROM pg_temp.error_of($$SELECT tenancy.set_tenant('rt-a')$$);
SELECT identifier FROM tenancy.set_tenant('rt-b');
SELECT tenancy.clear_tenant();
RESET ROLE;
SELECT tenancy.revoke_tenant('rt_owned', :b);
DROP ROLE rt_owned;
-- A role whose tenants are all deleted (soft delete: the status is final)
-- holds no grant that can count, and can be dropped.
CREATE ROLE rt_leaver NOLOGIN;
SELECT id AS leaving FROM tenancy.create_tenant('rt-leaving', 'Leaving') \gset
SELECT tenancy.grant_tenant('rt_leaver', :'leaving');
SELECT sqlstate FROM pg_temp.error_of('DROP ROLE rt_leaver');
SELECT tenancy.delete_tenant(:'leaving');
SELECT status FROM tenancy.tenant(:'leaving');
DROP ROLE rt_leaver;
-- DROP TABLE (and DROP SCHEMA .. CASCADE) of an isolated table removes its
-- row from tenancy.rls_tables.
CREATE TABLE rt_dropped (tenant_id uuid);
SELECT tenancy.enable_rls('rt_dropped');
CREATE SCHEMA rt_doomed;
CREATE TABLE rt_doomed.t1 (tenant_id uuid);
CREATE TABLE rt_doomed.t2 (tenant_id uuid);
SELECT tenancy.enable_rls('rt_doomed.t1');
SELECT tenancy.enable_rls('rt_doomed.t2');
SELECT count(*) AS registered FROM tenancy.rls_tables;
DROP TABLE rt_dropped;
SELECT count(*) AS registered FROM tenancy.rls_tables;
SET client_min_messages = warning;
DROP SCHEMA rt_doomed CASCADE;
RESET client_min_messages;
SELECT count(*) AS registered FROM tenancy.rls_tables;
SELECT count(*) AS rows_of_missing_tables FROM tenancy.rls_tables r WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = r.tbl);

--------------------------------------------------------------------------
-- F3: migration SQL never resolves a name to the caller's temporary
-- objects (search_path "<schema>", pg_catalog, pg_temp) and runs as a
-- security-restricted operation, so a tenant admin's temporary table and
-- its trigger are never touched: through migrate_tenant, CALL
-- tenancy.migrate() and create_tenant(.., isolation => 'schema').
--------------------------------------------------------------------------
SELECT name FROM tenancy.add_migration('001_notes', 'CREATE TABLE notes (id bigserial PRIMARY KEY, body text)');
SELECT identifier, schema_name FROM tenancy.create_tenant('rt-sa', 'SA', isolation => 'schema', id => :sa);
SELECT identifier, schema_name FROM tenancy.create_tenant('rt-sb', 'SB', isolation => 'schema', id => :sb);
-- An ordinary data migration, with an unqualified table name.
SELECT name FROM tenancy.add_migration('002_seed', $$INSERT INTO notes (body) VALUES ('welcome')$$);
SET ROLE rt_admin;
CREATE TEMP TABLE notes (id bigserial, body text);
CREATE FUNCTION pg_temp.evil() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'evil trigger runs as % (superuser: %)',
    current_user, (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user);
  EXECUTE 'ALTER ROLE rt_admin SUPERUSER';
  RETURN NULL;
END $$;
CREATE TRIGGER evil BEFORE INSERT ON pg_temp.notes FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.evil();
-- migrate_tenant
SELECT tenancy.migrate_tenant(:sa)->'applied' AS applied;
RESET ROLE;
SELECT rolsuper FROM pg_roles WHERE rolname = 'rt_admin';
SELECT body FROM tenant_rt_sa.notes;
SELECT count(*) AS temp_rows FROM pg_temp.notes;
ALTER ROLE rt_admin NOSUPERUSER;   -- (undoes a successful attack, so that the next one counts)
-- CALL tenancy.migrate(): SB is the tenant with 002_seed pending.
SET ROLE rt_admin;
CALL tenancy.migrate();
RESET ROLE;
SELECT rolsuper FROM pg_roles WHERE rolname = 'rt_admin';
SELECT body FROM tenant_rt_sb.notes;
SELECT count(*) AS temp_rows FROM pg_temp.notes;
ALTER ROLE rt_admin NOSUPERUSER;
SELECT identifier, applied, pending FROM tenancy.migration_status ORDER BY identifier;
-- create_tenant of a schema tenant applies both migrations.
SET ROLE rt_admin;
SELECT identifier, schema_name FROM tenancy.create_tenant('rt-sc', 'SC', isolation => 'schema', id => :sc);
RESET ROLE;
SELECT rolsuper FROM pg_roles WHERE rolname = 'rt_admin';
SELECT body FROM tenant_rt_sc.notes;
SELECT count(*) AS temp_rows FROM pg_temp.notes;
ALTER ROLE rt_admin NOSUPERUSER;
SELECT t.identifier, l.migration, l.status FROM tenancy.migration_ledger l JOIN tenancy.tenants t ON t.id = l.tenant_id ORDER BY 1, 2;
DROP TABLE pg_temp.notes;
DROP FUNCTION pg_temp.evil();

--------------------------------------------------------------------------
-- F4: delete_tenant(.., destroy_data => true) deletes each isolated
-- table's rows as that table's owner (security-restricted), so a trigger
-- on it runs with the owner's rights, never the extension owner's; and
-- enable_rls refuses temporary tables.
--------------------------------------------------------------------------
-- #65: a tenant admin registers a temporary table of its own.
SET ROLE rt_admin;
CREATE TEMP TABLE trap (tenant_id uuid);
SELECT sqlstate FROM pg_temp.error_of($$SELECT tenancy.enable_rls('pg_temp.trap')$$);
SELECT tenancy.enable_rls('pg_temp.trap');
CREATE FUNCTION pg_temp.evil() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'trap trigger runs as %', current_user;
  EXECUTE 'ALTER ROLE rt_admin SUPERUSER';
  RETURN NULL;
END $$;
CREATE TRIGGER evil BEFORE DELETE ON pg_temp.trap FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.evil();
SELECT identifier FROM tenancy.create_tenant('rt-throwaway', 'x', id => :c);
SELECT tenancy.delete_tenant(:c, destroy_data => true);
RESET ROLE;
SELECT rolsuper FROM pg_roles WHERE rolname = 'rt_admin';
ALTER ROLE rt_admin NOSUPERUSER;
SELECT count(*) AS temp_tables_registered FROM tenancy.rls_tables r JOIN pg_class c ON c.oid = r.tbl WHERE c.relpersistence = 't';
DROP TABLE pg_temp.trap;
DROP FUNCTION pg_temp.evil();

-- #66: the owner of a shared table that the DBA isolated puts a trigger on
-- it that escalates when it runs as a superuser.
CREATE TABLE rt_app.stats (tenant_id uuid NOT NULL, hits int);
ALTER TABLE rt_app.stats OWNER TO rt_owner;
SELECT tenancy.enable_rls('rt_app.stats');
INSERT INTO rt_app.stats VALUES (:a, 1), (:b, 2), (:b, 3);
SET ROLE rt_owner;
CREATE FUNCTION rt_app.on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'on_delete runs as %', current_user;
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    EXECUTE 'ALTER ROLE rt_owner SUPERUSER';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER on_delete BEFORE DELETE ON rt_app.stats FOR EACH STATEMENT EXECUTE FUNCTION rt_app.on_delete();
RESET ROLE;
-- Any admin destroys an RLS tenant's data.
SET ROLE rt_admin;
SELECT tenancy.delete_tenant(:b, destroy_data => true);
RESET ROLE;
SELECT rolsuper FROM pg_roles WHERE rolname = 'rt_owner';
ALTER ROLE rt_owner NOSUPERUSER;
-- B's rows are gone from every isolated table, A's are kept.
SELECT tenant_id = :a AS is_a, count(*) FROM rt_app.stats GROUP BY 1 ORDER BY 1;
SELECT tenant_id = :a AS is_a, count(*) FROM rt_app.orders GROUP BY 1 ORDER BY 1;
SELECT tenant_id = :a AS is_a, count(*) FROM rt_app.good_orders GROUP BY 1 ORDER BY 1;
SELECT details FROM tenancy.audit_log WHERE action = 'destroy' AND tenant_id = :b;

-- The owner's trigger may not leave settings behind either: a search_path
-- (or tenant) it sets with set_config(.., false) while tenancy deletes as
-- the owner is undone when the delete ends, so the statements tenancy runs
-- next as the extension owner never resolve a type to the owner's domain,
-- and the caller's session keeps its own settings.
SET ROLE rt_owner;
CREATE FUNCTION rt_app.pwn(v pg_catalog.text) RETURNS pg_catalog.bool LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user) THEN
    RAISE NOTICE 'pwn runs as a superuser';
    EXECUTE 'ALTER ROLE rt_owner SUPERUSER';
  END IF;
  RETURN true;
END $$;
CREATE DOMAIN rt_app.text AS pg_catalog.text CHECK (rt_app.pwn(VALUE));
CREATE TABLE rt_app.stats2 (tenant_id uuid NOT NULL, hits int);
CREATE FUNCTION rt_app.plant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_catalog.set_config('search_path', 'rt_app, pg_catalog', false);
  PERFORM pg_catalog.set_config('statement_timeout', '1234', false);
  RETURN NULL;
END $$;
CREATE TRIGGER plant BEFORE DELETE ON rt_app.stats2 FOR EACH STATEMENT EXECUTE FUNCTION rt_app.plant();
RESET ROLE;
SELECT tenancy.enable_rls('rt_app.stats2');
SELECT id AS throw2 FROM tenancy.create_tenant('rt-throw2', 'x') \gset
SET ROLE rt_admin;
SHOW search_path;
SELECT tenancy.delete_tenant(:'throw2', destroy_data => true);
SHOW search_path;
SHOW statement_timeout;
RESET ROLE;
SELECT rolsuper FROM pg_roles WHERE rolname = 'rt_owner';
ALTER ROLE rt_owner NOSUPERUSER;

--------------------------------------------------------------------------
-- F5: on PostgreSQL 15 a CREATEROLE role can grant itself membership in
-- any grantee, so granting it a tenant warns that it can reach every
-- tenant.  A role without CREATEROLE gets no warning.
--------------------------------------------------------------------------
CREATE ROLE rt_cr NOLOGIN CREATEROLE;
CREATE ROLE rt_plain NOLOGIN;
SELECT tenancy.grant_tenant('rt_cr', :a);
SELECT tenancy.grant_tenant('rt_plain', :a);
SELECT tenancy.revoke_tenant('rt_cr', :a);
SELECT tenancy.revoke_tenant('rt_plain', :a);

--------------------------------------------------------------------------
-- L6: a value refused for tenancy.tenant_id appears in the message with
-- its control characters escaped and cut to 64 characters (no forged log
-- line, no 20,000 characters in the log).
--------------------------------------------------------------------------
LOAD 'tenancy';
SET tenancy.tenant_id = E'x"\n2026-01-01 00:00:00 UTC LOG:  FORGED';
SELECT sqlstate, position(E'\n' IN message) = 0 AS one_line, length(message) < 200 AS short
  FROM pg_temp.error_of($$SET tenancy.tenant_id = E'x"\n2026-01-01 00:00:00 UTC LOG:  FORGED'$$);
SELECT sqlstate, length(message) < 200 AS short, position(repeat('z', 65) IN message) = 0 AS cut
  FROM pg_temp.error_of($$SET tenancy.tenant_id = '$$ || repeat('z', 20000) || $$'$$);
SELECT set_config('tenancy.tenant_id', repeat('y', 20000), false);
SHOW tenancy.tenant_id;

--------------------------------------------------------------------------
-- L6 again: a value set before the library is loaded (a placeholder, no
-- check hook yet) and then used is shown escaped and cut as well.  A new
-- session, in which nothing has loaded tenancy yet.
--------------------------------------------------------------------------
\c -
\set VERBOSITY default
SET tenancy.tenant_id = E'x"\n2026-01-01 00:00:00 UTC LOG:  FORGED';
SELECT tenancy.current_tenant_id();
SHOW tenancy.tenant_id;
\c -
\set VERBOSITY default
SELECT set_config('tenancy.tenant_id', repeat('w', 20000), false) = repeat('w', 20000) AS placeholder_set;
SELECT tenancy.current_tenant_id();
SHOW tenancy.tenant_id;
\c -
\set VERBOSITY default

-- Clean up: tables, grants and tenants first, then the roles.
SET client_min_messages = warning;
DROP SCHEMA rt_app CASCADE;
RESET client_min_messages;
SET tenancy.soft_delete = off;
SELECT count(tenancy.delete_tenant(id, destroy_data => true)) FROM tenancy.tenants;
RESET tenancy.soft_delete;
DROP EXTENSION tenancy;
DROP ROLE rt_admin, rt_owner, rt_alice, rt_nogrant, rt_cr, rt_plain;
