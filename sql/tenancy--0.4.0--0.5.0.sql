-- tenancy 0.4.0 -> 0.5.0

-- Citus (SPEC §8): the functions and the cluster copy of the catalog
-- (sql/citus.sql, repeated below), and tenancy.citus_setup().
CREATE FUNCTION tenancy."citus_loaded"() RETURNS bool
STRICT STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'citus_loaded_wrapper';

CREATE FUNCTION tenancy."citus_prepare_catalog"() RETURNS bool
STRICT VOLATILE
LANGUAGE c AS 'MODULE_PATHNAME', 'citus_prepare_catalog_wrapper';

-- sql/citus.sql from here.
CREATE TABLE tenancy.cluster_tenants (LIKE tenancy.tenants);
ALTER TABLE tenancy.cluster_tenants ADD CONSTRAINT cluster_tenants_pkey PRIMARY KEY (id);
CREATE INDEX cluster_tenants_identifier_idx ON tenancy.cluster_tenants (identifier);
CREATE INDEX cluster_tenants_schema_name_idx ON tenancy.cluster_tenants (schema_name);

COMMENT ON TABLE tenancy.cluster_tenants IS 'On a Citus cluster: tenancy.tenants as every node sees it (a reference table kept in step by triggers). Unused on one node.';

-- The grants, with the role by name: role OIDs differ from node to node
-- (Citus creates each role on every node), names do not.  role is the
-- coordinator's OID, which its triggers key on.
CREATE TABLE tenancy.cluster_grants (
    role      oid NOT NULL,
    role_name name NOT NULL,
    tenant_id uuid
);
CREATE INDEX cluster_grants_tenant_idx ON tenancy.cluster_grants (tenant_id);

COMMENT ON TABLE tenancy.cluster_grants IS 'On a Citus cluster: tenancy.tenant_grants with role names, as every node sees it (a reference table kept in step by triggers). Unused on one node.';

-- Each change of the catalog, copied in the same statement.  The WHEN
-- condition keeps one node free of any of this: without Citus loaded the
-- function is not even called.  The statements carry their values as
-- literals: Citus sends a PL/pgSQL variable to the workers as a parameter
-- whose value it does not always send along (measured: a DELETE by OLD.id
-- deleted nothing on the workers).
CREATE FUNCTION tenancy.cluster_sync_tenants() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT tenancy.citus_prepare_catalog() THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        EXECUTE pg_catalog.format('DELETE FROM tenancy.cluster_tenants WHERE id OPERATOR(pg_catalog.=) %L', OLD.id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        -- ON CONFLICT: the row may be there already, copied by citus_prepare_catalog.
        EXECUTE pg_catalog.format(
            'INSERT INTO tenancy.cluster_tenants SELECT * FROM pg_catalog.jsonb_populate_record(NULL::tenancy.cluster_tenants, %L) ON CONFLICT (id) DO NOTHING',
            pg_catalog.to_jsonb(NEW));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION tenancy.cluster_sync_grants() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    grantee name;
BEGIN
    IF NOT tenancy.citus_prepare_catalog() THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        EXECUTE pg_catalog.format(
            'DELETE FROM tenancy.cluster_grants WHERE role OPERATOR(pg_catalog.=) %L AND tenant_id IS NOT DISTINCT FROM %L::pg_catalog.uuid',
            OLD.role::pg_catalog.oid, OLD.tenant_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT r.rolname INTO grantee FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) NEW.role::pg_catalog.oid;
        -- The DELETE: the row may be there already, copied by citus_prepare_catalog.
        EXECUTE pg_catalog.format(
            'DELETE FROM tenancy.cluster_grants WHERE role OPERATOR(pg_catalog.=) %L AND tenant_id IS NOT DISTINCT FROM %L::pg_catalog.uuid',
            NEW.role::pg_catalog.oid, NEW.tenant_id);
        EXECUTE pg_catalog.format(
            'INSERT INTO tenancy.cluster_grants (role, role_name, tenant_id) VALUES (%L, %L, %L)',
            NEW.role::pg_catalog.oid, grantee, NEW.tenant_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER cluster_sync AFTER INSERT OR UPDATE OR DELETE ON tenancy.tenants
    FOR EACH ROW WHEN (tenancy.citus_loaded())
    EXECUTE FUNCTION tenancy.cluster_sync_tenants();
CREATE TRIGGER cluster_sync AFTER INSERT OR UPDATE OR DELETE ON tenancy.tenant_grants
    FOR EACH ROW WHEN (tenancy.citus_loaded())
    EXECUTE FUNCTION tenancy.cluster_sync_grants();

-- DROP OWNED BY a role takes its tenant_grantee privilege away, and with it
-- the weight of its grant rows on the coordinator (access::Marked); the
-- copy drops them, so that a role created later under the same name (the
-- workers match by name) inherits nothing.  Also run by Citus's DROP OWNED
-- on the workers, where it does nothing.
CREATE FUNCTION tenancy.cluster_forget_unmarked() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF tenancy.citus_loaded() AND tenancy.citus_prepare_catalog() THEN
        EXECUTE pg_catalog.format('DELETE FROM tenancy.cluster_grants WHERE role OPERATOR(pg_catalog.<>) ALL (%L::pg_catalog.oid[])',
            (SELECT COALESCE(pg_catalog.array_agg(a.grantee), '{}')
               FROM pg_catalog.pg_type t, pg_catalog.aclexplode(t.typacl) a
              WHERE t.oid OPERATOR(pg_catalog.=) 'tenancy.tenant_grantee'::pg_catalog.regtype));
    END IF;
END
$$;

CREATE EVENT TRIGGER tenancy_cluster_dropped_owned ON ddl_command_end
    WHEN TAG IN ('DROP OWNED')
    EXECUTE FUNCTION tenancy.cluster_forget_unmarked();

CREATE FUNCTION tenancy."citus_setup"() RETURNS void
STRICT VOLATILE
LANGUAGE c AS 'MODULE_PATHNAME', 'citus_setup_wrapper';

-- As sql/privileges.sql leaves them in a new database: for the DBA to grant.
REVOKE ALL ON TABLE tenancy.cluster_tenants, tenancy.cluster_grants FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
    tenancy.citus_loaded(), tenancy.citus_prepare_catalog(), tenancy.citus_setup(),
    tenancy.cluster_sync_tenants(), tenancy.cluster_sync_grants(), tenancy.cluster_forget_unmarked()
FROM PUBLIC;

-- The data operations (SPEC §9) audit as move, import and clone; per-tenant
-- settings (SPEC §10) as setting.
ALTER TABLE tenancy.audit_log DROP CONSTRAINT audit_log_action_check;
ALTER TABLE tenancy.audit_log ADD CONSTRAINT audit_log_action_check CHECK (action IN (
    'create', 'update', 'status', 'metadata', 'delete', 'provision',
    'destroy', 'migrate', 'grant', 'revoke', 'move', 'import', 'clone', 'setting'));

-- tenant_footprint (SPEC §9).
CREATE FUNCTION tenancy."tenant_footprint"("id" uuid)
RETURNS TABLE ("tbl" regclass, "rows" bigint, "registered" bool)
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'tenant_footprint_wrapper';
REVOKE EXECUTE ON FUNCTION tenancy.tenant_footprint(uuid) FROM PUBLIC;

-- A deleted tenant's schema goes with what is in it, nothing else (as in
-- sql/isolation.sql).
CREATE OR REPLACE FUNCTION tenancy.guard_tenant_schemas() RETURNS event_trigger
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
        -- A deleted tenant's schema goes with what is in it, nothing else:
        -- DROP SCHEMA … CASCADE would also drop a view, a foreign key or a
        -- default elsewhere that depends on it, which are not the tenant's.
        SELECT t.identifier, t.schema_name,
               -- named as a reader knows them: a view, not its rule and row types
               COALESCE(pg_catalog.string_agg(d.object_type OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) d.object_identity, ', '
                                              ORDER BY d.object_identity)
                          FILTER (WHERE d.object_type OPERATOR(pg_catalog.<>) ALL ('{type,rule,index}'::text[])),
                        pg_catalog.string_agg(d.object_type OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) d.object_identity, ', '
                                              ORDER BY d.object_identity)) AS outside
          INTO hit
          FROM pg_catalog.pg_event_trigger_dropped_objects() s
          JOIN tenancy.tenants t ON s.object_identity OPERATOR(pg_catalog.=) pg_catalog.quote_ident(t.schema_name::pg_catalog.text)
          JOIN pg_catalog.pg_event_trigger_dropped_objects() d
            ON d.schema_name IS DISTINCT FROM t.schema_name::pg_catalog.text
           AND d.schema_name IS DISTINCT FROM 'pg_toast'
           AND d.object_identity OPERATOR(pg_catalog.<>) s.object_identity
         WHERE s.object_type OPERATOR(pg_catalog.=) 'schema'
         GROUP BY t.identifier, t.schema_name
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'cannot drop schema "%" of tenant "%": objects outside it depend on it', hit.schema_name, hit.identifier
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = 'It would also drop: ' OPERATOR(pg_catalog.||) hit.outside OPERATOR(pg_catalog.||) '.',
                      HINT = 'Drop or change those objects first: a tenant''s data is what its schema holds.';
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

-- Per-tenant settings and tenant_usage (SPEC §10): sql/limits.sql from here.
CREATE TABLE tenancy.tenant_settings (
    tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    setting   text NOT NULL,
    value     text NOT NULL,
    set_at    timestamptz NOT NULL DEFAULT now(),
    set_by    name NOT NULL DEFAULT session_user,
    CONSTRAINT tenant_settings_pkey PRIMARY KEY (tenant_id, setting)
);

COMMENT ON TABLE tenancy.tenant_settings IS 'Settings set_tenant applies for a tenant (statement_timeout, work_mem, ..., max_concurrent_requests). Change with tenancy.set_tenant_setting and reset_tenant_setting.';

-- pg_dump keeps them with the tenants.
SELECT pg_catalog.pg_extension_config_dump('tenancy.tenant_settings', '');

CREATE FUNCTION tenancy."set_tenant_setting"("id" uuid, "setting" text, "value" text) RETURNS tenancy.tenants
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'set_tenant_setting_wrapper';
CREATE FUNCTION tenancy."reset_tenant_setting"("id" uuid, "setting" text) RETURNS tenancy.tenants
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'reset_tenant_setting_wrapper';
CREATE FUNCTION tenancy."tenant_usage"("id" uuid DEFAULT NULL)
RETURNS TABLE ("tenant_id" uuid, "tbl" regclass, "rows" bigint, "bytes" bigint)
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'tenant_usage_wrapper';
-- export_tenant, import_tenant, clone_tenant (SPEC §9).
CREATE FUNCTION tenancy.export_tenant(id uuid) RETURNS SETOF jsonb
STABLE ROWS 10000 LANGUAGE c AS 'MODULE_PATHNAME', 'export_tenant_wrapper';
COMMENT ON FUNCTION tenancy.export_tenant(uuid) IS 'One consistent snapshot of a tenant''s data as JSON lines: a header, then one line per row, tables in foreign key order.';
CREATE FUNCTION tenancy."import_tenant"("source" regclass, "identifier" text DEFAULT NULL, "name" text DEFAULT NULL) RETURNS tenancy.tenants
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'import_tenant_wrapper';
CREATE FUNCTION tenancy."clone_tenant"("source" uuid, "identifier" text, "name" text DEFAULT NULL) RETURNS tenancy.tenants
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'clone_tenant_wrapper';
REVOKE EXECUTE ON FUNCTION tenancy.export_tenant(uuid), tenancy.import_tenant(regclass, text, text),
    tenancy.clone_tenant(uuid, text, text) FROM PUBLIC;

-- move_tenant (SPEC §9).
CREATE FUNCTION tenancy."move_tenant"("id" uuid, "isolation" tenancy.isolation) RETURNS tenancy.tenants
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'move_tenant_wrapper';
REVOKE EXECUTE ON FUNCTION tenancy.move_tenant(uuid, tenancy.isolation) FROM PUBLIC;
REVOKE ALL ON TABLE tenancy.tenant_settings FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenancy.set_tenant_setting(uuid, text, text), tenancy.reset_tenant_setting(uuid, text),
    tenancy.tenant_usage(uuid) FROM PUBLIC;
