-- tenancy 0.2.0 -> 0.3.0 (ALTER EXTENSION tenancy UPDATE): the fixes of the
-- security review of 2026-12-01 (see CHANGELOG.md and docs/security.md).
--
-- New in SQL:
-- - tenancy.tenant_grantee, a type whose USAGE privilege every role granted
--   a tenant holds: DROP ROLE refuses while a tenant grant stands, and a
--   grant counts only while its role holds it (a reused OID inherits none).
--   The roles granted tenants before the update receive it here.
-- - an sql_drop event trigger that removes a dropped table from
--   tenancy.rls_tables; registrations of tables already gone, and of
--   temporary tables (which enable_rls now refuses), are removed here.
-- - tenancy.migration_skips and two columns of tenancy.migration_status
--   (last_skipped_at, last_skip_reason); CALL tenancy.migrate() raises a
--   NOTICE for every tenant it skips.
-- - search_tenants: two key indexes (tenancy.search_keys: 1- to 3-character
--   windows of the identifier, and of the name) replace tenants_search_idx, and each rank is read the cheap way
--   (an identifier range, the first identifiers in order, or the key index),
--   so unselective queries (one letter, a shared prefix, a common word) are
--   as fast as selective ones.
-- Changed behind the same signatures (library only):
-- - migrations run with search_path "<schema>", pg_catalog, pg_temp, as a
--   security-restricted operation;
-- - delete_tenant(..., destroy_data => true) deletes an RLS tenant's rows as
--   each table's owner; enable_rls refuses temporary tables and warns about
--   indexes and foreign keys that do not lead with / include the tenant column;
-- - the context check reads with a new snapshot in parallel mode too, in
--   every isolation level, and a parallel query's leader keeps no answer;
-- - the rate limit and migrate's claim lock with a lock only tenancy can
--   take (no advisory locks);
-- - grant_tenant warns about a CREATEROLE grantee on PostgreSQL 15 and older;
-- - tenancy_events payloads carry the audit row's id (audit_id);
-- - a refused tenancy.* setting is shown escaped and cut to 64 characters.
--
-- tests/faults/upgrade.test.sh checks that an upgraded database is, object by
-- object, the same as a fresh CREATE EXTENSION of 0.3.0, and that its rows
-- are kept and work.
\echo Use "ALTER EXTENSION tenancy UPDATE" to load this file. \quit

-- search_tenants: the index keys gain 1-character windows, so that a
-- one-letter query finds its candidates in the index (src/search.rs).
CREATE FUNCTION tenancy."search_keys"("value" TEXT) RETURNS TEXT[]
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'search_keys_wrapper';
REVOKE EXECUTE ON FUNCTION tenancy.search_keys(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.search_keys(text) TO PUBLIC;
DROP INDEX tenancy.tenants_search_idx;
CREATE INDEX tenants_search_identifier_idx ON tenancy.tenants USING gin (tenancy.search_keys(identifier));
CREATE INDEX tenants_search_name_idx ON tenancy.tenants USING gin (tenancy.search_keys(name));

CREATE TYPE tenancy.tenant_grantee AS ENUM ('grantee');

COMMENT ON TYPE tenancy.tenant_grantee IS 'Marks the roles granted a tenant (USAGE): DROP ROLE refuses while a tenant grant stands. Allows nothing.';

REVOKE USAGE ON TYPE tenancy.tenant_grantee FROM PUBLIC;

-- The roles granted tenants so far get the marker.  Privileges granted in an
-- extension script are recorded as the extension's initial privileges,
-- which pg_dump leaves out; these are not initial (a fresh install has
-- none), so the record is put back as CREATE EXTENSION leaves it.
DO $do$
DECLARE
    initial pg_catalog.aclitem[];
    grantee pg_catalog.text;
BEGIN
    SELECT p.initprivs INTO initial FROM pg_catalog.pg_init_privs p
     WHERE p.objoid OPERATOR(pg_catalog.=) 'tenancy.tenant_grantee'::pg_catalog.regtype
       AND p.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass;
    FOR grantee IN
        SELECT DISTINCT r.rolname::pg_catalog.text FROM tenancy.tenant_grants g
          JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) g.role::pg_catalog.oid ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('GRANT USAGE ON TYPE tenancy.tenant_grantee TO %I', grantee);
    END LOOP;
    UPDATE pg_catalog.pg_init_privs p SET initprivs = initial
     WHERE p.objoid OPERATOR(pg_catalog.=) 'tenancy.tenant_grantee'::pg_catalog.regtype
       AND p.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass;
END
$do$;

-- Registrations that 0.2.0 could leave behind: dropped tables, temporary tables.
DELETE FROM tenancy.rls_tables r
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c
                    WHERE c.oid OPERATOR(pg_catalog.=) r.tbl::pg_catalog.oid
                      AND c.relpersistence OPERATOR(pg_catalog.<>) 't');

CREATE FUNCTION tenancy.forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM tenancy.rls_tables r
     USING pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.objsubid OPERATOR(pg_catalog.=) 0
       AND r.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) d.objid;
END
$$;

CREATE EVENT TRIGGER tenancy_forget_dropped_tables ON sql_drop
    EXECUTE FUNCTION tenancy.forget_dropped_tables();

REVOKE EXECUTE ON FUNCTION tenancy.forget_dropped_tables() FROM PUBLIC;

CREATE TABLE tenancy.migration_skips (
    tenant_id  uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    skipped_at timestamptz NOT NULL DEFAULT now(),
    reason     text NOT NULL,
    CONSTRAINT migration_skips_pkey PRIMARY KEY (tenant_id)
);

COMMENT ON TABLE tenancy.migration_skips IS 'The last migrate run that skipped a schema tenant, and why.';

REVOKE ALL ON tenancy.migration_skips FROM PUBLIC;

CREATE OR REPLACE VIEW tenancy.migration_status AS
SELECT t.id AS tenant_id,
       t.identifier,
       t.schema_name,
       count(l.migration) FILTER (WHERE l.status = 'applied') AS applied,
       (SELECT count(*) FROM tenancy.migrations)
           - count(l.migration) FILTER (WHERE l.status = 'applied') AS pending,
       (array_agg(l.migration ORDER BY m.position DESC) FILTER (WHERE l.status = 'applied'))[1] AS last_applied,
       (array_agg(l.error ORDER BY l.applied_at DESC) FILTER (WHERE l.status = 'failed'))[1] AS last_error,
       max(l.applied_at) AS last_run_at,
       s.skipped_at AS last_skipped_at,
       s.reason AS last_skip_reason
  FROM tenancy.tenants t
  LEFT JOIN tenancy.migration_ledger l ON l.tenant_id = t.id
  LEFT JOIN tenancy.migrations m ON m.name = l.migration
  LEFT JOIN tenancy.migration_skips s ON s.tenant_id = t.id
 WHERE t.isolation = 'schema' AND t.status <> 'deleted'
 GROUP BY t.id, t.identifier, t.schema_name, s.skipped_at, s.reason;

COMMENT ON VIEW tenancy.migration_status IS 'Applied and pending migrations, the last error and the last skip, per schema tenant.';

CREATE OR REPLACE PROCEDURE tenancy.migrate()
LANGUAGE plpgsql AS $$
DECLARE
    tenant uuid;
    result jsonb;
BEGIN
    PERFORM tenancy.migration_check_outside_block();
    FOR tenant IN SELECT tenancy.migration_targets() LOOP
        result := tenancy.migrate_tenant(tenant);
        IF (result->>'skipped')::boolean THEN
            RAISE NOTICE 'tenancy.migrate: tenant % skipped: %',
                COALESCE(result->>'identifier', tenant::text), result->>'reason';
        ELSIF result->>'failed' IS NOT NULL THEN
            RAISE WARNING 'tenancy.migrate: tenant % failed at migration %: %',
                tenant, result->>'failed', result->>'error';
        END IF;
        COMMIT;
    END LOOP;
END
$$;
