-- move_tenant (SPEC §9): between 'rls' and 'schema' in both directions,
-- rows identical (same values, same keys), identity and serial sequences
-- past the copied keys, foreign keys between the tenant's tables, the audit
-- row, the grantee's access, triggers run as the table's owner; the no-op,
-- a suspended tenant, and every refusal with nothing changed.
\set VERBOSITY verbose
CREATE EXTENSION tenancy;
-- Errors as "SQLSTATE: message", so the expected output does not depend on
-- source line numbers.  A failed call is rolled back with its subtransaction,
-- as a failed statement is.
CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE hint text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM || CASE WHEN hint <> '' THEN E'\nHINT: ' || hint ELSE '' END;
END $$;
\set a '''00000000-0000-7000-8000-0000000000a1'''
\set b '''00000000-0000-7000-8000-0000000000b1'''
\set s '''00000000-0000-7000-8000-0000000000c1'''

-- The schema tenants' tables (the migrations) and the same tables shared.
SELECT name FROM tenancy.add_migration('001_orders', $$
    CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item text NOT NULL, qty int NOT NULL DEFAULT 1);
    CREATE TABLE order_lines (id serial PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE, note text);
    CREATE SEQUENCE invoice_no START 1000;
    CREATE TABLE invoices (no bigint PRIMARY KEY DEFAULT nextval('invoice_no'), total numeric(10,2), doubled numeric GENERATED ALWAYS AS (total * 2) STORED);
$$);
CREATE ROLE mvr_owner NOLOGIN;
CREATE ROLE mvr_app NOLOGIN;
CREATE TABLE public.orders (tenant_id uuid NOT NULL, id bigint GENERATED ALWAYS AS IDENTITY, item text NOT NULL, qty int NOT NULL DEFAULT 1,
                            PRIMARY KEY (tenant_id, id));
CREATE TABLE public.order_lines (tenant_id uuid NOT NULL, id serial, order_id bigint NOT NULL, note text, PRIMARY KEY (tenant_id, id),
                                 FOREIGN KEY (tenant_id, order_id) REFERENCES public.orders (tenant_id, id) ON DELETE CASCADE);
CREATE SEQUENCE public.invoice_no START 1000;
CREATE TABLE public.invoices (tenant_id uuid NOT NULL, no bigint NOT NULL DEFAULT nextval('public.invoice_no'), total numeric(10,2),
                              doubled numeric GENERATED ALWAYS AS (total * 2) STORED, PRIMARY KEY (tenant_id, no));
-- Who the shared tables' triggers run as: their owner, never the extension's.
CREATE TABLE public.trigger_log (tbl text, op text, who name, n int);
CREATE FUNCTION public.log_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.trigger_log SELECT TG_TABLE_NAME, TG_OP, current_user, count(*) FROM changed;
    RETURN NULL;
END $$;
CREATE TRIGGER orders_deleted AFTER DELETE ON public.orders REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION public.log_rows();
CREATE TRIGGER orders_inserted AFTER INSERT ON public.orders REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION public.log_rows();
ALTER TABLE public.orders OWNER TO mvr_owner;
ALTER TABLE public.order_lines OWNER TO mvr_owner;
ALTER TABLE public.invoices OWNER TO mvr_owner;
ALTER SEQUENCE public.invoice_no OWNER TO mvr_owner;
ALTER TABLE public.trigger_log OWNER TO mvr_owner;
GRANT INSERT ON public.trigger_log TO mvr_app;
SELECT tenancy.enable_rls('public.orders'), tenancy.enable_rls('public.order_lines'), tenancy.enable_rls('public.invoices');
GRANT SELECT, INSERT, UPDATE, DELETE ON public.orders, public.order_lines, public.invoices TO mvr_app;
GRANT USAGE ON SEQUENCE public.invoice_no, public.order_lines_id_seq TO mvr_app;

SELECT identifier FROM tenancy.create_tenant('acme', 'Acme', id => :a);
SELECT identifier FROM tenancy.create_tenant('globex', 'Globex', id => :b);
SELECT tenancy.grant_tenant('mvr_app', :a), tenancy.grant_tenant('mvr_app', :b);
-- Each tenant's rows, written as the application writes them.
SET ROLE mvr_app;
SELECT identifier FROM tenancy.set_tenant('globex');
INSERT INTO orders (item) VALUES ('globex order');
SELECT identifier FROM tenancy.set_tenant('acme');
INSERT INTO orders (item, qty) SELECT 'item ' || i, i FROM generate_series(1, 5) i;
INSERT INTO order_lines (order_id, note) SELECT id, 'line of ' || item FROM orders;
INSERT INTO invoices (total) VALUES (10.50), (NULL), (99.99);
SELECT count(*) AS acme_orders FROM orders;
SELECT tenancy.clear_tenant();
RESET ROLE;
-- What acme's rows are, to compare with after each move.
CREATE TABLE acme_orders AS SELECT id, item, qty FROM public.orders WHERE tenant_id = :a;
CREATE TABLE acme_lines AS SELECT id, order_id, note FROM public.order_lines WHERE tenant_id = :a;
CREATE TABLE acme_invoices AS SELECT no, total, doubled FROM public.invoices WHERE tenant_id = :a;
TRUNCATE public.trigger_log;

-- Only for the roles a DBA grants it to, like create_tenant.
SET ROLE mvr_app;
SELECT pg_temp.err($$SELECT tenancy.move_tenant('00000000-0000-7000-8000-0000000000a1', 'schema')$$);
RESET ROLE;
-- A tenant administrator below superuser moves a tenant and gets no way
-- to its data: the new schema is open to the tenant's grantees only.
CREATE ROLE mvr_admin NOLOGIN;
GRANT EXECUTE ON FUNCTION tenancy.move_tenant(uuid, tenancy.isolation) TO mvr_admin;
SET ROLE mvr_admin;
SELECT identifier, isolation FROM tenancy.move_tenant(:b, 'schema');
SELECT pg_temp.err('SELECT count(*) FROM tenant_globex.orders');
SELECT pg_temp.err('SELECT count(*) FROM public.orders');
SELECT identifier, isolation FROM tenancy.move_tenant(:b, 'rls');
RESET ROLE;
SELECT id, item FROM public.orders WHERE tenant_id = :b;
TRUNCATE public.trigger_log;

-- rls -> schema.
SELECT identifier, isolation, schema_name, updated_at > created_at AS updated FROM tenancy.move_tenant(:a, 'schema');
\dt tenant_acme.*
-- Same values, same keys; the tenant column dropped (the target has none).
(SELECT * FROM acme_orders EXCEPT SELECT * FROM tenant_acme.orders) UNION ALL (SELECT * FROM tenant_acme.orders EXCEPT SELECT * FROM acme_orders);
(SELECT * FROM acme_lines EXCEPT SELECT * FROM tenant_acme.order_lines) UNION ALL (SELECT * FROM tenant_acme.order_lines EXCEPT SELECT * FROM acme_lines);
(SELECT * FROM acme_invoices EXCEPT SELECT * FROM tenant_acme.invoices) UNION ALL (SELECT * FROM tenant_acme.invoices EXCEPT SELECT * FROM acme_invoices);
SELECT (SELECT count(*) FROM tenant_acme.orders) AS orders, (SELECT count(*) FROM tenant_acme.order_lines) AS lines,
       (SELECT count(*) FROM tenant_acme.invoices) AS invoices;
-- Nothing of acme is left in the shared tables; globex is untouched.
SELECT tenant_id = :b AS globex, count(*) FROM public.orders GROUP BY 1;
SELECT count(*) FROM public.order_lines WHERE tenant_id = :a;
SELECT count(*) FROM public.invoices WHERE tenant_id = :a;
-- The shared table's triggers ran as its owner.
SELECT * FROM public.trigger_log;
-- The audit row, the ledger.
SELECT action, details FROM tenancy.audit_log WHERE action = 'move' ORDER BY id;
SELECT migration, status FROM tenancy.migration_ledger WHERE tenant_id = :a;
-- The grantee: set_tenant puts the schema on the path and sees the same
-- rows; the identity, serial and default sequences go on past the copied keys.
SET ROLE mvr_app;
SELECT identifier, isolation FROM tenancy.set_tenant('acme');
SHOW search_path;
SELECT count(*) FROM orders;
INSERT INTO orders (item) VALUES ('after the move') RETURNING id;
INSERT INTO order_lines (order_id) SELECT max(id) FROM orders RETURNING id, order_id;
INSERT INTO invoices (total) VALUES (1) RETURNING no, doubled;
SELECT tenancy.clear_tenant();
RESET ROLE;
INSERT INTO acme_orders SELECT id, item, qty FROM tenant_acme.orders WHERE item = 'after the move';
INSERT INTO acme_lines SELECT id, order_id, note FROM tenant_acme.order_lines WHERE note IS NULL;
INSERT INTO acme_invoices SELECT no, total, doubled FROM tenant_acme.invoices WHERE total = 1;

-- The isolation it has: a no-op returning the row, no audit row.
SELECT identifier, isolation, schema_name FROM tenancy.move_tenant(:a, 'schema');
SELECT count(*) AS moves FROM tenancy.audit_log WHERE action = 'move';

-- schema -> rls: the tenant column filled in, the schema dropped, the ledger emptied.
TRUNCATE public.trigger_log;
SELECT identifier, isolation, schema_name FROM tenancy.move_tenant(:a, 'rls');
SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_acme';
SELECT count(*) FROM tenancy.migration_ledger WHERE tenant_id = :a;
-- The rows of before, and the ones written in the schema.
(SELECT * FROM acme_orders EXCEPT SELECT id, item, qty FROM public.orders WHERE tenant_id = :a)
UNION ALL (SELECT id, item, qty FROM public.orders WHERE tenant_id = :a EXCEPT SELECT * FROM acme_orders);
(SELECT * FROM acme_lines EXCEPT SELECT id, order_id, note FROM public.order_lines WHERE tenant_id = :a)
UNION ALL (SELECT id, order_id, note FROM public.order_lines WHERE tenant_id = :a EXCEPT SELECT * FROM acme_lines);
(SELECT * FROM acme_invoices EXCEPT SELECT no, total, doubled FROM public.invoices WHERE tenant_id = :a)
UNION ALL (SELECT no, total, doubled FROM public.invoices WHERE tenant_id = :a EXCEPT SELECT * FROM acme_invoices);
SELECT * FROM public.trigger_log;
SELECT details FROM tenancy.audit_log WHERE action = 'move' ORDER BY id DESC LIMIT 1;
-- The shared sequences too: the next keys are past acme's.
SET ROLE mvr_app;
SELECT identifier, isolation FROM tenancy.set_tenant('acme');
SHOW search_path;
SELECT count(*) FROM orders;
INSERT INTO orders (item) VALUES ('back in rls') RETURNING id;
INSERT INTO order_lines (order_id) SELECT max(id) FROM orders RETURNING id, order_id;
INSERT INTO invoices (total) VALUES (2) RETURNING no;
SELECT tenancy.clear_tenant();
RESET ROLE;

-- A column the target lacks: 0A000 naming it, nothing changed.
ALTER TABLE public.orders ADD COLUMN gift boolean;
SELECT pg_temp.err($$SELECT tenancy.move_tenant('00000000-0000-7000-8000-0000000000a1', 'schema')$$);
SELECT isolation, schema_name FROM tenancy.tenant(:a);
SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_acme';
SELECT count(*) AS still_shared FROM public.orders WHERE tenant_id = :a;
ALTER TABLE public.orders DROP COLUMN gift;
-- A shared table with the tenant's rows and no counterpart in the schema: 0A000.
CREATE TABLE public.notes (tenant_id uuid NOT NULL, body text);
SELECT tenancy.enable_rls('public.notes');
INSERT INTO public.notes VALUES (:a, 'a note');
SELECT pg_temp.err($$SELECT tenancy.move_tenant('00000000-0000-7000-8000-0000000000a1', 'schema')$$);
SELECT isolation FROM tenancy.tenant(:a);
-- A shared table where the tenant has no rows needs no counterpart.
DELETE FROM public.notes;
-- A foreign key from a table the move does not carry, which a delete would cascade into: 0A000.
CREATE TABLE public.shipments (tenant_id uuid, order_id bigint, FOREIGN KEY (tenant_id, order_id) REFERENCES public.orders ON DELETE CASCADE);
SELECT pg_temp.err($$SELECT tenancy.move_tenant('00000000-0000-7000-8000-0000000000a1', 'schema')$$);
DROP TABLE public.shipments;
-- The same in a transaction: the move and the caller's work go together.
BEGIN;
SELECT isolation FROM tenancy.move_tenant(:a, 'schema');
SELECT count(*) FROM tenant_acme.orders;
ROLLBACK;
SELECT isolation FROM tenancy.tenant(:a);
SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_acme';
SELECT count(*) FROM public.orders WHERE tenant_id = :a;

-- A schema table with the tenant's rows and no shared counterpart: 0A000.
SELECT isolation FROM tenancy.move_tenant(:a, 'schema');
CREATE TABLE tenant_acme.scratch (v int);
INSERT INTO tenant_acme.scratch VALUES (1);
SELECT pg_temp.err($$SELECT tenancy.move_tenant('00000000-0000-7000-8000-0000000000a1', 'rls')$$);
SELECT isolation, (SELECT count(*) FROM tenant_acme.orders) AS orders FROM tenancy.tenant(:a);
DROP TABLE tenant_acme.scratch;

-- A suspended tenant moves; its grantees get no access to the new schema
-- until it is active again.
SELECT identifier FROM tenancy.create_tenant('sleepy', 'Sleepy', id => :s);
SELECT tenancy.grant_tenant('mvr_app', :s);
INSERT INTO public.orders (tenant_id, item) VALUES (:s, 'sleepy order');
SELECT status FROM tenancy.suspend_tenant(:s);
SELECT status, isolation, schema_name FROM tenancy.move_tenant(:s, 'schema');
SELECT id, item FROM tenant_sleepy.orders;
SELECT has_schema_privilege('mvr_app', 'tenant_sleepy', 'USAGE') AS suspended_access;
SELECT status FROM tenancy.activate_tenant(:s);
SELECT has_schema_privilege('mvr_app', 'tenant_sleepy', 'USAGE') AS active_access;
SELECT status, isolation FROM tenancy.move_tenant(:s, 'rls');
SELECT id, item FROM public.orders WHERE tenant_id = :s;

-- Refused: a deleted tenant (55000), a database tenant and moving into
-- database isolation (0A000), unknown tenants (P0002), NULLs (22023).
SELECT tenancy.delete_tenant(:s);
SELECT pg_temp.err($$SELECT tenancy.move_tenant('00000000-0000-7000-8000-0000000000c1', 'schema')$$);
INSERT INTO tenancy.tenants (id, identifier, name, isolation, database_name)
VALUES ('00000000-0000-7000-8000-0000000000d1', 'dbt', 'Database tenant', 'database', 'tenant_dbt');
SELECT pg_temp.err($$SELECT tenancy.move_tenant('00000000-0000-7000-8000-0000000000d1', 'rls')$$);
SELECT pg_temp.err($$SELECT tenancy.move_tenant('00000000-0000-7000-8000-0000000000d1', 'database')$$);
SELECT pg_temp.err($$SELECT tenancy.move_tenant('00000000-0000-7000-8000-0000000000b1', 'database')$$);
SELECT pg_temp.err($$SELECT tenancy.move_tenant('00000000-0000-7000-8000-0000000000ff', 'schema')$$);
SELECT pg_temp.err($$SELECT tenancy.move_tenant(NULL, 'schema')$$);
SELECT pg_temp.err($$SELECT tenancy.move_tenant('00000000-0000-7000-8000-0000000000a1', NULL)$$);
SELECT count(*) AS moves FROM tenancy.audit_log WHERE action = 'move';

SET tenancy.soft_delete = off;
SELECT tenancy.delete_tenant(id, true) FROM tenancy.tenants WHERE isolation <> 'database';
RESET tenancy.soft_delete;
DROP TABLE public.orders, public.order_lines, public.invoices, public.notes, public.trigger_log, acme_orders, acme_lines, acme_invoices;
DROP SEQUENCE public.invoice_no;
DROP FUNCTION public.log_rows();
DROP EXTENSION tenancy;
DROP ROLE mvr_owner, mvr_app, mvr_admin;
