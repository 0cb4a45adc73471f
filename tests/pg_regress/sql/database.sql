-- Database isolation (SPEC §4 "Database"): without dblink, 0A000 with the
-- SQL to run by hand; with dblink, the database is created and dropped over
-- a loopback connection.
\set VERBOSITY verbose
CREATE EXTENSION tenancy;
SELECT tenancy.create_tenant('own-db', 'Own database', isolation => 'database');
SELECT count(*) FROM tenancy.tenants;
-- Without dblink, a database made by hand is adopted.
CREATE DATABASE tenant_by_hand;
SELECT identifier, database_name FROM tenancy.create_tenant('by-hand', 'By hand', isolation => 'database', id => '00000000-0000-7000-8000-0000000000b0');
SELECT has_database_privilege('public', 'tenant_by_hand', 'CONNECT') AS public_can_connect;
SELECT tenancy.delete_tenant('00000000-0000-7000-8000-0000000000b0', destroy_data => true);

CREATE EXTENSION dblink;
SELECT identifier, isolation, schema_name, database_name
  FROM tenancy.create_tenant('own-db', 'Own database', isolation => 'database', id => '00000000-0000-7000-8000-0000000000db');
SELECT datname FROM pg_database WHERE datname = 'tenant_own_db';
-- The new database is closed to PUBLIC; a grant opens it, a suspension closes it.
CREATE ROLE tenancy_db_user NOLOGIN;
SELECT has_database_privilege('public', 'tenant_own_db', 'CONNECT') AS public_can_connect;
SELECT tenancy.grant_tenant('tenancy_db_user', '00000000-0000-7000-8000-0000000000db');
SELECT has_database_privilege('tenancy_db_user', 'tenant_own_db', 'CONNECT') AS granted_can_connect;
SELECT status FROM tenancy.suspend_tenant('00000000-0000-7000-8000-0000000000db');
SELECT has_database_privilege('tenancy_db_user', 'tenant_own_db', 'CONNECT') AS suspended_can_connect;
SELECT status FROM tenancy.activate_tenant('00000000-0000-7000-8000-0000000000db');
SELECT tenancy.revoke_tenant('tenancy_db_user', '00000000-0000-7000-8000-0000000000db');
SELECT has_database_privilege('tenancy_db_user', 'tenant_own_db', 'CONNECT') AS revoked_can_connect;
-- CREATE and DROP DATABASE happen at COMMIT: a transaction that rolls back
-- creates no database and drops none.
BEGIN;
SELECT identifier FROM tenancy.create_tenant('rolled-back', 'Rolled back', isolation => 'database');
SELECT count(*) AS created_yet FROM pg_database WHERE datname = 'tenant_rolled_back';
ROLLBACK;
SELECT count(*) AS created FROM pg_database WHERE datname = 'tenant_rolled_back';
SELECT count(*) AS queued FROM tenancy.database_ops;
BEGIN;
SET LOCAL tenancy.soft_delete = off;
SELECT tenancy.delete_tenant('00000000-0000-7000-8000-0000000000db', destroy_data => true);
ROLLBACK;
SELECT datname AS still_there FROM pg_database WHERE datname = 'tenant_own_db';
-- Created and dropped in one transaction: nothing happens at COMMIT.
BEGIN;
SELECT identifier FROM tenancy.create_tenant('fleeting', 'Fleeting', isolation => 'database', id => '00000000-0000-7000-8000-0000000000f1');
SELECT tenancy.delete_tenant('00000000-0000-7000-8000-0000000000f1', destroy_data => true);
COMMIT;
SELECT count(*) AS fleeting_databases FROM pg_database WHERE datname = 'tenant_fleeting';
-- Soft delete with destroy_data (soft_delete is on by default): marking the
-- tenant deleted leaves the doomed database's privileges alone, so the drop
-- at COMMIT does not wait for this transaction.
SELECT identifier FROM tenancy.create_tenant('short-db', 'Short', isolation => 'database', id => '00000000-0000-7000-8000-0000000000f2');
SELECT tenancy.grant_tenant('tenancy_db_user', '00000000-0000-7000-8000-0000000000f2');
SELECT tenancy.delete_tenant('00000000-0000-7000-8000-0000000000f2', destroy_data => true);
SELECT count(*) AS short_databases FROM pg_database WHERE datname = 'tenant_short_db';
SELECT status FROM tenancy.tenant('00000000-0000-7000-8000-0000000000f2');
-- A database of that name already there: 23505.
CREATE DATABASE tenant_taken;
SELECT tenancy.create_tenant('taken', 'Taken', isolation => 'database');
DROP DATABASE tenant_taken;
SET tenancy.soft_delete = off;
SELECT tenancy.delete_tenant('00000000-0000-7000-8000-0000000000db', destroy_data => true);
RESET tenancy.soft_delete;
SELECT count(*) FROM pg_database WHERE datname = 'tenant_own_db';
SELECT action, details FROM tenancy.audit_log WHERE action IN ('provision', 'destroy') ORDER BY id;

DROP EXTENSION tenancy;
DROP EXTENSION dblink;
DROP DATABASE tenant_by_hand;
DROP ROLE tenancy_db_user;
