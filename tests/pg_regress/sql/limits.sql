-- SPEC §10: per-tenant settings applied by set_tenant in its scope, the
-- concurrent-request limit, tenant_usage.
CREATE EXTENSION IF NOT EXISTS tenancy;
SET client_min_messages = warning;
SELECT id AS a FROM tenancy.create_tenant('lim-acme', 'Acme') \gset
SELECT id AS b FROM tenancy.create_tenant('lim-globex', 'Globex') \gset
DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lim_app') THEN CREATE ROLE lim_app; END IF; END $$;
SELECT tenancy.grant_tenant('lim_app', :'a');
SELECT tenancy.grant_tenant('lim_app', :'b');

SELECT identifier FROM tenancy.set_tenant_setting(:'a', 'statement_timeout', '2s');
SELECT identifier FROM tenancy.set_tenant_setting(:'a', 'Work_Mem', '8MB');
SELECT tenant_id = :'a' AS ok, setting, value FROM tenancy.tenant_settings ORDER BY setting;
SELECT details FROM tenancy.audit_log WHERE action = 'setting' ORDER BY id;

-- Refused: names not allowed (22023), the context itself, bad values.
\set VERBOSITY terse
SELECT tenancy.set_tenant_setting(:'a', 'search_path', 'evil');
SELECT tenancy.set_tenant_setting(:'a', 'tenancy.tenant_id', :'b');
SELECT tenancy.set_tenant_setting(:'a', 'statement_timeout', 'soon');
SELECT tenancy.set_tenant_setting(:'a', 'work_mem', '1');
SELECT tenancy.set_tenant_setting(:'a', 'max_concurrent_requests', '0');
SELECT tenancy.set_tenant_setting(:'a', 'statement_timeout', NULL);
-- Only a superuser changes the list of allowed settings.
SET ROLE lim_app;
SET tenancy.tenant_settings_allowed = 'search_path';
SELECT tenancy.set_tenant_setting(:'a', 'work_mem', '4MB');
RESET ROLE;
\set VERBOSITY default

-- Transaction-local: applied, and gone at the end of the transaction.
SET ROLE lim_app;
SHOW statement_timeout;
BEGIN;
SELECT identifier FROM tenancy.set_tenant('lim-acme', true);
SHOW statement_timeout;
SHOW work_mem;
-- Switching tenants puts back what was there.
SELECT identifier FROM tenancy.set_tenant('lim-globex', true);
SHOW statement_timeout;
SELECT identifier FROM tenancy.set_tenant('lim-acme', true);
SELECT tenancy.clear_tenant(true);
SHOW statement_timeout;
SELECT identifier FROM tenancy.set_tenant('lim-acme', true);
COMMIT;
SHOW statement_timeout;
SHOW work_mem;
-- Session-level: until clear_tenant, which puts back the session's own value.
SET work_mem = '6MB';
SELECT identifier FROM tenancy.set_tenant('lim-acme');
SHOW work_mem;
SELECT tenancy.clear_tenant();
SHOW work_mem;
-- A setting does not outlive a rolled-back set_tenant either.
BEGIN;
SELECT identifier FROM tenancy.set_tenant('lim-acme');
ROLLBACK;
SHOW statement_timeout;
RESET work_mem;
RESET ROLE;

-- The limit: the slots are locks this transaction holds; a second
-- set_tenant of the same tenant in it takes none more.
SELECT identifier FROM tenancy.set_tenant_setting(:'b', 'max_concurrent_requests', '1');
BEGIN;
SELECT identifier FROM tenancy.set_tenant('lim-globex', true);
SELECT identifier FROM tenancy.set_tenant('lim-globex', true);
SELECT count(*) FROM pg_locks WHERE locktype = 'userlock' AND pid = pg_backend_pid() AND objsubid = 29043;
COMMIT;
SELECT identifier FROM tenancy.reset_tenant_setting(:'b', 'max_concurrent_requests');
SELECT identifier FROM tenancy.reset_tenant_setting(:'b', 'max_concurrent_requests');
SELECT count(*) FROM tenancy.audit_log WHERE action = 'setting' AND tenant_id = :'b';

-- tenant_usage: a shared table's rows per tenant and its share of the size;
-- a schema tenant's tables; every tenant at once.
CREATE TABLE lim_items (tenant_id uuid NOT NULL, v text);
SELECT tenancy.enable_rls('lim_items');
INSERT INTO lim_items SELECT :'a', repeat('x', 100) FROM generate_series(1, 300);
INSERT INTO lim_items SELECT :'b', repeat('x', 100) FROM generate_series(1, 100);
ANALYZE lim_items;
SELECT tbl, rows, bytes > 0 AS has_bytes FROM tenancy.tenant_usage(:'a');
SELECT u.tenant_id = :'a' AS is_a, u.rows,
       u.bytes = (SELECT pg_total_relation_size('lim_items') * u.rows / 400) AS share_by_rows
  FROM tenancy.tenant_usage() u WHERE u.tbl = 'lim_items'::regclass ORDER BY u.rows DESC;
SELECT count(*) FROM tenancy.add_migration('lim_001', 'CREATE TABLE lim_notes (id int)');
SELECT id AS s FROM tenancy.create_tenant('lim-schema', 'Schema', isolation => 'schema') \gset
INSERT INTO tenant_lim_schema.lim_notes SELECT generate_series(1, 5);
SELECT tbl, rows, bytes = pg_total_relation_size(tbl) AS whole_size FROM tenancy.tenant_usage(:'s') ORDER BY tbl::text;
\set VERBOSITY terse
SELECT * FROM tenancy.tenant_usage('00000000-0000-0000-0000-000000000001');
\set VERBOSITY default
DROP TABLE lim_items;
