-- Access grants, RLS registry, schema migrations and their ledger (SPEC §4).
-- Loaded after sql/catalog.sql.

-- Who may act for which tenant.  tenant_id NULL means every tenant.
-- A regrole column dumps as the role's name and is resolved again on restore.
CREATE TABLE tenancy.tenant_grants (
    role       regrole NOT NULL,
    tenant_id  uuid REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    granted_at timestamptz NOT NULL DEFAULT now(),
    granted_by name NOT NULL DEFAULT session_user
);
CREATE UNIQUE INDEX tenant_grants_role_tenant_key
    ON tenancy.tenant_grants (role, (COALESCE(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)));
CREATE INDEX tenant_grants_tenant_idx ON tenancy.tenant_grants (tenant_id);

COMMENT ON TABLE tenancy.tenant_grants IS 'Roles allowed to act for a tenant (tenant_id NULL: all tenants). Change with tenancy.grant_tenant and friends.';

-- The grant functions give every granted role USAGE on this type, and take
-- it back when the role's last grant goes.  PostgreSQL records a privilege
-- as a dependency of the role, so DROP ROLE refuses while the role is
-- granted a tenant, and a role dropped after DROP OWNED (which takes the
-- privilege away) leaves no grant that a later role reusing its OID would
-- inherit: a grant counts only while its role holds the privilege.
CREATE TYPE tenancy.tenant_grantee AS ENUM ('grantee');

COMMENT ON TYPE tenancy.tenant_grantee IS 'Marks the roles granted a tenant (USAGE): DROP ROLE refuses while a tenant grant stands. Allows nothing.';

-- Tables isolated by row-level security, as enable_rls left them.
CREATE TABLE tenancy.rls_tables (
    tbl           regclass NOT NULL,
    tenant_column name NOT NULL,
    policy_name   name NOT NULL,
    enabled_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rls_tables_pkey PRIMARY KEY (tbl)
);

COMMENT ON TABLE tenancy.rls_tables IS 'Tables isolated by tenancy.enable_rls.';

-- A dropped table leaves the registry in the same transaction, so a later
-- table that reuses its OID is not taken for it.
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

CREATE EVENT TRIGGER tenancy_guard_dropped_schemas ON sql_drop
    EXECUTE FUNCTION tenancy.guard_tenant_schemas();
CREATE EVENT TRIGGER tenancy_guard_renamed_schemas ON ddl_command_end
    WHEN TAG IN ('ALTER SCHEMA')
    EXECUTE FUNCTION tenancy.guard_tenant_schemas();

-- Versioned migrations of every schema tenant, applied in registration order.
CREATE TABLE tenancy.migrations (
    position      integer GENERATED ALWAYS AS IDENTITY,
    name          text NOT NULL,
    sql           text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    registered_by name NOT NULL DEFAULT session_user,
    CONSTRAINT migrations_pkey PRIMARY KEY (name),
    CONSTRAINT migrations_position_key UNIQUE (position),
    CONSTRAINT migrations_name_check CHECK (char_length(name) BETWEEN 1 AND 63 AND btrim(name) <> ''),
    CONSTRAINT migrations_sql_check CHECK (btrim(sql, E' \t\r\n;') <> '')
);

COMMENT ON TABLE tenancy.migrations IS 'Migrations of schema tenants, in the order registered by tenancy.add_migration. Immutable.';

CREATE FUNCTION tenancy.migrations_immutable() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'registered migrations are immutable'
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Register a new migration with tenancy.add_migration that makes the change.';
END
$$;

CREATE TRIGGER migrations_immutable
    BEFORE UPDATE OR DELETE ON tenancy.migrations
    FOR EACH ROW EXECUTE FUNCTION tenancy.migrations_immutable();

-- Which migration reached which tenant, and how.
CREATE TABLE tenancy.migration_ledger (
    tenant_id  uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    migration  text NOT NULL REFERENCES tenancy.migrations (name),
    applied_at timestamptz NOT NULL DEFAULT now(),
    status     text NOT NULL,
    error      text,
    CONSTRAINT migration_ledger_pkey PRIMARY KEY (tenant_id, migration),
    CONSTRAINT migration_ledger_status_check CHECK (status IN ('applied', 'failed')),
    CONSTRAINT migration_ledger_error_check CHECK ((status = 'failed') = (error IS NOT NULL))
);
CREATE INDEX migration_ledger_migration_idx ON tenancy.migration_ledger (migration);

COMMENT ON TABLE tenancy.migration_ledger IS 'One row per schema tenant and migration tried: applied, or failed with its error.';

-- The last time a run skipped a tenant, and why (another session was
-- migrating it).  A run that migrates the tenant cleanly clears it.
CREATE TABLE tenancy.migration_skips (
    tenant_id  uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    skipped_at timestamptz NOT NULL DEFAULT now(),
    reason     text NOT NULL,
    CONSTRAINT migration_skips_pkey PRIMARY KEY (tenant_id)
);

COMMENT ON TABLE tenancy.migration_skips IS 'The last migrate run that skipped a schema tenant, and why.';

-- Per schema tenant that is not deleted: how many migrations are applied and
-- pending, and the last error.
CREATE VIEW tenancy.migration_status AS
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

-- CREATE and DROP DATABASE queued for the commit of the transaction that
-- asked for them (see src/isolation/provision.rs); empty outside a transaction.
CREATE TABLE tenancy.database_ops (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    op            text NOT NULL CHECK (op IN ('create', 'drop')),
    database_name text NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now()
);

-- Requests counted by tenancy.check_rate_limit: one row per admitted
-- request still inside its tenant's sliding window (older rows are deleted
-- as the window slides).  Transient: not dumped.
CREATE TABLE tenancy.rate_limit_hits (
    tenant_id uuid NOT NULL,
    at        timestamptz NOT NULL
);
CREATE INDEX rate_limit_hits_tenant_at_idx ON tenancy.rate_limit_hits (tenant_id, at);

SELECT pg_catalog.pg_extension_config_dump('tenancy.tenant_grants', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.rls_tables', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.migrations', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.migrations_position_seq', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.migration_ledger', '');
