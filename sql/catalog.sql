-- The tenant catalog (SPEC §1).  Loaded by CREATE EXTENSION after the enum
-- types and the validator functions it calls (see src/catalog/mod.rs).
--
-- The table enforces its own rules, so even a superuser's direct INSERT or
-- UPDATE cannot store a tenant that the API functions would refuse: the
-- CHECK constraints call the same Rust validators the functions use.

CREATE TABLE tenancy.tenants (
    id            uuid NOT NULL DEFAULT tenancy.uuid_generate_v7(),
    identifier    text NOT NULL,
    name          text NOT NULL,
    status        tenancy.tenant_status NOT NULL DEFAULT 'active',
    isolation     tenancy.isolation NOT NULL,
    schema_name   name,
    database_name name,
    metadata      jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenants_pkey PRIMARY KEY (id),
    CONSTRAINT tenants_identifier_key UNIQUE (identifier),
    CONSTRAINT tenants_schema_name_key UNIQUE (schema_name),
    CONSTRAINT tenants_database_name_key UNIQUE (database_name),
    CONSTRAINT tenants_identifier_check CHECK (tenancy.identifier_is_valid(identifier)),
    CONSTRAINT tenants_name_check CHECK (tenancy.name_is_valid(name)),
    CONSTRAINT tenants_metadata_check CHECK (jsonb_typeof(metadata) = 'object'),
    -- a schema tenant has a schema, a database tenant a database, an rls tenant neither
    CONSTRAINT tenants_schema_name_check
        CHECK ((schema_name IS NOT NULL) = (isolation = 'schema')
               AND (schema_name IS NULL OR schema_name::text ~ '^[a-z][a-z0-9_]*$')),
    CONSTRAINT tenants_database_name_check
        CHECK ((database_name IS NOT NULL) = (isolation = 'database')
               AND (database_name IS NULL OR database_name::text ~ '^[a-z][a-z0-9_]*$')),
    CONSTRAINT tenants_updated_at_check CHECK (updated_at >= created_at)
);

COMMENT ON TABLE tenancy.tenants IS 'One row per tenant. Change it through the tenancy.* functions, which audit and notify.';

-- list_tenants: newest first, ties by id, with and without a status filter.
CREATE INDEX tenants_created_idx ON tenancy.tenants (created_at DESC, id DESC);
CREATE INDEX tenants_status_created_idx ON tenancy.tenants (status, created_at DESC, id DESC);
-- search_tenants: substring candidates by 1-, 2- and 3-character windows of
-- the case-folded identifier, and of the name (no pg_trgm needed); one index
-- each, since each rank of the search asks about one of them.
CREATE INDEX tenants_search_identifier_idx ON tenancy.tenants USING gin (tenancy.search_keys(identifier));
CREATE INDEX tenants_search_name_idx ON tenancy.tenants USING gin (tenancy.search_keys(name));
-- search_tenants ranks identifier prefixes first; "C" order makes a prefix a range.
CREATE INDEX tenants_identifier_prefix_idx ON tenancy.tenants (identifier COLLATE "C");

-- The audit log: append-only, written in the same transaction as the change.
CREATE TABLE tenancy.audit_log (
    id        bigint GENERATED ALWAYS AS IDENTITY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     name NOT NULL DEFAULT session_user,
    tenant_id uuid,
    action    text NOT NULL,
    details   jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT audit_log_pkey PRIMARY KEY (id),
    CONSTRAINT audit_log_action_check CHECK (action IN (
        'create', 'update', 'status', 'metadata', 'delete', 'provision',
        'destroy', 'migrate', 'grant', 'revoke', 'move', 'import', 'clone', 'setting')),
    CONSTRAINT audit_log_details_check CHECK (jsonb_typeof(details) = 'object')
);
-- No foreign key: a tenant's history outlives a hard delete.
CREATE INDEX audit_log_tenant_idx ON tenancy.audit_log (tenant_id, id);

COMMENT ON TABLE tenancy.audit_log IS 'Append-only history of every change made through the tenancy API.';

CREATE FUNCTION tenancy.audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'tenancy.audit_log is append-only'
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'To prune old rows, the table owner can DISABLE TRIGGER audit_log_append_only for that transaction.';
END
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON tenancy.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.audit_log_append_only();

-- pg_dump keeps the rows of extension tables registered here.
SELECT pg_catalog.pg_extension_config_dump('tenancy.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.audit_log_id_seq', '');
