-- tenancy 0.3.0 -> 0.4.0

-- create_tenant gains schema_name (SPEC §12).  A new argument is a new
-- function to PostgreSQL, so the 0.3.0 one goes (keeping both would make
-- every call that leaves out id ambiguous), and the EXECUTE privileges a DBA
-- gave on it are given again on the new one.  Those grants are the DBA's,
-- not the extension's: pg_init_privs is put back to what a fresh install
-- records, so that pg_dump keeps dumping them.
SELECT pg_catalog.set_config('tenancy_upgrade.create_tenant_acl',
           COALESCE((SELECT p.proacl FROM pg_catalog.pg_proc p
                      WHERE p.oid OPERATOR(pg_catalog.=) 'tenancy.create_tenant(text, text, jsonb, tenancy.isolation, uuid)'::pg_catalog.regprocedure),
                    '{}')::pg_catalog.text,
           true);

DROP FUNCTION tenancy.create_tenant(text, text, jsonb, tenancy.isolation, uuid);

CREATE FUNCTION tenancy."create_tenant"(
	"identifier" TEXT,
	"name" TEXT,
	"metadata" jsonb DEFAULT '{}',
	"isolation" tenancy.isolation DEFAULT NULL,
	"id" uuid DEFAULT NULL,
	"schema_name" name DEFAULT NULL
) RETURNS tenancy.tenants
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'create_tenant_with_schema_name_wrapper';

REVOKE EXECUTE ON FUNCTION tenancy.create_tenant(text, text, jsonb, tenancy.isolation, uuid, name) FROM PUBLIC;

DO $do$
DECLARE
    fn constant pg_catalog.oid := 'tenancy.create_tenant(text, text, jsonb, tenancy.isolation, uuid, name)'::pg_catalog.regprocedure;
    initial pg_catalog.aclitem[];
    g record;
BEGIN
    SELECT p.initprivs INTO initial FROM pg_catalog.pg_init_privs p
     WHERE p.objoid OPERATOR(pg_catalog.=) fn AND p.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass;
    -- Given again by the function's owner (a grant made by another holder of
    -- the grant option becomes the owner's).
    FOR g IN
        SELECT a.grantee, a.is_grantable
          FROM pg_catalog.aclexplode(pg_catalog.current_setting('tenancy_upgrade.create_tenant_acl')::pg_catalog.aclitem[]) a
         WHERE a.grantee OPERATOR(pg_catalog.<>) a.grantor AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
           AND a.grantee OPERATOR(pg_catalog.<>) (SELECT p.proowner FROM pg_catalog.pg_proc p WHERE p.oid OPERATOR(pg_catalog.=) fn)
         ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s%s',
            fn::pg_catalog.regprocedure,
            CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE g.grantee::pg_catalog.regrole::pg_catalog.text END,
            CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    UPDATE pg_catalog.pg_init_privs p SET initprivs = initial
     WHERE p.objoid OPERATOR(pg_catalog.=) fn AND p.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass;
END
$do$;

-- Tenant schemas from 0.3.0 are the extension owner's, whose default
-- privileges grant_tenant set (ALTER DEFAULT PRIVILEGES without FOR ROLE, as
-- that owner): the same entries 0.4.0 writes with FOR ROLE the schema's
-- owner, so nothing else changes.

-- add_migration and create_tenant decide on the role that called them
-- (add_migration: may it register SQL that runs as the owner; create_tenant:
-- may it adopt a schema).  Inside a SECURITY DEFINER function that role is
-- no longer known, and the session's role is not it when code runs as
-- another role in that session (a trigger, an index expression under a
-- superuser's ANALYZE).  So both are SECURITY INVOKER now and switch to the
-- owner themselves, after noting who called (src/access.rs, definer).
-- CREATE OR REPLACE keeps add_migration's privileges.
CREATE OR REPLACE FUNCTION tenancy."add_migration"(
	"name" TEXT,
	"sql" TEXT
) RETURNS tenancy.migrations
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'add_migration_as_caller_wrapper';

-- A tenant's schema stays its own while the tenant is not deleted: tenancy
-- finds it by name, so a schema renamed or dropped by hand would leave
-- suspensions and revokes acting on nothing, let another role create a schema
-- under the old name for the tenant's writes to land in, and make
-- destroy_data drop that one.  delete_tenant(…, destroy_data => true) drops
-- it after the tenant is deleted, which these checks let through.
CREATE FUNCTION tenancy.guard_tenant_schemas() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    hit record;
BEGIN
    IF pg_catalog.to_regclass('tenancy.tenants') IS NULL THEN
        RETURN;   -- the extension itself is going
    END IF;
    IF TG_EVENT OPERATOR(pg_catalog.=) 'sql_drop' THEN
        SELECT t.identifier, t.schema_name INTO hit
          FROM pg_catalog.pg_event_trigger_dropped_objects() d
          JOIN tenancy.tenants t ON d.object_identity OPERATOR(pg_catalog.=) pg_catalog.quote_ident(t.schema_name::pg_catalog.text)
         WHERE d.object_type OPERATOR(pg_catalog.=) 'schema' AND t.status OPERATOR(pg_catalog.<>) 'deleted'
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'cannot drop schema "%": it is tenant "%"''s', hit.schema_name, hit.identifier
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Delete the tenant with its data: SELECT tenancy.delete_tenant(id, destroy_data => true).';
        END IF;
    ELSE
        SELECT t.identifier, t.schema_name INTO hit
          FROM tenancy.tenants t
         WHERE t.schema_name IS NOT NULL AND t.status OPERATOR(pg_catalog.<>) 'deleted'
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) t.schema_name)
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'cannot rename schema "%": it is tenant "%"''s', hit.schema_name, hit.identifier
                USING ERRCODE = 'object_in_use',
                      HINT = 'A tenant''s schema keeps its name; tenancy finds it by that name.';
        END IF;
    END IF;
END
$$;

CREATE EVENT TRIGGER tenancy_guard_dropped_schemas ON sql_drop
    EXECUTE FUNCTION tenancy.guard_tenant_schemas();
CREATE EVENT TRIGGER tenancy_guard_renamed_schemas ON ddl_command_end
    WHEN TAG IN ('ALTER SCHEMA')
    EXECUTE FUNCTION tenancy.guard_tenant_schemas();

REVOKE EXECUTE ON FUNCTION tenancy.guard_tenant_schemas() FROM PUBLIC;
