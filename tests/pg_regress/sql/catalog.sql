-- The catalog: types, tables, constraints, indexes, dump registration and
-- privileges (SPEC §1, §4 "Privileges").
\set VERBOSITY verbose
CREATE EXTENSION tenancy;

-- The extension's objects all live in its own schema.
SELECT extname, extnamespace::regnamespace AS schema, extrelocatable FROM pg_extension WHERE extname = 'tenancy';
SELECT enum_range(NULL::tenancy.tenant_status);
SELECT enum_range(NULL::tenancy.isolation);
\d tenancy.tenants
\d tenancy.audit_log

-- Tables, sequences and their registration with pg_dump.
SELECT c.relname, c.relkind FROM pg_class c
 WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'v', 'S')
 ORDER BY 1;
SELECT unnest(extconfig)::regclass AS dumped FROM pg_extension WHERE extname = 'tenancy' ORDER BY 1;

-- The table refuses what the functions would refuse, even from a superuser
-- (23514 check_violation, 23502 not_null_violation, 22P02 bad enum value).
\set VERBOSITY sqlstate
INSERT INTO tenancy.tenants (identifier, name, isolation) VALUES ('Bad_Identifier', 'x', 'rls');
INSERT INTO tenancy.tenants (identifier, name, isolation) VALUES ('ab', 'x', 'rls');
INSERT INTO tenancy.tenants (identifier, name, isolation) VALUES ('a--b', 'x', 'rls');
INSERT INTO tenancy.tenants (identifier, name, isolation) VALUES ('abcdef0123456789abcdef0123456789', 'x', 'rls');
INSERT INTO tenancy.tenants (identifier, name, isolation) VALUES ('acme', '   ', 'rls');
INSERT INTO tenancy.tenants (identifier, name, isolation) VALUES ('acme', E'tab\there', 'rls');
INSERT INTO tenancy.tenants (identifier, name, isolation, metadata) VALUES ('acme', 'Acme', 'rls', '[1, 2]');
INSERT INTO tenancy.tenants (identifier, name, isolation, metadata) VALUES ('acme', 'Acme', 'rls', 'null');
INSERT INTO tenancy.tenants (identifier, name, isolation) VALUES ('acme', 'Acme', 'schema');
INSERT INTO tenancy.tenants (identifier, name, isolation, schema_name) VALUES ('acme', 'Acme', 'rls', 'tenant_acme');
INSERT INTO tenancy.tenants (identifier, name, isolation, status) VALUES ('acme', 'Acme', 'rls', 'gone');
-- A valid row is accepted, with a version 7 uuid, status active and {} metadata.
INSERT INTO tenancy.tenants (identifier, name, isolation) VALUES ('acme', 'Acme', 'rls')
RETURNING substr(id::text, 15, 1) AS uuid_version, status, metadata, created_at = updated_at AS fresh;
UPDATE tenancy.tenants SET identifier = 'Acme' WHERE identifier = 'acme';
INSERT INTO tenancy.tenants (identifier, name, isolation) VALUES ('acme', 'Acme again', 'rls');
DELETE FROM tenancy.tenants;

-- The validators are plain functions too.
SELECT tenancy.identifier_is_valid('acme-corp'), tenancy.identifier_is_valid('acme--corp'),
       tenancy.name_is_valid('Acme'), tenancy.name_is_valid('');

-- The audit log is append-only (42501), and knows its actions (23514).
INSERT INTO tenancy.audit_log (tenant_id, action, details) VALUES (NULL, 'create', '{}');
UPDATE tenancy.audit_log SET action = 'update';
DELETE FROM tenancy.audit_log;
TRUNCATE tenancy.audit_log;
INSERT INTO tenancy.audit_log (tenant_id, action) VALUES (NULL, 'frobnicate');

-- PUBLIC can use the schema and the context functions, nothing else.
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_can_execute
  FROM pg_proc p WHERE p.pronamespace = 'tenancy'::regnamespace ORDER BY 1, 2;
SELECT c.relname, has_table_privilege('public', c.oid, 'SELECT') AS public_select,
       has_table_privilege('public', c.oid, 'INSERT') AS public_insert
  FROM pg_class c WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'v') ORDER BY 1;
SELECT has_schema_privilege('public', 'tenancy', 'USAGE') AS public_usage,
       has_schema_privilege('public', 'tenancy', 'CREATE') AS public_create;

\set VERBOSITY verbose
-- Volatility, parallel safety and security of every function.  add_migration
-- and create_tenant are SECURITY INVOKER: they switch to the owner themselves
-- after noting who called (src/context/access.rs, definer).
SELECT p.proname, p.provolatile, p.proparallel, p.prosecdef, p.proconfig
  FROM pg_proc p WHERE p.pronamespace = 'tenancy'::regnamespace AND p.prokind = 'f' ORDER BY 1;

-- The extension needs no shared_preload_libraries, and reserves its prefix.
\set VERBOSITY sqlstate
SET tenancy.no_such_setting = 'x';
\set VERBOSITY verbose
SHOW tenancy.soft_delete;
SHOW tenancy.default_isolation;
SHOW tenancy.premium_tiers;
SHOW tenancy.schema_prefix;
SHOW tenancy.tenant_id;

DROP EXTENSION tenancy;
