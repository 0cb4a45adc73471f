-- Per-tenant settings (SPEC §10): the noisy-neighbour controls a DBA sets
-- per tenant, applied by set_tenant in its scope (src/context/limits.rs).
-- Loaded after sql/isolation.sql.
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
