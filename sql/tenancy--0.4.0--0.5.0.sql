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

-- Live statistics (SPEC §10): the functions, then sql/observability.sql.
CREATE FUNCTION tenancy."tenant_stats_rows"() RETURNS TABLE ("tenant_id" uuid, "statements" bigint, "rows" bigint,
    "total_time_ms" double precision, "last_statement_at" timestamp with time zone)
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'tenant_stats_rows_wrapper';
CREATE FUNCTION tenancy."tenant_activity_rows"() RETURNS TABLE ("pid" int, "tenant_id" uuid, "since" timestamp with time zone)
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'tenant_activity_rows_wrapper';
CREATE FUNCTION tenancy."reset_tenant_stats"() RETURNS void
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'reset_tenant_stats_wrapper';
REVOKE EXECUTE ON FUNCTION tenancy.tenant_stats_rows(), tenancy.tenant_activity_rows(), tenancy.reset_tenant_stats() FROM PUBLIC;
CREATE VIEW tenancy.tenant_stats AS
SELECT s.tenant_id, t.identifier, s.statements, s.rows, s.total_time_ms, s.last_statement_at
  FROM tenancy.tenant_stats_rows() s
  LEFT JOIN tenancy.tenants t ON t.id = s.tenant_id;

COMMENT ON VIEW tenancy.tenant_stats IS
  'Top-level statements run under each tenant''s context since the last reset_tenant_stats(), for up to tenancy.stats_max_tenants tenants (least recently active evicted). Needs tenancy in shared_preload_libraries.';

-- state and query_start come from pg_stat_get_activity as the reader sees
-- it: NULL for another role's session unless the reader has
-- pg_read_all_stats, as in pg_stat_activity.
CREATE VIEW tenancy.tenant_activity AS
SELECT a.pid, a.tenant_id, t.identifier, a.since, p.state, p.query_start
  FROM tenancy.tenant_activity_rows() a
  LEFT JOIN LATERAL pg_catalog.pg_stat_get_activity(a.pid) p ON true
  LEFT JOIN tenancy.tenants t ON t.id = a.tenant_id;

COMMENT ON VIEW tenancy.tenant_activity IS
  'Every backend with a (checked) tenant context now, since when, and its state. Needs tenancy in shared_preload_libraries.';

GRANT SELECT ON tenancy.tenant_stats, tenancy.tenant_activity TO pg_read_all_stats;
GRANT EXECUTE ON FUNCTION tenancy.tenant_stats_rows(), tenancy.tenant_activity_rows() TO pg_read_all_stats;

-- Guard rails (SPEC §11): sql/doctor.sql from here.
CREATE FUNCTION tenancy.auto_rls() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'auto_rls_wrapper';

COMMENT ON FUNCTION tenancy.auto_rls() IS
    'Event trigger of tenancy.auto_rls: calls enable_rls on new tables with a uuid tenant column while the setting is on.';

CREATE EVENT TRIGGER tenancy_auto_rls ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE')
    EXECUTE FUNCTION tenancy.auto_rls();

-- tenancy.doctor(): one row per problem, each a way a tenant's rows can
-- reach another tenant (error) or a weakness that is not a leak yet
-- (warning), with the SQL that repairs it when run as a superuser, in the
-- order the rows come (a foreign key's fix frees the key a unique-key fix
-- then replaces).  `CALL tenancy.migrate()` must run outside a transaction
-- block, so run the fixes one by one (psql's \gexec does).
--
-- Only catalogs and tenancy's registries are read: no view is queried, no
-- function of anyone's runs (SECURITY DEFINER, search_path pinned to
-- pg_catalog, so every operator and function named is PostgreSQL's).
-- Identifiers in the fixes are quoted with %I, or come from regclass,
-- regprocedure and pg_get_*def, which quote them.
CREATE FUNCTION tenancy.doctor()
RETURNS TABLE (severity text, object text, problem text, fix text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $doctor$
WITH
-- The names a tenant column goes by: the setting's, and those enable_rls
-- registered.
tenant_columns AS (
    SELECT COALESCE(current_setting('tenancy.tenant_column', true), 'tenant_id')::name AS name
    UNION
    SELECT r.tenant_column FROM tenancy.rls_tables r
),
-- The schemas of schema tenants (each isolated by its schema, not by RLS).
tenant_schemas AS (
    SELECT n.oid, n.nspname, n.nspacl
      FROM tenancy.tenants t JOIN pg_namespace n ON n.nspname = t.schema_name
),
-- The schemas whose tables RLS isolates: not tenancy's, not a system
-- schema, not a tenant's.
shared_schemas AS (
    SELECT n.oid FROM pg_namespace n
     WHERE n.nspname NOT IN ('tenancy', 'pg_catalog', 'information_schema', 'pg_toast')
       AND n.nspname NOT LIKE 'pg\_%'
       AND n.oid NOT IN (SELECT oid FROM tenant_schemas)
),
-- The registered tables that exist, with their tenant column's number
-- (NULL when it is gone).
registered AS (
    SELECT c.oid, c.relname, c.relkind, c.relowner, c.relacl, c.relrowsecurity, c.relforcerowsecurity,
           c.relnamespace, c.oid::regclass::text AS name, r.tenant_column, r.policy_name, a.attnum AS tc
      FROM tenancy.rls_tables r
      JOIN pg_class c ON c.oid = r.tbl::oid
      LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = r.tenant_column
                              AND a.attnum > 0 AND NOT a.attisdropped
     WHERE c.relpersistence <> 't'
),
-- The roles whose grant rows count: those holding the marker (see
-- sql/isolation.sql); and every role that may act for a tenant through
-- them (a grantee and its members).  Superusers may act for every tenant
-- anyway and are left out.
grantees AS (
    SELECT DISTINCT g.role::oid AS oid
      FROM tenancy.tenant_grants g
     WHERE g.role::oid IN (SELECT a.grantee FROM pg_type t, aclexplode(t.typacl) a
                            WHERE t.oid = 'tenancy.tenant_grantee'::regtype)
),
acting AS (
    SELECT r.oid, r.rolname, r.rolbypassrls, r.rolcreaterole
      FROM pg_roles r
     WHERE NOT r.rolsuper AND EXISTS (SELECT FROM grantees g WHERE pg_has_role(r.oid, g.oid, 'USAGE'))
),
-- Views and materialized views reading a registered table, directly or
-- through other views.
readers AS (
    WITH RECURSIVE reads(view, base) AS (
        SELECT DISTINCT w.ev_class, d.refobjid
          FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid
         WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
           AND d.refobjid IN (SELECT oid FROM registered) AND w.ev_class <> d.refobjid
        UNION
        SELECT w.ev_class, reads.base
          FROM reads
          JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = reads.view
                          AND d.classid = 'pg_rewrite'::regclass
          JOIN pg_rewrite w ON w.oid = d.objid
         WHERE w.ev_class <> reads.view
    )
    SELECT DISTINCT ON (v.oid) v.oid, v.relkind, v.relowner, v.relnamespace, v.reloptions,
           v.oid::regclass::text AS name, reads.base::regclass::text AS base
      FROM reads JOIN pg_class v ON v.oid = reads.view
     ORDER BY v.oid, reads.base
),
-- Indexes of registered tables whose first key column is not the tenant
-- column (an index of a partition attached to its parent's index is fixed
-- with the parent's).
off_indexes AS (
    SELECT i.indexrelid, i.indisunique, reg.oid AS tbl, reg.name AS tbl_name, reg.tenant_column,
           format('%I.%I', n.nspname, ic.relname) AS name,
           reg.tc = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1]) AS has_tc,
           con.oid AS con, con.contype, con.conname, con.conkey, reg.tc
      FROM registered reg
      JOIN pg_index i ON i.indrelid = reg.oid
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_namespace n ON n.oid = ic.relnamespace
      LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = reg.oid
                                 AND con.contype IN ('p', 'u', 'x')
     WHERE reg.tc IS NOT NULL AND i.indkey[0] <> reg.tc
       AND NOT EXISTS (SELECT FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
),
problems(ord, severity, object, problem, fix) AS (

-- 1. A table with a uuid column named like a tenant column that enable_rls
-- never registered: no policy, so every role that may read it reads every
-- tenant's rows.  A partition counts on its own: read directly, it has none
-- of its parent's policy.
SELECT 1, 'error', 'table ' || c.oid::regclass::text,
       format('has a tenant column %I (uuid) but is not isolated: no tenancy policy filters it, so every role that may read it sees every tenant''s rows', a.attname),
       format('SELECT tenancy.enable_rls(%L, %L);', c.oid::regclass::text, a.attname)
  -- Found by the dependency PostgreSQL records on a relation's schema:
  -- its index reaches the few relations outside the tenant schemas without
  -- reading pg_class whole (10,000 schema tenants: 160,000 relations).
  FROM pg_depend dn
  JOIN pg_class c ON c.oid = dn.objid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL (
      SELECT a.attname FROM pg_attribute a
       WHERE a.attrelid = c.oid AND a.attname IN (SELECT name FROM tenant_columns)
         AND a.atttypid = 'uuid'::regtype AND a.attnum > 0 AND NOT a.attisdropped
       ORDER BY a.attnum LIMIT 1) a
 WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
   AND dn.refclassid = 'pg_namespace'::regclass AND dn.classid = 'pg_class'::regclass AND dn.deptype = 'n'
   AND dn.refobjid = ANY (ARRAY(SELECT oid FROM shared_schemas))
   AND c.oid NOT IN (SELECT oid FROM registered)
   AND NOT EXISTS (SELECT FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')

-- 2. Row-level security turned off on a registered table: its policy is
-- not applied to anyone.
UNION ALL
SELECT 2, 'error', 'table ' || reg.name,
       'row-level security is disabled, so its tenancy policy filters nothing: every role that may read it sees every tenant''s rows',
       format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY;', reg.name)
  FROM registered reg WHERE NOT reg.relrowsecurity

-- 3. NO FORCE: the table's owner (and every member of the owning role) is
-- no longer filtered.
UNION ALL
SELECT 3, 'error', 'table ' || reg.name,
       format('row-level security is not forced, so its owner %I and the owner''s members see every tenant''s rows', pg_get_userbyid(reg.relowner)),
       format('ALTER TABLE %s FORCE ROW LEVEL SECURITY;', reg.name)
  FROM registered reg WHERE NOT reg.relforcerowsecurity

-- 4. The tenancy policy dropped, or altered from what enable_rls made
-- (another condition, other commands or roles, restrictive): a tenant's
-- rows are no longer, or not only, those of the current tenant.
UNION ALL
SELECT 4, 'error', 'table ' || reg.name,
       CASE WHEN p.oid IS NULL
            THEN format('its tenancy policy %I was dropped: with row-level security on, nobody but superusers sees any row; with it off, everyone sees every row', reg.policy_name)
            ELSE format('its tenancy policy %I was altered: it must be PERMISSIVE FOR ALL TO PUBLIC with USING and WITH CHECK (%I = (SELECT tenancy.current_tenant_id()))', reg.policy_name, reg.tenant_column)
       END,
       format('SELECT tenancy.enable_rls(%L, %L);', reg.name, reg.tenant_column)
  FROM registered reg
  LEFT JOIN pg_policy p ON p.polrelid = reg.oid AND p.polname = reg.policy_name
 WHERE reg.tc IS NOT NULL
   AND (p.oid IS NULL OR NOT p.polpermissive OR p.polcmd <> '*' OR p.polroles <> '{0}'
        -- the two forms enable_rls writes: the sub-select, and the plain
        -- call where Citus is loaded
        OR NOT (pg_get_expr(p.polqual, p.polrelid) IN (format('(%I = ( SELECT tenancy.current_tenant_id() AS current_tenant_id))', reg.tenant_column),
                                                        format('(%I = tenancy.current_tenant_id())', reg.tenant_column))
                AND pg_get_expr(p.polwithcheck, p.polrelid) = pg_get_expr(p.polqual, p.polrelid)))

-- 5. Another permissive policy on a registered table: PostgreSQL ORs
-- permissive policies, so it widens what every tenant sees.
UNION ALL
SELECT 5, 'error', format('policy %I on %s', p.polname, reg.name),
       'is permissive, and permissive policies are OR-ed with the tenancy policy: the rows it admits are visible to every tenant (recreate it AS RESTRICTIVE if it is meant to narrow)',
       format('DROP POLICY %I ON %s;', p.polname, reg.name)
  FROM registered reg JOIN pg_policy p ON p.polrelid = reg.oid
 WHERE p.polname <> reg.policy_name AND p.polpermissive

-- 6. A foreign key into a registered table that leaves out its tenant
-- column: checked without the policy, it tells a tenant whether another
-- tenant's key exists, locks that tenant's row, and cascades across tenants.
-- The fix adds a unique index on (tenant column, key) to the referenced
-- table and makes the key composite.
UNION ALL
SELECT 6, 'error', format('foreign key %I on %s', fk.conname, fk.conrelid::regclass::text),
       format('references %s without its tenant column %I: the check ignores row-level security, so it tells a tenant whether another tenant''s key exists, locks that tenant''s row, and a cascade crosses tenants', ref.name, ref.tenant_column),
       CASE WHEN child.attname IS NOT NULL THEN
           format('CREATE UNIQUE INDEX IF NOT EXISTS %I ON %s (%I, %s); ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s;',
                  left(ref.relname || '_' || ref.tenant_column || '_' || array_to_string(refcols.names, '_') || '_key', 63),
                  ref.name, ref.tenant_column, array_to_string(refcols.quoted, ', '),
                  fk.conrelid::regclass::text, fk.conname, fk.conname,
                  regexp_replace(
                      regexp_replace(pg_get_constraintdef(fk.oid),
                                     '^FOREIGN KEY \(([^)]*)\) REFERENCES ([^(]*)\(([^)]*)\)',
                                     'FOREIGN KEY (' || quote_ident(child.attname) || ', \1) REFERENCES \2(' || quote_ident(ref.tenant_column) || ', \3)'),
                      -- SET NULL / SET DEFAULT of the other columns only: the tenant column stays
                      'ON DELETE SET (NULL|DEFAULT)( |$)', 'ON DELETE SET \1 (' || childcols.quoted || ')\2'))
       END
  FROM pg_constraint fk
  JOIN registered ref ON ref.oid = fk.confrelid
  LEFT JOIN registered own ON own.oid = fk.conrelid
  -- the referencing table's tenant column: its registered one, else one
  -- named like the referenced table's
  LEFT JOIN LATERAL (
      SELECT a.attname, a.attnum FROM pg_attribute a
       WHERE a.attrelid = fk.conrelid AND a.attname = COALESCE(own.tenant_column, ref.tenant_column)
         AND a.atttypid = 'uuid'::regtype AND a.attnum > 0 AND NOT a.attisdropped) child ON true
  CROSS JOIN LATERAL (
      SELECT array_agg(a.attname::text ORDER BY k.i) AS names, array_agg(quote_ident(a.attname) ORDER BY k.i) AS quoted
        FROM unnest(fk.confkey) WITH ORDINALITY k(attnum, i)
        JOIN pg_attribute a ON a.attrelid = fk.confrelid AND a.attnum = k.attnum) refcols
  CROSS JOIN LATERAL (
      SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.i) AS quoted
        FROM unnest(fk.conkey) WITH ORDINALITY k(attnum, i)
        JOIN pg_attribute a ON a.attrelid = fk.conrelid AND a.attnum = k.attnum) childcols
 WHERE fk.contype = 'f' AND fk.conparentid = 0 AND ref.tc IS NOT NULL
   -- the referenced tenant column must be in the key, matched by the
   -- referencing table's own tenant column when it has one
   AND NOT (ref.tc = ANY (fk.confkey)
            AND (own.tc IS NULL OR fk.conkey[array_position(fk.confkey, ref.tc)] = own.tc))

-- 7. A unique index of a registered table without the tenant column: the
-- uniqueness spans tenants, so a 23505 tells one tenant that another holds
-- the value.  The fix puts the tenant column first (a foreign key that
-- references the key must be fixed first: its row comes before).
UNION ALL
SELECT 7, 'error', 'index ' || o.name,
       format('is unique over every tenant''s rows of %s: a unique violation tells one tenant that another tenant holds the value (fix the foreign keys that reference it first)', o.tbl_name),
       CASE WHEN o.contype IN ('p', 'u') THEN
                format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s;', o.tbl_name, o.conname, o.conname,
                       regexp_replace(pg_get_constraintdef(o.con), '^(PRIMARY KEY|UNIQUE( NULLS NOT DISTINCT)?) \(',
                                      '\1 (' || quote_ident(o.tenant_column) || ', '))
            WHEN o.con IS NULL THEN
                format('DROP INDEX %s; %s;', o.name,
                       regexp_replace(replace(pg_get_indexdef(o.indexrelid), ' ON ONLY ', ' ON '),
                                      ' USING (\S+) \(', ' USING \1 (' || quote_ident(o.tenant_column) || ', '))
       END
  FROM off_indexes o WHERE o.indisunique AND NOT o.has_tc

-- 8. Any other index whose first column is not the tenant column: its
-- conditions run before the policy (leakproof operators), so EXPLAIN
-- ANALYZE counts other tenants' rows in a range of it, and bisection reads
-- their values (security review F1).  The fix puts the tenant column first.
UNION ALL
SELECT 8, 'error', 'index ' || o.name,
       format('does not lead with the tenant column %I of %s: its conditions run before the policy, so EXPLAIN ANALYZE counts other tenants'' rows in a range of it, and by bisection reads their values', o.tenant_column, o.tbl_name),
       CASE WHEN o.contype IN ('p', 'u') THEN
                format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s;', o.tbl_name, o.conname, o.conname,
                       regexp_replace(pg_get_constraintdef(o.con), '^(PRIMARY KEY|UNIQUE( NULLS NOT DISTINCT)?) \([^)]*\)',
                                      '\1 (' || (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum <> o.tc, k.i)
                                                   FROM unnest(o.conkey) WITH ORDINALITY k(attnum, i)
                                                   JOIN pg_attribute a ON a.attrelid = o.tbl AND a.attnum = k.attnum) || ')'))
            WHEN o.con IS NULL THEN
                format('DROP INDEX %s; %s;', o.name,
                       regexp_replace(replace(pg_get_indexdef(o.indexrelid), ' ON ONLY ', ' ON '),
                                      ' USING (\S+) \(', ' USING \1 (' || quote_ident(o.tenant_column) || ', '))
       END
  FROM off_indexes o WHERE NOT (o.indisunique AND NOT o.has_tc)

-- 9. No index leads with the tenant column: every statement reads the
-- whole table (not a leak; the policy must not slow queries down).
UNION ALL
SELECT 9, 'warning', 'table ' || reg.name,
       format('no index leads with the tenant column %I: every statement on it reads the whole table to find the tenant''s rows', reg.tenant_column),
       format('CREATE INDEX ON %s (%I);', reg.name, reg.tenant_column)
  FROM registered reg
 WHERE reg.tc IS NOT NULL
   AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = reg.oid AND i.indkey[0] = reg.tc AND i.indpred IS NULL)

-- 10. A view over a registered table (directly or through other views)
-- that reads it with its owner's rights while its owner bypasses row-level
-- security (a superuser, BYPASSRLS): every role that may read the view
-- reads every tenant's rows.  Views a migration created in tenant schemas
-- are owned by the extension's owner, a superuser.  A materialized view
-- applies no policy when read at all.
UNION ALL
SELECT 10, 'error', CASE v.relkind WHEN 'm' THEN 'materialized view ' ELSE 'view ' END || v.name,
       CASE WHEN v.relkind = 'm'
            THEN format('holds rows of %s as its owner %I read them at its last refresh, and reading it applies no policy: every role that may read it sees them', v.base, r.rolname)
            ELSE format('reads %s with the rights of its owner %I, who bypasses row-level security: every role that may read the view sees every tenant''s rows', v.base, r.rolname)
       END
       || CASE WHEN v.relnamespace IN (SELECT oid FROM tenant_schemas)
               THEN ' (a migration created it: change the migration too, so new tenants get it WITH (security_invoker = true))' ELSE '' END,
       CASE WHEN v.relkind = 'v' THEN format('ALTER VIEW %s SET (security_invoker = true);', v.name) END
  FROM readers v JOIN pg_roles r ON r.oid = v.relowner
 WHERE (r.rolsuper OR r.rolbypassrls)
   AND (v.relkind = 'm'
        OR NOT EXISTS (SELECT FROM pg_options_to_table(v.reloptions) o
                        WHERE o.option_name = 'security_invoker' AND o.option_value IN ('true', 'on', '1', 'yes')))

-- 11. A role that may act for a tenant and has BYPASSRLS: no policy applies
-- to it, so it reads every tenant's rows.
UNION ALL
SELECT 11, 'error', format('role %I', a.rolname),
       'may act for tenants and has BYPASSRLS: row-level security never applies to it, so it reads every tenant''s rows',
       format('ALTER ROLE %I NOBYPASSRLS;', a.rolname)
  FROM acting a WHERE a.rolbypassrls

-- 12. A role that may act for a tenant and owns a registered table (or is
-- a member of its owner): an owner can NO FORCE, DISABLE or DROP POLICY.
UNION ALL
SELECT 12, 'error', format('role %I', a.rolname),
       CASE WHEN a.oid = reg.relowner
            THEN format('may act for tenants and owns %s: an owner can turn its row-level security off', reg.name)
            ELSE format('may act for tenants and is a member of %I, the owner of %s: an owner can turn its row-level security off', pg_get_userbyid(reg.relowner), reg.name)
       END,
       CASE WHEN a.oid = reg.relowner
                THEN format('ALTER TABLE %s OWNER TO %I;', reg.name, (SELECT pg_get_userbyid(e.extowner) FROM pg_extension e WHERE e.extname = 'tenancy'))
            WHEN EXISTS (SELECT FROM pg_auth_members m WHERE m.roleid = reg.relowner AND m.member = a.oid)
                THEN format('REVOKE %I FROM %I;', pg_get_userbyid(reg.relowner), a.rolname)
       END
  FROM acting a JOIN registered reg ON pg_has_role(a.oid, reg.relowner, 'USAGE')

-- 13. PUBLIC privileges on a registered table or a tenant's schema: every
-- role, present and future, gets them (on a schema tenant's schema, its
-- tables to whoever they were granted; tenancy grants only its grantees).
UNION ALL
SELECT 13, 'error', 'table ' || reg.name,
       format('PUBLIC has %s on it: every role, also one granted no tenant, may use it', string_agg(DISTINCT x.privilege_type, ', ')),
       format('REVOKE ALL ON TABLE %s FROM PUBLIC;', reg.name)
  FROM registered reg, aclexplode(reg.relacl) x
 WHERE x.grantee = 0
 GROUP BY reg.name
UNION ALL
SELECT 13, 'error', format('schema %I', s.nspname),
       format('is a tenant''s schema and PUBLIC has %s on it: tenancy opens it to the tenant''s grantees only', string_agg(DISTINCT x.privilege_type, ', ')),
       format('REVOKE ALL ON SCHEMA %I FROM PUBLIC;', s.nspname)
  FROM tenant_schemas s, aclexplode(s.nspacl) x
 WHERE x.grantee = 0
 GROUP BY s.nspname

-- 14. TRUNCATE on a registered table held by a role other than its owner:
-- TRUNCATE ignores row-level security and empties it for every tenant.
UNION ALL
SELECT 14, 'error', 'table ' || reg.name,
       format('%s may TRUNCATE it: TRUNCATE ignores row-level security and removes every tenant''s rows',
              CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE format('role %I', pg_get_userbyid(x.grantee)) END),
       format('REVOKE TRUNCATE ON TABLE %s FROM %s;', reg.name,
              CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(x.grantee)) END)
  FROM registered reg, aclexplode(reg.relacl) x
 WHERE x.privilege_type = 'TRUNCATE' AND x.grantee <> reg.relowner

-- 15. A SECURITY DEFINER routine owned by a role that may act for a tenant
-- (security review L7): inside it current_user is the owner, so any caller
-- that may EXECUTE it sets tenancy.tenant_id to any of the owner's tenants
-- and acts for it.
UNION ALL
SELECT 15, 'error', 'function ' || p.oid::regprocedure::text,
       format('is SECURITY DEFINER and owned by %I, who may act for tenants: whoever may call it acts for any of those tenants by setting tenancy.tenant_id', a.rolname),
       format('ALTER ROUTINE %s SECURITY INVOKER;', p.oid::regprocedure::text)
  FROM pg_proc p JOIN acting a ON a.oid = p.proowner
 WHERE p.prosecdef

-- 16. A SECURITY DEFINER routine in a tenant's schema (a migration made
-- it, so the extension's owner owns it) without a pinned search_path: any
-- role that may call it puts its own objects, temporary ones included, on
-- the path and has them run with the owner's rights (review, hardening).
UNION ALL
SELECT 16, 'error', 'function ' || p.oid::regprocedure::text,
       'is SECURITY DEFINER in a tenant''s schema without SET search_path: a caller''s objects (temporary ones too) can capture its names and run as its owner (change the migration too)',
       format('ALTER ROUTINE %s SET search_path = %I, pg_catalog, pg_temp;', p.oid::regprocedure::text, s.nspname)
  FROM pg_proc p JOIN tenant_schemas s ON s.oid = p.pronamespace
 WHERE p.prosecdef
   AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')

-- 17. A role that may act for a tenant and has CREATEROLE, on PostgreSQL 15
-- and older: it can grant itself membership in any other grantee and act
-- for every tenant (security review F5).
UNION ALL
SELECT 17, 'error', format('role %I', a.rolname),
       'may act for tenants and has CREATEROLE: on PostgreSQL 15 and older it can make itself a member of any other tenant''s grantee',
       format('ALTER ROLE %I NOCREATEROLE;', a.rolname)
  FROM acting a
 WHERE a.rolcreaterole AND current_setting('server_version_num')::int < 160000

-- 18. Registry rows that name nothing tenancy should act on: a dropped
-- table (a later table reusing the OID would be taken for it), a temporary
-- table (its session's alone), a table without its tenant column (deleting
-- a tenant's rows fails on it); a grant of a dropped role, or of a role
-- without the marker (it counts for nothing; a role reusing the OID would
-- find it).
UNION ALL
SELECT 18, 'warning', 'table ' || r.tbl::oid::text,
       CASE WHEN c.oid IS NULL THEN 'is registered in tenancy.rls_tables but was dropped'
            WHEN c.relpersistence = 't' THEN format('%s is a temporary table registered in tenancy.rls_tables', c.oid::regclass::text)
            ELSE format('%s is registered in tenancy.rls_tables with tenant column %I, which it no longer has', c.oid::regclass::text, r.tenant_column)
       END,
       format('DELETE FROM tenancy.rls_tables WHERE tbl::oid = %s;', r.tbl::oid)
  FROM tenancy.rls_tables r
  LEFT JOIN pg_class c ON c.oid = r.tbl::oid
 WHERE c.oid IS NULL OR c.relpersistence = 't'
    OR NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = r.tenant_column
                                                AND a.attnum > 0 AND NOT a.attisdropped)
UNION ALL
SELECT 18, 'warning', CASE WHEN r.oid IS NULL THEN 'role ' || g.role::oid::text ELSE format('role %I', r.rolname) END,
       CASE WHEN r.oid IS NULL THEN 'holds tenant grants in tenancy.tenant_grants but was dropped'
            ELSE 'holds tenant grants in tenancy.tenant_grants without USAGE on tenancy.tenant_grantee, so they count for nothing (until it gets USAGE back)'
       END,
       format('DELETE FROM tenancy.tenant_grants WHERE role::oid = %s;', g.role::oid)
  FROM (SELECT DISTINCT gr.role FROM tenancy.tenant_grants gr
          LEFT JOIN tenancy.tenants t ON t.id = gr.tenant_id
         -- a deleted tenant's grants count for nothing anyway
         WHERE gr.tenant_id IS NULL OR t.status <> 'deleted'
            OR NOT EXISTS (SELECT FROM pg_roles x WHERE x.oid = gr.role::oid)) g
  LEFT JOIN pg_roles r ON r.oid = g.role::oid
 WHERE g.role::oid NOT IN (SELECT oid FROM grantees)

-- 19. One of tenancy's event triggers disabled: dropped tables stay
-- registered, tenant schemas can be dropped or renamed by hand, auto_rls
-- stops.
UNION ALL
SELECT 19, 'warning', format('event trigger %I', e.evtname),
       'is disabled: tenancy relies on it to keep its registries and tenant schemas right',
       format('ALTER EVENT TRIGGER %I ENABLE;', e.evtname)
  FROM pg_event_trigger e
  JOIN pg_depend d ON d.classid = 'pg_event_trigger'::regclass AND d.objid = e.oid AND d.deptype = 'e'
  JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'tenancy'
 WHERE e.evtenabled = 'D'

-- 20. Schema tenants whose schema lags the migrations: a failed migration
-- (one row per migration), or migrations not applied yet (one row).
UNION ALL
SELECT 20, 'error', format('migration %s', l.migration),
       format('failed in %s schema tenant(s) (%s): %s; fix its cause, then CALL tenancy.migrate()',
              count(*), string_agg(t.identifier, ', ' ORDER BY t.identifier), min(l.error)),
       NULL
  FROM tenancy.migration_ledger l JOIN tenancy.tenants t ON t.id = l.tenant_id
 WHERE l.status = 'failed' AND t.isolation = 'schema' AND t.status <> 'deleted'
 GROUP BY l.migration
UNION ALL
SELECT 20, 'warning', 'schema tenants',
       format('%s schema tenant(s) have migrations pending (%s)', count(*),
              string_agg(m.identifier, ', ' ORDER BY m.identifier) FILTER (WHERE m.rn <= 5)
              || CASE WHEN count(*) > 5 THEN ', …' ELSE '' END),
       'CALL tenancy.migrate();'
  FROM (SELECT s.identifier, row_number() OVER (ORDER BY s.identifier) AS rn
          FROM tenancy.migration_status s
         WHERE s.pending > 0 AND s.last_error IS NULL) m
HAVING count(*) > 0
)
SELECT p.severity, p.object, p.problem, p.fix FROM problems p ORDER BY p.ord, p.object, p.problem
$doctor$;

COMMENT ON FUNCTION tenancy.doctor() IS
    'Guard rails (SPEC §11): one row per way this database lets tenants'' rows out, with the SQL that repairs it. See docs/guard-rails.md.';

REVOKE EXECUTE ON FUNCTION tenancy.doctor(), tenancy.auto_rls() FROM PUBLIC;
